/*  test_config — the option table: defaults, values, bad usage, --help.

    One table with a field of every width and kind, parsed from command
    lines the way main does it.
*/
#include "config.h"

#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *endpoint;
    const char *dir;
    int port;
    int64_t limit;
    size_t keys;
    unsigned per_ip;
    uint64_t bytes;
    bool verify;
    bool fsync;
    log_level_t level;
} options_t;

#define AT(field) CONFIG_FIELD (options_t, field)

static const config_option_t s_options[] = {
    CONFIG_TEXT ("endpoint", "ENDPOINT", AT (endpoint), CONFIG_PUBLISH_ENDPOINT,
                 "where to connect (%s)"),
    CONFIG_TEXT ("dir", "DIR", AT (dir), NULL, "a directory (%s)"),
    CONFIG_INT ("port", AT (port), 3000, 0, 65535, "the port (%s; 0 = any)"),
    CONFIG_INT ("limit", AT (limit), -5, -1000000000000LL, 1000000000000LL, "a limit"),
    CONFIG_INT ("keys", AT (keys), 100, 1, 100000000, "keys\nand more keys (%s)"),
    CONFIG_INT ("connections-per-ip-max", AT (per_ip), 256, 1, 4000000000LL,
                "connections (%s)"),
    CONFIG_INT ("bytes", AT (bytes), 4096, 4096, INT64_MAX, "bytes (%s)"),
    CONFIG_FLAG ("verify", AT (verify), "check"),
    CONFIG_FSYNC ("fsync", AT (fsync), true, "sync (%s)"),
    CONFIG_LOG_LEVEL (AT (level)),
};

static const config_t s_config = {
    .service = "test",
    .summary = "A service under test.",
    .options = s_options,
    .count = sizeof s_options / sizeof s_options[0],
};

//  Parses the NULL-terminated arguments into *options (poisoned first).
static config_result_t s_parse (options_t *options, ...)
{
    char *argv[32] = {"test"};
    int argc = 1;
    va_list args;
    va_start (args, options);
    char *arg;
    while ((arg = va_arg (args, char *)) && argc < 31)
        argv[argc++] = arg;
    va_end (args);
    memset (options, 0xa5, sizeof *options);
    return config_parse (&s_config, options, argc, argv);
}

static void test_every_default_is_written_before_the_command_line (void)
{
    options_t options;
    CHECK_EQ_INT (s_parse (&options, NULL), CONFIG_RUN);
    CHECK_EQ_STR (options.endpoint, CONFIG_PUBLISH_ENDPOINT);
    CHECK (options.dir == NULL);
    CHECK_EQ_INT (options.port, 3000);
    CHECK_EQ_INT (options.limit, -5);
    CHECK_EQ_INT (options.keys, 100);
    CHECK_EQ_INT (options.per_ip, 256);
    CHECK_EQ_INT (options.bytes, 4096);
    CHECK (!options.verify);
    CHECK (options.fsync);
    CHECK_EQ_INT (options.level, LOG_INFO);
}

static void test_values_land_in_fields_of_every_width (void)
{
    options_t options;
    CHECK_EQ_INT (s_parse (&options, "--endpoint", "tcp://h:1", "--dir", "d", "--port", "0",
                           "--limit", "-1000000000000", "--keys", "100000000",
                           "--connections-per-ip-max", "4000000000", "--bytes",
                           "1099511627776", "--verify", "--fsync", "never", "--log-level",
                           "warn", NULL),
                  CONFIG_RUN);
    CHECK_EQ_STR (options.endpoint, "tcp://h:1");
    CHECK_EQ_STR (options.dir, "d");
    CHECK_EQ_INT (options.port, 0);
    CHECK_EQ_INT (options.limit, -1000000000000LL);
    CHECK_EQ_INT (options.keys, 100000000);
    CHECK_EQ_INT (options.per_ip, 4000000000LL);
    CHECK_EQ_INT (options.bytes, 1099511627776LL);
    CHECK (options.verify);
    CHECK (!options.fsync);
    CHECK_EQ_INT (options.level, LOG_WARN);
}

static void test_bad_values_and_unknown_options_are_bad_usage (void)
{
    options_t options;
    CHECK_EQ_INT (s_parse (&options, "--port", "65536", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--port", "-1", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--port", "8x", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--port", "", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--bytes", "4095", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--keys", "99999999999999999999", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--fsync", "sometimes", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--log-level", "loud", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--bogus", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--port", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "--verify=yes", NULL), CONFIG_BAD);
    CHECK_EQ_INT (s_parse (&options, "extra", NULL), CONFIG_BAD);
    //  A good command line after bad ones parses from its start.
    CHECK_EQ_INT (s_parse (&options, "--port", "7", NULL), CONFIG_RUN);
    CHECK_EQ_INT (options.port, 7);
}

static void test_version_is_an_exit_without_running (void)
{
    options_t options;
    CHECK_EQ_INT (s_parse (&options, "--version", NULL), CONFIG_EXIT);
}

static void test_help_shows_each_option_with_its_default (void)
{
    char *text = NULL;
    size_t bytes = 0;
    FILE *out = open_memstream (&text, &bytes);
    CHECK (out);
    config_print_help (&s_config, out);
    fclose (out);
    const char *expected =
        "Usage: test [OPTION]...\n"
        "A service under test.\n"
        "\n"
        "  --endpoint ENDPOINT     where to connect (tcp://127.0.0.1:5556)\n"
        "  --dir DIR               a directory (none)\n"
        "  --port N                the port (3000; 0 = any)\n"
        "  --limit N               a limit\n"
        "  --keys N                keys\n"
        "                          and more keys (100)\n"
        "  --connections-per-ip-max N  connections (256)\n"
        "  --bytes N               bytes (4096)\n"
        "  --verify                check\n"
        "  --fsync always|never    sync (always)\n"
        "  --log-level LEVEL       debug, info, warn or error (info)\n"
        "  --help                  this text\n"
        "  --version               the version\n";
    CHECK_EQ_STR (text, expected);
    free (text);
}

int main (void)
{
    RUN (test_every_default_is_written_before_the_command_line);
    RUN (test_values_land_in_fields_of_every_width);
    RUN (test_bad_values_and_unknown_options_are_bad_usage);
    RUN (test_version_is_an_exit_without_running);
    RUN (test_help_shows_each_option_with_its_default);
    return check_exit_status ();
}
