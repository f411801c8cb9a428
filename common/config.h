/*  config — the command line of every service: one declarative table of
    options per service, parsed and printed (--help) here.

    A service lists its options as config_option_t entries, each naming
    the option, its argument, its default, its bounds, its --help text and
    the field of the service's options struct it sets:

        static const config_option_t s_options[] = {
            CONFIG_TEXT ("publish", "ENDPOINT", CONFIG_FIELD (options_t, publish),
                         CONFIG_PUBLISH_ENDPOINT, "stream's PUB (%s)"),
            CONFIG_INT ("http-port", CONFIG_FIELD (options_t, http_port), 3000, 0,
                        65535, "HTTP port (%s; 0 = any)"),
            CONFIG_FLAG ("verify", CONFIG_FIELD (options_t, verify), "check at start"),
        };

    config_parse first writes every default into the struct (so a default
    is defined once, in the table), then the command line's values. In a
    help text "%s" stands for the default. --help and --version are always
    there. Errors go to stderr naming the option; the caller exits 2.
*/
#ifndef CONFIG_H_INCLUDED
#define CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

//  The default endpoints of the stream, which its clients connect to.
#define CONFIG_INGEST_ENDPOINT  "tcp://127.0.0.1:5557"
#define CONFIG_PUBLISH_ENDPOINT "tcp://127.0.0.1:5556"
#define CONFIG_REPLAY_ENDPOINT  "tcp://127.0.0.1:5558"
#define CONFIG_HTTP_ADDRESS     "127.0.0.1"

typedef enum {
    CONFIG_KIND_TEXT,      // const char *: the argument itself (borrowed from argv)
    CONFIG_KIND_INT,       // an integer field of any width, within [min, max]
    CONFIG_KIND_FLAG,      // bool: true when given; takes no argument
    CONFIG_KIND_FSYNC,     // bool: "always" (true) or "never" (false)
    CONFIG_KIND_LOG_LEVEL, // log_level_t: debug, info, warn or error
} config_kind_t;

typedef struct {
    const char *name;     // without the dashes: "http-port"
    const char *argument; // shown in --help: "N", "ENDPOINT"; NULL: no argument
    config_kind_t kind;
    size_t offset;    // of the target field in the options struct
    size_t size;      // of the target field (CONFIG_KIND_INT: 1, 2, 4 or 8 bytes)
    const char *text; // the default of TEXT options (NULL: none)
    int64_t number;   // the default of the other kinds (a bool: 0 or 1)
    int64_t min, max; // CONFIG_KIND_INT: accepted values
    const char *help; // --help text; "%s" is the default; "\n" continues the line
} config_option_t;

//  The target field of an entry: CONFIG_FIELD (options_t, api.http_port).
#define CONFIG_FIELD(type, field)                                                        \
    .offset = offsetof (type, field), .size = sizeof (((type *)0)->field)

#define CONFIG_TEXT(name_, argument_, field_, default_, help_)                           \
    {                                                                                    \
        .name = name_, .argument = argument_, .kind = CONFIG_KIND_TEXT, field_,          \
        .text = default_, .help = help_                                                  \
    }
#define CONFIG_INT(name_, field_, default_, min_, max_, help_)                           \
    {                                                                                    \
        .name = name_, .argument = "N", .kind = CONFIG_KIND_INT, field_,                 \
        .number = default_, .min = min_, .max = max_, .help = help_                      \
    }
#define CONFIG_FLAG(name_, field_, help_)                                                \
    {                                                                                    \
        .name = name_, .kind = CONFIG_KIND_FLAG, field_, .help = help_                   \
    }
#define CONFIG_FSYNC(name_, field_, default_, help_)                                     \
    {                                                                                    \
        .name = name_, .argument = "always|never", .kind = CONFIG_KIND_FSYNC, field_,    \
        .number = default_, .help = help_                                                \
    }
#define CONFIG_LOG_LEVEL(field_)                                                         \
    {                                                                                    \
        .name = "log-level", .argument = "LEVEL", .kind = CONFIG_KIND_LOG_LEVEL, field_, \
        .number = LOG_INFO, .help = "debug, info, warn or error (%s)"                    \
    }

//  A service's command line.
typedef struct {
    const char *service; // "transaction": messages and --version
    const char *summary; // --help's line under "Usage: <service> [OPTION]..."
    const config_option_t *options;
    size_t count;
} config_t;

typedef enum {
    CONFIG_RUN,  // parsed: go on
    CONFIG_EXIT, // --help or --version answered: exit 0
    CONFIG_BAD,  // bad usage, said on stderr: exit 2
} config_result_t;

//  Writes every default into target (the options struct), then the
//  options of argv.
config_result_t config_parse (const config_t *config, void *target, int argc,
                              char *argv[]);

//  The --help text (to stdout for --help, to stderr after bad usage).
void config_print_help (const config_t *config, FILE *out);

#endif
