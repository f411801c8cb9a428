/*  accounts — the accounting read model: balances folded from the log.

    Folds stored events, in seq order, into per-account balance, version,
    currency, limit and metadata (the last two as of any seq: each account
    keeps the list of its settings changes)
    and keeps, per account, the compact history of its touches (seq,
    balance after) plus, per seq, the event's ts. That is enough to answer
    the current state, the state at any past seq or time, and the list of
    an account's events (whose bytes live in the replica, not here).

    It is not a store: nothing here touches the disk or the network.

    Memory: one record per account in an account table (48 bytes and its
    id, padded to 8), an 8-byte slot (load <= 1/2) and a 4-byte
    sorted-index entry; 16 bytes per account touch; 8 bytes per event.
    Lookups are one open-addressing probe run keyed by the account id.
*/
#ifndef ACCOUNTS_H_INCLUDED
#define ACCOUNTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "transfers.h"

//  Records are addressed by 32-bit handles in 8-byte units: 50M records of
//  at most 120 bytes stay below the account table's 32 GiB.
#define ACCOUNTS_COUNT_MAX 50000000

typedef struct accounts accounts_t;

//  Sums of balances: n int64 balances cannot leave it.
__extension__ typedef __int128 accounts_int128_t;

typedef enum {
    ACCOUNTS_APPLIED = 0, // balances changed
    ACCOUNTS_UNKNOWN,     // unknown type: skipped, counted, seq still consumed
    ACCOUNTS_OVERFLOW,    // a balance would leave int64: skipped, counted
    ACCOUNTS_FULL,        // ACCOUNTS_COUNT_MAX reached: skipped, counted
    ACCOUNTS_MISMATCH,    // money or an opening in another currency than the
                          // account's (the transaction refuses it; a writer
                          // that did not): skipped, counted
    ACCOUNTS_NOMEM,       // out of memory: nothing changed, seq not consumed
} accounts_result_t;

//  One account's state, at the head or at a past seq. id is borrowed.
typedef struct {
    const char *id;
    int64_t balance;
    int64_t version;  // touches so far; >= 1 (an account never seen has no state)
    int64_t last_seq; // seq of the latest touch
    const char *currency; // borrowed; EVENT_CURRENCY_V1 for v1 accounts
    //  No account_opened or account_updated set a limit yet: the
    //  deployment's --overdraft-limit applies.
    bool limit_implicit;
    int64_t overdraft_limit; // when not implicit: >= 0 or EVENT_LIMIT_UNLIMITED
    const char *metadata;    // canonical JSON object, borrowed; NULL when none
    //  Unresolved holds as of that seq: debiting it (reserved of its
    //  available balance) and crediting it (not available yet).
    int64_t pending_debits;
    int64_t pending_credits;
} account_state_t;

//  One currency's figures at the head.
typedef struct {
    const char *currency;
    size_t accounts;
    accounts_int128_t total;
} account_currency_t;

//  Distinct currencies the fold keeps apart (a table of codes; money in a
//  currency beyond it is skipped as ACCOUNTS_FULL).
#define ACCOUNTS_CURRENCIES_MAX 4096

//  One touch of an account: the event at seq left the balance at balance_after.
typedef struct {
    int64_t seq;
    int64_t balance_after;
} account_touch_t;

//  The fold's version: a snapshot of the state is only good for the fold
//  that made it (see accounts.c's ACCOUNTS_FOLD_VERSION).
int accounts_fold_version (void);

//  Writes the whole state (counters, the ts of every seq, every account
//  with its touches) through write_fn, in pieces; host byte order. It
//  allocates nothing, so a forked child may call it. Returns 0, or the
//  first -1 of write_fn.
typedef int (accounts_write_fn) (void *arg, const void *data, size_t bytes);
int accounts_save (accounts_t *self, accounts_write_fn *write_fn, void *arg);

//  Restores what accounts_save wrote (data, bytes long) into self, which
//  must be new (empty). The bytes come from disk: every count, length,
//  id and seq is checked. Returns 0, or -1 (self is then to be destroyed).
int accounts_load (accounts_t *self, const uint8_t *data, size_t bytes);

accounts_t *accounts_new (void);
void accounts_destroy (accounts_t **self_p);

//  Folds one stored event; event->seq must be accounts_applied_seq() + 1
//  (asserted: the subscriber and the log guarantee it).
accounts_result_t accounts_apply (accounts_t *self, const event_t *event);

//  Seq of the last event folded (applied or skipped); 0 when empty.
int64_t accounts_applied_seq (accounts_t *self);

//  The pending transfers folded so far (borrowed; changes with apply).
transfers_t *accounts_transfers (accounts_t *self);

//  Counters.
size_t accounts_count (accounts_t *self);
uint64_t accounts_events_applied (accounts_t *self);
uint64_t accounts_unknown_skipped (accounts_t *self);
uint64_t accounts_overflow_skipped (accounts_t *self);
uint64_t accounts_mismatch_skipped (accounts_t *self);
//  Currencies seen, in the order first seen; *count_p of them. Borrowed
//  until the next apply.
const account_currency_t *accounts_currencies (accounts_t *self, size_t *count_p);

//  Sum of all balances, printed as a decimal integer (it may exceed int64).
//  buffer holds at least 48 bytes.
void accounts_total_format (accounts_t *self, char *buffer, size_t buffer_size);
//  value printed the same way.
void accounts_int128_format (accounts_int128_t value, char *buffer, size_t buffer_size);

//  State of account id after every event with seq <= at_seq (INT64_MAX for
//  the head). Returns 0, or -1 if the account had no touch by then.
int accounts_state_at (accounts_t *self, const char *id, int64_t at_seq,
                       account_state_t *state);

//  The last seq whose ts <= ts_ms (0 if none), among folded events.
int64_t accounts_seq_at_ts (accounts_t *self, int64_t ts_ms);

//  Up to limit touches of account id with seq > after_seq, oldest first,
//  into touches; *more says whether later ones exist. Returns the count,
//  or -1 if the account was never seen.
int accounts_touches (accounts_t *self, const char *id, int64_t after_seq, size_t limit,
                      account_touch_t *touches, bool *more);

//  Up to limit accounts whose id sorts (bytewise) after `after` ("" for
//  the first page), in id order, into states; *more says whether others
//  follow. Cost: sorting the accounts created since the previous call
//  (k log k) and merging them into the sorted index (n), then a binary
//  search; pages without new accounts cost log n + limit. Returns the
//  count, or -1 when out of memory.
int accounts_list (accounts_t *self, const char *after, size_t limit,
                   account_state_t *states, bool *more);

#endif
