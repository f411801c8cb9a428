/*  test_event_parse — claims about parsing events (event_parse.c): the
    fields read, the rule each bad input breaks, canonical form, schema
    versions and the upcast.
*/
#include "event_check.h"

#include <stdlib.h>

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
     "type: must be deposited, withdrawn, transferred, account_opened, "
     "account_updated, transfer_pending, transfer_posted, transfer_voided or "
     "transfer_expired"},
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

//  A benchmark (meson benchmark, `--bench`): timing is printed, never
//  asserted, as the machine is shared.

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
        "{\"seq\":9,\"id\":\"x\",\"type\":\"transfer_frozen\",\"v\":2,\"ts\":\"2026-11-"
        "22T07:"
        "28:47.123Z\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,\"currency\":\"EUR\"}",
        "{\"seq\":9,\"id\":\"x\",\"type\":\"deposited\",\"v\":3,\"ts\":\"2026-11-22T07:"
        "28:47."
        "123Z\",\"account\":{\"new\":[1,\"caf\xc3\xa9\\n\"]}}",
        ("{\"seq\":9,\"id\":\"x\",\"type\":\"frozen\",\"v\":7,\"ts\":\"2026-11-22T07:28:"
         "47.123Z\"}"), // one element (clang -Wstring-concatenation)
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        event_t event;
        char error[256] = "";
        if (event_parse_canonical (lines[i], strlen (lines[i]), &event, error, 256) != 0)
            fprintf (stderr, "    line %zu: %s\n", i, error);
        CHECK (event.type == EVENT_TYPE_UNKNOWN && event.seq == 9);
    }
}

static void test_hold_lines_are_canonical_and_round_trip (void)
{
    const char *lines[] = {
        "{\"seq\":5,\"id\":\"h1\",\"type\":\"transfer_pending\",\"v\":2,\"ts\":"
        "\"2026-11-22T07:28:47.123Z\",\"from\":\"a\",\"to\":\"b\",\"amount\":300,"
        "\"currency\":\"EUR\",\"timeout_at\":\"2026-11-22T08:28:47.123Z\"}",
        "{\"seq\":6,\"id\":\"h2\",\"type\":\"transfer_pending\",\"v\":2,\"ts\":"
        "\"2026-11-22T07:28:47.123Z\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
        "\"currency\":\"XXX\",\"meta\":{\"reference\":\"r\"}}",
        "{\"seq\":7,\"id\":\"p\",\"type\":\"transfer_posted\",\"v\":2,\"ts\":"
        "\"2026-11-22T07:28:48.000Z\",\"pending_id\":\"h1\",\"from\":\"a\",\"to\":\"b\","
        "\"amount\":200,\"currency\":\"EUR\"}",
        "{\"seq\":8,\"id\":\"v\",\"type\":\"transfer_voided\",\"v\":2,\"ts\":"
        "\"2026-11-22T07:28:48.000Z\",\"pending_id\":\"h2\",\"from\":\"a\",\"to\":\"b\","
        "\"amount\":1,\"currency\":\"XXX\"}",
        "{\"seq\":9,\"id\":\"h3.expired\",\"type\":\"transfer_expired\",\"v\":2,"
        "\"ts\":\"2026-11-22T07:28:48.000Z\",\"pending_id\":\"h3\",\"from\":\"a\","
        "\"to\":\"b\",\"amount\":9,\"currency\":\"XXX\"}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        event_t fast, reference;
        char error[256] = "";
        if (event_parse_canonical (lines[i], strlen (lines[i]), &fast, error, 256) != 0) {
            fprintf (stderr, "    line %zu: %s\n", i, error);
            CHECK (false);
            continue;
        }
        CHECK (s_reference_stored (lines[i], strlen (lines[i]), &reference, error) == 0);
        CHECK (s_same (&fast, &reference));
        char buffer[EVENT_LINE_BYTES_MAX];
        size_t bytes = event_format_stored (&fast, buffer, sizeof buffer);
        CHECK (bytes == strlen (lines[i]) && memcmp (buffer, lines[i], bytes) == 0);
        CHECK (event_type_has_parties (fast.type) && event_type_moves_money (fast.type));
    }
    event_t event;
    char error[256];
    CHECK (s_stored (lines[0], &event, error) == 0);
    CHECK (event.type == EVENT_TRANSFER_PENDING && event.amount == 300);
    CHECK (event.timeout_at_ms == event.ts_ms + 3600 * 1000);
    CHECK (s_stored (lines[2], &event, error) == 0);
    CHECK (event.type == EVENT_TRANSFER_POSTED && streq (event.pending_id, "h1"));
    CHECK (event_type_resolves_hold (event.type));
    //  A proposed resolution may expect the versions of from and to.
    const char *proposed =
        "{\"id\":\"p\",\"type\":\"transfer_voided\",\"v\":2,"
        "\"pending_id\":\"h\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
        "\"currency\":\"XXX\",\"expect\":{\"a\":3}}";
    CHECK (s_proposed (proposed, &event, error) == 0 && event.expect_count == 1);
    char buffer[EVENT_LINE_BYTES_MAX];
    CHECK (event_format_proposed (&event, buffer, sizeof buffer) == strlen (proposed));
    CHECK (streq (buffer, proposed));
}

static void test_bad_hold_events_are_rejected_naming_the_field (void)
{
    const struct {
        const char *json, *field;
    } cases[] = {
        //  A resolution names its hold; a hold has no pending_id.
        {"{\"id\":\"p\",\"type\":\"transfer_posted\",\"v\":2,\"from\":\"a\",\"to\":"
         "\"b\",\"amount\":1,\"currency\":\"XXX\"}",
         "pending_id"},
        {"{\"id\":\"p\",\"type\":\"transfer_pending\",\"v\":2,\"pending_id\":\"h\","
         "\"from\":\"a\",\"to\":\"b\",\"amount\":1,\"currency\":\"XXX\"}",
         "pending_id"},
        //  timeout_at only on a hold, canonical ms.
        {"{\"id\":\"p\",\"type\":\"transfer_voided\",\"v\":2,\"pending_id\":\"h\","
         "\"from\":\"a\",\"to\":\"b\",\"amount\":1,\"currency\":\"XXX\","
         "\"timeout_at\":\"2026-11-22T08:28:47.123Z\"}",
         "timeout_at"},
        {"{\"id\":\"p\",\"type\":\"transfer_pending\",\"v\":2,\"from\":\"a\",\"to\":"
         "\"b\",\"amount\":1,\"currency\":\"XXX\",\"timeout_at\":\"2026-11-22T08:28Z\"}",
         "timeout_at"},
        //  Holds are v2 only, between two accounts.
        {"{\"id\":\"p\",\"type\":\"transfer_pending\",\"v\":1,\"from\":\"a\",\"to\":"
         "\"b\",\"amount\":1}",
         "v"},
        {"{\"id\":\"p\",\"type\":\"transfer_pending\",\"v\":2,\"from\":\"a\",\"to\":"
         "\"a\",\"amount\":1,\"currency\":\"XXX\"}",
         "to"},
        {"{\"id\":\"p\",\"type\":\"transfer_expired\",\"v\":2,\"pending_id\":\"h\","
         "\"account\":\"a\",\"amount\":1,\"currency\":\"XXX\"}",
         "account"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        event_t event;
        char error[256] = "";
        int rc = s_proposed (cases[i].json, &event, error);
        size_t length = strlen (cases[i].field);
        bool named = strncmp (error, cases[i].field, length) == 0 && error[length] == ':';
        if (rc == 0 || !named)
            fprintf (stderr, "    case %zu: rc %d, %s\n", i, rc, error);
        CHECK (rc != 0 && named);
    }
}

int main (int argc, char **argv)
{
    if (check_bench_requested (argc, argv))
        return 0;
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
    RUN (test_principal_is_last_in_meta_and_optional);
    RUN (test_bad_principals_are_rejected);
    RUN (test_v2_lines_are_canonical_and_round_trip);
    RUN (test_v1_events_upcast_to_currency_xxx_and_keep_their_bytes);
    RUN (test_unknown_types_in_minimal_form_are_canonical);
    RUN (test_hold_lines_are_canonical_and_round_trip);
    RUN (test_bad_hold_events_are_rejected_naming_the_field);
    return check_exit_status ();
}
