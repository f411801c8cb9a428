/*  verify — see verify.h.

    One pass, one buffer: files are read in large chunks, each line's seq
    read from its prefix ({"seq":N,) and its chain recomputed; nothing is
    parsed as an event (the services' own checks do that as they load),
    so the rate is SHA-256's over the bytes.
*/
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chain.h"
#include "event.h"

#define VERIFY_CHUNK_BYTES  (4 * 1024 * 1024) // large reads: the rate is the disk's
#define VERIFY_PATH_BYTES   4096
#define VERIFY_NAME_DIGITS  20 // segments: <first seq, 20 digits>.jsonl
#define VERIFY_FILES_MIN    16
#define VERIFY_HEAD_BYTES_MAX 4096 // a head file: one small JSON object
#define VERIFY_TS_KEY       ",\"ts\":\""
//  A stored line's ts comes within its first bytes: seq, id, type, v.
#define VERIFY_TS_SEARCH_BYTES 256

typedef struct {
    char *path;
    int64_t first_seq; // from its name; 0: not a segment's name
} file_t;

typedef struct {
    FILE *out, *err;
    uint8_t chain[CHAIN_BYTES]; // at seq
    int64_t seq;                // last line checked
    char ts[EVENT_TS_BYTES + 1];
    const chain_head_t *head; // NULL: none given
    bool head_reached;
    uint64_t bytes;
    const char *path; // the file being read
} verify_t;

static int s_bad (verify_t *self, int64_t seq, uint64_t offset, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  The first thing that does not hold: exit 1.
static int s_bad (verify_t *self, int64_t seq, uint64_t offset, const char *format, ...)
{
    fprintf (self->err, "stream --verify: seq %" PRId64 " (%s, byte offset %" PRIu64 "): ",
             seq, self->path, offset);
    va_list args;
    va_start (args, format);
    vfprintf (self->err, format, args);
    va_end (args);
    fputc ('\n', self->err);
    return 1;
}

static int64_t s_name_seq (const char *name)
{
    size_t length = strlen (name);
    if (length != VERIFY_NAME_DIGITS + 6 || strcmp (name + VERIFY_NAME_DIGITS, ".jsonl"))
        return 0;
    int64_t seq = 0;
    for (int i = 0; i < VERIFY_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9' || seq > (INT64_MAX - 9) / 10)
            return 0;
        seq = seq * 10 + (name[i] - '0');
    }
    return seq;
}

static int s_compare_files (const void *a, const void *b)
{
    int64_t x = ((const file_t *)a)->first_seq, y = ((const file_t *)b)->first_seq;
    return x < y ? -1 : x > y;
}

static int s_add (file_t **files, size_t *count, size_t *capacity, const char *path,
                  int64_t first_seq)
{
    if (*count == *capacity) {
        *capacity = *capacity ? *capacity * 2 : VERIFY_FILES_MIN;
        file_t *more = realloc (*files, *capacity * sizeof **files);
        if (!more)
            return -1;
        *files = more;
    }
    (*files)[*count].path = strdup (path);
    (*files)[*count].first_seq = first_seq;
    return (*files)[(*count)++].path ? 0 : -1;
}

//  The segments of folder, in seq order.
static int s_list (const char *folder, file_t **files, size_t *count, size_t *capacity)
{
    DIR *dir = opendir (folder);
    if (!dir)
        return -1;
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir (dir))) {
        int64_t seq = s_name_seq (entry->d_name);
        char path[VERIFY_PATH_BYTES];
        snprintf (path, sizeof path, "%s/%s", folder, entry->d_name);
        if (seq > 0)
            rc = s_add (files, count, capacity, path, seq);
    }
    closedir (dir);
    if (*count)
        qsort (*files, *count, sizeof **files, s_compare_files);
    return rc;
}

static bool s_is_dir (const char *path)
{
    struct stat status;
    return stat (path, &status) == 0 && S_ISDIR (status.st_mode);
}

//  The files PATH names, in order.
static int s_collect (const char *path, file_t **files, size_t *count)
{
    size_t capacity = 0;
    struct stat status;
    if (stat (path, &status))
        return -1;
    if (!S_ISDIR (status.st_mode)) {
        const char *name = strrchr (path, '/');
        return s_add (files, count, &capacity, path, s_name_seq (name ? name + 1 : path));
    }
    char folder[VERIFY_PATH_BYTES], legacy[VERIFY_PATH_BYTES];
    snprintf (folder, sizeof folder, "%s/events", path);
    snprintf (legacy, sizeof legacy, "%s/events.jsonl", path);
    if (s_list (s_is_dir (folder) ? folder : path, files, count, &capacity))
        return -1;
    if (*count == 0 && stat (legacy, &status) == 0)
        return s_add (files, count, &capacity, legacy, 0);
    if (*count == 0)
        errno = ENOENT;
    return *count ? 0 : -1;
}

//  The index beside a segment (<first seq>.idx): its last seq and chain
//  (*known false when it names none). 0, -1 if there is none, -2 if it
//  is not an index.
static int s_index (const char *segment_path, int64_t *last_seq, uint8_t *chain,
                    bool *known)
{
    char path[VERIFY_PATH_BYTES];
    size_t length = strlen (segment_path);
    if (length < 6 || length + 1 > sizeof path)
        return -1;
    snprintf (path, sizeof path, "%.*s.idx", (int)(length - 6), segment_path);
    FILE *file = fopen (path, "rb");
    if (!file)
        return -1;
    char *text = NULL;
    size_t capacity = 0;
    ssize_t bytes = getdelim (&text, &capacity, '\0', file);
    fclose (file);
    cJSON *json = bytes > 0 ? cJSON_ParseWithLength (text, (size_t)bytes) : NULL;
    free (text);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive (json, "last_seq");
    const cJSON *named = cJSON_GetObjectItemCaseSensitive (json, "chain");
    int rc = -2;
    if (cJSON_IsNumber (last) && (cJSON_IsNull (named) || cJSON_IsString (named))) {
        *last_seq = (int64_t)last->valuedouble;
        *known = cJSON_IsString (named);
        rc = *known && chain_from_hex (named->valuestring, strlen (named->valuestring),
                                       chain, CHAIN_BYTES)
                 ? -2
                 : 0;
    }
    cJSON_Delete (json);
    return rc;
}

//  {"seq":N, -> N; 0 if the line does not start so.
static int64_t s_line_seq (const char *line, size_t bytes)
{
    static const char prefix[] = "{\"seq\":";
    size_t at = sizeof prefix - 1;
    if (bytes <= at || memcmp (line, prefix, at))
        return 0;
    int64_t seq = 0;
    for (; at < bytes && line[at] >= '0' && line[at] <= '9'; at++) {
        if (seq > EVENT_SEQ_MAX / 10)
            return 0;
        seq = seq * 10 + (line[at] - '0');
    }
    return at < bytes && line[at] == ',' ? seq : 0;
}

//  The line's ts text into ts ("" if it has none where a stored line has it).
static void s_line_ts (const char *line, size_t bytes, char *ts)
{
    size_t window = bytes < VERIFY_TS_SEARCH_BYTES ? bytes : VERIFY_TS_SEARCH_BYTES;
    const char *key = memmem (line, window, VERIFY_TS_KEY, sizeof VERIFY_TS_KEY - 1);
    ts[0] = 0;
    if (key && (size_t)(key - line) + sizeof VERIFY_TS_KEY - 1 + EVENT_TS_BYTES <= bytes) {
        memcpy (ts, key + sizeof VERIFY_TS_KEY - 1, EVENT_TS_BYTES);
        ts[EVENT_TS_BYTES] = 0;
    }
}

//  The head given, at its seq: the same chain and ts.
static int s_check_head (verify_t *self, const char *line, size_t bytes, uint64_t offset)
{
    const chain_head_t *head = self->head;
    self->head_reached = true;
    char ts[EVENT_TS_BYTES + 1], hex[CHAIN_HEX_BYTES + 1], named[CHAIN_HEX_BYTES + 1];
    s_line_ts (line, bytes, ts);
    char head_ts[EVENT_TS_BYTES + 1];
    event_ts_format (head->ts_ms, head_ts);
    if (memcmp (self->chain, head->chain, CHAIN_BYTES) == 0 && strcmp (ts, head_ts) == 0)
        return 0;
    chain_to_hex (self->chain, hex);
    chain_to_hex (head->chain, named);
    return s_bad (self, head->seq, offset,
                  "the log's chain here is %s at ts %s, the head names %s at ts %s: a line "
                  "at or before this seq was changed, removed, added or moved",
                  hex, ts, named, head_ts);
}

static int s_line (verify_t *self, const char *line, size_t bytes, uint64_t offset)
{
    int64_t seq = s_line_seq (line, bytes), expected = self->seq + 1;
    if (seq != expected)
        return s_bad (self, expected, offset,
                      seq ? "the line here holds seq %" PRId64
                            " (a line was removed, added or moved)"
                          : "the line here does not start with {\"seq\":N, (%" PRId64 ")",
                      seq);
    uint8_t next[CHAIN_BYTES];
    if (chain_check (self->chain, line, bytes, next))
        return s_bad (self, seq, offset,
                      "its chain key does not follow from the lines before it: this line "
                      "or one before it was changed, removed, added or moved");
    memcpy (self->chain, next, CHAIN_BYTES);
    self->seq = seq;
    if (self->head && seq == self->head->seq)
        return s_check_head (self, line, bytes, offset);
    return 0;
}

//  The bytes after a file's last line, from buffer[start, have) (at file
//  offset) to its end: zeros, or a torn write (said on err).
static void s_tail (verify_t *self, int fd, char *buffer, size_t capacity, size_t start,
                    size_t have, uint64_t offset)
{
    bool zeros = true;
    for (;;) {
        for (size_t i = start; i < have && zeros; i++)
            zeros = buffer[i] == 0;
        ssize_t got = zeros ? read (fd, buffer, capacity) : 0;
        if (got <= 0)
            break;
        start = 0;
        have = (size_t)got;
    }
    if (!zeros)
        fprintf (self->err,
                 "stream --verify: %s: bytes after the last line at byte offset %" PRIu64
                 " without \\n (a torn write): not a line\n",
                 self->path, offset);
}

//  Every line of one file; its last line's ts is kept.
static int s_file (verify_t *self, const char *path, char *buffer, size_t capacity)
{
    self->path = path;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf (self->err, "stream --verify: open(\"%s\") failed: %s\n", path,
                 strerror (errno));
        return 2;
    }
    posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t base = 0; // file offset of buffer[0]
    size_t have = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read (fd, buffer + have, capacity - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf (self->err, "stream --verify: read(\"%s\") failed: %s\n", path,
                     strerror (errno));
            rc = 2;
            break;
        }
        have += (size_t)got;
        size_t start = 0;
        char *newline;
        const char *last = NULL;
        size_t last_bytes = 0;
        while (rc == 0 && (newline = memchr (buffer + start, '\n', have - start))) {
            size_t bytes = (size_t)(newline - buffer) - start;
            rc = s_line (self, buffer + start, bytes, base + start);
            last = buffer + start;
            last_bytes = bytes;
            start += bytes + 1;
        }
        if (last)
            s_line_ts (last, last_bytes, self->ts);
        self->bytes += start;
        if (rc)
            break;
        //  After the last \n: the open segment's preallocated zeros, or a
        //  torn write never acknowledged (a start drops it).
        if (got == 0 || (have > start && buffer[start] == 0)) {
            s_tail (self, fd, buffer, capacity, start, have, base + start);
            break;
        }
        memmove (buffer, buffer + start, have - start);
        have -= start;
        base += start;
        if (have == capacity) {
            rc = s_bad (self, self->seq + 1, base, "a line longer than %zu bytes",
                        capacity);
            break;
        }
    }
    close (fd);
    return rc;
}

//  A segment's index names the seq and chain its lines end on.
static int s_check_index (verify_t *self, const file_t *file)
{
    int64_t last_seq = 0;
    uint8_t chain[CHAIN_BYTES];
    bool known = false;
    int rc = s_index (file->path, &last_seq, chain, &known);
    if (rc == -1)
        return 0; // the open segment, or a copy of lines alone
    if (rc == -2 || last_seq != self->seq ||
        (known && memcmp (chain, self->chain, CHAIN_BYTES)))
        return s_bad (self, self->seq, 0,
                      "its index names another last seq (%" PRId64 ") or chain than its "
                      "lines end on",
                      last_seq);
    return 0;
}

//  Where a lone segment starting after seq 1 begins: the chain its
//  predecessor's index names (the index whose last seq is first_seq - 1).
static int s_start_from_index (verify_t *self, const file_t *file)
{
    char folder[VERIFY_PATH_BYTES];
    const char *slash = strrchr (file->path, '/');
    snprintf (folder, sizeof folder, "%.*s", slash ? (int)(slash - file->path) : 1,
              slash ? file->path : ".");
    file_t *files = NULL;
    size_t count = 0, capacity = 0;
    int rc = s_list (folder, &files, &count, &capacity);
    bool found = false;
    for (size_t i = 0; rc == 0 && i < count && !found; i++) {
        int64_t last_seq = 0;
        bool known = false;
        if (s_index (files[i].path, &last_seq, self->chain, &known) == 0 && known &&
            last_seq == file->first_seq - 1)
            found = true;
    }
    for (size_t i = 0; i < count; i++)
        free (files[i].path);
    free (files);
    if (!found) {
        fprintf (self->err,
                 "stream --verify: %s starts at seq %" PRId64
                 ": no index beside it names the chain before it (verify its folder)\n",
                 file->path, file->first_seq);
        return 2;
    }
    self->seq = file->first_seq - 1;
    return 0;
}

static int s_load_head (const verify_config_t *config, chain_head_t *head, FILE *err)
{
    FILE *file = fopen (config->head_path, "rb");
    char text[VERIFY_HEAD_BYTES_MAX];
    size_t bytes = file ? fread (text, 1, sizeof text, file) : 0;
    if (file)
        fclose (file);
    char reason[256];
    if (!file || chain_head_parse (text, bytes, head, reason, sizeof reason)) {
        fprintf (err, "stream --verify: --head %s: %s\n", config->head_path,
                 file ? reason : strerror (errno));
        return 2;
    }
    return 0;
}

//  The head's signature, under the key given or its own.
static int s_check_signature (verify_t *self, const verify_config_t *config)
{
    const chain_head_t *head = self->head;
    uint8_t key[CHAIN_PUBLIC_KEY_BYTES];
    if (config->public_key && chain_from_hex (config->public_key,
                                              strlen (config->public_key), key, sizeof key)) {
        fprintf (self->err, "stream --verify: --public-key: not 64 hex digits\n");
        return 2;
    }
    if (!head->is_signed && !config->public_key)
        return 0;
    if (chain_head_verify (head, config->public_key ? key : NULL)) {
        fprintf (self->err,
                 "stream --verify: seq %" PRId64 " (--head %s): %s\n", head->seq,
                 config->head_path,
                 !head->is_signed ? "the head is not signed"
                 : config->public_key
                     ? "the head is not signed with the key given (--public-key)"
                     : "the head's signature does not hold");
        return 1;
    }
    if (!config->public_key)
        fprintf (self->err,
                 "stream --verify: the head is signed with its own key: this proves the "
                 "log is the one that head was taken of, not who signed it "
                 "(--public-key)\n");
    return 0;
}

int verify_run (const verify_config_t *config, FILE *out, FILE *err)
{
    verify_t self = {.out = out, .err = err};
    chain_head_t head;
    if (config->head_path) {
        if (s_load_head (config, &head, err))
            return 2;
        self.head = &head;
        //  The empty log's head is every log's beginning.
        self.head_reached = head.seq == 0;
    }
    file_t *files = NULL;
    size_t count = 0;
    if (s_collect (config->path, &files, &count)) {
        fprintf (err, "stream --verify: %s: no log there (%s)\n", config->path,
                 strerror (errno));
        free (files);
        return 2;
    }
    size_t capacity = VERIFY_CHUNK_BYTES + EVENT_LINE_BYTES_MAX + 1;
    char *buffer = malloc (capacity);
    int rc = buffer ? 0 : 2;
    struct timespec started, ended;
    clock_gettime (CLOCK_MONOTONIC, &started);
    if (rc == 0 && count == 1 && files[0].first_seq > 1)
        rc = s_start_from_index (&self, &files[0]);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        rc = s_file (&self, files[i].path, buffer, capacity);
        if (rc == 0)
            rc = s_check_index (&self, &files[i]);
    }
    clock_gettime (CLOCK_MONOTONIC, &ended);
    if (rc == 0 && self.head && !self.head_reached) {
        fprintf (err,
                 "stream --verify: seq %" PRId64 " (--head %s): the log ends at seq %" PRId64
                 ", before the head: lines at its end were removed\n",
                 head.seq, config->head_path, self.seq);
        rc = 1;
    }
    if (rc == 0 && self.head)
        rc = s_check_signature (&self, config);
    if (rc == 0) {
        chain_head_t last = {.seq = self.seq};
        memcpy (last.chain, self.chain, CHAIN_BYTES);
        if (self.seq > 0 && event_ts_parse (self.ts, &last.ts_ms))
            last.ts_ms = 0;
        char json[CHAIN_HEAD_JSON_BYTES_MAX];
        chain_head_format (&last, json, sizeof json);
        fprintf (out, "%s\n", json);
        double seconds = (double)(ended.tv_sec - started.tv_sec) +
                         (double)(ended.tv_nsec - started.tv_nsec) / 1e9;
        fprintf (err,
                 "stream --verify: %" PRId64 " lines, %.1f MB in %zu file(s) checked in "
                 "%.3f s (%.0f MB/s)%s\n",
                 self.seq, (double)self.bytes / 1e6, count, seconds,
                 seconds > 0 ? (double)self.bytes / 1e6 / seconds : 0.0,
                 self.head ? "; the head is on the chain" : "");
    }
    for (size_t i = 0; i < count; i++)
        free (files[i].path);
    free (files);
    free (buffer);
    return rc;
}

static const char *s_usage =
    "Usage: stream --verify PATH [--head FILE] [--public-key HEX]\n"
    "Checks the tamper-evidence chain of a log: PATH is a stream or accounting\n"
    "data dir, a folder of segments or one log file; FILE a head as GET /head\n"
    "answers it; HEX the key the head must be signed with. Exit 0 with the last\n"
    "head on stdout, 1 naming the first line that does not hold, 2 on bad use.\n";

//  --name VALUE or --name=VALUE at argv[*i]; NULL if argv[*i] is not it.
static const char *s_value (int argc, char *argv[], int *i, const char *name)
{
    size_t length = strlen (name);
    if (strncmp (argv[*i], name, length))
        return NULL;
    if (argv[*i][length] == '=')
        return argv[*i] + length + 1;
    if (argv[*i][length] == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

bool verify_wanted (int argc, char *argv[])
{
    for (int i = 1; i < argc; i++)
        if ((strcmp (argv[i], "--verify") == 0 && i + 1 < argc && argv[i + 1][0] != '-') ||
            strncmp (argv[i], "--verify=", 9) == 0)
            return true;
    return false;
}

int verify_main (int argc, char *argv[])
{
    verify_config_t config = {0};
    for (int i = 1; i < argc; i++) {
        const char *value;
        if ((value = s_value (argc, argv, &i, "--verify")))
            config.path = value;
        else if ((value = s_value (argc, argv, &i, "--head")))
            config.head_path = value;
        else if ((value = s_value (argc, argv, &i, "--public-key")))
            config.public_key = value;
        else {
            fprintf (stderr, "stream --verify: unexpected argument \"%s\"\n%s", argv[i],
                     s_usage);
            return 2;
        }
    }
    if (!config.path) {
        fputs (s_usage, stderr);
        return 2;
    }
    return verify_run (&config, stdout, stderr);
}
