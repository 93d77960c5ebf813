/* Global SQL database, three real regions: concurrent writes everywhere
 * converge to identical replicas; read-your-writes across regions;
 * conflicting transactions; idempotent retries across regions;
 * deterministic random() and 'now'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"
#include "lib/wait.h"
#include "lib/writeload.h"

static struct cluster *C;

static int setup(void **state)
{
    (void)state;
    if (cluster_start(NULL, &C) != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url, WL_TABLE);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* ---- concurrent writes in all regions ---------------------------------- */

static void concurrent_writes_in_all_regions_converge_identically(void **state)
{
    struct writeload *w = wl_new(C, 0, (uint64_t)test_timeout_ms(60000), 480);

    (void)state;
    wl_run(w);
    assert_int_equal(w->res.all.failed, 0);
    assert_int_equal(w->res.all.ok, 480);
    assert_int_equal(wl_acked(w, 0), 480);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(wl_check(w), 0);
    for (size_t r = 0; r < C->n_regions; r++)
        assert_int_equal(sqlt_scalar(C->regions[r].node_url, "SELECT count(*) FROM w"), 480);
    free(w);
}

/* ---- read-your-writes ---------------------------------------------------- */

static void read_with_token_in_other_regions_sees_the_write(void **state)
{
    (void)state;
    assert_int_equal(sqlt_exec(C->regions[0].node_url, "CREATE TABLE ryw(k INTEGER PRIMARY KEY, v INTEGER)"), 0);
    for (int i = 1; i <= 30; i++) {
        size_t writer = (size_t)i % C->n_regions;
        struct api_reply r;
        char body[256];
        const char *tok;
        char token[64];

        snprintf(body, sizeof(body),
                 "{\"statements\":[{\"sql\":\"INSERT INTO ryw VALUES (1, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v\",\"params\":[%d]}]}", i);
        assert_int_equal(sqlt_post(C->regions[writer].node_url, body, &r), 0);
        assert_int_equal(r.status, 200);
        tok = json_string_value(json_object_get(r.body, "token"));
        assert_non_null(tok);
        snprintf(token, sizeof(token), "%s", tok);
        api_reply_close(&r);
        for (size_t reader = 0; reader < C->n_regions; reader++) {
            if (reader == writer)
                continue;
            snprintf(body, sizeof(body),
                     "{\"statements\":[{\"sql\":\"SELECT v FROM ryw WHERE k = 1\"}],\"token\":\"%s\"}", token);
            assert_int_equal(sqlt_post(C->regions[reader].node_url, body, &r), 0);
            assert_int_equal(r.status, 200);
            json_t *rows = json_object_get(json_array_get(json_object_get(r.body, "results"), 0), "rows");
            assert_int_equal(json_integer_value(json_array_get(json_array_get(rows, 0), 0)), i);
            assert_string_equal(json_string_value(json_object_get(r.body, "consistency")), "session");
            api_reply_close(&r);
        }
    }
}

/* ---- conflicting transactions -------------------------------------------- */

struct race {
    const char *url;
    struct api_reply reply;
    int rc;
};

static void *race_post(void *arg)
{
    struct race *r = arg;
    r->rc = sqlt_post(r->url,
                      "{\"statements\":[{\"sql\":\"UPDATE stock SET n = n - 1 WHERE id = 1\"},"
                      "{\"sql\":\"INSERT INTO sold(id) VALUES (1)\"}]}",
                      &r->reply);
    return NULL;
}

static void concurrent_decrements_below_zero_give_one_success_one_constraint_error(void **state)
{
    (void)state;
    assert_int_equal(sqlt_exec(C->regions[0].node_url,
                               "CREATE TABLE stock(id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))"), 0);
    assert_int_equal(sqlt_exec(C->regions[0].node_url, "CREATE TABLE sold(id INTEGER)"), 0);
    for (int round = 0; round < 5; round++) {
        struct race a = {C->regions[1].node_url, {0}, 0}, b = {C->regions[2].node_url, {0}, 0};
        pthread_t ta, tb;
        int ok = 0, conflict = 0;

        assert_int_equal(sqlt_exec(C->regions[0].node_url,
                                   "INSERT INTO stock VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = 1"), 0);
        assert_int_equal(sqlt_exec(C->regions[0].node_url, "DELETE FROM sold"), 0);
        pthread_create(&ta, NULL, race_post, &a);
        pthread_create(&tb, NULL, race_post, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        assert_int_equal(a.rc, 0);
        assert_int_equal(b.rc, 0);
        for (struct race *r = &a; r; r = r == &a ? &b : NULL) {
            if (r->reply.status == 200)
                ok++;
            if (r->reply.status == 409) {
                conflict++;
                assert_string_equal(json_string_value(json_object_get(json_object_get(r->reply.body, "error"), "code")),
                                    "constraint");
                assert_non_null(strstr(r->reply.text, "CHECK constraint failed"));
            }
            api_reply_close(&r->reply);
        }
        assert_int_equal(ok, 1);
        assert_int_equal(conflict, 1);
        /* The failed transaction left no trace, in any region. */
        assert_true(sqlt_identical(C, 20000));
        for (size_t i = 0; i < C->n_regions; i++) {
            assert_int_equal(sqlt_scalar(C->regions[i].node_url, "SELECT n FROM stock WHERE id = 1"), 0);
            assert_int_equal(sqlt_scalar(C->regions[i].node_url, "SELECT count(*) FROM sold"), 1);
        }
    }
}

/* ---- idempotency ------------------------------------------------------------ */

static void retry_with_same_idempotency_key_in_another_region_applies_once(void **state)
{
    const char *body = "{\"statements\":[{\"sql\":\"INSERT INTO orders_i(note) VALUES ('x') RETURNING id\"}],"
                       "\"idempotency_key\":\"order-42\"}";
    struct api_reply first, again;

    (void)state;
    assert_int_equal(sqlt_exec(C->regions[0].node_url, "CREATE TABLE orders_i(id INTEGER PRIMARY KEY, note TEXT)"), 0);
    assert_int_equal(sqlt_post(C->regions[0].node_url, body, &first), 0);
    assert_int_equal(first.status, 200);
    assert_false(json_is_true(json_object_get(first.body, "replayed")));
    for (size_t i = 0; i < C->n_regions; i++) {
        assert_int_equal(sqlt_post(C->regions[i].node_url, body, &again), 0);
        assert_int_equal(again.status, 200);
        assert_true(json_is_true(json_object_get(again.body, "replayed")));
        assert_true(json_equal(json_object_get(first.body, "results"), json_object_get(again.body, "results")));
        api_reply_close(&again);
    }
    api_reply_close(&first);
    for (size_t i = 0; i < C->n_regions; i++)
        assert_int_equal(sqlt_scalar(C->regions[i].node_url, "SELECT count(*) FROM orders_i"), 1);
}

/* ---- determinism -------------------------------------------------------------- */

static void random_and_now_in_writes_are_identical_in_every_region(void **state)
{
    (void)state;
    assert_int_equal(sqlt_exec(C->regions[1].node_url,
                               "CREATE TABLE det(id INTEGER PRIMARY KEY, r INTEGER, b BLOB, t TEXT, u TEXT)"), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sqlt_exec(C->regions[(size_t)i % C->n_regions].node_url,
                                   "INSERT INTO det(r, b, t, u) VALUES (random(), randomblob(16), "
                                   "datetime('now'), lower(hex(randomblob(8))))"), 0);
    assert_true(sqlt_identical(C, 20000));
    /* Values really are random: five different ones. */
    assert_int_equal(sqlt_scalar(C->regions[0].node_url, "SELECT count(DISTINCT r) FROM det"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_writes_in_all_regions_converge_identically),
        cmocka_unit_test(read_with_token_in_other_regions_sees_the_write),
        cmocka_unit_test(concurrent_decrements_below_zero_give_one_success_one_constraint_error),
        cmocka_unit_test(retry_with_same_idempotency_key_in_another_region_applies_once),
        cmocka_unit_test(random_and_now_in_writes_are_identical_in_every_region),
    };
    return cmocka_run_group_tests_name("sql_replication", tests, setup, teardown);
}
