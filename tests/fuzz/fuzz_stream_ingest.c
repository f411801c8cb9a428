/*  fuzz_stream_ingest — the stream's sequencer (ingest.h) behind real
    ZeroMQ sockets.

    The input is a list of messages: per message one byte of frame count,
    then per frame a 2-byte big-endian length and its bytes (a frame cut
    short by the end of the input takes what is left). Each input starts a
    fresh ingest on an empty log (fsync off), sends its messages on a PUSH
    to the ingest's PULL, drains, and reads everything published on a SUB.
    A small model (ids -> seq, account -> version), fed only by what was
    published, decides what each request must get. Claims, from ingest.h
    and DESIGN.md:
    - every message of two frames or more gets exactly one RESULT, in
      order, with its request id; shorter messages get none;
    - the status is the model's: invalid (not APPEND, no events, an event
      that does not parse, an id twice, ids partly stored), duplicate (every
      id stored in order, with the stored seqs), conflict (an expect that
      does not hold, with the versions now), else ok;
    - an ok request's EVENTS come right before its RESULT: its events in
      order, in canonical stored form (formatted here from the parsed
      fields; the stream splices the proposed bytes), seqs contiguous from the last
      one, ts never decreasing; a conflict reports every expected account's
      version;
    - the log file is exactly the published lines, reopens at the last
      seq, and an ingest reopened on it knows the same accounts; the
      counters agree with the answers.
*/
#include "fuzz_common.h"
#include "fuzz_frames.h"

#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ingest.h"
#include "log.h"
#include "log_file.h"

#define FUZZ_INGEST_DEDUPE_WINDOW 4096 // beyond any input's events: no id is forgotten

typedef enum { STATUS_OK, STATUS_CONFLICT, STATUS_DUPLICATE, STATUS_INVALID } status_t;

typedef struct {
    zsock_t *publish, *subscribe, *push, *pull;
    char dir[256];
    char path[300];
    //  Per input: the model, rebuilt from what is published
    zhashx_t *ids;      // id -> (void *) seq
    zhashx_t *versions; // account -> (void *) version
    int64_t last_seq;
    int64_t last_ts_ms;
    char *published; // every published line with its \n
    size_t published_bytes;
    uint64_t answered[4]; // by status
    uint64_t dropped;     // messages of fewer than two frames
} fuzz_t;

static const log_file_config_t s_fuzz_log = {.no_preallocate =
                                                 true}; // the file is the log
static fuzz_t s_fuzz;

static void s_cleanup (void)
{
    zsock_destroy (&s_fuzz.push);
    zsock_destroy (&s_fuzz.pull);
    zsock_destroy (&s_fuzz.subscribe);
    zsock_destroy (&s_fuzz.publish);
    zhashx_destroy (&s_fuzz.ids);
    zhashx_destroy (&s_fuzz.versions);
    free (s_fuzz.published);
    unlink (s_fuzz.path);
    zsys_dir_delete ("%s/events", s_fuzz.dir);
    rmdir (s_fuzz.dir);
}

static zsock_t *s_socket (int type, const char *endpoint, bool bind)
{
    zsock_t *socket = zsock_new (type);
    fuzz_check (socket, "zsock_new");
    // Nothing may be dropped: a burst publishes two messages per request
    zsock_set_sndhwm (socket, 0);
    zsock_set_rcvhwm (socket, 0);
    int rc = bind ? zsock_bind (socket, "%s", endpoint)
                  : zsock_connect (socket, "%s", endpoint);
    fuzz_check (rc != -1, "%s %s", bind ? "bind" : "connect", endpoint);
    return socket;
}

//  Sends probes until the SUB sees one, so no publication is lost to a
//  subscription still on its way; then drops the probes in flight.
static void s_wait_subscribed (void)
{
    int64_t deadline = zclock_mono () + FUZZ_FRAMES_WAIT_MS;
    bool seen = false;
    while (!seen) {
        fuzz_check (zclock_mono () < deadline, "the SUB never got a probe");
        zstr_send (s_fuzz.publish, "PROBE");
        zpoller_t *poller = zpoller_new (s_fuzz.subscribe, NULL);
        seen = zpoller_wait (poller, FUZZ_FRAMES_POLL_MS) != NULL;
        zpoller_destroy (&poller);
    }
    while (zsock_events (s_fuzz.subscribe) & ZMQ_POLLIN) {
        char *probe = zstr_recv (s_fuzz.subscribe);
        fuzz_check (probe && streq (probe, "PROBE"), "unexpected publication");
        zstr_free (&probe);
    }
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    log_init ("fuzz_stream_ingest", LOG_ERROR); // dropped messages warn
    zsys_init ();
    zsys_set_linger (0);
    const char *tmp = getenv ("TMPDIR");
    snprintf (s_fuzz.dir, sizeof s_fuzz.dir, "%s/fuzz_stream_ingest.XXXXXX",
              tmp && *tmp ? tmp : "/tmp");
    fuzz_check (mkdtemp (s_fuzz.dir), "mkdtemp %s: %s", s_fuzz.dir, strerror (errno));
    snprintf (s_fuzz.path, sizeof s_fuzz.path, "%s/events/%020d.jsonl", s_fuzz.dir, 1);
    fuzz_check (zsys_dir_create ("%s/events", s_fuzz.dir) == 0, "mkdir: %s",
                strerror (errno));
    s_fuzz.publish = s_socket (ZMQ_PUB, "inproc://fuzz-ingest-publish", true);
    s_fuzz.subscribe = s_socket (ZMQ_SUB, "inproc://fuzz-ingest-publish", false);
    zsock_set_subscribe (s_fuzz.subscribe, "");
    s_fuzz.pull = s_socket (ZMQ_PULL, "inproc://fuzz-ingest-pull", true);
    s_fuzz.push = s_socket (ZMQ_PUSH, "inproc://fuzz-ingest-pull", false);
    s_wait_subscribed ();
    atexit (s_cleanup);
    return 0;
}

static int64_t s_model_version (const char *account)
{
    return (int64_t)(intptr_t)zhashx_lookup (s_fuzz.versions, account);
}

static int64_t s_model_seq (const char *id)
{
    return (int64_t)(intptr_t)zhashx_lookup (s_fuzz.ids, id);
}

//  What the request must get, with its events parsed into events.
static status_t s_expected (const message_t *message, event_t *events, size_t *count_out)
{
    size_t count = message->frame_count - 2;
    *count_out = count;
    if (message->frame_bytes[0] != 6 || memcmp (message->frames[0], "APPEND", 6) != 0 ||
        count == 0)
        return STATUS_INVALID;
    char error[FUZZ_ERROR_BYTES];
    for (size_t index = 0; index < count; index++)
        if (event_parse_proposed ((const char *)message->frames[index + 2],
                                  message->frame_bytes[index + 2], &events[index], error,
                                  sizeof error))
            return STATUS_INVALID;
    for (size_t later = 1; later < count; later++)
        for (size_t index = 0; index < later; index++)
            if (streq (events[index].id, events[later].id))
                return STATUS_INVALID;
    int64_t first_seq = s_model_seq (events[0].id);
    for (size_t index = 0; index < count; index++) {
        int64_t seq = s_model_seq (events[index].id);
        if (first_seq ? seq != first_seq + (int64_t)index : seq != 0)
            return STATUS_INVALID;
    }
    if (first_seq)
        return STATUS_DUPLICATE;
    for (size_t index = 0; index < count; index++)
        for (size_t e = 0; e < events[index].expect_count; e++)
            if (s_model_version (events[index].expect[e].account) !=
                events[index].expect[e].version)
                return STATUS_CONFLICT;
    return STATUS_OK;
}

static void s_serve (void *ingest)
{
    ingest_drain ((ingest_t *)ingest, s_fuzz.pull);
}

//  The next publication, draining the ingest while none is there.
static zmsg_t *s_next_publication (ingest_t *ingest)
{
    return fuzz_frames_next (s_fuzz.subscribe, s_serve, ingest, "a publication");
}

static void s_model_append (const event_t *event)
{
    zhashx_insert (s_fuzz.ids, event->id, (void *)(intptr_t)event->seq);
    const char *accounts[2] = {event->account, NULL};
    if (event_type_has_parties (event->type)) {
        accounts[0] = event->from;
        accounts[1] = event->to;
    }
    for (size_t index = 0; index < 2 && accounts[index]; index++)
        zhashx_update (s_fuzz.versions, accounts[index],
                       (void *)(intptr_t)(s_model_version (accounts[index]) + 1));
}

//  EVENTS of an ok request: its events, stored in canonical form from the
//  next seq on. Feeds the model and the published text.
static void s_check_events (zmsg_t *msg, event_t *events, size_t count)
{
    zframe_t *frame = zmsg_first (msg);
    fuzz_check (zframe_streq (frame, "EVENTS"), "an ok request without EVENTS first");
    fuzz_check (zmsg_size (msg) == count + 1, "EVENTS of %zu frames for %zu events",
                zmsg_size (msg), count);
    char line[EVENT_LINE_BYTES_MAX];
    char error[FUZZ_ERROR_BYTES];
    for (size_t index = 0; index < count; index++) {
        frame = zmsg_next (msg);
        const char *text = (const char *)zframe_data (frame);
        size_t bytes = zframe_size (frame);
        event_t stored;
        fuzz_check (event_parse_stored (text, bytes, &stored, error, sizeof error) == 0,
                    "published line does not parse: %s", error);
        fuzz_check (stored.seq == s_fuzz.last_seq + 1, "seq %lld after %lld",
                    (long long)stored.seq, (long long)s_fuzz.last_seq);
        fuzz_check (stored.ts_ms >= s_fuzz.last_ts_ms, "ts went backwards");
        event_t expected = events[index];
        expected.seq = stored.seq;
        expected.ts_ms = stored.ts_ms;
        expected.expect_count = 0;
        size_t line_bytes = event_format_stored (&expected, line, sizeof line);
        fuzz_check (line_bytes == bytes && memcmp (line, text, bytes) == 0,
                    "event %zu is not stored as proposed: %.*s", index, (int)bytes, text);
        s_fuzz.last_seq = stored.seq;
        s_fuzz.last_ts_ms = stored.ts_ms;
        s_model_append (&expected);
        s_fuzz.published = realloc (s_fuzz.published, s_fuzz.published_bytes + bytes + 1);
        fuzz_check (s_fuzz.published, "out of memory");
        memcpy (s_fuzz.published + s_fuzz.published_bytes, text, bytes);
        s_fuzz.published_bytes += bytes;
        s_fuzz.published[s_fuzz.published_bytes++] = '\n';
    }
}

static int64_t s_result_int (const cJSON *result, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (result, name);
    fuzz_check (cJSON_IsNumber (item), "result without %s", name);
    return (int64_t)item->valuedouble;
}

//  A conflict names the version now of every account an expect named.
static void s_check_conflict (const cJSON *result, const event_t *events, size_t count)
{
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive (result, "versions");
    fuzz_check (cJSON_IsObject (versions), "conflict without versions");
    size_t named = 0;
    for (size_t index = 0; index < count; index++)
        for (size_t e = 0; e < events[index].expect_count; e++) {
            const char *account = events[index].expect[e].account;
            const cJSON *version = cJSON_GetObjectItemCaseSensitive (versions, account);
            fuzz_check (cJSON_IsNumber (version) &&
                            (int64_t)version->valuedouble == s_model_version (account),
                        "conflict reports a wrong version of %s", account);
            named++;
        }
    fuzz_check ((size_t)cJSON_GetArraySize (versions) <= named,
                "conflict names accounts no expect named");
}

//  RESULT for request id, with the status the model expects.
static void s_check_result (zmsg_t *msg, const message_t *message, status_t status,
                            const event_t *events, size_t count, int64_t first_seq)
{
    static const char *names[] = {"ok", "conflict", "duplicate", "invalid"};
    fuzz_check (zmsg_size (msg) == 3, "RESULT of %zu frames", zmsg_size (msg));
    fuzz_check (zframe_streq (zmsg_first (msg), "RESULT"), "not a RESULT");
    zframe_t *id = zmsg_next (msg);
    fuzz_check (zframe_size (id) == message->frame_bytes[1] &&
                    memcmp (zframe_data (id), message->frames[1], zframe_size (id)) == 0,
                "RESULT for another request id");
    char *text = zframe_strdup (zmsg_next (msg));
    cJSON *result = cJSON_Parse (text);
    fuzz_check (result, "RESULT is not JSON: %s", text);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (result, "status");
    fuzz_check (cJSON_IsString (name) && streq (name->valuestring, names[status]),
                "expected %s, got %s", names[status], text);
    if (status == STATUS_OK || status == STATUS_DUPLICATE) {
        fuzz_check (s_result_int (result, "first_seq") == first_seq &&
                        s_result_int (result, "last_seq") ==
                            first_seq + (int64_t)count - 1,
                    "%s: expected seqs %lld..%lld", text, (long long)first_seq,
                    (long long)(first_seq + (int64_t)count - 1));
    } else if (status == STATUS_CONFLICT)
        s_check_conflict (result, events, count);
    else {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive (result, "error");
        fuzz_check (cJSON_IsString (error) && *error->valuestring, "invalid: %s", text);
    }
    s_fuzz.answered[status]++;
    cJSON_Delete (result);
    free (text);
}

static void s_check_request (ingest_t *ingest, const message_t *message)
{
    static event_t events[256];
    size_t count = 0;
    status_t status = s_expected (message, events, &count);
    int64_t first_seq = status == STATUS_OK          ? s_fuzz.last_seq + 1
                        : status == STATUS_DUPLICATE ? s_model_seq (events[0].id)
                                                     : 0;
    zmsg_t *msg = s_next_publication (ingest);
    if (status == STATUS_OK) {
        s_check_events (msg, events, count);
        zmsg_destroy (&msg);
        msg = s_next_publication (ingest);
    }
    s_check_result (msg, message, status, events, count, first_seq);
    zmsg_destroy (&msg);
}

//  The file holds exactly what was published, reopens, and a new ingest
//  on it rebuilds the same accounts.
static void s_check_log (void)
{
    FILE *file = fopen (s_fuzz.path, "rb");
    fuzz_check (file, "fopen %s: %s", s_fuzz.path, strerror (errno));
    char *bytes = malloc (s_fuzz.published_bytes + 1);
    fuzz_check (bytes, "out of memory");
    size_t size = fread (bytes, 1, s_fuzz.published_bytes + 1, file);
    fclose (file);
    fuzz_check (size == s_fuzz.published_bytes &&
                    (size == 0 || memcmp (bytes, s_fuzz.published, size) == 0),
                "the log (%zu bytes) is not the published lines (%zu bytes)", size,
                s_fuzz.published_bytes);
    free (bytes);
    char error[FUZZ_ERROR_BYTES];
    log_file_t *log =
        log_file_open (s_fuzz.dir, &s_fuzz_log, NULL, NULL, error, sizeof error);
    fuzz_check (log, "the log does not reopen: %s", error);
    fuzz_check (log_file_last_seq (log) == s_fuzz.last_seq, "reopened at %lld",
                (long long)log_file_last_seq (log));
    log_file_destroy (&log);
    ingest_t *ingest = ingest_new (s_fuzz.dir, &s_fuzz_log, s_fuzz.publish, false,
                                   FUZZ_INGEST_DEDUPE_WINDOW, error, sizeof error);
    fuzz_check (ingest, "ingest does not reopen its log: %s", error);
    fuzz_check (ingest_account_count (ingest) == zhashx_size (s_fuzz.versions),
                "reopened with %zu accounts, not %zu", ingest_account_count (ingest),
                zhashx_size (s_fuzz.versions));
    ingest_destroy (&ingest);
}

static void s_check_stats (ingest_t *ingest)
{
    const ingest_stats_t *stats = ingest_stats (ingest);
    fuzz_check (stats->requests_ok == s_fuzz.answered[STATUS_OK] &&
                    stats->requests_conflict == s_fuzz.answered[STATUS_CONFLICT] &&
                    stats->requests_duplicate == s_fuzz.answered[STATUS_DUPLICATE] &&
                    stats->requests_invalid ==
                        s_fuzz.answered[STATUS_INVALID] + s_fuzz.dropped &&
                    stats->requests_unavailable == 0,
                "counters disagree with the answers");
    fuzz_check (stats->events_appended == (uint64_t)s_fuzz.last_seq, "events_appended");
    fuzz_check (ingest_account_count (ingest) == zhashx_size (s_fuzz.versions),
                "%zu accounts, the model has %zu", ingest_account_count (ingest),
                zhashx_size (s_fuzz.versions));
}

static void s_reset (void)
{
    zhashx_destroy (&s_fuzz.ids);
    zhashx_destroy (&s_fuzz.versions);
    s_fuzz.ids = zhashx_new ();
    s_fuzz.versions = zhashx_new ();
    fuzz_check (s_fuzz.ids && s_fuzz.versions, "out of memory");
    s_fuzz.last_seq = s_fuzz.last_ts_ms = 0;
    s_fuzz.published_bytes = 0;
    memset (s_fuzz.answered, 0, sizeof s_fuzz.answered);
    s_fuzz.dropped = 0;
    unlink (s_fuzz.path);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static message_t messages[FUZZ_FRAMES_MESSAGES_MAX];
    size_t count = fuzz_frames_decode (data, size, messages);
    s_reset ();
    char error[FUZZ_ERROR_BYTES];
    ingest_t *ingest = ingest_new (s_fuzz.dir, &s_fuzz_log, s_fuzz.publish, false,
                                   FUZZ_INGEST_DEDUPE_WINDOW, error, sizeof error);
    fuzz_check (ingest, "ingest_new on an empty log: %s", error);
    for (size_t index = 0; index < count; index++)
        fuzz_frames_send (zsock_resolve (s_fuzz.push), &messages[index]);
    for (size_t index = 0; index < count; index++) {
        if (messages[index].frame_count < 2)
            s_fuzz.dropped++;
        else
            s_check_request (ingest, &messages[index]);
    }
    ingest_drain (ingest, s_fuzz.pull);
    fuzz_check (!(zsock_events (s_fuzz.pull) & ZMQ_POLLIN), "requests left unread");
    fuzz_check (!(zsock_events (s_fuzz.subscribe) & ZMQ_POLLIN),
                "a publication no request asked for");
    s_check_stats (ingest);
    ingest_destroy (&ingest);
    s_check_log ();
    return 0;
}
