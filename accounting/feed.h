/*  feed — live subscriptions: GET /events as server-sent events.

    A subscriber catches up from the replica (from any seq it asks for) and
    then goes live: the events the service applies are pushed to it as they
    are appended to the replica. Each event is one SSE frame:

        id: <seq>
        event: <type>
        data: <the stored line>

    Exactly once and in order, by one rule: a subscriber has a next_seq,
    and an event is sent to it only when its seq is next_seq. Live events
    reach a subscriber only while it is at the head (next_seq is the seq
    being appended); a subscriber behind the head reads the committed
    replica from next_seq instead, a page at a time while its buffer is
    empty, and meets the live events when it reaches the head. A reconnect
    with Last-Event-ID K is simply next_seq = K + 1, whichever instance
    and whatever restarts happened: the replica holds every seq.

    Bounded: at most subscribers_max subscribers, and each buffers at most
    FEED_BUFFER_BYTES_MAX unsent bytes. A live event that would take a
    subscriber's buffer over it is not pushed: the subscriber falls
    behind and reads it from the replica once its buffer drains (the rule
    above keeps that exact), so a burst larger than the buffer never
    costs a fast reader anything. A subscriber that takes nothing for
    stall_ms while bytes wait for it is cut off: the whole frames not yet
    handed to its connection are dropped, a final "event: error" frame
    says why, and the response ends once that is sent (the client resumes
    with Last-Event-ID). Idle subscribers get a ": keep-alive" comment
    every keepalive_ms.

    Tokens: a subscriber's filter keeps a copy of its token's account
    pattern. After a reload of the auth file every stream opened with a
    token ends, so that it reconnects and its token is checked again.
    The feed does not parse HTTP queries (api.c does).
*/
#ifndef FEED_H_INCLUDED
#define FEED_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "event.h"
#include "http.h"
#include "log_file.h"

#define FEED_SUBSCRIBERS_MAX_DEFAULT 64     // each holds a connection and a buffer
#define FEED_SUBSCRIBERS_LIMIT       100000 // sanity bound for --feed-subscribers-max
#define FEED_BUFFER_BYTES_MAX        (1024 * 1024) // unsent bytes per subscriber
//  Idle streams get a comment this often: below MHD's 30 s inactivity
//  timeout and the ~60 s idle timeout proxies commonly have.
#define FEED_KEEPALIVE_MS_DEFAULT 15000
#define FEED_KEEPALIVE_MS_LIMIT   3600000
//  A subscriber that takes nothing for this long while data waits is cut
//  off: well under MHD's 30 s inactivity timeout, which would close the
//  connection without the error frame.
#define FEED_STALL_MS_DEFAULT 10000
#define FEED_STALL_MS_LIMIT   25000

typedef struct feed feed_t;

//  Which events a subscriber sees. An event passes when every set
//  criterion holds.
typedef struct {
    char account[EVENT_ACCOUNT_BYTES_MAX + 1]; // "" or an id the event touches
    //  The token's account pattern (a copy: a reload of the auth file
    //  frees the principal, not the stream). The event touches an account
    //  it allows. Unset: every account.
    bool has_principal;
    auth_principal_t principal;
} feed_filter_t;

//  Sets the filter's principal (NULL, or one that sees every account:
//  none). Only the pattern is kept.
void feed_filter_set_principal (feed_filter_t *self, const auth_principal_t *principal);

//  True when the event passes the filter.
bool feed_filter_matches (const feed_filter_t *filter, const event_t *event);

//  replica is borrowed and must outlive the feed. Returns NULL when out
//  of memory or when the feed's timer cannot be set.
feed_t *feed_new (zloop_t *loop, log_file_t *replica, size_t subscribers_max,
                  int keepalive_ms, int stall_ms);

//  Ends every subscriber (their responses finish at their next read) and
//  frees the feed. Idempotent; nulls *self_p.
void feed_destroy (feed_t **self_p);

typedef enum {
    FEED_OK,
    FEED_FULL, // subscribers_max reached: nothing was answered
    FEED_NOMEM // the request was answered (connection closed)
} feed_result_t;

//  Answers request with an SSE stream from next_seq (>= 1) on, filtered.
//  On FEED_FULL the request is still the caller's to answer.
feed_result_t feed_subscribe (feed_t *self, http_request_t *request,
                              const feed_filter_t *filter, int64_t next_seq);

//  The service appended event (line: the stored line, no \n) to the
//  replica: subscribers at the head get it. Call in seq order, for every
//  event appended.
void feed_on_event (feed_t *self, const event_t *event, const char *line,
                    size_t line_bytes);

//  The replica was committed: wakes subscribers that have something to send.
void feed_on_applied (feed_t *self);

//  From now on, streams opened with a token end after a reload of http's
//  auth file: they reconnect (with Last-Event-ID) and their token is
//  checked again, so a revoked token stops receiving events. http is
//  borrowed and must outlive the feed's use of it (destroy it first:
//  feed_destroy does not touch it).
void feed_watch_auth (feed_t *self, http_server_t *http);

//  For /metrics and /stats.
size_t feed_subscriber_count (feed_t *self);
uint64_t feed_events_sent (feed_t *self);
uint64_t feed_cutoffs (feed_t *self);
uint64_t
feed_fallbacks (feed_t *self); // times a full buffer sent a client to the replica
uint64_t feed_refused (feed_t *self);

#endif
