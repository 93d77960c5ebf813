/* tables.c -- global tables in the node: the /v1/tables API, the group
 * commit that makes writes durable before they are acknowledged, and reads
 * that wait for a token.  Storage and merge rules are src/gtab; streaming
 * between regions is tstream.c.  API: docs/api.md, docs/tables.md.
 *
 * Group commit: a write (or a replicated batch) runs in the transaction the
 * first one of the loop turn opened; its answer waits in a list.  After the
 * turn (a uv_check handle) the transaction commits (to the WAL), a thread
 * of the libuv pool fdatasyncs the WAL, and only then are the answers sent
 * (decision 022: the loop serves the next turn during the fsync; turns that
 * commit meanwhile share the next one).  So an acknowledged write survives
 * SIGKILL and power loss.  Reads are served at once; they may see a write
 * before it is durable (the node stops if a commit or sync ever fails). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "tables_int.h"

/* ---- configuration ---------------------------------------------------------- */

int node__tables_parse_declare(const char *s, struct gtab_spec *out, size_t max, size_t *n_out,
                               char *err)
{
    char *copy, *save = NULL, *item;
    int rc = 0;

    *n_out = 0;
    if (strcmp(s, "none") == 0)
        return 0;
    copy = mr_strdup(s);
    for (item = strtok_r(copy, ",", &save); item && rc == 0; item = strtok_r(NULL, ",", &save)) {
        char *name = item, *kind = strchr(item, ':'), *ttl = NULL;
        json_t *spec;
        while (*name == ' ')
            name++;
        if (kind == NULL) {
            rc = mr_seterr(err, MR_ECONFIG, "[tables] declare: '%s': expected name:lww|crdt[:ttl_field]", item);
            break;
        }
        *kind++ = '\0';
        if ((ttl = strchr(kind, ':')) != NULL)
            *ttl++ = '\0';
        if (*n_out == max) {
            rc = mr_seterr(err, MR_ECONFIG, "[tables] declare: more than %zu tables", max);
            break;
        }
        spec = json_pack("{s:s}", "kind", kind);
        if (ttl)
            json_object_set_new(spec, "ttl_field", json_string(ttl));
        if (gtab_spec_parse(name, spec, &out[*n_out], err) != 0)
            rc = mr_wraperr(err, MR_ECONFIG, "[tables] declare");
        else
            (*n_out)++;
        json_decref(spec);
    }
    mr_free(copy);
    return rc;
}

int node__tables_parse_peers(const char *s, char (*regions)[64], char (*urls)[256], size_t max,
                             size_t *n_out, char *err)
{
    char *copy, *save = NULL, *item;
    int rc = 0;

    *n_out = 0;
    if (strcmp(s, "none") == 0)
        return 0;
    copy = mr_strdup(s);
    for (item = strtok_r(copy, ",", &save); item && rc == 0; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *host = NULL, *path = NULL, perr[MR_ERRMSG_LEN];
        int port;
        if (eq == NULL || !mr_token_origin_valid(item, (size_t)(eq - item)) || eq - item >= 64 ||
            strlen(eq + 1) >= 256) {
            rc = mr_seterr(err, MR_ECONFIG, "[tables] peers: '%s': expected region=http://host:port", item);
            break;
        }
        *eq = '\0';
        if (http_parse_url(eq + 1, &host, &port, &path, perr) != 0) {
            rc = mr_seterr(err, MR_ECONFIG, "[tables] peers: %s: %s", item, perr);
        } else if (*n_out == max) {
            rc = mr_seterr(err, MR_ECONFIG, "[tables] peers: more than %zu", max);
        } else {
            snprintf(regions[*n_out], 64, "%s", item);
            snprintf(urls[*n_out], 256, "%s", eq + 1);
            (*n_out)++;
        }
        mr_free(host);
        mr_free(path);
    }
    mr_free(copy);
    return rc;
}

/* Everything [tables] holds, checked before the node binds anything (the
 * streams read peers later, once; a bad value must not pass unnoticed). */
static int tables_check_config(const struct node_cfg *cfg, char *err)
{
    struct gtab_spec specs[64];
    char regions[TABLES_MAX_PEERS][64], urls[TABLES_MAX_PEERS][256];
    size_t n = 0;
    int rc = node__tables_parse_declare(cfg->tables_declare, specs, 64, &n, err);

    if (rc == 0)
        rc = node__tables_parse_peers(cfg->tables_peers, regions, urls, TABLES_MAX_PEERS, &n, err);
    return rc;
}

int node_check_config(const struct node_cfg *cfg, char *err)
{
    int rc = tables_check_config(cfg, err);

    if (rc == 0)
        rc = node__dashboard_check_config(cfg, err);
    return rc != 0 ? rc : node__tls_check_config(cfg, 1, err);
}

/* ---- answers ---------------------------------------------------------------- */

static int status_of(int rc)
{
    switch (rc) {
    case MR_ENOTFOUND: return 404;
    case MR_EINVAL: return 400;
    case MR_ECONSTRAINT: case MR_EEXIST: return 409;
    case GTAB_EPRECOND: return 412;
    case MR_ETOOBIG: return 413;
    default: return 500;
    }
}

static const char *code_of(int rc)
{
    switch (rc) {
    case MR_ENOTFOUND: return "not_found";
    case MR_EINVAL: return "invalid_request";
    case MR_ECONSTRAINT: return "conflict";
    case MR_EEXIST: return "exists";
    case GTAB_EPRECOND: return "precondition_failed";
    case MR_ETOOBIG: return "too_large";
    default: return "internal";
    }
}

/* The error answer for <rc>, with extra <headers> (NULL: none). */
static void respond_rc_with(struct node *n, struct http_exchange *ex, enum node_route route, int64_t start,
                            int rc, const char *err, const char *headers)
{
    if (rc == MR_EIO || rc == MR_ECORRUPT)
        node__fail(n, "global tables: %s", err);
    node__respond_error(n, ex, route, start, status_of(rc), code_of(rc), err, headers);
}

static void respond_rc(struct node *n, struct http_exchange *ex, enum node_route route, int64_t start,
                       int rc, const char *err)
{
    respond_rc_with(n, ex, route, start, rc, err, NULL);
}

void tables__reply_add(struct node *n, struct tables_reply *r)
{
    struct tables *t = n->tables;

    r->next = NULL;
    if (t->replies_tail)
        t->replies_tail->next = r;
    else
        t->replies_head = r;
    t->replies_tail = r;
    t->n_replies++;
}

static void token_header(const struct mr_token *tok, char *tokbuf, char *hdr, size_t size,
                         const char *version)
{
    mr_token_format(tok, tokbuf, MR_TOKEN_MAX_LEN);
    if (version)
        snprintf(hdr, size, "Meridian-Token: %s\r\nETag: \"%s\"\r\n", tokbuf, version);
    else
        snprintf(hdr, size, "Meridian-Token: %s\r\n", tokbuf);
}

/* The token a request carries (header, or ?token=).  0 and t->n == 0 and
 * rev 0 when none; MR_EINVAL with a message when malformed. */
static int request_token(const struct http_request *hr, struct mr_token *tok, char *err)
{
    const char *h = http_request_header(hr, "Meridian-Token");
    struct mr_buf q;
    int rc = 0;

    memset(tok, 0, sizeof(*tok));
    mr_buf_init(&q);
    if (h && *h)
        rc = mr_token_parse(h, tok, err);
    else if (http_request_query(hr, "token", &q) && q.len)
        rc = mr_token_parse(q.data, tok, err);
    mr_buf_close(&q);
    if (rc != 0)
        return mr_wraperr(err, MR_EINVAL, "token is not a Meridian consistency token");
    return 0;
}

/* Meridian-Token-Fallback: absent (0) or "local" (1); anything else is a
 * mistake the client must hear of (MR_EINVAL). */
static int request_fallback(const struct http_request *hr, int *fallback, char *err)
{
    const char *h = http_request_header(hr, "Meridian-Token-Fallback");

    *fallback = h != NULL;
    if (h && strcmp(h, "local") != 0)
        return mr_seterr(err, MR_EINVAL, "Meridian-Token-Fallback: expected 'local', found '%.40s'", h);
    return 0;
}

/* Queue the answer of a local write: sent after the commit. */
static void write_done(struct node *n, struct http_exchange *ex, int64_t start, int status,
                       const struct mr_token *req_tok, const struct gtab_wres *w, const char *extra)
{
    struct tables_reply *r = mr_calloc(1, sizeof(*r));
    char tok[MR_TOKEN_MAX_LEN];
    struct mr_token t = *req_tok;

    if (n->pos.rev > t.rev)
        t.rev = n->pos.rev;
    if (mr_token_set(&t, n->cfg->region, w->seq) != 0) {
        t.n = 0; /* the client's token names too many regions: keep ours */
        (void)mr_token_set(&t, n->cfg->region, w->seq);
    }
    r->ex = ex;
    r->route = ROUTE_TABLE_WRITE;
    r->start_us = start;
    r->status = status;
    token_header(&t, tok, r->headers, sizeof(r->headers), w->version[0] ? w->version : NULL);
    mr_buf_init(&r->body);
    mr_buf_puts(&r->body, "{");
    if (w->version[0])
        mr_buf_printf(&r->body, "\"version\":\"%s\",", w->version);
    if (extra)
        mr_buf_puts(&r->body, extra);
    mr_buf_printf(&r->body, "\"token\":\"%s\",\"region\":", tok);
    mr_json_cstr(&r->body, n->cfg->region);
    mr_buf_putc(&r->body, '}');
    n->tables->writes++;
    tables__reply_add(n, r);
}

/* ---- reads ------------------------------------------------------------------ */

static int token_covered(struct node *n, const struct mr_token *tok)
{
    for (size_t i = 0; i < tok->n; i++)
        if (gtab_applied(n->tables->g, tok->pos[i].origin) < tok->pos[i].seq)
            return 0;
    return 1;
}

static void read_token(struct node *n, const struct mr_token *req, struct mr_token *out)
{
    struct tables *t = n->tables;

    *out = *req;
    if (n->pos.rev > out->rev)
        out->rev = n->pos.rev;
    /* The durable head: a token must not name a position a crash could
     * lose and the log then reuse for another write. */
    (void)mr_token_set(out, n->cfg->region, t->committed_head);
}

/* "Meridian-Token-Unmet: A,B\r\n": the origins whose positions in <tok> this
 * region has not applied, into <out> (empty when none). */
static void unmet_header(struct node *n, const struct mr_token *tok, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < tok->n; i++) {
        if (gtab_applied(n->tables->g, tok->pos[i].origin) >= tok->pos[i].seq)
            continue;
        len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%s",
                                len ? "," : "Meridian-Token-Unmet: ", tok->pos[i].origin);
    }
    if (len)
        snprintf(out + len, len < size ? size - len : 0, "\r\n");
}

/* Answer <rd> from this region's state.  With <fallback>, the token may name
 * writes not applied here: the answer names their regions in
 * Meridian-Token-Unmet, and its token still names them. */
static void serve_read(struct node *n, struct http_exchange *ex, int64_t start,
                       const struct tables_read *rd, const struct mr_token *req_tok, int fallback)
{
    struct gtab *g = n->tables->g;
    char err[MR_ERRMSG_LEN], tok[MR_TOKEN_MAX_LEN], hdr[2 * MR_TOKEN_MAX_LEN + 200];
    char unmet[MR_TOKEN_MAX_LEN + 40] = "";
    char version[GTAB_VERSION_LEN], hex[65], last[GTAB_MAX_KEY + 1];
    struct mr_token t;
    struct mr_buf b;
    json_t *doc = NULL;
    uint64_t count;
    int rc, more;
    char *text;

    read_token(n, req_tok, &t);
    if (fallback) {
        n->tables->reads_fallback++;
        unmet_header(n, req_tok, unmet, sizeof(unmet));
    }
    mr_buf_init(&b);
    switch (rd->kind) {
    case TREAD_ITEM:
        rc = gtab_get(g, rd->tbl, rd->key, mr_now_ms(), &doc, version, err);
        if (rc != 0)
            break;
        token_header(&t, tok, hdr, sizeof(hdr), version);
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        mr_buf_puts(&b, "{\"table\":");
        mr_json_cstr(&b, rd->tbl);
        mr_buf_puts(&b, ",\"key\":");
        mr_json_cstr(&b, rd->key);
        mr_buf_printf(&b, ",\"version\":\"%s\",\"item\":%s", version, text);
        free(text);
        json_decref(doc);
        break;
    case TREAD_LIST:
        mr_buf_puts(&b, "{\"items\":");
        rc = gtab_list(g, rd->tbl, rd->prefix, rd->after, rd->limit, mr_now_ms(), &b, last, &more, err);
        if (rc != 0)
            break;
        token_header(&t, tok, hdr, sizeof(hdr), NULL);
        mr_buf_puts(&b, ",\"next\":");
        if (more)
            mr_json_cstr(&b, last);
        else
            mr_buf_puts(&b, "null");
        break;
    case TREAD_DIGEST:
        rc = gtab_digest(g, rd->tbl, mr_now_ms(), hex, &count, err);
        if (rc != 0)
            break;
        token_header(&t, tok, hdr, sizeof(hdr), NULL);
        mr_buf_puts(&b, "{\"table\":");
        mr_json_cstr(&b, rd->tbl);
        mr_buf_printf(&b, ",\"digest\":\"%s\",\"items\":%" PRIu64, hex, count);
        break;
    default:
        rc = MR_EINVAL;
        snprintf(err, sizeof(err), "bad read");
    }
    if (rc != 0) {
        /* A miss may be one of the writes not applied here: say so. */
        respond_rc_with(n, ex, ROUTE_TABLE_READ, start, rc, err, unmet[0] ? unmet : NULL);
    } else {
        mr_buf_printf(&b, ",\"token\":\"%s\",\"region\":", tok);
        mr_json_cstr(&b, n->cfg->region);
        mr_buf_putc(&b, '}');
        n->tables->reads++;
        snprintf(hdr + strlen(hdr), sizeof(hdr) - strlen(hdr), "%s", unmet);
        node__respond_json(n, ex, ROUTE_TABLE_READ, start, 200, &b, hdr);
    }
    mr_buf_close(&b);
}

/* Whether every origin whose position in <tok> is not applied here is a
 * region this region's stream cannot reach now. */
static int unmet_unreachable(struct node *n, const struct mr_token *tok)
{
    for (size_t i = 0; i < tok->n; i++)
        if (gtab_applied(n->tables->g, tok->pos[i].origin) < tok->pos[i].seq &&
            !tables__peer_unreachable(n, tok->pos[i].origin))
            return 0;
    return 1;
}

/* Serve now if the token is covered, else wait (tables_wake, tables_expire).
 * With <fallback> (Meridian-Token-Fallback: local), a read whose missing
 * writes come from regions this one cannot reach is served at once, and
 * one still waiting at the deadline is served rather than refused. */
static void read_or_wait(struct node *n, struct http_exchange *ex, int64_t start,
                         const struct tables_read *rd, const struct mr_token *tok, int fallback)
{
    struct tables *t = n->tables;
    struct tables_wait *w;

    if (token_covered(n, tok)) {
        serve_read(n, ex, start, rd, tok, 0);
        return;
    }
    if (mr_token_get(tok, n->cfg->region) > gtab_head(t->g)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the token names position %" PRIu64 " of region %s, whose log ends "
                 "at %" PRIu64, mr_token_get(tok, n->cfg->region), n->cfg->region, gtab_head(t->g));
        node__respond_error(n, ex, ROUTE_TABLE_READ, start, 400, "invalid_token", msg, NULL);
        return;
    }
    if (fallback && unmet_unreachable(n, tok)) {
        serve_read(n, ex, start, rd, tok, 1);
        return;
    }
    w = mr_calloc(1, sizeof(*w));
    w->ex = ex;
    w->rd = *rd;
    w->tok = *tok;
    w->fallback = fallback;
    w->start_us = start;
    w->deadline_us = mr_mono_us() + n->cfg->session_wait_ms * 1000;
    w->next = t->waits;
    t->waits = w;
    t->n_waits++;
    t->read_waits++;
}

/* Serve the waiting reads whose tokens are now covered, and those that may
 * fall back once their writes' regions are out of reach or their deadline
 * passed; with <expire>, answer 503 to the others past their deadline (or
 * all, when stopping). */
static void tables_wake(struct node *n, int expire)
{
    struct tables *t = n->tables;
    struct tables_wait **pp = &t->waits, *w;
    int64_t now = mr_mono_us();

    while ((w = *pp) != NULL) {
        if (!n->stopping && token_covered(n, &w->tok)) {
            *pp = w->next;
            t->n_waits--;
            serve_read(n, w->ex, w->start_us, &w->rd, &w->tok, 0);
            mr_free(w);
        } else if (!n->stopping && w->fallback &&
                   ((expire && now >= w->deadline_us) || unmet_unreachable(n, &w->tok))) {
            *pp = w->next;
            t->n_waits--;
            serve_read(n, w->ex, w->start_us, &w->rd, &w->tok, 1);
            mr_free(w);
        } else if (n->stopping || (expire && now >= w->deadline_us)) {
            char msg[200];
            *pp = w->next;
            t->n_waits--;
            t->read_wait_timeouts++;
            snprintf(msg, sizeof(msg), "this region has not yet applied the writes the token names "
                     "(waited %lld ms): retry, or read in the region that wrote",
                     (long long)((now - w->start_us) / 1000));
            node__respond_error(n, w->ex, ROUTE_TABLE_READ, w->start_us, 503, "token_not_applied",
                                msg, "Retry-After: 1\r\n");
            mr_free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* ---- the group commit --------------------------------------------------------- */

/* Send (or, <failed>, refuse) a list of answers whose bodies are built. */
static void send_replies(struct node *n, struct tables_reply *r, int failed, const char *why)
{
    struct tables *t = n->tables;

    while (r != NULL) {
        struct tables_reply *next = r->next;
        if (failed) {
            node__respond_error(n, r->ex, r->route, r->start_us, 503, "commit_failed", why,
                                "Retry-After: 1\r\n");
        } else {
            if (r->route == ROUTE_TABLE_WRITE)
                mr_hist_observe(&t->write_seconds, (double)(mr_mono_us() - r->start_us) / 1e6);
            node__respond_json(n, r->ex, r->route, r->start_us, r->status, &r->body,
                               r->headers[0] ? r->headers : NULL);
        }
        mr_buf_close(&r->body);
        mr_free(r);
        r = next;
    }
}

/* Detach this turn's answers, building the bodies that show the vector. */
static struct tables_reply *take_replies(struct node *n)
{
    struct tables *t = n->tables;
    struct tables_reply *head = t->replies_head, *r;

    for (r = head; r; r = r->next) {
        if (!r->vector_body)
            continue;
        mr_buf_puts(&r->body, "{\"region\":");
        mr_json_cstr(&r->body, n->cfg->region);
        mr_buf_printf(&r->body, ",\"head\":%" PRIu64 ",\"vector\":", gtab_head(t->g));
        gtab_vector_json(t->g, &r->body);
        mr_buf_putc(&r->body, '}');
    }
    t->replies_head = t->replies_tail = NULL;
    t->n_replies = 0;
    return head;
}

/* Append a list of answers to those the next sync releases. */
static void unsynced_add(struct tables *t, struct tables_reply *head)
{
    struct tables_reply *tail = head;

    if (head == NULL)
        return;
    while (tail->next)
        tail = tail->next;
    if (t->unsynced_tail)
        t->unsynced_tail->next = head;
    else
        t->unsynced_head = head;
    t->unsynced_tail = tail;
}

/* Take every answer waiting for durability: the sync's in flight (*a)
 * and those after it (*b). */
static void take_unsynced(struct tables *t, struct tables_reply **a, struct tables_reply **b)
{
    *a = t->syncing;
    *b = t->unsynced_head;
    t->syncing = t->unsynced_head = t->unsynced_tail = NULL;
    t->unsynced = 0;
}

/* Refuse every answer still waiting for durability (a commit or sync
 * failed, or the node stops after one did). */
static void refuse_unsynced(struct node *n, const char *why)
{
    struct tables_reply *a, *b;

    take_unsynced(n->tables, &a, &b);
    send_replies(n, a, 1, why);
    send_replies(n, b, 1, why);
}

/* Every answer still owed, the ones of this turn and the ones waiting for a
 * sync: refused with <why>. */
static void refuse_all(struct node *n, const char *why)
{
    send_replies(n, take_replies(n), 1, why);
    refuse_unsynced(n, why);
}

/* ---- checkpoints (decision 050) ---- */

static void ckpt_start(struct node *n);

/* On a pool thread: gtab_checkpoint uses the store's other connection. */
static void ckpt_work(uv_work_t *req)
{
    struct node *n = req->data;
    struct tables *t = n->tables;
    int64_t t0 = mr_mono_us();

    t->ckpt_rc = gtab_checkpoint(t->g, t->ckpt_err);
    t->ckpt_us = mr_mono_us() - t0;
}

static void ckpt_after(uv_work_t *req, int status)
{
    struct node *n = req->data;
    struct tables *t = n->tables;

    t->ckpt_busy = 0;
    if (status == 0 && t->ckpt_rc == 0) {
        int left = gtab_checkpoint_done(t->g);
        t->checkpoints++;
        mr_hist_observe(&t->checkpoint_seconds, (double)t->ckpt_us / 1e6);
        t->ckpt_rest = left > 0;
        if (gtab_checkpoint_again(t->g, left))
            ckpt_start(n);   /* again beside the commits: a shorter rest */
    } else if (status == 0 && t->ckpt_rc == MR_EUNAVAIL) {
        mr_log(MR_LOG_DEBUG, "tables", "%s; tried again after the next sync", t->ckpt_err);
    } else if (t->running) {
        node__fail(n, "global tables: %s", status != 0 ? uv_strerror(status) : t->ckpt_err);
    }
}

/* Right after a commit, before any transaction begins: copy what was
 * committed during the last checkpoint, so that the next write starts the
 * WAL afresh (gtab_checkpoint_done).  On the loop, but short: the pages of
 * a few commits and two fsyncs. */
static void ckpt_finish(struct node *n)
{
    struct tables *t = n->tables;
    int rc;

    if (!t->ckpt_rest || t->ckpt_busy)
        return;
    rc = gtab_checkpoint(t->g, t->ckpt_err);
    if (rc == MR_EIO) {
        node__fail(n, "global tables: %s", t->ckpt_err);
        return;
    }
    if (rc == 0)
        t->ckpt_rest = gtab_checkpoint_done(t->g) > 0;
}

static void ckpt_start(struct node *n)
{
    struct tables *t = n->tables;

    if (t->ckpt_busy || !t->running || n->failed)
        return;
    t->ckpt_req.data = n;
    if (uv_queue_work(n->loop, &t->ckpt_req, ckpt_work, ckpt_after) == 0)
        t->ckpt_busy = 1;
}

static void ckpt_maybe_start(struct node *n)
{
    if (gtab_checkpoint_due(n->tables->g))
        ckpt_start(n);
}

/* The durable point moved to <upto>: send the answers it covers, let the
 * streams send what is now durable, and copy the WAL into the database
 * when it has grown enough. */
static void synced(struct node *n, struct tables_reply *r, uint64_t upto, int64_t start_us)
{
    struct tables *t = n->tables;

    if (upto > t->committed_head)
        t->committed_head = upto;
    mr_hist_observe(&t->commit_seconds, (double)(mr_mono_us() - start_us) / 1e6);
    send_replies(n, r, 0, NULL);
    tables__stream_kick(n);
    ckpt_maybe_start(n);
}

static void sync_start(struct node *n);
static void flush_turn(struct node *n, int force);

/* On a pool thread: gtab_sync is the one store call safe there. */
static void sync_work(uv_work_t *req)
{
    struct node *n = req->data;
    struct tables *t = n->tables;

    t->sync_rc = gtab_sync(t->g, t->sync_err);
}

static void sync_after(uv_work_t *req, int status)
{
    struct node *n = req->data;
    struct tables *t = n->tables;
    struct tables_reply *r = t->syncing;

    t->sync_busy = 0;
    t->syncing = NULL;
    if (!t->running)
        return; /* node__tables_close synced and answered everything itself */
    if (status != 0 || t->sync_rc != 0) {
        node__fail(n, "global tables: sync: %s", status != 0 ? uv_strerror(status) : t->sync_err);
        send_replies(n, r, 1, "the write could not be made durable; its outcome is unknown");
        refuse_unsynced(n, "the write could not be made durable; its outcome is unknown");
        return;
    }
    synced(n, r, t->syncing_upto, t->sync_start_us);
    if (n->failed)
        return;
    flush_turn(n, 0); /* what the turns during the sync wrote */
    if (t->unsynced && !t->sync_busy)
        sync_start(n);
}

/* Start a sync for everything committed so far; the answers waiting for it
 * go out when it returns.  One sync at a time: commits made meanwhile wait
 * for the next one, which then covers all of them (group commit again). */
static void sync_start(struct node *n)
{
    struct tables *t = n->tables;
    int rc;

    t->syncing = t->unsynced_head;
    t->syncing_upto = t->unsynced_upto;
    t->unsynced_head = t->unsynced_tail = NULL;
    t->unsynced = 0;
    t->sync_start_us = mr_mono_us();
    t->sync_req.data = n;
    t->sync_busy = 1;
    rc = uv_queue_work(n->loop, &t->sync_req, sync_work, sync_after);
    if (rc != 0) {
        /* No pool: sync here, on the loop, as synchronous=FULL would. */
        struct tables_reply *r = t->syncing;
        t->sync_busy = 0;
        t->sync_rc = gtab_sync(t->g, t->sync_err);
        if (t->sync_rc != 0) {
            node__fail(n, "global tables: sync: %s", t->sync_err);
            refuse_unsynced(n, "the write could not be made durable; its outcome is unknown");
            return;
        }
        t->syncing = NULL;
        synced(n, r, t->syncing_upto, t->sync_start_us);
    }
}

/* Commit what the turns since the last commit wrote, then answer once it
 * is durable.  The commit only writes the WAL (synchronous=NORMAL);
 * gtab_sync, on the libuv pool, fsyncs it while the loop goes on serving
 * (decision 022).  While a sync runs, the transaction stays open across
 * turns (unless <force>) and commits when the sync returns: the answers
 * would wait for the next sync anyway, and one commit per sync instead of
 * one per turn writes the pages every commit dirties (the log's last page,
 * the B-tree interior pages, the vector) once.  Answers of a turn that
 * committed nothing (an identical table declaration) still wait for any
 * sync in flight or due: their tokens may name positions committed by an
 * earlier turn that are not durable yet. */
static void flush_turn(struct node *n, int force)
{
    struct tables *t = n->tables;
    char err[MR_ERRMSG_LEN];
    int committed = gtab_in_txn(t->g);

    /* Reads waiting for a peer's positions may go as soon as they are
     * applied (reads see what the open transaction holds): those entries
     * are durable in their own region already (only durable entries are
     * streamed), so a crash here loses nothing a reader saw for good. */
    if (committed && t->waits)
        tables_wake(n, 0);
    if (t->sync_busy && !force)
        return;
    if (committed && gtab_commit(t->g, err) != 0)
        node__fail(n, "global tables: commit: %s", err);
    if (committed && !n->failed) {
        t->commits++;
        ckpt_finish(n);   /* may fail the node too */
    }
    if (n->failed) {
        refuse_all(n, "the write could not be made durable; its outcome is unknown");
        return;
    }
    if (!committed && t->replies_head == NULL)
        return;
    if (!committed && !t->unsynced && !t->sync_busy) {
        send_replies(n, take_replies(n), 0, NULL); /* all committed is durable */
        return;
    }
    unsynced_add(t, take_replies(n));
    t->unsynced = 1;
    t->unsynced_upto = gtab_head(t->g);
    if (!t->sync_busy)
        sync_start(n);
}

void tables__flush(struct node *n)
{
    flush_turn(n, 0);
}

/* Commit and make durable at once, on the loop (stopping, snapshots): every
 * answer waiting for durability is sent.  A sync still running on the pool
 * is harmless: it syncs the same file again, and its callback finds nothing
 * left to answer (t->syncing is taken here). */
int tables__flush_durable(struct node *n, char *err)
{
    struct tables *t = n->tables;
    struct tables_reply *a, *b;
    int64_t t0 = mr_mono_us();

    flush_turn(n, 1);
    if (n->failed)
        return mr_seterr(err, MR_EIO, "%s", n->fail_reason);
    if (gtab_sync(t->g, err) != 0) {
        node__fail(n, "global tables: sync: %s", err);
        refuse_unsynced(n, "the write could not be made durable; its outcome is unknown");
        return MR_EIO;
    }
    take_unsynced(t, &a, &b);
    synced(n, a, gtab_head(t->g), t0);   /* moves committed_head before any answer */
    send_replies(n, b, 0, NULL);
    return 0;
}

static void on_check(uv_check_t *h)
{
    struct node *n = h->data;

    if (n->tables && !n->failed)
        tables__flush(n);
}

static void on_timer(uv_timer_t *h)
{
    struct node *n = h->data;
    struct tables *t = n->tables;
    int64_t now = mr_now_ms();

    tables_wake(n, 1);
    if (n->failed || n->stopping)
        return;
    if (now - t->last_sweep_ms >= n->cfg->tables_sweep_interval_ms) {
        char err[MR_ERRMSG_LEN];
        uint64_t removed = 0;
        t->last_sweep_ms = now;
        /* Expiring a crdt item is a local write: not while this region's
         * own log is being recovered. */
        if (gtab_sweep(t->g, now, !t->recovering, &removed, err) != 0)
            node__fail(n, "global tables: sweep: %s", err);
        t->swept += removed;
    }
    tables__stream_tick(n);
    /* Sweeps and trims of the tick commit with the next turn's check. */
}

/* ---- lifecycle ------------------------------------------------------------------- */

int node__tables_start(struct node *n, char *err)
{
    struct gtab_spec specs[64];
    size_t n_specs = 0;
    int64_t skew = n->cfg->tables_clock_skew_ms;
    const char *env = getenv("MERIDIAN_CLOCK_SKEW_MS"), *env_region = getenv("MERIDIAN_CLOCK_SKEW_REGION");
    char *path;
    int rc, created;

    rc = node__tables_parse_declare(n->cfg->tables_declare, specs, 64, &n_specs, err);
    if (rc != 0)
        return rc;
    if (env && *env && (env_region == NULL || strcmp(env_region, n->cfg->region) == 0) &&
        mr_parse_i64(env, -3600000, 3600000, &skew) != 0)
        return mr_seterr(err, MR_ECONFIG, "MERIDIAN_CLOCK_SKEW_MS: expected milliseconds between "
                         "-3600000 and 3600000, found '%s'", env);
    n->tables = mr_calloc(1, sizeof(*n->tables));
    n->tables->seed_fd = -1;
    mr_hist_init(&n->tables->commit_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&n->tables->checkpoint_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    mr_hist_init(&n->tables->write_seconds, mr_hist_latency_bounds, mr_hist_latency_n);
    path = mr_asprintf("%s/tables.db", n->cfg->data_dir);
    rc = gtab_open(path, n->cfg->region, skew, &n->tables->g, err);
    mr_free(path);
    if (rc != 0)
        goto err_after_alloc;
    if (skew)
        mr_log(MR_LOG_WARN, "tables", "table clock skewed by %lld ms (testing setting)", (long long)skew);
    /* Empty: a new region, or one whose disk was lost.  The peers may hold
     * entries of this region's log that this store never had (tstream.c,
     * recovery_step); until they have said so, no local write. */
    if (gtab_is_empty(n->tables->g)) {
        n->tables->recovering = 1;
        snprintf(n->tables->recover_why, sizeof(n->tables->recover_why), "the global-table store was "
                 "empty at start: waiting for the peers to say how much of this region's log they hold");
    }
    for (size_t i = 0; i < n_specs && rc == 0; i++)
        rc = gtab_table_put(n->tables->g, &specs[i], &created, err);
    if (rc == 0)
        rc = gtab_commit(n->tables->g, err);
    if (rc == 0)
        rc = gtab_sync(n->tables->g, err);
    n->tables->committed_head = gtab_head(n->tables->g);
    if (rc != 0) {
        mr_wraperr(err, rc, "[tables] declare");
        goto err_after_open;
    }
    return 0;

err_after_open:
    gtab_close(n->tables->g);
err_after_alloc:
    mr_free(n->tables);
    n->tables = NULL;
    return rc;
}

void node__tables_run(struct node *n)
{
    struct tables *t = n->tables;

    uv_check_init(n->loop, &t->check);
    t->check.data = n;
    uv_check_start(&t->check, on_check);
    uv_timer_init(n->loop, &t->timer);
    t->timer.data = n;
    uv_timer_start(&t->timer, on_timer, TABLES_TICK_MS, TABLES_TICK_MS);
    t->running = 1;
    mr_log(MR_LOG_INFO, "tables", "global tables: %zu tables, log head %" PRIu64, gtab_n_tables(t->g),
           gtab_head(t->g));
}

void node__tables_close(struct node *n)
{
    struct tables *t = n->tables;

    if (t == NULL || !t->running)
        return;
    /* Writes already made are committed, made durable and answered. */
    if (!n->failed) {
        char err[MR_ERRMSG_LEN];
        (void)tables__flush_durable(n, err);
    }
    if (n->failed)
        refuse_all(n, "the node failed");
    t->running = 0;
    tables_wake(n, 1);
    tables__stream_close(n);
    uv_check_stop(&t->check);
    uv_close((uv_handle_t *)&t->check, NULL);
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, NULL);
}

void node__tables_free(struct node *n)
{
    if (n->tables == NULL)
        return;
    tables__peers_free(n);
    gtab_close(n->tables->g);
    mr_free(n->tables);
    n->tables = NULL;
}

/* ---- the API ------------------------------------------------------------------------ */

/* Split "/v1/tables/<a>/<b>/<c>/<d>" into at most 4 segments. */
static size_t split_path(const char *path, char seg[4][GTAB_MAX_KEY + 2], int *too_long)
{
    const char *p = path + 10;
    size_t n = 0;

    *too_long = 0;
    while (*p == '/' && n < 4) {
        const char *end = strchr(p + 1, '/');
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        if (len == 0 && end == NULL)
            break;
        if (len > GTAB_MAX_KEY) {
            *too_long = 1;
            len = GTAB_MAX_KEY + 1;
        }
        memcpy(seg[n], p + 1, len);
        seg[n][len] = '\0';
        n++;
        p = end ? end : p + 1 + strlen(p + 1);
    }
    if (*p)
        return 5; /* more segments than any route */
    return n;
}

static void method_not_allowed(struct node *n, struct http_exchange *ex, int64_t start, const char *allow)
{
    char msg[96], hdr[96];

    snprintf(msg, sizeof(msg), "this path answers %s", allow);
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    node__respond_error(n, ex, ROUTE_OTHER, start, 405, "method_not_allowed", msg, hdr);
}

static void list_tables(struct node *n, struct http_exchange *ex, int64_t start)
{
    struct gtab *g = n->tables->g;
    struct mr_buf b;

    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"tables\":[");
    for (size_t i = 0; i < gtab_n_tables(g); i++) {
        const struct gtab_spec *s = gtab_table_at(g, i);
        mr_buf_printf(&b, "%s{\"name\":", i ? "," : "");
        mr_json_cstr(&b, s->name);
        mr_buf_printf(&b, ",\"kind\":\"%s\",\"ttl_field\":", gtab_kind_name(s->kind));
        if (s->ttl_field[0])
            mr_json_cstr(&b, s->ttl_field);
        else
            mr_buf_puts(&b, "null");
        mr_buf_putc(&b, '}');
    }
    mr_buf_puts(&b, "],\"region\":");
    mr_json_cstr(&b, n->cfg->region);
    mr_buf_putc(&b, '}');
    node__respond_json(n, ex, ROUTE_TABLE_READ, start, 200, &b, NULL);
    mr_buf_close(&b);
}

static json_t *parse_body(const struct http_request *hr, char *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(hr->body ? hr->body : "", hr->body_len, JSON_REJECT_DUPLICATES, &jerr);

    if (doc == NULL)
        mr_seterr(err, MR_EINVAL, "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                  jerr.line, jerr.column);
    return doc;
}

/* 503 while this region recovers its own log (tables_int.h, recovering):
 * a write now could take a position the peers have applied already. */
static int refuse_while_recovering(struct node *n, struct http_exchange *ex, const struct http_request *hr)
{
    const char *why = tables__recovering(n);
    char msg[256];

    if (why == NULL)
        return 0;
    snprintf(msg, sizeof(msg), "this region takes no global-table write yet: %s", why);
    node__respond_error(n, ex, ROUTE_TABLE_WRITE, hr->received_us, 503, "recovering", msg, "Retry-After: 1\r\n");
    return 1;
}

int tables__spec_body(const struct http_request *hr, const char *name, struct gtab_spec *spec, char *err)
{
    json_t *body = parse_body(hr, err);
    int rc = body ? gtab_spec_parse(name, body, spec, err) : MR_EINVAL;

    json_decref(body);
    return rc;
}

static void put_table(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                      const char *name, const struct mr_token *tok)
{
    char err[MR_ERRMSG_LEN];
    struct gtab_spec spec;
    struct gtab_wres w;
    int rc, created = 0;

    if (refuse_while_recovering(n, ex, hr))
        return;
    rc = tables__spec_body(hr, name, &spec, err);
    if (rc == 0)
        rc = gtab_table_put(n->tables->g, &spec, &created, err);
    if (rc != 0) {
        respond_rc(n, ex, ROUTE_TABLE_WRITE, hr->received_us, rc, err);
        return;
    }
    memset(&w, 0, sizeof(w));
    w.seq = gtab_head(n->tables->g);
    write_done(n, ex, hr->received_us, created ? 201 : 200, tok, &w,
               created ? "\"created\":true," : "\"created\":false,");
}

int tables__item_write(struct gtab *g, const struct http_request *hr, const char *tbl,
                       const char *key, int ops, struct gtab_wres *w, char *err)
{
    char im[GTAB_VERSION_LEN + 8];
    const char *match = gtab_if_match(http_request_header(hr, "If-Match"), im, sizeof(im));
    json_t *body = NULL;
    int rc = 0;

    memset(w, 0, sizeof(*w));
    if (strcmp(hr->method, "DELETE") == 0)
        return gtab_delete(g, tbl, key, match, w, err);
    if (gtab_table_get(g, tbl) == NULL)
        rc = mr_seterr(err, MR_ENOTFOUND, "no table named '%.64s'", tbl);
    else if (hr->body_len > 2 * GTAB_MAX_DOC)
        rc = mr_seterr(err, MR_ETOOBIG, "body of %zu bytes: a document is at most %d", hr->body_len,
                       GTAB_MAX_DOC);
    else if ((body = parse_body(hr, err)) == NULL)
        rc = MR_EINVAL;
    if (rc == 0 && ops) {
        const json_t *list;
        rc = gtab_ops_body(body, &list, err);
        if (rc == 0)
            rc = gtab_ops(g, tbl, key, list, match, w, err);
    } else if (rc == 0) {
        rc = gtab_put(g, tbl, key, body, match, w, err);
    }
    json_decref(body);
    return rc;
}

static void item_write(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                       const char *tbl, const char *key, int ops, const struct mr_token *tok)
{
    char err[MR_ERRMSG_LEN];
    struct gtab_wres w;
    int rc;

    if (refuse_while_recovering(n, ex, hr))
        return;
    rc = tables__item_write(n->tables->g, hr, tbl, key, ops, &w, err);
    if (rc != 0) {
        respond_rc(n, ex, ROUTE_TABLE_WRITE, hr->received_us, rc, err);
        return;
    }
    write_done(n, ex, hr->received_us, 200, tok, &w, NULL);
}

int tables__list_args(const struct http_request *hr, struct tables_read *rd, char *err)
{
    struct mr_buf q;
    int64_t limit = 100;
    int rc = 0;

    mr_buf_init(&q);
    if (http_request_query(hr, "limit", &q) &&
        mr_parse_i64(q.data ? q.data : "", 1, 1000, &limit) != 0)
        rc = mr_seterr(err, MR_EINVAL, "limit: expected 1 to 1000");
    mr_buf_reset(&q);
    if (rc == 0 && http_request_query(hr, "prefix", &q) && q.len) {
        if (q.len > GTAB_MAX_KEY)
            rc = mr_seterr(err, MR_EINVAL, "prefix: at most %d bytes", GTAB_MAX_KEY);
        else
            snprintf(rd->prefix, sizeof(rd->prefix), "%s", q.data);
    }
    mr_buf_reset(&q);
    if (rc == 0 && http_request_query(hr, "after", &q) && q.len) {
        if (q.len > GTAB_MAX_KEY)
            rc = mr_seterr(err, MR_EINVAL, "after: at most %d bytes", GTAB_MAX_KEY);
        else
            snprintf(rd->after, sizeof(rd->after), "%s", q.data);
    }
    mr_buf_close(&q);
    rd->limit = (size_t)limit;
    return rc;
}

static void list_items(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                       const char *tbl, const struct mr_token *tok, int fallback)
{
    struct tables_read rd;
    char err[MR_ERRMSG_LEN];

    memset(&rd, 0, sizeof(rd));
    rd.kind = TREAD_LIST;
    snprintf(rd.tbl, sizeof(rd.tbl), "%.64s", tbl);
    if (tables__list_args(hr, &rd, err) != 0) {
        node__respond_error(n, ex, ROUTE_TABLE_READ, hr->received_us, 400, "invalid_request", err, NULL);
        return;
    }
    read_or_wait(n, ex, hr->received_us, &rd, tok, fallback);
}

void node__tables_handle(struct node *n, struct http_exchange *ex, const struct http_request *hr)
{
    char seg[4][GTAB_MAX_KEY + 2] = {""}, err[MR_ERRMSG_LEN];
    int64_t start = hr->received_us;
    int too_long, get = !strcmp(hr->method, "GET") || !strcmp(hr->method, "HEAD");
    size_t ns = split_path(hr->path, seg, &too_long);
    struct tables_read rd;
    struct mr_token tok;
    int fallback;

    if (ns >= 1 && strcmp(seg[0], "_replicate") == 0 && ns == 1) {
        if (strcmp(hr->method, "POST") != 0)
            return method_not_allowed(n, ex, start, "POST");
        tables__replicate_serve(n, ex, hr);
        return;
    }
    if (ns == 1 && strcmp(seg[0], "_snapshot") == 0) {
        if (!get)
            return method_not_allowed(n, ex, start, "GET");
        tables__snapshot_serve(n, ex, hr);
        return;
    }
    if (ns >= 1 && strcmp(seg[0], "_peers") == 0) {
        tables__peer_admin(n, ex, hr, hr->path + strlen("/v1/tables/_peers"));
        return;
    }
    if (ns == 5) {
        node__respond_error(n, ex, ROUTE_OTHER, start, 404, "not_found",
                            "no such path under /v1/tables (see docs/api.md)", NULL);
        return;
    }
    if (request_token(hr, &tok, err) != 0 || request_fallback(hr, &fallback, err) != 0) {
        node__respond_error(n, ex, ROUTE_OTHER, start, 400, "invalid_request", err, NULL);
        return;
    }
    if (ns == 0) {
        if (!get)
            return method_not_allowed(n, ex, start, "GET");
        list_tables(n, ex, start);
        return;
    }
    if (gtab_name_valid(seg[0], strlen(seg[0]), err) != 0) {
        mr_wraperr(err, MR_EINVAL, "table");
        node__respond_error(n, ex, ROUTE_OTHER, start, 400, "invalid_request", err, NULL);
        return;
    }
    memset(&rd, 0, sizeof(rd));
    snprintf(rd.tbl, sizeof(rd.tbl), "%.64s", seg[0]);
    if (ns == 1) {
        if (strcmp(hr->method, "PUT") == 0) {
            put_table(n, ex, hr, seg[0], &tok);
        } else if (get) {
            const struct gtab_spec *s = gtab_table_get(n->tables->g, seg[0]);
            struct mr_buf b;
            json_t *j;
            char *text;
            if (s == NULL) {
                snprintf(err, sizeof(err), "no table named '%.64s'", seg[0]);
                node__respond_error(n, ex, ROUTE_TABLE_READ, start, 404, "not_found", err, NULL);
                return;
            }
            j = gtab_spec_json(s);
            json_object_set_new(j, "name", json_string(s->name));
            json_object_set_new(j, "tombstones", json_integer((json_int_t)gtab_tombstones(n->tables->g, s->name)));
            text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
            mr_buf_init(&b);
            mr_buf_puts(&b, text);
            node__respond_json(n, ex, ROUTE_TABLE_READ, start, 200, &b, NULL);
            mr_buf_close(&b);
            free(text);
            json_decref(j);
        } else {
            method_not_allowed(n, ex, start, "GET, PUT");
        }
        return;
    }
    if (ns == 2 && strcmp(seg[1], "digest") == 0) {
        if (!get)
            return method_not_allowed(n, ex, start, "GET");
        rd.kind = TREAD_DIGEST;
        read_or_wait(n, ex, start, &rd, &tok, fallback);
        return;
    }
    if (ns == 2 && strcmp(seg[1], "items") == 0) {
        if (!get)
            return method_not_allowed(n, ex, start, "GET");
        list_items(n, ex, hr, seg[0], &tok, fallback);
        return;
    }
    if ((ns == 3 || (ns == 4 && strcmp(seg[3], "ops") == 0)) && strcmp(seg[1], "items") == 0) {
        if (too_long || gtab_key_valid(seg[2], strlen(seg[2]), err) != 0) {
            if (too_long)
                snprintf(err, sizeof(err), "key longer than %d bytes", GTAB_MAX_KEY);
            node__respond_error(n, ex, ROUTE_OTHER, start, 400, "invalid_key", err, NULL);
            return;
        }
        if (ns == 4) {
            if (strcmp(hr->method, "POST") != 0)
                return method_not_allowed(n, ex, start, "POST");
            item_write(n, ex, hr, seg[0], seg[2], 1, &tok);
        } else if (get) {
            rd.kind = TREAD_ITEM;
            snprintf(rd.key, sizeof(rd.key), "%.256s", seg[2]);
            read_or_wait(n, ex, start, &rd, &tok, fallback);
        } else if (!strcmp(hr->method, "PUT") || !strcmp(hr->method, "DELETE")) {
            item_write(n, ex, hr, seg[0], seg[2], 0, &tok);
        } else {
            method_not_allowed(n, ex, start, "GET, PUT, DELETE");
        }
        return;
    }
    node__respond_error(n, ex, ROUTE_OTHER, start, 404, "not_found",
                        "no such path under /v1/tables (see docs/api.md)", NULL);
}

/* ---- metrics and status --------------------------------------------------------------- */

/* One counter of struct gtab_table_stats (at <field>), a line per table. */
static void table_counter(struct mr_buf *b, struct gtab *g, const char *name, const char *help, size_t field)
{
    char labels[GTAB_MAX_NAME + 16];

    mr_metric_header(b, name, "counter", help);
    for (size_t i = 0; i < gtab_n_tables(g); i++) {
        snprintf(labels, sizeof(labels), "table=\"%s\"", gtab_table_at(g, i)->name);
        mr_metric_u64(b, name, labels, *(const uint64_t *)((const char *)gtab_table_stats(g, i) + field));
    }
}

void node__tables_metrics(struct node *n, struct mr_buf *b)
{
    struct tables *t = n->tables;
    struct gtab *g = t->g;
    char labels[128];

    mr_metric_header(b, "meridian_tables_log_head", "gauge", "global tables: this region's change-log position");
    mr_metric_u64(b, "meridian_tables_log_head", NULL, gtab_head(g));
    mr_metric_header(b, "meridian_tables_commit_seconds", "histogram", "global tables: group commit sync (fdatasync of the WAL, on the pool) time");
    mr_metric_hist(b, "meridian_tables_commit_seconds", NULL, &t->commit_seconds);
    mr_metric_header(b, "meridian_tables_checkpoint_seconds", "histogram", "global tables: WAL checkpoint time (on the pool, off the loop)");
    mr_metric_hist(b, "meridian_tables_checkpoint_seconds", NULL, &t->checkpoint_seconds);
    mr_metric_header(b, "meridian_tables_write_seconds", "histogram", "global tables: local write request to durable answer");
    mr_metric_hist(b, "meridian_tables_write_seconds", NULL, &t->write_seconds);
#define TCOUNTER(name, field, help)                             \
    mr_metric_header(b, "meridian_tables_" name, "counter", help); \
    mr_metric_u64(b, "meridian_tables_" name, NULL, t->field)
    TCOUNTER("writes_total", writes, "global tables: local writes acknowledged");
    TCOUNTER("reads_total", reads, "global tables: reads served");
    TCOUNTER("read_waits_total", read_waits, "global tables: reads that waited for their token");
    TCOUNTER("read_wait_timeouts_total", read_wait_timeouts, "global tables: reads answered 503 for their token");
    TCOUNTER("reads_fallback_total", reads_fallback,
             "global tables: reads served without writes their token names (Meridian-Token-Fallback)");
    TCOUNTER("batches_received_total", batches_received, "global tables: replication batches received");
    TCOUNTER("entries_applied_total", entries_applied, "global tables: peer entries applied here");
    TCOUNTER("commits_total", commits, "global tables: group commits");
    TCOUNTER("checkpoints_total", checkpoints, "global tables: WAL checkpoints");
    TCOUNTER("expired_removed_total", swept, "global tables: expired items removed here");
    TCOUNTER("tombstones_collected_total", collected, "global tables: tombstones collected here");
    TCOUNTER("seeds_total", seeds, "global tables: times this region was seeded from a peer's snapshot");
    TCOUNTER("snapshots_served_total", snapshots_served, "global tables: snapshots served to seeding peers");
    TCOUNTER("recoveries_total", recoveries, "global tables: times this region recovered its own log from a "
             "peer (its store was empty or behind the peers)");
    TCOUNTER("stream_gaps_total", gaps, "global tables: batches a peer refused as a gap (the stream restarted)");
#undef TCOUNTER
    table_counter(b, g, "meridian_tables_conflicts_total",
                  "global tables: concurrent lww versions resolved here by last-writer-wins, by table",
                  offsetof(struct gtab_table_stats, conflicts));
    table_counter(b, g, "meridian_tables_conditional_lost_total",
                  "global tables: If-Match writes of this region overwritten by a concurrent write elsewhere",
                  offsetof(struct gtab_table_stats, conditional_lost));
    table_counter(b, g, "meridian_tables_kind_conflicts_total",
                  "global tables: declarations of a table with another kind met here, by table",
                  offsetof(struct gtab_table_stats, kind_conflicts));
    mr_metric_header(b, "meridian_tables_tombstones", "gauge", "global tables: deleted items held, by table");
    for (size_t i = 0; i < gtab_n_tables(g); i++) {
        snprintf(labels, sizeof(labels), "table=\"%s\"", gtab_table_at(g, i)->name);
        mr_metric_u64(b, "meridian_tables_tombstones", labels, gtab_tombstones(g, gtab_table_at(g, i)->name));
    }
    tables__peer_metrics(n, b);
}

void node__tables_status(struct node *n, struct mr_buf *b)
{
    struct tables *t = n->tables;

    mr_buf_printf(b, ",\"tables\":{\"count\":%zu,\"head\":%" PRIu64 ",\"log_first\":%" PRIu64
                  ",\"applied\":", gtab_n_tables(t->g), gtab_head(t->g), gtab_log_first(t->g));
    gtab_vector_json(t->g, b);
    mr_buf_printf(b, ",\"writes\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"waiting_reads\":%zu,\"seeding\":%s,"
                  "\"seeds\":%" PRIu64 ",\"recoveries\":%" PRIu64 ",\"recovering\":", t->writes, t->reads,
                  t->n_waits, t->seeding ? "true" : "false", t->seeds, t->recoveries);
    if (t->recovering)
        mr_json_cstr(b, t->recover_why);
    else
        mr_buf_puts(b, "null");
    mr_buf_puts(b, ",\"peers\":");
    tables__peer_status(n, b);
    mr_buf_putc(b, '}');
}
