/* store_fixture.h -- shared by the unit tests of src/sql/store: a fresh
 * temp dir per test with two stores in it (two replicas), removed at the
 * end, and helpers to read, check and apply one statement.  Header-only
 * (static inline) because each tests/unit/sql/test_*.c is its own binary.
 * Include <cmocka.h> and its prerequisites first. */
#ifndef MR_TEST_STORE_FIXTURE_H
#define MR_TEST_STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "sql/store.h"

struct fix {
    char dir[64];
    char path_a[128];
    char path_b[128];
    struct store *a;   /* replica A */
    struct store *b;   /* replica B */
    char err[MR_ERRMSG_LEN];
    struct mr_buf out;
};

static inline int setup(void **state)
{
    struct fix *f = mr_calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/mr-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path_a, sizeof(f->path_a), "%s/a.db", f->dir);
    snprintf(f->path_b, sizeof(f->path_b), "%s/b.db", f->dir);
    assert_int_equal(store_open(f->path_a, NULL, &f->a, f->err), 0);
    assert_int_equal(store_open(f->path_b, NULL, &f->b, f->err), 0);
    mr_buf_init(&f->out);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fix *f = *state;
    DIR *d;
    struct dirent *e;
    char p[512];

    store_close(f->a);
    store_close(f->b);
    mr_buf_close(&f->out);
    d = opendir(f->dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    mr_free(f);
    return 0;
}

/* Read one statement with <params_json> (or NULL); returns the rc, result in
 * f->out (reset first). */
static inline int read1(struct fix *f, struct store *s, const char *sql, const char *params_json)
{
    json_t *p = params_json ? json_loads(params_json, JSON_DECODE_ANY, NULL) : NULL;
    struct store_stmt st = {sql, p};
    int rc;

    if (params_json)
        assert_non_null(p);
    mr_buf_reset(&f->out);
    f->err[0] = '\0';
    rc = store_read(s, &st, 1, &f->out, f->err);
    json_decref(p);
    return rc;
}

static inline int check1(struct fix *f, const char *sql, const char *params_json, int *is_write)
{
    json_t *p = params_json ? json_loads(params_json, JSON_DECODE_ANY, NULL) : NULL;
    struct store_stmt st = {sql, p};
    int rc;

    f->err[0] = '\0';
    rc = store_check(f->a, &st, 1, is_write, f->err);
    json_decref(p);
    return rc;
}

struct got {
    int n;
    int rc[16];
    int replayed[16];
    char result[16][1024];
};

static inline void collect(const struct store_txn *txn, int rc, const char *result, size_t len,
                    int replayed, void *data)
{
    struct got *g = data;

    (void)txn;
    assert_true(g->n < 16);
    assert_int_equal(result[len], '\0');
    g->rc[g->n] = rc;
    g->replayed[g->n] = replayed;
    snprintf(g->result[g->n], sizeof(g->result[0]), "%.*s", (int)len, result);
    g->n++;
}

/* A transaction of one statement without parameters. */
#define TXN1(stmtp, idv, keyv, timev, seedv) \
    {.id = (idv), .idem_key = (keyv), .time_ms = (timev), .seed = (seedv), .stmts = (stmtp), .n_stmts = 1}

static inline int apply_sql(struct fix *f, struct store *s, const char *batch_id, int64_t rev,
                     const char *sql, struct got *g)
{
    struct store_stmt st = {sql, NULL};
    struct store_txn t = TXN1(&st, "t1", NULL, 1700000000000, 42);
    struct store_batch b = {batch_id, "r1", 1700000000000, &t, 1};

    memset(g, 0, sizeof(*g));
    return store_apply(s, &b, rev, rev, collect, g, f->err);
}

/* Apply <sql> on both replicas and expect success. */
static inline void apply_both(struct fix *f, const char *batch_id, int64_t rev, const char *sql)
{
    struct got g;

    assert_int_equal(apply_sql(f, f->a, batch_id, rev, sql, &g), 0);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(apply_sql(f, f->b, batch_id, rev, sql, &g), 0);
    assert_int_equal(g.rc[0], 0);
}

static inline void digests_equal(struct fix *f)
{
    char da[65], db[65];

    assert_int_equal(store_digest(f->a, da, f->err), 0);
    assert_int_equal(store_digest(f->b, db, f->err), 0);
    assert_string_equal(da, db);
}

#endif
