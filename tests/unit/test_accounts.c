/*  test_accounts — claims about the accounting fold, checked against a
    small model (full per-account histories kept the slow, obvious way)
    over randomized event sequences.
*/
#include <assert.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "check.h"

#define MODEL_ACCOUNTS 37 // few enough that accounts are touched many times
#define MODEL_EVENTS   5000
typedef struct {
    int64_t seq[MODEL_EVENTS * 2];
    int64_t balance[MODEL_EVENTS * 2];
    int count;
} model_account_t;

static model_account_t s_model[MODEL_ACCOUNTS];
static int64_t s_ts[MODEL_EVENTS + 1];

static void s_name (int index, char *buffer)
{
    //  Names that do not sort like their indices.
    snprintf (buffer, EVENT_ACCOUNT_BYTES_MAX, "acct-%d", (index * 7919) % 1000);
}

static event_t s_event (int64_t seq, int64_t ts_ms, event_type_t type, int64_t amount)
{
    event_t event;
    memset (&event, 0, sizeof event);
    event.seq = seq;
    event.ts_ms = ts_ms;
    event.type = type;
    event.amount = amount;
    return event;
}

static void s_model_touch (int index, int64_t seq, int64_t delta)
{
    model_account_t *account = &s_model[index];
    int64_t before = account->count ? account->balance[account->count - 1] : 0;
    account->seq[account->count] = seq;
    account->balance[account->count++] = before + delta;
}

//  State of the model account at seq; -1 when it had no touch by then.
static int s_model_at (int index, int64_t at_seq, int64_t *balance, int64_t *version,
                       int64_t *last_seq)
{
    model_account_t *account = &s_model[index];
    int touches = 0;
    while (touches < account->count && account->seq[touches] <= at_seq)
        touches++;
    if (touches == 0)
        return -1;
    *balance = account->balance[touches - 1];
    *version = touches;
    *last_seq = account->seq[touches - 1];
    return 0;
}

//  Every claim of the fold against the model, at many points.
static void s_check_model (accounts_t *accounts)
{
    CHECK (accounts_applied_seq (accounts) == MODEL_EVENTS);
    for (int64_t at_seq = 0; at_seq <= MODEL_EVENTS;
         at_seq += 1 + (at_seq * 7 + 13) % 50) {
        for (int index = 0; index < MODEL_ACCOUNTS; index++) {
            char name[EVENT_ACCOUNT_BYTES_MAX];
            s_name (index, name);
            int64_t balance, version, last_seq;
            account_state_t state;
            int expected = s_model_at (index, at_seq, &balance, &version, &last_seq);
            CHECK (accounts_state_at (accounts, name, at_seq, &state) == expected);
            if (expected == 0)
                CHECK (state.balance == balance && state.version == version &&
                       state.last_seq == last_seq && strcmp (state.id, name) == 0);
        }
    }
    //  Time travel by ts: the last seq with ts <= t.
    for (int64_t seq = 1; seq <= MODEL_EVENTS; seq += 1 + (seq * 3 + 5) % 20) {
        int64_t expected = seq;
        while (expected < MODEL_EVENTS && s_ts[expected + 1] <= s_ts[seq])
            expected++;
        CHECK (accounts_seq_at_ts (accounts, s_ts[seq]) == expected);
    }
    CHECK (accounts_seq_at_ts (accounts, s_ts[1] - 1) == 0);
    //  Touches page through the whole history.
    for (int index = 0; index < MODEL_ACCOUNTS; index++) {
        char name[EVENT_ACCOUNT_BYTES_MAX];
        s_name (index, name);
        account_touch_t touches[7];
        int64_t after = 0;
        int seen = 0;
        bool more = true;
        while (more) {
            int count = accounts_touches (accounts, name, after, 7, touches, &more);
            CHECK (count >= 0);
            for (int i = 0; i < count; i++, seen++) {
                CHECK (touches[i].seq == s_model[index].seq[seen]);
                CHECK (touches[i].balance_after == s_model[index].balance[seen]);
                after = touches[i].seq;
            }
        }
        CHECK (seen == s_model[index].count);
    }
}

//  MODEL_EVENTS random events into accounts and the model.
static void s_fold_random (accounts_t *accounts)
{
    srand (42);
    int64_t ts = 1700000000000;
    for (int64_t seq = 1; seq <= MODEL_EVENTS; seq++) {
        ts += rand () % 3; // equal timestamps happen
        s_ts[seq] = ts;
        int kind = rand () % 10;
        int a = rand () % MODEL_ACCOUNTS,
            b = (a + 1 + rand () % (MODEL_ACCOUNTS - 1)) % MODEL_ACCOUNTS;
        int64_t amount = 1 + rand () % 100000;
        event_t event = s_event (seq, ts, EVENT_TYPE_UNKNOWN, amount);
        if (kind < 4) {
            event.type = EVENT_DEPOSITED;
            s_name (a, event.account);
            s_model_touch (a, seq, amount);
        } else if (kind < 6) {
            event.type = EVENT_WITHDRAWN;
            s_name (a, event.account);
            s_model_touch (a, seq, -amount);
        } else if (kind < 9) {
            event.type = EVENT_TRANSFERRED;
            s_name (a, event.from);
            s_name (b, event.to);
            s_model_touch (a, seq, -amount);
            s_model_touch (b, seq, amount);
        }
        accounts_result_t expected = kind < 9 ? ACCOUNTS_APPLIED : ACCOUNTS_UNKNOWN;
        CHECK (accounts_apply (accounts, &event) == expected);
    }
}

static void test_fold_matches_model_at_every_point (void)
{
    accounts_t *accounts = accounts_new ();
    CHECK (accounts);
    s_fold_random (accounts);
    s_check_model (accounts);
    account_touch_t touch;
    bool more;
    CHECK (accounts_touches (accounts, "nobody", 0, 1, &touch, &more) == -1);
    accounts_destroy (&accounts);
    CHECK (accounts == NULL);
    accounts_destroy (&accounts);
}

static void test_overflowing_event_is_skipped_and_counted (void)
{
    accounts_t *accounts = accounts_new ();
    event_t event = s_event (1, 1, EVENT_DEPOSITED, INT64_MAX);
    strcpy (event.account, "alice");
    CHECK (accounts_apply (accounts, &event) == ACCOUNTS_APPLIED);
    event = s_event (2, 1, EVENT_TRANSFERRED, 1);
    strcpy (event.from, "bob");
    strcpy (event.to, "alice");
    CHECK (accounts_apply (accounts, &event) == ACCOUNTS_OVERFLOW);
    CHECK (accounts_overflow_skipped (accounts) == 1);
    CHECK (accounts_applied_seq (accounts) == 2);
    account_state_t state;
    CHECK (accounts_state_at (accounts, "bob", INT64_MAX, &state) == -1);
    CHECK (accounts_state_at (accounts, "alice", INT64_MAX, &state) == 0);
    CHECK (state.balance == INT64_MAX && state.version == 1);
    char total[48];
    event = s_event (3, 1, EVENT_DEPOSITED, INT64_MAX);
    strcpy (event.account, "carol");
    CHECK (accounts_apply (accounts, &event) == ACCOUNTS_APPLIED);
    accounts_total_format (accounts, total, sizeof total);
    CHECK (strcmp (total, "18446744073709551614") == 0); // beyond int64, still exact
    accounts_destroy (&accounts);
}

static void test_list_is_sorted_and_paginates_across_new_accounts (void)
{
    accounts_t *accounts = accounts_new ();
    int64_t seq = 0;
    const char *first[] = {"m", "c", "x", "a"}, *second[] = {"b", "z", "d", "n"};
    for (int i = 0; i < 4; i++) {
        event_t event = s_event (++seq, 1, EVENT_DEPOSITED, 10 + i);
        strcpy (event.account, first[i]);
        CHECK (accounts_apply (accounts, &event) == ACCOUNTS_APPLIED);
    }
    account_state_t states[8];
    bool more;
    CHECK (accounts_list (accounts, "", 3, states, &more) == 3 && more);
    CHECK (!strcmp (states[0].id, "a") && !strcmp (states[1].id, "c") &&
           !strcmp (states[2].id, "m"));
    for (int i = 0; i < 4; i++) {
        event_t event = s_event (++seq, 1, EVENT_DEPOSITED, 1);
        strcpy (event.account, second[i]);
        CHECK (accounts_apply (accounts, &event) == ACCOUNTS_APPLIED);
    }
    CHECK (accounts_list (accounts, "c", 8, states, &more) == 5 && !more);
    const char *expected[] = {"d", "m", "n", "x", "z"};
    for (int i = 0; i < 5; i++)
        CHECK (!strcmp (states[i].id, expected[i]));
    CHECK (states[1].balance == 10);
    CHECK (accounts_list (accounts, "z", 8, states, &more) == 0 && !more);
    CHECK (accounts_count (accounts) == 8);
    accounts_destroy (&accounts);
}

//  Schema 2: currency fixed by an account's first event, limit and
//  metadata as of any seq, money of another currency skipped and counted,
//  totals per currency.
static void test_settings_and_currencies_fold_as_of_every_seq (void)
{
    accounts_t *accounts = accounts_new ();
    CHECK (accounts);
    event_t open = s_event (1, 1, EVENT_ACCOUNT_OPENED, 0);
    strcpy (open.account, "shop");
    strcpy (open.currency, "EUR");
    open.has_limit = true;
    open.overdraft_limit = 100;
    strcpy (open.metadata, "{\"tier\":\"gold\"}");
    open.metadata_bytes = strlen (open.metadata);
    CHECK (accounts_apply (accounts, &open) == ACCOUNTS_APPLIED);
    event_t pay = s_event (2, 2, EVENT_DEPOSITED, 50);
    strcpy (pay.account, "shop");
    strcpy (pay.currency, "EUR");
    CHECK (accounts_apply (accounts, &pay) == ACCOUNTS_APPLIED);
    event_t wrong = s_event (3, 3, EVENT_DEPOSITED, 7);
    strcpy (wrong.account, "shop");
    strcpy (wrong.currency, "USD");
    CHECK (accounts_apply (accounts, &wrong) == ACCOUNTS_MISMATCH);
    event_t update = s_event (4, 4, EVENT_ACCOUNT_UPDATED, 0);
    strcpy (update.account, "shop");
    update.has_limit = true;
    update.overdraft_limit = EVENT_LIMIT_UNLIMITED;
    CHECK (accounts_apply (accounts, &update) == ACCOUNTS_APPLIED);
    event_t implicit = s_event (5, 5, EVENT_DEPOSITED, 9);
    strcpy (implicit.account, "plain");
    strcpy (implicit.currency, "XXX");
    CHECK (accounts_apply (accounts, &implicit) == ACCOUNTS_APPLIED);
    account_state_t state;
    CHECK (accounts_state_at (accounts, "shop", INT64_MAX, &state) == 0);
    CHECK (state.version == 3 && state.balance == 50 &&
           strcmp (state.currency, "EUR") == 0);
    CHECK (!state.limit_implicit && state.overdraft_limit == EVENT_LIMIT_UNLIMITED);
    CHECK (strcmp (state.metadata, "{\"tier\":\"gold\"}") == 0); // kept by the update
    CHECK (accounts_state_at (accounts, "shop", 3, &state) == 0);
    CHECK (state.version == 2 && state.overdraft_limit == 100 && state.last_seq == 2);
    CHECK (accounts_state_at (accounts, "plain", INT64_MAX, &state) == 0);
    CHECK (state.limit_implicit && !state.metadata &&
           strcmp (state.currency, "XXX") == 0);
    CHECK (accounts_mismatch_skipped (accounts) == 1 &&
           accounts_applied_seq (accounts) == 5);
    size_t count = 0;
    const account_currency_t *currencies = accounts_currencies (accounts, &count);
    //  In the order first seen; USD was seen in the skipped event only.
    CHECK (count == 3 && strcmp (currencies[0].currency, "EUR") == 0);
    CHECK (currencies[0].accounts == 1 && currencies[0].total == 50);
    CHECK (strcmp (currencies[1].currency, "USD") == 0 && currencies[1].accounts == 0);
    CHECK (currencies[2].accounts == 1 && currencies[2].total == 9);
    accounts_destroy (&accounts);
}

typedef struct {
    uint8_t *data;
    size_t bytes;
    size_t capacity;
} buffer_t;

static int s_buffer_write (void *arg, const void *data, size_t bytes)
{
    buffer_t *buffer = arg;
    if (buffer->bytes + bytes > buffer->capacity) {
        size_t capacity = (buffer->capacity + bytes) * 2;
        uint8_t *grown = realloc (buffer->data, capacity);
        if (!grown)
            return -1;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy (buffer->data + buffer->bytes, data, bytes);
    buffer->bytes += bytes;
    return 0;
}

//  A saved state loads into the same answers: every state at every seq,
//  ts lookups, touches, lists, counters and the total; and bytes that are
//  cut short, grown or lying about a count do not load.
static void test_saved_state_loads_into_the_same_answers (void)
{
    accounts_t *accounts = accounts_new ();
    CHECK (accounts);
    memset (s_model, 0, sizeof s_model);
    s_fold_random (accounts);
    buffer_t saved = {0};
    CHECK (accounts_save (accounts, s_buffer_write, &saved) == 0);
    accounts_t *loaded = accounts_new ();
    CHECK (loaded && accounts_load (loaded, saved.data, saved.bytes) == 0);
    s_check_model (loaded);
    char total[64], total_loaded[64];
    accounts_total_format (accounts, total, sizeof total);
    accounts_total_format (loaded, total_loaded, sizeof total_loaded);
    CHECK (strcmp (total, total_loaded) == 0);
    CHECK (accounts_count (loaded) == accounts_count (accounts) &&
           accounts_events_applied (loaded) == accounts_events_applied (accounts) &&
           accounts_unknown_skipped (loaded) == accounts_unknown_skipped (accounts));
    account_state_t a[MODEL_ACCOUNTS], b[MODEL_ACCOUNTS];
    bool more_a, more_b;
    int listed = accounts_list (accounts, "", MODEL_ACCOUNTS, a, &more_a);
    CHECK (listed == accounts_list (loaded, "", MODEL_ACCOUNTS, b, &more_b));
    for (int i = 0; i < listed; i++)
        CHECK (strcmp (a[i].id, b[i].id) == 0 && a[i].balance == b[i].balance);
    //  It goes on folding where it stopped.
    event_t event = s_event (MODEL_EVENTS + 1, s_ts[MODEL_EVENTS], EVENT_DEPOSITED, 5);
    s_name (3, event.account);
    CHECK (accounts_apply (loaded, &event) == ACCOUNTS_APPLIED);
    accounts_destroy (&loaded);
    const size_t cuts[] = {0, 10, saved.bytes / 2, saved.bytes - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        loaded = accounts_new ();
        CHECK (accounts_load (loaded, saved.data, cuts[i]) == -1);
        accounts_destroy (&loaded);
    }
    CHECK (s_buffer_write (&saved, "x", 1) == 0); // a byte too many
    loaded = accounts_new ();
    CHECK (accounts_load (loaded, saved.data, saved.bytes) == -1);
    accounts_destroy (&loaded);
    memset (saved.data + 32, 0xff, 8); // an account count no file holds
    loaded = accounts_new ();
    CHECK (accounts_load (loaded, saved.data, saved.bytes - 1) == -1);
    accounts_destroy (&loaded);
    free (saved.data);
    accounts_destroy (&accounts);
    //  Schema 2: currencies, limits and metadata as of every seq come back.
    accounts = accounts_new ();
    event_t open = s_event (1, 1, EVENT_ACCOUNT_OPENED, 0);
    strcpy (open.account, "shop");
    strcpy (open.currency, "EUR");
    open.has_limit = true;
    open.overdraft_limit = 100;
    strcpy (open.metadata, "{\"tier\":\"gold\"}");
    open.metadata_bytes = strlen (open.metadata);
    CHECK (accounts_apply (accounts, &open) == ACCOUNTS_APPLIED);
    event_t pay = s_event (2, 2, EVENT_DEPOSITED, 50);
    strcpy (pay.account, "shop");
    strcpy (pay.currency, "EUR");
    CHECK (accounts_apply (accounts, &pay) == ACCOUNTS_APPLIED);
    event_t wrong = s_event (3, 3, EVENT_DEPOSITED, 7);
    strcpy (wrong.account, "shop");
    strcpy (wrong.currency, "USD");
    CHECK (accounts_apply (accounts, &wrong) == ACCOUNTS_MISMATCH);
    saved = (buffer_t){0};
    CHECK (accounts_save (accounts, s_buffer_write, &saved) == 0);
    loaded = accounts_new ();
    CHECK (accounts_load (loaded, saved.data, saved.bytes) == 0);
    account_state_t state;
    CHECK (accounts_state_at (loaded, "shop", INT64_MAX, &state) == 0);
    CHECK (state.version == 2 && state.balance == 50 &&
           strcmp (state.currency, "EUR") == 0 && !state.limit_implicit &&
           state.overdraft_limit == 100 &&
           strcmp (state.metadata, "{\"tier\":\"gold\"}") == 0);
    size_t count = 0;
    const account_currency_t *currencies = accounts_currencies (loaded, &count);
    CHECK (count == 2 && strcmp (currencies[0].currency, "EUR") == 0 &&
           currencies[0].accounts == 1 && currencies[0].total == 50 &&
           accounts_mismatch_skipped (loaded) == 1);
    accounts_destroy (&loaded);
    free (saved.data);
    accounts_destroy (&accounts);
}

static event_t s_hold_event (int64_t seq, event_type_t type, const char *id,
                             const char *pending_id, int64_t amount)
{
    event_t event = s_event (seq, seq, type, amount);
    strcpy (event.id, id);
    strcpy (event.pending_id, pending_id);
    strcpy (event.from, "payer");
    strcpy (event.to, "payee");
    strcpy (event.currency, "EUR");
    return event;
}

static void s_check_pending (accounts_t *accounts, const char *id, int64_t at_seq,
                             int64_t balance, int64_t debits, int64_t credits)
{
    account_state_t state;
    CHECK (accounts_state_at (accounts, id, at_seq, &state) == 0);
    CHECK_EQ_INT (state.balance, balance);
    CHECK_EQ_INT (state.pending_debits, debits);
    CHECK_EQ_INT (state.pending_credits, credits);
}

static void test_holds_reserve_then_resolve_exactly_once_as_of_every_seq (void)
{
    accounts_t *accounts = accounts_new ();
    CHECK (accounts);
    event_t deposit = s_event (1, 1, EVENT_DEPOSITED, 1000);
    strcpy (deposit.account, "payer");
    strcpy (deposit.currency, "EUR");
    CHECK (accounts_apply (accounts, &deposit) == ACCOUNTS_APPLIED);
    event_t events[] = {
        s_hold_event (2, EVENT_TRANSFER_PENDING, "h1", "", 300),
        s_hold_event (3, EVENT_TRANSFER_PENDING, "h2", "", 100),
        s_hold_event (4, EVENT_TRANSFER_POSTED, "p1", "h1", 200), // 100 released
        s_hold_event (5, EVENT_TRANSFER_VOIDED, "v1", "h1", 300), // resolved: skipped
        s_hold_event (6, EVENT_TRANSFER_EXPIRED, "h2.expired", "h2", 100),
        s_hold_event (7, EVENT_TRANSFER_POSTED, "p2", "h2", 100), // expired: skipped
        s_hold_event (8, EVENT_TRANSFER_PENDING, "h1", "", 5),    // a repeated id
        s_hold_event (9, EVENT_TRANSFER_POSTED, "p3", "nope", 1), // unknown hold
    };
    accounts_result_t expected[] = {
        ACCOUNTS_APPLIED, ACCOUNTS_APPLIED,  ACCOUNTS_APPLIED,  ACCOUNTS_MISMATCH,
        ACCOUNTS_APPLIED, ACCOUNTS_MISMATCH, ACCOUNTS_MISMATCH, ACCOUNTS_MISMATCH};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        CHECK_EQ_INT (accounts_apply (accounts, &events[i]), expected[i]);
    s_check_pending (accounts, "payer", 1, 1000, 0, 0);
    s_check_pending (accounts, "payer", 3, 1000, 400, 0);
    s_check_pending (accounts, "payee", 3, 0, 0, 400);
    s_check_pending (accounts, "payer", 4, 800, 100, 0);
    s_check_pending (accounts, "payee", 4, 200, 0, 100);
    s_check_pending (accounts, "payer", INT64_MAX, 800, 0, 0);
    s_check_pending (accounts, "payee", INT64_MAX, 200, 0, 0);
    transfers_t *transfers = accounts_transfers (accounts);
    const transfer_t *h1 = transfers_find (transfers, "h1");
    CHECK (h1 && h1->state == TRANSFER_POSTED && h1->pending_seq == 2 &&
           h1->resolved_seq == 4 && h1->posted_amount == 200 && h1->amount == 300);
    const transfer_t *h2 = transfers_find (transfers, "h2");
    CHECK (h2 && h2->state == TRANSFER_EXPIRED && h2->resolved_seq == 6);
    CHECK (transfers_count (transfers) == 2 && transfers_unresolved (transfers) == 0);
    //  A hold left pending survives a saved state, and is resolved after it.
    event_t open = s_hold_event (10, EVENT_TRANSFER_PENDING, "h3", "", 50);
    CHECK (accounts_apply (accounts, &open) == ACCOUNTS_APPLIED);
    buffer_t saved = {0};
    CHECK (accounts_save (accounts, s_buffer_write, &saved) == 0);
    accounts_t *loaded = accounts_new ();
    CHECK (loaded && accounts_load (loaded, saved.data, saved.bytes) == 0);
    s_check_pending (loaded, "payer", 3, 1000, 400, 0);
    s_check_pending (loaded, "payer", INT64_MAX, 800, 50, 0);
    CHECK (transfers_unresolved (accounts_transfers (loaded)) == 1);
    event_t post = s_hold_event (11, EVENT_TRANSFER_POSTED, "p4", "h3", 50);
    CHECK (accounts_apply (loaded, &post) == ACCOUNTS_APPLIED);
    s_check_pending (loaded, "payer", INT64_MAX, 750, 0, 0);
    s_check_pending (loaded, "payee", INT64_MAX, 250, 0, 0);
    accounts_destroy (&loaded);
    //  A saved hold whose seq is beyond the state is refused.
    memset (saved.data + saved.bytes - sizeof (transfer_t) +
                offsetof (transfer_t, pending_seq),
            0x7f, 8);
    loaded = accounts_new ();
    CHECK (accounts_load (loaded, saved.data, saved.bytes) == -1);
    accounts_destroy (&loaded);
    free (saved.data);
    accounts_destroy (&accounts);
}

int main (void)
{
    RUN (test_fold_matches_model_at_every_point);
    RUN (test_overflowing_event_is_skipped_and_counted);
    RUN (test_list_is_sorted_and_paginates_across_new_accounts);
    RUN (test_settings_and_currencies_fold_as_of_every_seq);
    RUN (test_saved_state_loads_into_the_same_answers);
    RUN (test_holds_reserve_then_resolve_exactly_once_as_of_every_seq);
    return check_exit_status ();
}
