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

//  Builds the reply body of one FETCH (command, from_seq, max_events popped
//  from request) onto reply.
static void s_answer (replay_t *self, zmsg_t *request, zmsg_t *reply)
{
    zframe_t *command = zmsg_pop (request);
    zframe_t *from_frame = zmsg_pop (request);
    zframe_t *max_frame = zmsg_pop (request);
    int64_t from_seq = s_frame_number (from_frame, 1);
    int64_t max_events = s_frame_number (max_frame, 1);
    const char *error = NULL;
    if (!command || !zframe_streq (command, "FETCH"))
        error = "unknown command (expected FETCH from_seq max_events)";
    else if (from_seq < 0)
        error = "from_seq: must be an integer >= 1";
    else if (max_events < 0)
        error = "max_events: must be an integer >= 1";
    else if (zmsg_size (request))
        error = "FETCH takes exactly two arguments: from_seq max_events";
    const char *text = NULL;
    size_t bytes = 0;
    int count = 0;
    if (!error &&
        (count = replay_read (self, from_seq, (size_t)max_events, &text, &bytes)) < 0)
        error = "storage: cannot read the log";
    if (error) {
        zmsg_addstr (reply, "ERROR");
        zmsg_addstr (reply, error);
    } else {
        zmsg_addstr (reply, "BATCH");
        zmsg_addstrf (reply, "%lld", (long long)log_file_committed_seq (self->log));
        for (const char *line = text; line < text + bytes;) {
            const char *end = memchr (line, '\n', (size_t)(text + bytes - line));
            assert (end);
            zmsg_addmem (reply, line, (size_t)(end - line));
            line = end + 1;
        }
    }
    zframe_destroy (&command);
    zframe_destroy (&from_frame);
    zframe_destroy (&max_frame);
}

int replay_handle (replay_t *self, zsock_t *router)
{
    for (int i = 0; i < REPLAY_REQUESTS_PER_WAKE && (zsock_events (router) & ZMQ_POLLIN);
         i++) {
        zmsg_t *request = zmsg_recv (router);
        if (!request)
            break;
        zmsg_t *reply = zmsg_new ();
        zframe_t *identity = zmsg_pop (request);
        zmsg_append (reply, &identity);
        zframe_t *next = zmsg_first (request);
        if (next && zframe_size (next) == 0) { // REQ envelope delimiter
            zframe_t *delimiter = zmsg_pop (request);
            zmsg_append (reply, &delimiter);
        }
        s_answer (self, request, reply);
        zmsg_send (&reply, router);
        zmsg_destroy (&request);
    }
    return 0;
}
