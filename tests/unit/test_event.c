/*  test_event — claims about the event codec.

    event.c is included whole so the tests can drive the fast path and the
    reference (cJSON) parser separately and compare them; the library's
    copy of event.o is then never pulled in by the linker.
*/
#include "event.c"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define streq(a, b) (strcmp ((a), (b)) == 0)

static const char *s_deposit =
    "{\"seq\":17,\"id\":\"0b7f3c1e-9d2a-4f6b-8c1d-2e3f4a5b6c7d\","
    "\"type\":\"deposited\",\"v\":1,\"ts\":"
    "\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
    "\"amount\":1250}";
static const char *s_transfer =
    "{\"seq\":19,\"id\":\"d4\",\"type\":\"transferred\",\"v\":1,"
    "\"ts\":\"2026-11-22T07:28:48.000Z\",\"from\":\"alice\","
    "\"to\":\"bob\",\"amount\":300,\"meta\":{\"correlation_id\":"
    "\"req-42\",\"reference\":\"rent \\\"May\\\"\\n\\u0001 "
    "caf\xc3\xa9\"}}";

static int s_stored (const char *line, event_t *event, char *error)
{
    return event_parse_stored (line, strlen (line), event, error, 256);
}

static int s_proposed (const char *json, event_t *event, char *error)
{
    return event_parse_proposed (json, strlen (json), event, error, 256);
}

//  Reference parser only, as event_parse_stored would call it.
static int s_reference_stored (const char *line, size_t bytes, event_t *event,
                               char *error)
{
    event_init (event);
    parse_ctx_t ctx = {true, error, 256};
    return s_parse_json (&ctx, line, bytes, event);
}

//  The fast paths write into an event as the caller left it (no event_init):
//  garbage first, so they are seen not to depend on a cleared one.
static bool s_fast (const char *line, size_t bytes, event_t *event)
{
    memset (event, 0xa5, sizeof *event);
    return s_fast_stored (line, bytes, event);
}

static int s_reference_proposed (const char *json, size_t bytes, event_t *event,
                                 char *error)
{
    event_init (event);
    parse_ctx_t ctx = {false, error, 256};
    return s_parse_json (&ctx, json, bytes, event);
}

static bool s_fast_json (const char *json, size_t bytes, event_t *event)
{
    memset (event, 0xa5, sizeof *event);
    return s_fast_proposed (json, bytes, event, NULL);
}

//  The stored line spliced from a proposed text is the formatted one, byte
//  for byte (also when the text was not canonical and splice says so).
static bool s_splice_equals_format (const char *json, size_t bytes, int64_t seq,
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
static bool s_spliced (const char *json, size_t bytes)
{
    event_t event;
    event_splice_t splice;
    return event_parse_proposed_splice (json, bytes, &event, &splice, NULL, 0) == 0 &&
           splice.body > 0 && splice.body <= splice.body_end && splice.body_end < bytes;
}

static bool s_same (const event_t *a, const event_t *b)
{
    const char *field = event_difference (a, b);
    if (field)
        fprintf (stderr, "    events differ in %s\n", field);
    return field == NULL;
}

static void test_stored_line_round_trips_byte_for_byte (void)
{
    const char *lines[] = {s_deposit, s_transfer};
    for (size_t i = 0; i < 2; i++) {
        event_t event;
        char error[256] = "";
        CHECK (s_stored (lines[i], &event, error) == 0);
        char buffer[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&event, buffer, sizeof buffer);
        CHECK (bytes == strlen (lines[i]));
        CHECK (memcmp (buffer, lines[i], bytes) == 0);
    }
}

static void test_stored_fields_are_read (void)
{
    event_t event;
    char error[256] = "";
    CHECK (s_stored (s_transfer, &event, error) == 0);
    CHECK (event.seq == 19 && event.type == EVENT_TRANSFERRED && event.v == 1);
    CHECK (strcmp (event.type_name, "transferred") == 0);
    CHECK (strcmp (event.from, "alice") == 0 && strcmp (event.to, "bob") == 0);
    CHECK (event.amount == 300 && event.account[0] == '\0');
    CHECK (strcmp (event.correlation_id, "req-42") == 0 && event.request_id[0] == '\0');
    CHECK (strcmp (event.reference, "rent \"May\"\n\x01 caf\xc3\xa9") == 0);
    CHECK (event.ts_ms == 1795332528000LL);
}

static void test_proposed_round_trips_with_expect (void)
{
    const char *json = "{\"id\":\"k1\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\","
                       "\"to\":\"b\",\"amount\":5,\"meta\":{\"request_id\":\"r\"},"
                       "\"expect\":{\"b\":0,\"a\":4}}";
    event_t event;
    char error[256] = "";
    CHECK (s_proposed (json, &event, error) == 0);
    CHECK (event.seq == 0 && event.ts_ms == 0 && event.expect_count == 2);
    CHECK (strcmp (event.expect[0].account, "b") == 0 && event.expect[0].version == 0);
    CHECK (strcmp (event.expect[1].account, "a") == 0 && event.expect[1].version == 4);
    char buffer[EVENT_LINE_BYTES_MAX];
    size_t bytes = event_format_proposed (&event, buffer, sizeof buffer);
    CHECK (bytes == strlen (json) && memcmp (buffer, json, bytes) == 0);
}

static void test_format_reports_a_small_buffer (void)
{
    event_t event;
    char error[256] = "";
    CHECK (s_stored (s_deposit, &event, error) == 0);
    char buffer[EVENT_LINE_BYTES_MAX];
    size_t bytes = strlen (s_deposit);
    CHECK (event_format_stored (&event, buffer, bytes) == 0);
    CHECK (event_format_stored (&event, buffer, bytes + 1) == bytes);
}

static void test_accepts_any_key_order_and_whitespace (void)
{
    const char *json = " { \"amount\" : 1250 , \"account\":\"alice\",\"ts\":"
                       "\"2026-11-22T07:28:47.123Z\",\"v\":1,\"type\":\"deposited\","
                       "\"id\":\"0b7f3c1e-9d2a-4f6b-8c1d-2e3f4a5b6c7d\",\"seq\":17}\r\n";
    event_t event, reference;
    char error[256] = "";
    CHECK (s_stored (json, &event, error) == 0);
    CHECK (s_stored (s_deposit, &reference, error) == 0);
    CHECK (s_same (&event, &reference));
}

typedef struct {
    const char *json;
    const char *reason; // the error must start with this
} bad_input_t;

#define HEAD                                                                             \
    "{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-01-01T00:00:" \
    "00.000Z\","
#define THEAD                                                                            \
    "{\"seq\":1,\"id\":\"e1\",\"type\":\"transferred\",\"v\":1,\"ts\":\"2026-01-01T00:"  \
    "00:00.000Z\","
#define META(x) HEAD "\"account\":\"a\",\"amount\":1,\"meta\":" x "}"

static const bad_input_t s_bad_stored[] = {
    {"", "event: not valid JSON"},
    {"{\"seq\":1", "event: not valid JSON"},
    {"[1,2]", "event: must be a JSON object"},
    {HEAD "\"account\":\"a\",\"amount\":1} x", "event: not valid JSON"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-01-01T00:00:00.000Z\","
     "\"account\":\"a\",\"amount\":1}",
     "seq: missing"},
    {"{\"seq\":0,\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":-3,\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":1.0,\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":9007199254740992,\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":\"1\",\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":01,\"id\":\"e1\"}", "seq: must be an integer"},
    {"{\"seq\":1,\"seq\":2}", "seq: duplicate field"},
    {"{\"seq\":1,\"id\":\"-bad\"}", "id: must be a string matching"},
    {"{\"seq\":1,\"id\":\"a b\"}", "id: must be a string matching"},
    {"{\"seq\":1,\"id\":7}", "id: must be a string matching"},
    {"{\"seq\":1,\"id\":"
     "\"x0123456789012345678901234567890123456789012345678901234567890123\"}",
     "id: must be a string matching"},
    {"{\"seq\":1}", "id: missing"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"\"}", "type: must be"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":null}", "type: must be"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\"}", "v: missing"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":0}", "v: must be an integer"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":true}",
     "v: must be an integer"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1}", "ts: missing"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-01-01T00:00:"
     "00Z\"}",
     "ts: must be RFC 3339"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,"
     "\"ts\":\"2026-01-01T01:00:00.000+01:00\"}",
     "ts: must be RFC 3339"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-02-30T00:00:"
     "00.000Z\"}",
     "ts: must be RFC 3339"},
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"ts\":\"9999-12-31T23:59:"
     "60.000Z\"}",
     "ts: must be RFC 3339"},
    {HEAD "\"amount\":1}", "account: missing"},
    {HEAD "\"account\":\"a\"}", "amount: missing"},
    {HEAD "\"account\":\"a\",\"amount\":0}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":-5}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":1.5}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":1e3}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":100.0}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":\"5\"}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":true}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":null}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":1000000000000001}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":9007199254740993}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":123456789012345678901234567890}",
     "amount: must be an integer between 1 and 10^15"},
    {HEAD "\"account\":\"a\",\"amount\":1,\"color\":\"red\"}", "color: unknown field"},
    {HEAD "\"account\":\"a\",\"amount\":1,\"from\":\"b\"}",
     "from: not allowed in a deposited"},
    {HEAD "\"account\":\"a\",\"amount\":1,\"expect\":{}}", "expect: not allowed"},
    {HEAD "\"account\":\"\",\"amount\":1}", "account: must be a string matching"},
    {HEAD "\"account\":\"al\\u0000ice\",\"amount\":1}",
     "account: must be a string matching"},
    {THEAD "\"from\":\"a\",\"to\":\"a\",\"amount\":1}", "to: must differ from from"},
    {THEAD "\"from\":\"a\",\"amount\":1}", "to: missing"},
    {THEAD "\"from\":\"a\",\"to\":\"b\",\"account\":\"c\",\"amount\":1}",
     "account: not allowed"},
    {META ("[]"), "meta: must be an object"},
    {META ("{\"note\":\"x\"}"), "meta.note: unknown field"},
    {META ("{\"reference\":\"\"}"), "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":5}"), "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"a\\u0000b\"}"),
     "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"bad \xc3\x28 utf8\"}"),
     "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"overlong \xc0\xaf\"}"),
     "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"surrogate \xed\xa0\x80\"}"),
     "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"raw\ttab\"}"), "meta.reference: must be a non-empty string"},
    {META ("{\"reference\":\"a\",\"reference\":\"b\"}"),
     "meta.reference: duplicate field"},
};

static void test_bad_stored_inputs_are_rejected_naming_the_field (void)
{
    size_t count = sizeof s_bad_stored / sizeof s_bad_stored[0];
    CHECK (count >= 30);
    for (size_t i = 0; i < count; i++) {
        event_t event;
        char error[256] = "";
        int rc = s_stored (s_bad_stored[i].json, &event, error);
        if (rc != -1 ||
            strncmp (error, s_bad_stored[i].reason, strlen (s_bad_stored[i].reason))) {
            fprintf (stderr, "    input %zu: %s\n    got rc %d, error \"%s\"\n", i,
                     s_bad_stored[i].json, rc, error);
            CHECK (false);
        }
        CHECK (strchr (error, '\n') == NULL);
    }
}

static void test_long_meta_value_is_rejected (void)
{
    char line[1024];
    char value[EVENT_META_VALUE_BYTES_MAX + 2];
    memset (value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    snprintf (line, sizeof line, META ("{\"reference\":\"%s\"}"), value);
    event_t event;
    char error[256] = "";
    CHECK (s_stored (line, &event, error) == -1);
    CHECK (strncmp (error, "meta.reference:", 15) == 0);
    value[EVENT_META_VALUE_BYTES_MAX] = '\0'; // exactly the limit
    snprintf (line, sizeof line, META ("{\"reference\":\"%s\"}"), value);
    CHECK (s_stored (line, &event, error) == 0);
}

static const bad_input_t s_bad_proposed[] = {
    {"{\"seq\":1,\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
     "\"amount\":1}",
     "seq: not allowed in a proposed event"},
    {"{\"id\":\"e1\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"type\":\"deposited\",\"v\":1}",
     "ts: not allowed in a proposed event"},
    {"{\"id\":\"e1\",\"type\":\"refunded\",\"v\":1,\"account\":\"a\",\"amount\":1}",
     "type: must be deposited, withdrawn, transferred, account_opened or "
     "account_updated"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":3,\"account\":\"a\",\"amount\":1}",
     "v: must be an integer between 1 and 2"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":2,\"account\":\"a\",\"amount\":1}",
     "currency: missing"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":2,\"account\":\"a\",\"amount\":1,"
     "\"currency\":\"eur\"}",
     "currency: must be a string matching"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"currency\":\"EUR\"}",
     "currency: not allowed in a deposited event"},
    {"{\"id\":\"e1\",\"type\":\"account_opened\",\"v\":1,\"account\":\"a\","
     "\"currency\":\"EUR\",\"overdraft_limit\":0}",
     "v: account_opened needs version 2"},
    {"{\"id\":\"e1\",\"type\":\"account_opened\",\"v\":2,\"account\":\"a\","
     "\"currency\":\"EUR\"}",
     "overdraft_limit: missing"},
    {"{\"id\":\"e1\",\"type\":\"account_opened\",\"v\":2,\"account\":\"a\","
     "\"currency\":\"EUR\",\"overdraft_limit\":-1}",
     "overdraft_limit: must be null or an integer"},
    {"{\"id\":\"e1\",\"type\":\"account_opened\",\"v\":2,\"account\":\"a\","
     "\"currency\":\"EUR\",\"overdraft_limit\":0,\"amount\":5}",
     "amount: not allowed in a account_opened event"},
    {"{\"id\":\"e1\",\"type\":\"account_updated\",\"v\":2,\"account\":\"a\"}",
     "account_updated: needs overdraft_limit or metadata"},
    {"{\"id\":\"e1\",\"type\":\"account_updated\",\"v\":2,\"account\":\"a\","
     "\"metadata\":{\"Bad\":\"x\"}}",
     "metadata.Bad: keys must match"},
    {"{\"id\":\"e1\",\"type\":\"account_updated\",\"v\":2,\"account\":\"a\","
     "\"metadata\":{\"a\":1}}",
     "metadata.a: must be a string"},
    {"{\"id\":\"e1\",\"type\":\"account_updated\",\"v\":2,\"account\":\"a\","
     "\"metadata\":{\"a\":\"x\",\"a\":\"y\"}}",
     "metadata.a: duplicate key"},
    {"{\"id\":\"e1\",\"type\":\"account_updated\",\"v\":2,\"account\":\"a\","
     "\"metadata\":{\"a\":\"x\\u0000\"}}",
     "metadata: values must be valid UTF-8 without NUL"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,\"x\":"
     "1}",
     "x: unknown field"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"expect\":{\"b\":1}}",
     "expect.b: not an account of this event"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"expect\":{\"a\":-1}}",
     "expect.a: must be an integer version >= 0"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"expect\":{\"a\":1.5}}",
     "expect.a: must be an integer version >= 0"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"expect\":{\"a\":1,\"a\":2}}",
     "expect.a: duplicate field"},
    {"{\"id\":\"e1\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
     "\"amount\":1,"
     "\"expect\":{\"a\":1,\"b\":2,\"c\":3}}",
     "expect: must be an object of at most 2"},
    {"{\"id\":\"e1\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1,"
     "\"expect\":[]}",
     "expect: must be an object"},
    {"{\"type\":\"deposited\",\"v\":1,\"account\":\"a\",\"amount\":1}", "id: missing"},
};

static void test_bad_proposed_inputs_are_rejected_naming_the_field (void)
{
    for (size_t i = 0; i < sizeof s_bad_proposed / sizeof s_bad_proposed[0]; i++) {
        event_t event;
        char error[256] = "";
        int rc = s_proposed (s_bad_proposed[i].json, &event, error);
        if (rc != -1 || strncmp (error, s_bad_proposed[i].reason,
                                 strlen (s_bad_proposed[i].reason))) {
            fprintf (stderr, "    input %zu: %s\n    got rc %d, error \"%s\"\n", i,
                     s_bad_proposed[i].json, rc, error);
            CHECK (false);
        }
    }
}

static void test_oversized_input_is_rejected (void)
{
    size_t bytes = EVENT_LINE_BYTES_MAX + 10;
    char *json = malloc (bytes + 1);
    CHECK (json);
    memset (json, ' ', bytes);
    json[bytes] = '\0';
    event_t event;
    char error[256] = "";
    int rc = event_parse_proposed (json, bytes, &event, error, sizeof error);
    free (json);
    CHECK (rc == -1 && strncmp (error, "event: longer than", 18) == 0);
}

static void test_unknown_type_or_newer_version_parses_as_unknown (void)
{
    const char *lines[] = {
        "{\"seq\":5,\"id\":\"e5\",\"type\":\"frozen\",\"v\":1,\"ts\":\"2026-01-01T00:00:"
        "00.000Z\","
        "\"account\":\"a\",\"whatever\":[1,2]}",
        "{\"seq\":5,\"id\":\"e5\",\"type\":\"deposited\",\"v\":3,\"ts\":\"2026-01-01T00:"
        "00:00.000Z\","
        "\"account\":{\"new\":\"shape\"}}",
    };
    for (size_t i = 0; i < 2; i++) {
        event_t event;
        char error[256] = "";
        CHECK (s_stored (lines[i], &event, error) == 0);
        CHECK (event.type == EVENT_TYPE_UNKNOWN && event.seq == 5);
        CHECK (strcmp (event.id, "e5") == 0);
        char buffer[EVENT_LINE_BYTES_MAX];
        CHECK (event_format_stored (&event, buffer, sizeof buffer) == 0);
    }
    event_t event;
    char error[256] = "";
    CHECK (s_stored ("{\"seq\":5,\"id\":\"e5\",\"type\":\"frozen\",\"v\":1}", &event,
                     error) == -1);
    CHECK (strncmp (error, "ts: missing", 11) == 0);
}

static void test_ts_parse_and_format (void)
{
    int64_t ms;
    CHECK (event_ts_parse ("1970-01-01T00:00:00.000Z", &ms) == 0 && ms == 0);
    CHECK (event_ts_parse ("1970-01-01T00:00:00Z", &ms) == 0 && ms == 0);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.123Z", &ms) == 0 &&
           ms == 1795332527123LL);
    CHECK (event_ts_parse ("2026-11-22T08:28:47.1239999+01:00", &ms) == 0 &&
           ms == 1795332527123LL);
    CHECK (event_ts_parse ("2026-11-22t02:28:47.5-05:00", &ms) == 0 &&
           ms == 1795332527500LL);
    CHECK (event_ts_parse ("2024-02-29T00:00:00Z", &ms) == 0);
    CHECK (event_ts_parse ("2023-02-29T00:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-13-01T00:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T24:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.1234567890Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47Zjunk", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47+0100", &ms) == -1);
    CHECK (event_ts_parse ("9999-12-31T23:59:59.999Z", &ms) == 0 &&
           ms == EVENT_TS_MAX_MS);
    CHECK (event_ts_parse ("9999-12-31T23:59:60.999Z", &ms) == -1);
    CHECK (event_ts_parse ("0000-01-01T00:00:00.000+00:01", &ms) == -1);
    CHECK (event_ts_parse ("0000-01-01T00:00:00.000Z", &ms) == 0 &&
           ms == EVENT_TS_MIN_MS);
    char text[EVENT_TS_BYTES + 1];
    event_ts_format (1795332527123LL, text);
    CHECK (strcmp (text, "2026-11-22T07:28:47.123Z") == 0);
    event_ts_format (-1, text);
    CHECK (strcmp (text, "1969-12-31T23:59:59.999Z") == 0);
    srand (7);
    for (int i = 0; i < 100000; i++) {
        int64_t value = ((int64_t)rand () << 20 ^ rand ()) % 253402300800000LL;
        int64_t parsed, fast;
        event_ts_format (value, text);
        CHECK (event_ts_parse (text, &parsed) == 0 && parsed == value);
        CHECK (s_fast_ts_parse (text, &fast) && fast == value);
    }
}

//  --------------------------------------------------------------------------
//  Fast path against the reference parser

static void s_random_id (char *out, size_t max)
{
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
    size_t bytes = 1 + (size_t)rand () % max;
    out[0] = chars[rand () % 62];
    for (size_t i = 1; i < bytes; i++)
        out[i] = chars[rand () % (sizeof chars - 1)];
    out[bytes] = '\0';
}

//  Meta text mixing ASCII, escapes, controls and 2-4 byte UTF-8.
static void s_random_text (char *out)
{
    static const char *pieces[] = {"a",
                                   "Z",
                                   " ",
                                   "\"",
                                   "\\",
                                   "/",
                                   "\n",
                                   "\t",
                                   "\x01",
                                   "\x1f",
                                   "\x7f",
                                   "\xc3\xa9",
                                   "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80",
                                   "req-",
                                   "\r",
                                   "\b",
                                   "\f"};
    size_t bytes = 0;
    size_t target = 1 + (size_t)rand () % EVENT_META_VALUE_BYTES_MAX;
    while (bytes < target) {
        const char *piece = pieces[rand () % (sizeof pieces / sizeof pieces[0])];
        size_t piece_bytes = strlen (piece);
        if (bytes + piece_bytes > target)
            break;
        memcpy (out + bytes, piece, piece_bytes);
        bytes += piece_bytes;
    }
    if (bytes == 0)
        out[bytes++] = 'x';
    out[bytes] = '\0';
}

static int64_t s_random_range (int64_t max)
{
    uint64_t value =
        ((uint64_t)rand () << 42) ^ ((uint64_t)rand () << 21) ^ (uint64_t)rand ();
    return 1 + (int64_t)(value % (uint64_t)max);
}

static void s_random_event (event_t *event, int64_t seq)
{
    event_init (event);
    event->seq = seq;
    event->ts_ms = s_random_range (4102444800000LL);
    event->type = (event_type_t)(1 + rand () % 3);
    strcpy (event->type_name, event_type_name (event->type));
    s_random_id (event->id, rand () % 2 ? 36 : EVENT_ID_BYTES_MAX);
    if (event->type == EVENT_TRANSFERRED) {
        s_random_id (event->from, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
        do
            s_random_id (event->to, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
        while (strcmp (event->from, event->to) == 0);
    } else
        s_random_id (event->account, 1 + rand () % EVENT_ACCOUNT_BYTES_MAX);
    event->amount =
        rand () % 4 ? 1 + rand () % 100000 : s_random_range (EVENT_AMOUNT_MAX);
    if (rand () % 2)
        s_random_text (event->correlation_id);
    if (rand () % 3 == 0)
        s_random_text (event->request_id);
    if (rand () % 2)
        s_random_text (event->reference);
    if (rand () % 2) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
        size_t bytes = 1 + (size_t)rand () % EVENT_PRINCIPAL_BYTES_MAX;
        event->principal[0] = chars[rand () % 26];
        for (size_t i = 1; i < bytes; i++)
            event->principal[i] = chars[rand () % (sizeof chars - 1)];
        event->principal[bytes] = '\0';
    }
}

static void test_fast_path_equals_reference_on_random_events (void)
{
    srand (42);
    for (int i = 0; i < 50000; i++) {
        event_t original, fast, reference;
        s_random_event (&original,
                        s_random_range (rand () % 10 ? 1000000 : EVENT_SEQ_MAX));
        char line[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&original, line, sizeof line);
        CHECK (bytes > 0);
        char error[256] = "";
        CHECK (s_fast (line, bytes, &fast));
        int rc = s_reference_stored (line, bytes, &reference, error);
        if (rc != 0)
            fprintf (stderr, "    %s\n    %s\n", line, error);
        CHECK (rc == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_same (&fast, &original));
        char again[EVENT_LINE_BYTES_MAX];
        CHECK (event_format_stored (&fast, again, sizeof again) == bytes);
        CHECK (memcmp (again, line, bytes) == 0);
    }
}

//  A proposed event: no seq or ts, expect on some of its accounts.
static void s_random_proposed (event_t *event)
{
    s_random_event (event, 0);
    event->ts_ms = 0;
    const char *accounts[2] = {event->account, NULL};
    if (event->type == EVENT_TRANSFERRED) {
        accounts[0] = rand () % 2 ? event->from : event->to;
        accounts[1] = accounts[0] == event->from ? event->to : event->from;
    }
    size_t count = (size_t)rand () % (accounts[1] ? 3 : 2);
    for (size_t i = 0; i < count; i++) {
        strcpy (event->expect[i].account, accounts[i]);
        event->expect[i].version =
            rand () % 3 ? rand () % 1000 : s_random_range (EVENT_VERSION_MAX) - 1;
    }
    event->expect_count = count;
}

static void test_proposed_fast_path_equals_reference_on_random_events (void)
{
    srand (43);
    for (int i = 0; i < 50000; i++) {
        event_t original, fast, reference;
        s_random_proposed (&original);
        char json[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_proposed (&original, json, sizeof json);
        CHECK (bytes > 0);
        char error[256] = "";
        CHECK (s_fast_json (json, bytes, &fast));
        int rc = s_reference_proposed (json, bytes, &reference, error);
        if (rc != 0)
            fprintf (stderr, "    %s\n    %s\n", json, error);
        CHECK (rc == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_same (&fast, &original));
        char again[EVENT_LINE_BYTES_MAX];
        CHECK (event_format_proposed (&fast, again, sizeof again) == bytes);
        CHECK (memcmp (again, json, bytes) == 0);
        CHECK (s_spliced (json, bytes));
        CHECK (s_splice_equals_format (json, bytes, s_random_range (EVENT_SEQ_MAX),
                                       s_random_range (EVENT_TS_MAX_MS)));
    }
}

static void test_spliced_stored_line_equals_formatted_one (void)
{
    const char *canonical =
        "{\"id\":\"e\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
        "\"amount\":5,\"meta\":{\"reference\":\"x\\\"y\\u0001\"},\"expect\":{\"b\":0}}";
    CHECK (s_spliced (canonical, strlen (canonical)));
    CHECK (s_splice_equals_format (canonical, strlen (canonical), 1, 0));
    CHECK (s_splice_equals_format (canonical, strlen (canonical), EVENT_SEQ_MAX,
                                   EVENT_TS_MAX_MS));
    //  Not canonical: the line is formatted instead.
    const char *spaced = "{\"id\":\"e\", \"type\":\"deposited\",\"v\":1,"
                         "\"account\":\"a\",\"amount\":5}";
    CHECK (!s_spliced (spaced, strlen (spaced)));
    CHECK (s_splice_equals_format (spaced, strlen (spaced), 7, 1234));
    const char *reordered = "{\"type\":\"deposited\",\"id\":\"e\",\"v\":1,"
                            "\"account\":\"a\",\"amount\":5}";
    CHECK (!s_spliced (reordered, strlen (reordered)));
    CHECK (s_splice_equals_format (reordered, strlen (reordered), 7, 1234));
}

//  Whatever the proposed fast path accepts, the reference accepts identically.
static void test_proposed_fast_path_never_accepts_more_than_reference (void)
{
    srand (4321);
    static const char replacements[] = "0123456789\"\\{}:,. -aZu\x80\xc3\x01";
    int accepted_by_fast = 0;
    for (int i = 0; i < 200000; i++) {
        event_t original, fast, reference;
        s_random_proposed (&original);
        char json[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_proposed (&original, json, sizeof json);
        int mutations = 1 + rand () % 2;
        for (int m = 0; m < mutations; m++)
            json[rand () % bytes] = replacements[rand () % (sizeof replacements - 1)];
        if (rand () % 8 == 0)
            bytes -= 1 + (size_t)rand () % 8;
        char error[256];
        if (!s_fast_json (json, bytes, &fast))
            continue;
        accepted_by_fast++;
        CHECK (s_reference_proposed (json, bytes, &reference, error) == 0);
        CHECK (s_same (&fast, &reference));
        CHECK (s_splice_equals_format (json, bytes, 1 + rand () % 1000, 1));
    }
    CHECK (accepted_by_fast > 0);
}

static void test_proposed_expect_rules_hold_on_the_fast_path (void)
{
    const char *rejected[] = {
        //  an account the event does not touch
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"alice\","
        "\"amount\":5,\"expect\":{\"bob\":1}}",
        //  the same account twice
        "{\"id\":\"e\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
        "\"amount\":5,\"expect\":{\"a\":1,\"a\":2}}",
        //  three accounts
        "{\"id\":\"e\",\"type\":\"transferred\",\"v\":1,\"from\":\"a\",\"to\":\"b\","
        "\"amount\":5,\"expect\":{\"a\":1,\"b\":2,\"a\":3}}",
        //  a negative version, a leading zero
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5,\"expect\":{\"a\":-1}}",
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5,\"expect\":{\"a\":01}}",
        //  seq in a proposed event, v 2
        "{\"seq\":1,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
        "\"amount\":5}",
        "{\"id\":\"e\",\"type\":\"deposited\",\"v\":2,\"account\":\"a\","
        "\"amount\":5}",
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        event_t event;
        char error[256] = "";
        CHECK (!s_fast_proposed (rejected[i], strlen (rejected[i]), &event, NULL));
        CHECK (s_proposed (rejected[i], &event, error) == -1);
        CHECK (error[0] != '\0');
    }
    const char *zero = "{\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"account\":\"a\","
                       "\"amount\":5,\"expect\":{\"a\":0}}";
    event_t fast, reference;
    char error[256] = "";
    CHECK (s_fast_proposed (zero, strlen (zero), &fast, NULL));
    CHECK (s_reference_proposed (zero, strlen (zero), &reference, error) == 0);
    CHECK (s_same (&fast, &reference));
    CHECK (fast.expect_count == 1 && fast.expect[0].version == 0);
}

//  The hand-written formatter against gmtime_r and snprintf.
//  Strings are scanned a word at a time: every byte, at every offset of a
//  string longer than two words, escapes as it would one byte at a time,
//  and the canonical fast path reads it back (refusing lone high bytes,
//  which are not UTF-8).
static void test_every_byte_at_every_offset_escapes_and_reads_back (void)
{
    for (int byte = 1; byte < 256; byte++)
        for (size_t offset = 0; offset < 17; offset++) {
            char text[18];
            memset (text, 'a', 17);
            text[17] = '\0';
            text[offset] = (char)byte;
            char expected[32] = "\"";
            size_t bytes = 1;
            for (size_t at = 0; at < 17; at++) {
                unsigned char c = (unsigned char)text[at];
                const char *escape = c == '"'    ? "\\\""
                                     : c == '\\' ? "\\\\"
                                     : c == '\n' ? "\\n"
                                     : c == '\r' ? "\\r"
                                     : c == '\t' ? "\\t"
                                     : c == '\b' ? "\\b"
                                     : c == '\f' ? "\\f"
                                                 : NULL;
                if (escape)
                    bytes += (size_t)sprintf (expected + bytes, "%s", escape);
                else if (c < 0x20)
                    bytes += (size_t)sprintf (expected + bytes, "\\u%04x", c);
                else
                    expected[bytes++] = (char)c;
            }
            expected[bytes++] = '"';
            char line[64];
            writer_t w = {line, line + sizeof line - 1, false};
            s_put_string (&w, text);
            CHECK (s_finish (&w, line) == bytes && memcmp (line, expected, bytes) == 0);
            char read[EVENT_META_VALUE_BYTES_MAX + 1];
            cursor_t c = {line + 1, line + bytes};
            bool accepted = s_fast_string (&c, read);
            CHECK (accepted == (byte < 0x80));
            CHECK (!accepted || (strcmp (read, text) == 0 && c.p == line + bytes));
        }
}

//  The one integer printer prints what printf does, at both ends of int64.
static void test_format_int_equals_printf (void)
{
    const int64_t values[] = {
        0, 1, -1, 9, 10, -10, 1000000000000000LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char expected[32], got[EVENT_INT_BYTES_MAX + 1];
        snprintf (expected, sizeof expected, "%lld", (long long)values[i]);
        size_t bytes = event_format_int (got, values[i]);
        got[bytes] = 0;
        CHECK (bytes <= EVENT_INT_BYTES_MAX);
        CHECK (strcmp (got, expected) == 0);
    }
}

static void test_ts_format_equals_gmtime (void)
{
    srand (99);
    for (int i = 0; i < 200000; i++) {
        int64_t value = (((int64_t)rand () << 31) ^ rand ()) %
                            (EVENT_TS_MAX_MS - EVENT_TS_MIN_MS + 1) +
                        EVENT_TS_MIN_MS;
        if (i % 4 == 0) // around now, and day boundaries
            value = 1795332527123LL + (int64_t)(rand () % 400000) * 86400000 / 7 - i;
        char text[EVENT_TS_BYTES + 1], expected[96];
        event_ts_format (value, text);
        time_t seconds = (time_t)s_floor_div (value, 1000);
        struct tm tm;
        gmtime_r (&seconds, &tm);
        snprintf (expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, (int)(value - (int64_t)seconds * 1000));
        CHECK (strcmp (text, expected) == 0);
    }
}

//  Whatever the fast path accepts, the reference accepts identically.
static void test_fast_path_never_accepts_more_than_reference (void)
{
    srand (1234);
    static const char replacements[] = "0123456789\"\\{}:,. -aZu\x80\xc3\x01";
    int accepted_by_fast = 0;
    for (int i = 0; i < 200000; i++) {
        event_t original, fast, reference;
        s_random_event (&original, s_random_range (1000));
        char line[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&original, line, sizeof line);
        int mutations = 1 + rand () % 2;
        for (int m = 0; m < mutations; m++)
            line[rand () % bytes] = replacements[rand () % (sizeof replacements - 1)];
        if (rand () % 8 == 0)
            bytes -= 1 + (size_t)rand () % 8;
        char error[256];
        if (!s_fast (line, bytes, &fast))
            continue;
        accepted_by_fast++;
        CHECK (s_reference_stored (line, bytes, &reference, error) == 0);
        CHECK (s_same (&fast, &reference));
    }
    CHECK (accepted_by_fast > 0);
}

//  The fast path remembers the last ts's minute: a line right after one in
//  the same minute, with any byte of its ts changed, is still judged like
//  the reference judges it (and a cold cache matches nothing, not even NULs).
static void test_ts_minute_cache_judges_each_line_afresh (void)
{
    static const char replacements[] = "0123456789:-.TZtz \"\x01";
    const char *ts_at = strstr (s_deposit, "\"ts\":\"") + 6;
    size_t offset = (size_t)(ts_at - s_deposit), bytes = strlen (s_deposit);
    int rejected = 0;
    for (size_t at = 0; at < EVENT_TS_BYTES; at++)
        for (size_t r = 0; r < sizeof replacements; r++) { // includes the NUL
            char line[EVENT_LINE_BYTES_MAX];
            memcpy (line, s_deposit, bytes);
            line[offset + at] = replacements[r];
            event_t fast, reference;
            char error[256];
            for (int warm = 0; warm < 2; warm++) {
                if (warm)
                    CHECK (s_fast (s_deposit, bytes, &fast));
                else
                    s_ts_cache.valid = false;
                bool accepted = s_fast (line, bytes, &fast);
                bool accepted_by_reference =
                    s_reference_stored (line, bytes, &reference, error) == 0;
                if (accepted)
                    CHECK (accepted_by_reference && s_same (&fast, &reference));
                else
                    rejected++;
            }
        }
    CHECK (rejected > 0);
    memset (s_ts_cache.prefix, 0, sizeof s_ts_cache.prefix);
    s_ts_cache.valid = false;
    char zeroed[EVENT_TS_BYTES + 1] = "";
    memcpy (zeroed + 16, ":47.123Z", 8);
    int64_t ts_ms;
    CHECK (!s_fast_ts_parse (zeroed, &ts_ms));
}

static void test_non_canonical_lines_fall_back_to_reference (void)
{
    const char *variants[] = {
        "{ "
        "\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"al\\u0069ce\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"amount\":1250,\"account\":\"alice\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\","
        "\"account\":\"alice\",\"amount\":1250,\"meta\":{}}",
    };
    event_t canonical, event, fast;
    char error[256] = "";
    const char *line = "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                       "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
                       "\"amount\":1250}";
    CHECK (s_fast (line, strlen (line), &canonical));
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        CHECK (!s_fast (variants[i], strlen (variants[i]), &fast));
        CHECK (s_stored (variants[i], &event, error) == 0);
        CHECK (s_same (&event, &canonical));
    }
    const char *escaped = "{\"seq\":1,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                          "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"a\","
                          "\"amount\":1,\"meta\":{\"reference\":\"\\u00e9\\/\"}}";
    CHECK (!s_fast (escaped, strlen (escaped), &fast));
    CHECK (s_stored (escaped, &event, error) == 0);
    CHECK (strcmp (event.reference, "\xc3\xa9/") == 0);
}

//  Only event_format_stored's exact bytes pass as canonical; every other
//  spelling of the same event is refused, naming where it first differs.
static void test_canonical_parse_refuses_every_other_spelling (void)
{
    const char *line = "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,"
                       "\"ts\":\"2026-11-22T07:28:47.123Z\",\"account\":\"alice\","
                       "\"amount\":1250}";
    event_t event;
    char error[256] = "";
    CHECK (event_parse_canonical (line, strlen (line), &event, error, 256) == 0);
    CHECK (event_parse_canonical (s_transfer, strlen (s_transfer), &event, error, 256) ==
           0);
    const char *others[] = {
        "{\"seq\":17, \"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\n\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"amount\":1250,\"account\":\"alice\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"al\\u0069ce\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"amount\":1250}\r",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\", \"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"v\":1,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"\\u0061\"}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"refunded\",\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"v\":1}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"deposited\",\"v\":2,\"ts\":\"2026-11-22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"currency\":\"EUR\",\"amount\":1250}",
        "{\"seq\":17,\"id\":\"e\",\"type\":\"account_updated\",\"v\":2,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"account\":\"alice\",\"metadata\":{\"b\":\"1\",\"a\":\"2\"}}",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        error[0] = '\0';
        CHECK (event_parse_stored (others[i], strlen (others[i]), &event, error, 256) ==
               0);
        CHECK (event_parse_canonical (others[i], strlen (others[i]), &event, error,
                                      256) == -1);
        CHECK (error[0] != '\0');
    }
    CHECK (event_parse_canonical (others[0], strlen (others[0]), &event, error, 256));
    CHECK (strstr (error, "at byte 10") != NULL);
    //  A random event's formatted line always passes.
    for (int i = 0; i < 1000; i++) {
        event_t random, back;
        s_random_event (&random, i + 1);
        char formatted[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&random, formatted, sizeof formatted);
        CHECK (bytes > 0);
        CHECK (event_parse_canonical (formatted, bytes, &back, error, 256) == 0);
        CHECK (s_same (&random, &back));
    }
}

//  Timing is printed, never asserted: the machine is shared.
static void test_print_parse_rates (void)
{
    enum { LINES = 4096, ROUNDS = 100 };
    static char lines[LINES][512];
    static size_t sizes[LINES];
    srand (99);
    for (int i = 0; i < LINES; i++) {
        event_t event;
        s_random_event (&event, i + 1);
        s_random_id (event.id, 36);
        event.correlation_id[0] = event.request_id[0] = '\0';
        if (rand () % 4)
            event.reference[0] = '\0';
        else
            strcpy (event.reference, "invoice 2026-11 \"rent\"");
        sizes[i] = event_format_stored (&event, lines[i], sizeof lines[i]);
        CHECK (sizes[i] > 0);
    }
    double rates[2];
    for (int path = 0; path < 2; path++) {
        struct timespec start, end;
        clock_gettime (CLOCK_MONOTONIC, &start);
        for (int round = 0; round < (path == 0 ? ROUNDS : ROUNDS / 10); round++)
            for (int i = 0; i < LINES; i++) {
                event_t event;
                char error[256];
                int rc = path == 0
                             ? event_parse_stored (lines[i], sizes[i], &event, error, 256)
                             : s_reference_stored (lines[i], sizes[i], &event, error);
                CHECK (rc == 0);
            }
        clock_gettime (CLOCK_MONOTONIC, &end);
        double seconds = (double)(end.tv_sec - start.tv_sec) +
                         (double)(end.tv_nsec - start.tv_nsec) / 1e9;
        rates[path] = (double)LINES * (path == 0 ? ROUNDS : ROUNDS / 10) / seconds;
    }
    printf (
        "     event_parse_stored: fast path %.2fM lines/s, cJSON path %.2fM lines/s\n",
        rates[0] / 1e6, rates[1] / 1e6);
}

//  meta.principal is written last in meta, read back by both parsers, and
//  a line without it (an older log's) reads as before.
static void test_principal_is_last_in_meta_and_optional (void)
{
    event_t event;
    char error[256] = "";
    CHECK (s_stored (s_transfer, &event, error) == 0);
    CHECK (event.principal[0] == '\0');
    strcpy (event.principal, "teller-1.eu_x");
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = event_format_stored (&event, line, sizeof line);
    CHECK (bytes > 0);
    CHECK (strstr (line, "\\u0001 caf\xc3\xa9\",\"principal\":\"teller-1.eu_x\"}}") !=
           NULL);
    event_t fast, reference;
    CHECK (s_fast (line, bytes, &fast));
    CHECK (s_reference_stored (line, bytes, &reference, error) == 0);
    CHECK (strcmp (fast.principal, "teller-1.eu_x") == 0);
    CHECK (event_difference (&fast, &reference) == NULL);
    CHECK (event_difference (&fast, &event) == NULL);
    //  Only principal in meta.
    event_t alone;
    event_init (&alone);
    CHECK (s_stored (s_deposit, &alone, error) == 0);
    strcpy (alone.principal, "ops");
    bytes = event_format_stored (&alone, line, sizeof line);
    CHECK (strstr (line, ",\"meta\":{\"principal\":\"ops\"}}") != NULL);
    CHECK (s_fast (line, bytes, &fast) && strcmp (fast.principal, "ops") == 0);
}

static void test_bad_principals_are_rejected (void)
{
    const char *values[] = {
        "\"Ops\"",
        "\"1ops\"",
        "\"\"",
        "5",
        "\"a b\"",
        "\"ops:x\"",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char line[512], error[256] = "";
        snprintf (line, sizeof line,
                  "{\"seq\":1,\"id\":\"x\",\"type\":\"deposited\",\"v\":1,\"ts\":"
                  "\"2026-11-22T07:28:47.123Z\",\"account\":\"a\",\"amount\":1,"
                  "\"meta\":{\"principal\":%s}}",
                  values[i]);
        event_t event, fast;
        CHECK (s_stored (line, &event, error) == -1);
        CHECK (strncmp (error, "meta.principal:", 15) == 0);
        CHECK (!s_fast (line, strlen (line), &fast));
    }
}

//  Schema 2: each new shape is canonical, read by both parsers alike, and
//  formats back to its own bytes.
static const char *s_v2_lines[] = {
    "{\"seq\":3,\"id\":\"d\",\"type\":\"deposited\",\"v\":2,\"ts\":\"2026-11-22T07:28:47."
    "123Z\","
    "\"account\":\"alice\",\"amount\":5,\"currency\":\"EUR\",\"meta\":{\"principal\":"
    "\"p\"}}",
    "{\"seq\":4,\"id\":\"t\",\"type\":\"transferred\",\"v\":2,\"ts\":\"2026-11-22T07:28:"
    "47.123Z\","
    "\"from\":\"alice\",\"to\":\"bob\",\"amount\":5,\"currency\":\"USDC1\"}",
    "{\"seq\":5,\"id\":\"o\",\"type\":\"account_opened\",\"v\":2,\"ts\":\"2026-11-22T07:"
    "28:47."
    "123Z\",\"account\":\"cash\",\"currency\":\"EUR\",\"overdraft_limit\":null}",
    "{\"seq\":6,\"id\":\"o2\",\"type\":\"account_opened\",\"v\":2,\"ts\":\"2026-11-22T07:"
    "28:47."
    "123Z\",\"account\":\"bob\",\"currency\":\"EUR\",\"overdraft_limit\":100,"
    "\"metadata\":{"
    "\"a\":\"\",\"b\":\"caf\xc3\xa9 \\\"x\\\"\\n\"},\"meta\":{\"reference\":\"r\"}}",
    "{\"seq\":7,\"id\":\"u\",\"type\":\"account_updated\",\"v\":2,\"ts\":\"2026-11-22T07:"
    "28:47."
    "123Z\",\"account\":\"bob\",\"metadata\":{}}",
    "{\"seq\":8,\"id\":\"u2\",\"type\":\"account_updated\",\"v\":2,\"ts\":\"2026-11-"
    "22T07:28:47."
    "123Z\",\"account\":\"bob\",\"overdraft_limit\":0}",
};

static void test_v2_lines_are_canonical_and_round_trip (void)
{
    for (size_t i = 0; i < sizeof s_v2_lines / sizeof s_v2_lines[0]; i++) {
        const char *line = s_v2_lines[i];
        event_t fast, reference;
        char error[256] = "";
        if (event_parse_canonical (line, strlen (line), &fast, error, 256) != 0) {
            fprintf (stderr, "    line %zu: %s\n", i, error);
            CHECK (false);
            continue;
        }
        CHECK (s_reference_stored (line, strlen (line), &reference, error) == 0);
        CHECK (event_difference (&fast, &reference) == NULL);
        char buffer[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&fast, buffer, sizeof buffer);
        CHECK (bytes == strlen (line) && memcmp (buffer, line, bytes) == 0);
    }
    event_t event;
    char error[256];
    CHECK (s_stored (s_v2_lines[3], &event, error) == 0);
    CHECK (event.type == EVENT_ACCOUNT_OPENED && event.has_limit &&
           event.overdraft_limit == 100 && streq (event.currency, "EUR"));
    CHECK (s_stored (s_v2_lines[2], &event, error) == 0);
    CHECK (event.overdraft_limit == EVENT_LIMIT_UNLIMITED);
    CHECK (s_stored (s_v2_lines[4], &event, error) == 0);
    CHECK (!event.has_limit && streq (event.metadata, "{}"));
}

static void test_v1_events_upcast_to_currency_xxx_and_keep_their_bytes (void)
{
    event_t fast, reference;
    char error[256] = "";
    CHECK (event_parse_canonical (s_deposit, strlen (s_deposit), &fast, error, 256) == 0);
    CHECK (s_reference_stored (s_deposit, strlen (s_deposit), &reference, error) == 0);
    CHECK (streq (fast.currency, "XXX") && fast.v == 1);
    CHECK (event_difference (&fast, &reference) == NULL);
    char buffer[EVENT_LINE_BYTES_MAX];
    CHECK (event_format_stored (&fast, buffer, sizeof buffer) == strlen (s_deposit));
    CHECK (streq (buffer, s_deposit));
    //  A v1 proposal (a writer of the previous version) is stored as given.
    const char *proposed =
        "{\"id\":\"p\",\"type\":\"withdrawn\",\"v\":1,\"account\":\"a\",\"amount\":2}";
    CHECK (s_proposed (proposed, &fast, error) == 0 && streq (fast.currency, "XXX"));
    CHECK (event_format_proposed (&fast, buffer, sizeof buffer) == strlen (proposed));
}

static void test_unknown_types_in_minimal_form_are_canonical (void)
{
    const char *lines[] = {
        "{\"seq\":9,\"id\":\"x\",\"type\":\"transfer_pending\",\"v\":2,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,\"currency\":\"EUR\"}",
        "{\"seq\":9,\"id\":\"x\",\"type\":\"deposited\",\"v\":3,\"ts\":\"2026-11-22T07:"
        "28:47."
        "123Z\",\"account\":{\"new\":[1,\"caf\xc3\xa9\\n\"]}}",
        "{\"seq\":9,\"id\":\"x\",\"type\":\"frozen\",\"v\":7,\"ts\":\"2026-11-22T07:28:"
        "47.123Z\"}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        event_t event;
        char error[256] = "";
        if (event_parse_canonical (lines[i], strlen (lines[i]), &event, error, 256) != 0)
            fprintf (stderr, "    line %zu: %s\n", i, error);
        CHECK (event.type == EVENT_TYPE_UNKNOWN && event.seq == 9);
    }
}

static int s_metadata (const char *json, char *out, char *error)
{
    cJSON *object = cJSON_Parse (json);
    int bytes = event_metadata_format (object, out, error, 256);
    cJSON_Delete (object);
    return bytes;
}

static void test_metadata_is_sorted_escaped_and_bounded (void)
{
    char out[EVENT_METADATA_BYTES_MAX + 1], error[256] = "";
    CHECK (s_metadata ("{\"b\":\"2\",\"a\":\"x\\\"\\n\\u0001\"}", out, error) > 0);
    CHECK (streq (out, "{\"a\":\"x\\\"\\n\\u0001\",\"b\":\"2\"}"));
    CHECK (s_metadata ("{}", out, error) == 2 && streq (out, "{}"));
    //  The limits exactly, and one beyond each.
    char json[8 * EVENT_METADATA_BYTES_MAX];
    size_t at = (size_t)sprintf (json, "{");
    for (int i = 0; i < EVENT_METADATA_KEYS_MAX; i++)
        at += (size_t)sprintf (json + at, "%s\"k%02d%029d\":\"%0256d\"", i ? "," : "", i,
                               0, 0);
    sprintf (json + at, "}");
    CHECK (s_metadata (json, out, error) > 0);
    sprintf (json + at, ",\"z\":\"\"}");
    CHECK (s_metadata (json, out, error) < 0 && strstr (error, "more than 16 keys"));
    CHECK (s_metadata (
               "{\"k\":\""
               "0123456789012345678901234567890123456789012345678901234567890123"
               "0123456789012345678901234567890123456789012345678901234567890123"
               "0123456789012345678901234567890123456789012345678901234567890123"
               "01234567890123456789012345678901234567890123456789012345678901234\"}",
               out, error) < 0);
    CHECK (strncmp (error, "metadata.k:", 11) == 0);
    CHECK (s_metadata ("{\"abcdefghijabcdefghijabcdefghijab\":\"\"}", out, error) > 0);
    CHECK (s_metadata ("{\"abcdefghijabcdefghijabcdefghijabc\":\"\"}", out, error) < 0);
    CHECK (s_metadata ("{\"\":\"x\"}", out, error) < 0);
    CHECK (s_metadata ("{\"1a\":\"x\"}", out, error) < 0);
    CHECK (s_metadata ("{\"a-b\":\"x\"}", out, error) < 0);
    CHECK (s_metadata ("{\"a\":null}", out, error) < 0);
    CHECK (s_metadata ("[\"a\"]", out, error) < 0 &&
           strncmp (error, "metadata:", 9) == 0);
}

int main (void)
{
    RUN (test_stored_line_round_trips_byte_for_byte);
    RUN (test_stored_fields_are_read);
    RUN (test_proposed_round_trips_with_expect);
    RUN (test_format_reports_a_small_buffer);
    RUN (test_accepts_any_key_order_and_whitespace);
    RUN (test_bad_stored_inputs_are_rejected_naming_the_field);
    RUN (test_long_meta_value_is_rejected);
    RUN (test_bad_proposed_inputs_are_rejected_naming_the_field);
    RUN (test_oversized_input_is_rejected);
    RUN (test_unknown_type_or_newer_version_parses_as_unknown);
    RUN (test_ts_parse_and_format);
    RUN (test_fast_path_equals_reference_on_random_events);
    RUN (test_fast_path_never_accepts_more_than_reference);
    RUN (test_non_canonical_lines_fall_back_to_reference);
    RUN (test_canonical_parse_refuses_every_other_spelling);
    RUN (test_proposed_fast_path_equals_reference_on_random_events);
    RUN (test_proposed_fast_path_never_accepts_more_than_reference);
    RUN (test_spliced_stored_line_equals_formatted_one);
    RUN (test_proposed_expect_rules_hold_on_the_fast_path);
    RUN (test_every_byte_at_every_offset_escapes_and_reads_back);
    RUN (test_format_int_equals_printf);
    RUN (test_ts_format_equals_gmtime);
    RUN (test_ts_minute_cache_judges_each_line_afresh);
    RUN (test_principal_is_last_in_meta_and_optional);
    RUN (test_bad_principals_are_rejected);
    RUN (test_v2_lines_are_canonical_and_round_trip);
    RUN (test_v1_events_upcast_to_currency_xxx_and_keep_their_bytes);
    RUN (test_unknown_types_in_minimal_form_are_canonical);
    RUN (test_metadata_is_sorted_escaped_and_bounded);
    RUN (test_print_parse_rates);
    return check_exit_status ();
}
