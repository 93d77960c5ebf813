/* `meridian up` gives every client site an edge (docs/topology.md "Edges"):
 * the default three regions at a tenth of their distance, every edge reaching
 * the regions' origins (their shops, or their nodes when they run none)
 * through the wan's site links.  Each edge sends its site's requests to the
 * nearest region; when that region is killed (every process, SIGKILL) under
 * flowing traffic, no read fails and the traffic moves to the next nearest
 * region, and it comes back once the region is restarted.  cluster_stop
 * checks that no process (edges included) is left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "http/http.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;

struct site_edge {
    char name[40];
    char url[64];
    int pid;
};

static struct site_edge E[3];

/* An idempotent read that reaches the origin every time: the shop's
 * catalog with the edge's cache bypassed (the client asks for no-cache),
 * or the node's digest when the regions run no shop. */
static const char *read_path = "/v1/digest";
static const char *read_headers = NULL;

static int setup(void **state)
{
    char path[4096];
    json_t *root, *site;
    size_t i;

    (void)state;
    cluster_latency_scale = "0.1";
    if (cluster_start(NULL, &C) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    root = json_load_file(path, 0, NULL);
    if (root == NULL)
        return -1;
    if (json_object_get(json_array_get(json_object_get(root, "regions"), 0), "shop") != NULL) {
        read_path = "/api/products";
        read_headers = "Cache-Control: no-cache\r\n";
    }
    json_array_foreach(json_object_get(root, "sites"), i, site) {
        json_t *edge = json_object_get(site, "edge");
        if (i >= 3)
            break;
        snprintf(E[i].name, sizeof(E[i].name), "%s",
                 json_string_value(json_object_get(site, "name")));
        snprintf(E[i].url, sizeof(E[i].url), "%s",
                 json_string_value(json_object_get(edge, "url")));
        E[i].pid = (int)json_integer_value(json_object_get(edge, "pid"));
    }
    json_decref(root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* GET <path> through <edge>; the status, and the region that served it. */
static int get(const struct site_edge *e, const char *path, char *region, size_t n)
{
    char url[256], err[MR_ERRMSG_LEN];
    struct http_result res;
    const char *h;
    int status;

    region[0] = '\0';
    snprintf(url, sizeof(url), "%s%s", e->url, path);
    if (http_fetch("GET", url, read_headers, NULL, 0, (uint64_t)test_timeout_ms(10000), &res,
                   err) != 0)
        return -1;
    status = res.status;
    h = res.headers.data ? strcasestr(res.headers.data, "Meridian-Region: ") : NULL;
    if (h != NULL)
        snprintf(region, n, "%.*s", (int)strcspn(h + 17, "\r\n"), h + 17);
    http_result_close(&res);
    return status;
}

static void topology_json_lists_an_edge_per_site(void **state)
{
    (void)state;
    assert_string_equal(E[0].name, "New York");
    assert_string_equal(E[2].name, "Singapore");
    for (int i = 0; i < 3; i++) {
        assert_true(E[i].pid > 0);
        assert_true(cluster_pid_alive(E[i].pid));
        assert_int_equal(strncmp(E[i].url, "http://127.0.0.1:", 17), 0);
    }
}

struct nearest {
    struct site_edge *e;
    const char *want;
    char got[40];
};

/* Served by its nearest region now (three answers in a row: the choice
 * rests on smoothed probe timings, which a loaded machine can disturb for
 * a moment). */
static int served_by_nearest(void *arg)
{
    struct nearest *nr = arg;

    for (int k = 0; k < 3; k++)
        if (get(nr->e, read_path, nr->got, sizeof(nr->got)) != 200 || strcmp(nr->got, nr->want) != 0)
            return 0;
    return 1;
}

static void each_site_is_served_by_its_nearest_region(void **state)
{
    static const char *nearest[3] = {"us-east-1", "eu-west-1", "ap-southeast-1"};

    (void)state;
    for (int i = 0; i < 3; i++) {
        struct nearest nr = {&E[i], nearest[i], ""};
        if (wait_for(served_by_nearest, &nr, 10000) != 0)
            fail_msg("site %s: served by %s, expected its nearest region %s", E[i].name, nr.got,
                     nearest[i]);
    }
}

/* The shop marks its catalog cacheable: the second read is served by the
 * edge itself, and the hit is counted (the offload ratio's numerator). */
static void the_catalog_is_served_from_the_edge_cache(void **state)
{
    char url[256], err[MR_ERRMSG_LEN];
    struct http_result res;

    (void)state;
    if (read_headers == NULL)
        skip();   /* no shop: the node's answers are not cacheable */
    snprintf(url, sizeof(url), "%s/api/products?edge-test=1", E[1].url);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, (uint64_t)test_timeout_ms(10000),
                                    &res, err), 0);
        assert_int_equal(res.status, 200);
        assert_non_null(strstr(res.headers.data,
                               i == 0 ? "Meridian-Cache: miss" : "Meridian-Cache: hit"));
        http_result_close(&res);
    }
    snprintf(url, sizeof(url), "%s/metrics", E[1].url);
    assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, (uint64_t)test_timeout_ms(10000), &res,
                                err), 0);
    assert_null(strstr(res.body.data, "meridian_edge_cache_total{result=\"hit\"} 0\n"));
    http_result_close(&res);
}

struct traffic {
    atomic_int stop, ok, failed, on_us, on_eu;
    char first_failure[128];
};

static void *traffic_main(void *arg)
{
    struct traffic *t = arg;
    char region[40];

    while (!atomic_load(&t->stop)) {
        int st = get(&E[0], read_path, region, sizeof(region));
        if (st == 200) {
            atomic_fetch_add(&t->ok, 1);
            if (strcmp(region, "us-east-1") == 0)
                atomic_fetch_add(&t->on_us, 1);
            else if (strcmp(region, "eu-west-1") == 0)
                atomic_fetch_add(&t->on_eu, 1);
        } else if (atomic_fetch_add(&t->failed, 1) == 0) {
            snprintf(t->first_failure, sizeof(t->first_failure), "status %d from %s", st,
                     region);
        }
    }
    return NULL;
}

struct grow {
    atomic_int *v;
    int target;
};

static int grown(void *arg)
{
    struct grow *g = arg;

    return atomic_load(g->v) >= g->target;
}

static void wait_grow(atomic_int *v, int more, const char *what)
{
    struct grow g = {v, atomic_load(v) + more};

    if (wait_for_named(grown, &g, 20000, what) != 0)
        fail_msg("%s", what);
}

static void killing_the_nearest_region_moves_reads_without_errors(void **state)
{
    struct traffic t;
    pthread_t th;

    (void)state;
    memset(&t, 0, sizeof(t));
    assert_int_equal(pthread_create(&th, NULL, traffic_main, &t), 0);
    wait_grow(&t.on_us, 20, "New York reads on us-east-1");
    /* every process of the region (SIGKILL) */
    assert_int_equal(cluster_region_action(C, "us-east-1", "kill", NULL), 0);
    wait_grow(&t.on_eu, 20, "New York reads moved to eu-west-1");
    assert_int_equal(cluster_region_action(C, "us-east-1", "restart", NULL), 0);
    wait_grow(&t.on_us, 20, "New York reads back on us-east-1");
    atomic_store(&t.stop, 1);
    pthread_join(th, NULL);
    if (atomic_load(&t.failed) != 0)
        fail_msg("%d of %d reads failed; first: %s", atomic_load(&t.failed),
                 atomic_load(&t.ok) + atomic_load(&t.failed), t.first_failure);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topology_json_lists_an_edge_per_site),
        cmocka_unit_test(each_site_is_served_by_its_nearest_region),
        cmocka_unit_test(the_catalog_is_served_from_the_edge_cache),
        cmocka_unit_test(killing_the_nearest_region_moves_reads_without_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
