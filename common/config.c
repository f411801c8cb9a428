/*  config — the options tables' parser and --help printer (see config.h).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_OPTIONS_MAX 64   // entries in one table, --help and --version besides
#define CONFIG_HELP_COLUMN 26   // where help texts start: "  --name ARG" fits before
#define CONFIG_OPTION_BASE 1000 // getopt_long value of entry 0

//  Parses a decimal integer within [min, max] for option (e.g. "--http-port").
static int s_parse_int64 (const char *option, const char *text, int64_t min, int64_t max,
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

//  Stores value into the entry's field, at the field's width.
static void s_store_int (const config_option_t *option, void *field, int64_t value)
{
    switch (option->size) {
    case 1:
        *(uint8_t *)field = (uint8_t)value;
        break;
    case 2:
        *(uint16_t *)field = (uint16_t)value;
        break;
    case 4:
        *(uint32_t *)field = (uint32_t)value;
        break;
    default:
        assert (option->size == 8);
        *(uint64_t *)field = (uint64_t)value;
    }
}

static void s_store_default (const config_option_t *option, void *field)
{
    switch (option->kind) {
    case CONFIG_KIND_TEXT:
        *(const char **)field = option->text;
        break;
    case CONFIG_KIND_FLAG:
    case CONFIG_KIND_FSYNC:
        *(bool *)field = option->number != 0;
        break;
    case CONFIG_KIND_LOG_LEVEL:
        *(log_level_t *)field = (log_level_t)option->number;
        break;
    case CONFIG_KIND_INT:
        s_store_int (option, field, option->number);
        break;
    }
}

//  The argument of option into its field; -1 (said on stderr) when bad.
static int s_store (const config_t *config, const config_option_t *option, void *field,
                    const char *text)
{
    char name[64];
    snprintf (name, sizeof name, "--%s", option->name);
    int64_t value = 0;
    switch (option->kind) {
    case CONFIG_KIND_TEXT:
        *(const char **)field = text;
        return 0;
    case CONFIG_KIND_FLAG:
        *(bool *)field = true;
        return 0;
    case CONFIG_KIND_FSYNC:
        if (strcmp (text, "always") && strcmp (text, "never")) {
            fprintf (stderr, "%s: %s: expected 'always' or 'never', got '%s'\n",
                     config->service, name, text);
            return -1;
        }
        *(bool *)field = strcmp (text, "always") == 0;
        return 0;
    case CONFIG_KIND_LOG_LEVEL:
        if (log_level_parse (text, (log_level_t *)field)) {
            fprintf (stderr, "%s: %s: expected debug, info, warn or error, got '%s'\n",
                     config->service, name, text);
            return -1;
        }
        return 0;
    case CONFIG_KIND_INT:
        if (s_parse_int64 (name, text, option->min, option->max, &value))
            return -1;
        s_store_int (option, field, value);
        return 0;
    }
    return -1;
}

//  The default as --help shows it for "%s".
static void s_default_text (const config_option_t *option, char *text, size_t size)
{
    if (option->kind == CONFIG_KIND_TEXT)
        snprintf (text, size, "%s", option->text ? option->text : "none");
    else if (option->kind == CONFIG_KIND_FSYNC)
        snprintf (text, size, "%s", option->number ? "always" : "never");
    else if (option->kind == CONFIG_KIND_LOG_LEVEL) {
        static const char *names[] = {"debug", "info", "warn", "error"};
        snprintf (text, size, "%s", names[option->number & 3]);
    } else
        snprintf (text, size, "%" PRId64, option->number);
}

static void s_print_option (FILE *out, const char *name, const char *argument,
                            const char *help, const char *fallback)
{
    int width =
        fprintf (out, "  --%s%s%s", name, argument ? " " : "", argument ? argument : "");
    fprintf (out, "%*s", width <= CONFIG_HELP_COLUMN - 2 ? CONFIG_HELP_COLUMN - width : 2,
             "");
    for (const char *cursor = help; *cursor; cursor++) {
        if (cursor[0] == '%' && cursor[1] == 's') {
            fputs (fallback, out);
            cursor++;
        } else if (*cursor == '\n')
            fprintf (out, "\n%*s", CONFIG_HELP_COLUMN, "");
        else
            fputc (*cursor, out);
    }
    fputc ('\n', out);
}

void config_print_help (const config_t *config, FILE *out)
{
    fprintf (out, "Usage: %s [OPTION]...\n%s\n\n", config->service, config->summary);
    for (size_t index = 0; index < config->count; index++) {
        const config_option_t *option = &config->options[index];
        char fallback[128];
        s_default_text (option, fallback, sizeof fallback);
        s_print_option (out, option->name, option->argument, option->help, fallback);
    }
    s_print_option (out, "help", NULL, "this text", "");
    s_print_option (out, "version", NULL, "the version", "");
}

config_result_t config_parse (const config_t *config, void *target, int argc,
                              char *argv[])
{
    assert (config->count <= CONFIG_OPTIONS_MAX);
    enum { OPT_HELP = CONFIG_OPTION_BASE + CONFIG_OPTIONS_MAX, OPT_VERSION };
    struct option options[CONFIG_OPTIONS_MAX + 3];
    for (size_t index = 0; index < config->count; index++) {
        const config_option_t *option = &config->options[index];
        options[index] = (struct option){
            option->name, option->argument ? required_argument : no_argument, NULL,
            CONFIG_OPTION_BASE + (int)index};
        s_store_default (option, (char *)target + option->offset);
    }
    options[config->count] = (struct option){"help", no_argument, NULL, OPT_HELP};
    options[config->count + 1] =
        (struct option){"version", no_argument, NULL, OPT_VERSION};
    options[config->count + 2] = (struct option){NULL, 0, NULL, 0};
    int value;
    optind = 0; // glibc: start over completely (a test parses many command lines)
    while ((value = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (value == OPT_HELP) {
            config_print_help (config, stdout);
            return CONFIG_EXIT;
        }
        if (value == OPT_VERSION) {
            printf ("%s %s\n", config->service, LEDGER_VERSION);
            return CONFIG_EXIT;
        }
        if (value < CONFIG_OPTION_BASE ||
            value >= CONFIG_OPTION_BASE + (int)config->count) {
            config_print_help (config, stderr); // getopt_long named the fault
            return CONFIG_BAD;
        }
        const config_option_t *option = &config->options[value - CONFIG_OPTION_BASE];
        if (s_store (config, option, (char *)target + option->offset, optarg))
            return CONFIG_BAD;
    }
    if (optind < argc) {
        fprintf (stderr, "%s: unexpected argument '%s'\n", config->service, argv[optind]);
        return CONFIG_BAD;
    }
    return CONFIG_RUN;
}
