/* sqlbench.c -- Meridian's side of `meridian bench` (see sqlbench.h).
 *
 * Clients are spread over the regions: client i always talks to region
 * i % n_regions, so every region takes a third of the load and forwards its
 * writes through its own etcd member.  Row choices are uniform, from a
 * per-client generator seeded by the run, so runs are repeatable and the
 * PostgreSQL side (pgbench's random()) sees the same distribution.
 *
 * CPU accounting reads utime+stime of the topology's processes from /proc
 * (pids from RUNDIR/topology.json) and getrusage for the load generator:
 * on a 2-core machine shared by everything, who burns the cores explains
 * most figures.
 */
#include "sqlbench.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../http/http.h"
#include "load.h"

static const struct sqlbench_fig_info figs[SQLBENCH_N_FIGS] = {
    [SQLBENCH_WRITE_1] = {"write_1", "single-row write, 1 client", 1, 0},
    [SQLBENCH_WRITE_16] = {"write_16", "single-row write, 16 clients", 16, 0},
    [SQLBENCH_WRITE_64] = {"write_64", "single-row write, 64 clients", 64, 0},
    [SQLBENCH_READ_64] = {"read_64", "local point read, 64 clients", 64, 0},
    [SQLBENCH_VISIBILITY] = {"visibility", "write ack -> visible elsewhere", 0, 0},
    [SQLBENCH_ORDER_64] = {"order_64", "place order, 64 clients", 64, 0},
    [SQLBENCH_PG_UPDATE] = {"pg_update", "PG sync standby: single-row write, 64", 64, 1},
    [SQLBENCH_PG_ORDER] = {"pg_order", "PG sync standby: place order, 64", 64, 1},
};

const struct sqlbench_fig_info *sqlbench_fig_info(enum sqlbench_fig f)
{
    return &figs[f];
}

int sqlbench_fig_by_name(const char *name)
{
    for (int i = 0; i < SQLBENCH_N_FIGS; i++)
        if (strcmp(figs[i].name, name) == 0)
            return i;
    return -1;
}

/* splitmix64: small, fast, good enough to pick rows. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t pick(uint64_t *s, int64_t n)
{
    return (int64_t)(next_rand(s) % (uint64_t)n) + 1;
}

/* ---- CPU accounting ---------------------------------------------------- */

struct cpu_snap {
    double nodes, etcd, self;  /* CPU seconds */
    int64_t at_us;
    int ok;                    /* the topology's pids were readable */
};

/* utime + stime of <pid> in seconds, or -1. */
static double proc_cpu_seconds(int pid)
{
    char path[64], line[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')' */
    p = strrchr(line, ')');
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void cpu_take(const struct topo *t, struct cpu_snap *s)
{
    char *path = mr_asprintf("%s/topology.json", t->rundir);
    json_t *doc = json_load_file(path, 0, NULL), *regions = json_object_get(doc, "regions");
    struct rusage ru;

    memset(s, 0, sizeof(*s));
    s->ok = doc != NULL && json_array_size(regions) > 0;
    for (size_t i = 0; s->ok && i < json_array_size(regions); i++) {
        json_t *r = json_array_get(regions, i);
        double node = proc_cpu_seconds((int)json_integer_value(json_object_get(json_object_get(r, "node"), "pid")));
        double etcd = proc_cpu_seconds((int)json_integer_value(json_object_get(json_object_get(r, "etcd"), "pid")));
        if (node < 0 || etcd < 0)
            s->ok = 0;
        s->nodes += node;
        s->etcd += etcd;
    }
    json_decref(doc);
    mr_free(path);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    s->at_us = mr_mono_us();
}

static void cpu_diff(const struct cpu_snap *a, const struct cpu_snap *b, struct sqlbench_sample *out)
{
    double wall = (double)(b->at_us - a->at_us) / 1e6;

    out->cpu_nodes = out->cpu_etcd = out->cpu_gen = -1;
    if (wall <= 0)
        return;
    out->cpu_gen = (b->self - a->self) / wall;
    if (a->ok && b->ok) {
        out->cpu_nodes = (b->nodes - a->nodes) / wall;
        out->cpu_etcd = (b->etcd - a->etcd) / wall;
    }
}

/* ---- Setup -------------------------------------------------------------- */


/* POST <body> to <r>; 0 when the answer is 200 (then *answer, if not NULL,
 * holds it for the caller to json_decref). */
static int sql_ok(const struct topo_region *r, const char *body, json_t **answer, char *err)
{
    json_t *ans = NULL;
    int status = 0, rc = topo_sql(r, body, &status, &ans, err);

    if (rc == 0 && status != 200) {
        const char *msg = json_string_value(json_object_get(json_object_get(ans, "error"), "message"));
        rc = mr_seterr(err, MR_EUNAVAIL, "%s answered %d: %s", r->name, status, msg ? msg : "?");
    }
    if (rc == 0 && answer)
        *answer = ans;
    else
        json_decref(ans);
    return rc;
}

int sqlbench_prepare(const struct topo *t, char *err)
{
    static const char schema[] =
        "{\"statements\":["
        "{\"sql\":\"CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)\"},"
        "{\"sql\":\"CREATE TABLE IF NOT EXISTS products(id INTEGER PRIMARY KEY, stock INTEGER NOT NULL "
        "CHECK (stock >= 0))\"},"
        "{\"sql\":\"CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, "
        "qty INTEGER NOT NULL, created INTEGER NOT NULL)\"}]}";
    json_t *ans = NULL;
    char *rows, token[64];
    int rc;

    if (t->n_regions == 0)
        return mr_seterr(err, MR_EINVAL, "the topology has no regions");
    rc = sql_ok(&t->regions[0], schema, NULL, err);
    if (rc != 0)
        return mr_wraperr(err, rc, "create tables");
    /* one transaction: rows generated by SQLite itself, not shipped one by one */
    rows = mr_asprintf(
        "{\"statements\":["
        "{\"sql\":\"INSERT OR IGNORE INTO accounts(id, balance) WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT x, 0 FROM c\"},"
        "{\"sql\":\"INSERT OR IGNORE INTO products(id, stock) WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT x, 1000000000 FROM c\"}]}",
        SQLBENCH_N_ACCOUNTS, SQLBENCH_N_PRODUCTS);
    rc = sql_ok(&t->regions[0], rows, &ans, err);
    mr_free(rows);
    if (rc != 0)
        return mr_wraperr(err, rc, "load rows");
    snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(ans, "token")) ?: "");
    json_decref(ans);
    if (token[0] == '\0')
        return mr_seterr(err, MR_EPROTO, "load rows: the answer carries no token");

    /* A session read with the load's token returns once the region has
     * applied it (or 503 after session_wait): no polling needed, but a
     * bounded number of attempts in case a region is slow to catch up. */
    for (size_t i = 0; i < t->n_regions; i++) {
        char *body = mr_asprintf("{\"statements\":[{\"sql\":\"SELECT (SELECT count(*) FROM accounts), "
                                 "(SELECT count(*) FROM products)\"}],"
                                 "\"consistency\":\"session\",\"token\":\"%s\"}", token);
        int attempt;
        for (attempt = 0; attempt < 10; attempt++) {
            rc = sql_ok(&t->regions[i], body, &ans, err);
            if (rc == 0)
                break;
        }
        mr_free(body);
        if (rc != 0)
            return mr_wraperr(err, rc, "wait for %s to apply the rows", t->regions[i].name);
        json_t *row = json_array_get(json_object_get(json_array_get(json_object_get(ans, "results"), 0), "rows"), 0);
        int64_t na = json_integer_value(json_array_get(row, 0)), np = json_integer_value(json_array_get(row, 1));
        json_decref(ans);
        if (na != SQLBENCH_N_ACCOUNTS || np != SQLBENCH_N_PRODUCTS)
            return mr_seterr(err, MR_ECORRUPT, "%s holds %lld accounts and %lld products, expected %d and %d",
                             t->regions[i].name, (long long)na, (long long)np, SQLBENCH_N_ACCOUNTS,
                             SQLBENCH_N_PRODUCTS);
    }
    return 0;
}

/* ---- Closed-loop figures ------------------------------------------------ */

struct lw {
    enum sqlbench_fig fig;
    size_t n_regions;
    uint64_t *rng;             /* one state per client */
};

static void lw_gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct lw *w = data;
    uint64_t *s = &w->rng[client];

    (void)seq;
    req->path = "/v1/sql";
    req->target = client % w->n_regions;
    req->klass = 0;
    switch (w->fig) {
    case SQLBENCH_READ_64:
        mr_buf_printf(req->body,
                      "{\"statements\":[{\"sql\":\"SELECT balance FROM accounts WHERE id = ?\","
                      "\"params\":[%lld]}]}", (long long)pick(s, SQLBENCH_N_ACCOUNTS));
        break;
    case SQLBENCH_ORDER_64: {
        long long p = (long long)pick(s, SQLBENCH_N_PRODUCTS);
        mr_buf_printf(req->body,
                      "{\"statements\":["
                      "{\"sql\":\"UPDATE products SET stock = stock - 1 WHERE id = ?\",\"params\":[%lld]},"
                      "{\"sql\":\"INSERT INTO orders(product_id, qty, created) VALUES (?, 1, ?)\","
                      "\"params\":[%lld,%lld]}]}", p, p, (long long)mr_now_ms());
        break;
    }
    default:
        mr_buf_printf(req->body,
                      "{\"statements\":[{\"sql\":\"UPDATE accounts SET balance = balance + 1 WHERE id = ?\","
                      "\"params\":[%lld]}]}", (long long)pick(s, SQLBENCH_N_ACCOUNTS));
        break;
    }
}

static int run_load(const struct topo *t, enum sqlbench_fig f, const struct sqlbench_opts *o,
                    uint64_t seed, struct sqlbench_sample *out, char *err)
{
    struct load_target targets[TOPO_MAX_REGIONS];
    struct load_spec spec;
    struct load_result res;
    struct cpu_snap before, after;
    struct lw w;
    int rc;

    for (size_t i = 0; i < t->n_regions; i++) {
        targets[i].host = t->regions[i].host;
        targets[i].port = t->regions[i].port;
    }
    memset(&w, 0, sizeof(w));
    w.fig = f;
    w.n_regions = t->n_regions;
    w.rng = mr_calloc(figs[f].clients, sizeof(*w.rng));
    for (size_t i = 0; i < figs[f].clients; i++)
        w.rng[i] = seed * 1000003u + i;
    memset(&spec, 0, sizeof(spec));
    spec.targets = targets;
    spec.n_targets = t->n_regions;
    spec.n_clients = figs[f].clients;
    spec.duration_ms = o->duration_ms;
    spec.warmup_ms = o->warmup_ms;
    spec.gen = lw_gen;
    spec.client_headers = t->auth;
    spec.tls = t->tls;
    spec.data = &w;
    cpu_take(t, &before);
    rc = load_run(&spec, &res);
    cpu_take(t, &after);
    mr_free(w.rng);
    cpu_diff(&before, &after, out);
    snprintf(out->error, sizeof(out->error), "%.*s", (int)sizeof(out->error) - 1, res.first_error);
    if (rc != 0)
        return mr_seterr(err, rc, "%s: %s", figs[f].name, res.first_error[0] ? res.first_error : mr_strerror(rc));
    out->measured = 1;
    out->rate = res.all.rate;
    out->p50_ms = res.all.p50_ms;
    out->p99_ms = res.all.p99_ms;
    out->max_ms = res.all.max_ms;
    out->ok = res.all.ok;
    out->failed = res.all.failed;
    return 0;
}

/* ---- Visibility probe ---------------------------------------------------- *
 *
 * Sequential: write in region A = i % n (UPDATE ... RETURNING balance), and
 * the moment its acknowledgement arrives, send a session read carrying its
 * token to every other region at once.  A node answers a session read once
 * it has applied the token's position (woken by the apply, not polling), so
 * ack -> read answer is the time until the write is visible there, plus one
 * loopback request.  Each read also checks that it sees the write. */

#define VIS_WARMUP_WRITES 10

struct vis {
    const struct topo *t;
    struct http_client *http;
    size_t i, n_total;         /* current write, writes including warm-up */
    size_t pending;            /* reads still out for the current write */
    int64_t ack_us, written;
    uint64_t rng;
    int64_t *samples;
    size_t n_samples;
    uint64_t failed, not_visible;
    char token[64];
    char first_error[200];
};

static void vis_next(struct vis *v);

/* Count a failure; keep the first one's description.  <resp> is used only
 * when <rc> is 0. */
static void vis_fail(struct vis *v, const char *what, int rc, const struct http_response *resp)
{
    v->failed++;
    if (v->first_error[0] != '\0')
        return;
    if (rc != 0)
        snprintf(v->first_error, sizeof(v->first_error), "%s: %s", what, mr_strerror(rc));
    else
        snprintf(v->first_error, sizeof(v->first_error), "%s: HTTP %d: %.120s", what, resp->status,
                 resp->body ? resp->body : "");
}

static void vis_on_read(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct vis *v = data;
    int64_t now = mr_mono_us();

    (void)call;
    if (rc != 0 || resp->status != 200) {
        vis_fail(v, "session read", rc, resp);
    } else {
        json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
        json_t *row = json_array_get(json_object_get(json_array_get(json_object_get(j, "results"), 0), "rows"), 0);
        int64_t seen = json_integer_value(json_array_get(row, 0));
        if (j == NULL || seen < v->written)
            v->not_visible++;
        else if (v->i >= VIS_WARMUP_WRITES)
            v->samples[v->n_samples++] = now - v->ack_us;
        json_decref(j);
    }
    if (--v->pending == 0) {
        v->i++;
        vis_next(v);
    }
}

static void vis_on_write(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct vis *v = data;
    size_t n = v->t->n_regions, writer = v->i % n;
    json_t *j = NULL, *row;
    struct http_client_request req;
    char body[320];

    (void)call;
    v->ack_us = mr_mono_us();
    if (rc != 0 || resp->status != 200) {
        vis_fail(v, "write", rc, resp);
        goto next;
    }
    j = json_loadb(resp->body, resp->body_len, 0, NULL);
    row = json_array_get(json_object_get(json_array_get(json_object_get(j, "results"), 0), "rows"), 0);
    v->written = json_integer_value(json_array_get(row, 0));
    snprintf(v->token, sizeof(v->token), "%s", json_string_value(json_object_get(j, "token")) ?: "");
    if (v->token[0] == '\0' || v->written <= 0) {
        vis_fail(v, "write answer without token or balance", MR_EPROTO, NULL);
        goto next;
    }
    /* RETURNING balance, id: the read asks for the row the write changed */
    snprintf(body, sizeof(body),
             "{\"statements\":[{\"sql\":\"SELECT balance FROM accounts WHERE id = ?\",\"params\":[%lld]}],"
             "\"consistency\":\"session\",\"token\":\"%s\"}",
             (long long)json_integer_value(json_array_get(row, 1)), v->token);
    json_decref(j);
    j = NULL;
    v->pending = 0;
    for (size_t r = 0; r < n; r++) {
        if (r == writer)
            continue;
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.host = v->t->regions[r].host;
        req.port = v->t->regions[r].port;
        req.path = "/v1/sql";
        req.headers = "Content-Type: application/json\r\n";
        req.body = body;
        req.body_len = strlen(body);
        req.timeout_ms = 10000;
        if (http_client_request(v->http, &req, vis_on_read, v, NULL) == 0)
            v->pending++;
        else
            vis_fail(v, "session read", MR_EINVAL, NULL);
    }
    if (v->pending > 0)
        return;
next:
    json_decref(j);
    v->i++;
    vis_next(v);
}

static void vis_next(struct vis *v)
{
    struct http_client_request req;
    char body[256];

    while (v->i < v->n_total) {
        const struct topo_region *w = &v->t->regions[v->i % v->t->n_regions];
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.host = w->host;
        req.port = w->port;
        req.path = "/v1/sql";
        req.headers = "Content-Type: application/json\r\n";
        snprintf(body, sizeof(body),
                 "{\"statements\":[{\"sql\":\"UPDATE accounts SET balance = balance + 1 WHERE id = ? "
                 "RETURNING balance, id\",\"params\":[%lld]}]}",
                 (long long)pick(&v->rng, SQLBENCH_N_ACCOUNTS));
        req.body = body;
        req.body_len = strlen(body);
        req.timeout_ms = 10000;
        if (http_client_request(v->http, &req, vis_on_write, v, NULL) == 0)
            return;
        vis_fail(v, "write", MR_EINVAL, NULL);
        v->i++;
    }
    http_client_free(v->http); /* the loop ends once its connections are closed */
    v->http = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_visibility(const struct topo *t, const struct sqlbench_opts *o, uint64_t seed,
                          struct sqlbench_sample *out, char *err)
{
    struct http_client_opts hopts;
    struct cpu_snap before, after;
    struct vis v;
    uv_loop_t loop;
    int rc = 0;

    if (t->n_regions < 2)
        return mr_seterr(err, MR_EINVAL, "visibility needs at least two regions");
    memset(&v, 0, sizeof(v));
    v.t = t;
    v.n_total = VIS_WARMUP_WRITES + o->vis_writes;
    v.rng = seed;
    v.samples = mr_calloc(v.n_total * (t->n_regions - 1), sizeof(*v.samples));
    if (uv_loop_init(&loop) != 0) {
        mr_free(v.samples);
        return mr_seterr(err, MR_EIO, "uv_loop_init failed");
    }
    http_client_opts_default(&hopts);
    hopts.headers = t->auth[0] ? t->auth : NULL;
    hopts.tls = t->tls;
    if (http_client_new(&loop, &hopts, &v.http) != 0) {
        uv_loop_close(&loop);
        mr_free(v.samples);
        return mr_seterr(err, MR_ENOMEM, "http client");
    }
    cpu_take(t, &before);
    vis_next(&v);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cpu_take(t, &after);
    cpu_diff(&before, &after, out);

    out->ok = v.n_samples;
    out->failed = v.failed + v.not_visible;
    if (v.not_visible && v.first_error[0] == '\0')
        snprintf(v.first_error, sizeof(v.first_error), "%llu session reads did not see the write",
                 (unsigned long long)v.not_visible);
    snprintf(out->error, sizeof(out->error), "%s", v.first_error);
    if (v.n_samples == 0) {
        rc = mr_seterr(err, MR_EUNAVAIL, "visibility: no sample (%s)", v.first_error);
    } else {
        qsort(v.samples, v.n_samples, sizeof(*v.samples), cmp_i64);
        out->measured = 1;
        out->rate = (double)v.n_samples;
        out->p50_ms = load_percentile_ms(v.samples, v.n_samples, 0.50);
        out->p99_ms = load_percentile_ms(v.samples, v.n_samples, 0.99);
        out->max_ms = (double)v.samples[v.n_samples - 1] / 1000.0;
    }
    mr_free(v.samples);
    return rc;
}

int sqlbench_run(const struct topo *t, enum sqlbench_fig f, const struct sqlbench_opts *o,
                 uint64_t seed, struct sqlbench_sample *out, char *err)
{
    memset(out, 0, sizeof(*out));
    out->cpu_nodes = out->cpu_etcd = out->cpu_gen = -1;
    if (f >= SQLBENCH_N_FIGS || figs[f].is_pg)
        return mr_seterr(err, MR_EINVAL, "not a Meridian figure");
    if (f == SQLBENCH_VISIBILITY)
        return run_visibility(t, o, seed, out, err);
    return run_load(t, f, o, seed, out, err);
}
