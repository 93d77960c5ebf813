/* Unit tests of the edge's per-client rate limit (src/edge/ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "common/err.h"
#include "edge/edge.h"

#define SEC 1000000LL

static void burst_then_rate_with_retry_after(void **state)
{
    struct edge_rl *rl;
    (void)state;

    assert_int_equal(edge_rl_new(2, 5, 100, &rl), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(edge_rl_take(rl, "10.0.0.1", 0), 0);
    assert_int_equal(edge_rl_take(rl, "10.0.0.1", 0), 1);      /* 0.5 s to a token: 1 */
    /* Another address has its own bucket. */
    assert_int_equal(edge_rl_take(rl, "10.0.0.2", 0), 0);
    /* Half a second brings one token at 2/s. */
    assert_int_equal(edge_rl_take(rl, "10.0.0.1", SEC / 2), 0);
    assert_int_equal(edge_rl_take(rl, "10.0.0.1", SEC / 2), 1);
    /* A long pause refills to the burst, not beyond. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(edge_rl_take(rl, "10.0.0.1", 100 * SEC), 0);
    assert_true(edge_rl_take(rl, "10.0.0.1", 100 * SEC) > 0);
    assert_int_equal(edge_rl_clients(rl), 2);
    edge_rl_free(rl);
}

static void slow_rate_says_how_long(void **state)
{
    struct edge_rl *rl;
    (void)state;

    assert_int_equal(edge_rl_new(0.1, 1, 10, &rl), 0);
    assert_int_equal(edge_rl_take(rl, "::1", 0), 0);
    assert_int_equal(edge_rl_take(rl, "::1", 0), 10);
    assert_int_equal(edge_rl_take(rl, "::1", 5 * SEC), 5);
    edge_rl_free(rl);
}

static void table_is_bounded_and_forgets_the_least_recent(void **state)
{
    struct edge_rl *rl;
    char ip[32];
    (void)state;

    assert_int_equal(edge_rl_new(1, 1, 3, &rl), 0);
    assert_int_equal(edge_rl_take(rl, "a", 0), 0);
    assert_int_equal(edge_rl_take(rl, "b", 0), 0);
    assert_int_equal(edge_rl_take(rl, "c", 0), 0);
    assert_true(edge_rl_take(rl, "a", 0) > 0);   /* a is now the most recent */
    assert_int_equal(edge_rl_take(rl, "d", 0), 0); /* evicts b */
    assert_int_equal(edge_rl_clients(rl), 3);
    assert_int_equal(edge_rl_evictions(rl), 1);
    assert_true(edge_rl_take(rl, "a", 0) > 0);   /* a was kept: still empty */
    assert_int_equal(edge_rl_take(rl, "b", 0), 0); /* b was forgotten: a fresh bucket */
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
        assert_int_equal(edge_rl_take(rl, ip, 0), 0);
    }
    assert_int_equal(edge_rl_clients(rl), 3);
    edge_rl_free(rl);
}

static void bad_parameters_are_refused(void **state)
{
    struct edge_rl *rl;
    (void)state;

    assert_int_equal(edge_rl_new(0, 5, 10, &rl), MR_EINVAL);
    assert_int_equal(edge_rl_new(1, 0, 10, &rl), MR_EINVAL);
    assert_int_equal(edge_rl_new(1, 5, 0, &rl), MR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_rate_with_retry_after),
        cmocka_unit_test(slow_rate_says_how_long),
        cmocka_unit_test(table_is_bounded_and_forgets_the_least_recent),
        cmocka_unit_test(bad_parameters_are_refused),
    };
    return cmocka_run_group_tests_name("edge_ratelimit", tests, NULL, NULL);
}
