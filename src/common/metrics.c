/* metrics.c -- histograms and Prometheus text (see metrics.h). */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

const double mr_hist_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                         5,      10};
const size_t mr_hist_latency_n = sizeof(mr_hist_latency_bounds) / sizeof(double);
const double mr_hist_size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
const size_t mr_hist_size_n = sizeof(mr_hist_size_bounds) / sizeof(double);

void mr_hist_init(struct mr_hist *h, const double *bounds, size_t n_bounds)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n_bounds = n_bounds < MR_HIST_MAX_BUCKETS ? n_bounds : MR_HIST_MAX_BUCKETS;
}

void mr_hist_observe(struct mr_hist *h, double v)
{
    size_t i = 0;

    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

double mr_hist_quantile(const struct mr_hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(q * (double)h->count);
    if (want == 0)
        want = 1;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        seen += h->counts[i];
        if (seen >= want)
            return i < h->n_bounds ? h->bounds[i] : h->bounds[h->n_bounds - 1];
    }
    return h->bounds[h->n_bounds - 1];
}

void mr_metric_header(struct mr_buf *b, const char *name, const char *type, const char *help)
{
    mr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void mr_metric_u64(struct mr_buf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels && *labels)
        mr_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else
        mr_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void mr_metric_f64(struct mr_buf *b, const char *name, const char *labels, double v)
{
    if (labels && *labels)
        mr_buf_printf(b, "%s{%s} %.6g\n", name, labels, v);
    else
        mr_buf_printf(b, "%s %.6g\n", name, v);
}

void mr_metric_hist(struct mr_buf *b, const char *name, const char *labels, const struct mr_hist *h)
{
    const char *sep = labels && *labels ? "," : "";
    const char *lab = labels ? labels : "";
    uint64_t cum = 0;

    for (size_t i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        mr_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep, h->bounds[i],
                      (unsigned long long)cum);
    }
    mr_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                  (unsigned long long)h->count);
    if (*lab) {
        mr_buf_printf(b, "%s_sum{%s} %.9g\n", name, lab, h->sum);
        mr_buf_printf(b, "%s_count{%s} %llu\n", name, lab, (unsigned long long)h->count);
    } else {
        mr_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                      (unsigned long long)h->count);
    }
}
