/*  wire — see wire.h. */
#include "wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  FETCH's numbers: decimal, at most this many digits, so no overflow
//  check is needed; a from_seq beyond the log reads nothing.
#define WIRE_FETCH_DIGITS_MAX 18
//  A seq frame: EVENT_SEQ_MAX has 16 digits.
#define WIRE_SEQ_DIGITS_MAX 16
//  A seq inside a RESULT read on the fast path: 16 digits, no leading zero,
//  at most EVENT_SEQ_MAX, where cJSON's double is exact too.
#define WIRE_RESULT_SEQ_DIGITS_MAX 16

bool wire_is (const void *data, size_t bytes, const char *text)
{
    size_t text_bytes = strlen (text);
    return bytes == text_bytes && memcmp (data, text, bytes) == 0;
}

bool wire_msg_is (zmq_msg_t *frame, const char *text)
{
    return wire_is (zmq_msg_data (frame), zmq_msg_size (frame), text);
}

int wire_seq_parse (const void *data, size_t bytes, int64_t *value)
{
    const char *digits = (const char *)data;
    if (bytes == 0 || bytes > WIRE_SEQ_DIGITS_MAX)
        return -1;
    int64_t parsed = 0;
    for (size_t at = 0; at < bytes; at++) {
        if (digits[at] < '0' || digits[at] > '9')
            return -1;
        parsed = parsed * 10 + (digits[at] - '0');
    }
    if (parsed > EVENT_SEQ_MAX)
        return -1;
    *value = parsed;
    return 0;
}

int wire_send (void *socket, const void *data, size_t bytes, bool more)
{
    return zmq_send (socket, data, bytes, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

static int s_send_str (void *socket, const char *text, bool more)
{
    return wire_send (socket, text, strlen (text), more);
}

static int s_send_seq (void *socket, int64_t seq, bool more)
{
    char text[24]; // INT64_MIN has 20 characters
    return wire_send (socket, text, event_format_int (text, seq), more);
}

//  --------------------------------------------------------------------
//  APPEND

int wire_append_begin (void *socket, const char *request_id, bool events_follow)
{
    if (wire_send (socket, WIRE_APPEND, sizeof WIRE_APPEND - 1, true))
        return -1;
    return s_send_str (socket, request_id, events_follow);
}

int wire_append_event (void *socket, const char *line, size_t bytes, bool last)
{
    return wire_send (socket, line, bytes, !last);
}

wire_append_rc_t wire_append_parse (zmq_msg_t *frames, size_t frame_total,
                                    wire_append_t *append)
{
    *append = (wire_append_t){0};
    if (frame_total < 2)
        return WIRE_APPEND_NO_ID;
    append->request_id = (const char *)zmq_msg_data (&frames[1]);
    append->request_id_bytes = zmq_msg_size (&frames[1]);
    if (!wire_msg_is (&frames[0], WIRE_APPEND))
        return WIRE_APPEND_NOT_APPEND;
    append->events = &frames[2];
    append->event_count = frame_total - 2;
    return WIRE_APPEND_OK;
}

//  --------------------------------------------------------------------
//  EVENTS, HEARTBEAT

int wire_events_begin (void *socket)
{
    return wire_send (socket, WIRE_EVENTS, sizeof WIRE_EVENTS - 1, true);
}

int wire_heartbeat_send (void *socket, int64_t last_seq, const char *identity,
                         const char *head)
{
    if (s_send_str (socket, WIRE_HEARTBEAT, true) || s_send_seq (socket, last_seq, true) ||
        s_send_str (socket, identity, head != NULL))
        return -1;
    return head ? s_send_str (socket, head, false) : 0;
}

int wire_heartbeat_parse (zmsg_t *msg, int64_t *last_seq, zframe_t **identity_p,
                          zframe_t **head_p)
{
    zmsg_first (msg);
    zframe_t *seq = zmsg_next (msg);
    if (!seq || wire_seq_parse (zframe_data (seq), zframe_size (seq), last_seq))
        return -1;
    *identity_p = zmsg_next (msg);
    *head_p = *identity_p ? zmsg_next (msg) : NULL;
    return 0;
}

//  --------------------------------------------------------------------
//  RESULT

static char *s_put (char *cursor, const char *text, size_t bytes)
{
    memcpy (cursor, text, bytes);
    return cursor + bytes;
}

#define s_put_lit(cursor, literal) s_put ((cursor), (literal), sizeof (literal) - 1)

size_t wire_result_format_seqs (char *text, bool duplicate, int64_t first_seq,
                                int64_t last_seq)
{
    assert (first_seq >= 1 && last_seq >= first_seq && last_seq <= EVENT_SEQ_MAX);
    char *cursor = s_put_lit (text, "{\"status\":\"");
    cursor = duplicate ? s_put_lit (cursor, "duplicate") : s_put_lit (cursor, "ok");
    cursor = s_put_lit (cursor, "\",\"first_seq\":");
    cursor += event_format_int (cursor, first_seq);
    cursor = s_put_lit (cursor, ",\"last_seq\":");
    cursor += event_format_int (cursor, last_seq);
    *cursor++ = '}';
    *cursor = '\0';
    return (size_t)(cursor - text);
}

char *wire_result_invalid (const char *error)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "status", "invalid");
    cJSON_AddStringToObject (json, "error", error);
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    return text;
}

char *wire_result_conflict (cJSON **versions_p)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "status", "conflict");
    cJSON_AddItemToObject (json, "versions", *versions_p);
    *versions_p = NULL;
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    return text;
}

void wire_result_format_unavailable (char *text, size_t size, const char *reason)
{
    snprintf (text, size, "{\"status\":\"unavailable\",\"error\":\"storage: %s\"}",
              reason);
}

int wire_result_send (void *socket, const char *request_id, size_t request_id_bytes,
                      const char *result_json)
{
    if (wire_send (socket, WIRE_RESULT, sizeof WIRE_RESULT - 1, true) ||
        wire_send (socket, request_id, request_id_bytes, true))
        return -1;
    return s_send_str (socket, result_json, false);
}

//  A seq as wire_result_format_seqs prints it: [1-9][0-9]*, at most
//  EVENT_SEQ_MAX.
static bool s_read_seq (const char **text_p, int64_t *value)
{
    const char *text = *text_p;
    int64_t seq = 0;
    size_t digits = 0;
    for (; text[digits] >= '0' && text[digits] <= '9'; digits++)
        if (digits < WIRE_RESULT_SEQ_DIGITS_MAX)
            seq = seq * 10 + (text[digits] - '0');
    if (digits == 0 || digits > WIRE_RESULT_SEQ_DIGITS_MAX || *text == '0' ||
        seq > EVENT_SEQ_MAX)
        return false;
    *value = seq;
    *text_p = text + digits;
    return true;
}

static bool s_read_literal (const char **text_p, const char *literal, size_t bytes)
{
    if (strncmp (*text_p, literal, bytes) != 0)
        return false;
    *text_p += bytes;
    return true;
}

#define s_read_lit(text_p, literal)                                                      \
    s_read_literal ((text_p), (literal), sizeof (literal) - 1)

static bool s_read_seqs (const char *text, wire_result_t *result)
{
    if (!s_read_lit (&text, "{\"status\":\""))
        return false;
    bool duplicate = s_read_lit (&text, "duplicate");
    if (!(duplicate || s_read_lit (&text, "ok")) ||
        !s_read_lit (&text, "\",\"first_seq\":") ||
        !s_read_seq (&text, &result->first_seq) ||
        !s_read_lit (&text, ",\"last_seq\":") || !s_read_seq (&text, &result->last_seq) ||
        !s_read_lit (&text, "}") || *text)
        return false;
    result->status = duplicate ? WIRE_STATUS_DUPLICATE : WIRE_STATUS_OK;
    return true;
}

static int64_t s_result_int (const cJSON *json, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (json, name);
    //  Beyond any seq (or an int64_t: the cast would be undefined): none.
    return cJSON_IsNumber (item) && item->valuedouble >= 0 &&
                   item->valuedouble <= (double)EVENT_SEQ_MAX
               ? (int64_t)item->valuedouble
               : 0;
}

void wire_result_parse (const char *result_json, wire_result_t *result)
{
    *result = (wire_result_t){.status = WIRE_STATUS_UNKNOWN};
    if (s_read_seqs (result_json, result))
        return;
    result->first_seq = result->last_seq = 0;
    result->json = cJSON_Parse (result_json);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive (result->json, "status");
    const char *name = cJSON_IsString (status) ? status->valuestring : "";
    static const char *const names[] = {
        [WIRE_STATUS_OK] = "ok",
        [WIRE_STATUS_CONFLICT] = "conflict",
        [WIRE_STATUS_DUPLICATE] = "duplicate",
        [WIRE_STATUS_INVALID] = "invalid",
        [WIRE_STATUS_UNAVAILABLE] = "unavailable",
    };
    for (size_t index = 0; index < sizeof names / sizeof names[0]; index++)
        if (streq (name, names[index]))
            result->status = (wire_status_t)index;
    result->first_seq = s_result_int (result->json, "first_seq");
    result->last_seq = s_result_int (result->json, "last_seq");
    result->versions = cJSON_GetObjectItemCaseSensitive (result->json, "versions");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive (result->json, "error");
    result->error = cJSON_IsString (error) ? error->valuestring : result_json;
}

void wire_result_done (wire_result_t *result)
{
    cJSON_Delete (result->json);
    *result = (wire_result_t){.status = WIRE_STATUS_UNKNOWN};
}

//  --------------------------------------------------------------------
//  FETCH and its replies

int wire_fetch_send (void *socket, const wire_fetch_t *fetch)
{
    assert (fetch->packed || !fetch->identity);
    if (s_send_str (socket, WIRE_FETCH, true) ||
        s_send_seq (socket, fetch->from_seq, true) ||
        s_send_seq (socket, fetch->max_events, fetch->packed))
        return -1;
    if (fetch->packed && s_send_str (socket, WIRE_FETCH_PACKED, fetch->identity))
        return -1;
    if (fetch->identity && s_send_str (socket, WIRE_FETCH_IDENTITY, false))
        return -1;
    return 0;
}

//  A frame holding a decimal integer >= 1 of at most
//  WIRE_FETCH_DIGITS_MAX digits; -1 if not.
static int64_t s_fetch_number (zframe_t *frame)
{
    if (!frame || zframe_size (frame) == 0 || zframe_size (frame) > WIRE_FETCH_DIGITS_MAX)
        return -1;
    int64_t value = 0;
    const byte *data = zframe_data (frame);
    for (size_t i = 0; i < zframe_size (frame); i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        value = value * 10 + (data[i] - '0');
    }
    return value >= 1 ? value : -1;
}

const char *wire_fetch_parse (zmsg_t *request, wire_fetch_t *fetch)
{
    zframe_t *command = zmsg_first (request);
    zframe_t *from_frame = zmsg_next (request);
    zframe_t *max_frame = from_frame ? zmsg_next (request) : NULL;
    zframe_t *shape = max_frame ? zmsg_next (request) : NULL;
    zframe_t *identity = shape ? zmsg_next (request) : NULL;
    bool extra = identity && zmsg_next (request);
    *fetch = (wire_fetch_t){.from_seq = s_fetch_number (from_frame),
                            .max_events = s_fetch_number (max_frame),
                            .packed = shape != NULL,
                            .identity = identity != NULL};
    if (!command || !zframe_streq (command, WIRE_FETCH))
        return "unknown command (expected FETCH from_seq max_events [packed])";
    if (fetch->from_seq < 0)
        return "from_seq: must be an integer >= 1";
    if (fetch->max_events < 0)
        return "max_events: must be an integer >= 1";
    if (shape && !zframe_streq (shape, WIRE_FETCH_PACKED))
        return "the fourth frame, if any, must be \"" WIRE_FETCH_PACKED "\"";
    if (identity && !zframe_streq (identity, WIRE_FETCH_IDENTITY))
        return "the fifth frame, if any, must be \"" WIRE_FETCH_IDENTITY "\"";
    if (extra)
        return "FETCH takes at most four arguments: from_seq max_events [packed "
               "[identity]]";
    return NULL;
}

int wire_batch_send (void *socket, int64_t log_last_seq, const char *text, size_t bytes)
{
    if (s_send_str (socket, WIRE_BATCH, true) ||
        s_send_seq (socket, log_last_seq, bytes > 0))
        return -1;
    for (const char *line = text; line < text + bytes;) {
        const char *end = memchr (line, '\n', (size_t)(text + bytes - line));
        assert (end);
        if (wire_send (socket, line, (size_t)(end - line), end + 1 < text + bytes))
            return -1;
        line = end + 1;
    }
    return 0;
}

int wire_packed_send (void *socket, int64_t log_last_seq, const char *text, size_t bytes,
                      const char *identity)
{
    if (s_send_str (socket, WIRE_PACKED, true) ||
        s_send_seq (socket, log_last_seq, true) ||
        wire_send (socket, text, bytes, identity != NULL))
        return -1;
    return identity ? s_send_str (socket, identity, false) : 0;
}

int wire_error_send (void *socket, const char *message)
{
    if (s_send_str (socket, WIRE_ERROR, true))
        return -1;
    return s_send_str (socket, message, false);
}

int64_t wire_page_lines (const char *page, size_t bytes)
{
    if (bytes > 0 && page[bytes - 1] != '\n')
        return -1;
    int64_t lines = 0;
    for (const char *at = page, *end = page + bytes;
         (at = (const char *)memchr (at, '\n', (size_t)(end - at))); at++)
        lines++;
    return lines;
}

//  --------------------------------------------------------------------
//  LOOKUP and its replies

int wire_lookup_send (void *socket, const char *id)
{
    if (s_send_str (socket, WIRE_LOOKUP, true))
        return -1;
    return s_send_str (socket, id, false);
}

const char *wire_lookup_parse (zmsg_t *request, char id[EVENT_ID_BYTES_MAX + 1])
{
    zmsg_first (request);
    zframe_t *id_frame = zmsg_next (request);
    *id = '\0';
    if (!id_frame || zmsg_next (request) ||
        !event_id_is_valid ((const char *)zframe_data (id_frame), zframe_size (id_frame)))
        return "LOOKUP takes one event id";
    memcpy (id, zframe_data (id_frame), zframe_size (id_frame));
    id[zframe_size (id_frame)] = '\0';
    return NULL;
}

int wire_found_send (void *socket, const char *id, int64_t seq, const char *line,
                     size_t bytes)
{
    if (s_send_str (socket, WIRE_FOUND, true) || s_send_str (socket, id, true) ||
        s_send_seq (socket, seq, true))
        return -1;
    return wire_send (socket, line, bytes, false);
}

int wire_absent_send (void *socket, const char *id)
{
    if (s_send_str (socket, WIRE_ABSENT, true))
        return -1;
    return s_send_str (socket, id, false);
}

wire_lookup_rc_t wire_lookup_reply_parse (zmsg_t *reply, wire_lookup_reply_t *out)
{
    *out = (wire_lookup_reply_t){0};
    zframe_t *kind = zmsg_first (reply);
    zframe_t *id = zmsg_next (reply);
    if (kind && zframe_streq (kind, WIRE_ERROR)) {
        out->error = id;
        return WIRE_LOOKUP_ERROR;
    }
    out->id = id;
    if (kind && zframe_streq (kind, WIRE_ABSENT) && zmsg_size (reply) == 2)
        return WIRE_LOOKUP_ABSENT;
    if (!kind || !zframe_streq (kind, WIRE_FOUND) || zmsg_size (reply) != 4)
        return WIRE_LOOKUP_MALFORMED;
    zframe_t *seq = zmsg_next (reply);
    zframe_t *line = zmsg_next (reply);
    if (wire_seq_parse (zframe_data (seq), zframe_size (seq), &out->seq) || out->seq < 1)
        return WIRE_LOOKUP_NO_SEQ;
    out->line = (const char *)zframe_data (line);
    out->line_bytes = zframe_size (line);
    return WIRE_LOOKUP_FOUND;
}

//  --------------------------------------------------------------------
//  Packed forms

void wire_pack_reset (wire_pack_t *pack)
{
    pack->bytes = 0;
}

void wire_pack_free (wire_pack_t *pack)
{
    free (pack->data);
    *pack = (wire_pack_t){0};
}

//  Room for bytes more; -1 when memory is short.
static int s_pack_room (wire_pack_t *pack, size_t bytes)
{
    if (pack->bytes + bytes <= pack->size && pack->data)
        return 0;
    size_t size = pack->size ? pack->size : 4096;
    while (size < pack->bytes + bytes)
        size *= 2;
    char *data = (char *)realloc (pack->data, size);
    if (!data)
        return -1;
    pack->data = data;
    pack->size = size;
    return 0;
}

int wire_pack_bytes (wire_pack_t *pack, const void *data, size_t bytes)
{
    if (s_pack_room (pack, bytes))
        return -1;
    memcpy (pack->data + pack->bytes, data, bytes);
    pack->bytes += bytes;
    return 0;
}

bool wire_packed_id_is_valid (const char *request_id, size_t id_bytes)
{
    if (id_bytes == 0 || id_bytes > WIRE_PACKED_ID_BYTES_MAX)
        return false;
    for (size_t at = 0; at < id_bytes; at++)
        if (request_id[at] == ' ' || request_id[at] == '\n' || request_id[at] == '\0')
            return false;
    return true;
}

int wire_pack_request (wire_pack_t *pack, const char *request_id, size_t id_bytes,
                       size_t count)
{
    char digits[24];
    if (!wire_packed_id_is_valid (request_id, id_bytes) || count > 999999999 ||
        s_pack_room (pack, id_bytes + sizeof digits + 2))
        return -1;
    char *cursor = s_put (pack->data + pack->bytes, request_id, id_bytes);
    *cursor++ = ' ';
    cursor += event_format_int (cursor, (int64_t)count);
    *cursor++ = '\n';
    pack->bytes = (size_t)(cursor - pack->data);
    return 0;
}

int wire_pack_line (wire_pack_t *pack, const char *line, size_t bytes)
{
    if (memchr (line, '\n', bytes) || s_pack_room (pack, bytes + 1))
        return -1;
    char *cursor = s_put (pack->data + pack->bytes, line, bytes);
    *cursor = '\n';
    pack->bytes += bytes + 1;
    return 0;
}

int wire_pack_result (wire_pack_t *pack, const char *request_id, size_t id_bytes,
                      const char *result_json, size_t json_bytes)
{
    if (!wire_packed_id_is_valid (request_id, id_bytes) || json_bytes == 0 ||
        memchr (result_json, '\n', json_bytes) ||
        s_pack_room (pack, id_bytes + json_bytes + 2))
        return -1;
    char *cursor = s_put (pack->data + pack->bytes, request_id, id_bytes);
    *cursor++ = ' ';
    cursor = s_put (cursor, result_json, json_bytes);
    *cursor++ = '\n';
    pack->bytes = (size_t)(cursor - pack->data);
    return 0;
}

int wire_append_packed_send (void *socket, const char *packed, size_t bytes)
{
    if (wire_send (socket, WIRE_APPEND, sizeof WIRE_APPEND - 1, true) ||
        wire_send (socket, "", 0, true))
        return -1;
    return wire_send (socket, packed, bytes, false);
}

int wire_events_packed_send (void *socket, const char *lines, size_t bytes)
{
    if (wire_send (socket, WIRE_EVENTS, sizeof WIRE_EVENTS - 1, true))
        return -1;
    return wire_send (socket, lines, bytes, false);
}

int wire_results_send (void *socket, const char *packed, size_t bytes)
{
    if (wire_send (socket, WIRE_RESULTS, sizeof WIRE_RESULTS - 1, true))
        return -1;
    return wire_send (socket, packed, bytes, false);
}

bool wire_append_is_packed (zmq_msg_t *frames, size_t frame_total)
{
    return frame_total == 3 && wire_msg_is (&frames[0], WIRE_APPEND) &&
           zmq_msg_size (&frames[1]) == 0;
}

void wire_reader_init (wire_reader_t *reader, const void *data, size_t bytes)
{
    reader->at = (const char *)data;
    reader->end = reader->at + bytes;
}

wire_packed_rc_t wire_packed_request_next (wire_reader_t *reader,
                                           wire_packed_request_t *request)
{
    *request = (wire_packed_request_t){0};
    if (reader->at == reader->end)
        return WIRE_PACKED_END;
    const char *header = reader->at;
    size_t left = (size_t)(reader->end - header);
    const char *lf = (const char *)memchr (header, '\n', left);
    const char *sp = (const char *)memchr (header, ' ', lf ? (size_t)(lf - header) : left);
    if (!lf || !sp || !wire_packed_id_is_valid (header, (size_t)(sp - header)))
        goto malformed;
    const char *digits = sp + 1;
    size_t digit_count = (size_t)(lf - digits);
    if (digit_count == 0 || digit_count > WIRE_PACKED_COUNT_DIGITS_MAX ||
        (digit_count > 1 && *digits == '0'))
        goto malformed;
    size_t count = 0;
    for (size_t at = 0; at < digit_count; at++) {
        if (digits[at] < '0' || digits[at] > '9')
            goto malformed;
        count = count * 10 + (size_t)(digits[at] - '0');
    }
    request->request_id = header;
    request->request_id_bytes = (size_t)(sp - header);
    request->count = count;
    request->lines = lf + 1;
    const char *cursor = lf + 1;
    while (request->line_count < count && cursor < reader->end) {
        const char *end = (const char *)memchr (cursor, '\n',
                                                (size_t)(reader->end - cursor));
        if (!end) {
            cursor = reader->end; // a line cut at the frame's end: not one
            break;
        }
        request->line_count++;
        cursor = end + 1;
    }
    request->lines_bytes = (size_t)(cursor - request->lines);
    reader->at = cursor;
    return WIRE_PACKED_REQUEST;
malformed:
    reader->at = reader->end;
    return WIRE_PACKED_MALFORMED;
}

bool wire_line_next (wire_reader_t *reader, const char **line, size_t *bytes)
{
    if (reader->at >= reader->end)
        return false;
    const char *end =
        (const char *)memchr (reader->at, '\n', (size_t)(reader->end - reader->at));
    *line = reader->at;
    *bytes = (size_t)((end ? end : reader->end) - reader->at);
    reader->at = end ? end + 1 : reader->end;
    return true;
}

size_t wire_events_frame_lines (const void *data, size_t bytes)
{
    int64_t lines = wire_page_lines ((const char *)data, bytes);
    return bytes > 0 && lines > 0 ? (size_t)lines : 1;
}

wire_packed_rc_t wire_results_next (wire_reader_t *reader, const char **request_id,
                                    size_t *id_bytes, const char **result_json,
                                    size_t *json_bytes)
{
    if (reader->at == reader->end)
        return WIRE_PACKED_END;
    const char *record = reader->at;
    size_t left = (size_t)(reader->end - record);
    const char *lf = (const char *)memchr (record, '\n', left);
    const char *sp = lf ? (const char *)memchr (record, ' ', (size_t)(lf - record)) : NULL;
    if (!sp || !wire_packed_id_is_valid (record, (size_t)(sp - record)) || sp + 1 == lf) {
        reader->at = reader->end;
        return WIRE_PACKED_MALFORMED;
    }
    *request_id = record;
    *id_bytes = (size_t)(sp - record);
    *result_json = sp + 1;
    *json_bytes = (size_t)(lf - sp - 1);
    reader->at = lf + 1;
    return WIRE_PACKED_REQUEST;
}
