/*  status — GET /health and GET /metrics of the transaction service.
 */
#include "status.h"

#include "metrics.h"
#include "reply.h"

//  Why writes would be refused now, or NULL. The ingest socket connects
//  with ZMQ_IMMEDIATE: it is writable only with a live connection to the
//  stream (and room below its high-water mark), which a stopped stream
//  takes away at once, before the heartbeats from it are missed.
const char *status_not_writable (api_t *self, const char **status)
{
    *status = "unavailable";
    if (!subscriber_caught_up (self->subscriber)) {
        *status = "starting";
        return "starting: the write model is catching up";
    }
    if (!subscriber_connected (self->subscriber))
        return "the stream is unreachable";
    //  Asked once per turn of the loop (api.c ends it): ZMQ_EVENTS costs a
    //  poll and a getpid system call, and the turn's requests go out
    //  together anyway.
    if (!self->ingest_checked) {
        self->ingest_writable = (zsock_events (self->ingest) & ZMQ_POLLOUT) != 0;
        self->ingest_checked = true;
    }
    if (!self->ingest_writable)
        return "the stream is unreachable";
    *status = "ok";
    return NULL;
}

void status_handle_health (http_request_t *http, void *arg)
{
    api_t *self = (api_t *)arg;
    const char *diverged = subscriber_diverged (self->subscriber);
    const char *status;
    const char *reason = status_not_writable (self, &status);
    if (diverged) {
        status = "unhealthy";
        reason = "diverged";
    }
    bool ready = !reason;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "status", status);
    if (reason)
        cJSON_AddStringToObject (json, "reason", reason);
    if (diverged)
        cJSON_AddStringToObject (json, "detail", diverged);
    cJSON_AddStringToObject (json, "upstream",
                             subscriber_connected (self->subscriber) ? "connected"
                                                                     : "disconnected");
    reply_add_int (json, "applied_seq", write_model_applied_seq (self->model));
    reply_add_int (json, "head_seq", subscriber_head_seq (self->subscriber));
    cJSON_AddNumberToObject (json, "inflight", (double)zlistx_size (self->requests));
    // 503 while writes would be: a load balancer sends them elsewhere.
    http_respond_json (http, ready ? 200 : 503, json);
    cJSON_Delete (json);
}

void status_handle_metrics (http_request_t *http, void *arg)
{
    api_t *self = (api_t *)arg;
    metrics_t *metrics = metrics_new ();
    assert (metrics);
    const sender_stats_t *sent = sender_stats (self->sender);
    const metrics_sample_t samples[] = {
        {"transaction_created_total", "Write requests answered 201",
         .count = self->created},
        {"transaction_replayed_total",
         "Requests answered from an earlier result (Idempotent-Replayed)",
         .count = self->replayed},
        {"transaction_rejected_total", "Write requests answered 4xx or 500",
         .count = self->rejected},
        {"transaction_unavailable_total", "Write requests answered 503",
         .count = self->unavailable},
        {"transaction_conflicts_total", "Conflict results from the stream",
         .count = self->conflicts},
        {"transaction_retries_total", "Appends retried after a conflict",
         .count = self->retried},
        {"transaction_timeouts_total",
         "Requests given up on (ack timeout or stream unreachable)",
         .count = self->timeouts},
        {"transaction_http_requests_total", "HTTP requests answered",
         .count = http_server_requests_total (self->http)},
        {"transaction_packed_appends_total",
         "Packed APPENDs sent (the requests of one loop turn)", .count = sent->packs},
        {"transaction_packed_requests_total", "Requests sent in packed APPENDs",
         .count = sent->packed},
        {"transaction_single_appends_total", "Requests sent alone in the one-request form",
         .count = sent->single},
        {"transaction_inflight", "Write requests waiting for the stream", .gauge = true,
         .value = (double)zlistx_size (self->requests)},
        {"transaction_applied_seq", "Last seq in the write model", .gauge = true,
         .value = (double)write_model_applied_seq (self->model)},
        {"transaction_accounts", "Accounts in the write model", .gauge = true,
         .value = (double)write_model_account_count (self->model)},
        {"transaction_idempotency_keys", "Answers remembered by key", .gauge = true,
         .value = (double)idempotency_size (self->idempotency)},
        {"transaction_holds_pending",
         "Holds (pending transfers) not resolved yet, as folded here", .gauge = true,
         .value = (double)write_model_pending_count (self->model)},
        {"transaction_holds_expired_total",
         "transfer_expired events this instance appended", .count = self->expired},
        {"transaction_diverged", "1 once the stream's log and the write model disagree",
         .gauge = true, .value = subscriber_diverged (self->subscriber) ? 1 : 0},
        {"transaction_upstream_connected", "1 while the stream is heard", .gauge = true,
         .value = subscriber_connected (self->subscriber) ? 1 : 0},
    };
    metrics_samples (metrics, samples, sizeof samples / sizeof samples[0]);
    http_server_metrics (self->http, metrics);
    size_t bytes = 0;
    const char *text = metrics_text (metrics, &bytes);
    http_respond (http, 200, METRICS_CONTENT_TYPE, text, bytes);
    metrics_destroy (&metrics);
}
