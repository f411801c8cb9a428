/*  transfers — accounting's index of pending transfers (see transfers.h).
 */
#include "transfers.h"

#include <czmq.h>

struct transfers {
    zhashx_t *by_id; // id -> transfer_t (owned)
    size_t unresolved;
};

static void s_transfer_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

transfers_t *transfers_new (void)
{
    transfers_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->by_id = zhashx_new ();
    if (!self->by_id) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->by_id, s_transfer_destroy);
    return self;
}

void transfers_destroy (transfers_t **self_p)
{
    assert (self_p);
    transfers_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->by_id);
        free (self);
        *self_p = NULL;
    }
}

const char *transfers_state_name (transfer_state_t state)
{
    static const char *names[] = {"pending", "posted", "voided", "expired"};
    return (unsigned)state < 4 ? names[state] : "";
}

const transfer_t *transfers_find (transfers_t *self, const char *id)
{
    return zhashx_lookup (self->by_id, id);
}

int transfers_open (transfers_t *self, const event_t *event)
{
    assert (event->type == EVENT_TRANSFER_PENDING);
    if (zhashx_lookup (self->by_id, event->id))
        return -1;
    transfer_t *transfer = calloc (1, sizeof *transfer);
    assert (transfer);
    snprintf (transfer->id, sizeof transfer->id, "%s", event->id);
    snprintf (transfer->from, sizeof transfer->from, "%s", event->from);
    snprintf (transfer->to, sizeof transfer->to, "%s", event->to);
    snprintf (transfer->currency, sizeof transfer->currency, "%s", event->currency);
    transfer->amount = event->amount;
    transfer->timeout_at_ms = event->timeout_at_ms;
    transfer->state = TRANSFER_PENDING;
    transfer->pending_seq = event->seq;
    zhashx_insert (self->by_id, transfer->id, transfer);
    self->unresolved++;
    return 0;
}

const transfer_t *transfers_resolvable (transfers_t *self, const event_t *event)
{
    const transfer_t *transfer = zhashx_lookup (self->by_id, event->pending_id);
    if (!transfer || transfer->state != TRANSFER_PENDING ||
        !streq (transfer->from, event->from) || !streq (transfer->to, event->to) ||
        !streq (transfer->currency, event->currency))
        return NULL;
    if (event->type == EVENT_TRANSFER_POSTED ? event->amount > transfer->amount
                                             : event->amount != transfer->amount)
        return NULL;
    return transfer;
}

void transfers_resolve (transfers_t *self, const event_t *event)
{
    transfer_t *transfer = zhashx_lookup (self->by_id, event->pending_id);
    assert (transfer && transfer->state == TRANSFER_PENDING);
    transfer->state = event->type == EVENT_TRANSFER_POSTED   ? TRANSFER_POSTED
                      : event->type == EVENT_TRANSFER_VOIDED ? TRANSFER_VOIDED
                                                             : TRANSFER_EXPIRED;
    transfer->resolved_seq = event->seq;
    if (transfer->state == TRANSFER_POSTED)
        transfer->posted_amount = event->amount;
    self->unresolved--;
}

size_t transfers_count (transfers_t *self)
{
    return zhashx_size (self->by_id);
}

size_t transfers_unresolved (transfers_t *self)
{
    return self->unresolved;
}

int transfers_save (transfers_t *self, transfers_write_fn *write_fn, void *arg)
{
    //  zhashx_first/next keep a cursor in the table: nothing else walks it.
    for (transfer_t *transfer = zhashx_first (self->by_id); transfer;
         transfer = zhashx_next (self->by_id))
        if (write_fn (arg, transfer, sizeof *transfer))
            return -1;
    return 0;
}

static bool s_text_ok (const char *text, size_t size)
{
    return memchr (text, 0, size) != NULL;
}

//  A saved record from the disk: every field checked before it is used.
static bool s_record_ok (const transfer_t *t, int64_t applied_seq)
{
    if (!s_text_ok (t->id, sizeof t->id) || !s_text_ok (t->from, sizeof t->from) ||
        !s_text_ok (t->to, sizeof t->to) || !s_text_ok (t->currency, sizeof t->currency))
        return false;
    if (!event_id_is_valid (t->id, strlen (t->id)) ||
        !event_id_is_valid (t->from, strlen (t->from)) ||
        !event_id_is_valid (t->to, strlen (t->to)) ||
        !event_currency_is_valid (t->currency, strlen (t->currency)))
        return false;
    if (t->amount < 1 || t->amount > EVENT_AMOUNT_MAX || t->timeout_at_ms < 0 ||
        (unsigned)t->state > TRANSFER_EXPIRED || t->pending_seq < 1 ||
        t->pending_seq > applied_seq)
        return false;
    if (t->state == TRANSFER_PENDING)
        return t->resolved_seq == 0 && t->posted_amount == 0;
    return t->resolved_seq > t->pending_seq && t->resolved_seq <= applied_seq &&
           (t->state == TRANSFER_POSTED
                ? t->posted_amount >= 1 && t->posted_amount <= t->amount
                : t->posted_amount == 0);
}

int transfers_load (transfers_t *self, uint64_t count, int64_t applied_seq,
                    const uint8_t **data, size_t *left)
{
    assert (zhashx_size (self->by_id) == 0);
    if (*left / sizeof (transfer_t) < count)
        return -1;
    for (uint64_t index = 0; index < count; index++) {
        transfer_t *transfer = malloc (sizeof *transfer);
        assert (transfer);
        memcpy (transfer, *data, sizeof *transfer);
        *data += sizeof *transfer;
        *left -= sizeof *transfer;
        if (!s_record_ok (transfer, applied_seq) ||
            zhashx_lookup (self->by_id, transfer->id)) {
            free (transfer);
            return -1;
        }
        zhashx_insert (self->by_id, transfer->id, transfer);
        if (transfer->state == TRANSFER_PENDING)
            self->unresolved++;
    }
    return 0;
}
