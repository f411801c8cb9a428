/*  reply — the 201 bodies of transaction (see reply.h).

    The member order is the one the answers always had (it was cJSON's
    insertion order), so clients see the same bytes except for numbers
    that used to be rounded or printed with an exponent.
*/
#include "reply.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define REPLY_BYTES_INITIAL 512 // one event answer fits
#define REPLY_INT_BYTES_MAX 20  // "-9223372036854775808"

void reply_init (reply_t *self)
{
    assert (self);
    *self = (reply_t){NULL, 0, 0};
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

void reply_append_int (reply_t *self, int64_t value)
{
    char digits[REPLY_INT_BYTES_MAX];
    char *cursor = digits + sizeof digits;
    //  The magnitude as unsigned, so INT64_MIN has one too.
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--cursor = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *--cursor = '-';
    reply_append (self, cursor, (size_t)(digits + sizeof digits - cursor));
}

//  ,"name":"value"  (value needs no escaping: see reply.h)
static void s_member_str (reply_t *self, const char *name, const char *value)
{
    reply_append_str (self, ",\"");
    reply_append_str (self, name);
    reply_append_str (self, "\":\"");
    reply_append_str (self, value);
    reply_append (self, "\"", 1);
}

//  "name":value, with a comma before it unless first
static void s_member_int (reply_t *self, const char *name, int64_t value, bool first)
{
    reply_append_str (self, first ? "\"" : ",\"");
    reply_append_str (self, name);
    reply_append_str (self, "\":");
    reply_append_int (self, value);
}

void reply_append_record (reply_t *self, const write_model_record_t *record)
{
    assert (record);
    char ts[EVENT_TS_BYTES + 1];
    event_ts_format (record->ts_ms, ts);
    reply_append (self, "{", 1);
    s_member_int (self, "seq", record->seq, true);
    s_member_str (self, "id", record->id);
    s_member_str (self, "type", event_type_name (record->type));
    s_member_str (self, "ts", ts);
    if (record->type == EVENT_TRANSFERRED) {
        s_member_str (self, "from", record->account);
        s_member_str (self, "to", record->to);
        s_member_int (self, "amount", record->amount, false);
        reply_append_str (self, ",\"balances\":{");
        s_member_int (self, record->account, record->balance, true);
        s_member_int (self, record->to, record->balance_to, false);
        reply_append (self, "}", 1);
    } else {
        s_member_str (self, "account", record->account);
        s_member_int (self, "amount", record->amount, false);
        s_member_int (self, "balance", record->balance, false);
    }
    reply_append (self, "}", 1);
}
