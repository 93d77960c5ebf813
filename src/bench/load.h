/* load.h -- a closed-loop HTTP load generator on one libuv loop.
 *
 * <n_clients> clients each send one request, wait for its answer, and send
 * the next, for <duration_ms> (after <warmup_ms> not measured).  Requests
 * come from a caller-supplied generator, answers go to an optional checker.
 * Latencies are kept exactly (not bucketed), so percentiles are exact.
 * Optionally each client thinks between an answer and its next request
 * (think_ms, not part of any latency), and answers can be checked with
 * their headers (check_resp: cookies, which region served it).
 * Used by `meridian bench` and `meridian demo`.
 */
#ifndef MR_LOAD_H
#define MR_LOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

struct http_response;
struct tls_ctx;

struct load_target {
    const char *host;
    int port;
};

#define LOAD_MAX_TARGETS 8
#define LOAD_MAX_CLASSES 6

/* What one request is: filled by the generator. */
struct load_req {
    struct mr_buf *body;       /* reset before the call; empty: GET */
    size_t target;             /* index into load_spec.targets */
    int klass;                 /* 0..LOAD_MAX_CLASSES-1, e.g. write / read */
    const char *path;          /* static string, or per-client storage that lives until the
                                  answer */
    const char *headers;       /* NULL: load_spec.headers; else static or per-client storage */
    const char *method;        /* NULL: POST with a body, else GET */
};

/* Describe client <client>'s <seq>th request.  <data> is load_spec.data. */
typedef void (*load_gen_cb)(size_t client, uint64_t seq, struct load_req *req, void *data);
/* Inspect an answer; return 0 if it counts as a success. */
typedef int (*load_check_cb)(size_t client, int status, const char *body, size_t len, void *data);
/* The same with the whole answer: <rc> 0 and <resp> (valid during the call
 * only), or <rc> an MR_E* (no answer: <resp> NULL; the result is ignored,
 * the request failed).  *<klass> holds the request's class and may be
 * changed to count the answer in another one (e.g. served from a cache). */
typedef int (*load_check_resp_cb)(size_t client, int rc, const struct http_response *resp,
                                  int *klass, void *data);

struct load_spec {
    const struct load_target *targets;
    size_t n_targets;
    size_t n_clients;
    uint64_t duration_ms;
    uint64_t warmup_ms;
    uint64_t max_requests;     /* stop after this many (0: no limit) */
    const char *headers;       /* extra request headers */
    const char *client_headers; /* NULL or headers sent with every request (credentials:
                                   struct topo's auth), besides <headers> */
    load_gen_cb gen;
    load_check_cb check;       /* NULL: status 200 is success */
    load_check_resp_cb check_resp; /* when set, used instead of <check> */
    uint64_t think_ms;         /* mean pause between an answer and the client's next request,
                                  uniform in [think_ms/2, 3*think_ms/2]; 0: none */
    const volatile sig_atomic_t *stop; /* when set and nonzero, clients stop (set by SIGINT) */
    struct tls_ctx *tls;       /* NULL: plain HTTP; else every connection is TLS (a
                                  client-role context, not owned: src/http/http.h;
                                  struct topo's tls for a TLS topology) */
    void *data;
};

struct load_stats {
    uint64_t ok, failed;
    double rate;               /* successful requests per second */
    double p50_ms, p99_ms, max_ms;
};

/* Latencies in microseconds, grown as they come (load_lats_add), with the
 * counts of one cell of a load. */
struct load_lats {
    int64_t *us;               /* owned: mr_free */
    size_t n, cap;
    uint64_t ok, failed;
};
void load_lats_add(struct load_lats *l, int64_t us);

struct load_result {
    struct load_stats all;
    struct load_stats by[LOAD_MAX_TARGETS][LOAD_MAX_CLASSES];
    double seconds;            /* measured interval */
    char first_error[256];
};

/* Run the load to completion on a private loop.  Returns 0, or MR_E* when it
 * could not run at all (every request failed: see first_error). */
int load_run(const struct load_spec *spec, struct load_result *out);

/* <out> from latencies <us> (sorted in place), <ok> and <failed> over <seconds>. */
void load_stats_of(int64_t *us, size_t n, uint64_t ok, uint64_t failed, double seconds, struct load_stats *out);

/* Exact percentile of a sorted array of latencies (microseconds). */
double load_percentile_ms(const int64_t *sorted_us, size_t n, double q);

#endif
