/* etcd_int.h -- shared only inside src/etcd.
 *
 * etcd.c owns what both transports share: the endpoint list, requests with
 * their deadline, failover and retry rounds, watches' bookkeeping and the
 * client's lifetime.  A transport (the JSON gateway in etcd.c, native gRPC in
 * grpc.c over h2.c) only encodes a request, runs one attempt on one endpoint
 * and reports the outcome through etcd__attempt_done / etcd__watch_end.
 *
 * Wire formats of the gRPC transport
 * ----------------------------------
 * gRPC over HTTP/2 (h2c, prior knowledge) on etcd's client URL.  Request
 * headers: :method POST, :scheme http, :path /etcdserverpb.<Service>/<Method>,
 * content-type application/grpc, te trailers, hasleader true.  Each message on
 * a stream's DATA frames is prefixed by
 *
 *      offset  size  field
 *      0       1     compressed flag (0: we never negotiate compression)
 *      1       4     message length, big-endian
 *      5       n     protobuf message
 *
 * The call's outcome is in the trailers (or in the only HEADERS frame of a
 * "Trailers-Only" answer): grpc-status (decimal code), grpc-message
 * (percent-encoded text).
 *
 * Protobuf messages (proto3; field numbers are etcd 3.4's public API,
 * etcdserverpb and mvccpb; only the fields we use; unknown fields skipped):
 *
 *      ResponseHeader      1 cluster_id u64, 2 member_id u64, 3 revision i64, 4 raft_term u64
 *      KeyValue            1 key bytes, 2 create_revision i64, 3 mod_revision i64,
 *                          4 version i64, 5 value bytes, 6 lease i64
 *      PutRequest          1 key bytes, 2 value bytes
 *      PutResponse         1 header
 *      RangeRequest        1 key bytes, 2 range_end bytes
 *      RangeResponse       1 header, 2 kvs (repeated KeyValue), 3 more bool, 4 count i64
 *      CompactionRequest   1 revision i64, 2 physical bool
 *      CompactionResponse  1 header
 *      StatusRequest       (empty)
 *      StatusResponse      1 header, 2 version string, 3 dbSize i64, 4 leader u64,
 *                          5 raftIndex u64, 6 raftTerm u64
 *      WatchRequest        1 create_request (WatchCreateRequest)
 *      WatchCreateRequest  1 key bytes, 2 range_end bytes, 3 start_revision i64
 *      WatchResponse       1 header, 2 watch_id i64, 3 created bool, 4 canceled bool,
 *                          5 compact_revision i64, 6 cancel_reason string, 11 events
 *      Event               1 type enum (PUT 0, DELETE 1), 2 kv KeyValue, 3 prev_kv
 */
#ifndef MR_ETCD_INT_H
#define MR_ETCD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/buf.h"
#include "../common/err.h"
#include "../tls/tls.h"
#include "etcd.h"

struct http_call;
struct etcd__gcall;
struct etcd__h2;

struct etcd__endpoint {
    char *url;
    char *host;
    int port;
    struct etcd__h2 *h2;      /* gRPC transport: the endpoint's connection, or NULL */
    uint64_t raft_term;       /* the highest term its answers carried */
};

enum etcd__req_kind { ETCD__PUT, ETCD__GET, ETCD__PREFIX, ETCD__COMPACT, ETCD__STATUS };

/* What a request asks, before a transport encodes it. */
struct etcd__args {
    const char *key;
    size_t key_len;
    const char *range_end;    /* NULL: single key */
    size_t range_end_len;
    const void *value;
    size_t value_len;
    int64_t revision;         /* compact */
};

/* A successful answer, decoded.  Pointers are valid during etcd__attempt_done. */
struct etcd__result {
    int64_t revision;         /* header.revision */
    uint64_t raft_term;       /* header.raft_term (0: not known) */
    uint64_t member_id;
    uint64_t leader_id;
    int64_t raft_index;
    int64_t db_size;
    const struct etcd_kv *kvs;
    size_t n_kvs;
};

struct etcd_req {
    struct etcd *e;
    enum etcd__req_kind kind;
    const char *path;         /* set by the transport's encode */
    char *body;               /* encoded request (mr_malloc); transport's format */
    size_t body_len;
    int64_t deadline_us;
    int64_t started_us;
    size_t ep;                /* endpoint of the attempt in flight */
    size_t tried_this_round;
    int fixed_endpoint;       /* status: no failover */
    struct http_call *call;   /* gateway attempt in flight */
    struct etcd__gcall *gcall; /* gRPC attempt in flight */
    struct mr_buf answer;     /* gRPC: the response message */
    uv_timer_t *backoff;      /* non-NULL while waiting between rounds */
    int last_rc;
    int cut;                  /* the attempt in flight is being cut short (cut_attempts) */
    char errmsg[MR_ERRMSG_LEN];
    union {
        etcd_put_cb put;
        etcd_get_cb get;
        etcd_prefix_cb prefix;
        etcd_done_cb done;
        etcd_status_cb status;
    } cb;
    void *data;
    struct etcd_req *prev, *next;
};

struct etcd_watch {
    struct etcd *e;
    etcd_event_cb on_event;
    etcd_watch_end_cb on_end;
    void *data;
    int end_rc;               /* set when we end the stream ourselves */
    int64_t compact_revision;
    char errmsg[MR_ERRMSG_LEN];
    /* gateway */
    struct http_call *call;
    struct mr_buf line;       /* bytes of the current, unfinished line */
    int in_body;
    int cancel_pending;
    char *body;
    /* gRPC */
    struct etcd__gcall *gcall;
    struct etcd_watch *prev, *next;
};

/* A transport: how one attempt of a request, and one watch, are carried. */
struct etcd__transport {
    const char *name;
    /* Create what the transport needs once the endpoints are known. */
    int (*init)(struct etcd *e, char *err);
    /* Fill r->path, r->body, r->body_len from <a>. */
    void (*encode)(struct etcd_req *r, const struct etcd__args *a);
    /* Start one attempt of <r> on endpoint r->ep, which ends (now or later)
     * in exactly one etcd__attempt_done. */
    void (*attempt)(struct etcd_req *r, uint64_t timeout_ms);
    /* End the attempt of <r> in flight from our side: its
     * etcd__attempt_done follows, now or soon after on the loop. */
    void (*attempt_abort)(struct etcd_req *r);
    /* Start <w> on the current endpoint; 0, or an error and nothing runs. */
    int (*watch)(struct etcd_watch *w, const char *key, int64_t start_revision);
    /* End <w> from our side; w->end_rc is set.  etcd__watch_end follows. */
    void (*watch_abort)(struct etcd_watch *w);
    /* Cancel every attempt and watch (they end with MR_ECLOSED) and release
     * the transport; handles may close later on the loop. */
    void (*free)(struct etcd *e);
};

struct etcd {
    uv_loop_t *loop;
    const struct etcd__transport *tp;
    struct http_client *http;  /* gateway */
    struct etcd__endpoint ep[ETCD_MAX_ENDPOINTS];
    size_t n_ep;
    size_t current;
    int64_t left_preferred_ms;
    uint64_t timeout_ms;
    struct tls_ctx *tls;      /* https:// endpoints: client context; not owned */
    struct etcd_req *reqs;
    struct etcd_watch *watches;
    uint64_t attempts_cut;    /* cut short after their member lost its leader */
    int closing;              /* etcd_free called: freed with the last request */
    int in_free;              /* inside etcd_free: defer the final free */
};

extern const struct etcd__transport etcd__gateway;
extern const struct etcd__transport etcd__grpc;

/* The attempt of <r> ended.  <rc> 0: <res> is the answer.  Else r->errmsg
 * says why; <retry> nonzero when another endpoint may do better (connection
 * lost, timeout, no leader), zero when the answer is final. */
void etcd__attempt_done(struct etcd_req *r, int rc, int retry, const struct etcd__result *res);

/* The watch ended with <rc> (w->errmsg says why): report and free it. */
void etcd__watch_end(struct etcd_watch *w, int rc);

/* ---- protobuf (pb.c) ----------------------------------------------------- */

/* Append an encoded field to <b>. */
void etcd__pb_varint_field(struct mr_buf *b, uint32_t field, uint64_t v);
void etcd__pb_bytes_field(struct mr_buf *b, uint32_t field, const void *p, size_t n);

struct etcd__pb_header {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;       /* the member's Raft term: it grows with each election */
};

/* Decoded answers.  Every decoder returns 0, or MR_EPROTO with a message in
 * <err> for input that is not the message it expects (truncation, bad wire
 * type, over-long varint, length beyond the input).  <kvs> arrays are one
 * allocation holding the etcd_kv array and their NUL-terminated copies of
 * key and value: the caller mr_frees it (NULL when there are none). */
struct etcd__pb_range {
    struct etcd__pb_header header;
    struct etcd_kv *kvs;
    size_t n_kvs;
};
struct etcd__pb_status {
    struct etcd__pb_header header;
    int64_t db_size;
    uint64_t leader;
    uint64_t raft_index;
};
struct etcd__pb_watch {
    struct etcd__pb_header header;
    int64_t watch_id;
    int created;
    int canceled;
    int64_t compact_revision;
    char cancel_reason[128];  /* truncated copy */
    struct etcd_kv *kvs;      /* PUT events only, in order */
    size_t n_kvs;
};

/* PutResponse and CompactionResponse: only the header matters. */
int etcd__pb_decode_header_only(const void *p, size_t n, struct etcd__pb_header *out, char *err)
    __attribute__((warn_unused_result));
int etcd__pb_decode_range(const void *p, size_t n, struct etcd__pb_range *out, char *err)
    __attribute__((warn_unused_result));
int etcd__pb_decode_status(const void *p, size_t n, struct etcd__pb_status *out, char *err)
    __attribute__((warn_unused_result));
int etcd__pb_decode_watch(const void *p, size_t n, struct etcd__pb_watch *out, char *err)
    __attribute__((warn_unused_result));

/* ---- gRPC framing --------------------------------------------------------- */

#define ETCD__GRPC_PREFIX 5
/* Larger messages are refused: etcd's own limit is 1.5 MiB per request; a
 * range answer may be larger (its default send limit is 2 GiB), ours is. */
#define ETCD__GRPC_MAX_MSG (64u * 1024 * 1024)

/* Look for one whole message at the start of <p>/<n>.  Returns 1 and sets
 * *msg, *msg_len, *consumed; 0 when more bytes are needed; MR_EPROTO (with
 * <err>) for a compressed message or one over <max> bytes. */
int etcd__grpc_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **msg,
                          size_t *msg_len, size_t *consumed, char *err)
    __attribute__((warn_unused_result));

/* Map a gRPC status (and etcd's message) onto an MR_E* code, as the gateway's
 * HTTP status would have been: sets *retry when another endpoint may answer. */
int etcd__grpc_status_rc(int status, const char *message, int *retry);

/* ---- HTTP/2 connection (h2.c) -------------------------------------------- */

/* One gRPC call on an endpoint's connection.
 * on_message: one whole response message (prefix removed), valid during the call.
 * on_end: exactly once.  <rc> 0 when the call completed with a grpc-status
 * (<status>, <message> percent-decoded, "" when absent); else MR_ECONN (no
 * connection: the request never left), MR_ETIMEDOUT, MR_ECLOSED (connection
 * or stream lost, or cancelled), MR_EPROTO (not gRPC), with <message> saying
 * why.  The call is freed after on_end. */
typedef void (*etcd__gcall_msg_cb)(struct etcd__gcall *c, const uint8_t *p, size_t n, void *data);
typedef void (*etcd__gcall_end_cb)(struct etcd__gcall *c, int rc, int status, const char *message,
                                   void *data);

struct etcd__gcall_opts {
    const char *path;         /* "/etcdserverpb.KV/Put" (static string) */
    const void *msg;          /* framed request (prefix included); copied */
    size_t msg_len;
    int keep_open;            /* bidirectional stream: do not half-close after msg */
    uint64_t timeout_ms;      /* whole call; for keep_open: until the response headers */
    etcd__gcall_msg_cb on_message;
    etcd__gcall_end_cb on_end;
    void *data;
};

/* A connection to <host>:<port>, opened on first use and again after loss. */
struct etcd__h2 *etcd__h2_new(uv_loop_t *loop, const char *host, int port, struct tls_ctx *tls);
/* End every call (MR_ECLOSED, from within this function) and close; memory
 * goes once libuv has closed the handles. */
void etcd__h2_free(struct etcd__h2 *h);

/* Start a call; 0 and on_end runs exactly once, never from inside this
 * function; or an error and nothing runs. */
int etcd__h2_call(struct etcd__h2 *h, const struct etcd__gcall_opts *o, struct etcd__gcall **out)
    __attribute__((warn_unused_result));
/* Cancel: on_end runs with MR_ECLOSED, from within this call. */
void etcd__h2_cancel(struct etcd__gcall *c);

#endif
