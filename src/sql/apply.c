/* apply.c -- store_apply: one batch of the log, in one SQLite transaction
 * together with the new applied position.
 *
 *   BEGIN IMMEDIATE
 *     batch id seen before?  yes: only the position moves
 *     for each transaction:
 *       idempotency key stored?  yes: its stored result, nothing executed
 *       SAVEPOINT; clock := time_ms; generators := seed
 *       statements...           (error: ROLLBACK TO; result := message)
 *       deferred foreign keys still violated?  error
 *       RELEASE; store the result under the idempotency key
 *     remember the batch id; prune old ids and keys (by the entry's
 *     revision and ts_ms only, so every replica prunes the same rows)
 *   position := (rev, version, ts_ms); COMMIT
 *   then the callbacks, in order
 *
 * Everything that decides a result depends only on the entry and the
 * database, so every replica stores the same rows and answers the same.
 * Failures of the database itself (I/O, disk full, corruption, out of
 * memory) could differ between replicas: they abort the whole batch and
 * store_apply fails, so that the caller retries or stops rather than record
 * a result another replica would not.
 */
#include <inttypes.h>
#include <string.h>

#include "../common/alloc.h"
#include "store_int.h"

/* Returned by apply_once when a statement rolled back the whole SQLite
 * transaction (INSERT OR ROLLBACK, RAISE(ROLLBACK)): the batch is run again
 * with that transaction's failure recorded beforehand. */
#define APPLY_RESTART 1

struct txn_res {
    int rc;
    size_t off, len;   /* result text in the batch's output buffer */
    int replayed;
};

/* A transaction whose failure is already known (see APPLY_RESTART). */
struct forced {
    int set;
    int rc;
    char msg[MR_ERRMSG_LEN];
};

struct apply_ctx {
    struct store *s;
    const struct store_batch *batch;
    int64_t rev, version;
    struct txn_res *res;
    struct forced *forced;   /* n_txns entries */
    struct mr_buf out;
    int dup;
    int64_t schema_version;  /* read just before COMMIT */
};

static int idem_find(struct apply_ctx *a, const char *key, struct txn_res *r, char *err)
{
    struct store *s = a->s;
    sqlite3_stmt *st = s->is.idem_get;
    int src;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = store__istep(&s->wc, st);
    if (src == SQLITE_ROW) {
        r->rc = sqlite3_column_int(st, 0);
        r->replayed = 1;
        mr_buf_append(&a->out, sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return 1;
    }
    if (src != SQLITE_DONE) {
        sqlite3_clear_bindings(st);
        return store__ierror(&s->wc, st, src, "apply: idempotency lookup", err);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return 0;
}

static int idem_store(struct apply_ctx *a, const char *key, const struct txn_res *r, char *err)
{
    struct store *s = a->s;
    sqlite3_stmt *st = s->is.idem_put;
    int rc;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, r->rc);
    sqlite3_bind_text64(st, 3, a->out.data + r->off, r->len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_int64(st, 4, a->batch->ts_ms);
    rc = store__iexec(&s->wc, st, "apply: store idempotency key", err);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Run the statements of <txn>, appending the results array to a->out.
 * Returns 0, a statement's error (message in <msg>), or a fatal code. */
static int run_stmts(struct apply_ctx *a, const struct store_txn *txn, char *msg)
{
    struct store *s = a->s;
    struct store_conn *c = &s->wc;
    int rc = 0;

    if (txn->n_stmts == 0 || txn->stmts == NULL)
        return mr_seterr(msg, MR_EINVAL, "no statements");
    if (txn->n_stmts > STORE_MAX_STATEMENTS)
        return mr_seterr(msg, MR_EINVAL, "%zu statements: at most %d per request", txn->n_stmts,
                         STORE_MAX_STATEMENTS);
    mr_buf_putc(&a->out, '[');
    for (size_t i = 0; i < txn->n_stmts && rc == 0; i++) {
        struct store_cstmt *cs = NULL;
        size_t idx = i + 1;

        rc = store__stmt_acquire(c, idx, txn->stmts[i].sql, &cs, msg);
        if (rc != 0)
            break;
        rc = store__stmt_bind(cs, idx, txn->stmts[i].params, msg);
        if (rc == 0) {
            if (i > 0)
                mr_buf_putc(&a->out, ',');
            /* The compile-time limit, not opts.max_rows: whether a write
             * fails must not depend on one replica's configuration. */
            rc = store__stmt_run(c, cs, idx, STORE_DEFAULT_MAX_ROWS, &a->out, msg);
        }
        store__stmt_release(c, cs);
    }
    if (rc == 0) {
        int cur = 0, hi = 0;
        /* Deferred foreign keys are otherwise checked only at COMMIT, which
         * here ends the whole batch: check them at the end of each
         * transaction instead. */
        if (sqlite3_db_status(c->db, SQLITE_DBSTATUS_DEFERRED_FKS, &cur, &hi, 0) != SQLITE_OK)
            return mr_seterr(msg, MR_EIO, "deferred foreign key status unavailable");
        if (cur > 0)
            return mr_seterr(msg, MR_ECONSTRAINT,
                             "FOREIGN KEY constraint failed (deferred, at the end of the "
                             "transaction)");
        mr_buf_putc(&a->out, ']');
    }
    return rc;
}

/* Close the result of <r>: its length, then a NUL that is not counted, so
 * that a callback may also read it as a C string. */
static int finish(struct apply_ctx *a, struct txn_res *r)
{
    r->len = a->out.len - r->off;
    mr_buf_append(&a->out, "", 1);
    return 0;
}

static int apply_txn(struct apply_ctx *a, size_t t, char *err)
{
    struct store *s = a->s;
    const struct store_txn *txn = &a->batch->txns[t];
    struct txn_res *r = &a->res[t];
    char msg[MR_ERRMSG_LEN] = "";
    int rc, trc;

    memset(r, 0, sizeof(*r));
    r->off = a->out.len;
    if (txn->idem_key != NULL) {
        rc = idem_find(a, txn->idem_key, r, err);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return finish(a, r);
    }
    if (a->forced[t].set) {
        r->rc = a->forced[t].rc;
        mr_buf_puts(&a->out, a->forced[t].msg);
        goto stored;
    }

    rc = store__iexec(&s->wc, s->is.savepoint, "apply: SAVEPOINT", err);
    if (rc != 0)
        return rc;
    store__det_begin_txn(s, txn->time_ms, txn->seed);
    s->wc.steps = 0;
    trc = run_stmts(a, txn, msg);
    store__det_end_txn(s);
    if (store__is_fatal(trc))
        return mr_seterr(err, trc, "apply batch %s, transaction %zu: %s", a->batch->id, t + 1,
                         msg);
    if (trc != 0) {
        if (sqlite3_get_autocommit(s->wc.db)) {
            /* The statement ended the SQLite transaction itself, undoing the
             * transactions before this one: run the batch again, with this
             * one's failure known in advance. */
            a->forced[t].set = 1;
            a->forced[t].rc = trc;
            memcpy(a->forced[t].msg, msg, sizeof(msg));
            return APPLY_RESTART;
        }
        rc = store__iexec(&s->wc, s->is.rollback_to, "apply: ROLLBACK TO", err);
        if (rc == 0)
            rc = store__iexec(&s->wc, s->is.release, "apply: RELEASE", err);
        if (rc != 0)
            return rc;
        a->out.len = r->off;
        if (a->out.data != NULL)
            a->out.data[r->off] = '\0';
        mr_buf_puts(&a->out, msg);
        r->rc = trc;
    } else {
        rc = store__iexec(&s->wc, s->is.release, "apply: RELEASE", err);
        if (rc != 0)
            return rc;
        r->rc = 0;
    }
stored:
    rc = finish(a, r);
    if (rc == 0 && txn->idem_key != NULL)
        rc = idem_store(a, txn->idem_key, r, err);
    return rc;
}

static int prune(struct apply_ctx *a, char *err)
{
    struct store *s = a->s;
    int rc = 0;

    /* Bounds come from the entry only (its ts_ms and revision), never from
     * a local clock: every replica deletes the same rows. */
    if (s->opts.idempotency_window_ms > 0 &&
        a->batch->ts_ms > INT64_MIN + s->opts.idempotency_window_ms) {
        sqlite3_bind_int64(s->is.idem_prune, 1, a->batch->ts_ms - s->opts.idempotency_window_ms);
        rc = store__iexec(&s->wc, s->is.idem_prune, "apply: prune idempotency keys", err);
    }
    if (rc == 0 && s->opts.batch_id_window > 0) {
        sqlite3_bind_int64(s->is.batch_prune, 1, a->rev - s->opts.batch_id_window);
        rc = store__iexec(&s->wc, s->is.batch_prune, "apply: prune batch ids", err);
    }
    return rc;
}

static int apply_once(struct apply_ctx *a, char *err)
{
    struct store *s = a->s;
    const struct store_batch *b = a->batch;
    sqlite3_stmt *st;
    int src, rc;

    a->out.len = 0;
    if (a->out.data != NULL)
        a->out.data[0] = '\0';
    rc = store__iexec(&s->wc, s->is.begin_immediate, "apply: BEGIN", err);
    if (rc != 0)
        return rc;

    st = s->is.batch_get;
    sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
    src = store__istep(&s->wc, st);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = store__ierror(&s->wc, st, src, "apply: batch id lookup", err);
        sqlite3_clear_bindings(st);
        goto rollback;
    }
    a->dup = src == SQLITE_ROW;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st); /* no pointer into the caller's batch kept */

    if (!a->dup) {
        for (size_t t = 0; t < b->n_txns; t++) {
            rc = apply_txn(a, t, err);
            if (rc != 0)
                goto rollback;
        }
        sqlite3_bind_text(s->is.batch_put, 1, b->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->is.batch_put, 2, a->rev);
        rc = store__iexec(&s->wc, s->is.batch_put, "apply: store batch id", err);
        sqlite3_clear_bindings(s->is.batch_put);
        if (rc == 0)
            rc = prune(a, err);
        if (rc != 0)
            goto rollback;
    }
    sqlite3_bind_int64(s->is.meta_put, 1, a->rev);
    sqlite3_bind_int64(s->is.meta_put, 2, a->version);
    sqlite3_bind_int64(s->is.meta_put, 3, b->ts_ms);
    rc = store__iexec(&s->wc, s->is.meta_put, "apply: store position", err);
    if (rc == 0)
        rc = store__schema_read(s, &a->schema_version, err);
    if (rc == 0)
        rc = store__iexec(&s->wc, s->is.commit, "apply: COMMIT", err);
    if (rc != 0)
        goto rollback;
    return 0;

rollback:
    /* Some failures (disk full, I/O, OR ROLLBACK) end the transaction by
     * themselves; ROLLBACK is then an error we do not want to report. */
    if (!sqlite3_get_autocommit(s->wc.db)) {
        int rrc = store__iexec(&s->wc, s->is.rollback, "apply: ROLLBACK", NULL);
        (void)rrc; /* the first error is the one to report */
    }
    return rc;
}

int store_apply(struct store *s, const struct store_batch *batch, int64_t rev, int64_t version,
                store_txn_cb cb, void *data, char *err)
{
    struct apply_ctx a;
    int rc;

    if (batch == NULL || batch->id == NULL || (batch->n_txns > 0 && batch->txns == NULL))
        return mr_seterr(err, MR_EINVAL, "apply: batch without id or transactions");
    if (rev <= s->pos.rev)
        return mr_seterr(err, MR_EINVAL,
                         "apply batch %s at revision %" PRId64 ": not after the applied revision %"
                         PRId64, batch->id, rev, s->pos.rev);
    memset(&a, 0, sizeof(a));
    a.s = s;
    a.batch = batch;
    a.rev = rev;
    a.version = version;
    /* +1: calloc of 0 bytes may return NULL. */
    a.res = mr_calloc(batch->n_txns + 1, sizeof(*a.res));
    a.forced = mr_calloc(batch->n_txns + 1, sizeof(*a.forced));
    mr_buf_init(&a.out);

    /* Each restart records one more failed transaction: at most n_txns. */
    for (size_t attempt = 0; attempt <= batch->n_txns; attempt++) {
        rc = apply_once(&a, err);
        if (rc != APPLY_RESTART)
            break;
    }
    if (rc == APPLY_RESTART) /* cannot happen: every restart forces one more */
        rc = mr_seterr(err, MR_EIO, "apply batch %s: does not converge", batch->id);
    if (rc != 0)
        goto out;

    s->pos.rev = rev;
    s->pos.version = version;
    s->pos.ts_ms = batch->ts_ms;
    store__schema_note(s, a.schema_version);
    /* Only now: a callback must never report a result that was not
     * committed.  A duplicate batch was answered when first applied. */
    if (!a.dup && cb != NULL) {
        for (size_t t = 0; t < batch->n_txns; t++) {
            const struct txn_res *r = &a.res[t];
            cb(&batch->txns[t], r->rc, a.out.data ? a.out.data + r->off : "", r->len, r->replayed,
               data);
        }
    }
out:
    mr_buf_close(&a.out);
    mr_free(a.forced);
    mr_free(a.res);
    return rc;
}
