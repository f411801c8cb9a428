/*  http — libmicrohttpd glue that runs inside a service's zloop. This
    file is a request's life (routing, set-up and body, MHD's callbacks,
    running MHD); the server is http_server.c, a handler's accessors and
    answers http_request.c, streamed responses http_stream.c, and
    http_internal.h what they share.

    libmicrohttpd (MHD) runs in external-epoll mode with no threads of its
    own: its epoll fd is a poller in the caller's zloop, and MHD_run does the
    work when that fd is readable, plus a periodic timer for connection
    timeouts. This module owns the route table, the standard error answers
    (404, 405 + Allow, 413, 415, 400 with the offset where JSON parsing
    stopped), problem+json, X-Request-Id and suspend/resume.

    One request = one context, allocated on MHD's first access-handler call
    and freed in the request-completed callback. The access handler runs in
    three phases: the first call only sets up the context (queueing a
    response then would make MHD 0.9.75 close the keep-alive connection),
    calls with upload data append to our own body buffer, and the final
    call (upload_data_size == 0) dispatches to the route's handler and
    queues the answer. A suspended request is resumed by its answer; MHD then
    calls the access handler once more and that call queues the stored
    response.

    Checks that need only the headers run on the first call: framing
    (RFC 9112 6.3: two Content-Lengths that differ, or one with a
    Transfer-Encoding, make the body's end ambiguous: answered 400 on that
    first call, which makes MHD close the connection, and "Connection:
    close" says so; nothing after the head is read as a request), then the
    route's scope against the bearer token, then the body headers. A
    refused token is answered like a 413: the body is read and dropped.

    Bodies beyond the inline buffer count against one budget for the
    whole server (body_buffer_bytes_max); a body that would take it over
    is dropped and answered 503 with Retry-After, so many slow uploads
    cannot take the process's memory.

    Paths are matched after MHD has percent-decoded them, so "{id}" values
    arrive decoded; a "%2F" in a segment becomes a separator and the path
    then matches no route (ids in this project never contain '/').
*/
#include "http_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sodium.h>
#include <sys/socket.h>

//  The request headers this module reads itself, found in one pass over
//  MHD's list (a lookup each walks the list with strcasecmp). The first
//  of repeated headers counts, as with MHD_lookup_connection_value.
typedef struct {
    const char *request_id;
    const char *content_length;
    const char *transfer_encoding;
    const char *content_type;
    const char *authorization;
    const char *expect;
    const char *control_header;  // first id header holding a control byte
    bool content_lengths_differ; // a second Content-Length with another value
    unsigned transfer_encodings;
    unsigned authorizations;
    unsigned idempotency_keys;
} known_headers_t;

static void s_body_release (http_request_t *self);

//  ---------------------------------------------------------------------
//  Routing

static bool s_method_matches (const char *route_method, const char *method)
{
    //  HEAD is answered by GET routes; MHD drops the body.
    return strcmp (route_method, method) == 0 ||
           (strcmp (method, "HEAD") == 0 && strcmp (route_method, "GET") == 0);
}

//  Matches path against pattern segment by segment. On a match, fills the
//  request's parameter names and (start, length) spans into path.
static bool s_path_matches (http_request_t *request, const char *pattern,
                            const char *path, const char *starts[], size_t lengths[])
{
    size_t count = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return false;
        pattern++;
        path++;
        const char *pattern_end = strchrnul (pattern, '/');
        const char *path_end = strchrnul (path, '/');
        size_t pattern_bytes = (size_t)(pattern_end - pattern);
        size_t path_bytes = (size_t)(path_end - path);
        if (pattern_bytes >= 2 && pattern[0] == '{' && pattern_end[-1] == '}') {
            if (path_bytes == 0 || count == HTTP_PATH_PARAMS_MAX)
                return false;
            request->param_names[count] = pattern + 1;
            request->param_name_bytes[count] = pattern_bytes - 2;
            starts[count] = path;
            lengths[count] = path_bytes;
            count++;
        } else if (pattern_bytes != path_bytes || memcmp (pattern, path, path_bytes) != 0)
            return false;
        pattern = pattern_end;
        path = path_end;
    }
    if (*pattern || *path)
        return false;
    request->param_count = count;
    return true;
}

//  Copies matched {name} values into the context, NUL-terminated.
static int s_store_params (http_request_t *request, const char *starts[],
                           size_t lengths[])
{
    size_t total = 0;
    for (size_t index = 0; index < request->param_count; index++)
        total += lengths[index] + 1;
    request->param_text = request->param_inline;
    if (total > sizeof request->param_inline) {
        request->param_text = malloc (total);
        if (!request->param_text)
            return -1;
    }
    char *cursor = request->param_text;
    for (size_t index = 0; index < request->param_count; index++) {
        memcpy (cursor, starts[index], lengths[index]);
        cursor[lengths[index]] = '\0';
        request->param_values[index] = cursor;
        cursor += lengths[index] + 1;
    }
    return 0;
}

static int s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t http_unescape (char *text)
{
    char *out = text;
    for (const char *in = text; *in; in++) {
        int high = *in == '%' ? s_hex_digit (in[1]) : -1;
        int low = high >= 0 ? s_hex_digit (in[2]) : -1;
        if (low >= 0 && (high | low)) {
            *out++ = (char)(high << 4 | low);
            in += 2;
        } else
            *out++ = *in;
    }
    *out = '\0';
    return (size_t)(out - text);
}

//  MHD's unescaper would decode "%00": see http_unescape.
size_t http_on_unescape (void *cls, struct MHD_Connection *connection, char *text)
{
    return http_unescape (text);
}

//  Finds the route for method + path. Sets early_status to 404 or 405
//  (with the Allow header) when there is none.
static void s_route (http_request_t *request)
{
    http_server_t *server = request->server;
    const char *starts[HTTP_PATH_PARAMS_MAX];
    size_t lengths[HTTP_PATH_PARAMS_MAX];
    char allow[HTTP_ALLOW_BYTES_MAX] = "";
    size_t allow_bytes = 0;
    for (size_t index = 0; index < server->config.route_count; index++) {
        const http_route_t *route = &server->config.routes[index];
        if (!s_path_matches (request, route->path, request->path, starts, lengths))
            continue;
        if (s_method_matches (route->method, request->method)) {
            request->route = route;
            if (s_store_params (request, starts, lengths))
                request->early_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }
        if (!strstr (allow, route->method) && allow_bytes < sizeof allow) {
            int written = snprintf (allow + allow_bytes, sizeof allow - allow_bytes,
                                    "%s%s", allow_bytes ? ", " : "", route->method);
            if (written > 0)
                allow_bytes += (size_t)written;
        }
    }
    request->param_count = 0;
    if (allow_bytes) {
        request->early_status = MHD_HTTP_METHOD_NOT_ALLOWED;
        http_request_add_header (request, MHD_HTTP_HEADER_ALLOW, allow);
    } else
        request->early_status = MHD_HTTP_NOT_FOUND;
}

//  ---------------------------------------------------------------------
//  Request set-up and body

static bool s_request_id_is_valid (const char *id)
{
    size_t bytes = 0;
    for (; id[bytes]; bytes++) {
        if (bytes == HTTP_REQUEST_ID_BYTES_MAX || id[bytes] < 0x20 || id[bytes] > 0x7e)
            return false;
    }
    return bytes > 0;
}

//  Generated ids are one random zuuid per process with a counter folded
//  into its low bytes: as unique as a fresh UUID, without a getrandom()
//  and an allocation per request.
static void s_generate_request_id (http_server_t *server, char *buffer)
{
    static const char hex[] = "0123456789abcdef";
    byte data[ZUUID_LEN];
    memcpy (data, server->request_id_base, ZUUID_LEN);
    uint64_t counter = ++server->request_id_counter;
    for (int index = 0; index < 8; index++)
        data[ZUUID_LEN - 1 - index] ^= (byte)(counter >> (8 * index));
    char *cursor = buffer;
    for (int index = 0; index < ZUUID_LEN; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10)
            *cursor++ = '-';
        *cursor++ = hex[data[index] >> 4];
        *cursor++ = hex[data[index] & 0xf];
    }
    *cursor = '\0';
}

static bool s_name_is (const char *key, size_t key_bytes, const char *name)
{
    size_t name_bytes = strlen (name);
    return key_bytes == name_bytes && strncasecmp (key, name, name_bytes) == 0;
}

//  MHD 0.9.75 passes control bytes in header values through; an id that
//  ends up in a log line or an event must not carry them.
static bool s_has_control_byte (const char *value, size_t bytes)
{
    for (size_t index = 0; index < bytes; index++) {
        unsigned char c = (unsigned char)value[index];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

static enum MHD_Result s_on_header (void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_bytes, const char *value,
                                    size_t value_bytes)
{
    known_headers_t *known = (known_headers_t *)cls;
    const char **found = NULL;
    static const char *const id_headers[] = {"X-Request-Id", "X-Correlation-Id",
                                             "Idempotency-Key"};
    for (size_t index = 0; index < 3 && !known->control_header; index++)
        if (s_name_is (key, key_bytes, id_headers[index]) &&
            s_has_control_byte (value, value_bytes))
            known->control_header = id_headers[index];
    if (s_name_is (key, key_bytes, "X-Request-Id"))
        found = &known->request_id;
    else if (s_name_is (key, key_bytes, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        found = &known->content_length;
        if (*found && strcmp (*found, value) != 0)
            known->content_lengths_differ = true;
    } else if (s_name_is (key, key_bytes, MHD_HTTP_HEADER_AUTHORIZATION)) {
        found = &known->authorization;
        known->authorizations++;
    } else if (s_name_is (key, key_bytes, "Idempotency-Key"))
        known->idempotency_keys++;
    else if (s_name_is (key, key_bytes, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        found = &known->transfer_encoding;
        known->transfer_encodings++;
    } else if (s_name_is (key, key_bytes, MHD_HTTP_HEADER_CONTENT_TYPE))
        found = &known->content_type;
    else if (s_name_is (key, key_bytes, MHD_HTTP_HEADER_EXPECT))
        found = &known->expect;
    if (found && !*found)
        *found = value;
    return MHD_YES;
}

static bool s_content_type_is_json (const char *content_type)
{
    static const char json[] = "application/json";
    if (!content_type || strncasecmp (content_type, json, sizeof json - 1) != 0)
        return false;
    char next = content_type[sizeof json - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

static void s_early (http_request_t *request, unsigned status, const char *detail)
{
    request->early_status = status;
    snprintf (request->early_detail, sizeof request->early_detail, "%s", detail);
}

//  An early 400 that names the query key or header at fault.
static void s_early_field (http_request_t *request, const char *field, const char *detail,
                           const char *message)
{
    s_early (request, MHD_HTTP_BAD_REQUEST, detail);
    snprintf (request->early_field, sizeof request->early_field, "%s", field);
    request->early_field_message = message;
}

//  A refusal decided from the headers alone, answered before the body is
//  read: no "100 Continue" for a body that would be dropped, and no
//  reading 10^12 declared bytes. MHD then closes the connection.
static void s_answer_at_once (http_request_t *request)
{
    request->answer_at_once = true;
    http_request_add_header (request, MHD_HTTP_HEADER_CONNECTION, "close");
}

//  Refuses the token (401 or 403 by reason), counted.
static void s_deny (http_request_t *request, auth_failure_t reason, const char *detail)
{
    unsigned status =
        reason <= AUTH_FAILURE_UNKNOWN ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_FORBIDDEN;
    request->server->auth_failures[reason]++;
    request->bearer_challenge = status == MHD_HTTP_UNAUTHORIZED;
    s_early (request, status, detail);
}

//  Checks what the headers tell about the body: Content-Type (415), a
//  declared Content-Length over the route's limit (413) or over what is
//  left of the body budget (503).
//  A Content-Type is judged before the body's emptiness: an empty
//  form-encoded body is 415, not "empty".
static void s_check_body_headers (http_request_t *request, const known_headers_t *known)
{
    const char *length_text = known->content_length;
    unsigned long long length = length_text ? strtoull (length_text, NULL, 10) : 0;
    bool has_body = length > 0 || known->transfer_encoding != NULL;
    http_server_t *server = request->server;
    size_t max = request->route->body_bytes_max;
    if (max > 0 && (has_body || known->content_type) &&
        !s_content_type_is_json (known->content_type))
        request->early_status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    else if (!has_body)
        return;
    else if (length > max)
        request->early_status = MHD_HTTP_CONTENT_TOO_LARGE;
    else if (length > sizeof request->body_inline &&
             length + 1 > server->body_budget_bytes - server->body_buffered_bytes) {
        server->body_budget_refusals++;
        s_early (request, MHD_HTTP_SERVICE_UNAVAILABLE,
                 "too many request bodies are being received; retry later");
    } else
        request->declared_bytes = length;
    if (request->early_status && length > HTTP_DISCARD_BYTES_MAX)
        s_answer_at_once (request);
}

//  RFC 9112 6.3: a body whose end two parties could read differently.
//  A transfer coding other than chunked alone is one MHD 0.9.75 would
//  read to the end of the connection (6.1: 501). Also a second
//  Idempotency-Key, which no one could tell from the first.
static void s_check_framing (http_request_t *request, const known_headers_t *known)
{
    const char *coding = known->transfer_encoding;
    if (known->content_lengths_differ)
        s_early (request, MHD_HTTP_BAD_REQUEST, "two different Content-Length headers");
    else if (known->content_length && coding)
        s_early (request, MHD_HTTP_BAD_REQUEST,
                 "Content-Length together with Transfer-Encoding");
    else if (known->transfer_encodings > 1)
        s_early (request, MHD_HTTP_BAD_REQUEST, "more than one Transfer-Encoding header");
    else if (coding && strcasecmp (coding, "chunked") != 0)
        s_early (request, MHD_HTTP_NOT_IMPLEMENTED,
                 "only Transfer-Encoding: chunked is supported");
    else if (known->idempotency_keys > 1) {
        s_early (request, MHD_HTTP_BAD_REQUEST, "more than one Idempotency-Key header");
        return;
    } else
        return;
    s_answer_at_once (request);
}

static bool s_client_is_loopback (struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *address = info ? info->client_addr : NULL;
    if (!address)
        return false;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *ipv4 = (const struct sockaddr_in *)address;
        return (ntohl (ipv4->sin_addr.s_addr) >> 24) == 127;
    }
    if (address->sa_family == AF_INET6) {
        const struct in6_addr *ipv6 = &((const struct sockaddr_in6 *)address)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK (ipv6) ||
               (IN6_IS_ADDR_V4MAPPED (ipv6) && ipv6->s6_addr[12] == 127);
    }
    return false;
}

//  RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
static bool s_token_is_valid (const char *token, size_t bytes)
{
    if (bytes == 0 || bytes > AUTH_TOKEN_BYTES_MAX)
        return false;
    size_t index = 0;
    for (; index < bytes && token[index] != '='; index++) {
        char c = token[index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
              c == '+' || c == '/'))
            return false;
    }
    if (index == 0)
        return false;
    for (; index < bytes; index++)
        if (token[index] != '=')
            return false;
    return true;
}

//  The route's scope against the bearer token, when the server has an
//  auth file. Sets early_status (401 / 403) when refused.
static void s_authorize (http_request_t *request, const known_headers_t *known)
{
    http_server_t *server = request->server;
    unsigned scope = request->route->scope;
    if (!server->auth || scope == AUTH_SCOPE_OPEN)
        return;
    const char *value = known->authorization;
    if (!value) {
        s_deny (request, AUTH_FAILURE_MISSING, "a bearer token is needed");
        return;
    }
    bool bearer = strncasecmp (value, "Bearer ", 7) == 0;
    const char *token = bearer ? value + 7 : "";
    size_t token_bytes = strlen (token);
    if (known->authorizations > 1 || !bearer || !s_token_is_valid (token, token_bytes)) {
        s_deny (request, AUTH_FAILURE_MALFORMED,
                "the Authorization header must be one \"Bearer TOKEN\"");
        return;
    }
    if (!server->tls && !server->insecure &&
        !s_client_is_loopback (request->connection)) {
        s_deny (request, AUTH_FAILURE_PLAINTEXT,
                "bearer tokens are only accepted over HTTPS");
        return;
    }
    const auth_principal_t *principal = auth_lookup (server->auth, token, token_bytes);
    if (!principal) {
        s_deny (request, AUTH_FAILURE_UNKNOWN, "the token is not known");
        return;
    }
    request->principal = *principal;
    request->has_principal = true;
    if (!auth_principal_allows (principal, scope)) {
        char detail[HTTP_EARLY_DETAIL_BYTES];
        snprintf (detail, sizeof detail, "%s may not %s %s", principal->name,
                  request->method, request->route->path);
        s_deny (request, AUTH_FAILURE_SCOPE, detail);
    }
}

//  Is key one of the space-separated words of allowed?
static bool s_query_key_allowed (const char *allowed, const char *key)
{
    size_t key_bytes = strlen (key);
    while (allowed && *allowed) {
        const char *end = strchrnul (allowed, ' ');
        size_t bytes = (size_t)(end - allowed);
        if (bytes == key_bytes && memcmp (allowed, key, key_bytes) == 0)
            return true;
        //  "metadata.*": any key with that prefix and something after it.
        if (bytes > 1 && allowed[bytes - 1] == '*' && key_bytes >= bytes &&
            memcmp (allowed, key, bytes - 1) == 0)
            return true;
        allowed = *end ? end + 1 : end;
    }
    return false;
}

static const char s_unknown_query[] = "unknown query parameter";

static enum MHD_Result s_on_query_key (void *cls, enum MHD_ValueKind kind,
                                       const char *key, const char *value)
{
    http_request_t *request = (http_request_t *)cls;
    if (s_query_key_allowed (request->route->query, key))
        return MHD_YES;
    char detail[HTTP_EARLY_DETAIL_BYTES];
    snprintf (detail, sizeof detail, "unknown query parameter \"%.*s\"",
              HTTP_EARLY_FIELD_BYTES - 1, key);
    s_early_field (request, key, detail, s_unknown_query);
    return MHD_NO; // the first unknown key is enough
}

//  A query key the route does not take is a client's mistake (a typo'd
//  "after_seq" would otherwise silently return everything): 400 naming it.
static void s_check_query (http_request_t *request)
{
    MHD_get_connection_values (request->connection, MHD_GET_ARGUMENT_KIND, s_on_query_key,
                               request);
}

static http_request_t *s_request_new (http_server_t *server,
                                      struct MHD_Connection *connection, const char *url,
                                      const char *method)
{
    http_request_t *self = malloc (sizeof *self);
    if (!self)
        return NULL;
    //  Only the head of the struct needs zeroing; the inline buffers are
    //  written before they are read.
    memset (self, 0, offsetof (http_request_t, request_id));
    self->server = server;
    self->connection = connection;
    self->method = method;
    self->path = url;
    self->param_text = self->param_inline;
    self->early_detail[0] = '\0';
    self->early_field[0] = '\0';
    known_headers_t known = {0};
    MHD_get_connection_values_n (connection, MHD_HEADER_KIND, s_on_header, &known);
    if (known.request_id && s_request_id_is_valid (known.request_id))
        snprintf (self->request_id, sizeof self->request_id, "%s", known.request_id);
    else
        s_generate_request_id (server, self->request_id);
    s_check_framing (self, &known);
    if (!self->early_status && known.control_header)
        s_early_field (self, known.control_header, "a header holds a control character",
                       "must not contain control characters");
    if (!self->early_status)
        s_route (self);
    if (!self->early_status)
        s_check_query (self);
    if (!self->early_status)
        s_authorize (self, &known);
    if (!self->early_status)
        s_check_body_headers (self, &known);
    //  A refusal with a body announced by "Expect: 100-continue": answered
    //  before the client sends it.
    if (self->early_status && !self->answer_at_once && known.expect)
        s_answer_at_once (self);
    self->body_discarding = self->early_status != 0;
    return self;
}

static void s_request_destroy (http_request_t **self_p)
{
    http_request_t *self = *self_p;
    if (!self)
        return;
    if (self->response)
        MHD_destroy_response (self->response);
    for (size_t index = 0; index < self->header_count; index++) {
        free (self->header_names[index]);
        free (self->header_values[index]);
    }
    if (self->param_text != self->param_inline)
        free (self->param_text);
    s_body_release (self);
    free (self);
    *self_p = NULL;
}

//  Moves the body to a heap buffer of at least needed bytes: the declared
//  length at once when there is one, else doubling up to the route's
//  limit. Returns -1 for no memory, -2 when the body budget has no room.
static int s_body_grow (http_request_t *self, size_t needed)
{
    size_t max = self->route->body_bytes_max + 1;
    size_t capacity = self->body_capacity;
    if (self->declared_bytes + 1 >= needed && self->declared_bytes < max)
        capacity = (size_t)self->declared_bytes + 1;
    while (capacity < needed)
        capacity = capacity * 2 < max ? capacity * 2 : max;
    bool inline_body = self->body == self->body_inline;
    size_t held = inline_body ? 0 : self->body_capacity;
    http_server_t *server = self->server;
    if (capacity - held > server->body_budget_bytes - server->body_buffered_bytes)
        return -2;
    char *body = (char *)realloc (inline_body ? NULL : self->body, capacity);
    if (!body)
        return -1;
    if (inline_body)
        memcpy (body, self->body_inline, self->body_bytes);
    server->body_buffered_bytes += capacity - held;
    self->body = body;
    self->body_capacity = capacity;
    return 0;
}

//  Frees a heap body and gives its bytes back to the budget.
static void s_body_release (http_request_t *self)
{
    if (self->body && self->body != self->body_inline) {
        free (self->body);
        self->server->body_buffered_bytes -= self->body_capacity;
    }
    self->body = NULL;
    self->body_bytes = self->body_capacity = 0;
}

//  Appends upload data, or drops it once the request is over its limit.
static void s_body_append (http_request_t *self, const char *data, size_t bytes)
{
    if (self->body_discarding)
        return;
    size_t max = self->route->body_bytes_max;
    if (bytes > max - self->body_bytes) {
        self->early_status = MHD_HTTP_CONTENT_TOO_LARGE;
        self->body_discarding = true;
        return;
    }
    size_t needed = self->body_bytes + bytes + 1;
    if (!self->body) {
        self->body = self->body_inline;
        self->body_capacity = sizeof self->body_inline;
    }
    int grown = needed > self->body_capacity ? s_body_grow (self, needed) : 0;
    if (grown) {
        if (grown == -2) {
            self->server->body_budget_refusals++;
            s_early (self, MHD_HTTP_SERVICE_UNAVAILABLE,
                     "too many request bodies are being received; retry later");
        } else
            self->early_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        self->body_discarding = true;
        s_body_release (self);
        return;
    }
    memcpy (self->body + self->body_bytes, data, bytes);
    self->body_bytes += bytes;
    self->body[self->body_bytes] = '\0';
}

//  ---------------------------------------------------------------------
//  MHD callbacks

void http_suspended_remove (http_request_t *request)
{
    http_server_t *server = request->server;
    if (request->prev)
        request->prev->next = request->next;
    else
        server->suspended = request->next;
    if (request->next)
        request->next->prev = request->prev;
    request->prev = request->next = NULL;
    server->suspended_count--;
}

static enum MHD_Result s_queue (http_request_t *request)
{
    assert (request->state == REQUEST_ANSWERED);
    enum MHD_Result result = MHD_queue_response (
        request->connection, request->response_status, request->response);
    MHD_destroy_response (request->response);
    request->response = NULL;
    request->state = REQUEST_QUEUED;
    request->server->requests_total++;
    return result;
}

const char *http_status_title (unsigned status)
{
    switch (status) {
    case MHD_HTTP_NOT_FOUND:
        return "Not Found";
    case MHD_HTTP_METHOD_NOT_ALLOWED:
        return "Method Not Allowed";
    case MHD_HTTP_CONTENT_TOO_LARGE:
        return "Payload Too Large";
    case MHD_HTTP_UNSUPPORTED_MEDIA_TYPE:
        return "Unsupported Media Type";
    case MHD_HTTP_BAD_REQUEST:
        return "Bad Request";
    case MHD_HTTP_CONFLICT:
        return "Conflict";
    case MHD_HTTP_UNPROCESSABLE_CONTENT:
        return "Unprocessable Content";
    case MHD_HTTP_SERVICE_UNAVAILABLE:
        return "Service Unavailable";
    case MHD_HTTP_UNAUTHORIZED:
        return "Unauthorized";
    case MHD_HTTP_FORBIDDEN:
        return "Forbidden";
    case MHD_HTTP_NOT_IMPLEMENTED:
        return "Not Implemented";
    default:
        return "Internal Server Error";
    }
}

static enum MHD_Result s_dispatch (http_request_t *request)
{
    request->state = REQUEST_DISPATCHED;
    if (request->early_status) {
        unsigned status = request->early_status;
        char detail[HTTP_EARLY_DETAIL_BYTES];
        if (request->bearer_challenge)
            http_request_add_header (request, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                     HTTP_BEARER_REALM);
        if (request->early_detail[0])
            snprintf (detail, sizeof detail, "%s", request->early_detail);
        else if (status == MHD_HTTP_CONTENT_TOO_LARGE)
            snprintf (detail, sizeof detail, "the body exceeds %zu bytes",
                      request->route->body_bytes_max);
        else if (status == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE)
            snprintf (detail, sizeof detail, "the body must be application/json");
        else
            snprintf (detail, sizeof detail, "%s %s", request->method, request->path);
        cJSON *errors = NULL;
        if (request->early_field[0])
            http_problem_add_error (&errors, request->early_field,
                                    request->early_field_message);
        //  An unknown key is an invalid query, as a bad value is.
        const char *title = request->early_field_message == s_unknown_query
                                ? "Invalid query"
                                : http_status_title (status);
        http_respond_problem (request, status, title, detail, errors);
    } else {
        request->route->handler (request, request->server->config.arg);
        if (request->state == REQUEST_DISPATCHED && !request->suspended) {
            log_error ("handler for %s %s returned without answering", request->method,
                       request->route->path);
            http_respond_problem (request, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "Internal Server Error", "the request was not answered",
                                  NULL);
        }
    }
    if (request->was_suspended)
        return MHD_YES; // answered by the call after the resume
    if (request->state == REQUEST_ANSWERED)
        return s_queue (request);
    return MHD_NO; // no response could be built: let MHD close the connection
}

enum MHD_Result http_on_access (void *cls, struct MHD_Connection *connection,
                                const char *url, const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    http_server_t *server = cls;
    http_request_t *request = *con_cls;
    if (!request) {
        request = s_request_new (server, connection, url, method);
        *con_cls = request;
        if (request && request->answer_at_once)
            return s_dispatch (request); // MHD then closes: nothing more is read
        return request ? MHD_YES : MHD_NO;
    }
    if (request->state == REQUEST_RECEIVING) {
        if (*upload_data_size > 0) {
            s_body_append (request, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        return s_dispatch (request);
    }
    //  Called again after a resume: queue the answer stored meanwhile.
    if (request->state == REQUEST_ANSWERED)
        return s_queue (request);
    //  Resumed without a response (it could not be built): close.
    return request->suspended ? MHD_YES : MHD_NO;
}

void http_on_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                        enum MHD_RequestTerminationCode code)
{
    http_request_t *request = *con_cls;
    if (!request)
        return;
    if (request->suspended)
        http_suspended_remove (request);
    if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK && log_enabled (LOG_DEBUG))
        log_debug ("%s %s ended early (MHD code %d)", request->method, request->path,
                   (int)code);
    s_request_destroy (&request);
    *con_cls = NULL;
}

void http_on_mhd_log (void *cls, const char *format, va_list args)
{
    http_server_t *self = cls;
    int64_t now_ms = zclock_mono ();
    if (now_ms - self->mhd_log_window_ms >= 1000) {
        if (self->mhd_log_suppressed)
            log_warn ("libmicrohttpd: %" PRIu64 " more messages not logged",
                      self->mhd_log_suppressed);
        self->mhd_log_window_ms = now_ms;
        self->mhd_log_lines = 0;
        self->mhd_log_suppressed = 0;
    }
    if (self->mhd_log_lines == HTTP_MHD_LOG_LINES_PER_S_MAX) {
        self->mhd_log_suppressed++;
        return;
    }
    self->mhd_log_lines++;
    char message[256];
    vsnprintf (message, sizeof message, format, args);
    size_t bytes = strlen (message);
    while (bytes && message[bytes - 1] == '\n')
        message[--bytes] = '\0';
    log_warn ("libmicrohttpd: %s", message);
}

//  ---------------------------------------------------------------------
//  Running MHD from the zloop

//  Runs MHD until it has no immediate work. A resume inside an MHD callback
//  only sets run_again, because MHD_run must not recurse.
void http_run (http_server_t *self)
{
    if (self->in_run) {
        self->run_again = true;
        return;
    }
    self->in_run = true;
    if (self->config.before_run)
        self->config.before_run (self->config.arg);
    bool more = false;
    for (int round = 0; round < HTTP_RUN_ROUNDS_MAX; round++) {
        self->run_again = false;
        MHD_run (self->daemon);
        MHD_UNSIGNED_LONG_LONG timeout_ms = 1;
        bool pending =
            MHD_get_timeout (self->daemon, &timeout_ms) == MHD_YES && timeout_ms == 0;
        more = self->run_again || pending;
        if (!more)
            break;
    }
    self->in_run = false;
    if (self->config.after_run)
        self->config.after_run (self->config.arg);
    //  Still work after the last round (a large body already in the socket
    //  buffer: MHD reads a pool's worth per round, and no new edge on its
    //  epoll fd will come for bytes already there): the next loop turn
    //  goes on, instead of the next HTTP_TIMER_MS tick.
    if (more)
        http_run_later (self);
}

int http_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    http_run ((http_server_t *)arg);
    return 0;
}

int http_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    http_run ((http_server_t *)arg);
    return 0;
}

static int s_on_run_later (zloop_t *loop, int timer_id, void *arg)
{
    http_server_t *self = (http_server_t *)arg;
    self->run_timer_id = -1; // a one-shot timer: zloop drops it
    http_run (self);
    return 0;
}

//  Resumes answered outside MHD_run (e.g. a burst of results from another
//  socket) share one MHD_run on the next loop turn, instead of one each.
void http_run_later (http_server_t *self)
{
    if (self->run_timer_id >= 0)
        return;
    self->run_timer_id = zloop_timer (self->loop, 0, 1, s_on_run_later, self);
    if (self->run_timer_id < 0)
        http_run (self); // no timer: run now rather than leave the answer waiting
}
