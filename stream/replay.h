/*  replay — the stream's pull-based catch-up endpoint (ROUTER) and the
    bounded reader behind it, shared with GET /events.

      ["FETCH", from_seq, max_events] -> ["BATCH", committed_seq, line...]
      ["FETCH", from_seq, max_events, "packed"]
                                      -> ["PACKED", committed_seq, lines]
      ["FETCH", from_seq, max_events, "packed", "identity"]
                                      -> ["PACKED", committed_seq, lines, identity]
      either                          -> ["ERROR", message]
      ["LOOKUP", id]                  -> ["FOUND", id, seq, line]
                                      |  ["ABSENT", id] | ["ERROR", message]

    BATCH is DESIGN.md's reply, a frame per line. PACKED, our addition,
    carries the same lines in one frame, each ending in \n, byte for byte
    as in the log: the catch-up subscriber asks for it, because a frame
    per line cost more than the line itself. With "identity" it ends
    with the log's identity (the id of seq 1, "" while the log is
    empty), so a reader can tell another log from the one it follows;
    a reader that does not ask gets the three frames it expects.

    LOOKUP, also ours, asks the stream's dedupe window (1M ids by
    default, rebuilt from the log at start) whether an event id is
    stored: FOUND gives its seq and its stored line (without \n), so a
    writer that no longer remembers a key answers a retry from what
    was applied instead of validating it again.

    A batch holds at most REPLAY_BATCH_EVENTS_MAX events and about
    REPLAY_BATCH_BYTES_MAX bytes, read with pread into one reusable buffer,
    so memory stays bounded whatever readers ask for. An empty batch means
    the reader is caught up. DEALER peers send no delimiter; REQ peers'
    empty delimiter is echoed back.
*/
#ifndef REPLAY_H_INCLUDED
#define REPLAY_H_INCLUDED

#include <czmq.h>

#include "log_file.h"

#define REPLAY_BATCH_EVENTS_MAX 10000
#define REPLAY_BATCH_BYTES_MAX  (1024 * 1024) // a batch is one ZeroMQ message in memory

typedef struct replay replay_t;

//  The seq of the committed event with this id in the dedupe window, or 0.
typedef int64_t (replay_lookup_fn) (void *arg, const char *id);

typedef struct {
    uint64_t requests;        // received on the ROUTER
    uint64_t replies_dropped; // unanswered: the peer's queue was full, or it left
} replay_stats_t;

//  log is borrowed and must outlive the replay.
replay_t *replay_new (log_file_t *log);
//  Serves LOOKUP through fn (without one, LOOKUP is answered ERROR).
void replay_set_lookup (replay_t *self, replay_lookup_fn *fn, void *arg);
void replay_destroy (replay_t **self_p);

//  Answers the FETCH requests waiting on router (a bounded number per call).
int replay_handle (replay_t *self, zsock_t *router);

const replay_stats_t *replay_stats (replay_t *self);

//  Reads committed events from from_seq on (at most max_events and about
//  REPLAY_BATCH_BYTES_MAX bytes) into the shared buffer. *text_p is
//  borrowed until the next read: whole lines, each ending in \n. Returns
//  the event count, or -1 on an I/O error (logged).
//  The log's identity: the id of seq 1, or "" while the log is empty.
//  Borrowed; announced in HEARTBEAT and PACKED replies.
const char *replay_identity (replay_t *self);

int replay_read (replay_t *self, int64_t from_seq, size_t max_events, const char **text_p,
                 size_t *bytes_p);

#endif
