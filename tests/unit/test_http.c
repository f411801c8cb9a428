/*  test_http — claims about the HTTP glue, checked over real sockets.

    A forked child runs a zloop with an http_server and a few routes; the
    parent is a plain blocking-socket client with receive timeouts, so a
    hung server fails a test instead of hanging it. At the end the parent
    sends SIGTERM and the child must exit 0 after answering its suspended
    request with 503.

    `test_http --serve PORT` only runs the server (for wrk).
*/
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_RECEIVE_TIMEOUT_S  10 // a response slower than this is a hang
#define TEST_RESPONSE_BYTES_MAX (256 * 1024)
#define TEST_BODY_BYTES_MAX     (64 * 1024)
#define TEST_TAKEN_BYTES        (128 * 1024) // a body handed over, not copied
#define TEST_SLOW_DELAY_MS      50
#define TEST_POLL_ATTEMPTS_MAX  200 // polls of /stats while waiting for a suspension
//  Connections one client address may hold: above what the other tests
//  keep open at once, including closed ones the server has yet to notice.
#define TEST_PER_IP_CONNECTIONS_MAX 16
#define TEST_CHILD_EXIT_WAIT_MS     10000
#define TEST_IDLE_TIMEOUT_S                                                              \
    3 // well under the receive timeout, well over any pause
      // between two requests of one test

//  ---------------------------------------------------------------------
//  Server side (child)

typedef struct {
    zloop_t *loop;
    http_server_t *server;
    http_request_t *waiting; // parked by GET /wait, answered by GET /wake
} server_state_t;

static void s_get_thing (http_request_t *request, void *arg)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "id", http_request_param (request, "id"));
    const char *color = http_request_query (request, "color");
    if (color)
        cJSON_AddStringToObject (json, "color", color);
    http_request_add_header (request, "X-Test", "yes");
    http_respond_json (request, 200, json);
    cJSON_Delete (json);
}

static void s_post_thing (http_request_t *request, void *arg)
{
    cJSON *json = http_request_parse_json (request);
    if (!json)
        return;
    http_respond_json (request, 201, json);
    cJSON_Delete (json);
}

static int s_on_slow_timer (zloop_t *loop, int timer_id, void *arg)
{
    http_respond (arg, 200, "text/plain", "slow", 4);
    return 0;
}

static void s_get_slow (http_request_t *request, void *arg)
{
    server_state_t *state = arg;
    http_request_suspend (request);
    if (http_request_query (request, "now"))
        http_respond (request, 200, "text/plain", "now", 3); // changed its mind
    else
        zloop_timer (state->loop, TEST_SLOW_DELAY_MS, 1, s_on_slow_timer, request);
}

//  Never answered by the handler: only the server's shutdown answers it.
static void s_get_never (http_request_t *request, void *arg)
{
    http_request_suspend (request);
}

static void s_get_wait (http_request_t *request, void *arg)
{
    server_state_t *state = arg;
    if (state->waiting) {
        http_respond_problem (request, 409, "Conflict", "someone is waiting", NULL);
        return;
    }
    http_request_suspend (request);
    state->waiting = request;
}

//  Answers the parked request from inside another request's handler, that
//  is from inside MHD_run.
static void s_get_wake (http_request_t *request, void *arg)
{
    server_state_t *state = arg;
    if (state->waiting) {
        http_respond (state->waiting, 200, "text/plain", "woken", 5);
        state->waiting = NULL;
    }
    http_respond (request, 200, "text/plain", "waker", 5);
}

static void s_get_stats (http_request_t *request, void *arg)
{
    server_state_t *state = arg;
    char text[64];
    int bytes =
        snprintf (text, sizeof text, "%zu", http_server_suspended_count (state->server));
    http_respond (request, 200, "text/plain", text, (size_t)bytes);
}

//  The byte at index of the /taken body: a pattern a lost or reused
//  buffer would not keep.
static char s_taken_byte (size_t index)
{
    return (char)('a' + (index * 7 + index / 26) % 26);
}

static void s_get_taken (http_request_t *request, void *arg)
{
    char *body = malloc (TEST_TAKEN_BYTES);
    assert (body);
    for (size_t index = 0; index < TEST_TAKEN_BYTES; index++)
        body[index] = s_taken_byte (index);
    http_respond_take (request, 200, "text/plain", body, TEST_TAKEN_BYTES);
}

static void s_get_hello (http_request_t *request, void *arg)
{
    http_respond (request, 200, "text/plain", "hello\n", 6);
}

static const http_route_t s_routes[] = {
    {"GET", "/things/{id}", s_get_thing, 0, AUTH_SCOPE_OPEN, "color x"},
    {"POST", "/things", s_post_thing, TEST_BODY_BYTES_MAX, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/slow", s_get_slow, 0, AUTH_SCOPE_OPEN, "now"},
    {"GET", "/never", s_get_never, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/stats", s_get_stats, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/taken", s_get_taken, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/wait", s_get_wait, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/wake", s_get_wake, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/hello", s_get_hello, 0, AUTH_SCOPE_OPEN, NULL},
};

//  Serves until SIGTERM/SIGINT; reports the bound port on report_fd if >= 0.
static int s_serve (int port, int report_fd)
{
    zsys_init ();
    log_init ("test_http", LOG_WARN);
    server_state_t state = {.loop = zloop_new ()};
    http_config_t config = {
        .service = "test_http",
        .address = "127.0.0.1",
        .port = port,
        .routes = s_routes,
        .route_count = sizeof s_routes / sizeof s_routes[0],
        .arg = &state,
        .connection_timeout_s = TEST_IDLE_TIMEOUT_S,
        .connections_per_ip_max = TEST_PER_IP_CONNECTIONS_MAX,
    };
    state.server = http_server_new (state.loop, &config);
    if (!state.server) {
        zloop_destroy (&state.loop);
        return 1;
    }
    int bound_port = http_server_port (state.server);
    if (report_fd >= 0) {
        if (write (report_fd, &bound_port, sizeof bound_port) != sizeof bound_port)
            return 1;
        close (report_fd);
    } else
        printf ("serving on 127.0.0.1:%d\n", bound_port);
    zloop_start (state.loop);
    http_server_destroy (&state.server);
    http_server_destroy (&state.server); // idempotent
    zloop_destroy (&state.loop);
    return 0;
}

//  ---------------------------------------------------------------------
//  Client side (parent)

typedef struct {
    int status;
    char head[TEST_RESPONSE_BYTES_MAX]; // status line and headers, NUL-terminated
    char *body;                         // into head's buffer after the blank line
    size_t body_bytes;
} response_t;

static int s_port;
static int s_failures;

#define CHECK(condition)                                                                 \
    do {                                                                                 \
        if (!(condition)) {                                                              \
            fprintf (stderr, "FAIL %s:%d: %s\n", __func__, __LINE__, #condition);        \
            s_failures++;                                                                \
        }                                                                                \
    } while (0)

//  A connection to the server from source (a loopback address: Linux
//  routes all of 127/8 to lo), or from 127.0.0.1 when source is NULL.
static int s_connect_from (const char *source)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (fd >= 0);
    struct timeval timeout = {.tv_sec = TEST_RECEIVE_TIMEOUT_S};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (source) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        inet_pton (AF_INET, source, &local.sin_addr);
        if (bind (fd, (struct sockaddr *)&local, sizeof local)) {
            perror ("bind");
            exit (1);
        }
    }
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons ((uint16_t)s_port)};
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    if (connect (fd, (struct sockaddr *)&address, sizeof address)) {
        perror ("connect");
        exit (1);
    }
    return fd;
}

static int s_connect (void)
{
    return s_connect_from (NULL);
}

static void s_send (int fd, const char *data, size_t bytes)
{
    while (bytes > 0) {
        ssize_t sent = send (fd, data, bytes, MSG_NOSIGNAL);
        if (sent <= 0)
            return; // the server may close after answering early
        data += sent;
        bytes -= (size_t)sent;
    }
}

//  A header's value in response (case-insensitive name), copied to value.
static bool s_header (const response_t *response, const char *name, char *value,
                      size_t bytes)
{
    size_t name_bytes = strlen (name);
    for (const char *line = strstr (response->head, "\r\n"); line && line[2] != '\r';
         line = strstr (line + 2, "\r\n")) {
        const char *start = line + 2;
        if (strncasecmp (start, name, name_bytes) == 0 && start[name_bytes] == ':') {
            const char *cursor = start + name_bytes + 1;
            while (*cursor == ' ')
                cursor++;
            size_t length = strcspn (cursor, "\r");
            snprintf (value, bytes, "%.*s", (int)length, cursor);
            return true;
        }
    }
    return false;
}

//  Reads one response with a Content-Length body. Returns -1 on timeout,
//  EOF or a malformed response.
static int s_receive (int fd, response_t *response)
{
    size_t have = 0;
    char *blank = NULL;
    memset (response, 0, offsetof (response_t, head));
    response->head[0] = '\0';
    while (!blank) {
        if (have + 1 >= sizeof response->head)
            return -1;
        ssize_t got =
            recv (fd, response->head + have, sizeof response->head - have - 1, 0);
        if (got <= 0)
            return -1;
        have += (size_t)got;
        response->head[have] = '\0';
        blank = strstr (response->head, "\r\n\r\n");
    }
    if (sscanf (response->head, "HTTP/1.1 %d", &response->status) != 1)
        return -1;
    char length_text[32] = "0";
    s_header (response, "Content-Length", length_text, sizeof length_text);
    size_t length = strtoul (length_text, NULL, 10);
    response->body = blank + 4;
    size_t head_bytes = (size_t)(response->body - response->head);
    if (head_bytes + length + 1 > sizeof response->head)
        return -1;
    while (have < head_bytes + length) {
        ssize_t got = recv (fd, response->head + have, head_bytes + length - have, 0);
        if (got <= 0)
            return -1;
        have += (size_t)got;
    }
    response->head[head_bytes + length] = '\0';
    response->body_bytes = length;
    //  Cut the head off the body so header lookups stay in the head.
    blank[2] = '\r';
    return 0;
}

//  One request on a fresh connection.
static int s_exchange (const char *request, size_t bytes, response_t *response)
{
    int fd = s_connect ();
    s_send (fd, request, bytes);
    int rc = s_receive (fd, response);
    close (fd);
    return rc;
}

static int s_get (const char *path, response_t *response)
{
    char request[512];
    int bytes =
        snprintf (request, sizeof request, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    return s_exchange (request, (size_t)bytes, response);
}

static int s_post (const char *content_type, const char *body, size_t body_bytes,
                   response_t *response)
{
    char head[256];
    int head_bytes = snprintf (head, sizeof head,
                               "POST /things HTTP/1.1\r\nHost: test\r\n"
                               "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                               content_type, body_bytes);
    char *request = malloc ((size_t)head_bytes + body_bytes);
    assert (request);
    memcpy (request, head, (size_t)head_bytes);
    memcpy (request + head_bytes, body, body_bytes);
    int rc = s_exchange (request, (size_t)head_bytes + body_bytes, response);
    free (request);
    return rc;
}

static response_t s_response; // large: kept off the stack

static void test_get_returns_200_with_decoded_param_and_query (void)
{
    response_t *r = &s_response;
    CHECK (s_get ("/things/hello%20w%C3%B6rld?color=dark%20red&x=1", r) == 0);
    CHECK (r->status == 200);
    char value[128] = "";
    CHECK (s_header (r, "Content-Type", value, sizeof value) &&
           strcmp (value, "application/json") == 0);
    CHECK (s_header (r, "X-Test", value, sizeof value) && strcmp (value, "yes") == 0);
    CHECK (r->body &&
           strcmp (r->body, "{\"id\":\"hello w\xc3\xb6rld\",\"color\":\"dark red\"}") ==
               0);
}

static void test_percent_encoded_nul_is_not_decoded (void)
{
    response_t *r = &s_response;
    CHECK (s_get ("/things/al%00ice?color=re%00d", r) == 0);
    CHECK (r->status == 200);
    CHECK (r->body &&
           strcmp (r->body, "{\"id\":\"al%00ice\",\"color\":\"re%00d\"}") == 0);
}

static void test_unknown_path_is_404_problem_json (void)
{
    response_t *r = &s_response;
    CHECK (s_get ("/nothing/here", r) == 0);
    CHECK (r->status == 404);
    char value[128] = "";
    CHECK (s_header (r, "Content-Type", value, sizeof value) &&
           strcmp (value, "application/problem+json") == 0);
    cJSON *json = cJSON_Parse (r->body);
    CHECK (json);
    CHECK (cJSON_IsString (cJSON_GetObjectItem (json, "type")) &&
           strcmp (cJSON_GetObjectItem (json, "type")->valuestring,
                   "https://ledger.example/problems/not-found") == 0);
    CHECK (cJSON_IsString (cJSON_GetObjectItem (json, "title")) &&
           strcmp (cJSON_GetObjectItem (json, "title")->valuestring, "Not Found") == 0);
    CHECK (cJSON_GetNumberValue (cJSON_GetObjectItem (json, "status")) == 404);
    CHECK (cJSON_IsString (cJSON_GetObjectItem (json, "detail")));
    cJSON_Delete (json);
    //  A pattern segment must not match an empty path segment.
    CHECK (s_get ("/things/", r) == 0 && r->status == 404);
}

static void test_wrong_method_is_405_with_allow (void)
{
    response_t *r = &s_response;
    const char request[] = "DELETE /things/7 HTTP/1.1\r\nHost: test\r\n\r\n";
    CHECK (s_exchange (request, sizeof request - 1, r) == 0);
    CHECK (r->status == 405);
    char value[128] = "";
    CHECK (s_header (r, "Allow", value, sizeof value) && strcmp (value, "GET") == 0);
    CHECK (s_get ("/things", r) == 0 && r->status == 405);
    CHECK (s_header (r, "Allow", value, sizeof value) && strcmp (value, "POST") == 0);
}

static void test_valid_json_post_is_201 (void)
{
    response_t *r = &s_response;
    const char body[] = "{\"name\":\"x\",\"n\":3}";
    CHECK (s_post ("application/json; charset=utf-8", body, sizeof body - 1, r) == 0);
    CHECK (r->status == 201);
    CHECK (r->body && strcmp (r->body, body) == 0);
}

//  Bodies start in a small buffer inside the request and move to the heap
//  as they grow: one just under the limit must arrive byte for byte.
static void test_large_body_arrives_whole (void)
{
    response_t *r = &s_response;
    size_t bytes = TEST_BODY_BYTES_MAX - 1;
    char *body = malloc (bytes);
    assert (body);
    memcpy (body, "{\"s\":\"", 6);
    for (size_t index = 6; index < bytes - 2; index++)
        body[index] = (char)('a' + index % 26);
    memcpy (body + bytes - 2, "\"}", 2);
    CHECK (s_post ("application/json", body, bytes, r) == 0);
    CHECK (r->status == 201);
    CHECK (r->body && r->body_bytes == bytes && memcmp (r->body, body, bytes) == 0);
    free (body);
}

//  http_respond_take hands the buffer to MHD: sent byte for byte, and
//  freed by it (LeakSanitizer checks the server at its exit).
static void test_taken_body_is_sent_whole_twice (void)
{
    response_t *r = &s_response;
    for (int round = 0; round < 2; round++) {
        CHECK (s_get ("/taken", r) == 0);
        CHECK (r->status == 200);
        CHECK (r->body && r->body_bytes == TEST_TAKEN_BYTES);
        size_t index = 0;
        while (r->body && index < r->body_bytes && r->body[index] == s_taken_byte (index))
            index++;
        CHECK (index == TEST_TAKEN_BYTES);
    }
}

static void test_body_over_limit_is_413_and_connection_stays_usable (void)
{
    response_t *r = &s_response;
    size_t bytes = TEST_BODY_BYTES_MAX + 1;
    char *body = malloc (bytes);
    assert (body);
    memset (body, ' ', bytes);
    CHECK (s_post ("application/json", body, bytes, r) == 0);
    CHECK (r->status == 413);
    free (body);

    //  Chunked, so the size is only known while reading: the rest is
    //  discarded and the same connection answers the next request.
    int fd = s_connect ();
    const char head[] = "POST /things HTTP/1.1\r\nHost: test\r\n"
                        "Content-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
    s_send (fd, head, sizeof head - 1);
    char chunk_head[32];
    int chunk_head_bytes = snprintf (chunk_head, sizeof chunk_head, "%x\r\n", 40000);
    char *chunk = malloc (40000);
    assert (chunk);
    memset (chunk, ' ', 40000);
    for (int index = 0; index < 2; index++) {
        s_send (fd, chunk_head, (size_t)chunk_head_bytes);
        s_send (fd, chunk, 40000);
        s_send (fd, "\r\n", 2);
    }
    s_send (fd, "0\r\n\r\n", 5);
    free (chunk);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 413);
    const char next[] = "GET /things/1 HTTP/1.1\r\nHost: test\r\n\r\n";
    s_send (fd, next, sizeof next - 1);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 200);
    close (fd);
}

static void test_body_to_route_without_body_is_413 (void)
{
    response_t *r = &s_response;
    const char request[] =
        "GET /things/1 HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    CHECK (s_exchange (request, sizeof request - 1, r) == 0);
    CHECK (r->status == 413);
}

static void test_non_json_content_type_is_415 (void)
{
    response_t *r = &s_response;
    CHECK (s_post ("text/plain", "{}", 2, r) == 0);
    CHECK (r->status == 415);
    CHECK (s_post ("application/jsonx", "{}", 2, r) == 0);
    CHECK (r->status == 415);
}

static void test_invalid_json_is_400_naming_the_offset (void)
{
    response_t *r = &s_response;
    const char body[] = "[1,2,@]";
    CHECK (s_post ("application/json", body, sizeof body - 1, r) == 0);
    CHECK (r->status == 400);
    CHECK (r->body && strstr (r->body, "at byte 5"));
    //  Trailing garbage after a valid value is invalid too.
    CHECK (s_post ("application/json", "{} x", 4, r) == 0);
    CHECK (r->status == 400);
    CHECK (r->body && strstr (r->body, "at byte 3"));
}

static void test_empty_body_is_400 (void)
{
    response_t *r = &s_response;
    CHECK (s_post ("application/json", "", 0, r) == 0);
    CHECK (r->status == 400);
    CHECK (r->body &&
           strstr (r->body, "\"type\":\"https://ledger.example/problems/bad-request\""));
}

static void test_request_id_is_echoed_or_generated (void)
{
    response_t *r = &s_response;
    char value[256] = "";
    const char echoed[] =
        "GET /things/1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: req-42 a\r\n\r\n";
    CHECK (s_exchange (echoed, sizeof echoed - 1, r) == 0);
    CHECK (s_header (r, "X-Request-Id", value, sizeof value) &&
           strcmp (value, "req-42 a") == 0);

    CHECK (s_get ("/things/1", r) == 0);
    CHECK (s_header (r, "X-Request-Id", value, sizeof value) && strlen (value) == 36 &&
           value[8] == '-' && value[13] == '-');
    char first[sizeof value];
    snprintf (first, sizeof first, "%s", value);
    CHECK (s_get ("/nowhere", r) == 0);
    CHECK (s_header (r, "X-Request-Id", value, sizeof value) && strlen (value) == 36 &&
           strcmp (value, first) != 0);

    char request[512];
    char long_id[HTTP_REQUEST_ID_BYTES_MAX + 2];
    memset (long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    int bytes = snprintf (request, sizeof request,
                          "GET /things/1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n",
                          long_id);
    CHECK (s_exchange (request, (size_t)bytes, r) == 0);
    CHECK (s_header (r, "X-Request-Id", value, sizeof value) && strlen (value) == 36);
}

static void test_keep_alive_serves_two_requests_on_one_connection (void)
{
    response_t *r = &s_response;
    char value[64];
    int fd = s_connect ();
    const char get[] = "GET /things/1 HTTP/1.1\r\nHost: test\r\n\r\n";
    const char post[] =
        "POST /things HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    s_send (fd, get, sizeof get - 1);
    CHECK (s_receive (fd, r) == 0 && r->status == 200);
    CHECK (!s_header (r, "Connection", value, sizeof value) ||
           strcasecmp (value, "close") != 0);
    s_send (fd, post, sizeof post - 1);
    CHECK (s_receive (fd, r) == 0 && r->status == 201);
    CHECK (!s_header (r, "Connection", value, sizeof value) ||
           strcasecmp (value, "close") != 0);
    s_send (fd, get, sizeof get - 1);
    CHECK (s_receive (fd, r) == 0 && r->status == 200);
    close (fd);
}

static void test_suspended_request_is_answered_later (void)
{
    response_t *r = &s_response;
    int fd = s_connect ();
    const char slow[] = "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n";
    s_send (fd, slow, sizeof slow - 1);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 200 && r->body && strcmp (r->body, "slow") == 0);
    //  Still keep-alive after the resume.
    s_send (fd, slow, sizeof slow - 1);
    CHECK (s_receive (fd, r) == 0 && r->status == 200);
    //  Answered in the same handler call that suspended it.
    const char now[] = "GET /slow?now=1 HTTP/1.1\r\nHost: test\r\n\r\n";
    s_send (fd, now, sizeof now - 1);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 200 && r->body && strcmp (r->body, "now") == 0);
    close (fd);
}

static void test_idle_connection_is_closed_by_the_server (void)
{
    int fd = s_connect ();
    char byte;
    //  EOF (0), not the receive timeout (-1): the zloop timer runs MHD's
    //  connection timeouts.
    CHECK (recv (fd, &byte, 1, 0) == 0);
    close (fd);
}

//  GET /things/1 with a header of filler_bytes; its answer into r.
static int s_exchange_with_header (size_t filler_bytes, response_t *r)
{
    char *request = malloc (filler_bytes + 128);
    assert (request);
    int head = snprintf (request, 128, "GET /things/1 HTTP/1.1\r\nHost: t\r\nX-Filler: ");
    memset (request + head, 'f', filler_bytes);
    memcpy (request + head + filler_bytes, "\r\n\r\n", 4);
    int rc = s_exchange (request, (size_t)head + filler_bytes + 4, r);
    free (request);
    return rc;
}

//  The connection pool is 8 KiB (it is zeroed per request): headers of a
//  few KiB must still pass.
static void test_header_of_6_kib_is_accepted (void)
{
    response_t *r = &s_response;
    CHECK (s_exchange_with_header (6 * 1024, r) == 0);
    CHECK (r->status == 200);
}

static void test_oversized_header_is_rejected_by_mhd (void)
{
    response_t *r = &s_response;
    CHECK (s_exchange_with_header (20 * 1024, r) == 0);
    CHECK (r->status == 431 || r->status == 413);
}

//  True when the server closed fd without answering (EOF or reset), as
//  opposed to the receive timeout.
static bool s_closed_by_server (int fd)
{
    char byte;
    ssize_t got = recv (fd, &byte, 1, 0);
    return got == 0 || (got < 0 && errno == ECONNRESET);
}

//  Slow clients: one address holding its whole share (requests never
//  finished) has its next connection closed at once, while another
//  address is served, and the first one is served again once its
//  connections are gone.
static void test_one_address_gets_at_most_its_share_of_connections (void)
{
    response_t *r = &s_response;
    const char partial[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: a";
    const char hello[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    int held[TEST_PER_IP_CONNECTIONS_MAX];
    for (size_t index = 0; index < TEST_PER_IP_CONNECTIONS_MAX; index++) {
        held[index] = s_connect_from ("127.0.0.2");
        s_send (held[index], partial, sizeof partial - 1);
    }
    int extra = s_connect_from ("127.0.0.2");
    s_send (extra, hello, sizeof hello - 1);
    CHECK (s_closed_by_server (extra));
    close (extra);

    int other = s_connect_from ("127.0.0.1");
    s_send (other, hello, sizeof hello - 1);
    CHECK (s_receive (other, r) == 0 && r->status == 200);
    close (other);

    for (size_t index = 0; index < TEST_PER_IP_CONNECTIONS_MAX; index++)
        close (held[index]);
    //  The server notices the closes on its next loop turns.
    bool served = false;
    for (int attempt = 0; attempt < TEST_POLL_ATTEMPTS_MAX && !served; attempt++) {
        int again = s_connect_from ("127.0.0.2");
        s_send (again, hello, sizeof hello - 1);
        served = s_receive (again, r) == 0 && r->status == 200;
        close (again);
        if (!served)
            usleep (10 * 1000);
    }
    CHECK (served);
}

//  Waits (bounded) until the server reports `count` suspended requests.
static bool s_wait_suspended (const char *count)
{
    response_t *r = &s_response;
    for (int attempt = 0; attempt < TEST_POLL_ATTEMPTS_MAX; attempt++) {
        if (s_get ("/stats", r) == 0 && r->body && strcmp (r->body, count) == 0)
            return true;
        usleep (10 * 1000);
    }
    return false;
}

static void test_request_answered_from_another_handler_is_sent (void)
{
    response_t *r = &s_response;
    int fd = s_connect ();
    const char wait[] = "GET /wait HTTP/1.1\r\nHost: test\r\n\r\n";
    s_send (fd, wait, sizeof wait - 1);
    CHECK (s_wait_suspended ("1"));
    CHECK (s_get ("/wake", r) == 0);
    CHECK (r->status == 200 && r->body && strcmp (r->body, "waker") == 0);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 200 && r->body && strcmp (r->body, "woken") == 0);
    close (fd);
    CHECK (s_wait_suspended ("0"));
}

static void test_shutdown_answers_suspended_with_503_and_exits_0 (pid_t child)
{
    response_t *r = &s_response;
    int fd = s_connect ();
    const char never[] = "GET /never HTTP/1.1\r\nHost: test\r\n\r\n";
    s_send (fd, never, sizeof never - 1);
    CHECK (s_wait_suspended ("1"));
    kill (child, SIGTERM);
    CHECK (s_receive (fd, r) == 0);
    CHECK (r->status == 503);
    close (fd);

    int status = -1;
    pid_t done = 0;
    for (int waited_ms = 0; waited_ms < TEST_CHILD_EXIT_WAIT_MS && done == 0;
         waited_ms += 10) {
        done = waitpid (child, &status, WNOHANG);
        if (done == 0)
            usleep (10 * 1000);
    }
    if (done == 0) {
        kill (child, SIGKILL);
        waitpid (child, &status, 0);
    }
    CHECK (done == child && WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

int main (int argc, char *argv[])
{
    if (argc == 3 && strcmp (argv[1], "--serve") == 0)
        return s_serve (atoi (argv[2]), -1);

    int report[2];
    if (pipe (report))
        return 1;
    pid_t child = fork ();
    assert (child >= 0);
    if (child == 0) {
        close (report[0]);
        exit (s_serve (0, report[1])); // exit, not _exit: LeakSanitizer runs at exit
    }
    close (report[1]);
    struct timeval timeout = {.tv_sec = TEST_RECEIVE_TIMEOUT_S};
    fd_set readable;
    FD_ZERO (&readable);
    FD_SET (report[0], &readable);
    if (select (report[0] + 1, &readable, NULL, NULL, &timeout) != 1 ||
        read (report[0], &s_port, sizeof s_port) != sizeof s_port) {
        fprintf (stderr, "FAIL: the server did not report its port\n");
        kill (child, SIGKILL);
        return 1;
    }
    close (report[0]);

    test_get_returns_200_with_decoded_param_and_query ();
    test_percent_encoded_nul_is_not_decoded ();
    test_unknown_path_is_404_problem_json ();
    test_wrong_method_is_405_with_allow ();
    test_valid_json_post_is_201 ();
    test_large_body_arrives_whole ();
    test_taken_body_is_sent_whole_twice ();
    test_body_over_limit_is_413_and_connection_stays_usable ();
    test_body_to_route_without_body_is_413 ();
    test_non_json_content_type_is_415 ();
    test_invalid_json_is_400_naming_the_offset ();
    test_empty_body_is_400 ();
    test_request_id_is_echoed_or_generated ();
    test_keep_alive_serves_two_requests_on_one_connection ();
    test_suspended_request_is_answered_later ();
    test_header_of_6_kib_is_accepted ();
    test_oversized_header_is_rejected_by_mhd ();
    test_idle_connection_is_closed_by_the_server ();
    test_request_answered_from_another_handler_is_sent ();
    test_one_address_gets_at_most_its_share_of_connections ();
    test_shutdown_answers_suspended_with_503_and_exits_0 (child);

    if (s_failures) {
        fprintf (stderr, "test_http: %d check(s) failed\n", s_failures);
        return 1;
    }
    printf ("test_http: OK\n");
    return 0;
}
