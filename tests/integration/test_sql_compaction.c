/* Log compaction and seeding, three real regions: history that every region
 * has applied is compacted; a region that is down holds compaction back and
 * catches up when it returns; a region that lost its data after compaction
 * is seeded from another region's snapshot. */
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
    "[topology]\nname = compaction\n\n"
    "[limits]\ncompact_interval = 200ms\ncompact_min_step = 5\n\n"
    "[region us-east-1]\n\n[region eu-west-1]\n\n[region ap-southeast-1]\n";

static int setup(void **state)
{
    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    if (sqlt_exec(C->regions[0].node_url, "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER)") != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url, "CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT)");
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static long long compacted_below(const char *url)
{
    struct api_reply r;
    long long v = -1;

    if (api_get(url, "/v1/status", &r) != 0)
        return -1;
    v = json_integer_value(json_object_get(r.body, "compacted_below"));
    api_reply_close(&r);
    return v;
}

struct above {
    struct cluster *c;
    long long rev;
};

/* Some node has compacted the log to at least <rev>. */
static int compacted_to(void *arg)
{
    struct above *a = arg;
    for (size_t i = 0; i < a->c->n_regions; i++)
        if (a->c->regions[i].node.pid && compacted_below(a->c->regions[i].node_url) >= a->rev)
            return 1;
    return 0;
}

static long long max_compacted(void)
{
    long long m = 0;
    for (size_t i = 0; i < C->n_regions; i++)
        if (C->regions[i].node.pid) {
            long long v = compacted_below(C->regions[i].node_url);
            if (v > m)
                m = v;
        }
    return m;
}

static void write_n(size_t region, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(sqlt_exec(C->regions[region].node_url, "INSERT INTO c(v) VALUES (1)"), 0);
}

static void applied_history_is_compacted(void **state)
{
    struct above a = {C, 0};
    long long rev;

    (void)state;
    write_n(0, 20);
    assert_true(sqlt_identical(C, 20000));
    rev = sqlt_applied(C->regions[0].node_url, NULL);
    a.rev = rev - 5;
    assert_int_equal(wait_for(compacted_to, &a, 20000), 0);
}

static void region_down_holds_compaction_back_and_catches_up(void **state)
{
    struct cluster_region *down = &C->regions[2];
    long long held;
    struct above a = {C, 0};

    (void)state;
    assert_true(sqlt_identical(C, 20000));
    held = sqlt_applied(down->node_url, NULL);
    assert_int_equal(cluster_region_action(C, down->name, "kill", "node"), 0);
    write_n(0, 30);
    write_n(1, 30);
    /* The other regions keep announcing; compaction must stay at or below
     * what the dead region had applied.  Give it several rounds. */
    a.rev = held + 1;
    assert_int_not_equal(wait_for_named(compacted_to, &a, 2000, "compaction past a dead region"), 0);
    assert_true(max_compacted() <= held);

    assert_int_equal(cluster_region_action(C, down->name, "restart", "node"), 0);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(sqlt_scalar(down->node_url, "SELECT count(*) FROM c"), 80);
    /* Once it is back and caught up, compaction moves on. */
    a.rev = held + 30;
    assert_int_equal(wait_for(compacted_to, &a, 20000), 0);
}

struct compacted {
    const char *url;
    long long above;
};

static int compacted_above(void *arg)
{
    struct compacted *c = arg;
    return compacted_below(c->url) > c->above;
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
        cmocka_unit_test(applied_history_is_compacted),
        cmocka_unit_test(region_down_holds_compaction_back_and_catches_up),
        cmocka_unit_test(region_that_lost_its_data_is_seeded_from_a_snapshot),
        cmocka_unit_test(snapshot_endpoint_serves_a_consistent_copy),
    };
    return cmocka_run_group_tests_name("sql_compaction_and_seeding", tests, setup, teardown);
}
