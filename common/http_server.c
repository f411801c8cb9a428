/*  http_server — the HTTP server of a service (see http.h): its address,
    limits, TLS and tokens, the MHD daemon in the caller's zloop, and its
    metrics. Requests are run by http.c.
*/
#include "http_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sodium.h>
#include <sys/socket.h>

static const char *const s_auth_failure_names[AUTH_FAILURE_COUNT] = {
    "missing", "malformed", "unknown", "plaintext", "scope", "account"};

//  ---------------------------------------------------------------------
//  Server

static int s_address_parse (const http_config_t *config, struct sockaddr_storage *address,
                            unsigned *flags)
{
    memset (address, 0, sizeof *address);
    const char *text = config->address ? config->address : "127.0.0.1";
    struct sockaddr_in *ipv4 = (struct sockaddr_in *)address;
    struct sockaddr_in6 *ipv6 = (struct sockaddr_in6 *)address;
    if (inet_pton (AF_INET, text, &ipv4->sin_addr) == 1) {
        ipv4->sin_family = AF_INET;
        ipv4->sin_port = htons ((uint16_t)config->port);
        return 0;
    }
    if (inet_pton (AF_INET6, text, &ipv6->sin6_addr) == 1) {
        ipv6->sin6_family = AF_INET6;
        ipv6->sin6_port = htons ((uint16_t)config->port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    log_error ("http: '%s' is not a numeric IPv4 or IPv6 address", text);
    return -1;
}

//  The connections the descriptor limit leaves room for, at most wanted.
//  Raises the soft limit to the hard one first when it is too low (the
//  soft limit is often 1024, the hard one much more).
static unsigned s_connections_max (unsigned wanted)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) != 0) {
        log_warn ("http: getrlimit (RLIMIT_NOFILE) failed: %s", strerror (errno));
        return wanted;
    }
    rlim_t needed = (rlim_t)wanted + HTTP_FDS_RESERVED;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed &&
        limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = {.rlim_cur = limit.rlim_max, .rlim_max = limit.rlim_max};
        if (setrlimit (RLIMIT_NOFILE, &raised) == 0)
            limit = raised;
        else
            log_warn ("http: setrlimit (RLIMIT_NOFILE, %llu) failed: %s",
                      (unsigned long long)raised.rlim_cur, strerror (errno));
    }
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed)
        return wanted;
    unsigned usable = limit.rlim_cur > 2 * HTTP_FDS_RESERVED
                          ? (unsigned)(limit.rlim_cur - HTTP_FDS_RESERVED)
                          : (unsigned)(limit.rlim_cur / 2);
    log_warn ("http: %u connections at most (RLIMIT_NOFILE %llu), not %u", usable,
              (unsigned long long)limit.rlim_cur, wanted);
    return usable;
}

//  The whole of a PEM file (caller frees), or NULL (logged).
static char *s_read_pem (const char *path, const char *flag)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        log_error ("%s %s: cannot open: %s", flag, path, strerror (errno));
        return NULL;
    }
    char *text = malloc (HTTP_PEM_BYTES_MAX + 1);
    size_t bytes = text ? fread (text, 1, HTTP_PEM_BYTES_MAX + 1, file) : 0;
    bool failed = !text || ferror (file);
    fclose (file);
    if (!failed && bytes <= HTTP_PEM_BYTES_MAX) {
        text[bytes] = '\0';
        if (strstr (text, "-----BEGIN "))
            return text;
        log_error ("%s %s: not a PEM file", flag, path);
    } else
        log_error ("%s %s: cannot read it (or larger than %d bytes)", flag, path,
                   HTTP_PEM_BYTES_MAX);
    free (text);
    return NULL;
}

//  Loads the auth file and the TLS files the security config names.
static int s_security_setup (http_server_t *self, const security_config_t *security)
{
    self->insecure = security->insecure;
    if (security->auth_file) {
        for (size_t index = 0; index < self->config.route_count; index++)
            assert (self->config.routes[index].scope != AUTH_SCOPE_UNSET);
        char error[256];
        self->auth = auth_new (security->auth_file, error, sizeof error);
        if (!self->auth) {
            log_error ("--auth-file %s refused: %s", security->auth_file, error);
            return -1;
        }
        if (auth_watch (self->auth, self->loop))
            return -1;
        log_info ("bearer tokens: %zu principals from %s (SIGHUP reloads it)",
                  auth_count (self->auth), security->auth_file);
    }
    if (security->tls_cert) {
        if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES) {
            log_error ("--tls-cert: this libmicrohttpd has no TLS support");
            return -1;
        }
        self->tls_cert = s_read_pem (security->tls_cert, "--tls-cert");
        self->tls_key =
            self->tls_cert ? s_read_pem (security->tls_key, "--tls-key") : NULL;
        if (!self->tls_key)
            return -1;
        self->tls = true;
    }
    return 0;
}

//  Starts MHD in external-epoll mode (HTTPS when self->tls) and reads the
//  port it bound. Returns 0, or -1 (logged).
static int s_daemon_start (http_server_t *self, const http_config_t *config)
{
    struct sockaddr_storage address;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (self->tls)
        flags |= MHD_USE_TLS;
    if (s_address_parse (config, &address, &flags))
        return -1;
    unsigned connections_max = s_connections_max (
        config->connections_max ? config->connections_max : HTTP_CONNECTIONS_MAX_DEFAULT);
    unsigned per_ip_max = config->connections_per_ip_max
                              ? config->connections_per_ip_max
                              : HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT;
    unsigned timeout_s = config->connection_timeout_s ? config->connection_timeout_s
                                                      : HTTP_CONNECTION_TIMEOUT_S_DEFAULT;
    //  Passing LISTENING_ADDRESS_REUSE = 0 would also drop MHD's default
    //  SO_REUSEADDR (restarts then fail on TIME_WAIT), so it is only given
    //  when asked for.
    struct MHD_OptionItem reuse[] = {
        {config->reuse_port ? MHD_OPTION_LISTENING_ADDRESS_REUSE : MHD_OPTION_END, 1,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem tls[] = {
        {self->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, self->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    // clang-format off
    self->daemon = MHD_start_daemon (
        flags, (uint16_t) config->port, NULL, NULL, http_on_access, self,
        MHD_OPTION_EXTERNAL_LOGGER, http_on_mhd_log, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
        MHD_OPTION_ARRAY, reuse,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_CONNECTION_LIMIT, connections_max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_max,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) HTTP_CONNECTION_MEMORY_BYTES_MAX,
        MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, self,
        MHD_OPTION_UNESCAPE_CALLBACK, http_on_unescape, NULL,
        MHD_OPTION_END);
    // clang-format on
    if (!self->daemon) {
        log_error ("http: MHD_start_daemon(%s:%d%s) failed: %s",
                   config->address ? config->address : "127.0.0.1", config->port,
                   self->tls ? ", HTTPS" : "",
                   errno ? strerror (errno) : "see libmicrohttpd's message before");
        return -1;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port_info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !port_info) {
        log_error ("http: MHD_get_daemon_info failed");
        return -1;
    }
    self->port = port_info->port;
    self->poll_item = (zmq_pollitem_t){.fd = info->epoll_fd, .events = ZMQ_POLLIN};
    return 0;
}

http_server_t *http_server_new (zloop_t *loop, const http_config_t *config)
{
    assert (loop);
    assert (config);
    assert (config->routes || config->route_count == 0);
    http_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = *config;
    self->timer_id = -1;
    self->run_timer_id = -1;
    zuuid_t *uuid = zuuid_new ();
    if (!uuid)
        goto failed;
    memcpy (self->request_id_base, zuuid_data (uuid), ZUUID_LEN);
    zuuid_destroy (&uuid);

    self->body_budget_bytes = config->body_buffer_bytes_max;
    if (!self->body_budget_bytes && config->security)
        self->body_budget_bytes = config->security->body_buffer_bytes_max;
    if (!self->body_budget_bytes)
        self->body_budget_bytes = HTTP_BODY_BUFFER_BYTES_MAX_DEFAULT;
    if (config->security && s_security_setup (self, config->security))
        goto failed;

    if (s_daemon_start (self, config))
        goto failed;
    if (zloop_poller (loop, &self->poll_item, http_on_readable, self)) {
        log_error ("http: zloop_poller(fd %d) failed", self->poll_item.fd);
        goto failed;
    }
    self->poller_added = true;
    self->timer_id = zloop_timer (loop, HTTP_TIMER_MS, 0, http_on_timer, self);
    if (self->timer_id < 0) {
        log_error ("http: zloop_timer failed");
        goto failed;
    }
    return self;
failed:
    http_server_destroy (&self);
    return NULL;
}

void http_server_destroy (http_server_t **self_p)
{
    assert (self_p);
    http_server_t *self = *self_p;
    if (!self)
        return;
    if (self->daemon) {
        http_streams_stop (self);
        //  MHD_stop_daemon refuses suspended connections: answer them first.
        while (self->suspended) {
            http_request_t *request = self->suspended;
            http_respond_problem (request, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "Service Unavailable", "the server is shutting down",
                                  NULL);
            assert (self->suspended != request);
        }
        http_run (self);
        if (self->run_timer_id >= 0)
            zloop_timer_end (self->loop, self->run_timer_id);
        if (self->poller_added)
            zloop_poller_end (self->loop, &self->poll_item);
        MHD_stop_daemon (self->daemon);
    }
    if (self->timer_id >= 0)
        zloop_timer_end (self->loop, self->timer_id);
    auth_destroy (&self->auth);
    free (self->tls_cert);
    if (self->tls_key)
        sodium_memzero (self->tls_key, strlen (self->tls_key));
    free (self->tls_key);
    free (self);
    *self_p = NULL;
}

int http_server_port (http_server_t *self)
{
    assert (self);
    return self->port;
}

uint64_t http_server_requests_total (http_server_t *self)
{
    assert (self);
    return self->requests_total;
}

size_t http_server_suspended_count (http_server_t *self)
{
    assert (self);
    return self->suspended_count;
}

void http_server_metrics (http_server_t *self, metrics_t *metrics)
{
    assert (self && metrics);
    metrics_counter_labeled (metrics, "ledger_http_auth_failures_total",
                             "Requests refused for their bearer token, by reason",
                             "reason", s_auth_failure_names, self->auth_failures,
                             AUTH_FAILURE_COUNT);
    if (self->auth) {
        metrics_counter (metrics, "ledger_http_auth_reloads_total",
                         "Auth file reloads asked for by SIGHUP",
                         auth_reloads (self->auth));
        metrics_counter (metrics, "ledger_http_auth_reload_failures_total",
                         "Auth file reloads refused (the old table stayed)",
                         auth_reload_failures (self->auth));
        metrics_gauge (metrics, "ledger_http_auth_principals", "Principals in the table",
                       (double)auth_count (self->auth));
    }
    metrics_gauge (metrics, "ledger_http_body_buffered_bytes",
                   "Request body bytes buffered now over all connections",
                   (double)self->body_buffered_bytes);
    metrics_counter (metrics, "ledger_http_body_budget_refusals_total",
                     "Requests answered 503 because the body budget was full",
                     self->body_budget_refusals);
}
