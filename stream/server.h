/*  server — the stream process: one zloop over the ingest PULL, the
    publish PUB, the replay ROUTER, the HTTP server and a heartbeat timer.

    It wires the modules together (ingest decides and appends, replay
    reads, HTTP reports) and owns every socket; it has no logic of its own
    beyond the HTTP handlers for /health, /metrics, /events and /head.
*/
#ifndef SERVER_H_INCLUDED
#define SERVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log_file.h"
#include "security.h"

typedef struct {
    const char *ingest_endpoint;  // PULL, bind
    const char *publish_endpoint; // PUB, bind
    const char *replay_endpoint;  // ROUTER, bind
    const char *http_addr;
    int http_port;
    const char *data_dir;  // holds events/
    log_file_config_t log; // segment bytes, --verify
    bool fsync_always;
    bool publish_lines; // EVENTS one frame per line, for older subscribers
    int64_t heartbeat_ms;
    size_t dedupe_window; // event ids remembered for idempotency
    security_config_t security;
    const char *sign_key_path; // --sign-key: an Ed25519 seed; NULL: heads unsigned
} server_config_t;

typedef struct server server_t;

//  Opens the log, binds every endpoint. Returns NULL (logged) on failure.
server_t *server_new (const server_config_t *config);
void server_destroy (server_t **self_p);

//  Runs the loop until SIGINT or SIGTERM. Returns 0, or -1 if the loop
//  failed.
int server_run (server_t *self);

#endif
