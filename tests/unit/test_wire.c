/*  test_wire — the codec of the ZeroMQ protocol (common/wire.h): each
    builder's exact frames, read back over an inproc pair, and each parser
    on the shapes it must take and refuse. tests/integration/test_wire.py
    pins the same bytes between the real services.
*/
#include <czmq.h>

#include "check.h"
#include "wire.h"

//  A connected pair: what is sent on `out` is read on `in`.
typedef struct {
    zsock_t *out, *in;
} pair_t;

static pair_t s_pair (void)
{
    static int count;
    char bind[64], connect[64];
    snprintf (bind, sizeof bind, "@inproc://test-wire-%d", count);
    snprintf (connect, sizeof connect, ">inproc://test-wire-%d", count++);
    pair_t pair = {zsock_new_pair (bind), zsock_new_pair (connect)};
    assert (pair.out && pair.in);
    return pair;
}

static void s_pair_destroy (pair_t *pair)
{
    zsock_destroy (&pair->out);
    zsock_destroy (&pair->in);
}

//  The message sent on pair.out, its frames joined with '|' (frames with
//  a '|' or a \n are printed as they are: the tests know their content).
static char *s_received (pair_t *pair)
{
    zmsg_t *msg = zmsg_recv (pair->in);
    if (!msg)
        return strdup ("(nothing)");
    size_t bytes = zmsg_content_size (msg) + zmsg_size (msg) + 1;
    char *text = (char *)calloc (1, bytes);
    size_t used = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        if (used)
            text[used++] = '|';
        memcpy (text + used, zframe_data (frame), zframe_size (frame));
        used += zframe_size (frame);
    }
    zmsg_destroy (&msg);
    return text;
}

#define CHECK_SENT(pair, expected)                                                       \
    do {                                                                                 \
        char *sent_ = s_received (&(pair));                                              \
        int failures_ = check_failures;                                                  \
        CHECK_EQ_STR_NOLEAVE (sent_, expected);                                          \
        free (sent_);                                                                    \
        if (check_failures != failures_) {                                               \
            s_pair_destroy (&(pair));                                                    \
            return;                                                                      \
        }                                                                                \
    } while (0)

//  CHECK_EQ_STR without leaving the test, so the caller frees first.
#define CHECK_EQ_STR_NOLEAVE(actual, expected)                                           \
    do {                                                                                 \
        if (strcmp ((actual), (expected)) != 0) {                                        \
            fprintf (stderr, "    %s:%d: check failed: \"%s\" != \"%s\"\n", __FILE__,    \
                     __LINE__, (actual), (expected));                                    \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

static void test_builders_send_the_protocols_frames (void)
{
    pair_t pair = s_pair ();
    void *out = zsock_resolve (pair.out);
    const char lines[] = "{\"seq\":1}\n{\"seq\":2}\n";

    CHECK_EQ_INT (wire_append_begin (out, "req-1", true), 0);
    CHECK_EQ_INT (wire_append_event (out, "{\"a\":1}", 7, false), 0);
    CHECK_EQ_INT (wire_append_event (out, "{\"b\":2}", 7, true), 0);
    CHECK_SENT (pair, "APPEND|req-1|{\"a\":1}|{\"b\":2}");
    wire_append_begin (out, "probe", false);
    CHECK_SENT (pair, "APPEND|probe");

    wire_events_begin (out);
    wire_send (out, "{\"seq\":1}", 9, false);
    CHECK_SENT (pair, "EVENTS|{\"seq\":1}");

    wire_heartbeat_send (out, 0, "", NULL);
    CHECK_SENT (pair, "HEARTBEAT|0|");
    wire_heartbeat_send (out, 9007199254740991LL, "ev-1", NULL);
    CHECK_SENT (pair, "HEARTBEAT|9007199254740991|ev-1");
    wire_heartbeat_send (out, 3, "ev-1", "{\"seq\":3}");
    CHECK_SENT (pair, "HEARTBEAT|3|ev-1|{\"seq\":3}");

    wire_result_send (out, "req-1xyz", 5, "{\"status\":\"ok\"}");
    CHECK_SENT (pair, "RESULT|req-1|{\"status\":\"ok\"}");

    wire_fetch_send (out, &(wire_fetch_t){.from_seq = 17, .max_events = 10000});
    CHECK_SENT (pair, "FETCH|17|10000");
    wire_fetch_send (out,
                     &(wire_fetch_t){.from_seq = 1, .max_events = 5, .packed = true});
    CHECK_SENT (pair, "FETCH|1|5|packed");
    wire_fetch_send (
        out, &(wire_fetch_t){
                 .from_seq = 1, .max_events = 5, .packed = true, .identity = true});
    CHECK_SENT (pair, "FETCH|1|5|packed|identity");

    wire_batch_send (out, 2, lines, sizeof lines - 1);
    CHECK_SENT (pair, "BATCH|2|{\"seq\":1}|{\"seq\":2}");
    wire_batch_send (out, 2, "", 0);
    CHECK_SENT (pair, "BATCH|2");
    wire_packed_send (out, 2, lines, sizeof lines - 1, NULL);
    CHECK_SENT (pair, "PACKED|2|{\"seq\":1}\n{\"seq\":2}\n");
    wire_packed_send (out, 2, "", 0, "ev-1");
    CHECK_SENT (pair, "PACKED|2||ev-1");
    wire_error_send (out, "from_seq: must be an integer >= 1");
    CHECK_SENT (pair, "ERROR|from_seq: must be an integer >= 1");

    wire_lookup_send (out, "ev-7");
    CHECK_SENT (pair, "LOOKUP|ev-7");
    wire_found_send (out, "ev-7", 7, "{\"seq\":7}\n", 9);
    CHECK_SENT (pair, "FOUND|ev-7|7|{\"seq\":7}");
    wire_absent_send (out, "ev-8");
    CHECK_SENT (pair, "ABSENT|ev-8");
    s_pair_destroy (&pair);
}

static void test_results_are_printed_as_design_spells_them (void)
{
    char text[WIRE_RESULT_SEQS_BYTES_MAX];
    CHECK_EQ_INT (wire_result_format_seqs (text, false, 17, 18), 44);
    CHECK_EQ_STR (text, "{\"status\":\"ok\",\"first_seq\":17,\"last_seq\":18}");
    wire_result_format_seqs (text, true, 9007199254740991LL, 9007199254740991LL);
    CHECK_EQ_STR (text, "{\"status\":\"duplicate\",\"first_seq\":9007199254740991,"
                        "\"last_seq\":9007199254740991}");
    char *invalid = wire_result_invalid ("event 0: \"id\" missing");
    CHECK_EQ_STR (invalid,
                  "{\"status\":\"invalid\",\"error\":\"event 0: \\\"id\\\" missing\"}");
    free (invalid);
    cJSON *versions = cJSON_CreateObject ();
    cJSON_AddNumberToObject (versions, "alice", 5);
    char *conflict = wire_result_conflict (&versions);
    CHECK (versions == NULL);
    CHECK_EQ_STR (conflict, "{\"status\":\"conflict\",\"versions\":{\"alice\":5}}");
    free (conflict);
    char unavailable[128];
    wire_result_format_unavailable (unavailable, sizeof unavailable,
                                    "No space left on device");
    CHECK_EQ_STR (unavailable,
                  "{\"status\":\"unavailable\",\"error\":\"storage: No space left "
                  "on device\"}");
}

static void test_results_parse_on_both_paths (void)
{
    wire_result_t result;
    wire_result_parse ("{\"status\":\"ok\",\"first_seq\":17,\"last_seq\":18}", &result);
    CHECK_EQ_INT (result.status, WIRE_STATUS_OK);
    CHECK_EQ_INT (result.first_seq, 17);
    CHECK_EQ_INT (result.last_seq, 18);
    CHECK (result.json == NULL); // the fast path
    wire_result_done (&result);
    //  Spaced, reordered, a leading zero: cJSON reads them the same.
    const char *others[] = {
        "{\"status\": \"duplicate\", \"first_seq\": 9, \"last_seq\": 9}",
        "{\"last_seq\":9,\"first_seq\":9,\"status\":\"duplicate\"}",
    };
    for (size_t index = 0; index < 2; index++) {
        wire_result_parse (others[index], &result);
        CHECK_EQ_INT (result.status, WIRE_STATUS_DUPLICATE);
        CHECK_EQ_INT (result.first_seq, 9);
        CHECK_EQ_INT (result.last_seq, 9);
        CHECK (result.json != NULL);
        wire_result_done (&result);
    }
    wire_result_parse ("{\"status\":\"conflict\",\"versions\":{\"alice\":5}}", &result);
    CHECK_EQ_INT (result.status, WIRE_STATUS_CONFLICT);
    CHECK (cJSON_IsObject (result.versions));
    wire_result_done (&result);
    wire_result_parse ("{\"status\":\"invalid\",\"error\":\"no\"}", &result);
    CHECK_EQ_INT (result.status, WIRE_STATUS_INVALID);
    CHECK_EQ_STR (result.error, "no");
    wire_result_done (&result);
    const char *garbage = "not json";
    wire_result_parse (garbage, &result);
    CHECK_EQ_INT (result.status, WIRE_STATUS_UNKNOWN);
    CHECK (result.error == garbage);
    wire_result_done (&result);
    //  A seq past EVENT_SEQ_MAX is not read on the fast path.
    wire_result_parse ("{\"status\":\"ok\",\"first_seq\":99999999999999999,"
                       "\"last_seq\":99999999999999999}",
                       &result);
    CHECK (result.json != NULL);
    wire_result_done (&result);
}

static zmsg_t *s_msg (const char *first, ...)
{
    zmsg_t *msg = zmsg_new ();
    va_list args;
    va_start (args, first);
    for (const char *frame = first; frame; frame = va_arg (args, const char *))
        zmsg_addstr (msg, frame);
    va_end (args);
    return msg;
}

static void test_fetch_parse_takes_and_refuses (void)
{
    struct {
        zmsg_t *msg;
        const char *error; // NULL: taken
        wire_fetch_t fetch;
    } cases[] = {
        {s_msg ("FETCH", "17", "100", NULL), NULL, {17, 100, false, false}},
        {s_msg ("FETCH", "1", "1", "packed", NULL), NULL, {1, 1, true, false}},
        {s_msg ("FETCH", "1", "1", "packed", "identity", NULL), NULL, {1, 1, true, true}},
        {s_msg ("FETCH", "000000000000000001", "1", NULL), NULL, {1, 1, false, false}},
        {s_msg ("FETCH", NULL), "from_seq: must be an integer >= 1", {0}},
        {s_msg ("FETCH", "1", "1", "packed", "identity", "x", NULL),
         "FETCH takes at most four arguments: from_seq max_events [packed [identity]]",
         {0}},
        {s_msg ("GET", NULL),
         "unknown command (expected FETCH from_seq max_events [packed])",
         {0}},
        {s_msg ("FETCH", "0", "1", NULL), "from_seq: must be an integer >= 1", {0}},
        {s_msg ("FETCH", "1", "+1", NULL), "max_events: must be an integer >= 1", {0}},
        {s_msg ("FETCH", "1234567890123456789", "1", NULL),
         "from_seq: must be an integer >= 1",
         {0}},
        {s_msg ("FETCH", "1", "1", "PACKED", NULL),
         "the fourth frame, if any, must be \"packed\"",
         {0}},
        {s_msg ("FETCH", "1", "1", "packed", "", NULL),
         "the fifth frame, if any, must be \"identity\"",
         {0}},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        wire_fetch_t fetch;
        const char *error = wire_fetch_parse (cases[index].msg, &fetch);
        zmsg_destroy (&cases[index].msg);
        CHECK_EQ_STR (error, cases[index].error);
        if (!error) {
            CHECK_EQ_INT (fetch.from_seq, cases[index].fetch.from_seq);
            CHECK_EQ_INT (fetch.max_events, cases[index].fetch.max_events);
            CHECK_EQ_INT (fetch.packed, cases[index].fetch.packed);
            CHECK_EQ_INT (fetch.identity, cases[index].fetch.identity);
        }
    }
}

static void test_seqs_are_digits_only (void)
{
    int64_t value = -1;
    CHECK_EQ_INT (wire_seq_parse ("0", 1, &value), 0);
    CHECK_EQ_INT (value, 0);
    CHECK_EQ_INT (wire_seq_parse ("9007199254740991", 16, &value), 0);
    CHECK_EQ_INT (value, EVENT_SEQ_MAX);
    CHECK_EQ_INT (wire_seq_parse ("9007199254740992", 16, &value), -1);
    CHECK_EQ_INT (wire_seq_parse ("", 0, &value), -1);
    CHECK_EQ_INT (wire_seq_parse ("+1", 2, &value), -1);
    CHECK_EQ_INT (wire_seq_parse (" 1", 2, &value), -1);
    CHECK_EQ_INT (wire_seq_parse ("12345678901234567", 17, &value), -1);
    CHECK_EQ_INT (wire_page_lines ("a\nb\n", 4), 2);
    CHECK_EQ_INT (wire_page_lines ("", 0), 0);
    CHECK_EQ_INT (wire_page_lines ("a\nb", 3), -1);
}

static void test_heartbeat_and_lookup_replies_parse (void)
{
    int64_t seq = 0;
    zframe_t *identity = NULL, *head = NULL;
    zmsg_t *msg = s_msg ("HEARTBEAT", "12", "ev-1", NULL);
    CHECK_EQ_INT (wire_heartbeat_parse (msg, &seq, &identity, &head), 0);
    CHECK_EQ_INT (seq, 12);
    CHECK (identity && zframe_streq (identity, "ev-1"));
    CHECK (head == NULL);
    zmsg_destroy (&msg);
    msg = s_msg ("HEARTBEAT", "12", "ev-1", "{}", "a fifth frame", NULL);
    CHECK_EQ_INT (wire_heartbeat_parse (msg, &seq, &identity, &head), 0);
    CHECK (head && zframe_streq (head, "{}"));
    zmsg_destroy (&msg);
    msg = s_msg ("HEARTBEAT", "12", NULL);
    CHECK_EQ_INT (wire_heartbeat_parse (msg, &seq, &identity, &head), 0);
    CHECK (identity == NULL && head == NULL);
    zmsg_destroy (&msg);
    msg = s_msg ("HEARTBEAT", "-1", NULL);
    CHECK_EQ_INT (wire_heartbeat_parse (msg, &seq, &identity, &head), -1);
    zmsg_destroy (&msg);

    struct {
        zmsg_t *msg;
        wire_lookup_rc_t rc;
    } replies[] = {
        {s_msg ("FOUND", "ev-7", "7", "{}", NULL), WIRE_LOOKUP_FOUND},
        {s_msg ("ABSENT", "ev-7", NULL), WIRE_LOOKUP_ABSENT},
        {s_msg ("ERROR", "LOOKUP takes one event id", NULL), WIRE_LOOKUP_ERROR},
        {s_msg ("ERROR", NULL), WIRE_LOOKUP_ERROR},
        {s_msg ("FOUND", "ev-7", "x", "{}", NULL), WIRE_LOOKUP_NO_SEQ},
        {s_msg ("FOUND", "ev-7", "0", "{}", NULL), WIRE_LOOKUP_NO_SEQ},
        {s_msg ("FOUND", "ev-7", "7", NULL), WIRE_LOOKUP_MALFORMED},
        {s_msg ("ABSENT", "ev-7", "more", NULL), WIRE_LOOKUP_MALFORMED},
        {s_msg ("MAYBE", "ev-7", NULL), WIRE_LOOKUP_MALFORMED},
    };
    for (size_t index = 0; index < sizeof replies / sizeof replies[0]; index++) {
        wire_lookup_reply_t reply;
        CHECK_EQ_INT (wire_lookup_reply_parse (replies[index].msg, &reply),
                      replies[index].rc);
        if (replies[index].rc == WIRE_LOOKUP_FOUND) {
            CHECK_EQ_INT (reply.seq, 7);
            CHECK_EQ_INT (reply.line_bytes, 2);
            CHECK (zframe_streq (reply.id, "ev-7"));
        }
        zmsg_destroy (&replies[index].msg);
    }

    char id[EVENT_ID_BYTES_MAX + 1];
    msg = s_msg ("LOOKUP", "ev-7", NULL);
    CHECK (wire_lookup_parse (msg, id) == NULL);
    CHECK_EQ_STR (id, "ev-7");
    zmsg_destroy (&msg);
    msg = s_msg ("LOOKUP", "ev 7", NULL);
    CHECK_EQ_STR (wire_lookup_parse (msg, id), "LOOKUP takes one event id");
    zmsg_destroy (&msg);
}

static void test_append_parse_names_its_parts (void)
{
    zmq_msg_t frames[3];
    const char *texts[] = {"APPEND", "req-1", "{}"};
    for (size_t index = 0; index < 3; index++) {
        zmq_msg_init_size (&frames[index], strlen (texts[index]));
        memcpy (zmq_msg_data (&frames[index]), texts[index], strlen (texts[index]));
    }
    wire_append_t append;
    CHECK_EQ_INT (wire_append_parse (frames, 3, &append), WIRE_APPEND_OK);
    CHECK_EQ_INT (append.request_id_bytes, 5);
    CHECK (memcmp (append.request_id, "req-1", 5) == 0);
    CHECK_EQ_INT (append.event_count, 1);
    CHECK (append.events == &frames[2]);
    CHECK_EQ_INT (wire_append_parse (frames, 1, &append), WIRE_APPEND_NO_ID);
    CHECK_EQ_INT (wire_append_parse (frames + 1, 2, &append), WIRE_APPEND_NOT_APPEND);
    CHECK_EQ_INT (append.request_id_bytes, 2); // "{}" stands where the id is
    for (size_t index = 0; index < 3; index++)
        zmq_msg_close (&frames[index]);
}

static void test_packed_builders_send_one_frame (void)
{
    pair_t pair = s_pair ();
    void *out = zsock_resolve (pair.out);
    wire_pack_t pack = {0};
    CHECK_EQ_INT (wire_pack_request (&pack, "req-1", 5, 2), 0);
    CHECK_EQ_INT (wire_pack_line (&pack, "{\"a\":1}", 7), 0);
    CHECK_EQ_INT (wire_pack_line (&pack, "{\"b\":2}", 7), 0);
    CHECK_EQ_INT (wire_pack_request (&pack, "req-2", 5, 0), 0);
    //  Refused, and the pack is as it was.
    size_t bytes = pack.bytes;
    CHECK_EQ_INT (wire_pack_request (&pack, "req 3", 5, 1), -1);
    CHECK_EQ_INT (wire_pack_request (&pack, "", 0, 1), -1);
    CHECK_EQ_INT (wire_pack_line (&pack, "{}\n{}", 5), -1);
    CHECK_EQ_INT (pack.bytes, bytes);
    CHECK_EQ_INT (wire_append_packed_send (out, pack.data, pack.bytes), 0);
    CHECK_SENT (pair, "APPEND||req-1 2\n{\"a\":1}\n{\"b\":2}\nreq-2 0\n");
    CHECK_EQ_INT (wire_events_packed_send (out, "{\"seq\":1}\n{\"seq\":2}\n", 20), 0);
    CHECK_SENT (pair, "EVENTS|{\"seq\":1}\n{\"seq\":2}\n");
    wire_pack_reset (&pack);
    const char ok[] = "{\"status\":\"ok\",\"first_seq\":1,\"last_seq\":2}";
    CHECK_EQ_INT (wire_pack_result (&pack, "req-1", 5, ok, strlen (ok)), 0);
    CHECK_EQ_INT (wire_pack_result (&pack, "req 2", 5, ok, strlen (ok)), -1);
    CHECK_EQ_INT (wire_pack_result (&pack, "req-2", 5, "", 0), -1);
    CHECK_EQ_INT (wire_results_send (out, pack.data, pack.bytes), 0);
    CHECK_SENT (pair, "RESULTS|req-1 {\"status\":\"ok\",\"first_seq\":1,\"last_seq\":2}\n");
    wire_pack_free (&pack);
    s_pair_destroy (&pair);
}

//  The requests of a packed APPEND as "id:count:found|..." and how it ended.
static char *s_packed_requests (const char *packed, size_t bytes)
{
    char *text = (char *)calloc (1, 4096);
    wire_reader_t reader;
    wire_reader_init (&reader, packed, bytes);
    wire_packed_request_t request;
    wire_packed_rc_t rc;
    while ((rc = wire_packed_request_next (&reader, &request)) == WIRE_PACKED_REQUEST) {
        size_t used = strlen (text);
        snprintf (text + used, 4096 - used, "%.*s:%zu:%zu|", (int)request.request_id_bytes,
                  request.request_id, request.count, request.line_count);
        //  Its lines are whole and end where it ends.
        wire_reader_t lines;
        wire_reader_init (&lines, request.lines, request.lines_bytes);
        const char *line;
        size_t line_bytes, found = 0;
        while (wire_line_next (&lines, &line, &line_bytes))
            found++;
        assert (found >= request.line_count && found <= request.line_count + 1);
    }
    strcat (text, rc == WIRE_PACKED_END ? "end" : "malformed");
    return text;
}

#define CHECK_PACKED(packed, expected)                                                   \
    do {                                                                                 \
        char *got_ = s_packed_requests ((packed), sizeof (packed) - 1);                  \
        CHECK_EQ_STR_NOLEAVE (got_, expected);                                           \
        free (got_);                                                                     \
    } while (0)

static void test_packed_append_parses_request_by_request (void)
{
    CHECK_PACKED ("", "end");
    CHECK_PACKED ("a 2\n{}\n{}\nb 1\n{}\n", "a:2:2|b:1:1|end");
    //  An empty request is one: its answer is the stream's to give.
    CHECK_PACKED ("a 0\nb 1\n{}\n", "a:0:0|b:1:1|end");
    //  A count that lies high: the frame ends first.
    CHECK_PACKED ("a 1\n{}\nb 3\n{}\n{}\n", "a:1:1|b:3:2|end");
    //  A request cut at the frame's end (its last line has no LF).
    CHECK_PACKED ("a 2\n{}\n{}", "a:2:1|end");
    //  A count that lies low: the next line is read as a header.
    CHECK_PACKED ("a 1\n{}\n{}\nb 1\n{}\n", "a:1:1|malformed");
    //  A request id with a space, an empty one, a count that is not one.
    CHECK_PACKED ("a b 1\n{}\n", "malformed");
    CHECK_PACKED (" 1\n{}\n", "malformed");
    CHECK_PACKED ("a \n", "malformed");
    CHECK_PACKED ("a 01\n{}\n", "malformed");
    CHECK_PACKED ("a -1\n", "malformed");
    CHECK_PACKED ("a 1234567890\n", "malformed");
    CHECK_PACKED ("a 1", "malformed");
    CHECK_PACKED ("ok 1\n{}\nbad", "ok:1:1|malformed");

    zmq_msg_t frames[3];
    const char *texts[] = {"APPEND", "", "a 0\n"};
    for (size_t index = 0; index < 3; index++) {
        zmq_msg_init_size (&frames[index], strlen (texts[index]));
        memcpy (zmq_msg_data (&frames[index]), texts[index], strlen (texts[index]));
    }
    CHECK (wire_append_is_packed (frames, 3));
    CHECK (!wire_append_is_packed (frames, 2));
    CHECK (!wire_append_is_packed (frames, 4));
    CHECK (!wire_append_is_packed (frames + 1, 2));
    for (size_t index = 0; index < 3; index++)
        zmq_msg_close (&frames[index]);
}

static void test_packed_events_and_results_read_back (void)
{
    CHECK_EQ_INT (wire_events_frame_lines ("{\"seq\":1}", 9), 1);
    CHECK_EQ_INT (wire_events_frame_lines ("{\"seq\":1}\n{\"seq\":2}\n", 20), 2);
    CHECK_EQ_INT (wire_events_frame_lines ("", 0), 1);
    //  A line that is not one (LF inside, none at the end): one line, refused by its parse.
    CHECK_EQ_INT (wire_events_frame_lines ("{}\n{}", 5), 1);

    const char packed[] = "r-1 {\"status\":\"ok\"}\nr-2 {\"status\":\"conflict\"}\n";
    wire_reader_t reader;
    wire_reader_init (&reader, packed, sizeof packed - 1);
    const char *id, *json;
    size_t id_bytes, json_bytes;
    CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                  WIRE_PACKED_REQUEST);
    CHECK (id_bytes == 3 && memcmp (id, "r-1", 3) == 0);
    CHECK (json_bytes == 15 && memcmp (json, "{\"status\":\"ok\"}", 15) == 0);
    CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                  WIRE_PACKED_REQUEST);
    CHECK (id_bytes == 3 && memcmp (id, "r-2", 3) == 0);
    CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                  WIRE_PACKED_END);
    const char *bad[] = {"r-1 {}", "r-1\n", " {}\n", "r-1 \n", "r-1{}\n"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        wire_reader_init (&reader, bad[index], strlen (bad[index]));
        CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                      WIRE_PACKED_MALFORMED);
        CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                      WIRE_PACKED_END);
    }
    //  A request id with a space ends at it: the rest is the JSON's.
    wire_reader_init (&reader, "a b {}\n", 7);
    CHECK_EQ_INT (wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes),
                  WIRE_PACKED_REQUEST);
    CHECK (id_bytes == 1 && json_bytes == 4);
}

int main (void)
{
    RUN (test_builders_send_the_protocols_frames);
    RUN (test_results_are_printed_as_design_spells_them);
    RUN (test_results_parse_on_both_paths);
    RUN (test_fetch_parse_takes_and_refuses);
    RUN (test_seqs_are_digits_only);
    RUN (test_heartbeat_and_lookup_replies_parse);
    RUN (test_append_parse_names_its_parts);
    RUN (test_packed_builders_send_one_frame);
    RUN (test_packed_append_parses_request_by_request);
    RUN (test_packed_events_and_results_read_back);
    return check_exit_status ();
}
