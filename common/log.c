/*  log — leveled logging to stderr.

    One line per message, written with one fprintf so lines from a process
    are not interleaved with each other. The service name and level are
    process-wide: set once at start by log_init, before anything logs.
*/
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_SERVICE_BYTES_MAX 32   // service names are short words
#define LOG_LINE_BYTES_MAX    1024 // longer messages take one heap allocation

static char s_service[LOG_SERVICE_BYTES_MAX] = "ledger";
static log_level_t s_level = LOG_INFO;

static const char *const s_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_init (const char *service, log_level_t level)
{
    snprintf (s_service, sizeof s_service, "%s", service ? service : "ledger");
    s_level = level;
}

int log_level_parse (const char *text, log_level_t *level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int index = 0; index < 4; index++) {
        if (text && strcmp (text, names[index]) == 0) {
            *level = (log_level_t)index;
            return 0;
        }
    }
    return -1;
}

int log_enabled (log_level_t level)
{
    return level >= s_level;
}

//  RFC 3339 UTC with milliseconds, like event timestamps.
static void s_timestamp (char *buffer, size_t bytes)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r (&now.tv_sec, &tm);
    size_t length = strftime (buffer, bytes, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buffer + length, bytes - length, ".%03dZ", (int)(now.tv_nsec / 1000000));
}

void log_at (log_level_t level, const char *format, ...)
{
    if (!log_enabled (level))
        return;
    if (level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_ERROR;
    char stamp[64];
    s_timestamp (stamp, sizeof stamp);

    char line[LOG_LINE_BYTES_MAX];
    char *message = line;
    va_list args;
    va_start (args, format);
    int length = vsnprintf (line, sizeof line, format, args);
    va_end (args);
    if (length >= (int)sizeof line) {
        char *large = malloc ((size_t)length + 1);
        if (large) {
            va_start (args, format);
            vsnprintf (large, (size_t)length + 1, format, args);
            va_end (args);
            message = large;
        }
    }
    fprintf (stderr, "%s %s %s %s\n", stamp, s_service, s_level_names[level], message);
    if (message != line)
        free (message);
}
