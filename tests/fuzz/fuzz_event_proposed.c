/*  fuzz_event_proposed — event_parse_proposed on arbitrary bytes.

    Claims: parsing never crashes or reads past the input; a rejected input
    leaves a NUL-terminated reason; an accepted input is a valid proposed
    event whose canonical form parses back to the same event and is a
    fixed point of format(parse(.)).
*/
#include "fuzz_common.h"

static void s_check_proposed (const event_t *event)
{
    fuzz_check_known_event (event);
    fuzz_check (event->seq == 0 && event->ts_ms == 0, "seq/ts set on a proposed event");
    fuzz_check (event->expect_count <= EVENT_EXPECT_MAX, "expect_count %zu",
                event->expect_count);
    for (size_t index = 0; index < event->expect_count; index++) {
        fuzz_check (fuzz_account_is_valid (event->expect[index].account), "expect '%s'",
                    event->expect[index].account);
        fuzz_check (event->expect[index].version >= 0, "expect version %lld",
                    (long long)event->expect[index].version);
    }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    event_t event;
    event_init (&event);
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    if (event_parse_proposed ((const char *)data, size, &event, error, sizeof error) !=
        0) {
        fuzz_check (memchr (error, '\0', sizeof error), "error not NUL-terminated");
        fuzz_check (error[0] != '\0', "rejected without a reason");
        return 0;
    }
    s_check_proposed (&event);

    size_t bytes;
    char *line = fuzz_format_exact (event_format_proposed, &event, &bytes);
    event_t again;
    event_init (&again);
    int rc = event_parse_proposed (line, bytes, &again, error, sizeof error);
    fuzz_check (rc == 0, "canonical form rejected: %s: %s", error, line);
    const char *field = event_difference (&event, &again);
    fuzz_check (field == NULL, "round trip changed %s: %s", field, line);

    size_t again_bytes;
    char *again_line = fuzz_format_exact (event_format_proposed, &again, &again_bytes);
    fuzz_check (again_bytes == bytes && memcmp (line, again_line, bytes) == 0,
                "canonical form is not a fixed point: %s -> %s", line, again_line);
    free (again_line);
    free (line);
    return 0;
}
