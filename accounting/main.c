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
#include <getopt.h>
#include <limits.h>
#include <stdio.h>

#include "config.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "log_file.h"
#include "security.h"
#include "service.h"
#include "snapshot.h"

#define ACCOUNTING_HTTP_PORT_DEFAULT   3001
#define ACCOUNTING_WAIT_MS_MAX_DEFAULT 30000   // longest read-your-writes wait
#define ACCOUNTING_WAITERS_MAX_DEFAULT 10000   // parked requests; each holds a connection
#define ACCOUNTING_WAITERS_LIMIT       1000000 // sanity bound for --waiters-max
#define ACCOUNTING_WAIT_MS_LIMIT       3600000 // sanity bound for --wait-ms-max: one hour

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
static int s_options_parse (service_config_t *options, int argc, char *argv[])
{
    *options =
        (service_config_t){.publish = "tcp://127.0.0.1:5556",
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

int main (int argc, char *argv[])
{
    service_config_t config;
    int rc = s_options_parse (&config, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    log_init ("accounting", config.log_level);
    const char *http[] = {config.http_addr, NULL};
    const char *zmq[] = {config.publish, config.replay, NULL};
    if (security_check_exposure (&config.security, "accounting", http, zmq))
        return 2;
    zsys_init (); // installs the SIGINT/SIGTERM handler that stops zloop
    service_t *service = service_new (&config);
    if (!service)
        return 1;
    rc = service_run (service);
    service_destroy (&service);
    return rc ? 1 : 0;
}
