/*  test_sender — the transaction's coalesced APPENDs (transaction/sender.h)
    over an inproc PUSH/PULL: the requests of one loop turn in one packed
    APPEND, a lone one-event request in the one-request form, a request
    too large for a pack alone, and a pack the stream cannot take failed
    request by request.
*/
#include "sender.h"

#include <czmq.h>

#include "check.h"

typedef struct {
    zsock_t *pull, *push;
    zloop_t *loop;
    sender_t *sender;
    char failed[8][80];
    size_t failed_count;
    zmsg_t *received;
} fixture_t;

static void s_failed (void *arg, const char *attempt)
{
    fixture_t *f = (fixture_t *)arg;
    if (f->failed_count < 8)
        snprintf (f->failed[f->failed_count++], sizeof f->failed[0], "%s", attempt);
}

//  Ends the loop once a message arrived: what the turn's timer sent.
static int s_on_pull (zloop_t *loop, zsock_t *reader, void *arg)
{
    fixture_t *f = (fixture_t *)arg;
    f->received = zmsg_recv (reader);
    return -1;
}

static void s_fixture (fixture_t *f, bool connected)
{
    static int count;
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://test-sender-%d", count++);
    *f = (fixture_t){0};
    f->push = zsock_new (ZMQ_PUSH);
    zsock_set_immediate (f->push, 1);
    zsock_set_sndtimeo (f->push, 0);
    if (connected) {
        f->pull = zsock_new_pull (endpoint);
        assert (f->pull);
    }
    //  Without a peer: a TCP port nothing listens on (inproc would queue).
    int rc = zsock_connect (f->push, "%s", connected ? endpoint : "tcp://127.0.0.1:1");
    assert (rc == 0);
    f->loop = zloop_new ();
    f->sender = sender_new (f->loop, f->push, s_failed, f);
    if (f->pull)
        zloop_reader (f->loop, f->pull, s_on_pull, f);
}

static void s_fixture_done (fixture_t *f)
{
    sender_destroy (&f->sender);
    zloop_destroy (&f->loop);
    zsock_destroy (&f->push);
    zsock_destroy (&f->pull);
    zmsg_destroy (&f->received);
}

static void s_request (fixture_t *f, const char *attempt, size_t count, const char *line)
{
    sender_begin (f->sender, attempt, count);
    for (size_t index = 0; index < count; index++)
        sender_line (f->sender, line, strlen (line));
    CHECK_EQ_INT (sender_end (f->sender), 0);
}

static int s_give_up (zloop_t *loop, int timer_id, void *arg)
{
    return -1; // only a failure waits this long
}

static void s_run_until_received (fixture_t *f)
{
    zloop_timer (f->loop, 10000, 1, s_give_up, f);
    zloop_start (f->loop);
}

static char *s_joined (zmsg_t *msg)
{
    char *text = (char *)calloc (1, zmsg_content_size (msg) + zmsg_size (msg) + 1);
    bool first = true;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        if (!first)
            strcat (text, "|");
        first = false;
        strncat (text, (const char *)zframe_data (frame), zframe_size (frame));
    }
    return text;
}

#define CHECK_RECEIVED(f, expected)                                                      \
    do {                                                                                 \
        char *text_ = (f)->received ? s_joined ((f)->received) : strdup ("(nothing)");   \
        int same_ = strcmp (text_, expected) == 0;                                       \
        if (!same_)                                                                      \
            fprintf (stderr, "    got \"%s\"\n", text_);                                 \
        free (text_);                                                                    \
        CHECK (same_);                                                                   \
    } while (0)

static void test_requests_of_one_turn_go_in_one_pack (void)
{
    fixture_t f;
    s_fixture (&f, true);
    s_request (&f, "i-1", 1, "{\"a\":1}");
    s_request (&f, "i-2", 2, "{\"b\":2}");
    s_request (&f, "i-3", 1, "{\"c\":3}");
    s_run_until_received (&f);
    CHECK_RECEIVED (&f, "APPEND||i-1 1\n{\"a\":1}\ni-2 2\n{\"b\":2}\n{\"b\":2}\ni-3 1\n{\"c\":3}\n");
    CHECK_EQ_INT (sender_stats (f.sender)->packs, 1);
    CHECK_EQ_INT (sender_stats (f.sender)->packed, 3);
    s_fixture_done (&f);
}

static void test_a_lone_event_goes_in_the_one_request_form (void)
{
    fixture_t f;
    s_fixture (&f, true);
    s_request (&f, "i-1", 1, "{\"a\":1}");
    s_run_until_received (&f);
    CHECK_RECEIVED (&f, "APPEND|i-1|{\"a\":1}");
    CHECK_EQ_INT (sender_stats (f.sender)->single, 1);
    //  A lone request of several events is packed: one frame, not one each.
    zmsg_destroy (&f.received);
    s_request (&f, "i-2", 2, "{\"b\":2}");
    s_run_until_received (&f);
    CHECK_RECEIVED (&f, "APPEND||i-2 2\n{\"b\":2}\n{\"b\":2}\n");
    s_fixture_done (&f);
}

static void test_a_request_too_large_for_a_pack_goes_alone_at_once (void)
{
    fixture_t f;
    s_fixture (&f, true);
    s_request (&f, "i-1", 1, "{\"a\":1}");
    char *line = (char *)malloc (16001);
    memset (line, 'x', 16000);
    line[16000] = '\0';
    s_request (&f, "i-2", 100, line); // 1.6 MB: beyond a pack
    f.received = zmsg_recv (f.pull);
    CHECK_EQ_INT (zmsg_size (f.received), 102);
    zmsg_first (f.received);
    zframe_t *id = zmsg_next (f.received);
    CHECK (zframe_streq (id, "i-2"));
    zmsg_destroy (&f.received);
    s_run_until_received (&f); // the pack of i-1 still goes at the turn's end
    CHECK_RECEIVED (&f, "APPEND|i-1|{\"a\":1}");
    free (line);
    s_fixture_done (&f);
}

static void test_a_pack_the_stream_cannot_take_fails_each_request (void)
{
    fixture_t f;
    s_fixture (&f, false); // no peer: with ZMQ_IMMEDIATE nothing can be queued
    s_request (&f, "i-1", 1, "{\"a\":1}");
    s_request (&f, "i-2", 1, "{\"b\":2}");
    sender_flush (f.sender);
    CHECK_EQ_INT (f.failed_count, 2);
    CHECK_EQ_STR (f.failed[0], "i-1");
    CHECK_EQ_STR (f.failed[1], "i-2");
    CHECK_EQ_INT (sender_stats (f.sender)->failed_packs, 1);
    //  A request too large for a pack is refused to its caller instead.
    char *line = (char *)malloc (16001);
    memset (line, 'x', 16000);
    line[16000] = '\0';
    sender_begin (f.sender, "i-3", 100);
    for (size_t index = 0; index < 100; index++)
        sender_line (f.sender, line, 16000);
    CHECK_EQ_INT (sender_end (f.sender), -1);
    free (line);
    sender_flush (f.sender);
    CHECK_EQ_INT (f.failed_count, 2);
    s_fixture_done (&f);
}

int main (void)
{
    zsys_init ();
    zsys_set_linger (0);
    RUN (test_requests_of_one_turn_go_in_one_pack);
    RUN (test_a_lone_event_goes_in_the_one_request_form);
    RUN (test_a_request_too_large_for_a_pack_goes_alone_at_once);
    RUN (test_a_pack_the_stream_cannot_take_fails_each_request);
    return check_exit_status ();
}
