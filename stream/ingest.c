/*  ingest — see ingest.h.

    A burst is decided request by request against the live state (versions
    and dedupe window), so later requests see earlier ones. Every change a
    burst makes is recorded to be undone: version changes in an undo log,
    dedupe adds by dedupe_undo(), log lines by the log file itself. Results
    are kept until the commit has succeeded (or failed), then published in
    request order.
*/
#include "ingest.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dedupe.h"
#include "account_table.h"
#include "key_hash.h"
#include "log.h"
#include "snapshot.h"
#include "wire.h"

//  One request is one atomic append; a limit keeps its scratch space
//  (one event_t each, ~1.3 KiB) bounded: 4096 events = ~5 MiB.
#define INGEST_REQUEST_EVENTS_MAX EVENT_REQUEST_EVENTS_MAX
//  A burst stops taking requests past these: one fsync per burst, and a
//  burst's answers wait for that fsync, so it should not grow unbounded.
#define INGEST_BURST_EVENTS_MAX   4096
#define INGEST_BURST_REQUESTS_MAX 1024
//  The last request may overshoot the events limit by up to one request.
#define INGEST_BURST_EVENTS_HARD_MAX (INGEST_BURST_EVENTS_MAX + INGEST_REQUEST_EVENTS_MAX)
//  A transfer touches two accounts.
#define INGEST_BURST_UNDO_MAX  (2 * INGEST_BURST_EVENTS_HARD_MAX)
#define INGEST_ERROR_BYTES_MAX 256
_Static_assert(INGEST_ERROR_BYTES_MAX >= WIRE_RESULT_SEQS_BYTES_MAX,
               "a result's text holds an ok result");
//  The versions' snapshot layout (s_snapshot_save); bump it with any change.
#define INGEST_SNAPSHOT_VERSION 1
#define INGEST_PATH_BYTES_MAX   512 // a segment's path in a refusal
//  Up to this many events, pairwise id comparison is cheaper than a hash table.
#define INGEST_REPEAT_SCAN_EVENTS_MAX 16
//  Slots of the repeated-id table: a power of two, at least twice the events
//  of a request, so probing stays short.
#define INGEST_REPEAT_SLOTS 8192
//  An APPEND request's frames: command, request id, events. Frames past
//  these are received and counted but not kept.
#define INGEST_REQUEST_FRAMES_MAX (INGEST_REQUEST_EVENTS_MAX + 2)
//  Id hash hits kept while the log opens, each checked against the lines
//  once it is open: every one is a repeated id but for a 64-bit collision,
//  so a log with repeats is refused on the first few.
#define INGEST_REPEAT_CANDIDATES_MAX 16

typedef struct {
    size_t id_offset; // request id in the burst text
    size_t id_bytes;
    wire_status_t status;
    bool stateless;    // invalid whatever the state: stays so when a commit fails
    int64_t first_seq; // ok and duplicate
    int64_t last_seq;
    size_t line_first; // ok: its events in the burst's lines
    size_t line_count;
    char *result; // conflict and invalid: the result JSON (owned)
} burst_request_t;

typedef struct {
    size_t offset; // in the burst text, without \n
    size_t bytes;
} burst_line_t;

typedef struct {
    uint32_t record; // the account's version record
    int64_t version; // before the burst changed it; 0 = absent
} undo_t;

//  A saved version record (the snapshot's layout): the version, the
//  account's length and the account, padded to 8 bytes.
typedef struct {
    int64_t version; // 0: absent
    uint8_t bytes;   // of account
    char account[];  // not NUL-terminated
} version_record_t;

//  A slot of the repeated-id table; valid only when its stamp is current,
//  so the table is never cleared between requests.
typedef struct {
    uint32_t stamp;
    uint32_t index; // event index in the request
} repeat_slot_t;

struct ingest {
    log_file_t *log;
    zsock_t *publish; // borrowed
    bool fsync_always;
    //  account -> int64_t version. Records are never removed: a version
    //  undone to 0 reads as absent.
    account_table_t *versions;
    size_t version_accounts; // records with version >= 1
    dedupe_t *dedupe;
    ingest_stats_t stats;
    event_t *events;         // scratch: one request's parsed events
    event_splice_t *splices; // where each event's frame splits for its line
    zmq_msg_t *frames;       // scratch: one request's frames as received
    size_t frame_count;      // kept in frames
    size_t frame_total;      // received, kept or not
    repeat_slot_t *repeat_slots;
    uint32_t repeat_stamp;
    //  The current burst; every field is reset when it is published
    burst_request_t *requests;
    size_t request_count;
    burst_line_t *lines; // line i has seq burst_first_seq + i
    size_t line_count;
    int64_t burst_first_seq;
    char *text; // lines and request ids
    size_t text_bytes;
    size_t text_size;
    undo_t *undo;
    size_t undo_count;
    int burst_errno;                     // non-zero: the burst failed to append or commit
    char line[EVENT_LINE_BYTES_MAX + 2]; // one stored line read back (+ \n)
    event_t confirm_event;               // a stored line's event, parsed to confirm an id
    snapshot_t *snapshot;                // of the versions
    char snapshot_id[EVENT_ID_BYTES_MAX + 1]; // the id at the seq being snapshot
    int64_t versions_seq;   // the opening scan bumps versions after this seq only
    int64_t scan_first_seq; // the first seq the opening scan saw; 0 before
    log_file_t *opening; // the log while it is being opened (read by the snapshot's load)
    //  Opening only: the seq being scanned, and the hash hits seen so far
    int64_t scan_seq;
    struct {
        int64_t earlier, later;
    } repeats[INGEST_REPEAT_CANDIDATES_MAX];
    size_t repeat_count;
};

static int s_versions_init (ingest_t *self)
{
    self->versions = account_table_new (sizeof (int64_t));
    return self->versions ? 0 : -1;
}

//  Empties the versions (the versions are then those of an empty log).
static int s_versions_reset (ingest_t *self)
{
    account_table_destroy (&self->versions);
    self->version_accounts = 0;
    return s_versions_init (self);
}

static int64_t *s_record (ingest_t *self, uint32_t record)
{
    return (int64_t *)account_table_value (self->versions, record);
}

static int64_t s_version (ingest_t *self, const char *account)
{
    uint32_t record = account_table_find (self->versions, account);
    return record ? *s_record (self, record) : 0;
}

static void s_set_version (ingest_t *self, uint32_t record, int64_t version)
{
    int64_t *entry = s_record (self, record);
    if (*entry == 0 && version != 0)
        self->version_accounts++;
    else if (*entry != 0 && version == 0)
        self->version_accounts--;
    *entry = version;
}

//  Touches every account of event: one more version each. Returns 0, or
//  -1 when memory is short (accounts already touched are in the undo log).
static int s_bump_versions (ingest_t *self, const event_t *event, bool record)
{
    const char *accounts[2] = {NULL, NULL};
    if (event_type_has_parties (event->type)) {
        accounts[0] = event->from;
        accounts[1] = event->to;
    } else if (event->type != EVENT_TYPE_UNKNOWN)
        accounts[0] = event->account;
    for (size_t i = 0; i < 2 && accounts[i]; i++) {
        uint32_t found = account_table_ensure (self->versions, accounts[i]);
        if (!found)
            return -1;
        int64_t version = *s_record (self, found);
        if (record) {
            assert (self->undo_count < INGEST_BURST_UNDO_MAX);
            self->undo[self->undo_count++] = (undo_t){found, version};
        }
        s_set_version (self, found, version + 1);
    }
    return 0;
}

static void s_repeat_candidate (ingest_t *self, int64_t earlier)
{
    if (self->repeat_count < INGEST_REPEAT_CANDIDATES_MAX) {
        self->repeats[self->repeat_count].earlier = earlier;
        self->repeats[self->repeat_count].later = self->scan_seq;
        self->repeat_count++;
    }
}

//  The id of the committed line at seq into id; -1 if it cannot be read.
static int s_stored_id (ingest_t *self, int64_t seq, char *id)
{
    size_t bytes = 0;
    char reason[INGEST_ERROR_BYTES_MAX];
    if (log_file_read (self->log, seq, 1, self->line, sizeof self->line, &bytes) != 1 ||
        event_parse_canonical (self->line, bytes - 1, &self->confirm_event, reason,
                               sizeof reason))
        return -1;
    memcpy (id, self->confirm_event.id, sizeof self->confirm_event.id);
    return 0;
}

//  Once the log is open: an id stored at two seqs refuses it, naming both
//  (within the dedupe window, which is what the scan's table holds).
static int s_check_repeats (ingest_t *self, const char *path, char *error,
                            size_t error_size)
{
    for (size_t i = 0; i < self->repeat_count; i++) {
        int64_t earlier = self->repeats[i].earlier, later = self->repeats[i].later;
        char earlier_id[EVENT_ID_BYTES_MAX + 1], later_id[EVENT_ID_BYTES_MAX + 1];
        char earlier_file[INGEST_PATH_BYTES_MAX], later_file[INGEST_PATH_BYTES_MAX];
        uint64_t earlier_at = 0, later_at = 0;
        if (s_stored_id (self, earlier, earlier_id) ||
            s_stored_id (self, later, later_id) ||
            log_file_locate (self->log, earlier, earlier_file, sizeof earlier_file,
                             &earlier_at) ||
            log_file_locate (self->log, later, later_file, sizeof later_file,
                             &later_at)) {
            snprintf (error, error_size, "%s: reading seqs %lld and %lld back failed",
                      path, (long long)earlier, (long long)later);
            return -1;
        }
        if (strcmp (earlier_id, later_id) == 0) {
            snprintf (
                error, error_size,
                "%s: line %lld (%s, byte offset %llu, seq %lld) repeats the id \"%s\" "
                "of line %lld (%s, byte offset %llu, seq %lld); a log stores each id "
                "once",
                path, (long long)later, later_file, (unsigned long long)later_at,
                (long long)later, later_id, (long long)earlier, earlier_file,
                (unsigned long long)earlier_at, (long long)earlier);
            return -1;
        }
    }
    self->repeat_count = 0;
    return 0;
}

//  True if the stored line holds the event with this id: parsed, not
//  searched for, so no spelling of a line can hide its id.
static bool s_line_has_id (ingest_t *self, const char *line, size_t bytes,
                           const char *id)
{
    char reason[INGEST_ERROR_BYTES_MAX];
    if (event_parse_canonical (line, bytes, &self->confirm_event, reason, sizeof reason)) {
        log_error ("stored line read back while checking id \"%s\" does not parse: %s", id,
                   reason);
        return false;
    }
    return strcmp (self->confirm_event.id, id) == 0;
}

static bool s_confirm (void *arg, int64_t seq, const char *id)
{
    ingest_t *self = (ingest_t *)arg;
    if (!self->log) {
        //  Opening: the log cannot be read yet; the hit is checked once it
        //  is open (s_check_repeats).
        s_repeat_candidate (self, seq);
        return false;
    }
    if (self->line_count && seq >= self->burst_first_seq) {
        burst_line_t *line = &self->lines[seq - self->burst_first_seq];
        return s_line_has_id (self, self->text + line->offset, line->bytes, id);
    }
    size_t bytes = 0;
    int count = log_file_read (self->log, seq, 1, self->line, sizeof self->line, &bytes);
    if (count != 1) {
        log_error ("log_file_read (seq %lld) failed while checking id \"%s\"",
                   (long long)seq, id);
        return false;
    }
    return s_line_has_id (self, self->line, bytes - 1, id); // without its \n
}

static int s_scan (void *arg, const event_t *event, const char *line, size_t line_bytes)
{
    ingest_t *self = (ingest_t *)arg;
    if (self->scan_first_seq == 0) {
        self->scan_first_seq = event->seq;
        if (event->seq > 1)
            dedupe_start_at (self->dedupe, event->seq);
    }
    if (event->seq > self->versions_seq && s_bump_versions (self, event, false))
        return -1; // out of memory: the open fails
    self->scan_seq = event->seq;
    dedupe_add_checked (self->dedupe, event->id, event->seq); // hits kept as candidates
    dedupe_settle (self->dedupe);
    return 0;
}

//  A saved record's bytes, padded to 8.
static size_t s_saved_bytes (size_t account_bytes)
{
    return (offsetof (version_record_t, account) + account_bytes + 7) & ~(size_t)7;
}

//  The versions' snapshot body: the seq's id (the log it belongs to), the
//  records' length, then the version records in the order they were
//  added. Allocates nothing.
static int s_snapshot_save (void *state, snapshot_write_fn *write_fn, void *writer)
{
    ingest_t *self = (ingest_t *)state;
    char id[EVENT_ID_BYTES_MAX + 1];
    memset (id, 0, sizeof id);
    memcpy (id, self->snapshot_id, sizeof id);
    uint64_t bytes = 0;
    size_t account_bytes;
    for (uint32_t record = account_table_next (self->versions, 0); record;
         record = account_table_next (self->versions, record)) {
        account_table_name (self->versions, record, &account_bytes);
        bytes += s_saved_bytes (account_bytes);
    }
    if (write_fn (writer, id, sizeof id) || write_fn (writer, &bytes, sizeof bytes))
        return -1;
    for (uint32_t record = account_table_next (self->versions, 0); record;
         record = account_table_next (self->versions, record)) {
        char saved[sizeof (version_record_t) + EVENT_ACCOUNT_BYTES_MAX + 8] = {0};
        const char *account = account_table_name (self->versions, record, &account_bytes);
        memcpy (saved + offsetof (version_record_t, version), s_record (self, record),
                sizeof (int64_t));
        saved[offsetof (version_record_t, bytes)] = (char)account_bytes;
        memcpy (saved + offsetof (version_record_t, account), account, account_bytes);
        if (write_fn (writer, saved, s_saved_bytes (account_bytes)))
            return -1;
    }
    return 0;
}

//  Puts one saved record into the (empty) tables; -1 if it is not one.
static int s_snapshot_record (ingest_t *self, const uint8_t *body, size_t left,
                              size_t *record_bytes)
{
    version_record_t head;
    size_t fixed = offsetof (version_record_t, account);
    if (left < fixed)
        return -1;
    memcpy (&head, body, fixed);
    *record_bytes = s_saved_bytes (head.bytes);
    char account[EVENT_ACCOUNT_BYTES_MAX + 1];
    if (head.bytes == 0 || head.bytes > EVENT_ACCOUNT_BYTES_MAX || head.version < 0 ||
        *record_bytes > left)
        return -1;
    memcpy (account, body + fixed, head.bytes);
    account[head.bytes] = 0;
    if (strlen (account) != head.bytes || account_table_find (self->versions, account))
        return -1;
    uint32_t record = account_table_ensure (self->versions, account);
    if (!record)
        return -1;
    s_set_version (self, record, head.version);
    return 0;
}

//  The versions at seq, and the id the snapshot says the log holds there
//  (checked once the log is open: another log's snapshot must not count).
static int s_snapshot_load (void *state, int64_t seq, const uint8_t *body, size_t left)
{
    ingest_t *self = (ingest_t *)state;
    uint64_t bytes;
    if (left < sizeof self->snapshot_id + sizeof bytes)
        return -1;
    memcpy (self->snapshot_id, body, sizeof self->snapshot_id);
    memcpy (&bytes, body + sizeof self->snapshot_id, sizeof bytes);
    body += sizeof self->snapshot_id + sizeof bytes;
    left -= sizeof self->snapshot_id + sizeof bytes;
    if (bytes != left || self->snapshot_id[EVENT_ID_BYTES_MAX] != 0)
        return -1;
    int rc = 0;
    for (size_t at = 0, record_bytes = 0; rc == 0 && at < left; at += record_bytes)
        rc = s_snapshot_record (self, body + at, left - at, &record_bytes);
    if (rc)
        s_versions_reset (self); // -1 all the same: the snapshot did not load
    return rc;
}

//  Whether the open log holds at seq the event with the snapshot's id.
static bool s_snapshot_matches (ingest_t *self, int64_t seq)
{
    char reason[INGEST_ERROR_BYTES_MAX];
    size_t bytes = 0;
    return seq <= log_file_committed_seq (self->opening) &&
           log_file_read (self->opening, seq, 1, self->line, sizeof self->line, &bytes) ==
               1 &&
           event_parse_canonical (self->line, bytes - 1, &self->confirm_event, reason,
                                  sizeof reason) == 0 &&
           strcmp (self->confirm_event.id, self->snapshot_id) == 0;
}

//  Versions only: the whole log again, when the snapshot was another's.
static int s_scan_versions (void *arg, const event_t *event, const char *line,
                            size_t line_bytes)
{
    return s_bump_versions ((ingest_t *)arg, event, false);
}

//  Loads the newest snapshot of the versions, then opens the log (every
//  segment checked as log_file_open does) scanning only what the versions
//  (after the snapshot) and the dedupe window (the last dedupe_window
//  events) need: not the whole log. One pass over the open segment.
static int s_open_log (ingest_t *self, const char *data_dir,
                       const log_file_config_t *log_config, size_t dedupe_window,
                       char *error, size_t error_size)
{
    self->snapshot = snapshot_new (data_dir, INGEST_SNAPSHOT_VERSION);
    if (!self->snapshot)
        return -1;
    self->versions_seq = snapshot_load (self->snapshot, INT64_MAX, s_snapshot_load, self);
    log_file_config_t config = log_config ? *log_config : (log_file_config_t){0};
    config.scan_from_seq = self->versions_seq + 1;
    config.scan_tail_events = (int64_t)dedupe_window;
    self->opening = log_file_open (data_dir, &config, s_scan, self, error, error_size);
    if (!self->opening)
        return -1;
    if (self->versions_seq > 0 && !s_snapshot_matches (self, self->versions_seq)) {
        log_warn (
            "snapshot at seq %lld of %s does not match its log (another log's, or a "
            "longer one): ignored, versions scanned from the whole log",
            (long long)self->versions_seq, data_dir);
        self->versions_seq = 0;
        if (s_versions_reset (self) ||
            log_file_scan (self->opening, 1, s_scan_versions, self, error, error_size))
            return -1;
    }
    log_info (
        "log %s/events: versions from the snapshot at seq %lld, then scanned from seq "
        "%lld to %lld",
        data_dir, (long long)self->versions_seq, (long long)self->scan_first_seq,
        (long long)log_file_committed_seq (self->opening));
    self->log = self->opening;
    self->opening = NULL;
    return 0;
}

ingest_t *ingest_new (const char *data_dir, const log_file_config_t *log_config,
                      zsock_t *publish, bool fsync_always, size_t dedupe_window,
                      char *error, size_t error_size)
{
    ingest_t *self = (ingest_t *)zmalloc (sizeof (ingest_t));
    self->publish = publish;
    self->fsync_always = fsync_always;
    int versions_rc = s_versions_init (self);
    self->dedupe =
        dedupe_new (dedupe_window, INGEST_BURST_EVENTS_HARD_MAX, s_confirm, self);
    self->events = (event_t *)calloc (INGEST_REQUEST_EVENTS_MAX, sizeof (event_t));
    self->splices =
        (event_splice_t *)calloc (INGEST_REQUEST_EVENTS_MAX, sizeof (event_splice_t));
    self->requests =
        (burst_request_t *)calloc (INGEST_BURST_REQUESTS_MAX, sizeof (burst_request_t));
    self->lines =
        (burst_line_t *)calloc (INGEST_BURST_EVENTS_HARD_MAX, sizeof (burst_line_t));
    self->undo = (undo_t *)calloc (INGEST_BURST_UNDO_MAX, sizeof (undo_t));
    self->frames = (zmq_msg_t *)calloc (INGEST_REQUEST_FRAMES_MAX, sizeof (zmq_msg_t));
    self->repeat_slots =
        (repeat_slot_t *)calloc (INGEST_REPEAT_SLOTS, sizeof (repeat_slot_t));
    if (versions_rc || !self->dedupe || !self->events || !self->splices ||
        !self->requests || !self->lines || !self->undo || !self->frames ||
        !self->repeat_slots) {
        snprintf (error, error_size, "out of memory (dedupe window %zu)", dedupe_window);
        goto failed;
    }
    if (s_open_log (self, data_dir, log_config, dedupe_window, error, error_size) ||
        s_check_repeats (self, data_dir, error, error_size))
        goto failed;
    return self;
failed:
    ingest_destroy (&self);
    return NULL;
}

static void s_burst_reset (ingest_t *self)
{
    for (size_t i = 0; i < self->request_count; i++)
        free (self->requests[i].result);
    self->request_count = 0;
    self->line_count = 0;
    self->text_bytes = 0;
    self->undo_count = 0;
    self->burst_errno = 0;
}

void ingest_destroy (ingest_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ingest_t *self = *self_p;
        if (self->requests)
            s_burst_reset (self);
        snapshot_destroy (&self->snapshot);
        log_file_destroy (&self->log);
        log_file_destroy (&self->opening);
        account_table_destroy (&self->versions);
        dedupe_destroy (&self->dedupe);
        free (self->events);
        free (self->splices);
        free (self->requests);
        free (self->lines);
        free (self->undo);
        free (self->frames);
        free (self->repeat_slots);
        free (self->text);
        free (self);
        *self_p = NULL;
    }
}

//  Appends bytes to the burst text; returns the offset, or -1 when out of memory.
static ssize_t s_text_add (ingest_t *self, const void *data, size_t bytes)
{
    //  Allocated on first use even for an empty frame (request id ""), so
    //  offsets into text are never taken from NULL.
    if (!self->text || self->text_bytes + bytes > self->text_size) {
        size_t size = self->text_size ? self->text_size : 64 * 1024;
        while (size < self->text_bytes + bytes)
            size *= 2;
        char *text = (char *)realloc (self->text, size);
        if (!text)
            return -1;
        self->text = text;
        self->text_size = size;
    }
    memcpy (self->text + self->text_bytes, data, bytes);
    self->text_bytes += bytes;
    return (ssize_t)(self->text_bytes - bytes);
}

static void s_frames_close (ingest_t *self)
{
    for (size_t i = 0; i < self->frame_count; i++)
        zmq_msg_close (&self->frames[i]);
    self->frame_count = 0;
}

static void s_answer_invalid (burst_request_t *request, bool stateless, const char *error)
{
    request->result = wire_result_invalid (error);
    request->status = WIRE_STATUS_INVALID;
    request->stateless = stateless;
}

//  Index of an earlier event with the same id, or -1; remembers this one.
static ssize_t s_repeat_seen (ingest_t *self, size_t index)
{
    const char *id = self->events[index].id;
    size_t slot = key_hash (id) & (INGEST_REPEAT_SLOTS - 1);
    for (;; slot = (slot + 1) & (INGEST_REPEAT_SLOTS - 1)) {
        repeat_slot_t *entry = &self->repeat_slots[slot];
        if (entry->stamp != self->repeat_stamp) {
            *entry = (repeat_slot_t){self->repeat_stamp, (uint32_t)index};
            return -1;
        }
        if (streq (self->events[entry->index].id, id))
            return (ssize_t)entry->index;
    }
}

//  Answers invalid if an id appears twice in the request. Small requests
//  compare pairs; larger ones go through a table of their ids.
static bool s_find_repeated_id (ingest_t *self, size_t count, burst_request_t *request)
{
    size_t repeat = 0, first = 0;
    if (count <= INGEST_REPEAT_SCAN_EVENTS_MAX) {
        for (repeat = 1; repeat < count; repeat++)
            for (first = 0; first < repeat; first++)
                if (streq (self->events[first].id, self->events[repeat].id))
                    goto repeated;
        return false;
    }
    assert (count * 2 <= INGEST_REPEAT_SLOTS);
    if (++self->repeat_stamp == 0) { // wrapped: old stamps could match again
        memset (self->repeat_slots, 0, INGEST_REPEAT_SLOTS * sizeof (repeat_slot_t));
        self->repeat_stamp = 1;
    }
    for (repeat = 0; repeat < count; repeat++) {
        ssize_t seen = s_repeat_seen (self, repeat);
        if (seen >= 0) {
            first = (size_t)seen;
            goto repeated;
        }
    }
    return false;
repeated:;
    char error[INGEST_ERROR_BYTES_MAX];
    snprintf (error, sizeof error, "event %zu: id \"%s\" repeats event %zu", repeat,
              self->events[repeat].id, first);
    s_answer_invalid (request, true, error);
    return true;
}

//  Parses the proposed events and checks ids do not repeat inside the
//  request. Returns the event count, or 0 with the request answered.
static size_t s_parse_request (ingest_t *self, const wire_append_t *append,
                               burst_request_t *request)
{
    size_t count = append->event_count;
    char error[INGEST_ERROR_BYTES_MAX];
    if (count == 0) {
        s_answer_invalid (request, true, "empty request: no events");
        return 0;
    }
    if (count > INGEST_REQUEST_EVENTS_MAX) {
        snprintf (error, sizeof error, "too many events: %zu (at most %d per request)",
                  count, INGEST_REQUEST_EVENTS_MAX);
        s_answer_invalid (request, true, error);
        return 0;
    }
    for (size_t index = 0; index < count; index++) {
        zmq_msg_t *frame = &append->events[index];
        char reason[INGEST_ERROR_BYTES_MAX - 32];
        if (event_parse_proposed_splice ((const char *)zmq_msg_data (frame),
                                         zmq_msg_size (frame), &self->events[index],
                                         &self->splices[index], reason, sizeof reason)) {
            snprintf (error, sizeof error, "event %zu: %s", index, reason);
            s_answer_invalid (request, true, error);
            return 0;
        }
    }
    if (s_find_repeated_id (self, count, request))
        return 0;
    return count;
}

//  Duplicate if every id is stored, in order, from the first one's seq;
//  invalid if some are stored and others not. Returns true when answered.
static bool s_check_duplicate (ingest_t *self, size_t count, burst_request_t *request)
{
    char error[INGEST_ERROR_BYTES_MAX];
    int64_t first_seq = dedupe_find (self->dedupe, self->events[0].id);
    for (size_t index = first_seq ? 0 : 1; index < count; index++) {
        int64_t seq =
            index ? dedupe_find (self->dedupe, self->events[index].id) : first_seq;
        if (first_seq && seq != first_seq + (int64_t)index) {
            snprintf (error, sizeof error,
                      "event %zu: id \"%s\" %s, unlike event 0 (stored at seq %lld)",
                      index, self->events[index].id,
                      seq ? "is stored elsewhere" : "is new", (long long)first_seq);
            s_answer_invalid (request, false, error);
            return true;
        }
        if (!first_seq && seq) {
            snprintf (
                error, sizeof error,
                "event %zu: id \"%s\" is already stored at seq %lld, but event 0 is new",
                index, self->events[index].id, (long long)seq);
            s_answer_invalid (request, false, error);
            return true;
        }
    }
    if (!first_seq)
        return false;
    request->status = WIRE_STATUS_DUPLICATE;
    request->first_seq = first_seq;
    request->last_seq = first_seq + (int64_t)count - 1;
    return true;
}

//  Conflict unless every expect holds against the versions before this
//  request. Returns true when answered.
static bool s_check_expect (ingest_t *self, size_t count, burst_request_t *request)
{
    bool holds = true;
    for (size_t index = 0; index < count && holds; index++)
        for (size_t e = 0; e < self->events[index].expect_count; e++) {
            const event_expect_t *expect = &self->events[index].expect[e];
            if (s_version (self, expect->account) != expect->version)
                holds = false;
        }
    if (holds)
        return false;
    cJSON *versions = cJSON_CreateObject ();
    for (size_t index = 0; index < count; index++)
        for (size_t e = 0; e < self->events[index].expect_count; e++) {
            const char *account = self->events[index].expect[e].account;
            if (!cJSON_GetObjectItemCaseSensitive (versions, account))
                cJSON_AddNumberToObject (versions, account,
                                         (double)s_version (self, account));
        }
    request->result = wire_result_conflict (&versions);
    request->status = WIRE_STATUS_CONFLICT;
    return true;
}

//  Sequences, formats (from the frames, still held) and appends the
//  request's events. Returns 0, or -1
//  with burst_errno set (nothing of the burst can be kept then).
static int s_append_request (ingest_t *self, size_t count, burst_request_t *request)
{
    request->status = WIRE_STATUS_OK;
    request->line_first = self->line_count;
    request->line_count = count;
    request->first_seq = log_file_last_seq (self->log) + 1;
    request->last_seq = request->first_seq + (int64_t)count - 1;
    if (self->line_count == 0)
        self->burst_first_seq = request->first_seq;
    //  ts never decreases along seq, even when the wall clock steps back.
    int64_t ts_ms = zclock_time ();
    if (ts_ms < log_file_last_ts_ms (self->log))
        ts_ms = log_file_last_ts_ms (self->log);
    char line[EVENT_LINE_BYTES_MAX];
    for (size_t index = 0; index < count; index++) {
        event_t *event = &self->events[index];
        event->seq = request->first_seq + (int64_t)index;
        event->ts_ms = ts_ms;
        event->expect_count = 0;
        size_t bytes = event_format_stored_splice (
            event, (const char *)zmq_msg_data (&self->frames[index + 2]),
            &self->splices[index], line, sizeof line);
        assert (bytes > 0);
        ssize_t offset = s_text_add (self, line, bytes);
        if (offset < 0 || log_file_append (self->log, line, bytes, event->seq, ts_ms)) {
            self->burst_errno = ENOMEM;
            return -1;
        }
        self->lines[self->line_count++] = (burst_line_t){(size_t)offset, bytes};
        dedupe_add (self->dedupe, event->id, event->seq);
        if (s_bump_versions (self, event, true)) {
            self->burst_errno = ENOMEM;
            return -1;
        }
    }
    return 0;
}

//  Receives one message's frames into self->frames (those past
//  INGEST_REQUEST_FRAMES_MAX are counted and dropped). Returns 0, or -1
//  with nothing kept when no message is waiting (or on an error).
//  The first frame is taken with ZMQ_DONTWAIT instead of asking
//  zsock_events first: ZMQ_EVENTS looks into the socket's command mailbox
//  each time (a poll and a getpid system call per request), a
//  non-blocking receive does so only when the pipe is empty, once per
//  burst. The other frames of a message arrive with its first.
static int s_recv_request (ingest_t *self, void *pull)
{
    self->frame_count = self->frame_total = 0;
    zmq_msg_t extra;
    bool more = true;
    while (more) {
        bool keep = self->frame_count < INGEST_REQUEST_FRAMES_MAX;
        zmq_msg_t *frame = keep ? &self->frames[self->frame_count] : &extra;
        zmq_msg_init (frame);
        int flags = self->frame_total == 0 ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv (frame, pull, flags) < 0) {
            zmq_msg_close (frame);
            s_frames_close (self);
            return -1;
        }
        more = zmq_msg_more (frame);
        self->frame_total++;
        if (keep)
            self->frame_count++;
        else
            zmq_msg_close (frame);
    }
    return 0;
}

//  Decides the received request: ["APPEND", request_id, event...].
static void s_take_request (ingest_t *self)
{
    burst_request_t *request = &self->requests[self->request_count];
    *request = (burst_request_t){0};
    wire_append_t append;
    wire_append_rc_t rc = wire_append_parse (self->frames, self->frame_total, &append);
    if (rc == WIRE_APPEND_NO_ID) {
        log_warn ("ingest: dropped a message of %zu frame(s) without a request id",
                  self->frame_total);
        self->stats.requests_invalid++;
        return;
    }
    ssize_t offset = s_text_add (self, append.request_id, append.request_id_bytes);
    if (offset < 0) {
        log_error ("ingest: out of memory for a request id");
        return;
    }
    request->id_offset = (size_t)offset;
    request->id_bytes = append.request_id_bytes;
    self->request_count++;
    if (self->burst_errno)
        request->status = WIRE_STATUS_UNAVAILABLE;
    else if (rc == WIRE_APPEND_NOT_APPEND)
        s_answer_invalid (request, true, "unknown command (expected APPEND)");
    else {
        size_t count = s_parse_request (self, &append, request);
        if (count && !s_check_duplicate (self, count, request) &&
            !s_check_expect (self, count, request))
            s_append_request (self, count, request);
    }
}

//  The burst is not durable: forget its effects, newest first.
static void s_undo_burst (ingest_t *self)
{
    log_file_rollback (self->log);
    dedupe_undo (self->dedupe);
    while (self->undo_count) {
        undo_t *undo = &self->undo[--self->undo_count];
        s_set_version (self, undo->record, undo->version);
    }
    self->line_count = 0;
    self->stats.commits_failed++;
    for (size_t i = 0; i < self->request_count; i++) {
        burst_request_t *request = &self->requests[i];
        if (request->status != WIRE_STATUS_INVALID || !request->stateless) {
            free (request->result);
            request->result = NULL;
            request->status = WIRE_STATUS_UNAVAILABLE;
        }
    }
}

//  Frames go straight to libzmq (wire.h). PUB never blocks; at its
//  high-water mark the whole message is dropped.
static void s_publish_result (ingest_t *self, burst_request_t *request)
{
    char text[INGEST_ERROR_BYTES_MAX];
    const char *result = request->result;
    if (request->status == WIRE_STATUS_OK || request->status == WIRE_STATUS_DUPLICATE) {
        wire_result_format_seqs (text, request->status == WIRE_STATUS_DUPLICATE,
                                 request->first_seq, request->last_seq);
        result = text;
    } else if (request->status == WIRE_STATUS_UNAVAILABLE) {
        wire_result_format_unavailable (text, sizeof text, strerror (self->burst_errno));
        result = text;
    }
    assert (result);
    wire_result_send (zsock_resolve (self->publish), self->text + request->id_offset,
                      request->id_bytes, result);
}

static void s_publish_burst (ingest_t *self)
{
    for (size_t i = 0; i < self->request_count; i++) {
        burst_request_t *request = &self->requests[i];
        if (request->status == WIRE_STATUS_OK) {
            void *publish = zsock_resolve (self->publish);
            wire_events_begin (publish);
            for (size_t l = 0; l < request->line_count; l++) {
                burst_line_t *line = &self->lines[request->line_first + l];
                wire_send (publish, self->text + line->offset, line->bytes,
                           l + 1 < request->line_count);
            }
        }
        s_publish_result (self, request);
        uint64_t *counters[] = {
            &self->stats.requests_ok,          &self->stats.requests_conflict,
            &self->stats.requests_duplicate,   &self->stats.requests_invalid,
            &self->stats.requests_unavailable,
        };
        (*counters[request->status])++;
    }
}

int ingest_drain (ingest_t *self, zsock_t *pull)
{
    void *socket = zsock_resolve (pull);
    while (self->request_count < INGEST_BURST_REQUESTS_MAX &&
           self->line_count < INGEST_BURST_EVENTS_MAX) {
        if (s_recv_request (self, socket))
            break;
        s_take_request (self);
        s_frames_close (self);
    }
    if (self->request_count == 0)
        return 0;
    self->stats.bursts++;
    if (self->line_count && !self->burst_errno &&
        log_file_commit (self->log, self->fsync_always))
        self->burst_errno = errno ? errno : EIO;
    if (self->burst_errno) {
        log_error ("ingest: appending %zu event(s) from seq %lld failed: %s",
                   self->line_count, (long long)self->burst_first_seq,
                   strerror (self->burst_errno));
        s_undo_burst (self);
    } else {
        dedupe_settle (self->dedupe);
        self->stats.events_appended += self->line_count;
    }
    s_publish_burst (self);
    s_burst_reset (self);
    return 0;
}

log_file_t *ingest_log (ingest_t *self)
{
    return self->log;
}

const ingest_stats_t *ingest_stats (ingest_t *self)
{
    return &self->stats;
}

int64_t ingest_find (ingest_t *self, const char *id)
{
    assert (self && id);
    return dedupe_find (self->dedupe, id);
}

size_t ingest_account_count (ingest_t *self)
{
    return self->version_accounts;
}

int ingest_snapshot (ingest_t *self, bool now)
{
    assert (self);
    snapshot_poll (self->snapshot, now);
    int64_t seq = log_file_committed_seq (self->log);
    if (seq == 0 || seq <= snapshot_seq (self->snapshot) ||
        snapshot_running (self->snapshot) ||
        (!now && seq - snapshot_seq (self->snapshot) < INGEST_SNAPSHOT_EVERY))
        return 0;
    //  Between bursts the versions are those of the committed log.
    assert (log_file_last_seq (self->log) == seq);
    size_t bytes = 0;
    char reason[INGEST_ERROR_BYTES_MAX];
    if (log_file_read (self->log, seq, 1, self->line, sizeof self->line, &bytes) != 1 ||
        event_parse_canonical (self->line, bytes - 1, &self->confirm_event, reason,
                               sizeof reason))
        return -1;
    memcpy (self->snapshot_id, self->confirm_event.id, sizeof self->snapshot_id);
    return now ? snapshot_write (self->snapshot, seq, s_snapshot_save, self)
               : snapshot_start (self->snapshot, seq, s_snapshot_save, self);
}
