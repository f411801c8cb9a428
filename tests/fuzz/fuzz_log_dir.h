/*  fuzz_log_dir — a temporary data directory holding the events/ folder
    of a one-segment log, for the targets that keep a log on disk: made
    once per process, removed at exit.
*/
#ifndef FUZZ_LOG_DIR_H_INCLUDED
#define FUZZ_LOG_DIR_H_INCLUDED

#include "fuzz_common.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

typedef struct {
    char dir[256];
    char path[300]; // the first segment
} fuzz_log_dir_t;

//  Under $TMPDIR (or /tmp), named after the target.
static inline void fuzz_log_dir_make (fuzz_log_dir_t *self, const char *name)
{
    const char *tmp = getenv ("TMPDIR");
    snprintf (self->dir, sizeof self->dir, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
              name);
    fuzz_check (mkdtemp (self->dir), "mkdtemp %s: %s", self->dir, strerror (errno));
    snprintf (self->path, sizeof self->path, "%s/events/%020d.jsonl", self->dir, 1);
    fuzz_check (zsys_dir_create ("%s/events", self->dir) == 0, "mkdir: %s",
                strerror (errno));
}

static inline void fuzz_log_dir_remove (fuzz_log_dir_t *self)
{
    unlink (self->path);
    zsys_dir_delete ("%s/events", self->dir);
    rmdir (self->dir);
}

#endif
