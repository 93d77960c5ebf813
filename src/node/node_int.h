/* node_int.h -- what the files of src/node/ share; not for other modules.
 *
 * Token format (opaque to clients, documented in docs/api.md; grammar and
 * code in src/common/token.h):
 *     "1.<rev>[.<region>=<seq>]..."   the SQL log revision, then the global
 * tables' change-log position per origin region, whose effects the reader
 * must see.  SQL reads use <rev> only; table reads the positions.
 *
 * Log entry format (the value of the etcd key /meridian/<cluster>/log; one
 * put per batch, its mod_revision is the batch's log position):
 *     {"v":1,"id":"<batch id>","origin":"<region>","ts":<ms>,
 *      "txns":[{"id":"<txn id>","key":"<idempotency key>"|null,"time":<ms>,
 *               "seed":"<u64>","stmts":[{"sql":"...","params":[...]|{...}|null}]}]}
 * Txn ids are "<region>.<boot nonce>.<counter>": unique across restarts.
 */
#ifndef MR_NODE_INT_H
#define MR_NODE_INT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "../common/auth.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/metrics.h"
#include "../etcd/etcd.h"
#include "../http/http.h"
#include "../common/token.h"
#include "../gtab/gtab.h"
#include "../sql/store.h"
#include "node.h"

#define NODE_TOKEN_VERSION "1"
#define NODE_MAX_IDEM_KEY 128
#define NODE_MAX_ORIGINS 16     /* regions tracked for per-pair lag; more are pooled in "other" */

enum node_route {
    ROUTE_SQL_REJECTED, /* /v1/sql refused before it was known to read or write */
    ROUTE_SQL_READ, ROUTE_SQL_WRITE, ROUTE_STATUS, ROUTE_DIGEST, ROUTE_HEALTHZ, ROUTE_READYZ,
    ROUTE_METRICS, ROUTE_OTHER,
    ROUTE_TABLE_READ, ROUTE_TABLE_WRITE, ROUTE_TABLE_REPLICATE, /* /v1/tables (tables.c) */
    ROUTE_DASHBOARD,    /* /dashboard, /v1/dashboard (dashboard.c) */
    ROUTE_REFUSED,      /* 401 and 403 of auth.c, whatever the path */
    ROUTE_COUNT
};

/* A parsed /v1/sql request.  Owns <doc>; <stmts> point into it. */
struct sql_req {
    json_t *doc;
    struct store_stmt *stmts;
    size_t n_stmts;
    enum { CONS_EVENTUAL, CONS_SESSION, CONS_STRONG } consistency;
    int64_t token_rev;          /* -1: no token */
    const char *idem_key;
    int read_only_caller;       /* the caller's token lacks the write scope: a
                                   request that writes is refused with 403 */
};
void sql_req_free(struct sql_req *r);
/* Parse and validate the JSON body of /v1/sql into <r> (freed with
 * sql_req_free, also after a failure).  MR_EINVAL with a message. */
int node__parse_sql_request(const struct http_request *hr, struct sql_req *r, char *err);
/* Strict: "1.<decimal rev>" and nothing else in this version. */
int node__parse_token(const char *s, int64_t *rev);

/* A log entry decoded for store_apply; <batch> points into <doc>. */
struct decoded {
    json_t *doc;
    struct store_batch batch;
    struct store_txn *txns;
    struct store_stmt *stmts;
};
/* Decode the log entry format above.  MR_ECORRUPT with a message when the
 * value is not a batch; free <d> with node__decoded_free either way. */
int node__decode_batch(const char *p, size_t len, struct decoded *d, char *err);
void node__decoded_free(struct decoded *d);

/* A write waiting for its transaction to come back through the log. */
struct pending_write {
    uint64_t counter;                 /* the txn id's counter */
    struct http_exchange *ex;
    int64_t start_us;
    int64_t deadline_us;
    struct pending_write *hnext;      /* hash chain */
    struct pending_write *prev, *next;/* deadline order (FIFO) */
};

/* A read waiting until the replica has applied <need_rev>. */
struct read_wait {
    struct http_exchange *ex;
    struct sql_req req;
    int64_t need_rev;                 /* -1: strong read, revision not known yet */
    int64_t start_us;
    int64_t deadline_us;
    int check_future;                 /* token beyond the known head: confirm with etcd */
    int recheck;                      /* failed store_check: check again once caught up */
    struct read_wait *prev, *next;
};

/* A batch (group commit): being filled, sealed and waiting, or being put. */
struct batch {
    struct node *n;
    struct mr_buf json;
    uint64_t *counters;
    size_t n_txns, cap;
    uint64_t no;                      /* the number in its id "<prefix>b<no>" */
    int64_t put_start_us;
    struct batch *next;               /* sealed queue */
};

struct node_stats {
    uint64_t requests[ROUTE_COUNT][6];   /* by route and status class 1xx..5xx (index 1..5) */
    struct mr_hist latency[ROUTE_COUNT];
    struct mr_hist batch_txns;           /* txns per applied batch */
    struct mr_hist put_seconds;          /* etcd put round trip */
    struct mr_hist get_seconds;          /* etcd linearizable get round trip */
    struct mr_hist commit_seconds;       /* write: request to local apply */
    struct mr_hist apply_lag_seconds;    /* batch submit time to local apply */
    /* The same per origin region: replication lag of each region pair. */
    struct {
        char origin[40];
        struct mr_hist lag;
        int64_t last_ms;
    } by_origin[NODE_MAX_ORIGINS];
    size_t n_origins;
    uint64_t writes, reads, forwarded_writes, idempotent_replays, commit_unknown;
    uint64_t batches_applied, txns_applied, batches_put, put_failures;
    uint64_t read_waits, read_wait_timeouts, watch_restarts, compactions, seeds, store_reopens;
    uint64_t auth_refused[MR_AUTH_RESULT_COUNT];   /* by enum mr_auth_result */
    uint64_t tls_reloads, tls_reload_failures;      /* SIGHUP (node_tls.c) */
    uint64_t auth_reloads, auth_reload_failures;    /* SIGHUP, [auth] tokens (auth.c) */
};

struct node {
    uv_loop_t *loop;
    const struct node_cfg *cfg;
    struct store *store;
    struct etcd *etcd;
    struct http_server *http;
    char log_key[256];
    char txn_prefix[96];          /* "<region>.<nonce>." */
    uint64_t next_counter;
    uint64_t next_batch;

    /* commit.c */
    struct batch *filling;            /* NULL when no transaction waits */
    struct batch *sealed_head, *sealed_tail;
    /* Batches put (or being put) and not yet applied here: group commit
     * waits while max_inflight_batches of them are out, so that requests
     * arriving meanwhile share the next etcd write. */
    struct {
        uint64_t no;
        int64_t since_us;
    } inflight[NODE_MAX_INFLIGHT];
    size_t n_inflight;
    struct pending_write **pending;   /* hash on counter */
    size_t pending_buckets, n_pending;
    struct pending_write *pend_head, *pend_tail;

    /* apply.c */
    struct etcd_watch *watch;
    int64_t watch_started_ms;
    char watch_endpoint[128];         /* the etcd member the watch streams from */
    uv_timer_t watch_retry;
    struct read_wait *waits_head, *waits_tail;
    struct read_wait *strong_head, *strong_tail;   /* strong reads needing a revision */
    int strong_get_inflight;
    struct store_position pos;        /* cached store_position */
    int64_t applied_at_ms;            /* wall time of the last apply */
    /* An I/O error while applying: the tick reopens the database
     * (reopen_due), events are ignored until the watch starts again from
     * the reopened position (apply_paused).  See node__store_reopen. */
    int reopen_due, apply_paused;
    int reopens_recent;               /* in the window starting at reopen_window_ms */
    int64_t reopen_window_ms;

    /* node.c: what etcd told us about the log's head */
    uv_timer_t probe_timer;
    int probe_inflight, status_inflight;
    int64_t head_rev, head_version;   /* latest log batch known to exist */
    int64_t fresh_at_ms;              /* replica known complete at this time */
    int64_t etcd_ok_ms;               /* last successful etcd answer */
    char etcd_error[MR_ERRMSG_LEN];
    int64_t last_status_ms;
    struct etcd_member_status members[ETCD_MAX_ENDPOINTS];
    int local_is_leader;

    int64_t probe_sent_ms;            /* when the probe in flight was sent */
    int64_t behind_since_ms;          /* first probe that saw the head ahead, 0: not behind */
    int64_t probe_head_rev;           /* head seen by a probe, not yet applied */
    int64_t probe_head_at_ms;         /* when that probe was sent */
    int64_t started_ms;

    /* node.c: log compaction (see compact_step) */
    char applied_prefix[256];         /* /meridian/<cluster>/applied/ */
    char applied_key[320];            /* ... + region */
    int compact_inflight;
    int64_t last_compact_ms;
    int64_t compacted_rev;            /* history below this is gone */

    /* seed.c */
    char advertise_url[256];          /* how the other nodes reach this one */
    char nodes_prefix[256];           /* /meridian/<cluster>/nodes/ */
    char nodes_key[320];              /* ... + region: advertise_url */
    int url_published, url_publishing;
    struct http_client *peer_http;    /* snapshot downloads, created on demand */
    int seeding;
    int64_t seed_need_rev;
    char **seed_peers;
    size_t n_seed_peers, seed_next;
    struct http_call *seed_call;
    int seed_fd;
    int64_t seed_bytes;
    char seed_path[512];
    uv_timer_t seed_retry;
    struct snap_send *snap_sends;

    /* tables.c, tstream.c: global tables */
    struct tables *tables;

    /* dashboard.c: the operations dashboard */
    struct dashboard *dash;

    uv_timer_t tick;                  /* deadlines of waiting requests */
    uv_check_t flush_check;           /* seals the batch after each loop turn */
    int stopping;
    int failed;
    char fail_reason[MR_ERRMSG_LEN];

    /* auth.c */
    struct mr_auth auth;
    int auth_enforce;                 /* [auth] required, resolved */
    int64_t auth_logged_ms;           /* last refusal logged */
    char peer_headers[MR_AUTH_HEADER_MAX];  /* sent to other nodes ("" without a token) */

    /* node_tls.c: NULL without [tls].  Freed in node_free, after the
     * server, the clients and etcd that use them are gone. */
    struct tls_ctx *tls_server;       /* the listener's */
    struct tls_ctx *tls_client;       /* calls to other nodes and https:// etcd */

    struct node_stats stats;
};

/* api.c */
void node__handle(struct http_exchange *ex, const struct http_request *req, void *data);
void node__respond_json(struct node *n, struct http_exchange *ex, enum node_route route,
                        int64_t start_us, int status, struct mr_buf *body, const char *headers);
void node__respond_error(struct node *n, struct http_exchange *ex, enum node_route route,
                         int64_t start_us, int status, const char *code, const char *msg,
                         const char *headers);
/* Classify a parsed request and send it on its way (write, wait, or read).
 * <may_recheck>: a request that does not prepare here is checked again once
 * the replica has caught up with the log's head (its schema may be newer
 * than this replica), instead of failing at once. */
void node__route_sql(struct node *n, struct http_exchange *ex, struct sql_req *req,
                     int64_t start_us, int may_recheck);
/* Answer a read now from the local replica. */
void node__serve_read(struct node *n, struct http_exchange *ex, struct sql_req *req,
                      int64_t start_us);
void node__format_token(char *out, size_t size, int64_t rev);

/* auth.c (rules at the top of the file) */
/* Fill <a> from [auth]; *enforce (may be NULL) says whether to check. */
int node__auth_build(const struct node_cfg *cfg, struct mr_auth *a, int *enforce, char *err);
/* SIGHUP: the [auth] token lines of <path> into a scratch table, then over
 * n->auth in one step between two requests (the loop runs one callback at
 * a time, so no check sees a half-built table).  On any error the old table
 * stays and the error (file:line) is logged; counted either way. */
void node__auth_reload(struct node *n, const char *path);
/* Send <token> ("none": nothing) to the other nodes from now on: the
 * header every peer client carries.  1 when it changed. */
int node__peer_token_set(struct node *n, const char *token);
/* A need that is not a scope: the read scope or the peer scope, either
 * suffices (/v1/status, which other regions' dashboards poll with their
 * peer token).  Never combined with scope bits. */
#define NODE_AUTH_READ_OR_PEER (1u << 16)
/* The dashboard (/dashboard, /v1/dashboard): the read scope, from the
 * Authorization header or, since a browser sends none, from the
 * NODE_DASHBOARD_COOKIE that GET /dashboard?token=T sets (decision 043). */
#define NODE_AUTH_DASHBOARD (1u << 17)
#define NODE_DASHBOARD_COOKIE "meridian_auth"
/* Scope bits <hr> needs before its body is looked at (or
 * NODE_AUTH_READ_OR_PEER); 0: open. */
unsigned node__auth_need(const struct http_request *hr);
/* 0 with *granted and *who (the token's name, "" when unchecked) set when
 * the caller has <need> (or checks are off), else answers 401 or 403 itself
 * and returns MR_EDENIED. */
int node__authorize(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                    unsigned need, unsigned *granted, const char **who);
/* Answer 401 (missing, unknown) or 403 (forbidden), count and log it. */
void node__auth_refuse(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                       enum mr_auth_result r, unsigned need, const char *who);
/* 1 when the statement's first keyword changes the schema. */
int node__sql_is_ddl(const char *sql);
/* http_client_opts for calls to other nodes: carry [auth] peer_token, and
 * the node's client certificate with [tls] (every connection is TLS then). */
void node__client_opts(const struct node *n, struct http_client_opts *o);

/* node_tls.c ([tls]; rules at the top of the file) */
/* 1 when [tls] names its three files. */
int node__tls_configured(const struct node_cfg *cfg);
/* [tls] has all three keys or none, and every URL's scheme agrees with it
 * (etcd, advertise_url, [tables] peers; https:// wan or edges need [tls]).
 * <load_files>: also read the files (errors name the file).  MR_ECONFIG. */
int node__tls_check_config(const struct node_cfg *cfg, int load_files, char *err)
    __attribute__((warn_unused_result));
/* Make n->tls_server and n->tls_client (nothing without [tls]). */
int node__tls_start(struct node *n, char *err) __attribute__((warn_unused_result));
void node__tls_free(struct node *n);

/* commit.c */
void node__submit_write(struct node *n, struct http_exchange *ex, struct sql_req *req,
                        int64_t start_us);
void node__commit_init(struct node *n);
void node__commit_close(struct node *n);
void node__commit_free(struct node *n);
/* A transaction of ours came back through the log. */
void node__txn_applied(struct node *n, const struct store_txn *txn, int rc, const char *result,
                       size_t len, int replayed, int64_t rev);
void node__commit_expire(struct node *n, int64_t now_us);
/* Start puts (sealing the filling batch) while fewer than the maximum fly. */
void node__commit_flush(struct node *n);
/* A batch whose id is <batch_id> was applied here: if it is ours, it no
 * longer counts as in flight. */
void node__batch_applied(struct node *n, const char *batch_id);

/* apply.c */
void node__apply_start(struct node *n);
void node__apply_close(struct node *n);
void node__wait_for_rev(struct node *n, struct http_exchange *ex, struct sql_req *req,
                        int64_t need_rev, int64_t start_us);
void node__wait_strong(struct node *n, struct http_exchange *ex, struct sql_req *req,
                       int64_t start_us, int recheck);
void node__waits_expire(struct node *n, int64_t now_us);
void node__fail(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void node__watch_start(struct node *n);
/* Open <path> as a replica with the node's store options. */
int node__store_open(struct node *n, const char *path, struct store **out, char *err);
/* Close and reopen the replica after an I/O error, then restart the watch
 * from the reopened position (on the tick, outside any etcd callback). */
void node__store_reopen(struct node *n);

/* seed.c */
void node__seed_init(struct node *n);
void node__seed_close(struct node *n);
void node__seed_free(struct node *n);
/* GET /v1/snapshot: a consistent copy of the replica, streamed. */
void node__snapshot_serve(struct node *n, struct http_exchange *ex, int64_t start_us);
/* Answer <ex> 200 with the file <path> (a copy made for this answer),
 * streamed in chunks as the socket drains, then removed.  On failure
 * (cannot open it: removed too) returns MR_EIO with <err> and <ex> is
 * still the caller's to answer. */
int node__serve_file(struct node *n, struct http_exchange *ex, const char *path, const char *content_type,
                     const char *headers, char *err);
/* Put this node's address under /meridian/<cluster>/nodes/<region> (once). */
void node__publish_url(struct node *n);
/* The log below <compact_revision> is gone: seed from a peer (-1: retry). */
void node__reseed_start(struct node *n, int64_t compact_revision);

/* tables.c: global tables (docs/tables.md) */
/* Open tables.db and declare the configured tables (no handle yet: on a
 * later start-up failure node__tables_free undoes it). */
int node__tables_start(struct node *n, char *err) __attribute__((warn_unused_result));
/* Start the handles: group commit, peer streams, sweeps. */
void node__tables_run(struct node *n);
void node__tables_close(struct node *n);
void node__tables_free(struct node *n);
/* Any request under /v1/tables. */
void node__tables_handle(struct node *n, struct http_exchange *ex, const struct http_request *hr);
void node__tables_metrics(struct node *n, struct mr_buf *b);
/* ,"tables":{...} for /v1/status. */
void node__tables_status(struct node *n, struct mr_buf *b);
/* Parse "[tables] declare" ("name:kind[:ttl_field],...") into <out>
 * (*n_out specs, at most <max>).  MR_ECONFIG with a message. */
int node__tables_parse_declare(const char *s, struct gtab_spec *out, size_t max, size_t *n_out,
                               char *err);
/* Parse "[tables] peers" ("region=http://host:port,...").  MR_ECONFIG. */
int node__tables_parse_peers(const char *s, char (*regions)[64], char (*urls)[256], size_t max,
                             size_t *n_out, char *err);

/* dashboard.c: GET /dashboard and /v1/dashboard (docs/dashboard.md) */
/* Check "[dashboard] wan" and "edges".  MR_ECONFIG with a message. */
int node__dashboard_check_config(const struct node_cfg *cfg, char *err)
    __attribute__((warn_unused_result));
/* Start sampling and polling peers, wan and edges once per second (a node
 * whose HTTP client cannot be made serves its own region only). */
void node__dashboard_start(struct node *n);
/* Stop the timer and cancel every call (node_stop). */
void node__dashboard_close(struct node *n);
/* Free it, once the loop has run out (node_free). */
void node__dashboard_free(struct node *n);
/* Answer GET /dashboard (<page> 1: the HTML page) or GET /v1/dashboard. */
void node__dashboard_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                           int page);
/* Requests clients made here (monitoring and node-to-node replication
 * excluded) and how many of them were answered 5xx, since start. */
void node__client_counts(const struct node *n, uint64_t *requests, uint64_t *errors);

/* node.c */
/* Staleness bound of the local replica in ms, and batches known to be missing. */
int64_t node__staleness_ms(const struct node *n);
int64_t node__entries_behind(const struct node *n);
/* 1 when ready; else 0 and <why> says what is wrong. */
int node__ready(const struct node *n, char *why, size_t size);
/* The replica reached <rev>: update freshness from probes. */
void node__note_applied(struct node *n);

#endif
