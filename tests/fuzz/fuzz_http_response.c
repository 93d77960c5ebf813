/* fuzz_http_response.c -- bytes from an origin to our HTTP/1.1 client (what
 * the node reads from peers and etcd's gateway, and the edge from regions).
 *
 * A raw loopback listener answers each connection with the input and closes;
 * our client makes one GET, alternately buffered and streamed, and must
 * finish with a response or a clean error, never a crash or a hang. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "fuzz.h"
#include "http/http.h"

static uv_loop_t loop;
static uv_tcp_t listener;
static struct http_client *client;
static int port;
static uv_buf_t answer;
static unsigned n_calls;

struct peer {
    uv_tcp_t tcp;
    uv_write_t wr;
};

static void peer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void peer_written(uv_write_t *req, int status)
{
    struct peer *p = req->data;
    (void)status;
    uv_close((uv_handle_t *)&p->tcp, peer_closed);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct peer *p;

    if (status != 0)
        return;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        abort();
    uv_tcp_init(&loop, &p->tcp);
    p->tcp.data = p;
    p->wr.data = p;
    if (uv_accept(l, (uv_stream_t *)&p->tcp) != 0 ||
        uv_write(&p->wr, (uv_stream_t *)&p->tcp, &answer, 1, peer_written) != 0)
        uv_close((uv_handle_t *)&p->tcp, peer_closed);
}

static void setup(void)
{
    struct http_client_opts o;
    struct sockaddr_in sa;
    int len = sizeof(sa);

    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&sa, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 128, on_connection) != 0 ||
        uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len) != 0)
        abort();
    port = ntohs(sa.sin_port);
    http_client_opts_default(&o);
    o.max_response_bytes = 8192;
    o.max_idle_per_host = 0; /* every call a fresh connection: one answer each */
    if (http_client_new(&loop, &o, &client) != 0)
        abort();
}

static void on_body(struct http_call *call, const char *p, size_t n, void *data)
{
    (void)call;
    (void)p;
    (void)n;
    (void)data;
}

static void on_response(struct http_call *call, int rc, const struct http_response *resp,
                        void *data)
{
    (void)call;
    if ((rc == 0) != (resp != NULL))
        abort(); /* the documented contract */
    *(int *)data = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_client_request req;
    int done = 0;

    if (client == NULL)
        setup();
    answer = uv_buf_init((char *)data, (unsigned)size);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.host = "127.0.0.1";
    req.port = port;
    req.path = "/";
    req.timeout_ms = 2000;
    req.on_body = (n_calls++ & 1) ? on_body : NULL;
    if (http_client_request(client, &req, on_response, &done, NULL) != 0)
        abort();
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
