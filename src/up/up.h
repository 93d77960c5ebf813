/* up.h -- the local topology launcher behind `meridian up|down|region`.
 *
 * A topology file (INI, docs/topology.md) names the regions; for each one the
 * launcher runs one etcd member and one `meridian node`, all on 127.0.0.1,
 * with configs, data and logs under one run directory (RUNDIR):
 *
 *   RUNDIR/topology.json              live state, rewritten on every change
 *   RUNDIR/logs/up.log                the supervisor's log (--detach only)
 *   RUNDIR/logs/<region>-etcd.log     each child's stdout+stderr, appended
 *   RUNDIR/logs/<region>-node.log
 *   RUNDIR/<region>/etcd/             etcd data dir
 *   RUNDIR/<region>/node.ini          generated node config
 *   RUNDIR/<region>/data/             the node's data dir
 *
 * Three layers, one file each:
 *   topology.c    parse + validate the topology; ports; generate each etcd
 *                 argv and node.ini (pure functions, unit-tested)
 *   supervisor.c  up_run: the supervisor on a libuv loop (spawn, exit
 *                 tracking, readiness probes, control HTTP API, shutdown)
 *   client.c      what `down` and `region` do: read topology.json, talk to the
 *                 control API with http_fetch, fall back to signals
 *
 * Depends on src/common, src/http, libuv, jansson, inih.  Nothing here is
 * thread-safe.  Errors: 0 or a negative MR_E* with a message in <err>
 * (MR_ERRMSG_LEN bytes, caller-owned).
 */
#ifndef MR_UP_H
#define MR_UP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../common/auth.h"
#include "../common/buf.h"

#define UP_MAX_REGIONS 7
#define UP_MAX_SHOPS 8      /* `meridian shop` processes per region ([region NAME] shops) */
#define UP_REGION_NAME_MAX 32
#define UP_MAX_LIMITS 64
#define UP_MAX_SITES 8
#define UP_SITE_NAME_MAX 40
/* "site.<slug>-><region>": within the wan's WAN_NAME_MAX (80). */
#define UP_SITE_LINK_MAX (5 + UP_SITE_NAME_MAX + 2 + UP_REGION_NAME_MAX)

/* The processes of a region, in start order (a node starts once its own
 * region's etcd answers; the shop once its node is ready and the catalog
 * is seeded). */
enum up_proc_kind { UP_ETCD = 0, UP_NODE = 1, UP_SHOP = 2, UP_WAN = 3, UP_EDGE = 4 /* one per site */ };
#define UP_N_KINDS 3 /* per region; the wan is one for the topology */

/* "etcd" / "node" / "shop" / "wan" / "edge". */
const char *up_kind_name(enum up_proc_kind k);
/* Inverse of up_kind_name for the per-region kinds; -1 otherwise. */
int up_kind_parse(const char *s);
/* "etcd", "node", "shop" (every shop of a region) or "shop.N" (its shop N). */
int up_process_name_valid(const char *s);

/* ======================================================================
 * Topology (topology.c)
 * ====================================================================== */

struct up_region {
    char name[UP_REGION_NAME_MAX + 1]; /* [a-z0-9-]{1,32}, unique */
    int line;                          /* line of its [region NAME] header */
    char *log_level;                   /* node log level; NULL: the topology's */
    /* 0 until up_topology_assign_ports. */
    int etcd_client_port;
    int etcd_peer_port;
    int node_port;
    int64_t n_shops;                   /* [region NAME] shops: 1..UP_MAX_SHOPS */
    int shop_port;                     /* the region's shops (shared with SO_REUSEPORT) */
    /* With 2 shops or more, each also listens on a port of its own
     * ([shop] instance_listen): probes and fault injection reach one shop. */
    int shop_instance_port[UP_MAX_SHOPS];
};

/* A client site ([site NAME]): where users are, and how far each region is. */
struct up_site {
    char name[UP_SITE_NAME_MAX + 1];
    /* <name> as the wan's link names allow it: every byte outside
     * A-Za-z0-9 '.' '_' '-' becomes '_' ("New York" -> "New_York"); unique
     * within the topology (checked when parsed). */
    char slug[UP_SITE_NAME_MAX + 1];
    int line;
    double latency_ms[UP_MAX_REGIONS]; /* one-way to each region; -1: not given */
};

/* One `key = value` of the topology's [limits], copied into every node.ini. */
struct up_limit {
    char *key;
    char *value;
};

struct up_topology {
    char *source;               /* file path, or "(built-in default)" */
    /* [topology] -- the fields of up_topology_opts */
    char *name;
    char *cluster;              /* etcd key prefix and --initial-cluster-token */
    int64_t base_port;          /* 0: ports from the kernel */
    int64_t etcd_heartbeat_ms;
    int64_t etcd_election_ms;
    int64_t ready_timeout_ms;
    char *log_level;            /* the nodes' log level */
    int auth;                   /* [topology] auth: bearer tokens on (decision 019) */
    int tls;                    /* [topology] tls: mutual TLS between every process
                                   (decision 021): certificates in RUNDIR/tls/ */
    int edge_tls;               /* [topology] edge_tls: the edges' own listeners are
                                   TLS too (a certificate for 127.0.0.1, localhost) */
    /* With auth, the tokens of this run (up_topology_make_tokens): admin
     * (topology.json, the control APIs, `meridian shop seed`), peer (node
     * to node) and shop (write scope, each shop.ini). */
    char auth_admin[MR_AUTH_TOKEN_LEN + 1];
    char auth_peer[MR_AUTH_TOKEN_LEN + 1];
    char auth_shop[MR_AUTH_TOKEN_LEN + 1];
    struct up_region regions[UP_MAX_REGIONS];
    size_t n_regions;           /* 1..UP_MAX_REGIONS, in file order */
    struct up_limit limits[UP_MAX_LIMITS];
    size_t n_limits;
    /* [latency]: one-way delay from region i to region j, in ms, as written
     * (latency_scale is applied when the wan is configured). */
    double latency_ms[UP_MAX_REGIONS][UP_MAX_REGIONS];
    struct up_site sites[UP_MAX_SITES];
    size_t n_sites;
    double latency_scale;       /* --latency-scale; 1 by default, 0: no delay */
    /* The wan (a topology of 2 or more regions): its control port, the
     * shared route to each region's etcd peer port, and the route from
     * region i to region j's etcd client port.  0 until assigned; 0 also
     * means "no wan": children then talk directly. */
    int wan_control_port;
    int wan_peer_port[UP_MAX_REGIONS];
    int wan_client_port[UP_MAX_REGIONS][UP_MAX_REGIONS];
    /* The route from region i's node to region j's node (global tables'
     * replication streams), over link i->j. */
    int wan_node_port[UP_MAX_REGIONS][UP_MAX_REGIONS];
    /* The route from site s to region r's node (link up_site_link_name). */
    int wan_site_port[UP_MAX_SITES][UP_MAX_REGIONS];
    /* The route from site s to region r's shop, over the same link: the
     * site's edge sends its users' traffic there. */
    int wan_site_shop_port[UP_MAX_SITES][UP_MAX_REGIONS];
    /* Site s's `meridian edge` listens here (edge.c); 0 until assigned. */
    int edge_port[UP_MAX_SITES];
};

/* With [topology] auth = yes: fresh random tokens into t->auth_*, which
 * up_node_ini, up_shop_ini and up_wan_ini then write (hashed, except the
 * ones a client sends).  0, or MR_EIO when the random generator fails. */
int up_topology_make_tokens(struct up_topology *t, char *err) __attribute__((warn_unused_result));

/* "https" with [topology] tls, else "http": the scheme of every node, shop
 * and etcd URL the topology generates (the wan's and up's control APIs stay
 * plain HTTP on 127.0.0.1, behind the admin token). */
const char *up_scheme(const struct up_topology *t);
/* The same for the edges' public listeners ([topology] edge_tls). */
const char *up_edge_scheme(const struct up_topology *t);

/* 1 when the topology runs a wan (two regions or more). */
int up_topology_has_wan(const struct up_topology *t);

/* Append the wan config (docs/wan.md) of an assigned topology to <out>:
 * a link per ordered pair of regions with the scaled latency, the shared
 * etcd peer routes and the etcd client routes; then for every (site, region)
 * pair a link with the site's scaled latency both ways and a route to the
 * region's node. */
void up_wan_ini(const struct up_topology *t, struct mr_buf *out);

/* Write the wan link name of site <site> to region <region> into <buf>
 * (UP_SITE_LINK_MAX + 1 bytes): "site.<slug>-><region>".  Its "from" is
 * "site.<slug>", which never names a region (region names have no '.'), so
 * cutting a region cuts its site links too, and `meridian wan cut
 * site.<slug>` cuts one site. */
void up_site_link_name(const struct up_topology *t, size_t site, size_t region, char *buf,
                       size_t n);

/* The URL a client at site <site> uses for region <region>'s node: the wan's
 * route when there is a wan, else the node itself.  A new string: mr_free. */
char *up_site_node_url(const struct up_topology *t, size_t site, size_t region);

/* The same for region <region>'s shop: where site <site>'s edge sends its
 * users.  A new string: mr_free. */
char *up_site_shop_url(const struct up_topology *t, size_t site, size_t region);

/* The argv of the wan: <exe> wan run --config RUNDIR/wan.ini. */
char **up_wan_argv(const struct up_topology *t, const char *rundir, const char *exe);

/* The built-in default topology; the same text ships as
 * topologies/default.ini (a unit test keeps them equal). */
extern const char up_default_topology[];

/* Parse the topology file <path>, or the built-in default when <path> is NULL.
 * On success *out is a new topology to free with up_topology_free.  On failure
 * returns MR_ECONFIG with "file:line: key ..., expected ..., found ..." in
 * <err>, and *out is untouched. */
int up_topology_load(const char *path, struct up_topology **out, char *err)
    __attribute__((warn_unused_result));

/* Same, from the text <text>; <source> names it in messages. */
int up_topology_parse(const char *text, const char *source, struct up_topology **out, char *err)
    __attribute__((warn_unused_result));

void up_topology_free(struct up_topology *t);

/* Give every region its etcd client, etcd peer and node port: consecutive from
 * base_port (region i gets base+3i, +3i+1, +3i+2), or when base_port is 0 from
 * the kernel (bind 127.0.0.1:0 for all of them at once, read, close; another
 * process may take one before the child binds it: the child then fails and up
 * reports it).  Returns 0 or MR_EIO. */
int up_topology_assign_ports(struct up_topology *t, char *err)
    __attribute__((warn_unused_result));

/* Write a commented sample topology generated from the option tables. */
void up_topology_write_sample(FILE *f);

/* Index of region <name>, or -1. */
int up_topology_find(const struct up_topology *t, const char *name);

/* The argv of region <i>'s etcd member (argv[0] is <etcd_bin>), NULL-terminated;
 * free with up_argv_free.  Ports must be assigned.  <rundir> is absolute. */
char **up_etcd_argv(const struct up_topology *t, size_t i, const char *rundir,
                    const char *etcd_bin);
/* The argv of region <i>'s node: <exe> node --config RUNDIR/<region>/node.ini. */
char **up_node_argv(const struct up_topology *t, size_t i, const char *rundir, const char *exe);
/* The argv of region <i>'s shop: <exe> shop --config RUNDIR/<region>/shop.ini. */
char **up_shop_argv(const struct up_topology *t, size_t i, size_t shop, const char *rundir,
                    const char *exe);
/* The URL that reaches shop <shop> of region <i> alone (its instance port
 * with 2 shops or more, else the region's shop port).  The caller frees. */
char *up_shop_instance_url(const struct up_topology *t, size_t i, size_t shop);
/* Append region <i>'s shop.ini: listen on its shop port, its own region's
 * node (directly), the region's name; with tls the [tls] files under
 * <rundir>/tls. */
void up_shop_ini(const struct up_topology *t, size_t i, const char *rundir, struct mr_buf *out);
char *up_path_shop_ini(const char *rundir, const char *region);
/* The argv that seeds the catalog once, through region 0's node:
 * <exe> shop seed --node URL --dir RUNDIR (idempotent; docs/shop.md).  The
 * seed finds the admin token and, with tls, the admin certificate through
 * RUNDIR/topology.json. */
char **up_shop_seed_argv(const struct up_topology *t, const char *rundir, const char *exe);
void up_argv_free(char **argv);

/* Append region <i>'s node.ini to <out>.  Returns MR_ECONFIG when a line
 * would exceed the node's line limit (MR_CFG_MAX_LINE; a long RUNDIR). */
int up_node_ini(const struct up_topology *t, size_t i, const char *rundir, struct mr_buf *out,
                char *err) __attribute__((warn_unused_result));

/* New strings (free with mr_free) for the paths of the layout above. */
char *up_path_log(const char *rundir, const char *region, enum up_proc_kind k);
/* RUNDIR/logs/<region>-shop.log for shop 0, <region>-shop.<n>.log after. */
char *up_path_shop_log(const char *rundir, const char *region, size_t shop);
char *up_path_node_ini(const char *rundir, const char *region);

/* ======================================================================
 * Certificates (certs.c): with [topology] tls, RUNDIR/tls/ (mode 0700)
 *
 *   ca.crt, ca.key              a throw-away CA named after the cluster
 *   node-<region>.crt/.key      one certificate per process, all for the
 *   etcd-<region>.crt/.key      hosts 127.0.0.1 and localhost (processes
 *   shop-<region>.crt/.key      dial each other through the wan's loopback
 *   edge-<slug>.crt/.key        ports); the region's shops share one
 *   admin.crt/.key              the client certificate of scripts and tests
 *
 * Made fresh at every up: a run directory never holds a previous run
 * (up_rundir_prepare), so nothing is ever reused.  Keys are 0600.
 * ====================================================================== */

#define UP_TLS_HOSTS "127.0.0.1,localhost"
#define UP_TLS_ADMIN "admin"

/* RUNDIR/tls/<name>.crt and .key, and RUNDIR/tls/ca.crt (new strings). */
char *up_path_tls_cert(const char *rundir, const char *name);
char *up_path_tls_key(const char *rundir, const char *name);
char *up_path_tls_ca(const char *rundir);
/* The certificate name of region <i>'s <kind> (etcd, node, shop) or of
 * site <i>'s edge (UP_EDGE): "node-us-east-1", "edge-New_York". */
void up_tls_name(const struct up_topology *t, enum up_proc_kind kind, size_t i, char *buf,
                 size_t n);
/* Create RUNDIR/tls and every certificate above.  0, or MR_EIO / MR_ECONFIG
 * with the file and the problem in <err>. */
int up_tls_make(const struct up_topology *t, const char *rundir, char *err)
    __attribute__((warn_unused_result));

/* ======================================================================
 * Run directory and supervisor (supervisor.c)
 * ====================================================================== */

/* Make <dir> ready for a new run: create it (and parents) if missing and
 * refuse it when it holds a topology.json (a run in progress, or a previous
 * one: its data would not match the new ports).  Creates logs/ and, for each
 * region, <region>/ and <region>/data/, and writes every node.ini (so <t>
 * must have its ports assigned).  On success *abs is the absolute path (free
 * with mr_free); MR_EEXIST when the directory holds a run. */
int up_rundir_prepare(const char *dir, const struct up_topology *t, char **abs, char *err)
    __attribute__((warn_unused_result));

/* Run `<exe> node --check-config --config RUNDIR/<region>/node.ini` for every
 * region, after up_rundir_prepare: the node's own option table checks what
 * the topology passes through ([limits]) before anything starts.  Returns 0,
 * or MR_ECONFIG with the node's message in <err>. */
int up_check_node_configs(const struct up_topology *t, const char *rundir, const char *exe,
                          char *err) __attribute__((warn_unused_result));

struct up_run_opts {
    const char *rundir;       /* absolute, prepared by up_rundir_prepare */
    const char *exe;          /* binary run as the node: "/proc/self/exe" */
    const char *etcd_bin;     /* "etcd" (found in PATH) */
    int64_t ready_timeout_ms; /* 0: the topology's ready_timeout */
    /* -1 in the foreground: the endpoint table goes to stdout.  With
     * --detach, the write end of a pipe: up_run writes "R<table>" once every
     * region is ready, or "F<message>" once a failed start has been cleaned
     * up, then closes it (up_run owns it from the call on). */
    int ready_fd;
};

/* Run the supervisor until shutdown (SIGINT, SIGTERM, SIGHUP or POST
 * /shutdown): start every region, wait until all are ready, serve the control
 * API, report unexpected exits, and stop every child on the way out.  <t>
 * must have its ports assigned; it stays the caller's.  Returns 0 after a
 * shutdown that followed a successful start, or MR_EUNAVAIL / MR_ETIMEDOUT
 * when the start failed.  Either way every child is stopped by then.  On
 * failure the full report (region, process, log file and its last lines) has
 * already gone to stderr or to <ready_fd>; <err> holds its first line. */
int up_run(const struct up_topology *t, const struct up_run_opts *o, char *err)
    __attribute__((warn_unused_result));

/* ======================================================================
 * Clients of a running supervisor (client.c)
 * ====================================================================== */

/* Ask the supervisor of <rundir> to <action> ("kill", "freeze", "thaw",
 * "restart") the processes of <region>; <process> is NULL (both), "etcd" or
 * "node".  kill returns once the processes are gone, restart once they are
 * ready again.  Appends a human-readable summary to <out>.  Returns 0, or
 * MR_ENOTFOUND (no such rundir/region), MR_EINVAL, MR_ECONN (supervisor not
 * answering), MR_ETIMEDOUT, MR_EUNAVAIL (the action failed). */
int up_region_action(const char *rundir, const char *region, const char *action,
                     const char *process, struct mr_buf *out, char *err)
    __attribute__((warn_unused_result));

/* Append a table of every process with its state to <out>: from the
 * supervisor's GET /status, or from topology.json when it is gone. */
int up_status(const char *rundir, struct mr_buf *out, char *err)
    __attribute__((warn_unused_result));

/* Stop the topology of <rundir>: POST /shutdown and wait (at most
 * <timeout_ms>) until the supervisor has exited.  When the supervisor is dead
 * or does not go, SIGTERM (then SIGKILL after 10 s) every pid that
 * topology.json lists and that still belongs to this rundir.  Returns 0 once
 * no process of the run is left, else MR_ETIMEDOUT. */
int up_down(const char *rundir, int64_t timeout_ms, char *err)
    __attribute__((warn_unused_result));

struct tls_ctx;
/* For the clients of a topology (`meridian sql`, `shop seed`, demo, game
 * day): a client-role TLS context from <rundir>/topology.json "auth":
 * {"ca_file", "cert_file", "key_file"}, else from $MERIDIAN_TLS_CA,
 * $MERIDIAN_TLS_CERT and $MERIDIAN_TLS_KEY (real hosts; <rundir> may be
 * NULL).  It is also set as http_fetch's context (https:// URLs).  *out is
 * NULL when neither names a CA (a plain topology); else the caller frees it
 * with up_client_tls_free, which also forgets it in http_fetch.  Returns 0,
 * or MR_ECONFIG when the files cannot be used (<err> names the file). */
int up_client_tls(const char *rundir, struct tls_ctx **out, char *err)
    __attribute__((warn_unused_result));
void up_client_tls_free(struct tls_ctx *t);

/* Append the endpoint table of a topology.json document (text) to <out>. */
int up_format_endpoints(const char *state_json, struct mr_buf *out, char *err)
    __attribute__((warn_unused_result));

/* 1 when <pid> exists and is not a zombie. */
int up_pid_alive(int pid);

/* ======================================================================
 * Edges: one `meridian edge` per client site (edge.c)
 *
 *   RUNDIR/edge-<slug>.ini        generated edge config
 *   RUNDIR/logs/edge-<slug>.log   its stdout+stderr
 *
 * The supervisor starts them once the wan is ready, counts them in "every
 * region is ready" (an edge is ready once its /readyz answers 200: one
 * region healthy), stops them first, and lists each under its site in
 * topology.json: "sites": [{"name", "latency_ms", "edge": {"url", "pid",
 * ...}}].
 * ====================================================================== */

/* Append site <site>'s edge config: listen on t->edge_port[site]; one
 * [region] per region whose origin is the wan's route from the site to
 * that region's shop (up_site_shop_url); timeouts scaled to the farthest region's round trip.
 * Returns MR_ECONFIG when a line would be too long for the edge to read. */
/* The nodes' [limits] session_wait: 2 s, or less so that a node's 503
 * reaches every site's edge within its try_timeout (edge.c). */
long up_session_wait_ms(const struct up_topology *t);
int up_edge_ini(const struct up_topology *t, size_t site, const char *rundir, struct mr_buf *out,
                char *err) __attribute__((warn_unused_result));
/* <exe> edge --config RUNDIR/edge-<slug>.ini; free with up_argv_free. */
char **up_edge_argv(const struct up_topology *t, size_t site, const char *rundir, const char *exe);
/* Write every site's edge config into <rundir>.  0, MR_ECONFIG or MR_EIO. */
int up_edges_write(const struct up_topology *t, const char *rundir, char *err)
    __attribute__((warn_unused_result));
/* New strings (mr_free): the paths above and "http://127.0.0.1:<port>". */
char *up_path_edge_ini(const char *rundir, const struct up_site *site);
char *up_path_edge_log(const char *rundir, const struct up_site *site);
char *up_edge_url(const struct up_topology *t, size_t site);

#endif
