/* Integration test of the launcher: `meridian up|down|region` with real etcd
 * members and nodes on loopback (tests/lib/cluster.h).
 *
 * Group 1: a one-region topology in the foreground stops everything on
 * SIGTERM.  Group 2: the default three-region topology, detached, through
 * one life: up, kill/restart/freeze/thaw, the etcd leader killed, an exit the
 * supervisor did not cause, bad commands, down.  The tests of group 2 run in
 * order on the same cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

/* ---- conditions for wait_for ---- */

static int node_ready(void *arg)
{
    return api_status(((struct cluster_region *)arg)->node_url, "/readyz") == 200;
}

static int pid_gone(void *arg)
{
    return !cluster_pid_alive(*(int *)arg);
}

static int pid_stopped(void *arg)
{
    return cluster_pid_state(*(int *)arg) == 'T';
}

static int pid_not_stopped(void *arg)
{
    char st = cluster_pid_state(*(int *)arg);
    return st != 0 && st != 'T';
}

struct state_wait {
    struct cluster *c;
    const char *want;
};

static int topology_state_is(void *arg)
{
    struct state_wait *w = arg;
    return cluster_refresh(w->c) == 0 && strcmp(w->c->state, w->want) == 0;
}

struct proc_wait {
    struct cluster *c;
    const char *region;
    const char *want;
};

static int node_state_is(void *arg)
{
    struct proc_wait *w = arg;
    return cluster_refresh(w->c) == 0 &&
           strcmp(cluster_region(w->c, w->region)->node.state, w->want) == 0;
}

static int has_etcd_leader(void *arg)
{
    return api_etcd_leader(arg) != NULL;
}

/* ---- group 1: the foreground ---- */

/* What the foreground test started, for its teardown when an assertion
 * stops it half-way. */
static int fg_pid;
static struct cluster *fg_cluster;

static int fg_teardown(void **state)
{
    int status;

    if (fg_pid > 0 && cluster_pid_alive(fg_pid)) {
        kill(fg_pid, SIGTERM);
        (void)wait_for(pid_gone, &fg_pid, 20000);
    }
    if (fg_pid > 0)
        waitpid(fg_pid, &status, WNOHANG);
    fg_pid = 0;
    if (fg_cluster == NULL)
        return 0;
    status = cluster_stop(fg_cluster);
    fg_cluster = NULL;
    return status;
}

static void foreground_up_stops_everything_on_sigterm(void **state)
{
    static const char topo[] = "[topology]\nname = solo\n\n[region solo-1]\n";
    char tmpl[] = "/tmp/mr-test-fg-XXXXXX", path[256], timeout[32];
    struct cluster *c = calloc(1, sizeof(*c));
    struct state_wait ready;
    int status = 0, up_pid, leftovers[8];
    pid_t pid;
    FILE *f;

    assert_non_null(mkdtemp(tmpl));
    c->rundir = strdup(tmpl);
    fg_cluster = c;
    snprintf(path, sizeof(path), "%s/solo.ini", tmpl);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(topo, f);
    fclose(f);
    snprintf(timeout, sizeof(timeout), "%llds", (long long)(test_timeout_ms(60000) / 1000));

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(cluster_bin(), cluster_bin(), "up", path, "--dir", tmpl, "--timeout", timeout,
              (char *)NULL);
        _exit(127);
    }
    up_pid = (int)pid;
    fg_pid = up_pid;
    ready.c = c;
    ready.want = "ready";
    assert_int_equal(wait_for(topology_state_is, &ready, 60000), 0);
    assert_int_equal(c->control_pid, up_pid);
    assert_int_equal(c->n_regions, 1);
    assert_string_equal(c->regions[0].name, "solo-1");
    assert_int_equal(wait_for(node_ready, &c->regions[0], 5000), 0);

    assert_int_equal(kill(up_pid, SIGTERM), 0);
    assert_int_equal(wait_for(pid_gone, &up_pid, 20000), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    fg_pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(cluster_pid_alive(c->regions[0].node.pid));
    assert_false(cluster_pid_alive(c->regions[0].etcd.pid));
    assert_int_equal(cluster_find_pids(tmpl, leftovers, 8), 0);
    assert_int_equal(cluster_refresh(c), 0);
    assert_string_equal(c->state, "stopped");
    assert_string_equal(c->regions[0].node.state, "stopped");
    fg_cluster = NULL;
    assert_int_equal(cluster_stop(c), 0); /* nothing to stop; checks and removes the dir */
}

/* ---- group 2: the default topology, detached ---- */

/* The group's cluster.  Not cmocka's group state: a test cannot clear that
 * for the teardown once it has stopped the cluster itself. */
static struct cluster *the_cluster;

static int group_setup(void **state)
{
    return cluster_start(NULL, &the_cluster);
}

static int group_teardown(void **state)
{
    int rc = cluster_stop(the_cluster); /* NULL once the last test has stopped it */
    the_cluster = NULL;
    return rc;
}

static void up_detach_writes_topology_with_live_pids_and_ready_nodes(void **state)
{
    struct cluster *c = the_cluster;
    static const char *const names[] = {"us-east-1", "eu-west-1", "ap-southeast-1"};

    assert_string_equal(c->state, "ready");
    assert_true(cluster_pid_alive(c->control_pid));
    assert_true(strncmp(c->control_url, "http://127.0.0.1:", 17) == 0);
    assert_int_equal(c->n_regions, 3);
    for (size_t i = 0; i < 3; i++) {
        struct cluster_region *r = &c->regions[i];
        struct api_reply rep;
        assert_string_equal(r->name, names[i]);
        assert_true(cluster_pid_alive(r->node.pid));
        assert_true(cluster_pid_alive(r->etcd.pid));
        assert_string_equal(r->node.state, "running");
        assert_true(r->node.ready && r->etcd.ready);
        assert_int_equal(api_status(r->node_url, "/readyz"), 200);
        assert_int_equal(api_post_json(r->etcd_url, "/v3/maintenance/status", "{}", &rep), 0);
        assert_int_equal(rep.status, 200);
        api_reply_close(&rep);
    }
    /* The control API answers too. */
    {
        struct api_reply rep;
        assert_int_equal(api_get(c->control_url, "/status", &rep), 0);
        assert_int_equal(rep.status, 200);
        assert_int_equal(json_array_size(json_object_get(rep.body, "regions")), 3);
        api_reply_close(&rep);
    }
}

static void region_kill_node_reaps_it_and_status_shows_killed(void **state)
{
    struct cluster *c = the_cluster;
    struct cluster_region *r = cluster_region(c, "us-east-1");
    int pid = r->node.pid, etcd_pid = r->etcd.pid;

    assert_int_equal(cluster_region_action(c, "us-east-1", "kill", "node"), 0);
    r = cluster_region(c, "us-east-1");
    /* kill answers once the process is reaped: no waiting here. */
    assert_false(cluster_pid_alive(pid));
    assert_int_equal(r->node.pid, 0);
    assert_string_equal(r->node.state, "killed");
    assert_false(r->node.ready);
    assert_int_equal(r->node.last_exit_pid, pid);
    assert_string_equal(r->node.last_exit_signal, "SIGKILL");
    assert_true(r->node.last_exit_expected);
    /* --process node leaves the region's etcd alone. */
    assert_int_equal(r->etcd.pid, etcd_pid);
    assert_true(cluster_pid_alive(etcd_pid));
    assert_true(api_status(r->node_url, "/readyz") < 0);
}

static void region_restart_brings_node_back_ready(void **state)
{
    struct cluster *c = the_cluster;
    struct cluster_region *r;
    int old = cluster_region(c, "us-east-1")->node.last_exit_pid;

    assert_int_equal(cluster_region_action(c, "us-east-1", "restart", "node"), 0);
    r = cluster_region(c, "us-east-1");
    /* restart answers once the node is ready again. */
    assert_true(r->node.pid > 0 && r->node.pid != old);
    assert_true(cluster_pid_alive(r->node.pid));
    assert_string_equal(r->node.state, "running");
    assert_true(r->node.ready);
    assert_int_equal(api_status(r->node_url, "/readyz"), 200);
}

static void region_freeze_and_thaw_stop_and_resume_both_processes(void **state)
{
    struct cluster *c = the_cluster;
    struct cluster_region *r;
    int node, etcd;

    assert_int_equal(cluster_region_action(c, "eu-west-1", "freeze", NULL), 0);
    r = cluster_region(c, "eu-west-1");
    node = r->node.pid;
    etcd = r->etcd.pid;
    assert_string_equal(r->node.state, "frozen");
    assert_string_equal(r->etcd.state, "frozen");
    assert_int_equal(wait_for(pid_stopped, &node, 2000), 0);
    assert_int_equal(wait_for(pid_stopped, &etcd, 2000), 0);

    assert_int_equal(cluster_region_action(c, "eu-west-1", "thaw", NULL), 0);
    r = cluster_region(c, "eu-west-1");
    assert_int_equal(r->node.pid, node); /* the same processes, resumed */
    assert_int_equal(r->etcd.pid, etcd);
    assert_string_equal(r->node.state, "running");
    assert_string_equal(r->etcd.state, "running");
    assert_int_equal(wait_for(pid_not_stopped, &node, 2000), 0);
    assert_int_equal(wait_for(pid_not_stopped, &etcd, 2000), 0);
    assert_int_equal(wait_for(node_ready, r, 10000), 0);
}

static void killing_the_etcd_leader_then_restarting_it_rejoins(void **state)
{
    struct cluster *c = the_cluster;
    struct cluster_region *leader, *r;
    char name[40];
    int pid;

    assert_int_equal(wait_for(has_etcd_leader, c, 10000), 0);
    leader = api_etcd_leader(c);
    assert_non_null(leader);
    snprintf(name, sizeof(name), "%s", leader->name);
    pid = leader->etcd.pid;

    assert_int_equal(cluster_region_action(c, name, "kill", "etcd"), 0);
    r = cluster_region(c, name);
    assert_false(cluster_pid_alive(pid));
    assert_string_equal(r->etcd.state, "killed");
    assert_true(cluster_pid_alive(r->node.pid)); /* its node stays */
    /* The two survivors elect a new leader. */
    assert_int_equal(wait_for(has_etcd_leader, c, 10000), 0);
    assert_string_not_equal(api_etcd_leader(c)->name, name);

    assert_int_equal(cluster_region_action(c, name, "restart", "etcd"), 0);
    r = cluster_region(c, name);
    assert_true(cluster_pid_alive(r->etcd.pid));
    assert_true(r->etcd.ready);
    assert_int_equal(r->etcd.pid != pid, 1);
}

static void unexpected_exit_is_reported_and_not_restarted(void **state)
{
    struct cluster *c = the_cluster;
    struct cluster_region *r = cluster_region(c, "ap-southeast-1");
    struct proc_wait w = {c, "ap-southeast-1", "exited-unexpectedly"};
    int pid = r->node.pid;

    /* Behind the supervisor's back. */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(wait_for(node_state_is, &w, 5000), 0);
    r = cluster_region(c, "ap-southeast-1");
    assert_int_equal(r->node.pid, 0);
    assert_int_equal(r->node.last_exit_pid, pid);
    assert_string_equal(r->node.last_exit_signal, "SIGKILL");
    assert_false(r->node.last_exit_expected);
    assert_false(cluster_pid_alive(pid));

    /* Back for the next tests. */
    assert_int_equal(cluster_region_action(c, "ap-southeast-1", "restart", NULL), 0);
    r = cluster_region(c, "ap-southeast-1");
    assert_true(r->node.ready && r->etcd.ready);
    assert_string_equal(r->node.state, "running");
}

static void bad_commands_are_refused_and_change_nothing(void **state)
{
    struct cluster *c = the_cluster;
    char *kill_unknown[] = {(char *)cluster_bin(), "region", "kill", "nowhere", "--dir",
                            c->rundir, NULL};
    char *bad_process[] = {(char *)cluster_bin(), "region", "kill", "us-east-1", "--dir",
                           c->rundir, "--process", "edge", NULL};
    char *second_up[] = {(char *)cluster_bin(), "up", "--dir", c->rundir, "--detach", NULL};

    assert_int_equal(cluster_run(kill_unknown, 10000), 1);
    assert_int_equal(cluster_run(bad_process, 10000), 2);
    assert_int_equal(cluster_run(second_up, 10000), 2); /* the rundir is in use */
    assert_int_equal(cluster_refresh(c), 0);
    for (size_t i = 0; i < c->n_regions; i++) {
        assert_true(cluster_pid_alive(c->regions[i].node.pid));
        assert_true(cluster_pid_alive(c->regions[i].etcd.pid));
    }
}

static void down_stops_every_process_and_leaves_nothing(void **state)
{
    struct cluster *c = the_cluster;
    int pids[2 * CLUSTER_MAX_REGIONS + 1], n = 0;

    assert_int_equal(cluster_refresh(c), 0);
    pids[n++] = c->control_pid;
    for (size_t i = 0; i < c->n_regions; i++) {
        pids[n++] = c->regions[i].node.pid;
        pids[n++] = c->regions[i].etcd.pid;
    }
    the_cluster = NULL;
    assert_int_equal(cluster_stop(c), 0); /* fails on any process left */
    for (int i = 0; i < n; i++)
        assert_false(cluster_pid_alive(pids[i]));
}

int main(void)
{
    const struct CMUnitTest foreground[] = {
        cmocka_unit_test_teardown(foreground_up_stops_everything_on_sigterm, fg_teardown),
    };
    const struct CMUnitTest detached[] = {
        cmocka_unit_test(up_detach_writes_topology_with_live_pids_and_ready_nodes),
        cmocka_unit_test(region_kill_node_reaps_it_and_status_shows_killed),
        cmocka_unit_test(region_restart_brings_node_back_ready),
        cmocka_unit_test(region_freeze_and_thaw_stop_and_resume_both_processes),
        cmocka_unit_test(killing_the_etcd_leader_then_restarting_it_rejoins),
        cmocka_unit_test(unexpected_exit_is_reported_and_not_restarted),
        cmocka_unit_test(bad_commands_are_refused_and_change_nothing),
        cmocka_unit_test(down_stops_every_process_and_leaves_nothing),
    };
    int failed = cmocka_run_group_tests_name("launcher_foreground", foreground, NULL, NULL);
    failed += cmocka_run_group_tests_name("launcher_detached", detached, group_setup,
                                          group_teardown);
    return failed;
}
