/*  replay — see replay.h. */
#include "replay.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wire.h"

//  Requests answered per wake-up before the loop serves other sockets.
#define REPLAY_REQUESTS_PER_WAKE 16

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

//  Answers one FETCH (left in request, its command first) with the rest
//  of the reply, after its envelope was sent.
static void s_answer (replay_t *self, zmsg_t *request, void *router)
{
    wire_fetch_t fetch;
    const char *error = wire_fetch_parse (request, &fetch);
    //  Before the read: the identity's own read must not reuse its buffer.
    const char *log_identity = fetch.identity && !error ? replay_identity (self) : NULL;
    const char *text = NULL;
    size_t bytes = 0;
    if (!error &&
        replay_read (self, fetch.from_seq, (size_t)fetch.max_events, &text, &bytes) < 0)
        error = "storage: cannot read the log";
    int64_t log_last_seq = log_file_committed_seq (self->log);
    if (error)
        wire_error_send (router, error);
    else if (fetch.packed)
        wire_packed_send (router, log_last_seq, text, bytes, log_identity);
    else
        wire_batch_send (router, log_last_seq, text, bytes);
}

//  Answers ["LOOKUP", id] (left in request, its command first), after its
//  envelope was sent.
static void s_answer_lookup (replay_t *self, zmsg_t *request, void *router)
{
    char id[EVENT_ID_BYTES_MAX + 1] = "";
    const char *error =
        self->lookup ? wire_lookup_parse (request, id) : "LOOKUP is not served here";
    int64_t seq = error ? 0 : self->lookup (self->lookup_arg, id);
    const char *text = NULL;
    size_t bytes = 0;
    if (seq > 0 && seq > log_file_committed_seq (self->log))
        seq = 0; // not durable yet: as if not stored
    if (seq > 0 && replay_read (self, seq, 1, &text, &bytes) != 1)
        error = "storage: cannot read the log";
    if (error)
        wire_error_send (router, error);
    else if (seq > 0)
        wire_found_send (router, id, seq, text, bytes - 1); // without its \n
    else
        wire_absent_send (router, id);
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
            wire_send (handle, "", 0, true);
        }
        zframe_t *command = zmsg_first (request);
        if (command && zframe_streq (command, WIRE_LOOKUP))
            s_answer_lookup (self, request, handle);
        else
            s_answer (self, request, handle);
        zmsg_destroy (&request);
    }
    return 0;
}
