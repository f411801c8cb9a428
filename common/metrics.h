/*  metrics — Prometheus text exposition (format 0.0.4) into a growing
    buffer. A service's /metrics handler creates one, writes its figures,
    sends metrics_text() and destroys it.
*/
#ifndef METRICS_H_INCLUDED
#define METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metrics metrics_t;

metrics_t *metrics_new (void);
void metrics_destroy (metrics_t **self_p);

//  Writes "# HELP", "# TYPE" and the sample. name must be a valid metric name.
void metrics_counter (metrics_t *self, const char *name, const char *help,
                      uint64_t value);
void metrics_gauge (metrics_t *self, const char *name, const char *help, double value);
//  One counter family with a label: `name{label="values[i]"} counts[i]`
//  for each of count values (label values must need no escaping).
void metrics_counter_labeled (metrics_t *self, const char *name, const char *help,
                              const char *label, const char *const *values,
                              const uint64_t *counts, size_t count);

//  One sample of a service's page: a counter, or with gauge set a gauge.
typedef struct {
    const char *name;
    const char *help;
    uint64_t count; // a counter's value
    bool gauge;
    double value; // a gauge's value
} metrics_sample_t;

//  Writes each sample in order, as metrics_counter or metrics_gauge would.
void metrics_samples (metrics_t *self, const metrics_sample_t *samples, size_t count);

//  The text so far (borrowed, NUL-terminated).
const char *metrics_text (metrics_t *self, size_t *bytes);

#endif
