/* Global SQL database under failure, three real regions: the etcd leader
 * killed with SIGKILL while every region writes; a node killed with SIGKILL
 * while it applies, then restarted; a write of a node's database failing
 * (tests/preload/failwrite.c, preloaded into every process of the cluster). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"
#include "lib/wait.h"
#include "lib/writeload.h"

static struct cluster *C;

static char trigger[4200];

/* Preload failwrite.so (built beside this binary, in ../preload) into the
 * cluster: it does nothing until a test writes the trigger file. */
static int preload_failwrite(void)
{
    char exe[4096], so[4200], asan[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *old = getenv("ASAN_OPTIONS");

    if (n <= 0)
        return -1;
    exe[n] = '\0';
    snprintf(so, sizeof(so), "%s/../preload/failwrite.so", dirname(exe));
    if (access(so, R_OK) != 0) {
        fprintf(stderr, "missing %s\n", so);
        return -1;
    }
    /* ASan wants to come first among the libraries; ours only wraps pwrite64. */
    snprintf(asan, sizeof(asan), "verify_asan_link_order=0%s%s", old && *old ? ":" : "", old ? old : "");
    setenv("ASAN_OPTIONS", asan, 1);
    setenv("LD_PRELOAD", so, 1);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    /* The daemons read the trigger's name from their environment at start,
     * before the run directory exists: a name of this test's own. */
    snprintf(trigger, sizeof(trigger), "/tmp/mr-failwrite-%d", (int)getpid());
    setenv("MR_FAILWRITE_TRIGGER", trigger, 1);
    if (preload_failwrite() != 0 || cluster_start(NULL, &C) != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url, WL_TABLE);
}

static int teardown(void **state)
{
    (void)state;
    unlink(trigger);
    return cluster_stop(C);
}

static void etcd_leader_killed_under_writes_loses_nothing_and_writes_resume(void **state)
{
    struct cluster_region *leader;
    struct writeload *w;
    int64_t killed_at;

    (void)state;
    w = wl_new(C, 1, (uint64_t)test_timeout_ms(12000), 0);
    assert_int_equal(wl_start(w), 0);
    assert_int_equal(wl_wait_acks(w, 0, 50, 20000), 0);

    leader = api_etcd_leader(C);
    assert_non_null(leader);
    fprintf(stderr, "killing the etcd leader, in %s\n", leader->name);
    assert_int_equal(cluster_region_action(C, leader->name, "kill", "etcd"), 0);
    killed_at = mr_mono_us();

    /* Writes resume: acknowledgements keep arriving after the kill. */
    assert_int_equal(wl_wait_acks(w, killed_at, 200, 30000), 0);
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
    struct writeload *w;

    (void)state;
    w = wl_new(C, 2, (uint64_t)test_timeout_ms(8000), 0);
    assert_int_equal(wl_start(w), 0);
    assert_int_equal(wl_wait_acks(w, 0, 100, 20000), 0);
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

static int trigger_gone(void *arg)
{
    (void)arg;
    return access(trigger, F_OK) != 0;
}

/* The value of counter <name> in <url>/metrics, or -1. */
static long long metric(const char *url, const char *name)
{
    struct api_reply r;
    long long v = -1;
    const char *p;

    if (api_get(url, "/metrics", &r) != 0)
        return -1;
    for (p = r.text; p && (p = strstr(p, name)) != NULL; p += strlen(name))
        if ((p == r.text || p[-1] == '\n') && p[strlen(name)] == ' ') {
            v = atoll(p + strlen(name) + 1);
            break;
        }
    api_reply_close(&r);
    return v;
}

/* A write of a node's database fails (EBADF on its WAL, as a descriptor
 * closed under SQLite would) while every region writes.  The node must not
 * stop: it names the file and the errno, reopens the database, applies the
 * same entry again from etcd, and converges with no acknowledged write
 * lost or doubled. */
static void database_write_failure_reopens_it_and_loses_nothing(void **state)
{
    struct cluster_region *victim = &C->regions[2];
    char frag[128], path[4300];
    struct writeload *w;
    FILE *f;

    (void)state;
    assert_int_equal(metric(victim->node_url, "meridian_store_reopens_total"), 0);
    w = wl_new(C, 3, (uint64_t)test_timeout_ms(6000), 0);
    assert_int_equal(wl_start(w), 0);
    assert_int_equal(wl_wait_acks(w, 0, 50, 20000), 0);
    snprintf(frag, sizeof(frag), "/%.60s/data/meridian.db-wal", victim->name);
    f = fopen(trigger, "w");
    assert_non_null(f);
    fputs(frag, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(wait_for(trigger_gone, NULL, 20000), 0);   /* the write failed */
    wl_join(w);

    assert_true(sqlt_identical(C, 30000));
    assert_int_equal(wl_check(w), 0);
    assert_int_equal(cluster_refresh(C), 0);
    assert_string_equal(victim->node.state, "running");
    assert_int_equal(metric(victim->node_url, "meridian_store_reopens_total"), 1);
    snprintf(path, sizeof(path), "%s/logs/%s-node.log", C->rundir, victim->name);
    f = fopen(path, "r");
    assert_non_null(f);
    {
        char line[2048];
        int named = 0;
        while (fgets(line, sizeof(line), f))
            named |= strstr(line, "meridian.db-wal (WAL): Bad file descriptor") != NULL &&
                     strstr(line, "reopening the database") != NULL;
        fclose(f);
        assert_true(named);
    }
    free(w);
}

/* A region cut off by the WAN cannot apply: its node reaches only its own
 * etcd member, which has lost the others.  A session read there answers
 * 503 with Retry-After instead of stale data, while the other regions keep
 * committing; once the partition heals, the same read succeeds. */
/* The [limits] session_wait `meridian up` gave region <r>'s node, in ms: it
 * derives it from the edges' try_timeout (docs/topology.md), 750 ms for
 * the default topology at latency scale 0. */
static long session_wait_ms(const struct cluster_region *r)
{
    char path[4200], line[256];
    long ms = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/node.ini", C->rundir, r->name);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "session_wait = %ldms", &ms) == 1)
            break;
    if (f)
        fclose(f);
    return ms;
}

static void session_read_in_a_partitioned_region_is_503_then_succeeds_after_heal(void **state)
{
    struct cluster_region *cut = &C->regions[2], *writer = NULL;
    struct api_reply r;
    char body[256], token[64];
    const char *code;
    int64_t t0;

    (void)state;
    assert_int_equal(sqlt_exec(C->regions[0].node_url, "CREATE TABLE s(k INTEGER PRIMARY KEY, v INTEGER)"), 0);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(cluster_region_action(C, cut->name, "partition", NULL), 0);
    /* Write in a region of the majority side (retry: the etcd leader may
     * have been in the cut region and an election may be under way). */
    for (int64_t deadline = test_now_ms() + test_timeout_ms(20000);;) {
        writer = &C->regions[0];
        assert_int_equal(sqlt_post(writer->node_url,
                                   "{\"statements\":[{\"sql\":\"INSERT INTO s VALUES (1, 42) "
                                   "ON CONFLICT(k) DO UPDATE SET v = 42\"}],\"idempotency_key\":\"s-1\"}",
                                   &r), 0);
        if (r.status == 200)
            break;
        api_reply_close(&r);
        assert_true(test_now_ms() < deadline);
    }
    snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(r.body, "token")));
    api_reply_close(&r);

    snprintf(body, sizeof(body),
             "{\"statements\":[{\"sql\":\"SELECT v FROM s WHERE k = 1\"}],\"token\":\"%s\"}", token);
    t0 = test_now_ms();
    assert_int_equal(sqlt_post(cut->node_url, body, &r), 0);
    assert_int_equal(r.status, 503);
    /* replica_behind: it waited session_wait for the apply; unavailable: the
     * token was beyond the head it knew and etcd could not confirm it.
     * Never stale data. */
    code = json_string_value(json_object_get(json_object_get(r.body, "error"), "code"));
    assert_non_null(code);
    assert_true(strcmp(code, "replica_behind") == 0 || strcmp(code, "unavailable") == 0);
    /* it waited session_wait first */
    assert_true(session_wait_ms(cut) > 0);
    assert_true(test_now_ms() - t0 >= session_wait_ms(cut) - 100);
    api_reply_close(&r);

    assert_int_equal(cluster_region_action(C, cut->name, "heal", NULL), 0);
    for (int64_t deadline = test_now_ms() + test_timeout_ms(20000);;) {
        assert_int_equal(sqlt_post(cut->node_url, body, &r), 0);
        if (r.status == 200)
            break;
        assert_int_equal(r.status, 503);
        api_reply_close(&r);
        assert_true(test_now_ms() < deadline);
    }
    {
        json_t *rows = json_object_get(json_array_get(json_object_get(r.body, "results"), 0), "rows");
        assert_int_equal(json_integer_value(json_array_get(json_array_get(rows, 0), 0)), 42);
    }
    api_reply_close(&r);
    assert_true(sqlt_identical(C, 20000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_read_in_a_partitioned_region_is_503_then_succeeds_after_heal),
        cmocka_unit_test(etcd_leader_killed_under_writes_loses_nothing_and_writes_resume),
        cmocka_unit_test(node_killed_while_applying_resumes_and_converges),
        cmocka_unit_test(database_write_failure_reopens_it_and_loses_nothing),
    };
    return cmocka_run_group_tests_name("sql_failures", tests, setup, teardown);
}
