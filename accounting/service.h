/*  service — the accounting service's state and wiring: the replica
    (snapshot, then the log folded after it), the catch-up subscriber
    that feeds it, the HTTP API over it, and a clean stop.

    Start-up: open the local replica (<data-dir>/events/, in segments
    rolled at --segment-bytes like the stream's, so the files match), folding
    every line as log_file scans it, serve HTTP at once, then follow the
    stream from the replica's last seq with the catch-up subscriber. Every
    event applied is appended to the replica as received, and each applied
    run is committed (without fsync: the stream is the source of truth and
    a torn replica tail is recovered at open).
*/
#ifndef SERVICE_H_INCLUDED
#define SERVICE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "accounts.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "log_file.h"
#include "security.h"
#include "subscriber.h"
#include "waiters.h"

//  What main parses; strings are borrowed (argv) for the service's life.
typedef struct {
    const char *publish;
    const char *replay;
    const char *http_addr;
    const char *data_dir; // NULL: data/accounting-<port>
    int64_t http_port;
    int64_t wait_ms_max;
    int64_t waiters_max;
    int64_t subscriber_hwm;
    int64_t upstream_timeout_ms;
    int64_t connections_per_ip;
    int64_t overdraft_limit; // what accounts opened implicitly show as theirs
    int64_t feed_subscribers_max;
    int64_t feed_keepalive_ms;
    int64_t feed_stall_ms;
    bool reuse_port;
    bool rebuild;
    log_file_config_t log;  // --segment-bytes, --verify
    int64_t snapshot_every; // events between snapshots; 0: at clean shutdown only
    log_level_t log_level;
    security_config_t security;
} service_config_t;

//  The read model's state: written by the service (the subscriber's
//  callbacks, the replica's opening), read by the API's handlers.
typedef struct {
    accounts_t *accounts;
    log_file_t *replica;
    subscriber_t *subscriber; // NULL until created
    waiters_t *waiters;
    feed_t *feed;            // NULL until created
    http_server_t *http;     // NULL until created
    int64_t wait_ms_max;     // cap for wait_ms
    int64_t overdraft_limit; // shown for accounts opened implicitly
    bool replica_failed;     // the replica stopped following (disk error)
    char instance[32];       // tells instances sharing a port apart (pid)
} service_state_t;

typedef struct service service_t;

//  Opens the replica and starts HTTP and the subscriber on a loop of its
//  own. Returns NULL (logged) on failure.
service_t *service_new (const service_config_t *config);

//  Runs until SIGINT/SIGTERM or a fatal error; -1 after a fatal error.
int service_run (service_t *self);

//  Answers waiters, commits the replica, writes the stop snapshot and
//  frees everything; idempotent.
void service_destroy (service_t **self_p);

#endif
