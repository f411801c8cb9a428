/*  fuzz_event_stored — event_parse_stored on arbitrary bytes (one log line).

    Claims: parsing never crashes or reads past the input; an accepted line
    of a known type is a valid stored event whose canonical form parses
    back to the same event, and that canonical form is a fixed point:
    format(parse(y)) == y for every canonical y. An unknown type keeps its
    name so readers can count it, and is canonical exactly when it is
    JSON's minimal form (cJSON prints it back byte for byte).
    event_parse_canonical accepts exactly the lines that are their own
    canonical form.
*/
#include "fuzz_common.h"

#include <cjson/cJSON.h>

static void s_check_stored (const event_t *event)
{
    fuzz_check_known_event (event);
    fuzz_check (event->seq >= 1, "seq %lld", (long long)event->seq);
    fuzz_check (event->expect_count == 0, "expect on a stored event");
}

//  Whether event_parse_canonical takes the input, with its event in *event.
static bool s_canonical (const uint8_t *data, size_t size, event_t *event)
{
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    if (event_parse_canonical ((const char *)data, size, event, error, sizeof error)) {
        fuzz_check (memchr (error, '\0', sizeof error) && error[0],
                    "refused as not canonical without a reason");
        return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    event_t event, canonical;
    event_init (&event);
    char error[FUZZ_ERROR_BYTES];
    memset (error, 'x', sizeof error);
    bool is_canonical = s_canonical (data, size, &canonical);
    if (event_parse_stored ((const char *)data, size, &event, error, sizeof error) != 0) {
        fuzz_check (!is_canonical, "canonical but does not parse");
        fuzz_check (memchr (error, '\0', sizeof error), "error not NUL-terminated");
        fuzz_check (error[0] != '\0', "rejected without a reason");
        return 0;
    }
    if (event.type == EVENT_TYPE_UNKNOWN) {
        if (is_canonical) {
            char *text = malloc (size + 1);
            fuzz_check (text, "out of memory");
            memcpy (text, data, size);
            text[size] = '\0';
            cJSON *root = cJSON_ParseWithLength (text, size);
            char *printed = root ? cJSON_PrintUnformatted (root) : NULL;
            fuzz_check (printed && strlen (printed) == size &&
                            memcmp (printed, data, size) == 0,
                        "an unknown type passed as canonical, not in minimal form");
            cJSON_free (printed);
            cJSON_Delete (root);
            free (text);
        }
        fuzz_check (event.seq >= 1, "seq %lld", (long long)event.seq);
        fuzz_check (memchr (event.type_name, '\0', sizeof event.type_name),
                    "type_name not NUL-terminated");
        return 0;
    }
    s_check_stored (&event);

    size_t bytes;
    char *line = fuzz_format_exact (event_format_stored, &event, &bytes);
    bool is_own_form = bytes == size && memcmp (line, data, size) == 0;
    fuzz_check (is_canonical == is_own_form, "canonical %d, its own canonical form %d: %s",
                is_canonical, is_own_form, line);
    fuzz_check (!is_canonical || event_difference (&event, &canonical) == NULL,
                "the canonical parse read another event");
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
