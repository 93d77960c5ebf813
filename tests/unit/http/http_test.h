/* http_test.h -- helpers shared by the src/http unit tests (header-only: the
 * Makefile builds each test_*.c alone with the module).
 *
 *   run_until()   run the loop until a flag is set; a uv timer bounds the
 *                 wait (a guard, never a synchronisation device)
 *   struct raw    a raw TCP client: send exact bytes, collect what comes back
 *   struct rsrv   a raw TCP server whose reaction to each request head is
 *                 scripted by the test, for misbehaving-server cases
 *
 * Everything runs on the test's loop; nothing sleeps.
 */
#ifndef MR_TEST_HTTP_H
#define MR_TEST_HTTP_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "http/http.h"

/* Generous bound for anything a test waits for; tests take milliseconds. */
#define GUARD_MS 5000

static inline void guard_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static inline void guard_close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Run <loop> until *flag becomes nonzero, at most <ms>.  Returns *flag. */
static inline int run_until_ms(uv_loop_t *loop, const int *flag, uint64_t ms)
{
    uv_timer_t guard;
    int fired = 0;

    uv_timer_init(loop, &guard);
    guard.data = &fired;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (!*flag && !fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, guard_close_cb);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

static inline int run_until(uv_loop_t *loop, const int *flag)
{
    return run_until_ms(loop, flag, GUARD_MS);
}

/* Run <loop> until <pred>(<arg>) holds (checked after every loop turn),
 * at most GUARD_MS.  Returns the predicate's last value. */
typedef int (*pred_cb)(void *arg);

struct pred_wait {
    pred_cb pred;
    void *arg;
    int done;
};

static inline void pred_check_cb(uv_check_t *c)
{
    struct pred_wait *w = c->data;

    if (w->pred(w->arg))
        w->done = 1;
}

static inline int run_pred(uv_loop_t *loop, pred_cb pred, void *arg)
{
    struct pred_wait w = {pred, arg, 0};
    uv_check_t check;

    if (pred(arg))
        return 1;
    uv_check_init(loop, &check);
    check.data = &w;
    uv_check_start(&check, pred_check_cb);
    run_until(loop, &w.done);
    uv_close((uv_handle_t *)&check, guard_close_cb);
    uv_run(loop, UV_RUN_NOWAIT);
    return pred(arg);
}

static inline void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle: %s\n", uv_handle_type_name(h->type));
}

/* Drain close callbacks, then check nothing is left on the loop. */
static inline void loop_finish(uv_loop_t *loop)
{
    for (int i = 0; i < 10; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    if (uv_loop_alive(loop))
        uv_walk(loop, walk_cb, NULL);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- raw client --------------------------------------------------------- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct mr_buf in;
    int connected;
    int eof;           /* EOF or error seen */
    int closed;        /* close callback ran */
    int n_writes;      /* writes in flight */
};

struct raw_write {
    uv_write_t req;
    struct raw *r;
    char data[];
};

static inline void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = mr_malloc(sz);
    b->len = sz;
}

static inline void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;

    if (n > 0)
        mr_buf_append(&r->in, b->base, (size_t)n);
    else if (n < 0)
        r->eof = 1;
    mr_free(b->base);
}

static inline void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;

    if (status == 0) {
        r->connected = 1;
        uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    } else {
        r->eof = 1;
    }
}

static inline void raw_connect(uv_loop_t *loop, struct raw *r, int port)
{
    struct sockaddr_in sa;

    memset(r, 0, sizeof(*r));
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&sa, raw_connect_cb),
                     0);
    assert_true(run_until(loop, &r->connected));
}

static inline void raw_write_cb(uv_write_t *req, int status)
{
    struct raw_write *w = (struct raw_write *)req;

    (void)status;
    w->r->n_writes--;
    mr_free(w);
}

static inline void raw_send_n(struct raw *r, const char *p, size_t n)
{
    struct raw_write *w = mr_malloc(sizeof(*w) + n);
    uv_buf_t b;

    memcpy(w->data, p, n);
    w->r = r;
    b = uv_buf_init(w->data, (unsigned int)n);
    r->n_writes++;
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb), 0);
}

static inline void raw_send(struct raw *r, const char *s)
{
    raw_send_n(r, s, strlen(s));
}

static inline void raw_close_cb(uv_handle_t *h)
{
    struct raw *r = h->data;

    mr_buf_close(&r->in);
    r->closed = 1;
}

static inline void raw_close(uv_loop_t *loop, struct raw *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
    run_until(loop, &r->closed);
}

/* Close with RST (SO_LINGER 0), as a crashed client's kernel would. */
static inline void raw_reset(uv_loop_t *loop, struct raw *r)
{
    assert_int_equal(uv_tcp_close_reset(&r->tcp, raw_close_cb), 0);
    run_until(loop, &r->closed);
}

static inline int count_substr(const char *hay, const char *needle)
{
    int n = 0;

    if (hay == NULL)
        return 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* How many whole answers <r> has received: "HTTP/1.1 " heads whose
 * Content-Length bodies are all in. */
static inline int raw_answers(const struct raw *r)
{
    const char *p = r->in.data;
    int n = 0;

    while (p != NULL && (p = strstr(p, "HTTP/1.1 ")) != NULL) {
        const char *end = strstr(p, "\r\n\r\n");
        const char *cl;
        size_t len = 0;

        if (end == NULL)
            break;
        cl = strcasestr(p, "Content-Length: ");
        if (cl != NULL && cl < end)
            len = strtoul(cl + 16, NULL, 10);
        if ((size_t)(r->in.data + r->in.len - (end + 4)) < len)
            break;
        n++;
        p = end + 4 + len;
    }
    return n;
}

struct raw_wait {
    struct raw *r;
    int want;
    const char *want_str;
};

static inline int raw_wait_pred(void *arg)
{
    struct raw_wait *w = arg;

    if (w->r->eof)
        return 1;
    if (w->want_str != NULL)
        return w->r->in.data != NULL && strstr(w->r->in.data, w->want_str) != NULL;
    return raw_answers(w->r) >= w->want;
}

/* Run until <r> holds <want> whole answers, or EOF; returns how many. */
static inline int raw_wait_answers(uv_loop_t *loop, struct raw *r, int want)
{
    struct raw_wait w = {r, want, NULL};

    run_pred(loop, raw_wait_pred, &w);
    return raw_answers(r);
}

/* Run until <str> has arrived on <r>, or EOF; returns whether it did. */
static inline int raw_wait_str(uv_loop_t *loop, struct raw *r, const char *str)
{
    struct raw_wait w = {r, 0, str};

    run_pred(loop, raw_wait_pred, &w);
    return r->in.data != NULL && strstr(r->in.data, str) != NULL;
}

/* Wait for EOF from the peer. */
static inline int raw_wait_eof(uv_loop_t *loop, struct raw *r)
{
    return run_until(loop, &r->eof);
}

/* ---- raw server --------------------------------------------------------- */

struct rsrv;
struct rsrv_conn {
    uv_tcp_t tcp;
    struct rsrv *srv;
    struct mr_buf in;
    int index;          /* 0 for the first connection accepted, ... */
    int n_heads;        /* request heads seen so far */
    int close_after_write;  /* set by a script: FIN once the answer is out */
    int closed;
};

/* Called for each complete request head (bodies are not supported); returns
 * the bytes to answer (static string) or NULL to close the connection
 * without answering. */
typedef const char *(*rsrv_script_cb)(struct rsrv_conn *c, int request_no);

struct rsrv {
    uv_tcp_t listener;
    int port;
    rsrv_script_cb script;
    int n_conns;
    int n_heads;       /* request heads seen on all connections */
    struct rsrv_conn *conns[16];
    int closed;
};

static inline void rsrv_conn_close_cb(uv_handle_t *h)
{
    struct rsrv_conn *c = h->data;

    mr_buf_close(&c->in);
    c->closed = 1;
}

static inline void rsrv_conn_close(struct rsrv_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, rsrv_conn_close_cb);
}

static inline void rsrv_write_cb(uv_write_t *req, int status)
{
    struct rsrv_conn *c = req->data;

    (void)status;
    mr_free(req);
    if (c->close_after_write)
        rsrv_conn_close(c);
}

static inline void rsrv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct rsrv_conn *c = s->data;
    char *end;

    if (n < 0) {
        rsrv_conn_close(c);
    } else if (n > 0) {
        mr_buf_append(&c->in, b->base, (size_t)n);
        while (!uv_is_closing((uv_handle_t *)&c->tcp) &&
               (end = strstr(c->in.data, "\r\n\r\n")) != NULL) {
            const char *ans;

            mr_buf_consume(&c->in, (size_t)(end + 4 - c->in.data));
            c->srv->n_heads++;
            ans = c->srv->script(c, c->n_heads++);
            if (ans == NULL) {
                rsrv_conn_close(c);
            } else {
                uv_write_t *w = mr_malloc(sizeof(*w));
                uv_buf_t ob = uv_buf_init((char *)ans, (unsigned int)strlen(ans));

                w->data = c;

                uv_write(w, (uv_stream_t *)&c->tcp, &ob, 1, rsrv_write_cb);
            }
        }
    }
    mr_free(b->base);
}

static inline void rsrv_on_conn(uv_stream_t *l, int status)
{
    struct rsrv *s = l->data;
    struct rsrv_conn *c;

    assert_int_equal(status, 0);
    assert_true(s->n_conns < 16);
    c = mr_calloc(1, sizeof(*c));
    c->srv = s;
    c->index = s->n_conns;
    s->conns[s->n_conns++] = c;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, rsrv_read);
}

static inline void rsrv_start(uv_loop_t *loop, struct rsrv *s, rsrv_script_cb script)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(s, 0, sizeof(*s));
    s->script = script;
    uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 16, rsrv_on_conn), 0);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static inline void rsrv_listener_close_cb(uv_handle_t *h)
{
    struct rsrv *s = h->data;

    s->closed = 1;
}

static inline void rsrv_stop(uv_loop_t *loop, struct rsrv *s)
{
    for (int i = 0; i < s->n_conns; i++)
        rsrv_conn_close(s->conns[i]);
    uv_close((uv_handle_t *)&s->listener, rsrv_listener_close_cb);
    run_until(loop, &s->closed);
    for (int i = 0; i < s->n_conns; i++) {
        run_until(loop, &s->conns[i]->closed);
        mr_free(s->conns[i]);
    }
}

#endif
