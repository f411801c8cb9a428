/*  wire — the one codec of the ZeroMQ protocol (docs/DESIGN.md, "ZeroMQ
    protocol"): every message the services exchange is built and parsed
    here, and nowhere else spells a frame.

        ingest   ["APPEND", request_id, proposed_line...]
                 ["APPEND", "", packed requests]
        publish  ["EVENTS", line...]  ["EVENTS", packed lines]
                 ["RESULT", request_id, result_json]  ["RESULTS", packed results]
                 ["HEARTBEAT", last_seq, identity, head]
        replay   ["FETCH", from_seq, max_events(, "packed"(, "identity"))]
                 -> ["BATCH", log_last_seq, line...]
                 |  ["PACKED", log_last_seq, lines(, identity)]
                 |  ["ERROR", message]
                 ["LOOKUP", id] -> ["FOUND", id, seq, line] | ["ABSENT", id]

    Builders send straight to a libzmq socket (zsock_resolve of a zsock_t)
    frame by frame: libzmq copies each frame once, and a zmsg_t costs a
    frame object and a copy more per line. They return 0, or -1 with
    zmq_errno set when libzmq refused a frame. Parsers read frames they
    are given and never keep them; what they return points into them.

    It is not the transport: sockets, polling and envelopes (a ROUTER's
    identity, a REQ's delimiter) stay with the callers.
*/
#ifndef WIRE_H_INCLUDED
#define WIRE_H_INCLUDED

#include <cjson/cJSON.h>
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

//  The first frame of each message: its command or topic.
#define WIRE_APPEND    "APPEND"
#define WIRE_EVENTS    "EVENTS"
#define WIRE_RESULT    "RESULT"
#define WIRE_RESULTS   "RESULTS"
#define WIRE_HEARTBEAT "HEARTBEAT"
#define WIRE_FETCH     "FETCH"
#define WIRE_BATCH     "BATCH"
#define WIRE_PACKED    "PACKED"
#define WIRE_ERROR     "ERROR"
#define WIRE_LOOKUP    "LOOKUP"
#define WIRE_FOUND     "FOUND"
#define WIRE_ABSENT    "ABSENT"
//  FETCH's optional fourth frame (the reply's shape) and fifth (a PACKED
//  reply ends with the log's identity, the id of seq 1).
#define WIRE_FETCH_PACKED   "packed"
#define WIRE_FETCH_IDENTITY "identity"

//  An ok or duplicate RESULT's JSON, with two seqs of 16 digits.
#define WIRE_RESULT_SEQS_BYTES_MAX 80

//  True if the frame's bytes are text (no NUL).
bool wire_is (const void *data, size_t bytes, const char *text);
//  The same for a received libzmq frame.
bool wire_msg_is (zmq_msg_t *frame, const char *text);

//  A seq frame (log_last_seq, a heartbeat's or FOUND's seq): digits only,
//  no sign or space, at most EVENT_SEQ_MAX. 0, or -1 if it is not one.
int wire_seq_parse (const void *data, size_t bytes, int64_t *value);

//  One frame; more: another follows.
int wire_send (void *socket, const void *data, size_t bytes, bool more);

//  --------------------------------------------------------------------
//  APPEND

//  The command and the request id, then wire_append_event per event
//  (events_follow false: an APPEND with none, which is invalid and
//  answered as such). The first frame fails with EAGAIN when a socket
//  with a send timeout of 0 cannot take the message (no connection with
//  ZMQ_IMMEDIATE, or its queue is full): nothing was queued then. Once
//  it is queued the rest of the message is too: a message is atomic.
int wire_append_begin (void *socket, const char *request_id, bool events_follow);
int wire_append_event (void *socket, const char *line, size_t bytes, bool last);

typedef enum {
    WIRE_APPEND_OK,        // an APPEND: request_id and events set
    WIRE_APPEND_NO_ID,     // fewer than two frames: nothing to answer to
    WIRE_APPEND_NOT_APPEND // another command: request_id set, answer invalid
} wire_append_rc_t;

typedef struct {
    const char *request_id; // in frames[1], not NUL-terminated
    size_t request_id_bytes;
    zmq_msg_t *events;  // frames[2..]: proposed lines
    size_t event_count; // frame_total - 2: the frames received, kept or not
} wire_append_t;

//  An APPEND's frames as received: frames holds the first of them,
//  frame_total counts every frame the message had (a receiver may keep
//  fewer than it counts).
wire_append_rc_t wire_append_parse (zmq_msg_t *frames, size_t frame_total,
                                    wire_append_t *append);

//  --------------------------------------------------------------------
//  EVENTS, HEARTBEAT

//  The topic; every line follows as wire_send (socket, line, bytes, more).
int wire_events_begin (void *socket);

//  ["HEARTBEAT", last_seq, identity, head]: the identity ("" while the
//  log is empty) and the head (chain.h's JSON of the log's head, signed
//  when the stream signs; head NULL: no such frame) are trailing frames,
//  which readers of fewer frames ignore.
int wire_heartbeat_send (void *socket, int64_t last_seq, const char *identity,
                         const char *head);

//  A HEARTBEAT message (its topic first): 0 with last_seq, the identity
//  frame and the head frame (each NULL if the message has none), or -1
//  without a valid seq.
int wire_heartbeat_parse (zmsg_t *msg, int64_t *last_seq, zframe_t **identity_p,
                          zframe_t **head_p);

//  --------------------------------------------------------------------
//  RESULT

typedef enum {
    WIRE_STATUS_OK,
    WIRE_STATUS_CONFLICT,
    WIRE_STATUS_DUPLICATE,
    WIRE_STATUS_INVALID,
    WIRE_STATUS_UNAVAILABLE,
    WIRE_STATUS_UNKNOWN, // parsed only: a status this side does not know
} wire_status_t;

//  {"status":"ok","first_seq":17,"last_seq":18} (or "duplicate") into
//  text (WIRE_RESULT_SEQS_BYTES_MAX); returns its length. Printed by
//  hand: it is sent once per request and snprintf is most of its cost.
size_t wire_result_format_seqs (char *text, bool duplicate, int64_t first_seq,
                                int64_t last_seq);
//  {"status":"invalid","error":error}, or {"status":"conflict",
//  "versions":versions} (taking versions, an object of account: version).
//  The caller frees the text; NULL when out of memory.
char *wire_result_invalid (const char *error);
char *wire_result_conflict (cJSON **versions_p);
//  {"status":"unavailable","error":"storage: <reason>"} into text.
void wire_result_format_unavailable (char *text, size_t size, const char *reason);

int wire_result_send (void *socket, const char *request_id, size_t request_id_bytes,
                      const char *result_json);

typedef struct {
    wire_status_t status;
    int64_t first_seq, last_seq; // ok and duplicate (0 if absent)
    cJSON *json;                 // owned; NULL when the fast path read it
    const char *error;           // invalid: in json, or result_json itself
    cJSON *versions;             // conflict: in json (detach to keep)
} wire_result_t;

//  A RESULT's JSON. ok and duplicate exactly as wire_result_format_seqs
//  prints them are read without cJSON (every write waits for one);
//  anything else is parsed. wire_result_done frees what it holds.
void wire_result_parse (const char *result_json, wire_result_t *result);
void wire_result_done (wire_result_t *result);

//  --------------------------------------------------------------------
//  FETCH and its replies

typedef struct {
    int64_t from_seq;
    int64_t max_events;
    bool packed;   // reply PACKED, not BATCH
    bool identity; // PACKED ends with the log's identity
} wire_fetch_t;

int wire_fetch_send (void *socket, const wire_fetch_t *fetch);

//  A FETCH request (its command first): NULL with fetch set, or the
//  message to answer in an ERROR.
const char *wire_fetch_parse (zmsg_t *request, wire_fetch_t *fetch);

//  ["BATCH", log_last_seq, line...] from text, lines each ending in \n.
int wire_batch_send (void *socket, int64_t log_last_seq, const char *text, size_t bytes);
//  ["PACKED", log_last_seq, text(, identity)]: the page as it lies in the
//  log in one frame; identity NULL: none asked for.
int wire_packed_send (void *socket, int64_t log_last_seq, const char *text, size_t bytes,
                      const char *identity);
int wire_error_send (void *socket, const char *message);

//  The lines of a page, each ending in \n, or -1 if it does not end with one.
int64_t wire_page_lines (const char *page, size_t bytes);

//  --------------------------------------------------------------------
//  LOOKUP and its replies

int wire_lookup_send (void *socket, const char *id);

//  A LOOKUP request (its command first): NULL with id (NUL-terminated) set,
//  or the message to answer in an ERROR.
const char *wire_lookup_parse (zmsg_t *request, char id[EVENT_ID_BYTES_MAX + 1]);

//  ["FOUND", id, seq, line] (line without its \n) or ["ABSENT", id].
int wire_found_send (void *socket, const char *id, int64_t seq, const char *line,
                     size_t bytes);
int wire_absent_send (void *socket, const char *id);

typedef enum {
    WIRE_LOOKUP_FOUND,     // id, seq, line set
    WIRE_LOOKUP_ABSENT,    // id set
    WIRE_LOOKUP_ERROR,     // error set (NULL if the ERROR had no message)
    WIRE_LOOKUP_MALFORMED, // none of these shapes
    WIRE_LOOKUP_NO_SEQ,    // a FOUND whose seq is not one
} wire_lookup_rc_t;

typedef struct {
    zframe_t *id;
    int64_t seq;
    const char *line; // in its frame, not NUL-terminated
    size_t line_bytes;
    zframe_t *error;
} wire_lookup_reply_t;

wire_lookup_rc_t wire_lookup_reply_parse (zmsg_t *reply, wire_lookup_reply_t *out);

//  --------------------------------------------------------------------
//  Packed forms: many requests, lines or results in one frame, so a
//  burst costs one message, not one per request or per line.
//
//      APPEND   ["APPEND", "", requests]: per request
//               `request_id SP count LF`, then count proposed lines each
//               ending in LF. The empty request id marks the form.
//      EVENTS   ["EVENTS", lines]: stored lines in seq order, each ending
//               in LF. A frame that does not end in LF is one line (the
//               form of one frame per line); readers take both.
//      RESULTS  ["RESULTS", results]: per request `request_id SP
//               result_json LF`.
//
//  A packed request id is 1 to WIRE_PACKED_ID_BYTES_MAX bytes without
//  SP, LF or NUL: it ends at the first SP.

#define WIRE_PACKED_ID_BYTES_MAX 64
//  A request header's count: at most this many digits.
#define WIRE_PACKED_COUNT_DIGITS_MAX 9

//  A packed frame being built; {0} is empty. The builders return 0, or -1
//  when memory is short or what they are given cannot be packed (an id
//  with SP, a line holding LF): the pack holds what it held before.
typedef struct {
    char *data;
    size_t bytes;
    size_t size;
} wire_pack_t;

void wire_pack_reset (wire_pack_t *pack);
void wire_pack_free (wire_pack_t *pack);
//  Appends the bytes as they are (their layout is the caller's).
int wire_pack_bytes (wire_pack_t *pack, const void *data, size_t bytes);
//  A request's header; count lines must follow.
int wire_pack_request (wire_pack_t *pack, const char *request_id, size_t id_bytes,
                       size_t count);
//  A line and its LF.
int wire_pack_line (wire_pack_t *pack, const char *line, size_t bytes);
//  A result: request_id SP result_json LF.
int wire_pack_result (wire_pack_t *pack, const char *request_id, size_t id_bytes,
                      const char *result_json, size_t json_bytes);
//  True if request_id can be packed.
bool wire_packed_id_is_valid (const char *request_id, size_t id_bytes);

int wire_append_packed_send (void *socket, const char *packed, size_t bytes);
int wire_events_packed_send (void *socket, const char *lines, size_t bytes);
int wire_results_send (void *socket, const char *packed, size_t bytes);

//  True if an APPEND's frames (as wire_append_parse takes them) are the
//  packed form: three frames, the second empty.
bool wire_append_is_packed (zmq_msg_t *frames, size_t frame_total);

//  Reads a packed frame front to back; never past end.
typedef struct {
    const char *at;
    const char *end;
} wire_reader_t;

void wire_reader_init (wire_reader_t *reader, const void *data, size_t bytes);

typedef enum {
    WIRE_PACKED_REQUEST,   // request set; the reader is past its lines
    WIRE_PACKED_END,       // nothing left
    WIRE_PACKED_MALFORMED, // a header that is not `request_id SP count LF`:
                           // nothing after it can be read
} wire_packed_rc_t;

typedef struct {
    const char *request_id; // in the frame, not NUL-terminated
    size_t request_id_bytes;
    size_t count;      // as the header says
    const char *lines; // its lines, each ending in LF
    size_t lines_bytes;
    size_t line_count; // lines found: fewer than count when the frame ends
                       // first (a count that lies, or a line cut at its end)
} wire_packed_request_t;

//  The next request of a packed APPEND.
wire_packed_rc_t wire_packed_request_next (wire_reader_t *reader,
                                           wire_packed_request_t *request);

//  The next line, without its LF: true with line and bytes set, false at
//  the end. The bytes after the last LF, if any, are a last line too (the
//  caller decides whether a line cut there is one).
bool wire_line_next (wire_reader_t *reader, const char **line, size_t *bytes);

//  Lines in one EVENTS frame: its LFs when it ends in LF (packed), else 1.
size_t wire_events_frame_lines (const void *data, size_t bytes);

//  The next result of a packed RESULTS: WIRE_PACKED_REQUEST with id and
//  json set (both in the frame, not NUL-terminated), WIRE_PACKED_END, or
//  WIRE_PACKED_MALFORMED (no SP, an empty id or json, no LF at its end).
wire_packed_rc_t wire_results_next (wire_reader_t *reader, const char **request_id,
                                    size_t *id_bytes, const char **result_json,
                                    size_t *json_bytes);

#endif
