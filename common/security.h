/*  security — the credentials options every service shares, and the rule
    that ties them to where a service listens.

    Each service embeds one security_config_t, lets security_option_parse
    take the five shared options out of its getopt_long loop, and calls
    security_check_exposure before it opens anything: an HTTP address or
    a ZeroMQ endpoint beyond loopback needs credentials (--auth-file for
    HTTP, --curve-dir for ZeroMQ) unless --insecure says otherwise.
*/
#ifndef SECURITY_H_INCLUDED
#define SECURITY_H_INCLUDED

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

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

//  getopt_long ids of the shared options; services number their own below.
enum {
    SECURITY_OPT_AUTH_FILE = 2000,
    SECURITY_OPT_TLS_CERT,
    SECURITY_OPT_TLS_KEY,
    SECURITY_OPT_CURVE_DIR,
    SECURITY_OPT_INSECURE,
    SECURITY_OPT_BODY_BUFFER_BYTES_MAX,
};

//  The entries to put into a service's struct option table.
#define SECURITY_LONG_OPTIONS                                                            \
    {"auth-file", required_argument, NULL, SECURITY_OPT_AUTH_FILE},                      \
        {"tls-cert", required_argument, NULL, SECURITY_OPT_TLS_CERT},                    \
        {"tls-key", required_argument, NULL, SECURITY_OPT_TLS_KEY},                      \
        {"curve-dir", required_argument, NULL, SECURITY_OPT_CURVE_DIR},                  \
        {"insecure", no_argument, NULL, SECURITY_OPT_INSECURE},                          \
    {                                                                                    \
        "body-buffer-bytes-max", required_argument, NULL,                                \
            SECURITY_OPT_BODY_BUFFER_BYTES_MAX                                           \
    }

//  The --help lines of the shared options.
extern const char *security_usage;

//  Takes a shared option. Returns 1 when option was one of them, 0 when
//  it is not (the caller handles it).
int security_option_parse (security_config_t *self, int option, const char *value);

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
