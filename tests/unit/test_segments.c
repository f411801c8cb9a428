/*  test_segments — claims about the log's segments: roll-over at
    segment_bytes, identical files for identical lines, reads across
    boundaries, the indexes, adoption of an earlier events.jsonl,
    preallocation, and the strict refusals (a missing, extra or changed
    segment or index). Every test works in its own mkdtemp directory.
*/
#include "chain.h"
#include "log.h"
#include "log_file.h"

#include <czmq.h>
#include <sodium.h>

#define CHECK_ON_FAILURE goto cleanup
#include "check.h"
#include "scratch.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TS_START_MS   1795332527000LL
#define SEGMENT_BYTES 4096 // the smallest: many rolls from few events

static const log_file_config_t s_small = {.segment_bytes = SEGMENT_BYTES};

static size_t s_line (int64_t seq, char *buffer, size_t size)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.ts_ms = TS_START_MS + seq / 3;
    event.type = EVENT_DEPOSITED;
    snprintf (event.id, sizeof event.id, "6f1c2d3e-0000-4000-8000-%012lld",
              (long long)seq);
    snprintf (event.account, sizeof event.account, "acct-%lld", (long long)(seq % 89));
    event.amount = 1 + seq % 100000;
    size_t bytes = event_format_stored (&event, buffer, size);
    assert (bytes > 0);
    return bytes;
}

//  Appends seqs from..to, committing every burst events.
static int s_append (log_file_t *log, int64_t from, int64_t to, int64_t burst)
{
    char line[EVENT_LINE_BYTES_MAX];
    for (int64_t seq = from; seq <= to; seq++) {
        size_t bytes = s_line (seq, line, sizeof line);
        if (log_file_append (log, line, bytes, seq, TS_START_MS + seq / 3))
            return -1;
        if ((seq - from + 1) % burst == 0 && log_file_commit (log, true))
            return -1;
    }
    return log_file_commit (log, true);
}

static int s_write (const char *data, const log_file_config_t *config, int64_t events,
                    int64_t burst)
{
    char error[512] = "";
    log_file_t *log = log_file_open (data, config, NULL, NULL, error, sizeof error);
    if (!log) {
        fprintf (stderr, "    open: %s\n", error);
        return -1;
    }
    int rc = s_append (log, 1, events, burst);
    log_file_destroy (&log);
    return rc;
}

static void s_path (const scratch_t *scratch, int64_t first_seq, const char *suffix,
                    char *path, size_t size)
{
    snprintf (path, size, "%s/%020lld%s", scratch->events, (long long)first_seq, suffix);
}

//  The first seqs of the segments, in order, into seqs; returns the count.
static size_t s_segments (const scratch_t *scratch, int64_t *seqs, size_t max)
{
    size_t count = 0;
    for (int64_t seq = 1; seq < 100000 && count < max; seq++) {
        char path[400];
        s_path (scratch, seq, ".jsonl", path, sizeof path);
        if (access (path, F_OK) == 0)
            seqs[count++] = seq;
    }
    return count;
}

static bool s_refused (const scratch_t *scratch, const log_file_config_t *config,
                       const char *expect_a, const char *expect_b)
{
    char error[512] = "";
    log_file_t *log =
        log_file_open (scratch->data, config, NULL, NULL, error, sizeof error);
    bool ok = !log && strstr (error, expect_a) && strstr (error, expect_b);
    if (!ok)
        fprintf (stderr, "    %s: \"%s\", wanted \"%s\" and \"%s\"\n",
                 log ? "opened" : "error", error, expect_a, expect_b);
    log_file_destroy (&log);
    return ok;
}

static void test_a_segment_rolls_once_it_holds_segment_bytes (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "";
    log_file_t *log = NULL;
    int64_t seqs[1000];
    CHECK (s_write (scratch.data, &s_small, 2000, 37) == 0);
    size_t count = s_segments (&scratch, seqs, 1000);
    CHECK (count > 10);
    for (size_t i = 0; i + 1 < count; i++) {
        char path[400], index[400];
        s_path (&scratch, seqs[i], ".jsonl", path, sizeof path);
        s_path (&scratch, seqs[i], ".idx", index, sizeof index);
        struct stat status;
        CHECK (stat (path, &status) == 0 && status.st_size >= SEGMENT_BYTES);
        CHECK (access (index, F_OK) == 0);
        //  Without its last line, it held less than segment_bytes.
        char line[EVENT_LINE_BYTES_MAX];
        size_t last = s_line (seqs[i + 1] - 1, line, sizeof line);
        CHECK ((size_t)status.st_size - last - 1 < SEGMENT_BYTES);
    }
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 2000);
    CHECK (log_file_segment_count (log) == count);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  The files depend on the lines and segment_bytes only, not on how the
//  appends were committed: a replica's segments are the stream's.
static void test_the_same_lines_make_the_same_segments_however_committed (void)
{
    scratch_t a, b;
    scratch_new (&a, "test_segments", false);
    scratch_new (&b, "test_segments", false);
    char *left = NULL, *right = NULL;
    int64_t seqs_a[1000], seqs_b[1000];
    CHECK (s_write (a.data, &s_small, 1500, 1) == 0);
    CHECK (s_write (b.data, &s_small, 1500, 500) == 0);
    size_t count = s_segments (&a, seqs_a, 1000);
    CHECK (count > 5 && s_segments (&b, seqs_b, 1000) == count);
    for (size_t i = 0; i < count; i++) {
        CHECK (seqs_a[i] == seqs_b[i]);
        const char *suffixes[] = {".jsonl", ".idx"};
        for (size_t s = 0; s < (i + 1 < count ? 2u : 1u); s++) {
            char path_a[400], path_b[400];
            size_t bytes_a, bytes_b;
            s_path (&a, seqs_a[i], suffixes[s], path_a, sizeof path_a);
            s_path (&b, seqs_b[i], suffixes[s], path_b, sizeof path_b);
            left = scratch_slurp (path_a, &bytes_a);
            right = scratch_slurp (path_b, &bytes_b);
            if (s == 0 && i + 1 == count) { // the open one: preallocated
                while (bytes_a && left[bytes_a - 1] == 0)
                    bytes_a--;
                while (bytes_b && right[bytes_b - 1] == 0)
                    bytes_b--;
            }
            CHECK (left && right && bytes_a == bytes_b &&
                   memcmp (left, right, bytes_a) == 0);
            free (left);
            free (right);
            left = right = NULL;
        }
    }
cleanup:
    free (left);
    free (right);
    scratch_destroy (&a);
    scratch_destroy (&b);
}

static void test_reads_cross_segment_boundaries_from_any_seq (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "";
    log_file_t *log = NULL;
    const int64_t last = 1200;
    char *buffer = malloc (1 << 20), expected[EVENT_LINE_BYTES_MAX + 1];
    CHECK (buffer);
    CHECK (s_write (scratch.data, &s_small, last, 50) == 0);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log);
    for (int64_t from = 1; from <= last; from++) {
        size_t bytes = 0;
        size_t max = (size_t)(from % 300) + 1;
        int count = log_file_read (log, from, max, buffer, 1 << 20, &bytes);
        int64_t want = from + (int64_t)max - 1 > last ? last - from + 1 : (int64_t)max;
        CHECK (count == want);
        size_t at = 0;
        for (int64_t seq = from; seq < from + count; seq++) {
            size_t line_bytes = s_line (seq, expected, sizeof expected);
            expected[line_bytes++] = '\n';
            CHECK (at + line_bytes <= bytes &&
                   memcmp (buffer + at, expected, line_bytes) == 0);
            at += line_bytes;
        }
        CHECK (at == bytes);
        uint64_t offset;
        char path[400];
        CHECK (log_file_locate (log, from, path, sizeof path, &offset) == 0);
        CHECK (strstr (path, "/events/") != NULL);
    }
    //  A small buffer gives a short batch at a boundary, never a split line.
    size_t bytes = 0;
    int count = log_file_read (log, 1, 1000, buffer, 300, &bytes);
    CHECK (count >= 1 && bytes <= 300 && buffer[bytes - 1] == '\n');
cleanup:
    free (buffer);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_an_earlier_events_jsonl_is_adopted_without_a_byte_rewritten (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "", legacy[400], first[400];
    char *before = NULL, *after = NULL;
    log_file_t *log = NULL;
    CHECK (s_write (scratch.data, &(log_file_config_t){.no_preallocate = true}, 300,
                    100) == 0);
    //  Shaped as an earlier version left it: one events.jsonl.
    snprintf (legacy, sizeof legacy, "%s/events.jsonl", scratch.data);
    s_path (&scratch, 1, ".jsonl", first, sizeof first);
    CHECK (rename (first, legacy) == 0 && rmdir (scratch.events) == 0);
    size_t before_bytes, after_bytes;
    before = scratch_slurp (legacy, &before_bytes);
    struct stat old_status, new_status;
    CHECK (before && stat (legacy, &old_status) == 0);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 300);
    CHECK (access (legacy, F_OK) != 0 && stat (first, &new_status) == 0);
    CHECK (new_status.st_ino == old_status.st_ino); // the same file, renamed
    after = scratch_slurp (first, &after_bytes);
    CHECK (after && after_bytes == before_bytes &&
           memcmp (before, after, before_bytes) == 0);
    //  Larger than segment_bytes: the next line starts the second segment.
    CHECK (s_append (log, 301, 310, 10) == 0);
    CHECK (log_file_segment_count (log) == 2);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 310);
cleanup:
    free (before);
    free (after);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_the_open_segment_is_preallocated_and_a_torn_line_in_its_zeros_goes (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "", path[400];
    log_file_t *log = NULL;
    CHECK (s_write (scratch.data, NULL, 100, 10) == 0);
    s_path (&scratch, 1, ".jsonl", path, sizeof path);
    struct stat status;
    log = log_file_open (scratch.data, NULL, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 100);
    uint64_t data_bytes = log_file_bytes (log);
    CHECK (stat (path, &status) == 0 && (uint64_t)status.st_size > data_bytes);
    log_file_destroy (&log);
    //  A cut write over the zeros: half a line, then zeros again.
    FILE *file = fopen (path, "r+b");
    CHECK (file);
    fseek (file, (long)data_bytes, SEEK_SET);
    fputs ("{\"seq\":101,\"id\":\"half", file);
    fclose (file);
    log = log_file_open (scratch.data, NULL, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 100 && log_file_bytes (log) == data_bytes);
    CHECK (s_append (log, 101, 120, 5) == 0);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, NULL, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 120);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  A roll cut short by a crash: the index written but not the next
//  segment, or the segment full without its index yet. Both open.
static void test_a_roll_cut_short_at_any_step_opens (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "", path[400];
    log_file_t *log = NULL;
    int64_t seqs[100];
    CHECK (s_write (scratch.data, &s_small, 400, 400) == 0);
    size_t count = s_segments (&scratch, seqs, 100);
    CHECK (count >= 3);
    //  The last roll's new segment never made it.
    s_path (&scratch, seqs[count - 1], ".jsonl", path, sizeof path);
    int64_t open_first = seqs[count - 1];
    CHECK (unlink (path) == 0);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == open_first - 1);
    CHECK (s_append (log, open_first, 400, 400) == 0);
    log_file_destroy (&log);
    //  The previous segment's index never made it (nor the next one).
    s_path (&scratch, seqs[count - 1], ".jsonl", path, sizeof path);
    CHECK (unlink (path) == 0);
    s_path (&scratch, seqs[count - 2], ".idx", path, sizeof path);
    CHECK (unlink (path) == 0);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == open_first - 1);
    CHECK (s_append (log, open_first, 400, 400) == 0);
    CHECK (log_file_segment_count (log) == count);
    log_file_destroy (&log);
    //  A leftover temporary index is removed.
    s_path (&scratch, seqs[0], ".idx.tmp", path, sizeof path);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fclose (file);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 400 && access (path, F_OK) != 0);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  Writes a fresh log of several segments; returns their first seqs.
static size_t s_fresh (scratch_t *scratch, int64_t *seqs)
{
    zdir_t *dir = zdir_new (scratch->data, NULL);
    if (dir)
        zdir_remove (dir, true);
    zdir_destroy (&dir);
    if (s_write (scratch->data, &s_small, 600, 600))
        return 0;
    return s_segments (scratch, seqs, 100);
}

static void test_a_missing_extra_or_changed_segment_or_index_refuses_naming_it (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char path[400], name[64];
    int64_t seqs[100];
    size_t count = s_fresh (&scratch, seqs);
    CHECK (count >= 4);
    //  A middle segment and its index gone: a gap.
    s_path (&scratch, seqs[1], ".jsonl", path, sizeof path);
    unlink (path);
    s_path (&scratch, seqs[1], ".idx", path, sizeof path);
    unlink (path);
    snprintf (name, sizeof name, "%020lld.jsonl", (long long)seqs[2]);
    CHECK (s_refused (&scratch, &s_small, name, "missing or extra segment"));
    //  The first segment gone.
    count = s_fresh (&scratch, seqs);
    s_path (&scratch, 1, ".jsonl", path, sizeof path);
    unlink (path);
    s_path (&scratch, 1, ".idx", path, sizeof path);
    unlink (path);
    CHECK (s_refused (&scratch, &s_small, "does not start at seq 1", "missing segment"));
    //  A sealed segment's index gone.
    count = s_fresh (&scratch, seqs);
    s_path (&scratch, seqs[1], ".idx", path, sizeof path);
    unlink (path);
    snprintf (name, sizeof name, "%020lld.jsonl", (long long)seqs[1]);
    CHECK (s_refused (&scratch, &s_small, name, "without its index"));
    //  An index without its segment.
    count = s_fresh (&scratch, seqs);
    s_path (&scratch, seqs[1], ".jsonl", path, sizeof path);
    unlink (path);
    snprintf (name, sizeof name, "%020lld.idx", (long long)seqs[1]);
    CHECK (s_refused (&scratch, &s_small, name, "without its segment"));
    //  An extra segment past the open one, and a stray name.
    count = s_fresh (&scratch, seqs);
    s_path (&scratch, 99999, ".jsonl", path, sizeof path);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fclose (file);
    CHECK (s_refused (&scratch, &s_small, "00000000000000099999.jsonl",
                      "without its index"));
    unlink (path);
    snprintf (path, sizeof path, "%s/events-old.jsonl", scratch.events);
    file = fopen (path, "w");
    CHECK (file);
    fclose (file);
    CHECK (s_refused (&scratch, &s_small, "events-old.jsonl", "an extra file"));
    unlink (path);
    //  A sealed segment cut short, or grown: its size disagrees.
    s_path (&scratch, seqs[1], ".jsonl", path, sizeof path);
    CHECK (truncate (path, 100) == 0);
    snprintf (name, sizeof name, "%020lld.jsonl", (long long)seqs[1]);
    CHECK (s_refused (&scratch, &s_small, name, "where its index says"));
    //  An index whose last seq is not the segment's.
    count = s_fresh (&scratch, seqs);
    s_path (&scratch, seqs[1], ".idx", path, sizeof path);
    size_t bytes;
    char *text = scratch_slurp (path, &bytes);
    CHECK (text);
    char *field = strstr (text, "\"last_ts\":");
    CHECK (field);
    field[10] = field[10] == '1' ? '2' : '1';
    file = fopen (path, "wb");
    CHECK (file);
    fwrite (text, 1, bytes, file);
    fclose (file);
    free (text);
    CHECK (s_refused (&scratch, &s_small, name, "the last line is not seq"));
cleanup:
    scratch_destroy (&scratch);
}

//  A flipped byte that still spells a canonical line (inside an id) is
//  for the checksum: a normal start does not read sealed lines, --verify
//  does and refuses.
static void test_verify_reads_every_sealed_line_and_its_checksum (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "", path[400];
    log_file_t *log = NULL;
    int64_t seqs[100];
    size_t count = s_fresh (&scratch, seqs);
    CHECK (count >= 3);
    s_path (&scratch, seqs[1], ".jsonl", path, sizeof path);
    size_t bytes;
    char *text = scratch_slurp (path, &bytes);
    CHECK (text);
    char *id = strstr (text + 200, "-8000-");
    CHECK (id);
    id[6] = id[6] == '0' ? '1' : '0';
    FILE *file = fopen (path, "r+b");
    CHECK (file);
    fwrite (text, 1, bytes, file);
    fclose (file);
    free (text);
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 600);
    log_file_destroy (&log);
    log_file_config_t verify = s_small;
    verify.verify = true;
    char name[64];
    snprintf (name, sizeof name, "%020lld.jsonl", (long long)seqs[1]);
    CHECK (s_refused (&scratch, &verify, name, "checksum"));
    //  And an untouched log passes --verify.
    count = s_fresh (&scratch, seqs);
    log = log_file_open (scratch.data, &verify, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_last_seq (log) == 600);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  An index of version 1 (BLAKE2b-256 in "blake2b", what the previous
//  version wrote) is read, and --verify checks its segment against it.
static void test_a_version_1_index_with_blake2b_still_verifies (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "", path[400], index[400];
    log_file_t *log = NULL;
    char *text = NULL, *old = NULL;
    int64_t seqs[100];
    size_t count = s_fresh (&scratch, seqs);
    CHECK (count >= 3);
    s_path (&scratch, seqs[1], ".jsonl", path, sizeof path);
    s_path (&scratch, seqs[1], ".idx", index, sizeof index);
    size_t bytes, index_bytes;
    text = scratch_slurp (path, &bytes);
    old = scratch_slurp (index, &index_bytes);
    CHECK (text && old);
    unsigned char hash[crypto_generichash_BYTES];
    crypto_generichash (hash, sizeof hash, (const unsigned char *)text, bytes, NULL, 0);
    char hex[2 * crypto_generichash_BYTES + 1];
    sodium_bin2hex (hex, sizeof hex, hash, sizeof hash);
    char *crc = strstr (old, "\"crc32c\":\"");
    CHECK (strncmp (old, "{\"version\":2,", 13) == 0 && crc);
    FILE *file = fopen (index, "wb");
    CHECK (file);
    fprintf (file, "{\"version\":1,%.*s\"blake2b\":\"%s\"%s", (int)(crc - old - 13),
             old + 13, hex, crc + strlen ("\"crc32c\":\"01234567\""));
    fclose (file);
    log_file_config_t verify = s_small;
    verify.verify = true;
    log = log_file_open (scratch.data, &verify, NULL, NULL, error, sizeof error);
    if (!log)
        fprintf (stderr, "    %s\n", error);
    CHECK (log && log_file_last_seq (log) == 600);
    log_file_destroy (&log);
    char *id = strstr (text + 200, "-8000-"); // a digit of an id: still canonical
    CHECK (id);
    id[6] = id[6] == '0' ? '1' : '0';
    file = fopen (path, "r+b");
    CHECK (file);
    fwrite (text, 1, bytes, file);
    fclose (file);
    char name[64];
    snprintf (name, sizeof name, "%020lld.jsonl", (long long)seqs[1]);
    CHECK (s_refused (&scratch, &verify, name, "checksum"));
cleanup:
    free (text);
    free (old);
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

typedef struct {
    int64_t events;
    int64_t first;
} counter_t;

static int s_count (void *arg, const event_t *event, const char *line, size_t bytes)
{
    counter_t *counter = arg;
    if (counter->events++ == 0)
        counter->first = event->seq;
    return 0;
}

static void test_the_scan_starts_at_scan_from_seq_across_segments (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "";
    log_file_t *log = NULL;
    int64_t seqs[100];
    CHECK (s_fresh (&scratch, seqs) >= 3);
    counter_t all = {0}, tail = {0};
    log = log_file_open (scratch.data, &s_small, s_count, &all, error, sizeof error);
    CHECK (log && all.events == 600 && all.first == 1);
    log_file_destroy (&log);
    log_file_config_t from = s_small;
    from.scan_from_seq = 450;
    log = log_file_open (scratch.data, &from, s_count, &tail, error, sizeof error);
    CHECK (log && tail.events == 151 && tail.first == 450);
    log_file_destroy (&log);
    //  The last N at least, counted back from the open segment: whole
    //  segments before it are not read.
    counter_t last = {0}, again = {0};
    log_file_config_t window = s_small;
    window.scan_from_seq = INT64_MAX;
    window.scan_tail_events = 100;
    log = log_file_open (scratch.data, &window, s_count, &last, error, sizeof error);
    CHECK (log && last.first > 1 && last.first <= 600 - 100 + 1 &&
           last.events == 600 - last.first + 1);
    //  And log_file_scan from any seq, across boundaries.
    CHECK (log_file_scan (log, 333, s_count, &again, error, sizeof error) == 0);
    CHECK (again.events == 600 - 333 + 1 && again.first == 333);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

//  The chain over seqs 1..last as s_line writes them.
static void s_chain_upto (int64_t last, uint8_t chain[CHAIN_BYTES])
{
    char line[EVENT_LINE_BYTES_MAX];
    memset (chain, 0, CHAIN_BYTES);
    for (int64_t seq = 1; seq <= last; seq++) {
        size_t bytes = s_line (seq, line, sizeof line);
        chain_next (chain, line, bytes, chain);
    }
}

//  The "chain" of the index of the segment at first_seq: 0 with its
//  bytes, 1 if it says null, -1 if unreadable.
static int s_index_chain (const scratch_t *scratch, int64_t first_seq,
                          uint8_t chain[CHAIN_BYTES], int64_t *last_seq)
{
    char path[400];
    s_path (scratch, first_seq, ".idx", path, sizeof path);
    size_t bytes = 0;
    char *text = scratch_slurp (path, &bytes);
    if (!text)
        return -1;
    text[bytes] = 0;
    const char *last = strstr (text, "\"last_seq\":");
    const char *at = strstr (text, "\"chain\":");
    int rc = -1;
    if (last && at) {
        *last_seq = atoll (last + 11);
        at += 8;
        rc = strncmp (at, "null", 4) == 0                            ? 1
             : chain_from_hex (at + 1, CHAIN_HEX_BYTES, chain, CHAIN_BYTES) ? -1
                                                                      : 0;
    }
    free (text);
    return rc;
}

static void test_sealed_indexes_name_the_chain_at_their_end (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    log_file_t *log = NULL;
    int64_t seqs[64];
    CHECK (s_write (scratch.data, &s_small, 300, 7) == 0);
    size_t count = s_segments (&scratch, seqs, 64);
    CHECK (count > 3);
    for (size_t i = 0; i + 1 < count; i++) {
        uint8_t named[CHAIN_BYTES], expected[CHAIN_BYTES];
        int64_t last_seq = 0;
        CHECK_EQ_INT (s_index_chain (&scratch, seqs[i], named, &last_seq), 0);
        s_chain_upto (last_seq, expected);
        CHECK (memcmp (named, expected, CHAIN_BYTES) == 0);
    }
    char error[512] = "";
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log);
    uint8_t all[CHAIN_BYTES];
    s_chain_upto (300, all);
    CHECK (memcmp (log_file_committed_chain (log), all, CHAIN_BYTES) == 0);
    CHECK (memcmp (log_file_chain (log), all, CHAIN_BYTES) == 0);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_an_index_from_before_chains_gets_its_chain_at_the_next_open (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    log_file_t *log = NULL;
    int64_t seqs[64];
    CHECK (s_write (scratch.data, &s_small, 200, 5) == 0);
    size_t count = s_segments (&scratch, seqs, 64);
    CHECK (count > 2);
    //  Every index as the segments version wrote it: "chain":null.
    for (size_t i = 0; i + 1 < count; i++) {
        char path[400];
        s_path (&scratch, seqs[i], ".idx", path, sizeof path);
        size_t bytes = 0;
        char *text = scratch_slurp (path, &bytes);
        CHECK (text);
        text[bytes] = 0;
        char *at = strstr (text, "\"chain\":\"");
        CHECK (at);
        FILE *file = fopen (path, "wb");
        CHECK (file);
        fprintf (file, "%.*s\"chain\":null%s", (int)(at - text), text,
                 at + 8 + CHAIN_HEX_BYTES + 2);
        fclose (file);
        uint8_t named[CHAIN_BYTES];
        int64_t last_seq = 0;
        free (text);
        CHECK_EQ_INT (s_index_chain (&scratch, seqs[i], named, &last_seq), 1);
    }
    char error[512] = "";
    log = log_file_open (scratch.data, &s_small, NULL, NULL, error, sizeof error);
    CHECK (log);
    for (size_t i = 0; i + 1 < count; i++) {
        uint8_t named[CHAIN_BYTES], expected[CHAIN_BYTES];
        int64_t last_seq = 0;
        CHECK_EQ_INT (s_index_chain (&scratch, seqs[i], named, &last_seq), 0);
        s_chain_upto (last_seq, expected);
        CHECK (memcmp (named, expected, CHAIN_BYTES) == 0);
    }
    uint8_t all[CHAIN_BYTES];
    s_chain_upto (200, all);
    CHECK (memcmp (log_file_committed_chain (log), all, CHAIN_BYTES) == 0);
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

static void test_a_line_whose_chain_key_does_not_follow_is_refused_naming_its_seq (void)
{
    scratch_t scratch;
    scratch_new (&scratch, "test_segments", false);
    char error[512] = "";
    log_file_t *log = log_file_open (scratch.data, NULL, NULL, NULL, error, sizeof error);
    CHECK (log);
    char line[EVENT_LINE_BYTES_MAX];
    for (int64_t seq = 1; seq <= 20; seq++) {
        uint8_t chain[CHAIN_BYTES];
        size_t bytes = s_line (seq, line, sizeof line);
        bytes = chain_seal (log_file_chain (log), line, bytes, sizeof line, chain);
        CHECK (log_file_append_chained (log, line, bytes, seq, TS_START_MS + seq / 3,
                                        chain) == 0);
    }
    //  A key that names another chain is refused at append too.
    size_t bytes = s_line (21, line, sizeof line);
    uint8_t wrong[CHAIN_BYTES] = {1}, unused[CHAIN_BYTES];
    bytes = chain_seal (wrong, line, bytes, sizeof line, unused);
    CHECK (log_file_append (log, line, bytes, 21, TS_START_MS + 7) == -1);
    CHECK (log_file_commit (log, true) == 0);
    log_file_destroy (&log);
    log = log_file_open (scratch.data, NULL, NULL, NULL, error, sizeof error);
    CHECK (log && log_file_committed_seq (log) == 20);
    log_file_destroy (&log);
    //  One hex digit of seq 13's key changed: refused there, the file untouched.
    char path[400];
    s_path (&scratch, 1, ".jsonl", path, sizeof path);
    size_t file_bytes = 0;
    char *data = scratch_slurp (path, &file_bytes);
    CHECK (data);
    data[file_bytes] = 0;
    char *at = strstr (data, "{\"seq\":13,");
    CHECK (at);
    char *key = strstr (at, "\"chain\":\"") + 9;
    *key = *key == '0' ? '1' : '0';
    FILE *file = fopen (path, "r+b");
    CHECK (file);
    fwrite (data, 1, file_bytes, file);
    fclose (file);
    free (data);
    CHECK (s_refused (&scratch, NULL, "seq 13", "chain does not follow"));
cleanup:
    log_file_destroy (&log);
    scratch_destroy (&scratch);
}

int main (void)
{
    RUN (test_a_version_1_index_with_blake2b_still_verifies);
    log_init ("test_segments", LOG_ERROR);
    RUN (test_a_segment_rolls_once_it_holds_segment_bytes);
    RUN (test_the_same_lines_make_the_same_segments_however_committed);
    RUN (test_reads_cross_segment_boundaries_from_any_seq);
    RUN (test_an_earlier_events_jsonl_is_adopted_without_a_byte_rewritten);
    RUN (test_the_open_segment_is_preallocated_and_a_torn_line_in_its_zeros_goes);
    RUN (test_a_roll_cut_short_at_any_step_opens);
    RUN (test_a_missing_extra_or_changed_segment_or_index_refuses_naming_it);
    RUN (test_verify_reads_every_sealed_line_and_its_checksum);
    RUN (test_the_scan_starts_at_scan_from_seq_across_segments);
    RUN (test_sealed_indexes_name_the_chain_at_their_end);
    RUN (test_an_index_from_before_chains_gets_its_chain_at_the_next_open);
    RUN (test_a_line_whose_chain_key_does_not_follow_is_refused_naming_its_seq);
    return check_exit_status ();
}
