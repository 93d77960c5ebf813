/* grpc.c -- the native gRPC transport of the etcd client (decision 006).
 *
 * Encodes requests as protobuf (pb.c), carries them as gRPC calls on each
 * endpoint's HTTP/2 connection (h2.c), decodes answers and maps gRPC status
 * onto the MR_E* codes and failover rule the gateway uses (etcd.c shares the
 * retry logic; see etcd__grpc_status_rc).  Message layouts: etcd_int.h.
 */
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "etcd_int.h"

static const char *const paths[] = {
    [ETCD__PUT] = "/etcdserverpb.KV/Put",
    [ETCD__GET] = "/etcdserverpb.KV/Range",
    [ETCD__PREFIX] = "/etcdserverpb.KV/Range",
    [ETCD__COMPACT] = "/etcdserverpb.KV/Compact",
    [ETCD__STATUS] = "/etcdserverpb.Maintenance/Status",
};

/* Write the 5-byte gRPC prefix in front of the message in <b>, which was
 * built after ETCD__GRPC_PREFIX reserved bytes. */
static void frame(struct mr_buf *b)
{
    uint32_t n = (uint32_t)(b->len - ETCD__GRPC_PREFIX);

    b->data[0] = 0;
    b->data[1] = (char)(n >> 24);
    b->data[2] = (char)(n >> 16);
    b->data[3] = (char)(n >> 8);
    b->data[4] = (char)n;
}

static int gr_init(struct etcd *e, char *err)
{
    /* Check every endpoint before creating anything that needs closing. */
    for (size_t i = 0; i < e->n_ep; i++) {
        struct etcd__endpoint *ep = &e->ep[i];
        struct sockaddr_in6 a6;
        struct sockaddr_in a4;

        if (strcmp(ep->host, "localhost") == 0) {
            mr_free(ep->host);
            ep->host = mr_strdup("127.0.0.1");
        }
        if (uv_ip4_addr(ep->host, ep->port, &a4) != 0 &&
            uv_ip6_addr(ep->host, ep->port, &a6) != 0)
            return mr_seterr(err, MR_ECONFIG,
                             "etcd endpoint '%s': the grpc transport needs an IP address, not "
                             "the name '%s'",
                             ep->url, ep->host);
    }
    for (size_t i = 0; i < e->n_ep; i++)
        e->ep[i].h2 = etcd__h2_new(e->loop, e->ep[i].host, e->ep[i].port, e->tls);
    return 0;
}

static void gr_encode(struct etcd_req *r, const struct etcd__args *a)
{
    struct mr_buf b;

    mr_buf_init(&b);
    mr_buf_append(&b, "\0\0\0\0\0", ETCD__GRPC_PREFIX);
    switch (r->kind) {
    case ETCD__PUT:
        etcd__pb_bytes_field(&b, 1, a->key, a->key_len);
        if (a->value_len)
            etcd__pb_bytes_field(&b, 2, a->value, a->value_len);
        break;
    case ETCD__GET:
    case ETCD__PREFIX:
        etcd__pb_bytes_field(&b, 1, a->key, a->key_len);
        if (a->range_end)
            etcd__pb_bytes_field(&b, 2, a->range_end, a->range_end_len);
        break;
    case ETCD__COMPACT:
        etcd__pb_varint_field(&b, 1, (uint64_t)a->revision);
        etcd__pb_varint_field(&b, 2, 1); /* physical */
        break;
    case ETCD__STATUS:
        break;
    }
    frame(&b);
    r->path = paths[r->kind];
    r->body = mr_buf_steal(&b, &r->body_len);
}

static void req_message(struct etcd__gcall *c, const uint8_t *p, size_t n, void *data)
{
    struct etcd_req *r = data;

    (void)c;
    /* Unary: one message.  Keep the last should etcd ever send more. */
    mr_buf_reset(&r->answer);
    mr_buf_append(&r->answer, p, n);
}

/* Decode r->answer and report it. */
static void req_answer(struct etcd_req *r)
{
    const char *url = r->e->ep[r->ep].url;
    struct etcd__result res;
    struct etcd__pb_header hdr;
    struct etcd__pb_range range;
    struct etcd__pb_status st;
    char err[MR_ERRMSG_LEN];
    int rc = 0;

    memset(&res, 0, sizeof(res));
    memset(&range, 0, sizeof(range));
    switch (r->kind) {
    case ETCD__PUT:
    case ETCD__COMPACT:
        rc = etcd__pb_decode_header_only(r->answer.data, r->answer.len, &hdr, err);
        res.revision = hdr.revision;
        res.raft_term = hdr.raft_term;
        break;
    case ETCD__GET:
    case ETCD__PREFIX:
        rc = etcd__pb_decode_range(r->answer.data, r->answer.len, &range, err);
        res.revision = range.header.revision;
        res.raft_term = range.header.raft_term;
        res.kvs = range.kvs;
        res.n_kvs = range.n_kvs;
        break;
    case ETCD__STATUS:
        rc = etcd__pb_decode_status(r->answer.data, r->answer.len, &st, err);
        res.revision = st.header.revision;
        res.raft_term = st.header.raft_term;
        res.member_id = st.header.member_id;
        res.leader_id = st.leader;
        res.raft_index = (int64_t)st.raft_index;
        res.db_size = st.db_size;
        break;
    }
    if (rc != 0) {
        mr_seterr(r->errmsg, rc, "%s%s: %s", url, r->path, err);
        etcd__attempt_done(r, rc, 0, NULL);
    } else {
        etcd__attempt_done(r, 0, 0, &res);
    }
    mr_free(range.kvs);
}

static void req_end(struct etcd__gcall *c, int rc, int status, const char *message, void *data)
{
    struct etcd_req *r = data;
    const char *url = r->e->ep[r->ep].url;
    int retry;

    (void)c;
    r->gcall = NULL;
    if (rc != 0) {
        /* Transport failures: as the gateway, another endpoint may do better. */
        mr_seterr(r->errmsg, rc, "%s%s: %s: %s", url, r->path, mr_strerror(rc), message);
        etcd__attempt_done(r, rc, 1, NULL);
        return;
    }
    if (status != 0) {
        if (r->kind == ETCD__COMPACT && strstr(message, "compacted")) {
            struct etcd__result res;
            memset(&res, 0, sizeof(res));
            etcd__attempt_done(r, 0, 0, &res);
            return;
        }
        rc = etcd__grpc_status_rc(status, message, &retry);
        mr_seterr(r->errmsg, rc, "%s%s: gRPC status %d: %s", url, r->path, status,
                  message[0] ? message : "(no message)");
        etcd__attempt_done(r, rc, retry, NULL);
        return;
    }
    /* An empty answer decodes as the all-default message, as proto3 says. */
    req_answer(r);
}

static void gr_attempt(struct etcd_req *r, uint64_t timeout_ms)
{
    struct etcd__gcall_opts o;
    int rc;

    mr_buf_reset(&r->answer);
    memset(&o, 0, sizeof(o));
    o.path = r->path;
    o.msg = r->body;
    o.msg_len = r->body_len;
    o.timeout_ms = timeout_ms;
    o.on_message = req_message;
    o.on_end = req_end;
    o.data = r;
    rc = etcd__h2_call(r->e->ep[r->ep].h2, &o, &r->gcall);
    if (rc != 0) {
        mr_seterr(r->errmsg, rc, "%s%s: cannot send: %s", r->e->ep[r->ep].url, r->path,
                  mr_strerror(rc));
        etcd__attempt_done(r, rc, 0, NULL);
    }
}

static void gr_attempt_abort(struct etcd_req *r)
{
    if (r->gcall)
        etcd__h2_cancel(r->gcall);   /* req_end follows, now or after the message in hand */
}

/* ---- watch ------------------------------------------------------------------- */

static void watch_fail(struct etcd_watch *w, int rc)
{
    if (w->end_rc == 0)
        w->end_rc = rc;
    if (w->gcall)
        etcd__h2_cancel(w->gcall);
}

static void watch_message(struct etcd__gcall *c, const uint8_t *p, size_t n, void *data)
{
    struct etcd_watch *w = data;
    struct etcd__pb_watch m;
    char err[MR_ERRMSG_LEN];

    (void)c;
    if (w->end_rc != 0)
        return;
    if (etcd__pb_decode_watch(p, n, &m, err) != 0) {
        mr_seterr(w->errmsg, MR_EPROTO, "watch: %s", err);
        watch_fail(w, MR_EPROTO);
        return;
    }
    for (size_t i = 0; i < m.n_kvs && w->end_rc == 0; i++)
        w->on_event(w, &m.kvs[i], w->data);
    mr_free(m.kvs);
    if (m.canceled && w->end_rc == 0) {
        w->compact_revision = m.compact_revision;
        if (m.compact_revision > 0) {
            mr_seterr(w->errmsg, MR_ECOMPACTED, "watch: history compacted up to revision %lld",
                      (long long)m.compact_revision);
            watch_fail(w, MR_ECOMPACTED);
        } else {
            mr_seterr(w->errmsg, MR_EUNAVAIL, "watch canceled by etcd: %s",
                      m.cancel_reason[0] ? m.cancel_reason : "(no reason)");
            watch_fail(w, MR_EUNAVAIL);
        }
    }
}

static void watch_end(struct etcd__gcall *c, int rc, int status, const char *message, void *data)
{
    struct etcd_watch *w = data;
    int retry;

    (void)c;
    w->gcall = NULL;
    if (w->end_rc != 0) {
        rc = w->end_rc;
    } else if (rc != 0) {
        mr_seterr(w->errmsg, rc, "watch: %s: %s", mr_strerror(rc), message);
    } else if (status != 0) {
        /* "no leader" (hasleader) and other UNAVAILABLE: MR_EUNAVAIL. */
        rc = etcd__grpc_status_rc(status, message, &retry);
        if (rc == MR_EPROTO && strstr(message, "compacted") == NULL)
            rc = MR_EUNAVAIL;
        mr_seterr(w->errmsg, rc, "watch: gRPC status %d: %s", status,
                  message[0] ? message : "(no message)");
    } else {
        rc = MR_ECLOSED;
        mr_seterr(w->errmsg, rc, "watch: stream ended");
    }
    etcd__watch_end(w, rc);
}

static int gr_watch(struct etcd_watch *w, const char *key, int64_t start_revision)
{
    struct etcd *e = w->e;
    struct etcd__gcall_opts o;
    struct mr_buf create, b;
    int rc;

    mr_buf_init(&create);
    mr_buf_init(&b);
    etcd__pb_bytes_field(&create, 1, key, strlen(key));
    etcd__pb_varint_field(&create, 3, (uint64_t)start_revision);
    mr_buf_append(&b, "\0\0\0\0\0", ETCD__GRPC_PREFIX);
    etcd__pb_bytes_field(&b, 1, create.data, create.len); /* WatchRequest.create_request */
    frame(&b);
    memset(&o, 0, sizeof(o));
    o.path = "/etcdserverpb.Watch/Watch";
    o.msg = b.data;
    o.msg_len = b.len;
    o.keep_open = 1;
    o.timeout_ms = e->timeout_ms;
    o.on_message = watch_message;
    o.on_end = watch_end;
    o.data = w;
    rc = etcd__h2_call(e->ep[e->current].h2, &o, &w->gcall);
    mr_buf_close(&create);
    mr_buf_close(&b);
    return rc;
}

static void gr_watch_abort(struct etcd_watch *w)
{
    if (w->gcall)
        etcd__h2_cancel(w->gcall);
}

static void gr_free(struct etcd *e)
{
    for (size_t i = 0; i < e->n_ep; i++) {
        struct etcd__h2 *h = e->ep[i].h2;

        e->ep[i].h2 = NULL;
        if (h)
            etcd__h2_free(h);
    }
}

const struct etcd__transport etcd__grpc = {
    .name = "grpc",
    .init = gr_init,
    .encode = gr_encode,
    .attempt = gr_attempt,
    .attempt_abort = gr_attempt_abort,
    .watch = gr_watch,
    .watch_abort = gr_watch_abort,
    .free = gr_free,
};
