/*  http — libmicrohttpd glue that runs inside a service's zloop.

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
#include "http.h"
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

//  Slow clients: MHD's timeout counts inactivity, so a client trickling a
//  header byte now and then keeps its connection forever (slowloris), and
//  MHD 0.9.75 has no deadline for a whole request head. What bounds it is
//  a share per client address below the global limit, and a global limit
//  large enough that a few such addresses cannot take it all.
#define HTTP_CONNECTIONS_MAX_DEFAULT      16384 // all clients, if RLIMIT_NOFILE allows
#define HTTP_FDS_RESERVED                 256 // for what is not HTTP: ZeroMQ, logs, epoll
#define HTTP_CONNECTION_TIMEOUT_S_DEFAULT 30  // inactivity
//  Each refused connection is a libmicrohttpd message: a flood of them
//  must not flood the log.
#define HTTP_MHD_LOG_LINES_PER_S_MAX 10
//  MHD keeps the request line, headers, its read buffer and the response
//  head in this pool. Bodies go to our own buffer, so this only caps the
//  header size (MHD answers 431 itself beyond it). MHD 0.9.75 zeroes the
//  whole pool between keep-alive requests, so its size is paid on every
//  request: keep it no larger than headers need. 8 KiB takes headers up
//  to ~7 KiB (from ~8 KiB: 431), close to the 8 KiB most servers allow.
#define HTTP_CONNECTION_MEMORY_BYTES_MAX (8 * 1024)
#define HTTP_TIMER_MS                    500 // runs MHD's connection timeouts
#define HTTP_RUN_ROUNDS_MAX              64 // MHD_run calls per wake-up while work is pending
#define HTTP_PARAM_INLINE_BYTES          256 // decoded {name} values; longer ones take a malloc
#define HTTP_RESPONSE_HEADERS_MAX        8 // http_request_add_header per request
//  Bodies up to this size stay in the request context (a command is ~100
//  bytes); larger ones move to a heap buffer that doubles as it fills.
#define HTTP_BODY_INLINE_BYTES      512
#define HTTP_ALLOW_BYTES_MAX        128 // "GET, POST, ..." for a 405
#define HTTP_PROBLEM_TYPE_BASE      "https://ledger.example/problems/"
#define HTTP_PROBLEM_SLUG_BYTES_MAX 64
#define HTTP_EARLY_DETAIL_BYTES     160
#define HTTP_EARLY_FIELD_BYTES      64 // a query key or header name named in errors
//  A refused body up to this size is read and dropped, so a client already
//  sending it (without "Expect: 100-continue") reads the answer on a
//  connection that stays open; a larger declared body is answered at once
//  and the connection closed, as with Expect.
#define HTTP_DISCARD_BYTES_MAX      (16 * 1024 * 1024)
#define HTTP_RETRY_AFTER_S          "1" // what a 503 for the body budget asks to wait
#define HTTP_PEM_BYTES_MAX          (1024 * 1024) // a certificate chain or a key
#define HTTP_BEARER_REALM           "Bearer realm=\"ledger\""

//  Why a token was refused: the label values of ledger_http_auth_failures_total.
typedef enum {
    AUTH_FAILURE_MISSING,   // no Authorization header (401)
    AUTH_FAILURE_MALFORMED, // not "Bearer TOKEN", or given twice (401)
    AUTH_FAILURE_UNKNOWN,   // no principal has it (401)
    AUTH_FAILURE_PLAINTEXT, // over plain HTTP from beyond loopback (403)
    AUTH_FAILURE_SCOPE,     // the principal lacks the route's scope (403)
    AUTH_FAILURE_ACCOUNT,   // an account outside the principal's pattern (403)
    AUTH_FAILURE_COUNT
} auth_failure_t;

static const char *const s_auth_failure_names[AUTH_FAILURE_COUNT] = {
    "missing", "malformed", "unknown", "plaintext", "scope", "account"};

typedef enum {
    REQUEST_RECEIVING,  // headers in, body arriving
    REQUEST_DISPATCHED, // handler running or suspended, no answer yet
    REQUEST_ANSWERED,   // response stored, not yet queued
    REQUEST_QUEUED      // response handed to MHD
} request_state_t;

struct http_server {
    zloop_t *loop;
    struct MHD_Daemon *daemon;
    http_config_t config;     // routes are borrowed from the caller
    zmq_pollitem_t poll_item; // MHD's epoll fd
    bool poller_added;
    int timer_id;
    int port;
    bool in_run;               // inside MHD_run: resumes must wait for it to return
    bool run_again;            // a resume happened during MHD_run
    int run_timer_id;          // one MHD_run for the resumes of one loop turn; -1: none
    http_request_t *suspended; // doubly linked list of suspended requests
    size_t suspended_count;
    http_stream_t *streams_waiting; // streamed responses suspended for data
    bool stopping;                  // streams end at their next read
    uint64_t requests_total;
    byte request_id_base[ZUUID_LEN]; // random per server; ids are base ^ counter
    uint64_t request_id_counter;
    int64_t mhd_log_window_ms; // start of the current second of MHD messages
    unsigned mhd_log_lines;    // logged in it
    uint64_t mhd_log_suppressed;
    auth_t *auth;               // NULL: no tokens asked for
    bool tls;                   // serving HTTPS
    bool insecure;              // --insecure: tokens over plain HTTP from anywhere
    char *tls_cert, *tls_key;   // PEM text handed to MHD
    size_t body_budget_bytes;   // body_buffer_bytes_max or its default
    size_t body_buffered_bytes; // heap body capacity over all requests
    uint64_t body_budget_refusals;
    uint64_t auth_failures[AUTH_FAILURE_COUNT];
};

struct http_request {
    http_server_t *server;
    struct MHD_Connection *connection;
    const char *method;        // MHD's, valid for the request's life
    const char *path;          // MHD's, percent-decoded
    const http_route_t *route; // NULL when early_status is set
    request_state_t state;
    unsigned early_status; // 404/405/413/415 decided before dispatch; 0: none
    const char *early_field_message; // errors[0].message with early_field, static
    bool suspended;        // MHD_suspend_connection called, not yet resumed
    bool was_suspended;    // answer is queued by the call after the resume
    bool body_discarding;  // over body_bytes_max: read and drop the rest
    bool answer_at_once;   // framing error: answered on the first call (closes)
    bool has_principal;    // principal is set
    bool bearer_challenge; // a 401: add WWW-Authenticate
    unsigned long long declared_bytes; // Content-Length; 0 when none
    char *body;                        // NULL, body_inline or a malloc; NUL-terminated
    size_t body_bytes;
    size_t body_capacity;
    struct MHD_Response *response;
    unsigned response_status;
    http_request_t *prev, *next; // suspended list
    size_t param_count;
    const char *param_names[HTTP_PATH_PARAMS_MAX]; // into the route pattern
    size_t param_name_bytes[HTTP_PATH_PARAMS_MAX];
    const char *param_values[HTTP_PATH_PARAMS_MAX]; // into param_text
    char *param_text;                               // param_inline or a malloc
    size_t header_count;
    char *header_names[HTTP_RESPONSE_HEADERS_MAX];
    char *header_values[HTTP_RESPONSE_HEADERS_MAX];
    //  Buffers last: s_request_new zeroes only the fields above them.
    char request_id[HTTP_REQUEST_ID_BYTES_MAX + 1];
    char param_inline[HTTP_PARAM_INLINE_BYTES];
    char body_inline[HTTP_BODY_INLINE_BYTES];
    char early_detail[HTTP_EARLY_DETAIL_BYTES]; // "" unless set with early_status
    char early_field[HTTP_EARLY_FIELD_BYTES];   // errors[0].field of it; "": none
    auth_principal_t principal;
};

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

static void s_run (http_server_t *self);
static void s_run_later (http_server_t *self);
static void s_streams_stop (http_server_t *self);
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
static size_t s_unescape (void *cls, struct MHD_Connection *connection, char *text)
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

static void s_suspended_remove (http_request_t *request)
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

static const char *s_status_title (unsigned status)
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
                                : s_status_title (status);
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

static enum MHD_Result s_on_access (void *cls, struct MHD_Connection *connection,
                                    const char *url, const char *method,
                                    const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
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

static void s_on_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                            enum MHD_RequestTerminationCode code)
{
    http_request_t *request = *con_cls;
    if (!request)
        return;
    if (request->suspended)
        s_suspended_remove (request);
    if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK && log_enabled (LOG_DEBUG))
        log_debug ("%s %s ended early (MHD code %d)", request->method, request->path,
                   (int)code);
    s_request_destroy (&request);
    *con_cls = NULL;
}

static void s_on_mhd_log (void *cls, const char *format, va_list args)
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
static void s_run (http_server_t *self)
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
        s_run_later (self);
}

static int s_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_run ((http_server_t *)arg);
    return 0;
}

static int s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_run ((http_server_t *)arg);
    return 0;
}

static int s_on_run_later (zloop_t *loop, int timer_id, void *arg)
{
    http_server_t *self = (http_server_t *)arg;
    self->run_timer_id = -1; // a one-shot timer: zloop drops it
    s_run (self);
    return 0;
}

//  Resumes answered outside MHD_run (e.g. a burst of results from another
//  socket) share one MHD_run on the next loop turn, instead of one each.
static void s_run_later (http_server_t *self)
{
    if (self->run_timer_id >= 0)
        return;
    self->run_timer_id = zloop_timer (self->loop, 0, 1, s_on_run_later, self);
    if (self->run_timer_id < 0)
        s_run (self); // no timer: run now rather than leave the answer waiting
}

//  ---------------------------------------------------------------------
//  Server

static int s_address_parse (const http_config_t *config, struct sockaddr_storage *address,
                            unsigned *flags)
{
    memset (address, 0, sizeof *address);
    const char *text = config->address ? config->address : "127.0.0.1";
    struct sockaddr_in *ipv4 = (struct sockaddr_in *)address;
    struct sockaddr_in6 *ipv6 = (struct sockaddr_in6 *)address;
    if (inet_pton (AF_INET, text, &ipv4->sin_addr) == 1) {
        ipv4->sin_family = AF_INET;
        ipv4->sin_port = htons ((uint16_t)config->port);
        return 0;
    }
    if (inet_pton (AF_INET6, text, &ipv6->sin6_addr) == 1) {
        ipv6->sin6_family = AF_INET6;
        ipv6->sin6_port = htons ((uint16_t)config->port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    log_error ("http: '%s' is not a numeric IPv4 or IPv6 address", text);
    return -1;
}

//  The connections the descriptor limit leaves room for, at most wanted.
//  Raises the soft limit to the hard one first when it is too low (the
//  soft limit is often 1024, the hard one much more).
static unsigned s_connections_max (unsigned wanted)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) != 0) {
        log_warn ("http: getrlimit (RLIMIT_NOFILE) failed: %s", strerror (errno));
        return wanted;
    }
    rlim_t needed = (rlim_t)wanted + HTTP_FDS_RESERVED;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed &&
        limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = {.rlim_cur = limit.rlim_max, .rlim_max = limit.rlim_max};
        if (setrlimit (RLIMIT_NOFILE, &raised) == 0)
            limit = raised;
        else
            log_warn ("http: setrlimit (RLIMIT_NOFILE, %llu) failed: %s",
                      (unsigned long long)raised.rlim_cur, strerror (errno));
    }
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed)
        return wanted;
    unsigned usable = limit.rlim_cur > 2 * HTTP_FDS_RESERVED
                          ? (unsigned)(limit.rlim_cur - HTTP_FDS_RESERVED)
                          : (unsigned)(limit.rlim_cur / 2);
    log_warn ("http: %u connections at most (RLIMIT_NOFILE %llu), not %u", usable,
              (unsigned long long)limit.rlim_cur, wanted);
    return usable;
}

//  The whole of a PEM file (caller frees), or NULL (logged).
static char *s_read_pem (const char *path, const char *flag)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        log_error ("%s %s: cannot open: %s", flag, path, strerror (errno));
        return NULL;
    }
    char *text = malloc (HTTP_PEM_BYTES_MAX + 1);
    size_t bytes = text ? fread (text, 1, HTTP_PEM_BYTES_MAX + 1, file) : 0;
    bool failed = !text || ferror (file);
    fclose (file);
    if (!failed && bytes <= HTTP_PEM_BYTES_MAX) {
        text[bytes] = '\0';
        if (strstr (text, "-----BEGIN "))
            return text;
        log_error ("%s %s: not a PEM file", flag, path);
    } else
        log_error ("%s %s: cannot read it (or larger than %d bytes)", flag, path,
                   HTTP_PEM_BYTES_MAX);
    free (text);
    return NULL;
}

//  Loads the auth file and the TLS files the security config names.
static int s_security_setup (http_server_t *self, const security_config_t *security)
{
    self->insecure = security->insecure;
    if (security->auth_file) {
        for (size_t index = 0; index < self->config.route_count; index++)
            assert (self->config.routes[index].scope != AUTH_SCOPE_UNSET);
        char error[256];
        self->auth = auth_new (security->auth_file, error, sizeof error);
        if (!self->auth) {
            log_error ("--auth-file %s refused: %s", security->auth_file, error);
            return -1;
        }
        if (auth_watch (self->auth, self->loop))
            return -1;
        log_info ("bearer tokens: %zu principals from %s (SIGHUP reloads it)",
                  auth_count (self->auth), security->auth_file);
    }
    if (security->tls_cert) {
        if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES) {
            log_error ("--tls-cert: this libmicrohttpd has no TLS support");
            return -1;
        }
        self->tls_cert = s_read_pem (security->tls_cert, "--tls-cert");
        self->tls_key =
            self->tls_cert ? s_read_pem (security->tls_key, "--tls-key") : NULL;
        if (!self->tls_key)
            return -1;
        self->tls = true;
    }
    return 0;
}

//  Starts MHD in external-epoll mode (HTTPS when self->tls) and reads the
//  port it bound. Returns 0, or -1 (logged).
static int s_daemon_start (http_server_t *self, const http_config_t *config)
{
    struct sockaddr_storage address;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (self->tls)
        flags |= MHD_USE_TLS;
    if (s_address_parse (config, &address, &flags))
        return -1;
    unsigned connections_max = s_connections_max (
        config->connections_max ? config->connections_max : HTTP_CONNECTIONS_MAX_DEFAULT);
    unsigned per_ip_max = config->connections_per_ip_max
                              ? config->connections_per_ip_max
                              : HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT;
    unsigned timeout_s = config->connection_timeout_s ? config->connection_timeout_s
                                                      : HTTP_CONNECTION_TIMEOUT_S_DEFAULT;
    //  Passing LISTENING_ADDRESS_REUSE = 0 would also drop MHD's default
    //  SO_REUSEADDR (restarts then fail on TIME_WAIT), so it is only given
    //  when asked for.
    struct MHD_OptionItem reuse[] = {
        {config->reuse_port ? MHD_OPTION_LISTENING_ADDRESS_REUSE : MHD_OPTION_END, 1,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem tls[] = {
        {self->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, self->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    // clang-format off
    self->daemon = MHD_start_daemon (
        flags, (uint16_t) config->port, NULL, NULL, s_on_access, self,
        MHD_OPTION_EXTERNAL_LOGGER, s_on_mhd_log, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
        MHD_OPTION_ARRAY, reuse,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_CONNECTION_LIMIT, connections_max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_max,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) HTTP_CONNECTION_MEMORY_BYTES_MAX,
        MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self,
        MHD_OPTION_UNESCAPE_CALLBACK, s_unescape, NULL,
        MHD_OPTION_END);
    // clang-format on
    if (!self->daemon) {
        log_error ("http: MHD_start_daemon(%s:%d%s) failed: %s",
                   config->address ? config->address : "127.0.0.1", config->port,
                   self->tls ? ", HTTPS" : "",
                   errno ? strerror (errno) : "see libmicrohttpd's message before");
        return -1;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port_info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !port_info) {
        log_error ("http: MHD_get_daemon_info failed");
        return -1;
    }
    self->port = port_info->port;
    self->poll_item = (zmq_pollitem_t){.fd = info->epoll_fd, .events = ZMQ_POLLIN};
    return 0;
}

http_server_t *http_server_new (zloop_t *loop, const http_config_t *config)
{
    assert (loop);
    assert (config);
    assert (config->routes || config->route_count == 0);
    http_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = *config;
    self->timer_id = -1;
    self->run_timer_id = -1;
    zuuid_t *uuid = zuuid_new ();
    if (!uuid)
        goto failed;
    memcpy (self->request_id_base, zuuid_data (uuid), ZUUID_LEN);
    zuuid_destroy (&uuid);

    self->body_budget_bytes = config->body_buffer_bytes_max;
    if (!self->body_budget_bytes && config->security)
        self->body_budget_bytes = config->security->body_buffer_bytes_max;
    if (!self->body_budget_bytes)
        self->body_budget_bytes = HTTP_BODY_BUFFER_BYTES_MAX_DEFAULT;
    if (config->security && s_security_setup (self, config->security))
        goto failed;

    if (s_daemon_start (self, config))
        goto failed;
    if (zloop_poller (loop, &self->poll_item, s_on_readable, self)) {
        log_error ("http: zloop_poller(fd %d) failed", self->poll_item.fd);
        goto failed;
    }
    self->poller_added = true;
    self->timer_id = zloop_timer (loop, HTTP_TIMER_MS, 0, s_on_timer, self);
    if (self->timer_id < 0) {
        log_error ("http: zloop_timer failed");
        goto failed;
    }
    return self;
failed:
    http_server_destroy (&self);
    return NULL;
}

void http_server_destroy (http_server_t **self_p)
{
    assert (self_p);
    http_server_t *self = *self_p;
    if (!self)
        return;
    if (self->daemon) {
        s_streams_stop (self);
        //  MHD_stop_daemon refuses suspended connections: answer them first.
        while (self->suspended) {
            http_request_t *request = self->suspended;
            http_respond_problem (request, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "Service Unavailable", "the server is shutting down",
                                  NULL);
            assert (self->suspended != request);
        }
        s_run (self);
        if (self->run_timer_id >= 0)
            zloop_timer_end (self->loop, self->run_timer_id);
        if (self->poller_added)
            zloop_poller_end (self->loop, &self->poll_item);
        MHD_stop_daemon (self->daemon);
    }
    if (self->timer_id >= 0)
        zloop_timer_end (self->loop, self->timer_id);
    auth_destroy (&self->auth);
    free (self->tls_cert);
    if (self->tls_key)
        sodium_memzero (self->tls_key, strlen (self->tls_key));
    free (self->tls_key);
    free (self);
    *self_p = NULL;
}

int http_server_port (http_server_t *self)
{
    assert (self);
    return self->port;
}

uint64_t http_server_requests_total (http_server_t *self)
{
    assert (self);
    return self->requests_total;
}

size_t http_server_suspended_count (http_server_t *self)
{
    assert (self);
    return self->suspended_count;
}

void http_server_metrics (http_server_t *self, metrics_t *metrics)
{
    assert (self && metrics);
    metrics_counter_labeled (metrics, "ledger_http_auth_failures_total",
                             "Requests refused for their bearer token, by reason",
                             "reason", s_auth_failure_names, self->auth_failures,
                             AUTH_FAILURE_COUNT);
    if (self->auth) {
        metrics_counter (metrics, "ledger_http_auth_reloads_total",
                         "Auth file reloads asked for by SIGHUP",
                         auth_reloads (self->auth));
        metrics_counter (metrics, "ledger_http_auth_reload_failures_total",
                         "Auth file reloads refused (the old table stayed)",
                         auth_reload_failures (self->auth));
        metrics_gauge (metrics, "ledger_http_auth_principals", "Principals in the table",
                       (double)auth_count (self->auth));
    }
    metrics_gauge (metrics, "ledger_http_body_buffered_bytes",
                   "Request body bytes buffered now over all connections",
                   (double)self->body_buffered_bytes);
    metrics_counter (metrics, "ledger_http_body_budget_refusals_total",
                     "Requests answered 503 because the body budget was full",
                     self->body_budget_refusals);
}

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
    s_suspended_remove (self);
    self->suspended = false;
    MHD_resume_connection (self->connection);
    if (self->server->in_run)
        self->server->run_again = true;
    else
        s_run_later (self->server);
}

//  Stores response as the answer; queued now by the access handler that
//  dispatched, or after the resume for a suspended request.
static void s_answer (http_request_t *self, unsigned status, const char *content_type,
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
    s_answer (self, status, content_type, response);
}

void http_respond_take (http_request_t *self, unsigned status, const char *content_type,
                        char *body, size_t bytes)
{
    assert (self);
    struct MHD_Response *response =
        MHD_create_response_from_buffer (bytes, body, MHD_RESPMEM_MUST_FREE);
    if (!response)
        free (body);
    s_answer (self, status, content_type, response);
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
    s_answer (self, status, "application/json", response);
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
        title = s_status_title (status);
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
    s_answer (self, status, "application/problem+json", response);
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

//  ---------------------------------------------------------------------
//  Streaming responses
//
//  MHD calls the content reader whenever the socket can take more. When
//  the caller has nothing, the reader suspends the connection (MHD allows
//  that from a content reader whose response is not shared), and
//  http_stream_wake resumes it. Suspended connections do not time out, so
//  idle streams need the caller's own keep-alive; a stream that has data
//  but a client that does not read is subject to MHD's inactivity timeout.

//  MHD's read size hint; the reader is given what fits in the
//  connection's write buffer, which HTTP_CONNECTION_MEMORY_BYTES_MAX bounds.
#define HTTP_STREAM_BLOCK_BYTES 4096

struct http_stream {
    http_server_t *server;
    struct MHD_Connection *connection;
    http_stream_read_fn *reader;
    http_stream_free_fn *free_fn;
    void *arg;
    bool waiting;               // suspended until http_stream_wake
    http_stream_t *prev, *next; // server's streams_waiting list
};

static void s_stream_unlink (http_stream_t *self)
{
    http_server_t *server = self->server;
    if (self->prev)
        self->prev->next = self->next;
    else
        server->streams_waiting = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
    self->waiting = false;
}

static ssize_t s_stream_read (void *cls, uint64_t position, char *buffer, size_t max)
{
    http_stream_t *self = cls;
    if (self->server->stopping)
        return MHD_CONTENT_READER_END_OF_STREAM;
    ssize_t bytes = self->reader (self->arg, buffer, max);
    if (bytes < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (bytes == 0 && !self->waiting) {
        MHD_suspend_connection (self->connection);
        self->waiting = true;
        self->next = self->server->streams_waiting;
        if (self->next)
            self->next->prev = self;
        self->server->streams_waiting = self;
    }
    return bytes;
}

static void s_stream_free (void *cls)
{
    http_stream_t *self = cls;
    if (self->waiting)
        s_stream_unlink (self); // not expected: MHD frees after a resume
    self->free_fn (self->arg);
    free (self);
}

http_stream_t *http_respond_stream (http_request_t *self, unsigned status,
                                    const char *content_type, http_stream_read_fn *reader,
                                    http_stream_free_fn *free_fn, void *arg)
{
    assert (self);
    assert (reader && free_fn);
    http_stream_t *stream = calloc (1, sizeof *stream);
    struct MHD_Response *response =
        stream ? MHD_create_response_from_callback (MHD_SIZE_UNKNOWN,
                                                    HTTP_STREAM_BLOCK_BYTES,
                                                    s_stream_read, stream, s_stream_free)
               : NULL;
    if (!response) {
        free (stream);
        s_answer (self, status, content_type, NULL);
        return NULL;
    }
    *stream = (http_stream_t){.server = self->server,
                              .connection = self->connection,
                              .reader = reader,
                              .free_fn = free_fn,
                              .arg = arg};
    s_answer (self, status, content_type, response);
    return stream;
}

void http_stream_wake (http_stream_t *self)
{
    assert (self);
    if (!self->waiting)
        return;
    s_stream_unlink (self);
    MHD_resume_connection (self->connection);
    if (self->server->in_run)
        self->server->run_again = true;
    else
        s_run_later (self->server);
}

uint64_t http_server_auth_generation (http_server_t *self)
{
    assert (self);
    return self->auth ? auth_reloads (self->auth) - auth_reload_failures (self->auth) : 0;
}

//  At shutdown every waiting stream is resumed to end at its next read.
static void s_streams_stop (http_server_t *self)
{
    self->stopping = true;
    while (self->streams_waiting)
        http_stream_wake (self->streams_waiting);
}
