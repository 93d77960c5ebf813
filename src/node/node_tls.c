/* node_tls.c -- [tls]: the node's certificate, for its listener and for its
 * calls to other nodes and to etcd (docs/security.md, "TLS on a node").
 *
 * One certificate serves both roles (serverAuth + clientAuth, as
 * `meridian cert issue` makes them), so [tls] names three files and the node
 * makes two contexts from them:
 *
 *   tls_server  the listener: TLS only.  A client certificate is asked for
 *               but not required (require_peer_cert = 0): shops and tools
 *               without one still connect and must then present a bearer
 *               token; one that does not verify fails the handshake.  A
 *               verified one authenticates its holder as a cluster member
 *               (auth.c, peer_cn).
 *   tls_client  every call to another node (table streams, snapshot
 *               seeding, the dashboard's polls) and to https:// etcd.
 *
 * The scheme of a URL decides nothing at run time: a node with [tls] speaks
 * TLS to every peer, one without speaks plain HTTP.  So a URL whose scheme
 * disagrees with [tls] could only fail later, in a retry loop; it is refused
 * at start instead (node__tls_check_config).  The wan and the edges the
 * dashboard polls are not nodes: their URLs say what they speak.
 *
 * SIGHUP (node_reload) re-reads the three files into both contexts: new
 * connections take the new certificate, live ones keep theirs.  It also
 * re-reads the [auth] tokens (auth.c, node__auth_reload).
 */
#include <string.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "dashboard_int.h"
#include "node_int.h"
#include "tables_int.h"


int node__tls_configured(const struct node_cfg *cfg)
{
    return tls_config_is_set(cfg->tls_ca_file) && tls_config_is_set(cfg->tls_cert_file) &&
           tls_config_is_set(cfg->tls_key_file);
}

static void fill_opts(const struct node_cfg *cfg, struct tls_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ca_file = cfg->tls_ca_file;
    o->cert_file = cfg->tls_cert_file;
    o->key_file = cfg->tls_key_file;
    o->require_peer_cert = 0;
}

/* Every URL of a comma-separated list is https:// (1), none is (0), or
 * they mix (-1). */
static int list_https(const char *list)
{
    int https = 0, plain = 0;
    const char *p = list ? list : "";   /* a required key not checked yet */

    while (*p) {
        size_t len;
        char url[300];
        while (*p == ' ' || *p == '\t')
            p++;
        len = strcspn(p, ",");
        snprintf(url, sizeof(url), "%.*s", (int)(len < 299 ? len : 299), p);
        if (http_url_is_https(url))
            https = 1;
        else
            plain = 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return https && plain ? -1 : https;
}

static int check_urls(const struct node_cfg *cfg, int tls, char *err)
{
    char regions[TABLES_MAX_PEERS][64], urls[TABLES_MAX_PEERS][256];
    char names[DASH_MAX_EDGES][DASH_NAME_MAX], eurls[DASH_MAX_EDGES][DASH_URL_MAX];
    size_t n = 0, ne = 0;
    int e = list_https(cfg->etcd);

    if (e == -1)
        return mr_seterr(err, MR_ECONFIG, "key 'etcd' in [node]: http:// and https:// endpoints mix "
                         "('%s'): one cluster speaks one of them", cfg->etcd);
    if (e == 1 && !tls)
        return mr_seterr(err, MR_ECONFIG, "key 'etcd' in [node]: https:// endpoints need [tls] "
                         "(ca_file, cert_file, key_file): the node's certificate and the CA etcd's "
                         "comes from");
    if (cfg->advertise_url && strcmp(cfg->advertise_url, "auto") != 0 && http_url_is_https(cfg->advertise_url) != tls)
        return mr_seterr(err, MR_ECONFIG, "key 'advertise_url' in [node]: '%s' must start with "
                         "%s: this node's listener speaks %s", cfg->advertise_url,
                         tls ? "https://" : "http://", tls ? "TLS only ([tls] is set)"
                                                          : "plain HTTP (no [tls])");
    /* Already checked by tables_check_config: only the schemes here. */
    if (node__tables_parse_peers(cfg->tables_peers, regions, urls, TABLES_MAX_PEERS, &n, err) != 0)
        return MR_ECONFIG;
    for (size_t i = 0; i < n; i++)
        if (http_url_is_https(urls[i]) != tls)
            return mr_seterr(err, MR_ECONFIG, "[tables] peers: %s=%s must start with %s: %s",
                             regions[i], urls[i], tls ? "https://" : "http://",
                             tls ? "with [tls] a node calls other nodes over TLS only"
                                 : "https:// needs [tls] (ca_file, cert_file, key_file)");
    if (tls)
        return 0;
    if (cfg->dashboard_wan && strcmp(cfg->dashboard_wan, "none") != 0 && http_url_is_https(cfg->dashboard_wan))
        return mr_seterr(err, MR_ECONFIG, "key 'wan' in [dashboard]: https:// needs [tls] "
                         "(ca_file: the CA its certificate comes from)");
    if (dash_parse_edges(cfg->dashboard_edges, names, eurls, DASH_MAX_EDGES, &ne, err) != 0)
        return MR_ECONFIG;
    for (size_t i = 0; i < ne; i++)
        if (http_url_is_https(eurls[i]))
            return mr_seterr(err, MR_ECONFIG, "[dashboard] edges: %s=%s: https:// needs [tls] "
                             "(ca_file: the CA its certificate comes from)", names[i], eurls[i]);
    return 0;
}

int node__tls_check_config(const struct node_cfg *cfg, int load_files, char *err)
{
    static const char *const keys[] = {"ca_file", "cert_file", "key_file"};
    const char *vals[3] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file};
    int all, rc = tls_config_check(keys, vals, 3, "ca_file, cert_file and key_file", 0, &all, err);

    rc = rc ? rc : check_urls(cfg, all, err);
    if (rc != 0 || !all || !load_files)
        return rc;
    {
        /* Read them now, so that --check-config finds a missing file or a
         * key that does not match its certificate (the error names it). */
        struct tls_opts o;
        struct tls_ctx *t = NULL;
        fill_opts(cfg, &o);
        rc = tls_ctx_new(&o, 1, &t, err);
        tls_ctx_free(t);
        return rc != 0 ? mr_wraperr(err, MR_ECONFIG, "[tls]") : 0;
    }
}

int node__tls_start(struct node *n, char *err)
{
    struct tls_opts o;
    int rc;

    if (!node__tls_configured(n->cfg))
        return 0;
    fill_opts(n->cfg, &o);
    rc = tls_ctx_new(&o, 1, &n->tls_server, err);
    if (rc == 0)
        rc = tls_ctx_new(&o, 0, &n->tls_client, err);
    if (rc != 0) {
        mr_wraperr(err, rc, "[tls]");
        node__tls_free(n);
        return rc;
    }
    return 0;
}

void node__tls_free(struct node *n)
{
    tls_ctx_free(n->tls_server);
    tls_ctx_free(n->tls_client);
    n->tls_server = n->tls_client = NULL;
}

static void reload_tls(struct node *n)
{
    char err[MR_ERRMSG_LEN];
    int rc;

    if (n->tls_server == NULL) {
        mr_log(MR_LOG_INFO, "tls", "reload: no [tls] configured, nothing to reload");
        return;
    }
    /* Both or neither: the listener never presents a certificate the
     * calls out do not (the files may change again while they are read). */
    {
        struct tls_ctx *both[2] = {n->tls_server, n->tls_client};
        rc = tls_ctx_reload_all(both, 2, err);
    }
    if (rc != 0) {
        n->stats.tls_reload_failures++;
        mr_log(MR_LOG_ERROR, "tls", "reload failed, the certificate loaded before stays in use: %s",
               err);
        return;
    }
    n->stats.tls_reloads++;
    mr_log(MR_LOG_INFO, "tls", "reload done: the listener and the calls to other nodes and etcd "
           "use %s for new connections, open ones keep theirs", n->cfg->tls_cert_file);
}

void node_reload(struct node *n, const char *config_path)
{
    /* Independent: a bad token line does not hold back a new certificate,
     * nor the reverse. */
    reload_tls(n);
    if (config_path != NULL)
        node__auth_reload(n, config_path);
    else
        mr_log(MR_LOG_INFO, "auth", "reload: no config file, the tokens stay as they are");
}
