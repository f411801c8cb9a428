/*  test_log_file — claims about the event log: recovery, refusal, group
    commit, the sparse index and failed commits. Every test works in its own
    mkdtemp directory, removed at the end.

    LOG_FILE_BENCH_EVENTS=N sets the size of the printed (never asserted)
    open-scan timing; default 200000.
*/
#include "log_file.h"
#include "log.h"

#include <czmq.h>

#define CHECK_ON_FAILURE goto cleanup
#include "check.h"
#include "scratch.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TS_START_MS 1795332527000LL

//  Most claims are about one segment's lines: no preallocation, so the
//  file is exactly the log.
static const log_file_config_t s_plain = {.no_preallocate = true};

static size_t s_line (int64_t seq, int64_t ts_ms, char *buffer, size_t size)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.ts_ms = ts_ms;
    event.type = seq % 3 == 0 ? EVENT_TRANSFERRED : EVENT_DEPOSITED;
    snprintf (event.id, sizeof event.id, "6f1c2d3e-0000-4000-8000-%012lld",
              (long long)seq);
    if (event.type == EVENT_TRANSFERRED) {
        snprintf (event.from, sizeof event.from, "acct-%lld", (long long)(seq % 97));
        snprintf (event.to, sizeof event.to, "acct-%lld", (long long)(seq % 97 + 1));
    } else
        snprintf (event.account, sizeof event.account, "acct-%lld",
                  (long long)(seq % 89));
    event.amount = 1 + seq % 100000;
    if (seq % 7 == 0)
        snprintf (event.reference, sizeof event.reference, "invoice \"%lld\"",
                  (long long)seq);
    size_t bytes = event_format_stored (&event, buffer, size);
    assert (bytes > 0);
    return bytes;
}

//  Appends seqs from..to, committing every burst events.
static int s_append (log_file_t *log, int64_t from, int64_t to, int64_t burst, bool sync)
{
    char line[EVENT_LINE_BYTES_MAX];
    for (int64_t seq = from; seq <= to; seq++) {
        size_t bytes = s_line (seq, TS_START_MS + seq / 3, line, sizeof line);
        if (log_file_append (log, line, bytes, seq, TS_START_MS + seq / 3))
            return -1;
        if ((seq - from + 1) % burst == 0 && log_file_commit (log, sync))
            return -1;
    }
    return log_file_commit (log, sync);
}

static int s_write_log (const char *data, int64_t events)
{
    char error[512] = "";
    log_file_t *log = log_file_open (data, &s_plain, NULL, NULL, error, sizeof error);
    if (!log)
        return -1;
    int rc = s_append (log, 1, events, 100, false);
    log_file_destroy (&log);
    return rc;
}

static int s_spit (const char *path, const char *data, size_t bytes, const char *mode)
{
    FILE *file = fopen (path, mode);
    if (!file)
        return -1;
    size_t written = fwrite (data, 1, bytes, file);
    return fclose (file) == 0 && written == bytes ? 0 : -1;
}

typedef struct {
    int64_t events;
    int64_t next_seq;
    int64_t refuse_seq; // the callback refuses this seq; 0 never
    bool lines_match;
} counter_t;

static int s_count (void *arg, const event_t *event, const char *line, size_t line_bytes)
{
    counter_t *counter = arg;
    char expected[EVENT_LINE_BYTES_MAX];
    size_t bytes = s_line (event->seq, event->ts_ms, expected, sizeof expected);
    if (event->seq != counter->next_seq || bytes != line_bytes ||
        memcmp (expected, line, bytes) != 0)
        counter->lines_match = false;
    counter->events++;
    counter->next_seq++;
    return event->seq == counter->refuse_seq ? -1 : 0;
}

static void test_append_commit_reopen_keeps_every_event (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    counter_t counter = {0, 1, 0, true};
    log_file_t *log =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    CHECK (log_file_last_seq (log) == 0 && log_file_bytes (log) == 0);
    CHECK (s_append (log, 1, 1000, 64, true) == 0);
    CHECK (log_file_last_seq (log) == 1000 && log_file_committed_seq (log) == 1000);
    CHECK (log_file_sync_count (log) == 1000 / 64 + 1);
    CHECK (log_file_last_ts_ms (log) == TS_START_MS + 1000 / 3);
    uint64_t bytes = log_file_bytes (log);
    log_file_destroy (&log);
    CHECK (log == NULL);
    log_file_destroy (&log); // idempotent
    struct stat status;
    CHECK (stat (scratch.path, &status) == 0 && (uint64_t)status.st_size == bytes);
    log = log_file_open (scratch.data, &s_plain, s_count, &counter, error, sizeof error);
    CHECK (log);
    CHECK (counter.events == 1000 && counter.lines_match);
    CHECK (log_file_last_seq (log) == 1000 && log_file_committed_seq (log) == 1000);
    CHECK (log_file_bytes (log) == bytes);
    CHECK (log_file_last_ts_ms (log) == TS_START_MS + 1000 / 3);
    CHECK (s_append (log, 1001, 1010, 100, true) == 0);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_uncommitted_appends_are_unread_and_dropped (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "", buffer[4096], line[EVENT_LINE_BYTES_MAX];
    size_t bytes;
    log_file_t *log =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    CHECK (s_append (log, 1, 5, 100, true) == 0);
    for (int64_t seq = 6; seq <= 8; seq++) {
        size_t line_bytes = s_line (seq, TS_START_MS + 9, line, sizeof line);
        CHECK (log_file_append (log, line, line_bytes, seq, TS_START_MS + 9) == 0);
    }
    CHECK (log_file_last_seq (log) == 8 && log_file_committed_seq (log) == 5);
    CHECK (log_file_read (log, 6, 10, buffer, sizeof buffer, &bytes) == 0 && bytes == 0);
    CHECK (log_file_read (log, 1, 10, buffer, sizeof buffer, &bytes) == 5);
    log_file_rollback (log);
    CHECK (log_file_last_seq (log) == 5 &&
           log_file_last_ts_ms (log) == TS_START_MS + 5 / 3);
    size_t line_bytes = s_line (6, TS_START_MS + 9, line, sizeof line);
    CHECK (log_file_append (log, line, line_bytes, 6, TS_START_MS + 9) == 0);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 5);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  Writes 10 events, appends tail, reopens: the tail must be gone, but
//  zeros alone are the preallocated tail and stay.
static void s_check_torn_tail (const char *tail, size_t tail_bytes)
{
    bool zeros = true;
    for (size_t i = 0; i < tail_bytes; i++)
        zeros = zeros && tail[i] == 0;
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    char *before = NULL, *after = NULL;
    size_t before_bytes, after_bytes;
    log_file_t *log = NULL;
    CHECK (s_write_log (scratch.data, 10) == 0);
    before = scratch_slurp (scratch.path, &before_bytes);
    CHECK (before);
    CHECK (s_spit (scratch.path, tail, tail_bytes, "ab") == 0);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    CHECK (log_file_last_seq (log) == 10 && log_file_bytes (log) == before_bytes);
    after = scratch_slurp (scratch.path, &after_bytes);
    CHECK (after && after_bytes == before_bytes + (zeros ? tail_bytes : 0) &&
           memcmp (before, after, before_bytes) == 0);
    CHECK (s_append (log, 11, 12, 100, true) == 0);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 12);
cleanup:
    free (before);
    free (after);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_torn_tail_without_newline_is_truncated (void)
{
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = s_line (11, TS_START_MS + 4, line, sizeof line);
    s_check_torn_tail (line, bytes / 2);
    s_check_torn_tail (line, bytes); // complete but never terminated
}

//  A crash can leave the file longer than what was written, the rest NUL;
//  zeros alone are what preallocation leaves, and are kept.
static void test_nul_padded_tail_is_truncated (void)
{
    char tail[3 * EVENT_LINE_BYTES_MAX];
    memset (tail, 0, sizeof tail);
    s_check_torn_tail (tail, 100);
    s_check_torn_tail (tail, sizeof tail); // past a line's worth of bytes
    size_t bytes = s_line (11, TS_START_MS + 4, tail, sizeof tail);
    memset (tail + bytes / 2, 0, 4096); // half a line, then the NUL blocks
    s_check_torn_tail (tail, bytes / 2 + 4096);
}

static void test_overlong_tail_without_newline_is_truncated (void)
{
    size_t bytes = 3 * EVENT_LINE_BYTES_MAX;
    char *junk = malloc (bytes);
    assert (junk);
    memset (junk, 'x', bytes);
    s_check_torn_tail (junk, bytes);
    free (junk);
}

//  Rewrites the file with content, opens it, expects a refusal naming
//  line and offset, and the file untouched.
static void s_check_refused (const char *content, size_t bytes, const char *expect_a,
                             const char *expect_b)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    char *after = NULL;
    size_t after_bytes;
    log_file_t *log = NULL;
    CHECK (s_write_log (scratch.data, 0) == 0);
    CHECK (s_spit (scratch.path, content, bytes, "wb") == 0);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    if (log || !strstr (error, expect_a) || !strstr (error, expect_b))
        fprintf (stderr, "    error: \"%s\", wanted \"%s\" and \"%s\"\n", error, expect_a,
                 expect_b);
    CHECK (log == NULL);
    CHECK (strstr (error, expect_a) && strstr (error, expect_b));
    after = scratch_slurp (scratch.path, &after_bytes);
    CHECK (after && after_bytes == bytes && memcmp (content, after, bytes) == 0);
cleanup:
    free (after);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  Lines for the given seqs and ts offsets, each with its \n.
static size_t s_lines (const int64_t *seqs, const int64_t *ts, size_t count, char *out,
                       size_t **offsets)
{
    static size_t starts[64];
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        starts[i] = bytes;
        bytes += s_line (seqs[i], TS_START_MS + ts[i], out + bytes, EVENT_LINE_BYTES_MAX);
        out[bytes++] = '\n';
    }
    *offsets = starts;
    return bytes;
}

static void test_middle_corruption_is_refused_and_file_unchanged (void)
{
    int64_t seqs[] = {1, 2, 3, 4, 5, 6}, ts[] = {0, 0, 0, 0, 0, 0};
    char content[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 6, content, &offsets);
    content[offsets[3] + 10] = '#';
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[3]);
    s_check_refused (content, bytes, "line 4 ", expect);
    bytes = s_lines (seqs, ts, 6, content, &offsets); // a blank line in the middle
    memmove (content + offsets[2] + 1, content + offsets[2], bytes - offsets[2]);
    content[offsets[2]] = '\n';
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[2]);
    s_check_refused (content, bytes + 1, "line 3 ", expect);
}

//  A complete line was written whole (its \n is there) and possibly
//  acknowledged: one flipped byte in it is corruption, not a torn tail.
//  (A flip that still spells a valid canonical event, inside an id say, is
//  for a checksum to notice, not for the scan.)
static void test_flipped_byte_in_last_complete_line_is_refused_not_truncated (void)
{
    int64_t seqs[] = {1, 2, 3, 4}, ts[] = {0, 0, 0, 0};
    char content[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 4, content, &offsets);
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[3]);
    size_t last_bytes = bytes - offsets[3];
    //  The brace, a quote, seq's digit (4 -> 5: a gap), the closing brace.
    const size_t flips[] = {0, 1, 7, last_bytes - 2};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        bytes = s_lines (seqs, ts, 4, content, &offsets);
        content[offsets[3] + flips[i]] ^= 0x01;
        s_check_refused (content, bytes, "line 4 ", expect);
    }
    bytes = s_lines (seqs, ts, 4, content, &offsets); // a blank last line
    content[bytes] = '\n';
    snprintf (expect, sizeof expect, "byte offset %zu", bytes);
    s_check_refused (content, bytes + 1, "line 5 ", expect);
}

//  The same events spelled otherwise (as a JSON tool re-serialising the
//  log would) are refused where the first such line starts.
static void test_non_canonical_lines_are_refused_naming_line_and_offset (void)
{
    int64_t seqs[] = {1, 2, 3}, ts[] = {0, 0, 0};
    char content[8192], other[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 3, content, &offsets);
    size_t second = offsets[1], third = offsets[2];
    snprintf (expect, sizeof expect, "byte offset %zu", second);
    //  CRLF line ends: the first line ends in \r\n, so line 1 is refused.
    memcpy (other, content, second - 1);
    memcpy (other + second - 1, "\r\n", 2);
    memcpy (other + second + 1, content + second, bytes - second);
    s_check_refused (other, bytes + 1, "line 1 ", "byte offset 0");
    //  json.dumps spacing in line 2.
    size_t at = 0;
    memcpy (other, content, second);
    at = second;
    for (size_t i = second; i < third; i++) {
        other[at++] = content[i];
        if (content[i] == ',' || content[i] == ':')
            other[at++] = ' ';
    }
    memcpy (other + at, content + third, bytes - third);
    s_check_refused (other, at + bytes - third, "line 2 ", expect);
    //  Keys of line 2 in another order: "id" before "seq".
    const char *line = content + second;
    const char *id = strstr (line, ",\"id\":");
    const char *type = strstr (line, ",\"type\":");
    CHECK (id && type && type < content + third);
    at = second;
    other[at++] = '{';
    memcpy (other + at, id + 1, (size_t)(type - id - 1));
    at += (size_t)(type - id - 1);
    other[at++] = ',';
    memcpy (other + at, line + 1, (size_t)(id - line - 1));
    at += (size_t)(id - line - 1);
    memcpy (other + at, type, (size_t)(content + third - type));
    at += (size_t)(content + third - type);
    memcpy (other + at, content + third, bytes - third);
    CHECK (at == third);
    CHECK (memcmp (other, content, bytes) != 0);
    s_check_refused (other, bytes, "line 2 ", expect);
    s_check_refused (other, bytes, "canonical", expect);
cleanup:;
}

static void test_overlong_last_complete_line_is_refused (void)
{
    int64_t seqs[] = {1}, ts[] = {0};
    size_t junk_bytes = EVENT_LINE_BYTES_MAX + 100;
    char *content = malloc (junk_bytes + 8192);
    assert (content);
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 1, content, &offsets);
    memset (content + bytes, 'x', junk_bytes);
    content[bytes + junk_bytes] = '\n';
    char expect[64];
    snprintf (expect, sizeof expect, "byte offset %zu", bytes);
    s_check_refused (content, bytes + junk_bytes + 1, "line 2 ", expect);
    free (content);
}

static void test_overlong_middle_line_is_refused (void)
{
    int64_t seqs[] = {1, 2}, ts[] = {0, 0};
    size_t junk_bytes = EVENT_LINE_BYTES_MAX + 100;
    char *content = malloc (junk_bytes + 8192);
    assert (content);
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 1, content, &offsets);
    memset (content + bytes, 'x', junk_bytes);
    content[bytes + junk_bytes] = '\n';
    size_t total = bytes + junk_bytes + 1;
    total += s_lines (seqs + 1, ts + 1, 1, content + total, &offsets);
    char expect[64];
    snprintf (expect, sizeof expect, "byte offset %zu", bytes);
    s_check_refused (content, total, "line 2 ", expect);
    free (content);
}

static void test_seq_gap_is_refused (void)
{
    int64_t seqs[] = {1, 2, 4, 5}, ts[] = {0, 0, 0, 0};
    char content[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 4, content, &offsets);
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[2]);
    s_check_refused (content, bytes, "line 3 ", expect);
    s_check_refused (content, bytes, "gap", "seq 4 where 3 was expected");
    int64_t late[] = {2, 3}; // a log must start at seq 1
    bytes = s_lines (late, ts, 2, content, &offsets);
    s_check_refused (content, bytes, "line 1 ", "seq 2 where 1 was expected");
}

static void test_seq_disorder_is_refused (void)
{
    int64_t seqs[] = {1, 2, 3, 2, 4}, ts[] = {0, 0, 0, 0, 0};
    char content[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 5, content, &offsets);
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[3]);
    s_check_refused (content, bytes, "line 4 ", expect);
    s_check_refused (content, bytes, "disorder", "seq 2 where 4 was expected");
}

static void test_ts_going_backwards_is_refused (void)
{
    int64_t seqs[] = {1, 2, 3, 4}, ts[] = {5, 7, 6, 8};
    char content[8192], expect[64];
    size_t *offsets;
    size_t bytes = s_lines (seqs, ts, 4, content, &offsets);
    snprintf (expect, sizeof expect, "byte offset %zu", offsets[2]);
    s_check_refused (content, bytes, "line 3 ", expect);
    s_check_refused (content, bytes, "ts goes backwards", "line 3 ");
}

//  An empty log bounds no ts (0 is not a floor): seq 1 may be older than
//  1970, appended or scanned.
static void test_first_event_may_be_from_before_1970 (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "", line[EVENT_LINE_BYTES_MAX];
    log_file_t *log =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    size_t bytes = s_line (1, -86400000, line, sizeof line);
    CHECK (log_file_append (log, line, bytes, 1, -86400000) == 0);
    CHECK (log_file_commit (log, false) == 0);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 1 && log_file_last_ts_ms (log) == -86400000);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_scan_callback_can_refuse_the_open (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    counter_t counter = {0, 1, 7, true};
    log_file_t *log = NULL;
    CHECK (s_write_log (scratch.data, 10) == 0);
    log = log_file_open (scratch.data, &s_plain, s_count, &counter, error, sizeof error);
    CHECK (log == NULL && strstr (error, "callback refused seq 7"));
    CHECK (counter.events == 7 && counter.lines_match);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_second_writer_is_refused (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    log_file_t *first =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    log_file_t *second = NULL;
    CHECK (first);
    second = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (second == NULL && strstr (error, "flock"));
cleanup:
    log_file_destroy (&first);
    log_file_destroy (&second);
    scratch_destroy (&scratch);
}

//  Checks one read against the file's own lines.
static int s_check_read (log_file_t *log, const char *file, const size_t *starts,
                         int64_t last, int64_t from, size_t max_events,
                         size_t buffer_size)
{
    char *buffer = malloc (buffer_size ? buffer_size : 1);
    assert (buffer);
    size_t bytes = 12345;
    int count = log_file_read (log, from, max_events, buffer, buffer_size, &bytes);
    int64_t first = from < 1 ? 1 : from;
    //  The expected answer: as many whole lines as fit both limits.
    int64_t expected = 0;
    while (first + expected <= last && (size_t)expected < max_events &&
           starts[first + expected + 1] - starts[first] <= buffer_size)
        expected++;
    int rc = 0;
    if (first <= last && max_events > 0 && expected == 0)
        rc = count == -1 ? 0 : -1; // the line at first does not fit
    else if (count != expected ||
             bytes != (expected ? starts[first + expected] - starts[first] : 0) ||
             (expected && memcmp (buffer, file + starts[first], bytes) != 0))
        rc = -1;
    if (rc)
        fprintf (stderr,
                 "    read from %lld max %zu buffer %zu: got %d (%zu bytes), want %lld\n",
                 (long long)from, max_events, buffer_size, count, bytes,
                 (long long)expected);
    free (buffer);
    return rc;
}

static void test_sparse_index_reads_from_any_seq (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    char *file = NULL;
    size_t *starts = NULL;
    log_file_t *log = NULL;
    const int64_t last = 3 * LOG_FILE_INDEX_STRIDE + 17;
    CHECK (s_write_log (scratch.data, last) == 0);
    size_t file_bytes;
    file = scratch_slurp (scratch.path, &file_bytes);
    CHECK (file);
    //  starts[seq] = offset of seq's line; starts[last + 1] = file size.
    starts = calloc ((size_t)last + 2, sizeof *starts);
    CHECK (starts);
    int64_t seq = 1;
    for (size_t i = 0; i < file_bytes; i++)
        if (i == 0 || file[i - 1] == '\n')
            starts[seq++] = i;
    starts[last + 1] = file_bytes;
    CHECK (seq == last + 1);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    for (int64_t from = -1; from <= last + 2; from++)
        CHECK (s_check_read (log, file, starts, last, from, 100000, 1 << 20) == 0);
    for (int64_t at = 1; at <= last; at++) {
        uint64_t offset = 0;
        CHECK (log_file_offset (log, at, &offset) == 0 && offset == starts[at]);
    }
    uint64_t offset;
    CHECK (log_file_offset (log, 0, &offset) == -1);
    CHECK (log_file_offset (log, last + 1, &offset) == -1);
    const int64_t froms[] = {1,
                             2,
                             LOG_FILE_INDEX_STRIDE - 1,
                             LOG_FILE_INDEX_STRIDE,
                             LOG_FILE_INDEX_STRIDE + 1,
                             2 * LOG_FILE_INDEX_STRIDE + 1,
                             3 * LOG_FILE_INDEX_STRIDE,
                             last - 1,
                             last,
                             last + 1};
    const size_t maxima[] = {0, 1, 2, 255, 256, 257, 100000};
    const size_t sizes[] = {0, 1, 50, 180, 181, 400, 1000, 5000, 100000};
    for (size_t f = 0; f < sizeof froms / sizeof froms[0]; f++)
        for (size_t m = 0; m < sizeof maxima / sizeof maxima[0]; m++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                CHECK (s_check_read (log, file, starts, last, froms[f], maxima[m],
                                     sizes[s]) == 0);
cleanup:
    free (file);
    free (starts);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_commit_failure_leaves_the_log_valid_and_usable (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "", buffer[1 << 16];
    struct rlimit saved, limited;
    bool limit_set = false;
    size_t bytes;
    log_file_t *log =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    CHECK (s_append (log, 1, 300, 300, true) == 0);
    uint64_t committed_bytes = log_file_bytes (log);
    signal (SIGXFSZ, SIG_IGN);
    CHECK (getrlimit (RLIMIT_FSIZE, &saved) == 0);
    limited = saved;
    limited.rlim_cur = committed_bytes + 1000; // room for a few lines, not 300
    CHECK (setrlimit (RLIMIT_FSIZE, &limited) == 0);
    limit_set = true;
    errno = 0;
    CHECK (s_append (log, 301, 600, 1000, true) == -1);
    CHECK (errno == EFBIG);
    CHECK (setrlimit (RLIMIT_FSIZE, &saved) == 0);
    limit_set = false;
    CHECK (log_file_bytes (log) == committed_bytes);
    CHECK (log_file_last_seq (log) == 300 && log_file_committed_seq (log) == 300);
    struct stat status;
    CHECK (stat (scratch.path, &status) == 0 &&
           (uint64_t)status.st_size == committed_bytes);
    CHECK (log_file_read (log, 300, 10, buffer, sizeof buffer, &bytes) == 1);
    CHECK (log_file_read (log, 301, 10, buffer, sizeof buffer, &bytes) == 0);
    CHECK (s_append (log, 301, 600, 100, true) == 0);
    CHECK (log_file_read (log, 257, 100, buffer, sizeof buffer, &bytes) == 100);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 600);
cleanup:
    if (limit_set)
        setrlimit (RLIMIT_FSIZE, &saved);
    signal (SIGXFSZ, SIG_DFL);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static double s_seconds (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

//  A benchmark (meson benchmark, `--bench`): timing is printed, never
//  asserted, as the machine is shared.
static void bench_open_scan_rate (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_log_file", true);
    char error[512] = "";
    const char *env = getenv ("LOG_FILE_BENCH_EVENTS");
    int64_t events = env ? atoll (env) : 200000;
    log_file_t *log =
        log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    CHECK (log);
    CHECK (s_append (log, 1, events, 10000, false) == 0);
    uint64_t bytes = log_file_bytes (log);
    log_file_destroy (&log);
    double start = s_seconds ();
    log = log_file_open (scratch.data, &s_plain, NULL, NULL, error, sizeof error);
    double seconds = s_seconds () - start;
    CHECK (log && log_file_last_seq (log) == events);
    printf (
        "     log_file_open: %lld events (%.0f MiB) scanned in %.3f s: %.2fM events/s\n",
        (long long)events, (double)bytes / 1048576.0, seconds,
        (double)events / seconds / 1e6);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

int main (int argc, char **argv)
{
    log_init ("test_log_file", LOG_WARN);
    if (check_bench_requested (argc, argv)) {
        RUN (bench_open_scan_rate);
        return check_exit_status ();
    }
    RUN (test_append_commit_reopen_keeps_every_event);
    RUN (test_uncommitted_appends_are_unread_and_dropped);
    RUN (test_torn_tail_without_newline_is_truncated);
    RUN (test_nul_padded_tail_is_truncated);
    RUN (test_flipped_byte_in_last_complete_line_is_refused_not_truncated);
    RUN (test_non_canonical_lines_are_refused_naming_line_and_offset);
    RUN (test_overlong_last_complete_line_is_refused);
    RUN (test_overlong_tail_without_newline_is_truncated);
    RUN (test_middle_corruption_is_refused_and_file_unchanged);
    RUN (test_overlong_middle_line_is_refused);
    RUN (test_seq_gap_is_refused);
    RUN (test_seq_disorder_is_refused);
    RUN (test_ts_going_backwards_is_refused);
    RUN (test_first_event_may_be_from_before_1970);
    RUN (test_scan_callback_can_refuse_the_open);
    RUN (test_second_writer_is_refused);
    RUN (test_sparse_index_reads_from_any_seq);
    RUN (test_commit_failure_leaves_the_log_valid_and_usable);
    return check_exit_status ();
}
