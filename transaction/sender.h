/*  sender — the transaction's APPENDs to the stream, coalesced (docs/DESIGN.md,
    "Coalesced frames"): the requests sent during one turn of the loop go
    out together as one packed APPEND when the turn ends, instead of one
    message each: at the end of the HTTP server's run that sent them
    (sender_turn_end), or else on a zero-delay timer (zloop runs it after
    the readers of this turn). A lone request of one event goes in the one-request
    form, byte for byte what it was before packing, and a request too
    large for a pack goes alone in that form at once.

    A pack the stream cannot take (no connection, its queue full) is not
    sent: failed is called with the attempt id of each request in it, as
    a one-request send that failed would have been answered.
*/
#ifndef SENDER_H_INCLUDED
#define SENDER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sender sender_t;

//  A request of the pack was not sent; attempt is borrowed.
typedef void (sender_failed_fn) (void *arg, const char *attempt);

//  ingest is borrowed (a PUSH with a send timeout of 0) and must outlive it.
sender_t *sender_new (zloop_t *loop, zsock_t *ingest, sender_failed_fn *failed, void *arg);
//  Drops what is not sent yet.
void sender_destroy (sender_t **self_p);

//  One request: sender_begin with its attempt id (a packed request id:
//  no SP) and event count, count sender_line calls, then sender_end,
//  which returns 0 when the request is packed or sent, or -1 when the
//  stream cannot take it now (a request sent alone) or memory is short:
//  nothing of it goes out then, and failed is not called for it.
void sender_begin (sender_t *self, const char *attempt, size_t count);
void sender_line (sender_t *self, const char *line, size_t bytes);
int sender_end (sender_t *self);

//  Sends the pack now (also what the timer does).
void sender_flush (sender_t *self);

//  Between these the caller promises a sender_flush (the end of an HTTP
//  server's run, whose handlers send): no timer is set meanwhile.
void sender_turn_begin (sender_t *self);
void sender_turn_end (sender_t *self); // flushes

typedef struct {
    uint64_t packs;          // packed APPENDs sent
    uint64_t packed;         // requests in them
    uint64_t single;         // requests sent in the one-request form
    uint64_t failed_packs;   // packs the stream could not take
} sender_stats_t;

const sender_stats_t *sender_stats (sender_t *self);

#endif
