/*  event — the ledger's event model and its one canonical JSON form.

    An event is either *proposed* (sent by transaction to stream: no seq, no
    ts, may carry `expect`) or *stored* (written by stream: seq and ts set,
    no `expect`). Both are parsed with full validation here, so no service
    trusts bytes from the network or the disk. The canonical form is the
    only form the stream ever writes; the same event is the same bytes in
    the log, on the wire and in every replica.

    Canonical stored line (no spaces, fixed key order, no trailing \n):
      {"seq":N,"id":"..","type":"..","v":V,"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ",
       then "account":"..","amount":N             (deposited, withdrawn)
       or   "from":"..","to":"..","amount":N      (transferred)
            and in v2 ,"currency":"EUR"           (after amount)
       or   "account":"..","currency":"..","overdraft_limit":N|null
            [,"metadata":{..}]                    (account_opened, v2)
       or   "account":".."[,"overdraft_limit":N|null][,"metadata":{..}]
                                                  (account_updated, v2;
                                                   at least one of them)
       then optionally "meta":{"correlation_id":"..","request_id":"..",
                               "reference":"..","principal":".."}
                               (keys present only if set, in this order)}
    metadata's keys are sorted bytewise, so one map has one form.
    Canonical proposed line: same without seq and ts, with an optional
    trailing "expect":{"account":version,...} in the order given.
    The holds of schema 2 follow the same rule:
       "from","to","amount","currency"[,"timeout_at":".."] (transfer_pending)
       "pending_id","from","to","amount","currency"
                                  (transfer_posted, _voided, _expired)

    Upcast: a v1 event reads as currency EVENT_CURRENCY_V1 ("XXX") and
    keeps v = 1, so it formats back to its own v1 bytes (the stream
    stores what a v1 writer proposed, as given; canonical checks of v1
    lines hold). Readers look at currency, never at v.

    Strings are escaped minimally: \" \\ and control characters (\n \r \t
    \b \f, others as \u00XX); everything else is copied as UTF-8, which must
    be valid.

    Unknown types (or a schema version above EVENT_SCHEMA_VERSION) in a
    stored event parse successfully as EVENT_TYPE_UNKNOWN with only the
    common fields validated, so readers can skip and count them; such a
    line is canonical when it is JSON's minimal form (cJSON's unformatted
    print of it gives its bytes back) and its common fields are canonical. Older
    schema versions are upcast in event_parse_stored, the one place that
    knows them.
*/
#ifndef EVENT_H_INCLUDED
#define EVENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_time.h"

#define EVENT_SCHEMA_VERSION           2
#define EVENT_CURRENCY_BYTES_MAX       12 // ^[A-Z][A-Z0-9]{2,11}$
#define EVENT_CURRENCY_V1              "XXX" // ISO 4217 "no currency": what v1 events read as
#define EVENT_LIMIT_UNLIMITED          (-1) // overdraft_limit null: may go negative without end
#define EVENT_METADATA_KEYS_MAX        16
#define EVENT_METADATA_KEY_BYTES_MAX   32  // ^[a-z][a-z0-9_]{0,31}$
#define EVENT_METADATA_VALUE_BYTES_MAX 256 // decoded UTF-8, may be empty
// metadata as canonical JSON: 16 keys of 32 bytes and values of 256 plain
// bytes fit (~4.7 KiB); only heavily escaped values could go beyond.
#define EVENT_METADATA_BYTES_MAX   8192
#define EVENT_ACCOUNT_BYTES_MAX    64  // ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$
#define EVENT_ID_BYTES_MAX         64  // same pattern as accounts; UUIDs are 36
#define EVENT_TYPE_BYTES_MAX       32  // long enough for any sane past-tense name
#define EVENT_META_VALUE_BYTES_MAX 256 // per meta value (DESIGN: reference <= 256 bytes)
#define EVENT_PRINCIPAL_BYTES_MAX  64  // meta.principal: ^[a-z][a-z0-9_.-]{0,63}$
#define EVENT_AMOUNT_MAX           1000000000000000LL // 10^15 minor units
#define EVENT_EXPECT_MAX           2 // an event touches at most two accounts
// Events in one APPEND request (one atomic batch): the stream keeps a
// request's events in memory while it decides (~1.3 KiB each, ~5 MiB).
#define EVENT_REQUEST_EVENTS_MAX 4096
// Upper bound of a canonical line: metadata and three escaped meta values
// (6 bytes per byte at worst as \u00XX) dominate; keeps every line in one
// stack buffer.
#define EVENT_LINE_BYTES_MAX 16384
#define EVENT_SEQ_MAX        9007199254740991LL // 2^53 - 1: exact in a JSON reader's double

typedef enum {
    EVENT_TYPE_UNKNOWN = 0,
    EVENT_DEPOSITED,
    EVENT_WITHDRAWN,
    EVENT_TRANSFERRED,
    EVENT_ACCOUNT_OPENED,   // v2
    EVENT_ACCOUNT_UPDATED,  // v2
    EVENT_TRANSFER_PENDING, // v2: reserves amount of from
    EVENT_TRANSFER_POSTED,  // v2: moves amount (<= the hold's) of pending_id
    EVENT_TRANSFER_VOIDED,  // v2: releases pending_id
    EVENT_TRANSFER_EXPIRED, // v2: releases pending_id after its timeout_at
} event_type_t;

typedef struct {
    char account[EVENT_ACCOUNT_BYTES_MAX + 1];
    int64_t version; // >= 0; 0 means "never seen"
} event_expect_t;

typedef struct {
    int64_t seq;   // >= 1 when stored, 0 when proposed
    int64_t ts_ms; // ms since the Unix epoch; 0 when proposed
    event_type_t type;
    int v;
    char id[EVENT_ID_BYTES_MAX + 1];
    char type_name[EVENT_TYPE_BYTES_MAX + 1];  // as read, so unknown types can be counted
    char account[EVENT_ACCOUNT_BYTES_MAX + 1]; // deposited, withdrawn
    char from[EVENT_ACCOUNT_BYTES_MAX + 1];    // transferred
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];      // transferred; never equal to from
    //  Holds: the transfer_pending a resolution resolves (its id), and a
    //  transfer_pending's timeout_at (ms since the epoch; 0: none).
    char pending_id[EVENT_ID_BYTES_MAX + 1];
    int64_t timeout_at_ms;
    int64_t amount;                            // 1 .. EVENT_AMOUNT_MAX
    char currency[EVENT_CURRENCY_BYTES_MAX + 1]; // money events and account_opened
    //  account_opened always has a limit; account_updated when has_limit.
    //  >= 0, or EVENT_LIMIT_UNLIMITED.
    bool has_limit;
    int64_t overdraft_limit;
    // meta; "" when absent
    char correlation_id[EVENT_META_VALUE_BYTES_MAX + 1];
    char request_id[EVENT_META_VALUE_BYTES_MAX + 1];
    char reference[EVENT_META_VALUE_BYTES_MAX + 1];
    char principal[EVENT_PRINCIPAL_BYTES_MAX + 1]; // who asked for it (bearer token)
    size_t expect_count;                           // proposed events only
    event_expect_t expect[EVENT_EXPECT_MAX];
    //  The metadata object in its canonical JSON form ("" when absent;
    //  account_opened and account_updated only). Last: a money event
    //  never touches the pages of its bytes beyond the first.
    size_t metadata_bytes;
    char metadata[EVENT_METADATA_BYTES_MAX + 1];
} event_t;

//  Sets every field to its empty value, v to EVENT_SCHEMA_VERSION and
//  currency to EVENT_CURRENCY_V1 (DESIGN's default for an implicit account).
void event_init (event_t *self);

//  True if the bytes match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$ (accounts and ids).
bool event_id_is_valid (const char *text, size_t bytes);

//  True if the bytes match ^[a-z][a-z0-9_.-]{0,63}$ (principal names).
bool event_principal_is_valid (const char *text, size_t bytes);

//  True if the bytes are strict UTF-8: no overlong forms, no surrogates,
//  nothing above U+10FFFF (what meta values must be; NUL bytes pass).
bool event_text_is_utf8 (const char *text, size_t bytes);

//  True if the bytes match ^[A-Z][A-Z0-9]{2,11}$.
bool event_currency_is_valid (const char *text, size_t bytes);

//  True if the bytes match ^[a-z][a-z0-9_]{0,31}$ (metadata keys).
bool event_metadata_key_is_valid (const char *text, size_t bytes);

//  The canonical metadata object for a cJSON object (string values only,
//  EVENT_METADATA_KEYS_MAX keys at most, keys valid, values valid UTF-8 of
//  at most EVENT_METADATA_VALUE_BYTES_MAX bytes) into out (at least
//  EVENT_METADATA_BYTES_MAX + 1 bytes): keys sorted, minimal escapes. An
//  empty object gives "{}". Returns the bytes written, or -1 with the rule
//  broken in error ("metadata.Key: ...").
int event_metadata_format (const void *cjson_object, char *out, char *error,
                           size_t error_size);

//  True for the types that move money (they carry amount and currency).
bool event_type_moves_money (event_type_t type);

//  True for the types that name from and to (transferred and the holds):
//  the accounts such an event touches.
bool event_type_has_parties (event_type_t type);

//  True for transfer_posted, transfer_voided and transfer_expired.
bool event_type_resolves_hold (event_type_t type);

//  Type name <-> enum; event_type_from_name returns EVENT_TYPE_UNKNOWN for
//  names it does not know. event_type_name returns "" for unknown.
event_type_t event_type_from_name (const char *name);
const char *event_type_name (event_type_t type);

//  Parse a proposed event (strict: unknown keys, seq or ts, missing fields,
//  wrong types, bad ranges, unknown types are all rejected). On error
//  returns -1 and writes a one-line reason into error ("amount: must be an
//  integer between 1 and 10^15").
int event_parse_proposed (const char *json, size_t bytes, event_t *self, char *error,
                          size_t error_size);

//  Where a canonical proposed text (event_format_proposed's bytes) splits
//  for its stored line: the body (the type's fields and meta) is
//  json[body, body_end). Both 0 when the text was not canonical.
typedef struct {
    size_t body;
    size_t body_end;
} event_splice_t;

//  event_parse_proposed, which also fills splice (if not NULL) for
//  event_format_stored_splice.
int event_parse_proposed_splice (const char *json, size_t bytes, event_t *self,
                                 event_splice_t *splice, char *error, size_t error_size);

//  Parse a stored event line (without its \n). Same validation plus seq >= 1
//  and a canonical ts. Returns 0 or -1 with a reason as above.
int event_parse_stored (const char *line, size_t bytes, event_t *self, char *error,
                        size_t error_size);

//  event_parse_stored, and the line must be exactly event_format_stored's
//  bytes for the event it holds: what a log line or a line from the stream
//  must be. Spacing, key order, escapes or a raw \n, \r or NUL anywhere
//  refuse it, and so does a type this version does not write (its
//  canonical form is unknown here: readers are upgraded before writers).
int event_parse_canonical (const char *line, size_t bytes, event_t *self, char *error,
                           size_t error_size);

#define EVENT_INT_BYTES_MAX 20 // "-9223372036854775808"

//  value in decimal into target (EVENT_INT_BYTES_MAX bytes at most, no
//  NUL); returns the bytes written. The services' one integer printer:
//  canonical lines, answers, ids with a counter.
size_t event_format_int (char *target, int64_t value);

//  Write the canonical stored form (seq and ts must be set; no \n). Returns
//  the length, or 0 if buffer_size is too small (buffer_size >=
//  EVENT_LINE_BYTES_MAX always suffices). The result is NUL-terminated.
size_t event_format_stored (const event_t *self, char *buffer, size_t buffer_size);

//  event_format_stored's bytes for an event parsed from json by
//  event_parse_proposed_splice (only seq, ts_ms and expect changed since),
//  copied from json where it was canonical instead of formatted.
size_t event_format_stored_splice (const event_t *self, const char *json,
                                   const event_splice_t *splice, char *buffer,
                                   size_t buffer_size);

//  Write the canonical proposed form (no seq or ts; expect if any).
size_t event_format_proposed (const event_t *self, char *buffer, size_t buffer_size);

//  The first field in which two events differ as their readers see them
//  (strings up to their NUL, expect up to expect_count), or NULL when they
//  are the same event. Field by field: event_t has padding and bytes past
//  each NUL that memcmp would compare.
const char *event_difference (const event_t *a, const event_t *b);

#endif
