/* node.c -- the shop's calls to its region's node, over one keep-alive
 * client pool (src/http).  Every call is bounded by [limits] node_timeout;
 * an answer's Meridian-Token is merged into the request's token when the
 * call wrote something, so the cookie always covers the shopper's writes.
 * Reads do not merge: a token that named positions the shopper never wrote
 * would only make later reads in other regions wait for nothing. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "shop_int.h"

struct node_call {
    struct shop_req *r;
    shop_node_cb cb;
    enum shop_tok_use tok;
    int64_t start_us;
    char *method, *path, *body;   /* kept to send again without the token */
};

static void call_free(struct node_call *nc)
{
    mr_free(nc->method);
    mr_free(nc->path);
    mr_free(nc->body);
    mr_free(nc);
}

static int call_start(struct node_call *nc);

/* A token the node cannot honour (400 invalid_token: it names positions
 * beyond its logs, e.g. a cookie from an earlier cluster on the same host)
 * is dropped, and the call sent again without it: the shopper loses
 * read-your-writes for writes that this cluster never had. */
static int token_rejected(struct node_call *nc, const struct http_response *resp)
{
    json_t *body;
    int bad;

    if (resp->status != 400 || nc->tok == TOK_NONE || !nc->r->have_tok)
        return 0;
    body = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    bad = strcmp(shop__node_error_code(body), "invalid_token") == 0;
    json_decref(body);
    if (!bad)
        return 0;
    mr_log(MR_LOG_INFO, "shop", "node refused the shopper's token (%.*s): dropped", (int)resp->body_len,
           resp->body ? resp->body : "");
    memset(&nc->r->tok, 0, sizeof(nc->r->tok));
    nc->r->have_tok = 0;
    nc->r->tok_dropped = 1;
    return call_start(nc) == 0;
}

static const char *resp_header(const struct http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

static void on_answer(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct node_call *nc = data;
    struct shop_req *r = nc->r;
    struct shop *s = r->s;
    shop_node_cb cb = nc->cb;
    json_t *body = NULL;
    char err[MR_ERRMSG_LEN] = "";
    int status = 0;

    (void)call;
    s->n_pending--;
    if (rc == 0 && token_rejected(nc, resp))
        return;
    s->stats.node_calls++;
    mr_hist_observe(&s->stats.node_latency, (double)(mr_mono_us() - nc->start_us) / 1e6);
    if (rc != 0) {
        s->stats.node_errors++;
        snprintf(err, sizeof(err), "node %s: %s", s->cfg->node, mr_strerror(rc));
        mr_log(MR_LOG_WARN, "shop", "%s", err);
    } else {
        status = resp->status;
        if (status >= 500)
            s->stats.node_errors++;
        body = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
        if (resp_header(resp, "Meridian-Token-Unmet")) {
            s->stats.node_reads_fallback++;
            mr_log(MR_LOG_DEBUG, "shop", "%s %s: answered without the writes of %s", nc->method, nc->path,
                   resp_header(resp, "Meridian-Token-Unmet"));
        }
        if (nc->tok == TOK_SEND_MERGE && status < 300) {
            const char *t = resp_header(resp, "Meridian-Token");
            struct mr_token got;
            if (t && mr_token_parse(t, &got, NULL) == 0) {
                if (!r->have_tok)
                    memset(&r->tok, 0, sizeof(r->tok));
                (void)mr_token_merge(&r->tok, &got);
                r->have_tok = 1;
                r->tok_changed = 1;
            }
        }
    }
    call_free(nc);
    /* <cb> may answer and free <r>; <body> is ours until it returns. */
    cb(r, rc, status, body, err);
    json_decref(body);
}

static int call_start(struct node_call *nc)
{
    struct shop_req *r = nc->r;
    struct shop *s = r->s;
    struct http_client_request req;
    char headers[MR_TOKEN_MAX_LEN + 128], tokbuf[MR_TOKEN_MAX_LEN];
    int rc;

    if (s->stopping)
        return MR_ECLOSED;
    headers[0] = '\0';
    if (nc->body)
        snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n");
    if (nc->tok != TOK_NONE && r->have_tok) {
        mr_token_format(&r->tok, tokbuf, sizeof(tokbuf));
        snprintf(headers + strlen(headers), sizeof(headers) - strlen(headers), "Meridian-Token: %s\r\n%s",
                 tokbuf, nc->tok == TOK_SEND_FALLBACK ? "Meridian-Token-Fallback: local\r\n" : "");
    }
    memset(&req, 0, sizeof(req));
    req.method = nc->method;
    req.host = s->node_host;
    req.port = s->node_port;
    req.path = nc->path;
    req.headers = headers[0] ? headers : NULL;
    req.body = nc->body;
    req.body_len = nc->body ? strlen(nc->body) : 0;
    req.timeout_ms = (uint64_t)s->cfg->node_timeout_ms;
    nc->start_us = mr_mono_us();
    rc = http_client_request(s->client, &req, on_answer, nc, NULL);
    if (rc == 0)
        s->n_pending++;
    return rc;
}

int shop__node_call(struct shop_req *r, const char *method, const char *path, const char *body,
                    enum shop_tok_use tok, shop_node_cb cb)
{
    struct node_call *nc = mr_calloc(1, sizeof(*nc));
    int rc;

    nc->r = r;
    nc->cb = cb;
    nc->tok = tok;
    nc->method = mr_strdup(method);
    nc->path = mr_strdup(path);
    nc->body = body ? mr_strdup(body) : NULL;
    rc = call_start(nc);
    if (rc != 0)
        call_free(nc);
    return rc;
}

int shop__sql(struct shop_req *r, json_t *statements, const char *consistency, const char *idem_key,
              enum shop_tok_use tok, shop_node_cb cb)
{
    json_t *req = json_pack("{s:o}", "statements", statements);
    char *text;
    int rc;

    if (consistency)
        json_object_set_new(req, "consistency", json_string(consistency));
    if (idem_key)
        json_object_set_new(req, "idempotency_key", json_string(idem_key));
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    rc = shop__node_call(r, "POST", "/v1/sql", text, tok, cb);
    free(text);
    return rc;
}

json_t *shop__rows(json_t *answer, size_t i)
{
    json_t *rows = json_object_get(json_array_get(json_object_get(answer, "results"), i), "rows");

    return json_is_array(rows) ? rows : NULL;
}

const char *shop__node_error(json_t *body)
{
    const char *m = json_string_value(json_object_get(json_object_get(body, "error"), "message"));

    return m ? m : "unexpected answer from the region's database";
}

const char *shop__node_error_code(json_t *body)
{
    const char *m = json_string_value(json_object_get(json_object_get(body, "error"), "code"));

    return m ? m : "";
}
