/* cache.c -- the edge's in-memory HTTP cache (RFC 9111, shared cache) and the
 * Cache-Control parser.
 *
 * Layout: a chained hash table on the key ("path?query"); each key may hold
 * several variants, one per combination of the request header values that
 * the answer's Vary names (RFC 9111 4.1).  Every entry is also on one LRU
 * list; a store evicts from its tail until the byte bound holds.
 *
 * Policy (what a shared cache MAY do, kept simple and safe):
 *   - only GET answers with explicit freshness (s-maxage, else max-age) are
 *     stored; no heuristic freshness, no Expires;
 *   - no-store, private, no-cache (we do not revalidate with conditional
 *     requests), Vary: *, and answers carrying Set-Cookie are not stored;
 *   - a request with Authorization is stored only under public or s-maxage
 *     (RFC 9111 3.5);
 *   - stored entries are kept past their freshness for the longer of
 *     stale-while-revalidate and stale-if-error (RFC 5861), then dropped.
 *
 * No clock of its own: every call gets the time, so tests run on a fake one.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "edge.h"

#define N_BUCKETS 4096
#define ENTRY_OVERHEAD 256   /* bytes charged per entry for the struct itself */

struct entry {
    struct entry *hnext;             /* bucket chain */
    struct entry *lprev, *lnext;     /* LRU list, most recent first */
    char *key;
    char *vary;                      /* lower-case names, "," separated; "" */
    char *vary_vals;                 /* the request's values, "\n" separated */
    int status;
    char *content_type;
    char *headers;
    char *body;
    size_t body_len;
    size_t size;
    int64_t stored_ms;               /* response_time */
    int64_t age0_s;                  /* Age header received */
    int64_t lifetime_s;              /* freshness_lifetime */
    int64_t swr_s, sie_s;
    unsigned must_revalidate : 1;
};

struct edge_cache {
    struct entry *buckets[N_BUCKETS];
    struct entry *lru_head, *lru_tail;
    size_t max_bytes, max_object;
    struct edge_cache_stats st;
};

/* ---- Cache-Control ------------------------------------------------------ */

static int64_t delta_seconds(const char *v, size_t n)
{
    int64_t x = 0;

    /* RFC 9111 1.2.2: 1*DIGIT; a quoted value is tolerated (4.2.1 says
     * senders must not, recipients may). */
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        /* RFC 9111 1.2.2: an overflow means "a very long time". */
        if (x < INT32_MAX)
            x = x * 10 + (v[i] - '0');
    }
    return x > INT32_MAX ? INT32_MAX : x;
}

void edge_cc_parse(const char *v, struct edge_cc *out)
{
    *out = (struct edge_cc){0};
    out->max_age = out->s_maxage = out->swr = out->sie = -1;
    if (v == NULL)
        return;
    while (*v) {
        const char *name, *val = NULL;
        size_t nlen, vlen = 0;

        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (*v == '\0')
            break;
        name = v;
        while (*v && *v != '=' && *v != ',' && *v != ' ' && *v != '\t')
            v++;
        nlen = (size_t)(v - name);
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '=') {
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            val = v;
            if (*v == '"') {
                v++;
                while (*v && *v != '"')
                    v += (*v == '\\' && v[1]) ? 2 : 1;
                if (*v == '"')
                    v++;
            } else {
                while (*v && *v != ',' && *v != ' ' && *v != '\t')
                    v++;
            }
            vlen = (size_t)(v - val);
        }
        while (*v && *v != ',')
            v++;
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
        if (IS("max-age"))
            out->max_age = val ? delta_seconds(val, vlen) : -1;
        else if (IS("s-maxage"))
            out->s_maxage = val ? delta_seconds(val, vlen) : -1;
        else if (IS("stale-while-revalidate"))
            out->swr = val ? delta_seconds(val, vlen) : -1;
        else if (IS("stale-if-error"))
            out->sie = val ? delta_seconds(val, vlen) : -1;
        else if (IS("no-store"))
            out->no_store = 1;
        else if (IS("no-cache"))
            out->no_cache = 1;
        else if (IS("private"))
            out->private_ = 1;
        else if (IS("public"))
            out->public_ = 1;
        else if (IS("must-revalidate"))
            out->must_revalidate = 1;
        else if (IS("proxy-revalidate"))
            out->proxy_revalidate = 1;
        else if (IS("only-if-cached"))
            out->only_if_cached = 1;
#undef IS
    }
}

/* ---- helpers ------------------------------------------------------------ */

static const char *hdr(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* Every value of <name> joined with ", " (RFC 9110 5.3), into <b>. */
static void hdr_all(const struct http_header *h, size_t n, const char *name, struct mr_buf *b)
{
    int first = 1;

    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0) {
            if (!first)
                mr_buf_puts(b, ", ");
            mr_buf_puts(b, h[i].value);
            first = 0;
        }
}

void edge_cc_parse_fields(const struct http_header *h, size_t n, struct edge_cc *out)
{
    struct mr_buf b;

    mr_buf_init(&b);
    hdr_all(h, n, "Cache-Control", &b);
    edge_cc_parse(b.data, out);
    mr_buf_close(&b);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The Vary field names, lower case, trimmed, "," separated; "*" for Vary: *. */
static void vary_names(const struct http_header *h, size_t n, struct mr_buf *out)
{
    struct mr_buf all;
    const char *p;

    mr_buf_init(&all);
    hdr_all(h, n, "Vary", &all);
    p = all.data ? all.data : "";
    while (*p) {
        const char *s;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        s = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p > s) {
            if (out->len)
                mr_buf_putc(out, ',');
            for (const char *q = s; q < p; q++)
                mr_buf_putc(out, (char)tolower((unsigned char)*q));
        }
        while (*p && *p != ',')
            p++;
    }
    mr_buf_close(&all);
    if (out->data == NULL)
        mr_buf_puts(out, "");
}

/* The request's values of the headers named in <vary>, "\n" separated
 * (RFC 9111 4.1: absent and empty differ; we mark absence with "\1"). */
static void vary_values(const char *vary, const struct http_header *h, size_t n,
                        struct mr_buf *out)
{
    const char *p = vary;
    char name[128];

    mr_buf_puts(out, "");
    while (*p) {
        const char *s = p;
        size_t len;
        while (*p && *p != ',')
            p++;
        len = (size_t)(p - s);
        if (len >= sizeof(name))
            len = sizeof(name) - 1;
        memcpy(name, s, len);
        name[len] = '\0';
        {
            struct mr_buf v;
            mr_buf_init(&v);
            hdr_all(h, n, name, &v);
            if (hdr(h, n, name) == NULL)
                mr_buf_putc(out, '\1');
            else
                mr_buf_append(out, v.data, v.len);
            mr_buf_close(&v);
        }
        mr_buf_putc(out, '\n');
        if (*p == ',')
            p++;
    }
}

/* ---- the table ---------------------------------------------------------- */

struct edge_cache *edge_cache_new(size_t max_bytes, size_t max_object)
{
    struct edge_cache *c = mr_calloc(1, sizeof(*c));

    c->max_bytes = max_bytes;
    c->max_object = max_object;
    return c;
}

static void lru_unlink(struct edge_cache *c, struct entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        c->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct edge_cache *c, struct entry *e)
{
    e->lprev = NULL;
    e->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL)
        c->lru_tail = e;
}

static void entry_free(struct entry *e)
{
    mr_free(e->key);
    mr_free(e->vary);
    mr_free(e->vary_vals);
    mr_free(e->content_type);
    mr_free(e->headers);
    mr_free(e->body);
    mr_free(e);
}

static void entry_remove(struct edge_cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[hash(e->key) % N_BUCKETS];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->st.entries--;
    c->st.bytes -= e->size;
    entry_free(e);
}

void edge_cache_free(struct edge_cache *c)
{
    if (c == NULL)
        return;
    while (c->lru_head)
        entry_remove(c, c->lru_head);
    mr_free(c);
}

void edge_cache_evict_key(struct edge_cache *c, const char *key)
{
    struct entry *e = c->buckets[hash(key) % N_BUCKETS], *next;

    for (; e; e = next) {
        next = e->hnext;
        if (strcmp(e->key, key) == 0)
            entry_remove(c, e);
    }
}

void edge_cache_stats(const struct edge_cache *c, struct edge_cache_stats *out)
{
    *out = c->st;
}

/* RFC 9111 4.2.3: current_age = corrected_initial_age + resident_time, with
 * corrected_initial_age the Age received (our response delay is local). */
static int64_t entry_age(const struct entry *e, int64_t now_ms)
{
    int64_t resident = now_ms > e->stored_ms ? (now_ms - e->stored_ms) / 1000 : 0;

    return e->age0_s + resident;
}

enum edge_fresh edge_cache_lookup(struct edge_cache *c, const struct edge_cache_req *r,
                                  struct edge_cached *out)
{
    struct entry *e = c->buckets[hash(r->key) % N_BUCKETS], *next;
    struct edge_cc rcc;
    enum edge_fresh f = EDGE_CACHE_NONE;
    struct mr_buf vals;
    int64_t age;

    edge_cc_parse_fields(r->headers, r->n_headers, &rcc);
    mr_buf_init(&vals);
    for (; e; e = next) {
        next = e->hnext;
        if (strcmp(e->key, r->key) != 0)
            continue;
        mr_buf_reset(&vals);
        vary_values(e->vary, r->headers, r->n_headers, &vals);
        if (strcmp(vals.data, e->vary_vals) != 0)
            continue;
        /* Past every use: drop it now rather than wait for the LRU. */
        age = entry_age(e, r->now_ms);
        if (age >= e->lifetime_s + (e->swr_s > e->sie_s ? e->swr_s : e->sie_s)) {
            entry_remove(c, e);
            continue;
        }
        if (age < e->lifetime_s)
            f = EDGE_CACHE_FRESH;
        else if (!e->must_revalidate && age < e->lifetime_s + e->swr_s)
            f = EDGE_CACHE_STALE_SWR;
        else if (!e->must_revalidate && age < e->lifetime_s + e->sie_s)
            f = EDGE_CACHE_STALE_SIE;
        else
            continue;
        /* RFC 9111 5.2.1: the client may ask for a fresher answer. */
        if (rcc.no_cache || rcc.no_store || (rcc.max_age >= 0 && age > rcc.max_age)) {
            if (e->must_revalidate || age >= e->lifetime_s + e->sie_s)
                continue;
            f = EDGE_CACHE_STALE_SIE;
        }
        lru_unlink(c, e);
        lru_push(c, e);
        out->status = e->status;
        out->content_type = e->content_type;
        out->headers = e->headers;
        out->body = e->body;
        out->body_len = e->body_len;
        out->age_s = age;
        out->fresh = f;
        break;
    }
    mr_buf_close(&vals);
    return e ? f : EDGE_CACHE_NONE;
}

static int status_cacheable(int status)
{
    /* RFC 9110 15.1: heuristically cacheable codes; with explicit freshness
     * others could be stored too, but an error page in a cache is rarely
     * what an operator wants. */
    switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308: case 404: case 410:
        return 1;
    }
    return 0;
}

int edge_cache_storable(const struct edge_cache_req *r, int status,
                        const struct http_header *headers, size_t n_headers)
{
    struct edge_cc cc, rcc;
    struct mr_buf b;
    int star;

    if (!status_cacheable(status))
        return 0;
    edge_cc_parse_fields(r->headers, r->n_headers, &rcc);
    if (rcc.no_store)
        return 0;
    edge_cc_parse_fields(headers, n_headers, &cc);
    mr_buf_init(&b);
    vary_names(headers, n_headers, &b);
    star = strcmp(b.data, "*") == 0 || strstr(b.data, ",*") != NULL ||
           strncmp(b.data, "*,", 2) == 0;
    mr_buf_close(&b);
    if (star || cc.no_store || cc.private_ || cc.no_cache)
        return 0;
    if (hdr(headers, n_headers, "Set-Cookie") != NULL)
        return 0;
    if (hdr(r->headers, r->n_headers, "Authorization") != NULL && !cc.public_ &&
        cc.s_maxage < 0)
        return 0;
    return (cc.s_maxage >= 0 ? cc.s_maxage : cc.max_age) > 0;
}

int edge_cache_store(struct edge_cache *c, const struct edge_cache_req *r, int status,
                     const struct http_header *headers, size_t n_headers,
                     const char *content_type, const char *headers_out, const char *body,
                     size_t body_len)
{
    struct edge_cc cc;
    struct mr_buf b, vals;
    struct entry *e, *old, *next;
    const char *age;
    size_t size;

    if (!edge_cache_storable(r, status, headers, n_headers))
        return 0;
    edge_cc_parse_fields(headers, n_headers, &cc);
    mr_buf_init(&b);
    vary_names(headers, n_headers, &b);
    mr_buf_init(&vals);
    vary_values(b.data, r->headers, r->n_headers, &vals);
    size = ENTRY_OVERHEAD + strlen(r->key) + b.len + vals.len + body_len +
           (headers_out ? strlen(headers_out) : 0) + (content_type ? strlen(content_type) : 0);
    if (size > c->max_object || size > c->max_bytes) {
        mr_buf_close(&b);
        mr_buf_close(&vals);
        return 0;
    }
    /* replace the variant with the same Vary values */
    for (old = c->buckets[hash(r->key) % N_BUCKETS]; old; old = next) {
        next = old->hnext;
        if (strcmp(old->key, r->key) == 0 && strcmp(old->vary_vals, vals.data) == 0 &&
            strcmp(old->vary, b.data) == 0)
            entry_remove(c, old);
    }
    while (c->st.bytes + size > c->max_bytes && c->lru_tail) {
        entry_remove(c, c->lru_tail);
        c->st.evictions++;
    }
    e = mr_calloc(1, sizeof(*e));
    e->key = mr_strdup(r->key);
    e->vary = mr_buf_steal(&b, NULL);
    e->vary_vals = mr_buf_steal(&vals, NULL);
    e->status = status;
    e->content_type = content_type ? mr_strdup(content_type) : NULL;
    e->headers = mr_strdup(headers_out ? headers_out : "");
    e->body = mr_malloc(body_len + 1);
    memcpy(e->body, body, body_len);
    e->body[body_len] = '\0';
    e->body_len = body_len;
    e->size = size;
    e->stored_ms = r->now_ms;
    age = hdr(headers, n_headers, "Age");
    e->age0_s = age ? delta_seconds(age, strlen(age)) : 0;
    if (e->age0_s < 0)
        e->age0_s = 0;
    e->lifetime_s = cc.s_maxage >= 0 ? cc.s_maxage : cc.max_age;
    e->swr_s = cc.swr > 0 ? cc.swr : 0;
    e->sie_s = cc.sie > 0 ? cc.sie : 0;
    /* RFC 9111 5.2.2.2 and 5.2.2.8: no stale use at all.  (s-maxage also
     * implies proxy-revalidate; we let explicit stale-* extensions win there,
     * as RFC 5861 allows: the origin stated both.) */
    e->must_revalidate = cc.must_revalidate || cc.proxy_revalidate;
    {
        struct entry **bucket = &c->buckets[hash(e->key) % N_BUCKETS];
        e->hnext = *bucket;
        *bucket = e;
    }
    lru_push(c, e);
    c->st.entries++;
    c->st.bytes += size;
    c->st.stores++;
    return 1;
}
