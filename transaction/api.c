/*  api — the transaction service's routes and wiring (see api.h).

    The modules behind it: intake (HTTP body to request), ids (keys and
    event ids), landed (requests whose events may be stored already),
    plan (checks, reservations, the APPEND), request (lifecycle, answers),
    reply (201 bodies), status (/health, /metrics).
*/
#include "api.h"

#include <inttypes.h>

#include "expiry.h"
#include <sys/random.h>

#include "intake.h"
#include "key_hash.h"
#include "landed.h"
#include "log.h"
#include "openapi.h"
#include "plan.h"
#include "request.h"
#include "status.h"

#define API_SINGLE_BODY_BYTES_MAX (64 * 1024)       // DESIGN: one command
#define API_BATCH_BODY_BYTES_MAX  (8 * 1024 * 1024) // DESIGN: one batch
#define API_TICK_MS_MAX           50                // timeout granularity

//  The subscriber's events: folded into the write model.
static void s_on_event (void *arg, const event_t *event, const char *line,
                        size_t line_bytes)
{
    api_t *self = (api_t *)arg;
    write_model_set_head (self->model, subscriber_head_seq (self->subscriber));
    write_model_apply (self->model, event);
}

//  POST /transactions, /transfers, /batch, /accounts; PATCH /accounts/{id}
static void s_handle_write (api_t *self, http_request_t *http, route_t route)
{
    if (intake_refuse_diverged (self, http))
        return;
    const char *status;
    const char *reason = status_not_writable (self, &status);
    if (reason) {
        request_respond_problem (self, http, 503, reason, NULL);
        return;
    }
    parsed_t parsed = {NULL, 0, ""};
    if (intake_parse (self, http, route, &parsed) != 0 ||
        intake_refuse_accounts (self, http, route, &parsed)) {
        commands_free (parsed.commands, parsed.count);
        return;
    }
    //  Only a key's later uses compare fingerprints, so a request without
    //  a key hashes none (a fingerprint is a SHA-1 over every command).
    char fingerprint[COMMANDS_FINGERPRINT_BYTES + 1] = "";
    if (*parsed.key)
        commands_fingerprint (parsed.commands, parsed.count, route == ROUTE_BATCH,
                              fingerprint);
    //  A key seen before answers as it did first; only then may an open
    //  of an account with the same settings replay them.
    if ((*parsed.key && intake_known_key (self, http, parsed.key, fingerprint)) ||
        (route == ROUTE_OPEN && intake_open_replayed (self, http, parsed.commands))) {
        commands_free (parsed.commands, parsed.count);
        return;
    }
    if (self->waiters >= self->config.inflight_max) {
        commands_free (parsed.commands, parsed.count);
        request_respond_problem (self, http, 503, "too many requests in flight", NULL);
        return;
    }
    request_t *request = request_new (self, http, route, &parsed, fingerprint);
    if (landed_answer (request))
        return; // answered from the stored events
    if (request->keyed && landed_maybe_stored (request)) {
        landed_lookup_start (request);
        return; // answered, or decided once the stream said what it holds
    }
    if (plan_request (request) != 0)
        return; // answered 422
    if (plan_send (request) != 0)
        request_fail (request, 503, "the stream is unreachable", NULL, NULL);
    else
        http_request_suspend (http); // answered from a RESULT, an event or the timer
}

static void s_handle_transactions (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_TRANSACTION);
}

static void s_handle_transfers (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_TRANSFER);
}

static void s_handle_batch (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_BATCH);
}

//  POST /accounts {"account","currency","overdraft_limit"?,"metadata"?}
static void s_handle_open (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_OPEN);
}

//  PATCH /accounts/{id} {"overdraft_limit"?,"metadata"?}
static void s_handle_update (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_UPDATE);
}

//  POST /transfers/{id}/post {"amount"?} (the hold id in the path)
static void s_handle_post (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_POST);
}

//  POST /transfers/{id}/void {}
static void s_handle_void (http_request_t *http, void *arg)
{
    s_handle_write ((api_t *)arg, http, ROUTE_VOID);
}

static const http_route_t s_routes[] = {
    {"POST", "/transactions", s_handle_transactions, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/transfers", s_handle_transfers, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/transfers/{id}/post", s_handle_post, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/transfers/{id}/void", s_handle_void, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"POST", "/batch", s_handle_batch, API_BATCH_BODY_BYTES_MAX, AUTH_SCOPE_WRITE, NULL},
    {"POST", "/accounts", s_handle_open, API_SINGLE_BODY_BYTES_MAX, AUTH_SCOPE_WRITE,
     NULL},
    {"PATCH", "/accounts/{id}", s_handle_update, API_SINGLE_BODY_BYTES_MAX,
     AUTH_SCOPE_WRITE, NULL},
    {"GET", "/health", status_handle_health, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/metrics", status_handle_metrics, 0, AUTH_SCOPE_METRICS, NULL},
    OPENAPI_ROUTE,
};

static int s_connect_ingest (api_t *self)
{
    self->ingest = zsock_new (ZMQ_PUSH);
    if (!self->ingest)
        return -1;
    // Queue only to a live stream connection, never block the loop, and
    // drop what is unsent at exit: a client that saw 503 retries by key.
    zsock_set_immediate (self->ingest, 1);
    zsock_set_sndtimeo (self->ingest, 0);
    zsock_set_linger (self->ingest, 0);
    if (self->curve)
        curve_apply_client (self->curve, self->ingest);
    if (zsock_connect (self->ingest, "%s", self->config.ingest_endpoint) != 0) {
        log_error ("zsock_connect (PUSH, \"%s\") failed: %s",
                   self->config.ingest_endpoint, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

static int s_start_subscriber (api_t *self)
{
    subscriber_config_t config = {
        .publish_endpoint = self->config.publish_endpoint,
        .replay_endpoint = self->config.replay_endpoint,
        .applied_seq = 0,
        .want_results = true,
        .curve = self->curve,
    };
    subscriber_handlers_t handlers = {
        .on_event = s_on_event,
        .on_result = request_on_result,
        .on_applied = request_on_applied,
    };
    self->subscriber = subscriber_new (self->loop, &config, &handlers, self);
    return self->subscriber ? 0 : -1;
}

static int s_start_http (api_t *self)
{
    openapi_register (s_routes, sizeof s_routes / sizeof s_routes[0]);
    http_config_t config = {
        .service = "transaction",
        .address = self->config.http_address,
        .port = self->config.http_port,
        .routes = s_routes,
        .route_count = sizeof s_routes / sizeof s_routes[0],
        .arg = self,
        .connections_per_ip_max = self->config.connections_per_ip,
        .security = &self->config.security,
    };
    self->http = http_server_new (self->loop, &config);
    return self->http ? 0 : -1;
}

static size_t s_key_hash (const void *key)
{
    return (size_t)key_hash ((const char *)key);
}

//  An index of requests by a string that the request itself holds (its
//  attempt id or its key) and keeps unchanged while indexed: no copy of
//  the key per insert, and a hash a word at a time.
static zhashx_t *s_index_new (void)
{
    zhashx_t *index = zhashx_new ();
    if (index) {
        zhashx_set_key_duplicator (index, NULL);
        zhashx_set_key_destructor (index, NULL);
        zhashx_set_key_hasher (index, s_key_hash);
    }
    return index;
}

api_t *api_new (zloop_t *loop, const api_config_t *config)
{
    api_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->loop = loop;
    self->timer_id = -1;
    self->expiry_timer_id = -1;
    zuuid_t *uuid = zuuid_new ();
    snprintf (self->instance, sizeof self->instance, "%s", zuuid_str (uuid));
    zuuid_destroy (&uuid);
    if (getrandom (self->uuid_base, sizeof self->uuid_base, 0) !=
        (ssize_t)sizeof self->uuid_base) {
        log_error ("getrandom (%zu bytes) failed: %s", sizeof self->uuid_base,
                   strerror (errno));
        free (self);
        return NULL;
    }
    self->model = write_model_new ();
    self->idempotency = idempotency_new (config->idempotency_keys_max);
    self->requests = zlistx_new ();
    self->by_attempt = s_index_new ();
    self->by_key = s_index_new ();
    self->by_lookup = zhashx_new ();
    if (!self->model || !self->idempotency || !self->requests || !self->by_attempt ||
        !self->by_key || !self->by_lookup)
        goto failed;
    if (config->security.curve_dir &&
        !(self->curve = curve_new (config->security.curve_dir, true)))
        goto failed;
    self->lookup = lookup_new (loop, config->replay_endpoint, config->ack_timeout_ms,
                               self->curve, landed_on_lookup, self);
    if (!self->lookup)
        goto failed;
    if (s_connect_ingest (self) || s_start_subscriber (self) || s_start_http (self))
        goto failed;
    int tick_ms = config->ack_timeout_ms / 4;
    tick_ms = tick_ms < 1 ? 1 : tick_ms > API_TICK_MS_MAX ? API_TICK_MS_MAX : tick_ms;
    self->timer_id = zloop_timer (loop, (size_t)tick_ms, 0, request_on_tick, self);
    if (self->timer_id < 0 || expiry_start (self))
        goto failed;
    log_info (
        "listening on %s:%d, ingest %s, ack timeout %d ms, overdraft limit %" PRId64,
        config->http_address, http_server_port (self->http), config->ingest_endpoint,
        config->ack_timeout_ms, config->overdraft_limit);
    return self;
failed:
    api_destroy (&self);
    return NULL;
}

void api_destroy (api_t **self_p)
{
    assert (self_p);
    api_t *self = *self_p;
    if (!self)
        return;
    request_t *request;
    while (self->requests && (request = zlistx_first (self->requests)))
        request_fail (request, 503, "the service is stopping", NULL, NULL);
    if (self->timer_id >= 0)
        zloop_timer_end (self->loop, self->timer_id);
    expiry_stop (self);
    http_server_destroy (&self->http);
    subscriber_destroy (&self->subscriber);
    lookup_destroy (&self->lookup);
    zsock_destroy (&self->ingest);
    curve_destroy (&self->curve);
    zhashx_destroy (&self->by_lookup);
    zhashx_destroy (&self->by_key);
    zhashx_destroy (&self->by_attempt);
    zlistx_destroy (&self->requests);
    idempotency_destroy (&self->idempotency);
    write_model_destroy (&self->model);
    free (self);
    *self_p = NULL;
}
