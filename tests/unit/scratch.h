/*  scratch — a test's own mkdtemp directory holding the data dir of a
    log (its events/ folder and first segment named), removed whole at the
    end, and whole-file reads: for the log's unit tests.
*/
#ifndef SCRATCH_H_INCLUDED
#define SCRATCH_H_INCLUDED

#include <assert.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    char dir[256];
    char data[300];   // the data dir
    char events[320]; // its events/ folder
    char path[360];   // the first segment
} scratch_t;

//  Under $TMPDIR (or /tmp), named after the test; events/ is made when
//  make_events (a log makes it itself otherwise).
static inline void scratch_new (scratch_t *scratch, const char *name, bool make_events)
{
    const char *tmp = getenv ("TMPDIR");
    snprintf (scratch->dir, sizeof scratch->dir, "%s/%s.XXXXXX", tmp ? tmp : "/tmp",
              name);
    char *made = mkdtemp (scratch->dir);
    assert (made);
    snprintf (scratch->data, sizeof scratch->data, "%s/data", scratch->dir);
    snprintf (scratch->events, sizeof scratch->events, "%s/events", scratch->data);
    snprintf (scratch->path, sizeof scratch->path, "%s/%020d.jsonl", scratch->events, 1);
    if (make_events) {
        int made_events = zsys_dir_create ("%s", scratch->events);
        assert (made_events == 0);
    }
}

static inline void scratch_destroy (scratch_t *scratch)
{
    zdir_t *dir = zdir_new (scratch->dir, NULL);
    if (dir)
        zdir_remove (dir, true);
    zdir_destroy (&dir);
}

//  The file's bytes, malloc'ed and NUL-terminated; NULL if it cannot be read.
static inline char *scratch_slurp (const char *path, size_t *bytes)
{
    *bytes = 0;
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *data = malloc ((size_t)size + 1);
    if (data && fread (data, 1, (size_t)size, file) != (size_t)size) {
        free (data);
        data = NULL;
    }
    if (data)
        data[size] = '\0';   //  read as a string too
    fclose (file);
    *bytes = (size_t)size;
    return data;
}

#endif
