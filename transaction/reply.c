/*  reply — the 201 bodies of transaction (see reply.h).

    Members come in a fixed order (clients may compare bytes), and
    integers are printed exactly, never rounded through a double or
    written with an exponent.
*/
#include "reply.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "request.h"

#define REPLY_BYTES_INITIAL 512 // one event answer fits
//  A deposit's record in a 201 with a derived id and a short account
//  takes ~140 bytes; longer ones grow the reply.
#define API_REPLY_RECORD_BYTES_GUESS 192

void reply_init (reply_t *self)
{
    assert (self);
    *self = (reply_t){.data = NULL};
}

void reply_free (reply_t *self)
{
    assert (self);
    free (self->data);
    reply_init (self);
}

//  Out of memory is not an input error: like czmq, we do not go on.
static void s_reserve (reply_t *self, size_t bytes)
{
    size_t needed = self->bytes + bytes + 1;
    if (needed <= self->capacity)
        return;
    size_t capacity = self->capacity ? self->capacity : REPLY_BYTES_INITIAL;
    while (capacity < needed)
        capacity *= 2;
    char *data = realloc (self->data, capacity);
    assert (data);
    self->data = data;
    self->capacity = capacity;
}

void reply_reserve (reply_t *self, size_t bytes)
{
    s_reserve (self, bytes);
}

void reply_append (reply_t *self, const char *text, size_t bytes)
{
    s_reserve (self, bytes);
    memcpy (self->data + self->bytes, text, bytes);
    self->bytes += bytes;
    self->data[self->bytes] = '\0';
}

void reply_append_str (reply_t *self, const char *text)
{
    reply_append (self, text, strlen (text));
}

//  One record's text at most: the member names and punctuation
//  (under 192 bytes), two ids, up to four account ids, a currency, a type
//  name, two timestamps and five integers.
#define REPLY_TYPE_BYTES_MAX 16
#define REPLY_RECORD_BYTES_MAX                                                           \
    (224 + EVENT_CURRENCY_BYTES_MAX + 2 * EVENT_ID_BYTES_MAX +                           \
     4 * EVENT_ACCOUNT_BYTES_MAX + REPLY_TYPE_BYTES_MAX + 2 * EVENT_TS_BYTES +           \
     5 * EVENT_INT_BYTES_MAX)

//  Records are written with a cursor into space reserved once per record:
//  one reserve per record, not one (and a strlen) per member.
static char *s_put (char *cursor, const char *text, size_t bytes)
{
    memcpy (cursor, text, bytes);
    return cursor + bytes;
}

#define s_put_literal(cursor, literal) s_put ((cursor), (literal), sizeof (literal) - 1)

static char *s_put_str (char *cursor, const char *text)
{
    return s_put (cursor, text, strlen (text));
}

static char *s_put_int (char *cursor, int64_t value)
{
    return cursor + event_format_int (cursor, value);
}

//  A member: its name (with the punctuation before it) and its value.
#define s_put_str_after(cursor, literal, text)                                           \
    s_put_str (s_put_literal ((cursor), (literal)), (text))
#define s_put_int_after(cursor, literal, value)                                          \
    s_put_int (s_put_literal ((cursor), (literal)), (value))

//  The amount and currency of a money-moving record, open-quoted after.
static char *s_put_money (char *cursor, const write_model_record_t *record)
{
    cursor = s_put_int_after (cursor, "\",\"amount\":", record->amount);
    return s_put_str_after (cursor, ",\"currency\":\"", record->currency);
}

void reply_append_int (reply_t *self, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    reply_append (self, digits, event_format_int (digits, value));
}

//  The record's timestamp: a batch's events mostly share one.
static const char *s_ts (reply_t *self, int64_t ts_ms)
{
    if (!self->ts_valid || self->ts_ms != ts_ms) {
        event_ts_format (ts_ms, self->ts);
        self->ts_ms = ts_ms;
        self->ts_valid = true;
    }
    return self->ts;
}

void reply_append_record (reply_t *self, const write_model_record_t *record,
                          const char *metadata)
{
    assert (record);
    const char *type = event_type_name (record->type);
    assert (strlen (type) <= REPLY_TYPE_BYTES_MAX);
    s_reserve (self, REPLY_RECORD_BYTES_MAX + (metadata ? strlen (metadata) : 0));
    char *cursor = self->data + self->bytes;
    cursor = s_put_int_after (cursor, "{\"seq\":", record->seq);
    cursor = s_put_str_after (cursor, ",\"id\":\"", record->id);
    cursor = s_put_str_after (cursor, "\",\"type\":\"", type);
    cursor = s_put (s_put_literal (cursor, "\",\"ts\":\""), s_ts (self, record->ts_ms),
                    EVENT_TS_BYTES);
    if (!event_type_moves_money (record->type)) {
        cursor = s_put_str_after (cursor, "\",\"account\":\"", record->account);
        cursor = s_put_literal (cursor, "\"");
        if (record->type == EVENT_ACCOUNT_OPENED) {
            cursor = s_put_str_after (cursor, ",\"currency\":\"", record->currency);
            cursor = s_put_literal (cursor, "\"");
        }
        if (record->has_limit) {
            cursor = s_put_literal (cursor, ",\"overdraft_limit\":");
            if (record->overdraft_limit == EVENT_LIMIT_UNLIMITED)
                cursor = s_put_literal (cursor, "null");
            else
                cursor = s_put_int (cursor, record->overdraft_limit);
        }
        if (metadata)
            cursor = s_put_str_after (cursor, ",\"metadata\":", metadata);
        cursor = s_put_int_after (cursor, ",\"version\":", record->version);
        cursor = s_put_literal (cursor, "}");
    } else if (event_type_has_parties (record->type)) {
        if (event_type_resolves_hold (record->type))
            cursor = s_put_str_after (cursor, "\",\"pending_id\":\"", record->pending_id);
        cursor = s_put_str_after (cursor, "\",\"from\":\"", record->account);
        cursor = s_put_str_after (cursor, "\",\"to\":\"", record->to);
        cursor = s_put_money (cursor, record);
        if (record->timeout_at_ms) {
            cursor = s_put_literal (cursor, "\",\"timeout_at\":\"");
            char ts[EVENT_TS_BYTES + 1];
            event_ts_format (record->timeout_at_ms, ts);
            cursor = s_put (cursor, ts, EVENT_TS_BYTES);
        }
        cursor = s_put_str_after (cursor, "\",\"balances\":{\"", record->account);
        cursor = s_put_int_after (cursor, "\":", record->balance);
        cursor = s_put_str_after (cursor, ",\"", record->to);
        cursor = s_put_int_after (cursor, "\":", record->balance_to);
        cursor = s_put_literal (cursor, "}}");
    } else {
        cursor = s_put_str_after (cursor, "\",\"account\":\"", record->account);
        cursor = s_put_money (cursor, record);
        cursor = s_put_int_after (cursor, "\",\"balance\":", record->balance);
        cursor = s_put_literal (cursor, "}");
    }
    self->bytes = (size_t)(cursor - self->data);
    assert (self->bytes < self->capacity);
    self->data[self->bytes] = '\0';
}

//  --------------------------------------------------------------------
//  Answers built from the stored events

//  An exact integer member: cJSON's numbers are doubles, which round
//  beyond 2^53, so the digits go in as raw JSON text.
void reply_add_int (cJSON *json, const char *name, int64_t value)
{
    char text[24];
    snprintf (text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject (json, name, text);
}

bool reply_record_matches (const write_model_record_t *record, const command_t *command)
{
    //  A post of the whole hold (amount 0), a void and an expiry name no
    //  amount: the hold's.
    bool amount_given = command->kind != COMMAND_VOID &&
                        command->kind != COMMAND_EXPIRE &&
                        (command->kind != COMMAND_POST || command->amount);
    if (!streq (record->id, command->id) ||
        (amount_given && record->amount != command->amount))
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
    case COMMAND_HOLD:
        return record->type == EVENT_TRANSFER_PENDING &&
               streq (record->account, command->from) && streq (record->to, command->to);
    case COMMAND_POST:
    case COMMAND_VOID:
    case COMMAND_EXPIRE:
        return record->type == (command->kind == COMMAND_POST ? EVENT_TRANSFER_POSTED
                                : command->kind == COMMAND_VOID
                                    ? EVENT_TRANSFER_VOIDED
                                    : EVENT_TRANSFER_EXPIRED) &&
               streq (record->pending_id, command->pending_id);
    }
    return false;
}

//  The 201 body for first_seq..last_seq (caller frees), or NULL with
//  *status / detail saying why it cannot be given.
char *reply_success_text (request_t *request, unsigned *status, const char **detail)
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
        bool matches = record && reply_record_matches (record, &request->commands[index]);
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
char *reply_already_applied_text (request_t *request)
{
    cJSON *json = http_problem_new (
        200, "Already applied",
        "this request was applied before; its events are stored at the seqs given, but "
        "its original answer (the balances after it) is no longer kept",
        NULL);
    cJSON_AddStringToObject (json, "id", request->commands[0].id);
    reply_add_int (json, "first_seq", request->first_seq);
    reply_add_int (json, "last_seq", request->last_seq);
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    assert (text);
    return text;
}
