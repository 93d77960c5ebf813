/* edgebench.c -- `meridian bench edge` (see edgebench.h).
 *
 * Throughput: a closed loop of <clients> keep-alive clients (load.h, one
 * loop, like wrk -t1) against (1) the origin direct, (2) `meridian edge` in
 * front of it, (3) HAProxy in front of it; the three alternate within each
 * run so that the shared machine's noise falls on all of them, and the
 * medians over the runs are reported with the ratios and the latency each
 * proxy adds (its p50/p99 minus the direct one's).
 *
 * TLS (issue 8): a second edge, in the same runs, terminates TLS for the
 * load clients (anonymous, as browsers) and calls a second origin that
 * requires the edge's client certificate (mTLS, as the shops do), against
 * the plain edge.  The CA and certificates are made for the run in the
 * temporary directory (src/tls/cert.c) and removed with it.  Every
 * connection is keep-alive on both sides, so the figure is the cost of the
 * record layer plus the occasional handshake, as in production.
 *
 * Failover: <fo_clients> clients issue GETs back to back through the proxy
 * in front of two origins (a preferred, b next); one second in, origin a is
 * SIGKILLed (or SIGSTOPped); the load goes on for two more seconds.  Every
 * request is recorded: a failed one is an error the user saw, and the
 * recovery time is from the fault to the end of the last request that
 * failed or was slow (over max(100 ms, 10 x the p99 before the fault)).
 */
#include "edgebench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/crypto.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../http/http.h"
#include "../tls/tls.h"
#include "load.h"
#include "report.h"
#include "tlsbench.h"

#define MAX_RUNS 25
#define LIGHT_CLIENTS 4       /* the light-load latency figure */
#define SELF_EXE "/proc/self/exe"

enum { T_DIRECT = 0, T_EDGE, T_HAPROXY, T_EDGE_TLS, T_HAPROXY_TLS, N_TARGETS };
static const char *const target_names[N_TARGETS] = {"origin direct", "meridian edge", "haproxy 2.6",
                                                    "edge TLS+mTLS", "haproxy TLS"};

struct opts {
    int runs;
    int clients, fo_clients;
    int64_t duration_ms, warmup_ms;
    int no_haproxy, fail_on_miss, no_tls;
};

struct proc {
    int pid;
    int port;
};

struct bench {
    struct opts o;
    char dir[64];
    struct proc origin[2];
    struct proc edge, haproxy, haproxy_tls;
    struct proc tls_origin, tls_edge;  /* the TLS variant (unless --no-tls) */
    char tls_dir[96];                  /* its CA and certificates: <dir>/tls */
    struct tls_ctx *tls_client;        /* the load's: trusts the CA, no certificate */
    struct load_stats tp[N_TARGETS][MAX_RUNS];
    double per_cpu[N_TARGETS][MAX_RUNS];   /* requests per CPU-second of the server */
    struct load_stats light[N_TARGETS][MAX_RUNS];  /* LIGHT_CLIENTS clients: latency */
    int n_light[N_TARGETS];
    int n_tp[N_TARGETS];
};

/* ---- the origin: a 99-byte JSON answer, /readyz ---- */

static void origin_handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    static const char body[] = "{\"region\":\"bench\",\"items\":[1,2,3,4,5,6,7,8],"
                               "\"message\":\"hello from the origin of the bench\"}\n";

    (void)data;
    if (strcmp(req->path, "/readyz") == 0)
        http_respond(ex, 200, "text/plain", "ready\n", 6, NULL);
    else
        http_respond(ex, 200, "application/json", body, sizeof(body) - 1, NULL);
}

/* In a child of the bench: go when the bench goes, however it ends (a
 * SIGTERM or SIGKILL of the bench alone would otherwise leave its origins
 * and edges running). */
static void die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
}

/* <tls_dir>: NULL for plain HTTP, else the directory of ca.crt and
 * origin.crt/.key: the origin then requires a client certificate, as a shop. */
static void origin_child(int port, int fd, const char *tls_dir)
{
    uv_loop_t loop;
    struct http_server *s;
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];
    int bound;

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    http_server_opts_default(&o);
    o.server_name = "bench-origin";
    if (tls_dir != NULL) {
        char ca[160], crt[160], key[160];
        struct tls_opts to = {ca, crt, key, 1, 0, 0};
        snprintf(ca, sizeof(ca), "%s/ca.crt", tls_dir);
        snprintf(crt, sizeof(crt), "%s/origin.crt", tls_dir);
        snprintf(key, sizeof(key), "%s/origin.key", tls_dir);
        if (tls_ctx_new(&to, 1, &o.tls, err) != 0) {
            fprintf(stderr, "bench origin: %s\n", err);
            _exit(3);
        }
    }
    if (http_server_start(&loop, "127.0.0.1", port, &o, origin_handler, NULL, &s, err) != 0) {
        fprintf(stderr, "bench origin: %s\n", err);
        _exit(3);
    }
    bound = http_server_port(s);
    if (write(fd, &bound, sizeof(bound)) != (ssize_t)sizeof(bound))
        _exit(3);
    close(fd);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* Start an origin on <port> (0: from the kernel); TLS when <tls_dir>. */
static int origin_start_tls(struct proc *p, int port, const char *tls_dir)
{
    int fds[2], bound = 0;
    pid_t parent = getpid();

    if (pipe(fds) != 0)
        return MR_EIO;
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return MR_EIO;
    }
    if (p->pid == 0) {
        die_with_parent(parent);
        close(fds[0]);
        origin_child(port, fds[1], tls_dir);
    }
    close(fds[1]);
    if (read(fds[0], &bound, sizeof(bound)) != (ssize_t)sizeof(bound))
        bound = 0;
    close(fds[0]);
    if (bound == 0) {
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
        return MR_EIO;
    }
    p->port = bound;
    return 0;
}

static int origin_start(struct proc *p, int port)
{
    return origin_start_tls(p, port, NULL);
}

static void proc_stop(struct proc *p, int sig)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT);
    kill(p->pid, sig);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* ---- helpers ---- */

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return MR_EIO;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : MR_EIO;
}

/* <out> := the bytes of <a>, then those of <b> (mode 0600: it holds a key). */
static int concat_files(const char *out, const char *a, const char *b)
{
    const char *in[2] = {a, b};
    char buf[8192];
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc = 0;

    if (fd < 0)
        return MR_EIO;
    for (int i = 0; i < 2 && rc == 0; i++) {
        FILE *f = fopen(in[i], "rb");
        size_t n;
        if (f == NULL) {
            rc = MR_EIO;
            break;
        }
        while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
            rc = mr_write_all(fd, buf, n) == 0 ? 0 : MR_EIO;
        if (ferror(f))
            rc = MR_EIO;
        fclose(f);
    }
    if (close(fd) != 0)
        rc = MR_EIO;
    return rc;
}

static int free_port(void)
{
    int port = mr_free_port();

    return port > 0 ? port : 0;
}

/* GET <path> on 127.0.0.1:<port> until it answers 200, at most <ms>.
 * <tls>: over https (with the context given to http_fetch_set_tls). */
static int wait_ready_scheme(int port, const char *path, int64_t ms, int tls)
{
    int64_t end = mr_mono_us() / 1000 + ms;
    char url[64], err[MR_ERRMSG_LEN];

    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", tls ? "https" : "http", port, path);
    while (mr_mono_us() / 1000 < end) {
        struct http_result r;
        if (http_fetch("GET", url, NULL, NULL, 0, 500, &r, err) == 0) {
            int st = r.status;
            http_result_close(&r);
            if (st == 200)
                return 0;
        }
        usleep(20 * 1000);   /* polling a child that is starting up */
    }
    return MR_ETIMEDOUT;
}

static int wait_ready(int port, const char *path, int64_t ms)
{
    return wait_ready_scheme(port, path, ms, 0);
}

static int spawn(struct proc *p, char *const argv[], const char *log)
{
    pid_t parent = getpid();

    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0)
        return MR_EIO;
    if (p->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        die_with_parent(parent);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return 0;
}

/* The edge over origin a (and b when <two>): prefer a. */
static int edge_start(struct bench *b, int two)
{
    char ini[2048], path[128], log[128];
    char *argv[] = {(char *)SELF_EXE, (char *)"edge", (char *)"--config", path, NULL};
    int n;

    b->edge.port = free_port();
    n = snprintf(ini, sizeof(ini),
                 "[edge]\nlisten = 127.0.0.1:%d\nname = bench\nlog_level = warn\nprefer = a%s\n"
                 "[health]\nprobe_interval = 250ms\nprobe_timeout = 250ms\n"
                 "[proxy]\ntry_timeout = 300ms\ntotal_timeout = 3s\n"
                 "[region a]\norigin = http://127.0.0.1:%d\n",
                 b->edge.port, two ? ", b" : "", b->origin[0].port);
    if (two)
        snprintf(ini + n, sizeof(ini) - (size_t)n, "[region b]\norigin = http://127.0.0.1:%d\n",
                 b->origin[1].port);
    snprintf(path, sizeof(path), "%s/edge.ini", b->dir);
    snprintf(log, sizeof(log), "%s/edge.log", b->dir);
    if (write_text(path, ini) != 0 || spawn(&b->edge, argv, log) != 0)
        return MR_EIO;
    return wait_ready(b->edge.port, "/readyz", 10000);
}

/* The TLS variant: the same edge configuration, but clients speak TLS to it
 * (public certificate, anonymous clients) and it calls the TLS origin with
 * its client certificate. */
static int tls_edge_start(struct bench *b)
{
    char ini[2048], path[128], log[128];
    char *argv[] = {(char *)SELF_EXE, (char *)"edge", (char *)"--config", path, NULL};
    const char *d = b->tls_dir;

    b->tls_edge.port = free_port();
    snprintf(ini, sizeof(ini),
             "[edge]\nlisten = 127.0.0.1:%d\nname = bench-tls\nlog_level = warn\nprefer = a\n"
             "[health]\nprobe_interval = 250ms\nprobe_timeout = 250ms\n"
             "[proxy]\ntry_timeout = 300ms\ntotal_timeout = 3s\n"
             "[tls]\nca_file = %s/ca.crt\ncert_file = %s/edge.crt\nkey_file = %s/edge.key\n"
             "public_cert_file = %s/public.crt\npublic_key_file = %s/public.key\n"
             "[region a]\norigin = https://127.0.0.1:%d\n",
             b->tls_edge.port, d, d, d, d, d, b->tls_origin.port);
    snprintf(path, sizeof(path), "%s/edge-tls.ini", b->dir);
    snprintf(log, sizeof(log), "%s/edge-tls.log", b->dir);
    if (write_text(path, ini) != 0 || spawn(&b->tls_edge, argv, log) != 0)
        return MR_EIO;
    return wait_ready_scheme(b->tls_edge.port, "/readyz", 10000, 1);
}

/* A throw-away CA and the certificates of the TLS variant, in <dir>/tls;
 * the load's client context.  Names are checked: issued for 127.0.0.1. */
static int tls_setup(struct bench *b, char *err)
{
    char ca_file[160];
    struct tls_opts to = {ca_file, NULL, NULL, 0, 0, 0};
    int rc;

    snprintf(b->tls_dir, sizeof(b->tls_dir), "%s/tls", b->dir);
    snprintf(ca_file, sizeof(ca_file), "%s/ca.crt", b->tls_dir);
    if ((rc = tls_cert_make_ca(b->tls_dir, "bench-ca", 1, err)) != 0 ||
        (rc = tls_cert_issue(b->tls_dir, "origin", "127.0.0.1", -60, 86400, b->tls_dir, err)) != 0 ||
        (rc = tls_cert_issue(b->tls_dir, "edge", "127.0.0.1", -60, 86400, b->tls_dir, err)) != 0 ||
        (rc = tls_cert_issue(b->tls_dir, "public", "127.0.0.1", -60, 86400, b->tls_dir, err)) != 0 ||
        (rc = tls_ctx_new(&to, 0, &b->tls_client, err)) != 0)
        return rc;
    http_fetch_set_tls(b->tls_client);
    return 0;
}

/* What both HAProxy configurations share: timeouts, retries and health
 * checks as the edge's (see haproxy_start). */
#define HAPROXY_DEFAULTS                                                                   \
    "defaults\n    mode http\n    timeout connect 250ms\n    timeout client 30s\n"       \
    "    timeout server 300ms\n    retries 3\n    option redispatch 1\n"                 \
    "    retry-on all-retryable-errors\n    http-reuse always\n\n"
#define HAPROXY_CHECKS                                                                     \
    "    option httpchk GET /readyz\n"                                                     \
    "    default-server inter 250ms fall 3 rise 2 observe layer7 error-limit 1 on-error mark-down\n"

/* HAProxy for the same job: health checks of /readyz at the same interval
 * and thresholds, retries with redispatch, errors on live traffic mark a
 * server down at once, 250 ms connect timeout; b is a backup of a. */
static int haproxy_start(struct bench *b, int two)
{
    char cfg[2048], path[128], log[128];
    char *argv[] = {(char *)"haproxy", (char *)"-f", path, (char *)"-db", NULL};
    int n;

    b->haproxy.port = free_port();
    n = snprintf(cfg, sizeof(cfg),
                 "global\n    nbthread 1\n    maxconn 4096\n\n%s"
                 "frontend fe\n    bind 127.0.0.1:%d\n    default_backend be\n\n"
                 "backend be\n%s"
                 "    server a 127.0.0.1:%d check\n", HAPROXY_DEFAULTS, b->haproxy.port, HAPROXY_CHECKS,
                 b->origin[0].port);
    if (two)
        snprintf(cfg + n, sizeof(cfg) - (size_t)n, "    server b 127.0.0.1:%d check backup\n",
                 b->origin[1].port);
    snprintf(path, sizeof(path), "%s/haproxy.cfg", b->dir);
    snprintf(log, sizeof(log), "%s/haproxy.log", b->dir);
    if (write_text(path, cfg) != 0 || spawn(&b->haproxy, argv, log) != 0)
        return MR_EIO;
    return wait_ready(b->haproxy.port, "/", 10000);
}

/* The TLS reference: HAProxy in the TLS edge's place, with the same
 * certificates, suites and TLS 1.3, calling the TLS origin with the edge's
 * client certificate.  It checks the origin's chain but not its name (its
 * verifyhost does not read IP SANs); the edge checks both. */
static int haproxy_tls_start(struct bench *b)
{
    static const char suites[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
    char cfg[2048], path[128], log[128], pem[128], crt[128], key[128];
    char *argv[] = {(char *)"haproxy", (char *)"-f", path, (char *)"-db", NULL};
    const char *d = b->tls_dir;

    /* HAProxy takes a certificate and its key in one file. */
    snprintf(pem, sizeof(pem), "%s/haproxy.pem", d);
    snprintf(crt, sizeof(crt), "%s/edge.crt", d);
    snprintf(key, sizeof(key), "%s/edge.key", d);
    if (concat_files(pem, crt, key) != 0)
        return MR_EIO;
    b->haproxy_tls.port = free_port();
    snprintf(cfg, sizeof(cfg),
             "global\n    nbthread 1\n    maxconn 4096\n    ssl-default-bind-ciphersuites %s\n"
             "    ssl-default-server-ciphersuites %s\n\n%s"
             "frontend fe\n    bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.3\n    default_backend be\n\n"
             "backend be\n%s"
             "    server a 127.0.0.1:%d check ssl verify required ca-file %s/ca.crt crt %s ssl-min-ver TLSv1.3\n",
             suites, suites, HAPROXY_DEFAULTS, b->haproxy_tls.port, pem, HAPROXY_CHECKS, b->tls_origin.port, d,
             pem);
    snprintf(path, sizeof(path), "%s/haproxy-tls.cfg", b->dir);
    snprintf(log, sizeof(log), "%s/haproxy-tls.log", b->dir);
    if (write_text(path, cfg) != 0 || spawn(&b->haproxy_tls, argv, log) != 0)
        return MR_EIO;
    return wait_ready_scheme(b->haproxy_tls.port, "/", 10000, 1);
}

static void stop_all(struct bench *b)
{
    proc_stop(&b->haproxy_tls, SIGTERM);
    proc_stop(&b->tls_edge, SIGTERM);
    proc_stop(&b->tls_origin, SIGKILL);
    proc_stop(&b->edge, SIGTERM);
    proc_stop(&b->haproxy, SIGTERM);
    proc_stop(&b->origin[0], SIGKILL);
    proc_stop(&b->origin[1], SIGKILL);
}

/* ---- throughput ---- */

/* CPU seconds (user + system) used so far by <pid>; -1 when unknown. */
static double cpu_seconds(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');   /* the command name may hold spaces */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void gen_get(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    (void)client;
    (void)seq;
    (void)data;
    req->path = "/";
}

/* Latency at light load: LIGHT_CLIENTS clients, so that the figure shows
 * what the proxy adds to one request rather than CPU queueing. */
static int measure_light(struct bench *b, int target, int port)
{
    struct load_target t = {"127.0.0.1", port};
    struct load_spec s;
    struct load_result r;
    int rc;

    memset(&s, 0, sizeof(s));
    s.tls = target == T_EDGE_TLS || target == T_HAPROXY_TLS ? b->tls_client : NULL;
    s.targets = &t;
    s.n_targets = 1;
    s.n_clients = LIGHT_CLIENTS;
    s.duration_ms = (uint64_t)(b->o.duration_ms / 2 > 1000 ? b->o.duration_ms / 2 : 1000);
    s.warmup_ms = 200;
    s.gen = gen_get;
    rc = load_run(&s, &r);
    if (rc != 0)
        return rc;
    b->light[target][b->n_light[target]++] = r.all;
    fprintf(stderr, "  %-14s light load: p50 %.3f ms  p99 %.3f ms\n", target_names[target],
            r.all.p50_ms, r.all.p99_ms);
    return 0;
}

static int measure(struct bench *b, int target, int port)
{
    struct load_target t = {"127.0.0.1", port};
    struct load_spec s;
    struct load_result r;
    int pid = target == T_DIRECT  ? b->origin[0].pid
            : target == T_EDGE    ? b->edge.pid
            : target == T_EDGE_TLS ? b->tls_edge.pid
            : target == T_HAPROXY_TLS ? b->haproxy_tls.pid
                                  : b->haproxy.pid;
    double cpu0 = cpu_seconds(pid), cpu1;
    int rc;

    memset(&s, 0, sizeof(s));
    s.tls = target == T_EDGE_TLS || target == T_HAPROXY_TLS ? b->tls_client : NULL;
    s.targets = &t;
    s.n_targets = 1;
    s.n_clients = (size_t)b->o.clients;
    s.duration_ms = (uint64_t)b->o.duration_ms;
    s.warmup_ms = (uint64_t)b->o.warmup_ms;
    s.gen = gen_get;
    rc = load_run(&s, &r);
    if (rc != 0 || r.all.failed > 0) {
        fprintf(stderr, "bench edge: %s: %llu failed (%s)\n", target_names[target],
                (unsigned long long)r.all.failed, r.first_error);
        if (rc != 0)
            return rc;
    }
    cpu1 = cpu_seconds(pid);
    /* the CPU counts the warmup too: so do the requests */
    b->per_cpu[target][b->n_tp[target]] =
        cpu0 >= 0 && cpu1 > cpu0
            ? r.all.rate * (double)(b->o.duration_ms + b->o.warmup_ms) / 1000.0 / (cpu1 - cpu0)
            : 0;
    b->tp[target][b->n_tp[target]++] = r.all;
    fprintf(stderr, "  %-14s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  %.0f req per CPU-s\n",
            target_names[target], r.all.rate, r.all.p50_ms, r.all.p99_ms,
            b->per_cpu[target][b->n_tp[target] - 1]);
    return 0;
}

static double median(double *v, int n)
{
    return report_median_of(v, (size_t)n);
}

struct med {
    double rate, p50, p99, per_cpu;
};

static struct med med_of(const struct bench *b, int target)
{
    double r[MAX_RUNS], p5[MAX_RUNS], p9[MAX_RUNS], pc[MAX_RUNS];
    int n = b->n_tp[target];
    struct med m;

    for (int i = 0; i < n; i++) {
        r[i] = b->tp[target][i].rate;
        p5[i] = b->tp[target][i].p50_ms;
        p9[i] = b->tp[target][i].p99_ms;
        pc[i] = b->per_cpu[target][i];
    }
    m.per_cpu = median(pc, n);
    m.rate = median(r, n);
    m.p50 = median(p5, n);
    m.p99 = median(p9, n);
    return m;
}

/* ---- failover ---- */

struct fo_rec {
    int64_t start_us, end_us;
    int ok;
};

struct fo {
    uv_loop_t loop;
    struct http_client *c;
    int port;
    int64_t end_us, fault_us;
    struct fo_rec *recs;
    size_t n, cap;
    int active;
    uv_timer_t fault;
    struct proc *victim;
    int sig;
};

struct fo_client {
    struct fo *f;
    int64_t start_us;
};

static void fo_send(struct fo_client *cl);

static void fo_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct fo_client *cl = data;
    struct fo *f = cl->f;

    (void)call;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 65536;
        f->recs = mr_realloc(f->recs, f->cap * sizeof(*f->recs));
    }
    f->recs[f->n].start_us = cl->start_us;
    f->recs[f->n].end_us = mr_mono_us();
    f->recs[f->n].ok = rc == 0 && resp->status == 200;
    f->n++;
    fo_send(cl);
}

static void fo_send(struct fo_client *cl)
{
    struct fo *f = cl->f;
    struct http_client_request q;

    if (mr_mono_us() >= f->end_us) {
        if (--f->active == 0) {
            http_client_free(f->c);
            uv_close((uv_handle_t *)&f->fault, NULL);
        }
        return;
    }
    memset(&q, 0, sizeof(q));
    q.method = "GET";
    q.host = "127.0.0.1";
    q.port = f->port;
    q.path = "/";
    q.timeout_ms = 5000;
    cl->start_us = mr_mono_us();
    if (http_client_request(f->c, &q, fo_cb, cl, NULL) != 0)
        --f->active;
}

static void fo_fault_cb(uv_timer_t *t)
{
    struct fo *f = t->data;

    f->fault_us = mr_mono_us();
    kill(f->victim->pid, f->sig);
    if (f->sig == SIGKILL) {
        waitpid(f->victim->pid, NULL, 0);
        f->victim->pid = 0;
    }
}

struct fo_result {
    uint64_t requests, failed;
    double recovery_ms;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static void fo_run(int port, int n_clients, struct proc *victim, int sig, struct fo_result *out)
{
    struct fo f;
    struct fo_client *cl = mr_calloc((size_t)n_clients, sizeof(*cl));
    struct http_client_opts co;
    int64_t *lat, thresh, last_bad = 0;
    size_t nb = 0;

    memset(&f, 0, sizeof(f));
    uv_loop_init(&f.loop);
    http_client_opts_default(&co);
    co.max_idle_per_host = (size_t)n_clients;
    if (http_client_new(&f.loop, &co, &f.c) != 0)
        abort();
    f.port = port;
    f.victim = victim;
    f.sig = sig;
    f.end_us = mr_mono_us() + 3000 * 1000;
    uv_timer_init(&f.loop, &f.fault);
    f.fault.data = &f;
    uv_timer_start(&f.fault, fo_fault_cb, 1000, 0);
    f.active = n_clients;
    for (int i = 0; i < n_clients; i++) {
        cl[i].f = &f;
        fo_send(&cl[i]);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&f.loop);
    /* the p99 before the fault */
    lat = mr_malloc((f.n + 1) * sizeof(*lat));
    for (size_t i = 0; i < f.n; i++)
        if (f.recs[i].end_us < f.fault_us && f.recs[i].ok)
            lat[nb++] = f.recs[i].end_us - f.recs[i].start_us;
    qsort(lat, nb, sizeof(*lat), cmp_i64);
    thresh = nb ? lat[(size_t)(0.99 * (double)(nb - 1))] * 10 : 0;
    /* 100 ms: well above a scheduling hiccup on this shared machine, well
     * below what a fault costs a request (a 300 ms per-try timeout). */
    if (thresh < 100000)
        thresh = 100000;
    out->requests = f.n;
    out->failed = 0;
    for (size_t i = 0; i < f.n; i++) {
        struct fo_rec *r = &f.recs[i];
        if (!r->ok)
            out->failed++;
        if (r->end_us >= f.fault_us && (!r->ok || r->end_us - r->start_us > thresh) &&
            r->end_us > last_bad)
            last_bad = r->end_us;
    }
    out->recovery_ms = last_bad ? (double)(last_bad - f.fault_us) / 1000.0 : 0;
    mr_free(lat);
    mr_free(f.recs);
    mr_free(cl);
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian bench edge [--runs N] [--duration 5s] [--warmup 1s] [--clients 64]\n"
            "                           [--failover-clients 16] [--quick] [--no-haproxy]\n"
            "                           [--no-tls] [--fail-on-miss]\n\n"
            "The edge proxy in front of one origin against the origin direct and against\n"
            "HAProxy 2.6 (nbthread 1, health checks, retries, redispatch) in the same run;\n"
            "then failed requests and recovery time when an origin is SIGKILLed or SIGSTOPped\n"
            "under steady GET traffic.  Medians over the runs.  With TLS (unless --no-tls): a\n"
            "second edge that clients reach over TLS and that calls its origin with mutual\n"
            "TLS, against the plain edge (throw-away CA and certificates in a temp dir).\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"runs", required_argument, NULL, 'r'},     {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},   {"clients", required_argument, NULL, 'c'},
        {"failover-clients", required_argument, NULL, 'f'},
        {"quick", no_argument, NULL, 'q'},          {"no-haproxy", no_argument, NULL, 'n'},
        {"fail-on-miss", no_argument, NULL, 'F'},   {"help", no_argument, NULL, 'h'},
        {"no-tls", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    int64_t v;
    int opt;

    o->runs = 3;
    o->clients = 64;
    o->fo_clients = 16;
    o->duration_ms = 5000;
    o->warmup_ms = 1000;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            if (mr_parse_i64(optarg, 1, MAX_RUNS, &v) != 0)
                goto bad;
            o->runs = (int)v;
            break;
        case 'd':
            if (mr_parse_duration_ms(optarg, &o->duration_ms) != 0 || o->duration_ms < 500)
                goto bad;
            break;
        case 'w':
            if (mr_parse_duration_ms(optarg, &o->warmup_ms) != 0)
                goto bad;
            break;
        case 'c':
            if (mr_parse_i64(optarg, 1, 1024, &v) != 0)
                goto bad;
            o->clients = (int)v;
            break;
        case 'f':
            if (mr_parse_i64(optarg, 1, 256, &v) != 0)
                goto bad;
            o->fo_clients = (int)v;
            break;
        case 'q':
            o->runs = 1;
            o->duration_ms = 2000;
            o->warmup_ms = 500;
            break;
        case 'n': o->no_haproxy = 1; break;
        case 'F': o->fail_on_miss = 1; break;
        case 'T': o->no_tls = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meridian bench edge: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
bad:
    fprintf(stderr, "meridian bench edge: bad option value '%s'\n", optarg);
    return 2;
}

static int have_haproxy(void)
{
    return system("haproxy -v >/dev/null 2>&1") == 0;
}

/* One failover scenario through <proxy_port>; <restore> brings a back. */
static int failover(struct bench *b, const char *who, int port, int sig, struct fo_result *r)
{
    fo_run(port, b->o.fo_clients, &b->origin[0], sig, r);
    printf("%-14s %-8s %10llu %8llu %12.0f\n", who, sig == SIGKILL ? "SIGKILL" : "SIGSTOP",
           (unsigned long long)r->requests, (unsigned long long)r->failed, r->recovery_ms);
    fflush(stdout);
    /* bring a back for the next scenario */
    if (sig == SIGKILL) {
        if (origin_start(&b->origin[0], b->origin[0].port) != 0)
            return MR_EIO;
    } else {
        kill(b->origin[0].pid, SIGCONT);
    }
    /* let the proxy see it healthy again (rise 2 x 250 ms, with margin) */
    usleep(1500 * 1000);
    return 0;
}

/* The least TLS can cost an edge that its own CPU bounds: the CPU that the
 * engine alone spends on the four records of a proxied request (client's
 * request and answer, origin's request and answer: one exchange of
 * `meridian bench tls` with both ends), against <plain_ns>, the plain
 * edge's CPU per request in this run.  However lean the rest of the TLS
 * path, a request cannot cost less than plain + engine.  Prints the figures;
 * *pct is 0 when the engine could not be measured. */
static void tls_floor(double plain_ns, double *pct)
{
    double ns[3], engine_ns;
    char err[MR_ERRMSG_LEN];

    *pct = 0;
    if (tlsbench_measure(3, 50000, 120, 260, ns, err) != 0) {
        fprintf(stderr, "bench edge: the TLS engine could not be measured: %s\n", err);
        return;
    }
    engine_ns = median(ns, 3);
    *pct = 100.0 * engine_ns / (plain_ns + engine_ns);
    printf("TLS floor: the engine spends %.0f ns of CPU on a proxied request's four records "
           "(median of 3 runs of `meridian bench tls`), the plain edge %.0f ns per request: "
           "TLS costs at least %.1f%% of an edge bound by its CPU\n", engine_ns, plain_ns, *pct);
}

int edgebench_main(int argc, char **argv)
{
    struct bench *b = mr_calloc(1, sizeof(*b));
    int rc = parse(argc, argv, &b->o), status = 0, missed = 0;
    struct med m[N_TARGETS];
    double light[N_TARGETS][2] = {{0}};
    double tls_floor_pct = 0;
    struct fo_result fo[2][2];
    char cmd[160], err[MR_ERRMSG_LEN] = "";

    if (rc >= 0) {
        mr_free(b);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!b->o.no_haproxy && !have_haproxy()) {
        fprintf(stderr, "meridian bench edge: haproxy not found (scripts/deps.sh --bench "
                "installs it; --no-haproxy skips it)\n");
        mr_free(b);
        return 1;
    }
    snprintf(b->dir, sizeof(b->dir), "/tmp/meridian-edgebench-XXXXXX");
    if (mkdtemp(b->dir) == NULL) {
        perror("mkdtemp");
        mr_free(b);
        return 1;
    }
    if (origin_start(&b->origin[0], 0) != 0 || origin_start(&b->origin[1], 0) != 0) {
        fprintf(stderr, "bench edge: cannot start the origins\n");
        status = 1;
        goto out;
    }

    if (!b->o.no_tls && (tls_setup(b, err) != 0 ||
                         origin_start_tls(&b->tls_origin, 0, b->tls_dir) != 0)) {
        fprintf(stderr, "bench edge: TLS variant: %s\n", err[0] ? err : "cannot start the TLS origin");
        status = 1;
        goto out;
    }

    /* 1. Throughput and added latency, one origin. */
    if (edge_start(b, 0) != 0 || (!b->o.no_haproxy && haproxy_start(b, 0) != 0) ||
        (!b->o.no_tls && tls_edge_start(b) != 0) ||
        (!b->o.no_tls && !b->o.no_haproxy && haproxy_tls_start(b) != 0)) {
        fprintf(stderr, "bench edge: the edge or haproxy did not start (logs in %s)\n", b->dir);
        status = 1;
        goto out;
    }
    for (int run = 0; run < b->o.runs; run++) {
        fprintf(stderr, "run %d of %d\n", run + 1, b->o.runs);
        if (measure(b, T_DIRECT, b->origin[0].port) != 0 ||
            measure(b, T_EDGE, b->edge.port) != 0 ||
            (!b->o.no_haproxy && measure(b, T_HAPROXY, b->haproxy.port) != 0) ||
            (!b->o.no_tls && measure(b, T_EDGE_TLS, b->tls_edge.port) != 0) ||
            (!b->o.no_tls && !b->o.no_haproxy && measure(b, T_HAPROXY_TLS, b->haproxy_tls.port) != 0) ||
            measure_light(b, T_DIRECT, b->origin[0].port) != 0 ||
            measure_light(b, T_EDGE, b->edge.port) != 0 ||
            (!b->o.no_haproxy && measure_light(b, T_HAPROXY, b->haproxy.port) != 0) ||
            (!b->o.no_tls && measure_light(b, T_EDGE_TLS, b->tls_edge.port) != 0)) {
            status = 1;
            goto out;
        }
    }
    proc_stop(&b->edge, SIGTERM);
    proc_stop(&b->haproxy, SIGTERM);
    proc_stop(&b->tls_edge, SIGTERM);
    proc_stop(&b->haproxy_tls, SIGTERM);
    proc_stop(&b->tls_origin, SIGKILL);
    for (int t = 0; t < N_TARGETS; t++)
        m[t] = med_of(b, t);
    printf("\nmeridian bench edge: %d clients, keep-alive GET of 99 bytes, %lld ms per load, "
           "%d run(s), medians\n\n", b->o.clients, (long long)b->o.duration_ms, b->o.runs);
    printf("%-14s %10s %9s %9s %11s %11s %9s %12s\n", "target", "req/s", "p50 ms", "p99 ms",
           "+p50 ms", "+p99 ms", "vs direct", "req/CPU-s");
    for (int t = 0; t < N_TARGETS; t++) {
        if (b->n_tp[t] == 0)
            continue;
        printf("%-14s %10.0f %9.3f %9.3f %11.3f %11.3f %9.2f %12.0f\n", target_names[t],
               m[t].rate, m[t].p50, m[t].p99, t ? m[t].p50 - m[T_DIRECT].p50 : 0.0,
               t ? m[t].p99 - m[T_DIRECT].p99 : 0.0,
               m[T_DIRECT].rate > 0 ? m[t].rate / m[T_DIRECT].rate : 0, m[t].per_cpu);
    }
    printf("\nlight load (%d clients): latency added to one request\n", LIGHT_CLIENTS);
    printf("%-14s %9s %9s %11s %11s\n", "target", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms");
    for (int t = 0; t < N_TARGETS; t++) {
        double p5[MAX_RUNS], p9[MAX_RUNS];
        int n = b->n_light[t];
        for (int i = 0; i < n; i++) {
            p5[i] = b->light[t][i].p50_ms;
            p9[i] = b->light[t][i].p99_ms;
        }
        if (n == 0)
            continue;
        light[t][0] = median(p5, n);
        light[t][1] = median(p9, n);
        printf("%-14s %9.3f %9.3f %11.3f %11.3f\n", target_names[t], light[t][0], light[t][1],
               t ? light[t][0] - light[T_DIRECT][0] : 0.0,
               t ? light[t][1] - light[T_DIRECT][1] : 0.0);
    }
    if (b->n_tp[T_HAPROXY])
        printf("edge / haproxy: throughput %.2f, requests per CPU-second %.2f\n",
               m[T_EDGE].rate / m[T_HAPROXY].rate,
               m[T_HAPROXY].per_cpu > 0 ? m[T_EDGE].per_cpu / m[T_HAPROXY].per_cpu : 0);
    if (b->n_tp[T_EDGE_TLS] && m[T_EDGE].rate > 0)
        printf("edge TLS+mTLS / plain edge: throughput %.2f (TLS costs %.1f%%), p99 %.3f vs "
               "%.3f ms, requests per CPU-second %.2f\n",
               m[T_EDGE_TLS].rate / m[T_EDGE].rate,
               100.0 * (1.0 - m[T_EDGE_TLS].rate / m[T_EDGE].rate), m[T_EDGE_TLS].p99,
               m[T_EDGE].p99, m[T_EDGE].per_cpu > 0 ? m[T_EDGE_TLS].per_cpu / m[T_EDGE].per_cpu : 0);
    if (b->n_tp[T_EDGE_TLS] && m[T_EDGE].per_cpu > 0)
        tls_floor(1e9 / m[T_EDGE].per_cpu, &tls_floor_pct);
    if (b->n_tp[T_HAPROXY_TLS] && m[T_HAPROXY].rate > 0)
        printf("haproxy TLS+mTLS / plain haproxy (the reference): throughput %.2f (TLS costs %.1f%%), p99 "
               "%.3f vs %.3f ms, requests per CPU-second %.2f\n",
               m[T_HAPROXY_TLS].rate / m[T_HAPROXY].rate,
               100.0 * (1.0 - m[T_HAPROXY_TLS].rate / m[T_HAPROXY].rate), m[T_HAPROXY_TLS].p99,
               m[T_HAPROXY].p99,
               m[T_HAPROXY].per_cpu > 0 ? m[T_HAPROXY_TLS].per_cpu / m[T_HAPROXY].per_cpu : 0);

    /* 2. Failover, two origins: a preferred, b next. */
    printf("\nfailover: %d clients, GET back to back; origin a faulted 1 s in, 2 s more\n\n",
           b->o.fo_clients);
    printf("%-14s %-8s %10s %8s %12s\n", "proxy", "fault", "requests", "failed", "recovery ms");
    if (edge_start(b, 1) != 0) {
        status = 1;
        goto out;
    }
    if (failover(b, "meridian edge", b->edge.port, SIGKILL, &fo[0][0]) != 0 ||
        failover(b, "meridian edge", b->edge.port, SIGSTOP, &fo[0][1]) != 0) {
        status = 1;
        goto out;
    }
    proc_stop(&b->edge, SIGTERM);
    if (!b->o.no_haproxy) {
        if (haproxy_start(b, 1) != 0 ||
            failover(b, "haproxy 2.6", b->haproxy.port, SIGKILL, &fo[1][0]) != 0 ||
            failover(b, "haproxy 2.6", b->haproxy.port, SIGSTOP, &fo[1][1]) != 0) {
            status = 1;
            goto out;
        }
    }

    /* 3. The issue's targets. */
    printf("\ntargets (issue 5):\n");
#define TARGET(ok, ...)                                   \
    do {                                                  \
        printf("  %-4s ", (ok) ? "PASS" : "MISS");        \
        printf(__VA_ARGS__);                              \
        printf("\n");                                     \
        missed += !(ok);                                  \
    } while (0)
    if (b->n_tp[T_HAPROXY])
        TARGET(m[T_EDGE].rate > m[T_HAPROXY].rate, "throughput above HAProxy's: %.0f vs %.0f",
               m[T_EDGE].rate, m[T_HAPROXY].rate);
    TARGET(m[T_EDGE].p99 - m[T_DIRECT].p99 < 0.5,
           "added p99 under 0.5 ms at %d clients: %.3f ms (haproxy %.3f ms)", b->o.clients,
           m[T_EDGE].p99 - m[T_DIRECT].p99,
           b->n_tp[T_HAPROXY] ? m[T_HAPROXY].p99 - m[T_DIRECT].p99 : 0.0);
    TARGET(light[T_EDGE][1] - light[T_DIRECT][1] < 0.5,
           "added p99 under 0.5 ms at %d clients: %.3f ms (haproxy %.3f ms)", LIGHT_CLIENTS,
           light[T_EDGE][1] - light[T_DIRECT][1],
           b->n_light[T_HAPROXY] ? light[T_HAPROXY][1] - light[T_DIRECT][1] : 0.0);
    TARGET(fo[0][0].failed == 0 && fo[0][1].failed == 0,
           "no failed idempotent request: %llu after SIGKILL, %llu after SIGSTOP",
           (unsigned long long)fo[0][0].failed, (unsigned long long)fo[0][1].failed);
    TARGET(fo[0][0].recovery_ms <= 250, "recovery within 250 ms of a SIGKILL: %.0f ms",
           fo[0][0].recovery_ms);
    TARGET(fo[0][1].recovery_ms <= 1000, "recovery within 1 s of a freeze: %.0f ms",
           fo[0][1].recovery_ms);
    if (b->n_tp[T_EDGE_TLS]) {
        printf("\ntargets (issue 8):\n");
        TARGET(m[T_EDGE_TLS].rate >= 0.85 * m[T_EDGE].rate,
               "TLS (client TLS + origin mTLS) costs under 15%% of throughput at %d clients: "
               "%.1f%% (%.0f vs %.0f req/s; haproxy: %.1f%%)", b->o.clients,
               100.0 * (1.0 - m[T_EDGE_TLS].rate / m[T_EDGE].rate), m[T_EDGE_TLS].rate,
               m[T_EDGE].rate,
               b->n_tp[T_HAPROXY_TLS] && m[T_HAPROXY].rate > 0
                   ? 100.0 * (1.0 - m[T_HAPROXY_TLS].rate / m[T_HAPROXY].rate) : 0.0);
        if (tls_floor_pct > 0)
            printf("       (the engine alone makes it at least %.1f%% with %s: see above)\n",
                   tls_floor_pct, OpenSSL_version(OPENSSL_VERSION));
    }
#undef TARGET
    if (missed && b->o.fail_on_miss)
        status = 3;

out:
    stop_all(b);
    /* The throw-away CA goes whatever happened: its key must not linger. */
    http_fetch_set_tls(NULL);
    tls_ctx_free(b->tls_client);
    if (b->tls_dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", b->tls_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench edge: could not remove %s\n", b->tls_dir);
    }
    if (status == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", b->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench edge: could not remove %s\n", b->dir);
    } else {
        fprintf(stderr, "bench edge: logs kept in %s\n", b->dir);
    }
    mr_free(b);
    return status;
}
