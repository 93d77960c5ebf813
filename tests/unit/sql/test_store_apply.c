/* Unit tests of src/sql/store: deterministic apply on two replicas,
 * failing and runaway transactions, idempotency, positions, digests, the
 * statement cache, and I/O failures.  Reads and checks: test_store.c. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/vfswrap.h"
#include "store_fixture.h"

/* Apply -------------------------------------------------------------------- */

static void apply_reports_rows_affected_and_insert_id(void **state)
{
    struct fix *f = *state;
    struct got g;

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    assert_int_equal(apply_sql(f, f->a, "b2", 2, "INSERT INTO t(v) VALUES(1),(2)", &g), 0);
    assert_string_equal(g.result[0], "[{\"columns\":[],\"rows\":[],\"rows_affected\":2,"
                                     "\"last_insert_id\":2}]");
    assert_int_equal(apply_sql(f, f->a, "b3", 3, "UPDATE t SET v = v + 1 RETURNING id", &g), 0);
    assert_string_equal(g.result[0], "[{\"columns\":[\"id\"],\"rows\":[[1],[2]],"
                                     "\"rows_affected\":2,\"last_insert_id\":0}]");
    /* DDL does not inherit the previous statement's count. */
    assert_int_equal(apply_sql(f, f->a, "b4", 4, "CREATE INDEX ti ON t(v)", &g), 0);
    assert_string_equal(g.result[0], "[{\"columns\":[],\"rows\":[],\"rows_affected\":0,"
                                     "\"last_insert_id\":0}]");
}

static void random_and_time_are_the_transactions(void **state)
{
    struct fix *f = *state;
    struct store_stmt st = {"INSERT INTO r VALUES(random(), hex(randomblob(16)), "
                            "datetime('now'), unixepoch('now'), CURRENT_TIMESTAMP) RETURNING *",
                            NULL};
    struct store_txn t[2] = {TXN1(&st, "t1", NULL, 1700000000000, 7),
                             TXN1(&st, "t2", NULL, 1700000000000, 8)};
    struct store_batch b = {"b2", "r1", 1700000000000, t, 2};
    struct got ga, gb;

    apply_both(f, "b1", 1, "CREATE TABLE r(n, h, dt, ue, ts)");
    memset(&ga, 0, sizeof(ga));
    memset(&gb, 0, sizeof(gb));
    assert_int_equal(store_apply(f->a, &b, 2, 2, collect, &ga, f->err), 0);
    assert_int_equal(store_apply(f->b, &b, 2, 2, collect, &gb, f->err), 0);
    assert_int_equal(ga.rc[0], 0);
    assert_string_equal(ga.result[0], gb.result[0]);
    assert_string_equal(ga.result[1], gb.result[1]);
    /* Different seeds, different values. */
    assert_string_not_equal(ga.result[0], ga.result[1]);
    assert_non_null(strstr(ga.result[0], "\"2023-11-14 22:13:20\",1700000000,\"2023-11-14 "
                                         "22:13:20\""));
    digests_equal(f);
    /* Reads keep the real clock. */
    assert_int_equal(read1(f, f->a, "SELECT unixepoch('now') > 1700000000", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    /* randomblob is bounded. */
    assert_int_equal(apply_sql(f, f->a, "b3", 3, "SELECT randomblob(2000000)", &ga), 0);
    assert_int_equal(ga.rc[0], MR_ESQL);
    assert_non_null(strstr(ga.result[0], "randomblob(2000000): at most"));
}

static void failing_txn_leaves_no_trace(void **state)
{
    struct fix *f = *state;
    struct store_stmt ok1 = {"INSERT INTO s VALUES('a', 5)", NULL};
    struct store_stmt bad[2] = {{"UPDATE s SET qty = qty - 1 WHERE item = 'a'", NULL},
                                {"UPDATE s SET qty = qty - 10 WHERE item = 'a'", NULL}};
    struct store_stmt ok2 = {"UPDATE s SET qty = qty - 2 WHERE item = 'a'", NULL};
    struct store_txn t[3] = {TXN1(&ok1, "t1", NULL, 1, 1), TXN1(bad, "t2", NULL, 1, 1),
                             TXN1(&ok2, "t3", NULL, 1, 1)};
    struct store_batch b = {"b2", "r1", 1, t, 3};
    struct got g;

    t[1].n_stmts = 2;
    apply_both(f, "b1", 1, "CREATE TABLE s(item TEXT PRIMARY KEY, qty INTEGER CHECK (qty >= 0))");
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_apply(f->a, &b, 2, 2, collect, &g, f->err), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(g.rc[1], MR_ECONSTRAINT);
    assert_string_equal(g.result[1], "statement 2: CHECK constraint failed: qty >= 0");
    assert_int_equal(g.rc[2], 0);
    assert_int_equal(read1(f, f->a, "SELECT qty FROM s", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[3]]"));
}

static void or_rollback_does_not_undo_other_txns(void **state)
{
    struct fix *f = *state;
    struct store_stmt s1 = {"INSERT INTO u VALUES(1)", NULL};
    struct store_stmt s2 = {"INSERT OR ROLLBACK INTO u VALUES(1)", NULL};
    struct store_stmt s3 = {"INSERT INTO u VALUES(3)", NULL};
    struct store_txn t[3] = {TXN1(&s1, "t1", NULL, 1, 1), TXN1(&s2, "t2", NULL, 1, 1),
                             TXN1(&s3, "t3", NULL, 1, 1)};
    struct store_batch b = {"b2", "r1", 1, t, 3};
    struct got g;

    apply_both(f, "b1", 1, "CREATE TABLE u(a PRIMARY KEY)");
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_apply(f->a, &b, 2, 2, collect, &g, f->err), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(g.rc[1], MR_ECONSTRAINT);
    assert_int_equal(g.rc[2], 0);
    assert_int_equal(read1(f, f->a, "SELECT a FROM u ORDER BY a", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1],[3]]"));
}

static void deferred_foreign_key_fails_its_own_txn(void **state)
{
    struct fix *f = *state;
    struct store_stmt s1 = {"INSERT INTO c VALUES(1)", NULL};
    struct store_stmt s2[2] = {{"INSERT INTO c VALUES(2)", NULL}, {"INSERT INTO p VALUES(2)", NULL}};
    struct store_txn t[2] = {TXN1(&s1, "t1", NULL, 1, 1), TXN1(s2, "t2", NULL, 1, 1)};
    struct store_batch b = {"b3", "r1", 1, t, 2};
    struct got g;

    t[1].n_stmts = 2;
    apply_both(f, "b1", 1, "CREATE TABLE p(k PRIMARY KEY)");
    apply_both(f, "b2", 2, "CREATE TABLE c(x REFERENCES p(k) DEFERRABLE INITIALLY DEFERRED)");
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_apply(f->a, &b, 3, 3, collect, &g, f->err), 0);
    assert_int_equal(g.rc[0], MR_ECONSTRAINT);
    assert_int_equal(g.rc[1], 0);
    assert_int_equal(read1(f, f->a, "SELECT x FROM c", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[2]]"));
}

static void duplicate_batch_only_advances_position(void **state)
{
    struct fix *f = *state;
    struct store_position pos;
    struct got g;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    assert_int_equal(apply_sql(f, f->a, "b2", 2, "INSERT INTO t VALUES(1)", &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(apply_sql(f, f->a, "b2", 5, "INSERT INTO t VALUES(1)", &g), 0);
    assert_int_equal(g.n, 0);
    store_position(f->a, &pos);
    assert_int_equal(pos.rev, 5);
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
}

static void idempotency_key_replays_first_result(void **state)
{
    struct fix *f = *state;
    struct store_stmt st = {"INSERT INTO t(v) VALUES('x') RETURNING id", NULL};
    struct store_txn t1 = TXN1(&st, "t1", "key-1", 1000, 1);
    struct store_batch b2 = {"b2", "r1", 1000, &t1, 1};
    struct store_batch b3 = {"b3", "r1", 2000, &t1, 1};
    struct got g1, g2;
    struct mr_buf res;
    int rc = 1;

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    memset(&g1, 0, sizeof(g1));
    memset(&g2, 0, sizeof(g2));
    assert_int_equal(store_apply(f->a, &b2, 2, 2, collect, &g1, f->err), 0);
    assert_int_equal(g1.replayed[0], 0);
    assert_int_equal(store_apply(f->a, &b3, 3, 3, collect, &g2, f->err), 0);
    assert_int_equal(g2.replayed[0], 1);
    assert_int_equal(g2.rc[0], g1.rc[0]);
    assert_string_equal(g2.result[0], g1.result[0]);
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    mr_buf_init(&res);
    assert_int_equal(store_idem_lookup(f->a, "key-1", &rc, &res), 1);
    assert_int_equal(rc, 0);
    assert_string_equal(res.data, g1.result[0]);
    assert_int_equal(store_idem_lookup(f->a, "key-2", &rc, &res), 0);
    mr_buf_close(&res);
    /* A failure is a first result too: the retry gets the same error. */
    {
        struct store_stmt bad = {"INSERT INTO t(id) VALUES(1)", NULL};
        struct store_txn tb = TXN1(&bad, "t2", "key-3", 3000, 1);
        struct store_batch b4 = {"b4", "r1", 3000, &tb, 1};
        struct store_batch b5 = {"b5", "r1", 4000, &tb, 1};

        memset(&g1, 0, sizeof(g1));
        memset(&g2, 0, sizeof(g2));
        assert_int_equal(store_apply(f->a, &b4, 4, 4, collect, &g1, f->err), 0);
        assert_int_equal(g1.rc[0], MR_ECONSTRAINT);
        assert_int_equal(store_apply(f->a, &b5, 5, 5, collect, &g2, f->err), 0);
        assert_int_equal(g2.rc[0], MR_ECONSTRAINT);
        assert_int_equal(g2.replayed[0], 1);
        assert_string_equal(g2.result[0], "statement 1: UNIQUE constraint failed: t.id");
    }
}

static void idempotency_keys_are_pruned_by_entry_time(void **state)
{
    struct fix *f = *state;
    struct store_stmt st = {"SELECT 1", NULL};
    struct store_txn t1 = TXN1(&st, "t1", "old", 1000, 1);
    struct store_txn t2 = TXN1(&st, "t2", "new", 1000, 1);
    struct store_batch b1 = {"b1", "r1", 1000, &t1, 1};
    /* 24h + 1s later by the entry's clock. */
    struct store_batch b2 = {"b2", "r1", 1000 + 86401000, &t2, 1};
    struct mr_buf res;
    int rc;

    assert_int_equal(store_apply(f->a, &b1, 1, 1, NULL, NULL, f->err), 0);
    assert_int_equal(store_apply(f->a, &b2, 2, 2, NULL, NULL, f->err), 0);
    mr_buf_init(&res);
    assert_int_equal(store_idem_lookup(f->a, "old", &rc, &res), 0);
    assert_int_equal(store_idem_lookup(f->a, "new", &rc, &res), 1);
    mr_buf_close(&res);
}

static void position_survives_reopen(void **state)
{
    struct fix *f = *state;
    struct store_position pos;
    struct store_stmt st = {"CREATE TABLE t(a)", NULL};
    struct store_txn t = TXN1(&st, "t1", NULL, 1, 1);
    struct store_batch b = {"b1", "r1", 1234, &t, 1};

    assert_int_equal(store_apply(f->a, &b, 17, 3, NULL, NULL, f->err), 0);
    store_close(f->a);
    f->a = NULL;
    assert_int_equal(store_open(f->path_a, NULL, &f->a, f->err), 0);
    store_position(f->a, &pos);
    assert_int_equal(pos.rev, 17);
    assert_int_equal(pos.version, 3);
    assert_int_equal(pos.ts_ms, 1234);
    assert_int_equal(store_integrity_check(f->a, f->err), 0);
}

static void backup_is_a_replica_at_the_same_position(void **state)
{
    struct fix *f = *state;
    struct store_position pos;
    struct store *copy = NULL;
    char path[160], d1[65], d2[65];

    apply_both(f, "b1", 5, "CREATE TABLE t(a)");
    apply_both(f, "b2", 9, "INSERT INTO t VALUES (random())");
    snprintf(path, sizeof(path), "%s/copy.db", f->dir);
    assert_int_equal(store_backup(f->a, path, f->err), 0);
    assert_int_equal(store_open(path, NULL, &copy, f->err), 0);
    store_position(copy, &pos);
    assert_int_equal(pos.rev, 9);
    assert_int_equal(store_digest(copy, d1, f->err), 0);
    assert_int_equal(store_digest(f->b, d2, f->err), 0);
    assert_string_equal(d1, d2);
    assert_int_equal(store_integrity_check(copy, f->err), 0);
    store_close(copy);
    /* A path that cannot be written is an error, not a crash. */
    assert_int_equal(store_backup(f->a, "/nonexistent-dir/copy.db", f->err), MR_EIO);
    assert_non_null(strstr(f->err, "/nonexistent-dir/copy.db"));
}

static void pinned_reads_share_a_snapshot_until_unpinned(void **state)
{
    struct fix *f = *state;

    apply_both(f, "b1", 5, "CREATE TABLE t(a)");
    apply_both(f, "b2", 6, "INSERT INTO t VALUES (1)");
    assert_int_equal(store_read_pin(f->a), 0);
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    assert_int_equal(store_read_pin(f->a), 0); /* idempotent */
    apply_both(f, "b3", 7, "INSERT INTO t VALUES (2)");
    /* Still the pinned snapshot: that is why the node unpins before applying. */
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    assert_int_equal(store_read_unpin(f->a), 0);
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[2]]"));
    assert_int_equal(store_read_unpin(f->a), 0); /* idempotent */
}

static void rev_must_increase(void **state)
{
    struct fix *f = *state;
    struct got g;

    apply_both(f, "b1", 5, "CREATE TABLE t(a)");
    assert_int_equal(apply_sql(f, f->a, "b2", 5, "INSERT INTO t VALUES(1)", &g), MR_EINVAL);
    assert_int_equal(apply_sql(f, f->a, "b2", 4, "INSERT INTO t VALUES(1)", &g), MR_EINVAL);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(f->err, "not after the applied revision 5"));
}

static void replicas_have_equal_digests(void **state)
{
    struct fix *f = *state;
    struct store_stmt st[3] = {
        {"INSERT INTO k(id, v) VALUES(?, ?)", NULL},
        {"INSERT INTO w VALUES(:a, :b)", NULL},
        {"UPDATE k SET v = v || '!' WHERE id % 2 = 0", NULL},
    };
    struct store_txn t[8];
    struct store_batch b = {"b3", "r1", 5, t, 8};
    json_t *p[16];
    struct got g;

    apply_both(f, "b1", 1, "CREATE TABLE k(id INTEGER PRIMARY KEY, v TEXT, r DEFAULT (1.5))");
    apply_both(f, "b2", 2, "CREATE TABLE w(a, b, PRIMARY KEY(b, a)) WITHOUT ROWID");
    for (int i = 0; i < 8; i++) {
        struct store_stmt *ss = mr_malloc(3 * sizeof(*ss));
        memcpy(ss, st, sizeof(st));
        p[2 * i] = json_pack("[i, s]", i, "v");
        p[2 * i + 1] = json_pack("{s:i, s:s}", "a", i, "b", i % 2 ? "x" : "y");
        ss[0].params = p[2 * i];
        ss[1].params = p[2 * i + 1];
        t[i] = (struct store_txn)TXN1(ss, "t", NULL, 5, (uint64_t)i);
        t[i].n_stmts = 3;
    }
    assert_int_equal(store_apply(f->a, &b, 3, 3, collect, (memset(&g, 0, sizeof(g)), &g), f->err),
                     0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(g.rc[i], 0);
    assert_int_equal(store_apply(f->b, &b, 3, 3, NULL, NULL, f->err), 0);
    digests_equal(f);
    for (int i = 0; i < 8; i++)
        mr_free((void *)t[i].stmts);
    for (int i = 0; i < 16; i++)
        json_decref(p[i]);
}

static void digest_differs_when_one_value_differs(void **state)
{
    struct fix *f = *state;
    char da[65], db[65];

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    digests_equal(f);
    assert_int_equal(store_digest(f->a, da, f->err), 0);
    assert_int_equal(strlen(da), 64);
    /* 1 and '1' are different values. */
    {
        struct got g;
        assert_int_equal(apply_sql(f, f->a, "b2", 2, "INSERT INTO t VALUES(1, 1)", &g), 0);
        assert_int_equal(apply_sql(f, f->b, "b2", 2, "INSERT INTO t VALUES(1, '1')", &g), 0);
    }
    assert_int_equal(store_digest(f->a, da, f->err), 0);
    assert_int_equal(store_digest(f->b, db, f->err), 0);
    assert_string_not_equal(da, db);
}

static void small_statement_cache_evicts_and_rechecks(void **state)
{
    struct fix *f = *state;
    struct store_opts o;
    struct store *s;
    char path[160], sql[64];
    struct got g;

    store_opts_default(&o);
    o.stmt_cache_size = 2;
    snprintf(path, sizeof(path), "%s/c.db", f->dir);
    assert_int_equal(store_open(path, &o, &s, f->err), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            snprintf(sql, sizeof(sql), "SELECT %d", i);
            assert_int_equal(read1(f, s, sql, NULL), 0);
        }
    }
    /* A cached statement re-prepared after a schema change is judged again:
     * the trigger makes the same cached INSERT refused. */
    assert_int_equal(apply_sql(f, s, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)", &g), 0);
    assert_int_equal(apply_sql(f, s, "b2", 2, "INSERT INTO t(v) VALUES(1)", &g), 0);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(apply_sql(f, s, "b3", 3, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                                              "SELECT changes(); END", &g), 0);
    assert_int_equal(apply_sql(f, s, "b4", 4, "INSERT INTO t(v) VALUES(1)", &g), 0);
    assert_int_equal(g.rc[0], MR_EDENIED);
    store_close(s);
}

static void runaway_statements_are_stopped(void **state)
{
    struct fix *f = *state;
    struct store_stmt s1 = {"INSERT INTO u VALUES(1)", NULL};
    struct store_stmt s2 = {"INSERT INTO u WITH RECURSIVE c(x) AS (SELECT 10 UNION ALL "
                            "SELECT x+1 FROM c) SELECT x FROM c", NULL};
    struct store_stmt s3 = {"INSERT INTO u VALUES(3)", NULL};
    struct store_txn t[3] = {TXN1(&s1, "t1", NULL, 1, 1), TXN1(&s2, "t2", NULL, 1, 1),
                             TXN1(&s3, "t3", NULL, 1, 1)};
    struct store_batch b = {"b2", "r1", 1, t, 3};
    struct store_opts o;
    struct store *s;
    char path[160];
    struct got g;

    apply_both(f, "b1", 1, "CREATE TABLE u(a)");
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_apply(f->a, &b, 2, 2, collect, &g, f->err), 0);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(g.rc[1], MR_ESQL);
    assert_non_null(strstr(g.result[1], "exceeded its budget"));
    assert_int_equal(g.rc[2], 0);
    assert_int_equal(read1(f, f->a, "SELECT a FROM u ORDER BY a", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1],[3]]"));
    /* Values too big for every replica to allocate are refused alike. */
    assert_int_equal(apply_sql(f, f->a, "b3", 3, "INSERT INTO u VALUES(zeroblob(40000000))", &g),
                     0);
    assert_int_equal(g.rc[0], MR_ESQL);
    assert_non_null(strstr(g.result[0], "too big"));

    /* Reads have a deadline instead. */
    store_opts_default(&o);
    o.read_timeout_ms = 50;
    snprintf(path, sizeof(path), "%s/c.db", f->dir);
    assert_int_equal(store_open(path, &o, &s, f->err), 0);
    assert_int_equal(read1(f, s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)"
                                 " SELECT count(*) FROM c", NULL), MR_ETIMEDOUT);
    assert_string_equal(f->err, "statement 1: the read took too long (limit read_timeout_ms)");
    assert_int_equal(read1(f, s, "SELECT 1", NULL), 0);
    store_close(s);
}

/* A default VFS that fails writes on demand: I/O failures must abort the
 * whole batch. */
static sqlite3_vfs *unix_vfs;
static int fail_writes;

struct ffile {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

static int f_close(sqlite3_file *f)
{
    return ((struct ffile *)f)->real->pMethods->xClose(((struct ffile *)f)->real);
}
#define REAL(f) (((struct ffile *)(f))->real)
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, o);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 o)
{
    if (fail_writes)
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int f_sync(sqlite3_file *f, int fl)
{
    return REAL(f)->pMethods->xSync(REAL(f), fl);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *n)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static const sqlite3_io_methods f_methods = {
    2, f_close, f_read, f_write, f_truncate, f_sync, f_size, vfswrap_lock, vfswrap_unlock,
    vfswrap_check_reserved, vfswrap_file_control, vfswrap_sector_size, vfswrap_device, vfswrap_shm_map,
    vfswrap_shm_lock, vfswrap_shm_barrier, vfswrap_shm_unmap, NULL, NULL,
};

static int fv_open(sqlite3_vfs *v, const char *name, sqlite3_file *file, int flags, int *oflags)
{
    struct ffile *ff = (struct ffile *)file;
    int rc;

    (void)v;
    ff->real = (sqlite3_file *)(ff + 1);
    rc = unix_vfs->xOpen(unix_vfs, name, ff->real, flags, oflags);
    /* On failure SQLite calls xClose only if pMethods is set. */
    ff->base.pMethods = ff->real->pMethods ? &f_methods : NULL;
    return rc;
}

static void io_failure_aborts_the_whole_batch(void **state)
{
    struct fix *f = *state;
    sqlite3_vfs fv;
    struct store *s;
    struct store_position pos;
    char path[160];
    struct got g;

    unix_vfs = sqlite3_vfs_find("unix");
    assert_non_null(unix_vfs);
    fv = *unix_vfs;
    fv.zName = "test-faulty";
    fv.szOsFile = (int)sizeof(struct ffile) + unix_vfs->szOsFile;
    fv.xOpen = fv_open;
    assert_int_equal(sqlite3_vfs_register(&fv, 1), SQLITE_OK);

    snprintf(path, sizeof(path), "%s/c.db", f->dir);
    assert_int_equal(store_open(path, NULL, &s, f->err), 0);
    assert_int_equal(apply_sql(f, s, "b1", 1, "CREATE TABLE t(a)", &g), 0);
    fail_writes = 1;
    assert_int_equal(apply_sql(f, s, "b2", 2, "INSERT INTO t VALUES(1)", &g), MR_EIO);
    fail_writes = 0;
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(f->err, "I/O error"));
    /* The message names the call and the file that failed. */
    assert_non_null(strstr(f->err, "write of "));
    assert_non_null(strstr(f->err, "in c.db-wal (WAL)"));
    store_position(s, &pos);
    assert_int_equal(pos.rev, 1);
    assert_int_equal(read1(f, s, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[0]]"));
    /* The caller retries the same entry. */
    assert_int_equal(apply_sql(f, s, "b2", 2, "INSERT INTO t VALUES(1)", &g), 0);
    assert_int_equal(g.rc[0], 0);
    store_close(s);
    assert_int_equal(store_open(path, NULL, &s, f->err), 0);
    assert_int_equal(read1(f, s, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    assert_int_equal(store_integrity_check(s, f->err), 0);
    store_close(s);
    sqlite3_vfs_unregister(&fv);
    sqlite3_vfs_register(unix_vfs, 1);
}

/* The descriptor of <suffix> (a file of the store) in this process, or -1. */
static int fd_of(const char *dir, const char *suffix)
{
    char link[64], target[512], want[256];
    int found = -1;

    snprintf(want, sizeof(want), "%s/%s", dir, suffix);
    for (int fd = 3; fd < 1024 && found < 0; fd++) {
        ssize_t n;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, want) == 0)
                found = fd;
        }
    }
    return found;
}

/* What the node saw under load: the WAL's descriptor no longer writable
 * (EBADF).  The error must say so, by file and errno, and the same file
 * opened again must take the same batch. */
static void broken_descriptor_is_named_and_reopen_recovers(void **state)
{
    struct fix *f = *state;
    struct store *s;
    struct got g;
    char path[160];
    int wal, ro;

    snprintf(path, sizeof(path), "%s/c.db", f->dir);
    assert_int_equal(store_open(path, NULL, &s, f->err), 0);
    assert_int_equal(apply_sql(f, s, "b1", 1, "CREATE TABLE t(a)", &g), 0);
    wal = fd_of(f->dir, "c.db-wal");
    assert_true(wal >= 0);
    ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_int_equal(dup2(ro, wal), wal);   /* same number, now read-only */
    close(ro);
    assert_int_equal(apply_sql(f, s, "b2", 2, "INSERT INTO t VALUES(1)", &g), MR_EIO);
    assert_non_null(strstr(f->err, "in c.db-wal (WAL): Bad file descriptor"));
    store_close(s);
    assert_int_equal(store_open(path, NULL, &s, f->err), 0);
    assert_int_equal(apply_sql(f, s, "b2", 2, "INSERT INTO t VALUES(1)", &g), 0);
    assert_int_equal(read1(f, s, "SELECT count(*) FROM t", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    assert_int_equal(store_integrity_check(s, f->err), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(apply_reports_rows_affected_and_insert_id, setup, teardown),
        cmocka_unit_test_setup_teardown(random_and_time_are_the_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_txn_leaves_no_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(or_rollback_does_not_undo_other_txns, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_foreign_key_fails_its_own_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_batch_only_advances_position, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency_key_replays_first_result, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency_keys_are_pruned_by_entry_time, setup, teardown),
        cmocka_unit_test_setup_teardown(position_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(backup_is_a_replica_at_the_same_position, setup, teardown),
        cmocka_unit_test_setup_teardown(pinned_reads_share_a_snapshot_until_unpinned, setup, teardown),
        cmocka_unit_test_setup_teardown(rev_must_increase, setup, teardown),
        cmocka_unit_test_setup_teardown(replicas_have_equal_digests, setup, teardown),
        cmocka_unit_test_setup_teardown(digest_differs_when_one_value_differs, setup, teardown),
        cmocka_unit_test_setup_teardown(small_statement_cache_evicts_and_rechecks, setup, teardown),
        cmocka_unit_test_setup_teardown(runaway_statements_are_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(io_failure_aborts_the_whole_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(broken_descriptor_is_named_and_reopen_recovers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
