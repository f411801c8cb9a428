/*  stream — the ledger's event store and sequencer.

    Parses the command line, runs the server until SIGINT/SIGTERM, exits
    0. Bad options exit 2; a log or endpoint that cannot be opened exits 1.
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "ingest.h"
#include "log.h"
#include "server.h"

#define STREAM_HEARTBEAT_MS_MAX  3600000 // an hour: beyond it, no subscriber notices a gap
#define STREAM_DEDUPE_WINDOW_MAX 100000000 // ~2.4 GiB of ids at ~24 bytes each

static const char *s_usage =
    "Usage: stream [OPTION]...\n"
    "The ledger's event store: sequences, stores and publishes events.\n"
    "\n"
    "  --ingest ENDPOINT       PULL bind for APPEND requests (tcp://127.0.0.1:5557)\n"
    "  --publish ENDPOINT      PUB bind for EVENTS, RESULT, HEARTBEAT "
    "(tcp://127.0.0.1:5556)\n"
    "  --replay ENDPOINT       ROUTER bind for FETCH (tcp://127.0.0.1:5558)\n"
    "  --http-addr ADDRESS     HTTP address (127.0.0.1)\n"
    "  --http-port N           HTTP port for /health, /metrics, /events (3002; 0 = any)\n"
    "  --data-dir DIR          directory of the log, events/ (data/stream)\n"
    "  --segment-bytes N       roll the log's open segment at N bytes (268435456)\n"
    "  --verify                at start, check every sealed segment's lines and "
    "checksum\n"
    "  --fsync always|never    fdatasync each burst before acknowledging (always)\n"
    "  --heartbeat-ms N        HEARTBEAT period (1000)\n"
    "  --dedupe-window N       event ids remembered for idempotency (1000000, ~24 bytes "
    "each)\n"
    "  --log-level LEVEL       debug, info, warn or error (info)\n";
static const char *s_usage_end =
    "  --help                  this text\n"
    "  --version               the version\n";

//  Returns 0, 1 when --help or --version was answered, or -1 on a bad option.
static int s_parse (int argc, char *argv[], server_config_t *config, log_level_t *level)
{
    enum {
        OPT_INGEST = 256,
        OPT_PUBLISH,
        OPT_REPLAY,
        OPT_HTTP_ADDR,
        OPT_HTTP_PORT,
        OPT_DATA_DIR,
        OPT_FSYNC,
        OPT_HEARTBEAT,
        OPT_DEDUPE,
        OPT_LOG_LEVEL,
        OPT_SEGMENT_BYTES,
        OPT_VERIFY,
        OPT_HELP,
        OPT_VERSION
    };
    static const struct option options[] = {
        {"ingest", required_argument, NULL, OPT_INGEST},
        {"publish", required_argument, NULL, OPT_PUBLISH},
        {"replay", required_argument, NULL, OPT_REPLAY},
        {"http-addr", required_argument, NULL, OPT_HTTP_ADDR},
        {"http-port", required_argument, NULL, OPT_HTTP_PORT},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
        {"dedupe-window", required_argument, NULL, OPT_DEDUPE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        SECURITY_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int64_t value = 0;
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case OPT_INGEST:
            config->ingest_endpoint = optarg;
            break;
        case OPT_PUBLISH:
            config->publish_endpoint = optarg;
            break;
        case OPT_REPLAY:
            config->replay_endpoint = optarg;
            break;
        case OPT_HTTP_ADDR:
            config->http_addr = optarg;
            break;
        case OPT_DATA_DIR:
            config->data_dir = optarg;
            break;
        case OPT_HTTP_PORT:
            if (config_parse_int64 ("--http-port", optarg, 0, 65535, &value))
                return -1;
            config->http_port = (int)value;
            break;
        case OPT_FSYNC:
            if (config_parse_fsync (optarg, &config->fsync_always))
                return -1;
            break;
        case OPT_HEARTBEAT:
            if (config_parse_int64 ("--heartbeat-ms", optarg, 1, STREAM_HEARTBEAT_MS_MAX,
                                    &config->heartbeat_ms))
                return -1;
            break;
        case OPT_DEDUPE:
            if (config_parse_int64 ("--dedupe-window", optarg, 1,
                                    STREAM_DEDUPE_WINDOW_MAX, &value))
                return -1;
            config->dedupe_window = (size_t)value;
            break;
        case OPT_SEGMENT_BYTES:
            if (config_parse_int64 ("--segment-bytes", optarg, LOG_FILE_SEGMENT_BYTES_MIN,
                                    LOG_FILE_SEGMENT_BYTES_MAX, &value))
                return -1;
            config->log.segment_bytes = (uint64_t)value;
            break;
        case OPT_VERIFY:
            config->log.verify = true;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse (optarg, level)) {
                fprintf (stderr,
                         "stream: --log-level: expected debug, info, warn or error, "
                         "got \"%s\"\n",
                         optarg);
                return -1;
            }
            break;
        case OPT_HELP:
            fputs (s_usage, stdout);
            fputs (security_usage, stdout);
            fputs (s_usage_end, stdout);
            return 1;
        case OPT_VERSION:
            config_print_version ("stream");
            return 1;
        default:
            if (security_option_parse (&config->security, option, optarg))
                break;
            fputs (s_usage, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "stream: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return security_options_check (&config->security, "stream");
}

int main (int argc, char *argv[])
{
    server_config_t config = {
        .ingest_endpoint = "tcp://127.0.0.1:5557",
        .publish_endpoint = "tcp://127.0.0.1:5556",
        .replay_endpoint = "tcp://127.0.0.1:5558",
        .http_addr = "127.0.0.1",
        .http_port = 3002,
        .data_dir = "data/stream",
        .fsync_always = true,
        .heartbeat_ms = 1000,
        .dedupe_window = INGEST_DEDUPE_WINDOW_DEFAULT,
    };
    log_level_t level = LOG_INFO;
    int parsed = s_parse (argc, argv, &config, &level);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    log_init ("stream", level);
    const char *http[] = {config.http_addr, NULL};
    const char *zmq[] = {config.ingest_endpoint, config.publish_endpoint,
                         config.replay_endpoint, NULL};
    if (security_check_exposure (&config.security, "stream", http, zmq))
        return 2;
    server_t *server = server_new (&config);
    if (!server)
        return 1;
    int rc = server_run (server);
    server_destroy (&server);
    return rc ? 1 : 0;
}
