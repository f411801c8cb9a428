/*  plan — a request's commands checked against the write model, their
    debits held there, and the APPEND that carries them (see plan.c).
*/
#ifndef PLAN_H_INCLUDED
#define PLAN_H_INCLUDED

#include "request.h"

//  Validates every command; on success the reservations enter the write model.
//  On failure answers the request (422) and frees it; returns -1.
int plan_request (request_t *request);

//  Gives the request's reservations back to the write model and forgets them.
void plan_release (request_t *request);

//  Sends a new attempt. Returns 0, or -1 when the stream cannot take it.
int plan_send (request_t *request);

#endif
