/* client.c -- the HTTP/1.1 client: a keep-alive connection pool per
 * host:port, http-parser in response mode, whole or streamed bodies.
 *
 * Depends on libuv, http-parser, src/common and the transport in io.c.
 *
 * Objects and who holds whom:
 *
 *   http_client --+-- pools (one per host:port) -- idle cconns (LIFO)
 *                 +-- conns: every cconn, idle or busy, until closed
 *                 +-- calls: every call whose callback has not run
 *
 *   A call is attached to at most one cconn (call->conn / conn->call) while
 *   it is being sent or answered.  One request per connection at a time: we
 *   do not pipeline, so a failure is always attributable to one call.
 *
 * Lifetimes: every call owns a uv_timer (the timeout, and the way errors are
 * delivered from the loop rather than from inside http_client_request); a
 * call's memory goes in that timer's close callback, and not before a
 * pending getaddrinfo has called back.  A connection's memory goes in its
 * handle's close callback.  The client is freed when it is closing and no
 * call or connection memory remains (n_live == 0).  Because of that, user
 * callbacks may cancel calls, start calls or free the client from anywhere:
 * everything we still touch after calling out stays allocated, and we look
 * at the closing flags after each call-out.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "http_int.h"

#define container_of(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))

struct pool {
    struct pool *next;
    char *host;
    int port;
    struct cconn *idle;          /* most recently used first */
    size_t n_idle;
};

struct cconn {
    struct http__io io;
    struct http_client *c;
    struct pool *pool;
    struct cconn *prev, *next;   /* client's list of every connection */
    struct cconn *iprev, *inext; /* pool's idle list */
    struct http_call *call;      /* being served, or NULL */
    http_parser parser;
    uv_connect_t creq;
    struct http__write w;
    unsigned idle : 1;
    unsigned reused : 1;         /* served a call before this one */
    unsigned closing : 1;
    unsigned too_big : 1;        /* parser stopped on max_response_bytes */
    unsigned writing : 1;        /* request bytes still queued in libuv */
};

struct http_call {
    struct http_client *c;
    struct http_call *prev, *next;
    struct pool *pool;
    struct cconn *conn;
    http_response_cb cb;
    http_body_cb on_body;
    void *data;
    struct mr_buf out;           /* the request, serialised */
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    struct addrinfo *ai;         /* resolved addresses, freed with the call */
    struct addrinfo *ai_next;    /* the one being tried */
    struct sockaddr_storage addr;/* for a literal host */
    int refs;                    /* timer handle + getaddrinfo in flight */
    int deferred_rc;             /* error to report from the timer */
    /* the response */
    struct mr_buf strs;
    uint32_t *hoff;
    struct http_header *hdrs;
    size_t n_hdrs, cap_hdrs;
    int hstate;
    struct mr_buf body;
    unsigned done : 1;
    unsigned head_method : 1;
    unsigned literal : 1;
    unsigned resolving : 1;
    unsigned retried : 1;
    unsigned got_bytes : 1;      /* some response byte arrived on this attempt */
};

struct http_client {
    uv_loop_t *loop;
    struct http_client_opts opts;
    struct pool *pools;
    struct cconn *conns;
    struct http_call *calls;
    size_t n_live;               /* calls and connections not yet freed */
    unsigned closing : 1;
    char rbuf[HTTP__READ_BUF_LEN];
};

static void call_start(struct http_call *call, int allow_idle);
static void call_finish(struct http_call *call, int rc, const struct http_response *resp);
static void cconn_close(struct cconn *conn);

/* ---- client and pools --------------------------------------------------- */

static void client_maybe_free(struct http_client *c)
{
    struct pool *p;

    if (!c->closing || c->n_live > 0)
        return;
    while ((p = c->pools) != NULL) {
        c->pools = p->next;
        mr_free(p->host);
        mr_free(p);
    }
    mr_free((char *)c->opts.headers);
    mr_free(c);
}

static struct pool *pool_get(struct http_client *c, const char *host, int port)
{
    struct pool *p;

    for (p = c->pools; p != NULL; p = p->next)
        if (p->port == port && strcmp(p->host, host) == 0)
            return p;
    p = mr_calloc(1, sizeof(*p));
    p->host = mr_strdup(host);
    p->port = port;
    p->next = c->pools;
    c->pools = p;
    return p;
}

static void pool_remove(struct cconn *conn)
{
    struct pool *p = conn->pool;

    if (conn->iprev != NULL)
        conn->iprev->inext = conn->inext;
    else
        p->idle = conn->inext;
    if (conn->inext != NULL)
        conn->inext->iprev = conn->iprev;
    conn->iprev = conn->inext = NULL;
    conn->idle = 0;
    p->n_idle--;
}

/* Keep <conn> for the next call to its host, or close it. */
static void pool_put(struct cconn *conn)
{
    struct pool *p = conn->pool;

    if (conn->c->closing || p->n_idle >= conn->c->opts.max_idle_per_host) {
        cconn_close(conn);
        return;
    }
    conn->idle = 1;
    conn->reused = 1;
    conn->iprev = NULL;
    conn->inext = p->idle;
    if (p->idle != NULL)
        p->idle->iprev = conn;
    p->idle = conn;
    p->n_idle++;
}

/* ---- connections -------------------------------------------------------- */

static void cconn_close_cb(uv_handle_t *h)
{
    struct cconn *conn = ((struct http__io *)h->data)->owner;
    struct http_client *c = conn->c;

    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        c->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    mr_free(conn);
    c->n_live--;
    client_maybe_free(c);
}

/* Close <conn>; the call it served, if any, must have been detached. */
static void cconn_close(struct cconn *conn)
{
    if (conn->closing)
        return;
    conn->closing = 1;
    if (conn->idle)
        pool_remove(conn);
    if (conn->call != NULL) {
        conn->call->conn = NULL;
        conn->call = NULL;
    }
    http__io_close(&conn->io, cconn_close_cb);
}

static void cconn_on_data(struct http__io *io, const char *p, size_t n);
static void cconn_on_end(struct http__io *io, int uverr);

static struct cconn *cconn_new(struct http_client *c, struct pool *pool)
{
    struct cconn *conn = mr_calloc(1, sizeof(*conn));

    if (http__io_init(c->loop, &conn->io, conn, c->rbuf) != 0) {
        mr_free(conn);
        return NULL;
    }
    conn->io.on_data = cconn_on_data;
    conn->io.on_end = cconn_on_end;
    conn->c = c;
    conn->pool = pool;
    conn->next = c->conns;
    if (c->conns != NULL)
        c->conns->prev = conn;
    c->conns = conn;
    c->n_live++;
    return conn;
}

/* The connection broke while serving <call>, before a whole response came. */
static void cconn_lost(struct cconn *conn, int uverr)
{
    struct http_call *call = conn->call;
    int reused = conn->reused;

    mr_log(MR_LOG_DEBUG, "http", "connection to %s:%d lost: %s", conn->pool->host,
           conn->pool->port, uv_strerror(uverr));
    cconn_close(conn);
    /* An idle connection the server closed (idle timeout, restart) looks
     * healthy until we use it.  If nothing came back, retry once on a fresh
     * connection.  The server may have received and acted on the first copy:
     * see http_client_request in http.h. */
    if (reused && !call->got_bytes && !call->retried && !call->c->closing) {
        call->retried = 1;
        call_start(call, 0);
        return;
    }
    call_finish(call, MR_ECLOSED, NULL);
}

static void cconn_write_cb(struct http__write *w, int status)
{
    struct cconn *conn = container_of(w, struct cconn, w);

    conn->writing = 0;
    /* A failed write is left to the read side: a server that refuses a
     * request (413, then close) may have answered already, and that answer
     * is in our receive buffer.  EOF or a reset will follow the failure. */
    if (status != 0 && !conn->closing)
        mr_log(MR_LOG_DEBUG, "http", "write to %s:%d: %s", conn->pool->host, conn->pool->port,
               uv_strerror(status));
}

static const http_parser_settings resp_settings;

/* Attach <call> to a connected <conn> and send the request. */
static void cconn_send(struct cconn *conn, struct http_call *call)
{
    uv_buf_t b = uv_buf_init(call->out.data, (unsigned int)call->out.len);
    int rc;

    conn->call = call;
    call->conn = conn;
    call->got_bytes = 0;
    http_parser_init(&conn->parser, HTTP_RESPONSE);
    conn->parser.data = conn;
    rc = http__io_write(&conn->io, &conn->w, &b, 1, cconn_write_cb);
    if (rc == 0)
        conn->writing = 1;
    else if (rc < 0)
        cconn_lost(conn, rc);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cconn *conn = container_of(req, struct cconn, creq);
    struct http_call *call = conn->call;
    int rc;

    if (conn->closing)
        return;
    if (status != 0) {
        mr_log(MR_LOG_DEBUG, "http", "connect to %s:%d: %s", conn->pool->host, conn->pool->port,
               uv_strerror(status));
        cconn_close(conn);
        /* Next resolved address ("localhost" is ::1 and 127.0.0.1). */
        if (call->ai_next != NULL && call->ai_next->ai_next != NULL) {
            call->ai_next = call->ai_next->ai_next;
            call_start(call, 0);
            return;
        }
        /* After a reused connection failed, the first copy may have reached
         * the server: "never left" (MR_ECONN) would no longer be true. */
        call_finish(call, call->retried ? MR_ECLOSED : MR_ECONN, NULL);
        return;
    }
    uv_tcp_nodelay(&conn->io.tcp, 1);
    rc = http__io_read_start(&conn->io);
    if (rc == 0 && conn->c->opts.tls != NULL) {
        char err[MR_ERRMSG_LEN];

        /* The request waits inside the engine until the handshake is done:
         * cconn_send below works as on a plain connection. */
        rc = http__io_tls_start(&conn->io, conn->c->opts.tls, conn->pool->host, NULL, err);
        if (rc != 0)
            mr_log(MR_LOG_WARN, "http", "%s", err);
    }
    if (rc != 0) {
        cconn_close(conn);
        call_finish(call, MR_ECONN, NULL);
        return;
    }
    cconn_send(conn, call);
}

/* ---- response parsing --------------------------------------------------- */

static void resp_reset(struct http_call *call)
{
    mr_buf_reset(&call->strs);
    mr_buf_reset(&call->body);
    call->n_hdrs = 0;
    call->hstate = 0;
}

static int resp_append(struct cconn *conn, const char *p, size_t n)
{
    struct http_call *call = conn->call;

    if (call->strs.len + call->body.len + n > conn->c->opts.max_response_bytes) {
        conn->too_big = 1;
        return -1;
    }
    mr_buf_append(&call->strs, p, n);
    return 0;
}

static int resp_on_message_begin(http_parser *p)
{
    struct cconn *conn = p->data;

    resp_reset(conn->call);
    return 0;
}

static int resp_on_header_field(http_parser *p, const char *at, size_t n)
{
    struct cconn *conn = p->data;
    struct http_call *call = conn->call;

    if (call->hstate != 1) {
        if (call->n_hdrs == call->cap_hdrs) {
            call->cap_hdrs = call->cap_hdrs ? 2 * call->cap_hdrs : 16;
            call->hoff = mr_realloc(call->hoff, 2 * call->cap_hdrs * sizeof(*call->hoff));
            call->hdrs = mr_realloc(call->hdrs, call->cap_hdrs * sizeof(*call->hdrs));
        }
        if (call->n_hdrs > 0)
            mr_buf_putc(&call->strs, '\0');
        call->hoff[2 * call->n_hdrs] = (uint32_t)call->strs.len;
        call->hoff[2 * call->n_hdrs + 1] = UINT32_MAX;
        call->n_hdrs++;
        call->hstate = 1;
    }
    return resp_append(conn, at, n);
}

static int resp_on_header_value(http_parser *p, const char *at, size_t n)
{
    struct cconn *conn = p->data;
    struct http_call *call = conn->call;

    if (call->hstate != 2) {
        mr_buf_putc(&call->strs, '\0');
        call->hoff[2 * (call->n_hdrs - 1) + 1] = (uint32_t)call->strs.len;
        call->hstate = 2;
    }
    return resp_append(conn, at, n);
}

static int resp_on_headers_complete(http_parser *p)
{
    struct cconn *conn = p->data;
    struct http_call *call = conn->call;

    mr_buf_putc(&call->strs, '\0');
    for (size_t i = 0; i < call->n_hdrs; i++) {
        uint32_t v = call->hoff[2 * i + 1];

        call->hdrs[i].name = call->strs.data + call->hoff[2 * i];
        call->hdrs[i].value = v == UINT32_MAX ? (char *)"" : call->strs.data + v;
    }
    /* For a stream, timeout_ms bounds only the wait for the head. */
    if (call->on_body != NULL && p->status_code >= 200 && call->deferred_rc == 0)
        uv_timer_stop(&call->timer);
    /* RFC 9110 9.3.2: the answer to HEAD has no content whatever its
     * headers say; 1 tells http-parser so. */
    return call->head_method ? 1 : 0;
}

static int resp_on_body(http_parser *p, const char *at, size_t n)
{
    struct cconn *conn = p->data;
    struct http_call *call = conn->call;

    if (call->on_body != NULL) {
        call->on_body(call, at, n, call->data);
        /* The callback may have cancelled the call or freed the client:
         * both close this connection.  Stop parsing. */
        return conn->closing || conn->call != call ? -1 : 0;
    }
    if (call->strs.len + call->body.len + n > conn->c->opts.max_response_bytes) {
        conn->too_big = 1;
        return -1;
    }
    mr_buf_append(&call->body, at, n);
    return 0;
}

static int resp_on_message_complete(http_parser *p)
{
    struct cconn *conn = p->data;
    struct http_call *call = conn->call;

    /* An interim 1xx answer (RFC 9110 15.2) precedes the real one. */
    if (p->status_code / 100 == 1 && p->status_code != 101) {
        resp_reset(call);
        return 0;
    }
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_message_begin = resp_on_message_begin,
    .on_header_field = resp_on_header_field,
    .on_header_value = resp_on_header_value,
    .on_headers_complete = resp_on_headers_complete,
    .on_body = resp_on_body,
    .on_message_complete = resp_on_message_complete,
};

/* A whole response arrived for conn->call. */
static void cconn_complete(struct cconn *conn, int leftover)
{
    struct http_call *call = conn->call;
    struct http_response resp;
    int keep;

    /* Bytes after the response, when we sent one request, are a server bug:
     * the connection is not reusable. */
    keep = http_should_keep_alive(&conn->parser) && !leftover && !conn->parser.upgrade &&
           !conn->writing;   /* answered before it read all we sent */
    http_parser_pause(&conn->parser, 0);
    conn->call = NULL;
    call->conn = NULL;
    /* Pool the connection before the callback, so that a call started from
     * it can reuse this connection. */
    if (keep)
        pool_put(conn);
    else
        cconn_close(conn);
    resp.status = conn->parser.status_code;
    resp.headers = call->hdrs;
    resp.n_headers = call->n_hdrs;
    if (call->on_body != NULL) {
        resp.body = NULL;
        resp.body_len = 0;
    } else {
        resp.body = call->body.data != NULL ? call->body.data : "";
        resp.body_len = call->body.len;
    }
    call_finish(call, 0, &resp);
}

static void cconn_on_data(struct http__io *io, const char *p, size_t n)
{
    struct cconn *conn = io->owner;
    struct http_call *call = conn->call;
    size_t used;
    enum http_errno e;

    if (conn->closing)
        return;
    if (call == NULL) {
        /* Nothing asked: an idle connection has no business receiving. */
        cconn_close(conn);
        return;
    }
    call->got_bytes = 1;
    used = http_parser_execute(&conn->parser, &resp_settings, p, n);
    if (conn->closing)
        return;
    e = HTTP_PARSER_ERRNO(&conn->parser);
    if (e == HPE_PAUSED) {
        cconn_complete(conn, used < n);
        return;
    }
    if (e != HPE_OK) {
        mr_log(MR_LOG_DEBUG, "http", "bad response from %s:%d: %s", conn->pool->host,
               conn->pool->port,
               conn->too_big ? "larger than max_response_bytes" : http_errno_description(e));
        cconn_close(conn);
        call_finish(call, MR_EPROTO, NULL);
    }
}

static void cconn_on_end(struct http__io *io, int uverr)
{
    struct cconn *conn = io->owner;
    struct http_call *call = conn->call;

    if (conn->closing)
        return;
    if (call == NULL) {
        /* The server closed an idle connection: forget it. */
        cconn_close(conn);
        return;
    }
    if (uverr == UV_EPROTO && http__io_tls_handshaking(&conn->io)) {
        /* We refused the server (the engine logged why): the request never
         * left, and a retry would meet the same certificate. */
        cconn_close(conn);
        call_finish(call, MR_ECONN, NULL);
        return;
    }
    if (http__io_tls_handshaking(&conn->io)) {
        /* Closed or reset before the handshake finished (a proxy in front
         * of a dead server accepts, then closes: the wan's route to a
         * killed region).  The request waits inside the engine until the
         * handshake is done, so it never left on this connection: MR_ECONN,
         * which lets callers such as the edge send even a POST elsewhere.
         * Unless this is already the retry after a reused connection
         * failed: the first copy may have arrived (http.h). */
        cconn_close(conn);
        call_finish(call, call->retried ? MR_ECLOSED : MR_ECONN, NULL);
        return;
    }
    if (uverr == UV_EOF && call->got_bytes) {
        /* A response without a length ends with the connection. */
        http_parser_execute(&conn->parser, &resp_settings, NULL, 0);
        if (conn->closing)
            return;
        if (HTTP_PARSER_ERRNO(&conn->parser) == HPE_PAUSED) {
            cconn_complete(conn, 0);
            return;
        }
    }
    cconn_lost(conn, uverr);
}

/* ---- calls -------------------------------------------------------------- */

static void call_free_cb(uv_handle_t *h);

static void call_release(struct http_call *call)
{
    struct http_client *c = call->c;

    if (--call->refs > 0)
        return;
    if (call->ai != NULL)
        uv_freeaddrinfo(call->ai);
    mr_buf_close(&call->out);
    mr_buf_close(&call->strs);
    mr_buf_close(&call->body);
    mr_free(call->hoff);
    mr_free(call->hdrs);
    mr_free(call);
    c->n_live--;
    client_maybe_free(c);
}

static void call_free_cb(uv_handle_t *h)
{
    call_release(h->data);
}

static void call_timer_cb(uv_timer_t *t)
{
    struct http_call *call = t->data;

    call_finish(call, call->deferred_rc != 0 ? call->deferred_rc : MR_ETIMEDOUT, NULL);
}

/* Report <rc> from the loop, not from the current stack: used where the
 * caller may be http_client_request itself, whose callback must not run
 * before it returns. */
static void call_fail_soon(struct http_call *call, int rc)
{
    call->deferred_rc = rc;
    uv_timer_start(&call->timer, call_timer_cb, 0, 0);
}

/* Run the callback once, detach from everything, and schedule the free. */
static void call_finish(struct http_call *call, int rc, const struct http_response *resp)
{
    struct http_client *c = call->c;

    if (call->done)
        return;
    call->done = 1;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    if (call->conn != NULL) {
        /* Mid-exchange: the connection's state is unknown, it cannot be
         * reused. */
        cconn_close(call->conn);
    }
    if (call->resolving)
        uv_cancel((uv_req_t *)&call->gai);
    uv_timer_stop(&call->timer);
    call->cb(call, rc, rc == 0 ? resp : NULL, call->data);
    uv_close((uv_handle_t *)&call->timer, call_free_cb);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct http_call *call = container_of(req, struct http_call, gai);

    call->resolving = 0;
    call->ai = res;
    call->ai_next = res;
    if (call->done) {
        call_release(call);
        return;
    }
    call->refs--;   /* cannot reach 0: the timer is open while not done */
    if (status != 0) {
        mr_log(MR_LOG_DEBUG, "http", "resolve %s: %s", call->pool->host, uv_strerror(status));
        call_finish(call, MR_ECONN, NULL);
        return;
    }
    call_start(call, 0);
}

static void call_connect(struct http_call *call, const struct sockaddr *sa)
{
    struct cconn *conn = cconn_new(call->c, call->pool);
    int rc;

    if (conn == NULL) {
        call_fail_soon(call, call->retried ? MR_ECLOSED : MR_ECONN);
        return;
    }
    conn->call = call;
    call->conn = conn;
    rc = uv_tcp_connect(&conn->creq, &conn->io.tcp, sa, on_connect);
    if (rc != 0) {
        mr_log(MR_LOG_DEBUG, "http", "connect to %s:%d: %s", call->pool->host, call->pool->port,
               uv_strerror(rc));
        cconn_close(conn);
        call_fail_soon(call, call->retried ? MR_ECLOSED : MR_ECONN);
    }
}

/* Get <call> onto a connection: an idle one if allowed and available, else
 * a new one (resolving the host first when it is a name). */
static void call_start(struct http_call *call, int allow_idle)
{
    struct pool *p = call->pool;
    struct addrinfo hints;
    char port_s[16];
    int rc;

    if (allow_idle && p->idle != NULL) {
        struct cconn *conn = p->idle;

        pool_remove(conn);
        cconn_send(conn, call);
        return;
    }
    if (call->literal) {
        call_connect(call, (struct sockaddr *)&call->addr);
        return;
    }
    /* Skip addresses of families we cannot connect to. */
    while (call->ai_next != NULL && call->ai_next->ai_family != AF_INET &&
           call->ai_next->ai_family != AF_INET6)
        call->ai_next = call->ai_next->ai_next;
    if (call->ai_next != NULL) {
        call_connect(call, call->ai_next->ai_addr);
        return;
    }
    if (call->ai != NULL) {
        /* Resolved before, and every address failed. */
        call_fail_soon(call, MR_ECONN);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port_s, sizeof(port_s), "%d", p->port);
    rc = uv_getaddrinfo(call->c->loop, &call->gai, on_resolved, p->host, port_s, &hints);
    if (rc != 0) {
        call_fail_soon(call, MR_ECONN);
        return;
    }
    call->resolving = 1;
    call->refs++;
}

static int needs_length(const char *method)
{
    return strcasecmp(method, "POST") == 0 || strcasecmp(method, "PUT") == 0 ||
           strcasecmp(method, "PATCH") == 0;
}

static void serialise(struct mr_buf *b, const struct http_client_request *req,
                      const char *client_headers)
{
    int v6 = strchr(req->host, ':') != NULL;

    mr_buf_reserve(b, 128 + strlen(req->path) + strlen(req->host) +
                          (req->headers ? strlen(req->headers) : 0) + req->body_len);
    mr_buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\n", req->method, req->path,
                  v6 ? "[" : "", req->host, v6 ? "]" : "", req->port);
    if (client_headers != NULL)
        mr_buf_puts(b, client_headers);
    if (req->headers != NULL)
        mr_buf_puts(b, req->headers);
    /* RFC 9110 8.6: a request with content, or a method that defines one,
     * says how long it is. */
    if (req->body_len > 0 || needs_length(req->method))
        mr_buf_printf(b, "Content-Length: %zu\r\n", req->body_len);
    mr_buf_append(b, "\r\n", 2);
    if (req->body_len > 0)
        mr_buf_append(b, req->body, req->body_len);
}

/* ---- public API --------------------------------------------------------- */

void http_client_opts_default(struct http_client_opts *o)
{
    o->max_idle_per_host = HTTP_DEFAULT_CLIENT_MAX_IDLE;
    o->max_response_bytes = HTTP_DEFAULT_CLIENT_MAX_RESPONSE;
    o->tls = NULL;
    o->headers = NULL;
}

int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts,
                    struct http_client **out)
{
    struct http_client *c;

    if (loop == NULL || out == NULL)
        return MR_EINVAL;
    http__ignore_sigpipe();
    c = mr_calloc(1, sizeof(*c));
    c->loop = loop;
    if (opts != NULL)
        c->opts = *opts;
    else
        http_client_opts_default(&c->opts);
    if (c->opts.headers != NULL)
        c->opts.headers = mr_strdup(c->opts.headers);
    *out = c;
    return 0;
}

void http_client_set_headers(struct http_client *c, const char *headers)
{
    mr_free((char *)c->opts.headers);
    c->opts.headers = headers ? mr_strdup(headers) : NULL;
}

void http_client_free(struct http_client *c)
{
    struct cconn *conn;

    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    /* Callbacks run here may start calls (refused: closing) or cancel
     * others (finished already: no-op). */
    while (c->calls != NULL)
        call_finish(c->calls, MR_ECLOSED, NULL);
    for (conn = c->conns; conn != NULL; conn = conn->next)
        cconn_close(conn);
    client_maybe_free(c);
}

int http_client_request(struct http_client *c, const struct http_client_request *req,
                        http_response_cb cb, void *data, struct http_call **out)
{
    struct http_call *call;

    if (c == NULL || req == NULL || cb == NULL || c->closing || req->method == NULL ||
        req->method[0] == '\0' || req->host == NULL || req->host[0] == '\0' ||
        req->path == NULL || req->path[0] == '\0' || req->port <= 0 || req->port > 65535 ||
        (req->body_len > 0 && req->body == NULL))
        return MR_EINVAL;
    call = mr_calloc(1, sizeof(*call));
    call->c = c;
    call->cb = cb;
    call->on_body = req->on_body;
    call->data = data;
    call->head_method = strcasecmp(req->method, "HEAD") == 0;
    call->pool = pool_get(c, req->host, req->port);
    if (uv_ip4_addr(req->host, req->port, (struct sockaddr_in *)&call->addr) == 0 ||
        uv_ip6_addr(req->host, req->port, (struct sockaddr_in6 *)&call->addr) == 0)
        call->literal = 1;
    serialise(&call->out, req, c->opts.headers);
    uv_timer_init(c->loop, &call->timer);
    call->timer.data = call;
    call->refs = 1;
    c->n_live++;
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    if (req->timeout_ms > 0)
        uv_timer_start(&call->timer, call_timer_cb, req->timeout_ms, 0);
    if (out != NULL)
        *out = call;
    call_start(call, 1);
    return 0;
}

void http_call_cancel(struct http_call *call)
{
    call_finish(call, MR_ECLOSED, NULL);
}
