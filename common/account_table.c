/*  account_table — see account_table.h. */
#include "account_table.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "key_hash.h"

//  Slots: a power of two, at most half full, doubled as they fill.
#define ACCOUNT_TABLE_SLOTS_MIN 1024
//  Records are addressed in 8-byte units by 32 bits (32 GiB at most), in
//  pages that never move (so values keep their address) and that no
//  record straddles.
#define ACCOUNT_TABLE_PAGE_UNITS 8192 // 64 KiB
#define ACCOUNT_TABLE_PAGE_BYTES (ACCOUNT_TABLE_PAGE_UNITS * 8)
#define ACCOUNT_TABLE_PAGES_MAX  ((size_t)UINT32_MAX / ACCOUNT_TABLE_PAGE_UNITS + 1)
//  A record's size in units: its value, the name's length byte, the name
//  and its NUL.
#define ACCOUNT_TABLE_UNITS_MAX                                                          \
    ((ACCOUNT_TABLE_VALUE_BYTES_MAX + 1 + EVENT_ACCOUNT_BYTES_MAX + 1 + 7) / 8)
_Static_assert(ACCOUNT_TABLE_UNITS_MAX <= ACCOUNT_TABLE_PAGE_UNITS,
               "a record fits a page");

typedef struct {
    uint32_t hash;
    uint32_t record; // 0 = empty slot
} slot_t;

//  A record: the value (value_bytes, rounded up to 8), then the name's
//  length in one byte, the name and a NUL. A removed record keeps its
//  length (so a walk can step over it) and gets an empty name; its value
//  holds the next removed record of its size.
struct account_table {
    slot_t *slots;
    size_t slot_mask;     // slot count - 1
    size_t records;       // in the table, removed ones not counted
    char **pages;         // of ACCOUNT_TABLE_PAGE_BYTES; record 0 is page 0's first unit
    uint32_t *page_units; // units used in each page
    size_t page_count;
    size_t page_capacity;
    size_t value_bytes;                            // rounded up to 8
    uint32_t removed[ACCOUNT_TABLE_UNITS_MAX + 1]; // by record size: the last removed
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
    if (!self->slots)
        account_table_destroy (&self);
    return self;
}

void account_table_destroy (account_table_t **self_p)
{
    assert (self_p);
    account_table_t *self = *self_p;
    if (self) {
        for (size_t page = 0; page < self->page_count; page++)
            free (self->pages[page]);
        free (self->pages);
        free (self->page_units);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

static char *s_record (account_table_t *self, uint32_t record)
{
    return self->pages[record / ACCOUNT_TABLE_PAGE_UNITS] +
           (size_t)(record % ACCOUNT_TABLE_PAGE_UNITS) * 8;
}

//  The record's name length byte; its name follows.
static uint8_t *s_name_bytes (account_table_t *self, uint32_t record)
{
    return (uint8_t *)s_record (self, record) + self->value_bytes;
}

static size_t s_units (account_table_t *self, size_t name_bytes)
{
    return (self->value_bytes + 1 + name_bytes + 1 + 7) / 8;
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
        if (entry->hash != hash)
            continue;
        const uint8_t *name = s_name_bytes (self, entry->record);
        if (name[0] == bytes && memcmp (name + 1, account, bytes) == 0)
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

//  Room for a record of units: a removed one of that size, or the end of
//  the last page, or a new page. Returns the record, or 0.
static uint32_t s_room (account_table_t *self, size_t units)
{
    uint32_t record = self->removed[units];
    if (record) {
        memcpy (&self->removed[units], s_record (self, record), sizeof (uint32_t));
        return record;
    }
    size_t last = self->page_count - 1;
    if (self->page_count == 0 ||
        self->page_units[last] + units > ACCOUNT_TABLE_PAGE_UNITS) {
        if (self->page_count == ACCOUNT_TABLE_PAGES_MAX)
            return 0;
        if (self->page_count == self->page_capacity) {
            size_t capacity = self->page_capacity ? self->page_capacity * 2 : 16;
            char **pages = (char **)realloc (self->pages, capacity * sizeof (char *));
            if (pages)
                self->pages = pages;
            uint32_t *page_units =
                (uint32_t *)realloc (self->page_units, capacity * sizeof (uint32_t));
            if (page_units)
                self->page_units = page_units;
            if (!pages || !page_units)
                return 0;
            self->page_capacity = capacity;
        }
        char *page = (char *)malloc (ACCOUNT_TABLE_PAGE_BYTES);
        if (!page)
            return 0;
        last = self->page_count++;
        self->pages[last] = page;
        self->page_units[last] = last == 0; // record 0 stands for an empty slot
    }
    record = (uint32_t)(last * ACCOUNT_TABLE_PAGE_UNITS + self->page_units[last]);
    self->page_units[last] += (uint32_t)units;
    return record;
}

//  Adds a record with a zeroed value into the empty slot found for it
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
    uint32_t record = s_room (self, s_units (self, bytes));
    if (!record)
        return 0;
    memset (s_record (self, record), 0, self->value_bytes);
    uint8_t *name = s_name_bytes (self, record);
    name[0] = (uint8_t)bytes;
    memcpy (name + 1, account, bytes);
    name[1 + bytes] = '\0';
    self->slots[slot] = (slot_t){hash, record};
    self->records++;
    return record;
}

uint32_t account_table_find (account_table_t *self, const char *account)
{
    size_t bytes = strlen (account), slot;
    if (bytes > EVENT_ACCOUNT_BYTES_MAX)
        return 0; // never added
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

//  Backward-shift deletion: entries after the hole that may sit in it
//  move back, so every entry stays reachable without tombstones.
void account_table_remove (account_table_t *self, uint32_t record)
{
    uint8_t *name = s_name_bytes (self, record);
    assert (name[1] != '\0');
    size_t mask = self->slot_mask;
    size_t hole = key_hash_bytes ((const char *)name + 1, name[0]) & mask;
    while (self->slots[hole].record != record) {
        assert (self->slots[hole].record);
        hole = (hole + 1) & mask;
    }
    for (size_t next = (hole + 1) & mask; self->slots[next].record;
         next = (next + 1) & mask) {
        size_t home = self->slots[next].hash & mask;
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            self->slots[hole] = self->slots[next];
            hole = next;
        }
    }
    self->slots[hole] = (slot_t){0, 0};
    name[1] = '\0';
    size_t units = s_units (self, name[0]);
    memcpy (s_record (self, record), &self->removed[units], sizeof (uint32_t));
    self->removed[units] = record;
    self->records--;
}

void *account_table_value (account_table_t *self, uint32_t record)
{
    assert (record >= 1 && record / ACCOUNT_TABLE_PAGE_UNITS < self->page_count);
    return s_record (self, record);
}

const char *account_table_name (account_table_t *self, uint32_t record, size_t *bytes)
{
    assert (record >= 1 && record / ACCOUNT_TABLE_PAGE_UNITS < self->page_count);
    const uint8_t *name = s_name_bytes (self, record);
    *bytes = name[0];
    return (const char *)name + 1;
}

size_t account_table_size (account_table_t *self)
{
    return self->records;
}

uint32_t account_table_next (account_table_t *self, uint32_t record)
{
    size_t at = record ? record + s_units (self, s_name_bytes (self, record)[0]) : 1;
    for (;;) {
        size_t page = at / ACCOUNT_TABLE_PAGE_UNITS;
        if (page >= self->page_count)
            return 0;
        if (at % ACCOUNT_TABLE_PAGE_UNITS >= self->page_units[page]) {
            at = (page + 1) * ACCOUNT_TABLE_PAGE_UNITS;
            continue;
        }
        const uint8_t *name = s_name_bytes (self, (uint32_t)at);
        if (name[1] != '\0')
            return (uint32_t)at;
        at += s_units (self, name[0]);
    }
}
