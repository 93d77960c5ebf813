/* tables_int.h -- what tables.c and tstream.c share: the node's global-table
 * state (struct tables, hung off struct node).
 *
 * Replication wire format (POST /v1/tables/_replicate, node to node):
 *   request   {"origin":"<sender region>","from":<first seq>,"head":<sender head>,
 *              "log_first":<oldest seq the sender still has>,
 *              "entries":[{"seq":n,"ts":<write time, unix ms>,"e":<entry>}...]}
 *             entries are the sender's own change log, consecutive from <from>;
 *             an empty list is a probe (first contact, heartbeat)
 *   answer    200 {"region":"<receiver>","head":<receiver head>,
 *                  "vector":{"<origin>":<highest seq applied>,...}}
 *             sent once the batch is durable (same group commit as writes);
 *             409 with the same body when <from> leaves a gap: the sender
 *             restarts from vector[<sender>] + 1; also while the receiver's
 *             position is below <log_first>: it then seeds itself from the
 *             sender (GET /v1/tables/_snapshot, a copy of tables.db made with
 *             SQLite's backup API, joined into its own store) and answers 200
 *             again once its vector covers what the sender trimmed.
 * Entry formats: src/gtab/gtab_int.h.
 */
#ifndef MR_NODE_TABLES_INT_H
#define MR_NODE_TABLES_INT_H

#include "node_int.h"

#define TABLES_MAX_PEERS 16
#define TABLES_TICK_MS 50
#define TABLES_DISCOVER_MS 1000
#define TABLES_HEARTBEAT_MS 1000
#define TABLES_CALL_TIMEOUT_MS 5000
#define TABLES_RETRY_MIN_MS 50
#define TABLES_RETRY_MAX_MS 1000
/* How long after its start a node stays unready while a reachable peer has
 * not yet brought it up to that peer's head (tables__catching_up): bounded,
 * so that a peer which can be reached but cannot reach this region (a
 * one-way cut) does not keep it out of service. */
#define TABLES_CATCH_UP_MAX_MS 10000

/* An answer held until the group commit is durable. */
struct tables_reply {
    struct http_exchange *ex;
    enum node_route route;
    int64_t start_us;
    int status;
    int vector_body;          /* replicate answer: the body is built at commit */
    struct mr_buf body;
    char headers[MR_TOKEN_MAX_LEN + 160];
    struct tables_reply *next;
};

/* A read that waits until the local applied vector covers its token. */
enum tables_read_kind { TREAD_ITEM, TREAD_LIST, TREAD_DIGEST };
struct tables_read {
    enum tables_read_kind kind;
    char tbl[GTAB_MAX_NAME + 1];
    char key[GTAB_MAX_KEY + 1];
    char prefix[GTAB_MAX_KEY + 1];
    char after[GTAB_MAX_KEY + 1];
    size_t limit;
};
/* The query of GET /v1/tables/T/items (limit 1..1000, 100 when absent;
 * prefix and after at most GTAB_MAX_KEY bytes) into <rd>'s prefix, after
 * and limit: 0, or MR_EINVAL naming the parameter.  <rd> zeroed first. */
int tables__list_args(const struct http_request *hr, struct tables_read *rd, char *err);

/* The body of PUT /v1/tables/<name> as the API decodes it: 0 and <spec>,
 * or MR_EINVAL with <err> naming the problem (JSON, kind, ttl_field). */
int tables__spec_body(const struct http_request *hr, const char *name, struct gtab_spec *spec, char *err);

/* Whether this region's stream to <region> is failing (its last attempts
 * failed): writes of <region> are then unlikely to arrive soon, so a read
 * that may fall back need not wait for them (tstream.c). */
int tables__peer_unreachable(const struct node *n, const char *region);

/* PUT, POST .../ops (<ops>) or DELETE of item <key> of <tbl>, as the API
 * decodes it (If-Match, the body and its limits), applied to <g>: 0 and
 * <w>, or an MR_E* code with <err> naming the problem (nothing written). */
int tables__item_write(struct gtab *g, const struct http_request *hr, const char *tbl,
                       const char *key, int ops, struct gtab_wres *w, char *err);

struct tables_wait {
    struct http_exchange *ex;
    struct tables_read rd;
    struct mr_token tok;
    int64_t start_us, deadline_us;
    int fallback;             /* Meridian-Token-Fallback: local (served, not 503, at the deadline) */
    struct tables_wait *next;
};

struct tables_peer {
    struct node *n;
    char region[64];
    char url[256];
    char host[128];
    int port;
    int from_config;          /* URL from [tables] peers: etcd does not replace it */
    int listed;               /* seen in the last discovery round */
    int known;                /* its applied position for us is known */
    uint64_t acked;           /* its vector[this region]: applied there */
    struct http_call *call;   /* at most one batch in flight */
    size_t n_sent;
    uint64_t sent_from, sent_last;
    int64_t *sent_ts;         /* write times of the entries in flight */
    int64_t last_sent_ms, retry_at_ms;
    int fails;
    int paused;               /* POST /v1/tables/_peers/R/pause */
    int needs_seed;           /* its position is below our retained log */
    int caught_up;            /* its stream brought us up to its head once (tables__catching_up) */
    /* Its last report: vector and head, for tombstone collection. */
    int has_report;
    uint64_t report_head;
    size_t n_report;
    char report_origin[GTAB_MAX_ORIGINS][64];
    uint64_t report_seq[GTAB_MAX_ORIGINS];
    /* Metrics. */
    struct mr_hist lag;       /* write here to applied there, seconds */
    uint64_t bytes_sent, batches_sent, entries_sent, send_errors;
    int64_t last_lag_ms;
};

struct tables {
    struct gtab *g;
    uint64_t committed_head;  /* own log entries durable: only these are sent */
    uint64_t trimmed_upto;
    struct tables_reply *replies_head, *replies_tail;   /* this turn's */
    size_t n_replies;
    /* The durability pipeline (tables.c, decision 022): answers of
     * committed turns wait for a gtab_sync on the libuv pool. */
    struct tables_reply *unsynced_head, *unsynced_tail; /* for the next sync */
    uint64_t unsynced_upto;   /* own head at the last commit not yet syncing */
    int unsynced;             /* a commit (or answer) waits for the next sync */
    struct tables_reply *syncing;                        /* for the sync in flight */
    uint64_t syncing_upto;
    int sync_busy;
    int sync_rc;
    char sync_err[MR_ERRMSG_LEN];
    int64_t sync_start_us;
    uv_work_t sync_req;
    /* Checkpoints on the pool, through the store's second connection
     * (decision 050); the loop copies only the rest after one (ckpt_rest),
     * right after a commit. */
    int ckpt_busy;
    int ckpt_rest;            /* frames committed during the last one remain */
    int ckpt_rc;
    char ckpt_err[MR_ERRMSG_LEN];
    int64_t ckpt_us;          /* the last one's duration, measured on the pool */
    uv_work_t ckpt_req;
    struct tables_wait *waits;
    size_t n_waits;
    struct tables_peer *peers[TABLES_MAX_PEERS];
    size_t n_peers;
    struct http_client *http;
    uv_timer_t timer;
    uv_check_t check;
    int running;
    int discover_inflight;
    int64_t last_discover_ms, last_sweep_ms;
    /* Tombstone collection epoch (tstream.c, gc_step). */
    int gc_active;
    size_t gc_n;
    char gc_origin[GTAB_MAX_ORIGINS][64];
    uint64_t gc_stable[GTAB_MAX_ORIGINS];
    char gc_peer[TABLES_MAX_PEERS][64];
    uint64_t gc_need[TABLES_MAX_PEERS];
    size_t gc_n_peers;
    /* Inert crdt tombstones: what this region had applied when a round was
     * armed (own head included), and the last tombstone number then. */
    int inert_armed;
    int gc_inert;             /* this epoch collects them */
    uint64_t inert_gen;
    size_t inert_n;
    char inert_origin[GTAB_MAX_ORIGINS + 1][64];
    uint64_t inert_at[GTAB_MAX_ORIGINS + 1];
    /* Seeding from a peer's snapshot (tstream.c). */
    int seeding;
    char seed_origin[64];
    struct http_call *seed_call;
    int seed_fd;              /* the download's file, -1 when none or a write to it failed */
    uint64_t seed_bytes;
    char seed_path[512];
    uint64_t seeds, snapshots_served;
    /* Recovering this region's own log (tstream.c, recovery_step): a store
     * empty at start (a new region, or one that lost its disk), or one a
     * peer is ahead of (restored from an old copy), takes no local write
     * until every peer has said how much of this region's log it holds;
     * if one holds more, its snapshot is joined and the head moved past
     * that position, so that no new entry reuses a position the peers have
     * applied already (they would skip it: a write lost). */
    int recovering;
    int discovered;           /* the peer list was read from etcd once */
    int recover_seeded;       /* the snapshot of recover_from is joined */
    char recover_from[64];
    uint64_t recover_head, recoveries;
    int64_t recover_next_ms;
    char recover_why[256];
    /* Stats. */
    uint64_t writes, reads, read_waits, read_wait_timeouts, batches_received, entries_applied;
    uint64_t reads_fallback;  /* served without the token's writes (Meridian-Token-Fallback) */
    uint64_t commits, swept, collected, gaps, checkpoints;
    struct mr_hist commit_seconds;  /* commit to durable (the sync included) */
    struct mr_hist checkpoint_seconds;
    struct mr_hist write_seconds;
};

/* tables.c */
void tables__reply_add(struct node *n, struct tables_reply *r);
/* Commit what this turn wrote; its answers go once a sync made it durable. */
void tables__flush(struct node *n);
/* Commit and sync on the loop, then send every answer waiting (rare paths:
 * stopping, snapshots).  MR_EIO when the node failed. */
int tables__flush_durable(struct node *n, char *err);

/* tstream.c */
/* Why local writes are refused now (recovery), or NULL. */
const char *tables__recovering(const struct node *n);
/* Within TABLES_CATCH_UP_MAX_MS of the start: 1 and <why> until etcd has
 * listed the regions, then while some peer this region reaches has not yet
 * delivered its log up to its head (reads with tokens would wait for it,
 * so the edge should not send users here yet); else 0. */
int tables__catching_up(const struct node *n, char *why, size_t size);
/* A batch from <origin> was applied; <head> is the sender's head then. */
void tables__note_caught_up(struct node *n, const char *origin, uint64_t head);
void tables__stream_tick(struct node *n);
/* New entries were committed: start sending where idle. */
void tables__stream_kick(struct node *n);
/* POST /v1/tables/_replicate */
void tables__replicate_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr);
/* POST /v1/tables/_peers/<region>/pause|resume */
void tables__peer_admin(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                        const char *rest);
void tables__stream_close(struct node *n);
/* Close and remove a snapshot download's file, if one is open. */
void tables__seed_abort(struct tables *t);
/* GET /v1/tables/_snapshot: a consistent copy of tables.db. */
void tables__snapshot_serve(struct node *n, struct http_exchange *ex, const struct http_request *hr);
void tables__peers_free(struct node *n);
void tables__peer_metrics(struct node *n, struct mr_buf *b);
void tables__peer_status(struct node *n, struct mr_buf *b);

#endif
