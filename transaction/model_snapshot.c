/*  model_snapshot — the write model's snapshots (see model_snapshot.h).
 */
#include "model_snapshot.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "log.h"
#include "snapshot.h"

struct model_snapshot {
    snapshot_t *snapshot;
    int64_t every;
    int64_t started_ms; // zclock_mono of the last fork; 0: none yet
    bool discarded;
};

model_snapshot_t *model_snapshot_new (const char *data_dir, int64_t every)
{
    assert (data_dir && every >= 0);
    if (mkdir (data_dir, 0755) && errno != EEXIST) {
        log_error ("mkdir(\"%s\") failed: %s", data_dir, strerror (errno));
        return NULL;
    }
    model_snapshot_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->every = every;
    self->snapshot = snapshot_new (data_dir, WRITE_MODEL_FOLD_VERSION);
    if (!self->snapshot)
        model_snapshot_destroy (&self);
    return self;
}

void model_snapshot_destroy (model_snapshot_t **self_p)
{
    assert (self_p);
    model_snapshot_t *self = *self_p;
    if (self) {
        snapshot_destroy (&self->snapshot);
        free (self);
        *self_p = NULL;
    }
}

static int s_save (void *state, snapshot_write_fn *write_fn, void *writer)
{
    return write_model_save ((write_model_t *)state, write_fn, writer);
}

//  A body replaces the (empty) model only when it loads whole.
static int s_load (void *state, int64_t seq, const uint8_t *body, size_t bytes)
{
    write_model_t **model_p = state;
    write_model_t *loaded = write_model_new ();
    if (!loaded || write_model_load (loaded, seq, body, bytes)) {
        write_model_destroy (&loaded);
        return -1;
    }
    write_model_destroy (model_p);
    *model_p = loaded;
    return 0;
}

int64_t model_snapshot_load (model_snapshot_t *self, write_model_t **model_p)
{
    assert (self && model_p && *model_p);
    return snapshot_load (self->snapshot, INT64_MAX, s_load, model_p);
}

void model_snapshot_on_applied (model_snapshot_t *self, write_model_t *model)
{
    assert (self && model);
    snapshot_poll (self->snapshot, false);
    int64_t seq = write_model_applied_seq (model);
    if (self->every == 0 || self->discarded || snapshot_running (self->snapshot) ||
        seq - snapshot_seq (self->snapshot) < self->every ||
        (self->started_ms &&
         zclock_mono () - self->started_ms < SNAPSHOT_INTERVAL_MS_MIN))
        return;
    self->started_ms = zclock_mono ();
    snapshot_start (self->snapshot, seq, s_save, model);
}

void model_snapshot_final (model_snapshot_t *self, write_model_t *model)
{
    assert (self && model);
    snapshot_poll (self->snapshot, true);
    int64_t seq = write_model_applied_seq (model);
    if (!self->discarded && seq > snapshot_seq (self->snapshot))
        snapshot_write (self->snapshot, seq, s_save, model);
}

void model_snapshot_discard (model_snapshot_t *self)
{
    assert (self);
    if (self->discarded)
        return;
    self->discarded = true;
    snapshot_poll (self->snapshot, true);
    if (snapshot_remove_all (self->snapshot) == 0)
        log_warn ("the stream's log is not the one this instance's snapshots folded: "
                  "removed them; a restart folds the stream's log from seq 1");
}
