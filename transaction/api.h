/*  api — the transaction service: HTTP write API, write model, and the
    conversation with the stream (APPEND over PUSH, EVENTS and RESULTs
    through the catch-up subscriber).

    A write request is validated, planned against the write model (with
    this instance's reservations), sent as one APPEND, and answered only
    when the stream made it durable and the write model applied it (201), or
    rejected it (409 after bounded conflict retries, 422), or did not
    answer in time (503). Idempotency keys make retries safe.
*/
#ifndef API_H_INCLUDED
#define API_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "security.h"

typedef struct api api_t;

typedef struct {
    const char *ingest_endpoint;  // stream's PULL (we connect PUSH)
    const char *publish_endpoint; // stream's PUB
    const char *replay_endpoint;  // stream's ROUTER
    const char *http_address;
    int http_port;
    int ack_timeout_ms;          // no durable result within: 503
    int64_t overdraft_limit;     // of accounts without a limit of their own
    size_t inflight_max;         // waiting HTTP requests; beyond: 503 at once
    int retries_max;             // conflict retries before 409
    size_t idempotency_keys_max; // answers remembered by key
    unsigned connections_per_ip; // HTTP connections one client address may hold
    //  How often due holds are looked for and expired; 0: never (this
    //  instance leaves expiry to the others).
    int hold_expiry_ms;
    security_config_t security;
} api_config_t;

//  Creates the sockets, the subscriber and the HTTP server on loop.
//  Returns NULL (logged) on failure. Strings in config are borrowed.
api_t *api_new (zloop_t *loop, const api_config_t *config);

//  Answers every waiting request with 503 and frees everything.
void api_destroy (api_t **self_p);

#endif
