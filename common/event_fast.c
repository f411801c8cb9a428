/*  event_fast — the fast path: it accepts only the exact canonical byte
    layout (event_write.c's) of a stored line or a proposed text and gives
    up on anything else, for the reference parser to judge. It exists for
    catch-up, log scans and the append path, where cJSON would be the
    bottleneck.
*/
#include "event_internal.h"

#include <string.h>

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static bool s_lit (cursor_t *c, const char *literal, size_t bytes)
{
    if ((size_t)(c->end - c->p) < bytes || memcmp (c->p, literal, bytes) != 0)
        return false;
    c->p += bytes;
    return true;
}

#define s_expect_lit(c, literal) s_lit ((c), (literal), sizeof (literal) - 1)

//  Canonical positive integer in [1, max], followed by a non-digit.
static bool s_fast_uint (cursor_t *c, int64_t max, int64_t *value)
{
    const char *p = c->p;
    if (p == c->end || *p < '1' || *p > '9')
        return false;
    int64_t result = 0;
    int digits = 0;
    for (; p < c->end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 16) // our maxima have at most 16 digits
            return false;
        result = result * 10 + (*p - '0');
    }
    if (result > max)
        return false;
    *value = result;
    c->p = p;
    return true;
}

//  An id/account and its closing quote, copied as it is checked: four bytes
//  at a time while all four are id bytes (the table holds 0 or 1, and 0 for
//  the quote), then byte by byte up to the quote.
static bool s_fast_id (cursor_t *c, char *out)
{
    const unsigned char *u = (const unsigned char *)c->p;
    size_t room = (size_t)(c->end - c->p);
    if (room > EVENT_ID_BYTES_MAX + 1)
        room = EVENT_ID_BYTES_MAX + 1; // + 1 for the quote
    if (room == 0 || !event_is_alnum (u[0]))
        return false;
    out[0] = (char)u[0];
    size_t i = 1;
    while (i + 4 <= room && (event_id_chars[u[i]] & event_id_chars[u[i + 1]] &
                             event_id_chars[u[i + 2]] & event_id_chars[u[i + 3]])) {
        memcpy (out + i, u + i, 4);
        i += 4;
    }
    for (; i < room && event_id_chars[u[i]]; i++)
        out[i] = (char)u[i];
    if (i == room || u[i] != '"')
        return false;
    out[i] = '\0';
    c->p = (const char *)u + i + 1;
    return true;
}

static int s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

//  The byte a canonical escape after a backslash stands for, moving p
//  past it; -1 for anything event_format_* would not have written.
static int s_fast_escape (const char **p_p, const char *end)
{
    const char *p = *p_p;
    if (p == end)
        return -1;
    int byte;
    switch (*p++) {
    case '"':
        byte = '"';
        break;
    case '\\':
        byte = '\\';
        break;
    case 'n':
        byte = '\n';
        break;
    case 'r':
        byte = '\r';
        break;
    case 't':
        byte = '\t';
        break;
    case 'b':
        byte = '\b';
        break;
    case 'f':
        byte = '\f';
        break;
    case 'u': {
        if (end - p < 4 || p[0] != '0' || p[1] != '0')
            return -1;
        int hi = s_hex_digit (p[2]), lo = s_hex_digit (p[3]);
        if (hi < 0 || lo < 0)
            return -1;
        byte = hi * 16 + lo;
        p += 4;
        //  Only controls without a short escape are written so.
        if (byte == 0 || byte >= 0x20 || byte == '\n' || byte == '\r' || byte == '\t' ||
            byte == '\b' || byte == '\f')
            return -1;
        break;
    }
    default:
        return -1;
    }
    *p_p = p;
    return byte;
}

//  One canonically escaped meta value and its closing quote. Runs of
//  plain bytes are found a word at a time and copied at once.
static bool s_fast_string (cursor_t *c, char *out)
{
    const char *p = c->p;
    size_t bytes = 0;
    uint64_t seen = 0; // every plain byte ORed in: its high bits tell non-ASCII
    for (;;) {
        const char *run = p;
        while (c->end - p >= 8 && !event_word_has_special (event_word (p))) {
            seen |= event_word (p);
            p += 8;
        }
        while (p < c->end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
            seen |= (unsigned char)*p++;
        size_t run_bytes = (size_t)(p - run);
        if (run_bytes > EVENT_META_VALUE_BYTES_MAX - bytes)
            return false;
        memcpy (out + bytes, run, run_bytes);
        bytes += run_bytes;
        if (p == c->end || (unsigned char)*p < 0x20)
            return false;
        if (*p == '"')
            break;
        p++; // the backslash
        int byte = s_fast_escape (&p, c->end);
        if (byte < 0 || bytes == EVENT_META_VALUE_BYTES_MAX)
            return false;
        out[bytes++] = (char)byte; // escapes stand for ASCII only
    }
    if (bytes == 0)
        return false;
    out[bytes] = '\0';
    if ((seen & SWAR_HIGHS) && !event_text_is_utf8 (out, bytes))
        return false;
    c->p = p + 1;
    return true;
}

//  A principal name and its closing quote (no escapes: the pattern has none).
static bool s_fast_principal (cursor_t *c, char *out)
{
    const char *quote = memchr (c->p, '"', (size_t)(c->end - c->p));
    if (!quote || !event_principal_is_valid (c->p, (size_t)(quote - c->p)))
        return false;
    memcpy (out, c->p, (size_t)(quote - c->p));
    out[quote - c->p] = '\0';
    c->p = quote + 1;
    return true;
}

static bool s_fast_meta (cursor_t *c, event_t *self)
{
    bool any = false;
    if (s_expect_lit (c, "\"correlation_id\":\"")) {
        if (!s_fast_string (c, self->correlation_id))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"request_id\":\"")
            : s_expect_lit (c, "\"request_id\":\"")) {
        if (!s_fast_string (c, self->request_id))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"reference\":\"")
            : s_expect_lit (c, "\"reference\":\"")) {
        if (!s_fast_string (c, self->reference))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"principal\":\"")
            : s_expect_lit (c, "\"principal\":\"")) {
        if (!s_fast_principal (c, self->principal))
            return false;
        any = true;
    }
    return any && s_expect_lit (c, "}");
}

//  A currency code and its closing quote.
static bool s_fast_currency (cursor_t *c, char *out)
{
    size_t room = (size_t)(c->end - c->p);
    if (room > EVENT_CURRENCY_BYTES_MAX + 1)
        room = EVENT_CURRENCY_BYTES_MAX + 1;
    const char *quote = memchr (c->p, '"', room);
    if (!quote || !event_currency_is_valid (c->p, (size_t)(quote - c->p)))
        return false;
    memcpy (out, c->p, (size_t)(quote - c->p));
    out[quote - c->p] = '\0';
    c->p = quote + 1;
    return true;
}

//  The type and its closing quote, then ,"v":1 or ,"v":2 (money events
//  only: the account types are rare and go the reference way).
static bool s_fast_type_v (cursor_t *c, event_t *self)
{
    const char *name = c->p;
    if (s_expect_lit (c, "deposited\""))
        self->type = EVENT_DEPOSITED;
    else if (s_expect_lit (c, "withdrawn\""))
        self->type = EVENT_WITHDRAWN;
    else if (s_expect_lit (c, "transferred\""))
        self->type = EVENT_TRANSFERRED;
    else
        return false;
    //  As read, up to the quote just passed.
    size_t bytes = (size_t)(c->p - 1 - name);
    memcpy (self->type_name, name, bytes);
    self->type_name[bytes] = '\0';
    if (s_expect_lit (c, ",\"v\":2"))
        self->v = 2;
    else if (s_expect_lit (c, ",\"v\":1"))
        self->v = 1; // the upcast, as event_upcast does it
    else
        return false;
    return c->p < c->end && *c->p == ',';
}

//  The type's fields and meta: everything s_put_body writes.
static bool s_fast_body (cursor_t *c, event_t *self)
{
    if (self->type == EVENT_TRANSFERRED) {
        if (!s_expect_lit (c, ",\"from\":\"") || !s_fast_id (c, self->from) ||
            !s_expect_lit (c, ",\"to\":\"") || !s_fast_id (c, self->to) ||
            strcmp (self->from, self->to) == 0)
            return false;
    } else if (!s_expect_lit (c, ",\"account\":\"") || !s_fast_id (c, self->account))
        return false;
    if (!s_expect_lit (c, ",\"amount\":") ||
        !s_fast_uint (c, EVENT_AMOUNT_MAX, &self->amount))
        return false;
    if (self->v == 1)
        memcpy (self->currency, EVENT_CURRENCY_V1, sizeof EVENT_CURRENCY_V1);
    else if (!s_expect_lit (c, ",\"currency\":\"") ||
             !s_fast_currency (c, self->currency))
        return false;
    if (s_expect_lit (c, ",\"meta\":{") && !s_fast_meta (c, self))
        return false;
    return true;
}

//  True and self filled if the line is exactly canonical and valid; false
//  (self in any state) for anything the reference parser must judge.
static bool s_fast_parse_stored (const char *line, size_t bytes, event_t *self)
{
    cursor_t c = {line, line + bytes};
    if (!s_expect_lit (&c, "{\"seq\":") || !s_fast_uint (&c, EVENT_SEQ_MAX, &self->seq) ||
        !s_expect_lit (&c, ",\"id\":\"") || !s_fast_id (&c, self->id) ||
        !s_expect_lit (&c, ",\"type\":\"") || !s_fast_type_v (&c, self))
        return false;
    if (!s_expect_lit (&c, ",\"ts\":\"") || c.end - c.p < EVENT_TS_BYTES + 1 ||
        !event_ts_parse_canonical (c.p, &self->ts_ms))
        return false;
    c.p += EVENT_TS_BYTES;
    if (!s_expect_lit (&c, "\"") || !s_fast_body (&c, self))
        return false;
    return s_expect_lit (&c, "}") && c.p == c.end;
}

//  A canonical version: 0, or digits without a leading zero.
static bool s_fast_version (cursor_t *c, int64_t *version)
{
    if (c->p < c->end && *c->p == '0') {
        c->p++;
        *version = 0;
        return c->p < c->end && (*c->p < '0' || *c->p > '9');
    }
    return s_fast_uint (c, EVENT_VERSION_MAX, version);
}

//  ,"expect":{"account":version,...} as event_format_proposed writes it:
//  accounts of this event, each at most once.
static bool s_fast_expect (cursor_t *c, event_t *self)
{
    if (!s_expect_lit (c, ",\"expect\":{"))
        return true;
    do {
        if (self->expect_count == EVENT_EXPECT_MAX || !s_expect_lit (c, "\""))
            return false;
        event_expect_t *expect = &self->expect[self->expect_count];
        if (!s_fast_id (c, expect->account) || !s_expect_lit (c, ":") ||
            !s_fast_version (c, &expect->version) ||
            !event_touches (self, expect->account))
            return false;
        for (size_t k = 0; k < self->expect_count; k++)
            if (strcmp (self->expect[k].account, expect->account) == 0)
                return false;
        self->expect_count++;
    } while (s_expect_lit (c, ","));
    return s_expect_lit (c, "}");
}

//  The same for event_format_proposed's form; splice (if not NULL) learns
//  where its body starts and ends.
static bool s_fast_parse_proposed (const char *json, size_t bytes, event_t *self,
                                   event_splice_t *splice)
{
    cursor_t c = {json, json + bytes};
    if (!s_expect_lit (&c, "{\"id\":\"") || !s_fast_id (&c, self->id) ||
        !s_expect_lit (&c, ",\"type\":\"") || !s_fast_type_v (&c, self))
        return false;
    const char *body = c.p;
    if (!s_fast_body (&c, self))
        return false;
    const char *body_end = c.p;
    if (!s_fast_expect (&c, self) || !s_expect_lit (&c, "}") || c.p != c.end)
        return false;
    if (splice) {
        splice->body = (size_t)(body - json);
        splice->body_end = (size_t)(body_end - json);
    }
    return true;
}

//  What the fast paths do not always write: clearing only these (not the
//  whole ~1.3 KiB event) is what event_init amounts to for their readers,
//  since every string they write is NUL-terminated.
static void s_fast_init (event_t *self)
{
    self->seq = 0;
    self->ts_ms = 0;
    self->v = EVENT_SCHEMA_VERSION;
    self->account[0] = '\0';
    self->from[0] = '\0';
    self->to[0] = '\0';
    self->correlation_id[0] = '\0';
    self->request_id[0] = '\0';
    self->reference[0] = '\0';
    self->principal[0] = '\0';
    self->currency[0] = '\0';
    self->has_limit = false;
    self->overdraft_limit = 0;
    self->metadata_bytes = 0;
    self->metadata[0] = '\0';
    self->pending_id[0] = '\0';
    self->timeout_at_ms = 0;
    self->expect_count = 0;
}

bool event_fast_parse_stored (const char *line, size_t bytes, event_t *self)
{
    s_fast_init (self);
    return s_fast_parse_stored (line, bytes, self);
}

bool event_fast_parse_proposed (const char *json, size_t bytes, event_t *self,
                                event_splice_t *splice)
{
    s_fast_init (self);
    return s_fast_parse_proposed (json, bytes, self, splice);
}

bool event_fast_string (const char **p, const char *end, char *out)
{
    cursor_t c = {*p, end};
    if (!s_fast_string (&c, out))
        return false;
    *p = c.p;
    return true;
}
