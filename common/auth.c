/*  auth — see auth.h. */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

#define AUTH_FIELDS 4 // NAME SCOPES ACCOUNTS SHA256

struct auth {
    char *path;
    auth_principal_t *principals;
    size_t count;
    //  Open addressing over the digests' first bytes (uniform: they are
    //  SHA-256), principal index + 1 per slot (0: empty), at most half full.
    uint32_t *slots;
    size_t slot_mask;
    zloop_t *loop; // set by auth_watch
    int signal_fd; // SIGHUP; -1 when not watching
    zmq_pollitem_t poll_item;
    uint64_t reloads, reload_failures;
};

static int s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int s_fail (char *error, size_t error_size, const char *format, ...)
{
    if (error && error_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (error, error_size, format, args);
        va_end (args);
    }
    return -1;
}

static int s_parse_scopes (const char *text, size_t bytes, unsigned *scopes, char *error,
                           size_t error_size)
{
    static const struct {
        const char *name;
        unsigned scope;
    } known[] = {{"write", AUTH_SCOPE_WRITE},
                 {"read", AUTH_SCOPE_READ},
                 {"metrics", AUTH_SCOPE_METRICS},
                 {"admin", AUTH_SCOPE_ADMIN}};
    *scopes = 0;
    const char *end = text + bytes;
    for (const char *item = text;;) {
        const char *comma = memchr (item, ',', (size_t)(end - item));
        const char *item_end = comma ? comma : end;
        size_t item_bytes = (size_t)(item_end - item);
        unsigned scope = 0;
        for (size_t index = 0; index < sizeof known / sizeof known[0]; index++)
            if (strlen (known[index].name) == item_bytes &&
                memcmp (known[index].name, item, item_bytes) == 0)
                scope = known[index].scope;
        if (!scope)
            return s_fail (error, error_size,
                           "scopes: '%.*s' is not one of write, read, metrics, admin",
                           (int)(item_bytes > 32 ? 32 : item_bytes), item);
        *scopes |= scope;
        if (!comma)
            return 0;
        item = comma + 1;
    }
}

static int s_parse_accounts (const char *text, size_t bytes, auth_principal_t *principal,
                             char *error, size_t error_size)
{
    static const char rule[] =
        "accounts: must be *, a prefix ending in * or one account id";
    principal->is_prefix = bytes > 0 && text[bytes - 1] == '*';
    size_t id_bytes = principal->is_prefix ? bytes - 1 : bytes;
    if (principal->is_prefix && id_bytes == 0) {
        principal->accounts[0] = '\0'; // "*"
        principal->is_prefix = false;
        return 0;
    }
    //  A prefix is the start of a valid id, so it obeys the id pattern too.
    if (!event_id_is_valid (text, id_bytes))
        return s_fail (error, error_size, "%s", rule);
    memcpy (principal->accounts, text, id_bytes);
    principal->accounts[id_bytes] = '\0';
    return 0;
}

//  One non-comment line's fields into principal.
static int s_parse_line (const char *line, size_t bytes, auth_principal_t *principal,
                         char *error, size_t error_size)
{
    const char *starts[AUTH_FIELDS];
    size_t lengths[AUTH_FIELDS];
    size_t count = 0;
    const char *end = line + bytes;
    for (const char *cursor = line; cursor < end;) {
        while (cursor < end && (*cursor == ' ' || *cursor == '\t'))
            cursor++;
        if (cursor == end)
            break;
        const char *start = cursor;
        while (cursor < end && *cursor != ' ' && *cursor != '\t')
            cursor++;
        if (count == AUTH_FIELDS)
            return s_fail (error, error_size,
                           "more than 4 fields (NAME SCOPES ACCOUNTS SHA256)");
        starts[count] = start;
        lengths[count] = (size_t)(cursor - start);
        count++;
    }
    if (count != AUTH_FIELDS)
        return s_fail (error, error_size,
                       "expected 4 fields (NAME SCOPES ACCOUNTS "
                       "SHA256)");
    if (!event_principal_is_valid (starts[0], lengths[0]))
        return s_fail (error, error_size, "name: must match ^[a-z][a-z0-9_.-]{0,63}$");
    memcpy (principal->name, starts[0], lengths[0]);
    principal->name[lengths[0]] = '\0';
    if (s_parse_scopes (starts[1], lengths[1], &principal->scopes, error, error_size) ||
        s_parse_accounts (starts[2], lengths[2], principal, error, error_size))
        return -1;
    size_t hash_bytes = 0;
    const char *hex_end = NULL;
    if (lengths[3] != 2 * AUTH_HASH_BYTES ||
        sodium_hex2bin (principal->hash, sizeof principal->hash, starts[3], lengths[3],
                        NULL, &hash_bytes, &hex_end) != 0 ||
        hash_bytes != AUTH_HASH_BYTES || hex_end != starts[3] + lengths[3])
        return s_fail (error, error_size, "sha256: must be 64 hex digits");
    return 0;
}

//  Refuses a name or a hash given twice: a token must name one principal.
static int s_check_unique (const auth_principal_t *principals, size_t count, char *error,
                           size_t error_size)
{
    const auth_principal_t *last = &principals[count - 1];
    for (size_t index = 0; index + 1 < count; index++) {
        if (strcmp (principals[index].name, last->name) == 0)
            return s_fail (error, error_size, "name: %s is already given", last->name);
        if (memcmp (principals[index].hash, last->hash, AUTH_HASH_BYTES) == 0)
            return s_fail (error, error_size, "sha256: the same token as %s",
                           principals[index].name);
    }
    return 0;
}

static int s_parse (const char *text, size_t bytes, auth_principal_t **principals_p,
                    size_t *count_p, char *error, size_t error_size)
{
    auth_principal_t *principals = NULL;
    size_t count = 0, capacity = 0, number = 0;
    char reason[160];
    const char *end = text + bytes;
    for (const char *line = text; line < end; number++) {
        const char *newline = memchr (line, '\n', (size_t)(end - line));
        const char *line_end = newline ? newline : end;
        const char *next = newline ? newline + 1 : end;
        if (line_end > line && line_end[-1] == '\r')
            line_end--;
        const char *first = line;
        while (first < line_end && (*first == ' ' || *first == '\t'))
            first++;
        if (memchr (line, '\0', (size_t)(line_end - line))) {
            s_fail (reason, sizeof reason, "a NUL byte");
            goto failed;
        }
        if (first == line_end || *first == '#') {
            line = next;
            continue;
        }
        if (count == AUTH_PRINCIPALS_MAX) {
            s_fail (reason, sizeof reason, "more than %d principals",
                    AUTH_PRINCIPALS_MAX);
            goto failed;
        }
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            auth_principal_t *grown = realloc (principals, capacity * sizeof *grown);
            if (!grown) {
                s_fail (reason, sizeof reason, "out of memory");
                goto failed;
            }
            principals = grown;
        }
        memset (&principals[count], 0, sizeof principals[count]);
        if (s_parse_line (first, (size_t)(line_end - first), &principals[count], reason,
                          sizeof reason))
            goto failed;
        count++;
        if (s_check_unique (principals, count, reason, sizeof reason))
            goto failed;
        line = next;
    }
    *principals_p = principals;
    *count_p = count;
    return 0;
failed:
    sodium_memzero (principals, capacity * sizeof *principals);
    free (principals);
    return s_fail (error, error_size, "line %zu: %s", number + 1, reason);
}

static size_t s_slot_of (const uint8_t *hash, size_t mask)
{
    uint64_t word;
    memcpy (&word, hash, sizeof word);
    return (size_t)word & mask;
}

//  The index of count principals (caller frees), *mask_p its size - 1.
static uint32_t *s_index_new (const auth_principal_t *principals, size_t count,
                              size_t *mask_p)
{
    size_t slot_count = 4;
    while (slot_count < 2 * count)
        slot_count *= 2;
    uint32_t *slots = calloc (slot_count, sizeof *slots);
    if (!slots)
        return NULL;
    size_t mask = slot_count - 1;
    for (size_t index = 0; index < count; index++) {
        size_t slot = s_slot_of (principals[index].hash, mask);
        while (slots[slot])
            slot = (slot + 1) & mask;
        slots[slot] = (uint32_t)(index + 1);
    }
    *mask_p = mask;
    return slots;
}

//  The whole file, NUL-terminated (caller frees), or NULL with a reason.
static char *s_read_file (const char *path, size_t *bytes_p, char *error,
                          size_t error_size)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        s_fail (error, error_size, "cannot open: %s", strerror (errno));
        return NULL;
    }
    char *text = malloc (AUTH_FILE_BYTES_MAX + 1);
    size_t bytes = text ? fread (text, 1, AUTH_FILE_BYTES_MAX + 1, file) : 0;
    bool failed = !text || ferror (file);
    fclose (file);
    if (failed || bytes > AUTH_FILE_BYTES_MAX) {
        s_fail (error, error_size, failed ? "cannot read it" : "larger than %d bytes",
                AUTH_FILE_BYTES_MAX);
        free (text);
        return NULL;
    }
    text[bytes] = '\0';
    *bytes_p = bytes;
    return text;
}

auth_t *auth_new (const char *path, char *error, size_t error_size)
{
    assert (path);
    if (sodium_init () < 0) {
        s_fail (error, error_size, "sodium_init failed");
        return NULL;
    }
    auth_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->signal_fd = -1;
    self->path = strdup (path);
    if (!self->path || auth_reload (self, error, error_size)) {
        auth_destroy (&self);
        return NULL;
    }
    return self;
}

//  SIGHUP stays blocked: a SIGHUP after this would otherwise end the
//  process, which is not what a reload signal should do late in a stop.
static void s_unwatch (auth_t *self)
{
    if (self->signal_fd < 0)
        return;
    zloop_poller_end (self->loop, &self->poll_item);
    close (self->signal_fd);
    self->signal_fd = -1;
}

void auth_destroy (auth_t **self_p)
{
    assert (self_p);
    auth_t *self = *self_p;
    if (!self)
        return;
    s_unwatch (self);
    if (self->principals)
        sodium_memzero (self->principals, self->count * sizeof *self->principals);
    free (self->principals);
    free (self->slots);
    free (self->path);
    free (self);
    *self_p = NULL;
}

int auth_load_text (auth_t *self, const char *text, size_t bytes, char *error,
                    size_t error_size)
{
    assert (self);
    auth_principal_t *principals = NULL;
    size_t count = 0;
    if (s_parse (text, bytes, &principals, &count, error, error_size))
        return -1;
    size_t mask = 0;
    uint32_t *slots = s_index_new (principals, count, &mask);
    if (!slots) {
        sodium_memzero (principals, count * sizeof *principals);
        free (principals);
        return s_fail (error, error_size, "out of memory");
    }
    if (self->principals)
        sodium_memzero (self->principals, self->count * sizeof *self->principals);
    free (self->principals);
    free (self->slots);
    self->principals = principals;
    self->count = count;
    self->slots = slots;
    self->slot_mask = mask;
    return 0;
}

int auth_reload (auth_t *self, char *error, size_t error_size)
{
    assert (self);
    size_t bytes = 0;
    char *text = s_read_file (self->path, &bytes, error, error_size);
    if (!text)
        return -1;
    int rc = auth_load_text (self, text, bytes, error, error_size);
    free (text);
    return rc;
}

size_t auth_count (auth_t *self)
{
    assert (self);
    return self->count;
}

const auth_principal_t *auth_lookup (auth_t *self, const char *token, size_t bytes)
{
    assert (self);
    uint8_t hash[AUTH_HASH_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *)token, bytes);
    //  The probe run depends on the presented token's digest only, never on
    //  which line it matches; each candidate is compared in constant time.
    const auth_principal_t *found = NULL;
    size_t slot = s_slot_of (hash, self->slot_mask);
    for (; self->slots[slot] && !found; slot = (slot + 1) & self->slot_mask) {
        const auth_principal_t *candidate = &self->principals[self->slots[slot] - 1];
        if (sodium_memcmp (hash, candidate->hash, AUTH_HASH_BYTES) == 0)
            found = candidate;
    }
    sodium_memzero (hash, sizeof hash);
    return found;
}

static int s_on_hup (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    auth_t *self = (auth_t *)arg;
    struct signalfd_siginfo info;
    while (read (self->signal_fd, &info, sizeof info) == (ssize_t)sizeof info)
        ;
    self->reloads++;
    char error[256];
    if (auth_reload (self, error, sizeof error) == 0)
        log_info ("SIGHUP: %s reloaded: %zu principals", self->path, self->count);
    else {
        self->reload_failures++;
        log_error ("SIGHUP: %s refused: %s; keeping the %zu principals in use",
                   self->path, error, self->count);
    }
    return 0;
}

//  A signalfd, not a handler: a handled signal interrupts zmq_poll, and
//  zloop ends on any interruption. libzmq's threads block every signal,
//  so with SIGHUP blocked here too it stays pending for the signalfd.
int auth_watch (auth_t *self, zloop_t *loop)
{
    assert (self && loop);
    assert (self->signal_fd < 0);
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGHUP);
    if (pthread_sigmask (SIG_BLOCK, &set, NULL) != 0) {
        log_error ("auth: pthread_sigmask (SIG_BLOCK, SIGHUP) failed");
        return -1;
    }
    self->signal_fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (self->signal_fd < 0) {
        log_error ("auth: signalfd (SIGHUP) failed: %s", strerror (errno));
        return -1;
    }
    self->loop = loop;
    self->poll_item = (zmq_pollitem_t){.fd = self->signal_fd, .events = ZMQ_POLLIN};
    if (zloop_poller (loop, &self->poll_item, s_on_hup, self)) {
        log_error ("auth: zloop_poller (signalfd) failed");
        close (self->signal_fd);
        self->signal_fd = -1;
        return -1;
    }
    return 0;
}

uint64_t auth_reloads (auth_t *self)
{
    assert (self);
    return self->reloads;
}

uint64_t auth_reload_failures (auth_t *self)
{
    assert (self);
    return self->reload_failures;
}

bool auth_principal_allows (const auth_principal_t *self, unsigned scope)
{
    if (scope == AUTH_SCOPE_OPEN)
        return true;
    return self && (self->scopes & (scope | AUTH_SCOPE_ADMIN)) != 0;
}

bool auth_principal_allows_account (const auth_principal_t *self, const char *id)
{
    if (!self || self->accounts[0] == '\0')
        return true;
    if (self->is_prefix)
        return strncmp (id, self->accounts, strlen (self->accounts)) == 0;
    return strcmp (id, self->accounts) == 0;
}

bool auth_principal_sees_all (const auth_principal_t *self)
{
    return !self || self->accounts[0] == '\0';
}
