/*  landed — whether a request's events are stored already (see landed.h).
 */
#include "landed.h"

#include "ids.h"
#include "plan.h"
#include "reply.h"

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
bool landed_answer (request_t *request)
{
    write_model_t *model = request->api->model;
    int64_t first_seq = write_model_find (model, request->commands[0].id);
    int64_t last_seq = first_seq + (int64_t)request->count - 1;
    if (!first_seq || last_seq > write_model_applied_seq (model))
        return false;
    request->duplicate = true;
    request->first_seq = first_seq;
    request->last_seq = last_seq;
    request_finish_applied (request);
    return true;
}

//  The ids to ask about, each once.
static void s_lookup_ids (request_t *request)
{
    char derived[EVENT_ID_BYTES_MAX + 1] = "";
    if (ids_derive (request->key, 0, derived) != 0)
        derived[0] = '\0'; // too long to be any route's id
    const char *candidates[API_LOOKUP_IDS_MAX] = {request->commands[0].id, request->key,
                                                  derived};
    request->lookup_count = 0;
    for (size_t index = 0; index < API_LOOKUP_IDS_MAX; index++) {
        bool known = !*candidates[index];
        for (size_t other = 0; other < request->lookup_count; other++)
            known = known || streq (request->lookups[other], candidates[index]);
        if (!known)
            request_copy (request->lookups[request->lookup_count++],
                          EVENT_ID_BYTES_MAX + 1, candidates[index]);
    }
}

//  True if the write model has perhaps folded one of the request's ids:
//  only then is the stream asked (a new key, nearly every keyed request,
//  costs no round trip). An id durable but not folded yet is decided by
//  the stream's own dedupe.
bool landed_maybe_stored (request_t *request)
{
    s_lookup_ids (request);
    for (size_t index = 0; index < request->lookup_count; index++)
        if (write_model_seen (request->api->model, request->lookups[index]))
            return true;
    request->lookup_count = 0; // none asked about
    return false;
}

//  Asks about the request's ids (s_lookup_ids) and suspends it until the
//  answers came (landed_on_lookup), or answers it 503 when they cannot be
//  asked now.
void landed_lookup_start (request_t *request)
{
    api_t *self = request->api;
    for (size_t index = 0; index < request->lookup_count; index++) {
        const char *id = request->lookups[index];
        if (zhashx_lookup (self->by_lookup, id)) {
            request_fail (request, 503,
                          "a request with an overlapping idempotency key is being "
                          "checked; retry",
                          NULL, NULL);
            return;
        }
        if (lookup_ask (self->lookup, id) != 0) {
            request_fail (request, 503, "the stream is unreachable", NULL, NULL);
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
    request_copy (record.id, sizeof record.id, event.id);
    request_copy (record.account, sizeof record.account,
                  event_type_has_parties (event.type) ? event.from : event.account);
    request_copy (record.to, sizeof record.to, event.to);
    request_copy (record.pending_id, sizeof record.pending_id, event.pending_id);
    return reply_record_matches (&record, command);
}

//  Every answer is in: answer from the stored events, refuse the key, or
//  decide the request as new.
static void s_lookup_done (request_t *request)
{
    if (request->lookup_failed) {
        request_fail (request, 503,
                      "cannot tell whether this key's events are stored (the stream did "
                      "not answer); retry",
                      NULL, NULL);
    } else if (request->found_seq && !request->found_other_body) {
        //  Applied: answered like a stream "duplicate", once folded here.
        request->state = STATE_APPLYING;
        request->duplicate = true;
        request->first_seq = request->found_seq;
        request->last_seq = request->found_seq + (int64_t)request->count - 1;
        request_progress (request);
    } else if (request->found_other || request->found_other_body) {
        cJSON *errors = NULL;
        http_problem_add_error (&errors, "Idempotency-Key",
                                "already used for another request");
        request_fail (request, 422, "the idempotency key was used for another request",
                      errors, NULL);
    } else if (plan_request (request) == 0 && plan_send (request) != 0)
        request_fail (request, 503, "the stream is unreachable", NULL, NULL);
}

//  lookup's answer for id: seq > 0 stored (line is it), 0 not, -1 unknown.
void landed_on_lookup (void *arg, const char *id, int64_t seq, const char *line,
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
