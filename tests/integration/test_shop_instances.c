/* Integration test: several `meridian shop` processes in one region
 * ([region NAME] shops = 3 in the topology; docs/topology.md "Shops").
 *
 * One region, three shops sharing its shop port (SO_REUSEPORT), each also
 * on a port of its own.  Checks that topology.json lists all three with
 * their own pids and URLs, that new connections to the shared port reach
 * more than one of them (each shop's own /metrics counts what it served),
 * that killing one leaves the region's shop port answering, and that the
 * killed one comes back on restart. */
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
#include "lib/wait.h"

#define N_SHOPS 3

static const char TOPOLOGY[] = "[topology]\nname = shop-instances\n"
                               "[region us-east-1]\nshops = 3\n";

struct shop_inst {
    int pid;
    int ready;
    char url[64];           /* the shared port */
    char instance_url[64];  /* this shop alone */
};

/* regions[0].shops of topology.json. */
static int read_shops(struct cluster *c, struct shop_inst *out, size_t *n)
{
    char path[512];
    json_error_t jerr;
    json_t *root, *shops, *x;
    size_t i;

    snprintf(path, sizeof(path), "%s/topology.json", c->rundir);
    root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        return -1;
    shops = json_object_get(json_array_get(json_object_get(root, "regions"), 0), "shops");
    *n = 0;
    json_array_foreach(shops, i, x) {
        if (i == N_SHOPS + 1)
            break;
        out[i].pid = (int)json_integer_value(json_object_get(x, "pid"));
        out[i].ready = json_is_true(json_object_get(x, "ready"));
        snprintf(out[i].url, sizeof(out[i].url), "%s",
                 json_string_value(json_object_get(x, "url")) ?: "");
        snprintf(out[i].instance_url, sizeof(out[i].instance_url), "%s",
                 json_string_value(json_object_get(x, "instance_url")) ?: "");
        *n = i + 1;
    }
    json_decref(root);
    return 0;
}

/* meridian_shop_requests_total summed over a shop's /metrics. */
static long served(const char *instance_url)
{
    struct api_reply r;
    long total = 0;
    const char *p;

    if (api_get(instance_url, "/metrics", &r) != 0 || r.status != 200 || r.text == NULL) {
        api_reply_close(&r);
        return -1;
    }
    for (p = r.text; (p = strstr(p, "\nmeridian_shop_requests_total{")) != NULL; p++) {
        const char *v = strchr(p + 1, '}');
        if (v)
            total += strtol(v + 1, NULL, 10);
    }
    api_reply_close(&r);
    return total;
}

static void three_shops_share_the_region_port_and_survive_the_loss_of_one(void **state)
{
    struct cluster *c;
    struct shop_inst shops[N_SHOPS + 1];
    long before[N_SHOPS], after;
    size_t n = 0;
    int reached = 0, killed_pid;

    (void)state;
    assert_int_equal(cluster_start_text(TOPOLOGY, &c), 0);
    assert_int_equal(read_shops(c, shops, &n), 0);
    assert_int_equal(n, N_SHOPS);
    for (size_t i = 0; i < n; i++) {
        assert_true(shops[i].pid > 0);
        assert_true(shops[i].ready);
        assert_string_equal(shops[i].url, shops[0].url);
        assert_string_not_equal(shops[i].instance_url, shops[i].url);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(shops[i].pid, shops[j].pid);
            assert_string_not_equal(shops[i].instance_url, shops[j].instance_url);
        }
        before[i] = served(shops[i].instance_url);
        assert_true(before[i] >= 0);
    }

    /* Each api_get is a new connection: the kernel picks a shop for each.
     * All 3 of 60 landing on one shop would be a 1 in 10^28 accident. */
    for (int k = 0; k < 60; k++)
        assert_int_equal(api_status(shops[0].url, "/api/products?limit=1"), 200);
    for (size_t i = 0; i < n; i++) {
        after = served(shops[i].instance_url);
        /* the /metrics read itself is counted once before it answers, or not */
        if (after - before[i] > 1)
            reached++;
    }
    assert_true(reached >= 2);

    /* The loss of one shop: the shared port keeps answering. */
    killed_pid = shops[1].pid;
    assert_int_equal(cluster_region_action(c, "us-east-1", "kill", "shop.1"), 0);
    assert_false(cluster_pid_alive(killed_pid));
    assert_true(cluster_pid_alive(shops[0].pid));
    assert_true(cluster_pid_alive(shops[2].pid));
    for (int k = 0; k < 30; k++)
        assert_int_equal(api_status(shops[0].url, "/api/products?limit=1"), 200);

    /* A process name the region does not have is refused clearly. */
    assert_int_not_equal(cluster_region_action(c, "us-east-1", "kill", "shop.3"), 0);

    assert_int_equal(cluster_region_action(c, "us-east-1", "restart", "shop.1"), 0);
    assert_int_equal(read_shops(c, shops, &n), 0);
    assert_true(shops[1].pid > 0 && shops[1].pid != killed_pid);
    assert_true(shops[1].ready);
    assert_int_equal(api_status(shops[1].instance_url, "/readyz"), 200);
    assert_int_equal(cluster_stop(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_shops_share_the_region_port_and_survive_the_loss_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
