/*  zap — see zap.h. */
#include "zap.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "curve.h"
#include "log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
//  version, request id, domain, address, routing id, mechanism, key
#define ZAP_REQUEST_FRAMES 7
#define ZAP_KEY_BYTES      32
//  A refused client reconnects every 100 ms: one log line a second at
//  most, with the count of the refusals it stands for.
#define ZAP_REFUSAL_LOG_INTERVAL_MS 1000
//  A folder changed this recently may change again within the same tick
//  of the file system's clock, unseen by its time: read it again until
//  its time is this old.
#define ZAP_FOLDER_SETTLE_S 2

//  The keys allowed by one folder: public key text -> the name of its
//  file without ".key" (the ZAP user id).
typedef struct {
    char path[PATH_MAX];
    struct timespec mtime; // of the folder when it was last read
    bool settled;          // mtime was ZAP_FOLDER_SETTLE_S old when read
    zhashx_t *keys;
} zap_list_t;

struct zap {
    zloop_t *loop;
    zsock_t *handler;
    zap_list_t writers;
    zap_list_t readers;
    zap_stats_t stats;
    int64_t refusal_logged_ms;
    uint64_t refusals_unlogged;
};

//  Reads every *.key file of the list's folder. strict: a file that is
//  not a certificate fails the load (at start); otherwise it is skipped
//  with a warning. A folder that cannot be read allows nobody.
static int s_list_read (zap_list_t *list, bool strict)
{
    zhashx_t *keys = zhashx_new ();
    assert (keys);
    zhashx_set_destructor (keys, (zhashx_destructor_fn *)zstr_free);
    struct stat status;
    DIR *dir = stat (list->path, &status) ? NULL : opendir (list->path);
    int rc = dir ? 0 : -1;
    if (!dir)
        log_error ("zap: cannot read the folder \"%s\": %s; it allows no key", list->path,
                   strerror (errno));
    for (struct dirent *entry = dir ? readdir (dir) : NULL; entry;
         entry = readdir (dir)) {
        size_t bytes = strlen (entry->d_name);
        if (bytes <= 4 || strcmp (entry->d_name + bytes - 4, ".key"))
            continue;
        char path[PATH_MAX];
        char key[CURVE_KEY_TXT_BYTES + 1];
        if (snprintf (path, sizeof path, "%s/%s", list->path, entry->d_name) >=
                (int)sizeof path ||
            curve_public_key_load (path, key)) {
            rc = strict ? -1 : rc;
            continue;
        }
        zhashx_update (keys, key, zsys_sprintf ("%.*s", (int)bytes - 4, entry->d_name));
    }
    if (dir)
        closedir (dir);
    list->mtime = dir ? status.st_mtim : (struct timespec){0, 0};
    list->settled = dir && time (NULL) - status.st_mtim.tv_sec > ZAP_FOLDER_SETTLE_S;
    if (strict || !list->keys || zhashx_size (list->keys) != zhashx_size (keys))
        log_info ("zap: %zu key(s) allowed by %s", zhashx_size (keys), list->path);
    zhashx_destroy (&list->keys);
    list->keys = keys;
    return rc;
}

//  The list, read again if its folder changed since.
static zap_list_t *s_list_fresh (zap_list_t *list)
{
    struct stat status;
    if (!list->settled || stat (list->path, &status) ||
        status.st_mtim.tv_sec != list->mtime.tv_sec ||
        status.st_mtim.tv_nsec != list->mtime.tv_nsec)
        s_list_read (list, false);
    return list;
}

//  The user id of key (Z85) on domain, or NULL if it may not connect.
static const char *s_decide (zap_t *self, const char *domain, const char *key)
{
    const char *name =
        (const char *)zhashx_lookup (s_list_fresh (&self->writers)->keys, key);
    if (streq (domain, ZAP_DOMAIN_INGEST))
        return name;
    if (streq (domain, ZAP_DOMAIN_READ))
        return name ? name
                    : (const char *)zhashx_lookup (s_list_fresh (&self->readers)->keys,
                                                   key);
    return NULL;
}

static void s_log_refusal (zap_t *self, const char *domain, const char *address,
                           const char *key)
{
    int64_t now = zclock_mono ();
    if (self->refusal_logged_ms &&
        now - self->refusal_logged_ms < ZAP_REFUSAL_LOG_INTERVAL_MS) {
        self->refusals_unlogged++;
        return;
    }
    log_warn ("zap: refused key %s on \"%s\" from %s (%" PRIu64
              " other refusals since the last such line)",
              key, domain, address, self->refusals_unlogged);
    self->refusal_logged_ms = now;
    self->refusals_unlogged = 0;
}

//  One request in, one reply out: a REP socket must answer every request.
static int s_on_request (zloop_t *loop, zsock_t *reader, void *arg)
{
    zap_t *self = (zap_t *)arg;
    zmsg_t *request = zmsg_recv (reader);
    if (!request)
        return 0;
    zframe_t *frames[ZAP_REQUEST_FRAMES] = {NULL};
    bool well_formed = zmsg_size (request) == ZAP_REQUEST_FRAMES;
    for (size_t index = 0; well_formed && index < ZAP_REQUEST_FRAMES; index++)
        frames[index] = zmsg_pop (request);
    char domain[64] = "", address[64] = "", key[CURVE_KEY_TXT_BYTES + 1] = "";
    const char *user = NULL;
    if (well_formed && zframe_streq (frames[0], "1.0") &&
        zframe_streq (frames[5], "CURVE") && zframe_size (frames[6]) == ZAP_KEY_BYTES &&
        zframe_size (frames[2]) < sizeof domain &&
        zframe_size (frames[3]) < sizeof address) {
        memcpy (domain, zframe_data (frames[2]), zframe_size (frames[2]));
        memcpy (address, zframe_data (frames[3]), zframe_size (frames[3]));
        zmq_z85_encode (key, zframe_data (frames[6]), ZAP_KEY_BYTES);
        user = s_decide (self, domain, key);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (frames[1])
        zmsg_append (reply, &frames[1]);
    else
        zmsg_addstr (reply, "");
    zmsg_addstr (reply, user ? "200" : "400");
    zmsg_addstr (reply, user ? "OK" : "key not allowed");
    zmsg_addstr (reply, user ? user : "");
    zmsg_addmem (reply, NULL, 0); // no metadata
    zmsg_send (&reply, reader);
    if (user)
        self->stats.allowed++;
    else {
        self->stats.refused++;
        s_log_refusal (self, domain, address, key[0] ? key : "(no CURVE key)");
    }
    for (size_t index = 0; index < ZAP_REQUEST_FRAMES; index++)
        zframe_destroy (&frames[index]);
    zmsg_destroy (&request);
    return 0;
}

static int s_list_init (zap_list_t *list, const char *curve_dir, const char *name)
{
    if (snprintf (list->path, sizeof list->path, "%s/%s", curve_dir, name) >=
        (int)sizeof list->path) {
        log_error ("zap: the path \"%s\" is too long", curve_dir);
        return -1;
    }
    return s_list_read (list, true);
}

zap_t *zap_new (zloop_t *loop, const char *curve_dir)
{
    assert (loop && curve_dir);
    zap_t *self = (zap_t *)zmalloc (sizeof (zap_t));
    self->loop = loop;
    if (s_list_init (&self->writers, curve_dir, CURVE_WRITERS_DIR) ||
        s_list_init (&self->readers, curve_dir, CURVE_READERS_DIR))
        goto failed;
    self->handler = zsock_new (ZMQ_REP);
    if (!self->handler || zsock_bind (self->handler, ZAP_ENDPOINT) < 0) {
        log_error ("zap: zsock_bind (REP, \"%s\") failed: %s", ZAP_ENDPOINT,
                   zmq_strerror (zmq_errno ()));
        goto failed;
    }
    if (zloop_reader (loop, self->handler, s_on_request, self))
        goto failed;
    return self;
failed:
    zap_destroy (&self);
    return NULL;
}

void zap_destroy (zap_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zap_t *self = *self_p;
        if (self->handler)
            zloop_reader_end (self->loop, self->handler);
        zsock_destroy (&self->handler);
        zhashx_destroy (&self->writers.keys);
        zhashx_destroy (&self->readers.keys);
        free (self);
        *self_p = NULL;
    }
}

const zap_stats_t *zap_stats (zap_t *self)
{
    assert (self);
    return &self->stats;
}
