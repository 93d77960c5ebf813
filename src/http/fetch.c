/* fetch.c -- http_fetch: one blocking request on a private loop, for
 * command-line tools and tests.  Built on the client in client.c. */
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "http_int.h"

/* Set once by main() or a test before any fetch; read by every fetch. */
static struct tls_ctx *fetch_tls;

void http_fetch_set_tls(struct tls_ctx *t)
{
    fetch_tls = t;
}

struct fetch {
    struct http_result *res;
    int done;
    int rc;
};

static void fetch_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct fetch *f = data;

    (void)call;
    f->done = 1;
    f->rc = rc;
    if (rc != 0)
        return;
    f->res->status = resp->status;
    for (size_t i = 0; i < resp->n_headers; i++)
        mr_buf_printf(&f->res->headers, "%s: %s\r\n", resp->headers[i].name,
                      resp->headers[i].value);
    mr_buf_append(&f->res->body, resp->body, resp->body_len);
}

void http_result_close(struct http_result *r)
{
    mr_buf_close(&r->headers);
    mr_buf_close(&r->body);
    r->status = 0;
}

int http_fetch(const char *method, const char *url, const char *headers, const char *body,
               size_t body_len, uint64_t timeout_ms, struct http_result *res, char *err)
{
    struct http_client_request req;
    struct http_client_opts copts;
    struct http_client *c = NULL;
    struct fetch f = {res, 0, 0};
    uv_loop_t loop;
    char *host = NULL, *path = NULL;
    int port = 0;
    int rc;

    res->status = 0;
    mr_buf_init(&res->headers);
    mr_buf_init(&res->body);
    rc = http_parse_url(url, &host, &port, &path, err);
    if (rc != 0)
        return rc;
    rc = uv_loop_init(&loop);
    if (rc != 0) {
        rc = mr_seterr(err, MR_EIO, "%s %s: event loop: %s", method, url, uv_strerror(rc));
        goto err_after_url;
    }
    http_client_opts_default(&copts);
    if (http_url_is_https(url)) {
        if (fetch_tls == NULL) {
            rc = mr_seterr(err, MR_ECONFIG, "%s %s: https needs a TLS client context", method,
                           url);
            goto err_after_loop;
        }
        copts.tls = fetch_tls;
    }
    rc = http_client_new(&loop, &copts, &c);
    if (rc != 0) {
        rc = mr_seterr(err, rc, "%s %s: %s", method, url, mr_strerror(rc));
        goto err_after_loop;
    }
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.host = host;
    req.port = port;
    req.path = path;
    req.headers = headers;
    req.body = body;
    req.body_len = body_len;
    req.timeout_ms = timeout_ms;
    rc = http_client_request(c, &req, fetch_cb, &f, NULL);
    if (rc != 0) {
        rc = mr_seterr(err, rc, "%s %s: %s", method, url, mr_strerror(rc));
        goto err_after_client;
    }
    /* The pool keeps the connection open after the answer, so the loop
     * would not end by itself: run until the callback, then free. */
    while (!f.done)
        uv_run(&loop, UV_RUN_ONCE);
    rc = f.rc;
    if (rc != 0) {
        mr_seterr(err, rc, "%s %s: %s", method, url, mr_strerror(rc));
        http_result_close(res);
    }

err_after_client:
    http_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
err_after_loop:
    if (uv_loop_close(&loop) != 0)
        mr_log_raw("http_fetch: loop still has handles\n");
err_after_url:
    mr_free(host);
    mr_free(path);
    return rc;
}
