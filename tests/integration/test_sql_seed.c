/* Seeding: a region whose data is lost, after the log has been compacted,
 * is seeded from another region's snapshot and converges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"
#include "lib/wait.h"

static struct cluster *C;

static const char topology[] =
    "[topology]\nname = seed\n\n"
    "[limits]\ncompact_interval = 200ms\ncompact_min_step = 5\n\n"
    "[region us-east-1]\n\n[region eu-west-1]\n\n[region ap-southeast-1]\n";

static int setup(void **state)
{
    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url, "CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT)");
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static long long status_int(const char *url, const char *field)
{
    struct api_reply r;
    long long v = -1;

    if (api_get(url, "/v1/status", &r) != 0)
        return -1;
    v = json_integer_value(json_object_get(r.body, field));
    api_reply_close(&r);
    return v;
}

struct compacted {
    const char *url;
    long long above;
};

static int compacted_above(void *arg)
{
    struct compacted *c = arg;
    return status_int(c->url, "compacted_below") > c->above;
}

static void region_that_lost_its_data_is_seeded_from_a_snapshot(void **state)
{
    struct cluster_region *lost = &C->regions[2];
    struct compacted cmp = {C->regions[0].node_url, 0};
    char cmd[4096];
    struct api_reply r;

    (void)state;
    for (int i = 0; i < 30; i++)
        assert_int_equal(sqlt_exec(C->regions[(size_t)i % 2].node_url,
                                   "INSERT INTO s(v) VALUES (hex(randomblob(8)))"), 0);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(wait_for(compacted_above, &cmp, 20000), 0);

    /* The region loses its disk: node killed, database files removed. */
    assert_int_equal(cluster_region_action(C, lost->name, "kill", "node"), 0);
    snprintf(cmd, sizeof(cmd), "rm -f %s/%s/data/meridian.db*", C->rundir, lost->name);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(cluster_region_action(C, lost->name, "restart", "node"), 0);

    assert_true(sqlt_identical(C, 30000));
    assert_int_equal(sqlt_scalar(lost->node_url, "SELECT count(*) FROM s"), 30);
    assert_int_equal(api_get(lost->node_url, "/metrics", &r), 0);
    assert_non_null(strstr(r.text, "meridian_seeds_total 1"));
    api_reply_close(&r);
    /* And it keeps up with new writes. */
    assert_int_equal(sqlt_exec(C->regions[0].node_url, "INSERT INTO s(v) VALUES ('after')"), 0);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(sqlt_scalar(lost->node_url, "SELECT count(*) FROM s"), 31);
}

static void snapshot_endpoint_serves_a_consistent_copy(void **state)
{
    struct api_reply r;

    (void)state;
    assert_int_equal(api_get(C->regions[0].node_url, "/v1/snapshot", &r), 0);
    assert_int_equal(r.status, 200);
    /* An SQLite database file starts with its magic string. */
    assert_int_equal(strncmp(r.text, "SQLite format 3", 15), 0);
    api_reply_close(&r);
    assert_int_equal(api_post_json(C->regions[0].node_url, "/v1/snapshot", "{}", &r), 0);
    assert_int_equal(r.status, 405);
    api_reply_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_that_lost_its_data_is_seeded_from_a_snapshot),
        cmocka_unit_test(snapshot_endpoint_serves_a_consistent_copy),
    };
    return cmocka_run_group_tests_name("sql_seed", tests, setup, teardown);
}
