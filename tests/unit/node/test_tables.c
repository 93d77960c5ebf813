/* Unit tests of the token grammar shared by SQL and tables
 * (src/common/token.c) and of the [tables] settings parsers (src/node/tables.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "common/token.h"
#include "node/node_cfg.h"
#include "node/node_int.h"

static void tokens_round_trip_and_merge_componentwise(void **state)
{
    struct mr_token a, b;
    char out[MR_TOKEN_MAX_LEN], err[MR_ERRMSG_LEN];
    int64_t rev;

    (void)state;
    assert_int_equal(mr_token_parse("1.42", &a, err), 0);
    assert_int_equal(a.rev, 42);
    assert_int_equal(a.n, 0);
    assert_int_equal(mr_token_parse("1.7.eu-west-1=3.us-east-1=12", &a, err), 0);
    assert_int_equal(a.rev, 7);
    assert_int_equal(mr_token_get(&a, "us-east-1"), 12);
    assert_int_equal(mr_token_get(&a, "eu-west-1"), 3);
    assert_int_equal(mr_token_get(&a, "ap-southeast-1"), 0);
    mr_token_format(&a, out, sizeof(out));
    assert_string_equal(out, "1.7.eu-west-1=3.us-east-1=12");
    assert_int_equal(mr_token_parse("1.9.ap_x=5.us-east-1=4", &b, err), 0);
    assert_int_equal(mr_token_merge(&a, &b), 0);
    mr_token_format(&a, out, sizeof(out));
    assert_string_equal(out, "1.9.ap_x=5.eu-west-1=3.us-east-1=12");
    /* set raises, never lowers; keeps the order. */
    assert_int_equal(mr_token_set(&a, "us-east-1", 2), 0);
    assert_int_equal(mr_token_get(&a, "us-east-1"), 12);
    assert_int_equal(mr_token_set(&a, "b-region", 1), 0);
    mr_token_format(&a, out, sizeof(out));
    assert_string_equal(out, "1.9.ap_x=5.b-region=1.eu-west-1=3.us-east-1=12");
    assert_int_equal(mr_token_set(&a, "bad.name", 1), MR_EINVAL);
    /* The SQL path reads the revision and ignores table positions. */
    assert_int_equal(node__parse_token("1.5.us-east-1=3", &rev), 0);
    assert_int_equal(rev, 5);
}

static void tokens_parse_strictly_with_a_message(void **state)
{
    static const struct {
        const char *tok, *msg;
    } bad[] = {
        {"", "expected \"1.<revision>\""},
        {"2.5", "expected \"1.<revision>\""},
        {"1.", "revision"},
        {"1.-3", "revision"},
        {"1.9223372036854775808", "revision"},
        {"1.3x", "unexpected 'x'"},
        {"1.3.us-east-1", "expected <region>=<position>"},
        {"1.3.us-east-1=", "position of 1 or more"},
        {"1.3.us-east-1=0", "position of 1 or more"},
        {"1.3.us-east-1=18446744073709551616", "position of 1 or more"},
        {"1.3.us east=1", "expected <region>=<position>"},
        {"1.3.=4", "expected <region>=<position>"},
        {"1.3.b=1.a=2", "out of order"},
        {"1.3.a=1.a=2", "out of order or repeated"},
        {"1.3.a=1..b=2", "expected <region>=<position>"},
        {"1.3.a=1.", "expected <region>=<position>"},
    };
    struct mr_token t;
    char err[MR_ERRMSG_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (mr_token_parse(bad[i].tok, &t, err) != MR_EINVAL || strstr(err, bad[i].msg) == NULL)
            fail_msg("token '%s': expected an error with '%s', got '%s'", bad[i].tok, bad[i].msg, err);
    }
    assert_int_equal(mr_token_parse("1.18446744073709551615", &t, err), MR_EINVAL);
    assert_int_equal(mr_token_parse("1.0.r=18446744073709551615", &t, err), 0);
    assert_true(t.pos[0].seq == UINT64_MAX);
}

static void tables_settings_parse_and_name_their_errors(void **state)
{
    struct gtab_spec specs[8];
    char regions[4][64], urls[4][256], err[MR_ERRMSG_LEN];
    size_t n;

    (void)state;
    assert_int_equal(node__tables_parse_declare("none", specs, 8, &n, err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(node__tables_parse_declare("carts:crdt,sessions:lww:expires_at", specs, 8, &n, err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(specs[0].kind, GTAB_CRDT);
    assert_string_equal(specs[1].ttl_field, "expires_at");
    assert_int_equal(node__tables_parse_declare("carts", specs, 8, &n, err), MR_ECONFIG);
    assert_non_null(strstr(err, "expected name:lww|crdt"));
    assert_int_equal(node__tables_parse_declare("carts:bag", specs, 8, &n, err), MR_ECONFIG);
    assert_non_null(strstr(err, "\"kind\""));
    assert_int_equal(node__tables_parse_peers("eu-west-1=http://127.0.0.1:9000,ap-1=http://h:1", regions,
                                              urls, 4, &n, err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(regions[1], "ap-1");
    assert_string_equal(urls[0], "http://127.0.0.1:9000");
    assert_int_equal(node__tables_parse_peers("eu-west-1", regions, urls, 4, &n, err), MR_ECONFIG);
    assert_int_equal(node__tables_parse_peers("eu-west-1=ftp://x", regions, urls, 4, &n, err), MR_ECONFIG);
}

/* The node checks [tables] before it binds anything: a bad value is an
 * error at start (and in --check-config), not something the streams skip. */
static void start_refuses_bad_tables_settings(void **state)
{
    struct node_cfg cfg;
    char err[MR_ERRMSG_LEN] = "";

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    mr_cfg_defaults(node_cfg_opts, node_cfg_n_opts, &cfg);
    assert_int_equal(node_check_config(&cfg, err), 0);
    assert_int_equal(mr_cfg_set(node_cfg_opts, node_cfg_n_opts, &cfg, "t", "tables", "peers", "eu-west-1", err), 0);
    assert_int_equal(node_check_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "expected region=http://host:port"));
    assert_int_equal(mr_cfg_set(node_cfg_opts, node_cfg_n_opts, &cfg, "t", "tables", "peers", "none", err), 0);
    assert_int_equal(mr_cfg_set(node_cfg_opts, node_cfg_n_opts, &cfg, "t", "tables", "declare", "carts:blob", err), 0);
    assert_int_equal(node_check_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "\"lww\" or \"crdt\""));
    mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_round_trip_and_merge_componentwise),
        cmocka_unit_test(tokens_parse_strictly_with_a_message),
        cmocka_unit_test(tables_settings_parse_and_name_their_errors),
        cmocka_unit_test(start_refuses_bad_tables_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
