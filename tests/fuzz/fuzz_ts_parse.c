/*  fuzz_ts_parse — event_ts_parse on arbitrary text.

    Claims: parsing never crashes or reads past the NUL; an accepted time
    formats to exactly EVENT_TS_BYTES characters of canonical form, which
    parses back to the same milliseconds and formats to the same text.
*/
#include "fuzz_common.h"

#define FUZZ_TS_INPUT_BYTES_MAX 256 // far beyond any RFC 3339 text; keeps runs fast

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > FUZZ_TS_INPUT_BYTES_MAX)
        return 0;
    // event_ts_parse reads a C string: give it exactly size bytes and a NUL
    char *text = malloc (size + 1);
    fuzz_check (text, "out of memory");
    memcpy (text, data, size);
    text[size] = '\0';

    int64_t ts_ms = 0;
    if (event_ts_parse (text, &ts_ms) == 0) {
        char canonical[EVENT_TS_BYTES + 1];
        memset (canonical, 'x', sizeof canonical);
        event_ts_format (ts_ms, canonical);
        fuzz_check (canonical[EVENT_TS_BYTES] == '\0' &&
                        strlen (canonical) == EVENT_TS_BYTES,
                    "format of %lld is not %d bytes", (long long)ts_ms, EVENT_TS_BYTES);
        int64_t again_ms = -1;
        fuzz_check (event_ts_parse (canonical, &again_ms) == 0,
                    "canonical '%s' (from '%s') rejected", canonical, text);
        fuzz_check (again_ms == ts_ms, "'%s' -> %lld -> '%s' -> %lld", text,
                    (long long)ts_ms, canonical, (long long)again_ms);
        char again[EVENT_TS_BYTES + 1];
        event_ts_format (again_ms, again);
        fuzz_check (strcmp (again, canonical) == 0, "'%s' formats as '%s'", canonical,
                    again);
    }
    free (text);
    return 0;
}
