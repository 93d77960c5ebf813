/* server.c -- the shop's HTTP server: lifecycle, routing, cookies, the
 * headers every answer carries (Meridian-Region, Cache-Control, tokens),
 * /healthz, /readyz and /metrics.  Actions are in api.c and pages.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "shop_int.h"

static const char *route_names[SR_COUNT] = {
    "api_products", "api_product", "api_stock", "api_cart", "api_checkout", "api_orders", "api_session",
    "page_catalog", "page_product", "page_cart", "page_checkout", "page_orders", "page_form",
    "healthz", "readyz", "metrics", "other", "admin_faults", "fault"};

static void req_free(struct shop_req *r)
{
    mr_free(r->path);
    mr_free(r->query);
    mr_free(r->body);
    mr_free(r->referer);
    shop__cart_clear(&r->cart);
    json_decref(r->res);
    json_decref(r->res2);
    mr_free(r);
}

void shop__catalog_cc(const struct shop *s, char *out, size_t size)
{
    snprintf(out, size, "public, max-age=%" PRId64 ", stale-while-revalidate=%" PRId64
             ", stale-if-error=%" PRId64, s->cfg->catalog_max_age, s->cfg->catalog_swr, s->cfg->catalog_sie);
}

void shop__respond(struct shop_req *r, int status, const char *ctype, const char *body, size_t len,
                   const char *cache_control, const char *extra_headers)
{
    struct shop *s = r->s;
    const struct shop_config *cfg = s->cfg;
    struct mr_buf h;
    char tok[MR_TOKEN_MAX_LEN];
    int64_t max_age = cfg->session_ttl_ms / 1000;

    mr_buf_init(&h);
    mr_buf_printf(&h, "Meridian-Region: %s\r\n", cfg->region);
    mr_buf_printf(&h, "Cache-Control: %s\r\n", cache_control ? cache_control : "private, no-store");
    /* The session cookie is (re)set with every write, so that it expires
     * with the cart and the session document (their TTL is pushed back by
     * writes): an expired cart's key is never written again (docs/tables.md:
     * a crdt item written after its expiry may lose increments). */
    if (r->new_sid || (r->sid[0] && r->tok_changed))
        mr_buf_printf(&h, "Set-Cookie: %s=%s; Path=/; Max-Age=%" PRId64 "; HttpOnly; SameSite=Lax\r\n",
                      cfg->session_cookie, r->sid, max_age);
    /* A shared cache must not store one shopper's token: public answers
     * carry none. */
    if (r->have_tok && cache_control == NULL) {
        mr_token_format(&r->tok, tok, sizeof(tok));
        mr_buf_printf(&h, "Meridian-Token: %s\r\n", tok);
        if (r->tok_changed)
            mr_buf_printf(&h, "Set-Cookie: %s=%s; Path=/; Max-Age=%" PRId64 "; HttpOnly; SameSite=Lax\r\n",
                          cfg->token_cookie, tok, max_age);
    } else if (r->tok_dropped) {
        mr_buf_printf(&h, "Set-Cookie: %s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax\r\n", cfg->token_cookie);
    }
    if (extra_headers)
        mr_buf_puts(&h, extra_headers);
    s->stats.requests[r->route][status / 100 < 6 ? status / 100 : 5]++;
    mr_hist_observe(&s->stats.latency[r->route], (double)(mr_mono_us() - r->start_us) / 1e6);
    http_respond(r->ex, status, ctype, body, len, h.data);
    mr_buf_close(&h);
    req_free(r);
}

void shop__respond_json(struct shop_req *r, int status, json_t *j, const char *cache_control)
{
    char *text;

    json_object_set_new(j, "region", json_string(r->s->cfg->region));
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    shop__respond(r, status, "application/json", text, strlen(text), cache_control, NULL);
    free(text);
}

void shop__respond_error(struct shop_req *r, int status, const char *code, const char *msg)
{
    char extra[64] = "";
    struct mr_buf b;

    if (status == 503)
        snprintf(extra, sizeof(extra), "Retry-After: %" PRId64 "\r\n", r->s->cfg->retry_after);
    if (status == 405)
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", r->route == SR_CHECKOUT ? "POST" : "GET, POST");
    if (r->html) {
        shop__page_error(r, status, code, msg, extra);
        return;
    }
    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"error\":{\"code\":");
    mr_json_cstr(&b, code);
    mr_buf_puts(&b, ",\"message\":");
    mr_json_cstr(&b, msg);
    mr_buf_puts(&b, "},\"region\":");
    mr_json_cstr(&b, r->s->cfg->region);
    mr_buf_putc(&b, '}');
    shop__respond(r, status, "application/json", b.data, b.len, NULL, extra);
    mr_buf_close(&b);
}

void shop__redirect(struct shop_req *r, const char *location)
{
    char extra[320];

    snprintf(extra, sizeof(extra), "Location: %s\r\n", location);
    shop__respond(r, 303, "text/plain", "", 0, NULL, extra);
}

void shop__ensure_session(struct shop_req *r)
{
    if (r->sid[0])
        return;
    shop__sid_new(r->sid);
    r->new_sid = 1;
}

/* ---- /healthz, /readyz, /metrics ------------------------------------------- */

static void ready_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    char msg[MR_ERRMSG_LEN + 32];

    if (rc == 0 && status == 200) {
        shop__respond_json(r, 200, json_pack("{s:b}", "ready", 1), NULL);
        return;
    }
    if (rc != 0)
        snprintf(msg, sizeof(msg), "%s", err);
    else
        snprintf(msg, sizeof(msg), "node not ready: %s",
                 json_string_value(json_object_get(body, "reason")) ? json_string_value(json_object_get(body, "reason"))
                                                                   : "no reason given");
    shop__respond_json(r, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", msg), NULL);
}

static void metrics(struct shop_req *r)
{
    struct shop_stats *st = &r->s->stats;
    struct mr_buf b;
    char labels[96];

    mr_buf_init(&b);
    mr_metric_header(&b, "meridian_shop_requests_total", "counter", "shop answers by route and status class");
    for (int i = 0; i < SR_COUNT; i++)
        for (int c = 1; c < 6; c++)
            if (st->requests[i][c]) {
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%dxx\"", route_names[i], c);
                mr_metric_u64(&b, "meridian_shop_requests_total", labels, st->requests[i][c]);
            }
    mr_metric_header(&b, "meridian_shop_request_duration_seconds", "histogram", "shop request to answer");
    for (int i = 0; i < SR_COUNT; i++)
        if (st->latency[i].count) {
            snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[i]);
            mr_metric_hist(&b, "meridian_shop_request_duration_seconds", labels, &st->latency[i]);
        }
    mr_metric_header(&b, "meridian_shop_node_call_seconds", "histogram", "calls to this region's node");
    mr_metric_hist(&b, "meridian_shop_node_call_seconds", NULL, &st->node_latency);
#define C(name, field, help)                                      \
    mr_metric_header(&b, "meridian_shop_" name, "counter", help); \
    mr_metric_u64(&b, "meridian_shop_" name, NULL, st->field)
    C("node_calls_total", node_calls, "calls to the node answered or failed");
    C("node_errors_total", node_errors, "calls to the node that failed or answered 5xx");
    C("node_reads_fallback_total", node_reads_fallback,
      "reads answered without some of the shopper's writes (their region out of reach)");
    C("orders_total", orders, "orders placed (first commit, replays excluded)");
    C("checkout_replays_total", checkout_replays, "checkouts answered with an order placed before (idempotency)");
    C("out_of_stock_total", out_of_stock, "checkouts refused for stock");
    C("cart_changed_total", cart_changed, "checkouts refused because the cart changed");
#undef C
    mr_metric_header(&b, "meridian_shop_node_calls_pending", "gauge", "calls to the node in flight");
    mr_metric_u64(&b, "meridian_shop_node_calls_pending", NULL, r->s->n_pending);
    shop__faults_metrics(r->s, &b);
    shop__respond(r, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, NULL);
    mr_buf_close(&b);
}

/* ---- requests ---------------------------------------------------------------- */

static void on_request(struct http_exchange *ex, const struct http_request *hr, void *data)
{
    struct shop *s = data;
    struct shop_req *r = mr_calloc(1, sizeof(*r));
    const char *cookie = http_request_header(hr, "Cookie");
    const char *htok = http_request_header(hr, "Meridian-Token");
    const char *ref = http_request_header(hr, "Referer");
    char buf[MR_TOKEN_MAX_LEN + 1];
    struct mr_token t;

    r->s = s;
    r->ex = ex;
    r->route = SR_OTHER;
    r->start_us = hr->received_us;
    snprintf(r->method, sizeof(r->method), "%s", hr->method);
    r->head = strcmp(hr->method, "HEAD") == 0;
    r->path = mr_strdup(hr->path);
    r->query = mr_strdup(hr->query ? hr->query : "");
    r->body = mr_strndup(hr->body ? hr->body : "", hr->body_len);
    r->body_len = hr->body_len;
    r->referer = ref ? mr_strndup(ref, 256) : NULL;
    r->html = strncmp(r->path, "/api/", 5) != 0 && strcmp(r->path, "/api") != 0;
    if (cookie && http_cookie_get(cookie, s->cfg->session_cookie, buf, sizeof(buf)) && shop__sid_valid(buf))
        snprintf(r->sid, sizeof(r->sid), "%.*s", SHOP_SID_HEX, buf);
    /* A bad token cookie is dropped (it may come from an older cluster); a
     * bad header is the client's mistake and gets a 400. */
    if (cookie && http_cookie_get(cookie, s->cfg->token_cookie, buf, sizeof(buf)) &&
        mr_token_parse(buf, &t, NULL) == 0) {
        r->tok = t;
        r->have_tok = 1;
    }
    if (htok && *htok) {
        char err[MR_ERRMSG_LEN];
        if (mr_token_parse(htok, &t, err) != 0) {
            shop__respond_error(r, 400, "invalid_token", "the Meridian-Token header is not a Meridian "
                                "consistency token");
            return;
        }
        if (!r->have_tok)
            r->tok = t;
        else
            (void)mr_token_merge(&r->tok, &t);
        r->have_tok = 1;
    }
    if (s->stopping) {
        shop__respond_error(r, 503, "shutting_down", "this shop is stopping; try again");
        return;
    }
    /* Before any route: an injected fault covers /healthz and /readyz too
     * when its paths do, as a load balancer's health check would see it. */
    if (shop__faults_take(r, http_request_header(hr, "Authorization")))
        return;
    if (strcmp(r->path, "/healthz") == 0) {
        r->route = SR_HEALTH;
        r->html = 0;
        shop__respond_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL);
    } else if (strcmp(r->path, "/readyz") == 0) {
        r->route = SR_READY;
        r->html = 0;
        if (shop__node_call(r, "GET", "/readyz", NULL, TOK_NONE, ready_done) != 0)
            shop__respond_json(r, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", "stopping"), NULL);
    } else if (strcmp(r->path, "/metrics") == 0) {
        r->route = SR_METRICS;
        r->html = 0;
        metrics(r);
    } else if (!r->html) {
        shop__api(r);
    } else {
        shop__pages(r);
    }
}

/* Serve every path on <addr> ("host:port", the value of [shop] <key>). */
static int listen_on(struct shop *s, const char *key, const char *addr,
                     const struct http_server_opts *so, struct http_server **out, char *err)
{
    char *host = mr_strdup(addr), *colon = strrchr(host, ':');
    int rc;

    if (colon == NULL || mr_parse_i64(colon + 1, 0, 65535, &(int64_t){0}) != 0) {
        mr_free(host);
        return mr_seterr(err, MR_ECONFIG, "%s '%s': expected host:port", key, addr);
    }
    *colon = '\0';
    rc = http_server_start(s->loop, host, atoi(colon + 1), so, on_request, s, out, err);
    mr_free(host);
    return rc;
}

int shop_start(uv_loop_t *loop, const struct shop_config *cfg, struct shop **out, char *err)
{
    struct shop *s = mr_calloc(1, sizeof(*s));
    struct http_server_opts so;
    struct http_client_opts co;
    char *path = NULL, auth[MR_AUTH_HEADER_MAX];
    int rc;

    s->loop = loop;
    s->cfg = cfg;
    for (int i = 0; i < SR_COUNT; i++)
        mr_hist_init(&s->stats.latency[i], mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&s->stats.node_latency, mr_hist_latency_bounds, mr_hist_latency_n);
    rc = http_parse_url(cfg->node, &s->node_host, &s->node_port, &path, err);
    mr_free(path);
    if (rc == 0)
        rc = mr_auth_build(&s->auth, &cfg->auth_tokens, err);   /* checked by shop_config_check */
    if (rc != 0)
        goto err_after_alloc;
    if (cfg->tls_ca_file && cfg->tls_ca_file[0]) {
        /* The shop is reached only through the edge: a client without a
         * certificate from the cluster CA is refused at the handshake, so
         * nothing on the Internet can talk to a shop directly. */
        struct tls_opts to = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file, 1, 0, 0};
        rc = tls_ctx_new(&to, 1, &s->tls_server, err);
        if (rc == 0 && http_url_is_https(cfg->node))
            rc = tls_ctx_new(&to, 0, &s->tls_client, err);
        if (rc != 0) {
            mr_wraperr(err, rc, "[tls]");
            goto err_after_alloc;
        }
    }
    http_client_opts_default(&co);
    co.tls = s->tls_client;
    co.max_idle_per_host = 64;
    co.max_response_bytes = 16 << 20;
    if (strcmp(cfg->node_token, "none") != 0) {
        mr_auth_header(cfg->node_token, auth, sizeof(auth));
        co.headers = auth;   /* copied by http_client_new */
    }
    rc = http_client_new(loop, &co, &s->client);
    if (rc != 0) {
        mr_seterr(err, rc, "node client: %s", mr_strerror(rc));
        goto err_after_alloc;
    }
    http_server_opts_default(&so);
    so.max_body_bytes = (size_t)cfg->max_body;
    so.server_name = "meridian-shop";
    so.reuse_port = cfg->reuse_port;
    so.tls = s->tls_server;
    rc = listen_on(s, "listen", cfg->listen, &so, &s->server, err);
    if (rc != 0)
        goto err_after_client;
    if (cfg->instance_listen && cfg->instance_listen[0]) {
        so.reuse_port = 0;
        rc = listen_on(s, "instance_listen", cfg->instance_listen, &so, &s->instance_server, err);
        if (rc != 0) {
            http_server_close(s->server);
            goto err_after_client;
        }
    }
    mr_log(MR_LOG_INFO, "shop", "listening on port %d (%s), node %s, region %s",
           http_server_port(s->server), s->tls_server ? "TLS, client certificates required" : "plain HTTP",
           cfg->node, cfg->region);
    if (cfg->faults_enabled)
        mr_log(MR_LOG_WARN, "shop", "fault injection enabled: /admin/faults answers a token of [auth] "
               "with the admin scope (%zu token%s configured)", s->auth.n, s->auth.n == 1 ? "" : "s");
    *out = s;
    return 0;

err_after_client:
    http_client_free(s->client);
err_after_alloc:
    tls_ctx_free(s->tls_server);
    tls_ctx_free(s->tls_client);
    mr_free(s->node_host);
    mr_free(s);
    return rc;
}

int shop_reload_tls(struct shop *s, char *err)
{
    struct tls_ctx *both[2] = {s->tls_server, s->tls_client};

    /* Both or neither (NULL ones are skipped): the listener and the calls
     * to the node move together. */
    return tls_ctx_reload_all(both, 2, err);
}

int shop_reload_auth(struct shop *s, const char *path, char *err)
{
    struct shop_config fresh;
    struct mr_auth *a = mr_malloc(sizeof(*a));
    int rc;

    memset(&fresh, 0, sizeof(fresh));
    /* The whole file through the shop's own table, as at start: the same
     * parser and the same messages (file:line). */
    rc = mr_cfg_load(path, shop_cfg_opts, shop_cfg_n_opts, &fresh, err);
    if (rc == 0)
        rc = mr_auth_build(a, &fresh.auth_tokens, err);
    if (rc == 0 && a->n == 0 && s->cfg->faults_enabled)
        rc = mr_seterr(err, MR_ECONFIG, "%s: [auth] has no token left while [faults] is enabled", path);
    if (rc == 0) {
        /* One copy on the loop, between two requests: a check sees the old
         * table or the new one, never a mix. */
        s->auth = *a;
        s->auth_reloads++;
        mr_log(MR_LOG_INFO, "auth", "reload done: %zu token%s from %s", a->n, a->n == 1 ? "" : "s", path);
    } else {
        s->auth_reload_failures++;
    }
    mr_free(a);
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &fresh);
    return rc;
}

int shop_port(const struct shop *s)
{
    return http_server_port(s->server);
}

int shop_instance_port(const struct shop *s)
{
    return s->instance_server ? http_server_port(s->instance_server) : 0;
}

void shop_stop(struct shop *s)
{
    s->stopping = 1;
    http_server_close(s->server);
    if (s->instance_server)
        http_server_close(s->instance_server);
    s->instance_server = NULL;
    /* Held requests are answered (and discarded by the closed server). */
    shop__faults_stop(s);
    s->server = NULL;
    /* Cancels the calls in flight: their callbacks answer 503 into exchanges
     * the server discards. */
    http_client_free(s->client);
    s->client = NULL;
    /* Live connections hold their own reference to the context; the closed
     * listeners and the freed client make no new ones. */
    tls_ctx_free(s->tls_server);
    tls_ctx_free(s->tls_client);
    mr_free(s->node_host);
    mr_free(s);
}
