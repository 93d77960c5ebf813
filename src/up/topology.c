/* topology.c -- the topology file, ports, and what each child is given.
 *
 * Everything here is a pure function of the topology and the run directory,
 * so the unit tests check the generated etcd argv and node.ini directly.
 *
 * The file is INI, parsed with inih.  src/common/cfg.c handles files whose
 * sections are fixed; a topology has one section per region, named
 * "[region NAME]", and a region section may hold no keys at all (Debian's
 * inih is built without INI_CALL_HANDLER_ON_NEW_SECTION, so an empty section
 * never reaches the handler).  So the line reader, which sees every line
 * anyway in order to count them (inih is built without INI_HANDLER_LINENO),
 * also picks up section headers; the handler then checks keys against the
 * option tables with mr_cfg_set, which writes cfg.h's style of errors.
 */
#include "up.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/cfg.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

const char up_default_topology[] =
    "; The default local topology of `meridian up`: three regions on loopback.\n"
    "; The format is described in docs/topology.md.  The launcher embeds this\n"
    "; text (src/up/topology.c); a unit test keeps the two equal.\n"
    "\n"
    "[topology]\n"
    "name = default\n"
    "cluster = meridian\n"
    "; 0: every port from the kernel\n"
    "base_port = 0\n"
    "etcd_heartbeat = 50ms\n"
    "etcd_election = 500ms\n"
    "ready_timeout = 60s\n"
    "log_level = info\n"
    "; Secure by default (docs/security.md): mutual TLS between every process\n"
    "; with a throw-away CA in RUNDIR/tls, and bearer tokens.  `no` for either\n"
    "; gives the plain path (benchmarks comparing both, debugging with curl).\n"
    "tls = yes\n"
    "auth = yes\n"
    "\n"
    "[region us-east-1]\n"
    "\n"
    "[region eu-west-1]\n"
    "\n"
    "[region ap-southeast-1]\n"
    "\n"
    "; One-way latency between regions, both ways (round trips of 70, 215 and\n"
    "; 165 ms).  `meridian up --latency-scale 0` turns distance off.\n"
    "[latency]\n"
    "us-east-1 eu-west-1 = 35ms\n"
    "us-east-1 ap-southeast-1 = 107.5ms\n"
    "eu-west-1 ap-southeast-1 = 82.5ms\n"
    "\n"
    "; Client sites: one-way latency from the site to each region.\n"
    "[site New York]\n"
    "us-east-1 = 4ms\n"
    "eu-west-1 = 38ms\n"
    "ap-southeast-1 = 115ms\n"
    "\n"
    "[site Frankfurt]\n"
    "us-east-1 = 45ms\n"
    "eu-west-1 = 10ms\n"
    "ap-southeast-1 = 80ms\n"
    "\n"
    "[site Singapore]\n"
    "us-east-1 = 110ms\n"
    "eu-west-1 = 85ms\n"
    "ap-southeast-1 = 2ms\n";

#define TF(f) offsetof(struct up_topology, f)
static const struct mr_cfg_opt topo_opts[] = {
    {"topology", "name", MR_CFG_STR, TF(name), 0, 0, "local", "topology name, shown in topology.json"},
    {"topology", "cluster", MR_CFG_STR, TF(cluster), 0, 0, "meridian",
     "cluster name: the nodes' etcd key prefix and etcd's --initial-cluster-token"},
    {"topology", "base_port", MR_CFG_INT, TF(base_port), 0, 65535, "0",
     "first of 3 consecutive ports per region (etcd client, etcd peer, node); 0: from the kernel"},
    {"topology", "etcd_heartbeat", MR_CFG_DURATION, TF(etcd_heartbeat_ms), 10, 5000, "50ms",
     "etcd --heartbeat-interval"},
    {"topology", "etcd_election", MR_CFG_DURATION, TF(etcd_election_ms), 50, 50000, "500ms",
     "etcd --election-timeout (at least 5 heartbeats)"},
    {"topology", "ready_timeout", MR_CFG_DURATION, TF(ready_timeout_ms), 1000, 3600000, "60s",
     "how long up waits for every region to be ready"},
    {"topology", "log_level", MR_CFG_STR, TF(log_level), 0, 0, "info",
     "the nodes' log level: debug, info, warn or error"},
    {"topology", "auth", MR_CFG_BOOL, TF(auth), 0, 1, "yes",
     "bearer tokens: the nodes' SQL and table APIs, the wan's and up's control APIs need one; "
     "up makes them and writes the admin token into topology.json (docs/security.md)"},
    {"topology", "tls", MR_CFG_BOOL, TF(tls), 0, 1, "yes",
     "mutual TLS between every process (nodes, etcd, shops, edges to their origins): up makes "
     "a throw-away CA and a certificate per process in RUNDIR/tls (docs/security.md)"},
    {"topology", "edge_tls", MR_CFG_BOOL, TF(edge_tls), 0, 1, "no",
     "the edges' own listeners speak TLS too (https://127.0.0.1, a certificate of the run's CA "
     "for 127.0.0.1 and localhost); needs tls = yes"},
};
#define N_TOPO_OPTS (sizeof(topo_opts) / sizeof(topo_opts[0]))

/* Keys of a [region NAME] section.  Later issues add latency, sites... */
static const struct mr_cfg_opt region_opts[] = {
    {"region", "log_level", MR_CFG_STR, offsetof(struct up_region, log_level), 0, 0, NULL,
     "this region's node log level (default: [topology] log_level)"},
    {"region", "shops", MR_CFG_INT, offsetof(struct up_region, n_shops), 1, UP_MAX_SHOPS, NULL,
     "how many `meridian shop` processes serve the region (default 1); they share one port "
     "and the kernel spreads connections among them"},
};
#define N_REGION_OPTS (sizeof(region_opts) / sizeof(region_opts[0]))

const char *up_kind_name(enum up_proc_kind k)
{
    return k == UP_ETCD ? "etcd" : k == UP_NODE ? "node" : k == UP_SHOP ? "shop"
         : k == UP_EDGE ? "edge" : "wan";
}

int up_process_name_valid(const char *s)
{
    int64_t n;

    if (strncmp(s, "shop.", 5) == 0)
        return s[5] >= '0' && s[5] <= '9' && mr_parse_i64(s + 5, 0, UP_MAX_SHOPS - 1, &n) == 0;
    return up_kind_parse(s) >= 0;
}

int up_kind_parse(const char *s)
{
    if (strcmp(s, "etcd") == 0)
        return UP_ETCD;
    if (strcmp(s, "node") == 0)
        return UP_NODE;
    if (strcmp(s, "shop") == 0)
        return UP_SHOP;
    return -1;
}

/* ---- Parsing ---- */

enum section_kind { SEC_NONE, SEC_TOPOLOGY, SEC_LIMITS, SEC_REGION, SEC_LATENCY, SEC_SITE, SEC_BAD };

#define MAX_LATENCY_KEYS (UP_MAX_REGIONS * UP_MAX_REGIONS)

/* A [latency] or [site] key, resolved once every region is known. */
struct lat_key {
    int line;
    int site;               /* -1: [latency]; else the index of the site */
    char a[UP_REGION_NAME_MAX + 1], b[UP_REGION_NAME_MAX + 1]; /* b empty for a site */
    double ms;
};

struct parse_ctx {
    struct up_topology *t;
    const char *source;
    const char *p;          /* next unread byte of the text */
    int line;               /* line number of the line inih is handling */
    int rc;                 /* first error, with its message in err */
    int rc_line;
    char *err;
    int key_line[N_TOPO_OPTS]; /* where each [topology] key was set, 0: default */
    struct lat_key lat[MAX_LATENCY_KEYS + UP_MAX_SITES * UP_MAX_REGIONS];
    size_t n_lat;
};

static int valid_region_name(const char *s, size_t n)
{
    if (n < 1 || n > UP_REGION_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Classify the text between the brackets of a section header.  For a region,
 * <name> and <n> receive the (unchecked) name. */
static enum section_kind section_kind(const char *sec, const char **name, size_t *n)
{
    const char *end;

    while (is_blank(*sec))
        sec++;
    end = sec + strlen(sec);
    while (end > sec && is_blank(end[-1]))
        end--;
    if ((size_t)(end - sec) == 8 && memcmp(sec, "topology", 8) == 0)
        return SEC_TOPOLOGY;
    if ((size_t)(end - sec) == 6 && memcmp(sec, "limits", 6) == 0)
        return SEC_LIMITS;
    if ((size_t)(end - sec) == 7 && memcmp(sec, "latency", 7) == 0)
        return SEC_LATENCY;
    if ((size_t)(end - sec) >= 4 && memcmp(sec, "site", 4) == 0 &&
        (end - sec == 4 || is_blank(sec[4]))) {
        const char *s = sec + 4;
        while (s < end && is_blank(*s))
            s++;
        *name = s;
        *n = (size_t)(end - s);
        return SEC_SITE;
    }
    if ((size_t)(end - sec) >= 6 && memcmp(sec, "region", 6) == 0 &&
        (end - sec == 6 || is_blank(sec[6]))) {
        const char *s = sec + 6;
        while (s < end && is_blank(*s))
            s++;
        *name = s;
        *n = (size_t)(end - s);
        return SEC_REGION;
    }
    return SEC_BAD;
}

static int fail(struct parse_ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parse_ctx *c, int line, const char *fmt, ...)
{
    char msg[MR_ERRMSG_LEN];
    va_list ap;

    if (c->rc != 0)
        return c->rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        mr_seterr(c->err, MR_ECONFIG, "%s:%d: %s", c->source, line, msg);
    else
        mr_seterr(c->err, MR_ECONFIG, "%s: %s", c->source, msg);
    c->rc = MR_ECONFIG;
    c->rc_line = line;
    return c->rc;
}

static void scan_site(struct parse_ctx *c, const char *name, size_t n)
{
    struct up_topology *t = c->t;
    struct up_site *site;

    if (n == 0 || n > UP_SITE_NAME_MAX) {
        fail(c, c->line, "section [site]: expected [site NAME] with a name of 1 to %d characters",
             UP_SITE_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < t->n_sites; i++)
        if (strlen(t->sites[i].name) == n && memcmp(t->sites[i].name, name, n) == 0) {
            fail(c, c->line, "site '%.*s' is already defined at line %d", (int)n, name,
                 t->sites[i].line);
            return;
        }
    if (t->n_sites == UP_MAX_SITES) {
        fail(c, c->line, "site '%.*s': expected at most %d sites, found more", (int)n, name,
             UP_MAX_SITES);
        return;
    }
    site = &t->sites[t->n_sites];
    memcpy(site->name, name, n);
    site->name[n] = '\0';
    /* The wan's link names allow fewer characters than a site's name. */
    for (size_t i = 0; i <= n; i++) {
        char ch = site->name[i];
        site->slug[i] = ch == '\0' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                                (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'
                            ? ch
                            : '_';
    }
    for (size_t i = 0; i < t->n_sites; i++)
        if (strcmp(t->sites[i].slug, site->slug) == 0) {
            fail(c, c->line, "site '%s': its WAN link name 'site.%s' is that of site '%s' "
                 "(line %d): expected names that differ in more than spaces or symbols",
                 site->name, site->slug, t->sites[i].name, t->sites[i].line);
            return;
        }
    t->n_sites++;
    site->line = c->line;
    for (size_t i = 0; i < UP_MAX_REGIONS; i++)
        site->latency_ms[i] = -1;
}

/* A section header seen by the reader: register regions in file order. */
static void scan_section(struct parse_ctx *c, const char *line)
{
    char sec[128];
    const char *s = line, *end, *name = NULL;
    size_t n = 0;
    struct up_topology *t = c->t;
    struct up_region *r;

    if (c->line == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '[')
        return;
    end = strchr(s, ']');
    if (end == NULL)
        return; /* inih reports the syntax error */
    if ((size_t)(end - s - 1) >= sizeof(sec)) {
        fail(c, c->line, "section name too long");
        return;
    }
    memcpy(sec, s + 1, (size_t)(end - s - 1));
    sec[end - s - 1] = '\0';
    switch (section_kind(sec, &name, &n)) {
    case SEC_TOPOLOGY:
    case SEC_LIMITS:
    case SEC_LATENCY:
    case SEC_NONE:
        return;
    case SEC_BAD:
        fail(c, c->line, "unknown section [%s]: expected [topology], [limits], [region NAME], "
             "[latency] or [site NAME]", sec);
        return;
    case SEC_SITE:
        scan_site(c, name, n);
        return;
    case SEC_REGION:
        break;
    }
    if (n == 0) {
        fail(c, c->line, "section [region]: expected [region NAME], found no name");
        return;
    }
    if (!valid_region_name(name, n)) {
        fail(c, c->line,
             "region name: expected 1 to %d characters of a-z, 0-9 and '-', found '%.*s'",
             UP_REGION_NAME_MAX, (int)n, name);
        return;
    }
    for (size_t i = 0; i < t->n_regions; i++) {
        if (strlen(t->regions[i].name) == n && memcmp(t->regions[i].name, name, n) == 0) {
            fail(c, c->line, "region '%.*s' is already defined at line %d", (int)n, name,
                 t->regions[i].line);
            return;
        }
    }
    if (t->n_regions == UP_MAX_REGIONS) {
        fail(c, c->line, "region '%.*s': expected at most %d regions, found more", (int)n, name,
             UP_MAX_REGIONS);
        return;
    }
    r = &t->regions[t->n_regions++];
    memcpy(r->name, name, n);
    r->name[n] = '\0';
    r->line = c->line;
    r->n_shops = 1;
}

/* ini_reader over the in-memory text.  Counts lines, refuses lines longer
 * than inih's buffer, and reports section headers to scan_section. */
static char *reader(char *str, int num, void *stream)
{
    struct parse_ctx *c = stream;
    const char *nl;
    size_t len;

    if (c->rc != 0 || *c->p == '\0')
        return NULL;
    nl = strchr(c->p, '\n');
    len = nl ? (size_t)(nl - c->p) + 1 : strlen(c->p);
    c->line++;
    if (len > (size_t)num - 1 && !(len == (size_t)num && nl)) {
        /* A line that fills the buffer without its newline would be split
         * by inih into two lines: refuse it instead. */
        fail(c, c->line, "line longer than %d bytes", num - 1);
        return NULL;
    }
    if (len > (size_t)num - 1)
        len = (size_t)num - 1; /* exactly full: drop the newline */
    memcpy(str, c->p, len);
    str[len] = '\0';
    c->p = nl ? nl + 1 : c->p + strlen(c->p);
    scan_section(c, str);
    return c->rc == 0 ? str : NULL;
}

static int valid_key(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int add_limit(struct parse_ctx *c, const char *key, const char *value)
{
    struct up_topology *t = c->t;

    if (!valid_key(key))
        return fail(c, c->line, "key '%s' in [limits]: expected a name of a-z, 0-9 and '_'", key);
    if (*value == '\0')
        return fail(c, c->line, "key '%s' in [limits]: expected a value, found nothing", key);
    for (size_t i = 0; i < t->n_limits; i++) {
        if (strcmp(t->limits[i].key, key) == 0) {
            mr_free(t->limits[i].value);
            t->limits[i].value = mr_strdup(value);
            return 0;
        }
    }
    if (t->n_limits == UP_MAX_LIMITS)
        return fail(c, c->line, "[limits]: expected at most %d keys, found more", UP_MAX_LIMITS);
    t->limits[t->n_limits].key = mr_strdup(key);
    t->limits[t->n_limits].value = mr_strdup(value);
    t->n_limits++;
    return 0;
}

/* "35ms", "107.5ms", "0.2s", "35" (ms). */
static int parse_latency(const char *v, double *ms)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || !(d >= 0) || d > 60000)
        return -1;
    if (strcmp(end, "s") == 0)
        d *= 1000;
    else if (*end != '\0' && strcmp(end, "ms") != 0)
        return -1;
    if (d > 60000)
        return -1;
    *ms = d;
    return 0;
}

/* A key of [latency] ("A B = 35ms": one way, both directions; "A->B = 35ms":
 * that direction only) or of [site NAME] ("REGION = 4ms"). */
static int add_latency(struct parse_ctx *c, const char *section, const char *key,
                       const char *value)
{
    struct lat_key *k;
    const char *sp, *b;
    size_t na;

    if (c->n_lat == sizeof(c->lat) / sizeof(c->lat[0]))
        return fail(c, c->line, "[%s]: too many keys", section);
    k = &c->lat[c->n_lat];
    memset(k, 0, sizeof(*k));
    k->line = c->line;
    k->site = -1;
    if (parse_latency(value, &k->ms) != 0)
        return fail(c, c->line, "key '%s' in [%s]: expected a one-way latency such as 35ms or "
                    "107.5ms (at most 60s), found '%s'", key, section, value);
    if (strncmp(section, "site", 4) == 0) {
        const char *name = section + 4;
        while (is_blank(*name))
            name++;
        for (size_t i = 0; i < c->t->n_sites; i++)
            if (strcmp(c->t->sites[i].name, name) == 0)
                k->site = (int)i;
        if (k->site < 0 || strlen(key) > UP_REGION_NAME_MAX)
            return fail(c, c->line, "key '%s' in [%s]: expected a region name", key, section);
        snprintf(k->a, sizeof(k->a), "%s", key);
        c->n_lat++;
        return 0;
    }
    sp = strstr(key, "->");
    if (sp != NULL) {
        na = (size_t)(sp - key);
        b = sp + 2;
        k->site = -2; /* directed */
    } else {
        sp = strpbrk(key, " \t");
        if (sp == NULL)
            return fail(c, c->line, "key '%s' in [latency]: expected 'REGION REGION' or "
                        "'REGION->REGION'", key);
        na = (size_t)(sp - key);
        b = sp;
        while (is_blank(*b))
            b++;
    }
    if (na == 0 || na > UP_REGION_NAME_MAX || *b == '\0' || strlen(b) > UP_REGION_NAME_MAX)
        return fail(c, c->line, "key '%s' in [latency]: expected 'REGION REGION' or "
                    "'REGION->REGION'", key);
    memcpy(k->a, key, na);
    k->a[na] = '\0';
    snprintf(k->b, sizeof(k->b), "%s", b);
    c->n_lat++;
    return 0;
}

/* Resolve the [latency] and [site] keys against the regions. */
static int resolve_latency(struct parse_ctx *c)
{
    struct up_topology *t = c->t;

    for (size_t i = 0; i < c->n_lat; i++) {
        const struct lat_key *k = &c->lat[i];
        int a = up_topology_find(t, k->a), b;
        if (a < 0)
            return fail(c, k->line, "%s: expected a region of this topology, found '%s'",
                        k->site >= 0 ? "[site] key" : "[latency] key", k->a);
        if (k->site >= 0) {
            t->sites[k->site].latency_ms[a] = k->ms;
            continue;
        }
        b = up_topology_find(t, k->b);
        if (b < 0)
            return fail(c, k->line, "[latency] key: expected a region of this topology, found "
                        "'%s'", k->b);
        if (a == b)
            return fail(c, k->line, "[latency] key '%s %s': expected two different regions",
                        k->a, k->b);
        t->latency_ms[a][b] = k->ms;
        if (k->site == -1)
            t->latency_ms[b][a] = k->ms;
    }
    for (size_t i = 0; i < t->n_sites; i++)
        for (size_t r = 0; r < t->n_regions; r++)
            if (t->sites[i].latency_ms[r] < 0)
                return fail(c, t->sites[i].line, "[site %s]: expected a latency to every region, "
                            "found none to '%s'", t->sites[i].name, t->regions[r].name);
    return 0;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct parse_ctx *c = user;
    struct up_topology *t = c->t;
    char where[MR_ERRMSG_LEN];
    const char *name = NULL;
    size_t n = 0;
    int idx;

    if (c->rc != 0)
        return 0;
    snprintf(where, sizeof(where), "%s:%d", c->source, c->line);
    if (*section == '\0') {
        fail(c, c->line, "key '%s' outside any section: expected [topology], [limits] or "
                         "[region NAME] first", key);
        return 0;
    }
    switch (section_kind(section, &name, &n)) {
    case SEC_TOPOLOGY:
        c->rc = mr_cfg_set(topo_opts, N_TOPO_OPTS, t, where, "topology", key, value, c->err);
        if (c->rc != 0) {
            c->rc_line = c->line;
            return 0;
        }
        for (size_t i = 0; i < N_TOPO_OPTS; i++)
            if (strcmp(topo_opts[i].name, key) == 0)
                c->key_line[i] = c->line;
        return 1;
    case SEC_LIMITS:
        return add_limit(c, key, value) == 0;
    case SEC_LATENCY:
    case SEC_SITE:
        return add_latency(c, section, key, value) == 0;
    case SEC_REGION: {
        char rname[UP_REGION_NAME_MAX + 1];
        if (n > UP_REGION_NAME_MAX) {
            fail(c, c->line, "unexpected section [%s]", section);
            return 0;
        }
        memcpy(rname, name, n);
        rname[n] = '\0';
        idx = up_topology_find(t, rname);
        if (idx < 0) {
            fail(c, c->line, "unexpected section [%s]", section); /* scan_section missed it */
            return 0;
        }
        c->rc = mr_cfg_set(region_opts, N_REGION_OPTS, &t->regions[idx], where, "region", key,
                           value, c->err);
        if (c->rc != 0) {
            c->rc_line = c->line;
            if (c->rc == MR_ECONFIG && strstr(c->err, "unknown key") != NULL) {
                c->rc = 0;
                struct mr_buf keys;
                mr_buf_init(&keys);
                for (size_t i = 0; i < N_REGION_OPTS; i++)
                    mr_buf_printf(&keys, "%s%s", i ? ", " : "", region_opts[i].name);
                fail(c, c->line, "unknown key '%s' in [region %s]: expected one of: %s", key,
                     rname, keys.data);
                mr_buf_close(&keys);
            } else {
                /* mr_cfg_set knows the section as [region]: name it fully. */
                char *at = strstr(c->err, " in [region]"), rest[MR_ERRMSG_LEN];
                if (at != NULL) {
                    snprintf(rest, sizeof(rest), "%s", at + strlen(" in [region]"));
                    snprintf(at, MR_ERRMSG_LEN - (size_t)(at - c->err), " in [region %s]%s", rname,
                             rest);
                }
            }
            return 0;
        }
        return 1;
    }
    case SEC_NONE:
    case SEC_BAD:
        break;
    }
    fail(c, c->line, "unexpected section [%s]", section);
    return 0;
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int key_line(const struct parse_ctx *c, const char *key)
{
    for (size_t i = 0; i < N_TOPO_OPTS; i++)
        if (strcmp(topo_opts[i].name, key) == 0)
            return c->key_line[i];
    return 0;
}

static int valid_log_level(const char *s)
{
    int l = mr_log_level_parse(s);
    return l >= 0 && l != MR_LOG_OFF;
}

/* Checks that involve more than one value, or a value's format. */
static int validate(struct parse_ctx *c)
{
    struct up_topology *t = c->t;

    if (!valid_name(t->name, 64))
        return fail(c, key_line(c, "name"),
                    "key 'name' in [topology]: expected 1 to 64 characters of a-z, A-Z, 0-9, "
                    "'-', '_' and '.', found '%s'", t->name);
    if (!valid_name(t->cluster, 64))
        return fail(c, key_line(c, "cluster"),
                    "key 'cluster' in [topology]: expected 1 to 64 characters of a-z, A-Z, 0-9, "
                    "'-', '_' and '.', found '%s'", t->cluster);
    if (!valid_log_level(t->log_level))
        return fail(c, key_line(c, "log_level"),
                    "key 'log_level' in [topology]: expected debug, info, warn or error, found '%s'",
                    t->log_level);
    for (size_t i = 0; i < t->n_regions; i++)
        if (t->regions[i].log_level && !valid_log_level(t->regions[i].log_level))
            return fail(c, t->regions[i].line,
                        "key 'log_level' in [region %s]: expected debug, info, warn or error, "
                        "found '%s'", t->regions[i].name, t->regions[i].log_level);
    if (t->n_regions == 0)
        return fail(c, 0, "expected 1 to %d [region NAME] sections, found none", UP_MAX_REGIONS);
    if (t->base_port != 0 &&
        (t->base_port < 1024 || t->base_port + 3 * (int64_t)t->n_regions - 1 > 65535))
        return fail(c, key_line(c, "base_port"),
                    "key 'base_port' in [topology]: expected 0 or a port from 1024 to %lld "
                    "(%zu regions use 3 ports each), found '%lld'",
                    (long long)(65535 - 3 * (int64_t)t->n_regions + 1), t->n_regions,
                    (long long)t->base_port);
    if (t->edge_tls && !t->tls)
        return fail(c, key_line(c, "edge_tls"),
                    "key 'edge_tls' in [topology]: expected 'no' when tls = no (the edges' "
                    "certificates come from the run's CA), found 'yes'");
    /* etcd refuses to start otherwise ("should be at least as 5 times as
     * --heartbeat-interval"); say so here, before anything runs. */
    if (t->etcd_election_ms < 5 * t->etcd_heartbeat_ms)
        return fail(c, key_line(c, "etcd_election"),
                    "key 'etcd_election' in [topology]: expected at least 5 x etcd_heartbeat "
                    "(%lldms), found '%lldms'",
                    (long long)(5 * t->etcd_heartbeat_ms), (long long)t->etcd_election_ms);
    return 0;
}

int up_topology_parse(const char *text, const char *source, struct up_topology **out, char *err)
{
    struct up_topology *t = mr_calloc(1, sizeof(*t));
    struct parse_ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.t = t;
    c.source = source;
    c.p = text;
    c.err = err;
    t->source = mr_strdup(source);
    t->latency_scale = 1;
    mr_cfg_defaults(topo_opts, N_TOPO_OPTS, t);

    rc = ini_parse_stream(reader, &c, handler, &c);
    /* inih reports the first syntax error only at the end; an error of ours
     * on a later line is not the first one. */
    if (rc > 0 && (c.rc == 0 || rc < c.rc_line)) {
        c.rc = 0;
        fail(&c, rc, "syntax error (expected [section] or key = value)");
    } else if (rc < 0 && c.rc == 0) {
        fail(&c, 0, "cannot parse (out of memory)");
    }
    if (c.rc == 0)
        validate(&c);
    if (c.rc == 0)
        resolve_latency(&c);
    if (c.rc != 0) {
        up_topology_free(t);
        return c.rc;
    }
    *out = t;
    return 0;
}

int up_topology_load(const char *path, struct up_topology **out, char *err)
{
    FILE *f;
    struct mr_buf text;
    char chunk[4096];
    size_t n;
    int rc;

    if (path == NULL)
        return up_topology_parse(up_default_topology, "(built-in default)", out, err);
    f = fopen(path, "r");
    if (f == NULL)
        return mr_seterr(err, MR_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
    mr_buf_init(&text);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        mr_buf_append(&text, chunk, n);
        if (text.len > 1024 * 1024)
            break;
    }
    if (ferror(f) || text.len > 1024 * 1024 || memchr(text.data ? text.data : "", '\0', text.len)) {
        rc = mr_seterr(err, MR_ECONFIG, "%s: %s", path,
                       ferror(f) ? "cannot read" : "not a text file of at most 1 MiB");
        fclose(f);
        mr_buf_close(&text);
        return rc;
    }
    fclose(f);
    rc = up_topology_parse(text.data ? text.data : "", path, out, err);
    mr_buf_close(&text);
    return rc;
}

void up_topology_free(struct up_topology *t)
{
    if (t == NULL)
        return;
    mr_cfg_free(topo_opts, N_TOPO_OPTS, t);
    for (size_t i = 0; i < t->n_regions; i++)
        mr_cfg_free(region_opts, N_REGION_OPTS, &t->regions[i]);
    for (size_t i = 0; i < t->n_limits; i++) {
        mr_free(t->limits[i].key);
        mr_free(t->limits[i].value);
    }
    mr_free(t->source);
    mr_free(t);
}

int up_topology_find(const struct up_topology *t, const char *name)
{
    for (size_t i = 0; i < t->n_regions; i++)
        if (strcmp(t->regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

void up_topology_write_sample(FILE *f)
{
    mr_cfg_write_sample(f, topo_opts, N_TOPO_OPTS);
    fprintf(f, "\n; copied into every node.ini's [limits] (keys: meridian node --sample-config)\n"
               ";[limits]\n\n; one section per region, 1 to %d, names of a-z, 0-9 and '-'\n"
               "[region us-east-1]\n",
            UP_MAX_REGIONS);
    for (size_t i = 0; i < N_REGION_OPTS; i++)
        fprintf(f, "; %s\n;%s =\n", region_opts[i].help, region_opts[i].name);
}

/* ---- Ports ---- */

/* The most ports one topology takes: 3 per region, and the wan's (control,
 * a peer route per region, an etcd client route and a node route per
 * ordered pair of regions, a site route per (site, region)); plus 3 per region again, which
 * up_topology_assign_ports may pick and skip. */
#define MAX_PORTS (3 * UP_MAX_REGIONS + 1 + UP_MAX_REGIONS + 2 * UP_MAX_REGIONS * (UP_MAX_REGIONS - 1) + \
                   UP_MAX_SITES * UP_MAX_REGIONS + 3 * UP_MAX_REGIONS + \
                   UP_MAX_SITES /* edges */ + UP_MAX_REGIONS /* shops */ + \
                   UP_MAX_SITES * UP_MAX_REGIONS /* site->shop routes */ + \
                   UP_MAX_REGIONS * UP_MAX_SHOPS /* shop instance ports */ + \
                   3 * UP_MAX_REGIONS /* skipped for them */)

/* <n> different ports (mr_pick_ports). */
static int kernel_ports(int *ports, size_t n, char *err)
{
    if (n > MAX_PORTS)
        return mr_seterr(err, MR_EINVAL, "pick ports: %zu at once is too many", n);
    return mr_pick_ports(ports, n, err);
}

const char *up_scheme(const struct up_topology *t)
{
    return t->tls ? "https" : "http";
}

const char *up_edge_scheme(const struct up_topology *t)
{
    return t->edge_tls ? "https" : "http";
}

int up_topology_has_wan(const struct up_topology *t)
{
    return t->n_regions >= 2;
}

/* Instance ports: each shop's own, when a region has 2 or more. */
static size_t n_instance_ports(const struct up_topology *t)
{
    size_t n = 0;

    for (size_t r = 0; r < t->n_regions; r++)
        n += t->regions[r].n_shops > 1 ? (size_t)t->regions[r].n_shops : 0;
    return n;
}

/* The edges', the shops', the site->shop routes' and the shop instances'
 * ports, in that order, skipping those that fall in the base range. */
static void edge_ports_from(struct up_topology *t, const int *picked, size_t n)
{
    int64_t lo = t->base_port, hi = t->base_port + 3 * (int64_t)t->n_regions;
    size_t want = t->n_sites + t->n_regions + (up_topology_has_wan(t) ? t->n_sites * t->n_regions : 0) +
                  n_instance_ports(t);
    int got[MAX_PORTS];
    size_t k = 0;

    for (size_t i = 0; k < want && i < n; i++)
        if (!t->base_port || picked[i] < lo || picked[i] >= hi)
            got[k++] = picked[i];
    for (; k < want; k++)
        got[k] = 0;
    k = 0;
    for (size_t s = 0; s < t->n_sites; s++)
        t->edge_port[s] = got[k++];
    for (size_t r = 0; r < t->n_regions; r++)
        t->regions[r].shop_port = got[k++];
    if (up_topology_has_wan(t))
        for (size_t s = 0; s < t->n_sites; s++)
            for (size_t r = 0; r < t->n_regions; r++)
                t->wan_site_shop_port[s][r] = got[k++];
    for (size_t r = 0; r < t->n_regions; r++)
        for (int64_t i = 0; t->regions[r].n_shops > 1 && i < t->regions[r].n_shops; i++)
            t->regions[r].shop_instance_port[i] = got[k++];
}

int up_topology_assign_ports(struct up_topology *t, char *err)
{
    int picked[MAX_PORTS], wan[MAX_PORTS];
    size_t n_reg = 3 * t->n_regions, n_wan = 0, n_pick, n_edge, k = 0;
    int rc;

    if (up_topology_has_wan(t))
        n_wan = 1 + t->n_regions + 2 * t->n_regions * (t->n_regions - 1) +
                t->n_sites * t->n_regions;
    /* One batch for every kernel port: the kernel may hand out again a port
     * that an earlier batch has just closed, and the wan, which starts
     * first, would then take a region's port (etcd: "address already in
     * use").  With base_port, the wan's ports still come from the kernel;
     * as many as the base range holds are picked on top and those that
     * fall in it are skipped. */
    n_pick = t->base_port && n_wan == 0 ? 0 : n_wan + n_reg;
    /* The edges' ports (one per site) come last in the same batch, from the
     * kernel even with base_port; see edge_ports_from. */
    n_edge = t->n_sites + t->n_regions + (n_wan ? t->n_sites * t->n_regions : 0) +
             n_instance_ports(t) + (t->base_port ? n_reg : 0);
    rc = kernel_ports(picked, n_pick + n_edge, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < t->n_regions; i++) {
        int *dst[3] = {&t->regions[i].etcd_client_port, &t->regions[i].etcd_peer_port,
                       &t->regions[i].node_port};
        for (size_t j = 0; j < 3; j++)
            *dst[j] = t->base_port ? (int)t->base_port + (int)(3 * i + j) : picked[k++];
    }
    for (size_t i = k, n = 0; n < n_wan && i < n_pick; i++)
        if (!t->base_port || picked[i] < t->base_port || picked[i] >= t->base_port + (int64_t)n_reg)
            wan[n++] = picked[i];
    edge_ports_from(t, picked + n_pick, n_edge);
    if (n_wan == 0)
        return 0;
    k = 0;
    t->wan_control_port = wan[k++];
    for (size_t i = 0; i < t->n_regions; i++)
        t->wan_peer_port[i] = wan[k++];
    for (size_t i = 0; i < t->n_regions; i++)
        for (size_t j = 0; j < t->n_regions; j++)
            if (i != j) {
                t->wan_client_port[i][j] = wan[k++];
                t->wan_node_port[i][j] = wan[k++];
            }
    for (size_t i = 0; i < t->n_sites; i++)
        for (size_t j = 0; j < t->n_regions; j++)
            t->wan_site_port[i][j] = wan[k++];
    return 0;
}

void up_site_link_name(const struct up_topology *t, size_t site, size_t region, char *buf,
                       size_t n)
{
    snprintf(buf, n, "site.%s->%s", t->sites[site].slug, t->regions[region].name);
}

char *up_site_node_url(const struct up_topology *t, size_t site, size_t region)
{
    return mr_asprintf("%s://127.0.0.1:%d", up_scheme(t), t->wan_site_port[site][region]
                                                  ? t->wan_site_port[site][region]
                                                  : t->regions[region].node_port);
}

char *up_site_shop_url(const struct up_topology *t, size_t site, size_t region)
{
    return mr_asprintf("%s://127.0.0.1:%d", up_scheme(t), t->wan_site_shop_port[site][region]
                                                  ? t->wan_site_shop_port[site][region]
                                                  : t->regions[region].shop_port);
}

/* "%g" of a scaled latency, trimmed: "35ms", "3.5ms", "0ms". */
static void fmt_ms(char *buf, size_t n, double ms)
{
    snprintf(buf, n, "%.3fms", ms);
}

int up_topology_make_tokens(struct up_topology *t, char *err)
{
    int rc;

    if (!t->auth)
        return 0;
    if ((rc = mr_auth_token_new(t->auth_admin, sizeof(t->auth_admin), err)) != 0 ||
        (rc = mr_auth_token_new(t->auth_peer, sizeof(t->auth_peer), err)) != 0 ||
        (rc = mr_auth_token_new(t->auth_shop, sizeof(t->auth_shop), err)) != 0)
        return rc;
    return 0;
}

/* "token = NAME SCOPES HASH" of <token>. */
static void token_line(struct mr_buf *out, const char *name, const char *scopes, const char *token)
{
    char hash[65];

    mr_auth_hash_hex(token, hash);
    mr_buf_printf(out, "token = %s %s %s\n", name, scopes, hash);
}

void up_wan_ini(const struct up_topology *t, struct mr_buf *out)
{
    char lat[32];

    mr_buf_printf(out, "; generated by `meridian up` from %s (latency scale %g)\n\n[wan]\n"
                  "control = 127.0.0.1:%d\n", t->source, t->latency_scale, t->wan_control_port);
    if (t->auth) {
        token_line(out, "up-admin", "admin", t->auth_admin);
        /* The nodes' dashboards read the links (GET /links) with their
         * peer token; it can cut nothing. */
        token_line(out, "up-peer", "read", t->auth_peer);
    }
    for (size_t i = 0; i < t->n_regions; i++)
        for (size_t j = 0; j < t->n_regions; j++) {
            if (i == j)
                continue;
            fmt_ms(lat, sizeof(lat), t->latency_ms[i][j] * t->latency_scale);
            mr_buf_printf(out, "\n[link %s->%s]\nlatency = %s\n", t->regions[i].name,
                          t->regions[j].name, lat);
            fmt_ms(lat, sizeof(lat), t->latency_ms[j][i] * t->latency_scale);
            mr_buf_printf(out, "reply_latency = %s\n", lat);
        }
    for (size_t j = 0; j < t->n_regions; j++)
        mr_buf_printf(out, "\n; every other region's etcd member dials this one\n"
                      "[route etcd-peer-%s]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\n"
                      "to = %s\n", t->regions[j].name, t->wan_peer_port[j],
                      t->regions[j].etcd_peer_port, t->regions[j].name);
    for (size_t i = 0; i < t->n_regions; i++)
        for (size_t j = 0; j < t->n_regions; j++) {
            if (i == j)
                continue;
            mr_buf_printf(out, "\n[route etcd-client-%s->%s]\nlisten = 127.0.0.1:%d\n"
                          "target = 127.0.0.1:%d\nlink = %s->%s\n", t->regions[i].name,
                          t->regions[j].name, t->wan_client_port[i][j],
                          t->regions[j].etcd_client_port, t->regions[i].name, t->regions[j].name);
            mr_buf_printf(out, "\n[route node-%s->%s]\nlisten = 127.0.0.1:%d\n"
                          "target = 127.0.0.1:%d\nlink = %s->%s\n", t->regions[i].name,
                          t->regions[j].name, t->wan_node_port[i][j], t->regions[j].node_port,
                          t->regions[i].name, t->regions[j].name);
        }
    /* Client sites: one link per (site, region), the site's one-way latency
     * both ways, a route to the region's node for the site's clients (named
     * as the link) and one to the region's shop for the site's edge
     * ("shop-<slug>-><region>": within WAN_NAME_MAX like the link's name). */
    for (size_t i = 0; i < t->n_sites; i++) {
        mr_buf_printf(out, "\n; client site %s\n", t->sites[i].name);
        for (size_t j = 0; j < t->n_regions; j++) {
            char name[UP_SITE_LINK_MAX + 1];
            up_site_link_name(t, i, j, name, sizeof(name));
            fmt_ms(lat, sizeof(lat), t->sites[i].latency_ms[j] * t->latency_scale);
            mr_buf_printf(out, "[link %s]\nlatency = %s\nreply_latency = %s\n\n"
                          "[route %s]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\nlink = %s\n\n"
                          "[route shop-%s->%s]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\nlink = %s\n%s",
                          name, lat, lat, name, t->wan_site_port[i][j], t->regions[j].node_port,
                          name, t->sites[i].slug, t->regions[j].name, t->wan_site_shop_port[i][j],
                          t->regions[j].shop_port, name,
                          j + 1 < t->n_regions ? "\n" : "");
        }
    }
}

/* ---- What each child is given ---- */

struct argv_b {
    char **v;
    size_t n, cap;
};

static void av_add(struct argv_b *a, char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = mr_realloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void av_add2(struct argv_b *a, const char *flag, char *value)
{
    av_add(a, mr_strdup(flag));
    av_add(a, value);
}

void up_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p; p++)
        mr_free(*p);
    mr_free(argv);
}

static int advertised_peer_port(const struct up_topology *t, size_t i)
{
    return t->wan_peer_port[i] ? t->wan_peer_port[i] : t->regions[i].etcd_peer_port;
}

char **up_etcd_argv(const struct up_topology *t, size_t i, const char *rundir,
                    const char *etcd_bin)
{
    const struct up_region *r = &t->regions[i];
    const char *sch = up_scheme(t);
    struct argv_b a = {NULL, 0, 0};
    struct mr_buf cluster;

    mr_buf_init(&cluster);
    /* Peers are reached through the wan's shared route to each member (the
     * wan tells who dials from the dialling process). */
    for (size_t j = 0; j < t->n_regions; j++)
        mr_buf_printf(&cluster, "%s%s=%s://127.0.0.1:%d", j ? "," : "", t->regions[j].name, sch,
                      advertised_peer_port(t, j));

    av_add(&a, mr_strdup(etcd_bin));
    av_add2(&a, "--name", mr_strdup(r->name));
    av_add2(&a, "--data-dir", mr_asprintf("%s/%s/etcd", rundir, r->name));
    av_add2(&a, "--listen-client-urls", mr_asprintf("%s://127.0.0.1:%d", sch, r->etcd_client_port));
    av_add2(&a, "--advertise-client-urls",
            mr_asprintf("%s://127.0.0.1:%d", sch, r->etcd_client_port));
    av_add2(&a, "--listen-peer-urls", mr_asprintf("%s://127.0.0.1:%d", sch, r->etcd_peer_port));
    av_add2(&a, "--initial-advertise-peer-urls",
            mr_asprintf("%s://127.0.0.1:%d", sch, advertised_peer_port(t, i)));
    av_add2(&a, "--initial-cluster", mr_buf_steal(&cluster, NULL));
    /* Ignored by etcd once the data dir holds a member, so a restart on the
     * same data needs no other flags. */
    av_add2(&a, "--initial-cluster-state", mr_strdup("new"));
    av_add2(&a, "--initial-cluster-token", mr_strdup(t->cluster));
    av_add2(&a, "--heartbeat-interval", mr_asprintf("%lld", (long long)t->etcd_heartbeat_ms));
    av_add2(&a, "--election-timeout", mr_asprintf("%lld", (long long)t->etcd_election_ms));
    /* The default (100000) let RSS grow to gigabytes with large batches
     * (notes/etcd-3.4-facts.md). */
    av_add2(&a, "--snapshot-count", mr_strdup("2000"));
    if (t->tls) {
        /* One certificate for both sides: etcd presents it to clients and
         * to the members it dials, and its JSON gateway dials etcd's own
         * gRPC with it (hence clientAuth in it, and 127.0.0.1 in its SANs).
         * Clients and peers must show a certificate of the run's CA. */
        char name[UP_REGION_NAME_MAX + 16];
        up_tls_name(t, UP_ETCD, i, name, sizeof(name));
        av_add2(&a, "--cert-file", up_path_tls_cert(rundir, name));
        av_add2(&a, "--key-file", up_path_tls_key(rundir, name));
        av_add2(&a, "--trusted-ca-file", up_path_tls_ca(rundir));
        av_add(&a, mr_strdup("--client-cert-auth"));
        av_add2(&a, "--peer-cert-file", up_path_tls_cert(rundir, name));
        av_add2(&a, "--peer-key-file", up_path_tls_key(rundir, name));
        av_add2(&a, "--peer-trusted-ca-file", up_path_tls_ca(rundir));
        av_add(&a, mr_strdup("--peer-client-cert-auth"));
    }
    av_add2(&a, "--logger", mr_strdup("zap"));
    av_add2(&a, "--log-level", mr_strdup("warn"));
    mr_buf_close(&cluster);
    return a.v;
}

char **up_wan_argv(const struct up_topology *t, const char *rundir, const char *exe)
{
    struct argv_b a = {NULL, 0, 0};

    (void)t;
    av_add(&a, mr_strdup(exe));
    av_add(&a, mr_strdup("wan"));
    av_add(&a, mr_strdup("run"));
    av_add2(&a, "--config", mr_asprintf("%s/wan.ini", rundir));
    return a.v;
}

char **up_node_argv(const struct up_topology *t, size_t i, const char *rundir, const char *exe)
{
    struct argv_b a = {NULL, 0, 0};

    av_add(&a, mr_strdup(exe));
    av_add(&a, mr_strdup("node"));
    av_add2(&a, "--config", up_path_node_ini(rundir, t->regions[i].name));
    return a.v;
}

char **up_shop_argv(const struct up_topology *t, size_t i, size_t shop, const char *rundir,
                    const char *exe)
{
    struct argv_b a = {NULL, 0, 0};

    av_add(&a, mr_strdup(exe));
    av_add(&a, mr_strdup("shop"));
    av_add2(&a, "--config", up_path_shop_ini(rundir, t->regions[i].name));
    if (t->regions[i].n_shops > 1)
        av_add2(&a, "--set", mr_asprintf("shop.instance_listen=127.0.0.1:%d",
                                         t->regions[i].shop_instance_port[shop]));
    return a.v;
}

char *up_shop_instance_url(const struct up_topology *t, size_t i, size_t shop)
{
    const struct up_region *r = &t->regions[i];

    return mr_asprintf("%s://127.0.0.1:%d", up_scheme(t),
                       r->n_shops > 1 ? r->shop_instance_port[shop] : r->shop_port);
}

void up_shop_ini(const struct up_topology *t, size_t i, const char *rundir, struct mr_buf *out)
{
    mr_buf_printf(out, "; generated by `meridian up` from %s; rewritten at every up\n[shop]\n"
                  "listen = 127.0.0.1:%d\nnode = %s://127.0.0.1:%d\nregion = %s\nlog_level = %s\n",
                  t->source, t->regions[i].shop_port, up_scheme(t), t->regions[i].node_port,
                  t->regions[i].name,
                  t->regions[i].log_level ? t->regions[i].log_level : t->log_level);
    if (t->regions[i].n_shops > 1)
        mr_buf_puts(out, "; the region's shops share <listen>; each has its own instance_listen\n"
                         "reuse_port = true\n");
    /* Local topologies are for game days: the fault-injection endpoint is
     * on, behind the cluster's tokens, the same [auth] lines as the nodes'
     * (decision 030): the game day sends the admin token of topology.json.
     * Without tokens (auth = no) it stays off: a shop refuses fault
     * injection that nobody could be refused. */
    if (t->auth) {
        mr_buf_puts(out, "[faults]\nenabled = true\n[auth]\n");
        token_line(out, "up-admin", "admin", t->auth_admin);
        token_line(out, "up-peer", "peer", t->auth_peer);
        token_line(out, "up-shop", "write", t->auth_shop);
        mr_buf_printf(out, "[shop]\nnode_token = %s\n", t->auth_shop);
    } else {
        mr_buf_puts(out, "; auth = no: no tokens, so no fault injection (decision 030)\n"
                         "[faults]\nenabled = false\n");
    }
    if (t->tls) {
        /* The region's shops share one certificate: the listener asks
         * clients (the edges, tools) for one of the run's CA, and the shop
         * shows it to its node. */
        char name[UP_REGION_NAME_MAX + 16], *ca = up_path_tls_ca(rundir);
        char *crt, *key;
        up_tls_name(t, UP_SHOP, i, name, sizeof(name));
        crt = up_path_tls_cert(rundir, name);
        key = up_path_tls_key(rundir, name);
        mr_buf_printf(out, "[tls]\nca_file = %s\ncert_file = %s\nkey_file = %s\n", ca, crt, key);
        mr_free(ca);
        mr_free(crt);
        mr_free(key);
    }
}

char **up_shop_seed_argv(const struct up_topology *t, const char *rundir, const char *exe)
{
    struct argv_b a = {NULL, 0, 0};

    av_add(&a, mr_strdup(exe));
    av_add(&a, mr_strdup("shop"));
    av_add(&a, mr_strdup("seed"));
    av_add2(&a, "--node", mr_asprintf("%s://127.0.0.1:%d", up_scheme(t), t->regions[0].node_port));
    av_add2(&a, "--dir", mr_strdup(rundir));
    return a.v;
}

/* Append one line, refusing what `meridian node` could not read back. */
static int ini_line(struct mr_buf *out, char *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ini_line(struct mr_buf *out, char *err, const char *fmt, ...)
{
    size_t before = out->len;
    va_list ap;

    va_start(ap, fmt);
    mr_buf_vprintf(out, fmt, ap);
    va_end(ap);
    if (out->len - before > MR_CFG_MAX_LINE)
        return mr_seterr(err, MR_ECONFIG,
                         "node.ini line '%.40s...' would be %zu bytes, over the node's limit of "
                         "%d (use a shorter run directory)",
                         out->data + before, out->len - before, MR_CFG_MAX_LINE);
    mr_buf_putc(out, '\n');
    return 0;
}

int up_node_ini(const struct up_topology *t, size_t i, const char *rundir, struct mr_buf *out,
                char *err)
{
    const struct up_region *r = &t->regions[i];
    struct mr_buf etcd;
    int rc = 0, has_session_wait = 0;

    /* Own region's etcd first: the node prefers the nearest member. */
    mr_buf_init(&etcd);
    mr_buf_printf(&etcd, "%s://127.0.0.1:%d", up_scheme(t), r->etcd_client_port);
    /* Other regions' members through the wan's link from this region. */
    for (size_t j = 0; j < t->n_regions; j++)
        if (j != i)
            mr_buf_printf(&etcd, ",%s://127.0.0.1:%d", up_scheme(t),
                          t->wan_client_port[i][j] ? t->wan_client_port[i][j]
                                                   : t->regions[j].etcd_client_port);

    mr_buf_printf(out, "; generated by `meridian up` from %s; rewritten at every up\n", t->source);
    rc = rc ? rc : ini_line(out, err, "[node]");
    rc = rc ? rc : ini_line(out, err, "region = %s", r->name);
    rc = rc ? rc : ini_line(out, err, "cluster = %s", t->cluster);
    rc = rc ? rc : ini_line(out, err, "data_dir = %s/%s/data", rundir, r->name);
    rc = rc ? rc : ini_line(out, err, "listen = 127.0.0.1:%d", r->node_port);
    rc = rc ? rc : ini_line(out, err, "etcd = %s", etcd.data);
    rc = rc ? rc : ini_line(out, err, "log_level = %s", r->log_level ? r->log_level : t->log_level);
    if (up_topology_has_wan(t)) {
        /* Global tables stream node to node: through the wan's link from
         * this region, not to the URL each node publishes in etcd. */
        struct mr_buf peers;
        mr_buf_init(&peers);
        for (size_t j = 0; j < t->n_regions; j++)
            if (j != i)
                mr_buf_printf(&peers, "%s%s=%s://127.0.0.1:%d", peers.len ? "," : "",
                              t->regions[j].name, up_scheme(t), t->wan_node_port[i][j]);
        rc = rc ? rc : ini_line(out, err, "\n[tables]");
        rc = rc ? rc : ini_line(out, err, "peers = %s", peers.data);
        mr_buf_close(&peers);
    }
    if (up_topology_has_wan(t) || t->n_sites > 0) {
        /* What the node's dashboard polls besides the other nodes
         * (docs/dashboard.md): the wan's links and every site's edge. */
        rc = rc ? rc : ini_line(out, err, "\n[dashboard]");
        if (up_topology_has_wan(t) && t->wan_control_port > 0)
            rc = rc ? rc : ini_line(out, err, "wan = http://127.0.0.1:%d", t->wan_control_port);
        if (t->n_sites > 0) {
            struct mr_buf edges;
            mr_buf_init(&edges);
            /* The node reads lines of MR_CFG_MAX_LINE bytes at most: edges
             * that would not fit are left out of the dashboard, rather
             * than failing the whole topology for them. */
            for (size_t s = 0; s < t->n_sites; s++) {
                char *url = up_edge_url(t, s);
                size_t before = edges.len;
                mr_buf_printf(&edges, "%s%s=%s", edges.len ? "," : "", t->sites[s].slug, url);
                if (edges.len + strlen("edges = ") > MR_CFG_MAX_LINE) {
                    edges.len = before;
                    edges.data[before] = '\0';
                }
                mr_free(url);
            }
            rc = rc ? rc : ini_line(out, err, "edges = %s", edges.data);
            mr_buf_close(&edges);
        }
    }
    if (t->auth) {
        /* The admin token (topology.json), the nodes' own (peer: table
         * streams, snapshots) and the shops' (write). */
        char h[65];
        rc = rc ? rc : ini_line(out, err, "\n[auth]");
        rc = rc ? rc : ini_line(out, err, "required = yes");
        mr_auth_hash_hex(t->auth_admin, h);
        rc = rc ? rc : ini_line(out, err, "token = up-admin admin %s", h);
        mr_auth_hash_hex(t->auth_peer, h);
        rc = rc ? rc : ini_line(out, err, "token = up-peer peer %s", h);
        mr_auth_hash_hex(t->auth_shop, h);
        rc = rc ? rc : ini_line(out, err, "token = up-shop write %s", h);
        rc = rc ? rc : ini_line(out, err, "peer_token = %s", t->auth_peer);
    }
    if (t->tls) {
        /* The listener, the other nodes (peers) and etcd: the node's own
         * certificate both ways.  SIGHUP re-reads the files. */
        char name[UP_REGION_NAME_MAX + 16], *ca = up_path_tls_ca(rundir), *crt, *key;
        up_tls_name(t, UP_NODE, i, name, sizeof(name));
        crt = up_path_tls_cert(rundir, name);
        key = up_path_tls_key(rundir, name);
        rc = rc ? rc : ini_line(out, err, "\n[tls]");
        rc = rc ? rc : ini_line(out, err, "ca_file = %s", ca);
        rc = rc ? rc : ini_line(out, err, "cert_file = %s", crt);
        rc = rc ? rc : ini_line(out, err, "key_file = %s", key);
        mr_free(ca);
        mr_free(crt);
        mr_free(key);
    }
    rc = rc ? rc : ini_line(out, err, "\n[limits]");
    for (size_t j = 0; j < t->n_limits; j++) {
        rc = rc ? rc : ini_line(out, err, "%s = %s", t->limits[j].key, t->limits[j].value);
        has_session_wait |= strcmp(t->limits[j].key, "session_wait") == 0;
    }
    if (!has_session_wait)
        rc = rc ? rc : ini_line(out, err, "session_wait = %ldms", up_session_wait_ms(t));
    mr_buf_close(&etcd);
    return rc;
}

char *up_path_log(const char *rundir, const char *region, enum up_proc_kind k)
{
    return mr_asprintf("%s/logs/%s-%s.log", rundir, region, up_kind_name(k));
}

char *up_path_shop_log(const char *rundir, const char *region, size_t shop)
{
    if (shop == 0)
        return up_path_log(rundir, region, UP_SHOP);
    return mr_asprintf("%s/logs/%s-shop.%zu.log", rundir, region, shop);
}

char *up_path_shop_ini(const char *rundir, const char *region)
{
    return mr_asprintf("%s/%s/shop.ini", rundir, region);
}

char *up_path_node_ini(const char *rundir, const char *region)
{
    return mr_asprintf("%s/%s/node.ini", rundir, region);
}
