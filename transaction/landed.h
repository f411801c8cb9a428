/*  landed — a request whose events may be stored already.

    A key this instance holds no answer for: the stream's dedupe window
    says whether its events landed (a retry of a 503'd request that landed
    later, of one answered before a restart, or forgotten since), before
    it is validated again: its own debit may be in the balances already,
    and a 422 would read "not applied". Keys are one namespace across
    routes: a single command's event id is the key, a batch's first is
    "<key>:0", so both are asked about (with the first event's own id).
*/
#ifndef LANDED_H_INCLUDED
#define LANDED_H_INCLUDED

#include "request.h"

//  Answers the request from the write model when its events are folded
//  there already; returns true when answered.
bool landed_answer (request_t *request);

//  True if the write model has perhaps folded one of the request's ids
//  (then landed_lookup_start asks the stream).
bool landed_maybe_stored (request_t *request);

//  Asks the stream about the request's ids and suspends it until the
//  answers came, or answers it 503.
void landed_lookup_start (request_t *request);

//  lookup's callback (arg: the api).
void landed_on_lookup (void *arg, const char *id, int64_t seq, const char *line,
                       size_t line_bytes);

#endif
