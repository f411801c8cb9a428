/*  subscriber — the catch-up subscriber (the ZeroMQ Guide's Clone pattern).

    Keeps a local state in step with the stream's log: SUB first and buffer
    live events, FETCH from applied_seq + 1 over the replay DEALER until
    caught up, then apply the buffered live events whose seq > applied_seq.
    A live event with seq > applied_seq + 1, or a HEARTBEAT ahead of
    applied_seq, starts a FETCH for the gap. Events reach on_event exactly
    once, in seq order, never older ones.

    Nothing the stream sends is trusted: every line is checked before
    on_event sees it (exactly canonical, see event_parse_canonical; seq
    applied_seq + 1; ts not before the last applied one; at most
    EVENT_LINE_BYTES_MAX bytes), and so is every frame around the lines.
    What fails is logged (at most once a second), counted and dropped with
    the rest of its message; the subscriber then fetches again, after a
    pause when the replay side is at fault, and on_event keeps its
    contract, so a consumer's state and replica stay what the valid prefix
    made them. Reconnects are automatic (ZeroMQ
    reconnects; a replay request without answer is retried on a new
    socket), and nothing here ever blocks the loop.

    It also refuses a stream whose history is not the one applied here
    (a log restored from a backup, lost by a crash, or another
    deployment's): the stream's head must not be behind applied_seq,
    every catch-up starts with the event at applied_seq and its id must
    be the one applied (a seq published again, or a heartbeat behind,
    starts one), and the log's identity (the id of seq 1) that the
    stream announces must be the local one.
    On a mismatch it logs once, applies nothing more and says why
    (subscriber_diverged) until the process restarts.

    Used by accounting (read model) and transaction (write model).
*/
#ifndef SUBSCRIBER_H_INCLUDED
#define SUBSCRIBER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "curve.h"
#include "event.h"

#define SUBSCRIBER_FETCH_EVENTS_MAX                                                      \
    10000 // events per FETCH; the stream caps bytes at ~1 MiB
#define SUBSCRIBER_LIVE_BUFFER_EVENTS_MAX                                                \
    100000 // live events kept while catching up; beyond, dropped and fetched later

//  Three missed heartbeats at the stream's default period.
#define SUBSCRIBER_UPSTREAM_TIMEOUT_MS_DEFAULT 3000

typedef struct subscriber subscriber_t;

typedef struct {
    //  One event, exactly once, in seq order (seq == applied_seq + 1).
    //  event, line borrowed. line is the canonical line without \n.
    void (*on_event) (void *arg, const event_t *event, const char *line,
                      size_t line_bytes);
    //  Optional: a RESULT frame (request_id and result_json borrowed). Only
    //  delivered when the subscriber was created with want_results.
    void (*on_result) (void *arg, const char *request_id, const char *result_json);
    //  Optional: after a run of events was applied (a live message or a
    //  fetched batch), e.g. to flush a replica or wake waiters.
    void (*on_applied) (void *arg, int64_t applied_seq);
} subscriber_handlers_t;

typedef struct {
    const char *publish_endpoint; // stream's PUB, e.g. tcp://127.0.0.1:5556
    const char *replay_endpoint;  // stream's ROUTER, e.g. tcp://127.0.0.1:5558
    int64_t applied_seq;          // already applied locally (0 for nothing)
    int64_t applied_ts_ms;        // ts of the event at applied_seq (unused when 0)
    bool want_results;            // also subscribe to RESULT
    int upstream_timeout_ms; // no message for this long: upstream "disconnected"; 0: the default
    int receive_hwm;         // SUB receive high-water mark; 0: ZeroMQ default
    const curve_t *curve;    // CURVE client keys for both sockets; NULL: plain.
                             // Borrowed: must outlive the subscriber
    //  What the local state knows of the log it followed, so that another
    //  history is refused at connect: the id of seq 1, and the id of the
    //  event at applied_seq. NULL or "": unknown (not checked).
    const char *identity;
    const char *applied_id;
} subscriber_config_t;

//  Connects and registers with loop; starts catching up at once.
subscriber_t *subscriber_new (zloop_t *loop, const subscriber_config_t *config,
                              const subscriber_handlers_t *handlers, void *arg);
void subscriber_destroy (subscriber_t **self_p);

int64_t subscriber_applied_seq (subscriber_t *self);
//  Highest seq the stream is known to have (heartbeats, batches, events).
int64_t subscriber_head_seq (subscriber_t *self);
//  True while messages arrive from the stream within upstream_timeout_ms.
bool subscriber_connected (subscriber_t *self);
//  True once a FETCH came back empty (caught up at least once).
bool subscriber_caught_up (subscriber_t *self);
//  Why the stream's log and the local state disagree, or NULL while they
//  agree. Once set it stays: nothing more is applied until restart.
const char *subscriber_diverged (subscriber_t *self);
//  Counters for metrics.
uint64_t subscriber_fetches (subscriber_t *self);
uint64_t subscriber_gaps (subscriber_t *self);
uint64_t subscriber_live_dropped (subscriber_t *self);
//  Lines, frames and replies from the stream refused as impossible.
uint64_t subscriber_rejected (subscriber_t *self);

#endif
