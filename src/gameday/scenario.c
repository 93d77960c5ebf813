/* scenario.c -- game day scenario files (INI; docs/gameday.md).
 *
 *   [scenario]  name, description, rate, shoppers, warmup, duration, settle,
 *               browse, product, cart, checkout, orders (the mix, in parts)
 *   [targets]   detect, reroute, error_rate, lost_orders, duplicate_orders,
 *               oversold, carts_unconverged, ryw_violations
 *   [fault NAME] kind, region (or link), at, duration, latency, repeat, period,
 *               status and paths (shop_5xx, shop_hang)
 */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "gameday.h"

static const char *const kind_names[GD_FAULT_KIND_COUNT] = {
    "kill", "freeze", "partition", "link_cut", "latency", "kill_node", "kill_leader", "shop_5xx", "shop_hang",
};

const char *gd_fault_kind_name(enum gd_fault_kind k)
{
    return (unsigned)k < GD_FAULT_KIND_COUNT ? kind_names[k] : "?";
}

struct ctx {
    struct gd_scenario *s;
    const char *source;
    char *err;
    int rc;
    int line;
    struct gd_fault *fault;  /* the [fault] section being read */
    const char *p;           /* the reader's position in the text */
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[MR_ERRMSG_LEN];
    va_list ap;

    if (c->rc)
        return 0;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->line > 0)
        c->rc = mr_seterr(c->err, MR_ECONFIG, "%s:%d: %s", c->source, c->line, msg);
    else
        c->rc = mr_seterr(c->err, MR_ECONFIG, "%s: %s", c->source, msg);
    return 0;
}

static int duration(struct ctx *c, const char *key, const char *v, int64_t *out)
{
    if (mr_parse_duration_ms(v, out) != 0 || *out < 0)
        return fail(c, "%s = '%s': expected a duration such as 500ms, 20s or 2m", key, v);
    return 1;
}

static int number(struct ctx *c, const char *key, const char *v, double min, double max, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(v, &end);
    if (errno || end == v || *end || *out < min || *out > max)
        return fail(c, "%s = '%s': expected a number from %g to %g", key, v, min, max);
    return 1;
}

static int count(struct ctx *c, const char *key, const char *v, int64_t max, int64_t *out)
{
    if (mr_parse_i64(v, 0, max, out) != 0)
        return fail(c, "%s = '%s': expected a whole number from 0 to %lld", key, v, (long long)max);
    return 1;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > GD_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.' || *s == '>'))
            return 0;
    return 1;
}

static int scenario_key(struct ctx *c, const char *k, const char *v)
{
    struct gd_scenario *s = c->s;
    int64_t i;
    double d;

    if (!strcmp(k, "name")) {
        if (!name_ok(v))
            return fail(c, "name = '%s': expected 1 to %d of A-Z a-z 0-9 - _ .", v, GD_NAME_MAX);
        snprintf(s->name, sizeof(s->name), "%s", v);
    } else if (!strcmp(k, "description")) {
        mr_free(s->description);
        s->description = mr_strdup(v);
    } else if (!strcmp(k, "rate")) {
        if (number(c, k, v, 0.1, 10000, &d))
            s->rate = d;
    } else if (!strcmp(k, "shoppers")) {
        if (count(c, k, v, 10000, &i)) {
            if (i < 1)
                return fail(c, "shoppers = %s: at least 1", v);
            s->shoppers = (int)i;
        }
    } else if (!strcmp(k, "warmup")) {
        duration(c, k, v, &s->warmup_ms);
    } else if (!strcmp(k, "duration")) {
        duration(c, k, v, &s->duration_ms);
    } else if (!strcmp(k, "settle")) {
        duration(c, k, v, &s->settle_ms);
    } else if (!strcmp(k, "browse") || !strcmp(k, "product") || !strcmp(k, "cart") ||
               !strcmp(k, "checkout") || !strcmp(k, "orders")) {
        double *dst = !strcmp(k, "browse")   ? &s->mix_browse
                      : !strcmp(k, "product") ? &s->mix_product
                      : !strcmp(k, "cart")    ? &s->mix_cart
                      : !strcmp(k, "checkout") ? &s->mix_checkout
                                               : &s->mix_orders;
        if (number(c, k, v, 0, 1000, &d))
            *dst = d;
    } else {
        return fail(c, "unknown key '%s' in [scenario] (expected name, description, rate, shoppers, "
                    "warmup, duration, settle, browse, product, cart, checkout, orders)", k);
    }
    return 1;
}

static int targets_key(struct ctx *c, const char *k, const char *v)
{
    struct gd_targets *t = &c->s->targets;
    int64_t ms, n;
    double d;
    int64_t *counts[] = {&t->lost_orders, &t->duplicate_orders, &t->oversold,
                         &t->carts_unconverged, &t->ryw_violations};
    static const char *const count_keys[] = {"lost_orders", "duplicate_orders", "oversold",
                                              "carts_unconverged", "ryw_violations"};

    if (!strcmp(k, "detect") || !strcmp(k, "reroute")) {
        if (duration(c, k, v, &ms))
            *(k[0] == 'd' ? &t->detect_s : &t->reroute_s) = (double)ms / 1000.0;
        return 1;
    }
    if (!strcmp(k, "error_rate")) {
        if (number(c, k, v, 0, 1, &d))
            t->error_rate = d;
        return 1;
    }
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (!strcmp(k, count_keys[i])) {
            if (count(c, k, v, INT64_MAX / 2, &n))
                *counts[i] = n;
            return 1;
        }
    return fail(c, "unknown key '%s' in [targets] (expected detect, reroute, error_rate, lost_orders, "
                "duplicate_orders, oversold, carts_unconverged, ryw_violations)", k);
}

/* What the shop's /admin/faults accepts as "paths" (src/shop/faults.c):
 * prefixes starting with '/', comma-separated, at most 8 of 63 bytes. */
static int paths_ok(const char *v)
{
    size_t n = 0;

    if (strlen(v) >= sizeof(((struct gd_fault *)0)->paths))
        return 0;
    for (const char *p = v;; n++) {
        size_t len = strcspn(p, ",");
        if (p[0] != '/' || len > 63 || memchr(p, ' ', len) || memchr(p, '"', len) || memchr(p, '\\', len))
            return 0;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    return n < 8;
}

static int fault_key(struct ctx *c, const char *k, const char *v)
{
    struct gd_fault *f = c->fault;
    int64_t n;

    if (!strcmp(k, "kind")) {
        for (int i = 0; i < GD_FAULT_KIND_COUNT; i++)
            if (!strcmp(v, kind_names[i])) {
                f->kind = (enum gd_fault_kind)i;
                return 1;
            }
        return fail(c, "kind = '%s': expected kill, freeze, partition, link_cut, latency, kill_node, "
                    "kill_leader, shop_5xx or shop_hang", v);
    }
    if (!strcmp(k, "region") || !strcmp(k, "link")) {
        if (!name_ok(v))
            return fail(c, "%s = '%s': not a region or link name", k, v);
        snprintf(f->region, sizeof(f->region), "%s", v);
    } else if (!strcmp(k, "at")) {
        duration(c, k, v, &f->at_ms);
    } else if (!strcmp(k, "duration")) {
        duration(c, k, v, &f->duration_ms);
    } else if (!strcmp(k, "latency")) {
        duration(c, k, v, &f->latency_ms);
    } else if (!strcmp(k, "period")) {
        duration(c, k, v, &f->period_ms);
    } else if (!strcmp(k, "status")) {
        if (count(c, k, v, 599, &n)) {
            if (n < 500)
                return fail(c, "status = %s: expected an HTTP status from 500 to 599", v);
            f->status = (int)n;
        }
    } else if (!strcmp(k, "paths")) {
        if (!paths_ok(v))
            return fail(c, "paths = '%s': expected 1 to %d comma-separated path prefixes /..., no spaces, "
                        "at most %zu characters", v, 8, sizeof(f->paths) - 1);
        snprintf(f->paths, sizeof(f->paths), "%s", v);
    } else if (!strcmp(k, "repeat")) {
        if (count(c, k, v, 100, &n)) {
            if (n < 1)
                return fail(c, "repeat = %s: at least 1", v);
            f->repeat = (int)n;
        }
    } else {
        return fail(c, "unknown key '%s' in [fault %s] (expected kind, region, link, at, duration, "
                    "latency, repeat, period, status, paths)", k, f->name);
    }
    return 1;
}

/* A section header, seen by the reader (Debian's inih calls the handler
 * for keys only, and without line numbers: the reader counts lines). */
static void new_section(struct ctx *c, const char *line)
{
    char sec[128];
    const char *s = line, *end, *name;
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '[' || (end = strchr(s, ']')) == NULL)
        return; /* a key, a comment, or a syntax error inih reports */
    n = (size_t)(end - s - 1);
    if (n >= sizeof(sec)) {
        fail(c, "section name too long");
        return;
    }
    memcpy(sec, s + 1, n);
    sec[n] = '\0';
    c->fault = NULL;
    if (!strcmp(sec, "scenario") || !strcmp(sec, "targets"))
        return;
    if (strncmp(sec, "fault ", 6) != 0) {
        fail(c, "unknown section [%s] (expected [scenario], [targets], [fault NAME])", sec);
        return;
    }
    name = sec + 6;
    if (!name_ok(name)) {
        fail(c, "[%s]: expected a fault name of 1 to %d of A-Z a-z 0-9 - _ .", sec, GD_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < c->s->n_faults; i++)
        if (!strcmp(c->s->faults[i].name, name)) {
            fail(c, "[fault %s] is declared twice", name);
            return;
        }
    if (c->s->n_faults == GD_MAX_FAULTS) {
        fail(c, "more than %d faults", GD_MAX_FAULTS);
        return;
    }
    c->fault = &c->s->faults[c->s->n_faults++];
    memset(c->fault, 0, sizeof(*c->fault));
    memcpy(c->fault->name, name, strlen(name) + 1); /* name_ok: at most GD_NAME_MAX */
    c->fault->kind = GD_FAULT_KIND_COUNT;
    c->fault->repeat = 1;
}

static char *reader(char *str, int num, void *stream)
{
    struct ctx *c = stream;
    const char *nl;
    size_t len;

    if (c->rc != 0 || *c->p == '\0')
        return NULL;
    nl = strchr(c->p, '\n');
    len = nl ? (size_t)(nl - c->p) + 1 : strlen(c->p);
    c->line++;
    if (len > (size_t)num - 1) {
        fail(c, "line longer than %d bytes", num - 2);
        return NULL;
    }
    memcpy(str, c->p, len);
    str[len] = '\0';
    c->p += len;
    new_section(c, str);
    return c->rc == 0 ? str : NULL;
}

static int on_entry(void *data, const char *section, const char *key, const char *value)
{
    struct ctx *c = data;

    if (c->rc)
        return 0;
    if (!strcmp(section, "scenario"))
        return scenario_key(c, key, value);
    if (!strcmp(section, "targets"))
        return targets_key(c, key, value);
    if (c->fault == NULL)
        return fail(c, "key '%s' outside any section", key);
    return fault_key(c, key, value);
}

static void defaults(struct gd_scenario *s)
{
    snprintf(s->name, sizeof(s->name), "unnamed");
    s->rate = 50;
    s->shoppers = 20;
    s->warmup_ms = 5000;
    s->duration_ms = 60000;
    s->settle_ms = 30000;
    s->mix_browse = 40;
    s->mix_product = 20;
    s->mix_cart = 20;
    s->mix_checkout = 10;
    s->mix_orders = 10;
    /* Meridian's own targets (DESIGN.md): an order of magnitude under the seed's. */
    s->targets.detect_s = 1;
    s->targets.reroute_s = 2;
    s->targets.error_rate = 0.0001;
}

/* What a section cannot check key by key. */
static int check_whole(struct ctx *c)
{
    struct gd_scenario *s = c->s;
    double mix = s->mix_browse + s->mix_product + s->mix_cart + s->mix_checkout + s->mix_orders;

    c->line = 0;
    if (mix <= 0)
        return fail(c, "[scenario]: the mix (browse, product, cart, checkout, orders) is all zero");
    for (size_t i = 0; i < s->n_faults; i++) {
        struct gd_fault *f = &s->faults[i];
        if (f->kind == GD_FAULT_KIND_COUNT)
            return fail(c, "[fault %s]: kind is required", f->name);
        if (f->kind != GD_KILL_LEADER && !f->region[0])
            return fail(c, "[fault %s]: %s is required", f->name,
                        f->kind == GD_LINK_CUT ? "link" : "region");
        if (f->kind == GD_LINK_CUT && !strstr(f->region, "->"))
            return fail(c, "[fault %s]: link '%s' is not FROM->TO", f->name, f->region);
        if (f->kind == GD_LATENCY && f->latency_ms <= 0)
            return fail(c, "[fault %s]: kind latency needs latency = DURATION", f->name);
        if (f->status && f->kind != GD_SHOP_5XX)
            return fail(c, "[fault %s]: status goes with kind shop_5xx only", f->name);
        if (f->paths[0] && f->kind != GD_SHOP_5XX && f->kind != GD_SHOP_HANG)
            return fail(c, "[fault %s]: paths goes with kinds shop_5xx and shop_hang only", f->name);
        if (f->kind == GD_SHOP_5XX && !f->status)
            f->status = 503;
        if ((f->kind == GD_SHOP_5XX || f->kind == GD_SHOP_HANG) && !f->paths[0])
            snprintf(f->paths, sizeof(f->paths), "/");
        if (f->duration_ms <= 0)
            return fail(c, "[fault %s]: duration is required (the fault is healed after it)", f->name);
        if (f->repeat > 1 && f->period_ms <= f->duration_ms)
            return fail(c, "[fault %s]: period (%lld ms) must be longer than duration (%lld ms)",
                        f->name, (long long)f->period_ms, (long long)f->duration_ms);
        if (f->at_ms + (f->repeat - 1) * f->period_ms + f->duration_ms > s->duration_ms)
            return fail(c, "[fault %s]: ends after the traffic does (at + duration past %lld ms)",
                        f->name, (long long)s->duration_ms);
    }
    return 1;
}

int gd_scenario_parse(const char *text, const char *source, struct gd_scenario **out, char *err)
{
    struct ctx c = {0};
    int line;

    c.s = mr_calloc(1, sizeof(*c.s));
    c.source = source;
    c.err = err;
    c.p = text;
    defaults(c.s);
    line = ini_parse_stream(reader, &c, on_entry, &c);
    if (line > 0 && c.rc == 0) {
        c.line = line;
        fail(&c, "syntax error (expected [section] or key = value)");
    }
    if (c.rc == 0)
        check_whole(&c);
    if (c.rc != 0) {
        gd_scenario_free(c.s);
        return c.rc;
    }
    *out = c.s;
    return 0;
}

int gd_scenario_load(const char *path, struct gd_scenario **out, char *err)
{
    FILE *f = fopen(path, "re");
    char *text;
    long n;
    int rc;

    if (f == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 1 << 20 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return mr_seterr(err, MR_ECONFIG, "%s: not a readable file of at most 1 MiB", path);
    }
    text = mr_malloc((size_t)n + 1);
    if (fread(text, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        mr_free(text);
        return mr_seterr(err, MR_EIO, "%s: read failed", path);
    }
    fclose(f);
    text[n] = '\0';
    rc = gd_scenario_parse(text, path, out, err);
    mr_free(text);
    return rc;
}

void gd_scenario_free(struct gd_scenario *s)
{
    if (s == NULL)
        return;
    mr_free(s->description);
    mr_free(s);
}
