/* Unit tests of the HTTP client (src/http/client.c) and http_fetch: real
 * sockets on 127.0.0.1, port 0.  The peer is our own server where it behaves,
 * and a scripted raw server (http_test.h) where it must misbehave. */
#include "http_test.h"

#define MAX_HELD 16

struct fx {
    uv_loop_t loop;
    struct http_server *srv;
    struct http_client *cli;
    int port;
    struct http_exchange *held[MAX_HELD];
    int n_held;
    struct http_exchange *stream_ex;
    int n_requests;
};

static void handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct fx *f = data;
    struct mr_buf b;

    f->n_requests++;
    if (strcmp(req->path, "/hold") == 0) {
        assert_true(f->n_held < MAX_HELD);
        f->held[f->n_held++] = ex;
        return;
    }
    if (strcmp(req->path, "/stream") == 0) {
        http_respond_start(ex, 200, "application/json", NULL);
        assert_int_equal(http_respond_chunk(ex, "{\"n\":1}\n", 8), 0);
        f->stream_ex = ex;
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        char big[10000];

        memset(big, 'b', sizeof(big));
        http_respond(ex, 200, "text/plain", big, sizeof(big), NULL);
        return;
    }
    mr_buf_init(&b);
    mr_buf_printf(&b, "%s %s?%s [%.*s]", req->method, req->path, req->query, (int)req->body_len,
                  req->body);
    http_respond(ex, 200, "text/plain", b.data, b.len, NULL);
    mr_buf_close(&b);
}

static int fx_setup(void **state)
{
    struct fx *f = mr_calloc(1, sizeof(*f));
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];

    assert_int_equal(uv_loop_init(&f->loop), 0);
    http_server_opts_default(&o);
    assert_int_equal(http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv, err), 0);
    f->port = http_server_port(f->srv);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->cli), 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    if (f->cli != NULL)
        http_client_free(f->cli);
    if (f->srv != NULL)
        http_server_close(f->srv);
    loop_finish(&f->loop);
    mr_free(f);
    return 0;
}

static struct http_server_stats stats(struct fx *f)
{
    struct http_server_stats st;

    http_server_stats(f->srv, &st);
    return st;
}

static void settle(struct fx *f, uint64_t ms)
{
    int never = 0;

    run_until_ms(&f->loop, &never, ms);
}

struct open_wait {
    struct fx *f;
    uint64_t max;
};

static int open_pred(void *arg)
{
    struct open_wait *w = arg;

    return stats(w->f).connections_open <= w->max;
}

/* Run until the server has at most <max> connections open. */
static void wait_open_le(struct fx *f, uint64_t max)
{
    struct open_wait w = {f, max};

    run_pred(&f->loop, open_pred, &w);
}

static int stream_pred(void *arg)
{
    return ((struct fx *)arg)->stream_ex != NULL;
}

/* ---- calls ---------------------------------------------------------------- */

struct result {
    int done;          /* callback runs */
    int rc;
    int status;
    int body_null;
    struct mr_buf body;
    struct mr_buf streamed;
    int n_pieces;
    struct http_call *call;
    struct fx *f;
    int cancel_on_body;
};

static void result_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct result *r = data;

    (void)call;
    r->done++;
    r->rc = rc;
    if (rc != 0) {
        assert_null(resp);
        return;
    }
    r->status = resp->status;
    r->body_null = resp->body == NULL;
    if (resp->body != NULL)
        mr_buf_append(&r->body, resp->body, resp->body_len);
}

static void result_close(struct result *r)
{
    mr_buf_close(&r->body);
    mr_buf_close(&r->streamed);
    memset(r, 0, sizeof(*r));
}

static struct http_client_request request(const char *method, const char *host, int port,
                                          const char *path)
{
    struct http_client_request req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.host = host;
    req.port = port;
    req.path = path;
    req.timeout_ms = GUARD_MS;
    return req;
}

static void start(struct fx *f, const struct http_client_request *req, struct result *r)
{
    memset(r, 0, sizeof(*r));
    r->f = f;
    assert_int_equal(http_client_request(f->cli, req, result_cb, r, &r->call), 0);
}

static void call(struct fx *f, const struct http_client_request *req, struct result *r)
{
    start(f, req, r);
    assert_true(run_until(&f->loop, &r->done));
    assert_int_equal(r->done, 1);
}

/* ---- tests ---------------------------------------------------------------- */

static void client_gets_and_posts(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/x?q=1");
    struct result r;

    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "GET /x?q=1 []");
    result_close(&r);

    req = request("POST", "127.0.0.1", f->port, "/p");
    req.body = "payload";
    req.body_len = 7;
    req.headers = "X-A: 1\r\n";
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body.data, "POST /p? [payload]");
    result_close(&r);

    /* A POST without a body still says Content-Length: 0. */
    req = request("POST", "127.0.0.1", f->port, "/empty");
    call(f, &req, &r);
    assert_int_equal(r.status, 200);
    result_close(&r);
}

struct chain {
    struct fx *f;
    int left;
    int done;
    int failures;
};

static void chain_cb(struct http_call *c, int rc, const struct http_response *resp, void *data)
{
    struct chain *ch = data;
    struct http_client_request req = request("GET", "127.0.0.1", ch->f->port, "/chain");

    (void)c;
    if (rc != 0 || resp->status != 200)
        ch->failures++;
    if (--ch->left == 0) {
        ch->done = 1;
        return;
    }
    /* From inside the callback: the connection just went back to the pool
     * and must be picked up again. */
    assert_int_equal(http_client_request(ch->f->cli, &req, chain_cb, ch, NULL), 0);
}

static void client_reuses_one_connection_for_many_calls(void **state)
{
    struct fx *f = *state;
    struct chain ch = {f, 100, 0, 0};
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/chain");

    assert_int_equal(http_client_request(f->cli, &req, chain_cb, &ch, NULL), 0);
    assert_true(run_until(&f->loop, &ch.done));
    assert_int_equal(ch.failures, 0);
    assert_int_equal(f->n_requests, 100);
    assert_int_equal(stats(f).connections_accepted, 1);
}

static void client_opens_parallel_connections_and_keeps_max_idle(void **state)
{
    struct fx *f = *state;
    struct http_client_opts o;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/par");
    struct result r[5];

    http_client_free(f->cli);
    http_client_opts_default(&o);
    o.max_idle_per_host = 2;
    assert_int_equal(http_client_new(&f->loop, &o, &f->cli), 0);
    for (int i = 0; i < 5; i++)
        start(f, &req, &r[i]);
    for (int i = 0; i < 5; i++) {
        assert_true(run_until(&f->loop, &r[i].done));
        assert_int_equal(r[i].status, 200);
        result_close(&r[i]);
    }
    assert_int_equal(stats(f).connections_accepted, 5);
    /* 3 of 5 were closed, not pooled */
    wait_open_le(f, 2);
    settle(f, 20);
    assert_int_equal(stats(f).connections_open, 2);
}

static void client_reports_refused_connect_as_econn(void **state)
{
    struct fx *f = *state;
    int port = f->port;
    struct http_client_request req = request("GET", "127.0.0.1", port, "/");
    struct result r;

    /* Nobody listens on the port once our server is gone. */
    http_server_close(f->srv);
    f->srv = NULL;
    settle(f, 10);
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_ECONN);
    result_close(&r);
}

static void client_times_out_with_etimedout(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/hold");
    struct result r;
    uint64_t t0;

    req.timeout_ms = 100;
    uv_update_time(&f->loop);
    t0 = uv_now(&f->loop);
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_ETIMEDOUT);
    assert_true(uv_now(&f->loop) - t0 >= 100);
    assert_int_equal(f->n_held, 1);
    /* The server's answer, after the client hung up, is dropped. */
    http_respond(f->held[0], 200, "text/plain", "late", 4, NULL);
    result_close(&r);
    /* The client stays usable. */
    req = request("GET", "127.0.0.1", f->port, "/after");
    call(f, &req, &r);
    assert_int_equal(r.status, 200);
    result_close(&r);
}

static void stream_body_cb(struct http_call *call, const char *p, size_t n, void *data)
{
    struct result *r = data;
    struct fx *f = r->f;

    mr_buf_append(&r->streamed, p, n);
    r->n_pieces++;
    if (r->cancel_on_body) {
        http_call_cancel(call);
        return;
    }
    /* Produce the next piece only once the previous one has arrived: this
     * is what shows that delivery is incremental. */
    if (strcmp(r->streamed.data, "{\"n\":1}\n") == 0)
        assert_int_equal(http_respond_chunk(f->stream_ex, "{\"n\":2}\n", 8), 0);
    else if (strcmp(r->streamed.data, "{\"n\":1}\n{\"n\":2}\n") == 0) {
        http_respond_end(f->stream_ex);
        f->stream_ex = NULL;
    }
}

static void client_delivers_chunked_stream_incrementally(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/stream");
    struct result r;

    req.on_body = stream_body_cb;
    req.timeout_ms = 100;   /* bounds only the wait for the head */
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_true(r.body_null);
    assert_int_equal(r.n_pieces, 2);
    assert_string_equal(r.streamed.data, "{\"n\":1}\n{\"n\":2}\n");
    result_close(&r);
}

static void record_body_cb(struct http_call *call, const char *p, size_t n, void *data)
{
    struct result *r = data;

    (void)call;
    mr_buf_append(&r->streamed, p, n);
    r->n_pieces++;
}

static void client_stream_outlives_head_timeout(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/stream");
    struct result r;

    req.on_body = record_body_cb;
    req.timeout_ms = 50;
    start(f, &req, &r);
    run_pred(&f->loop, stream_pred, f);
    assert_non_null(f->stream_ex);
    /* The stream idles for three times timeout_ms: no timeout. */
    settle(f, 150);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.n_pieces, 1);
    http_respond_end(f->stream_ex);
    f->stream_ex = NULL;
    assert_true(run_until(&f->loop, &r.done));
    assert_int_equal(r.rc, 0);
    result_close(&r);
}

static void client_cancel_of_stream_runs_callback_once(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/stream");
    struct result r;

    req.on_body = stream_body_cb;
    start(f, &req, &r);
    r.cancel_on_body = 1;
    assert_true(run_until(&f->loop, &r.done));
    assert_int_equal(r.rc, MR_ECLOSED);
    assert_int_equal(r.n_pieces, 1);
    settle(f, 20);
    assert_int_equal(r.done, 1);
    /* The server notices the client left without having to write. */
    wait_open_le(f, 0);
    assert_int_equal(http_respond_chunk(f->stream_ex, "more\n", 5), MR_ECLOSED);
    http_respond_end(f->stream_ex);
    f->stream_ex = NULL;
    result_close(&r);
}

static void client_cancel_before_connect_runs_callback_once(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "localhost", f->port, "/");
    struct result r;

    start(f, &req, &r);   /* resolving */
    http_call_cancel(r.call);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.rc, MR_ECLOSED);
    settle(f, 20);
    assert_int_equal(r.done, 1);
    result_close(&r);

    req.host = "127.0.0.1";
    start(f, &req, &r);   /* connecting */
    http_call_cancel(r.call);
    settle(f, 20);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.rc, MR_ECLOSED);
    result_close(&r);
}

static const char *script_close_second(struct rsrv_conn *c, int request_no)
{
    /* First connection: answer once, then drop the next request unanswered,
     * as a server that timed out the idle connection just as it was
     * reused.  Later connections answer. */
    if (c->index == 0 && request_no == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    if (c->index == 0)
        return NULL;
    return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry";
}

static void client_retries_once_when_reused_connection_fails(void **state)
{
    struct fx *f = *state;
    struct rsrv s;
    struct http_client_request req;
    struct result r;

    rsrv_start(&f->loop, &s, script_close_second);
    req = request("GET", "127.0.0.1", s.port, "/");
    call(f, &req, &r);
    assert_string_equal(r.body.data, "first");
    result_close(&r);
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body.data, "retry");
    assert_int_equal(s.n_conns, 2);
    assert_int_equal(s.n_heads, 3);   /* the retried request was delivered twice */
    result_close(&r);
    rsrv_stop(&f->loop, &s);
}

static void listener_closed_cb(uv_handle_t *h)
{
    ((struct rsrv *)h->data)->closed = 1;
}

static const char *script_close_second_and_listener(struct rsrv_conn *c, int request_no)
{
    /* Answer once; at the second request stop listening and drop the
     * connection: the client's retry on a fresh connection is refused, yet
     * the server did receive the request. */
    if (request_no == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    uv_close((uv_handle_t *)&c->srv->listener, listener_closed_cb);
    return NULL;
}

/* MR_ECONN promises that the request never left: a proxy may then send a
 * non-idempotent request elsewhere.  After a reused connection failed, the
 * first copy may have arrived, so a refused retry is MR_ECLOSED. */
static void client_refused_retry_after_reused_failure_is_eclosed(void **state)
{
    struct fx *f = *state;
    struct rsrv s;
    struct http_client_request req;
    struct result r;

    rsrv_start(&f->loop, &s, script_close_second_and_listener);
    req = request("POST", "127.0.0.1", s.port, "/orders");
    call(f, &req, &r);
    assert_string_equal(r.body.data, "first");
    result_close(&r);
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_ECLOSED);
    assert_int_equal(s.n_heads, 2);
    result_close(&r);
    run_until(&f->loop, &s.closed);
    for (int i = 0; i < s.n_conns; i++) {
        rsrv_conn_close(s.conns[i]);
        run_until(&f->loop, &s.conns[i]->closed);
        mr_free(s.conns[i]);
    }
}

static const char *script_close_always(struct rsrv_conn *c, int request_no)
{
    (void)c;
    (void)request_no;
    return NULL;
}

static void client_reports_close_after_send_as_eclosed(void **state)
{
    struct fx *f = *state;
    struct rsrv s;
    struct http_client_request req;
    struct result r;

    rsrv_start(&f->loop, &s, script_close_always);
    req = request("GET", "127.0.0.1", s.port, "/");
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_ECLOSED);
    assert_int_equal(s.n_conns, 1);   /* fresh connection: no retry */
    result_close(&r);
    rsrv_stop(&f->loop, &s);
}

static const char *script_garbage(struct rsrv_conn *c, int request_no)
{
    (void)c;
    (void)request_no;
    return "HTTP/1.1 OOPS\r\n\r\n";
}

static void client_reports_bad_response_as_eproto(void **state)
{
    struct fx *f = *state;
    struct rsrv s;
    struct http_client_request req;
    struct result r;

    rsrv_start(&f->loop, &s, script_garbage);
    req = request("GET", "127.0.0.1", s.port, "/");
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_EPROTO);
    result_close(&r);
    rsrv_stop(&f->loop, &s);
}

static const char *script_until_close(struct rsrv_conn *c, int request_no)
{
    (void)request_no;
    c->close_after_write = 1;
    return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
}

static void client_reads_body_delimited_by_close(void **state)
{
    struct fx *f = *state;
    struct rsrv s;
    struct http_client_request req;
    struct result r;

    rsrv_start(&f->loop, &s, script_until_close);
    req = request("GET", "127.0.0.1", s.port, "/");
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body.data, "until the end");
    result_close(&r);
    rsrv_stop(&f->loop, &s);
}

static void client_enforces_max_response_bytes(void **state)
{
    struct fx *f = *state;
    struct http_client_opts o;
    struct http_client_request req = request("GET", "127.0.0.1", f->port, "/big");
    struct result r;

    http_client_free(f->cli);
    http_client_opts_default(&o);
    o.max_response_bytes = 4096;
    assert_int_equal(http_client_new(&f->loop, &o, &f->cli), 0);
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_EPROTO);
    result_close(&r);
    req.path = "/small";
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    result_close(&r);
}

static void client_resolves_localhost(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "localhost", f->port, "/name");
    struct result r;

    /* localhost may resolve to ::1 first; the server listens on 127.0.0.1
     * only, so this also covers trying the next address. */
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body.data, "GET /name? []");
    result_close(&r);

    req.host = "no-such-host.invalid";
    call(f, &req, &r);
    assert_int_equal(r.rc, MR_ECONN);
    result_close(&r);
}

static void never_cb(struct http_call *c, int rc, const struct http_response *resp, void *data)
{
    (void)c;
    (void)rc;
    (void)resp;
    (void)data;
    fail_msg("callback of a refused request ran");
}

static void client_refuses_bad_arguments_without_callback(void **state)
{
    struct fx *f = *state;
    struct http_client_request req = request("GET", "127.0.0.1", 0, "/");

    assert_int_equal(http_client_request(f->cli, &req, never_cb, NULL, NULL), MR_EINVAL);
    req.port = f->port;
    req.path = NULL;
    assert_int_equal(http_client_request(f->cli, &req, never_cb, NULL, NULL), MR_EINVAL);
    req.path = "/";
    req.host = NULL;
    assert_int_equal(http_client_request(f->cli, &req, never_cb, NULL, NULL), MR_EINVAL);
    req.host = "127.0.0.1";
    req.body_len = 3;
    assert_int_equal(http_client_request(f->cli, &req, never_cb, NULL, NULL), MR_EINVAL);
    settle(f, 10);
}

struct freeing {
    struct fx *f;
    int n;
    int rcs[3];
};

static void free_in_cb(struct http_call *c, int rc, const struct http_response *resp, void *data)
{
    struct freeing *fr = data;

    (void)c;
    (void)resp;
    fr->rcs[fr->n++] = rc;
    if (fr->n == 1) {
        struct http_client_request req = request("GET", "127.0.0.1", fr->f->port, "/");

        http_client_free(fr->f->cli);
        /* A call started on a closing client is refused. */
        assert_int_equal(http_client_request(fr->f->cli, &req, never_cb, NULL, NULL), MR_EINVAL);
        fr->f->cli = NULL;
    }
}

static int freeing_pred(void *arg)
{
    return ((struct freeing *)arg)->n >= 3;
}

static void client_freed_inside_callback_cancels_other_calls(void **state)
{
    struct fx *f = *state;
    struct freeing fr = {f, 0, {0}};
    struct http_client_request quick = request("GET", "127.0.0.1", f->port, "/q");
    struct http_client_request slow = request("GET", "127.0.0.1", f->port, "/hold");

    assert_int_equal(http_client_request(f->cli, &slow, free_in_cb, &fr, NULL), 0);
    assert_int_equal(http_client_request(f->cli, &slow, free_in_cb, &fr, NULL), 0);
    assert_int_equal(http_client_request(f->cli, &quick, free_in_cb, &fr, NULL), 0);
    run_pred(&f->loop, freeing_pred, &fr);
    assert_int_equal(fr.n, 3);
    assert_int_equal(fr.rcs[0], 0);
    assert_int_equal(fr.rcs[1], MR_ECLOSED);
    assert_int_equal(fr.rcs[2], MR_ECLOSED);
    settle(f, 20);
    for (int i = 0; i < f->n_held; i++)
        http_respond(f->held[i], 200, NULL, "", 0, NULL);
}

static void client_survives_server_closing_idle_connection(void **state)
{
    struct fx *f = *state;
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];
    struct http_client_request req;
    struct result r;

    http_server_close(f->srv);
    http_server_opts_default(&o);
    o.idle_timeout_ms = 50;
    assert_int_equal(http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv, err), 0);
    req = request("GET", "127.0.0.1", http_server_port(f->srv), "/one");
    call(f, &req, &r);
    assert_int_equal(r.status, 200);
    result_close(&r);
    wait_open_le(f, 0);
    assert_int_equal(stats(f).connections_open, 0);
    settle(f, 10);   /* and the client has seen the FIN */
    req.path = "/two";
    call(f, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body.data, "GET /two? []");
    assert_int_equal(stats(f).connections_accepted, 2);
    result_close(&r);
}

/* ---- http_fetch against a server on its own thread ---------------------- */

struct bg {
    uv_thread_t th;
    uv_loop_t loop;
    uv_async_t stop;
    uv_sem_t ready;
    struct http_server *srv;
    int port;
};

static void bg_handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    (void)data;
    if (strcmp(req->path, "/missing") == 0) {
        http_respond(ex, 404, "text/plain", "nope", 4, NULL);
        return;
    }
    http_respond(ex, 200, "text/plain", req->body, req->body_len, "X-Echo: yes\r\n");
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
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&b->loop);
    uv_async_init(&b->loop, &b->stop, bg_stop_cb);
    b->stop.data = b;
    assert_int_equal(http_server_start(&b->loop, "127.0.0.1", 0, NULL, bg_handler, b, &b->srv, err),
                     0);
    b->port = http_server_port(b->srv);
    uv_sem_post(&b->ready);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
}

static void fetch_talks_to_server(void **state)
{
    struct bg b;
    struct http_result res;
    char err[MR_ERRMSG_LEN];
    char url[128];

    (void)state;
    memset(&b, 0, sizeof(b));
    uv_sem_init(&b.ready, 0);
    assert_int_equal(uv_thread_create(&b.th, bg_main, &b), 0);
    uv_sem_wait(&b.ready);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo?x=1", b.port);
    assert_int_equal(http_fetch("POST", url, "X-A: b\r\n", "body!", 5, GUARD_MS, &res, err), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body.data, "body!");
    assert_non_null(strstr(res.headers.data, "X-Echo: yes\r\n"));
    assert_non_null(strstr(res.headers.data, "Content-Length: 5\r\n"));
    http_result_close(&res);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/missing", b.port);
    assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, GUARD_MS, &res, err), 0);
    assert_int_equal(res.status, 404);
    http_result_close(&res);

    uv_async_send(&b.stop);
    uv_thread_join(&b.th);
    uv_sem_destroy(&b.ready);

    /* Nobody listens any more. */
    assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, GUARD_MS, &res, err), MR_ECONN);
    assert_non_null(strstr(err, "connection failed"));
    /* https without a context set by http_fetch_set_tls (tests/unit/tls). */
    assert_int_equal(http_fetch("GET", "https://x/", NULL, NULL, 0, GUARD_MS, &res, err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "TLS"));
}

static void parse_url_splits_parts(void **state)
{
    char *host, *path;
    int port;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(http_parse_url("http://example.com:8080/a/b?c=d", &host, &port, &path, err),
                     0);
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/a/b?c=d");
    mr_free(host);
    mr_free(path);
    assert_int_equal(http_parse_url("http://[::1]", &host, &port, &path, err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/");
    mr_free(host);
    mr_free(path);
    assert_int_equal(http_parse_url("https://a/", &host, &port, &path, err), 0);
    assert_int_equal(port, 443);
    assert_true(http_url_is_https("HTTPS://a/"));
    assert_false(http_url_is_https("http://a/"));
    mr_free(host);
    mr_free(path);
    assert_int_equal(http_parse_url("ftp://a/", &host, &port, &path, err), MR_EINVAL);
    assert_int_equal(http_parse_url("nonsense", &host, &port, &path, err), MR_EINVAL);
    assert_int_equal(http_parse_url("http://a:99999/", &host, &port, &path, err), MR_EINVAL);
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(599), "Server Error");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(client_gets_and_posts),
        T(client_reuses_one_connection_for_many_calls),
        T(client_opens_parallel_connections_and_keeps_max_idle),
        T(client_reports_refused_connect_as_econn),
        T(client_times_out_with_etimedout),
        T(client_delivers_chunked_stream_incrementally),
        T(client_stream_outlives_head_timeout),
        T(client_cancel_of_stream_runs_callback_once),
        T(client_cancel_before_connect_runs_callback_once),
        T(client_retries_once_when_reused_connection_fails),
        T(client_refused_retry_after_reused_failure_is_eclosed),
        T(client_reports_close_after_send_as_eclosed),
        T(client_reports_bad_response_as_eproto),
        T(client_reads_body_delimited_by_close),
        T(client_enforces_max_response_bytes),
        T(client_resolves_localhost),
        T(client_refuses_bad_arguments_without_callback),
        T(client_freed_inside_callback_cancels_other_calls),
        T(client_survives_server_closing_idle_connection),
        cmocka_unit_test(fetch_talks_to_server),
        cmocka_unit_test(parse_url_splits_parts),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
