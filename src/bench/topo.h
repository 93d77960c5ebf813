/* topo.h -- a local topology for the demo and the benchmarks: started with
 * the same launcher as everything else (`meridian up --detach`), read back
 * from RUNDIR/topology.json, stopped with `meridian down`. */
#ifndef MR_TOPO_H
#define MR_TOPO_H

#include <jansson.h>
#include <stddef.h>

#include "../common/auth.h"

struct tls_ctx;

#define TOPO_MAX_REGIONS 8
#define TOPO_MAX_SITES 8

struct topo_region {
    char name[40];
    char host[64];
    int port;
    char url[128];
    char shop_url[128];        /* the region's shop; "" when topology.json lists none */
    char auth[MR_AUTH_HEADER_MAX]; /* "Authorization: Bearer ...\r\n" for its node API, from
                                  topology.json "auth"; "" when the run has no token */
};

/* A client site of the topology (topology.json "sites"): its one-way
 * latency to each region (scaled), where its clients connect to reach each
 * region's node and shop -- the wan's routes over the site's link -- and
 * the site's edge. */
struct topo_site {
    char name[48];
    double latency_ms[TOPO_MAX_REGIONS];  /* by region index */
    char host[TOPO_MAX_REGIONS][64];
    int port[TOPO_MAX_REGIONS];           /* 0: no route listed for that region */
    char shop_host[TOPO_MAX_REGIONS][64];
    int shop_port[TOPO_MAX_REGIONS];      /* 0: no shop route listed ("shop_urls") */
    char edge_url[128];                   /* "" when the site has no edge */
    char edge_host[64];
    int edge_port;
};

struct topo {
    char *rundir;              /* owned */
    int remove_dir;            /* created by topo_up: removed by topo_down */
    struct topo_region regions[TOPO_MAX_REGIONS];
    size_t n_regions;
    struct topo_site sites[TOPO_MAX_SITES];
    size_t n_sites;            /* sites with a node url for every region */
    char auth[MR_AUTH_HEADER_MAX]; /* the same for every node: http_client_opts.headers */
    char token[MR_AUTH_TOKEN_MAX + 1]; /* the admin token itself ("" without one): the dashboard link */
    /* A topology with TLS (topology.json "auth": {"ca_file", "cert_file",
     * "key_file"}): a client context with the run's admin certificate, for
     * every node and shop URL (https://); also set as http_fetch's.  NULL
     * for a plain topology.  Owned; freed by topo_down and topo_detach. */
    struct tls_ctx *tls;
};

/* Start <topology> (NULL: the default) in <dir> (NULL: a new temporary
 * directory, removed again by topo_down) with <exe> (the meridian binary),
 * emulated distances multiplied by <latency_scale> (NULL: up's default,
 * "0": none, for throughput figures).  Output of `up` goes to stdout when
 * <verbose>.  Returns 0 or MR_E* with <err>; nothing is left running on
 * failure. */
int topo_up(struct topo *t, const char *exe, const char *topology, const char *dir,
            const char *latency_scale, int verbose, char *err) __attribute__((warn_unused_result));

/* Read an already running topology from RUNDIR/topology.json (for
 * `--dir`).  topo_down on it stops that topology; topo_detach only frees. */
int topo_attach(struct topo *t, const char *rundir, char *err) __attribute__((warn_unused_result));
void topo_detach(struct topo *t);

/* Run <argv> (argv[0] a path) and wait; its stdout goes to /dev/null unless
 * <verbose>.  Returns its exit status, or -1. */
int topo_run(char *const argv[], int verbose);

/* rm -rf <dir>: 0, or -1 when it could not be removed. */
int topo_remove_dir(const char *dir);

/* Stop everything and free <t>'s strings. */
void topo_down(struct topo *t, const char *exe);

/* POST a JSON body to <r>'s /v1/sql; *answer gets the parsed reply (caller
 * json_decref) and *status the HTTP status.  Returns 0 or MR_E*. */
int topo_sql(const struct topo_region *r, const char *body, int *status, json_t **answer,
             char *err) __attribute__((warn_unused_result));

/* GET <path> of <r> as JSON. */
int topo_get_json(const struct topo_region *r, const char *path, json_t **answer, char *err)
    __attribute__((warn_unused_result));

/* GET <url> as JSON (any status); *answer: caller json_decref. */
int topo_fetch_json(const char *url, json_t **answer, char *err) __attribute__((warn_unused_result));

#endif
