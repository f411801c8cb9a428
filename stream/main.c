/*  stream — the ledger's event store and sequencer.

    Parses the command line, runs the server until SIGINT/SIGTERM, exits
    0. Bad options exit 2; a log or endpoint that cannot be opened exits 1.
*/
#include <string.h>

#include "config.h"
#include "ingest.h"
#include "log.h"
#include "security.h"
#include "server.h"
#include "verify.h"

#define STREAM_HEARTBEAT_MS_MAX  3600000 // an hour: beyond it, no subscriber notices a gap
#define STREAM_DEDUPE_WINDOW_MAX 100000000 // ~2.4 GiB of ids at ~24 bytes each

typedef struct {
    server_config_t server;
    log_level_t log_level;
} options_t;

#define AT(field) CONFIG_FIELD (options_t, field)

static const config_option_t s_options[] = {
    CONFIG_TEXT ("ingest", "ENDPOINT", AT (server.ingest_endpoint),
                 CONFIG_INGEST_ENDPOINT, "PULL bind for APPEND requests (%s)"),
    CONFIG_TEXT ("publish", "ENDPOINT", AT (server.publish_endpoint),
                 CONFIG_PUBLISH_ENDPOINT, "PUB bind for EVENTS, RESULT(S), HEARTBEAT (%s)"),
    CONFIG_TEXT ("replay", "ENDPOINT", AT (server.replay_endpoint),
                 CONFIG_REPLAY_ENDPOINT, "ROUTER bind for FETCH (%s)"),
    CONFIG_TEXT ("http-addr", "ADDRESS", AT (server.http_addr), CONFIG_HTTP_ADDRESS,
                 "HTTP address (%s)"),
    CONFIG_INT ("http-port", AT (server.http_port), 3002, 0, 65535,
                "HTTP port for /health, /metrics, /events, /head (%s; 0 = any)"),
    CONFIG_TEXT ("data-dir", "DIR", AT (server.data_dir), "data/stream",
                 "directory of the log, events/ (%s)"),
    CONFIG_INT ("segment-bytes", AT (server.log.segment_bytes),
                LOG_FILE_SEGMENT_BYTES_DEFAULT, LOG_FILE_SEGMENT_BYTES_MIN,
                LOG_FILE_SEGMENT_BYTES_MAX,
                "roll the log's open segment at N bytes (%s)"),
    CONFIG_FLAG ("verify-on-start", AT (server.log.verify),
                 "at start, check every sealed segment's lines and checksum"),
    //  The earlier spelling; with an operand, --verify PATH is the verifier.
    CONFIG_FLAG ("verify", AT (server.log.verify),
                 "alone: --verify-on-start; --verify PATH [--head FILE]\n"
                 "[--public-key HEX]: check a log's chain and exit"),
    CONFIG_TEXT ("sign-key", "FILE", AT (server.sign_key_path), NULL,
                 "sign heads with this Ed25519 seed (scripts/sign-key)"),
    CONFIG_FSYNC ("fsync", AT (server.fsync_always), true,
                  "fdatasync each burst before acknowledging (%s)"),
    CONFIG_INT ("heartbeat-ms", AT (server.heartbeat_ms), 1000, 1,
                STREAM_HEARTBEAT_MS_MAX, "HEARTBEAT period (%s)"),
    CONFIG_INT ("dedupe-window", AT (server.dedupe_window), INGEST_DEDUPE_WINDOW_DEFAULT,
                1, STREAM_DEDUPE_WINDOW_MAX,
                "event ids remembered for idempotency (%s, ~24 bytes each)"),
    CONFIG_FLAG ("publish-lines", AT (server.publish_lines),
                 "EVENTS one message per request, one frame per line: for "
                 "subscribers older than the packed form"),
    CONFIG_LOG_LEVEL (AT (log_level)),
    SECURITY_CONFIG_OPTIONS (options_t, server.security),
};

static const config_t s_config = {
    .service = "stream",
    .summary = "The ledger's event store: sequences, stores and publishes events.",
    .options = s_options,
    .count = sizeof s_options / sizeof s_options[0],
};

int main (int argc, char *argv[])
{
    if (verify_wanted (argc, argv))
        return verify_main (argc, argv);
    options_t options;
    memset (&options, 0, sizeof options); // what the table does not set is 0
    config_result_t parsed = config_parse (&s_config, &options, argc, argv);
    if (parsed != CONFIG_RUN)
        return parsed == CONFIG_EXIT ? 0 : 2;
    server_config_t *config = &options.server;
    if (security_options_check (&config->security, "stream"))
        return 2;
    log_init ("stream", options.log_level);
    const char *http[] = {config->http_addr, NULL};
    const char *zmq[] = {config->ingest_endpoint, config->publish_endpoint,
                         config->replay_endpoint, NULL};
    if (security_check_exposure (&config->security, "stream", http, zmq))
        return 2;
    server_t *server = server_new (config);
    if (!server)
        return 1;
    int rc = server_run (server);
    server_destroy (&server);
    return rc ? 1 : 0;
}
