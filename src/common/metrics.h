/* metrics.h -- histograms and Prometheus text exposition.
 *
 * Counters are plain uint64_t fields in each module's stats struct; this
 * module adds fixed-bucket histograms and the text format writers
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
#ifndef MR_METRICS_H
#define MR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MR_HIST_MAX_BUCKETS 24

struct mr_hist {
    const double *bounds;            /* upper bounds, increasing; static storage */
    size_t n_bounds;
    uint64_t counts[MR_HIST_MAX_BUCKETS + 1]; /* last one: +Inf */
    uint64_t count;
    double sum;
};

/* Bucket sets for latencies (seconds) and sizes (counts). */
extern const double mr_hist_latency_bounds[];
extern const size_t mr_hist_latency_n;
extern const double mr_hist_size_bounds[];
extern const size_t mr_hist_size_n;

void mr_hist_init(struct mr_hist *h, const double *bounds, size_t n_bounds);
void mr_hist_observe(struct mr_hist *h, double v);
/* Upper bound of the bucket holding quantile <q> (0..1); 0 when empty. */
double mr_hist_quantile(const struct mr_hist *h, double q);

/* "# HELP" and "# TYPE" lines. */
void mr_metric_header(struct mr_buf *b, const char *name, const char *type, const char *help);
/* One sample line; <labels> is NULL or 'k="v",k2="v2"'. */
void mr_metric_u64(struct mr_buf *b, const char *name, const char *labels, uint64_t v);
void mr_metric_f64(struct mr_buf *b, const char *name, const char *labels, double v);
/* The _bucket/_sum/_count lines of a histogram (header written separately). */
void mr_metric_hist(struct mr_buf *b, const char *name, const char *labels, const struct mr_hist *h);

#endif
