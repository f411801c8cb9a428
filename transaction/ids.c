/*  ids — idempotency keys and the event ids derived from them (see ids.h).
 */
#include "ids.h"

int ids_parse_key (http_request_t *http, const char *body_id, char *key, cJSON **errors_p)
{
    const char *header = http_request_header (http, "Idempotency-Key");
    if (header && !event_id_is_valid (header, strlen (header))) {
        http_problem_add_error (errors_p, "Idempotency-Key",
                                "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
        return -1;
    }
    if (header && *body_id && !streq (header, body_id)) {
        http_problem_add_error (errors_p, "id",
                                "differs from the Idempotency-Key header");
        return -1;
    }
    if (header)
        request_copy (key, EVENT_ID_BYTES_MAX + 1, header);
    else if (key != body_id)
        request_copy (key, EVENT_ID_BYTES_MAX + 1, body_id);
    return 0;
}

//  A random (version 4) UUID without a getrandom per id (zuuid_new makes
//  one, and allocates and prints, for every id): a random base drawn once
//  per process, with the low 64 bits XORed with a bijective mix of a
//  counter. Within a process the ids differ because the mix is a
//  bijection (and the counter never wraps). Across processes and restarts
//  each one's whole id set is the same fixed set XORed with an independent
//  122-bit random base, so two processes collide with probability at most
//  n1 * n2 / 2^122: what n1 * n2 fresh random UUIDs would give.
static void s_uuid_generate (api_t *self, char *text)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t mixed = ++self->uuids; // splitmix64's finalizer: a bijection
    mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ULL;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebULL;
    mixed ^= mixed >> 31;
    uint8_t data[API_UUID_BYTES];
    memcpy (data, self->uuid_base, sizeof data);
    for (int index = 0; index < 8; index++)
        data[8 + index] ^= (uint8_t)(mixed >> (8 * index));
    data[6] = (uint8_t)((data[6] & 0x0f) | 0x40); // version 4
    data[8] = (uint8_t)((data[8] & 0x3f) | 0x80); // RFC 4122 variant
    for (int index = 0; index < API_UUID_BYTES; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10)
            *text++ = '-';
        *text++ = hex[data[index] >> 4];
        *text++ = hex[data[index] & 0xf];
    }
    *text = '\0';
}

//  "<base>:<index>" into id; -1 when it does not fit.
int ids_derive (const char *base, size_t index, char *id)
{
    size_t bytes = strlen (base);
    char text[EVENT_ID_BYTES_MAX + 32];
    memcpy (text, base, bytes);
    text[bytes++] = ':';
    bytes += event_format_int (text + bytes, (int64_t)index);
    if (bytes > EVENT_ID_BYTES_MAX)
        return -1;
    memcpy (id, text, bytes);
    id[bytes] = '\0';
    return 0;
}

static void s_id_too_long (cJSON **errors_p)
{
    http_problem_add_error (errors_p, "Idempotency-Key",
                            "too long to derive the batch's event ids");
}

//  Derives the missing ids and checks that all differ, stopping at the
//  first fault. Only needed when some command has an id of its own:
//  derived ids alone differ by their indexes.
static int s_assign_checked (parsed_t *parsed, const char *base, cJSON **errors_p)
{
    zhashx_t *seen = zhashx_new ();
    assert (seen);
    int rc = 0;
    for (size_t index = 0; index < parsed->count && rc == 0; index++) {
        command_t *command = &parsed->commands[index];
        if (!*command->id && ids_derive (base, index, command->id) != 0) {
            s_id_too_long (errors_p);
            rc = -1;
        } else if (zhashx_insert (seen, command->id, command) != 0) {
            char field[48];
            snprintf (field, sizeof field, "commands[%zu].id", index);
            http_problem_add_error (errors_p, field, "duplicate id within the batch");
            rc = -1;
        }
    }
    zhashx_destroy (&seen);
    return rc;
}

int ids_assign (api_t *self, route_t route, parsed_t *parsed, cJSON **errors_p)
{
    char base[EVENT_ID_BYTES_MAX + 1];
    if (*parsed->key)
        request_copy (base, sizeof base, parsed->key);
    else
        s_uuid_generate (self, base);
    if (route != ROUTE_BATCH) {
        request_copy (parsed->commands[0].id, EVENT_ID_BYTES_MAX + 1, base);
        return 0;
    }
    for (size_t index = 0; index < parsed->count; index++)
        if (*parsed->commands[index].id)
            return s_assign_checked (parsed, base, errors_p);
    for (size_t index = 0; index < parsed->count; index++)
        if (ids_derive (base, index, parsed->commands[index].id) != 0) {
            s_id_too_long (errors_p);
            return -1;
        }
    return 0;
}
