/* Unit tests of src/tls (context, engine, certificates), mostly through the
 * HTTP server and client (src/http/io.c): real sockets on 127.0.0.1, port 0;
 * the engine is also driven alone (two tls_conn pumping bytes).
 * Certificates are issued with tls_cert_* into a mkdtemp directory that is
 * removed at the end.
 *
 * Certificates made once for the whole file (group setup):
 *   ca/          the cluster CA
 *   ca2/         another CA (another cluster)
 *   certs/       srv (127.0.0.1, localhost), alice, old (expired)  -- from ca
 *   other/       mallory                                           -- from ca2
 *   live/        srv: the server certificate the reload test rotates
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit/http/http_test.h"

#include "common/log.h"
#include "tls/tls.h"

static char g_dir[64];

static char *path_of(const char *rel)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];

    snprintf(b, 256, "%s/%s", g_dir, rel);
    return b;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int group_setup(void **state)
{
    char err[MR_ERRMSG_LEN];

    (void)state;
    mr_log_setup(NULL, "test", getenv("MR_TEST_LOG") ? MR_LOG_DEBUG : MR_LOG_ERROR);
    snprintf(g_dir, sizeof(g_dir), "/tmp/mr-tls-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
#define OK(call)                                                   \
    do {                                                           \
        if ((call) != 0) {                                         \
            fprintf(stderr, "setup: %s: %s\n", #call, err);        \
            return -1;                                             \
        }                                                          \
    } while (0)
    OK(tls_cert_make_ca(path_of("ca"), "cluster-a", 30, err));
    OK(tls_cert_make_ca(path_of("ca2"), "cluster-b", 30, err));
    OK(tls_cert_issue(path_of("ca"), "srv", "127.0.0.1, localhost", -60, 86400,
                      path_of("certs"), err));
    OK(tls_cert_issue(path_of("ca"), "alice", NULL, -60, 86400, path_of("certs"), err));
    OK(tls_cert_issue(path_of("ca"), "old", NULL, -2 * 86400, -86400, path_of("certs"), err));
    OK(tls_cert_issue(path_of("ca2"), "mallory", NULL, -60, 86400, path_of("other"), err));
#undef OK
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- fixture: a TLS server on the loop ---------------------------------- */

struct fx {
    uv_loop_t loop;
    struct tls_ctx *srv_tls;
    struct http_server *srv;
    int port;
    int n_requests;
};

static void handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct fx *f = data;
    const char *cn = http_exchange_peer_cn(ex);
    char body[128];
    int n;

    f->n_requests++;
    if (strcmp(req->path, "/big") == 0) {
        /* The request body back, four times: several MB of ciphertext, most
         * of it queued behind a full socket. */
        struct mr_buf b;

        mr_buf_init(&b);
        for (int i = 0; i < 4; i++)
            mr_buf_append(&b, req->body, req->body_len);
        http_respond(ex, 200, "application/octet-stream", b.data, b.len, NULL);
        mr_buf_close(&b);
        return;
    }
    n = snprintf(body, sizeof(body), "cn=%s", cn ? cn : "(none)");
    http_respond(ex, 200, "text/plain", body, (size_t)n, NULL);
}

static struct tls_ctx *ctx(int is_server, const char *ca, const char *crt, const char *key,
                           int require)
{
    struct tls_opts o = {0};
    struct tls_ctx *t = NULL;
    char err[MR_ERRMSG_LEN];

    o.ca_file = ca;
    o.cert_file = crt;
    o.key_file = key;
    o.require_peer_cert = require;
    if (tls_ctx_new(&o, is_server, &t, err) != 0)
        fail_msg("tls_ctx_new: %s", err);
    return t;
}

/* Serve on 127.0.0.1 with <t> (owned by the fixture from now on). */
static int fx_start_ctx(void **state, struct tls_ctx *t)
{
    struct fx *f = mr_calloc(1, sizeof(*f));
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&f->loop);
    f->srv_tls = t;
    http_server_opts_default(&o);
    o.tls = f->srv_tls;
    o.max_body_bytes = 2 * 1000 * 1000;
    if (http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv, err) != 0) {
        fprintf(stderr, "server: %s\n", err);
        return -1;
    }
    f->port = http_server_port(f->srv);
    *state = f;
    return 0;
}

/* A cluster server: mutual TLS, clients must present a certificate. */
static int fx_start(void **state, const char *crt, const char *key)
{
    return fx_start_ctx(state, ctx(1, path_of("ca/ca.crt"), crt, key, 1));
}

/* A public endpoint (the edge's): asks no client for a certificate. */
static int fx_setup_public(void **state)
{
    struct tls_opts o = {0};
    struct tls_ctx *t;
    char err[MR_ERRMSG_LEN];

    o.cert_file = path_of("certs/srv.crt");
    o.key_file = path_of("certs/srv.key");
    o.anonymous_clients = 1;
    if (tls_ctx_new(&o, 1, &t, err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return fx_start_ctx(state, t);
}

static int fx_setup(void **state)
{
    return fx_start(state, path_of("certs/srv.crt"), path_of("certs/srv.key"));
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    http_server_close(f->srv);
    loop_finish(&f->loop);
    tls_ctx_free(f->srv_tls);
    mr_free(f);
    return 0;
}

/* ---- one call ----------------------------------------------------------- */

struct res {
    int done;
    int rc;
    int status;
    char body[256];
};

static void res_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct res *r = data;

    (void)call;
    r->done = 1;
    r->rc = rc;
    if (rc == 0) {
        r->status = resp->status;
        snprintf(r->body, sizeof(r->body), "%.*s", (int)resp->body_len, resp->body);
    }
}

static struct res call(struct fx *f, struct http_client *c, const char *host)
{
    struct http_client_request req = {0};
    struct res r = {0};

    req.method = "GET";
    req.host = host;
    req.port = f->port;
    req.path = "/who";
    req.timeout_ms = GUARD_MS;
    assert_int_equal(http_client_request(c, &req, res_cb, &r, NULL), 0);
    assert_true(run_until(&f->loop, &r.done));
    return r;
}

static struct http_client *client(struct fx *f, struct tls_ctx *t)
{
    struct http_client_opts o;
    struct http_client *c;

    http_client_opts_default(&o);
    o.tls = t;
    assert_int_equal(http_client_new(&f->loop, &o, &c), 0);
    return c;
}

static void client_done(struct fx *f, struct http_client *c, struct tls_ctx *t)
{
    http_client_free(c);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    tls_ctx_free(t);
}

/* ---- tests -------------------------------------------------------------- */

struct big {
    int done, rc, ok;
};

/* Checks /big's answer: the 1 MB pattern four times. */
static void big_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct big *r = data;
    size_t n = 1000 * 1000;

    (void)call;
    r->done = 1;
    r->rc = rc;
    if (rc != 0 || resp->status != 200 || resp->body_len != 4 * n)
        return;
    r->ok = 1;
    for (size_t i = 0; i < 4 * n && r->ok; i++)
        if (resp->body[i] != (char)((i % n) * 7 + (i % n) / 1000))
            r->ok = 0;
}

static void mtls_round_trip_names_the_client(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                            path_of("certs/alice.key"), 0);
    struct http_client *c = client(f, t);
    struct http_server_stats st;
    struct res r;

    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "cn=alice");
    /* Keep-alive: the second call rides the same TLS connection. */
    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "cn=alice");
    /* By name: the certificate's DNS SAN. */
    r = call(f, c, "localhost");
    assert_int_equal(r.rc, 0);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.tls_refused, 0);
    assert_int_equal(tls_ctx_refused(f->srv_tls), 0);
    client_done(f, c, t);
}

static void big_bodies_cross_both_ways(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                            path_of("certs/alice.key"), 0);
    struct http_client *c = client(f, t);
    struct http_client_request req = {0};
    size_t n = 1000 * 1000;
    char *body = mr_malloc(n);
    struct big r = {0};

    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 7 + i / 1000);
    req.method = "POST";
    req.host = "127.0.0.1";
    req.port = f->port;
    req.path = "/big";
    req.body = body;
    req.body_len = n;
    req.timeout_ms = GUARD_MS;
    assert_int_equal(http_client_request(c, &req, big_cb, &r, NULL), 0);
    assert_true(run_until(&f->loop, &r.done));
    assert_int_equal(r.rc, 0);
    assert_true(r.ok);
    mr_free(body);
    client_done(f, c, t);
}

/* A client presenting <crt> is refused by the server, and counted. */
static void expect_server_refuses(struct fx *f, const char *crt, const char *key)
{
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), crt, key, 0);
    struct http_client *c = client(f, t);
    uint64_t before = tls_ctx_refused(f->srv_tls);
    struct http_server_stats st;
    struct res r;

    r = call(f, c, "127.0.0.1");
    assert_int_not_equal(r.rc, 0);
    assert_int_equal(f->n_requests, 0);
    assert_int_equal(tls_ctx_refused(f->srv_tls), before + 1);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.tls_refused, 1);
    assert_int_equal(st.connections_open, 0);
    client_done(f, c, t);
}

static void client_without_certificate_is_refused(void **state)
{
    expect_server_refuses(*state, NULL, NULL);
}

static void certificate_from_another_ca_is_refused(void **state)
{
    expect_server_refuses(*state, path_of("other/mallory.crt"), path_of("other/mallory.key"));
}

static void expired_certificate_is_refused(void **state)
{
    expect_server_refuses(*state, path_of("certs/old.crt"), path_of("certs/old.key"));
}

static void client_refuses_server_of_another_cluster(void **state)
{
    struct fx *f = *state;
    /* Trusts only ca2; the server's certificate is from ca. */
    struct tls_ctx *t = ctx(0, path_of("ca2/ca.crt"), path_of("other/mallory.crt"),
                            path_of("other/mallory.key"), 0);
    struct http_client *c = client(f, t);
    struct res r;

    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, MR_ECONN);
    assert_int_equal(tls_ctx_refused(t), 1);
    assert_int_equal(f->n_requests, 0);
    client_done(f, c, t);
}

/* The server presents alice's certificate: from the right CA, but without
 * 127.0.0.1 among its names. */
static int fx_setup_misnamed(void **state)
{
    return fx_start(state, path_of("certs/alice.crt"), path_of("certs/alice.key"));
}

static void client_checks_the_server_name(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                            path_of("certs/alice.key"), 0);
    struct http_client *c = client(f, t);
    struct res r;

    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, MR_ECONN);
    assert_int_equal(tls_ctx_refused(t), 1);
    assert_int_equal(f->n_requests, 0);
    client_done(f, c, t);
}

static void public_server_takes_anonymous_clients(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *anon = ctx(0, path_of("ca/ca.crt"), NULL, NULL, 0);
    struct tls_ctx *named = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                                path_of("certs/alice.key"), 0);
    struct http_client *c1 = client(f, anon), *c2 = client(f, named);
    struct res r;

    r = call(f, c1, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "cn=(none)");
    /* Not asked, so not sent: no name either. */
    r = call(f, c2, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "cn=(none)");
    assert_int_equal(tls_ctx_refused(f->srv_tls), 0);
    client_done(f, c1, anon);
    client_done(f, c2, named);
}

static int count_conns(struct fx *f)
{
    struct http_server_stats st;

    http_server_stats(f->srv, &st);
    return (int)st.connections_accepted;
}

static int fx_setup_live(void **state)
{
    char err[MR_ERRMSG_LEN];

    if (tls_cert_issue(path_of("ca"), "srv", "127.0.0.1", -60, 86400, path_of("live"), err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return fx_start(state, path_of("live/srv.crt"), path_of("live/srv.key"));
}

static void reload_serves_new_certificate_and_keeps_live_connections(void **state)
{
    struct fx *f = *state;
    /* Trusts the cluster CA (old server certificate) / only ca2 (new one). */
    struct tls_ctx *t1 = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                             path_of("certs/alice.key"), 0);
    struct tls_ctx *t2 = ctx(0, path_of("ca2/ca.crt"), path_of("certs/alice.crt"),
                             path_of("certs/alice.key"), 0);
    struct http_client *c1 = client(f, t1), *c2 = client(f, t2);
    char err[MR_ERRMSG_LEN];
    struct res r;

    r = call(f, c1, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_int_equal(count_conns(f), 1);
    r = call(f, c2, "127.0.0.1");
    assert_int_equal(r.rc, MR_ECONN);

    /* Rotate: a certificate from ca2 in place of the old one. */
    assert_int_equal(tls_cert_issue(path_of("ca2"), "srv", "127.0.0.1", -60, 86400,
                                    path_of("live"), err), 0);
    assert_int_equal(tls_ctx_reload(f->srv_tls, err), 0);

    r = call(f, c2, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "cn=alice");
    /* The live connection of c1 still works, on its old session... */
    r = call(f, c1, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_int_equal(count_conns(f), 3);
    client_done(f, c1, t1);

    /* ...while a new connection of a client trusting only ca fails. */
    t1 = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"), path_of("certs/alice.key"), 0);
    c1 = client(f, t1);
    r = call(f, c1, "127.0.0.1");
    assert_int_equal(r.rc, MR_ECONN);
    client_done(f, c1, t1);
    client_done(f, c2, t2);
}

static void reload_failure_keeps_the_old_files(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                            path_of("certs/alice.key"), 0);
    struct http_client *c = client(f, t);
    char err[MR_ERRMSG_LEN];
    FILE *fp;
    struct res r;

    /* A key that does not match the certificate (another key over it). */
    fp = fopen(path_of("live/srv.key"), "w");
    assert_non_null(fp);
    fputs("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n", fp);
    fclose(fp);
    assert_int_not_equal(tls_ctx_reload(f->srv_tls, err), 0);
    assert_non_null(strstr(err, "key_file"));
    assert_non_null(strstr(err, "live/srv.key"));
    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "cn=alice");
    client_done(f, c, t);
}

/* A server and a client context reloaded together (a node's listener and
 * its calls out): when one cannot be rebuilt, neither changes. */
static void reload_all_changes_nothing_when_one_fails(void **state)
{
    struct fx *f = *state;
    struct tls_ctx *ca1 = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"), path_of("certs/alice.key"), 0);
    struct tls_ctx *ca2 = ctx(0, path_of("ca2/ca.crt"), path_of("certs/alice.crt"), path_of("certs/alice.key"), 0);
    struct tls_ctx *out, *both[2];
    char err[MR_ERRMSG_LEN];
    FILE *fp;
    struct res r;

    assert_int_equal(tls_cert_issue(path_of("ca"), "bob", NULL, -60, 86400, path_of("live-out"), err), 0);
    out = ctx(0, path_of("ca/ca.crt"), path_of("live-out/bob.crt"), path_of("live-out/bob.key"), 0);
    both[0] = f->srv_tls;
    both[1] = out;
    /* The server's files move to ca2, the client's key breaks. */
    assert_int_equal(tls_cert_issue(path_of("ca2"), "srv", "127.0.0.1", -60, 86400, path_of("live"), err), 0);
    fp = fopen(path_of("live-out/bob.key"), "w");
    assert_non_null(fp);
    fputs("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n", fp);
    fclose(fp);
    assert_int_not_equal(tls_ctx_reload_all(both, 2, err), 0);
    assert_non_null(strstr(err, "live-out/bob.key"));
    {
        struct http_client *c1 = client(f, ca1), *c2 = client(f, ca2);
        r = call(f, c1, "127.0.0.1");
        assert_int_equal(r.rc, 0);    /* still the old server certificate */
        r = call(f, c2, "127.0.0.1");
        assert_int_equal(r.rc, MR_ECONN);
        client_done(f, c1, ca1);
        client_done(f, c2, NULL);
    }
    /* Mended: both move. */
    assert_int_equal(tls_cert_issue(path_of("ca"), "bob", NULL, -60, 86400, path_of("live-out"), err), 0);
    assert_int_equal(tls_ctx_reload_all(both, 2, err), 0);
    {
        struct http_client *c2 = client(f, ca2);
        r = call(f, c2, "127.0.0.1");
        assert_int_equal(r.rc, 0);
        client_done(f, c2, ca2);
    }
    tls_ctx_free(out);
}

static void plain_client_on_tls_port_fails_cleanly(void **state)
{
    struct fx *f = *state;
    struct http_client *c = client(f, NULL);
    struct tls_ctx *t;
    struct res r;

    r = call(f, c, "127.0.0.1");
    assert_int_not_equal(r.rc, 0);
    assert_int_equal(f->n_requests, 0);
    assert_int_equal(tls_ctx_refused(f->srv_tls), 1);
    client_done(f, c, NULL);
    /* The server is fine. */
    t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"), path_of("certs/alice.key"), 0);
    c = client(f, t);
    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, 0);
    client_done(f, c, t);
}

/* A listener that accepts and closes at once: what the wan's route to a
 * killed region does. */
static void closer_free_cb(uv_handle_t *h)
{
    mr_free(h);
}

static void closer_on_conn(uv_stream_t *srv, int status)
{
    uv_tcp_t *c = mr_malloc(sizeof(*c));

    uv_tcp_init(srv->loop, c);
    if (status == 0)
        (void)uv_accept(srv, (uv_stream_t *)c);
    uv_close((uv_handle_t *)c, closer_free_cb);
}

static void connection_lost_during_handshake_is_never_sent(void **state)
{
    struct fx *f = *state;
    struct sockaddr_in sa;
    int len = sizeof(sa), saved = f->port;
    uv_tcp_t srv;
    struct tls_ctx *t;
    struct http_client *c;
    struct res r;

    uv_tcp_init(&f->loop, &srv);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&srv, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv, 8, closer_on_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&srv, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"), path_of("certs/alice.key"), 0);
    c = client(f, t);
    /* The request was held in the engine: "never left", so a caller may
     * send even a POST elsewhere (the edge does). */
    r = call(f, c, "127.0.0.1");
    assert_int_equal(r.rc, MR_ECONN);
    f->port = saved;
    client_done(f, c, t);
    uv_close((uv_handle_t *)&srv, NULL);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void garbage_on_tls_port_is_closed(void **state)
{
    struct fx *f = *state;
    static const char hello_ish[] = "\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff";
    struct raw r1 = {0}, r2 = {0};
    struct http_server_stats st;

    raw_connect(&f->loop, &r1, f->port);
    raw_send_n(&r1, "\x00\x01garbage\r\n\r\n\xff\xfe", 14);
    assert_true(raw_wait_eof(&f->loop, &r1));
    raw_connect(&f->loop, &r2, f->port);
    raw_send_n(&r2, hello_ish, sizeof(hello_ish) - 1);
    assert_true(raw_wait_eof(&f->loop, &r2));
    raw_close(&f->loop, &r1);
    raw_close(&f->loop, &r2);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.tls_refused, 2);
    assert_int_equal(st.connections_open, 0);
    assert_int_equal(tls_ctx_refused(f->srv_tls), 2);
}

/* ---- the engine alone: two tls_conn pumping bytes to each other --------- */

/* Move ciphertext both ways and read on both sides (which drives the
 * handshake), until nothing moves; plaintext read lands in <ina>/<inb>. */
static void pump(struct tls_conn *a, struct tls_conn *b, struct mr_buf *ina, struct mr_buf *inb)
{
    char buf[32 * 1024];
    int moved;

    do {
        size_t n;
        ssize_t r;

        moved = 0;
        while ((n = tls_conn_take(a, buf, sizeof(buf))) > 0) {
            assert_int_equal(tls_conn_feed(b, buf, n), 0);
            moved = 1;
        }
        while ((n = tls_conn_take(b, buf, sizeof(buf))) > 0) {
            assert_int_equal(tls_conn_feed(a, buf, n), 0);
            moved = 1;
        }
        while ((r = tls_conn_read(a, buf, sizeof(buf))) > 0)
            mr_buf_append(ina, buf, (size_t)r);
        while ((r = tls_conn_read(b, buf, sizeof(buf))) > 0)
            mr_buf_append(inb, buf, (size_t)r);
        moved |= tls_conn_pending(a) > 0 || tls_conn_pending(b) > 0;
    } while (moved);
}

static void engine_without_sockets(void **state)
{
    struct tls_ctx *ts = ctx(1, path_of("ca/ca.crt"), path_of("certs/srv.crt"),
                             path_of("certs/srv.key"), 1);
    struct tls_ctx *tc = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                             path_of("certs/alice.key"), 0);
    struct tls_conn *s, *c;
    struct mr_buf inc, ins;
    char err[MR_ERRMSG_LEN], buf[64];

    (void)state;
    mr_buf_init(&inc);
    mr_buf_init(&ins);
    assert_int_equal(tls_conn_new(ts, "client", NULL, NULL, &s, err), 0);
    assert_int_equal(tls_conn_new(tc, "server", "localhost", "h2", &c, err), 0);
    /* Written before the handshake: held, then sent. */
    assert_int_equal(tls_conn_write(c, "ping", 4), 0);
    assert_true(tls_conn_pending(c) > 0);   /* the ClientHello */
    pump(c, s, &inc, &ins);
    assert_true(tls_conn_handshake_done(c));
    assert_true(tls_conn_handshake_done(s));
    assert_string_equal(tls_conn_peer_cn(c), "srv");
    assert_string_equal(tls_conn_peer_cn(s), "alice");
    assert_null(tls_conn_alpn(c));   /* our servers select no protocol */
    assert_int_equal(ins.len, 4);
    assert_memory_equal(ins.data, "ping", 4);
    assert_int_equal(tls_conn_write(s, "pong", 4), 0);
    pump(s, c, &ins, &inc);
    assert_int_equal(inc.len, 4);
    assert_memory_equal(inc.data, "pong", 4);
    assert_int_equal(tls_conn_read(c, buf, sizeof(buf)), TLS_AGAIN);
    tls_conn_close_notify(s);
    pump(s, c, &ins, &inc);
    assert_int_equal(tls_conn_read(c, buf, sizeof(buf)), TLS_EOF);
    assert_string_equal(tls_conn_error(c), "");
    mr_buf_close(&inc);
    mr_buf_close(&ins);
    tls_conn_free(c);
    tls_conn_free(s);
    /* Connections may outlive their context: here the context goes last. */
    tls_ctx_free(ts);
    tls_ctx_free(tc);
}

/* ---- certificates and contexts ------------------------------------------ */

static void cert_files_and_errors(void **state)
{
    char err[MR_ERRMSG_LEN];
    struct stat st;
    struct tls_ctx *t;
    struct tls_opts o = {0};

    (void)state;
    assert_int_equal(stat(path_of("certs/alice.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path_of("ca/ca.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tls_cert_make_ca(path_of("ca"), NULL, 30, err), MR_EEXIST);
    assert_int_equal(tls_cert_issue(path_of("ca"), "a/b", NULL, 0, 60, path_of("x"), err),
                     MR_EINVAL);
    assert_int_equal(tls_cert_issue(path_of("ca"), "n", "a b", 0, 60, path_of("x"), err),
                     MR_EINVAL);
    assert_int_equal(tls_cert_issue(path_of("ca"), "n", NULL, 60, 0, path_of("x"), err),
                     MR_EINVAL);
    assert_int_equal(tls_cert_issue(path_of("nope"), "n", NULL, 0, 60, path_of("x"), err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "nope/ca.crt"));

    o.ca_file = path_of("ca/missing.crt");
    o.cert_file = path_of("certs/srv.crt");
    o.key_file = path_of("certs/srv.key");
    assert_int_equal(tls_ctx_new(&o, 1, &t, err), MR_ECONFIG);
    assert_non_null(strstr(err, "ca_file"));
    o.ca_file = path_of("ca/ca.crt");
    o.key_file = path_of("certs/alice.key");
    assert_int_equal(tls_ctx_new(&o, 1, &t, err), MR_ECONFIG);
    assert_non_null(strstr(err, "alice.key"));
    o.cert_file = NULL;
    o.key_file = NULL;
    assert_int_equal(tls_ctx_new(&o, 1, &t, err), MR_EINVAL);
}

/* ---- http_fetch with https:// (the server on a thread: fetch blocks) ---- */

struct bg {
    uv_thread_t th;
    uv_loop_t loop;
    uv_async_t stop;
    uv_sem_t ready;
    struct http_server *srv;
    struct tls_ctx *tls;
    int port;
};

static void bg_handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    const char *cn = http_exchange_peer_cn(ex);

    (void)req;
    (void)data;
    http_respond(ex, 200, "text/plain", cn ? cn : "-", cn ? strlen(cn) : 1, NULL);
}

static void bg_stop_cb(uv_async_t *a)
{
    struct bg *b = a->data;

    http_server_close(b->srv);
    uv_close((uv_handle_t *)a, NULL);
}

static void bg_main(void *arg)
{
    struct bg *b = arg;
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&b->loop);
    uv_async_init(&b->loop, &b->stop, bg_stop_cb);
    b->stop.data = b;
    http_server_opts_default(&o);
    o.tls = b->tls;
    if (http_server_start(&b->loop, "127.0.0.1", 0, &o, bg_handler, b, &b->srv, err) != 0)
        abort();
    b->port = http_server_port(b->srv);
    uv_sem_post(&b->ready);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
}

static void fetch_speaks_https_with_a_client_certificate(void **state)
{
    struct bg b;
    struct http_result res;
    struct tls_ctx *t = ctx(0, path_of("ca/ca.crt"), path_of("certs/alice.crt"),
                            path_of("certs/alice.key"), 0);
    char err[MR_ERRMSG_LEN];
    char url[128];

    (void)state;
    memset(&b, 0, sizeof(b));
    b.tls = ctx(1, path_of("ca/ca.crt"), path_of("certs/srv.crt"), path_of("certs/srv.key"), 1);
    uv_sem_init(&b.ready, 0);
    assert_int_equal(uv_thread_create(&b.th, bg_main, &b), 0);
    uv_sem_wait(&b.ready);

    snprintf(url, sizeof(url), "https://localhost:%d/x", b.port);
    http_fetch_set_tls(t);
    assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, GUARD_MS, &res, err), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body.data, "alice");
    http_result_close(&res);
    /* The same server refuses plain http. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", b.port);
    assert_int_not_equal(http_fetch("GET", url, NULL, NULL, 0, GUARD_MS, &res, err), 0);
    http_fetch_set_tls(NULL);

    uv_async_send(&b.stop);
    uv_thread_join(&b.th);
    uv_sem_destroy(&b.ready);
    tls_ctx_free(b.tls);
    tls_ctx_free(t);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(mtls_round_trip_names_the_client),
        T(big_bodies_cross_both_ways),
        T(client_without_certificate_is_refused),
        T(certificate_from_another_ca_is_refused),
        T(expired_certificate_is_refused),
        T(client_refuses_server_of_another_cluster),
        cmocka_unit_test_setup_teardown(client_checks_the_server_name, fx_setup_misnamed,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(reload_serves_new_certificate_and_keeps_live_connections,
                                        fx_setup_live, fx_teardown),
        cmocka_unit_test_setup_teardown(reload_failure_keeps_the_old_files, fx_setup_live,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(reload_all_changes_nothing_when_one_fails, fx_setup_live,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(public_server_takes_anonymous_clients, fx_setup_public,
                                        fx_teardown),
        T(plain_client_on_tls_port_fails_cleanly),
        T(garbage_on_tls_port_is_closed),
        T(connection_lost_during_handshake_is_never_sent),
        cmocka_unit_test(fetch_speaks_https_with_a_client_certificate),
        cmocka_unit_test(engine_without_sockets),
        cmocka_unit_test(cert_files_and_errors),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
