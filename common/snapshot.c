/*  snapshot — snapshots of a folded state (see snapshot.h).

    File: file_head_t, the owner's body, then the BLAKE2b-256 of both.
*/
#include "snapshot.h"

#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SNAPSHOT_MAGIC          "LDGSNAP\n"
#define SNAPSHOT_FORMAT_VERSION 1 // this file's layout; the fold's is apart
#define SNAPSHOT_HASH_BYTES     crypto_generichash_BYTES
#define SNAPSHOT_DIGITS         20
#define SNAPSHOT_PATH_BYTES_MAX 4096
#define SNAPSHOT_WRITE_BYTES    (64 * 1024) // the writer's buffer, on the child's stack
#define SNAPSHOT_LIST_MAX       64          // files looked at; more are not ours

typedef struct {
    char magic[8];
    uint32_t format_version;
    uint32_t state_version;
    int64_t seq;
} file_head_t;

struct snapshot {
    const char *data_dir;
    uint32_t version;
    pid_t child; // writing; 0 if none
    int64_t child_seq;
    int64_t seq;
};

typedef struct {
    int fd;
    crypto_generichash_state hash;
    size_t used;
    char buffer[SNAPSHOT_WRITE_BYTES];
} writer_t;

snapshot_t *snapshot_new (const char *data_dir, uint32_t version)
{
    snapshot_t *self = calloc (1, sizeof *self);
    if (self) {
        self->data_dir = data_dir;
        self->version = version;
    }
    return self;
}

void snapshot_destroy (snapshot_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        snapshot_poll (*self_p, true);
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_path (snapshot_t *self, int64_t seq, const char *suffix, char *path,
                    size_t size)
{
    snprintf (path, size, "%s/snapshot-%0*" PRId64 "%s", self->data_dir, SNAPSHOT_DIGITS,
              seq, suffix);
}

static int s_flush (writer_t *writer)
{
    size_t done = 0;
    while (done < writer->used) {
        ssize_t n = write (writer->fd, writer->buffer + done, writer->used - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    writer->used = 0;
    return 0;
}

static int s_write_fn (void *arg, const void *data, size_t bytes)
{
    writer_t *writer = arg;
    crypto_generichash_update (&writer->hash, data, bytes);
    const char *p = data;
    while (bytes > 0) {
        if (writer->used == sizeof writer->buffer && s_flush (writer))
            return -1;
        size_t room = sizeof writer->buffer - writer->used;
        size_t take = bytes < room ? bytes : room;
        memcpy (writer->buffer + writer->used, p, take);
        writer->used += take;
        p += take;
        bytes -= take;
    }
    return 0;
}

//  The whole write: temp, fsync, rename, fsync the folder. Allocates
//  nothing (a forked child runs it). 0, or -1 with errno and *call set.
static int s_write_file (snapshot_t *self, int64_t seq, snapshot_save_fn *save_fn,
                         void *state, const char **call)
{
    char path[SNAPSHOT_PATH_BYTES_MAX], temp[SNAPSHOT_PATH_BYTES_MAX];
    s_path (self, seq, ".bin", path, sizeof path);
    s_path (self, seq, ".tmp", temp, sizeof temp);
    writer_t writer;
    writer.used = 0;
    crypto_generichash_init (&writer.hash, NULL, 0, SNAPSHOT_HASH_BYTES);
    *call = "open";
    writer.fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (writer.fd < 0)
        return -1;
    file_head_t head = {SNAPSHOT_MAGIC, SNAPSHOT_FORMAT_VERSION, self->version, seq};
    unsigned char hash[SNAPSHOT_HASH_BYTES];
    *call = "write";
    int rc =
        s_write_fn (&writer, &head, sizeof head) || save_fn (state, s_write_fn, &writer);
    if (rc == 0) {
        crypto_generichash_final (&writer.hash, hash, sizeof hash);
        if (writer.used + sizeof hash > sizeof writer.buffer && s_flush (&writer))
            rc = -1;
        else {
            memcpy (writer.buffer + writer.used, hash, sizeof hash);
            writer.used += sizeof hash;
            rc = s_flush (&writer);
        }
    }
    if (rc == 0 && (*call = "fsync", fsync (writer.fd)))
        rc = -1;
    int saved_errno = errno;
    close (writer.fd);
    if (rc == 0 && (*call = "rename", rename (temp, path)))
        rc = -1, saved_errno = errno;
    if (rc) {
        unlink (temp);
        errno = saved_errno;
        return -1;
    }
    *call = "fsync folder";
    int dir = open (self->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dir < 0 || fsync (dir) ? -1 : 0;
    if (dir >= 0)
        close (dir);
    return rc;
}

//  The seqs of snapshot-<seq><suffix> files, newest first; *count of them.
static size_t s_list (snapshot_t *self, const char *suffix, int64_t *seqs)
{
    DIR *dir = opendir (self->data_dir);
    size_t count = 0, suffix_bytes = strlen (suffix);
    struct dirent *entry;
    while (dir && count < SNAPSHOT_LIST_MAX && (entry = readdir (dir))) {
        const char *name = entry->d_name;
        if (strncmp (name, "snapshot-", 9) ||
            strlen (name) != 9 + SNAPSHOT_DIGITS + suffix_bytes ||
            strcmp (name + 9 + SNAPSHOT_DIGITS, suffix))
            continue;
        int64_t seq = 0;
        bool digits = true;
        for (int i = 0; i < SNAPSHOT_DIGITS; i++) {
            char c = name[9 + i];
            digits = digits && c >= '0' && c <= '9' && seq <= (INT64_MAX - 9) / 10;
            seq = digits ? seq * 10 + (c - '0') : 0;
        }
        if (digits)
            seqs[count++] = seq;
    }
    if (dir)
        closedir (dir);
    for (size_t i = 1; i < count; i++) // a few files: insertion sort, newest first
        for (size_t j = i; j > 0 && seqs[j] > seqs[j - 1]; j--) {
            int64_t swap = seqs[j];
            seqs[j] = seqs[j - 1];
            seqs[j - 1] = swap;
        }
    return count;
}

//  Checks one file and loads it through load_fn; reason says why not.
static int s_load_one (snapshot_t *self, int64_t seq, snapshot_load_fn *load_fn,
                       void *state, const char **reason)
{
    char path[SNAPSHOT_PATH_BYTES_MAX];
    s_path (self, seq, ".bin", path, sizeof path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    struct stat status;
    *reason = "cannot be read";
    if (fd < 0 || fstat (fd, &status)) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    size_t bytes = (size_t)status.st_size;
    const uint8_t *data =
        bytes ? mmap (NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close (fd);
    if (data == MAP_FAILED)
        return -1;
    file_head_t head;
    int rc = -1;
    unsigned char hash[SNAPSHOT_HASH_BYTES];
    if (bytes < sizeof head + SNAPSHOT_HASH_BYTES)
        *reason = "is too short";
    else if (memcpy (&head, data, sizeof head),
             memcmp (head.magic, SNAPSHOT_MAGIC, 8) ||
                 head.format_version != SNAPSHOT_FORMAT_VERSION)
        *reason = "is not a snapshot of this format";
    else if (head.state_version != self->version)
        *reason = "is of another fold version";
    else if (crypto_generichash (hash, sizeof hash, data, bytes - sizeof hash, NULL, 0),
             sodium_memcmp (hash, data + bytes - sizeof hash, sizeof hash))
        *reason = "fails its checksum";
    else if (head.seq != seq || load_fn (state, seq, data + sizeof head,
                                         bytes - sizeof head - SNAPSHOT_HASH_BYTES))
        *reason = "does not hold a state this log and this version can load";
    else
        rc = 0;
    munmap ((void *)data, bytes);
    return rc;
}

int64_t snapshot_load (snapshot_t *self, int64_t max_seq, snapshot_load_fn *load_fn,
                       void *state)
{
    assert (self && load_fn);
    int64_t seqs[SNAPSHOT_LIST_MAX];
    char path[SNAPSHOT_PATH_BYTES_MAX];
    size_t count = s_list (self, ".tmp", seqs);
    for (size_t i = 0; i < count; i++) { // writes cut short
        s_path (self, seqs[i], ".tmp", path, sizeof path);
        unlink (path);
    }
    count = s_list (self, ".bin", seqs);
    for (size_t i = 0; i < count; i++) {
        if (seqs[i] > max_seq)
            continue;
        const char *reason = "";
        if (s_load_one (self, seqs[i], load_fn, state, &reason) == 0) {
            self->seq = seqs[i];
            return seqs[i];
        }
        s_path (self, seqs[i], ".bin", path, sizeof path);
        log_warn ("snapshot %s %s: ignored", path, reason);
    }
    return 0;
}

int snapshot_write (snapshot_t *self, int64_t seq, snapshot_save_fn *save_fn, void *state)
{
    assert (self && save_fn);
    const char *call = "";
    if (s_write_file (self, seq, save_fn, state, &call)) {
        log_error ("snapshot at seq %" PRId64 " in %s: %s failed: %s", seq,
                   self->data_dir, call, strerror (errno));
        return -1;
    }
    self->seq = seq;
    snapshot_poll (self, false);
    return 0;
}

int snapshot_start (snapshot_t *self, int64_t seq, snapshot_save_fn *save_fn, void *state)
{
    assert (self && save_fn);
    if (self->child)
        return -1;
    pid_t child = fork ();
    if (child < 0) {
        log_error ("snapshot: fork failed: %s", strerror (errno));
        return -1;
    }
    if (child == 0) {
        //  Nothing the parent holds (its listening sockets above all) may
        //  outlive it in the child: a restart must find its port free.
        //  The child opens what it writes by path.
        syscall (SYS_close_range, 3U, ~0U, 0U);
        const char *call = "";
        _exit (s_write_file (self, seq, save_fn, state, &call) ? 1 : 0);
    }
    self->child = child;
    self->child_seq = seq;
    return 0;
}

//  Keeps the newest SNAPSHOT_KEEP snapshots.
static void s_prune (snapshot_t *self)
{
    int64_t seqs[SNAPSHOT_LIST_MAX];
    char path[SNAPSHOT_PATH_BYTES_MAX];
    size_t count = s_list (self, ".bin", seqs);
    for (size_t i = SNAPSHOT_KEEP; i < count; i++) {
        s_path (self, seqs[i], ".bin", path, sizeof path);
        unlink (path);
    }
}

int64_t snapshot_poll (snapshot_t *self, bool wait)
{
    assert (self);
    int64_t done = 0;
    if (self->child) {
        int status = 0;
        pid_t pid = waitpid (self->child, &status, wait ? 0 : WNOHANG);
        if (pid == 0)
            return 0;
        if (pid == self->child && WIFEXITED (status) && WEXITSTATUS (status) == 0) {
            self->seq = done = self->child_seq;
            log_info ("snapshot at seq %" PRId64 " written", done);
        } else
            log_error ("snapshot at seq %" PRId64 " failed (child status %d)",
                       self->child_seq, status);
        self->child = 0;
    }
    s_prune (self);
    return done;
}

bool snapshot_running (snapshot_t *self)
{
    assert (self);
    return self->child != 0;
}

int64_t snapshot_seq (snapshot_t *self)
{
    assert (self);
    return self->seq;
}

int snapshot_remove_all (snapshot_t *self)
{
    assert (self);
    int64_t seqs[SNAPSHOT_LIST_MAX];
    char path[SNAPSHOT_PATH_BYTES_MAX];
    const char *suffixes[] = {".bin", ".tmp"};
    for (size_t s = 0; s < 2; s++) {
        size_t count = s_list (self, suffixes[s], seqs);
        for (size_t i = 0; i < count; i++) {
            s_path (self, seqs[i], suffixes[s], path, sizeof path);
            if (unlink (path) && errno != ENOENT) {
                log_error ("unlink(\"%s\") failed: %s", path, strerror (errno));
                return -1;
            }
        }
    }
    self->seq = 0;
    return 0;
}
