/* test_check.c -- the game day's checkers against histories with planted
 * faults: a checker that cannot fail is caught here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gameday/gameday.h"

/* Two regions that agree, three acknowledged orders, one cart add. */
static const char *HISTORY =
    "{\"acked_orders\":["
    "  {\"ref\":\"M-1\",\"session\":\"s1\",\"lines\":[{\"sku\":\"A\",\"qty\":2}]},"
    "  {\"ref\":\"M-2\",\"session\":\"s2\",\"lines\":[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":1}]},"
    "  {\"ref\":\"M-3\",\"session\":\"s1\",\"lines\":[{\"sku\":\"B\",\"qty\":3}]}],"
    " \"attempts\":{\"s1\":2,\"s2\":1},"
    " \"cart_adds\":{\"s3\":[\"C\"]},"
    " \"ryw_violations\":[]}";

static const char *REGION =
    "{\"name\":\"%s\",\"orders\":["
    "  {\"ref\":\"M-1\",\"session\":\"s1\",\"lines\":[{\"sku\":\"A\",\"qty\":2}]},"
    "  {\"ref\":\"M-2\",\"session\":\"s2\",\"lines\":[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":1}]},"
    "  {\"ref\":\"M-3\",\"session\":\"s1\",\"lines\":[{\"sku\":\"B\",\"qty\":3}]}],"
    " \"stock\":{\"A\":7,\"B\":6,\"C\":5},"
    " \"carts_digest\":\"d1\","
    " \"carts\":{\"s3\":[\"C\"]}}";

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("test JSON: %s at %d:%d", e.text, e.line, e.column);
    return j;
}

static json_t *region(const char *name)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), REGION, name);
    return load(buf);
}

static json_t *state_of(json_t *r1, json_t *r2)
{
    json_t *s = load("{\"initial_stock\":{\"A\":10,\"B\":10,\"C\":5}}");
    json_object_set_new(s, "regions", json_pack("[o,o]", r1, r2));
    return s;
}

static json_int_t count(const json_t *v, const char *key)
{
    return json_integer_value(json_object_get(v, key));
}

static int listed(const json_t *v, const char *needle)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(v, "failures"), i, f)
        if (strstr(json_string_value(f), needle))
            return 1;
    return 0;
}

static void clean_history_passes(void **state)
{
    json_t *h = load(HISTORY), *s = state_of(region("us"), region("eu")), *v = gd_check(h, s);

    (void)state;
    assert_int_equal(count(v, "lost_orders"), 0);
    assert_int_equal(count(v, "duplicate_orders"), 0);
    assert_int_equal(count(v, "oversold"), 0);
    assert_int_equal(count(v, "carts_unconverged"), 0);
    assert_int_equal(count(v, "ryw_violations"), 0);
    assert_int_equal(json_array_size(json_object_get(v, "failures")), 0);
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void lost_order_is_found(void **state)
{
    json_t *h = load(HISTORY), *eu = region("eu"), *s, *v;

    (void)state;
    /* eu lost M-2 (and its stock came back, so only "lost" fires). */
    json_array_remove(json_object_get(eu, "orders"), 1);
    json_object_set_new(json_object_get(eu, "stock"), "A", json_integer(8));
    json_object_set_new(json_object_get(eu, "stock"), "B", json_integer(7));
    s = state_of(region("us"), eu);
    v = gd_check(h, s);
    assert_int_equal(count(v, "lost_orders"), 1);
    assert_int_equal(count(v, "oversold"), 0);
    assert_true(listed(v, "order M-2"));
    assert_true(listed(v, "missing in eu"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void duplicate_order_is_found(void **state)
{
    json_t *h = load(HISTORY), *us = region("us"), *s, *v;

    (void)state;
    /* s2 checked out once, but us holds two orders for it. */
    json_array_append_new(json_object_get(us, "orders"),
                          load("{\"ref\":\"M-9\",\"session\":\"s2\",\"lines\":[{\"sku\":\"C\",\"qty\":1}]}"));
    json_object_set_new(json_object_get(us, "stock"), "C", json_integer(4));
    s = state_of(us, region("eu"));
    v = gd_check(h, s);
    assert_int_equal(count(v, "duplicate_orders"), 1);
    assert_int_equal(count(v, "lost_orders"), 0);
    assert_true(listed(v, "session s2 has 2 orders from 1 checkouts"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void oversell_is_found(void **state)
{
    json_t *h = load(HISTORY), *eu = region("eu"), *s, *v;

    (void)state;
    /* Stock that does not add up, and stock below zero. */
    json_object_set_new(json_object_get(eu, "stock"), "A", json_integer(6));
    json_object_set_new(json_object_get(eu, "stock"), "C", json_integer(-1));
    s = state_of(region("us"), eu);
    v = gd_check(h, s);
    assert_int_equal(count(v, "oversold"), 2);
    assert_true(listed(v, "region eu: A stock 6, expected 7"));
    assert_true(listed(v, "region eu: C stock -1, expected 5"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void stale_read_is_reported(void **state)
{
    json_t *h = load(HISTORY), *s = state_of(region("us"), region("eu")), *v;

    (void)state;
    json_array_append_new(json_object_get(h, "ryw_violations"),
                          json_string("site Frankfurt: order M-3 missing from /api/orders"));
    v = gd_check(h, s);
    assert_int_equal(count(v, "ryw_violations"), 1);
    assert_true(listed(v, "stale read: site Frankfurt"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void unconverged_carts_are_found(void **state)
{
    json_t *h = load(HISTORY), *eu = region("eu"), *s, *v;

    (void)state;
    /* Different digests, and eu's copy of cart s3 lost its acknowledged C. */
    json_object_set_new(eu, "carts_digest", json_string("d2"));
    json_object_set_new(json_object_get(eu, "carts"), "s3", json_array());
    s = state_of(region("us"), eu);
    v = gd_check(h, s);
    assert_int_equal(count(v, "carts_unconverged"), 2);
    assert_true(listed(v, "carts digest of eu (d2) differs"));
    assert_true(listed(v, "cart s3 lost its acknowledged C"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void an_add_taken_by_an_unacknowledged_checkout_is_not_lost(void **state)
{
    json_t *h = load(HISTORY), *us = region("us"), *eu = region("eu"), *s, *v;
    json_t *o = load("{\"ref\":\"M-9\",\"session\":\"s3\",\"lines\":[{\"sku\":\"C\",\"qty\":1}]}");

    (void)state;
    /* s3's checkout committed everywhere but its answer was lost (a 504):
     * the cart is empty and the order holds C.  attempts counts it. */
    json_object_set_new(json_object_get(h, "attempts"), "s3", json_integer(1));
    json_array_append(json_object_get(us, "orders"), o);
    json_array_append(json_object_get(eu, "orders"), o);
    json_object_set_new(json_object_get(us, "carts"), "s3", json_array());
    json_object_set_new(json_object_get(eu, "carts"), "s3", json_array());
    json_object_set_new(json_object_get(us, "stock"), "C", json_integer(4));
    json_object_set_new(json_object_get(eu, "stock"), "C", json_integer(4));
    s = state_of(us, eu);
    v = gd_check(h, s);
    assert_int_equal(count(v, "carts_unconverged"), 0);
    assert_int_equal(count(v, "lost_orders"), 0);
    assert_int_equal(count(v, "duplicate_orders"), 0);
    assert_int_equal(count(v, "oversold"), 0);
    /* An acknowledged order does not explain a missing add: still lost. */
    json_array_append(json_object_get(h, "acked_orders"), o);
    json_decref(v);
    v = gd_check(h, s);
    assert_int_equal(count(v, "carts_unconverged"), 2);
    json_decref(o);
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

static void missing_state_is_a_failure(void **state)
{
    json_t *h = load(HISTORY), *v = gd_check(h, NULL);

    (void)state;
    assert_int_equal(count(v, "lost_orders"), -1);
    assert_true(listed(v, "no history or no region state"));
    json_decref(v);
    json_decref(h);
}

/* A region that did not answer looks as if it held nothing: that must read
 * "not verified", with the reason, never "lost". */
static void an_unreadable_region_is_unverified_not_lost(void **state)
{
    json_t *h = load(HISTORY), *eu = region("eu"), *s, *v;

    (void)state;
    json_array_clear(json_object_get(eu, "orders"));
    json_object_del(eu, "stock");
    json_object_set_new(eu, "unread", json_pack("[s,s]", "orders: eu: timed out", "stock: eu: timed out"));
    s = state_of(region("us"), eu);
    v = gd_check(h, s);
    assert_int_equal(count(v, "lost_orders"), -1);
    assert_int_equal(count(v, "oversold"), -1);
    assert_int_equal(count(v, "carts_unconverged"), -1);
    assert_int_equal(count(v, "ryw_violations"), 0);
    assert_true(listed(v, "region eu: could not read its orders: eu: timed out"));
    assert_false(listed(v, "missing in eu"));
    json_decref(v);
    json_decref(h);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_history_passes),
        cmocka_unit_test(lost_order_is_found),
        cmocka_unit_test(duplicate_order_is_found),
        cmocka_unit_test(oversell_is_found),
        cmocka_unit_test(stale_read_is_reported),
        cmocka_unit_test(unconverged_carts_are_found),
        cmocka_unit_test(an_add_taken_by_an_unacknowledged_checkout_is_not_lost),
        cmocka_unit_test(missing_state_is_a_failure),
        cmocka_unit_test(an_unreadable_region_is_unverified_not_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
