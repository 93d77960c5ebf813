/* shop.h -- `meridian shop`: the reference online shop on Meridian's data paths.
 *
 * A stateless HTTP service on one libuv loop that talks only to its own
 * region's node (keep-alive pool, src/http): the catalog, orders and stock
 * live in the global SQL database, sessions and preferences in the lww global
 * table "sessions", carts in the crdt global table "carts".  It serves a JSON
 * API under /api/ and server-rendered HTML pages (docs/shop.md).
 *
 * Depends on src/http, src/common, jansson and OpenSSL (SHA-256).
 * Nothing here is thread-safe; everything runs on the loop given to shop_start.
 */
#ifndef MR_SHOP_H
#define MR_SHOP_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "../common/cfg.h"

/* ---- limits that are not configurable (docs/shop.md) ---- */
#define SHOP_SKU_MAX 32          /* sku: 1..32 of [a-z0-9-] */
#define SHOP_SID_HEX 32          /* session id: 128 random bits in hex */
#define SHOP_MAX_LINES_HARD 60   /* a checkout is 2 statements per line + 1 (node: 128) */
#define SHOP_QUERY_MAX 100       /* search text, bytes */

struct shop_config {
    char *listen;            /* host:port */
    int reuse_port;          /* share <listen> with other shops (SO_REUSEPORT) */
    char *instance_listen;   /* "" or host:port reaching this shop alone */
    char *node;              /* http://host:port of this region's node */
    char *region;            /* shown on every answer (Meridian-Region) */
    char *log_level;
    char *session_cookie;
    char *token_cookie;
    int64_t session_ttl_ms;
    int64_t max_lines;       /* lines per cart */
    int64_t max_qty;         /* quantity per line */
    int64_t max_body;        /* request body bytes */
    int64_t node_timeout_ms; /* one call to the node */
    int64_t page_size;       /* default products per page */
    int64_t catalog_max_age; /* Cache-Control max-age of catalog answers, seconds */
    int64_t catalog_swr;     /* stale-while-revalidate, seconds */
    int64_t catalog_sie;     /* stale-if-error, seconds */
    int64_t retry_after;     /* Retry-After seconds when the region is unavailable */
    /* [faults]: the fault-injection endpoint POST/GET /admin/faults (faults.c) */
    int faults_enabled;      /* off by default: the endpoint answers 404 */
    char *faults_token;      /* removed (decision 030): anything but "none" is refused */
    char *node_token;        /* bearer token sent to the node ("none": no token) */
    int64_t faults_hold_ms;  /* mode hang: a held request is answered 503 after this */
    /* [tls]: all three or none ("").  With them the listeners speak TLS and
     * require a client certificate from ca_file (only the edges and the
     * cluster's tools reach a shop), and an https:// node is called with the
     * same certificate.  SIGHUP re-reads them (shop_reload_tls). */
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    /* [auth] token = NAME SCOPES SHA256HEX, as on the nodes (src/common/auth.h):
     * /admin/faults needs one with the admin scope.  Re-read on SIGHUP. */
    struct mr_cfg_list auth_tokens;
};

extern const struct mr_cfg_opt shop_cfg_opts[];
extern const size_t shop_cfg_n_opts;

/* Check the values the table cannot (node URL, listen address, cookie
 * names, log level, [tls]: all three files or none, each readable, and
 * required by an https:// node).  MR_ECONFIG with a message naming the key. */
int shop_config_check(const struct shop_config *cfg, char *err)
    __attribute__((warn_unused_result));

struct shop;

/* Bind and start serving.  <cfg> is borrowed and must outlive the shop.
 * On success *out is freed by shop_stop; on failure nothing is left open. */
int shop_start(uv_loop_t *loop, const struct shop_config *cfg, struct shop **out, char *err)
    __attribute__((warn_unused_result));
int shop_port(const struct shop *s);
/* The port of [shop] instance_listen, 0 when there is none. */
int shop_instance_port(const struct shop *s);
/* Close the listener and the node client, answer what is pending (503) and
 * free <s> once its handles are closed (the loop must keep running). */
void shop_stop(struct shop *s);
/* SIGHUP: re-read the [tls] files into the server and client contexts (a
 * no-op without [tls]).  New connections take the new certificate, live ones
 * keep theirs.  On failure the old certificate stays in use and <err> names
 * the file and the problem. */
int shop_reload_tls(struct shop *s, char *err) __attribute__((warn_unused_result));

/* SIGHUP: re-read the [auth] token lines of <path> (the shop's --config)
 * into a new table that replaces the old one at once.  On failure the old
 * tokens stay and <err> names the file and line.  Counted in
 * meridian_shop_auth_reloads_total either way. */
int shop_reload_auth(struct shop *s, const char *path, char *err) __attribute__((warn_unused_result));

/* ---- seed (seed.c): blocking, for `meridian shop seed` and `meridian up` ----
 * Declare the global tables, create the schema and insert <n_products>
 * products, idempotently (docs/shop.md).  <token> (may be NULL) is sent as
 * a bearer token: it needs the admin scope (table declarations, DDL).
 * Prints progress to <log> (may be NULL).  0, or MR_E* with a message in <err>. */
int shop_seed(const char *node_url, const char *token, int n_products, FILE *log, char *err)
    __attribute__((warn_unused_result));

/* The <i>-th product (0-based) of the generated catalog: deterministic, so
 * every seeding writes the same rows.  <sku>, <name>, <desc> receive text. */
void shop_catalog_product(int i, char sku[SHOP_SKU_MAX + 1], char name[96], char desc[320],
                          int64_t *price_cents, int64_t *stock);

#endif
