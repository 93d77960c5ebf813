/* fuzz_gtab_api.c -- the global tables' HTTP API as src/node/tables.c
 * decodes it: table names and keys from the path, a table spec (PUT
 * /v1/tables/NAME), a document (PUT .../items/KEY), an ops body (POST
 * .../items/KEY/ops), a delete, If-Match values, and the listing parameters
 * (GET .../items?prefix=&after=&limit=).  The same functions are called with
 * the same limits as the handlers, on one real store per process (in
 * /dev/shm, removed at exit) that keeps an lww and a crdt table declared;
 * after each request the open transaction commits, as the node's group
 * commit would.
 *
 * Input: up to 16 requests separated by "\n==\n".  In each, byte 0 picks
 * the request (mod 6, in the order below: '0'..'5' in the seeds), byte 1
 * the table (mod 6, tables[]) and byte 2 the key (mod 8, keys[]): the store
 * only ever sees those, so it cannot grow without bound.  The rest is:
 *
 *   names    NAME "\n" KEY         path segments (any name and key)
 *   table    NAME "\n" SPEC        PUT /v1/tables/NAME
 *   put      IF-MATCH "\n" DOC     PUT .../items/KEY
 *   ops      IF-MATCH "\n" BODY    POST .../items/KEY/ops
 *   delete   IF-MATCH              DELETE .../items/KEY
 *   list     QUERY                 GET .../items?QUERY
 *
 * IF-MATCH is the header's value ("" none); "@" stands for the ETag the
 * client last read (the item's current version, quoted), which no fuzzer
 * would guess.
 *
 * Checks beyond "no crash": every refusal carries a message; names and keys
 * are accepted exactly as gtab.h's grammar says; a spec that parses renders
 * (gtab_spec_json) to a spec that parses back to the same rendering; a
 * refused write leaves the item as gtab_get shows it (document, version)
 * and the log head as they were; a put reads back as written; a listing
 * holds exactly the live keys with the prefix and greater than <after>, in
 * byte order, cut at <limit>, with "more" when it was cut. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"
#include "fuzz.h"
#include "gtab/gtab.h"
#include "gtab/gtab_int.h"
#include "http/http.h"
#include "node/tables_int.h"

/* "docs" and "carts" are declared at open; a "table" request may declare
 * t0..t2 (once, with whatever spec comes first); "none" is never declared. */
static const char *const tables[] = {"docs", "carts", "t0", "t1", "t2", "none"};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))
#define N_DECLARABLE (N_TABLES - 1)
/* Keys that share prefixes, so that listings have something to cut. */
static const char *const keys[] = {"a", "ab", "abc", "b", "user:1", "user:10", "user:2", "~"};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Between requests of one input. */
#define SEP "\n==\n"
#define MAX_REQUESTS 16

enum req { REQ_NAMES, REQ_TABLE, REQ_PUT, REQ_OPS, REQ_DELETE, REQ_LIST, REQ_N };

static struct gtab *g;
static char path[96];
static unsigned long writes;

static void store_remove(void)
{
    char aux[120];

    gtab_close(g);
    g = NULL;
    unlink(path);
    snprintf(aux, sizeof(aux), "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof(aux), "%s-shm", path);
    unlink(aux);
}

static void commit(void)
{
    char err[MR_ERRMSG_LEN];

    if (gtab_commit(g, err) != 0)
        abort(); /* the node would stop */
}

static void tables_store_open(void)
{
    static const struct gtab_spec fixed[] = {{"docs", GTAB_LWW, ""}, {"carts", GTAB_CRDT, "exp"}};
    char err[MR_ERRMSG_LEN];
    int created;

    snprintf(path, sizeof(path), "%s/meridian-fuzz-gtab-api-%d.db",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
    store_remove(); /* a file left by an earlier process of the same pid */
    if (gtab_open(path, "fuzz-region", 0, &g, err) != 0)
        abort();
    atexit(store_remove); /* one store per process, gone with it */
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (gtab_table_put(g, &fixed[i], &created, err) != 0)
            abort();
    commit();
}

/* ---- what a client reads ------------------------------------------------- */

struct seen {
    int rc;
    char version[GTAB_VERSION_LEN];
    char *text; /* the document, canonical JSON; NULL unless rc is 0 */
};

static char *canonical(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void see(const char *tbl, const char *key, int64_t now, struct seen *s)
{
    char err[MR_ERRMSG_LEN] = "";
    json_t *doc = NULL;

    s->version[0] = '\0';
    s->rc = gtab_get(g, tbl, key, now, &doc, s->version, err);
    if (s->rc != 0 && err[0] == '\0')
        abort();
    if (s->rc != 0)
        s->version[0] = '\0';
    s->text = s->rc == 0 ? canonical(doc) : NULL;
    json_decref(doc);
}

static int seen_equal(const struct seen *a, const struct seen *b)
{
    return a->rc == b->rc && strcmp(a->version, b->version) == 0 &&
           (a->text == NULL ? b->text == NULL : b->text != NULL && strcmp(a->text, b->text) == 0);
}

/* ---- names and keys -------------------------------------------------------- */

/* gtab.h's grammar, written out again. */
static int name_ok(const char *s, size_t len)
{
    if (len < 1 || len > GTAB_MAX_NAME || s[0] == '_')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
            return 0;
    return 1;
}

static int key_ok(const char *s, size_t len)
{
    if (len < 1 || len > GTAB_MAX_KEY)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || strchr("/?#%\"\\", c) != NULL)
            return 0;
    }
    return 1;
}

static void req_names(const char *p, size_t n, int64_t now)
{
    const char *nl = memchr(p, '\n', n);
    size_t nlen = nl ? (size_t)(nl - p) : n;
    const char *key = nl ? nl + 1 : p + n;
    size_t klen = n - (size_t)(key - p);
    char err[MR_ERRMSG_LEN] = "", tbl[GTAB_MAX_NAME + 1], k[GTAB_MAX_KEY + 1];
    struct seen s;
    int nrc, krc;

    nrc = gtab_name_valid(p, nlen, err);
    if ((nrc == 0) != name_ok(p, nlen) || (nrc != 0 && err[0] == '\0'))
        abort();
    err[0] = '\0';
    krc = gtab_key_valid(key, klen, err);
    if ((krc == 0) != key_ok(key, klen) || (krc != 0 && err[0] == '\0'))
        abort();
    if (nrc != 0 || krc != 0)
        return;
    /* GET .../items/KEY: nothing there but TABLES x KEYS. */
    memcpy(tbl, p, nlen);
    tbl[nlen] = '\0';
    memcpy(k, key, klen);
    k[klen] = '\0';
    see(tbl, k, now, &s);
    if (s.rc != 0 && s.rc != MR_ENOTFOUND)
        abort();
    free(s.text);
}

/* ---- PUT /v1/tables/NAME ---------------------------------------------------- */

static int spec_equal(const struct gtab_spec *a, const struct gtab_spec *b)
{
    return strcmp(a->name, b->name) == 0 && a->kind == b->kind && strcmp(a->ttl_field, b->ttl_field) == 0;
}

/* The spec renders, and the rendering parses back to itself. */
static void spec_round_trip(const char *name, const struct gtab_spec *spec)
{
    char err[MR_ERRMSG_LEN];
    struct gtab_spec again;
    json_t *j = gtab_spec_json(spec), *j2;
    char *t1 = canonical(j), *t2;

    if (strcmp(spec->name, name) != 0 || gtab_spec_parse(name, j, &again, err) != 0 ||
        !spec_equal(spec, &again))
        abort();
    j2 = gtab_spec_json(&again);
    t2 = canonical(j2);
    if (strcmp(t1, t2) != 0)
        abort();
    free(t1);
    free(t2);
    json_decref(j);
    json_decref(j2);
}

static void req_table(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n), *body = nl ? nl + 1 : p + n;
    char name[GTAB_MAX_KEY + 2], err[MR_ERRMSG_LEN] = "";
    size_t nlen = nl ? (size_t)(nl - p) : n;
    const struct gtab_spec *have;
    struct gtab_spec spec, before = {"", GTAB_LWW, ""};
    int rc, created = -1, had;

    /* split_path: a path segment, cut past GTAB_MAX_KEY + 1 bytes. */
    if (nlen > GTAB_MAX_KEY + 1)
        nlen = GTAB_MAX_KEY + 1;
    memcpy(name, p, nlen);
    name[nlen] = '\0';
    if ((rc = gtab_name_valid(name, strlen(name), err)) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    {
        struct http_request hr = {"PUT", "/v1/tables/T", "", NULL, 0, body, n - (size_t)(body - p), 0, ""};
        rc = tables__spec_body(&hr, name, &spec, err);
    }
    if (rc != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    spec_round_trip(name, &spec);
    /* Declared only under the few names the store may hold. */
    for (size_t i = 0; i < N_DECLARABLE; i++) {
        if (strcmp(name, tables[i]) != 0)
            continue;
        have = gtab_table_get(g, name);
        had = have != NULL;
        if (had)
            before = *have;
        err[0] = '\0';
        rc = gtab_table_put(g, &spec, &created, err);
        if (rc != 0 && err[0] == '\0')
            abort();
        /* Identical: nothing to do; another spec: MR_EEXIST, unchanged;
         * new: created as given. */
        if (had && spec_equal(&before, &spec) && (rc != 0 || created != 0))
            abort();
        if (had && !spec_equal(&before, &spec) && rc != MR_EEXIST)
            abort();
        if (!had && (rc != 0 || created != 1))
            abort();
        have = gtab_table_get(g, name);
        if (have == NULL || !spec_equal(have, rc == 0 ? &spec : &before))
            abort();
    }
}

/* ---- item writes ----------------------------------------------------------- */

/* The node's own decoding and write (tables.c), then what a client would
 * see of it. */
static int item_write(enum req req, const char *tbl, const char *key, const char *match_hdr,
                      const char *body, size_t body_len, struct gtab_wres *w, char *err)
{
    static const char *const methods[] = {[REQ_PUT] = "PUT", [REQ_OPS] = "POST", [REQ_DELETE] = "DELETE"};
    struct http_header h = {(char *)"If-Match", (char *)match_hdr};
    struct http_request hr = {methods[req], "/v1/tables/T/items/K", "", &h, match_hdr ? 1 : 0,
                              body, body_len, 0, ""};
    json_t *doc = NULL;
    int rc;

    rc = tables__item_write(g, &hr, tbl, key, req == REQ_OPS, w, err);
    /* A put reads back as written, unless its TTL has passed already. */
    if (rc == 0 && req == REQ_PUT) {
        doc = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, NULL);
        if (doc == NULL)
            abort();   /* accepted, so it parsed */
        const struct gtab_spec *spec = gtab_table_get(g, tbl);
        int64_t exp = gtab__expiry(doc, spec->ttl_field), now = mr_now_ms();
        struct seen s;
        see(tbl, key, now, &s);
        if (exp == 0 || exp > now) {
            char *want = canonical(doc);
            if (s.rc != 0 || strcmp(s.text, want) != 0 || strcmp(s.version, w->version) != 0)
                abort();
            free(want);
        }
        free(s.text);
    }
    json_decref(doc);
    return rc;
}

static void req_write(enum req req, const char *tbl, const char *key, const char *p, size_t n,
                      int64_t now)
{
    const char *nl = memchr(p, '\n', n), *body = nl ? nl + 1 : p + n;
    char *hdr, etag[GTAB_VERSION_LEN + 2], err[MR_ERRMSG_LEN] = "";
    size_t hlen = nl ? (size_t)(nl - p) : n;
    struct seen before, after;
    struct gtab_wres w;
    uint64_t head = gtab_head(g);
    int rc;

    see(tbl, key, now, &before);
    if (hlen == 1 && p[0] == '@') {
        snprintf(etag, sizeof(etag), "\"%s\"", before.version);
        hdr = fuzz_cstr((const uint8_t *)etag, strlen(etag));
    } else {
        hdr = fuzz_cstr((const uint8_t *)p, hlen); /* the whole value, as a header has it */
    }
    rc = item_write(req, tbl, key, hdr, body, n - (size_t)(body - p), &w, err);
    see(tbl, key, now, &after);
    if (rc != 0) {
        /* Refused: as the client saw it before, and nothing logged. */
        if (err[0] == '\0' || !seen_equal(&before, &after) || gtab_head(g) != head)
            abort();
    } else {
        if (w.seq != gtab_head(g) || w.seq != head + 1 || w.version[0] == '\0')
            abort();
        if (after.rc == 0 && strcmp(after.version, w.version) != 0)
            abort();
        if (req == REQ_DELETE && after.rc != MR_ENOTFOUND)
            abort();
        writes++;
    }
    free(hdr);
    free(before.text);
    free(after.text);
}

/* ---- GET .../items?prefix=&after=&limit= ------------------------------------ */

/* One page as parsed from gtab_list's output: key, version, item. */
struct page {
    json_t *items;
    int more;
    char last[GTAB_MAX_KEY + 1];
};

static int list(const char *tbl, const char *prefix, const char *after, size_t limit, int64_t now,
                struct page *pg)
{
    char err[MR_ERRMSG_LEN] = "";
    struct mr_buf b;
    int rc;

    mr_buf_init(&b);
    rc = gtab_list(g, tbl, prefix, after, limit, now, &b, pg->last, &pg->more, err);
    if (rc != 0 && err[0] == '\0')
        abort();
    pg->items = rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    if (rc == 0 && !json_is_array(pg->items))
        abort();
    mr_buf_close(&b);
    return rc;
}

static void req_list(const char *tbl, const char *p, size_t n, int64_t now)
{
    char *query = fuzz_cstr((const uint8_t *)p, n), err[MR_ERRMSG_LEN] = "";
    struct http_request hr = {"GET", "/v1/tables/T/items", query, NULL, 0, NULL, 0, 0, ""};
    size_t plen, n_want = 0, n_got, limit;
    const char *want[N_KEYS], *prefix, *after;
    struct tables_read rd;
    struct page pg, all;
    json_t *x;
    size_t i;
    int rc;

    /* The node's own decoding of the listing's query (tables.c). */
    memset(&rd, 0, sizeof(rd));
    rc = tables__list_args(&hr, &rd, err);
    free(query);
    if (rc != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    prefix = rd.prefix;
    after = rd.after;
    limit = rd.limit;
    rc = list(tbl, prefix, after, limit, now, &pg);
    if (gtab_table_get(g, tbl) == NULL) {
        if (rc != MR_ENOTFOUND)
            abort();
        return;
    }
    if (rc != 0 || list(tbl, prefix, after, 1000, now, &all) != 0)
        abort();
    /* What the page must hold: the live keys with the prefix and past
     * <after>, in byte order (keys[] is sorted), at most <limit> of them. */
    plen = strlen(prefix);
    for (i = 0; i < N_KEYS; i++) {
        struct seen s;
        if (strncmp(keys[i], prefix, plen) != 0 || strcmp(keys[i], after) <= 0)
            continue;
        see(tbl, keys[i], now, &s);
        if (s.rc == 0)
            want[n_want++] = keys[i];
        free(s.text);
    }
    n_got = json_array_size(pg.items);
    if (json_array_size(all.items) != n_want || all.more ||
        n_got != (n_want < limit ? n_want : limit) || pg.more != (n_want > n_got))
        abort();
    json_array_foreach(all.items, i, x) {
        const char *key = json_string_value(json_object_get(x, "key")), *version;
        struct seen s;
        char *item;
        if (key == NULL || strcmp(key, want[i]) != 0)
            abort();
        /* Each entry as a read of the item shows it. */
        see(tbl, key, now, &s);
        item = canonical(json_object_get(x, "item"));
        version = json_string_value(json_object_get(x, "version"));
        if (s.rc != 0 || strcmp(s.text, item) != 0 || version == NULL || strcmp(s.version, version) != 0)
            abort();
        if (i < n_got && !json_equal(x, json_array_get(pg.items, i)))
            abort();
        free(item);
        free(s.text);
    }
    if (strcmp(pg.last, n_got ? want[n_got - 1] : "") != 0)
        abort();
    json_decref(pg.items);
    json_decref(all.items);
}

/* One request: byte 0 what, byte 1 which table, byte 2 which key. */
static void request(const char *p, size_t n)
{
    int64_t now = mr_now_ms();

    if (n < 3)
        return;
    switch ((enum req)((unsigned char)p[0] % REQ_N)) {
    case REQ_NAMES: req_names(p + 3, n - 3, now); break;
    case REQ_TABLE: req_table(p + 3, n - 3); break;
    case REQ_LIST: req_list(tables[(unsigned char)p[1] % N_TABLES], p + 3, n - 3, now); break;
    default:
        req_write((enum req)((unsigned char)p[0] % REQ_N), tables[(unsigned char)p[1] % N_TABLES],
                  keys[(unsigned char)p[2] % N_KEYS], p + 3, n - 3, now);
        break;
    }
    /* The node's group commit; the log is trimmed as the streams would
     * once every peer applied it, so that it cannot grow either. */
    if (gtab_in_txn(g))
        commit();
    if (writes >= 256) {
        char err[MR_ERRMSG_LEN];
        writes = 0;
        if (gtab_log_trim(g, gtab_head(g), err) != 0)
            abort();
        commit();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size, *sep;

    if (g == NULL)
        tables_store_open();
    /* Requests separated by SEP, so that one input can set up what the
     * next request needs; at most MAX_REQUESTS, to bound its cost. */
    for (int i = 0; i < MAX_REQUESTS && p < end; i++) {
        sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        request(p, (size_t)((sep ? sep : end) - p));
        p = sep ? sep + strlen(SEP) : end;
    }
    return 0;
}
