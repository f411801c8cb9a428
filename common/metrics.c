/*  metrics — Prometheus text exposition format 0.0.4.

    A growing text buffer with one writer per sample type. It holds no
    registry: each /metrics request writes the current figures afresh, so
    there is no shared state to keep in step with the services.
*/
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define METRICS_BUFFER_BYTES_INITIAL 4096 // a service's page fits without growing

struct metrics {
    char *text;      // NUL-terminated; NULL after an allocation failure
    size_t bytes;    // length of text, excluding the NUL
    size_t capacity; // allocated bytes of text
};

metrics_t *metrics_new (void)
{
    metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->text = malloc (METRICS_BUFFER_BYTES_INITIAL);
    if (!self->text) {
        free (self);
        return NULL;
    }
    self->capacity = METRICS_BUFFER_BYTES_INITIAL;
    self->text[0] = '\0';
    return self;
}

void metrics_destroy (metrics_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->text);
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_append (metrics_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void s_append (metrics_t *self, const char *format, ...)
{
    if (!self->text)
        return;
    va_list args;
    va_start (args, format);
    int length =
        vsnprintf (self->text + self->bytes, self->capacity - self->bytes, format, args);
    va_end (args);
    if (length < 0)
        return;
    if (self->bytes + (size_t)length >= self->capacity) {
        size_t capacity = self->capacity * 2;
        while (self->bytes + (size_t)length >= capacity)
            capacity *= 2;
        char *text = realloc (self->text, capacity);
        if (!text) {
            //  Keep what fits; a truncated page beats a crash.
            self->text[self->bytes] = '\0';
            return;
        }
        self->text = text;
        self->capacity = capacity;
        va_start (args, format);
        vsnprintf (self->text + self->bytes, self->capacity - self->bytes, format, args);
        va_end (args);
    }
    self->bytes += (size_t)length;
}

static void s_header (metrics_t *self, const char *name, const char *help,
                      const char *type)
{
    s_append (self, "# HELP %s ", name);
    //  HELP text escapes backslash and newline.
    for (const char *cursor = help; cursor && *cursor; cursor++) {
        if (*cursor == '\\')
            s_append (self, "\\\\");
        else if (*cursor == '\n')
            s_append (self, "\\n");
        else
            s_append (self, "%c", *cursor);
    }
    s_append (self, "\n# TYPE %s %s\n", name, type);
}

void metrics_counter (metrics_t *self, const char *name, const char *help, uint64_t value)
{
    assert (self);
    s_header (self, name, help, "counter");
    s_append (self, "%s %" PRIu64 "\n", name, value);
}

void metrics_counter_labeled (metrics_t *self, const char *name, const char *help,
                              const char *label, const char *const *values,
                              const uint64_t *counts, size_t count)
{
    assert (self);
    s_header (self, name, help, "counter");
    for (size_t index = 0; index < count; index++)
        s_append (self, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, values[index],
                  counts[index]);
}

//  The shortest %g text that reads back as the same double.
static const char *s_shortest (double value, char *buffer, size_t bytes)
{
    for (int precision = 15; precision < 17; precision++) {
        snprintf (buffer, bytes, "%.*g", precision, value);
        if (strtod (buffer, NULL) == value)
            return buffer;
    }
    snprintf (buffer, bytes, "%.17g", value);
    return buffer;
}

void metrics_gauge (metrics_t *self, const char *name, const char *help, double value)
{
    assert (self);
    s_header (self, name, help, "gauge");
    if (isnan (value))
        s_append (self, "%s NaN\n", name);
    else if (isinf (value))
        s_append (self, "%s %sInf\n", name, value > 0 ? "+" : "-");
    else if (value == floor (value) && fabs (value) < 9007199254740992.0)
        s_append (self, "%s %.0f\n", name, value);
    else
        s_append (self, "%s %s\n", name, s_shortest (value, (char[32]){0}, 32));
}

void metrics_samples (metrics_t *self, const metrics_sample_t *samples, size_t count)
{
    assert (self);
    for (size_t index = 0; index < count; index++) {
        const metrics_sample_t *sample = &samples[index];
        if (sample->gauge)
            metrics_gauge (self, sample->name, sample->help, sample->value);
        else
            metrics_counter (self, sample->name, sample->help, sample->count);
    }
}

const char *metrics_text (metrics_t *self, size_t *bytes)
{
    assert (self);
    if (bytes)
        *bytes = self->text ? self->bytes : 0;
    return self->text ? self->text : "";
}
