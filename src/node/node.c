/* node.c -- the node's lifecycle and what it knows about etcd: the log
 * head (probed every PROBE_MS with a linearizable read), member health
 * (every STATUS_MS), freshness and readiness. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "node_int.h"
#include "tables_int.h"

#define PROBE_MS 100

#define STATUS_MS 1000
#define TICK_MS 20
/* A watch that has delivered nothing for this long while the head is ahead
 * of the replica is presumed stuck (a member cut off without noticing). */
#define WATCH_STUCK_MS 3000

int64_t node__staleness_ms(const struct node *n)
{
    int64_t now = mr_now_ms();
    return now - (n->fresh_at_ms ? n->fresh_at_ms : n->started_ms);
}

int64_t node__entries_behind(const struct node *n)
{
    return n->head_version > n->pos.version ? n->head_version - n->pos.version : 0;
}

int node__ready(const struct node *n, char *why, size_t size)
{
    int64_t now = mr_now_ms();
    int64_t stale = node__staleness_ms(n);

    if (n->failed) {
        snprintf(why, size, "failed: %s", n->fail_reason);
        return 0;
    }
    if (n->stopping) {
        snprintf(why, size, "shutting down");
        return 0;
    }
    if (n->seeding) {
        snprintf(why, size, "seeding this replica from another region's snapshot (the log is "
                 "compacted past its position %lld)", (long long)n->pos.rev);
        return 0;
    }
    if (tables__recovering(n) != NULL) {
        snprintf(why, size, "%s", tables__recovering(n));
        return 0;
    }
    if (tables__catching_up(n, why, size))
        return 0;
    if (n->etcd_ok_ms == 0) {
        snprintf(why, size, "starting: no answer from etcd yet%s%s", n->etcd_error[0] ? ": " : "",
                 n->etcd_error);
        return 0;
    }
    if (now - n->etcd_ok_ms > n->cfg->max_lag_ms) {
        snprintf(why, size, "etcd unreachable for %lld ms: %s", (long long)(now - n->etcd_ok_ms),
                 n->etcd_error);
        return 0;
    }
    if (stale > n->cfg->max_lag_ms) {
        snprintf(why, size, "replica %lld ms behind (%lld entries); limit max_lag is %lld ms",
                 (long long)stale, (long long)node__entries_behind(n), (long long)n->cfg->max_lag_ms);
        return 0;
    }
    return 1;
}

void node__note_applied(struct node *n)
{
    if (n->probe_head_rev > 0 && n->pos.rev >= n->probe_head_rev) {
        if (n->probe_head_at_ms > n->fresh_at_ms)
            n->fresh_at_ms = n->probe_head_at_ms;
        n->probe_head_rev = 0;
    }
}

static void on_probe(int rc, const struct etcd_kv *kv, int64_t header_rev, const char *errmsg,
                     void *data)
{
    struct node *n = data;
    int64_t now = mr_now_ms();
    int64_t head = kv ? kv->mod_revision : 0;

    (void)header_rev;
    n->probe_inflight = 0;
    if (rc != 0) {
        snprintf(n->etcd_error, sizeof(n->etcd_error), "%s", errmsg ? errmsg : mr_strerror(rc));
        return;
    }
    mr_hist_observe(&n->stats.get_seconds, (double)(now - n->probe_sent_ms) / 1e3);
    n->etcd_ok_ms = now;
    if (kv && head >= n->head_rev) {
        n->head_rev = head;
        n->head_version = kv->version;
    }
    if (n->pos.rev >= head) {
        if (n->probe_sent_ms > n->fresh_at_ms)
            n->fresh_at_ms = n->probe_sent_ms;
        n->behind_since_ms = 0;
        return;
    }
    /* Fresh as of the probe once the replica reaches <head>. */
    n->probe_head_rev = head;
    n->probe_head_at_ms = n->probe_sent_ms;
    if (n->behind_since_ms == 0)
        n->behind_since_ms = now;
    /* Stuck: the head has been ahead for a while and nothing was applied
     * meanwhile (a member cut off or frozen keeps the stream open). */
    if (n->watch && now - n->behind_since_ms > WATCH_STUCK_MS &&
        now - n->applied_at_ms > WATCH_STUCK_MS && now - n->watch_started_ms > WATCH_STUCK_MS) {
        mr_log(MR_LOG_WARN, "apply", "log head is %lld, replica at %lld and the watch is silent: "
               "restarting it", (long long)head, (long long)n->pos.rev);
        n->behind_since_ms = 0;
        /* The restart uses the current endpoint: move it off the silent
         * member unless the probes have done so already. */
        if (strcmp(etcd_current_endpoint(n->etcd), n->watch_endpoint) == 0)
            etcd_failover(n->etcd, "silent watch");
        etcd_watch_cancel(n->watch);
    }
}

struct status_ctx {
    struct node *n;
    size_t i;
};

static void on_status(int rc, const struct etcd_member_status *st, void *data)
{
    struct status_ctx *c = data;
    struct node *n = c->n;

    n->members[c->i] = *st;
    if (c->i == 0)
        n->local_is_leader = rc == 0 && st->member_id == st->leader_id;
    n->status_inflight--;
    mr_free(c);
}

/* ---- log compaction --------------------------------------------------------
 *
 * Every compact_interval, each node announces its applied revision under /meridian/<cluster>/applied/
 * <region>; history below the smallest announced revision has been applied
 * everywhere and is compacted (once at least compact_min_step revisions can go).  A region that is down keeps its old
 * announcement, so it holds compaction back and finds its log intact when it
 * returns (etcd's quota bounds how long that can last).  Until as many regions
 * have announced as there are etcd endpoints (one member per region), nothing
 * is compacted: a region that has not started yet must find the whole log.
 * Any node may compact; compacting twice to one revision is harmless. */

static void compact_done(int rc, const char *errmsg, void *data)
{
    struct node *n = data;

    n->compact_inflight = 0;
    if (rc != 0) {
        mr_log(MR_LOG_WARN, "compact", "compaction failed: %s", errmsg ? errmsg : mr_strerror(rc));
        return;
    }
    n->stats.compactions++;
}

static void compact_markers(int rc, const struct etcd_kv *kvs, size_t count, const char *errmsg,
                            void *data)
{
    struct node *n = data;
    int64_t min = INT64_MAX, v;

    if (rc != 0 || n->stopping) {
        n->compact_inflight = 0;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if (mr_parse_i64(kvs[i].value, 0, INT64_MAX, &v) != 0) {
            mr_log(MR_LOG_WARN, "compact", "marker %s holds '%.32s', not a revision: not compacting",
                   kvs[i].key, kvs[i].value);
            n->compact_inflight = 0;
            return;
        }
        if (v < min)
            min = v;
    }
    (void)errmsg;
    if (count < etcd_n_endpoints(n->etcd) || min == INT64_MAX ||
        min - n->compacted_rev < n->cfg->compact_min_step) {
        n->compact_inflight = 0;
        return;
    }
    mr_log(MR_LOG_INFO, "compact", "every region has applied revision %lld: compacting the log below it",
           (long long)min);
    n->compacted_rev = min;
    if (etcd_compact(n->etcd, min, 10000, compact_done, n) != 0)
        n->compact_inflight = 0;
}

static void compact_published(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct node *n = data;

    (void)revision;
    (void)errmsg;
    if (rc != 0 || n->stopping) {
        n->compact_inflight = 0;
        return;
    }
    if (etcd_get_prefix(n->etcd, n->applied_prefix, 5000, compact_markers, n) != 0)
        n->compact_inflight = 0;
}

static void compact_step(struct node *n)
{
    char rev[32];
    int len;

    node__publish_url(n);
    if (n->seeding)
        return; /* position 0 or stale: announcing it would hold compaction back for nothing */
    n->compact_inflight = 1;
    n->last_compact_ms = mr_now_ms();
    len = snprintf(rev, sizeof(rev), "%lld", (long long)n->pos.rev);
    if (etcd_put(n->etcd, n->applied_key, rev, (size_t)len, 5000, compact_published, n) != 0)
        n->compact_inflight = 0;
}

static void on_probe_timer(uv_timer_t *t)
{
    struct node *n = t->data;
    int64_t now = mr_now_ms();

    if (!n->probe_inflight) {
        n->probe_inflight = 1;
        n->probe_sent_ms = now;
        if (etcd_get(n->etcd, n->log_key, 1000, on_probe, n) != 0)
            n->probe_inflight = 0;
    }
    if (!n->compact_inflight && now - n->last_compact_ms >= n->cfg->compact_interval_ms && n->pos.rev > 0)
        compact_step(n);
    if (n->status_inflight == 0 && now - n->last_status_ms >= STATUS_MS) {
        n->last_status_ms = now;
        for (size_t i = 0; i < etcd_n_endpoints(n->etcd); i++) {
            struct status_ctx *c = mr_malloc(sizeof(*c));
            c->n = n;
            c->i = i;
            n->status_inflight++;
            if (etcd_status(n->etcd, i, on_status, c) != 0) {
                n->status_inflight--;
                mr_free(c);
            }
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    int64_t now = mr_mono_us();

    if (n->failed) {
        node_stop(n);
        return;
    }
    if (n->reopen_due)
        node__store_reopen(n);
    node__commit_expire(n, now);
    node__waits_expire(n, now);
}

static int split_listen(const char *listen, char *host, size_t size, int *port, char *err)
{
    const char *colon = strrchr(listen, ':');
    int64_t p;

    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= size ||
        mr_parse_i64(colon + 1, 0, 65535, &p) != 0)
        return mr_seterr(err, MR_ECONFIG, "listen: expected host:port, found '%s'", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    *port = (int)p;
    return 0;
}

static void init_stats(struct node_stats *s)
{
    memset(s, 0, sizeof(*s));
    for (int r = 0; r < ROUTE_COUNT; r++)
        mr_hist_init(&s->latency[r], mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&s->batch_txns, mr_hist_size_bounds, mr_hist_size_n);
    mr_hist_init(&s->put_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&s->get_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&s->commit_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&s->apply_lag_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
}

int node_start(uv_loop_t *loop, const struct node_cfg *cfg, struct node **out, char *err)
{
    struct http_server_opts hopts;
    struct node *n;
    char host[256], *dbpath;
    int port = 0, rc;

    rc = split_listen(cfg->listen, host, sizeof(host), &port, err);
    if (rc != 0)
        return rc;
    rc = node__dashboard_check_config(cfg, err);
    if (rc == 0)
        rc = node__tls_check_config(cfg, 0, err);   /* the files are read below */
    if (rc != 0)
        return rc;
    if (mkdir(cfg->data_dir, 0755) != 0 && errno != EEXIST)
        return mr_seterr(err, MR_EIO, "data_dir %s: %s", cfg->data_dir, strerror(errno));

    n = mr_calloc(1, sizeof(*n));
    n->loop = loop;
    n->cfg = cfg;
    n->started_ms = mr_now_ms();
    init_stats(&n->stats);
    snprintf(n->log_key, sizeof(n->log_key), "/meridian/%s/log", cfg->cluster);
    snprintf(n->applied_prefix, sizeof(n->applied_prefix), "/meridian/%s/applied/", cfg->cluster);
    snprintf(n->applied_key, sizeof(n->applied_key), "%s%s", n->applied_prefix, cfg->region);
    snprintf(n->nodes_prefix, sizeof(n->nodes_prefix), "/meridian/%s/nodes/", cfg->cluster);
    snprintf(n->nodes_key, sizeof(n->nodes_key), "%s%s", n->nodes_prefix, cfg->region);
    /* Start the first compaction round a while after start-up, not at once. */
    n->last_compact_ms = mr_now_ms();
    snprintf(n->txn_prefix, sizeof(n->txn_prefix), "%s.%08" PRIx64 ".", cfg->region,
             mr_random64() & 0xffffffffu);

    rc = node__auth_build(cfg, &n->auth, &n->auth_enforce, err);
    if (rc == 0)
        rc = node__tls_start(n, err);
    if (rc != 0)
        goto err_after_alloc;
    (void)node__peer_token_set(n, cfg->auth_peer_token);
    if (!n->auth_enforce)
        mr_log(MR_LOG_WARN, "auth", "the SQL and table APIs are open to anyone who can reach %s "
               "([auth] has no token, or required = no; docs/security.md)", cfg->listen);

    dbpath = mr_asprintf("%s/meridian.db", cfg->data_dir);
    rc = node__store_open(n, dbpath, &n->store, err);
    mr_free(dbpath);
    if (rc != 0)
        goto err_after_alloc;
    store_position(n->store, &n->pos);

    {
        struct etcd_opts eo = {cfg->etcd, (uint64_t)cfg->etcd_timeout_ms, ETCD_TRANSPORT_GATEWAY};
        rc = etcd_transport_parse(cfg->etcd_transport, &eo.transport);
        if (rc != 0)
            mr_seterr(err, MR_ECONFIG, "[node] etcd_transport: expected gateway or grpc, found '%s'",
                      cfg->etcd_transport);
        else if (http_url_is_https(cfg->etcd))
            rc = etcd_new_tls(loop, &eo, n->tls_client, &n->etcd, err);   /* checked: [tls] is set */
        else
            rc = etcd_new_opts(loop, &eo, &n->etcd, err);
    }
    if (rc != 0)
        goto err_after_store;
    rc = node__tables_start(n, err);
    if (rc != 0)
        goto err_after_etcd;

    http_server_opts_default(&hopts);
    hopts.max_body_bytes = (size_t)cfg->max_body;
    hopts.max_connections = (size_t)cfg->max_connections;
    hopts.max_header_bytes = (size_t)cfg->max_header_bytes;
    hopts.max_headers = (size_t)cfg->max_headers;
    hopts.header_timeout_ms = (uint64_t)cfg->header_timeout_ms;
    hopts.idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms;
    hopts.server_name = "meridian-node";
    hopts.tls = n->tls_server;   /* NULL: plain HTTP */
    rc = http_server_start(loop, host, port, &hopts, node__handle, n, &n->http, err);
    if (rc != 0) {
        mr_wraperr(err, rc, "listen on %s", cfg->listen);
        goto err_after_tables;
    }

    if (strcmp(cfg->advertise_url, "auto") == 0)
        snprintf(n->advertise_url, sizeof(n->advertise_url), "%s://%.200s:%d",
                 n->tls_server ? "https" : "http", host, http_server_port(n->http));
    else
        snprintf(n->advertise_url, sizeof(n->advertise_url), "%.255s", cfg->advertise_url);
    node__seed_init(n);
    node__commit_init(n);
    node__apply_start(n);
    if (n->tables->http == NULL) {
        /* The table streams make their client on first use with no
         * credentials; made here first, it carries [auth] peer_token. */
        struct http_client_opts o;
        node__client_opts(n, &o);
        o.max_idle_per_host = 1;
        if (http_client_new(loop, &o, &n->tables->http) != 0)
            n->tables->http = NULL;
    }
    node__tables_run(n);
    node__dashboard_start(n);
    node__publish_url(n);
    uv_timer_init(loop, &n->probe_timer);
    n->probe_timer.data = n;
    uv_timer_start(&n->probe_timer, on_probe_timer, 0, PROBE_MS);
    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    mr_log(MR_LOG_INFO, "node", "region %s serving %s on %s:%d, applied revision %lld, etcd %s",
           cfg->region, n->tls_server ? "TLS" : "plain HTTP", host, http_server_port(n->http),
           (long long)n->pos.rev, cfg->etcd);
    *out = n;
    return 0;

err_after_tables:
    node__tables_free(n);
err_after_etcd:
    etcd_free(n->etcd);
err_after_store:
    store_close(n->store);
err_after_alloc:
    node__tls_free(n);
    mr_free(n);
    return rc;
}

int node_port(const struct node *n)
{
    return http_server_port(n->http);
}

int node_failed(const struct node *n, const char **why)
{
    if (why)
        *why = n->fail_reason;
    return n->failed;
}

void node_stop(struct node *n)
{
    if (n->stopping)
        return;
    n->stopping = 1;
    mr_log(MR_LOG_INFO, "node", "stopping at applied revision %lld", (long long)n->pos.rev);
    uv_timer_stop(&n->probe_timer);
    uv_close((uv_handle_t *)&n->probe_timer, NULL);
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, NULL);
    node__commit_close(n);
    node__apply_close(n);
    node__seed_close(n);
    node__tables_close(n);
    node__dashboard_close(n);
    http_server_close(n->http);
    n->http = NULL;
    etcd_free(n->etcd);
    n->etcd = NULL;
}

void node_free(struct node *n)
{
    node__commit_free(n);
    node__seed_free(n);
    node__tables_free(n);
    node__dashboard_free(n);
    store_close(n->store);
    node__tls_free(n);   /* last: the server, clients and etcd used them */
    mr_free(n);
}
