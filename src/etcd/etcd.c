/* etcd.c -- etcd client with endpoint failover (see etcd.h): the request,
 * retry and failover logic both transports share, and the JSON-gateway
 * transport (HTTP/1.1 through src/http).  The native gRPC transport is in
 * grpc.c; etcd_int.h has what they share. */
#include "etcd.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../http/http.h"
#include "etcd_int.h"

/* After failing over away from the nearest endpoint, try it again after this
 * long: the nearest member is the cheap one once it is back. */
#define PREFERRED_RETRY_MS 5000
/* Pause between two rounds over every endpoint, so that an etcd election
 * (0.5 to 1.5 s) is waited out instead of hammered. */
#define ROUND_BACKOFF_MS 100

#define ETCD_HEADERS "Content-Type: application/json\r\nGrpc-Metadata-hasleader: true\r\n"

static void maybe_free(struct etcd *e);
static void attempt(struct etcd_req *r);

/* ---- small JSON helpers ------------------------------------------------- */

/* etcd sends 64-bit integers as strings, and omits fields that are zero. */
static int64_t json_i64(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    int64_t out = 0;

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v) && mr_parse_i64(json_string_value(v), INT64_MIN, INT64_MAX, &out) == 0)
        return out;
    return 0;
}

static uint64_t json_u64(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    return 0;
}

/* Decode the base64 fields of a kv object.  The caller frees *key_buf and
 * *val_buf.  Returns MR_EPROTO on malformed input. */
static int decode_kv(json_t *jkv, struct etcd_kv *kv, unsigned char **key_buf,
                     unsigned char **val_buf)
{
    const char *k = json_string_value(json_object_get(jkv, "key"));
    const char *v = json_string_value(json_object_get(jkv, "value"));

    *key_buf = NULL;
    *val_buf = NULL;
    if (k == NULL || mr_base64_decode(k, strlen(k), key_buf, &kv->key_len) != 0)
        return MR_EPROTO;
    if (v == NULL)
        v = ""; /* etcd omits empty values */
    if (mr_base64_decode(v, strlen(v), val_buf, &kv->value_len) != 0) {
        mr_free(*key_buf);
        *key_buf = NULL;
        return MR_EPROTO;
    }
    kv->key = (const char *)*key_buf;
    kv->value = (const char *)*val_buf;
    kv->create_revision = json_i64(jkv, "create_revision");
    kv->mod_revision = json_i64(jkv, "mod_revision");
    kv->version = json_i64(jkv, "version");
    return 0;
}

/* ---- endpoints ---------------------------------------------------------- */

int etcd_transport_parse(const char *name, enum etcd_transport *out)
{
    if (strcmp(name, "gateway") == 0)
        *out = ETCD_TRANSPORT_GATEWAY;
    else if (strcmp(name, "grpc") == 0)
        *out = ETCD_TRANSPORT_GRPC;
    else
        return MR_EINVAL;
    return 0;
}

const char *etcd_transport_name(enum etcd_transport t)
{
    return t == ETCD_TRANSPORT_GRPC ? "grpc" : "gateway";
}

static void free_endpoints(struct etcd *e)
{
    for (size_t i = 0; i < e->n_ep; i++) {
        mr_free(e->ep[i].url);
        mr_free(e->ep[i].host);
    }
}

int etcd_new_opts(uv_loop_t *loop, const struct etcd_opts *opts, struct etcd **out, char *err)
{
    return etcd_new_tls(loop, opts, NULL, out, err);
}

int etcd_new_tls(uv_loop_t *loop, const struct etcd_opts *opts, struct tls_ctx *tls,
                 struct etcd **out, char *err)
{
    struct etcd *e;
    char *list, *tok, *save = NULL;
    size_t n_https = 0;
    int rc;

    if (opts->transport != ETCD_TRANSPORT_GATEWAY && opts->transport != ETCD_TRANSPORT_GRPC)
        return mr_seterr(err, MR_ECONFIG, "unknown etcd transport %d", (int)opts->transport);
    e = mr_calloc(1, sizeof(*e));
    e->loop = loop;
    e->timeout_ms = opts->timeout_ms;
    e->tp = opts->transport == ETCD_TRANSPORT_GRPC ? &etcd__grpc : &etcd__gateway;
    list = mr_strdup(opts->endpoints ? opts->endpoints : "");
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *path = NULL;
        struct etcd__endpoint *ep;

        while (*tok == ' ')
            tok++;
        if (*tok == '\0')
            continue;
        if (e->n_ep == ETCD_MAX_ENDPOINTS) {
            rc = mr_seterr(err, MR_ECONFIG, "more than %d etcd endpoints", ETCD_MAX_ENDPOINTS);
            goto err_after_list;
        }
        ep = &e->ep[e->n_ep];
        rc = http_parse_url(tok, &ep->host, &ep->port, &path, err);
        mr_free(path);
        if (rc != 0) {
            rc = mr_wraperr(err, MR_ECONFIG, "etcd endpoint '%s'", tok);
            goto err_after_list;
        }
        ep->url = mr_strdup(tok);
        e->n_ep++;
        if (http_url_is_https(tok))
            n_https++;
    }
    if (e->n_ep == 0) {
        rc = mr_seterr(err, MR_ECONFIG, "no etcd endpoint given");
        goto err_after_list;
    }
    /* One cluster, one scheme: a mixed list would silently send some
     * traffic in clear. */
    if (n_https != 0 && n_https != e->n_ep) {
        rc = mr_seterr(err, MR_ECONFIG, "etcd endpoints mix http:// and https://");
        goto err_after_list;
    }
    if (n_https != 0) {
        if (tls == NULL || tls_ctx_is_server(tls)) {
            rc = mr_seterr(err, MR_ECONFIG,
                           "https etcd endpoints need a TLS client context (certificate, CA)");
            goto err_after_list;
        }
        e->tls = tls;
    }
    rc = e->tp->init(e, err);
    if (rc != 0)
        goto err_after_list;
    mr_free(list);
    *out = e;
    return 0;

err_after_list:
    mr_free(list);
    free_endpoints(e);
    mr_free(e);
    return rc;
}

int etcd_new(uv_loop_t *loop, const char *endpoints, uint64_t timeout_ms, struct etcd **out,
             char *err)
{
    struct etcd_opts o = {endpoints, timeout_ms, ETCD_TRANSPORT_GATEWAY};

    return etcd_new_opts(loop, &o, out, err);
}

enum etcd_transport etcd_transport(const struct etcd *e)
{
    return e->tp == &etcd__grpc ? ETCD_TRANSPORT_GRPC : ETCD_TRANSPORT_GATEWAY;
}

size_t etcd_n_endpoints(const struct etcd *e)
{
    return e->n_ep;
}

const char *etcd_current_endpoint(const struct etcd *e)
{
    return e->ep[e->current].url;
}

void etcd_failover(struct etcd *e, const char *reason)
{
    size_t from = e->current;

    if (e->n_ep < 2)
        return;
    e->current = (e->current + 1) % e->n_ep;
    if (from == 0)
        e->left_preferred_ms = mr_now_ms();
    mr_log(MR_LOG_WARN, "etcd", "endpoint %s failed (%s); now using %s", e->ep[from].url, reason,
           e->ep[e->current].url);
}

/* Go back to the nearest endpoint some time after leaving it. */
static void maybe_return_to_preferred(struct etcd *e)
{
    if (e->current != 0 && mr_now_ms() - e->left_preferred_ms >= PREFERRED_RETRY_MS) {
        mr_log(MR_LOG_INFO, "etcd", "trying nearest endpoint %s again", e->ep[0].url);
        e->current = 0;
    }
}

/* ---- requests with failover (both transports) ----------------------------- */

static void req_unlink_free(struct etcd_req *r)
{
    struct etcd *e = r->e;

    if (r->prev)
        r->prev->next = r->next;
    else
        e->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    mr_free(r->body);
    mr_buf_close(&r->answer);
    mr_free(r);
    maybe_free(e);
}

static void backoff_closed(uv_handle_t *h)
{
    mr_free(h);
}

/* Report the final outcome and free the request.  <res> is the answer when
 * <rc> is 0. */
static void finish(struct etcd_req *r, int rc, const struct etcd__result *res)
{
    const char *msg = rc ? r->errmsg : NULL;

    switch (r->kind) {
    case ETCD__PUT:
        r->cb.put(rc, rc ? 0 : res->revision, msg, r->data);
        break;
    case ETCD__GET:
        r->cb.get(rc, rc == 0 && res->n_kvs > 0 ? &res->kvs[0] : NULL, rc ? 0 : res->revision, msg,
                  r->data);
        break;
    case ETCD__PREFIX:
        r->cb.prefix(rc, rc == 0 ? res->kvs : NULL, rc == 0 ? res->n_kvs : 0, msg, r->data);
        break;
    case ETCD__COMPACT:
        r->cb.done(rc, msg, r->data);
        break;
    case ETCD__STATUS: {
        struct etcd_member_status st;
        memset(&st, 0, sizeof(st));
        snprintf(st.endpoint, sizeof(st.endpoint), "%s", r->e->ep[r->ep].url);
        if (rc == 0) {
            st.reachable = 1;
            st.member_id = res->member_id;
            st.leader_id = res->leader_id;
            st.raft_index = res->raft_index;
            st.db_size = res->db_size;
            st.rtt_ms = (double)(mr_mono_us() - r->started_us) / 1000.0;
        }
        r->cb.status(rc, &st, r->data);
        break;
    }
    }
    req_unlink_free(r);
}

static void backoff_fired(uv_timer_t *t)
{
    struct etcd_req *r = t->data;

    uv_close((uv_handle_t *)t, backoff_closed);
    r->backoff = NULL;
    /* The deadline passed while waiting: a 1 ms attempt could only time out
     * (or race a refused connect) and hide the error that matters. */
    if (mr_mono_us() >= r->deadline_us) {
        finish(r, r->last_rc, NULL);
        return;
    }
    attempt(r);
}

/* An attempt failed with a retryable error: try the next endpoint, or wait
 * a little after a full round, or give up at the deadline. */
static void retry_or_fail(struct etcd_req *r)
{
    struct etcd *e = r->e;
    int64_t now = mr_mono_us();

    if (r->fixed_endpoint || e->closing || now >= r->deadline_us) {
        finish(r, r->last_rc, NULL);
        return;
    }
    if (e->current == r->ep)
        etcd_failover(e, r->errmsg);
    r->tried_this_round++;
    if (r->tried_this_round < e->n_ep) {
        attempt(r);
        return;
    }
    r->tried_this_round = 0;
    r->backoff = mr_malloc(sizeof(*r->backoff));
    uv_timer_init(e->loop, r->backoff);
    r->backoff->data = r;
    uv_timer_start(r->backoff, backoff_fired, ROUND_BACKOFF_MS, 0);
}

/* What etcd says when a member has lost its leader, or had one die under a
 * request ("etcdserver: leader changed", "etcdserver: no leader", "request
 * timed out, possibly due to previous leader failure"). */
static int says_leader_lost(const char *msg)
{
    return strstr(msg, "leader changed") != NULL || strstr(msg, "no leader") != NULL ||
           strstr(msg, "leader failure") != NULL;
}

/* Endpoint <ep>'s member changed leaders.  A request it had forwarded to the
 * old leader is dropped there and answered only when etcd's own request
 * timeout ends it, about 6 s later with the default timers (measured:
 * tests/integration/test_etcd_leader_loss.c), stalling the writes it
 * carries long after the election is over.  So every attempt in flight
 * there that began before <before_us> is cut short and sent again at once:
 * a put is safe to send twice (values are unique and applied once, see
 * etcd.h), a read has no effect.  Starts over after each cut: a cut's
 * callbacks may start or end requests. */
static void cut_attempts(struct etcd *e, size_t ep, int64_t before_us, const char *why)
{
    size_t n = 0;

    for (;;) {
        struct etcd_req *r;

        for (r = e->reqs; r; r = r->next)
            if (!r->fixed_endpoint && !r->cut && r->ep == ep && r->started_us < before_us &&
                (r->call != NULL || r->gcall != NULL))
                break;
        if (r == NULL)
            break;
        r->cut = 1;
        e->attempts_cut++;
        n++;
        e->tp->attempt_abort(r);
    }
    if (n > 0)
        mr_log(MR_LOG_WARN, "etcd", "%s %s: %zu request(s) in flight there sent again", e->ep[ep].url,
               why, n);
}

void etcd__attempt_done(struct etcd_req *r, int rc, int retry, const struct etcd__result *res)
{
    struct etcd *e = r->e;
    size_t ep = r->ep;

    if (e->closing) {
        mr_seterr(r->errmsg, MR_ECLOSED, "etcd client closed");
        finish(r, MR_ECLOSED, NULL);
        return;
    }
    if (r->cut) {
        r->cut = 0;
        /* Cut by us: again at once, to the endpoint in use (the same one
         * after a new term, the next after a lost leader).  An answer that
         * raced the cut stands. */
        if (rc != 0 && mr_mono_us() < r->deadline_us) {
            attempt(r);
            return;
        }
    }
    if (rc == 0) {
        /* A higher term than this member ever showed: it has elected a
         * leader since, and what it forwarded to the last one may be lost. */
        if (res->raft_term > e->ep[ep].raft_term) {
            int had = e->ep[ep].raft_term != 0;
            char why[64];

            e->ep[ep].raft_term = res->raft_term;
            snprintf(why, sizeof(why), "is in a new term (%llu)", (unsigned long long)res->raft_term);
            /* Every attempt in flight there, not only those older than
             * <r>: one sent after <r> may still have been forwarded before
             * the member learnt of the new leader, and <r> itself may be
             * old (its answer is only the first to show the term).  Sending
             * again one that would have succeeded costs a duplicate. */
            if (had)   /* before finish: <r> listed keeps the client alive */
                cut_attempts(e, ep, mr_mono_us(), why);
        }
        finish(r, 0, res);
        return;
    }
    r->last_rc = rc;
    if (retry && says_leader_lost(r->errmsg)) {
        /* Off <ep> first, so that what is cut goes elsewhere; <r> is still
         * listed, so no callback can free the client meanwhile. */
        if (e->current == ep)
            etcd_failover(e, r->errmsg);
        cut_attempts(e, ep, mr_mono_us(), "lost its leader");
    }
    if (retry)
        retry_or_fail(r);
    else
        finish(r, rc, NULL);
}

uint64_t etcd_attempts_cut(const struct etcd *e)
{
    return e->attempts_cut;
}

static void attempt(struct etcd_req *r)
{
    struct etcd *e = r->e;
    int64_t left_ms = (r->deadline_us - mr_mono_us()) / 1000;

    if (!r->fixed_endpoint)
        r->ep = e->current;
    if (left_ms < 1)
        left_ms = 1;
    r->started_us = mr_mono_us();
    e->tp->attempt(r, (uint64_t)left_ms < e->timeout_ms ? (uint64_t)left_ms : e->timeout_ms);
}

static void req_start(struct etcd *e, enum etcd__req_kind kind, const struct etcd__args *a,
                      uint64_t deadline_ms, struct etcd_req *r, void *data)
{
    r->e = e;
    r->kind = kind;
    mr_buf_init(&r->answer);
    e->tp->encode(r, a);
    r->deadline_us = mr_mono_us() + (int64_t)deadline_ms * 1000;
    r->data = data;
    r->next = e->reqs;
    if (e->reqs)
        e->reqs->prev = r;
    e->reqs = r;
    maybe_return_to_preferred(e);
    attempt(r);
}

int etcd_put(struct etcd *e, const char *key, const void *value, size_t value_len,
             uint64_t deadline_ms, etcd_put_cb cb, void *data)
{
    struct etcd_req *r = mr_calloc(1, sizeof(*r));
    struct etcd__args a = {.key = key, .key_len = strlen(key), .value = value, .value_len = value_len};

    r->cb.put = cb;
    req_start(e, ETCD__PUT, &a, deadline_ms, r, data);
    return 0;
}

int etcd_get(struct etcd *e, const char *key, uint64_t deadline_ms, etcd_get_cb cb, void *data)
{
    struct etcd_req *r = mr_calloc(1, sizeof(*r));
    struct etcd__args a = {.key = key, .key_len = strlen(key)};

    r->cb.get = cb;
    req_start(e, ETCD__GET, &a, deadline_ms, r, data);
    return 0;
}

int etcd_get_prefix(struct etcd *e, const char *prefix, uint64_t deadline_ms, etcd_prefix_cb cb,
                    void *data)
{
    size_t n = strlen(prefix);
    struct etcd__args a = {.key = prefix, .key_len = n, .range_end_len = n};
    struct etcd_req *r;
    char *end;

    if (n == 0 || (unsigned char)prefix[n - 1] == 0xff)
        return MR_EINVAL;
    /* range_end = the prefix with its last byte incremented. */
    end = mr_strdup(prefix);
    end[n - 1]++;
    a.range_end = end;
    r = mr_calloc(1, sizeof(*r));
    r->cb.prefix = cb;
    req_start(e, ETCD__PREFIX, &a, deadline_ms, r, data);
    mr_free(end);
    return 0;
}

int etcd_compact(struct etcd *e, int64_t revision, uint64_t deadline_ms, etcd_done_cb cb,
                 void *data)
{
    struct etcd_req *r = mr_calloc(1, sizeof(*r));
    struct etcd__args a = {.revision = revision};

    r->cb.done = cb;
    req_start(e, ETCD__COMPACT, &a, deadline_ms, r, data);
    return 0;
}

int etcd_status(struct etcd *e, size_t endpoint, etcd_status_cb cb, void *data)
{
    struct etcd_req *r;
    struct etcd__args a = {0};

    if (endpoint >= e->n_ep)
        return MR_EINVAL;
    r = mr_calloc(1, sizeof(*r));
    r->fixed_endpoint = 1;
    r->ep = endpoint;
    r->cb.status = cb;
    req_start(e, ETCD__STATUS, &a, e->timeout_ms, r, data);
    return 0;
}

/* ---- watch (both transports) ------------------------------------------------ */

static void watch_unlink_free(struct etcd_watch *w)
{
    struct etcd *e = w->e;

    if (w->prev)
        w->prev->next = w->next;
    else
        e->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    mr_buf_close(&w->line);
    mr_free(w->body);
    mr_free(w);
    maybe_free(e);
}

void etcd__watch_end(struct etcd_watch *w, int rc)
{
    w->on_end(w, rc, w->compact_revision, w->errmsg, w->data);
    watch_unlink_free(w);
}

int etcd_watch(struct etcd *e, const char *key, int64_t start_revision, etcd_event_cb on_event,
               etcd_watch_end_cb on_end, void *data, struct etcd_watch **out)
{
    struct etcd_watch *w;
    int rc;

    maybe_return_to_preferred(e);
    w = mr_calloc(1, sizeof(*w));
    w->e = e;
    w->on_event = on_event;
    w->on_end = on_end;
    w->data = data;
    mr_buf_init(&w->line);
    w->next = e->watches;
    if (e->watches)
        e->watches->prev = w;
    e->watches = w;
    rc = e->tp->watch(w, key, start_revision);
    if (rc != 0) {
        watch_unlink_free(w);
        return rc;
    }
    if (out)
        *out = w;
    return 0;
}

/* End the watch from our side with <rc> (the transport reports it). */
static void watch_abort(struct etcd_watch *w, int rc)
{
    if (w->end_rc == 0)
        w->end_rc = rc;
    w->e->tp->watch_abort(w);
}

void etcd_watch_cancel(struct etcd_watch *w)
{
    watch_abort(w, MR_ECLOSED);
}

/* ---- lifetime ------------------------------------------------------------------ */

static void maybe_free(struct etcd *e)
{
    if (!e->closing || e->in_free || e->reqs || e->watches)
        return;
    free_endpoints(e);
    mr_free(e);
}

void etcd_free(struct etcd *e)
{
    e->closing = 1;
    e->in_free = 1;
    /* Requests waiting between rounds hold no call: finish them here. */
    for (struct etcd_req *r = e->reqs, *next; r; r = next) {
        next = r->next;
        if (r->backoff) {
            uv_timer_stop(r->backoff);
            uv_close((uv_handle_t *)r->backoff, backoff_closed);
            r->backoff = NULL;
            mr_seterr(r->errmsg, MR_ECLOSED, "etcd client closed");
            finish(r, MR_ECLOSED, NULL);
        }
    }
    for (struct etcd_watch *w = e->watches; w; w = w->next)
        if (w->end_rc == 0)
            w->end_rc = MR_ECLOSED;
    /* Freeing the transport cancels every call; their callbacks finish the
     * remaining requests and watches with MR_ECLOSED, and the last one frees
     * <e> (now, or later on the loop). */
    e->tp->free(e);
    e->in_free = 0;
    maybe_free(e);
}

/* ======================================================================
 * The JSON gateway transport: POST /v3/... over HTTP/1.1.
 * ====================================================================== */

static int gw_init(struct etcd *e, char *err)
{
    struct http_client_opts hopts;
    int rc;

    http_client_opts_default(&hopts);
    hopts.max_response_bytes = 64 * 1024 * 1024;
    hopts.tls = e->tls;
    rc = http_client_new(e->loop, &hopts, &e->http);
    if (rc != 0)
        return mr_seterr(err, rc, "cannot create HTTP client");
    return 0;
}

/* json_dumps allocates with malloc; keep our buffers on one allocator. */
static json_t *b64_string(const void *p, size_t n)
{
    char *b = mr_base64_encode(p, n);
    json_t *s = json_string(b);
    mr_free(b);
    return s;
}

static void gw_encode(struct etcd_req *r, const struct etcd__args *a)
{
    json_t *body = json_object();
    char rev[32];
    char *s;

    switch (r->kind) {
    case ETCD__PUT:
        r->path = "/v3/kv/put";
        json_object_set_new(body, "key", b64_string(a->key, a->key_len));
        json_object_set_new(body, "value", b64_string(a->value, a->value_len));
        break;
    case ETCD__GET:
    case ETCD__PREFIX:
        r->path = "/v3/kv/range";
        json_object_set_new(body, "key", b64_string(a->key, a->key_len));
        if (a->range_end)
            json_object_set_new(body, "range_end", b64_string(a->range_end, a->range_end_len));
        break;
    case ETCD__COMPACT:
        r->path = "/v3/kv/compaction";
        snprintf(rev, sizeof(rev), "%lld", (long long)a->revision);
        json_object_set_new(body, "revision", json_string(rev));
        json_object_set_new(body, "physical", json_true());
        break;
    case ETCD__STATUS:
        r->path = "/v3/maintenance/status";
        break;
    }
    s = json_dumps(body, JSON_COMPACT);
    r->body = mr_strdup(s);
    r->body_len = strlen(r->body);
    free(s);
    json_decref(body);
}

static int gw_retryable_status(int status)
{
    /* 5xx: no leader, proposal dropped, request timed out during an election. */
    return status >= 500;
}

/* Decode a 200 answer into <res>; *kvs and *bufs hold what the caller frees
 * afterwards.  Returns 0 or MR_EPROTO with r->errmsg set. */
static int gw_decode(struct etcd_req *r, json_t *resp, struct etcd__result *res,
                     struct etcd_kv **kvs, unsigned char ***bufs, size_t *n_bufs)
{
    json_t *hdr = json_object_get(resp, "header");

    memset(res, 0, sizeof(*res));
    res->revision = json_i64(hdr, "revision");
    res->raft_term = json_u64(hdr, "raft_term");
    if (r->kind == ETCD__STATUS) {
        res->member_id = json_u64(hdr, "member_id");
        res->leader_id = json_u64(resp, "leader");
        res->raft_index = json_i64(resp, "raftIndex");
        res->db_size = json_i64(resp, "dbSize");
    }
    if (r->kind == ETCD__GET || r->kind == ETCD__PREFIX) {
        json_t *jkvs = json_object_get(resp, "kvs");
        size_t n = json_array_size(jkvs);

        if (r->kind == ETCD__GET && n > 1)
            n = 1;
        *kvs = mr_calloc(n ? n : 1, sizeof(**kvs));
        *bufs = mr_calloc(2 * (n ? n : 1), sizeof(**bufs));
        for (size_t i = 0; i < n; i++) {
            if (decode_kv(json_array_get(jkvs, i), &(*kvs)[i], &(*bufs)[2 * i],
                          &(*bufs)[2 * i + 1]) != 0)
                return mr_seterr(r->errmsg, MR_EPROTO, "malformed key or value in range answer");
            *n_bufs = 2 * (i + 1);
        }
        res->kvs = *kvs;
        res->n_kvs = n;
    }
    return 0;
}

static void gw_on_response(struct http_call *call, int rc, const struct http_response *resp,
                           void *data)
{
    struct etcd_req *r = data;
    struct etcd__result res;
    struct etcd_kv *kvs = NULL;
    unsigned char **bufs = NULL;
    size_t n_bufs = 0;
    json_t *j = NULL;
    json_error_t jerr;

    (void)call;
    r->call = NULL;
    if (r->e->closing) {
        etcd__attempt_done(r, MR_ECLOSED, 0, NULL);
        return;
    }
    if (rc != 0) {
        mr_seterr(r->errmsg, rc, "%s%s: %s", r->e->ep[r->ep].url, r->path, mr_strerror(rc));
        etcd__attempt_done(r, rc, 1, NULL);
        return;
    }
    j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &jerr);
    if (resp->status != 200) {
        const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
        int retry = gw_retryable_status(resp->status);

        if (m == NULL)
            m = j ? json_string_value(json_object_get(j, "error")) : NULL;
        rc = retry ? MR_EUNAVAIL : MR_EPROTO;
        mr_seterr(r->errmsg, rc, "%s%s: HTTP %d: %s", r->e->ep[r->ep].url, r->path, resp->status,
                  m ? m : "(no message)");
        if (r->kind == ETCD__COMPACT && m && strstr(m, "compacted")) {
            json_decref(j);
            memset(&res, 0, sizeof(res));
            etcd__attempt_done(r, 0, 0, &res);
            return;
        }
        json_decref(j);
        etcd__attempt_done(r, rc, retry, NULL);
        return;
    }
    if (j == NULL) {
        mr_seterr(r->errmsg, MR_EPROTO, "%s%s: answer is not JSON: %s", r->e->ep[r->ep].url,
                  r->path, jerr.text);
        etcd__attempt_done(r, MR_EPROTO, 0, NULL);
        return;
    }
    rc = gw_decode(r, j, &res, &kvs, &bufs, &n_bufs);
    etcd__attempt_done(r, rc, 0, rc == 0 ? &res : NULL);
    for (size_t i = 0; i < n_bufs; i++)
        mr_free(bufs[i]);
    mr_free(bufs);
    mr_free(kvs);
    json_decref(j);
}

static void gw_attempt(struct etcd_req *r, uint64_t timeout_ms)
{
    struct etcd *e = r->e;
    struct http_client_request hr;
    int rc;

    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.host = e->ep[r->ep].host;
    hr.port = e->ep[r->ep].port;
    hr.path = r->path;
    hr.headers = ETCD_HEADERS;
    hr.body = r->body;
    hr.body_len = r->body_len;
    hr.timeout_ms = timeout_ms;
    rc = http_client_request(e->http, &hr, gw_on_response, r, &r->call);
    if (rc != 0) {
        mr_seterr(r->errmsg, rc, "%s%s: cannot send: %s", e->ep[r->ep].url, r->path,
                  mr_strerror(rc));
        etcd__attempt_done(r, rc, 0, NULL);
    }
}

static void gw_attempt_abort(struct etcd_req *r)
{
    if (r->call)
        http_call_cancel(r->call);   /* gw_on_response follows with MR_ECLOSED */
}

/* End the stream from our side (w->end_rc is set; the HTTP callback reports it). */
static void gw_watch_abort(struct etcd_watch *w)
{
    if (w->in_body)
        w->cancel_pending = 1;
    else if (w->call)
        http_call_cancel(w->call);
}

static void gw_watch_fail(struct etcd_watch *w, int rc)
{
    if (w->end_rc == 0)
        w->end_rc = rc;
    gw_watch_abort(w);
}

/* One line of the watch stream: a JSON object with "result" or "error". */
static void watch_line(struct etcd_watch *w, const char *p, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(p, n, 0, &jerr);
    json_t *res, *events;
    size_t i;

    if (j == NULL) {
        mr_seterr(w->errmsg, MR_EPROTO, "watch: line is not JSON: %s", jerr.text);
        gw_watch_fail(w, MR_EPROTO);
        return;
    }
    if (json_object_get(j, "error")) {
        const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        mr_seterr(w->errmsg, MR_EUNAVAIL, "watch: %s", m ? m : "error from etcd");
        gw_watch_fail(w, MR_EUNAVAIL);
        json_decref(j);
        return;
    }
    res = json_object_get(j, "result");
    if (json_is_true(json_object_get(res, "canceled"))) {
        w->compact_revision = json_i64(res, "compact_revision");
        const char *reason = json_string_value(json_object_get(res, "cancel_reason"));
        if (w->compact_revision > 0) {
            mr_seterr(w->errmsg, MR_ECOMPACTED, "watch: history compacted up to revision %lld",
                      (long long)w->compact_revision);
            gw_watch_fail(w, MR_ECOMPACTED);
        } else {
            mr_seterr(w->errmsg, MR_EUNAVAIL, "watch canceled by etcd: %s",
                      reason ? reason : "(no reason)");
            gw_watch_fail(w, MR_EUNAVAIL);
        }
        json_decref(j);
        return;
    }
    events = json_object_get(res, "events");
    for (i = 0; i < json_array_size(events) && !w->cancel_pending; i++) {
        json_t *ev = json_array_get(events, i);
        const char *type = json_string_value(json_object_get(ev, "type"));
        struct etcd_kv kv;
        unsigned char *kb, *vb;

        if (type != NULL && strcmp(type, "PUT") != 0)
            continue; /* deletes: the log key is never deleted */
        if (decode_kv(json_object_get(ev, "kv"), &kv, &kb, &vb) != 0) {
            mr_seterr(w->errmsg, MR_EPROTO, "watch: malformed event");
            gw_watch_fail(w, MR_EPROTO);
            break;
        }
        w->on_event(w, &kv, w->data);
        mr_free(kb);
        mr_free(vb);
    }
    json_decref(j);
}

static void watch_body(struct http_call *call, const char *p, size_t n, void *data)
{
    struct etcd_watch *w = data;
    size_t start = 0;

    (void)call;
    if (w->cancel_pending)
        return;
    w->in_body = 1;
    for (size_t i = 0; i < n && !w->cancel_pending; i++) {
        if (p[i] != '\n')
            continue;
        if (w->line.len) {
            mr_buf_append(&w->line, p + start, i - start);
            watch_line(w, w->line.data, w->line.len);
            mr_buf_reset(&w->line);
        } else if (i > start) {
            watch_line(w, p + start, i - start);
        }
        start = i + 1;
    }
    if (!w->cancel_pending && start < n)
        mr_buf_append(&w->line, p + start, n - start);
    w->in_body = 0;
    if (w->cancel_pending && w->call)
        http_call_cancel(w->call);
}

static void watch_done(struct http_call *call, int rc, const struct http_response *resp,
                       void *data)
{
    struct etcd_watch *w = data;

    (void)call;
    w->call = NULL;
    if (w->end_rc != 0) {
        rc = w->end_rc;
    } else if (rc != 0) {
        mr_seterr(w->errmsg, rc, "watch: %s", mr_strerror(rc));
    } else if (resp->status != 200) {
        rc = MR_EUNAVAIL;
        mr_seterr(w->errmsg, rc, "watch: HTTP %d", resp->status);
    } else {
        /* The "no leader" error object comes without a trailing newline. */
        if (w->line.len)
            watch_line(w, w->line.data, w->line.len);
        rc = w->end_rc ? w->end_rc : MR_ECLOSED;
        if (w->end_rc == 0)
            mr_seterr(w->errmsg, rc, "watch: stream ended");
    }
    etcd__watch_end(w, rc);
}

static int gw_watch(struct etcd_watch *w, const char *key, int64_t start_revision)
{
    struct etcd *e = w->e;
    struct http_client_request hr;
    json_t *body = json_object(), *create = json_object();
    char rev[32];
    char *s;

    snprintf(rev, sizeof(rev), "%lld", (long long)start_revision);
    json_object_set_new(create, "key", b64_string(key, strlen(key)));
    json_object_set_new(create, "start_revision", json_string(rev));
    json_object_set_new(body, "create_request", create);
    s = json_dumps(body, JSON_COMPACT);
    w->body = mr_strdup(s);
    free(s);
    json_decref(body);
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.host = e->ep[e->current].host;
    hr.port = e->ep[e->current].port;
    hr.path = "/v3/watch";
    hr.headers = ETCD_HEADERS;
    hr.body = w->body;
    hr.body_len = strlen(w->body);
    hr.timeout_ms = e->timeout_ms;
    hr.on_body = watch_body;
    return http_client_request(e->http, &hr, watch_done, w, &w->call);
}

static void gw_free(struct etcd *e)
{
    struct http_client *http = e->http;

    e->http = NULL;
    http_client_free(http);
}

const struct etcd__transport etcd__gateway = {
    .name = "gateway",
    .init = gw_init,
    .encode = gw_encode,
    .attempt = gw_attempt,
    .attempt_abort = gw_attempt_abort,
    .watch = gw_watch,
    .watch_abort = gw_watch_abort,
    .free = gw_free,
};
