/*  api — the accounting HTTP API (reads only): routes and handlers.

    GET /accounts/{id}           balance, version, last_seq, applied_seq,
                                 currency, overdraft_limit, metadata,
                                 pending_debits, pending_credits, available;
                                 ?at_seq=N | ?at=RFC3339 (time travel),
                                 ?min_seq=N[&wait_ms=M] (read-your-writes)
    GET /accounts                ?after=ID&limit=N, sorted by id;
                                 ?currency=C, ?metadata.KEY=VALUE filter
    GET /accounts/{id}/events    ?after_seq=N&limit=N, the stored lines
    GET /transfers/{transfer}    a hold: state, amounts, the seqs that
                                 changed it; ?min_seq=N[&wait_ms=M]
    GET /events                  Accept: text/event-stream: the live feed
                                 (feed.h); otherwise a JSON page of the
                                 replica. ?from_seq=N&account=ID[&limit=N]
    GET /                        the dashboard page (dashboard.h)
    GET /stats, GET /health, GET /metrics

    The handlers read the service's state (service_state_t, service.h),
    which the service owns and fills before the loop starts; nothing here
    changes it.
*/
#ifndef API_H_INCLUDED
#define API_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "accounts.h"
#include "feed.h"
#include "http.h"
#include "log_file.h"
#include "service.h"
#include "subscriber.h"
#include "waiters.h"

#define API_LIST_LIMIT_MAX       1000 // accounts per page: bounds one answer to ~100 KiB
#define API_LIST_LIMIT_DEFAULT   100
#define API_EVENTS_LIMIT_MAX     1000 // events per page: each is one replica read
#define API_EVENTS_LIMIT_DEFAULT 100
#define API_WAIT_MS_DEFAULT      5000 // min_seq without wait_ms
#define API_RETRY_AFTER_S        "1"  // Retry-After on 503

//  The handlers' view of the service's state (service.h), which the
//  service owns and writes; nothing here changes it.
typedef service_state_t api_context_t;

//  The route table (static storage).
const http_route_t *api_routes (size_t *count);

//  The waiters' callback: answers a parked GET /accounts/{id}.
void api_on_waiter (void *arg, http_request_t *request, waiter_reason_t reason);

#endif
