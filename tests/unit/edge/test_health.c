/* test_health.c -- the region health state machine and the retry budget
 * (src/edge/health.c), and the edge's configuration (src/edge/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "edge/edge.h"

static const struct edge_health_params P = {
    .unhealthy_after = 3, .healthy_after = 2, .passive_failures = 3,
    .passive_error_rate = 50, .passive_window = 10};

static int probe(struct edge_health *h, int ok)
{
    char reason[64];

    return edge_health_probe(h, &P, ok, reason, sizeof(reason));
}

static int live(struct edge_health *h, enum edge_outcome o)
{
    char reason[64];

    return edge_health_live(h, &P, o, reason, sizeof(reason));
}

static void health_needs_two_successes_then_three_failures(void **state)
{
    struct edge_health h;

    (void)state;
    edge_health_init(&h);
    assert_int_equal(h.state, EDGE_UNKNOWN);
    assert_int_equal(probe(&h, 1), -1);
    assert_int_equal(probe(&h, 1), EDGE_HEALTHY);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 1), -1);    /* a success resets the failures */
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 0), EDGE_UNHEALTHY);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 1), -1);
    assert_int_equal(probe(&h, 0), -1);    /* not two in a row */
    assert_int_equal(probe(&h, 1), -1);
    assert_int_equal(probe(&h, 1), EDGE_HEALTHY);
}

static void health_unknown_region_goes_down_after_failed_probes(void **state)
{
    struct edge_health h;

    (void)state;
    edge_health_init(&h);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 0), -1);
    assert_int_equal(probe(&h, 0), EDGE_UNHEALTHY);
}

static void health_refusal_marks_down_at_once(void **state)
{
    struct edge_health h;

    (void)state;
    edge_health_init(&h);
    probe(&h, 1);
    probe(&h, 1);
    assert_int_equal(live(&h, EDGE_OK), -1);
    assert_int_equal(live(&h, EDGE_REFUSED), EDGE_UNHEALTHY);
    /* live successes never bring it back: probes do, two of them */
    assert_int_equal(live(&h, EDGE_OK), -1);
    assert_int_equal(h.state, EDGE_UNHEALTHY);
    assert_int_equal(probe(&h, 1), -1);
    assert_int_equal(probe(&h, 1), EDGE_HEALTHY);
}

static void health_consecutive_live_failures_mark_down(void **state)
{
    struct edge_health h;

    (void)state;
    edge_health_init(&h);
    probe(&h, 1);
    probe(&h, 1);
    assert_int_equal(live(&h, EDGE_5XX), -1);
    assert_int_equal(live(&h, EDGE_TIMEOUT), -1);
    assert_int_equal(live(&h, EDGE_OK), -1);      /* resets the run */
    assert_int_equal(live(&h, EDGE_RESET), -1);
    assert_int_equal(live(&h, EDGE_5XX), -1);
    assert_int_equal(live(&h, EDGE_BAD_RESPONSE), EDGE_UNHEALTHY);
}

static void health_error_rate_over_full_window_marks_down(void **state)
{
    struct edge_health h;
    int rc = -1, n = 0;

    (void)state;
    edge_health_init(&h);
    probe(&h, 1);
    probe(&h, 1);
    /* alternate ok / failure: never 3 in a row, but 50% of a window of 10 */
    while (rc < 0 && n < 40) {
        rc = live(&h, n % 2 ? EDGE_5XX : EDGE_OK);
        n++;
    }
    assert_int_equal(rc, EDGE_UNHEALTHY);
    assert_int_equal(n, 10);    /* as soon as the window is full */
}

static void budget_allows_minimum_then_percent(void **state)
{
    (void)state;
    /* Envoy-style: max(min, percent of in flight) retries at once */
    assert_true(edge_budget_allows(0, 0, 20, 3));
    assert_true(edge_budget_allows(1, 2, 20, 3));
    assert_false(edge_budget_allows(1, 3, 20, 3));
    assert_true(edge_budget_allows(100, 19, 20, 3));
    assert_false(edge_budget_allows(100, 20, 20, 3));
    assert_false(edge_budget_allows(100, 0, 0, 0));
}

/* ---- configuration ---- */

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/edge-cfg-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load(const char *text, struct edge_config *cfg, char *err)
{
    char *path = write_tmp(text);
    int rc = edge_config_load(path, cfg, err);

    unlink(path);
    free(path);
    return rc;
}

static void config_loads_regions_classes_and_defaults(void **state)
{
    struct edge_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(load("[edge]\nlisten = 127.0.0.1:0\nprefer = b, a\n"
                          "[region a]\norigin = http://127.0.0.1:9001\ncapacity = 5\n"
                          "[region b]\norigin = http://localhost:9002\n"
                          "[class checkout]\nprefix = /checkout, /v1/orders\npriority = 10\n",
                          &cfg, err), 0);
    assert_int_equal(cfg.n_regions, 2);
    assert_string_equal(cfg.regions[0].host, "127.0.0.1");
    assert_int_equal(cfg.regions[0].port, 9001);
    assert_int_equal(cfg.regions[0].capacity, 5);
    assert_int_equal(cfg.n_prefer, 2);
    assert_int_equal(cfg.prefer_order[0], 1);
    assert_int_equal(cfg.n_classes, 1);
    assert_int_equal(cfg.classes[0].n_prefixes, 2);
    assert_string_equal(cfg.classes[0].prefixes[1], "/v1/orders");
    assert_int_equal(cfg.probe_interval_ms, 250);
    assert_int_equal(cfg.unhealthy_after, 3);
    assert_int_equal(cfg.healthy_after, 2);
    assert_int_equal(cfg.retry_budget, 20);
    assert_int_equal(cfg.all_down, EDGE_FAIL_OPEN);
    assert_int_equal(cfg.listen_port, 0);
    edge_config_free(&cfg);
}

static void config_errors_name_file_line_and_key(void **state)
{
    struct edge_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(load("[edge]\n\n[region a]\norigin = ftp://x\n", &cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":4: key 'origin'"));
    edge_config_free(&cfg);
    assert_int_equal(load("[health]\nprobe_interval = soon\n[region a]\norigin = http://h:1\n",
                          &cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":2:"));
    assert_non_null(strstr(err, "probe_interval"));
    edge_config_free(&cfg);
    assert_int_equal(load("[edge]\nall_unhealthy = maybe\n[region a]\norigin = http://h:1\n", &cfg,
                          err), MR_ECONFIG);
    assert_non_null(strstr(err, "fail_open or fail_closed"));
    edge_config_free(&cfg);
    assert_int_equal(load("[edge]\nprefer = z\n[region a]\norigin = http://h:1\n", &cfg, err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "'z' is not a [region]"));
    edge_config_free(&cfg);
    assert_int_equal(load("[edge]\nname = x\n", &cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "at least one [region"));
    edge_config_free(&cfg);
    assert_int_equal(load("[region a]\ncapacity = 3\n", &cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "'origin' is required"));
    edge_config_free(&cfg);
    assert_int_equal(load("[class c]\nprefix = nope\n[region a]\norigin = http://h:1\n", &cfg,
                          err), MR_ECONFIG);
    assert_non_null(strstr(err, ":2:"));
    edge_config_free(&cfg);
    assert_int_equal(load("[bogus]\nx = 1\n", &cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":2: unknown section [bogus]"));
    edge_config_free(&cfg);
}

/* [tls]: keys of a side go together, files must be readable, an https://
 * origin needs the origin-side certificate; the messages name the key. */
static void config_tls_checks_name_the_key(void **state)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[region a]\norigin = https://h:1\n", "origin 'https://h:1' is https:// but [tls]"},
        {"[tls]\nca_file = /dev/null\n[region a]\norigin = https://h:1\n",
         "key 'cert_file' in [tls] is missing"},
        {"[tls]\nca_file = /dev/null\ncert_file = /dev/null\n[region a]\norigin = http://h:1\n",
         "key 'key_file' in [tls] is missing"},
        {"[tls]\nca_file = /nonexistent/ca.crt\ncert_file = /dev/null\nkey_file = /dev/null\n"
         "[region a]\norigin = https://h:1\n", "key 'ca_file' in [tls]: cannot read '/nonexistent/ca.crt'"},
        {"[tls]\npublic_cert_file = /dev/null\n[region a]\norigin = http://h:1\n",
         "key 'public_key_file' in [tls] is missing"},
        {"[tls]\npublic_key_file = /dev/null\n[region a]\norigin = http://h:1\n",
         "key 'public_cert_file' in [tls] is missing"},
        {"[tls]\npublic_cert_file = /nope.crt\npublic_key_file = /dev/null\n[region a]\n"
         "origin = http://h:1\n", "cannot read '/nope.crt'"},
        {"[tls]\nbogus = 1\n[region a]\norigin = http://h:1\n", "bogus"},
    };
    struct edge_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(cases[i].text, &cfg, err), MR_ECONFIG);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].needle);
        edge_config_free(&cfg);
    }
    /* Both sides set, an https and an http origin: accepted. */
    assert_int_equal(load("[tls]\nca_file = /dev/null\ncert_file = /dev/null\n"
                          "key_file = /dev/null\npublic_cert_file = /dev/null\n"
                          "public_key_file = /dev/null\n[region a]\norigin = https://h:1\n"
                          "[region b]\norigin = http://h:2\n", &cfg, err), 0);
    assert_int_equal(cfg.regions[0].tls, 1);
    assert_int_equal(cfg.regions[1].tls, 0);
    assert_int_equal(cfg.regions[0].port, 1);
    edge_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_needs_two_successes_then_three_failures),
        cmocka_unit_test(health_unknown_region_goes_down_after_failed_probes),
        cmocka_unit_test(health_refusal_marks_down_at_once),
        cmocka_unit_test(health_consecutive_live_failures_mark_down),
        cmocka_unit_test(health_error_rate_over_full_window_marks_down),
        cmocka_unit_test(budget_allows_minimum_then_percent),
        cmocka_unit_test(config_loads_regions_classes_and_defaults),
        cmocka_unit_test(config_errors_name_file_line_and_key),
        cmocka_unit_test(config_tls_checks_name_the_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
