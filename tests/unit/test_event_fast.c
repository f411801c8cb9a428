/*  test_event_fast — the fast path (event_fast.c) against the reference
    parser: whatever it accepts, the reference accepts identically, on
    random events and on every mutation of canonical lines. --bench prints
    the parse rates.
*/
#include "event_check.h"

#include <stdlib.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Fast path against the reference parser

static void s_random_id (char *out, size_t max)
{
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
    size_t bytes = 1 + (size_t)rand () % max;
    out[0] = chars[rand () % 62];
    for (size_t i = 1; i < bytes; i++)
        out[i] = chars[rand () % (sizeof chars - 1)];
    out[bytes] = '\0';
}

//  Meta text mixing ASCII, escapes, controls and 2-4 byte UTF-8.
static void s_random_text (char *out)
{
    static const char *pieces[] = {"a",
                                   "Z",
                                   " ",
                                   "\"",
                                   "\\",
                                   "/",
                                   "\n",
                                   "\t",
                                   "\x01",
                                   "\x1f",
                                   "\x7f",
                                   "\xc3\xa9",
                                   "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80",
                                   "req-",
                                   "\r",
                                   "\b",
                                   "\f"};
    size_t bytes = 0;
    size_t target = 1 + (size_t)rand () % EVENT_META_VALUE_BYTES_MAX;
    while (bytes < target) {
        const char *piece = pieces[rand () % (sizeof pieces / sizeof pieces[0])];
        size_t piece_bytes = strlen (piece);
        if (bytes + piece_bytes > target)
            break;
        memcpy (out + bytes, piece, piece_bytes);
        bytes += piece_bytes;
    }
    if (bytes == 0)
        out[bytes++] = 'x';
    out[bytes] = '\0';
}

static int64_t s_random_range (int64_t max)
{
    uint64_t value =
        ((uint64_t)rand () << 42) ^ ((uint64_t)rand () << 21) ^ (uint64_t)rand ();
    return 1 + (int64_t)(value % (uint64_t)max);
}

static void s_random_event (event_t *event, int64_t seq)
{
    event_init (event);
    event->seq = seq;
    event->ts_ms = s_random_range (4102444800000LL);
    event->type = (event_type_t)(1 + rand () % 3);
    strcpy (event->type_name, event_type_name (event->type));
    s_random_id (event->id, rand () % 2 ? 36 : EVENT_ID_BYTES_MAX);
    if (event->type == EVENT_TRANSFERRED) {
        s_random_id (event->from, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
        do
            s_random_id (event->to, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
        while (strcmp (event->from, event->to) == 0);
    } else
        s_random_id (event->account, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
    event->amount =
        rand () % 4 ? 1 + rand () % 100000 : s_random_range (EVENT_AMOUNT_MAX);
    if (rand () % 2)
        s_random_text (event->correlation_id);
    if (rand () % 3 == 0)
        s_random_text (event->request_id);
    if (rand () % 2)
        s_random_text (event->reference);
    if (rand () % 2) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
        size_t bytes = 1 + (size_t)rand () % EVENT_PRINCIPAL_BYTES_MAX;
        event->principal[0] = chars[rand () % 26];
        for (size_t i = 1; i < bytes; i++)
            event->principal[i] = chars[rand () % (sizeof chars - 1)];
        event->principal[bytes] = '\0';
    }
}

static void test_fast_path_equals_reference_on_random_events (void)
{
    srand (42);
    for (int i = 0; i < 50000; i++) {
        event_t original, fast, reference;
        s_random_event (&original,
                        s_random_range (rand () % 10 ? 1000000 : EVENT_SEQ_MAX));
        char line[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&original, line, sizeof line);
        CHECK (bytes > 0);
        char error[256] = "";
        CHECK (s_fast (line, bytes, &fast));
        int rc = s_reference_stored (line, bytes, &reference, error);
        if (rc != 0)
            fprintf (stderr, "    %s\n    %s\n", line, error);
        CHECK (rc == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_same (&fast, &original));
        char again[EVENT_LINE_BYTES_MAX];
        CHECK (event_format_stored (&fast, again, sizeof again) == bytes);
        CHECK (memcmp (again, line, bytes) == 0);
    }
}

//  A proposed event: no seq or ts, expect on some of its accounts.
static void s_random_proposed (event_t *event)
{
    s_random_event (event, 0);
    event->ts_ms = 0;
    const char *accounts[2] = {event->account, NULL};
    if (event->type == EVENT_TRANSFERRED) {
        accounts[0] = rand () % 2 ? event->from : event->to;
        accounts[1] = accounts[0] == event->from ? event->to : event->from;
    }
    size_t count = (size_t)rand () % (accounts[1] ? 3 : 2);
    for (size_t i = 0; i < count; i++) {
        strcpy (event->expect[i].account, accounts[i]);
        event->expect[i].version =
            rand () % 3 ? rand () % 1000 : s_random_range (EVENT_VERSION_MAX) - 1;
    }
    event->expect_count = count;
}

static void test_proposed_fast_path_equals_reference_on_random_events (void)
{
    srand (43);
    for (int i = 0; i < 50000; i++) {
        event_t original, fast, reference;
        s_random_proposed (&original);
        char json[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_proposed (&original, json, sizeof json);
        CHECK (bytes > 0);
        char error[256] = "";
        CHECK (s_fast_json (json, bytes, &fast));
        int rc = s_reference_proposed (json, bytes, &reference, error);
        if (rc != 0)
            fprintf (stderr, "    %s\n    %s\n", json, error);
        CHECK (rc == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_same (&fast, &original));
        char again[EVENT_LINE_BYTES_MAX];
        CHECK (event_format_proposed (&fast, again, sizeof again) == bytes);
        CHECK (memcmp (again, json, bytes) == 0);
        CHECK (s_spliced (json, bytes));
        CHECK (s_splice_equals_format (json, bytes, s_random_range (EVENT_SEQ_MAX),
                                       s_random_range (EVENT_TS_MAX_MS)));
    }
}

//  Whatever the proposed fast path accepts, the reference accepts identically.
static void test_proposed_fast_path_never_accepts_more_than_reference (void)
{
    srand (4321);
    static const char replacements[] = "0123456789\"\\{}:,. -aZu\x80\xc3\x01";
    int accepted_by_fast = 0;
    for (int i = 0; i < 200000; i++) {
        event_t original, fast, reference;
        s_random_proposed (&original);
        char json[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_proposed (&original, json, sizeof json);
        int mutations = 1 + rand () % 2;
        for (int m = 0; m < mutations; m++)
            json[rand () % bytes] = replacements[rand () % (sizeof replacements - 1)];
        if (rand () % 8 == 0)
            bytes -= 1 + (size_t)rand () % 8;
        char error[256];
        if (!s_fast_json (json, bytes, &fast))
            continue;
        accepted_by_fast++;
        CHECK (s_reference_proposed (json, bytes, &reference, error) == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_splice_equals_format (json, bytes, 1 + rand () % 1000, 1));
    }
    CHECK (accepted_by_fast > 0);
}

static void test_proposed_expect_rules_hold_on_the_fast_path (void)
{
    const char *rejected[] = {
        //  an account the event does not touch
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"alice\","
        "\"amount\":5,\"expect\":{\"bob\":1}}",
        //  the same account twice
        "{\"id\":\"e\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
        "\"amount\":5,\"expect\":{\"a\":1,\"a\":2}}",
        //  three accounts
        "{\"id\":\"e\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
        "\"amount\":5,\"expect\":{\"a\":1,\"b\":2,\"a\":3}}",
        //  a negative version, a leading zero
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5,\"expect\":{\"a\":-1}}",
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5,\"expect\":{\"a\":01}}",
        //  seq in a proposed event, v 2
        "{\"seq\":1,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5}",
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":2,\"account\":\"a\","
        "\"amount\":5}",
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        event_t event;
        char error[256] = "";
        CHECK (
            !event_fast_parse_proposed (rejected[i], strlen (rejected[i]), &event, NULL));
        CHECK (s_proposed (rejected[i], &event, error) == -1);
        CHECK (error[0] != '\0');
    }
    const char *zero = "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
                       "\"amount\":5,\"expect\":{\"a\":0}}";
    event_t fast, reference;
    char error[256] = "";
    CHECK (event_fast_parse_proposed (zero, strlen (zero), &fast, NULL));
    CHECK (s_reference_proposed (zero, strlen (zero), &reference, error) == 0);
    CHECK (s_same (&fast, &reference));
    CHECK (fast.expect_count == 1 && fast.expect[0].version == 0);
}

//  Whatever the fast path accepts, the reference accepts identically.
static void test_fast_path_never_accepts_more_than_reference (void)
{
    srand (1234);
    static const char replacements[] = "0123456789\"\\{}:,. -aZu\x80\xc3\x01";
    int accepted_by_fast = 0;
    for (int i = 0; i < 200000; i++) {
        event_t original, fast, reference;
        s_random_event (&original, s_random_range (1000));
        char line[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&original, line, sizeof line);
        int mutations = 1 + rand () % 2;
        for (int m = 0; m < mutations; m++)
            line[rand () % bytes] = replacements[rand () % (sizeof replacements - 1)];
        if (rand () % 8 == 0)
            bytes -= 1 + (size_t)rand () % 8;
        char error[256];
        if (!s_fast (line, bytes, &fast))
            continue;
        accepted_by_fast++;
        CHECK (s_reference_stored (line, bytes, &reference, error) == 0);
        CHECK (s_same (&fast, &reference));
    }
    CHECK (accepted_by_fast > 0);
}

//  The fast path remembers the last ts's minute: a line right after one in
//  the same minute, with any byte of its ts changed, is still judged like
//  the reference judges it (and a cold cache matches nothing, not even NULs).
static void test_ts_minute_cache_judges_each_line_afresh (void)
{
    static const char replacements[] = "0123456789:-.TZtz \"\x01";
    const char *ts_at = strstr (s_deposit, "\"ts\":\"") + 6;
    size_t offset = (size_t)(ts_at - s_deposit), bytes = strlen (s_deposit);
    int rejected = 0;
    for (size_t at = 0; at < EVENT_TS_BYTES; at++)
        for (size_t r = 0; r < sizeof replacements; r++) { // includes the NUL
            char line[EVENT_LINE_BYTES_MAX];
            memcpy (line, s_deposit, bytes);
            line[offset + at] = replacements[r];
            event_t fast, reference;
            char error[256];
            for (int warm = 0; warm < 2; warm++) {
                if (warm)
                    CHECK (s_fast (s_deposit, bytes, &fast));
                else
                    event_ts_cache_reset ();
                bool accepted = s_fast (line, bytes, &fast);
                bool accepted_by_reference =
                    s_reference_stored (line, bytes, &reference, error) == 0;
                if (accepted)
                    CHECK (accepted_by_reference && s_same (&fast, &reference));
                else
                    rejected++;
            }
        }
    CHECK (rejected > 0);
    event_ts_cache_reset ();
    char zeroed[EVENT_TS_BYTES + 1] = "";
    memcpy (zeroed + 16, ":47.123Z", 8);
    int64_t ts_ms;
    CHECK (!event_ts_parse_canonical (zeroed, &ts_ms));
}

static void test_non_canonical_lines_fall_back_to_reference (void)
{
    const char *variants[] = {
        "{ "
        "\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"al\\u0069ce\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"amount\":1250,\"account\":\"alice\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"alice\",\"amount\":1250,\"meta\":{}}",
    };
    event_t canonical, event, fast;
    char error[256] = "";
    const char *line = "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                       "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
                       "\"amount\":1250}";
    CHECK (s_fast (line, strlen (line), &canonical));
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        CHECK (!s_fast (variants[i], strlen (variants[i]), &fast));
        CHECK (s_stored (variants[i], &event, error) == 0);
        CHECK (s_same (&event, &canonical));
    }
    const char *escaped = "{\"seq\":1,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                          "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"a\","
                          "\"amount\":1,\"meta\":{\"reference\":\"\\u00e9\\/\"}}";
    CHECK (!s_fast (escaped, strlen (escaped), &fast));
    CHECK (s_stored (escaped, &event, error) == 0);
    CHECK (strcmp (event.reference, "\xc3\xa9/") == 0);
}

//  Only event_format_stored's exact bytes pass as canonical; every other
//  spelling of the same event is refused, naming where it first differs.

static void test_canonical_parse_refuses_every_other_spelling (void)
{
    const char *line = "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                       "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
                       "\"amount\":1250}";
    event_t event;
    char error[256] = "";
    CHECK (event_parse_canonical (line, strlen (line), &event, error, 256) == 0);
    CHECK (event_parse_canonical (s_transfer, strlen (s_transfer), &event, error, 256) ==
           0);
    const char *others[] = {
        "{\"seq\":17, \"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\n\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"amount\":1250,\"account\":\"alice\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"al\\u0069ce\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}\r",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\", \"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"\\u0061\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"v\":1}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":2,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"currency\":\"EUR\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"account_updated\",\"v\":2,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"metadata\":{\"b\":\"1\",\"a\":\"2\"}}",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        error[0] = '\0';
        CHECK (event_parse_stored (others[i], strlen (others[i]), &event, error, 256) ==
               0);
        CHECK (event_parse_canonical (others[i], strlen (others[i]), &event, error,
                                      256) == -1);
        CHECK (error[0] != '\0');
    }
    CHECK (event_parse_canonical (others[0], strlen (others[0]), &event, error, 256));
    CHECK (strstr (error, "at byte 10") != NULL);
    //  A random event's formatted line always passes.
    for (int i = 0; i < 1000; i++) {
        event_t random, back;
        s_random_event (&random, i + 1);
        char formatted[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&random, formatted, sizeof formatted);
        CHECK (bytes > 0);
        CHECK (event_parse_canonical (formatted, bytes, &back, error, 256) == 0);
        CHECK (s_same (&random, &back));
    }
}

static void bench_parse_rates (void)
{
    enum { LINES = 4096, ROUNDS = 100 };
    static char lines[LINES][512];
    static size_t sizes[LINES];
    srand (99);
    for (int i = 0; i < LINES; i++) {
        event_t event;
        s_random_event (&event, i + 1);
        s_random_id (event.id, 36);
        event.correlation_id[0] = event.request_id[0] = '\0';
        if (rand () % 4)
            event.reference[0] = '\0';
        else
            strcpy (event.reference, "invoice 2026-11 \"rent\"");
        sizes[i] = event_format_stored (&event, lines[i], sizeof lines[i]);
        CHECK (sizes[i] > 0);
    }
    double rates[2];
    for (int path = 0; path < 2; path++) {
        struct timespec start, end;
        clock_gettime (CLOCK_MONOTONIC, &start);
        for (int round = 0; round < (path == 0 ? ROUNDS : ROUNDS / 10); round++)
            for (int i = 0; i < LINES; i++) {
                event_t event;
                char error[256];
                int rc = path == 0
                             ? event_parse_stored (lines[i], sizes[i], &event, error, 256)
                             : s_reference_stored (lines[i], sizes[i], &event, error);
                CHECK (rc == 0);
            }
        clock_gettime (CLOCK_MONOTONIC, &end);
        double seconds = (double)(end.tv_sec - start.tv_sec) +
                         (double)(end.tv_nsec - start.tv_nsec) / 1e9;
        rates[path] = (double)LINES * (path == 0 ? ROUNDS : ROUNDS / 10) / seconds;
    }
    printf (
        "     event_parse_stored: fast path %.2fM lines/s, cJSON path %.2fM lines/s\n",
        rates[0] / 1e6, rates[1] / 1e6);
}

//  meta.principal is written last in meta, read back by both parsers, and
//  a line without it (an older log's) reads as before.

int main (int argc, char **argv)
{
    if (check_bench_requested (argc, argv)) {
        RUN (bench_parse_rates);
        return check_exit_status ();
    }
    RUN (test_fast_path_equals_reference_on_random_events);
    RUN (test_fast_path_never_accepts_more_than_reference);
    RUN (test_non_canonical_lines_fall_back_to_reference);
    RUN (test_canonical_parse_refuses_every_other_spelling);
    RUN (test_proposed_fast_path_equals_reference_on_random_events);
    RUN (test_proposed_fast_path_never_accepts_more_than_reference);
    RUN (test_proposed_expect_rules_hold_on_the_fast_path);
    RUN (test_ts_minute_cache_judges_each_line_afresh);
    return check_exit_status ();
}
