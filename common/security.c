/*  security — see security.h. */
#include "security.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

//  One command body (64 KiB) must always fit.
#define SECURITY_BODY_BUFFER_BYTES_MIN (64 * 1024)

int security_options_check (security_config_t *self, const char *service)
{
    if (!self->tls_cert != !self->tls_key) {
        fprintf (stderr, "%s: %s needs %s\n", service,
                 self->tls_cert ? "--tls-cert" : "--tls-key",
                 self->tls_cert ? "--tls-key" : "--tls-cert");
        return -1;
    }
    const char *text = self->body_buffer_bytes_text;
    if (text) {
        char *end = NULL;
        errno = 0;
        unsigned long long bytes = strtoull (text, &end, 10);
        if (*text < '0' || *text > '9' || errno || *end ||
            bytes < SECURITY_BODY_BUFFER_BYTES_MIN || bytes > SIZE_MAX / 2) {
            fprintf (stderr,
                     "%s: --body-buffer-bytes-max must be a number of bytes from %d\n",
                     service, SECURITY_BODY_BUFFER_BYTES_MIN);
            return -1;
        }
        self->body_buffer_bytes_max = (size_t)bytes;
    }
    return 0;
}

bool security_address_is_loopback (const char *address)
{
    if (!address)
        return false;
    if (strcmp (address, "localhost") == 0)
        return true;
    struct in_addr v4;
    if (inet_pton (AF_INET, address, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (inet_pton (AF_INET6, address, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK (&v6);
    return false;
}

//  "tcp://HOST:PORT" or "tcp://[V6]:PORT"; a connect endpoint may also
//  name a source ("tcp://SRC;HOST:PORT"), which we read past.
bool security_endpoint_is_loopback (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *source_end = strchr (host, ';');
    if (source_end)
        host = source_end + 1;
    char address[256];
    const char *end;
    if (*host == '[') {
        host++;
        end = strchr (host, ']');
    } else
        end = strrchr (host, ':');
    if (!end || end == host || (size_t)(end - host) >= sizeof address)
        return false;
    memcpy (address, host, (size_t)(end - host));
    address[end - host] = '\0';
    return security_address_is_loopback (address);
}

int security_check_exposure (const security_config_t *self, const char *service,
                             const char *const *http_addresses,
                             const char *const *zmq_endpoints)
{
    int exposed = 0;
    for (const char *const *address = http_addresses; address && *address; address++)
        if (!security_address_is_loopback (*address) && !self->auth_file) {
            if (self->insecure)
                log_warn ("--insecure: HTTP on %s without --auth-file: anyone who "
                          "reaches it is trusted",
                          *address);
            else
                fprintf (stderr,
                         "%s: HTTP address %s is not loopback: give --auth-file (or "
                         "--insecure)\n",
                         service, *address);
            exposed++;
        }
    for (const char *const *endpoint = zmq_endpoints; endpoint && *endpoint; endpoint++)
        if (!security_endpoint_is_loopback (*endpoint) && !self->curve_dir) {
            if (self->insecure)
                log_warn ("--insecure: %s without --curve-dir: anyone who reaches it "
                          "is trusted",
                          *endpoint);
            else
                fprintf (stderr,
                         "%s: endpoint %s is not loopback: give --curve-dir (or "
                         "--insecure)\n",
                         service, *endpoint);
            exposed++;
        }
    if (self->insecure)
        log_warn ("--insecure: running without the loopback rule");
    return exposed && !self->insecure ? -1 : 0;
}
