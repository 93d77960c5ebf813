/* auth.c -- who may call what on the node's API (docs/security.md).
 *
 * node__handle asks node__auth_need what a request needs before routing it,
 * and node__authorize answers 401 or 403 itself when the caller does not
 * have it.  The rules:
 *
 *   /v1/sql                 read; write when a statement writes (decided by
 *                           store_check, api.c); admin for DDL (CREATE, DROP,
 *                           ALTER... by leading keyword, below)
 *   /v1/tables GET/HEAD     read
 *   /v1/tables/NAME PUT     admin (declares a table)
 *   /v1/tables/_peers...    admin
 *   /v1/tables/_replicate,
 *   /v1/tables/_snapshot,
 *   /v1/snapshot            peer (the other regions' nodes)
 *   /v1/tables other        write
 *   /v1/digest              read
 *   /metrics                read (scrapers get a read token)
 *   /v1/status              read or peer (the other regions' dashboards
 *                           poll it with their node's peer token)
 *   /dashboard,
 *   /v1/dashboard           read, from the Authorization header or the
 *                           meridian_auth cookie that /dashboard?token=T
 *                           sets (a browser sends no bearer token; decision
 *                           043)
 *   anything else           open: /healthz and /readyz (probes: they answer
 *                           ok or not and a reason)
 *
 * The token table is read at start and again on SIGHUP (node__auth_reload),
 * which replaces it whole.
 */
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/cfg.h"
#include "../common/log.h"
#include "../common/util.h"
#include "tables_int.h"

int node_check_auth_config(const struct node_cfg *cfg, char *err)
{
    struct mr_auth *a = mr_calloc(1, sizeof(*a));
    int rc = node__auth_build(cfg, a, NULL, err);

    mr_free(a);
    return rc;
}

int node__auth_build(const struct node_cfg *cfg, struct mr_auth *a, int *enforce, char *err)
{
    int req;

    memset(a, 0, sizeof(*a));
    if (strcmp(cfg->auth_required, "auto") == 0)
        req = -1;
    else if (strcmp(cfg->auth_required, "yes") == 0)
        req = 1;
    else if (strcmp(cfg->auth_required, "no") == 0)
        req = 0;
    else
        return mr_seterr(err, MR_ECONFIG, "key 'required' in [auth]: expected auto, yes or no, "
                         "found '%s'", cfg->auth_required);
    {
        int rc = mr_auth_build(a, &cfg->auth_tokens, err);
        if (rc != 0)
            return rc;
    }
    if (strcmp(cfg->auth_peer_token, "none") != 0 && !mr_auth_token_valid(cfg->auth_peer_token))
        return mr_seterr(err, MR_ECONFIG, "key 'peer_token' in [auth]: expected none or a token of 1 "
                         "to %d visible ASCII characters", MR_AUTH_TOKEN_MAX);
    if (req == 1 && a->n == 0)
        return mr_seterr(err, MR_ECONFIG, "[auth] required = yes but no token is configured: "
                         "add 'token = NAME SCOPES SHA256HEX' lines (meridian token new)");
    if (enforce)
        *enforce = req == -1 ? a->n > 0 : req;
    return 0;
}

/* "/v1/tables..." (path[10] is '\0' or '/'): mirrors tables.c's split_path,
 * which does no percent-decoding, so "_replicate" can only be spelt so. */
static unsigned tables_need(const struct http_request *hr, int get)
{
    const char *seg = hr->path + 10, *end;
    size_t len;

    if (*seg == '\0')
        return get ? MR_AUTH_READ : MR_AUTH_WRITE;
    seg++;
    end = strchr(seg, '/');
    len = end ? (size_t)(end - seg) : strlen(seg);
#define IS(s) (len == sizeof(s) - 1 && memcmp(seg, s, len) == 0)
    if (IS("_replicate") || IS("_snapshot"))
        return MR_AUTH_PEER;
    if (IS("_peers"))
        return MR_AUTH_ADMIN;
#undef IS
    if (get)
        return MR_AUTH_READ;
    /* PUT /v1/tables/NAME declares (or redeclares) a table. */
    if (end == NULL && strcmp(hr->method, "PUT") == 0)
        return MR_AUTH_ADMIN;
    return MR_AUTH_WRITE;
}

unsigned node__auth_need(const struct http_request *hr)
{
    int get = strcmp(hr->method, "GET") == 0 || strcmp(hr->method, "HEAD") == 0;

    if (strcmp(hr->path, "/v1/sql") == 0)
        return MR_AUTH_READ;   /* the least; api.c asks for more once parsed */
    if (strncmp(hr->path, "/v1/tables", 10) == 0 && (hr->path[10] == '\0' || hr->path[10] == '/'))
        return tables_need(hr, get);
    if (strcmp(hr->path, "/v1/snapshot") == 0)
        return MR_AUTH_PEER;
    if (strcmp(hr->path, "/v1/digest") == 0)
        return MR_AUTH_READ;
    /* Counters, lag, etcd endpoints and region names: not rows, but a map
     * of the cluster for whoever can connect (docs/security.md). */
    if (strcmp(hr->path, "/metrics") == 0)
        return MR_AUTH_READ;
    if (strcmp(hr->path, "/v1/status") == 0)
        return NODE_AUTH_READ_OR_PEER;
    if (strcmp(hr->path, "/dashboard") == 0 || strcmp(hr->path, "/v1/dashboard") == 0)
        return NODE_AUTH_DASHBOARD;
    return 0;
}

/* Mutual TLS: the CN of a client certificate the TLS layer verified
 * against the cluster's CA ([tls] ca_file), NULL on a plain connection or
 * without a certificate.  Only the cluster's CA can issue one, and it issues
 * them to the cluster's own processes, so holding one authenticates a
 * member of the cluster: mr_auth_check grants it every scope, no token
 * needed (docs/security.md). */
static const char *peer_cn(struct http_exchange *ex)
{
    return http_exchange_peer_cn(ex);
}

static const char *scope_name(unsigned need)
{
    if (need == NODE_AUTH_DASHBOARD)
        return "read";
    if (need == NODE_AUTH_READ_OR_PEER)
        return "read (or peer)";
    if (need & MR_AUTH_ADMIN)
        return "admin";
    if (need & MR_AUTH_PEER)
        return "peer";
    if (need & MR_AUTH_WRITE)
        return "write";
    return "read";
}

/* Count a refusal and log it (one line a second at most). */
static void refusal_note(struct node *n, const struct http_request *hr, enum mr_auth_result r, unsigned need,
                         const char *who)
{
    int64_t now = mr_now_ms();

    n->stats.auth_refused[r]++;
    /* One line a second at most: a flood of bad requests must not flood
     * the log too; the counters have the totals. */
    if (now - n->auth_logged_ms >= 1000) {
        n->auth_logged_ms = now;
        mr_log(MR_LOG_WARN, "auth", "refused %s %.100s: %s%s%s (needs %s; %llu refused so far)",
               hr->method, hr->path, mr_auth_result_name(r), *who ? " token " : "", who,
               scope_name(need),
               (unsigned long long)(n->stats.auth_refused[MR_AUTH_MISSING] +
                                    n->stats.auth_refused[MR_AUTH_UNKNOWN] +
                                    n->stats.auth_refused[MR_AUTH_FORBIDDEN]));
    }
}

void node__auth_refuse(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                       enum mr_auth_result r, unsigned need, const char *who)
{
    char msg[200];

    refusal_note(n, hr, r, need, who);
    if (r == MR_AUTH_FORBIDDEN) {
        if (*who)
            snprintf(msg, sizeof(msg), "token '%s' does not have the %s scope this request needs",
                     who, scope_name(need));
        else
            snprintf(msg, sizeof(msg), "this request needs the %s scope", scope_name(need));
        node__respond_error(n, ex, ROUTE_REFUSED, hr->received_us, 403, "forbidden", msg, NULL);
        return;
    }
    /* RFC 6750 3: a request without credentials gets the bare challenge;
     * one with a bad token gets error="invalid_token". */
    node__respond_error(n, ex, ROUTE_REFUSED, hr->received_us, 401, "unauthorized",
                        r == MR_AUTH_MISSING
                            ? "this API needs 'Authorization: Bearer <token>' (docs/security.md)"
                            : "the bearer token is not one this node accepts",
                        r == MR_AUTH_MISSING
                            ? "WWW-Authenticate: Bearer realm=\"meridian\"\r\n"
                            : "WWW-Authenticate: Bearer realm=\"meridian\", error=\"invalid_token\"\r\n");
}

/* How long a browser keeps the dashboard's cookie: a working day. */
#define NODE_DASHBOARD_COOKIE_AGE_S (12 * 3600)

/* The dashboard page when the browser has no credential: what to do, in
 * HTML rather than JSON. */
static void dashboard_refuse(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                             enum mr_auth_result r, const char *who)
{
    static const char page[] =
        "<!doctype html><meta charset=utf-8><title>Meridian dashboard: sign in</title>"
        "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">"
        "<h1>This dashboard needs a token</h1>"
        "<p>Open <code>/dashboard?token=TOKEN</code> once with a token of the <b>read</b> scope "
        "(<code>meridian token new --name ops --scopes read</code>, then its hash in the node's "
        "<code>[auth]</code>; a local topology prints a ready link). The browser keeps it in an "
        "HttpOnly cookie for this host.</p><p>docs/dashboard.md, docs/security.md</p>";

    if (strcmp(hr->path, "/dashboard") != 0) {   /* the page's polls: JSON, as every API */
        node__auth_refuse(n, ex, hr, r, NODE_AUTH_DASHBOARD, who);
        return;
    }
    refusal_note(n, hr, r, NODE_AUTH_DASHBOARD, who);
    n->stats.requests[ROUTE_REFUSED][4]++;
    http_respond(ex, r == MR_AUTH_FORBIDDEN ? 403 : 401, "text/html; charset=utf-8", page, sizeof(page) - 1,
                 "Cache-Control: no-store\r\n");
}

/* /dashboard and /v1/dashboard: the header, else the cookie, else (page
 * only) ?token=, which on success sets the cookie and redirects to the
 * bare URL so that the token leaves the address bar and the history. */
static int dashboard_authorize(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                               unsigned *granted, const char **who)
{
    const char *authz = http_request_header(hr, "Authorization"), *cookies = http_request_header(hr, "Cookie");
    char tok[MR_AUTH_TOKEN_MAX + 1] = "", bearer[MR_AUTH_TOKEN_MAX + 16];
    struct mr_buf q;
    int from_query = 0;
    enum mr_auth_result r;

    mr_buf_init(&q);
    if (authz == NULL && cookies)
        (void)http_cookie_get(cookies, NODE_DASHBOARD_COOKIE, tok, sizeof(tok));
    if (authz == NULL && tok[0] == '\0' && strcmp(hr->path, "/dashboard") == 0 &&
        http_request_query(hr, "token", &q) && q.len > 0 && q.len < sizeof(tok) && mr_auth_token_valid(q.data) &&
        strpbrk(q.data, "\",;\\") == NULL) {   /* RFC 6265 cookie-octets only */
        snprintf(tok, sizeof(tok), "%s", q.data);
        from_query = 1;
    }
    mr_buf_close(&q);
    if (authz == NULL && tok[0]) {
        snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
        authz = bearer;
    }
    r = mr_auth_check(&n->auth, authz, peer_cn(ex), MR_AUTH_READ, granted, who);
    if (r != MR_AUTH_OK) {
        dashboard_refuse(n, ex, hr, r, *who);
        return MR_EDENIED;
    }
    if (from_query) {
        char hdr[MR_AUTH_TOKEN_MAX + 200];
        /* HttpOnly: no script reads it; SameSite=Strict: no other site's
         * page sends it; Path=/: the page and its /v1/dashboard polls. */
        snprintf(hdr, sizeof(hdr), "Location: /dashboard\r\nSet-Cookie: %s=%s; Path=/; HttpOnly; "
                 "SameSite=Strict; Max-Age=%d%s\r\nCache-Control: no-store\r\n", NODE_DASHBOARD_COOKIE, tok,
                 NODE_DASHBOARD_COOKIE_AGE_S, n->tls_server ? "; Secure" : "");
        n->stats.requests[ROUTE_DASHBOARD][3]++;
        http_respond(ex, 303, "text/plain", "", 0, hdr);
        return MR_EDENIED;   /* answered */
    }
    return 0;
}

int node__authorize(struct node *n, struct http_exchange *ex, const struct http_request *hr,
                    unsigned need, unsigned *granted, const char **who)
{
    enum mr_auth_result r;

    *who = "";
    if (!n->auth_enforce || need == 0) {
        *granted = MR_AUTH_ALL;
        return 0;
    }
    if (need == NODE_AUTH_DASHBOARD)
        return dashboard_authorize(n, ex, hr, granted, who);
    if (need == NODE_AUTH_READ_OR_PEER) {
        /* Any known token passes mr_auth_check with need 0; then one of
         * the two scopes must be among those it grants. */
        r = mr_auth_check(&n->auth, http_request_header(hr, "Authorization"), peer_cn(ex), 0,
                          granted, who);
        if (r == MR_AUTH_OK && !(*granted & (MR_AUTH_READ | MR_AUTH_PEER)))
            r = MR_AUTH_FORBIDDEN;
    } else {
        r = mr_auth_check(&n->auth, http_request_header(hr, "Authorization"), peer_cn(ex), need,
                          granted, who);
    }
    if (r == MR_AUTH_OK)
        return 0;
    node__auth_refuse(n, ex, hr, r, need, *who);
    return MR_EDENIED;
}

void node__auth_reload(struct node *n, const char *path)
{
    char err[MR_ERRMSG_LEN];
    struct node_cfg fresh;
    struct mr_auth *a;
    int rc, enforce = 0;

    memset(&fresh, 0, sizeof(fresh));
    /* The whole file through the node's own table, as at start: the same
     * parser, so a line accepted at start is accepted now and the errors
     * read alike (file:line, key, what was expected). */
    rc = mr_cfg_load(path, node_cfg_opts, node_cfg_n_opts, &fresh, err);
    a = mr_malloc(sizeof(*a));
    /* required, the token lines and peer_token, checked as at start
     * (required = yes with no token is refused there already). */
    if (rc == 0)
        rc = node__auth_build(&fresh, a, &enforce, err);
    /* With required = auto, a table that had tokens and now has none would
     * turn checking off: a SIGHUP must not open the API by accident;
     * required = no says it on purpose. */
    if (rc == 0 && n->auth_enforce && !enforce && strcmp(fresh.auth_required, "no") != 0)
        rc = mr_seterr(err, MR_ECONFIG, "%s: [auth] has no token left: this node checks tokens, and "
                       "an empty table would turn checking off (set required = no to open the API on "
                       "purpose)", path);
    if (rc != 0) {
        n->stats.auth_reload_failures++;
        mr_log(MR_LOG_ERROR, "auth", "reload failed, the tokens loaded before stay in use: %s", err);
    } else {
        int was = n->auth_enforce, peer_changed;
        /* One copy between two callbacks of the loop: every check sees the
         * old table or the new one, never a mix. */
        n->auth = *a;
        n->auth_enforce = enforce;
        peer_changed = node__peer_token_set(n, fresh.auth_peer_token);
        n->stats.auth_reloads++;
        mr_log(was && !enforce ? MR_LOG_WARN : MR_LOG_INFO, "auth", "reload done: %zu token%s from %s%s%s",
               a->n, a->n == 1 ? "" : "s", path,
               was == enforce ? "" : enforce ? "; tokens are now checked" : "; tokens are NO LONGER checked "
                                                                          "(required = no)",
               peer_changed ? "; the peer token sent to other nodes changed" : "");
    }
    mr_free(a);
    mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &fresh);
}

/* Skip blanks and SQL comments. */
static const char *skip_blank(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

int node__sql_is_ddl(const char *sql)
{
    static const char *const ddl[] = {"CREATE", "DROP", "ALTER", "REINDEX", "VACUUM", "ANALYZE"};
    const char *p = skip_blank(sql), *e = p;

    /* A request holds one statement per text (store_check refuses more),
     * and every SQLite statement that changes the schema starts with one of
     * these keywords, so the first word decides. */
    while ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z'))
        e++;
    for (size_t i = 0; i < sizeof(ddl) / sizeof(ddl[0]); i++)
        if ((size_t)(e - p) == strlen(ddl[i]) && strncasecmp(p, ddl[i], (size_t)(e - p)) == 0)
            return 1;
    return 0;
}

int node__peer_token_set(struct node *n, const char *token)
{
    char h[sizeof(n->peer_headers)] = "";

    if (strcmp(token, "none") != 0)
        mr_auth_header(token, h, sizeof(h));
    if (strcmp(h, n->peer_headers) == 0)
        return 0;
    memcpy(n->peer_headers, h, sizeof(h));
    /* The clients made with node__client_opts copied the old header; the
     * dashboard's polls read n->peer_headers at each request. */
    if (n->tables && n->tables->http)
        http_client_set_headers(n->tables->http, h[0] ? h : NULL);
    if (n->peer_http)
        http_client_set_headers(n->peer_http, h[0] ? h : NULL);
    return 1;
}

void node__client_opts(const struct node *n, struct http_client_opts *o)
{
    http_client_opts_default(o);
    o->headers = n->peer_headers[0] ? n->peer_headers : NULL;
    o->tls = n->tls_client;
}
