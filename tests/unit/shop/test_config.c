/* Unit tests of src/shop/config.c: the option table and the checks it
 * cannot express. */
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
#include "shop/shop.h"

static int load(const char *text, struct shop_config *cfg, char *err)
{
    char path[] = "/tmp/shop-cfg-XXXXXX";
    int fd = mkstemp(path), rc;
    FILE *f = fdopen(fd, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    memset(cfg, 0, sizeof(*cfg));
    rc = mr_cfg_load(path, shop_cfg_opts, shop_cfg_n_opts, cfg, err);
    if (rc == 0)
        rc = mr_cfg_check_required(shop_cfg_opts, shop_cfg_n_opts, cfg, path, err);
    if (rc == 0)
        rc = shop_config_check(cfg, err);
    unlink(path);
    return rc;
}

static void a_minimal_file_gets_the_documented_defaults(void **state)
{
    struct shop_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(load("[shop]\nnode = http://127.0.0.1:7001\nregion = eu-west-1\n", &cfg, err), 0);
    assert_string_equal(cfg.session_cookie, "mr_sid");
    assert_string_equal(cfg.token_cookie, "mr_token");
    assert_int_equal(cfg.max_lines, 50);
    assert_int_equal(cfg.max_qty, 99);
    assert_int_equal(cfg.max_body, 16 * 1024);
    assert_int_equal(cfg.session_ttl_ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(cfg.faults_enabled, 0);
    assert_string_equal(cfg.faults_token, "none");
    assert_int_equal(cfg.faults_hold_ms, 60000);
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
}

static void bad_values_are_refused_with_the_key_named(void **state)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[shop]\nnode = ftp://x\nregion = r\n", "'node'"},
        {"[shop]\nnode = http://127.0.0.1:1\n", "'region'"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[limits]\nmax_lines = 500\n", "max_lines"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[session]\ncookie = a b\n", "cookie"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[session]\ncookie = same\ntoken_cookie = same\n", "cookie"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\nlog_level = loud\n", "log_level"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\nlisten = nowhere\n", "listen"},
        /* fault injection needs the cluster's tokens; [faults] token is gone (decision 030) */
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[faults]\nenabled = true\n",
         "[faults] enabled = true but [auth] has no token"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[faults]\nenabled = true\ntoken = none\n",
         "[faults] enabled = true but [auth] has no token"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[faults]\nenabled = true\n"
         "token = 0123456789abcdef0123456789abcdef\n[auth]\ntoken = ops admin 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
         "key 'token' in [faults] was removed"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[auth]\ntoken = ops admin 0123\n",
         "token 'ops': expected the SHA-256"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[auth]\ntoken = ops wizard 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
         "unknown scope 'wizard'"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[faults]\nenabled = maybe\n", "enabled"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[faults]\nhold = 5ms\n", "hold"},
        /* [tls]: all three or none, readable, and an https:// node needs them */
        {"[shop]\nnode = https://127.0.0.1:1\nregion = r\n", "'node' in [shop] is https://"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[tls]\nca_file = /dev/null\n",
         "key 'cert_file' in [tls] is missing"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[tls]\nca_file = /dev/null\n"
         "cert_file = /dev/null\n", "key 'key_file' in [tls] is missing"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[tls]\nca_file = /dev/null\n"
         "cert_file = /no/such.crt\nkey_file = /dev/null\n", "key 'cert_file' in [tls]: cannot read '/no/such.crt'"},
        {"[shop]\nnode = http://127.0.0.1:1\nregion = r\n[tls]\nkey_file = /dev/null\n",
         "key 'ca_file' in [tls] is missing"},
    };
    struct shop_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(cases[i].text, &cfg, err), MR_ECONFIG);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' does not name %s", i, err, cases[i].needle);
        mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
    }
}

static void faults_enabled_with_an_auth_token_loads(void **state)
{
    struct shop_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(load("[shop]\nnode = http://127.0.0.1:7001\nregion = r\n[faults]\nenabled = true\n"
                          "hold = 5s\n[auth]\ntoken = ops admin 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
                          &cfg, err),
                     0);
    assert_int_equal(cfg.faults_enabled, 1);
    assert_int_equal(cfg.auth_tokens.n, 1);
    assert_non_null(strstr(cfg.auth_tokens.where[0], ":8"));   /* file:line, for messages */
    assert_int_equal(cfg.faults_hold_ms, 5000);
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
}

static void tls_with_an_https_node_loads(void **state)
{
    struct shop_config cfg;
    char err[MR_ERRMSG_LEN];

    (void)state;
    assert_int_equal(load("[shop]\nnode = https://127.0.0.1:7001\nregion = r\n[tls]\n"
                          "ca_file = /dev/null\ncert_file = /dev/null\nkey_file = /dev/null\n",
                          &cfg, err), 0);
    assert_string_equal(cfg.tls_ca_file, "/dev/null");
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
    /* Without [tls] the keys are unset (NULL): plain HTTP. */
    assert_int_equal(load("[shop]\nnode = http://127.0.0.1:7001\nregion = r\n", &cfg, err), 0);
    assert_null(cfg.tls_ca_file);
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_minimal_file_gets_the_documented_defaults),
        cmocka_unit_test(faults_enabled_with_an_auth_token_loads),
        cmocka_unit_test(tls_with_an_https_node_loads),
        cmocka_unit_test(bad_values_are_refused_with_the_key_named),
    };
    return cmocka_run_group_tests_name("shop_config", tests, NULL, NULL);
}
