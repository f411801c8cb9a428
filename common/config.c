/*  config — shared command-line value parsing.

    Parses and range-checks option values; the option tables themselves live
    in each service's main.c. Errors go to stderr naming the option, so a
    service can exit with status 2 right after.
*/
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_int64 (const char *option, const char *text, int64_t min, int64_t max,
                        int64_t *value)
{
    if (!text || *text == '\0') {
        fprintf (stderr, "%s: expected a number\n", option);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long long parsed = strtoll (text, &end, 10);
    if (*end != '\0') {
        fprintf (stderr, "%s: '%s' is not a decimal integer\n", option, text);
        return -1;
    }
    if (errno == ERANGE || parsed < min || parsed > max) {
        fprintf (stderr, "%s: %s is out of range [%" PRId64 ", %" PRId64 "]\n", option,
                 text, min, max);
        return -1;
    }
    *value = (int64_t)parsed;
    return 0;
}

int config_parse_fsync (const char *text, bool *fsync_always)
{
    if (text && strcmp (text, "always") == 0)
        *fsync_always = true;
    else if (text && strcmp (text, "never") == 0)
        *fsync_always = false;
    else {
        fprintf (stderr, "--fsync: expected 'always' or 'never', got '%s'\n",
                 text ? text : "");
        return -1;
    }
    return 0;
}

void config_print_version (const char *service)
{
    printf ("%s %s\n", service, LEDGER_VERSION);
}
