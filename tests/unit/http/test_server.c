/* Unit tests of the HTTP server (src/http/server.c): real sockets on
 * 127.0.0.1, port 0, driven by running the loop.  Requests come from our own
 * client where the exact bytes do not matter, and from a raw socket where
 * they do (pipelining, malformed input, slow clients). */
#include "http_test.h"

#include "common/json.h"

#define MAX_HELD 128

struct fx {
    uv_loop_t loop;
    struct http_server_opts opts;
    struct http_server *srv;
    struct http_client *cli;
    int port;
    int n_requests;
    struct http_exchange *held[MAX_HELD];
    char held_path[MAX_HELD][32];
    int n_held;
    struct http_exchange *stream_ex;
    struct mr_buf last_body;   /* body of the last request seen */
    char last_expect[32];
};

static void handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct fx *f = data;
    struct mr_buf b;
    const char *expect = http_request_header(req, "expect");

    f->n_requests++;
    mr_buf_reset(&f->last_body);
    mr_buf_append(&f->last_body, req->body, req->body_len);
    snprintf(f->last_expect, sizeof(f->last_expect), "%s", expect ? expect : "");
    if (strncmp(req->path, "/hold", 5) == 0) {
        assert_true(f->n_held < MAX_HELD);
        snprintf(f->held_path[f->n_held], sizeof(f->held_path[0]), "%s", req->path);
        f->held[f->n_held++] = ex;
        return;
    }
    if (strcmp(req->path, "/stream") == 0) {
        http_respond_start(ex, 200, "text/plain", NULL);
        assert_int_equal(http_respond_chunk(ex, "one,", 4), 0);
        f->stream_ex = ex;
        return;
    }
    mr_buf_init(&b);
    mr_buf_printf(&b, "%s %s?%s [%.*s]", req->method, req->path, req->query, (int)req->body_len,
                  req->body);
    if (http_request_header(req, "x-echo") != NULL)
        mr_buf_printf(&b, " echo=%s|%s", http_request_header(req, "X-Echo"),
                      http_request_header(req, "X-Empty") ? http_request_header(req, "X-Empty")
                                                          : "(none)");
    http_respond(ex, 200, "text/plain", b.data, b.len, "X-Test: yes\r\n");
    mr_buf_close(&b);
}

static int fx_setup_opts(void **state, void (*tweak)(struct http_server_opts *))
{
    struct fx *f = mr_calloc(1, sizeof(*f));
    char err[MR_ERRMSG_LEN];

    assert_int_equal(uv_loop_init(&f->loop), 0);
    http_server_opts_default(&f->opts);
    f->opts.server_name = "test-server";
    if (tweak != NULL)
        tweak(&f->opts);
    assert_int_equal(http_server_start(&f->loop, "127.0.0.1", 0, &f->opts, handler, f, &f->srv, err),
                     0);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->cli), 0);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_setup_opts(state, NULL);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    http_client_free(f->cli);
    if (f->srv != NULL)
        http_server_close(f->srv);
    loop_finish(&f->loop);
    mr_buf_close(&f->last_body);
    mr_free(f);
    return 0;
}

static struct http_server_stats stats(struct fx *f)
{
    struct http_server_stats st;

    http_server_stats(f->srv, &st);
    return st;
}

/* ---- calls through our client ------------------------------------------- */

struct result {
    int done;
    int rc;
    int status;
    struct mr_buf body;
    struct mr_buf headers;
};

static void result_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct result *r = data;

    (void)call;
    assert_false(r->done);
    r->done = 1;
    r->rc = rc;
    if (rc != 0)
        return;
    r->status = resp->status;
    mr_buf_append(&r->body, resp->body, resp->body_len);
    for (size_t i = 0; i < resp->n_headers; i++)
        mr_buf_printf(&r->headers, "%s: %s\n", resp->headers[i].name, resp->headers[i].value);
}

static void result_close(struct result *r)
{
    mr_buf_close(&r->body);
    mr_buf_close(&r->headers);
    memset(r, 0, sizeof(*r));
}

static void call(struct fx *f, const char *method, const char *path, const char *body,
                 size_t body_len, struct result *r)
{
    struct http_client_request req = {0};

    memset(r, 0, sizeof(*r));
    req.method = method;
    req.host = "127.0.0.1";
    req.port = f->port;
    req.path = path;
    req.body = body;
    req.body_len = body_len;
    req.timeout_ms = GUARD_MS;
    assert_int_equal(http_client_request(f->cli, &req, result_cb, r, NULL), 0);
    assert_true(run_until(&f->loop, &r->done));
}

/* ---- waiting on the fixture ------------------------------------------- */

struct held_wait {
    struct fx *f;
    int n;
};

static int held_pred(void *arg)
{
    struct held_wait *w = arg;

    return w->f->n_held >= w->n;
}

/* Run until <f> has held <n> requests (bounded by the guard). */
static void wait_held(struct fx *f, int n)
{
    struct held_wait w = {f, n};

    run_pred(&f->loop, held_pred, &w);
}

static int stream_pred(void *arg)
{
    return ((struct fx *)arg)->stream_ex != NULL;
}

static int no_conn_pred(void *arg)
{
    return stats(arg).connections_open == 0;
}

/* Let the loop turn for <ms>: only where a test asserts that something does
 * NOT happen. */
static void settle(struct fx *f, uint64_t ms)
{
    int never = 0;

    run_until_ms(&f->loop, &never, ms);
}

/* ---- tests -------------------------------------------------------------- */

static void server_answers_get_and_post(void **state)
{
    struct fx *f = *state;
    struct result r;

    call(f, "GET", "/a/b?x=1", NULL, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "GET /a/b?x=1 []");
    assert_non_null(strstr(r.headers.data, "X-Test: yes"));
    assert_non_null(strstr(r.headers.data, "Server: test-server"));
    assert_non_null(strstr(r.headers.data, "Date: "));
    assert_non_null(strstr(r.headers.data, "Content-Type: text/plain"));
    result_close(&r);

    call(f, "POST", "/p", "hello\0world", 11, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "POST /p? [hello]");   /* %s stops at the NUL */
    assert_int_equal(f->last_body.len, 11);
    assert_memory_equal(f->last_body.data, "hello\0world", 11);
    result_close(&r);
    assert_int_equal(stats(f).requests, 2);
}

static void server_keeps_one_connection_for_many_calls(void **state)
{
    struct fx *f = *state;
    struct result r;

    for (int i = 0; i < 50; i++) {
        call(f, "GET", "/", NULL, 0, &r);
        assert_int_equal(r.status, 200);
        result_close(&r);
    }
    assert_int_equal(stats(f).connections_accepted, 1);
    assert_int_equal(stats(f).connections_open, 1);
    assert_int_equal(stats(f).requests, 50);
}

static void server_answers_pipelined_requests_in_request_order(void **state)
{
    struct fx *f = *state;
    struct raw r;
    const char *p1, *p2, *p3;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /hold1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hold2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hold3 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(f, 3);
    assert_int_equal(f->n_held, 3);
    /* Answer the last first: nothing may leave before the first answer. */
    http_respond(f->held[2], 200, "text/plain", "third", 5, NULL);
    http_respond(f->held[1], 200, "text/plain", "second", 6, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(raw_answers(&r), 0);
    http_respond(f->held[0], 200, "text/plain", "first", 5, NULL);
    assert_int_equal(raw_wait_answers(&f->loop, &r, 3), 3);
    p1 = strstr(r.in.data, "first");
    p2 = strstr(r.in.data, "second");
    p3 = strstr(r.in.data, "third");
    assert_non_null(p1);
    assert_true(p1 < p2 && p2 < p3);
    raw_close(&f->loop, &r);
}

static void server_stops_reading_when_pipeline_is_full(void **state)
{
    struct fx *f = *state;
    struct raw r;
    struct mr_buf req;
    int n = HTTP_MAX_PIPELINE + 6;

    mr_buf_init(&req);
    for (int i = 0; i < n; i++)
        mr_buf_printf(&req, "GET /hold%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    raw_connect(&f->loop, &r, f->port);
    raw_send_n(&r, req.data, req.len);
    mr_buf_close(&req);
    wait_held(f, HTTP_MAX_PIPELINE);
    assert_int_equal(f->n_held, HTTP_MAX_PIPELINE);
    /* Everything arrived, but no more than the pipeline limit was parsed. */
    settle(f, 30);
    assert_int_equal(f->n_held, HTTP_MAX_PIPELINE);
    for (int i = 0; i < HTTP_MAX_PIPELINE; i++)
        http_respond(f->held[i], 200, "text/plain", f->held_path[i], strlen(f->held_path[i]), NULL);
    wait_held(f, n);
    assert_int_equal(f->n_held, n);
    for (int i = HTTP_MAX_PIPELINE; i < n; i++)
        http_respond(f->held[i], 200, "text/plain", f->held_path[i], strlen(f->held_path[i]), NULL);
    assert_int_equal(raw_wait_answers(&f->loop, &r, n), n);
    /* In order: /hold0 ... /hold69 */
    {
        const char *p = r.in.data;
        char want[32];

        for (int i = 0; i < n; i++) {
            snprintf(want, sizeof(want), "\r\n\r\n/hold%d", i);
            p = strstr(p, want);
            assert_non_null(p);
        }
    }
    raw_close(&f->loop, &r);
}

static void server_parses_head_arriving_byte_by_byte(void **state)
{
    struct fx *f = *state;
    struct raw r;
    const char *req = "POST /split?k=v HTTP/1.1\r\nHost: x\r\nX-Echo: some value\r\n"
                      "X-Empty:\r\nContent-Length: 3\r\n\r\nabc";

    raw_connect(&f->loop, &r, f->port);
    for (const char *p = req; *p != '\0'; p++) {
        raw_send_n(&r, p, 1);
        /* one loop turn per byte: each arrives in its own read */
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(raw_wait_str(&f->loop, &r, "POST /split?k=v [abc] echo=some value|"));
    assert_null(strstr(r.in.data, "(none)"));   /* the empty header was seen */
    raw_close(&f->loop, &r);
}

static void server_accepts_absolute_form_target(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET http://example.com:81/abs/path?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                 "X-Echo: v\r\nX-Empty: \r\n\r\n");
    assert_true(raw_wait_str(&f->loop, &r, "GET /abs/path?q=1 [] echo=v|"));
    assert_null(strstr(r.in.data, "(none)"));
    raw_close(&f->loop, &r);
}

static void small_limits(struct http_server_opts *o)
{
    o->max_body_bytes = 1024;
    o->max_header_bytes = 1024;
    o->max_headers = 8;
}

static int fx_setup_small(void **state)
{
    return fx_setup_opts(state, small_limits);
}

static void server_refuses_announced_oversized_body_with_413_and_stays_usable(void **state)
{
    struct fx *f = *state;
    char big[2048];
    struct result r;

    memset(big, 'x', sizeof(big));
    call(f, "POST", "/", big, sizeof(big), &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body.data, "\"code\":\"body_too_large\""));
    assert_non_null(strstr(r.body.data, "1024"));
    assert_non_null(strstr(r.headers.data, "Connection: close"));
    assert_non_null(strstr(r.headers.data, "application/json"));
    result_close(&r);
    assert_int_equal(f->n_requests, 0);

    call(f, "POST", "/", big, 1000, &r);
    assert_int_equal(r.status, 200);
    result_close(&r);
    assert_int_equal(stats(f).bad_requests, 1);
}

static void server_refuses_oversized_chunked_body_with_413(void **state)
{
    struct fx *f = *state;
    struct raw r;
    char chunk[600];

    memset(chunk, 'y', sizeof(chunk));
    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        raw_send(&r, "258\r\n");   /* 600 bytes */
        raw_send_n(&r, chunk, sizeof(chunk));
        raw_send(&r, "\r\n");
    }
    raw_send(&r, "0\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_non_null(strstr(r.in.data, "HTTP/1.1 413 "));
    assert_non_null(strstr(r.in.data, "body_too_large"));
    assert_true(raw_wait_eof(&f->loop, &r));
    assert_int_equal(f->n_requests, 0);
    raw_close(&f->loop, &r);
}

static void server_refuses_oversized_head_with_431(void **state)
{
    struct fx *f = *state;
    struct raw r;
    char big[2000];

    memset(big, 'h', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    raw_send(&r, big);
    raw_send(&r, "\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_non_null(strstr(r.in.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert_non_null(strstr(r.in.data, "{\"error\":{\"code\":\"headers_too_large\",\"message\":"));
    assert_true(raw_wait_eof(&f->loop, &r));
    raw_close(&f->loop, &r);
    assert_int_equal(stats(f).bad_requests, 1);
}

static void server_refuses_too_many_headers_with_431(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 9; i++)
        raw_send(&r, "A: b\r\n");
    raw_send(&r, "\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_non_null(strstr(r.in.data, "HTTP/1.1 431 "));
    assert_non_null(strstr(r.in.data, "more than 8 header fields"));
    raw_close(&f->loop, &r);
}

static void server_refuses_malformed_request_with_400_json(void **state)
{
    struct fx *f = *state;
    struct raw r;
    const char *body;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                 "NOT HTTP AT ALL\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 2), 2);
    /* The good request before the bad one is answered first. */
    assert_true(strstr(r.in.data, "HTTP/1.1 200 ") < strstr(r.in.data, "HTTP/1.1 400 "));
    body = strstr(strstr(r.in.data, "HTTP/1.1 400 "), "\r\n\r\n") + 4;
    assert_ptr_equal(strstr(body, "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed request: "),
                     body);
    assert_true(raw_wait_eof(&f->loop, &r));
    raw_close(&f->loop, &r);
    assert_int_equal(f->n_requests, 1);
}

static void short_timeouts(struct http_server_opts *o)
{
    o->header_timeout_ms = 100;
    o->idle_timeout_ms = 150;
}

static int fx_setup_timeouts(void **state)
{
    return fx_setup_opts(state, short_timeouts);
}

static void server_closes_client_that_sends_half_a_head(void **state)
{
    struct fx *f = *state;
    struct raw r;
    uint64_t t0 = uv_now(&f->loop);

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\n");
    assert_true(raw_wait_eof(&f->loop, &r));
    uv_update_time(&f->loop);
    assert_true(uv_now(&f->loop) - t0 >= 90);
    assert_int_equal(r.in.len, 0);
    assert_int_equal(stats(f).timeouts, 1);
    assert_int_equal(f->n_requests, 0);
    raw_close(&f->loop, &r);
}

static void server_head_timeout_is_not_extended_by_trickling_bytes(void **state)
{
    struct fx *f = *state;
    struct raw r;
    const char *head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    raw_connect(&f->loop, &r, f->port);
    /* One byte every 20 ms: each read alone is recent, the head is not. */
    for (const char *p = head; *p != '\0' && !r.eof; p++) {
        raw_send_n(&r, p, 1);
        settle(f, 20);
    }
    assert_true(raw_wait_eof(&f->loop, &r));
    assert_int_equal(stats(f).timeouts, 1);
    raw_close(&f->loop, &r);
}

static void server_closes_idle_keep_alive_connection(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_null(strstr(r.in.data, "Connection: close"));
    assert_true(raw_wait_eof(&f->loop, &r));
    assert_int_equal(stats(f).timeouts, 0);   /* idling is not a timeout */
    assert_int_equal(stats(f).connections_open, 0);
    raw_close(&f->loop, &r);
}

static void one_connection(struct http_server_opts *o)
{
    o->max_connections = 1;
}

static int fx_setup_one_conn(void **state)
{
    return fx_setup_opts(state, one_connection);
}

static void server_answers_503_over_max_connections(void **state)
{
    struct fx *f = *state;
    struct raw a, b;

    raw_connect(&f->loop, &a, f->port);
    raw_send(&a, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(f, 1);
    assert_int_equal(f->n_held, 1);

    raw_connect(&f->loop, &b, f->port);
    raw_send(&b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &b, 1), 1);
    assert_non_null(strstr(b.in.data, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(b.in.data, "Connection: close\r\n"));
    assert_non_null(strstr(b.in.data, "\"code\":\"unavailable\""));
    assert_true(raw_wait_eof(&f->loop, &b));
    raw_close(&f->loop, &b);
    assert_int_equal(stats(f).connections_rejected, 1);
    assert_int_equal(f->n_requests, 1);

    http_respond(f->held[0], 200, "text/plain", "ok", 2, NULL);
    assert_int_equal(raw_wait_answers(&f->loop, &a, 1), 1);
    raw_close(&f->loop, &a);
}

static void server_sends_100_continue_when_asked(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 "Expect: 100-continue\r\n\r\n");
    assert_true(raw_wait_str(&f->loop, &r, "HTTP/1.1 100 Continue\r\n\r\n"));
    assert_int_equal(f->n_requests, 0);
    raw_send(&r, "hello");
    assert_true(raw_wait_str(&f->loop, &r, "[hello]"));
    assert_string_equal(f->last_expect, "100-continue");
    raw_close(&f->loop, &r);
}

static void server_refuses_oversized_body_before_100_continue(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_true(strncmp(r.in.data, "HTTP/1.1 413 ", 13) == 0);
    raw_close(&f->loop, &r);
}

static void server_closes_after_answering_http10_request(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /ten HTTP/1.0\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 1), 1);
    assert_non_null(strstr(r.in.data, "Connection: close\r\n"));
    assert_true(raw_wait_eof(&f->loop, &r));
    raw_close(&f->loop, &r);

    /* 1.0 with keep-alive asked for keeps the connection. */
    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                 "GET /ten2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(raw_wait_answers(&f->loop, &r, 2), 2);
    assert_int_equal(count_substr(r.in.data, "Connection: keep-alive\r\n"), 2);
    raw_close(&f->loop, &r);
}

static void server_answers_head_without_body(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(raw_wait_str(&f->loop, &r, "GET /g? []"));
    /* The HEAD answer announces the GET length but carries nothing. */
    assert_non_null(strstr(r.in.data, "Content-Length: 10\r\n"));
    assert_null(strstr(r.in.data, "HEAD /h"));
    raw_close(&f->loop, &r);
}

static void leave_while_held(struct fx *f, int reset)
{
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(f, f->n_held + 1);
    if (reset)
        raw_reset(&f->loop, &r);
    else
        raw_close(&f->loop, &r);
    run_pred(&f->loop, no_conn_pred, f);
    assert_int_equal(stats(f).connections_open, 0);
    /* The exchange outlived its connection and is freed here (ASan). */
    http_respond(f->held[f->n_held - 1], 200, "text/plain", "late", 4, NULL);
}

static void server_discards_answer_when_client_left(void **state)
{
    struct fx *f = *state;

    leave_while_held(f, 0);   /* FIN */
    leave_while_held(f, 1);   /* RST */
    assert_int_equal(f->n_held, 2);
}

static void server_writes_ready_answers_to_half_closed_client(void **state)
{
    struct fx *f = *state;
    struct raw r;
    uv_shutdown_t sreq;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(uv_shutdown(&sreq, (uv_stream_t *)&r.tcp, NULL), 0);
    assert_int_equal(raw_wait_answers(&f->loop, &r, 2), 2);
    assert_true(raw_wait_eof(&f->loop, &r));
    raw_close(&f->loop, &r);
}

static void server_close_keeps_held_exchanges_valid(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /hold1 HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(f, 1);
    assert_int_equal(f->n_held, 1);
    run_pred(&f->loop, stream_pred, f);
    assert_non_null(f->stream_ex);
    http_server_close(f->srv);
    f->srv = NULL;
    assert_true(raw_wait_eof(&f->loop, &r));
    settle(f, 20);   /* the server's memory goes now */
    assert_int_equal(http_respond_chunk(f->stream_ex, "x", 1), MR_ECLOSED);
    http_respond_end(f->stream_ex);
    http_respond(f->held[0], 200, "text/plain", "late", 4, NULL);
    raw_close(&f->loop, &r);
}

static void server_streams_chunked_answer(void **state)
{
    struct fx *f = *state;
    struct raw r;

    raw_connect(&f->loop, &r, f->port);
    raw_send(&r, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(raw_wait_str(&f->loop, &r, "4\r\none,\r\n"));
    assert_non_null(strstr(r.in.data, "Transfer-Encoding: chunked\r\n"));
    assert_int_equal(http_respond_chunk(f->stream_ex, "two", 3), 0);
    assert_true(raw_wait_str(&f->loop, &r, "3\r\ntwo\r\n"));
    http_respond_end(f->stream_ex);
    f->stream_ex = NULL;
    assert_true(raw_wait_str(&f->loop, &r, "0\r\n\r\n"));
    /* The connection stays usable after a streamed answer. */
    raw_send(&r, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(raw_wait_str(&f->loop, &r, "GET /after? []"));
    raw_close(&f->loop, &r);
}

static void request_lookups_decode_query_and_ignore_header_case(void **state)
{
    struct http_header h[2] = {{(char *)"Content-Type", (char *)"a/b"},
                               {(char *)"X-Y", (char *)"z"}};
    struct http_request req = {0};
    struct mr_buf v;

    (void)state;
    req.headers = h;
    req.n_headers = 2;
    req.query = "a=1&name=hello%20w%2Fo+rld&flag&empty=&bad=%zz";
    mr_buf_init(&v);
    assert_string_equal(http_request_header(&req, "content-type"), "a/b");
    assert_null(http_request_header(&req, "X-Z"));
    assert_int_equal(http_request_query(&req, "name", &v), 1);
    assert_string_equal(v.data, "hello w/o rld");
    assert_int_equal(http_request_query(&req, "flag", &v), 1);
    assert_int_equal(v.len, 0);
    assert_int_equal(http_request_query(&req, "empty", &v), 1);
    assert_int_equal(v.len, 0);
    assert_int_equal(http_request_query(&req, "bad", &v), 1);
    assert_string_equal(v.data, "%zz");
    assert_int_equal(http_request_query(&req, "missing", &v), 0);
    mr_buf_close(&v);
}

static void server_start_refuses_port_in_use(void **state)
{
    struct fx *f = *state;
    struct http_server *s2 = NULL;
    char err[MR_ERRMSG_LEN];

    assert_int_equal(
        http_server_start(&f->loop, "127.0.0.1", f->port, NULL, handler, f, &s2, err), MR_EIO);
    assert_null(s2);
    assert_non_null(strstr(err, "address already in use"));
    settle(f, 10);   /* the failed listener's close callback */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(server_answers_get_and_post, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(server_keeps_one_connection_for_many_calls, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_answers_pipelined_requests_in_request_order,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(server_stops_reading_when_pipeline_is_full, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_parses_head_arriving_byte_by_byte, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_accepts_absolute_form_target, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(
            server_refuses_announced_oversized_body_with_413_and_stays_usable, fx_setup_small,
            fx_teardown),
        cmocka_unit_test_setup_teardown(server_refuses_oversized_chunked_body_with_413,
                                        fx_setup_small, fx_teardown),
        cmocka_unit_test_setup_teardown(server_refuses_oversized_head_with_431, fx_setup_small,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_refuses_too_many_headers_with_431, fx_setup_small,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_refuses_malformed_request_with_400_json, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_closes_client_that_sends_half_a_head,
                                        fx_setup_timeouts, fx_teardown),
        cmocka_unit_test_setup_teardown(server_head_timeout_is_not_extended_by_trickling_bytes,
                                        fx_setup_timeouts, fx_teardown),
        cmocka_unit_test_setup_teardown(server_closes_idle_keep_alive_connection,
                                        fx_setup_timeouts, fx_teardown),
        cmocka_unit_test_setup_teardown(server_answers_503_over_max_connections,
                                        fx_setup_one_conn, fx_teardown),
        cmocka_unit_test_setup_teardown(server_sends_100_continue_when_asked, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_refuses_oversized_body_before_100_continue,
                                        fx_setup_small, fx_teardown),
        cmocka_unit_test_setup_teardown(server_closes_after_answering_http10_request, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_answers_head_without_body, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(server_discards_answer_when_client_left, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_writes_ready_answers_to_half_closed_client,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(server_close_keeps_held_exchanges_valid, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(server_streams_chunked_answer, fx_setup, fx_teardown),
        cmocka_unit_test(request_lookups_decode_query_and_ignore_header_case),
        cmocka_unit_test_setup_teardown(server_start_refuses_port_in_use, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
