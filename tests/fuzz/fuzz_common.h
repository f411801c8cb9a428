/*  fuzz_common — checks shared by the libFuzzer targets.

    A failed check is a bug in the code under test, so it prints what
    differed and aborts: libFuzzer then saves the input as a crash file.
    Nothing here keeps state between inputs.
*/
#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define FUZZ_ERROR_BYTES 256 // room for any one-line parse reason

#define fuzz_check(condition, ...)                                                       \
    do {                                                                                 \
        if (!(condition)) {                                                              \
            fprintf (stderr, "fuzz check failed: %s (%s:%d): ", #condition, __FILE__,    \
                     __LINE__);                                                          \
            fprintf (stderr, __VA_ARGS__);                                               \
            fputc ('\n', stderr);                                                        \
            abort ();                                                                    \
        }                                                                                \
    } while (0)

static inline int fuzz_account_is_valid (const char *account)
{
    return event_id_is_valid (account, strlen (account));
}

//  What event.h promises about a successfully parsed event of a known type.
static inline void fuzz_check_known_event (const event_t *event)
{
    fuzz_check (event->type != EVENT_TYPE_UNKNOWN, "type");
    fuzz_check (event->v >= 1 && event->v <= EVENT_SCHEMA_VERSION, "v=%d", event->v);
    fuzz_check (event_id_is_valid (event->id, strlen (event->id)), "id '%s'", event->id);
    fuzz_check (strcmp (event->type_name, event_type_name (event->type)) == 0,
                "type_name '%s'", event->type_name);
    //  Every event reads with a currency: a v1 one as XXX (the upcast).
    fuzz_check (event_currency_is_valid (event->currency, strlen (event->currency)),
                "currency '%s'", event->currency);
    fuzz_check (event->v > 1 || strcmp (event->currency, EVENT_CURRENCY_V1) == 0,
                "v1 in '%s'", event->currency);
    if (!event_type_moves_money (event->type)) {
        fuzz_check (event->v == 2 && event->amount == 0, "account event v=%d", event->v);
        fuzz_check (fuzz_account_is_valid (event->account), "account '%s'",
                    event->account);
        fuzz_check (event->type == EVENT_ACCOUNT_UPDATED || event->has_limit,
                    "opened without a limit");
        fuzz_check (!event->has_limit || event->overdraft_limit >= 0 ||
                        event->overdraft_limit == EVENT_LIMIT_UNLIMITED,
                    "limit %lld", (long long)event->overdraft_limit);
        fuzz_check (event->metadata_bytes == strlen (event->metadata) &&
                        (event->metadata_bytes == 0 || event->metadata[0] == '{'),
                    "metadata '%s'", event->metadata);
        fuzz_check (event->type == EVENT_ACCOUNT_OPENED || event->has_limit ||
                        event->metadata_bytes,
                    "an update of nothing");
        return;
    }
    fuzz_check (event->amount >= 1 && event->amount <= EVENT_AMOUNT_MAX, "amount %lld",
                (long long)event->amount);
    fuzz_check (event_type_resolves_hold (event->type) ==
                    (*event->pending_id && fuzz_account_is_valid (event->pending_id)),
                "pending_id '%s' on %s", event->pending_id, event->type_name);
    fuzz_check (event->type == EVENT_TRANSFER_PENDING || event->timeout_at_ms == 0,
                "timeout_at on %s", event->type_name);
    fuzz_check (event->v == 2 || !event_type_has_parties (event->type) ||
                    event->type == EVENT_TRANSFERRED,
                "a v1 hold");
    if (event_type_has_parties (event->type)) {
        fuzz_check (fuzz_account_is_valid (event->from), "from '%s'", event->from);
        fuzz_check (fuzz_account_is_valid (event->to), "to '%s'", event->to);
        fuzz_check (strcmp (event->from, event->to) != 0, "from == to '%s'", event->to);
    } else
        fuzz_check (fuzz_account_is_valid (event->account), "account '%s'",
                    event->account);
}

//  Formats into a heap buffer of exactly the size needed, so ASan sees any
//  byte written past it, and checks the "0 if too small" contract one byte
//  short. Returns the line (caller frees) and its length in *bytes_out.
typedef size_t (fuzz_format_fn) (const event_t *self, char *buffer, size_t buffer_size);

static inline char *fuzz_format_exact (fuzz_format_fn *format, const event_t *event,
                                       size_t *bytes_out)
{
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = format (event, line, sizeof line);
    fuzz_check (bytes > 0 && bytes < sizeof line, "format gave %zu bytes", bytes);
    fuzz_check (strlen (line) == bytes, "NUL at %zu, length %zu", strlen (line), bytes);

    char *exact = malloc (bytes + 1);
    fuzz_check (exact, "out of memory");
    fuzz_check (format (event, exact, bytes + 1) == bytes, "exact buffer");
    fuzz_check (memcmp (exact, line, bytes + 1) == 0, "exact buffer gave other bytes");
    char *short_buffer = malloc (bytes);
    fuzz_check (short_buffer, "out of memory");
    fuzz_check (format (event, short_buffer, bytes) == 0,
                "buffer one byte short accepted");
    free (short_buffer);
    *bytes_out = bytes;
    return exact;
}

#endif
