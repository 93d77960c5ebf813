/* A topology with distance: the default three regions with their latencies
 * scaled down (0.1: round trips of 7, 21.5 and 16.5 ms), every cross-region
 * byte through `meridian wan`.  It comes up, keeps committing writes while
 * one region is partitioned, heals and converges, and goes down leaving no
 * process or file behind (cluster_stop checks both). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"
#include "lib/wait.h"
#include "lib/writeload.h"

static struct cluster *C;

static int setup(void **state)
{
    (void)state;
    cluster_latency_scale = "0.1";
    if (cluster_start(NULL, &C) != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url, WL_TABLE);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static json_t *topology_json(void)
{
    char path[4096];
    json_error_t jerr;
    json_t *root;

    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return root;
}

/* GET the wan's /links; the body as JSON. */
static json_t *wan_links(const char *control_url)
{
    struct api_reply r;
    json_t *doc;

    assert_int_equal(api_get(control_url, "/links", &r), 0);
    assert_int_equal(r.status, 200);
    doc = json_incref(r.body);
    api_reply_close(&r);
    assert_non_null(doc);
    return doc;
}

static void topology_json_describes_links_wan_and_sites(void **state)
{
    json_t *root = topology_json(), *links, *l, *wan, *sites, *site, *doc;
    const char *url;
    size_t i;
    int found = 0;

    (void)state;
    links = json_object_get(root, "links");
    assert_int_equal(json_array_size(links), 6);
    json_array_foreach(links, i, l) {
        if (strcmp(json_string_value(json_object_get(l, "name")), "us-east-1->ap-southeast-1"))
            continue;
        found = 1;
        assert_true(json_real_value(json_object_get(l, "latency_ms")) > 10.7 &&
                    json_real_value(json_object_get(l, "latency_ms")) < 10.8);
    }
    assert_true(found);
    wan = json_object_get(root, "wan");
    url = json_string_value(json_object_get(wan, "control_url"));
    assert_non_null(url);
    assert_true(json_integer_value(json_object_get(wan, "pid")) > 0);
    sites = json_object_get(root, "sites");
    assert_int_equal(json_array_size(sites), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sites, 0), "name")),
                        "New York");

    /* Every site reaches every region's node over its own link: one request
     * each, and Singapore to us-east-1 (110 ms x 0.1 each way) takes at
     * least the round trip. */
    json_array_foreach(sites, i, site) {
        json_t *urls = json_object_get(site, "node_urls"), *u;
        const char *region;
        assert_int_equal(json_object_size(urls), 3);
        assert_int_equal(json_object_size(json_object_get(site, "wan_links")), 3);
        json_object_foreach(urls, region, u) {
            struct api_reply r;
            int64_t t0 = mr_mono_us();
            assert_int_equal(api_get(json_string_value(u), "/readyz", &r), 0);
            assert_int_equal(r.status, 200);
            api_reply_close(&r);
            if (strcmp(json_string_value(json_object_get(site, "name")), "Singapore") == 0 &&
                strcmp(region, "us-east-1") == 0)
                assert_true(mr_mono_us() - t0 >= 22000);
        }
    }
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            json_array_get(sites, 2), "wan_links"), "us-east-1")),
                        "site.Singapore->us-east-1");

    /* every etcd peer connection was attributed to its region; every link,
     * the 6 between regions and the 9 of the sites, carried something */
    doc = wan_links(url);
    assert_int_equal(json_integer_value(json_object_get(doc, "unidentified_connections")), 0);
    /* A region no link touches is a 404 that names it, not a cut of nothing. */
    {
        struct api_reply r;
        const char *msg;
        assert_int_equal(api_post_json(url, "/regions/eu-wset-1/cut", "{}", &r), 0);
        assert_int_equal(r.status, 404);
        msg = json_string_value(json_object_get(json_object_get(r.body, "error"), "message"));
        assert_non_null(msg);
        assert_non_null(strstr(msg, "eu-wset-1"));
        api_reply_close(&r);
    }
    assert_int_equal(json_array_size(json_object_get(doc, "links")), 6 + 9);
    json_array_foreach(json_object_get(doc, "links"), i, l)
        assert_true(json_integer_value(json_object_get(l, "connections")) > 0);
    json_decref(doc);
    json_decref(root);
}

/* Every link from or to <region> (site links included) is in state <state>,
 * and the others are up. */
static void assert_region_links(const char *region, const char *state)
{
    json_t *root = topology_json(), *doc, *l;
    size_t i, n = 0;

    doc = wan_links(json_string_value(json_object_get(json_object_get(root, "wan"), "control_url")));
    json_array_foreach(json_object_get(doc, "links"), i, l) {
        int touches = strcmp(json_string_value(json_object_get(l, "from")), region) == 0 ||
                      strcmp(json_string_value(json_object_get(l, "to")), region) == 0;
        assert_string_equal(json_string_value(json_object_get(l, "state")), touches ? state : "up");
        n += touches;
    }
    assert_int_equal(n, 2 * 2 + 3); /* to and from the 2 other regions, from the 3 sites */
    json_decref(doc);
    json_decref(root);
}

static void writes_continue_while_a_region_is_partitioned_then_converge(void **state)
{
    struct cluster_region *leader;
    struct writeload *w;
    int64_t cut_at;

    (void)state;
    w = wl_new(C, 1, (uint64_t)test_timeout_ms(12000), 0);
    assert_int_equal(wl_start(w), 0);
    assert_int_equal(wl_wait_acks(w, 0, 50, 20000), 0);

    /* The hard case: the region holding the etcd leader goes away. */
    leader = api_etcd_leader(C);
    assert_non_null(leader);
    fprintf(stderr, "partitioning %s (etcd leader)\n", leader->name);
    assert_int_equal(cluster_region_action(C, leader->name, "partition", NULL), 0);
    cut_at = mr_mono_us();
    assert_region_links(leader->name, "blackhole");

    /* The two other regions elect a leader and keep committing. */
    assert_int_equal(wl_wait_acks(w, cut_at, 100, 30000), 0);

    assert_int_equal(cluster_region_action(C, leader->name, "heal", NULL), 0);
    assert_region_links(leader->name, "up");
    wl_join(w);
    fprintf(stderr, "writes: %llu acknowledged, %llu failed (%s)\n",
            (unsigned long long)w->res.all.ok, (unsigned long long)w->res.all.failed,
            w->res.first_error);
    assert_true(sqlt_identical(C, 30000));
    assert_int_equal(wl_check(w), 0);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topology_json_describes_links_wan_and_sites),
        cmocka_unit_test(writes_continue_while_a_region_is_partitioned_then_converge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
