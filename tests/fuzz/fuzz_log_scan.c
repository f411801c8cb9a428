/*  fuzz_log_scan — log_file_open on an arbitrary events.jsonl.

    The input is the whole file. Claims, from log_file.h:
    - opening never crashes: it recovers (truncates a torn tail) or refuses;
    - a refused file is left untouched, with a reason;
    - the scan callback sees every kept line once, in order, seq 1..N,
      ts never decreasing, each line canonical and the event it was parsed
      from;
    - only a tail without a \n of its own is dropped;
    - after opening, the file is exactly the kept lines (and the zeros
      after them if nothing else followed: a preallocated tail), and
      log_file_read returns those bytes from any seq;
    - a line appended and committed after recovery reads back, and the
      file reopens with it.
    One temporary directory is made per process and removed at exit.
*/
#include "fuzz_common.h"
#include "fuzz_log_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "log_file.h"

#include <czmq.h>

#define FUZZ_LOG_INPUT_BYTES_MAX (64 * 1024)     // many lines; still thousands of runs/s
#define FUZZ_LOG_BASE_TS_MS      1700000000000LL // ts of the appended line in an empty log
#define FUZZ_LOG_ABORT_ID        "abort-scan" // an event with this id makes the scan fail

static const log_file_config_t s_fuzz_log = {.no_preallocate =
                                                 true}; // the file is the log
static fuzz_log_dir_t s_files;

typedef struct {
    const uint8_t *data; // the file as written
    size_t size;
    size_t offset; // where the next line must start
    int64_t count; // events seen
    int64_t last_ts_ms;
    bool aborted; // the callback refused on purpose
} scan_state_t;

static void s_cleanup (void)
{
    fuzz_log_dir_remove (&s_files);
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    // Recovery warnings on every input would drown the fuzzer's own output
    log_init ("fuzz_log_scan", LOG_ERROR);
    fuzz_log_dir_make (&s_files, "fuzz_log_scan");
    atexit (s_cleanup);
    return 0;
}

static int s_scan (void *arg, const event_t *event, const char *line, size_t line_bytes)
{
    scan_state_t *state = arg;
    fuzz_check (event->seq == state->count + 1, "seq %lld after %lld",
                (long long)event->seq, (long long)state->count);
    fuzz_check (state->count == 0 || event->ts_ms >= state->last_ts_ms,
                "ts went backwards at seq %lld",
                (long long)event->seq);
    fuzz_check (line_bytes > 0 && !memchr (line, '\n', line_bytes), "line %zu bytes",
                line_bytes);
    fuzz_check (state->offset + line_bytes < state->size &&
                    memcmp (line, state->data + state->offset, line_bytes) == 0 &&
                    state->data[state->offset + line_bytes] == '\n',
                "seq %lld is not the line at offset %zu", (long long)event->seq,
                state->offset);
    event_t parsed;
    event_init (&parsed);
    char error[FUZZ_ERROR_BYTES];
    fuzz_check (event_parse_canonical (line, line_bytes, &parsed, error, sizeof error) ==
                    0,
                "scan passed a line that is not canonical: %s", error);
    const char *field = event_difference (event, &parsed);
    fuzz_check (field == NULL, "scan event differs from its line in %s", field);

    state->count++;
    state->offset += line_bytes + 1;
    state->last_ts_ms = event->ts_ms;
    if (strcmp (event->id, FUZZ_LOG_ABORT_ID) == 0) {
        state->aborted = true;
        return -1;
    }
    return 0;
}

static void s_write_file (const uint8_t *data, size_t size)
{
    int fd = open (s_files.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fuzz_check (fd >= 0, "open %s: %s", s_files.path, strerror (errno));
    fuzz_check (write (fd, data, size) == (ssize_t)size, "write: %s", strerror (errno));
    close (fd);
}

//  The file's bytes now (caller frees), with the size in *size_out.
static uint8_t *s_read_file (size_t *size_out)
{
    int fd = open (s_files.path, O_RDONLY);
    fuzz_check (fd >= 0, "open %s: %s", s_files.path, strerror (errno));
    struct stat status;
    fuzz_check (fstat (fd, &status) == 0, "fstat: %s", strerror (errno));
    size_t size = (size_t)status.st_size;
    uint8_t *bytes = malloc (size + 1);
    fuzz_check (bytes, "out of memory");
    fuzz_check (pread (fd, bytes, size, 0) == (ssize_t)size, "pread: %s",
                strerror (errno));
    close (fd);
    *size_out = size;
    return bytes;
}

//  Offset of the line holding seq (1-based) within the kept bytes, which
//  are whole lines.
static size_t s_line_offset (const uint8_t *data, size_t kept, int64_t seq)
{
    size_t offset = 0;
    for (int64_t line = 1; line < seq; line++) {
        const uint8_t *end = memchr (data + offset, '\n', kept - offset);
        fuzz_check (end, "kept bytes hold fewer than %lld lines", (long long)seq);
        offset = (size_t)(end - data) + 1;
    }
    return offset;
}

//  log_file_read from seq must give exactly the kept bytes from that line on.
static void s_check_read (log_file_t *log, const uint8_t *data, int64_t count,
                          int64_t from_seq)
{
    size_t kept = (size_t)log_file_bytes (log);
    char *buffer = malloc (kept + 1);
    fuzz_check (buffer, "out of memory");
    size_t bytes = 0;
    int events =
        log_file_read (log, from_seq, (size_t)count + 1, buffer, kept + 1, &bytes);
    int64_t expected = from_seq > count ? 0 : count - from_seq + 1;
    fuzz_check (events == expected, "read from %lld gave %d events, not %lld",
                (long long)from_seq, events, (long long)expected);
    size_t offset = expected ? s_line_offset (data, kept, from_seq) : kept;
    fuzz_check (bytes == kept - offset && memcmp (buffer, data + offset, bytes) == 0,
                "read from %lld gave other bytes", (long long)from_seq);
    if (expected > 0) {
        int one = log_file_read (log, from_seq, 1, buffer, kept + 1, &bytes);
        fuzz_check (one == 1 && bytes > 0 && buffer[bytes - 1] == '\n' &&
                        memcmp (buffer, data + offset, bytes) == 0,
                    "read of one event from %lld", (long long)from_seq);
        fuzz_check (log_file_read (log, from_seq, 1, buffer, 1, &bytes) == -1,
                    "a line larger than the buffer was not refused");
    }
    free (buffer);
}

//  Appends the next event, commits without fsync, reads it back.
static void s_check_append (log_file_t *log, int64_t count)
{
    event_t event;
    event_init (&event);
    event.seq = count + 1;
    int64_t last_ts_ms = log_file_last_ts_ms (log);
    event.ts_ms = last_ts_ms > FUZZ_LOG_BASE_TS_MS ? last_ts_ms : FUZZ_LOG_BASE_TS_MS;
    event.type = EVENT_DEPOSITED;
    snprintf (event.type_name, sizeof event.type_name, "%s",
              event_type_name (event.type));
    snprintf (event.id, sizeof event.id, "fuzz-append");
    snprintf (event.account, sizeof event.account, "fuzz");
    event.amount = 1;
    char line[EVENT_LINE_BYTES_MAX];
    size_t line_bytes = event_format_stored (&event, line, sizeof line);
    fuzz_check (line_bytes > 0, "format of the appended event");
    fuzz_check (log_file_append (log, line, line_bytes, event.seq, event.ts_ms) == 0,
                "append");
    fuzz_check (log_file_commit (log, false) == 0, "commit: %s", strerror (errno));
    fuzz_check (log_file_committed_seq (log) == event.seq, "committed seq");

    char buffer[EVENT_LINE_BYTES_MAX + 1];
    size_t bytes = 0;
    int events = log_file_read (log, event.seq, 1, buffer, sizeof buffer, &bytes);
    fuzz_check (events == 1 && bytes == line_bytes + 1 &&
                    memcmp (buffer, line, line_bytes) == 0,
                "appended line reads back as %d events, %zu bytes", events, bytes);
}

static void s_check_reopens (int64_t last_seq)
{
    char error[FUZZ_ERROR_BYTES];
    log_file_t *log =
        log_file_open (s_files.dir, &s_fuzz_log, NULL, NULL, error, sizeof error);
    fuzz_check (log, "a log written by log_file does not reopen: %s", error);
    fuzz_check (log_file_last_seq (log) == last_seq, "reopened at %lld, not %lld",
                (long long)log_file_last_seq (log), (long long)last_seq);
    log_file_destroy (&log);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > FUZZ_LOG_INPUT_BYTES_MAX)
        return 0;
    s_write_file (data, size);
    scan_state_t state = {.data = data, .size = size};
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    log_file_t *log =
        log_file_open (s_files.dir, &s_fuzz_log, s_scan, &state, error, sizeof error);
    if (!log) {
        fuzz_check (memchr (error, '\0', sizeof error) && error[0],
                    "refused without a reason");
        size_t now_size;
        uint8_t *now = s_read_file (&now_size);
        fuzz_check (state.aborted || (now_size == size && memcmp (now, data, size) == 0),
                    "a refused file was changed (%zu -> %zu bytes): %s", size, now_size,
                    error);
        free (now);
        return 0;
    }
    fuzz_check (!state.aborted, "open succeeded although the scan callback refused");
    int64_t count = state.count;
    fuzz_check (log_file_last_seq (log) == count && log_file_committed_seq (log) == count,
                "last seq %lld after %lld events", (long long)log_file_last_seq (log),
                (long long)count);
    fuzz_check (log_file_bytes (log) == state.offset, "%llu bytes kept, lines end at %zu",
                (unsigned long long)log_file_bytes (log), state.offset);
    fuzz_check (log_file_last_ts_ms (log) == (count ? state.last_ts_ms : 0), "last ts");
    //  Only a tail without a \n of its own is torn: a complete line is kept
    //  or refused, never dropped.
    fuzz_check (!memchr (data + state.offset, '\n', size - state.offset),
                "a complete line was dropped as a torn tail at offset %zu", state.offset);
    //  Zeros alone after the kept lines are a preallocated tail: they stay.
    bool zeros = true;
    for (size_t i = state.offset; i < size && zeros; i++)
        zeros = data[i] == 0;
    size_t expected = zeros ? size : state.offset;
    size_t now_size;
    uint8_t *now = s_read_file (&now_size);
    fuzz_check (now_size == expected && memcmp (now, data, now_size) == 0,
                "file after recovery is not the kept lines (%zu bytes, expected %zu)",
                now_size, expected);
    free (now);

    if (count > 0) {
        s_check_read (log, data, count, 1);
        s_check_read (log, data, count, count / 2 + 1);
        s_check_read (log, data, count, count);
    }
    s_check_read (log, data, count, count + 1);
    s_check_append (log, count);
    log_file_destroy (&log);
    fuzz_check (log == NULL, "destroy did not null the pointer");
    s_check_reopens (count + 1);
    return 0;
}
