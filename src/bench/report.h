/* report.h -- the results of `meridian bench`: every run's samples of every
 * figure, their medians, the Meridian/PostgreSQL ratios, the targets of the
 * issue with an honest PASS or MISS, as a table and as a JSON file.
 *
 * Medians are taken per quantity (rate, p50, p99 each over the runs that
 * measured the figure), because the machine is shared and noisy: one slow
 * run moves a mean, not a median of three.
 */
#ifndef MR_REPORT_H
#define MR_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "sqlbench.h"

#define REPORT_MAX_RUNS 25

struct report_settings {
    size_t runs;
    uint64_t duration_ms, warmup_ms;
    size_t vis_writes;
    int quick;
    char command[512];         /* how the benchmark was started */
    char pg_version[64];       /* "" when PostgreSQL did not run */
};

struct report {
    struct report_settings set;
    int wanted[SQLBENCH_N_FIGS];                         /* selected with --only (all by default) */
    struct sqlbench_sample s[SQLBENCH_N_FIGS][REPORT_MAX_RUNS];
};

struct report_median {
    size_t n;                  /* runs that measured the figure */
    double rate, p50_ms, p99_ms;
    double cpu_nodes, cpu_etcd, cpu_gen;  /* negative when unknown */
};

/* The median of <v> (sorted in place; the mean of the middle two when <n>
 * is even; 0 when <n> is 0). */
double report_median_of(double *v, size_t n);

/* Medians of figure <f> over the measured runs (n = 0: none). */
void report_median(const struct report *r, enum sqlbench_fig f, struct report_median *out);

/* Print the table and the targets to <f>.  Returns the number of targets
 * missed (a target whose figure was not measured counts as missed). */
int report_print(const struct report *r, FILE *f);

/* Write everything (settings, every run, medians, ratios, targets) as JSON
 * to <path>.  Returns 0 or MR_E* with <err>. */
int report_write_json(const struct report *r, const char *path, char *err)
    __attribute__((warn_unused_result));

#endif
