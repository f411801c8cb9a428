/*  security — the credentials options every service shares, and the rule
    that ties them to where a service listens.

    Each service embeds one security_config_t, puts the shared options
    (SECURITY_CONFIG_OPTIONS) into its option table, and calls
    security_check_exposure before it opens anything: an HTTP address or
    a ZeroMQ endpoint beyond loopback needs credentials (--auth-file for
    HTTP, --curve-dir for ZeroMQ) unless --insecure says otherwise.
*/
#ifndef SECURITY_H_INCLUDED
#define SECURITY_H_INCLUDED

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

typedef struct {
    const char *auth_file; // --auth-file: principals and token hashes; NULL: no tokens
    const char *tls_cert;  // --tls-cert: PEM certificate chain; NULL: plain HTTP
    const char *tls_key;   // --tls-key: PEM private key of tls_cert
    const char *curve_dir; // --curve-dir: zcert files; NULL: no CURVE
    bool insecure;         // --insecure: allow exposure without credentials
    //  --body-buffer-bytes-max: request bodies one HTTP server holds at
    //  once; 0: HTTP_BODY_BUFFER_BYTES_MAX_DEFAULT. Its text until checked.
    const char *body_buffer_bytes_text;
    size_t body_buffer_bytes_max;
} security_config_t;

//  The shared options' entries in a service's option table (config.h);
//  field: the security_config_t in the service's options struct.
#define SECURITY_CONFIG_OPTIONS(type, field)                                             \
    CONFIG_TEXT ("auth-file", "FILE", CONFIG_FIELD (type, field.auth_file), NULL,        \
                 "bearer tokens: NAME SCOPES ACCOUNTS SHA256 a line (%s)"),              \
        CONFIG_TEXT ("tls-cert", "FILE", CONFIG_FIELD (type, field.tls_cert), NULL,      \
                     "serve HTTPS with this PEM certificate (with --tls-key)"),          \
        CONFIG_TEXT ("tls-key", "FILE", CONFIG_FIELD (type, field.tls_key), NULL,        \
                     "the PEM private key of --tls-cert"),                               \
        CONFIG_TEXT ("curve-dir", "DIR", CONFIG_FIELD (type, field.curve_dir), NULL,     \
                     "ZeroMQ CURVE certificates of this service (%s)"),                  \
        CONFIG_FLAG ("insecure", CONFIG_FIELD (type, field.insecure),                    \
                     "allow non-loopback endpoints without credentials"),                \
        CONFIG_TEXT ("body-buffer-bytes-max", "N",                                       \
                     CONFIG_FIELD (type, field.body_buffer_bytes_text), NULL,            \
                     "request bodies held at once over all HTTP\n"                       \
                     "connections; beyond, 503 (64 MiB)")

//  After parsing: --tls-cert and --tls-key go together, and
//  --body-buffer-bytes-max is a number of bytes (at least 64 KiB). Returns 0, or -1
//  with a message on stderr naming service.
int security_options_check (security_config_t *self, const char *service);

//  True for 127.0.0.0/8, ::1 and "localhost".
bool security_address_is_loopback (const char *address);
//  True for tcp:// endpoints on a loopback address, and for ipc:// and
//  inproc://, which never leave the host.
bool security_endpoint_is_loopback (const char *endpoint);

//  Checks that every HTTP address (NULL-terminated http_addresses) is
//  loopback or has --auth-file, and every ZeroMQ endpoint (NULL-terminated)
//  is loopback or has --curve-dir. Returns 0, or -1 after printing to
//  stderr the endpoint and the flag that is missing (exit status 2).
//  With --insecure it returns 0 and logs a warning instead.
int security_check_exposure (const security_config_t *self, const char *service,
                             const char *const *http_addresses,
                             const char *const *zmq_endpoints);

#endif
