/*  reply — the 201 bodies of transaction (see reply.h).

    Members come in a fixed order (clients may compare bytes), and
    integers are printed exactly, never rounded through a double or
    written with an exponent.
*/
#include "reply.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define REPLY_BYTES_INITIAL 512 // one event answer fits

void reply_init (reply_t *self)
{
    assert (self);
    *self = (reply_t){.data = NULL};
}

void reply_free (reply_t *self)
{
    assert (self);
    free (self->data);
    reply_init (self);
}

//  Out of memory is not an input error: like czmq, we do not go on.
static void s_reserve (reply_t *self, size_t bytes)
{
    size_t needed = self->bytes + bytes + 1;
    if (needed <= self->capacity)
        return;
    size_t capacity = self->capacity ? self->capacity : REPLY_BYTES_INITIAL;
    while (capacity < needed)
        capacity *= 2;
    char *data = realloc (self->data, capacity);
    assert (data);
    self->data = data;
    self->capacity = capacity;
}

void reply_reserve (reply_t *self, size_t bytes)
{
    s_reserve (self, bytes);
}

void reply_append (reply_t *self, const char *text, size_t bytes)
{
    s_reserve (self, bytes);
    memcpy (self->data + self->bytes, text, bytes);
    self->bytes += bytes;
    self->data[self->bytes] = '\0';
}

void reply_append_str (reply_t *self, const char *text)
{
    reply_append (self, text, strlen (text));
}

//  One record's text at most: the member names and punctuation
//  (under 192 bytes), two ids, up to four account ids, a currency, a type
//  name, two timestamps and five integers.
#define REPLY_TYPE_BYTES_MAX 16
#define REPLY_RECORD_BYTES_MAX                                                           \
    (224 + EVENT_CURRENCY_BYTES_MAX + 2 * EVENT_ID_BYTES_MAX +                           \
     4 * EVENT_ACCOUNT_BYTES_MAX + REPLY_TYPE_BYTES_MAX + 2 * EVENT_TS_BYTES +            \
     5 * EVENT_INT_BYTES_MAX)

//  Records are written with a cursor into space reserved once per record
//  (an append each, with its own reserve and strlen, cost twice as much).
static char *s_put (char *cursor, const char *text, size_t bytes)
{
    memcpy (cursor, text, bytes);
    return cursor + bytes;
}

#define s_put_literal(cursor, literal) s_put ((cursor), (literal), sizeof (literal) - 1)

static char *s_put_str (char *cursor, const char *text)
{
    return s_put (cursor, text, strlen (text));
}

static char *s_put_int (char *cursor, int64_t value)
{
    return cursor + event_format_int (cursor, value);
}

void reply_append_int (reply_t *self, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    reply_append (self, digits, event_format_int (digits, value));
}

//  The record's timestamp: a batch's events mostly share one.
static const char *s_ts (reply_t *self, int64_t ts_ms)
{
    if (!self->ts_valid || self->ts_ms != ts_ms) {
        event_ts_format (ts_ms, self->ts);
        self->ts_ms = ts_ms;
        self->ts_valid = true;
    }
    return self->ts;
}

void reply_append_record (reply_t *self, const write_model_record_t *record,
                          const char *metadata)
{
    assert (record);
    const char *type = event_type_name (record->type);
    assert (strlen (type) <= REPLY_TYPE_BYTES_MAX);
    s_reserve (self, REPLY_RECORD_BYTES_MAX + (metadata ? strlen (metadata) : 0));
    char *cursor = self->data + self->bytes;
    cursor = s_put_literal (cursor, "{\"seq\":");
    cursor = s_put_int (cursor, record->seq);
    cursor = s_put_literal (cursor, ",\"id\":\"");
    cursor = s_put_str (cursor, record->id);
    cursor = s_put_literal (cursor, "\",\"type\":\"");
    cursor = s_put_str (cursor, type);
    cursor = s_put_literal (cursor, "\",\"ts\":\"");
    cursor = s_put (cursor, s_ts (self, record->ts_ms), EVENT_TS_BYTES);
    if (!event_type_moves_money (record->type)) {
        cursor = s_put_literal (cursor, "\",\"account\":\"");
        cursor = s_put_str (cursor, record->account);
        cursor = s_put_literal (cursor, "\"");
        if (record->type == EVENT_ACCOUNT_OPENED) {
            cursor = s_put_literal (cursor, ",\"currency\":\"");
            cursor = s_put_str (cursor, record->currency);
            cursor = s_put_literal (cursor, "\"");
        }
        if (record->has_limit) {
            cursor = s_put_literal (cursor, ",\"overdraft_limit\":");
            if (record->overdraft_limit == EVENT_LIMIT_UNLIMITED)
                cursor = s_put_literal (cursor, "null");
            else
                cursor = s_put_int (cursor, record->overdraft_limit);
        }
        if (metadata) {
            cursor = s_put_literal (cursor, ",\"metadata\":");
            cursor = s_put_str (cursor, metadata);
        }
        cursor = s_put_literal (cursor, ",\"version\":");
        cursor = s_put_int (cursor, record->version);
        cursor = s_put_literal (cursor, "}");
    } else if (event_type_has_parties (record->type)) {
        if (event_type_resolves_hold (record->type)) {
            cursor = s_put_literal (cursor, "\",\"pending_id\":\"");
            cursor = s_put_str (cursor, record->pending_id);
        }
        cursor = s_put_literal (cursor, "\",\"from\":\"");
        cursor = s_put_str (cursor, record->account);
        cursor = s_put_literal (cursor, "\",\"to\":\"");
        cursor = s_put_str (cursor, record->to);
        cursor = s_put_literal (cursor, "\",\"amount\":");
        cursor = s_put_int (cursor, record->amount);
        cursor = s_put_literal (cursor, ",\"currency\":\"");
        cursor = s_put_str (cursor, record->currency);
        if (record->timeout_at_ms) {
            cursor = s_put_literal (cursor, "\",\"timeout_at\":\"");
            char ts[EVENT_TS_BYTES + 1];
            event_ts_format (record->timeout_at_ms, ts);
            cursor = s_put (cursor, ts, EVENT_TS_BYTES);
        }
        cursor = s_put_literal (cursor, "\",\"balances\":{\"");
        cursor = s_put_str (cursor, record->account);
        cursor = s_put_literal (cursor, "\":");
        cursor = s_put_int (cursor, record->balance);
        cursor = s_put_literal (cursor, ",\"");
        cursor = s_put_str (cursor, record->to);
        cursor = s_put_literal (cursor, "\":");
        cursor = s_put_int (cursor, record->balance_to);
        cursor = s_put_literal (cursor, "}}");
    } else {
        cursor = s_put_literal (cursor, "\",\"account\":\"");
        cursor = s_put_str (cursor, record->account);
        cursor = s_put_literal (cursor, "\",\"amount\":");
        cursor = s_put_int (cursor, record->amount);
        cursor = s_put_literal (cursor, ",\"currency\":\"");
        cursor = s_put_str (cursor, record->currency);
        cursor = s_put_literal (cursor, "\",\"balance\":");
        cursor = s_put_int (cursor, record->balance);
        cursor = s_put_literal (cursor, "}");
    }
    self->bytes = (size_t)(cursor - self->data);
    assert (self->bytes < self->capacity);
    self->data[self->bytes] = '\0';
}
