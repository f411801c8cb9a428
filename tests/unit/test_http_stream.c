/*  test_http_stream — claims about streamed responses (http_respond_stream),
    over real sockets.

    A forked child serves a zloop with an http_server; its readers produce
    a body in parts, some only after a timer, so the connection waits
    (suspended) between them. The parent is a blocking-socket client with
    receive timeouts that decodes the chunked bodies. At the end SIGTERM
    must end a stream that waits forever and the child must exit 0: each
    stream's state is freed by its free callback, which LeakSanitizer
    checks at the child's exit.
*/
#include "check.h"
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_RECEIVE_TIMEOUT_S  10 // a stream slower than this is a hang
#define TEST_PARTS              5
#define TEST_PART_DELAY_MS      10
#define TEST_BIG_BYTES          (4 * 1024 * 1024) // many MHD rounds of writes
#define TEST_BODY_BYTES_MAX     (TEST_BIG_BYTES + 4096)
#define TEST_CHILD_EXIT_WAIT_MS 10000

//  ---------------------------------------------------------------------
//  Server side (child)

static zloop_t *s_loop;

typedef struct {
    http_stream_t *stream;
    int part;     // parts sent so far
    bool ready;   // the next part may be sent
    size_t sent;  // /big: bytes sent so far
    int timer_id; // -1: none
} stream_state_t;

static void s_free (void *arg)
{
    stream_state_t *state = arg;
    if (state->timer_id >= 0)
        zloop_timer_end (s_loop, state->timer_id);
    free (state);
}

static int s_on_part_timer (zloop_t *loop, int timer_id, void *arg)
{
    stream_state_t *state = arg;
    state->timer_id = -1;
    state->ready = true;
    http_stream_wake (state->stream);
    return 0;
}

//  One part per wake-up; in between the connection waits for a timer.
static ssize_t s_read_parts (void *arg, char *buffer, size_t max)
{
    stream_state_t *state = arg;
    if (state->part == TEST_PARTS)
        return HTTP_STREAM_END;
    if (!state->ready) {
        if (state->timer_id < 0)
            state->timer_id =
                zloop_timer (s_loop, TEST_PART_DELAY_MS, 1, s_on_part_timer, state);
        return 0;
    }
    state->ready = false;
    state->part++;
    int bytes = snprintf (buffer, max, "part %d\n", state->part);
    assert (bytes > 0 && (size_t)bytes < max);
    return bytes;
}

static char s_big_byte (size_t index)
{
    return (char)('a' + (index * 7 + index / 26) % 26);
}

//  Always ready: as much as MHD takes, until TEST_BIG_BYTES.
static ssize_t s_read_big (void *arg, char *buffer, size_t max)
{
    stream_state_t *state = arg;
    if (state->sent == TEST_BIG_BYTES)
        return HTTP_STREAM_END;
    size_t bytes =
        TEST_BIG_BYTES - state->sent < max ? TEST_BIG_BYTES - state->sent : max;
    for (size_t index = 0; index < bytes; index++)
        buffer[index] = s_big_byte (state->sent + index);
    state->sent += bytes;
    return (ssize_t)bytes;
}

//  Never has anything: only the server's shutdown ends it.
static ssize_t s_read_nothing (void *arg, char *buffer, size_t max)
{
    return 0;
}

static void s_respond (http_request_t *request, http_stream_read_fn *reader)
{
    stream_state_t *state = calloc (1, sizeof *state);
    assert (state);
    state->timer_id = -1;
    state->stream =
        http_respond_stream (request, 200, "text/plain", reader, s_free, state);
    assert (state->stream);
}

static void s_get_parts (http_request_t *request, void *arg)
{
    s_respond (request, s_read_parts);
}

static void s_get_big (http_request_t *request, void *arg)
{
    s_respond (request, s_read_big);
}

static void s_get_forever (http_request_t *request, void *arg)
{
    s_respond (request, s_read_nothing);
}

static const http_route_t s_routes[] = {
    {"GET", "/parts", s_get_parts, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/big", s_get_big, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/forever", s_get_forever, 0, AUTH_SCOPE_OPEN, NULL},
};

static int s_serve (int report_fd)
{
    zsys_init ();
    log_init ("test_http_stream", LOG_WARN);
    s_loop = zloop_new ();
    http_config_t config = {.service = "test_http_stream",
                            .address = "127.0.0.1",
                            .routes = s_routes,
                            .route_count = sizeof s_routes / sizeof s_routes[0]};
    http_server_t *server = http_server_new (s_loop, &config);
    if (!server)
        return 1;
    int port = http_server_port (server);
    if (write (report_fd, &port, sizeof port) != sizeof port)
        return 1;
    close (report_fd);
    zloop_start (s_loop);
    http_server_destroy (&server);
    zloop_destroy (&s_loop);
    return 0;
}

//  ---------------------------------------------------------------------
//  Client side (parent)

static int s_port;
static char s_raw[TEST_BODY_BYTES_MAX * 2];
static char s_body[TEST_BODY_BYTES_MAX];

static int s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (fd >= 0);
    struct timeval timeout = {.tv_sec = TEST_RECEIVE_TIMEOUT_S};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (s_port)};
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    int rc = connect (fd, (struct sockaddr *)&address, sizeof address);
    assert (rc == 0);
    return fd;
}

static void s_send_get (int fd, const char *path)
{
    char request[256];
    int bytes =
        snprintf (request, sizeof request, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    ssize_t sent = send (fd, request, (size_t)bytes, MSG_NOSIGNAL);
    assert (sent == bytes);
}

//  Parses what s_raw[0, raw) holds: the status line once, then whole
//  chunks ("<hex size>\r\n<data>\r\n") into s_body. Returns false when
//  the head is malformed.
typedef struct {
    size_t raw;  // bytes in s_raw
    size_t used; // parsed up to here
    size_t body; // bytes in s_body
    int status;  // 0 until the head is in
    bool ended;  // the terminating chunk came
} chunked_t;

static bool s_parse (chunked_t *self)
{
    if (self->status == 0) {
        char *head_end = strstr (s_raw, "\r\n\r\n");
        if (!head_end)
            return true;
        if (sscanf (s_raw, "HTTP/1.1 %d", &self->status) != 1 ||
            !strstr (s_raw, "Transfer-Encoding: chunked"))
            return false;
        self->used = (size_t)(head_end + 4 - s_raw);
    }
    while (!self->ended) {
        char *line_end = strstr (s_raw + self->used, "\r\n");
        if (!line_end)
            return true;
        size_t size = strtoul (s_raw + self->used, NULL, 16);
        size_t start = (size_t)(line_end + 2 - s_raw);
        if (start + size + 2 > self->raw)
            return true;
        self->ended = size == 0;
        assert (self->body + size <= sizeof s_body);
        memcpy (s_body + self->body, s_raw + start, size);
        self->body += size;
        self->used = start + size + 2;
    }
    return true;
}

//  Reads one chunked response into s_body. Returns its status, or -1 on a
//  timeout, EOF or a malformed response before the terminating chunk.
static int s_receive_chunked (int fd, size_t *body_bytes)
{
    chunked_t parsed = {0};
    while (!parsed.ended) {
        ssize_t got = recv (fd, s_raw + parsed.raw, sizeof s_raw - parsed.raw - 1, 0);
        if (got <= 0)
            return -1;
        parsed.raw += (size_t)got;
        s_raw[parsed.raw] = '\0';
        if (!s_parse (&parsed))
            return -1;
    }
    *body_bytes = parsed.body;
    return parsed.status;
}

static void test_parts_produced_later_arrive_in_order_then_the_response_ends (void)
{
    int fd = s_connect ();
    //  Twice on one connection: a stream that ended leaves it usable.
    for (int round = 0; round < 2; round++) {
        s_send_get (fd, "/parts");
        size_t bytes = 0;
        CHECK (s_receive_chunked (fd, &bytes) == 200);
        const char expected[] = "part 1\npart 2\npart 3\npart 4\npart 5\n";
        CHECK (bytes == sizeof expected - 1 && memcmp (s_body, expected, bytes) == 0);
    }
    close (fd);
}

static void test_a_long_stream_arrives_whole (void)
{
    int fd = s_connect ();
    s_send_get (fd, "/big");
    size_t bytes = 0;
    CHECK (s_receive_chunked (fd, &bytes) == 200);
    CHECK (bytes == TEST_BIG_BYTES);
    size_t wrong = 0;
    for (size_t index = 0; index < bytes; index++)
        wrong += s_body[index] != s_big_byte (index);
    CHECK (wrong == 0);
    close (fd);
}

static void test_shutdown_ends_a_waiting_stream_and_exits_0 (pid_t child)
{
    int fd = s_connect ();
    s_send_get (fd, "/forever");
    char head[512];
    ssize_t got = recv (fd, head, sizeof head - 1, 0); // the headers: it is waiting now
    CHECK (got > 0);
    kill (child, SIGTERM);
    //  The stream ends: the terminating chunk, then the close that
    //  MHD_stop_daemon makes (not the receive timeout).
    char rest[64], tail[6] = "";
    ssize_t received = 0;
    while ((received = recv (fd, rest, sizeof rest, 0)) > 0) {
        //  The last five bytes seen, across recv calls.
        for (ssize_t index = 0; index < received; index++) {
            memmove (tail, tail + 1, 4);
            tail[4] = rest[index];
        }
    }
    CHECK (received == 0);
    CHECK (memcmp (tail, "0\r\n\r\n", 5) == 0);
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

int main (void)
{
    int report[2];
    if (pipe (report))
        return 1;
    pid_t child = fork ();
    assert (child >= 0);
    if (child == 0) {
        close (report[0]);
        exit (s_serve (report[1])); // exit, not _exit: LeakSanitizer runs at exit
    }
    close (report[1]);
    if (read (report[0], &s_port, sizeof s_port) != sizeof s_port) {
        fprintf (stderr, "FAIL: the server did not report its port\n");
        kill (child, SIGKILL);
        return 1;
    }
    close (report[0]);
    RUN (test_parts_produced_later_arrive_in_order_then_the_response_ends);
    RUN (test_a_long_stream_arrives_whole);
    CHECK_RUN (test_shutdown_ends_a_waiting_stream_and_exits_0,
               test_shutdown_ends_a_waiting_stream_and_exits_0 (child));
    return check_exit_status ();
}
