/* run.c -- a game day: open-loop shopping traffic from every client site
 * through its edge, faults on a timeline, then verification (gameday.h).
 *
 * One libuv loop carries the traffic.  Fault actions block (a kill returns
 * once the processes are gone, a restart once the region is ready again),
 * so they run on libuv's thread pool, one at a time, and the traffic never
 * waits for them.  Every request becomes a sample; shoppers remember what
 * they were told (acknowledged orders, cart adds, tokens) and check their
 * own reads: that history and the regions' final state go to gd_check.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "../bench/topo.h"
#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../http/http.h"
#include "../up/up.h"
#include "gameday_int.h"

#define TICK_MS 5
#define REQUEST_TIMEOUT_MS 10000
#define MAX_IN_FLIGHT_PER_SITE 4000
#define CATCH_UP_LIMIT_MS 120000
#define SID_MAX 96
#define TOKEN_MAX 1024
#define REF_MAX 32

struct shopper {
    char sid[SID_MAX];
    char token[TOKEN_MAX];
    int busy;
    json_t *adds;                 /* skus added (acknowledged) since the last order */
    uint64_t gen, counted_gen;    /* cart generation; the last one counted as an attempt */
    char pending_ref[REF_MAX];    /* acknowledged order not yet seen in /api/orders */
    int64_t pending_t_ms;
    char last_ref[REF_MAX];
};

struct site_rt {
    struct gd_run *run;
    size_t idx;
    char host[64];
    int port;
    struct shopper *shoppers;
    uint64_t sent;
    size_t in_flight;
};

struct call {
    struct site_rt *site;
    struct shopper *sh;           /* NULL for anonymous browsing */
    enum gd_action action;
    int64_t t_ms, start_us;
    int measured;
    char sku[64];
    struct mr_buf body;
};

struct event {                    /* a fault application or its healing */
    int64_t at_ms;
    const struct gd_fault *fault;
    int round;
    int heal;
};

struct job {                      /* a fault action on the thread pool */
    uv_work_t w;
    struct gd_run *run;
    struct event ev;
    struct gd_applied *a;
};

struct gd_run {
    const struct gd_scenario *s;
    const struct gd_options *opt;
    struct gd_outcome *o;
    uv_loop_t loop;
    uv_timer_t tick;
    struct http_client *client;
    struct site_rt sites[GD_MAX_SITES];
    char node_urls[GD_MAX_REGIONS][128];
    char auth[MR_AUTH_HEADER_MAX];    /* topology.json "auth": for the nodes, the wan and the shops */
    /* Each shop's own URL (regions[].shops[].instance_url); "" ends a list */
    char shop_urls[GD_MAX_REGIONS][UP_MAX_SHOPS][128];
    char wan_url[128];
    char rundir[1024];
    json_t *skus;                 /* the catalog's skus */
    int64_t orders_before;        /* highest order id before the game day */
    json_t *acked_orders, *attempts, *ryw;
    int64_t start_us;             /* start of the traffic (warm-up included) */
    int64_t measure_us;           /* start of the measured part */
    size_t cap_samples;
    struct event events[GD_MAX_FAULTS * 8];
    size_t n_events, next_event;
    int job_busy;
    int stopping;
    size_t in_flight;
    uint64_t errors_total, requests_total, last_progress_s;
};

/* ---- small helpers ---- */

static int64_t since_measure_ms(const struct gd_run *r)
{
    return (mr_mono_us() - r->measure_us) / 1000;
}

static double rand01(void)
{
    return (double)(mr_random64() >> 11) / 9007199254740992.0;
}

static int region_index(const struct gd_outcome *o, const char *name)
{
    for (size_t i = 0; name && i < o->n_regions; i++)
        if (strcmp(o->regions[i], name) == 0)
            return (int)i;
    return -1;
}

static void record(struct gd_run *r, struct call *c, int status, int ok, const char *region)
{
    struct gd_outcome *o = r->o;
    struct gd_sample *sm;

    r->requests_total++;
    r->errors_total += !ok;
    if (!c->measured)
        return;
    if (o->n_samples == r->cap_samples) {
        r->cap_samples = r->cap_samples ? r->cap_samples * 2 : 16384;
        o->samples = mr_realloc(o->samples, r->cap_samples * sizeof(*o->samples));
    }
    sm = &o->samples[o->n_samples++];
    sm->t_ms = c->t_ms;
    sm->latency_ms = (float)((double)(mr_mono_us() - c->start_us) / 1000.0);
    sm->status = (int16_t)status;
    sm->site = (uint8_t)c->site->idx;
    sm->action = (uint8_t)c->action;
    sm->region = region && strcmp(region, GD_EDGE_CACHE) == 0 ? GD_REGION_CACHE
                                                              : (int8_t)region_index(o, region);
    sm->ok = (uint8_t)ok;
}

/* ---- what a shopper learns from an answer ---- */

static void learn(struct gd_run *r, struct call *c, const struct http_response *resp)
{
    struct shopper *sh = c->sh;
    json_t *j, *order, *lines, *l, *list, *o;
    size_t i;

    http_response_cookie(resp, "mr_sid", sh->sid, sizeof(sh->sid));
    http_response_cookie(resp, "mr_token", sh->token, sizeof(sh->token));
    if (resp->status != 200)
        return;
    switch (c->action) {
    case A_CART:
        json_array_append_new(sh->adds, json_string(c->sku));
        sh->gen++;
        break;
    case A_CHECKOUT:
        j = json_loadb(resp->body, resp->body_len, 0, NULL);
        order = json_object_get(j, "order");
        if (json_string_value(json_object_get(order, "ref")) &&
            strcmp(json_string_value(json_object_get(order, "ref")), sh->last_ref) != 0) {
            json_t *mine = json_array();
            lines = json_object_get(order, "lines");
            json_array_foreach(lines, i, l)
                json_array_append_new(mine, json_pack("{s:O,s:O}", "sku", json_object_get(l, "sku"), "qty",
                                                      json_object_get(l, "quantity")));
            json_array_append_new(r->acked_orders,
                                  json_pack("{s:O,s:s,s:o}", "ref", json_object_get(order, "ref"), "session",
                                            sh->sid, "lines", mine));
            snprintf(sh->last_ref, sizeof(sh->last_ref), "%s", json_string_value(json_object_get(order, "ref")));
            snprintf(sh->pending_ref, sizeof(sh->pending_ref), "%s", sh->last_ref);
            sh->pending_t_ms = c->t_ms;
            json_array_clear(sh->adds);
            sh->gen++;
        }
        json_decref(j);
        break;
    case A_ORDERS:
        if (!sh->pending_ref[0])
            break;
        j = json_loadb(resp->body, resp->body_len, 0, NULL);
        list = json_object_get(j, "orders");
        json_array_foreach(list, i, o)
            if (json_string_value(json_object_get(o, "ref")) &&
                strcmp(json_string_value(json_object_get(o, "ref")), sh->pending_ref) == 0)
                break;
        if (i < json_array_size(list)) {
            sh->pending_ref[0] = '\0';
        } else if (json_is_array(list)) {
            const char *region = http_response_header(resp, "Meridian-Region");
            json_array_append_new(r->ryw, json_sprintf("site %s, session %.12s: order %s acknowledged at "
                                                       "%.1f s is missing from /api/orders served by %s at "
                                                       "%.1f s", r->o->sites[c->site->idx], sh->sid,
                                                       sh->pending_ref, (double)sh->pending_t_ms / 1000.0,
                                                       region ? region : "?", (double)c->t_ms / 1000.0));
            sh->pending_ref[0] = '\0'; /* one violation per order */
        }
        json_decref(j);
        break;
    default:
        break;
    }
}

static void on_answer(struct http_call *hc, int rc, const struct http_response *resp, void *data)
{
    struct call *c = data;
    struct gd_run *r = c->site->run;
    const char *cache;
    int status = rc == 0 ? resp->status : 0;
    /* A refusal for stock, or of a cart over its limits (a shopper whose
     * checkouts are refused for stock keeps filling the cart until it is
     * full: 50 lines), is the shop working, not failing. */
    int ok = rc == 0 && (status / 100 == 2 || ((c->action == A_CHECKOUT || c->action == A_CART) && status == 409));

    (void)hc;
    if (c->sh) {
        if (rc == 0)
            learn(r, c, resp);
        /* An add whose answer was lost may have reached the cart: the next
         * checkout is of another cart, a new attempt (a double click of
         * the same cart still counts once). */
        if (c->action == A_CART && (rc != 0 || status >= 500))
            c->sh->gen++;
        c->sh->busy = 0;
    }
    /* A cached answer carries the Meridian-Region of whoever served it
     * first, maybe long ago: it was served by the edge. */
    cache = rc == 0 ? http_response_header(resp, "Meridian-Cache") : NULL;
    if (cache && (strcmp(cache, "hit") == 0 || strcmp(cache, "stale") == 0))
        record(r, c, status, ok, GD_EDGE_CACHE);
    else
        record(r, c, status, ok, rc == 0 ? http_response_header(resp, "Meridian-Region") : NULL);
    c->site->in_flight--;
    r->in_flight--;
    mr_buf_close(&c->body);
    mr_free(c);
}

/* ---- issuing requests ---- */

static struct shopper *idle_shopper(struct site_rt *st, int need_cart)
{
    int n = st->run->s->shoppers, start = (int)(mr_random64() % (uint64_t)n);

    for (int k = 0; k < n; k++) {
        struct shopper *sh = &st->shoppers[(start + k) % n];
        if (!sh->busy && (!need_cart || json_array_size(sh->adds) > 0))
            return sh;
    }
    return NULL;
}

static enum gd_action pick_action(const struct gd_scenario *s)
{
    double w[A_COUNT] = {s->mix_browse, s->mix_product, s->mix_cart, s->mix_checkout, s->mix_orders};
    double total = 0, x;

    for (int i = 0; i < A_COUNT; i++)
        total += w[i];
    x = rand01() * total;
    for (int i = 0; i < A_COUNT; i++) {
        if (x < w[i])
            return (enum gd_action)i;
        x -= w[i];
    }
    return A_BROWSE;
}

static void issue(struct gd_run *r, struct site_rt *st)
{
    struct call *c = mr_calloc(1, sizeof(*c));
    struct http_client_request req;
    struct mr_buf hdr;
    const char *sku = json_string_value(json_array_get(r->skus, mr_random64() % json_array_size(r->skus)));
    char path[256];
    int rc;

    c->site = st;
    c->action = pick_action(r->s);
    c->start_us = mr_mono_us();
    c->t_ms = since_measure_ms(r);
    c->measured = c->t_ms >= 0;
    mr_buf_init(&c->body);
    if (c->action == A_CHECKOUT && (c->sh = idle_shopper(st, 1)) == NULL)
        c->action = A_CART;
    if ((c->action == A_CART || c->action == A_ORDERS) && (c->sh = idle_shopper(st, 0)) == NULL)
        c->action = A_BROWSE;
    if (st->in_flight >= MAX_IN_FLIGHT_PER_SITE) {
        /* Open loop: the request is due now; not being able to send it is
         * a failure the site's users would see. */
        record(r, c, 0, 0, NULL);
        mr_buf_close(&c->body);
        mr_free(c);
        return;
    }
    memset(&req, 0, sizeof(req));
    mr_buf_init(&hdr);
    mr_buf_puts(&hdr, "Accept: application/json\r\n");
    req.method = "GET";
    switch (c->action) {
    case A_BROWSE:
        snprintf(path, sizeof(path), "/api/products?page=%d", 1 + (int)(mr_random64() % 5));
        break;
    case A_PRODUCT:
        snprintf(path, sizeof(path), "/api/products/%s", sku);
        break;
    case A_CART:
        snprintf(path, sizeof(path), "/api/cart/items");
        snprintf(c->sku, sizeof(c->sku), "%s", sku);
        req.method = "POST";
        mr_buf_printf(&c->body, "{\"sku\":\"%s\",\"add\":1}", sku);
        break;
    case A_CHECKOUT:
        snprintf(path, sizeof(path), "/api/checkout");
        req.method = "POST";
        /* The shop derives its own idempotency key from the cart; this
         * header tells the edge that the request is safe to retry. */
        mr_buf_printf(&hdr, "Idempotency-Key: %s-%" PRIu64 "\r\n", c->sh->sid[0] ? c->sh->sid : "new",
                      c->sh->gen);
        if (c->sh->gen != c->sh->counted_gen && c->sh->sid[0]) {
            json_t *n = json_object_get(r->attempts, c->sh->sid);
            json_object_set_new(r->attempts, c->sh->sid, json_integer(json_integer_value(n) + 1));
            c->sh->counted_gen = c->sh->gen;
        }
        break;
    case A_ORDERS:
    default:
        snprintf(path, sizeof(path), "/api/orders");
        break;
    }
    if (c->body.len)
        mr_buf_puts(&hdr, "Content-Type: application/json\r\n");
    if (c->sh) {
        c->sh->busy = 1;
        if (c->sh->sid[0] || c->sh->token[0])
            mr_buf_printf(&hdr, "Cookie: mr_sid=%s%s%s\r\n", c->sh->sid, c->sh->token[0] ? "; mr_token=" : "",
                          c->sh->token);
    }
    req.host = st->host;
    req.port = st->port;
    req.path = path;
    req.headers = hdr.data;
    req.body = c->body.data;
    req.body_len = c->body.len;
    req.timeout_ms = REQUEST_TIMEOUT_MS;
    st->in_flight++;
    r->in_flight++;
    st->sent++;
    rc = http_client_request(r->client, &req, on_answer, c, NULL);
    mr_buf_close(&hdr);
    if (rc != 0) {
        if (c->sh)
            c->sh->busy = 0;
        st->in_flight--;
        r->in_flight--;
        record(r, c, 0, 0, NULL);
        mr_buf_close(&c->body);
        mr_free(c);
    }
}

/* ---- faults ---- */

/* <auth>: the run's "Authorization: ..." line for the nodes and the wan, or
 * NULL (edges: they need none, and get none). */
static int fetch_json(const char *auth, const char *method, const char *url, const char *body,
                      json_t **out, int *status, char *err)
{
    char headers[MR_AUTH_HEADER_MAX + 64];
    struct http_result res;
    int rc;

    snprintf(headers, sizeof(headers), "%s%s", auth ? auth : "",
             body ? "Content-Type: application/json\r\n" : "");
    rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0, 10000,
                    &res, err);

    *out = NULL;
    if (rc != 0)
        return rc;
    *status = res.status;
    *out = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    http_result_close(&res);
    return 0;
}

/* The region whose etcd member leads now. */
static int leader_region(struct gd_run *r, char *out, size_t size, char *err)
{
    for (size_t i = 0; i < r->o->n_regions; i++) {
        char url[256];
        json_t *j;
        int status = 0;
        snprintf(url, sizeof(url), "%s/v1/status", r->node_urls[i]);
        if (fetch_json(r->auth, "GET", url, NULL, &j, &status, err) != 0)
            continue;
        if (json_is_true(json_object_get(json_object_get(j, "etcd"), "local_member_is_leader")) ||
            json_is_true(json_object_get(j, "local_member_is_leader"))) {
            snprintf(out, size, "%s", r->o->regions[i]);
            json_decref(j);
            return 0;
        }
        json_decref(j);
    }
    return mr_seterr(err, MR_ENOTFOUND, "no region's node reports the etcd leader");
}

static int wan_links(struct gd_run *r, const char *region, const char *body, char *err)
{
    char url[256];
    json_t *j, *links, *l;
    size_t i;
    int status = 0, rc, changed = 0;

    snprintf(url, sizeof(url), "%s/links", r->wan_url);
    rc = fetch_json(r->auth, "GET", url, NULL, &j, &status, err);
    if (rc != 0)
        return rc;
    links = json_object_get(j, "links");
    json_array_foreach(links, i, l) {
        const char *from = json_string_value(json_object_get(l, "from"));
        const char *to = json_string_value(json_object_get(l, "to"));
        const char *name = json_string_value(json_object_get(l, "name"));
        json_t *ans;
        if (!name || !((from && !strcmp(from, region)) || (to && !strcmp(to, region))))
            continue;
        snprintf(url, sizeof(url), "%s/links/%s", r->wan_url, name);
        if (fetch_json(r->auth, "PATCH", url, body, &ans, &status, err) == 0 && status == 200)
            changed++;
        json_decref(ans);
    }
    json_decref(j);
    return changed ? 0 : mr_seterr(err, MR_ENOTFOUND, "no wan link touches %s", region);
}

/* Every node reports nothing left to apply. */
static int all_caught_up(struct gd_run *r)
{
    for (size_t i = 0; i < r->o->n_regions; i++) {
        char url[256], err[MR_ERRMSG_LEN];
        json_t *j;
        int status = 0, behind;
        snprintf(url, sizeof(url), "%s/v1/status", r->node_urls[i]);
        if (fetch_json(r->auth, "GET", url, NULL, &j, &status, err) != 0 || status != 200) {
            json_decref(j);
            return 0;
        }
        behind = json_integer_value(json_object_get(json_object_get(j, "lag"), "entries")) != 0;
        json_decref(j);
        if (behind)
            return 0;
    }
    return 1;
}

/* POST /admin/faults on every shop of <region>: <body> is the fault, or
 * {"mode":"off"} to heal it. */
static int shop_fault(struct gd_run *r, const char *region, const char *body, char *err)
{
    char url[256], headers[MR_AUTH_HEADER_MAX + 64];
    struct http_result res;
    int i = region_index(r->o, region), rc = 0;

    if (i < 0 || !r->shop_urls[i][0][0])
        return mr_seterr(err, MR_ENOTFOUND, "region %s has no shop in topology.json", region);
    /* The shops take the cluster's admin token (decision 030), the one this
     * run sends the nodes and the wan. */
    if (!r->auth[0])
        return mr_seterr(err, MR_EDENIED, "topology.json has no admin token (auth = no?): shop fault "
                         "injection needs one ([faults] is off without [auth] tokens)");
    snprintf(headers, sizeof(headers), "%sContent-Type: application/json\r\n", r->auth);
    for (size_t k = 0; rc == 0 && k < UP_MAX_SHOPS && r->shop_urls[i][k][0]; k++) {
        snprintf(url, sizeof(url), "%s/admin/faults", r->shop_urls[i][k]);
        rc = http_fetch("POST", url, headers, body, strlen(body), 10000, &res, err);
        if (rc != 0)
            return rc;
        if (res.status != 200)
            rc = mr_seterr(err, MR_EUNAVAIL, "shop answered %d to POST %s: %.*s", res.status, url,
                           (int)(res.body.len < 200 ? res.body.len : 200), res.body.data ? res.body.data : "");
        http_result_close(&res);
    }
    return rc;
}

static void job_run(uv_work_t *w)
{
    struct job *jb = w->data;
    struct gd_run *r = jb->run;
    struct gd_applied *a = jb->a;
    const struct gd_fault *f = jb->ev.fault;
    struct mr_buf out;
    char err[MR_ERRMSG_LEN] = "", body[256];
    int rc = 0, heal = jb->ev.heal;
    int64_t t = since_measure_ms(r), wall = mr_now_ms();

    mr_buf_init(&out);
    if (heal) {
        a->heal_t_ms = t;
        a->heal_wall_ms = wall;
    } else {
        a->t_ms = t;
        a->wall_ms = wall;
    }
    switch (f->kind) {
    case GD_KILL_LEADER:
        if (!heal && (rc = leader_region(r, a->region, sizeof(a->region), err)) != 0)
            break;
        /* fall through */
    case GD_KILL:
        rc = up_region_action(r->rundir, a->region, heal ? "restart" : "kill", NULL, &out, err);
        break;
    case GD_KILL_NODE:
        rc = up_region_action(r->rundir, a->region, heal ? "restart" : "kill", "node", &out, err);
        break;
    case GD_FREEZE:
        rc = up_region_action(r->rundir, a->region, heal ? "thaw" : "freeze", NULL, &out, err);
        break;
    case GD_PARTITION:
        rc = up_region_action(r->rundir, a->region, heal ? "heal" : "partition", NULL, &out, err);
        break;
    case GD_LINK_CUT: {
        char url[256];
        json_t *ans;
        int status = 0;
        snprintf(url, sizeof(url), "%s/links/%s", r->wan_url, a->region);
        rc = fetch_json(r->auth, "PATCH", url, heal ? "{\"state\":\"up\"}" : "{\"state\":\"blackhole\"}", &ans,
                        &status, err);
        if (rc == 0 && status != 200)
            rc = mr_seterr(err, MR_EUNAVAIL, "wan answered %d to PATCH %s", status, url);
        json_decref(ans);
        break;
    }
    case GD_LATENCY:
        if (heal) {
            char url[256];
            json_t *ans;
            int status = 0;
            /* Back to the topology's configured links. */
            snprintf(url, sizeof(url), "%s/reset", r->wan_url);
            rc = fetch_json(r->auth, "POST", url, "{}", &ans, &status, err);
            json_decref(ans);
        } else {
            snprintf(body, sizeof(body), "{\"latency_ms\":%lld}", (long long)f->latency_ms);
            rc = wan_links(r, a->region, body, err);
        }
        break;
    case GD_SHOP_5XX:
    case GD_SHOP_HANG:
        if (heal)
            snprintf(body, sizeof(body), "{\"mode\":\"off\"}");
        else if (f->kind == GD_SHOP_5XX)
            snprintf(body, sizeof(body), "{\"mode\":\"5xx\",\"status\":%d,\"paths\":\"%s\"}", f->status,
                     f->paths);
        else
            snprintf(body, sizeof(body), "{\"mode\":\"hang\",\"paths\":\"%s\"}", f->paths);
        rc = shop_fault(r, a->region, body, err);
        break;
    default:
        rc = mr_seterr(err, MR_EINVAL, "unknown fault kind");
    }
    if (heal) {
        a->heal_rc = rc;
        /* Catch-up: until every region has applied everything. */
        a->catch_up_ms = -1;
        for (int64_t start = mr_mono_us(); rc == 0 && mr_mono_us() - start < CATCH_UP_LIMIT_MS * 1000LL;) {
            if (all_caught_up(r)) {
                a->catch_up_ms = (mr_mono_us() - start) / 1000;
                break;
            }
            uv_sleep(100);
        }
    } else {
        a->rc = rc;
    }
    if (rc != 0 && !a->error[0])
        snprintf(a->error, sizeof(a->error), "%s %s: %s", heal ? "heal" : "apply", f->name, err);
    mr_buf_close(&out);
}

static void job_done(uv_work_t *w, int status)
{
    struct job *jb = w->data;
    struct gd_run *r = jb->run;

    (void)status;
    if (jb->a->error[0])
        mr_log(MR_LOG_WARN, "gameday", "%s", jb->a->error);
    else
        mr_log(MR_LOG_INFO, "gameday", "%s %s (%s) at %.1f s", jb->ev.heal ? "healed" : "applied",
               jb->ev.fault->name, jb->a->region, (double)(jb->ev.heal ? jb->a->heal_t_ms : jb->a->t_ms) / 1e3);
    r->job_busy = 0;
    mr_free(jb);
}

static struct gd_applied *applied_for(struct gd_run *r, const struct event *ev)
{
    for (size_t i = 0; i < r->o->n_applied; i++)
        if (r->o->applied[i].fault == ev->fault && r->o->applied[i].round == ev->round)
            return &r->o->applied[i];
    return NULL;
}

static void maybe_start_event(struct gd_run *r)
{
    struct event *ev;
    struct job *jb;
    struct gd_applied *a;

    if (r->job_busy || r->next_event == r->n_events)
        return;
    ev = &r->events[r->next_event];
    if (since_measure_ms(r) < ev->at_ms)
        return;
    a = applied_for(r, ev);
    if (a == NULL) {
        if (ev->heal || r->o->n_applied == sizeof(r->o->applied) / sizeof(r->o->applied[0])) {
            r->next_event++;
            return;
        }
        a = &r->o->applied[r->o->n_applied++];
        memset(a, 0, sizeof(*a));
        a->fault = ev->fault;
        a->round = ev->round;
        a->catch_up_ms = -1;
        snprintf(a->region, sizeof(a->region), "%s", ev->fault->region);
    }
    r->next_event++;
    jb = mr_calloc(1, sizeof(*jb));
    jb->run = r;
    jb->ev = *ev;
    jb->a = a;
    jb->w.data = jb;
    r->job_busy = 1;
    if (uv_queue_work(&r->loop, &jb->w, job_run, job_done) != 0) {
        r->job_busy = 0;
        mr_free(jb);
    }
}

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    return x->at_ms < y->at_ms ? -1 : x->at_ms > y->at_ms ? 1 : x->heal - y->heal;
}

static void plan_events(struct gd_run *r)
{
    for (size_t i = 0; i < r->s->n_faults; i++) {
        const struct gd_fault *f = &r->s->faults[i];
        for (int k = 0; k < f->repeat; k++) {
            int64_t at = f->at_ms + k * f->period_ms;
            r->events[r->n_events++] = (struct event){at, f, k, 0};
            r->events[r->n_events++] = (struct event){at + f->duration_ms, f, k, 1};
        }
    }
    qsort(r->events, r->n_events, sizeof(r->events[0]), event_cmp);
}

/* ---- the loop ---- */

static void progress(struct gd_run *r, int64_t t_ms)
{
    int64_t s = t_ms / 1000;

    if (r->opt->quiet || (uint64_t)s == r->last_progress_s)
        return;
    r->last_progress_s = (uint64_t)s;
    fprintf(stderr, "\r  %-8s %4" PRId64 " s  requests %8" PRIu64 "  errors %6" PRIu64 "  in flight %5zu   ",
            t_ms < 0 ? "warm-up" : "traffic", t_ms < 0 ? -s : s, r->requests_total, r->errors_total,
            r->in_flight);
    fflush(stderr);
}

static void on_tick(uv_timer_t *t)
{
    struct gd_run *r = t->data;
    int64_t now = mr_mono_us(), t_ms = (now - r->measure_us) / 1000;
    double elapsed_s = (double)(now - r->start_us) / 1e6;

    progress(r, t_ms);
    if (t_ms >= r->s->duration_ms) {
        if (!r->stopping) {
            r->stopping = 1;
            uv_timer_stop(&r->tick);
        }
        return;
    }
    for (size_t i = 0; i < r->o->n_sites; i++) {
        struct site_rt *st = &r->sites[i];
        uint64_t due = (uint64_t)(elapsed_s * r->s->rate);
        while (st->sent < due)
            issue(r, st);
    }
    maybe_start_event(r);
}

/* ---- setup: topology, catalog ---- */

static int read_topology(struct gd_run *r, char *err)
{
    char path[1200];
    json_error_t jerr;
    json_t *root, *regions, *sites, *x, *shop;
    size_t i, k;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/topology.json", r->rundir);
    root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "%s: %s", path, jerr.text);
    regions = json_object_get(root, "regions");
    sites = json_object_get(root, "sites");
    mr_auth_header(json_string_value(json_object_get(json_object_get(root, "auth"), "token")), r->auth,
                   sizeof(r->auth));
    json_array_foreach(regions, i, x) {
        const char *url = json_string_value(json_object_get(json_object_get(x, "node"), "url"));
        if (i == GD_MAX_REGIONS || !url) {
            rc = mr_seterr(err, MR_EINVAL, "%s: region %zu has no node url (or more than %d regions)", path, i,
                           GD_MAX_REGIONS);
            break;
        }
        snprintf(r->o->regions[i], sizeof(r->o->regions[i]), "%s",
                 json_string_value(json_object_get(x, "name")));
        snprintf(r->node_urls[i], sizeof(r->node_urls[i]), "%s", url);
        json_array_foreach(json_object_get(x, "shops"), k, shop) {
            url = json_string_value(json_object_get(shop, "instance_url"));
            if (k < UP_MAX_SHOPS && url)
                snprintf(r->shop_urls[i][k], sizeof(r->shop_urls[i][k]), "%s", url);
        }
        r->o->n_regions = i + 1;
    }
    json_array_foreach(sites, i, x) {
        const char *url = json_string_value(json_object_get(json_object_get(x, "edge"), "url"));
        char *host = NULL, *p = NULL;
        int port = 0;
        if (rc != 0)
            break;
        if (i == GD_MAX_SITES || !url || http_parse_url(url, &host, &port, &p, err) != 0) {
            rc = mr_seterr(err, MR_EINVAL, "%s: site %zu has no usable edge url: a game day sends its "
                           "traffic through each site's edge", path, i);
            break;
        }
        snprintf(r->o->sites[i], sizeof(r->o->sites[i]), "%s", json_string_value(json_object_get(x, "name")));
        snprintf(r->sites[i].host, sizeof(r->sites[i].host), "%s", host);
        r->sites[i].port = port;
        r->o->n_sites = i + 1;
        mr_free(host);
        mr_free(p);
    }
    x = json_object_get(json_object_get(root, "wan"), "control_url");
    if (!json_is_string(x))
        x = json_object_get(json_object_get(root, "wan"), "url");
    if (json_is_string(x))
        snprintf(r->wan_url, sizeof(r->wan_url), "%s", json_string_value(x));
    json_decref(root);
    if (rc == 0 && (r->o->n_regions == 0 || r->o->n_sites == 0))
        rc = mr_seterr(err, MR_EINVAL, "%s: a game day needs regions and client sites", path);
    return rc;
}

/* Run SQL on region <i>'s node (strong, so the answer includes every
 * acknowledged write); the rows of statement <k> of the answer. */
static int node_sql(struct gd_run *r, size_t i, const char *sql, json_t **answer, char *err)
{
    char url[256];
    json_t *req = json_pack("{s:[{s:s}],s:s}", "statements", "sql", sql, "consistency", "strong");
    char *body = json_dumps(req, JSON_COMPACT);
    int status = 0, rc;

    snprintf(url, sizeof(url), "%s/v1/sql", r->node_urls[i]);
    rc = fetch_json(r->auth, "POST", url, body, answer, &status, err);
    free(body);
    json_decref(req);
    if (rc == 0 && status != 200) {
        rc = mr_seterr(err, MR_EUNAVAIL, "%s: %s answered %d: %s", r->o->regions[i], sql, status,
                       json_string_value(json_object_get(json_object_get(*answer, "error"), "message")));
        json_decref(*answer);
        *answer = NULL;
    }
    return rc;
}

static json_t *rows_of(json_t *answer)
{
    return json_object_get(json_array_get(json_object_get(answer, "results"), 0), "rows");
}

static int read_stock(struct gd_run *r, size_t i, json_t **stock, char *err)
{
    json_t *ans, *row;
    size_t k;
    int rc = node_sql(r, i, "SELECT sku, stock FROM products ORDER BY sku", &ans, err);

    if (rc != 0)
        return rc;
    *stock = json_object();
    json_array_foreach(rows_of(ans), k, row)
        json_object_set(*stock, json_string_value(json_array_get(row, 0)), json_array_get(row, 1));
    json_decref(ans);
    return 0;
}

/* ---- verification ---- */

static int table_get(struct gd_run *r, size_t i, const char *path, json_t **out, char *err)
{
    char url[512];
    int status = 0, rc;

    snprintf(url, sizeof(url), "%s%s", r->node_urls[i], path);
    rc = fetch_json(r->auth, "GET", url, NULL, out, &status, err);
    if (rc == 0 && status != 200 && status != 404) {
        json_decref(*out);
        *out = NULL;
        return mr_seterr(err, MR_EUNAVAIL, "%s: GET %s answered %d", r->o->regions[i], path, status);
    }
    return rc;
}

/* The carts' digests, once equal everywhere (or when <limit_ms> is up). */
static void wait_carts_converged(struct gd_run *r, int64_t limit_ms)
{
    int64_t start = mr_mono_us();

    while ((mr_mono_us() - start) / 1000 < limit_ms) {
        char first[256] = "", err[MR_ERRMSG_LEN];
        int same = 1;
        for (size_t i = 0; same && i < r->o->n_regions; i++) {
            json_t *d = NULL;
            const char *v;
            if (table_get(r, i, "/v1/tables/carts/digest", &d, err) != 0) {
                same = 0;
                break;
            }
            v = json_string_value(json_object_get(d, "digest"));
            if (i == 0)
                snprintf(first, sizeof(first), "%s", v ? v : "");
            else if (!v || strcmp(v, first) != 0)
                same = 0;
            json_decref(d);
        }
        if (same && all_caught_up(r))
            return;
        uv_sleep(200);
    }
}

/* One read of region <i>'s state.  The first read that fails is named in
 * the state's "unread" list, and the rest is not tried (each could take the
 * whole request timeout): a region which could not be read is reported as
 * such, not as one that lost everything. */
static json_t *region_state_once(struct gd_run *r, size_t i, json_t *history)
{
    json_t *st = json_object(), *orders = json_object(), *list = json_array(), *ans, *row, *stock = NULL;
    json_t *carts = json_object(), *unread = json_array(), *d = NULL, *skus, *o;
    const char *ref, *session;
    char sql[256], err[MR_ERRMSG_LEN];
    size_t k;

    json_object_set_new(st, "name", json_string(r->o->regions[i]));
    /* Only this game day's orders: the topology may have served others. */
    snprintf(sql, sizeof(sql), "SELECT ref, session FROM orders WHERE id > %lld", (long long)r->orders_before);
    if (node_sql(r, i, sql, &ans, err) == 0) {
        json_array_foreach(rows_of(ans), k, row)
            json_object_set_new(orders, json_string_value(json_array_get(row, 0)) ?: "",
                                json_pack("{s:O,s:O,s:[]}", "ref", json_array_get(row, 0), "session",
                                          json_array_get(row, 1), "lines"));
        json_decref(ans);
    } else {
        json_array_append_new(unread, json_sprintf("orders: %s", err));
        goto out;
    }
    snprintf(sql, sizeof(sql), "SELECT l.order_ref, l.sku, l.qty FROM order_lines l JOIN orders o ON "
             "o.ref = l.order_ref WHERE o.id > %lld", (long long)r->orders_before);
    if (node_sql(r, i, sql, &ans, err) == 0) {
        json_array_foreach(rows_of(ans), k, row) {
            o = json_object_get(orders, json_string_value(json_array_get(row, 0)) ?: "");
            if (o)
                json_array_append_new(json_object_get(o, "lines"),
                                      json_pack("{s:O,s:O}", "sku", json_array_get(row, 1), "qty",
                                                json_array_get(row, 2)));
        }
        json_decref(ans);
    } else {
        json_array_append_new(unread, json_sprintf("order lines: %s", err));
        goto out;
    }
    if (read_stock(r, i, &stock, err) == 0) {
        json_object_set_new(st, "stock", stock);
    } else {
        json_array_append_new(unread, json_sprintf("stock: %s", err));
        goto out;
    }
    if (table_get(r, i, "/v1/tables/carts/digest", &d, err) != 0) {
        json_array_append_new(unread, json_sprintf("carts digest: %s", err));
        goto out;
    }
    json_object_set(st, "carts_digest", json_object_get(d, "digest"));
    json_decref(d);
    json_object_foreach(json_object_get(history, "cart_adds"), session, skus) {
        char path[256];
        json_t *item = NULL;
        snprintf(path, sizeof(path), "/v1/tables/carts/items/%s", session);
        if (table_get(r, i, path, &item, err) == 0) {
            json_t *have = json_object_get(json_object_get(item, "item"), "skus");
            json_object_set(carts, session, json_is_array(have) ? have : json_array());
        } else {
            json_array_append_new(unread, json_sprintf("cart %.12s: %s", session, err));
            break;
        }
        json_decref(item);
    }
out:
    json_object_foreach(orders, ref, o)
        json_array_append(list, o);
    json_decref(orders);
    json_object_set_new(st, "orders", list);
    json_object_set_new(st, "carts", carts);
    json_object_set_new(st, "unread", unread);
    return st;
}

/* Region <i>'s state, read again (up to STATE_READS times, a second apart)
 * while some of it cannot be read: a node that is busy catching up after
 * the faults may time out a read or two. */
#define STATE_READS 5
static json_t *region_state(struct gd_run *r, size_t i, json_t *history)
{
    json_t *st = region_state_once(r, i, history);

    for (int attempt = 1; attempt < STATE_READS && json_array_size(json_object_get(st, "unread")) > 0;
         attempt++) {
        fprintf(stderr, "gameday: region %s: reading its final state failed (%s); reading again\n",
                r->o->regions[i], json_string_value(json_array_get(json_object_get(st, "unread"), 0)));
        json_decref(st);
        uv_sleep(1000);
        st = region_state_once(r, i, history);
    }
    return st;
}

static json_t *history_json(struct gd_run *r)
{
    json_t *adds = json_object();

    for (size_t i = 0; i < r->o->n_sites; i++)
        for (int k = 0; k < r->s->shoppers; k++) {
            struct shopper *sh = &r->sites[i].shoppers[k];
            if (sh->sid[0] && json_array_size(sh->adds) > 0)
                json_object_set(adds, sh->sid, sh->adds);
        }
    return json_pack("{s:O,s:O,s:o,s:O}", "acked_orders", r->acked_orders, "attempts", r->attempts, "cart_adds",
                     adds, "ryw_violations", r->ryw);
}

static void fetch_edges(struct gd_run *r)
{
    for (size_t i = 0; i < r->o->n_sites; i++) {
        char url[256], err[MR_ERRMSG_LEN];
        int status = 0;
        snprintf(url, sizeof(url), "http://%s:%d/v1/status", r->sites[i].host, r->sites[i].port);
        if (fetch_json(NULL, "GET", url, NULL, &r->o->edge_status[i], &status, err) != 0)
            r->o->edge_status[i] = NULL;
    }
}

/* ---- gd_run ---- */

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int gd_run(const struct gd_scenario *s, const struct gd_options *opt, char *err)
{
    struct gd_run *r = mr_calloc(1, sizeof(*r));
    struct gd_outcome *o = mr_calloc(1, sizeof(*o));
    struct topo topo;
    json_t *initial = NULL, *history = NULL, *state = NULL, *report = NULL, *regions;
    char dir[1024];
    int rc, started = 0, passed = 0, loop_ready = 0;

    memset(&topo, 0, sizeof(topo));
    r->s = s;
    r->opt = opt;
    r->o = o;
    o->s = s;
    snprintf(dir, sizeof(dir), "%s", opt->report_dir ? opt->report_dir : "");
    if (!dir[0])
        snprintf(dir, sizeof(dir), "gameday-%s", s->name);
    if (opt->rundir) {
        rc = topo_attach(&topo, opt->rundir, err);
    } else {
        printf("gameday %s: starting the topology\n", s->name);
        fflush(stdout);
        rc = topo_up(&topo, opt->exe, opt->topology, NULL, opt->latency_scale, 0, err);
        started = rc == 0;
    }
    if (rc == 0) {
        snprintf(r->rundir, sizeof(r->rundir), "%s", topo.rundir);
        rc = read_topology(r, err);
    }
    if (rc == 0)
        rc = read_stock(r, 0, &initial, err);
    if (rc == 0 && json_object_size(initial) == 0)
        rc = mr_seterr(err, MR_EINVAL, "the catalog is empty: run `meridian shop seed` first");
    if (rc == 0) {
        json_t *ans;
        rc = node_sql(r, 0, "SELECT coalesce(max(id), 0) FROM orders", &ans, err);
        if (rc == 0)
            r->orders_before = json_integer_value(json_array_get(json_array_get(rows_of(ans), 0), 0));
        json_decref(ans);
    }
    if (rc != 0)
        goto out;
    r->skus = json_array();
    {
        const char *sku;
        json_t *v;
        json_object_foreach(initial, sku, v)
            json_array_append_new(r->skus, json_string(sku));
    }
    r->acked_orders = json_array();
    r->attempts = json_object();
    r->ryw = json_array();
    for (size_t i = 0; i < o->n_sites; i++) {
        r->sites[i].run = r;
        r->sites[i].idx = i;
        r->sites[i].shoppers = mr_calloc((size_t)s->shoppers, sizeof(struct shopper));
        for (int k = 0; k < s->shoppers; k++)
            r->sites[i].shoppers[k].adds = json_array();
    }
    plan_events(r);

    uv_loop_init(&r->loop);
    loop_ready = 1;
    {
        struct http_client_opts co;
        http_client_opts_default(&co);
        co.max_idle_per_host = 256;
        /* The shoppers go through the edges: plain HTTP unless the topology
         * has edge_tls.  (Nodes and shops are called with http_fetch, which
         * topo_attach gave the admin certificate.) */
        if (topo.n_sites > 0 && strncmp(topo.sites[0].edge_url, "https:", 6) == 0)
            co.tls = topo.tls;
        if ((rc = http_client_new(&r->loop, &co, &r->client)) != 0) {
            mr_seterr(err, rc, "cannot create the HTTP client");
            goto out;
        }
    }
    printf("gameday %s: %zu sites x %.0f req/s, %zu regions, %zu faults; warm-up %.0f s, traffic %.0f s\n",
           s->name, o->n_sites, s->rate, o->n_regions, s->n_faults, (double)s->warmup_ms / 1e3,
           (double)s->duration_ms / 1e3);
    fflush(stdout);
    o->started_wall_ms = mr_now_ms() + s->warmup_ms;
    r->start_us = mr_mono_us();
    r->measure_us = r->start_us + s->warmup_ms * 1000;
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
    while (!r->stopping || r->in_flight > 0 || r->job_busy || r->next_event < r->n_events) {
        uv_run(&r->loop, UV_RUN_ONCE);
        /* Heals due after the traffic ended still run. */
        if (r->stopping && !r->job_busy && r->next_event < r->n_events) {
            r->events[r->next_event].at_ms = 0;
            maybe_start_event(r);
        }
    }
    if (!opt->quiet)
        fprintf(stderr, "\n");
    http_client_free(r->client);
    r->client = NULL;
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);

    fetch_edges(r);
    printf("gameday %s: traffic done (%" PRIu64 " requests, %" PRIu64 " failed); settling up to %.0f s\n", s->name,
           r->requests_total, r->errors_total, (double)s->settle_ms / 1e3);
    fflush(stdout);
    wait_carts_converged(r, s->settle_ms);
    history = history_json(r);
    regions = json_array();
    for (size_t i = 0; i < o->n_regions; i++)
        json_array_append_new(regions, region_state(r, i, history));
    state = json_pack("{s:O,s:o}", "initial_stock", initial, "regions", regions);
    o->checks = gd_check(history, state);
    report = gd__report_json(o, &passed);
    json_object_set(report, "history", history);
    json_object_set(report, "final_state", state);
    rc = gd__write_reports(report, dir, err);
    if (rc == 0) {
        gd__print_summary(report);
        printf("report: %s/report.json, %s/report.html\n", dir, dir);
    }
out:
    if (r->client)
        http_client_free(r->client);
    if (loop_ready) {
        uv_walk(&r->loop, close_walk, NULL);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        uv_loop_close(&r->loop);
    }
    if (started)
        topo_down(&topo, opt->exe);
    else if (topo.rundir)
        topo_detach(&topo);
    for (size_t i = 0; i < o->n_sites; i++) {
        for (int k = 0; r->sites[i].shoppers && k < s->shoppers; k++)
            json_decref(r->sites[i].shoppers[k].adds);
        mr_free(r->sites[i].shoppers);
        json_decref(o->edge_status[i]);
    }
    json_decref(initial);
    json_decref(history);
    json_decref(state);
    json_decref(report);
    json_decref(o->checks);
    json_decref(r->skus);
    json_decref(r->acked_orders);
    json_decref(r->attempts);
    json_decref(r->ryw);
    mr_free(o->samples);
    mr_free(o);
    mr_free(r);
    if (rc != 0)
        return rc;
    return passed ? 0 : 1;
}
