/* store.c -- one region's replica of the global SQL database (see store.h):
 * opening the database, validating requests, local reads, lookups.
 * store_apply is in apply.c, the statement machinery in stmt.c, time and
 * randomness in determinism.c, store_digest in digest.c.
 *
 * Depends on SQLite (WAL mode, two connections), jansson, src/common.
 */
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "store_int.h"

#define STORE_BUSY_TIMEOUT_MS 5000

void store_opts_default(struct store_opts *o)
{
    o->idempotency_window_ms = INT64_C(24) * 3600 * 1000;
    o->batch_id_window = 100000;
    o->max_rows = STORE_DEFAULT_MAX_ROWS;
    o->stmt_cache_size = 256;
    o->read_timeout_ms = 10000;
}

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS _meridian_meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _meridian_idem(key TEXT PRIMARY KEY, rc INTEGER NOT NULL,"
    " result TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS _meridian_idem_created ON _meridian_idem(created_ms);"
    "CREATE TABLE IF NOT EXISTS _meridian_batches(id TEXT PRIMARY KEY, rev INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _meridian_batches_rev ON _meridian_batches(rev);";

/* Settings both connections get. */
static int conn_config(sqlite3 *db, const char *path, char *err)
{
    int rc = sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);

    /* Defensive: no writable_schema, no raw page writes (sqlite_dbpage), no
     * journal_mode=OFF -- nothing that can corrupt the file from SQL. */
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    if (rc != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "open %s: configure: %s", path, sqlite3_errmsg(db));
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    /* Beyond this a value is a deterministic "too big" error rather than an
     * allocation that fails on one replica only. */
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, STORE_MAX_VALUE_BYTES);
    sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, STORE_MAX_SQL_BYTES + 1);
    sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, STORE_MAX_PARAMS);
    return 0;
}

static int open_error(sqlite3 *db, const char *path, int rc, char *err)
{
    int mrc = store__map_rc(rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
    return mr_seterr(err, mrc, "open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Run <sql> (several statements) on the apply connection, as the store. */
static int iexec_script(struct store_conn *c, const char *sql, const char *path, char *err)
{
    int rc;

    c->internal = 1;
    rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    c->internal = 0;
    if (rc != SQLITE_OK)
        return open_error(c->db, path, rc, err);
    return 0;
}

static int open_apply(struct store *s, char *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_open_v2(s->path, &db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                             SQLITE_OPEN_EXRESCODE,
                         s->det.name);
    if (rc != SQLITE_OK) {
        open_error(db, s->path, rc, err);
        sqlite3_close(db);
        return store__map_rc(rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
    }
    store__conn_init(&s->wc, s, db, STORE_CONN_APPLY, s->opts.stmt_cache_size);
    rc = conn_config(db, s->path, err);
    if (rc != 0)
        return rc;

    /* WAL: the read connection never blocks the applier nor the reverse.
     * synchronous=NORMAL: a power loss may drop the last transactions, but
     * etcd is the durable log and the applied position is committed in the
     * same SQLite transaction as the effects, so a restart replays exactly
     * what was lost.  FULL would add an fsync per batch for nothing. */
    s->wc.internal = 1;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    s->wc.internal = 0;
    if (rc != SQLITE_ROW) {
        open_error(db, s->path, rc, err);
        sqlite3_finalize(st);
        return store__map_rc(rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
    }
    if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        sqlite3_finalize(st);
        return mr_seterr(err, MR_EIO, "open %s: cannot enable WAL mode", s->path);
    }
    sqlite3_finalize(st);
    rc = iexec_script(&s->wc, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", s->path, err);
    if (rc == 0)
        rc = iexec_script(&s->wc, "BEGIN IMMEDIATE;", s->path, err);
    if (rc == 0) {
        rc = iexec_script(&s->wc, schema_sql, s->path, err);
        if (rc == 0)
            rc = iexec_script(&s->wc, "COMMIT;", s->path, err);
        if (rc != 0 && !sqlite3_get_autocommit(db))
            (void)iexec_script(&s->wc, "ROLLBACK;", s->path, NULL);
    }
    if (rc == 0)
        rc = store__det_functions(s, db, err);
    return rc;
}

static int open_read(struct store *s, char *err)
{
    sqlite3 *db = NULL;
    int rc;

    /* Read-only at the file level: a write that got past every check still
     * cannot change this replica outside the log. */
    rc = sqlite3_open_v2(s->path, &db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK) {
        open_error(db, s->path, rc, err);
        sqlite3_close(db);
        return store__map_rc(rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
    }
    store__conn_init(&s->rc, s, db, STORE_CONN_READ, s->opts.stmt_cache_size);
    return conn_config(db, s->path, err);
}

static int prepare_internal(struct store *s, char *err)
{
    struct {
        struct store_conn *c;
        sqlite3_stmt **st;
        const char *sql;
    } defs[] = {
        {&s->wc, &s->is.begin_immediate, "BEGIN IMMEDIATE"},
        {&s->wc, &s->is.commit, "COMMIT"},
        {&s->wc, &s->is.rollback, "ROLLBACK"},
        {&s->wc, &s->is.savepoint, "SAVEPOINT mr_txn"},
        {&s->wc, &s->is.release, "RELEASE mr_txn"},
        {&s->wc, &s->is.rollback_to, "ROLLBACK TO mr_txn"},
        {&s->wc, &s->is.batch_get, "SELECT 1 FROM _meridian_batches WHERE id=?1"},
        {&s->wc, &s->is.batch_put, "INSERT INTO _meridian_batches(id, rev) VALUES(?1, ?2)"},
        {&s->wc, &s->is.batch_prune, "DELETE FROM _meridian_batches WHERE rev < ?1"},
        {&s->wc, &s->is.idem_get, "SELECT rc, result FROM _meridian_idem WHERE key=?1"},
        {&s->wc, &s->is.idem_put,
         "INSERT INTO _meridian_idem(key, rc, result, created_ms) VALUES(?1, ?2, ?3, ?4)"},
        {&s->wc, &s->is.idem_prune, "DELETE FROM _meridian_idem WHERE created_ms < ?1"},
        {&s->wc, &s->is.meta_put,
         "INSERT INTO _meridian_meta(k, v) VALUES('applied_rev', ?1), ('applied_version', ?2),"
         " ('applied_ts', ?3) ON CONFLICT(k) DO UPDATE SET v=excluded.v"},
        {&s->wc, &s->is.schema_version, "PRAGMA schema_version"},
        {&s->rc, &s->is.r_begin, "BEGIN"},
        {&s->rc, &s->is.r_commit, "COMMIT"},
        {&s->rc, &s->is.r_rollback, "ROLLBACK"},
        {&s->rc, &s->is.r_idem_get, "SELECT rc, result FROM _meridian_idem WHERE key=?1"},
    };

    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int rc = store__iprepare(defs[i].c, defs[i].sql, defs[i].st, err);
        if (rc != 0)
            return mr_wraperr(err, rc, "open %s", s->path);
    }
    return 0;
}

static void finalize_internal(struct store *s)
{
    sqlite3_stmt **all = (sqlite3_stmt **)&s->is;

    /* struct store_istmts is nothing but statement pointers. */
    for (size_t i = 0; i < sizeof(s->is) / sizeof(sqlite3_stmt *); i++) {
        sqlite3_finalize(all[i]);
        all[i] = NULL;
    }
}

static int load_position(struct store *s, char *err)
{
    sqlite3_stmt *st = NULL;
    int rc = store__iprepare(&s->wc, "SELECT k, v FROM _meridian_meta", &st, err);

    if (rc != 0)
        return mr_wraperr(err, rc, "open %s", s->path);
    memset(&s->pos, 0, sizeof(s->pos));
    while ((rc = store__istep(&s->wc, st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        int64_t v = sqlite3_column_int64(st, 1);
        if (k == NULL)
            continue;
        if (strcmp(k, "applied_rev") == 0)
            s->pos.rev = v;
        else if (strcmp(k, "applied_version") == 0)
            s->pos.version = v;
        else if (strcmp(k, "applied_ts") == 0)
            s->pos.ts_ms = v;
    }
    if (rc != SQLITE_DONE) {
        rc = open_error(s->wc.db, s->path, rc, err);
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    return 0;
}

int store_open(const char *path, const struct store_opts *opts, struct store **out, char *err)
{
    struct store *s;
    int rc;

    if (path == NULL || out == NULL)
        return mr_seterr(err, MR_EINVAL, "store_open: no path");
    s = mr_calloc(1, sizeof(*s));
    if (opts != NULL)
        s->opts = *opts;
    else
        store_opts_default(&s->opts);
    if (s->opts.max_rows <= 0 || s->opts.idempotency_window_ms < 0 || s->opts.batch_id_window < 0 ||
        s->opts.read_timeout_ms < 0) {
        mr_free(s);
        return mr_seterr(err, MR_EINVAL, "open %s: bad options (max_rows must be > 0, windows "
                         ">= 0)", path);
    }
    s->path = mr_strdup(path);
    rc = store__det_init(s, err);
    if (rc != 0)
        goto err_after_alloc;
    rc = open_apply(s, err);
    if (rc != 0)
        goto err_after_vfs;
    rc = open_read(s, err);
    if (rc != 0)
        goto err_after_vfs;
    rc = prepare_internal(s, err);
    if (rc != 0)
        goto err_after_vfs;
    rc = load_position(s, err);
    if (rc == 0)
        rc = store__schema_read(s, &s->schema_version, err);
    if (rc != 0)
        goto err_after_vfs;
    *out = s;
    return 0;

err_after_vfs:
    /* Connections are closed before the VFS they use goes away. */
    finalize_internal(s);
    store__conn_close(&s->rc);
    store__conn_close(&s->wc);
    store__det_close(s);
err_after_alloc:
    mr_free(s->path);
    mr_free(s);
    return rc;
}

int store_read_pin(struct store *s)
{
    /* autocommit is also back on if SQLite rolled the transaction back by
     * itself (an interrupted read): then this simply starts a new one. */
    if (!sqlite3_get_autocommit(s->rc.db))
        return 0;
    return store__iexec(&s->rc, s->is.r_begin, "read: pin", NULL);
}

int store_read_unpin(struct store *s)
{
    if (sqlite3_get_autocommit(s->rc.db))
        return 0;
    /* A snapshot left open would hide every later apply from the reads:
     * if COMMIT fails, ROLLBACK; a read transaction holds nothing else. */
    if (store__iexec(&s->rc, s->is.r_commit, "read: unpin", NULL) != 0 &&
        store__iexec(&s->rc, s->is.r_rollback, "read: unpin", NULL) != 0)
        return MR_EIO;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (store_read_unpin(s) != 0) {
        /* sqlite3_close reports the open transaction's statements below. */
    }
    finalize_internal(s);
    store__conn_close(&s->rc);
    store__conn_close(&s->wc);
    store__det_close(s);
    mr_free(s->path);
    mr_free(s);
}

int store__schema_read(struct store *s, int64_t *out, char *err)
{
    sqlite3_stmt *st = s->is.schema_version;
    int src = store__istep(&s->wc, st);

    if (src != SQLITE_ROW)
        return store__ierror(&s->wc, st, src, "schema version", err);
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

void store__schema_note(struct store *s, int64_t version)
{
    if (version != s->schema_version) {
        s->schema_version = version;
        s->schema_gen++;
    }
}

void store_position(const struct store *s, struct store_position *out)
{
    *out = s->pos;
}

static int check_count(size_t n_stmts, const struct store_stmt *stmts, char *err)
{
    if (n_stmts == 0 || stmts == NULL)
        return mr_seterr(err, MR_EINVAL, "no statements");
    if (n_stmts > STORE_MAX_STATEMENTS)
        return mr_seterr(err, MR_EINVAL, "%zu statements: at most %d per request", n_stmts,
                         STORE_MAX_STATEMENTS);
    return 0;
}

int store_check(struct store *s, const struct store_stmt *stmts, size_t n_stmts, int *is_write,
                char *err)
{
    /* The first statement that a write transaction would refuse although
     * it does not write itself; judged once we know whether one writes. */
    char read_only_issue[MR_ERRMSG_LEN] = "";
    int seen_write = 0;
    int rc = check_count(n_stmts, stmts, err);

    *is_write = 0;
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n_stmts; i++) {
        struct store_cstmt *cs = NULL;
        size_t idx = i + 1;

        rc = store__stmt_acquire(&s->rc, idx, stmts[i].sql, &cs, err);
        if (rc == MR_ESQL && seen_write) {
            /* May use schema an earlier write creates: judged when applied. */
            if (err != NULL)
                err[0] = '\0';
            continue;
        }
        if (rc != 0)
            return rc;
        rc = store__stmt_bind(cs, idx, stmts[i].params, err);
        if (rc == 0 && read_only_issue[0] == '\0' && !cs->writes) {
            if (cs->soft != NULL)
                snprintf(read_only_issue, sizeof(read_only_issue), "statement %zu: %s", idx,
                         cs->soft);
            else if (cs->pragma)
                snprintf(read_only_issue, sizeof(read_only_issue),
                         "statement %zu: PRAGMA is not allowed in a transaction that writes", idx);
            else if (cs->explain)
                snprintf(read_only_issue, sizeof(read_only_issue),
                         "statement %zu: EXPLAIN is not allowed in a transaction that writes", idx);
        }
        if (cs->writes)
            seen_write = 1;
        store__stmt_release(&s->rc, cs);
        if (rc != 0)
            return rc;
    }
    if (seen_write && read_only_issue[0] != '\0')
        return mr_seterr(err, MR_EDENIED, "%s", read_only_issue);
    *is_write = seen_write;
    return 0;
}

int store_read(struct store *s, const struct store_stmt *stmts, size_t n_stmts,
               struct mr_buf *out, char *err)
{
    struct store_conn *c = &s->rc;
    size_t orig_len = out->len;
    /* One statement is its own snapshot: skip BEGIN/COMMIT, two statement
     * executions out of three on the point-read path.  Inside a pinned read
     * transaction (store_read_pin) every statement shares it anyway. */
    int in_txn = n_stmts > 1 && sqlite3_get_autocommit(c->db);
    int rc = check_count(n_stmts, stmts, err);

    if (rc != 0)
        return rc;
    if (in_txn) {
        rc = store__iexec(c, s->is.r_begin, "read: BEGIN", err);
        if (rc != 0)
            return rc;
    }
    if (s->opts.read_timeout_ms > 0)
        c->deadline_us = mr_mono_us() + s->opts.read_timeout_ms * 1000;
    mr_buf_putc(out, '[');
    for (size_t i = 0; i < n_stmts && rc == 0; i++) {
        struct store_cstmt *cs = NULL;
        size_t idx = i + 1;

        rc = store__stmt_acquire(c, idx, stmts[i].sql, &cs, err);
        if (rc != 0)
            break;
        if (cs->writes)
            rc = mr_seterr(err, MR_EDENIED, "statement %zu writes: submit it as a write "
                           "transaction", idx);
        if (rc == 0)
            rc = store__stmt_bind(cs, idx, stmts[i].params, err);
        if (rc == 0) {
            if (i > 0)
                mr_buf_putc(out, ',');
            rc = store__stmt_run(c, cs, idx, s->opts.max_rows, out, err);
        }
        store__stmt_release(c, cs);
    }
    c->deadline_us = 0;
    if (in_txn) {
        /* A read transaction commits nothing; COMMIT just ends it. */
        int rc2 = store__iexec(c, rc == 0 ? s->is.r_commit : s->is.r_rollback, "read: end",
                               rc == 0 ? err : NULL);
        if (rc == 0)
            rc = rc2;
    }
    if (rc != 0) {
        out->len = orig_len;
        if (out->data != NULL)
            out->data[orig_len] = '\0';
        return rc;
    }
    mr_buf_putc(out, ']');
    return 0;
}

int store_idem_lookup(struct store *s, const char *key, int *rc, struct mr_buf *result)
{
    sqlite3_stmt *st = s->is.r_idem_get;
    int found = 0;

    if (key == NULL)
        return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (store__istep(&s->rc, st) == SQLITE_ROW) {
        *rc = sqlite3_column_int(st, 0);
        mr_buf_append(result, sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        found = 1;
    }
    /* A failed lookup reads as "not found": the write then goes through
     * the log, and store_apply checks the key again, authoritatively. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found;
}

int store_integrity_check(struct store *s, char *err)
{
    sqlite3_stmt *st = NULL;
    int rc = store__iprepare(&s->wc, "PRAGMA integrity_check(10)", &st, err);
    int src;
    int bad = 0;

    if (rc != 0)
        return rc;
    if (err != NULL)
        err[0] = '\0';
    while ((src = store__istep(&s->wc, st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line != NULL && strcmp(line, "ok") == 0)
            continue;
        /* Keep the first problem: it is what a reader needs first. */
        if (!bad)
            mr_seterr(err, MR_ECORRUPT, "integrity check: %s", line ? line : "?");
        bad = 1;
    }
    if (src != SQLITE_DONE) {
        int mrc = store__map_rc(src) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
        mr_seterr(err, mrc, "integrity check: %s", sqlite3_errmsg(s->wc.db));
        sqlite3_finalize(st);
        return mrc;
    }
    sqlite3_finalize(st);
    return bad ? MR_ECORRUPT : 0;
}
