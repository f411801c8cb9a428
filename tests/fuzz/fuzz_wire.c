/*  fuzz_wire — the ZeroMQ protocol's parsers (common/wire.h) on any
    frames. The input is a list of messages, framed as in
    fuzz_stream_ingest (fuzz_frames.h). Each message goes through every
    parser. Claims:
    - a RESULT read on the fast path (no cJSON) is what cJSON reads too,
      and printing it again gives the same bytes;
    - a seq frame is taken exactly when it is 1-16 digits and at most
      EVENT_SEQ_MAX, with their value;
    - a FETCH taken has 3 to 5 frames, numbers >= 1, "packed" exactly when
      it has 4 or more, "identity" exactly with 5;
    - a page's line count is its \n count, or -1 when it does not end in one;
    - a FOUND has a seq >= 1 and its line; a HEARTBEAT taken has a seq;
    - a packed APPEND's requests (any frame read as one) have ids without
      SP, their lines inside the frame, at most count of them, fewer only
      where the frame ends; packed again they give back the bytes read;
      the same for a packed RESULTS; an EVENTS frame's lines are its LFs
      when it ends in one, else 1.
*/
#include "fuzz_common.h"
#include "fuzz_frames.h"

#include <cjson/cJSON.h>

#include "wire.h"

static message_t s_messages[FUZZ_FRAMES_MESSAGES_MAX];

static zmsg_t *s_msg (const message_t *message)
{
    zmsg_t *msg = zmsg_new ();
    for (size_t index = 0; index < message->frame_count; index++)
        zmsg_addmem (msg, message->frames[index], message->frame_bytes[index]);
    return msg;
}

static void s_check_result (const uint8_t *data, size_t bytes)
{
    char *text = (char *)malloc (bytes + 1);
    memcpy (text, data, bytes);
    text[bytes] = 0;
    wire_result_t result;
    wire_result_parse (text, &result);
    //  No cJSON tree, yet a status: the fast path read it.
    if (!result.json && result.status != WIRE_STATUS_UNKNOWN && strlen (text) == bytes) {
        fuzz_check (result.status == WIRE_STATUS_OK ||
                        result.status == WIRE_STATUS_DUPLICATE,
                    "fast path status %d", result.status);
        cJSON *json = cJSON_Parse (text);
        const cJSON *first = cJSON_GetObjectItemCaseSensitive (json, "first_seq");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive (json, "last_seq");
        fuzz_check (cJSON_IsNumber (first) &&
                        (int64_t)first->valuedouble == result.first_seq,
                    "first_seq %lld", (long long)result.first_seq);
        fuzz_check (cJSON_IsNumber (last) &&
                        (int64_t)last->valuedouble == result.last_seq,
                    "last_seq %lld", (long long)result.last_seq);
        cJSON_Delete (json);
        if (result.first_seq >= 1 && result.last_seq >= result.first_seq) {
            char again[WIRE_RESULT_SEQS_BYTES_MAX];
            wire_result_format_seqs (again, result.status == WIRE_STATUS_DUPLICATE,
                                     result.first_seq, result.last_seq);
            fuzz_check (strcmp (again, text) == 0, "printed again: %s", again);
        }
    }
    wire_result_done (&result);
    free (text);
}

static void s_check_seq (const uint8_t *data, size_t bytes)
{
    int64_t value = -1;
    bool digits = bytes >= 1 && bytes <= 16;
    int64_t model = 0;
    for (size_t index = 0; index < bytes && digits; index++) {
        digits = data[index] >= '0' && data[index] <= '9';
        model = model * 10 + (data[index] - '0');
    }
    bool taken = digits && model <= EVENT_SEQ_MAX;
    fuzz_check ((wire_seq_parse (data, bytes, &value) == 0) == taken, "seq taken: %d",
                taken);
    fuzz_check (!taken || value == model, "seq %lld", (long long)value);

    int64_t newlines = 0;
    for (size_t index = 0; index < bytes; index++)
        newlines += data[index] == '\n';
    int64_t lines = wire_page_lines ((const char *)data, bytes);
    fuzz_check (lines == (bytes == 0 || data[bytes - 1] == '\n' ? newlines : -1),
                "page lines %lld", (long long)lines);
}

static void s_check_packed (const uint8_t *data, size_t bytes)
{
    const char *text = (const char *)data, *end = text + bytes;
    wire_reader_t reader;
    wire_reader_init (&reader, data, bytes);
    wire_pack_t pack = {0};
    wire_packed_request_t request;
    wire_packed_rc_t rc;
    const char *whole = text; // the end of the last request read whole
    while ((rc = wire_packed_request_next (&reader, &request)) == WIRE_PACKED_REQUEST) {
        fuzz_check (!memchr (request.request_id, ' ', request.request_id_bytes) &&
                        request.request_id_bytes > 0,
                    "packed id");
        fuzz_check (request.lines >= text && request.lines + request.lines_bytes <= end &&
                        reader.at == request.lines + request.lines_bytes,
                    "lines outside the frame");
        fuzz_check (request.line_count <= request.count, "more lines than the count");
        fuzz_check (request.line_count == request.count || reader.at == end,
                    "a short request before the frame's end");
        if (request.line_count < request.count)
            break;
        fuzz_check (wire_pack_request (&pack, request.request_id, request.request_id_bytes,
                                       request.count) == 0,
                    "a request id read is refused");
        wire_reader_t lines;
        wire_reader_init (&lines, request.lines, request.lines_bytes);
        const char *line;
        size_t line_bytes, found = 0;
        while (wire_line_next (&lines, &line, &line_bytes)) {
            fuzz_check (wire_pack_line (&pack, line, line_bytes) == 0, "line refused");
            found++;
        }
        fuzz_check (found == request.count, "%zu lines for a count of %zu", found,
                    request.count);
        whole = reader.at;
    }
    fuzz_check (rc != WIRE_PACKED_MALFORMED || reader.at == end, "reading after malformed");
    fuzz_check (pack.bytes == (size_t)(whole - text) &&
                    (pack.bytes == 0 || memcmp (pack.data, text, pack.bytes) == 0),
                "packed again, the requests differ");
    wire_pack_reset (&pack);

    wire_reader_init (&reader, data, bytes);
    const char *id, *json;
    size_t id_bytes, json_bytes;
    while ((rc = wire_results_next (&reader, &id, &id_bytes, &json, &json_bytes)) ==
           WIRE_PACKED_REQUEST)
        fuzz_check (wire_pack_result (&pack, id, id_bytes, json, json_bytes) == 0,
                    "a result read is refused");
    fuzz_check (rc == WIRE_PACKED_END || reader.at == end, "results after malformed");
    fuzz_check (rc != WIRE_PACKED_END ||
                    (pack.bytes == bytes && (bytes == 0 || memcmp (pack.data, text, bytes) == 0)),
                "packed again, the results differ");
    wire_pack_free (&pack);

    size_t newlines = 0;
    for (size_t index = 0; index < bytes; index++)
        newlines += data[index] == '\n';
    size_t expected = bytes > 0 && data[bytes - 1] == '\n' ? newlines : 1;
    fuzz_check (wire_events_frame_lines (data, bytes) == expected, "EVENTS frame lines");
}

static void s_check_message (const message_t *message)
{
    zmsg_t *msg = s_msg (message);
    wire_fetch_t fetch;
    if (!wire_fetch_parse (msg, &fetch)) {
        size_t frames = message->frame_count;
        fuzz_check (frames >= 3 && frames <= 5, "FETCH of %zu frames", frames);
        fuzz_check (fetch.from_seq >= 1 && fetch.max_events >= 1, "FETCH numbers");
        fuzz_check (fetch.packed == (frames >= 4) && fetch.identity == (frames == 5),
                    "FETCH shape");
    }
    wire_lookup_reply_t reply;
    if (wire_lookup_reply_parse (msg, &reply) == WIRE_LOOKUP_FOUND)
        fuzz_check (reply.seq >= 1 && reply.line && reply.id, "FOUND");
    int64_t seq = -1;
    zframe_t *identity, *head;
    if (wire_heartbeat_parse (msg, &seq, &identity, &head) == 0)
        fuzz_check (seq >= 0 && seq <= EVENT_SEQ_MAX && (!head || identity),
                    "HEARTBEAT seq");
    char id[EVENT_ID_BYTES_MAX + 1];
    if (!wire_lookup_parse (msg, id))
        fuzz_check (event_id_is_valid (id, strlen (id)), "LOOKUP id");
    zmsg_destroy (&msg);
    for (size_t index = 0; index < message->frame_count; index++) {
        s_check_result (message->frames[index], message->frame_bytes[index]);
        s_check_seq (message->frames[index], message->frame_bytes[index]);
        s_check_packed (message->frames[index], message->frame_bytes[index]);
    }
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t count = fuzz_frames_decode (data, size, s_messages);
    for (size_t index = 0; index < count; index++)
        s_check_message (&s_messages[index]);
    return 0;
}
