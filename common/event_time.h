/*  event_time — the RFC 3339 timestamps of events (event_time.c): what
    every stored line's ts is, and what the services print and read.
*/
#ifndef EVENT_TIME_H_INCLUDED
#define EVENT_TIME_H_INCLUDED

#include <stdint.h>

#define EVENT_TS_BYTES 24 // "2026-11-22T07:28:47.123Z"
//  0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z
#define EVENT_TS_MIN_MS (-62167219200000LL)
#define EVENT_TS_MAX_MS 253402300799999LL

//  RFC 3339 UTC with milliseconds. event_ts_format writes exactly
//  EVENT_TS_BYTES characters plus a NUL (buffer of EVENT_TS_BYTES + 1).
//  event_ts_parse accepts any RFC 3339 date-time (offsets, 0-9 fraction
//  digits, fractions beyond ms truncated) and returns 0 or -1.
void event_ts_format (int64_t ts_ms, char *buffer);
int event_ts_parse (const char *text, int64_t *ts_ms);

#endif
