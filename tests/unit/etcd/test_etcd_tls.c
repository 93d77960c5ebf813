/* Unit tests of src/etcd over TLS against a real single-member etcd started
 * here with client certificate authentication (--client-cert-auth,
 * https:// client URL), certificates issued with tls_cert_* into a temp dir
 * removed at the end.  Both transports: gRPC (h2.c, ALPN "h2") and the JSON
 * gateway (src/http over TLS).  Also: a client whose certificate comes from
 * another CA gets nothing, and endpoint lists that cannot be served
 * securely are refused. */
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
#include "common/log.h"
#include "common/util.h"
#include "etcd/etcd.h"
#include "lib/wait.h"
#include "tls/tls.h"

static char dir[64];
static char endpoint[64];
static pid_t etcd_pid;

static char *path_of(const char *rel)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];

    snprintf(b, 256, "%s/%s", dir, rel);
    return b;
}

static struct tls_ctx *client_ctx(const char *ca, const char *name_dir, const char *name)
{
    struct tls_opts o = {0};
    struct tls_ctx *t = NULL;
    char err[MR_ERRMSG_LEN], crt[256], key[256];

    snprintf(crt, sizeof(crt), "%s/%s.crt", path_of(name_dir), name);
    snprintf(key, sizeof(key), "%s/%s.key", path_of(name_dir), name);
    o.ca_file = ca;
    o.cert_file = crt;
    o.key_file = key;
    if (tls_ctx_new(&o, 0, &t, err) != 0)
        fail_msg("tls_ctx_new: %s", err);
    return t;
}

struct result {
    int done, rc;
    int64_t rev;
    int found;
    char value[64];
    char errmsg[MR_ERRMSG_LEN];
};

static void put_cb(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct result *r = data;

    r->done = 1;
    r->rc = rc;
    r->rev = revision;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
}

static void get_cb(int rc, const struct etcd_kv *kv, int64_t header_revision, const char *errmsg,
                   void *data)
{
    struct result *r = data;

    (void)header_revision;
    r->done = 1;
    r->rc = rc;
    r->found = kv != NULL;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
    if (kv != NULL)
        snprintf(r->value, sizeof(r->value), "%.*s", (int)kv->value_len, kv->value);
}

static void run_until(uv_loop_t *loop, int *flag)
{
    int64_t deadline = test_now_ms() + test_timeout_ms(15000);

    while (!*flag && test_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(*flag);
}

/* Put then get <key> over <transport>; returns the get's rc. */
static int put_get(enum etcd_transport transport, struct tls_ctx *t, const char *key,
                   uint64_t deadline_ms, struct result *g)
{
    struct etcd_opts o = {endpoint, 1000, transport};
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&loop);
    if (etcd_new_tls(&loop, &o, t, &e, err) != 0)
        fail_msg("etcd_new_tls: %s", err);
    assert_int_equal(etcd_put(e, key, "v", 1, deadline_ms, put_cb, &p), 0);
    run_until(&loop, &p.done);
    memset(g, 0, sizeof(*g));
    if (p.rc == 0) {
        assert_int_equal(etcd_get(e, key, deadline_ms, get_cb, g), 0);
        run_until(&loop, &g->done);
    } else {
        *g = p;
    }
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return g->rc;
}

static int etcd_healthy(void *arg)
{
    struct tls_ctx *t = arg;
    struct etcd_opts o = {endpoint, 500, ETCD_TRANSPORT_GATEWAY};
    uv_loop_t loop;
    struct etcd *e;
    struct result r = {0};

    uv_loop_init(&loop);
    if (etcd_new_tls(&loop, &o, t, &e, NULL) != 0)
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
    int client = mr_free_port(), peer = mr_free_port();
    char curls[64], purls[64], cluster[96], err[MR_ERRMSG_LEN];
    struct tls_ctx *t;
    int ok;

    (void)state;
    mr_log_setup(NULL, "test", MR_LOG_OFF);
    snprintf(dir, sizeof(dir), "/tmp/mr-etcd-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (tls_cert_make_ca(path_of("ca"), "cluster-a", 30, err) != 0 ||
        tls_cert_make_ca(path_of("ca2"), "cluster-b", 30, err) != 0 ||
        tls_cert_issue(path_of("ca"), "etcd", "127.0.0.1,localhost", -60, 86400,
                       path_of("certs"), err) != 0 ||
        tls_cert_issue(path_of("ca"), "node", NULL, -60, 86400, path_of("certs"), err) != 0 ||
        tls_cert_issue(path_of("ca2"), "mallory", NULL, -60, 86400, path_of("other"), err) != 0) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d", client);
    snprintf(curls, sizeof(curls), "https://127.0.0.1:%d", client);
    snprintf(purls, sizeof(purls), "http://127.0.0.1:%d", peer);
    snprintf(cluster, sizeof(cluster), "t=%s", purls);
    etcd_pid = fork();
    if (etcd_pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execlp("etcd", "etcd", "--name", "t", "--data-dir", path_of("data"),
               "--listen-client-urls", curls, "--advertise-client-urls", curls,
               "--listen-peer-urls", purls, "--initial-advertise-peer-urls", purls,
               "--initial-cluster", cluster, "--client-cert-auth", "--trusted-ca-file",
               path_of("ca/ca.crt"), "--cert-file", path_of("certs/etcd.crt"), "--key-file",
               path_of("certs/etcd.key"), (char *)NULL);
        _exit(127);
    }
    t = client_ctx(path_of("ca/ca.crt"), "certs", "node");
    ok = wait_for(etcd_healthy, t, 20000);
    tls_ctx_free(t);
    return ok;
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

static void grpc_over_tls_puts_and_gets(void **state)
{
    struct tls_ctx *t = client_ctx(path_of("ca/ca.crt"), "certs", "node");
    struct result g;

    (void)state;
    assert_int_equal(put_get(ETCD_TRANSPORT_GRPC, t, "/tls/grpc", 5000, &g), 0);
    assert_true(g.found);
    assert_string_equal(g.value, "v");
    assert_int_equal(tls_ctx_refused(t), 0);
    tls_ctx_free(t);
}

static void gateway_over_tls_puts_and_gets(void **state)
{
    struct tls_ctx *t = client_ctx(path_of("ca/ca.crt"), "certs", "node");
    struct result g;

    (void)state;
    assert_int_equal(put_get(ETCD_TRANSPORT_GATEWAY, t, "/tls/gw", 5000, &g), 0);
    assert_true(g.found);
    assert_string_equal(g.value, "v");
    tls_ctx_free(t);
}

static void certificate_of_another_cluster_gets_nothing(void **state)
{
    /* Trusts etcd's CA, but presents a certificate etcd does not. */
    struct tls_ctx *t = client_ctx(path_of("ca/ca.crt"), "other", "mallory");
    /* Trusts only the other CA: refuses etcd. */
    struct tls_ctx *t2 = client_ctx(path_of("ca2/ca.crt"), "other", "mallory");
    struct result g;

    (void)state;
    assert_int_not_equal(put_get(ETCD_TRANSPORT_GRPC, t, "/tls/x", 1500, &g), 0);
    assert_int_not_equal(put_get(ETCD_TRANSPORT_GATEWAY, t, "/tls/x", 1500, &g), 0);
    assert_int_not_equal(put_get(ETCD_TRANSPORT_GRPC, t2, "/tls/x", 1500, &g), 0);
    assert_non_null(strstr(g.errmsg, "tls"));
    assert_true(tls_ctx_refused(t2) >= 1);
    tls_ctx_free(t);
    tls_ctx_free(t2);
}

static void insecure_endpoint_lists_are_refused(void **state)
{
    struct tls_ctx *t = client_ctx(path_of("ca/ca.crt"), "certs", "node");
    struct etcd_opts o = {endpoint, 1000, ETCD_TRANSPORT_GRPC};
    struct etcd_opts mixed = {"https://127.0.0.1:1,http://127.0.0.1:2", 1000,
                              ETCD_TRANSPORT_GRPC};
    uv_loop_t loop;
    struct etcd *e;
    char err[MR_ERRMSG_LEN];

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new_opts(&loop, &o, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "TLS"));
    assert_int_equal(etcd_new_tls(&loop, &mixed, t, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "mix"));
    assert_int_equal(uv_loop_close(&loop), 0);
    tls_ctx_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grpc_over_tls_puts_and_gets),
        cmocka_unit_test(gateway_over_tls_puts_and_gets),
        cmocka_unit_test(certificate_of_another_cluster_gets_nothing),
        cmocka_unit_test(insecure_endpoint_lists_are_refused),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
