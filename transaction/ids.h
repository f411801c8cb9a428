/*  ids — a request's idempotency key (header or body) and its event ids.

    Event ids: a single command's is the key (or a new UUID); a batch
    command's is its own id, else "<key>:<index>", so a retried batch is
    deduplicated by the stream. Ids must be unique within a request.
*/
#ifndef IDS_H_INCLUDED
#define IDS_H_INCLUDED

#include "request.h"

//  The key from the Idempotency-Key header or body_id (which must agree)
//  into key (EVENT_ID_BYTES_MAX + 1 bytes); -1 with *errors_p set.
int ids_parse_key (http_request_t *http, const char *body_id, char *key,
                   cJSON **errors_p);

//  "<base>:<index>" into id; -1 when it does not fit.
int ids_derive (const char *base, size_t index, char *id);

//  Gives every command of parsed its event id; -1 with *errors_p set.
int ids_assign (api_t *self, route_t route, parsed_t *parsed, cJSON **errors_p);

#endif
