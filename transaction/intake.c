/*  intake — a write request from HTTP up to its request_t: the body
    parsed, key reuse answered, and the refusals that need no planning.
*/
#include "intake.h"

#include "auth.h"
#include "ids.h"
#include "key_hash.h"
#include "reply.h"

static command_shape_t s_shape (route_t route)
{
    return route == ROUTE_BATCH      ? COMMAND_SHAPE_ANY
           : route == ROUTE_TRANSFER ? COMMAND_SHAPE_TRANSFER
           : route == ROUTE_OPEN     ? COMMAND_SHAPE_OPEN
           : route == ROUTE_UPDATE   ? COMMAND_SHAPE_UPDATE
           : route == ROUTE_POST     ? COMMAND_SHAPE_POST
           : route == ROUTE_VOID     ? COMMAND_SHAPE_VOID
                                     : COMMAND_SHAPE_TRANSACTION;
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
        //  The path names the account of a PATCH, the hold of a post or void.
        bool hold = route == ROUTE_POST || route == ROUTE_VOID;
        const char *id =
            route == ROUTE_UPDATE || hold ? http_request_param (http, "id") : NULL;
        if (id && !event_id_is_valid (id, strlen (id))) {
            http_problem_add_error (&errors, "id",
                                    "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
            rc = -1;
        } else if (id && hold)
            request_copy (parsed->commands->pending_id,
                          sizeof parsed->commands->pending_id, id);
        else if (id)
            request_copy (parsed->commands->account, sizeof parsed->commands->account,
                          id);
    }
    cJSON_Delete (json);
    if (rc != 0)
        request_respond_problem (self, http, 422, "the command is not valid", errors);
    return rc;
}

//  Parses and validates the body; on failure answers and returns -1.
//  Plainly valid bodies (nearly all) skip cJSON: commands_read gives what
//  the cJSON path would, and declines anything else.
int intake_parse (api_t *self, http_request_t *http, route_t route, parsed_t *parsed)
{
    size_t bytes = 0;
    const char *body = http_request_body (http, &bytes);
    if (commands_read (body, bytes, s_shape (route), route == ROUTE_BATCH,
                       &parsed->commands, &parsed->count, parsed->key) != 0 &&
        s_parse_body_json (self, http, route, parsed) != 0)
        return -1;
    cJSON *errors = NULL;
    const char *body_id = route == ROUTE_BATCH ? parsed->key : parsed->commands[0].id;
    int rc = ids_parse_key (http, body_id, parsed->key, &errors);
    const char *correlation = http_request_header (http, "X-Correlation-Id");
    if (rc == 0 && correlation && strlen (correlation) > EVENT_META_VALUE_BYTES_MAX) {
        http_problem_add_error (&errors, "X-Correlation-Id", "at most 256 bytes");
        rc = -1;
    }
    if (rc == 0)
        rc = ids_assign (self, route, parsed, &errors);
    if (rc != 0)
        request_respond_problem (self, http, 422, "the command is not valid", errors);
    return rc;
}

//  The same key again: the same answer (or the same wait), or 422.
//  Returns true when http was answered or attached.
bool intake_known_key (api_t *self, http_request_t *http, const char *key,
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
        request_respond_problem (
            self, http, 422, "the idempotency key was used for another request", errors);
    } else if (running) {
        http_request_suspend (http);
        if (!running->followers)
            running->followers = zlistx_new ();
        assert (running->followers);
        zlistx_add_end (running->followers, http);
        self->waiters++;
    } else
        request_respond (self, http, entry->status, entry->body, true);
    return true;
}

//  The write model follows a stream whose log is not the history it
//  folded: deciding against it could overdraw or answer a retry from
//  events the log no longer has. Refused until the cause is fixed and
//  the instance restarted (it folds the stream's log from seq 1 again).
bool intake_refuse_diverged (api_t *self, http_request_t *http)
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
    request_respond_bytes (self, http, 503, body, strlen (body), false, true);
    return true;
}

//  Refuses (403) commands that touch an account outside the principal's
//  pattern, naming the first such field; nothing of the request is
//  appended. Returns true when refused.
bool intake_refuse_accounts (api_t *self, http_request_t *http, route_t route,
                             const parsed_t *parsed)
{
    const auth_principal_t *principal = http_request_principal (http);
    if (auth_principal_sees_all (principal))
        return false;
    for (size_t index = 0; index < parsed->count; index++) {
        const command_t *command = &parsed->commands[index];
        const char *field = NULL, *account = NULL;
        const char *from = command->from, *to = command->to;
        bool parties = command->kind == COMMAND_TRANSFER || command->kind == COMMAND_HOLD;
        if (command->kind == COMMAND_POST || command->kind == COMMAND_VOID) {
            //  A hold's accounts; one not known here is refused by planning.
            const write_model_pending_t *hold =
                write_model_pending (self->model, command->pending_id);
            if (!hold)
                continue;
            from = hold->from, to = hold->to, parties = true;
        }
        if (!parties) {
            if (!auth_principal_allows_account (principal, command->account))
                field = "account", account = command->account;
        } else if (!auth_principal_allows_account (principal, from))
            field = "from", account = from;
        else if (!auth_principal_allows_account (principal, to))
            field = "to", account = to;
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

//  POST /accounts for an account already open with the same settings
//  (currency, limit as given or the default, metadata): answers 201 with
//  them (Idempotent-Replayed) and appends nothing; other settings are
//  planned and refused 409 there. Returns true when answered.
bool intake_open_replayed (api_t *self, http_request_t *http, const command_t *command)
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
    request_respond_bytes (self, http, 201, reply.data, reply.bytes, true, true);
    return true;
}
