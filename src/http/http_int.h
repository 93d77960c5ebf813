/* http_int.h -- shared only inside src/http.
 *
 * The transport under one HTTP connection (struct http__io).  Protocol code,
 * server side and client side alike, moves bytes only through this small
 * interface:
 *
 *   in:   http__io_read_start / http__io_read_stop, and the on_data / on_end
 *         callbacks the owner installs;
 *   out:  http__io_write, plus http__io_shutdown and http__io_close.
 *
 * Plain TCP is a thin wrapper over libuv.  With TLS (http__io_tls_start,
 * src/tls/tls.h) the same functions decrypt between the socket read and
 * on_data, encrypt in http__io_write and send close_notify in
 * http__io_shutdown; server.c and client.c only start it and ask for the
 * peer's name.  Plain connections take exactly the old path.
 *
 * Read buffer: the owner (a server or a client) provides one buffer shared by
 * all its connections.  libuv delivers each read synchronously, and protocol
 * code copies whatever it keeps, so a per-connection buffer would only cost
 * memory.
 */
#ifndef MR_HTTP_INT_H
#define MR_HTTP_INT_H

#include <http_parser.h>
#include <uv.h>

#include "../tls/tls.h"
#include "http.h"

#define HTTP__READ_BUF_LEN (64 * 1024)

struct http__io;

/* <n> bytes arrived; <p> is valid only during the call.  n > 0. */
typedef void (*http__io_data_cb)(struct http__io *io, const char *p, size_t n);
/* The read side ended: UV_EOF for an orderly close, else a libuv error. */
typedef void (*http__io_end_cb)(struct http__io *io, int uverr);

struct http__io {
    uv_tcp_t tcp;                /* tcp.data is the io; owner in <owner> */
    void *owner;
    http__io_data_cb on_data;
    http__io_end_cb on_end;
    char *rbuf;                  /* shared read buffer, HTTP__READ_BUF_LEN bytes */
    struct tls_conn *tls;        /* NULL: plain TCP; owned, freed at close */
    unsigned closed : 1;         /* http__io_close called */
    unsigned tls_eof : 1;        /* close_notify seen: on_end(UV_EOF) was called */
};

struct http__write;
/* A write finished: 0, or a libuv error (UV_ECANCELED after close). */
typedef void (*http__io_write_cb)(struct http__write *w, int uverr);

/* Storage for one write in flight; owned by the caller, which must keep it
 * (and the bytes it points to) until the callback. */
struct http__write {
    uv_write_t req;
    struct http__io *io;
    http__io_write_cb cb;
    char *tls_buf;               /* TLS: ciphertext in flight, freed at the callback */
};

/* Initialise the handle on <loop>.  On failure nothing needs closing. */
int http__io_init(uv_loop_t *loop, struct http__io *io, void *owner, char *rbuf);
/* Speak TLS on <io> from now on, in <t>'s role: call after accept (server)
 * or connect (client; <host> as dialled, for SNI and the name check; <alpn>
 * or NULL), before any read or write.  Sends a client's first flight.  On
 * failure returns MR_E* with <err> set; the io stays plain and should be
 * closed. */
int http__io_tls_start(struct http__io *io, struct tls_ctx *t, const char *host,
                       const char *alpn, char *err);
/* 1 when <io> is TLS and its handshake has not finished (a failure then is a
 * refusal: the peer or we rejected a certificate, or it is not TLS). */
int http__io_tls_handshaking(const struct http__io *io);
int http__io_read_start(struct http__io *io);
void http__io_read_stop(struct http__io *io);
/* Write <bufs> (at most HTTP__MAX_WRITE_BUFS); writes complete in
 * submission order.  Returns 1 when every byte went out at once (the
 * callback will NOT run: the caller finishes inline), 0 when the rest is
 * queued (the callback will run), or a libuv error (it will not). */
#define HTTP__MAX_WRITE_BUFS 16
int http__io_write(struct http__io *io, struct http__write *w, const uv_buf_t *bufs,
                   unsigned n_bufs, http__io_write_cb cb);
/* Half-close after queued writes. */
int http__io_shutdown(struct http__io *io, uv_shutdown_t *req, uv_shutdown_cb cb);
/* Close the handle; memory holding <io> may go once <cb> has run.  Writes
 * still queued complete with UV_ECANCELED before <cb>. */
void http__io_close(struct http__io *io, uv_close_cb cb);

/* Set SIGPIPE to ignored if it is at its default (see io.c). */
void http__ignore_sigpipe(void);

/* A cached "Date: ...\r\n" line (RFC 9110 5.6.7, IMF-fixdate).  Formatting
 * with strftime costs more than the rest of a hello-world answer, and the
 * value only changes once a second. */
struct http__date {
    char line[48];
    size_t len;
    long sec;        /* the second <line> shows; -1 before the first use */
};
/* Refresh <d> if the second changed; returns d->line. */
const char *http__date_get(struct http__date *d);

#endif
