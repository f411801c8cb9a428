/*  expiry — the transaction service appends transfer_expired for every
    hold whose timeout_at has passed (see expiry.c).
*/
#ifndef EXPIRY_H_INCLUDED
#define EXPIRY_H_INCLUDED

#include "request.h"

//  Holds expired by one instance at once (requests in flight); the rest
//  wait in the write model's heap for the next round.
#define EXPIRY_INFLIGHT_MAX 64

//  Starts the timer (every config.hold_expiry_ms; none when 0). Returns
//  0 or -1.
int expiry_start (api_t *self);
void expiry_stop (api_t *self);

//  An expiry request of pending_id ended: appended (or found appended),
//  or not, and then the hold is due again at once (if still pending).
void expiry_ended (api_t *self, const char *pending_id, bool appended);

#endif
