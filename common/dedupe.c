/*  dedupe — see dedupe.h. Linear probing with backward-shift deletion, so
    the table never fills with tombstones; a slot holds a seq (0 = empty)
    and the seq's id hash lives in the ring, which is also how an entry
    finds its home slot when it has to move.

    A slot also keeps the top bits of its id's hash above the seq, so a
    lookup passes over the other entries of a probe run without reading
    the ring: the table and the ring are tens of MiB, and a ring read is
    a cache miss.
*/
#include "dedupe.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "key_hash.h"

//  A slot is tag << DEDUPE_SEQ_BITS | seq. 2^48 events would take a log
//  of petabytes, past what a file system holds (ext4: 16 TiB per file),
//  so a seq never reaches the tag.
#define DEDUPE_SEQ_BITS 48
#define DEDUPE_SEQ_MASK ((1ULL << DEDUPE_SEQ_BITS) - 1)

struct dedupe {
    uint64_t *slots;  // tag | seq; 0 = empty; at most half full
    size_t slot_mask; // slot count - 1 (a power of two)
    uint64_t *ring;   // id hash of seq s at ring[s % ring_size]
    size_t ring_size; // window + slack: every seq in the table has its hash here
    size_t window;
    size_t slack;
    int64_t oldest_seq; // the table holds exactly the seqs oldest_seq..last_seq
    int64_t last_seq;
    int64_t settled_seq; // adds after this one can still be undone
    dedupe_confirm_fn *confirm;
    void *arg;
};

//  The one string hash (key_hash.h): ids are hashed twice per event.
static uint64_t s_hash (const char *id)
{
    return key_hash (id);
}

dedupe_t *dedupe_new (size_t window, size_t slack, dedupe_confirm_fn *confirm, void *arg)
{
    assert (window > 0 && confirm);
    dedupe_t *self = calloc (1, sizeof (dedupe_t));
    if (!self)
        return NULL;
    self->window = window;
    self->slack = slack;
    self->ring_size = window + slack;
    size_t slot_count = 16;
    while (slot_count < 2 * self->ring_size)
        slot_count *= 2;
    self->slot_mask = slot_count - 1;
    self->slots = calloc (slot_count, sizeof (uint64_t));
    self->ring = calloc (self->ring_size, sizeof (uint64_t));
    if (!self->slots || !self->ring) {
        dedupe_destroy (&self);
        return NULL;
    }
    self->oldest_seq = 1;
    self->confirm = confirm;
    self->arg = arg;
    return self;
}

void dedupe_destroy (dedupe_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        dedupe_t *self = *self_p;
        free (self->slots);
        free (self->ring);
        free (self);
        *self_p = NULL;
    }
}

static uint64_t s_hash_of (dedupe_t *self, int64_t seq)
{
    return self->ring[(uint64_t)seq % self->ring_size];
}

static uint64_t s_tag (uint64_t hash)
{
    return hash & ~DEDUPE_SEQ_MASK;
}

static int64_t s_seq (uint64_t slot)
{
    return (int64_t)(slot & DEDUPE_SEQ_MASK);
}

int64_t dedupe_find (dedupe_t *self, const char *id)
{
    uint64_t hash = s_hash (id);
    uint64_t tag = s_tag (hash);
    for (size_t i = hash & self->slot_mask; self->slots[i];
         i = (i + 1) & self->slot_mask) {
        if (s_tag (self->slots[i]) != tag)
            continue;
        int64_t seq = s_seq (self->slots[i]);
        if (s_hash_of (self, seq) == hash && self->confirm (self->arg, seq, id))
            return seq;
    }
    return 0;
}

void dedupe_start_at (dedupe_t *self, int64_t seq)
{
    assert (self->last_seq == 0 && seq >= 1);
    self->oldest_seq = seq;
    self->last_seq = self->settled_seq = seq - 1;
}

//  Adds id at seq; with check, also returns the seq already holding it,
//  from the probe run the add walks anyway.
static int64_t s_add (dedupe_t *self, const char *id, int64_t seq, bool check)
{
    assert (seq == self->last_seq + 1);
    assert ((size_t)(seq - self->settled_seq) <= self->slack);
    assert ((uint64_t)seq <= DEDUPE_SEQ_MASK);
    uint64_t hash = s_hash (id);
    uint64_t tag = s_tag (hash);
    int64_t found = 0;
    size_t i = hash & self->slot_mask;
    for (; self->slots[i]; i = (i + 1) & self->slot_mask) {
        int64_t other = s_seq (self->slots[i]);
        if (check && !found && s_tag (self->slots[i]) == tag &&
            s_hash_of (self, other) == hash && self->confirm (self->arg, other, id))
            found = other;
    }
    self->ring[(uint64_t)seq % self->ring_size] = hash;
    self->slots[i] = tag | (uint64_t)seq;
    self->last_seq = seq;
    return found;
}

void dedupe_add (dedupe_t *self, const char *id, int64_t seq)
{
    s_add (self, id, seq, false);
}

int dedupe_save (dedupe_t *self, dedupe_write_fn *write_fn, void *writer)
{
    assert (self->settled_seq == self->last_seq);
    int64_t range[2] = {self->oldest_seq, self->last_seq};
    if (write_fn (writer, range, sizeof range))
        return -1;
    //  The ring holds the seqs in order, wrapped at most once: two runs.
    int64_t seq = self->oldest_seq;
    while (seq <= self->last_seq) {
        size_t at = (uint64_t)seq % self->ring_size;
        size_t run = self->ring_size - at;
        if ((int64_t)run > self->last_seq - seq + 1)
            run = (size_t)(self->last_seq - seq + 1);
        if (write_fn (writer, &self->ring[at], run * sizeof self->ring[0]))
            return -1;
        seq += (int64_t)run;
    }
    return 0;
}

int dedupe_load (dedupe_t *self, const uint8_t **data, size_t *left)
{
    assert (self->last_seq == 0 || self->last_seq < self->oldest_seq);
    int64_t range[2];
    if (*left < sizeof range)
        return -1;
    memcpy (range, *data, sizeof range);
    int64_t oldest = range[0], last = range[1];
    if (oldest < 1 || last < oldest - 1 || (uint64_t)last > DEDUPE_SEQ_MASK ||
        (uint64_t)(last - oldest + 1) > (*left - sizeof range) / sizeof (uint64_t))
        return -1;
    const uint8_t *hashes = *data + sizeof range;
    *data += sizeof range + (size_t)(last - oldest + 1) * sizeof (uint64_t);
    *left -= sizeof range + (size_t)(last - oldest + 1) * sizeof (uint64_t);
    int64_t first = last - oldest + 1 > (int64_t)self->window
                        ? last - (int64_t)self->window + 1
                        : oldest;
    self->oldest_seq = first;
    self->last_seq = self->settled_seq = first - 1;
    for (int64_t seq = first; seq <= last; seq++) {
        uint64_t hash;
        memcpy (&hash, hashes + (size_t)(seq - oldest) * sizeof hash, sizeof hash);
        size_t i = hash & self->slot_mask;
        while (self->slots[i])
            i = (i + 1) & self->slot_mask;
        self->ring[(uint64_t)seq % self->ring_size] = hash;
        self->slots[i] = s_tag (hash) | (uint64_t)seq;
        self->last_seq = self->settled_seq = seq;
    }
    return 0;
}

int64_t dedupe_add_checked (dedupe_t *self, const char *id, int64_t seq)
{
    return s_add (self, id, seq, true);
}

static size_t s_slot_of (dedupe_t *self, int64_t seq)
{
    size_t i = s_hash_of (self, seq) & self->slot_mask;
    while (s_seq (self->slots[i]) != seq) {
        assert (self->slots[i]);
        i = (i + 1) & self->slot_mask;
    }
    return i;
}

void dedupe_prefetch (dedupe_t *self, const char *id, int64_t seq)
{
    __builtin_prefetch (&self->slots[s_hash (id) & self->slot_mask], 1);
    int64_t leaving = seq - (int64_t)self->window;
    if (leaving >= self->oldest_seq)
        __builtin_prefetch (&self->slots[s_hash_of (self, leaving) & self->slot_mask], 1);
}

void dedupe_undo (dedupe_t *self)
{
    //  Newest first: each entry then sits where it was put, with nothing
    //  probed past it, so clearing its slot restores the table exactly.
    for (; self->last_seq > self->settled_seq; self->last_seq--)
        self->slots[s_slot_of (self, self->last_seq)] = 0;
}

//  Backward-shift deletion: pull later entries of the probe run into the
//  hole unless their home lies cyclically in (hole, here].
static void s_remove (dedupe_t *self, int64_t seq)
{
    size_t hole = s_slot_of (self, seq);
    size_t i = hole;
    self->slots[hole] = 0;
    while (true) {
        i = (i + 1) & self->slot_mask;
        if (!self->slots[i])
            return;
        size_t home = s_hash_of (self, s_seq (self->slots[i])) & self->slot_mask;
        bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (!stays) {
            self->slots[hole] = self->slots[i];
            self->slots[i] = 0;
            hole = i;
        }
    }
}

void dedupe_settle (dedupe_t *self)
{
    self->settled_seq = self->last_seq;
    while (self->oldest_seq <= self->last_seq - (int64_t)self->window)
        s_remove (self, self->oldest_seq++);
}
