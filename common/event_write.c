/*  event_write — the canonical writer: stored and proposed lines, the
    splice that builds a stored line from a canonical proposed text, the
    metadata object, and the services' one integer printer. It never goes
    through cJSON's printer (too slow on the append path): memcpy and a
    digit loop.
*/
#include "event_internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *s_type_names_quoted[] = {"\"\"",
                                            "\"deposited\"",
                                            "\"withdrawn\"",
                                            "\"transferred\"",
                                            "\"account_opened\"",
                                            "\"account_updated\"",
                                            "\"transfer_pending\"",
                                            "\"transfer_posted\"",
                                            "\"transfer_voided\"",
                                            "\"transfer_expired\""};

typedef struct {
    char *p;
    char *end; // one before the buffer's end, room for the NUL
    bool overflow;
} writer_t;

static void s_put (writer_t *w, const char *data, size_t bytes)
{
    if (w->overflow || (size_t)(w->end - w->p) < bytes) {
        w->overflow = true;
        return;
    }
    memcpy (w->p, data, bytes);
    w->p += bytes;
}

#define s_put_lit(w, literal) s_put ((w), (literal), sizeof (literal) - 1)

size_t event_format_int (char *target, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    char *start = digits + sizeof digits;
    //  The magnitude as unsigned, so INT64_MIN has one too.
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--start = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *--start = '-';
    size_t bytes = (size_t)(digits + sizeof digits - start);
    memcpy (target, start, bytes);
    return bytes;
}

static void s_put_int (writer_t *w, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    s_put (w, digits, event_format_int (digits, value));
}

//  The common case, a string with nothing to escape, in one pass: words
//  copied and checked together (the last one overlapping the one before;
//  a short string padded with spaces), then the closing quote. Returns
//  false, with the writer where it was, when there is not room or some
//  byte needs an escape.
static bool s_put_plain_string (writer_t *w, const char *text, size_t bytes)
{
    if (w->overflow || (size_t)(w->end - w->p) < bytes + 2)
        return false;
    char *out = w->p + 1;
    if (bytes < sizeof (uint64_t)) {
        uint64_t word = SWAR_ONES * ' ';
        memcpy (&word, text, bytes);
        if (event_word_has_special (word))
            return false;
        memcpy (out, text, bytes);
    } else {
        uint64_t special = 0;
        for (size_t at = 0; at + sizeof (uint64_t) <= bytes; at += sizeof (uint64_t)) {
            uint64_t word = event_word (text + at);
            special |= event_word_has_special (word);
            memcpy (out + at, &word, sizeof word);
        }
        uint64_t last = event_word (text + bytes - sizeof last);
        if (special || event_word_has_special (last))
            return false;
        memcpy (out + bytes - sizeof last, &last, sizeof last);
    }
    w->p[0] = '"';
    out[bytes] = '"';
    w->p = out + bytes + 1;
    return true;
}

//  Minimal escaping: \" \\ the short control escapes, other controls as \u00xx.
//  Bytes copied as they are, in runs found a word at a time. Kept out of
//  line: inlined, its frame made every plain string cost twice as much.
__attribute__ ((noinline)) static void s_put_escaped (writer_t *w, const char *text,
                                                      size_t bytes)
{
    static const char hex[] = "0123456789abcdef";
    const char *end = text + bytes;
    s_put_lit (w, "\"");
    const char *run = text;
    for (const char *c = text;; c++) {
        while (end - c >= 8 && !event_word_has_special (event_word (c)))
            c += 8;
        while (c < end && (unsigned char)*c >= 0x20 && *c != '"' && *c != '\\')
            c++;
        s_put (w, run, (size_t)(c - run));
        run = c + 1;
        if (c == end)
            break;
        unsigned char byte = (unsigned char)*c;
        char escape[6] = {'\\', 0, 0, 0, 0, 0};
        size_t escape_bytes = 2;
        switch (byte) {
        case '"':
            escape[1] = '"';
            break;
        case '\\':
            escape[1] = '\\';
            break;
        case '\n':
            escape[1] = 'n';
            break;
        case '\r':
            escape[1] = 'r';
            break;
        case '\t':
            escape[1] = 't';
            break;
        case '\b':
            escape[1] = 'b';
            break;
        case '\f':
            escape[1] = 'f';
            break;
        default:
            memcpy (escape + 1, "u00", 3);
            escape[4] = hex[byte >> 4];
            escape[5] = hex[byte & 0xF];
            escape_bytes = 6;
        }
        s_put (w, escape, escape_bytes);
    }
    s_put_lit (w, "\"");
}

static void s_put_type (writer_t *w, event_type_t type)
{
    const char *quoted = s_type_names_quoted[*event_type_name (type) ? type : 0];
    s_put (w, quoted, strlen (quoted));
}

static void s_put_string (writer_t *w, const char *text)
{
    size_t bytes = strlen (text);
    if (!s_put_plain_string (w, text, bytes))
        s_put_escaped (w, text, bytes);
}

static void s_put_limit (writer_t *w, int64_t limit)
{
    s_put_lit (w, ",\"overdraft_limit\":");
    if (limit == EVENT_LIMIT_UNLIMITED)
        s_put_lit (w, "null");
    else
        s_put_int (w, limit);
}

//  The fields of account_opened and account_updated.
static void s_put_account_body (writer_t *w, const event_t *self)
{
    s_put_lit (w, ",\"account\":");
    s_put_string (w, self->account);
    if (self->type == EVENT_ACCOUNT_OPENED) {
        s_put_lit (w, ",\"currency\":");
        s_put_string (w, self->currency);
    }
    if (self->type == EVENT_ACCOUNT_OPENED || self->has_limit)
        s_put_limit (w, self->overdraft_limit);
    if (self->metadata_bytes) {
        s_put_lit (w, ",\"metadata\":");
        s_put (w, self->metadata, self->metadata_bytes);
    }
}

//  Everything after ts: the type's fields and meta (shared by both forms).
static void s_put_body (writer_t *w, const event_t *self)
{
    if (event_type_has_parties (self->type)) {
        if (event_type_resolves_hold (self->type)) {
            s_put_lit (w, ",\"pending_id\":");
            s_put_string (w, self->pending_id);
        }
        s_put_lit (w, ",\"from\":");
        s_put_string (w, self->from);
        s_put_lit (w, ",\"to\":");
        s_put_string (w, self->to);
    } else if (!event_type_moves_money (self->type)) {
        s_put_account_body (w, self);
    } else {
        s_put_lit (w, ",\"account\":");
        s_put_string (w, self->account);
    }
    if (event_type_moves_money (self->type)) {
        s_put_lit (w, ",\"amount\":");
        s_put_int (w, self->amount);
        //  v1 lines have no currency: they format back to their own bytes.
        if (self->v >= 2) {
            s_put_lit (w, ",\"currency\":");
            s_put_string (w, self->currency);
        }
        if (self->type == EVENT_TRANSFER_PENDING && self->timeout_at_ms) {
            char ts[EVENT_TS_BYTES + 1];
            event_ts_format (self->timeout_at_ms, ts);
            s_put_lit (w, ",\"timeout_at\":\"");
            s_put (w, ts, EVENT_TS_BYTES);
            s_put_lit (w, "\"");
        }
    }
    const char *values[] = {self->correlation_id, self->request_id, self->reference,
                            self->principal};
    const char *keys[] = {
        "\"correlation_id\":", "\"request_id\":", "\"reference\":", "\"principal\":"};
    bool any = false;
    for (size_t i = 0; i < 4; i++) {
        if (values[i][0] == '\0')
            continue;
        if (any)
            s_put_lit (w, ",");
        else
            s_put_lit (w, ",\"meta\":{");
        any = true;
        s_put (w, keys[i], strlen (keys[i]));
        s_put_string (w, values[i]);
    }
    if (any)
        s_put_lit (w, "}");
}

static size_t s_finish (writer_t *w, char *buffer)
{
    if (w->overflow)
        return 0;
    *w->p = '\0';
    return (size_t)(w->p - buffer);
}

//  The events of one append share their ts: it is formatted once.
static const char *s_cached_ts (int64_t ts_ms)
{
    static _Thread_local int64_t cached_ms = 0;
    static _Thread_local char ts[EVENT_TS_BYTES + 1] = "1970-01-01T00:00:00.000Z";
    if (ts_ms != cached_ms) {
        event_ts_format (ts_ms, ts);
        cached_ms = ts_ms;
    }
    return ts;
}

size_t event_format_stored (const event_t *self, char *buffer, size_t buffer_size)
{
    assert (self && buffer);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    const char *ts = s_cached_ts (self->ts_ms);
    s_put_lit (&w, "{\"seq\":");
    s_put_int (&w, self->seq);
    s_put_lit (&w, ",\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_type (&w, self->type);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_lit (&w, ",\"ts\":\"");
    s_put (&w, ts, EVENT_TS_BYTES);
    s_put_lit (&w, "\"");
    s_put_body (&w, self);
    s_put_lit (&w, "}");
    return s_finish (&w, buffer);
}

//  A canonical proposed text is the stored line without seq and ts (and
//  with expect): {"id":..,"type":..,"v":1 BODY [,"expect":{..}]}. The
//  stored line is that with {"seq":N, for its { and ,"ts":"..." before
//  BODY, expect left out: three copies instead of escaping every string
//  again (formatting was a fifth of the stream's work on a batch).
size_t event_format_stored_splice (const event_t *self, const char *json,
                                   const event_splice_t *splice, char *buffer,
                                   size_t buffer_size)
{
    assert (self && json && splice && buffer);
    if (splice->body == 0)
        return event_format_stored (self, buffer, buffer_size);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    //  The length first, so the copies need no checks of their own.
    char digits[24];
    writer_t number = {digits, digits + sizeof digits - 1, false};
    s_put_int (&number, self->seq);
    size_t seq_bytes = (size_t)(number.p - digits);
    size_t head_bytes = splice->body - 1; // "id":..,"type":..,"v":1
    size_t body_bytes = splice->body_end - splice->body;
    static const char seq_key[] = "{\"seq\":", ts_key[] = ",\"ts\":\"";
    size_t bytes = (sizeof seq_key - 1) + seq_bytes + 1 + head_bytes +
                   (sizeof ts_key - 1) + EVENT_TS_BYTES + 1 + body_bytes + 1;
    if (bytes >= buffer_size)
        return 0;
    char *p = buffer;
    memcpy (p, seq_key, sizeof seq_key - 1);
    p += sizeof seq_key - 1;
    memcpy (p, digits, seq_bytes);
    p += seq_bytes;
    *p++ = ',';
    memcpy (p, json + 1, head_bytes);
    p += head_bytes;
    memcpy (p, ts_key, sizeof ts_key - 1);
    p += sizeof ts_key - 1;
    memcpy (p, s_cached_ts (self->ts_ms), EVENT_TS_BYTES);
    p += EVENT_TS_BYTES;
    *p++ = '"';
    memcpy (p, json + splice->body, body_bytes);
    p += body_bytes;
    *p++ = '}';
    *p = '\0';
    assert ((size_t)(p - buffer) == bytes);
    return bytes;
}

size_t event_format_proposed (const event_t *self, char *buffer, size_t buffer_size)
{
    assert (self && buffer);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    s_put_lit (&w, "{\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_type (&w, self->type);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_body (&w, self);
    for (size_t i = 0; i < self->expect_count; i++) {
        if (i == 0)
            s_put_lit (&w, ",\"expect\":{");
        else
            s_put_lit (&w, ",");
        s_put_string (&w, self->expect[i].account);
        s_put_lit (&w, ":");
        s_put_int (&w, self->expect[i].version);
    }
    if (self->expect_count > 0)
        s_put_lit (&w, "}");
    s_put_lit (&w, "}");
    return s_finish (&w, buffer);
}

static int s_metadata_key_compare (const void *a, const void *b)
{
    return strcmp ((*(const cJSON *const *)a)->string,
                   (*(const cJSON *const *)b)->string);
}

int event_metadata_format (const void *cjson_object, char *out, char *error,
                           size_t error_size)
{
    const cJSON *object = cjson_object;
    assert (out);
    if (!cJSON_IsObject (object))
        return event_fail (error, error_size,
                           "metadata: must be an object of strings (at most %d keys)",
                           EVENT_METADATA_KEYS_MAX);
    const cJSON *members[EVENT_METADATA_KEYS_MAX];
    size_t count = 0;
    for (const cJSON *child = object->child; child; child = child->next) {
        if (count == EVENT_METADATA_KEYS_MAX)
            return event_fail (error, error_size, "metadata: more than %d keys",
                               EVENT_METADATA_KEYS_MAX);
        if (!event_metadata_key_is_valid (child->string, strlen (child->string)))
            return event_fail (error, error_size,
                               "metadata.%.40s: keys must match ^[a-z][a-z0-9_]{0,31}$",
                               child->string);
        if (!cJSON_IsString (child))
            return event_fail (error, error_size, "metadata.%s: must be a string",
                               child->string);
        size_t bytes = strlen (child->valuestring);
        if (bytes > EVENT_METADATA_VALUE_BYTES_MAX ||
            !event_text_is_utf8 (child->valuestring, bytes))
            return event_fail (error, error_size,
                               "metadata.%s: must be valid UTF-8 of at most %d bytes",
                               child->string, EVENT_METADATA_VALUE_BYTES_MAX);
        members[count++] = child;
    }
    qsort (members, count, sizeof members[0], s_metadata_key_compare);
    writer_t w = {out, out + EVENT_METADATA_BYTES_MAX, false};
    s_put_lit (&w, "{");
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp (members[i]->string, members[i - 1]->string) == 0)
            return event_fail (error, error_size, "metadata.%s: duplicate key",
                               members[i]->string);
        if (i)
            s_put_lit (&w, ",");
        s_put_string (&w, members[i]->string);
        s_put_lit (&w, ":");
        s_put_string (&w, members[i]->valuestring);
    }
    s_put_lit (&w, "}");
    if (w.overflow)
        return event_fail (error, error_size, "metadata: longer than %d bytes as JSON",
                           EVENT_METADATA_BYTES_MAX);
    *w.p = '\0';
    return (int)(w.p - out);
}

size_t event_format_string (const char *text, char *buffer, size_t buffer_size)
{
    assert (text && buffer);
    if (buffer_size == 0)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    s_put_string (&w, text);
    return s_finish (&w, buffer);
}

size_t event_format_head (const event_t *self, char *buffer, size_t buffer_size)
{
    assert (self && buffer);
    if (buffer_size == 0)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    s_put_lit (&w, "{\"seq\":");
    s_put_int (&w, self->seq);
    s_put_lit (&w, ",\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_string (&w, self->type_name);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_lit (&w, ",\"ts\":\"");
    s_put (&w, s_cached_ts (self->ts_ms), EVENT_TS_BYTES);
    s_put_lit (&w, "\"");
    return s_finish (&w, buffer);
}
