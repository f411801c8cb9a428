/*  lookup — see lookup.h. */
#include "lookup.h"

#include <inttypes.h>
#include <string.h>

#include "event.h"
#include "log.h"

//  Resolution of the timeout; a tick costs one comparison.
#define LOOKUP_TICK_MS 50
//  Replies taken per wake-up, so the HTTP server sharing the loop runs.
#define LOOKUP_DRAIN_MESSAGES_MAX 256
//  Largest frame taken: a line and its frames, with room; beyond it libzmq
//  drops the connection instead of buffering what a stream must not send.
#define LOOKUP_REPLY_BYTES_MAX (4 * EVENT_LINE_BYTES_MAX)

typedef struct {
    char id[EVENT_ID_BYTES_MAX + 1];
    int64_t sent_ms; // zclock_mono
} question_t;

struct lookup {
    zloop_t *loop;
    char *endpoint;
    const curve_t *curve; // borrowed; NULL: plain
    int timeout_ms;
    lookup_answer_fn *answer;
    void *arg;
    zsock_t *dealer;
    zlistx_t *questions; // question_t *, oldest first; owns them
    int tick_id;
    bool stale; // replies on dealer answer nothing any more: a new one is due
};

static int s_on_reply (zloop_t *loop, zsock_t *reader, void *arg);

static zsock_t *s_dealer_new (lookup_t *self)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer)
        return NULL;
    zsock_set_linger (dealer, 0);   // a question to a dead peer is worthless
    zsock_set_sndtimeo (dealer, 0); // never block the loop on send
    //  A FOUND is one line: far below a replay page.
    zsock_set_maxmsgsize (dealer, LOOKUP_REPLY_BYTES_MAX);
    if (self->curve)
        curve_apply_client (self->curve, dealer);
    if (zsock_connect (dealer, "%s", self->endpoint) ||
        zloop_reader (self->loop, dealer, s_on_reply, self)) {
        log_error ("lookup: connect (\"%s\") failed: %s", self->endpoint,
                   zmq_strerror (zmq_errno ()));
        zsock_destroy (&dealer);
    }
    return dealer;
}

//  Answers the oldest question and forgets it.
static void s_answer_oldest (lookup_t *self, int64_t seq, const char *line,
                             size_t line_bytes)
{
    question_t *question = (question_t *)zlistx_detach (self->questions, NULL);
    if (!question)
        return;
    self->answer (self->arg, question->id, seq, line, line_bytes);
    free (question);
}

//  Every question out gets "unknown"; their replies, if any come, are
//  dropped, and the next tick replaces the socket (not here: this may run
//  in the socket's own reader).
static void s_reset (lookup_t *self, const char *why)
{
    log_warn ("lookup: %zu questions to %s unanswered (%s); a new socket",
              zlistx_size (self->questions), self->endpoint, why);
    while (zlistx_size (self->questions))
        s_answer_oldest (self, -1, NULL, 0);
    self->stale = true;
}

static void s_dealer_recreate (lookup_t *self)
{
    zsock_t *dealer = s_dealer_new (self);
    if (!dealer)
        return; // the next tick tries again
    zloop_reader_end (self->loop, self->dealer);
    zsock_destroy (&self->dealer);
    self->dealer = dealer;
    self->stale = false;
}

static bool s_frame_int64 (zframe_t *frame, int64_t *value)
{
    char text[24];
    size_t bytes = frame ? zframe_size (frame) : 0;
    if (bytes == 0 || bytes >= sizeof text)
        return false;
    memcpy (text, zframe_data (frame), bytes);
    text[bytes] = 0;
    char *end;
    long long parsed = strtoll (text, &end, 10);
    *value = parsed;
    return *end == 0 && parsed > 0;
}

//  One reply: it answers the oldest question, if its id says so.
static void s_on_message (lookup_t *self, zmsg_t *reply)
{
    question_t *oldest = (question_t *)zlistx_first (self->questions);
    if (!oldest) {
        log_warn ("lookup: a reply from %s without a question, ignored", self->endpoint);
        return;
    }
    zframe_t *kind = zmsg_first (reply);
    zframe_t *id = zmsg_next (reply);
    if (kind && zframe_streq (kind, "ERROR")) {
        char *text = id ? zframe_strdup (id) : NULL;
        log_warn ("lookup: the stream refused LOOKUP \"%s\": %s", oldest->id,
                  text ? text : "");
        free (text);
        s_answer_oldest (self, -1, NULL, 0);
        return;
    }
    bool found = kind && zframe_streq (kind, "FOUND") && zmsg_size (reply) == 4;
    bool absent = kind && zframe_streq (kind, "ABSENT") && zmsg_size (reply) == 2;
    if ((!found && !absent) || !zframe_streq (id, oldest->id)) {
        s_reset (self, "a reply that answers none of them");
        return;
    }
    int64_t seq = 0;
    zframe_t *line = NULL;
    if (found && (!s_frame_int64 (zmsg_next (reply), &seq) || !(line = zmsg_next (reply)))) {
        s_reset (self, "a FOUND without a seq");
        return;
    }
    s_answer_oldest (self, seq, line ? (const char *)zframe_data (line) : NULL,
                     line ? zframe_size (line) : 0);
}

static int s_on_reply (zloop_t *loop, zsock_t *reader, void *arg)
{
    lookup_t *self = (lookup_t *)arg;
    for (int count = 0;
         count < LOOKUP_DRAIN_MESSAGES_MAX && (zsock_events (reader) & ZMQ_POLLIN);
         count++) {
        zmsg_t *reply = zmsg_recv (reader);
        if (!reply)
            break;
        if (!self->stale)
            s_on_message (self, reply);
        zmsg_destroy (&reply);
    }
    return 0;
}

static int s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    lookup_t *self = (lookup_t *)arg;
    question_t *oldest = (question_t *)zlistx_first (self->questions);
    if (oldest && zclock_mono () - oldest->sent_ms >= self->timeout_ms)
        s_reset (self, "no answer in time");
    if (self->stale)
        s_dealer_recreate (self);
    return 0;
}

static void s_question_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

lookup_t *lookup_new (zloop_t *loop, const char *replay_endpoint, int timeout_ms,
                      const curve_t *curve, lookup_answer_fn *answer, void *arg)
{
    assert (loop && replay_endpoint && answer && timeout_ms > 0);
    lookup_t *self = (lookup_t *)zmalloc (sizeof (lookup_t));
    self->loop = loop;
    self->curve = curve;
    self->timeout_ms = timeout_ms;
    self->answer = answer;
    self->arg = arg;
    self->tick_id = -1;
    self->endpoint = strdup (replay_endpoint);
    self->questions = zlistx_new ();
    if (!self->endpoint || !self->questions)
        goto failed;
    zlistx_set_destructor (self->questions, s_question_destroy);
    self->dealer = s_dealer_new (self);
    self->tick_id = zloop_timer (loop, LOOKUP_TICK_MS, 0, s_on_tick, self);
    if (!self->dealer || self->tick_id < 0)
        goto failed;
    return self;
failed:
    lookup_destroy (&self);
    return NULL;
}

void lookup_destroy (lookup_t **self_p)
{
    assert (self_p);
    lookup_t *self = *self_p;
    if (!self)
        return;
    if (self->tick_id >= 0)
        zloop_timer_end (self->loop, self->tick_id);
    if (self->dealer)
        zloop_reader_end (self->loop, self->dealer);
    zsock_destroy (&self->dealer);
    zlistx_destroy (&self->questions); // unanswered: their requests are answered 503
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

int lookup_ask (lookup_t *self, const char *id)
{
    assert (self && id);
    if (self->stale || zlistx_size (self->questions) >= LOOKUP_PENDING_MAX ||
        strlen (id) > EVENT_ID_BYTES_MAX)
        return -1;
    question_t *question = (question_t *)zmalloc (sizeof (question_t));
    memcpy (question->id, id, strlen (id) + 1);
    question->sent_ms = zclock_mono ();
    if (zstr_sendx (self->dealer, "LOOKUP", id, NULL)) {
        log_debug ("lookup: LOOKUP \"%s\" not sent: %s", id, zmq_strerror (zmq_errno ()));
        free (question);
        return -1;
    }
    zlistx_add_end (self->questions, question);
    return 0;
}
