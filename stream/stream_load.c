/*  stream_load — a load client for the stream's ingest (scripts/bench-stream).

    Keeps --inflight APPEND requests of --events deposited events each in
    flight over --clients PUSH sockets, counts the RESULTs on a SUB, and
    prints one line of figures. Closed loop: throughput is what the stream
    sustains, not what the client can fire. Not part of the service.
*/
#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "wire.h"

#define LOAD_CLIENTS_MAX    64
#define LOAD_EVENTS_MAX     4096  // the stream's per-request limit
#define LOAD_RESULT_WAIT_MS 10000 // no RESULT this long: the stream is stuck or gone
#define LOAD_PROBE_MS       100

typedef struct {
    const char *ingest;
    const char *publish;
    long requests;
    long events;
    long inflight;
    long clients;
    long accounts;
} load_config_t;

static void s_send_request (zsock_t *push, const char *prefix, long request, long events,
                            long accounts)
{
    void *socket = zsock_resolve (push);
    char request_id[96], line[256]; // prefix (48) and numbers (20 each) fit
    snprintf (request_id, sizeof request_id, "%s-r%ld", prefix, request);
    wire_append_begin (socket, request_id, events > 0);
    for (long i = 0; i < events; i++) {
        int bytes = snprintf (line, sizeof line,
                              "{\"id\":\"%s-%ld-%ld\",\"type\":\"deposited\",\"v\":2,"
                              "\"account\":\"acct-%ld\",\"amount\":1,\"currency\":\"XXX\"}",
                              prefix, request, i, (request * events + i) % accounts);
        wire_append_event (socket, line, (size_t)bytes, i + 1 == events);
    }
}

//  Waits for one RESULT of ours; returns 1 for ok, 0 for another status,
//  -1 on timeout. probe: the request id to wait for (others are ignored).
static int s_recv_result (zsock_t *sub, const char *prefix, const char *probe)
{
    zpoller_t *poller = zpoller_new (sub, NULL);
    int rc = -1;
    while (zpoller_wait (poller, probe ? LOAD_PROBE_MS : LOAD_RESULT_WAIT_MS)) {
        char *topic = NULL, *id = NULL, *result = NULL;
        zsock_recv (sub, "sss", &topic, &id, &result); // RESULT, request_id, json
        bool ours = id && (probe ? strcmp (id, probe) == 0
                                 : strncmp (id, prefix, strlen (prefix)) == 0 &&
                                       id[strlen (prefix) + 1] == 'r');
        if (ours)
            rc = result && strstr (result, "\"status\":\"ok\"") ? 1 : 0;
        zstr_free (&topic);
        zstr_free (&id);
        zstr_free (&result);
        if (ours)
            break;
    }
    zpoller_destroy (&poller);
    return rc;
}

static int s_run (const load_config_t *config)
{
    char prefix[48]; // request ids are prefix-rN, the probe's prefix-probe
    snprintf (prefix, sizeof prefix, "load-%d-%lld", getpid (),
              (long long)zclock_time ());
    zsock_t *sub = zsock_new_sub (config->publish, WIRE_RESULT);
    zsock_t *push[LOAD_CLIENTS_MAX];
    for (long c = 0; c < config->clients; c++) {
        push[c] = zsock_new_push (config->ingest);
        zsock_set_sndhwm (push[c], 0);
    }
    //  A RESULT for an empty (invalid) request proves the SUB is joined.
    char probe[64];
    snprintf (probe, sizeof probe, "%s-probe", prefix);
    int joined = -1;
    for (int attempt = 0; attempt < LOAD_RESULT_WAIT_MS / LOAD_PROBE_MS && joined < 0;
         attempt++) {
        wire_append_begin (zsock_resolve (push[0]), probe, false);
        joined = s_recv_result (sub, prefix, probe);
    }
    long sent = 0, received = 0, ok = 0;
    int64_t start = zclock_usecs ();
    while (joined >= 0 && received < config->requests) {
        while (sent < config->requests && sent - received < config->inflight) {
            s_send_request (push[sent % config->clients], prefix, sent, config->events,
                            config->accounts);
            sent++;
        }
        int rc = s_recv_result (sub, prefix, NULL);
        if (rc < 0)
            break;
        received++;
        ok += rc;
    }
    double seconds = (double)(zclock_usecs () - start) / 1e6;
    for (long c = 0; c < config->clients; c++)
        zsock_destroy (&push[c]);
    zsock_destroy (&sub);
    if (joined < 0 || received < config->requests) {
        fprintf (stderr, "stream_load: %s after %ld of %ld results\n",
                 joined < 0 ? "no answer to the probe" : "timed out", received,
                 config->requests);
        return 1;
    }
    printf ("requests=%ld events=%ld ok=%ld seconds=%.3f appends_per_s=%.0f "
            "events_per_s=%.0f\n",
            received, received * config->events, ok, seconds, (double)received / seconds,
            (double)(received * config->events) / seconds);
    return ok == received ? 0 : 1;
}

int main (int argc, char *argv[])
{
    load_config_t config = {
        CONFIG_INGEST_ENDPOINT, CONFIG_PUBLISH_ENDPOINT, 10000, 1, 256, 4, 1000};
    static const struct option options[] = {
        {"ingest", required_argument, NULL, 'i'},
        {"publish", required_argument, NULL, 'p'},
        {"requests", required_argument, NULL, 'n'},
        {"events", required_argument, NULL, 'e'},
        {"inflight", required_argument, NULL, 'w'},
        {"clients", required_argument, NULL, 'c'},
        {"accounts", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case 'i':
            config.ingest = optarg;
            break;
        case 'p':
            config.publish = optarg;
            break;
        case 'n':
            config.requests = atol (optarg);
            break;
        case 'e':
            config.events = atol (optarg);
            break;
        case 'w':
            config.inflight = atol (optarg);
            break;
        case 'c':
            config.clients = atol (optarg);
            break;
        case 'a':
            config.accounts = atol (optarg);
            break;
        default:
            fprintf (stderr,
                     "usage: stream_load [--ingest EP] [--publish EP] [--requests N] "
                     "[--events K] [--inflight W] [--clients C] [--accounts A]\n");
            return 2;
        }
    }
    if (config.requests < 1 || config.events < 1 || config.events > LOAD_EVENTS_MAX ||
        config.inflight < 1 || config.clients < 1 || config.clients > LOAD_CLIENTS_MAX ||
        config.accounts < 1) {
        fprintf (stderr, "stream_load: option out of range\n");
        return 2;
    }
    return s_run (&config);
}
