/* Global SQL database under failure, three real regions: the etcd leader
 * killed with SIGKILL while every region writes; a node killed with SIGKILL
 * while it applies, then restarted. */
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

static void etcd_leader_killed_under_writes_loses_nothing_and_writes_resume(void **state)
{
    struct cluster_region *leader;
    struct wl_progress p;
    struct writeload *w;
    int64_t killed_at;

    (void)state;
    w = wl_new(C, 1, (uint64_t)test_timeout_ms(12000), 0);
    assert_int_equal(wl_start(w), 0);
    p.w = w;
    p.after_us = 0;
    p.want = 50;
    assert_int_equal(wait_for(wl_progressed, &p, 20000), 0);

    leader = api_etcd_leader(C);
    assert_non_null(leader);
    fprintf(stderr, "killing the etcd leader, in %s\n", leader->name);
    assert_int_equal(cluster_region_action(C, leader->name, "kill", "etcd"), 0);
    killed_at = mr_mono_us();

    /* Writes resume: acknowledgements keep arriving after the kill. */
    p.after_us = killed_at;
    p.want = 200;
    assert_int_equal(wait_for(wl_progressed, &p, 30000), 0);
    wl_join(w);
    fprintf(stderr, "writes: %llu acknowledged, %llu failed (%s)\n",
            (unsigned long long)w->res.all.ok, (unsigned long long)w->res.all.failed,
            w->res.first_error);

    /* The killed member comes back and catches up; every region converges. */
    assert_int_equal(cluster_region_action(C, leader->name, "restart", "etcd"), 0);
    assert_true(sqlt_identical(C, 30000));
    assert_int_equal(wl_check(w), 0);
    free(w);
}

static void node_killed_while_applying_resumes_and_converges(void **state)
{
    struct cluster_region *victim = &C->regions[1];
    struct api_reply rep;
    struct wl_progress p;
    struct writeload *w;

    (void)state;
    w = wl_new(C, 2, (uint64_t)test_timeout_ms(8000), 0);
    assert_int_equal(wl_start(w), 0);
    p.w = w;
    p.after_us = 0;
    p.want = 100;
    assert_int_equal(wait_for(wl_progressed, &p, 20000), 0);
    /* Under steady writes the node applies a batch every few ms: SIGKILL
     * lands in or between applies. */
    assert_int_equal(cluster_region_action(C, victim->name, "kill", "node"), 0);
    wl_join(w);
    assert_int_equal(cluster_region_action(C, victim->name, "restart", "node"), 0);

    assert_true(sqlt_identical(C, 30000));
    assert_int_equal(wl_check(w), 0);
    for (size_t r = 0; r < C->n_regions; r++) {
        assert_int_equal(api_get(C->regions[r].node_url, "/v1/digest?integrity=1", &rep), 0);
        assert_int_equal(rep.status, 200);
        assert_string_equal(json_string_value(json_object_get(rep.body, "integrity")), "ok");
        api_reply_close(&rep);
    }
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(etcd_leader_killed_under_writes_loses_nothing_and_writes_resume),
        cmocka_unit_test(node_killed_while_applying_resumes_and_converges),
    };
    return cmocka_run_group_tests_name("sql_failures", tests, setup, teardown);
}
