/* api.c -- the node's HTTP API: /v1/sql, /v1/status, /v1/digest, /healthz,
 * /readyz, /metrics, and the routes of /v1/tables and /dashboard.  Request
 * shapes are a public contract: docs/api.md. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/token.h"
#include "../common/util.h"
#include "node_int.h"

static const char *route_names[ROUTE_COUNT] = {"sql_rejected", "sql_read", "sql_write", "status", "digest",
                                               "healthz",  "readyz",    "metrics", "other",
                                               "table_read", "table_write", "table_replicate",
                                               "dashboard", "refused"};

void node__format_token(char *out, size_t size, int64_t rev)
{
    snprintf(out, size, NODE_TOKEN_VERSION ".%lld", (long long)rev);
}

/* The shared grammar of src/common/token.h; the table positions a token may
 * carry do not concern SQL reads and are ignored here. */
int node__parse_token(const char *s, int64_t *rev)
{
    struct mr_token t;

    if (mr_token_parse(s, &t, NULL) != 0)
        return MR_EINVAL;
    *rev = t.rev;
    return 0;
}

void sql_req_free(struct sql_req *r)
{
    mr_free(r->stmts);
    json_decref(r->doc);
    memset(r, 0, sizeof(*r));
}

void node__respond_json(struct node *n, struct http_exchange *ex, enum node_route route,
                        int64_t start_us, int status, struct mr_buf *body, const char *headers)
{
    struct node_stats *st = &n->stats;

    st->requests[route][status / 100 < 6 ? status / 100 : 5]++;
    mr_hist_observe(&st->latency[route], (double)(mr_mono_us() - start_us) / 1e6);
    http_respond(ex, status, "application/json", body->data ? body->data : "", body->len, headers);
}

void node__respond_error(struct node *n, struct http_exchange *ex, enum node_route route,
                         int64_t start_us, int status, const char *code, const char *msg,
                         const char *headers)
{
    struct mr_buf b;

    mr_buf_init(&b);
    mr_json_error(&b, code, msg);
    node__respond_json(n, ex, route, start_us, status, &b, headers);
    mr_buf_close(&b);
}

/* Unknown fields are refused: a misspelt "consistency" must not silently
 * read stale data. */
int node__parse_sql_request(const struct http_request *hr, struct sql_req *r, char *err)
{
    json_error_t jerr;
    json_t *stmts, *v;
    const char *key;
    const char *hdr_token = http_request_header(hr, "Meridian-Token");
    const char *token = NULL;

    memset(r, 0, sizeof(*r));
    r->token_rev = -1;
    r->doc = json_loadb(hr->body, hr->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (r->doc == NULL)
        return mr_seterr(err, MR_EINVAL, "body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
    if (!json_is_object(r->doc))
        return mr_seterr(err, MR_EINVAL, "body must be a JSON object with \"statements\"");
    json_object_foreach(r->doc, key, v) {
        if (strcmp(key, "statements") && strcmp(key, "consistency") && strcmp(key, "token") &&
            strcmp(key, "idempotency_key"))
            return mr_seterr(err, MR_EINVAL,
                             "unknown field \"%s\" (expected statements, consistency, token, "
                             "idempotency_key)", key);
    }
    stmts = json_object_get(r->doc, "statements");
    if (!json_is_array(stmts) || json_array_size(stmts) == 0)
        return mr_seterr(err, MR_EINVAL, "\"statements\" must be a non-empty array");
    if (json_array_size(stmts) > STORE_MAX_STATEMENTS)
        return mr_seterr(err, MR_EINVAL, "%zu statements: at most %d per request",
                         json_array_size(stmts), STORE_MAX_STATEMENTS);
    r->n_stmts = json_array_size(stmts);
    r->stmts = mr_calloc(r->n_stmts, sizeof(*r->stmts));
    for (size_t i = 0; i < r->n_stmts; i++) {
        json_t *s = json_array_get(stmts, i), *sql, *params;
        json_object_foreach(s, key, v) {
            if (strcmp(key, "sql") && strcmp(key, "params"))
                return mr_seterr(err, MR_EINVAL, "statement %zu: unknown field \"%s\" (expected sql, params)",
                                 i + 1, key);
        }
        sql = json_object_get(s, "sql");
        if (!json_is_string(sql))
            return mr_seterr(err, MR_EINVAL, "statement %zu: \"sql\" must be a string", i + 1);
        params = json_object_get(s, "params");
        if (params && !json_is_array(params) && !json_is_object(params) && !json_is_null(params))
            return mr_seterr(err, MR_EINVAL,
                             "statement %zu: \"params\" must be an array or an object", i + 1);
        r->stmts[i].sql = json_string_value(sql);
        r->stmts[i].params = json_is_null(params) ? NULL : params;
    }

    v = json_object_get(r->doc, "token");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return mr_seterr(err, MR_EINVAL, "\"token\" must be a string");
        token = json_string_value(v);
    } else if (hdr_token && *hdr_token) {
        token = hdr_token;
    }
    if (token && node__parse_token(token, &r->token_rev) != 0)
        return mr_seterr(err, MR_EINVAL, "token \"%.64s\" is not a Meridian consistency token",
                         token);

    v = json_object_get(r->doc, "consistency");
    r->consistency = token ? CONS_SESSION : CONS_EVENTUAL;
    if (v && !json_is_null(v)) {
        const char *c = json_string_value(v);
        if (c == NULL)
            return mr_seterr(err, MR_EINVAL, "\"consistency\" must be a string");
        if (!strcmp(c, "eventual"))
            r->consistency = CONS_EVENTUAL;
        else if (!strcmp(c, "session"))
            r->consistency = CONS_SESSION;
        else if (!strcmp(c, "strong"))
            r->consistency = CONS_STRONG;
        else
            return mr_seterr(err, MR_EINVAL,
                             "unknown consistency \"%.32s\" (expected eventual, session or strong)", c);
    }

    v = json_object_get(r->doc, "idempotency_key");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > NODE_MAX_IDEM_KEY)
            return mr_seterr(err, MR_EINVAL, "\"idempotency_key\" must be a string of 1 to %d bytes",
                             NODE_MAX_IDEM_KEY);
        r->idem_key = json_string_value(v);
    }
    return 0;
}

static const char *sql_error_code(int rc)
{
    switch (rc) {
    case MR_ECONSTRAINT: return "constraint";
    case MR_EDENIED: return "not_allowed";
    case MR_ETOOBIG: return "too_large";
    case MR_ESQL: return "sql_error";
    default: return "invalid_request";
    }
}

void node__serve_read(struct node *n, struct http_exchange *ex, struct sql_req *req,
                      int64_t start_us)
{
    char err[MR_ERRMSG_LEN];
    char token[48], hdr[96];
    struct mr_buf b;
    int rc;

    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"results\":");
    /* Reads of one loop turn share one snapshot: nothing is applied between
     * them (apply.c unpins first) and commit.c's check unpins after. */
    if (store_read_pin(n->store) != 0)
        mr_log(MR_LOG_DEBUG, "api", "cannot pin a read transaction: reading without");
    rc = store_read(n->store, req->stmts, req->n_stmts, &b, err);
    if (rc != 0) {
        node__respond_error(n, ex, ROUTE_SQL_READ, start_us, rc == MR_ETOOBIG ? 413 : 400,
                            sql_error_code(rc), err, NULL);
        goto out;
    }
    n->stats.reads++;
    node__format_token(token, sizeof(token), n->pos.rev);
    snprintf(hdr, sizeof(hdr), "Meridian-Token: %s\r\n", token);
    mr_buf_printf(&b, ",\"token\":\"%s\",\"region\":", token);
    mr_json_cstr(&b, n->cfg->region);
    mr_buf_printf(&b, ",\"consistency\":\"%s\",\"staleness_ms\":%lld,\"entries_behind\":%lld}",
                  req->consistency == CONS_STRONG    ? "strong"
                  : req->consistency == CONS_SESSION ? "session"
                                                     : "eventual",
                  (long long)node__staleness_ms(n), (long long)node__entries_behind(n));
    node__respond_json(n, ex, ROUTE_SQL_READ, start_us, 200, &b, hdr);
out:
    mr_buf_close(&b);
    sql_req_free(req);
}

void node__route_sql(struct node *n, struct http_exchange *ex, struct sql_req *req,
                     int64_t start_us, int may_recheck)
{
    char err[MR_ERRMSG_LEN];
    int is_write = 0, rc;

    rc = store_check(n->store, req->stmts, req->n_stmts, &is_write, err);
    if (rc == MR_ESQL && may_recheck) {
        /* "no such table" may only mean that this replica has not applied
         * the CREATE yet: catch up with the head, then decide. */
        node__wait_strong(n, ex, req, start_us, 1);
        return;
    }
    if (rc != 0) {
        node__respond_error(n, ex, ROUTE_SQL_REJECTED, start_us, 400,
                            rc == MR_EINVAL ? "invalid_request" : sql_error_code(rc), err, NULL);
        sql_req_free(req);
        return;
    }
    if (is_write) {
        if (req->read_only_caller) {
            /* Known only now: a statement writes (WITH ... INSERT reads as
             * a SELECT to any lexical test; store_check asks SQLite). */
            n->stats.auth_refused[MR_AUTH_FORBIDDEN]++;
            node__respond_error(n, ex, ROUTE_REFUSED, start_us, 403, "forbidden",
                                "this request writes and the token does not have the write scope",
                                NULL);
            sql_req_free(req);
            return;
        }
        node__submit_write(n, ex, req, start_us);
        return;
    }
    if (req->consistency == CONS_STRONG) {
        node__wait_strong(n, ex, req, start_us, 0);
        return;
    }
    if (req->consistency == CONS_SESSION && req->token_rev > n->pos.rev) {
        node__wait_for_rev(n, ex, req, req->token_rev, start_us);
        return;
    }
    node__serve_read(n, ex, req, start_us);
}

static void handle_sql(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                       unsigned granted, const char *who)
{
    char err[MR_ERRMSG_LEN];
    struct sql_req req;
    int64_t start = hr->received_us;
    int ddl = 0;

    if (strcmp(hr->method, "POST") != 0) {
        node__respond_error(n, ex, ROUTE_OTHER, start, 405, "method_not_allowed",
                            "use POST /v1/sql with a JSON body", "Allow: POST\r\n");
        return;
    }
    if (node__parse_sql_request(hr, &req, err) != 0) {
        node__respond_error(n, ex, ROUTE_SQL_REJECTED, start, 400, "invalid_request", err, NULL);
        sql_req_free(&req);
        return;
    }
    for (size_t i = 0; i < req.n_stmts; i++)
        ddl |= node__sql_is_ddl(req.stmts[i].sql);
    if (ddl && !(granted & MR_AUTH_ADMIN)) {
        node__auth_refuse(n, ex, hr, MR_AUTH_FORBIDDEN, MR_AUTH_ADMIN, who);
        sql_req_free(&req);
        return;
    }
    req.read_only_caller = !(granted & MR_AUTH_WRITE);
    node__route_sql(n, ex, &req, start, 1);
}

static void handle_status(struct node *n, struct http_exchange *ex, int64_t start)
{
    char why[MR_ERRMSG_LEN] = "";
    int ready = node__ready(n, why, sizeof(why));
    struct node_stats *s = &n->stats;
    struct mr_buf b;
    size_t i;

    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"region\":");
    mr_json_cstr(&b, n->cfg->region);
    mr_buf_puts(&b, ",\"cluster\":");
    mr_json_cstr(&b, n->cfg->cluster);
    mr_buf_printf(&b, ",\"ready\":%s,\"seeding\":%s,\"not_ready_reason\":", ready ? "true" : "false",
                  n->seeding ? "true" : "false");
    if (ready)
        mr_buf_puts(&b, "null");
    else
        mr_json_cstr(&b, why);
    mr_buf_printf(&b,
                  ",\"applied\":{\"rev\":%lld,\"version\":%lld,\"ts_ms\":%lld},"
                  "\"head\":{\"rev\":%lld,\"version\":%lld},\"compacted_below\":%lld,"
                  "\"lag\":{\"entries\":%lld,\"staleness_ms\":%lld},",
                  (long long)n->pos.rev, (long long)n->pos.version, (long long)n->pos.ts_ms,
                  (long long)n->head_rev, (long long)n->head_version, (long long)n->compacted_rev,
                  (long long)node__entries_behind(n), (long long)node__staleness_ms(n));
    mr_buf_puts(&b, "\"etcd\":{\"current_endpoint\":");
    mr_json_cstr(&b, etcd_current_endpoint(n->etcd));
    mr_buf_puts(&b, ",\"watch_endpoint\":");
    if (n->watch)
        mr_json_cstr(&b, n->watch_endpoint);
    else
        mr_buf_puts(&b, "null");
    mr_buf_printf(&b, ",\"local_member_is_leader\":%s,\"members\":[",
                  n->local_is_leader ? "true" : "false");
    for (i = 0; i < etcd_n_endpoints(n->etcd); i++) {
        const struct etcd_member_status *m = &n->members[i];
        if (i)
            mr_buf_putc(&b, ',');
        mr_buf_puts(&b, "{\"endpoint\":");
        mr_json_cstr(&b, m->endpoint);
        mr_buf_printf(&b,
                      ",\"reachable\":%s,\"member_id\":\"%" PRIx64 "\",\"is_leader\":%s,"
                      "\"raft_index\":%lld,\"rtt_ms\":%.2f}",
                      m->reachable ? "true" : "false", m->member_id,
                      m->reachable && m->member_id == m->leader_id ? "true" : "false",
                      (long long)m->raft_index, m->rtt_ms);
    }
    mr_buf_printf(&b,
                  "]},\"counts\":{\"writes\":%llu,\"reads\":%llu,\"forwarded_writes\":%llu,"
                  "\"idempotent_replays\":%llu,\"batches_applied\":%llu,\"txns_applied\":%llu,"
                  "\"pending_writes\":%zu},\"replication\":{",
                  (unsigned long long)s->writes, (unsigned long long)s->reads,
                  (unsigned long long)s->forwarded_writes, (unsigned long long)s->idempotent_replays,
                  (unsigned long long)s->batches_applied, (unsigned long long)s->txns_applied,
                  n->n_pending);
    /* Submission in each origin region to apply here (bucket upper bounds). */
    for (i = 0; i < s->n_origins; i++) {
        if (i)
            mr_buf_putc(&b, ',');
        mr_json_cstr(&b, s->by_origin[i].origin);
        mr_buf_printf(&b, ":{\"batches\":%llu,\"last_ms\":%lld,\"p50_ms\":%g,\"p99_ms\":%g}",
                      (unsigned long long)s->by_origin[i].lag.count,
                      (long long)s->by_origin[i].last_ms,
                      mr_hist_quantile(&s->by_origin[i].lag, 0.50) * 1e3,
                      mr_hist_quantile(&s->by_origin[i].lag, 0.99) * 1e3);
    }
    mr_buf_putc(&b, '}');
    {
        /* Client requests and 5xx answers since start: the dashboards of
         * the other regions turn them into rates (docs/dashboard.md). */
        uint64_t req, errs;
        node__client_counts(n, &req, &errs);
        mr_buf_printf(&b, ",\"http\":{\"requests\":%llu,\"errors\":%llu}", (unsigned long long)req,
                      (unsigned long long)errs);
    }
    node__tables_status(n, &b);
    mr_buf_putc(&b, '}');
    node__respond_json(n, ex, ROUTE_STATUS, start, 200, &b, NULL);
    mr_buf_close(&b);
}

/* GET /v1/digest[?integrity=1]: the replica's digest, and optionally the
 * result of PRAGMA integrity_check (slow on big databases: on request only). */
static void handle_digest(struct node *n, struct http_exchange *ex, const struct http_request *hr)
{
    char err[MR_ERRMSG_LEN], digest[65];
    int64_t start = hr->received_us;
    struct mr_buf b, q;
    int integrity = 0;

    mr_buf_init(&q);
    if (http_request_query(hr, "integrity", &q) && strcmp(q.data ? q.data : "", "0") != 0)
        integrity = 1;
    mr_buf_close(&q);
    if (store_digest(n->store, digest, err) != 0) {
        node__respond_error(n, ex, ROUTE_DIGEST, start, 500, "internal", err, NULL);
        return;
    }
    mr_buf_init(&b);
    mr_buf_printf(&b, "{\"digest\":\"%s\",\"rev\":%lld,\"region\":", digest, (long long)n->pos.rev);
    mr_json_cstr(&b, n->cfg->region);
    if (integrity) {
        mr_buf_puts(&b, ",\"integrity\":");
        mr_json_cstr(&b, store_integrity_check(n->store, err) == 0 ? "ok" : err);
    }
    mr_buf_putc(&b, '}');
    node__respond_json(n, ex, ROUTE_DIGEST, start, 200, &b, NULL);
    mr_buf_close(&b);
}

static void write_metrics(struct node *n, struct mr_buf *b)
{
    struct node_stats *s = &n->stats;
    struct http_server_stats hs;
    char labels[96];

    mr_metric_header(b, "meridian_http_requests_total", "counter", "HTTP requests by route and status class");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int c = 1; c <= 5; c++)
            if (s->requests[r][c]) {
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%dxx\"", route_names[r], c);
                mr_metric_u64(b, "meridian_http_requests_total", labels, s->requests[r][c]);
            }
    mr_metric_header(b, "meridian_http_request_duration_seconds", "histogram", "HTTP request latency by route");
    for (int r = 0; r < ROUTE_COUNT; r++)
        if (s->latency[r].count) {
            snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
            mr_metric_hist(b, "meridian_http_request_duration_seconds", labels, &s->latency[r]);
        }
    http_server_stats(n->http, &hs);
    mr_metric_header(b, "meridian_http_connections_open", "gauge", "open client connections");
    mr_metric_u64(b, "meridian_http_connections_open", NULL, hs.connections_open);
    mr_metric_header(b, "meridian_http_bad_requests_total", "counter", "malformed or oversized requests");
    mr_metric_u64(b, "meridian_http_bad_requests_total", NULL, hs.bad_requests);
    /* Always present (0 without [tls]), so alerts need no special case. */
    mr_metric_header(b, "meridian_tls_refused_total", "counter",
                     "TLS handshakes the node's listener refused (no TLS, a certificate that "
                     "does not verify)");
    mr_metric_u64(b, "meridian_tls_refused_total", NULL, hs.tls_refused);
    mr_metric_header(b, "meridian_tls_reloads_total", "counter",
                     "certificate reloads on SIGHUP, by result");
    mr_metric_u64(b, "meridian_tls_reloads_total", "result=\"ok\"", n->stats.tls_reloads);
    mr_metric_u64(b, "meridian_tls_reloads_total", "result=\"failed\"", n->stats.tls_reload_failures);

    mr_metric_header(b, "meridian_applied_revision", "gauge", "log revision applied to the local replica");
    mr_metric_u64(b, "meridian_applied_revision", NULL, (uint64_t)n->pos.rev);
    mr_metric_header(b, "meridian_head_revision", "gauge", "latest log revision known from etcd");
    mr_metric_u64(b, "meridian_head_revision", NULL, (uint64_t)n->head_rev);
    mr_metric_header(b, "meridian_apply_lag_entries", "gauge", "log batches committed but not applied here");
    mr_metric_u64(b, "meridian_apply_lag_entries", NULL, (uint64_t)node__entries_behind(n));
    mr_metric_header(b, "meridian_apply_lag_ms", "gauge", "upper bound of the local replica's staleness");
    mr_metric_u64(b, "meridian_apply_lag_ms", NULL, (uint64_t)node__staleness_ms(n));
    mr_metric_header(b, "meridian_apply_delay_seconds", "histogram", "time from a batch's submission to its apply here");
    mr_metric_hist(b, "meridian_apply_delay_seconds", NULL, &s->apply_lag_seconds);
    mr_metric_header(b, "meridian_replication_lag_seconds", "histogram",
                     "submission in the origin region to apply here, by origin region");
    for (size_t i = 0; i < s->n_origins; i++) {
        snprintf(labels, sizeof(labels), "origin=\"%s\"", s->by_origin[i].origin);
        mr_metric_hist(b, "meridian_replication_lag_seconds", labels, &s->by_origin[i].lag);
    }
    mr_metric_header(b, "meridian_batch_txns", "histogram", "transactions per applied batch");
    mr_metric_hist(b, "meridian_batch_txns", NULL, &s->batch_txns);
    mr_metric_header(b, "meridian_etcd_put_seconds", "histogram", "etcd put round trip (group commit)");
    mr_metric_hist(b, "meridian_etcd_put_seconds", NULL, &s->put_seconds);
    mr_metric_header(b, "meridian_etcd_get_seconds", "histogram", "etcd linearizable read round trip");
    mr_metric_hist(b, "meridian_etcd_get_seconds", NULL, &s->get_seconds);
    mr_metric_header(b, "meridian_etcd_attempts_cut_total", "counter",
                     "etcd requests sent again at once because their member lost its leader");
    mr_metric_u64(b, "meridian_etcd_attempts_cut_total", NULL, etcd_attempts_cut(n->etcd));
    mr_metric_header(b, "meridian_commit_seconds", "histogram", "write request to local apply");
    mr_metric_hist(b, "meridian_commit_seconds", NULL, &s->commit_seconds);

#define COUNTER(name, field, help)                         \
    mr_metric_header(b, "meridian_" name, "counter", help); \
    mr_metric_u64(b, "meridian_" name, NULL, s->field)
    COUNTER("writes_total", writes, "write transactions submitted here");
    COUNTER("reads_total", reads, "read requests served here");
    COUNTER("forwarded_writes_total", forwarded_writes, "writes submitted while the etcd leader was in another region");
    COUNTER("idempotent_replays_total", idempotent_replays, "writes answered with the first result of their idempotency key");
    COUNTER("commit_unknown_total", commit_unknown, "writes answered 503 with an unknown outcome");
    COUNTER("batches_put_total", batches_put, "batches written to etcd from here");
    COUNTER("put_failures_total", put_failures, "batches whose etcd put failed for good");
    COUNTER("batches_applied_total", batches_applied, "log batches applied here");
    COUNTER("txns_applied_total", txns_applied, "transactions applied here");
    COUNTER("read_waits_total", read_waits, "session or strong reads that waited for the replica");
    COUNTER("read_wait_timeouts_total", read_wait_timeouts, "reads answered 503 because the replica did not catch up in time");
    COUNTER("watch_restarts_total", watch_restarts, "etcd watch restarts");
    COUNTER("compactions_total", compactions, "log compactions this node ran");
    COUNTER("seeds_total", seeds, "times this replica was seeded from another region's snapshot");
    COUNTER("store_reopens_total", store_reopens, "times the replica's database was reopened after an I/O error while applying");
#undef COUNTER
    mr_metric_header(b, "meridian_auth_refused_total", "counter",
                     "requests refused for want of a valid bearer token or scope, by reason");
    for (int r = MR_AUTH_MISSING; r < MR_AUTH_RESULT_COUNT; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", mr_auth_result_name((enum mr_auth_result)r));
        mr_metric_u64(b, "meridian_auth_refused_total", labels, s->auth_refused[r]);
    }
    mr_metric_header(b, "meridian_auth_reloads_total", "counter",
                     "[auth] token reloads on SIGHUP, by result (failed: the old tokens stay)");
    mr_metric_u64(b, "meridian_auth_reloads_total", "result=\"ok\"", s->auth_reloads);
    mr_metric_u64(b, "meridian_auth_reloads_total", "result=\"failed\"", s->auth_reload_failures);
    node__tables_metrics(n, b);
}

void node__handle(struct http_exchange *ex, const struct http_request *hr, void *data)
{
    struct node *n = data;
    int64_t start = hr->received_us;
    struct mr_buf b;
    char why[MR_ERRMSG_LEN];
    int get = strcmp(hr->method, "GET") == 0 || strcmp(hr->method, "HEAD") == 0;
    unsigned granted;
    const char *who;

    /* Every route's scope is decided here, before any handler runs
     * (auth.c lists the rules); /v1/sql asks for more once its statements
     * are known. */
    if (node__authorize(n, ex, hr, node__auth_need(hr), &granted, &who) != 0)
        return;
    if (strcmp(hr->path, "/v1/sql") == 0) {
        handle_sql(n, ex, hr, granted, who);
        return;
    }
    if (strncmp(hr->path, "/v1/tables", 10) == 0 && (hr->path[10] == '\0' || hr->path[10] == '/')) {
        node__tables_handle(n, ex, hr);
        return;
    }
    mr_buf_init(&b);
    if (strcmp(hr->path, "/healthz") == 0 && get) {
        mr_buf_puts(&b, "{\"status\":\"ok\"}");
        node__respond_json(n, ex, ROUTE_HEALTHZ, start, 200, &b, NULL);
    } else if (strcmp(hr->path, "/readyz") == 0 && get) {
        if (node__ready(n, why, sizeof(why))) {
            mr_buf_puts(&b, "{\"ready\":true}");
            node__respond_json(n, ex, ROUTE_READYZ, start, 200, &b, NULL);
        } else {
            mr_buf_puts(&b, "{\"ready\":false,\"reason\":");
            mr_json_cstr(&b, why);
            mr_buf_putc(&b, '}');
            node__respond_json(n, ex, ROUTE_READYZ, start, 503, &b, "Retry-After: 1\r\n");
        }
    } else if (strcmp(hr->path, "/metrics") == 0 && get) {
        write_metrics(n, &b);
        n->stats.requests[ROUTE_METRICS][2]++;
        http_respond(ex, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
    } else if (strcmp(hr->path, "/v1/status") == 0 && get) {
        handle_status(n, ex, start);
    } else if (strcmp(hr->path, "/v1/digest") == 0 && get) {
        handle_digest(n, ex, hr);
    } else if (strcmp(hr->path, "/v1/snapshot") == 0 && get) {
        node__snapshot_serve(n, ex, start);
    } else if (strcmp(hr->path, "/dashboard") == 0 && get) {
        node__dashboard_serve(n, ex, hr, 1);
    } else if (strcmp(hr->path, "/v1/dashboard") == 0 && get) {
        node__dashboard_serve(n, ex, hr, 0);
    } else if (!strcmp(hr->path, "/healthz") || !strcmp(hr->path, "/readyz") ||
               !strcmp(hr->path, "/metrics") || !strcmp(hr->path, "/v1/status") ||
               !strcmp(hr->path, "/v1/digest") || !strcmp(hr->path, "/v1/snapshot") ||
               !strcmp(hr->path, "/dashboard") || !strcmp(hr->path, "/v1/dashboard")) {
        node__respond_error(n, ex, ROUTE_OTHER, start, 405, "method_not_allowed",
                            "this path answers GET only", "Allow: GET, HEAD\r\n");
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "no such path: %.200s (see docs/api.md)", hr->path);
        node__respond_error(n, ex, ROUTE_OTHER, start, 404, "not_found", msg, NULL);
    }
    mr_buf_close(&b);
}
