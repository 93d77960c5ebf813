/* commit.c -- the write path: group commit of transactions into etcd.
 *
 * A write request becomes one transaction of the batch being filled.  After
 * every turn of the loop (a uv_check handle) the batch is sealed and put to
 * the log key in etcd, as long as fewer than max_inflight_batches of this
 * node's batches are out (put but not yet applied here): every request read
 * in one turn shares one etcd write, and a busy node fills the next batch
 * while earlier ones travel.  etcd's cost is per put (and per watch event),
 * not per byte, so bigger batches are what lets throughput grow.  The request is answered
 * when the transaction comes back through the watch and the local replica
 * has applied it (apply.c calls node__txn_applied): etcd has then committed
 * it on a quorum, and its result is the one every replica computed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "node_int.h"

#define PENDING_BUCKETS 4096 /* power of two */

/* ---- pending writes ----------------------------------------------------- */

static struct pending_write **bucket(struct node *n, uint64_t counter)
{
    return &n->pending[counter & (n->pending_buckets - 1)];
}

static struct pending_write *pending_take(struct node *n, uint64_t counter)
{
    struct pending_write **pp = bucket(n, counter), *p;

    for (; (p = *pp) != NULL; pp = &p->hnext) {
        if (p->counter != counter)
            continue;
        *pp = p->hnext;
        if (p->prev)
            p->prev->next = p->next;
        else
            n->pend_head = p->next;
        if (p->next)
            p->next->prev = p->prev;
        else
            n->pend_tail = p->prev;
        n->n_pending--;
        return p;
    }
    return NULL;
}

static void pending_add(struct node *n, uint64_t counter, struct http_exchange *ex, int64_t start_us)
{
    struct pending_write *p = mr_calloc(1, sizeof(*p)), **b = bucket(n, counter);

    p->counter = counter;
    p->ex = ex;
    p->start_us = start_us;
    /* Every write has the same timeout, so appending keeps the list in
     * deadline order and expiry only looks at its head. */
    p->deadline_us = mr_mono_us() + n->cfg->commit_timeout_ms * 1000;
    p->hnext = *b;
    *b = p;
    p->prev = n->pend_tail;
    if (n->pend_tail)
        n->pend_tail->next = p;
    else
        n->pend_head = p;
    n->pend_tail = p;
    n->n_pending++;
}

static void fail_pending(struct node *n, struct pending_write *p, const char *code, const char *msg)
{
    n->stats.commit_unknown++;
    node__respond_error(n, p->ex, ROUTE_SQL_WRITE, p->start_us, 503, code, msg, "Retry-After: 1\r\n");
    mr_free(p);
}

/* ---- batches ------------------------------------------------------------ */

static int dump_to_buf(const char *p, size_t n, void *data)
{
    mr_buf_append(data, p, n);
    return 0;
}

static struct batch *batch_new(struct node *n)
{
    struct batch *b = mr_calloc(1, sizeof(*b));

    b->n = n;
    b->no = n->next_batch++;
    mr_buf_init(&b->json);
    mr_buf_printf(&b->json, "{\"v\":1,\"id\":\"%sb%" PRIu64 "\",\"origin\":", n->txn_prefix,
                  b->no);
    mr_json_cstr(&b->json, n->cfg->region);
    mr_buf_printf(&b->json, ",\"ts\":%lld,\"txns\":[", (long long)mr_now_ms());
    return b;
}

static void batch_free(struct batch *b)
{
    mr_buf_close(&b->json);
    mr_free(b->counters);
    mr_free(b);
}

/* Encode one transaction of <req> as the log entry format (node_int.h). */
static void encode_txn(struct node *n, struct mr_buf *out, uint64_t counter, const struct sql_req *req)
{
    mr_buf_printf(out, "{\"id\":\"%s%" PRIu64 "\",\"key\":", n->txn_prefix, counter);
    if (req->idem_key)
        mr_json_cstr(out, req->idem_key);
    else
        mr_buf_puts(out, "null");
    mr_buf_printf(out, ",\"time\":%lld,\"seed\":\"%" PRIu64 "\",\"stmts\":[", (long long)mr_now_ms(),
                  mr_random64());
    for (size_t i = 0; i < req->n_stmts; i++) {
        mr_buf_puts(out, i ? ",{\"sql\":" : "{\"sql\":");
        mr_json_cstr(out, req->stmts[i].sql);
        mr_buf_puts(out, ",\"params\":");
        if (req->stmts[i].params)
            json_dump_callback(req->stmts[i].params, dump_to_buf, out, JSON_COMPACT | JSON_ENCODE_ANY);
        else
            mr_buf_puts(out, "null");
        mr_buf_putc(out, '}');
    }
    mr_buf_puts(out, "]}");
}

static void batch_seal(struct node *n)
{
    struct batch *b = n->filling;

    if (b == NULL)
        return;
    n->filling = NULL;
    mr_buf_puts(&b->json, "]}");
    if (n->sealed_tail)
        n->sealed_tail->next = b;
    else
        n->sealed_head = b;
    n->sealed_tail = b;
}

static void inflight_remove(struct node *n, uint64_t no)
{
    for (size_t i = 0; i < n->n_inflight; i++) {
        if (n->inflight[i].no == no) {
            n->inflight[i] = n->inflight[--n->n_inflight];
            return;
        }
    }
}

void node__batch_applied(struct node *n, const char *batch_id)
{
    size_t plen = strlen(n->txn_prefix);
    int64_t no;

    if (strncmp(batch_id, n->txn_prefix, plen) != 0 || batch_id[plen] != 'b' ||
        mr_parse_i64(batch_id + plen + 1, 0, INT64_MAX, &no) != 0)
        return;
    inflight_remove(n, (uint64_t)no);
    node__commit_flush(n);
}

static void on_put(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct batch *b = data;
    struct node *n = b->n;
    char msg[MR_ERRMSG_LEN + 128];

    mr_hist_observe(&n->stats.put_seconds, (double)(mr_mono_us() - b->put_start_us) / 1e6);
    if (rc != 0) {
        /* The put may still have been committed (a timeout is not a "no"):
         * the answer is "unknown", and a retry with the same idempotency
         * key is safe. */
        n->stats.put_failures++;
        mr_log(MR_LOG_WARN, "commit", "batch of %zu txns not confirmed by etcd: %s", b->n_txns,
               errmsg ? errmsg : mr_strerror(rc));
        snprintf(msg, sizeof(msg),
                 "commit outcome unknown: etcd did not confirm the write (%s); retry with the "
                 "same idempotency_key", errmsg ? errmsg : mr_strerror(rc));
        for (size_t i = 0; i < b->n_txns; i++) {
            struct pending_write *p = pending_take(n, b->counters[i]);
            if (p)
                fail_pending(n, p, "commit_unknown", msg);
        }
        inflight_remove(n, b->no);
    } else {
        mr_log(MR_LOG_DEBUG, "commit", "batch of %zu txns at revision %lld", b->n_txns,
               (long long)revision);
    }
    batch_free(b);
    if (!n->stopping)
        node__commit_flush(n);
}

void node__commit_flush(struct node *n)
{
    /* Seal the filling batch only when it can leave now: while the limit
     * is reached it keeps growing, which is the whole point. */
    while (n->n_inflight < (size_t)n->cfg->max_inflight_batches && !n->stopping) {
        struct batch *b;
        int rc;

        if (n->sealed_head == NULL) {
            if (n->filling == NULL)
                break;
            batch_seal(n);
        }
        b = n->sealed_head;
        n->sealed_head = b->next;
        if (n->sealed_head == NULL)
            n->sealed_tail = NULL;
        b->next = NULL;
        b->put_start_us = mr_mono_us();
        n->inflight[n->n_inflight].no = b->no;
        n->inflight[n->n_inflight].since_us = b->put_start_us;
        n->n_inflight++;
        n->stats.batches_put++;
        rc = etcd_put(n->etcd, n->log_key, b->json.data, b->json.len,
                      (uint64_t)n->cfg->commit_timeout_ms, on_put, b);
        if (rc != 0)
            on_put(rc, 0, "cannot start the etcd put", b);
    }
}

static void on_check(uv_check_t *h)
{
    struct node *n = h->data;

    if (store_read_unpin(n->store) != 0)
        node__fail(n, "cannot end the read snapshot of the replica");
    if (n->filling)
        node__commit_flush(n);
}

static void respond_replayed(struct node *n, struct http_exchange *ex, int64_t start_us, int rc,
                             const char *result, size_t len, int64_t rev, int replayed);

void node__submit_write(struct node *n, struct http_exchange *ex, struct sql_req *req,
                        int64_t start_us)
{
    struct mr_buf txn;
    uint64_t counter;
    struct batch *b;

    if (req->idem_key) {
        struct mr_buf result;
        int rc;
        mr_buf_init(&result);
        if (store_idem_lookup(n->store, req->idem_key, &rc, &result)) {
            respond_replayed(n, ex, start_us, rc, result.data, result.len, n->pos.rev, 1);
            mr_buf_close(&result);
            sql_req_free(req);
            return;
        }
        mr_buf_close(&result);
    }
    counter = n->next_counter++;
    mr_buf_init(&txn);
    encode_txn(n, &txn, counter, req);
    sql_req_free(req);
    /* Room for the batch envelope around one transaction. */
    if ((int64_t)txn.len + 256 > n->cfg->batch_max_bytes) {
        char msg[160];
        snprintf(msg, sizeof(msg), "transaction is %zu bytes once encoded; the limit is %lld "
                 "(batch_max_bytes)", txn.len, (long long)n->cfg->batch_max_bytes - 256);
        node__respond_error(n, ex, ROUTE_SQL_WRITE, start_us, 413, "too_large", msg, NULL);
        mr_buf_close(&txn);
        return;
    }
    if (n->filling && (n->filling->n_txns >= (size_t)n->cfg->batch_max_txns ||
                       (int64_t)(n->filling->json.len + txn.len + 2) > n->cfg->batch_max_bytes))
        batch_seal(n);
    if (n->filling == NULL)
        n->filling = batch_new(n);
    b = n->filling;
    if (b->n_txns)
        mr_buf_putc(&b->json, ',');
    mr_buf_append(&b->json, txn.data, txn.len);
    mr_buf_close(&txn);
    if (b->n_txns == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->counters = mr_realloc(b->counters, b->cap * sizeof(*b->counters));
    }
    b->counters[b->n_txns++] = counter;
    pending_add(n, counter, ex, start_us);
    n->stats.writes++;
    if (!n->local_is_leader)
        n->stats.forwarded_writes++;
}

/* ---- answers ------------------------------------------------------------ */

static void respond_replayed(struct node *n, struct http_exchange *ex, int64_t start_us, int rc,
                             const char *result, size_t len, int64_t rev, int replayed)
{
    char token[48], hdr[160];
    struct mr_buf b;
    int status = 200;
    const char *code = NULL;

    node__format_token(token, sizeof(token), rev);
    snprintf(hdr, sizeof(hdr), "Meridian-Token: %s\r\n%s", token,
             replayed ? "Meridian-Idempotent-Replay: true\r\n" : "");
    mr_buf_init(&b);
    if (rc == 0) {
        mr_buf_puts(&b, "{\"results\":");
        mr_buf_append(&b, result, len);
    } else {
        switch (rc) {
        case MR_ECONSTRAINT: status = 409; code = "constraint"; break;
        case MR_EDENIED: status = 400; code = "not_allowed"; break;
        case MR_ESQL: status = 400; code = "sql_error"; break;
        default: status = 400; code = "invalid_request"; break;
        }
        mr_buf_puts(&b, "{\"error\":{\"code\":\"");
        mr_buf_puts(&b, code);
        mr_buf_puts(&b, "\",\"message\":");
        mr_json_str(&b, result, len);
        mr_buf_putc(&b, '}');
    }
    mr_buf_printf(&b, ",\"token\":\"%s\",\"region\":", token);
    mr_json_cstr(&b, n->cfg->region);
    mr_buf_printf(&b, ",\"replayed\":%s}", replayed ? "true" : "false");
    if (replayed)
        n->stats.idempotent_replays++;
    node__respond_json(n, ex, ROUTE_SQL_WRITE, start_us, status, &b, hdr);
    mr_buf_close(&b);
}

void node__txn_applied(struct node *n, const struct store_txn *txn, int rc, const char *result,
                       size_t len, int replayed, int64_t rev)
{
    size_t plen = strlen(n->txn_prefix);
    struct pending_write *p;
    int64_t counter;

    if (strncmp(txn->id, n->txn_prefix, plen) != 0)
        return;
    if (mr_parse_i64(txn->id + plen, 0, INT64_MAX, &counter) != 0)
        return;
    p = pending_take(n, (uint64_t)counter);
    if (p == NULL)
        return; /* answered already (timed out) or submitted before a restart */
    mr_hist_observe(&n->stats.commit_seconds, (double)(mr_mono_us() - p->start_us) / 1e6);
    respond_replayed(n, p->ex, p->start_us, rc, result, len, rev, replayed);
    mr_free(p);
}

void node__commit_expire(struct node *n, int64_t now_us)
{
    /* A batch that was put but never came back (its put timed out but
     * committed later, or the watch lost it) must not stall group commit
     * for ever: after commit_timeout it stops counting. */
    for (size_t i = 0; i < n->n_inflight;) {
        if (now_us - n->inflight[i].since_us > n->cfg->commit_timeout_ms * 1000)
            n->inflight[i] = n->inflight[--n->n_inflight];
        else
            i++;
    }
    if (n->sealed_head)
        node__commit_flush(n);
    while (n->pend_head && n->pend_head->deadline_us <= now_us) {
        struct pending_write *p = pending_take(n, n->pend_head->counter);
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "commit outcome unknown: not applied in %s within %lld ms (commit_timeout); "
                 "retry with the same idempotency_key", n->cfg->region,
                 (long long)n->cfg->commit_timeout_ms);
        fail_pending(n, p, "commit_unknown", msg);
    }
}

void node__commit_init(struct node *n)
{
    n->pending_buckets = PENDING_BUCKETS;
    n->pending = mr_calloc(n->pending_buckets, sizeof(*n->pending));
    uv_check_init(n->loop, &n->flush_check);
    n->flush_check.data = n;
    uv_check_start(&n->flush_check, on_check);
}

void node__commit_close(struct node *n)
{
    while (n->pend_head) {
        struct pending_write *p = pending_take(n, n->pend_head->counter);
        fail_pending(n, p, "shutting_down",
                     "the node is shutting down; the outcome is unknown: retry with the same "
                     "idempotency_key");
    }
    if (n->filling) {
        batch_free(n->filling);
        n->filling = NULL;
    }
    while (n->sealed_head) {
        struct batch *b = n->sealed_head;
        n->sealed_head = b->next;
        batch_free(b);
    }
    n->sealed_tail = NULL;
    uv_check_stop(&n->flush_check);
    uv_close((uv_handle_t *)&n->flush_check, NULL);
}

void node__commit_free(struct node *n)
{
    mr_free(n->pending);
    n->pending = NULL;
}
