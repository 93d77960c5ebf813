/* h2.c -- gRPC calls over one HTTP/2 cleartext connection per etcd endpoint.
 *
 * nghttp2 (Debian libnghttp2) does the HTTP/2 framing, HPACK and flow
 * control and no I/O: bytes from uv_read go to nghttp2_session_mem_recv, and
 * what nghttp2_session_mem_send produces goes to uv_write.  Everything runs
 * on the caller's libuv loop.  The connection is opened with prior knowledge
 * (RFC 9113 3.3: the client preface, no Upgrade), which etcd's client port
 * accepts next to HTTP/1.1.
 *
 * TLS (https:// endpoints): a src/tls engine sits between the socket and
 * nghttp2, offering ALPN "h2".  nghttp2's frames are encrypted in link_write
 * (held by the engine until the handshake is done), and what the socket
 * reads is decrypted in link_read before nghttp2 sees it.  The ciphertext
 * takes the same try-write-then-queue path plain bytes take.
 *
 * Objects:
 *   struct etcd__h2    one endpoint: its calls, a timer for their deadlines,
 *                      the current link (NULL until the first call and after
 *                      a loss).
 *   struct link        one TCP connection and its nghttp2 session.  A link
 *                      that fails ends its calls and closes; the next call
 *                      opens a new one.  After a GOAWAY the link is detached
 *                      (new calls open a new link) and finishes its streams.
 *   struct etcd__gcall one stream: the framed request, the bytes received
 *                      and not yet a whole message, status from the trailers.
 *
 * Re-entrancy: nghttp2 must not be re-entered from its own callbacks, and our
 * callbacks run user code that may start, cancel or free anything.  So
 *   - link_flush called while inside nghttp2 only sets want_flush; the
 *     outermost caller loops until nothing is wanted;
 *   - a call ended while its on_message runs is ended right after it returns;
 *   - links and endpoints are freed only from libuv close callbacks.
 */
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../tls/tls.h"
#include "etcd_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define LINK_READ_BUF (64 * 1024)
/* Windows we grant etcd: a watch may deliver a burst of events faster than
 * the default 64 KiB window lets through in one round trip. */
#define STREAM_WINDOW (4 * 1024 * 1024)
#define CONN_WINDOW (16 * 1024 * 1024)

enum link_state { LINK_CONNECTING, LINK_READY, LINK_DEAD };

struct link {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct etcd__h2 *h;       /* NULL once the endpoint is freed */
    nghttp2_session *ng;
    struct tls_conn *tls;     /* NULL: cleartext */
    enum link_state state;
    int in_ng;                /* inside nghttp2_session_mem_recv/mem_send */
    int want_flush;
    int64_t last_recv_ms;
    struct link *prev, *next; /* in h->links */
    char rbuf[LINK_READ_BUF];
};

struct etcd__gcall {
    struct etcd__h2 *h;
    struct link *link;
    int32_t stream_id;        /* 0 until submitted, and after the stream closed */
    const char *path;
    uint8_t *out;
    size_t out_len, out_off;
    int keep_open;
    uint64_t timeout_ms;
    int64_t deadline_ms;      /* mr_now_ms() time; 0 = none */
    struct mr_buf in;
    int http_status;
    int grpc_status;          /* -1 until received */
    char grpc_message[MR_ERRMSG_LEN];
    int in_msg;               /* on_message running */
    int ending;               /* end decided; deferred while in_msg or pending */
    int end_rc, end_status;
    char end_msg[MR_ERRMSG_LEN];
    etcd__gcall_msg_cb on_message;
    etcd__gcall_end_cb on_end;
    void *data;
    struct etcd__gcall *prev, *next;
};

struct etcd__h2 {
    uv_loop_t *loop;
    char *host;
    char *authority;
    int port;
    struct tls_ctx *tls;      /* NULL: h2c; not owned */
    struct link *link;        /* current link, or NULL */
    struct link *links;       /* every open link, current or draining */
    struct etcd__gcall *calls;
    uv_timer_t timer;
    int64_t timer_at;         /* ms the timer fires at; 0 = stopped */
    int freeing;
};

static void link_flush(struct link *l);
static void link_fail(struct link *l, int rc, const char *why);
static void arm_timer(struct etcd__h2 *h);

/* ---- calls ---------------------------------------------------------------- */

static void call_free(struct etcd__gcall *c)
{
    mr_buf_close(&c->in);
    mr_free(c->out);
    mr_free(c);
}

/* Report the end of <c> and free it, unless its on_message is running (then
 * the data callback finishes it once on_message returns). */
static void call_finish(struct etcd__gcall *c)
{
    struct etcd__h2 *h = c->h;

    if (c->in_msg)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->stream_id != 0 && c->link) {
        /* Make sure nghttp2 never hands us this call again (the session
         * outlives a dead link until its close callback), and tell etcd
         * when we end a stream it still has open. */
        nghttp2_session_set_stream_user_data(c->link->ng, c->stream_id, NULL);
        if (c->link->state != LINK_DEAD) {
            nghttp2_submit_rst_stream(c->link->ng, NGHTTP2_FLAG_NONE, c->stream_id,
                                      NGHTTP2_CANCEL);
            link_flush(c->link);
        }
    }
    c->on_end(c, c->end_rc, c->end_status, c->end_msg, c->data);
    call_free(c);
}

/* Decide the end of <c> (first decision wins) and finish it now if possible. */
static void call_end(struct etcd__gcall *c, int rc, int status, const char *msg)
{
    if (c->ending)
        return;
    c->ending = 1;
    c->end_rc = rc;
    c->end_status = status;
    snprintf(c->end_msg, sizeof(c->end_msg), "%s", msg ? msg : "");
    call_finish(c);
}

/* ---- nghttp2 callbacks ----------------------------------------------------- */

static ssize_t read_request(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct etcd__gcall *c = nghttp2_session_get_stream_user_data(ng, stream_id);
    size_t n;

    (void)src;
    (void)user;
    if (c == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    n = c->out_len - c->out_off;
    if (n > len)
        n = len;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    if (c->out_off == c->out_len) {
        if (!c->keep_open)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED; /* the stream stays open, nothing more to send */
    }
    return (ssize_t)n;
}

/* grpc-message is percent-encoded (gRPC over HTTP2, "Responses"). */
static void percent_decode(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {(char)s[i + 1], (char)s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0') {
                dst[o++] = (char)v;
                i += 2;
                continue;
            }
        }
        dst[o++] = (char)s[i];
    }
    dst[o] = '\0';
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct etcd__gcall *c;
    char num[16];

    (void)flags;
    if (((struct link *)user)->state == LINK_DEAD || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    c = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (c == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        snprintf(num, sizeof(num), "%.*s", (int)(valuelen < 15 ? valuelen : 15), value);
        c->http_status = atoi(num);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        snprintf(num, sizeof(num), "%.*s", (int)(valuelen < 15 ? valuelen : 15), value);
        c->grpc_status = atoi(num);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        percent_decode(c->grpc_message, sizeof(c->grpc_message), value, valuelen);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct link *l = user;
    struct etcd__gcall *c;

    if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* Streams above last_stream_id are refused (closed with
         * REFUSED_STREAM, which our callers retry); the rest finish here.
         * New calls go to a new connection. */
        if (l->h && l->h->link == l)
            l->h->link = NULL;
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        c = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        /* A stream's timeout covers its answer's head: a watch then lives on. */
        if (c && c->keep_open)
            c->deadline_ms = 0;
    }
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user)
{
    struct etcd__gcall *c = nghttp2_session_get_stream_user_data(ng, stream_id);
    struct link *l = user;
    size_t off = 0;
    char err[MR_ERRMSG_LEN];

    (void)flags;
    if (c == NULL || c->ending || l->state == LINK_DEAD)
        return 0;
    /* The common case, whole messages in one chunk, goes without a copy. */
    if (c->in.len)
        mr_buf_append(&c->in, data, len);
    for (;;) {
        const uint8_t *p = c->in.len ? (const uint8_t *)c->in.data : data;
        size_t n = c->in.len ? c->in.len : len;
        const uint8_t *msg;
        size_t msg_len, used;
        int rc = etcd__grpc_frame_next(p + off, n - off, ETCD__GRPC_MAX_MSG, &msg, &msg_len, &used,
                                       err);

        if (rc < 0) {
            call_end(c, MR_EPROTO, 0, err);
            return 0;
        }
        if (rc == 0) {
            if (c->in.len) {
                mr_buf_consume(&c->in, off);
            } else if (off < n) {
                mr_buf_append(&c->in, p + off, n - off);
            }
            return 0;
        }
        off += used;
        c->in_msg = 1;
        c->on_message(c, msg, msg_len, c->data);
        c->in_msg = 0;
        if (c->ending) {
            call_finish(c);
            return 0;
        }
        if (l->state == LINK_DEAD)
            return 0;
    }
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user)
{
    struct etcd__gcall *c = nghttp2_session_get_stream_user_data(ng, stream_id);
    char msg[MR_ERRMSG_LEN];

    (void)user;
    if (c == NULL)
        return 0;
    c->stream_id = 0;
    if (error_code != NGHTTP2_NO_ERROR) {
        snprintf(msg, sizeof(msg), "stream reset by etcd: %s", nghttp2_http2_strerror(error_code));
        call_end(c, MR_ECLOSED, 0, msg);
    } else if (c->http_status != 200) {
        snprintf(msg, sizeof(msg), "HTTP status %d, not a gRPC answer", c->http_status);
        call_end(c, MR_EPROTO, 0, msg);
    } else if (c->grpc_status < 0) {
        call_end(c, MR_EPROTO, 0, "stream ended without grpc-status");
    } else if (c->in.len && c->grpc_status == 0) {
        snprintf(msg, sizeof(msg), "stream ended inside a message (%zu bytes left)", c->in.len);
        call_end(c, MR_EPROTO, 0, msg);
    } else {
        call_end(c, 0, c->grpc_status, c->grpc_message);
    }
    return 0;
}

/* ---- link: socket I/O --------------------------------------------------------- */

struct wreq {
    uv_write_t req;
    size_t len;
    char data[];
};

static void write_done(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct link *l = container_of(req->handle, struct link, tcp);

    mr_free(w);
    if (status != 0 && status != UV_ECANCELED && l->state != LINK_DEAD)
        link_fail(l, MR_ECLOSED, uv_strerror(status));
}

/* Write <p>/<n> to the socket: at once when it takes it, else queued
 * (copied). */
static int raw_write(struct link *l, const uint8_t *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned int)n);
    struct wreq *w;
    int done = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);

    if (done < 0 && done != UV_EAGAIN)
        return done;
    if (done < 0)
        done = 0;
    if ((size_t)done == n)
        return 0;
    w = mr_malloc(sizeof(*w) + n - (size_t)done);
    w->len = n - (size_t)done;
    memcpy(w->data, p + done, w->len);
    w->req.data = w;
    b = uv_buf_init(w->data, (unsigned int)w->len);
    done = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, write_done);
    if (done != 0)
        mr_free(w);
    return done;
}

/* Send the ciphertext the TLS engine has made. */
static int tls_send(struct link *l)
{
    uint8_t buf[16 * 1024];
    size_t n;
    int rc;

    while ((n = tls_conn_take(l->tls, buf, sizeof(buf))) > 0) {
        rc = raw_write(l, buf, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Write <p>/<n> of HTTP/2 bytes: through the TLS engine if there is one. */
static int link_write(struct link *l, const uint8_t *p, size_t n)
{
    if (l->tls == NULL)
        return raw_write(l, p, n);
    if (tls_conn_write(l->tls, p, n) != 0)
        return UV_EPROTO;
    return tls_send(l);
}

static void link_closed(uv_handle_t *hd)
{
    struct link *l = container_of((uv_tcp_t *)hd, struct link, tcp);

    tls_conn_free(l->tls);
    nghttp2_session_del(l->ng);
    mr_free(l);
}

static void link_unlink(struct link *l)
{
    struct etcd__h2 *h = l->h;

    if (h == NULL)
        return;
    if (h->link == l)
        h->link = NULL;
    if (l->prev)
        l->prev->next = l->next;
    else
        h->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->h = NULL;
}

/* End every call on <l> with <rc> and close it. */
static void link_fail(struct link *l, int rc, const char *why)
{
    struct etcd__h2 *h = l->h;

    if (l->state == LINK_DEAD)
        return;
    l->state = LINK_DEAD;
    link_unlink(l);
    uv_close((uv_handle_t *)&l->tcp, link_closed);
    if (h == NULL)
        return;
    /* Restart from the head after each end: user code may change the list. */
    for (;;) {
        struct etcd__gcall *c = h->calls;

        while (c && (c->link != l || c->ending))
            c = c->next;
        if (c == NULL)
            break;
        call_end(c, rc, 0, why);
    }
}

/* Hand nghttp2's pending frames to the socket; loop while callbacks asked for
 * more.  Also closes a link that has nothing left to do after GOAWAY. */
static void link_flush(struct link *l)
{
    if (l->state != LINK_READY)
        return;
    if (l->in_ng) {
        l->want_flush = 1;
        return;
    }
    l->in_ng = 1;
    do {
        const uint8_t *p;
        ssize_t n;
        int rc;

        l->want_flush = 0;
        while (l->state == LINK_READY && (n = nghttp2_session_mem_send(l->ng, &p)) != 0) {
            if (n < 0) {
                l->in_ng = 0;
                link_fail(l, MR_EPROTO, nghttp2_strerror((int)n));
                return;
            }
            rc = link_write(l, p, (size_t)n);
            if (rc != 0) {
                l->in_ng = 0;
                link_fail(l, MR_ECLOSED, uv_strerror(rc));
                return;
            }
        }
    } while (l->want_flush && l->state == LINK_READY);
    l->in_ng = 0;
    if (l->state == LINK_READY && !nghttp2_session_want_read(l->ng) &&
        !nghttp2_session_want_write(l->ng))
        link_fail(l, MR_ECLOSED, "connection closed by etcd (GOAWAY)");
}

static void link_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct link *l = container_of((uv_tcp_t *)hd, struct link, tcp);

    (void)suggested;
    buf->base = l->rbuf;
    buf->len = sizeof(l->rbuf);
}

/* Give <n> bytes of HTTP/2 to nghttp2.  Returns 0, or -1 when the link
 * died. */
static int link_recv(struct link *l, const uint8_t *p, size_t n)
{
    ssize_t rv;

    l->in_ng = 1;
    rv = nghttp2_session_mem_recv(l->ng, p, n);
    l->in_ng = 0;
    if (l->state == LINK_DEAD)
        return -1;
    if (rv < 0) {
        char why[MR_ERRMSG_LEN];
        snprintf(why, sizeof(why), "bad HTTP/2 from etcd: %s", nghttp2_strerror((int)rv));
        link_fail(l, MR_EPROTO, why);
        return -1;
    }
    return 0;
}

/* <n> bytes of ciphertext are in l->rbuf. */
static void link_read_tls(struct link *l, size_t n)
{
    char why[MR_ERRMSG_LEN];
    ssize_t got;

    if (tls_conn_feed(l->tls, l->rbuf, n) != 0) {
        link_fail(l, MR_ECLOSED, "out of memory");
        return;
    }
    /* The engine copied the ciphertext: rbuf takes the plaintext. */
    while ((got = tls_conn_read(l->tls, l->rbuf, sizeof(l->rbuf))) > 0)
        if (link_recv(l, (const uint8_t *)l->rbuf, (size_t)got) != 0)
            return;
    /* Handshake flights, and the HTTP/2 bytes held until it finished. */
    if (tls_send(l) != 0 && got >= 0) {
        link_fail(l, MR_ECLOSED, "write to etcd failed");
        return;
    }
    if (got == TLS_EOF) {
        link_fail(l, MR_ECLOSED, "connection closed by etcd");
        return;
    }
    if (got < 0) {
        /* A refused handshake means the request never reached etcd. */
        snprintf(why, sizeof(why), "tls with %s: %s", l->h ? l->h->authority : "etcd",
                 tls_conn_error(l->tls));
        link_fail(l, tls_conn_handshake_done(l->tls) ? MR_EPROTO : MR_ECONN, why);
        return;
    }
    link_flush(l);
}

static void link_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = container_of((uv_tcp_t *)st, struct link, tcp);

    (void)buf;
    if (l->state == LINK_DEAD || nread == 0)
        return;
    if (nread < 0) {
        link_fail(l, MR_ECLOSED,
                  nread == UV_EOF ? "connection closed by etcd" : uv_strerror((int)nread));
        return;
    }
    l->last_recv_ms = mr_now_ms();
    if (l->tls != NULL) {
        link_read_tls(l, (size_t)nread);
        return;
    }
    if (link_recv(l, (const uint8_t *)l->rbuf, (size_t)nread) == 0)
        link_flush(l);
}

static int submit(struct link *l, struct etcd__gcall *c)
{
    char timeout[24] = "";
    nghttp2_data_provider prd;
    int32_t id;
    int with_timeout = !c->keep_open && c->timeout_ms != 0;

    /* Unary calls tell etcd their budget, so it can drop what we gave up on. */
    if (with_timeout)
        snprintf(timeout, sizeof(timeout), "%llum", (unsigned long long)c->timeout_ms);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nva[] = {
        NV(":method", "POST"),
        NV(":scheme", l->tls != NULL ? "https" : "http"),
        NV(":path", c->path),
        NV(":authority", c->h->authority),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        /* etcd fails a request fast, and ends a watch, on a member cut
         * off from its leader (the gateway's Grpc-Metadata-hasleader). */
        NV("hasleader", "true"),
        NV("grpc-timeout", timeout),
    };
#undef NV
    size_t n_nv = sizeof(nva) / sizeof(nva[0]) - (with_timeout ? 0 : 1);

    prd.source.ptr = c;
    prd.read_callback = read_request;
    id = nghttp2_submit_request(l->ng, NULL, nva, n_nv, &prd, c);
    if (id < 0)
        return id;
    c->stream_id = id;
    return 0;
}

static void link_connected(uv_connect_t *req, int status)
{
    struct link *l = container_of(req, struct link, connect);
    struct etcd__h2 *h = l->h;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    char why[MR_ERRMSG_LEN];
    int rc;

    if (l->state == LINK_DEAD)
        return; /* closed while connecting (UV_ECANCELED) */
    if (status != 0) {
        snprintf(why, sizeof(why), "connect to %s: %s", h ? h->authority : "etcd",
                 uv_strerror(status));
        link_fail(l, MR_ECONN, why);
        return;
    }
    l->state = LINK_READY;
    l->last_recv_ms = mr_now_ms();
    uv_tcp_nodelay(&l->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&l->tcp, link_alloc, link_read);
    if (rc == 0 && h != NULL && h->tls != NULL) {
        /* The client preface and settings below wait inside the engine
         * until the handshake is done; the ClientHello goes now. */
        rc = tls_conn_new(h->tls, h->authority, h->host, "h2", &l->tls, why);
        if (rc != 0) {
            link_fail(l, MR_ECONN, why);
            return;
        }
        rc = tls_send(l);
    }
    if (rc == 0)
        rc = nghttp2_submit_settings(l->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(l->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    if (rc != 0) {
        snprintf(why, sizeof(why), "start HTTP/2 to %s: %s", h ? h->authority : "etcd",
                 rc > -500 ? uv_strerror(rc) : nghttp2_strerror(rc));
        link_fail(l, MR_ECONN, why);
        return;
    }
    for (struct etcd__gcall *c = h ? h->calls : NULL; c; c = c->next) {
        if (c->link != l || c->ending || c->stream_id != 0)
            continue;
        rc = submit(l, c);
        if (rc != 0) {
            /* Fail it from the timer: this loop must not run user code. */
            c->deadline_ms = 1;
            snprintf(c->grpc_message, sizeof(c->grpc_message), "submit: %s",
                     nghttp2_strerror(rc));
        }
    }
    if (h)
        arm_timer(h);
    link_flush(l);
}

static struct link *link_open(struct etcd__h2 *h)
{
    struct link *l = mr_calloc(1, sizeof(*l));
    nghttp2_session_callbacks *cbs;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    int rc;

    if (uv_ip4_addr(h->host, h->port, &addr.in4) != 0 &&
        uv_ip6_addr(h->host, h->port, &addr.in6) != 0) {
        mr_free(l);
        return NULL; /* etcd__grpc's init checked: cannot happen */
    }
    rc = nghttp2_session_callbacks_new(&cbs);
    if (rc != 0) {
        mr_free(l);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    rc = nghttp2_session_client_new(&l->ng, cbs, l);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        mr_free(l);
        return NULL;
    }
    uv_tcp_init(h->loop, &l->tcp);
    l->h = h;
    l->state = LINK_CONNECTING;
    l->next = h->links;
    if (h->links)
        h->links->prev = l;
    h->links = l;
    rc = uv_tcp_connect(&l->connect, &l->tcp, &addr.sa, link_connected);
    if (rc != 0) {
        /* Calls on it are failed from the timer (see etcd__h2_call). */
        l->state = LINK_DEAD;
        link_unlink(l);
        uv_close((uv_handle_t *)&l->tcp, link_closed);
        return NULL;
    }
    return l;
}

/* ---- deadlines ------------------------------------------------------------------ */

static void timer_fired(uv_timer_t *t);

static void arm_timer(struct etcd__h2 *h)
{
    int64_t min = 0, now = mr_now_ms();

    if (h->freeing)
        return;
    for (struct etcd__gcall *c = h->calls; c; c = c->next)
        if (!c->ending && c->deadline_ms && (min == 0 || c->deadline_ms < min))
            min = c->deadline_ms;
    if (min == 0) {
        uv_timer_stop(&h->timer);
        h->timer_at = 0;
        return;
    }
    if (h->timer_at == min)
        return;
    h->timer_at = min;
    uv_timer_start(&h->timer, timer_fired, min > now ? (uint64_t)(min - now) : 0, 0);
}

static void timer_fired(uv_timer_t *t)
{
    struct etcd__h2 *h = container_of(t, struct etcd__h2, timer);
    char why[MR_ERRMSG_LEN];

    h->timer_at = 0;
    for (;;) {
        int64_t now = mr_now_ms();
        struct etcd__gcall *c = h->calls;
        struct link *l;

        while (c && (c->ending || c->deadline_ms == 0 || c->deadline_ms > now))
            c = c->next;
        if (c == NULL || h->freeing)
            break;
        l = c->link;
        if (l == NULL || c->deadline_ms == 1) {
            /* Failed to start (see link_open / link_connected). */
            snprintf(why, sizeof(why), "cannot reach %s%s%.160s", h->authority,
                     c->grpc_message[0] ? ": " : "", c->grpc_message);
            call_end(c, MR_ECONN, 0, why);
            continue;
        }
        snprintf(why, sizeof(why), "no answer from %s within %llu ms", h->authority,
                 (unsigned long long)c->timeout_ms);
        if (l->state == LINK_CONNECTING ||
            (l->state == LINK_READY && l->last_recv_ms <= c->deadline_ms - (int64_t)c->timeout_ms)) {
            /* Not connected yet, or nothing at all heard on the connection
             * since the call started: it is dead, not merely slow. */
            link_fail(l, MR_ETIMEDOUT, why);
            continue;
        }
        call_end(c, MR_ETIMEDOUT, 0, why);
    }
    arm_timer(h);
}

/* ---- API ----------------------------------------------------------------------- */

struct etcd__h2 *etcd__h2_new(uv_loop_t *loop, const char *host, int port, struct tls_ctx *tls)
{
    struct etcd__h2 *h = mr_calloc(1, sizeof(*h));

    h->loop = loop;
    h->tls = tls;
    h->host = mr_strdup(host);
    h->port = port;
    h->authority = strchr(host, ':') ? mr_asprintf("[%s]:%d", host, port)
                                     : mr_asprintf("%s:%d", host, port);
    uv_timer_init(loop, &h->timer);
    return h;
}

int etcd__h2_call(struct etcd__h2 *h, const struct etcd__gcall_opts *o, struct etcd__gcall **out)
{
    struct etcd__gcall *c;

    if (h->freeing || o->msg_len > ETCD__GRPC_MAX_MSG + ETCD__GRPC_PREFIX)
        return MR_EINVAL;
    c = mr_calloc(1, sizeof(*c));
    c->h = h;
    c->path = o->path;
    c->out = mr_malloc(o->msg_len ? o->msg_len : 1);
    memcpy(c->out, o->msg, o->msg_len);
    c->out_len = o->msg_len;
    c->keep_open = o->keep_open;
    c->timeout_ms = o->timeout_ms;
    c->deadline_ms = o->timeout_ms ? mr_now_ms() + (int64_t)o->timeout_ms : 0;
    c->grpc_status = -1;
    c->on_message = o->on_message;
    c->on_end = o->on_end;
    c->data = o->data;
    mr_buf_init(&c->in);
    c->next = h->calls;
    if (h->calls)
        h->calls->prev = c;
    h->calls = c;
    if (h->link == NULL)
        h->link = link_open(h);
    c->link = h->link;
    if (c->link == NULL) {
        c->deadline_ms = 1; /* fail from the timer, not from inside this call */
    } else if (c->link->state == LINK_READY) {
        int rc = submit(c->link, c);
        if (rc != 0) {
            c->deadline_ms = 1;
            snprintf(c->grpc_message, sizeof(c->grpc_message), "submit: %s", nghttp2_strerror(rc));
        } else {
            /* A write that fails here fails the link, and the link ends its
             * calls: this one's end waits (in_msg) and goes to the timer,
             * since on_end must not run inside this function. */
            c->in_msg = 1;
            link_flush(c->link);
            c->in_msg = 0;
            if (c->ending) {
                if (c->stream_id != 0)
                    nghttp2_session_set_stream_user_data(c->link->ng, c->stream_id, NULL);
                c->ending = 0;
                c->link = NULL;
                c->stream_id = 0;
                c->deadline_ms = 1;
                snprintf(c->grpc_message, sizeof(c->grpc_message), "%s", c->end_msg);
            }
        }
    }
    arm_timer(h);
    if (out)
        *out = c;
    return 0;
}

void etcd__h2_cancel(struct etcd__gcall *c)
{
    call_end(c, MR_ECLOSED, 0, "cancelled");
}

static void h2_timer_closed(uv_handle_t *hd)
{
    struct etcd__h2 *h = container_of((uv_timer_t *)hd, struct etcd__h2, timer);

    mr_free(h->host);
    mr_free(h->authority);
    mr_free(h);
}

void etcd__h2_free(struct etcd__h2 *h)
{
    h->freeing = 1;
    for (;;) {
        struct etcd__gcall *c = h->calls;

        while (c && c->ending)
            c = c->next;
        if (c == NULL)
            break;
        call_end(c, MR_ECLOSED, 0, "etcd client closed");
    }
    while (h->links) {
        struct link *l = h->links;
        if (l->state != LINK_DEAD) {
            l->state = LINK_DEAD;
            uv_close((uv_handle_t *)&l->tcp, link_closed);
        }
        link_unlink(l);
    }
    uv_timer_stop(&h->timer);
    /* A call whose on_message is running still points at <h>: it finishes
     * when that returns, before the loop runs this close callback. */
    uv_close((uv_handle_t *)&h->timer, h2_timer_closed);
}
