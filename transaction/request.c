/*  request — the lifecycle of a write request (see request.h): its wait
    lists, the answers it gives, and what RESULTs, applied seqs and the
    timer do to it.
*/
#include "request.h"

#include <inttypes.h>

#include "expiry.h"
#include "log.h"
#include "plan.h"
#include "reply.h"
#include "wire.h"

#define API_RETRY_AFTER_S "1" // what a 503 asks clients to wait

void request_wait_remove (request_t *request)
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

//  A problem+json body (caller frees). Takes ownership of errors and extra
//  (extra's members are added to the problem, e.g. "balance").
static char *s_problem_text (unsigned status, route_t route, const char *detail,
                             cJSON *errors, cJSON *extra)
{
    //  A write's 404s are a PATCH of an account never seen, typed as
    //  accounting's (…/account-not-found), and a post or void of a hold
    //  never seen (…/transfer-not-found, as GET /transfers/{id}).
    bool hold = route == ROUTE_POST || route == ROUTE_VOID;
    const char *title = status != 404 ? NULL
                        : hold        ? "Transfer not found"
                                      : "Account not found";
    cJSON *json = http_problem_new (status, title, detail, errors);
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
void request_respond_bytes (api_t *self, http_request_t *http, unsigned status,
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

void request_respond (api_t *self, http_request_t *http, unsigned status,
                      const char *body, bool replayed)
{
    request_respond_bytes (self, http, status, (char *)body, strlen (body), replayed,
                           false);
}

//  Answers an HTTP request that has no request_t (yet).
void request_respond_problem (api_t *self, http_request_t *http, unsigned status,
                              const char *detail, cJSON *errors)
{
    char *body = s_problem_text (status, ROUTE_TRANSACTION, detail, errors, NULL);
    request_respond_bytes (self, http, status, body, strlen (body), false, true);
}

static void s_request_destroy (request_t **request_p)
{
    request_t *request = *request_p;
    if (request) {
        assert (!request->originator);
        assert (!request->followers || zlistx_size (request->followers) == 0);
        zlistx_destroy (&request->followers);
        free (request->reservation_slots);
        free (request->planned_holds);
        if (request->reservations != request->reservations_inline)
            free (request->reservations);
        cJSON_Delete (request->versions);
        commands_free (request->commands, request->count);
        free (request);
        *request_p = NULL;
    }
}

//  Answers every waiter with body (the originator without the replay
//  header unless replayed), releases reservations and frees the request. Takes
//  ownership of body: the last answer gets it, the others a copy.
void request_end (request_t *request, unsigned status, char *body, bool replayed)
{
    //  First leave every index and the write model: answering runs MHD,
    //  which may already dispatch the client's next request, and that one
    //  must see this request's outcome (balances, its key), not its reservations.
    api_t *self = request->api;
    size_t bytes = strlen (body);
    if ((status == 201 || status == 200) && request->keyed)
        idempotency_store (self->idempotency, request->key, request->fingerprint, status,
                           body, bytes);
    for (size_t index = 0; index < request->lookup_count; index++)
        if (zhashx_lookup (self->by_lookup, request->lookups[index]) == request)
            zhashx_delete (self->by_lookup, request->lookups[index]);
    request->lookup_count = 0;
    plan_release (request);
    if (*request->attempt)
        zhashx_delete (self->by_attempt, request->attempt);
    if (request->keyed && zhashx_lookup (self->by_key, request->key) == request)
        zhashx_delete (self->by_key, request->key);
    zlistx_detach (self->requests, request->handle);
    request_wait_remove (request);
    //  The last answer takes the body: nearly always the originator's.
    if (request->originator) {
        bool last = !request->followers || zlistx_size (request->followers) == 0;
        request_respond_bytes (self, request->originator, status, body, bytes, replayed,
                               last);
        if (last)
            body = NULL;
        request->originator = NULL;
        self->waiters--;
    }
    http_request_t *http;
    while (request->followers && (http = zlistx_detach (request->followers, NULL))) {
        bool last = zlistx_size (request->followers) == 0;
        request_respond_bytes (self, http, status, body, bytes, true, last);
        if (last)
            body = NULL;
        self->waiters--;
    }
    free (body);
    if (request->route == ROUTE_EXPIRE)
        expiry_ended (self, request->commands[0].pending_id, status == 201);
    s_request_destroy (&request);
}

void request_fail (request_t *request, unsigned status, const char *detail, cJSON *errors,
                   cJSON *extra)
{
    request_end (request, status,
                 s_problem_text (status, request->route, detail, errors, extra), false);
}

request_t *request_new (api_t *self, http_request_t *http, route_t route,
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
    request_copy (request->key, sizeof request->key, parsed->key);
    request_copy (request->fingerprint, sizeof request->fingerprint, fingerprint);
    //  No http: the service's own request (an expiry), with no meta.
    request_copy (request->request_id, sizeof request->request_id,
                  http ? http_request_id (http) : "");
    const char *correlation =
        http ? http_request_header (http, "X-Correlation-Id") : NULL;
    request_copy (request->correlation_id, sizeof request->correlation_id,
                  correlation ? correlation : "");
    const auth_principal_t *principal = http ? http_request_principal (http) : NULL;
    request_copy (request->principal, sizeof request->principal,
                  principal ? principal->name : "");
    request->reservations = request->reservations_inline;
    request->reservation_capacity = API_RESERVATIONS_INLINE;
    request->deadline_ms = zclock_mono () + self->config.ack_timeout_ms;
    request->originator = http;
    if (http)
        self->waiters++;
    request->handle = zlistx_add_end (self->requests, request);
    if (request->keyed)
        zhashx_insert (self->by_key, request->key, request);
    return request;
}

void request_finish_applied (request_t *request)
{
    unsigned status = 201;
    const char *detail = NULL;
    char *text = reply_success_text (request, &status, &detail);
    if (text)
        request_end (request, request->route == ROUTE_UPDATE ? 200 : 201, text,
                     request->duplicate);
    else if (status == 200)
        request_end (request, 200, reply_already_applied_text (request), true);
    else {
        if (status == 500)
            log_error ("request %s: %s", request->request_id, detail);
        cJSON *errors = NULL;
        if (status == 422)
            http_problem_add_error (&errors, "id", detail);
        request_fail (request, status, detail, errors, NULL);
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
        request_fail (request, 409, "the accounts changed concurrently; retry", NULL,
                      NULL);
        return;
    }
    self->retried++;
    plan_release (request);
    if (plan_request (request) != 0)
        return; // answered: e.g. insufficient funds now
    if (plan_send (request) != 0)
        request_fail (request, 503, "the stream is unreachable", NULL, NULL);
}

//  Finishes or retries the request once the write model is far enough,
//  else puts it on the waitlist of its state.
void request_progress (request_t *request)
{
    api_t *self = request->api;
    request_wait_remove (request);
    int64_t applied = write_model_applied_seq (self->model);
    if (request->state == STATE_APPLYING) {
        if (applied >= request->last_seq)
            request_finish_applied (request);
        else
            s_wait_insert (&self->applying, request, true);
    } else if (request->state == STATE_CONFLICTED) {
        if (s_versions_reached (request))
            s_retry (request);
        else
            s_wait_insert (&self->conflicted, request, false);
    }
}

//  ok or duplicate: the events are stored; answer once they are folded.
static void s_on_appended (request_t *request, bool duplicate, int64_t first_seq,
                           int64_t last_seq)
{
    request->state = STATE_APPLYING;
    request->duplicate = duplicate;
    request->first_seq = first_seq;
    request->last_seq = last_seq;
    request_progress (request);
}

void request_on_result (void *arg, const char *attempt, const char *result_json)
{
    api_t *self = (api_t *)arg;
    request_t *request = zhashx_lookup (self->by_attempt, attempt);
    if (!request)
        return; // another instance's, or one we stopped waiting for
    zhashx_delete (self->by_attempt, attempt);
    *request->attempt = '\0';
    wire_result_t result;
    wire_result_parse (result_json, &result);
    switch (result.status) {
    case WIRE_STATUS_OK:
    case WIRE_STATUS_DUPLICATE:
        s_on_appended (request, result.status == WIRE_STATUS_DUPLICATE, result.first_seq,
                       result.last_seq);
        break;
    case WIRE_STATUS_CONFLICT:
        self->conflicts++;
        plan_release (request); // nothing of it was stored
        request->state = STATE_CONFLICTED;
        request->versions = cJSON_DetachItemViaPointer (result.json, result.versions);
        request_progress (request);
        break;
    case WIRE_STATUS_UNAVAILABLE:
        request_fail (request, 503, "the stream could not store the events", NULL, NULL);
        break;
    default:
        // Everything was validated here, so this is a disagreement with the
        // stream worth a log line; the client still learns why.
        log_warn ("stream rejected request %s: %s", request->request_id, result.error);
        request_fail (request, 422, result.error, NULL, NULL);
    }
    wire_result_done (&result);
}

void request_on_applied (void *arg, int64_t applied_seq)
{
    api_t *self = (api_t *)arg;
    request_t *request;
    while ((request = self->applying.head) && request->last_seq <= applied_seq)
        request_progress (request); // finishes it: it leaves the list
    //  Conflicts are rare: each one checks its versions. request_progress ends
    //  or resends only the request it is given, so next stays valid (and
    //  one not yet ready must stay where it is: no request_progress for it).
    request = self->conflicted.head;
    while (request) {
        request_t *next = request->wait_next;
        if (s_versions_reached (request))
            request_progress (request);
        request = next;
    }
}

int request_on_tick (zloop_t *loop, int timer_id, void *arg)
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
        request_fail (request, 503, detail, NULL, NULL);
    }
    return 0;
}
