/*  dedupe — an idempotency window: which seq holds an event id. The
    stream's ingest decides duplicates with it; the transaction's write
    model keeps one over the events it folded, so a key it has surely
    never seen is not asked about.

    Remembers the ids of the last `window` events as an open-addressing
    table of seqs (linear probing) plus a ring of 64-bit id hashes indexed
    by seq, so one remembered id costs about 24 bytes (8 in the ring, 8-16
    in the table at a load factor of at most one half) instead of the id
    itself. A hash hit is only a candidate: the caller's confirm function
    reads the event at that seq and compares the id, so a hash collision is
    never taken as a duplicate.

    Ids are added in seq order. Entries added since the last
    dedupe_settle() can be taken back (dedupe_undo) when a commit fails;
    dedupe_settle() forgets ids that fell out of the window.
*/
#ifndef DEDUPE_H_INCLUDED
#define DEDUPE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dedupe dedupe_t;

//  True if the event stored at seq has this id. Called only on hash hits.
typedef bool (dedupe_confirm_fn) (void *arg, int64_t seq, const char *id);

//  window: ids remembered; slack: most ids added between two settles.
//  Returns NULL when the memory cannot be allocated.
dedupe_t *dedupe_new (size_t window, size_t slack, dedupe_confirm_fn *confirm, void *arg);
void dedupe_destroy (dedupe_t **self_p);

//  The seq holding id, or 0 when the id is not in the window.
int64_t dedupe_find (dedupe_t *self, const char *id);

//  Makes seq the first one to be added, before any add (asserted): a
//  window rebuilt from a log's tail skips the ids it would forget.
void dedupe_start_at (dedupe_t *self, int64_t seq);

//  Remembers id at seq; seq must be one more than the last seq added
//  (asserted), and at most `slack` adds may be pending.
void dedupe_add (dedupe_t *self, const char *id, int64_t seq);

//  Asks the memory for what adding id at seq and settling will touch
//  (its slot, and that of the id it pushes out of the window), so a
//  caller with other work in between does not wait for each in turn.
void dedupe_prefetch (dedupe_t *self, const char *id, int64_t seq);

//  dedupe_add, and the seq already holding id (0 if none), found on the
//  same walk of the table: one probe run instead of a find's and an add's
//  (for rebuilding the window from a log, where every id is checked).
int64_t dedupe_add_checked (dedupe_t *self, const char *id, int64_t seq);

//  Writes bytes of a saved window; 0 or -1 (snapshot.h's writer).
typedef int (dedupe_write_fn) (void *writer, const void *data, size_t bytes);

//  Writes the settled window for an owner's snapshot: its first and last
//  seq, then each seq's id hash in seq order (8 bytes per id, no id
//  itself). Allocates nothing (a forked child may run it). 0, or
//  write_fn's -1.
int dedupe_save (dedupe_t *self, dedupe_write_fn *write_fn, void *writer);

//  Restores what dedupe_save wrote into a window to which nothing was
//  added yet, taking the bytes from *data (*left of them, from disk:
//  checked) and moving past them. Keeps the last `window` ids of a
//  larger saved window. 0, or -1 with the window to be destroyed.
int dedupe_load (dedupe_t *self, const uint8_t **data, size_t *left);

//  Forgets every add since the last settle, newest first.
void dedupe_undo (dedupe_t *self);

//  Makes the pending adds permanent and forgets ids older than the
//  window.
void dedupe_settle (dedupe_t *self);

#endif
