/*  api — the transaction service's request lifecycle (see api.h).

    Every write request becomes a request_t that lives until it is
    answered. It holds its planned debits in the write model (so requests
    behind it cannot spend the same money), is indexed by the id of its
    current APPEND attempt (to match RESULTs) and by its idempotency key
    (so the same key arriving again waits for it), and sits in a list in
    arrival order, which is also deadline order (one ack timeout for all).

    Schema 2: POST /accounts and PATCH /accounts/{id} go the same way as
    money (planned, one APPEND, answered from the stored event); planning
    keeps per account its currency and limit as the request's earlier
    commands leave them, so a batch can open accounts and pay into them.
*/
#include "api.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <sys/random.h>

#include "commands.h"
#include "curve.h"
#include "event.h"
#include "http.h"
#include "idempotency.h"
#include "key_hash.h"
#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "openapi.h"
#include "reply.h"
#include "subscriber.h"
#include "write_model.h"

#define API_SINGLE_BODY_BYTES_MAX (64 * 1024)       // DESIGN: one command
#define API_BATCH_BODY_BYTES_MAX  (8 * 1024 * 1024) // DESIGN: one batch
#define API_RETRY_AFTER_S         "1"               // what a 503 asks clients to wait
#define API_TICK_MS_MAX           50                // timeout granularity
#define API_ATTEMPT_BYTES_MAX     64                // "<instance uuid>-<counter>"
#define API_HOLDS_INLINE          2 // a single command touches at most two accounts
#define API_HOLDS_SCAN_MAX        8 // beyond: holds are indexed by account (batches)
#define API_UUID_BYTES            16
//  A deposit's record in a 201 with a derived id and a short account
//  takes ~140 bytes; longer ones grow the reply.
#define API_REPLY_RECORD_BYTES_GUESS 192
//  Ids a keyed request asks the stream about: its first event's, the key
//  itself and "<key>:0" (the key's first id on the other routes).
#define API_LOOKUP_IDS_MAX 3

typedef enum {
    ROUTE_TRANSACTION,
    ROUTE_TRANSFER,
    ROUTE_BATCH,
    ROUTE_OPEN,   // POST /accounts
    ROUTE_UPDATE, // PATCH /accounts/{id}
} route_t;

typedef enum {
    STATE_LOOKING,    // keyed, not held here: asking the stream whether it landed
    STATE_SENT,       // APPEND sent, waiting for its RESULT
    STATE_APPLYING,   // ok/duplicate: waiting for the write model to reach last_seq
    STATE_CONFLICTED, // conflict: waiting for the write model to reach versions
} state_t;

typedef struct {
    char account[EVENT_ACCOUNT_BYTES_MAX + 1];
    write_model_account_t *entry; // in the write model: NULL until held if new
    int64_t balance;   // confirmed balance plus this request's earlier commands
    int64_t available; // the same minus holds of other requests
    int64_t debit;     // held by this request
    int64_t events;    // held by this request
    int64_t expect;    // confirmed version the request was validated against
    bool expect_sent;  // the attempt being built already carries expect
    //  Schema 2, as the earlier commands of the request leave them.
    bool known; // confirmed, or opened (explicitly or by money) by an earlier command
    char currency[EVENT_CURRENCY_BYTES_MAX + 1]; // "" while not known
    int64_t limit;          // effective: >= 0 or EVENT_LIMIT_UNLIMITED
    uint64_t metadata_hash; // 0: none
} hold_t;

typedef struct request request_t;

//  Requests waiting for the write model: applying ones by last_seq, so a
//  new applied_seq finishes a prefix instead of scanning every request.
typedef struct {
    request_t *head, *tail;
} waitlist_t;

struct request {
    api_t *api;
    void *handle; // in api->requests
    route_t route;
    command_t *commands; // ids are the final event ids
    size_t count;
    bool keyed; // the client gave the key
    char key[EVENT_ID_BYTES_MAX + 1];
    char fingerprint[COMMANDS_FINGERPRINT_BYTES + 1];
    char attempt[API_ATTEMPT_BYTES_MAX]; // request_id of the APPEND in flight
    char request_id[HTTP_REQUEST_ID_BYTES_MAX + 1];
    char correlation_id[EVENT_META_VALUE_BYTES_MAX + 1];
    char principal[EVENT_PRINCIPAL_BYTES_MAX + 1]; // meta.principal; "" without tokens
    http_request_t *originator;                    // NULL once answered
    zlistx_t *followers; // http_request_t *: the same key meanwhile; NULL: none yet
    //  Holds per account, in first-touch order. Most requests touch one
    //  or two accounts: those need no allocation and no index.
    hold_t holds_inline[API_HOLDS_INLINE];
    hold_t *holds; // holds_inline or a malloc
    size_t hold_count, hold_capacity;
    //  Beyond API_HOLDS_SCAN_MAX holds: open addressing, hold index + 1 per
    //  slot (0: empty), at most half full. Indexes survive holds moving.
    uint32_t *hold_slots;
    size_t hold_slot_count; // a power of two, or 0
    int64_t deadline_ms;
    int retries;
    state_t state;
    bool duplicate;
    int64_t first_seq, last_seq;
    cJSON *versions;      // conflict: versions to reach first
    //  STATE_LOOKING: the ids asked about (in by_lookup while out), and
    //  what the answers said so far.
    char lookups[API_LOOKUP_IDS_MAX][EVENT_ID_BYTES_MAX + 1];
    size_t lookup_count, lookups_out;
    bool lookup_failed; // some answer was "unknown"
    bool found_other;   // the key's events of another request are stored
    bool found_other_body; // the first event's id is stored with another command
    int64_t found_seq;  // the seq of the first event's id, or 0
    waitlist_t *waitlist; // the one it is on (by state), or NULL
    request_t *wait_prev, *wait_next;
};

struct api {
    api_config_t config;
    zloop_t *loop;
    zsock_t *ingest;
    curve_t *curve; // own keypair and the stream's key; NULL: plain
    subscriber_t *subscriber;
    http_server_t *http;
    write_model_t *model;
    idempotency_t *idempotency;
    zlistx_t *requests;    // request_t, arrival (= deadline) order; owns them
    zhashx_t *by_attempt;  // attempt id -> request_t
    zhashx_t *by_key;      // idempotency key -> request_t
    zhashx_t *by_lookup;   // id asked about -> request_t (STATE_LOOKING)
    lookup_t *lookup;
    waitlist_t applying;   // STATE_APPLYING, ascending last_seq
    waitlist_t conflicted; // STATE_CONFLICTED, in conflict order
    size_t waiters;        // suspended HTTP requests over all requests
    char instance[33];
    uint64_t attempts;
    uint8_t uuid_base[API_UUID_BYTES]; // random per process, see s_uuid_generate
    uint64_t uuids;
    int timer_id;
    uint64_t created, replayed, rejected, conflicts, retried, timeouts, unavailable;
};

static void s_progress (request_t *request);

//  snprintf ("%s") without the format machinery: this runs per event.
//  Truncates to size - 1 bytes like it.
static void s_copy (char *target, size_t size, const char *source)
{
    size_t bytes = strnlen (source, size - 1);
    memcpy (target, source, bytes);
    target[bytes] = '\0';
}

static void s_wait_remove (request_t *request)
{
    waitlist_t *list = request->waitlist;
    if (!list)
        return;
    if (request->wait_prev)
        request->wait_prev->wait_next = request->wait_next;
    else
        list->head = request->wait_next;
    if (request->wait_next)
        request->wait_next->wait_prev = request->wait_prev;
    else
        list->tail = request->wait_prev;
    request->wait_prev = request->wait_next = NULL;
    request->waitlist = NULL;
}

//  Inserts after the last request whose last_seq is not above request's.
//  RESULTs come in seq order, so this is nearly always the tail.
static void s_wait_insert (waitlist_t *list, request_t *request, bool by_last_seq)
{
    assert (!request->waitlist);
    request_t *before = list->tail;
    while (by_last_seq && before && before->last_seq > request->last_seq)
        before = before->wait_prev;
    request->wait_prev = before;
    request->wait_next = before ? before->wait_next : list->head;
    if (request->wait_next)
        request->wait_next->wait_prev = request;
    else
        list->tail = request;
    if (before)
        before->wait_next = request;
    else
        list->head = request;
    request->waitlist = list;
}

//  --------------------------------------------------------------------
//  Answers

//  A problem+json body (caller frees). Takes ownership of errors and extra
//  (extra's members are added to the problem, e.g. "balance").
static char *s_problem_text (unsigned status, const char *detail, cJSON *errors,
                             cJSON *extra)
{
    //  A write's only 404 is PATCH of an account never seen: typed as
    //  accounting's (…/account-not-found).
    cJSON *json = http_problem_new (status, status == 404 ? "Account not found" : NULL,
                                    detail, errors);
    while (extra && extra->child) {
        cJSON *item = cJSON_DetachItemViaPointer (extra, extra->child);
        cJSON_AddItemToObject (json, item->string, item);
    }
    cJSON_Delete (extra);
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    assert (text);
    return text;
}

//  Answers with body, which is the caller's (copied) unless owned: then
//  it is freed once sent (a 201 of a batch is ~200 KB, not worth a copy).
static void s_respond_bytes (api_t *self, http_request_t *http, unsigned status,
                             char *body, size_t bytes, bool replayed, bool owned)
{
    if (replayed)
        http_request_add_header (http, "Idempotent-Replayed", "true");
    if (status == 503)
        http_request_add_header (http, "Retry-After", API_RETRY_AFTER_S);
    const char *type = status < 300 ? "application/json" : "application/problem+json";
    if (owned)
        http_respond_take (http, status, type, body, bytes);
    else
        http_respond (http, status, type, body, bytes);
    if (status == 201 || status == 200)
        replayed ? self->replayed++ : self->created++;
    else if (status == 503)
        self->unavailable++;
    else
        self->rejected++;
}

static void s_respond (api_t *self, http_request_t *http, unsigned status,
                       const char *body, bool replayed)
{
    s_respond_bytes (self, http, status, (char *)body, strlen (body), replayed, false);
}

//  Answers an HTTP request that has no request_t (yet).
static void s_respond_problem (api_t *self, http_request_t *http, unsigned status,
                               const char *detail, cJSON *errors)
{
    char *body = s_problem_text (status, detail, errors, NULL);
    s_respond_bytes (self, http, status, body, strlen (body), false, true);
}

//  Forgets the request's holds (not the write model's copy of them).
static void s_holds_clear (request_t *request)
{
    request->hold_count = 0;
    if (request->hold_slots)
        memset (request->hold_slots, 0, request->hold_slot_count * sizeof (uint32_t));
}

static void s_release_holds (request_t *request)
{
    write_model_t *model = request->api->model;
    for (size_t index = 0; index < request->hold_count; index++) {
        hold_t *hold = &request->holds[index];
        if (hold->events)
            write_model_release (model, hold->entry, hold->debit, hold->events);
    }
    s_holds_clear (request);
}

static void s_request_destroy (request_t **request_p)
{
    request_t *request = *request_p;
    if (request) {
        assert (!request->originator);
        assert (!request->followers || zlistx_size (request->followers) == 0);
        zlistx_destroy (&request->followers);
        free (request->hold_slots);
        if (request->holds != request->holds_inline)
            free (request->holds);
        cJSON_Delete (request->versions);
        commands_free (request->commands, request->count);
        free (request);
        *request_p = NULL;
    }
}

//  Answers every waiter with body (the originator without the replay
//  header unless replayed), releases holds and frees the request. Takes
//  ownership of body: the last answer gets it, the others a copy.
static void s_request_end (request_t *request, unsigned status, char *body, bool replayed)
{
    //  First leave every index and the write model: answering runs MHD,
    //  which may already dispatch the client's next request, and that one
    //  must see this request's outcome (balances, its key), not its holds.
    api_t *self = request->api;
    size_t bytes = strlen (body);
    if ((status == 201 || status == 200) && request->keyed)
        idempotency_store (self->idempotency, request->key, request->fingerprint, status,
                           body, bytes);
    for (size_t index = 0; index < request->lookup_count; index++)
        if (zhashx_lookup (self->by_lookup, request->lookups[index]) == request)
            zhashx_delete (self->by_lookup, request->lookups[index]);
    request->lookup_count = 0;
    s_release_holds (request);
    if (*request->attempt)
        zhashx_delete (self->by_attempt, request->attempt);
    if (request->keyed && zhashx_lookup (self->by_key, request->key) == request)
        zhashx_delete (self->by_key, request->key);
    zlistx_detach (self->requests, request->handle);
    s_wait_remove (request);
    //  The last answer takes the body: nearly always the originator's.
    if (request->originator) {
        bool last = !request->followers || zlistx_size (request->followers) == 0;
        s_respond_bytes (self, request->originator, status, body, bytes, replayed, last);
        if (last)
            body = NULL;
        request->originator = NULL;
        self->waiters--;
    }
    http_request_t *http;
    while (request->followers && (http = zlistx_detach (request->followers, NULL))) {
        bool last = zlistx_size (request->followers) == 0;
        s_respond_bytes (self, http, status, body, bytes, true, last);
        if (last)
            body = NULL;
        self->waiters--;
    }
    free (body);
    s_request_destroy (&request);
}

static void s_request_fail (request_t *request, unsigned status, const char *detail,
                            cJSON *errors, cJSON *extra)
{
    s_request_end (request, status, s_problem_text (status, detail, errors, extra),
                   false);
}

//  --------------------------------------------------------------------
//  Planning: validate in order against the write model, hold the debits

//  FNV-1a of an account id: short, client-chosen names.
static size_t s_hold_hash (const char *account)
{
    uint64_t hash = 14695981039346656037ULL;
    for (; *account; account++)
        hash = (hash ^ (uint8_t)*account) * 1099511628211ULL;
    return (size_t)(hash ^ (hash >> 32));
}

//  The slot of account in the hold index: its own, or the empty one
//  where it would go.
static uint32_t *s_hold_slot (request_t *request, const char *account)
{
    size_t mask = request->hold_slot_count - 1;
    size_t slot = s_hold_hash (account) & mask;
    while (request->hold_slots[slot] &&
           !streq (request->holds[request->hold_slots[slot] - 1].account, account))
        slot = (slot + 1) & mask;
    return &request->hold_slots[slot];
}

//  The index of account's hold, or hold_count when it has none. With an
//  index, *slot_p (if given) is account's slot there, else NULL.
static size_t s_hold_find (request_t *request, const char *account, uint32_t **slot_p)
{
    if (slot_p)
        *slot_p = NULL;
    if (request->hold_count > API_HOLDS_SCAN_MAX) {
        uint32_t *slot = s_hold_slot (request, account);
        if (slot_p)
            *slot_p = slot;
        return *slot ? *slot - 1 : request->hold_count;
    }
    size_t index = 0;
    while (index < request->hold_count && !streq (request->holds[index].account, account))
        index++;
    return index;
}

//  Indexes hold index (just added) once there are too many to scan,
//  growing the index to stay at most half full. slot: the empty one
//  s_hold_find found for it, or NULL.
static void s_hold_index (request_t *request, size_t index, uint32_t *slot)
{
    if (request->hold_count <= API_HOLDS_SCAN_MAX)
        return;
    //  Those before index are indexed already, unless the scan limit was
    //  just crossed (a new or cleared index) or the index grows.
    size_t known = request->hold_count == API_HOLDS_SCAN_MAX + 1 ? 0 : index;
    if (slot && known == index && request->hold_count * 2 <= request->hold_slot_count) {
        *slot = (uint32_t)(index + 1); // no second hash and probe
        return;
    }
    if (request->hold_count * 2 > request->hold_slot_count) {
        size_t count = request->hold_slot_count ? request->hold_slot_count * 2
                                                : 4 * API_HOLDS_SCAN_MAX;
        free (request->hold_slots);
        request->hold_slots = calloc (count, sizeof (uint32_t));
        assert (request->hold_slots);
        request->hold_slot_count = count;
        known = 0;
    }
    for (; known <= index; known++)
        *s_hold_slot (request, request->holds[known].account) = (uint32_t)(known + 1);
}

//  The index of account's hold, created from the write model if new.
//  An index, not a pointer: adding a hold may move the others.
static size_t s_hold (request_t *request, const char *account)
{
    uint32_t *slot;
    size_t index = s_hold_find (request, account, &slot);
    if (index < request->hold_count)
        return index;
    if (request->hold_count == request->hold_capacity) {
        //  A batch's commands mostly touch accounts of their own: room
        //  for one per command at once, rather than a copy per doubling.
        size_t capacity = request->hold_capacity * 2;
        if (capacity < request->count)
            capacity = request->count;
        hold_t *holds = request->holds == request->holds_inline
                            ? malloc (capacity * sizeof *holds)
                            : realloc (request->holds, capacity * sizeof *holds);
        assert (holds);
        if (request->holds == request->holds_inline)
            memcpy (holds, request->holds_inline, sizeof request->holds_inline);
        request->holds = holds;
        request->hold_capacity = capacity;
    }
    write_model_t *model = request->api->model;
    hold_t *hold = &request->holds[request->hold_count++];
    *hold = (hold_t){.expect_sent = false};
    s_copy (hold->account, sizeof hold->account, account);
    hold->entry = write_model_figures (model, account, &hold->balance, &hold->available,
                                       &hold->expect);
    write_model_settings_t settings;
    write_model_settings (hold->entry, &settings);
    hold->known = settings.known;
    s_copy (hold->currency, sizeof hold->currency, settings.currency);
    hold->limit = settings.limit_set ? settings.overdraft_limit
                                     : request->api->config.overdraft_limit;
    hold->metadata_hash = settings.metadata_hash;
    s_hold_index (request, index, slot);
    return index;
}

//  An exact integer member: cJSON's numbers are doubles, which round
//  beyond 2^53, so the digits go in as raw JSON text.
static void s_add_int (cJSON *json, const char *name, int64_t value)
{
    char text[24];
    snprintf (text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject (json, name, text);
}

static void s_field_error (request_t *request, size_t index, cJSON **errors_p,
                           const char *name, const char *message)
{
    char field[64];
    if (request->route == ROUTE_BATCH)
        snprintf (field, sizeof field, "commands[%zu].%s", index, name);
    else
        snprintf (field, sizeof field, "%s", name);
    http_problem_add_error (errors_p, field, message);
}

static void s_amount_error (request_t *request, size_t index, cJSON **errors_p,
                            const char *message)
{
    s_field_error (request, index, errors_p, "amount", message);
}

//  Why a command was refused: its status and the problem's detail.
typedef struct {
    unsigned status;
    const char *detail;
} refusal_t;

static int s_refuse (refusal_t *refusal, unsigned status, const char *detail)
{
    refusal->status = status;
    refusal->detail = detail;
    return -1;
}

//  The currency a money command moves, from what it names and what its
//  accounts are in (those not known yet take it: implicit opening).
static int s_plan_currency (request_t *request, size_t index, hold_t *from, hold_t *to,
                            cJSON **errors_p, refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    hold_t *holds[2] = {from, to};
    const char *names[2] = {command->kind == COMMAND_TRANSFER ? "from" : "account",
                            command->kind == COMMAND_TRANSFER ? "to" : "account"};
    const char *currency = *command->currency ? command->currency : NULL;
    for (int side = 0; side < 2; side++) {
        hold_t *hold = holds[side];
        if (!hold || !*hold->currency)
            continue;
        if (currency && !streq (currency, hold->currency)) {
            char message[96];
            snprintf (message, sizeof message, "%s is in %s, not %s", names[side],
                      hold->currency, currency);
            bool given = *command->currency != '\0';
            s_field_error (request, index, errors_p, given ? "currency" : names[side],
                           message);
            return s_refuse (refusal, 422,
                             given ? "the currency is not the account's"
                                   : "money moves only within a currency");
        }
        currency = hold->currency;
    }
    if (!currency)
        currency = EVENT_CURRENCY_V1;
    for (int side = 0; side < 2; side++)
        if (holds[side] && !holds[side]->known) {
            holds[side]->known = true;
            s_copy (holds[side]->currency, sizeof holds[side]->currency, currency);
        }
    return 0;
}

//  POST /accounts and PATCH /accounts/{id} (or their batch items).
static int s_plan_account (request_t *request, size_t index, cJSON **errors_p,
                           refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    hold_t *hold = &request->holds[s_hold (request, command->account)];
    uint64_t metadata_hash = command->metadata && !streq (command->metadata, "{}")
                                 ? key_hash (command->metadata)
                                 : 0;
    if (command->kind == COMMAND_OPEN) {
        if (hold->known) {
            s_field_error (request, index, errors_p, "account",
                           "already open (with these settings POST /accounts replays "
                           "its answer outside a batch)");
            return s_refuse (refusal, 409, "the account exists with other settings");
        }
        hold->known = true;
        s_copy (hold->currency, sizeof hold->currency, command->currency);
        if (command->has_limit)
            hold->limit = command->overdraft_limit;
        hold->metadata_hash = metadata_hash;
    } else {
        if (!hold->known) {
            s_field_error (request, index, errors_p, "account", "not found");
            return s_refuse (refusal, request->route == ROUTE_UPDATE ? 404 : 422,
                             "the account does not exist");
        }
        if (command->has_limit)
            hold->limit = command->overdraft_limit;
        if (command->metadata)
            hold->metadata_hash = metadata_hash;
    }
    hold->events++;
    return 0;
}

//  Plans command index: returns 0, or -1 with *refusal, *extra_p /
//  *errors_p set.
static int s_plan_command (request_t *request, size_t index, cJSON **errors_p,
                           cJSON **extra_p, refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    if (command->kind == COMMAND_OPEN || command->kind == COMMAND_UPDATE)
        return s_plan_account (request, index, errors_p, refusal);
    const char *debited = command->kind == COMMAND_WITHDRAW   ? command->account
                          : command->kind == COMMAND_TRANSFER ? command->from
                                                              : NULL;
    const char *credited = command->kind == COMMAND_DEPOSIT    ? command->account
                           : command->kind == COMMAND_TRANSFER ? command->to
                                                               : NULL;
    size_t from_index = debited ? s_hold (request, debited) : 0;
    size_t to_index = credited ? s_hold (request, credited) : 0;
    hold_t *from = debited ? &request->holds[from_index] : NULL;
    hold_t *to = credited ? &request->holds[to_index] : NULL;
    if (s_plan_currency (request, index, from, to, errors_p, refusal))
        return -1;
    if (from && from->limit != EVENT_LIMIT_UNLIMITED &&
        from->available - command->amount < -from->limit) {
        s_amount_error (request, index, errors_p, "exceeds the available balance");
        *extra_p = cJSON_CreateObject ();
        cJSON_AddStringToObject (*extra_p, "account", debited);
        s_add_int (*extra_p, "balance", from->balance);
        s_add_int (*extra_p, "available", from->available);
        s_add_int (*extra_p, "overdraft_limit", from->limit);
        return s_refuse (refusal, 422, "insufficient funds");
    }
    int64_t credited_balance = 0;
    if (to && __builtin_add_overflow (to->balance, command->amount, &credited_balance)) {
        s_amount_error (request, index, errors_p, "the balance would overflow");
        return s_refuse (refusal, 422, "invalid amount");
    }
    if (from) {
        from->balance -= command->amount;
        from->available -= command->amount;
        from->debit += command->amount;
        from->events++;
    }
    if (to) {
        to->balance = credited_balance;
        to->available +=
            command->amount; // credits count for later commands of this request
        to->events++;
    }
    return 0;
}

//  Validates every command; on success the holds enter the write model.
//  On failure answers the request (422) and frees it; returns -1.
static int s_plan (request_t *request)
{
    s_holds_clear (request);
    cJSON *errors = NULL, *extra = NULL;
    for (size_t index = 0; index < request->count; index++) {
        refusal_t refusal = {422, "invalid command"};
        if (s_plan_command (request, index, &errors, &extra, &refusal) == 0)
            continue;
        s_holds_clear (request); // nothing was held yet
        s_request_fail (request, refusal.status, refusal.detail, errors, extra);
        return -1;
    }
    for (size_t index = 0; index < request->hold_count; index++) {
        hold_t *hold = &request->holds[index];
        hold->entry = write_model_hold (request->api->model, hold->entry, hold->account,
                                        hold->debit, hold->events);
    }
    return 0;
}

//  --------------------------------------------------------------------
//  Sending: one APPEND with every event.
//
//  Only debited accounts carry an expect, on the first event that debits
//  them, and it is the *confirmed* version. A credit can never break the
//  overdraft rule, so deposits never conflict. Counting this instance's
//  pending events into expect would pipeline better but is unsafe with
//  two instances: if the pending event fails and another instance's
//  debit fills its version slot, the later request still matches its
//  expect while having been validated against the wrong debit.

static void s_expect (request_t *request, event_t *event, const char *account)
{
    size_t index = s_hold_find (request, account, NULL);
    assert (index < request->hold_count);
    hold_t *hold = &request->holds[index];
    if (hold->expect_sent)
        return;
    hold->expect_sent = true;
    event_expect_t *expect = &event->expect[event->expect_count++];
    s_copy (expect->account, sizeof expect->account, account);
    expect->version = hold->expect;
}

//  The proposed event of command into event, which s_send prepared once
//  per attempt (event_init and the request's meta): only what differs
//  between commands is written.
//  The currency planning gave account (its hold's).
static const char *s_hold_currency (request_t *request, const char *account)
{
    size_t index = s_hold_find (request, account, NULL);
    assert (index < request->hold_count && *request->holds[index].currency);
    return request->holds[index].currency;
}

static void s_event_from_command (request_t *request, const command_t *command,
                                  event_t *event)
{
    s_copy (event->id, sizeof event->id, command->id);
    event->amount = command->amount;
    s_copy (event->reference, sizeof event->reference, command->reference);
    event->expect_count = 0;
    event->has_limit = false;
    event->metadata_bytes = 0;
    event->metadata[0] = '\0';
    if (command->kind == COMMAND_OPEN || command->kind == COMMAND_UPDATE) {
        bool open = command->kind == COMMAND_OPEN;
        event->type = open ? EVENT_ACCOUNT_OPENED : EVENT_ACCOUNT_UPDATED;
        event->from[0] = event->to[0] = '\0';
        event->amount = 0;
        s_copy (event->account, sizeof event->account, command->account);
        s_copy (event->currency, sizeof event->currency,
                open ? command->currency : EVENT_CURRENCY_V1);
        event->has_limit = open || command->has_limit;
        event->overdraft_limit = command->has_limit
                                     ? command->overdraft_limit
                                     : request->api->config.overdraft_limit;
        if (command->metadata) {
            event->metadata_bytes = strlen (command->metadata);
            memcpy (event->metadata, command->metadata, event->metadata_bytes + 1);
        }
        //  Opening expects version 0: two instances cannot both open it.
        s_expect (request, event, command->account);
    } else if (command->kind == COMMAND_TRANSFER) {
        event->type = EVENT_TRANSFERRED;
        event->account[0] = '\0';
        s_copy (event->from, sizeof event->from, command->from);
        s_copy (event->to, sizeof event->to, command->to);
        s_copy (event->currency, sizeof event->currency,
                s_hold_currency (request, command->from));
        s_expect (request, event, command->from);
    } else {
        event->type =
            command->kind == COMMAND_DEPOSIT ? EVENT_DEPOSITED : EVENT_WITHDRAWN;
        event->from[0] = event->to[0] = '\0';
        s_copy (event->account, sizeof event->account, command->account);
        s_copy (event->currency, sizeof event->currency,
                s_hold_currency (request, command->account));
        if (command->kind == COMMAND_WITHDRAW)
            s_expect (request, event, command->account);
    }
    s_copy (event->type_name, sizeof event->type_name, event_type_name (event->type));
}

//  Sends a new attempt. Returns 0, or -1 when the stream cannot take it.
static int s_send (request_t *request)
{
    api_t *self = request->api;
    if (*request->attempt)
        zhashx_delete (self->by_attempt, request->attempt);
    //  "<instance>-<counter>": 32 + 1 + at most 20 digits fit the 64 bytes.
    size_t attempt_bytes = strlen (self->instance);
    memcpy (request->attempt, self->instance, attempt_bytes);
    request->attempt[attempt_bytes++] = '-';
    attempt_bytes +=
        event_format_int (request->attempt + attempt_bytes, (int64_t)++self->attempts);
    request->attempt[attempt_bytes] = '\0';
    for (size_t index = 0; index < request->hold_count; index++)
        request->holds[index].expect_sent = false;
    //  Frames go straight to libzmq, which copies each once (a zmsg costs
    //  a frame and a copy more per event). Once the first frame is queued
    //  the rest of the message is too: a multipart message is atomic.
    //  The first frame asks whether the stream can take it: with a send
    //  timeout of 0 it fails with EAGAIN when there is no connection
    //  (immediate) or the queue is full, which is what ZMQ_EVENTS would
    //  say at the price of a poll of the socket's mailbox per request.
    void *socket = zsock_resolve (self->ingest);
    int rc = zmq_send (socket, "APPEND", 6, ZMQ_SNDMORE);
    if (rc < 0 && errno == EAGAIN) {
        *request->attempt = '\0';
        return -1;
    }
    if (rc >= 0)
        rc = zmq_send (socket, request->attempt, strlen (request->attempt), ZMQ_SNDMORE);
    event_t event;
    event_init (&event);
    s_copy (event.request_id, sizeof event.request_id, request->request_id);
    s_copy (event.correlation_id, sizeof event.correlation_id, request->correlation_id);
    s_copy (event.principal, sizeof event.principal, request->principal);
    char line[EVENT_LINE_BYTES_MAX];
    for (size_t index = 0; index < request->count && rc >= 0; index++) {
        s_event_from_command (request, &request->commands[index], &event);
        size_t bytes = event_format_proposed (&event, line, sizeof line);
        assert (bytes > 0);
        rc = zmq_send (socket, line, bytes, index + 1 < request->count ? ZMQ_SNDMORE : 0);
    }
    if (rc < 0) {
        log_warn ("zmq_send (APPEND %s) failed: %s", request->attempt,
                  zmq_strerror (errno));
        *request->attempt = '\0';
        return -1;
    }
    zhashx_insert (self->by_attempt, request->attempt, request);
    s_wait_remove (request);
    request->state = STATE_SENT;
    return 0;
}

//  --------------------------------------------------------------------
//  Completion: answers built from the stored events

static bool s_record_matches (const write_model_record_t *record,
                              const command_t *command)
{
    if (!streq (record->id, command->id) || record->amount != command->amount)
        return false;
    switch (command->kind) {
    case COMMAND_DEPOSIT:
        return record->type == EVENT_DEPOSITED &&
               streq (record->account, command->account);
    case COMMAND_WITHDRAW:
        return record->type == EVENT_WITHDRAWN &&
               streq (record->account, command->account);
    case COMMAND_TRANSFER:
        return record->type == EVENT_TRANSFERRED &&
               streq (record->account, command->from) && streq (record->to, command->to);
    case COMMAND_OPEN:
        return record->type == EVENT_ACCOUNT_OPENED &&
               streq (record->account, command->account);
    case COMMAND_UPDATE:
        return record->type == EVENT_ACCOUNT_UPDATED &&
               streq (record->account, command->account);
    }
    return false;
}

//  The 201 body for first_seq..last_seq (caller frees), or NULL with
//  *status / detail saying why it cannot be given.
static char *s_success_text (request_t *request, unsigned *status, const char **detail)
{
    write_model_t *model = request->api->model;
    if (request->last_seq - request->first_seq + 1 != (int64_t)request->count) {
        *status = request->duplicate ? 422 : 500;
        *detail = request->duplicate ? "the idempotency key was used for another request"
                                     : "the stream stored a different number of events";
        return NULL;
    }
    bool batch = request->route == ROUTE_BATCH;
    reply_t reply;
    reply_init (&reply);
    reply_reserve (&reply, request->count * API_REPLY_RECORD_BYTES_GUESS);
    if (batch) {
        reply_append_str (&reply, "{\"first_seq\":");
        reply_append_int (&reply, request->first_seq);
        reply_append_str (&reply, ",\"last_seq\":");
        reply_append_int (&reply, request->last_seq);
        reply_append_str (&reply, ",\"results\":[");
    }
    for (size_t index = 0; index < request->count; index++) {
        const write_model_record_t *record =
            write_model_record (model, request->first_seq + (int64_t)index);
        bool matches = record && s_record_matches (record, &request->commands[index]);
        if (!matches) {
            reply_free (&reply);
            //  A duplicate whose events are no longer kept here was
            //  applied all the same: say so, never a 4xx.
            *status = record ? 422 : request->duplicate ? 200 : 500;
            *detail = record ? "the idempotency key was used for another request"
                             : "the stored event is no longer kept for replay";
            return NULL;
        }
        if (index > 0)
            reply_append (&reply, ",", 1);
        reply_append_record (&reply, record, request->commands[index].metadata);
    }
    if (batch)
        reply_append_str (&reply, "]}");
    return reply.data;
}

//  The answer to a request that was applied, when its 201 can no longer
//  be rebuilt (the balances after its events are not kept): 200, the
//  problem type .../already-applied and the seqs its events hold.
static char *s_already_applied_text (request_t *request)
{
    cJSON *json = http_problem_new (
        200, "Already applied",
        "this request was applied before; its events are stored at the seqs given, but "
        "its original answer (the balances after it) is no longer kept",
        NULL);
    cJSON_AddStringToObject (json, "id", request->commands[0].id);
    s_add_int (json, "first_seq", request->first_seq);
    s_add_int (json, "last_seq", request->last_seq);
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    assert (text);
    return text;
}

static void s_finish_applied (request_t *request)
{
    unsigned status = 201;
    const char *detail = NULL;
    char *text = s_success_text (request, &status, &detail);
    if (text)
        s_request_end (request, request->route == ROUTE_UPDATE ? 200 : 201, text,
                       request->duplicate);
    else if (status == 200)
        s_request_end (request, 200, s_already_applied_text (request), true);
    else {
        if (status == 500)
            log_error ("request %s: %s", request->request_id, detail);
        cJSON *errors = NULL;
        if (status == 422)
            http_problem_add_error (&errors, "id", detail);
        s_request_fail (request, status, detail, errors, NULL);
    }
}

static bool s_versions_reached (request_t *request)
{
    const cJSON *item;
    cJSON_ArrayForEach (item, request->versions)
    {
        if (cJSON_IsNumber (item) && item->string &&
            write_model_version (request->api->model, item->string) < item->valuedouble)
            return false;
    }
    return true;
}

//  Conflict: the write model now knows what the stream knew; try again.
static void s_retry (request_t *request)
{
    api_t *self = request->api;
    cJSON_Delete (request->versions);
    request->versions = NULL;
    if (++request->retries > self->config.retries_max) {
        s_request_fail (request, 409, "the accounts changed concurrently; retry", NULL,
                        NULL);
        return;
    }
    self->retried++;
    s_release_holds (request);
    if (s_plan (request) != 0)
        return; // answered: e.g. insufficient funds now
    if (s_send (request) != 0)
        s_request_fail (request, 503, "the stream is unreachable", NULL, NULL);
}

//  Finishes or retries the request once the write model is far enough,
//  else puts it on the waitlist of its state.
static void s_progress (request_t *request)
{
    api_t *self = request->api;
    s_wait_remove (request);
    int64_t applied = write_model_applied_seq (self->model);
    if (request->state == STATE_APPLYING) {
        if (applied >= request->last_seq)
            s_finish_applied (request);
        else
            s_wait_insert (&self->applying, request, true);
    } else if (request->state == STATE_CONFLICTED) {
        if (s_versions_reached (request))
            s_retry (request);
        else
            s_wait_insert (&self->conflicted, request, false);
    }
}

static int64_t s_result_int (const cJSON *result, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (result, name);
    return cJSON_IsNumber (item) ? (int64_t)item->valuedouble : 0;
}

static void s_on_event (void *arg, const event_t *event, const char *line,
                        size_t line_bytes)
{
    api_t *self = (api_t *)arg;
    write_model_set_head (self->model, subscriber_head_seq (self->subscriber));
    write_model_apply (self->model, event);
}

//  A seq as the stream prints it: [1-9][0-9]* (or 0), at most 15 digits,
//  where cJSON's double (s_result_int) is exact too.
static bool s_read_seq (const char **text_p, int64_t *value)
{
    const char *text = *text_p;
    int64_t seq = 0;
    size_t digits = 0;
    for (; text[digits] >= '0' && text[digits] <= '9'; digits++)
        seq = seq * 10 + (text[digits] - '0');
    if (digits == 0 || digits > 15 || (digits > 1 && *text == '0'))
        return false;
    *value = seq;
    *text_p = text + digits;
    return true;
}

static bool s_read_literal (const char **text_p, const char *literal, size_t bytes)
{
    if (strncmp (*text_p, literal, bytes) != 0)
        return false;
    *text_p += bytes;
    return true;
}

#define s_read_lit(text_p, literal)                                                      \
    s_read_literal ((text_p), (literal), sizeof (literal) - 1)

//  The ok and duplicate RESULTs exactly as DESIGN spells them (as the
//  stream prints them), read without cJSON: a tenth of a POST
//  /transactions went into parsing them. Anything else is left to cJSON.
static bool s_read_appended (const char *text, bool *duplicate, int64_t *first_seq,
                             int64_t *last_seq)
{
    if (!s_read_lit (&text, "{\"status\":\""))
        return false;
    *duplicate = s_read_lit (&text, "duplicate");
    return (*duplicate || s_read_lit (&text, "ok")) &&
           s_read_lit (&text, "\",\"first_seq\":") && s_read_seq (&text, first_seq) &&
           s_read_lit (&text, ",\"last_seq\":") && s_read_seq (&text, last_seq) &&
           s_read_lit (&text, "}") && *text == '\0';
}

//  ok or duplicate: the events are stored; answer once they are folded.
static void s_on_appended (request_t *request, bool duplicate, int64_t first_seq,
                           int64_t last_seq)
{
    request->state = STATE_APPLYING;
    request->duplicate = duplicate;
    request->first_seq = first_seq;
    request->last_seq = last_seq;
    s_progress (request);
}

static void s_on_result (void *arg, const char *attempt, const char *result_json)
{
    api_t *self = (api_t *)arg;
    request_t *request = zhashx_lookup (self->by_attempt, attempt);
    if (!request)
        return; // another instance's, or one we stopped waiting for
    zhashx_delete (self->by_attempt, attempt);
    *request->attempt = '\0';
    bool duplicate = false;
    int64_t first_seq = 0, last_seq = 0;
    if (s_read_appended (result_json, &duplicate, &first_seq, &last_seq)) {
        s_on_appended (request, duplicate, first_seq, last_seq);
        return;
    }
    cJSON *result = cJSON_Parse (result_json);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive (result, "status");
    const char *name = cJSON_IsString (status) ? status->valuestring : "";
    if (streq (name, "ok") || streq (name, "duplicate"))
        s_on_appended (request, streq (name, "duplicate"),
                       s_result_int (result, "first_seq"),
                       s_result_int (result, "last_seq"));
    else if (streq (name, "conflict")) {
        self->conflicts++;
        s_release_holds (request); // nothing of it was stored
        request->state = STATE_CONFLICTED;
        request->versions = cJSON_DetachItemFromObjectCaseSensitive (result, "versions");
        s_progress (request);
    } else if (streq (name, "unavailable"))
        s_request_fail (request, 503, "the stream could not store the events", NULL,
                        NULL);
    else {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive (result, "error");
        const char *text = cJSON_IsString (error) ? error->valuestring : result_json;
        // Everything was validated here, so this is a disagreement with the
        // stream worth a log line; the client still learns why.
        log_warn ("stream rejected request %s: %s", request->request_id, text);
        s_request_fail (request, 422, text, NULL, NULL);
    }
    cJSON_Delete (result);
}

static void s_on_applied (void *arg, int64_t applied_seq)
{
    api_t *self = (api_t *)arg;
    request_t *request;
    while ((request = self->applying.head) && request->last_seq <= applied_seq)
        s_progress (request); // finishes it: it leaves the list
    //  Conflicts are rare: each one checks its versions. s_progress ends
    //  or resends only the request it is given, so next stays valid (and
    //  one not yet ready must stay where it is: no s_progress for it).
    request = self->conflicted.head;
    while (request) {
        request_t *next = request->wait_next;
        if (s_versions_reached (request))
            s_progress (request);
        request = next;
    }
}

//  --------------------------------------------------------------------
//  Timeouts and an unreachable stream

static int s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    api_t *self = (api_t *)arg;
    int64_t now = zclock_mono ();
    bool connected = subscriber_connected (self->subscriber);
    //  Diverged: nothing more is folded, so no request in flight can end well.
    bool diverged = subscriber_diverged (self->subscriber) != NULL;
    request_t *request;
    // Arrival order is deadline order: stop at the first one still in time.
    while ((request = zlistx_first (self->requests)) &&
           (request->deadline_ms <= now || !connected || diverged)) {
        self->timeouts++;
        char detail[96];
        if (diverged)
            snprintf (detail, sizeof detail,
                      "the write model and the stream's log diverged (see /health)");
        else if (connected)
            snprintf (detail, sizeof detail, "no result from the stream within %d ms",
                      self->config.ack_timeout_ms);
        else
            snprintf (detail, sizeof detail, "the stream is unreachable");
        s_request_fail (request, 503, detail, NULL, NULL);
    }
    return 0;
}

//  --------------------------------------------------------------------
//  HTTP: write requests

typedef struct {
    command_t *commands;
    size_t count;
    char key[EVENT_ID_BYTES_MAX + 1]; // "" when none
} parsed_t;

static command_shape_t s_shape (route_t route)
{
    return route == ROUTE_BATCH      ? COMMAND_SHAPE_ANY
           : route == ROUTE_TRANSFER ? COMMAND_SHAPE_TRANSFER
           : route == ROUTE_OPEN     ? COMMAND_SHAPE_OPEN
           : route == ROUTE_UPDATE   ? COMMAND_SHAPE_UPDATE
                                     : COMMAND_SHAPE_TRANSACTION;
}

static int s_parse_key (http_request_t *http, const char *body_id, char *key,
                        cJSON **errors_p)
{
    const char *header = http_request_header (http, "Idempotency-Key");
    if (header && !event_id_is_valid (header, strlen (header))) {
        http_problem_add_error (errors_p, "Idempotency-Key",
                                "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
        return -1;
    }
    if (header && *body_id && !streq (header, body_id)) {
        http_problem_add_error (errors_p, "id",
                                "differs from the Idempotency-Key header");
        return -1;
    }
    if (header)
        s_copy (key, EVENT_ID_BYTES_MAX + 1, header);
    else if (key != body_id)
        s_copy (key, EVENT_ID_BYTES_MAX + 1, body_id);
    return 0;
}

//  A random (version 4) UUID without a getrandom per id: a random base
//  drawn once per process, with the low 64 bits XORed with a bijective mix
//  of a counter. Within a process the ids differ because the mix is a
//  bijection (and the counter never wraps). Across processes and restarts
//  each one's whole id set is the same fixed set XORed with an independent
//  122-bit random base, so two processes collide with probability at most
//  n1 * n2 / 2^122: what n1 * n2 fresh random UUIDs would give.
static void s_uuid_generate (api_t *self, char *text)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t mixed = ++self->uuids; // splitmix64's finalizer: a bijection
    mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ULL;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebULL;
    mixed ^= mixed >> 31;
    uint8_t data[API_UUID_BYTES];
    memcpy (data, self->uuid_base, sizeof data);
    for (int index = 0; index < 8; index++)
        data[8 + index] ^= (uint8_t)(mixed >> (8 * index));
    data[6] = (uint8_t)((data[6] & 0x0f) | 0x40); // version 4
    data[8] = (uint8_t)((data[8] & 0x3f) | 0x80); // RFC 4122 variant
    for (int index = 0; index < API_UUID_BYTES; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10)
            *text++ = '-';
        *text++ = hex[data[index] >> 4];
        *text++ = hex[data[index] & 0xf];
    }
    *text = '\0';
}

//  Event ids: a single command's is the key (or a new UUID); a batch
//  command's is its own id, else "<key>:<index>", so a retried batch is
//  deduplicated by the stream. Ids must be unique within a request.
//  "<base>:<index>" into id; -1 when it does not fit.
static int s_derive_id (const char *base, size_t index, char *id)
{
    size_t bytes = strlen (base);
    char text[EVENT_ID_BYTES_MAX + 32];
    memcpy (text, base, bytes);
    text[bytes++] = ':';
    bytes += event_format_int (text + bytes, (int64_t)index);
    if (bytes > EVENT_ID_BYTES_MAX)
        return -1;
    memcpy (id, text, bytes);
    id[bytes] = '\0';
    return 0;
}

static void s_id_too_long (cJSON **errors_p)
{
    http_problem_add_error (errors_p, "Idempotency-Key",
                            "too long to derive the batch's event ids");
}

//  Derives the missing ids and checks that all differ, stopping at the
//  first fault. Only needed when some command has an id of its own:
//  derived ids alone differ by their indexes.
static int s_assign_checked (parsed_t *parsed, const char *base, cJSON **errors_p)
{
    zhashx_t *seen = zhashx_new ();
    assert (seen);
    int rc = 0;
    for (size_t index = 0; index < parsed->count && rc == 0; index++) {
        command_t *command = &parsed->commands[index];
        if (!*command->id && s_derive_id (base, index, command->id) != 0) {
            s_id_too_long (errors_p);
            rc = -1;
        } else if (zhashx_insert (seen, command->id, command) != 0) {
            char field[48];
            snprintf (field, sizeof field, "commands[%zu].id", index);
            http_problem_add_error (errors_p, field, "duplicate id within the batch");
            rc = -1;
        }
    }
    zhashx_destroy (&seen);
    return rc;
}

static int s_assign_ids (api_t *self, route_t route, parsed_t *parsed, cJSON **errors_p)
{
    char base[EVENT_ID_BYTES_MAX + 1];
    if (*parsed->key)
        s_copy (base, sizeof base, parsed->key);
    else
        s_uuid_generate (self, base);
    if (route != ROUTE_BATCH) {
        s_copy (parsed->commands[0].id, EVENT_ID_BYTES_MAX + 1, base);
        return 0;
    }
    for (size_t index = 0; index < parsed->count; index++)
        if (*parsed->commands[index].id)
            return s_assign_checked (parsed, base, errors_p);
    for (size_t index = 0; index < parsed->count; index++)
        if (s_derive_id (base, index, parsed->commands[index].id) != 0) {
            s_id_too_long (errors_p);
            return -1;
        }
    return 0;
}

//  The body's commands through cJSON, which names every fault; on
//  failure answers (400 from http, or 422) and returns -1.
static int s_parse_body_json (api_t *self, http_request_t *http, route_t route,
                              parsed_t *parsed)
{
    cJSON *json = http_request_parse_json (http);
    if (!json)
        return -1; // answered 400
    size_t bytes = 0;
    const char *body = http_request_body (http, &bytes);
    commands_annotate_numbers (json, body, bytes);
    cJSON *errors = NULL;
    int rc = 0;
    if (route == ROUTE_BATCH)
        rc = commands_parse_batch (json, &parsed->commands, &parsed->count, parsed->key,
                                   &errors);
    else {
        parsed->count = 1;
        parsed->commands = calloc (1, sizeof (command_t));
        assert (parsed->commands);
        rc = commands_parse (json, s_shape (route), "", parsed->commands, &errors);
        const char *id = route == ROUTE_UPDATE ? http_request_param (http, "id") : NULL;
        if (id && !event_id_is_valid (id, strlen (id))) {
            http_problem_add_error (&errors, "id",
                                    "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
            rc = -1;
        } else if (id)
            s_copy (parsed->commands->account, sizeof parsed->commands->account, id);
    }
    cJSON_Delete (json);
    if (rc != 0)
        s_respond_problem (self, http, 422, "the command is not valid", errors);
    return rc;
}

//  Parses and validates the body; on failure answers and returns -1.
//  Plainly valid bodies (nearly all) skip cJSON: commands_read gives what
//  the cJSON path would, and declines anything else.
static int s_parse_request (api_t *self, http_request_t *http, route_t route,
                            parsed_t *parsed)
{
    size_t bytes = 0;
    const char *body = http_request_body (http, &bytes);
    if (commands_read (body, bytes, s_shape (route), route == ROUTE_BATCH,
                       &parsed->commands, &parsed->count, parsed->key) != 0 &&
        s_parse_body_json (self, http, route, parsed) != 0)
        return -1;
    cJSON *errors = NULL;
    const char *body_id = route == ROUTE_BATCH ? parsed->key : parsed->commands[0].id;
    int rc = s_parse_key (http, body_id, parsed->key, &errors);
    const char *correlation = http_request_header (http, "X-Correlation-Id");
    if (rc == 0 && correlation && strlen (correlation) > EVENT_META_VALUE_BYTES_MAX) {
        http_problem_add_error (&errors, "X-Correlation-Id", "at most 256 bytes");
        rc = -1;
    }
    if (rc == 0)
        rc = s_assign_ids (self, route, parsed, &errors);
    if (rc != 0)
        s_respond_problem (self, http, 422, "the command is not valid", errors);
    return rc;
}

//  The same key again: the same answer (or the same wait), or 422.
//  Returns true when http was answered or attached.
static bool s_handle_known_key (api_t *self, http_request_t *http, const char *key,
                                const char *fingerprint)
{
    request_t *running = zhashx_lookup (self->by_key, key);
    const idempotency_entry_t *entry = idempotency_lookup (self->idempotency, key);
    const char *known = running ? running->fingerprint
                        : entry ? entry->fingerprint
                                : NULL;
    if (!known)
        return false;
    if (!streq (known, fingerprint)) {
        cJSON *errors = NULL;
        http_problem_add_error (&errors, "Idempotency-Key",
                                "already used for another request");
        s_respond_problem (self, http, 422,
                           "the idempotency key was used for another request", errors);
    } else if (running) {
        http_request_suspend (http);
        if (!running->followers)
            running->followers = zlistx_new ();
        assert (running->followers);
        zlistx_add_end (running->followers, http);
        self->waiters++;
    } else
        s_respond (self, http, entry->status, entry->body, true);
    return true;
}

static request_t *s_request_new (api_t *self, http_request_t *http, route_t route,
                                 parsed_t *parsed, const char *fingerprint)
{
    request_t *request = calloc (1, sizeof *request);
    assert (request);
    request->api = self;
    request->route = route;
    request->commands = parsed->commands;
    request->count = parsed->count;
    parsed->commands = NULL;
    request->keyed = *parsed->key != '\0';
    s_copy (request->key, sizeof request->key, parsed->key);
    s_copy (request->fingerprint, sizeof request->fingerprint, fingerprint);
    s_copy (request->request_id, sizeof request->request_id, http_request_id (http));
    const char *correlation = http_request_header (http, "X-Correlation-Id");
    s_copy (request->correlation_id, sizeof request->correlation_id,
            correlation ? correlation : "");
    const auth_principal_t *principal = http_request_principal (http);
    s_copy (request->principal, sizeof request->principal,
            principal ? principal->name : "");
    request->holds = request->holds_inline;
    request->hold_capacity = API_HOLDS_INLINE;
    request->deadline_ms = zclock_mono () + self->config.ack_timeout_ms;
    request->originator = http;
    self->waiters++;
    request->handle = zlistx_add_end (self->requests, request);
    if (request->keyed)
        zhashx_insert (self->by_key, request->key, request);
    return request;
}

//  A retry whose events the write model already folded (a 503'd request
//  that landed later, a 201 resent to another instance or after a
//  restart) must not be validated again: its own debit is in the
//  balances now, so it could be refused although it was applied. Answers
//  it like a stream "duplicate" when its first event id is kept and the
//  whole request is applied (201 replay if the stored events are this
//  command, else 422), and returns true. The first id decides, as in the
//  stream. Otherwise returns false and the stream decides; that includes
//  events durable but not yet folded here (the stream answers duplicate
//  and the request waits for them) and ids beyond the kept window.
static bool s_answer_landed (request_t *request)
{
    write_model_t *model = request->api->model;
    int64_t first_seq = write_model_find (model, request->commands[0].id);
    int64_t last_seq = first_seq + (int64_t)request->count - 1;
    if (!first_seq || last_seq > write_model_applied_seq (model))
        return false;
    request->duplicate = true;
    request->first_seq = first_seq;
    request->last_seq = last_seq;
    s_finish_applied (request);
    return true;
}

//  The write model follows a stream whose log is not the history it
//  folded: deciding against it could overdraw or answer a retry from
//  events the log no longer has. Refused until the cause is fixed and
//  the instance restarted (it folds the stream's log from seq 1 again).
static bool s_refuse_diverged (api_t *self, http_request_t *http)
{
    const char *reason = subscriber_diverged (self->subscriber);
    if (!reason)
        return false;
    char detail[320];
    snprintf (detail, sizeof detail,
              "the write model and the stream's log diverged (%s); restart this "
              "instance once the stream's log is the right one",
              reason);
    cJSON *json = http_problem_new (503, "Diverged", detail, NULL);
    char *body = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    assert (body);
    s_respond_bytes (self, http, 503, body, strlen (body), false, true);
    return true;
}

//  --------------------------------------------------------------------
//  A key this instance holds no answer for: the stream's dedupe window
//  says whether its events landed (a retry of a 503'd request that landed
//  later, of one answered before a restart, or forgotten since), before
//  it is validated again: its own debit may be in the balances already,
//  and a 422 would read "not applied". Keys are one namespace across
//  routes: a single command's event id is the key, a batch's first is
//  "<key>:0", so both are asked about (with the first event's own id).

//  The ids to ask about, each once.
static void s_lookup_ids (request_t *request)
{
    char derived[EVENT_ID_BYTES_MAX + 1] = "";
    if (s_derive_id (request->key, 0, derived) != 0)
        derived[0] = '\0'; // too long to be any route's id
    const char *candidates[API_LOOKUP_IDS_MAX] = {request->commands[0].id, request->key,
                                                  derived};
    request->lookup_count = 0;
    for (size_t index = 0; index < API_LOOKUP_IDS_MAX; index++) {
        bool known = !*candidates[index];
        for (size_t other = 0; other < request->lookup_count; other++)
            known = known || streq (request->lookups[other], candidates[index]);
        if (!known)
            s_copy (request->lookups[request->lookup_count++], EVENT_ID_BYTES_MAX + 1,
                    candidates[index]);
    }
}

//  True if the write model has perhaps folded one of the request's ids:
//  only then is the stream asked (a new key, nearly every keyed request,
//  costs no round trip). An id durable but not folded yet is decided by
//  the stream's own dedupe, as before.
static bool s_maybe_stored (request_t *request)
{
    s_lookup_ids (request);
    for (size_t index = 0; index < request->lookup_count; index++)
        if (write_model_seen (request->api->model, request->lookups[index]))
            return true;
    request->lookup_count = 0; // none asked about
    return false;
}

//  Asks about the request's ids (s_lookup_ids) and suspends it until the
//  answers came (s_on_lookup), or answers it 503 when they cannot be
//  asked now.
static void s_lookup_start (request_t *request)
{
    api_t *self = request->api;
    for (size_t index = 0; index < request->lookup_count; index++) {
        const char *id = request->lookups[index];
        if (zhashx_lookup (self->by_lookup, id)) {
            s_request_fail (request, 503,
                            "a request with an overlapping idempotency key is being "
                            "checked; retry",
                            NULL, NULL);
            return;
        }
        if (lookup_ask (self->lookup, id) != 0) {
            s_request_fail (request, 503, "the stream is unreachable", NULL, NULL);
            return;
        }
        zhashx_insert (self->by_lookup, id, request);
    }
    request->lookups_out = request->lookup_count;
    request->state = STATE_LOOKING;
    http_request_suspend (request->originator);
}

//  True if the stored line (line_bytes, no NUL) is command's event.
static bool s_line_matches (const char *line, size_t line_bytes, const command_t *command)
{
    static char text[EVENT_LINE_BYTES_MAX + 1];
    event_t event;
    char error[128];
    if (line_bytes > EVENT_LINE_BYTES_MAX)
        return false;
    memcpy (text, line, line_bytes);
    text[line_bytes] = '\0';
    if (event_parse_stored (text, line_bytes, &event, error, sizeof error))
        return false;
    write_model_record_t record = {.type = event.type, .amount = event.amount};
    s_copy (record.id, sizeof record.id, event.id);
    s_copy (record.account, sizeof record.account,
            event.type == EVENT_TRANSFERRED ? event.from : event.account);
    s_copy (record.to, sizeof record.to, event.to);
    return s_record_matches (&record, command);
}

//  Every answer is in: answer from the stored events, refuse the key, or
//  decide the request as new.
static void s_lookup_done (request_t *request)
{
    if (request->lookup_failed) {
        s_request_fail (request, 503,
                        "cannot tell whether this key's events are stored (the stream did "
                        "not answer); retry",
                        NULL, NULL);
    } else if (request->found_seq && !request->found_other_body) {
        //  Applied: answered like a stream "duplicate", once folded here.
        request->state = STATE_APPLYING;
        request->duplicate = true;
        request->first_seq = request->found_seq;
        request->last_seq = request->found_seq + (int64_t)request->count - 1;
        s_progress (request);
    } else if (request->found_other || request->found_other_body) {
        cJSON *errors = NULL;
        http_problem_add_error (&errors, "Idempotency-Key",
                                "already used for another request");
        s_request_fail (request, 422, "the idempotency key was used for another request",
                        errors, NULL);
    } else if (s_plan (request) == 0 && s_send (request) != 0)
        s_request_fail (request, 503, "the stream is unreachable", NULL, NULL);
}

//  lookup's answer for id: seq > 0 stored (line is it), 0 not, -1 unknown.
static void s_on_lookup (void *arg, const char *id, int64_t seq, const char *line,
                         size_t line_bytes)
{
    api_t *self = (api_t *)arg;
    request_t *request = zhashx_lookup (self->by_lookup, id);
    if (!request)
        return; // answered meanwhile (timeout, overlap, stop)
    zhashx_delete (self->by_lookup, id);
    if (seq < 0)
        request->lookup_failed = true;
    else if (seq > 0 && streq (id, request->commands[0].id)) {
        request->found_seq = seq;
        request->found_other_body = !s_line_matches (line, line_bytes, request->commands);
    } else if (seq > 0)
        request->found_other = true;
    if (--request->lookups_out == 0)
        s_lookup_done (request);
}

//  Refuses (403) commands that touch an account outside the principal's
//  pattern, naming the first such field; nothing of the request is
//  appended. Returns true when refused.
static bool s_refuse_accounts (http_request_t *http, route_t route,
                               const parsed_t *parsed)
{
    const auth_principal_t *principal = http_request_principal (http);
    if (auth_principal_sees_all (principal))
        return false;
    for (size_t index = 0; index < parsed->count; index++) {
        const command_t *command = &parsed->commands[index];
        const char *field = NULL, *account = NULL;
        if (command->kind != COMMAND_TRANSFER) {
            if (!auth_principal_allows_account (principal, command->account))
                field = "account", account = command->account;
        } else if (!auth_principal_allows_account (principal, command->from))
            field = "from", account = command->from;
        else if (!auth_principal_allows_account (principal, command->to))
            field = "to", account = command->to;
        if (!field)
            continue;
        char name[48], detail[256];
        if (route == ROUTE_BATCH)
            snprintf (name, sizeof name, "commands[%zu].%s", index, field);
        else
            snprintf (name, sizeof name, "%s", field);
        snprintf (detail, sizeof detail, "%s: %s may not move money of account %s", name,
                  principal->name, account);
        cJSON *errors = NULL;
        http_problem_add_error (&errors, name, "outside the accounts of the token");
        http_respond_forbidden (http, detail, errors);
        return true;
    }
    return false;
}

//  Why writes would be refused now, or NULL. The ingest socket connects
//  with ZMQ_IMMEDIATE: it is writable only with a live connection to the
//  stream (and room below its high-water mark), which a stopped stream
//  takes away at once, before the heartbeats from it are missed.
static const char *s_not_writable (api_t *self, const char **status)
{
    *status = "unavailable";
    if (!subscriber_caught_up (self->subscriber)) {
        *status = "starting";
        return "starting: the write model is catching up";
    }
    if (!subscriber_connected (self->subscriber))
        return "the stream is unreachable";
    if (!(zsock_events (self->ingest) & ZMQ_POLLOUT))
        return "the stream is unreachable";
    *status = "ok";
    return NULL;
}

//  POST /accounts for an account already open with the same settings
//  (currency, limit as given or the default, metadata): answers 201 with
//  them (Idempotent-Replayed) and appends nothing; other settings are
//  planned and refused 409 there. Returns true when answered.
static bool s_open_replayed (api_t *self, http_request_t *http, const command_t *command)
{
    int64_t balance, available, version;
    write_model_account_t *entry = write_model_figures (self->model, command->account,
                                                        &balance, &available, &version);
    write_model_settings_t settings;
    write_model_settings (entry, &settings);
    int64_t limit =
        settings.limit_set ? settings.overdraft_limit : self->config.overdraft_limit;
    int64_t asked =
        command->has_limit ? command->overdraft_limit : self->config.overdraft_limit;
    uint64_t metadata_hash = command->metadata && !streq (command->metadata, "{}")
                                 ? key_hash (command->metadata)
                                 : 0;
    if (!settings.known || !streq (settings.currency, command->currency) ||
        limit != asked || metadata_hash != settings.metadata_hash)
        return false;
    reply_t reply;
    reply_init (&reply);
    reply_append_str (&reply, "{\"account\":\"");
    reply_append_str (&reply, command->account);
    reply_append_str (&reply, "\",\"currency\":\"");
    reply_append_str (&reply, settings.currency);
    reply_append_str (&reply, "\",\"overdraft_limit\":");
    if (limit == EVENT_LIMIT_UNLIMITED)
        reply_append_str (&reply, "null");
    else
        reply_append_int (&reply, limit);
    reply_append_str (&reply, ",\"metadata\":");
    reply_append_str (&reply, command->metadata ? command->metadata : "{}");
    reply_append_str (&reply, ",\"version\":");
    reply_append_int (&reply, version);
    reply_append_str (&reply, "}");
    s_respond_bytes (self, http, 201, reply.data, reply.bytes, true, true);
    return true;
}

//  POST /transactions, /transfers, /batch, /accounts; PATCH /accounts/{id}
static void s_handle_write (api_t *self, http_request_t *http, route_t route)
{
    if (s_refuse_diverged (self, http))
        return;
    const char *status;
    const char *reason = s_not_writable (self, &status);
    if (reason) {
        s_respond_problem (self, http, 503, reason, NULL);
        return;
    }
    parsed_t parsed = {NULL, 0, ""};
    if (s_parse_request (self, http, route, &parsed) != 0 ||
        s_refuse_accounts (http, route, &parsed)) {
        commands_free (parsed.commands, parsed.count);
        return;
    }
    //  Only a key's later uses compare fingerprints: none without one
    //  (SHA-1 of a batch of 1000 was a tenth of its cost).
    char fingerprint[COMMANDS_FINGERPRINT_BYTES + 1] = "";
    if (*parsed.key)
        commands_fingerprint (parsed.commands, parsed.count, route == ROUTE_BATCH,
                              fingerprint);
    //  A key seen before answers as it did first; only then may an open
    //  of an account with the same settings replay them.
    if ((*parsed.key && s_handle_known_key (self, http, parsed.key, fingerprint)) ||
        (route == ROUTE_OPEN && s_open_replayed (self, http, parsed.commands))) {
        commands_free (parsed.commands, parsed.count);
        return;
    }
    if (self->waiters >= self->config.inflight_max) {
        commands_free (parsed.commands, parsed.count);
        s_respond_problem (self, http, 503, "too many requests in flight", NULL);
        return;
    }
    request_t *request = s_request_new (self, http, route, &parsed, fingerprint);
    if (s_answer_landed (request))
        return; // answered from the stored events
    if (request->keyed && s_maybe_stored (request)) {
        s_lookup_start (request);
        return; // answered, or decided once the stream said what it holds
    }
    if (s_plan (request) != 0)
        return; // answered 422
    if (s_send (request) != 0)
        s_request_fail (request, 503, "the stream is unreachable", NULL, NULL);
    else
        http_request_suspend (http); // answered from a RESULT, an event or the timer
}

static void s_handle_transactions (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_TRANSACTION);
}

static void s_handle_transfers (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_TRANSFER);
}

static void s_handle_batch (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_BATCH);
}

//  POST /accounts {"account","currency","overdraft_limit"?,"metadata"?}
static void s_handle_open (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_OPEN);
}

//  PATCH /accounts/{id} {"overdraft_limit"?,"metadata"?}
static void s_handle_update (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_UPDATE);
}

//  --------------------------------------------------------------------
//  HTTP: health and metrics

static void s_handle_health (http_request_t *http, void *arg)
{
    api_t *self = (api_t *)arg;
    const char *diverged = subscriber_diverged (self->subscriber);
    const char *status;
    const char *reason = s_not_writable (self, &status);
    if (diverged) {
        status = "unhealthy";
        reason = "diverged";
    }
    bool ready = !reason;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "status", status);
    if (reason)
        cJSON_AddStringToObject (json, "reason", reason);
    if (diverged)
        cJSON_AddStringToObject (json, "detail", diverged);
    cJSON_AddStringToObject (json, "upstream",
                             subscriber_connected (self->subscriber) ? "connected"
                                                                     : "disconnected");
    s_add_int (json, "applied_seq", write_model_applied_seq (self->model));
    s_add_int (json, "head_seq", subscriber_head_seq (self->subscriber));
    cJSON_AddNumberToObject (json, "inflight", (double)zlistx_size (self->requests));
    // 503 while writes would be: a load balancer sends them elsewhere.
    http_respond_json (http, ready ? 200 : 503, json);
    cJSON_Delete (json);
}

static void s_handle_metrics (http_request_t *http, void *arg)
{
    api_t *self = (api_t *)arg;
    metrics_t *metrics = metrics_new ();
    assert (metrics);
    metrics_counter (metrics, "transaction_created_total", "Write requests answered 201",
                     self->created);
    metrics_counter (metrics, "transaction_replayed_total",
                     "Requests answered from an earlier result (Idempotent-Replayed)",
                     self->replayed);
    metrics_counter (metrics, "transaction_rejected_total",
                     "Write requests answered 4xx or 500", self->rejected);
    metrics_counter (metrics, "transaction_unavailable_total",
                     "Write requests answered 503", self->unavailable);
    metrics_counter (metrics, "transaction_conflicts_total",
                     "Conflict results from the stream", self->conflicts);
    metrics_counter (metrics, "transaction_retries_total",
                     "Appends retried after a conflict", self->retried);
    metrics_counter (metrics, "transaction_timeouts_total",
                     "Requests given up on (ack timeout or stream unreachable)",
                     self->timeouts);
    metrics_counter (metrics, "transaction_http_requests_total", "HTTP requests answered",
                     http_server_requests_total (self->http));
    metrics_gauge (metrics, "transaction_inflight",
                   "Write requests waiting for the stream",
                   (double)zlistx_size (self->requests));
    metrics_gauge (metrics, "transaction_applied_seq", "Last seq in the write model",
                   (double)write_model_applied_seq (self->model));
    metrics_gauge (metrics, "transaction_accounts", "Accounts in the write model",
                   (double)write_model_account_count (self->model));
    metrics_gauge (metrics, "transaction_idempotency_keys", "Answers remembered by key",
                   (double)idempotency_size (self->idempotency));
    metrics_gauge (metrics, "transaction_diverged",
                   "1 once the stream's log and the write model disagree",
                   subscriber_diverged (self->subscriber) ? 1 : 0);
    metrics_gauge (metrics, "transaction_upstream_connected",
                   "1 while the stream is heard",
                   subscriber_connected (self->subscriber) ? 1 : 0);
    http_server_metrics (self->http, metrics);
    size_t bytes = 0;
    const char *text = metrics_text (metrics, &bytes);
    http_respond (http, 200, METRICS_CONTENT_TYPE, text, bytes);
    metrics_destroy (&metrics);
}

//  --------------------------------------------------------------------
//  Construction

static const http_route_t s_routes[] = {
    {"POST", "/transactions", s_handle_transactions, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/transfers", s_handle_transfers, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/batch", s_handle_batch, API_BATCH_BODY_BYTES_MAX, AUTH_SCOPE_WRITE, NULL},
    {"POST", "/accounts", s_handle_open, API_SINGLE_BODY_BYTES_MAX, AUTH_SCOPE_WRITE,
     NULL},
    {"PATCH", "/accounts/{id}", s_handle_update, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"GET", "/health", s_handle_health, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/metrics", s_handle_metrics, 0, AUTH_SCOPE_METRICS, NULL},
    OPENAPI_ROUTE,
};

static int s_connect_ingest (api_t *self)
{
    self->ingest = zsock_new (ZMQ_PUSH);
    if (!self->ingest)
        return -1;
    // Queue only to a live stream connection, never block the loop, and
    // drop what is unsent at exit: a client that saw 503 retries by key.
    zsock_set_immediate (self->ingest, 1);
    zsock_set_sndtimeo (self->ingest, 0);
    zsock_set_linger (self->ingest, 0);
    if (self->curve)
        curve_apply_client (self->curve, self->ingest);
    if (zsock_connect (self->ingest, "%s", self->config.ingest_endpoint) != 0) {
        log_error ("zsock_connect (PUSH, \"%s\") failed: %s",
                   self->config.ingest_endpoint, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

static int s_start_subscriber (api_t *self)
{
    subscriber_config_t config = {
        .publish_endpoint = self->config.publish_endpoint,
        .replay_endpoint = self->config.replay_endpoint,
        .applied_seq = 0,
        .want_results = true,
        .curve = self->curve,
    };
    subscriber_handlers_t handlers = {
        .on_event = s_on_event,
        .on_result = s_on_result,
        .on_applied = s_on_applied,
    };
    self->subscriber = subscriber_new (self->loop, &config, &handlers, self);
    return self->subscriber ? 0 : -1;
}

static int s_start_http (api_t *self)
{
    openapi_register (s_routes, sizeof s_routes / sizeof s_routes[0]);
    http_config_t config = {
        .service = "transaction",
        .address = self->config.http_address,
        .port = self->config.http_port,
        .routes = s_routes,
        .route_count = sizeof s_routes / sizeof s_routes[0],
        .arg = self,
        .connections_per_ip_max = self->config.connections_per_ip,
        .security = &self->config.security,
    };
    self->http = http_server_new (self->loop, &config);
    return self->http ? 0 : -1;
}

static size_t s_key_hash (const void *key)
{
    return (size_t)key_hash ((const char *)key);
}

//  An index of requests by a string that the request itself holds (its
//  attempt id or its key) and keeps unchanged while indexed: no copy of
//  the key per insert, and a hash a word at a time.
static zhashx_t *s_index_new (void)
{
    zhashx_t *index = zhashx_new ();
    if (index) {
        zhashx_set_key_duplicator (index, NULL);
        zhashx_set_key_destructor (index, NULL);
        zhashx_set_key_hasher (index, s_key_hash);
    }
    return index;
}

api_t *api_new (zloop_t *loop, const api_config_t *config)
{
    api_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->loop = loop;
    self->timer_id = -1;
    zuuid_t *uuid = zuuid_new ();
    snprintf (self->instance, sizeof self->instance, "%s", zuuid_str (uuid));
    zuuid_destroy (&uuid);
    if (getrandom (self->uuid_base, sizeof self->uuid_base, 0) !=
        (ssize_t)sizeof self->uuid_base) {
        log_error ("getrandom (%zu bytes) failed: %s", sizeof self->uuid_base,
                   strerror (errno));
        free (self);
        return NULL;
    }
    self->model = write_model_new ();
    self->idempotency = idempotency_new (config->idempotency_keys_max);
    self->requests = zlistx_new ();
    self->by_attempt = s_index_new ();
    self->by_key = s_index_new ();
    self->by_lookup = zhashx_new ();
    if (!self->model || !self->idempotency || !self->requests || !self->by_attempt ||
        !self->by_key || !self->by_lookup)
        goto failed;
    if (config->security.curve_dir &&
        !(self->curve = curve_new (config->security.curve_dir, true)))
        goto failed;
    self->lookup = lookup_new (loop, config->replay_endpoint, config->ack_timeout_ms,
                               self->curve, s_on_lookup, self);
    if (!self->lookup)
        goto failed;
    if (s_connect_ingest (self) || s_start_subscriber (self) || s_start_http (self))
        goto failed;
    int tick_ms = config->ack_timeout_ms / 4;
    tick_ms = tick_ms < 1 ? 1 : tick_ms > API_TICK_MS_MAX ? API_TICK_MS_MAX : tick_ms;
    self->timer_id = zloop_timer (loop, (size_t)tick_ms, 0, s_on_tick, self);
    if (self->timer_id < 0)
        goto failed;
    log_info (
        "listening on %s:%d, ingest %s, ack timeout %d ms, overdraft limit %" PRId64,
        config->http_address, http_server_port (self->http), config->ingest_endpoint,
        config->ack_timeout_ms, config->overdraft_limit);
    return self;
failed:
    api_destroy (&self);
    return NULL;
}

void api_destroy (api_t **self_p)
{
    assert (self_p);
    api_t *self = *self_p;
    if (!self)
        return;
    request_t *request;
    while (self->requests && (request = zlistx_first (self->requests)))
        s_request_fail (request, 503, "the service is stopping", NULL, NULL);
    if (self->timer_id >= 0)
        zloop_timer_end (self->loop, self->timer_id);
    http_server_destroy (&self->http);
    subscriber_destroy (&self->subscriber);
    lookup_destroy (&self->lookup);
    zsock_destroy (&self->ingest);
    curve_destroy (&self->curve);
    zhashx_destroy (&self->by_lookup);
    zhashx_destroy (&self->by_key);
    zhashx_destroy (&self->by_attempt);
    zlistx_destroy (&self->requests);
    idempotency_destroy (&self->idempotency);
    write_model_destroy (&self->model);
    free (self);
    *self_p = NULL;
}
