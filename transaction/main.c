/*  transaction — the write side: validates balance changes against its
    write model and appends them through the stream. main parses the
    options, creates the service on one zloop, runs it and tears it down.
*/
#include <czmq.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "security.h"

typedef struct {
    api_config_t api;
    log_level_t log_level;
} options_t;

#define AT(field) CONFIG_FIELD (options_t, field)

static const config_option_t s_options[] = {
    CONFIG_TEXT ("ingest", "ENDPOINT", AT (api.ingest_endpoint), CONFIG_INGEST_ENDPOINT,
                 "stream's ingest, PUSH connect (%s)"),
    CONFIG_TEXT ("publish", "ENDPOINT", AT (api.publish_endpoint),
                 CONFIG_PUBLISH_ENDPOINT, "stream's publish, SUB connect (%s)"),
    CONFIG_TEXT ("replay", "ENDPOINT", AT (api.replay_endpoint), CONFIG_REPLAY_ENDPOINT,
                 "stream's replay, DEALER connect (%s)"),
    CONFIG_TEXT ("http-addr", "ADDRESS", AT (api.http_address), CONFIG_HTTP_ADDRESS,
                 "HTTP address (%s)"),
    CONFIG_INT ("http-port", AT (api.http_port), 3000, 0, 65535,
                "HTTP port (%s; 0 = any)"),
    //  A durable result normally takes < 10 ms.
    CONFIG_INT ("ack-timeout-ms", AT (api.ack_timeout_ms), 5000, 1, 3600000,
                "503 when no durable result within N ms (%s)"),
    CONFIG_INT ("overdraft-limit", AT (api.overdraft_limit), 0, 0, 1000000000000000000LL,
                "balances may not go below -N (%s)"),
    //  Each waiting request holds a connection.
    CONFIG_INT ("inflight-max", AT (api.inflight_max), 4096, 1, 1000000,
                "waiting requests; beyond, 503 at once (%s)"),
    CONFIG_INT ("retries-max", AT (api.retries_max), 5, 0, 1000,
                "conflict retries before 409 (%s)"),
    //  Due holds expire within about this; 0: never (other instances do).
    CONFIG_INT ("hold-expiry-ms", AT (api.hold_expiry_ms), 100, 0, 3600000,
                "look for holds past their timeout every N ms and expire them (%s; "
                "0 = never)"),
    //  ~0.5 KiB each.
    CONFIG_INT ("idempotency-keys-max", AT (api.idempotency_keys_max), 100000, 1,
                100000000, "answers remembered by Idempotency-Key (%s)"),
    CONFIG_INT ("connections-per-ip", AT (api.connections_per_ip),
                HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT, 1, HTTP_CONNECTIONS_PER_IP_LIMIT,
                "HTTP connections one client address may hold (%s)"),
    CONFIG_LOG_LEVEL (AT (log_level)),
    SECURITY_CONFIG_OPTIONS (options_t, api.security),
};

static const config_t s_config = {
    .service = "transaction",
    .summary = "Validates deposits, withdrawals and transfers and appends them via the "
               "stream.",
    .options = s_options,
    .count = sizeof s_options / sizeof s_options[0],
};

int main (int argc, char **argv)
{
    options_t options;
    memset (&options, 0, sizeof options); // what the table does not set is 0
    config_result_t parsed = config_parse (&s_config, &options, argc, argv);
    if (parsed != CONFIG_RUN)
        return parsed == CONFIG_EXIT ? 0 : 2;
    api_config_t *config = &options.api;
    if (security_options_check (&config->security, "transaction"))
        return 2;
    log_init ("transaction", options.log_level);
    const char *http[] = {config->http_address, NULL};
    const char *zmq[] = {config->ingest_endpoint, config->publish_endpoint,
                         config->replay_endpoint, NULL};
    if (security_check_exposure (&config->security, "transaction", http, zmq))
        return 2;
    zsys_init ();
    zloop_t *loop = zloop_new ();
    assert (loop);
    api_t *api = api_new (loop, config);
    if (!api) {
        zloop_destroy (&loop);
        return 1;
    }
    zloop_start (loop); // until SIGINT / SIGTERM
    log_info ("stopping");
    api_destroy (&api);
    zloop_destroy (&loop);
    return 0;
}
