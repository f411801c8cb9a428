/*  log_file — the append-only events.jsonl with group commit and a sparse
    index (see log_file.h for the contract).

    Invariants: bytes [0, committed_bytes) of the file are valid canonical
    lines for seqs 1..committed_seq; pending holds the lines of seqs
    committed_seq+1..last_seq, to be written at committed_bytes; index[k]
    is the offset of seq k * LOG_FILE_INDEX_STRIDE + 1 (entries may run
    ahead into pending lines). The file holds an exclusive flock so two
    processes never write one log.
*/
#include "log_file.h"

#include "log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

//  Opening reads this much per read(): large enough that syscalls vanish
//  in the scan, small enough not to matter in RSS.
#define LOG_FILE_SCAN_CHUNK_BYTES  (4 * 1024 * 1024)
#define LOG_FILE_PENDING_BYTES_MIN (64 * 1024) // first pending buffer
#define LOG_FILE_INDEX_ENTRIES_MIN 1024

struct log_file {
    int fd;
    char *path;
    int64_t last_seq;
    int64_t last_ts_ms;
    int64_t committed_seq;
    int64_t committed_ts_ms;
    uint64_t committed_bytes;
    uint64_t sync_count;
    char *pending; // lines with their \n, not yet written
    size_t pending_bytes;
    size_t pending_capacity;
    uint64_t *index; // offsets of seqs 1, 1 + STRIDE, 1 + 2 * STRIDE, ...
    size_t index_count;
    size_t index_capacity;
};

//  State of the opening scan.
typedef struct {
    log_file_t *self;
    log_file_scan_fn *scan_fn;
    void *arg;
    char *error;
    size_t error_size;
    uint64_t file_bytes;
    int64_t line_number;
    uint64_t torn_offset; // where a torn tail starts; file_bytes if none
} scan_t;

static int s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int s_fail (char *error, size_t error_size, const char *format, ...)
{
    if (error && error_size > 0) {
        va_list args;
        va_start (args, format);
        vsnprintf (error, error_size, format, args);
        va_end (args);
    }
    return -1;
}

static int s_index_add (log_file_t *self, uint64_t offset)
{
    if (self->index_count == self->index_capacity) {
        size_t capacity =
            self->index_capacity ? self->index_capacity * 2 : LOG_FILE_INDEX_ENTRIES_MIN;
        uint64_t *index = realloc (self->index, capacity * sizeof *index);
        if (!index)
            return -1;
        self->index = index;
        self->index_capacity = capacity;
    }
    self->index[self->index_count++] = offset;
    return 0;
}

//  Index entries for seqs up to seq only.
static void s_index_trim (log_file_t *self, int64_t seq)
{
    size_t count = seq == 0 ? 0 : (size_t)((seq - 1) / LOG_FILE_INDEX_STRIDE) + 1;
    if (self->index_count > count)
        self->index_count = count;
}

static bool s_starts_stride (int64_t seq)
{
    return (seq - 1) % LOG_FILE_INDEX_STRIDE == 0;
}

//  One complete line (without its \n) at offset. Its \n says it was
//  written whole, so whatever is wrong with it is corruption, never a torn
//  tail: refused, wherever the line is.
static int s_scan_line (scan_t *scan, const char *line, size_t bytes, uint64_t offset)
{
    log_file_t *self = scan->self;
    scan->line_number++;
    event_t event;
    char reason[256] = "";
    if (event_parse_canonical (line, bytes, &event, reason, sizeof reason))
        return s_fail (scan->error, scan->error_size,
                       "%s: line %lld (byte offset %llu): %s", self->path,
                       (long long)scan->line_number, (unsigned long long)offset, reason);
    if (event.seq != self->last_seq + 1)
        return s_fail (
            scan->error, scan->error_size,
            "%s: line %lld (byte offset %llu): seq %lld where %lld was expected "
            "(%s)",
            self->path, (long long)scan->line_number, (unsigned long long)offset,
            (long long)event.seq, (long long)self->last_seq + 1,
            event.seq > self->last_seq ? "gap" : "disorder");
    if (self->last_seq > 0 && event.ts_ms < self->last_ts_ms)
        return s_fail (scan->error, scan->error_size,
                       "%s: line %lld (byte offset %llu): ts goes backwards", self->path,
                       (long long)scan->line_number, (unsigned long long)offset);
    if (s_starts_stride (event.seq) && s_index_add (self, offset))
        return s_fail (scan->error, scan->error_size, "%s: out of memory for the index",
                       self->path);
    if (scan->scan_fn && scan->scan_fn (scan->arg, &event, line, bytes))
        return s_fail (
            scan->error, scan->error_size,
            "%s: line %lld (byte offset %llu): the scan callback refused seq %lld",
            self->path, (long long)scan->line_number, (unsigned long long)offset,
            (long long)event.seq);
    self->last_seq = event.seq;
    self->last_ts_ms = event.ts_ms;
    self->committed_bytes = offset + bytes + 1;
    return 0;
}

//  Offset of the first \n at or after offset, or file_bytes if none.
static uint64_t s_next_newline (log_file_t *self, uint64_t offset, uint64_t file_bytes,
                                char *buffer, size_t capacity)
{
    while (offset < file_bytes) {
        size_t want =
            file_bytes - offset < capacity ? (size_t)(file_bytes - offset) : capacity;
        ssize_t got = pread (self->fd, buffer, want, (off_t)offset);
        if (got <= 0)
            return offset; // unreadable: refuse rather than truncate
        char *newline = memchr (buffer, '\n', (size_t)got);
        if (newline)
            return offset + (uint64_t)(newline - buffer);
        offset += (uint64_t)got;
    }
    return file_bytes;
}

//  More than a line's worth of bytes without \n: torn if no \n follows
//  (a cut write, or the NUL blocks a crash can leave), refused otherwise.
//  Clobbers buffer.
static int s_scan_overlong (scan_t *scan, uint64_t offset, char *buffer, size_t capacity)
{
    uint64_t newline =
        s_next_newline (scan->self, offset, scan->file_bytes, buffer, capacity);
    if (newline == scan->file_bytes) {
        scan->torn_offset = offset;
        return 0;
    }
    return s_fail (scan->error, scan->error_size,
                   "%s: line %lld (byte offset %llu): longer than %d bytes",
                   scan->self->path, (long long)scan->line_number + 1,
                   (unsigned long long)offset, EVENT_LINE_BYTES_MAX);
}

//  Reads the file in large chunks and validates every line; stops at the
//  first refused line or at a torn tail.
static int s_scan (scan_t *scan)
{
    log_file_t *self = scan->self;
    //  A small file needs no more than its own size (plus a line's slack).
    size_t chunk_bytes = scan->file_bytes < LOG_FILE_SCAN_CHUNK_BYTES
                             ? (size_t)scan->file_bytes
                             : LOG_FILE_SCAN_CHUNK_BYTES;
    size_t capacity = chunk_bytes + EVENT_LINE_BYTES_MAX + 1;
    char *buffer = malloc (capacity);
    if (!buffer)
        return s_fail (scan->error, scan->error_size, "%s: out of memory", self->path);
    uint64_t buffer_offset = 0; // file offset of buffer[0]
    size_t have = 0;
    int rc = 0;
    while (rc == 0 && buffer_offset + have < scan->file_bytes) {
        uint64_t left = scan->file_bytes - buffer_offset - have;
        size_t want = left < capacity - have ? (size_t)left : capacity - have;
        ssize_t got =
            pread (self->fd, buffer + have, want, (off_t)(buffer_offset + have));
        if (got <= 0) {
            rc = s_fail (scan->error, scan->error_size, "%s: read at %llu failed: %s",
                         self->path, (unsigned long long)(buffer_offset + have),
                         got < 0 ? strerror (errno) : "file shrank");
            break;
        }
        have += (size_t)got;
        size_t start = 0;
        char *newline;
        while (rc == 0 && scan->torn_offset == scan->file_bytes &&
               (newline = memchr (buffer + start, '\n', have - start))) {
            size_t bytes = (size_t)(newline - buffer) - start;
            rc = s_scan_line (scan, buffer + start, bytes, buffer_offset + start);
            start += bytes + 1;
        }
        if (rc || scan->torn_offset != scan->file_bytes)
            break;
        memmove (buffer, buffer + start, have - start);
        have -= start;
        buffer_offset += start;
        if (have > EVENT_LINE_BYTES_MAX) {
            rc = s_scan_overlong (scan, buffer_offset, buffer, capacity);
            break;
        }
    }
    if (rc == 0 && scan->torn_offset == scan->file_bytes && have > 0)
        scan->torn_offset = buffer_offset; // last line without \n
    free (buffer);
    return rc;
}

static int s_make_parent (const char *path, bool *created, char *error, size_t error_size)
{
    char *copy = strdup (path);
    if (!copy)
        return s_fail (error, error_size, "%s: out of memory", path);
    const char *parent = dirname (copy);
    struct stat status;
    int rc = 0;
    *created = stat (parent, &status) != 0;
    if (*created && zsys_dir_create ("%s", parent))
        rc = s_fail (error, error_size, "mkdir(\"%s\") failed: %s", parent,
                     strerror (errno));
    free (copy);
    return rc;
}

//  A new file's directory entry must survive a crash like its contents.
static int s_sync_parent (const char *path, char *error, size_t error_size)
{
    char *copy = strdup (path);
    if (!copy)
        return s_fail (error, error_size, "%s: out of memory", path);
    const char *parent = dirname (copy);
    int fd = open (parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync (fd))
        rc = s_fail (error, error_size, "fsync(\"%s\") failed: %s", parent,
                     strerror (errno));
    if (fd >= 0)
        close (fd);
    free (copy);
    return rc;
}

static int s_truncate_torn (log_file_t *self, const scan_t *scan)
{
    uint64_t dropped = scan->file_bytes - scan->torn_offset;
    log_warn ("log_file: %s: torn tail at byte offset %llu: dropping %llu bytes (line "
              "%lld, without its \\n: never acknowledged)",
              self->path, (unsigned long long)scan->torn_offset,
              (unsigned long long)dropped, (long long)scan->line_number + 1);
    if (ftruncate (self->fd, (off_t)scan->torn_offset) || fdatasync (self->fd))
        return s_fail (scan->error, scan->error_size,
                       "ftruncate(\"%s\", %llu) failed: %s", self->path,
                       (unsigned long long)scan->torn_offset, strerror (errno));
    return 0;
}

log_file_t *log_file_open (const char *path, log_file_scan_fn *scan_fn, void *arg,
                           char *error, size_t error_size)
{
    assert (path);
    log_file_t *self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        free (self);
        s_fail (error, error_size, "%s: out of memory", path);
        return NULL;
    }
    self->fd = -1;
    bool created_dir, created_file;
    struct stat status;
    if (s_make_parent (path, &created_dir, error, error_size))
        goto failed;
    created_file = stat (path, &status) != 0;
    self->fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        s_fail (error, error_size, "open(\"%s\") failed: %s", path, strerror (errno));
        goto failed;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB)) {
        s_fail (error, error_size,
                "flock(\"%s\") failed: %s (is another process using it?)", path,
                strerror (errno));
        goto failed;
    }
    if ((created_file || created_dir) && s_sync_parent (path, error, error_size))
        goto failed;
    if (fstat (self->fd, &status)) {
        s_fail (error, error_size, "fstat(\"%s\") failed: %s", path, strerror (errno));
        goto failed;
    }
    uint64_t file_bytes = (uint64_t)status.st_size;
    scan_t scan = {self, scan_fn, arg, error, error_size, file_bytes, 0, file_bytes};
    if (s_scan (&scan))
        goto failed;
    if (scan.torn_offset < file_bytes && s_truncate_torn (self, &scan))
        goto failed;
    self->committed_seq = self->last_seq;
    self->committed_ts_ms = self->last_ts_ms;
    return self;
failed:
    log_file_destroy (&self);
    return NULL;
}

void log_file_destroy (log_file_t **self_p)
{
    assert (self_p);
    log_file_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);
    free (self->pending);
    free (self->index);
    free (self->path);
    free (self);
    *self_p = NULL;
}

int64_t log_file_last_seq (log_file_t *self)
{
    assert (self);
    return self->last_seq;
}

int64_t log_file_committed_seq (log_file_t *self)
{
    assert (self);
    return self->committed_seq;
}

int64_t log_file_last_ts_ms (log_file_t *self)
{
    assert (self);
    return self->last_ts_ms;
}

uint64_t log_file_bytes (log_file_t *self)
{
    assert (self);
    return self->committed_bytes;
}

uint64_t log_file_sync_count (log_file_t *self)
{
    assert (self);
    return self->sync_count;
}

static int s_pending_reserve (log_file_t *self, size_t bytes)
{
    if (self->pending_capacity - self->pending_bytes >= bytes)
        return 0;
    size_t capacity =
        self->pending_capacity ? self->pending_capacity : LOG_FILE_PENDING_BYTES_MIN;
    while (capacity - self->pending_bytes < bytes)
        capacity *= 2;
    char *pending = realloc (self->pending, capacity);
    if (!pending)
        return -1;
    self->pending = pending;
    self->pending_capacity = capacity;
    return 0;
}

int log_file_append (log_file_t *self, const char *line, size_t line_bytes, int64_t seq,
                     int64_t ts_ms)
{
    assert (self && line && line_bytes > 0);
    assert (seq == self->last_seq + 1);
    assert (self->last_seq == 0 || ts_ms >= self->last_ts_ms); // no bound before seq 1
    assert (memchr (line, '\n', line_bytes) == NULL);
    if (s_pending_reserve (self, line_bytes + 1))
        return -1;
    if (s_starts_stride (seq) &&
        s_index_add (self, self->committed_bytes + self->pending_bytes))
        return -1;
    memcpy (self->pending + self->pending_bytes, line, line_bytes);
    self->pending[self->pending_bytes + line_bytes] = '\n';
    self->pending_bytes += line_bytes + 1;
    self->last_seq = seq;
    self->last_ts_ms = ts_ms;
    return 0;
}

void log_file_rollback (log_file_t *self)
{
    assert (self);
    self->pending_bytes = 0;
    self->last_seq = self->committed_seq;
    self->last_ts_ms = self->committed_ts_ms;
    s_index_trim (self, self->committed_seq);
}

int log_file_commit (log_file_t *self, bool sync)
{
    assert (self);
    if (self->pending_bytes == 0)
        return 0;
    const char *call = "write";
    size_t written = 0;
    while (written < self->pending_bytes) {
        ssize_t n =
            pwrite (self->fd, self->pending + written, self->pending_bytes - written,
                    (off_t)(self->committed_bytes + written));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            goto failed;
        }
        written += (size_t)n;
    }
    if (sync) {
        call = "fdatasync";
        self->sync_count++;
        if (fdatasync (self->fd))
            goto failed;
    }
    self->committed_bytes += self->pending_bytes;
    self->committed_seq = self->last_seq;
    self->committed_ts_ms = self->last_ts_ms;
    self->pending_bytes = 0;
    return 0;
failed:;
    int saved_errno = errno;
    log_error ("log_file: %s(\"%s\", %zu bytes at offset %llu) failed: %s", call,
               self->path, self->pending_bytes, (unsigned long long)self->committed_bytes,
               strerror (saved_errno));
    //  Whatever reached the file past the committed size goes, so the file
    //  stays exactly the committed log even if we crash right after.
    if (ftruncate (self->fd, (off_t)self->committed_bytes))
        log_error ("log_file: ftruncate(\"%s\", %llu) failed: %s", self->path,
                   (unsigned long long)self->committed_bytes, strerror (errno));
    log_file_rollback (self);
    errno = saved_errno;
    return -1;
}

//  Reads up to size committed bytes at offset; *got is short only at the
//  committed end.
static int s_pread (log_file_t *self, char *buffer, size_t size, uint64_t offset,
                    size_t *got)
{
    uint64_t left = offset < self->committed_bytes ? self->committed_bytes - offset : 0;
    size_t want = left < size ? (size_t)left : size;
    size_t done = 0;
    while (done < want) {
        ssize_t n = pread (self->fd, buffer + done, want - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; // the file shrank under us
            log_error ("log_file: pread(\"%s\", %zu bytes at %llu) failed: %s",
                       self->path, want - done, (unsigned long long)(offset + done),
                       strerror (errno));
            return -1;
        }
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

//  Moves past skip lines from offset; on return buffer[0..*kept) holds the
//  bytes already read from the new *offset on.
static int s_skip_lines (log_file_t *self, int64_t skip, uint64_t *offset, char *buffer,
                         size_t buffer_size, size_t *kept)
{
    *kept = 0;
    while (skip > 0) {
        size_t got;
        if (s_pread (self, buffer, buffer_size, *offset, &got))
            return -1;
        if (got == 0) {
            errno = EIO;
            return -1;
        }
        char *p = buffer, *end = buffer + got, *newline;
        while (skip > 0 && (newline = memchr (p, '\n', (size_t)(end - p)))) {
            p = newline + 1;
            skip--;
        }
        *offset += (uint64_t)(skip > 0 ? got : (size_t)(p - buffer));
        if (skip == 0) {
            *kept = (size_t)(end - p);
            memmove (buffer, p, *kept);
        }
    }
    return 0;
}

int log_file_read (log_file_t *self, int64_t from_seq, size_t max_events, char *buffer,
                   size_t buffer_size, size_t *bytes_out)
{
    assert (self && buffer && bytes_out);
    *bytes_out = 0;
    if (from_seq < 1)
        from_seq = 1;
    if (from_seq > self->committed_seq || max_events == 0)
        return 0;
    if (max_events > INT_MAX)
        max_events = INT_MAX;
    size_t entry = (size_t)((from_seq - 1) / LOG_FILE_INDEX_STRIDE);
    assert (entry < self->index_count);
    uint64_t offset = self->index[entry];
    int64_t skip = from_seq - (int64_t)entry * LOG_FILE_INDEX_STRIDE - 1;
    size_t kept, got;
    if (s_skip_lines (self, skip, &offset, buffer, buffer_size, &kept) ||
        s_pread (self, buffer + kept, buffer_size - kept, offset + kept, &got))
        return -1;
    char *p = buffer, *end = buffer + kept + got, *newline;
    size_t count = 0;
    while (count < max_events && (newline = memchr (p, '\n', (size_t)(end - p)))) {
        p = newline + 1;
        count++;
    }
    if (count == 0) {
        errno = ENOBUFS; // the line at from_seq does not fit
        return -1;
    }
    *bytes_out = (size_t)(p - buffer);
    return (int)count;
}

int log_file_offset (log_file_t *self, int64_t seq, uint64_t *offset)
{
    assert (self && offset);
    if (seq < 1 || seq > self->committed_seq)
        return -1;
    size_t entry = (size_t)((seq - 1) / LOG_FILE_INDEX_STRIDE);
    assert (entry < self->index_count);
    *offset = self->index[entry];
    char buffer[EVENT_LINE_BYTES_MAX + 1];
    size_t kept;
    return s_skip_lines (self, seq - (int64_t)entry * LOG_FILE_INDEX_STRIDE - 1, offset,
                         buffer, sizeof buffer, &kept);
}
