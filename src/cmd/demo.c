/* demo.c -- `meridian demo`: what active-active buys an online shop, on one
 * machine.
 *
 * Starts the default topology (three regions with real distances, every
 * cross-region byte through `meridian wan`; per region an etcd member, a
 * node and a shop whose catalog `up` seeds; an edge per client site) and
 * runs shoppers from every client site (New York, Frankfurt, Singapore) in
 * two phases:
 *
 *   before  every site's shoppers use us-east-1's shop, over the site's own
 *           WAN route to it (topology.json "sites": "shop_urls"): one region
 *           serves the world, as before the re-architecture
 *   after   every site's shoppers use their site's edge ("sites": "edge"),
 *           which sends them to the nearest healthy region and caches the
 *           catalog pages
 *
 * A shopper (closed loop, with a short think time; load.h) keeps its
 * cookies (session mr_sid, consistency token mr_token) and repeats a visit:
 * catalog page, product pages, cart adds, checkout, order history.  The
 * order history right after a checkout must show that order wherever it is
 * served (read-your-writes).  Then: latency per site and phase, the edge
 * cache's offload, replication lag per region pair on both data paths (the
 * SQL log and the global tables' streams), orders placed (counted in SQL),
 * checks (every acknowledged order is in the database, SQL replicas and the
 * carts and sessions tables identical in every region), the dashboard URL,
 * and everything is stopped -- unless --keep -- also on Ctrl-C, at the end
 * of the current step (each one is bounded).
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../bench/load.h"
#include "../bench/topo.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../http/http.h"
#include "cmd.h"

#define SID_MAX 64
#define TOKEN_MAX 1024
#define REF_MAX 32
#define THINK_MS 100        /* a shopper's mean pause between an answer and its next request */
#define N_CATALOG_PAGES 13  /* 300 products, 24 a page */
#define N_PRODUCTS 300
#define N_POPULAR 30        /* 80% of product views go to these */

enum { PHASE_BEFORE = 0, PHASE_AFTER = 1, N_PHASES = 2 };
/* Load classes: what the table reports on.  A page view is K_CATALOG or
 * K_PRODUCT when a region served it, K_PAGE_CACHED when the edge's cache
 * did. */
enum { K_CATALOG = 0, K_PRODUCT = 1, K_PAGE_CACHED = 2, K_CART = 3, K_CHECKOUT = 4, K_ORDERS = 5 };
enum action { A_CATALOG, A_PRODUCT, A_ADD, A_CHECKOUT, A_ORDERS, A_EMPTY_CART };

/* One visit, repeated: five page views (cacheable at the edge), two cart
 * adds (of the product just viewed), a checkout, the order history. */
static const enum action visit[] = {A_CATALOG, A_PRODUCT, A_PRODUCT, A_ADD, A_CATALOG,
                                    A_PRODUCT, A_ADD, A_CHECKOUT, A_ORDERS};
#define N_STEPS (sizeof(visit) / sizeof(visit[0]))

struct shopper {
    size_t site;
    uint64_t rng;
    size_t next;                    /* index into visit[] */
    enum action doing;              /* the request in flight */
    int empty_cart;                 /* the next request empties the cart (after a refusal) */
    unsigned checkouts;
    char sku[16];                   /* last product viewed: the next one added */
    char path[48];                  /* of the request in flight */
    char headers[TOKEN_MAX + 256];
    char sid[SID_MAX];
    char token[TOKEN_MAX];
    char ref[REF_MAX];              /* order placed, until the history has been read */
};

/* What one site's shoppers saw in one phase (warm-up included). */
struct site_count {
    uint64_t served[TOPO_MAX_REGIONS];  /* answers by Meridian-Region */
    uint64_t pages, page_cached;        /* page views; answered by the edge cache (hit/stale) */
};

struct demo {
    struct topo *topo;
    struct shopper *shoppers;
    size_t per_site;
    int phase;
    struct site_count count[N_PHASES][TOPO_MAX_SITES];
    json_t *refs;                       /* every order acknowledged new: ref -> site */
    uint64_t replayed, out_of_stock, refused, ryw_checked, ryw_violations;
};

static uint64_t rnd(struct shopper *sh)
{
    sh->rng ^= sh->rng << 13;
    sh->rng ^= sh->rng >> 7;
    sh->rng ^= sh->rng << 17;
    return sh->rng;
}

/* Shopper <client>'s next request, at its site's target (the site index). */
static void gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct demo *d = data;
    struct shopper *sh = &d->shoppers[client];
    size_t n;

    (void)seq;
    req->target = sh->site;
    req->path = sh->path;
    req->headers = sh->headers;
    n = (size_t)snprintf(sh->headers, sizeof(sh->headers), "Content-Type: application/json\r\n");
    if (sh->sid[0])
        n += (size_t)snprintf(sh->headers + n, sizeof(sh->headers) - n, "Cookie: mr_sid=%s%s%s\r\n",
                              sh->sid, sh->token[0] ? "; mr_token=" : "", sh->token);
    if (sh->empty_cart) {
        sh->empty_cart = 0;
        sh->doing = A_EMPTY_CART;
        req->klass = K_CART;
        req->method = "DELETE";
        snprintf(sh->path, sizeof(sh->path), "/api/cart/items");
        return;
    }
    sh->doing = visit[sh->next];
    sh->next = (sh->next + 1) % N_STEPS;
    switch (sh->doing) {
    case A_CATALOG: {
        /* Half the visits start on the first page. */
        uint64_t page = rnd(sh) % 2 ? 1 : 2 + rnd(sh) % (N_CATALOG_PAGES - 1);
        req->klass = K_CATALOG;
        snprintf(sh->path, sizeof(sh->path), page == 1 ? "/" : "/?page=%llu",
                 (unsigned long long)page);
        break;
    }
    case A_PRODUCT: {
        uint64_t i = rnd(sh) % 10 < 8 ? rnd(sh) % N_POPULAR : rnd(sh) % N_PRODUCTS;
        req->klass = K_PRODUCT;
        snprintf(sh->sku, sizeof(sh->sku), "mr-%04llu", (unsigned long long)i + 1);
        snprintf(sh->path, sizeof(sh->path), "/products/%s", sh->sku);
        break;
    }
    case A_ADD:
        if (sh->sku[0] == '\0')
            snprintf(sh->sku, sizeof(sh->sku), "mr-%04llu", (unsigned long long)(rnd(sh) % N_POPULAR) + 1);
        req->klass = K_CART;
        snprintf(sh->path, sizeof(sh->path), "/api/cart/items");
        mr_buf_printf(req->body, "{\"sku\":\"%s\",\"add\":1}", sh->sku);
        break;
    case A_CHECKOUT:
        /* An Idempotency-Key lets the edge retry it in another region (the
         * shop derives its own key from the cart anyway). */
        req->klass = K_CHECKOUT;
        req->method = "POST";
        snprintf(sh->path, sizeof(sh->path), "/api/checkout");
        snprintf(sh->headers + n, sizeof(sh->headers) - n, "Idempotency-Key: demo-%zu-%s-%u\r\n",
                 client, sh->sid, ++sh->checkouts);
        mr_buf_puts(req->body, "{}");
        break;
    case A_ORDERS:
        req->klass = K_ORDERS;
        snprintf(sh->path, sizeof(sh->path), "/api/orders");
        break;
    case A_EMPTY_CART: break; /* not in a visit: above */
    }
}

static const char *error_code(const struct http_response *resp, json_t **j)
{
    *j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    return json_string_value(json_object_get(json_object_get(*j, "error"), "code"));
}

/* An answer to shopper <client>: cookies, who served it, and whether it is
 * what a shopper may get (refusals for stock are; errors are not). */
static int check(size_t client, int rc, const struct http_response *resp, int *klass, void *data)
{
    struct demo *d = data;
    struct shopper *sh = &d->shoppers[client];
    struct site_count *sc = &d->count[d->phase][sh->site];
    const char *region, *cache;
    json_t *j = NULL;
    int good = 0;

    if (rc != 0)
        return -1;
    http_response_cookie(resp, "mr_sid", sh->sid, sizeof(sh->sid));
    http_response_cookie(resp, "mr_token", sh->token, sizeof(sh->token));
    region = http_response_header(resp, "Meridian-Region");
    cache = http_response_header(resp, "Meridian-Cache");
    int cached = cache && (strcasecmp(cache, "hit") == 0 || strcasecmp(cache, "stale") == 0);
    if (region && !cached)
        for (size_t r = 0; r < d->topo->n_regions; r++)
            if (strcmp(d->topo->regions[r].name, region) == 0)
                sc->served[r]++;
    switch (sh->doing) {
    case A_CATALOG:
    case A_PRODUCT:
        sc->pages++;
        sc->page_cached += cached;
        if (cached)
            *klass = K_PAGE_CACHED;
        good = resp->status == 200;
        break;
    case A_ADD:
        if (resp->status == 409) { /* cart full or quantity limit: start afresh */
            d->refused++;
            sh->empty_cart = 1;
        }
        good = resp->status == 200 || resp->status == 409;
        break;
    case A_EMPTY_CART: good = resp->status == 200; break;
    case A_CHECKOUT:
        if (resp->status == 200) {
            j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
            const char *ref = json_string_value(json_object_get(json_object_get(j, "order"), "ref"));
            if (ref == NULL)
                break;
            snprintf(sh->ref, sizeof(sh->ref), "%s", ref);
            if (json_is_true(json_object_get(j, "replayed")))
                d->replayed++;
            else
                json_object_set_new(d->refs, ref, json_integer((json_int_t)sh->site));
            good = 1;
        } else if (resp->status == 409) {
            /* Refused, nothing ordered: a shopper's answer, not an error. */
            const char *code = error_code(resp, &j);
            if (code && strcmp(code, "out_of_stock") == 0)
                d->out_of_stock++;
            else
                d->refused++;
            sh->empty_cart = 1;
            good = 1;
        }
        break;
    case A_ORDERS:
        good = resp->status == 200;
        if (good && sh->ref[0]) {
            char needle[REF_MAX + 8];
            snprintf(needle, sizeof(needle), "\"%s\"", sh->ref);
            d->ryw_checked++;
            if (resp->body == NULL || memmem(resp->body, resp->body_len, needle, strlen(needle)) == NULL)
                d->ryw_violations++;
            sh->ref[0] = '\0';
        }
        break;
    }
    json_decref(j);
    return good ? 0 : -1;
}

/* Ctrl-C must not leave a detached topology behind: the handler only
 * records it; the traffic stops within a request, then the demo stops. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int signum)
{
    (void)signum;
    interrupted = 1;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* polling remote processes: nothing to wait on locally */
}

/* Wait (bounded) until every region has applied the same revision; leaves
 * each region's GET /v1/status in status[]. */
static int converge(struct topo *t, json_t **status, char *err)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int64_t first = -1;
        int same = 1;
        for (size_t i = 0; i < t->n_regions; i++) {
            json_decref(status[i]);
            status[i] = NULL;
            if (topo_get_json(&t->regions[i], "/v1/status", &status[i], err) != 0)
                return MR_EUNAVAIL;
            int64_t rev = json_integer_value(json_object_get(json_object_get(status[i], "applied"), "rev"));
            int64_t head = json_integer_value(json_object_get(json_object_get(status[i], "head"), "rev"));
            if (first < 0)
                first = rev;
            if (rev != first || rev < head)
                same = 0;
        }
        if (same)
            return 0;
        pause_ms(50);
    }
    return mr_seterr(err, MR_ETIMEDOUT, "regions did not converge within 10 s");
}

/* Wait (bounded, 10 s) until global table <table> has the same digest in
 * every region; *items gets the count.  1 when identical, else 0. */
static int table_identical(struct topo *t, const char *table, int64_t *items)
{
    char path[96];

    snprintf(path, sizeof(path), "/v1/tables/%s/digest", table);
    for (int attempt = 0; attempt < 100 && !interrupted; attempt++) {
        char first[80] = "", err[MR_ERRMSG_LEN];
        int same = 1;
        for (size_t i = 0; i < t->n_regions && same; i++) {
            json_t *dg = NULL;
            const char *dig = NULL;
            if (topo_get_json(&t->regions[i], path, &dg, err) == 0)
                dig = json_string_value(json_object_get(dg, "digest"));
            if (dig == NULL)
                same = 0;
            else if (i == 0) {
                snprintf(first, sizeof(first), "%s", dig);
                *items = json_integer_value(json_object_get(dg, "items"));
            } else if (strcmp(dig, first) != 0)
                same = 0;
            json_decref(dg);
        }
        if (same)
            return 1;
        pause_ms(100);
    }
    return 0;
}

/* Compare every region's SQL digest with the first one's. */
static int digests_identical(struct topo *t, char *digest0, size_t n, char *err)
{
    int identical = 1;

    for (size_t i = 0; i < t->n_regions; i++) {
        json_t *dg = NULL;
        if (topo_get_json(&t->regions[i], "/v1/digest", &dg, err) == 0) {
            const char *dig = json_string_value(json_object_get(dg, "digest"));
            if (i == 0)
                snprintf(digest0, n, "%s", dig ? dig : "");
            else if (dig == NULL || strcmp(dig, digest0) != 0)
                identical = 0;
        } else {
            identical = 0;
        }
        json_decref(dg);
    }
    return identical;
}

/* Rows of one read statement on region <r>; NULL (with <err>) on failure.
 * Caller json_decref the answer in *ans. */
static json_t *sql_rows(const struct topo_region *r, const char *sql, json_t **ans, char *err)
{
    char body[512];
    int status = 0;

    snprintf(body, sizeof(body), "{\"statements\":[{\"sql\":\"%s\"}]}", sql);
    *ans = NULL;
    if (topo_sql(r, body, &status, ans, err) != 0)
        return NULL;
    if (status != 200) {
        mr_seterr(err, MR_EUNAVAIL, "%s answered %d", r->name, status);
        return NULL;
    }
    return json_object_get(json_array_get(json_object_get(*ans, "results"), 0), "rows");
}

/* Run one phase: every site's shoppers against targets[site]. */
static void run_phase(struct demo *d, int phase, const char *title, const struct load_target *targets,
                      struct tls_ctx *tls, int64_t duration_ms, struct load_result *res)
{
    struct topo *t = d->topo;
    struct load_spec spec;

    d->phase = phase;
    /* New shoppers (new sessions) in each phase. */
    for (size_t c = 0; c < t->n_sites * d->per_site; c++) {
        struct shopper *sh = &d->shoppers[c];
        memset(sh, 0, sizeof(*sh));
        sh->site = c / d->per_site;
        sh->rng = 0x9e3779b97f4a7c15ULL * (c + 1) + (uint64_t)phase;
        /* Every shopper starts a visit; think times spread them out. */
    }
    memset(&spec, 0, sizeof(spec));
    spec.targets = targets;
    spec.n_targets = t->n_sites;
    spec.n_clients = t->n_sites * d->per_site;
    spec.duration_ms = (uint64_t)duration_ms;
    spec.warmup_ms = 500; /* not measured: the first connections over each link */
    spec.think_ms = THINK_MS;
    spec.tls = tls;
    spec.gen = gen;
    spec.check_resp = check;
    spec.stop = &interrupted;
    spec.data = d;
    printf("   phase %d/%d %s (%.1f s) ... ", phase + 1, N_PHASES, title,
           (double)(spec.warmup_ms + spec.duration_ms) / 1000.0);
    fflush(stdout);
    if (load_run(&spec, res) != 0)
        printf("FAILED: %s\n", res->first_error);
    else
        printf("%llu requests, %llu failed\n", (unsigned long long)res->all.ok + res->all.failed,
               (unsigned long long)res->all.failed);
}

/* The region that answered most of site <s>'s requests in <phase> (those
 * not answered by the edge cache); *others: how many other regions did. */
static size_t served_by(const struct demo *d, int phase, size_t s, int *others)
{
    const struct site_count *sc = &d->count[phase][s];
    size_t best = 0;

    *others = 0;
    for (size_t r = 1; r < d->topo->n_regions; r++)
        if (sc->served[r] > sc->served[best])
            best = r;
    for (size_t r = 0; r < d->topo->n_regions; r++)
        *others += r != best && sc->served[r] > 0;
    return best;
}

/* "p50/p99" of <st> in ms, in <cell>. */
static void lat_pair(const struct load_stats *st, char *cell, size_t n)
{
    if (st->ok == 0)
        snprintf(cell, n, "-");
    else if (st->p99_ms < 10)
        snprintf(cell, n, "%.1f/%.1f", st->p50_ms, st->p99_ms);
    else
        snprintf(cell, n, "%.0f/%.0f", st->p50_ms, st->p99_ms);
}

/* One line of the table: site <s> in <phase>.  Counts and latencies are
 * the measured interval's (load.h). */
static void print_row(const struct demo *d, size_t s, int phase, const struct load_result *res)
{
    const struct topo *t = d->topo;
    const struct load_stats *by = res->by[s];
    uint64_t reqs = 0, failed = 0;
    uint64_t pages = by[K_CATALOG].ok + by[K_PRODUCT].ok + by[K_PAGE_CACHED].ok;
    char who[40], cached[16], cat[32], prod[32], buy[32];
    int others;
    size_t r = served_by(d, phase, s, &others);

    for (int k = 0; k < LOAD_MAX_CLASSES; k++) {
        reqs += by[k].ok + by[k].failed;
        failed += by[k].failed;
    }
    snprintf(who, sizeof(who), others ? "%s +%d" : "%s", t->regions[r].name, others);
    if (phase == PHASE_AFTER && pages)
        snprintf(cached, sizeof(cached), "%.0f%%", 100.0 * (double)by[K_PAGE_CACHED].ok / (double)pages);
    else
        snprintf(cached, sizeof(cached), "-");
    lat_pair(&by[K_CATALOG], cat, sizeof(cat));
    lat_pair(&by[K_PRODUCT], prod, sizeof(prod));
    lat_pair(&by[K_CHECKOUT], buy, sizeof(buy));
    printf("%-10s %-6s %-15s %4.0fms %8llu %6llu %6llu %6s %12s %12s %5llu %12s\n",
           phase == PHASE_BEFORE ? t->sites[s].name : "", phase == PHASE_BEFORE ? "before" : "after",
           who, 2 * t->sites[s].latency_ms[r], (unsigned long long)reqs, (unsigned long long)failed,
           (unsigned long long)pages, cached, cat, prod, (unsigned long long)by[K_CHECKOUT].ok, buy);
}

/* Edge cache offload per site: the shoppers' page views answered by their
 * edge's cache, and the edge's own counters (GET /v1/status "cache"). */
static void print_offload(const struct demo *d)
{
    const struct topo *t = d->topo;

    printf("\n== edge cache, phase after: page views answered by the site's edge cache (hit or stale)\n"
           "   over all page views; then the edge's own counters for the whole run\n\n");
    for (size_t s = 0; s < t->n_sites; s++) {
        const struct site_count *sc = &d->count[PHASE_AFTER][s];
        char url[192], err[MR_ERRMSG_LEN];
        json_t *st = NULL, *c;

        printf("%-10s %6llu / %6llu = %5.1f%% offload", t->sites[s].name,
               (unsigned long long)sc->page_cached, (unsigned long long)sc->pages,
               sc->pages ? 100.0 * (double)sc->page_cached / (double)sc->pages : 0.0);
        snprintf(url, sizeof(url), "%s/v1/status", t->sites[s].edge_url);
        if (topo_fetch_json(url, &st, err) == 0 && (c = json_object_get(st, "cache")) != NULL)
            printf("   (edge: %lld hit, %lld stale, %lld miss, %lld entries)\n",
                   (long long)json_integer_value(json_object_get(c, "hit")),
                   (long long)json_integer_value(json_object_get(c, "stale")),
                   (long long)json_integer_value(json_object_get(c, "miss")),
                   (long long)json_integer_value(json_object_get(c, "entries")));
        else
            printf("   (edge status: %s)\n", err);
        json_decref(st);
    }
}

/* The lag of region pair (from, to) on one data path, formatted. */
static void lag_cell(json_t *o, const char *count, const char *p50, const char *p99, const char *last,
                     char *cell, size_t n)
{
    if (json_integer_value(json_object_get(o, count)) > 0)
        snprintf(cell, n, "%g/%g, last %lld", json_number_value(json_object_get(o, p50)),
                 json_number_value(json_object_get(o, p99)),
                 (long long)json_integer_value(json_object_get(o, last)));
    else
        snprintf(cell, n, "-");
}

/* Replication lag per region pair and data path, from each region's GET
 * /v1/status: "replication" {origin: ...} is the SQL log, from a batch's
 * submission in the origin to its apply in that region; "tables" "peers"
 * [...] the global tables' stream, from a write in that region to durable
 * in the peer. */
static void print_lag(const struct topo *t, json_t **status)
{
    for (int path = 0; path < 2; path++) {
        printf(path == 0 ? "\n== replication lag, SQL log (orders, stock): from a batch's submission in FROM\n"
                           "   to its apply in TO; p50/p99 ms over the run (histogram bucket bounds), last batch\n\n"
                         : "\n== replication lag, global tables (carts, sessions): from a write in FROM to\n"
                           "   durable in TO; p50/p99 ms over the run (histogram bucket bounds), last batch\n\n");
        printf("%-16s", "FROM \\ TO");
        for (size_t j = 0; j < t->n_regions; j++)
            printf(" %22s", t->regions[j].name);
        printf("\n");
        for (size_t i = 0; i < t->n_regions; i++) {
            printf("%-16s", t->regions[i].name);
            for (size_t j = 0; j < t->n_regions; j++) {
                char cell[64] = "-";
                if (path == 0) {
                    json_t *o = json_object_get(json_object_get(status[j], "replication"),
                                                t->regions[i].name);
                    lag_cell(o, "batches", "p50_ms", "p99_ms", "last_ms", cell, sizeof(cell));
                } else if (i != j) {
                    json_t *peers = json_object_get(json_object_get(status[i], "tables"), "peers");
                    for (size_t k = 0; k < json_array_size(peers); k++) {
                        json_t *p = json_array_get(peers, k);
                        const char *region = json_string_value(json_object_get(p, "region"));
                        if (region && strcmp(region, t->regions[j].name) == 0)
                            lag_cell(p, "batches", "lag_p50_ms", "lag_p99_ms", "last_lag_ms", cell,
                                     sizeof(cell));
                    }
                }
                printf(" %22s", cell);
            }
            printf("\n");
        }
    }
}

/* The region whose etcd member leads, from the status documents. */
static const char *etcd_leader(const struct topo *t, json_t **status)
{
    for (size_t i = 0; i < t->n_regions; i++)
        if (json_is_true(json_object_get(json_object_get(status[i], "etcd"), "local_member_is_leader")))
            return t->regions[i].name;
    return NULL;
}

/* Orders in the database, by region; and whether every order acknowledged
 * to a shopper is among them.  Returns 1 when it is. */
static int print_orders(const struct demo *d, const struct topo *t)
{
    char err[MR_ERRMSG_LEN];
    json_t *ans = NULL, *rows;
    size_t acked = json_object_size(d->refs), found = 0, total = 0;

    rows = sql_rows(&t->regions[0], "SELECT region, count(*), sum(n_items) FROM orders "
                                    "GROUP BY region ORDER BY region", &ans, err);
    printf("\n== orders placed (SQL, in %s):", t->regions[0].name);
    if (rows == NULL) {
        printf(" %s\n", err);
        json_decref(ans);
        return 0;
    }
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        printf("%s %s %lld (%lld items)", i ? "," : "", json_string_value(json_array_get(row, 0)),
               (long long)json_integer_value(json_array_get(row, 1)),
               (long long)json_integer_value(json_array_get(row, 2)));
        total += (size_t)json_integer_value(json_array_get(row, 1));
    }
    printf("; total %zu\n", total);
    json_decref(ans);
    /* By pages: an answer holds at most the node's max_rows. */
    for (int64_t after = 0;;) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT id, ref FROM orders WHERE id > %lld ORDER BY id LIMIT 5000",
                 (long long)after);
        rows = sql_rows(&t->regions[0], sql, &ans, err);
        for (size_t i = 0; i < json_array_size(rows); i++) {
            json_t *row = json_array_get(rows, i);
            after = json_integer_value(json_array_get(row, 0));
            found += json_object_get(d->refs, json_string_value(json_array_get(row, 1))) != NULL;
        }
        size_t n = json_array_size(rows);
        json_decref(ans);
        if (n < 5000)
            break;
    }
    printf("   checkouts: %zu new orders acknowledged, %llu replayed, %llu refused for stock, "
           "%llu other refusals\n", acked, (unsigned long long)d->replayed,
           (unsigned long long)d->out_of_stock, (unsigned long long)d->refused);
    printf("check: every acknowledged order is in the database: %s (%zu of %zu)\n",
           found == acked ? "yes" : "NO", found, acked);
    return found == acked;
}

/* The first region's dashboard, with the run's admin token when it has
 * one (the node sets its cookie and drops the token from the address). */
static const char *dashboard_link(const struct topo *t, char *buf, size_t size)
{
    snprintf(buf, size, "%s/dashboard%s%s", t->regions[0].url, t->token[0] ? "?token=" : "", t->token);
    return buf;
}

int cmd_demo(int argc, char **argv)
{
    static const struct option longopts[] = {{"duration", required_argument, NULL, 'd'},
                                             {"shoppers", required_argument, NULL, 's'},
                                             {"clients", required_argument, NULL, 's'},
                                             {"topology", required_argument, NULL, 't'},
                                             {"keep", no_argument, NULL, 'k'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int64_t duration_ms = 28000, per_site = 10;
    const char *topology = NULL, *leader;
    char err[MR_ERRMSG_LEN], title[128], link[512];
    struct load_result res[N_PHASES];
    struct load_target targets[TOPO_MAX_SITES];
    struct topo t;
    struct demo d;
    json_t *status[TOPO_MAX_REGIONS] = {0};
    char digest0[80] = "";
    size_t base = 0;
    uint64_t failed = 0, total = 0;
    int64_t carts = 0, sessions = 0;
    int opt, keep = 0, identical, carts_ok, sessions_ok, orders_ok, exit_code = 0;

    while ((opt = getopt_long(argc, argv, "d:s:t:kh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            if (mr_parse_duration_ms(optarg, &duration_ms) != 0 || duration_ms < 500 ||
                duration_ms > 600000) {
                fprintf(stderr, "meridian demo: --duration: expected 500ms to 10m per phase, "
                        "found '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (mr_parse_i64(optarg, 1, 100, &per_site) != 0) {
                fprintf(stderr, "meridian demo: --shoppers: expected 1 to 100 per site, found '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 't': topology = optarg; break;
        case 'k': keep = 1; break;
        case 'h':
            printf("usage: meridian demo [--duration 28s] [--shoppers 10] [--topology FILE] [--keep]\n"
                   "  --duration  measured time of each phase (plus 0.5 s of warm-up)\n"
                   "  --shoppers  shoppers per client site (--clients: the same)\n"
                   "  --topology  a topology with [site NAME] sections (default: the built-in one)\n"
                   "  --keep      leave the topology running (for the browser); stop it with\n"
                   "              `meridian down RUNDIR`\n");
            return 0;
        default: return 2;
        }
    }
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    printf("== starting a local topology: per region an etcd member, a node and a shop (catalog\n"
           "   seeded), an edge per client site; every byte between regions and from each site\n"
           "   through the emulated WAN (`meridian wan`)\n");
    if (topo_up(&t, "/proc/self/exe", topology, NULL, NULL, 1, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        return 1;
    }
    memset(&d, 0, sizeof(d));
    d.refs = json_object();
    if (interrupted) {
        exit_code = 130;
        goto out;
    }
    for (size_t r = 0; r < t.n_regions; r++)
        if (strcmp(t.regions[r].name, "us-east-1") == 0)
            base = r;
    for (size_t s = 0; s < t.n_sites; s++)
        if (t.sites[s].edge_port == 0 || t.sites[s].shop_port[base] == 0) {
            fprintf(stderr, "meridian demo: topology.json lists no edge or no shop route for site "
                    "%s\n", t.sites[s].name);
            exit_code = 1;
            goto out;
        }
    if (t.n_sites == 0) {
        fprintf(stderr, "meridian demo: the topology has no client sites ([site NAME] sections, "
                "docs/topology.md)\n");
        exit_code = 1;
        goto out;
    }
    d.topo = &t;
    d.per_site = (size_t)per_site;
    d.shoppers = mr_calloc(t.n_sites * d.per_site, sizeof(*d.shoppers));
    printf("\n== %zu client sites, %lld shoppers each, with their cookies; a visit: catalog page,\n"
           "   two product pages, add to cart, catalog page, product page, add to cart, checkout,\n"
           "   order history (which must show the order just placed), %d ms think time\n",
           t.n_sites, (long long)per_site, THINK_MS);

    for (size_t s = 0; s < t.n_sites; s++) {
        targets[s].host = t.sites[s].shop_host[base];
        targets[s].port = t.sites[s].shop_port[base];
    }
    snprintf(title, sizeof(title), "before: every site on %s's shop", t.regions[base].name);
    /* With [topology] tls the shops want a certificate of the run's CA:
     * the admin one (topology.json "auth"); the edges stay plain HTTP
     * unless edge_tls. */
    run_phase(&d, PHASE_BEFORE, title, targets, t.tls, duration_ms, &res[PHASE_BEFORE]);
    if (interrupted) {
        exit_code = 130;
        goto out;
    }
    for (size_t s = 0; s < t.n_sites; s++) {
        targets[s].host = t.sites[s].edge_host;
        targets[s].port = t.sites[s].edge_port;
    }
    run_phase(&d, PHASE_AFTER, "after: every site through its edge", targets,
              strncmp(t.sites[0].edge_url, "https:", 6) == 0 ? t.tls : NULL, duration_ms,
              &res[PHASE_AFTER]);
    if (interrupted) {
        exit_code = 130;
        goto out;
    }

    printf("\n%-10s %-6s %-15s %6s %8s %6s %6s %6s %12s %12s %5s %12s\n", "", "", "", "",
           "", "", "", "", "catalog ms", "product ms", "", "checkout ms");
    printf("%-10s %-6s %-15s %6s %8s %6s %6s %6s %12s %12s %5s %12s\n", "site", "phase",
           "served by", "RTT", "requests", "failed", "pages", "cached", "p50/p99", "p50/p99",
           "buys", "p50/p99");
    for (size_t s = 0; s < t.n_sites; s++)
        for (int p = 0; p < N_PHASES; p++)
            print_row(&d, s, p, &res[p]);
    for (int p = 0; p < N_PHASES; p++) {
        failed += res[p].all.failed;
        total += res[p].all.ok + res[p].all.failed;
    }
    if (converge(&t, status, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        exit_code = 1;
    }
    leader = etcd_leader(&t, status);
    printf("\nRTT: the site's round trip to the region serving it.  pages: catalog and product page\n"
           "views; cached: the share answered by the site's edge cache (in about 0.1 ms); catalog\n"
           "and product: the latency of the others, served by a region (a catalog page is an\n"
           "eventual read there; a product page reads its stock strongly, which asks etcd's leader\n"
           "and waits for its quorum: far from the leader that costs more than the distance saved).\n"
           "buys: checkouts, one global SQL transaction each, ordered by etcd (leader now in\n"
           "%s) in both phases, so each pays a cross-region quorum wherever it lands.\n",
           leader ? leader : "no region");

    print_offload(&d);
    print_lag(&t, status);
    orders_ok = print_orders(&d, &t);

    identical = digests_identical(&t, digest0, sizeof(digest0), err);
    carts_ok = table_identical(&t, "carts", &carts);
    sessions_ok = table_identical(&t, "sessions", &sessions);
    printf("check: read-your-writes, the order history right after a checkout shows that order: "
           "%llu checked, %llu violations\n", (unsigned long long)d.ryw_checked,
           (unsigned long long)d.ryw_violations);
    printf("check: SQL replicas identical: %s (digest %.16s...)\n", identical ? "yes" : "NO", digest0);
    printf("check: global tables identical in every region: carts %s (%lld items), sessions %s "
           "(%lld items)\n", carts_ok ? "yes" : "NO", (long long)carts, sessions_ok ? "yes" : "NO",
           (long long)sessions);
    printf("requests: %llu, %llu failed%s%s\n", (unsigned long long)total,
           (unsigned long long)failed, failed ? "; first error: " : "",
           !failed ? "" : res[0].first_error[0] ? res[0].first_error : res[1].first_error);
    if (!identical || !carts_ok || !sessions_ok || !orders_ok || d.ryw_violations ||
        failed * 100 > total)
        exit_code = 1;
    printf("\ndashboard: %s\n", dashboard_link(&t, link, sizeof(link)));
    if (t.tls != NULL)
        printf("   (https with a certificate of the run's throw-away CA, %s/tls/ca.crt: the browser\n"
               "   warns about it; the link carries the run's admin token, which the node keeps in\n"
               "   a cookie; no client certificate needed)\n", t.rundir);
out:
    for (size_t i = 0; i < t.n_regions; i++)
        json_decref(status[i]);
    json_decref(d.refs);
    mr_free(d.shoppers);
    if (keep && !interrupted) {
        printf("\n== left running (--keep).  The shop as each site sees it, through its edge:\n");
        for (size_t s = 0; s < t.n_sites; s++)
            printf("   %-12s %s/\n", t.sites[s].name, t.sites[s].edge_url);
        printf("   dashboard: %s\n", dashboard_link(&t, link, sizeof(link)));
        printf("   stop it with: meridian down %s   (then remove the directory: it keeps the logs)\n",
               t.rundir);
        fflush(stdout);
        topo_detach(&t);
        return exit_code;
    }
    printf("\n== stopping\n");
    fflush(stdout);
    topo_down(&t, "/proc/self/exe");
    return exit_code;
}
