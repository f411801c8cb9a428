/*  log_file — an append-only JSON Lines event log in segments, with group
    commit.

    Used by the stream for its log and by accounting for its replica. The
    log of <data-dir> is the folder <data-dir>/events/ of segment files
    <first seq, 20 digits>.jsonl; line N of the log holds the event with
    seq N (contiguous from 1), in the canonical form of event.h. The module
    knows lines, seqs and timestamps; it holds no business rules.

    Segments. A line starts a new segment when the open (last) one already
    holds config.segment_bytes or more: a rule on the lines alone, so two
    logs of the same lines with the same segment_bytes have the same
    segments, byte for byte (that is how a replica's segments match the
    stream's). A sealed segment is never written again; beside it,
    <first seq>.idx (one JSON line) holds its last seq and ts, its bytes,
    its CRC32C checksum (BLAKE2b-256 in a version 1 index), the offsets of its seqs 1 + k * STRIDE, and
    "chain": the tamper-evidence chain (chain.h) at its last line (null
    in an index from before chains: its lines give it at the next open,
    and the index is written again with it).
    The open segment is preallocated ahead of its data (fallocate), so
    its file ends in zeros that are not lines.

    A single <data-dir>/events.jsonl from an earlier version is adopted as
    the first segment by rename(2) into events/: not a byte is rewritten.

    Opening checks the open segment line by line and each sealed segment
    through its index (its size, first and last line); with config.verify,
    every sealed line and checksum too. For the open segment:
    - a torn tail (bytes after the last \n with no \n of their own: a cut
      write, or the NUL blocks a crash can leave) was never acknowledged:
      it is truncated, with a warning naming the offset and the bytes
      dropped; zeros alone are the preallocated tail and are kept;
    - a complete (\n-terminated) line that is not exactly canonical
      (event_parse_canonical: CRLF, spacing, key order, a bad byte), a seq
      gap or disorder, or ts going backwards, wherever the line is, even
      last: the open fails with an error naming the file, line number and
      byte offset, and the file is left untouched.
    Every scanned line's chain key, if it has one, must follow from the
    lines before it (chain.h), and a sealed segment's lines must end on
    the chain its index names: a line that does not is refused the same way.
    A missing or extra segment, an index that disagrees with its segment,
    or (when read) a sealed line that disagrees with its index fail the
    same way. Sealed lines are checked when they are read (scan, FETCH).

    Appends are buffered in memory and made durable by one
    log_file_commit() per burst (one write + one fdatasync; a roll adds
    the sealed segment's index). Reads go through a sparse in-memory index
    (one offset every LOG_FILE_INDEX_STRIDE events) and pread, cross
    segment boundaries, and see only committed events.
*/
#ifndef LOG_FILE_H_INCLUDED
#define LOG_FILE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define LOG_FILE_INDEX_STRIDE                                                            \
    256 // 8 bytes of index per 256 events; a read skips <256 lines

//  Default roll size: a sealed segment's index and checksum stay small
//  beside it, and a start checks a bounded open segment.
#define LOG_FILE_SEGMENT_BYTES_DEFAULT (256ULL * 1024 * 1024)
#define LOG_FILE_SEGMENT_BYTES_MIN     4096 // tests roll often; below this, files pile up
#define LOG_FILE_SEGMENT_BYTES_MAX     (1LL << 40) // 1 TiB: a bound, not a suggestion

typedef struct log_file log_file_t;

typedef struct {
    uint64_t segment_bytes;   // roll threshold; 0: LOG_FILE_SEGMENT_BYTES_DEFAULT
    bool verify;              // check every sealed line and checksum at open
    bool no_preallocate;      // grow the open segment write by write instead
    int64_t scan_from_seq;    // scan_fn sees seqs from here on (0 or 1: all;
                              // INT64_MAX: none, for log_file_scan later)
    int64_t scan_tail_events; // and at least the last this many (0: none)
} log_file_config_t;

//  Called once per valid event during the opening scan, in seq order. The
//  event and the line are borrowed for the duration of the call. Return 0
//  to go on, -1 to abort the open (the error then names the callback).
typedef int (log_file_scan_fn) (void *arg, const event_t *event, const char *line,
                                size_t line_bytes);

//  Opens the log of data_dir (creating data_dir/events/ if absent, adopting
//  an earlier version's data_dir/events.jsonl), recovers a torn tail and
//  scans every event from config->scan_from_seq on through scan_fn (may
//  be NULL). config may be NULL (defaults). Returns NULL with a reason in
//  error if the log is refused or cannot be opened.
log_file_t *log_file_open (const char *data_dir, const log_file_config_t *config,
                           log_file_scan_fn *scan_fn, void *arg, char *error,
                           size_t error_size);

//  Scans the committed events from from_seq on through scan_fn, in seq
//  order, each line checked as at open (canonical, in order, at the
//  offsets the index says). 0, or -1 with a reason in error (a refused
//  line, or scan_fn's -1).
int log_file_scan (log_file_t *self, int64_t from_seq, log_file_scan_fn *scan_fn,
                   void *arg, char *error, size_t error_size);

//  Removes the log of data_dir (every segment and index, and an earlier
//  version's events.jsonl): what --rebuild discards. 0, or -1 with a
//  reason in error.
int log_file_remove (const char *data_dir, char *error, size_t error_size);

//  Closes the file. Uncommitted appends are dropped. Idempotent; nulls *self_p.
void log_file_destroy (log_file_t **self_p);

//  Seq of the last appended event (committed or not); 0 for an empty log.
int64_t log_file_last_seq (log_file_t *self);

//  Seq of the last committed (durable) event; reads never go beyond it.
int64_t log_file_committed_seq (log_file_t *self);

//  ts of the last appended event, 0 for an empty log (which bounds no ts:
//  seq 1 may be from any time).
int64_t log_file_last_ts_ms (log_file_t *self);

//  Size in bytes of the committed log (every segment).
uint64_t log_file_bytes (log_file_t *self);

//  Number of fdatasync calls made so far (for metrics and benchmarks).
uint64_t log_file_sync_count (log_file_t *self);

//  Buffers one canonical line (without \n) whose seq must be
//  log_file_last_seq() + 1 and whose ts must not go backwards (both
//  asserted: the caller formats the line). Its chain is computed from
//  log_file_chain(). Returns 0, or -1 if the pending buffer cannot grow
//  (out of memory) or its chain key names another chain (EINVAL).
int log_file_append (log_file_t *self, const char *line, size_t line_bytes, int64_t seq,
                     int64_t ts_ms);

//  The same, for a line whose chain the caller computed or checked from
//  log_file_chain() (chain_seal, chain_check): not hashed again.
int log_file_append_chained (log_file_t *self, const char *line, size_t line_bytes,
                             int64_t seq, int64_t ts_ms, const uint8_t *chain);

//  The chain (CHAIN_BYTES) at log_file_last_seq(), and at the committed
//  seq; 32 zero bytes for an empty log. Valid until the next call.
const uint8_t *log_file_chain (log_file_t *self);
const uint8_t *log_file_committed_chain (log_file_t *self);

//  ts of the last committed event, 0 for an empty log.
int64_t log_file_committed_ts_ms (log_file_t *self);

//  Writes every pending line with one write and, if sync is true, one
//  fdatasync. On failure (disk full, I/O error) the file is truncated back
//  to its last committed size, the pending lines are dropped, errno is
//  kept and -1 is returned; the log stays valid and usable.
int log_file_commit (log_file_t *self, bool sync);

//  log_file_commit with sync, and an fdatasync even when nothing is
//  pending (earlier commits may have been without one). 0 or -1.
int log_file_sync (log_file_t *self);

//  Drops pending (uncommitted) lines.
void log_file_rollback (log_file_t *self);

//  Copies committed events from from_seq on (whole lines, each with its
//  \n) into buffer: at most max_events events and at most buffer_size
//  bytes. Returns the number of events copied (0 when from_seq is past the
//  end) and their total bytes in *bytes_out, or -1 on an I/O error or a
//  single line larger than buffer_size.
int log_file_read (log_file_t *self, int64_t from_seq, size_t max_events, char *buffer,
                   size_t buffer_size, size_t *bytes_out);

//  Byte offset of the committed line holding seq in its segment file, into
//  *offset, and that file's path into path (path_size bytes; path may be
//  NULL), for messages that name where a line is. 0, or -1 if seq is not
//  committed or on an I/O error.
int log_file_offset (log_file_t *self, int64_t seq, uint64_t *offset);
int log_file_locate (log_file_t *self, int64_t seq, char *path, size_t path_size,
                     uint64_t *offset);

//  Number of segments (sealed ones and the open one).
size_t log_file_segment_count (log_file_t *self);

#endif
