/*  test_event_write — the canonical writer (event_write.c): escapes at
    every offset, the integer printer, the metadata object, and the splice
    that copies a stored line from a proposed text.
*/
#include "event_check.h"

#include <cjson/cJSON.h>

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
            CHECK (event_format_string (text, line, sizeof line) == bytes &&
                   memcmp (line, expected, bytes) == 0);
            char read[EVENT_META_VALUE_BYTES_MAX + 1];
            const char *p = line + 1;
            bool accepted = event_fast_string (&p, line + bytes, read);
            CHECK (accepted == (byte < 0x80));
            CHECK (!accepted || (strcmp (read, text) == 0 && p == line + bytes));
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

int main (int argc, char **argv)
{
    if (check_bench_requested (argc, argv))
        return 0;
    RUN (test_spliced_stored_line_equals_formatted_one);
    RUN (test_every_byte_at_every_offset_escapes_and_reads_back);
    RUN (test_format_int_equals_printf);
    RUN (test_metadata_is_sorted_escaped_and_bounded);
    return check_exit_status ();
}
