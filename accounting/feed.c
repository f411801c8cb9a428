/*  feed — see feed.h.

    Each client owns a buffer of SSE text; [offset, bytes) has not been
    handed to its connection yet. The connection pulls from it through
    http_stream (s_read); when the buffer is empty s_read refills it from
    the replica if the client is behind, and otherwise returns 0, which
    parks the connection until the feed wakes it (new events, a keep-alive
    comment, or the next page of a catch-up that found nothing to show).
*/
#include "feed.h"
#include "log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  One replica page for a client behind the head: also the largest line
//  the feed can send (canonical lines are at most EVENT_LINE_BYTES_MAX).
#define FEED_READ_BYTES      (64 * 1024)
#define FEED_READ_EVENTS_MAX 256
//  Pages one s_read may go through without finding an event that passes
//  the filter before it yields to the loop (and continues on the next turn).
#define FEED_READS_PER_CALL_MAX 16
//  A drained buffer above this size is freed: a burst does not pin 1 MiB
//  per idle client.
#define FEED_BUFFER_KEEP_BYTES (64 * 1024)
#define FEED_BUFFER_BYTES_MIN  4096
//  "id: " seq "\nevent: " type "\ndata: " and the closing "\n\n".
#define FEED_FRAME_HEAD_BYTES_MAX (32 + EVENT_INT_BYTES_MAX + EVENT_TYPE_BYTES_MAX)
//  An EventSource reconnects this long after the stream ends.
#define FEED_HELLO     "retry: 2000\n: connected\n\n"
#define FEED_KEEPALIVE ": keep-alive\n\n"
static_assert (FEED_READ_BYTES > EVENT_LINE_BYTES_MAX, "a page must hold any line");
//  The timer that sends keep-alives and finds stalled subscribers runs
//  four times per the shorter of the two periods, within these bounds.
#define FEED_TICK_MS_MIN 10
#define FEED_TICK_MS_MAX 1000

typedef struct feed_client {
    feed_t *feed;          // NULL once the feed is destroyed
    http_stream_t *stream; // valid until s_client_free
    feed_filter_t filter;
    int64_t next_seq; // the only seq this client may be sent next
    char *buffer;     // SSE text; [offset, bytes) not yet given to the connection
    size_t offset, bytes, capacity;
    bool closing; // cut off, or the feed is gone: end once the buffer is sent
    bool token;   // opened with a token: ends at an auth reload
    //  When the connection last took bytes, or bytes began to wait for it.
    int64_t active_ms;
    struct feed_client *prev, *next;
} feed_client_t;

struct feed {
    zloop_t *loop;
    log_file_t *replica;
    size_t clients_max;
    size_t client_count;
    feed_client_t *clients; // doubly linked
    int keepalive_ms;
    int stall_ms;
    int tick_timer_id;
    http_server_t *http;      // borrowed, for its auth generation; NULL: none
    uint64_t auth_generation; // http's when last looked at
    int catch_up_timer_id;    // one-shot; -1: none
    uint64_t events_sent;
    uint64_t cutoffs;
    uint64_t fallbacks;
    uint64_t refused;
    char read_buffer[FEED_READ_BYTES];
};

void feed_filter_set_principal (feed_filter_t *self, const auth_principal_t *principal)
{
    assert (self);
    memset (&self->principal, 0, sizeof self->principal);
    self->has_principal = !auth_principal_sees_all (principal);
    if (!self->has_principal)
        return;
    snprintf (self->principal.name, sizeof self->principal.name, "%s", principal->name);
    snprintf (self->principal.accounts, sizeof self->principal.accounts, "%s",
              principal->accounts);
    self->principal.is_prefix = principal->is_prefix;
}

//  An account the event names ("" where it names none) that the
//  principal may see.
static bool s_allowed (const feed_filter_t *filter, const char *account)
{
    return account[0] && auth_principal_allows_account (&filter->principal, account);
}

bool feed_filter_matches (const feed_filter_t *filter, const event_t *event)
{
    if (filter->account[0] && strcmp (event->account, filter->account) != 0 &&
        strcmp (event->from, filter->account) != 0 &&
        strcmp (event->to, filter->account) != 0)
        return false;
    if (filter->has_principal && !s_allowed (filter, event->account) &&
        !s_allowed (filter, event->from) && !s_allowed (filter, event->to))
        return false;
    return true;
}

//  ---------------------------------------------------------------------
//  A client's buffer

static size_t s_unsent (const feed_client_t *self)
{
    return self->bytes - self->offset;
}

//  Room for more bytes at the end: moves the unsent part to the front
//  first, grows by doubling. Returns 0, or -1 when out of memory.
static int s_reserve (feed_client_t *self, size_t more)
{
    if (self->capacity - self->bytes >= more)
        return 0;
    if (self->offset > 2) {
        //  The two bytes before offset stay: s_frame_boundary reads them
        //  to tell whether the connection stopped inside a frame.
        memmove (self->buffer, self->buffer + self->offset - 2, s_unsent (self) + 2);
        self->bytes -= self->offset - 2;
        self->offset = 2;
        if (self->capacity - self->bytes >= more)
            return 0;
    }
    size_t capacity = self->capacity ? self->capacity : FEED_BUFFER_BYTES_MIN;
    while (capacity - self->bytes < more)
        capacity *= 2;
    char *buffer = realloc (self->buffer, capacity);
    if (!buffer)
        return -1;
    self->buffer = buffer;
    self->capacity = capacity;
    return 0;
}

static int s_append (feed_client_t *self, const char *text, size_t bytes)
{
    if (s_reserve (self, bytes))
        return -1;
    if (s_unsent (self) == 0)
        self->active_ms = zclock_mono (); // the stall clock starts now
    memcpy (self->buffer + self->bytes, text, bytes);
    self->bytes += bytes;
    return 0;
}

static int s_append_event (feed_client_t *self, const event_t *event, const char *line,
                           size_t line_bytes)
{
    char head[FEED_FRAME_HEAD_BYTES_MAX];
    int head_bytes =
        snprintf (head, sizeof head, "id: %" PRId64 "\nevent: %s\ndata: ", event->seq,
                  event->type_name);
    assert (head_bytes > 0 && (size_t)head_bytes < sizeof head);
    if (s_reserve (self, (size_t)head_bytes + line_bytes + 2))
        return -1;
    s_append (self, head, (size_t)head_bytes);
    s_append (self, line, line_bytes);
    s_append (self, "\n\n", 2);
    return 0;
}

//  Where the unsent part may be cut: after the frame the connection has
//  started to send, so the client never sees half an event.
static size_t s_frame_boundary (const feed_client_t *self)
{
    size_t offset = self->offset;
    if (offset == 0 ||
        (offset >= 2 && memcmp (self->buffer + offset - 2, "\n\n", 2) == 0))
        return offset;
    const char *end =
        memmem (self->buffer + offset - 1, self->bytes - offset + 1, "\n\n", 2);
    assert (end); // every frame ends with a blank line
    return (size_t)(end - self->buffer) + 2;
}

//  Drops what is unsent after the current frame, queues a final error
//  event and ends the response once that is sent.
static void s_cut_off (feed_client_t *self, const char *why)
{
    if (self->capacity)
        self->bytes = s_frame_boundary (self);
    char frame[256];
    //  No seq in it: the client resumes after the last event it got.
    int bytes =
        snprintf (frame, sizeof frame, "event: error\ndata: {\"error\":\"%s\"}\n\n", why);
    assert (bytes > 0 && (size_t)bytes < sizeof frame);
    //  After the cut the buffer holds at most one frame: room enough
    //  unless it was never allocated and cannot be now.
    if (s_append (self, frame, (size_t)bytes))
        self->offset = self->bytes = 0;
    self->closing = true;
    if (self->feed) {
        self->feed->cutoffs++;
        log_info ("feed: subscriber cut off at seq %" PRId64 ": %s", self->next_seq, why);
    }
    http_stream_wake (self->stream);
}

//  ---------------------------------------------------------------------
//  Catch-up from the replica

static void s_catch_up_later (feed_t *self);

//  Frames the lines of one replica page that pass the filter.
static int s_append_page (feed_client_t *self, const char *text, size_t bytes)
{
    event_t event;
    char error[128];
    for (const char *line = text; line < text + bytes;) {
        const char *end = memchr (line, '\n', (size_t)(text + bytes - line));
        if (!end ||
            event_parse_stored (line, (size_t)(end - line), &event, error,
                                sizeof error) ||
            event.seq != self->next_seq) {
            log_error ("feed: replica line at seq %" PRId64 " unusable: %s",
                       self->next_seq, end ? error : "no newline");
            return -1;
        }
        self->next_seq++;
        if (feed_filter_matches (&self->filter, &event)) {
            if (s_append_event (self, &event, line, (size_t)(end - line)))
                return -1;
            self->feed->events_sent++;
        }
        line = end + 1;
    }
    return 0;
}

//  Fills the (empty) buffer from the committed replica while the client
//  is behind it; at the head it stays empty and live events fill it.
static void s_catch_up (feed_client_t *self)
{
    feed_t *feed = self->feed;
    int64_t committed = log_file_committed_seq (feed->replica);
    for (int reads = 0; reads < FEED_READS_PER_CALL_MAX; reads++) {
        if (s_unsent (self) > 0 || self->next_seq > committed)
            return;
        size_t bytes = 0;
        int count = log_file_read (feed->replica, self->next_seq, FEED_READ_EVENTS_MAX,
                                   feed->read_buffer, sizeof feed->read_buffer, &bytes);
        if (count <= 0 || s_append_page (self, feed->read_buffer, bytes)) {
            s_cut_off (self, "the replica cannot be read here");
            return;
        }
    }
    if (s_unsent (self) == 0 && self->next_seq <= committed)
        s_catch_up_later (feed); // filtered out so far: go on next loop turn
}

static bool s_has_work (const feed_client_t *self)
{
    return s_unsent (self) > 0 || self->closing ||
           self->next_seq <= log_file_committed_seq (self->feed->replica);
}

static int s_on_catch_up (zloop_t *loop, int timer_id, void *arg)
{
    feed_t *self = arg;
    self->catch_up_timer_id = -1; // one-shot: zloop has dropped it
    for (feed_client_t *client = self->clients; client; client = client->next)
        if (s_has_work (client))
            http_stream_wake (client->stream);
    return 0;
}

static void s_catch_up_later (feed_t *self)
{
    if (self->catch_up_timer_id >= 0)
        return;
    self->catch_up_timer_id = zloop_timer (self->loop, 0, 1, s_on_catch_up, self);
    if (self->catch_up_timer_id < 0)
        log_error ("feed: zloop_timer failed; a filtered catch-up waits for new events");
}

//  ---------------------------------------------------------------------
//  The connection's side

static ssize_t s_read (void *arg, char *buffer, size_t max)
{
    feed_client_t *self = arg;
    if (s_unsent (self) == 0) {
        self->offset = self->bytes = 0;
        if (self->capacity > FEED_BUFFER_KEEP_BYTES) {
            free (self->buffer);
            self->buffer = NULL;
            self->capacity = 0;
        }
        if (self->closing)
            return HTTP_STREAM_END;
        s_catch_up (self);
        if (s_unsent (self) == 0)
            return 0;
    }
    size_t bytes = s_unsent (self) < max ? s_unsent (self) : max;
    memcpy (buffer, self->buffer + self->offset, bytes);
    self->offset += bytes;
    self->active_ms = zclock_mono ();
    return (ssize_t)bytes;
}

static void s_client_unlink (feed_client_t *self)
{
    feed_t *feed = self->feed;
    if (self->prev)
        self->prev->next = self->next;
    else
        feed->clients = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
    feed->client_count--;
}

//  The response is over: the client goes.
static void s_client_free (void *arg)
{
    feed_client_t *self = arg;
    if (self->feed)
        s_client_unlink (self);
    free (self->buffer);
    free (self);
}

//  ---------------------------------------------------------------------
//  Feed

//  Idle clients get a keep-alive comment; clients whose connection has
//  taken nothing for stall_ms while bytes wait are cut off.
//  Streams opened with a token end: they reconnect and are checked again.
static void s_end_token_streams (feed_t *self)
{
    size_t ended = 0;
    for (feed_client_t *client = self->clients; client; client = client->next) {
        if (client->token && !client->closing) {
            client->closing = true;
            http_stream_wake (client->stream);
            ended++;
        }
    }
    if (ended)
        log_info ("feed: the auth file was reloaded; %zu stream(s) with a token end to "
                  "be checked again",
                  ended);
}

static int s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    feed_t *self = arg;
    if (self->http && http_server_auth_generation (self->http) != self->auth_generation) {
        self->auth_generation = http_server_auth_generation (self->http);
        s_end_token_streams (self);
    }
    int64_t now_ms = zclock_mono ();
    for (feed_client_t *client = self->clients; client; client = client->next) {
        if (client->closing)
            continue;
        int64_t quiet_ms = now_ms - client->active_ms;
        if (s_unsent (client) > 0 && quiet_ms >= self->stall_ms) {
            char why[96];
            snprintf (why, sizeof why, "slow consumer: nothing read for %d ms",
                      self->stall_ms);
            s_cut_off (client, why);
        } else if (s_unsent (client) == 0 && quiet_ms >= self->keepalive_ms) {
            if (s_append (client, FEED_KEEPALIVE, sizeof FEED_KEEPALIVE - 1))
                s_cut_off (client, "out of memory");
            http_stream_wake (client->stream);
        }
    }
    return 0;
}

feed_t *feed_new (zloop_t *loop, log_file_t *replica, size_t subscribers_max,
                  int keepalive_ms, int stall_ms)
{
    assert (loop && replica);
    assert (keepalive_ms > 0 && stall_ms > 0);
    feed_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->replica = replica;
    self->clients_max = subscribers_max;
    self->keepalive_ms = keepalive_ms;
    self->stall_ms = stall_ms;
    self->catch_up_timer_id = -1;
    int tick_ms = (keepalive_ms < stall_ms ? keepalive_ms : stall_ms) / 4;
    tick_ms = tick_ms < FEED_TICK_MS_MIN   ? FEED_TICK_MS_MIN
              : tick_ms > FEED_TICK_MS_MAX ? FEED_TICK_MS_MAX
                                           : tick_ms;
    self->tick_timer_id = zloop_timer (loop, (size_t)tick_ms, 0, s_on_tick, self);
    if (self->tick_timer_id < 0) {
        log_error ("feed: zloop_timer (%d ms) failed", tick_ms);
        free (self);
        return NULL;
    }
    return self;
}

void feed_destroy (feed_t **self_p)
{
    assert (self_p);
    feed_t *self = *self_p;
    if (!self)
        return;
    //  Responses still open end at their next read; their memory goes
    //  with them (s_client_free).
    while (self->clients) {
        feed_client_t *client = self->clients;
        s_client_unlink (client);
        client->feed = NULL;
        client->closing = true;
        http_stream_wake (client->stream);
    }
    zloop_timer_end (self->loop, self->tick_timer_id);
    if (self->catch_up_timer_id >= 0)
        zloop_timer_end (self->loop, self->catch_up_timer_id);
    free (self);
    *self_p = NULL;
}

feed_result_t feed_subscribe (feed_t *self, http_request_t *request,
                              const feed_filter_t *filter, int64_t next_seq)
{
    assert (self && request && filter);
    assert (next_seq >= 1);
    if (self->client_count >= self->clients_max) {
        self->refused++;
        return FEED_FULL;
    }
    feed_client_t *client = calloc (1, sizeof *client);
    if (!client || s_append (client, FEED_HELLO, sizeof FEED_HELLO - 1)) {
        free (client);
        http_respond_problem (request, 503, NULL, "out of memory", NULL);
        return FEED_NOMEM;
    }
    client->feed = self;
    client->token = http_request_principal (request) != NULL;
    client->filter = *filter;
    client->next_seq = next_seq;
    client->next = self->clients;
    if (client->next)
        client->next->prev = client;
    self->clients = client;
    self->client_count++;
    http_request_add_header (request, "Cache-Control", "no-store");
    //  Proxies such as nginx buffer responses unless told not to.
    http_request_add_header (request, "X-Accel-Buffering", "no");
    client->stream = http_respond_stream (request, 200, "text/event-stream", s_read,
                                          s_client_free, client);
    if (!client->stream) {
        s_client_free (client);
        return FEED_NOMEM;
    }
    return FEED_OK;
}

void feed_on_event (feed_t *self, const event_t *event, const char *line,
                    size_t line_bytes)
{
    assert (self && event);
    for (feed_client_t *client = self->clients; client; client = client->next) {
        if (client->closing || client->next_seq != event->seq)
            continue; // behind: it reads this event from the replica later
        if (!feed_filter_matches (&client->filter, event)) {
            client->next_seq++;
            continue;
        }
        //  A full buffer: the client falls behind and meets this event
        //  in the replica once its buffer drains.
        if (s_unsent (client) + FEED_FRAME_HEAD_BYTES_MAX + line_bytes >
            FEED_BUFFER_BYTES_MAX) {
            self->fallbacks++;
            continue;
        }
        if (s_append_event (client, event, line, line_bytes)) {
            s_cut_off (client, "out of memory");
            continue;
        }
        client->next_seq++;
        self->events_sent++;
    }
}

void feed_watch_auth (feed_t *self, http_server_t *http)
{
    assert (self && http);
    self->http = http;
    self->auth_generation = http_server_auth_generation (http);
}

void feed_on_applied (feed_t *self)
{
    assert (self);
    for (feed_client_t *client = self->clients; client; client = client->next)
        if (s_has_work (client))
            http_stream_wake (client->stream);
}

size_t feed_subscriber_count (feed_t *self)
{
    assert (self);
    return self->client_count;
}

uint64_t feed_events_sent (feed_t *self)
{
    assert (self);
    return self->events_sent;
}

uint64_t feed_cutoffs (feed_t *self)
{
    assert (self);
    return self->cutoffs;
}

uint64_t feed_fallbacks (feed_t *self)
{
    assert (self);
    return self->fallbacks;
}

uint64_t feed_refused (feed_t *self)
{
    assert (self);
    return self->refused;
}
