/*  idempotency — bounded key -> answer cache (see idempotency.h).
 */
#include "idempotency.h"

#include <czmq.h>

#include "key_hash.h"

//  One allocation per entry: the strings follow the struct.
typedef struct {
    idempotency_entry_t public; // fingerprint and body point into text
    char *key;                  // into text; also the table's key and the FIFO's item
    char text[];                // key, fingerprint and body, each NUL-ended
} entry_t;

struct idempotency {
    zhashx_t *entries; // key -> entry_t (owned)
    zlistx_t *order;   // keys, oldest first (borrowed from the entries)
    size_t keys_max;
};

static void s_entry_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static size_t s_key_hash (const void *key)
{
    return (size_t)key_hash ((const char *)key);
}

idempotency_t *idempotency_new (size_t keys_max)
{
    assert (keys_max > 0);
    idempotency_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    self->order = zlistx_new ();
    if (!self->entries || !self->order) {
        idempotency_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, s_entry_free);
    //  The key is the entry's own copy (freed with it): no second copy.
    zhashx_set_key_duplicator (self->entries, NULL);
    zhashx_set_key_destructor (self->entries, NULL);
    zhashx_set_key_hasher (self->entries, s_key_hash);
    self->keys_max = keys_max;
    return self;
}

void idempotency_destroy (idempotency_t **self_p)
{
    assert (self_p);
    idempotency_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->order);
        zhashx_destroy (&self->entries);
        free (self);
        *self_p = NULL;
    }
}

const idempotency_entry_t *idempotency_lookup (idempotency_t *self, const char *key)
{
    entry_t *entry = zhashx_lookup (self->entries, key);
    return entry ? &entry->public : NULL;
}

void idempotency_store (idempotency_t *self, const char *key, const char *fingerprint,
                        unsigned status, const char *body, size_t body_bytes)
{
    if (zhashx_lookup (self->entries, key))
        return; // the first answer stays the answer
    while (zlistx_size (self->order) >= self->keys_max) {
        char *oldest = zlistx_detach (self->order, NULL); // NULL: the first
        zhashx_delete (self->entries, oldest);            // frees oldest
    }
    size_t key_bytes = strlen (key) + 1, fingerprint_bytes = strlen (fingerprint) + 1;
    entry_t *entry =
        malloc (sizeof *entry + key_bytes + fingerprint_bytes + body_bytes + 1);
    assert (entry);
    char *text = entry->text;
    entry->key = memcpy (text, key, key_bytes);
    text += key_bytes;
    entry->public.fingerprint = memcpy (text, fingerprint, fingerprint_bytes);
    text += fingerprint_bytes;
    memcpy (text, body, body_bytes);
    text[body_bytes] = '\0';
    entry->public.body = text;
    entry->public.status = status;
    entry->public.body_bytes = body_bytes;
    zhashx_insert (self->entries, entry->key, entry);
    zlistx_add_end (self->order, entry->key);
}

size_t idempotency_size (idempotency_t *self)
{
    return zhashx_size (self->entries);
}
