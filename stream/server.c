/*  server — see server.h. */
#include "server.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "replay.h"

//  A subscriber that falls this far behind loses live messages and
//  catches up through replay (heartbeats reveal the gap); ~200 bytes each.
#define SERVER_PUBLISH_SNDHWM_MSGS 200000
//  Bounds one ingest frame; a proposed event is at most EVENT_LINE_BYTES_MAX.
#define SERVER_INGEST_FRAME_BYTES_MAX (64 * 1024)
//  Requests queued at the PULL before senders block: several bursts.
#define SERVER_INGEST_RCVHWM_MSGS   100000
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
    uint64_t heartbeats;
};

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

//  ["HEARTBEAT", last_committed_seq, identity]: the identity (replay.h)
//  is a trailing frame, which readers that know only two frames ignore.
static int s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    server_t *self = (server_t *)arg;
    char seq[32];
    snprintf (seq, sizeof seq, "%lld",
              (long long)log_file_committed_seq (ingest_log (self->ingest)));
    zsock_send (self->publish, "sss", "HEARTBEAT", seq, replay_identity (self->replay));
    self->heartbeats++;
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
    http_respond_json (request, 200, json);
    cJSON_Delete (json);
}

static void s_metrics (http_request_t *request, void *arg)
{
    server_t *self = (server_t *)arg;
    const ingest_stats_t *stats = ingest_stats (self->ingest);
    log_file_t *log = ingest_log (self->ingest);
    uint64_t syncs = log_file_sync_count (log);
    metrics_t *metrics = metrics_new ();
    metrics_counter (metrics, "stream_appends_total", "Append requests stored",
                     stats->requests_ok);
    metrics_counter (metrics, "stream_events_total", "Events stored since start",
                     stats->events_appended);
    metrics_counter (metrics, "stream_requests_ok_total", "Requests answered ok",
                     stats->requests_ok);
    metrics_counter (metrics, "stream_requests_conflict_total",
                     "Requests answered conflict", stats->requests_conflict);
    metrics_counter (metrics, "stream_requests_duplicate_total",
                     "Requests answered duplicate", stats->requests_duplicate);
    metrics_counter (metrics, "stream_requests_invalid_total",
                     "Requests answered invalid", stats->requests_invalid);
    metrics_counter (metrics, "stream_requests_unavailable_total",
                     "Requests answered unavailable (storage failed)",
                     stats->requests_unavailable);
    metrics_counter (metrics, "stream_bursts_total", "Drained bursts of requests",
                     stats->bursts);
    metrics_counter (metrics, "stream_commit_failures_total",
                     "Bursts whose commit failed", stats->commits_failed);
    metrics_counter (metrics, "stream_fsyncs_total", "fdatasync calls on the log", syncs);
    metrics_gauge (metrics, "stream_events_per_fsync", "Average events per fdatasync",
                   syncs ? (double)stats->events_appended / (double)syncs : 0.0);
    metrics_gauge (metrics, "stream_last_seq", "Last committed seq",
                   (double)log_file_committed_seq (log));
    metrics_gauge (metrics, "stream_log_bytes", "Committed bytes of the log",
                   (double)log_file_bytes (log));
    metrics_gauge (metrics, "stream_accounts", "Accounts with at least one event",
                   (double)ingest_account_count (self->ingest));
    metrics_counter (metrics, "stream_http_requests_total", "HTTP requests answered",
                     http_server_requests_total (self->http));
    size_t bytes = 0;
    const char *text = metrics_text (metrics, &bytes);
    http_respond (request, 200, METRICS_CONTENT_TYPE, text, bytes);
    metrics_destroy (&metrics);
}

//  A query argument as an integer in [min, max]; default_value when absent.
//  Returns -1 and adds an error for the field when it is malformed.
//  GET /events?from_seq=&limit= -> {"events":[...],"last_seq":N}; limit is
//  1..SERVER_EVENTS_LIMIT_MAX (like accounting's pages), and a page also
//  stops at REPLAY_BATCH_BYTES_MAX bytes: page on with from_seq.
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
    size_t size = bytes + 64;
    char *body = (char *)malloc (size);
    if (!body) {
        http_respond_problem (request, 503, "Out of memory", "try a smaller limit", NULL);
        return;
    }
    memcpy (body, "{\"events\":[", 11);
    size_t used = 11;
    for (const char *line = text; line < text + bytes;) {
        const char *end =
            (const char *)memchr (line, '\n', (size_t)(text + bytes - line));
        assert (end);
        if (line != text)
            body[used++] = ',';
        memcpy (body + used, line, (size_t)(end - line));
        used += (size_t)(end - line);
        line = end + 1;
    }
    used +=
        (size_t)snprintf (body + used, size - used, "],\"last_seq\":%lld}",
                          (long long)log_file_committed_seq (ingest_log (self->ingest)));
    http_respond (request, 200, "application/json", body, used);
    free (body);
}

static const http_route_t s_routes[] = {
    {"GET", "/health", s_health, 0},
    {"GET", "/metrics", s_metrics, 0},
    {"GET", "/events", s_events, 0},
    OPENAPI_ROUTE,
};

static zsock_t *s_bind (int type, const char *endpoint, const char *what)
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
    char path[SERVER_PATH_BYTES_MAX];
    char error[512];
    if (zsys_dir_create ("%s", self->config.data_dir)) {
        log_error ("cannot create data directory \"%s\": %s", self->config.data_dir,
                   strerror (errno));
        return -1;
    }
    snprintf (path, sizeof path, "%s/events.jsonl", self->config.data_dir);
    self->ingest = ingest_new (path, self->publish, self->config.fsync_always,
                               self->config.dedupe_window, error, sizeof error);
    if (!self->ingest) {
        log_error ("cannot open the log \"%s\": %s", path, error);
        return -1;
    }
    log_info ("log %s: %lld events, %llu bytes, %zu accounts", path,
              (long long)log_file_committed_seq (ingest_log (self->ingest)),
              (unsigned long long)log_file_bytes (ingest_log (self->ingest)),
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
    self->publish = s_bind (ZMQ_PUB, config->publish_endpoint, "publish");
    if (!self->publish || s_open_log (self))
        goto failed;
    self->pull = s_bind (ZMQ_PULL, config->ingest_endpoint, "ingest");
    self->router = s_bind (ZMQ_ROUTER, config->replay_endpoint, "replay");
    self->loop = zloop_new ();
    if (!self->pull || !self->router || !self->loop)
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
        zloop_destroy (&self->loop);
        replay_destroy (&self->replay);
        ingest_destroy (&self->ingest);
        zsock_destroy (&self->router);
        zsock_destroy (&self->pull);
        zsock_destroy (&self->publish);
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
    return rc == -1 && !zsys_interrupted ? -1 : 0;
}
