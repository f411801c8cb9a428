/*  service — the accounting service (see service.h).
 */
#include "service.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "api.h"
#include "curve.h"
#include "event.h"
#include "feed.h"
#include "http.h"
#include "openapi.h"
#include "snapshot.h"
#include "subscriber.h"
#include "waiters.h"

#define ACCOUNTING_PATH_BYTES_MAX 4096

struct service {
    service_config_t options;
    service_state_t state; // what the API's handlers read
    zloop_t *loop;
    curve_t *curve; // own keypair and the stream's key; NULL: plain
    char data_dir[ACCOUNTING_PATH_BYTES_MAX];
    snapshot_t *snapshot;
    int64_t snapshot_started_ms; // zclock_mono of the last one started
    bool failed;                 // a fatal error stopped the loop
    //  What the replica says of the log it copies, for the subscriber to
    //  refuse another history: the ids of seq 1 and of its last line.
    char identity[EVENT_ID_BYTES_MAX + 1];
    char last_id[EVENT_ID_BYTES_MAX + 1];
};

//  How often a finished snapshot child is looked for.
#define ACCOUNTING_SNAPSHOT_POLL_MS 200
//  At most one snapshot per this long: a catch-up of millions of events
//  would otherwise write one every --snapshot-every events, each the whole
//  state, on the cores and the disk the catch-up needs.
#define ACCOUNTING_SNAPSHOT_INTERVAL_MS_MIN 30000

//  The opening scan of the replica: fold every line.
static int s_on_scan (void *arg, const event_t *event, const char *line,
                      size_t line_bytes)
{
    service_t *self = arg;
    if (event->seq == 1)
        memcpy (self->identity, event->id, sizeof self->identity);
    memcpy (self->last_id, event->id, sizeof self->last_id);
    if (accounts_apply (self->state.accounts, event) == ACCOUNTS_NOMEM) {
        log_error ("out of memory folding seq %" PRId64, event->seq);
        return -1;
    }
    return 0;
}

static void s_on_event (void *arg, const event_t *event, const char *line,
                        size_t line_bytes)
{
    service_t *self = arg;
    if (self->failed)
        return; // stopping: later events are refetched after a restart
    accounts_result_t result = accounts_apply (self->state.accounts, event);
    if (result == ACCOUNTS_NOMEM) {
        //  The seq was not consumed; a restart refetches it.
        log_error ("out of memory folding seq %" PRId64 "; stopping", event->seq);
        self->failed = true;
        zsys_interrupted = 1;
        return;
    }
    if (result == ACCOUNTS_OVERFLOW)
        log_error ("seq %" PRId64 " would overflow a balance; skipped", event->seq);
    else if (result == ACCOUNTS_FULL)
        log_error ("seq %" PRId64 " exceeds %d accounts; skipped", event->seq,
                   ACCOUNTS_COUNT_MAX);
    if (self->state.replica_failed)
        return;
    //  The subscriber delivers only the canonical next line, ts not before
    //  the replica's last: what log_file_append requires.
    if (log_file_append (self->state.replica, line, line_bytes, event->seq,
                         event->ts_ms)) {
        log_error ("replica append of seq %" PRId64 " failed: out of memory; the replica "
                   "stops following until restart",
                   event->seq);
        log_file_rollback (self->state.replica);
        self->state.replica_failed = true;
        return;
    }
    feed_on_event (self->state.feed, event, line, line_bytes);
}

//  The snapshot's body: accounts_save (allocates nothing: fork-safe).
static int s_snapshot_save (void *state, snapshot_write_fn *write_fn, void *writer)
{
    return accounts_save ((accounts_t *)state, write_fn, writer);
}

//  A snapshot's body replaces the (empty) accounts when it loads whole.
static int s_snapshot_load (void *state, int64_t seq, const uint8_t *body, size_t bytes)
{
    service_t *self = state;
    accounts_t *loaded = accounts_new ();
    if (!loaded || accounts_load (loaded, body, bytes) ||
        accounts_applied_seq (loaded) != seq) {
        accounts_destroy (&loaded);
        return -1;
    }
    accounts_destroy (&self->state.accounts);
    self->state.accounts = loaded;
    return 0;
}

static void s_on_applied (void *arg, int64_t applied_seq)
{
    service_t *self = arg;
    if (!self->state.replica_failed && log_file_commit (self->state.replica, false)) {
        log_error ("replica commit up to seq %" PRId64 " failed: %s; the replica stops "
                   "following until restart",
                   applied_seq, strerror (errno));
        self->state.replica_failed = true;
    }
    waiters_wake (self->state.waiters, applied_seq);
    feed_on_applied (self->state.feed);
    int64_t every = self->options.snapshot_every;
    if (every > 0 && !self->state.replica_failed && !snapshot_running (self->snapshot) &&
        applied_seq - snapshot_seq (self->snapshot) >= every &&
        (self->snapshot_started_ms == 0 || zclock_mono () - self->snapshot_started_ms >=
                                               ACCOUNTING_SNAPSHOT_INTERVAL_MS_MIN)) {
        self->snapshot_started_ms = zclock_mono ();
        //  The replica must hold every seq the snapshot folded, durably:
        //  a start folds the replica after the snapshot's seq.
        if (log_file_sync (self->state.replica) == 0)
            snapshot_start (self->snapshot, applied_seq, s_snapshot_save,
                            self->state.accounts);
    }
}

static int s_on_snapshot_timer (zloop_t *loop, int timer_id, void *arg)
{
    service_t *self = arg;
    snapshot_poll (self->snapshot, false);
    return 0;
}

//  Opens the replica folding from seq + 1 (after a snapshot at seq).
static int s_open_replica_from (service_t *self, int64_t seq, char *error,
                                size_t error_size)
{
    log_file_config_t config = self->options.log;
    config.scan_from_seq = seq + 1;
    self->state.replica =
        log_file_open (self->data_dir, &config, s_on_scan, self, error, error_size);
    return self->state.replica ? 0 : -1;
}

//  The id of the replica's line at seq into id (empty if it cannot be
//  read): a start from a snapshot scans no line at seq 1.
static void s_replica_id (service_t *self, int64_t seq, char *id)
{
    char line[EVENT_LINE_BYTES_MAX + 1], reason[128];
    size_t bytes = 0;
    event_t event;
    id[0] = 0;
    if (seq >= 1 &&
        log_file_read (self->state.replica, seq, 1, line, sizeof line, &bytes) == 1 &&
        event_parse_canonical (line, bytes - 1, &event, reason, sizeof reason) == 0)
        memcpy (id, event.id, EVENT_ID_BYTES_MAX + 1);
}

//  Start = the newest valid snapshot, then the replica folded after it.
static int s_open_replica (service_t *self)
{
    const char *data_dir = self->data_dir;
    char error[512] = "";
    if (self->options.rebuild) {
        if (log_file_remove (data_dir, error, sizeof error) ||
            snapshot_remove_all (self->snapshot)) {
            log_error ("--rebuild: %s", error);
            return -1;
        }
        log_info ("--rebuild: discarded the replica and snapshots in %s; refetching "
                  "everything from the stream",
                  data_dir);
    }
    int64_t started_ms = zclock_mono ();
    int64_t seq = snapshot_load (self->snapshot, INT64_MAX, s_snapshot_load, self);
    int rc = s_open_replica_from (self, seq, error, sizeof error);
    if (rc == 0 && log_file_committed_seq (self->state.replica) < seq) {
        log_warn ("the replica ends at seq %" PRId64
                  ", before the snapshot at seq %" PRId64 ": folding the whole replica",
                  log_file_committed_seq (self->state.replica), seq);
        log_file_destroy (&self->state.replica);
        accounts_destroy (&self->state.accounts);
        if (!(self->state.accounts = accounts_new ()))
            return -1;
        seq = 0;
        rc = s_open_replica_from (self, 0, error, sizeof error);
    }
    if (rc) {
        log_error ("replica %s/events refused: %s (start with --rebuild to refetch it)",
                   data_dir, error);
        return -1;
    }
    s_replica_id (self, 1, self->identity);
    s_replica_id (self, log_file_committed_seq (self->state.replica), self->last_id);
    log_info ("replica %s/events: %zu segments; snapshot at seq %" PRId64
              ", then folded to "
              "seq %" PRId64 " (%zu accounts) in %" PRId64 " ms",
              data_dir, log_file_segment_count (self->state.replica), seq,
              accounts_applied_seq (self->state.accounts),
              accounts_count (self->state.accounts), zclock_mono () - started_ms);
    return 0;
}

static int s_start (service_t *self)
{
    service_config_t *options = &self->options;
    char *data_dir = self->data_dir;
    if (options->data_dir)
        snprintf (data_dir, sizeof self->data_dir, "%s", options->data_dir);
    else
        snprintf (data_dir, sizeof self->data_dir, "data/accounting-%" PRId64,
                  options->http_port);
    snprintf (self->state.instance, sizeof self->state.instance, "%d", (int)getpid ());
    self->state.wait_ms_max = options->wait_ms_max;
    self->state.overdraft_limit = options->overdraft_limit;
    self->state.accounts = accounts_new ();
    self->loop = zloop_new ();
    self->snapshot = snapshot_new (self->data_dir, (uint32_t)accounts_fold_version ());
    if (!self->state.accounts || !self->loop || !self->snapshot ||
        zloop_timer (self->loop, ACCOUNTING_SNAPSHOT_POLL_MS, 0, s_on_snapshot_timer,
                     self) < 0)
        return -1;
    if (options->security.curve_dir &&
        !(self->curve = curve_new (options->security.curve_dir, true)))
        return -1;
    if (s_open_replica (self))
        return -1;
    self->state.waiters = waiters_new (self->loop, (size_t)options->waiters_max,
                                       api_on_waiter, &self->state);
    if (!self->state.waiters)
        return -1;
    self->state.feed =
        feed_new (self->loop, self->state.replica, (size_t)options->feed_subscribers_max,
                  (int)options->feed_keepalive_ms, (int)options->feed_stall_ms);
    if (!self->state.feed)
        return -1;
    http_config_t http_config = {.service = "accounting",
                                 .address = options->http_addr,
                                 .port = (int)options->http_port,
                                 .reuse_port = options->reuse_port,
                                 .connections_per_ip_max =
                                     (unsigned)options->connections_per_ip,
                                 .security = &options->security,
                                 .arg = &self->state};
    http_config.routes = api_routes (&http_config.route_count);
    openapi_register (http_config.routes, http_config.route_count);
    self->state.http = http_server_new (self->loop, &http_config);
    if (!self->state.http)
        return -1;
    feed_watch_auth (self->state.feed, self->state.http);
    subscriber_config_t subscriber_config = {
        .publish_endpoint = options->publish,
        .replay_endpoint = options->replay,
        .applied_seq = accounts_applied_seq (self->state.accounts),
        .applied_ts_ms = log_file_last_ts_ms (self->state.replica),
        .upstream_timeout_ms = (int)options->upstream_timeout_ms,
        .receive_hwm = (int)options->subscriber_hwm,
        .curve = self->curve,
        .identity = self->identity,
        .applied_id = self->last_id};
    subscriber_handlers_t handlers = {.on_event = s_on_event, .on_applied = s_on_applied};
    self->state.subscriber =
        subscriber_new (self->loop, &subscriber_config, &handlers, self);
    if (!self->state.subscriber)
        return -1;
    log_info ("listening on %s:%d, following %s and %s from seq %" PRId64,
              options->http_addr, http_server_port (self->state.http), options->publish,
              options->replay, accounts_applied_seq (self->state.accounts) + 1);
    return 0;
}

//  Answers waiters, commits the replica, frees everything; idempotent.
static void s_stop (service_t *self)
{
    waiters_destroy (&self->state.waiters);
    subscriber_destroy (&self->state.subscriber);
    curve_destroy (&self->curve);
    http_server_destroy (&self->state.http); // ends the live feeds' responses first
    feed_destroy (&self->state.feed);
    if (self->state.replica && !self->state.replica_failed &&
        log_file_commit (self->state.replica, false))
        log_error ("replica commit at exit failed: %s", strerror (errno));
    //  A clean stop leaves a snapshot at the last seq, so the next start
    //  folds nothing (the replica made durable first, as for any).
    if (self->snapshot) {
        snapshot_poll (self->snapshot, true);
        if (self->state.replica && !self->state.replica_failed && !self->failed &&
            accounts_applied_seq (self->state.accounts) > snapshot_seq (self->snapshot) &&
            log_file_sync (self->state.replica) == 0 &&
            log_file_committed_seq (self->state.replica) ==
                accounts_applied_seq (self->state.accounts))
            snapshot_write (self->snapshot, accounts_applied_seq (self->state.accounts),
                            s_snapshot_save, self->state.accounts);
    }
    snapshot_destroy (&self->snapshot);
    log_file_destroy (&self->state.replica);
    accounts_destroy (&self->state.accounts);
    zloop_destroy (&self->loop);
}

service_t *service_new (const service_config_t *config)
{
    service_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->options = *config;
    if (s_start (self)) {
        log_error ("start-up failed");
        service_destroy (&self);
    }
    return self;
}

int service_run (service_t *self)
{
    zloop_start (self->loop);
    log_info ("stopping at applied_seq %" PRId64,
              accounts_applied_seq (self->state.accounts));
    return self->failed ? -1 : 0;
}

void service_destroy (service_t **self_p)
{
    service_t *self = *self_p;
    if (!self)
        return;
    s_stop (self);
    free (self);
    *self_p = NULL;
}
