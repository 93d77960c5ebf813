/* fuzz_edge_cache.c -- the edge's Cache-Control parser and caching decisions
 * (src/edge/cache.c): header values as an origin answers them and a client
 * sends them, through edge_cc_parse, edge_cache_storable, edge_cache_store,
 * edge_cache_lookup and edge_cache_evict_key, on one small cache per input
 * (so that stores evict).  Times come from the input, never the clock.
 *
 * Input: lines.  A command line starts a request; the lines after it, up to
 * the next command, are its headers and body:
 *
 *   S STATUS NOW_MS KEY     store the answer to a GET of KEY
 *   L NOW_MS KEY            look KEY up
 *   E KEY                   evict KEY
 *   >Name: value            a request header
 *   <Name: value            a response header (S only)
 *   =text                   body bytes (S only)
 *
 * Checks beyond "no crash", as edge.h promises them: a duration is -1 or a
 * number of seconds, and an unknown directive changes nothing; a storable
 * answer has explicit freshness, no no-store, private or no-cache, no Vary:
 * *, no Set-Cookie, a request Authorization only with public or s-maxage,
 * and a request without no-store; only what is storable is stored, and the
 * cache stays within its byte bound; an answer just stored (no Age, no
 * request directives) is looked up fresh, as stored; a request's no-cache
 * or no-store gets at most a stale-if-error answer, and a request's
 * max-age=N no fresh or stale-while-revalidate answer older than N
 * (RFC 9111 5.2.1.1); an age is never negative; an evicted key is gone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "edge/edge.h"
#include "fuzz.h"

#define MAX_HEADERS 32
#define CACHE_BYTES 4096
#define CACHE_OBJECT 2048
#define MAX_NOW_MS 10000000000000LL   /* year 2286: no clock says more */

struct cmd {
    char op;                          /* 'S', 'L', 'E', or 0 for none */
    int status;
    int64_t now_ms;
    const char *key;
    struct http_header rq[MAX_HEADERS], rs[MAX_HEADERS];
    size_t n_rq, n_rs;
    struct mr_buf body;
};

static int cc_same(const struct edge_cc *a, const struct edge_cc *b)
{
    return a->max_age == b->max_age && a->s_maxage == b->s_maxage && a->swr == b->swr &&
           a->sie == b->sie && a->no_store == b->no_store && a->no_cache == b->no_cache &&
           a->private_ == b->private_ && a->public_ == b->public_ &&
           a->must_revalidate == b->must_revalidate && a->proxy_revalidate == b->proxy_revalidate &&
           a->only_if_cached == b->only_if_cached;
}

static int duration_ok(int64_t d)
{
    return d == -1 || (d >= 0 && d <= INT32_MAX);
}

/* edge_cc_parse on <v>, with its promises checked. */
static void cc_parse(const char *v, struct edge_cc *out)
{
    struct edge_cc again;
    struct mr_buf b;

    edge_cc_parse(v, out);
    if (!duration_ok(out->max_age) || !duration_ok(out->s_maxage) || !duration_ok(out->swr) ||
        !duration_ok(out->sie))
        abort();
    mr_buf_init(&b);
    mr_buf_puts(&b, "x-fuzz-unknown=\"1,2\", ");
    mr_buf_puts(&b, v ? v : "");
    edge_cc_parse(b.data, &again);
    if (!cc_same(out, &again))
        abort();
    mr_buf_close(&b);
}

/* Every field line named <name>, combined (RFC 9110 5.3), parsed. */
static void cc_of(const struct http_header *h, size_t n, const char *name, struct edge_cc *out)
{
    struct mr_buf b;

    mr_buf_init(&b);
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0) {
            if (b.len)
                mr_buf_puts(&b, ", ");
            mr_buf_puts(&b, h[i].value);
        }
    cc_parse(b.data, out);
    mr_buf_close(&b);
}

static int has(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return 1;
    return 0;
}

/* A Vary field line holds the list member "*" (RFC 9110 5.6.1: members
 * separated by commas, with optional whitespace around them). */
static int vary_star(const struct http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = h[i].value;
        if (strcasecmp(h[i].name, "Vary") != 0)
            continue;
        while (*p) {
            size_t len;
            p += strspn(p, " \t,");
            len = strcspn(p, ",");
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            if (len == 1 && *p == '*')
                return 1;
            p += strcspn(p, ",");
        }
    }
    return 0;
}

static void check_bound(const struct edge_cache *c)
{
    struct edge_cache_stats st;

    edge_cache_stats(c, &st);
    if (st.bytes > CACHE_BYTES || (st.entries == 0) != (st.bytes == 0))
        abort();
}

/* A lookup, with what edge.h promises about the request's directives. */
static enum edge_fresh lookup(struct edge_cache *c, const struct edge_cache_req *r, struct edge_cached *out)
{
    enum edge_fresh f = edge_cache_lookup(c, r, out);
    struct edge_cc rcc;

    if (f == EDGE_CACHE_NONE)
        return f;
    if (f != EDGE_CACHE_FRESH && f != EDGE_CACHE_STALE_SWR && f != EDGE_CACHE_STALE_SIE)
        abort();
    if (out->age_s < 0 || out->fresh != f || (out->body_len > 0 && out->body == NULL))
        abort();
    cc_of(r->headers, r->n_headers, "Cache-Control", &rcc);
    if ((rcc.no_cache || rcc.no_store) && f != EDGE_CACHE_STALE_SIE)
        abort();
    if (rcc.max_age >= 0 && f != EDGE_CACHE_STALE_SIE && out->age_s > rcc.max_age)
        abort();
    check_bound(c);
    return f;
}

static void run(struct edge_cache *c, struct cmd *m)
{
    struct edge_cache_req r = {m->key, m->rq, m->n_rq, m->now_ms};
    struct edge_cc cc, rcc;
    struct edge_cached got;
    int storable, stored;

    switch (m->op) {
    case 'S':
        storable = edge_cache_storable(&r, m->status, m->rs, m->n_rs);
        cc_of(m->rs, m->n_rs, "Cache-Control", &cc);
        cc_of(m->rq, m->n_rq, "Cache-Control", &rcc);
        if (storable && ((cc.s_maxage <= 0 && cc.max_age <= 0) || cc.no_store || cc.private_ ||
                         cc.no_cache || vary_star(m->rs, m->n_rs) || has(m->rs, m->n_rs, "Set-Cookie") ||
                         (has(m->rq, m->n_rq, "Authorization") && !cc.public_ && cc.s_maxage < 0) ||
                         rcc.no_store))
            abort();
        /* As the edge calls it: a whole body, "" when empty (never NULL). */
        stored = edge_cache_store(c, &r, m->status, m->rs, m->n_rs, "text/plain", "X-Fuzz: 1\r\n",
                                  m->body.data ? m->body.data : "", m->body.len);
        if (stored && !storable)
            abort();
        check_bound(c);
        /* Just stored, no Age, nothing asked by the request: a fresh hit. */
        if (stored && m->n_rq == 0 && !has(m->rs, m->n_rs, "Age")) {
            if (lookup(c, &r, &got) != EDGE_CACHE_FRESH || got.status != m->status ||
                got.age_s != 0 || got.body_len != m->body.len ||
                (m->body.len && memcmp(got.body, m->body.data, m->body.len) != 0) ||
                got.content_type == NULL || strcmp(got.content_type, "text/plain") != 0 ||
                strcmp(got.headers, "X-Fuzz: 1\r\n") != 0)
                abort();
        }
        break;
    case 'L':
        (void)lookup(c, &r, &got);
        break;
    case 'E':
        edge_cache_evict_key(c, m->key);
        check_bound(c);
        if (edge_cache_lookup(c, &r, &got) != EDGE_CACHE_NONE)
            abort();
        break;
    }
}

static int64_t number(const char **p, int64_t max)
{
    int64_t x = 0;

    *p += strspn(*p, " ");
    while (**p >= '0' && **p <= '9') {
        if (x <= max)
            x = x * 10 + (**p - '0');
        (*p)++;
    }
    return x > max ? max : x;
}

/* "Name: value" into <h>; the value is parsed as Cache-Control whatever
 * its name, for the parser's sake. */
static void header(char *line, struct http_header *h, size_t *n)
{
    char *colon = strchr(line, ':'), *v = "";
    struct edge_cc cc;

    if (colon) {
        *colon = '\0';
        v = colon + 1 + strspn(colon + 1, " \t");
    }
    cc_parse(v, &cc);
    if (*n == MAX_HEADERS)
        return;
    h[*n].name = line;
    h[*n].value = v;
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size), *line = text, *next;
    struct edge_cache *c = edge_cache_new(CACHE_BYTES, CACHE_OBJECT);
    struct edge_cc cc;
    struct cmd m;

    cc_parse(text, &cc); /* the whole input as one field value */
    memset(&m, 0, sizeof(m));
    mr_buf_init(&m.body);
    for (; line != NULL; line = next) {
        const char *p = line + 1;
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        switch (line[0]) {
        case 'S': case 'L': case 'E':
            run(c, &m);
            mr_buf_reset(&m.body);
            m.n_rq = m.n_rs = 0;
            m.op = line[0];
            m.status = m.op == 'S' ? (int)number(&p, 999) : 0;
            m.now_ms = m.op != 'E' ? number(&p, MAX_NOW_MS) : 0;
            m.key = p + strspn(p, " ");
            break;
        case '>': header(line + 1, m.rq, &m.n_rq); break;
        case '<': header(line + 1, m.rs, &m.n_rs); break;
        case '=': mr_buf_puts(&m.body, line + 1); break;
        }
    }
    run(c, &m);
    mr_buf_close(&m.body);
    edge_cache_free(c);
    free(text);
    return 0;
}
