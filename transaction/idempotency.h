/*  idempotency — the answers given to requests that carried a key.

    Maps an idempotency key to the fingerprint of its command and the
    final answer (status and body), so a retry gets the original answer
    and a reuse with another command is told apart. Bounded: the oldest
    key is forgotten first. Only durable outcomes (201) are kept; after
    a restart, or once a key is forgotten, the stream's own dedupe still
    prevents a second event and transaction replays from the stored event.
*/
#ifndef IDEMPOTENCY_H_INCLUDED
#define IDEMPOTENCY_H_INCLUDED

#include <stddef.h>

typedef struct idempotency idempotency_t;

typedef struct {
    const char *fingerprint;
    unsigned status;
    const char *body;
    size_t body_bytes;
} idempotency_entry_t;

idempotency_t *idempotency_new (size_t keys_max);
void idempotency_destroy (idempotency_t **self_p);

//  The entry for key (borrowed until the next store), or NULL.
const idempotency_entry_t *idempotency_lookup (idempotency_t *self, const char *key);

//  Remembers key's answer (copied), forgetting the oldest key beyond keys_max.
void idempotency_store (idempotency_t *self, const char *key, const char *fingerprint,
                        unsigned status, const char *body, size_t body_bytes);

size_t idempotency_size (idempotency_t *self);

#endif
