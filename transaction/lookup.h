/*  lookup — asks the stream whether an event id is stored.

    A DEALER to the stream's replay ROUTER speaking the LOOKUP extension
    (stream/replay.h): ["LOOKUP", id] -> ["FOUND", id, seq, line] or
    ["ABSENT", id]. The stream answers one socket's requests in order, so
    each reply answers the oldest question out; the echoed id confirms
    it. Nothing blocks: answers come through the callback from the loop,
    and a question without an answer within timeout_ms is answered
    "unknown" (the socket is replaced, so a late reply cannot be taken
    for the answer to a later question).

    The transaction asks it for a keyed request it holds no answer for,
    so that a retry whose events landed is answered from them.
*/
#ifndef LOOKUP_H_INCLUDED
#define LOOKUP_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "curve.h"

//  Questions out at once; beyond, lookup_ask refuses (the caller answers 503).
#define LOOKUP_PENDING_MAX 10000

typedef struct lookup lookup_t;

//  The answer for id: seq > 0 with the stored line (borrowed, without
//  \n), 0 when the stream does not hold it, -1 when unknown (no answer
//  in time, or an error reply).
typedef void (lookup_answer_fn) (void *arg, const char *id, int64_t seq, const char *line,
                                 size_t line_bytes);

//  curve: CURVE client keys (borrowed, must outlive the lookup); NULL: plain.
lookup_t *lookup_new (zloop_t *loop, const char *replay_endpoint, int timeout_ms,
                      const curve_t *curve, lookup_answer_fn *answer, void *arg);
void lookup_destroy (lookup_t **self_p);

//  Sends the question; 0, or -1 when it cannot be sent now.
int lookup_ask (lookup_t *self, const char *id);

#endif
