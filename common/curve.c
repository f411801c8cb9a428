/*  curve — see curve.h. */
#include "curve.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct curve {
    zcert_t *cert;                            // own keypair
    char server_key[CURVE_KEY_TXT_BYTES + 1]; // pinned stream key; "" on the stream
};

static bool s_key_txt_valid (const char *text)
{
    uint8_t key[32];
    return text && strlen (text) == CURVE_KEY_TXT_BYTES &&
           zmq_z85_decode (key, text) != NULL;
}

//  Reads the certificate file at path and checks its keys: a public key,
//  and with want_secret a secret key whose public key it is. Copies the
//  public key's text to public_txt. zcert_load decodes without checking,
//  so a damaged file would only show as failing handshakes.
static int s_file_check (const char *path, bool want_secret,
                         char public_txt[CURVE_KEY_TXT_BYTES + 1])
{
    struct stat status;
    if (stat (path, &status)) {
        log_error ("curve: cannot open the certificate \"%s\": %s", path,
                   strerror (errno));
        return -1;
    }
    if (want_secret && (status.st_mode & 077))
        log_warn ("curve: \"%s\" holds a secret key and others may read it (mode %o)",
                  path, (unsigned)(status.st_mode & 0777));
    zconfig_t *config = zconfig_load (path);
    const char *public_key =
        config ? zconfig_get (config, "curve/public-key", NULL) : NULL;
    const char *secret_key =
        config ? zconfig_get (config, "curve/secret-key", NULL) : NULL;
    const char *problem = NULL;
    char derived[CURVE_KEY_TXT_BYTES + 1] = "";
    if (!s_key_txt_valid (public_key))
        problem = "no valid curve/public-key (40 Z85 characters)";
    else if (want_secret && !s_key_txt_valid (secret_key))
        problem = "no valid curve/secret-key (40 Z85 characters)";
    else if (want_secret &&
             (zmq_curve_public (derived, secret_key) || strcmp (derived, public_key)))
        problem = "its secret key does not belong to its public key";
    else
        memcpy (public_txt, public_key, CURVE_KEY_TXT_BYTES + 1);
    zconfig_destroy (&config);
    if (problem) {
        log_error ("curve: \"%s\" is not a usable zcert certificate: %s", path, problem);
        return -1;
    }
    return 0;
}

int curve_public_key_load (const char *path, char key_txt[CURVE_KEY_TXT_BYTES + 1])
{
    return s_file_check (path, false, key_txt);
}

curve_t *curve_new (const char *dir, bool with_server_key)
{
    assert (dir);
    curve_t *self = (curve_t *)zmalloc (sizeof (curve_t));
    char path[PATH_MAX];
    char secret_path[PATH_MAX];
    char public_txt[CURVE_KEY_TXT_BYTES + 1];
    if (snprintf (path, sizeof path, "%s/" CURVE_SELF_FILE, dir) >= (int)sizeof path ||
        snprintf (secret_path, sizeof secret_path, "%s/" CURVE_SELF_FILE "_secret",
                  dir) >= (int)sizeof secret_path) {
        log_error ("curve: the path \"%s\" is too long", dir);
        goto failed;
    }
    if (s_file_check (secret_path, true, public_txt))
        goto failed;
    //  zcert_load reads path + "_secret" first: the keypair just checked.
    self->cert = zcert_load (path);
    if (!self->cert || strcmp (zcert_public_txt (self->cert), public_txt)) {
        log_error ("curve: zcert_load (\"%s\") failed", path);
        goto failed;
    }
    if (with_server_key) {
        if (snprintf (path, sizeof path, "%s/" CURVE_SERVER_FILE, dir) >=
                (int)sizeof path ||
            curve_public_key_load (path, self->server_key))
            goto failed;
    }
    log_info ("curve: own public key %s%s%s", public_txt,
              with_server_key ? ", stream key " : "", self->server_key);
    return self;
failed:
    curve_destroy (&self);
    return NULL;
}

void curve_destroy (curve_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zcert_destroy (&(*self_p)->cert);
        free (*self_p);
        *self_p = NULL;
    }
}

void curve_apply_server (const curve_t *self, zsock_t *sock, const char *zap_domain)
{
    assert (self && sock && zap_domain);
    zcert_apply (self->cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, zap_domain);
}

void curve_apply_client (const curve_t *self, zsock_t *sock)
{
    assert (self && sock && self->server_key[0]);
    zcert_apply (self->cert, sock);
    zsock_set_curve_serverkey (sock, self->server_key);
}

const char *curve_public_txt (const curve_t *self)
{
    assert (self);
    return zcert_public_txt (self->cert);
}
