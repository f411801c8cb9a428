/*  accounting — the read model service.

    Folds the stream's events into balances and answers queries over HTTP.
    Start-up: open the local replica (<data-dir>/events/, in segments
    rolled at --segment-bytes like the stream's, so the files match), folding
    every line as log_file scans it, serve HTTP at once, then follow the
    stream from the replica's last seq with the catch-up subscriber. Every
    event applied is appended to the replica as received, and each applied
    run is committed (without fsync: the stream is the source of truth and
    a torn replica tail is recovered at open).

    Usage: accounting [--publish ENDPOINT] [--replay ENDPOINT] [--http-port N] ...
    (see --help).
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "api.h"
#include "config.h"
#include "curve.h"
#include "event.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "log_file.h"
#include "openapi.h"
#include "security.h"
#include "snapshot.h"
#include "subscriber.h"
#include "waiters.h"

#define ACCOUNTING_HTTP_PORT_DEFAULT   3001
#define ACCOUNTING_WAIT_MS_MAX_DEFAULT 30000   // longest read-your-writes wait
#define ACCOUNTING_WAITERS_MAX_DEFAULT 10000   // parked requests; each holds a connection
#define ACCOUNTING_WAITERS_LIMIT       1000000 // sanity bound for --waiters-max
#define ACCOUNTING_WAIT_MS_LIMIT       3600000 // sanity bound for --wait-ms-max: one hour
#define ACCOUNTING_PATH_BYTES_MAX      4096

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
} options_t;

typedef struct {
    options_t options;
    api_context_t api;
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
} service_t;

//  How often a finished snapshot child is looked for.
#define ACCOUNTING_SNAPSHOT_POLL_MS 200
//  At most one snapshot per this long: a catch-up of millions of events
//  would otherwise write one every --snapshot-every events, each the whole
//  state, on the cores and the disk the catch-up needs.
#define ACCOUNTING_SNAPSHOT_INTERVAL_MS_MIN 30000

enum {
    OPT_PUBLISH = 1000,
    OPT_REPLAY,
    OPT_HTTP_PORT,
    OPT_HTTP_ADDR,
    OPT_DATA_DIR,
    OPT_REUSE_PORT,
    OPT_REBUILD,
    OPT_WAIT_MS_MAX,
    OPT_WAITERS_MAX,
    OPT_CONNECTIONS_PER_IP,
    OPT_LOG_LEVEL,
    OPT_SUBSCRIBER_HWM,
    OPT_UPSTREAM_TIMEOUT_MS,
    OPT_SEGMENT_BYTES,
    OPT_VERIFY,
    OPT_SNAPSHOT_EVERY,
    OPT_OVERDRAFT_LIMIT,
    OPT_FEED_SUBSCRIBERS_MAX,
    OPT_FEED_KEEPALIVE_MS,
    OPT_FEED_STALL_MS,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option s_long_options[] = {
    {"publish", required_argument, NULL, OPT_PUBLISH},
    {"replay", required_argument, NULL, OPT_REPLAY},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"http-addr", required_argument, NULL, OPT_HTTP_ADDR},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"reuse-port", no_argument, NULL, OPT_REUSE_PORT},
    {"rebuild", no_argument, NULL, OPT_REBUILD},
    {"wait-ms-max", required_argument, NULL, OPT_WAIT_MS_MAX},
    {"waiters-max", required_argument, NULL, OPT_WAITERS_MAX},
    {"connections-per-ip", required_argument, NULL, OPT_CONNECTIONS_PER_IP},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"subscriber-hwm", required_argument, NULL, OPT_SUBSCRIBER_HWM},
    {"upstream-timeout-ms", required_argument, NULL, OPT_UPSTREAM_TIMEOUT_MS},
    {"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY},
    {"overdraft-limit", required_argument, NULL, OPT_OVERDRAFT_LIMIT},
    {"feed-subscribers-max", required_argument, NULL, OPT_FEED_SUBSCRIBERS_MAX},
    {"feed-keepalive-ms", required_argument, NULL, OPT_FEED_KEEPALIVE_MS},
    {"feed-stall-ms", required_argument, NULL, OPT_FEED_STALL_MS},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    SECURITY_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static void s_usage (FILE *out)
{
    fprintf (
        out,
        "Usage: accounting [OPTION]...\n"
        "The ledger's read model: folds the stream's events into balances.\n\n"
        "  --publish ENDPOINT      stream's publish, SUB connect (tcp://127.0.0.1:5556)\n"
        "  --replay ENDPOINT       stream's replay, DEALER connect "
        "(tcp://127.0.0.1:5558)\n"
        "  --http-addr ADDRESS     HTTP address (127.0.0.1)\n"
        "  --http-port N           HTTP port (%d; 0 = any)\n"
        "  --data-dir DIR          replica directory (data/accounting-<port>)\n"
        "  --reuse-port            share the HTTP port with other instances\n"
        "  --rebuild               discard the replica and snapshots; refetch all\n"
        "  --segment-bytes N       roll replica segments at N bytes as the stream does\n"
        "                          (268435456): the same N gives the same files\n"
        "  --verify                at start, check every sealed segment and checksum\n"
        "  --snapshot-every N      snapshot the state every N events (at most one per\n"
        "                          30 s) and at a clean stop (%d; 0: at a stop only)\n"
        "  --wait-ms-max N         cap for ?wait_ms (%d)\n"
        "  --waiters-max N         requests waiting for ?min_seq at once (%d)\n"
        "  --connections-per-ip N  HTTP connections one client address may hold (%d)\n"
        "  --log-level LEVEL       debug, info, warn or error (info)\n"
        "  --subscriber-hwm N      SUB receive high-water mark (ZeroMQ default)\n"
        "  --upstream-timeout-ms N  silence before upstream counts as down (3000)\n"
        "  --overdraft-limit N     the limit shown for accounts opened implicitly:\n"
        "                          transaction's --overdraft-limit (0)\n"
        "  --feed-subscribers-max N  live GET /events streams at once (%d)\n"
        "  --feed-keepalive-ms N   comment sent on an idle live stream (%d)\n"
        "  --feed-stall-ms N       cut off a live stream that reads nothing this long "
        "(%d)\n"
        "%s"
        "  --help                  this text\n"
        "  --version               the version\n",
        ACCOUNTING_HTTP_PORT_DEFAULT, SNAPSHOT_EVERY_DEFAULT,
        ACCOUNTING_WAIT_MS_MAX_DEFAULT, ACCOUNTING_WAITERS_MAX_DEFAULT,
        HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT, FEED_SUBSCRIBERS_MAX_DEFAULT,
        FEED_KEEPALIVE_MS_DEFAULT, FEED_STALL_MS_DEFAULT, security_usage);
}

//  Returns 0 to run, 1 to exit 0 (help, version), -1 to exit 2.
static int s_options_parse (options_t *options, int argc, char *argv[])
{
    *options = (options_t){.publish = "tcp://127.0.0.1:5556",
                           .replay = "tcp://127.0.0.1:5558",
                           .http_addr = "127.0.0.1",
                           .http_port = ACCOUNTING_HTTP_PORT_DEFAULT,
                           .wait_ms_max = ACCOUNTING_WAIT_MS_MAX_DEFAULT,
                           .waiters_max = ACCOUNTING_WAITERS_MAX_DEFAULT,
                           .connections_per_ip = HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT,
                           .snapshot_every = SNAPSHOT_EVERY_DEFAULT,
                           .feed_subscribers_max = FEED_SUBSCRIBERS_MAX_DEFAULT,
                           .feed_keepalive_ms = FEED_KEEPALIVE_MS_DEFAULT,
                           .feed_stall_ms = FEED_STALL_MS_DEFAULT,
                           .log_level = LOG_INFO};
    int option, rc = 0;
    while (rc == 0 &&
           (option = getopt_long (argc, argv, "", s_long_options, NULL)) != -1) {
        switch (option) {
        case OPT_PUBLISH:
            options->publish = optarg;
            break;
        case OPT_REPLAY:
            options->replay = optarg;
            break;
        case OPT_HTTP_ADDR:
            options->http_addr = optarg;
            break;
        case OPT_DATA_DIR:
            options->data_dir = optarg;
            break;
        case OPT_REUSE_PORT:
            options->reuse_port = true;
            break;
        case OPT_REBUILD:
            options->rebuild = true;
            break;
        case OPT_HTTP_PORT:
            rc =
                config_parse_int64 ("--http-port", optarg, 0, 65535, &options->http_port);
            break;
        case OPT_OVERDRAFT_LIMIT:
            rc = config_parse_int64 ("--overdraft-limit", optarg, 0,
                                     1000000000000000000LL, &options->overdraft_limit);
            break;
        case OPT_WAIT_MS_MAX:
            rc = config_parse_int64 ("--wait-ms-max", optarg, 0, ACCOUNTING_WAIT_MS_LIMIT,
                                     &options->wait_ms_max);
            break;
        case OPT_WAITERS_MAX:
            rc = config_parse_int64 ("--waiters-max", optarg, 0, ACCOUNTING_WAITERS_LIMIT,
                                     &options->waiters_max);
            break;
        case OPT_CONNECTIONS_PER_IP:
            rc = config_parse_int64 ("--connections-per-ip", optarg, 1,
                                     HTTP_CONNECTIONS_PER_IP_LIMIT,
                                     &options->connections_per_ip);
            break;
        case OPT_SUBSCRIBER_HWM:
            rc = config_parse_int64 ("--subscriber-hwm", optarg, 0, INT_MAX,
                                     &options->subscriber_hwm);
            break;
        case OPT_UPSTREAM_TIMEOUT_MS:
            rc = config_parse_int64 ("--upstream-timeout-ms", optarg, 1, INT_MAX,
                                     &options->upstream_timeout_ms);
            break;
        case OPT_SEGMENT_BYTES: {
            int64_t bytes = 0;
            rc =
                config_parse_int64 ("--segment-bytes", optarg, LOG_FILE_SEGMENT_BYTES_MIN,
                                    LOG_FILE_SEGMENT_BYTES_MAX, &bytes);
            options->log.segment_bytes = (uint64_t)bytes;
            break;
        }
        case OPT_VERIFY:
            options->log.verify = true;
            break;
        case OPT_SNAPSHOT_EVERY:
            rc = config_parse_int64 ("--snapshot-every", optarg, 0, INT64_MAX,
                                     &options->snapshot_every);
            break;
        case OPT_FEED_SUBSCRIBERS_MAX:
            rc = config_parse_int64 ("--feed-subscribers-max", optarg, 0,
                                     FEED_SUBSCRIBERS_LIMIT,
                                     &options->feed_subscribers_max);
            break;
        case OPT_FEED_KEEPALIVE_MS:
            rc =
                config_parse_int64 ("--feed-keepalive-ms", optarg, 1,
                                    FEED_KEEPALIVE_MS_LIMIT, &options->feed_keepalive_ms);
            break;
        case OPT_FEED_STALL_MS:
            rc = config_parse_int64 ("--feed-stall-ms", optarg, 1, FEED_STALL_MS_LIMIT,
                                     &options->feed_stall_ms);
            break;
        case OPT_LOG_LEVEL:
            rc = log_level_parse (optarg, &options->log_level);
            if (rc)
                fprintf (stderr,
                         "accounting: --log-level: expected debug|info|warn|error\n");
            break;
        case OPT_HELP:
            s_usage (stdout);
            return 1;
        case OPT_VERSION:
            config_print_version ("accounting");
            return 1;
        default:
            if (security_option_parse (&options->security, option, optarg))
                break;
            s_usage (stderr);
            return -1;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf (stderr, "accounting: unexpected argument '%s'\n", argv[optind]);
        rc = -1;
    }
    if (rc == 0)
        rc = security_options_check (&options->security, "accounting");
    return rc ? -1 : 0;
}

//  The opening scan of the replica: fold every line.
static int s_on_scan (void *arg, const event_t *event, const char *line,
                      size_t line_bytes)
{
    service_t *self = arg;
    if (event->seq == 1)
        memcpy (self->identity, event->id, sizeof self->identity);
    memcpy (self->last_id, event->id, sizeof self->last_id);
    if (accounts_apply (self->api.accounts, event) == ACCOUNTS_NOMEM) {
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
    accounts_result_t result = accounts_apply (self->api.accounts, event);
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
    if (self->api.replica_failed)
        return;
    //  The subscriber delivers only the canonical next line, ts not before
    //  the replica's last: what log_file_append requires.
    if (log_file_append (self->api.replica, line, line_bytes, event->seq, event->ts_ms)) {
        log_error ("replica append of seq %" PRId64 " failed: out of memory; the replica "
                   "stops following until restart",
                   event->seq);
        log_file_rollback (self->api.replica);
        self->api.replica_failed = true;
        return;
    }
    feed_on_event (self->api.feed, event, line, line_bytes);
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
    accounts_destroy (&self->api.accounts);
    self->api.accounts = loaded;
    return 0;
}

static void s_on_applied (void *arg, int64_t applied_seq)
{
    service_t *self = arg;
    if (!self->api.replica_failed && log_file_commit (self->api.replica, false)) {
        log_error ("replica commit up to seq %" PRId64 " failed: %s; the replica stops "
                   "following until restart",
                   applied_seq, strerror (errno));
        self->api.replica_failed = true;
    }
    waiters_wake (self->api.waiters, applied_seq);
    feed_on_applied (self->api.feed);
    int64_t every = self->options.snapshot_every;
    if (every > 0 && !self->api.replica_failed && !snapshot_running (self->snapshot) &&
        applied_seq - snapshot_seq (self->snapshot) >= every &&
        (self->snapshot_started_ms == 0 || zclock_mono () - self->snapshot_started_ms >=
                                               ACCOUNTING_SNAPSHOT_INTERVAL_MS_MIN)) {
        self->snapshot_started_ms = zclock_mono ();
        //  The replica must hold every seq the snapshot folded, durably:
        //  a start folds the replica after the snapshot's seq.
        if (log_file_sync (self->api.replica) == 0)
            snapshot_start (self->snapshot, applied_seq, s_snapshot_save,
                            self->api.accounts);
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
    self->api.replica =
        log_file_open (self->data_dir, &config, s_on_scan, self, error, error_size);
    return self->api.replica ? 0 : -1;
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
        log_file_read (self->api.replica, seq, 1, line, sizeof line, &bytes) == 1 &&
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
    if (rc == 0 && log_file_committed_seq (self->api.replica) < seq) {
        log_warn ("the replica ends at seq %" PRId64
                  ", before the snapshot at seq %" PRId64 ": folding the whole replica",
                  log_file_committed_seq (self->api.replica), seq);
        log_file_destroy (&self->api.replica);
        accounts_destroy (&self->api.accounts);
        if (!(self->api.accounts = accounts_new ()))
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
    s_replica_id (self, log_file_committed_seq (self->api.replica), self->last_id);
    log_info ("replica %s/events: %zu segments; snapshot at seq %" PRId64
              ", then folded to "
              "seq %" PRId64 " (%zu accounts) in %" PRId64 " ms",
              data_dir, log_file_segment_count (self->api.replica), seq,
              accounts_applied_seq (self->api.accounts),
              accounts_count (self->api.accounts), zclock_mono () - started_ms);
    return 0;
}

static int s_start (service_t *self)
{
    options_t *options = &self->options;
    char *data_dir = self->data_dir;
    if (options->data_dir)
        snprintf (data_dir, sizeof self->data_dir, "%s", options->data_dir);
    else
        snprintf (data_dir, sizeof self->data_dir, "data/accounting-%" PRId64,
                  options->http_port);
    snprintf (self->api.instance, sizeof self->api.instance, "%d", (int)getpid ());
    self->api.wait_ms_max = options->wait_ms_max;
    self->api.overdraft_limit = options->overdraft_limit;
    self->api.accounts = accounts_new ();
    self->loop = zloop_new ();
    self->snapshot = snapshot_new (self->data_dir, (uint32_t)accounts_fold_version ());
    if (!self->api.accounts || !self->loop || !self->snapshot ||
        zloop_timer (self->loop, ACCOUNTING_SNAPSHOT_POLL_MS, 0, s_on_snapshot_timer,
                     self) < 0)
        return -1;
    if (options->security.curve_dir &&
        !(self->curve = curve_new (options->security.curve_dir, true)))
        return -1;
    if (s_open_replica (self))
        return -1;
    self->api.waiters =
        waiters_new (self->loop, (size_t)options->waiters_max, api_on_waiter, &self->api);
    if (!self->api.waiters)
        return -1;
    self->api.feed =
        feed_new (self->loop, self->api.replica, (size_t)options->feed_subscribers_max,
                  (int)options->feed_keepalive_ms, (int)options->feed_stall_ms);
    if (!self->api.feed)
        return -1;
    http_config_t http_config = {.service = "accounting",
                                 .address = options->http_addr,
                                 .port = (int)options->http_port,
                                 .reuse_port = options->reuse_port,
                                 .connections_per_ip_max =
                                     (unsigned)options->connections_per_ip,
                                 .security = &options->security,
                                 .arg = &self->api};
    http_config.routes = api_routes (&http_config.route_count);
    openapi_register (http_config.routes, http_config.route_count);
    self->api.http = http_server_new (self->loop, &http_config);
    if (!self->api.http)
        return -1;
    feed_watch_auth (self->api.feed, self->api.http);
    subscriber_config_t subscriber_config = {
        .publish_endpoint = options->publish,
        .replay_endpoint = options->replay,
        .applied_seq = accounts_applied_seq (self->api.accounts),
        .applied_ts_ms = log_file_last_ts_ms (self->api.replica),
        .upstream_timeout_ms = (int)options->upstream_timeout_ms,
        .receive_hwm = (int)options->subscriber_hwm,
        .curve = self->curve,
        .identity = self->identity,
        .applied_id = self->last_id};
    subscriber_handlers_t handlers = {.on_event = s_on_event, .on_applied = s_on_applied};
    self->api.subscriber =
        subscriber_new (self->loop, &subscriber_config, &handlers, self);
    if (!self->api.subscriber)
        return -1;
    log_info ("listening on %s:%d, following %s and %s from seq %" PRId64,
              options->http_addr, http_server_port (self->api.http), options->publish,
              options->replay, accounts_applied_seq (self->api.accounts) + 1);
    return 0;
}

//  Answers waiters, commits the replica, frees everything; idempotent.
static void s_stop (service_t *self)
{
    waiters_destroy (&self->api.waiters);
    subscriber_destroy (&self->api.subscriber);
    curve_destroy (&self->curve);
    http_server_destroy (&self->api.http); // ends the live feeds' responses first
    feed_destroy (&self->api.feed);
    if (self->api.replica && !self->api.replica_failed &&
        log_file_commit (self->api.replica, false))
        log_error ("replica commit at exit failed: %s", strerror (errno));
    //  A clean stop leaves a snapshot at the last seq, so the next start
    //  folds nothing (the replica made durable first, as for any).
    if (self->snapshot) {
        snapshot_poll (self->snapshot, true);
        if (self->api.replica && !self->api.replica_failed && !self->failed &&
            accounts_applied_seq (self->api.accounts) > snapshot_seq (self->snapshot) &&
            log_file_sync (self->api.replica) == 0 &&
            log_file_committed_seq (self->api.replica) ==
                accounts_applied_seq (self->api.accounts))
            snapshot_write (self->snapshot, accounts_applied_seq (self->api.accounts),
                            s_snapshot_save, self->api.accounts);
    }
    snapshot_destroy (&self->snapshot);
    log_file_destroy (&self->api.replica);
    accounts_destroy (&self->api.accounts);
    zloop_destroy (&self->loop);
}

int main (int argc, char *argv[])
{
    service_t service = {0};
    int rc = s_options_parse (&service.options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    log_init ("accounting", service.options.log_level);
    const char *http[] = {service.options.http_addr, NULL};
    const char *zmq[] = {service.options.publish, service.options.replay, NULL};
    if (security_check_exposure (&service.options.security, "accounting", http, zmq))
        return 2;
    zsys_init (); // installs the SIGINT/SIGTERM handler that stops zloop
    if (s_start (&service)) {
        log_error ("start-up failed");
        s_stop (&service);
        return 1;
    }
    zloop_start (service.loop);
    log_info ("stopping at applied_seq %" PRId64,
              accounts_applied_seq (service.api.accounts));
    s_stop (&service);
    return service.failed ? 1 : 0;
}
