/*  event_check — sample lines and the two parsers side by side, for the
    unit tests of the event codec (test_event_*.c).
*/
#ifndef EVENT_CHECK_H_INCLUDED
#define EVENT_CHECK_H_INCLUDED

#include "check.h"
#include "event_internal.h"

#include <stdio.h>
#include <string.h>

#define streq(a, b) (strcmp ((a), (b)) == 0)

__attribute__ ((unused)) static const char *s_deposit =
    "{\"seq\":17,\"id\":\"0b7f3c1e-9d2a-4f6b-8c1d-2e3f4a5b6c7d\","
    "\"type\":\"deposited\",\"v\":1,\"ts\":"
    "\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
    "\"amount\":1250}";
__attribute__ ((unused)) static const char *s_transfer =
    "{\"seq\":19,\"id\":\"d4\",\"type\":\"transferred\",\"v\":1,"
    "\"ts\":\"2026-11-22T07:28:48.000Z\",\"from\":\"alice\","
    "\"to\":\"bob\",\"amount\":300,\"meta\":{\"correlation_id\":"
    "\"req-42\",\"reference\":\"rent \\\"May\\\"\\n\\u0001 "
    "caf\xc3\xa9\"}}";

static inline int s_stored (const char *line, event_t *event, char *error)
{
    return event_parse_stored (line, strlen (line), event, error, 256);
}

static inline int s_proposed (const char *json, event_t *event, char *error)
{
    return event_parse_proposed (json, strlen (json), event, error, 256);
}

//  Reference parser only, as event_parse_stored would call it.
static inline int s_reference_stored (const char *line, size_t bytes, event_t *event,
                                      char *error)
{
    event_init (event);
    return event_parse_reference (line, bytes, true, event, error, 256);
}

//  The fast paths write into an event as the caller left it (no event_init):
//  garbage first, so they are seen not to depend on a cleared one.
static inline bool s_fast (const char *line, size_t bytes, event_t *event)
{
    memset (event, 0xa5, sizeof *event);
    event_id_chars_init (); // what every parse entry does first
    return event_fast_parse_stored (line, bytes, event);
}

static inline int s_reference_proposed (const char *json, size_t bytes, event_t *event,
                                        char *error)
{
    event_init (event);
    return event_parse_reference (json, bytes, false, event, error, 256);
}

static inline bool s_fast_json (const char *json, size_t bytes, event_t *event)
{
    memset (event, 0xa5, sizeof *event);
    event_id_chars_init ();
    return event_fast_parse_proposed (json, bytes, event, NULL);
}

static inline bool s_same (const event_t *a, const event_t *b)
{
    const char *field = event_difference (a, b);
    if (field)
        fprintf (stderr, "    events differ in %s\n", field);
    return field == NULL;
}

//  The stored line spliced from a proposed text is the formatted one, byte
//  for byte (also when the text was not canonical and splice says so).
static inline bool s_splice_equals_format (const char *json, size_t bytes, int64_t seq,
                                           int64_t ts_ms)
{
    event_t event;
    event_splice_t splice;
    char error[256] = "";
    if (event_parse_proposed_splice (json, bytes, &event, &splice, error, sizeof error))
        return false;
    event.seq = seq;
    event.ts_ms = ts_ms;
    event.expect_count = 0;
    char formatted[EVENT_LINE_BYTES_MAX], spliced[EVENT_LINE_BYTES_MAX];
    size_t formatted_bytes = event_format_stored (&event, formatted, sizeof formatted);
    size_t spliced_bytes =
        event_format_stored_splice (&event, json, &splice, spliced, sizeof spliced);
    if (spliced_bytes != formatted_bytes ||
        memcmp (spliced, formatted, spliced_bytes + 1))
        fprintf (stderr, "    %.*s\n    %s\n    %s\n", (int)bytes, json, formatted,
                 spliced);
    return formatted_bytes > 0 && spliced_bytes == formatted_bytes &&
           memcmp (spliced, formatted, spliced_bytes + 1) == 0;
}

//  Where the fast path accepted the text, splice points into it.
static inline bool s_spliced (const char *json, size_t bytes)
{
    event_t event;
    event_splice_t splice;
    return event_parse_proposed_splice (json, bytes, &event, &splice, NULL, 0) == 0 &&
           splice.body > 0 && splice.body <= splice.body_end && splice.body_end < bytes;
}

#endif
