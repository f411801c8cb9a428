/*  http_request — a handler's view of its request and its answers (see
    http.h; the server around it is http.c).
*/
#include "http_internal.h"
#include "log.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

//  ---------------------------------------------------------------------
//  Request accessors

const char *http_request_param (http_request_t *self, const char *name)
{
    assert (self);
    size_t bytes = strlen (name);
    for (size_t index = 0; index < self->param_count; index++) {
        if (self->param_name_bytes[index] == bytes &&
            memcmp (self->param_names[index], name, bytes) == 0)
            return self->param_values[index];
    }
    return NULL;
}

const char *http_request_query (http_request_t *self, const char *key)
{
    assert (self);
    return MHD_lookup_connection_value (self->connection, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct {
    const char *prefix;
    const char **keys, **values;
    size_t max, count;
} prefixed_t;

static enum MHD_Result s_on_prefixed (void *arg, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    prefixed_t *found = arg;
    if (key && strncmp (key, found->prefix, strlen (found->prefix)) == 0) {
        if (found->count < found->max) {
            found->keys[found->count] = key;
            found->values[found->count] = value ? value : "";
        }
        found->count++;
    }
    return MHD_YES;
}

size_t http_request_query_prefixed (http_request_t *self, const char *prefix,
                                    const char **keys, const char **values, size_t max)
{
    assert (self && prefix);
    prefixed_t found = {prefix, keys, values, max, 0};
    MHD_get_connection_values (self->connection, MHD_GET_ARGUMENT_KIND, s_on_prefixed,
                               &found);
    return found.count;
}

void http_respond_invalid_query (http_request_t *self, cJSON *errors)
{
    http_respond_problem (self, MHD_HTTP_BAD_REQUEST, "Invalid query",
                          "a query parameter is not valid", errors);
}

int http_parse_int64 (const char *text, int64_t min, int64_t max, int64_t *value)
{
    const char *digits = *text == '-' ? text + 1 : text;
    if (*digits < '0' || *digits > '9')
        return -1; // strtoll would take spaces, '+' and an empty string
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || *end || parsed < min || parsed > max)
        return -1;
    *value = parsed;
    return 0;
}

int http_request_query_int64 (http_request_t *self, const char *key, int64_t min,
                              int64_t max, int64_t *value, cJSON **errors_p)
{
    const char *text = http_request_query (self, key);
    if (!text)
        return 0;
    if (http_parse_int64 (text, min, max, value) == 0)
        return 1;
    char message[96];
    snprintf (message, sizeof message,
              "must be an integer between %" PRId64 " and %" PRId64, min, max);
    http_problem_add_error (errors_p, key, message);
    return -1;
}

const char *http_request_header (http_request_t *self, const char *name)
{
    assert (self);
    return MHD_lookup_connection_value (self->connection, MHD_HEADER_KIND, name);
}

const char *http_request_body (http_request_t *self, size_t *bytes)
{
    assert (self);
    if (bytes)
        *bytes = self->body_bytes;
    return self->body ? self->body : "";
}

const char *http_request_id (http_request_t *self)
{
    assert (self);
    return self->request_id;
}

//  A Host header we may copy into a URL: host[:port] of plain characters.
static bool s_host_is_plain (const char *host)
{
    if (!host || !*host || strlen (host) > 255)
        return false;
    for (const char *cursor = host; *cursor; cursor++)
        if (!isalnum ((unsigned char)*cursor) && !strchr ("-.:[]", *cursor))
            return false;
    return true;
}

void http_request_base_url (http_request_t *self, char *buffer, size_t size)
{
    assert (self && buffer);
    http_server_t *server = self->server;
    const char *scheme = server->tls ? "https" : "http";
    const char *address = server->config.address ? server->config.address : "127.0.0.1";
    bool wildcard = streq (address, "0.0.0.0") || streq (address, "::");
    const char *host = http_request_header (self, MHD_HTTP_HEADER_HOST);
    if (wildcard && s_host_is_plain (host))
        snprintf (buffer, size, "%s://%s", scheme, host);
    else if (strchr (address, ':'))
        snprintf (buffer, size, "%s://[%s]:%d", scheme, address, server->port);
    else
        snprintf (buffer, size, "%s://%s:%d", scheme, address, server->port);
}

const char *http_request_service (http_request_t *self)
{
    assert (self);
    return self->server->config.service ? self->server->config.service : "";
}

const auth_principal_t *http_request_principal (http_request_t *self)
{
    assert (self);
    return self->has_principal ? &self->principal : NULL;
}

//  The byte offset of the first "\u0000" escape in valid JSON text, or -1.
//  In valid JSON every backslash starts an escape inside a string.
//  Backslashes are found with memchr, not byte by byte: a body of 1,000
//  commands has few or none, and its length is what this costs.
static ssize_t s_nul_escape_offset (const char *text, size_t bytes)
{
    const char *end = text + bytes;
    const char *cursor = text;
    while (cursor + 1 < end && (cursor = memchr (cursor, '\\', (size_t)(end - cursor)))) {
        if (cursor + 1 == end)
            break;
        if (cursor[1] == 'u' && end - cursor >= 6 && memcmp (cursor + 2, "0000", 4) == 0)
            return cursor - text;
        cursor += 2; // the backslash and the escaped character
    }
    return -1;
}

//  RFC 8259 where cJSON 1.7.15 is lenient: it takes raw control bytes
//  inside strings (and before tokens), and numbers with leading zeros
//  ("05"). Returns the offset of the first such byte, or -1. Only valid
//  JSON's lexical rules matter here; cJSON judges the rest.
static ssize_t s_json_lax_offset (const char *text, size_t bytes)
{
    bool in_string = false, in_number = false;
    for (size_t index = 0; index < bytes; index++) {
        unsigned char c = (unsigned char)text[index];
        if (in_string) {
            if (c < 0x20)
                return (ssize_t)index;
            if (c == '\\')
                index++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return (ssize_t)index;
        bool number_byte = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
                           c == 'e' || c == 'E';
        if (number_byte && !in_number) {
            size_t digit = c == '-' ? index + 1 : index;
            if (digit + 1 < bytes && text[digit] == '0' && text[digit + 1] >= '0' &&
                text[digit + 1] <= '9')
                return (ssize_t)digit;
        }
        //  Letters of true/false/null never start a number: 'e' only
        //  continues one.
        in_number = number_byte && (in_number || c == '-' || (c >= '0' && c <= '9'));
        if (c == '"')
            in_string = true;
    }
    return -1;
}

cJSON *http_request_parse_json (http_request_t *self)
{
    assert (self);
    if (self->body_bytes == 0) {
        http_respond_problem (self, MHD_HTTP_BAD_REQUEST, "Bad Request",
                              "the body is empty; expected JSON", NULL);
        return NULL;
    }
    //  The length includes our terminating NUL: cJSON 1.7.15 with
    //  require_null_terminated fails a buffer that ends right after the value.
    const char *end = NULL;
    cJSON *json =
        cJSON_ParseWithLengthOpts (self->body, self->body_bytes + 1, &end, true);
    if (json && end != self->body + self->body_bytes) {
        cJSON_Delete (json); // an embedded NUL ended the text early
        json = NULL;
    }
    ssize_t lax = json ? s_json_lax_offset (self->body, self->body_bytes) : -1;
    if (lax >= 0) {
        cJSON_Delete (json);
        json = NULL;
        end = self->body + lax;
    }
    if (!json) {
        const char *error = end && end >= self->body ? end : cJSON_GetErrorPtr ();
        size_t offset =
            error && error >= self->body && error <= self->body + self->body_bytes
                ? (size_t)(error - self->body)
                : self->body_bytes;
        char detail[96];
        snprintf (detail, sizeof detail, "the body is not valid JSON (at byte %zu)",
                  offset);
        http_respond_problem (self, MHD_HTTP_BAD_REQUEST, "Bad Request", detail, NULL);
        return NULL;
    }
    //  cJSON decodes "\u0000" into a NUL that ends its C string: an account
    //  "al\u0000ice" would read as "al". No field of ours takes a NUL.
    ssize_t nul = s_nul_escape_offset (self->body, self->body_bytes);
    if (nul >= 0) {
        cJSON_Delete (json);
        char detail[96];
        snprintf (detail, sizeof detail, "a string holds \\u0000 (at byte %zd)", nul);
        cJSON *errors = NULL;
        http_problem_add_error (&errors, "body", "must not contain \\u0000 (NUL)");
        http_respond_problem (self, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, detail, errors);
        return NULL;
    }
    return json;
}

void http_request_add_header (http_request_t *self, const char *name, const char *value)
{
    assert (self);
    assert (self->state != REQUEST_ANSWERED && self->state != REQUEST_QUEUED);
    if (self->header_count == HTTP_RESPONSE_HEADERS_MAX) {
        log_error ("http: more than %d response headers, dropping %s",
                   HTTP_RESPONSE_HEADERS_MAX, name);
        return;
    }
    char *name_copy = strdup (name);
    char *value_copy = strdup (value);
    if (!name_copy || !value_copy) {
        free (name_copy);
        free (value_copy);
        return;
    }
    self->header_names[self->header_count] = name_copy;
    self->header_values[self->header_count] = value_copy;
    self->header_count++;
}

void http_request_suspend (http_request_t *self)
{
    assert (self);
    assert (self->state == REQUEST_DISPATCHED && !self->suspended);
    http_server_t *server = self->server;
    MHD_suspend_connection (self->connection);
    self->suspended = true;
    self->was_suspended = true;
    self->next = server->suspended;
    if (server->suspended)
        server->suspended->prev = self;
    server->suspended = self;
    server->suspended_count++;
}

//  ---------------------------------------------------------------------
//  Answers

static void s_resume (http_request_t *self)
{
    if (!self->suspended)
        return;
    http_suspended_remove (self);
    self->suspended = false;
    MHD_resume_connection (self->connection);
    if (self->server->in_run)
        self->server->run_again = true;
    else
        http_run_later (self->server);
}

//  Stores response as the answer; queued now by the access handler that
//  dispatched, or after the resume for a suspended request.
void http_answer (http_request_t *self, unsigned status, const char *content_type,
                  struct MHD_Response *response)
{
    assert (self->state == REQUEST_DISPATCHED);
    if (!response) {
        log_error ("http: MHD_create_response_from_buffer(%u) failed", status);
        s_resume (self); // the access handler then closes the connection
        return;
    }
    if (content_type)
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header (response, "X-Request-Id", self->request_id);
    bool retry_after = false;
    for (size_t index = 0; index < self->header_count; index++) {
        MHD_add_response_header (response, self->header_names[index],
                                 self->header_values[index]);
        retry_after |= strcasecmp (self->header_names[index], "Retry-After") == 0;
    }
    //  Every 503 says when to come back (the contract's Retry-After).
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE && !retry_after)
        MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER,
                                 HTTP_RETRY_AFTER_S);
    self->response = response;
    self->response_status = status;
    self->state = REQUEST_ANSWERED;
    s_resume (self);
}

void http_respond (http_request_t *self, unsigned status, const char *content_type,
                   const char *body, size_t bytes)
{
    assert (self);
    struct MHD_Response *response =
        MHD_create_response_from_buffer (bytes, (void *)body, MHD_RESPMEM_MUST_COPY);
    http_answer (self, status, content_type, response);
}

void http_respond_take (http_request_t *self, unsigned status, const char *content_type,
                        char *body, size_t bytes)
{
    assert (self);
    struct MHD_Response *response =
        MHD_create_response_from_buffer (bytes, body, MHD_RESPMEM_MUST_FREE);
    if (!response)
        free (body);
    http_answer (self, status, content_type, response);
}

void http_respond_json (http_request_t *self, unsigned status, const cJSON *json)
{
    assert (self);
    char *text = cJSON_PrintUnformatted (json);
    if (!text) {
        http_respond_problem (self, MHD_HTTP_INTERNAL_SERVER_ERROR,
                              "Internal Server Error", "could not print the response",
                              NULL);
        return;
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (text), text, MHD_RESPMEM_MUST_FREE);
    if (!response)
        free (text);
    http_answer (self, status, "application/json", response);
}

//  "Method Not Allowed" -> "method-not-allowed".
static void s_slug (const char *title, char *slug, size_t bytes)
{
    size_t length = 0;
    bool dash = false;
    for (const char *cursor = title; *cursor && length + 2 < bytes; cursor++) {
        char c = *cursor;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            ;
        else if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else {
            dash = length > 0;
            continue;
        }
        if (dash)
            slug[length++] = '-';
        dash = false;
        slug[length++] = c;
    }
    slug[length] = '\0';
}

cJSON *http_problem_new (unsigned status, const char *title, const char *detail,
                         cJSON *errors)
{
    if (!title)
        title = http_status_title (status);
    char type[sizeof HTTP_PROBLEM_TYPE_BASE + HTTP_PROBLEM_SLUG_BYTES_MAX];
    memcpy (type, HTTP_PROBLEM_TYPE_BASE, sizeof HTTP_PROBLEM_TYPE_BASE - 1);
    s_slug (title, type + sizeof HTTP_PROBLEM_TYPE_BASE - 1, HTTP_PROBLEM_SLUG_BYTES_MAX);
    cJSON *problem = cJSON_CreateObject ();
    cJSON_AddStringToObject (problem, "type", type);
    cJSON_AddStringToObject (problem, "title", title);
    cJSON_AddNumberToObject (problem, "status", status);
    if (detail)
        cJSON_AddStringToObject (problem, "detail", detail);
    if (errors)
        cJSON_AddItemToObject (problem, "errors", errors);
    return problem;
}

void http_respond_problem (http_request_t *self, unsigned status, const char *title,
                           const char *detail, cJSON *errors)
{
    assert (self);
    cJSON *problem = http_problem_new (status, title, detail, errors);
    char *text = cJSON_PrintUnformatted (problem);
    cJSON_Delete (problem);
    struct MHD_Response *response =
        text
            ? MHD_create_response_from_buffer (strlen (text), text, MHD_RESPMEM_MUST_FREE)
            : NULL;
    if (!response)
        free (text);
    http_answer (self, status, "application/problem+json", response);
}

void http_respond_forbidden (http_request_t *self, const char *detail, cJSON *errors)
{
    assert (self);
    self->server->auth_failures[AUTH_FAILURE_ACCOUNT]++;
    http_respond_problem (self, MHD_HTTP_FORBIDDEN, "Forbidden", detail, errors);
}

void http_problem_add_error (cJSON **errors_p, const char *field, const char *message)
{
    assert (errors_p);
    if (!*errors_p)
        *errors_p = cJSON_CreateArray ();
    if (!*errors_p)
        return;
    cJSON *error = cJSON_CreateObject ();
    cJSON_AddStringToObject (error, "field", field);
    cJSON_AddStringToObject (error, "message", message);
    cJSON_AddItemToArray (*errors_p, error);
}
