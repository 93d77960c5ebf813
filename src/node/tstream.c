/* tstream.c -- global tables between regions: peers, the stream of this
 * region's change log to each of them, the receiving end, log trimming and
 * tombstone collection.  Wire format: tables_int.h.
 *
 * Peers are the other regions' nodes: their addresses come from etcd
 * (/meridian/<cluster>/nodes/<region>, which every node publishes, see
 * seed.c), polled every TABLES_DISCOVER_MS, unless [tables] peers names a
 * URL for the region (so that `meridian up` can route the streams through
 * the emulated WAN).  To each peer, this region pushes only its OWN log, over
 * one keep-alive connection, one batch in flight at a time; the answer
 * carries the peer's applied vector, so a stream resumes at the peer's
 * position after a restart, a cut or an absence on either side.  Full mesh:
 * every region hears every origin from the origin itself.
 *
 * Trimming: entries every peer has applied go; past tables_log_retention
 * entries the oldest go anyway, and a peer below the retained log can only
 * be seeded from a snapshot (not implemented yet: it is reported in
 * /v1/status and metrics; see docs/tables.md).
 *
 * Tombstones (gc_step): a delete (origin O, seq s) is collected once every
 * peer P reported vector_P[O] >= s, and this region has applied P's log up
 * to the head P reported in that same answer: every version P wrote before
 * it saw the delete is then here already, so nothing older can resurrect
 * the item.  Two phases (an epoch): snapshot the reports, then wait until
 * the heads are applied here, then collect.
 *
 * Inert crdt tombstones (deleted items whose deletes observed all they held,
 * decision 044) have no single delete to wait for: their state is a join.
 * A round is armed with this region's whole applied vector (own head
 * included) and the store's tombstone number; when every peer reports a
 * vector at or above it, every region holds at least those states, and
 * once the heads of those reports are applied here, the tombstones stored
 * before the arming and unchanged since go.  Whatever arrives later was
 * written after its region had them, or fresh after collecting them: joined
 * with an inert state, either shows the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "tables_int.h"

static void peer_send(struct tables_peer *p);
static void seed_start(struct node *n, const char *origin, uint64_t log_first);
static void recovery_begin(struct node *n, const char *why);

/* ---- peers ------------------------------------------------------------------- */

static struct tables_peer *peer_find(const struct tables *t, const char *region)
{
    for (size_t i = 0; i < t->n_peers; i++)
        if (strcmp(t->peers[i]->region, region) == 0)
            return t->peers[i];
    return NULL;
}

/* Its last attempts failed: writes from it are unlikely to arrive soon. */
static int out_of_reach(const struct tables_peer *p)
{
    return p->fails > 0;
}

static void peer_set_url(struct tables_peer *p, const char *url)
{
    char *host = NULL, *path = NULL, err[MR_ERRMSG_LEN];
    int port;

    if (strcmp(p->url, url) == 0)
        return;
    if (http_parse_url(url, &host, &port, &path, err) != 0) {
        mr_log(MR_LOG_WARN, "tables", "peer %s: address '%.200s': %s", p->region, url, err);
    } else {
        snprintf(p->url, sizeof(p->url), "%s", url);
        snprintf(p->host, sizeof(p->host), "%s", host);
        p->port = port;
        p->known = 0; /* a new address may be a new incarnation: ask first */
        mr_log(MR_LOG_INFO, "tables", "peer %s at %s", p->region, url);
    }
    mr_free(host);
    mr_free(path);
}

static struct tables_peer *peer_add(struct node *n, const char *region, const char *url, int from_config)
{
    struct tables *t = n->tables;
    struct tables_peer *p;

    if (t->n_peers == TABLES_MAX_PEERS || !mr_token_origin_valid(region, strlen(region)) ||
        strlen(region) >= sizeof(p->region))
        return NULL;
    p = mr_calloc(1, sizeof(*p));
    p->n = n;
    snprintf(p->region, sizeof(p->region), "%s", region);
    p->from_config = from_config;
    p->sent_ts = mr_calloc((size_t)n->cfg->tables_batch_entries, sizeof(*p->sent_ts));
    mr_hist_init(&p->lag, mr_hist_latency_bounds, mr_hist_latency_n);
    peer_set_url(p, url);
    t->peers[t->n_peers++] = p;
    return p;
}

static void on_listed(int rc, const struct etcd_kv *kvs, size_t count, const char *errmsg, void *data)
{
    struct node *n = data;
    struct tables *t = n->tables;
    size_t plen = strlen(n->nodes_prefix);

    if (t == NULL)
        return;
    t->discover_inflight = 0;
    if (rc != 0 || n->stopping)
        return;
    (void)errmsg;
    t->discovered = 1;
    for (size_t i = 0; i < count; i++) {
        const char *region = kvs[i].key + plen;
        char url[256];
        struct tables_peer *p;
        if (kvs[i].key_len <= plen || strcmp(region, n->cfg->region) == 0 ||
            kvs[i].value_len >= sizeof(url))
            continue;
        snprintf(url, sizeof(url), "%.*s", (int)kvs[i].value_len, kvs[i].value);
        p = peer_find(t, region);
        if (p == NULL)
            p = peer_add(n, region, url, 0);
        else if (!p->from_config)
            peer_set_url(p, url);
        if (p)
            p->listed = 1;
    }
    tables__stream_kick(n);
}

static void discover(struct node *n)
{
    struct tables *t = n->tables;
    int64_t now = mr_now_ms();

    if (t->discover_inflight || n->etcd == NULL || now - t->last_discover_ms < TABLES_DISCOVER_MS)
        return;
    t->last_discover_ms = now;
    if (t->n_peers == 0 && strcmp(n->cfg->tables_peers, "none") != 0) {
        char regions[TABLES_MAX_PEERS][64], urls[TABLES_MAX_PEERS][256], err[MR_ERRMSG_LEN];
        size_t np = 0;
        if (node__tables_parse_peers(n->cfg->tables_peers, regions, urls, TABLES_MAX_PEERS, &np, err) == 0)
            for (size_t i = 0; i < np; i++)
                if (strcmp(regions[i], n->cfg->region) != 0)
                    peer_add(n, regions[i], urls[i], 1);
    }
    t->discover_inflight = 1;
    if (etcd_get_prefix(n->etcd, n->nodes_prefix, 2000, on_listed, n) != 0)
        t->discover_inflight = 0;
}

/* ---- sending ------------------------------------------------------------------ */

static void peer_failed(struct tables_peer *p, const char *why)
{
    int64_t backoff = TABLES_RETRY_MIN_MS << (p->fails < 5 ? p->fails : 5);

    if (backoff > TABLES_RETRY_MAX_MS)
        backoff = TABLES_RETRY_MAX_MS;
    if (p->fails == 0)
        mr_log(MR_LOG_WARN, "tables", "stream to %s (%s): %s; retrying", p->region, p->url, why);
    p->fails++;
    p->send_errors++;
    p->retry_at_ms = mr_now_ms() + backoff;
    p->known = 0;
}

int tables__peer_unreachable(const struct node *n, const char *region)
{
    const struct tables_peer *p = peer_find(n->tables, region);

    return p != NULL && out_of_reach(p);
}

/* Remember <vec> (the peer's applied vector) and its head. */
static void peer_report(struct tables_peer *p, const json_t *body)
{
    json_t *vec = json_object_get(body, "vector"), *v;
    const char *o;

    p->n_report = 0;
    json_object_foreach(vec, o, v) {
        if (p->n_report == GTAB_MAX_ORIGINS || strlen(o) >= 64)
            break;
        snprintf(p->report_origin[p->n_report], 64, "%s", o);
        p->report_seq[p->n_report++] = gtab_json_u64(vec, o);
    }
    p->report_head = gtab_json_u64(body, "head");
    p->has_report = 1;
}

static void on_sent(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct tables_peer *p = data;
    struct node *n = p->n;
    json_t *body = NULL, *vec;
    int64_t now = mr_now_ms();
    char why[96];

    (void)call;
    p->call = NULL;
    if (n->stopping || n->tables == NULL)
        return;
    if (rc != 0) {
        if (rc != MR_ECLOSED || !p->paused)
            peer_failed(p, mr_strerror(rc));
        return;
    }
    if (resp->status == 200 || resp->status == 409)
        body = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    vec = json_object_get(body, "vector");
    if (!json_is_object(vec)) {
        snprintf(why, sizeof(why), "answer HTTP %d without a vector", resp->status);
        peer_failed(p, why);
        json_decref(body);
        return;
    }
    peer_report(p, body);
    if (resp->status == 200 && p->n_sent) {
        for (size_t i = 0; i < p->n_sent; i++)
            mr_hist_observe(&p->lag, (double)(now - p->sent_ts[i]) / 1e3);
        p->last_lag_ms = now - p->sent_ts[p->n_sent - 1];
        p->entries_sent += p->n_sent;
    }
    if (resp->status == 409)
        n->tables->gaps++;
    p->acked = gtab_json_u64(vec, n->cfg->region);
    p->known = 1;
    if (p->acked > n->tables->committed_head && !n->tables->recovering) {
        mr_log(MR_LOG_ERROR, "tables", "%s has applied this region's log up to position %" PRIu64 " but this "
               "store's head is %" PRIu64 ": it lost writes it had acknowledged (a disk restored from an "
               "older copy?); local writes are refused until it has recovered them from the peers. Writes "
               "acknowledged here since the start at positions up to %" PRIu64 " are not replicated "
               "(docs/tables.md)", p->region, p->acked, n->tables->committed_head, p->acked);
        recovery_begin(n, "a peer holds more of this region's log than this store");
    }
    if (p->fails)
        mr_log(MR_LOG_INFO, "tables", "stream to %s resumed at position %" PRIu64, p->region, p->acked + 1);
    p->fails = 0;
    json_decref(body);
    if (resp->status == 409 && p->needs_seed) {
        p->retry_at_ms = now + TABLES_RETRY_MIN_MS; /* it is seeding itself: ask again soon */
        return;
    }
    if (!p->paused && p->acked < n->tables->committed_head)
        peer_send(p);
}

static void peer_send(struct tables_peer *p)
{
    struct node *n = p->n;
    struct tables *t = n->tables;
    struct http_client_request req;
    char err[MR_ERRMSG_LEN];
    struct mr_buf body;
    uint64_t last = 0;
    int entries;

    if (p->call || p->paused || p->port == 0 || t->http == NULL)
        return;
    p->n_sent = 0;
    entries = p->known && p->acked < t->committed_head;
    if (entries && p->acked + 1 < gtab_log_first(t->g)) {
        if (!p->needs_seed)
            mr_log(MR_LOG_ERROR, "tables", "peer %s is at position %" PRIu64 " of this region's "
                   "log, which now starts at %" PRIu64 ": it must be seeded from a snapshot",
                   p->region, p->acked, gtab_log_first(t->g));
        p->needs_seed = 1;
        entries = 0;
    } else if (entries) {
        p->needs_seed = 0;
    }
    mr_buf_init(&body);
    if (gtab_batch_write(t->g, n->cfg->region, p->known ? p->acked + 1 : 1, t->committed_head, entries,
                         (size_t)n->cfg->tables_batch_entries, (size_t)n->cfg->tables_batch_bytes, &body,
                         p->sent_ts, &p->n_sent, &last, err) != 0) {
        node__fail(n, "global tables: %s", err);
        mr_buf_close(&body);
        return;
    }
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.host = p->host;
    req.port = p->port;
    req.path = "/v1/tables/_replicate";
    req.headers = "Content-Type: application/json\r\n";
    req.body = body.data;
    req.body_len = body.len;
    req.timeout_ms = TABLES_CALL_TIMEOUT_MS;
    p->last_sent_ms = mr_now_ms();
    if (http_client_request(t->http, &req, on_sent, p, &p->call) != 0) {
        p->call = NULL;
        peer_failed(p, "cannot start the request");
    } else {
        p->bytes_sent += body.len;
        p->batches_sent++;
    }
    mr_buf_close(&body);
}

void tables__stream_kick(struct node *n)
{
    struct tables *t = n->tables;
    int64_t now = mr_now_ms();

    if (n->stopping || t == NULL)
        return;
    for (size_t i = 0; i < t->n_peers; i++) {
        struct tables_peer *p = t->peers[i];
        if (p->call || p->paused || now < p->retry_at_ms)
            continue;
        if (!p->known || p->acked < t->committed_head || now - p->last_sent_ms >= TABLES_HEARTBEAT_MS)
            peer_send(p);
    }
}

/* ---- trimming and tombstones ---------------------------------------------------- */

static void trim_step(struct node *n)
{
    struct tables *t = n->tables;
    uint64_t head = t->committed_head, upto = head, keep = (uint64_t)n->cfg->tables_log_retention;
    char err[MR_ERRMSG_LEN];

    for (size_t i = 0; i < t->n_peers; i++) {
        struct tables_peer *p = t->peers[i];
        uint64_t at = p->known ? p->acked : 0;
        if (at < upto)
            upto = at;
    }
    if (t->n_peers == 0)
        upto = 0; /* a region that joins later finds the whole log */
    if (head > keep && upto < head - keep)
        upto = head - keep;
    if (upto <= t->trimmed_upto)
        return;
    if (gtab_log_trim(t->g, upto, err) != 0) {
        node__fail(n, "global tables: trim: %s", err);
        return;
    }
    t->trimmed_upto = upto;
}

/* Arm the inert round when it is not (see the top of this file); then
 * whether the reports just taken (gc_stable) cover what it had. */
static int inert_round(struct tables *t, const char *region)
{
    size_t i, k;

    if (!t->inert_armed) {
        t->inert_gen = gtab_inert_gen(t->g);
        snprintf(t->inert_origin[0], 64, "%s", region);
        t->inert_at[0] = gtab_head(t->g);
        t->inert_n = 1;
        for (i = 0; i < gtab_n_origins(t->g) && t->inert_n <= GTAB_MAX_ORIGINS; i++) {
            const char *o = gtab_origin_at(t->g, i);
            if (strcmp(o, region) == 0)
                continue; /* its head is above */
            snprintf(t->inert_origin[t->inert_n], 64, "%s", o);
            t->inert_at[t->inert_n++] = gtab_applied(t->g, o);
        }
        t->inert_armed = 1;
        return 0;
    }
    for (i = 0; i < t->inert_n; i++) {
        if (t->inert_at[i] == 0)
            continue;
        for (k = 0; k < t->gc_n && strcmp(t->gc_origin[k], t->inert_origin[i]); k++)
            ;
        if (k == t->gc_n || t->gc_stable[k] < t->inert_at[i])
            return 0;
    }
    return 1;
}

static void gc_step(struct node *n)
{
    struct tables *t = n->tables;
    const char *origins[GTAB_MAX_ORIGINS];
    char err[MR_ERRMSG_LEN];
    uint64_t removed = 0;
    size_t i, j, k;

    if (!t->gc_active) {
        /* Phase 1: every peer's last report, and the positions it covers. */
        if (t->n_peers == 0)
            return;
        for (i = 0; i < t->n_peers; i++)
            if (!t->peers[i]->has_report)
                return;
        t->gc_n = 0;
        for (i = 0; i < t->n_peers; i++) {
            struct tables_peer *p = t->peers[i];
            for (j = 0; j < p->n_report && t->gc_n < GTAB_MAX_ORIGINS; j++) {
                for (k = 0; k < t->gc_n && strcmp(t->gc_origin[k], p->report_origin[j]); k++)
                    ;
                if (k == t->gc_n) {
                    snprintf(t->gc_origin[k], 64, "%s", p->report_origin[j]);
                    t->gc_stable[k] = gtab_applied(t->g, p->report_origin[j]);
                    t->gc_n++;
                }
            }
        }
        for (k = 0; k < t->gc_n; k++)
            for (i = 0; i < t->n_peers; i++) {
                struct tables_peer *p = t->peers[i];
                uint64_t v = 0;
                for (j = 0; j < p->n_report; j++)
                    if (strcmp(p->report_origin[j], t->gc_origin[k]) == 0)
                        v = p->report_seq[j];
                if (v < t->gc_stable[k])
                    t->gc_stable[k] = v;
            }
        t->gc_n_peers = t->n_peers;
        for (i = 0; i < t->n_peers; i++) {
            snprintf(t->gc_peer[i], 64, "%s", t->peers[i]->region);
            t->gc_need[i] = t->peers[i]->report_head;
        }
        t->gc_inert = inert_round(t, n->cfg->region);
        t->gc_active = 1;
        return;
    }
    /* Phase 2: once every peer's writes up to its reported head are here. */
    if (t->gc_n_peers != t->n_peers) {
        t->gc_active = 0;
        return;
    }
    for (i = 0; i < t->gc_n_peers; i++)
        if (gtab_applied(t->g, t->gc_peer[i]) < t->gc_need[i])
            return;
    for (k = 0; k < t->gc_n; k++)
        origins[k] = t->gc_origin[k];
    if (gtab_collect(t->g, origins, t->gc_stable, t->gc_n, &removed, err) != 0) {
        node__fail(n, "global tables: collect tombstones: %s", err);
        return;
    }
    t->collected += removed;
    if (t->gc_inert) {
        if (gtab_collect_inert(t->g, t->inert_gen, &removed, err) != 0) {
            node__fail(n, "global tables: collect tombstones: %s", err);
            return;
        }
        t->collected += removed;
        t->inert_armed = 0;
    }
    t->gc_active = 0;
}

/* ---- recovering this region's own log ------------------------------------------- */

static void recovery_begin(struct node *n, const char *why)
{
    struct tables *t = n->tables;

    t->recovering = 1;
    t->recover_seeded = 0;
    t->recover_from[0] = '\0';
    t->recover_head = 0;
    snprintf(t->recover_why, sizeof(t->recover_why), "%s", why);
}

const char *tables__recovering(const struct node *n)
{
    return n->tables && n->tables->recovering ? n->tables->recover_why : NULL;
}

void tables__note_caught_up(struct node *n, const char *origin, uint64_t head)
{
    struct tables_peer *p = peer_find(n->tables, origin);

    /* From a region not yet listed: its next batch (a heartbeat at least)
     * counts once it is. */
    if (p != NULL && gtab_applied(n->tables->g, origin) >= head)
        p->caught_up = 1;
}

int tables__catching_up(const struct node *n, char *why, size_t size)
{
    const struct tables *t = n->tables;

    if (t == NULL || mr_now_ms() - n->started_ms > TABLES_CATCH_UP_MAX_MS)
        return 0;
    /* Until etcd has listed the regions, the peers are not all known: ready
     * now would turn unready when they are (a flap the edges would follow). */
    if (!t->discovered) {
        snprintf(why, size, "finding the other regions' global tables (etcd's list of nodes)");
        return 1;
    }
    for (size_t i = 0; i < t->n_peers; i++) {
        const struct tables_peer *p = t->peers[i];
        /* A peer out of reach cannot be waited for. */
        if (out_of_reach(p) || p->caught_up)
            continue;
        snprintf(why, size, "catching up with the global-table writes of %s", p->region);
        return 1;
    }
    return 0;
}

/* Every peer has told how much of this region's log it applied: when one
 * holds more than this store, join its snapshot (which holds the items of
 * those entries) and move the head past that position; then take writes. */
static void recovery_step(struct node *n)
{
    struct tables *t = n->tables;
    struct tables_peer *best = NULL;
    char err[MR_ERRMSG_LEN];
    int rc;

    if (!t->recovering || !t->discovered || t->seeding)
        return;
    for (size_t i = 0; i < t->n_peers; i++) {
        struct tables_peer *p = t->peers[i];
        /* A region in [tables] peers that never published itself in etcd
         * never ran, so holds nothing of ours: not worth waiting for (and
         * nodes started one after the other would wait for each other). */
        if (!p->known && !p->listed)
            continue;
        if (!p->known) {
            snprintf(t->recover_why, sizeof(t->recover_why), "waiting for %s to say how much of this "
                     "region's global-table log it holds", p->region);
            return;
        }
        if (best == NULL || p->acked > best->acked)
            best = p;
    }
    if (best == NULL || best->acked <= t->committed_head) {
        t->recovering = 0;
        mr_log(MR_LOG_INFO, "tables", "no peer holds more of this region's log than position %" PRIu64
               ": local writes accepted", t->committed_head);
        return;
    }
    if (!t->recover_seeded || strcmp(t->recover_from, best->region) != 0) {
        if (mr_now_ms() < t->recover_next_ms)
            return;   /* the last download failed a moment ago */
        snprintf(t->recover_from, sizeof(t->recover_from), "%s", best->region);
        t->recover_seeded = 0;
        snprintf(t->recover_why, sizeof(t->recover_why), "recovering this region's global-table items "
                 "from %s's snapshot (it holds this region's log up to %" PRIu64 ", this store %" PRIu64 ")",
                 best->region, best->acked, t->committed_head);
        mr_log(MR_LOG_WARN, "tables", "%s", t->recover_why);
        t->recover_next_ms = mr_now_ms() + TABLES_RETRY_MAX_MS;   /* a failed download is retried then */
        seed_start(n, best->region, 0);
        return;
    }
    t->recover_head = best->acked;
    /* Durable before any write takes a position after it. */
    rc = gtab_skip_head(t->g, best->acked, err);
    if (rc == 0)
        rc = tables__flush_durable(n, err);
    if (rc != 0) {
        node__fail(n, "global tables: recovering the head: %s", err);
        return;
    }
    t->trimmed_upto = gtab_head(t->g);
    t->recovering = 0;
    t->recoveries++;
    mr_log(MR_LOG_WARN, "tables", "recovered: %s's snapshot joined, this region's log continues after "
           "position %" PRIu64 "; local writes accepted", best->region, t->committed_head);
    tables__stream_kick(n);
}

void tables__stream_tick(struct node *n)
{
    struct tables *t = n->tables;
    int64_t now = mr_now_ms();

    if (t->http == NULL) {
        struct http_client_opts o;
        node__client_opts(n, &o);   /* peer_token, and TLS with [tls] */
        o.max_idle_per_host = 1;
        if (http_client_new(n->loop, &o, &t->http) != 0) {
            node__fail(n, "global tables: cannot create the HTTP client");
            return;
        }
    }
    discover(n);
    recovery_step(n);
    tables__stream_kick(n);
    if (now - t->last_sweep_ms < TABLES_TICK_MS) {
        /* Same cadence as the TTL sweep (tables.c just ran it). */
        trim_step(n);
        gc_step(n);
    }
}

void tables__stream_close(struct node *n)
{
    struct tables *t = n->tables;

    if (t->http) {
        /* on_sent and seed_done run with MR_ECLOSED and see <stopping>. */
        http_client_free(t->http);
        t->http = NULL;
    }
    tables__seed_abort(t);
}

void tables__peers_free(struct node *n)
{
    struct tables *t = n->tables;

    for (size_t i = 0; i < t->n_peers; i++) {
        mr_free(t->peers[i]->sent_ts);
        mr_free(t->peers[i]);
        t->peers[i] = NULL;
    }
    t->n_peers = 0;
}

/* ---- seeding ----------------------------------------------------------------------- */

/* The snapshot's bytes go to the file as they arrive (never whole in
 * memory); a failed write closes it, and the download then counts as failed. */
static void seed_body(struct http_call *call, const char *p, size_t len, void *data)
{
    struct tables *t = ((struct node *)data)->tables;

    (void)call;
    if (t->seed_fd != -1) {
        int e = mr_write_all(t->seed_fd, p, len);
        if (e != 0) {
            mr_log(MR_LOG_WARN, "tables", "snapshot from %s: write %s: %s", t->seed_origin, t->seed_path,
                   strerror(e));
            close(t->seed_fd);
            t->seed_fd = -1;   /* seed_done: the download failed */
            return;
        }
        t->seed_bytes += (uint64_t)len;
    }
}

void tables__seed_abort(struct tables *t)
{
    if (t->seed_fd != -1) {
        close(t->seed_fd);
        t->seed_fd = -1;
        unlink(t->seed_path);
    }
}

static void seed_done(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct node *n = data;
    struct tables *t = n->tables;
    char err[MR_ERRMSG_LEN] = "";
    uint64_t items = 0;
    int written;

    (void)call;
    if (t == NULL || n->stopping) {
        if (t)
            tables__seed_abort(t);
        return;
    }
    t->seed_call = NULL;
    t->seeding = 0;
    written = t->seed_fd != -1;
    if (t->seed_fd != -1 && close(t->seed_fd) != 0)
        written = 0;
    t->seed_fd = -1;
    if (rc != 0 || resp->status != 200 || t->seed_bytes == 0) {
        mr_log(MR_LOG_WARN, "tables", "snapshot from %s failed: %s (retried on its next batch)", t->seed_origin,
               rc ? mr_strerror(rc) : "bad answer");
        unlink(t->seed_path);
        return;
    }
    if (!written) {
        mr_log(MR_LOG_WARN, "tables", "snapshot from %s: cannot write %s", t->seed_origin, t->seed_path);
    } else if (gtab_merge_snapshot(t->g, t->seed_path, &items, err) != 0) {
        mr_log(MR_LOG_WARN, "tables", "snapshot from %s not merged: %s", t->seed_origin, err);
    } else {
        t->seeds++;
        mr_log(MR_LOG_INFO, "tables", "seeded from %s's snapshot (%" PRIu64 " bytes, %" PRIu64 " items): its "
               "position here is now %" PRIu64, t->seed_origin, t->seed_bytes, items,
               gtab_applied(t->g, t->seed_origin));
        if (t->recovering && strcmp(t->seed_origin, t->recover_from) == 0)
            t->recover_seeded = 1;
    }
    unlink(t->seed_path);
}

/* Download <origin>'s snapshot and join it into the store (once at a time). */
static void seed_start(struct node *n, const char *origin, uint64_t log_first)
{
    struct tables *t = n->tables;
    struct tables_peer *p = peer_find(t, origin);
    struct http_client_request req;

    if (t->seeding || p == NULL || p->port == 0 || t->http == NULL)
        return;
    if (log_first > 0)   /* 0: recovering this region's own items (recovery_step) */
        mr_log(MR_LOG_WARN, "tables", "%s's log now starts at %" PRIu64 " and this region applied it up to %"
               PRIu64 ": seeding from its snapshot", origin, log_first, gtab_applied(t->g, origin));
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.host = p->host;
    req.port = p->port;
    req.path = "/v1/tables/_snapshot";
    req.timeout_ms = 60000;
    req.on_body = seed_body;
    snprintf(t->seed_origin, sizeof(t->seed_origin), "%s", origin);
    snprintf(t->seed_path, sizeof(t->seed_path), "%s/tables-seed.db.part", n->cfg->data_dir);
    t->seed_fd = open(t->seed_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->seed_fd == -1) {
        mr_log(MR_LOG_WARN, "tables", "cannot download %s's snapshot: open %s: %s", origin, t->seed_path,
               strerror(errno));
        return;
    }
    t->seed_bytes = 0;
    if (http_client_request(t->http, &req, seed_done, n, &t->seed_call) == 0)
        t->seeding = 1;
    else
        tables__seed_abort(t);
}

void tables__snapshot_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr)
{
    struct tables *t = n->tables;
    char err[MR_ERRMSG_LEN] = "", *path, hdr[96];
    struct stat st;
    int rc;

    /* The copy holds durable state only: a peer seeded from it raises its
     * vector to our head, which must never be lost (and reused) here. */
    rc = tables__flush_durable(n, err);
    path = mr_asprintf("%s/tables-snap-%016" PRIx64 ".db", n->cfg->data_dir, mr_random64());
    if (rc == 0)
        rc = gtab_backup(t->g, path, err);
    snprintf(hdr, sizeof(hdr), "Meridian-Tables-Head: %" PRIu64 "\r\n", gtab_head(t->g));
    if (rc == 0 && stat(path, &st) != 0)
        rc = mr_seterr(err, MR_EIO, "stat %s: %s", path, strerror(errno));
    /* Streamed from the file as the peer reads: never whole in memory. */
    if (rc == 0)
        rc = node__serve_file(n, ex, path, "application/vnd.sqlite3", hdr, err);
    else
        unlink(path);
    mr_free(path);
    if (rc != 0) {
        node__respond_error(n, ex, ROUTE_OTHER, hr->received_us, 500, "internal", err, NULL);
        return;
    }
    t->snapshots_served++;
    n->stats.requests[ROUTE_OTHER][2]++;
    mr_log(MR_LOG_INFO, "tables", "serving a tables snapshot (%lld bytes, head %" PRIu64 ")", (long long)st.st_size,
           gtab_head(t->g));
}

/* ---- receiving ------------------------------------------------------------------- */

void tables__replicate_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr)
{
    struct tables *t = n->tables;
    char err[MR_ERRMSG_LEN];
    struct tables_reply *r;
    struct gtab_batch b;
    size_t applied = 0;
    int rc;

    rc = gtab_batch_parse(hr->body, hr->body_len, &b, err);
    if (rc == 0 && gtab_applied(t->g, b.origin) + 1 < b.log_first) {
        /* The sender no longer has what this region misses of its log. */
        seed_start(n, b.origin, b.log_first);
        rc = MR_EPROTO;
    } else if (rc == 0) {
        rc = gtab_apply_batch(t->g, b.origin, b.from, b.entries, &applied, err);
        if (rc == 0)
            tables__note_caught_up(n, b.origin, b.head);
    }
    if (b.doc)
        gtab_batch_close(&b);
    if (rc == MR_EIO) {
        node__fail(n, "global tables: apply: %s", err);
        node__respond_error(n, ex, ROUTE_TABLE_REPLICATE, hr->received_us, 503, "failed", err, NULL);
        return;
    }
    if (rc != 0 && rc != MR_EPROTO) {
        mr_log(MR_LOG_WARN, "tables", "replication batch refused: %s", err);
        node__respond_error(n, ex, ROUTE_TABLE_REPLICATE, hr->received_us, 400, "invalid_request", err, NULL);
        return;
    }
    t->batches_received++;
    t->entries_applied += applied;
    r = mr_calloc(1, sizeof(*r));
    r->ex = ex;
    r->route = ROUTE_TABLE_REPLICATE;
    r->start_us = hr->received_us;
    r->status = rc == MR_EPROTO ? 409 : 200;
    r->vector_body = 1;
    mr_buf_init(&r->body);
    tables__reply_add(n, r);
}

/* ---- administration ------------------------------------------------------------------ */

void tables__peer_admin(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                        const char *rest)
{
    char region[64] = "", action[16] = "", msg[160];
    const char *slash;
    struct tables_peer *p;
    struct mr_buf b;

    if (strcmp(hr->method, "POST") != 0) {
        node__respond_error(n, ex, ROUTE_OTHER, hr->received_us, 405, "method_not_allowed",
                            "use POST /v1/tables/_peers/REGION/pause or resume", "Allow: POST\r\n");
        return;
    }
    if (rest[0] == '/' && (slash = strchr(rest + 1, '/')) != NULL && (size_t)(slash - rest - 1) < sizeof(region) &&
        strlen(slash + 1) < sizeof(action)) {
        snprintf(region, sizeof(region), "%.*s", (int)(slash - rest - 1), rest + 1);
        snprintf(action, sizeof(action), "%s", slash + 1);
    }
    if (strcmp(action, "pause") && strcmp(action, "resume")) {
        node__respond_error(n, ex, ROUTE_OTHER, hr->received_us, 404, "not_found",
                            "expected POST /v1/tables/_peers/REGION/pause or resume", NULL);
        return;
    }
    p = peer_find(n->tables, region);
    if (p == NULL) {
        snprintf(msg, sizeof(msg), "no peer region '%.63s' known here", region);
        node__respond_error(n, ex, ROUTE_OTHER, hr->received_us, 404, "not_found", msg, NULL);
        return;
    }
    p->paused = action[0] == 'p';
    mr_log(MR_LOG_WARN, "tables", "stream to %s %s by request", p->region, p->paused ? "paused" : "resumed");
    if (p->paused && p->call)
        http_call_cancel(p->call);
    if (!p->paused) {
        p->retry_at_ms = 0;
        tables__stream_kick(n);
    }
    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"peer\":");
    mr_json_cstr(&b, p->region);
    mr_buf_printf(&b, ",\"paused\":%s}", p->paused ? "true" : "false");
    node__respond_json(n, ex, ROUTE_OTHER, hr->received_us, 200, &b, NULL);
    mr_buf_close(&b);
}

/* ---- metrics and status ------------------------------------------------------------------ */

void tables__peer_metrics(struct node *n, struct mr_buf *b)
{
    struct tables *t = n->tables;
    char labels[96];
    size_t i;

    mr_metric_header(b, "meridian_tables_replication_lag_seconds", "histogram",
                     "global tables: write here to applied in the peer region, by peer");
    for (i = 0; i < t->n_peers; i++) {
        snprintf(labels, sizeof(labels), "peer=\"%s\"", t->peers[i]->region);
        mr_metric_hist(b, "meridian_tables_replication_lag_seconds", labels, &t->peers[i]->lag);
    }
#define PEER_METRIC(name, type, help, expr)                              \
    mr_metric_header(b, "meridian_tables_" name, type, help);             \
    for (i = 0; i < t->n_peers; i++) {                                   \
        struct tables_peer *p = t->peers[i];                             \
        snprintf(labels, sizeof(labels), "peer=\"%s\"", p->region);       \
        mr_metric_u64(b, "meridian_tables_" name, labels, (uint64_t)(expr)); \
    }
    PEER_METRIC("entries_behind", "gauge", "global tables: own log entries not yet applied by the peer",
                t->committed_head > p->acked ? t->committed_head - p->acked : 0)
    PEER_METRIC("bytes_sent_total", "counter", "global tables: replication bytes sent to the peer", p->bytes_sent)
    PEER_METRIC("batches_sent_total", "counter", "global tables: replication batches sent to the peer", p->batches_sent)
    PEER_METRIC("entries_sent_total", "counter", "global tables: entries the peer acknowledged", p->entries_sent)
    PEER_METRIC("send_errors_total", "counter", "global tables: failed replication calls to the peer", p->send_errors)
    PEER_METRIC("peer_needs_seed", "gauge", "global tables: 1 when the peer is below this region's retained log", p->needs_seed)
#undef PEER_METRIC
}

void tables__peer_status(struct node *n, struct mr_buf *b)
{
    struct tables *t = n->tables;

    mr_buf_putc(b, '[');
    for (size_t i = 0; i < t->n_peers; i++) {
        struct tables_peer *p = t->peers[i];
        mr_buf_printf(b, "%s{\"region\":", i ? "," : "");
        mr_json_cstr(b, p->region);
        mr_buf_puts(b, ",\"url\":");
        mr_json_cstr(b, p->url);
        mr_buf_printf(b, ",\"known\":%s,\"acked\":%" PRIu64 ",\"entries_behind\":%" PRIu64
                      ",\"paused\":%s,\"needs_seed\":%s,\"failing\":%s,\"last_lag_ms\":%lld,"
                      "\"lag_p50_ms\":%g,\"lag_p99_ms\":%g,\"batches\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
                      p->known ? "true" : "false", p->acked,
                      t->committed_head > p->acked ? t->committed_head - p->acked : 0,
                      p->paused ? "true" : "false", p->needs_seed ? "true" : "false",
                      p->fails ? "true" : "false", (long long)p->last_lag_ms,
                      mr_hist_quantile(&p->lag, 0.5) * 1e3, mr_hist_quantile(&p->lag, 0.99) * 1e3,
                      p->batches_sent, p->bytes_sent);
    }
    mr_buf_putc(b, ']');
}
