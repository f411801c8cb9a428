/*  log_file — an append-only JSON Lines event log with group commit.

    Used by the stream for events.jsonl and by accounting for its replica.
    Line N of the file holds the event with seq N (contiguous from 1), in
    the canonical form of event.h. The module knows lines, seqs and
    timestamps; it holds no business rules.

    Opening scans the whole file once and validates every line:
    - a torn tail (bytes after the last \n with no \n of their own: a cut
      write, or the NUL blocks a crash can leave) was never acknowledged:
      it is truncated, with a warning naming the offset and the bytes
      dropped;
    - a complete (\n-terminated) line that is not exactly canonical
      (event_parse_canonical: CRLF, spacing, key order, a bad byte), a seq
      gap or disorder, or ts going backwards, wherever the line is, even
      last: the open fails with an error naming the line number and byte
      offset, and the file is left untouched.

    Appends are buffered in memory and made durable by one
    log_file_commit() per burst (one write + one fdatasync). Reads go
    through a sparse in-memory index (one offset every LOG_FILE_INDEX_STRIDE
    events) and pread, and see only committed events.
*/
#ifndef LOG_FILE_H_INCLUDED
#define LOG_FILE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define LOG_FILE_INDEX_STRIDE                                                            \
    256 // 8 bytes of index per 256 events; a read skips <256 lines

typedef struct log_file log_file_t;

//  Called once per valid event during the opening scan, in seq order. The
//  event and the line are borrowed for the duration of the call. Return 0
//  to go on, -1 to abort the open (the error then names the callback).
typedef int (log_file_scan_fn) (void *arg, const event_t *event, const char *line,
                                size_t line_bytes);

//  Opens path (creating it and its missing parent directory if absent),
//  recovers a torn tail and scans every event through scan_fn (may be
//  NULL). Returns NULL with a reason in error if the file is refused or
//  cannot be opened.
log_file_t *log_file_open (const char *path, log_file_scan_fn *scan_fn, void *arg,
                           char *error, size_t error_size);

//  Closes the file. Uncommitted appends are dropped. Idempotent; nulls *self_p.
void log_file_destroy (log_file_t **self_p);

//  Seq of the last appended event (committed or not); 0 for an empty log.
int64_t log_file_last_seq (log_file_t *self);

//  Seq of the last committed (durable) event; reads never go beyond it.
int64_t log_file_committed_seq (log_file_t *self);

//  ts of the last appended event, 0 for an empty log (which bounds no ts:
//  seq 1 may be from any time).
int64_t log_file_last_ts_ms (log_file_t *self);

//  Size in bytes of the committed part of the file.
uint64_t log_file_bytes (log_file_t *self);

//  Number of fdatasync calls made so far (for metrics and benchmarks).
uint64_t log_file_sync_count (log_file_t *self);

//  Buffers one canonical line (without \n) whose seq must be
//  log_file_last_seq() + 1 and whose ts must not go backwards (both
//  asserted: the caller formats the line). Returns 0, or -1 if the
//  pending buffer cannot grow (out of memory).
int log_file_append (log_file_t *self, const char *line, size_t line_bytes, int64_t seq,
                     int64_t ts_ms);

//  Writes every pending line with one write and, if sync is true, one
//  fdatasync. On failure (disk full, I/O error) the file is truncated back
//  to its last committed size, the pending lines are dropped, errno is
//  kept and -1 is returned; the log stays valid and usable.
int log_file_commit (log_file_t *self, bool sync);

//  Drops pending (uncommitted) lines.
void log_file_rollback (log_file_t *self);

//  Copies committed events from from_seq on (whole lines, each with its
//  \n) into buffer: at most max_events events and at most buffer_size
//  bytes. Returns the number of events copied (0 when from_seq is past the
//  end) and their total bytes in *bytes_out, or -1 on an I/O error or a
//  single line larger than buffer_size.
int log_file_read (log_file_t *self, int64_t from_seq, size_t max_events, char *buffer,
                   size_t buffer_size, size_t *bytes_out);

//  Byte offset in the file of the committed line holding seq, into
//  *offset (for messages that name where a line is). 0, or -1 if seq is
//  not committed or on an I/O error.
int log_file_offset (log_file_t *self, int64_t seq, uint64_t *offset);

#endif
