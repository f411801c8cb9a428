/*  stream_load — a load client for the stream's ingest (scripts/bench-stream).

    Keeps --inflight APPEND requests of --events deposited events each in
    flight over --clients PUSH sockets, counts the results on a SUB, and
    prints one line of figures. The requests ready for one socket at once
    go as one packed APPEND (wire.h), or with --single one message each. Closed loop: throughput is what the stream
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
    bool single; // one message per request, not packed
} load_config_t;

static void s_send_request (zsock_t *push, wire_pack_t *pack, const char *prefix,
                            long request, long events, long accounts)
{
    void *socket = zsock_resolve (push);
    char request_id[96], line[256]; // prefix (48) and numbers (20 each) fit
    int id_bytes = snprintf (request_id, sizeof request_id, "%s-r%ld", prefix, request);
    if (pack)
        wire_pack_request (pack, request_id, (size_t)id_bytes, (size_t)events);
    else
        wire_append_begin (socket, request_id, events > 0);
    for (long i = 0; i < events; i++) {
        int bytes = snprintf (line, sizeof line,
                              "{\"id\":\"%s-%ld-%ld\",\"type\":\"deposited\",\"v\":2,"
                              "\"account\":\"acct-%ld\",\"amount\":1,\"currency\":\"XXX\"}",
                              prefix, request, i, (request * events + i) % accounts);
        if (pack)
            wire_pack_line (pack, line, (size_t)bytes);
        else
            wire_append_event (socket, line, (size_t)bytes, i + 1 == events);
    }
}

//  Counts one result: ours if its id is the probe, or (no probe) one of
//  our requests'.
static void s_count_result (const char *id, size_t id_bytes, const char *json,
                            size_t json_bytes, const char *prefix, const char *probe,
                            long *ours, long *ok)
{
    size_t prefix_bytes = strlen (prefix);
    bool mine = probe ? id_bytes == strlen (probe) && memcmp (id, probe, id_bytes) == 0
                      : id_bytes > prefix_bytes + 1 &&
                            memcmp (id, prefix, prefix_bytes) == 0 &&
                            id[prefix_bytes + 1] == 'r';
    if (!mine)
        return;
    (*ours)++;
    static const char status_ok[] = "\"status\":\"ok\"";
    if (memmem (json, json_bytes, status_ok, sizeof status_ok - 1))
        (*ok)++;
}

//  Waits for results of ours (RESULT or RESULTS): the count of them, with
//  *ok those that are ok; -1 on timeout. probe: the request id to wait
//  for (others are ignored).
static long s_recv_results (zsock_t *sub, const char *prefix, const char *probe, long *ok)
{
    zpoller_t *poller = zpoller_new (sub, NULL);
    long ours = 0;
    while (ours == 0 && zpoller_wait (poller, probe ? LOAD_PROBE_MS : LOAD_RESULT_WAIT_MS)) {
        zmsg_t *msg = zmsg_recv (sub);
        zframe_t *topic = msg ? zmsg_first (msg) : NULL;
        zframe_t *first = msg ? zmsg_next (msg) : NULL;
        zframe_t *second = msg ? zmsg_next (msg) : NULL;
        if (topic && zframe_streq (topic, WIRE_RESULT) && first && second)
            s_count_result ((const char *)zframe_data (first), zframe_size (first),
                            (const char *)zframe_data (second), zframe_size (second),
                            prefix, probe, &ours, ok);
        else if (topic && zframe_streq (topic, WIRE_RESULTS) && first) {
            wire_reader_t reader;
            wire_reader_init (&reader, zframe_data (first), zframe_size (first));
            const char *id, *json;
            size_t id_bytes, json_bytes;
            while (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes) ==
                   WIRE_PACKED_REQUEST)
                s_count_result (id, id_bytes, json, json_bytes, prefix, probe, &ours, ok);
        }
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    return ours > 0 ? ours : -1;
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
    long joined = -1, ok = 0;
    for (int attempt = 0; attempt < LOAD_RESULT_WAIT_MS / LOAD_PROBE_MS && joined < 0;
         attempt++) {
        wire_append_begin (zsock_resolve (push[0]), probe, false);
        joined = s_recv_results (sub, prefix, probe, &ok);
    }
    wire_pack_t packs[LOAD_CLIENTS_MAX] = {{0}};
    long sent = 0, received = 0;
    ok = 0;
    int64_t start = zclock_usecs ();
    while (joined >= 0 && received < config->requests) {
        while (sent < config->requests && sent - received < config->inflight) {
            long client = sent % config->clients;
            s_send_request (push[client], config->single ? NULL : &packs[client], prefix,
                            sent, config->events, config->accounts);
            sent++;
        }
        for (long c = 0; c < config->clients; c++)
            if (packs[c].bytes) {
                wire_append_packed_send (zsock_resolve (push[c]), packs[c].data,
                                         packs[c].bytes);
                wire_pack_reset (&packs[c]);
            }
        long rc = s_recv_results (sub, prefix, NULL, &ok);
        if (rc < 0)
            break;
        received += rc;
    }
    for (long c = 0; c < config->clients; c++)
        wire_pack_free (&packs[c]);
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
        CONFIG_INGEST_ENDPOINT, CONFIG_PUBLISH_ENDPOINT, 10000, 1, 256, 4, 1000, false};
    static const struct option options[] = {
        {"ingest", required_argument, NULL, 'i'},
        {"publish", required_argument, NULL, 'p'},
        {"requests", required_argument, NULL, 'n'},
        {"events", required_argument, NULL, 'e'},
        {"inflight", required_argument, NULL, 'w'},
        {"clients", required_argument, NULL, 'c'},
        {"accounts", required_argument, NULL, 'a'},
        {"single", no_argument, NULL, 's'},
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
        case 's':
            config.single = true;
            break;
        default:
            fprintf (stderr,
                     "usage: stream_load [--ingest EP] [--publish EP] [--requests N] "
                     "[--events K] [--inflight W] [--clients C] [--accounts A] "
                     "[--single]\n");
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
