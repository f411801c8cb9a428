/*  test_curve — a --curve-dir is loaded only when every file it needs is a
    usable certificate, and the keys it applies make a CURVE connection to
    the pinned server and to no other.
*/
#include "curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

#define TEST_WAIT_MS 5000

static char s_root[64];

//  A folder under the test's root holding a new keypair as self.key(_secret)
//  and, if server is given, its public key as stream.key.
static void s_dir_make (const char *name, zcert_t *self, zcert_t *server)
{
    char path[256];
    snprintf (path, sizeof path, "%s/%s", s_root, name);
    zsys_dir_create ("%s", path);
    snprintf (path, sizeof path, "%s/%s/" CURVE_SELF_FILE, s_root, name);
    zcert_save (self, path);
    if (server) {
        snprintf (path, sizeof path, "%s/%s/" CURVE_SERVER_FILE, s_root, name);
        zcert_save_public (server, path);
    }
}

static curve_t *s_load (const char *name, bool with_server_key)
{
    char path[256];
    snprintf (path, sizeof path, "%s/%s", s_root, name);
    return curve_new (path, with_server_key);
}

static void s_write (const char *name, const char *file, const char *text)
{
    char path[256];
    snprintf (path, sizeof path, "%s/%s/%s", s_root, name, file);
    FILE *out = fopen (path, "w");
    fputs (text, out);
    fclose (out);
}

static void test_a_missing_or_damaged_file_is_refused (void)
{
    zcert_t *server = zcert_new (), *client = zcert_new (), *other = zcert_new ();
    s_dir_make ("good", client, server);
    curve_t *curve = s_load ("good", true);
    CHECK (curve && streq (curve_public_txt (curve), zcert_public_txt (client)));
    curve_destroy (&curve);
    CHECK (curve == NULL);
    CHECK (s_load ("nowhere", false) == NULL);
    s_dir_make ("no-stream-key", client, NULL);
    CHECK ((curve = s_load ("no-stream-key", false)) != NULL); // the stream needs none
    curve_destroy (&curve);
    CHECK (s_load ("no-stream-key", true) == NULL);
    s_dir_make ("short-key", client, server);
    s_write ("short-key", CURVE_SERVER_FILE, "curve\n    public-key = \"abc\"\n");
    CHECK (s_load ("short-key", true) == NULL);
    s_dir_make ("not-z85", client, server);
    s_write ("not-z85", CURVE_SERVER_FILE,
             "curve\n    public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n");
    CHECK (s_load ("not-z85", true) == NULL);
    //  The secret key of one keypair beside the public key of another.
    s_dir_make ("mismatched", client, server);
    char text[256];
    snprintf (text, sizeof text,
              "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
              zcert_public_txt (client), zcert_secret_txt (other));
    s_write ("mismatched", CURVE_SELF_FILE "_secret", text);
    CHECK (s_load ("mismatched", true) == NULL);
    s_dir_make ("public-only", client, server);
    char path[256];
    snprintf (path, sizeof path, "%s/public-only/" CURVE_SELF_FILE "_secret", s_root);
    unlink (path);
    CHECK (s_load ("public-only", true) == NULL);
    zcert_destroy (&server);
    zcert_destroy (&client);
    zcert_destroy (&other);
}

//  True when pull receives "hello" from push within TEST_WAIT_MS.
static bool s_delivers (zsock_t *pull, zsock_t *push)
{
    zstr_send (push, "hello");
    zpoller_t *poller = zpoller_new (pull, NULL);
    bool delivered = zpoller_wait (poller, TEST_WAIT_MS) == pull;
    if (delivered) {
        char *text = zstr_recv (pull);
        delivered = text && streq (text, "hello");
        zstr_free (&text);
    }
    zpoller_destroy (&poller);
    return delivered;
}

//  No ZAP handler here: libzmq lets every client key in, so this is the
//  server key pinning alone.
static void test_a_client_talks_to_the_pinned_server_only (void)
{
    zcert_t *server = zcert_new (), *client = zcert_new (), *impostor = zcert_new ();
    s_dir_make ("server", server, NULL);
    s_dir_make ("impostor", impostor, NULL);
    s_dir_make ("client", client, server);
    curve_t *server_curve = s_load ("server", false);
    curve_t *impostor_curve = s_load ("impostor", false);
    curve_t *client_curve = s_load ("client", true);
    CHECK (server_curve && impostor_curve && client_curve);
    zsock_t *servers[2] = {zsock_new (ZMQ_PULL), zsock_new (ZMQ_PULL)};
    curve_apply_server (server_curve, servers[0], "ingest");
    curve_apply_server (impostor_curve, servers[1], "ingest");
    zsock_t *pushes[2];
    for (int index = 0; index < 2; index++) {
        int port = zsock_bind (servers[index], "tcp://127.0.0.1:*");
        pushes[index] = zsock_new (ZMQ_PUSH);
        zsock_set_sndtimeo (pushes[index], 0);
        curve_apply_client (client_curve, pushes[index]);
        zsock_connect (pushes[index], "tcp://127.0.0.1:%d", port);
    }
    CHECK (s_delivers (servers[0], pushes[0]));
    CHECK (!s_delivers (servers[1], pushes[1]));
    for (int index = 0; index < 2; index++) {
        zsock_destroy (&pushes[index]);
        zsock_destroy (&servers[index]);
    }
    curve_destroy (&server_curve);
    curve_destroy (&impostor_curve);
    curve_destroy (&client_curve);
    zcert_destroy (&server);
    zcert_destroy (&client);
    zcert_destroy (&impostor);
}

int main (void)
{
    log_init ("test_curve", LOG_ERROR);
    snprintf (s_root, sizeof s_root, "/tmp/test_curve.XXXXXX");
    if (!mkdtemp (s_root))
        return 1;
    RUN (test_a_missing_or_damaged_file_is_refused);
    RUN (test_a_client_talks_to_the_pinned_server_only);
    zdir_t *dir = zdir_new (s_root, NULL);
    zdir_remove (dir, true);
    zdir_destroy (&dir);
    return check_exit_status ();
}
