/*  fuzz_event_stored — event_parse_stored on arbitrary bytes (one log line).

    Claims: parsing never crashes or reads past the input; an accepted line
    of a known type is a valid stored event whose canonical form parses
    back to the same event, and that canonical form is a fixed point:
    format(parse(y)) == y for every canonical y. An unknown type keeps its
    name so readers can count it.
*/
#include "fuzz_common.h"

static void s_check_stored (const event_t *event)
{
    fuzz_check_known_event (event);
    fuzz_check (event->seq >= 1, "seq %lld", (long long)event->seq);
    fuzz_check (event->expect_count == 0, "expect on a stored event");
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    event_t event;
    event_init (&event);
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    if (event_parse_stored ((const char *)data, size, &event, error, sizeof error) != 0) {
        fuzz_check (memchr (error, '\0', sizeof error), "error not NUL-terminated");
        fuzz_check (error[0] != '\0', "rejected without a reason");
        return 0;
    }
    if (event.type == EVENT_TYPE_UNKNOWN) {
        fuzz_check (event.seq >= 1, "seq %lld", (long long)event.seq);
        fuzz_check (memchr (event.type_name, '\0', sizeof event.type_name),
                    "type_name not NUL-terminated");
        return 0;
    }
    s_check_stored (&event);

    size_t bytes;
    char *line = fuzz_format_exact (event_format_stored, &event, &bytes);
    event_t again;
    event_init (&again);
    int rc = event_parse_stored (line, bytes, &again, error, sizeof error);
    fuzz_check (rc == 0, "canonical form rejected: %s: %s", error, line);
    const char *field = event_difference (&event, &again);
    fuzz_check (field == NULL, "round trip changed %s: %s", field, line);
    event_t scratch;
    event_init (&scratch);
    fuzz_check (event_parse_proposed (line, bytes, &scratch, error, sizeof error) != 0,
                "a stored line (with seq and ts) passed as proposed: %s", line);

    size_t again_bytes;
    char *again_line = fuzz_format_exact (event_format_stored, &again, &again_bytes);
    fuzz_check (again_bytes == bytes && memcmp (line, again_line, bytes) == 0,
                "canonical form is not a fixed point: %s -> %s", line, again_line);
    free (again_line);
    free (line);
    return 0;
}
