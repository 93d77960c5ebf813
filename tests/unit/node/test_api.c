/* Unit tests of src/node's parsers: the /v1/sql request, tokens, and log
 * entries (the wire formats in node_int.h and docs/api.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "node/node_int.h"

static int parse(const char *body, const char *token_header, struct sql_req *r, char *err)
{
    struct http_header h = {"Meridian-Token", (char *)token_header};
    struct http_request hr;

    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.path = "/v1/sql";
    hr.body = body;
    hr.body_len = strlen(body);
    hr.headers = token_header ? &h : NULL;
    hr.n_headers = token_header ? 1 : 0;
    return node__parse_sql_request(&hr, r, err);
}

static void request_with_all_fields_parses(void **state)
{
    struct sql_req r;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(parse("{\"statements\":[{\"sql\":\"SELECT ?\",\"params\":[1]},{\"sql\":\"SELECT 2\"}],"
                           "\"consistency\":\"strong\",\"token\":\"1.42\",\"idempotency_key\":\"k\"}",
                           NULL, &r, err), 0);
    assert_int_equal(r.n_stmts, 2);
    assert_string_equal(r.stmts[0].sql, "SELECT ?");
    assert_true(json_is_array(r.stmts[0].params));
    assert_null(r.stmts[1].params);
    assert_int_equal(r.consistency, CONS_STRONG);
    assert_int_equal(r.token_rev, 42);
    assert_string_equal(r.idem_key, "k");
    sql_req_free(&r);
}

static void token_makes_session_the_default_and_header_works(void **state)
{
    struct sql_req r;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(parse("{\"statements\":[{\"sql\":\"SELECT 1\"}]}", NULL, &r, err), 0);
    assert_int_equal(r.consistency, CONS_EVENTUAL);
    assert_int_equal(r.token_rev, -1);
    sql_req_free(&r);
    assert_int_equal(parse("{\"statements\":[{\"sql\":\"SELECT 1\"}]}", "1.7", &r, err), 0);
    assert_int_equal(r.consistency, CONS_SESSION);
    assert_int_equal(r.token_rev, 7);
    sql_req_free(&r);
    /* The body's token wins over the header's. */
    assert_int_equal(parse("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":\"1.9\"}", "1.7", &r, err), 0);
    assert_int_equal(r.token_rev, 9);
    sql_req_free(&r);
}

static void malformed_requests_name_the_problem(void **state)
{
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {"", "not valid JSON"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"statements\":[]}", "not valid JSON"},
        {"\"SELECT 1\"", "not valid JSON"},
        {"[1]", "must be a JSON object"},
        {"{}", "non-empty array"},
        {"{\"statements\":{}}", "non-empty array"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"consistancy\":\"strong\"}", "unknown field \"consistancy\""},
        {"{\"statements\":[{\"sql\":\"SELECT 1\",\"param\":[]}]}", "statement 1: unknown field \"param\""},
        {"{\"statements\":[{\"sql\":null}]}", "statement 1: \"sql\" must be a string"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\",\"params\":5}]}", "\"params\" must be an array or an object"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"consistency\":\"linear\"}", "unknown consistency"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"consistency\":1}", "\"consistency\" must be a string"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":\"2.5\"}", "not a Meridian consistency token"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":5}", "\"token\" must be a string"},
        {"{\"statements\":[{\"sql\":\"SELECT 1\"}],\"idempotency_key\":\"\"}", "idempotency_key"},
    };
    char err[MR_ERRMSG_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sql_req r;
        assert_int_equal(parse(cases[i].body, NULL, &r, err), MR_EINVAL);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
        sql_req_free(&r);
    }
}

static void too_many_statements_are_refused(void **state)
{
    struct sql_req r;
    char err[MR_ERRMSG_LEN];
    struct mr_buf b;

    (void)state;
    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"statements\":[");
    for (int i = 0; i <= STORE_MAX_STATEMENTS; i++)
        mr_buf_puts(&b, i ? ",{\"sql\":\"SELECT 1\"}" : "{\"sql\":\"SELECT 1\"}");
    mr_buf_puts(&b, "]}");
    assert_int_equal(parse(b.data, NULL, &r, err), MR_EINVAL);
    assert_non_null(strstr(err, "at most 128"));
    sql_req_free(&r);
    mr_buf_close(&b);
}

static void tokens_parse_strictly(void **state)
{
    int64_t rev;

    (void)state;
    assert_int_equal(node__parse_token("1.0", &rev), 0);
    assert_int_equal(rev, 0);
    assert_int_equal(node__parse_token("1.9223372036854775807", &rev), 0);
    assert_int_equal(node__parse_token("1.9223372036854775808", &rev), MR_EINVAL);
    assert_int_equal(node__parse_token("1.", &rev), MR_EINVAL);
    assert_int_equal(node__parse_token("1.-3", &rev), MR_EINVAL);
    assert_int_equal(node__parse_token("1.3x", &rev), MR_EINVAL);
    assert_int_equal(node__parse_token("0.3", &rev), MR_EINVAL);
    assert_int_equal(node__parse_token("", &rev), MR_EINVAL);
}

static void log_entry_decodes_into_a_batch(void **state)
{
    const char *entry =
        "{\"v\":1,\"id\":\"r.1.b0\",\"origin\":\"us-east-1\",\"ts\":1000,\"txns\":["
        "{\"id\":\"r.1.0\",\"key\":null,\"time\":5,\"seed\":\"18446744073709551615\","
        "\"stmts\":[{\"sql\":\"INSERT INTO t VALUES (?)\",\"params\":[1]},{\"sql\":\"SELECT 1\",\"params\":null}]},"
        "{\"id\":\"r.1.1\",\"key\":\"k\",\"time\":6,\"seed\":\"7\",\"stmts\":[{\"sql\":\"DELETE FROM t\",\"params\":{}}]}]}";
    struct decoded d;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(node__decode_batch(entry, strlen(entry), &d, err), 0);
    assert_string_equal(d.batch.id, "r.1.b0");
    assert_string_equal(d.batch.origin, "us-east-1");
    assert_int_equal(d.batch.ts_ms, 1000);
    assert_int_equal(d.batch.n_txns, 2);
    assert_int_equal(d.batch.txns[0].n_stmts, 2);
    assert_true(d.batch.txns[0].seed == UINT64_MAX);
    assert_null(d.batch.txns[0].idem_key);
    assert_null(d.batch.txns[0].stmts[1].params);
    assert_string_equal(d.batch.txns[1].idem_key, "k");
    assert_int_equal(d.batch.txns[1].time_ms, 6);
    assert_string_equal(d.batch.txns[1].stmts[0].sql, "DELETE FROM t");
    node__decoded_free(&d);
}

static void malformed_log_entries_are_corrupt(void **state)
{
    static const char *cases[] = {
        "not json",
        "{\"v\":2,\"id\":\"x\",\"origin\":\"o\",\"ts\":1,\"txns\":[]}",
        "{\"v\":1,\"origin\":\"o\",\"ts\":1,\"txns\":[]}",
        "{\"v\":1,\"id\":\"x\",\"origin\":\"o\",\"ts\":1,\"txns\":[{\"id\":\"t\",\"time\":1,\"seed\":\"1\",\"stmts\":[]}]}",
        "{\"v\":1,\"id\":\"x\",\"origin\":\"o\",\"ts\":1,\"txns\":[{\"id\":\"t\",\"time\":1,\"stmts\":[{\"sql\":\"x\"}]}]}",
        "{\"v\":1,\"id\":\"x\",\"origin\":\"o\",\"ts\":1,\"txns\":[{\"id\":\"t\",\"time\":1,\"seed\":\"1\",\"stmts\":[{\"sql\":3}]}]}",
    };
    char err[MR_ERRMSG_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct decoded d;
        assert_int_equal(node__decode_batch(cases[i], strlen(cases[i]), &d, err), MR_ECORRUPT);
        node__decoded_free(&d);
    }
}

/* Every default of the node's option table parses within its own bounds
 * (mr_cfg_defaults cannot report an error: the table is checked here). */
static void node_config_defaults_are_valid(void **state)
{
    struct node_cfg cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    for (size_t i = 0; i < node_cfg_n_opts; i++) {
        const struct mr_cfg_opt *o = &node_cfg_opts[i];
        if (o->def == NULL)
            continue;
        if (mr_cfg_set(node_cfg_opts, node_cfg_n_opts, &cfg, "default", o->section, o->name, o->def,
                       err) != 0)
            fail_msg("%s", err);
    }
    mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_with_all_fields_parses),
        cmocka_unit_test(token_makes_session_the_default_and_header_works),
        cmocka_unit_test(malformed_requests_name_the_problem),
        cmocka_unit_test(too_many_statements_are_refused),
        cmocka_unit_test(tokens_parse_strictly),
        cmocka_unit_test(log_entry_decodes_into_a_batch),
        cmocka_unit_test(malformed_log_entries_are_corrupt),
        cmocka_unit_test(node_config_defaults_are_valid),
    };
    return cmocka_run_group_tests_name("node_parsers", tests, NULL, NULL);
}
