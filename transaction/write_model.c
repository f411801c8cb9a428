/*  write_model — confirmed balances + this instance's holds (see .h).
 */
#include "write_model.h"

#include <czmq.h>

#include "account_table.h"
#include "dedupe.h"
#include "key_hash.h"
#include "log.h"

typedef struct write_model_account {
    int64_t balance;        // confirmed
    int64_t version;        // confirmed events that touched the account
    int64_t pending_debit;  // >= 0: debits this instance has in flight
    int64_t pending_events; // >= 0: events this instance has in flight
    int64_t held_out;       // >= 0: confirmed unresolved holds debiting it
    uint32_t record;        // its own, in the table: names it
    //  Schema 2, confirmed: set by the account's first event ("" before).
    char currency[EVENT_CURRENCY_BYTES_MAX + 1];
    bool limit_set;          // an account event gave overdraft_limit
    int64_t overdraft_limit; // when limit_set: >= 0 or EVENT_LIMIT_UNLIMITED
    uint64_t metadata_hash;  // key_hash of its canonical metadata; 0: none
} account_t;

struct write_model {
    //  Accounts by name. A record does not move while others are added,
    //  so a pointer to one stays valid (a transfer holds two).
    account_table_t *accounts;
    int64_t applied_seq;
    write_model_record_t *recent; // ring of WRITE_MODEL_RECENT_EVENTS_MAX, by seq
    //  id -> its home slot << 16 | ring index + 1 (0: empty), linear
    //  probing. Every kept record is reachable from its id's hash. An id
    //  that a later kept record repeats (possible beyond the stream's
    //  dedupe window) has two entries: lookups take the later one. So
    //  adding an entry never reads a record, and the home in the slot lets
    //  lookups pass other ids, and deletion move entries, without reading
    //  theirs either (a cache miss each in a 10 MiB ring).
    uint32_t *ids; // WRITE_MODEL_ID_SLOTS
    //  The home slot of each ring record's id, so that forgetting a
    //  record never hashes its id again.
    uint32_t *homes; // WRITE_MODEL_RECENT_EVENTS_MAX
    dedupe_t *seen;  // ids of the last WRITE_MODEL_SEEN_IDS_MAX events, hashes only
    bool seen_started; // the window holds every id from its first seq on
    int64_t head_seq;  // write_model_set_head
    //  Pending transfers by id (owned), and the unresolved ones with a
    //  timeout in a binary min-heap by timeout_at_ms.
    zhashx_t *pendings;
    write_model_pending_t **due;
    size_t due_count, due_capacity;
    size_t unresolved;
};

_Static_assert((WRITE_MODEL_RECENT_EVENTS_MAX & (WRITE_MODEL_RECENT_EVENTS_MAX - 1)) == 0,
               "ring indexes are masked");
_Static_assert(WRITE_MODEL_ID_SLOTS > WRITE_MODEL_RECENT_EVENTS_MAX &&
                   (WRITE_MODEL_ID_SLOTS & (WRITE_MODEL_ID_SLOTS - 1)) == 0,
               "the id index never fills, and its slots are masked");
_Static_assert(WRITE_MODEL_RECENT_EVENTS_MAX < (1 << 16) &&
                   WRITE_MODEL_ID_SLOTS <= (1 << 16),
               "a slot holds a ring index + 1 and a home in 16 bits each");
#define WRITE_MODEL_ID_MASK (WRITE_MODEL_ID_SLOTS - 1)

static uint32_t s_slot_entry (uint32_t home, uint32_t ring)
{
    return home << 16 | (ring + 1);
}

static uint32_t s_slot_home (uint32_t entry)
{
    return entry >> 16;
}

static uint32_t s_slot_ring (uint32_t entry)
{
    return (entry & 0xffff) - 1;
}

static void s_pending_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  A hash hit is all the window knows: write_model_seen says "probably".
static bool s_seen_confirm (void *arg, int64_t seq, const char *id)
{
    return true;
}

write_model_t *write_model_new (void)
{
    write_model_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->accounts = account_table_new (sizeof (account_t));
    self->recent = calloc (WRITE_MODEL_RECENT_EVENTS_MAX, sizeof *self->recent);
    self->ids = calloc (WRITE_MODEL_ID_SLOTS, sizeof *self->ids);
    self->homes = calloc (WRITE_MODEL_RECENT_EVENTS_MAX, sizeof *self->homes);
    self->seen = dedupe_new (WRITE_MODEL_SEEN_IDS_MAX, 1, s_seen_confirm, NULL);
    self->pendings = zhashx_new ();
    if (!self->accounts || !self->recent || !self->ids || !self->homes || !self->seen ||
        !self->pendings)
        goto failed;
    zhashx_set_destructor (self->pendings, s_pending_destroy);
    return self;
failed:
    write_model_destroy (&self);
    return NULL;
}

void write_model_destroy (write_model_t **self_p)
{
    assert (self_p);
    write_model_t *self = *self_p;
    if (self) {
        account_table_destroy (&self->accounts);
        free (self->recent);
        free (self->ids);
        free (self->homes);
        dedupe_destroy (&self->seen);
        zhashx_destroy (&self->pendings);
        free (self->due);
        free (self);
        *self_p = NULL;
    }
}

//  snprintf ("%s") without the format machinery: this runs per event.
static void s_copy (char *target, size_t size, const char *source)
{
    size_t bytes = strnlen (source, size - 1);
    memcpy (target, source, bytes);
    target[bytes] = '\0';
}

static account_t *s_account (write_model_t *self, const char *name, bool create)
{
    uint32_t record = create ? account_table_ensure (self->accounts, name)
                             : account_table_find (self->accounts, name);
    assert (record || !create);
    if (!record)
        return NULL;
    account_t *account = account_table_value (self->accounts, record);
    account->record = record;
    return account;
}

//  An account with nothing confirmed and nothing held is not worth keeping.
static void s_forget_if_empty (write_model_t *self, account_t *account)
{
    if (account->version == 0 && account->pending_events == 0)
        account_table_remove (self->accounts, account->record);
}

//  An id's home slot (key_hash.h: ids are hashed twice per event).
static uint32_t s_id_hash (const char *id)
{
    return (uint32_t)(key_hash (id) & WRITE_MODEL_ID_MASK);
}

//  Drops ring's record from the index (before the ring slot is reused).
//  Backward-shift deletion: entries after the hole that may sit in it
//  move back, so every entry stays reachable without tombstones.
static void s_id_forget (write_model_t *self, uint32_t ring)
{
    uint32_t entry = s_slot_entry (self->homes[ring], ring);
    size_t hole = self->homes[ring];
    while (self->ids[hole] && self->ids[hole] != entry)
        hole = (hole + 1) & WRITE_MODEL_ID_MASK;
    assert (self->ids[hole]); // every kept record has its entry
    for (size_t next = (hole + 1) & WRITE_MODEL_ID_MASK; self->ids[next];
         next = (next + 1) & WRITE_MODEL_ID_MASK) {
        size_t home = s_slot_home (self->ids[next]);
        //  next's entry may move to hole when hole is between its home
        //  and next (cyclically), i.e. at least as close to home.
        if (((next - home) & WRITE_MODEL_ID_MASK) >=
            ((next - hole) & WRITE_MODEL_ID_MASK)) {
            self->ids[hole] = self->ids[next];
            hole = next;
        }
    }
    self->ids[hole] = 0;
}

static void s_id_learn (write_model_t *self, uint32_t ring, uint32_t home)
{
    self->homes[ring] = home;
    size_t slot = home;
    while (self->ids[slot])
        slot = (slot + 1) & WRITE_MODEL_ID_MASK;
    self->ids[slot] = s_slot_entry (home, ring);
}

//  account_opened / account_updated: a touch that moves no money.
static int s_apply_settings (write_model_t *self, const event_t *event,
                             write_model_record_t *record)
{
    account_t *account = s_account (self, event->account, true);
    if (event->type == EVENT_ACCOUNT_OPENED && account->version &&
        !streq (account->currency, event->currency)) {
        log_warn ("event seq %" PRId64 " opens %s again in another currency; not applied",
                  event->seq, event->account);
        return 0;
    }
    if (!account->version)
        s_copy (account->currency, sizeof account->currency,
                event->type == EVENT_ACCOUNT_OPENED ? event->currency
                                                    : EVENT_CURRENCY_V1);
    if (event->has_limit) {
        account->limit_set = true;
        account->overdraft_limit = event->overdraft_limit;
    }
    if (event->metadata_bytes)
        account->metadata_hash =
            streq (event->metadata, "{}") ? 0 : key_hash (event->metadata);
    account->version++;
    record->version = account->version;
    s_copy (record->account, sizeof record->account, event->account);
    record->balance = account->balance;
    return 0;
}

//  --------------------------------------------------------------------
//  Pending transfers

const char *write_model_pending_state_name (write_model_pending_state_t state)
{
    static const char *names[] = {"pending", "posted", "voided", "expired"};
    return (unsigned)state < 4 ? names[state] : "";
}

static bool s_due_before (const write_model_pending_t *a, const write_model_pending_t *b)
{
    return a->timeout_at_ms < b->timeout_at_ms;
}

static void s_due_push (write_model_t *self, write_model_pending_t *pending)
{
    if (pending->due_queued || !pending->timeout_at_ms)
        return;
    if (self->due_count == self->due_capacity) {
        size_t capacity = self->due_capacity ? self->due_capacity * 2 : 64;
        write_model_pending_t **due = realloc (self->due, capacity * sizeof *due);
        assert (due);
        self->due = due;
        self->due_capacity = capacity;
    }
    size_t at = self->due_count++;
    while (at > 0 && s_due_before (pending, self->due[(at - 1) / 2])) {
        self->due[at] = self->due[(at - 1) / 2];
        at = (at - 1) / 2;
    }
    self->due[at] = pending;
    pending->due_queued = true;
}

static write_model_pending_t *s_due_pop (write_model_t *self)
{
    assert (self->due_count > 0);
    write_model_pending_t *top = self->due[0];
    write_model_pending_t *last = self->due[--self->due_count];
    size_t at = 0;
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= self->due_count)
            break;
        if (child + 1 < self->due_count &&
            s_due_before (self->due[child + 1], self->due[child]))
            child++;
        if (!s_due_before (self->due[child], last))
            break;
        self->due[at] = self->due[child];
        at = child;
    }
    if (self->due_count)
        self->due[at] = last;
    top->due_queued = false;
    return top;
}

const write_model_pending_t *write_model_next_due (write_model_t *self, int64_t now_ms)
{
    while (self->due_count && self->due[0]->timeout_at_ms <= now_ms) {
        write_model_pending_t *pending = s_due_pop (self);
        if (pending->state == WRITE_MODEL_PENDING)
            return pending;
    }
    return NULL;
}

void write_model_due_again (write_model_t *self, const char *id)
{
    write_model_pending_t *pending = zhashx_lookup (self->pendings, id);
    if (pending && pending->state == WRITE_MODEL_PENDING)
        s_due_push (self, pending);
}

const write_model_pending_t *write_model_pending (write_model_t *self, const char *id)
{
    return zhashx_lookup (self->pendings, id);
}

size_t write_model_pending_count (write_model_t *self)
{
    return self->unresolved;
}

//  A new hold: reserves amount of from. A repeated id (beyond the
//  stream's dedupe window) is not a second hold.
static void s_hold_open (write_model_t *self, const event_t *event, account_t *from)
{
    if (zhashx_lookup (self->pendings, event->id)) {
        log_warn ("event seq %" PRId64 " repeats the hold id %s; not applied", event->seq,
                  event->id);
        return;
    }
    write_model_pending_t *pending = calloc (1, sizeof *pending);
    assert (pending);
    s_copy (pending->id, sizeof pending->id, event->id);
    s_copy (pending->from, sizeof pending->from, event->from);
    s_copy (pending->to, sizeof pending->to, event->to);
    s_copy (pending->currency, sizeof pending->currency, event->currency);
    pending->amount = event->amount;
    pending->timeout_at_ms = event->timeout_at_ms;
    zhashx_insert (self->pendings, pending->id, pending);
    from->held_out += event->amount;
    self->unresolved++;
    s_due_push (self, pending);
}

//  posted, voided, expired of a known unresolved hold between the same
//  accounts (else only the touch counts, as the stream counted it).
static int s_hold_resolve (write_model_t *self, const event_t *event, account_t *from,
                           account_t *to)
{
    write_model_pending_t *pending = zhashx_lookup (self->pendings, event->pending_id);
    bool posted = event->type == EVENT_TRANSFER_POSTED;
    if (!pending || pending->state != WRITE_MODEL_PENDING ||
        !streq (pending->from, event->from) || !streq (pending->to, event->to) ||
        (posted ? event->amount > pending->amount : event->amount != pending->amount)) {
        log_warn ("event seq %" PRId64 " resolves hold %s, which is %s; not applied",
                  event->seq, event->pending_id,
                  pending ? write_model_pending_state_name (pending->state) : "unknown");
        return 0;
    }
    int64_t from_after = from->balance, to_after = to->balance;
    if (posted && (__builtin_sub_overflow (from->balance, event->amount, &from_after) ||
                   __builtin_add_overflow (to->balance, event->amount, &to_after))) {
        log_error ("event seq %" PRId64 " overflows a balance; not applied", event->seq);
        return -1;
    }
    from->balance = from_after;
    to->balance = to_after;
    from->held_out -= pending->amount;
    assert (from->held_out >= 0);
    pending->state = posted                                 ? WRITE_MODEL_POSTED
                     : event->type == EVENT_TRANSFER_VOIDED ? WRITE_MODEL_VOIDED
                                                            : WRITE_MODEL_EXPIRED;
    self->unresolved--;
    return 0;
}

//  The four hold events: each touches from and to (the stream counts
//  both versions whatever the event does here).
static int s_apply_hold (write_model_t *self, const event_t *event,
                         write_model_record_t *record)
{
    account_t *from = s_account (self, event->from, true);
    account_t *to = s_account (self, event->to, true);
    int rc = 0;
    if ((from->version && !streq (from->currency, event->currency)) ||
        (to->version && !streq (to->currency, event->currency)))
        log_warn ("event seq %" PRId64 " moves %s of an account in another currency; "
                  "not applied",
                  event->seq, event->currency);
    else if (event->type == EVENT_TRANSFER_PENDING)
        s_hold_open (self, event, from);
    else
        rc = s_hold_resolve (self, event, from, to);
    if (!from->version)
        s_copy (from->currency, sizeof from->currency, event->currency);
    if (!to->version)
        s_copy (to->currency, sizeof to->currency, event->currency);
    from->version++;
    to->version++;
    s_copy (record->account, sizeof record->account, event->from);
    s_copy (record->to, sizeof record->to, event->to);
    record->balance = from->balance;
    record->balance_to = to->balance;
    return rc;
}

void write_model_settings (const write_model_account_t *entry,
                           write_model_settings_t *settings)
{
    *settings = (write_model_settings_t){.currency = ""};
    if (!entry || !entry->version)
        return;
    settings->known = true;
    settings->currency = entry->currency;
    settings->limit_set = entry->limit_set;
    settings->overdraft_limit = entry->overdraft_limit;
    settings->metadata_hash = entry->metadata_hash;
}

int write_model_apply (write_model_t *self, const event_t *event)
{
    assert (event->seq == self->applied_seq + 1);
    self->applied_seq = event->seq;
    uint32_t ring = (uint32_t)(event->seq % WRITE_MODEL_RECENT_EVENTS_MAX);
    write_model_record_t *record = &self->recent[ring];
    //  The id's slots and those of the record it replaces are far apart
    //  in the index: fetch both at once rather than one miss after another.
    uint32_t home = s_id_hash (event->id);
    __builtin_prefetch (&self->ids[home], 1);
    bool seen = self->seen_started || event->seq > self->head_seq - WRITE_MODEL_SEEN_IDS_MAX;
    if (seen)
        dedupe_prefetch (self->seen, event->id, event->seq);
    if (record->seq)
        s_id_forget (self, ring);
    //  Every member is written (no memset: only the lines in use are
    //  touched).
    record->seq = event->seq;
    record->ts_ms = event->ts_ms;
    record->type = event->type;
    record->amount = event->amount;
    record->balance = record->balance_to = 0;
    record->account[0] = record->to[0] = '\0';
    s_copy (record->currency, sizeof record->currency, event->currency);
    record->has_limit = event->has_limit;
    record->overdraft_limit = event->overdraft_limit;
    s_copy (record->id, sizeof record->id, event->id);
    s_copy (record->pending_id, sizeof record->pending_id, event->pending_id);
    record->timeout_at_ms = event->timeout_at_ms;
    s_id_learn (self, ring, home);
    if (seen) {
        if (!self->seen_started)
            dedupe_start_at (self->seen, event->seq);
        self->seen_started = true;
        dedupe_add (self->seen, event->id, event->seq);
        dedupe_settle (self->seen);
    }

    if (event->type == EVENT_ACCOUNT_OPENED || event->type == EVENT_ACCOUNT_UPDATED)
        return s_apply_settings (self, event, record);
    if (event->type >= EVENT_TRANSFER_PENDING && event->type <= EVENT_TRANSFER_EXPIRED)
        return s_apply_hold (self, event, record);
    const char *debited = NULL, *credited = NULL;
    if (event->type == EVENT_DEPOSITED)
        credited = event->account;
    else if (event->type == EVENT_WITHDRAWN)
        debited = event->account;
    else if (event->type == EVENT_TRANSFERRED)
        debited = event->from, credited = event->to;
    else
        return 0;
    account_t *from = debited ? s_account (self, debited, true) : NULL;
    account_t *to = credited ? s_account (self, credited, true) : NULL;
    //  Money in another currency than an account's moves nothing, as in
    //  accounting's fold (only a writer without the rule proposes it).
    if ((from && from->version && !streq (from->currency, event->currency)) ||
        (to && to->version && !streq (to->currency, event->currency))) {
        log_warn ("event seq %" PRId64 " moves %s of an account in another currency; "
                  "not applied",
                  event->seq, event->currency);
        if (from)
            s_forget_if_empty (self, from);
        if (to && to != from)
            s_forget_if_empty (self, to);
        return 0;
    }
    if (from && !from->version)
        s_copy (from->currency, sizeof from->currency, event->currency);
    if (to && !to->version)
        s_copy (to->currency, sizeof to->currency, event->currency);
    int64_t from_after = 0, to_after = 0;
    if ((from && __builtin_sub_overflow (from->balance, event->amount, &from_after)) ||
        (to && __builtin_add_overflow (to->balance, event->amount, &to_after))) {
        log_error ("event seq %" PRId64 " overflows a balance; not applied", event->seq);
        return -1;
    }
    if (from)
        from->balance = from_after, from->version++;
    if (to)
        to->balance = to_after, to->version++;
    s_copy (record->account, sizeof record->account, debited ? debited : credited);
    record->balance = from ? from_after : to_after;
    if (event->type == EVENT_TRANSFERRED) {
        s_copy (record->to, sizeof record->to, credited);
        record->balance_to = to_after;
    }
    return 0;
}

int64_t write_model_applied_seq (write_model_t *self)
{
    return self->applied_seq;
}

size_t write_model_account_count (write_model_t *self)
{
    return account_table_size (self->accounts);
}

int64_t write_model_balance (write_model_t *self, const char *name)
{
    account_t *account = s_account (self, name, false);
    return account ? account->balance : 0;
}

int64_t write_model_version (write_model_t *self, const char *name)
{
    account_t *account = s_account (self, name, false);
    return account ? account->version : 0;
}

int64_t write_model_available (write_model_t *self, const char *name)
{
    account_t *account = s_account (self, name, false);
    // Pending debits are bounded by inflight * 10^15, held ones by the
    // holds' count * 10^15: far from overflow.
    return account ? account->balance - account->held_out - account->pending_debit : 0;
}

write_model_account_t *write_model_figures (write_model_t *self, const char *name,
                                            int64_t *balance, int64_t *available,
                                            int64_t *version)
{
    account_t *account = s_account (self, name, false);
    *balance = account ? account->balance : 0;
    *available =
        account ? account->balance - account->held_out - account->pending_debit : 0;
    *version = account ? account->version : 0;
    return account;
}

write_model_account_t *write_model_hold (write_model_t *self,
                                         write_model_account_t *entry, const char *name,
                                         int64_t debit, int64_t events)
{
    account_t *account = entry ? entry : s_account (self, name, true);
    account->pending_debit += debit;
    account->pending_events += events;
    return account;
}

void write_model_release (write_model_t *self, write_model_account_t *entry,
                          int64_t debit, int64_t events)
{
    account_t *account = entry;
    account->pending_debit -= debit;
    account->pending_events -= events;
    assert (account->pending_debit >= 0 && account->pending_events >= 0);
    s_forget_if_empty (self, account);
}

const write_model_record_t *write_model_record (write_model_t *self, int64_t seq)
{
    if (seq < 1)
        return NULL;
    const write_model_record_t *record =
        &self->recent[seq % WRITE_MODEL_RECENT_EVENTS_MAX];
    return record->seq == seq ? record : NULL;
}

int64_t write_model_find (write_model_t *self, const char *id)
{
    uint32_t home = s_id_hash (id);
    int64_t found = 0;
    for (size_t slot = home; self->ids[slot]; slot = (slot + 1) & WRITE_MODEL_ID_MASK) {
        uint32_t entry = self->ids[slot];
        const write_model_record_t *record = &self->recent[s_slot_ring (entry)];
        if (s_slot_home (entry) == home && record->seq > found && streq (record->id, id))
            found = record->seq;
    }
    return found;
}

int64_t write_model_seen (write_model_t *self, const char *id)
{
    assert (self && id);
    return dedupe_find (self->seen, id);
}

void write_model_set_head (write_model_t *self, int64_t head_seq)
{
    assert (self);
    if (head_seq > self->head_seq)
        self->head_seq = head_seq;
}
