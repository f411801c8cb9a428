/*  event_parse — the reference parser and the parse entry points.

    The reference parser uses cJSON for structure and string decoding and
    is the only one that reports errors. Because cJSON keeps numbers as
    doubles, every integer (seq, v, amount, expect versions) is validated
    from its source digits, found by walking the raw text of the object
    alongside cJSON's children (both keep source order).

    Each entry point first tries the fast path (event_fast.c), which
    accepts only exact canonical bytes: a line is either accepted by both
    parsers with identical results or handed to the reference parser.
*/
#include "event_internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

//  Members of one JSON object we look at; real events have at most 10.
#define EVENT_FIELDS_MAX     32
#define EVENT_INT_DIGITS_MAX 19 // fits int64 before the overflow check

typedef enum {
    F_SEQ,
    F_ID,
    F_TYPE,
    F_V,
    F_TS,
    F_ACCOUNT,
    F_FROM,
    F_TO,
    F_AMOUNT,
    F_META,
    F_EXPECT,
    F_CURRENCY,
    F_LIMIT,
    F_METADATA,
    F_PENDING_ID,
    F_TIMEOUT_AT,
    F_COUNT
} field_t;

static const char *s_field_names[F_COUNT] = {
    "seq",
    "id",
    "type",
    "v",
    "ts",
    "account",
    "from",
    "to",
    "amount",
    "meta",
    "expect",
    "currency",
    "overdraft_limit",
    "metadata",
    "pending_id",
    "timeout_at",
};

//  overdraft_limit: 0 .. 10^18, so -limit and balance - limit stay in int64.
#define EVENT_LIMIT_MAX 1000000000000000000LL

//  Raw source text of one JSON value.
typedef struct {
    const char *text;
    size_t bytes;
} span_t;

typedef struct {
    const cJSON *item;
    span_t raw;
} slot_t;

//  --------------------------------------------------------------------------
//  Raw JSON walking (input already validated by cJSON; bounded by the NUL)

static const char *s_skip_ws (const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *s_skip_string (const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : p;
}

static const char *s_skip_value (const char *p)
{
    if (*p == '"')
        return s_skip_string (p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = s_skip_string (p);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                depth--;
            p++;
            if (depth == 0)
                break;
        }
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

//  Value spans of the members of the object at p, in source order.
//  Returns the member count (spans beyond max are not stored).
static size_t s_raw_members (const char *p, span_t *spans, size_t max)
{
    size_t count = 0;
    if (*p != '{')
        return 0;
    p = s_skip_ws (p + 1);
    while (*p == '"') {
        p = s_skip_ws (s_skip_string (p));
        if (*p != ':')
            break;
        p = s_skip_ws (p + 1);
        const char *value = p;
        p = s_skip_value (p);
        if (count < max)
            spans[count] = (span_t){value, (size_t)(p - value)};
        count++;
        p = s_skip_ws (p);
        if (*p == ',')
            p = s_skip_ws (p + 1);
    }
    return count;
}

//  An integer in [min, max] written as plain JSON digits (no fraction, no
//  exponent, no leading zero), exact at any size.
static bool s_raw_int (span_t raw, int64_t min, int64_t max, int64_t *value)
{
    const char *p = raw.text;
    size_t bytes = raw.bytes;
    bool negative = bytes > 0 && *p == '-';
    if (negative)
        p++, bytes--;
    if (bytes == 0 || bytes > EVENT_INT_DIGITS_MAX || (p[0] == '0' && bytes > 1))
        return false;
    uint64_t magnitude = 0;
    for (size_t i = 0; i < bytes; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        magnitude = magnitude * 10 + (uint64_t)(p[i] - '0');
    }
    if (magnitude > (uint64_t)INT64_MAX)
        return false;
    int64_t result = negative ? -(int64_t)magnitude : (int64_t)magnitude;
    if (result < min || result > max)
        return false;
    *value = result;
    return true;
}

//  cJSON silently cuts a string at \u0000 and lets raw control bytes
//  through; both are refused here from the source text.
static bool s_raw_string_is_clean (span_t raw)
{
    for (size_t i = 1; i + 1 < raw.bytes; i++) {
        unsigned char c = (unsigned char)raw.text[i];
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (raw.text[i + 1] == 'u' && i + 5 < raw.bytes &&
                memcmp (raw.text + i + 2, "0000", 4) == 0)
                return false;
            i++;
        }
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Reference parser (cJSON)

typedef struct {
    bool stored; // stored line (seq, ts) or proposed event (expect)
    char *error;
    size_t error_size;
} parse_ctx_t;

static int s_get_string (parse_ctx_t *ctx, const slot_t *slot, const char *name,
                         char *out, size_t out_max, const char *rule)
{
    if (!cJSON_IsString (slot->item) || !s_raw_string_is_clean (slot->raw))
        return event_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    size_t bytes = strlen (slot->item->valuestring);
    if (bytes == 0 || bytes > out_max ||
        !event_text_is_utf8 (slot->item->valuestring, bytes))
        return event_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    memcpy (out, slot->item->valuestring, bytes + 1);
    return 0;
}

static int s_get_id (parse_ctx_t *ctx, const slot_t *slot, const char *name, char *out,
                     size_t out_max)
{
    static const char rule[] =
        "must be a string matching ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";
    if (!slot->item)
        return event_fail (ctx->error, ctx->error_size, "%s: missing", name);
    if (s_get_string (ctx, slot, name, out, out_max, rule))
        return -1;
    if (!event_id_is_valid (out, strlen (out)))
        return event_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    return 0;
}

//  Maps members to fields; unknown names are kept for a later verdict.
static int s_collect (parse_ctx_t *ctx, const cJSON *root, const char *root_text,
                      slot_t slots[F_COUNT], const char **unknown)
{
    span_t spans[EVENT_FIELDS_MAX];
    size_t count = s_raw_members (root_text, spans, EVENT_FIELDS_MAX);
    if (count > EVENT_FIELDS_MAX)
        return event_fail (ctx->error, ctx->error_size, "event: more than %d fields",
                           EVENT_FIELDS_MAX);
    if ((int)count != cJSON_GetArraySize (root))
        return event_fail (ctx->error, ctx->error_size, "event: not valid JSON");
    size_t index = 0;
    *unknown = NULL;
    for (const cJSON *child = root->child; child; child = child->next, index++) {
        int field = 0;
        while (field < F_COUNT && strcmp (child->string, s_field_names[field]) != 0)
            field++;
        if (field == F_COUNT) {
            if (!*unknown)
                *unknown = child->string;
            continue;
        }
        if (slots[field].item)
            return event_fail (ctx->error, ctx->error_size, "%s: duplicate field",
                               s_field_names[field]);
        slots[field] = (slot_t){child, spans[index]};
    }
    return 0;
}

static int s_parse_common (parse_ctx_t *ctx, slot_t slots[F_COUNT], event_t *self)
{
    if (ctx->stored) {
        if (!slots[F_SEQ].item)
            return event_fail (ctx->error, ctx->error_size, "seq: missing");
        if (!cJSON_IsNumber (slots[F_SEQ].item) ||
            !s_raw_int (slots[F_SEQ].raw, 1, EVENT_SEQ_MAX, &self->seq))
            return event_fail (ctx->error, ctx->error_size,
                               "seq: must be an integer between 1 and 2^53-1");
    } else if (slots[F_SEQ].item || slots[F_TS].item)
        return event_fail (ctx->error, ctx->error_size,
                           "%s: not allowed in a proposed event (the stream assigns it)",
                           slots[F_SEQ].item ? "seq" : "ts");
    if (s_get_id (ctx, &slots[F_ID], "id", self->id, EVENT_ID_BYTES_MAX))
        return -1;
    if (!slots[F_TYPE].item)
        return event_fail (ctx->error, ctx->error_size, "type: missing");
    static const char type_rule[] =
        "must be deposited, withdrawn, transferred, account_opened, account_updated, "
        "transfer_pending, transfer_posted, transfer_voided or transfer_expired";
    if (s_get_string (ctx, &slots[F_TYPE], "type", self->type_name, EVENT_TYPE_BYTES_MAX,
                      type_rule))
        return -1;
    self->type = event_type_from_name (self->type_name);
    if (!event_id_is_valid (self->type_name, strlen (self->type_name)) ||
        (!ctx->stored && self->type == EVENT_TYPE_UNKNOWN))
        return event_fail (ctx->error, ctx->error_size, "type: %s", type_rule);
    if (!slots[F_V].item)
        return event_fail (ctx->error, ctx->error_size, "v: missing");
    int64_t v_max = ctx->stored ? 1000000 : EVENT_SCHEMA_VERSION;
    int64_t v;
    if (!cJSON_IsNumber (slots[F_V].item) || !s_raw_int (slots[F_V].raw, 1, v_max, &v))
        return event_fail (ctx->error, ctx->error_size,
                           "v: must be an integer between 1 and %lld", (long long)v_max);
    self->v = (int)v;
    if (ctx->stored) {
        static const char ts_rule[] = "must be RFC 3339 UTC with milliseconds "
                                      "(YYYY-MM-DDTHH:MM:SS.mmmZ)";
        if (!slots[F_TS].item)
            return event_fail (ctx->error, ctx->error_size, "ts: missing");
        if (!cJSON_IsString (slots[F_TS].item) ||
            strlen (slots[F_TS].item->valuestring) != EVENT_TS_BYTES ||
            event_ts_parse (slots[F_TS].item->valuestring, &self->ts_ms))
            return event_fail (ctx->error, ctx->error_size, "ts: %s", ts_rule);
        char canonical[EVENT_TS_BYTES + 1];
        event_ts_format (self->ts_ms, canonical);
        if (strcmp (canonical, slots[F_TS].item->valuestring) != 0)
            return event_fail (ctx->error, ctx->error_size, "ts: %s", ts_rule);
    }
    return 0;
}

static int s_parse_meta (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    static const char rule[] = "must be a non-empty string of at most 256 bytes of "
                               "valid UTF-8 without NUL";
    if (!cJSON_IsObject (slot->item))
        return event_fail (ctx->error, ctx->error_size,
                           "meta: must be an object with correlation_id, request_id, "
                           "reference or principal");
    span_t spans[EVENT_FIELDS_MAX];
    size_t count = s_raw_members (slot->raw.text, spans, EVENT_FIELDS_MAX);
    if (count > 4 || (int)count != cJSON_GetArraySize (slot->item))
        return event_fail (ctx->error, ctx->error_size, "meta: at most 4 fields");
    size_t index = 0;
    for (const cJSON *child = slot->item->child; child; child = child->next, index++) {
        bool principal = strcmp (child->string, "principal") == 0;
        char *out = strcmp (child->string, "correlation_id") == 0 ? self->correlation_id
                    : strcmp (child->string, "request_id") == 0   ? self->request_id
                    : strcmp (child->string, "reference") == 0    ? self->reference
                    : principal                                   ? self->principal
                                                                  : NULL;
        if (!out)
            return event_fail (ctx->error, ctx->error_size, "meta.%.64s: unknown field",
                               child->string);
        if (out[0])
            return event_fail (ctx->error, ctx->error_size, "meta.%s: duplicate field",
                               child->string);
        char name[32];
        snprintf (name, sizeof name, "meta.%s", child->string);
        slot_t member = {child, spans[index]};
        if (principal) {
            static const char principal_rule[] =
                "must be a string matching ^[a-z][a-z0-9_.-]{0,63}$";
            if (s_get_string (ctx, &member, name, out, EVENT_PRINCIPAL_BYTES_MAX,
                              principal_rule))
                return -1;
            if (!event_principal_is_valid (out, strlen (out)))
                return event_fail (ctx->error, ctx->error_size, "%s: %s", name,
                                   principal_rule);
        } else if (s_get_string (ctx, &member, name, out, EVENT_META_VALUE_BYTES_MAX,
                                 rule))
            return -1;
    }
    return 0;
}

static int s_parse_expect (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    span_t spans[EVENT_EXPECT_MAX + 1];
    size_t count = cJSON_IsObject (slot->item)
                       ? s_raw_members (slot->raw.text, spans, EVENT_EXPECT_MAX + 1)
                       : 0;
    if (!cJSON_IsObject (slot->item) || count > EVENT_EXPECT_MAX ||
        (int)count != cJSON_GetArraySize (slot->item))
        return event_fail (ctx->error, ctx->error_size,
                           "expect: must be an object of at most %d accounts to versions",
                           EVENT_EXPECT_MAX);
    size_t index = 0;
    for (const cJSON *child = slot->item->child; child; child = child->next, index++) {
        const char *account = child->string;
        if (!event_touches (self, account))
            return event_fail (ctx->error, ctx->error_size,
                               "expect.%.64s: not an account of this event", account);
        for (size_t k = 0; k < index; k++)
            if (strcmp (self->expect[k].account, account) == 0)
                return event_fail (ctx->error, ctx->error_size,
                                   "expect.%s: duplicate field", account);
        event_expect_t *expect = &self->expect[index];
        if (!cJSON_IsNumber (child) ||
            !s_raw_int (spans[index], 0, EVENT_VERSION_MAX, &expect->version))
            return event_fail (ctx->error, ctx->error_size,
                               "expect.%s: must be an integer version >= 0", account);
        memcpy (expect->account, account, strlen (account) + 1);
        self->expect_count = index + 1;
    }
    return 0;
}

static int s_parse_amount (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    if (!slot->item)
        return event_fail (ctx->error, ctx->error_size, "amount: missing");
    if (!cJSON_IsNumber (slot->item) ||
        !s_raw_int (slot->raw, 1, EVENT_AMOUNT_MAX, &self->amount))
        return event_fail (ctx->error, ctx->error_size,
                           "amount: must be an integer between 1 and 10^15");
    return 0;
}

static int s_parse_currency (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    static const char rule[] = "must be a string matching ^[A-Z][A-Z0-9]{2,11}$";
    if (!slot->item)
        return event_fail (ctx->error, ctx->error_size, "currency: missing");
    if (s_get_string (ctx, slot, "currency", self->currency, EVENT_CURRENCY_BYTES_MAX,
                      rule) ||
        !event_currency_is_valid (self->currency, strlen (self->currency)))
        return event_fail (ctx->error, ctx->error_size, "currency: %s", rule);
    return 0;
}

static int s_parse_limit (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    self->has_limit = true;
    if (cJSON_IsNull (slot->item)) {
        self->overdraft_limit = EVENT_LIMIT_UNLIMITED;
        return 0;
    }
    if (!cJSON_IsNumber (slot->item) ||
        !s_raw_int (slot->raw, 0, EVENT_LIMIT_MAX, &self->overdraft_limit))
        return event_fail (
            ctx->error, ctx->error_size,
            "overdraft_limit: must be null or an integer between 0 and 10^18");
    return 0;
}

static int s_parse_metadata (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    //  cJSON cuts strings at \u0000: refused from the source, as in meta.
    span_t spans[EVENT_METADATA_KEYS_MAX];
    size_t count = s_raw_members (slot->raw.text, spans, EVENT_METADATA_KEYS_MAX);
    for (size_t i = 0; i < count && i < EVENT_METADATA_KEYS_MAX; i++)
        if (*spans[i].text == '"' && !s_raw_string_is_clean (spans[i]))
            return event_fail (ctx->error, ctx->error_size,
                               "metadata: values must be valid UTF-8 without NUL");
    int bytes =
        event_metadata_format (slot->item, self->metadata, ctx->error, ctx->error_size);
    if (bytes < 0)
        return -1;
    self->metadata_bytes = (size_t)bytes;
    return 0;
}

//  The fields of account_opened and account_updated after account.
static int s_parse_account_body (parse_ctx_t *ctx, slot_t slots[F_COUNT], event_t *self)
{
    if (self->type == EVENT_ACCOUNT_OPENED) {
        if (s_parse_currency (ctx, &slots[F_CURRENCY], self))
            return -1;
        if (!slots[F_LIMIT].item)
            return event_fail (ctx->error, ctx->error_size, "overdraft_limit: missing");
    } else if (!slots[F_LIMIT].item && !slots[F_METADATA].item)
        return event_fail (ctx->error, ctx->error_size,
                           "account_updated: needs overdraft_limit or metadata");
    if (slots[F_LIMIT].item && s_parse_limit (ctx, &slots[F_LIMIT], self))
        return -1;
    if (slots[F_METADATA].item && s_parse_metadata (ctx, &slots[F_METADATA], self))
        return -1;
    return 0;
}

//  A hold's timeout_at: canonical RFC 3339 UTC with milliseconds, as ts.
static int s_parse_timeout_at (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    static const char rule[] = "must be RFC 3339 UTC with milliseconds "
                               "(YYYY-MM-DDTHH:MM:SS.mmmZ)";
    const char *text = cJSON_IsString (slot->item) ? slot->item->valuestring : NULL;
    if (!text || strlen (text) != EVENT_TS_BYTES ||
        event_ts_parse (text, &self->timeout_at_ms) || self->timeout_at_ms <= 0)
        return event_fail (ctx->error, ctx->error_size, "timeout_at: %s", rule);
    char canonical[EVENT_TS_BYTES + 1];
    event_ts_format (self->timeout_at_ms, canonical);
    if (strcmp (canonical, text) != 0)
        return event_fail (ctx->error, ctx->error_size, "timeout_at: %s", rule);
    return 0;
}

//  The fields of a known type, after the common ones.
static int s_parse_body (parse_ctx_t *ctx, slot_t slots[F_COUNT], const char *unknown,
                         event_t *self)
{
    bool transfer = event_type_has_parties (self->type);
    bool money = event_type_moves_money (self->type);
    bool resolves = event_type_resolves_hold (self->type);
    bool allowed[F_COUNT] = {
        [F_SEQ] = true,
        [F_ID] = true,
        [F_TYPE] = true,
        [F_V] = true,
        [F_TS] = true,
        [F_ACCOUNT] = !transfer,
        [F_FROM] = transfer,
        [F_TO] = transfer,
        [F_AMOUNT] = money,
        [F_META] = true,
        [F_EXPECT] = !ctx->stored,
        [F_CURRENCY] = self->type == EVENT_ACCOUNT_OPENED || (money && self->v >= 2),
        [F_LIMIT] = !money,
        [F_METADATA] = !money,
        [F_PENDING_ID] = resolves,
        [F_TIMEOUT_AT] = self->type == EVENT_TRANSFER_PENDING,
    };
    for (int field = 0; field < F_COUNT; field++)
        if (slots[field].item && !allowed[field])
            return event_fail (ctx->error, ctx->error_size, "%s: not allowed in a %s %s",
                               s_field_names[field], self->type_name,
                               ctx->stored ? "stored event" : "event");
    if (unknown)
        return event_fail (ctx->error, ctx->error_size, "%.64s: unknown field", unknown);
    if (resolves && s_get_id (ctx, &slots[F_PENDING_ID], "pending_id", self->pending_id,
                              EVENT_ID_BYTES_MAX))
        return -1;
    if (slots[F_TIMEOUT_AT].item && s_parse_timeout_at (ctx, &slots[F_TIMEOUT_AT], self))
        return -1;
    if (transfer) {
        if (s_get_id (ctx, &slots[F_FROM], "from", self->from, EVENT_ACCOUNT_BYTES_MAX) ||
            s_get_id (ctx, &slots[F_TO], "to", self->to, EVENT_ACCOUNT_BYTES_MAX))
            return -1;
        if (strcmp (self->from, self->to) == 0)
            return event_fail (ctx->error, ctx->error_size, "to: must differ from from");
    } else if (s_get_id (ctx, &slots[F_ACCOUNT], "account", self->account,
                         EVENT_ACCOUNT_BYTES_MAX))
        return -1;
    if (!money) {
        if (s_parse_account_body (ctx, slots, self))
            return -1;
    } else if (s_parse_amount (ctx, &slots[F_AMOUNT], self) ||
               (self->v >= 2 && s_parse_currency (ctx, &slots[F_CURRENCY], self)))
        return -1;
    if (slots[F_META].item && s_parse_meta (ctx, &slots[F_META], self))
        return -1;
    if (slots[F_EXPECT].item && s_parse_expect (ctx, &slots[F_EXPECT], self))
        return -1;
    return 0;
}

static int s_parse_json (parse_ctx_t *ctx, const char *json, size_t bytes, event_t *self)
{
    if (bytes > EVENT_LINE_BYTES_MAX)
        return event_fail (ctx->error, ctx->error_size, "event: longer than %d bytes",
                           EVENT_LINE_BYTES_MAX);
    if (memchr (json, '\0', bytes))
        return event_fail (ctx->error, ctx->error_size, "event: contains a NUL byte");
    //  A NUL-terminated copy lets the raw walkers rely on the terminator.
    char text[EVENT_LINE_BYTES_MAX + 1];
    memcpy (text, json, bytes);
    text[bytes] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts (text, &end, false);
    if (!root || *s_skip_ws (end) != '\0') {
        cJSON_Delete (root);
        return event_fail (ctx->error, ctx->error_size, "event: not valid JSON");
    }
    int rc = -1;
    slot_t slots[F_COUNT] = {{0}};
    const char *unknown = NULL;
    if (!cJSON_IsObject (root)) {
        event_fail (ctx->error, ctx->error_size, "event: must be a JSON object");
        goto done;
    }
    if (s_collect (ctx, root, s_skip_ws (text), slots, &unknown) ||
        s_parse_common (ctx, slots, self))
        goto done;
    if (self->type == EVENT_TYPE_UNKNOWN || self->v > EVENT_SCHEMA_VERSION) {
        //  Stored events only: readers skip and count what they do not know.
        self->type = EVENT_TYPE_UNKNOWN;
        rc = 0;
        goto done;
    }
    if (s_parse_body (ctx, slots, unknown, self) == 0 &&
        event_upcast (self, ctx->error, ctx->error_size) == 0)
        rc = 0;
done:
    cJSON_Delete (root);
    return rc;
}

int event_parse_reference (const char *json, size_t bytes, bool stored, event_t *self,
                           char *error, size_t error_size)
{
    parse_ctx_t ctx = {stored, error, error_size};
    return s_parse_json (&ctx, json, bytes, self);
}

int event_parse_stored (const char *line, size_t bytes, event_t *self, char *error,
                        size_t error_size)
{
    assert (line && self);
    event_id_chars_init ();
    if (event_fast_parse_stored (line, bytes, self))
        return 0;
    event_init (self);
    parse_ctx_t ctx = {true, error, error_size};
    return s_parse_json (&ctx, line, bytes, self);
}

//  A type this version does not know (a newer writer's): its fields are
//  not known here, but its form is: JSON's minimal one (what cJSON's
//  unformatted printer gives back: no spaces, keys as given, the same
//  escapes as ours), beginning with the common fields in canonical form.
static int s_unknown_is_canonical (const char *line, size_t bytes, const event_t *self,
                                   char *error, size_t error_size)
{
    char head[EVENT_LINE_BYTES_MAX];
    size_t head_bytes = event_format_head (self, head, sizeof head);
    if (head_bytes == 0 || bytes <= head_bytes || memcmp (line, head, head_bytes) != 0 ||
        (line[head_bytes] != ',' && line[head_bytes] != '}'))
        return event_fail (error, error_size,
                           "event: not in canonical form (seq, id, type, v, ts first)");
    char text[EVENT_LINE_BYTES_MAX + 1];
    memcpy (text, line, bytes);
    text[bytes] = '\0';
    cJSON *root = cJSON_ParseWithLength (text, bytes);
    char *printed = root ? cJSON_PrintUnformatted (root) : NULL;
    bool same =
        printed && strlen (printed) == bytes && memcmp (printed, line, bytes) == 0;
    cJSON_free (printed);
    cJSON_Delete (root);
    if (!same)
        return event_fail (error, error_size,
                           "event: %s (v %d) is not in JSON's minimal form",
                           self->type_name, self->v);
    return 0;
}

int event_parse_canonical (const char *line, size_t bytes, event_t *self, char *error,
                           size_t error_size)
{
    assert (line && self);
    event_id_chars_init ();
    if (event_fast_parse_stored (line, bytes, self))
        return 0; // the fast path reads exact canonical lines only
    event_init (self);
    parse_ctx_t ctx = {true, error, error_size};
    if (s_parse_json (&ctx, line, bytes, self))
        return -1;
    if (self->type == EVENT_TYPE_UNKNOWN)
        return s_unknown_is_canonical (line, bytes, self, error, error_size);
    char canonical[EVENT_LINE_BYTES_MAX];
    size_t canonical_bytes = event_format_stored (self, canonical, sizeof canonical);
    size_t at = 0;
    while (at < bytes && at < canonical_bytes && line[at] == canonical[at])
        at++;
    if (at < bytes || at < canonical_bytes)
        return event_fail (
            error, error_size,
            "event: not in canonical form (differs from it at byte %zu: no "
            "spaces, keys in order, minimal escapes)",
            at);
    return 0;
}

int event_parse_proposed (const char *json, size_t bytes, event_t *self, char *error,
                          size_t error_size)
{
    return event_parse_proposed_splice (json, bytes, self, NULL, error, error_size);
}

int event_parse_proposed_splice (const char *json, size_t bytes, event_t *self,
                                 event_splice_t *splice, char *error, size_t error_size)
{
    assert (json && self);
    event_id_chars_init ();
    if (splice)
        *splice = (event_splice_t){0, 0};
    if (event_fast_parse_proposed (json, bytes, self, splice))
        return 0;
    event_init (self);
    parse_ctx_t ctx = {false, error, error_size};
    return s_parse_json (&ctx, json, bytes, self);
}
