/* load.h -- a closed-loop HTTP load generator on one libuv loop.
 *
 * <n_clients> clients each send one request, wait for its answer, and send
 * the next, for <duration_ms> (after <warmup_ms> not measured).  Requests
 * come from a caller-supplied generator, answers go to an optional checker.
 * Latencies are kept exactly (not bucketed), so percentiles are exact.
 * Used by `meridian bench` and `meridian demo`.
 */
#ifndef MR_LOAD_H
#define MR_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

struct load_target {
    const char *host;
    int port;
};

#define LOAD_MAX_TARGETS 8
#define LOAD_MAX_CLASSES 4

/* What one request is: filled by the generator. */
struct load_req {
    struct mr_buf *body;       /* reset before the call; empty: GET */
    size_t target;             /* index into load_spec.targets */
    int klass;                 /* 0..LOAD_MAX_CLASSES-1, e.g. write / read */
    const char *path;          /* static string */
    const char *headers;       /* NULL: load_spec.headers; else static or per-client storage */
};

/* Describe client <client>'s <seq>th request.  <data> is load_spec.data. */
typedef void (*load_gen_cb)(size_t client, uint64_t seq, struct load_req *req, void *data);
/* Inspect an answer; return 0 if it counts as a success. */
typedef int (*load_check_cb)(size_t client, int status, const char *body, size_t len, void *data);

struct load_spec {
    const struct load_target *targets;
    size_t n_targets;
    size_t n_clients;
    uint64_t duration_ms;
    uint64_t warmup_ms;
    uint64_t max_requests;     /* stop after this many (0: no limit) */
    const char *headers;       /* extra request headers */
    load_gen_cb gen;
    load_check_cb check;       /* NULL: status 200 is success */
    void *data;
};

struct load_stats {
    uint64_t ok, failed;
    double rate;               /* successful requests per second */
    double p50_ms, p99_ms, max_ms;
};

struct load_result {
    struct load_stats all;
    struct load_stats by[LOAD_MAX_TARGETS][LOAD_MAX_CLASSES];
    double seconds;            /* measured interval */
    char first_error[256];
};

/* Run the load to completion on a private loop.  Returns 0, or MR_E* when it
 * could not run at all (every request failed: see first_error). */
int load_run(const struct load_spec *spec, struct load_result *out);

/* Exact percentile of a sorted array of latencies (microseconds). */
double load_percentile_ms(const int64_t *sorted_us, size_t n, double q);

#endif
