/*  event_internal — what the units of the event codec share with each
    other and with their tests; no service includes it (they use event.h).

    event.c       the shared checks (ids, names, UTF-8), the upcast rule
    event_time.c  RFC 3339: the calendar, the formatter and both readers
    event_write.c the canonical writer
    event_parse.c the reference parser (cJSON and a raw JSON walker) and
                  the public parse entry points
    event_fast.c  the fast path: exact canonical bytes only
*/
#ifndef EVENT_INTERNAL_H_INCLUDED
#define EVENT_INTERNAL_H_INCLUDED

#include "event.h"

#include <string.h>

//  Expect versions count events per account, bounded by seq.
#define EVENT_VERSION_MAX EVENT_SEQ_MAX

//  Bytes allowed in ids and accounts after the first one (1 or 0);
//  filled by event_id_chars_init, which every parse entry calls.
extern unsigned char event_id_chars[256];
void event_id_chars_init (void);

static inline bool event_is_alnum (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

//  Writes a one-line reason; control bytes from the input become '?'.
//  Returns -1.
int event_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  True if account is one the event names (from or to, or account).
bool event_touches (const event_t *self, const char *account);

//  The one place that knows old schema versions, after the body is read:
//  a v1 event gets the v2 model's defaults (currency XXX) and keeps v = 1,
//  which only the formatter looks at, so it is written back as the same
//  v1 bytes. Returns -1 for what no version had (account_* in v1).
int event_upcast (event_t *self, char *error, size_t error_size);

//  Eight bytes at a time (SWAR): whether a word holds a byte that a JSON
//  string cannot carry as it is (a quote, a backslash, a control byte).
//  Exact as a yes/no; which byte it is, is found byte by byte after.
#define SWAR_ONES  0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL

static inline bool event_word_has_special (uint64_t word)
{
    uint64_t quotes = word ^ (SWAR_ONES * '"');
    uint64_t backslashes = word ^ (SWAR_ONES * '\\');
    uint64_t special = ((word - SWAR_ONES * 0x20) & ~word) |
                       ((quotes - SWAR_ONES) & ~quotes) |
                       ((backslashes - SWAR_ONES) & ~backslashes);
    return (special & SWAR_HIGHS) != 0;
}

static inline uint64_t event_word (const char *text)
{
    uint64_t word;
    memcpy (&word, text, sizeof word);
    return word;
}

//  event_time.c: the canonical 24-byte ts only (false for anything else),
//  read through a per-thread cache of the last minute seen.
bool event_ts_parse_canonical (const char *t, int64_t *ts_ms);
//  Empties this thread's minute cache.
void event_ts_cache_reset (void);

//  event_write.c: text as a JSON string with minimal escapes, NUL-terminated.
//  Returns the bytes written, or 0 if buffer_size is too small.
size_t event_format_string (const char *text, char *buffer, size_t buffer_size);
//  The common fields as a stored line starts: {"seq":N,"id":..,"type":..
//  (type_name as read),"v":V,"ts":"..". Returns the bytes, or 0 if
//  buffer_size is too small.
size_t event_format_head (const event_t *self, char *buffer, size_t buffer_size);

//  event_parse.c: the reference (cJSON) parser on an event as event_init
//  left it; stored says which of the two forms json must be.
int event_parse_reference (const char *json, size_t bytes, bool stored, event_t *self,
                           char *error, size_t error_size);

//  event_fast.c: true and self filled if the bytes are exactly canonical
//  and valid; false (self in any state) for anything the reference parser
//  must judge. They write into self as the caller left it, and need
//  event_id_chars_init to have run.
bool event_fast_parse_stored (const char *line, size_t bytes, event_t *self);
bool event_fast_parse_proposed (const char *json, size_t bytes, event_t *self,
                                event_splice_t *splice);
//  One canonically escaped meta value from *p (after its opening quote)
//  and its closing quote into out (EVENT_META_VALUE_BYTES_MAX + 1 bytes);
//  moves *p past the quote.
bool event_fast_string (const char **p, const char *end, char *out);

#endif
