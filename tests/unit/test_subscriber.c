/*  test_subscriber — claims about the catch-up subscriber.

    The test plays the stream with real ZeroMQ sockets on ephemeral
    loopback ports in the subscriber's own zloop: an XPUB for the publish
    side (it sees the subscriptions arrive, so nothing is published before
    the subscriber can hear it) and a ROUTER that serves FETCH from a log
    of canonical lines made with event_format_stored. The stream can show
    only a prefix of its log to FETCH (to play events that are published
    but not yet visible to a given reply), hold a request to answer later,
    or read requests and never answer.

    Every wait is bounded: the loop runs until a claim's condition holds
    or a deadline passes. No claim depends on how fast anything is.
*/
#include "subscriber.h"
#include "wire.h"
#include "check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_EVENTS_MAX    400   // the fake stream's log; the randomized claim uses most
#define HELD_MAX          2     // requests the fake stream can keep unanswered
#define WAIT_MS           10000 // bound of every wait; generous on a loaded machine
#define CHECK_EVERY_MS    5     // how often a wait looks at its condition
#define PORT_REBIND_TRIES 500   // 10 ms apart: the old listener's port frees quickly
#define FROMS_MAX         64    // from_seq of the first so many FETCHes, kept for claims

//  --------------------------------------------------------------------------
//  The fake stream

typedef struct {
    zsock_t *pub; // XPUB
    zsock_t *router;
    int replay_port;
    char *lines[LOG_EVENTS_MAX + 1]; // lines[seq], 1 .. log_seq
    int64_t log_seq;
    int64_t visible_seq;    // FETCH serves lines <= this
    size_t page_events_max; // events per page, below the FETCH's max
    bool answering;         // false: requests are read and dropped
    size_t holds;           // the next so many requests are kept in held
    zmsg_t *held[HELD_MAX]; // oldest first
    size_t held_count;
    int fetches_received;
    int64_t froms[FROMS_MAX]; // from_seq of each FETCH received, in order
    zframe_t *identity;       // of the last FETCH's DEALER
    int sockets;              // DEALERs seen, one after another
    bool subscribed_events;
    bool subscribed_results;
    bool older;          // answers a FETCH with an identity frame as an older stream does
    int identity_asked;  // FETCHes received that asked for the identity
} stream_t;

static char *s_make_line (int64_t seq, const char *account)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.ts_ms = 1795000000000LL + seq;
    event.type = EVENT_DEPOSITED;
    snprintf (event.id, sizeof event.id, "ev-%" PRId64, seq);
    snprintf (event.account, sizeof event.account, "%s", account);
    event.amount = seq;
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = event_format_stored (&event, line, sizeof line);
    assert (bytes > 0);
    return strdup (line);
}

//  Appends events up to seq; all visible unless the test says otherwise.
static void s_stream_append (stream_t *self, int64_t last_seq)
{
    assert (last_seq <= LOG_EVENTS_MAX);
    while (self->log_seq < last_seq) {
        self->log_seq++;
        self->lines[self->log_seq] = s_make_line (self->log_seq, "alice");
    }
    self->visible_seq = self->log_seq;
}

static void s_stream_replace (stream_t *self, int64_t seq, const char *line)
{
    free (self->lines[seq]);
    self->lines[seq] = strdup (line);
}

//  The id of seq 1 ("" while the log is empty), as the stream announces it.
static const char *s_stream_identity (stream_t *self)
{
    static char id[EVENT_ID_BYTES_MAX + 1];
    const char *at = self->log_seq ? strstr (self->lines[1], "\"id\":\"") : NULL;
    snprintf (id, sizeof id, "%.*s", at ? (int)strcspn (at + 6, "\"") : 0,
              at ? at + 6 : "");
    return id;
}

static void s_stream_answer (stream_t *self, zmsg_t **request_p)
{
    zmsg_t *request = *request_p;
    zframe_t *identity = zmsg_pop (request);
    char *command = zmsg_popstr (request);
    char *from_text = zmsg_popstr (request);
    char *max_text = zmsg_popstr (request);
    char *shape = zmsg_popstr (request);
    char *asked = zmsg_popstr (request); // "identity" or NULL
    assert (identity && command && from_text && max_text && shape);
    assert (streq (command, "FETCH") && streq (shape, "packed"));
    int64_t from = atoll (from_text);
    int64_t max = atoll (max_text);
    assert (from >= 1 && max >= 1);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, &identity);
    self->identity_asked += asked != NULL;
    if (asked && self->older) {
        zmsg_addstr (reply, "ERROR");
        zmsg_addstr (reply, "FETCH takes at most three arguments: from_seq max_events "
                            "[packed]");
        zmsg_send (&reply, self->router);
        free (command);
        free (from_text);
        free (max_text);
        free (shape);
        free (asked);
        zmsg_destroy (request_p);
        return;
    }
    zmsg_addstr (reply, "PACKED");
    zmsg_addstrf (reply, "%" PRId64, self->visible_seq);
    char *page = strdup ("");
    for (int64_t seq = from, count = 0;
         seq <= self->visible_seq && count < max && (size_t)count < self->page_events_max;
         seq++, count++) {
        char *longer = zsys_sprintf ("%s%s\n", page, self->lines[seq]);
        free (page);
        page = longer;
    }
    zmsg_addstr (reply, page);
    if (asked)
        zmsg_addstr (reply, s_stream_identity (self));
    zmsg_send (&reply, self->router);
    free (page);
    free (asked);
    free (command);
    free (from_text);
    free (max_text);
    free (shape);
    zmsg_destroy (request_p);
}

static int s_stream_on_request (zloop_t *loop, zsock_t *reader, void *arg)
{
    stream_t *self = (stream_t *)arg;
    zmsg_t *request = zmsg_recv (reader);
    if (!request)
        return 0;
    zframe_t *identity = zmsg_first (request);
    if (!self->identity || !zframe_eq (identity, self->identity)) {
        zframe_destroy (&self->identity);
        self->identity = zframe_dup (identity);
        self->sockets++;
    }
    if (self->fetches_received < FROMS_MAX) {
        zmsg_first (request); // identity
        zmsg_next (request);  // FETCH
        zframe_t *from = zmsg_next (request);
        char *text = from ? zframe_strdup (from) : NULL;
        self->froms[self->fetches_received] = text ? atoll (text) : 0;
        free (text);
    }
    self->fetches_received++;
    if (!self->answering)
        zmsg_destroy (&request);
    else if (self->holds > 0) {
        assert (self->held_count < HELD_MAX);
        self->held[self->held_count++] = request;
        self->holds--;
    } else
        s_stream_answer (self, &request);
    return 0;
}

static int s_stream_on_subscription (zloop_t *loop, zsock_t *reader, void *arg)
{
    stream_t *self = (stream_t *)arg;
    zframe_t *frame = zframe_recv (reader);
    if (!frame)
        return 0;
    if (zframe_size (frame) > 1 && zframe_data (frame)[0] == 1) {
        const char *topic = (const char *)zframe_data (frame) + 1;
        size_t bytes = zframe_size (frame) - 1;
        if (bytes == 6 && memcmp (topic, "EVENTS", 6) == 0)
            self->subscribed_events = true;
        if (bytes == 6 && memcmp (topic, "RESULT", 6) == 0)
            self->subscribed_results = true;
    }
    zframe_destroy (&frame);
    return 0;
}

static int s_stream_bind_router (stream_t *self, zloop_t *loop)
{
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    zsock_set_linger (self->router, 0);
    if (self->replay_port == 0) {
        self->replay_port = zsock_bind (self->router, "tcp://127.0.0.1:*");
        if (self->replay_port <= 0)
            return -1;
    } else {
        int rc = -1;
        for (int tries = 0; rc == -1 && tries < PORT_REBIND_TRIES; tries++) {
            rc = zsock_bind (self->router, "tcp://127.0.0.1:%d", self->replay_port);
            if (rc == -1)
                zclock_sleep (10);
        }
        if (rc == -1)
            return -1;
    }
    return zloop_reader (loop, self->router, s_stream_on_request, self);
}

static void s_stream_close_router (stream_t *self, zloop_t *loop)
{
    zloop_reader_end (loop, self->router);
    zsock_destroy (&self->router);
}

static stream_t *s_stream_new (zloop_t *loop)
{
    stream_t *self = (stream_t *)zmalloc (sizeof (stream_t));
    assert (self);
    self->page_events_max = LOG_EVENTS_MAX;
    self->answering = true;
    self->pub = zsock_new (ZMQ_XPUB);
    assert (self->pub);
    zsock_set_linger (self->pub, 0);
    int port = zsock_bind (self->pub, "tcp://127.0.0.1:*");
    assert (port > 0);
    int rc = zloop_reader (loop, self->pub, s_stream_on_subscription, self);
    assert (rc == 0);
    rc = s_stream_bind_router (self, loop);
    assert (rc == 0);
    return self;
}

static void s_stream_destroy (stream_t **self_p)
{
    stream_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->pub);
    zsock_destroy (&self->router);
    zframe_destroy (&self->identity);
    for (size_t index = 0; index < self->held_count; index++)
        zmsg_destroy (&self->held[index]);
    for (int64_t seq = 1; seq <= self->log_seq; seq++)
        free (self->lines[seq]);
    free (self);
    *self_p = NULL;
}

//  ["EVENTS", line(first) .. line(last)], or packed (one frame, each line
//  ending in \n) when first is even: every test sees both forms.
static void s_publish_events (stream_t *self, int64_t first, int64_t last)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "EVENTS");
    if (first % 2 == 0) {
        wire_pack_t pack = {0};
        for (int64_t seq = first; seq <= last; seq++)
            wire_pack_line (&pack, self->lines[seq], strlen (self->lines[seq]));
        zmsg_addmem (msg, pack.data, pack.bytes);
        wire_pack_free (&pack);
    } else
        for (int64_t seq = first; seq <= last; seq++)
            zmsg_addstr (msg, self->lines[seq]);
    zmsg_send (&msg, self->pub);
}

static void s_publish_heartbeat (stream_t *self, int64_t last_seq)
{
    char text[24];
    snprintf (text, sizeof text, "%" PRId64, last_seq);
    zstr_sendx (self->pub, "HEARTBEAT", text, NULL);
}

//  --------------------------------------------------------------------------
//  The consumer: checks order inside the callback, counts everything

typedef struct {
    int64_t first_seq; // applied_seq + 1 at start
    int64_t last_seq;
    size_t events;
    size_t not_alice; // events from a reply that should never be seen
    size_t applied_calls;
    int64_t applied_seq; // as last reported by on_applied
    size_t results;
    int64_t seq_at_result; // last_seq when the last result came
    char request_id[64];
    char result_json[256];
    void *request_probe;     // the stream's ROUTER, looked at during on_event (seq 1)
    bool asked_during_seq_1; // a FETCH was waiting there while seq 1 was applied
} sink_t;

static void s_on_event (void *arg, const event_t *event, const char *line,
                        size_t line_bytes)
{
    sink_t *sink = (sink_t *)arg;
    assert (event->seq == sink->last_seq + 1); // exactly once, in order, always
    assert (strlen (line) == line_bytes);
    if (sink->request_probe && event->seq == 1) {
        //  The stream shares this loop, so a FETCH sent before this page
        //  is applied waits on its socket now.
        zmq_pollitem_t item = {sink->request_probe, 0, ZMQ_POLLIN, 0};
        sink->asked_during_seq_1 = zmq_poll (&item, 1, WAIT_MS) == 1;
    }
    sink->last_seq = event->seq;
    sink->events++;
    if (!streq (event->account, "alice"))
        sink->not_alice++;
}

static void s_on_result (void *arg, const char *request_id, const char *result_json)
{
    sink_t *sink = (sink_t *)arg;
    sink->results++;
    sink->seq_at_result = sink->last_seq;
    snprintf (sink->request_id, sizeof sink->request_id, "%s", request_id);
    snprintf (sink->result_json, sizeof sink->result_json, "%s", result_json);
}

static void s_on_applied (void *arg, int64_t applied_seq)
{
    sink_t *sink = (sink_t *)arg;
    assert (applied_seq == sink->last_seq);
    sink->applied_calls++;
    sink->applied_seq = applied_seq;
}

//  --------------------------------------------------------------------------
//  Fixture: loop, stream, consumer and (once started) the subscriber

typedef struct fixture fixture_t;
typedef bool (condition_fn) (fixture_t *self);

struct fixture {
    zloop_t *loop;
    stream_t *stream;
    sink_t sink;
    subscriber_t *subscriber;
    condition_fn *condition; // of the wait in progress
    int64_t deadline_ms;
    bool met;
};

static fixture_t *s_fixture_new (void)
{
    fixture_t *self = (fixture_t *)zmalloc (sizeof (fixture_t));
    assert (self);
    self->loop = zloop_new ();
    assert (self->loop);
    self->stream = s_stream_new (self->loop);
    return self;
}

static void s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    subscriber_destroy (&self->subscriber);
    s_stream_destroy (&self->stream);
    zloop_destroy (&self->loop);
    free (self);
    *self_p = NULL;
}

typedef struct {
    int64_t applied_seq;
    bool want_results;
    int upstream_timeout_ms;
    const char *identity;   // the local state's id of seq 1
    const char *applied_id; // its id at applied_seq
} start_t;

static void s_start (fixture_t *self, start_t start)
{
    char publish[64], replay[64];
    snprintf (publish, sizeof publish, "%s", zsock_endpoint (self->stream->pub));
    snprintf (replay, sizeof replay, "tcp://127.0.0.1:%d", self->stream->replay_port);
    subscriber_config_t config = {
        .publish_endpoint = publish,
        .replay_endpoint = replay,
        .applied_seq = start.applied_seq,
        .want_results = start.want_results,
        .upstream_timeout_ms = start.upstream_timeout_ms,
        .identity = start.identity,
        .applied_id = start.applied_id,
    };
    subscriber_handlers_t handlers = {s_on_event, s_on_result, s_on_applied};
    self->sink.first_seq = start.applied_seq + 1;
    self->sink.last_seq = start.applied_seq;
    self->subscriber = subscriber_new (self->loop, &config, &handlers, &self->sink);
    assert (self->subscriber);
}

static int s_check_condition (zloop_t *loop, int timer_id, void *arg)
{
    fixture_t *self = (fixture_t *)arg;
    self->met = self->condition (self);
    return self->met || zclock_mono () >= self->deadline_ms ? -1 : 0;
}

//  Runs the loop until condition holds (true) or timeout_ms pass (false).
static bool s_wait_for (fixture_t *self, condition_fn *condition, int timeout_ms)
{
    self->condition = condition;
    self->met = condition (self);
    if (self->met)
        return true;
    self->deadline_ms = zclock_mono () + timeout_ms;
    int timer_id = zloop_timer (self->loop, CHECK_EVERY_MS, 0, s_check_condition, self);
    assert (timer_id >= 0);
    zloop_start (self->loop);
    zloop_timer_end (self->loop, timer_id);
    return self->met;
}

static bool s_wait (fixture_t *self, condition_fn *condition)
{
    return s_wait_for (self, condition, WAIT_MS);
}

static bool s_never (fixture_t *self)
{
    return false;
}

//  Lets the loop run a little: an interleaving point, not a wait for anything.
static void s_run_for (fixture_t *self, int duration_ms)
{
    s_wait_for (self, s_never, duration_ms);
}

static bool s_caught_up (fixture_t *self)
{
    return subscriber_caught_up (self->subscriber) &&
           subscriber_applied_seq (self->subscriber) == self->stream->visible_seq;
}

static bool s_live (fixture_t *self)
{
    return s_caught_up (self) && self->stream->subscribed_events;
}

static bool s_applied_all (fixture_t *self)
{
    return subscriber_applied_seq (self->subscriber) == self->stream->log_seq;
}

static bool s_request_held (fixture_t *self)
{
    return self->stream->held_count >= 1 && self->stream->subscribed_events;
}

static bool s_connected (fixture_t *self)
{
    return subscriber_connected (self->subscriber);
}

static bool s_one_request (fixture_t *self)
{
    return self->stream->fetches_received >= 1;
}

static bool s_two_requests (fixture_t *self)
{
    return self->stream->fetches_received >= 2;
}

static bool s_disconnected (fixture_t *self)
{
    return !subscriber_connected (self->subscriber);
}

static bool s_three_results (fixture_t *self)
{
    return self->sink.results == 3;
}

static bool s_one_result (fixture_t *self)
{
    return self->sink.results == 1;
}

//  --------------------------------------------------------------------------
//  Claims

//  Every claim gets a fresh fake stream and subscriber.
static void s_run_with_fixture (void (*test) (fixture_t *))
{
    fixture_t *fixture = s_fixture_new ();
    test (fixture);
    s_fixture_destroy (&fixture);
}

#define RUN_WITH_FIXTURE(test) CHECK_RUN (test, s_run_with_fixture (test))

static void test_catches_up_from_zero_over_several_fetch_pages (fixture_t *f)
{
    s_stream_append (f->stream, 25);
    f->stream->page_events_max = 10;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 25);
    CHECK (f->sink.last_seq == 25);
    CHECK (f->sink.applied_calls == 3); // pages of 10, 10 and 5
    CHECK (f->sink.applied_seq == 25);
    CHECK (subscriber_fetches (f->subscriber) == 4); // three pages, then an empty one
    CHECK (subscriber_head_seq (f->subscriber) == 25);
    CHECK (subscriber_connected (f->subscriber));
}

static void test_starts_from_a_nonzero_applied_seq (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    s_start (f, (start_t){.applied_seq = 7, .identity = "ev-1", .applied_id = "ev-7"});
    CHECK (subscriber_applied_seq (f->subscriber) == 7);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 13); // 8 .. 20; on_event asserts the first was 8
    CHECK (f->sink.last_seq == 20);
    CHECK (f->stream->froms[0] == 7); // the event applied at 7 is compared first
    CHECK (subscriber_diverged (f->subscriber) == NULL);
}

static bool s_diverged (fixture_t *self)
{
    return subscriber_diverged (self->subscriber) != NULL;
}

static bool s_reason_has (fixture_t *self, const char *text)
{
    const char *reason = subscriber_diverged (self->subscriber);
    return reason && strstr (reason, text);
}

//  A line like the fake stream's, with an id of another log.
static void s_stream_replace_other (stream_t *self, int64_t seq)
{
    char *line = s_make_line (seq, "alice");
    char *at = strstr (line, "\"id\":\"ev-");
    assert (at);
    memcpy (at + 6, "xx", 2); // "ev-N" becomes "xx-N": same length, another id
    s_stream_replace (self, seq, line);
    free (line);
}

static void test_an_older_stream_refusing_the_identity_frame_is_followed_without (
    fixture_t *f)
{
    s_stream_append (f->stream, 20);
    f->stream->older = true;
    s_start (f, (start_t){.applied_seq = 7, .identity = "ev-1", .applied_id = "ev-7"});
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 13);
    CHECK (f->stream->identity_asked == 1); // once: then FETCHes no longer ask
    CHECK (subscriber_diverged (f->subscriber) == NULL);
}

static void test_replica_ahead_of_the_stream_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){.applied_seq = 20, .identity = "ev-1", .applied_id = "ev-20"});
    CHECK (s_wait (f, s_diverged));
    CHECK (s_reason_has (f, "ends at seq 10, before seq 20"));
    s_run_for (f, 100);
    CHECK (f->sink.events == 0);
    CHECK (subscriber_applied_seq (f->subscriber) == 20);
    CHECK (!subscriber_caught_up (f->subscriber));
}

static void test_another_event_at_applied_seq_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    s_stream_replace_other (f->stream, 7);
    s_start (f, (start_t){.applied_seq = 7, .applied_id = "ev-7"});
    CHECK (s_wait (f, s_diverged));
    CHECK (s_reason_has (f, "holds id \"xx-7\" at seq 7"));
    s_run_for (f, 100);
    CHECK (f->sink.events == 0);
}

static void test_another_logs_identity_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    s_stream_replace_other (f->stream, 1);
    s_start (f, (start_t){.applied_seq = 7, .identity = "ev-1", .applied_id = "ev-7"});
    CHECK (s_wait (f, s_diverged));
    CHECK (s_reason_has (f, "starts with id \"xx-1\""));
    CHECK (f->sink.events == 0);
}

static void test_other_identity_in_a_heartbeat_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    CHECK (subscriber_diverged (f->subscriber) == NULL);
    zstr_sendx (f->stream->pub, "HEARTBEAT", "10", "ev-1", NULL); // the same log
    s_run_for (f, 50);
    CHECK (subscriber_diverged (f->subscriber) == NULL);
    zstr_sendx (f->stream->pub, "HEARTBEAT", "10", "xx-1", NULL);
    CHECK (s_wait (f, s_diverged));
    s_stream_append (f->stream, 11);
    s_publish_events (f->stream, 11, 11);
    s_run_for (f, 100);
    CHECK (f->sink.events == 10); // nothing after the divergence
}

//  A log restored from an earlier copy: shorter, then a heartbeat says so.
static void test_log_gone_back_under_a_live_subscriber_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    f->stream->log_seq = f->stream->visible_seq = 6; // lines 7.. stay allocated
    s_publish_heartbeat (f->stream, 6);
    CHECK (s_wait (f, s_diverged));
    CHECK (s_reason_has (f, "ends at seq 6, before seq 10"));
    f->stream->log_seq = 10; // freed by the fixture
}

//  The same length but other events: the republished seq makes it check.
static void test_republished_seq_with_another_history_is_refused (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    for (int64_t seq = 6; seq <= 10; seq++)
        s_stream_replace_other (f->stream, seq);
    s_publish_events (f->stream, 10, 10);
    CHECK (s_wait (f, s_diverged));
    CHECK (s_reason_has (f, "holds id \"xx-10\" at seq 10, where \"ev-10\""));
}

static void test_live_events_after_catch_up_are_applied_in_order_once (fixture_t *f)
{
    s_stream_append (f->stream, 5);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    uint64_t fetches = subscriber_fetches (f->subscriber);
    s_stream_append (f->stream, 9);
    s_publish_events (f->stream, 6, 7);
    s_publish_events (f->stream, 8, 8);
    s_publish_events (f->stream, 9, 9);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 9);
    CHECK (f->sink.applied_calls == 4); // the catch-up batch, then one per message
    CHECK (subscriber_fetches (f->subscriber) == fetches); // all came live
    CHECK (subscriber_gaps (f->subscriber) == 0);
}

static void test_live_events_during_catch_up_are_applied_from_the_buffer (fixture_t *f)
{
    s_stream_append (f->stream, 12);
    f->stream->visible_seq = 10; // 11 and 12 are published after this reply was read
    f->stream->holds = 1;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_request_held));
    s_publish_events (f->stream, 11, 12);
    //  Nothing came from the replay socket yet: connected means the live
    //  message was read, so it is in the buffer before the reply comes.
    CHECK (s_wait (f, s_connected));
    s_stream_answer (f->stream, &f->stream->held[0]);
    //  FETCH never shows 11 and 12: they can only come from the buffer.
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 12);
    CHECK (subscriber_caught_up (f->subscriber));
}

static void test_live_events_during_catch_up_are_not_applied_twice (fixture_t *f)
{
    s_stream_append (f->stream, 12);
    f->stream->holds = 1; // the reply will carry 11 and 12 as well
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_request_held));
    s_publish_events (f->stream, 11, 12);
    CHECK (s_wait (f, s_connected)); // the live message is in the buffer (see above)
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_caught_up));
    //  A later live event proves the buffered duplicates were drained.
    s_stream_append (f->stream, 13);
    s_publish_events (f->stream, 13, 13);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 13);
}

static void test_gap_in_live_events_is_fetched (fixture_t *f)
{
    s_stream_append (f->stream, 9);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    uint64_t fetches = subscriber_fetches (f->subscriber);
    s_stream_append (f->stream, 13);
    s_publish_events (f->stream, 10, 10);
    s_publish_events (f->stream, 13, 13); // 11 and 12 were lost on the way
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 13);
    CHECK (subscriber_gaps (f->subscriber) == 1);
    CHECK (subscriber_fetches (f->subscriber) > fetches);
}

static void test_heartbeat_ahead_triggers_a_fetch (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    uint64_t fetches = subscriber_fetches (f->subscriber);
    s_stream_append (f->stream, 15); // published, but this subscriber missed all of it
    s_publish_heartbeat (f->stream, 15);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 15);
    CHECK (subscriber_head_seq (f->subscriber) == 15);
    CHECK (subscriber_fetches (f->subscriber) > fetches);
}

static void test_heartbeat_at_applied_seq_fetches_nothing (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    uint64_t fetches = subscriber_fetches (f->subscriber);
    s_publish_heartbeat (f->stream, 10);
    s_stream_append (f->stream, 11);
    s_publish_events (f->stream, 11, 11); // after the heartbeat on the same socket
    CHECK (s_wait (f, s_applied_all));
    CHECK (subscriber_fetches (f->subscriber) == fetches);
}

static void test_duplicates_and_old_seqs_are_ignored (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    uint64_t fetches = subscriber_fetches (f->subscriber);
    s_stream_append (f->stream, 12);
    s_publish_events (f->stream, 5, 5);
    s_publish_events (f->stream, 10, 10);
    s_publish_events (f->stream, 9, 11); // one new event behind two old ones
    s_publish_events (f->stream, 11, 11);
    s_publish_events (f->stream, 1, 10);
    s_publish_events (f->stream, 12, 12); // last on the same socket: all above were seen
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 12);
    //  A seq published again makes it compare the log once (FETCH from
    //  applied_seq): the history is the same, so it goes on.
    CHECK (subscriber_fetches (f->subscriber) > fetches);
    CHECK (subscriber_gaps (f->subscriber) == 0);
    CHECK (subscriber_diverged (f->subscriber) == NULL);
}

static void test_replay_that_does_not_answer_is_retried_on_a_new_socket (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    f->stream->answering = false;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_one_request));
    //  The stream dies with the request and comes back on the same port.
    s_stream_close_router (f->stream, f->loop);
    f->stream->answering = true;
    CHECK (s_stream_bind_router (f->stream, f->loop) == 0);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 20);
    CHECK (subscriber_fetches (f->subscriber) >= 2);
}

static bool s_two_held (fixture_t *self)
{
    return self->stream->held_count == 2;
}

static void s_stream_rewrite (stream_t *self, const char *account)
{
    for (int64_t seq = 1; seq <= self->log_seq; seq++) {
        char *line = s_make_line (seq, account);
        s_stream_replace (self, seq, line);
        free (line);
    }
}

static void test_late_reply_to_a_timed_out_fetch_is_never_applied (fixture_t *f)
{
    s_stream_append (f->stream, 5);
    f->stream->holds = 2;
    s_start (f, (start_t){0});
    //  The first FETCH timed out, the second came on a new socket.
    CHECK (s_wait (f, s_two_held));
    //  The late answer to the first, with events nobody may see, comes
    //  just before the answer to the second.
    s_stream_rewrite (f->stream, "mallory");
    s_stream_answer (f->stream, &f->stream->held[0]);
    s_stream_rewrite (f->stream, "alice");
    s_stream_answer (f->stream, &f->stream->held[1]);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 5);
    CHECK (f->sink.not_alice == 0);
}

static bool s_one_held (fixture_t *self)
{
    return self->stream->held_count == 1;
}

//  The next page is asked for when a page arrives, before it is applied;
//  pages never overlap and each event comes once, in order.
static void test_pipelined_pages_arrive_and_apply_in_order_exactly_once (fixture_t *f)
{
    s_stream_append (f->stream, 35);
    f->stream->page_events_max = 10;
    f->stream->holds = 2;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_one_held));
    f->sink.request_probe = zsock_resolve (f->stream->router);
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_two_requests));
    CHECK (f->sink.asked_during_seq_1); // the next page was asked for first
    CHECK (f->stream->froms[1] == 11);
    CHECK (s_wait (f, s_two_held));
    s_stream_answer (f->stream, &f->stream->held[1]);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 35); // on_event asserts each seq is the next one
    CHECK (f->sink.applied_calls == 4);
    CHECK (f->stream->fetches_received == 5);
    int64_t froms[] = {1, 11, 21, 31, 36};
    for (size_t index = 0; index < 5; index++)
        CHECK (f->stream->froms[index] == froms[index]);
    CHECK (subscriber_fetches (f->subscriber) == 5);
}

//  The first page stops at a bad line, so the page already asked for after
//  it does not fit: its reply is ignored, and the bad seq is fetched again.
static void test_next_page_after_a_page_that_stopped_short_is_ignored (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    f->stream->page_events_max = 10;
    char *good = strdup (f->stream->lines[5]);
    s_stream_replace (f->stream, 5, "{\"seq\":5,\"id\":\"broken\"}");
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_two_requests));
    CHECK (f->stream->froms[1] == 11);
    s_run_for (f, 100); // its reply (11 .. 20) arrives meanwhile
    CHECK (f->sink.events == 4);
    CHECK (subscriber_applied_seq (f->subscriber) == 4);
    s_stream_replace (f->stream, 5, good);
    free (good);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 20);
    CHECK (f->stream->froms[2] == 5);
}

//  The reply to the first page arrives; the second page's FETCH is held
//  and times out; the socket is reset and the page asked again. The held
//  request's late answer, with events nobody may see, is never applied.
static void test_stale_second_reply_after_a_socket_reset_is_ignored (fixture_t *f)
{
    s_stream_append (f->stream, 20);
    f->stream->page_events_max = 10;
    f->stream->holds = 2;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_one_held));
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_two_held)); // the pipelined FETCH 11, never answered
    CHECK (f->stream->froms[1] == 11);
    CHECK (s_wait (f, s_caught_up)); // FETCH 10 (the line applied, compared) on a new socket
    CHECK (f->stream->froms[2] == 10);
    s_stream_rewrite (f->stream, "mallory");
    s_stream_answer (f->stream, &f->stream->held[1]);
    s_run_for (f, 100);
    CHECK (f->sink.events == 20);
    CHECK (f->sink.not_alice == 0);
}

//  The first FETCH of a 5-event log is answered with page (PACKED, at
//  log_last_seq 5): nothing of it may be applied, the same page is asked
//  again, and the subscriber then catches up from the log.
static void s_check_bad_page_is_asked_again (fixture_t *f, const char *page,
                                             size_t page_bytes)
{
    s_stream_append (f->stream, 5);
    f->stream->holds = 1;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_one_held));
    zmsg_t *request = f->stream->held[0];
    f->stream->held[0] = NULL;
    zmsg_t *reply = zmsg_new ();
    zframe_t *identity = zmsg_pop (request);
    zmsg_append (reply, &identity);
    zmsg_addstr (reply, "PACKED");
    zmsg_addstr (reply, "5");
    zmsg_addmem (reply, page, page_bytes);
    zmsg_send (&reply, f->stream->router);
    zmsg_destroy (&request);
    CHECK (s_wait (f, s_two_requests));
    CHECK (f->stream->froms[1] == 1); // nothing of it was applied
    CHECK (f->stream->sockets == 2);  // asked on a new socket: the old one is dropped
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 5);
}

//  More lines than the FETCH allows: not an answer to apply.
static void test_reply_larger_than_any_answer_is_dropped_and_asked_again (fixture_t *f)
{
    char *line = s_make_line (1, "alice");
    size_t line_bytes = strlen (line);
    size_t page_bytes = (line_bytes + 1) * (SUBSCRIBER_FETCH_EVENTS_MAX + 1);
    char *page = (char *)malloc (page_bytes);
    assert (page);
    for (size_t at = 0; at < page_bytes; at += line_bytes + 1) {
        memcpy (page + at, line, line_bytes);
        page[at + line_bytes] = '\n';
    }
    s_check_bad_page_is_asked_again (f, page, page_bytes);
    free (page);
    free (line);
}

//  A page cut inside its last line is not a page.
static void test_page_not_ending_in_a_line_end_is_dropped_and_asked_again (fixture_t *f)
{
    char *first = s_make_line (1, "alice"), *second = s_make_line (2, "alice");
    char *page = zsys_sprintf ("%s\n%s", first, second);
    s_check_bad_page_is_asked_again (f, page, strlen (page));
    zstr_free (&page);
    free (first);
    free (second);
}

static void test_invalid_line_stops_applying_until_it_is_fixed (fixture_t *f)
{
    s_stream_append (f->stream, 10);
    char *good = strdup (f->stream->lines[5]);
    s_stream_replace (f->stream, 5, "{\"seq\":5,\"id\":\"broken\"}");
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_two_requests)); // it asked again rather than skipping
    CHECK (subscriber_applied_seq (f->subscriber) == 4);
    CHECK (f->sink.events == 4);
    CHECK (!subscriber_caught_up (f->subscriber));
    s_stream_replace (f->stream, 5, good);
    free (good);
    CHECK (s_wait (f, s_caught_up));
    CHECK (f->sink.events == 10);
}

//  A line of seq with another ts or spelling than the log's.
static char *s_make_line_at (int64_t seq, int64_t ts_ms)
{
    event_t event;
    event_init (&event);
    event.seq = seq;
    event.ts_ms = ts_ms;
    event.type = EVENT_DEPOSITED;
    snprintf (event.id, sizeof event.id, "ev-%" PRId64, seq);
    snprintf (event.account, sizeof event.account, "alice");
    event.amount = seq;
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = event_format_stored (&event, line, sizeof line);
    assert (bytes > 0);
    return strdup (line);
}

//  Live lines that cannot be next (ts before the last applied one; valid
//  JSON of the next event but not its canonical form) are never applied,
//  and the good line the log holds is.
static void test_impossible_live_lines_are_dropped_and_the_log_applied (fixture_t *f)
{
    s_stream_append (f->stream, 5);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    char *backwards = s_make_line_at (6, 1795000000000LL + 1);
    char *spaced = zsys_sprintf ("{\"seq\":6,\n%s", f->stream->lines[5] + 9);
    const char *lines[] = {backwards, spaced, "garbage", "{\"seq\":6}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        zstr_sendx (f->stream->pub, "EVENTS", lines[i], NULL);
        s_run_for (f, 50);
        CHECK (f->sink.events == 5);
    }
    CHECK (subscriber_rejected (f->subscriber) >= 4);
    s_stream_append (f->stream, 6);
    s_publish_events (f->stream, 6, 6);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 6);
    free (backwards);
    zstr_free (&spaced);
}

//  The same from the log itself: applying stops before the line, for good.
static void test_ts_going_backwards_in_a_page_stops_applying (fixture_t *f)
{
    s_stream_append (f->stream, 8);
    char *backwards = s_make_line_at (6, 1795000000000LL + 2);
    s_stream_replace (f->stream, 6, backwards);
    free (backwards);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_two_requests));
    s_run_for (f, 100);
    CHECK (f->sink.events == 5);
    CHECK (!subscriber_caught_up (f->subscriber));
}

//  A start after seq 5 knows seq 5's ts: seq 6 may not go before it.
static void test_applied_ts_at_start_bounds_the_next_event (fixture_t *f)
{
    s_stream_append (f->stream, 6);
    char *backwards = s_make_line_at (6, 1795000000000LL + 3);
    s_stream_replace (f->stream, 6, backwards);
    free (backwards);
    char publish[64], replay[64];
    snprintf (publish, sizeof publish, "%s", zsock_endpoint (f->stream->pub));
    snprintf (replay, sizeof replay, "tcp://127.0.0.1:%d", f->stream->replay_port);
    subscriber_config_t start = {.publish_endpoint = publish,
                                 .replay_endpoint = replay,
                                 .applied_seq = 5,
                                 .applied_ts_ms = 1795000000000LL + 5};
    subscriber_handlers_t handlers = {s_on_event, s_on_result, s_on_applied};
    f->sink.first_seq = 6;
    f->sink.last_seq = 5;
    f->subscriber = subscriber_new (f->loop, &start, &handlers, &f->sink);
    CHECK (f->subscriber);
    CHECK (s_wait (f, s_two_requests));
    CHECK (f->sink.events == 0);
}

//  Lines past the log_last_seq the reply names: the reply lies.
static void test_page_beyond_its_own_log_last_seq_is_dropped_and_asked_again (fixture_t *f)
{
    char *page = strdup ("");
    for (int64_t seq = 1; seq <= 6; seq++) {
        char *line = s_make_line (seq, "alice");
        char *longer = zsys_sprintf ("%s%s\n", page, line);
        free (page);
        free (line);
        page = longer;
    }
    s_check_bad_page_is_asked_again (f, page, strlen (page));
    free (page);
}

//  Nothing, although the reply says the log goes on to seq 5.
static void test_empty_page_that_names_more_is_dropped_and_asked_again (fixture_t *f)
{
    s_check_bad_page_is_asked_again (f, "", 0);
}

static bool s_buffer_dropped (fixture_t *self)
{
    return subscriber_rejected (self->subscriber) > 0 &&
           subscriber_head_seq (self->subscriber) == self->stream->log_seq;
}

//  Live events and heartbeats beyond anything the log ever gives: the
//  subscriber stays at what the log holds, drops them, and the head it
//  reports comes back to the log's end.
static void test_live_events_the_log_never_has_are_dropped (fixture_t *f)
{
    s_stream_append (f->stream, 5);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    char *ahead = s_make_line (9, "alice");
    zstr_sendx (f->stream->pub, "EVENTS", ahead, NULL);
    free (ahead);
    CHECK (s_wait (f, s_buffer_dropped));
    CHECK (f->sink.events == 5);
    s_publish_heartbeat (f->stream, 1000000000000LL);
    s_run_for (f, 100);
    CHECK (s_wait (f, s_buffer_dropped));
    s_publish_heartbeat (f->stream, 9007199254740992LL); // past any seq: ignored
    s_stream_append (f->stream, 7);
    s_publish_events (f->stream, 6, 7);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 7);
}

static void test_results_are_delivered_when_wanted (fixture_t *f)
{
    s_stream_append (f->stream, 3);
    s_start (f, (start_t){.want_results = true});
    CHECK (s_wait (f, s_live));
    CHECK (f->stream->subscribed_results);
    zstr_sendx (f->stream->pub, "RESULT", "req-1", "{\"status\":\"ok\",\"first_seq\":3}",
                NULL);
    CHECK (s_wait (f, s_one_result));
    CHECK (streq (f->sink.request_id, "req-1"));
    CHECK (streq (f->sink.result_json, "{\"status\":\"ok\",\"first_seq\":3}"));
}

//  A RESULT is three frames; one of two or four is not a result.
static void test_results_of_the_wrong_frame_count_are_ignored (fixture_t *f)
{
    s_stream_append (f->stream, 3);
    s_start (f, (start_t){.want_results = true});
    CHECK (s_wait (f, s_live));
    zstr_sendx (f->stream->pub, "RESULT", "req-short", NULL);
    zstr_sendx (f->stream->pub, "RESULT", "req-long", "{\"status\":\"ok\"}", "extra",
                NULL);
    zstr_sendx (f->stream->pub, "RESULT", "req-2", "{\"status\":\"ok\",\"first_seq\":4}",
                NULL);
    CHECK (s_wait (f, s_one_result));
    CHECK (streq (f->sink.request_id, "req-2"));
    CHECK (streq (f->sink.result_json, "{\"status\":\"ok\",\"first_seq\":4}"));
}

static bool s_two_results (fixture_t *self)
{
    return self->sink.results == 2;
}

//  ["RESULTS", "id SP json LF"...]: each result on its own; a record that
//  is not one ends the frame's results.
static void test_packed_results_are_delivered_one_by_one (fixture_t *f)
{
    s_stream_append (f->stream, 3);
    s_start (f, (start_t){.want_results = true});
    CHECK (s_wait (f, s_live));
    zstr_sendx (f->stream->pub, "RESULTS",
                "req-1 {\"status\":\"ok\",\"first_seq\":4}\n"
                "req-2 {\"status\":\"conflict\",\"versions\":{}}\n"
                "no-json-here\nreq-3 {}\n",
                NULL);
    CHECK (s_wait (f, s_two_results));
    CHECK (streq (f->sink.request_id, "req-2"));
    CHECK (streq (f->sink.result_json, "{\"status\":\"conflict\",\"versions\":{}}"));
    zstr_sendx (f->stream->pub, "RESULTS", "req-4 {}\n", "extra", NULL); // ignored
    zstr_sendx (f->stream->pub, "RESULTS", "req-5 {\"status\":\"ok\"}\n", NULL);
    CHECK (s_wait (f, s_three_results));
    CHECK (streq (f->sink.request_id, "req-5"));
}

//  A packed frame whose lines skip a seq: those before the gap are applied,
//  the rest wait for the FETCH that fills it.
static void test_gap_inside_a_packed_frame_is_fetched (fixture_t *f)
{
    s_stream_append (f->stream, 9);
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_live));
    s_stream_append (f->stream, 13);
    wire_pack_t pack = {0};
    for (int64_t seq = 10; seq <= 13; seq++)
        if (seq != 12)
            wire_pack_line (&pack, f->stream->lines[seq], strlen (f->stream->lines[seq]));
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "EVENTS");
    zmsg_addmem (msg, pack.data, pack.bytes);
    zmsg_send (&msg, f->stream->pub);
    wire_pack_free (&pack);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 13);
    CHECK (subscriber_gaps (f->subscriber) == 1);
}

static void test_result_during_catch_up_comes_after_its_events (fixture_t *f)
{
    s_stream_append (f->stream, 11);
    f->stream->visible_seq = 10;
    f->stream->holds = 1;
    s_start (f, (start_t){.want_results = true});
    CHECK (s_wait (f, s_request_held));
    s_publish_events (f->stream, 11, 11);
    zstr_sendx (f->stream->pub, "RESULT", "req-11", "{\"status\":\"ok\"}", NULL);
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_one_result));
    CHECK (f->sink.seq_at_result == 11);
}

static void test_packed_result_during_catch_up_comes_after_its_events (fixture_t *f)
{
    s_stream_append (f->stream, 12);
    f->stream->visible_seq = 10;
    f->stream->holds = 1;
    s_start (f, (start_t){.want_results = true});
    CHECK (s_wait (f, s_request_held));
    s_publish_events (f->stream, 11, 12);
    zstr_sendx (f->stream->pub, "RESULTS", "req-11 {\"status\":\"ok\"}\n", NULL);
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_one_result));
    CHECK (f->sink.seq_at_result == 12);
}

static bool s_was_live (fixture_t *self)
{
    return subscriber_caught_up (self->subscriber);
}

static bool s_some_dropped (fixture_t *self)
{
    return subscriber_live_dropped (self->subscriber) > 0;
}

static void test_live_buffer_is_bounded_and_dropped_events_are_fetched (fixture_t *f)
{
    s_stream_append (f->stream, 12);
    f->stream->visible_seq = 10;
    f->stream->holds = 1;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_request_held));
    s_publish_events (f->stream, 11, 11);
    //  One message heavier than the whole buffer: 12 repeated.
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "EVENTS");
    for (size_t count = 0; count < SUBSCRIBER_LIVE_BUFFER_EVENTS_MAX; count++)
        zmsg_addstr (msg, f->stream->lines[12]);
    zmsg_send (&msg, f->stream->pub);
    CHECK (s_wait (f, s_some_dropped));
    CHECK (subscriber_live_dropped (f->subscriber) == SUBSCRIBER_LIVE_BUFFER_EVENTS_MAX);
    s_stream_answer (f->stream, &f->stream->held[0]);
    CHECK (s_wait (f, s_was_live)); // 1 .. 10 fetched, 11 from the buffer
    CHECK (f->sink.last_seq == 11);
    f->stream->visible_seq = 12;
    s_publish_heartbeat (f->stream, 12);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 12);
}

//  Large frames count by their bytes: a few dozen fill the buffer, the rest
//  are dropped, and the next good event is still applied.
static void test_live_buffer_is_bounded_in_bytes_too (fixture_t *f)
{
    s_stream_append (f->stream, 11);
    f->stream->visible_seq = 10;
    f->stream->holds = 1;
    s_start (f, (start_t){0});
    CHECK (s_wait (f, s_request_held));
    enum { FRAME_BYTES = 3 * 1024 * 1024, FRAMES = 30 }; // 90 MiB in all
    char *big = (char *)malloc (FRAME_BYTES);
    assert (big);
    memset (big, 'x', FRAME_BYTES);
    for (int count = 0; count < FRAMES; count++) {
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, "EVENTS");
        zmsg_addmem (msg, big, FRAME_BYTES);
        zmsg_send (&msg, f->stream->pub);
    }
    free (big);
    CHECK (s_wait (f, s_some_dropped));
    s_stream_answer (f->stream, &f->stream->held[0]);
    s_publish_events (f->stream, 11, 11);
    f->stream->visible_seq = 11;
    s_publish_heartbeat (f->stream, 11);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.events == 11);
}

//  Model: the stream's log grows in random appends; each is published,
//  lost, or followed by an old range again, heartbeats come now and then,
//  and replies come in random page sizes. Whatever the interleaving, the
//  consumer ends at the head having seen every seq once, in order (the
//  callback asserts it on every event).
static void test_random_losses_duplicates_and_pages_converge_exactly_once (fixture_t *f)
{
    unsigned int seed = 20261122;
    printf ("    seed %u\n", seed);
    s_stream_append (f->stream, 3);
    s_start (f, (start_t){.applied_seq = rand_r (&seed) % 3});
    while (f->stream->log_seq < LOG_EVENTS_MAX) {
        int64_t first = f->stream->log_seq + 1;
        int64_t last = first + rand_r (&seed) % 4;
        if (last > LOG_EVENTS_MAX)
            last = LOG_EVENTS_MAX;
        s_stream_append (f->stream, last);
        f->stream->page_events_max = 1 + rand_r (&seed) % 8;
        int dice = rand_r (&seed) % 10;
        if (dice < 7)
            s_publish_events (f->stream, first, last);
        if (dice == 8 && first > 5)
            s_publish_events (f->stream, first - 5, first - 1);
        if (dice == 9)
            s_publish_heartbeat (f->stream, last);
        s_run_for (f, rand_r (&seed) % 3);
    }
    s_publish_heartbeat (f->stream, f->stream->log_seq);
    CHECK (s_wait (f, s_applied_all));
    CHECK (f->sink.last_seq == LOG_EVENTS_MAX);
    CHECK (f->sink.events == (size_t)(LOG_EVENTS_MAX - f->sink.first_seq + 1));
}

static void test_connected_goes_false_when_nothing_arrives (fixture_t *f)
{
    s_stream_append (f->stream, 3);
    s_start (f, (start_t){.upstream_timeout_ms = 200});
    CHECK (!subscriber_connected (f->subscriber)); // nothing heard yet
    CHECK (s_wait (f, s_caught_up));
    CHECK (subscriber_connected (f->subscriber));
    CHECK (s_wait (f, s_disconnected)); // the fake stream sends no heartbeats
    s_publish_heartbeat (f->stream, 3);
    CHECK (s_wait (f, s_connected));
}

int main (void)
{
    zsys_init ();
    RUN_WITH_FIXTURE (test_catches_up_from_zero_over_several_fetch_pages);
    RUN_WITH_FIXTURE (test_starts_from_a_nonzero_applied_seq);
    RUN_WITH_FIXTURE (test_an_older_stream_refusing_the_identity_frame_is_followed_without);
    RUN_WITH_FIXTURE (test_replica_ahead_of_the_stream_is_refused);
    RUN_WITH_FIXTURE (test_another_event_at_applied_seq_is_refused);
    RUN_WITH_FIXTURE (test_another_logs_identity_is_refused);
    RUN_WITH_FIXTURE (test_other_identity_in_a_heartbeat_is_refused);
    RUN_WITH_FIXTURE (test_log_gone_back_under_a_live_subscriber_is_refused);
    RUN_WITH_FIXTURE (test_republished_seq_with_another_history_is_refused);
    RUN_WITH_FIXTURE (test_live_events_after_catch_up_are_applied_in_order_once);
    RUN_WITH_FIXTURE (test_live_events_during_catch_up_are_applied_from_the_buffer);
    RUN_WITH_FIXTURE (test_live_events_during_catch_up_are_not_applied_twice);
    RUN_WITH_FIXTURE (test_gap_in_live_events_is_fetched);
    RUN_WITH_FIXTURE (test_heartbeat_ahead_triggers_a_fetch);
    RUN_WITH_FIXTURE (test_heartbeat_at_applied_seq_fetches_nothing);
    RUN_WITH_FIXTURE (test_duplicates_and_old_seqs_are_ignored);
    RUN_WITH_FIXTURE (test_replay_that_does_not_answer_is_retried_on_a_new_socket);
    RUN_WITH_FIXTURE (test_late_reply_to_a_timed_out_fetch_is_never_applied);
    RUN_WITH_FIXTURE (test_invalid_line_stops_applying_until_it_is_fixed);
    RUN_WITH_FIXTURE (test_pipelined_pages_arrive_and_apply_in_order_exactly_once);
    RUN_WITH_FIXTURE (test_next_page_after_a_page_that_stopped_short_is_ignored);
    RUN_WITH_FIXTURE (test_stale_second_reply_after_a_socket_reset_is_ignored);
    RUN_WITH_FIXTURE (test_reply_larger_than_any_answer_is_dropped_and_asked_again);
    RUN_WITH_FIXTURE (test_page_not_ending_in_a_line_end_is_dropped_and_asked_again);
    RUN_WITH_FIXTURE (test_impossible_live_lines_are_dropped_and_the_log_applied);
    RUN_WITH_FIXTURE (test_ts_going_backwards_in_a_page_stops_applying);
    RUN_WITH_FIXTURE (test_applied_ts_at_start_bounds_the_next_event);
    RUN_WITH_FIXTURE (test_page_beyond_its_own_log_last_seq_is_dropped_and_asked_again);
    RUN_WITH_FIXTURE (test_empty_page_that_names_more_is_dropped_and_asked_again);
    RUN_WITH_FIXTURE (test_live_events_the_log_never_has_are_dropped);
    RUN_WITH_FIXTURE (test_results_are_delivered_when_wanted);
    RUN_WITH_FIXTURE (test_results_of_the_wrong_frame_count_are_ignored);
    RUN_WITH_FIXTURE (test_result_during_catch_up_comes_after_its_events);
    RUN_WITH_FIXTURE (test_packed_results_are_delivered_one_by_one);
    RUN_WITH_FIXTURE (test_gap_inside_a_packed_frame_is_fetched);
    RUN_WITH_FIXTURE (test_packed_result_during_catch_up_comes_after_its_events);
    RUN_WITH_FIXTURE (test_live_buffer_is_bounded_and_dropped_events_are_fetched);
    RUN_WITH_FIXTURE (test_live_buffer_is_bounded_in_bytes_too);
    RUN_WITH_FIXTURE (test_random_losses_duplicates_and_pages_converge_exactly_once);
    RUN_WITH_FIXTURE (test_connected_goes_false_when_nothing_arrives);
    return check_exit_status ();
}
