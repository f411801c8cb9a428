/*  curve — the ZeroMQ CURVE keys of a service, from its --curve-dir.

    The folder holds czmq certificates (zcert text files, as zcert_save
    writes them): self.key and self.key_secret, the service's own keypair,
    and on a client (transaction, accounting) stream.key, the stream's
    public certificate. A client pins that key, so a fake stream cannot
    feed it; the stream checks its clients' keys through ZAP (stream/zap.h).

    Every file is checked when it is loaded: a missing or damaged file, or
    a secret key that does not match its public key, is refused with a log
    line naming the file, so a service stops at start (exit 1) instead of
    failing every handshake later.
*/
#ifndef CURVE_H_INCLUDED
#define CURVE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

//  The file names inside a --curve-dir.
#define CURVE_SELF_FILE     "self.key"   // and self.key_secret beside it
#define CURVE_SERVER_FILE   "stream.key" // clients only: the stream's public key
#define CURVE_WRITERS_DIR   "writers"    // stream only: keys that may APPEND
#define CURVE_READERS_DIR   "readers"    // stream only: keys that may read
#define CURVE_KEY_TXT_BYTES 40           // Z85 text of a 32-byte key

typedef struct curve curve_t;

//  Loads dir's own keypair and, when with_server_key, its stream.key.
//  Returns NULL (logged) when a file is missing or bad.
curve_t *curve_new (const char *dir, bool with_server_key);
void curve_destroy (curve_t **self_p);

//  Makes sock a CURVE server with the own keypair, its clients checked
//  by ZAP under zap_domain. Call before binding.
void curve_apply_server (const curve_t *self, zsock_t *sock, const char *zap_domain);

//  Makes sock a CURVE client with the own keypair that accepts only the
//  pinned server key. Call before connecting.
void curve_apply_client (const curve_t *self, zsock_t *sock);

//  The own public key, Z85 text (borrowed).
const char *curve_public_txt (const curve_t *self);

//  Reads the public key of the certificate at path into key_txt (Z85,
//  NUL-terminated). Returns 0, or -1 (logged) when the file is missing
//  or is not a certificate.
int curve_public_key_load (const char *path, char key_txt[CURVE_KEY_TXT_BYTES + 1]);

#endif
