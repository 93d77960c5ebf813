/* gtbench.c -- `meridian bench tables` (see gtbench.h).
 *
 * Three local regions without emulated distance (`meridian up
 * --latency-scale 0`).  Writes are CRDT register sets of a 200-byte value
 * on random keys (POST .../ops: the load generator's write verb), each
 * acknowledged only once durable (fsynced) in its region.  Replication lag
 * is measured end to end by a probe: every PROBE_EVERY_MS it writes a new
 * key in one region and polls another region until the key is readable;
 * the same probe measures Redis's replicas.  The steady load is paced by a
 * timer on its own thread while the probe runs. */
#include "gtbench.h"
#include "report.h"
#include "storebench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../http/http.h"
#include "../up/up.h"
#include "load.h"
#include "topo.h"

#define PROBE_EVERY_MS 20
#define PACED_WARMUP_MS 1000  /* paced load before the first lag probe */
#define VALUE_BYTES 200
#define MAX_PROBES 4096

extern char **environ;

struct gt_opts {
    int64_t duration_ms, warmup_ms;
    int clients;
    int rate;
    int redis;
};

/* ---- our load ------------------------------------------------------------- */

struct gen_data {
    size_t n_regions;
    int read;
    char paths[512][96];
    unsigned seed[512];
};

static void gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct gen_data *g = data;
    unsigned key = (unsigned)rand_r(&g->seed[client % 512]) % 100000;

    (void)seq;
    req->target = client % g->n_regions;
    if (g->read) {
        snprintf(g->paths[client % 512], sizeof(g->paths[0]), "/v1/tables/bench/items/k%u", key % 1000);
        req->path = g->paths[client % 512];
        req->klass = 1;
        return;
    }
    snprintf(g->paths[client % 512], sizeof(g->paths[0]), "/v1/tables/bench/items/k%u/ops", key);
    req->path = g->paths[client % 512];
    mr_buf_printf(req->body, "{\"ops\":[{\"op\":\"set\",\"field\":\"v\",\"value\":\"%0*u\"}]}", VALUE_BYTES, key);
}

static int check_read(size_t client, int status, const char *body, size_t len, void *data)
{
    (void)client, (void)body, (void)len, (void)data;
    return status == 200 || status == 404 ? 0 : -1;
}

static int run_load(const struct topo *t, const struct gt_opts *o, int read, struct load_result *res)
{
    struct load_target targets[TOPO_MAX_REGIONS];
    struct gen_data *g = mr_calloc(1, sizeof(*g));
    struct load_spec spec;
    int rc;

    for (size_t i = 0; i < t->n_regions && i < 3; i++) {
        targets[i].host = t->regions[i].host;
        targets[i].port = t->regions[i].port;
    }
    g->n_regions = t->n_regions < 3 ? t->n_regions : 3;
    g->read = read;
    for (size_t i = 0; i < 512; i++)
        g->seed[i] = (unsigned)(i * 7919 + 17);
    memset(&spec, 0, sizeof(spec));
    spec.targets = targets;
    spec.n_targets = g->n_regions;
    spec.n_clients = (size_t)o->clients;
    spec.duration_ms = (uint64_t)o->duration_ms;
    spec.warmup_ms = (uint64_t)o->warmup_ms;
    spec.gen = gen;
    spec.client_headers = t->auth;
    spec.tls = t->tls;
    spec.check = read ? check_read : NULL;
    spec.data = g;
    rc = load_run(&spec, res);
    mr_free(g);
    return rc;
}

/* ---- the paced load: <rate> writes/s on a private loop ----------------------- */

struct paced {
    const struct topo *t;
    int rate;
    volatile int stop;
    uv_loop_t loop;
    uv_timer_t timer;
    struct http_client *http;
    int64_t start_us;
    uint64_t sent, ok, failed;
    int inflight;
    char first_error[128];
    unsigned seed;
    struct load_lats lat;   /* of the writes sent after the warm-up */
};

/* One paced write in flight: when it was sent. */
struct paced_call {
    struct paced *p;
    int64_t sent_us;
};


static void paced_done(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct paced_call *pc = data;
    struct paced *p = pc->p;
    int64_t sent_us = pc->sent_us;

    (void)call;
    mr_free(pc);
    p->inflight--;
    if (p->stop && rc == MR_ECLOSED)
        return; /* cancelled when the load stopped */
    if (rc == 0 && resp->status == 200) {
        p->ok++;
        if (sent_us >= p->start_us + PACED_WARMUP_MS * 1000)
            load_lats_add(&p->lat, mr_mono_us() - sent_us);
    } else {
        if (p->failed++ == 0)
            snprintf(p->first_error, sizeof(p->first_error), "%s",
                     rc ? mr_strerror(rc) : http_status_text(resp->status));
    }
}

static void paced_tick(uv_timer_t *h)
{
    struct paced *p = h->data;
    uint64_t due = (uint64_t)((mr_mono_us() - p->start_us) * (int64_t)p->rate / 1000000);

    if (p->stop) {
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, NULL);
        http_client_free(p->http);
        return;
    }
    while (p->sent < due && p->inflight < 512) {
        const struct topo_region *r = &p->t->regions[p->sent % (p->t->n_regions < 3 ? p->t->n_regions : 3)];
        struct http_client_request req;
        struct paced_call *pc;
        char path[96], body[VALUE_BYTES + 96];
        unsigned key = (unsigned)rand_r(&p->seed) % 100000;

        snprintf(path, sizeof(path), "/v1/tables/bench/items/p%u/ops", key);
        snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"set\",\"field\":\"v\",\"value\":\"%0*u\"}]}", VALUE_BYTES, key);
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.host = r->host;
        req.port = r->port;
        req.path = path;
        req.headers = "Content-Type: application/json\r\n";
        req.body = body;
        req.body_len = strlen(body);
        req.timeout_ms = 10000;
        p->sent++;
        pc = mr_malloc(sizeof(*pc));
        pc->p = p;
        pc->sent_us = mr_mono_us();
        if (http_client_request(p->http, &req, paced_done, pc, NULL) == 0) {
            p->inflight++;
        } else {
            mr_free(pc);
            p->failed++;
        }
    }
}

static void *paced_run(void *arg)
{
    struct paced *p = arg;
    struct http_client_opts o;

    uv_loop_init(&p->loop);
    http_client_opts_default(&o);
    /* Keep every connection the paced load opens (at most 512 in flight):
     * one dropped past the idle bound would cost a new TLS handshake, whose
     * CPU the nodes would pay too, and the lag measured with it. */
    o.max_idle_per_host = 512;
    o.headers = p->t->auth[0] ? p->t->auth : NULL;
    o.tls = p->t->tls;
    if (http_client_new(&p->loop, &o, &p->http) != 0)
        return NULL;
    uv_timer_init(&p->loop, &p->timer);
    p->timer.data = p;
    p->start_us = mr_mono_us();
    uv_timer_start(&p->timer, paced_tick, 1, 1);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    return NULL;
}

/* ---- lag probes ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return -1;
    qsort(v, n, sizeof(*v), cmp_double);
    i = (size_t)(q * (double)n);
    return v[i < n ? i : n - 1];
}

/* Blocking calls over one keep-alive client: a lag probe polls every few
 * milliseconds, and a new connection per poll (http_fetch) would add a TLS
 * handshake to every poll, and so to the lag it measures. */
struct prober {
    uv_loop_t loop;
    struct http_client *http;
    int done, rc, status;
};

static void prober_done(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct prober *pr = data;

    (void)call;
    pr->done = 1;
    pr->rc = rc;
    pr->status = rc == 0 ? resp->status : 0;
}

static int prober_open(struct prober *pr, const struct topo *t)
{
    struct http_client_opts o;

    memset(pr, 0, sizeof(*pr));
    uv_loop_init(&pr->loop);
    http_client_opts_default(&o);
    o.headers = t->auth[0] ? t->auth : NULL;
    o.tls = t->tls;
    if (http_client_new(&pr->loop, &o, &pr->http) != 0) {
        uv_loop_close(&pr->loop);
        return -1;
    }
    return 0;
}

static void prober_close(struct prober *pr)
{
    http_client_free(pr->http);
    uv_run(&pr->loop, UV_RUN_DEFAULT);
    uv_loop_close(&pr->loop);
}

/* The status of <method> <path> on <r>, or -1. */
static int prober_call(struct prober *pr, const struct topo_region *r, const char *method,
                       const char *path, const char *body)
{
    struct http_client_request req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.host = r->host;
    req.port = r->port;
    req.path = path;
    req.headers = body ? "Content-Type: application/json\r\n" : NULL;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.timeout_ms = 5000;
    pr->done = 0;
    if (http_client_request(pr->http, &req, prober_done, pr, NULL) != 0)
        return -1;
    /* ONCE, not DEFAULT: pooled idle connections keep the loop alive. */
    while (!pr->done)
        uv_run(&pr->loop, UV_RUN_ONCE);
    return pr->rc == 0 ? pr->status : -1;
}

/* Write probe <i> in region i%n, poll region (i+1)%n until it is there. */
static int table_probe(const struct topo *t, struct prober *pr, int i, double *lag_ms)
{
    size_t n = t->n_regions < 3 ? t->n_regions : 3, a = (size_t)i % n, b = (size_t)(i + 1) % n;
    char path[128];
    int64_t t0, deadline;

    snprintf(path, sizeof(path), "/v1/tables/bench/items/probe-%d/ops", i);
    if (prober_call(pr, &t->regions[a], "POST", path, "{\"ops\":[{\"op\":\"set\",\"field\":\"v\",\"value\":1}]}") != 200)
        return -1;
    t0 = mr_mono_us();
    deadline = t0 + 5000000;
    snprintf(path, sizeof(path), "/v1/tables/bench/items/probe-%d", i);
    while (mr_mono_us() < deadline) {
        int status = prober_call(pr, &t->regions[b], "GET", path, NULL);
        if (status < 0)
            return -1;
        if (status == 200) {
            *lag_ms = (double)(mr_mono_us() - t0) / 1000.0;
            return 0;
        }
    }
    return -1;
}

/* ---- redis ------------------------------------------------------------------------ */

static int redis_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send one command (RESP array of <argc> strings); read one reply line
 * (and a bulk string's body) into <out>.  Returns 0 or -1. */
static int redis_cmd(int fd, int argc, const char *const *argv, char *out, size_t size)
{
    struct mr_buf b;
    char buf[4096];
    ssize_t got;
    size_t have = 0;
    int rc = 0;

    mr_buf_init(&b);
    mr_buf_printf(&b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        mr_buf_printf(&b, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    if (write(fd, b.data, b.len) != (ssize_t)b.len)
        rc = -1;
    mr_buf_close(&b);
    while (rc == 0) {
        got = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (got <= 0)
            return -1;
        have += (size_t)got;
        buf[have] = '\0';
        if (buf[0] == '$') {
            long len = strtol(buf + 1, NULL, 10);
            char *nl = strstr(buf, "\r\n");
            if (len < 0 && nl) {
                snprintf(out, size, "(nil)");
                return 0;
            }
            if (nl && have >= (size_t)(nl - buf) + 2 + (size_t)len + 2) {
                snprintf(out, size, "%.*s", (int)len, nl + 2);
                return 0;
            }
        } else if (strstr(buf, "\r\n")) {
            snprintf(out, size, "%.*s", (int)(strstr(buf, "\r\n") - buf), buf);
            return 0;
        }
    }
    return rc;
}

struct redis_set {
    int port[3];
    pid_t pid[3];
    char dir[128];
};

static int redis_start(struct redis_set *r, const char *base, char *err)
{
    for (int i = 0; i < 3; i++) {
        char port[16], dir[192], master[32];
        char *argv[24];
        int n = 0;
        /* Not a random port: the load before has filled much of the
         * ephemeral range with TIME_WAIT connections, and redis-server
         * exits on "address in use". */
        r->port[i] = mr_free_port();
        if (r->port[i] <= 0)
            return mr_seterr(err, MR_EIO, "no free port for redis-server: %s", strerror(errno));
        snprintf(port, sizeof(port), "%d", r->port[i]);
        snprintf(dir, sizeof(dir), "%s/redis%d", base, i);
        mkdir(dir, 0700);
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--dir";
        argv[n++] = dir;
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "yes";
        argv[n++] = "--appendfsync";
        argv[n++] = "everysec";
        argv[n++] = "--logfile";
        argv[n++] = "redis.log";
        if (i > 0) {
            snprintf(master, sizeof(master), "127.0.0.1 %d", r->port[0]);
            argv[n++] = "--replicaof";
            argv[n++] = master;
        }
        argv[n] = NULL;
        int up = 0;
        if (posix_spawnp(&r->pid[i], "redis-server", NULL, NULL, argv, environ) != 0)
            return mr_seterr(err, MR_EUNAVAIL, "cannot start redis-server (apt-get install redis-server)");
        for (int tries = 0; tries < 200 && !up; tries++) {
            int fd = redis_connect(r->port[i]);
            char out[64] = "";
            const char *ping[] = {"PING"};
            up = fd != -1 && redis_cmd(fd, 1, ping, out, sizeof(out)) == 0 && strcmp(out, "+PONG") == 0;
            if (fd != -1)
                close(fd);
            if (!up)
                usleep(20000); /* process start-up: pacing, bounded */
        }
        /* A random port can be taken: redis-server then exits, and
         * redis-benchmark would retry against nothing for ever. */
        if (!up)
            return mr_seterr(err, MR_EUNAVAIL, "redis-server on port %d does not answer (see %s/redis.log)",
                             r->port[i], dir);
    }
    /* Replicas in sync before measuring. */
    for (int i = 1; i < 3; i++) {
        for (int tries = 0; tries < 500; tries++) {
            int fd = redis_connect(r->port[i]);
            char out[4096] = "";
            const char *info[] = {"INFO", "replication"};
            int up = fd != -1 && redis_cmd(fd, 2, info, out, sizeof(out)) == 0 &&
                     strstr(out, "master_link_status:up") != NULL;
            if (fd != -1)
                close(fd);
            if (up)
                break;
            usleep(20000);
        }
    }
    return 0;
}

static void redis_stop(struct redis_set *r)
{
    for (int i = 0; i < 3; i++)
        if (r->pid[i] > 0) {
            kill(r->pid[i], SIGTERM);
            waitpid(r->pid[i], NULL, 0);
            r->pid[i] = 0;
        }
}

struct redis_probe_ctx {
    struct redis_set *r;
    volatile int stop;
    double lags[MAX_PROBES];
    size_t n;
};

static void *redis_probe_run(void *arg)
{
    struct redis_probe_ctx *c = arg;
    int pf = redis_connect(c->r->port[0]), rf[2] = {redis_connect(c->r->port[1]), redis_connect(c->r->port[2])};

    for (int i = 0; !c->stop && pf != -1 && c->n < MAX_PROBES; i++) {
        char key[32], val[32], out[256];
        const char *set[3] = {"SET", key, val}, *get[2] = {"GET", key};
        int64_t t0, next = mr_mono_us() + PROBE_EVERY_MS * 1000;
        snprintf(key, sizeof(key), "probe:%d", i);
        snprintf(val, sizeof(val), "%d", i);
        if (redis_cmd(pf, 3, set, out, sizeof(out)) != 0)
            break;
        t0 = mr_mono_us();
        while (mr_mono_us() - t0 < 5000000) {
            if (redis_cmd(rf[i % 2], 2, get, out, sizeof(out)) != 0)
                break;
            if (strcmp(out, val) == 0) {
                c->lags[c->n++] = (double)(mr_mono_us() - t0) / 1000.0;
                break;
            }
        }
        while (mr_mono_us() < next)
            usleep(1000);
    }
    if (pf != -1)
        close(pf);
    for (int i = 0; i < 2; i++)
        if (rf[i] != -1)
            close(rf[i]);
    return NULL;
}

/* redis-benchmark SET, 64 clients, 200-byte values, random keys, while
 * the probe measures the replicas' lag. */
static int redis_measure(const char *base, const struct gt_opts *o, double *rps, double *p50, double *p99,
                         double *lag50, double *lag99, char *err)
{
    struct redis_set r;
    struct redis_probe_ctx *c = mr_calloc(1, sizeof(*c));
    pthread_t th;
    char cmd[256], line[512];
    FILE *f;
    int rc, found = 0;
    long n = (long)(o->duration_ms / 1000.0 * 60000);

    memset(&r, 0, sizeof(r));
    rc = redis_start(&r, base, err);
    if (rc != 0) {
        redis_stop(&r);
        mr_free(c);
        return rc;
    }
    c->r = &r;
    pthread_create(&th, NULL, redis_probe_run, c);
    /* Bounded: redis-benchmark retries for ever when its server is gone. */
    snprintf(cmd, sizeof(cmd), "timeout %lld redis-benchmark -p %d -t set -c %d -d %d -r 1000000 -n %ld --csv 2>/dev/null",
             (long long)(o->duration_ms / 1000 * 10 + 30), r.port[0], o->clients, VALUE_BYTES, n);
    f = popen(cmd, "r");
    while (f && fgets(line, sizeof(line), f)) {
        /* "SET","rps","avg","min","p50","p95","p99","max" */
        if (strncmp(line, "\"SET\"", 5) == 0) {
            double v[7] = {0};
            char *p = line + 6;
            for (int i = 0; i < 7 && p; i++) {
                while (*p == '"' || *p == ',')
                    p++;
                v[i] = strtod(p, &p);
            }
            *rps = v[0];
            *p50 = v[3];
            *p99 = v[5];
            found = 1;
        }
    }
    if (f)
        pclose(f);
    c->stop = 1;
    pthread_join(th, NULL);
    *lag50 = quantile(c->lags, c->n, 0.5);
    *lag99 = quantile(c->lags, c->n, 0.99);
    redis_stop(&r);
    mr_free(c);
    if (!found)
        return mr_seterr(err, MR_EUNAVAIL, "redis-benchmark gave no SET figure");
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */

static int wait_table(const struct topo *t)
{
    for (int tries = 0; tries < 500; tries++) {
        size_t ok = 0;
        for (size_t i = 0; i < t->n_regions; i++) {
            char url[256], err[MR_ERRMSG_LEN];
            struct http_result res;
            snprintf(url, sizeof(url), "%s/v1/tables/bench", t->regions[i].url);
            if (http_fetch("GET", url, t->auth[0] ? t->auth : NULL, NULL, 0, 2000, &res, err) == 0) {
                ok += res.status == 200;
                http_result_close(&res);
            }
        }
        if (ok == t->n_regions)
            return 0;
        usleep(20000);
    }
    return -1;
}

/* The figures of one run; -1 where not measured. */
enum { F_W_RATE, F_W_P50, F_W_P99, F_R_RATE, F_R_P50, F_R_P99, F_LAG50, F_LAG99, F_PACED,
       F_PACED_P50, F_PACED_P99, F_REDIS_RATE, F_REDIS_P50, F_REDIS_P99, F_REDIS_LAG50, F_REDIS_LAG99, F_N };

/* One run of ours on a fresh topology: writes, reads, then the lag under
 * the paced load.  Fills fig[F_W_RATE..F_PACED_P99]; 0 or -1 (message printed). */
static int tables_run(const char *exe, const char *topology, const struct gt_opts *o, double *fig)
{
    char err[MR_ERRMSG_LEN], url[256], hdr[MR_AUTH_HEADER_MAX + 64];
    struct load_result w, rd;
    struct http_result res;
    struct topo t;
    struct paced *p;
    struct prober pr;
    pthread_t th;
    double *lags = mr_calloc(MAX_PROBES, sizeof(double));
    size_t n_lags = 0;
    int64_t end;
    int rc = 0;

    if (topo_up(&t, exe, topology, NULL, "0", 0, err) != 0) {
        fprintf(stderr, "meridian bench tables: %s\n", err);
        mr_free(lags);
        return -1;
    }
    snprintf(url, sizeof(url), "%s/v1/tables/bench", t.regions[0].url);
    snprintf(hdr, sizeof(hdr), "%sContent-Type: application/json\r\n", t.auth);
    if (http_fetch("PUT", url, hdr, "{\"kind\":\"crdt\"}", 15, 5000, &res, err) != 0 ||
        (http_result_close(&res), wait_table(&t) != 0)) {
        fprintf(stderr, "meridian bench tables: cannot create the table\n");
        topo_down(&t, exe);
        mr_free(lags);
        return -1;
    }
    memset(&w, 0, sizeof(w));
    memset(&rd, 0, sizeof(rd));
    if (run_load(&t, o, 0, &w) != 0 || run_load(&t, o, 1, &rd) != 0) {
        fprintf(stderr, "meridian bench tables: load failed: %s\n", w.first_error);
        rc = -1;
    }
    /* Steady rate, probe the lag meanwhile. */
    p = mr_calloc(1, sizeof(*p));
    p->t = &t;
    p->rate = o->rate;
    p->seed = 42;
    pthread_create(&th, NULL, paced_run, p);
    /* A fixed second of paced load before the probes: in it the load opens
     * its connections (with TLS each costs a handshake on both sides), which
     * the first probes otherwise measured.  A warm-up period, not a wait
     * for a condition: the probes measure whatever state follows it. */
    usleep(PACED_WARMUP_MS * 1000);
    end = mr_mono_us() + o->duration_ms * 1000;
    if (prober_open(&pr, &t) != 0)
        end = 0;
    for (int i = 0; mr_mono_us() < end && n_lags < MAX_PROBES; i++) {
        int64_t next = mr_mono_us() + PROBE_EVERY_MS * 1000;
        if (table_probe(&t, &pr, i, &lags[n_lags]) == 0)
            n_lags++;
        while (mr_mono_us() < next)
            usleep(1000);
    }
    if (end != 0)
        prober_close(&pr);
    p->stop = 1;
    pthread_join(th, NULL);
    fig[F_W_RATE] = w.all.rate;
    fig[F_W_P50] = w.all.p50_ms;
    fig[F_W_P99] = w.all.p99_ms;
    fig[F_R_RATE] = rd.all.rate;
    fig[F_R_P50] = rd.all.p50_ms;
    fig[F_R_P99] = rd.all.p99_ms;
    fig[F_LAG50] = quantile(lags, n_lags, 0.5);
    fig[F_LAG99] = quantile(lags, n_lags, 0.99);
    fig[F_PACED] = (double)p->ok * 1e6 / (double)(mr_mono_us() - p->start_us);
    if (p->lat.n > 0) {
        struct load_stats st;
        load_stats_of(p->lat.us, p->lat.n, 0, 0, 0, &st);
        fig[F_PACED_P50] = st.p50_ms;
        fig[F_PACED_P99] = st.p99_ms;
    }
    printf("  writes %8.0f /s p50 %5.2f p99 %6.2f ms (%llu failed) | reads %8.0f /s p99 %5.2f ms | "
           "lag p50 %5.2f p99 %6.2f ms (%zu probes, %.0f paced writes/s p50 %.2f p99 %.2f ms, %llu failed%s%s)\n",
           w.all.rate, w.all.p50_ms, w.all.p99_ms, (unsigned long long)w.all.failed, rd.all.rate,
           rd.all.p99_ms, fig[F_LAG50], fig[F_LAG99], n_lags, fig[F_PACED], fig[F_PACED_P50], fig[F_PACED_P99],
           (unsigned long long)p->failed, p->failed ? ": " : "", p->first_error);
    fflush(stdout);
    mr_free(p->lat.us);
    mr_free(p);
    mr_free(lags);
    topo_down(&t, exe);
    return rc;
}

/* Median of figure <f> over the runs that measured it (-1: none). */
static double median(double (*fig)[F_N], int runs, int f)
{
    double v[64];
    int n = 0;

    for (int i = 0; i < runs; i++)
        if (fig[i][f] >= 0)
            v[n++] = fig[i][f];
    return n ? report_median_of(v, (size_t)n) : -1;
}

/* The default topology with tls = no and auth = no, into <path>. */
static int write_plain_topology(const char *path)
{
    FILE *f = fopen(path, "w");
    const char *p = up_default_topology;
    int ok, replaced = 0;

    if (f == NULL)
        return -1;
    for (const char *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
        size_t n;
        nl = strchr(p, '\n');
        n = nl ? (size_t)(nl - p) : strlen(p);
        if ((n == 9 && strncmp(p, "tls = yes", 9) == 0) || (n == 10 && strncmp(p, "auth = yes", 10) == 0)) {
            fprintf(f, "%.*s = no\n", p[0] == 't' ? 3 : 4, p);
            replaced++;
        } else {
            fprintf(f, "%.*s\n", (int)n, p);
        }
    }
    /* Both settings must have been found, or "plain" would measure TLS. */
    ok = ferror(f) == 0 && replaced == 2;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Issue 4's write target against the floor (decision 052): the CPU SQLite
 * alone needs per write over three regions (`meridian bench store`), and
 * what is left of this machine's cores at 30,000 writes/s.  With Redis's
 * rate, the bound if our request path were as cheap as Redis's whole one
 * (its rate on these cores bounds the CPU it spends per SET), and the mean
 * latency that bound implies for <clients> closed-loop clients. */
static void print_floor(double redis_rate, int clients)
{
    struct storebench_sample s[3];
    char err[MR_ERRMSG_LEN];
    double cores = (double)sysconf(_SC_NPROCESSORS_ONLN), ns, redis_ns;

    if (storebench_floor(3, 10000, 100000, 64, s, err) != 0) {
        printf("floor: not measured: %s\n", err);
        return;
    }
    ns = storebench_three_regions_ns(s, 3);
    printf("floor: SQLite alone needs %.0f us of CPU per write over three regions (meridian bench store): "
           "30000 writes/s would take %.2f of %.0f cores before any request is parsed\n", ns / 1000,
           30000 * ns / 1e9, cores);
    if (redis_rate > 0) {
        redis_ns = cores * 1e9 / redis_rate;
        /* Closed-loop clients: the mean latency is clients / rate (Little's law). */
        printf("floor: with a request path as cheap as Redis's whole one (at most %.0f us per SET here), at most "
               "%.0f writes/s, so a mean write latency of at least %.2f ms at %d clients\n", redis_ns / 1000,
               cores * 1e9 / (ns + redis_ns), clients * (ns + redis_ns) / cores / 1e6, clients);
    }
    fflush(stdout);
}

int gtbench_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"duration", required_argument, NULL, 'd'},
                                             {"clients", required_argument, NULL, 'c'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"runs", required_argument, NULL, 'n'},
                                             {"no-redis", no_argument, NULL, 'R'},
                                             {"no-plain", no_argument, NULL, 'P'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct gt_opts o = {5000, 1000, 64, 5000, 1};
    char err[MR_ERRMSG_LEN], exe[4096], base[] = "/tmp/meridian-gtbench-XXXXXX";
    char plain_topology[sizeof(base) + 16];
    double (*fig)[F_N], (*figp)[F_N], m[F_N], mp[F_N];
    int opt, status = 0, runs = 3, plain = 1;
    ssize_t len;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:r:n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            if (mr_parse_duration_ms(optarg, &o.duration_ms) != 0 || o.duration_ms < 1000) {
                fprintf(stderr, "meridian bench tables: --duration: expected 1s or more\n");
                return 2;
            }
            break;
        case 'c': o.clients = atoi(optarg); break;
        case 'r': o.rate = atoi(optarg); break;
        case 'n': runs = atoi(optarg); break;
        case 'R': o.redis = 0; break;
        case 'P': plain = 0; break;
        case 'h':
            printf("usage: meridian bench tables [--runs 3] [--duration 5s] [--clients 64] [--rate 5000] "
                   "[--no-redis] [--no-plain]\n"
                   "Each run measures the default topology (TLS and tokens on), then the same\n"
                   "with tls = no and auth = no (the cost of TLS; --no-plain skips it), then Redis.\n");
            return 0;
        default: return 2;
        }
    }
    if (o.clients < 1 || o.clients > 512 || o.rate < 1 || o.rate > 100000 || runs < 1 || runs > 64) {
        fprintf(stderr, "meridian bench tables: --clients 1..512, --rate 1..100000, --runs 1..64\n");
        return 2;
    }
    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0 || mkdtemp(base) == NULL) {
        fprintf(stderr, "meridian bench tables: cannot find the executable or make %s\n", base);
        return 1;
    }
    exe[len] = '\0';
    fig = mr_calloc((size_t)runs, sizeof(*fig));
    figp = mr_calloc((size_t)runs, sizeof(*figp));
    snprintf(plain_topology, sizeof(plain_topology), "%s/plain.ini", base);
    if (plain && write_plain_topology(plain_topology) != 0) {
        fprintf(stderr, "meridian bench tables: cannot write %s\n", plain_topology);
        return 1;
    }
    printf("meridian bench tables: 3 regions, %d clients, %lld ms per figure, %d runs%s\n", o.clients,
           (long long)o.duration_ms, runs, o.redis ? ", each followed by a Redis 7 run" : "");
    fflush(stdout);
    /* Ours and Redis alternate, so that a noisy minute of the shared
     * machine hits both (docs/benchmarks.md). */
    for (int i = 0; i < runs; i++) {
        for (int f = 0; f < F_N; f++)
            fig[i][f] = figp[i][f] = -1;
        printf("run %d:\n", i + 1);
        if (tables_run(exe, NULL, &o, fig[i]) != 0)
            status = 1;
        if (plain) {
            printf("  without TLS and tokens:\n");
            if (tables_run(exe, plain_topology, &o, figp[i]) != 0)
                status = 1;
        }
        if (!o.redis)
            continue;
        if (redis_measure(base, &o, &fig[i][F_REDIS_RATE], &fig[i][F_REDIS_P50], &fig[i][F_REDIS_P99],
                          &fig[i][F_REDIS_LAG50], &fig[i][F_REDIS_LAG99], err) != 0) {
            fprintf(stderr, "meridian bench tables: redis: %s\n", err);
            fig[i][F_REDIS_RATE] = -1;
            status = status ? status : 1;
            continue;
        }
        printf("  redis  %8.0f /s p50 %5.2f p99 %6.2f ms | replica lag p50 %5.2f p99 %6.2f ms\n",
               fig[i][F_REDIS_RATE], fig[i][F_REDIS_P50], fig[i][F_REDIS_P99], fig[i][F_REDIS_LAG50],
               fig[i][F_REDIS_LAG99]);
        fflush(stdout);
    }
    (void)topo_remove_dir(base);
    for (int f = 0; f < F_N; f++) {
        m[f] = median(fig, runs, f);
        mp[f] = median(figp, runs, f);
    }
    printf("medians over %d runs:\n", runs);
    printf("%-44s %10.0f /s  p50 %6.2f ms  p99 %6.2f ms\n", "local writes (durable, 3 regions)", m[F_W_RATE],
           m[F_W_P50], m[F_W_P99]);
    printf("%-44s %10.0f /s  p50 %6.2f ms  p99 %6.2f ms\n", "local reads", m[F_R_RATE], m[F_R_P50], m[F_R_P99]);
    printf("%-44s p50 %6.2f ms  p99 %6.2f ms  (at %.0f writes/s)\n", "replication lag under the steady load",
           m[F_LAG50], m[F_LAG99], m[F_PACED]);
    /* Below saturation: how much of the write p99 is the load's own queue. */
    printf("%-44s p50 %6.2f ms  p99 %6.2f ms  (at %.0f writes/s)\n", "local writes under the steady load",
           m[F_PACED_P50], m[F_PACED_P99], m[F_PACED]);
    if (plain && mp[F_W_RATE] > 0) {
        printf("%-44s %10.0f /s  p50 %6.2f ms  p99 %6.2f ms\n", "local writes without TLS and tokens",
               mp[F_W_RATE], mp[F_W_P50], mp[F_W_P99]);
        printf("%-44s p50 %6.2f ms  p99 %6.2f ms  (at %.0f writes/s)\n", "replication lag without TLS",
               mp[F_LAG50], mp[F_LAG99], mp[F_PACED]);
        /* Issue 8's target: TLS costs under 15 % of throughput. */
        printf("TLS cost: writes %.2f of plain (target >= 0.85: %s), write p99 %.2fx, lag p99 %.2fx, "
               "paced writes %.2f of plain\n", m[F_W_RATE] / mp[F_W_RATE],
               m[F_W_RATE] / mp[F_W_RATE] >= 0.85 ? "met" : "MISSED",
               m[F_W_P99] / (mp[F_W_P99] > 0 ? mp[F_W_P99] : 1), m[F_LAG99] / (mp[F_LAG99] > 0 ? mp[F_LAG99] : 1),
               m[F_PACED] / (mp[F_PACED] > 0 ? mp[F_PACED] : 1));
    }
    if (m[F_REDIS_RATE] > 0) {
        printf("%-44s %10.0f /s  p50 %6.2f ms  p99 %6.2f ms\n", "redis 7 SET (everysec, 2 replicas)",
               m[F_REDIS_RATE], m[F_REDIS_P50], m[F_REDIS_P99]);
        printf("%-44s p50 %6.2f ms  p99 %6.2f ms\n", "redis replica lag", m[F_REDIS_LAG50], m[F_REDIS_LAG99]);
        /* Ratios of the medians: above 1 is better for writes, below 1 for latencies. */
        printf("ratios to redis: writes %.2fx, write p99 %.2fx, lag p99 %.2fx\n", m[F_W_RATE] / m[F_REDIS_RATE],
               m[F_W_P99] / (m[F_REDIS_P99] > 0 ? m[F_REDIS_P99] : 1),
               m[F_LAG99] / (m[F_REDIS_LAG99] > 0 ? m[F_REDIS_LAG99] : 1));
    }
    printf("targets: writes >= 30000/s %s, write p99 < 5 ms %s, lag p99 < 20 ms %s\n",
           m[F_W_RATE] >= 30000 ? "met" : "MISSED", m[F_W_P99] >= 0 && m[F_W_P99] < 5 ? "met" : "MISSED",
           m[F_LAG99] >= 0 && m[F_LAG99] < 20 ? "met" : "MISSED");
    print_floor(m[F_REDIS_RATE], o.clients);
    if (status == 0 && (m[F_W_RATE] < 30000 || m[F_W_P99] < 0 || m[F_W_P99] >= 5 || m[F_LAG99] < 0 ||
                        m[F_LAG99] >= 20))
        status = 3;
    mr_free(fig);
    mr_free(figp);
    return status;
}
