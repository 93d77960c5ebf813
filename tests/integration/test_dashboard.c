/* The dashboard (docs/dashboard.md) on the default topology started by
 * `meridian up` (three regions, the wan, shops and an edge per site), at a
 * tenth of the real distances: every node serves GET /dashboard, a page
 * that fetches nothing from elsewhere, and GET /v1/dashboard, which lists
 * every region with its state and etcd role, the leader, lag series of both
 * data paths, the wan's links and the edges.  When a region is killed (every
 * process, SIGKILL), another region's dashboard shows it unreachable with an
 * event, and still renders; once restarted, it shows it back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;

static int setup(void **state)
{
    (void)state;
    cluster_latency_scale = "0.1";
    return cluster_start(NULL, &C);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static const char *url_of(const char *region)
{
    struct cluster_region *r = cluster_region(C, region);

    assert_non_null(r);
    return r->node_url;
}

static json_t *region_entry(json_t *doc, const char *name)
{
    json_t *r;
    size_t i;

    json_array_foreach(json_object_get(doc, "regions"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "name")) ?: "", name) == 0)
            return r;
    return NULL;
}

/* A series of <group> (the part before ':') with at least one value. */
static int has_series_with_values(json_t *doc, const char *group)
{
    json_t *s, *v;
    size_t i, k, gl = strlen(group);

    json_array_foreach(json_object_get(json_object_get(doc, "history"), "series"), i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (name == NULL || strncmp(name, group, gl) != 0 || name[gl] != ':')
            continue;
        json_array_foreach(json_object_get(s, "values"), k, v)
            if (json_is_number(v))
                return 1;
    }
    return 0;
}

static int has_event(json_t *doc, const char *kind, const char *subject)
{
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(doc, "events"), i, e)
        if (strcmp(json_string_value(json_object_get(e, "kind")) ?: "", kind) == 0 &&
            strcmp(json_string_value(json_object_get(e, "subject")) ?: "", subject) == 0)
            return 1;
    return 0;
}

/* GET /dashboard from <region>: the page, whole and self-contained. */
static void check_page(const char *region)
{
    char url[256], err[MR_ERRMSG_LEN];
    struct http_result res;
    const char *body;

    snprintf(url, sizeof(url), "%s/dashboard", url_of(region));
    assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, (uint64_t)test_timeout_ms(10000), &res,
                                err), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(strcasestr(res.headers.data, "Content-Type: text/html"));
    assert_non_null(strcasestr(res.headers.data, "Content-Security-Policy: default-src 'none'"));
    body = res.body.data;
    assert_non_null(strstr(body, "<script>"));
    assert_non_null(strstr(body, "</html>"));
    assert_non_null(strstr(body, "/v1/dashboard"));
    /* Nothing from the internet: no absolute URL anywhere, comments included. */
    assert_null(strstr(body, "http://"));
    assert_null(strstr(body, "https://"));
    assert_null(strstr(body, "src="));
    http_result_close(&res);
}

static void every_node_serves_a_self_contained_page(void **state)
{
    (void)state;
    for (size_t i = 0; i < C->n_regions; i++)
        check_page(C->regions[i].name);
}

struct topo_check {
    const char *from;
    char why[256];
};

/* us-east-1's view holds everything the page draws. */
static int whole_topology_listed(void *arg)
{
    struct topo_check *tc = arg;
    struct api_reply r;
    json_t *d, *reg, *l, *e;
    size_t i, leaders = 0, region_links = 0, edges_ok = 0;
    int ok = 0;

    if (api_get(url_of(tc->from), "/v1/dashboard", &r) != 0)
        return 0;
    d = r.body;
    snprintf(tc->why, sizeof(tc->why), "status %d", r.status);
    if (r.status != 200 || d == NULL)
        goto out;
    if (json_array_size(json_object_get(d, "regions")) != 3) {
        snprintf(tc->why, sizeof(tc->why), "%zu regions", json_array_size(json_object_get(d, "regions")));
        goto out;
    }
    json_array_foreach(json_object_get(d, "regions"), i, reg) {
        const char *role = json_string_value(json_object_get(reg, "etcd_role"));
        if (!json_is_true(json_object_get(reg, "reachable")) ||
            !json_is_true(json_object_get(reg, "ready"))) {
            snprintf(tc->why, sizeof(tc->why), "region %s not reachable and ready",
                     json_string_value(json_object_get(reg, "name")));
            goto out;
        }
        if (role && strcmp(role, "leader") == 0)
            leaders++;
        else if (role == NULL || strcmp(role, "follower") != 0)
            goto out;
    }
    if (leaders != 1 || !json_is_string(json_object_get(d, "etcd_leader")) ||
        strcmp(json_string_value(json_object_get(region_entry(d, json_string_value(json_object_get(
                   d, "etcd_leader"))), "etcd_role")) ?: "", "leader") != 0) {
        snprintf(tc->why, sizeof(tc->why), "%zu leaders", leaders);
        goto out;
    }
    if (!has_series_with_values(d, "sql_lag_ms") || !has_series_with_values(d, "tables_lag_ms") ||
        !has_series_with_values(d, "region_rps")) {
        snprintf(tc->why, sizeof(tc->why), "lag or rate series missing");
        goto out;
    }
    if (!json_is_true(json_object_get(json_object_get(d, "wan"), "reachable")))
        goto out;
    json_array_foreach(json_object_get(d, "links"), i, l) {
        if (region_entry(d, json_string_value(json_object_get(l, "from")) ?: "") &&
            region_entry(d, json_string_value(json_object_get(l, "to")) ?: "") &&
            json_is_number(json_object_get(l, "latency_ms")) &&
            strcmp(json_string_value(json_object_get(l, "state")) ?: "", "up") == 0)
            region_links++;
    }
    if (region_links != 6) {
        snprintf(tc->why, sizeof(tc->why), "%zu region links up", region_links);
        goto out;
    }
    json_array_foreach(json_object_get(d, "edges"), i, e)
        if (json_is_true(json_object_get(e, "reachable")) &&
            json_is_string(json_object_get(e, "routes_to")) &&
            json_array_size(json_object_get(e, "regions")) == 3)
            edges_ok++;
    if (edges_ok != 3) {
        snprintf(tc->why, sizeof(tc->why), "%zu edges reachable", edges_ok);
        goto out;
    }
    ok = 1;
out:
    api_reply_close(&r);
    return ok;
}

static void the_json_lists_regions_leader_lags_links_and_edges(void **state)
{
    struct topo_check tc = {"us-east-1", ""};
    struct api_reply r;

    (void)state;
    /* Traffic on both data paths: a SQL write from eu-west-1 and a global
     * table write from us-east-1, so that each path has a lag to show. */
    assert_int_equal(api_post_json(url_of("eu-west-1"), "/v1/sql",
                                   "{\"statements\":[{\"sql\":\"CREATE TABLE IF NOT EXISTS dash_t"
                                   "(id INTEGER PRIMARY KEY, v TEXT)\"},{\"sql\":\"INSERT INTO dash_t"
                                   "(v) VALUES ('x')\"}]}", &r), 0);
    assert_int_equal(r.status, 200);
    api_reply_close(&r);
    assert_int_equal(api_call("PUT", url_of("us-east-1"), "/v1/tables/dash_items", "{\"kind\":\"lww\"}",
                              &r), 0);
    assert_true(r.status == 200 || r.status == 201);
    api_reply_close(&r);
    assert_int_equal(api_call("PUT", url_of("us-east-1"), "/v1/tables/dash_items/items/k1",
                              "{\"v\":1}", &r), 0);
    assert_int_equal(r.status, 200);
    api_reply_close(&r);

    if (wait_for_named(whole_topology_listed, &tc, 30000, "us-east-1's dashboard lists all") != 0)
        fail_msg("us-east-1's /v1/dashboard incomplete: %s", tc.why);
}

struct region_state {
    const char *from, *region, *event;
    int reachable;
};

static int region_seen(void *arg)
{
    struct region_state *rs = arg;
    struct api_reply r;
    json_t *reg;
    int ok = 0;

    if (api_get(url_of(rs->from), "/v1/dashboard", &r) != 0)
        return 0;
    if (r.status == 200 && r.body && (reg = region_entry(r.body, rs->region)) != NULL) {
        const char *role = json_string_value(json_object_get(reg, "etcd_role")) ?: "";
        ok = json_is_true(json_object_get(reg, "reachable")) == rs->reachable &&
             (rs->reachable ? strcmp(role, "unreachable") != 0 : strcmp(role, "unreachable") == 0) &&
             has_event(r.body, rs->event, rs->region);
    }
    api_reply_close(&r);
    return ok;
}

static void a_killed_region_is_unreachable_and_comes_back(void **state)
{
    struct region_state down = {"ap-southeast-1", "eu-west-1", "region_down", 0};
    struct region_state back = {"ap-southeast-1", "eu-west-1", "region_back", 1};

    (void)state;
    assert_int_equal(cluster_region_action(C, "eu-west-1", "kill", NULL), 0);
    if (wait_for_named(region_seen, &down, 20000, "eu-west-1 unreachable with an event") != 0)
        fail_msg("ap-southeast-1's dashboard does not show eu-west-1 down");
    down.from = "us-east-1";
    if (wait_for_named(region_seen, &down, 20000, "eu-west-1 unreachable from us-east-1") != 0)
        fail_msg("us-east-1's dashboard does not show eu-west-1 down");
    check_page("ap-southeast-1");
    check_page("us-east-1");

    assert_int_equal(cluster_region_action(C, "eu-west-1", "restart", NULL), 0);
    if (wait_for_named(region_seen, &back, 30000, "eu-west-1 back with an event") != 0)
        fail_msg("ap-southeast-1's dashboard does not show eu-west-1 back");
    check_page("eu-west-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_node_serves_a_self_contained_page),
        cmocka_unit_test(the_json_lists_regions_leader_lags_links_and_edges),
        cmocka_unit_test(a_killed_region_is_unreachable_and_comes_back),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
