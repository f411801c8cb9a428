/*  config — the command-line helpers every service shares.

    Each service keeps its own getopt_long table in its main.c (its options
    are its contract); this module parses and range-checks the values and
    prints version lines the same way everywhere. Errors are printed to
    stderr naming the option, and the caller exits with status 2.
*/
#ifndef CONFIG_H_INCLUDED
#define CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  Parses a decimal integer within [min, max] for option (e.g. "--http-port").
int config_parse_int64 (const char *option, const char *text, int64_t min, int64_t max,
                        int64_t *value);

//  Parses "always" / "never" for --fsync.
int config_parse_fsync (const char *text, bool *fsync_always);

//  Prints "<service> <version>" to stdout.
void config_print_version (const char *service);

#endif
