/*  transfers — accounting's index of pending transfers (schema 2's holds).

    Every transfer_pending by its id, with what resolved it (posted,
    voided or expired) and at which seqs: what GET /transfers/{id}
    answers, and what the fold needs to release a hold (a post may move
    less than was reserved: the rest is released, so the hold's own
    amount is looked up here). It is not a store: nothing here touches
    the disk or the network; accounts folds into it and saves it.

    Memory: one record per hold (~260 bytes) in a zhashx.
*/
#ifndef TRANSFERS_H_INCLUDED
#define TRANSFERS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct transfers transfers_t;

typedef enum {
    TRANSFER_PENDING = 0,
    TRANSFER_POSTED,
    TRANSFER_VOIDED,
    TRANSFER_EXPIRED,
} transfer_state_t;

typedef struct {
    char id[EVENT_ID_BYTES_MAX + 1];
    char from[EVENT_ACCOUNT_BYTES_MAX + 1];
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];
    char currency[EVENT_CURRENCY_BYTES_MAX + 1];
    int64_t amount;        // reserved by the transfer_pending
    int64_t timeout_at_ms; // 0: none
    transfer_state_t state;
    int64_t pending_seq;   // the transfer_pending's
    int64_t resolved_seq;  // 0 while pending
    int64_t posted_amount; // when posted
} transfer_t;

transfers_t *transfers_new (void);
void transfers_destroy (transfers_t **self_p);

//  "pending", "posted", "voided", "expired".
const char *transfers_state_name (transfer_state_t state);

//  The hold with this id, or NULL. Borrowed until the next change.
const transfer_t *transfers_find (transfers_t *self, const char *id);

//  Is a transfer_pending (event) a new hold? Then it is recorded and 0
//  returned; -1 when its id is a hold already (nothing changes).
int transfers_open (transfers_t *self, const event_t *event);

//  The hold a resolution (posted, voided, expired) may resolve: known,
//  still pending, between the same accounts in the same currency, a post
//  of at most its amount and a void or expiry of exactly it. NULL when
//  the event resolves nothing (the fold skips it).
const transfer_t *transfers_resolvable (transfers_t *self, const event_t *event);

//  Records the resolution that transfers_resolvable accepted.
void transfers_resolve (transfers_t *self, const event_t *event);

size_t transfers_count (transfers_t *self);
size_t transfers_unresolved (transfers_t *self);

//  Saved state: every record as it is, through write_fn (host byte
//  order); load checks every field of what it reads back. Return 0 or -1.
typedef int (transfers_write_fn) (void *arg, const void *data, size_t bytes);
int transfers_save (transfers_t *self, transfers_write_fn *write_fn, void *arg);
//  Reads count records from *data (advanced past them, *left shrinks)
//  into self, which must be empty; applied_seq bounds their seqs.
int transfers_load (transfers_t *self, uint64_t count, int64_t applied_seq,
                    const uint8_t **data, size_t *left);

#endif
