/* dashboard.c -- the node's operations dashboard: GET /dashboard (an HTML
 * page drawing its own SVG charts, nothing fetched from elsewhere) and
 * GET /v1/dashboard (the JSON it polls).  docs/dashboard.md.
 *
 * Every node serves the whole topology as its region sees it, so the page
 * stays useful while any other region is down.  Once per DASH_TICK_MS the
 * node samples itself (request and error counts, replication lag of both
 * data paths) and what it last heard from:
 *   - the other regions' nodes: GET /v1/status, at the URLs the global
 *     tables stream to (tstream.c: [tables] peers, else etcd's
 *     /meridian/<cluster>/nodes/<region>);
 *   - the wan ([dashboard] wan): GET /links;
 *   - the edges ([dashboard] edges): GET /v1/status and GET /metrics;
 * and starts the next round of those calls on keep-alive clients, each
 * bounded by DASH_FETCH_TIMEOUT_MS, at most one in flight per target: a
 * target that does not answer is shown unreachable and never holds anything
 * up.  The answers feed a ring of the last DASH_HISTORY samples and an
 * event list derived from the state changes seen (dashboard_int.h), so a
 * page opened now shows five minutes of charts at once.
 *
 * Two clients, because a client is TLS for all its connections or for none:
 * <http> plain, <https> with the node's certificate ([tls]; NULL without).
 * A target's URL scheme picks one: with [tls] the other nodes are https://
 * (node_tls.c checks it), while the wan and the edges are whatever their
 * URLs say, typically plain http://.
 *
 * Depends on src/http (client, server), jansson, and the node's state
 * (node_int.h, tables_int.h), read only.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "dashboard_int.h"
#include "tables_int.h"

/* ---- history ---------------------------------------------------------------- */

void dash_history_init(struct dash_history *h)
{
    memset(h, 0, sizeof(*h));
}

void dash_history_close(struct dash_history *h)
{
    for (size_t i = 0; i < h->n_series; i++) {
        mr_free(h->series[i]);
        h->series[i] = NULL;
    }
    h->n_series = 0;
}

void dash_history_tick(struct dash_history *h, int64_t t_ms)
{
    h->head = h->n == 0 ? 0 : (h->head + 1) % DASH_HISTORY;
    if (h->n < DASH_HISTORY)
        h->n++;
    h->t_ms[h->head] = t_ms;
    for (size_t i = 0; i < h->n_series; i++)
        h->series[i]->v[h->head] = NAN;
}

static struct dash_series *series_find(const struct dash_history *h, const char *name)
{
    for (size_t i = 0; i < h->n_series; i++)
        if (strcmp(h->series[i]->name, name) == 0)
            return h->series[i];
    return NULL;
}

int dash_history_set(struct dash_history *h, const char *name, double v)
{
    struct dash_series *s;

    if (h->n == 0)
        return MR_EINVAL;
    s = series_find(h, name);
    if (s == NULL) {
        if (h->n_series == DASH_MAX_SERIES || strlen(name) >= sizeof(s->name))
            return MR_ETOOBIG;
        s = mr_malloc(sizeof(*s));
        snprintf(s->name, sizeof(s->name), "%s", name);
        for (size_t i = 0; i < DASH_HISTORY; i++)
            s->v[i] = NAN;
        h->series[h->n_series++] = s;
    }
    s->v[h->head] = v;
    return 0;
}

double dash_history_last(const struct dash_history *h, const char *name)
{
    const struct dash_series *s = series_find(h, name);

    return s && h->n ? s->v[h->head] : NAN;
}

void dash_history_json(const struct dash_history *h, struct mr_buf *b)
{
    /* The oldest sample is the one after head once the ring is full. */
    size_t first = h->n < DASH_HISTORY ? 0 : (h->head + 1) % DASH_HISTORY;

    mr_buf_printf(b, "{\"interval_ms\":%d,\"t\":[", DASH_TICK_MS);
    for (size_t k = 0; k < h->n; k++)
        mr_buf_printf(b, "%s%lld", k ? "," : "", (long long)h->t_ms[(first + k) % DASH_HISTORY]);
    mr_buf_puts(b, "],\"series\":[");
    for (size_t i = 0; i < h->n_series; i++) {
        const struct dash_series *s = h->series[i];
        mr_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        mr_json_cstr(b, s->name);
        mr_buf_puts(b, ",\"values\":[");
        for (size_t k = 0; k < h->n; k++) {
            double v = s->v[(first + k) % DASH_HISTORY];
            if (k)
                mr_buf_putc(b, ',');
            if (isfinite(v))
                mr_buf_printf(b, "%.6g", v);
            else
                mr_buf_puts(b, "null");
        }
        mr_buf_puts(b, "]}");
    }
    mr_buf_puts(b, "]}");
}

/* ---- events ----------------------------------------------------------------- */

void dash_events_add(struct dash_events *e, int64_t at_ms, const char *kind, const char *subject,
                     const char *fmt, ...)
{
    struct dash_event *ev = &e->ev[e->n % DASH_MAX_EVENTS];
    va_list ap;

    ev->at_ms = at_ms;
    snprintf(ev->kind, sizeof(ev->kind), "%s", kind);
    snprintf(ev->subject, sizeof(ev->subject), "%s", subject ? subject : "");
    va_start(ap, fmt);
    vsnprintf(ev->text, sizeof(ev->text), fmt, ap);
    va_end(ap);
    e->n++;
}

void dash_events_json(const struct dash_events *e, struct mr_buf *b)
{
    uint64_t k = e->n > DASH_MAX_EVENTS ? e->n - DASH_MAX_EVENTS : 0;

    mr_buf_putc(b, '[');
    for (int first = 1; k < e->n; k++, first = 0) {
        const struct dash_event *ev = &e->ev[k % DASH_MAX_EVENTS];
        mr_buf_printf(b, "%s{\"at_ms\":%lld,\"kind\":", first ? "" : ",", (long long)ev->at_ms);
        mr_json_cstr(b, ev->kind);
        mr_buf_puts(b, ",\"subject\":");
        mr_json_cstr(b, ev->subject);
        mr_buf_puts(b, ",\"text\":");
        mr_json_cstr(b, ev->text);
        mr_buf_putc(b, '}');
    }
    mr_buf_putc(b, ']');
}

/* ---- event derivation ------------------------------------------------------- */

int dash_observe_region(struct dash_observer *o, struct dash_events *e, const char *region,
                        int reachable, int64_t now_ms)
{
    size_t i;

    reachable = reachable != 0;
    for (i = 0; i < o->n_regions; i++)
        if (strcmp(o->regions[i].region, region) == 0)
            break;
    if (i == o->n_regions) {
        if (i == DASH_MAX_REGIONS)
            return 0;
        snprintf(o->regions[i].region, sizeof(o->regions[i].region), "%s", region);
        o->regions[i].up = 1;   /* presumed up: only a first sighting down is news */
        o->n_regions++;
    }
    if (o->regions[i].up == reachable)
        return 0;
    o->regions[i].up = reachable;
    if (reachable)
        dash_events_add(e, now_ms, "region_back", region, "region %s is reachable again", region);
    else
        dash_events_add(e, now_ms, "region_down", region, "region %s is unreachable", region);
    return 1;
}

int dash_observe_leader(struct dash_observer *o, struct dash_events *e, const char *leader,
                        int64_t now_ms)
{
    if (leader == NULL || leader[0] == '\0' || strcmp(o->leader, leader) == 0)
        return 0;
    if (o->leader[0] == '\0')
        dash_events_add(e, now_ms, "leader", leader, "etcd leader is in %s", leader);
    else
        dash_events_add(e, now_ms, "leader_moved", leader, "etcd leader moved from %s to %s",
                        o->leader, leader);
    snprintf(o->leader, sizeof(o->leader), "%s", leader);
    return 1;
}

int dash_observe_edge_transition(struct dash_observer *o, struct dash_events *e, const char *edge,
                                 const char *region, int64_t at_ms, const char *from,
                                 const char *to, const char *reason)
{
    char key[sizeof(o->edge_seen[0].key)];
    size_t i;

    snprintf(key, sizeof(key), "%s/%s", edge, region);
    for (i = 0; i < o->n_edge_seen; i++)
        if (strcmp(o->edge_seen[i].key, key) == 0)
            break;
    if (i == o->n_edge_seen) {
        if (i == sizeof(o->edge_seen) / sizeof(o->edge_seen[0]))
            return 0;
        snprintf(o->edge_seen[i].key, sizeof(o->edge_seen[i].key), "%s", key);
        o->edge_seen[i].last_at_ms = INT64_MIN;
        o->n_edge_seen++;
    }
    if (at_ms <= o->edge_seen[i].last_at_ms)
        return 0;
    o->edge_seen[i].last_at_ms = at_ms;
    /* Only a region that was serving can be rerouted away from: at start
     * an edge moves every region from unknown to a first state. */
    if (strcmp(from, "healthy") == 0 && strcmp(to, "unhealthy") == 0)
        dash_events_add(e, at_ms, "rerouted", region, "edge %s reroutes away from %s (%s)", edge,
                        region, reason);
    else if (strcmp(from, "unhealthy") == 0 && strcmp(to, "healthy") == 0)
        dash_events_add(e, at_ms, "edge_region_back", region, "edge %s routes to %s again", edge,
                        region);
    else
        dash_events_add(e, at_ms, "edge_region", region, "edge %s: %s %s -> %s", edge, region, from,
                        to);
    return 1;
}

/* ---- config ----------------------------------------------------------------- */

int dash_parse_edges(const char *s, char (*names)[DASH_NAME_MAX], char (*urls)[DASH_URL_MAX],
                     size_t max, size_t *n_out, char *err)
{
    const char *p = s;

    *n_out = 0;
    if (strcmp(s, "none") == 0 || s[0] == '\0')
        return 0;
    while (*p) {
        size_t len = strcspn(p, ","), nlen;
        const char *eq = memchr(p, '=', len);
        char *host = NULL, *path = NULL, url[DASH_URL_MAX], perr[MR_ERRMSG_LEN];
        int port, rc;

        if (eq == NULL || eq == p)
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: expected name=http://host:port, "
                             "found '%.*s'", (int)(len > 80 ? 80 : len), p);
        nlen = (size_t)(eq - p);
        if (nlen >= DASH_NAME_MAX)
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: name '%.*s' is over %d bytes",
                             (int)(nlen > 80 ? 80 : nlen), p, DASH_NAME_MAX - 1);
        for (size_t i = 0; i < nlen; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: name '%.*s': only "
                                 "A-Z a-z 0-9 . _ - are allowed", (int)nlen, p);
        }
        if (len - nlen - 1 >= DASH_URL_MAX)
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: URL of '%.*s' is too long",
                             (int)nlen, p);
        snprintf(url, sizeof(url), "%.*s", (int)(len - nlen - 1), eq + 1);
        rc = http_parse_url(url, &host, &port, &path, perr);
        mr_free(host);
        mr_free(path);
        if (rc != 0)
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: '%.*s': %s", (int)nlen, p, perr);
        if (*n_out == max)
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: more than %zu edges", max);
        snprintf(names[*n_out], DASH_NAME_MAX, "%.*s", (int)nlen, p);
        snprintf(urls[*n_out], DASH_URL_MAX, "%s", url);
        (*n_out)++;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

void dash_html_escape(struct mr_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': mr_buf_puts(b, "&amp;"); break;
        case '<': mr_buf_puts(b, "&lt;"); break;
        case '>': mr_buf_puts(b, "&gt;"); break;
        case '"': mr_buf_puts(b, "&quot;"); break;
        case '\'': mr_buf_puts(b, "&#39;"); break;
        default: mr_buf_putc(b, *s);
        }
    }
}

/* ---- the node's side ----------------------------------------------------------- */

/* One HTTP source polled every tick. */
struct dash_target {
    struct dashboard *d;
    char name[DASH_NAME_MAX];       /* region or edge name; "wan" */
    char host[128];
    int port;
    char url[DASH_URL_MAX];
    int https;                      /* polled through dashboard.https */
    struct http_call *call;         /* status (or links) call in flight */
    struct http_call *call2;        /* edges: /metrics call in flight */
    json_t *doc;                    /* last good answer; NULL: none yet */
    int64_t ok_ms;                  /* when it came */
    int reachable;                  /* the last call answered 200 */
    int seen;                       /* a call has finished at least once */
    char error[128];
    /* Request rate from two successive counts. */
    uint64_t prev_requests, prev_errors;
    int64_t prev_ms;
    double rps, error_pct;
    int has_rate;
};

struct dashboard {
    struct node *n;
    struct http_client *http;       /* plain targets */
    struct http_client *https;      /* https:// targets; NULL without [tls] */
    uv_timer_t timer;
    int running;
    struct dash_history hist;
    struct dash_events events;
    struct dash_observer obs;
    struct dash_target *peers[DASH_MAX_REGIONS];
    size_t n_peers;
    struct dash_target *edges[DASH_MAX_EDGES];
    size_t n_edges;
    struct dash_target *wan;        /* NULL: no [dashboard] wan */
    /* Own request counts at the previous tick. */
    uint64_t prev_requests, prev_errors;
    int64_t prev_ms;
    double rps, error_pct;
    char leader[DASH_NAME_MAX];
};

static struct dash_target *target_new(struct dashboard *d, const char *name, const char *url)
{
    struct dash_target *t = mr_calloc(1, sizeof(*t));
    char *host = NULL, *path = NULL, err[MR_ERRMSG_LEN];

    t->d = d;
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->url, sizeof(t->url), "%s", url);
    t->https = http_url_is_https(url);
    if (http_parse_url(url, &host, &t->port, &path, err) == 0)
        snprintf(t->host, sizeof(t->host), "%s", host);
    else
        snprintf(t->error, sizeof(t->error), "%.127s", err);
    mr_free(host);
    mr_free(path);
    return t;
}

static void target_free(struct dash_target *t)
{
    if (t == NULL)
        return;
    json_decref(t->doc);
    mr_free(t);
}

/* Own counts: requests a client made (monitoring and replication between
 * nodes excluded, so that dashboards polling do not show up as load), and
 * those answered 5xx. */
static void count_requests(const struct node *n, uint64_t *requests, uint64_t *errors)
{
    *requests = *errors = 0;
    for (int r = 0; r < ROUTE_COUNT; r++) {
        if (r == ROUTE_STATUS || r == ROUTE_HEALTHZ || r == ROUTE_READYZ || r == ROUTE_METRICS ||
            r == ROUTE_DASHBOARD || r == ROUTE_TABLE_REPLICATE)
            continue;
        for (int c = 1; c <= 5; c++)
            *requests += n->stats.requests[r][c];
        *errors += n->stats.requests[r][5];
    }
}

void node__client_counts(const struct node *n, uint64_t *requests, uint64_t *errors)
{
    count_requests(n, requests, errors);
}

/* Rate from counts <req>/<err> at <now>, against the target's previous. */
static void rate_update(uint64_t req, uint64_t err, int64_t now, uint64_t *prev_req,
                        uint64_t *prev_err, int64_t *prev_ms, double *rps, double *error_pct,
                        int *has_rate)
{
    if (*prev_ms > 0 && now > *prev_ms && req >= *prev_req && err >= *prev_err) {
        uint64_t dr = req - *prev_req, de = err - *prev_err;
        *rps = (double)dr * 1000.0 / (double)(now - *prev_ms);
        *error_pct = dr ? 100.0 * (double)de / (double)dr : 0;
        *has_rate = 1;
    } else {
        *has_rate = 0;   /* first count, or a restart reset the counters */
    }
    *prev_req = req;
    *prev_err = err;
    *prev_ms = now;
}

static void call_failed(struct dash_target *t, int rc, const struct http_response *resp)
{
    t->reachable = 0;
    t->seen = 1;
    if (rc != 0)
        snprintf(t->error, sizeof(t->error), "%s", mr_strerror(rc));
    else
        snprintf(t->error, sizeof(t->error), "HTTP %d", resp->status);
}

/* The end of a poll of <t>: its JSON answer becomes t->doc (returned,
 * borrowed), or the target is marked unreachable and NULL returned (also
 * when the dashboard stopped meanwhile). */
static json_t *target_answer(struct dash_target *t, int rc, const struct http_response *resp,
                             int64_t now)
{
    json_t *doc = NULL;

    t->call = NULL;
    if (!t->d->running)
        return NULL;
    if (rc == 0 && resp->status == 200)
        doc = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    if (doc == NULL) {
        call_failed(t, rc, resp);
        if (rc == 0 && resp->status == 200)
            snprintf(t->error, sizeof(t->error), "answer is not JSON");
        return NULL;
    }
    json_decref(t->doc);
    t->doc = doc;
    t->ok_ms = now;
    t->reachable = 1;
    t->seen = 1;
    t->error[0] = '\0';
    return doc;
}

static void on_peer_status(struct http_call *call, int rc, const struct http_response *resp,
                           void *data)
{
    struct dash_target *t = data;
    json_t *doc, *http;
    int64_t now = mr_now_ms();

    (void)call;
    doc = target_answer(t, rc, resp, now);
    if (doc == NULL)
        return;
    http = json_object_get(doc, "http");
    if (json_is_object(http))
        rate_update((uint64_t)json_integer_value(json_object_get(http, "requests")),
                    (uint64_t)json_integer_value(json_object_get(http, "errors")), now,
                    &t->prev_requests, &t->prev_errors, &t->prev_ms, &t->rps, &t->error_pct,
                    &t->has_rate);
}

static void on_wan_links(struct http_call *call, int rc, const struct http_response *resp,
                         void *data)
{
    (void)call;
    (void)target_answer(data, rc, resp, mr_now_ms());
}

static void on_edge_status(struct http_call *call, int rc, const struct http_response *resp,
                           void *data)
{
    struct dash_target *t = data;
    struct dashboard *d = t->d;
    json_t *doc, *g, *tr;
    size_t i, k;

    (void)call;
    doc = target_answer(t, rc, resp, mr_now_ms());
    if (doc == NULL)
        return;
    json_array_foreach(json_object_get(doc, "regions"), i, g) {
        const char *region = json_string_value(json_object_get(g, "name"));
        if (region == NULL)
            continue;
        json_array_foreach(json_object_get(g, "transitions"), k, tr) {
            const char *from = json_string_value(json_object_get(tr, "from"));
            const char *to = json_string_value(json_object_get(tr, "to"));
            const char *why = json_string_value(json_object_get(tr, "reason"));
            if (from && to)
                dash_observe_edge_transition(&d->obs, &d->events, t->name, region,
                                             json_integer_value(json_object_get(tr, "at_ms")),
                                             from, to, why ? why : "");
        }
    }
}

/* The value of the Prometheus sample "<name> <value>" (exact name and
 * labels as written); 0 when absent. */
static uint64_t prom_value(const char *text, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl + 1 && memcmp(p, name, nl) == 0 && p[nl] == ' ')
            return strtoull(p + nl + 1, NULL, 10);
        p = eol + 1;
    }
    return 0;
}

static void on_edge_metrics(struct http_call *call, int rc, const struct http_response *resp,
                            void *data)
{
    struct dash_target *t = data;

    (void)call;
    t->call2 = NULL;
    if (!t->d->running || rc != 0 || resp->status != 200 || resp->body == NULL)
        return;
    rate_update(prom_value(resp->body, resp->body_len, "meridian_edge_requests_total"),
                prom_value(resp->body, resp->body_len, "meridian_edge_responses_total{code=\"5xx\"}"),
                mr_now_ms(), &t->prev_requests, &t->prev_errors, &t->prev_ms, &t->rps,
                &t->error_pct, &t->has_rate);
}

static void start_call(struct dashboard *d, struct dash_target *t, const char *path,
                       int peer_token, http_response_cb cb, struct http_call **slot)
{
    struct http_client_request req = {0};
    struct http_client *c = t->https ? d->https : d->http;

    if (*slot != NULL || t->host[0] == '\0')
        return;   /* the previous one has not come back: never pile up */
    if (c == NULL) {
        /* https:// without [tls]: refused at start for the configured
         * targets; a peer could still publish such a URL in etcd. */
        snprintf(t->error, sizeof(t->error), "https:// needs [tls] on this node");
        t->reachable = 0;
        t->seen = 1;
        return;
    }
    req.method = "GET";
    req.host = t->host;
    req.port = t->port;
    req.path = path;
    req.timeout_ms = DASH_FETCH_TIMEOUT_MS;
    /* The wan's GET /links wants a read token once it has tokens: the
     * node's own peer token (meridian up gives it the read scope there,
     * docs/security.md).  The other nodes' /v1/status wants read or peer
     * once they check tokens (with [tls] the node's certificate already
     * suffices).  Edges get none: they are not ours to trust with it. */
    if (peer_token && d->n->peer_headers[0])
        req.headers = d->n->peer_headers;
    if (http_client_request(c, &req, cb, t, slot) != 0)
        *slot = NULL;
}

/* Add the tables' peers that are new (the list grows as etcd lists them). */
static void sync_peers(struct dashboard *d)
{
    struct tables *tb = d->n->tables;

    if (tb == NULL)
        return;
    for (size_t i = 0; i < tb->n_peers; i++) {
        struct tables_peer *p = tb->peers[i];
        struct dash_target *t = NULL;
        size_t k;
        for (k = 0; k < d->n_peers; k++)
            if (strcmp(d->peers[k]->name, p->region) == 0)
                t = d->peers[k];
        if (t == NULL) {
            if (d->n_peers == DASH_MAX_REGIONS || p->url[0] == '\0')
                continue;
            t = target_new(d, p->region, p->url);
            d->peers[d->n_peers++] = t;
        } else if (strcmp(t->url, p->url) != 0 && p->url[0]) {
            /* A new address (a region that moved): take it. */
            snprintf(t->url, sizeof(t->url), "%s", p->url);
            t->https = http_url_is_https(p->url);
            snprintf(t->host, sizeof(t->host), "%s", p->host);
            t->port = p->port;
        }
    }
}

static int peer_fresh(const struct dash_target *t, int64_t now)
{
    return t->reachable && t->doc && now - t->ok_ms < 3 * DASH_TICK_MS;
}

/* The region holding the etcd leader, as the statuses say ("" unknown). */
static const char *find_leader(struct dashboard *d, int64_t now)
{
    if (d->n->local_is_leader)
        return d->n->cfg->region;
    for (size_t i = 0; i < d->n_peers; i++) {
        json_t *etcd = json_object_get(d->peers[i]->doc, "etcd");
        if (peer_fresh(d->peers[i], now) &&
            json_is_true(json_object_get(etcd, "local_member_is_leader")))
            return d->peers[i]->name;
    }
    return "";
}

static void series_set(struct dashboard *d, const char *group, const char *label, double v)
{
    char name[DASH_SERIES_NAME];

    snprintf(name, sizeof(name), "%s:%s", group, label);
    (void)dash_history_set(&d->hist, name, v);
}

static void pair_set(struct dashboard *d, const char *group, const char *from, const char *to,
                     double v)
{
    char label[2 * DASH_NAME_MAX + 2];

    snprintf(label, sizeof(label), "%s>%s", from, to);
    series_set(d, group, label, v);
}

/* Lags a region's /v1/status reports: SQL from every origin to it, and
 * global tables from it to every peer. */
static void sample_status(struct dashboard *d, const char *region, json_t *st)
{
    const char *origin;
    json_t *v, *p;
    size_t i;

    json_object_foreach(json_object_get(st, "replication"), origin, v) {
        if (json_integer_value(json_object_get(v, "batches")) > 0 && strcmp(origin, region) != 0)
            pair_set(d, "sql_lag_ms", origin, region,
                     (double)json_integer_value(json_object_get(v, "last_ms")));
    }
    json_array_foreach(json_object_get(json_object_get(st, "tables"), "peers"), i, p) {
        const char *to = json_string_value(json_object_get(p, "region"));
        if (to && json_number_value(json_object_get(p, "lag_p50_ms")) > 0)
            pair_set(d, "tables_lag_ms", region, to,
                     (double)json_integer_value(json_object_get(p, "last_lag_ms")));
    }
}

static void sample_self(struct dashboard *d, int64_t now)
{
    struct node *n = d->n;
    struct node_stats *s = &n->stats;
    const char *me = n->cfg->region;
    uint64_t req, err;
    int has = 0;

    count_requests(n, &req, &err);
    rate_update(req, err, now, &d->prev_requests, &d->prev_errors, &d->prev_ms, &d->rps,
                &d->error_pct, &has);
    if (has) {
        series_set(d, "region_rps", me, d->rps);
        series_set(d, "region_error_pct", me, d->error_pct);
    }
    for (size_t i = 0; i < s->n_origins; i++)
        if (s->by_origin[i].lag.count > 0 && strcmp(s->by_origin[i].origin, me) != 0)
            pair_set(d, "sql_lag_ms", s->by_origin[i].origin, me, (double)s->by_origin[i].last_ms);
    if (n->tables)
        for (size_t i = 0; i < n->tables->n_peers; i++) {
            struct tables_peer *p = n->tables->peers[i];
            if (p->lag.count > 0)
                pair_set(d, "tables_lag_ms", me, p->region, (double)p->last_lag_ms);
        }
}

static void on_tick(uv_timer_t *timer)
{
    struct dashboard *d = timer->data;
    int64_t now = mr_now_ms();

    if (!d->running || d->n->stopping)
        return;
    dash_history_tick(&d->hist, now);
    sample_self(d, now);
    sync_peers(d);
    for (size_t i = 0; i < d->n_peers; i++) {
        struct dash_target *t = d->peers[i];
        if (peer_fresh(t, now)) {
            sample_status(d, t->name, t->doc);
            if (t->has_rate) {
                series_set(d, "region_rps", t->name, t->rps);
                series_set(d, "region_error_pct", t->name, t->error_pct);
            }
        }
        if (t->seen)
            dash_observe_region(&d->obs, &d->events, t->name, peer_fresh(t, now), now);
    }
    for (size_t i = 0; i < d->n_edges; i++) {
        struct dash_target *t = d->edges[i];
        if (t->has_rate && t->reachable) {
            series_set(d, "edge_rps", t->name, t->rps);
            series_set(d, "edge_error_pct", t->name, t->error_pct);
        }
    }
    snprintf(d->leader, sizeof(d->leader), "%s", find_leader(d, now));
    dash_observe_leader(&d->obs, &d->events, d->leader, now);

    /* The next round: answers arrive before the next tick samples them. */
    for (size_t i = 0; i < d->n_peers; i++)
        start_call(d, d->peers[i], "/v1/status", 1, on_peer_status, &d->peers[i]->call);
    for (size_t i = 0; i < d->n_edges; i++) {
        start_call(d, d->edges[i], "/v1/status", 0, on_edge_status, &d->edges[i]->call);
        start_call(d, d->edges[i], "/metrics", 0, on_edge_metrics, &d->edges[i]->call2);
    }
    if (d->wan)
        start_call(d, d->wan, "/links", 1, on_wan_links, &d->wan->call);
}

void node__dashboard_start(struct node *n)
{
    struct dashboard *d = mr_calloc(1, sizeof(*d));
    struct http_client_opts o;
    char names[DASH_MAX_EDGES][DASH_NAME_MAX], urls[DASH_MAX_EDGES][DASH_URL_MAX];
    char err[MR_ERRMSG_LEN];
    size_t ne = 0;

    d->n = n;
    n->dash = d;
    dash_history_init(&d->hist);
    http_client_opts_default(&o);
    o.max_idle_per_host = 2;
    o.max_response_bytes = 4 << 20;
    if (http_client_new(n->loop, &o, &d->http) != 0) {
        mr_log(MR_LOG_WARN, "dashboard", "cannot create the HTTP client: the dashboard shows "
               "this region only");
        d->http = NULL;
    }
    o.tls = n->tls_client;   /* the peer token goes per call (start_call), not to edges */
    if (d->http != NULL && o.tls != NULL && http_client_new(n->loop, &o, &d->https) != 0) {
        mr_log(MR_LOG_WARN, "dashboard", "cannot create the HTTPS client: the dashboard shows "
               "this region only");
        http_client_free(d->http);
        d->http = d->https = NULL;
    }
    /* The config was checked at start (node__dashboard_check_config). */
    if (dash_parse_edges(n->cfg->dashboard_edges, names, urls, DASH_MAX_EDGES, &ne, err) == 0)
        for (size_t i = 0; i < ne; i++)
            d->edges[d->n_edges++] = target_new(d, names[i], urls[i]);
    if (strcmp(n->cfg->dashboard_wan, "none") != 0 && n->cfg->dashboard_wan[0])
        d->wan = target_new(d, "wan", n->cfg->dashboard_wan);
    if (d->http == NULL)
        return;
    d->running = 1;
    uv_timer_init(n->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_tick, 0, DASH_TICK_MS);
}

int node__dashboard_check_config(const struct node_cfg *cfg, char *err)
{
    char names[DASH_MAX_EDGES][DASH_NAME_MAX], urls[DASH_MAX_EDGES][DASH_URL_MAX];
    char *host = NULL, *path = NULL;
    size_t ne;
    int port, rc;

    rc = dash_parse_edges(cfg->dashboard_edges, names, urls, DASH_MAX_EDGES, &ne, err);
    if (rc != 0 || strcmp(cfg->dashboard_wan, "none") == 0)
        return rc;
    rc = http_parse_url(cfg->dashboard_wan, &host, &port, &path, err);
    mr_free(host);
    mr_free(path);
    return rc != 0 ? mr_wraperr(err, MR_ECONFIG, "[dashboard] wan") : 0;
}

void node__dashboard_close(struct node *n)
{
    struct dashboard *d = n->dash;

    if (d == NULL || !d->running)
        return;
    d->running = 0;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, NULL);
    /* Calls in flight end with MR_ECLOSED and see <running> at 0. */
    http_client_free(d->http);
    d->http = NULL;
    if (d->https)
        http_client_free(d->https);
    d->https = NULL;
}

void node__dashboard_free(struct node *n)
{
    struct dashboard *d = n->dash;

    if (d == NULL)
        return;
    if (d->http)
        http_client_free(d->http);   /* never started its timer */
    if (d->https)
        http_client_free(d->https);
    for (size_t i = 0; i < d->n_peers; i++)
        target_free(d->peers[i]);
    for (size_t i = 0; i < d->n_edges; i++)
        target_free(d->edges[i]);
    target_free(d->wan);
    dash_history_close(&d->hist);
    mr_free(d);
    n->dash = NULL;
}

/* ---- GET /v1/dashboard ------------------------------------------------------------ */

static void json_str_or_null(struct mr_buf *b, const char *s)
{
    if (s)
        mr_json_cstr(b, s);
    else
        mr_buf_puts(b, "null");
}

static void rate_json(struct mr_buf *b, int has, double rps, double error_pct)
{
    mr_buf_puts(b, ",\"rps\":");
    if (has)
        mr_json_double(b, rps);
    else
        mr_buf_puts(b, "null");
    mr_buf_puts(b, ",\"error_pct\":");
    if (has)
        mr_json_double(b, error_pct);
    else
        mr_buf_puts(b, "null");
}

/* etcd role of a region whose status we hold: leader, follower, or
 * unreachable (its own member has no leader or does not answer). */
static const char *role_of(json_t *etcd)
{
    json_t *m0 = json_array_get(json_object_get(etcd, "members"), 0);

    if (json_is_true(json_object_get(etcd, "local_member_is_leader")))
        return "leader";
    if (m0 && json_is_true(json_object_get(m0, "reachable")))
        return "follower";
    return "unreachable";
}

static void region_json(struct dashboard *d, struct mr_buf *b, const char *name, int self,
                        int reachable, json_t *st, const char *url, const char *error,
                        int64_t seen_ms, int has_rate, double rps, double error_pct)
{
    json_t *lag = json_object_get(st, "lag"), *applied = json_object_get(st, "applied");

    mr_buf_puts(b, "{\"name\":");
    mr_json_cstr(b, name);
    mr_buf_printf(b, ",\"self\":%s,\"reachable\":%s,\"ready\":", self ? "true" : "false",
                  reachable ? "true" : "false");
    if (reachable && st)
        mr_buf_puts(b, json_is_true(json_object_get(st, "ready")) ? "true" : "false");
    else
        mr_buf_puts(b, "null");
    mr_buf_puts(b, ",\"not_ready_reason\":");
    json_str_or_null(b, reachable ? json_string_value(json_object_get(st, "not_ready_reason")) : NULL);
    mr_buf_puts(b, ",\"etcd_role\":");
    mr_json_cstr(b, reachable && st ? role_of(json_object_get(st, "etcd")) : "unreachable");
    mr_buf_printf(b, ",\"leader\":%s", d->leader[0] && strcmp(d->leader, name) == 0 ? "true" : "false");
    mr_buf_puts(b, ",\"url\":");
    json_str_or_null(b, url);
    mr_buf_puts(b, ",\"error\":");
    json_str_or_null(b, reachable ? NULL : error);
    mr_buf_printf(b, ",\"last_seen_ms\":%lld,\"applied_rev\":%lld,\"entries_behind\":%lld,"
                  "\"staleness_ms\":%lld", (long long)seen_ms,
                  (long long)json_integer_value(json_object_get(applied, "rev")),
                  (long long)json_integer_value(json_object_get(lag, "entries")),
                  (long long)json_integer_value(json_object_get(lag, "staleness_ms")));
    rate_json(b, has_rate && reachable, rps, error_pct);
    mr_buf_putc(b, '}');
}

/* Our own /v1/status as a document, so that self and peers read alike. */
static json_t *self_status(struct node *n)
{
    char why[MR_ERRMSG_LEN] = "";
    int ready = node__ready(n, why, sizeof(why));
    json_t *st = json_object(), *etcd = json_object(), *members = json_array(), *m0 = json_object();
    json_t *lag = json_object(), *applied = json_object();

    json_object_set_new(st, "ready", json_boolean(ready));
    json_object_set_new(st, "not_ready_reason", ready ? json_null() : json_string(why));
    json_object_set_new(m0, "reachable", json_boolean(n->members[0].reachable));
    json_array_append_new(members, m0);
    json_object_set_new(etcd, "members", members);
    json_object_set_new(etcd, "local_member_is_leader", json_boolean(n->local_is_leader));
    json_object_set_new(st, "etcd", etcd);
    json_object_set_new(lag, "entries", json_integer(node__entries_behind(n)));
    json_object_set_new(lag, "staleness_ms", json_integer(node__staleness_ms(n)));
    json_object_set_new(st, "lag", lag);
    json_object_set_new(applied, "rev", json_integer(n->pos.rev));
    json_object_set_new(st, "applied", applied);
    return st;
}

static void wan_json(struct dashboard *d, struct mr_buf *b)
{
    struct dash_target *w = d->wan;
    json_t *l;
    size_t i;

    if (w == NULL) {
        mr_buf_puts(b, ",\"wan\":null,\"links\":[]");
        return;
    }
    mr_buf_puts(b, ",\"wan\":{\"url\":");
    mr_json_cstr(b, w->url);
    mr_buf_printf(b, ",\"reachable\":%s,\"error\":", w->reachable ? "true" : "false");
    json_str_or_null(b, w->reachable || !w->seen ? NULL : w->error);
    mr_buf_puts(b, "},\"links\":[");
    /* The last answer, even when stale: the page says whether it is. */
    json_array_foreach(json_object_get(w->doc, "links"), i, l) {
        json_t *bytes = json_object_get(l, "bytes");
        mr_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        json_str_or_null(b, json_string_value(json_object_get(l, "name")));
        mr_buf_puts(b, ",\"from\":");
        json_str_or_null(b, json_string_value(json_object_get(l, "from")));
        mr_buf_puts(b, ",\"to\":");
        json_str_or_null(b, json_string_value(json_object_get(l, "to")));
        mr_buf_puts(b, ",\"latency_ms\":");
        mr_json_double(b, json_number_value(json_object_get(l, "latency_ms")));
        mr_buf_puts(b, ",\"jitter_ms\":");
        mr_json_double(b, json_number_value(json_object_get(l, "jitter_ms")));
        mr_buf_printf(b, ",\"bandwidth_kbps\":%lld,\"state\":",
                      (long long)json_integer_value(json_object_get(l, "bandwidth_kbps")));
        json_str_or_null(b, json_string_value(json_object_get(l, "state")));
        mr_buf_printf(b, ",\"cut\":%s,\"connections_open\":%lld,\"bytes_forward\":%lld,"
                      "\"bytes_reply\":%lld}",
                      json_is_true(json_object_get(l, "cut")) ? "true" : "false",
                      (long long)json_integer_value(json_object_get(l, "connections_open")),
                      (long long)json_integer_value(json_object_get(bytes, "forward")),
                      (long long)json_integer_value(json_object_get(bytes, "reply")));
    }
    mr_buf_putc(b, ']');
}

static void edges_json(struct dashboard *d, struct mr_buf *b)
{
    mr_buf_puts(b, ",\"edges\":[");
    for (size_t i = 0; i < d->n_edges; i++) {
        struct dash_target *t = d->edges[i];
        json_t *g;
        size_t k;
        mr_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        mr_json_cstr(b, t->name);
        mr_buf_puts(b, ",\"url\":");
        mr_json_cstr(b, t->url);
        mr_buf_printf(b, ",\"reachable\":%s,\"error\":", t->reachable ? "true" : "false");
        json_str_or_null(b, t->reachable || !t->seen ? NULL : t->error);
        mr_buf_puts(b, ",\"state\":");
        json_str_or_null(b, t->reachable ? json_string_value(json_object_get(t->doc, "state")) : NULL);
        /* Where its users go now: the first healthy region in its order. */
        mr_buf_puts(b, ",\"routes_to\":");
        {
            const char *to = NULL;
            json_t *o;
            size_t j;
            json_array_foreach(json_object_get(t->doc, "order"), j, o) {
                json_array_foreach(json_object_get(t->doc, "regions"), k, g) {
                    if (json_equal(json_object_get(g, "name"), o) &&
                        strcmp(json_string_value(json_object_get(g, "state")) ?: "", "healthy") == 0 &&
                        to == NULL)
                        to = json_string_value(o);
                }
            }
            json_str_or_null(b, t->reachable ? to : NULL);
        }
        mr_buf_puts(b, ",\"regions\":[");
        json_array_foreach(json_object_get(t->doc, "regions"), k, g) {
            json_t *rtt = json_object_get(g, "rtt_ms");
            mr_buf_puts(b, k ? ",{\"name\":" : "{\"name\":");
            json_str_or_null(b, json_string_value(json_object_get(g, "name")));
            mr_buf_puts(b, ",\"state\":");
            json_str_or_null(b, json_string_value(json_object_get(g, "state")));
            mr_buf_puts(b, ",\"rtt_ms\":");
            if (json_is_number(rtt))
                mr_json_double(b, json_number_value(rtt));
            else
                mr_buf_puts(b, "null");
            mr_buf_printf(b, ",\"in_flight\":%lld}",
                          (long long)json_integer_value(json_object_get(g, "in_flight")));
        }
        mr_buf_putc(b, ']');
        rate_json(b, t->has_rate && t->reachable, t->rps, t->error_pct);
        mr_buf_putc(b, '}');
    }
    mr_buf_putc(b, ']');
}

static void dashboard_json(struct dashboard *d, struct mr_buf *b)
{
    struct node *n = d->n;
    int64_t now = mr_now_ms();
    json_t *self = self_status(n);

    mr_buf_puts(b, "{\"region\":");
    mr_json_cstr(b, n->cfg->region);
    mr_buf_puts(b, ",\"cluster\":");
    mr_json_cstr(b, n->cfg->cluster);
    mr_buf_printf(b, ",\"now_ms\":%lld,\"etcd_leader\":", (long long)now);
    json_str_or_null(b, d->leader[0] ? d->leader : NULL);
    mr_buf_puts(b, ",\"regions\":[");
    region_json(d, b, n->cfg->region, 1, 1, self, n->advertise_url, NULL, now, d->prev_ms > 0,
                d->rps, d->error_pct);
    for (size_t i = 0; i < d->n_peers; i++) {
        struct dash_target *t = d->peers[i];
        int up = peer_fresh(t, now);
        mr_buf_putc(b, ',');
        region_json(d, b, t->name, 0, up, t->doc, t->url,
                    t->seen ? t->error : "no answer yet", t->ok_ms, t->has_rate, t->rps,
                    t->error_pct);
    }
    mr_buf_putc(b, ']');
    json_decref(self);
    wan_json(d, b);
    edges_json(d, b);
    mr_buf_puts(b, ",\"history\":");
    dash_history_json(&d->hist, b);
    mr_buf_puts(b, ",\"events\":");
    dash_events_json(&d->events, b);
    mr_buf_putc(b, '}');
}

void node__dashboard_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                           int page)
{
    int64_t start = hr->received_us;
    struct mr_buf b;

    mr_buf_init(&b);
    if (page) {
        /* Nothing but this page and its own origin: the policy forbids any
         * other fetch, so nothing can come from the internet. */
        n->stats.requests[ROUTE_DASHBOARD][2]++;
        mr_hist_observe(&n->stats.latency[ROUTE_DASHBOARD], (double)(mr_mono_us() - start) / 1e6);
        http_respond(ex, 200, "text/html; charset=utf-8", dash_page_html, strlen(dash_page_html),
                     "Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; "
                     "script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                     "img-src 'self'\r\nX-Content-Type-Options: nosniff\r\n");
    } else if (n->dash == NULL) {
        node__respond_error(n, ex, ROUTE_DASHBOARD, start, 503, "unavailable",
                            "the dashboard is not running", NULL);
    } else {
        dashboard_json(n->dash, &b);
        node__respond_json(n, ex, ROUTE_DASHBOARD, start, 200, &b, "Cache-Control: no-store\r\n");
    }
    mr_buf_close(&b);
}
