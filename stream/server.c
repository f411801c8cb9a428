/*  server — see server.h. */
#include "server.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "chain.h"
#include "curve.h"
#include "event.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "replay.h"
#include "wire.h"
#include "zap.h"

//  A subscriber that falls this far behind loses live messages and
//  catches up through replay (heartbeats reveal the gap); ~200 bytes each.
#define SERVER_PUBLISH_SNDHWM_MSGS 200000
//  Bounds one ingest frame: a proposed event is at most EVENT_LINE_BYTES_MAX,
//  a packed APPEND many requests (the transaction packs up to 1 MiB).
#define SERVER_INGEST_FRAME_BYTES_MAX (4 * 1024 * 1024)
//  Requests queued at the PULL before senders block: several bursts.
#define SERVER_INGEST_RCVHWM_MSGS 100000
//  Replies (~1 MiB each) queued to one replay peer before the ROUTER drops
//  the next ones: a client that sends FETCHes and never reads pins this
//  much, not the default 1000. The catch-up subscriber has at most two
//  FETCHes out; one it does not get an answer to is sent again.
#define SERVER_REPLAY_SNDHWM_MSGS   4
#define SERVER_EVENTS_LIMIT_DEFAULT 100
#define SERVER_EVENTS_LIMIT_MAX     1000 // GET /events is for audit, replay is for bulk
#define SERVER_PATH_BYTES_MAX       4096

struct server {
    server_config_t config;
    zloop_t *loop;
    zsock_t *pull;
    zsock_t *publish;
    zsock_t *router;
    ingest_t *ingest;
    replay_t *replay;
    http_server_t *http;
    curve_t *curve; // own keypair; NULL: plain (no --curve-dir)
    zap_t *zap;     // decides CURVE clients; NULL: plain
    uint64_t heartbeats;
    bool signing; // --sign-key: heads are signed with secret_key
    uint8_t secret_key[CHAIN_SECRET_KEY_BYTES];
    chain_head_t head; // the committed log's, signed once per seq
};

//  The committed log's head, signed when signing (once per seq: a
//  signature costs more than a heartbeat).
static const chain_head_t *s_head (server_t *self)
{
    log_file_t *log = ingest_log (self->ingest);
    int64_t seq = log_file_committed_seq (log);
    if (seq == self->head.seq && (seq == 0 || self->head.is_signed == self->signing))
        return &self->head;
    self->head = (chain_head_t){.seq = seq, .ts_ms = log_file_committed_ts_ms (log)};
    memcpy (self->head.chain, log_file_committed_chain (log), CHAIN_BYTES);
    if (self->signing && seq > 0)
        chain_head_sign (&self->head, self->secret_key);
    return &self->head;
}

static int s_on_ingest (zloop_t *loop, zsock_t *reader, void *arg)
{
    server_t *self = (server_t *)arg;
    return ingest_drain (self->ingest, reader);
}

static int s_on_replay (zloop_t *loop, zsock_t *reader, void *arg)
{
    server_t *self = (server_t *)arg;
    return replay_handle (self->replay, reader);
}

//  ["HEARTBEAT", last_committed_seq, identity, head] (wire.h; replay.h
//  for the identity, chain.h for the head).
static int s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    server_t *self = (server_t *)arg;
    char head[CHAIN_HEAD_JSON_BYTES_MAX];
    const chain_head_t *current = s_head (self);
    chain_head_format (current, head, sizeof head);
    wire_heartbeat_send (zsock_resolve (self->publish), current->seq,
                         replay_identity (self->replay), head);
    self->heartbeats++;
    ingest_snapshot (self->ingest, false); // a forked child, when one is due
    return 0;
}

static void s_health (http_request_t *request, void *arg)
{
    server_t *self = (server_t *)arg;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "status", "ok");
    cJSON_AddNumberToObject (json, "last_seq",
                             (double)log_file_committed_seq (ingest_log (self->ingest)));
    cJSON_AddStringToObject (json, "fsync",
                             self->config.fsync_always ? "always" : "never");
    //  What replicas compare with theirs (docs/DESIGN.md, Integrity).
    cJSON_AddStringToObject (json, "identity", replay_identity (self->replay));
    http_respond_json (request, 200, json);
    cJSON_Delete (json);
}

//  GET /head -> {"seq","ts","chain"} (and "public_key","signature" when
//  signing): what a verifier checks a copy of the log against later.
static void s_head_route (http_request_t *request, void *arg)
{
    server_t *self = (server_t *)arg;
    char head[CHAIN_HEAD_JSON_BYTES_MAX];
    size_t bytes = chain_head_format (s_head (self), head, sizeof head);
    http_respond (request, 200, "application/json", head, bytes);
}

static void s_metrics (http_request_t *request, void *arg)
{
    server_t *self = (server_t *)arg;
    const ingest_stats_t *stats = ingest_stats (self->ingest);
    log_file_t *log = ingest_log (self->ingest);
    uint64_t syncs = log_file_sync_count (log);
    metrics_t *metrics = metrics_new ();
    const metrics_sample_t samples[] = {
        {"stream_appends_total", "Append requests stored", .count = stats->requests_ok},
        {"stream_events_total", "Events stored since start",
         .count = stats->events_appended},
        {"stream_requests_ok_total", "Requests answered ok", .count = stats->requests_ok},
        {"stream_requests_conflict_total", "Requests answered conflict",
         .count = stats->requests_conflict},
        {"stream_requests_duplicate_total", "Requests answered duplicate",
         .count = stats->requests_duplicate},
        {"stream_requests_invalid_total", "Requests answered invalid",
         .count = stats->requests_invalid},
        {"stream_requests_unavailable_total",
         "Requests answered unavailable (storage failed)",
         .count = stats->requests_unavailable},
        {"stream_bursts_total", "Drained bursts of requests", .count = stats->bursts},
        {"stream_packed_appends_total", "Packed APPEND messages taken (many requests each)",
         .count = stats->packed_appends},
        {"stream_packed_requests_total", "Requests that came in packed APPENDs",
         .count = stats->packed_requests},
        {"stream_commit_failures_total", "Bursts whose commit failed",
         .count = stats->commits_failed},
        {"stream_fsyncs_total", "fdatasync calls on the log", .count = syncs},
        {"stream_events_per_fsync", "Average events per fdatasync", .gauge = true,
         .value = syncs ? (double)stats->events_appended / (double)syncs : 0.0},
        {"stream_last_seq", "Last committed seq", .gauge = true,
         .value = (double)log_file_committed_seq (log)},
        {"stream_log_bytes", "Committed bytes of the log", .gauge = true,
         .value = (double)log_file_bytes (log)},
        {"stream_accounts", "Accounts with at least one event", .gauge = true,
         .value = (double)ingest_account_count (self->ingest)},
        {"stream_http_requests_total", "HTTP requests answered",
         .count = http_server_requests_total (self->http)},
    };
    metrics_samples (metrics, samples, sizeof samples / sizeof samples[0]);
    http_server_metrics (self->http, metrics);
    const replay_stats_t *replay = replay_stats (self->replay);
    const zap_stats_t *zap = self->zap ? zap_stats (self->zap) : &(zap_stats_t){0};
    const metrics_sample_t links[] = {
        {"stream_replay_requests_total", "Requests received on the replay ROUTER",
         .count = replay->requests},
        {"stream_replay_replies_dropped_total",
         "Replay requests dropped: the peer's reply queue was full, or it left",
         .count = replay->replies_dropped},
        {"stream_curve_allowed_total", "CURVE handshakes whose client key was allowed",
         .count = zap->allowed},
        {"stream_curve_refused_total",
         "CURVE handshakes refused (key not in the socket's list)",
         .count = zap->refused},
    };
    metrics_samples (metrics, links, sizeof links / sizeof links[0]);
    size_t bytes = 0;
    const char *text = metrics_text (metrics, &bytes);
    http_respond (request, 200, METRICS_CONTENT_TYPE, text, bytes);
    metrics_destroy (&metrics);
}

//  True when a token that sees some accounts only may read the line: an
//  event that touches one of them. Lines of unknown types are not shown.
static bool s_line_visible (const auth_principal_t *principal, const char *line,
                            size_t bytes, int64_t *seq)
{
    event_t event;
    char error[128];
    if (event_parse_stored (line, bytes, &event, error, sizeof error))
        return false; // the log was checked at start: cannot happen
    *seq = event.seq;
    if (event_type_has_parties (event.type))
        return auth_principal_allows_account (principal, event.from) ||
               auth_principal_allows_account (principal, event.to);
    return event.type != EVENT_TYPE_UNKNOWN &&
           auth_principal_allows_account (principal, event.account);
}

//  GET /events?from_seq=&limit= -> {"events":[...],"last_seq":N}; limit is
//  1..SERVER_EVENTS_LIMIT_MAX (like accounting's pages), and a page also
//  stops at REPLAY_BATCH_BYTES_MAX bytes: page on with from_seq. A token
//  that sees some accounts only gets the page's events that touch them,
//  and "next_from_seq" to page on with (a page may then be empty).
static void s_events (http_request_t *request, void *arg)
{
    server_t *self = (server_t *)arg;
    cJSON *errors = NULL;
    int64_t from_seq = 1, limit = SERVER_EVENTS_LIMIT_DEFAULT;
    http_request_query_int64 (request, "from_seq", 1, INT64_MAX, &from_seq, &errors);
    http_request_query_int64 (request, "limit", 1, SERVER_EVENTS_LIMIT_MAX, &limit,
                              &errors);
    if (errors) {
        http_respond_invalid_query (request, errors);
        return;
    }
    const char *text = NULL;
    size_t bytes = 0;
    int count = replay_read (self->replay, from_seq, (size_t)limit, &text, &bytes);
    if (count < 0) {
        http_respond_problem (request, 500, "Storage error", "cannot read the log", NULL);
        return;
    }
    //  Lines are canonical JSON already: join them instead of re-printing.
    size_t size = bytes + 128; // the lines, the brackets and two numbers
    char *body = (char *)malloc (size);
    if (!body) {
        http_respond_problem (request, 503, "Out of memory", "try a smaller limit", NULL);
        return;
    }
    const auth_principal_t *principal = http_request_principal (request);
    bool filtered = !auth_principal_sees_all (principal);
    int64_t next_from_seq = from_seq;
    memcpy (body, "{\"events\":[", 11);
    size_t used = 11;
    for (const char *line = text; line < text + bytes;) {
        const char *end =
            (const char *)memchr (line, '\n', (size_t)(text + bytes - line));
        assert (end);
        int64_t seq = 0;
        bool shown =
            !filtered || s_line_visible (principal, line, (size_t)(end - line), &seq);
        if (filtered && seq >= next_from_seq)
            next_from_seq = seq + 1;
        if (shown) {
            if (used != 11)
                body[used++] = ',';
            memcpy (body + used, line, (size_t)(end - line));
            used += (size_t)(end - line);
        }
        line = end + 1;
    }
    used +=
        (size_t)snprintf (body + used, size - used, "],\"last_seq\":%lld",
                          (long long)log_file_committed_seq (ingest_log (self->ingest)));
    if (filtered)
        used += (size_t)snprintf (body + used, size - used, ",\"next_from_seq\":%lld",
                                  (long long)next_from_seq);
    body[used++] = '}';
    http_respond (request, 200, "application/json", body, used);
    free (body);
}

static const http_route_t s_routes[] = {
    {"GET", "/health", s_health, 0, AUTH_SCOPE_OPEN, NULL},
    {"GET", "/metrics", s_metrics, 0, AUTH_SCOPE_METRICS, NULL},
    {"GET", "/events", s_events, 0, AUTH_SCOPE_READ, "from_seq limit"},
    {"GET", "/head", s_head_route, 0, AUTH_SCOPE_READ, NULL},
    OPENAPI_ROUTE,
};

//  Under CURVE, zap_domain names the list of keys that may connect (zap.h).
static zsock_t *s_bind (server_t *self, int type, const char *endpoint, const char *what,
                        const char *zap_domain)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        log_error ("zsock_new (%s) failed", what);
        return NULL;
    }
    if (type == ZMQ_PUB)
        zsock_set_sndhwm (sock, SERVER_PUBLISH_SNDHWM_MSGS);
    if (type == ZMQ_PULL) {
        zsock_set_rcvhwm (sock, SERVER_INGEST_RCVHWM_MSGS);
        zsock_set_maxmsgsize (sock, SERVER_INGEST_FRAME_BYTES_MAX);
    }
    if (type == ZMQ_ROUTER) {
        zsock_set_sndhwm (sock, SERVER_REPLAY_SNDHWM_MSGS);
        zsock_set_router_mandatory (sock, 1); // a reply that cannot go is counted
    }
    if (self->curve)
        curve_apply_server (self->curve, sock, zap_domain);
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        log_error ("zsock_bind (%s \"%s\") failed: %s", what, endpoint,
                   zmq_strerror (errno));
        zsock_destroy (&sock);
    }
    return sock;
}

static int64_t s_lookup (void *arg, const char *id)
{
    return ingest_find ((ingest_t *)arg, id);
}

static int s_open_log (server_t *self)
{
    const char *path = self->config.data_dir;
    char error[512];
    if (zsys_dir_create ("%s", self->config.data_dir)) {
        log_error ("cannot create data directory \"%s\": %s", self->config.data_dir,
                   strerror (errno));
        return -1;
    }
    self->ingest =
        ingest_new (path, &self->config.log, self->publish, self->config.fsync_always,
                    self->config.dedupe_window, error, sizeof error);
    if (!self->ingest) {
        log_error ("cannot open the log \"%s\": %s", path, error);
        return -1;
    }
    ingest_set_publish_lines (self->ingest, self->config.publish_lines);
    log_info ("log %s/events: %lld events, %llu bytes in %zu segments, %zu accounts",
              path, (long long)log_file_committed_seq (ingest_log (self->ingest)),
              (unsigned long long)log_file_bytes (ingest_log (self->ingest)),
              log_file_segment_count (ingest_log (self->ingest)),
              ingest_account_count (self->ingest));
    self->replay = replay_new (ingest_log (self->ingest));
    if (!self->replay)
        return -1;
    replay_set_lookup (self->replay, s_lookup, self->ingest);
    return 0;
}

static int s_start_http (server_t *self)
{
    http_config_t http = {
        .service = "stream",
        .address = self->config.http_addr,
        .port = self->config.http_port,
        .routes = s_routes,
        .route_count = sizeof s_routes / sizeof s_routes[0],
        .arg = self,
        .security = &self->config.security,
    };
    openapi_register (s_routes, http.route_count);
    self->http = http_server_new (self->loop, &http);
    if (!self->http)
        return -1;
    log_info ("HTTP on %s:%d; ingest %s, publish %s, replay %s", self->config.http_addr,
              http_server_port (self->http), self->config.ingest_endpoint,
              self->config.publish_endpoint, self->config.replay_endpoint);
    return 0;
}

server_t *server_new (const server_config_t *config)
{
    server_t *self = (server_t *)zmalloc (sizeof (server_t));
    self->config = *config;
    //  A file-size limit must fail the write (EFBIG, answered as a
    //  storage error), not kill the process.
    signal (SIGXFSZ, SIG_IGN);
    self->loop = zloop_new ();
    if (!self->loop)
        goto failed;
    if (config->sign_key_path) {
        char error[512];
        uint8_t public_key[CHAIN_PUBLIC_KEY_BYTES];
        if (chain_key_load (config->sign_key_path, self->secret_key, public_key, error,
                            sizeof error)) {
            log_error ("--sign-key: %s", error);
            goto failed;
        }
        char hex[CHAIN_PUBLIC_KEY_BYTES * 2 + 1];
        chain_to_hex (public_key, hex);
        log_info ("heads are signed; public key %s", hex);
        self->signing = true;
    }
    //  The ZAP handler first: a CURVE socket bound without one would let
    //  any key in.
    if (config->security.curve_dir) {
        self->curve = curve_new (config->security.curve_dir, false);
        self->zap = self->curve ? zap_new (self->loop, config->security.curve_dir) : NULL;
        if (!self->zap)
            goto failed;
    }
    self->publish =
        s_bind (self, ZMQ_PUB, config->publish_endpoint, "publish", ZAP_DOMAIN_READ);
    if (!self->publish || s_open_log (self))
        goto failed;
    self->pull =
        s_bind (self, ZMQ_PULL, config->ingest_endpoint, "ingest", ZAP_DOMAIN_INGEST);
    self->router =
        s_bind (self, ZMQ_ROUTER, config->replay_endpoint, "replay", ZAP_DOMAIN_READ);
    if (!self->pull || !self->router)
        goto failed;
    if (zloop_reader (self->loop, self->pull, s_on_ingest, self) ||
        zloop_reader (self->loop, self->router, s_on_replay, self) ||
        zloop_timer (self->loop, (size_t)config->heartbeat_ms, 0, s_on_heartbeat, self) <
            0 ||
        s_start_http (self))
        goto failed;
    if (!config->fsync_always)
        log_warn ("--fsync never: acknowledgements are not durable (no fdatasync); "
                  "a crash can lose acknowledged events");
    return self;
failed:
    server_destroy (&self);
    return NULL;
}

void server_destroy (server_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        server_t *self = *self_p;
        http_server_destroy (&self->http);
        zap_destroy (&self->zap);
        zloop_destroy (&self->loop);
        replay_destroy (&self->replay);
        ingest_destroy (&self->ingest);
        zsock_destroy (&self->router);
        zsock_destroy (&self->pull);
        zsock_destroy (&self->publish);
        curve_destroy (&self->curve);
        sodium_memzero (self->secret_key, sizeof self->secret_key);
        free (self);
        *self_p = NULL;
    }
}

int server_run (server_t *self)
{
    //  zloop returns on SIGINT/SIGTERM (czmq's handler sets
    //  zsys_interrupted), or -1 when a handler fails.
    int rc = zloop_start (self->loop);
    log_info ("stopping at seq %lld",
              (long long)log_file_committed_seq (ingest_log (self->ingest)));
    ingest_snapshot (self->ingest, true); // the next start scans only the dedupe window
    return rc == -1 && !zsys_interrupted ? -1 : 0;
}
