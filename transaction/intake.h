/*  intake — what a write request goes through before it is planned.
 */
#ifndef INTAKE_H_INCLUDED
#define INTAKE_H_INCLUDED

#include "request.h"

//  Parses and validates the body; on failure answers and returns -1.
int intake_parse (api_t *self, http_request_t *http, route_t route, parsed_t *parsed);

//  The same key again: the same answer (or the same wait), or 422.
//  Returns true when http was answered or attached.
bool intake_known_key (api_t *self, http_request_t *http, const char *key,
                       const char *fingerprint);

//  503 while the write model and the stream's log diverged; true when answered.
bool intake_refuse_diverged (api_t *self, http_request_t *http);

//  403 for commands on accounts outside the principal's; true when answered.
//  A post or void is judged by its hold's accounts.
bool intake_refuse_accounts (api_t *self, http_request_t *http, route_t route,
                             const parsed_t *parsed);

//  POST /accounts of an account open with the same settings: 201 replayed;
//  true when answered.
bool intake_open_replayed (api_t *self, http_request_t *http, const command_t *command);

#endif
