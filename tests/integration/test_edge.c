/* A real `meridian edge` process in front of real origin processes.
 *
 * Origins are small HTTP servers made with src/http, each in a process of its
 * own (fork of this test), so that they can be SIGKILLed and SIGSTOPped like
 * a region; the test steers them (answer 5xx, hang, add latency, hold
 * requests) through a shared memory page and reads what they received from
 * it.  Every test starts its own origins and edge, and stops all of them: the
 * edge with SIGTERM, which must end it with status 0 and no sanitizer report
 * in its log.
 *
 * Traffic "flowing" is one or two threads issuing GETs back to back through
 * the edge with http_fetch; every answer that is not 200 is a failure the
 * client saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/util.h"
#include "http/http.h"
#include "lib/cluster.h"
#include "lib/wait.h"

/* ======================================================================
 * Origins
 * ====================================================================== */

enum omode { OM_OK = 0, OM_5XX, OM_HANG, OM_HANG_ORDERS /* only POST /orders hangs */ };

#define OLOG_MAX 64

/* Shared between the test and an origin process. */
struct oshm {
    atomic_int port;          /* set by the origin once bound */
    atomic_int mode;
    atomic_int delay_ms;      /* added to every answer, /readyz included */
    atomic_int release;       /* /hold/... requests are answered once this grows */
    atomic_int park;          /* nonzero: /park/... requests are never answered */
    atomic_int n_req;         /* every request but /readyz */
    atomic_int n_orders;      /* POST /orders received */
    atomic_int n_log;
    char log[OLOG_MAX][48];   /* paths of /hold requests, in arrival order */
};

struct origin {
    char name[16];
    int pid;
    int raw;                  /* answers garbage instead of HTTP */
    struct oshm *m;
};

struct pend {
    struct http_exchange *ex;
    int64_t due_ms;
    int hold_gen;             /* -1: not held */
    int status;
    char body[160];
    char hdrs[512];
};

struct ochild {
    struct oshm *m;
    const char *name;
    struct pend pend[512];
    int n_pend;
    int count;                /* answers to /cache and /vary */
};

static void child_answer_later(struct ochild *c, struct http_exchange *ex, int status,
                               const char *body, const char *hdrs, int hold)
{
    struct pend *p;

    if (c->n_pend == (int)(sizeof(c->pend) / sizeof(c->pend[0]))) {
        http_respond(ex, 503, "text/plain", "busy\n", 5, NULL);
        return;
    }
    p = &c->pend[c->n_pend++];
    p->ex = ex;
    p->due_ms = mr_mono_us() / 1000 + atomic_load(&c->m->delay_ms);
    p->hold_gen = hold ? atomic_load(&c->m->release) : -1;
    p->status = status;
    snprintf(p->body, sizeof(p->body), "%s", body);
    snprintf(p->hdrs, sizeof(p->hdrs), "%s", hdrs ? hdrs : "");
}

static void child_tick(uv_timer_t *t)
{
    struct ochild *c = t->data;
    int64_t now = mr_mono_us() / 1000;

    for (int i = 0; i < c->n_pend;) {
        struct pend *p = &c->pend[i];
        if (atomic_load(&c->m->mode) == OM_HANG || p->due_ms > now ||
            (p->hold_gen >= 0 && atomic_load(&c->m->release) <= p->hold_gen)) {
            i++;
            continue;
        }
        http_respond(p->ex, p->status, "application/json", p->body, strlen(p->body),
                     p->hdrs[0] ? p->hdrs : NULL);
        c->pend[i] = c->pend[--c->n_pend];
    }
}

static void child_handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct ochild *c = data;
    char body[160], hdrs[512] = "";
    const char *tok = http_request_header(req, "Meridian-Token");
    const char *cookie = http_request_header(req, "Cookie");
    int mode = atomic_load(&c->m->mode);
    int status = 200;
    struct mr_buf q;

    if (mode == OM_HANG_ORDERS && strcmp(req->path, "/orders") == 0) {
        atomic_fetch_add(&c->m->n_orders, 1);
        child_answer_later(c, ex, 200, "", NULL, 1);   /* held: never released here */
        return;
    }
    if (mode == OM_HANG) {
        child_answer_later(c, ex, 200, "", NULL, 0);   /* never answered while hanging */
        if (strcmp(req->path, "/readyz") != 0)
            atomic_fetch_add(&c->m->n_req, 1);
        if (strcmp(req->path, "/orders") == 0)
            atomic_fetch_add(&c->m->n_orders, 1);
        return;
    }
    if (mode == OM_5XX) {
        /* an "ALB-level" fault: everything answers 5xx */
        if (strcmp(req->path, "/readyz") != 0)
            atomic_fetch_add(&c->m->n_req, 1);
        http_respond(ex, strcmp(req->path, "/readyz") == 0 ? 503 : 500, "text/plain",
                     "broken\n", 7, NULL);
        return;
    }
    if (strcmp(req->path, "/readyz") == 0) {
        child_answer_later(c, ex, 200, "ready\n", NULL, 0);
        return;
    }
    atomic_fetch_add(&c->m->n_req, 1);
    snprintf(body, sizeof(body), "{\"region\":\"%s\",\"path\":\"%s\"}\n", c->name, req->path);
    if (tok)
        snprintf(hdrs + strlen(hdrs), sizeof(hdrs) - strlen(hdrs), "Meridian-Token: %s\r\n", tok);
    if (cookie)
        snprintf(hdrs + strlen(hdrs), sizeof(hdrs) - strlen(hdrs),
                 "X-Seen-Cookie: %s\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n",
                 cookie);
    if (strcmp(req->path, "/orders") == 0 && strcmp(req->method, "POST") == 0) {
        atomic_fetch_add(&c->m->n_orders, 1);
        status = 201;
    } else if (strncmp(req->path, "/cache", 6) == 0) {
        mr_buf_init(&q);
        if (http_request_query(req, "cc", &q))
            snprintf(hdrs + strlen(hdrs), sizeof(hdrs) - strlen(hdrs), "Cache-Control: %s\r\n",
                     q.data);
        mr_buf_close(&q);
        snprintf(body, sizeof(body), "{\"region\":\"%s\",\"n\":%d}\n", c->name, ++c->count);
    } else if (strcmp(req->path, "/vary") == 0) {
        const char *lang = http_request_header(req, "Accept-Language");
        snprintf(hdrs + strlen(hdrs), sizeof(hdrs) - strlen(hdrs),
                 "Cache-Control: max-age=60\r\nVary: Accept-Language\r\n");
        snprintf(body, sizeof(body), "{\"lang\":\"%s\",\"n\":%d}\n", lang ? lang : "", ++c->count);
    } else if (strncmp(req->path, "/park/", 6) == 0 && atomic_load(&c->m->park)) {
        child_answer_later(c, ex, 200, body, hdrs, 1);
        return;
    } else if (strncmp(req->path, "/hold/", 6) == 0) {
        int i = atomic_fetch_add(&c->m->n_log, 1);
        if (i < OLOG_MAX)
            snprintf(c->m->log[i], sizeof(c->m->log[i]), "%s", req->path);
        child_answer_later(c, ex, 200, body, hdrs, 1);
        return;
    }
    child_answer_later(c, ex, status, body, hdrs, 0);
}

/* The raw origin: whatever arrives, answer a malformed status line. */
static void raw_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    static char buf[4096];

    (void)h;
    (void)sz;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void raw_free_cb(uv_handle_t *h)
{
    free(h);
}

static void raw_write_cb(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, raw_free_cb);
    free(w);
}

static void raw_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    static char garbage[] = "HTTP/1.1 2x0 What\r\nContent-Length: nope\r\n\r\n";
    uv_buf_t out = uv_buf_init(garbage, sizeof(garbage) - 1);
    uv_write_t *w;

    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, raw_free_cb);
        return;
    }
    if (n == 0)
        return;
    uv_read_stop(s);
    w = malloc(sizeof(*w));
    uv_write(w, s, &out, 1, raw_write_cb);
}

static void raw_on_conn(uv_stream_t *l, int status)
{
    uv_tcp_t *c = malloc(sizeof(*c));

    (void)status;
    uv_tcp_init(l->loop, c);
    if (uv_accept(l, (uv_stream_t *)c) == 0)
        uv_read_start((uv_stream_t *)c, raw_alloc_cb, raw_read_cb);
    else
        uv_close((uv_handle_t *)c, raw_free_cb);
}

static void child_main(struct oshm *m, const char *name, int port, int raw)
{
    static struct ochild c;
    uv_loop_t loop;
    uv_timer_t tick;
    struct http_server *srv;
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    if (raw) {
        static uv_tcp_t l;
        struct sockaddr_in sa;
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        uv_tcp_init(&loop, &l);
        uv_ip4_addr("127.0.0.1", port, &sa);
        if (uv_tcp_bind(&l, (struct sockaddr *)&sa, 0) != 0 ||
            uv_listen((uv_stream_t *)&l, 128, raw_on_conn) != 0)
            _exit(3);
        uv_tcp_getsockname(&l, (struct sockaddr *)&ss, &len);
        atomic_store(&m->port, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else {
        c.m = m;
        c.name = name;
        http_server_opts_default(&o);
        o.server_name = "test-origin";
        if (http_server_start(&loop, "127.0.0.1", port, &o, child_handler, &c, &srv, err) != 0) {
            fprintf(stderr, "origin %s: %s\n", name, err);
            _exit(3);
        }
        atomic_store(&m->port, http_server_port(srv));
        uv_timer_init(&loop, &tick);
        tick.data = &c;
        uv_timer_start(&tick, child_tick, 1, 1);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static int origin_port_set(void *arg)
{
    return atomic_load(&((struct origin *)arg)->m->port) != 0;
}

/* Start (or restart, on its old port) origin <o>. */
static void origin_start(struct origin *o)
{
    int port = o->m ? atomic_load(&o->m->port) : 0;
    int pid;

    if (o->m == NULL) {
        o->m = mmap(NULL, sizeof(*o->m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(o->m != MAP_FAILED);
        memset(o->m, 0, sizeof(*o->m));
    }
    atomic_store(&o->m->port, 0);
    atomic_store(&o->m->mode, OM_OK);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_main(o->m, o->name, port, o->raw);
    o->pid = pid;
    assert_int_equal(wait_for(origin_port_set, o, 5000), 0);
}

static void origin_signal(struct origin *o, int sig)
{
    assert_true(o->pid > 0);
    assert_int_equal(kill(o->pid, sig), 0);
    if (sig == SIGKILL) {
        int st;
        assert_int_equal(waitpid(o->pid, &st, 0), o->pid);
        o->pid = 0;
    }
}

static void origin_stop(struct origin *o)
{
    if (o->pid > 0) {
        kill(o->pid, SIGCONT);
        origin_signal(o, SIGKILL);
    }
    if (o->m) {
        munmap(o->m, sizeof(*o->m));
        o->m = NULL;
    }
}

static char *origin_url(const struct origin *o)
{
    return mr_asprintf("http://127.0.0.1:%d", atomic_load(&o->m->port));
}

/* ======================================================================
 * The edge process
 * ====================================================================== */

struct edge_proc {
    char dir[64];
    char url[64];
    int pid;
};

static int log_has_listening(void *arg)
{
    struct edge_proc *e = arg;
    char path[128], buf[8192];
    FILE *f;
    size_t n;
    char *p;

    snprintf(path, sizeof(path), "%s/edge.log", e->dir);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strstr(buf, "listening http://");
    if (p == NULL)
        return 0;
    sscanf(p + 10, "%63s", e->url);
    return 1;
}

/* Write <ini> and start `meridian edge` on it; waits for its listener. */
static void edge_start_proc(struct edge_proc *e, const char *ini)
{
    char path[128], logp[128];
    FILE *f;
    int pid;

    snprintf(e->dir, sizeof(e->dir), "/tmp/mr-edge-test-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(path, sizeof(path), "%s/edge.ini", e->dir);
    snprintf(logp, sizeof(logp), "%s/edge.log", e->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(ini, f);
    fclose(f);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(cluster_bin(), "meridian", "edge", "--config", path, (char *)NULL);
        _exit(127);
    }
    e->pid = pid;
    if (wait_for(log_has_listening, e, 10000) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the edge did not start; see %s", logp);
    }
}

/* SIGTERM; it must exit 0, and its log must hold no sanitizer report. */
static void edge_stop_proc(struct edge_proc *e)
{
    char cmd[256];
    int st = 0, rc;
    int64_t deadline = test_now_ms() + test_timeout_ms(10000);

    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    while ((rc = waitpid(e->pid, &st, WNOHANG)) == 0 && test_now_ms() < deadline)
        test_sleep_ms(5);   /* pacing a bounded poll, not synchronisation */
    if (rc == 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, &st, 0);
        fail_msg("the edge did not stop within 10 s of SIGTERM; log in %s", e->dir);
    }
    e->pid = 0;
    snprintf(cmd, sizeof(cmd), "grep -q -E 'AddressSanitizer|runtime error|LeakSanitizer' %s/edge.log",
             e->dir);
    if (system(cmd) == 0)
        fail_msg("sanitizer report in %s/edge.log", e->dir);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the edge exited with %d after SIGTERM; log in %s/edge.log", st, e->dir);
    if (getenv("MR_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* ---- requests through the edge ---- */

struct reply {
    int status;
    char region[32];
    char cache[16];
    int attempts;
    struct http_result res;
};

static const char *hdr_value(const struct http_result *r, const char *name, char *out, size_t n)
{
    const char *p = r->headers.data ? r->headers.data : "";
    size_t len = strlen(name);

    out[0] = '\0';
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > len + 1 && strncasecmp(p, name, len) == 0 && p[len] == ':') {
            const char *v = p + len + 1;
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static int count_hdr(const struct http_result *r, const char *line)
{
    int n = 0;

    for (const char *p = r->headers.data; p && (p = strstr(p, line)) != NULL; p++)
        n++;
    return n;
}

static int req(const struct edge_proc *e, const char *method, const char *path,
               const char *headers, const char *body, struct reply *out)
{
    char url[256], err[MR_ERRMSG_LEN], a[16];
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "%s%s", e->url, path);
    rc = http_fetch(method, url, headers, body, body ? strlen(body) : 0,
                    (uint64_t)test_timeout_ms(10000), &out->res, err);
    if (rc != 0) {
        fprintf(stderr, "%s %s: %s\n", method, url, err);
        return rc;
    }
    out->status = out->res.status;
    hdr_value(&out->res, "Meridian-Region", out->region, sizeof(out->region));
    hdr_value(&out->res, "Meridian-Cache", out->cache, sizeof(out->cache));
    out->attempts = atoi(hdr_value(&out->res, "Meridian-Attempts", a, sizeof(a)) ? a : "-1");
    return 0;
}

static void reply_close(struct reply *r)
{
    http_result_close(&r->res);
}

/* The state of region <name> in the edge's /v1/status ("healthy"...). */
static void region_state(const struct edge_proc *e, const char *name, char *out, size_t n)
{
    struct reply r;
    json_t *doc, *g;
    size_t i;

    out[0] = '\0';
    if (req(e, "GET", "/v1/status", NULL, NULL, &r) != 0)
        return;
    doc = json_loads(r.res.body.data ? r.res.body.data : "", 0, NULL);
    json_array_foreach(json_object_get(doc, "regions"), i, g)
        if (strcmp(json_string_value(json_object_get(g, "name")), name) == 0)
            snprintf(out, n, "%s", json_string_value(json_object_get(g, "state")));
    json_decref(doc);
    reply_close(&r);
}

static int64_t region_int(const struct edge_proc *e, const char *name, const char *key)
{
    struct reply r;
    json_t *doc, *g;
    size_t i;
    int64_t v = -1;

    if (req(e, "GET", "/v1/status", NULL, NULL, &r) != 0)
        return -1;
    doc = json_loads(r.res.body.data ? r.res.body.data : "", 0, NULL);
    json_array_foreach(json_object_get(doc, "regions"), i, g)
        if (strcmp(json_string_value(json_object_get(g, "name")), name) == 0)
            v = json_integer_value(json_object_get(g, key));
    json_decref(doc);
    reply_close(&r);
    return v;
}

struct state_wait {
    const struct edge_proc *e;
    const char *region;
    const char *state;
};

static int state_is(void *arg)
{
    struct state_wait *w = arg;
    char s[32];

    region_state(w->e, w->region, s, sizeof(s));
    return strcmp(s, w->state) == 0;
}

static void wait_state(const struct edge_proc *e, const char *region, const char *state,
                       int64_t ms)
{
    struct state_wait w = {e, region, state};

    if (wait_for_named(state_is, &w, ms, state) != 0)
        fail_msg("region %s never became %s", region, state);
}

/* ---- traffic ---- */

struct traffic {
    const struct edge_proc *e;
    const char *path;
    pthread_t th[2];
    int n_threads;
    atomic_int stop;
    atomic_int ok, failed;
    atomic_int by_region[3];      /* answers from origins a, b, c */
    char first_failure[256];
    pthread_mutex_t mu;
};

static void *traffic_main(void *arg)
{
    struct traffic *t = arg;

    while (!atomic_load(&t->stop)) {
        struct reply r;
        int rc = req(t->e, "GET", t->path, NULL, NULL, &r);
        if (rc == 0 && r.status == 200) {
            atomic_fetch_add(&t->ok, 1);
            if (r.region[0] >= 'a' && r.region[0] <= 'c')
                atomic_fetch_add(&t->by_region[r.region[0] - 'a'], 1);
        } else {
            pthread_mutex_lock(&t->mu);
            if (atomic_fetch_add(&t->failed, 1) == 0)
                snprintf(t->first_failure, sizeof(t->first_failure), "rc %d status %d: %.150s",
                         rc, r.status, rc == 0 && r.res.body.data ? r.res.body.data : "");
            pthread_mutex_unlock(&t->mu);
        }
        if (rc == 0)
            reply_close(&r);
    }
    return NULL;
}

static void traffic_start(struct traffic *t, const struct edge_proc *e, const char *path, int n)
{
    memset(t, 0, sizeof(*t));
    t->e = e;
    t->path = path;
    t->n_threads = n;
    pthread_mutex_init(&t->mu, NULL);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&t->th[i], NULL, traffic_main, t), 0);
}

static void traffic_stop(struct traffic *t)
{
    atomic_store(&t->stop, 1);
    for (int i = 0; i < t->n_threads; i++)
        pthread_join(t->th[i], NULL);
    pthread_mutex_destroy(&t->mu);
}

struct count_wait {
    atomic_int *counter;
    int target;
};

static int count_reached(void *arg)
{
    struct count_wait *w = arg;

    return atomic_load(w->counter) >= w->target;
}

/* Wait until <counter> has grown by <more>. */
static void wait_more(atomic_int *counter, int more, int64_t ms, const char *what)
{
    struct count_wait w = {counter, atomic_load(counter) + more};

    if (wait_for_named(count_reached, &w, ms, what) != 0)
        fail_msg("%s: not reached", what);
}

/* ======================================================================
 * Fixture: origins a and b (a nearer), one edge
 * ====================================================================== */

struct fx {
    struct origin o[3];
    int n_o;
    struct edge_proc e;
};

static const char *TIMING =
    "[health]\nprobe_interval = 40ms\nprobe_jitter = 10ms\nprobe_timeout = 150ms\n"
    "[proxy]\ntry_timeout = 300ms\ntotal_timeout = 3s\n";

static void fx_origins(struct fx *f, int n)
{
    static const char *names[] = {"a", "b", "c"};

    f->n_o = n;
    for (int i = 0; i < n; i++) {
        snprintf(f->o[i].name, sizeof(f->o[i].name), "%s", names[i]);
        origin_start(&f->o[i]);
    }
}

/* The edge over every origin of <f>, with <extra> appended to the config. */
static void fx_edge(struct fx *f, const char *extra)
{
    struct mr_buf ini;

    mr_buf_init(&ini);
    mr_buf_printf(&ini, "[edge]\nlisten = 127.0.0.1:0\nname = test-edge\nlog_level = info\n%s",
                  TIMING);
    for (int i = 0; i < f->n_o; i++) {
        char *u = origin_url(&f->o[i]);
        mr_buf_printf(&ini, "[region %s]\norigin = %s\n", f->o[i].name, u);
        mr_free(u);
    }
    mr_buf_puts(&ini, extra ? extra : "");
    edge_start_proc(&f->e, ini.data);
    mr_buf_close(&ini);
}

static int setup2(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    *state = f;
    fx_origins(f, 2);
    /* a is the nearer region: b answers 15 ms later, probes included */
    atomic_store(&f->o[1].m->delay_ms, 15);
    fx_edge(f, NULL);
    wait_state(&f->e, "a", "healthy", 5000);
    wait_state(&f->e, "b", "healthy", 5000);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    edge_stop_proc(&f->e);
    for (int i = 0; i < f->n_o; i++)
        origin_stop(&f->o[i]);
    free(f);
    return 0;
}

/* ======================================================================
 * Tests
 * ====================================================================== */

struct region_wait {
    const struct edge_proc *e;
    const char *want;
};

static int served_by(void *arg)
{
    struct region_wait *w = arg;
    struct reply r;
    int ok;

    if (req(w->e, "GET", "/hello", NULL, NULL, &r) != 0)
        return 0;
    ok = r.status == 200 && strcmp(r.region, w->want) == 0;
    reply_close(&r);
    return ok;
}

static void wait_served_by(const struct edge_proc *e, const char *region, int64_t ms)
{
    struct region_wait w = {e, region};

    if (wait_for_named(served_by, &w, ms, region) != 0)
        fail_msg("requests never went to region %s", region);
}

static void edge_routes_to_the_nearest_region_by_rtt(void **state)
{
    struct fx *f = *state;
    struct reply r;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(req(&f->e, "GET", "/hello", NULL, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.region, "a");
        assert_int_equal(r.attempts, 1);
        reply_close(&r);
    }
    /* a moves away: its probes slow down and the smoothed RTT follows */
    atomic_store(&f->o[0].m->delay_ms, 40);
    atomic_store(&f->o[1].m->delay_ms, 0);
    wait_served_by(&f->e, "b", 5000);
    atomic_store(&f->o[0].m->delay_ms, 0);
    atomic_store(&f->o[1].m->delay_ms, 15);
    wait_served_by(&f->e, "a", 5000);
}

static void edge_passes_token_and_cookies_both_ways(void **state)
{
    struct fx *f = *state;
    struct reply r;
    char v[128];

    assert_int_equal(req(&f->e, "GET", "/hello",
                         "Meridian-Token: v1.us-east-1.42.abc\r\nCookie: mr_tok=xyz; cart=7\r\n",
                         NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr_value(&r.res, "Meridian-Token", v, sizeof(v)), "v1.us-east-1.42.abc");
    assert_string_equal(hdr_value(&r.res, "X-Seen-Cookie", v, sizeof(v)), "mr_tok=xyz; cart=7");
    assert_int_equal(count_hdr(&r.res, "Set-Cookie: "), 2);
    assert_non_null(hdr_value(&r.res, "Via", v, sizeof(v)));
    reply_close(&r);
}

/* Region death under flowing traffic, then recovery and return of traffic.
 * <how>: SIGKILL, SIGSTOP, 5xx or hang. */
static void death_and_recovery(struct fx *f, const char *how)
{
    struct traffic t;
    struct origin *a = &f->o[0];
    struct reply r;
    int64_t t0;

    traffic_start(&t, &f->e, "/hello", 2);
    wait_more(&t.by_region[0], 20, 5000, "traffic on a");
    t0 = test_now_ms();
    if (strcmp(how, "SIGKILL") == 0)
        origin_signal(a, SIGKILL);
    else if (strcmp(how, "SIGSTOP") == 0)
        origin_signal(a, SIGSTOP);
    else
        atomic_store(&a->m->mode, strcmp(how, "5xx") == 0 ? OM_5XX : OM_HANG);
    wait_state(&f->e, "a", "unhealthy", 5000);
    fprintf(stderr, "  %s: region a unhealthy after %lld ms\n", how,
            (long long)(test_now_ms() - t0));
    wait_more(&t.by_region[1], 50, 5000, "traffic moved to b");
    assert_int_equal(atomic_load(&t.failed), 0);

    /* recovery */
    if (strcmp(how, "SIGKILL") == 0)
        origin_start(a);
    else if (strcmp(how, "SIGSTOP") == 0)
        origin_signal(a, SIGCONT);
    else
        atomic_store(&a->m->mode, OM_OK);
    wait_state(&f->e, "a", "healthy", 5000);
    wait_more(&t.by_region[0], 20, 5000, "traffic back on a");
    traffic_stop(&t);
    if (atomic_load(&t.failed) != 0)
        fail_msg("%s: %d of %d requests failed; first: %s", how, atomic_load(&t.failed),
                 atomic_load(&t.ok) + atomic_load(&t.failed), t.first_failure);
    /* the transitions are in the metrics */
    assert_int_equal(req(&f->e, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_non_null(strstr(r.res.body.data,
                           "meridian_edge_region_transitions_total{region=\"a\",to=\"unhealthy\"} 1"));
    assert_non_null(strstr(r.res.body.data,
                           "meridian_edge_region_transitions_total{region=\"a\",to=\"healthy\"} 2"));
    reply_close(&r);
}

static void edge_survives_sigkill_of_a_region(void **state)
{
    death_and_recovery(*state, "SIGKILL");
}

static void edge_survives_sigstop_of_a_region(void **state)
{
    death_and_recovery(*state, "SIGSTOP");
}

static void edge_survives_a_region_answering_5xx(void **state)
{
    death_and_recovery(*state, "5xx");
}

static void edge_survives_a_hanging_region(void **state)
{
    death_and_recovery(*state, "hang");
}

static void edge_does_not_duplicate_a_non_idempotent_post(void **state)
{
    struct fx *f = *state;
    struct origin *a = &f->o[0], *b = &f->o[1];
    struct reply r;

    /* reached a, then no answer: not retried elsewhere, 504 */
    atomic_store(&a->m->mode, OM_HANG_ORDERS);
    assert_int_equal(req(&f->e, "POST", "/orders", "Content-Type: application/json\r\n", "{}", &r),
                     0);
    assert_int_equal(r.status, 504);
    assert_int_equal(r.attempts, 1);
    reply_close(&r);
    assert_int_equal(atomic_load(&a->m->n_orders), 1);
    assert_int_equal(atomic_load(&b->m->n_orders), 0);

    /* the same with an Idempotency-Key: the node applies it once, so the
     * edge may send it to b */
    assert_int_equal(req(&f->e, "POST", "/orders", "Idempotency-Key: k-1\r\n", "{}", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.region, "b");
    assert_int_equal(r.attempts, 2);
    reply_close(&r);
    assert_int_equal(atomic_load(&b->m->n_orders), 1);

    /* a refused connection never reached the region: retried even without
     * a key */
    atomic_store(&a->m->mode, OM_OK);
    wait_state(&f->e, "a", "healthy", 5000);
    origin_signal(a, SIGKILL);
    assert_int_equal(req(&f->e, "POST", "/orders", NULL, "{}", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.region, "b");
    reply_close(&r);
    assert_int_equal(atomic_load(&b->m->n_orders), 2);
}

static void edge_all_unhealthy_fail_open_tries_and_502s(void **state)
{
    struct fx *f = *state;
    struct reply r;

    origin_signal(&f->o[0], SIGKILL);
    origin_signal(&f->o[1], SIGKILL);
    wait_state(&f->e, "a", "unhealthy", 5000);
    wait_state(&f->e, "b", "unhealthy", 5000);
    assert_int_equal(req(&f->e, "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 502);    /* fail_open: tried, both refused */
    assert_int_equal(r.attempts, 2);
    reply_close(&r);
    assert_int_equal(req(&f->e, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    reply_close(&r);
}

static void edge_all_unhealthy_fail_closed_answers_503(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct reply r;
    char v[16];

    *state = f;
    fx_origins(f, 1);
    fx_edge(f, "[edge]\nall_unhealthy = fail_closed\n");
    wait_state(&f->e, "a", "healthy", 5000);
    origin_signal(&f->o[0], SIGKILL);
    wait_state(&f->e, "a", "unhealthy", 5000);
    assert_int_equal(req(&f->e, "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 0);
    assert_non_null(hdr_value(&r.res, "Retry-After", v, sizeof(v)));
    reply_close(&r);
}

static void edge_cache_follows_cache_control(void **state)
{
    struct fx *f = *state;
    struct reply r1, r2;
    char v[32];

    /* max-age: the second GET is a hit, the origin sees one request */
    assert_int_equal(req(&f->e, "GET", "/cache/1?cc=max-age%3D60", NULL, NULL, &r1), 0);
    assert_int_equal(r1.status, 200);
    assert_string_equal(r1.cache, "miss");
    assert_int_equal(req(&f->e, "GET", "/cache/1?cc=max-age%3D60", NULL, NULL, &r2), 0);
    assert_string_equal(r2.cache, "hit");
    assert_string_equal(r1.res.body.data, r2.res.body.data);
    assert_non_null(hdr_value(&r2.res, "Age", v, sizeof(v)));
    assert_string_equal(hdr_value(&r2.res, "Cache-Control", v, sizeof(v)), "max-age=60");
    reply_close(&r1);
    reply_close(&r2);
    /* HEAD is answered from the stored GET */
    assert_int_equal(req(&f->e, "HEAD", "/cache/1?cc=max-age%3D60", NULL, NULL, &r1), 0);
    assert_string_equal(r1.cache, "hit");
    reply_close(&r1);

    /* no-store and private: never stored */
    for (int i = 0; i < 2; i++) {
        const char *p = i ? "/cache/2?cc=private%2Cmax-age%3D60" : "/cache/3?cc=no-store";
        assert_int_equal(req(&f->e, "GET", p, NULL, NULL, &r1), 0);
        assert_int_equal(req(&f->e, "GET", p, NULL, NULL, &r2), 0);
        assert_string_equal(r1.cache, "miss");
        assert_string_equal(r2.cache, "miss");
        assert_string_not_equal(r1.res.body.data, r2.res.body.data);
        reply_close(&r1);
        reply_close(&r2);
    }

    /* Vary: one entry per Accept-Language */
    assert_int_equal(req(&f->e, "GET", "/vary", "Accept-Language: en\r\n", NULL, &r1), 0);
    assert_string_equal(r1.cache, "miss");
    reply_close(&r1);
    assert_int_equal(req(&f->e, "GET", "/vary", "Accept-Language: fr\r\n", NULL, &r1), 0);
    assert_string_equal(r1.cache, "miss");
    assert_non_null(strstr(r1.res.body.data, "\"fr\""));
    reply_close(&r1);
    assert_int_equal(req(&f->e, "GET", "/vary", "Accept-Language: en\r\n", NULL, &r1), 0);
    assert_string_equal(r1.cache, "hit");
    assert_non_null(strstr(r1.res.body.data, "\"en\""));
    reply_close(&r1);

    /* the counts are in the metrics */
    assert_int_equal(req(&f->e, "GET", "/metrics", NULL, NULL, &r1), 0);
    assert_non_null(strstr(r1.res.body.data, "meridian_edge_cache_total{result=\"hit\"} 3"));
    reply_close(&r1);
}

struct cache_wait {
    const struct edge_proc *e;
    const char *path;
    const char *want;
};

static int cache_says(void *arg)
{
    struct cache_wait *w = arg;
    struct reply r;
    int ok;

    if (req(w->e, "GET", w->path, NULL, NULL, &r) != 0)
        return 0;
    ok = strcmp(r.cache, w->want) == 0;
    reply_close(&r);
    return ok;
}

static void edge_cache_serves_stale_while_revalidating_and_if_error(void **state)
{
    struct fx *f = *state;
    const char *swr = "/cache/swr?cc=max-age%3D1%2Cstale-while-revalidate%3D30";
    const char *sie = "/cache/sie?cc=max-age%3D1%2Cstale-if-error%3D60";
    struct cache_wait w1 = {&f->e, swr, "stale"}, w2 = {&f->e, swr, "hit"};
    struct reply r;
    int64_t t0;

    assert_int_equal(req(&f->e, "GET", swr, NULL, NULL, &r), 0);
    assert_string_equal(r.cache, "miss");
    reply_close(&r);
    /* past max-age: served stale at once, refreshed in the background */
    assert_int_equal(wait_for(cache_says, &w1, 5000), 0);
    assert_int_equal(wait_for(cache_says, &w2, 5000), 0);

    assert_int_equal(req(&f->e, "GET", sie, NULL, NULL, &r), 0);
    assert_string_equal(r.cache, "miss");
    reply_close(&r);
    /* every region dies: the stale copy is served at once */
    origin_signal(&f->o[0], SIGKILL);
    origin_signal(&f->o[1], SIGKILL);
    wait_state(&f->e, "a", "unhealthy", 5000);
    wait_state(&f->e, "b", "unhealthy", 5000);
    {
        struct cache_wait w3 = {&f->e, sie, "stale"};
        assert_int_equal(wait_for(cache_says, &w3, 5000), 0);
    }
    t0 = test_now_ms();
    assert_int_equal(req(&f->e, "GET", sie, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache, "stale");
    assert_true(test_now_ms() - t0 < 250);
    reply_close(&r);
    /* something never stored still fails */
    assert_int_equal(req(&f->e, "GET", "/cache/never?cc=max-age%3D1", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 502);
    reply_close(&r);
}

/* ---- shedding ---- */

struct held {
    const struct edge_proc *e;
    char path[48];
    pthread_t th;
    int status;
    char retry_after[16];
};

static void *held_main(void *arg)
{
    struct held *h = arg;
    struct reply r;

    if (req(h->e, "GET", h->path, NULL, NULL, &r) == 0) {
        h->status = r.status;
        hdr_value(&r.res, "Retry-After", h->retry_after, sizeof(h->retry_after));
        reply_close(&r);
    } else {
        h->status = -1;
    }
    return NULL;
}

struct queued_wait {
    const struct edge_proc *e;
    int64_t in_flight, queued, shed;
};

static int queued_is(void *arg)
{
    struct queued_wait *w = arg;

    return region_int(w->e, "a", "in_flight") == w->in_flight &&
           region_int(w->e, "a", "queued") == w->queued &&
           region_int(w->e, "a", "shed") == w->shed;
}

static void wait_queue(const struct edge_proc *e, int64_t in_flight, int64_t queued,
                       int64_t shed)
{
    struct queued_wait w = {e, in_flight, queued, shed};

    if (wait_for(queued_is, &w, 5000) != 0)
        fail_msg("never %lld in flight, %lld queued, %lld shed", (long long)in_flight,
                 (long long)queued, (long long)shed);
}

static int log_has_4(void *arg)
{
    return atomic_load(&((struct oshm *)arg)->n_log) >= 4;
}

static void edge_sheds_browsing_before_checkout(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct held h[6];
    const char *paths[6] = {"/hold/browse/1", "/hold/browse/2", "/hold/browse/3",
                            "/hold/browse/4", "/hold/checkout/5", "/hold/checkout/6"};
    struct oshm *m;

    *state = f;
    fx_origins(f, 1);
    m = f->o[0].m;
    /* a is the only region: capacity 2, a queue of 2 */
    {
        struct mr_buf ini;
        char *u = origin_url(&f->o[0]);
        mr_buf_init(&ini);
        mr_buf_printf(&ini, "[edge]\nlisten = 127.0.0.1:0\nname = shed\n%s"
                      "[proxy]\ntotal_timeout = 20s\ntry_timeout = 20s\n"
                      "[shed]\nqueue_timeout = 15s\nqueue_max = 2\nretry_after = 2\n"
                      "[region a]\norigin = %s\ncapacity = 2\n"
                      "[class checkout]\nprefix = /hold/checkout\npriority = 10\n",
                      "[health]\nprobe_interval = 40ms\n", u);
        mr_free(u);
        edge_start_proc(&f->e, ini.data);
        mr_buf_close(&ini);
    }
    wait_state(&f->e, "a", "healthy", 5000);
    for (int i = 0; i < 6; i++) {
        h[i].e = &f->e;
        snprintf(h[i].path, sizeof(h[i].path), "%s", paths[i]);
        h[i].status = 0;
        assert_int_equal(pthread_create(&h[i].th, NULL, held_main, &h[i]), 0);
        /* one at a time, so that the order is known */
        wait_queue(&f->e, i < 2 ? i + 1 : 2, i < 2 ? 0 : i < 4 ? i - 1 : 2, i < 4 ? 0 : i - 3);
    }
    /* two browsing requests fill the queue; each checkout pushed one out */
    pthread_join(h[3].th, NULL);
    pthread_join(h[2].th, NULL);
    assert_int_equal(h[2].status, 503);
    assert_int_equal(h[3].status, 503);
    assert_string_equal(h[3].retry_after, "2");
    /* release the first two: the queued checkouts go next, then release them */
    atomic_fetch_add(&m->release, 1);
    assert_int_equal(wait_for(log_has_4, m, 5000), 0);
    atomic_fetch_add(&m->release, 1);
    for (int i = 0; i < 6; i++)
        if (i != 2 && i != 3) {
            pthread_join(h[i].th, NULL);
            assert_int_equal(h[i].status, 200);
        }
    assert_int_equal(atomic_load(&m->n_log), 4);
    assert_string_equal(m->log[0], "/hold/browse/1");
    assert_string_equal(m->log[1], "/hold/browse/2");
    assert_string_equal(m->log[2], "/hold/checkout/5");
    assert_string_equal(m->log[3], "/hold/checkout/6");
}

/* Every request in flight on a region fails at once (SIGKILL): the retry
 * budget lets 2 retries run at a time; the others wait for it instead of
 * failing, and every client gets its answer. */
static void edge_retries_a_burst_of_failures_within_the_budget(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct held h[12];
    struct reply r;

    *state = f;
    fx_origins(f, 2);
    atomic_store(&f->o[1].m->delay_ms, 15);
    atomic_store(&f->o[0].m->park, 1);
    fx_edge(f, "[proxy]\nretry_budget = 0\nretry_min = 2\n");
    wait_state(&f->e, "a", "healthy", 5000);
    wait_state(&f->e, "b", "healthy", 5000);
    for (int i = 0; i < 12; i++) {
        h[i].e = &f->e;
        snprintf(h[i].path, sizeof(h[i].path), "/park/%d", i);
        assert_int_equal(pthread_create(&h[i].th, NULL, held_main, &h[i]), 0);
    }
    {
        struct queued_wait w = {&f->e, 12, 0, 0};
        if (wait_for(queued_is, &w, 5000) != 0)
            fail_msg("the 12 requests never were in flight on a");
    }
    origin_signal(&f->o[0], SIGKILL);
    for (int i = 0; i < 12; i++) {
        pthread_join(h[i].th, NULL);
        assert_int_equal(h[i].status, 200);
    }
    assert_int_equal(req(&f->e, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_non_null(strstr(r.res.body.data, "meridian_edge_retries_total 12"));
    assert_null(strstr(r.res.body.data, "meridian_edge_retries_delayed_total 0\n"));
    assert_non_null(strstr(r.res.body.data, "meridian_edge_retries_denied_total 0\n"));
    reply_close(&r);
}

/* ---- malformed input ---- */

static int raw_exchange(const char *url, const char *bytes, char *out, size_t n)
{
    int port = atoi(strrchr(url, ':') + 1), fd;
    struct sockaddr_in sa;
    size_t got = 0;
    ssize_t k;
    struct timeval tv = {5, 0};

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (write(fd, bytes, strlen(bytes)) != (ssize_t)strlen(bytes)) {
        close(fd);
        return -1;
    }
    while (got + 1 < n && (k = read(fd, out + got, n - 1 - got)) > 0)
        got += (size_t)k;
    out[got] = '\0';
    close(fd);
    return 0;
}

static void edge_answers_malformed_requests_and_responses_clearly(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char buf[4096], *big;
    struct reply r;

    *state = f;
    fx_origins(f, 1);
    snprintf(f->o[1].name, sizeof(f->o[1].name), "bad");
    f->o[1].raw = 1;
    origin_start(&f->o[1]);
    f->n_o = 2;
    fx_edge(f, "[edge]\nmax_body = 1k\nprefer = a\n");
    wait_state(&f->e, "a", "healthy", 5000);
    /* garbage from the client: 400, the edge goes on */
    assert_int_equal(raw_exchange(f->e.url, "GARBAGE / HTTP/9\r\n\r\n", buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    assert_int_equal(raw_exchange(f->e.url, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: -5"
                                  "\r\n\r\n", buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    /* a body over max_body: 413 */
    big = malloc(4096);
    memset(big, 'x', 4095);
    big[4095] = '\0';
    assert_int_equal(req(&f->e, "POST", "/orders", NULL, big, &r), 0);
    assert_int_equal(r.status, 413);
    reply_close(&r);
    free(big);
    /* the garbage region never becomes healthy; with a down, fail open
     * sends the request there and the malformed answer is a 502 */
    wait_state(&f->e, "bad", "unhealthy", 5000);
    origin_signal(&f->o[0], SIGKILL);
    wait_state(&f->e, "a", "unhealthy", 5000);
    assert_int_equal(req(&f->e, "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.res.body.data, "\"code\""));
    reply_close(&r);
    assert_int_equal(req(&f->e, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
}

static void edge_status_lists_regions_with_rtt_and_state(void **state)
{
    struct fx *f = *state;
    struct reply r;
    json_t *doc, *g;

    assert_int_equal(req(&f->e, "GET", "/v1/status", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    doc = json_loads(r.res.body.data, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "regions")), 2);
    g = json_array_get(json_object_get(doc, "regions"), 1);
    assert_string_equal(json_string_value(json_object_get(g, "state")), "healthy");
    assert_true(json_number_value(json_object_get(g, "rtt_ms")) >= 10.0);   /* b answers 15 ms late */
    assert_non_null(json_object_get(g, "in_flight"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "order"), 0)), "a");
    json_decref(doc);
    reply_close(&r);
    assert_int_equal(req(&f->e, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(edge_routes_to_the_nearest_region_by_rtt, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_status_lists_regions_with_rtt_and_state, setup2,
                                        teardown),
        cmocka_unit_test_setup_teardown(edge_passes_token_and_cookies_both_ways, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_survives_sigkill_of_a_region, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_survives_sigstop_of_a_region, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_survives_a_region_answering_5xx, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_survives_a_hanging_region, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_does_not_duplicate_a_non_idempotent_post, setup2,
                                        teardown),
        cmocka_unit_test_setup_teardown(edge_all_unhealthy_fail_open_tries_and_502s, setup2,
                                        teardown),
        cmocka_unit_test_setup_teardown(edge_all_unhealthy_fail_closed_answers_503, NULL, teardown),
        cmocka_unit_test_setup_teardown(edge_cache_follows_cache_control, setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_cache_serves_stale_while_revalidating_and_if_error,
                                        setup2, teardown),
        cmocka_unit_test_setup_teardown(edge_sheds_browsing_before_checkout, NULL, teardown),
        cmocka_unit_test_setup_teardown(edge_retries_a_burst_of_failures_within_the_budget, NULL,
                                        teardown),
        cmocka_unit_test_setup_teardown(edge_answers_malformed_requests_and_responses_clearly,
                                        NULL, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
