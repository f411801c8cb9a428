/*  log — leveled logging to stderr, one line per message:
      2026-11-22T07:28:47.123Z stream INFO listening on 127.0.0.1:3002
    The service name is set once at start. Log once, where it fails: the
    call, its arguments and strerror(errno).
*/
#ifndef LOG_H_INCLUDED
#define LOG_H_INCLUDED

//  <syslog.h> (pulled in by czmq.h) defines LOG_DEBUG and LOG_INFO as
//  macros; include it here first and drop them, so our enum wins in any
//  include order.
#include <syslog.h>
#undef LOG_DEBUG
#undef LOG_INFO

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_init (const char *service, log_level_t level);

//  "debug" | "info" | "warn" | "error" -> 0, else -1.
int log_level_parse (const char *text, log_level_t *level);

//  True if messages at this level are printed (to skip costly formatting).
int log_enabled (log_level_t level);

void log_at (log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#define log_debug(...) log_at (LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at (LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_at (LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at (LOG_ERROR, __VA_ARGS__)

#endif
