/*  snapshot — accounting's snapshots of the folded state, so a restart
    folds only the replica's tail.

    <data-dir>/snapshot-<seq, 20 digits>.bin holds the state at seq: a head
    (magic, this file's format version, the fold's version, seq), the
    body accounts_save writes, and a BLAKE2b-256 checksum of all that. It
    is written to snapshot-<seq>.tmp, fsync'ed, renamed, and the folder
    fsync'ed. A snapshot with another fold version, a bad checksum or a
    body that does not load is ignored (logged), and the next older one
    is tried; leftover *.tmp files (a write cut short) are removed.

    Off the hot path: snapshot_start() forks, and the child writes the
    state as it was at the fork (copy-on-write) while the loop goes on;
    snapshot_poll() reaps it. The child only writes and hashes: it
    allocates nothing and touches no socket. The newest two snapshots are
    kept, older ones removed.
*/
#ifndef SNAPSHOT_H_INCLUDED
#define SNAPSHOT_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "accounts.h"

#define SNAPSHOT_EVERY_DEFAULT 1000000 // events between snapshots: ~a second of folding
#define SNAPSHOT_KEEP          2       // the newest, and one to fall back on

typedef struct snapshot snapshot_t;

//  The snapshots of data_dir (borrowed; must outlive the object).
snapshot_t *snapshot_new (const char *data_dir);
//  Waits for a child still writing, then frees. Idempotent; nulls *self_p.
void snapshot_destroy (snapshot_t **self_p);

//  Loads the newest valid snapshot whose seq is at most max_seq into
//  *accounts_p (replaced by a fresh accounts after a failed load).
//  Returns its seq, or 0 if none was loaded (-1: out of memory).
int64_t snapshot_load (snapshot_t *self, int64_t max_seq, accounts_t **accounts_p);

//  Writes the snapshot of accounts now, in this process. 0 or -1 (logged).
int snapshot_write (snapshot_t *self, accounts_t *accounts);

//  Forks a child that writes the snapshot of accounts. 0, or -1 (logged)
//  if the fork failed or a child is still writing.
int snapshot_start (snapshot_t *self, accounts_t *accounts);

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
