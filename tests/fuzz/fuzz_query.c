/*  fuzz_query — HTTP query and path parsing: http_unescape and
    http_parse_int64, the two steps every query argument goes through.

    The first input byte picks the claim, the rest is the text.
    Claims for http_unescape: the result is never longer, its returned
    length is its strlen (no NUL is ever decoded into it), text without
    '%' is unchanged, and decoding text percent-encoded byte by byte gives
    the text back. Claims for http_parse_int64: it accepts exactly what a
    reference reading (optional '-', digits, no overflow, within the
    bounds) accepts, with the same value.
*/
#include "fuzz_common.h"
#include "http.h"

#include <stdbool.h>

#define FUZZ_QUERY_TEXT_BYTES_MAX 512 // far beyond any query value the services read

static void s_check_unescape (const char *text, size_t bytes)
{
    char *decoded = strdup (text);
    fuzz_check (decoded, "out of memory");
    size_t length = http_unescape (decoded);
    fuzz_check (length <= bytes && length == strlen (decoded),
                "length %zu of %zu bytes, strlen %zu", length, bytes, strlen (decoded));
    if (!strchr (text, '%'))
        fuzz_check (strcmp (decoded, text) == 0, "text without %% changed");
    free (decoded);

    // Every byte as %HH (the text holds no NUL: it is a C string).
    char *encoded = malloc (bytes * 3 + 1);
    fuzz_check (encoded, "out of memory");
    for (size_t i = 0; i < bytes; i++)
        snprintf (encoded + i * 3, 4, "%%%02X", (unsigned char)text[i]);
    encoded[bytes * 3] = '\0';
    length = http_unescape (encoded);
    fuzz_check (length == bytes && memcmp (encoded, text, bytes) == 0,
                "encoded text does not decode back");
    free (encoded);
}

//  The reference: optional '-', then one or more digits, nothing else.
static bool s_reference_int64 (const char *text, int64_t *value)
{
    bool negative = *text == '-';
    const char *digit = negative ? text + 1 : text;
    if (!*digit)
        return false;
    int64_t result = 0;
    for (; *digit; digit++) {
        if (*digit < '0' || *digit > '9')
            return false;
        int64_t step = *digit - '0';
        if (__builtin_mul_overflow (result, 10, &result) ||
            __builtin_add_overflow (result, negative ? -step : step, &result))
            return false;
    }
    *value = result;
    return true;
}

static void s_check_parse_int64 (const char *text, int64_t min, int64_t max)
{
    int64_t expected = 0, value = 0;
    bool accepted =
        s_reference_int64 (text, &expected) && expected >= min && expected <= max;
    int rc = http_parse_int64 (text, min, max, &value);
    fuzz_check ((rc == 0) == accepted, "'%s' in [%lld, %lld]: %s", text, (long long)min,
                (long long)max, rc == 0 ? "accepted" : "refused");
    if (accepted)
        fuzz_check (value == expected, "'%s' read as %lld", text, (long long)value);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_QUERY_TEXT_BYTES_MAX)
        return 0;
    // Both functions read C strings: the text ends at its first NUL.
    char *text = malloc (size);
    fuzz_check (text, "out of memory");
    memcpy (text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t bytes = strlen (text);
    switch (data[0] % 3) {
    case 0:
        s_check_unescape (text, bytes);
        break;
    case 1:
        s_check_parse_int64 (text, INT64_MIN, INT64_MAX);
        break;
    default:
        s_check_parse_int64 (text, 1, 1000); // a page limit
        break;
    }
    free (text);
    return 0;
}
