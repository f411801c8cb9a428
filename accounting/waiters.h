/*  waiters — requests parked until this instance has applied a seq
    (read-your-writes: GET /accounts/{id}?min_seq=N&wait_ms=M).

    A waiter is a suspended HTTP request, the seq it waits for and a
    one-shot zloop timer for its deadline. It leaves the set exactly once:
    when the seq is applied (waiters_wake), when its deadline passes, or
    when the set is destroyed; each time the owner's callback answers the
    request. The set is bounded: beyond waiters_max, waiters_add refuses,
    and the caller answers 503 at once.
*/
#ifndef WAITERS_H_INCLUDED
#define WAITERS_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "http.h"

typedef struct waiters waiters_t;

typedef enum {
    WAITER_READY = 0, // applied_seq reached min_seq
    WAITER_TIMEOUT,   // deadline passed first
    WAITER_SHUTDOWN,  // the service is stopping
} waiter_reason_t;

//  Must answer request (http_respond*).
typedef void (waiter_fn) (void *arg, http_request_t *request, waiter_reason_t reason);

waiters_t *waiters_new (zloop_t *loop, size_t waiters_max, waiter_fn *handler, void *arg);

//  Calls the handler with WAITER_SHUTDOWN for every waiter, then frees.
//  Call before http_server_destroy. Idempotent; nulls *self_p.
void waiters_destroy (waiters_t **self_p);

//  Suspends request until min_seq is applied or wait_ms (>= 1) passes.
//  Returns 0, or -1 (request untouched) when waiters_max are waiting or
//  the timer cannot be made.
int waiters_add (waiters_t *self, http_request_t *request, int64_t min_seq,
                 int64_t wait_ms);

//  Answers, with WAITER_READY, every waiter whose min_seq <= applied_seq.
void waiters_wake (waiters_t *self, int64_t applied_seq);

size_t waiters_count (waiters_t *self);
uint64_t waiters_timeouts (waiters_t *self);

#endif
