/*  replay — see replay.h. */
#include "replay.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

//  Requests answered per wake-up before the loop serves other sockets.
#define REPLAY_REQUESTS_PER_WAKE 16
#define REPLAY_NUMBER_DIGITS_MAX 18 // fits int64_t with room to spare

struct replay {
    log_file_t *log; // borrowed
    char *buffer;    // REPLAY_BATCH_BYTES_MAX bytes, reused by every read
    char identity[EVENT_ID_BYTES_MAX + 1]; // id of seq 1 once read; "" before
    replay_lookup_fn *lookup;              // NULL: LOOKUP is not served
    void *lookup_arg;
    replay_stats_t stats;
};

replay_t *replay_new (log_file_t *log)
{
    replay_t *self = (replay_t *)zmalloc (sizeof (replay_t));
    self->log = log;
    self->buffer = (char *)malloc (REPLAY_BATCH_BYTES_MAX);
    if (!self->buffer)
        replay_destroy (&self);
    return self;
}

void replay_destroy (replay_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->buffer);
        free (*self_p);
        *self_p = NULL;
    }
}

void replay_set_lookup (replay_t *self, replay_lookup_fn *fn, void *arg)
{
    assert (self);
    self->lookup = fn;
    self->lookup_arg = arg;
}

const char *replay_identity (replay_t *self)
{
    assert (self);
    if (*self->identity || log_file_committed_seq (self->log) < 1)
        return self->identity;
    //  Read once: seq 1 never changes while this process runs.
    static char line[EVENT_LINE_BYTES_MAX + 2];
    size_t bytes = 0;
    event_t event;
    char error[128];
    if (log_file_read (self->log, 1, 1, line, sizeof line, &bytes) != 1 || bytes < 2 ||
        event_parse_stored (line, bytes - 1, &event, error, sizeof error)) {
        log_error ("replay: cannot read the id of seq 1 for the log's identity");
        return self->identity;
    }
    memcpy (self->identity, event.id, sizeof self->identity);
    return self->identity;
}

const replay_stats_t *replay_stats (replay_t *self)
{
    assert (self);
    return &self->stats;
}

int replay_read (replay_t *self, int64_t from_seq, size_t max_events, const char **text_p,
                 size_t *bytes_p)
{
    if (max_events > REPLAY_BATCH_EVENTS_MAX)
        max_events = REPLAY_BATCH_EVENTS_MAX;
    *text_p = self->buffer;
    *bytes_p = 0;
    int count = log_file_read (self->log, from_seq, max_events, self->buffer,
                               REPLAY_BATCH_BYTES_MAX, bytes_p);
    if (count < 0)
        log_error ("replay: log_file_read (from seq %lld, %zu events) failed",
                   (long long)from_seq, max_events);
    return count;
}

//  A frame holding a decimal integer in [min, INT64 range]; -1 if not.
static int64_t s_frame_number (zframe_t *frame, int64_t min)
{
    if (!frame || zframe_size (frame) == 0 ||
        zframe_size (frame) > REPLAY_NUMBER_DIGITS_MAX)
        return -1;
    int64_t value = 0;
    const byte *data = zframe_data (frame);
    for (size_t i = 0; i < zframe_size (frame); i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        value = value * 10 + (data[i] - '0');
    }
    return value >= min ? value : -1;
}

//  Straight to libzmq: a zframe per event line costs more than the line.
static void s_send (void *router, const void *data, size_t bytes, bool more)
{
    zmq_send (router, data, bytes, more ? ZMQ_SNDMORE : 0);
}

static void s_send_str (void *router, const char *text, bool more)
{
    s_send (router, text, strlen (text), more);
}

//  The optional fourth frame of a FETCH: the reply's shape.
#define REPLAY_PACKED "packed"
//  The optional fifth: a PACKED reply ends with the log's identity.
#define REPLAY_IDENTITY "identity"

//  ["BATCH", committed_seq, line...]: a frame per line, as DESIGN.md has it.
static void s_send_batch (void *router, const char *last_seq, const char *text,
                          size_t bytes)
{
    s_send_str (router, "BATCH", true);
    s_send_str (router, last_seq, bytes > 0);
    for (const char *line = text; line < text + bytes;) {
        const char *end = memchr (line, '\n', (size_t)(text + bytes - line));
        assert (end);
        s_send (router, line, (size_t)(end - line), end + 1 < text + bytes);
        line = end + 1;
    }
}

//  ["PACKED", committed_seq, lines]: the page as it lies in the log, each
//  line ending in \n, in one frame. A frame per line costs the two
//  processes more than parsing the line does.
static void s_send_packed (void *router, const char *last_seq, const char *text,
                           size_t bytes, const char *identity)
{
    s_send_str (router, "PACKED", true);
    s_send_str (router, last_seq, true);
    s_send (router, text, bytes, identity != NULL);
    if (identity)
        s_send_str (router, identity, false);
}

//  Answers one FETCH (command, from_seq, max_events[, "packed"] left in
//  request) with the rest of the reply, after its envelope was sent.
static void s_answer (replay_t *self, zmsg_t *request, void *router)
{
    zframe_t *command = zmsg_pop (request);
    zframe_t *from_frame = zmsg_pop (request);
    zframe_t *max_frame = zmsg_pop (request);
    zframe_t *shape = zmsg_pop (request);
    zframe_t *identity = zmsg_pop (request);
    int64_t from_seq = s_frame_number (from_frame, 1);
    int64_t max_events = s_frame_number (max_frame, 1);
    const char *error = NULL;
    if (!command || !zframe_streq (command, "FETCH"))
        error = "unknown command (expected FETCH from_seq max_events [packed])";
    else if (from_seq < 0)
        error = "from_seq: must be an integer >= 1";
    else if (max_events < 0)
        error = "max_events: must be an integer >= 1";
    else if (shape && !zframe_streq (shape, REPLAY_PACKED))
        error = "the fourth frame, if any, must be \"" REPLAY_PACKED "\"";
    else if (identity && !zframe_streq (identity, REPLAY_IDENTITY))
        error = "the fifth frame, if any, must be \"" REPLAY_IDENTITY "\"";
    else if (zmsg_size (request))
        error = "FETCH takes at most four arguments: from_seq max_events [packed "
                "[identity]]";
    //  Before the read: the identity's own read must not reuse its buffer.
    const char *log_identity = identity && !error ? replay_identity (self) : NULL;
    const char *text = NULL;
    size_t bytes = 0;
    if (!error && replay_read (self, from_seq, (size_t)max_events, &text, &bytes) < 0)
        error = "storage: cannot read the log";
    if (error) {
        s_send_str (router, "ERROR", true);
        s_send_str (router, error, false);
    } else {
        char last_seq[32];
        snprintf (last_seq, sizeof last_seq, "%lld",
                  (long long)log_file_committed_seq (self->log));
        if (shape)
            s_send_packed (router, last_seq, text, bytes, log_identity);
        else
            s_send_batch (router, last_seq, text, bytes);
    }
    zframe_destroy (&command);
    zframe_destroy (&from_frame);
    zframe_destroy (&max_frame);
    zframe_destroy (&shape);
    zframe_destroy (&identity);
}

//  Answers ["LOOKUP", id] (left in request after its command), after its
//  envelope was sent.
static void s_answer_lookup (replay_t *self, zmsg_t *request, void *router)
{
    zframe_t *id_frame = zmsg_pop (request);
    char id[EVENT_ID_BYTES_MAX + 1] = "";
    const char *error = NULL;
    if (!self->lookup)
        error = "LOOKUP is not served here";
    else if (!id_frame || zmsg_size (request) ||
             !event_id_is_valid ((const char *)zframe_data (id_frame),
                                 zframe_size (id_frame)))
        error = "LOOKUP takes one event id";
    else
        memcpy (id, zframe_data (id_frame), zframe_size (id_frame));
    int64_t seq = error ? 0 : self->lookup (self->lookup_arg, id);
    const char *text = NULL;
    size_t bytes = 0;
    if (seq > 0 && seq > log_file_committed_seq (self->log))
        seq = 0; // not durable yet: as if not stored
    if (seq > 0 && replay_read (self, seq, 1, &text, &bytes) != 1)
        error = "storage: cannot read the log";
    if (error) {
        s_send_str (router, "ERROR", true);
        s_send_str (router, error, false);
    } else if (seq > 0) {
        char seq_text[32];
        snprintf (seq_text, sizeof seq_text, "%lld", (long long)seq);
        s_send_str (router, "FOUND", true);
        s_send_str (router, id, true);
        s_send_str (router, seq_text, true);
        s_send (router, text, bytes - 1, false); // without its \n
    } else {
        s_send_str (router, "ABSENT", true);
        s_send_str (router, id, false);
    }
    zframe_destroy (&id_frame);
}

int replay_handle (replay_t *self, zsock_t *router)
{
    void *handle = zsock_resolve (router);
    for (int i = 0; i < REPLAY_REQUESTS_PER_WAKE && (zsock_events (router) & ZMQ_POLLIN);
         i++) {
        zmsg_t *request = zmsg_recv (router);
        if (!request)
            break;
        self->stats.requests++;
        //  The envelope goes back first: identity, and a REQ's delimiter.
        //  On a ROUTER_MANDATORY socket the identity fails when the peer's
        //  queue is full (it sends and does not read) or it is gone: the
        //  request is dropped unread, and only this frame can fail, since
        //  the ROUTER checks the queue once per message.
        zframe_t *identity = zmsg_pop (request);
        int rc = identity ? zmq_send (handle, zframe_data (identity),
                                      zframe_size (identity), ZMQ_SNDMORE | ZMQ_DONTWAIT)
                          : -1;
        zframe_destroy (&identity);
        if (rc < 0) {
            self->stats.replies_dropped++;
            zmsg_destroy (&request);
            continue;
        }
        zframe_t *next = zmsg_first (request);
        if (next && zframe_size (next) == 0) {
            zframe_t *delimiter = zmsg_pop (request);
            zframe_destroy (&delimiter);
            s_send (handle, "", 0, true);
        }
        zframe_t *command = zmsg_first (request);
        if (command && zframe_streq (command, "LOOKUP")) {
            command = zmsg_pop (request);
            zframe_destroy (&command);
            s_answer_lookup (self, request, handle);
        } else
            s_answer (self, request, handle);
        zmsg_destroy (&request);
    }
    return 0;
}
