/*  model_snapshot — the write model's snapshots in transaction's
    --data-dir, so a start folds only the events after the newest one
    instead of the stream's whole log.

    A snapshot (snapshot.h: temp, fsync, rename, fsync the folder;
    checksummed; versioned by WRITE_MODEL_FOLD_VERSION) holds what
    write_model_save writes: the confirmed balances and settings, the kept
    events and the window of seen ids, i.e. the log's tail that answers
    replays and duplicates. It is taken every `every` events (at most one
    per SNAPSHOT_INTERVAL_MS_MIN, forked off the loop) and at a clean stop.
    The snapshots are only a cache of the stream's log: when the stream's
    log turns out not to be the one they folded, they are removed.
*/
#ifndef MODEL_SNAPSHOT_H_INCLUDED
#define MODEL_SNAPSHOT_H_INCLUDED

#include <stdint.h>

#include "write_model.h"

typedef struct model_snapshot model_snapshot_t;

//  The snapshots in data_dir (borrowed; created if missing), one every
//  `every` events (0: at clean stops only). NULL (logged) when the
//  folder cannot be made.
model_snapshot_t *model_snapshot_new (const char *data_dir, int64_t every);
//  Waits for a child still writing; idempotent, nulls *self_p.
void model_snapshot_destroy (model_snapshot_t **self_p);

//  Replaces *model_p, a new (empty) model, with the newest valid
//  snapshot's. Returns its seq, or 0 when none loaded (*model_p as was).
int64_t model_snapshot_load (model_snapshot_t *self, write_model_t **model_p);

//  After a run of events was folded: reaps a finished child, and forks
//  one for the model's state when it is due.
void model_snapshot_on_applied (model_snapshot_t *self, write_model_t *model);

//  At a clean stop: waits for a child, then writes the model's state
//  unless a snapshot already holds its seq.
void model_snapshot_final (model_snapshot_t *self, write_model_t *model);

//  The stream's log is not the history the snapshots folded: removes
//  them (once), so the next start folds the log from seq 1.
void model_snapshot_discard (model_snapshot_t *self);

#endif
