/*  plan — validates a request's commands in order against the write
    model and holds their debits there, then sends them as one APPEND.

    Schema 2: POST /accounts and PATCH /accounts/{id} go the same way as
    money (planned, one APPEND, answered from the stored event); planning
    keeps per account its currency and limit as the request's earlier
    commands leave them, so a batch can open accounts and pay into them.
*/
#include "plan.h"

#include "key_hash.h"
#include "log.h"
#include "reply.h"
#include "wire.h"

#define API_HOLDS_SCAN_MAX 8 // beyond: holds are indexed by account (batches)

//  Forgets the request's holds (not the write model's copy of them).
static void s_holds_clear (request_t *request)
{
    request->hold_count = 0;
    if (request->hold_slots)
        memset (request->hold_slots, 0, request->hold_slot_count * sizeof (uint32_t));
}

void plan_release (request_t *request)
{
    write_model_t *model = request->api->model;
    for (size_t index = 0; index < request->hold_count; index++) {
        hold_t *hold = &request->holds[index];
        if (hold->events)
            write_model_release (model, hold->entry, hold->debit, hold->events);
    }
    s_holds_clear (request);
}

static size_t s_hold_hash (const char *account)
{
    return (size_t)key_hash (account);
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
    request_copy (hold->account, sizeof hold->account, account);
    hold->entry = write_model_figures (model, account, &hold->balance, &hold->available,
                                       &hold->expect);
    write_model_settings_t settings;
    write_model_settings (hold->entry, &settings);
    hold->known = settings.known;
    request_copy (hold->currency, sizeof hold->currency, settings.currency);
    hold->limit = settings.limit_set ? settings.overdraft_limit
                                     : request->api->config.overdraft_limit;
    hold->metadata_hash = settings.metadata_hash;
    s_hold_index (request, index, slot);
    return index;
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
            request_copy (holds[side]->currency, sizeof holds[side]->currency, currency);
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
        request_copy (hold->currency, sizeof hold->currency, command->currency);
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
        reply_add_int (*extra_p, "balance", from->balance);
        reply_add_int (*extra_p, "available", from->available);
        reply_add_int (*extra_p, "overdraft_limit", from->limit);
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
int plan_request (request_t *request)
{
    s_holds_clear (request);
    cJSON *errors = NULL, *extra = NULL;
    for (size_t index = 0; index < request->count; index++) {
        refusal_t refusal = {422, "invalid command"};
        if (s_plan_command (request, index, &errors, &extra, &refusal) == 0)
            continue;
        s_holds_clear (request); // nothing was held yet
        request_fail (request, refusal.status, refusal.detail, errors, extra);
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
    request_copy (expect->account, sizeof expect->account, account);
    expect->version = hold->expect;
}

//  The currency planning gave account (its hold's).
static const char *s_hold_currency (request_t *request, const char *account)
{
    size_t index = s_hold_find (request, account, NULL);
    assert (index < request->hold_count && *request->holds[index].currency);
    return request->holds[index].currency;
}

//  The proposed event of command into event, which plan_send prepared once
//  per attempt (event_init and the request's meta): only what differs
//  between commands is written.
static void s_event_from_command (request_t *request, const command_t *command,
                                  event_t *event)
{
    request_copy (event->id, sizeof event->id, command->id);
    event->amount = command->amount;
    request_copy (event->reference, sizeof event->reference, command->reference);
    event->expect_count = 0;
    event->has_limit = false;
    event->metadata_bytes = 0;
    event->metadata[0] = '\0';
    if (command->kind == COMMAND_OPEN || command->kind == COMMAND_UPDATE) {
        bool open = command->kind == COMMAND_OPEN;
        event->type = open ? EVENT_ACCOUNT_OPENED : EVENT_ACCOUNT_UPDATED;
        event->from[0] = event->to[0] = '\0';
        event->amount = 0;
        request_copy (event->account, sizeof event->account, command->account);
        request_copy (event->currency, sizeof event->currency,
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
        request_copy (event->from, sizeof event->from, command->from);
        request_copy (event->to, sizeof event->to, command->to);
        request_copy (event->currency, sizeof event->currency,
                      s_hold_currency (request, command->from));
        s_expect (request, event, command->from);
    } else {
        event->type =
            command->kind == COMMAND_DEPOSIT ? EVENT_DEPOSITED : EVENT_WITHDRAWN;
        event->from[0] = event->to[0] = '\0';
        request_copy (event->account, sizeof event->account, command->account);
        request_copy (event->currency, sizeof event->currency,
                      s_hold_currency (request, command->account));
        if (command->kind == COMMAND_WITHDRAW)
            s_expect (request, event, command->account);
    }
    request_copy (event->type_name, sizeof event->type_name,
                  event_type_name (event->type));
}

//  Sends a new attempt. Returns 0, or -1 when the stream cannot take it.
int plan_send (request_t *request)
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
    //  The first frame asks whether the stream can take it: with a send
    //  timeout of 0 it fails with EAGAIN when there is no connection
    //  (immediate) or the queue is full, which is what ZMQ_EVENTS would
    //  say at the price of a poll of the socket's mailbox per request.
    void *socket = zsock_resolve (self->ingest);
    int rc = wire_append_begin (socket, request->attempt, request->count > 0);
    if (rc && zmq_errno () == EAGAIN) {
        *request->attempt = '\0';
        return -1;
    }
    event_t event;
    event_init (&event);
    request_copy (event.request_id, sizeof event.request_id, request->request_id);
    request_copy (event.correlation_id, sizeof event.correlation_id,
                  request->correlation_id);
    request_copy (event.principal, sizeof event.principal, request->principal);
    char line[EVENT_LINE_BYTES_MAX];
    for (size_t index = 0; index < request->count && rc == 0; index++) {
        s_event_from_command (request, &request->commands[index], &event);
        size_t bytes = event_format_proposed (&event, line, sizeof line);
        assert (bytes > 0);
        rc = wire_append_event (socket, line, bytes, index + 1 == request->count);
    }
    if (rc) {
        log_warn ("zmq_send (APPEND %s) failed: %s", request->attempt,
                  zmq_strerror (zmq_errno ()));
        *request->attempt = '\0';
        return -1;
    }
    zhashx_insert (self->by_attempt, request->attempt, request);
    request_wait_remove (request);
    request->state = STATE_SENT;
    return 0;
}
