/*  test_write_model — the write model's indexes against plain models.

    Ids: drawn from a pool smaller than the stream of events, so ids
    repeat inside the kept window and records are evicted and their index
    entries deleted all the time; the model is each id's latest seq.
    Accounts: deposits, withdrawals and holds on random names, some held
    and released without ever being confirmed (so they are forgotten and
    entries move), through several growths of the table; the model is
    plain arrays by account number.
*/
#include "write_model.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef streq
#define streq(a, b) (strcmp ((a), (b)) == 0)
#endif

#define TEST_ID_POOL       (WRITE_MODEL_RECENT_EVENTS_MAX + WRITE_MODEL_RECENT_EVENTS_MAX / 2)
#define TEST_ID_EVENTS     (4 * WRITE_MODEL_RECENT_EVENTS_MAX)
#define TEST_ID_CHECKS     64 // random ids checked after each event
#define TEST_ACCOUNTS      5000
#define TEST_ACCOUNT_STEPS 40000

static void s_id_name (char *id, size_t size, size_t number)
{
    snprintf (id, size, "id-%zu", number);
}

static void s_account_name (char *name, size_t size, size_t number)
{
    //  Some names longer than a word, some shorter, one at the limit.
    if (number == 0)
        memset (name, 'z', EVENT_ACCOUNT_BYTES_MAX), name[EVENT_ACCOUNT_BYTES_MAX] = '\0';
    else
        snprintf (name, size, number % 3 ? "a%zu" : "account-number-%zu", number);
}

static void s_apply_deposit (write_model_t *model, int64_t seq, const char *id,
                             const char *account, int64_t amount)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.type = EVENT_DEPOSITED;
    event.amount = amount;
    snprintf (event.id, sizeof event.id, "%s", id);
    snprintf (event.account, sizeof event.account, "%s", account);
    CHECK (write_model_apply (model, &event) == 0);
}

//  The latest seq of an id wins while it is kept; evicted means unknown.
static void test_find_gives_latest_kept_seq_of_repeated_and_evicted_ids (void)
{
    write_model_t *model = write_model_new ();
    assert (model);
    int64_t *latest = calloc (TEST_ID_POOL, sizeof *latest); // the model
    assert (latest);
    srand (7);
    char id[EVENT_ID_BYTES_MAX + 1];
    size_t repeats = 0;
    for (int64_t seq = 1; seq <= TEST_ID_EVENTS; seq++) {
        size_t number = (size_t)rand () % TEST_ID_POOL;
        if (latest[number] > seq - WRITE_MODEL_RECENT_EVENTS_MAX)
            repeats++;
        latest[number] = seq;
        s_id_name (id, sizeof id, number);
        s_apply_deposit (model, seq, id, "a", 1);
        for (int check = 0; check < TEST_ID_CHECKS; check++) {
            size_t other = check ? (size_t)rand () % TEST_ID_POOL : number;
            int64_t expected =
                latest[other] > seq - WRITE_MODEL_RECENT_EVENTS_MAX ? latest[other] : 0;
            s_id_name (id, sizeof id, other);
            if (write_model_find (model, id) != expected) {
                fprintf (stderr, "    seq %lld: %s: expected %lld, found %lld\n",
                         (long long)seq, id, (long long)expected,
                         (long long)write_model_find (model, id));
                CHECK (write_model_find (model, id) == expected);
                goto done;
            }
        }
    }
    CHECK (repeats > 0); // the claim was exercised
    CHECK (write_model_find (model, "never") == 0);
    CHECK (write_model_record (model, 1) == NULL); // evicted
    const write_model_record_t *last = write_model_record (model, TEST_ID_EVENTS);
    CHECK (last && last->seq == TEST_ID_EVENTS && last->balance == TEST_ID_EVENTS);
done:
    free (latest);
    write_model_destroy (&model);
}

//  An id folded stays "seen" long after its record left the ring, for
//  the stream's window of events; one never folded is never seen.
static void test_seen_knows_the_ids_of_the_window_beyond_the_ring (void)
{
    write_model_t *model = write_model_new ();
    assert (model);
    char id[EVENT_ID_BYTES_MAX + 1];
    int64_t last = WRITE_MODEL_SEEN_IDS_MAX + 2;
    for (int64_t seq = 1; seq <= last; seq++) {
        s_id_name (id, sizeof id, (size_t)seq);
        s_apply_deposit (model, seq, id, "a", 1);
        if (seq == 2 * WRITE_MODEL_RECENT_EVENTS_MAX) {
            CHECK (write_model_find (model, "id-3") == 0); // left the ring
            CHECK (write_model_seen (model, "id-3") == 3);
            CHECK (write_model_seen (model, "id-0") == 0);
            CHECK (write_model_seen (model, "never") == 0);
        }
    }
    CHECK (write_model_seen (model, "id-2") == 0); // out of the window
    CHECK (write_model_seen (model, "id-3") == 3);
    s_id_name (id, sizeof id, (size_t)last);
    CHECK (write_model_seen (model, id) == last);
    write_model_destroy (&model);
}

//  Caught up from a long log's start, the window holds only its tail:
//  ids the window would forget by the head are never added.
static void test_seen_skips_ids_below_the_window_of_the_known_head (void)
{
    write_model_t *model = write_model_new ();
    assert (model);
    char id[EVENT_ID_BYTES_MAX + 1];
    int64_t head = WRITE_MODEL_SEEN_IDS_MAX + 1000;
    write_model_set_head (model, head);
    for (int64_t seq = 1; seq <= 2000; seq++) {
        s_id_name (id, sizeof id, (size_t)seq);
        s_apply_deposit (model, seq, id, "a", 1);
    }
    CHECK (write_model_seen (model, "id-1000") == 0);  // forgotten by the head anyway
    CHECK (write_model_seen (model, "id-1001") == 1001); // the window's first
    CHECK (write_model_seen (model, "id-2000") == 2000);
    write_model_set_head (model, 5); // a head only grows
    s_apply_deposit (model, 2001, "id-2001", "a", 1);
    CHECK (write_model_seen (model, "id-2001") == 2001);
    write_model_destroy (&model);
}

typedef struct {
    int64_t balance, version, held_debit, held_events;
} model_account_t;

static bool s_account_matches (write_model_t *model, const model_account_t *expected,
                               const char *name)
{
    int64_t balance, available, version;
    write_model_figures (model, name, &balance, &available, &version);
    return balance == expected->balance && version == expected->version &&
           available == expected->balance - expected->held_debit &&
           write_model_balance (model, name) == balance &&
           write_model_version (model, name) == version &&
           write_model_available (model, name) == available;
}

//  Accounts held and released without a confirmed event are forgotten;
//  every other account stays findable with its figures.
static void test_accounts_match_model_through_holds_forgetting_and_growth (void)
{
    write_model_t *model = write_model_new ();
    assert (model);
    model_account_t *accounts = calloc (TEST_ACCOUNTS, sizeof *accounts);
    assert (accounts);
    srand (11);
    char name[EVENT_ACCOUNT_BYTES_MAX + 1], id[EVENT_ID_BYTES_MAX + 1];
    int64_t seq = 0;
    size_t forgotten = 0;
    for (int step = 0; step < TEST_ACCOUNT_STEPS; step++) {
        size_t number = (size_t)rand () % TEST_ACCOUNTS;
        model_account_t *account = &accounts[number];
        s_account_name (name, sizeof name, number);
        int choice = rand () % 4;
        if (choice == 0) { // a confirmed deposit
            int64_t amount = rand () % 1000 + 1;
            s_id_name (id, sizeof id, (size_t)seq);
            s_apply_deposit (model, ++seq, id, name, amount);
            account->balance += amount;
            account->version++;
        } else if (choice == 1 || account->held_events == 0) { // a hold
            int64_t debit = rand () % 100;
            write_model_account_t *entry = write_model_hold (model, NULL, name, debit, 1);
            CHECK (entry);
            account->held_debit += debit;
            account->held_events++;
        } else { // all of its holds released
            int64_t balance, available, version;
            write_model_account_t *entry =
                write_model_figures (model, name, &balance, &available, &version);
            CHECK (entry);
            write_model_release (model, entry, account->held_debit, account->held_events);
            if (account->version == 0)
                forgotten++;
            account->held_debit = account->held_events = 0;
        }
        size_t other = (size_t)rand () % TEST_ACCOUNTS;
        s_account_name (name, sizeof name, other);
        CHECK (s_account_matches (model, &accounts[other], name));
    }
    size_t known = 0;
    for (size_t number = 0; number < TEST_ACCOUNTS; number++) {
        s_account_name (name, sizeof name, number);
        CHECK (s_account_matches (model, &accounts[number], name));
        known += accounts[number].version || accounts[number].held_events;
    }
    CHECK (forgotten > 0); // the claim was exercised
    CHECK (write_model_account_count (model) == known);
    CHECK (write_model_balance (model, "never-seen") == 0);
    free (accounts);
    write_model_destroy (&model);
}

//  Schema 2: the first event fixes an account's currency; account events
//  set its limit and metadata and count as touches; money of another
//  currency moves nothing (as in accounting's fold).
static void test_settings_follow_account_events_and_currency_is_kept (void)
{
    write_model_t *model = write_model_new ();
    CHECK (model);
    event_t event;
    event_init (&event);
    event.seq = 1;
    event.type = EVENT_ACCOUNT_OPENED;
    snprintf (event.id, sizeof event.id, "o");
    snprintf (event.account, sizeof event.account, "shop");
    snprintf (event.currency, sizeof event.currency, "EUR");
    event.has_limit = true;
    event.overdraft_limit = EVENT_LIMIT_UNLIMITED;
    snprintf (event.metadata, sizeof event.metadata, "{\"k\":\"v\"}");
    event.metadata_bytes = strlen (event.metadata);
    CHECK (write_model_apply (model, &event) == 0);
    int64_t balance, available, version;
    write_model_account_t *entry =
        write_model_figures (model, "shop", &balance, &available, &version);
    write_model_settings_t settings;
    write_model_settings (entry, &settings);
    CHECK (settings.known && streq (settings.currency, "EUR") && version == 1);
    CHECK (settings.limit_set && settings.overdraft_limit == EVENT_LIMIT_UNLIMITED);
    CHECK (settings.metadata_hash != 0);
    const write_model_record_t *record = write_model_record (model, 1);
    CHECK (record && record->version == 1 && streq (record->currency, "EUR"));
    event_init (&event);
    event.seq = 2;
    event.type = EVENT_DEPOSITED;
    event.amount = 5;
    snprintf (event.id, sizeof event.id, "usd");
    snprintf (event.account, sizeof event.account, "shop");
    snprintf (event.currency, sizeof event.currency, "USD");
    CHECK (write_model_apply (model, &event) == 0);
    CHECK (write_model_balance (model, "shop") == 0 &&
           write_model_version (model, "shop") == 1);
    snprintf (event.id, sizeof event.id, "eur");
    snprintf (event.currency, sizeof event.currency, "EUR");
    event.seq = 3;
    CHECK (write_model_apply (model, &event) == 0);
    CHECK (write_model_balance (model, "shop") == 5 &&
           write_model_version (model, "shop") == 2);
    write_model_settings (NULL, &settings);
    CHECK (!settings.known && streq (settings.currency, ""));
    write_model_destroy (&model);
}

static void s_apply_hold (write_model_t *model, int64_t seq, event_type_t type,
                          const char *id, const char *pending_id, int64_t amount,
                          int64_t timeout_at_ms)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.type = type;
    event.amount = amount;
    event.timeout_at_ms = timeout_at_ms;
    snprintf (event.id, sizeof event.id, "%s", id);
    snprintf (event.pending_id, sizeof event.pending_id, "%s", pending_id);
    snprintf (event.from, sizeof event.from, "payer");
    snprintf (event.to, sizeof event.to, "payee");
    CHECK (write_model_apply (model, &event) == 0);
}

//  Unresolved holds count against available; each resolves once; due
//  ones come out of the heap earliest first, each once unless put back.
static void test_holds_reserve_resolve_once_and_fall_due_in_order (void)
{
    write_model_t *model = write_model_new ();
    CHECK (model);
    s_apply_deposit (model, 1, "d", "payer", 1000);
    s_apply_hold (model, 2, EVENT_TRANSFER_PENDING, "h-late", "", 100, 5000);
    s_apply_hold (model, 3, EVENT_TRANSFER_PENDING, "h-early", "", 200, 3000);
    s_apply_hold (model, 4, EVENT_TRANSFER_PENDING, "h-none", "", 300, 0);
    CHECK_EQ_INT (write_model_available (model, "payer"), 400);
    CHECK_EQ_INT (write_model_balance (model, "payer"), 1000);
    CHECK_EQ_INT (write_model_version (model, "payee"), 3); // every hold touches both
    CHECK_EQ_INT (write_model_pending_count (model), 3);
    CHECK (write_model_next_due (model, 2999) == NULL);
    const write_model_pending_t *due = write_model_next_due (model, 6000);
    CHECK (due && streq (due->id, "h-early"));
    write_model_due_again (model, "h-early");
    due = write_model_next_due (model, 6000);
    CHECK (due && streq (due->id, "h-early"));
    due = write_model_next_due (model, 6000);
    CHECK (due && streq (due->id, "h-late"));
    CHECK (write_model_next_due (model, 6000) == NULL); // h-none never falls due
    //  Post 150 of h-none: 150 moves, 150 is released.
    s_apply_hold (model, 5, EVENT_TRANSFER_POSTED, "p", "h-none", 150, 0);
    CHECK_EQ_INT (write_model_balance (model, "payer"), 850);
    CHECK_EQ_INT (write_model_balance (model, "payee"), 150);
    CHECK_EQ_INT (write_model_available (model, "payer"), 550);
    //  A second resolution of it, or one of a hold never made, moves nothing.
    s_apply_hold (model, 6, EVENT_TRANSFER_VOIDED, "v", "h-none", 300, 0);
    s_apply_hold (model, 7, EVENT_TRANSFER_POSTED, "p2", "nope", 1, 0);
    CHECK_EQ_INT (write_model_available (model, "payer"), 550);
    CHECK_EQ_INT (write_model_version (model, "payer"), 7);
    s_apply_hold (model, 8, EVENT_TRANSFER_EXPIRED, "h-early.expired", "h-early", 200, 0);
    CHECK_EQ_INT (write_model_available (model, "payer"), 750);
    const write_model_pending_t *hold = write_model_pending (model, "h-early");
    CHECK (hold && hold->state == WRITE_MODEL_EXPIRED);
    CHECK (write_model_pending (model, "h-none")->state == WRITE_MODEL_POSTED);
    //  A resolved hold put back is not due again.
    write_model_due_again (model, "h-early");
    CHECK (write_model_next_due (model, 6000) == NULL);
    CHECK_EQ_INT (write_model_pending_count (model), 1);
    const write_model_record_t *record = write_model_record (model, 5);
    CHECK (record && streq (record->pending_id, "h-none") && record->balance == 850 &&
           record->balance_to == 150 && streq (record->account, "payer"));
    write_model_destroy (&model);
}

int main (void)
{
    RUN (test_find_gives_latest_kept_seq_of_repeated_and_evicted_ids);
    RUN (test_seen_knows_the_ids_of_the_window_beyond_the_ring);
    RUN (test_seen_skips_ids_below_the_window_of_the_known_head);
    RUN (test_accounts_match_model_through_holds_forgetting_and_growth);
    RUN (test_settings_follow_account_events_and_currency_is_kept);
    RUN (test_holds_reserve_resolve_once_and_fall_due_in_order);
    return check_exit_status ();
}
