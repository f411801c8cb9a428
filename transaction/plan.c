/*  plan — validates a request's commands in order against the write
    model and reserves their debits there, then sends them as one APPEND.

    Schema 2: POST /accounts and PATCH /accounts/{id} go the same way as
    money (planned, one APPEND, answered from the stored event); planning
    keeps per account its currency and limit as the request's earlier
    commands leave them, so a batch can open accounts and pay into them.

    Holds (two-phase transfers): a hold is planned like a transfer that
    debits from's available balance only; a post, void or expiry is
    checked against the hold as the request's earlier commands leave it
    (planned_hold_t), else as the write model folded it. Each carries
    expect on from: any two resolutions of one hold, on any instances,
    change from's version, so at most one of them lands.
*/
#include "plan.h"

#include <czmq.h>

#include "key_hash.h"
#include "log.h"
#include "reply.h"
#include "wire.h"

#define API_RESERVATIONS_SCAN_MAX                                                        \
    8 // beyond: reservations are indexed by account (batches)

//  Forgets the request's reservations (not the write model's copy of them).
static void s_reservations_clear (request_t *request)
{
    request->reservation_count = 0;
    if (request->reservation_slots)
        memset (request->reservation_slots, 0,
                request->reservation_slot_count * sizeof (uint32_t));
}

void plan_release (request_t *request)
{
    write_model_t *model = request->api->model;
    for (size_t index = 0; index < request->reservation_count; index++) {
        reservation_t *reservation = &request->reservations[index];
        if (reservation->events)
            write_model_release (model, reservation->entry, reservation->debit,
                                 reservation->events);
    }
    s_reservations_clear (request);
}

static size_t s_reservation_hash (const char *account)
{
    return (size_t)key_hash (account);
}

//  The slot of account in the reservation index: its own, or the empty one
//  where it would go.
static uint32_t *s_reservation_slot (request_t *request, const char *account)
{
    size_t mask = request->reservation_slot_count - 1;
    size_t slot = s_reservation_hash (account) & mask;
    while (request->reservation_slots[slot] &&
           !streq (request->reservations[request->reservation_slots[slot] - 1].account,
                   account))
        slot = (slot + 1) & mask;
    return &request->reservation_slots[slot];
}

//  The index of account's reservation, or reservation_count when it has none. With an
//  index, *slot_p (if given) is account's slot there, else NULL.
static size_t s_reservation_find (request_t *request, const char *account,
                                  uint32_t **slot_p)
{
    if (slot_p)
        *slot_p = NULL;
    if (request->reservation_count > API_RESERVATIONS_SCAN_MAX) {
        uint32_t *slot = s_reservation_slot (request, account);
        if (slot_p)
            *slot_p = slot;
        return *slot ? *slot - 1 : request->reservation_count;
    }
    size_t index = 0;
    while (index < request->reservation_count &&
           !streq (request->reservations[index].account, account))
        index++;
    return index;
}

//  Indexes reservation index (just added) once there are too many to scan,
//  growing the index to stay at most half full. slot: the empty one
//  s_reservation_find found for it, or NULL.
static void s_reservation_index (request_t *request, size_t index, uint32_t *slot)
{
    if (request->reservation_count <= API_RESERVATIONS_SCAN_MAX)
        return;
    //  Those before index are indexed already, unless the scan limit was
    //  just crossed (a new or cleared index) or the index grows.
    size_t known =
        request->reservation_count == API_RESERVATIONS_SCAN_MAX + 1 ? 0 : index;
    if (slot && known == index &&
        request->reservation_count * 2 <= request->reservation_slot_count) {
        *slot = (uint32_t)(index + 1); // no second hash and probe
        return;
    }
    if (request->reservation_count * 2 > request->reservation_slot_count) {
        size_t count = request->reservation_slot_count
                           ? request->reservation_slot_count * 2
                           : 4 * API_RESERVATIONS_SCAN_MAX;
        free (request->reservation_slots);
        request->reservation_slots = calloc (count, sizeof (uint32_t));
        assert (request->reservation_slots);
        request->reservation_slot_count = count;
        known = 0;
    }
    for (; known <= index; known++)
        *s_reservation_slot (request, request->reservations[known].account) =
            (uint32_t)(known + 1);
}

//  The index of account's reservation, created from the write model if new.
//  An index, not a pointer: adding a reservation may move the others.
static size_t s_reserve (request_t *request, const char *account)
{
    uint32_t *slot;
    size_t index = s_reservation_find (request, account, &slot);
    if (index < request->reservation_count)
        return index;
    if (request->reservation_count == request->reservation_capacity) {
        //  A batch's commands mostly touch accounts of their own: room
        //  for one per command at once, rather than a copy per doubling.
        size_t capacity = request->reservation_capacity * 2;
        if (capacity < request->count)
            capacity = request->count;
        reservation_t *reservations =
            request->reservations == request->reservations_inline
                ? malloc (capacity * sizeof *reservations)
                : realloc (request->reservations, capacity * sizeof *reservations);
        assert (reservations);
        if (request->reservations == request->reservations_inline)
            memcpy (reservations, request->reservations_inline,
                    sizeof request->reservations_inline);
        request->reservations = reservations;
        request->reservation_capacity = capacity;
    }
    write_model_t *model = request->api->model;
    reservation_t *reservation = &request->reservations[request->reservation_count++];
    *reservation = (reservation_t){.expect_sent = false};
    request_copy (reservation->account, sizeof reservation->account, account);
    reservation->entry =
        write_model_figures (model, account, &reservation->balance,
                             &reservation->available, &reservation->expect);
    write_model_settings_t settings;
    write_model_settings (reservation->entry, &settings);
    reservation->known = settings.known;
    request_copy (reservation->currency, sizeof reservation->currency, settings.currency);
    reservation->limit = settings.limit_set ? settings.overdraft_limit
                                            : request->api->config.overdraft_limit;
    reservation->metadata_hash = settings.metadata_hash;
    s_reservation_index (request, index, slot);
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
static int s_plan_currency (request_t *request, size_t index, reservation_t *from,
                            reservation_t *to, cJSON **errors_p, refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    reservation_t *reservations[2] = {from, to};
    bool parties = command->kind == COMMAND_TRANSFER || command->kind == COMMAND_HOLD;
    const char *names[2] = {parties ? "from" : "account", parties ? "to" : "account"};
    const char *currency = *command->currency ? command->currency : NULL;
    for (int side = 0; side < 2; side++) {
        reservation_t *reservation = reservations[side];
        if (!reservation || !*reservation->currency)
            continue;
        if (currency && !streq (currency, reservation->currency)) {
            char message[96];
            snprintf (message, sizeof message, "%s is in %s, not %s", names[side],
                      reservation->currency, currency);
            bool given = *command->currency != '\0';
            s_field_error (request, index, errors_p, given ? "currency" : names[side],
                           message);
            return s_refuse (refusal, 422,
                             given ? "the currency is not the account's"
                                   : "money moves only within a currency");
        }
        currency = reservation->currency;
    }
    if (!currency)
        currency = EVENT_CURRENCY_V1;
    for (int side = 0; side < 2; side++)
        if (reservations[side] && !reservations[side]->known) {
            reservations[side]->known = true;
            request_copy (reservations[side]->currency,
                          sizeof reservations[side]->currency, currency);
        }
    return 0;
}

//  POST /accounts and PATCH /accounts/{id} (or their batch items).
static int s_plan_account (request_t *request, size_t index, cJSON **errors_p,
                           refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    reservation_t *reservation =
        &request->reservations[s_reserve (request, command->account)];
    uint64_t metadata_hash = command->metadata && !streq (command->metadata, "{}")
                                 ? key_hash (command->metadata)
                                 : 0;
    if (command->kind == COMMAND_OPEN) {
        if (reservation->known) {
            s_field_error (request, index, errors_p, "account",
                           "already open (with these settings POST /accounts replays "
                           "its answer outside a batch)");
            return s_refuse (refusal, 409, "the account exists with other settings");
        }
        reservation->known = true;
        request_copy (reservation->currency, sizeof reservation->currency,
                      command->currency);
        if (command->has_limit)
            reservation->limit = command->overdraft_limit;
        reservation->metadata_hash = metadata_hash;
    } else {
        if (!reservation->known) {
            s_field_error (request, index, errors_p, "account", "not found");
            return s_refuse (refusal, request->route == ROUTE_UPDATE ? 404 : 422,
                             "the account does not exist");
        }
        if (command->has_limit)
            reservation->limit = command->overdraft_limit;
        if (command->metadata)
            reservation->metadata_hash = metadata_hash;
    }
    reservation->events++;
    return 0;
}

//  --------------------------------------------------------------------
//  Holds

//  The request's record of hold id, or NULL when none of its commands
//  made or resolved it yet.
static planned_hold_t *s_planned_hold (request_t *request, const char *id)
{
    for (size_t index = 0; index < request->planned_hold_count; index++)
        if (streq (request->planned_holds[index].id, id))
            return &request->planned_holds[index];
    return NULL;
}

static planned_hold_t *s_planned_hold_add (request_t *request)
{
    if (request->planned_hold_count == request->planned_hold_capacity) {
        size_t capacity =
            request->planned_hold_capacity ? request->planned_hold_capacity * 2 : 2;
        planned_hold_t *holds =
            realloc (request->planned_holds, capacity * sizeof *holds);
        assert (holds);
        request->planned_holds = holds;
        request->planned_hold_capacity = capacity;
    }
    planned_hold_t *hold = &request->planned_holds[request->planned_hold_count++];
    *hold = (planned_hold_t){.state = WRITE_MODEL_PENDING};
    return hold;
}

//  The insufficient-funds refusal of reservation (its account debited).
static int s_refuse_funds (request_t *request, size_t index, const reservation_t *from,
                           cJSON **errors_p, cJSON **extra_p, refusal_t *refusal)
{
    s_amount_error (request, index, errors_p, "exceeds the available balance");
    *extra_p = cJSON_CreateObject ();
    cJSON_AddStringToObject (*extra_p, "account", from->account);
    reply_add_int (*extra_p, "balance", from->balance);
    reply_add_int (*extra_p, "available", from->available);
    reply_add_int (*extra_p, "overdraft_limit", from->limit);
    return s_refuse (refusal, 422, "insufficient funds");
}

//  POST /transfers with "pending": true (or such a batch item): reserves
//  amount of from's available balance; no balance moves.
static int s_plan_hold (request_t *request, size_t index, cJSON **errors_p,
                        cJSON **extra_p, refusal_t *refusal)
{
    command_t *command = &request->commands[index];
    if (strlen (command->id) > COMMANDS_HOLD_ID_BYTES_MAX) {
        s_field_error (request, index, errors_p, "id",
                       "a hold's id is at most 56 bytes (its expiry's id adds "
                       "\".expired\")");
        return s_refuse (refusal, 422, "invalid command");
    }
    size_t from_index = s_reserve (request, command->from);
    size_t to_index = s_reserve (request, command->to);
    reservation_t *from = &request->reservations[from_index];
    reservation_t *to = &request->reservations[to_index];
    if (s_plan_currency (request, index, from, to, errors_p, refusal))
        return -1;
    int64_t available;
    if (__builtin_sub_overflow (from->available, command->amount, &available) ||
        (from->limit != EVENT_LIMIT_UNLIMITED && available < -from->limit))
        return s_refuse_funds (request, index, from, errors_p, extra_p, refusal);
    from->available = available;
    from->debit += command->amount;
    from->events++;
    to->events++;
    //  Fixed once: a retry after a conflict keeps the hold's timeout.
    if (command->timeout_ms && !command->timeout_at_ms)
        command->timeout_at_ms = zclock_time () + command->timeout_ms;
    planned_hold_t *hold = s_planned_hold_add (request);
    request_copy (hold->id, sizeof hold->id, command->id);
    request_copy (hold->from, sizeof hold->from, command->from);
    request_copy (hold->to, sizeof hold->to, command->to);
    request_copy (hold->currency, sizeof hold->currency, from->currency);
    hold->amount = command->amount;
    hold->timeout_at_ms = command->timeout_at_ms;
    return 0;
}

//  The field a refusal of a resolution names: the path's id, or the
//  batch item's "post" / "void".
static const char *s_resolution_field (const request_t *request, const command_t *command)
{
    if (request->route != ROUTE_BATCH)
        return "id";
    return command->kind == COMMAND_POST ? "post" : "void";
}

//  A resolution refused for the hold's state: 422 with it.
static int s_refuse_state (request_t *request, size_t index, const planned_hold_t *hold,
                           const char *state, cJSON **errors_p, cJSON **extra_p,
                           refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    char message[96];
    snprintf (message, sizeof message, "the hold is %s: it resolves once", state);
    s_field_error (request, index, errors_p, s_resolution_field (request, command),
                   message);
    *extra_p = cJSON_CreateObject ();
    cJSON_AddStringToObject (*extra_p, "pending_id", hold->id);
    cJSON_AddStringToObject (*extra_p, "state", state);
    return s_refuse (refusal, 422,
                     streq (state, "expired") ? "the hold expired"
                                              : "the hold is resolved");
}

//  The hold a resolution names, into the request's records: the one an
//  earlier command made or resolved, else the write model's. NULL when
//  the hold is unknown.
static planned_hold_t *s_hold_of (request_t *request, const char *id)
{
    planned_hold_t *hold = s_planned_hold (request, id);
    if (hold)
        return hold;
    const write_model_pending_t *pending = write_model_pending (request->api->model, id);
    if (!pending)
        return NULL;
    hold = s_planned_hold_add (request);
    request_copy (hold->id, sizeof hold->id, pending->id);
    request_copy (hold->from, sizeof hold->from, pending->from);
    request_copy (hold->to, sizeof hold->to, pending->to);
    request_copy (hold->currency, sizeof hold->currency, pending->currency);
    hold->amount = pending->amount;
    hold->timeout_at_ms = pending->timeout_at_ms;
    hold->state = pending->state;
    return hold;
}

//  POST /transfers/{id}/post and /void (or their batch items), and the
//  expiry timer's transfer_expired: the hold must be pending, and (but
//  for an expiry) not past its timeout_at even when no expiry landed yet.
static int s_plan_resolution (request_t *request, size_t index, cJSON **errors_p,
                              cJSON **extra_p, refusal_t *refusal)
{
    const command_t *command = &request->commands[index];
    planned_hold_t *hold = s_hold_of (request, command->pending_id);
    if (!hold) {
        s_field_error (request, index, errors_p, s_resolution_field (request, command),
                       "no hold with this id");
        return s_refuse (refusal, request->route == ROUTE_BATCH ? 422 : 404,
                         "the pending transfer (hold) does not exist");
    }
    if (hold->state != WRITE_MODEL_PENDING)
        return s_refuse_state (request, index, hold,
                               write_model_pending_state_name (hold->state), errors_p,
                               extra_p, refusal);
    bool timed_out = hold->timeout_at_ms && zclock_time () >= hold->timeout_at_ms;
    if (command->kind == COMMAND_EXPIRE ? !timed_out : timed_out) {
        if (command->kind == COMMAND_EXPIRE)
            return s_refuse (refusal, 422, "the hold is not due");
        return s_refuse_state (request, index, hold, "expired", errors_p, extra_p,
                               refusal);
    }
    int64_t amount =
        command->kind == COMMAND_POST && command->amount ? command->amount : hold->amount;
    if (amount > hold->amount) {
        char message[96];
        snprintf (message, sizeof message, "exceeds the hold's amount (%" PRId64 ")",
                  hold->amount);
        s_amount_error (request, index, errors_p, message);
        return s_refuse (refusal, 422, "invalid amount");
    }
    size_t from_index = s_reserve (request, hold->from);
    size_t to_index = s_reserve (request, hold->to);
    reservation_t *from = &request->reservations[from_index];
    reservation_t *to = &request->reservations[to_index];
    if (command->kind == COMMAND_POST) {
        int64_t credited;
        if (__builtin_add_overflow (to->balance, amount, &credited)) {
            s_amount_error (request, index, errors_p, "the balance would overflow");
            return s_refuse (refusal, 422, "invalid amount");
        }
        from->balance -= amount;
        to->balance = credited;
        to->available += amount;
    }
    //  What was reserved comes back; a post spends what it moves of it.
    from->available += hold->amount - (command->kind == COMMAND_POST ? amount : 0);
    from->events++;
    to->events++;
    hold->state = command->kind == COMMAND_POST   ? WRITE_MODEL_POSTED
                  : command->kind == COMMAND_VOID ? WRITE_MODEL_VOIDED
                                                  : WRITE_MODEL_EXPIRED;
    hold->resolved_amount = amount;
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
    if (command->kind == COMMAND_HOLD)
        return s_plan_hold (request, index, errors_p, extra_p, refusal);
    if (command->kind == COMMAND_POST || command->kind == COMMAND_VOID ||
        command->kind == COMMAND_EXPIRE)
        return s_plan_resolution (request, index, errors_p, extra_p, refusal);
    const char *debited = command->kind == COMMAND_WITHDRAW   ? command->account
                          : command->kind == COMMAND_TRANSFER ? command->from
                                                              : NULL;
    const char *credited = command->kind == COMMAND_DEPOSIT    ? command->account
                           : command->kind == COMMAND_TRANSFER ? command->to
                                                               : NULL;
    size_t from_index = debited ? s_reserve (request, debited) : 0;
    size_t to_index = credited ? s_reserve (request, credited) : 0;
    reservation_t *from = debited ? &request->reservations[from_index] : NULL;
    reservation_t *to = credited ? &request->reservations[to_index] : NULL;
    if (s_plan_currency (request, index, from, to, errors_p, refusal))
        return -1;
    if (from && from->limit != EVENT_LIMIT_UNLIMITED &&
        from->available - command->amount < -from->limit)
        return s_refuse_funds (request, index, from, errors_p, extra_p, refusal);
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

//  Validates every command; on success the reservations enter the write model.
//  On failure answers the request (422) and frees it; returns -1.
int plan_request (request_t *request)
{
    s_reservations_clear (request);
    request->planned_hold_count = 0;
    cJSON *errors = NULL, *extra = NULL;
    for (size_t index = 0; index < request->count; index++) {
        refusal_t refusal = {422, "invalid command"};
        if (s_plan_command (request, index, &errors, &extra, &refusal) == 0)
            continue;
        s_reservations_clear (request); // nothing was held yet
        request_fail (request, refusal.status, refusal.detail, errors, extra);
        return -1;
    }
    for (size_t index = 0; index < request->reservation_count; index++) {
        reservation_t *reservation = &request->reservations[index];
        reservation->entry = write_model_hold (request->api->model, reservation->entry,
                                               reservation->account, reservation->debit,
                                               reservation->events);
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
    size_t index = s_reservation_find (request, account, NULL);
    assert (index < request->reservation_count);
    reservation_t *reservation = &request->reservations[index];
    if (reservation->expect_sent)
        return;
    reservation->expect_sent = true;
    event_expect_t *expect = &event->expect[event->expect_count++];
    request_copy (expect->account, sizeof expect->account, account);
    expect->version = reservation->expect;
}

//  The currency planning gave account (its reservation's).
static const char *s_reserved_currency (request_t *request, const char *account)
{
    size_t index = s_reservation_find (request, account, NULL);
    assert (index < request->reservation_count && *request->reservations[index].currency);
    return request->reservations[index].currency;
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
    event->pending_id[0] = '\0';
    event->timeout_at_ms = 0;
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
    } else if (command->kind == COMMAND_POST || command->kind == COMMAND_VOID ||
               command->kind == COMMAND_EXPIRE) {
        const planned_hold_t *hold = s_planned_hold (request, command->pending_id);
        assert (hold); // planned
        event->type = command->kind == COMMAND_POST   ? EVENT_TRANSFER_POSTED
                      : command->kind == COMMAND_VOID ? EVENT_TRANSFER_VOIDED
                                                      : EVENT_TRANSFER_EXPIRED;
        event->account[0] = '\0';
        request_copy (event->pending_id, sizeof event->pending_id, hold->id);
        request_copy (event->from, sizeof event->from, hold->from);
        request_copy (event->to, sizeof event->to, hold->to);
        request_copy (event->currency, sizeof event->currency, hold->currency);
        event->amount = hold->resolved_amount;
        s_expect (request, event, hold->from);
    } else if (command->kind == COMMAND_TRANSFER || command->kind == COMMAND_HOLD) {
        event->type =
            command->kind == COMMAND_HOLD ? EVENT_TRANSFER_PENDING : EVENT_TRANSFERRED;
        event->timeout_at_ms = command->timeout_at_ms;
        event->account[0] = '\0';
        request_copy (event->from, sizeof event->from, command->from);
        request_copy (event->to, sizeof event->to, command->to);
        request_copy (event->currency, sizeof event->currency,
                      s_reserved_currency (request, command->from));
        s_expect (request, event, command->from);
    } else {
        event->type =
            command->kind == COMMAND_DEPOSIT ? EVENT_DEPOSITED : EVENT_WITHDRAWN;
        event->from[0] = event->to[0] = '\0';
        request_copy (event->account, sizeof event->account, command->account);
        request_copy (event->currency, sizeof event->currency,
                      s_reserved_currency (request, command->account));
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
    for (size_t index = 0; index < request->reservation_count; index++)
        request->reservations[index].expect_sent = false;
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
