/* Hostile certificates against a real `meridian up` topology with
 * [topology] tls = yes and auth = yes (decision 021): two regions, each
 * with its etcd member, node and shop, every link mutual TLS with the run's
 * throw-away CA (RUNDIR/tls).
 *
 * A certificate from another CA and an expired one are refused by the node
 * and the shop (which stay alive; the node counts each refusal in
 * meridian_tls_refused_total); without a certificate the node still needs a
 * bearer token (401 without) and the shop refuses; etcd refuses a client
 * without a certificate; and the global tables replicate node to node over
 * TLS through the wan.  With edge_tls the site's edge serves https:// to
 * clients without a certificate (shoppers), and nothing in plain HTTP.
 *
 * http_fetch has one process-wide client context: each case sets the one it
 * tries (as_client) and puts the cluster's admin one back (cluster.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"
#include "tls/tls.h"

static struct cluster *C;
static char SHOP_URL[2][128];
static char EDGE_URL[128];
static char CERTS[64];            /* this test's own certificates */
static struct tls_ctx *FOREIGN, *EXPIRED, *ANONYMOUS;

static const char topology[] =
    "[topology]\nname = tls\ntls = yes\nauth = yes\nedge_tls = yes\n\n"
    "[region us-east-1]\n\n[region eu-west-1]\n\n"
    "[latency]\nus-east-1 eu-west-1 = 5ms\n\n"
    "[site Home]\nus-east-1 = 1ms\neu-west-1 = 5ms\n";

static int client_ctx(const char *ca, const char *crt, const char *key, struct tls_ctx **out)
{
    struct tls_opts o;
    char err[MR_ERRMSG_LEN];

    memset(&o, 0, sizeof(o));
    o.ca_file = ca;
    o.cert_file = crt;
    o.key_file = key;
    if (tls_ctx_new(&o, 0, out, err) != 0) {
        fprintf(stderr, "client context: %s\n", err);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    char err[MR_ERRMSG_LEN], path[4300], runtls[4200], crt[128], key[128], foreign[128];
    json_t *root;

    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    if (cluster_tls == NULL || strncmp(C->regions[0].node_url, "https://", 8) != 0) {
        fprintf(stderr, "topology.json: expected https:// nodes and auth.ca_file\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    root = json_load_file(path, 0, NULL);
    for (size_t i = 0; i < 2; i++)
        snprintf(SHOP_URL[i], sizeof(SHOP_URL[i]), "%s",
                 json_string_value(json_object_get(
                     json_object_get(json_array_get(json_object_get(root, "regions"), i), "shop"),
                     "url")));
    snprintf(EDGE_URL, sizeof(EDGE_URL), "%s",
             json_string_value(json_object_get(
                 json_object_get(json_array_get(json_object_get(root, "sites"), 0), "edge"), "url")));
    json_decref(root);
    if (strncmp(SHOP_URL[0], "https://", 8) != 0 || strncmp(EDGE_URL, "https://", 8) != 0)
        return -1;

    snprintf(CERTS, sizeof(CERTS), "/tmp/mr-tls-topo-XXXXXX");
    if (mkdtemp(CERTS) == NULL)
        return -1;
    /* Another cluster's CA and a certificate of it, for the right host. */
    snprintf(foreign, sizeof(foreign), "%s/foreign", CERTS);
    snprintf(runtls, sizeof(runtls), "%s/tls", C->rundir);
    if (tls_cert_make_ca(foreign, "another-cluster", 1, err) != 0 ||
        tls_cert_issue(foreign, "intruder", "127.0.0.1,localhost", -60, 3600, CERTS, err) != 0 ||
        /* This run's CA, but valid from two days ago to yesterday. */
        tls_cert_issue(runtls, "expired", "127.0.0.1,localhost", -2 * 86400, -86400, CERTS, err) != 0) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    snprintf(crt, sizeof(crt), "%s/intruder.crt", CERTS);
    snprintf(key, sizeof(key), "%s/intruder.key", CERTS);
    if (client_ctx(cluster_tls_ca, crt, key, &FOREIGN) != 0)
        return -1;
    snprintf(crt, sizeof(crt), "%s/expired.crt", CERTS);
    snprintf(key, sizeof(key), "%s/expired.key", CERTS);
    if (client_ctx(cluster_tls_ca, crt, key, &EXPIRED) != 0 ||
        client_ctx(cluster_tls_ca, NULL, NULL, &ANONYMOUS) != 0)
        return -1;
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    (void)state;
    http_fetch_set_tls(cluster_tls);
    tls_ctx_free(FOREIGN);
    tls_ctx_free(EXPIRED);
    tls_ctx_free(ANONYMOUS);
    if (CERTS[0])
        nftw(CERTS, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return cluster_stop(C);
}

/* GET <url> with client context <t> (NULL: the cluster's admin one) and
 * <token> ("" for none): the HTTP status, or the negative MR_E* code when no
 * answer came (a refused handshake). */
static int status_as(struct tls_ctx *t, const char *token, const char *method, const char *url,
                     const char *body)
{
    char err[MR_ERRMSG_LEN], headers[400] = "";
    struct http_result res;
    int rc;

    if (token[0])
        snprintf(headers, sizeof(headers), "Authorization: Bearer %.300s\r\n", token);
    if (body)
        strcat(headers, "Content-Type: application/json\r\n");
    http_fetch_set_tls(t ? t : cluster_tls);
    rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0,
                    (uint64_t)test_timeout_ms(5000), &res, err);
    http_fetch_set_tls(cluster_tls);
    if (rc != 0)
        return rc;
    rc = res.status;
    http_result_close(&res);
    return rc;
}

/* The node's meridian_tls_refused_total. */
static long long node_refused(const char *node)
{
    struct api_reply r;
    long long n = -1;
    const char *p;

    if (api_get(node, "/metrics", &r) == 0 && r.status == 200 &&
        (p = strstr(r.text, "\nmeridian_tls_refused_total ")) != NULL)
        n = atoll(p + strlen("\nmeridian_tls_refused_total "));
    api_reply_close(&r);
    return n;
}

static void url_of(char *out, size_t n, const char *base, const char *path)
{
    snprintf(out, n, "%s%s", base, path);
}

static void foreign_and_expired_certificates_are_refused_by_node_and_shop(void **state)
{
    const char *node = C->regions[0].node_url;
    char url[256];
    long long before = node_refused(node);

    (void)state;
    assert_true(before >= 0);
    url_of(url, sizeof(url), node, "/readyz");
    assert_true(status_as(FOREIGN, "", "GET", url, NULL) < 0);
    assert_true(status_as(EXPIRED, "", "GET", url, NULL) < 0);
    /* Even with a valid admin token: the handshake comes first. */
    url_of(url, sizeof(url), node, "/v1/sql");
    assert_true(status_as(FOREIGN, cluster_auth_token, "POST", url,
                          "{\"statements\":[{\"sql\":\"SELECT 1\"}]}") < 0);
    url_of(url, sizeof(url), SHOP_URL[0], "/readyz");
    assert_true(status_as(FOREIGN, "", "GET", url, NULL) < 0);
    assert_true(status_as(EXPIRED, "", "GET", url, NULL) < 0);

    /* Everyone is still alive and serves the cluster's own certificate;
     * the node counted the three refusals. */
    assert_int_equal(status_as(NULL, "", "GET", url, NULL), 200);
    url_of(url, sizeof(url), node, "/readyz");
    assert_int_equal(status_as(NULL, "", "GET", url, NULL), 200);
    assert_true(node_refused(node) >= before + 3);
    assert_true(cluster_pid_alive(C->regions[0].node.pid));
}

static void without_a_certificate_the_node_wants_a_token_and_the_shop_refuses(void **state)
{
    const char *sql = "{\"statements\":[{\"sql\":\"SELECT 1\"}]}";
    char url[256];

    (void)state;
    url_of(url, sizeof(url), C->regions[0].node_url, "/v1/sql");
    assert_int_equal(status_as(ANONYMOUS, "", "POST", url, sql), 401);
    assert_int_equal(status_as(ANONYMOUS, cluster_auth_token, "POST", url, sql), 200);
    /* The admin certificate alone is a member of the cluster: every scope. */
    assert_int_equal(status_as(NULL, "", "POST", url, sql), 200);
    url_of(url, sizeof(url), SHOP_URL[1], "/readyz");
    assert_true(status_as(ANONYMOUS, "", "GET", url, NULL) < 0);
}

static void etcd_refuses_a_client_without_a_certificate(void **state)
{
    char url[256];

    (void)state;
    url_of(url, sizeof(url), C->regions[0].etcd_url, "/v3/maintenance/status");
    assert_int_equal(strncmp(url, "https://", 8), 0);
    assert_true(status_as(ANONYMOUS, "", "POST", url, "{}") < 0);
    assert_true(status_as(FOREIGN, "", "POST", url, "{}") < 0);
    assert_int_equal(status_as(NULL, "", "POST", url, "{}"), 200);
}

static int item_in_eu(void *arg)
{
    char url[256];

    (void)arg;
    url_of(url, sizeof(url), C->regions[1].node_url, "/v1/tables/tlskv/items/k1");
    return status_as(NULL, "", "GET", url, NULL) == 200;
}

static void global_tables_replicate_node_to_node_over_tls(void **state)
{
    char url[256];

    (void)state;
    url_of(url, sizeof(url), C->regions[0].node_url, "/v1/tables/tlskv");
    assert_int_equal(status_as(NULL, "", "PUT", url, "{\"kind\":\"lww\"}"), 201);
    url_of(url, sizeof(url), C->regions[0].node_url, "/v1/tables/tlskv/items/k1");
    assert_int_equal(status_as(NULL, "", "PUT", url, "{\"v\":1}"), 200);
    assert_int_equal(wait_for_named(item_in_eu, NULL, 20000,
                                    "k1 written in us-east-1 readable in eu-west-1"), 0);
}

static void edge_tls_serves_shoppers_https_without_a_client_certificate(void **state)
{
    char url[256];

    (void)state;
    /* A shopper trusts the run's CA (a browser would be told to) and shows
     * no certificate; the edge reaches the shops with its own. */
    url_of(url, sizeof(url), EDGE_URL, "/readyz");
    assert_int_equal(status_as(ANONYMOUS, "", "GET", url, NULL), 200);
    url_of(url, sizeof(url), EDGE_URL, "/api/products");
    assert_int_equal(status_as(ANONYMOUS, "", "GET", url, NULL), 200);
    /* Plain HTTP to the same port is refused at the handshake. */
    snprintf(url, sizeof(url), "http://%s/readyz", EDGE_URL + strlen("https://"));
    assert_true(status_as(ANONYMOUS, "", "GET", url, NULL) != 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(foreign_and_expired_certificates_are_refused_by_node_and_shop),
        cmocka_unit_test(without_a_certificate_the_node_wants_a_token_and_the_shop_refuses),
        cmocka_unit_test(etcd_refuses_a_client_without_a_certificate),
        cmocka_unit_test(global_tables_replicate_node_to_node_over_tls),
        cmocka_unit_test(edge_tls_serves_shoppers_https_without_a_client_certificate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
