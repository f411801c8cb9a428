/*  accounting — the read model service.

    Folds the stream's events into balances and answers queries over HTTP
    (service.h). main parses the options, creates the service, runs it
    until SIGINT/SIGTERM and tears it down. Bad options exit 2; a start-up
    or fatal error exits 1.
*/
#include <czmq.h>
#include <limits.h>
#include <string.h>

#include "config.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "log_file.h"
#include "security.h"
#include "service.h"
#include "snapshot.h"
#include "subscriber.h"

#define ACCOUNTING_WAITERS_LIMIT 1000000 // sanity bound for --waiters-max
#define ACCOUNTING_WAIT_MS_LIMIT 3600000 // sanity bound for --wait-ms-max: one hour

#define AT(field) CONFIG_FIELD (service_config_t, field)

static const config_option_t s_options[] = {
    CONFIG_TEXT ("publish", "ENDPOINT", AT (publish), CONFIG_PUBLISH_ENDPOINT,
                 "stream's publish, SUB connect (%s)"),
    CONFIG_TEXT ("replay", "ENDPOINT", AT (replay), CONFIG_REPLAY_ENDPOINT,
                 "stream's replay, DEALER connect (%s)"),
    CONFIG_TEXT ("http-addr", "ADDRESS", AT (http_addr), CONFIG_HTTP_ADDRESS,
                 "HTTP address (%s)"),
    CONFIG_INT ("http-port", AT (http_port), 3001, 0, 65535, "HTTP port (%s; 0 = any)"),
    CONFIG_TEXT ("data-dir", "DIR", AT (data_dir), NULL,
                 "replica directory (data/accounting-<port>)"),
    CONFIG_FLAG ("reuse-port", AT (reuse_port),
                 "share the HTTP port with other instances"),
    CONFIG_FLAG ("rebuild", AT (rebuild),
                 "discard the replica and snapshots; refetch all"),
    CONFIG_INT ("segment-bytes", AT (log.segment_bytes), LOG_FILE_SEGMENT_BYTES_DEFAULT,
                LOG_FILE_SEGMENT_BYTES_MIN, LOG_FILE_SEGMENT_BYTES_MAX,
                "roll replica segments at N bytes as the stream does\n"
                "(%s): the same N gives the same files"),
    CONFIG_FLAG ("verify", AT (log.verify),
                 "at start, check every sealed segment and checksum"),
    CONFIG_INT ("snapshot-every", AT (snapshot_every), SNAPSHOT_EVERY_DEFAULT, 0,
                INT64_MAX,
                "snapshot the state every N events (at most one per\n"
                "30 s) and at a clean stop (%s; 0: at a stop only)"),
    //  The longest read-your-writes wait.
    CONFIG_INT ("wait-ms-max", AT (wait_ms_max), 30000, 0, ACCOUNTING_WAIT_MS_LIMIT,
                "cap for ?wait_ms (%s)"),
    //  Each parked request holds a connection.
    CONFIG_INT ("waiters-max", AT (waiters_max), 10000, 0, ACCOUNTING_WAITERS_LIMIT,
                "requests waiting for ?min_seq at once (%s)"),
    CONFIG_INT ("connections-per-ip", AT (connections_per_ip),
                HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT, 1, HTTP_CONNECTIONS_PER_IP_LIMIT,
                "HTTP connections one client address may hold (%s)"),
    CONFIG_LOG_LEVEL (AT (log_level)),
    CONFIG_INT ("subscriber-hwm", AT (subscriber_hwm), 0, 0, INT_MAX,
                "SUB receive high-water mark (0: ZeroMQ's default)"),
    CONFIG_INT ("upstream-timeout-ms", AT (upstream_timeout_ms),
                SUBSCRIBER_UPSTREAM_TIMEOUT_MS_DEFAULT, 1, INT_MAX,
                "silence before upstream counts as down (%s)"),
    CONFIG_INT ("overdraft-limit", AT (overdraft_limit), 0, 0, 1000000000000000000LL,
                "the limit shown for accounts opened implicitly:\n"
                "transaction's --overdraft-limit (%s)"),
    CONFIG_INT ("feed-subscribers-max", AT (feed_subscribers_max),
                FEED_SUBSCRIBERS_MAX_DEFAULT, 0, FEED_SUBSCRIBERS_LIMIT,
                "live GET /events streams at once (%s)"),
    CONFIG_INT ("feed-keepalive-ms", AT (feed_keepalive_ms), FEED_KEEPALIVE_MS_DEFAULT, 1,
                FEED_KEEPALIVE_MS_LIMIT, "comment sent on an idle live stream (%s)"),
    CONFIG_INT ("feed-stall-ms", AT (feed_stall_ms), FEED_STALL_MS_DEFAULT, 1,
                FEED_STALL_MS_LIMIT,
                "cut off a live stream that reads nothing this long (%s)"),
    SECURITY_CONFIG_OPTIONS (service_config_t, security),
};

static const config_t s_config = {
    .service = "accounting",
    .summary = "The ledger's read model: folds the stream's events into balances.",
    .options = s_options,
    .count = sizeof s_options / sizeof s_options[0],
};

int main (int argc, char *argv[])
{
    service_config_t config;
    memset (&config, 0, sizeof config); // what the table does not set is 0
    config_result_t parsed = config_parse (&s_config, &config, argc, argv);
    if (parsed != CONFIG_RUN)
        return parsed == CONFIG_EXIT ? 0 : 2;
    if (security_options_check (&config.security, "accounting"))
        return 2;
    log_init ("accounting", config.log_level);
    const char *http[] = {config.http_addr, NULL};
    const char *zmq[] = {config.publish, config.replay, NULL};
    if (security_check_exposure (&config.security, "accounting", http, zmq))
        return 2;
    zsys_init (); // installs the SIGINT/SIGTERM handler that stops zloop
    service_t *service = service_new (&config);
    if (!service)
        return 1;
    int rc = service_run (service);
    service_destroy (&service);
    return rc ? 1 : 0;
}
