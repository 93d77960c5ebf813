/* io.c -- the transport under every HTTP connection (see http_int.h).
 *
 * TCP over libuv, optionally with TLS.  This is the only file that calls
 * uv_read_start, uv_write, uv_shutdown and uv_close on a connection.
 *
 * TLS (src/tls, memory BIOs): each socket read is fed to the engine and the
 * plaintext it yields goes to on_data from the same shared read buffer; each
 * write is encrypted at once, so the caller's bytes are free when
 * http__io_write returns, and the ciphertext goes out with the same
 * uv_try_write-then-uv_write sequence as plain bytes.  Ciphertext the
 * engine makes by itself (handshake, alerts, close_notify) takes the same
 * path with a write request of its own.  Every write goes through
 * uv_try_write first, which refuses while anything is queued, so the
 * ciphertext stream stays in order.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "http_int.h"

/* Ciphertext up to this size is sent from the stack; only what the socket
 * does not take at once is copied to the heap.  A TLS record is at most
 * 16 KiB + 256 bytes of overhead; answers of a few records fit. */
#define TLS_STACK_BUF (64 * 1024)

/* A write of ciphertext no caller asked for (handshake, alert, close). */
struct own_write {
    uv_write_t req;
    char *buf;
};

static void io_tls_read(struct http__io *io, ssize_t nread);

static void io_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http__io *io = h->data;

    (void)suggested;
    buf->base = io->rbuf;
    buf->len = HTTP__READ_BUF_LEN;
}

static void io_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct http__io *io = st->data;

    (void)buf;
    if (io->tls != NULL) {
        io_tls_read(io, nread);
        return;
    }
    if (nread > 0) {
        io->on_data(io, io->rbuf, (size_t)nread);
        return;
    }
    /* 0 is EAGAIN in libuv's terms: nothing happened. */
    if (nread < 0)
        io->on_end(io, (int)nread);
}

int http__io_init(uv_loop_t *loop, struct http__io *io, void *owner, char *rbuf)
{
    int rc = uv_tcp_init(loop, &io->tcp);

    if (rc != 0)
        return rc;
    io->tcp.data = io;
    io->owner = owner;
    io->rbuf = rbuf;
    io->tls = NULL;
    io->closed = 0;
    io->tls_eof = 0;
    return 0;
}

int http__io_read_start(struct http__io *io)
{
    return uv_read_start((uv_stream_t *)&io->tcp, io_alloc_cb, io_read_cb);
}

void http__io_read_stop(struct http__io *io)
{
    uv_read_stop((uv_stream_t *)&io->tcp);
}

static void io_write_cb(uv_write_t *req, int status)
{
    struct http__write *w = req->data;

    w->cb(w, status);
}

/* ---- TLS ---------------------------------------------------------------- */

static void own_write_cb(uv_write_t *req, int status)
{
    struct own_write *ow = req->data;

    (void)status;
    mr_free(ow->buf);
    mr_free(ow);
}

static void io_tls_write_cb(uv_write_t *req, int status)
{
    struct http__write *w = req->data;

    mr_free(w->tls_buf);
    w->tls_buf = NULL;
    w->cb(w, status);
}

/* Send the ciphertext the engine has.  With <w>, as http__io_write returns:
 * 1 all sent (no callback), 0 queued (callback on <w>), or a libuv error.
 * Without, the write is tracked here and the result is 1, 0 or an error
 * (nobody is told when it completes). */
static int io_tls_send(struct http__io *io, struct http__write *w, http__io_write_cb cb)
{
    char stack[TLS_STACK_BUF];
    size_t n = tls_conn_pending(io->tls);
    char *buf = stack, *rest;
    uv_buf_t b;
    size_t done;
    int k, rc;

    if (n == 0)
        return 1;
    if (n > sizeof(stack))
        buf = mr_malloc(n);
    n = tls_conn_take(io->tls, buf, n);
    b = uv_buf_init(buf, (unsigned int)n);
    k = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
    if (k < 0 && k != UV_EAGAIN) {
        if (buf != stack)
            mr_free(buf);
        return k;
    }
    done = k > 0 ? (size_t)k : 0;
    if (done == n) {
        if (buf != stack)
            mr_free(buf);
        return 1;
    }
    /* The rest must outlive this call. */
    if (buf == stack) {
        rest = mr_malloc(n - done);
        memcpy(rest, buf + done, n - done);
    } else {
        rest = buf;
        memmove(rest, buf + done, n - done);
    }
    b = uv_buf_init(rest, (unsigned int)(n - done));
    if (w != NULL) {
        w->io = io;
        w->cb = cb;
        w->tls_buf = rest;
        w->req.data = w;
        rc = uv_write(&w->req, (uv_stream_t *)&io->tcp, &b, 1, io_tls_write_cb);
    } else {
        struct own_write *ow = mr_malloc(sizeof(*ow));

        ow->buf = rest;
        ow->req.data = ow;
        rc = uv_write(&ow->req, (uv_stream_t *)&io->tcp, &b, 1, own_write_cb);
        if (rc != 0)
            mr_free(ow);
    }
    if (rc != 0) {
        mr_free(rest);
        if (w != NULL)
            w->tls_buf = NULL;
        return rc;
    }
    return 0;
}

/* <nread> bytes of ciphertext are in io->rbuf (or a libuv error / EOF). */
static void io_tls_read(struct http__io *io, ssize_t nread)
{
    if (nread < 0) {
        /* After close_notify the owner has had its end already. */
        if (!io->tls_eof)
            io->on_end(io, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    if (tls_conn_feed(io->tls, io->rbuf, (size_t)nread) != 0) {
        io->on_end(io, UV_ENOMEM);
        return;
    }
    /* The ciphertext is copied into the engine: the read buffer is free
     * again and takes the plaintext. */
    for (;;) {
        ssize_t n = tls_conn_read(io->tls, io->rbuf, HTTP__READ_BUF_LEN);

        if (n > 0) {
            io->on_data(io, io->rbuf, (size_t)n);
            if (io->closed)
                return;
            continue;
        }
        /* Handshake messages, alerts: best effort, the read side reports
         * any failure. */
        io_tls_send(io, NULL, NULL);
        if (n == TLS_AGAIN)
            return;
        if (n == TLS_EOF) {
            io->tls_eof = 1;
            io->on_end(io, UV_EOF);
            return;
        }
        io->on_end(io, UV_EPROTO);
        return;
    }
}

int http__io_tls_start(struct http__io *io, struct tls_ctx *t, const char *host,
                       const char *alpn, char *err)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    char ip[64] = "?", peer[80];
    int port = 0;
    int rc;

    if (uv_tcp_getpeername(&io->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(peer, sizeof(peer), "%s:%d", ip, port);
    rc = tls_conn_new(t, peer, host, alpn, &io->tls, err);
    if (rc != 0)
        return rc;
    rc = io_tls_send(io, NULL, NULL);
    if (rc < 0)
        return mr_seterr(err, MR_ECONN, "tls to %s: %s", peer, uv_strerror(rc));
    return 0;
}

int http__io_tls_handshaking(const struct http__io *io)
{
    return io->tls != NULL && !tls_conn_handshake_done(io->tls);
}

/* ---- writes ------------------------------------------------------------- */

int http__io_write(struct http__io *io, struct http__write *w, const uv_buf_t *bufs,
                   unsigned n_bufs, http__io_write_cb cb)
{
    uv_buf_t rest[HTTP__MAX_WRITE_BUFS];
    size_t total = 0;
    size_t done;
    unsigned i, k = 0;
    int n;

    if (n_bufs > HTTP__MAX_WRITE_BUFS)
        return UV_EINVAL;
    if (io->tls != NULL) {
        for (i = 0; i < n_bufs; i++)
            if (tls_conn_write(io->tls, bufs[i].base, bufs[i].len) != 0)
                return UV_EPROTO;
        return io_tls_send(io, w, cb);
    }
    for (i = 0; i < n_bufs; i++)
        total += bufs[i].len;
    /* Most answers fit in the socket buffer at once.  uv_write would make
     * the same write(2), then cost a trip through the pending queue and an
     * epoll_ctl to drop POLLOUT again: a third of the syscalls of a small
     * keep-alive request.  uv_try_write refuses (EAGAIN) while earlier
     * writes are queued, so order is kept. */
    n = uv_try_write((uv_stream_t *)&io->tcp, bufs, n_bufs);
    if (n < 0 && n != UV_EAGAIN)
        return n;
    done = n > 0 ? (size_t)n : 0;
    if (done == total)
        return 1;
    for (i = 0; i < n_bufs; i++) {
        if (done >= bufs[i].len) {
            done -= bufs[i].len;
            continue;
        }
        rest[k++] = uv_buf_init(bufs[i].base + done, (unsigned int)(bufs[i].len - done));
        done = 0;
    }
    w->io = io;
    w->cb = cb;
    w->req.data = w;
    /* uv_write copies the buffer array, not the bytes. */
    return uv_write(&w->req, (uv_stream_t *)&io->tcp, rest, k, io_write_cb);
}

int http__io_shutdown(struct http__io *io, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    if (io->tls != NULL) {
        /* RFC 8446 6.1: close_notify, so the peer can tell our end from a
         * truncation.  uv_shutdown waits for it to be written. */
        tls_conn_close_notify(io->tls);
        io_tls_send(io, NULL, NULL);
    }
    return uv_shutdown(req, (uv_stream_t *)&io->tcp, cb);
}

void http__io_close(struct http__io *io, uv_close_cb cb)
{
    io->closed = 1;
    /* Queued ciphertext owns its buffers: the engine can go now. */
    tls_conn_free(io->tls);
    io->tls = NULL;
    uv_close((uv_handle_t *)&io->tcp, cb);
}

void http__ignore_sigpipe(void)
{
    struct sigaction sa;

    /* libuv writes with write(2), not send(MSG_NOSIGNAL): a peer that reset
     * the connection would kill the process with SIGPIPE.  Leave alone a
     * handler someone installed on purpose. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        sigaction(SIGPIPE, &sa, NULL);
    }
}
