/* node_cfg.c -- the option table of `meridian node`. */
#include "node_cfg.h"

#define F(f) offsetof(struct node_cfg, f)
#define DAY (24LL * 3600 * 1000)

const struct mr_cfg_opt node_cfg_opts[] = {
    {"node", "region", MR_CFG_STR, F(region), 0, 0, NULL, "this region's name, e.g. us-east-1"},
    {"node", "cluster", MR_CFG_STR, F(cluster), 0, 0, "meridian", "cluster name (etcd key prefix)"},
    {"node", "data_dir", MR_CFG_STR, F(data_dir), 0, 0, NULL, "directory of the region's SQLite database"},
    {"node", "listen", MR_CFG_STR, F(listen), 0, 0, "127.0.0.1:8080", "HTTP API address host:port"},
    {"node", "etcd", MR_CFG_STR, F(etcd), 0, 0, NULL,
     "etcd client URLs, comma-separated, own region's first"},
    {"node", "etcd_transport", MR_CFG_STR, F(etcd_transport), 0, 0, "grpc",
     "how to talk to etcd: gateway (JSON over HTTP/1.1) or grpc (native gRPC over HTTP/2)"},
    {"node", "advertise_url", MR_CFG_STR, F(advertise_url), 0, 0, "auto",
     "URL other regions' nodes use to reach this one (auto: http://<listen address>, https:// "
     "with [tls])"},
    {"node", "log_level", MR_CFG_STR, F(log_level), 0, 0, "info", "debug, info, warn or error"},
    {"limits", "max_body", MR_CFG_SIZE, F(max_body), 1024, 64 << 20, "1m", "largest request body"},
    {"limits", "max_connections", MR_CFG_INT, F(max_connections), 1, 1000000, "4096",
     "client connections at once"},
    {"limits", "max_header_bytes", MR_CFG_SIZE, F(max_header_bytes), 1024, 1 << 20, "16k",
     "request line and headers; over it 431"},
    {"limits", "max_headers", MR_CFG_INT, F(max_headers), 1, 10000, "64",
     "header fields per request; over it 431"},
    {"limits", "header_timeout", MR_CFG_DURATION, F(header_timeout_ms), 100, 600000, "10s",
     "time to receive a request's head (slowloris guard); past it 408 and close"},
    {"limits", "idle_timeout", MR_CFG_DURATION, F(idle_timeout_ms), 100, 3600000, "60s",
     "a keep-alive connection with nothing to do is closed after this"},
    {"limits", "max_rows", MR_CFG_INT, F(max_rows), 1, 10000000, "10000", "rows returned per statement"},
    {"limits", "session_wait", MR_CFG_DURATION, F(session_wait_ms), 0, 60000, "2s",
     "how long a session or strong read waits for the replica to catch up before 503"},
    {"limits", "max_lag", MR_CFG_DURATION, F(max_lag_ms), 100, 3600000, "5s",
     "replication lag above which /readyz fails"},
    {"limits", "idempotency_window", MR_CFG_DURATION, F(idempotency_window_ms), 1000, 30 * DAY, "24h",
     "how long idempotency keys are remembered"},
    {"limits", "batch_max_txns", MR_CFG_INT, F(batch_max_txns), 1, 100000, "2000",
     "transactions per etcd write (group commit)"},
    {"limits", "batch_max_bytes", MR_CFG_SIZE, F(batch_max_bytes), 1024, 1 << 20, "1m",
     "bytes per etcd write (etcd refuses requests over 1.5 MiB)"},
    {"limits", "etcd_timeout", MR_CFG_DURATION, F(etcd_timeout_ms), 100, 60000, "3s",
     "timeout of one etcd request before trying the next endpoint"},
    {"limits", "commit_timeout", MR_CFG_DURATION, F(commit_timeout_ms), 500, 300000, "15s",
     "how long a write waits for its commit before answering 503 (outcome unknown)"},
    {"limits", "max_inflight_batches", MR_CFG_INT, F(max_inflight_batches), 1, NODE_MAX_INFLIGHT, "2",
     "batches put to etcd and not yet applied here (fewer: bigger batches, fewer etcd writes)"},
    {"limits", "compact_interval", MR_CFG_DURATION, F(compact_interval_ms), 100, 3600000, "10s",
     "how often the applied position is announced and the log compacted"},
    {"limits", "compact_min_step", MR_CFG_INT, F(compact_min_step), 1, 1000000000, "1000",
     "compact only when at least this many revisions can go"},
    {"limits", "tables_batch_entries", MR_CFG_INT, F(tables_batch_entries), 1, 100000, "2000",
     "global tables: change-log entries per replication batch to one peer"},
    {"limits", "tables_batch_bytes", MR_CFG_SIZE, F(tables_batch_bytes), 4096, 16 << 20, "512k",
     "global tables: bytes per replication batch (keep under the peers' max_body)"},
    {"limits", "tables_log_retention", MR_CFG_INT, F(tables_log_retention), 1, 1000000000, "1000000",
     "global tables: own change-log entries kept for peers that have not acknowledged them; past it "
     "the oldest go and such a peer must be seeded"},
    {"limits", "tables_sweep_interval", MR_CFG_DURATION, F(tables_sweep_interval_ms), 100, 3600000, "1s",
     "global tables: how often expired items are removed and tombstones collected"},
    {"tables", "declare", MR_CFG_STR, F(tables_declare), 0, 0, "none",
     "tables created at start: name:lww|crdt[:ttl_field], comma-separated (none: no table)"},
    {"tables", "peers", MR_CFG_STR, F(tables_peers), 0, 0, "none",
     "URL to reach a peer region's node, overriding the one it publishes in etcd: "
     "region=http://host:port (https:// with [tls]), comma-separated (none: use etcd's)"},
    {"tables", "clock_skew_ms", MR_CFG_INT, F(tables_clock_skew_ms), -3600000, 3600000, "0",
     "testing: milliseconds added to this node's clock for table timestamps (also env "
     "MERIDIAN_CLOCK_SKEW_MS, for the region in MERIDIAN_CLOCK_SKEW_REGION or every region)"},
    {"auth", "required", MR_CFG_STR, F(auth_required), 0, 0, "auto",
     "whether the SQL and table APIs, /metrics and /v1/status need a bearer token: auto (yes when "
     "a token is configured), "
     "yes (and refuse to start without one) or no (tokens ignored, for a rollout)"},
    {"auth", "token", MR_CFG_LIST, F(auth_tokens), 0, 0, NULL,
     "a token accepted here: NAME SCOPES SHA256HEX, scopes read,write,admin,peer (repeat the key, "
     "at most 64; `meridian token new` prints the line); re-read on SIGHUP"},
    {"auth", "peer_token", MR_CFG_STR, F(auth_peer_token), 0, 0, "none",
     "the token (in clear) this node sends to the other regions' nodes: needs the peer scope there "
     "(none: send no token)"},
    {"dashboard", "wan", MR_CFG_STR, F(dashboard_wan), 0, 0, "none",
     "the WAN emulator's control URL, http://host:port, whose links the dashboard shows (none: no wan)"},
    {"dashboard", "edges", MR_CFG_STR, F(dashboard_edges), 0, 0, "none",
     "edges the dashboard shows: name=http://host:port, comma-separated (none: no edge)"},
    {"tls", "ca_file", MR_CFG_STR, F(tls_ca_file), 0, 0, "none",
     "PEM file of the cluster CA: client and peer certificates must come from it (none: no TLS; "
     "ca_file, cert_file and key_file go together)"},
    {"tls", "cert_file", MR_CFG_STR, F(tls_cert_file), 0, 0, "none",
     "PEM file of this node's certificate, used by its listener (TLS only then) and for its "
     "calls to other nodes and to https:// etcd; re-read on SIGHUP"},
    {"tls", "key_file", MR_CFG_STR, F(tls_key_file), 0, 0, "none",
     "PEM file of the certificate's private key; re-read on SIGHUP"},
};

const size_t node_cfg_n_opts = sizeof(node_cfg_opts) / sizeof(node_cfg_opts[0]);
