/*  snapshot — a service's snapshots of its folded state, so a restart
    folds only the log's tail (accounting's balances, the stream's
    versions).

    <data-dir>/snapshot-<seq, 20 digits>.bin holds the state at seq: a head
    (magic, this file's format version, the state's own version, seq), the
    body the owner's save function writes, and a BLAKE2b-256 checksum of
    all that. It is written to snapshot-<seq>.tmp, fsync'ed, renamed, and
    the folder fsync'ed. A snapshot of another state version, with a bad
    checksum, or whose body the owner's load function refuses is ignored
    (logged), and the next older one is tried; leftover *.tmp files (a
    write cut short) are removed.

    Off the hot path: snapshot_start() forks, and the child writes the
    state as it was at the fork (copy-on-write) while the loop goes on;
    snapshot_poll() reaps it. The child only writes and hashes: the save
    function must allocate nothing and touch no socket. The newest two
    snapshots are kept, older ones removed.
*/
#ifndef SNAPSHOT_H_INCLUDED
#define SNAPSHOT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_EVERY_DEFAULT 1000000 // events between snapshots: ~a second of folding
#define SNAPSHOT_KEEP          2       // the newest, and one to fall back on
//  At most one snapshot per this long: a catch-up of millions of events
//  would otherwise write one every --snapshot-every events, each the whole
//  state, on the cores and the disk the catch-up needs.
#define SNAPSHOT_INTERVAL_MS_MIN 30000

typedef struct snapshot snapshot_t;

//  Writes bytes of the body; 0 or -1.
typedef int (snapshot_write_fn) (void *writer, const void *data, size_t bytes);
//  Writes the whole state through write_fn; 0, or write_fn's -1.
typedef int (snapshot_save_fn) (void *state, snapshot_write_fn *write_fn, void *writer);
//  Restores the state at seq from a body (bytes from disk: check them).
//  0, or -1 with the state left as before the call.
typedef int (snapshot_load_fn) (void *state, int64_t seq, const uint8_t *body,
                                size_t bytes);

//  The snapshots of data_dir (borrowed; must outlive the object) of a
//  state whose layout and meaning are version.
snapshot_t *snapshot_new (const char *data_dir, uint32_t version);
//  Waits for a child still writing, then frees. Idempotent; nulls *self_p.
void snapshot_destroy (snapshot_t **self_p);

//  Loads the newest valid snapshot whose seq is at most max_seq through
//  load_fn. Returns its seq, or 0 if none was loaded.
int64_t snapshot_load (snapshot_t *self, int64_t max_seq, snapshot_load_fn *load_fn,
                       void *state);

//  Writes the snapshot of state at seq now, in this process. 0 or -1
//  (logged).
int snapshot_write (snapshot_t *self, int64_t seq, snapshot_save_fn *save_fn,
                    void *state);

//  Forks a child that writes the snapshot of state at seq. 0, or -1
//  (logged) if the fork failed or a child is still writing.
int snapshot_start (snapshot_t *self, int64_t seq, snapshot_save_fn *save_fn,
                    void *state);

//  Reaps a finished child (wait: until it ends) and removes old
//  snapshots. Returns the seq of a snapshot it finished, 0 if none did.
int64_t snapshot_poll (snapshot_t *self, bool wait);

//  Whether a child is writing.
bool snapshot_running (snapshot_t *self);

//  Seq of the newest snapshot written or loaded; 0 if none.
int64_t snapshot_seq (snapshot_t *self);

//  Removes every snapshot (--rebuild). 0 or -1 (logged).
int snapshot_remove_all (snapshot_t *self);

#endif
