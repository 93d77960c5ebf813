/* TLS on the traffic path, with real processes: `meridian edge` terminating
 * TLS for anonymous clients and calling https:// origins with the cluster's
 * certificate, and `meridian shop` refusing anyone without one.
 *
 * Every test makes its own throw-away CAs and certificates (src/tls/cert.c)
 * in a temporary directory:
 *   ca/      the cluster CA: issues "shop", "edge", "node" and "public"
 *   other/   another CA: issues "intruder" (refused by the shop) and the
 *            rotated public certificate (so a client can tell which
 *            certificate the edge serves by the CA it trusts).
 * The "node" of a shop is a forked https server of this test that requires
 * a client certificate from ca/ and answers 200 to everything: enough for
 * the shop's /readyz, and it proves the shop's node client speaks mTLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "http/http.h"
#include "lib/cluster.h"
#include "lib/daemon.h"
#include "lib/wait.h"
#include "tls/tls.h"

struct fixture {
    char dir[64];
    int node_pid;
    int node_port;
    struct daemon shop, edge;
};

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- certificates ---- */

static void make_pki(struct fixture *f)
{
    char err[MR_ERRMSG_LEN], ca[128], other[128];

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-edgetls-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(ca, sizeof(ca), "%s/ca", f->dir);
    snprintf(other, sizeof(other), "%s/other", f->dir);
    if (tls_cert_make_ca(ca, "test-cluster", 1, err) != 0 ||
        tls_cert_make_ca(other, "other-ca", 1, err) != 0 ||
        tls_cert_issue(ca, "shop", "127.0.0.1", -60, 3600, f->dir, err) != 0 ||
        tls_cert_issue(ca, "edge", "127.0.0.1", -60, 3600, f->dir, err) != 0 ||
        tls_cert_issue(ca, "node", "127.0.0.1", -60, 3600, f->dir, err) != 0 ||
        tls_cert_issue(ca, "public", "127.0.0.1", -60, 3600, f->dir, err) != 0 ||
        tls_cert_issue(other, "intruder", "127.0.0.1", -60, 3600, f->dir, err) != 0 ||
        tls_cert_issue(other, "rotated", "127.0.0.1", -60, 3600, f->dir, err) != 0)
        fail_msg("certificates: %s", err);
}

static void teardown_fixture(struct fixture *f)
{
    char cmd[128];

    daemon_stop(&f->edge);
    daemon_stop(&f->shop);
    if (f->node_pid > 0) {
        kill(f->node_pid, SIGKILL);
        waitpid(f->node_pid, NULL, 0);
    }
    if (f->dir[0] && getenv("MR_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* ---- a client with a chosen certificate ---- */

/* GET <url> trusting <ca> (a CA directory name under the fixture: "ca" or
 * "other") and presenting <cert> ("edge", "intruder", ...; NULL: none).
 * Returns http_fetch's rc; *status gets the answer's status. */
static int get(struct fixture *f, const char *url, const char *ca, const char *cert, int *status,
               struct http_result *keep)
{
    char caf[128], crt[128], key[128], err[MR_ERRMSG_LEN];
    struct tls_opts o = {caf, cert ? crt : NULL, cert ? key : NULL, 0, 0, 0};
    struct tls_ctx *t = NULL;
    struct http_result res;
    int rc;

    snprintf(caf, sizeof(caf), "%s/%s/ca.crt", f->dir, ca);
    snprintf(crt, sizeof(crt), "%s/%s.crt", f->dir, cert ? cert : "");
    snprintf(key, sizeof(key), "%s/%s.key", f->dir, cert ? cert : "");
    if (tls_ctx_new(&o, 0, &t, err) != 0)
        fail_msg("client context: %s", err);
    http_fetch_set_tls(t);
    memset(&res, 0, sizeof(res));
    rc = http_fetch("GET", url, NULL, NULL, 0, (uint64_t)test_timeout_ms(5000), &res, err);
    http_fetch_set_tls(NULL);
    tls_ctx_free(t);
    *status = rc == 0 ? res.status : 0;
    if (keep != NULL && rc == 0)
        *keep = res;
    else if (rc == 0)
        http_result_close(&res);
    return rc;
}

static void url_of(const struct daemon *d, const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s%s", d->url, path);
}

/* ---- the shop's "node": an https server requiring the cluster's certificate ---- */

static void node_handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    (void)req;
    (void)data;
    http_respond(ex, 200, "application/json", "{\"ready\":true}\n", 15, NULL);
}

static void start_node(struct fixture *f)
{
    int fds[2], pid;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char caf[128], crt[128], key[128], err[MR_ERRMSG_LEN];
        struct tls_opts o = {caf, crt, key, 1, 0, 0};
        struct http_server_opts so;
        struct http_server *srv;
        struct tls_ctx *t;
        uv_loop_t loop;
        int port;

        snprintf(caf, sizeof(caf), "%s/ca/ca.crt", f->dir);
        snprintf(crt, sizeof(crt), "%s/node.crt", f->dir);
        snprintf(key, sizeof(key), "%s/node.key", f->dir);
        signal(SIGPIPE, SIG_IGN);
        uv_loop_init(&loop);
        http_server_opts_default(&so);
        if (tls_ctx_new(&o, 1, &t, err) != 0)
            _exit(3);
        so.tls = t;
        if (http_server_start(&loop, "127.0.0.1", 0, &so, node_handler, NULL, &srv, err) != 0)
            _exit(3);
        port = http_server_port(srv);
        if (write(fds[1], &port, sizeof(port)) != sizeof(port))
            _exit(3);
        uv_run(&loop, UV_RUN_DEFAULT);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &f->node_port, sizeof(f->node_port)), sizeof(f->node_port));
    close(fds[0]);
    f->node_pid = pid;
}

/* ---- daemons ---- */

static void start_shop(struct fixture *f)
{
    char ini[2048], ini_path[128], log[128];
    char *argv[] = {(char *)cluster_bin(), "shop", "--config", ini_path, NULL};

    snprintf(ini, sizeof(ini),
             "[shop]\nlisten = 127.0.0.1:0\nnode = https://127.0.0.1:%d\nregion = r1\n"
             "[tls]\nca_file = %s/ca/ca.crt\ncert_file = %s/shop.crt\nkey_file = %s/shop.key\n",
             f->node_port, f->dir, f->dir, f->dir);
    snprintf(ini_path, sizeof(ini_path), "%s/shop.ini", f->dir);
    snprintf(log, sizeof(log), "%s/shop.log", f->dir);
    write_file(ini_path, ini);
    assert_int_equal(daemon_start(argv, log, &f->shop), 0);
    assert_int_equal(strncmp(f->shop.url, "https://", 8), 0);
}

/* <origin>: the region's origin URL.  <public>: serve TLS to clients. */
static void start_edge(struct fixture *f, const char *origin, int public)
{
    char ini[2048], ini_path[128], log[128], pub[512] = "";
    char *argv[] = {(char *)cluster_bin(), "edge", "--config", ini_path, NULL};

    if (public)
        snprintf(pub, sizeof(pub), "public_cert_file = %s/public.crt\npublic_key_file = %s/public.key\n",
                 f->dir, f->dir);
    snprintf(ini, sizeof(ini),
             "[edge]\nlisten = 127.0.0.1:0\n[health]\nprobe_interval = 100ms\n"
             "[tls]\nca_file = %s/ca/ca.crt\ncert_file = %s/edge.crt\nkey_file = %s/edge.key\n%s"
             "[region r1]\norigin = %s\n",
             f->dir, f->dir, f->dir, pub, origin);
    snprintf(ini_path, sizeof(ini_path), "%s/edge.ini", f->dir);
    snprintf(log, sizeof(log), "%s/edge.log", f->dir);
    write_file(ini_path, ini);
    assert_int_equal(daemon_start(argv, log, &f->edge), 0);
}

struct ready_arg {
    struct fixture *f;
    const char *url;
    const char *ca;
    const char *cert;
};

static int answers_200(void *arg)
{
    struct ready_arg *a = arg;
    int status;

    return get(a->f, a->url, a->ca, a->cert, &status, NULL) == 0 && status == 200;
}

static int refused(void *arg)
{
    struct ready_arg *a = arg;
    int status;

    return get(a->f, a->url, a->ca, a->cert, &status, NULL) != 0;
}

/* ======================================================================
 * Tests
 * ====================================================================== */

/* Only the cluster's certificates reach a shop: no certificate, another
 * CA's, or plain HTTP is refused at the handshake, and the shop lives on. */
static void shop_refuses_clients_without_the_cluster_certificate(void **state)
{
    struct fixture f = {0};
    char url[160], plain[320];
    int status;

    (void)state;
    make_pki(&f);
    start_node(&f);
    start_shop(&f);
    url_of(&f.shop, "/healthz", url, sizeof(url));
    assert_int_not_equal(get(&f, url, "ca", NULL, &status, NULL), 0);
    assert_int_not_equal(get(&f, url, "ca", "intruder", &status, NULL), 0);
    snprintf(plain, sizeof(plain), "http://%.56s/healthz", f.shop.url + strlen("https://"));
    assert_int_not_equal(get(&f, plain, "ca", NULL, &status, NULL), 0);
    assert_true(cluster_pid_alive(f.shop.pid));
    /* The edge's certificate gets in; /readyz goes on to the https node
     * with the shop's own certificate. */
    assert_int_equal(get(&f, url, "ca", "edge", &status, NULL), 0);
    assert_int_equal(status, 200);
    url_of(&f.shop, "/readyz", url, sizeof(url));
    assert_int_equal(get(&f, url, "ca", "edge", &status, NULL), 0);
    assert_int_equal(status, 200);
    /* SIGHUP with a broken key: refused, logged, the old certificate
     * serves on. */
    {
        char key[128], cmd[256];
        snprintf(key, sizeof(key), "%s/shop.key", f.dir);
        write_file(key, "not a key\n");
        assert_int_equal(kill(f.shop.pid, SIGHUP), 0);
        snprintf(cmd, sizeof(cmd), "grep -q 'certificates not reloaded' %s/shop.log", f.dir);
        for (int i = 0; i < 200 && system(cmd) != 0; i++)
            test_sleep_ms(10);   /* pacing a bounded poll of the log */
        assert_int_equal(system(cmd), 0);
        assert_true(cluster_pid_alive(f.shop.pid));
        assert_int_equal(get(&f, url, "ca", "edge", &status, NULL), 0);
        assert_int_equal(status, 200);
    }
    teardown_fixture(&f);
}

/* client --TLS--> edge --mTLS--> shop --mTLS--> node. */
static void edge_terminates_tls_and_calls_an_https_shop_with_mtls(void **state)
{
    struct fixture f = {0};
    struct http_result res;
    struct ready_arg ra;
    char url[160], origin[96], plain[320];
    int status;

    (void)state;
    make_pki(&f);
    start_node(&f);
    start_shop(&f);
    snprintf(origin, sizeof(origin), "%s", f.shop.url);
    start_edge(&f, origin, 1);
    assert_int_equal(strncmp(f.edge.url, "https://", 8), 0);
    /* Ready once its probe reached the shop over mTLS.  The client presents
     * no certificate: the public side takes anonymous clients. */
    url_of(&f.edge, "/readyz", url, sizeof(url));
    ra = (struct ready_arg){&f, url, "ca", NULL};
    assert_int_equal(wait_for(answers_200, &ra, 10000), 0);
    /* A request proxied to the shop: its answer carries the shop's region. */
    url_of(&f.edge, "/api/no-such-thing", url, sizeof(url));
    assert_int_equal(get(&f, url, "ca", NULL, &status, &res), 0);
    assert_non_null(res.headers.data);
    if (strstr(res.headers.data, "Meridian-Region: r1") == NULL)
        fail_msg("not the shop's answer (%d): %s", status, res.headers.data);
    http_result_close(&res);
    /* Plain HTTP to the TLS listener is refused, and counted. */
    snprintf(plain, sizeof(plain), "http://%.56s/healthz", f.edge.url + strlen("https://"));
    assert_int_not_equal(get(&f, plain, "ca", NULL, &status, NULL), 0);
    url_of(&f.edge, "/metrics", url, sizeof(url));
    assert_int_equal(get(&f, url, "ca", NULL, &status, &res), 0);
    assert_int_equal(status, 200);
    if (strstr(res.body.data, "meridian_edge_tls_refused_total 0") != NULL ||
        strstr(res.body.data, "meridian_edge_tls_refused_total ") == NULL)
        fail_msg("meridian_edge_tls_refused_total should count the plain request");
    http_result_close(&res);
    assert_true(cluster_pid_alive(f.shop.pid));
    teardown_fixture(&f);
}

/* SIGHUP: new connections see the new public certificate; a bad file keeps
 * the old one and the edge up. */
static void edge_sighup_rotates_the_public_certificate(void **state)
{
    struct fixture f = {0};
    struct ready_arg ra;
    char url[160], a[160], b[160];
    int status;

    (void)state;
    make_pki(&f);
    start_edge(&f, "http://127.0.0.1:1", 1);
    url_of(&f.edge, "/healthz", url, sizeof(url));
    assert_int_equal(get(&f, url, "ca", NULL, &status, NULL), 0);
    assert_int_equal(status, 200);
    assert_int_not_equal(get(&f, url, "other", NULL, &status, NULL), 0);
    /* Rotate: the certificate from the other CA replaces the file (key
     * first: the reload reads both after the signal). */
    snprintf(a, sizeof(a), "%s/rotated.key", f.dir);
    snprintf(b, sizeof(b), "%s/public.key", f.dir);
    assert_int_equal(rename(a, b), 0);
    snprintf(a, sizeof(a), "%s/rotated.crt", f.dir);
    snprintf(b, sizeof(b), "%s/public.crt", f.dir);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(kill(f.edge.pid, SIGHUP), 0);
    ra = (struct ready_arg){&f, url, "other", NULL};
    assert_int_equal(wait_for(answers_200, &ra, 5000), 0);
    ra = (struct ready_arg){&f, url, "ca", NULL};
    assert_int_equal(wait_for(refused, &ra, 5000), 0);
    /* A bad file: the reload fails, the rotated certificate stays. */
    write_file(b, "not a certificate\n");
    assert_int_equal(kill(f.edge.pid, SIGHUP), 0);
    test_sleep_ms(200);   /* pacing: nothing observable changes when it works */
    assert_true(cluster_pid_alive(f.edge.pid));
    assert_int_equal(get(&f, url, "other", NULL, &status, NULL), 0);
    assert_int_equal(status, 200);
    {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "grep -q 'certificates not all reloaded' %s/edge.log", f.dir);
        assert_int_equal(system(cmd), 0);
    }
    teardown_fixture(&f);
}

/* An https:// origin without [tls] is refused at --check-config, naming it. */
static void edge_https_origin_without_tls_is_a_config_error(void **state)
{
    char dir[] = "/tmp/mr-edgetls-cfg-XXXXXX", ini[128], cmd[512], out[1024] = "";
    FILE *p;
    size_t n;
    int st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(ini, sizeof(ini), "%s/edge.ini", dir);
    write_file(ini, "[edge]\nlisten = 127.0.0.1:0\n[region r1]\norigin = https://127.0.0.1:9443\n");
    snprintf(cmd, sizeof(cmd), "%s edge --check-config --config %s 2>&1", cluster_bin(), ini);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    if (strstr(out, "[region r1]: origin 'https://127.0.0.1:9443' is https:// but [tls]") == NULL)
        fail_msg("unclear message: %s", out);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_https_origin_without_tls_is_a_config_error),
        cmocka_unit_test(shop_refuses_clients_without_the_cluster_certificate),
        cmocka_unit_test(edge_terminates_tls_and_calls_an_https_shop_with_mtls),
        cmocka_unit_test(edge_sighup_rotates_the_public_certificate),
    };
    return cmocka_run_group_tests_name("edge_tls", tests, NULL, NULL);
}
