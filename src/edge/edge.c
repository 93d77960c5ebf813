/* edge.c -- the reverse proxy: routing, failover, the cache in the request
 * path, capacity and shedding, probes, /metrics and /v1/status.
 *
 * Depends on src/http (server side, and two clients: one pool for live
 * traffic, one for probes, so that a probe's timing is never queued behind
 * live requests), src/common, and cache.c / health.c of this module.
 *
 * A request's life (struct ereq):
 *
 *   handle_request -- admin path? answer.  GET/HEAD: cache lookup
 *        fresh: answer (hit).  stale-while-revalidate: answer (stale) and
 *        start a background refresh.  stale-if-error only: keep a copy.
 *   dispatch -- pick the nearest healthy region not tried yet; none
 *        healthy: stale copy at once, else all_unhealthy policy.  Region at
 *        capacity: queue (by priority) for at most queue_timeout.
 *   send -- one attempt (per-try timeout, bounded by the total timeout).
 *   on_response -- feed the region's health; success: answer (and store in
 *        the cache); failure: retry on the next region when safe and the
 *        retry budget allows, else stale-if-error, else the error.
 *
 * Lifetimes: an ereq is freed once it is answered, has no call in flight and
 * is not queued (ereq_maybe_free); its timer, when used, is closed first.
 * The edge itself is freed on stop once every ereq and timer is gone
 * (n_live == 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "edge.h"

#define MAX_PROBES_IN_FLIGHT 4
#define N_OUTCOMES 6
#define N_TRANSITIONS 16   /* kept for /v1/status */

struct ereq;

struct transition {
    int64_t at_ms;
    enum edge_state from, to;
    char reason[128];
};

struct region {
    struct edge *e;
    size_t idx;
    const struct edge_region_cfg *cfg;
    struct http_client *client;    /* the edge's plain or TLS one, by the origin's scheme */
    struct http_client *probe_client;
    struct edge_health h;
    int64_t srtt_us;               /* -1: no sample yet */
    int64_t last_rtt_us;
    uint64_t in_flight;
    struct ereq *qhead, *qtail;    /* waiting for capacity, priority order */
    uint64_t n_queue;
    uv_timer_t probe_timer;
    int n_probes;                  /* in flight */
    /* counters */
    uint64_t requests;             /* attempts sent */
    uint64_t outcomes[N_OUTCOMES];
    uint64_t to_state[3];          /* transitions into each state */
    uint64_t probes_ok, probes_failed;
    uint64_t shed;
    struct transition log[N_TRANSITIONS];
    uint64_t n_log;
};

struct class_stats {
    uint64_t requests, shed;
};

struct edge {
    uv_loop_t *loop;
    const struct edge_config *cfg;
    struct edge_health_params hp;
    struct http_server *server;
    struct http_client *client;         /* plain http:// origins */
    struct http_client *probe_client;
    struct http_client *tls_client;     /* https:// origins (NULL without any) */
    struct http_client *tls_probe_client;
    struct tls_ctx *tls_origin;         /* [tls] ca/cert/key: client role, or NULL */
    struct tls_ctx *tls_public;         /* [tls] public_*: the listener's, or NULL */
    struct edge_cache *cache;
    struct edge_rl *rl;            /* NULL: [limits] rate = 0 */
    struct region regions[EDGE_MAX_REGIONS];
    size_t n_regions;
    struct ereq *reqs;             /* every live ereq */
    uint64_t n_client;             /* client requests being handled */
    uint64_t n_retrying;           /* attempts in flight that are retries */
    uint64_t n_live;               /* ereqs + open timers (for the final free) */
    struct ereq *rw_head, *rw_tail;/* retries waiting for the retry budget */
    uv_timer_t drain_timer;
    int64_t drain_deadline_us;
    unsigned stopping : 1;         /* edge_stop called */
    unsigned closing : 1;          /* past the drain: tearing down */
    char errbuf[MR_ERRMSG_LEN];
    /* counters */
    uint64_t requests, admin_requests;
    uint64_t responses[6];         /* by status class 1xx..5xx; [0] unused */
    uint64_t retries, retries_delayed, retries_denied, attempts_hist[EDGE_MAX_REGIONS + 1];
    uint64_t cache_hit, cache_miss, cache_stale, cache_stale_if_error, refreshes;
    uint64_t no_region, bad_gateway, gateway_timeout;
    uint64_t rate_limited;         /* answered 429 by the per-client rate */
    struct class_stats class_st[EDGE_MAX_CLASSES + 1]; /* [n_classes]: default */
    struct mr_hist latency;
};

struct ereq {
    struct edge *e;
    struct ereq *prev, *next;        /* e->reqs */
    struct ereq *qprev, *qnext;      /* region queue */
    struct region *qregion;          /* queued on, or NULL */
    struct ereq *rwprev, *rwnext;    /* e->rw_head list */
    unsigned retry_wait : 1;         /* on that list */
    struct http_exchange *ex;        /* NULL: background refresh, or answered */
    char *method;
    char *target;                    /* path?query */
    struct mr_buf fwd;               /* forwarded request headers */
    const char *body;                /* the exchange's; valid while ex */
    size_t body_len;
    char *cache_key;                 /* GET/HEAD with the cache on */
    const struct http_header *rh;    /* request headers (for Vary) */
    size_t n_rh;
    struct http_header *own_rh;      /* copies, for a refresh */
    struct mr_buf own_strs;
    int cls;                         /* class index; n_classes: default */
    int priority;
    unsigned tried;                  /* bit per region */
    int attempts;
    int64_t start_us, deadline_us;
    struct http_call *call;
    struct region *cur;
    enum edge_outcome last_outcome;
    int last_status;                 /* of a 5xx answer kept for the end */
    char *last_ct, *last_headers, *last_body;
    size_t last_body_len;
    unsigned safe : 1;
    unsigned refresh : 1;
    unsigned head : 1;
    unsigned cur_retry : 1;
    unsigned timer_on : 1;
    unsigned has_stale : 1;
    unsigned has_last : 1;
    int st_status;
    char *st_ct, *st_headers, *st_body;
    size_t st_len;
    int64_t st_age;
    uv_timer_t timer;                /* queue wait */
};

static void dispatch(struct ereq *r);
static void edge_maybe_free(struct edge *e);

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_us(void)
{
    return mr_mono_us();
}

static int hdr_in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;

    while (p && *p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (strncasecmp(p, name, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                             p[n] == '\t'))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* RFC 9110 7.6.1: hop-by-hop fields, never forwarded.  Switched on the
 * first letter: this runs for every header of every request and answer. */
static int hop_by_hop(const char *name)
{
    switch (name[0] | 0x20) {
    case 'c': return strcasecmp(name, "Connection") == 0;
    case 'k': return strcasecmp(name, "Keep-Alive") == 0;
    case 't':
        return strcasecmp(name, "TE") == 0 || strcasecmp(name, "Trailer") == 0 ||
               strcasecmp(name, "Transfer-Encoding") == 0;
    case 'u': return strcasecmp(name, "Upgrade") == 0;
    case 'p':
        return strcasecmp(name, "Proxy-Connection") == 0 ||
               strcasecmp(name, "Proxy-Authenticate") == 0 ||
               strcasecmp(name, "Proxy-Authorization") == 0;
    }
    return 0;
}

static void put_header(struct mr_buf *b, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);

    mr_buf_reserve(b, n + v + 4);
    mr_buf_append(b, name, n);
    mr_buf_append(b, ": ", 2);
    mr_buf_append(b, value, v);
    mr_buf_append(b, "\r\n", 2);
}

static const char *find_hdr(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* The origin's answer headers as we pass them on: hop-by-hop, framing, and
 * what the server side adds itself (Date, Server, Content-Type) removed, as
 * are Meridian-* answer headers (ours replace them). */
static void filter_response_headers(const struct http_response *resp, struct mr_buf *out)
{
    const char *conn = find_hdr(resp->headers, resp->n_headers, "Connection");

    for (size_t i = 0; i < resp->n_headers; i++) {
        const char *n = resp->headers[i].name;
        if (hop_by_hop(n) || strcasecmp(n, "Content-Length") == 0 ||
            strcasecmp(n, "Date") == 0 || strcasecmp(n, "Server") == 0 ||
            strcasecmp(n, "Content-Type") == 0 || strcasecmp(n, "Age") == 0 ||
            ((n[0] | 0x20) == 'm' && (strcasecmp(n, "Meridian-Region") == 0 ||
                                     strcasecmp(n, "Meridian-Attempts") == 0 ||
                                     strcasecmp(n, "Meridian-Cache") == 0)) ||
            (conn && hdr_in_list(conn, n)))
            continue;
        put_header(out, n, resp->headers[i].value);
    }
}

/* ---- region order and health --------------------------------------------- */

static void region_transition(struct region *g, enum edge_state from, enum edge_state to,
                              const char *reason)
{
    struct transition *t = &g->log[g->n_log++ % N_TRANSITIONS];

    t->at_ms = mr_now_ms();
    t->from = from;
    t->to = to;
    snprintf(t->reason, sizeof(t->reason), "%s", reason);
    g->to_state[to]++;
    mr_log(to == EDGE_HEALTHY ? MR_LOG_INFO : MR_LOG_WARN, "edge",
           "region %s: %s -> %s: %s", g->cfg->name, edge_state_name(from), edge_state_name(to),
           reason);
}

static void region_live(struct region *g, enum edge_outcome o)
{
    enum edge_state from = g->h.state;
    char reason[96];

    g->outcomes[o]++;
    if (edge_health_live(&g->h, &g->e->hp, o, reason, sizeof(reason)) >= 0)
        region_transition(g, from, g->h.state, reason);
}

/* Regions in routing order: the configured preference first, then by
 * smoothed RTT (regions not measured yet last, in file order). */
static size_t region_order(struct edge *e, struct region **out)
{
    size_t n = 0;
    unsigned used = 0;
    const struct edge_config *cfg = e->cfg;

    for (size_t i = 0; i < cfg->n_prefer; i++) {
        out[n++] = &e->regions[cfg->prefer_order[i]];
        used |= 1u << cfg->prefer_order[i];
    }
    while (n < e->n_regions) {
        struct region *best = NULL;
        for (size_t i = 0; i < e->n_regions; i++) {
            struct region *g = &e->regions[i];
            if (used & (1u << i))
                continue;
            if (best == NULL || (g->srtt_us >= 0 && (best->srtt_us < 0 || g->srtt_us <
                                                                              best->srtt_us)))
                best = g;
        }
        used |= 1u << best->idx;
        out[n++] = best;
    }
    return n;
}

static int any_healthy(const struct edge *e)
{
    for (size_t i = 0; i < e->n_regions; i++)
        if (e->regions[i].h.state == EDGE_HEALTHY)
            return 1;
    return 0;
}

/* The region for <r>'s next attempt, or NULL. */
static struct region *pick_region(struct ereq *r)
{
    struct edge *e = r->e;
    struct region *order[EDGE_MAX_REGIONS];
    size_t n = region_order(e, order);

    for (size_t i = 0; i < n; i++)
        if (!(r->tried & (1u << order[i]->idx)) && order[i]->h.state == EDGE_HEALTHY)
            return order[i];
    /* Every region unhealthy (or unknown, before the first probes): fail
     * open tries them anyway, nearest first. */
    if (e->cfg->all_down == EDGE_FAIL_OPEN && !any_healthy(e))
        for (size_t i = 0; i < n; i++)
            if (!(r->tried & (1u << order[i]->idx)))
                return order[i];
    return NULL;
}

/* ---- ereq lifetime -------------------------------------------------------- */

static void ereq_free(struct ereq *r)
{
    struct edge *e = r->e;

    mr_free(r->method);
    mr_free(r->target);
    mr_buf_close(&r->fwd);
    mr_free(r->cache_key);
    mr_free(r->own_rh);
    mr_buf_close(&r->own_strs);
    mr_free(r->st_ct);
    mr_free(r->st_headers);
    mr_free(r->st_body);
    mr_free(r->last_ct);
    mr_free(r->last_headers);
    mr_free(r->last_body);
    mr_free(r);
    e->n_live--;
    edge_maybe_free(e);
}

static void ereq_timer_closed(uv_handle_t *h)
{
    ereq_free(h->data);
}

static void queue_remove(struct ereq *r)
{
    struct region *g = r->qregion;

    if (g == NULL)
        return;
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        g->qhead = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        g->qtail = r->qprev;
    r->qprev = r->qnext = NULL;
    r->qregion = NULL;
    g->n_queue--;
}

/* Free <r> if nothing refers to it any more. */
static void ereq_maybe_free(struct ereq *r)
{
    struct edge *e = r->e;

    if (r->ex != NULL || r->call != NULL || r->qregion != NULL || r->retry_wait)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else if (e->reqs == r)
        e->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    if (r->timer_on) {
        r->timer_on = 0;
        uv_close((uv_handle_t *)&r->timer, ereq_timer_closed);
        return;
    }
    ereq_free(r);
}

/* ---- answering -------------------------------------------------------------- */

/* Send the answer to the client (once), count it, and let <r> go. */
static void answer(struct ereq *r, int status, const char *ct, const char *body, size_t len,
                   const char *extra)
{
    struct edge *e = r->e;

    if (r->ex != NULL) {
        http_respond(r->ex, status, ct, body, len, extra);
        r->ex = NULL;
        e->n_client--;
        if (status >= 100 && status < 600)
            e->responses[status / 100]++;
        if (r->attempts <= EDGE_MAX_REGIONS)
            e->attempts_hist[r->attempts]++;
        mr_hist_observe(&e->latency, (double)(now_us() - r->start_us) / 1e6);
    }
    ereq_maybe_free(r);
}

static void answer_error(struct ereq *r, int status, const char *code, const char *msg,
                         const char *extra_in)
{
    struct mr_buf b, h;

    mr_buf_init(&b);
    mr_buf_init(&h);
    mr_json_error(&b, code, msg);
    mr_buf_putc(&b, '\n');
    mr_buf_printf(&h, "Meridian-Attempts: %d\r\nVia: 1.1 %s\r\n", r->attempts, r->e->cfg->name);
    if (extra_in)
        mr_buf_puts(&h, extra_in);
    answer(r, status, "application/json", b.data, b.len, h.data);
    mr_buf_close(&b);
    mr_buf_close(&h);
}

static void answer_shed(struct ereq *r, const char *why)
{
    struct edge *e = r->e;
    char extra[48];

    e->class_st[r->cls].shed++;
    snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", (long long)e->cfg->retry_after_s);
    answer_error(r, 503, "EUNAVAIL", why, extra);
}

static void answer_stale(struct ereq *r, const char *why)
{
    struct mr_buf h;

    mr_buf_init(&h);
    mr_buf_puts(&h, r->st_headers);
    mr_buf_printf(&h, "Age: %lld\r\nMeridian-Cache: stale\r\nMeridian-Attempts: %d\r\nVia: 1.1 %s"
                  "\r\n", (long long)r->st_age, r->attempts, r->e->cfg->name);
    r->e->cache_stale++;
    r->e->cache_stale_if_error++;
    mr_log(MR_LOG_DEBUG, "edge", "%s %s: stale-if-error (%s)", r->method, r->target, why);
    answer(r, r->st_status, r->st_ct, r->st_body, r->st_len, h.data);
    mr_buf_close(&h);
}

/* The request failed everywhere it could be tried. */
static void answer_failure(struct ereq *r, const char *why)
{
    struct edge *e = r->e;

    if (r->has_stale) {
        answer_stale(r, why);
        return;
    }
    if (r->has_last) {
        /* The last region's own 5xx answer, passed on as it was. */
        struct mr_buf h;
        mr_buf_init(&h);
        mr_buf_puts(&h, r->last_headers);
        mr_buf_printf(&h, "Meridian-Region: %s\r\nMeridian-Attempts: %d\r\nVia: 1.1 %s\r\n",
                      r->cur ? r->cur->cfg->name : "-", r->attempts, e->cfg->name);
        if (r->cache_key)
            mr_buf_puts(&h, "Meridian-Cache: miss\r\n");
        answer(r, r->last_status, r->last_ct, r->last_body, r->last_body_len, h.data);
        mr_buf_close(&h);
        return;
    }
    if (r->attempts > 0 && r->last_outcome == EDGE_TIMEOUT) {
        e->gateway_timeout++;
        answer_error(r, 504, "ETIMEDOUT", why, NULL);
    } else if (r->attempts > 0) {
        e->bad_gateway++;
        answer_error(r, 502, r->last_outcome == EDGE_BAD_RESPONSE ? "EPROTO" : "ECONN", why,
                     NULL);
    } else {
        e->no_region++;
        answer_shed(r, why);
    }
}

/* ---- the request path ------------------------------------------------------- */

static void on_response(struct http_call *call, int rc, const struct http_response *resp,
                        void *data);

static void region_release(struct region *g);

static void send_attempt(struct ereq *r, struct region *g)
{
    struct edge *e = r->e;
    struct http_client_request q;
    int64_t left = r->deadline_us - now_us();
    int64_t to = e->cfg->try_timeout_ms;
    int rc;

    if (left <= 0) {
        r->last_outcome = EDGE_TIMEOUT;
        answer_failure(r, "total timeout reached");
        return;
    }
    if (to * 1000 > left)
        to = (left + 999) / 1000;
    memset(&q, 0, sizeof(q));
    q.method = r->method;
    q.host = g->cfg->host;
    q.port = g->cfg->port;
    q.path = r->target;
    q.headers = r->fwd.data;
    q.body = r->body_len ? r->body : NULL;
    q.body_len = r->body_len;
    q.timeout_ms = (uint64_t)to;
    r->cur_retry = r->attempts > 0;
    r->attempts++;
    r->tried |= 1u << g->idx;
    r->cur = g;
    g->in_flight++;
    g->requests++;
    if (r->cur_retry) {
        e->n_retrying++;
        e->retries++;
    }
    rc = http_client_request(g->client, &q, on_response, r, &r->call);
    if (rc != 0) {
        /* Only when the client is being freed (stop) or arguments are bad. */
        r->call = NULL;
        g->in_flight--;
        if (r->cur_retry)
            e->n_retrying--;
        r->last_outcome = EDGE_RESET;
        answer_failure(r, "cannot start the request to the region");
    }
}

static void queue_timer_cb(uv_timer_t *t)
{
    struct ereq *r = t->data;
    struct region *g = r->qregion;

    queue_remove(r);
    if (g)
        g->shed++;
    answer_shed(r, r->deadline_us <= now_us() ? "total timeout reached while queued"
                                              : "the region is at capacity");
}

/* ---- the retry budget's wait list ----
 *
 * The budget (edge_budget_allows) bounds how many retries run at once, so
 * that a failover never doubles the load on what is left.  A retry over the
 * budget does not fail: it waits here, in arrival order, and starts as soon
 * as a running retry ends, within the request's total timeout.  When every
 * request in flight fails at the same instant (a region killed under load),
 * they are all retried, a few at a time, and none is lost. */

static void retry_wait_remove(struct ereq *r)
{
    struct edge *e = r->e;

    if (!r->retry_wait)
        return;
    if (r->rwprev)
        r->rwprev->rwnext = r->rwnext;
    else
        e->rw_head = r->rwnext;
    if (r->rwnext)
        r->rwnext->rwprev = r->rwprev;
    else
        e->rw_tail = r->rwprev;
    r->rwprev = r->rwnext = NULL;
    r->retry_wait = 0;
}

static void retry_timer_cb(uv_timer_t *t)
{
    struct ereq *r = t->data;

    retry_wait_remove(r);
    r->e->retries_denied++;
    answer_failure(r, "total timeout reached while waiting for the retry budget");
}

static void retry_wait_add(struct ereq *r)
{
    struct edge *e = r->e;
    int64_t left = (r->deadline_us - now_us()) / 1000;

    e->retries_delayed++;
    r->retry_wait = 1;
    r->rwprev = e->rw_tail;
    r->rwnext = NULL;
    if (e->rw_tail)
        e->rw_tail->rwnext = r;
    else
        e->rw_head = r;
    e->rw_tail = r;
    if (!r->timer_on) {
        uv_timer_init(e->loop, &r->timer);
        r->timer.data = r;
        r->timer_on = 1;
    }
    uv_timer_start(&r->timer, retry_timer_cb, (uint64_t)(left > 0 ? left : 0), 0);
}

/* A retry ended (or the edge closes): start the waiting ones that fit. */
static void retry_wake(struct edge *e)
{
    while (e->rw_head != NULL &&
           (e->closing || edge_budget_allows(e->n_client, e->n_retrying,
                                             (int)e->cfg->retry_budget, (int)e->cfg->retry_min))) {
        struct ereq *r = e->rw_head;
        retry_wait_remove(r);
        uv_timer_stop(&r->timer);
        dispatch(r);
    }
}

/* Wait for capacity on <g>, in priority order (FIFO within a priority).
 * Over queue_max, the lowest-priority request is shed: the newcomer or the
 * newest of the lowest queued. */
static void enqueue(struct ereq *r, struct region *g)
{
    struct edge *e = r->e;
    struct ereq *p;
    int64_t wait_ms = e->cfg->queue_timeout_ms;
    int64_t left = (r->deadline_us - now_us()) / 1000;

    if (left < wait_ms)
        wait_ms = left;
    if ((uint64_t)e->cfg->queue_max == 0 || wait_ms <= 0) {
        g->shed++;
        answer_shed(r, "the region is at capacity");
        return;
    }
    if (g->n_queue >= (uint64_t)e->cfg->queue_max) {
        struct ereq *victim = g->qtail;
        if (victim->priority >= r->priority) {
            g->shed++;
            answer_shed(r, "the region is at capacity and its queue is full");
            return;
        }
        queue_remove(victim);
        uv_timer_stop(&victim->timer);
        g->shed++;
        answer_shed(victim, "shed for a request of higher priority");
    }
    for (p = g->qtail; p != NULL && p->priority < r->priority; p = p->qprev)
        ;
    /* insert after p (or at the head) */
    r->qprev = p;
    r->qnext = p ? p->qnext : g->qhead;
    if (r->qnext)
        r->qnext->qprev = r;
    else
        g->qtail = r;
    if (p)
        p->qnext = r;
    else
        g->qhead = r;
    r->qregion = g;
    g->n_queue++;
    if (!r->timer_on) {
        uv_timer_init(e->loop, &r->timer);
        r->timer.data = r;
        r->timer_on = 1;
    }
    uv_timer_start(&r->timer, queue_timer_cb, (uint64_t)wait_ms, 0);
}

/* A slot freed on <g>: start the queued requests that now fit. */
static void region_release(struct region *g)
{
    int64_t cap = g->cfg->capacity;

    while (g->qhead != NULL && (cap == 0 || g->in_flight < (uint64_t)cap)) {
        struct ereq *r = g->qhead;
        queue_remove(r);
        uv_timer_stop(&r->timer);
        if (g->h.state != EDGE_HEALTHY && any_healthy(g->e)) {
            /* The region went down while r waited: route again. */
            dispatch(r);
        } else {
            send_attempt(r, g);
        }
    }
}

static void dispatch(struct ereq *r)
{
    struct edge *e = r->e;
    struct region *g;

    if (e->closing) {
        answer_error(r, 503, "EUNAVAIL", "the edge is shutting down", NULL);
        return;
    }
    g = pick_region(r);
    if (g == NULL) {
        if (r->attempts == 0 && r->has_stale) {
            /* Every region is down: the stale copy now, not after a
             * timeout (CloudFront waits out the origin first). */
            answer_stale(r, "no healthy region");
            return;
        }
        answer_failure(r, r->attempts == 0 ? "no healthy region (all_unhealthy = fail_closed)"
                                           : "no other healthy region to try");
        return;
    }
    if (g->cfg->capacity > 0 && g->in_flight >= (uint64_t)g->cfg->capacity) {
        enqueue(r, g);
        return;
    }
    send_attempt(r, g);
}

static enum edge_outcome classify(int rc, const struct http_response *resp)
{
    if (rc == 0) {
        /* 501 and 505 say "not here, not ever": the region is fine. */
        if (resp->status >= 500 && resp->status != 501 && resp->status != 505)
            return EDGE_5XX;
        return EDGE_OK;
    }
    switch (rc) {
    case MR_ECONN: return EDGE_REFUSED;
    case MR_ETIMEDOUT: return EDGE_TIMEOUT;
    case MR_EPROTO: return EDGE_BAD_RESPONSE;
    default: return EDGE_RESET;
    }
}

static void store_in_cache(struct ereq *r, const struct http_response *resp, const char *ct,
                           const char *hdrs)
{
    struct edge *e = r->e;
    struct edge_cache_req cq = {r->cache_key, r->rh, r->n_rh, mr_now_ms()};

    if (e->cache == NULL || r->cache_key == NULL || strcmp(r->method, "GET") != 0)
        return;
    if (!edge_cache_store(e->cache, &cq, resp->status, resp->headers, resp->n_headers, ct, hdrs,
                          resp->body, resp->body_len)) {
        /* An answer that may no longer be stored replaces nothing stale. */
        struct edge_cc cc;
        edge_cc_parse_fields(resp->headers, resp->n_headers, &cc);
        if (cc.no_store || cc.private_)
            edge_cache_evict_key(e->cache, r->cache_key);
    }
}

static void keep_last(struct ereq *r, const struct http_response *resp)
{
    struct mr_buf h;
    const char *ct = find_hdr(resp->headers, resp->n_headers, "Content-Type");

    mr_free(r->last_ct);
    mr_free(r->last_headers);
    mr_free(r->last_body);
    mr_buf_init(&h);
    filter_response_headers(resp, &h);
    mr_buf_puts(&h, "");
    r->last_headers = mr_buf_steal(&h, NULL);
    r->last_ct = ct ? mr_strdup(ct) : NULL;
    r->last_body = mr_malloc(resp->body_len + 1);
    memcpy(r->last_body, resp->body, resp->body_len);
    r->last_body_len = resp->body_len;
    r->last_status = resp->status;
    r->has_last = 1;
}

static void on_response(struct http_call *call, int rc, const struct http_response *resp,
                        void *data)
{
    struct ereq *r = data;
    struct edge *e = r->e;
    struct region *g = r->cur;
    enum edge_outcome o = classify(rc, resp);
    int retry_ok;

    (void)call;
    r->call = NULL;
    g->in_flight--;
    if (r->cur_retry)
        e->n_retrying--;
    /* r itself needs no budget for what follows: it is not on the list. */
    if (r->cur_retry)
        retry_wake(e);
    /* A cancelled call (the edge is closing) says nothing about the region. */
    if (!(rc == MR_ECLOSED && e->closing))
        region_live(g, o);
    r->last_outcome = o;
    if (o == EDGE_OK) {
        const char *ct = find_hdr(resp->headers, resp->n_headers, "Content-Type");
        struct mr_buf h;

        r->has_last = 0;
        mr_buf_init(&h);
        filter_response_headers(resp, &h);
        mr_buf_puts(&h, "");
        store_in_cache(r, resp, ct, h.data);
        if (r->refresh) {
            mr_buf_close(&h);
            ereq_maybe_free(r);
            region_release(g);
            return;
        }
        mr_buf_printf(&h, "Meridian-Region: %s\r\nMeridian-Attempts: %d\r\nVia: 1.1 %s\r\n",
                      g->cfg->name, r->attempts, e->cfg->name);
        if (r->cache_key) {
            mr_buf_puts(&h, "Meridian-Cache: miss\r\n");
            e->cache_miss++;
        }
        answer(r, resp->status, ct, resp->body, resp->body_len, h.data);
        mr_buf_close(&h);
        region_release(g);
        return;
    }
    if (o == EDGE_5XX)
        keep_last(r, resp);
    else
        r->has_last = 0;
    mr_log(MR_LOG_DEBUG, "edge", "%s %s: attempt %d on %s failed: %s", r->method, r->target,
           r->attempts, g->cfg->name, rc ? mr_strerror(rc) : "5xx");
    /* Safe to send again?  GET/HEAD/OPTIONS and Idempotency-Key requests
     * always; other writes only when the first attempt never reached the
     * region (refused: the request never left). */
    retry_ok = !e->closing && r->attempts < e->cfg->max_attempts &&
               r->deadline_us > now_us() && (r->safe || o == EDGE_REFUSED);
    if (r->refresh) {
        /* A background refresh does not fail over: the stale copy stays. */
        ereq_maybe_free(r);
        region_release(g);
        return;
    }
    if (e->closing) {
        answer_error(r, 503, "EUNAVAIL", "the edge is shutting down", NULL);
        region_release(g);
        return;
    }
    if (retry_ok && pick_region(r) != NULL) {
        region_release(g);
        if (!edge_budget_allows(e->n_client, e->n_retrying, (int)e->cfg->retry_budget,
                                (int)e->cfg->retry_min))
            retry_wait_add(r);
        else
            dispatch(r);
        return;
    }
    if (r->attempts == 1 && !r->safe && o != EDGE_REFUSED && o != EDGE_5XX)
        answer_failure(r, "the region failed after the request was sent; not retried (not "
                          "idempotent: send an Idempotency-Key to allow it)");
    else
        answer_failure(r, o == EDGE_TIMEOUT ? "the region did not answer in time"
                                            : "every region tried failed");
    region_release(g);
}

/* ---- background refresh (stale-while-revalidate) ----------------------------- */

static int refreshing(struct edge *e, const char *key)
{
    for (struct ereq *r = e->reqs; r; r = r->next)
        if (r->refresh && strcmp(r->cache_key, key) == 0)
            return 1;
    return 0;
}

static struct ereq *ereq_new(struct edge *e)
{
    struct ereq *r = mr_calloc(1, sizeof(*r));

    r->e = e;
    r->next = e->reqs;
    if (e->reqs)
        e->reqs->prev = r;
    e->reqs = r;
    e->n_live++;
    mr_buf_init(&r->fwd);
    mr_buf_init(&r->own_strs);
    r->start_us = now_us();
    r->deadline_us = r->start_us + e->cfg->total_timeout_ms * 1000;
    return r;
}

static void start_refresh(struct edge *e, const struct ereq *src)
{
    struct ereq *r;
    size_t n = src->n_rh;

    if (refreshing(e, src->cache_key))
        return;
    r = ereq_new(e);
    r->refresh = 1;
    r->safe = 1;
    r->method = mr_strdup("GET");
    r->target = mr_strdup(src->target);
    r->cache_key = mr_strdup(src->cache_key);
    mr_buf_puts(&r->fwd, src->fwd.data);
    /* The request headers, for the Vary of the new answer. */
    r->own_rh = mr_calloc(n ? n : 1, sizeof(*r->own_rh));
    {
        size_t *off = mr_calloc(2 * (n ? n : 1), sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            off[2 * i] = r->own_strs.len;
            mr_buf_append(&r->own_strs, src->rh[i].name, strlen(src->rh[i].name) + 1);
            off[2 * i + 1] = r->own_strs.len;
            mr_buf_append(&r->own_strs, src->rh[i].value, strlen(src->rh[i].value) + 1);
        }
        for (size_t i = 0; i < n; i++) {
            r->own_rh[i].name = r->own_strs.data + off[2 * i];
            r->own_rh[i].value = r->own_strs.data + off[2 * i + 1];
        }
        mr_free(off);
    }
    r->rh = r->own_rh;
    r->n_rh = n;
    r->cls = (int)e->cfg->n_classes;
    r->priority = -1000;   /* refreshes yield to every client request */
    e->refreshes++;
    dispatch(r);
}

/* ---- admin endpoints ------------------------------------------------------------ */

static void status_json(struct edge *e, struct mr_buf *b)
{
    struct region *order[EDGE_MAX_REGIONS];
    size_t n = region_order(e, order);
    struct edge_cache_stats cs = {0};

    if (e->cache)
        edge_cache_stats(e->cache, &cs);
    mr_buf_puts(b, "{\"name\":");
    mr_json_cstr(b, e->cfg->name);
    mr_buf_printf(b, ",\"state\":\"%s\",\"in_flight\":%llu,\"retrying\":%llu,\"all_unhealthy\":"
                  "\"%s\",\"order\":[", e->stopping ? "draining" : "serving",
                  (unsigned long long)e->n_client, (unsigned long long)e->n_retrying,
                  e->cfg->all_unhealthy);
    for (size_t i = 0; i < n; i++) {
        mr_buf_puts(b, i ? "," : "");
        mr_json_cstr(b, order[i]->cfg->name);
    }
    mr_buf_puts(b, "],\"regions\":[");
    for (size_t i = 0; i < e->n_regions; i++) {
        struct region *g = &e->regions[i];
        mr_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        mr_json_cstr(b, g->cfg->name);
        mr_buf_puts(b, ",\"origin\":");
        mr_json_cstr(b, g->cfg->origin);
        mr_buf_printf(b, ",\"state\":\"%s\",\"rtt_ms\":", edge_state_name(g->h.state));
        if (g->srtt_us >= 0)
            mr_json_double(b, (double)g->srtt_us / 1000.0);
        else
            mr_buf_puts(b, "null");
        mr_buf_printf(b, ",\"in_flight\":%llu,\"queued\":%llu,\"capacity\":%lld,\"requests\":%llu,"
                      "\"shed\":%llu,\"transitions\":[",
                      (unsigned long long)g->in_flight, (unsigned long long)g->n_queue,
                      (long long)g->cfg->capacity, (unsigned long long)g->requests,
                      (unsigned long long)g->shed);
        for (uint64_t k = g->n_log > N_TRANSITIONS ? g->n_log - N_TRANSITIONS : 0, first = 1;
             k < g->n_log; k++, first = 0) {
            const struct transition *t = &g->log[k % N_TRANSITIONS];
            mr_buf_printf(b, "%s{\"at_ms\":%lld,\"from\":\"%s\",\"to\":\"%s\",\"reason\":",
                          first ? "" : ",", (long long)t->at_ms, edge_state_name(t->from),
                          edge_state_name(t->to));
            mr_json_cstr(b, t->reason);
            mr_buf_puts(b, "}");
        }
        mr_buf_puts(b, "]}");
    }
    mr_buf_printf(b, "],\"cache\":{\"enabled\":%s,\"entries\":%llu,\"bytes\":%llu,\"hit\":%llu,"
                  "\"miss\":%llu,\"stale\":%llu}}\n", e->cache ? "true" : "false",
                  (unsigned long long)cs.entries, (unsigned long long)cs.bytes,
                  (unsigned long long)e->cache_hit, (unsigned long long)e->cache_miss,
                  (unsigned long long)e->cache_stale);
}

static void metrics_text(struct edge *e, struct mr_buf *b)
{
    struct edge_cache_stats cs = {0};
    struct http_server_stats ss;
    char l[160];
    static const char *const cls[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

    if (e->cache)
        edge_cache_stats(e->cache, &cs);
    http_server_stats(e->server, &ss);
    mr_metric_header(b, "meridian_edge_requests_total", "counter", "client requests proxied");
    mr_metric_u64(b, "meridian_edge_requests_total", NULL, e->requests);
    mr_metric_header(b, "meridian_edge_responses_total", "counter", "answers by status class");
    for (int i = 1; i < 6; i++) {
        snprintf(l, sizeof(l), "code=\"%s\"", cls[i]);
        mr_metric_u64(b, "meridian_edge_responses_total", l, e->responses[i]);
    }
    mr_metric_header(b, "meridian_edge_in_flight", "gauge", "client requests being handled");
    mr_metric_u64(b, "meridian_edge_in_flight", NULL, e->n_client);
    mr_metric_header(b, "meridian_edge_retries_total", "counter", "attempts that were retries");
    mr_metric_u64(b, "meridian_edge_retries_total", NULL, e->retries);
    mr_metric_header(b, "meridian_edge_retries_denied_total", "counter",
                     "retries that waited for the retry budget until the total timeout");
    mr_metric_u64(b, "meridian_edge_retries_denied_total", NULL, e->retries_denied);
    mr_metric_header(b, "meridian_edge_retries_delayed_total", "counter",
                     "retries that waited for the retry budget");
    mr_metric_u64(b, "meridian_edge_retries_delayed_total", NULL, e->retries_delayed);
    mr_metric_header(b, "meridian_edge_attempts_total", "counter",
                     "answered requests by the number of attempts they took");
    for (int i = 0; i <= (int)e->n_regions; i++) {
        snprintf(l, sizeof(l), "attempts=\"%d\"", i);
        mr_metric_u64(b, "meridian_edge_attempts_total", l, e->attempts_hist[i]);
    }
    mr_metric_header(b, "meridian_edge_errors_total", "counter", "answers the edge made itself");
    mr_metric_u64(b, "meridian_edge_errors_total", "kind=\"no_region\"", e->no_region);
    mr_metric_u64(b, "meridian_edge_errors_total", "kind=\"bad_gateway\"", e->bad_gateway);
    mr_metric_u64(b, "meridian_edge_errors_total", "kind=\"gateway_timeout\"",
                  e->gateway_timeout);
    mr_metric_header(b, "meridian_edge_rate_limited_total", "counter",
                     "requests answered 429 by the per-client rate limit");
    mr_metric_u64(b, "meridian_edge_rate_limited_total", NULL, e->rate_limited);
    mr_metric_header(b, "meridian_edge_rate_clients", "gauge",
                     "client addresses the rate limit remembers");
    mr_metric_u64(b, "meridian_edge_rate_clients", NULL, e->rl ? edge_rl_clients(e->rl) : 0);
    mr_metric_header(b, "meridian_edge_rate_evictions_total", "counter",
                     "client addresses forgotten to make room (least recently seen first)");
    mr_metric_u64(b, "meridian_edge_rate_evictions_total", NULL, e->rl ? edge_rl_evictions(e->rl) : 0);
    mr_metric_header(b, "meridian_edge_connections_rejected_total", "counter",
                     "connections refused: over max_connections (503) or per client (429)");
    mr_metric_u64(b, "meridian_edge_connections_rejected_total", "limit=\"total\"",
                  ss.connections_rejected);
    mr_metric_u64(b, "meridian_edge_connections_rejected_total", "limit=\"per_client\"",
                  ss.connections_rejected_per_ip);
    mr_metric_header(b, "meridian_edge_cache_total", "counter",
                     "cache lookups by result (stale includes stale-if-error)");
    mr_metric_u64(b, "meridian_edge_cache_total", "result=\"hit\"", e->cache_hit);
    mr_metric_u64(b, "meridian_edge_cache_total", "result=\"miss\"", e->cache_miss);
    mr_metric_u64(b, "meridian_edge_cache_total", "result=\"stale\"", e->cache_stale);
    mr_metric_header(b, "meridian_edge_cache_stale_if_error_total", "counter",
                     "stale answers served because every region failed");
    mr_metric_u64(b, "meridian_edge_cache_stale_if_error_total", NULL, e->cache_stale_if_error);
    mr_metric_header(b, "meridian_edge_cache_refreshes_total", "counter",
                     "background refreshes (stale-while-revalidate)");
    mr_metric_u64(b, "meridian_edge_cache_refreshes_total", NULL, e->refreshes);
    mr_metric_header(b, "meridian_edge_cache_entries", "gauge", "answers stored");
    mr_metric_u64(b, "meridian_edge_cache_entries", NULL, cs.entries);
    mr_metric_header(b, "meridian_edge_cache_bytes", "gauge", "bytes stored");
    mr_metric_u64(b, "meridian_edge_cache_bytes", NULL, cs.bytes);
    mr_metric_header(b, "meridian_edge_cache_evictions_total", "counter", "LRU evictions");
    mr_metric_u64(b, "meridian_edge_cache_evictions_total", NULL, cs.evictions);
    mr_metric_header(b, "meridian_edge_class_requests_total", "counter",
                     "requests by priority class");
    mr_metric_header(b, "meridian_edge_class_shed_total", "counter",
                     "requests shed (503 + Retry-After) by priority class");
    for (size_t i = 0; i <= e->cfg->n_classes; i++) {
        snprintf(l, sizeof(l), "class=\"%s\"",
                 i < e->cfg->n_classes ? e->cfg->classes[i].name : "default");
        mr_metric_u64(b, "meridian_edge_class_requests_total", l, e->class_st[i].requests);
        mr_metric_u64(b, "meridian_edge_class_shed_total", l, e->class_st[i].shed);
    }
    mr_metric_header(b, "meridian_edge_region_up", "gauge",
                     "1 when the region is healthy, 0 unhealthy, -1 unknown");
    mr_metric_header(b, "meridian_edge_region_rtt_seconds", "gauge", "smoothed probe RTT");
    mr_metric_header(b, "meridian_edge_region_in_flight", "gauge", "attempts in flight");
    mr_metric_header(b, "meridian_edge_region_queued", "gauge", "requests waiting for capacity");
    mr_metric_header(b, "meridian_edge_region_attempts_total", "counter", "attempts sent");
    mr_metric_header(b, "meridian_edge_region_outcomes_total", "counter",
                     "attempt results by outcome");
    mr_metric_header(b, "meridian_edge_region_transitions_total", "counter",
                     "health state changes, by the state entered");
    mr_metric_header(b, "meridian_edge_region_probes_total", "counter", "probes by result");
    mr_metric_header(b, "meridian_edge_region_shed_total", "counter", "requests shed");
    for (size_t i = 0; i < e->n_regions; i++) {
        struct region *g = &e->regions[i];
        const char *rn = g->cfg->name;
        snprintf(l, sizeof(l), "region=\"%s\"", rn);
        mr_metric_f64(b, "meridian_edge_region_up", l,
                      g->h.state == EDGE_HEALTHY ? 1 : g->h.state == EDGE_UNHEALTHY ? 0 : -1);
        mr_metric_f64(b, "meridian_edge_region_rtt_seconds", l,
                      g->srtt_us >= 0 ? (double)g->srtt_us / 1e6 : 0);
        mr_metric_u64(b, "meridian_edge_region_in_flight", l, g->in_flight);
        mr_metric_u64(b, "meridian_edge_region_queued", l, g->n_queue);
        mr_metric_u64(b, "meridian_edge_region_attempts_total", l, g->requests);
        mr_metric_u64(b, "meridian_edge_region_shed_total", l, g->shed);
        for (int o = 0; o < N_OUTCOMES; o++) {
            snprintf(l, sizeof(l), "region=\"%s\",outcome=\"%s\"", rn,
                     edge_outcome_name((enum edge_outcome)o));
            mr_metric_u64(b, "meridian_edge_region_outcomes_total", l, g->outcomes[o]);
        }
        for (int s = 1; s < 3; s++) {
            snprintf(l, sizeof(l), "region=\"%s\",to=\"%s\"", rn,
                     edge_state_name((enum edge_state)s));
            mr_metric_u64(b, "meridian_edge_region_transitions_total", l, g->to_state[s]);
        }
        snprintf(l, sizeof(l), "region=\"%s\",result=\"ok\"", rn);
        mr_metric_u64(b, "meridian_edge_region_probes_total", l, g->probes_ok);
        snprintf(l, sizeof(l), "region=\"%s\",result=\"failed\"", rn);
        mr_metric_u64(b, "meridian_edge_region_probes_total", l, g->probes_failed);
    }
    mr_metric_header(b, "meridian_edge_request_duration_seconds", "histogram",
                     "time from request to answer, at the edge");
    mr_metric_hist(b, "meridian_edge_request_duration_seconds", NULL, &e->latency);
    mr_metric_header(b, "meridian_edge_http_connections_open", "gauge", "client connections");
    mr_metric_u64(b, "meridian_edge_http_connections_open", NULL, ss.connections_open);
    mr_metric_header(b, "meridian_edge_tls_refused_total", "counter",
                     "TLS handshakes refused on the public listener (not TLS, bad hello, ...)");
    mr_metric_u64(b, "meridian_edge_tls_refused_total", NULL, ss.tls_refused);
    mr_metric_header(b, "meridian_edge_http_bad_requests_total", "counter",
                     "malformed client requests (answered 4xx by the HTTP layer)");
    mr_metric_u64(b, "meridian_edge_http_bad_requests_total", NULL, ss.bad_requests);
}

/* Answer the edge's own endpoints; 1 when <req> was one. */
static int admin(struct edge *e, struct http_exchange *ex, const struct http_request *req)
{
    const char *p = req->path;
    struct mr_buf b;

    if (strcmp(p, "/healthz") && strcmp(p, "/readyz") && strcmp(p, "/metrics") &&
        strcmp(p, "/v1/status"))
        return 0;
    e->admin_requests++;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_respond(ex, 405, "application/json",
                     "{\"error\":{\"code\":\"EINVAL\",\"message\":\"GET only\"}}\n", 51,
                     "Allow: GET, HEAD\r\n");
        return 1;
    }
    mr_buf_init(&b);
    if (strcmp(p, "/healthz") == 0) {
        http_respond(ex, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(p, "/readyz") == 0) {
        int ok = !e->stopping && any_healthy(e);
        mr_buf_puts(&b, ok ? "ready\n"
                           : e->stopping ? "draining\n" : "no healthy region\n");
        http_respond(ex, ok ? 200 : 503, "text/plain", b.data, b.len, NULL);
    } else if (strcmp(p, "/metrics") == 0) {
        metrics_text(e, &b);
        http_respond(ex, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
    } else {
        status_json(e, &b);
        http_respond(ex, 200, "application/json", b.data, b.len, NULL);
    }
    mr_buf_close(&b);
    return 1;
}

/* ---- the handler ---------------------------------------------------------------- */

static int class_of(const struct edge_config *cfg, const char *path)
{
    int best = (int)cfg->n_classes;
    size_t best_len = 0;

    for (size_t i = 0; i < cfg->n_classes; i++)
        for (size_t j = 0; j < cfg->classes[i].n_prefixes; j++) {
            size_t n = strlen(cfg->classes[i].prefixes[j]);
            if (n > best_len && strncmp(path, cfg->classes[i].prefixes[j], n) == 0) {
                best = (int)i;
                best_len = n;
            }
        }
    return best;
}

static void on_request(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct edge *e = data;
    struct ereq *r;
    const char *conn;
    int cacheable;

    if (admin(e, ex, req))
        return;
    /* After the edge's own endpoints (health probes, metrics: cheap, and
     * often from one monitoring address), before any work for the origin. */
    if (e->rl != NULL && req->peer[0]) {
        int64_t wait_s = edge_rl_take(e->rl, req->peer, mr_mono_us());
        if (wait_s > 0) {
            char hdr[48];
            struct mr_buf b;
            e->rate_limited++;
            snprintf(hdr, sizeof(hdr), "Retry-After: %lld\r\n", (long long)wait_s);
            mr_buf_init(&b);
            mr_json_error(&b, "rate_limited", "too many requests from this address: slow down");
            http_respond(ex, 429, "application/json", b.data, b.len, hdr);
            mr_buf_close(&b);
            return;
        }
    }
    e->requests++;
    r = ereq_new(e);
    r->ex = ex;
    e->n_client++;
    r->method = mr_strdup(req->method);
    r->target = req->query[0] ? mr_asprintf("%s?%s", req->path, req->query)
                              : mr_strdup(req->path);
    r->body = req->body;
    r->body_len = req->body_len;
    r->rh = req->headers;
    r->n_rh = req->n_headers;
    r->head = strcmp(req->method, "HEAD") == 0;
    r->safe = strcmp(req->method, "GET") == 0 || r->head || strcmp(req->method, "OPTIONS") == 0 ||
              http_request_header(req, "Idempotency-Key") != NULL;
    r->cls = class_of(e->cfg, req->path);
    r->priority = r->cls < (int)e->cfg->n_classes ? (int)e->cfg->classes[r->cls].priority : 0;
    e->class_st[r->cls].requests++;
    if (e->stopping) {
        answer_error(r, 503, "EUNAVAIL", "the edge is shutting down", NULL);
        return;
    }
    /* The forwarded head: everything but hop-by-hop fields and what the
     * client side sets itself (Host, Content-Length).  Cookies and
     * Meridian-Token pass unchanged. */
    conn = http_request_header(req, "Connection");
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *n = req->headers[i].name;
        if (hop_by_hop(n) || strcasecmp(n, "Host") == 0 ||
            strcasecmp(n, "Content-Length") == 0 || strcasecmp(n, "Expect") == 0 ||
            (conn && hdr_in_list(conn, n)))
            continue;
        put_header(&r->fwd, n, req->headers[i].value);
    }
    mr_buf_printf(&r->fwd, "Via: 1.1 %s\r\n", e->cfg->name);
    /* The origin sees its own address in Host; the name the user asked
     * for travels here (the shop builds absolute links from it). */
    if (http_request_header(req, "Host") != NULL &&
        http_request_header(req, "X-Forwarded-Host") == NULL)
        put_header(&r->fwd, "X-Forwarded-Host", http_request_header(req, "Host"));
    cacheable = e->cache != NULL && (strcmp(req->method, "GET") == 0 || r->head) &&
                req->body_len == 0;
    if (cacheable) {
        struct edge_cache_req cq = {r->target, req->headers, req->n_headers, mr_now_ms()};
        struct edge_cached c;
        enum edge_fresh f = edge_cache_lookup(e->cache, &cq, &c);

        r->cache_key = mr_strdup(r->target);
        if (f == EDGE_CACHE_FRESH || f == EDGE_CACHE_STALE_SWR) {
            struct mr_buf h;
            mr_buf_init(&h);
            mr_buf_puts(&h, c.headers);
            mr_buf_printf(&h, "Age: %lld\r\nMeridian-Cache: %s\r\nMeridian-Attempts: 0\r\n"
                          "Via: 1.1 %s\r\n", (long long)c.age_s,
                          f == EDGE_CACHE_FRESH ? "hit" : "stale", e->cfg->name);
            if (f == EDGE_CACHE_FRESH)
                e->cache_hit++;
            else
                e->cache_stale++;
            if (f == EDGE_CACHE_STALE_SWR)
                start_refresh(e, r);
            answer(r, c.status, c.content_type, c.body, c.body_len, h.data);
            mr_buf_close(&h);
            return;
        }
        if (f == EDGE_CACHE_STALE_SIE) {
            r->has_stale = 1;
            r->st_status = c.status;
            r->st_ct = c.content_type ? mr_strdup(c.content_type) : NULL;
            r->st_headers = mr_strdup(c.headers);
            r->st_body = mr_malloc(c.body_len + 1);
            memcpy(r->st_body, c.body, c.body_len);
            r->st_len = c.body_len;
            r->st_age = c.age_s;
        }
    }
    dispatch(r);
}

/* ---- probes ---------------------------------------------------------------------- */

struct probe {
    struct region *g;
    int64_t start_us;
};

static void probe_schedule(struct region *g);

static void probe_cb(struct http_call *call, int rc, const struct http_response *resp,
                     void *data)
{
    struct probe *p = data;
    struct region *g = p->g;
    struct edge *e = g->e;
    int64_t rtt = now_us() - p->start_us;
    int ok = rc == 0 && resp->status == 200;
    enum edge_state from = g->h.state;
    char reason[64];

    (void)call;
    mr_free(p);
    g->n_probes--;
    if (e->closing)
        return;
    if (ok) {
        g->probes_ok++;
        g->last_rtt_us = rtt;
        g->srtt_us = g->srtt_us < 0 ? rtt : g->srtt_us + (rtt - g->srtt_us) * e->cfg->rtt_alpha / 100;
    } else {
        g->probes_failed++;
        mr_log(MR_LOG_DEBUG, "edge", "region %s: probe failed: %s", g->cfg->name,
               rc ? mr_strerror(rc) : "not 200");
    }
    if (edge_health_probe(&g->h, &e->hp, ok, reason, sizeof(reason)) >= 0) {
        char full[128];
        snprintf(full, sizeof(full), "%s (%s)", reason,
                 ok ? "ready" : rc ? mr_strerror(rc) : "not 200");
        region_transition(g, from, g->h.state, full);
        /* A region back up takes its share of what waits on others. */
    }
}

static void probe_timer_cb(uv_timer_t *t)
{
    struct region *g = t->data;
    struct edge *e = g->e;
    struct http_client_request q;
    struct probe *p;

    if (e->closing)
        return;
    /* Probes start on the interval whatever the previous one does, so that
     * a frozen region fails its probes at the interval, not at the sum of
     * interval and timeout.  A few may overlap. */
    if (g->n_probes < MAX_PROBES_IN_FLIGHT) {
        p = mr_malloc(sizeof(*p));
        p->g = g;
        p->start_us = now_us();
        memset(&q, 0, sizeof(q));
        q.method = "GET";
        q.host = g->cfg->host;
        q.port = g->cfg->port;
        q.path = e->cfg->probe_path;
        q.headers = "User-Agent: meridian-edge-probe\r\n";
        q.timeout_ms = (uint64_t)e->cfg->probe_timeout_ms;
        if (http_client_request(g->probe_client, &q, probe_cb, p, NULL) == 0)
            g->n_probes++;
        else
            mr_free(p);
    }
    probe_schedule(g);
}

static void probe_schedule(struct region *g)
{
    const struct edge_config *cfg = g->e->cfg;
    uint64_t jitter = cfg->probe_jitter_ms > 0
                          ? mr_random64() % (uint64_t)(cfg->probe_jitter_ms + 1) : 0;

    uv_timer_start(&g->probe_timer, probe_timer_cb, (uint64_t)cfg->probe_interval_ms + jitter, 0);
}

/* ---- start and stop -------------------------------------------------------------- */

int edge_port(const struct edge *e)
{
    return http_server_port(e->server);
}

static void timer_closed(uv_handle_t *h)
{
    struct edge *e = h->data;

    e->n_live--;
    edge_maybe_free(e);
}

static void edge_maybe_free(struct edge *e)
{
    if (!e->closing || e->n_live > 0)
        return;
    edge_cache_free(e->cache);
    edge_rl_free(e->rl);
    mr_free(e);
}

static void region_timer_closed(uv_handle_t *h)
{
    struct region *g = h->data;

    g->e->n_live--;
    edge_maybe_free(g->e);
}

int edge_start(uv_loop_t *loop, const struct edge_config *cfg, struct edge **out, char *err)
{
    struct edge *e = mr_calloc(1, sizeof(*e));
    struct http_server_opts so;
    struct http_client_opts co;
    int rc, any_https = 0;

    e->loop = loop;
    e->cfg = cfg;
    e->hp.unhealthy_after = (int)cfg->unhealthy_after;
    e->hp.healthy_after = (int)cfg->healthy_after;
    e->hp.passive_failures = (int)cfg->passive_failures;
    e->hp.passive_error_rate = (int)cfg->passive_error_rate;
    e->hp.passive_window = (int)cfg->passive_window;
    mr_hist_init(&e->latency, mr_hist_latency_bounds, mr_hist_latency_n);
    for (size_t i = 0; i < cfg->n_regions; i++)
        any_https |= cfg->regions[i].tls;
    if (any_https) {
        /* Mutual TLS to the shops: they refuse anyone without a certificate
         * from the cluster CA.  The origin's name is checked against its
         * certificate's SANs, as for any client. */
        struct tls_opts to = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file, 0, 0, 0};
        if ((rc = tls_ctx_new(&to, 0, &e->tls_origin, err)) != 0) {
            mr_wraperr(err, rc, "[tls] for https:// origins");
            goto err_free;
        }
    }
    if (cfg->tls_public_cert_file && cfg->tls_public_cert_file[0]) {
        /* Browsers present no certificate: do not ask for one. */
        struct tls_opts to = {NULL, cfg->tls_public_cert_file, cfg->tls_public_key_file, 0, 0, 1};
        if ((rc = tls_ctx_new(&to, 1, &e->tls_public, err)) != 0) {
            mr_wraperr(err, rc, "[tls] public_cert_file");
            goto err_free;
        }
    }
    http_client_opts_default(&co);
    co.max_idle_per_host = 1024;
    co.max_response_bytes = (size_t)cfg->max_response;
    if ((rc = http_client_new(loop, &co, &e->client)) != 0)
        goto err_client;
    co.tls = e->tls_origin;
    if (any_https && (rc = http_client_new(loop, &co, &e->tls_client)) != 0)
        goto err_client;
    co.tls = NULL;
    co.max_idle_per_host = MAX_PROBES_IN_FLIGHT;
    co.max_response_bytes = 64 * 1024;
    if ((rc = http_client_new(loop, &co, &e->probe_client)) != 0)
        goto err_client;
    co.tls = e->tls_origin;
    if (any_https && (rc = http_client_new(loop, &co, &e->tls_probe_client)) != 0)
        goto err_client;
    http_server_opts_default(&so);
    so.server_name = "meridian-edge";
    so.max_body_bytes = (size_t)cfg->max_body;
    so.max_connections = (size_t)cfg->max_connections;
    so.max_connections_per_ip = (size_t)cfg->max_connections_per_client;
    so.max_header_bytes = (size_t)cfg->max_header_bytes;
    so.max_headers = (size_t)cfg->max_headers;
    so.header_timeout_ms = (uint64_t)cfg->header_timeout_ms;
    so.idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms;
    so.tls = e->tls_public;
    if (cfg->rate > 0 &&
        (rc = edge_rl_new((double)cfg->rate, (double)cfg->burst, (size_t)cfg->rate_clients, &e->rl)) != 0) {
        mr_seterr(err, rc, "[limits] rate: cannot create the rate limiter");
        goto err_after_clients;
    }
    rc = http_server_start(loop, cfg->listen_host, cfg->listen_port, &so, on_request, e,
                           &e->server, err);
    if (rc != 0) {
        mr_wraperr(err, rc, "listen on %s", cfg->listen);
        goto err_after_clients;
    }
    if (cfg->cache_size > 0)
        e->cache = edge_cache_new((size_t)cfg->cache_size, (size_t)cfg->cache_max_object);
    uv_timer_init(loop, &e->drain_timer);
    e->drain_timer.data = e;
    e->n_live++;
    e->n_regions = cfg->n_regions;
    for (size_t i = 0; i < cfg->n_regions; i++) {
        struct region *g = &e->regions[i];
        g->e = e;
        g->idx = i;
        g->cfg = &cfg->regions[i];
        g->client = g->cfg->tls ? e->tls_client : e->client;
        g->probe_client = g->cfg->tls ? e->tls_probe_client : e->probe_client;
        g->srtt_us = -1;
        edge_health_init(&g->h);
        uv_timer_init(loop, &g->probe_timer);
        g->probe_timer.data = g;
        e->n_live++;
        /* The first probe at once: readiness within one round trip. */
        uv_timer_start(&g->probe_timer, probe_timer_cb, 0, 0);
    }
    mr_log(MR_LOG_INFO, "edge", "edge %s listening on %s:%d (%s); %zu regions, prefer %s, "
           "all_unhealthy %s, cache %lld bytes", cfg->name, cfg->listen_host,
           http_server_port(e->server), e->tls_public ? "TLS" : "plain HTTP", cfg->n_regions,
           cfg->prefer, cfg->all_unhealthy, (long long)cfg->cache_size);
    *out = e;
    return 0;

err_client:
    mr_seterr(err, rc, "HTTP client: %s", mr_strerror(rc));
err_after_clients:
    edge_rl_free(e->rl);
    http_client_free(e->tls_probe_client);   /* NULL is a no-op */
    http_client_free(e->probe_client);
    http_client_free(e->tls_client);
    http_client_free(e->client);
err_free:
    tls_ctx_free(e->tls_origin);
    tls_ctx_free(e->tls_public);
    mr_free(e);
    return rc;
}

int edge_reload_tls(struct edge *e, char *err)
{
    char one[MR_ERRMSG_LEN];
    int rc = 0, r;

    /* Each context on its own: a bad public certificate must not stop the
     * origin certificate's rotation (and the reverse). */
    if (e->tls_public && (r = tls_ctx_reload(e->tls_public, one)) != 0)
        rc = mr_seterr(err, r, "public certificate: %s", one);
    if (e->tls_origin && (r = tls_ctx_reload(e->tls_origin, one)) != 0 && rc == 0)
        rc = mr_seterr(err, r, "origin certificate: %s", one);
    return rc;
}



/* Past the drain: answer what is left, close everything. */
static void edge_close(struct edge *e)
{
    e->closing = 1;
    uv_timer_stop(&e->drain_timer);
    while (e->rw_head) {
        struct ereq *r = e->rw_head;
        retry_wait_remove(r);
        uv_timer_stop(&r->timer);
        answer_error(r, 503, "EUNAVAIL", "the edge is shutting down", NULL);
    }
    /* Queued requests first (503), then calls: freeing the client runs
     * their callbacks with MR_ECLOSED, which answer 503 (closing). */
    for (size_t i = 0; i < e->n_regions; i++) {
        struct region *g = &e->regions[i];
        while (g->qhead) {
            struct ereq *r = g->qhead;
            queue_remove(r);
            uv_timer_stop(&r->timer);
            answer_error(r, 503, "EUNAVAIL", "the edge is shutting down", NULL);
        }
        uv_timer_stop(&g->probe_timer);
        uv_close((uv_handle_t *)&g->probe_timer, region_timer_closed);
    }
    http_client_free(e->client);
    e->client = NULL;
    http_client_free(e->probe_client);
    e->probe_client = NULL;
    http_client_free(e->tls_client);         /* NULL is a no-op */
    e->tls_client = NULL;
    http_client_free(e->tls_probe_client);
    e->tls_probe_client = NULL;
    http_server_close(e->server);
    e->server = NULL;
    /* Live connections hold their own reference to their context; nothing
     * makes new ones now. */
    tls_ctx_free(e->tls_origin);
    e->tls_origin = NULL;
    tls_ctx_free(e->tls_public);
    e->tls_public = NULL;
    uv_close((uv_handle_t *)&e->drain_timer, timer_closed);
}

static void drain_cb(uv_timer_t *t)
{
    struct edge *e = t->data;

    if (e->n_client == 0 || now_us() >= e->drain_deadline_us) {
        if (e->n_client > 0)
            mr_log(MR_LOG_WARN, "edge", "drain timeout: %llu requests still in flight get 503",
                   (unsigned long long)e->n_client);
        edge_close(e);
    }
}

void edge_stop(struct edge *e)
{
    if (e->stopping)
        return;
    e->stopping = 1;
    e->drain_deadline_us = now_us() + e->cfg->drain_timeout_ms * 1000;
    mr_log(MR_LOG_INFO, "edge", "stopping: %llu requests in flight, drain at most %lld ms",
           (unsigned long long)e->n_client, (long long)e->cfg->drain_timeout_ms);
    uv_timer_start(&e->drain_timer, drain_cb, 0, 10);
}
