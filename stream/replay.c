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
                           size_t bytes)
{
    s_send_str (router, "PACKED", true);
    s_send_str (router, last_seq, true);
    s_send (router, text, bytes, false);
}

//  Answers one FETCH (command, from_seq, max_events[, "packed"] left in
//  request) with the rest of the reply, after its envelope was sent.
static void s_answer (replay_t *self, zmsg_t *request, void *router)
{
    zframe_t *command = zmsg_pop (request);
    zframe_t *from_frame = zmsg_pop (request);
    zframe_t *max_frame = zmsg_pop (request);
    zframe_t *shape = zmsg_pop (request);
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
    else if (zmsg_size (request))
        error = "FETCH takes at most three arguments: from_seq max_events [packed]";
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
            s_send_packed (router, last_seq, text, bytes);
        else
            s_send_batch (router, last_seq, text, bytes);
    }
    zframe_destroy (&command);
    zframe_destroy (&from_frame);
    zframe_destroy (&max_frame);
    zframe_destroy (&shape);
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
        s_answer (self, request, handle);
        zmsg_destroy (&request);
    }
    return 0;
}
