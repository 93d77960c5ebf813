/* Unit tests of src/shop/util.c: escaping, cookies, forms, identifiers, money. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "shop/shop_int.h"

static void html_escapes_every_special_character(void **state)
{
    struct mr_buf b;

    (void)state;
    mr_buf_init(&b);
    shop__html(&b, "<a href=\"x\">Tom & Jerry's</a>");
    assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    mr_buf_reset(&b);
    shop__html(&b, NULL);
    assert_int_equal(b.len, 0);
    mr_buf_close(&b);
}

static void cookie_finds_exact_names_only(void **state)
{
    char v[40];

    (void)state;
    assert_true(http_cookie_get("a=1; mr_sid=abc; mr_token=1.5", "mr_sid", v, sizeof(v)));
    assert_string_equal(v, "abc");
    assert_true(http_cookie_get("xmr_sid=no;mr_sid=\"q\"", "mr_sid", v, sizeof(v)));
    assert_string_equal(v, "q");
    assert_true(http_cookie_get("mr_token=1.5.eu-west-1=3", "mr_token", v, sizeof(v)));
    assert_string_equal(v, "1.5.eu-west-1=3");
    assert_false(http_cookie_get("xmr_sid=no", "mr_sid", v, sizeof(v)));
    assert_false(http_cookie_get("", "mr_sid", v, sizeof(v)));
    /* too long for the buffer: absent, never truncated */
    assert_false(http_cookie_get("mr_sid=0123456789", "mr_sid", v, 5));
}

static void form_decodes_percent_and_plus(void **state)
{
    char v[32];

    (void)state;
    assert_true(shop__form("sku=mr-0001&qty=2", "qty", v, sizeof(v)));
    assert_string_equal(v, "2");
    assert_true(shop__form("q=red+wool%21&x", "q", v, sizeof(v)));
    assert_string_equal(v, "red wool!");
    assert_true(shop__form("x&q=", "q", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(shop__form("a=%zz", "a", v, sizeof(v)));
    assert_string_equal(v, "%zz");
    assert_true(shop__form("a=%4", "a", v, sizeof(v)));
    assert_string_equal(v, "%4");
    assert_false(shop__form("qq=1", "q", v, sizeof(v)));
    assert_false(shop__form("q=0123456789", "q", v, 4));
}

static void identifiers_are_validated(void **state)
{
    char sid[SHOP_SID_HEX + 1], sid2[SHOP_SID_HEX + 1];

    (void)state;
    assert_true(shop__sku_valid("mr-0001"));
    assert_false(shop__sku_valid(""));
    assert_false(shop__sku_valid("MR-0001"));
    assert_false(shop__sku_valid("mr 1"));
    assert_false(shop__sku_valid("a234567890123456789012345678901234"));
    shop__sid_new(sid);
    shop__sid_new(sid2);
    assert_true(shop__sid_valid(sid));
    assert_string_not_equal(sid, sid2);
    assert_false(shop__sid_valid("abc"));
    assert_false(shop__sid_valid("0123456789ABCDEF0123456789abcdef"));
}

static void money_converts_and_rounds(void **state)
{
    char m[32];

    (void)state;
    shop__money(m, sizeof(m), 1999, "USD");
    assert_string_equal(m, "$19.99");
    shop__money(m, sizeof(m), 1000, "EUR");
    assert_string_equal(m, "\u20ac9.20");
    shop__money(m, sizeof(m), 1000, "JPY");
    assert_string_equal(m, "\u00a51500");
    shop__money(m, sizeof(m), 5, "nope");
    assert_string_equal(m, "$0.05");
    assert_true(shop__currency_valid("GBP"));
    assert_false(shop__currency_valid("gbp"));
    assert_true(shop__language_valid("ja"));
    assert_false(shop__language_valid("xx"));
}

static void like_pattern_escapes_wildcards(void **state)
{
    char *p;

    (void)state;
    p = shop__like_pattern("50%_off\\");
    assert_string_equal(p, "%50\\%\\_off\\\\%");
    mr_free(p);
    p = shop__like_pattern("");
    assert_string_equal(p, "%%");
    mr_free(p);
}

static void failed_statement_is_parsed_from_node_errors(void **state)
{
    (void)state;
    assert_int_equal(shop__failed_statement("statement 3: CHECK constraint failed: stock >= 0"), 3);
    assert_int_equal(shop__failed_statement("statement 12: NOT NULL constraint failed"), 12);
    assert_int_equal(shop__failed_statement("CHECK constraint failed"), 0);
    assert_int_equal(shop__failed_statement("statement x: y"), 0);
    assert_int_equal(shop__failed_statement(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(html_escapes_every_special_character),
        cmocka_unit_test(cookie_finds_exact_names_only),
        cmocka_unit_test(form_decodes_percent_and_plus),
        cmocka_unit_test(identifiers_are_validated),
        cmocka_unit_test(money_converts_and_rounds),
        cmocka_unit_test(like_pattern_escapes_wildcards),
        cmocka_unit_test(failed_statement_is_parsed_from_node_errors),
    };
    return cmocka_run_group_tests_name("shop_util", tests, NULL, NULL);
}
