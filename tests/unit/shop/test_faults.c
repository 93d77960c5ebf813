/* Unit tests of src/shop/faults.c's pure parts: the body of POST
 * /admin/faults, which paths a fault covers, which tokens are usable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "shop/shop_int.h"

static void parse_ok(const char *body, struct shop_fault_spec *sp)
{
    char msg[200] = "";

    if (shop__fault_parse(body, strlen(body), sp, msg, sizeof(msg)) != 0)
        fail_msg("refused %s: %s", body, msg);
}

static void refuse(const char *body, const char *want)
{
    struct shop_fault_spec sp;
    char msg[200] = "";

    if (shop__fault_parse(body, strlen(body), &sp, msg, sizeof(msg)) == 0)
        fail_msg("accepted %s", body);
    if (strstr(msg, want) == NULL)
        fail_msg("%s: '%s' does not say '%s'", body, msg, want);
}

static void a_body_sets_mode_status_and_paths(void **state)
{
    struct shop_fault_spec sp;

    (void)state;
    parse_ok("{\"mode\":\"5xx\",\"status\":500,\"paths\":\"/api/\"}", &sp);
    assert_int_equal(sp.mode, SHOP_FAULT_5XX);
    assert_int_equal(sp.status, 500);
    assert_int_equal(sp.n_paths, 1);
    assert_string_equal(sp.paths[0], "/api/");
    parse_ok("{\"mode\":\"5xx\"}", &sp);
    assert_int_equal(sp.status, 503);
    assert_int_equal(sp.n_paths, 1);
    assert_string_equal(sp.paths[0], "/");
    parse_ok("{\"mode\":\"hang\",\"paths\":\"/api/checkout, /readyz\"}", &sp);
    assert_int_equal(sp.mode, SHOP_FAULT_HANG);
    assert_int_equal(sp.n_paths, 2);
    assert_string_equal(sp.paths[1], "/readyz");
    parse_ok("{\"mode\":\"hang\",\"paths\":[\"/a\",\"/b\"]}", &sp);
    assert_int_equal(sp.n_paths, 2);
    parse_ok("{\"mode\":\"off\"}", &sp);
    assert_int_equal(sp.mode, SHOP_FAULT_OFF);
    assert_int_equal(sp.n_paths, 0);
}

static void bad_bodies_name_the_problem(void **state)
{
    (void)state;
    refuse("", "body is not JSON");
    refuse("[1]", "body must be a JSON object");
    refuse("{}", "'mode' is required");
    refuse("{\"mode\":\"teapot\"}", "'mode' = 'teapot'");
    refuse("{\"mode\":\"5xx\",\"status\":404}", "'status' must be an integer from 500 to 599");
    refuse("{\"mode\":\"5xx\",\"status\":\"503\"}", "'status' must be an integer");
    refuse("{\"mode\":\"hang\",\"status\":503}", "'status' goes with mode \"5xx\" only");
    refuse("{\"mode\":\"off\",\"paths\":\"/\"}", "'paths' goes with mode");
    refuse("{\"mode\":\"5xx\",\"paths\":\"api\"}", "'paths': 'api' is not a path prefix");
    refuse("{\"mode\":\"5xx\",\"paths\":\"\"}", "'paths' must name 1 to 8");
    refuse("{\"mode\":\"5xx\",\"paths\":3}", "'paths' must be a string");
    refuse("{\"mode\":\"5xx\",\"paths\":\"/1,/2,/3,/4,/5,/6,/7,/8,/9\"}", "'paths' must name 1 to 8");
    refuse("{\"mode\":\"5xx\",\"colour\":\"red\"}", "unknown key 'colour'");
    refuse("{\"mode\":\"5xx\",\"mode\":\"off\"}", "body is not JSON");
}

static void coverage_is_by_prefix_and_spares_the_endpoint_and_metrics(void **state)
{
    struct shop_fault_spec sp;

    (void)state;
    parse_ok("{\"mode\":\"5xx\",\"paths\":\"/\"}", &sp);
    assert_true(shop__fault_covers(&sp, "/api/products"));
    assert_true(shop__fault_covers(&sp, "/healthz"));
    assert_true(shop__fault_covers(&sp, "/readyz"));
    assert_false(shop__fault_covers(&sp, "/admin/faults"));
    assert_false(shop__fault_covers(&sp, "/metrics"));
    parse_ok("{\"mode\":\"5xx\",\"paths\":\"/api/\"}", &sp);
    assert_true(shop__fault_covers(&sp, "/api/cart/items"));
    assert_false(shop__fault_covers(&sp, "/readyz"));
    assert_false(shop__fault_covers(&sp, "/cart"));
    parse_ok("{\"mode\":\"off\"}", &sp);
    assert_false(shop__fault_covers(&sp, "/api/products"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_body_sets_mode_status_and_paths),
        cmocka_unit_test(bad_bodies_name_the_problem),
        cmocka_unit_test(coverage_is_by_prefix_and_spares_the_endpoint_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
