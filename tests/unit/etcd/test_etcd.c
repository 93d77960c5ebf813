/* Unit tests of src/etcd against a real single-member etcd (started here,
 * on kernel-chosen ports, in a temp dir removed at the end): puts, gets,
 * watches in revision order, failover past a dead endpoint, compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "etcd/etcd.h"
#include "lib/wait.h"

static pid_t etcd_pid;
static char dir[64];
static char endpoint[64];
static char dead_endpoint[64];

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* ---- a tiny synchronous driver over the async API ----------------------- */

struct result {
    int done, rc;
    int64_t rev, version;
    int found;
    char value[256];
};

static void put_cb(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct result *r = data;
    (void)errmsg;
    r->done = 1;
    r->rc = rc;
    r->rev = revision;
}

static void get_cb(int rc, const struct etcd_kv *kv, int64_t header_revision, const char *errmsg,
                   void *data)
{
    struct result *r = data;
    (void)header_revision;
    (void)errmsg;
    r->done = 1;
    r->rc = rc;
    r->found = kv != NULL;
    if (kv) {
        r->rev = kv->mod_revision;
        r->version = kv->version;
        snprintf(r->value, sizeof(r->value), "%.*s", (int)kv->value_len, kv->value);
    }
}

static void run_until(uv_loop_t *loop, int *flag)
{
    int64_t deadline = test_now_ms() + test_timeout_ms(10000);
    while (!*flag && test_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static int etcd_healthy(void *arg)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result r = {0};
    (void)arg;
    uv_loop_init(&loop);
    if (etcd_new(&loop, endpoint, 500, &e, NULL) != 0)
        return 0;
    if (etcd_get(e, "/health-probe", 500, get_cb, &r) == 0)
        while (!r.done)
            uv_run(&loop, UV_RUN_ONCE);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return r.done && r.rc == 0;
}

static int setup(void **state)
{
    int client = free_port(), peer = free_port();
    char curls[64], purls[64], cluster[96];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mr-etcd-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", client);
    snprintf(dead_endpoint, sizeof(dead_endpoint), "http://127.0.0.1:%d", free_port());
    snprintf(curls, sizeof(curls), "http://127.0.0.1:%d", client);
    snprintf(purls, sizeof(purls), "http://127.0.0.1:%d", peer);
    snprintf(cluster, sizeof(cluster), "t=%s", purls);
    etcd_pid = fork();
    if (etcd_pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execlp("etcd", "etcd", "--name", "t", "--data-dir", dir, "--listen-client-urls", curls,
               "--advertise-client-urls", curls, "--listen-peer-urls", purls,
               "--initial-advertise-peer-urls", purls, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    return wait_for(etcd_healthy, NULL, 20000);
}

static int teardown(void **state)
{
    char cmd[128];
    int status;

    (void)state;
    kill(etcd_pid, SIGKILL);
    waitpid(etcd_pid, &status, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put_then_get_returns_value_and_revisions(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p1 = {0}, p2 = {0}, g = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, endpoint, 2000, &e, NULL), 0);
    assert_int_equal(etcd_put(e, "/t/k", "one", 3, 5000, put_cb, &p1), 0);
    run_until(&loop, &p1.done);
    assert_int_equal(etcd_put(e, "/t/k", "two\0x", 5, 5000, put_cb, &p2), 0);
    run_until(&loop, &p2.done);
    assert_int_equal(p1.rc, 0);
    assert_int_equal(p2.rc, 0);
    assert_true(p2.rev > p1.rev);
    assert_int_equal(etcd_get(e, "/t/k", 5000, get_cb, &g), 0);
    run_until(&loop, &g.done);
    assert_int_equal(g.rc, 0);
    assert_true(g.found);
    assert_int_equal(g.rev, p2.rev);
    assert_int_equal(g.version, 2);
    assert_string_equal(g.value, "two");
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void missing_key_is_reported_absent(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result g = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, endpoint, 2000, &e, NULL), 0);
    assert_int_equal(etcd_get(e, "/t/absent", 5000, get_cb, &g), 0);
    run_until(&loop, &g.done);
    assert_int_equal(g.rc, 0);
    assert_false(g.found);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void put_fails_over_past_a_dead_endpoint(void **state)
{
    char both[160];
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};

    (void)state;
    snprintf(both, sizeof(both), "%s,%s", dead_endpoint, endpoint);
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, both, 1000, &e, NULL), 0);
    assert_int_equal(etcd_put(e, "/t/f", "x", 1, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(p.rc, 0);
    assert_string_equal(etcd_current_endpoint(e), endpoint);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void put_to_only_dead_endpoints_fails_at_the_deadline(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, dead_endpoint, 200, &e, NULL), 0);
    assert_int_equal(etcd_put(e, "/t/f", "x", 1, 600, put_cb, &p), 0);
    run_until(&loop, &p.done);
    /* Refused at once (MR_ECONN), or, on a loaded machine, the last attempt
     * was still connecting at the deadline (MR_ETIMEDOUT): a failure either way. */
    assert_true(p.rc == MR_ECONN || p.rc == MR_ETIMEDOUT);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

struct watched {
    int64_t revs[16];
    char values[16][8];
    int n, ended, end_rc;
    int64_t compact_rev;
};

static void on_event(struct etcd_watch *w, const struct etcd_kv *kv, void *data)
{
    struct watched *x = data;
    (void)w;
    if (x->n < 16) {
        x->revs[x->n] = kv->mod_revision;
        snprintf(x->values[x->n], sizeof(x->values[0]), "%.*s", (int)kv->value_len, kv->value);
        x->n++;
    }
}

static void on_end(struct etcd_watch *w, int rc, int64_t compact_revision, const char *errmsg,
                   void *data)
{
    struct watched *x = data;
    (void)w;
    (void)errmsg;
    x->ended = 1;
    x->end_rc = rc;
    x->compact_rev = compact_revision;
}

static int watched_three(void *arg)
{
    struct watched *x = arg;
    return x->n >= 3;
}

static void watch_replays_history_in_order_then_cancels(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct etcd_watch *w;
    struct result p[3] = {{0}};
    struct watched x = {0};
    int64_t deadline;

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, endpoint, 2000, &e, NULL), 0);
    for (int i = 0; i < 3; i++) {
        char v[2] = {(char)('a' + i), 0};
        assert_int_equal(etcd_put(e, "/t/w", v, 1, 5000, put_cb, &p[i]), 0);
        run_until(&loop, &p[i].done);
    }
    /* From the first put's revision: history arrives, in order. */
    assert_int_equal(etcd_watch(e, "/t/w", p[0].rev, on_event, on_end, &x, &w), 0);
    deadline = test_now_ms() + test_timeout_ms(5000);
    while (!watched_three(&x) && test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(x.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x.revs[i], p[i].rev);
        assert_int_equal(x.values[i][0], 'a' + i);
    }
    etcd_watch_cancel(w);
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECLOSED);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void done_cb(int rc, const char *errmsg, void *data)
{
    struct result *r = data;
    (void)errmsg;
    r->done = 1;
    r->rc = rc;
}

static void watch_below_compaction_ends_with_ecompacted(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0}, c = {0}, c2 = {0};
    struct watched x = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, endpoint, 2000, &e, NULL), 0);
    assert_int_equal(etcd_put(e, "/t/c", "x", 1, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(etcd_compact(e, p.rev, 5000, done_cb, &c), 0);
    run_until(&loop, &c.done);
    assert_int_equal(c.rc, 0);
    /* Compacting to the same revision again counts as success. */
    assert_int_equal(etcd_compact(e, p.rev, 5000, done_cb, &c2), 0);
    run_until(&loop, &c2.done);
    assert_int_equal(c2.rc, 0);
    assert_int_equal(etcd_watch(e, "/t/c", 1, on_event, on_end, &x, NULL), 0);
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECOMPACTED);
    assert_int_equal(x.compact_rev, p.rev);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void bad_endpoint_list_is_refused(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    char err[MR_ERRMSG_LEN] = "";

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, "", 1000, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "no etcd endpoint"));
    assert_int_equal(etcd_new(&loop, "ftp://x:1", 1000, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "ftp://x:1"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_then_get_returns_value_and_revisions),
        cmocka_unit_test(missing_key_is_reported_absent),
        cmocka_unit_test(put_fails_over_past_a_dead_endpoint),
        cmocka_unit_test(put_to_only_dead_endpoints_fails_at_the_deadline),
        cmocka_unit_test(watch_replays_history_in_order_then_cancels),
        cmocka_unit_test(watch_below_compaction_ends_with_ecompacted),
        cmocka_unit_test(bad_endpoint_list_is_refused),
    };
    return cmocka_run_group_tests_name("etcd", tests, setup, teardown);
}
