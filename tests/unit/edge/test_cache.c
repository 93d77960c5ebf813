/* test_cache.c -- the edge cache and Cache-Control parser (src/edge/cache.c)
 * against RFC 9111 / RFC 5861, on a fake clock (every call gets the time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "edge/edge.h"

#define H(n, v) {(char *)(n), (char *)(v)}

static void cc_parses_directives_and_ignores_unknown(void **state)
{
    struct edge_cc cc;

    (void)state;
    edge_cc_parse("public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30,"
                  "stale-if-error=600, x-unknown=5, must-revalidate", &cc);
    assert_int_equal(cc.max_age, 60);
    assert_int_equal(cc.s_maxage, 120);
    assert_int_equal(cc.swr, 30);
    assert_int_equal(cc.sie, 600);
    assert_true(cc.public_);
    assert_true(cc.must_revalidate);
    assert_false(cc.no_store);
    edge_cc_parse("No-Store,PRIVATE ,no-cache=\"Set-Cookie, X-A\"", &cc);
    assert_true(cc.no_store);
    assert_true(cc.private_);
    assert_true(cc.no_cache);
    assert_int_equal(cc.max_age, -1);
    edge_cc_parse("max-age=abc, s-maxage=, max-age", &cc);
    assert_int_equal(cc.max_age, -1);
    assert_int_equal(cc.s_maxage, -1);
    edge_cc_parse("max-age=99999999999999999999", &cc);
    assert_int_equal(cc.max_age, INT32_MAX);   /* RFC 9111 1.2.2: overflow is "long" */
    edge_cc_parse(NULL, &cc);
    assert_int_equal(cc.max_age, -1);
    edge_cc_parse("", &cc);
    assert_int_equal(cc.sie, -1);
}

static int store(struct edge_cache *c, const char *key, const struct http_header *rq, size_t nrq,
                 int64_t now, const struct http_header *rs, size_t nrs, const char *body)
{
    struct edge_cache_req r = {key, rq, nrq, now};

    return edge_cache_store(c, &r, 200, rs, nrs, "text/plain", "X-From: origin\r\n", body,
                            strlen(body));
}

static enum edge_fresh lookup(struct edge_cache *c, const char *key, const struct http_header *rq,
                              size_t nrq, int64_t now, struct edge_cached *out)
{
    struct edge_cache_req r = {key, rq, nrq, now};

    return edge_cache_lookup(c, &r, out);
}

static void cache_serves_fresh_then_expires_by_max_age(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header rs[] = {H("Cache-Control", "max-age=10"), H("Age", "3")};
    struct edge_cached got;

    (void)state;
    assert_int_equal(store(c, "/a", NULL, 0, 1000, rs, 2, "hello"), 1);
    assert_int_equal(lookup(c, "/a", NULL, 0, 1000, &got), EDGE_CACHE_FRESH);
    assert_int_equal(got.status, 200);
    assert_int_equal(got.body_len, 5);
    assert_memory_equal(got.body, "hello", 5);
    assert_string_equal(got.headers, "X-From: origin\r\n");
    assert_int_equal(got.age_s, 3);    /* Age received counts (RFC 9111 4.2.3) */
    assert_int_equal(lookup(c, "/a", NULL, 0, 1000 + 6999, &got), EDGE_CACHE_FRESH);
    assert_int_equal(lookup(c, "/a", NULL, 0, 1000 + 7000, &got), EDGE_CACHE_NONE);
    assert_int_equal(lookup(c, "/b", NULL, 0, 1000, &got), EDGE_CACHE_NONE);
    edge_cache_free(c);
}

static void cache_prefers_s_maxage_for_a_shared_cache(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header rs[] = {H("Cache-Control", "max-age=1, s-maxage=100")};
    struct edge_cached got;

    (void)state;
    assert_int_equal(store(c, "/a", NULL, 0, 0, rs, 1, "x"), 1);
    assert_int_equal(lookup(c, "/a", NULL, 0, 50000, &got), EDGE_CACHE_FRESH);
    edge_cache_free(c);
}

static void cache_refuses_what_a_shared_cache_must_not_store(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header nostore[] = {H("Cache-Control", "max-age=60, no-store")};
    struct http_header priv[] = {H("Cache-Control", "private, max-age=60")};
    struct http_header nocache[] = {H("Cache-Control", "no-cache, max-age=60")};
    struct http_header none[] = {H("Content-Type", "text/plain")};
    struct http_header zero[] = {H("Cache-Control", "max-age=0")};
    struct http_header star[] = {H("Cache-Control", "max-age=60"), H("Vary", "Accept, *")};
    struct http_header cookie[] = {H("Cache-Control", "max-age=60"), H("Set-Cookie", "s=1")};
    struct http_header ok[] = {H("Cache-Control", "max-age=60")};
    struct http_header pub[] = {H("Cache-Control", "public, max-age=60")};
    struct http_header auth[] = {H("Authorization", "Bearer x")};
    struct http_header rq_nostore[] = {H("Cache-Control", "no-store")};
    struct edge_cache_req r = {"/a", NULL, 0, 0};

    (void)state;
    assert_false(edge_cache_storable(&r, 200, nostore, 1));
    assert_false(edge_cache_storable(&r, 200, priv, 1));
    assert_false(edge_cache_storable(&r, 200, nocache, 1));
    assert_false(edge_cache_storable(&r, 200, none, 1));
    assert_false(edge_cache_storable(&r, 200, zero, 1));
    assert_false(edge_cache_storable(&r, 200, star, 2));
    assert_false(edge_cache_storable(&r, 200, cookie, 2));
    assert_false(edge_cache_storable(&r, 500, ok, 1));
    assert_false(edge_cache_storable(&r, 206, ok, 1));
    assert_true(edge_cache_storable(&r, 200, ok, 1));
    assert_true(edge_cache_storable(&r, 404, ok, 1));
    r.headers = auth;
    r.n_headers = 1;
    assert_false(edge_cache_storable(&r, 200, ok, 1));   /* RFC 9111 3.5 */
    assert_true(edge_cache_storable(&r, 200, pub, 1));
    r.headers = rq_nostore;
    assert_false(edge_cache_storable(&r, 200, ok, 1));
    assert_int_equal(store(c, "/a", NULL, 0, 0, nostore, 1, "x"), 0);
    edge_cache_free(c);
}

/* RFC 9110 5.3: a field sent on several lines is one list.  A request's
 * no-store or no-cache on its second Cache-Control line used to be ignored
 * (found by the edge_cache fuzz target). */
static void cache_control_on_a_second_line_counts(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header ok[] = {H("Cache-Control", "max-age=60")};
    struct http_header rs_split[] = {H("Cache-Control", "max-age=60"), H("Content-Type", "a/b"),
                                     H("cache-control", "no-store")};
    struct http_header rq_nostore[] = {H("Cache-Control", "max-stale=1"), H("Cache-Control", "no-store")};
    struct http_header rq_nocache[] = {H("Cache-Control", "max-stale=1"), H("Cache-Control", "no-cache")};
    struct http_header rq_maxage[] = {H("Cache-Control", "max-stale=1"), H("Cache-Control", "max-age=2")};
    struct edge_cache_req r = {"/a", rq_nostore, 2, 0};
    struct edge_cached got;
    struct edge_cc cc;

    (void)state;
    edge_cc_parse_fields(rs_split, 3, &cc);
    assert_true(cc.no_store);
    assert_int_equal(cc.max_age, 60);
    assert_false(edge_cache_storable(&r, 200, ok, 1));
    r.headers = NULL;
    r.n_headers = 0;
    assert_false(edge_cache_storable(&r, 200, rs_split, 3));
    assert_int_equal(store(c, "/a", NULL, 0, 0, ok, 1, "x"), 1);
    assert_int_equal(lookup(c, "/a", NULL, 0, 3000, &got), EDGE_CACHE_FRESH);
    /* At most for when every region fails (edge.h). */
    assert_int_equal(lookup(c, "/a", rq_nocache, 2, 3000, &got), EDGE_CACHE_STALE_SIE);
    assert_int_equal(lookup(c, "/a", rq_maxage, 2, 3000, &got), EDGE_CACHE_STALE_SIE);
    assert_int_equal(lookup(c, "/a", rq_maxage, 2, 2000, &got), EDGE_CACHE_FRESH);
    edge_cache_free(c);
}

static void cache_keeps_one_variant_per_vary_value(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header rs[] = {H("Cache-Control", "max-age=60"), H("Vary", "Accept-Language")};
    struct http_header en[] = {H("Accept-Language", "en")};
    struct http_header fr[] = {H("accept-language", "fr")};
    struct http_header de[] = {H("Accept-Language", "de")};
    struct edge_cached got;

    (void)state;
    assert_int_equal(store(c, "/p", en, 1, 0, rs, 2, "hello"), 1);
    assert_int_equal(store(c, "/p", fr, 1, 0, rs, 2, "bonjour"), 1);
    assert_int_equal(lookup(c, "/p", en, 1, 10, &got), EDGE_CACHE_FRESH);
    assert_memory_equal(got.body, "hello", 5);
    assert_int_equal(lookup(c, "/p", fr, 1, 10, &got), EDGE_CACHE_FRESH);
    assert_memory_equal(got.body, "bonjour", 7);
    assert_int_equal(lookup(c, "/p", de, 1, 10, &got), EDGE_CACHE_NONE);
    /* absent differs from any value */
    assert_int_equal(lookup(c, "/p", NULL, 0, 10, &got), EDGE_CACHE_NONE);
    /* a new answer for the same variant replaces the old one */
    assert_int_equal(store(c, "/p", en, 1, 20, rs, 2, "hi"), 1);
    assert_int_equal(lookup(c, "/p", en, 1, 30, &got), EDGE_CACHE_FRESH);
    assert_memory_equal(got.body, "hi", 2);
    {
        struct edge_cache_stats st;
        edge_cache_stats(c, &st);
        assert_int_equal(st.entries, 2);
    }
    edge_cache_free(c);
}

static void cache_evicts_least_recently_used_within_the_bound(void **state)
{
    /* each entry: 256 overhead + key + 100 body + headers: about 380 bytes */
    struct edge_cache *c = edge_cache_new(1200, 1200);
    struct http_header rs[] = {H("Cache-Control", "max-age=60")};
    char body[101], key[16];
    struct edge_cached got;
    struct edge_cache_stats st;

    (void)state;
    memset(body, 'x', 100);
    body[100] = '\0';
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "/k%d", i);
        assert_int_equal(store(c, key, NULL, 0, 0, rs, 1, body), 1);
    }
    assert_int_equal(lookup(c, "/k0", NULL, 0, 1, &got), EDGE_CACHE_FRESH);  /* k0 now recent */
    assert_int_equal(store(c, "/k3", NULL, 0, 2, rs, 1, body), 1);
    edge_cache_stats(c, &st);
    assert_true(st.bytes <= 1200);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(lookup(c, "/k1", NULL, 0, 3, &got), EDGE_CACHE_NONE);  /* the LRU one */
    assert_int_equal(lookup(c, "/k0", NULL, 0, 3, &got), EDGE_CACHE_FRESH);
    assert_int_equal(lookup(c, "/k2", NULL, 0, 3, &got), EDGE_CACHE_FRESH);
    assert_int_equal(lookup(c, "/k3", NULL, 0, 3, &got), EDGE_CACHE_FRESH);
    /* larger than max_object: not stored, nothing evicted */
    {
        struct edge_cache *small = edge_cache_new(1 << 20, 300);
        assert_int_equal(store(small, "/big", NULL, 0, 0, rs, 1, body), 0);
        edge_cache_free(small);
    }
    edge_cache_free(c);
}

static void cache_stale_while_revalidate_then_stale_if_error(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header rs[] = {
        H("Cache-Control", "max-age=10, stale-while-revalidate=5, stale-if-error=100")};
    struct http_header nocache[] = {H("Cache-Control", "no-cache")};
    struct edge_cached got;

    (void)state;
    assert_int_equal(store(c, "/s", NULL, 0, 0, rs, 1, "v1"), 1);
    assert_int_equal(lookup(c, "/s", NULL, 0, 9999, &got), EDGE_CACHE_FRESH);
    assert_int_equal(lookup(c, "/s", NULL, 0, 10000, &got), EDGE_CACHE_STALE_SWR);
    assert_int_equal(lookup(c, "/s", NULL, 0, 14999, &got), EDGE_CACHE_STALE_SWR);
    assert_int_equal(lookup(c, "/s", NULL, 0, 15000, &got), EDGE_CACHE_STALE_SIE);
    assert_int_equal(lookup(c, "/s", NULL, 0, 109999, &got), EDGE_CACHE_STALE_SIE);
    /* a client's no-cache: not served as fresh, still there if all fails */
    assert_int_equal(lookup(c, "/s", nocache, 1, 1000, &got), EDGE_CACHE_STALE_SIE);
    assert_int_equal(lookup(c, "/s", NULL, 0, 110000, &got), EDGE_CACHE_NONE);
    {
        struct edge_cache_stats st;
        edge_cache_stats(c, &st);
        assert_int_equal(st.entries, 0);   /* dropped once past every use */
    }
    edge_cache_free(c);
}

static void cache_must_revalidate_forbids_stale_use(void **state)
{
    struct edge_cache *c = edge_cache_new(1 << 20, 1 << 20);
    struct http_header rs[] = {H("Cache-Control", "max-age=1, must-revalidate, stale-if-error=60")};
    struct edge_cached got;

    (void)state;
    assert_int_equal(store(c, "/m", NULL, 0, 0, rs, 1, "v"), 1);
    assert_int_equal(lookup(c, "/m", NULL, 0, 500, &got), EDGE_CACHE_FRESH);
    assert_int_equal(lookup(c, "/m", NULL, 0, 2000, &got), EDGE_CACHE_NONE);
    edge_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cc_parses_directives_and_ignores_unknown),
        cmocka_unit_test(cache_serves_fresh_then_expires_by_max_age),
        cmocka_unit_test(cache_prefers_s_maxage_for_a_shared_cache),
        cmocka_unit_test(cache_refuses_what_a_shared_cache_must_not_store),
        cmocka_unit_test(cache_control_on_a_second_line_counts),
        cmocka_unit_test(cache_keeps_one_variant_per_vary_value),
        cmocka_unit_test(cache_evicts_least_recently_used_within_the_bound),
        cmocka_unit_test(cache_stale_while_revalidate_then_stale_if_error),
        cmocka_unit_test(cache_must_revalidate_forbids_stale_use),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
