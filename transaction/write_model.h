/*  write_model — what transaction decides against.

    Balances and versions folded from the stream's events (confirmed),
    plus what this instance has in flight per account (pending debits and
    pending event counts). Withdrawals are validated against the confirmed
    balance minus pending debits; credits in flight do not count until the
    stream confirms them. Expected versions are the confirmed ones (see
    api.c for why pending events must not count there).

    Also keeps the most recent events (bounded ring, by seq) with the
    balances after them, to answer 201 from stored events once a RESULT
    names their seqs, and to replay duplicates; those events are also
    indexed by id, so a retried request whose events already landed is
    recognised before it is validated again (its debit is already in the
    balances). It is not a read model: it answers no queries beyond these.

    Schema 2's pending transfers (holds of money, not the in-flight
    reservations above) are kept by id with their state, so a second
    resolution is refused, and the unresolved ones count against their
    payer's available balance. Those with a timeout wait in a heap by
    timeout_at for the expiry timer. Resolved ones are kept too (a post
    of a posted hold is 422, not 404): ~260 bytes each.
*/
#ifndef WRITE_MODEL_H_INCLUDED
#define WRITE_MODEL_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "event.h"

//  Recent events kept for responses and duplicate replays: larger than
//  the largest batch, ~300 bytes each (~10 MiB). A power of two.
#define WRITE_MODEL_RECENT_EVENTS_MAX 32768
//  Ids of the events folded last that write_model_seen knows: the
//  stream's dedupe window by default (INGEST_DEDUPE_WINDOW_DEFAULT), so
//  an id unseen here is not one the stream would call a duplicate.
//  About 24 bytes each (dedupe.h): ~24 MiB.
#define WRITE_MODEL_SEEN_IDS_MAX 1000000

//  Slots of the id index over those events (open addressing, 4 bytes
//  each: 256 KiB). Twice the events: probes stay short at half load.
#define WRITE_MODEL_ID_SLOTS (2 * WRITE_MODEL_RECENT_EVENTS_MAX)

typedef struct write_model write_model_t;
//  An account's entry in the write model, so that a request finds each
//  of its accounts once rather than per step (figures, hold, release).
typedef struct write_model_account write_model_account_t;

typedef struct {
    int64_t seq;
    int64_t ts_ms;
    event_type_t type;
    int64_t amount;
    int64_t balance;    // after the event: of account, or of from
    int64_t balance_to; // transfers: of to, after the event
    char id[EVENT_ID_BYTES_MAX + 1];
    char account[EVENT_ACCOUNT_BYTES_MAX + 1]; // deposited/withdrawn; from for transfers
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];
    char currency[EVENT_CURRENCY_BYTES_MAX + 1]; // money and account_opened
    bool has_limit;                              // account events that set one
    int64_t overdraft_limit;                     // >= 0 or EVENT_LIMIT_UNLIMITED
    int64_t version; // account events: the account's version after it
    char pending_id[EVENT_ID_BYTES_MAX + 1]; // posted, voided, expired
    int64_t timeout_at_ms;                   // transfer_pending; 0: none
} write_model_record_t;

typedef enum {
    WRITE_MODEL_PENDING = 0,
    WRITE_MODEL_POSTED,
    WRITE_MODEL_VOIDED,
    WRITE_MODEL_EXPIRED,
} write_model_pending_state_t;

//  A pending transfer as the stream's events left it.
typedef struct {
    char id[EVENT_ID_BYTES_MAX + 1];
    char from[EVENT_ACCOUNT_BYTES_MAX + 1];
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];
    char currency[EVENT_CURRENCY_BYTES_MAX + 1];
    int64_t amount;        // reserved
    int64_t timeout_at_ms; // 0: none
    write_model_pending_state_t state;
    bool due_queued; // in the heap of due holds
} write_model_pending_t;

//  "pending", "posted", "voided", "expired".
const char *write_model_pending_state_name (write_model_pending_state_t state);

write_model_t *write_model_new (void);
void write_model_destroy (write_model_t **self_p);

//  Folds one stored event (seq == applied + 1, from the subscriber).
//  Unknown types only advance the position. Returns 0, or -1 when a
//  balance would overflow (logged; the balance is left unchanged).
int write_model_apply (write_model_t *self, const event_t *event);

//  The stream's head as far as known (it only grows): the ids of events
//  WRITE_MODEL_SEEN_IDS_MAX or more below it, which the window would
//  forget before the end of the catch-up, are not added to it at all.
void write_model_set_head (write_model_t *self, int64_t head_seq);

int64_t write_model_applied_seq (write_model_t *self);
size_t write_model_account_count (write_model_t *self);

//  Confirmed figures (0 for an account never seen).
int64_t write_model_balance (write_model_t *self, const char *account);
int64_t write_model_version (write_model_t *self, const char *account);
//  Confirmed balance minus unresolved holds and this instance's pending
//  debits.
int64_t write_model_available (write_model_t *self, const char *account);
//  The three above with one lookup (a batch asks for each account).
//  Returns the account's entry, or NULL when it has none. Entries never
//  move: one stays valid until write_model_release forgets its account
//  (nothing confirmed and no hold left).
write_model_account_t *write_model_figures (write_model_t *self, const char *account,
                                            int64_t *balance, int64_t *available,
                                            int64_t *version);
//  An account's confirmed schema-2 settings (entry from write_model_figures,
//  or NULL). known is false for an account with no confirmed event yet.
typedef struct {
    bool known;
    const char *currency; // borrowed; "" when not known
    bool limit_set;       // else the service's --overdraft-limit applies
    int64_t overdraft_limit;
    uint64_t metadata_hash; // key_hash of the canonical metadata; 0: none
} write_model_settings_t;
void write_model_settings (const write_model_account_t *entry,
                           write_model_settings_t *settings);

//  Adds an in-flight hold on account, whose entry write_model_figures
//  gave (or NULL: found or created by name). Returns the entry, valid
//  until this hold is released: a held account is never forgotten.
write_model_account_t *write_model_hold (write_model_t *self,
                                         write_model_account_t *entry,
                                         const char *account, int64_t debit,
                                         int64_t events);
//  Removes a hold that write_model_hold added (same entry and figures).
void write_model_release (write_model_t *self, write_model_account_t *entry,
                          int64_t debit, int64_t events);

//  The pending transfer with this id, or NULL when none was stored.
const write_model_pending_t *write_model_pending (write_model_t *self, const char *id);

//  Unresolved pending transfers whose timeout_at_ms <= now_ms, one per
//  call, earliest first (each leaves the heap); NULL when none is due.
//  The caller appends its expiry; write_model_due_again puts one back
//  whose expiry did not land (it is then due again at once).
const write_model_pending_t *write_model_next_due (write_model_t *self, int64_t now_ms);
void write_model_due_again (write_model_t *self, const char *id);
//  Unresolved pending transfers.
size_t write_model_pending_count (write_model_t *self);

//  The stored event at seq, or NULL when it is no longer (or not yet) kept.
const write_model_record_t *write_model_record (write_model_t *self, int64_t seq);

//  The seq of the latest kept event with this id, or 0 when none of the
//  last WRITE_MODEL_RECENT_EVENTS_MAX events has it.
int64_t write_model_find (write_model_t *self, const char *id);

//  0 when none of the last WRITE_MODEL_SEEN_IDS_MAX events folded has
//  this id; else the seq of one that probably has it (only a 64-bit
//  hash of each id is kept: ask the stream to be sure).
int64_t write_model_seen (write_model_t *self, const char *id);

#endif
