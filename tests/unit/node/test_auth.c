/* Unit tests of the node's authorization rules (src/node/auth.c): what each
 * route needs, DDL detection, and [auth] config errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/auth.h"
#include "common/err.h"
#include "node/node.h"
#include "node/node_int.h"

static unsigned need(const char *method, const char *path)
{
    struct http_request hr;

    memset(&hr, 0, sizeof(hr));
    hr.method = method;
    hr.path = path;
    hr.query = "";
    return node__auth_need(&hr);
}

static void routes_need_their_scope(void **state)
{
    (void)state;
    assert_int_equal(need("POST", "/v1/sql"), MR_AUTH_READ);
    assert_int_equal(need("GET", "/v1/tables"), MR_AUTH_READ);
    assert_int_equal(need("GET", "/v1/tables/carts/items/k"), MR_AUTH_READ);
    assert_int_equal(need("HEAD", "/v1/tables/carts"), MR_AUTH_READ);
    assert_int_equal(need("PUT", "/v1/tables/carts"), MR_AUTH_ADMIN);
    assert_int_equal(need("PUT", "/v1/tables/carts/items/k"), MR_AUTH_WRITE);
    assert_int_equal(need("DELETE", "/v1/tables/carts/items/k"), MR_AUTH_WRITE);
    assert_int_equal(need("POST", "/v1/tables/carts/items/k/ops"), MR_AUTH_WRITE);
    assert_int_equal(need("PUT", "/v1/tables/carts/"), MR_AUTH_WRITE);   /* 404 later, still closed */
    assert_int_equal(need("POST", "/v1/tables/_replicate"), MR_AUTH_PEER);
    assert_int_equal(need("GET", "/v1/tables/_snapshot"), MR_AUTH_PEER);
    assert_int_equal(need("GET", "/v1/tables/_peers"), MR_AUTH_ADMIN);
    assert_int_equal(need("POST", "/v1/tables/_peers/eu-west-1/pause"), MR_AUTH_ADMIN);
    /* not the same segment: an ordinary (invalid) table name */
    assert_int_equal(need("POST", "/v1/tables/_replicatex"), MR_AUTH_WRITE);
    assert_int_equal(need("GET", "/v1/snapshot"), MR_AUTH_PEER);
    assert_int_equal(need("GET", "/v1/digest"), MR_AUTH_READ);
    assert_int_equal(need("GET", "/v1/tablesx"), 0);
    assert_int_equal(need("GET", "/healthz"), 0);
    assert_int_equal(need("GET", "/readyz"), 0);
    assert_int_equal(need("GET", "/metrics"), MR_AUTH_READ);
    assert_int_equal(need("GET", "/v1/status"), NODE_AUTH_READ_OR_PEER);
    assert_int_equal(need("GET", "/v1/dashboard"), NODE_AUTH_DASHBOARD);
    assert_int_equal(need("GET", "/dashboard"), NODE_AUTH_DASHBOARD);
}

static void ddl_is_found_by_its_first_keyword(void **state)
{
    (void)state;
    assert_true(node__sql_is_ddl("CREATE TABLE t(a)"));
    assert_true(node__sql_is_ddl("  create index i on t(a)"));
    assert_true(node__sql_is_ddl("-- comment\n/* block */ DROP TABLE t"));
    assert_true(node__sql_is_ddl("Alter table t add column b"));
    assert_true(node__sql_is_ddl("VACUUM"));
    assert_true(node__sql_is_ddl("REINDEX"));
    assert_true(node__sql_is_ddl("ANALYZE"));
    assert_false(node__sql_is_ddl("SELECT 'CREATE TABLE'"));
    assert_false(node__sql_is_ddl("INSERT INTO created(a) VALUES (1)"));
    assert_false(node__sql_is_ddl("CREATED"));
    assert_false(node__sql_is_ddl("/* unterminated CREATE"));
    assert_false(node__sql_is_ddl(""));
}

static void auth_config_errors_name_the_line(void **state)
{
    struct node_cfg cfg;
    char *values[1] = {"shop write 1234"}, *where[1] = {"node.ini:9"};
    char err[MR_ERRMSG_LEN];
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    cfg.auth_required = "auto";
    cfg.auth_peer_token = "none";
    assert_int_equal(node_check_auth_config(&cfg, err), 0);
    cfg.auth_peer_token = "two words";
    assert_int_equal(node_check_auth_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "peer_token"));
    cfg.auth_peer_token = "mrt_x";
    assert_int_equal(node_check_auth_config(&cfg, err), 0);
    cfg.auth_required = "yes";
    assert_int_equal(node_check_auth_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "required = yes but no token"));
    cfg.auth_required = "maybe";
    assert_int_equal(node_check_auth_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "expected auto, yes or no"));
    cfg.auth_required = "auto";
    cfg.auth_tokens.n = 1;
    cfg.auth_tokens.values = values;
    cfg.auth_tokens.where = where;
    assert_int_equal(node_check_auth_config(&cfg, err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:9: token 'shop'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_need_their_scope),
        cmocka_unit_test(ddl_is_found_by_its_first_keyword),
        cmocka_unit_test(auth_config_errors_name_the_line),
    };
    return cmocka_run_group_tests_name("node_auth", tests, NULL, NULL);
}
