/* io.c -- the transport under every HTTP connection (see http_int.h).
 *
 * Plain TCP over libuv.  This is the only file that calls uv_read_start,
 * uv_write, uv_shutdown and uv_close on a connection, so that TLS can be
 * added here alone.
 */
#include <signal.h>
#include <stddef.h>

#include "http_int.h"

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
    return uv_shutdown(req, (uv_stream_t *)&io->tcp, cb);
}

void http__io_close(struct http__io *io, uv_close_cb cb)
{
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
