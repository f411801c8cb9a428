/*  transaction — the write side: validates balance changes against its
    write model and appends them through the stream. main parses the
    options, creates the service on one zloop, runs it and tears it down.
*/
#include <czmq.h>
#include <getopt.h>
#include <stdio.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "security.h"

#define ACK_TIMEOUT_MS_DEFAULT       5000 // a durable result normally takes < 10 ms
#define INFLIGHT_MAX_DEFAULT         4096 // waiting HTTP requests; each holds a connection
#define RETRIES_MAX_DEFAULT          5    // conflict retries before 409
#define HOLD_EXPIRY_MS_DEFAULT       100  // due holds expire within about this
#define IDEMPOTENCY_KEYS_MAX_DEFAULT 100000 // answers remembered by key (~0.5 KiB each)

static void s_usage (FILE *out)
{
    fprintf (
        out,
        "Usage: transaction [OPTION]...\n"
        "Validates deposits, withdrawals and transfers and appends them via the "
        "stream.\n\n"
        "  --ingest ENDPOINT       stream's ingest, PUSH connect (tcp://127.0.0.1:5557)\n"
        "  --publish ENDPOINT      stream's publish, SUB connect (tcp://127.0.0.1:5556)\n"
        "  --replay ENDPOINT       stream's replay, DEALER connect "
        "(tcp://127.0.0.1:5558)\n"
        "  --http-addr ADDRESS     HTTP address (127.0.0.1)\n"
        "  --http-port N           HTTP port (3000; 0 = any)\n"
        "  --ack-timeout-ms N      503 when no durable result within N ms (5000)\n"
        "  --overdraft-limit N     balances may not go below -N (0)\n"
        "  --inflight-max N        waiting requests; beyond, 503 at once (4096)\n"
        "  --retries-max N         conflict retries before 409 (5)\n"
        "  --hold-expiry-ms N      look for holds past their timeout every N ms and\n"
        "                          expire them (100; 0 = never: other instances do)\n"
        "  --idempotency-keys-max N  answers remembered by Idempotency-Key (100000)\n"
        "  --connections-per-ip N  HTTP connections one client address may hold (%d)\n"
        "  --log-level LEVEL       debug, info, warn or error (info)\n"
        "%s"
        "  --help                  this text\n"
        "  --version               the version\n",
        HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT, security_usage);
}

static int s_parse_args (int argc, char **argv, api_config_t *config, log_level_t *level)
{
    static const struct option options[] = {
        {"ingest", required_argument, NULL, 'i'},
        {"publish", required_argument, NULL, 'p'},
        {"replay", required_argument, NULL, 'r'},
        {"http-port", required_argument, NULL, 'P'},
        {"http-addr", required_argument, NULL, 'A'},
        {"ack-timeout-ms", required_argument, NULL, 't'},
        {"overdraft-limit", required_argument, NULL, 'o'},
        {"inflight-max", required_argument, NULL, 'm'},
        {"retries-max", required_argument, NULL, 'R'},
        {"hold-expiry-ms", required_argument, NULL, 'E'},
        {"idempotency-keys-max", required_argument, NULL, 'k'},
        {"connections-per-ip", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        SECURITY_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int opt;
    int64_t value = 0;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'i':
            config->ingest_endpoint = optarg;
            break;
        case 'p':
            config->publish_endpoint = optarg;
            break;
        case 'r':
            config->replay_endpoint = optarg;
            break;
        case 'A':
            config->http_address = optarg;
            break;
        case 'P':
            rc = config_parse_int64 ("--http-port", optarg, 0, 65535, &value);
            config->http_port = (int)value;
            break;
        case 't':
            rc = config_parse_int64 ("--ack-timeout-ms", optarg, 1, 3600000, &value);
            config->ack_timeout_ms = (int)value;
            break;
        case 'o':
            rc = config_parse_int64 ("--overdraft-limit", optarg, 0,
                                     1000000000000000000LL, &config->overdraft_limit);
            break;
        case 'm':
            rc = config_parse_int64 ("--inflight-max", optarg, 1, 1000000, &value);
            config->inflight_max = (size_t)value;
            break;
        case 'R':
            rc = config_parse_int64 ("--retries-max", optarg, 0, 1000, &value);
            config->retries_max = (int)value;
            break;
        case 'E':
            rc = config_parse_int64 ("--hold-expiry-ms", optarg, 0, 3600000, &value);
            config->hold_expiry_ms = (int)value;
            break;
        case 'k':
            rc = config_parse_int64 ("--idempotency-keys-max", optarg, 1, 100000000,
                                     &value);
            config->idempotency_keys_max = (size_t)value;
            break;
        case 'c':
            rc = config_parse_int64 ("--connections-per-ip", optarg, 1,
                                     HTTP_CONNECTIONS_PER_IP_LIMIT, &value);
            config->connections_per_ip = (unsigned)value;
            break;
        case 'l':
            rc = log_level_parse (optarg, level);
            if (rc)
                fprintf (stderr,
                         "transaction: --log-level: expected debug|info|warn|error\n");
            break;
        case 'h':
            s_usage (stdout);
            exit (0);
        case 'V':
            config_print_version ("transaction");
            exit (0);
        default:
            if (security_option_parse (&config->security, opt, optarg))
                break;
            s_usage (stderr);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        fprintf (stderr, "transaction: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return security_options_check (&config->security, "transaction");
}

int main (int argc, char **argv)
{
    api_config_t config = {
        .ingest_endpoint = "tcp://127.0.0.1:5557",
        .publish_endpoint = "tcp://127.0.0.1:5556",
        .replay_endpoint = "tcp://127.0.0.1:5558",
        .http_address = "127.0.0.1",
        .http_port = 3000,
        .ack_timeout_ms = ACK_TIMEOUT_MS_DEFAULT,
        .overdraft_limit = 0,
        .inflight_max = INFLIGHT_MAX_DEFAULT,
        .retries_max = RETRIES_MAX_DEFAULT,
        .hold_expiry_ms = HOLD_EXPIRY_MS_DEFAULT,
        .idempotency_keys_max = IDEMPOTENCY_KEYS_MAX_DEFAULT,
    };
    log_level_t level = LOG_INFO;
    if (s_parse_args (argc, argv, &config, &level) != 0)
        return 2;
    log_init ("transaction", level);
    const char *http[] = {config.http_address, NULL};
    const char *zmq[] = {config.ingest_endpoint, config.publish_endpoint,
                         config.replay_endpoint, NULL};
    if (security_check_exposure (&config.security, "transaction", http, zmq))
        return 2;
    zsys_init ();
    zloop_t *loop = zloop_new ();
    assert (loop);
    api_t *api = api_new (loop, &config);
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
