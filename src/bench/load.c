/* load.c -- closed-loop load generator (see load.h). */
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../http/http.h"

struct run;

struct client {
    struct run *run;
    size_t index;
    uint64_t seq;
    int64_t sent_us;
    size_t target;
    int klass;
    uint64_t rng;               /* think time */
    uv_timer_t think;           /* initialized when spec->think_ms */
    struct mr_buf body;
};

/* Exact latencies of one (target, class) cell. */

struct run {
    const struct load_spec *spec;
    struct http_client *http;
    struct client *clients;
    int64_t start_us, measure_us, end_us;
    struct load_lats cells[LOAD_MAX_TARGETS][LOAD_MAX_CLASSES];
    uint64_t sent;
    size_t active;
    char first_error[256];
};

static void send_next(struct client *c);

static void on_think(uv_timer_t *timer)
{
    send_next(timer->data);
}

static int cmp_us(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

double load_percentile_ms(const int64_t *sorted_us, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)sorted_us[i < n ? i : n - 1] / 1000.0;
}

void load_lats_add(struct load_lats *l, int64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->us = mr_realloc(l->us, l->cap * sizeof(*l->us));
    }
    l->us[l->n++] = us;
}

void load_stats_of(int64_t *us, size_t n, uint64_t ok, uint64_t failed, double seconds,
                   struct load_stats *out)
{
    if (n > 1)
        qsort(us, n, sizeof(*us), cmp_us);
    out->ok = ok;
    out->failed = failed;
    out->rate = seconds > 0 ? (double)ok / seconds : 0;
    out->p50_ms = load_percentile_ms(us, n, 0.50);
    out->p99_ms = load_percentile_ms(us, n, 0.99);
    out->max_ms = n ? (double)us[n - 1] / 1000.0 : 0;
}

static void client_done(struct run *r)
{
    if (--r->active == 0 && r->http) {
        http_client_free(r->http);
        r->http = NULL;
    }
}

static void on_answer(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct client *c = data;
    struct run *r = c->run;
    struct load_lats *cell;
    int64_t now = mr_mono_us();
    int good;

    (void)call;
    if (r->spec->check_resp) {
        int k = c->klass;
        good = r->spec->check_resp(c->index, rc, rc == 0 ? resp : NULL, &k, r->spec->data) == 0 &&
               rc == 0;
        if (k >= 0 && k < LOAD_MAX_CLASSES)
            c->klass = k;
    } else if (rc != 0)
        good = 0;
    else if (r->spec->check)
        good = r->spec->check(c->index, resp->status, resp->body, resp->body_len, r->spec->data) == 0;
    else
        good = resp->status == 200;
    cell = &r->cells[c->target][c->klass];
    if (!good && r->first_error[0] == '\0') {
        if (rc != 0)
            snprintf(r->first_error, sizeof(r->first_error), "%s", mr_strerror(rc));
        else
            snprintf(r->first_error, sizeof(r->first_error), "HTTP %d: %.200s", resp->status,
                     resp->body ? resp->body : "");
    }
    if (c->sent_us >= r->measure_us && now <= r->end_us) {
        if (good) {
            cell->ok++;
            load_lats_add(cell, now - c->sent_us);
        } else {
            cell->failed++;
        }
    }
    if (r->spec->think_ms) {
        uint64_t t = r->spec->think_ms;
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        uv_timer_start(&c->think, on_think, t / 2 + c->rng % (t + 1), 0);
        return;
    }
    send_next(c);
}

static void send_next(struct client *c)
{
    struct run *r = c->run;
    const struct load_spec *s = r->spec;
    struct http_client_request req;
    struct load_req lr;

    if (mr_mono_us() >= r->end_us || (s->max_requests && r->sent >= s->max_requests) ||
        (s->stop && *s->stop)) {
        client_done(r);
        return;
    }
    mr_buf_reset(&c->body);
    memset(&lr, 0, sizeof(lr));
    lr.body = &c->body;
    lr.path = "/";
    s->gen(c->index, c->seq++, &lr, s->data);
    c->target = lr.target % s->n_targets % LOAD_MAX_TARGETS;
    c->klass = lr.klass >= 0 && lr.klass < LOAD_MAX_CLASSES ? lr.klass : 0;
    memset(&req, 0, sizeof(req));
    req.method = lr.method ? lr.method : c->body.len ? "POST" : "GET";
    req.host = s->targets[c->target].host;
    req.port = s->targets[c->target].port;
    req.path = lr.path;
    req.headers = lr.headers ? lr.headers
                  : s->headers ? s->headers
                               : "Content-Type: application/json\r\n";
    req.body = c->body.data;
    req.body_len = c->body.len;
    req.timeout_ms = 30000;
    c->sent_us = mr_mono_us();
    r->sent++;
    if (http_client_request(r->http, &req, on_answer, c, NULL) != 0) {
        r->cells[c->target][c->klass].failed++;
        client_done(r);
    }
}

int load_run(const struct load_spec *spec, struct load_result *out)
{
    struct http_client_opts hopts;
    struct run r;
    uv_loop_t loop;
    int64_t *all = NULL;
    size_t n_all = 0;
    uint64_t ok = 0, failed = 0;

    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    if (spec->n_targets == 0 || spec->n_clients == 0)
        return MR_EINVAL;
    r.spec = spec;
    uv_loop_init(&loop);
    http_client_opts_default(&hopts);
    hopts.max_idle_per_host = spec->n_clients;
    hopts.tls = spec->tls;
    hopts.headers = spec->client_headers && *spec->client_headers ? spec->client_headers : NULL;
    if (http_client_new(&loop, &hopts, &r.http) != 0) {
        uv_loop_close(&loop);
        return MR_ENOMEM;
    }
    r.clients = mr_calloc(spec->n_clients, sizeof(*r.clients));
    r.start_us = mr_mono_us();
    r.measure_us = r.start_us + (int64_t)spec->warmup_ms * 1000;
    r.end_us = r.measure_us + (int64_t)spec->duration_ms * 1000;
    r.active = spec->n_clients;
    for (size_t i = 0; i < spec->n_clients; i++) {
        r.clients[i].run = &r;
        r.clients[i].index = i;
        mr_buf_init(&r.clients[i].body);
        r.clients[i].rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        if (spec->think_ms) {
            uv_timer_init(&loop, &r.clients[i].think);
            r.clients[i].think.data = &r.clients[i];
        }
    }
    for (size_t i = 0; i < spec->n_clients; i++)
        send_next(&r.clients[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (spec->think_ms) { /* stopped timers: close them before the loop */
        for (size_t i = 0; i < spec->n_clients; i++)
            uv_close((uv_handle_t *)&r.clients[i].think, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);

    out->seconds = (double)spec->duration_ms / 1000.0;
    if (spec->max_requests) {
        double took = (double)(mr_mono_us() - r.measure_us) / 1e6;
        if (took < out->seconds)
            out->seconds = took;
    }
    for (size_t t = 0; t < LOAD_MAX_TARGETS; t++)
        for (size_t k = 0; k < LOAD_MAX_CLASSES; k++) {
            struct load_lats *l = &r.cells[t][k];
            if (l->n) {
                all = mr_realloc(all, (n_all + l->n) * sizeof(*all));
                memcpy(all + n_all, l->us, l->n * sizeof(*all));
                n_all += l->n;
            }
            ok += l->ok;
            failed += l->failed;
            load_stats_of(l->us, l->n, l->ok, l->failed, out->seconds, &out->by[t][k]);
            mr_free(l->us);
        }
    load_stats_of(all, n_all, ok, failed, out->seconds, &out->all);
    mr_free(all);
    snprintf(out->first_error, sizeof(out->first_error), "%s", r.first_error);
    for (size_t i = 0; i < spec->n_clients; i++)
        mr_buf_close(&r.clients[i].body);
    mr_free(r.clients);
    return ok == 0 && failed > 0 ? MR_EUNAVAIL : 0;
}
