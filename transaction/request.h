/*  request — a write request of the transaction service, from the moment
    it is planned until every waiter is answered.

    Every write request becomes a request_t that lives until it is
    answered. It reserves its planned debits in the write model (so requests
    behind it cannot spend the same money), is indexed by the id of its
    current APPEND attempt (to match RESULTs) and by its idempotency key
    (so the same key arriving again waits for it), and sits in a list in
    arrival order, which is also deadline order (one ack timeout for all).

    This header is private to transaction/: it also defines struct api,
    whose indexes and counters every module of the service shares (api.h
    keeps it opaque for main.c and the tests).
*/
#ifndef REQUEST_H_INCLUDED
#define REQUEST_H_INCLUDED

#include <cjson/cJSON.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "commands.h"
#include "curve.h"
#include "event.h"
#include "http.h"
#include "idempotency.h"
#include "lookup.h"
#include "subscriber.h"
#include "write_model.h"

#define API_ATTEMPT_BYTES_MAX   64 // "<instance uuid>-<counter>"
#define API_RESERVATIONS_INLINE 2  // a single command touches at most two accounts
#define API_UUID_BYTES          16
//  Ids a keyed request asks the stream about: its first event's, the key
//  itself and "<key>:0" (the key's first id on the other routes).
#define API_LOOKUP_IDS_MAX 3

typedef enum {
    ROUTE_TRANSACTION,
    ROUTE_TRANSFER,
    ROUTE_BATCH,
    ROUTE_OPEN,   // POST /accounts
    ROUTE_UPDATE, // PATCH /accounts/{id}
    ROUTE_POST,   // POST /transfers/{id}/post
    ROUTE_VOID,   // POST /transfers/{id}/void
    ROUTE_EXPIRE, // no client: the expiry of a hold whose timeout passed (expiry.c)
} route_t;

typedef enum {
    STATE_LOOKING,    // keyed, not held here: asking the stream whether it landed
    STATE_SENT,       // APPEND sent, waiting for its RESULT
    STATE_APPLYING,   // ok/duplicate: waiting for the write model to reach last_seq
    STATE_CONFLICTED, // conflict: waiting for the write model to reach versions
} state_t;

//  What a request plans for one account: the debit and events it keeps
//  from other requests (in the write model, write_model_hold) until it
//  ends. Not the holds of two-phase transfers (pending transfers).
typedef struct {
    char account[EVENT_ACCOUNT_BYTES_MAX + 1];
    write_model_account_t *entry; // in the write model: NULL until reserved if new
    int64_t balance;   // confirmed balance plus this request's earlier commands
    int64_t available; // the same minus reservations of other requests
    int64_t debit;     // reserved by this request
    int64_t events;    // reserved by this request
    int64_t expect;    // confirmed version the request was validated against
    bool expect_sent;  // the attempt being built already carries expect
    //  Schema 2, as the earlier commands of the request leave them.
    bool known; // confirmed, or opened (explicitly or by money) by an earlier command
    char currency[EVENT_CURRENCY_BYTES_MAX + 1]; // "" while not known
    int64_t limit;          // effective: >= 0 or EVENT_LIMIT_UNLIMITED
    uint64_t metadata_hash; // 0: none
} reservation_t;

//  A pending transfer (two-phase hold) as the request's earlier commands
//  leave it: made by one of them, or the write model's once a command
//  resolves it. So a batch may make a hold and post it, and cannot
//  resolve one twice.
typedef struct {
    char id[EVENT_ID_BYTES_MAX + 1];
    char from[EVENT_ACCOUNT_BYTES_MAX + 1];
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];
    char currency[EVENT_CURRENCY_BYTES_MAX + 1];
    int64_t amount;        // reserved
    int64_t timeout_at_ms; // 0: none
    write_model_pending_state_t state;
    int64_t resolved_amount; // posted: what moves; voided, expired: the amount
} planned_hold_t;

typedef struct request request_t;

//  Requests waiting for the write model: applying ones by last_seq, so a
//  new applied_seq finishes a prefix instead of scanning every request.
typedef struct {
    request_t *head, *tail;
} waitlist_t;

struct request {
    api_t *api;
    void *handle; // in api->requests
    route_t route;
    command_t *commands; // ids are the final event ids
    size_t count;
    bool keyed; // the client gave the key
    char key[EVENT_ID_BYTES_MAX + 1];
    char fingerprint[COMMANDS_FINGERPRINT_BYTES + 1];
    char attempt[API_ATTEMPT_BYTES_MAX]; // request_id of the APPEND in flight
    char request_id[HTTP_REQUEST_ID_BYTES_MAX + 1];
    char correlation_id[EVENT_META_VALUE_BYTES_MAX + 1];
    char principal[EVENT_PRINCIPAL_BYTES_MAX + 1]; // meta.principal; "" without tokens
    http_request_t *originator;                    // NULL once answered
    zlistx_t *followers; // http_request_t *: the same key meanwhile; NULL: none yet
    //  Reservations per account, in first-touch order. Most requests touch one
    //  or two accounts: those need no allocation and no index.
    reservation_t reservations_inline[API_RESERVATIONS_INLINE];
    reservation_t *reservations; // reservations_inline or a malloc
    size_t reservation_count, reservation_capacity;
    //  Beyond API_RESERVATIONS_SCAN_MAX reservations: open addressing, reservation index
    //  + 1 per slot (0: empty), at most half full. Indexes survive reservations moving.
    uint32_t *reservation_slots;
    size_t reservation_slot_count; // a power of two, or 0
    //  Holds made or resolved by the request's commands (planning).
    planned_hold_t *planned_holds;
    size_t planned_hold_count, planned_hold_capacity;
    int64_t deadline_ms;
    int retries;
    state_t state;
    bool duplicate;
    int64_t first_seq, last_seq;
    cJSON *versions; // conflict: versions to reach first
    //  STATE_LOOKING: the ids asked about (in by_lookup while out), and
    //  what the answers said so far.
    char lookups[API_LOOKUP_IDS_MAX][EVENT_ID_BYTES_MAX + 1];
    size_t lookup_count, lookups_out;
    bool lookup_failed;    // some answer was "unknown"
    bool found_other;      // the key's events of another request are stored
    bool found_other_body; // the first event's id is stored with another command
    int64_t found_seq;     // the seq of the first event's id, or 0
    waitlist_t *waitlist;  // the one it is on (by state), or NULL
    request_t *wait_prev, *wait_next;
};

struct api {
    api_config_t config;
    zloop_t *loop;
    zsock_t *ingest;
    curve_t *curve; // own keypair and the stream's key; NULL: plain
    subscriber_t *subscriber;
    http_server_t *http;
    write_model_t *model;
    idempotency_t *idempotency;
    zlistx_t *requests;   // request_t, arrival (= deadline) order; owns them
    zhashx_t *by_attempt; // attempt id -> request_t
    zhashx_t *by_key;     // idempotency key -> request_t
    zhashx_t *by_lookup;  // id asked about -> request_t (STATE_LOOKING)
    lookup_t *lookup;
    waitlist_t applying;   // STATE_APPLYING, ascending last_seq
    waitlist_t conflicted; // STATE_CONFLICTED, in conflict order
    size_t waiters;        // suspended HTTP requests over all requests
    char instance[33];
    uint64_t attempts;
    uint8_t uuid_base[API_UUID_BYTES]; // random per process, see s_uuid_generate
    uint64_t uuids;
    int timer_id;
    uint64_t created, replayed, rejected, conflicts, retried, timeouts, unavailable;
    //  Holds: pending ids this instance is expiring (request in flight),
    //  its timer, and the expiries it appended.
    zhashx_t *expiring;
    int expiry_timer_id;
    uint64_t expired;
};

//  A request's commands as parsed from its body, before it is a request_t.
typedef struct {
    command_t *commands;
    size_t count;
    char key[EVENT_ID_BYTES_MAX + 1]; // "" when none
} parsed_t;

//  snprintf ("%s") without the format machinery: this runs per event.
//  Truncates to size - 1 bytes like it.
static inline void request_copy (char *target, size_t size, const char *source)
{
    size_t bytes = strnlen (source, size - 1);
    memcpy (target, source, bytes);
    target[bytes] = '\0';
}

//  A new request for http (suspended by the caller), owning parsed's
//  commands, in api's list and (keyed) its key index. http NULL: one the
//  service makes itself (an expiry), which answers no one.
request_t *request_new (api_t *self, http_request_t *http, route_t route,
                        parsed_t *parsed, const char *fingerprint);

//  Answers every waiter with body (the originator without the replay
//  header unless replayed), releases reservations and frees the request. Takes
//  ownership of body: the last answer gets it, the others a copy.
void request_end (request_t *request, unsigned status, char *body, bool replayed);
//  request_end with a problem+json; takes ownership of errors and extra.
void request_fail (request_t *request, unsigned status, const char *detail, cJSON *errors,
                   cJSON *extra);

//  Answers with body, which is the caller's (copied) unless owned: then
//  it is freed once sent.
void request_respond_bytes (api_t *self, http_request_t *http, unsigned status,
                            char *body, size_t bytes, bool replayed, bool owned);
void request_respond (api_t *self, http_request_t *http, unsigned status,
                      const char *body, bool replayed);
//  Answers an HTTP request that has no request_t (yet).
void request_respond_problem (api_t *self, http_request_t *http, unsigned status,
                              const char *detail, cJSON *errors);

//  Takes request off the waitlist it is on, if any.
void request_wait_remove (request_t *request);
//  Finishes or retries the request once the write model is far enough,
//  else puts it on the waitlist of its state.
void request_progress (request_t *request);
//  Answers an applied request (first_seq..last_seq set) from its stored events.
void request_finish_applied (request_t *request);

//  The subscriber's RESULT and applied_seq callbacks (arg: the api).
void request_on_result (void *arg, const char *attempt, const char *result_json);
void request_on_applied (void *arg, int64_t applied_seq);
//  The loop's timer: ends requests past their deadline, or all of them
//  while the stream is unreachable or diverged.
int request_on_tick (zloop_t *loop, int timer_id, void *arg);

#endif
