/* config.c -- the option table of `meridian shop` (docs/shop.md). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../http/http.h"
#include "../tls/tls.h"
#include "shop_int.h"

#define F(f) offsetof(struct shop_config, f)

const struct mr_cfg_opt shop_cfg_opts[] = {
    {"shop", "listen", MR_CFG_STR, F(listen), 0, 0, "127.0.0.1:8090",
     "host:port the shop listens on (port 0: from the kernel)"},
    {"shop", "reuse_port", MR_CFG_BOOL, F(reuse_port), 0, 0, "false",
     "share <listen> with the region's other shops (SO_REUSEPORT: the kernel spreads connections)"},
    {"shop", "instance_listen", MR_CFG_STR, F(instance_listen), 0, 0, "",
     "a second host:port that reaches this shop alone (probes, /metrics, /admin/faults); '': none"},
    {"shop", "node", MR_CFG_STR, F(node), 0, 0, NULL, "http://host:port of this region's node"},
    {"shop", "region", MR_CFG_STR, F(region), 0, 0, NULL,
     "this region's name, shown on every page and in the Meridian-Region header"},
    {"shop", "node_token", MR_CFG_STR, F(node_token), 0, 0, "none",
     "bearer token sent to the node (its [auth] must accept it with the write scope; docs/security.md; "
     "none: send no token)"},
    {"shop", "log_level", MR_CFG_STR, F(log_level), 0, 0, "info", "debug, info, warn or error"},
    {"session", "cookie", MR_CFG_STR, F(session_cookie), 0, 0, "mr_sid", "name of the session cookie"},
    {"session", "token_cookie", MR_CFG_STR, F(token_cookie), 0, 0, "mr_token",
     "name of the consistency token cookie"},
    {"session", "ttl", MR_CFG_DURATION, F(session_ttl_ms), 60000, 365LL * 24 * 3600 * 1000, "168h",
     "sessions and carts expire this long after their last change (TTL field of the tables)"},
    {"limits", "max_lines", MR_CFG_INT, F(max_lines), 1, SHOP_MAX_LINES_HARD, "50", "lines per cart"},
    {"limits", "max_qty", MR_CFG_INT, F(max_qty), 1, 10000, "99", "quantity per cart line"},
    {"limits", "max_body", MR_CFG_SIZE, F(max_body), 256, 1 << 20, "16k", "request body bytes"},
    {"limits", "node_timeout", MR_CFG_DURATION, F(node_timeout_ms), 100, 120000, "10s",
     "one call to the node; past it the region counts as unavailable (503)"},
    {"limits", "page_size", MR_CFG_INT, F(page_size), 1, 100, "24", "products per catalog page (default)"},
    {"cache", "max_age", MR_CFG_INT, F(catalog_max_age), 0, 86400, "10",
     "Cache-Control max-age of catalog answers, seconds"},
    {"cache", "stale_while_revalidate", MR_CFG_INT, F(catalog_swr), 0, 86400, "30",
     "Cache-Control stale-while-revalidate of catalog answers, seconds"},
    {"cache", "stale_if_error", MR_CFG_INT, F(catalog_sie), 0, 7 * 86400, "86400",
     "Cache-Control stale-if-error of catalog answers, seconds"},
    {"cache", "retry_after", MR_CFG_INT, F(retry_after), 0, 3600, "1",
     "Retry-After seconds when this region's node is unavailable"},
    {"faults", "enabled", MR_CFG_BOOL, F(faults_enabled), 0, 0, "false",
     "serve the fault-injection endpoint /admin/faults (5xx or hang on chosen paths; docs/shop.md)"},
    {"faults", "token", MR_CFG_STR, F(faults_token), 0, 0, "none",
     "removed (decision 030): /admin/faults takes a token of [auth] with the admin scope; "
     "any value but none is refused"},
    {"faults", "hold", MR_CFG_DURATION, F(faults_hold_ms), 100, 3600000, "60s",
     "mode hang: a request held longer than this is answered 503 (the connection's own bound)"},
    {"auth", "token", MR_CFG_LIST, F(auth_tokens), 0, 0, NULL,
     "NAME SCOPES SHA256HEX, one line per token, as in node.ini (meridian token new): "
     "/admin/faults needs a token with the admin scope; re-read on SIGHUP (docs/security.md)"},
    {"tls", "ca_file", MR_CFG_STR, F(tls_ca_file), 0, 0, "",
     "PEM: the cluster CA; clients must present a certificate it signed ('': plain HTTP; "
     "ca_file, cert_file and key_file go together)"},
    {"tls", "cert_file", MR_CFG_STR, F(tls_cert_file), 0, 0, "",
     "PEM: this shop's certificate, served to clients and presented to an https:// node"},
    {"tls", "key_file", MR_CFG_STR, F(tls_key_file), 0, 0, "", "PEM: the private key of cert_file"},
};

const size_t shop_cfg_n_opts = sizeof(shop_cfg_opts) / sizeof(shop_cfg_opts[0]);

static int cookie_name_valid(const char *s)
{
    if (*s == '\0' || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* [tls]: all three keys or none; each file readable now, so that a typo shows
 * at --check-config rather than as a refused handshake later. */
static int check_tls(const struct shop_config *cfg, char *err)
{
    static const char *const keys[3] = {"ca_file", "cert_file", "key_file"};
    const char *vals[3] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file};
    int all, rc = tls_config_check(keys, vals, 3, "ca_file, cert_file and key_file", 1, &all, err);

    if (rc == 0 && !all && cfg->node && http_url_is_https(cfg->node))
        rc = mr_seterr(err, MR_ECONFIG, "key 'node' in [shop] is https:// ('%s'): [tls] ca_file, "
                       "cert_file and key_file are required to call it", cfg->node);
    return rc;
}

int shop_config_check(const struct shop_config *cfg, char *err)
{
    char *host = NULL, *path = NULL, perr[MR_ERRMSG_LEN];
    int port, rc = 0;

    if (cfg->node == NULL || http_parse_url(cfg->node, &host, &port, &path, perr) != 0)
        rc = mr_seterr(err, MR_ECONFIG, "key 'node' in [shop]: expected http[s]://host:port, found '%s'",
                       cfg->node ? cfg->node : "");
    mr_free(host);
    mr_free(path);
    if (rc)
        return rc;
    if (cfg->region == NULL || !*cfg->region || strlen(cfg->region) > 63)
        return mr_seterr(err, MR_ECONFIG, "key 'region' in [shop]: expected a region name of 1 to 63 characters");
    if (cfg->instance_listen && cfg->instance_listen[0] && strrchr(cfg->instance_listen, ':') == NULL)
        return mr_seterr(err, MR_ECONFIG,
                         "key 'instance_listen' in [shop]: expected host:port or '', found '%s'",
                         cfg->instance_listen);
    if (cfg->listen == NULL || strrchr(cfg->listen, ':') == NULL)
        return mr_seterr(err, MR_ECONFIG, "key 'listen' in [shop]: expected host:port, found '%s'",
                         cfg->listen ? cfg->listen : "");
    if (mr_log_level_parse(cfg->log_level) < 0)
        return mr_seterr(err, MR_ECONFIG, "key 'log_level' in [shop]: expected debug, info, warn or "
                         "error, found '%s'", cfg->log_level);
    if (!cookie_name_valid(cfg->session_cookie) || !cookie_name_valid(cfg->token_cookie) ||
        strcmp(cfg->session_cookie, cfg->token_cookie) == 0)
        return mr_seterr(err, MR_ECONFIG, "[session] cookie and token_cookie: expected two different "
                         "names of 1 to 64 characters A-Za-z0-9_-");
    if (strcmp(cfg->node_token, "none") != 0 && !mr_auth_token_valid(cfg->node_token))
        return mr_seterr(err, MR_ECONFIG, "key 'node_token' in [shop]: expected none or a token of 1 to "
                         "%d visible ASCII characters", MR_AUTH_TOKEN_MAX);
    if (cfg->faults_token && strcmp(cfg->faults_token, "none") != 0)
        return mr_seterr(err, MR_ECONFIG, "key 'token' in [faults] was removed: /admin/faults takes "
                         "the cluster's tokens now, an [auth] 'token = NAME admin SHA256HEX' line "
                         "(meridian token new --scopes admin; docs/security.md, decision 030)");
    {
        /* Every line parses now, so that --check-config names a bad one;
         * the shop builds its own table at start. */
        struct mr_auth *a = mr_malloc(sizeof(*a));
        int rc2 = mr_auth_build(a, &cfg->auth_tokens, err);
        size_t n = a->n;
        mr_free(a);
        if (rc2 != 0)
            return rc2;
        /* Fault injection with nobody allowed in would be either useless or,
         * were a default to open it, a hole: refuse to start instead. */
        if (cfg->faults_enabled && n == 0)
            return mr_seterr(err, MR_ECONFIG, "[faults] enabled = true but [auth] has no token: "
                             "/admin/faults needs a token with the admin scope ('token = NAME admin "
                             "SHA256HEX', meridian token new)");
    }
    return check_tls(cfg, err);
}
