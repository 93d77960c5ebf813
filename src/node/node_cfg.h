/* node_cfg.h -- the configuration of `meridian node` (one INI file).
 *
 *   [node]    region, cluster, data_dir, listen, etcd, log_level
 *   [limits]  sizes, counts and time bounds (see docs/config.md)
 *   [tables]  global tables: declared tables, peer URL overrides, clock skew
 *   [auth]    bearer tokens accepted (hashed) and sent to peers (docs/security.md)
 *   [dashboard] what the dashboard polls besides the other regions' nodes
 *   [tls]     the node's certificate: TLS on its listener and to other nodes
 *             and https:// etcd (all three keys or none; node_tls.c)
 *
 * The table in node_cfg.c is the single source of truth: it validates files
 * and flags and generates `meridian node --sample-config`.
 */
#ifndef MR_NODE_CFG_H
#define MR_NODE_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/cfg.h"

#define NODE_MAX_INFLIGHT 64   /* upper bound of limits.max_inflight_batches */

struct node_cfg {
    char *region;            /* this region's name, e.g. us-east-1 */
    char *cluster;           /* etcd key prefix: /meridian/<cluster>/ */
    char *data_dir;          /* the SQLite database lives here */
    char *listen;            /* host:port of the HTTP API (port 0: kernel picks) */
    char *etcd;              /* comma-separated etcd client URLs, nearest first */
    char *etcd_transport;    /* "gateway" (JSON over HTTP/1.1) or "grpc" (HTTP/2) */
    char *log_level;
    char *advertise_url;     /* how other nodes reach this one; "" = http://<listen> */
    int64_t max_body;
    int64_t max_connections;
    int64_t max_header_bytes;
    int64_t max_headers;
    int64_t header_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t max_rows;
    int64_t session_wait_ms;
    int64_t max_lag_ms;
    int64_t idempotency_window_ms;
    int64_t batch_max_txns;
    int64_t batch_max_bytes;
    int64_t etcd_timeout_ms;
    int64_t commit_timeout_ms;
    int64_t max_inflight_batches;
    int64_t compact_interval_ms;
    int64_t compact_min_step;
    /* [tables]: global tables (docs/tables.md) */
    char *tables_declare;        /* "none" or "name:lww|crdt[:ttl_field],..." */
    char *tables_peers;          /* "none" or "region=http://host:port,...": URL overrides */
    int64_t tables_clock_skew_ms;
    int64_t tables_batch_entries;
    int64_t tables_batch_bytes;
    int64_t tables_log_retention;
    int64_t tables_sweep_interval_ms;
    /* [auth]: docs/security.md */
    char *auth_required;         /* "auto", "yes" or "no" */
    struct mr_cfg_list auth_tokens;  /* "NAME SCOPES SHA256HEX" each */
    char *auth_peer_token;       /* "none" or the token sent to other nodes */
    /* [dashboard]: docs/dashboard.md */
    char *dashboard_wan;         /* "none" or the wan's control URL */
    char *dashboard_edges;       /* "none" or "name=http://host:port,..." */
    /* [tls]: docs/security.md; "none" (the default) for each: no TLS */
    char *tls_ca_file;           /* PEM: the cluster CA peers' certificates come from */
    char *tls_cert_file;         /* PEM: this node's certificate (server and client) */
    char *tls_key_file;          /* PEM: its private key */
};

extern const struct mr_cfg_opt node_cfg_opts[];
extern const size_t node_cfg_n_opts;

#endif
