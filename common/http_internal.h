/*  http_internal — what the units of the HTTP glue share: the limits,
    the server and request structs, and the calls between them. No
    service includes it (they use http.h).

    http.c          a request's life: routing, set-up and body, MHD's
                    callbacks, running MHD from the zloop
    http_server.c   the server: address, limits, TLS, tokens, the daemon,
                    metrics
    http_request.c  a handler's view of its request: parameters, headers,
                    body, principal, and the answers (problem+json,
                    suspend and resume)
    http_stream.c   streamed responses (server-sent events)
*/
#ifndef HTTP_INTERNAL_H_INCLUDED
#define HTTP_INTERNAL_H_INCLUDED

#include "http.h"

#include <microhttpd.h>
#include <stdarg.h>

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
#define HTTP_DISCARD_BYTES_MAX (16 * 1024 * 1024)
#define HTTP_RETRY_AFTER_S     "1" // what a 503 for the body budget asks to wait
#define HTTP_PEM_BYTES_MAX     (1024 * 1024) // a certificate chain or a key
#define HTTP_BEARER_REALM      "Bearer realm=\"ledger\""

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
    unsigned early_status;           // 404/405/413/415 decided before dispatch; 0: none
    const char *early_field_message; // errors[0].message with early_field, static
    bool suspended;                  // MHD_suspend_connection called, not yet resumed
    bool was_suspended;              // answer is queued by the call after the resume
    bool body_discarding;            // over body_bytes_max: read and drop the rest
    bool answer_at_once;             // framing error: answered on the first call (closes)
    bool has_principal;              // principal is set
    bool bearer_challenge;           // a 401: add WWW-Authenticate
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

//  http.c: what http_server.c hands MHD and the zloop.
enum MHD_Result http_on_access (void *cls, struct MHD_Connection *connection,
                                const char *url, const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
void http_on_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                        enum MHD_RequestTerminationCode code);
void http_on_mhd_log (void *cls, const char *format, va_list args);
size_t http_on_unescape (void *cls, struct MHD_Connection *connection, char *text);
int http_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg);
int http_on_timer (zloop_t *loop, int timer_id, void *arg);
//  http.c: runs MHD until it has nothing more to do now.
void http_run (http_server_t *self);
//  http.c: one MHD_run for the resumes of one loop turn.
void http_run_later (http_server_t *self);
//  http.c: takes a suspended request off the server's list.
void http_suspended_remove (http_request_t *request);
//  http.c: the reason phrase of a status ("Not Found").
const char *http_status_title (unsigned status);
//  http_request.c: stores the answer (headers added) and resumes the
//  request; a NULL response resumes it to be closed.
void http_answer (http_request_t *self, unsigned status, const char *content_type,
                  struct MHD_Response *response);
//  http_stream.c: ends every stream at its next read (the server stops).
void http_streams_stop (http_server_t *self);

#endif
