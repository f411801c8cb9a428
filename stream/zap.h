/*  zap — the stream's ZAP handler (ZeroMQ RFC 27): decides which CURVE
    keys may connect to which socket.

    czmq's zauth keeps one allow-list for every socket of a process; the
    stream needs two, so it answers ZAP itself: a REP socket bound to
    inproc://zeromq.zap.01 in the stream's own zloop. libzmq's I/O thread
    sends each handshake's request there and waits for the reply without
    blocking anything, so a single-threaded loop serves it.

    Each socket names its list by ZMQ_ZAP_DOMAIN: "ingest" (the PULL)
    allows the keys in CURVE_DIR/writers, "read" (PUB and ROUTER) those in
    CURVE_DIR/readers and CURVE_DIR/writers. Any other key is refused with
    status 400: libzmq closes that connection before a message passes.
    A folder is read again when its modification time changes (a file
    added, removed or renamed into place), so keys rotate without restart.
*/
#ifndef ZAP_H_INCLUDED
#define ZAP_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#define ZAP_DOMAIN_INGEST "ingest"
#define ZAP_DOMAIN_READ   "read"

typedef struct zap zap_t;

typedef struct {
    uint64_t allowed; // handshakes accepted
    uint64_t refused; // handshakes refused: unknown key, wrong list, bad request
} zap_stats_t;

//  Binds the handler and registers it with loop; reads the writers and
//  readers folders of curve_dir, which must exist (a bad file in them is
//  an error at start). Must be created before any CURVE socket is bound.
//  Returns NULL (logged) on failure.
zap_t *zap_new (zloop_t *loop, const char *curve_dir);
void zap_destroy (zap_t **self_p);

const zap_stats_t *zap_stats (zap_t *self);

#endif
