/*  ingest — the stream's sequencer: turns APPEND requests into durable,
    published events.

    Owns the log file and the state the log implies: per-account versions
    (for `expect`) and the idempotency window of event ids. One call to
    ingest_drain() takes one burst of requests off the PULL socket,
    decides each in order (invalid, duplicate, conflict or appended; later
    requests see the effects of earlier ones), makes the burst durable with
    one log_file_commit(), and only then publishes the burst's EVENTS and
    a RESULT per one-request APPEND, one RESULTS for packed ones (wire.h). If the commit fails, the burst's effects are undone and its
    requests are answered "unavailable"; the log and the state stay as they
    were before the burst.

    It holds no business rules: amounts and balances are not its concern.
*/
#ifndef INGEST_H_INCLUDED
#define INGEST_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "log_file.h"

//  Remembered ids by default; about 24 bytes each (dedupe.h): ~24 MiB.
#define INGEST_DEDUPE_WINDOW_DEFAULT 1000000

typedef struct ingest ingest_t;

typedef struct {
    uint64_t requests_ok;
    uint64_t requests_conflict;
    uint64_t requests_duplicate;
    uint64_t requests_invalid;
    uint64_t requests_unavailable;
    uint64_t events_appended; // committed since start
    uint64_t bursts;          // drains that took at least one request
    uint64_t packed_appends;  // packed APPEND messages taken
    uint64_t packed_requests; // requests in them
    uint64_t commits_failed;
} ingest_stats_t;

//  Opens (or creates) the log of data_dir (log_file_open with log_config,
//  which may be NULL) and rebuilds versions and the
//  dedupe window from it. publish is borrowed and must outlive the
//  ingest. Returns NULL with a reason in error when the log is refused
//  (log_file_open's rules, and an id stored at two seqs within the last
//  dedupe_window events) or memory is short.
ingest_t *ingest_new (const char *data_dir, const log_file_config_t *log_config,
                      zsock_t *publish, bool fsync_always, size_t dedupe_window,
                      char *error, size_t error_size);
void ingest_destroy (ingest_t **self_p);

//  Takes one burst of requests from pull (non-blocking), commits and
//  publishes. Returns 0; storage failures are answered, not returned.
int ingest_drain (ingest_t *self, zsock_t *pull);

//  EVENTS in the older form, one message per request and one frame per
//  line, for subscribers that do not read the packed form; packed (one
//  frame per burst) by default.
void ingest_set_publish_lines (ingest_t *self, bool publish_lines);

//  Events between two snapshots of the versions (<data-dir>/snapshot-<seq>.bin,
//  snapshot.h): a start scans at most this many more than the dedupe window.
#define INGEST_SNAPSHOT_EVERY 1000000

//  Snapshots the versions between bursts: now, in this process (at a
//  clean stop), or, when INGEST_SNAPSHOT_EVERY events came since the last
//  one, in a forked child. Reaps a finished child. 0 or -1 (logged).
int ingest_snapshot (ingest_t *self, bool now);

//  The log, for readers (replay, HTTP). Borrowed.
log_file_t *ingest_log (ingest_t *self);

const ingest_stats_t *ingest_stats (ingest_t *self);

//  Accounts with at least one event.
size_t ingest_account_count (ingest_t *self);

//  The seq of the stored event with this id, or 0 when it is not in the
//  dedupe window (replay's LOOKUP).
int64_t ingest_find (ingest_t *self, const char *id);

#endif
