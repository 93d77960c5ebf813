/* `meridian shop` on three real regions: one real shop process per region
 * (MERIDIAN_BIN), seeded with `meridian shop seed`.  Seed idempotence, the
 * catalog and product API, the cart (quantities, removal, concurrent edits
 * from two regions converging), checkout (stock, exactly one order on a
 * double click and on a retry through another region, out of stock refused
 * with nothing changed), order history read in another region with the
 * token, the HTML pages, clear 4xx for malformed requests, and a region
 * whose node is down answering 503 pages.  Shop logs go to RUNDIR/logs, so
 * a sanitizer report in a shop fails the run (cluster_stop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/token.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/daemon.h"
#include "lib/sqlt.h"
#include "lib/wait.h"

#define N_SHOPS 3

static struct cluster *C;
static struct daemon S[N_SHOPS];

/* ---- shop processes ------------------------------------------------------------ */

static int shop_ready(void *arg)
{
    return api_status(((struct daemon *)arg)->url, "/readyz") == 200;
}

static int shop_spawn(struct cluster_region *reg, struct daemon *p)
{
    char log[512], ca[4200], crt[4200], key[4200];
    char *argv[] = {(char *)cluster_bin(), "shop", "--listen", "127.0.0.1:0", "--node", reg->node_url,
                    "--region", reg->name, "--set", "limits.max_qty=99", NULL, NULL, NULL, NULL,
                    NULL, NULL, NULL};

    /* A TLS topology: the shop calls its https:// node, and listens, with the
     * run's admin certificate (a member of the cluster: no token needed). */
    if (cluster_tls_ca[0]) {
        snprintf(ca, sizeof(ca), "tls.ca_file=%s", cluster_tls_ca);
        snprintf(crt, sizeof(crt), "tls.cert_file=%s", cluster_tls_cert);
        snprintf(key, sizeof(key), "tls.key_file=%s", cluster_tls_key);
        argv[10] = "--set";
        argv[11] = ca;
        argv[12] = "--set";
        argv[13] = crt;
        argv[14] = "--set";
        argv[15] = key;
    }

    snprintf(log, sizeof(log), "%s/logs/shop-%s.log", C->rundir, reg->name);
    if (daemon_start(argv, log, p) != 0)
        return -1;
    return wait_for(shop_ready, p, 20000);
}

static int seed(const char *node_url)
{
    /* --dir: the run's admin token and certificate (topology.json "auth"). */
    char *argv[] = {(char *)cluster_bin(), "shop", "seed", "--node", (char *)node_url, "--dir",
                    C->rundir, NULL};

    return cluster_run(argv, 60000);
}

static int setup(void **state)
{
    (void)state;
    if (cluster_start(NULL, &C) != 0)
        return -1;
    if (seed(C->regions[0].node_url) != 0)
        return -1;
    for (size_t i = 0; i < N_SHOPS; i++)
        if (shop_spawn(&C->regions[i], &S[i]) != 0)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    int rc = 0;

    (void)state;
    for (size_t i = 0; i < N_SHOPS; i++)
        rc |= daemon_stop(&S[i]);
    rc |= cluster_stop(C);
    return rc ? -1 : 0;
}

/* ---- a shopper: cookies kept like a browser --------------------------------------- */

struct shopper {
    char sid[80];
    char tok[MR_TOKEN_MAX_LEN];
};

struct reply {
    int status;
    json_t *body;
    char *text;
    char *headers;
};

static void reply_close(struct reply *r)
{
    json_decref(r->body);
    free(r->text);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

/* Value of response header <name> into <out>; 1 when present. */
static int header(const struct reply *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = r->headers; p && *p;) {
        const char *end = strstr(p, "\r\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)(len - (size_t)(v - p)), v);
            return 1;
        }
        p = end ? end + 2 : NULL;
    }
    return 0;
}

static void take_cookies(struct shopper *sh, const char *headers)
{
    for (const char *p = headers; p && (p = strcasestr(p, "Set-Cookie: ")) != NULL;) {
        const char *v = p + strlen("Set-Cookie: "), *end = strchr(v, ';');
        size_t len = end ? (size_t)(end - v) : strcspn(v, "\r\n");
        if (strncmp(v, "mr_sid=", 7) == 0)
            snprintf(sh->sid, sizeof(sh->sid), "%.*s", (int)(len - 7), v + 7);
        else if (strncmp(v, "mr_token=", 9) == 0)
            snprintf(sh->tok, sizeof(sh->tok), "%.*s", (int)(len - 9), v + 9);
        p = v;
    }
}

/* <method> <base><path> as the shopper <sh> (NULL: no cookies), <body> sent
 * as <ctype>.  0 when an answer came. */
static int call(struct shopper *sh, const char *method, const char *base, const char *path, const char *ctype,
                const char *body, const char *extra, struct reply *r)
{
    char url[600], headers[2048] = "", err[MR_ERRMSG_LEN];
    struct http_result res;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base, path);
    if (sh && (sh->sid[0] || sh->tok[0]))
        snprintf(headers, sizeof(headers), "Cookie: mr_sid=%s; mr_token=%s\r\n", sh->sid, sh->tok);
    if (ctype)
        snprintf(headers + strlen(headers), sizeof(headers) - strlen(headers), "Content-Type: %s\r\n", ctype);
    if (extra)
        snprintf(headers + strlen(headers), sizeof(headers) - strlen(headers), "%s", extra);
    rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0,
                    (uint64_t)test_timeout_ms(20000), &res, err);
    if (rc != 0) {
        fprintf(stderr, "%s %s: %s\n", method, url, err);
        return rc;
    }
    r->status = res.status;
    r->text = strndup(res.body.data ? res.body.data : "", res.body.len);
    r->headers = strndup(res.headers.data ? res.headers.data : "", res.headers.len);
    r->body = json_loadb(r->text, res.body.len, 0, NULL);
    http_result_close(&res);
    if (sh)
        take_cookies(sh, r->headers);
    return 0;
}

static int jcall(struct shopper *sh, const char *method, size_t shop, const char *path, const char *json,
                 struct reply *r)
{
    return call(sh, method, S[shop].url, path, json ? "application/json" : NULL, json, NULL, r);
}

static const char *err_code(const struct reply *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->body, "error"), "code"));
    return c ? c : "";
}

/* Quantity of <sku> in a cart answer, 0 when absent. */
static long long cart_qty(const struct reply *r, const char *sku)
{
    json_t *it;
    size_t i;

    json_array_foreach(json_object_get(r->body, "items"), i, it) {
        if (strcmp(json_string_value(json_object_get(it, "sku")), sku) == 0)
            return json_integer_value(json_object_get(it, "quantity"));
    }
    return 0;
}

static void add(struct shopper *sh, size_t shop, const char *sku, int n)
{
    char body[128];
    struct reply r;

    snprintf(body, sizeof(body), "{\"sku\":\"%s\",\"add\":%d}", sku, n);
    assert_int_equal(jcall(sh, "POST", shop, "/api/cart/items", body, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "add %s: %d %s\n", sku, r.status, r.text);
    assert_int_equal(r.status, 200);
    reply_close(&r);
}

static long long stock_of(const char *sku)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT stock FROM products WHERE sku = '%s'", sku);
    return sqlt_scalar(C->regions[0].node_url, sql);
}

static long long orders_with_ref(const char *ref)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM orders WHERE ref = '%s'", ref);
    return sqlt_scalar(C->regions[0].node_url, sql);
}

/* ---- seed ------------------------------------------------------------------------- */

static void seed_twice_leaves_the_same_catalog(void **state)
{
    char d1[65], d2[65];
    struct api_reply t;

    (void)state;
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(sqlt_digest(C->regions[0].node_url, d1), 0);
    assert_int_equal(sqlt_scalar(C->regions[0].node_url, "SELECT count(*) FROM products"), 300);
    assert_int_equal(seed(C->regions[1].node_url), 0);
    assert_true(sqlt_identical(C, 20000));
    assert_int_equal(sqlt_digest(C->regions[0].node_url, d2), 0);
    assert_string_equal(d1, d2);
    assert_int_equal(sqlt_scalar(C->regions[2].node_url, "SELECT count(*) FROM products"), 300);
    assert_int_equal(api_get(C->regions[2].node_url, "/v1/tables/carts", &t), 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(json_string_value(json_object_get(t.body, "kind")), "crdt");
    api_reply_close(&t);
    assert_int_equal(api_get(C->regions[0].node_url, "/v1/tables/sessions", &t), 0);
    assert_string_equal(json_string_value(json_object_get(t.body, "kind")), "lww");
    assert_string_equal(json_string_value(json_object_get(t.body, "ttl_field")), "expires");
    api_reply_close(&t);
}

/* ---- catalog ---------------------------------------------------------------------- */

static void catalog_lists_searches_pages_and_is_cacheable(void **state)
{
    struct shopper returning = {"0123456789abcdef0123456789abcdef", "1.1.us-east-1=1"};
    struct reply r, r2;
    char h[256];
    json_t *p;
    size_t i;

    (void)state;
    /* a shopper with cookies: the public answer must still carry none of them */
    assert_int_equal(jcall(&returning, "GET", 1, "/api/products?q=wool&per_page=5", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "products")), 5);
    assert_true(json_integer_value(json_object_get(r.body, "total")) > 5);
    json_array_foreach(json_object_get(r.body, "products"), i, p) {
        assert_non_null(strcasestr(json_string_value(json_object_get(p, "name")), "wool"));
        assert_true(json_integer_value(json_object_get(p, "price_cents")) > 0);
    }
    assert_true(header(&r, "Cache-Control", h, sizeof(h)));
    assert_non_null(strstr(h, "public"));
    assert_non_null(strstr(h, "max-age="));
    assert_non_null(strstr(h, "stale-while-revalidate="));
    assert_non_null(strstr(h, "stale-if-error="));
    assert_true(header(&r, "Meridian-Region", h, sizeof(h)));
    assert_string_equal(h, C->regions[1].name);
    assert_false(header(&r, "Set-Cookie", h, sizeof(h))); /* an edge may cache it */
    assert_false(header(&r, "Meridian-Token", h, sizeof(h)));
    assert_int_equal(jcall(NULL, "GET", 1, "/api/products?q=wool&per_page=5&page=2", NULL, &r2), 0);
    assert_int_equal(r2.status, 200);
    assert_false(json_equal(json_object_get(r.body, "products"), json_object_get(r2.body, "products")));
    reply_close(&r);
    reply_close(&r2);
    /* LIKE wildcards are searched literally */
    assert_int_equal(jcall(NULL, "GET", 0, "/api/products?q=%25", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 0);
    reply_close(&r);

    assert_int_equal(jcall(NULL, "GET", 2, "/api/products/mr-0007", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    p = json_object_get(r.body, "product");
    assert_string_equal(json_string_value(json_object_get(p, "sku")), "mr-0007");
    assert_int_equal(json_integer_value(json_object_get(p, "stock")), stock_of("mr-0007"));
    assert_string_equal(json_string_value(json_object_get(p, "stock_consistency")), "strong");
    reply_close(&r);
    assert_int_equal(jcall(NULL, "GET", 2, "/api/products/mr-0007/stock", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "Cache-Control", h, sizeof(h)));
    assert_non_null(strstr(h, "no-store"));
    reply_close(&r);
    assert_int_equal(jcall(NULL, "GET", 0, "/api/products/mr-9999", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(err_code(&r), "not_found");
    reply_close(&r);
}

/* ---- cart --------------------------------------------------------------------------- */

static void cart_adds_changes_quantity_and_removes_lines(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    char h[256];

    (void)state;
    assert_int_equal(jcall(&sh, "POST", 0, "/api/cart/items", "{\"sku\":\"mr-0010\",\"add\":2}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(strlen(sh.sid), 32); /* the shop set a session cookie */
    assert_true(sh.tok[0] != '\0');       /* and a token cookie */
    assert_int_equal(cart_qty(&r, "mr-0010"), 2);
    assert_true(header(&r, "Cache-Control", h, sizeof(h)));
    assert_non_null(strstr(h, "no-store"));
    reply_close(&r);
    add(&sh, 0, "mr-0010", 1);
    add(&sh, 0, "mr-0011", 1);
    assert_int_equal(jcall(&sh, "POST", 0, "/api/cart/items", "{\"sku\":\"mr-0010\",\"quantity\":5}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cart_qty(&r, "mr-0010"), 5);
    assert_int_equal(cart_qty(&r, "mr-0011"), 1);
    reply_close(&r);
    assert_int_equal(jcall(&sh, "DELETE", 0, "/api/cart/items?sku=mr-0010", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cart_qty(&r, "mr-0010"), 0);
    assert_int_equal(json_integer_value(json_object_get(r.body, "lines")), 1);
    reply_close(&r);
    /* Re-adding a removed line starts from the new quantity. */
    add(&sh, 0, "mr-0010", 1);
    /* The other region sees it all at once with the token. */
    assert_int_equal(jcall(&sh, "GET", 2, "/api/cart/items", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cart_qty(&r, "mr-0010"), 1);
    assert_int_equal(cart_qty(&r, "mr-0011"), 1);
    assert_true(json_integer_value(json_object_get(r.body, "total_cents")) > 0);
    reply_close(&r);
    /* Limits are explicit. */
    assert_int_equal(jcall(&sh, "POST", 0, "/api/cart/items", "{\"sku\":\"mr-0011\",\"add\":99}", &r), 0);
    assert_int_equal(r.status, 409);
    assert_string_equal(err_code(&r), "quantity_limit");
    reply_close(&r);
    assert_int_equal(jcall(&sh, "POST", 0, "/api/cart/items", "{\"sku\":\"mr-9999\",\"add\":1}", &r), 0);
    assert_int_equal(r.status, 404);
    reply_close(&r);
    assert_int_equal(jcall(&sh, "DELETE", 1, "/api/cart/items", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.body, "lines")), 0);
    reply_close(&r);
}

struct edit {
    struct shopper sh;
    size_t shop;
    const char *body;
    int status;
};

static void *edit_run(void *arg)
{
    struct edit *e = arg;
    struct reply r;

    e->status = -1;
    if (jcall(&e->sh, "POST", e->shop, "/api/cart/items", e->body, &r) == 0) {
        e->status = r.status;
        reply_close(&r);
    }
    return NULL;
}

struct converge {
    struct shopper sh;
    const char *sku[4];
    long long qty[4];
};

static int cart_converged(void *arg)
{
    struct converge *cv = arg;
    struct shopper nocookie_token;

    for (size_t s = 0; s < N_SHOPS; s++) {
        struct reply r;
        int ok = 1;
        /* Without a token: the region must have converged by itself. */
        snprintf(nocookie_token.sid, sizeof(nocookie_token.sid), "%s", cv->sh.sid);
        nocookie_token.tok[0] = '\0';
        if (jcall(&nocookie_token, "GET", s, "/api/cart/items", NULL, &r) != 0)
            return 0;
        for (size_t i = 0; i < 4 && cv->sku[i]; i++)
            ok &= cart_qty(&r, cv->sku[i]) == cv->qty[i];
        reply_close(&r);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Every region's cart holds mr-0030 in the same quantity, at least 1. */
static int line_present_everywhere(void *arg)
{
    struct converge *cv = arg;
    struct shopper plain;
    long long first = -1;

    snprintf(plain.sid, sizeof(plain.sid), "%s", cv->sh.sid);
    plain.tok[0] = '\0';
    for (size_t s = 0; s < N_SHOPS; s++) {
        struct reply r;
        long long q;
        if (jcall(&plain, "GET", s, "/api/cart/items", NULL, &r) != 0)
            return 0;
        q = cart_qty(&r, "mr-0030");
        reply_close(&r);
        if (q < 1 || (first >= 0 && q != first))
            return 0;
        first = q;
    }
    return 1;
}

static void concurrent_cart_edits_in_two_regions_keep_both(void **state)
{
    struct shopper sh = {"", ""};
    struct edit a, b;
    pthread_t ta, tb;
    struct converge cv;

    (void)state;
    add(&sh, 0, "mr-0020", 1);
    for (int round = 0; round < 3; round++) {
        /* Frankfurt and Singapore add different items, at the same moment,
         * to the same session's cart; and bump the same line. */
        char ba[96], bb[96];
        snprintf(ba, sizeof(ba), "{\"sku\":\"mr-%04d\",\"add\":1}", 30 + round);
        snprintf(bb, sizeof(bb), "{\"sku\":\"mr-%04d\",\"add\":2}", 40 + round);
        a = (struct edit){sh, 1, ba, 0};
        b = (struct edit){sh, 2, bb, 0};
        pthread_create(&ta, NULL, edit_run, &a);
        pthread_create(&tb, NULL, edit_run, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        assert_int_equal(a.status, 200);
        assert_int_equal(b.status, 200);
        a = (struct edit){sh, 1, "{\"sku\":\"mr-0020\",\"add\":1}", 0};
        b = (struct edit){sh, 2, "{\"sku\":\"mr-0020\",\"add\":1}", 0};
        pthread_create(&ta, NULL, edit_run, &a);
        pthread_create(&tb, NULL, edit_run, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        assert_int_equal(a.status, 200);
        assert_int_equal(b.status, 200);
    }
    memset(&cv, 0, sizeof(cv));
    cv.sh = sh;
    cv.sku[0] = "mr-0020", cv.qty[0] = 7; /* 1 + 3 rounds x 2 regions */
    cv.sku[1] = "mr-0030", cv.qty[1] = 1;
    cv.sku[2] = "mr-0042", cv.qty[2] = 2;
    assert_int_equal(wait_for(cart_converged, &cv, 20000), 0);

    /* A removal in one region concurrent with an add in another: add wins.
     * Concurrent for sure: the add's region is cut off from the others
     * while both happen (without the cut, the add could reach the removing
     * region first, and an observed add is rightly removed). */
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "partition", NULL), 0);
    a = (struct edit){sh, 1, "{\"sku\":\"mr-0030\",\"quantity\":0}", 0};
    b = (struct edit){sh, 2, "{\"sku\":\"mr-0030\",\"add\":1}", 0};
    edit_run(&a);
    edit_run(&b);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "heal", NULL), 0);
    cv.sku[1] = "mr-0042", cv.qty[1] = 2;
    cv.sku[2] = NULL;
    assert_int_equal(wait_for(cart_converged, &cv, 20000), 0);
    /* Present everywhere once both edits have reached every region. */
    assert_int_equal(wait_for(line_present_everywhere, &cv, 20000), 0);
}

/* ---- sessions and preferences ------------------------------------------------------------ */

static void preferences_live_in_the_sessions_table_with_a_ttl(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    struct api_reply t;
    char path[128];
    long long exp;

    (void)state;
    add(&sh, 1, "mr-0015", 1);
    /* the first cart write created the session document, with its expiry */
    snprintf(path, sizeof(path), "/v1/tables/sessions/items/%s", sh.sid);
    assert_int_equal(call(NULL, "GET", C->regions[1].node_url, path, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    exp = json_integer_value(json_object_get(json_object_get(r.body, "item"), "expires"));
    assert_true(exp > (long long)time(NULL) + 6 * 24 * 3600);
    reply_close(&r);
    assert_int_equal(jcall(&sh, "POST", 0, "/api/session", "{\"currency\":\"GBP\",\"language\":\"fr\"}", &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    /* read in another region with the token: the write is there */
    assert_int_equal(jcall(&sh, "GET", 2, "/api/session", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.body, "currency")), "GBP");
    assert_string_equal(json_string_value(json_object_get(r.body, "language")), "fr");
    reply_close(&r);
    /* a cart change keeps the preferences */
    add(&sh, 2, "mr-0016", 1);
    assert_int_equal(api_get(C->regions[2].node_url, path, &t), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t.body, "item"), "currency")), "GBP");
    api_reply_close(&t);
    /* the cart page shows prices in pounds */
    assert_int_equal(call(&sh, "GET", S[2].url, "/cart", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "\u00a3"));
    assert_non_null(strstr(r.text, "lang=\"fr\""));
    reply_close(&r);
}

/* ---- checkout ------------------------------------------------------------------------ */

struct co {
    struct shopper sh;
    size_t shop;
    struct reply r;
};

static void *co_run(void *arg)
{
    struct co *c = arg;

    c->r.status = -1;
    if (jcall(&c->sh, "POST", c->shop, "/api/checkout", NULL, &c->r) != 0)
        c->r.status = -1;
    return NULL;
}

static const char *order_ref(const struct reply *r)
{
    const char *s = json_string_value(json_object_get(json_object_get(r->body, "order"), "ref"));
    return s ? s : "";
}

static void checkout_twice_at_once_and_retried_elsewhere_places_one_order(void **state)
{
    struct shopper sh = {"", ""}, before;
    long long s1 = stock_of("mr-0050"), s2 = stock_of("mr-0051");
    struct co a, b;
    pthread_t ta, tb;
    struct reply r;
    char ref[32];

    (void)state;
    add(&sh, 0, "mr-0050", 2);
    add(&sh, 0, "mr-0051", 1);
    before = sh;
    /* A double click: two submissions at the same moment. */
    a = (struct co){sh, 0, {0}};
    b = (struct co){sh, 0, {0}};
    pthread_create(&ta, NULL, co_run, &a);
    pthread_create(&tb, NULL, co_run, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.r.status != 200 || b.r.status != 200)
        fprintf(stderr, "checkout: %d %s / %d %s\n", a.r.status, a.r.text, b.r.status, b.r.text);
    assert_int_equal(a.r.status, 200);
    assert_int_equal(b.r.status, 200);
    snprintf(ref, sizeof(ref), "%s", order_ref(&a.r));
    assert_int_equal(strlen(ref), 16);
    assert_string_equal(order_ref(&b.r), ref);
    assert_int_equal(json_is_true(json_object_get(a.r.body, "replayed")) +
                     json_is_true(json_object_get(b.r.body, "replayed")), 1);
    /* The submission that placed the order (which of the two is a race:
     * with TLS each opens its own connection with a handshake) moved the
     * shopper's consistency token. */
    {
        struct co *placed = json_is_true(json_object_get(a.r.body, "replayed")) ? &b : &a;
        assert_non_null(strstr(placed->r.headers, "Set-Cookie: mr_token="));
        sh = placed->sh;
    }
    reply_close(&a.r);
    reply_close(&b.r);
    assert_int_equal(orders_with_ref(ref), 1);
    assert_int_equal(stock_of("mr-0050"), s1 - 2);
    assert_int_equal(stock_of("mr-0051"), s2 - 1);

    /* A retry through each other region, with the cookies from before the
     * answer (the client never saw it: a failover): the same order. */
    for (size_t shop = 1; shop < N_SHOPS; shop++) {
        struct shopper old = before;
        assert_int_equal(jcall(&old, "POST", shop, "/api/checkout", NULL, &r), 0);
        if (r.status != 200)
            fprintf(stderr, "retry: %d %s\n", r.status, r.text);
        assert_int_equal(r.status, 200);
        assert_string_equal(order_ref(&r), ref);
        assert_true(json_is_true(json_object_get(r.body, "replayed")));
        reply_close(&r);
    }
    assert_int_equal(orders_with_ref(ref), 1);
    assert_int_equal(stock_of("mr-0050"), s1 - 2);
    /* The cart is empty afterwards, seen from another region with the token. */
    assert_int_equal(jcall(&sh, "GET", 2, "/api/cart/items", NULL, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r.body, "lines")), 0);
    reply_close(&r);
    /* The same cart bought again later is a new order. */
    add(&sh, 1, "mr-0050", 2);
    add(&sh, 1, "mr-0051", 1);
    assert_int_equal(jcall(&sh, "POST", 1, "/api/checkout", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_not_equal(order_ref(&r), ref);
    assert_false(json_is_true(json_object_get(r.body, "replayed")));
    reply_close(&r);
    assert_int_equal(stock_of("mr-0050"), s1 - 4);
}

/* The double purchase a game day found: the order commits through etcd
 * while emptying the cart streams to the other regions later.  A shopper
 * whose answer was lost, and who adds to the cart and checks out in another
 * region before the clearing arrives there, must not buy the first lines
 * again: the guard (one order per cart state) refuses it; once the cart has
 * caught up, the new line alone is bought. */
static int cart_lacks(void *arg)
{
    struct converge *cv = arg;
    struct shopper notoken = cv->sh;
    struct reply r;
    int gone;

    notoken.tok[0] = '\0';
    if (jcall(&notoken, "GET", 1, "/api/cart/items", NULL, &r) != 0)
        return 0;
    gone = cart_qty(&r, cv->sku[0]) == 0 && cart_qty(&r, cv->sku[1]) == 1;
    reply_close(&r);
    return gone;
}

/* Add one <sku> in region 0 and wait until every region's cart shows it;
 * <cv> is left describing that cart. */
static void add_and_converge(struct shopper *sh, const char *sku, struct converge *cv)
{
    add(sh, 0, sku, 1);
    memset(cv, 0, sizeof(*cv));
    cv->sh = *sh;
    cv->sku[0] = sku;
    cv->qty[0] = 1;
    assert_int_equal(wait_for(cart_converged, cv, 10000), 0);
}

/* Hold region 0's table stream to region 1, or let it go. */
static void hold_stream_0_to_1(int hold)
{
    struct api_reply pr;
    char path[128];

    snprintf(path, sizeof(path), "/v1/tables/_peers/%s/%s", C->regions[1].name, hold ? "pause" : "resume");
    assert_int_equal(api_post_json(C->regions[0].node_url, path, "{}", &pr), 0);
    assert_int_equal(pr.status, 200);
    api_reply_close(&pr);
}

static void second_checkout_before_the_cart_clears_elsewhere_is_refused(void **state)
{
    struct shopper sh = {"", ""}, lost;
    struct converge cv;
    struct reply r;
    char ref[32], sql[160];
    long long s60 = stock_of("mr-0060");

    (void)state;
    add_and_converge(&sh, "mr-0060", &cv);
    /* Region 0's table stream to region 1 stops: the clearing stays in 0. */
    hold_stream_0_to_1(1);
    lost = sh; /* the client never sees the answer of the first checkout */
    assert_int_equal(jcall(&sh, "POST", 0, "/api/checkout", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(ref, sizeof(ref), "%s", order_ref(&r));
    reply_close(&r);
    /* In region 1 the cart still holds mr-0060; the shopper adds another
     * product and checks out there. */
    add(&lost, 1, "mr-0061", 1);
    assert_int_equal(jcall(&lost, "POST", 1, "/api/checkout", NULL, &r), 0);
    if (r.status != 409)
        fprintf(stderr, "second checkout: %d %s\n", r.status, r.text);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.text, "cart_changed"));
    reply_close(&r);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM orders WHERE session = '%s'", sh.sid);
    assert_int_equal(sqlt_scalar(C->regions[0].node_url, sql), 1);
    assert_int_equal(stock_of("mr-0060"), s60 - 1);
    /* The stream resumes; the cart converges to the new line alone (add
     * wins for mr-0061, the clearing removed what region 0 had seen). */
    hold_stream_0_to_1(0);
    cv.sh = lost;
    cv.sku[1] = "mr-0061";
    assert_int_equal(wait_for(cart_lacks, &cv, 10000), 0);
    assert_int_equal(jcall(&lost, "POST", 1, "/api/checkout", NULL, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "checkout after catching up: %d %s\n", r.status, r.text);
    assert_int_equal(r.status, 200);
    assert_string_not_equal(order_ref(&r), ref);
    reply_close(&r);
    assert_int_equal(sqlt_scalar(C->regions[0].node_url, sql), 2);
    assert_int_equal(stock_of("mr-0060"), s60 - 1);
}

/* Region 0's table stream to region 1 held: the shopper's last cart change
 * is in region 0 only, and their token names it.  Region 1 shows the cart it
 * has (without that change) instead of an error, after its session wait.
 * Checkout there takes the cart the shopper was shown: refused (409) for the
 * version region 0 showed, an order of region 1's lines for region 1's.
 * Resumed, the line region 1 never saw is in the cart (add wins). */
static void cart_views_and_checkout_fall_back_to_the_region(void **state)
{
    struct shopper sh = {"", ""};
    struct converge cv;
    struct reply r;
    char body[96], v0[32], v1[32];
    long long s70 = stock_of("mr-0070"), s71 = stock_of("mr-0071");

    (void)state;
    add_and_converge(&sh, "mr-0070", &cv);
    hold_stream_0_to_1(1);
    add(&sh, 0, "mr-0071", 1);
    assert_int_equal(jcall(&sh, "GET", 0, "/api/cart/items", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cart_qty(&r, "mr-0071"), 1);
    snprintf(v0, sizeof(v0), "%s", json_string_value(json_object_get(r.body, "version")));
    reply_close(&r);
    assert_int_equal(jcall(&sh, "GET", 1, "/api/cart/items", NULL, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "cart in region 1: %d %s\n", r.status, r.text);
    assert_int_equal(r.status, 200);
    assert_int_equal(cart_qty(&r, "mr-0070"), 1);
    assert_int_equal(cart_qty(&r, "mr-0071"), 0);
    snprintf(v1, sizeof(v1), "%s", json_string_value(json_object_get(r.body, "version")));
    reply_close(&r);
    snprintf(body, sizeof(body), "{\"cart_version\":\"%s\"}", v0);
    assert_int_equal(jcall(&sh, "POST", 1, "/api/checkout", body, &r), 0);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.text, "cart_changed"));
    reply_close(&r);
    snprintf(body, sizeof(body), "{\"cart_version\":\"%s\"}", v1);
    assert_int_equal(jcall(&sh, "POST", 1, "/api/checkout", body, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "checkout in region 1: %d %s\n", r.status, r.text);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    assert_int_equal(stock_of("mr-0070"), s70 - 1);
    assert_int_equal(stock_of("mr-0071"), s71);
    assert_int_equal(call(NULL, "GET", S[1].url, "/metrics", NULL, NULL, NULL, &r), 0);
    assert_null(strstr(r.text, "meridian_shop_node_reads_fallback_total 0\n"));
    assert_non_null(strstr(r.text, "meridian_shop_node_reads_fallback_total "));
    reply_close(&r);
    hold_stream_0_to_1(0);
    cv.qty[0] = 0;
    cv.sku[1] = "mr-0071";
    cv.qty[1] = 1;
    assert_int_equal(wait_for(cart_converged, &cv, 10000), 0);
}

static void out_of_stock_checkout_is_refused_and_changes_nothing(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    char sku[16], body[160];
    long long stock, other = stock_of("mr-0060");
    json_t *rows;
    struct api_reply q;

    (void)state;
    assert_int_equal(sqlt_post(C->regions[0].node_url,
                               "{\"statements\":[{\"sql\":\"SELECT sku, stock FROM products WHERE stock < 90 AND sku > 'mr-0100' "
                               "ORDER BY sku LIMIT 1\"}],\"consistency\":\"strong\"}", &q), 0);
    rows = json_object_get(json_array_get(json_object_get(q.body, "results"), 0), "rows");
    assert_int_equal(json_array_size(rows), 1);
    snprintf(sku, sizeof(sku), "%s", json_string_value(json_array_get(json_array_get(rows, 0), 0)));
    stock = json_integer_value(json_array_get(json_array_get(rows, 0), 1));
    api_reply_close(&q);

    add(&sh, 2, "mr-0060", 1);
    snprintf(body, sizeof(body), "{\"sku\":\"%s\",\"quantity\":%lld}", sku, stock + 1);
    assert_int_equal(jcall(&sh, "POST", 2, "/api/cart/items", body, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    for (int attempt = 0; attempt < 2; attempt++) {
        assert_int_equal(jcall(&sh, "POST", 2, "/api/checkout", NULL, &r), 0);
        assert_int_equal(r.status, 409);
        assert_string_equal(err_code(&r), "out_of_stock");
        assert_non_null(strstr(r.text, sku));
        reply_close(&r);
    }
    assert_int_equal(stock_of(sku), stock);
    assert_int_equal(stock_of("mr-0060"), other);
    snprintf(body, sizeof(body), "SELECT count(*) FROM orders WHERE session = '%s'", sh.sid);
    assert_int_equal(sqlt_scalar(C->regions[0].node_url, body), 0);
    /* The page says so in words, in the region that served it. */
    assert_int_equal(call(&sh, "POST", S[2].url, "/checkout", "application/x-www-form-urlencoded", "", NULL, &r), 0);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.text, "<h1>Out of stock</h1>"));
    assert_non_null(strstr(r.text, C->regions[2].name));
    reply_close(&r);
    /* Fix the cart: the checkout goes through. */
    snprintf(body, sizeof(body), "{\"sku\":\"%s\",\"quantity\":%lld}", sku, stock);
    assert_int_equal(jcall(&sh, "POST", 2, "/api/cart/items", body, &r), 0);
    reply_close(&r);
    assert_int_equal(jcall(&sh, "POST", 2, "/api/checkout", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    assert_int_equal(stock_of(sku), 0);
}

static void cart_changed_since_viewed_is_refused(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    char body[96], version[32];

    (void)state;
    add(&sh, 0, "mr-0070", 1);
    assert_int_equal(jcall(&sh, "GET", 0, "/api/cart/items", NULL, &r), 0);
    snprintf(version, sizeof(version), "%s", json_string_value(json_object_get(r.body, "version")));
    reply_close(&r);
    add(&sh, 1, "mr-0071", 1); /* another tab, another region */
    snprintf(body, sizeof(body), "{\"cart_version\":\"%s\"}", version);
    assert_int_equal(jcall(&sh, "POST", 0, "/api/checkout", body, &r), 0);
    assert_int_equal(r.status, 409);
    assert_string_equal(err_code(&r), "cart_changed");
    reply_close(&r);
}

/* ---- orders ---------------------------------------------------------------------------- */

static void order_history_shows_the_new_order_in_every_region_at_once(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        struct shopper sh = {"", ""};
        struct reply r;
        char ref[32];
        size_t where = (size_t)i % N_SHOPS;

        add(&sh, where, "mr-0080", 1);
        assert_int_equal(jcall(&sh, "POST", where, "/api/checkout", NULL, &r), 0);
        assert_int_equal(r.status, 200);
        snprintf(ref, sizeof(ref), "%s", order_ref(&r));
        reply_close(&r);
        for (size_t s = 0; s < N_SHOPS; s++) {
            json_t *o;
            assert_int_equal(jcall(&sh, "GET", s, "/api/orders", NULL, &r), 0);
            assert_int_equal(r.status, 200);
            assert_string_equal(json_string_value(json_object_get(r.body, "consistency")), "session");
            o = json_array_get(json_object_get(r.body, "orders"), 0);
            assert_non_null(o);
            assert_string_equal(json_string_value(json_object_get(o, "ref")), ref);
            assert_int_equal(json_array_size(json_object_get(o, "lines")), 1);
            reply_close(&r);
        }
    }
}

/* ---- pages ------------------------------------------------------------------------------- */

static void html_pages_render_escape_and_name_the_region(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    char h[128], want[96];

    (void)state;
    for (size_t s = 0; s < N_SHOPS; s++) {
        snprintf(want, sizeof(want), "served by region %s", C->regions[s].name);
        assert_int_equal(call(NULL, "GET", S[s].url, "/?q=wool", NULL, NULL, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(header(&r, "Content-Type", h, sizeof(h)));
        assert_non_null(strstr(h, "text/html"));
        assert_non_null(strstr(r.text, want));
        assert_non_null(strstr(r.text, "Wool"));
        reply_close(&r);
    }
    assert_int_equal(call(NULL, "GET", S[0].url, "/?q=%3Cscript%3Ex", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.text, "<script>x"));
    assert_non_null(strstr(r.text, "&lt;script&gt;x"));
    reply_close(&r);
    assert_int_equal(call(NULL, "GET", S[1].url, "/products/mr-0003", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "id=\"stock\""));
    assert_non_null(strstr(r.text, "action=\"/cart/add\""));
    reply_close(&r);
    /* Shopping with forms only */
    assert_int_equal(call(&sh, "POST", S[1].url, "/cart/add", "application/x-www-form-urlencoded",
                          "sku=mr-0003&qty=2", NULL, &r), 0);
    assert_int_equal(r.status, 303);
    assert_true(header(&r, "Location", h, sizeof(h)));
    assert_string_equal(h, "/cart");
    reply_close(&r);
    assert_int_equal(call(&sh, "GET", S[1].url, "/cart", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "/products/mr-0003"));
    assert_non_null(strstr(r.text, "name=\"cart_version\""));
    reply_close(&r);
    assert_int_equal(call(&sh, "POST", S[2].url, "/prefs", "application/x-www-form-urlencoded",
                          "currency=EUR&language=de", NULL, &r), 0);
    assert_int_equal(r.status, 303);
    reply_close(&r);
    assert_int_equal(call(&sh, "POST", S[2].url, "/checkout", "application/x-www-form-urlencoded", "", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "id=\"order-ref\""));
    assert_non_null(strstr(r.text, "\u20ac")); /* the session's currency */
    snprintf(want, sizeof(want), "served by region %s", C->regions[2].name);
    assert_non_null(strstr(r.text, want));
    reply_close(&r);
    assert_int_equal(call(&sh, "GET", S[0].url, "/orders", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "class=\"order\""));
    reply_close(&r);
    assert_int_equal(call(NULL, "GET", S[0].url, "/products/mr-9999", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.text, "<h1>Not found</h1>"));
    reply_close(&r);
    /* Errors a shopper meets are pages, not JSON. */
    assert_int_equal(call(NULL, "POST", S[0].url, "/checkout", "application/x-www-form-urlencoded", "", NULL, &r), 0);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.text, "Your cart is empty"));
    reply_close(&r);
}

/* ---- bad input ----------------------------------------------------------------------------- */

static void malformed_requests_get_clear_4xx(void **state)
{
    static const struct {
        const char *method, *path, *body;
        int status;
        const char *code;
    } cases[] = {
        {"POST", "/api/cart/items", "not json", 400, "invalid_request"},
        {"POST", "/api/cart/items", "{\"sku\":\"mr-0001\",\"qty\":1}", 400, "invalid_request"},
        {"POST", "/api/cart/items", "{\"sku\":\"MR 0001\"}", 400, "invalid_request"},
        {"POST", "/api/cart/items", "{\"sku\":\"mr-0001\",\"quantity\":-1}", 400, "invalid_request"},
        {"POST", "/api/cart/items", "{\"sku\":\"mr-0001\",\"add\":\"2\"}", 400, "invalid_request"},
        {"POST", "/api/cart/items", "[1]", 400, "invalid_request"},
        {"POST", "/api/checkout", "{\"cart_version\":42}", 400, "invalid_request"},
        {"POST", "/api/session", "{\"currency\":\"XXX\"}", 400, "invalid_request"},
        {"GET", "/api/products?per_page=1000", NULL, 400, "invalid_request"},
        {"GET", "/api/products?page=x", NULL, 400, "invalid_request"},
        {"GET", "/api/products/a%00b", NULL, 400, "invalid_request"},
        {"GET", "/api/nothing", NULL, 404, "not_found"},
        {"PUT", "/api/checkout", NULL, 405, "method_not_allowed"},
        {"DELETE", "/api/products", NULL, 405, "method_not_allowed"},
    };
    struct reply r;
    char *big;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(call(NULL, cases[i].method, S[0].url, cases[i].path, cases[i].body ? "application/json" : NULL,
                              cases[i].body, NULL, &r), 0);
        if (r.status != cases[i].status)
            fprintf(stderr, "case %zu %s %s: %d %s\n", i, cases[i].method, cases[i].path, r.status, r.text);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(err_code(&r), cases[i].code);
        reply_close(&r);
    }
    assert_int_equal(call(NULL, "GET", S[0].url, "/api/orders", NULL, NULL, "Meridian-Token: garbage\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(err_code(&r), "invalid_token");
    reply_close(&r);
    big = malloc(64 * 1024 + 1);
    memset(big, 'x', 64 * 1024);
    big[64 * 1024] = '\0';
    assert_int_equal(call(NULL, "POST", S[0].url, "/api/cart/items", "application/json", big, NULL, &r), 0);
    assert_int_equal(r.status, 413);
    reply_close(&r);
    free(big);
    /* The shop is still up. */
    assert_int_equal(api_status(S[0].url, "/healthz"), 200);
}

/* A browser keeps cookies per host, not per port: a token from an earlier
 * cluster on the same machine must not break the shop. */
static void a_token_from_another_cluster_is_dropped_not_fatal(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;

    (void)state;
    add(&sh, 0, "mr-0017", 1);
    snprintf(sh.tok, sizeof(sh.tok), "1.999999999.%s=999999999", C->regions[0].name);
    assert_int_equal(jcall(&sh, "GET", 0, "/api/cart/items", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "mr_token=; Path=/; Max-Age=0"));
    reply_close(&r);
    snprintf(sh.tok, sizeof(sh.tok), "1.999999999");
    assert_int_equal(jcall(&sh, "GET", 1, "/api/orders", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    /* and the next write gives a good token again */
    add(&sh, 1, "mr-0017", 1);
    assert_null(strstr(sh.tok, "999999999"));
    assert_true(sh.tok[0] != '\0');
}

/* ---- metrics ---------------------------------------------------------------------------------- */

static void metrics_count_requests_orders_and_replays(void **state)
{
    struct reply r;

    (void)state;
    assert_int_equal(call(NULL, "GET", S[0].url, "/metrics", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "meridian_shop_requests_total{route=\"api_checkout\",status=\"2xx\"}"));
    assert_non_null(strstr(r.text, "meridian_shop_request_duration_seconds_bucket{route=\"api_cart\""));
    assert_non_null(strstr(r.text, "meridian_shop_node_call_seconds_count"));
    assert_null(strstr(r.text, "meridian_shop_orders_total 0\n"));           /* the double click's order */
    assert_null(strstr(r.text, "meridian_shop_checkout_replays_total 0\n")); /* and its replay */
    reply_close(&r);
    assert_int_equal(call(NULL, "GET", S[2].url, "/metrics", NULL, NULL, NULL, &r), 0);
    assert_null(strstr(r.text, "meridian_shop_out_of_stock_total 0\n"));
    reply_close(&r);
}

/* ---- a region whose node is down ------------------------------------------------------------ */

static int not_ready(void *arg)
{
    return api_status(((struct daemon *)arg)->url, "/readyz") == 503;
}

static void region_down_gives_503_pages_and_comes_back(void **state)
{
    struct shopper sh = {"", ""};
    struct reply r;
    char h[32];

    (void)state;
    add(&sh, 2, "mr-0090", 1);
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "kill", "node"), 0);
    assert_int_equal(wait_for(not_ready, &S[2], 20000), 0);
    assert_int_equal(call(&sh, "GET", S[2].url, "/cart", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.text, "<h1>Region unavailable</h1>"));
    assert_true(header(&r, "Retry-After", h, sizeof(h)));
    reply_close(&r);
    assert_int_equal(jcall(&sh, "POST", 2, "/api/checkout", NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(err_code(&r), "region_unavailable");
    reply_close(&r);
    /* The shopper goes on in another region: the cart is there. */
    assert_int_equal(jcall(&sh, "POST", 1, "/api/checkout", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    reply_close(&r);
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "restart", "node"), 0);
    assert_int_equal(wait_for(shop_ready, &S[2], 30000), 0);
    assert_int_equal(jcall(&sh, "GET", 2, "/api/orders", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "orders")), 1);
    reply_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_twice_leaves_the_same_catalog),
        cmocka_unit_test(catalog_lists_searches_pages_and_is_cacheable),
        cmocka_unit_test(cart_adds_changes_quantity_and_removes_lines),
        cmocka_unit_test(concurrent_cart_edits_in_two_regions_keep_both),
        cmocka_unit_test(preferences_live_in_the_sessions_table_with_a_ttl),
        cmocka_unit_test(checkout_twice_at_once_and_retried_elsewhere_places_one_order),
        cmocka_unit_test(second_checkout_before_the_cart_clears_elsewhere_is_refused),
        cmocka_unit_test(cart_views_and_checkout_fall_back_to_the_region),
        cmocka_unit_test(out_of_stock_checkout_is_refused_and_changes_nothing),
        cmocka_unit_test(cart_changed_since_viewed_is_refused),
        cmocka_unit_test(order_history_shows_the_new_order_in_every_region_at_once),
        cmocka_unit_test(html_pages_render_escape_and_name_the_region),
        cmocka_unit_test(malformed_requests_get_clear_4xx),
        cmocka_unit_test(a_token_from_another_cluster_is_dropped_not_fatal),
        cmocka_unit_test(metrics_count_requests_orders_and_replays),
        cmocka_unit_test(region_down_gives_503_pages_and_comes_back),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("shop", tests, setup, teardown);
}
