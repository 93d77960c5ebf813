/* Unit tests of src/up/topology.c (and the pure parts of supervisor.c and
 * client.c): topology parsing and its errors, ports, the generated etcd argv
 * and node.ini, the run directory, the endpoint table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/auth.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/err.h"
#include "up/up.h"
#include "lib/wait.h"

static int parse(const char *text, struct up_topology **t, char *err)
{
    *t = NULL;
    return up_topology_parse(text, "t.ini", t, err);
}

/* Parse <text>, expect MR_ECONFIG and every fragment in the message. */
static void expect_error(const char *text, const char *frag1, const char *frag2)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";
    int rc = parse(text, &t, err);

    if (rc != MR_ECONFIG || strstr(err, frag1) == NULL || (frag2 && strstr(err, frag2) == NULL))
        print_error("input:\n%s\nrc %d, message: %s\nexpected: '%s' and '%s'\n", text, rc, err,
                    frag1, frag2 ? frag2 : "");
    assert_int_equal(rc, MR_ECONFIG);
    assert_non_null(strstr(err, frag1));
    if (frag2)
        assert_non_null(strstr(err, frag2));
    assert_null(t);
}

static void default_topology_has_three_regions_and_local_timers(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(up_topology_load(NULL, &t, err), 0);
    assert_int_equal(t->n_regions, 3);
    assert_string_equal(t->regions[0].name, "us-east-1");
    assert_string_equal(t->regions[1].name, "eu-west-1");
    assert_string_equal(t->regions[2].name, "ap-southeast-1");
    assert_string_equal(t->name, "default");
    assert_string_equal(t->cluster, "meridian");
    assert_int_equal(t->base_port, 0);
    assert_int_equal(t->etcd_heartbeat_ms, 50);
    assert_int_equal(t->etcd_election_ms, 500);
    assert_int_equal(t->ready_timeout_ms, 60000);
    assert_string_equal(t->log_level, "info");
    assert_int_equal(t->n_limits, 0);
    up_topology_free(t);
}

static void shipped_default_file_is_the_builtin_text(void **state)
{
    FILE *f = fopen("topologies/default.ini", "r");
    char buf[8192];
    size_t n;
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    assert_non_null(f); /* tests run from the repository root */
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, up_default_topology);
    assert_int_equal(up_topology_load("topologies/default.ini", &t, err), 0);
    assert_string_equal(t->source, "topologies/default.ini");
    assert_int_equal(t->n_regions, 3);
    up_topology_free(t);
}

static void full_topology_parses_every_key(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(parse("\xEF\xBB\xBF[topology]\nname = two\ncluster = c1\nbase_port = 20000\n"
                           "etcd_heartbeat = 100ms\netcd_election = 1s\nready_timeout = 2m\n"
                           "log_level = debug ; inline comment\n\n[limits]\nmax_rows = 5\n"
                           "session_wait = 1s\n\n[region a-1]\nlog_level = warn\n[ region b ]\n",
                           &t, err), 0);
    assert_string_equal(t->name, "two");
    assert_string_equal(t->cluster, "c1");
    assert_int_equal(t->base_port, 20000);
    assert_int_equal(t->etcd_heartbeat_ms, 100);
    assert_int_equal(t->etcd_election_ms, 1000);
    assert_int_equal(t->ready_timeout_ms, 120000);
    assert_string_equal(t->log_level, "debug");
    assert_int_equal(t->n_regions, 2);
    assert_string_equal(t->regions[0].name, "a-1");
    assert_string_equal(t->regions[0].log_level, "warn");
    assert_int_equal(t->regions[0].line, 14);
    assert_string_equal(t->regions[1].name, "b");
    assert_null(t->regions[1].log_level);
    assert_int_equal(t->n_limits, 2);
    assert_string_equal(t->limits[0].key, "max_rows");
    assert_string_equal(t->limits[1].value, "1s");
    assert_int_equal(up_topology_find(t, "b"), 1);
    assert_int_equal(up_topology_find(t, "c"), -1);
    up_topology_free(t);
}

static void unknown_key_and_section_name_file_line_and_key(void **state)
{
    expect_error("[topology]\nname = x\nbase_prot = 1\n[region a]\n", "t.ini:3:",
                 "unknown key 'base_prot' in [topology]");
    expect_error("[region a]\nlatency = 10ms\n", "t.ini:2: unknown key 'latency' in [region a]",
                 "expected one of: log_level");
    expect_error("[region a]\n[regions]\n", "t.ini:2: unknown section [regions]",
                 "expected [topology], [limits], [region NAME], [latency] or [site NAME]");
    expect_error("name = x\n[region a]\n", "t.ini:1: key 'name' outside any section", NULL);
}

static void bad_values_say_expected_and_found(void **state)
{
    expect_error("[topology]\netcd_heartbeat = soon\n[region a]\n",
                 "t.ini:2: key 'etcd_heartbeat' in [topology]: expected a duration",
                 "found 'soon'");
    expect_error("[topology]\nbase_port = 70000\n[region a]\n", "t.ini:2: key 'base_port'",
                 "found '70000'");
    expect_error("[topology]\nbase_port = 80\n[region a]\n", "t.ini:2: key 'base_port'",
                 "expected 0 or a port from 1024");
    expect_error("[topology]\nbase_port = 65534\n[region a]\n", "t.ini:2: key 'base_port'",
                 "3 ports each");
    expect_error("[topology]\nlog_level = loud\n[region a]\n", "t.ini:2: key 'log_level'",
                 "expected debug, info, warn or error, found 'loud'");
    expect_error("[region a]\nlog_level = off\n", "t.ini:1: key 'log_level' in [region a]",
                 "found 'off'");
    expect_error("[topology]\ncluster = a/b\n[region a]\n", "t.ini:2: key 'cluster'",
                 "found 'a/b'");
    expect_error("[topology]\nready_timeout = 10ms\n[region a]\n", "t.ini:2: key 'ready_timeout'",
                 "between 1000 and");
    expect_error("[limits]\nmax_rows =\n[region a]\n", "t.ini:2: key 'max_rows' in [limits]",
                 "found nothing");
}

static void election_timeout_must_cover_five_heartbeats(void **state)
{
    expect_error("[topology]\netcd_heartbeat = 100ms\netcd_election = 400ms\n[region a]\n",
                 "t.ini:3: key 'etcd_election'", "at least 5 x etcd_heartbeat (500ms)");
    /* Defaults count too: 500ms is below 5 x 200ms. */
    expect_error("[topology]\netcd_heartbeat = 200ms\n[region a]\n", "t.ini: key 'etcd_election'",
                 "found '500ms'");
}

static void region_names_are_checked(void **state)
{
    char text[1024];

    expect_error("[region US-East]\n", "t.ini:1: region name",
                 "a-z, 0-9 and '-', found 'US-East'");
    expect_error("[region a_b]\n", "t.ini:1: region name", "found 'a_b'");
    expect_error("[region 123456789012345678901234567890123]\n", "t.ini:1: region name",
                 "expected 1 to 32 characters");
    expect_error("[region]\n", "t.ini:1: section [region]: expected [region NAME]", NULL);
    expect_error("[region a]\n[region b]\n[region a]\n",
                 "t.ini:3: region 'a' is already defined at line 1", NULL);
    strcpy(text, "");
    for (int i = 0; i < 8; i++)
        sprintf(text + strlen(text), "[region r%d]\n", i);
    expect_error(text, "t.ini:8: region 'r7': expected at most 7 regions", NULL);
    expect_error("[topology]\nname = x\n", "t.ini: expected 1 to 7 [region NAME] sections, "
                 "found none", NULL);
}

static void syntax_errors_and_long_lines_name_the_line(void **state)
{
    char text[600];

    expect_error("[region a]\n[topology]\nthis is not ini\n", "t.ini:3: syntax error", NULL);
    /* A syntax error before a bad key is the one reported. */
    expect_error("[topology]\nnope\nbogus = 1\n[region a]\n", "t.ini:2: syntax error", NULL);
    memset(text, 'a', sizeof(text));
    memcpy(text, "[region a]\n[limits]\nx = ", 24);
    text[sizeof(text) - 2] = '\n';
    text[sizeof(text) - 1] = '\0';
    expect_error(text, "t.ini:3: line longer than 199 bytes", NULL);
}

static void missing_file_is_named(void **state)
{
    struct up_topology *t = NULL;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(up_topology_load("/nonexistent/topo.ini", &t, err), MR_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/topo.ini: cannot open"));
    assert_null(t);
}

static void base_port_gives_consecutive_ports(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(parse("[topology]\nbase_port = 30000\n[region a]\n[region b]\n", &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    assert_int_equal(t->regions[0].etcd_client_port, 30000);
    assert_int_equal(t->regions[0].etcd_peer_port, 30001);
    assert_int_equal(t->regions[0].node_port, 30002);
    assert_int_equal(t->regions[1].etcd_client_port, 30003);
    assert_int_equal(t->regions[1].node_port, 30005);
    up_topology_free(t);
}

/* [region NAME] shops: 1 by default (one port, no instance ports); 2..8
 * share the region's port and each gets one of its own; 0 and 9 refused. */
static void shops_per_region_get_their_own_ports(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";
    char **argv;
    int seen = 0;

    assert_int_equal(parse("[region a]\nshops = 3\n[region b]\n", &t, err), 0);
    assert_int_equal(t->regions[0].n_shops, 3);
    assert_int_equal(t->regions[1].n_shops, 1);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    for (int i = 0; i < 3; i++) {
        int p = t->regions[0].shop_instance_port[i];
        assert_true(p > 0);
        assert_int_not_equal(p, t->regions[0].shop_port);
        assert_int_not_equal(p, t->regions[1].shop_port);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(p, t->regions[0].shop_instance_port[j]);
    }
    assert_int_equal(t->regions[1].shop_instance_port[0], 0);
    argv = up_shop_argv(t, 0, 2, "/run", "/bin/meridian");
    for (char **a = argv; *a; a++)
        if (strstr(*a, "shop.instance_listen=127.0.0.1:") != NULL)
            seen = atoi(strrchr(*a, ':') + 1) == t->regions[0].shop_instance_port[2];
    assert_true(seen);
    up_argv_free(argv);
    up_topology_free(t);
    expect_error("[region a]\nshops = 0\n", "t.ini:2: key 'shops' in [region a]", NULL);
    expect_error("[region a]\nshops = 9\n", "t.ini:2: key 'shops' in [region a]", NULL);
    expect_error("[region a]\nshops = two\n", "t.ini:2: key 'shops' in [region a]", NULL);
}

/* Every port of the largest topology, the wan's included, differs from
 * every other (a wan port equal to a region's would take it first). */
static void check_all_ports_distinct(const char *text)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";
    int ports[512], n = 0;

    assert_int_equal(parse(text, &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    for (size_t i = 0; i < t->n_regions; i++) {
        ports[n++] = t->regions[i].etcd_client_port;
        ports[n++] = t->regions[i].etcd_peer_port;
        ports[n++] = t->regions[i].node_port;
        ports[n++] = t->wan_peer_port[i];
        for (size_t j = 0; j < t->n_regions; j++)
            if (j != i)
                ports[n++] = t->wan_client_port[i][j];
        for (size_t s = 0; s < t->n_sites; s++)
            ports[n++] = t->wan_site_port[s][i];
    }
    ports[n++] = t->wan_control_port;
    assert_int_equal(n, 3 * 7 + 7 + 7 * 6 + 8 * 7 + 1);
    for (int i = 0; i < n; i++) {
        assert_true(ports[i] > 0 && ports[i] < 65536);
        for (int j = i + 1; j < n; j++)
            assert_int_not_equal(ports[i], ports[j]);
    }
    up_topology_free(t);
}

static void kernel_ports_are_distinct(void **state)
{
    char text[2048];
    size_t len = 0;

    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        len = (size_t)snprintf(text, sizeof(text), "%s", pass ? "[topology]\nbase_port = 20000\n" : "");
        for (char r = 'a'; r <= 'g'; r++)
            len += (size_t)snprintf(text + len, sizeof(text) - len, "[region %c]\n", r);
        for (int s = 0; s < 8; s++)
            len += (size_t)snprintf(text + len, sizeof(text) - len,
                                    "[site s%d]\na=1\nb=1\nc=1\nd=1\ne=1\nf=1\ng=1\n", s);
        check_all_ports_distinct(text);
    }
}

static struct up_topology *two_regions(void)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    /* The plain path (tls_topology_* covers the secure default). */
    assert_int_equal(parse("[topology]\ncluster = shop\nbase_port = 40000\netcd_heartbeat = 70\n"
                           "etcd_election = 700ms\nlog_level = warn\ntls = no\nauth = no\n"
                           "[limits]\nmax_rows = 7\n"
                           "[region us]\nlog_level = debug\n[region eu]\n", &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    /* The wan's ports come from the kernel: fix them for the expectations. */
    assert_true(t->wan_control_port > 0 && t->wan_client_port[1][0] > 0);
    t->wan_peer_port[0] = 41001;
    t->wan_peer_port[1] = 41002;
    t->wan_client_port[0][1] = 41010;
    t->wan_client_port[1][0] = 41011;
    t->wan_node_port[0][1] = 41030;
    t->wan_node_port[1][0] = 41031;
    t->wan_control_port = 41040;
    return t;
}

static void etcd_argv_has_every_flag(void **state)
{
    struct up_topology *t = two_regions();
    char **argv = up_etcd_argv(t, 1, "/run/x", "/usr/bin/etcd");
    static const char *const want[] = {
        "/usr/bin/etcd",
        "--name", "eu",
        "--data-dir", "/run/x/eu/etcd",
        "--listen-client-urls", "http://127.0.0.1:40003",
        "--advertise-client-urls", "http://127.0.0.1:40003",
        "--listen-peer-urls", "http://127.0.0.1:40004",
        "--initial-advertise-peer-urls", "http://127.0.0.1:41002",
        "--initial-cluster", "us=http://127.0.0.1:41001,eu=http://127.0.0.1:41002",
        "--initial-cluster-state", "new",
        "--initial-cluster-token", "shop",
        "--heartbeat-interval", "70",
        "--election-timeout", "700",
        "--snapshot-count", "2000",
        "--logger", "zap",
        "--log-level", "warn",
        NULL,
    };
    size_t i;

    for (i = 0; want[i]; i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], want[i]);
    }
    assert_null(argv[i]);
    up_argv_free(argv);
    up_topology_free(t);
}

static void node_argv_runs_the_same_binary(void **state)
{
    struct up_topology *t = two_regions();
    char **argv = up_node_argv(t, 0, "/run/x", "/proc/self/exe");

    assert_string_equal(argv[0], "/proc/self/exe");
    assert_string_equal(argv[1], "node");
    assert_string_equal(argv[2], "--config");
    assert_string_equal(argv[3], "/run/x/us/node.ini");
    assert_null(argv[4]);
    up_argv_free(argv);
    up_topology_free(t);
}

static void shop_ini_enables_faults_behind_the_cluster_tokens(void **state)
{
    struct up_topology *t = two_regions();
    struct mr_buf a;
    char hash[65], line[128];
    char err[MR_ERRMSG_LEN];

    (void)state;
    t->auth = 1;
    assert_int_equal(up_topology_make_tokens(t, err), 0);
    mr_buf_init(&a);
    up_shop_ini(t, 0, "/r", &a);
    assert_non_null(strstr(a.data, "[shop]\nlisten = 127.0.0.1:"));
    assert_non_null(strstr(a.data, "region = us\n"));
    /* The nodes' [auth] lines: the game day sends the admin token. */
    assert_non_null(strstr(a.data, "[faults]\nenabled = true\n[auth]\n"));
    mr_auth_hash_hex(t->auth_admin, hash);
    snprintf(line, sizeof(line), "token = up-admin admin %s\n", hash);
    assert_non_null(strstr(a.data, line));
    assert_null(strstr(a.data, "[faults]\nenabled = true\ntoken"));
    mr_buf_close(&a);
    /* auth = no: no tokens, so fault injection is off. */
    t->auth = 0;
    mr_buf_init(&a);
    up_shop_ini(t, 0, "/r", &a);
    assert_non_null(strstr(a.data, "[faults]\nenabled = false\n"));
    assert_null(strstr(a.data, "[auth]"));
    mr_buf_close(&a);
    up_topology_free(t);
}

static void node_ini_lists_own_etcd_first_and_passes_limits(void **state)
{
    struct up_topology *t = two_regions();
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "";

    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 1, "/run/x", &b, err), 0);
    assert_string_equal(b.data,
                        "; generated by `meridian up` from t.ini; rewritten at every up\n"
                        "[node]\n"
                        "region = eu\n"
                        "cluster = shop\n"
                        "data_dir = /run/x/eu/data\n"
                        "listen = 127.0.0.1:40005\n"
                        "etcd = http://127.0.0.1:40003,http://127.0.0.1:41011\n"
                        "log_level = warn\n"
                        "\n"
                        "[tables]\n"
                        "peers = us=http://127.0.0.1:41031\n"
                        "\n"
                        "[dashboard]\n"
                        "wan = http://127.0.0.1:41040\n"
                        "\n"
                        "[limits]\n"
                        "max_rows = 7\n"
                        "session_wait = 2000ms\n");
    mr_buf_reset(&b);
    /* A region's own log_level wins over the topology's. */
    assert_int_equal(up_node_ini(t, 0, "/run/x", &b, err), 0);
    assert_non_null(strstr(b.data, "log_level = debug\n"));
    assert_non_null(strstr(b.data, "etcd = http://127.0.0.1:40000,http://127.0.0.1:41010\n"));
    mr_buf_close(&b);
    up_topology_free(t);
}

/* The secure default: https:// everywhere between processes, etcd's TLS
 * flags, a [tls] section per config naming the process's own certificate,
 * and the certificates themselves, made by up_tls_make. */
static void tls_topology_gives_every_process_its_certificate(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "", dir[] = "/tmp/mr-up-tls-XXXXXX", path[128];
    struct mr_buf b;
    char **argv;
    int seen = 0;

    (void)state;
    assert_int_equal(parse("[topology]\nbase_port = 40000\n[region us]\n[region eu]\n"
                           "[site New York]\nus = 1\neu = 2\n", &t, err), 0);
    assert_int_equal(t->tls, 1);
    assert_int_equal(t->auth, 1);
    assert_int_equal(t->edge_tls, 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    argv = up_etcd_argv(t, 1, "/r", "etcd");
    for (size_t i = 0; argv[i]; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i + 1] && strstr(argv[i], "-urls"))
            assert_int_equal(strncmp(argv[i + 1], "https://", 8), 0);
        if (strcmp(argv[i], "--cert-file") == 0 || strcmp(argv[i], "--peer-cert-file") == 0)
            assert_string_equal(argv[i + 1], "/r/tls/etcd-eu.crt"), seen++;
        if (strcmp(argv[i], "--key-file") == 0 || strcmp(argv[i], "--peer-key-file") == 0)
            assert_string_equal(argv[i + 1], "/r/tls/etcd-eu.key"), seen++;
        if (strcmp(argv[i], "--trusted-ca-file") == 0 ||
            strcmp(argv[i], "--peer-trusted-ca-file") == 0)
            assert_string_equal(argv[i + 1], "/r/tls/ca.crt"), seen++;
        seen += strcmp(argv[i], "--client-cert-auth") == 0 ||
                strcmp(argv[i], "--peer-client-cert-auth") == 0;
    }
    assert_int_equal(seen, 8);
    up_argv_free(argv);

    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 0, "/r", &b, err), 0);
    assert_non_null(strstr(b.data, "\n[tls]\nca_file = /r/tls/ca.crt\ncert_file = "
                                   "/r/tls/node-us.crt\nkey_file = /r/tls/node-us.key\n"));
    assert_non_null(strstr(b.data, "etcd = https://127.0.0.1:40000,https://"));
    assert_non_null(strstr(b.data, "peers = eu=https://"));
    assert_non_null(strstr(b.data, "\n[auth]\nrequired = yes\n"));
    assert_non_null(strstr(b.data, "wan = http://")); /* the wan's control API stays plain */
    assert_non_null(strstr(b.data, "edges = New_York=http://"));
    mr_buf_reset(&b);
    up_wan_ini(t, &b);  /* the nodes' dashboards read the links with their peer token */
    assert_non_null(strstr(b.data, "token = up-admin admin "));
    assert_non_null(strstr(b.data, "token = up-peer read "));
    mr_buf_reset(&b);
    up_shop_ini(t, 1, "/r", &b);
    assert_non_null(strstr(b.data, "node = https://127.0.0.1:"));
    assert_non_null(strstr(b.data, "[tls]\nca_file = /r/tls/ca.crt\ncert_file = /r/tls/shop-eu.crt\n"
                                   "key_file = /r/tls/shop-eu.key\n"));
    mr_buf_reset(&b);
    assert_int_equal(up_edge_ini(t, 0, "/r", &b, err), 0);
    assert_non_null(strstr(b.data, "origin = https://127.0.0.1:"));
    assert_non_null(strstr(b.data, "[tls]\nca_file = /r/tls/ca.crt\ncert_file = "
                                   "/r/tls/edge-New_York.crt\nkey_file = /r/tls/edge-New_York.key\n"));
    assert_null(strstr(b.data, "public_cert_file")); /* shoppers use plain http://127.0.0.1 */
    mr_buf_close(&b);

    /* The files: a CA and one certificate per process, keys 0600, dir 0700. */
    assert_non_null(mkdtemp(dir));
    assert_int_equal(up_tls_make(t, dir, err), 0);
    {
        static const char *const names[] = {"ca", "etcd-us", "node-us", "shop-us", "etcd-eu",
                                            "node-eu", "shop-eu", "edge-New_York", "admin"};
        struct stat st;
        snprintf(path, sizeof(path), "%s/tls", dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(path, sizeof(path), "%s/tls/%s.crt", dir, names[i]);
            assert_int_equal(stat(path, &st), 0);
            assert_int_equal(unlink(path), 0);
            snprintf(path, sizeof(path), "%s/tls/%s.key", dir, names[i]);
            assert_int_equal(stat(path, &st), 0);
            assert_int_equal(st.st_mode & 0777, 0600);
            assert_int_equal(unlink(path), 0);
        }
        snprintf(path, sizeof(path), "%s/tls", dir);
        assert_int_equal(rmdir(path), 0);
        assert_int_equal(rmdir(dir), 0);
    }
    up_topology_free(t);

    /* edge_tls needs the run's CA. */
    assert_int_equal(parse("[topology]\ntls = no\nedge_tls = yes\n[region us]\n", &t, err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "edge_tls"));
}

/* A node's 503 for a token it has not applied must reach each site's edge
 * within the edge's try_timeout: session_wait follows the sites' distances,
 * unless the topology's [limits] sets it. */
static void session_wait_fits_in_the_edges_try_timeout(void **state)
{
    static const char text[] = "[region a]\n[region b]\n[site far]\na = 10ms\nb = 400ms\n";
    struct up_topology *t;
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(parse(text, &t, err), 0);
    /* try_timeout 1000 + 4 x 800 = 4200 ms; minus one 800 ms round trip and
     * 250 ms: 3150, above the 2 s default, which stays. */
    assert_int_equal(up_session_wait_ms(t), 2000);
    up_topology_free(t);
    assert_int_equal(parse("[region a]\n[region b]\n[site near]\na = 1ms\nb = 2ms\n", &t, err), 0);
    /* 1000 + 4 x 4 - 4 - 250 */
    assert_int_equal(up_session_wait_ms(t), 762);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 0, "/run/x", &b, err), 0);
    assert_non_null(strstr(b.data, "\nsession_wait = 762ms\n"));
    mr_buf_close(&b);
    up_topology_free(t);
    assert_int_equal(parse("[limits]\nsession_wait = 5s\n[region a]\n", &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 0, "/run/x", &b, err), 0);
    assert_non_null(strstr(b.data, "\nsession_wait = 5s\n"));
    assert_null(strstr(b.data, "session_wait = 2000ms"));
    mr_buf_close(&b);
    up_topology_free(t);
}

/* The dashboard's sources (docs/dashboard.md): the wan's control URL and
 * every site's edge, named by the site's slug. */
static void node_ini_names_the_wan_and_edges_for_the_dashboard(void **state)
{
    struct up_topology *t;
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "";

    assert_int_equal(parse("[topology]\ncluster = shop\nbase_port = 40000\n[region us]\n[region eu]\n"
                           "[site New York]\nus = 4ms\neu = 38ms\n[site Paris]\nus = 40ms\neu = 5ms\n",
                           &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    t->wan_control_port = 41040;
    t->edge_port[0] = 42001;
    t->edge_port[1] = 42002;
    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 0, "/run/x", &b, err), 0);
    assert_non_null(strstr(b.data, "\n[dashboard]\nwan = http://127.0.0.1:41040\n"
                                   "edges = New_York=http://127.0.0.1:42001,"
                                   "Paris=http://127.0.0.1:42002\n"));
    mr_buf_close(&b);
    up_topology_free(t);
}

static void node_ini_refuses_lines_the_node_cannot_read(void **state)
{
    struct up_topology *t = two_regions();
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "", dir[300];

    memset(dir, 'd', sizeof(dir) - 1);
    dir[0] = '/';
    dir[sizeof(dir) - 1] = '\0';
    mr_buf_init(&b);
    assert_int_equal(up_node_ini(t, 0, dir, &b, err), MR_ECONFIG);
    assert_non_null(strstr(err, "over the node's limit of 199"));
    mr_buf_close(&b);
    up_topology_free(t);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rundir_is_laid_out_and_not_reused(void **state)
{
    struct up_topology *t = two_regions();
    char tmpl[] = "/tmp/mr-test-up-XXXXXX", err[MR_ERRMSG_LEN] = "";
    char *abs = NULL, *sub, *path;
    struct stat st;
    FILE *f;

    assert_non_null(mkdtemp(tmpl));
    sub = mr_asprintf("%s/new/run", tmpl); /* parents are created */
    assert_int_equal(up_rundir_prepare(sub, t, &abs, err), 0);
    assert_string_equal(abs, sub);
    path = mr_asprintf("%s/logs", abs);
    assert_int_equal(stat(path, &st), 0);
    mr_free(path);
    path = mr_asprintf("%s/eu/data", abs);
    assert_int_equal(stat(path, &st), 0);
    mr_free(path);
    path = up_path_node_ini(abs, "us");
    f = fopen(path, "r");
    assert_non_null(f);
    fclose(f);
    mr_free(path);
    path = up_path_log(abs, "us", UP_NODE);
    assert_string_equal(path + strlen(abs), "/logs/us-node.log");
    mr_free(path);

    /* A previous run (its supervisor gone) is refused. */
    path = mr_asprintf("%s/topology.json", abs);
    f = fopen(path, "w");
    fputs("{\"control\": {\"pid\": 999999999}}", f);
    fclose(f);
    mr_free(path);
    mr_free(abs);
    abs = NULL;
    assert_int_equal(up_rundir_prepare(sub, t, &abs, err), MR_EEXIST);
    assert_non_null(strstr(err, "holds a previous run"));
    assert_null(abs);

    mr_free(sub);
    nftw(tmpl, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    up_topology_free(t);
}

static void node_config_check_reports_the_nodes_refusal(void **state)
{
    struct up_topology *t = two_regions();
    char err[MR_ERRMSG_LEN] = "";

    /* Stand-ins for the node binary: one accepts, one refuses. */
    assert_int_equal(up_check_node_configs(t, "/run/x", "/bin/true", err), 0);
    assert_int_equal(up_check_node_configs(t, "/run/x", "/bin/false", err), MR_ECONFIG);
    assert_non_null(strstr(err, "t.ini: region us: the node refuses its config"));
    up_topology_free(t);
}

static void endpoint_table_shows_each_region(void **state)
{
    const char *json =
        "{\"rundir\": \"/r\", \"control\": {\"url\": \"http://127.0.0.1:9\", \"pid\": 42},"
        " \"regions\": [{\"name\": \"us\", \"node\": {\"url\": \"http://127.0.0.1:3\", \"pid\": 7},"
        " \"etcd\": {\"client_url\": \"http://127.0.0.1:1\", \"pid\": 5}}]}";
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "";

    mr_buf_init(&b);
    assert_int_equal(up_format_endpoints(json, &b, err), 0);
    assert_non_null(strstr(b.data, "us "));
    assert_non_null(strstr(b.data, "http://127.0.0.1:3"));
    assert_non_null(strstr(b.data, "http://127.0.0.1:1"));
    assert_non_null(strstr(b.data, "control http://127.0.0.1:9 (supervisor pid 42)"));
    assert_non_null(strstr(b.data, "meridian down /r"));
    mr_buf_reset(&b);
    assert_int_equal(up_format_endpoints("{nope", &b, err), MR_EPROTO);
    mr_buf_close(&b);
}

static int pid_gone(void *arg)
{
    return !up_pid_alive(*(pid_t *)arg);
}

static void pid_alive_ignores_zombies(void **state)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_true(up_pid_alive(getpid()));
    /* Not reaped yet: a zombie once it has exited. */
    assert_int_equal(wait_for(pid_gone, &pid, 2000), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_false(up_pid_alive(pid));
    assert_false(up_pid_alive(0));
}

static void kind_names_round_trip(void **state)
{
    assert_string_equal(up_kind_name(UP_ETCD), "etcd");
    assert_string_equal(up_kind_name(UP_NODE), "node");
    assert_int_equal(up_kind_parse("etcd"), UP_ETCD);
    assert_int_equal(up_kind_parse("node"), UP_NODE);
    assert_int_equal(up_kind_parse("edge"), -1);
}

static void region_action_checks_arguments_before_anything(void **state)
{
    struct mr_buf b;
    char err[MR_ERRMSG_LEN] = "";

    mr_buf_init(&b);
    assert_int_equal(up_region_action("/nonexistent", "us", "explode", NULL, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "expected kill, freeze, thaw, restart, partition or heal"));
    assert_int_equal(up_region_action("/nonexistent", "us", "kill", "edge", &b, err), MR_EINVAL);
    assert_int_equal(up_region_action("/nonexistent", "us", "kill", NULL, &b, err), MR_ENOTFOUND);
    assert_non_null(strstr(err, "no topology.json"));
    assert_int_equal(up_down("/nonexistent", 1000, err), MR_ENOTFOUND);
    mr_buf_close(&b);
}

static void latency_and_sites_parse_and_errors_name_the_line(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "";

    /* the default: round trips of 70, 215 and 165 ms, three sites */
    assert_int_equal(up_topology_load(NULL, &t, err), 0);
    assert_true(t->latency_ms[0][1] == 35 && t->latency_ms[1][0] == 35);
    assert_true(t->latency_ms[0][2] == 107.5 && t->latency_ms[2][1] == 82.5);
    assert_int_equal(t->n_sites, 3);
    assert_string_equal(t->sites[1].name, "Frankfurt");
    assert_true(t->sites[2].latency_ms[2] == 2);
    assert_true(t->latency_scale == 1);
    up_topology_free(t);

    /* one direction only, and a latency before the regions it names */
    assert_int_equal(parse("[latency]\na->b = 10ms\nb a = 3\n[region a]\n[region b]\n", &t, err),
                     0);
    assert_true(t->latency_ms[0][1] == 3 && t->latency_ms[1][0] == 3);
    up_topology_free(t);
    assert_int_equal(parse("[region a]\n[region b]\n[latency]\nb a = 3\na->b = 10ms\n", &t, err),
                     0);
    assert_true(t->latency_ms[0][1] == 10 && t->latency_ms[1][0] == 3);
    up_topology_free(t);

    expect_error("[region a]\n[region b]\n[latency]\na b = far\n", "t.ini:4:",
                 "expected a one-way latency such as 35ms");
    expect_error("[region a]\n[region b]\n[latency]\na c = 1ms\n", "t.ini:4:",
                 "expected a region of this topology, found 'c'");
    expect_error("[region a]\n[region b]\n[latency]\na a = 1ms\n", "t.ini:4:",
                 "expected two different regions");
    expect_error("[region a]\n[region b]\n[latency]\nab = 1ms\n", "t.ini:4:",
                 "expected 'REGION REGION' or 'REGION->REGION'");
    expect_error("[region a]\n[region b]\n[site Home]\na = 1ms\n", "t.ini:3:",
                 "[site Home]: expected a latency to every region, found none to 'b'");
    expect_error("[region a]\n[site X]\na = 1\n[site X]\n", "t.ini:4:",
                 "site 'X' is already defined at line 2");
    /* Two names that make the same wan link name. */
    expect_error("[region a]\n[site New York]\na = 1\n[site New/York]\na = 2\n", "t.ini:4:",
                 "site 'New/York': its WAN link name 'site.New_York' is that of site 'New York' "
                 "(line 2)");
}

static void sites_get_a_link_and_a_node_route_per_region(void **state)
{
    struct up_topology *t;
    char err[MR_ERRMSG_LEN] = "", name[UP_SITE_LINK_MAX + 1], *url;
    struct mr_buf b;

    (void)state;
    assert_int_equal(parse("[topology]\nbase_port = 40000\n[region us]\n[region eu]\n"
                           "[site São Paulo]\nus = 60ms\neu = 95\n", &t, err), 0);
    assert_string_equal(t->sites[0].slug, "S__o_Paulo"); /* UTF-8: two bytes */
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    assert_true(t->wan_site_port[0][0] > 0 && t->wan_site_port[0][1] > 0);
    t->wan_site_port[0][0] = 41020;
    t->wan_site_port[0][1] = 41021;
    t->latency_scale = 0.5;
    up_site_link_name(t, 0, 1, name, sizeof(name));
    assert_string_equal(name, "site.S__o_Paulo->eu");
    url = up_site_node_url(t, 0, 1);
    assert_string_equal(url, "https://127.0.0.1:41021"); /* tls = yes by default */
    mr_free(url);
    mr_buf_init(&b);
    up_wan_ini(t, &b);
    assert_non_null(strstr(b.data, "[link site.S__o_Paulo->us]\nlatency = 30.000ms\n"
                                   "reply_latency = 30.000ms\n"));
    assert_non_null(strstr(b.data, "[route site.S__o_Paulo->eu]\nlisten = 127.0.0.1:41021\n"
                                   "target = 127.0.0.1:40005\nlink = site.S__o_Paulo->eu\n"));
    mr_buf_close(&b);
    up_topology_free(t);

    /* One region: no wan, the site's clients talk to the node itself. */
    assert_int_equal(parse("[topology]\nbase_port = 40000\n[region us]\n[site Home]\nus = 1\n",
                           &t, err), 0);
    assert_int_equal(up_topology_assign_ports(t, err), 0);
    url = up_site_node_url(t, 0, 0);
    assert_string_equal(url, "https://127.0.0.1:40002");
    mr_free(url);
    up_topology_free(t);
}

static void wan_ini_has_a_link_per_pair_and_the_routes(void **state)
{
    struct up_topology *t = two_regions();
    struct mr_buf b;
    char **argv;

    mr_buf_init(&b);
    t->latency_ms[0][1] = 35;
    t->latency_ms[1][0] = 30;
    t->latency_scale = 0.1;
    up_wan_ini(t, &b);
    assert_null(strstr(b.data, "token = ")); /* auth = no */
    assert_non_null(strstr(b.data, "[link us->eu]\nlatency = 3.500ms\nreply_latency = 3.000ms\n"));
    assert_non_null(strstr(b.data, "[link eu->us]\nlatency = 3.000ms\nreply_latency = 3.500ms\n"));
    assert_non_null(strstr(b.data, "[route etcd-peer-eu]\nlisten = 127.0.0.1:41002\n"
                                   "target = 127.0.0.1:40004\nto = eu\n"));
    assert_non_null(strstr(b.data, "[route etcd-client-eu->us]\nlisten = 127.0.0.1:41011\n"
                                   "target = 127.0.0.1:40000\nlink = eu->us\n"));
    /* Node to node (global tables' streams) over the same directed link. */
    assert_non_null(strstr(b.data, "[route node-eu->us]\nlisten = 127.0.0.1:41031\n"
                                   "target = 127.0.0.1:40002\nlink = eu->us\n"));
    argv = up_wan_argv(t, "/run/x", "/bin/meridian");
    assert_string_equal(argv[1], "wan");
    assert_string_equal(argv[4], "/run/x/wan.ini");
    up_argv_free(argv);
    mr_buf_close(&b);
    up_topology_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_topology_has_three_regions_and_local_timers),
        cmocka_unit_test(shipped_default_file_is_the_builtin_text),
        cmocka_unit_test(full_topology_parses_every_key),
        cmocka_unit_test(unknown_key_and_section_name_file_line_and_key),
        cmocka_unit_test(bad_values_say_expected_and_found),
        cmocka_unit_test(election_timeout_must_cover_five_heartbeats),
        cmocka_unit_test(region_names_are_checked),
        cmocka_unit_test(syntax_errors_and_long_lines_name_the_line),
        cmocka_unit_test(missing_file_is_named),
        cmocka_unit_test(base_port_gives_consecutive_ports),
        cmocka_unit_test(kernel_ports_are_distinct),
        cmocka_unit_test(etcd_argv_has_every_flag),
        cmocka_unit_test(node_argv_runs_the_same_binary),
        cmocka_unit_test(shop_ini_enables_faults_behind_the_cluster_tokens),
        cmocka_unit_test(node_ini_lists_own_etcd_first_and_passes_limits),
        cmocka_unit_test(node_ini_names_the_wan_and_edges_for_the_dashboard),
        cmocka_unit_test(node_ini_refuses_lines_the_node_cannot_read),
        cmocka_unit_test(rundir_is_laid_out_and_not_reused),
        cmocka_unit_test(node_config_check_reports_the_nodes_refusal),
        cmocka_unit_test(endpoint_table_shows_each_region),
        cmocka_unit_test(pid_alive_ignores_zombies),
        cmocka_unit_test(kind_names_round_trip),
        cmocka_unit_test(region_action_checks_arguments_before_anything),
        cmocka_unit_test(latency_and_sites_parse_and_errors_name_the_line),
        cmocka_unit_test(wan_ini_has_a_link_per_pair_and_the_routes),
        cmocka_unit_test(sites_get_a_link_and_a_node_route_per_region),
        cmocka_unit_test(shops_per_region_get_their_own_ports),
        cmocka_unit_test(session_wait_fits_in_the_edges_try_timeout),
        cmocka_unit_test(tls_topology_gives_every_process_its_certificate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
