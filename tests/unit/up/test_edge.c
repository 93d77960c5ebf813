/* test_edge.c -- what `meridian up` generates for each site's edge
 * (src/up/edge.c) and the edges' ports (src/up/topology.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "up/up.h"

/* The largest topology: 7 regions, 8 sites; with and without base_port. */
static void edge_ports_differ_from_every_other_port(void **state)
{
    char text[2048];
    size_t len;

    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        struct up_topology *t;
        char err[MR_ERRMSG_LEN] = "";
        int ports[1024], n = 0;

        len = (size_t)snprintf(text, sizeof(text), "%s", pass ? "[topology]\nbase_port = 20000\n" : "");
        for (char r = 'a'; r <= 'g'; r++)
            len += (size_t)snprintf(text + len, sizeof(text) - len, "[region %c]\n", r);
        for (int s = 0; s < 8; s++)
            len += (size_t)snprintf(text + len, sizeof(text) - len,
                                    "[site s%d]\na=1\nb=1\nc=1\nd=1\ne=1\nf=1\ng=1\n", s);
        assert_int_equal(up_topology_parse(text, "test", &t, err), 0);
        assert_int_equal(up_topology_assign_ports(t, err), 0);
        for (size_t i = 0; i < t->n_regions; i++) {
            ports[n++] = t->regions[i].etcd_client_port;
            ports[n++] = t->regions[i].etcd_peer_port;
            ports[n++] = t->regions[i].node_port;
            ports[n++] = t->wan_peer_port[i];
            for (size_t j = 0; j < t->n_regions; j++)
                if (j != i) {
                    ports[n++] = t->wan_client_port[i][j];
                    ports[n++] = t->wan_node_port[i][j];
                }
            for (size_t s = 0; s < t->n_sites; s++) {
                ports[n++] = t->wan_site_port[s][i];
                ports[n++] = t->wan_site_shop_port[s][i];
            }
            ports[n++] = t->regions[i].shop_port;
        }
        ports[n++] = t->wan_control_port;
        for (size_t s = 0; s < t->n_sites; s++)
            ports[n++] = t->edge_port[s];
        for (int i = 0; i < n; i++) {
            assert_true(ports[i] > 0 && ports[i] < 65536);
            for (int j = i + 1; j < n; j++)
                assert_int_not_equal(ports[i], ports[j]);
        }
        up_topology_free(t);
    }
}

static void edge_ini_routes_each_region_through_the_sites_wan_link(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";
    struct mr_buf b;
    char **argv;

    (void)state;
    assert_int_equal(up_topology_parse("[region us]\n[region eu]\n[latency]\nus eu = 40ms\n"
                                       "[site New York]\nus = 5ms\neu = 50ms\n", "test", &t, err),
                     0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    /* the origins are the regions' shops, through the site's wan routes */
    t->edge_port[0] = 42000;
    t->wan_site_shop_port[0][0] = 42001;
    t->wan_site_shop_port[0][1] = 42002;
    mr_buf_init(&b);
    assert_int_equal(up_edge_ini(t, 0, "/r", &b, err), 0);
    assert_non_null(strstr(b.data, "[edge]\nlisten = 127.0.0.1:42000\nname = New_York\n"));
    /* https: the default topology is TLS (the shops want the edge's certificate) */
    assert_non_null(strstr(b.data, "[region us]\norigin = https://127.0.0.1:42001\n"));
    assert_non_null(strstr(b.data, "[region eu]\norigin = https://127.0.0.1:42002\n"));
    assert_non_null(strstr(b.data, "\n[tls]\nca_file = /r/tls/ca.crt\n"));
    /* the farthest round trip is 100 ms: 250 + 3 x 100, 1000 + 4 x 100 */
    assert_non_null(strstr(b.data, "probe_timeout = 550ms\n"));
    assert_non_null(strstr(b.data, "try_timeout = 1400ms\n"));
    mr_buf_close(&b);
    argv = up_edge_argv(t, 0, "/run/x", "/bin/meridian");
    assert_string_equal(argv[1], "edge");
    assert_string_equal(argv[2], "--config");
    assert_string_equal(argv[3], "/run/x/edge-New_York.ini");
    assert_null(argv[4]);
    up_argv_free(argv);
    assert_string_equal(up_kind_name(UP_EDGE), "edge");
    up_topology_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_ports_differ_from_every_other_port),
        cmocka_unit_test(edge_ini_routes_each_region_through_the_sites_wan_link),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
