/* link.c -- the data path of the wan: accept, identify, connect, and move
 * bytes through each direction's delay queue (see wan.h for the semantics
 * and wan_int.h for the structures).
 *
 * Why one queue and one timer per direction: the release time of a chunk is
 * max(arrival + latency + jitter, release of the chunk before it), so
 * release times never decrease along a queue; only the head can be due, and
 * one timer armed for the head (or for the moment the link's token bucket
 * allows the next bytes) is enough.  Bytes written to the target therefore
 * keep their order even with jitter.
 *
 * Reads go into the wan's one shared buffer (libuv hands each read to its
 * callback before the next alloc) and are copied into a chunk of exactly
 * their size, so a connection with many small messages in flight holds what
 * it received, not 64 KiB per read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "wan_int.h"

#define IDENT_RETRY_MS 20
#define BUCKET_MIN_BURST (16 * 1024)
#define BUCKET_BURST_US 20000   /* a bucket holds at most 20 ms worth of bytes */

static const struct wan_settings direct_settings = {{0, 0}, 0, 0, 0, WAN_UP};

static void pump(struct pipe_ *p);
static void conn_close(struct conn *c, int reset);
static void identify(struct conn *c);
static void start_reading(struct pipe_ *p);

static const struct wan_settings *conn_settings(const struct conn *c)
{
    return c->link >= 0 ? &c->w->links[c->link].s : &direct_settings;
}

static struct link *conn_link(const struct conn *c)
{
    return c->link >= 0 ? &c->w->links[c->link] : NULL;
}

/* ---- lists ---- */

static void list_add(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void list_del(struct conn **head, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static struct conn **conn_list(struct conn *c)
{
    return c->link >= 0 ? &c->w->links[c->link].conns : &c->w->pending;
}

/* ---- closing ---- */

static void conn_unref(struct conn *c)
{
    if (--c->n_handles > 0)
        return;
    for (int d = 0; d < 2; d++) {
        struct chunk *ch = c->p[d].head;
        while (ch) {
            struct chunk *next = ch->next;
            mr_free(ch);
            ch = next;
        }
        c->p[d].head = c->p[d].tail = NULL;
    }
    mr_free(c);
}

static void handle_closed(uv_handle_t *h) /* the sockets: data is the conn */
{
    conn_unref(h->data);
}

static void timer_closed(uv_handle_t *h) /* the timers: data is the pipe */
{
    conn_unref(((struct pipe_ *)h->data)->c);
}

/* Close every handle of <c>; with <reset>, both sockets end with an RST
 * (SO_LINGER 0) rather than a FIN.  Writes in flight are cancelled: their
 * callbacks free what they hold. */
static void conn_close(struct conn *c, int reset)
{
    struct link *l = conn_link(c);

    if (c->closing)
        return;
    c->closing = 1;
    list_del(conn_list(c), c);
    if (l)
        l->st.connections_open--;
    for (int d = 0; d < 2; d++)
        uv_close((uv_handle_t *)&c->p[d].timer, timer_closed);
    if (reset && uv_tcp_close_reset(&c->client, handle_closed) == 0) {
        /* closed with RST */
    } else {
        uv_close((uv_handle_t *)&c->client, handle_closed);
    }
    if (reset && c->connected && uv_tcp_close_reset(&c->server, handle_closed) == 0) {
        /* closed with RST */
    } else {
        uv_close((uv_handle_t *)&c->server, handle_closed);
    }
}

void wan__conn_reset(struct conn *c)
{
    conn_close(c, 1);
}

void wan__conn_close_all(struct wan *w)
{
    for (size_t i = 0; i < w->n_links; i++)
        while (w->links[i].conns)
            conn_close(w->links[i].conns, 0);
    while (w->pending)
        conn_close(w->pending, 0);
}

/* Both directions have delivered their FIN and nothing is left to write. */
static void maybe_finish(struct conn *c)
{
    for (int d = 0; d < 2; d++)
        if (!c->p[d].out_shut || c->p[d].queued > 0)
            return;
    conn_close(c, 0);
}

/* ---- the token bucket of a link direction ---- */

static double bucket_rate(const struct wan_settings *s) /* bytes per microsecond */
{
    return (double)s->bandwidth_kbps / 8000.0;
}

static double bucket_cap(const struct wan_settings *s)
{
    double cap = bucket_rate(s) * BUCKET_BURST_US;
    return cap < BUCKET_MIN_BURST ? BUCKET_MIN_BURST : cap;
}

static void bucket_refill(struct bucket *b, const struct wan_settings *s, int64_t now)
{
    double cap = bucket_cap(s);

    if (b->last_us == 0)
        b->tokens = cap;
    else
        b->tokens += (double)(now - b->last_us) * bucket_rate(s);
    if (b->tokens > cap)
        b->tokens = cap;
    b->last_us = now;
}

/* ---- writing ---- */

/* One timer per direction: before the connection is identified, the forward
 * one paces the identification retries; afterwards it releases bytes. */
static void on_timer(uv_timer_t *t)
{
    struct pipe_ *p = t->data;

    if (p->c->identifying)
        identify(p->c);
    else
        pump(p);
}

static void arm(struct pipe_ *p, int64_t due_us, int64_t now)
{
    int64_t wait = due_us - now;
    uint64_t ms;

    /* Timers have millisecond resolution and fire on the loop's cached
     * clock: round down, and the pump re-arms for what is left (a 0 ms timer
     * for the last fraction), so that nothing leaves before its time. */
    ms = wait <= 0 ? 0 : (uint64_t)(wait / 1000);
    uv_update_time(p->c->w->loop);
    uv_timer_start(&p->timer, on_timer, ms, 0);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *wr = req->data;
    struct pipe_ *p = wr->p;
    struct conn *c = p->c;

    p->queued -= wr->len;
    if (wr->c) {
        p->queued -= WAN__CHUNK_OVERHEAD;
        mr_free(wr->c);
    }
    mr_free(wr);
    if (c->closing)
        return;
    if (status != 0) {
        conn_close(c, 1);
        return;
    }
    /* Below half of the bound: the reader may go on. */
    if (p->paused && p->queued <= WAN_MAX_QUEUED / 2) {
        p->paused = 0;
        start_reading(p);
        if (c->closing)
            return;
    }
    maybe_finish(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct pipe_ *p = req->data;

    if (p->c->closing)
        return;
    if (status != 0 && status != UV_ENOTCONN) {
        conn_close(p->c, 1);
        return;
    }
    maybe_finish(p->c);
}

static void observe(struct conn *c, struct pipe_ *p, const struct chunk *ch, int64_t now)
{
    struct link *l = conn_link(c);
    const struct wan_settings *s = conn_settings(c);
    int64_t intended = s->latency_us[p->dir] + ch->jitter_us;

    if (l == NULL)
        return;
    mr_hist_observe(&l->delay[p->dir], (double)(now - ch->arrive_us) / 1e6);
    mr_hist_observe(&l->error[p->dir], (double)(now - ch->arrive_us - intended) / 1e6);
}

/* Write what is due; arm the timer for what is not. */
static void pump(struct pipe_ *p)
{
    struct conn *c = p->c;
    const struct wan_settings *s = conn_settings(c);
    struct link *l = conn_link(c);
    int64_t now = wan__now_us();

    if (c->closing)
        return;
    if (!c->connected || s->state == WAN_BLACKHOLE || s->state == WAN_REJECT) {
        uv_timer_stop(&p->timer);
        return;
    }
    while (p->head) {
        struct chunk *ch = p->head;
        struct wreq *wr;
        uv_buf_t buf;
        size_t n;
        int rc;

        if (ch->release_us > now) {
            arm(p, ch->release_us, now);
            return;
        }
        if (ch->eof) {
            p->head = ch->next;
            if (p->head == NULL)
                p->tail = NULL;
            p->queued -= WAN__CHUNK_OVERHEAD;
            if (ch->eof == 2) {
                mr_free(ch);
                conn_close(c, 1);
                return;
            }
            mr_free(ch);
            p->sreq.data = p;
            p->out_shut = 1;
            if (uv_shutdown(&p->sreq, p->out, on_shutdown) != 0) {
                conn_close(c, 1);
                return;
            }
            break;
        }
        n = ch->len - ch->off;
        if (s->bandwidth_kbps > 0 && l != NULL) {
            struct bucket *b = &l->bucket[p->dir];
            bucket_refill(b, s, now);
            if (b->tokens < 1.0 || (b->tokens < (double)n && b->tokens < BUCKET_MIN_BURST / 4)) {
                double need = (double)(n < BUCKET_MIN_BURST / 4 ? n : BUCKET_MIN_BURST / 4);
                int64_t wait = (int64_t)((need - b->tokens) / bucket_rate(s)) + 1;
                arm(p, now + wait, now);
                return;
            }
            if ((double)n > b->tokens)
                n = (size_t)b->tokens;
            b->tokens -= (double)n;
        }
        if (ch->off == 0)
            observe(c, p, ch, now);
        wr = mr_malloc(sizeof(*wr));
        wr->p = p;
        wr->len = n;
        wr->req.data = wr;
        buf = uv_buf_init(ch->data + ch->off, (unsigned)n);
        ch->off += n;
        if (ch->off == ch->len) {
            p->head = ch->next;
            if (p->head == NULL)
                p->tail = NULL;
            wr->c = ch;
        } else {
            wr->c = NULL;
        }
        if (l)
            l->st.bytes[p->dir] += n;
        rc = uv_write(&wr->req, p->out, &buf, 1, on_write);
        if (rc != 0) {
            p->queued -= wr->len + (wr->c ? WAN__CHUNK_OVERHEAD : 0);
            mr_free(wr->c);
            mr_free(wr);
            conn_close(c, 1);
            return;
        }
    }
    uv_timer_stop(&p->timer);
}


/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void enqueue(struct pipe_ *p, const char *data, size_t n, int eof)
{
    struct conn *c = p->c;
    const struct wan_settings *s = conn_settings(c);
    struct chunk *ch = mr_malloc(sizeof(*ch) + n);
    int64_t now = wan__now_us();

    ch->next = NULL;
    ch->arrive_us = now;
    ch->jitter_us = s->jitter_us > 0 ? (int64_t)(mr_random64() % (uint64_t)(s->jitter_us + 1)) : 0;
    if (eof == 1 && s->state == WAN_SLOW_CLOSE)
        ch->jitter_us += s->close_delay_us;
    ch->release_us = now + s->latency_us[p->dir] + ch->jitter_us;
    if (p->tail && p->tail->release_us > ch->release_us)
        ch->release_us = p->tail->release_us;
    ch->len = n;
    ch->off = 0;
    ch->eof = eof;
    if (n)
        memcpy(ch->data, data, n);
    if (p->tail)
        p->tail->next = ch;
    else
        p->head = ch;
    p->tail = ch;
    p->queued += n + WAN__CHUNK_OVERHEAD;
}

static struct pipe_ *pipe_of(uv_stream_t *s)
{
    struct conn *c = s->data;
    return (uv_tcp_t *)s == &c->client ? &c->p[WAN_FWD] : &c->p[WAN_REPLY];
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct pipe_ *p = pipe_of(stream);
    struct conn *c = p->c;

    if (c->closing || nread == 0)
        return;
    if (nread > 0) {
        enqueue(p, buf->base, (size_t)nread, 0);
        if (p->queued >= WAN_MAX_QUEUED) {
            uv_read_stop(stream);
            p->reading = 0;
            p->paused = 1;
        }
    } else {
        /* The end, orderly or not, travels behind the bytes before it. */
        uv_read_stop(stream);
        p->reading = 0;
        p->paused = 0;
        p->in_done = 1;
        enqueue(p, NULL, 0, nread == UV_EOF ? 1 : 2);
    }
    pump(p);
}

static void start_reading(struct pipe_ *p)
{
    if (uv_read_start(p->in, alloc_cb, on_read) != 0) {
        conn_close(p->c, 1);
        return;
    }
    p->reading = 1;
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (c->closing)
        return;
    if (status != 0) {
        mr_log(MR_LOG_DEBUG, "wan", "route %s: connect to %s:%d: %s; resetting %s", c->r->name,
               c->r->target_host, c->r->target_port, uv_strerror(status), c->peer);
        conn_close(c, 1);
        return;
    }
    c->connected = 1;
    uv_tcp_nodelay(&c->server, 1);
    start_reading(&c->p[WAN_REPLY]);
    if (!c->closing)
        pump(&c->p[WAN_FWD]);
}

/* <c> now belongs to link <idx> (-1: direct, no emulation). */
static void attach(struct conn *c, int idx)
{
    struct wan *w = c->w;
    struct sockaddr_in sa;
    int rc;

    list_del(&w->pending, c);
    c->identifying = 0;
    c->link = idx;
    if (idx >= 0) {
        struct link *l = &w->links[idx];
        l->st.connections++;
        if (l->s.state == WAN_REJECT) {
            l->st.connections_refused++;
            c->link = -1;
            list_add(&w->pending, c);
            conn_close(c, 1);
            return;
        }
        l->st.connections_open++;
    }
    list_add(conn_list(c), c);
    c->creq.data = c;
    rc = uv_ip4_addr(c->r->target_host, c->r->target_port, &sa);
    if (rc == 0)
        rc = uv_tcp_connect(&c->creq, &c->server, (struct sockaddr *)&sa, on_connect);
    if (rc != 0) {
        mr_log(MR_LOG_WARN, "wan", "route %s: connect to %s:%d: %s", c->r->name,
               c->r->target_host, c->r->target_port, uv_strerror(rc));
        conn_close(c, 1);
        return;
    }
    start_reading(&c->p[WAN_FWD]);
}

/* Which link a connection on a shared route uses: that of the region of the
 * process on the other end.  Retried for a while: the supervisor may not
 * have told us a new pid yet. */
static void identify(struct conn *c)
{
    struct wan *w = c->w;
    struct sockaddr_in peer, local;
    int len = sizeof(peer), pid, *pids;
    const char *region = NULL;

    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer, &len) != 0 ||
        (len = sizeof(local), uv_tcp_getsockname(&c->client, (struct sockaddr *)&local, &len)) != 0 ||
        peer.sin_family != AF_INET) {
        pid = 0;
    } else {
        pids = mr_malloc((w->n_pids + 1) * sizeof(*pids));
        for (size_t i = 0; i < w->n_pids; i++)
            pids[i] = w->pids[i].pid;
        pid = wan__ident_pid(&peer, &local, pids, w->n_pids);
        mr_free(pids);
    }
    if (pid > 0)
        region = wan__region_of_pid(w, pid);
    if (region != NULL) {
        char name[2 * WAN_NAME_MAX + 3];
        int idx;
        if (strcmp(region, c->r->to_region) == 0) {
            attach(c, -1); /* same region: direct */
            return;
        }
        snprintf(name, sizeof(name), "%s->%s", region, c->r->to_region);
        idx = wan_link_find(w, name);
        if (idx >= 0) {
            mr_log(MR_LOG_DEBUG, "wan", "route %s: %s is pid %d in %s: link %s", c->r->name,
                   c->peer, pid, region, name);
            attach(c, idx);
            return;
        }
        mr_log(MR_LOG_WARN, "wan", "route %s: %s is pid %d in %s but there is no link %s: "
               "carried without delay", c->r->name, c->peer, pid, region, name);
        w->unidentified++;
        attach(c, -1);
        return;
    }
    if (++c->ident_tries * IDENT_RETRY_MS < WAN_IDENT_TIMEOUT_MS) {
        uv_timer_start(&c->p[WAN_FWD].timer, on_timer, IDENT_RETRY_MS, 0);
        return;
    }
    mr_log(MR_LOG_WARN, "wan", "route %s: cannot tell which region %s (pid %d) is in after %d ms: "
           "carried without delay", c->r->name, c->peer, pid, WAN_IDENT_TIMEOUT_MS);
    w->unidentified++;
    attach(c, -1);
}

void wan__conn_accept(struct route *r)
{
    struct wan *w = r->w;
    struct conn *c = mr_calloc(1, sizeof(*c));
    struct sockaddr_in peer;
    int len = sizeof(peer);

    c->w = w;
    c->r = r;
    c->link = -1;
    c->accepted_us = wan__now_us();
    uv_tcp_init(w->loop, &c->client);
    uv_tcp_init(w->loop, &c->server);
    c->client.data = c->server.data = c;
    c->n_handles = 4;
    for (int d = 0; d < 2; d++) {
        struct pipe_ *p = &c->p[d];
        p->c = c;
        p->dir = d;
        p->in = (uv_stream_t *)(d == WAN_FWD ? &c->client : &c->server);
        p->out = (uv_stream_t *)(d == WAN_FWD ? &c->server : &c->client);
        uv_timer_init(w->loop, &p->timer);
        p->timer.data = p;
    }
    list_add(&w->pending, c);
    if (uv_accept((uv_stream_t *)&r->listener, (uv_stream_t *)&c->client) != 0) {
        conn_close(c, 0);
        return;
    }
    uv_tcp_nodelay(&c->client, 1);
    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer, &len) == 0) {
        char ip[32];
        uv_ip4_name(&peer, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, ntohs(peer.sin_port));
    }
    if (r->link >= 0) {
        attach(c, r->link);
        return;
    }
    c->identifying = 1;
    identify(c);
}

/* ---- settings changes ---- */

/* Re-schedule the queued chunks of <p> from their arrival under the link's
 * current settings, keeping the order rule. */
static void reschedule(struct pipe_ *p)
{
    const struct wan_settings *s = conn_settings(p->c);
    int64_t prev = 0;

    for (struct chunk *ch = p->head; ch; ch = ch->next) {
        if (ch->off > 0) { /* partly written: it is already due */
            prev = ch->release_us;
            continue;
        }
        ch->release_us = ch->arrive_us + s->latency_us[p->dir] + ch->jitter_us;
        if (ch->release_us < prev)
            ch->release_us = prev;
        prev = ch->release_us;
    }
}

void wan__link_apply(struct wan *w, int idx)
{
    struct link *l = &w->links[idx];
    struct conn *c, *next;

    if (l->s.state == WAN_REJECT) {
        for (c = l->conns; c; c = next) {
            next = c->next;
            l->st.connections_refused++;
            conn_close(c, 1);
        }
        return;
    }
    for (c = l->conns; c; c = c->next) {
        for (int d = 0; d < 2; d++)
            reschedule(&c->p[d]);
        for (int d = 0; d < 2 && !c->closing; d++)
            pump(&c->p[d]);
    }
}
