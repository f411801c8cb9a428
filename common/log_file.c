/*  log_file — the append-only event log in segments, with group commit and
    a sparse index (see log_file.h for the contract).

    Invariants: segments[0..segment_count) are in seq order, contiguous
    from seq 1, and the last one is the open one (fd); the others are
    sealed, each with its .idx. Bytes [0, committed_bytes) of the open
    file are valid canonical lines for seqs open.first_seq..committed_seq;
    pending holds the lines of seqs committed_seq+1..last_seq, to be
    written at committed_bytes, with splits[] where a pending line starts
    a new segment. index[k] is the offset, in the segment that holds it,
    of seq k * LOG_FILE_INDEX_STRIDE + 1 (entries may run ahead into
    pending lines). hash covers the open segment's committed bytes. The
    events folder holds an exclusive flock so two processes never write
    one log.
*/
#include "log_file.h"

#include "chain.h"
#include "log.h"

#include <assert.h>
#include <cJSON.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
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
#define LOG_FILE_SEGMENTS_MIN      16
//  The open segment is allocated this far ahead of its data: fdatasync
//  then writes no size change, and a start reads at most this many zeros.
#define LOG_FILE_PREALLOCATE_BYTES (16 * 1024 * 1024)
#define LOG_FILE_PATH_BYTES_MAX    4096
#define LOG_FILE_NAME_DIGITS       20
//  2: the segment's checksum is CRC32C ("crc32c"); 1: BLAKE2b-256
//  ("blake2b"), still read. Every byte of the log passes through the
//  checksum as it is written, and BLAKE2b was a fifth of a replica's
//  catch-up; the index guards against a changed byte, not an adversary.
#define LOG_FILE_INDEX_VERSION    2
#define LOG_FILE_INDEX_VERSION_V1 1
#define LOG_FILE_HASH_BYTES       crypto_generichash_BYTES // BLAKE2b-256 (version 1)

//  A segment's checksum as its index holds it.
typedef struct {
    bool blake2b; // a version 1 index: BLAKE2b-256 in hash
    uint32_t crc; // else CRC32C
    unsigned char hash[LOG_FILE_HASH_BYTES];
} checksum_t;

//  A checksum being computed over a segment's bytes.
typedef struct {
    bool blake2b;
    uint32_t crc; // CRC32C, inverted while running
    crypto_generichash_state state;
} sum_t;

typedef struct {
    int64_t first_seq;
    int64_t last_seq; // first_seq - 1 while empty (the open one only)
    int64_t last_ts_ms;
    uint64_t bytes; // committed bytes of its file
    uint8_t chain[CHAIN_BYTES]; // the chain at its last line
    bool chain_known;           // false: an index from before chains, until scanned
} segment_t;

//  A pending line that starts a new segment.
typedef struct {
    size_t offset;           // in pending
    int64_t seq;             // its seq: the new segment's first
    int64_t prev_last_ts_ms; // ts of the line before it: the sealed one's last
    uint8_t prev_chain[CHAIN_BYTES]; // the chain there
} split_t;

struct log_file {
    int fd;     // the open segment
    int dir_fd; // events/, flocked
    char *dir;  // <data-dir>/events
    log_file_config_t config;
    segment_t *segments;
    size_t segment_count;
    size_t segment_capacity;
    uint64_t allocated_bytes; // size of the open segment's file
    sum_t hash;
    int read_fd; // a sealed segment being read, or -1
    size_t read_segment;
    int64_t last_seq;
    int64_t last_ts_ms;
    int64_t committed_seq;
    int64_t committed_ts_ms;
    uint8_t chain[CHAIN_BYTES];           // at last_seq
    uint8_t committed_chain[CHAIN_BYTES]; // at committed_seq
    uint64_t committed_bytes; // of the open segment
    uint64_t sealed_bytes;    // of every sealed segment
    uint64_t sync_count;
    char *pending; // lines with their \n, not yet written
    size_t pending_bytes;
    size_t pending_capacity;
    uint64_t tail_bytes; // bytes of the segment the next appended line goes into
    split_t *splits;
    size_t split_count;
    size_t split_capacity;
    uint64_t *index; // offsets of seqs 1, 1 + STRIDE, 1 + 2 * STRIDE, ...
    size_t index_count;
    size_t index_capacity;
};

//  State of a scan of one segment file.
typedef struct {
    log_file_t *self;
    const char *path;
    int fd;
    log_file_scan_fn *scan_fn; // NULL: check only
    void *arg;
    int64_t scan_from_seq;
    char *error;
    size_t error_size;
    uint64_t file_bytes;
    int64_t line_number;
    uint64_t torn_offset; // where a torn tail starts; file_bytes if none
    bool sealed;          // index entries are checked, not added
    sum_t *hash;          // NULL: not hashed
    sum_t *crc;           // NULL, or a CRC32C for an index written again
    int64_t last_seq;
    int64_t last_ts_ms;
    uint8_t chain[CHAIN_BYTES]; // at last_seq
    uint64_t data_bytes;        // end of the last complete line
} scan_t;

static int s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  CRC32C (Castagnoli), reflected, as iSCSI and ext4 use it.
static uint32_t s_crc32c_table[256];

static void s_crc32c_table_init (void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        s_crc32c_table[byte] = crc;
    }
}

static uint32_t s_crc32c_soft (uint32_t crc, const unsigned char *data, size_t bytes)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_crc32c_table_init);
    while (bytes--)
        crc = s_crc32c_table[(crc ^ *data++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
//  SSE 4.2's crc32 instruction: eight bytes a step.
__attribute__ ((target ("sse4.2"))) static uint32_t
s_crc32c_sse42 (uint32_t crc, const unsigned char *data, size_t bytes)
{
    uint64_t wide = crc;
    for (; bytes >= 8; data += 8, bytes -= 8) {
        uint64_t word;
        memcpy (&word, data, sizeof word);
        wide = __builtin_ia32_crc32di (wide, word);
    }
    crc = (uint32_t)wide;
    for (; bytes > 0; data++, bytes--)
        crc = __builtin_ia32_crc32qi (crc, *data);
    return crc;
}
#endif

static uint32_t s_crc32c (uint32_t crc, const unsigned char *data, size_t bytes)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports ("sse4.2"))
        return s_crc32c_sse42 (crc, data, bytes);
#endif
    return s_crc32c_soft (crc, data, bytes);
}

static void s_sum_init (sum_t *sum, bool blake2b)
{
    sum->blake2b = blake2b;
    sum->crc = 0xffffffffu;
    if (blake2b)
        crypto_generichash_init (&sum->state, NULL, 0, LOG_FILE_HASH_BYTES);
}

static void s_sum_update (sum_t *sum, const void *data, size_t bytes)
{
    if (sum->blake2b)
        crypto_generichash_update (&sum->state, data, bytes);
    else
        sum->crc = s_crc32c (sum->crc, data, bytes);
}

static void s_sum_final (sum_t *sum, checksum_t *checksum)
{
    memset (checksum, 0, sizeof *checksum);
    checksum->blake2b = sum->blake2b;
    if (sum->blake2b)
        crypto_generichash_final (&sum->state, checksum->hash, sizeof checksum->hash);
    else
        checksum->crc = ~sum->crc;
}

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

static void s_segment_path (const log_file_t *self, int64_t first_seq, const char *suffix,
                            char *path, size_t size)
{
    snprintf (path, size, "%s/%0*" PRId64 "%s", self->dir, LOG_FILE_NAME_DIGITS,
              first_seq, suffix);
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

static segment_t *s_open_segment (log_file_t *self)
{
    assert (self->segment_count > 0);
    return &self->segments[self->segment_count - 1];
}

static int s_segment_add (log_file_t *self, int64_t first_seq)
{
    if (self->segment_count == self->segment_capacity) {
        size_t capacity =
            self->segment_capacity ? self->segment_capacity * 2 : LOG_FILE_SEGMENTS_MIN;
        segment_t *segments = realloc (self->segments, capacity * sizeof *segments);
        if (!segments)
            return -1;
        self->segments = segments;
        self->segment_capacity = capacity;
    }
    self->segments[self->segment_count++] = (segment_t){first_seq, first_seq - 1, 0, 0, {0}, false};
    return 0;
}

//  The segment holding seq (which must be in the log).
static size_t s_segment_of (log_file_t *self, int64_t seq)
{
    size_t low = 0, high = self->segment_count - 1;
    while (low < high) {
        size_t middle = (low + high + 1) / 2;
        if (self->segments[middle].first_seq <= seq)
            low = middle;
        else
            high = middle - 1;
    }
    return low;
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
    uint8_t chain[CHAIN_BYTES];
    if (event_parse_canonical (line, bytes, &event, reason, sizeof reason))
        return s_fail (scan->error, scan->error_size,
                       "%s: line %lld (byte offset %llu): %s", scan->path,
                       (long long)scan->line_number, (unsigned long long)offset, reason);
    if (event.seq != scan->last_seq + 1)
        return s_fail (
            scan->error, scan->error_size,
            "%s: line %lld (byte offset %llu): seq %lld where %lld was expected "
            "(%s)",
            scan->path, (long long)scan->line_number, (unsigned long long)offset,
            (long long)event.seq, (long long)scan->last_seq + 1,
            event.seq > scan->last_seq ? "gap" : "disorder");
    if (scan->last_seq > 0 && event.ts_ms < scan->last_ts_ms)
        return s_fail (scan->error, scan->error_size,
                       "%s: line %lld (byte offset %llu): ts goes backwards", scan->path,
                       (long long)scan->line_number, (unsigned long long)offset);
    if (chain_check (scan->chain, line, bytes, chain))
        return s_fail (scan->error, scan->error_size,
                       "%s: line %lld (byte offset %llu): seq %lld: its chain does not "
                       "follow from the lines before it (a line changed, went or came)",
                       scan->path, (long long)scan->line_number,
                       (unsigned long long)offset, (long long)event.seq);
    if (s_starts_stride (event.seq)) {
        size_t entry = (size_t)((event.seq - 1) / LOG_FILE_INDEX_STRIDE);
        if (scan->sealed && (entry >= self->index_count || self->index[entry] != offset))
            return s_fail (scan->error, scan->error_size,
                           "%s: line %lld (byte offset %llu): its index names another "
                           "offset for seq %lld",
                           scan->path, (long long)scan->line_number,
                           (unsigned long long)offset, (long long)event.seq);
        if (!scan->sealed && s_index_add (self, offset))
            return s_fail (scan->error, scan->error_size,
                           "%s: out of memory for the index", scan->path);
    }
    if (scan->scan_fn && event.seq >= scan->scan_from_seq &&
        scan->scan_fn (scan->arg, &event, line, bytes))
        return s_fail (
            scan->error, scan->error_size,
            "%s: line %lld (byte offset %llu): the scan callback refused seq %lld",
            scan->path, (long long)scan->line_number, (unsigned long long)offset,
            (long long)event.seq);
    if (scan->hash)
        s_sum_update (scan->hash, line, bytes + 1);
    if (scan->crc)
        s_sum_update (scan->crc, line, bytes + 1);
    scan->last_seq = event.seq;
    scan->last_ts_ms = event.ts_ms;
    memcpy (scan->chain, chain, CHAIN_BYTES);
    scan->data_bytes = offset + bytes + 1;
    return 0;
}

//  Offset of the first \n at or after offset, or file_bytes if none.
static uint64_t s_next_newline (int fd, uint64_t offset, uint64_t file_bytes,
                                char *buffer, size_t capacity)
{
    while (offset < file_bytes) {
        size_t want =
            file_bytes - offset < capacity ? (size_t)(file_bytes - offset) : capacity;
        ssize_t got = pread (fd, buffer, want, (off_t)offset);
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
        s_next_newline (scan->fd, offset, scan->file_bytes, buffer, capacity);
    if (newline == scan->file_bytes) {
        scan->torn_offset = offset;
        return 0;
    }
    return s_fail (scan->error, scan->error_size,
                   "%s: line %lld (byte offset %llu): longer than %d bytes", scan->path,
                   (long long)scan->line_number + 1, (unsigned long long)offset,
                   EVENT_LINE_BYTES_MAX);
}

//  Reads the file in large chunks and validates every line; stops at the
//  first refused line or at a torn tail.
static int s_scan (scan_t *scan)
{
    //  A small file needs no more than its own size (plus a line's slack).
    size_t chunk_bytes = scan->file_bytes < LOG_FILE_SCAN_CHUNK_BYTES
                             ? (size_t)scan->file_bytes
                             : LOG_FILE_SCAN_CHUNK_BYTES;
    size_t capacity = chunk_bytes + EVENT_LINE_BYTES_MAX + 1;
    char *buffer = malloc (capacity);
    if (!buffer)
        return s_fail (scan->error, scan->error_size, "%s: out of memory", scan->path);
    uint64_t buffer_offset = 0; // file offset of buffer[0]
    size_t have = 0;
    int rc = 0;
    while (rc == 0 && buffer_offset + have < scan->file_bytes) {
        uint64_t left = scan->file_bytes - buffer_offset - have;
        size_t want = left < capacity - have ? (size_t)left : capacity - have;
        ssize_t got =
            pread (scan->fd, buffer + have, want, (off_t)(buffer_offset + have));
        if (got <= 0) {
            rc = s_fail (scan->error, scan->error_size, "%s: read at %llu failed: %s",
                         scan->path, (unsigned long long)(buffer_offset + have),
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

//  A directory entry must survive a crash like the file's contents.
static int s_sync_dir (const char *path, char *error, size_t error_size)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync (fd))
        rc = s_fail (error, error_size, "fsync(\"%s\") failed: %s", path,
                     strerror (errno));
    if (fd >= 0)
        close (fd);
    return rc;
}

//  The end of the last byte in [from, to) of fd that is not zero (from
//  if none): what lies after is the preallocated tail.
static uint64_t s_nonzero_end (int fd, uint64_t from, uint64_t to)
{
    char buffer[64 * 1024];
    uint64_t end = from;
    while (from < to) {
        size_t want = to - from < sizeof buffer ? (size_t)(to - from) : sizeof buffer;
        ssize_t got = pread (fd, buffer, want, (off_t)from);
        if (got <= 0)
            return to; // unreadable: all of it counts as dropped
        for (ssize_t i = got; i > 0; i--)
            if (buffer[i - 1]) {
                end = from + (uint64_t)i;
                break;
            }
        from += (uint64_t)got;
    }
    return end;
}

//  The open segment's end after its scan: zeros alone are kept (the
//  preallocated tail); anything else after the last \n is torn.
static int s_settle_tail (log_file_t *self, const scan_t *scan)
{
    self->allocated_bytes = scan->file_bytes;
    if (scan->torn_offset == scan->file_bytes)
        return 0;
    uint64_t end = s_nonzero_end (self->fd, scan->torn_offset, scan->file_bytes);
    if (end == scan->torn_offset)
        return 0;
    uint64_t dropped = end - scan->torn_offset; // the zeros after were never data
    log_warn ("log_file: %s: torn tail at byte offset %llu: dropping %llu bytes (line "
              "%lld, without its \\n: never acknowledged)",
              scan->path, (unsigned long long)scan->torn_offset,
              (unsigned long long)dropped, (long long)scan->line_number + 1);
    if (ftruncate (self->fd, (off_t)scan->torn_offset) || fdatasync (self->fd))
        return s_fail (scan->error, scan->error_size,
                       "ftruncate(\"%s\", %llu) failed: %s", scan->path,
                       (unsigned long long)scan->torn_offset, strerror (errno));
    self->allocated_bytes = scan->torn_offset;
    return 0;
}

//  --- sealed segments' indexes ---------------------------------------

//  Index entries [*first, *end) hold the seqs 1 + k * STRIDE of a segment.
static void s_index_range (int64_t first_seq, int64_t last_seq, size_t *first,
                           size_t *end)
{
    *first =
        (size_t)((first_seq - 1 + LOG_FILE_INDEX_STRIDE - 1) / LOG_FILE_INDEX_STRIDE);
    *end = last_seq < 1 ? 0 : (size_t)((last_seq - 1) / LOG_FILE_INDEX_STRIDE) + 1;
    if (*end < *first)
        *end = *first;
}

//  Writes segment's index beside it (temp, fsync, rename; the caller
//  syncs the folder). checksum is its final one (CRC32C: only this
//  version's indexes are written).
static int s_index_write (log_file_t *self, const segment_t *segment,
                          const checksum_t *checksum)
{
    assert (!checksum->blake2b);
    size_t first, end;
    s_index_range (segment->first_seq, segment->last_seq, &first, &end);
    size_t capacity = 512 + (end - first) * (EVENT_INT_BYTES_MAX + 1);
    char *text = malloc (capacity);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    char chain[CHAIN_HEX_BYTES + 3] = "null";
    if (segment->chain_known) {
        chain[0] = '"';
        chain_to_hex (segment->chain, chain + 1);
        memcpy (chain + 1 + CHAIN_HEX_BYTES, "\"", 2);
    }
    size_t bytes = (size_t)snprintf (
        text, capacity,
        "{\"version\":%d,\"first_seq\":%" PRId64 ",\"last_seq\":%" PRId64
        ",\"last_ts\":%" PRId64 ",\"bytes\":%" PRIu64
        ",\"stride\":%d,\"crc32c\":\"%08" PRIx32 "\",\"chain\":%s,\"offsets\":[",
        LOG_FILE_INDEX_VERSION, segment->first_seq, segment->last_seq,
        segment->last_ts_ms, segment->bytes, LOG_FILE_INDEX_STRIDE, checksum->crc, chain);
    for (size_t k = first; k < end; k++)
        bytes += (size_t)snprintf (text + bytes, capacity - bytes, "%s%" PRIu64,
                                   k == first ? "" : ",", self->index[k]);
    bytes += (size_t)snprintf (text + bytes, capacity - bytes, "]}\n");
    char path[LOG_FILE_PATH_BYTES_MAX], temp[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, segment->first_seq, ".idx", path, sizeof path);
    s_segment_path (self, segment->first_seq, ".idx.tmp", temp, sizeof temp);
    int fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    size_t written = 0;
    while (rc == 0 && written < bytes) {
        ssize_t n = write (fd, text + written, bytes - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = -1;
        else
            written += (size_t)n;
    }
    if (rc == 0 && fsync (fd))
        rc = -1;
    int saved_errno = errno;
    if (fd >= 0)
        close (fd);
    if (rc == 0 && rename (temp, path))
        rc = -1, saved_errno = errno;
    if (rc) {
        log_error ("log_file: writing the index %s failed: %s", path,
                   strerror (saved_errno));
        unlink (temp);
    }
    free (text);
    errno = saved_errno;
    return rc;
}

static int s_json_int (const cJSON *json, const char *key, int64_t *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    if (!cJSON_IsNumber (item) || item->valuedouble < 0 ||
        item->valuedouble > 9007199254740992.0 ||
        item->valuedouble != (double)(int64_t)item->valuedouble)
        return -1;
    *value = (int64_t)item->valuedouble;
    return 0;
}

//  The checksum an index of version holds: "crc32c" (8 hex digits) or,
//  in version 1, "blake2b" (64). 0 or -1.
static int s_checksum_parse (const cJSON *json, int64_t version, checksum_t *checksum)
{
    checksum->blake2b = version == LOG_FILE_INDEX_VERSION_V1;
    const cJSON *item =
        cJSON_GetObjectItemCaseSensitive (json, checksum->blake2b ? "blake2b" : "crc32c");
    size_t digits = checksum->blake2b ? LOG_FILE_HASH_BYTES * 2 : 8;
    if (!cJSON_IsString (item) || strlen (item->valuestring) != digits ||
        strspn (item->valuestring, "0123456789abcdef") != digits)
        return -1;
    if (checksum->blake2b)
        return sodium_hex2bin (checksum->hash, LOG_FILE_HASH_BYTES, item->valuestring,
                               digits, NULL, NULL, NULL);
    checksum->crc = (uint32_t)strtoul (item->valuestring, NULL, 16);
    return 0;
}

//  Reads the index of the sealed segment at first_seq into segment and
//  appends its offsets to the in-memory index; checksum gets its checksum.
static int s_index_load (log_file_t *self, int64_t first_seq, segment_t *segment,
                         checksum_t *checksum, char *error, size_t error_size)
{
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, first_seq, ".idx", path, sizeof path);
    FILE *file = fopen (path, "rb");
    if (!file)
        return s_fail (error, error_size, "open(\"%s\") failed: %s", path,
                       strerror (errno));
    char *text = NULL;
    size_t capacity = 0;
    ssize_t bytes = getdelim (&text, &capacity, '\0', file);
    fclose (file);
    cJSON *json = bytes > 0 ? cJSON_ParseWithLength (text, (size_t)bytes) : NULL;
    free (text);
    int64_t version = 0, stride = 0, bytes_in = 0;
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive (json, "offsets");
    const cJSON *chain = cJSON_GetObjectItemCaseSensitive (json, "chain");
    memset (checksum, 0, sizeof *checksum);
    *segment = (segment_t){0};
    int rc = 0;
    if (!json || s_json_int (json, "version", &version) ||
        (version != LOG_FILE_INDEX_VERSION && version != LOG_FILE_INDEX_VERSION_V1) ||
        s_checksum_parse (json, version, checksum) ||
        s_json_int (json, "stride", &stride) || stride != LOG_FILE_INDEX_STRIDE ||
        s_json_int (json, "first_seq", &segment->first_seq) ||
        s_json_int (json, "last_seq", &segment->last_seq) ||
        s_json_int (json, "last_ts", &segment->last_ts_ms) ||
        s_json_int (json, "bytes", &bytes_in) || !cJSON_IsArray (offsets) ||
        !(cJSON_IsNull (chain) ||
          (cJSON_IsString (chain) &&
           chain_from_hex (chain->valuestring, strlen (chain->valuestring),
                           segment->chain, CHAIN_BYTES) == 0)))
        rc = s_fail (error, error_size, "%s: not an index of version %d or %d", path,
                     LOG_FILE_INDEX_VERSION, LOG_FILE_INDEX_VERSION_V1);
    segment->chain_known = cJSON_IsString (chain);
    segment->bytes = (uint64_t)bytes_in;
    size_t first, end;
    if (rc == 0) {
        s_index_range (segment->first_seq, segment->last_seq, &first, &end);
        if (segment->first_seq != first_seq || segment->last_seq < first_seq ||
            (size_t)cJSON_GetArraySize (offsets) != end - first ||
            first != self->index_count)
            rc = s_fail (error, error_size,
                         "%s: disagrees with its name or its count of seqs", path);
    }
    uint64_t previous = 0;
    const cJSON *item;
    size_t k = 0;
    cJSON_ArrayForEach (item, offsets)
    {
        if (rc)
            break;
        int64_t offset = 0;
        if (!cJSON_IsNumber (item) || item->valuedouble < 0 ||
            (offset = (int64_t)item->valuedouble) >= bytes_in ||
            (k > 0 && (uint64_t)offset <= previous) ||
            (k == 0 && s_starts_stride (first_seq) && offset != 0))
            rc = s_fail (error, error_size, "%s: offset %zu is out of order or range",
                         path, k);
        else if (s_index_add (self, (uint64_t)offset))
            rc = s_fail (error, error_size, "%s: out of memory", path);
        previous = (uint64_t)offset;
        k++;
    }
    cJSON_Delete (json);
    return rc;
}

//  --- reading ----------------------------------------------------------

//  The fd to read segment i through: the open one's, or a sealed one's
//  (kept open until another sealed segment is read).
static int s_segment_fd (log_file_t *self, size_t i)
{
    if (i == self->segment_count - 1 && self->fd >= 0)
        return self->fd; // (while opening, the last one so far may be sealed)
    if (self->read_fd >= 0 && self->read_segment == i)
        return self->read_fd;
    if (self->read_fd >= 0)
        close (self->read_fd);
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, self->segments[i].first_seq, ".jsonl", path, sizeof path);
    self->read_fd = open (path, O_RDONLY | O_CLOEXEC);
    if (self->read_fd < 0)
        log_error ("log_file: open(\"%s\") failed: %s", path, strerror (errno));
    self->read_segment = i;
    return self->read_fd;
}

//  Reads up to size bytes of segment i at offset, never past its
//  committed end; *got is short only there.
static int s_pread (log_file_t *self, size_t i, char *buffer, size_t size,
                    uint64_t offset, size_t *got)
{
    uint64_t limit = self->segments[i].bytes;
    uint64_t left = offset < limit ? limit - offset : 0;
    size_t want = left < size ? (size_t)left : size;
    size_t done = 0;
    int fd = want ? s_segment_fd (self, i) : -1;
    while (done < want) {
        ssize_t n =
            fd < 0 ? -1 : pread (fd, buffer + done, want - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; // the file shrank under us
            char path[LOG_FILE_PATH_BYTES_MAX];
            s_segment_path (self, self->segments[i].first_seq, ".jsonl", path,
                            sizeof path);
            log_error ("log_file: pread(\"%s\", %zu bytes at %llu) failed: %s", path,
                       want - done, (unsigned long long)(offset + done),
                       strerror (errno));
            return -1;
        }
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

//  Moves past skip lines of segment i from offset; on return
//  buffer[0..*kept) holds the bytes already read from the new *offset on.
static int s_skip_lines (log_file_t *self, size_t i, int64_t skip, uint64_t *offset,
                         char *buffer, size_t buffer_size, size_t *kept)
{
    *kept = 0;
    while (skip > 0) {
        size_t got;
        if (s_pread (self, i, buffer, buffer_size, *offset, &got))
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

//  Where seq's line starts to be looked for in segment i: the nearest
//  indexed line at or before it, and the lines to skip from there.
static void s_seek (log_file_t *self, size_t i, int64_t seq, uint64_t *offset,
                    int64_t *skip)
{
    const segment_t *segment = &self->segments[i];
    size_t entry = (size_t)((seq - 1) / LOG_FILE_INDEX_STRIDE);
    int64_t entry_seq = (int64_t)entry * LOG_FILE_INDEX_STRIDE + 1;
    if (entry_seq < segment->first_seq) {
        *offset = 0;
        *skip = seq - segment->first_seq;
    } else {
        assert (entry < self->index_count);
        *offset = self->index[entry];
        *skip = seq - entry_seq;
    }
}

//  The line read at offset must be seq's, and a read to the segment's end
//  must end at its last seq: a sealed segment's bytes are checked as they
//  are read, against its index.
static int s_check_read (log_file_t *self, size_t i, int64_t seq, const char *line,
                         size_t bytes, uint64_t offset, int count, bool to_end)
{
    char prefix[32];
    int prefix_bytes = snprintf (prefix, sizeof prefix, "{\"seq\":%" PRId64 ",", seq);
    const segment_t *segment = &self->segments[i];
    if ((size_t)prefix_bytes <= bytes &&
        memcmp (line, prefix, (size_t)prefix_bytes) == 0 &&
        (!to_end || seq + count - 1 == segment->last_seq))
        return 0;
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, segment->first_seq, ".jsonl", path, sizeof path);
    log_error ("log_file: %s: byte offset %llu does not hold seq %lld as its index says, "
               "or its last seq is not %lld: the segment or its index was changed",
               path, (unsigned long long)offset, (long long)seq,
               (long long)segment->last_seq);
    errno = EIO;
    return -1;
}

//  log_file_read within segment i.
static int s_read_segment (log_file_t *self, size_t i, int64_t from_seq,
                           size_t max_events, char *buffer, size_t buffer_size,
                           size_t *bytes_out)
{
    uint64_t offset;
    int64_t skip;
    s_seek (self, i, from_seq, &offset, &skip);
    size_t kept, got;
    if (s_skip_lines (self, i, skip, &offset, buffer, buffer_size, &kept) ||
        s_pread (self, i, buffer + kept, buffer_size - kept, offset + kept, &got))
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
    if (s_check_read (self, i, from_seq, buffer, *bytes_out, offset, (int)count,
                      offset + *bytes_out == self->segments[i].bytes))
        return -1;
    return (int)count;
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
    size_t i = s_segment_of (self, from_seq), count = 0, total = 0;
    int64_t seq = from_seq;
    while (count < max_events && seq <= self->committed_seq) {
        size_t bytes = 0;
        int n = s_read_segment (self, i, seq, max_events - count, buffer + total,
                                buffer_size - total, &bytes);
        if (n < 0) {
            if (count > 0 && errno == ENOBUFS)
                break; // the next segment's first line does not fit: a short batch
            return -1;
        }
        count += (size_t)n;
        total += bytes;
        seq += n;
        if (seq <= self->segments[i].last_seq)
            break; // out of room or of max_events
        i++;
    }
    *bytes_out = total;
    return (int)count;
}

int log_file_locate (log_file_t *self, int64_t seq, char *path, size_t path_size,
                     uint64_t *offset)
{
    assert (self && offset);
    if (seq < 1 || seq > self->committed_seq)
        return -1;
    size_t i = s_segment_of (self, seq);
    if (path)
        s_segment_path (self, self->segments[i].first_seq, ".jsonl", path, path_size);
    int64_t skip;
    s_seek (self, i, seq, offset, &skip);
    char buffer[EVENT_LINE_BYTES_MAX + 1];
    size_t kept;
    return s_skip_lines (self, i, skip, offset, buffer, sizeof buffer, &kept);
}

int log_file_offset (log_file_t *self, int64_t seq, uint64_t *offset)
{
    return log_file_locate (self, seq, NULL, 0, offset);
}

size_t log_file_segment_count (log_file_t *self)
{
    assert (self);
    return self->segment_count;
}

//  --- opening ------------------------------------------------------------

//  The sealed segment i's file against its index without reading it all:
//  its size, and its first and last lines.
static int s_check_sealed (log_file_t *self, size_t i, char *error, size_t error_size)
{
    const segment_t *segment = &self->segments[i];
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, segment->first_seq, ".jsonl", path, sizeof path);
    struct stat status;
    if (stat (path, &status))
        return s_fail (error, error_size, "stat(\"%s\") failed: %s", path,
                       strerror (errno));
    if ((uint64_t)status.st_size != segment->bytes)
        return s_fail (error, error_size,
                       "%s: %llu bytes where its index says %llu: a sealed segment "
                       "changed",
                       path, (unsigned long long)status.st_size,
                       (unsigned long long)segment->bytes);
    char buffer[EVENT_LINE_BYTES_MAX + 2];
    size_t got;
    uint64_t tail = segment->bytes > sizeof buffer ? segment->bytes - sizeof buffer : 0;
    if (s_pread (self, i, buffer, sizeof buffer, 0, &got) ||
        s_check_read (self, i, segment->first_seq, buffer, got, 0, 1, false) ||
        s_pread (self, i, buffer, sizeof buffer, tail, &got))
        return s_fail (error, error_size, "%s: byte offset 0 does not hold seq %lld",
                       path, (long long)segment->first_seq);
    //  The last line: after the \n before the final one.
    char *end = buffer + got, *start = end - 1;
    while (start > buffer && start[-1] != '\n')
        start--;
    event_t event;
    char reason[256] = "";
    uint64_t offset = tail + (uint64_t)(start - buffer);
    size_t line_bytes = got ? (size_t)(end - start - 1) : 0;
    uint8_t named[CHAIN_BYTES];
    if (got == 0 || end[-1] != '\n' || (start == buffer && tail > 0) ||
        event_parse_canonical (start, line_bytes, &event, reason, sizeof reason) ||
        event.seq != segment->last_seq || event.ts_ms != segment->last_ts_ms)
        return s_fail (
            error, error_size,
            "%s: byte offset %llu: the last line is not seq %lld at ts %lld as "
            "its index says %s",
            path, (unsigned long long)offset, (long long)segment->last_seq,
            (long long)segment->last_ts_ms, reason);
    //  Its own chain key, when it has one, is the one its index names.
    if (segment->chain_known && chain_named (start, line_bytes, named) == 0 &&
        memcmp (named, segment->chain, CHAIN_BYTES))
        return s_fail (error, error_size,
                       "%s: byte offset %llu: the last line's chain is not the one its "
                       "index names",
                       path, (unsigned long long)offset);
    return 0;
}

//  Every line of segment i (sealed, or the open one's committed part):
//  through scan_fn from scan_from_seq on, and against expected (its
//  index's checksum) unless that is NULL; crc, if not NULL, gets its
//  CRC32C. scan's last seq, ts and chain are the previous segment's.
static int s_scan_segment (log_file_t *self, size_t i, scan_t *scan,
                           const checksum_t *expected, checksum_t *crc)
{
    const segment_t *segment = &self->segments[i];
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, segment->first_seq, ".jsonl", path, sizeof path);
    sum_t state, crc_state;
    s_sum_init (&state, expected && expected->blake2b);
    s_sum_init (&crc_state, false);
    scan->crc = crc ? &crc_state : NULL;
    scan->path = path;
    scan->fd = s_segment_fd (self, i);
    scan->file_bytes = segment->bytes;
    scan->torn_offset = segment->bytes;
    scan->line_number = 0;
    scan->data_bytes = 0;
    scan->sealed = true;
    scan->hash = expected ? &state : NULL;
    if (scan->fd < 0)
        return s_fail (scan->error, scan->error_size, "open(\"%s\") failed: %s", path,
                       strerror (errno));
    int scanned = s_scan (scan);
    scan->hash = scan->crc = NULL;
    if (scanned)
        return -1;
    checksum_t computed;
    s_sum_final (&state, &computed);
    if (crc)
        s_sum_final (&crc_state, crc);
    if (scan->torn_offset != segment->bytes || scan->last_seq != segment->last_seq)
        return s_fail (scan->error, scan->error_size,
                       "%s: byte offset %llu: the segment ends before its last seq %lld",
                       path, (unsigned long long)scan->data_bytes,
                       (long long)segment->last_seq);
    if (expected && memcmp (&computed, expected, sizeof computed))
        return s_fail (scan->error, scan->error_size,
                       "%s: its bytes do not match the checksum in its index", path);
    bool sealed = i + 1 < self->segment_count || self->fd < 0; // (opening: all sealed)
    segment_t *record = &self->segments[i];
    if (sealed && record->chain_known && memcmp (scan->chain, record->chain, CHAIN_BYTES))
        return s_fail (scan->error, scan->error_size,
                       "%s: the chain of its lines is not the one its index names", path);
    if (sealed && !record->chain_known) {
        memcpy (record->chain, scan->chain, CHAIN_BYTES);
        record->chain_known = true;
    }
    return 0;
}

int log_file_scan (log_file_t *self, int64_t from_seq, log_file_scan_fn *scan_fn,
                   void *arg, char *error, size_t error_size)
{
    assert (self && scan_fn);
    if (from_seq < 1)
        from_seq = 1;
    if (from_seq > self->committed_seq)
        return 0;
    size_t first = s_segment_of (self, from_seq);
    scan_t scan = {.self = self,
                   .scan_fn = scan_fn,
                   .arg = arg,
                   .scan_from_seq = from_seq,
                   .error = error,
                   .error_size = error_size};
    if (first > 0) {
        scan.last_seq = self->segments[first - 1].last_seq;
        scan.last_ts_ms = self->segments[first - 1].last_ts_ms;
        memcpy (scan.chain, self->segments[first - 1].chain, CHAIN_BYTES);
    }
    for (size_t i = first; i < self->segment_count; i++)
        if (s_scan_segment (self, i, &scan, NULL, NULL))
            return -1;
    return 0;
}

static int s_compare_seqs (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  The first seq a file name <20 digits><suffix> names, or 0.
static int64_t s_name_seq (const char *name, const char *suffix)
{
    size_t length = strlen (name), suffix_bytes = strlen (suffix);
    if (length != LOG_FILE_NAME_DIGITS + suffix_bytes ||
        strcmp (name + LOG_FILE_NAME_DIGITS, suffix))
        return 0;
    int64_t seq = 0;
    for (int i = 0; i < LOG_FILE_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9' || seq > (INT64_MAX - 9) / 10)
            return 0;
        seq = seq * 10 + (name[i] - '0');
    }
    return seq;
}

typedef struct {
    int64_t *segments; // first seqs of *.jsonl, sorted
    size_t segment_count;
    int64_t *indexes; // first seqs of *.idx, sorted
    size_t index_count;
} listing_t;

static void s_listing_free (listing_t *listing)
{
    free (listing->segments);
    free (listing->indexes);
}

//  The events folder's segments and indexes; a leftover *.idx.tmp (a roll
//  cut short) is removed; a *.jsonl or *.idx with another name refuses.
static int s_list (log_file_t *self, listing_t *listing, char *error, size_t error_size)
{
    DIR *dir = fdopendir (dup (self->dir_fd));
    if (!dir)
        return s_fail (error, error_size, "opendir(\"%s\") failed: %s", self->dir,
                       strerror (errno));
    size_t capacity = 0;
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir (dir))) {
        const char *name = entry->d_name;
        size_t length = strlen (name);
        bool is_segment = length > 6 && strcmp (name + length - 6, ".jsonl") == 0;
        bool is_index = length > 4 && strcmp (name + length - 4, ".idx") == 0;
        if (length > 8 && strcmp (name + length - 8, ".idx.tmp") == 0) {
            unlinkat (self->dir_fd, name, 0);
            continue;
        }
        if (!is_segment && !is_index)
            continue;
        int64_t seq = s_name_seq (name, is_segment ? ".jsonl" : ".idx");
        if (seq < 1) {
            rc = s_fail (error, error_size,
                         "%s/%s: an extra file: segments are named by their first seq "
                         "in %d digits",
                         self->dir, name, LOG_FILE_NAME_DIGITS);
            break;
        }
        size_t count = listing->segment_count + listing->index_count;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            int64_t *segments = realloc (listing->segments, capacity * sizeof (int64_t));
            if (segments)
                listing->segments = segments;
            int64_t *indexes = realloc (listing->indexes, capacity * sizeof (int64_t));
            if (indexes)
                listing->indexes = indexes;
            if (!segments || !indexes) {
                rc = s_fail (error, error_size, "%s: out of memory", self->dir);
                break;
            }
        }
        if (is_segment)
            listing->segments[listing->segment_count++] = seq;
        else
            listing->indexes[listing->index_count++] = seq;
    }
    closedir (dir);
    if (listing->segment_count)
        qsort (listing->segments, listing->segment_count, sizeof (int64_t),
               s_compare_seqs);
    if (listing->index_count)
        qsort (listing->indexes, listing->index_count, sizeof (int64_t), s_compare_seqs);
    return rc;
}

//  An earlier version's <data-dir>/events.jsonl becomes the first segment
//  by rename: the same inode, not a byte rewritten.
static int s_adopt (const char *data_dir, const char *dir, char *error, size_t error_size)
{
    char legacy[LOG_FILE_PATH_BYTES_MAX], first[LOG_FILE_PATH_BYTES_MAX];
    snprintf (legacy, sizeof legacy, "%s/events.jsonl", data_dir);
    snprintf (first, sizeof first, "%s/%0*d.jsonl", dir, LOG_FILE_NAME_DIGITS, 1);
    struct stat status;
    if (stat (legacy, &status))
        return 0;
    if (stat (first, &status) == 0)
        return s_fail (error, error_size,
                       "%s and %s both hold a log: which one is the log is not known",
                       legacy, first);
    if (rename (legacy, first))
        return s_fail (error, error_size, "rename(\"%s\", \"%s\") failed: %s", legacy,
                       first, strerror (errno));
    log_info ("log_file: adopted %s as the first segment %s", legacy, first);
    if (s_sync_dir (dir, error, error_size) || s_sync_dir (data_dir, error, error_size))
        return -1;
    return 0;
}

//  Makes events/ (and data_dir) if absent, adopts, and locks it.
static int s_open_dir (log_file_t *self, const char *data_dir, char *error,
                       size_t error_size)
{
    struct stat status;
    bool created = stat (self->dir, &status) != 0;
    if (created && zsys_dir_create ("%s", self->dir))
        return s_fail (error, error_size, "mkdir(\"%s\") failed: %s", self->dir,
                       strerror (errno));
    if (created && s_sync_dir (data_dir, error, error_size))
        return -1;
    self->dir_fd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0)
        return s_fail (error, error_size, "open(\"%s\") failed: %s", self->dir,
                       strerror (errno));
    if (flock (self->dir_fd, LOCK_EX | LOCK_NB))
        return s_fail (error, error_size,
                       "flock(\"%s\") failed: %s (is another process using it?)",
                       self->dir, strerror (errno));
    return s_adopt (data_dir, self->dir, error, error_size);
}

//  Loads the sealed segments' indexes (listing.segments[0..sealed)) and
//  checks each against its file and its neighbours.
static int s_load_sealed (log_file_t *self, const listing_t *listing, size_t sealed,
                          checksum_t *checksums, char *error, size_t error_size)
{
    int64_t expected = 1, last_ts_ms = 0;
    for (size_t i = 0; i < sealed; i++) {
        int64_t first_seq = listing->segments[i];
        if (first_seq != expected)
            return s_fail (error, error_size,
                           "%s/%0*" PRId64 ".jsonl: starts at seq %lld where %lld was "
                           "expected (a missing or extra segment)",
                           self->dir, LOG_FILE_NAME_DIGITS, first_seq,
                           (long long)first_seq, (long long)expected);
        if (s_segment_add (self, first_seq))
            return s_fail (error, error_size, "%s: out of memory", self->dir);
        segment_t *segment = &self->segments[i];
        if (s_index_load (self, first_seq, segment, &checksums[i], error, error_size))
            return -1;
        if (i > 0 && segment->last_ts_ms < last_ts_ms)
            return s_fail (error, error_size,
                           "%s/%0*" PRId64 ".idx: its last ts is before the previous "
                           "segment's",
                           self->dir, LOG_FILE_NAME_DIGITS, first_seq);
        if (s_check_sealed (self, i, error, error_size))
            return -1;
        expected = segment->last_seq + 1;
        last_ts_ms = segment->last_ts_ms;
        self->sealed_bytes += segment->bytes;
    }
    return 0;
}

//  Pairs segments with indexes: the indexes are those of the first
//  segments, one each, and at most the last segment has none (the open
//  one). *sealed: how many segments have one.
static int s_match (log_file_t *self, const listing_t *listing, size_t *sealed,
                    char *error, size_t error_size)
{
    for (size_t i = 0; i < listing->index_count; i++) {
        if (i < listing->segment_count && listing->indexes[i] == listing->segments[i])
            continue;
        bool orphan = true;
        for (size_t j = 0; j < listing->segment_count; j++)
            orphan = orphan && listing->segments[j] != listing->indexes[i];
        if (orphan)
            return s_fail (error, error_size,
                           "%s/%0*" PRId64 ".idx: an index without its segment",
                           self->dir, LOG_FILE_NAME_DIGITS, listing->indexes[i]);
        return s_fail (error, error_size,
                       "%s/%0*" PRId64 ".jsonl: a sealed segment without its index",
                       self->dir, LOG_FILE_NAME_DIGITS, listing->segments[i]);
    }
    if (listing->segment_count > listing->index_count + 1)
        return s_fail (error, error_size,
                       "%s/%0*" PRId64 ".jsonl: a sealed segment without its index, or "
                       "%0*" PRId64 ".jsonl an extra segment (only the last segment may "
                       "be open)",
                       self->dir, LOG_FILE_NAME_DIGITS,
                       listing->segments[listing->index_count], LOG_FILE_NAME_DIGITS,
                       listing->segments[listing->segment_count - 1]);
    *sealed = listing->index_count;
    return 0;
}

//  The index of sealed segment i again, now with its chain (checksum:
//  its CRC32C as just computed).
static int s_index_rewrite (log_file_t *self, size_t i, const checksum_t *checksum,
                            char *error, size_t error_size)
{
    if (s_index_write (self, &self->segments[i], checksum) || fsync (self->dir_fd))
        return s_fail (error, error_size, "%s: writing the chain into index %zu failed: %s",
                       self->dir, i, strerror (errno));
    return 0;
}

//  Opens (creating if need be) the open segment at first_seq and scans it.
static int s_open_last (log_file_t *self, int64_t first_seq, bool create, scan_t *scan)
{
    char path[LOG_FILE_PATH_BYTES_MAX];
    s_segment_path (self, first_seq, ".jsonl", path, sizeof path);
    if (s_segment_add (self, first_seq))
        return s_fail (scan->error, scan->error_size, "%s: out of memory", path);
    self->fd = open (path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0644);
    if (self->fd < 0)
        return s_fail (scan->error, scan->error_size, "open(\"%s\") failed: %s", path,
                       strerror (errno));
    if (create && s_sync_dir (self->dir, scan->error, scan->error_size))
        return -1;
    struct stat status;
    if (fstat (self->fd, &status))
        return s_fail (scan->error, scan->error_size, "fstat(\"%s\") failed: %s", path,
                       strerror (errno));
    s_sum_init (&self->hash, false);
    scan->path = path;
    scan->fd = self->fd;
    scan->file_bytes = (uint64_t)status.st_size;
    scan->torn_offset = scan->file_bytes;
    scan->line_number = 0;
    scan->data_bytes = 0;
    scan->sealed = false;
    scan->hash = &self->hash;
    if (s_scan (scan) || s_settle_tail (self, scan))
        return -1;
    segment_t *segment = s_open_segment (self);
    segment->last_seq = scan->last_seq;
    segment->last_ts_ms = scan->last_ts_ms;
    segment->bytes = scan->data_bytes;
    memcpy (segment->chain, scan->chain, CHAIN_BYTES);
    segment->chain_known = true;
    return 0;
}

static int s_open_log (log_file_t *self, const char *data_dir, log_file_scan_fn *scan_fn,
                       void *arg, char *error, size_t error_size)
{
    listing_t listing = {0};
    checksum_t *checksums = NULL;
    size_t sealed = 0;
    int rc = s_open_dir (self, data_dir, error, error_size) ||
             s_list (self, &listing, error, error_size) ||
             s_match (self, &listing, &sealed, error, error_size);
    if (rc == 0 && sealed && !(checksums = calloc (sealed, sizeof *checksums)))
        rc = s_fail (error, error_size, "%s: out of memory", self->dir);
    if (rc == 0 && listing.segment_count && listing.segments[0] != 1)
        rc = s_fail (error, error_size,
                     "%s/%0*" PRId64 ".jsonl: the first segment does not start at seq 1 "
                     "(a missing segment)",
                     self->dir, LOG_FILE_NAME_DIGITS, listing.segments[0]);
    if (rc == 0)
        rc = s_load_sealed (self, &listing, sealed, checksums, error, error_size);
    //  The tail asked for counts back from the open segment's first seq,
    //  which the last seq follows: a superset of the last tail events.
    int64_t open_first = rc == 0 && sealed ? self->segments[sealed - 1].last_seq + 1 : 1;
    int64_t tail_from = self->config.scan_tail_events > 0
                            ? open_first - self->config.scan_tail_events
                            : INT64_MAX;
    scan_t scan = {.self = self,
                   .scan_fn = scan_fn,
                   .arg = arg,
                   .scan_from_seq = self->config.scan_from_seq < tail_from
                                        ? self->config.scan_from_seq
                                        : tail_from,
                   .error = error,
                   .error_size = error_size};
    for (size_t i = 0; rc == 0 && i < sealed; i++) {
        const segment_t *segment = &self->segments[i];
        //  An index from before chains names none: its lines give it, once.
        bool chain_known = segment->chain_known;
        if (!self->config.verify && chain_known &&
            !(scan_fn && segment->last_seq >= scan.scan_from_seq)) {
            scan.last_seq = segment->last_seq;
            scan.last_ts_ms = segment->last_ts_ms;
            memcpy (scan.chain, segment->chain, CHAIN_BYTES);
            continue;
        }
        //  Such an index is written again with its chain (and a CRC32C).
        checksum_t rewritten;
        rc = s_scan_segment (self, i, &scan, self->config.verify ? &checksums[i] : NULL,
                             chain_known ? NULL : &rewritten);
        if (rc == 0 && !chain_known)
            rc = s_index_rewrite (self, i, &rewritten, error, error_size);
    }
    //  (Only once every sealed segment loaded: a refusal may stop sooner.)
    int64_t open_seq = rc == 0 && sealed ? self->segments[sealed - 1].last_seq + 1 : 1;
    if (rc == 0 && sealed < listing.segment_count && listing.segments[sealed] != open_seq)
        rc = s_fail (error, error_size,
                     "%s/%0*" PRId64 ".jsonl: starts at seq %lld where %lld was expected "
                     "(a missing or extra segment)",
                     self->dir, LOG_FILE_NAME_DIGITS, listing.segments[sealed],
                     (long long)listing.segments[sealed], (long long)open_seq);
    if (rc == 0)
        rc = s_open_last (self, open_seq, sealed == listing.segment_count, &scan);
    free (checksums);
    s_listing_free (&listing);
    return rc;
}

log_file_t *log_file_open (const char *data_dir, const log_file_config_t *config,
                           log_file_scan_fn *scan_fn, void *arg, char *error,
                           size_t error_size)
{
    assert (data_dir);
    log_file_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dir = zsys_sprintf ("%s/events", data_dir))) {
        free (self);
        s_fail (error, error_size, "%s: out of memory", data_dir);
        return NULL;
    }
    self->fd = self->dir_fd = self->read_fd = -1;
    if (config)
        self->config = *config;
    if (self->config.segment_bytes == 0)
        self->config.segment_bytes = LOG_FILE_SEGMENT_BYTES_DEFAULT;
    if (self->config.segment_bytes < LOG_FILE_SEGMENT_BYTES_MIN)
        self->config.segment_bytes = LOG_FILE_SEGMENT_BYTES_MIN;
    if (s_open_log (self, data_dir, scan_fn, arg, error, error_size))
        goto failed;
    const segment_t *open = s_open_segment (self);
    self->last_seq = self->committed_seq = open->last_seq;
    self->last_ts_ms = self->committed_ts_ms =
        open->last_seq >= open->first_seq ? open->last_ts_ms
        : self->segment_count > 1 ? self->segments[self->segment_count - 2].last_ts_ms
                                  : 0;
    self->committed_bytes = self->tail_bytes = open->bytes;
    memcpy (self->chain, open->chain, CHAIN_BYTES);
    memcpy (self->committed_chain, open->chain, CHAIN_BYTES);
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
    if (self->read_fd >= 0)
        close (self->read_fd);
    if (self->dir_fd >= 0)
        close (self->dir_fd); // releases the flock
    free (self->pending);
    free (self->splits);
    free (self->segments);
    free (self->index);
    free (self->dir);
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

int64_t log_file_committed_ts_ms (log_file_t *self)
{
    assert (self);
    return self->committed_ts_ms;
}

const uint8_t *log_file_chain (log_file_t *self)
{
    assert (self);
    return self->chain;
}

const uint8_t *log_file_committed_chain (log_file_t *self)
{
    assert (self);
    return self->committed_chain;
}

uint64_t log_file_bytes (log_file_t *self)
{
    assert (self);
    return self->sealed_bytes + self->committed_bytes;
}

uint64_t log_file_sync_count (log_file_t *self)
{
    assert (self);
    return self->sync_count;
}

//  --- appending --------------------------------------------------------

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

static int s_split_add (log_file_t *self, int64_t seq)
{
    if (self->split_count == self->split_capacity) {
        size_t capacity = self->split_capacity ? self->split_capacity * 2 : 16;
        split_t *splits = realloc (self->splits, capacity * sizeof *splits);
        if (!splits)
            return -1;
        self->splits = splits;
        self->split_capacity = capacity;
    }
    split_t *split = &self->splits[self->split_count++];
    *split = (split_t){self->pending_bytes, seq, self->last_ts_ms, {0}};
    memcpy (split->prev_chain, self->chain, CHAIN_BYTES);
    self->tail_bytes = 0;
    return 0;
}

int log_file_append (log_file_t *self, const char *line, size_t line_bytes, int64_t seq,
                     int64_t ts_ms)
{
    uint8_t chain[CHAIN_BYTES];
    if (chain_check (self->chain, line, line_bytes, chain)) {
        errno = EINVAL;
        return -1;
    }
    return log_file_append_chained (self, line, line_bytes, seq, ts_ms, chain);
}

int log_file_append_chained (log_file_t *self, const char *line, size_t line_bytes,
                             int64_t seq, int64_t ts_ms, const uint8_t *chain)
{
    assert (self && line && line_bytes > 0);
    assert (seq == self->last_seq + 1);
    assert (self->last_seq == 0 || ts_ms >= self->last_ts_ms); // no bound before seq 1
    assert (memchr (line, '\n', line_bytes) == NULL);
    if (s_pending_reserve (self, line_bytes + 1))
        return -1;
    //  The rule on lines alone that makes two logs' segments the same.
    if (self->tail_bytes >= self->config.segment_bytes && s_split_add (self, seq))
        return -1;
    if (s_starts_stride (seq) && s_index_add (self, self->tail_bytes))
        return -1;
    memcpy (self->pending + self->pending_bytes, line, line_bytes);
    self->pending[self->pending_bytes + line_bytes] = '\n';
    self->pending_bytes += line_bytes + 1;
    self->tail_bytes += line_bytes + 1;
    self->last_seq = seq;
    self->last_ts_ms = ts_ms;
    memcpy (self->chain, chain, CHAIN_BYTES);
    return 0;
}

void log_file_rollback (log_file_t *self)
{
    assert (self);
    self->pending_bytes = 0;
    self->split_count = 0;
    self->tail_bytes = self->committed_bytes;
    self->last_seq = self->committed_seq;
    self->last_ts_ms = self->committed_ts_ms;
    memcpy (self->chain, self->committed_chain, CHAIN_BYTES);
    s_index_trim (self, self->committed_seq);
}

//  Room in fd's file for its data to reach end: allocated ahead in steps,
//  so appends write no size change. Best effort: a file system without
//  fallocate, or a disk (or limit) without room for the step ahead, grows
//  the file write by write, and the write says whether the data fits.
static int s_preallocate (log_file_t *self, int fd, uint64_t *allocated, uint64_t end)
{
    if (self->config.no_preallocate || end <= *allocated)
        return 0;
    uint64_t step = self->config.segment_bytes < LOG_FILE_PREALLOCATE_BYTES
                        ? self->config.segment_bytes
                        : LOG_FILE_PREALLOCATE_BYTES;
    uint64_t target = end + step;
    if (fallocate (fd, 0, (off_t)*allocated, (off_t)(target - *allocated)) == 0) {
        *allocated = target;
        return 0;
    }
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        self->config.no_preallocate = true;
    return 0;
}

static int s_pwrite_all (int fd, const char *data, size_t bytes, uint64_t offset)
{
    size_t written = 0;
    while (written < bytes) {
        ssize_t n =
            pwrite (fd, data + written, bytes - written, (off_t)(offset + written));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        written += (size_t)n;
    }
    return 0;
}

//  One commit's files: chunk c goes to fds[c] (fds[0] the open segment).
typedef struct {
    size_t chunks;
    int *fds;
    uint64_t *bytes;     // each chunk's segment size once written
    uint64_t *allocated; // each chunk's file size
    size_t created;      // new files made: chunks 1..created
    size_t sealed;       // indexes written: chunks 0..sealed-1
    sum_t hash;          // of the chunk being written
    const char *call;
} commit_t;

//  Seals chunk c's segment: no preallocated tail, durable, then indexed.
static int s_seal (log_file_t *self, commit_t *commit, size_t c, int64_t first_seq)
{
    const split_t *split = &self->splits[c];
    segment_t segment = {first_seq, split->seq - 1, split->prev_last_ts_ms,
                         commit->bytes[c], {0}, true};
    memcpy (segment.chain, split->prev_chain, CHAIN_BYTES);
    commit->call = "ftruncate";
    if (commit->allocated[c] != commit->bytes[c] &&
        ftruncate (commit->fds[c], (off_t)commit->bytes[c]))
        return -1;
    commit->call = "fdatasync";
    self->sync_count++;
    if (fdatasync (commit->fds[c]))
        return -1;
    checksum_t checksum;
    s_sum_final (&commit->hash, &checksum);
    commit->call = "write index";
    if (s_index_write (self, &segment, &checksum))
        return -1;
    commit->sealed = c + 1;
    return 0;
}

//  Writes chunk c (and seals its segment if a later chunk starts a new one).
static int s_commit_chunk (log_file_t *self, commit_t *commit, size_t c)
{
    size_t start = c == 0 ? 0 : self->splits[c - 1].offset;
    size_t end = c + 1 < commit->chunks ? self->splits[c].offset : self->pending_bytes;
    int64_t first_seq =
        c == 0 ? s_open_segment (self)->first_seq : self->splits[c - 1].seq;
    uint64_t base = c == 0 ? self->committed_bytes : 0;
    if (c > 0) {
        char path[LOG_FILE_PATH_BYTES_MAX];
        s_segment_path (self, first_seq, ".jsonl", path, sizeof path);
        commit->call = "open";
        commit->fds[c] = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (commit->fds[c] < 0)
            return -1;
        commit->created = c;
        s_sum_init (&commit->hash, false);
    }
    commit->call = "fallocate";
    commit->allocated[c] = c == 0 ? self->allocated_bytes : 0;
    if (s_preallocate (self, commit->fds[c], &commit->allocated[c], base + end - start))
        return -1;
    commit->call = "write";
    if (s_pwrite_all (commit->fds[c], self->pending + start, end - start, base))
        return -1;
    s_sum_update (&commit->hash, self->pending + start, end - start);
    commit->bytes[c] = base + end - start;
    if (commit->allocated[c] < commit->bytes[c])
        commit->allocated[c] = commit->bytes[c];
    if (c + 1 < commit->chunks)
        return s_seal (self, commit, c, first_seq);
    return 0;
}

//  A failed commit leaves the files as they were: new segments and the
//  indexes written go, the open segment is cut back to its committed size.
static void s_commit_undo (log_file_t *self, commit_t *commit)
{
    char path[LOG_FILE_PATH_BYTES_MAX];
    for (size_t c = commit->created; c >= 1; c--) {
        close (commit->fds[c]);
        s_segment_path (self, self->splits[c - 1].seq, ".jsonl", path, sizeof path);
        unlink (path);
    }
    for (size_t c = 0; c < commit->sealed; c++) {
        s_segment_path (
            self, c == 0 ? s_open_segment (self)->first_seq : self->splits[c - 1].seq,
            ".idx", path, sizeof path);
        unlink (path);
    }
    if (ftruncate (self->fd, (off_t)self->committed_bytes))
        log_error ("log_file: ftruncate(segment at seq %lld, %llu) failed: %s",
                   (long long)s_open_segment (self)->first_seq,
                   (unsigned long long)self->committed_bytes, strerror (errno));
    self->allocated_bytes = self->committed_bytes;
    if (commit->created || commit->sealed)
        fsync (self->dir_fd);
}

//  The commit's segments become the log's: the sealed ones' records, the
//  last chunk's file as the open segment.
static int s_commit_adopt (log_file_t *self, commit_t *commit)
{
    for (size_t c = 0; c < commit->chunks; c++) {
        segment_t *segment = s_open_segment (self);
        segment->bytes = commit->bytes[c];
        if (c + 1 < commit->chunks) {
            segment->last_seq = self->splits[c].seq - 1;
            segment->last_ts_ms = self->splits[c].prev_last_ts_ms;
            memcpy (segment->chain, self->splits[c].prev_chain, CHAIN_BYTES);
            segment->chain_known = true;
            self->sealed_bytes += segment->bytes;
            close (commit->fds[c]);
            self->segment_count++; // reserved before the commit
            self->segments[self->segment_count - 1] =
                (segment_t){self->splits[c].seq, self->splits[c].seq - 1, 0, 0, {0}, false};
        } else {
            segment->last_seq = self->last_seq;
            segment->last_ts_ms = self->last_ts_ms;
            memcpy (segment->chain, self->chain, CHAIN_BYTES);
            segment->chain_known = true;
        }
    }
    self->fd = commit->fds[commit->chunks - 1];
    self->allocated_bytes = commit->allocated[commit->chunks - 1];
    self->committed_bytes = commit->bytes[commit->chunks - 1];
    self->hash = commit->hash;
    return 0;
}

static int s_segments_reserve (log_file_t *self, size_t more)
{
    while (self->segment_capacity - self->segment_count < more) {
        size_t capacity = self->segment_capacity * 2;
        segment_t *segments = realloc (self->segments, capacity * sizeof *segments);
        if (!segments)
            return -1;
        self->segments = segments;
        self->segment_capacity = capacity;
    }
    return 0;
}

int log_file_commit (log_file_t *self, bool sync)
{
    assert (self);
    if (self->pending_bytes == 0)
        return 0;
    commit_t commit = {.chunks = self->split_count + 1, .call = "malloc"};
    commit.fds = calloc (commit.chunks, sizeof *commit.fds);
    commit.bytes = calloc (commit.chunks, sizeof *commit.bytes);
    commit.allocated = calloc (commit.chunks, sizeof *commit.allocated);
    commit.hash = self->hash;
    int rc = 0;
    if (!commit.fds || !commit.bytes || !commit.allocated ||
        s_segments_reserve (self, self->split_count)) {
        errno = ENOMEM;
        rc = -1;
    } else
        commit.fds[0] = self->fd;
    for (size_t c = 0; rc == 0 && c < commit.chunks; c++)
        rc = s_commit_chunk (self, &commit, c);
    if (rc == 0 && sync) {
        commit.call = "fdatasync";
        self->sync_count++;
        rc = fdatasync (commit.fds[commit.chunks - 1]);
    }
    if (rc == 0 && commit.chunks > 1) {
        commit.call = "fsync folder";
        rc = fsync (self->dir_fd);
    }
    if (rc == 0) {
        s_commit_adopt (self, &commit);
        self->committed_seq = self->last_seq;
        self->committed_ts_ms = self->last_ts_ms;
        memcpy (self->committed_chain, self->chain, CHAIN_BYTES);
        self->pending_bytes = 0;
        self->split_count = 0;
        self->tail_bytes = self->committed_bytes;
    } else {
        int saved_errno = errno;
        log_error ("log_file: %s(\"%s\", %zu bytes at seq %lld) failed: %s", commit.call,
                   self->dir, self->pending_bytes, (long long)self->committed_seq + 1,
                   strerror (saved_errno));
        //  Whatever reached the files past the committed log goes, so they
        //  stay exactly the committed log even if we crash right after.
        if (commit.fds)
            s_commit_undo (self, &commit);
        log_file_rollback (self);
        errno = saved_errno;
    }
    free (commit.fds);
    free (commit.bytes);
    free (commit.allocated);
    return rc;
}

int log_file_remove (const char *data_dir, char *error, size_t error_size)
{
    char path[LOG_FILE_PATH_BYTES_MAX];
    snprintf (path, sizeof path, "%s/events.jsonl", data_dir);
    if (unlink (path) && errno != ENOENT)
        return s_fail (error, error_size, "unlink(\"%s\") failed: %s", path,
                       strerror (errno));
    snprintf (path, sizeof path, "%s/events", data_dir);
    DIR *dir = opendir (path);
    if (!dir)
        return errno == ENOENT ? 0
                               : s_fail (error, error_size, "opendir(\"%s\") failed: %s",
                                         path, strerror (errno));
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir (dir))) {
        const char *name = entry->d_name;
        size_t length = strlen (name);
        if ((length > 6 && strcmp (name + length - 6, ".jsonl") == 0) ||
            (length > 4 && strcmp (name + length - 4, ".idx") == 0) ||
            (length > 8 && strcmp (name + length - 8, ".idx.tmp") == 0))
            if (unlinkat (dirfd (dir), name, 0))
                rc = s_fail (error, error_size, "unlink(\"%s/%s\") failed: %s", path,
                             name, strerror (errno));
    }
    closedir (dir);
    return rc ? rc : s_sync_dir (path, error, error_size);
}

int log_file_sync (log_file_t *self)
{
    assert (self);
    if (self->pending_bytes)
        return log_file_commit (self, true);
    self->sync_count++;
    if (fdatasync (self->fd)) {
        log_error ("log_file: fdatasync(\"%s\" open segment) failed: %s", self->dir,
                   strerror (errno));
        return -1;
    }
    return 0;
}
