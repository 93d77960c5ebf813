/* server.c -- the HTTP/1.1 server: accept, parse (http-parser, request mode),
 * hand each request to the handler, write answers back in request order.
 *
 * Depends on libuv, http-parser, src/common and the transport in io.c.
 *
 * Shape of a connection (struct http_conn):
 *
 *   socket -> io.c -> conn_on_data -> http-parser -> <cur> exchange being parsed
 *                                          |
 *                     on_message_complete: cur joins the tail of the queue and
 *                     is handed to the handler
 *
 *   queue:  qhead -> ex -> ex -> ... -> qtail      (request order, <= HTTP_MAX_PIPELINE)
 *
 *   Answers are produced into ex->out in any order; only a prefix of the queue
 *   whose answers are ready is written (conn_flush), in one uv_write, and an
 *   exchange leaves the queue when its bytes are on the socket.  While the
 *   queue is full, unparsed bytes wait in <pending> and reading stops: that is
 *   the backpressure against a client that pipelines faster than we answer.
 *
 * Allocation: exchanges and their buffers are recycled through a per-server
 * free list, so that a keep-alive hello-world request costs no malloc at all
 * once warm.  The read buffer is one per server (see http_int.h).
 *
 * Lifetimes: a connection's memory goes only in the close callbacks of its
 * two handles (socket and timer), so every callback can look at c->closing
 * after calling out to the handler.  An exchange given to the handler belongs
 * to the handler until http_respond / http_respond_end; if the connection
 * dies first it is "orphaned" (ex->conn = NULL) and freed by that call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "http_int.h"

#define EX_CACHE_MAX 256          /* recycled exchanges kept per server */
#define EX_KEEP_BUF (64 * 1024)   /* larger buffers are freed, not recycled */
#define LINGER_MS 2000            /* read-and-discard after the last answer */
#define LISTEN_BACKLOG 511

#define container_of(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))

/* What the connection's single timer is guarding. */
enum dl_kind {
    DL_NONE,    /* waiting for the handler: its business, not ours */
    DL_HEAD,    /* request head must be complete by the deadline (slowloris) */
    DL_BODY,    /* body bytes must keep coming (idle_timeout between reads) */
    DL_WRITE,   /* the client must keep reading our answers */
    DL_IDLE,    /* keep-alive with nothing to do */
    DL_LINGER,  /* closing: wait for the client's FIN, but not for ever */
};

/* How an answer's length is framed. */
enum framing { FR_LENGTH, FR_CHUNKED, FR_CLOSE };

struct http_exchange {
    struct http_conn *conn;        /* NULL once orphaned (connection gone) */
    struct http_exchange *next;    /* in the queue, or in the free list */
    struct http_request req;
    struct mr_buf strs;            /* url, header names and values, NUL-separated */
    struct mr_buf body;            /* request body; scratch for error answers */
    uint32_t *hoff;                /* while parsing: name/value offsets in strs */
    struct http_header *hdrs;
    size_t n_hdrs, cap_hdrs;
    struct mr_buf out;             /* answer bytes produced, not yet written */
    struct mr_buf wbuf;            /* answer bytes in the write in flight */
    char peer[HTTP_PEER_MAX];      /* the client's address, copied from the connection */
    unsigned handed : 1;           /* given to the handler */
    unsigned started : 1;          /* answer head produced */
    unsigned complete : 1;         /* whole answer produced */
    unsigned keep_alive : 1;
    unsigned head_method : 1;
    unsigned http10 : 1;
    unsigned chunked : 1;          /* streamed answer uses chunked coding */
    unsigned discard_body : 1;     /* HEAD, 204, 304: answer has no body */
};

struct http_conn {
    struct http__io io;
    struct http_server *s;
    struct http_conn *prev, *next; /* every connection of the server */
    uv_timer_t timer;
    int n_handles;                 /* handles whose close callback is pending */
    http_parser parser;
    struct http_exchange *cur;     /* request being parsed */
    struct http_exchange *done;    /* request just completed, to dispatch */
    struct http_exchange *qhead, *qtail;
    size_t n_queue;
    struct http__write w;          /* the one answer write in flight */
    size_t n_wex;                  /* exchanges that write completes */
    struct http__write wcont;      /* "100 Continue" */
    uv_shutdown_t sreq;
    struct mr_buf pending;         /* unparsed input held while the queue is full */
    uint64_t deadline, timer_due;  /* uv_now() milliseconds */
    enum dl_kind dl;
    int hstate;                    /* 0 url, 1 header name, 2 header value */
    int err_status;                /* set by a parser callback that refused */
    const char *err_code;
    char err_msg[160];
    char peer[HTTP_PEER_MAX];      /* the client's IP address as text, "" if unknown */
    unsigned writing : 1;
    unsigned cont_busy : 1;
    unsigned paused : 1;           /* pipeline full: input waits in <pending> */
    unsigned no_more : 1;          /* parse no further requests */
    unsigned discard : 1;          /* drop whatever arrives */
    unsigned lingering : 1;
    unsigned closing : 1;
    unsigned rejected : 1;         /* over max_connections */
    unsigned eof : 1;              /* the client half-closed */
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct http_server_opts opts;
    char *server_hdr;              /* "Server: name\r\n" */
    size_t server_hdr_len;
    http_handler_cb handler;
    void *data;
    struct http_conn *conns;
    size_t n_conns;                /* allocated and not yet closed-back */
    size_t n_open;                 /* counted against max_connections */
    struct http_exchange *free_ex;
    size_t n_free_ex;
    struct http_server_stats stats;
    struct http__date date;
    int port;
    unsigned closing : 1;
    unsigned listener_closed : 1;
    char rbuf[HTTP__READ_BUF_LEN];
};

static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_close(struct http_conn *c);
static void conn_flush(struct http_conn *c);

/* ---- exchanges ---------------------------------------------------------- */

static struct http_exchange *ex_get(struct http_server *s, struct http_conn *c)
{
    struct http_exchange *ex = s->free_ex;

    if (ex != NULL) {
        s->free_ex = ex->next;
        s->n_free_ex--;
        mr_buf_reset(&ex->strs);
        mr_buf_reset(&ex->body);
        mr_buf_reset(&ex->out);
        mr_buf_reset(&ex->wbuf);
        ex->n_hdrs = 0;
        ex->handed = ex->started = ex->complete = 0;
        ex->keep_alive = ex->head_method = ex->http10 = 0;
        ex->chunked = ex->discard_body = 0;
    } else {
        /* calloc: a zeroed struct mr_buf is an initialised empty one. */
        ex = mr_calloc(1, sizeof(*ex));
    }
    ex->next = NULL;
    ex->conn = c;
    memset(&ex->req, 0, sizeof(ex->req));
    memcpy(ex->peer, c->peer, sizeof(ex->peer));
    ex->req.peer = ex->peer;
    return ex;
}

static void ex_destroy(struct http_exchange *ex)
{
    mr_buf_close(&ex->strs);
    mr_buf_close(&ex->body);
    mr_buf_close(&ex->out);
    mr_buf_close(&ex->wbuf);
    mr_free(ex->hoff);
    mr_free(ex->hdrs);
    mr_free(ex);
}

static void trim_buf(struct mr_buf *b)
{
    if (b->cap > EX_KEEP_BUF)
        mr_buf_close(b);
}

static void ex_put(struct http_server *s, struct http_exchange *ex)
{
    if (s->closing || s->n_free_ex >= EX_CACHE_MAX) {
        ex_destroy(ex);
        return;
    }
    /* One huge upload should not pin its buffer to a recycled exchange. */
    trim_buf(&ex->strs);
    trim_buf(&ex->body);
    trim_buf(&ex->out);
    trim_buf(&ex->wbuf);
    ex->conn = NULL;
    ex->next = s->free_ex;
    s->free_ex = ex;
    s->n_free_ex++;
}

static void queue_push(struct http_conn *c, struct http_exchange *ex)
{
    ex->next = NULL;
    if (c->qtail != NULL)
        c->qtail->next = ex;
    else
        c->qhead = ex;
    c->qtail = ex;
    c->n_queue++;
}

/* ---- answer formatting -------------------------------------------------- */

/* RFC 9110 6.4.1: 1xx, 204 and 304 answers never carry content. */
static int status_has_body(int status)
{
    return !(status / 100 == 1 || status == 204 || status == 304);
}

static void put_u64(struct mr_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    mr_buf_append(b, tmp + i, sizeof(tmp) - i);
}

static void put_lit(struct mr_buf *b, const char *s)
{
    mr_buf_append(b, s, strlen(s));
}

/* Append the status line and headers of an answer to ex->out.  <body_len>
 * is used only with FR_LENGTH. */
static void build_head(struct http_server *s, struct http_exchange *ex, int status,
                       const char *content_type, const char *extra, enum framing fr,
                       size_t body_len)
{
    struct mr_buf *b = &ex->out;
    const char *text = http_status_text(status);
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};

    http__date_get(&s->date);
    mr_buf_reserve(b, 160 + s->server_hdr_len + body_len + (extra ? strlen(extra) : 0) +
                          (content_type ? strlen(content_type) : 0));
    mr_buf_append(b, "HTTP/1.1 ", 9);
    mr_buf_append(b, code, 4);
    put_lit(b, text);
    mr_buf_append(b, "\r\n", 2);
    mr_buf_append(b, s->date.line, s->date.len);
    mr_buf_append(b, s->server_hdr, s->server_hdr_len);
    if (status_has_body(status)) {
        if (content_type != NULL) {
            mr_buf_append(b, "Content-Type: ", 14);
            put_lit(b, content_type);
            mr_buf_append(b, "\r\n", 2);
        }
        if (fr == FR_LENGTH) {
            mr_buf_append(b, "Content-Length: ", 16);
            put_u64(b, body_len);
            mr_buf_append(b, "\r\n", 2);
        } else if (fr == FR_CHUNKED) {
            put_lit(b, "Transfer-Encoding: chunked\r\n");
        }
    }
    /* RFC 9112 9.3: 1.1 persists unless told; 1.0 closes unless told. */
    if (!ex->keep_alive)
        put_lit(b, "Connection: close\r\n");
    else if (ex->http10)
        put_lit(b, "Connection: keep-alive\r\n");
    if (extra != NULL)
        put_lit(b, extra);
    mr_buf_append(b, "\r\n", 2);
}

/* ---- timers ------------------------------------------------------------- */

static void conn_timer_cb(uv_timer_t *t);

/* Set what the timer guards and when it fires.  The libuv timer is re-armed
 * only when the new deadline is earlier than the one it is set for; a later
 * deadline is noticed when the timer fires early and re-arms itself.  Thus a
 * busy keep-alive connection touches the timer heap about once per timeout
 * period instead of several times per request.  <ms> == 0 disables. */
static void conn_deadline(struct http_conn *c, enum dl_kind kind, uint64_t ms)
{
    uint64_t now, dl;

    if (kind == DL_NONE || ms == 0) {
        c->dl = DL_NONE;
        return;
    }
    c->dl = kind;
    now = uv_now(c->s->loop);
    dl = now + ms;
    c->deadline = dl;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->timer_due > dl) {
        c->timer_due = dl;
        uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
    }
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    uint64_t now;

    if (c->closing || c->dl == DL_NONE)
        return;
    now = uv_now(c->s->loop);
    if (now < c->deadline) {
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, conn_timer_cb, c->deadline - now, 0);
        return;
    }
    if (c->dl == DL_HEAD || c->dl == DL_BODY) {
        c->s->stats.timeouts++;
        mr_log(MR_LOG_DEBUG, "http", "closing connection: request %s timed out",
               c->dl == DL_HEAD ? "head" : "body");
    }
    conn_close(c);
}

/* Pick the deadline that fits the connection's state after some event. */
static void conn_retime(struct http_conn *c)
{
    uint64_t idle = c->s->opts.idle_timeout_ms;

    if (c->closing || c->lingering)
        return;
    if (c->cur != NULL) {
        /* The head deadline runs from the request's first byte and is not
         * extended by later bytes: that is the whole point of it. */
        if (c->dl != DL_HEAD)
            conn_deadline(c, DL_BODY, idle);
    } else if (c->writing) {
        conn_deadline(c, DL_WRITE, idle);
    } else if (c->n_queue > 0 || c->no_more) {
        conn_deadline(c, DL_NONE, 0);
    } else {
        conn_deadline(c, DL_IDLE, idle);
    }
}

/* ---- closing ------------------------------------------------------------ */

static void server_maybe_free(struct http_server *s)
{
    struct http_exchange *ex;

    if (!s->closing || !s->listener_closed || s->n_conns > 0)
        return;
    while ((ex = s->free_ex) != NULL) {
        s->free_ex = ex->next;
        ex_destroy(ex);
    }
    mr_free(s->server_hdr);
    mr_free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct http_conn *c;
    struct http_server *s;

    if (h->type == UV_TIMER)
        c = h->data;
    else
        c = ((struct http__io *)h->data)->owner;
    if (--c->n_handles > 0)
        return;
    s = c->s;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_conns--;
    mr_free(c);
    server_maybe_free(s);
}

/* Close now.  Exchanges the handler still holds are orphaned; the rest go. */
static void conn_close(struct http_conn *c)
{
    struct http_server *s = c->s;
    struct http_exchange *ex, *next;

    if (c->closing)
        return;
    c->closing = 1;
    if (!c->rejected) {
        s->n_open--;
        s->stats.connections_open--;
    }
    for (ex = c->qhead; ex != NULL; ex = next) {
        next = ex->next;
        if (ex->handed && !ex->complete) {
            ex->conn = NULL;
            ex->next = NULL;
        } else {
            /* Its bytes may be in a write libuv is about to cancel: libuv
             * does not read them after uv_close, so they can go now. */
            ex_put(s, ex);
        }
    }
    c->qhead = c->qtail = NULL;
    c->n_queue = 0;
    if (c->cur != NULL) {
        ex_put(s, c->cur);
        c->cur = NULL;
    }
    mr_buf_close(&c->pending);
    uv_timer_stop(&c->timer);
    http__io_close(&c->io, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static int conn_read_start(struct http_conn *c)
{
    int rc = http__io_read_start(&c->io);

    return rc == UV_EALREADY ? 0 : rc;
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/* The last answer is written: close gracefully.  Closing at once while the
 * client is still sending (a refused upload, pipelined requests we will not
 * answer) makes the kernel send RST, and an RST can destroy our answer in the
 * client's receive buffer before it reads it.  So: FIN our side, drop what
 * arrives until the client's FIN, bounded by LINGER_MS. */
static void conn_finish(struct http_conn *c)
{
    if (c->eof) {
        conn_close(c);
        return;
    }
    c->lingering = 1;
    c->discard = 1;
    c->no_more = 1;
    if (http__io_shutdown(&c->io, &c->sreq, conn_shutdown_cb) != 0 || conn_read_start(c) != 0) {
        conn_close(c);
        return;
    }
    conn_deadline(c, DL_LINGER, LINGER_MS);
}

/* ---- writing ------------------------------------------------------------ */

static void conn_resume(struct http_conn *c);

/* <n_ex> exchanges at the head of the queue are fully written. */
static void conn_written(struct http_conn *c, size_t n_ex)
{
    struct http_server *s = c->s;
    int close_after = 0;

    while (n_ex-- > 0) {
        struct http_exchange *ex = c->qhead;

        c->qhead = ex->next;
        if (c->qhead == NULL)
            c->qtail = NULL;
        c->n_queue--;
        if (!ex->keep_alive)
            close_after = 1;
        ex_put(s, ex);
    }
    /* A streamed answer's bytes may have been in that write too. */
    if (c->qhead != NULL)
        mr_buf_reset(&c->qhead->wbuf);
    if (close_after || (c->no_more && c->n_queue == 0)) {
        conn_finish(c);
        return;
    }
    conn_flush(c);
    if (c->closing)
        return;
    conn_resume(c);
    if (c->closing)
        return;
    conn_retime(c);
}

static void conn_write_cb(struct http__write *w, int status)
{
    struct http_conn *c = container_of(w, struct http_conn, w);
    size_t n_ex = c->n_wex;

    c->writing = 0;
    c->n_wex = 0;
    if (c->closing)
        return;
    if (status != 0) {
        mr_log(MR_LOG_DEBUG, "http", "write: %s", uv_strerror(status));
        conn_close(c);
        return;
    }
    conn_written(c, n_ex);
}

/* Write whatever is ready at the head of the queue, in order, as one
 * uv_write.  Only one write is in flight per connection: what is produced
 * meanwhile waits in ex->out and goes with the next one. */
static void conn_flush(struct http_conn *c)
{
    uv_buf_t bufs[HTTP__MAX_WRITE_BUFS];
    unsigned nb = 0;
    size_t n_ex = 0;
    struct http_exchange *ex;
    int rc;

    if (c->writing || c->closing)
        return;
    for (ex = c->qhead; ex != NULL && nb < HTTP__MAX_WRITE_BUFS; ex = ex->next) {
        if (ex->out.len > 0) {
            struct mr_buf t = ex->wbuf;

            /* wbuf is empty here (reset after every write): swapping keeps
             * both allocations for reuse. */
            ex->wbuf = ex->out;
            ex->out = t;
            bufs[nb++] = uv_buf_init(ex->wbuf.data, (unsigned int)ex->wbuf.len);
        }
        if (!ex->complete)
            break;
        n_ex++;
        if (!ex->keep_alive)
            break;
    }
    if (nb == 0) {
        /* Streamed answers can finish without a last byte to write. */
        if (n_ex > 0)
            conn_written(c, n_ex);
        return;
    }
    rc = http__io_write(&c->io, &c->w, bufs, nb, conn_write_cb);
    if (rc == 0) {
        c->n_wex = n_ex;
        c->writing = 1;
    } else if (rc == 1) {
        /* All out already.  Finishing inline is safe from any caller:
         * conn_written only pops answered exchanges (never one a handler
         * holds), and resumes parsing only when parsing was paused. */
        conn_written(c, n_ex);
    } else {
        mr_log(MR_LOG_DEBUG, "http", "write: %s", uv_strerror(rc));
        conn_close(c);
    }
}

static void conn_cont_cb(struct http__write *w, int status)
{
    struct http_conn *c = container_of(w, struct http_conn, wcont);

    (void)status;
    c->cont_busy = 0;
}

/* Queue an answer we make ourselves (errors, 503) and stop reading requests. */
static void conn_answer_error(struct http_conn *c, int status, const char *code,
                              const char *msg)
{
    struct http_exchange *ex = ex_get(c->s, c);

    mr_json_error(&ex->body, code, msg);
    ex->keep_alive = 0;
    build_head(c->s, ex, status, "application/json", NULL, FR_LENGTH, ex->body.len);
    mr_buf_append(&ex->out, ex->body.data, ex->body.len);
    ex->complete = 1;
    queue_push(c, ex);
    c->no_more = 1;
    conn_flush(c);
}

/* ---- parsing ------------------------------------------------------------ */

/* Make a parser callback refuse the request with <status>; returns -1, which
 * stops http-parser with a callback error. */
static int refuse(struct http_conn *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct http_conn *c, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    c->err_status = status;
    c->err_code = code;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int head_append(struct http_conn *c, const char *p, size_t n)
{
    struct http_exchange *ex = c->cur;
    size_t max = c->s->opts.max_header_bytes;

    if (ex->strs.len + n > max)
        return refuse(c, 431, "headers_too_large", "request head exceeds the limit of %zu bytes",
                      max);
    mr_buf_append(&ex->strs, p, n);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;

    c->cur = ex_get(c->s, c);
    c->hstate = 0;
    /* A new connection already runs its head deadline from the accept. */
    if (c->dl != DL_HEAD)
        conn_deadline(c, DL_HEAD, c->s->opts.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return head_append(p->data, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->cur;

    if (c->hstate != 1) {
        /* A new header: http-parser may deliver one name in pieces, so only
         * a change from url/value to name starts one. */
        if (ex->n_hdrs >= c->s->opts.max_headers)
            return refuse(c, 431, "headers_too_large", "more than %zu header fields",
                          c->s->opts.max_headers);
        if (ex->n_hdrs == ex->cap_hdrs) {
            ex->cap_hdrs = ex->cap_hdrs ? 2 * ex->cap_hdrs : 16;
            ex->hoff = mr_realloc(ex->hoff, 2 * ex->cap_hdrs * sizeof(*ex->hoff));
            ex->hdrs = mr_realloc(ex->hdrs, ex->cap_hdrs * sizeof(*ex->hdrs));
        }
        mr_buf_putc(&ex->strs, '\0');
        ex->hoff[2 * ex->n_hdrs] = (uint32_t)ex->strs.len;
        ex->hoff[2 * ex->n_hdrs + 1] = UINT32_MAX;
        ex->n_hdrs++;
        c->hstate = 1;
    }
    return head_append(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->cur;

    if (c->hstate != 2) {
        mr_buf_putc(&ex->strs, '\0');
        ex->hoff[2 * (ex->n_hdrs - 1) + 1] = (uint32_t)ex->strs.len;
        c->hstate = 2;
    }
    return head_append(c, at, n);
}

/* Fill ex->req from the head collected in ex->strs.  Pointers are taken only
 * now, when strs has stopped growing. */
static int finish_head(struct http_conn *c, http_parser *p)
{
    struct http_exchange *ex = c->cur;
    size_t path_off = 0, query_off = SIZE_MAX;
    char *url;

    mr_buf_putc(&ex->strs, '\0');
    url = ex->strs.data;
    if (url[0] == '/' || url[0] == '*') {
        char *q = strchr(url, '?');

        if (q != NULL) {
            *q = '\0';
            query_off = (size_t)(q + 1 - url);
        }
    } else {
        /* absolute-form (RFC 9112 3.2.2) or CONNECT's authority-form. */
        struct http_parser_url u;
        size_t url_len = strlen(url);

        http_parser_url_init(&u);
        if (http_parser_parse_url(url, url_len, p->method == HTTP_CONNECT, &u) != 0)
            return refuse(c, 400, "bad_request", "malformed request target");
        /* Path and query are copied out of the url, which sits in the same
         * buffer: make room first so that the source does not move. */
        mr_buf_reserve(&ex->strs, url_len + 2);
        url = ex->strs.data;
        if (u.field_set & (1 << UF_PATH)) {
            path_off = ex->strs.len;
            mr_buf_append(&ex->strs, url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
            mr_buf_putc(&ex->strs, '\0');
        }
        if (u.field_set & (1 << UF_QUERY)) {
            query_off = ex->strs.len;
            mr_buf_append(&ex->strs, url + u.field_data[UF_QUERY].off,
                          u.field_data[UF_QUERY].len);
            mr_buf_putc(&ex->strs, '\0');
        }
    }
    for (size_t i = 0; i < ex->n_hdrs; i++) {
        uint32_t v = ex->hoff[2 * i + 1];

        ex->hdrs[i].name = ex->strs.data + ex->hoff[2 * i];
        /* An empty value may come without a value callback. */
        ex->hdrs[i].value = v == UINT32_MAX ? (char *)"" : ex->strs.data + v;
    }
    ex->req.method = http_method_str((enum http_method)p->method);
    ex->req.path = ex->strs.data + path_off;
    ex->req.query = query_off == SIZE_MAX ? "" : ex->strs.data + query_off;
    ex->req.headers = ex->hdrs;
    ex->req.n_headers = ex->n_hdrs;
    ex->http10 = p->http_major == 1 && p->http_minor == 0;
    ex->head_method = p->method == HTTP_HEAD;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *s = c->s;
    struct http_exchange *ex = c->cur;
    const char *expect;
    int has_body;

    if (finish_head(c, p) != 0)
        return -1;
    /* Refuse an announced oversized body before the client sends it. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->opts.max_body_bytes)
        return refuse(c, 413, "body_too_large",
                      "request body of %llu bytes exceeds the limit of %zu bytes",
                      (unsigned long long)p->content_length, s->opts.max_body_bytes);
    has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    /* RFC 9110 10.1.1: a client that sent "Expect: 100-continue" waits a
     * while for 100 before sending the body.  We send it at once -- but only
     * when no earlier answer is pending, since interim responses must not
     * overtake the final answers of earlier requests.  Otherwise the client
     * sends the body after its own wait (curl: 1 s) and all is still well. */
    expect = http_request_header(&ex->req, "Expect");
    if (expect != NULL && has_body && !ex->http10 && strcasecmp(expect, "100-continue") == 0 &&
        c->n_queue == 0 && !c->writing && !c->cont_busy) {
        uv_buf_t b = uv_buf_init((char *)CONTINUE_100, sizeof(CONTINUE_100) - 1);

        /* 1 (written at once) needs no callback; failure shows on read. */
        if (http__io_write(&c->io, &c->wcont, &b, 1, conn_cont_cb) == 0)
            c->cont_busy = 1;
    }
    conn_deadline(c, DL_BODY, s->opts.idle_timeout_ms);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->cur;
    size_t max = c->s->opts.max_body_bytes;

    /* Chunked bodies announce no length: check as they stream in. */
    if (ex->body.len + n > max)
        return refuse(c, 413, "body_too_large", "request body exceeds the limit of %zu bytes",
                      max);
    mr_buf_append(&ex->body, at, n);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->cur;

    c->cur = NULL;
    ex->req.body = ex->body.data != NULL ? ex->body.data : "";
    ex->req.body_len = ex->body.len;
    ex->req.received_us = mr_mono_us();
    ex->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    queue_push(c, ex);
    c->done = ex;
    c->s->stats.requests++;
    /* Hand the request over outside http_parser_execute: the handler may
     * close the server, answer, or do anything else. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_bad_request(struct http_conn *c, enum http_errno e)
{
    struct http_server *s = c->s;

    if (c->err_status == 0) {
        if (e == HPE_HEADER_OVERFLOW) {
            c->err_status = 431;
            c->err_code = "headers_too_large";
            snprintf(c->err_msg, sizeof(c->err_msg), "request head is too large");
        } else {
            c->err_status = 400;
            c->err_code = "bad_request";
            snprintf(c->err_msg, sizeof(c->err_msg), "malformed request: %s",
                     http_errno_description(e));
        }
    }
    s->stats.bad_requests++;
    mr_log(MR_LOG_DEBUG, "http", "refusing request: %d %s", c->err_status, c->err_msg);
    if (c->cur != NULL) {
        ex_put(s, c->cur);
        c->cur = NULL;
    }
    conn_answer_error(c, c->err_status, c->err_code, c->err_msg);
}

static void conn_dispatch(struct http_conn *c)
{
    struct http_server *s = c->s;
    struct http_exchange *ex = c->done;

    c->done = NULL;
    /* Decide before the handler runs: once it has answered, <ex> may be
     * gone (written and recycled, or freed by a close). */
    if (!ex->keep_alive)
        c->no_more = 1;
    ex->handed = 1;
    s->handler(ex, &ex->req, s->data);
}

/* Parse what we can of <p>; returns how many bytes were used.  Stops early
 * when the pipeline is full (sets <paused>), or when no more requests are to
 * be read from this connection. */
static size_t conn_parse(struct http_conn *c, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n && !c->closing && !c->no_more) {
        size_t used;
        enum http_errno e;

        if (c->n_queue >= HTTP_MAX_PIPELINE) {
            c->paused = 1;
            break;
        }
        used = http_parser_execute(&c->parser, &parser_settings, p + off, n - off);
        e = HTTP_PARSER_ERRNO(&c->parser);
        off += used;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            conn_bad_request(c, e);
            break;
        }
        /* HPE_OK with bytes left over: an upgrade (we speak only HTTP). */
        if (off < n)
            c->no_more = 1;
        break;
    }
    return off;
}

static void conn_on_data(struct http__io *io, const char *p, size_t n)
{
    struct http_conn *c = io->owner;
    size_t used;

    if (c->closing || c->discard || c->no_more)
        return;
    if (c->paused) {
        mr_buf_append(&c->pending, p, n);
        http__io_read_stop(&c->io);
        return;
    }
    used = conn_parse(c, p, n);
    if (c->closing)
        return;
    if (c->paused) {
        mr_buf_append(&c->pending, p + used, n - used);
        http__io_read_stop(&c->io);
    } else if (c->no_more && !c->lingering) {
        http__io_read_stop(&c->io);
    }
    conn_retime(c);
}

/* The queue has room again: parse what was held back, then read again. */
static void conn_resume(struct http_conn *c)
{
    size_t used;

    if (!c->paused || c->n_queue >= HTTP_MAX_PIPELINE)
        return;
    c->paused = 0;
    used = conn_parse(c, c->pending.data, c->pending.len);
    if (c->closing)
        return;
    mr_buf_consume(&c->pending, used);
    if (c->no_more) {
        mr_buf_close(&c->pending);
        return;
    }
    if (!c->paused && conn_read_start(c) != 0)
        conn_close(c);
}

static void conn_on_end(struct http__io *io, int uverr)
{
    struct http_conn *c = io->owner;
    struct http_exchange *ex, *prev = NULL, *next;

    if (c->closing)
        return;
    if (uverr != UV_EOF || c->lingering) {
        /* The engine logged the reason and counted it on the tls_ctx. */
        if (uverr == UV_EPROTO && http__io_tls_handshaking(&c->io))
            c->s->stats.tls_refused++;
        conn_close(c);
        return;
    }
    /* The client sent FIN.  RFC 9112 9.6 allows a half-closed client that
     * still reads, but real clients close only when done, and a long answer
     * (a watch stream) to a client that left would otherwise run until its
     * next write fails.  Like Go's net/http and nginx, take EOF as "gone"
     * for requests not answered yet; answers already made are still
     * written, then the connection closes. */
    c->eof = 1;
    c->no_more = 1;
    http__io_read_stop(&c->io);
    if (c->cur != NULL) {
        ex_put(c->s, c->cur);
        c->cur = NULL;
    }
    for (ex = c->qhead; ex != NULL && ex->complete; ex = ex->next)
        prev = ex;
    if (ex != NULL) {
        /* An unfinished answer at the head, or bytes of one in flight:
         * just close (libuv stops touching those bytes at uv_close). */
        for (struct http_exchange *e = ex; e != NULL; e = e->next)
            if (e == c->qhead || e->wbuf.len > 0) {
                conn_close(c);
                return;
            }
        prev->next = NULL;
        c->qtail = prev;
        for (; ex != NULL; ex = next) {
            next = ex->next;
            c->n_queue--;
            if (ex->handed && !ex->complete) {
                ex->conn = NULL;
                ex->next = NULL;
            } else {
                ex_put(c->s, ex);
            }
        }
    }
    if (c->n_queue == 0 && !c->writing)
        conn_close(c);
    else
        conn_retime(c);
}

/* ---- accepting ---------------------------------------------------------- */

static void peer_name(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    c->peer[0] = '\0';
    if (uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
}

/* Open connections from <c>'s address, <c> excluded.  A scan: the limit is
 * for edges facing many clients, where max_connections bounds the list, and
 * an accept is rare next to the requests it carries. */
static size_t same_peer_open(const struct http_server *s, const struct http_conn *c)
{
    size_t n = 0;

    for (const struct http_conn *o = s->conns; o != NULL; o = o->next)
        if (o != c && !o->rejected && !o->closing && strcmp(o->peer, c->peer) == 0)
            n++;
    return n;
}

static void on_connection(uv_stream_t *l, int status)
{
    struct http_server *s = l->data;
    struct http_conn *c;

    if (status != 0) {
        mr_log(MR_LOG_WARN, "http", "accept: %s", uv_strerror(status));
        return;
    }
    c = mr_calloc(1, sizeof(*c));
    c->s = s;
    if (http__io_init(s->loop, &c->io, c, s->rbuf) != 0) {
        mr_free(c);
        return;
    }
    c->io.on_data = conn_on_data;
    c->io.on_end = conn_on_end;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->n_handles = 2;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;

    if (uv_accept(l, (uv_stream_t *)&c->io.tcp) != 0) {
        c->rejected = 1;   /* never counted as open */
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->io.tcp, 1);
    s->stats.connections_accepted++;
    peer_name(c);
    if (s->opts.tls != NULL) {
        char err[MR_ERRMSG_LEN];

        if (http__io_tls_start(&c->io, s->opts.tls, NULL, NULL, err) != 0) {
            mr_log(MR_LOG_WARN, "http", "closing connection: %s", err);
            c->rejected = 1;
            conn_close(c);
            return;
        }
    }
    if (s->opts.max_connections_per_ip > 0 && c->peer[0] &&
        same_peer_open(s, c) >= s->opts.max_connections_per_ip) {
        c->rejected = 1;
        c->discard = 1;
        s->stats.connections_rejected_per_ip++;
        if (conn_read_start(c) != 0) {
            conn_close(c);
            return;
        }
        conn_deadline(c, DL_WRITE, s->opts.idle_timeout_ms);
        conn_answer_error(c, 429, "too_many_connections",
                          "too many connections from this address at once");
        return;
    }
    if (s->n_open >= s->opts.max_connections) {
        /* Accept and say why, rather than leave the client in the backlog
         * where it cannot tell overload from a dead server. */
        c->rejected = 1;
        c->discard = 1;
        s->stats.connections_rejected++;
        if (conn_read_start(c) != 0) {
            conn_close(c);
            return;
        }
        conn_deadline(c, DL_WRITE, s->opts.idle_timeout_ms);
        conn_answer_error(c, 503, "unavailable", "too many connections");
        return;
    }
    s->n_open++;
    s->stats.connections_open++;
    if (conn_read_start(c) != 0) {
        conn_close(c);
        return;
    }
    conn_deadline(c, DL_HEAD, s->opts.header_timeout_ms);
}

/* ---- public API --------------------------------------------------------- */

void http_server_opts_default(struct http_server_opts *o)
{
    o->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    o->max_headers = HTTP_DEFAULT_MAX_HEADERS;
    o->max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
    o->header_timeout_ms = HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    o->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    o->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    o->max_connections_per_ip = 0;
    o->server_name = "meridian";
    o->tls = NULL;
}

static void listener_close_cb(uv_handle_t *h)
{
    struct http_server *s = h->data;

    s->listener_closed = 1;
    server_maybe_free(s);
}

/* Resolve <host> for bind: literals directly, names with a blocking lookup
 * (start-up only). */
static int bind_addr(uv_loop_t *loop, const char *host, int port, struct sockaddr_storage *ss,
                     char *err)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    char port_s[16];
    int rc;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port_s, sizeof(port_s), "%d", port);
    /* A NULL callback makes uv_getaddrinfo synchronous. */
    rc = uv_getaddrinfo(loop, &req, NULL, host, port_s, &hints);
    if (rc != 0)
        return mr_seterr(err, MR_EINVAL, "resolve %s: %s", host, uv_strerror(rc));
    memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

static int set_reuse_port(uv_tcp_t *t)
{
    uv_os_fd_t fd;
    int one = 1;
    int rc = uv_fileno((uv_handle_t *)t, &fd);

    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        rc = uv_translate_sys_error(errno);
    return rc;
}

int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_server_opts *opts, http_handler_cb handler, void *data,
                      struct http_server **out, char *err)
{
    struct http_server *s;
    struct sockaddr_storage ss;
    int namelen = (int)sizeof(ss);
    int rc;

    if (loop == NULL || host == NULL || handler == NULL || out == NULL || port < 0 ||
        port > 65535)
        return mr_seterr(err, MR_EINVAL, "http server: bad arguments");
    rc = bind_addr(loop, host, port, &ss, err);
    if (rc != 0)
        return rc;
    http__ignore_sigpipe();
    s = mr_calloc(1, sizeof(*s));
    s->loop = loop;
    if (opts != NULL)
        s->opts = *opts;
    else
        http_server_opts_default(&s->opts);
    s->server_hdr = mr_asprintf("Server: %s\r\n",
                                s->opts.server_name ? s->opts.server_name : "meridian");
    s->server_hdr_len = strlen(s->server_hdr);
    s->opts.server_name = NULL;   /* not ours to keep; the header line is */
    s->handler = handler;
    s->data = data;
    s->date.sec = -1;
    /* With reuse_port the socket must exist before the bind, to set the
     * option on it: uv_tcp_init_ex creates it at once. */
    rc = uv_tcp_init_ex(loop, &s->listener, s->opts.reuse_port ? ss.ss_family : AF_UNSPEC);
    if (rc != 0) {
        mr_free(s->server_hdr);
        mr_free(s);
        return mr_seterr(err, MR_EIO, "http server: %s", uv_strerror(rc));
    }
    s->listener.data = s;
    if (s->opts.reuse_port)
        rc = set_reuse_port(&s->listener);
    if (rc == 0)
        rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &namelen);
    if (rc != 0) {
        /* The socket is closed at once; the memory goes in the close
         * callback, when the caller next runs the loop. */
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, listener_close_cb);
        return mr_seterr(err, MR_EIO, "listen on %s:%d: %s", host, port, uv_strerror(rc));
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_close(struct http_server *s)
{
    struct http_conn *c;

    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, listener_close_cb);
    /* conn_close leaves the list alone: connections unlink in their close
     * callbacks. */
    for (c = s->conns; c != NULL; c = c->next)
        conn_close(c);
}

void http_server_stats(const struct http_server *s, struct http_server_stats *out)
{
    *out = s->stats;
}

void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *body, size_t body_len, const char *extra_headers)
{
    struct http_conn *c = ex->conn;

    if (c == NULL) {
        ex_destroy(ex);
        return;
    }
    if (status < 100 || status > 999)
        status = 500;
    if (!status_has_body(status))
        body_len = 0;
    build_head(c->s, ex, status, content_type, extra_headers, FR_LENGTH, body_len);
    /* RFC 9110 9.3.2: HEAD gets the headers GET would get, without content. */
    if (!ex->head_method && body_len > 0)
        mr_buf_append(&ex->out, body, body_len);
    ex->started = 1;
    ex->complete = 1;
    conn_flush(c);
}

void http_respond_start(struct http_exchange *ex, int status, const char *content_type,
                        const char *extra_headers)
{
    struct http_conn *c = ex->conn;
    enum framing fr = FR_CHUNKED;

    if (status < 100 || status > 999)
        status = 500;
    ex->started = 1;
    ex->discard_body = ex->head_method || !status_has_body(status);
    if (c == NULL)
        return;
    /* HTTP/1.0 has no chunked coding: the body ends when we close. */
    if (ex->http10) {
        fr = FR_CLOSE;
        ex->keep_alive = 0;
    }
    ex->chunked = fr == FR_CHUNKED && !ex->discard_body;
    build_head(c->s, ex, status, content_type, extra_headers, fr, 0);
    conn_flush(c);
}

int http_respond_chunk(struct http_exchange *ex, const void *p, size_t n)
{
    struct http_conn *c = ex->conn;
    char size[20];
    int len;

    if (c == NULL)
        return MR_ECLOSED;
    /* A zero-length chunk would end the body: there is nothing to send. */
    if (n == 0 || ex->discard_body)
        return 0;
    if (ex->chunked) {
        len = snprintf(size, sizeof(size), "%zx\r\n", n);
        mr_buf_append(&ex->out, size, (size_t)len);
    }
    mr_buf_append(&ex->out, p, n);
    if (ex->chunked)
        mr_buf_append(&ex->out, "\r\n", 2);
    conn_flush(c);
    return 0;
}

void http_respond_end(struct http_exchange *ex)
{
    struct http_conn *c = ex->conn;

    if (c == NULL) {
        ex_destroy(ex);
        return;
    }
    if (ex->chunked)
        mr_buf_append(&ex->out, "0\r\n\r\n", 5);
    ex->complete = 1;
    conn_flush(c);
}

const char *http_exchange_peer_cn(const struct http_exchange *ex)
{
    if (ex->conn == NULL || ex->conn->io.tls == NULL)
        return NULL;
    return tls_conn_peer_cn(ex->conn->io.tls);
}

size_t http_exchange_buffered(const struct http_exchange *ex)
{
    return ex->conn != NULL ? ex->out.len + ex->wbuf.len : 0;
}
