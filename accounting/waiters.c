/*  waiters — requests parked until this instance has applied a seq.

    The set is an array of pointers (removal swaps the last one in) plus
    the smallest min_seq waiting, so waking on every applied run costs
    nothing until some waiter can actually be answered. Each waiter has
    its own one-shot zloop timer for its deadline.
*/
#include "waiters.h"

#include <assert.h>

typedef struct {
    http_request_t *request;
    int64_t min_seq;
    int timer_id;
    size_t index; // position in waiters->items
    waiters_t *owner;
} waiter_t;

struct waiters {
    zloop_t *loop;
    waiter_t **items;
    size_t count;
    size_t waiters_max;
    int64_t min_seq_low; // <= every waiting min_seq; INT64_MAX when empty
    waiter_fn *handler;
    void *arg;
    uint64_t timeouts;
};

waiters_t *waiters_new (zloop_t *loop, size_t waiters_max, waiter_fn *handler, void *arg)
{
    assert (loop && handler);
    waiters_t *self = calloc (1, sizeof (waiters_t));
    if (!self)
        return NULL;
    self->items = calloc (waiters_max ? waiters_max : 1, sizeof (waiter_t *));
    if (!self->items) {
        free (self);
        return NULL;
    }
    self->loop = loop;
    self->waiters_max = waiters_max;
    self->min_seq_low = INT64_MAX;
    self->handler = handler;
    self->arg = arg;
    return self;
}

//  Takes waiter out of the set and frees it; returns its request.
static http_request_t *s_remove (waiters_t *self, waiter_t *waiter)
{
    assert (waiter->index < self->count && self->items[waiter->index] == waiter);
    self->items[waiter->index] = self->items[--self->count];
    self->items[waiter->index]->index = waiter->index;
    if (self->count == 0)
        self->min_seq_low = INT64_MAX;
    http_request_t *request = waiter->request;
    free (waiter);
    return request;
}

void waiters_destroy (waiters_t **self_p)
{
    assert (self_p);
    waiters_t *self = *self_p;
    if (!self)
        return;
    while (self->count) {
        waiter_t *waiter = self->items[self->count - 1];
        zloop_timer_end (self->loop, waiter->timer_id);
        self->handler (self->arg, s_remove (self, waiter), WAITER_SHUTDOWN);
    }
    free (self->items);
    free (self);
    *self_p = NULL;
}

static int s_on_deadline (zloop_t *loop, int timer_id, void *arg)
{
    waiter_t *waiter = arg;
    waiters_t *self = waiter->owner;
    //  A one-shot timer: zloop forgets it after this call.
    self->timeouts++;
    self->handler (self->arg, s_remove (self, waiter), WAITER_TIMEOUT);
    return 0;
}

int waiters_add (waiters_t *self, http_request_t *request, int64_t min_seq,
                 int64_t wait_ms)
{
    assert (wait_ms >= 1);
    if (self->count >= self->waiters_max)
        return -1;
    waiter_t *waiter = calloc (1, sizeof (waiter_t));
    if (!waiter)
        return -1;
    *waiter = (waiter_t){
        .request = request, .min_seq = min_seq, .index = self->count, .owner = self};
    waiter->timer_id =
        zloop_timer (self->loop, (size_t)wait_ms, 1, s_on_deadline, waiter);
    if (waiter->timer_id == -1) {
        free (waiter);
        return -1;
    }
    self->items[self->count++] = waiter;
    if (min_seq < self->min_seq_low)
        self->min_seq_low = min_seq;
    http_request_suspend (request);
    return 0;
}

void waiters_wake (waiters_t *self, int64_t applied_seq)
{
    if (applied_seq < self->min_seq_low)
        return;
    int64_t low = INT64_MAX;
    size_t index = 0;
    while (index < self->count) {
        waiter_t *waiter = self->items[index];
        if (waiter->min_seq <= applied_seq) {
            zloop_timer_end (self->loop, waiter->timer_id);
            //  The last waiter moves into index: look at it next.
            self->handler (self->arg, s_remove (self, waiter), WAITER_READY);
        } else {
            if (waiter->min_seq < low)
                low = waiter->min_seq;
            index++;
        }
    }
    self->min_seq_low = low;
}

size_t waiters_count (waiters_t *self)
{
    return self->count;
}

uint64_t waiters_timeouts (waiters_t *self)
{
    return self->timeouts;
}
