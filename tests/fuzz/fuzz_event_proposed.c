/*  fuzz_event_proposed — event_parse_proposed on arbitrary bytes.

    Claims: parsing never crashes or reads past the input; a rejected input
    leaves a NUL-terminated reason; an accepted input is a valid proposed
    event whose canonical form parses back to the same event and is a
    fixed point of format(parse(.)); its stored line spliced from the input
    (event_format_stored_splice) is event_format_stored's, byte for byte,
    and the splice points are set only when the input is canonical.
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

//  The stored line of the event (seq and ts set, expect dropped as the
//  stream does) spliced from the input is the formatted one.
static void s_check_splice (const event_t *proposed, const char *json,
                            const event_splice_t *splice)
{
    event_t event = *proposed;
    event.seq = 1 + (int64_t)(splice->body_end % 1000003);
    event.ts_ms = 1700000000000 + (int64_t)splice->body;
    event.expect_count = 0;
    size_t bytes;
    char *line = fuzz_format_exact (event_format_stored, &event, &bytes);
    char spliced[EVENT_LINE_BYTES_MAX];
    size_t spliced_bytes =
        event_format_stored_splice (&event, json, splice, spliced, sizeof spliced);
    fuzz_check (spliced_bytes == bytes && memcmp (spliced, line, bytes + 1) == 0,
                "spliced line differs: %s -> %s", line, spliced);
    fuzz_check (event_format_stored_splice (&event, json, splice, spliced, bytes) == 0,
                "spliced into a buffer one byte short");
    free (line);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    event_t event;
    event_init (&event);
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    event_splice_t splice;
    if (event_parse_proposed_splice ((const char *)data, size, &event, &splice, error,
                                     sizeof error) != 0) {
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
    bool canonical = bytes == size && memcmp (line, data, size) == 0;
    fuzz_check (canonical || splice.body == 0, "splice %zu for a non-canonical input",
                splice.body);
    free (line);
    s_check_splice (&event, (const char *)data, &splice);
    return 0;
}
