/* test_scenario.c -- scenario files: the shipped ones parse, bad ones are
 * refused with the file, the line and the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "gameday/gameday.h"

static void shipped_scenarios_parse(void **state)
{
    static const char *const names[] = {"ci-short", "primary-region-loss", "secondary-region-loss",
                                        "primary-partitioned", "latency-spike", "flapping-region",
                                        "leader-region-loss", "5xx-storm"};
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[128], err[MR_ERRMSG_LEN] = "";
        struct gd_scenario *s = NULL;
        snprintf(path, sizeof(path), "scenarios/%s.ini", names[i]);
        if (gd_scenario_load(path, &s, err) != 0)
            fail_msg("%s: %s", path, err);
        assert_string_equal(s->name, names[i]);
        assert_true(s->n_faults >= 1);
        gd_scenario_free(s);
    }
}

static void ci_short_is_short(void **state)
{
    char err[MR_ERRMSG_LEN] = "";
    struct gd_scenario *s = NULL;

    (void)state;
    assert_int_equal(gd_scenario_load("scenarios/ci-short.ini", &s, err), 0);
    /* make test's budget: warm-up, traffic and settling under two minutes */
    assert_true(s->warmup_ms + s->duration_ms + s->settle_ms < 120000);
    assert_int_equal(s->faults[0].kind, GD_KILL);
    assert_string_equal(s->faults[0].region, "eu-west-1");
    assert_int_equal(s->faults[0].at_ms, 10000);
    assert_int_equal(s->faults[0].duration_ms, 15000);
    assert_true(s->targets.detect_s == 1 && s->targets.reroute_s == 2);
    gd_scenario_free(s);
}

static void refuse(const char *text, const char *want)
{
    char err[MR_ERRMSG_LEN] = "";
    struct gd_scenario *s = NULL;

    if (gd_scenario_parse(text, "t.ini", &s, err) == 0)
        fail_msg("accepted: %s", text);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want);
}

static void bad_scenarios_name_the_problem(void **state)
{
    (void)state;
    refuse("[scenario]\nrate = fast\n", "t.ini:2: rate = 'fast': expected a number");
    refuse("[scenario]\nspeed = 3\n", "t.ini:2: unknown key 'speed' in [scenario]");
    refuse("[scenery]\n", "t.ini:1: unknown section [scenery]");
    refuse("[fault a]\nkind = meteor\n", "t.ini:2: kind = 'meteor': expected kill");
    refuse("[fault a]\nkind = kill\nat = 1s\nduration = 2s\n", "[fault a]: region is required");
    refuse("[fault a]\nkind = kill\nregion = r\nat = 1s\n", "[fault a]: duration is required");
    refuse("[fault a]\nkind = kill\nregion = r\nduration = 1s\n[fault a]\n", "t.ini:5: [fault a] is declared twice");
    refuse("[fault a]\nkind = link_cut\nlink = r\nduration = 1s\n", "link 'r' is not FROM->TO");
    refuse("[fault a]\nkind = latency\nregion = r\nduration = 1s\n", "needs latency");
    refuse("[scenario]\nduration = 10s\n[fault a]\nkind = kill\nregion = r\nat = 9s\nduration = 2s\n",
           "ends after the traffic does");
    refuse("[fault a]\nkind = freeze\nregion = r\nduration = 3s\nrepeat = 3\nperiod = 2s\n",
           "period (2000 ms) must be longer than duration");
    refuse("[scenario]\nbrowse = 0\nproduct = 0\ncart = 0\ncheckout = 0\norders = 0\n", "the mix");
    refuse("rate = 3\n", "t.ini:1: key 'rate' outside any section");
    refuse("[scenario\n", "t.ini:1: syntax error");
}

static void shop_faults_parse_with_defaults(void **state)
{
    char err[MR_ERRMSG_LEN] = "";
    struct gd_scenario *s = NULL;

    (void)state;
    assert_int_equal(gd_scenario_parse("[fault a]\nkind = shop_5xx\nregion = eu-west-1\nat = 1s\n"
                                       "duration = 2s\n[fault b]\nkind = shop_hang\nregion = r\n"
                                       "paths = /api/,/readyz\nat = 4s\nduration = 2s\n"
                                       "[fault c]\nkind = shop_5xx\nregion = r\nstatus = 500\n"
                                       "paths = /api/checkout\nat = 7s\nduration = 1s\n",
                                       "t.ini", &s, err),
                     0);
    assert_int_equal(s->faults[0].kind, GD_SHOP_5XX);
    assert_string_equal(gd_fault_kind_name(GD_SHOP_5XX), "shop_5xx");
    assert_string_equal(gd_fault_kind_name(GD_SHOP_HANG), "shop_hang");
    assert_int_equal(s->faults[0].status, 503);
    assert_string_equal(s->faults[0].paths, "/");
    assert_int_equal(s->faults[1].kind, GD_SHOP_HANG);
    assert_int_equal(s->faults[1].status, 0);
    assert_string_equal(s->faults[1].paths, "/api/,/readyz");
    assert_int_equal(s->faults[2].status, 500);
    assert_string_equal(s->faults[2].paths, "/api/checkout");
    gd_scenario_free(s);
}

static void the_5xx_storm_breaks_one_regions_shops_under_load(void **state)
{
    char err[MR_ERRMSG_LEN] = "";
    struct gd_scenario *s = NULL;

    (void)state;
    assert_int_equal(gd_scenario_load("scenarios/5xx-storm.ini", &s, err), 0);
    assert_int_equal(s->n_faults, 1);
    assert_int_equal(s->faults[0].kind, GD_SHOP_5XX);
    assert_int_equal(s->faults[0].status, 503);
    assert_int_equal(s->faults[0].duration_ms, 30000);
    assert_string_equal(s->faults[0].paths, "/");
    assert_true(s->rate > 0 && s->targets.detect_s == 1 && s->targets.reroute_s == 2);
    gd_scenario_free(s);
}

static void bad_shop_faults_name_the_problem(void **state)
{
    (void)state;
    refuse("[fault a]\nkind = shop_5xx\nregion = r\nstatus = 404\nduration = 1s\n",
           "t.ini:4: status = 404: expected an HTTP status from 500 to 599");
    refuse("[fault a]\nkind = shop_5xx\nregion = r\nstatus = lots\nduration = 1s\n", "t.ini:4: status = 'lots'");
    refuse("[fault a]\nkind = shop_5xx\nregion = r\npaths = api\nduration = 1s\n",
           "t.ini:4: paths = 'api': expected 1 to 8 comma-separated path prefixes");
    refuse("[fault a]\nkind = shop_hang\nregion = r\npaths = /a b\nduration = 1s\n", "paths = '/a b'");
    refuse("[fault a]\nkind = shop_hang\nregion = r\npaths = /a,,/b\nduration = 1s\n", "paths = '/a,,/b'");
    refuse("[fault a]\nkind = shop_hang\nregion = r\nstatus = 503\nduration = 1s\n",
           "[fault a]: status goes with kind shop_5xx only");
    refuse("[fault a]\nkind = kill\nregion = r\npaths = /\nduration = 1s\n",
           "[fault a]: paths goes with kinds shop_5xx and shop_hang only");
    refuse("[fault a]\nkind = shop_5xx\nat = 1s\nduration = 2s\n", "[fault a]: region is required");
    refuse("[fault a]\nkind = shop_teapot\n", "expected kill, freeze, partition, link_cut, latency, kill_node, "
           "kill_leader, shop_5xx or shop_hang");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_scenarios_parse),
        cmocka_unit_test(ci_short_is_short),
        cmocka_unit_test(bad_scenarios_name_the_problem),
        cmocka_unit_test(shop_faults_parse_with_defaults),
        cmocka_unit_test(the_5xx_storm_breaks_one_regions_shops_under_load),
        cmocka_unit_test(bad_shop_faults_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
