/*  sender — see sender.h. */
#include "sender.h"

#include <assert.h>
#include <string.h>

#include "log.h"
#include "wire.h"

//  A pack goes out once it holds this much, so a frame stays well within
//  what the stream takes (4 MiB): at most this plus one request.
#define SENDER_PACK_BYTES_MAX (1024 * 1024)
//  A packed request id, NUL-terminated for the one-request form.
#define SENDER_ID_BYTES_MAX WIRE_PACKED_ID_BYTES_MAX

struct sender {
    zloop_t *loop;
    zsock_t *ingest; // borrowed
    sender_failed_fn *failed;
    void *arg;
    wire_pack_t pack;
    size_t requests; // in the pack
    size_t events;
    size_t mark;  // where the request being added starts
    size_t count; // its events
    bool broken;  // it could not be packed
    int timer_id; // the flush due at the end of this turn; -1: none
    bool in_turn; // a sender_turn_end will flush
    sender_stats_t stats;
};

sender_t *sender_new (zloop_t *loop, zsock_t *ingest, sender_failed_fn *failed, void *arg)
{
    sender_t *self = (sender_t *)zmalloc (sizeof (sender_t));
    self->loop = loop;
    self->ingest = ingest;
    self->failed = failed;
    self->arg = arg;
    self->timer_id = -1;
    return self;
}

void sender_destroy (sender_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sender_t *self = *self_p;
        if (self->timer_id >= 0)
            zloop_timer_end (self->loop, self->timer_id);
        wire_pack_free (&self->pack);
        free (self);
        *self_p = NULL;
    }
}

//  One packed request (data, bytes: a header and its lines) in the
//  one-request form. 0, or -1 when the stream cannot take it (nothing
//  was queued then: a message is atomic).
static int s_send_single (sender_t *self, const char *data, size_t bytes)
{
    wire_reader_t reader;
    wire_reader_init (&reader, data, bytes);
    wire_packed_request_t request;
    wire_packed_rc_t rc = wire_packed_request_next (&reader, &request);
    assert (rc == WIRE_PACKED_REQUEST && request.line_count == request.count);
    char id[SENDER_ID_BYTES_MAX + 1];
    memcpy (id, request.request_id, request.request_id_bytes);
    id[request.request_id_bytes] = '\0';
    void *socket = zsock_resolve (self->ingest);
    if (wire_append_begin (socket, id, request.count > 0))
        return -1;
    wire_reader_t lines;
    wire_reader_init (&lines, request.lines, request.lines_bytes);
    const char *line;
    size_t line_bytes;
    for (size_t index = 0; wire_line_next (&lines, &line, &line_bytes); index++)
        if (wire_append_event (socket, line, line_bytes, index + 1 == request.count))
            return -1;
    self->stats.single++;
    return 0;
}

//  The pack to the stream; 0, or -1 with the pack kept.
static int s_send_pack (sender_t *self)
{
    int rc = self->requests == 1 && self->events == 1
                 ? s_send_single (self, self->pack.data, self->pack.bytes)
                 : wire_append_packed_send (zsock_resolve (self->ingest), self->pack.data,
                                            self->pack.bytes);
    if (rc)
        return -1;
    if (self->requests > 1 || self->events != 1) {
        self->stats.packs++;
        self->stats.packed += self->requests;
    }
    wire_pack_reset (&self->pack);
    self->requests = self->events = 0;
    return 0;
}

//  The pack's requests could not go: each is failed, then it is dropped.
static void s_fail_pack (sender_t *self)
{
    self->stats.failed_packs++;
    //  The ids are copied out first: failed may send, and so pack, again.
    size_t count = self->requests;
    char(*ids)[SENDER_ID_BYTES_MAX + 1] = calloc (count, SENDER_ID_BYTES_MAX + 1);
    wire_reader_t reader;
    wire_reader_init (&reader, self->pack.data, self->pack.bytes);
    wire_packed_request_t request;
    for (size_t index = 0; ids && index < count &&
                           wire_packed_request_next (&reader, &request) == WIRE_PACKED_REQUEST;
         index++) {
        memcpy (ids[index], request.request_id, request.request_id_bytes);
        ids[index][request.request_id_bytes] = '\0';
    }
    wire_pack_reset (&self->pack);
    self->requests = self->events = 0;
    if (!ids) {
        log_error ("sender: out of memory failing %zu requests; their deadlines answer "
                   "them",
                   count);
        return;
    }
    for (size_t index = 0; index < count; index++)
        self->failed (self->arg, ids[index]);
    free (ids);
}

void sender_flush (sender_t *self)
{
    if (self->timer_id >= 0) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (self->requests && s_send_pack (self))
        s_fail_pack (self);
}

static int s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    sender_t *self = (sender_t *)arg;
    self->timer_id = -1; // a one-shot timer: zloop drops it
    sender_flush (self);
    return 0;
}

void sender_begin (sender_t *self, const char *attempt, size_t count)
{
    //  A full pack goes now; if the stream cannot take it, it waits for
    //  the timer, which fails its requests outside the caller's send.
    if (self->pack.bytes >= SENDER_PACK_BYTES_MAX && self->requests)
        s_send_pack (self);
    self->mark = self->pack.bytes;
    self->count = count;
    self->broken = wire_pack_request (&self->pack, attempt, strlen (attempt), count) != 0;
}

void sender_line (sender_t *self, const char *line, size_t bytes)
{
    if (!self->broken && wire_pack_line (&self->pack, line, bytes))
        self->broken = true;
}

int sender_end (sender_t *self)
{
    if (self->broken) {
        self->pack.bytes = self->mark;
        return -1;
    }
    size_t bytes = self->pack.bytes - self->mark;
    if (bytes > SENDER_PACK_BYTES_MAX) {
        //  Too large to share a frame: alone, now.
        int rc = s_send_single (self, self->pack.data + self->mark, bytes);
        self->pack.bytes = self->mark;
        return rc;
    }
    self->requests++;
    self->events += self->count;
    if (!self->in_turn && self->timer_id < 0) {
        self->timer_id = zloop_timer (self->loop, 0, 1, s_on_timer, self);
        if (self->timer_id < 0 && s_send_pack (self)) {
            //  No timer: sent now, or refused as one send of it would be.
            self->pack.bytes = self->mark;
            self->requests--;
            self->events -= self->count;
            return -1;
        }
    }
    return 0;
}

void sender_turn_begin (sender_t *self)
{
    self->in_turn = true;
}

void sender_turn_end (sender_t *self)
{
    self->in_turn = false;
    sender_flush (self);
}

const sender_stats_t *sender_stats (sender_t *self)
{
    return &self->stats;
}
