/* Unit tests of src/shop/cart.c: reading a crdt cart, the operations a
 * change sends, checkout identities and the checkout transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "shop/shop_int.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void ops_equal(json_t *doc, const char *want)
{
    json_t *w = J(want);

    if (!json_equal(json_object_get(doc, "ops"), w)) {
        char *got = json_dumps(doc, JSON_COMPACT);
        fail_msg("ops: got %s, want %s", got, want);
    }
    json_decref(w);
    json_decref(doc);
}

static void parse_reads_lines_sorted_and_clamped(void **state)
{
    json_t *item = J("{\"skus\":[\"mr-0002\",\"mr-0001\",\"BAD SKU\",7],\"q-mr-0001\":3,\"q-mr-0002\":500,"
                     "\"q-mr-0009\":0,\"last_order\":\"M-1\",\"attempts\":2,\"expires\":99}");
    struct shop_cart c;

    (void)state;
    shop__cart_parse(item, 99, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].sku, "mr-0001");
    assert_int_equal(c.lines[0].qty, 3);
    assert_int_equal(c.lines[1].qty, 99); /* clamped */
    assert_int_equal(c.lines[1].counter, 500);
    assert_string_equal(c.last_order, "M-1");
    assert_int_equal(c.attempts, 2);
    assert_int_equal(strlen(c.version), 16);
    assert_non_null(shop__cart_find(&c, "mr-0002"));
    assert_null(shop__cart_find(&c, "mr-0009"));
    assert_int_equal(shop__cart_counter(&c, "mr-0009"), 0);
    shop__cart_clear(&c);
    json_decref(item);
}

static void a_line_in_the_set_with_no_positive_counter_counts_one(void **state)
{
    json_t *item = J("{\"skus\":[\"mr-0001\"],\"q-mr-0001\":-2}");
    struct shop_cart c;

    (void)state;
    shop__cart_parse(item, 99, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.lines[0].qty, 1);
    shop__cart_clear(&c);
    json_decref(item);
}

static void empty_cart_has_a_stable_version(void **state)
{
    struct shop_cart a, b;
    json_t *item = J("{\"skus\":[],\"q-mr-0001\":0}");

    (void)state;
    shop__cart_parse(NULL, 99, &a);
    shop__cart_parse(item, 99, &b);
    assert_int_equal(a.n, 0);
    assert_string_equal(a.version, b.version);
    shop__cart_clear(&a);
    shop__cart_clear(&b);
    json_decref(item);
}

static void set_sends_the_difference_as_an_increment(void **state)
{
    json_t *item = J("{\"skus\":[\"mr-0001\"],\"q-mr-0001\":3,\"q-mr-0002\":-1}");
    struct shop_cart c;

    (void)state;
    shop__cart_parse(item, 99, &c);
    ops_equal(shop__cart_ops_set(&c, "mr-0001", 5, 77),
              "[{\"op\":\"add\",\"field\":\"skus\",\"value\":\"mr-0001\"},"
              "{\"op\":\"increment\",\"field\":\"q-mr-0001\",\"by\":2},"
              "{\"op\":\"set\",\"field\":\"expires\",\"value\":77}]");
    ops_equal(shop__cart_ops_set(&c, "mr-0001", 3, 77),
              "[{\"op\":\"add\",\"field\":\"skus\",\"value\":\"mr-0001\"},"
              "{\"op\":\"set\",\"field\":\"expires\",\"value\":77}]");
    /* a new line resets what an old one left in its counter */
    ops_equal(shop__cart_ops_set(&c, "mr-0002", 1, 77),
              "[{\"op\":\"add\",\"field\":\"skus\",\"value\":\"mr-0002\"},"
              "{\"op\":\"increment\",\"field\":\"q-mr-0002\",\"by\":2},"
              "{\"op\":\"set\",\"field\":\"expires\",\"value\":77}]");
    ops_equal(shop__cart_ops_set(&c, "mr-0001", 0, 77),
              "[{\"op\":\"remove\",\"field\":\"skus\",\"value\":\"mr-0001\"},"
              "{\"op\":\"increment\",\"field\":\"q-mr-0001\",\"by\":-3},"
              "{\"op\":\"set\",\"field\":\"expires\",\"value\":77}]");
    /* removing what is not there only refreshes the expiry */
    ops_equal(shop__cart_ops_set(&c, "mr-0005", 0, 77), "[{\"op\":\"set\",\"field\":\"expires\",\"value\":77}]");
    ops_equal(shop__cart_ops_checkout(&c, "M-AAAA-BBBB-CCCC", 8),
              "[{\"op\":\"remove\",\"field\":\"skus\",\"value\":\"mr-0001\"},"
              "{\"op\":\"increment\",\"field\":\"q-mr-0001\",\"by\":-3},"
              "{\"op\":\"set\",\"field\":\"expires\",\"value\":8},"
              "{\"op\":\"set\",\"field\":\"last_order\",\"value\":\"M-AAAA-BBBB-CCCC\"}]");
    shop__cart_clear(&c);
    json_decref(item);
}

static void checkout_ids_depend_on_session_content_and_history(void **state)
{
    json_t *i1 = J("{\"skus\":[\"mr-0001\",\"mr-0002\"],\"q-mr-0001\":1,\"q-mr-0002\":2}");
    json_t *i2 = J("{\"skus\":[\"mr-0002\",\"mr-0001\"],\"q-mr-0002\":2,\"q-mr-0001\":1,\"expires\":5}");
    json_t *i3 = J("{\"skus\":[\"mr-0001\",\"mr-0002\"],\"q-mr-0001\":1,\"q-mr-0002\":3}");
    json_t *i4 = J("{\"skus\":[\"mr-0001\",\"mr-0002\"],\"q-mr-0001\":1,\"q-mr-0002\":2,\"last_order\":\"M-X\"}");
    json_t *i5 = J("{\"skus\":[\"mr-0001\",\"mr-0002\"],\"q-mr-0001\":1,\"q-mr-0002\":2,\"attempts\":1}");
    struct shop_cart c1, c2, c3, c4, c5;
    char k1[SHOP_KEY_LEN], k2[SHOP_KEY_LEN], k[SHOP_KEY_LEN], r1[SHOP_REF_LEN], r2[SHOP_REF_LEN], r[SHOP_REF_LEN];

    (void)state;
    shop__cart_parse(i1, 99, &c1);
    shop__cart_parse(i2, 99, &c2);
    shop__cart_parse(i3, 99, &c3);
    shop__cart_parse(i4, 99, &c4);
    shop__cart_parse(i5, 99, &c5);
    shop__checkout_ids("s1", &c1, k1, r1);
    shop__checkout_ids("s1", &c2, k2, r2);
    assert_string_equal(k1, k2); /* same content, any order: the same order */
    assert_string_equal(r1, r2);
    assert_string_equal(c1.version, c2.version);
    assert_int_equal(strlen(k1), strlen("checkout-") + 40);
    assert_int_equal(strlen(r1), 16);
    assert_memory_equal(r1, "M-", 2);
    shop__checkout_ids("s2", &c1, k, r);
    assert_string_not_equal(k, k1);
    shop__checkout_ids("s1", &c3, k, r);
    assert_string_not_equal(k, k1);
    assert_string_not_equal(c3.version, c1.version);
    shop__checkout_ids("s1", &c4, k, r);
    assert_string_not_equal(k, k1);
    shop__checkout_ids("s1", &c5, k, r);
    assert_string_not_equal(k, k1);
    shop__cart_clear(&c1);
    shop__cart_clear(&c2);
    shop__cart_clear(&c3);
    shop__cart_clear(&c4);
    shop__cart_clear(&c5);
    json_decref(i1);
    json_decref(i2);
    json_decref(i3);
    json_decref(i4);
    json_decref(i5);
}

static void checkout_is_stock_updates_then_lines_then_the_order_then_the_guard(void **state)
{
    json_t *item = J("{\"skus\":[\"mr-0001\",\"mr-0002\"],\"q-mr-0001\":1,\"q-mr-0002\":2}");
    struct shop_cart c;
    json_t *st;

    (void)state;
    shop__cart_parse(item, 99, &c);
    st = shop__checkout_statements(&c, "M-1", "sid", "eu-west-1");
    assert_int_equal(json_array_size(st), 6);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(st, 0), "sql")), "stock = stock - ?"));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_array_get(st, 1), "params"), 0)), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(st, 1), "params"), 1)),
                        "mr-0002");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(st, 2), "sql")), "INSERT INTO order_lines"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(st, 4), "sql")), "INSERT INTO orders"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(st, 4), "sql")), "RETURNING"));
    /* One order per (session, order the cart came after): last, 2n + 2. */
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(st, 5), "sql")), "INSERT INTO checkouts"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(st, 5), "params"), 0)), "sid");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(st, 5), "params"), 1)), "");
    json_decref(st);
    shop__cart_clear(&c);
    json_decref(item);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_reads_lines_sorted_and_clamped),
        cmocka_unit_test(a_line_in_the_set_with_no_positive_counter_counts_one),
        cmocka_unit_test(empty_cart_has_a_stable_version),
        cmocka_unit_test(set_sends_the_difference_as_an_increment),
        cmocka_unit_test(checkout_ids_depend_on_session_content_and_history),
        cmocka_unit_test(checkout_is_stock_updates_then_lines_then_the_order_then_the_guard),
    };
    return cmocka_run_group_tests_name("shop_cart", tests, NULL, NULL);
}
