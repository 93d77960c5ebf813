/* apply.c -- the read side of the log: watch, decode, apply, and the reads
 * that wait for the replica to reach a position.
 *
 * Entries are applied only from the watch, never from a put's answer
 * (about half the events arrive before the writer's own acknowledgement),
 * strictly in revision order, each batch in one SQLite transaction with its
 * position.  Revisions have gaps (other keys, leases), so a missing entry is
 * never inferred from arithmetic: the watch delivers every put of the log
 * key, and the log key's version counts batches.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "node_int.h"

#define WATCH_RETRY_MS 200


void node__fail(struct node *n, const char *fmt, ...)
{
    va_list ap;

    if (n->failed)
        return;
    n->failed = 1;
    va_start(ap, fmt);
    vsnprintf(n->fail_reason, sizeof(n->fail_reason), fmt, ap);
    va_end(ap);
    mr_log(MR_LOG_ERROR, "apply", "fatal: %s (%" PRId64 " MiB free on the filesystem of %s)", n->fail_reason,
           mr_disk_free_mib(n->cfg->data_dir), n->cfg->data_dir);
    /* node.c's tick stops the node: we may be deep inside an etcd callback. */
}

/* ---- decoding a batch --------------------------------------------------- */

void node__decoded_free(struct decoded *d)
{
    mr_free(d->txns);
    mr_free(d->stmts);
    json_decref(d->doc);
}

int node__decode_batch(const char *p, size_t len, struct decoded *d, char *err)
{
    json_error_t jerr;
    json_t *txns;
    size_t n_stmts = 0, k = 0;

    memset(d, 0, sizeof(*d));
    d->doc = json_loadb(p, len, 0, &jerr);
    if (d->doc == NULL)
        return mr_seterr(err, MR_ECORRUPT, "not JSON: %s", jerr.text);
    if (json_integer_value(json_object_get(d->doc, "v")) != 1)
        return mr_seterr(err, MR_ECORRUPT, "unknown entry version");
    d->batch.id = json_string_value(json_object_get(d->doc, "id"));
    d->batch.origin = json_string_value(json_object_get(d->doc, "origin"));
    d->batch.ts_ms = json_integer_value(json_object_get(d->doc, "ts"));
    txns = json_object_get(d->doc, "txns");
    if (d->batch.id == NULL || d->batch.origin == NULL || !json_is_array(txns))
        return mr_seterr(err, MR_ECORRUPT, "missing id, origin or txns");
    for (size_t i = 0; i < json_array_size(txns); i++)
        n_stmts += json_array_size(json_object_get(json_array_get(txns, i), "stmts"));
    d->txns = mr_calloc(json_array_size(txns), sizeof(*d->txns));
    d->stmts = mr_calloc(n_stmts, sizeof(*d->stmts));
    for (size_t i = 0; i < json_array_size(txns); i++) {
        json_t *t = json_array_get(txns, i), *stmts = json_object_get(t, "stmts");
        struct store_txn *tx = &d->txns[i];
        const char *seed = json_string_value(json_object_get(t, "seed"));
        json_t *key = json_object_get(t, "key");

        tx->id = json_string_value(json_object_get(t, "id"));
        tx->idem_key = json_is_string(key) ? json_string_value(key) : NULL;
        tx->time_ms = json_integer_value(json_object_get(t, "time"));
        if (tx->id == NULL || seed == NULL || !json_is_array(stmts) || json_array_size(stmts) == 0)
            return mr_seterr(err, MR_ECORRUPT, "transaction %zu is malformed", i + 1);
        tx->seed = strtoull(seed, NULL, 10);
        tx->stmts = &d->stmts[k];
        tx->n_stmts = json_array_size(stmts);
        for (size_t j = 0; j < tx->n_stmts; j++, k++) {
            json_t *s = json_array_get(stmts, j), *params = json_object_get(s, "params");
            d->stmts[k].sql = json_string_value(json_object_get(s, "sql"));
            d->stmts[k].params = json_is_null(params) ? NULL : params;
            if (d->stmts[k].sql == NULL)
                return mr_seterr(err, MR_ECORRUPT, "transaction %zu statement %zu has no sql", i + 1,
                                 j + 1);
        }
    }
    d->batch.txns = d->txns;
    d->batch.n_txns = json_array_size(txns);
    return 0;
}

/* ---- applying ----------------------------------------------------------- */

struct apply_ctx {
    struct node *n;
    int64_t rev;
};

static void on_txn(const struct store_txn *txn, int rc, const char *result, size_t len,
                   int replayed, void *data)
{
    struct apply_ctx *c = data;

    c->n->stats.txns_applied++;
    node__txn_applied(c->n, txn, rc, result, len, replayed, c->rev);
}

static void wait_unlink(struct node *n, struct read_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        n->waits_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        n->waits_tail = w->prev;
}

static void serve_ready_waits(struct node *n)
{
    struct read_wait *w = n->waits_head, *next;

    for (; w; w = next) {
        next = w->next;
        if (w->need_rev < 0 || w->need_rev > n->pos.rev)
            continue;
        wait_unlink(n, w);
        if (w->recheck)
            node__route_sql(n, w->ex, &w->req, w->start_us, 0);
        else
            node__serve_read(n, w->ex, &w->req, w->start_us);
        mr_free(w);
    }
}

/* Submission (in <origin>) to apply (here), overall and per origin region.
 * Clocks of different hosts make it approximate across real regions. */
static void note_lag(struct node *n, const char *origin, int64_t ms)
{
    struct node_stats *st = &n->stats;
    size_t i;

    if (ms < 0)
        ms = 0;
    mr_hist_observe(&st->apply_lag_seconds, (double)ms / 1e3);
    for (i = 0; i < st->n_origins; i++)
        if (strcmp(st->by_origin[i].origin, origin) == 0)
            break;
    if (i == st->n_origins) {
        if (st->n_origins == NODE_MAX_ORIGINS)
            i = NODE_MAX_ORIGINS - 1; /* pooled */
        else {
            st->n_origins++;
            snprintf(st->by_origin[i].origin, sizeof(st->by_origin[i].origin), "%s",
                     i == NODE_MAX_ORIGINS - 1 ? "other" : origin);
            mr_hist_init(&st->by_origin[i].lag, mr_hist_latency_bounds, mr_hist_latency_n);
        }
    }
    mr_hist_observe(&st->by_origin[i].lag, (double)ms / 1e3);
    st->by_origin[i].last_ms = ms;
}

/* A database that keeps failing is not fixed by reopening it: at most
 * STORE_REOPENS_MAX reopens per STORE_REOPEN_WINDOW_MS, then the node stops. */
#define STORE_REOPENS_MAX 3
#define STORE_REOPEN_WINDOW_MS 60000

static int reopen_allowed(struct node *n)
{
    int64_t now = mr_now_ms();

    if (now - n->reopen_window_ms > STORE_REOPEN_WINDOW_MS) {
        n->reopen_window_ms = now;
        n->reopens_recent = 0;
    }
    return n->reopens_recent < STORE_REOPENS_MAX;
}

int node__store_open(struct node *n, const char *path, struct store **out, char *err)
{
    struct store_opts o;

    store_opts_default(&o);
    o.idempotency_window_ms = n->cfg->idempotency_window_ms;
    o.max_rows = n->cfg->max_rows;
    return store_open(path, &o, out, err);
}

void node__store_reopen(struct node *n)
{
    char err[MR_ERRMSG_LEN], *path = mr_asprintf("%s/meridian.db", n->cfg->data_dir);
    int rc;

    n->reopen_due = 0;
    n->reopens_recent++;
    n->stats.store_reopens++;
    store_close(n->store);
    n->store = NULL;
    rc = node__store_open(n, path, &n->store, err);
    mr_free(path);
    if (rc != 0) {
        node__fail(n, "cannot reopen the database: %s", err);
        return;
    }
    store_position(n->store, &n->pos);
    mr_log(MR_LOG_WARN, "apply", "database reopened at revision %lld (reopen %d in this minute)",
           (long long)n->pos.rev, n->reopens_recent);
    /* The watch has moved past what failed: start it again from the
     * reopened position (on_watch_end does, with MR_ECLOSED). */
    if (n->watch)
        etcd_watch_cancel(n->watch);
    else if (!n->seeding)
        node__watch_start(n);
}

static void on_event(struct etcd_watch *watch, const struct etcd_kv *kv, void *data)
{
    struct node *n = data;
    char err[MR_ERRMSG_LEN];
    struct decoded d;
    struct apply_ctx ctx = {n, kv->mod_revision};
    int rc;

    (void)watch;
    if (n->failed || n->apply_paused || kv->mod_revision <= n->pos.rev)
        return; /* delivered again after a watch restart, or before a reopen */
    rc = node__decode_batch(kv->value, kv->value_len, &d, err);
    if (rc != 0) {
        /* Every replica reads the same bytes and skips them the same way. */
        static const struct store_batch empty = {"malformed", "-", 0, NULL, 0};
        mr_log(MR_LOG_ERROR, "apply", "revision %lld is not a batch (%s): skipped on every replica",
               (long long)kv->mod_revision, err);
        node__decoded_free(&d);
        memset(&d, 0, sizeof(d));
        d.batch = empty;
    }
    if (store_read_unpin(n->store) != 0) { /* reads after this apply must see it */
        node__fail(n, "cannot end the read snapshot before applying revision %lld",
                   (long long)kv->mod_revision);
        node__decoded_free(&d);
        return;
    }
    rc = store_apply(n->store, &d.batch, kv->mod_revision, kv->version, on_txn, &ctx, err);
    if (rc == MR_EIO && reopen_allowed(n)) {
        /* The batch is rolled back and etcd still holds it: a database
         * opened afresh applies it again (node__store_reopen). */
        node__decoded_free(&d);
        mr_log(MR_LOG_ERROR, "apply", "cannot apply revision %lld: %s (%" PRId64 " MiB free on the "
               "filesystem of %s); reopening the database to apply it again", (long long)kv->mod_revision, err,
               mr_disk_free_mib(n->cfg->data_dir), n->cfg->data_dir);
        n->reopen_due = n->apply_paused = 1;
        return;
    }
    if (rc != 0) {
        node__decoded_free(&d);
        node__fail(n, "cannot apply revision %lld: %s", (long long)kv->mod_revision, err);
        return;
    }
    n->stats.batches_applied++;
    if (d.batch.id)
        node__batch_applied(n, d.batch.id);
    mr_hist_observe(&n->stats.batch_txns, (double)d.batch.n_txns);
    if (d.batch.ts_ms > 0)
        note_lag(n, d.batch.origin, mr_now_ms() - d.batch.ts_ms);
    node__decoded_free(&d);
    store_position(n->store, &n->pos);
    n->applied_at_ms = mr_now_ms();
    if (n->pos.rev > n->head_rev) {
        n->head_rev = n->pos.rev;
        n->head_version = n->pos.version;
    }
    node__note_applied(n);
    serve_ready_waits(n);
}

static void retry_fired(uv_timer_t *t)
{
    struct node *n = t->data;

    if (!n->stopping && n->watch == NULL && !n->seeding)
        node__watch_start(n);
}

static void on_watch_end(struct etcd_watch *watch, int rc, int64_t compact_revision,
                         const char *errmsg, void *data)
{
    struct node *n = data;

    (void)watch;
    n->watch = NULL;
    if (n->stopping)
        return;
    if (rc == MR_ECOMPACTED) {
        node__reseed_start(n, compact_revision);
        return;
    }
    mr_log(MR_LOG_WARN, "apply", "watch ended: %s; restarting from revision %lld", errmsg,
           (long long)n->pos.rev + 1);
    /* Move off the watch's member unless a failed request has already
     * moved the client (one dead connection can end both at once). */
    if (rc != MR_ECLOSED && strcmp(etcd_current_endpoint(n->etcd), n->watch_endpoint) == 0)
        etcd_failover(n->etcd, errmsg);
    n->stats.watch_restarts++;
    uv_timer_start(&n->watch_retry, retry_fired, WATCH_RETRY_MS, 0);
}

void node__watch_start(struct node *n)
{
    int rc = etcd_watch(n->etcd, n->log_key, n->pos.rev + 1, on_event, on_watch_end, n, &n->watch);

    n->apply_paused = 0;   /* this watch starts right after the position */

    if (rc != 0) {
        n->watch = NULL;
        mr_log(MR_LOG_WARN, "apply", "cannot start watch: %s", mr_strerror(rc));
        uv_timer_start(&n->watch_retry, retry_fired, WATCH_RETRY_MS, 0);
        return;
    }
    n->watch_started_ms = mr_now_ms();
    snprintf(n->watch_endpoint, sizeof(n->watch_endpoint), "%s", etcd_current_endpoint(n->etcd));
    mr_log(MR_LOG_INFO, "apply", "watching %s from revision %lld on %s", n->log_key,
           (long long)n->pos.rev + 1, etcd_current_endpoint(n->etcd));
}

void node__apply_start(struct node *n)
{
    uv_timer_init(n->loop, &n->watch_retry);
    n->watch_retry.data = n;
    node__watch_start(n);
}

/* ---- reads that wait ---------------------------------------------------- */

static void wait_append(struct read_wait **head, struct read_wait **tail, struct read_wait *w)
{
    w->next = NULL;
    w->prev = *tail;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

static struct read_wait *wait_new(struct node *n, struct http_exchange *ex, struct sql_req *req,
                                  int64_t need_rev, int64_t start_us)
{
    struct read_wait *w = mr_calloc(1, sizeof(*w));

    w->ex = ex;
    w->req = *req;
    memset(req, 0, sizeof(*req));
    w->need_rev = need_rev;
    w->start_us = start_us;
    w->deadline_us = start_us + n->cfg->session_wait_ms * 1000;
    n->stats.read_waits++;
    return w;
}

static void fail_wait(struct node *n, struct read_wait *w, int status, const char *code,
                      const char *msg)
{
    node__respond_error(n, w->ex, ROUTE_SQL_READ, w->start_us, status, code, msg,
                        status == 503 ? "Retry-After: 1\r\n" : NULL);
    sql_req_free(&w->req);
    mr_free(w);
}

/* The strong reads that one etcd get serves. */
struct strong_group {
    struct node *n;
    struct read_wait *head;
};

static void strong_get_done(int rc, const struct etcd_kv *kv, int64_t header_rev,
                            const char *errmsg, void *data);

/* Ask etcd for the log's head on behalf of every strong read queued so far.
 * Reads that arrive while the get flies wait for the next one: a get that
 * started before a read arrived cannot prove that read linearizable. */
static void strong_get_start(struct node *n)
{
    struct strong_group *group;
    int rc;

    if (n->strong_get_inflight || n->strong_head == NULL || n->stopping)
        return;
    group = mr_malloc(sizeof(*group));
    group->n = n;
    group->head = n->strong_head;
    n->strong_head = n->strong_tail = NULL;
    n->strong_get_inflight = 1;
    /* session_wait may be 0 ("never wait for the replica"); asking etcd
     * still needs a moment. */
    rc = etcd_get(n->etcd, n->log_key,
                  (uint64_t)(n->cfg->session_wait_ms > 100 ? n->cfg->session_wait_ms : 100),
                  strong_get_done, group);
    if (rc != 0)
        strong_get_done(rc, NULL, 0, "cannot start etcd read", group);
}

static void strong_get_done(int rc, const struct etcd_kv *kv, int64_t header_rev,
                            const char *errmsg, void *data)
{
    struct strong_group *group = data;
    struct node *n = group->n;
    struct read_wait *w, *next;
    int64_t head = kv ? kv->mod_revision : 0;

    (void)header_rev;
    n->strong_get_inflight = 0;
    for (w = group->head; w; w = next) {
        next = w->next;
        if (rc != 0) {
            char msg[MR_ERRMSG_LEN + 64];
            snprintf(msg, sizeof(msg), "cannot confirm the log head with etcd: %s",
                     errmsg ? errmsg : mr_strerror(rc));
            fail_wait(n, w, 503, "unavailable", msg);
            continue;
        }
        if (w->check_future) {
            if (w->need_rev > head) {
                char msg[200];
                snprintf(msg, sizeof(msg), "token names log position %lld but the log ends at %lld: "
                         "the token is not from this cluster", (long long)w->need_rev, (long long)head);
                fail_wait(n, w, 400, "invalid_token", msg);
                continue;
            }
        } else {
            w->need_rev = head;
        }
        if (kv && kv->mod_revision > n->head_rev) {
            n->head_rev = kv->mod_revision;
            n->head_version = kv->version;
        }
        wait_append(&n->waits_head, &n->waits_tail, w);
    }
    mr_free(group);
    if (!n->stopping) {
        serve_ready_waits(n);
        strong_get_start(n);
    }
}

void node__wait_strong(struct node *n, struct http_exchange *ex, struct sql_req *req,
                       int64_t start_us, int recheck)
{
    struct read_wait *w = wait_new(n, ex, req, -1, start_us);

    w->recheck = recheck;
    wait_append(&n->strong_head, &n->strong_tail, w);
    strong_get_start(n);
}

void node__wait_for_rev(struct node *n, struct http_exchange *ex, struct sql_req *req,
                        int64_t need_rev, int64_t start_us)
{
    struct read_wait *w = wait_new(n, ex, req, need_rev, start_us);

    if (need_rev > n->head_rev) {
        /* Beyond anything we know of: from the future, or just newer than
         * our last probe.  etcd decides. */
        w->check_future = 1;
        wait_append(&n->strong_head, &n->strong_tail, w);
        strong_get_start(n);
        return;
    }
    wait_append(&n->waits_head, &n->waits_tail, w);
}

void node__waits_expire(struct node *n, int64_t now_us)
{
    struct read_wait *w, *next;

    for (w = n->waits_head; w; w = next) {
        char msg[256];
        next = w->next;
        if (w->deadline_us > now_us)
            continue;
        wait_unlink(n, w);
        n->stats.read_wait_timeouts++;
        snprintf(msg, sizeof(msg),
                 "region %s has applied the log up to %lld but this read needs %lld; not caught up "
                 "within %lld ms (session_wait): retry, or read in another region",
                 n->cfg->region, (long long)n->pos.rev, (long long)w->need_rev,
                 (long long)n->cfg->session_wait_ms);
        fail_wait(n, w, 503, "replica_behind", msg);
    }
}

void node__apply_close(struct node *n)
{
    if (n->watch)
        etcd_watch_cancel(n->watch);
    uv_timer_stop(&n->watch_retry);
    uv_close((uv_handle_t *)&n->watch_retry, NULL);
    while (n->waits_head) {
        struct read_wait *w = n->waits_head;
        n->waits_head = w->next;
        fail_wait(n, w, 503, "shutting_down", "the node is shutting down");
    }
    n->waits_tail = NULL;
    while (n->strong_head) {
        struct read_wait *w = n->strong_head;
        n->strong_head = w->next;
        fail_wait(n, w, 503, "shutting_down", "the node is shutting down");
    }
    n->strong_tail = NULL;
}
