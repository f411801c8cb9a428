/*  accounts — the accounting read model: balances folded from the log.

    Layout: accounts live in an account table (common/account_table.h:
    by id, each record at a fixed address, walked in insertion order). An
    account's balance, version and last seq are those of its last touch,
    so the record holds only the touch array. A sorted index of the
    accounts is brought up to date lazily, when a list is asked for.
*/
#include "accounts.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account_table.h"

#define ACCOUNTS_TS_MIN      1024 // first ts array size
#define ACCOUNTS_HISTORY_MIN 1    // most accounts are touched few times
#define ACCOUNTS_HISTORY_MAX UINT32_MAX
//  The fold's own version. Change it with any change to what an event does
//  to the state: snapshots of an older fold are then ignored, and the
//  replica is folded again (the seed's lesson: fix the fold, restart, get
//  the right balances).
#define ACCOUNTS_FOLD_VERSION 3 // 2: schema 2 (currencies, settings); 3: holds

//  One change of an account's limit or metadata (account_opened or
//  account_updated), as of seq. Each holds the whole settings after it.
typedef struct {
    int64_t seq;
    int64_t overdraft_limit; // >= 0, EVENT_LIMIT_UNLIMITED, or implicit below
    bool limit_implicit;
    char *metadata; // canonical JSON, owned; NULL when none
} settings_t;

//  An account's pending sums after the hold event at seq.
typedef struct {
    int64_t seq;
    int64_t debits;
    int64_t credits;
} pending_t;

typedef struct {
    account_touch_t *history; // version touches, oldest first; never empty
    int64_t balance;          // == the last touch's balance_after, without a cache miss
    uint32_t version;         // == touches used
    uint32_t history_capacity;
    uint32_t record;      // its own, in the table: names it
    settings_t *settings; // changes, oldest first; NULL for most accounts
    uint32_t settings_count;
    uint16_t currency; // index into currencies; set by the first touch
    pending_t *pending; // changes of its pending sums, oldest first; NULL for most
    uint32_t pending_count;
} account_t;

struct accounts {
    account_table_t *table; // id -> account_t
    int64_t *ts;            // ts[seq - 1], for every folded seq
    int64_t applied_seq;
    int64_t ts_capacity;
    uint32_t *sorted;      // records, sorted[0 .. sorted_count) in id order
    uint32_t sorted_count; // accounts after sorted_last are not sorted yet
    uint32_t sorted_last;  // the last record sorted; 0: none
    uint64_t events_applied;
    uint64_t unknown_skipped;
    uint64_t overflow_skipped;
    uint64_t mismatch_skipped;
    accounts_int128_t total;
    //  Every currency seen; codes are NUL-terminated in names.
    account_currency_t currencies[ACCOUNTS_CURRENCIES_MAX];
    char names[ACCOUNTS_CURRENCIES_MAX][EVENT_CURRENCY_BYTES_MAX + 1];
    size_t currency_count;
    transfers_t *transfers; // every hold, by id
};

static uint32_t s_count (accounts_t *self)
{
    return (uint32_t)account_table_size (self->table);
}

static account_t *s_account (accounts_t *self, uint32_t record)
{
    return (account_t *)account_table_value (self->table, record);
}

static const char *s_id (accounts_t *self, const account_t *account)
{
    size_t bytes;
    return account_table_name (self->table, account->record, &bytes);
}

static account_t *s_find (accounts_t *self, const char *id)
{
    uint32_t record = account_table_find (self->table, id);
    return record ? s_account (self, record) : NULL;
}

//  Adds an account that is not there yet, with no touch; NULL when
//  memory is short.
static account_t *s_add (accounts_t *self, const char *id)
{
    uint32_t record = account_table_ensure (self->table, id);
    if (!record)
        return NULL;
    account_t *account = s_account (self, record);
    account->record = record;
    return account;
}

static int64_t s_balance (const account_t *account)
{
    //  An account left without touches by a failed apply counts as never seen.
    return account && account->version ? account->balance : 0;
}

static int s_reserve_touch (account_t *account)
{
    if (account->version < account->history_capacity)
        return 0;
    if (account->history_capacity == ACCOUNTS_HISTORY_MAX)
        return -1;
    uint64_t capacity = account->history_capacity ? account->history_capacity * 2ull
                                                  : ACCOUNTS_HISTORY_MIN;
    if (capacity > ACCOUNTS_HISTORY_MAX)
        capacity = ACCOUNTS_HISTORY_MAX;
    account_touch_t *history =
        realloc (account->history, capacity * sizeof (account_touch_t));
    if (!history)
        return -1;
    account->history = history;
    account->history_capacity = (uint32_t)capacity;
    return 0;
}

//  A change to one account, checked before anything is changed.
typedef struct {
    const char *id;
    int64_t delta;
    account_t *account; // NULL until found or added
    int64_t balance_after;
} change_t;

//  The index of currency, added when new; -1 when the table is full.
static int s_currency (accounts_t *self, const char *currency)
{
    for (size_t i = 0; i < self->currency_count; i++)
        if (strcmp (self->names[i], currency) == 0)
            return (int)i;
    if (self->currency_count == ACCOUNTS_CURRENCIES_MAX)
        return -1;
    size_t index = self->currency_count++;
    snprintf (self->names[index], sizeof self->names[index], "%s", currency);
    self->currencies[index] = (account_currency_t){.currency = self->names[index]};
    return (int)index;
}

//  Finds or adds every account of changes, checks every balance, reserves
//  every touch; only then applies. Ids are valid per event.h.
static accounts_result_t s_change (accounts_t *self, change_t *changes,
                                   size_t change_count, int64_t seq, int currency)
{
    if (currency < 0)
        return ACCOUNTS_FULL;
    for (size_t i = 0; i < change_count; i++) {
        change_t *change = &changes[i];
        change->account = s_find (self, change->id);
        if (change->account && change->account->version &&
            change->account->currency != currency)
            return ACCOUNTS_MISMATCH;
        if (__builtin_add_overflow (s_balance (change->account), change->delta,
                                    &change->balance_after))
            return ACCOUNTS_OVERFLOW;
    }
    for (size_t i = 0; i < change_count; i++) {
        change_t *change = &changes[i];
        if (!change->account) {
            if (s_count (self) >= ACCOUNTS_COUNT_MAX)
                return ACCOUNTS_FULL;
            change->account = s_add (self, change->id);
            if (!change->account)
                return ACCOUNTS_NOMEM;
        }
        if (s_reserve_touch (change->account))
            return ACCOUNTS_NOMEM;
    }
    for (size_t i = 0; i < change_count; i++) {
        account_t *account = changes[i].account;
        if (account->version == 0) {
            account->currency = (uint16_t)currency;
            self->currencies[currency].accounts++;
        }
        account->history[account->version++] =
            (account_touch_t){.seq = seq, .balance_after = changes[i].balance_after};
        account->balance = changes[i].balance_after;
        self->total += changes[i].delta;
        self->currencies[currency].total += changes[i].delta;
    }
    return ACCOUNTS_APPLIED;
}

//  Room for one more settings change of account; false when out of memory.
static bool s_reserve_settings (account_t *account)
{
    settings_t *grown =
        realloc (account->settings, (account->settings_count + 1) * sizeof (settings_t));
    if (!grown)
        return false;
    account->settings = grown;
    return true;
}

//  account_opened / account_updated: a touch that moves no money and
//  records the account's settings after it. An update of an account never
//  seen opens it implicitly in XXX, as money would.
static accounts_result_t s_settings (accounts_t *self, const event_t *event)
{
    bool opened = event->type == EVENT_ACCOUNT_OPENED;
    account_t *account = s_find (self, event->account);
    bool known = account && account->version;
    const char *name = opened  ? event->currency
                       : known ? self->names[account->currency]
                               : EVENT_CURRENCY_V1;
    int currency = s_currency (self, name);
    if (currency < 0)
        return ACCOUNTS_FULL;
    if (opened && known && account->currency != currency)
        return ACCOUNTS_MISMATCH;
    settings_t *last = account && account->settings_count
                           ? &account->settings[account->settings_count - 1]
                           : NULL;
    settings_t next = {.seq = event->seq,
                       .overdraft_limit = last ? last->overdraft_limit : 0,
                       .limit_implicit = last ? last->limit_implicit : true};
    if (event->has_limit) {
        next.overdraft_limit = event->overdraft_limit;
        next.limit_implicit = false;
    }
    const char *metadata = event->metadata_bytes ? event->metadata
                           : last                ? last->metadata
                                                 : NULL;
    if (metadata && !(next.metadata = strdup (metadata)))
        return ACCOUNTS_NOMEM;
    //  Room for the settings first, so that a touch never lands without them.
    if (account && !s_reserve_settings (account)) {
        free (next.metadata);
        return ACCOUNTS_NOMEM;
    }
    change_t change = {.id = event->account};
    accounts_result_t result = s_change (self, &change, 1, event->seq, currency);
    account = change.account;
    if (result != ACCOUNTS_APPLIED || !s_reserve_settings (account)) {
        free (next.metadata);
        //  Out of memory after a new account's touch: it reads as opened
        //  implicitly (an apply never half-fails for existing accounts).
        return result;
    }
    account->settings[account->settings_count++] = next;
    return ACCOUNTS_APPLIED;
}

static pending_t s_pending_last (const account_t *account)
{
    return account->pending_count ? account->pending[account->pending_count - 1]
                                  : (pending_t){0, 0, 0};
}

//  Appends the account's pending sums after seq; false when out of memory.
static bool s_pending_append (account_t *account, pending_t entry)
{
    pending_t *grown =
        realloc (account->pending, (account->pending_count + 1) * sizeof (pending_t));
    if (!grown)
        return false;
    account->pending = grown;
    account->pending[account->pending_count++] = entry;
    return true;
}

//  transfer_pending, _posted, _voided, _expired: touches from and to; a
//  hold raises from's pending debits and to's pending credits by its
//  amount, a resolution lowers them by the hold's amount (a post moves
//  its own, perhaps smaller, amount). A resolution of nothing pending
//  (or a repeated hold id) is skipped as a mismatch: the transaction
//  service never proposes one.
static accounts_result_t s_hold_event (accounts_t *self, const event_t *event,
                                       int currency)
{
    int64_t held = event->amount, moved = 0;
    if (event->type == EVENT_TRANSFER_PENDING) {
        if (transfers_find (self->transfers, event->id))
            return ACCOUNTS_MISMATCH;
    } else {
        const transfer_t *transfer = transfers_resolvable (self->transfers, event);
        if (!transfer)
            return ACCOUNTS_MISMATCH;
        held = -transfer->amount;
        moved = event->type == EVENT_TRANSFER_POSTED ? event->amount : 0;
    }
    const char *ids[2] = {event->from, event->to};
    pending_t after[2];
    for (int side = 0; side < 2; side++) {
        account_t *account = s_find (self, ids[side]);
        after[side] = account ? s_pending_last (account) : (pending_t){0, 0, 0};
        after[side].seq = event->seq;
        int64_t *sum = side == 0 ? &after[side].debits : &after[side].credits;
        if (__builtin_add_overflow (*sum, held, sum))
            return ACCOUNTS_OVERFLOW;
    }
    change_t changes[2] = {{.id = event->from, .delta = -moved},
                           {.id = event->to, .delta = moved}};
    accounts_result_t result = s_change (self, changes, 2, event->seq, currency);
    if (result != ACCOUNTS_APPLIED)
        return result;
    //  After the touches: out of memory here would leave them without
    //  their sums, so it is a failure of the process, not of the event.
    for (int side = 0; side < 2; side++) {
        bool appended = s_pending_append (changes[side].account, after[side]);
        assert (appended);
        (void)appended;
    }
    if (event->type == EVENT_TRANSFER_PENDING)
        transfers_open (self->transfers, event);
    else
        transfers_resolve (self->transfers, event);
    return ACCOUNTS_APPLIED;
}

transfers_t *accounts_transfers (accounts_t *self)
{
    return self->transfers;
}

static int s_reserve_ts (accounts_t *self)
{
    if (self->applied_seq < self->ts_capacity)
        return 0;
    int64_t capacity = self->ts_capacity * 2;
    int64_t *ts = realloc (self->ts, (size_t)capacity * sizeof (int64_t));
    if (!ts)
        return -1;
    self->ts = ts;
    self->ts_capacity = capacity;
    return 0;
}

accounts_t *accounts_new (void)
{
    accounts_t *self = calloc (1, sizeof (accounts_t));
    if (!self)
        return NULL;
    self->ts_capacity = ACCOUNTS_TS_MIN;
    self->table = account_table_new (sizeof (account_t));
    self->ts = malloc ((size_t)self->ts_capacity * sizeof (int64_t));
    self->transfers = transfers_new ();
    if (!self->table || !self->ts || !self->transfers)
        goto failed;
    return self;
failed:
    accounts_destroy (&self);
    return NULL;
}

void accounts_destroy (accounts_t **self_p)
{
    assert (self_p);
    accounts_t *self = *self_p;
    if (!self)
        return;
    for (uint32_t record = self->table ? account_table_next (self->table, 0) : 0; record;
         record = account_table_next (self->table, record)) {
        account_t *account = s_account (self, record);
        free (account->history);
        for (uint32_t i = 0; i < account->settings_count; i++)
            free (account->settings[i].metadata);
        free (account->settings);
        free (account->pending);
    }
    transfers_destroy (&self->transfers);
    account_table_destroy (&self->table);
    free (self->ts);
    free (self->sorted);
    free (self);
    *self_p = NULL;
}

accounts_result_t accounts_apply (accounts_t *self, const event_t *event)
{
    assert (self);
    assert (event->seq == self->applied_seq + 1);
    if (s_reserve_ts (self))
        return ACCOUNTS_NOMEM;
    accounts_result_t result;
    change_t changes[2];
    //  -1 when the currency table is full: s_change skips it as full.
    int currency =
        event_type_moves_money (event->type) ? s_currency (self, event->currency) : 0;
    switch (event->type) {
    case EVENT_DEPOSITED:
        changes[0] = (change_t){.id = event->account, .delta = event->amount};
        result = s_change (self, changes, 1, event->seq, currency);
        break;
    case EVENT_WITHDRAWN:
        changes[0] = (change_t){.id = event->account, .delta = -event->amount};
        result = s_change (self, changes, 1, event->seq, currency);
        break;
    case EVENT_TRANSFERRED:
        changes[0] = (change_t){.id = event->from, .delta = -event->amount};
        changes[1] = (change_t){.id = event->to, .delta = event->amount};
        result = s_change (self, changes, 2, event->seq, currency);
        break;
    case EVENT_ACCOUNT_OPENED:
    case EVENT_ACCOUNT_UPDATED:
        result = s_settings (self, event);
        break;
    case EVENT_TRANSFER_PENDING:
    case EVENT_TRANSFER_POSTED:
    case EVENT_TRANSFER_VOIDED:
    case EVENT_TRANSFER_EXPIRED:
        result = currency < 0 ? ACCOUNTS_FULL : s_hold_event (self, event, currency);
        break;
    default:
        result = ACCOUNTS_UNKNOWN;
        break;
    }
    if (result == ACCOUNTS_NOMEM)
        return result;
    if (result == ACCOUNTS_APPLIED)
        self->events_applied++;
    else if (result == ACCOUNTS_UNKNOWN)
        self->unknown_skipped++;
    else if (result == ACCOUNTS_MISMATCH)
        self->mismatch_skipped++;
    else
        self->overflow_skipped++;
    self->ts[self->applied_seq++] = event->ts_ms;
    return result;
}

int64_t accounts_applied_seq (accounts_t *self)
{
    return self->applied_seq;
}

size_t accounts_count (accounts_t *self)
{
    return s_count (self);
}

uint64_t accounts_events_applied (accounts_t *self)
{
    return self->events_applied;
}

uint64_t accounts_unknown_skipped (accounts_t *self)
{
    return self->unknown_skipped;
}

uint64_t accounts_overflow_skipped (accounts_t *self)
{
    return self->overflow_skipped;
}

uint64_t accounts_mismatch_skipped (accounts_t *self)
{
    return self->mismatch_skipped;
}

const account_currency_t *accounts_currencies (accounts_t *self, size_t *count_p)
{
    *count_p = self->currency_count;
    return self->currencies;
}

void accounts_total_format (accounts_t *self, char *buffer, size_t buffer_size)
{
    accounts_int128_format (self->total, buffer, buffer_size);
}

void accounts_int128_format (accounts_int128_t total, char *buffer, size_t buffer_size)
{
    char digits[48];
    size_t length = 0;
    bool negative = total < 0;
    //  Digit by digit from the negative side, so the minimum value works too.
    if (!negative)
        total = -total;
    do {
        digits[length++] = (char)('0' - (int)(total % 10));
        total /= 10;
    } while (total != 0);
    size_t at = 0;
    if (negative && at + 1 < buffer_size)
        buffer[at++] = '-';
    while (length > 0 && at + 1 < buffer_size)
        buffer[at++] = digits[--length];
    buffer[at] = 0;
}

static account_t *s_lookup (accounts_t *self, const char *id)
{
    account_t *account = s_find (self, id);
    return account && account->version ? account : NULL;
}

//  Number of touches of account with seq <= at_seq.
static uint32_t s_touches_upto (const account_t *account, int64_t at_seq)
{
    uint32_t low = 0, high = account->version;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        if (account->history[middle].seq <= at_seq)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

static void s_state (accounts_t *self, const account_t *account, uint32_t touches,
                     account_state_t *state)
{
    assert (touches >= 1);
    const account_touch_t *touch = &account->history[touches - 1];
    *state = (account_state_t){.id = s_id (self, account),
                               .balance = touch->balance_after,
                               .version = touches,
                               .last_seq = touch->seq,
                               .currency = self->names[account->currency],
                               .limit_implicit = true};
    //  The settings as of that touch: the last change at or before it.
    uint32_t low = 0, high = account->settings_count;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        if (account->settings[middle].seq <= touch->seq)
            low = middle + 1;
        else
            high = middle;
    }
    if (low > 0) {
        const settings_t *settings = &account->settings[low - 1];
        state->limit_implicit = settings->limit_implicit;
        state->overdraft_limit = settings->overdraft_limit;
        state->metadata = settings->metadata;
    }
    //  The pending sums as of that touch, the same way.
    low = 0, high = account->pending_count;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        if (account->pending[middle].seq <= touch->seq)
            low = middle + 1;
        else
            high = middle;
    }
    if (low > 0) {
        state->pending_debits = account->pending[low - 1].debits;
        state->pending_credits = account->pending[low - 1].credits;
    }
}

int accounts_state_at (accounts_t *self, const char *id, int64_t at_seq,
                       account_state_t *state)
{
    account_t *account = s_lookup (self, id);
    if (!account)
        return -1;
    uint32_t touches = s_touches_upto (account, at_seq);
    if (touches == 0)
        return -1;
    s_state (self, account, touches, state);
    return 0;
}

int64_t accounts_seq_at_ts (accounts_t *self, int64_t ts_ms)
{
    int64_t low = 0, high = self->applied_seq;
    while (low < high) {
        int64_t middle = low + (high - low) / 2;
        if (self->ts[middle] <= ts_ms)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

int accounts_touches (accounts_t *self, const char *id, int64_t after_seq, size_t limit,
                      account_touch_t *touches, bool *more)
{
    account_t *account = s_lookup (self, id);
    if (!account)
        return -1;
    uint32_t first = s_touches_upto (account, after_seq);
    size_t count = account->version - first;
    *more = count > limit;
    if (count > limit)
        count = limit;
    memcpy (touches, account->history + first, count * sizeof (account_touch_t));
    return (int)count;
}

static int s_compare_ids (const void *a, const void *b, void *arg)
{
    accounts_t *self = arg;
    size_t bytes;
    return strcmp (account_table_name (self->table, *(const uint32_t *)a, &bytes),
                   account_table_name (self->table, *(const uint32_t *)b, &bytes));
}

//  Sorts the accounts added since the last call and merges them in.
static int s_sort (accounts_t *self)
{
    uint32_t count = s_count (self);
    uint32_t added = count - self->sorted_count;
    if (added == 0)
        return 0;
    uint32_t *fresh = malloc (added * sizeof (uint32_t));
    uint32_t *sorted = realloc (self->sorted, count * sizeof (uint32_t));
    if (!fresh || !sorted) {
        free (fresh);
        if (sorted)
            self->sorted = sorted;
        return -1;
    }
    self->sorted = sorted;
    for (uint32_t i = 0; i < added; i++)
        fresh[i] = self->sorted_last =
            account_table_next (self->table, self->sorted_last);
    qsort_r (fresh, added, sizeof (uint32_t), s_compare_ids, self);
    //  Merge from the back so the sorted run can be extended in place.
    int64_t old = (int64_t)self->sorted_count - 1, add = (int64_t)added - 1;
    for (int64_t to = (int64_t)count - 1; add >= 0; to--) {
        if (old >= 0 && s_compare_ids (&sorted[old], &fresh[add], self) > 0)
            sorted[to] = sorted[old--];
        else
            sorted[to] = fresh[add--];
    }
    self->sorted_count = count;
    free (fresh);
    return 0;
}

int accounts_list (accounts_t *self, const char *after, size_t limit,
                   account_state_t *states, bool *more)
{
    if (s_sort (self))
        return -1;
    uint32_t low = 0, high = self->sorted_count;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        if (strcmp (s_id (self, s_account (self, self->sorted[middle])), after) <= 0)
            low = middle + 1;
        else
            high = middle;
    }
    size_t count = 0;
    for (; low < self->sorted_count && count < limit; low++) {
        const account_t *account = s_account (self, self->sorted[low]);
        if (account->version == 0)
            continue;
        s_state (self, account, account->version, &states[count++]);
    }
    *more = low < self->sorted_count;
    return (int)count;
}

int accounts_fold_version (void)
{
    return ACCOUNTS_FOLD_VERSION;
}

//  The fixed head of a saved state; then currency_count names of
//  EVENT_CURRENCY_BYTES_MAX + 1 bytes, the ts of every seq, the accounts.
typedef struct {
    int64_t applied_seq;
    uint64_t events_applied;
    uint64_t unknown_skipped;
    uint64_t overflow_skipped;
    uint64_t count;
    uint64_t mismatch_skipped;
    uint64_t currency_count;
    uint64_t transfer_count; // transfer_t records after the accounts
} saved_head_t;

//  One account's head in a saved state, then id_bytes of id, version
//  touches, settings_count settings (each saved_settings_t, then its
//  metadata_bytes of metadata), pending_count pending_t.
typedef struct {
    uint32_t id_bytes;
    uint32_t version;
    uint32_t settings_count;
    uint32_t currency;
    uint32_t pending_count;
    uint32_t unused; // zero
} saved_account_t;

typedef struct {
    int64_t seq;
    int64_t overdraft_limit;
    uint32_t limit_implicit;
    uint32_t metadata_bytes; // 0: none
} saved_settings_t;

static int s_save_account (accounts_t *self, const account_t *account,
                           accounts_write_fn *write_fn, void *arg)
{
    const char *id = s_id (self, account);
    saved_account_t saved = {(uint32_t)strlen (id),   account->version,
                             account->settings_count, account->currency,
                             account->pending_count,  0};
    if (write_fn (arg, &saved, sizeof saved) || write_fn (arg, id, saved.id_bytes) ||
        write_fn (arg, account->history, account->version * sizeof (account_touch_t)))
        return -1;
    for (uint32_t i = 0; i < account->settings_count; i++) {
        const settings_t *settings = &account->settings[i];
        saved_settings_t entry = {
            settings->seq, settings->overdraft_limit, settings->limit_implicit,
            settings->metadata ? (uint32_t)strlen (settings->metadata) : 0};
        if (write_fn (arg, &entry, sizeof entry) ||
            write_fn (arg, settings->metadata, entry.metadata_bytes))
            return -1;
    }
    return write_fn (arg, account->pending, account->pending_count * sizeof (pending_t));
}

int accounts_save (accounts_t *self, accounts_write_fn *write_fn, void *arg)
{
    assert (self && write_fn);
    saved_head_t head = {self->applied_seq,     self->events_applied,
                         self->unknown_skipped, self->overflow_skipped,
                         s_count (self),        self->mismatch_skipped,
                         self->currency_count,  transfers_count (self->transfers)};
    if (write_fn (arg, &head, sizeof head) ||
        write_fn (arg, self->names, self->currency_count * sizeof self->names[0]) ||
        write_fn (arg, self->ts, (size_t)self->applied_seq * sizeof (int64_t)))
        return -1;
    for (uint32_t record = account_table_next (self->table, 0); record;
         record = account_table_next (self->table, record))
        if (s_save_account (self, s_account (self, record), write_fn, arg))
            return -1;
    return transfers_save (self->transfers, write_fn, arg);
}

//  Takes bytes from *data (left bytes remain); -1 if they are not there.
static int s_take (const uint8_t **data, size_t *left, void *out, size_t bytes)
{
    if (*left < bytes)
        return -1;
    if (out)
        memcpy (out, *data, bytes);
    *data += bytes;
    *left -= bytes;
    return 0;
}

//  An account's saved settings, in seq order within the saved state.
static int s_load_settings (accounts_t *self, account_t *account, uint32_t count,
                            const uint8_t **data, size_t *left)
{
    if (count == 0)
        return 0;
    if (*left / sizeof (saved_settings_t) < count ||
        !(account->settings = calloc (count, sizeof (settings_t))))
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        saved_settings_t entry;
        if (s_take (data, left, &entry, sizeof entry) || entry.seq < 1 ||
            entry.seq > self->applied_seq ||
            (i > 0 && entry.seq <= account->settings[i - 1].seq) ||
            entry.metadata_bytes > *left)
            return -1;
        settings_t *settings = &account->settings[account->settings_count++];
        *settings = (settings_t){entry.seq, entry.overdraft_limit,
                                 entry.limit_implicit != 0, NULL};
        if (entry.metadata_bytes) {
            if (!(settings->metadata = malloc (entry.metadata_bytes + 1)))
                return -1;
            s_take (data, left, settings->metadata, entry.metadata_bytes);
            settings->metadata[entry.metadata_bytes] = 0;
            if (memchr (settings->metadata, 0, entry.metadata_bytes))
                return -1;
        }
    }
    return 0;
}

//  An account's saved pending sums: in seq order, never negative.
static int s_load_pending (accounts_t *self, account_t *account, uint32_t count,
                           const uint8_t **data, size_t *left)
{
    if (count == 0)
        return 0;
    if (*left / sizeof (pending_t) < count ||
        !(account->pending = malloc (count * sizeof (pending_t))))
        return -1;
    s_take (data, left, account->pending, count * sizeof (pending_t));
    account->pending_count = count;
    for (uint32_t i = 0; i < count; i++) {
        const pending_t *entry = &account->pending[i];
        if (entry->seq < 1 || entry->seq > self->applied_seq || entry->debits < 0 ||
            entry->credits < 0 || (i > 0 && entry->seq <= account->pending[i - 1].seq))
            return -1;
    }
    return 0;
}

//  One saved account into self; its touches must be in seq order within
//  the saved applied_seq, its id new and valid, its currency known.
static int s_load_account (accounts_t *self, const uint8_t **data, size_t *left)
{
    saved_account_t saved;
    char id[EVENT_ACCOUNT_BYTES_MAX + 1];
    if (s_take (data, left, &saved, sizeof saved) || saved.id_bytes == 0 ||
        saved.id_bytes > EVENT_ACCOUNT_BYTES_MAX ||
        saved.currency >= self->currency_count || s_take (data, left, id, saved.id_bytes))
        return -1;
    id[saved.id_bytes] = 0;
    if (memchr (id, 0, saved.id_bytes) ||
        *left / sizeof (account_touch_t) < saved.version)
        return -1;
    if (s_find (self, id))
        return -1;
    account_t *account = s_add (self, id);
    if (!account)
        return -1;
    account->currency = (uint16_t)saved.currency;
    if (saved.version) {
        account->history = malloc (saved.version * sizeof (account_touch_t));
        if (!account->history)
            return -1;
        account->history_capacity = saved.version;
        s_take (data, left, account->history, saved.version * sizeof (account_touch_t));
    }
    for (uint32_t i = 0; i < saved.version; i++) {
        int64_t seq = account->history[i].seq;
        if (seq < 1 || seq > self->applied_seq ||
            (i > 0 && seq <= account->history[i - 1].seq))
            return -1;
    }
    account->version = saved.version;
    account->balance =
        saved.version ? account->history[saved.version - 1].balance_after : 0;
    self->total += account->balance;
    if (saved.version) {
        self->currencies[saved.currency].accounts++;
        self->currencies[saved.currency].total += account->balance;
    }
    if (s_load_settings (self, account, saved.settings_count, data, left))
        return -1;
    return s_load_pending (self, account, saved.pending_count, data, left);
}

int accounts_load (accounts_t *self, const uint8_t *data, size_t bytes)
{
    assert (self && self->applied_seq == 0 && s_count (self) == 0);
    saved_head_t head;
    if (s_take (&data, &bytes, &head, sizeof head) || head.applied_seq < 0 ||
        head.count > ACCOUNTS_COUNT_MAX ||
        head.currency_count > ACCOUNTS_CURRENCIES_MAX ||
        s_take (&data, &bytes, self->names,
                head.currency_count * sizeof self->names[0]) ||
        bytes / sizeof (int64_t) < (uint64_t)head.applied_seq)
        return -1;
    self->currency_count = head.currency_count;
    for (size_t i = 0; i < self->currency_count; i++) {
        if (memchr (self->names[i], 0, sizeof self->names[i]) == NULL)
            return -1;
        self->currencies[i] = (account_currency_t){.currency = self->names[i]};
    }
    int64_t capacity = self->ts_capacity;
    while (capacity < head.applied_seq)
        capacity *= 2;
    int64_t *ts = realloc (self->ts, (size_t)capacity * sizeof (int64_t));
    if (!ts)
        return -1;
    self->ts = ts;
    self->ts_capacity = capacity;
    s_take (&data, &bytes, self->ts, (size_t)head.applied_seq * sizeof (int64_t));
    self->applied_seq = head.applied_seq;
    for (uint64_t i = 0; i < head.count; i++)
        if (s_load_account (self, &data, &bytes))
            return -1;
    if (transfers_load (self->transfers, head.transfer_count, head.applied_seq, &data,
                        &bytes))
        return -1;
    if (bytes != 0)
        return -1;
    self->events_applied = head.events_applied;
    self->unknown_skipped = head.unknown_skipped;
    self->overflow_skipped = head.overflow_skipped;
    self->mismatch_skipped = head.mismatch_skipped;
    return 0;
}
