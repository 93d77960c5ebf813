/* wan_test.h -- fixture of the wan unit tests: one loop holding the wan, a
 * target server that records what it receives (and can echo it), and clients
 * that record what comes back, all on 127.0.0.1 with kernel ports.  Tests
 * drive the loop until a condition holds, bounded by a deadline
 * (test_timeout_ms scales it); nothing sleeps. */
#ifndef MR_WAN_TEST_H
#define MR_WAN_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"
#include "http/http.h"
#include "lib/wait.h"
#include "wan/wan.h"

#define MAX_PEERS 16

/* One TCP endpoint: a target-side accepted connection, or a client. */
struct peer {
    struct fx *f;
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct mr_buf in;
    int64_t first_us, last_us;  /* when the first / last bytes arrived */
    int connected;
    int ended;                  /* EOF (1) or error (<0) */
    int end_rc;
    int closed;
};

struct fx {
    uv_loop_t loop;
    struct wan *w;
    uv_tcp_t target;
    int target_port;
    int echo;                   /* the target echoes what it reads */
    struct peer *srv[MAX_PEERS]; /* accepted by the target */
    int n_srv;
    struct peer *cli[MAX_PEERS];
    int n_cli;
    int wan_freed;
};

static inline int64_t now_us(void)
{
    return mr_mono_us();
}

static inline void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    *b = uv_buf_init(mr_malloc(n), (unsigned)n);
}

static inline void peer_write_cb(uv_write_t *req, int status)
{
    (void)status;
    mr_free(req->data);
    mr_free(req);
}

static inline void peer_write(struct peer *p, const void *data, size_t n)
{
    uv_write_t *req = mr_malloc(sizeof(*req));
    char *copy = mr_malloc(n);
    uv_buf_t b;

    memcpy(copy, data, n);
    req->data = copy;
    b = uv_buf_init(copy, (unsigned)n);
    assert_int_equal(uv_write(req, (uv_stream_t *)&p->tcp, &b, 1, peer_write_cb), 0);
}

static inline void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct peer *p = s->data;

    if (n > 0) {
        int64_t t = now_us();
        if (p->in.len == 0)
            p->first_us = t;
        p->last_us = t;
        mr_buf_append(&p->in, b->base, (size_t)n);
    } else if (n < 0) {
        p->ended = n == UV_EOF ? 1 : -1;
        p->end_rc = (int)n;
        uv_read_stop(s);
    }
    mr_free(b->base);
}

static inline void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct peer *p = s->data;

    if (n > 0 && p->f->echo)
        peer_write(p, b->base, (size_t)n);
    peer_read(s, n, b);
}

static inline void on_target_conn(uv_stream_t *l, int status)
{
    struct fx *f = l->data;
    struct peer *p;

    assert_int_equal(status, 0);
    assert_true(f->n_srv < MAX_PEERS);
    p = mr_calloc(1, sizeof(*p));
    p->f = f;
    mr_buf_init(&p->in);
    uv_tcp_init(&f->loop, &p->tcp);
    p->tcp.data = p;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&p->tcp), 0);
    p->connected = 1;
    f->srv[f->n_srv++] = p;
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, srv_read);
}

static inline void on_client_connect(uv_connect_t *req, int status)
{
    struct peer *p = req->data;

    if (status != 0) {
        p->ended = -1;
        p->end_rc = status;
        return;
    }
    p->connected = 1;
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static inline struct peer *client_connect(struct fx *f, int port)
{
    struct peer *p = mr_calloc(1, sizeof(*p));
    struct sockaddr_in sa;

    assert_true(f->n_cli < MAX_PEERS);
    p->f = f;
    mr_buf_init(&p->in);
    uv_tcp_init(&f->loop, &p->tcp);
    p->tcp.data = p;
    p->creq.data = p;
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&sa, on_client_connect),
                     0);
    f->cli[f->n_cli++] = p;
    return p;
}

/* Run the loop until <cond> holds or <ms> (scaled) pass; returns cond. */
#define RUN_UNTIL(f, cond, ms)                                                    \
    ({                                                                            \
        int64_t deadline_ = test_now_ms() + test_timeout_ms(ms);                  \
        while (!(cond) && test_now_ms() < deadline_)                              \
            run_a_bit(f);                                                         \
        (cond);                                                                   \
    })

static inline void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* One loop turn that returns within about 5 ms even when nothing happens. */
static inline void run_a_bit(struct fx *f)
{
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, tick_cb, 5, 0);
    uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Let the loop run for <ms> regardless: to show that something does NOT
 * happen within a time (a blackhole holds), never to wait for something. */
static inline void run_for(struct fx *f, int ms)
{
    int64_t end = test_now_ms() + ms;
    while (test_now_ms() < end)
        run_a_bit(f);
}

static inline int fx_setup(void **state)
{
    struct fx *f = mr_calloc(1, sizeof(*f));
    struct sockaddr_in sa;
    int len = sizeof(sa);

    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_tcp_init(&f->loop, &f->target);
    f->target.data = f;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f->target, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->target, 64, on_target_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&f->target, (struct sockaddr *)&sa, &len), 0);
    f->target_port = ntohs(sa.sin_port);
    f->w = wan_new(&f->loop);
    *state = f;
    return 0;
}

static inline void wan_freed_cb(void *data)
{
    ((struct fx *)data)->wan_freed = 1;
}

static inline void peer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    mr_buf_close(&p->in);
    mr_free(p);
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;

    wan_close(f->w, wan_freed_cb, f);
    for (int i = 0; i < f->n_srv; i++)
        uv_close((uv_handle_t *)&f->srv[i]->tcp, peer_closed);
    for (int i = 0; i < f->n_cli; i++)
        uv_close((uv_handle_t *)&f->cli[i]->tcp, peer_closed);
    uv_close((uv_handle_t *)&f->target, NULL);
    for (int i = 0; i < 20 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(f->wan_freed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    mr_free(f);
    return 0;
}

/* A link FROM->TO with <lat_ms>/<reply_ms> and a route to the target through
 * it; returns the route's port. */
static inline int add_link_route(struct fx *f, const char *name, double lat_ms, double reply_ms)
{
    struct wan_settings s;
    char err[MR_ERRMSG_LEN], rname[128];
    int port = 0;

    wan_settings_default(&s);
    s.latency_us[WAN_FWD] = (int64_t)(lat_ms * 1000);
    s.latency_us[WAN_REPLY] = (int64_t)(reply_ms * 1000);
    assert_int_equal(wan_link_add(f->w, name, NULL, NULL, &s, err), 0);
    snprintf(rname, sizeof(rname), "to-target-%s", name);
    assert_int_equal(wan_route_add(f->w, rname, "127.0.0.1", 0, "127.0.0.1", f->target_port, name,
                                   NULL, &port, err),
                     0);
    assert_true(port > 0);
    return port;
}

static inline void set_state(struct fx *f, const char *link, enum wan_state st)
{
    int idx = wan_link_find(f->w, link);
    struct wan_settings s;

    assert_true(idx >= 0);
    assert_int_equal(wan_link_get(f->w, idx, &s), 0);
    s.state = st;
    wan_link_set(f->w, idx, &s, "test");
}

#endif
