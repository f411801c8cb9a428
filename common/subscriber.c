/*  subscriber — the catch-up subscriber (see subscriber.h for the contract).

    One flag drives it. While `catching_up`, live messages from the SUB
    socket (EVENTS and RESULT) are kept in a bounded buffer, in arrival
    order, and the log is read over the replay DEALER with FETCH asking
    for the PACKED reply (a page of lines in one frame; see stream/replay.h),
    two pages in flight. When a FETCH comes back empty, or the buffer holds
    the very next seq (it continues where the fetched events end), the
    buffer is drained in order and the subscriber is live: each EVENTS
    message is applied as it arrives. A gap, a heartbeat ahead or a bad
    line sends it back to catching up. RESULT frames travel through the
    same buffer, so a result is never delivered before the events
    published ahead of it were applied. EVENTS and RESULTS come packed
    (many lines or results in a frame) or one frame per line (wire.h).

    It keeps no events of its own: on_event sees each one once, parsed
    into one reused event_t, and the consumer keeps what it needs.

    Divergence: each catch-up's first FETCH starts at applied_seq itself
    (not after it), so its first line is the stream's event at that seq,
    whose id must be the one applied, and every reply's log_last_seq must
    reach what was applied when it was asked; the identity announced in
    HEARTBEAT and PACKED (the id of seq 1) must be the one applied. Any
    of these stops the subscriber. A seq published again, or a heartbeat
    below applied_seq, hints that the history went back: it starts a
    catch-up, whose first FETCH checks (a duplicate alone proves nothing).
*/
#include "subscriber.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "chain.h"
#include "log.h"
#include "wire.h"

// No BATCH by then: the stream restarted or lost the request. Twice the
// heartbeat period, well above the time to read and send 10,000 events.
#define SUBSCRIBER_FETCH_TIMEOUT_MS 2000
// Pause after an ERROR reply or an unusable batch, so a broken log is not
// hammered in a busy loop.
#define SUBSCRIBER_FETCH_RETRY_MS 1000
// FETCHes out at once while catching up: the next page is asked for as
// soon as one arrives, so the stream reads it while this side applies.
#define SUBSCRIBER_FETCHES_IN_FLIGHT_MAX 2
// Resolution of the timeouts above; a tick costs a few comparisons.
#define SUBSCRIBER_TICK_MS 100
// Catch-up progress at info level, about once a second.
#define SUBSCRIBER_PROGRESS_LOG_MS 1000
// Messages taken from one socket per wake-up, so neither socket, nor the
// HTTP server sharing the loop, starves.
#define SUBSCRIBER_DRAIN_MESSAGES_MAX 256
// Bytes of a "reason" from event_parse_stored, and of a quoted ERROR reply.
#define SUBSCRIBER_ERROR_BYTES_MAX 256
// Frames of a reply: "PACKED", log_last_seq and the page's lines in one.
// The log's identity in a fourth, when asked for with a FETCH's fifth frame.
#define SUBSCRIBER_REPLY_FRAMES_MAX 4
// Largest frame taken from the stream: four replay pages (1 MiB each), so
// a stream with larger pages still passes; beyond it libzmq drops the
// connection instead of buffering the frame.
#define SUBSCRIBER_FRAME_BYTES_MAX (4 * 1024 * 1024)
// Complaints about what the stream sent, at most one a second: a broken
// or hostile stream must not fill the log.
#define SUBSCRIBER_COMPLAINT_LOG_MS 1000
// Bytes of live messages kept while catching up, whatever their count: a
// stream sending large frames must not grow the buffer to events * frames.
// 100,000 events of a few hundred bytes fit; beyond, as for the count.
#define SUBSCRIBER_LIVE_BUFFER_BYTES_MAX (64 * 1024 * 1024)
// Empty pages in a row while buffered live events wait beyond the log's
// end: one can be a race (the FETCH left before those events were
// committed), a few cannot; the buffer is then dropped.
#define SUBSCRIBER_UNFILLED_GAPS_MAX 3

//  A FETCH out. Its reply is the next one on the DEALER (the stream answers
//  one socket's requests in order); it is used only if it still fits.
typedef struct {
    int64_t from_seq;
    int64_t sent_ms; // zclock_mono
    uint64_t epoch;  // catch_up_epoch when it was sent
    bool verify;     // from_seq == applied_seq: its first line must be the one applied
} fetch_out_t;

typedef enum {
    APPLY_OK,      // every line applied or skipped as already applied
    APPLY_GAP,     // stopped at a seq beyond applied_seq + 1
    APPLY_INVALID, // stopped at a line that does not parse (logged)
} apply_result_t;

struct subscriber {
    zloop_t *loop;
    subscriber_handlers_t handlers;
    void *arg;
    char *publish_endpoint;
    char *replay_endpoint; // kept to recreate the DEALER
    const curve_t *curve;  // borrowed; NULL: plain
    int upstream_timeout_ms;
    zsock_t *sub;
    bool want_results;    // kept to recreate the SUB
    int receive_hwm;
    int64_t sub_heard_ms; // last message on the SUB, or when it was made
    bool sub_silent;      // replaced for silence and not heard since
    zsock_t *dealer;
    int tick_id;

    int64_t applied_seq; // seq of the last event given to on_event
    int64_t applied_ts_ms; // its ts; INT64_MIN before the first
    int64_t head_seq;    // highest seq the stream is known to have
    bool catching_up;    // live messages go to the buffer, a FETCH is due or out
    bool caught_up;      // was live at least once
    fetch_out_t fetches_out[SUBSCRIBER_FETCHES_IN_FLIGHT_MAX]; // oldest first
    size_t fetches_out_count;
    uint64_t catch_up_epoch; // counts catch-ups; older replies are not awaited
    int64_t fetch_retry_ms;  // > 0: send a FETCH at this time, once none is out
    uint64_t fetch_timeouts; // in a row; only the first is a warning
    int64_t last_message_ms; // any message from PUB or replay; 0: none yet
    int64_t bad_seq;         // a bad line was logged at this seq; not again
    int unfilled_gaps;       // empty pages in a row with a gap in the buffer
    bool replay_reset_due;   // the replay side lied: a new DEALER at the next tick
    int64_t complaint_ms;    // last complaint logged; 0: none yet
    uint64_t complaints_unlogged; // since then

    char identity[EVENT_ID_BYTES_MAX + 1];   // id of seq 1 here; "" while unknown
    char applied_id[EVENT_ID_BYTES_MAX + 1]; // id at applied_seq; "" while unknown
    int64_t published_seq_max; // highest seq received on PUB
    bool identity_unasked;     // the stream refused the identity frame (older one)
    char diverged[SUBSCRIBER_ERROR_BYTES_MAX]; // why it stopped; "" while consistent
    uint8_t chain[CHAIN_BYTES]; // at applied_seq, when chain_known
    bool chain_known;           // false: not given and no chained line applied yet
    chain_head_t signed_head;   // the stream's latest signed head on this chain
    bool signed_head_known;

    zlistx_t *buffer;     // zmsg_t * (EVENTS, RESULT), oldest first
    size_t buffer_events; // weight of buffer, <= SUBSCRIBER_LIVE_BUFFER_EVENTS_MAX
    size_t buffer_bytes;  // its frames' bytes, <= SUBSCRIBER_LIVE_BUFFER_BYTES_MAX

    int64_t catch_up_start_ms; // for the progress and caught-up log lines
    int64_t catch_up_start_seq;
    int64_t progress_ms;
    int64_t progress_seq;

    uint64_t fetches;
    uint64_t gaps;
    uint64_t live_dropped;
    uint64_t rejected;

    zmq_msg_t frames[SUBSCRIBER_REPLY_FRAMES_MAX]; // one reply from the DEALER
    size_t frame_count;                            // frames of the reply in hand
    zmq_msg_t live_frame; // the frame in hand from the SUB, reused
    char *result_text;    // a live RESULT's request_id\0result_json\0
    size_t result_text_size;
    event_t event;                       // reused for every line
    char line[EVENT_LINE_BYTES_MAX + 1]; // the line NUL-terminated for on_event
};

static void s_fetch (subscriber_t *self);
static void s_fetch_from (subscriber_t *self, int64_t from_seq, bool verify);

static zsock_t *s_sub_new (subscriber_t *self);

static void s_fetch_later (subscriber_t *self)
{
    self->fetch_retry_ms = zclock_mono () + SUBSCRIBER_FETCH_RETRY_MS;
}
static void s_drain (subscriber_t *self, bool caught_up_claim);

//  The replay side sent what no log can hold: whatever else it queued on
//  this connection goes with the socket (replaced at the next tick, not
//  under the reader that is using it), and the next FETCH waits a pause.
static void s_distrust_replay (subscriber_t *self)
{
    self->replay_reset_due = true;
    s_fetch_later (self);
}

//  Logs what the stream sent that cannot be (rate-limited), counts it.
static void s_complain (subscriber_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void s_complain (subscriber_t *self, const char *format, ...)
{
    self->rejected++;
    int64_t now = zclock_mono ();
    if (self->complaint_ms && now - self->complaint_ms < SUBSCRIBER_COMPLAINT_LOG_MS) {
        self->complaints_unlogged++;
        return;
    }
    char text[512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    if (self->complaints_unlogged)
        log_error ("subscriber: %s (%" PRIu64 " more such not logged)", text,
                   self->complaints_unlogged);
    else
        log_error ("subscriber: %s", text);
    self->complaint_ms = now;
    self->complaints_unlogged = 0;
}

//  Canonical lines start with {"seq":N, — reading N without a full parse
//  lets duplicates be skipped cheaply and the buffer be measured. Returns
//  0 if the line does not start that way (a full parse will say why).
static int64_t s_line_seq (const byte *data, size_t bytes)
{
    static const char prefix[] = "{\"seq\":";
    size_t prefix_bytes = sizeof prefix - 1;
    if (bytes <= prefix_bytes || memcmp (data, prefix, prefix_bytes) != 0)
        return 0;
    //  Up to 18 digits: beyond any real log, and no overflow check needed.
    size_t end = bytes < prefix_bytes + 18 ? bytes : prefix_bytes + 18;
    int64_t seq = 0;
    size_t i = prefix_bytes;
    for (unsigned digit; i < end && (digit = data[i] - (unsigned)'0') <= 9; i++)
        seq = seq * 10 + digit;
    if (i == end && i < bytes && data[i] >= '0' && data[i] <= '9')
        return 0; // a 19th digit
    return seq;
}

static void s_see_head (subscriber_t *self, int64_t seq)
{
    if (seq > self->head_seq)
        self->head_seq = seq;
}

//  Stops the subscriber for good: the stream's log is not the history
//  applied here, and applying more would serve a mix of both.
static void s_diverge (subscriber_t *self, const char *format, ...)
{
    if (*self->diverged)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (self->diverged, sizeof self->diverged, format, args);
    va_end (args);
    if (!*self->diverged)
        snprintf (self->diverged, sizeof self->diverged, "diverged");
    log_error ("subscriber: the stream at %s diverges from the state here (applied seq "
               "%" PRId64 "): %s; nothing more is applied until a restart "
               "(a replica: --rebuild)",
               self->replay_endpoint, self->applied_seq, self->diverged);
    self->fetches_out_count = 0;
    self->fetch_retry_ms = 0;
    zlistx_purge (self->buffer);
    self->buffer_events = 0;
}

//  The identity the stream announces (data, bytes) against the local one.
static void s_check_identity (subscriber_t *self, const void *data, size_t bytes)
{
    if (!*self->identity)
        return;
    if (bytes != strlen (self->identity) || memcmp (data, self->identity, bytes) != 0)
        s_diverge (self,
                   "the stream's log starts with id \"%.*s\", the one applied here with "
                   "\"%s\": another log",
                   (int)(bytes < EVENT_ID_BYTES_MAX ? bytes : EVENT_ID_BYTES_MAX),
                   (const char *)data, self->identity);
}

//  A line received on PUB. The stream publishes each seq once, after it
//  is durable, so a seq received again, or one live subscriber applied
//  already, is suspect: its history may have gone back. Returns true
//  then; the caller checks with the log.
static bool s_see_published (subscriber_t *self, const void *data, size_t bytes)
{
    int64_t seq = s_line_seq ((const byte *)data, bytes);
    if (seq == 0)
        return false; // not a line; parsing it will say why
    bool again = seq <= self->published_seq_max;
    if (!self->catching_up && seq <= self->applied_seq)
        again = true; // a page fetched ahead of the SUB explains it too
    if (again)
        return true;
    self->published_seq_max = seq;
    return false;
}

static bool s_is (zmsg_t *msg, const char *topic)
{
    zframe_t *frame = zmsg_first (msg);
    return frame && zframe_streq (frame, topic);
}

//  What a message costs in the buffer: its events, or 1 for a RESULT(S).
static size_t s_weight (zmsg_t *msg)
{
    if (!s_is (msg, WIRE_EVENTS))
        return 1;
    size_t lines = 0;
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg))
        lines += wire_events_frame_lines (zframe_data (frame), zframe_size (frame));
    return lines;
}

//  s_see_published for each line of an EVENTS frame.
static bool s_see_frame (subscriber_t *self, const void *data, size_t bytes)
{
    wire_reader_t reader;
    wire_reader_init (&reader, data, bytes);
    const char *line;
    size_t line_bytes;
    bool again = false;
    while (wire_line_next (&reader, &line, &line_bytes))
        again |= s_see_published (self, line, line_bytes);
    return again;
}

static void s_log_invalid (subscriber_t *self, const char *source, size_t index,
                           const char *reason)
{
    int64_t seq = self->applied_seq + 1;
    if (self->bad_seq == seq) {
        self->rejected++;
        log_debug ("subscriber: invalid line again from %s at seq %" PRId64, source, seq);
        return;
    }
    self->bad_seq = seq;
    s_complain (self,
                "invalid event line from %s at seq %" PRId64
                " (line %zu of the message): %s; the message is dropped and applying "
                "stops here until a valid line is fetched",
                source, seq, index, reason);
}

//  True if the line must be parsed: not applied yet by its seq prefix,
//  and not too long (*rc says so).
static bool s_line_wanted (subscriber_t *self, const byte *data, size_t bytes,
                           const char *source, size_t index, apply_result_t *rc)
{
    *rc = APPLY_OK;
    int64_t seq = s_line_seq (data, bytes);
    if (seq > 0 && seq <= self->applied_seq)
        return false;
    if (bytes > EVENT_LINE_BYTES_MAX) {
        s_log_invalid (self, source, index, "line too long");
        *rc = APPLY_INVALID;
        return false;
    }
    return true;
}

//  Applies one NUL-terminated line: seq <= applied skipped, applied + 1
//  delivered (counted into *applied), beyond it a gap. index is the line's
//  place in its message, for the log.
static apply_result_t s_apply_text (subscriber_t *self, const char *line, size_t bytes,
                                    const char *source, size_t index, size_t *applied)
{
    char reason[SUBSCRIBER_ERROR_BYTES_MAX]; // not cleared: set by the parser on failure
    reason[0] = 0;
    //  Canonical, so the consumer's replica holds the stream's exact bytes
    //  and every line it holds reopens.
    if (event_parse_canonical (line, bytes, &self->event, reason, sizeof reason)) {
        s_log_invalid (self, source, index, reason);
        return APPLY_INVALID;
    }
    int64_t seq = self->event.seq;
    s_see_head (self, seq);
    if (seq <= self->applied_seq)
        return APPLY_OK;
    if (seq > self->applied_seq + 1)
        return APPLY_GAP;
    if (self->event.ts_ms < self->applied_ts_ms) {
        s_log_invalid (self, source, index, "ts goes backwards");
        return APPLY_INVALID;
    }
    //  The chain as the stream's log holds it: a line whose key names
    //  another is corrupt, whatever else holds. Not knowing the chain
    //  applied so far, the first line with a key tells it.
    uint8_t next[CHAIN_BYTES];
    if (self->chain_known && chain_check (self->chain, line, bytes, next)) {
        s_log_invalid (self, source, index,
                       "its chain does not follow from the lines applied before it");
        return APPLY_INVALID;
    }
    if (self->chain_known)
        memcpy (self->chain, next, CHAIN_BYTES);
    else
        self->chain_known = chain_named (line, bytes, self->chain) == 0;
    self->handlers.on_event (self->arg, &self->event, line, bytes);
    self->applied_seq = seq;
    self->applied_ts_ms = self->event.ts_ms;
    memcpy (self->applied_id, self->event.id, sizeof self->applied_id);
    if (seq == 1)
        memcpy (self->identity, self->event.id, sizeof self->identity);
    (*applied)++;
    return APPLY_OK;
}

//  The same for a line in a frame: on_event gets it NUL-terminated, and
//  parsing the copy keeps it hot.
static apply_result_t s_apply_line (subscriber_t *self, const byte *data, size_t bytes,
                                    const char *source, size_t index, size_t *applied)
{
    apply_result_t rc;
    if (!s_line_wanted (self, data, bytes, source, index, &rc))
        return rc;
    memcpy (self->line, data, bytes);
    self->line[bytes] = 0;
    return s_apply_text (self, self->line, bytes, source, index, applied);
}

//  The lines of one EVENTS frame: packed (each ending in \n) or one line
//  (a frame per line, or a line that is not one). *index counts the
//  message's lines; recheck, if given, collects s_see_published's. A
//  packed line's \n is its NUL while it is applied (no copy), and is put
//  back after: the frame may be buffered from the gap on.
static apply_result_t s_apply_frame (subscriber_t *self, byte *data, size_t bytes,
                                     const char *source, size_t *index, size_t *applied,
                                     bool *recheck)
{
    if (bytes == 0 || data[bytes - 1] != '\n') {
        if (recheck)
            *recheck |= s_see_published (self, data, bytes);
        return s_apply_line (self, data, bytes, source, (*index)++, applied);
    }
    wire_reader_t reader;
    wire_reader_init (&reader, data, bytes);
    const char *line;
    size_t line_bytes;
    apply_result_t rc = APPLY_OK;
    while (rc == APPLY_OK && wire_line_next (&reader, &line, &line_bytes)) {
        if (recheck)
            *recheck |= s_see_published (self, line, line_bytes);
        if (!s_line_wanted (self, (const byte *)line, line_bytes, source, *index, &rc)) {
            (*index)++;
            continue;
        }
        char *end = (char *)line + line_bytes;
        *end = 0;
        rc = s_apply_text (self, line, line_bytes, source, (*index)++, applied);
        *end = '\n';
    }
    return rc;
}

//  Applies the lines from frame to the end of msg in order; stops at a gap
//  or a bad line.
static apply_result_t s_apply_lines (subscriber_t *self, zmsg_t *msg, zframe_t *frame,
                                     const char *source, size_t *applied)
{
    apply_result_t rc = APPLY_OK;
    size_t index = 1;
    for (; frame && rc == APPLY_OK; frame = zmsg_next (msg))
        rc = s_apply_frame (self, zframe_data (frame), zframe_size (frame), source, &index,
                            applied, NULL);
    return rc;
}

//  The same for the lines of a PACKED page, each ending in \n: the page is
//  ours, so each \n becomes the line's NUL in place, no copy.
static apply_result_t s_apply_page (subscriber_t *self, char *page, size_t bytes,
                                    size_t *applied)
{
    apply_result_t rc = APPLY_OK;
    char *end = page + bytes;
    for (size_t index = 1; page < end && rc == APPLY_OK; index++) {
        char *line_end = (char *)memchr (page, '\n', (size_t)(end - page));
        size_t line_bytes = (size_t)(line_end - page);
        if (s_line_wanted (self, (const byte *)page, line_bytes, "replay", index, &rc)) {
            *line_end = 0;
            rc = s_apply_text (self, page, line_bytes, "replay", index, applied);
        }
        page = line_end + 1;
    }
    return rc;
}

//  A RESULTS frame's results, each given to on_result NUL-terminated in a
//  copy: the SP and LF that end its parts become NULs.
static void s_deliver_results (subscriber_t *self, const void *data, size_t bytes)
{
    if (!self->handlers.on_result)
        return;
    if (bytes + 1 > self->result_text_size) {
        char *text = (char *)realloc (self->result_text, (bytes + 1) * 2);
        if (!text) {
            log_error ("subscriber: out of memory for a RESULTS; it is lost");
            return;
        }
        self->result_text = text;
        self->result_text_size = (bytes + 1) * 2;
    }
    memcpy (self->result_text, data, bytes);
    self->result_text[bytes] = 0;
    wire_reader_t reader;
    wire_reader_init (&reader, self->result_text, bytes);
    const char *id, *json;
    size_t id_bytes, json_bytes;
    wire_packed_rc_t rc;
    while ((rc = wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes)) ==
           WIRE_PACKED_REQUEST) {
        ((char *)id)[id_bytes] = 0;
        ((char *)json)[json_bytes] = 0;
        self->handlers.on_result (self->arg, id, json);
    }
    if (rc == WIRE_PACKED_MALFORMED)
        s_complain (self, "RESULTS with a record that is not \"request_id SP result_json "
                          "LF\": the rest of it ignored");
}

static void s_deliver_result (subscriber_t *self, zmsg_t *msg)
{
    if (s_is (msg, WIRE_RESULTS)) {
        zframe_t *packed = zmsg_next (msg);
        if (zmsg_size (msg) != 2)
            s_complain (self, "RESULTS with %zu frames instead of 2 ignored",
                        zmsg_size (msg));
        else
            s_deliver_results (self, zframe_data (packed), zframe_size (packed));
        return;
    }
    if (zmsg_size (msg) != 3) {
        s_complain (self, "RESULT with %zu frames instead of 3 ignored", zmsg_size (msg));
        return;
    }
    if (!self->handlers.on_result)
        return;
    zmsg_first (msg);
    char *request_id = zframe_strdup (zmsg_next (msg));
    char *result_json = zframe_strdup (zmsg_next (msg));
    if (request_id && result_json)
        self->handlers.on_result (self->arg, request_id, result_json);
    free (request_id);
    free (result_json);
}

//  Applies one live message (EVENTS or RESULT); on_applied if it applied any.
static apply_result_t s_deliver (subscriber_t *self, zmsg_t *msg)
{
    if (!s_is (msg, WIRE_EVENTS)) {
        s_deliver_result (self, msg);
        return APPLY_OK;
    }
    zmsg_first (msg);
    size_t applied = 0;
    apply_result_t rc = s_apply_lines (self, msg, zmsg_next (msg), "publish", &applied);
    if (applied > 0 && self->handlers.on_applied)
        self->handlers.on_applied (self->arg, self->applied_seq);
    return rc;
}

//  Takes the message into the buffer or, beyond its bound, drops it: the
//  FETCH that follows the drained buffer brings dropped events back.
static void s_buffer (subscriber_t *self, zmsg_t **msg_p)
{
    size_t weight = s_weight (*msg_p), bytes = zmsg_content_size (*msg_p);
    if (self->buffer_events + weight > SUBSCRIBER_LIVE_BUFFER_EVENTS_MAX ||
        self->buffer_bytes + bytes > SUBSCRIBER_LIVE_BUFFER_BYTES_MAX) {
        if (s_is (*msg_p, WIRE_EVENTS))
            self->live_dropped += weight;
        else
            log_debug ("subscriber: live buffer full, RESULT dropped");
        zmsg_destroy (msg_p);
        return;
    }
    zlistx_add_end (self->buffer, *msg_p);
    *msg_p = NULL;
    self->buffer_events += weight;
    self->buffer_bytes += bytes;
}

//  True if a FETCH of this catch-up is out.
static bool s_fetch_awaited (subscriber_t *self)
{
    for (size_t index = 0; index < self->fetches_out_count; index++)
        if (self->fetches_out[index].epoch == self->catch_up_epoch)
            return true;
    return false;
}

//  The first FETCH of a catch-up, or after a new socket: from applied_seq
//  itself, so the stream's event there is checked against the one applied.
static void s_fetch_verify (subscriber_t *self)
{
    if (self->applied_seq > 0)
        s_fetch_from (self, self->applied_seq, true);
    else
        s_fetch (self);
}

static void s_start_catch_up (subscriber_t *self)
{
    if (*self->diverged)
        return;
    if (!self->catching_up) {
        self->catching_up = true;
        self->catch_up_epoch++;
        self->catch_up_start_ms = self->progress_ms = zclock_mono ();
        self->catch_up_start_seq = self->progress_seq = self->applied_seq;
    }
    if (self->fetch_retry_ms == 0 && !s_fetch_awaited (self))
        s_fetch_verify (self);
}

static void s_go_live (subscriber_t *self)
{
    assert (zlistx_size (self->buffer) == 0);
    self->catching_up = false;
    if (!self->caught_up)
        log_info ("subscriber: caught up at seq %" PRId64 " (%" PRId64
                  " events in %" PRId64 " ms)",
                  self->applied_seq, self->applied_seq - self->catch_up_start_seq,
                  zclock_mono () - self->catch_up_start_ms);
    self->caught_up = true;
}

//  FETCH from from_seq. A send that fails (no peer yet, queue full) still
//  counts as out: the timeout retries it on a new socket.
static void s_fetch_from (subscriber_t *self, int64_t from_seq, bool verify)
{
    self->fetch_retry_ms = 0;
    if (self->fetches_out_count == SUBSCRIBER_FETCHES_IN_FLIGHT_MAX) {
        //  Not reached by the paths below; the oldest reply, or its
        //  timeout, comes first and a FETCH follows it.
        log_debug ("subscriber: %d FETCHes out already; FETCH %" PRId64 " later",
                   SUBSCRIBER_FETCHES_IN_FLIGHT_MAX, from_seq);
        s_fetch_later (self);
        return;
    }
    self->fetches_out[self->fetches_out_count++] =
        (fetch_out_t){.from_seq = from_seq,
                      .sent_ms = zclock_mono (),
                      .epoch = self->catch_up_epoch,
                      .verify = verify};
    self->fetches++;
    wire_fetch_t request = {.from_seq = from_seq,
                            .max_events = SUBSCRIBER_FETCH_EVENTS_MAX,
                            .packed = true,
                            .identity = !self->identity_unasked};
    if (wire_fetch_send (zsock_resolve (self->dealer), &request))
        log_debug ("subscriber: FETCH to %s not sent: %s", self->replay_endpoint,
                   zmq_strerror (zmq_errno ()));
}

static void s_fetch (subscriber_t *self)
{
    s_fetch_from (self, self->applied_seq + 1, false);
}

static int64_t s_page_last_seq (const char *page, size_t page_bytes);

//  True if the buffer holds applied_seq + 1: the live events continue
//  where the fetched ones end, so draining it replaces the next FETCH.
static bool s_buffer_continues (subscriber_t *self)
{
    int64_t next = self->applied_seq + 1;
    int64_t first = 0, last = 0;
    for (zmsg_t *msg = zlistx_first (self->buffer); msg; msg = zlistx_next (self->buffer))
        if (s_is (msg, WIRE_EVENTS) && zmsg_size (msg) > 1) {
            zframe_t *frame = zmsg_next (msg);
            first = s_line_seq (zframe_data (frame), zframe_size (frame));
            break;
        }
    for (zmsg_t *msg = zlistx_last (self->buffer); msg; msg = zlistx_prev (self->buffer))
        if (s_is (msg, WIRE_EVENTS) && zmsg_size (msg) > 1) {
            zframe_t *frame = zmsg_last (msg);
            const char *data = (const char *)zframe_data (frame);
            size_t bytes = zframe_size (frame);
            last = bytes > 0 && data[bytes - 1] == '\n'
                       ? s_page_last_seq (data, bytes)
                       : s_line_seq ((const byte *)data, bytes);
            break;
        }
    return first > 0 && first <= next && next <= last;
}

//  Drops the buffered live messages, which the log's pages never reach:
//  a stream that publishes events its log does not have.
static void s_buffer_drop (subscriber_t *self)
{
    s_complain (self,
                "live events from %s continue past seq %" PRId64
                " where the log's pages end, %d times in a row; %zu buffered messages "
                "dropped, fetching again later",
                self->publish_endpoint, self->applied_seq, self->unfilled_gaps,
                zlistx_size (self->buffer));
    zlistx_purge (self->buffer);
    self->buffer_events = 0;
    self->buffer_bytes = 0;
    self->unfilled_gaps = 0;
    s_fetch_later (self);
}

//  Applies the buffer in order. Ends live, or catching up with a FETCH
//  out when the buffer has a gap or a bad line. caught_up_claim: the
//  replay side just said its log ends at applied_seq.
static void s_drain (subscriber_t *self, bool caught_up_claim)
{
    zmsg_t *msg;
    while ((msg = (zmsg_t *)zlistx_head (self->buffer))) {
        apply_result_t rc = s_deliver (self, msg);
        if (rc == APPLY_GAP) {
            self->gaps++;
            if (caught_up_claim && ++self->unfilled_gaps >= SUBSCRIBER_UNFILLED_GAPS_MAX)
                s_buffer_drop (self);
            else
                s_fetch (self); // the message stays at the head; its applied lines
                                // will be skipped
            return;
        }
        msg = (zmsg_t *)zlistx_detach (self->buffer, NULL);
        self->buffer_events -= s_weight (msg);
        self->buffer_bytes -= zmsg_content_size (msg);
        zmsg_destroy (&msg);
        if (rc == APPLY_INVALID) {
            s_fetch (self); // the log holds the good line
            return;
        }
    }
    self->unfilled_gaps = 0;
    s_go_live (self);
}

//  Seq of the last line of a page that ends in \n, by its prefix (0 if
//  it has none).
static int64_t s_page_last_seq (const char *page, size_t page_bytes)
{
    const char *end = page + page_bytes - 1; // the last line's \n
    const char *last = end;
    while (last > page && last[-1] != '\n')
        last--;
    return s_line_seq ((const byte *)last, (size_t)(end - last));
}

//  Asks for the page after the one in hand (lines of page_bytes, the last
//  one ending it) before it is applied, so the stream reads it meanwhile.
//  Only when no other FETCH is out: pages never overlap, and at most two
//  are out.
static void s_fetch_next_page (subscriber_t *self, const char *page, size_t page_bytes)
{
    if (self->fetches_out_count > 0)
        return;
    int64_t last_seq = s_page_last_seq (page, page_bytes);
    if (last_seq > self->applied_seq)
        s_fetch_from (self, last_seq + 1, false);
}

//  A reply to fetch against what was applied when it was asked: the log
//  must reach it, and a verifying page must start with the event applied
//  at its from_seq. Returns -1 on a divergence (the subscriber stopped).
static int s_check_page (subscriber_t *self, const fetch_out_t *fetch,
                         int64_t log_last_seq, const char *page, size_t page_bytes)
{
    int64_t needed = fetch->verify ? fetch->from_seq : fetch->from_seq - 1;
    if (log_last_seq < needed)
        s_diverge (self,
                   "the stream's log ends at seq %" PRId64 ", before seq %" PRId64
                   " applied here",
                   log_last_seq, needed);
    if (!fetch->verify || page_bytes == 0 || *self->diverged)
        return *self->diverged ? -1 : 0;
    const char *end = (const char *)memchr (page, '\n', page_bytes);
    size_t bytes = (size_t)(end - page);
    if (s_line_seq ((const byte *)page, bytes) != fetch->from_seq ||
        fetch->from_seq != self->applied_seq || !*self->applied_id ||
        bytes > EVENT_LINE_BYTES_MAX)
        return 0; // nothing to compare with; a bad line is the apply's to refuse
    memcpy (self->line, page, bytes);
    self->line[bytes] = 0;
    char reason[SUBSCRIBER_ERROR_BYTES_MAX];
    if (event_parse_stored (self->line, bytes, &self->event, reason, sizeof reason))
        return 0;
    if (!streq (self->event.id, self->applied_id))
        s_diverge (self,
                   "the stream holds id \"%s\" at seq %" PRId64 ", where \"%s\" was "
                   "applied here",
                   self->event.id, fetch->from_seq, self->applied_id);
    return *self->diverged ? -1 : 0;
}

//  A page that cannot be the stream's log (logged): lines beyond the end
//  it names, or none although it names more than applied_seq.
static bool s_page_lies (subscriber_t *self, const char *page, size_t page_bytes,
                         int64_t lines, int64_t log_last_seq)
{
    if (lines == 0 && log_last_seq > self->applied_seq) {
        s_complain (self,
                    "PACKED reply from %s says the log ends at seq %" PRId64
                    " but gives nothing from seq %" PRId64 "; fetching again later",
                    self->replay_endpoint, log_last_seq, self->applied_seq + 1);
        return true;
    }
    int64_t last_seq = lines > 0 ? s_page_last_seq (page, page_bytes) : 0;
    if (last_seq > log_last_seq) {
        s_complain (self,
                    "PACKED reply from %s holds seq %" PRId64
                    " beyond the log's end it names, %" PRId64 "; fetching again later",
                    self->replay_endpoint, last_seq, log_last_seq);
        return true;
    }
    return false;
}

//  The log ends at log_last_seq, an empty page says: what heartbeats or
//  live lines claimed beyond it was not so.
static void s_head_is (subscriber_t *self, int64_t log_last_seq)
{
    int64_t head = log_last_seq > self->applied_seq ? log_last_seq : self->applied_seq;
    if (self->head_seq > head)
        s_complain (self,
                    "%s announced seq %" PRId64 " but its log ends at seq %" PRId64,
                    self->publish_endpoint, self->head_seq, log_last_seq);
    self->head_seq = head;
}

//  ["PACKED", log_last_seq, lines(, identity)], the reply in hand to fetch
static void s_on_packed (subscriber_t *self, const fetch_out_t *fetch)
{
    int64_t log_last_seq, lines = -1;
    char *page = (char *)zmq_msg_data (&self->frames[2]);
    size_t page_bytes = zmq_msg_size (&self->frames[2]);
    if (self->frame_count == 3 || self->frame_count == 4)
        lines = wire_page_lines (page, page_bytes);
    if (lines < 0 || lines > SUBSCRIBER_FETCH_EVENTS_MAX ||
        wire_seq_parse (zmq_msg_data (&self->frames[1]), zmq_msg_size (&self->frames[1]),
                        &log_last_seq)) {
        s_complain (self,
                    "PACKED reply from %s is not [PACKED, log_last_seq, at most %d lines "
                    "each ending in \\n(, identity)]; fetching again later",
                    self->replay_endpoint, SUBSCRIBER_FETCH_EVENTS_MAX);
        s_distrust_replay (self);
        return;
    }
    if (self->frame_count == 4)
        s_check_identity (self, zmq_msg_data (&self->frames[3]),
                          zmq_msg_size (&self->frames[3]));
    if (*self->diverged)
        return;
    //  An impossible page first: it proves nothing about the history.
    if (s_page_lies (self, page, page_bytes, lines, log_last_seq)) {
        s_distrust_replay (self);
        return;
    }
    if (s_check_page (self, fetch, log_last_seq, page, page_bytes))
        return;
    //  The page reaches the log's end: caught up once it is applied.
    bool at_end = lines == 0 || s_page_last_seq (page, page_bytes) >= log_last_seq;
    if (at_end)
        s_head_is (self, log_last_seq);
    s_see_head (self, log_last_seq);
    if (lines > 0)
        s_fetch_next_page (self, page, page_bytes);
    size_t applied = 0;
    apply_result_t rc = s_apply_page (self, page, page_bytes, &applied);
    if (applied > 0 && self->handlers.on_applied)
        self->handlers.on_applied (self->arg, self->applied_seq);
    if (rc == APPLY_GAP)
        s_complain (self, "PACKED page from %s skips seq %" PRId64 "; fetching again later",
                    self->replay_endpoint, self->applied_seq + 1);
    if (applied > 0)
        self->unfilled_gaps = 0;
    if (rc != APPLY_OK)
        s_distrust_replay (self); // a next page out will not fit; it is ignored
    else if (at_end || s_buffer_continues (self))
        s_drain (self, at_end); // a next page out comes live; it is ignored
    else if (self->fetches_out_count == 0)
        s_fetch (self);
}

//  True if the reply to fetch still fits: this catch-up asked for it, and
//  it starts at or before the next seq (an earlier page may have stopped
//  short). A timed-out request's reply cannot come: its socket is gone.
static bool s_reply_fits (subscriber_t *self, const fetch_out_t *fetch)
{
    return self->catching_up && fetch->epoch == self->catch_up_epoch &&
           fetch->from_seq <= self->applied_seq + 1;
}

//  A reply came: the oldest FETCH out is answered. -1 if none was out.
static int s_fetch_answered (subscriber_t *self, fetch_out_t *fetch)
{
    if (self->fetches_out_count == 0) {
        s_complain (self, "reply from %s without a FETCH out, ignored",
                    self->replay_endpoint);
        s_distrust_replay (self);
        return -1;
    }
    *fetch = self->fetches_out[0];
    self->fetches_out_count--;
    memmove (&self->fetches_out[0], &self->fetches_out[1],
             self->fetches_out_count * sizeof (fetch_out_t));
    self->fetch_timeouts = 0;
    return 0;
}

//  A reply too large to be an answer (logged): its FETCH is answered, and
//  asked again later on a new socket.
static void s_on_oversized_reply (subscriber_t *self)
{
    fetch_out_t fetch;
    if (s_fetch_answered (self, &fetch) == 0 && self->catching_up)
        s_distrust_replay (self);
}

//  A reply on the DEALER: the answer to the oldest FETCH out.
static void s_on_reply (subscriber_t *self)
{
    fetch_out_t fetch;
    if (s_fetch_answered (self, &fetch))
        return;
    if (!s_reply_fits (self, &fetch)) {
        log_debug ("subscriber: reply to FETCH %" PRId64 " no longer fits, ignored",
                   fetch.from_seq);
        if (self->catching_up && self->fetch_retry_ms == 0 && !s_fetch_awaited (self))
            s_fetch (self);
        return;
    }
    if (wire_msg_is (&self->frames[0], WIRE_PACKED)) {
        s_on_packed (self, &fetch);
        return;
    }
    char text[SUBSCRIBER_ERROR_BYTES_MAX] = "";
    if (self->frame_count > 1)
        snprintf (text, sizeof text, "%.*s", (int)zmq_msg_size (&self->frames[1]),
                  (const char *)zmq_msg_data (&self->frames[1]));
    log_warn ("subscriber: FETCH %" PRId64 " from %s failed: %s", fetch.from_seq,
              self->replay_endpoint, text);
    if (!self->identity_unasked && strstr (text, "arguments")) {
        //  An older stream refuses the identity frame; follow it without.
        self->identity_unasked = true;
        log_warn ("subscriber: FETCHes to %s no longer ask for the log's identity",
                  self->replay_endpoint);
    }
    s_fetch_later (self);
}

//  ["HEARTBEAT", last_seq(, identity)]: ahead of applied_seq while live
//  means the tail was missed; behind it, the stream's history may have
//  gone back (a catch-up checks); another identity is another log.
//  A signed head the stream announces is kept once it is the head here:
//  its seq applied, its chain the one applied, its signature good.
static void s_see_head_frame (subscriber_t *self, zframe_t *frame)
{
    chain_head_t head;
    char reason[SUBSCRIBER_ERROR_BYTES_MAX];
    if (chain_head_parse ((const char *)zframe_data (frame), zframe_size (frame), &head,
                          reason, sizeof reason)) {
        s_complain (self, "HEARTBEAT from %s with a head that is not one: %s",
                    self->publish_endpoint, reason);
        return;
    }
    if (!head.is_signed || head.seq != self->applied_seq || !self->chain_known ||
        head.ts_ms != self->applied_ts_ms)
        return;
    if (memcmp (head.chain, self->chain, CHAIN_BYTES) || chain_head_verify (&head, NULL)) {
        s_complain (self,
                    "HEARTBEAT from %s names another chain at seq %" PRId64
                    ", or a signature that does not hold; not kept",
                    self->publish_endpoint, head.seq);
        return;
    }
    self->signed_head = head;
    self->signed_head_known = true;
}

static void s_on_heartbeat (subscriber_t *self, zmsg_t *msg)
{
    int64_t last_seq;
    zframe_t *identity, *head;
    if (wire_heartbeat_parse (msg, &last_seq, &identity, &head)) {
        s_complain (self, "HEARTBEAT from %s without a valid seq ignored",
                    self->publish_endpoint);
        return;
    }
    if (identity)
        s_check_identity (self, zframe_data (identity), zframe_size (identity));
    if (*self->diverged)
        return;
    if (head && !self->catching_up)
        s_see_head_frame (self, head);
    s_see_head (self, last_seq);
    if (last_seq > self->applied_seq && !self->catching_up) {
        self->gaps++;
        s_start_catch_up (self);
    } else if (last_seq < self->applied_seq && !self->catching_up)
        s_start_catch_up (self); // perhaps a stale heartbeat; the FETCH tells
}

static void s_on_publish_message (subscriber_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    if (s_is (msg, WIRE_HEARTBEAT)) {
        s_on_heartbeat (self, msg);
        return;
    }
    if (self->catching_up) {
        s_buffer (self, msg_p);
        return;
    }
    apply_result_t rc = s_deliver (self, msg);
    if (rc == APPLY_GAP) {
        self->gaps++;
        s_buffer (self, msg_p); // its lines after the gap are not lost
        s_start_catch_up (self);
    } else if (rc == APPLY_INVALID)
        s_start_catch_up (self); // the message is dropped; the log holds the good line
}

//  Copies frame, and the frames of its message after it, to the end of msg.
static void s_append_rest (zmsg_t *msg, zmq_msg_t *frame, void *handle)
{
    do
        zmsg_addmem (msg, zmq_msg_data (frame), zmq_msg_size (frame));
    while (zmq_msg_more (frame) && zmq_msg_recv (frame, handle, 0) >= 0);
}

static void s_skip_rest (zmq_msg_t *frame, void *handle)
{
    while (zmq_msg_more (frame) && zmq_msg_recv (frame, handle, 0) >= 0)
        ;
}

//  A live EVENTS message while live, applied line by line as its frames
//  are read (the topic frame is in hand): no zmsg, no zframe per line.
static void s_on_live_events (subscriber_t *self, void *handle)
{
    zmq_msg_t *frame = &self->live_frame;
    size_t applied = 0, index = 1;
    apply_result_t rc = APPLY_OK;
    bool recheck = false;
    while (rc == APPLY_OK && zmq_msg_more (frame)) {
        if (zmq_msg_recv (frame, handle, 0) < 0)
            break; // a multipart message arrives whole; only a shutdown stops it
        rc = s_apply_frame (self, (byte *)zmq_msg_data (frame), zmq_msg_size (frame),
                            "publish", &index, &applied, &recheck);
    }
    if (applied > 0 && self->handlers.on_applied)
        self->handlers.on_applied (self->arg, self->applied_seq);
    if (rc == APPLY_GAP) {
        self->gaps++;
        //  The lines from the gap on are not lost: they wait in the buffer.
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, WIRE_EVENTS);
        s_append_rest (msg, frame, handle);
        s_buffer (self, &msg);
        zmsg_destroy (&msg);
        s_start_catch_up (self);
    } else if (rc == APPLY_INVALID) {
        s_skip_rest (frame, handle);
        s_start_catch_up (self); // the message is dropped; the log holds the good line
    } else if (recheck)
        s_start_catch_up (self); // its first FETCH compares the log with what is applied
}

//  Appends frame's bytes and a NUL to the result text; -1 if out of memory.
static int s_result_text_add (subscriber_t *self, zmq_msg_t *frame, size_t *used)
{
    size_t bytes = zmq_msg_size (frame);
    if (*used + bytes + 1 > self->result_text_size) {
        size_t size = (*used + bytes + 1) * 2;
        char *text = (char *)realloc (self->result_text, size);
        if (!text)
            return -1;
        self->result_text = text;
        self->result_text_size = size;
    }
    memcpy (self->result_text + *used, zmq_msg_data (frame), bytes);
    self->result_text[*used + bytes] = 0;
    *used += bytes + 1;
    return 0;
}

//  A live ["RESULT", request_id, result_json] (the topic frame is in hand),
//  given to on_result from one reused buffer: no zmsg, no allocation.
static void s_on_live_result (subscriber_t *self, void *handle)
{
    zmq_msg_t *frame = &self->live_frame;
    size_t frames = 1, used = 0, json_at = 0;
    bool stored = true;
    while (zmq_msg_more (frame) && zmq_msg_recv (frame, handle, 0) >= 0) {
        frames++;
        if (frames == 3)
            json_at = used;
        if (frames <= 3 && s_result_text_add (self, frame, &used))
            stored = false;
    }
    if (frames != 3)
        s_complain (self, "RESULT with %zu frames instead of 3 ignored", frames);
    else if (!stored)
        log_error ("subscriber: out of memory for a RESULT; it is lost");
    else if (self->handlers.on_result)
        self->handlers.on_result (self->arg, self->result_text,
                                  self->result_text + json_at);
}

//  A live ["RESULTS", results] (the topic frame is in hand).
static void s_on_live_results (subscriber_t *self, void *handle)
{
    zmq_msg_t *frame = &self->live_frame;
    size_t frames = 1;
    while (zmq_msg_more (frame) && zmq_msg_recv (frame, handle, 0) >= 0)
        if (++frames == 2 && !zmq_msg_more (frame))
            s_deliver_results (self, zmq_msg_data (frame), zmq_msg_size (frame));
    if (frames != 2)
        s_complain (self, "RESULTS with %zu frames instead of 2 ignored", frames);
}

static int s_on_publish (zloop_t *loop, zsock_t *reader, void *arg)
{
    subscriber_t *self = (subscriber_t *)arg;
    void *handle = zsock_resolve (reader);
    zmq_msg_t *frame = &self->live_frame;
    //  Until EAGAIN: asking ZMQ_EVENTS first costs a poll per message.
    for (int count = 0; count < SUBSCRIBER_DRAIN_MESSAGES_MAX; count++) {
        if (zmq_msg_recv (frame, handle, ZMQ_DONTWAIT) < 0)
            break;
        self->last_message_ms = self->sub_heard_ms = zclock_mono ();
        self->sub_silent = false;
        if (*self->diverged)
            s_skip_rest (frame, handle); // heard (connected), not applied
        else if (!self->catching_up && wire_msg_is (frame, WIRE_EVENTS))
            s_on_live_events (self, handle);
        else if (!self->catching_up && wire_msg_is (frame, WIRE_RESULT))
            s_on_live_result (self, handle);
        else if (!self->catching_up && wire_msg_is (frame, WIRE_RESULTS))
            s_on_live_results (self, handle);
        else {
            //  Kept in the buffer, a RESULT or a HEARTBEAT: rare or small.
            zmsg_t *msg = zmsg_new ();
            s_append_rest (msg, frame, handle);
            //  Catching up already: its first FETCH checks the log.
            if (s_is (msg, WIRE_EVENTS))
                for (zframe_t *line = zmsg_next (msg); line; line = zmsg_next (msg))
                    s_see_frame (self, zframe_data (line), zframe_size (line));
            s_on_publish_message (self, &msg);
            zmsg_destroy (&msg);
        }
        zmq_msg_close (frame);
        zmq_msg_init (frame);
    }
    return 0;
}

//  Done with the reply in hand: a page is about 1 MiB, not kept.
static void s_frames_done (subscriber_t *self)
{
    for (size_t index = 0; index < self->frame_count; index++) {
        zmq_msg_close (&self->frames[index]);
        zmq_msg_init (&self->frames[index]);
    }
    self->frame_count = 0;
}

//  Receives one reply into frames. 0; -1 if nothing was waiting; 1 if the
//  reply has more frames than any answer may have (it is read to its end,
//  logged and dropped).
static int s_frames_recv (subscriber_t *self, void *handle)
{
    assert (self->frame_count == 0);
    if (zmq_msg_recv (&self->frames[0], handle, ZMQ_DONTWAIT) < 0)
        return -1;
    self->frame_count = 1;
    while (zmq_msg_more (&self->frames[self->frame_count - 1])) {
        if (self->frame_count == SUBSCRIBER_REPLY_FRAMES_MAX) {
            zmq_msg_t *last = &self->frames[self->frame_count - 1];
            while (zmq_msg_more (last) && zmq_msg_recv (last, handle, 0) >= 0)
                ;
            s_complain (self, "reply from %s with more than %d frames dropped",
                        self->replay_endpoint, SUBSCRIBER_REPLY_FRAMES_MAX);
            s_frames_done (self);
            return 1;
        }
        if (zmq_msg_recv (&self->frames[self->frame_count], handle, 0) < 0)
            break; // a multipart message arrives whole; only a shutdown stops it
        self->frame_count++;
    }
    return 0;
}

static int s_on_replay (zloop_t *loop, zsock_t *reader, void *arg)
{
    subscriber_t *self = (subscriber_t *)arg;
    void *handle = zsock_resolve (reader);
    for (int count = 0; count < SUBSCRIBER_DRAIN_MESSAGES_MAX; count++) {
        int rc = s_frames_recv (self, handle);
        if (rc < 0)
            break;
        self->last_message_ms = zclock_mono ();
        if (rc == 0 && *self->diverged)
            s_frames_done (self);
        else if (rc == 0) {
            s_on_reply (self);
            s_frames_done (self);
        } else
            s_on_oversized_reply (self);
    }
    return 0;
}

static zsock_t *s_dealer_new (subscriber_t *self)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer)
        return NULL;
    zsock_set_linger (dealer, 0);   // a request to a dead peer is worthless
    zsock_set_sndtimeo (dealer, 0); // never block the loop on send
    if (self->curve)
        curve_apply_client (self->curve, dealer);
    zsock_set_maxmsgsize (dealer, SUBSCRIBER_FRAME_BYTES_MAX);
    if (zsock_connect (dealer, "%s", self->replay_endpoint) ||
        zloop_reader (self->loop, dealer, s_on_replay, self)) {
        log_error ("subscriber: connect (\"%s\") failed: %s", self->replay_endpoint,
                   zmq_strerror (zmq_errno ()));
        zsock_destroy (&dealer);
    }
    return dealer;
}

//  A new DEALER, so a restarted stream is reached at once and a late reply
//  to the old request can never be taken for the answer to the next.
static int s_dealer_recreate (subscriber_t *self)
{
    zsock_t *dealer = s_dealer_new (self);
    if (!dealer)
        return -1;
    zloop_reader_end (self->loop, self->dealer);
    zsock_destroy (&self->dealer);
    self->dealer = dealer;
    return 0;
}

static void s_log_progress (subscriber_t *self, int64_t now)
{
    int64_t elapsed_ms = now - self->progress_ms;
    if (!self->catching_up || elapsed_ms < SUBSCRIBER_PROGRESS_LOG_MS)
        return;
    int64_t applied = self->applied_seq - self->progress_seq;
    if (applied > 0)
        log_info ("subscriber: catching up: %" PRId64
                  " events applied (%.0f/s), at seq %" PRId64 ", %" PRId64
                  " behind head %" PRId64,
                  self->applied_seq - self->catch_up_start_seq,
                  applied * 1000.0 / (double)elapsed_ms, self->applied_seq,
                  self->head_seq - self->applied_seq, self->head_seq);
    self->progress_ms = now;
    self->progress_seq = self->applied_seq;
}

//  A SUB that heard nothing, not even a heartbeat, for the upstream
//  timeout is replaced: libzmq 4.3.4 never reconnects a connection it
//  dropped for a protocol error (a frame beyond ZMQ_MAXMSGSIZE), so a
//  stream that once sent one would otherwise be deaf here for good. What
//  was published meanwhile comes back by the catch-up that follows.
static void s_sub_replace_if_silent (subscriber_t *self, int64_t now)
{
    if (now - self->sub_heard_ms < self->upstream_timeout_ms ||
        (zsock_events (self->sub) & ZMQ_POLLIN))
        return; // heard, or this loop was too busy to listen
    zsock_t *sub = s_sub_new (self);
    self->sub_heard_ms = now;
    if (!sub)
        return; // the old one serves on; tried again after another timeout
    if (!self->sub_silent)
        log_warn ("subscriber: nothing heard from %s for %d ms; listening on a new socket",
                  self->publish_endpoint, self->upstream_timeout_ms);
    self->sub_silent = true;
    zloop_reader_end (self->loop, self->sub);
    zsock_destroy (&self->sub);
    self->sub = sub;
    s_start_catch_up (self);
}

static int s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    subscriber_t *self = (subscriber_t *)arg;
    int64_t now = zclock_mono ();
    if (*self->diverged)
        return 0;
    if (self->replay_reset_due) {
        self->replay_reset_due = false;
        self->fetches_out_count = 0; // their replies cannot reach a new socket
        s_dealer_recreate (self);    // on failure the old one serves on
    }
    s_sub_replace_if_silent (self, now);
    if (self->fetches_out_count > 0 &&
        now - self->fetches_out[0].sent_ms >= SUBSCRIBER_FETCH_TIMEOUT_MS) {
        if (self->fetch_timeouts++ == 0)
            log_warn (
                "subscriber: no answer from %s within %d ms; retrying on a new socket",
                self->replay_endpoint, SUBSCRIBER_FETCH_TIMEOUT_MS);
        self->fetches_out_count = 0; // their replies cannot reach a new socket
        if (s_dealer_recreate (self))
            s_fetch_later (self);
        else if (self->catching_up)
            s_fetch_verify (self); // perhaps another stream now
    } else if (self->fetches_out_count == 0 && self->fetch_retry_ms > 0 &&
               now >= self->fetch_retry_ms)
        s_fetch (self);
    s_log_progress (self, now);
    return 0;
}

static void s_buffer_item_destroy (void **item)
{
    zmsg_t **msg_p = (zmsg_t **)item;
    zmsg_destroy (msg_p);
}

static zsock_t *s_sub_new (subscriber_t *self)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (!sub)
        return NULL;
    zsock_set_linger (sub, 0);
    zsock_set_maxmsgsize (sub, SUBSCRIBER_FRAME_BYTES_MAX);
    if (self->receive_hwm > 0)
        zsock_set_rcvhwm (sub, self->receive_hwm);
    zsock_set_subscribe (sub, WIRE_EVENTS);
    zsock_set_subscribe (sub, WIRE_HEARTBEAT);
    if (self->want_results)
        zsock_set_subscribe (sub, WIRE_RESULT);
    if (self->curve)
        curve_apply_client (self->curve, sub);
    if (zsock_connect (sub, "%s", self->publish_endpoint) ||
        zloop_reader (self->loop, sub, s_on_publish, self)) {
        log_error ("subscriber: connect (\"%s\") failed: %s", self->publish_endpoint,
                   zmq_strerror (zmq_errno ()));
        zsock_destroy (&sub);
    }
    return sub;
}

subscriber_t *subscriber_new (zloop_t *loop, const subscriber_config_t *config,
                              const subscriber_handlers_t *handlers, void *arg)
{
    assert (loop && config && handlers && handlers->on_event);
    assert (config->publish_endpoint && config->replay_endpoint);
    assert (config->applied_seq >= 0);
    subscriber_t *self = (subscriber_t *)zmalloc (sizeof (subscriber_t));
    assert (self);
    self->loop = loop;
    self->handlers = *handlers;
    self->arg = arg;
    self->tick_id = -1;
    self->applied_seq = self->head_seq = config->applied_seq;
    self->applied_ts_ms = config->applied_seq > 0 ? config->applied_ts_ms : INT64_MIN;
    if (config->identity)
        snprintf (self->identity, sizeof self->identity, "%s", config->identity);
    if (config->applied_id && config->applied_seq > 0)
        snprintf (self->applied_id, sizeof self->applied_id, "%s", config->applied_id);
    self->chain_known = config->applied_seq == 0 || config->applied_chain;
    if (config->applied_seq > 0 && config->applied_chain)
        memcpy (self->chain, config->applied_chain, CHAIN_BYTES);
    self->upstream_timeout_ms = config->upstream_timeout_ms > 0
                                    ? config->upstream_timeout_ms
                                    : SUBSCRIBER_UPSTREAM_TIMEOUT_MS_DEFAULT;
    self->publish_endpoint = strdup (config->publish_endpoint);
    self->replay_endpoint = strdup (config->replay_endpoint);
    self->curve = config->curve;
    self->buffer = zlistx_new ();
    for (size_t index = 0; index < SUBSCRIBER_REPLY_FRAMES_MAX; index++)
        zmq_msg_init (&self->frames[index]);
    zmq_msg_init (&self->live_frame);
    if (!self->publish_endpoint || !self->replay_endpoint || !self->buffer)
        goto failed;
    zlistx_set_destructor (self->buffer, s_buffer_item_destroy);
    event_init (&self->event);
    //  SUB first, so live events published while catching up are buffered.
    self->want_results = config->want_results;
    self->receive_hwm = config->receive_hwm;
    self->sub = s_sub_new (self);
    self->sub_heard_ms = zclock_mono ();
    if (!self->sub)
        goto failed;
    self->dealer = s_dealer_new (self);
    if (!self->dealer)
        goto failed;
    self->tick_id = zloop_timer (loop, SUBSCRIBER_TICK_MS, 0, s_on_tick, self);
    if (self->tick_id < 0)
        goto failed;
    s_start_catch_up (self);
    return self;
failed:
    subscriber_destroy (&self);
    return NULL;
}

void subscriber_destroy (subscriber_t **self_p)
{
    assert (self_p);
    subscriber_t *self = *self_p;
    if (!self)
        return;
    if (self->tick_id >= 0)
        zloop_timer_end (self->loop, self->tick_id);
    if (self->sub)
        zloop_reader_end (self->loop, self->sub);
    if (self->dealer)
        zloop_reader_end (self->loop, self->dealer);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->dealer);
    zlistx_destroy (&self->buffer);
    for (size_t index = 0; index < SUBSCRIBER_REPLY_FRAMES_MAX; index++)
        zmq_msg_close (&self->frames[index]);
    zmq_msg_close (&self->live_frame);
    free (self->result_text);
    free (self->publish_endpoint);
    free (self->replay_endpoint);
    free (self);
    *self_p = NULL;
}

int64_t subscriber_applied_seq (subscriber_t *self)
{
    assert (self);
    return self->applied_seq;
}

int64_t subscriber_head_seq (subscriber_t *self)
{
    assert (self);
    return self->head_seq;
}

bool subscriber_connected (subscriber_t *self)
{
    assert (self);
    return self->last_message_ms > 0 &&
           zclock_mono () - self->last_message_ms < self->upstream_timeout_ms;
}

const char *subscriber_diverged (subscriber_t *self)
{
    assert (self);
    return *self->diverged ? self->diverged : NULL;
}

bool subscriber_caught_up (subscriber_t *self)
{
    assert (self);
    return self->caught_up;
}

const uint8_t *subscriber_chain (subscriber_t *self)
{
    assert (self);
    return self->chain_known ? self->chain : NULL;
}

const chain_head_t *subscriber_signed_head (subscriber_t *self)
{
    assert (self);
    return self->signed_head_known ? &self->signed_head : NULL;
}

uint64_t subscriber_fetches (subscriber_t *self)
{
    assert (self);
    return self->fetches;
}

uint64_t subscriber_gaps (subscriber_t *self)
{
    assert (self);
    return self->gaps;
}

uint64_t subscriber_live_dropped (subscriber_t *self)
{
    assert (self);
    return self->live_dropped;
}

uint64_t subscriber_rejected (subscriber_t *self)
{
    assert (self);
    return self->rejected;
}
