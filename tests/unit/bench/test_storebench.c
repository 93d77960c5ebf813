/* Unit tests of src/bench/storebench.c: the store benchmark and its SQLite
 * floor measure every run, refuse bad counts, and leave no directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <string.h>

#include "bench/storebench.h"
#include "common/err.h"

static size_t leftovers(void)
{
    glob_t g;
    size_t n = 0;

    if (glob("/tmp/meridian-storebench-*", 0, NULL, &g) == 0)
        n = g.gl_pathc;
    globfree(&g);
    return n;
}

static void store_and_floor_measure_each_run_and_clean_up(void **state)
{
    struct storebench_sample s[3], f[3];
    char err[MR_ERRMSG_LEN] = "";
    size_t before = leftovers();

    (void)state;
    memset(s, 0, sizeof(s));
    memset(f, 0, sizeof(f));
    assert_int_equal(storebench_measure(3, 300, 200, 16, s, err), 0);
    assert_int_equal(storebench_floor(3, 300, 200, 16, f, err), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(s[i].local_ns > 0 && s[i].apply_ns > 0);
        assert_true(f[i].local_ns > 0 && f[i].apply_ns > 0);
    }
    assert_int_equal(leftovers(), before);
}

static void bad_run_counts_are_refused(void **state)
{
    struct storebench_sample s[1];
    char err[MR_ERRMSG_LEN] = "";

    (void)state;
    assert_int_equal(storebench_measure(0, 10, 10, 1, s, err), MR_EINVAL);
    assert_non_null(strstr(err, "runs"));
    assert_int_equal(storebench_floor(65, 10, 10, 1, s, err), MR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_and_floor_measure_each_run_and_clean_up),
        cmocka_unit_test(bad_run_counts_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
