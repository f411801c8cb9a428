/*  fuzz_stream_replay — the stream's catch-up endpoint (replay.h) behind
    a real ROUTER, asked by a DEALER.

    The input is a list of requests, framed as in fuzz_stream_ingest: per
    message one byte of frame count, then per frame a 2-byte big-endian
    length and its bytes. They go to replay_handle over a fixed log of
    FUZZ_REPLAY_EVENTS valid events, written once per process. Claims,
    from replay.h and DESIGN.md:
    - every request gets exactly one reply, in order; a request that starts
      with an empty frame (a REQ's delimiter) gets it back first;
    - ["FETCH", from_seq, max_events] with decimal numbers >= 1 gets
      ["BATCH", committed_seq, line...]: exactly the log's lines from
      from_seq on, at most max_events (and REPLAY_BATCH_EVENTS_MAX) of them,
      none past the end; replay_read gives the same lines;
    - the same with a fourth frame "packed" gets ["PACKED", committed_seq,
      lines]: the same lines in one frame, each ending in \n; and with a
      fifth frame "identity" after it, the id of seq 1 as a fourth frame;
    - anything else (another command, a missing, empty, signed, zero or
      non-decimal number, another fourth or fifth frame, a sixth frame,
      a LOOKUP where none is served) gets
      ["ERROR", message]; numbers
      of more digits than any seq may be refused too, but if they are
      answered, the answer is right.
*/
#include "fuzz_common.h"
#include "fuzz_log_dir.h"
#include "fuzz_frames.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#include "log.h"
#include "log_file.h"
#include "replay.h"

#define FUZZ_REPLAY_EVENTS      600 // crosses the log's read index (stride 256) twice
#define FUZZ_REPLAY_DIGITS_SURE 18  // numbers this long must be read as numbers
#define FUZZ_REPLAY_NUMBER_CAP  1000000000000000000LL // beyond any seq or count
#define FUZZ_REPLAY_BASE_TS_MS  1700000000000LL

static const log_file_config_t s_fuzz_log = {.no_preallocate =
                                                 true}; // the file is the log
static struct {
    zsock_t *router, *dealer;
    log_file_t *log;
    replay_t *replay;
    char *lines[FUZZ_REPLAY_EVENTS + 1]; // lines[seq], without \n
    fuzz_log_dir_t files;
} s_fuzz;

static void s_cleanup (void)
{
    replay_destroy (&s_fuzz.replay);
    log_file_destroy (&s_fuzz.log);
    zsock_destroy (&s_fuzz.dealer);
    zsock_destroy (&s_fuzz.router);
    for (size_t seq = 1; seq <= FUZZ_REPLAY_EVENTS; seq++)
        free (s_fuzz.lines[seq]);
    fuzz_log_dir_remove (&s_fuzz.files);
}

//  Event seq: deposits, withdrawals and transfers with meta now and then,
//  so lines differ in length.
static void s_make_event (int64_t seq, event_t *event)
{
    event_init (event);
    event->seq = seq;
    event->ts_ms = FUZZ_REPLAY_BASE_TS_MS + seq * 7;
    event->type = (event_type_t)(EVENT_DEPOSITED + seq % 3);
    snprintf (event->type_name, sizeof event->type_name, "%s",
              event_type_name (event->type));
    snprintf (event->id, sizeof event->id, "event-%lld", (long long)seq);
    event->amount = seq * 1013;
    if (event->type == EVENT_TRANSFERRED) {
        snprintf (event->from, sizeof event->from, "account-%lld", (long long)seq % 11);
        snprintf (event->to, sizeof event->to, "account-%lld", (long long)seq % 11 + 11);
    } else
        snprintf (event->account, sizeof event->account, "account-%lld",
                  (long long)seq % 13);
    if (seq % 5 == 0)
        snprintf (event->reference, sizeof event->reference, "reference %lld",
                  (long long)seq * 99991);
}

static void s_write_log (void)
{
    char error[FUZZ_ERROR_BYTES];
    s_fuzz.log =
        log_file_open (s_fuzz.files.dir, &s_fuzz_log, NULL, NULL, error, sizeof error);
    fuzz_check (s_fuzz.log, "log_file_open: %s", error);
    for (int64_t seq = 1; seq <= FUZZ_REPLAY_EVENTS; seq++) {
        event_t event;
        s_make_event (seq, &event);
        char line[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&event, line, sizeof line);
        fuzz_check (bytes > 0, "format seq %lld", (long long)seq);
        fuzz_check (log_file_append (s_fuzz.log, line, bytes, seq, event.ts_ms) == 0,
                    "append");
        s_fuzz.lines[seq] = strdup (line);
        fuzz_check (s_fuzz.lines[seq], "out of memory");
    }
    fuzz_check (log_file_commit (s_fuzz.log, false) == 0, "commit: %s", strerror (errno));
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    log_init ("fuzz_stream_replay", LOG_ERROR);
    zsys_init ();
    zsys_set_linger (0);
    fuzz_log_dir_make (&s_fuzz.files, "fuzz_stream_replay");
    atexit (s_cleanup);
    s_write_log ();
    s_fuzz.replay = replay_new (s_fuzz.log);
    fuzz_check (s_fuzz.replay, "replay_new");
    s_fuzz.router = zsock_new_router ("inproc://fuzz-replay");
    s_fuzz.dealer = zsock_new_dealer ("inproc://fuzz-replay");
    fuzz_check (s_fuzz.router && s_fuzz.dealer, "sockets");
    zsock_set_sndhwm (s_fuzz.dealer, 0);
    zsock_set_rcvhwm (s_fuzz.dealer, 0);
    zsock_set_sndhwm (s_fuzz.router, 0);
    zsock_set_rcvhwm (s_fuzz.router, 0);
    return 0;
}

typedef enum { NUMBER_BAD, NUMBER_GOOD, NUMBER_LONG } number_kind_t;

//  A frame as a FETCH argument: bad (must be refused), good (must be
//  read, into *value), or long (all digits, beyond any seq: either).
static number_kind_t s_number (const message_t *message, size_t index, int64_t *value)
{
    if (index >= message->frame_count || message->frame_bytes[index] == 0)
        return NUMBER_BAD;
    const uint8_t *digits = message->frames[index];
    size_t bytes = message->frame_bytes[index];
    bool nonzero = false;
    *value = 0;
    for (size_t at = 0; at < bytes; at++) {
        if (digits[at] < '0' || digits[at] > '9')
            return NUMBER_BAD;
        nonzero = nonzero || digits[at] != '0';
        // Saturates: any seq or count this large means "past the end"
        if (*value < FUZZ_REPLAY_NUMBER_CAP / 10)
            *value = *value * 10 + (digits[at] - '0');
        else
            *value = FUZZ_REPLAY_NUMBER_CAP;
    }
    if (bytes > FUZZ_REPLAY_DIGITS_SURE)
        return nonzero ? NUMBER_LONG : NUMBER_BAD;
    return nonzero ? NUMBER_GOOD : NUMBER_BAD;
}

static void s_serve (void *arg)
{
    replay_handle (s_fuzz.replay, s_fuzz.router);
}

//  The next reply on the DEALER, answering requests while none is there.
static zmsg_t *s_next_reply (void)
{
    return fuzz_frames_next (s_fuzz.dealer, s_serve, NULL, "a reply");
}

static void s_check_error (zmsg_t *reply)
{
    fuzz_check (zmsg_size (reply) == 2, "ERROR of %zu frames", zmsg_size (reply));
    fuzz_check (zframe_streq (zmsg_first (reply), "ERROR"), "not an ERROR");
    fuzz_check (zframe_size (zmsg_next (reply)) > 0, "ERROR without a message");
}

//  The events a FETCH from from_seq for max_events must return.
static int64_t s_expected_count (int64_t from_seq, int64_t max_events)
{
    int64_t count = from_seq > FUZZ_REPLAY_EVENTS ? 0 : FUZZ_REPLAY_EVENTS - from_seq + 1;
    if (count > max_events)
        count = max_events;
    return count > REPLAY_BATCH_EVENTS_MAX ? REPLAY_BATCH_EVENTS_MAX : count;
}

//  The log's lines from from_seq on, count of them, each ending in \n: a
//  PACKED page, and what replay_read must give.
static void s_check_page (const char *what, const char *text, size_t bytes,
                          int64_t from_seq, int64_t count)
{
    for (int64_t seq = from_seq; seq < from_seq + count; seq++) {
        size_t line_bytes = strlen (s_fuzz.lines[seq]);
        fuzz_check (bytes > line_bytes &&
                        memcmp (text, s_fuzz.lines[seq], line_bytes) == 0 &&
                        text[line_bytes] == '\n',
                    "%s: line for seq %lld differs", what, (long long)seq);
        text += line_bytes + 1;
        bytes -= line_bytes + 1;
    }
    fuzz_check (bytes == 0, "%s: %zu bytes more", what, bytes);
}

static void s_check_batch (zmsg_t *reply, int64_t from_seq, int64_t max_events,
                           bool packed, bool identity)
{
    int64_t count = s_expected_count (from_seq, max_events);
    size_t frames = packed ? 3 + identity : (size_t)count + 2;
    fuzz_check (zmsg_size (reply) == frames,
                "reply of %zu frames from %lld max %lld, expected %lld events",
                zmsg_size (reply), (long long)from_seq, (long long)max_events,
                (long long)count);
    const char *command = packed ? "PACKED" : "BATCH";
    fuzz_check (zframe_streq (zmsg_first (reply), command), "not a %s", command);
    char head[32];
    snprintf (head, sizeof head, "%d", FUZZ_REPLAY_EVENTS);
    fuzz_check (zframe_streq (zmsg_next (reply), head), "committed seq is not %s", head);
    if (packed) {
        zframe_t *page = zmsg_next (reply);
        s_check_page ("PACKED", (const char *)zframe_data (page), zframe_size (page),
                      from_seq, count);
        if (identity)
            fuzz_check (zframe_streq (zmsg_next (reply), "event-1"),
                        "identity is not the id of seq 1");
    } else
        for (int64_t seq = from_seq; seq < from_seq + count; seq++) {
            zframe_t *line = zmsg_next (reply);
            size_t bytes = strlen (s_fuzz.lines[seq]);
            fuzz_check (zframe_size (line) == bytes &&
                            memcmp (zframe_data (line), s_fuzz.lines[seq], bytes) == 0,
                        "line for seq %lld differs", (long long)seq);
        }
    // The reader behind it gives the same lines, each with its \n
    const char *text = NULL;
    size_t bytes = 0;
    int read = replay_read (s_fuzz.replay, from_seq, (size_t)max_events, &text, &bytes);
    fuzz_check (read == count, "replay_read gave %d events, not %lld", read,
                (long long)count);
    s_check_page ("replay_read", text, bytes, from_seq, count);
}

static void s_check_reply (const message_t *message)
{
    zmsg_t *reply = s_next_reply ();
    size_t first = 0;
    if (message->frame_bytes[0] == 0) {
        zframe_t *delimiter = zmsg_pop (reply);
        fuzz_check (delimiter && zframe_size (delimiter) == 0, "delimiter not echoed");
        zframe_destroy (&delimiter);
        first = 1;
    }
    int64_t from_seq = 0, max_events = 0;
    bool fetch = first < message->frame_count && message->frame_bytes[first] == 5 &&
                 memcmp (message->frames[first], "FETCH", 5) == 0;
    number_kind_t from = s_number (message, first + 1, &from_seq);
    number_kind_t max = s_number (message, first + 2, &max_events);
    size_t shape = first + 3;
    bool packed = (message->frame_count == shape + 1 || message->frame_count == shape + 2) &&
                  message->frame_bytes[shape] == 6 &&
                  memcmp (message->frames[shape], "packed", 6) == 0;
    bool identity = packed && message->frame_count == shape + 2 &&
                    message->frame_bytes[shape + 1] == 8 &&
                    memcmp (message->frames[shape + 1], "identity", 8) == 0;
    bool extra = message->frame_count > shape + (packed ? 1 : 0) + (identity ? 1 : 0);
    fuzz_check (zmsg_size (reply) > 0, "empty reply");
    if (!fetch || from == NUMBER_BAD || max == NUMBER_BAD || extra)
        s_check_error (reply);
    else if ((from == NUMBER_LONG || max == NUMBER_LONG) &&
             zframe_streq (zmsg_first (reply), "ERROR"))
        s_check_error (reply);
    else
        s_check_batch (reply, from_seq, max_events, packed, identity);
    zmsg_destroy (&reply);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static message_t messages[FUZZ_FRAMES_MESSAGES_MAX];
    size_t count = fuzz_frames_decode (data, size, messages);
    for (size_t index = 0; index < count; index++)
        fuzz_frames_send (zsock_resolve (s_fuzz.dealer), &messages[index]);
    for (size_t index = 0; index < count; index++)
        s_check_reply (&messages[index]);
    replay_handle (s_fuzz.replay, s_fuzz.router);
    fuzz_check (!(zsock_events (s_fuzz.router) & ZMQ_POLLIN), "requests left unread");
    fuzz_check (!(zsock_events (s_fuzz.dealer) & ZMQ_POLLIN), "a reply nobody asked for");
    return 0;
}
