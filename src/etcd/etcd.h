/* etcd.h -- a client of etcd 3.4 on a libuv loop.
 *
 * Meridian orders its global log through etcd.  Two transports carry the
 * same API (decision 006): the JSON gateway over HTTP/1.1 (POST /v3/...,
 * base64 keys and values, 64-bit integers as strings; see shared
 * notes/etcd-3.4-facts.md), the default, and native gRPC over HTTP/2
 * cleartext on the same client URL (protobuf on the wire, one connection
 * per endpoint carrying every request and watch as concurrent streams; it
 * halves etcd's CPU per put when watchers are on).  The client knows several
 * endpoints, nearest first, and fails over between them: a request that
 * cannot connect, times out, or meets "no leader" moves on to the next
 * endpoint until its deadline.  Every request carries
 * "Grpc-Metadata-hasleader: true" so that a member cut off from its leader
 * fails fast instead of hanging (and a watch on it ends instead of going
 * silent).
 *
 * A put that timed out may still have been committed: callers make every
 * value unique and drop duplicates on apply.
 *
 * Callbacks follow the libuv rule: if a function returns an error, its
 * callback never runs; if it returns 0, the callback runs exactly once.
 */
#ifndef MR_ETCD_H
#define MR_ETCD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ETCD_MAX_ENDPOINTS 16

struct etcd;
struct etcd_watch;

struct etcd_kv {
    const char *key;          /* decoded, NUL-terminated */
    size_t key_len;
    const char *value;        /* decoded, NUL-terminated (may hold NULs) */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
};

enum etcd_transport {
    ETCD_TRANSPORT_GATEWAY = 0, /* JSON gateway, HTTP/1.1 (default) */
    ETCD_TRANSPORT_GRPC = 1,    /* native gRPC, HTTP/2 cleartext */
};

struct tls_ctx;

struct etcd_opts {
    const char *endpoints;      /* comma-separated http://host:port URLs, nearest first;
                                   https:// for TLS (all of them, then) */
    uint64_t timeout_ms;        /* bounds one attempt on one endpoint */
    enum etcd_transport transport;
};

/* Create a client; *out is freed with etcd_free.  On failure returns
 * MR_ECONFIG with a message in <err> (may be NULL).  With the gRPC
 * transport, endpoint hosts must be IP addresses or "localhost" (names are
 * not resolved yet). */
int etcd_new_opts(uv_loop_t *loop, const struct etcd_opts *opts, struct etcd **out, char *err)
    __attribute__((warn_unused_result));

/* etcd_new_opts for https:// endpoints: <tls> is the client context (our
 * certificate, the CA etcd's certificate must come from); not owned, keep it
 * until etcd_free.  Required with https:// endpoints, unused with http://.
 * The gRPC transport offers ALPN "h2".  (A separate function rather than a
 * field of etcd_opts, so that positional initialisers of etcd_opts keep
 * compiling under -Wextra.) */
int etcd_new_tls(uv_loop_t *loop, const struct etcd_opts *opts, struct tls_ctx *tls,
                 struct etcd **out, char *err) __attribute__((warn_unused_result));

/* etcd_new_opts with the gateway transport. */
int etcd_new(uv_loop_t *loop, const char *endpoints, uint64_t timeout_ms, struct etcd **out,
             char *err) __attribute__((warn_unused_result));

/* "gateway" or "grpc" (config values); 0, or MR_EINVAL for anything else. */
int etcd_transport_parse(const char *name, enum etcd_transport *out)
    __attribute__((warn_unused_result));
const char *etcd_transport_name(enum etcd_transport t);
/* The transport <e> uses. */
enum etcd_transport etcd_transport(const struct etcd *e);

/* Cancel everything in flight (callbacks run with MR_ECLOSED) and free the
 * client once its connections are closed.  <e> is dead after this call. */
void etcd_free(struct etcd *e);

/* Which endpoint requests go to now, e.g. "http://127.0.0.1:2379". */
const char *etcd_current_endpoint(const struct etcd *e);

/* <rc> 0 and the revision the put got, or an MR_E* code and a message. */
typedef void (*etcd_put_cb)(int rc, int64_t revision, const char *errmsg, void *data);

/* Put <value> at <key>, retrying on the next endpoints until <deadline_ms>
 * (from now) has passed.  The value is copied. */
int etcd_put(struct etcd *e, const char *key, const void *value, size_t value_len,
             uint64_t deadline_ms, etcd_put_cb cb, void *data) __attribute__((warn_unused_result));

/* <kv> is NULL when the key does not exist; <header_revision> is the store's
 * revision when the read was served.  Pointers valid during the call only. */
typedef void (*etcd_get_cb)(int rc, const struct etcd_kv *kv, int64_t header_revision,
                            const char *errmsg, void *data);

/* Linearizable read of one key (a quorum read through the leader). */
int etcd_get(struct etcd *e, const char *key, uint64_t deadline_ms, etcd_get_cb cb, void *data)
    __attribute__((warn_unused_result));

/* <kvs> holds <n> keys in key order; valid during the call only. */
typedef void (*etcd_prefix_cb)(int rc, const struct etcd_kv *kvs, size_t n, const char *errmsg,
                               void *data);

/* Linearizable read of every key starting with <prefix> (non-empty). */
int etcd_get_prefix(struct etcd *e, const char *prefix, uint64_t deadline_ms, etcd_prefix_cb cb,
                    void *data) __attribute__((warn_unused_result));

struct etcd_member_status {
    char endpoint[128];
    int reachable;
    uint64_t member_id;
    uint64_t leader_id;
    int64_t raft_index;
    int64_t db_size;
    double rtt_ms;
};

/* Status of one endpoint (index into the endpoint list). */
typedef void (*etcd_status_cb)(int rc, const struct etcd_member_status *st, void *data);
int etcd_status(struct etcd *e, size_t endpoint, etcd_status_cb cb, void *data)
    __attribute__((warn_unused_result));
size_t etcd_n_endpoints(const struct etcd *e);

/* Compact history below <revision> (physical).  Compacting to a revision
 * that is already compacted counts as success. */
typedef void (*etcd_done_cb)(int rc, const char *errmsg, void *data);
int etcd_compact(struct etcd *e, int64_t revision, uint64_t deadline_ms, etcd_done_cb cb,
                 void *data) __attribute__((warn_unused_result));

/* ---- Watch ------------------------------------------------------------- */

/* One put event on the watched key; <kv> valid during the call only. */
typedef void (*etcd_event_cb)(struct etcd_watch *w, const struct etcd_kv *kv, void *data);
/* The watch ended: <rc> MR_ECOMPACTED (history below <compact_revision> is
 * gone), MR_ECLOSED (cancelled or the stream ended), MR_EUNAVAIL (no leader),
 * MR_ECONN / MR_ETIMEDOUT / MR_EPROTO.  The watch is freed after this call. */
typedef void (*etcd_watch_end_cb)(struct etcd_watch *w, int rc, int64_t compact_revision,
                                  const char *errmsg, void *data);

/* Watch <key> from <start_revision> on the current endpoint.  Events arrive
 * in revision order.  Restarting after an end (on the next endpoint, from
 * the next wanted revision) is the caller's decision. */
int etcd_watch(struct etcd *e, const char *key, int64_t start_revision, etcd_event_cb on_event,
               etcd_watch_end_cb on_end, void *data, struct etcd_watch **out)
    __attribute__((warn_unused_result));

/* Stop a watch: on_end runs with MR_ECLOSED. */
void etcd_watch_cancel(struct etcd_watch *w);

/* Mark the current endpoint as failed and move to the next one (used when a
 * caller detects a problem itself, e.g. a silent watch). */
void etcd_failover(struct etcd *e, const char *reason);

/* Attempts cut short because their member changed leader (decision 051):
 * when an answer from an endpoint carries a higher Raft term than it showed
 * before, or a request there fails with "leader changed" or "no leader",
 * every other attempt in flight on that endpoint that began earlier is sent
 * again at once rather than left to time out (a request forwarded to a
 * leader that died is answered only by etcd's own timeout, about 6 s). */
uint64_t etcd_attempts_cut(const struct etcd *e);

#endif
