/* Integration test of `meridian node` with [tls] (docs/security.md, "TLS on
 * a node"), real processes and no `meridian up`: one etcd started here with
 * client certificate authentication on an https:// client URL, and two
 * nodes (us-east-1, eu-west-1) with [auth] required = yes, no peer_token,
 * a global table, and certificates issued with tls_cert_* into a temp dir.
 * The test talks to the nodes through OpenSSL directly (blocking sockets),
 * so that it can present any certificate, or none, and read the certificate
 * the node presents.
 *
 * Checks: a cluster certificate authenticates without a token; no
 * certificate and no token gets 401 over TLS; certificates from another CA
 * or expired ones fail the handshake and raise meridian_tls_refused_total;
 * plain HTTP to the TLS port is refused and the node stays up; the nodes
 * replicate a global table to each other over https:// (their certificates
 * are their only credential); SIGHUP with a new certificate: new connections
 * get it, an open keep-alive connection keeps working; a bad file on SIGHUP
 * keeps the old certificate; config errors name what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/err.h"
#include "common/util.h"
#include "lib/cluster.h"
#include "lib/wait.h"
#include "tls/tls.h"

#define TOKEN "mrt_node-tls-test-admin-token"

static char dir[64];
static int etcd_port, port_a, port_b;
static pid_t etcd_pid, pid_a, pid_b;

static char *path_of(const char *rel)
{
    static char bufs[16][256];
    static int i;
    char *b = bufs[i++ % 16];

    snprintf(b, 256, "%s/%s", dir, rel);
    return b;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- a blocking TLS client ------------------------------------------------ */

/* A client context trusting the cluster CA and presenting <name>'s
 * certificate from <sub> (NULL: none). */
static SSL_CTX *ssl_ctx(const char *sub, const char *name)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    char crt[256], key[256];

    assert_non_null(c);
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_load_verify_locations(c, path_of("ca/ca.crt"), NULL), 1);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    if (name) {
        snprintf(crt, sizeof(crt), "%s/%s.crt", path_of(sub), name);
        snprintf(key, sizeof(key), "%s/%s.key", path_of(sub), name);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(c, crt), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM), 1);
    }
    return c;
}

struct tconn {
    int fd;
    SSL *ssl;
};

static int tconn_open(SSL_CTX *ctx, int port, struct tconn *c)
{
    c->ssl = NULL;
    c->fd = tcp_connect(port);
    if (c->fd < 0)
        return -1;
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    if (SSL_connect(c->ssl) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static void tconn_close(struct tconn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

/* The serial number of the node's certificate as hex (static buffer). */
static const char *tconn_serial(struct tconn *c)
{
    static char out[128];
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    BIGNUM *bn;
    char *hex;

    assert_non_null(x);
    bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL);
    hex = BN_bn2hex(bn);
    snprintf(out, sizeof(out), "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    return out;
}

/* One keep-alive request; the status, or -1 when the connection failed.
 * The body goes to <body> (NUL-terminated, truncated to <cap>). */
static int tconn_request(struct tconn *c, const char *method, const char *path, const char *hdrs,
                         const char *payload, char *body, size_t cap)
{
    char req[2048], buf[65536];
    size_t have = 0;
    int n, status;
    const char *eoh, *cl;
    long len;

    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, hdrs ? hdrs : "", payload ? strlen(payload) : 0, payload ? payload : "");
    if (SSL_write(c->ssl, req, n) != n) {
        ERR_clear_error();
        return -1;
    }
    for (;;) {
        buf[have] = '\0';
        eoh = strstr(buf, "\r\n\r\n");
        if (eoh) {
            cl = strcasestr(buf, "\r\nContent-Length:");
            len = cl && cl < eoh ? strtol(cl + 17, NULL, 10) : 0;
            if ((size_t)(eoh + 4 - buf) + (size_t)len <= have)
                break;
        }
        if (have + 1 >= sizeof(buf))
            return -1;
        n = SSL_read(c->ssl, buf + have, (int)(sizeof(buf) - 1 - have));
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        have += (size_t)n;
    }
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    if (body)
        snprintf(body, cap, "%.*s", (int)len, eoh + 4);
    return status;
}

/* Open, one request, close. */
static int request(SSL_CTX *ctx, int port, const char *method, const char *path, const char *hdrs,
                   const char *payload, char *body, size_t cap)
{
    struct tconn c;
    int status = -1;

    if (tconn_open(ctx, port, &c) == 0)
        status = tconn_request(&c, method, path, hdrs, payload, body, cap);
    tconn_close(&c);
    return status;
}

static SSL_CTX *ops;   /* a cluster certificate (CN "ops") */

static long metric(int port, const char *name)
{
    static char body[65536];
    const char *p;

    if (request(ops, port, "GET", "/metrics", NULL, NULL, body, sizeof(body)) != 200)
        return -1;
    for (p = body; (p = strstr(p, name)) != NULL; p++)
        if ((p == body || p[-1] == '\n') && p[strlen(name)] == ' ')
            return strtol(p + strlen(name) + 1, NULL, 10);
    return -1;
}

/* ---- processes --------------------------------------------------------------- */

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        if (freopen("/dev/null", "r", stdin) == NULL || freopen(log, "a", stdout) == NULL ||
            freopen(log, "a", stderr) == NULL)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int etcd_up(void *arg)
{
    (void)arg;
    int fd = tcp_connect(etcd_port);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

static int node_ready(void *arg)
{
    return request(ops, *(int *)arg, "GET", "/readyz", NULL, NULL, NULL, 0) == 200;
}

/* More [auth] lines for write_config (SIGHUP test): "" or "token = ...\n". */
static const char *auth_extra = "";

static void write_config(const char *region, int port, const char *peer, int peer_port)
{
    char hash[65], file[256];
    FILE *f;

    snprintf(file, sizeof(file), "%s/%s.ini", dir, region);
    mr_auth_hash_hex(TOKEN, hash);
    f = fopen(file, "w");
    assert_non_null(f);
    fprintf(f, "[node]\nregion = %s\ndata_dir = %s/%s-data\nlisten = 127.0.0.1:%d\n"
               "etcd = https://127.0.0.1:%d\nlog_level = info\n"
               "[tables]\ndeclare = carts:lww\npeers = %s=https://127.0.0.1:%d\n"
               "[auth]\nrequired = yes\ntoken = admin admin %s\n%s"
               "[tls]\nca_file = %s/ca/ca.crt\ncert_file = %s/%s/%s.crt\nkey_file = %s/%s/%s.key\n",
            region, dir, region, port, etcd_port, peer, peer_port, hash, auth_extra, dir, dir, region,
            region, dir, region, region);
    fclose(f);
}

static pid_t start_node(const char *region, int *port)
{
    char config[256], log[256], cmd[300];
    char *argv[] = {(char *)cluster_bin(), "node", "--config", config, NULL};
    pid_t pid;

    snprintf(config, sizeof(config), "%s/%s.ini", dir, region);
    snprintf(log, sizeof(log), "%s/%s.log", dir, region);
    pid = spawn(argv, log);
    if (wait_for(node_ready, port, 30000) != 0) {
        fprintf(stderr, "node %s not ready; its log:\n", region);
        snprintf(cmd, sizeof(cmd), "tail -30 %s >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        if (pid > 0) {   /* a failed group setup gets no teardown: leave nothing running */
            int status;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        return -1;
    }
    return pid;
}

/* SIGTERM; 0 when it exited 0 (no sanitizer report). */
static int stop(pid_t pid)
{
    int status;

    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int teardown(void **state);

static int setup(void **state)
{
    char err[MR_ERRMSG_LEN], curls[64], purls[64], cluster[96], log[256];
    int peer = mr_free_port();

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mr-test-nodetls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (tls_cert_make_ca(path_of("ca"), "cluster-a", 30, err) != 0 ||
        tls_cert_make_ca(path_of("ca2"), "cluster-b", 30, err) != 0 ||
        tls_cert_issue(path_of("ca"), "etcd", "127.0.0.1,localhost", -60, 86400, path_of("certs"), err) != 0 ||
        tls_cert_issue(path_of("ca"), "us-east-1", "127.0.0.1,localhost", -60, 86400,
                       path_of("us-east-1"), err) != 0 ||
        tls_cert_issue(path_of("ca"), "eu-west-1", "127.0.0.1,localhost", -60, 86400,
                       path_of("eu-west-1"), err) != 0 ||
        tls_cert_issue(path_of("ca"), "ops", NULL, -60, 86400, path_of("certs"), err) != 0 ||
        tls_cert_issue(path_of("ca"), "expired", NULL, -7200, -3600, path_of("certs"), err) != 0 ||
        tls_cert_issue(path_of("ca2"), "mallory", NULL, -60, 86400, path_of("other"), err) != 0) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    etcd_port = mr_free_port();
    port_a = mr_free_port();
    port_b = mr_free_port();
    snprintf(curls, sizeof(curls), "https://127.0.0.1:%d", etcd_port);
    snprintf(purls, sizeof(purls), "http://127.0.0.1:%d", peer);
    snprintf(cluster, sizeof(cluster), "t=%s", purls);
    snprintf(log, sizeof(log), "%s/etcd.log", dir);
    {
        char *argv[] = {"etcd", "--name", "t", "--data-dir", path_of("etcd-data"),
                        "--listen-client-urls", curls, "--advertise-client-urls", curls,
                        "--listen-peer-urls", purls, "--initial-advertise-peer-urls", purls,
                        "--initial-cluster", cluster, "--client-cert-auth", "--trusted-ca-file",
                        path_of("ca/ca.crt"), "--cert-file", path_of("certs/etcd.crt"),
                        "--key-file", path_of("certs/etcd.key"), NULL};
        etcd_pid = spawn(argv, log);
    }
    if (wait_for(etcd_up, NULL, 20000) != 0) {
        teardown(state);
        return -1;
    }
    ops = ssl_ctx("certs", "ops");
    write_config("us-east-1", port_a, "eu-west-1", port_b);
    write_config("eu-west-1", port_b, "us-east-1", port_a);
    pid_a = start_node("us-east-1", &port_a);
    pid_b = pid_a > 0 ? start_node("eu-west-1", &port_b) : -1;
    if (pid_a > 0 && pid_b > 0)
        return 0;
    teardown(state);   /* cmocka runs none after a failed group setup */
    return -1;
}

static int teardown(void **state)
{
    char cmd[128];
    int status, rc = 0;

    (void)state;
    if (stop(pid_a) != 0 || stop(pid_b) != 0) {
        fprintf(stderr, "a node did not exit cleanly; logs in %s\n", dir);
        rc = -1;
    }
    if (etcd_pid > 0) {
        kill(etcd_pid, SIGKILL);
        waitpid(etcd_pid, &status, 0);
    }
    SSL_CTX_free(ops);
    if (rc == 0 && getenv("MR_TEST_KEEP") == NULL) {   /* set: keep the logs */
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        rc = system(cmd) == 0 ? 0 : -1;
    }
    return rc;
}

/* ---- tests --------------------------------------------------------------------- */

static void cluster_certificate_needs_no_token(void **state)
{
    char body[4096];

    (void)state;
    /* DDL needs the admin scope: a verified cluster certificate has all. */
    assert_int_equal(request(ops, port_a, "POST", "/v1/sql", "Content-Type: application/json\r\n",
                             "{\"statements\":[{\"sql\":\"CREATE TABLE IF NOT EXISTS t(a)\"}]}",
                             body, sizeof(body)), 200);
    assert_int_equal(request(ops, port_a, "GET", "/v1/digest", NULL, NULL, body, sizeof(body)), 200);
}

static void no_certificate_no_token_gets_401(void **state)
{
    SSL_CTX *anon = ssl_ctx(NULL, NULL);
    char body[4096];

    (void)state;
    assert_int_equal(request(anon, port_a, "GET", "/v1/digest", NULL, NULL, body, sizeof(body)), 401);
    assert_int_equal(request(anon, port_a, "GET", "/v1/digest", "Authorization: Bearer nope\r\n", NULL,
                             body, sizeof(body)), 401);
    assert_int_equal(request(anon, port_a, "GET", "/v1/digest",
                             "Authorization: Bearer " TOKEN "\r\n", NULL, body, sizeof(body)), 200);
    /* The observability endpoints want the read scope when the node
     * checks tokens (a cluster certificate has every scope). */
    assert_int_equal(request(anon, port_a, "GET", "/metrics", NULL, NULL, body, sizeof(body)), 401);
    assert_int_equal(request(anon, port_a, "GET", "/v1/status", NULL, NULL, body, sizeof(body)), 401);
    assert_int_equal(request(anon, port_a, "GET", "/metrics", "Authorization: Bearer " TOKEN "\r\n", NULL,
                             body, sizeof(body)), 200);
    assert_int_equal(request(anon, port_a, "GET", "/v1/status", "Authorization: Bearer " TOKEN "\r\n",
                             NULL, body, sizeof(body)), 200);
    assert_int_equal(request(ops, port_a, "GET", "/metrics", NULL, NULL, body, sizeof(body)), 200);
    assert_int_equal(request(ops, port_a, "GET", "/v1/status", NULL, NULL, body, sizeof(body)), 200);
    /* The probes stay open over TLS; the dashboard wants the read scope
     * (decision 043), from a token or, here, a client certificate. */
    assert_int_equal(request(anon, port_a, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);
    assert_int_equal(request(anon, port_a, "GET", "/readyz", NULL, NULL, body, sizeof(body)), 200);
    assert_int_equal(request(anon, port_a, "GET", "/dashboard", NULL, NULL, body, sizeof(body)), 401);
    assert_int_equal(request(ops, port_a, "GET", "/dashboard", NULL, NULL, body, sizeof(body)), 200);
    SSL_CTX_free(anon);
}

static int refused_reaches(void *arg)
{
    return metric(port_a, "meridian_tls_refused_total") >= *(long *)arg;
}

static void foreign_and_expired_certificates_are_refused(void **state)
{
    SSL_CTX *mallory = ssl_ctx("other", "mallory"), *expired = ssl_ctx("certs", "expired");
    long before = metric(port_a, "meridian_tls_refused_total"), want;
    char body[4096];

    (void)state;
    assert_true(before >= 0);
    /* TLS 1.3: the client may finish before the server checks its
     * certificate; the refusal then shows as a failed request. */
    assert_int_equal(request(mallory, port_a, "GET", "/healthz", NULL, NULL, body, sizeof(body)), -1);
    want = before + 1;
    assert_int_equal(wait_for(refused_reaches, &want, 5000), 0);
    assert_int_equal(request(expired, port_a, "GET", "/healthz", NULL, NULL, body, sizeof(body)), -1);
    want = before + 2;
    assert_int_equal(wait_for(refused_reaches, &want, 5000), 0);
    SSL_CTX_free(mallory);
    SSL_CTX_free(expired);
}

static void plain_http_is_refused_and_the_node_stays_up(void **state)
{
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    long before = metric(port_a, "meridian_tls_refused_total"), want;
    char buf[4096];
    size_t have = 0;
    ssize_t n;
    int fd = tcp_connect(port_a);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    /* The node closes: whatever it sent (an alert at most) is not HTTP. */
    while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
        have += (size_t)n;
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    buf[have] = '\0';
    assert_null(strstr(buf, "HTTP/1"));
    close(fd);
    want = before + 1;
    assert_int_equal(wait_for(refused_reaches, &want, 5000), 0);
    assert_int_equal(request(ops, port_a, "GET", "/healthz", NULL, NULL, buf, sizeof(buf)), 200);
}

struct item_wait {
    int port;
    const char *key;
};

static int item_there(void *arg)
{
    struct item_wait *w = arg;
    char path[128], body[4096];

    snprintf(path, sizeof(path), "/v1/tables/carts/items/%s", w->key);
    return request(ops, w->port, "GET", path, NULL, NULL, body, sizeof(body)) == 200 &&
           strstr(body, "\"sku\":\"tls\"") != NULL;
}

static void nodes_replicate_a_global_table_over_tls(void **state)
{
    char body[4096];
    struct item_wait to_b = {0, "from-a"}, to_a = {0, "from-b"};

    (void)state;
    to_b.port = port_b;
    to_a.port = port_a;
    /* Both nodes require tokens and send none to each other: their
     * certificates are their only credential on the streams. */
    assert_int_equal(request(ops, port_a, "PUT", "/v1/tables/carts/items/from-a",
                             "Content-Type: application/json\r\n", "{\"sku\":\"tls\"}", body,
                             sizeof(body)), 200);
    assert_int_equal(request(ops, port_b, "PUT", "/v1/tables/carts/items/from-b",
                             "Content-Type: application/json\r\n", "{\"sku\":\"tls\"}", body,
                             sizeof(body)), 200);
    assert_int_equal(wait_for(item_there, &to_b, 15000), 0);
    assert_int_equal(wait_for(item_there, &to_a, 15000), 0);
}

/* The dashboard of us-east-1 polls eu-west-1's /v1/status over https. */
static int dashboard_sees_peer(void *arg)
{
    static char body[65536];
    json_t *doc, *r;
    size_t i;
    int up = 0;

    (void)arg;
    if (request(ops, port_a, "GET", "/v1/dashboard", NULL, NULL, body, sizeof(body)) != 200)
        return 0;
    doc = json_loads(body, 0, NULL);
    json_array_foreach(json_object_get(doc, "regions"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "name")), "eu-west-1") == 0)
            up = json_is_true(json_object_get(r, "reachable")) &&
                 strncmp(json_string_value(json_object_get(r, "url")), "https://", 8) == 0;
    }
    json_decref(doc);
    return up;
}

static void dashboard_polls_peers_over_tls(void **state)
{
    (void)state;
    assert_int_equal(wait_for(dashboard_sees_peer, NULL, 10000), 0);
}

struct serial_wait {
    char old[128];
};

static int serial_changed(void *arg)
{
    struct serial_wait *w = arg;
    struct tconn c;
    int changed = 0;

    if (tconn_open(ops, port_a, &c) == 0)
        changed = strcmp(tconn_serial(&c), w->old) != 0;
    tconn_close(&c);
    return changed;
}

static int reload_counted(void *arg)
{
    return metric(port_a, (const char *)arg) >= 1;
}

static void sighup_rotates_the_certificate_without_dropping_connections(void **state)
{
    struct tconn keep, fresh;
    struct serial_wait w;
    char body[4096], err[MR_ERRMSG_LEN], cmd[600], crt[256], saved[300];

    (void)state;
    assert_int_equal(tconn_open(ops, port_a, &keep), 0);
    snprintf(w.old, sizeof(w.old), "%s", tconn_serial(&keep));
    assert_int_equal(tconn_request(&keep, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);

    /* A new certificate over the old files, then SIGHUP. */
    assert_int_equal(tls_cert_issue(path_of("ca"), "us-east-1", "127.0.0.1,localhost", -60, 86400,
                                    path_of("us-east-1"), err), 0);
    assert_int_equal(kill(pid_a, SIGHUP), 0);
    assert_int_equal(wait_for(serial_changed, &w, 10000), 0);
    assert_int_equal(wait_for(reload_counted, "meridian_tls_reloads_total{result=\"ok\"}", 5000), 0);
    /* The connection opened before still works, with the old certificate. */
    assert_int_equal(tconn_request(&keep, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);
    assert_string_equal(tconn_serial(&keep), w.old);

    /* A bad file: the reload fails, is logged naming it, and the
     * certificate loaded before stays in use. */
    assert_int_equal(tconn_open(ops, port_a, &fresh), 0);
    snprintf(w.old, sizeof(w.old), "%s", tconn_serial(&fresh));
    tconn_close(&fresh);
    snprintf(crt, sizeof(crt), "%s", path_of("us-east-1/us-east-1.crt"));
    snprintf(saved, sizeof(saved), "%s.good", crt);
    assert_int_equal(rename(crt, saved), 0);
    {
        FILE *f = fopen(crt, "w");
        assert_non_null(f);
        fputs("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n", f);
        fclose(f);
    }
    assert_int_equal(kill(pid_a, SIGHUP), 0);
    assert_int_equal(wait_for(reload_counted, "meridian_tls_reloads_total{result=\"failed\"}", 5000), 0);
    assert_int_equal(tconn_open(ops, port_a, &fresh), 0);
    assert_string_equal(tconn_serial(&fresh), w.old);
    assert_int_equal(tconn_request(&fresh, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);
    tconn_close(&fresh);
    snprintf(cmd, sizeof(cmd), "grep -q 'reload failed.*%s' %s/us-east-1.log", crt, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rename(saved, crt), 0);
    assert_int_equal(tconn_request(&keep, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);
    tconn_close(&keep);
}

#define ROTATED "mrt_node-tls-test-rotated-token"

struct token_wait {
    const char *token;
    int status;
};

/* GET /v1/digest (read) without a certificate, with the token: the status wanted. */
static int digest_answers(void *arg)
{
    const struct token_wait *w = arg;
    SSL_CTX *anon = ssl_ctx(NULL, NULL);
    char hdr[128], body[4096];
    int st;

    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", w->token);
    st = request(anon, port_a, "GET", "/v1/digest", hdr, NULL, body, sizeof(body));
    SSL_CTX_free(anon);
    return st == w->status;
}

struct metric_wait {
    const char *name;
    long above;
};

static int metric_above(void *arg)
{
    const struct metric_wait *w = arg;
    return metric(port_a, w->name) > w->above;
}

/* Token rotation without a restart (docs/security.md, "Rotating a token"):
 * a token added to node.ini works after SIGHUP, and stops working once
 * removed and SIGHUPed again; a broken [auth] line keeps the tokens loaded
 * before, the node stays up, and the log names the file and line. */
static void sighup_reloads_the_tokens_and_a_broken_line_keeps_the_old_ones(void **state)
{
    struct token_wait w;
    struct metric_wait ok = {"meridian_auth_reloads_total{result=\"ok\"}", 0};
    struct metric_wait failed = {"meridian_auth_reloads_total{result=\"failed\"}", 0};
    char line[160], hash[65], cmd[600], body[4096];

    (void)state;
    w = (struct token_wait){ROTATED, 401};
    assert_true(digest_answers(&w));
    ok.above = metric(port_a, ok.name);
    assert_true(ok.above >= 0);
    mr_auth_hash_hex(ROTATED, hash);
    snprintf(line, sizeof(line), "token = rotated read %s\n", hash);
    auth_extra = line;
    write_config("us-east-1", port_a, "eu-west-1", port_b);
    assert_int_equal(kill(pid_a, SIGHUP), 0);
    w = (struct token_wait){ROTATED, 200};
    assert_int_equal(wait_for(digest_answers, &w, 10000), 0);
    assert_int_equal(wait_for(metric_above, &ok, 5000), 0);
    w = (struct token_wait){TOKEN, 200};   /* the old one too, meanwhile */
    assert_true(digest_answers(&w));

    /* Removed again. */
    auth_extra = "";
    write_config("us-east-1", port_a, "eu-west-1", port_b);
    assert_int_equal(kill(pid_a, SIGHUP), 0);
    w = (struct token_wait){ROTATED, 401};
    assert_int_equal(wait_for(digest_answers, &w, 10000), 0);

    /* A broken line (a hash too short): the old table stays. */
    failed.above = metric(port_a, failed.name);
    assert_true(failed.above >= 0);
    snprintf(line, sizeof(line), "token = rotated read 0123\n");
    auth_extra = line;
    write_config("us-east-1", port_a, "eu-west-1", port_b);
    assert_int_equal(kill(pid_a, SIGHUP), 0);
    assert_int_equal(wait_for(metric_above, &failed, 10000), 0);
    w = (struct token_wait){TOKEN, 200};
    assert_true(digest_answers(&w));
    w = (struct token_wait){ROTATED, 401};
    assert_true(digest_answers(&w));
    assert_int_equal(request(ops, port_a, "GET", "/healthz", NULL, NULL, body, sizeof(body)), 200);
    snprintf(cmd, sizeof(cmd), "grep -q 'reload failed, the tokens loaded before stay in use: %s/us-east-1.ini:[0-9]*: token' %s/us-east-1.log",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    auth_extra = "";
    write_config("us-east-1", port_a, "eu-west-1", port_b);
}

/* `meridian node --check-config` on <ini>; its exit status, and its
 * output in <out>. */
static int check_config(const char *ini, char *out, size_t cap)
{
    char cmd[512], file[256];
    FILE *p, *f;
    size_t n;
    int status;

    snprintf(file, sizeof(file), "%s/check.ini", dir);
    f = fopen(file, "w");
    assert_non_null(f);
    fputs(ini, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s node --check-config --config %s 2>&1", cluster_bin(), file);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void config_errors_name_what_is_wrong(void **state)
{
    char ini[1024], out[2048];
    const char *node = "[node]\nregion = r\ndata_dir = /tmp/x\n";

    (void)state;
    snprintf(ini, sizeof(ini), "%setcd = https://127.0.0.1:1\n", node);
    assert_int_equal(check_config(ini, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "https:// endpoints need [tls]"));

    snprintf(ini, sizeof(ini), "%setcd = http://127.0.0.1:1\n[tables]\npeers = a=https://127.0.0.1:2\n", node);
    assert_int_equal(check_config(ini, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "https:// needs [tls]"));

    snprintf(ini, sizeof(ini), "%setcd = http://127.0.0.1:1\n[tls]\nca_file = %s\ncert_file = %s\n", node,
             path_of("ca/ca.crt"), path_of("certs/ops.crt"));
    assert_int_equal(check_config(ini, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "key 'key_file' in [tls] is missing"));

    snprintf(ini, sizeof(ini), "%setcd = https://127.0.0.1:1\n[tls]\nca_file = %s\ncert_file = %s\n"
             "key_file = %s/nowhere.key\n", node, path_of("ca/ca.crt"), path_of("certs/ops.crt"), dir);
    assert_int_equal(check_config(ini, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "nowhere.key"));

    snprintf(ini, sizeof(ini), "%setcd = https://127.0.0.1:1\n[tables]\npeers = a=http://127.0.0.1:2\n"
             "[tls]\nca_file = %s\ncert_file = %s\nkey_file = %s\n", node, path_of("ca/ca.crt"),
             path_of("certs/ops.crt"), path_of("certs/ops.key"));
    assert_int_equal(check_config(ini, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "must start with https://"));

    snprintf(ini, sizeof(ini), "%setcd = https://127.0.0.1:1\n[tls]\nca_file = %s\ncert_file = %s\n"
             "key_file = %s\n", node, path_of("ca/ca.crt"), path_of("certs/ops.crt"),
             path_of("certs/ops.key"));
    assert_int_equal(check_config(ini, out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cluster_certificate_needs_no_token),
        cmocka_unit_test(no_certificate_no_token_gets_401),
        cmocka_unit_test(foreign_and_expired_certificates_are_refused),
        cmocka_unit_test(plain_http_is_refused_and_the_node_stays_up),
        cmocka_unit_test(nodes_replicate_a_global_table_over_tls),
        cmocka_unit_test(dashboard_polls_peers_over_tls),
        cmocka_unit_test(sighup_rotates_the_certificate_without_dropping_connections),
        cmocka_unit_test(sighup_reloads_the_tokens_and_a_broken_line_keeps_the_old_ones),
        cmocka_unit_test(config_errors_name_what_is_wrong),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
