/*  http — libmicrohttpd glue that runs inside a service's zloop.

    MHD runs in external-epoll mode: its epoll fd is one more poller in the
    service's zloop, so the service stays one thread with one loop. This
    module owns everything HTTP that is the same in every service: the
    route table (method, path pattern, handler, body limit), 404 / 405 with
    Allow / 413 / 415 answers, problem+json errors (RFC 9457), X-Request-Id
    on every response, JSON body parsing with a 400 that says where, and
    suspend/resume so a handler can answer later from another loop event.
    With a security config it also serves HTTPS (--tls-cert/--tls-key),
    checks bearer tokens against each route's scope before the handler
    runs (401 / 403, counted), refuses ambiguous framing (two
    Content-Lengths, Content-Length with Transfer-Encoding: 400 and the
    connection closed) and bounds the bodies buffered over all
    connections (503 beyond the budget).

    It does not know any service's business: handlers get a request, read
    what they need through the accessors, and answer with one of the
    http_respond_* calls, now or later.

    Responses are always queued on a later access-handler call than the
    first (libmicrohttpd 0.9.75 closes keep-alive connections otherwise).
    A body produced over time (server-sent events) goes through
    http_respond_stream: see the last section.
*/
#ifndef HTTP_H_INCLUDED
#define HTTP_H_INCLUDED

#include <czmq.h>
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "auth.h"
#include "metrics.h"
#include "security.h"

#define HTTP_PATH_PARAMS_MAX      4   // "{id}" segments in one route pattern
#define HTTP_REQUEST_ID_BYTES_MAX 128 // longer: replaced; a control byte: 400

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;

//  A handler must answer with exactly one http_respond* call, either
//  before it returns or later after http_request_suspend().
typedef void (http_handler_fn) (http_request_t *request, void *arg);

typedef struct {
    const char *method; // "GET", "POST", ...
    const char *path;   // "/accounts/{id}/events"; {name} matches one non-empty segment
    http_handler_fn *handler;
    size_t body_bytes_max; // 0: no body expected; else larger bodies get 413,
                           // and a Content-Type other than application/json gets 415
    unsigned scope;        // auth_scope_t a token needs; AUTH_SCOPE_OPEN: none. Every
                           // route of a server with an auth file must set it
    const char *query;     // the query keys it takes, space-separated ("limit after");
                           // NULL: none. Any other key is 400 naming it. A
                           // key ending in * takes every key with that prefix
} http_route_t;

typedef struct {
    const char *service; // name used in logs and in problem "type" URIs
    const char *address; // "127.0.0.1"
    int port;            // 0 picks a free port (see http_server_port)
    bool reuse_port;     // SO_REUSEPORT: several processes share one port
    const http_route_t *routes;
    size_t route_count;
    void *arg;                         // passed to every handler
    unsigned connections_max;          // 0: default; lowered to what RLIMIT_NOFILE allows
    unsigned connection_timeout_s;     // idle connection timeout; 0: default
    unsigned connections_per_ip_max;   // one client address's share; 0: default
    const security_config_t *security; // auth file, TLS, --insecure; NULL: none
    size_t body_buffer_bytes_max;      // request bodies buffered at once; 0: default
    //  Optional, called with arg around each wake-up's MHD_run rounds: the
    //  handlers run between them, so what they queue can go out together
    //  once MHD has no immediate work left.
    void (*before_run) (void *arg);
    void (*after_run) (void *arg);
} http_config_t;

//  Bodies held at once over all connections: a few 8 MiB batches. Beyond,
//  a request gets 503 with Retry-After instead of more memory.
#define HTTP_BODY_BUFFER_BYTES_MAX_DEFAULT (64 * 1024 * 1024)

//  The default share of one client address: 4x a 64-connection pool. A
//  proxy in front puts every client behind one address: raise it there.
#define HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT 256
//  Bound for a configured share: the global connection limit.
#define HTTP_CONNECTIONS_PER_IP_LIMIT 16384

//  Binds, listens and registers with loop. Returns NULL (logged) on failure,
//  e.g. when the port is taken, the auth file does not parse or a TLS
//  file cannot be read. Raises the process's RLIMIT_NOFILE soft
//  limit to its hard limit when connections_max needs more descriptors.
http_server_t *http_server_new (zloop_t *loop, const http_config_t *config);

//  Answers every suspended request with 503, stops the daemon and frees
//  it. Idempotent; nulls *self_p.
void http_server_destroy (http_server_t **self_p);

//  The bound port (useful when config.port was 0).
int http_server_port (http_server_t *self);

//  Requests answered so far, and requests currently suspended.
uint64_t http_server_requests_total (http_server_t *self);
size_t http_server_suspended_count (http_server_t *self);

//  Writes the ledger_http_* figures every service shares (auth failures
//  by reason, auth reloads, buffered body bytes) into metrics.
void http_server_metrics (http_server_t *self, metrics_t *metrics);

//  Request accessors. Returned strings are borrowed and valid until the
//  request is answered.
//  A {name} segment of the matched route pattern (percent-decoded), or NULL.
const char *http_request_param (http_request_t *self, const char *name);
//  A query-string argument (decoded), or NULL when absent.
const char *http_request_query (http_request_t *self, const char *key);
//  The query arguments whose key starts with prefix, in the order given:
//  up to max (key, value) pairs into keys and values (borrowed). Returns
//  how many there are, which may exceed max.
size_t http_request_query_prefixed (http_request_t *self, const char *prefix,
                                    const char **keys, const char **values, size_t max);
//  A request header (case-insensitive name), or NULL.
const char *http_request_header (http_request_t *self, const char *name);
//  The body (NUL-terminated for convenience) and its length; "" when none.
const char *http_request_body (http_request_t *self, size_t *bytes);
//  The X-Request-Id of this request: the client's, or a generated UUID.
const char *http_request_id (http_request_t *self);
//  The URL clients reach this server at, "http://127.0.0.1:3001" (https
//  with TLS): the bound address and port; for a wildcard address (0.0.0.0,
//  ::) the request's Host header when it is a plain host[:port]. Written
//  into buffer (truncated to size).
void http_request_base_url (http_request_t *self, char *buffer, size_t size);
//  The config's service name ("accounting").
const char *http_request_service (http_request_t *self);
//  Who presented the request's token, or NULL when the server has no
//  auth file (or the route is open). Valid until the request is answered.
const auth_principal_t *http_request_principal (http_request_t *self);

//  An integer query argument within [min, max]. Returns 0 when absent
//  (*value untouched), 1 when present and valid, -1 when present and not
//  (then {"field": key, "message": ...} is appended to *errors_p).
int http_request_query_int64 (http_request_t *self, const char *key, int64_t min,
                              int64_t max, int64_t *value, cJSON **errors_p);

//  400 "Invalid query" for the errors that http_request_query_int64 (or
//  the caller) collected. Takes ownership of errors.
void http_respond_invalid_query (http_request_t *self, cJSON *errors);

//  Parses an optional '-' and decimal digits, nothing else (no spaces, no
//  '+'), within [min, max]. Returns 0, or -1 for anything else.
int http_parse_int64 (const char *text, int64_t min, int64_t max, int64_t *value);

//  Percent-decodes text in place (paths and query values go through it)
//  and returns its new length. "%00" is left as it is: values are C
//  strings, and a decoded NUL would cut "al%00ice" short to a valid "al".
size_t http_unescape (char *text);

//  Parses the body as JSON. On failure answers 400 problem+json naming the
//  byte offset where parsing stopped, and returns NULL (the request is then
//  answered and no longer valid). Valid JSON with a "\u0000" in a string
//  gets 422 (cJSON would cut the string there). The caller owns the tree.
cJSON *http_request_parse_json (http_request_t *self);

//  Adds a header to the eventual response (name and value are copied).
void http_request_add_header (http_request_t *self, const char *name, const char *value);

//  Keeps the connection open after the handler returns; answer later with
//  http_respond_*. Suspended requests do not time out by themselves: the
//  caller needs its own timer and a cap on how many it keeps.
void http_request_suspend (http_request_t *self);

//  Answer. Bodies are copied. After the call the request is no longer
//  valid for the caller.
void http_respond (http_request_t *self, unsigned status, const char *content_type,
                   const char *body, size_t bytes);
//  Like http_respond, but takes ownership of body (malloc'd; freed once
//  sent, or at once when the answer cannot be built): no copy of large
//  bodies.
void http_respond_take (http_request_t *self, unsigned status, const char *content_type,
                        char *body, size_t bytes);
//  Prints json unformatted as application/json; json stays the caller's.
void http_respond_json (http_request_t *self, unsigned status, const cJSON *json);
//  problem+json with type, title, status, detail and, when errors is not
//  NULL, "errors": [{field, message}...]. Takes ownership of errors. A
//  NULL title stands for the status's standard reason phrase.
void http_respond_problem (http_request_t *self, unsigned status, const char *title,
                           const char *detail, cJSON *errors);

//  The problem object http_respond_problem sends, for callers that add
//  members of their own (e.g. "balance") or keep the body for later
//  (idempotent replays). Same arguments; the caller owns the result.
cJSON *http_problem_new (unsigned status, const char *title, const char *detail,
                         cJSON *errors);

//  403 problem+json for a principal that asked about an account outside
//  its pattern, counted as an auth failure (reason "account").
void http_respond_forbidden (http_request_t *self, const char *detail, cJSON *errors);

//  Helper to build the errors array for http_respond_problem: appends
//  {"field": field, "message": message} to *errors_p, creating it if NULL.
void http_problem_add_error (cJSON **errors_p, const char *field, const char *message);

//  ---------------------------------------------------------------------
//  Streaming responses (server-sent events): a body of unknown length,
//  sent chunked as the caller produces it.

typedef struct http_stream http_stream_t;

#define HTTP_STREAM_END ((ssize_t)-1) // a reader's "the body is complete"

//  Fills buffer with up to max bytes of what is ready and returns how many.
//  0: nothing is ready; the connection then waits, without timing out, until
//  http_stream_wake. HTTP_STREAM_END finishes the response.
typedef ssize_t (http_stream_read_fn) (void *arg, char *buffer, size_t max);
//  Called exactly once when the response is over (complete, client gone,
//  server stopping); the stream handle is invalid from then on.
typedef void (http_stream_free_fn) (void *arg);

//  Answers with a streamed body read through reader. Returns the stream
//  handle, valid until free_fn(arg) is called. On failure (out of memory)
//  returns NULL, the request is answered (its connection closes) and
//  free_fn is not called: arg stays the caller's.
http_stream_t *http_respond_stream (http_request_t *self, unsigned status,
                                    const char *content_type, http_stream_read_fn *reader,
                                    http_stream_free_fn *free_fn, void *arg);

//  New data is ready: a waiting stream calls its reader again soon. Safe
//  to call at any time, also from inside the reader.
void http_stream_wake (http_stream_t *stream);

//  A stream outlives the check of its token: the number of auth file
//  reloads that took effect (0 without an auth file) tells its owner
//  when to end streams so that they reconnect and are checked again.
uint64_t http_server_auth_generation (http_server_t *self);

#endif
