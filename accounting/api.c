/*  api — the accounting HTTP API (reads only): routes and handlers.

    Every answer is built from the in-memory fold (accounts) except the
    event lines of /accounts/{id}/events, which are read back from the
    replica so they are the stored bytes. Bodies are printed with
    snprintf / open_memstream: the shapes are fixed and ids are
    pattern-checked, so nothing needs JSON escaping.

    Decisions a client sees:
    - ?at_seq=N beyond this instance's applied_seq is 422 (the state is not
      known here yet; add min_seq=N to wait for it). ?at and ?at_seq
      together are 400. ?at later than the last applied event answers the
      state as of applied_seq.
    - wait_ms above --wait-ms-max is capped, not refused; wait_ms=0 with an
      unmet min_seq answers 503 at once; so does a full waiter set.
    - Unknown query parameters are 400 (each route lists the keys it takes).
*/
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "event.h"
#include "metrics.h"
#include "openapi.h"

#define API_BODY_BYTES_MAX 512 // fixed-shape bodies printed with snprintf
//  One JSON page of GET /events: API_EVENTS_LIMIT_MAX lines of ~200 bytes
//  fit; a page of longer lines stops short (next_from_seq says where).
#define API_EVENTS_PAGE_BYTES_MAX (1024 * 1024)

typedef struct {
    bool has_at_seq, has_at, has_min_seq, has_wait_ms;
    int64_t at_seq;
    int64_t at_ms;
    int64_t min_seq;
    int64_t wait_ms;
} account_query_t;

//  Reads an optional integer query argument within [min, max]. Returns 0
//  when absent or valid, -1 (error added) otherwise.
static int64_t s_applied_seq (api_context_t *self)
{
    return accounts_applied_seq (self->accounts);
}

static int64_t s_head_seq (api_context_t *self)
{
    int64_t head = self->subscriber ? subscriber_head_seq (self->subscriber) : 0;
    int64_t applied = s_applied_seq (self);
    return head > applied ? head : applied;
}

static void s_respond_body (http_request_t *request, unsigned status, const char *body,
                            int bytes)
{
    if (bytes < 0 || bytes >= API_BODY_BYTES_MAX) {
        http_respond_problem (request, 500, "Internal error", "answer too large", NULL);
        return;
    }
    http_respond (request, status, "application/json", body, (size_t)bytes);
}

//  The {id} segment, or NULL after answering 400, or 403 when the token
//  may not see that account.
static const char *s_account_id (http_request_t *request)
{
    const char *id = http_request_param (request, "id");
    if (id && event_id_is_valid (id, strlen (id))) {
        const auth_principal_t *principal = http_request_principal (request);
        if (auth_principal_allows_account (principal, id))
            return id;
        char detail[160];
        snprintf (detail, sizeof detail, "%s may not see account %s", principal->name,
                  id);
        http_respond_forbidden (request, detail, NULL);
        return NULL;
    }
    cJSON *errors = NULL;
    http_problem_add_error (&errors, "id",
                            "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
    http_respond_problem (request, 400, "Invalid account id",
                          "the account id is not valid", errors);
    return NULL;
}

static cJSON *s_account_query_parse (http_request_t *request, account_query_t *query)
{
    cJSON *errors = NULL;
    *query = (account_query_t){0};
    query->has_at_seq = http_request_query_int64 (request, "at_seq", 0, INT64_MAX,
                                                  &query->at_seq, &errors);
    query->has_min_seq = http_request_query_int64 (request, "min_seq", 0, INT64_MAX,
                                                   &query->min_seq, &errors);
    query->has_wait_ms = http_request_query_int64 (request, "wait_ms", 0, INT64_MAX,
                                                   &query->wait_ms, &errors);
    const char *at = http_request_query (request, "at");
    if (at) {
        query->has_at = true;
        if (event_ts_parse (at, &query->at_ms))
            http_problem_add_error (
                &errors, "at",
                "must be an RFC 3339 date-time, e.g. 2026-11-22T07:28:47.123Z");
    }
    if (query->has_at && query->has_at_seq)
        http_problem_add_error (&errors, "at", "at and at_seq exclude each other");
    return errors;
}

static void s_not_yet (http_request_t *request, int64_t min_seq, int64_t applied_seq,
                       const char *why)
{
    char detail[160];
    snprintf (detail, sizeof detail,
              "%s: min_seq %" PRId64 " not applied yet (applied_seq %" PRId64 ")", why,
              min_seq, applied_seq);
    http_request_add_header (request, "Retry-After", API_RETRY_AFTER_S);
    http_respond_problem (request, 503, "Not applied yet", detail, NULL);
}

//  The hottest answer is printed by hand: snprintf's format parsing costs
//  more than the rest of the handler. Ids are at most
//  EVENT_ACCOUNT_BYTES_MAX bytes and numbers at most 20 characters, so the
//  body stays far below API_BODY_BYTES_MAX.
//  With metadata, an account body is at most this long.
#define API_ACCOUNT_BYTES_MAX (EVENT_METADATA_BYTES_MAX + 512)
_Static_assert(EVENT_ACCOUNT_BYTES_MAX + EVENT_CURRENCY_BYTES_MAX + 9 * 20 + 220 <
                   API_ACCOUNT_BYTES_MAX - EVENT_METADATA_BYTES_MAX,
               "an account body fits its buffer");

static char *s_put_text (char *p, const char *text)
{
    size_t bytes = strlen (text);
    memcpy (p, text, bytes);
    return p + bytes;
}

static char *s_put_int (char *p, int64_t value)
{
    return p + event_format_int (p, value);
}

//  ,"currency":..,"overdraft_limit":..,"metadata":{..} of schema 2: an
//  account opened implicitly shows the deployment's limit, and {} when it
//  has no metadata.
//  ,"pending_debits":..,"pending_credits":..,"available":.. of schema 2's
//  holds: available is balance - pending_debits + overdraft_limit, null
//  when the limit is (an overflow shows as null too: beyond any limit).
static char *s_put_pending (api_context_t *self, char *p, const account_state_t *state)
{
    p = s_put_text (p, ",\"pending_debits\":");
    p = s_put_int (p, state->pending_debits);
    p = s_put_text (p, ",\"pending_credits\":");
    p = s_put_int (p, state->pending_credits);
    p = s_put_text (p, ",\"available\":");
    int64_t limit =
        state->limit_implicit ? self->overdraft_limit : state->overdraft_limit;
    int64_t available;
    if (limit == EVENT_LIMIT_UNLIMITED ||
        __builtin_sub_overflow (state->balance, state->pending_debits, &available) ||
        __builtin_add_overflow (available, limit, &available))
        return s_put_text (p, "null");
    return s_put_int (p, available);
}

static char *s_put_settings (api_context_t *self, char *p, const account_state_t *state)
{
    p = s_put_text (p, ",\"currency\":\"");
    p = s_put_text (p, state->currency);
    p = s_put_text (p, "\",\"overdraft_limit\":");
    int64_t limit =
        state->limit_implicit ? self->overdraft_limit : state->overdraft_limit;
    if (limit == EVENT_LIMIT_UNLIMITED)
        p = s_put_text (p, "null");
    else
        p = s_put_int (p, limit);
    p = s_put_text (p, ",\"metadata\":");
    return s_put_text (p, state->metadata ? state->metadata : "{}");
}

//  Answers GET /accounts/{id} from the state now (min_seq already met or
//  given up on by the caller).
static void s_account_answer (api_context_t *self, http_request_t *request,
                              const char *id, const account_query_t *query)
{
    int64_t applied_seq = s_applied_seq (self);
    int64_t at_seq = INT64_MAX;
    if (query->has_at_seq) {
        if (query->at_seq > applied_seq) {
            char message[128];
            snprintf (message, sizeof message,
                      "beyond applied_seq %" PRId64
                      " of this instance; add min_seq to wait",
                      applied_seq);
            cJSON *errors = NULL;
            http_problem_add_error (&errors, "at_seq", message);
            http_respond_problem (request, 422, "Not applied yet", message, errors);
            return;
        }
        at_seq = query->at_seq;
    } else if (query->has_at)
        at_seq = accounts_seq_at_ts (self->accounts, query->at_ms);

    account_state_t state;
    if (accounts_state_at (self->accounts, id, at_seq, &state)) {
        char detail[160];
        snprintf (detail, sizeof detail, "account %s has no events%s", id,
                  at_seq == INT64_MAX ? "" : " at that point");
        http_respond_problem (request, 404, "Account not found", detail, NULL);
        return;
    }
    static char body[API_ACCOUNT_BYTES_MAX];
    char *p = body;
    p = s_put_text (p, "{\"account\":\"");
    p = s_put_text (p, id);
    p = s_put_text (p, "\",\"balance\":");
    p = s_put_int (p, state.balance);
    p = s_put_text (p, ",\"version\":");
    p = s_put_int (p, state.version);
    p = s_put_text (p, ",\"last_seq\":");
    p = s_put_int (p, state.last_seq);
    p = s_put_text (p, ",\"applied_seq\":");
    p = s_put_int (p, applied_seq);
    if (at_seq != INT64_MAX) {
        p = s_put_text (p, ",\"at_seq\":");
        p = s_put_int (p, at_seq);
    }
    p = s_put_settings (self, p, &state);
    p = s_put_pending (self, p, &state);
    p = s_put_text (p, "}");
    http_respond (request, 200, "application/json", body, (size_t)(p - body));
}

//  Answers GET /transfers/{transfer} from the state now: the hold, its
//  state and the seqs that changed it. A token that sees some accounts
//  only sees holds from or to one of them (others are 404, as unknown).
static void s_transfer_answer (api_context_t *self, http_request_t *request,
                               const char *id)
{
    const transfer_t *transfer = transfers_find (accounts_transfers (self->accounts), id);
    const auth_principal_t *principal = http_request_principal (request);
    if (!transfer || !(auth_principal_allows_account (principal, transfer->from) ||
                       auth_principal_allows_account (principal, transfer->to))) {
        char detail[160];
        snprintf (detail, sizeof detail, "no pending transfer %s", id);
        http_respond_problem (request, 404, "Transfer not found", detail, NULL);
        return;
    }
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "id", transfer->id);
    cJSON_AddStringToObject (json, "state", transfers_state_name (transfer->state));
    cJSON_AddStringToObject (json, "from", transfer->from);
    cJSON_AddStringToObject (json, "to", transfer->to);
    char number[EVENT_INT_BYTES_MAX + 1];
    number[event_format_int (number, transfer->amount)] = '\0';
    cJSON_AddRawToObject (json, "amount", number);
    cJSON_AddStringToObject (json, "currency", transfer->currency);
    if (transfer->timeout_at_ms) {
        char ts[EVENT_TS_BYTES + 1];
        event_ts_format (transfer->timeout_at_ms, ts);
        cJSON_AddStringToObject (json, "timeout_at", ts);
    }
    if (transfer->state == TRANSFER_POSTED) {
        number[event_format_int (number, transfer->posted_amount)] = '\0';
        cJSON_AddRawToObject (json, "posted_amount", number);
    }
    cJSON_AddNumberToObject (json, "pending_seq", (double)transfer->pending_seq);
    if (transfer->resolved_seq)
        cJSON_AddNumberToObject (json, "resolved_seq", (double)transfer->resolved_seq);
    cJSON *seqs = cJSON_AddArrayToObject (json, "seqs");
    cJSON_AddItemToArray (seqs, cJSON_CreateNumber ((double)transfer->pending_seq));
    if (transfer->resolved_seq)
        cJSON_AddItemToArray (seqs, cJSON_CreateNumber ((double)transfer->resolved_seq));
    cJSON_AddNumberToObject (json, "applied_seq", (double)s_applied_seq (self));
    http_respond_json (request, 200, json);
    cJSON_Delete (json);
}

//  The stream's log is not the history this replica holds: answering
//  from it would serve totals the log does not have. Answers 503 and
//  returns true then.
static bool s_refuse_diverged (api_context_t *self, http_request_t *request)
{
    const char *reason = self->subscriber ? subscriber_diverged (self->subscriber) : NULL;
    if (!reason)
        return false;
    char detail[320];
    snprintf (detail, sizeof detail,
              "this replica and the stream's log diverged (%s); restart it with "
              "--rebuild once the stream's log is the right one",
              reason);
    http_request_add_header (request, "Retry-After", API_RETRY_AFTER_S);
    http_respond_problem (request, 503, "Diverged", detail, NULL);
    return true;
}

//  What reads answer from: the stream's state once caught up with it, else
//  the events this instance holds (its replica from an earlier run, or
//  a catch-up under way), else nothing. With nothing, an account not seen
//  yet cannot be told from one that does not exist.
static const char *s_reads (api_context_t *self)
{
    if (self->subscriber && subscriber_caught_up (self->subscriber))
        return "caught-up";
    return s_applied_seq (self) > 0 ? "local-state" : "not-caught-up";
}

//  503 not-caught-up (with Retry-After) for a read that has nothing to
//  answer from yet. Returns true when it answered.
static bool s_refuse_not_caught_up (api_context_t *self, http_request_t *request)
{
    if (!streq (s_reads (self), "not-caught-up"))
        return false;
    http_request_add_header (request, "Retry-After", API_RETRY_AFTER_S);
    http_respond_problem (request, 503, "Not caught up",
                          "not caught up yet: this instance has no local state and has "
                          "not caught up with the stream since it started",
                          NULL);
    return true;
}

//  GET /accounts/{id}[?at_seq=N|?at=TS][&min_seq=N[&wait_ms=M]]
static void s_get_account (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request))
        return;
    const char *id = s_account_id (request);
    if (!id)
        return;
    account_query_t query;
    cJSON *errors = s_account_query_parse (request, &query);
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    //  A read that waits for min_seq has something to answer from once
    //  the wait is over: only the others are refused before catching up.
    int64_t applied_seq = s_applied_seq (self);
    bool waits = query.has_min_seq && query.min_seq > applied_seq;
    if (!waits && s_refuse_not_caught_up (self, request))
        return;
    if (waits) {
        int64_t wait_ms = query.has_wait_ms ? query.wait_ms : API_WAIT_MS_DEFAULT;
        if (wait_ms > self->wait_ms_max)
            wait_ms = self->wait_ms_max;
        if (wait_ms <= 0)
            s_not_yet (request, query.min_seq, applied_seq, "no wait asked");
        else if (waiters_add (self->waiters, request, query.min_seq, wait_ms))
            s_not_yet (request, query.min_seq, applied_seq, "too many waiting requests");
        return;
    }
    s_account_answer (self, request, id, &query);
}

//  GET /transfers/{transfer}[?min_seq=N[&wait_ms=M]]
static void s_get_transfer (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request))
        return;
    const char *id = http_request_param (request, "transfer");
    if (!id || !event_id_is_valid (id, strlen (id))) {
        cJSON *errors = NULL;
        http_problem_add_error (&errors, "transfer",
                                "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
        http_respond_problem (request, 400, "Invalid transfer id",
                              "the transfer id is not valid", errors);
        return;
    }
    cJSON *errors = NULL;
    int64_t min_seq = 0, wait_ms = API_WAIT_MS_DEFAULT;
    bool has_min_seq =
        http_request_query_int64 (request, "min_seq", 0, INT64_MAX, &min_seq, &errors);
    http_request_query_int64 (request, "wait_ms", 0, INT64_MAX, &wait_ms, &errors);
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    int64_t applied_seq = s_applied_seq (self);
    bool waits = has_min_seq && min_seq > applied_seq;
    if (!waits && s_refuse_not_caught_up (self, request))
        return;
    if (waits) {
        if (wait_ms > self->wait_ms_max)
            wait_ms = self->wait_ms_max;
        if (wait_ms <= 0)
            s_not_yet (request, min_seq, applied_seq, "no wait asked");
        else if (waiters_add (self->waiters, request, min_seq, wait_ms))
            s_not_yet (request, min_seq, applied_seq, "too many waiting requests");
        return;
    }
    s_transfer_answer (self, request, id);
}

void api_on_waiter (void *arg, http_request_t *request, waiter_reason_t reason)
{
    api_context_t *self = arg;
    account_query_t query;
    //  Both were valid when the request was parked.
    const char *id = http_request_param (request, "id");
    cJSON *errors = s_account_query_parse (request, &query);
    cJSON_Delete (errors);
    int64_t applied_seq = s_applied_seq (self);
    if (s_refuse_diverged (self, request))
        return;
    if (reason == WAITER_SHUTDOWN)
        s_not_yet (request, query.min_seq, applied_seq, "shutting down");
    else if (query.min_seq > applied_seq)
        s_not_yet (request, query.min_seq, applied_seq, "wait_ms passed");
    else if (!id) // GET /transfers/{transfer}: the other route that waits
        s_transfer_answer (self, request, http_request_param (request, "transfer"));
    else
        s_account_answer (self, request, id, &query);
}

//  Prints `line` (a canonical event object) with ,"balance_after":N added.
static void s_print_event (FILE *out, const char *line, size_t line_bytes,
                           int64_t balance_after)
{
    //  Drop the \n and the one closing brace, then close it again.
    if (line_bytes && line[line_bytes - 1] == '\n')
        line_bytes--;
    if (line_bytes && line[line_bytes - 1] == '}')
        line_bytes--;
    fwrite (line, 1, line_bytes, out);
    fprintf (out, ",\"balance_after\":%" PRId64 "}", balance_after);
}

static void s_respond_stream (http_request_t *request, FILE *out, char **body,
                              size_t *bytes)
{
    if (fclose (out) == 0 && *body)
        http_respond (request, 200, "application/json", *body, *bytes);
    else
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
    free (*body);
}

//  GET /accounts/{id}/events?after_seq=N&limit=N
static void s_get_account_events (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request))
        return;
    const char *id = s_account_id (request);
    if (!id || s_refuse_not_caught_up (self, request))
        return;
    cJSON *errors = NULL;
    int64_t after_seq = 0, limit = API_EVENTS_LIMIT_DEFAULT;
    http_request_query_int64 (request, "after_seq", 0, INT64_MAX, &after_seq, &errors);
    http_request_query_int64 (request, "limit", 1, API_EVENTS_LIMIT_MAX, &limit, &errors);
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    static account_touch_t touches[API_EVENTS_LIMIT_MAX];
    bool more = false;
    int count =
        accounts_touches (self->accounts, id, after_seq, (size_t)limit, touches, &more);
    if (count < 0) {
        http_respond_problem (request, 404, "Account not found",
                              "the account has no events", NULL);
        return;
    }
    char *body = NULL;
    size_t bytes = 0;
    FILE *out = open_memstream (&body, &bytes);
    if (!out) {
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
        return;
    }
    fprintf (out, "{\"account\":\"%s\",\"events\":[", id);
    static char line[EVENT_LINE_BYTES_MAX + 1];
    int64_t last_seq = after_seq;
    for (int i = 0; i < count; i++) {
        size_t line_bytes = 0;
        //  Only committed lines are readable; stop at the first that is not.
        if (log_file_read (self->replica, touches[i].seq, 1, line, sizeof line,
                           &line_bytes) != 1) {
            more = true;
            break;
        }
        if (i)
            fputc (',', out);
        s_print_event (out, line, line_bytes, touches[i].balance_after);
        last_seq = touches[i].seq;
    }
    if (more)
        fprintf (out, "],\"next_after_seq\":%" PRId64 "}", last_seq);
    else
        fputs ("],\"next_after_seq\":null}", out);
    s_respond_stream (request, out, &body, &bytes);
}

//  Up to limit accounts after `after` that principal may see, as
//  accounts_list gives them. Ids are sorted, so a prefix's accounts are
//  one run: the search starts just before it and stops past it; an
//  exact id is looked up. Returns the count or -1.
static int s_list_visible (api_context_t *self, const auth_principal_t *principal,
                           const char *after, size_t limit, account_state_t *states,
                           bool *more)
{
    if (auth_principal_sees_all (principal))
        return accounts_list (self->accounts, after, limit, states, more);
    *more = false;
    if (!principal->is_prefix) {
        if (strcmp (principal->accounts, after) <= 0 ||
            accounts_state_at (self->accounts, principal->accounts, INT64_MAX, states))
            return 0;
        states[0].id = principal->accounts;
        return 1;
    }
    static account_state_t page[API_LIST_LIMIT_MAX];
    const char *prefix = principal->accounts;
    size_t prefix_bytes = strlen (prefix);
    //  The greatest text below every id that starts with prefix: prefix
    //  with its last byte one less, then bytes above any id character.
    char start[EVENT_ACCOUNT_BYTES_MAX + 2];
    memcpy (start, prefix, prefix_bytes);
    start[prefix_bytes - 1]--;
    memset (start + prefix_bytes, 0xff, sizeof start - 1 - prefix_bytes);
    start[sizeof start - 1] = '\0';
    const char *cursor = strcmp (after, start) > 0 ? after : start;
    size_t found = 0;
    for (bool page_more = true; page_more;) {
        int count =
            accounts_list (self->accounts, cursor, API_LIST_LIMIT_MAX, page, &page_more);
        if (count < 0)
            return -1;
        for (int index = 0; index < count; index++) {
            if (strncmp (page[index].id, prefix, prefix_bytes) != 0) {
                if (strcmp (page[index].id, prefix) > 0)
                    return (int)found; // past the run
                continue;
            }
            if (found == limit) {
                *more = true;
                return (int)found;
            }
            states[found++] = page[index];
        }
        if (count == 0)
            break;
        cursor = page[count - 1].id;
    }
    return (int)found;
}

//  The filters of GET /accounts: ?currency=C and ?metadata.KEY=VALUE
//  (all must hold). A metadata filter is matched as its canonical
//  member ("KEY":"VALUE", escaped as stored) right after { or , in the
//  account's canonical metadata: inside a stored value every quote is
//  escaped, so the text can only match a member.
#define API_METADATA_FILTERS_MAX EVENT_METADATA_KEYS_MAX
typedef struct {
    const char *currency; // NULL: any
    size_t count;
    char members[API_METADATA_FILTERS_MAX]
                [EVENT_METADATA_KEY_BYTES_MAX + 6 * EVENT_METADATA_VALUE_BYTES_MAX + 8];
} list_filter_t;

static void s_filter_parse (http_request_t *request, list_filter_t *filter,
                            cJSON **errors)
{
    filter->currency = http_request_query (request, "currency");
    if (filter->currency &&
        !event_currency_is_valid (filter->currency, strlen (filter->currency)))
        http_problem_add_error (errors, "currency", "must match ^[A-Z][A-Z0-9]{2,11}$");
    const char *keys[API_METADATA_FILTERS_MAX], *values[API_METADATA_FILTERS_MAX];
    size_t count = http_request_query_prefixed (request, "metadata.", keys, values,
                                                API_METADATA_FILTERS_MAX);
    if (count > API_METADATA_FILTERS_MAX) {
        http_problem_add_error (errors, "metadata", "at most 16 metadata filters");
        return;
    }
    for (size_t i = 0; i < count; i++) {
        cJSON *one = cJSON_CreateObject ();
        static char text[EVENT_METADATA_BYTES_MAX + 1];
        int bytes = one && cJSON_AddStringToObject (one, keys[i] + 9, values[i])
                        ? event_metadata_format (one, text, NULL, 0)
                        : -1;
        cJSON_Delete (one);
        if (bytes < 2 || (size_t)bytes - 1 > sizeof filter->members[0]) {
            http_problem_add_error (errors, keys[i],
                                    "metadata keys match ^[a-z][a-z0-9_]{0,31}$, values "
                                    "are at most 256 bytes of UTF-8");
            continue;
        }
        //  "KEY":"VALUE" and the byte after it, without the braces.
        memcpy (filter->members[filter->count], text + 1, (size_t)bytes - 2);
        filter->members[filter->count++][bytes - 2] = '\0';
    }
}

static bool s_filter_holds (const list_filter_t *filter, const account_state_t *state)
{
    if (filter->currency && strcmp (filter->currency, state->currency) != 0)
        return false;
    for (size_t i = 0; i < filter->count; i++) {
        const char *member = filter->members[i];
        size_t bytes = strlen (member);
        bool found = false;
        for (const char *at = state->metadata ? strstr (state->metadata, member) : NULL;
             at && !found; at = strstr (at + 1, member))
            found = (at[-1] == '{' || at[-1] == ',') &&
                    (at[bytes] == ',' || at[bytes] == '}');
        if (!found)
            return false;
    }
    return true;
}

//  Up to limit visible accounts after `after` that the filter lets
//  through: pages of the list are read until enough match (a scan when
//  few do; the list keeps no index by currency or metadata).
static int s_list_filtered (api_context_t *self, const auth_principal_t *principal,
                            const list_filter_t *filter, const char *after, size_t limit,
                            account_state_t *states, bool *more)
{
    if (!filter->currency && filter->count == 0)
        return s_list_visible (self, principal, after, limit, states, more);
    static account_state_t page[API_LIST_LIMIT_MAX];
    char cursor[EVENT_ACCOUNT_BYTES_MAX + 1];
    snprintf (cursor, sizeof cursor, "%s", after);
    size_t found = 0;
    *more = false;
    for (bool page_more = true; page_more;) {
        int count = s_list_visible (self, principal, cursor, API_LIST_LIMIT_MAX, page,
                                    &page_more);
        if (count < 0)
            return -1;
        for (int index = 0; index < count; index++) {
            if (!s_filter_holds (filter, &page[index]))
                continue;
            if (found == limit) {
                *more = true;
                return (int)found;
            }
            states[found++] = page[index];
        }
        if (count == 0)
            break;
        snprintf (cursor, sizeof cursor, "%s", page[count - 1].id);
    }
    return (int)found;
}

//  GET /accounts?after=ID&limit=N[&currency=C][&metadata.KEY=VALUE...]
static void s_get_accounts (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request) || s_refuse_not_caught_up (self, request))
        return;
    cJSON *errors = NULL;
    int64_t limit = API_LIST_LIMIT_DEFAULT;
    http_request_query_int64 (request, "limit", 1, API_LIST_LIMIT_MAX, &limit, &errors);
    const char *after = http_request_query (request, "after");
    if (after && *after && !event_id_is_valid (after, strlen (after)))
        http_problem_add_error (&errors, "after",
                                "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
    static list_filter_t filter;
    filter.count = 0;
    s_filter_parse (request, &filter, &errors);
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    static account_state_t states[API_LIST_LIMIT_MAX];
    bool more = false;
    int count = s_list_filtered (self, http_request_principal (request), &filter,
                                 after ? after : "", (size_t)limit, states, &more);
    char *body = NULL;
    size_t bytes = 0;
    FILE *out = count < 0 ? NULL : open_memstream (&body, &bytes);
    if (!out) {
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
        return;
    }
    fputs ("{\"accounts\":[", out);
    for (int i = 0; i < count; i++) {
        static char settings[API_ACCOUNT_BYTES_MAX];
        char *end = s_put_settings (self, settings, &states[i]);
        end = s_put_pending (self, end, &states[i]);
        fprintf (out,
                 "%s{\"account\":\"%s\",\"balance\":%" PRId64 ",\"version\":%" PRId64
                 ",\"last_seq\":%" PRId64 "%.*s}",
                 i ? "," : "", states[i].id, states[i].balance, states[i].version,
                 states[i].last_seq, (int)(end - settings), settings);
    }
    if (more && count > 0)
        fprintf (out, "],\"next_after\":\"%s\"}", states[count - 1].id);
    else
        fputs ("],\"next_after\":null}", out);
    s_respond_stream (request, out, &body, &bytes);
}

//  Prints the members of /stats' "currencies" object, then closes it and the body:
//  each currency with accounts, its count and the sum of their balances.
static void s_print_currencies (FILE *out, const account_currency_t *currencies,
                                size_t count)
{
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        if (currencies[i].accounts == 0)
            continue; // only skipped events named it
        char sum[48];
        accounts_int128_format (currencies[i].total, sum, sizeof sum);
        fprintf (out, "%s\"%s\":{\"accounts\":%zu,\"total_balance\":%s}",
                 first ? "" : ",", currencies[i].currency, currencies[i].accounts, sum);
        first = false;
    }
    fputs ("}}", out);
}

//  GET /stats for a token that sees some accounts only: their count and
//  total, and the positions (applied, head, lag) that read-your-writes
//  needs; the instance-wide counters would tell about the others.
static void s_get_stats_visible (api_context_t *self, http_request_t *request,
                                 const auth_principal_t *principal)
{
    static account_state_t states[API_LIST_LIMIT_MAX];
    //  Per currency, in the order met; a state's currency is the fold's
    //  one copy of the code, so pointers tell currencies apart.
    static account_currency_t currencies[ACCOUNTS_CURRENCIES_MAX];
    size_t currency_count = 0;
    accounts_int128_t total = 0;
    size_t accounts = 0;
    char after[EVENT_ACCOUNT_BYTES_MAX + 1] = "";
    for (bool more = true; more;) {
        int count =
            s_list_visible (self, principal, after, API_LIST_LIMIT_MAX, states, &more);
        if (count < 0) {
            http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
            return;
        }
        for (int index = 0; index < count; index++) {
            total += states[index].balance;
            size_t at = 0;
            while (at < currency_count &&
                   currencies[at].currency != states[index].currency)
                at++;
            if (at == currency_count)
                currencies[currency_count++] =
                    (account_currency_t){.currency = states[index].currency};
            currencies[at].accounts++;
            currencies[at].total += states[index].balance;
        }
        accounts += (size_t)count;
        if (count > 0)
            snprintf (after, sizeof after, "%s", states[count - 1].id);
    }
    char total_text[48];
    accounts_int128_format (total, total_text, sizeof total_text);
    int64_t applied_seq = s_applied_seq (self), head_seq = s_head_seq (self);
    char *body = NULL;
    size_t bytes = 0;
    FILE *out = open_memstream (&body, &bytes);
    if (!out) {
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
        return;
    }
    fprintf (out,
             "{\"accounts\":%zu,\"total_balance\":%s,\"applied_seq\":%" PRId64
             ",\"head_seq\":%" PRId64 ",\"lag\":%" PRId64
             ",\"filtered\":true,\"currencies\":{",
             accounts, total_text, applied_seq, head_seq, head_seq - applied_seq);
    s_print_currencies (out, currencies, currency_count);
    s_respond_stream (request, out, &body, &bytes);
}

//  GET /stats
static void s_get_stats (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request) || s_refuse_not_caught_up (self, request))
        return;
    const auth_principal_t *principal = http_request_principal (request);
    if (!auth_principal_sees_all (principal)) {
        s_get_stats_visible (self, request, principal);
        return;
    }
    char total[48];
    accounts_total_format (self->accounts, total, sizeof total);
    int64_t applied_seq = s_applied_seq (self), head_seq = s_head_seq (self);
    char *body = NULL;
    size_t bytes = 0;
    FILE *out = open_memstream (&body, &bytes);
    if (!out) {
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
        return;
    }
    fprintf (out,
             "{\"accounts\":%zu,\"events_applied\":%" PRIu64
             ",\"unknown_skipped\":%" PRIu64 ",\"overflow_skipped\":%" PRIu64
             ",\"total_balance\":%s,\"applied_seq\":%" PRId64 ",\"head_seq\":%" PRId64
             ",\"lag\":%" PRId64 ",\"waiters\":%zu,\"replica_bytes\":%" PRIu64
             ",\"feed_subscribers\":%zu,\"currency_skipped\":%" PRIu64 ",\"currencies\":{",
             accounts_count (self->accounts), accounts_events_applied (self->accounts),
             accounts_unknown_skipped (self->accounts),
             accounts_overflow_skipped (self->accounts), total, applied_seq, head_seq,
             head_seq - applied_seq, waiters_count (self->waiters),
             log_file_bytes (self->replica),
             self->feed ? feed_subscriber_count (self->feed) : 0,
             accounts_mismatch_skipped (self->accounts));
    size_t currency_count = 0;
    const account_currency_t *currencies =
        accounts_currencies (self->accounts, &currency_count);
    s_print_currencies (out, currencies, currency_count);
    s_respond_stream (request, out, &body, &bytes);
}

//  GET /health
static void s_get_health (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    bool connected = self->subscriber && subscriber_connected (self->subscriber);
    bool caught_up = self->subscriber && subscriber_caught_up (self->subscriber);
    const char *reads = s_reads (self);
    //  503 while reads are: a load balancer sends them elsewhere.
    bool ready = !streq (reads, "not-caught-up");
    int64_t applied_seq = s_applied_seq (self), head_seq = s_head_seq (self);
    const char *diverged = self->subscriber ? subscriber_diverged (self->subscriber) : NULL;
    if (diverged) {
        //  Unhealthy: a load balancer must send reads elsewhere.
        cJSON *json = cJSON_CreateObject ();
        cJSON_AddStringToObject (json, "status", "unhealthy");
        cJSON_AddStringToObject (json, "reason", "diverged");
        cJSON_AddStringToObject (json, "detail", diverged);
        cJSON_AddNumberToObject (json, "applied_seq", (double)applied_seq);
        cJSON_AddStringToObject (json, "instance", self->instance);
        http_respond_json (request, 503, json);
        cJSON_Delete (json);
        return;
    }
    char body[API_BODY_BYTES_MAX];
    int bytes = snprintf (
        body, sizeof body,
        "{\"status\":\"%s\",%s\"upstream\":\"%s\",\"applied_seq\":%" PRId64
        ",\"head_seq\":%" PRId64 ",\"lag\":%" PRId64
        ",\"caught_up\":%s,\"reads\":\"%s\",\"replica\":\"%s\",\"instance\":\"%s\"}",
        ready ? "ok" : "not-caught-up",
        ready ? "" : "\"reason\":\"not caught up with the stream yet, no local state\",",
        connected ? "connected" : "disconnected", applied_seq, head_seq,
        head_seq - applied_seq, caught_up ? "true" : "false", reads,
        self->replica_failed ? "failed" : "ok", self->instance);
    if (!ready)
        http_request_add_header (request, "Retry-After", API_RETRY_AFTER_S);
    s_respond_body (request, ready ? 200 : 503, body, bytes);
}

//  GET /metrics
static void s_get_metrics (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    metrics_t *metrics = metrics_new ();
    if (!metrics) {
        http_respond_problem (request, 500, "Internal error", "out of memory", NULL);
        return;
    }
    accounts_t *accounts = self->accounts;
    subscriber_t *subscriber = self->subscriber;
    int64_t applied_seq = s_applied_seq (self), head_seq = s_head_seq (self);
    metrics_counter (metrics, "accounting_events_applied_total",
                     "Events folded into balances", accounts_events_applied (accounts));
    metrics_counter (metrics, "accounting_unknown_skipped_total",
                     "Events of unknown type skipped",
                     accounts_unknown_skipped (accounts));
    metrics_counter (metrics, "accounting_overflow_skipped_total",
                     "Events skipped because a balance would overflow",
                     accounts_overflow_skipped (accounts));
    metrics_counter (metrics, "accounting_currency_skipped_total",
                     "Events skipped because they move money of another currency than "
                     "an account's",
                     accounts_mismatch_skipped (accounts));
    metrics_gauge (metrics, "accounting_accounts", "Accounts known",
                   (double)accounts_count (accounts));
    metrics_gauge (metrics, "accounting_applied_seq", "Last seq applied",
                   (double)applied_seq);
    metrics_gauge (metrics, "accounting_head_seq", "Last seq known upstream",
                   (double)head_seq);
    metrics_gauge (metrics, "accounting_lag_events", "head_seq - applied_seq",
                   (double)(head_seq - applied_seq));
    metrics_gauge (metrics, "accounting_upstream_connected",
                   "1 while the stream is heard",
                   subscriber && subscriber_connected (subscriber) ? 1 : 0);
    metrics_gauge (metrics, "accounting_waiters", "Requests waiting for min_seq",
                   (double)waiters_count (self->waiters));
    metrics_counter (metrics, "accounting_waiter_timeouts_total",
                     "min_seq waits that ended in 503", waiters_timeouts (self->waiters));
    metrics_gauge (metrics, "accounting_replica_bytes", "Committed replica size",
                   (double)log_file_bytes (self->replica));
    metrics_gauge (metrics, "accounting_diverged",
                   "1 once the stream's log and the replica disagree",
                   subscriber && subscriber_diverged (subscriber) ? 1 : 0);
    metrics_gauge (metrics, "accounting_replica_failed",
                   "1 once the replica stopped following", self->replica_failed ? 1 : 0);
    if (subscriber) {
        metrics_counter (metrics, "accounting_fetches_total", "FETCH requests sent",
                         subscriber_fetches (subscriber));
        metrics_counter (metrics, "accounting_gaps_total", "Gaps detected in live events",
                         subscriber_gaps (subscriber));
        metrics_counter (metrics, "accounting_live_dropped_total",
                         "Live events dropped while catching up",
                         subscriber_live_dropped (subscriber));
        metrics_counter (metrics, "accounting_stream_rejected_total",
                         "Lines, frames and replies from the stream refused as impossible",
                         subscriber_rejected (subscriber));
    }
    if (self->feed) {
        metrics_gauge (metrics, "accounting_feed_subscribers", "Live GET /events streams",
                       (double)feed_subscriber_count (self->feed));
        metrics_counter (metrics, "accounting_feed_events_sent_total",
                         "Events framed for live streams", feed_events_sent (self->feed));
        metrics_counter (metrics, "accounting_feed_cutoffs_total",
                         "Live streams cut off (slow consumer, errors)",
                         feed_cutoffs (self->feed));
        metrics_counter (metrics, "accounting_feed_fallbacks_total",
                         "Times a live stream's full buffer sent it back to the replica",
                         feed_fallbacks (self->feed));
        metrics_counter (metrics, "accounting_feed_refused_total",
                         "Live streams refused: --feed-subscribers-max reached",
                         feed_refused (self->feed));
    }
    if (self->http) {
        metrics_counter (metrics, "accounting_http_requests_total",
                         "HTTP requests answered",
                         http_server_requests_total (self->http));
        http_server_metrics (self->http, metrics);
    }
    size_t bytes = 0;
    const char *text = metrics_text (metrics, &bytes);
    http_respond (request, 200, METRICS_CONTENT_TYPE, text, bytes);
    metrics_destroy (&metrics);
}

//  GET /events as a JSON page of the replica:
//  {"events":[stored lines...],"last_seq":N,"next_from_seq":M}, where M
//  is the from_seq of the next page (the filter may leave a page short).
static void s_events_page (api_context_t *self, http_request_t *request,
                           const feed_filter_t *filter, int64_t from_seq, int64_t limit)
{
    static char text[API_EVENTS_PAGE_BYTES_MAX];
    size_t text_bytes = 0;
    int count = log_file_read (self->replica, from_seq, (size_t)limit, text, sizeof text,
                               &text_bytes);
    char *body = NULL;
    size_t bytes = 0;
    FILE *out = count < 0 ? NULL : open_memstream (&body, &bytes);
    if (!out) {
        http_respond_problem (request, 500, "Internal error", "cannot read the replica",
                              NULL);
        return;
    }
    fputs ("{\"events\":[", out);
    bool first = true;
    event_t event;
    char error[128];
    for (const char *line = text; line < text + text_bytes;) {
        const char *end = memchr (line, '\n', (size_t)(text + text_bytes - line));
        size_t line_bytes = (size_t)((end ? end : text + text_bytes) - line);
        bool shown =
            (!filter->account[0] && !filter->has_principal) ||
            (event_parse_stored (line, line_bytes, &event, error, sizeof error) == 0 &&
             feed_filter_matches (filter, &event));
        if (shown) {
            fputs (first ? "" : ",", out);
            fwrite (line, 1, line_bytes, out);
            first = false;
        }
        line += line_bytes + 1;
    }
    fprintf (out, "],\"last_seq\":%" PRId64 ",\"next_from_seq\":%" PRId64 "}",
             log_file_committed_seq (self->replica), from_seq + count);
    s_respond_stream (request, out, &body, &bytes);
}

//  The first seq to send on a feed. Last-Event-ID K (a reconnect; an
//  EventSource reconnects to the same URL, from_seq included) is K + 1 and
//  wins over ?from_seq; with neither the feed starts at the next event
//  appended (live only).
static int64_t s_feed_next_seq (api_context_t *self, http_request_t *request,
                                int64_t from_seq, cJSON **errors_p)
{
    const char *last_event_id = http_request_header (request, "Last-Event-ID");
    int64_t last_seq = 0;
    if (last_event_id) {
        if (http_parse_int64 (last_event_id, 0, INT64_MAX - 1, &last_seq) == 0)
            return last_seq + 1;
        http_problem_add_error (errors_p, "Last-Event-ID",
                                "must be the seq of an event (an integer >= 0)");
        return 0;
    }
    if (from_seq > 0)
        return from_seq;
    return log_file_last_seq (self->replica) + 1;
}

//  GET /events?from_seq=N&account=ID&limit=N (limit: JSON pages only)
static void s_get_events (http_request_t *request, void *arg)
{
    api_context_t *self = arg;
    if (s_refuse_diverged (self, request))
        return;
    cJSON *errors = NULL;
    int64_t from_seq = 0, limit = API_EVENTS_LIMIT_DEFAULT;
    http_request_query_int64 (request, "from_seq", 1, INT64_MAX, &from_seq, &errors);
    http_request_query_int64 (request, "limit", 1, API_EVENTS_LIMIT_MAX, &limit, &errors);
    feed_filter_t filter = {.account = ""};
    const char *account = http_request_query (request, "account");
    if (account && !event_id_is_valid (account, strlen (account)))
        http_problem_add_error (&errors, "account",
                                "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
    else if (account)
        snprintf (filter.account, sizeof filter.account, "%s", account);
    const char *accept = http_request_header (request, "Accept");
    bool live = accept && strstr (accept, "text/event-stream");
    int64_t next_seq = live ? s_feed_next_seq (self, request, from_seq, &errors) : 0;
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    const auth_principal_t *principal = http_request_principal (request);
    if (filter.account[0] && !auth_principal_allows_account (principal, filter.account)) {
        char detail[160];
        snprintf (detail, sizeof detail, "%s may not see account %s", principal->name,
                  filter.account);
        http_respond_forbidden (request, detail, NULL);
        return;
    }
    feed_filter_set_principal (&filter, principal);
    if (!live) {
        s_events_page (self, request, &filter, from_seq ? from_seq : 1, limit);
        return;
    }
    if (!self->feed ||
        feed_subscribe (self->feed, request, &filter, next_seq) == FEED_FULL) {
        http_request_add_header (request, "Retry-After", API_RETRY_AFTER_S);
        http_respond_problem (request, 503, "Too many subscribers",
                              "every live feed slot is taken (--feed-subscribers-max)",
                              NULL);
    }
}

static const http_route_t s_routes[] = {
    {"GET", "/", dashboard_handle, 0, AUTH_SCOPE_OPEN, NULL}, // the page holds no data
    {"GET", "/events", s_get_events, 0, AUTH_SCOPE_READ, "from_seq limit account"},
    {"GET", "/accounts", s_get_accounts, 0, AUTH_SCOPE_READ,
     "limit after currency metadata.*"},
    {"GET", "/accounts/{id}", s_get_account, 0, AUTH_SCOPE_READ,
     "at_seq at min_seq wait_ms"},
    {"GET", "/accounts/{id}/events", s_get_account_events, 0, AUTH_SCOPE_READ,
     "after_seq limit"},
    {"GET", "/transfers/{transfer}", s_get_transfer, 0, AUTH_SCOPE_READ,
     "min_seq wait_ms"},
    {"GET", "/stats", s_get_stats, 0, AUTH_SCOPE_READ, NULL},
    {"GET", "/health", s_get_health, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/metrics", s_get_metrics, 0, AUTH_SCOPE_METRICS, NULL},
    OPENAPI_ROUTE,
};

const http_route_t *api_routes (size_t *count)
{
    *count = sizeof s_routes / sizeof s_routes[0];
    return s_routes;
}
