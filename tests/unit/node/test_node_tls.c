/* Unit tests of the node's [tls] rules (src/node/node_tls.c): the three
 * keys together, URL schemes that agree with [tls], files read and named.
 * The running node is tested in tests/integration/test_node_tls.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"
#include "common/err.h"
#include "node/node.h"
#include "node/node_int.h"
#include "tls/tls.h"

struct fixture {
    char dir[64];
    struct node_cfg cfg;
};

static void set(struct node_cfg *cfg, const char *section, const char *key, const char *value)
{
    char err[MR_ERRMSG_LEN];

    if (mr_cfg_set(node_cfg_opts, node_cfg_n_opts, cfg, "t", section, key, value, err) != 0)
        fail_msg("%s.%s: %s", section, key, err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[MR_ERRMSG_LEN], ca[128];

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-node-tls-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(ca, sizeof(ca), "%s/ca", f->dir);
    if (tls_cert_make_ca(ca, "c", 30, err) != 0 ||
        tls_cert_issue(ca, "n", "127.0.0.1", -60, 3600, f->dir, err) != 0) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    mr_cfg_defaults(node_cfg_opts, node_cfg_n_opts, &f->cfg);
    set(&f->cfg, "node", "etcd", "http://127.0.0.1:2379");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    int rc;

    mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void set_tls(struct fixture *f, const char *key_name)
{
    char p[128];

    snprintf(p, sizeof(p), "%s/ca/ca.crt", f->dir);
    set(&f->cfg, "tls", "ca_file", p);
    snprintf(p, sizeof(p), "%s/n.crt", f->dir);
    set(&f->cfg, "tls", "cert_file", p);
    snprintf(p, sizeof(p), "%s/%s", f->dir, key_name);
    set(&f->cfg, "tls", "key_file", p);
}

static void expect(struct fixture *f, int load, int rc, const char *msg)
{
    char err[MR_ERRMSG_LEN] = "";

    if (node__tls_check_config(&f->cfg, load, err) != rc || (msg && strstr(err, msg) == NULL))
        fail_msg("expected %d with '%s', got '%s'", rc, msg ? msg : "", err);
}

static void without_tls_https_is_refused(void **state)
{
    struct fixture *f = *state;

    expect(f, 1, 0, NULL);
    assert_false(node__tls_configured(&f->cfg));
    set(&f->cfg, "node", "etcd", "https://127.0.0.1:2379");
    expect(f, 1, MR_ECONFIG, "key 'etcd' in [node]: https:// endpoints need [tls]");
    set(&f->cfg, "node", "etcd", "http://127.0.0.1:2379, https://127.0.0.1:2380");
    expect(f, 1, MR_ECONFIG, "mix");
    set(&f->cfg, "node", "etcd", "http://127.0.0.1:2379");
    set(&f->cfg, "tables", "peers", "eu-west-1=https://10.0.0.1:8080");
    expect(f, 1, MR_ECONFIG, "[tables] peers: eu-west-1=https://10.0.0.1:8080 must start with http://");
    set(&f->cfg, "tables", "peers", "none");
    set(&f->cfg, "node", "advertise_url", "https://10.0.0.1:8080");
    expect(f, 1, MR_ECONFIG, "key 'advertise_url'");
    set(&f->cfg, "node", "advertise_url", "auto");
    set(&f->cfg, "dashboard", "wan", "https://127.0.0.1:9000");
    expect(f, 1, MR_ECONFIG, "key 'wan' in [dashboard]");
    set(&f->cfg, "dashboard", "wan", "none");
    set(&f->cfg, "dashboard", "edges", "e1=https://127.0.0.1:9000");
    expect(f, 1, MR_ECONFIG, "[dashboard] edges: e1=");
    set(&f->cfg, "dashboard", "edges", "none");
}

static void tls_keys_go_together_and_files_are_named(void **state)
{
    struct fixture *f = *state;

    set(&f->cfg, "tls", "ca_file", "/x/ca.crt");
    expect(f, 0, MR_ECONFIG, "key 'cert_file' in [tls] is missing");
    set(&f->cfg, "tls", "cert_file", "/x/n.crt");
    expect(f, 0, MR_ECONFIG, "key 'key_file' in [tls] is missing");
    set_tls(f, "missing.key");
    assert_true(node__tls_configured(&f->cfg));
    expect(f, 0, 0, NULL);   /* not read */
    expect(f, 1, MR_ECONFIG, "missing.key");
    set_tls(f, "n.key");
    expect(f, 1, 0, NULL);
}

static void with_tls_node_urls_are_https(void **state)
{
    struct fixture *f = *state;

    set_tls(f, "n.key");
    set(&f->cfg, "tables", "peers", "eu-west-1=http://10.0.0.1:8080");
    expect(f, 1, MR_ECONFIG, "must start with https://");
    set(&f->cfg, "tables", "peers", "eu-west-1=https://10.0.0.1:8080,ap-south-1=https://10.0.0.2:8080");
    expect(f, 1, 0, NULL);
    set(&f->cfg, "node", "advertise_url", "http://10.0.0.3:8080");
    expect(f, 1, MR_ECONFIG, "must start with https://");
    set(&f->cfg, "node", "advertise_url", "https://10.0.0.3:8080");
    set(&f->cfg, "node", "etcd", "https://127.0.0.1:2379,https://127.0.0.1:2380");
    /* The wan and the edges say what they speak: plain stays allowed. */
    set(&f->cfg, "dashboard", "wan", "http://127.0.0.1:9000");
    set(&f->cfg, "dashboard", "edges", "e1=http://127.0.0.1:9001,e2=https://127.0.0.1:9002");
    expect(f, 1, 0, NULL);
    /* node_check_config runs the same checks. */
    {
        char err[MR_ERRMSG_LEN];
        assert_int_equal(node_check_config(&f->cfg, err), 0);
        set(&f->cfg, "tables", "peers", "eu-west-1=http://10.0.0.1:8080");
        assert_int_equal(node_check_config(&f->cfg, err), MR_ECONFIG);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(without_tls_https_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_keys_go_together_and_files_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(with_tls_node_urls_are_https, setup, teardown),
    };
    return cmocka_run_group_tests_name("node_tls", tests, NULL, NULL);
}
