/*  fuzz_hostile_stream — a hostile stream against the catch-up subscriber
    (subscriber.h) feeding what accounting feeds: a real accounts fold and
    a replica log_file in a temporary directory.

    The fake stream is an inproc PUB and ROUTER; the subscriber connects to
    them from its own zloop. The input is messages framed as in
    fuzz_frames.h; each message's first frame is a header whose first byte
    says what to do with it:
      0  publish the other frames as they are (EVENTS, HEARTBEAT, anything);
      1  send the other frames as a reply to the latest FETCH received;
      2  reply to the latest FETCH honestly: a PACKED page of the built-in
         good log from its from_seq, header byte 1 % 8 + 1 events of it;
      3  publish the good log's seqs from header byte 1 % FUZZ_GOOD_EVENTS
         + 1 on, header byte 2 % 4 + 1 of them, one frame each.
    One message goes out per turn of the loop, so the subscriber sees them
    interleaved with its own work; the loop ends a few turns after the last.
    Claims:
    - nothing crashes, and no assert fires (none is reached by input);
    - on_event sees seqs 1, 2, 3, ... each once, ts never decreasing, each
      line exactly canonical and the event it parses to;
    - the accounts fold never runs out of memory and ends at the last seq;
    - the replica reopens through the strict scan with exactly the lines
      delivered, in order.
*/
#include "fuzz_common.h"
#include "fuzz_log_dir.h"
#include "fuzz_frames.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#include "accounts.h"
#include "log.h"
#include "log_file.h"
#include "subscriber.h"
#include "wire.h"

#define FUZZ_GOOD_EVENTS       32 // the built-in honest log
#define FUZZ_GOOD_BASE_TS_MS   1795000000000LL
#define FUZZ_TURNS_AFTER       8      // loop turns after the last message
#define FUZZ_DELIVERED_MAX     100000 // bytes of delivered lines kept for the claims
#define FUZZ_ENDPOINT_BYTES    64

static const log_file_config_t s_fuzz_log = {.no_preallocate =
                                                 true}; // the file is the log
static struct {
    fuzz_log_dir_t files;
    char *good[FUZZ_GOOD_EVENTS + 1]; // good[seq], canonical, without \n
} s_fuzz;

//  One input's run.
typedef struct {
    zsock_t *pub, *router;
    zframe_t *identity; // of the latest FETCH; NULL before the first
    int64_t from_seq;   // its from_seq
    message_t *messages;
    size_t count, next, turns_after;
    accounts_t *accounts;
    log_file_t *replica;
    int64_t last_seq, last_ts_ms;
    char *delivered; // the lines given to on_event, each with its \n
    size_t delivered_bytes;
} run_t;

static void s_cleanup (void)
{
    for (size_t seq = 1; seq <= FUZZ_GOOD_EVENTS; seq++)
        free (s_fuzz.good[seq]);
    fuzz_log_dir_remove (&s_fuzz.files);
}

//  Deposits, withdrawals and transfers among a few accounts; every third
//  shares its predecessor's ts.
static void s_make_good (int64_t seq, event_t *event)
{
    event_init (event);
    event->seq = seq;
    event->ts_ms = FUZZ_GOOD_BASE_TS_MS + seq - seq / 3;
    event->type = (event_type_t)(EVENT_DEPOSITED + seq % 3);
    snprintf (event->type_name, sizeof event->type_name, "%s",
              event_type_name (event->type));
    snprintf (event->id, sizeof event->id, "good-%lld", (long long)seq);
    event->amount = seq * 7;
    if (event->type == EVENT_TRANSFERRED) {
        snprintf (event->from, sizeof event->from, "acct-%lld", (long long)seq % 4);
        snprintf (event->to, sizeof event->to, "acct-%lld", (long long)seq % 4 + 4);
    } else
        snprintf (event->account, sizeof event->account, "acct-%lld",
                  (long long)seq % 5);
    if (seq % 4 == 0)
        snprintf (event->reference, sizeof event->reference, "ref \"%lld\"\n",
                  (long long)seq);
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    //  Complaints about the input are the point; they would drown the output.
    log_init ("fuzz_hostile_stream", (log_level_t)(LOG_ERROR + 1));
    zsys_init ();
    zsys_set_linger (0);
    fuzz_log_dir_make (&s_fuzz.files, "fuzz_hostile_stream");
    atexit (s_cleanup);
    for (int64_t seq = 1; seq <= FUZZ_GOOD_EVENTS; seq++) {
        event_t event;
        s_make_good (seq, &event);
        char line[EVENT_LINE_BYTES_MAX];
        fuzz_check (event_format_stored (&event, line, sizeof line) > 0, "format");
        s_fuzz.good[seq] = strdup (line);
        fuzz_check (s_fuzz.good[seq], "out of memory");
    }
    return 0;
}

static void s_on_event (void *arg, const event_t *event, const char *line,
                        size_t line_bytes)
{
    run_t *run = arg;
    fuzz_check (event->seq == run->last_seq + 1, "seq %lld after %lld",
                (long long)event->seq, (long long)run->last_seq);
    fuzz_check (event->ts_ms >= run->last_ts_ms, "ts went backwards at seq %lld",
                (long long)event->seq);
    fuzz_check (line_bytes > 0 && line_bytes <= EVENT_LINE_BYTES_MAX &&
                    strlen (line) == line_bytes,
                "line of %zu bytes", line_bytes);
    event_t parsed;
    char error[FUZZ_ERROR_BYTES];
    fuzz_check (event_parse_canonical (line, line_bytes, &parsed, error, sizeof error) ==
                    0,
                "a delivered line is not canonical: %s: %s", error, line);
    const char *field = event_difference (event, &parsed);
    fuzz_check (field == NULL, "the event differs from its line in %s", field);
    fuzz_check (accounts_apply (run->accounts, event) != ACCOUNTS_NOMEM, "fold");
    fuzz_check (log_file_append (run->replica, line, line_bytes, event->seq,
                                 event->ts_ms) == 0,
                "replica append");
    run->last_seq = event->seq;
    run->last_ts_ms = event->ts_ms;
    if (run->delivered_bytes + line_bytes + 1 <= FUZZ_DELIVERED_MAX) {
        memcpy (run->delivered + run->delivered_bytes, line, line_bytes);
        run->delivered[run->delivered_bytes + line_bytes] = '\n';
    }
    run->delivered_bytes += line_bytes + 1;
}

static void s_on_applied (void *arg, int64_t applied_seq)
{
    run_t *run = arg;
    fuzz_check (applied_seq == run->last_seq, "applied %lld, delivered %lld",
                (long long)applied_seq, (long long)run->last_seq);
    fuzz_check (log_file_commit (run->replica, false) == 0, "commit: %s",
                strerror (errno));
}

//  FETCHes waiting on the ROUTER: the latest one is what replies answer.
static void s_take_fetches (run_t *run)
{
    while (zsock_events (run->router) & ZMQ_POLLIN) {
        zmsg_t *request = zmsg_recv (run->router);
        fuzz_check (request, "zmsg_recv");
        zframe_t *identity = zmsg_pop (request);
        wire_fetch_t fetch;
        const char *error = wire_fetch_parse (request, &fetch);
        fuzz_check (identity && !error, "not a FETCH from the subscriber: %s",
                    error ? error : "no identity");
        zframe_destroy (&run->identity);
        run->identity = identity;
        run->from_seq = fetch.from_seq;
        zmsg_destroy (&request);
    }
}

static void s_send_frames (zsock_t *socket, const message_t *message, size_t first,
                           zframe_t *identity)
{
    zmsg_t *msg = zmsg_new ();
    if (identity)
        zmsg_addmem (msg, zframe_data (identity), zframe_size (identity));
    for (size_t index = first; index < message->frame_count; index++)
        zmsg_addmem (msg, message->frames[index], message->frame_bytes[index]);
    if (zmsg_size (msg) > (identity ? 1u : 0u))
        zmsg_send (&msg, socket);
    zmsg_destroy (&msg);
}

static void s_send_page (run_t *run, size_t events)
{
    void *router = zsock_resolve (run->router);
    wire_send (router, zframe_data (run->identity), zframe_size (run->identity), true);
    char *page = strdup ("");
    for (int64_t seq = run->from_seq;
         seq <= FUZZ_GOOD_EVENTS && seq < run->from_seq + (int64_t)events; seq++) {
        char *longer = zsys_sprintf ("%s%s\n", page, s_fuzz.good[seq]);
        free (page);
        page = longer;
    }
    wire_packed_send (router, FUZZ_GOOD_EVENTS, page, strlen (page), NULL);
    free (page);
}

static void s_publish_good (run_t *run, int64_t first, int64_t count)
{
    void *pub = zsock_resolve (run->pub);
    int64_t last =
        first + count - 1 < FUZZ_GOOD_EVENTS ? first + count - 1 : FUZZ_GOOD_EVENTS;
    if (last < first) {
        wire_send (pub, WIRE_EVENTS, strlen (WIRE_EVENTS), false); // one without lines
        return;
    }
    wire_events_begin (pub);
    for (int64_t seq = first; seq <= last; seq++)
        wire_send (pub, s_fuzz.good[seq], strlen (s_fuzz.good[seq]), seq < last);
}

static void s_play (run_t *run, const message_t *message)
{
    const uint8_t *header = message->frames[0];
    size_t header_bytes = message->frame_bytes[0];
    uint8_t kind = header_bytes > 0 ? header[0] % 4 : 0;
    uint8_t a = header_bytes > 1 ? header[1] : 0, b = header_bytes > 2 ? header[2] : 0;
    if (kind == 0)
        s_send_frames (run->pub, message, 1, NULL);
    else if (kind == 1 && run->identity)
        s_send_frames (run->router, message, 1, run->identity);
    else if (kind == 2 && run->identity)
        s_send_page (run, a % 8 + 1);
    else if (kind == 3)
        s_publish_good (run, a % FUZZ_GOOD_EVENTS + 1, b % 4 + 1);
}

//  Every turn of the loop: take FETCHes, play the next message; ends the
//  loop a few turns after the last.
static int s_on_turn (zloop_t *loop, int timer_id, void *arg)
{
    run_t *run = arg;
    s_take_fetches (run);
    if (run->next < run->count)
        s_play (run, &run->messages[run->next++]);
    else if (run->turns_after++ == FUZZ_TURNS_AFTER)
        return -1;
    return 0;
}

//  The replica reopens through the strict scan as the delivered lines.
static void s_check_replica (run_t *run)
{
    char error[FUZZ_ERROR_BYTES];
    log_file_t *replica =
        log_file_open (s_fuzz.files.dir, &s_fuzz_log, NULL, NULL, error, sizeof error);
    fuzz_check (replica, "the replica does not reopen: %s", error);
    fuzz_check (log_file_last_seq (replica) == run->last_seq, "replica at %lld, not %lld",
                (long long)log_file_last_seq (replica), (long long)run->last_seq);
    fuzz_check (log_file_bytes (replica) == run->delivered_bytes, "replica bytes");
    if (run->delivered_bytes <= FUZZ_DELIVERED_MAX && run->last_seq > 0) {
        char *bytes = malloc (run->delivered_bytes + 1);
        fuzz_check (bytes, "out of memory");
        size_t read = 0;
        int events = log_file_read (replica, 1, (size_t)run->last_seq, bytes,
                                    run->delivered_bytes + 1, &read);
        fuzz_check (events == run->last_seq && read == run->delivered_bytes &&
                        memcmp (bytes, run->delivered, read) == 0,
                    "the replica is not the delivered lines");
        free (bytes);
    }
    log_file_destroy (&replica);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static message_t messages[FUZZ_FRAMES_MESSAGES_MAX];
    run_t run = {.messages = messages, .last_ts_ms = INT64_MIN};
    run.count = fuzz_frames_decode (data, size, messages);
    unlink (s_fuzz.files.path);
    char error[FUZZ_ERROR_BYTES];
    run.replica =
        log_file_open (s_fuzz.files.dir, &s_fuzz_log, NULL, NULL, error, sizeof error);
    fuzz_check (run.replica, "replica: %s", error);
    run.accounts = accounts_new ();
    run.delivered = malloc (FUZZ_DELIVERED_MAX);
    //  New names per input: a closed socket leaves its inproc name only once
    //  libzmq's reaper has taken it, which is not at once.
    static uint64_t inputs;
    char publish[FUZZ_ENDPOINT_BYTES], replay[FUZZ_ENDPOINT_BYTES];
    inputs++;
    snprintf (publish, sizeof publish, "inproc://fuzz-hostile-publish-%llu",
              (unsigned long long)inputs);
    snprintf (replay, sizeof replay, "inproc://fuzz-hostile-replay-%llu",
              (unsigned long long)inputs);
    run.pub = zsock_new_pub (publish);
    run.router = zsock_new_router (replay);
    zloop_t *loop = zloop_new ();
    fuzz_check (run.accounts && run.delivered && run.pub && run.router && loop, "setup");
    subscriber_config_t config = {.publish_endpoint = publish, .replay_endpoint = replay};
    subscriber_handlers_t handlers = {.on_event = s_on_event, .on_applied = s_on_applied};
    subscriber_t *subscriber = subscriber_new (loop, &config, &handlers, &run);
    fuzz_check (subscriber, "subscriber_new");
    fuzz_check (zloop_timer (loop, 0, 0, s_on_turn, &run) >= 0, "zloop_timer");
    zloop_start (loop);

    fuzz_check (subscriber_applied_seq (subscriber) == run.last_seq, "applied seq");
    fuzz_check (accounts_applied_seq (run.accounts) == run.last_seq, "fold at %lld",
                (long long)accounts_applied_seq (run.accounts));
    subscriber_destroy (&subscriber);
    zloop_destroy (&loop);
    fuzz_check (log_file_commit (run.replica, false) == 0, "commit");
    log_file_destroy (&run.replica);
    s_check_replica (&run);
    zframe_destroy (&run.identity);
    zsock_destroy (&run.router);
    zsock_destroy (&run.pub);
    accounts_destroy (&run.accounts);
    free (run.delivered);
    return 0;
}
