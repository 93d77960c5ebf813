/* config.c -- the edge's INI configuration (docs/edge.md, docs/config.md).
 *
 * Fixed sections ([edge], [health], [proxy], [cache], [shed]) come from one
 * option table through src/common/cfg.h; the repeated sections, [region NAME]
 * and [class NAME], are handled here.  Errors name file:line.
 */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/cfg.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../tls/tls.h"
#include "edge.h"

#define OFF(f) offsetof(struct edge_config, f)

static const struct mr_cfg_opt opts[] = {
    {"edge", "listen", MR_CFG_STR, OFF(listen), 0, 0, "127.0.0.1:8080",
     "host:port the edge listens on (port 0: from the kernel)"},
    {"edge", "name", MR_CFG_STR, OFF(name), 0, 0, "edge", "the site this edge serves, for logs"},
    {"edge", "prefer", MR_CFG_STR, OFF(prefer), 0, 0, "none",
     "regions in a fixed order of preference (comma separated), or none: nearest by RTT"},
    {"edge", "all_unhealthy", MR_CFG_STR, OFF(all_unhealthy), 0, 0, "fail_open",
     "when every region is unhealthy: fail_open (try the nearest) or fail_closed (503)"},
    {"edge", "log_level", MR_CFG_STR, OFF(log_level), 0, 0, "info", "debug, info, warn, error"},
    {"edge", "max_body", MR_CFG_SIZE, OFF(max_body), 0, 64LL << 20, "1m", "request body limit"},
    {"edge", "max_response", MR_CFG_SIZE, OFF(max_response), 1024, 256LL << 20, "16m",
     "origin response limit (head + body); larger answers get 502"},
    {"edge", "drain_timeout", MR_CFG_DURATION, OFF(drain_timeout_ms), 0, 60000, "2s",
     "on SIGTERM, how long requests in flight may finish"},
    {"limits", "rate", MR_CFG_INT, OFF(rate), 0, 1000000, "0",
     "requests per second from one client address, sustained; over it 429 with Retry-After "
     "(0: no limit; local topologies send every site's traffic from 127.0.0.1)"},
    {"limits", "burst", MR_CFG_INT, OFF(burst), 1, 1000000, "100",
     "requests one client address may send at once above the rate"},
    {"limits", "rate_clients", MR_CFG_INT, OFF(rate_clients), 1, 10000000, "10000",
     "client addresses the rate limit remembers; the least recently seen is forgotten first"},
    {"limits", "max_connections_per_client", MR_CFG_INT, OFF(max_connections_per_client), 0, 1000000,
     "0", "connections open at once from one client address; over it 429 (0: no limit)"},
    {"limits", "max_connections", MR_CFG_INT, OFF(max_connections), 1, 1000000, "4096",
     "client connections open at once; over it 503"},
    {"limits", "max_header_bytes", MR_CFG_SIZE, OFF(max_header_bytes), 1024, 1 << 20, "16k",
     "request line and headers; over it 431"},
    {"limits", "max_headers", MR_CFG_INT, OFF(max_headers), 1, 10000, "64",
     "header fields per request; over it 431"},
    {"limits", "header_timeout", MR_CFG_DURATION, OFF(header_timeout_ms), 100, 600000, "10s",
     "time to receive a request's head (slowloris guard); past it 408 and close"},
    {"limits", "idle_timeout", MR_CFG_DURATION, OFF(idle_timeout_ms), 100, 3600000, "60s",
     "a keep-alive connection with nothing to do is closed after this"},
    {"health", "probe_interval", MR_CFG_DURATION, OFF(probe_interval_ms), 10, 60000, "250ms",
     "active probe of each region's probe_path every this often"},
    {"health", "probe_jitter", MR_CFG_DURATION, OFF(probe_jitter_ms), 0, 60000, "50ms",
     "each interval is lengthened by a random 0..jitter"},
    {"health", "probe_timeout", MR_CFG_DURATION, OFF(probe_timeout_ms), 10, 60000, "500ms",
     "a probe not answered by then failed"},
    {"health", "probe_path", MR_CFG_STR, OFF(probe_path), 0, 0, "/readyz", "path probed (200: ok)"},
    {"health", "unhealthy_after", MR_CFG_INT, OFF(unhealthy_after), 1, 100, "3",
     "consecutive probe failures that mark a region unhealthy"},
    {"health", "healthy_after", MR_CFG_INT, OFF(healthy_after), 1, 100, "2",
     "consecutive probe successes that mark it healthy again"},
    {"health", "passive_failures", MR_CFG_INT, OFF(passive_failures), 1, 100, "3",
     "consecutive live failures (reset, timeout, 5xx) that mark a region down; a refusal "
     "marks it down at once"},
    {"health", "passive_error_rate", MR_CFG_INT, OFF(passive_error_rate), 1, 100, "50",
     "percent of failed live requests over the window that marks a region down"},
    {"health", "passive_window", MR_CFG_INT, OFF(passive_window), 1, EDGE_HEALTH_WINDOW, "20",
     "live outcomes the error rate is computed over"},
    {"health", "rtt_alpha", MR_CFG_INT, OFF(rtt_alpha), 1, 100, "30",
     "weight of a new probe timing in the smoothed RTT, percent"},
    {"proxy", "try_timeout", MR_CFG_DURATION, OFF(try_timeout_ms), 10, 600000, "1s",
     "one attempt on one region"},
    {"proxy", "total_timeout", MR_CFG_DURATION, OFF(total_timeout_ms), 10, 600000, "5s",
     "a request, every attempt and queueing included"},
    {"proxy", "retry_budget", MR_CFG_INT, OFF(retry_budget), 0, 100, "20",
     "retries in flight, percent of the requests in flight"},
    {"proxy", "retry_min", MR_CFG_INT, OFF(retry_min), 0, 100000, "10",
     "retries in flight always allowed"},
    {"proxy", "max_attempts", MR_CFG_INT, OFF(max_attempts), 1, EDGE_MAX_REGIONS, "3",
     "attempts per request, each on a different region"},
    {"cache", "size", MR_CFG_SIZE, OFF(cache_size), 0, 16LL << 30, "64m",
     "bytes of answers kept (0: no cache)"},
    {"cache", "max_object", MR_CFG_SIZE, OFF(cache_max_object), 1, 1LL << 30, "1m",
     "larger answers are not stored"},
    {"shed", "queue_timeout", MR_CFG_DURATION, OFF(queue_timeout_ms), 0, 60000, "250ms",
     "how long a request waits for a region at capacity before 503"},
    {"shed", "queue_max", MR_CFG_INT, OFF(queue_max), 0, 100000, "128",
     "requests waiting per region; over it the lowest priority one is shed"},
    {"shed", "retry_after", MR_CFG_INT, OFF(retry_after_s), 0, 3600, "1",
     "Retry-After seconds on a shed request"},
    {"tls", "ca_file", MR_CFG_STR, OFF(tls_ca_file), 0, 0, "",
     "PEM: the cluster CA that https:// origins' certificates must lead to ('': none; "
     "ca_file, cert_file and key_file go together)"},
    {"tls", "cert_file", MR_CFG_STR, OFF(tls_cert_file), 0, 0, "",
     "PEM: the certificate the edge presents to https:// origins (from the cluster CA)"},
    {"tls", "key_file", MR_CFG_STR, OFF(tls_key_file), 0, 0, "", "PEM: the private key of cert_file"},
    {"tls", "public_cert_file", MR_CFG_STR, OFF(tls_public_cert_file), 0, 0, "",
     "PEM: the certificate (then its chain) served to clients on listen ('': plain HTTP; "
     "goes with public_key_file)"},
    {"tls", "public_key_file", MR_CFG_STR, OFF(tls_public_key_file), 0, 0, "",
     "PEM: the private key of public_cert_file"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

struct ctx {
    struct edge_config *cfg;
    const char *path;
    int line;
    int rc;
    char *err;
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[MR_ERRMSG_LEN];
    va_list ap;

    if (c->rc != 0)
        return c->rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return c->rc = mr_seterr(c->err, MR_ECONFIG, "%s:%d: %s", c->path, c->line, msg);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > EDGE_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static struct edge_region_cfg *region_get(struct ctx *c, const char *name)
{
    struct edge_config *cfg = c->cfg;

    for (size_t i = 0; i < cfg->n_regions; i++)
        if (strcmp(cfg->regions[i].name, name) == 0)
            return &cfg->regions[i];
    if (!valid_name(name)) {
        fail(c, "section [region %s]: expected a name of 1 to %d characters A-Za-z0-9._-",
             name, EDGE_NAME_MAX);
        return NULL;
    }
    if (cfg->n_regions == EDGE_MAX_REGIONS) {
        fail(c, "at most %d regions", EDGE_MAX_REGIONS);
        return NULL;
    }
    snprintf(cfg->regions[cfg->n_regions].name, sizeof(cfg->regions[0].name), "%s", name);
    cfg->regions[cfg->n_regions].line = c->line;
    return &cfg->regions[cfg->n_regions++];
}

static struct edge_class_cfg *class_get(struct ctx *c, const char *name)
{
    struct edge_config *cfg = c->cfg;

    for (size_t i = 0; i < cfg->n_classes; i++)
        if (strcmp(cfg->classes[i].name, name) == 0)
            return &cfg->classes[i];
    if (!valid_name(name)) {
        fail(c, "section [class %s]: expected a name of 1 to %d characters A-Za-z0-9._-", name,
             EDGE_NAME_MAX);
        return NULL;
    }
    if (cfg->n_classes == EDGE_MAX_CLASSES) {
        fail(c, "at most %d classes", EDGE_MAX_CLASSES);
        return NULL;
    }
    snprintf(cfg->classes[cfg->n_classes].name, sizeof(cfg->classes[0].name), "%s", name);
    return &cfg->classes[cfg->n_classes++];
}

static int parse_int(struct ctx *c, const char *sec, const char *key, const char *v, int64_t min,
                     int64_t max, int64_t *out)
{
    char *end;
    long long x;

    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max)
        return fail(c, "key '%s' in [%s]: expected an integer from %lld to %lld, found '%s'", key,
                    sec, (long long)min, (long long)max, v);
    *out = x;
    return 0;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct ctx *c = user;
    char where[MR_ERRMSG_LEN];

    if (c->rc != 0)
        return 0;
    if (strncmp(section, "region ", 7) == 0) {
        struct edge_region_cfg *r = region_get(c, section + 7);
        if (r == NULL)
            return 0;
        if (strcmp(key, "origin") == 0) {
            char *path = NULL;
            char err[MR_ERRMSG_LEN];
            mr_free(r->origin);
            mr_free(r->host);
            r->host = NULL;
            r->origin = mr_strdup(value);
            if (http_parse_url(value, &r->host, &r->port, &path, err) != 0 ||
                strcmp(path, "/") != 0) {
                mr_free(path);
                fail(c, "key 'origin' in [%s]: expected http[s]://host:port, found '%s'", section,
                     value);
                return 0;
            }
            mr_free(path);
            r->tls = http_url_is_https(value);
        } else if (strcmp(key, "capacity") == 0) {
            parse_int(c, section, key, value, 0, 1000000, &r->capacity);
        } else {
            fail(c, "unknown key '%s' in [%s]: expected origin or capacity", key, section);
        }
        return c->rc == 0;
    }
    if (strncmp(section, "class ", 6) == 0) {
        struct edge_class_cfg *k = class_get(c, section + 6);
        if (k == NULL)
            return 0;
        if (strcmp(key, "prefix") == 0) {
            char *save = NULL, *tok, *dup = mr_strdup(value);
            mr_free(k->prefix);
            k->prefix = mr_strdup(value);
            for (size_t i = 0; i < k->n_prefixes; i++)
                mr_free(k->prefixes[i]);
            k->n_prefixes = 0;
            for (tok = strtok_r(dup, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
                if (tok[0] != '/' || k->n_prefixes == EDGE_MAX_PREFIXES) {
                    fail(c, "key 'prefix' in [%s]: expected up to %d paths starting with '/', "
                         "found '%s'", section, EDGE_MAX_PREFIXES, tok);
                    break;
                }
                k->prefixes[k->n_prefixes++] = mr_strdup(tok);
            }
            mr_free(dup);
        } else if (strcmp(key, "priority") == 0) {
            parse_int(c, section, key, value, -100, 100, &k->priority);
        } else {
            fail(c, "unknown key '%s' in [%s]: expected prefix or priority", key, section);
        }
        return c->rc == 0;
    }
    snprintf(where, sizeof(where), "%s:%d", c->path, c->line);
    c->rc = mr_cfg_set(opts, N_OPTS, c->cfg, where, section, key, value, c->err);
    return c->rc == 0;
}

/* [tls]: the keys of one side go together, every file is readable now (a
 * typo shows at --check-config, not as refused handshakes later), and an
 * https:// origin has a certificate to present. */
static int check_tls(struct ctx *c)
{
    struct edge_config *cfg = c->cfg;
    static const char *const keys[5] = {"ca_file", "cert_file", "key_file", "public_cert_file",
                                        "public_key_file"};
    const char *vals[5] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file,
                           cfg->tls_public_cert_file, cfg->tls_public_key_file};
    int origin_side, public_side;

    if (tls_config_check(keys, vals, 3, "ca_file, cert_file and key_file", 1, &origin_side, c->err) != 0 ||
        tls_config_check(keys + 3, vals + 3, 2, "public_cert_file and public_key_file", 1, &public_side,
                         c->err) != 0)
        return mr_wraperr(c->err, MR_ECONFIG, "%s", c->path);
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (cfg->regions[i].tls && !origin_side)
            return mr_seterr(c->err, MR_ECONFIG, "%s:%d: [region %s]: origin '%s' is https:// but "
                             "[tls] has no ca_file, cert_file and key_file to call it with",
                             c->path, cfg->regions[i].line, cfg->regions[i].name,
                             cfg->regions[i].origin);
    return 0;
}

/* Checks across keys, once the file is read. */
static int finish(struct ctx *c)
{
    struct edge_config *cfg = c->cfg;
    const char *colon;
    int64_t port;

    c->line = 0;
    if (cfg->n_regions == 0)
        return mr_seterr(c->err, MR_ECONFIG, "%s: expected at least one [region NAME] with an "
                         "origin", c->path);
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (cfg->regions[i].origin == NULL)
            return mr_seterr(c->err, MR_ECONFIG, "%s:%d: [region %s]: key 'origin' is required "
                             "(http[s]://host:port)", c->path, cfg->regions[i].line,
                             cfg->regions[i].name);
    for (size_t i = 0; i < cfg->n_classes; i++)
        if (cfg->classes[i].n_prefixes == 0)
            return mr_seterr(c->err, MR_ECONFIG, "%s: [class %s]: key 'prefix' is required",
                             c->path, cfg->classes[i].name);
    if (strcmp(cfg->all_unhealthy, "fail_open") == 0)
        cfg->all_down = EDGE_FAIL_OPEN;
    else if (strcmp(cfg->all_unhealthy, "fail_closed") == 0)
        cfg->all_down = EDGE_FAIL_CLOSED;
    else
        return mr_seterr(c->err, MR_ECONFIG, "%s: key 'all_unhealthy' in [edge]: expected "
                         "fail_open or fail_closed, found '%s'", c->path, cfg->all_unhealthy);
    colon = strrchr(cfg->listen, ':');
    if (colon == NULL || colon == cfg->listen || mr_parse_i64(colon + 1, 0, 65535, &port) != 0)
        return mr_seterr(c->err, MR_ECONFIG, "%s: key 'listen' in [edge]: expected host:port, "
                         "found '%s'", c->path, cfg->listen);
    cfg->listen_host = mr_strndup(cfg->listen, (size_t)(colon - cfg->listen));
    cfg->listen_port = (int)port;
    if (strcmp(cfg->prefer, "none") != 0 && cfg->prefer[0] != '\0') {
        char *save = NULL, *tok, *dup = mr_strdup(cfg->prefer);
        int rc = 0;
        for (tok = strtok_r(dup, ", \t", &save); tok && rc == 0;
             tok = strtok_r(NULL, ", \t", &save)) {
            size_t i;
            for (i = 0; i < cfg->n_regions; i++)
                if (strcmp(cfg->regions[i].name, tok) == 0)
                    break;
            if (i == cfg->n_regions)
                rc = mr_seterr(c->err, MR_ECONFIG, "%s: key 'prefer' in [edge]: '%s' is not a "
                               "[region]", c->path, tok);
            else
                for (size_t j = 0; j < cfg->n_prefer; j++)
                    if (cfg->prefer_order[j] == (int)i)
                        rc = mr_seterr(c->err, MR_ECONFIG, "%s: key 'prefer' in [edge]: '%s' "
                                       "named twice", c->path, tok);
            if (rc == 0)
                cfg->prefer_order[cfg->n_prefer++] = (int)i;
        }
        mr_free(dup);
        if (rc != 0)
            return rc;
    }
    if (cfg->probe_path[0] != '/')
        return mr_seterr(c->err, MR_ECONFIG, "%s: key 'probe_path' in [health]: expected a path "
                         "starting with '/', found '%s'", c->path, cfg->probe_path);
    return check_tls(c);
}

int edge_config_load(const char *path, struct edge_config *cfg, char *err)
{
    struct ctx c = {cfg, path, 0, 0, err};
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    mr_cfg_defaults(opts, N_OPTS, cfg);
    rc = mr_cfg_parse_file(path, handler, &c, &c.line, &c.rc, err);
    return rc != 0 ? rc : finish(&c);
}

void edge_config_free(struct edge_config *cfg)
{
    mr_cfg_free(opts, N_OPTS, cfg);
    for (size_t i = 0; i < cfg->n_regions; i++) {
        mr_free(cfg->regions[i].origin);
        mr_free(cfg->regions[i].host);
    }
    for (size_t i = 0; i < cfg->n_classes; i++) {
        mr_free(cfg->classes[i].prefix);
        for (size_t j = 0; j < cfg->classes[i].n_prefixes; j++)
            mr_free(cfg->classes[i].prefixes[j]);
    }
    mr_free(cfg->listen_host);
    memset(cfg, 0, sizeof(*cfg));
}

void edge_config_write_sample(FILE *f)
{
    mr_cfg_write_sample(f, opts, N_OPTS);
    fprintf(f, "\n; One section per region (at least one):\n[region us-east-1]\n"
            "; the region's origin (its shops); https:// needs [tls] ca_file, cert_file, key_file\n"
            "origin = http://127.0.0.1:8001\n"
            "; concurrent requests; over it: queue, then 503 (0: unlimited)\ncapacity = 0\n"
            "\n; Priority classes by path prefix (optional; others are priority 0):\n"
            "[class checkout]\nprefix = /checkout, /v1/orders\npriority = 10\n");
}
