/*  account_table — see account_table.h. */
#include "account_table.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "key_hash.h"

//  Slots (a power of two, at most half full) and the arena of records,
//  both doubled as they fill. Records are addressed in 8-byte units by
//  32 bits: 32 GiB of records at most.
#define ACCOUNT_TABLE_SLOTS_MIN       1024
#define ACCOUNT_TABLE_ARENA_BYTES_MIN (64 * 1024)
#define ACCOUNT_TABLE_ARENA_BYTES_MAX ((size_t)UINT32_MAX * 8)

typedef struct {
    uint32_t hash;
    uint32_t record; // arena offset / 8; 0 = empty slot
} slot_t;

//  A record: the value (value_bytes, rounded up to 8), then the name's
//  length in one byte and the name.
struct account_table {
    slot_t *slots;
    size_t slot_mask; // slot count - 1
    size_t records;
    char *arena; // records, 8-byte aligned, from offset 8
    size_t arena_bytes;
    size_t arena_size;
    size_t value_bytes; // rounded up to 8
};

account_table_t *account_table_new (size_t value_bytes)
{
    assert (value_bytes <= ACCOUNT_TABLE_VALUE_BYTES_MAX);
    account_table_t *self = (account_table_t *)calloc (1, sizeof (account_table_t));
    if (!self)
        return NULL;
    self->value_bytes = (value_bytes + 7) & ~(size_t)7;
    self->slots = (slot_t *)calloc (ACCOUNT_TABLE_SLOTS_MIN, sizeof (slot_t));
    self->slot_mask = ACCOUNT_TABLE_SLOTS_MIN - 1;
    self->arena = (char *)malloc (ACCOUNT_TABLE_ARENA_BYTES_MIN);
    self->arena_size = ACCOUNT_TABLE_ARENA_BYTES_MIN;
    self->arena_bytes = 8; // record 0 stands for an empty slot
    if (!self->slots || !self->arena)
        account_table_destroy (&self);
    return self;
}

void account_table_destroy (account_table_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->slots);
        free ((*self_p)->arena);
        free (*self_p);
        *self_p = NULL;
    }
}

static char *s_record (account_table_t *self, uint32_t record)
{
    return self->arena + (size_t)record * 8;
}

//  The record's name length byte; its name follows.
static uint8_t *s_name_bytes (account_table_t *self, uint32_t record)
{
    return (uint8_t *)s_record (self, record) + self->value_bytes;
}

//  The account's record, or 0 with *slot_p the empty slot where it goes.
static uint32_t s_find (account_table_t *self, const char *account, size_t bytes,
                        uint32_t hash, size_t *slot_p)
{
    size_t slot = hash & self->slot_mask;
    for (;; slot = (slot + 1) & self->slot_mask) {
        slot_t *entry = &self->slots[slot];
        if (!entry->record)
            break;
        const uint8_t *name = s_name_bytes (self, entry->record);
        if (entry->hash == hash && name[0] == bytes &&
            memcmp (name + 1, account, bytes) == 0)
            return entry->record;
    }
    *slot_p = slot;
    return 0;
}

//  Doubles the slots, placing every record again by its stored hash.
static int s_grow (account_table_t *self)
{
    size_t count = (self->slot_mask + 1) * 2;
    slot_t *slots = (slot_t *)calloc (count, sizeof (slot_t));
    if (!slots)
        return -1;
    for (size_t old = 0; old <= self->slot_mask; old++) {
        slot_t entry = self->slots[old];
        if (!entry.record)
            continue;
        size_t slot = entry.hash & (count - 1);
        while (slots[slot].record)
            slot = (slot + 1) & (count - 1);
        slots[slot] = entry;
    }
    free (self->slots);
    self->slots = slots;
    self->slot_mask = count - 1;
    return 0;
}

//  Appends a record with a zeroed value into the empty slot found for it
//  (found again after the slots grow). Returns the record, or 0.
static uint32_t s_add (account_table_t *self, const char *account, size_t bytes,
                       uint32_t hash, size_t slot)
{
    if ((self->records + 1) * 2 > self->slot_mask + 1) {
        if (s_grow (self))
            return 0;
        uint32_t found = s_find (self, account, bytes, hash, &slot);
        assert (!found);
    }
    size_t record_bytes = (self->value_bytes + 1 + bytes + 7) & ~(size_t)7;
    size_t needed = self->arena_bytes + record_bytes;
    if (needed > self->arena_size) {
        size_t size = self->arena_size * 2;
        char *arena = size <= ACCOUNT_TABLE_ARENA_BYTES_MAX
                          ? (char *)realloc (self->arena, size)
                          : NULL;
        if (!arena)
            return 0;
        self->arena = arena;
        self->arena_size = size;
    }
    uint32_t record = (uint32_t)(self->arena_bytes / 8);
    memset (s_record (self, record), 0, self->value_bytes);
    uint8_t *name = s_name_bytes (self, record);
    name[0] = (uint8_t)bytes;
    memcpy (name + 1, account, bytes);
    self->arena_bytes = needed;
    self->slots[slot] = (slot_t){hash, record};
    self->records++;
    return record;
}

uint32_t account_table_find (account_table_t *self, const char *account)
{
    size_t bytes = strlen (account), slot;
    assert (bytes <= EVENT_ACCOUNT_BYTES_MAX);
    return s_find (self, account, bytes, (uint32_t)key_hash_bytes (account, bytes),
                   &slot);
}

uint32_t account_table_ensure (account_table_t *self, const char *account)
{
    size_t bytes = strlen (account), slot;
    assert (bytes <= EVENT_ACCOUNT_BYTES_MAX);
    uint32_t hash = (uint32_t)key_hash_bytes (account, bytes);
    uint32_t record = s_find (self, account, bytes, hash, &slot);
    return record ? record : s_add (self, account, bytes, hash, slot);
}

void *account_table_value (account_table_t *self, uint32_t record)
{
    assert (record >= 1 && (size_t)record * 8 < self->arena_bytes);
    return s_record (self, record);
}

const char *account_table_name (account_table_t *self, uint32_t record, size_t *bytes)
{
    assert (record >= 1 && (size_t)record * 8 < self->arena_bytes);
    const uint8_t *name = s_name_bytes (self, record);
    *bytes = name[0];
    return (const char *)name + 1;
}

size_t account_table_size (account_table_t *self)
{
    return self->records;
}
