/* fuzz_http_request.c -- bytes from a client to our HTTP/1.1 server.
 *
 * One real server on a loopback port, as the node and the edge run it (small
 * limits, so the limit paths are reached too).  Each input is written by a
 * fresh TCP connection, which then shuts down its write side and reads until
 * the server closes: every byte goes through the same code as in
 * production, including pipelining and refusals. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "fuzz.h"
#include "http/http.h"

static uv_loop_t loop;
static struct http_server *server;
static int port;

struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_shutdown_t sd;
    uv_buf_t data;
    int closed;
};

static void handler(struct http_exchange *ex, const struct http_request *req, void *data)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%s %zu\n", req->method, req->body_len);
    (void)data;
    if (strcmp(req->path, "/stream") == 0) {
        http_respond_start(ex, 200, "text/plain", NULL);
        (void)http_respond_chunk(ex, body, (size_t)n);
        http_respond_end(ex);
        return;
    }
    http_respond(ex, 200, "text/plain", body, (size_t)n, NULL);
}

static void setup(void)
{
    struct http_server_opts o;
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&loop);
    http_server_opts_default(&o);
    o.max_header_bytes = 2048;
    o.max_headers = 16;
    o.max_body_bytes = 4096;
    o.header_timeout_ms = 2000;
    o.idle_timeout_ms = 2000;
    o.server_name = "fuzz";
    if (http_server_start(&loop, "127.0.0.1", 0, &o, handler, NULL, &server, err) != 0)
        abort();
    port = http_server_port(server);
}

static void on_close(uv_handle_t *h)
{
    ((struct client *)h->data)->closed = 1;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char scratch[65536];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_write(uv_write_t *req, int status)
{
    struct client *c = req->data;
    if (status == 0 && uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    if (status != 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    c->wr.data = c;
    if (c->data.len == 0) {
        on_write(&c->wr, 0);
        return;
    }
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &c->data, 1, on_write) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c;
    struct sockaddr_in sa;

    if (server == NULL)
        setup();
    memset(&c, 0, sizeof(c));
    c.data = uv_buf_init((char *)data, (unsigned)size);
    uv_tcp_init(&loop, &c.tcp);
    c.tcp.data = &c;
    c.conn.data = &c;
    uv_ip4_addr("127.0.0.1", port, &sa);
    if (uv_tcp_connect(&c.conn, &c.tcp, (struct sockaddr *)&sa, on_connect) != 0)
        abort();
    while (!c.closed)
        uv_run(&loop, UV_RUN_ONCE);
    /* Let the server finish closing its side before the next input. */
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
