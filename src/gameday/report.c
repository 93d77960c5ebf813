/* report.c -- a game day's measurements, verdicts and reports: report.json
 * (docs/gameday.md), report.html (inline SVG, no script), and the terminal
 * summary.
 *
 * Per fault, from the samples (every request the clients made):
 *   detect_s   from the fault to the first edge marking its region unhealthy
 *              (the edges' own transition logs, wall clock)
 *   reroute_s  from the fault until every affected site (one that the region
 *              served in the 5 s before) is served by another region again:
 *              the start of the first whole second in which all the site's
 *              requests succeeded, none from the faulted region
 *   error_rate errors / requests of every site from the fault until 5 s
 *              after it was healed
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "gameday_int.h"

#define BASELINE_MS 5000
#define AFTER_HEAL_MS 5000
#define REROUTE_WINDOW_MS 1000

static int judged(enum gd_fault_kind k)
{
    /* A region that stops answering: edges must notice and reroute.  A
     * latency spike or one cut link between regions need not move users. */
    return k == GD_KILL || k == GD_FREEZE || k == GD_PARTITION || k == GD_KILL_NODE ||
           k == GD_KILL_LEADER || k == GD_SHOP_5XX || k == GD_SHOP_HANG;
}

static double detect_s(const struct gd_outcome *o, const struct gd_applied *a)
{
    int64_t best = -1;

    for (size_t i = 0; i < o->n_sites; i++) {
        size_t k, n;
        json_t *reg, *tr;
        json_array_foreach(json_object_get(o->edge_status[i], "regions"), k, reg) {
            const char *name = json_string_value(json_object_get(reg, "name"));
            if (!name || strcmp(name, a->region) != 0)
                continue;
            json_array_foreach(json_object_get(reg, "transitions"), n, tr) {
                int64_t at = json_integer_value(json_object_get(tr, "at_ms"));
                const char *to = json_string_value(json_object_get(tr, "to"));
                if (at < a->wall_ms || !to || strcmp(to, "unhealthy") != 0)
                    continue;
                if (a->heal_wall_ms && at > a->heal_wall_ms)
                    continue;
                if (best < 0 || at - a->wall_ms < best)
                    best = at - a->wall_ms;
            }
        }
    }
    return best < 0 ? -1 : (double)best / 1000.0;
}

static int cmp_sample_t(const void *a, const void *b)
{
    const struct gd_sample *x = a, *y = b;
    return x->t_ms < y->t_ms ? -1 : x->t_ms > y->t_ms;
}

/* Reroute time of one affected site: the first moment after the fault from
 * which a whole second of the site's requests all succeeded, none of them
 * served by the faulted region.  A stray error later (a slow request on a
 * loaded machine) does not undo a reroute that happened; it counts in the
 * error rate.  -1 when no such second came before the heal. */
static double site_reroute_s(const struct gd_sample *v, size_t n, int region, int64_t t0)
{
    for (size_t i = 0; i < n; i++) {
        size_t k, seen = 0;
        int clean = 1;
        for (k = i; k < n && v[k].t_ms < v[i].t_ms + REROUTE_WINDOW_MS; k++) {
            seen++;
            if (!v[k].ok || v[k].region == region || v[k].region == -1)
                clean = 0;
        }
        /* the window must be whole: requests after it exist */
        if (clean && seen > 0 && k < n)
            return (double)(v[i].t_ms - t0) / 1000.0;
    }
    return -1;
}

/* The worst affected site's reroute time; -1 when one never rerouted. */
static double reroute_s(const struct gd_outcome *o, const struct gd_applied *a, json_t *affected)
{
    int r = -1;
    double worst = 0;
    int64_t end = a->heal_t_ms > a->t_ms ? a->heal_t_ms : o->s->duration_ms;
    struct gd_sample *v = mr_malloc(sizeof(*v) * (o->n_samples + 1));

    for (size_t i = 0; i < o->n_regions; i++)
        if (strcmp(o->regions[i], a->region) == 0)
            r = (int)i;
    for (size_t site = 0; site < o->n_sites; site++) {
        size_t served = 0, n = 0;
        double t;
        for (size_t k = 0; k < o->n_samples; k++) {
            const struct gd_sample *sm = &o->samples[k];
            if (sm->site == site && sm->ok && sm->region == r && sm->t_ms >= a->t_ms - BASELINE_MS &&
                sm->t_ms < a->t_ms)
                served++;
            if (sm->site == site && sm->t_ms >= a->t_ms && sm->t_ms < end)
                v[n++] = *sm;
        }
        if (served == 0)
            continue;
        json_array_append_new(affected, json_string(o->sites[site]));
        qsort(v, n, sizeof(*v), cmp_sample_t);
        t = site_reroute_s(v, n, r, a->t_ms);
        if (t < 0) {
            worst = -1;
            break;
        }
        if (t > worst)
            worst = t;
    }
    mr_free(v);
    return worst;
}

static const char *const action_names[A_COUNT] = {"browse", "product", "cart", "checkout", "orders"};

/* The first failed requests, for diagnosis. */
static json_t *failed_requests(const struct gd_outcome *o)
{
    json_t *list = json_array();

    for (size_t k = 0; k < o->n_samples && json_array_size(list) < 100; k++) {
        const struct gd_sample *sm = &o->samples[k];
        if (sm->ok)
            continue;
        json_array_append_new(list, json_pack("{s:f,s:s,s:s,s:i,s:s,s:f}", "t_s", (double)sm->t_ms / 1000.0,
                                              "site", o->sites[sm->site], "action", action_names[sm->action],
                                              "status", sm->status, "region",
                                              sm->region >= 0 ? o->regions[sm->region] : "",
                                              "latency_ms", (double)sm->latency_ms));
    }
    return list;
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(round(v * 1000) / 1000);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static json_t *per_second(const struct gd_outcome *o)
{
    int64_t seconds = o->s->duration_ms / 1000 + 1;
    json_t *all = json_object();
    float *lat = mr_malloc(sizeof(float) * (o->n_samples + 1));

    for (size_t site = 0; site < o->n_sites; site++) {
        json_t *series = json_array();
        for (int64_t sec = 0; sec < seconds; sec++) {
            size_t n = 0, errors = 0, nl = 0, cached = 0;
            int by[GD_MAX_REGIONS] = {0};
            json_t *served = json_object();
            for (size_t k = 0; k < o->n_samples; k++) {
                const struct gd_sample *sm = &o->samples[k];
                if (sm->site != site || sm->t_ms / 1000 != sec)
                    continue;
                n++;
                errors += !sm->ok;
                if (sm->ok)
                    lat[nl++] = sm->latency_ms;
                if (sm->ok && sm->region >= 0)
                    by[sm->region]++;
                cached += sm->ok && sm->region == GD_REGION_CACHE;
            }
            qsort(lat, nl, sizeof(float), cmp_float);
            for (size_t r = 0; r < o->n_regions; r++)
                if (by[r])
                    json_object_set_new(served, o->regions[r], json_integer(by[r]));
            if (cached)
                json_object_set_new(served, GD_EDGE_CACHE, json_integer((json_int_t)cached));
            json_array_append_new(series, json_pack("{s:I,s:I,s:I,s:o,s:o,s:o,s:o}", "t", (json_int_t)sec,
                                                    "requests", (json_int_t)n, "errors", (json_int_t)errors,
                                                    "p50_ms", nl ? json_real(lat[nl / 2]) : json_null(),
                                                    "p99_ms", nl ? json_real(lat[(nl * 99) / 100]) : json_null(),
                                                    "max_ms", nl ? json_real(lat[nl - 1]) : json_null(),
                                                    "served_by", served));
        }
        json_object_set_new(all, o->sites[site], series);
    }
    mr_free(lat);
    return all;
}

json_t *gd__report_json(const struct gd_outcome *o, int *passed)
{
    const struct gd_targets *tg = &o->s->targets;
    json_t *faults = json_array(), *checks = json_object(), *verdicts = json_array();
    uint64_t requests = 0, errors = 0;
    int ok = 1;

    for (size_t k = 0; k < o->n_samples; k++) {
        requests++;
        errors += !o->samples[k].ok;
    }
    for (size_t i = 0; i < o->n_applied; i++) {
        const struct gd_applied *a = &o->applied[i];
        json_t *affected = json_array(), *f;
        int64_t end = (a->heal_t_ms > a->t_ms ? a->heal_t_ms : o->s->duration_ms) + AFTER_HEAL_MS;
        uint64_t n = 0, e = 0;
        double det = detect_s(o, a), rer = reroute_s(o, a, affected), rate;
        int judge = judged(a->fault->kind), f_ok = a->rc == 0 && a->heal_rc == 0;

        for (size_t k = 0; k < o->n_samples; k++)
            if (o->samples[k].t_ms >= a->t_ms && o->samples[k].t_ms < end) {
                n++;
                e += !o->samples[k].ok;
            }
        rate = n ? (double)e / (double)n : 0;
        if (judge) {
            if (json_array_size(affected) > 0 && (det < 0 || det > tg->detect_s))
                f_ok = 0;
            if (rer < 0 || rer > tg->reroute_s)
                f_ok = 0;
        }
        if (rate > tg->error_rate)
            f_ok = 0;
        ok &= f_ok;
        f = json_pack("{s:s,s:s,s:s,s:i,s:f,s:o,s:o,s:o,s:f,s:I,s:I,s:o,s:o,s:b,s:s}", "name", a->fault->name,
                      "kind", gd_fault_kind_name(a->fault->kind), "region", a->region, "round", a->round,
                      "at_s", (double)a->t_ms / 1000.0,
                      "healed_at_s", a->heal_t_ms > a->t_ms ? json_real((double)a->heal_t_ms / 1000.0) : json_null(),
                      "detect_s", judge ? num_or_null(det) : json_null(),
                      "reroute_s", judge ? num_or_null(rer) : json_null(), "error_rate", rate,
                      "errors", (json_int_t)e, "requests", (json_int_t)n,
                      "catch_up_s", a->catch_up_ms >= 0 ? json_real((double)a->catch_up_ms / 1000.0) : json_null(),
                      "affected_sites", affected, "passed", f_ok, "error", a->error);
        json_array_append_new(faults, f);
    }
    {
        static const char *const names[] = {"lost_orders", "duplicate_orders", "oversold", "carts_unconverged",
                                            "ryw_violations"};
        const int64_t limits[] = {tg->lost_orders, tg->duplicate_orders, tg->oversold, tg->carts_unconverged,
                                  tg->ryw_violations};
        for (size_t i = 0; i < 5; i++) {
            json_int_t v = json_integer_value(json_object_get(o->checks, names[i]));
            int c_ok = v >= 0 && v <= limits[i];
            ok &= c_ok;
            json_object_set_new(checks, names[i], json_integer(v));
            json_array_append_new(verdicts, json_pack("{s:s,s:I,s:I,s:b}", "check", names[i], "value", v,
                                                      "target", (json_int_t)limits[i], "passed", c_ok));
        }
        json_object_set(checks, "failures", json_object_get(o->checks, "failures"));
    }
    if (o->n_samples == 0)
        ok = 0;
    *passed = ok;
    return json_pack("{s:i,s:s,s:s,s:I,s:{s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:o,s:o,s:o,s:o,s:b,s:o}",
                     "version", 1, "scenario", o->s->name, "description",
                     o->s->description ? o->s->description : "", "started_at_ms", (json_int_t)o->started_wall_ms,
                     "targets", "detect_s", tg->detect_s, "reroute_s", tg->reroute_s, "error_rate", tg->error_rate,
                     "lost_orders", (json_int_t)tg->lost_orders, "duplicate_orders",
                     (json_int_t)tg->duplicate_orders, "oversold", (json_int_t)tg->oversold,
                     "carts_unconverged", (json_int_t)tg->carts_unconverged, "ryw_violations",
                     (json_int_t)tg->ryw_violations,
                     "requests", (json_int_t)requests, "errors", (json_int_t)errors, "faults", faults, "checks",
                     checks, "verdicts", verdicts, "per_second", per_second(o), "passed", ok,
                     "failed_requests", failed_requests(o));
}

/* ---- report.html ---- */

static void html_esc(struct mr_buf *b, const char *s)
{
    for (; s && *s; s++)
        switch (*s) {
        case '<': mr_buf_puts(b, "&lt;"); break;
        case '>': mr_buf_puts(b, "&gt;"); break;
        case '&': mr_buf_puts(b, "&amp;"); break;
        case '"': mr_buf_puts(b, "&quot;"); break;
        default: mr_buf_putc(b, *s);
        }
}

static const char *const colors[] = {"#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                     "#bcbd22", "#7f7f7f"};

/* One site's chart: requests and errors per second, p99 latency, and a strip
 * of which region served each second; faults shaded. */
static void site_chart(struct mr_buf *b, const json_t *report, const char *site, const json_t *series)
{
    const double W = 900, H = 160, X0 = 50, Y0 = 10, PH = 110;
    size_t n = json_array_size(series), i, k;
    double max_req = 1, max_p99 = 1, dx;
    json_t *p, *f, *regions = json_object();
    const char *name;

    json_array_foreach(series, i, p) {
        double q = (double)json_integer_value(json_object_get(p, "requests"));
        double l = json_real_value(json_object_get(p, "p99_ms"));
        json_t *v;
        if (q > max_req)
            max_req = q;
        if (l > max_p99)
            max_p99 = l;
        json_object_foreach(json_object_get(p, "served_by"), name, v)
            if (!json_object_get(regions, name))
                json_object_set_new(regions, name, json_integer((json_int_t)json_object_size(regions)));
    }
    dx = n > 1 ? (W - X0 - 10) / (double)(n - 1) : 1;
    mr_buf_puts(b, "<h3>");
    html_esc(b, site);
    mr_buf_printf(b, "</h3>\n<svg width=\"%.0f\" height=\"%.0f\" role=\"img\">\n", W, H + 30);
    json_array_foreach(json_object_get(report, "faults"), i, f) {
        double a = json_real_value(json_object_get(f, "at_s"));
        double h = json_is_real(json_object_get(f, "healed_at_s")) ? json_real_value(json_object_get(f, "healed_at_s"))
                                                                    : (double)(n - 1);
        mr_buf_printf(b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"#f4cccc\"/>", X0 + a * dx,
                      Y0, (h - a) * dx, PH);
        mr_buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\">", X0 + a * dx + 2, Y0 + 10);
        html_esc(b, json_string_value(json_object_get(f, "name")));
        mr_buf_puts(b, "</text>");
    }
    mr_buf_printf(b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#999\"/>", X0, Y0 + PH, W - 10,
                  Y0 + PH);
    mr_buf_printf(b, "<text x=\"0\" y=\"%.0f\" font-size=\"10\">%.0f/s</text>", Y0 + 8, max_req);
    for (int line = 0; line < 3; line++) {
        const char *key = line == 0 ? "requests" : line == 1 ? "errors" : "p99_ms";
        const char *color = line == 0 ? "#1f77b4" : line == 1 ? "#d62728" : "#ff7f0e";
        double scale = line == 2 ? max_p99 : max_req;
        mr_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
        json_array_foreach(series, i, p) {
            json_t *v = json_object_get(p, key);
            double y = json_is_number(v) ? json_number_value(v) : 0;
            mr_buf_printf(b, "%.1f,%.1f ", X0 + (double)i * dx, Y0 + PH - y / scale * PH);
        }
        mr_buf_puts(b, "\"/>\n");
    }
    /* Which region served each second (the most requests). */
    json_array_foreach(series, i, p) {
        json_t *v;
        const char *best = NULL;
        json_int_t most = 0;
        json_object_foreach(json_object_get(p, "served_by"), name, v)
            if (json_integer_value(v) > most) {
                most = json_integer_value(v);
                best = name;
            }
        if (best) {
            k = (size_t)json_integer_value(json_object_get(regions, best));
            mr_buf_printf(b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"10\" fill=\"%s\"/>",
                          X0 + (double)i * dx, Y0 + PH + 6, dx + 0.5, colors[k % 8]);
        }
    }
    mr_buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\">served by:", X0, H + 24);
    json_object_foreach(regions, name, p) {
        mr_buf_printf(b, " <tspan fill=\"%s\">&#9632; ", colors[json_integer_value(p) % 8]);
        html_esc(b, name);
        mr_buf_puts(b, "</tspan>");
    }
    mr_buf_printf(b, "   <tspan fill=\"#1f77b4\">requests/s</tspan> <tspan fill=\"#d62728\">errors/s</tspan> "
                  "<tspan fill=\"#ff7f0e\">p99 latency (max %.0f ms)</tspan></text></svg>\n", max_p99);
    json_decref(regions);
}

static void fmt_opt(char *buf, size_t n, const json_t *v, const char *unit)
{
    if (json_is_number(v))
        snprintf(buf, n, "%.3f%s", json_number_value(v), unit);
    else
        snprintf(buf, n, "n/a");
}

static char *html_report(const json_t *report)
{
    struct mr_buf b;
    json_t *f, *v, *series;
    size_t i;
    const char *site;

    mr_buf_init(&b);
    mr_buf_puts(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>Game day ");
    html_esc(&b, json_string_value(json_object_get(report, "scenario")));
    mr_buf_puts(&b, "</title><style>body{font:14px sans-serif;margin:2em;max-width:960px}"
                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
                    ".pass{color:#2ca02c;font-weight:bold}.fail{color:#d62728;font-weight:bold}</style></head><body>");
    mr_buf_puts(&b, "<h1>Game day: ");
    html_esc(&b, json_string_value(json_object_get(report, "scenario")));
    mr_buf_printf(&b, " <span class=\"%s\">%s</span></h1><p>",
                  json_is_true(json_object_get(report, "passed")) ? "pass" : "fail",
                  json_is_true(json_object_get(report, "passed")) ? "PASSED" : "FAILED");
    html_esc(&b, json_string_value(json_object_get(report, "description")));
    mr_buf_printf(&b, "</p><p>%lld requests, %lld failed.</p>",
                  (long long)json_integer_value(json_object_get(report, "requests")),
                  (long long)json_integer_value(json_object_get(report, "errors")));
    mr_buf_puts(&b, "<h2>Faults</h2><table><tr><th>fault</th><th>kind</th><th>region</th><th>at</th><th>detect</th>"
                    "<th>reroute</th><th>errors</th><th>error rate</th><th>catch-up</th><th>verdict</th></tr>");
    json_array_foreach(json_object_get(report, "faults"), i, f) {
        char d[32], r[32], c[32];
        fmt_opt(d, sizeof(d), json_object_get(f, "detect_s"), " s");
        fmt_opt(r, sizeof(r), json_object_get(f, "reroute_s"), " s");
        fmt_opt(c, sizeof(c), json_object_get(f, "catch_up_s"), " s");
        mr_buf_puts(&b, "<tr><td>");
        html_esc(&b, json_string_value(json_object_get(f, "name")));
        mr_buf_puts(&b, "</td><td>");
        html_esc(&b, json_string_value(json_object_get(f, "kind")));
        mr_buf_puts(&b, "</td><td>");
        html_esc(&b, json_string_value(json_object_get(f, "region")));
        mr_buf_printf(&b, "</td><td>%.1f s</td><td>%s</td><td>%s</td><td>%lld / %lld</td><td>%.4f%%</td><td>%s</td>"
                      "<td class=\"%s\">%s</td></tr>", json_real_value(json_object_get(f, "at_s")), d, r,
                      (long long)json_integer_value(json_object_get(f, "errors")),
                      (long long)json_integer_value(json_object_get(f, "requests")),
                      100 * json_real_value(json_object_get(f, "error_rate")), c,
                      json_is_true(json_object_get(f, "passed")) ? "pass" : "fail",
                      json_is_true(json_object_get(f, "passed")) ? "pass" : "FAIL");
    }
    mr_buf_puts(&b, "</table><h2>Checks</h2><table><tr><th>check</th><th>value</th><th>target</th><th>verdict</th></tr>");
    json_array_foreach(json_object_get(report, "verdicts"), i, v) {
        mr_buf_puts(&b, "<tr><td>");
        html_esc(&b, json_string_value(json_object_get(v, "check")));
        mr_buf_printf(&b, "</td><td>%lld</td><td>&le; %lld</td><td class=\"%s\">%s</td></tr>",
                      (long long)json_integer_value(json_object_get(v, "value")),
                      (long long)json_integer_value(json_object_get(v, "target")),
                      json_is_true(json_object_get(v, "passed")) ? "pass" : "fail",
                      json_is_true(json_object_get(v, "passed")) ? "pass" : "FAIL");
    }
    mr_buf_puts(&b, "</table><ul>");
    json_array_foreach(json_object_get(json_object_get(report, "checks"), "failures"), i, v) {
        mr_buf_puts(&b, "<li>");
        html_esc(&b, json_string_value(v));
        mr_buf_puts(&b, "</li>");
    }
    mr_buf_puts(&b, "</ul><h2>Traffic per client site</h2>");
    json_object_foreach(json_object_get(report, "per_second"), site, series)
        site_chart(&b, report, site, series);
    mr_buf_puts(&b, "</body></html>\n");
    return mr_buf_steal(&b, NULL);
}

static int write_file(const char *path, const char *text, char *err)
{
    FILE *f = fopen(path, "we");

    if (f == NULL)
        return mr_seterr(err, MR_EIO, "%s: %s", path, strerror(errno));
    if (fputs(text, f) == EOF || fclose(f) != 0)
        return mr_seterr(err, MR_EIO, "%s: write failed", path);
    return 0;
}

int gd__write_reports(const json_t *report, const char *dir, char *err)
{
    char path[1200];
    char *text;
    int rc;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mr_seterr(err, MR_EIO, "report directory %s: %s", dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/report.json", dir);
    if (json_dump_file(report, path, JSON_INDENT(1)) != 0)
        return mr_seterr(err, MR_EIO, "%s: write failed", path);
    snprintf(path, sizeof(path), "%s/report.html", dir);
    text = html_report(report);
    rc = write_file(path, text, err);
    mr_free(text);
    return rc;
}

void gd__print_summary(const json_t *report)
{
    json_t *f, *v;
    size_t i;

    printf("\n%-22s %-11s %-16s %8s %8s %9s %10s %9s  %s\n", "fault", "kind", "region", "at", "detect", "reroute",
           "errors", "catch-up", "verdict");
    json_array_foreach(json_object_get(report, "faults"), i, f) {
        char d[32], r[32], c[32], e[48];
        fmt_opt(d, sizeof(d), json_object_get(f, "detect_s"), "s");
        fmt_opt(r, sizeof(r), json_object_get(f, "reroute_s"), "s");
        fmt_opt(c, sizeof(c), json_object_get(f, "catch_up_s"), "s");
        snprintf(e, sizeof(e), "%lld/%lld", (long long)json_integer_value(json_object_get(f, "errors")),
                 (long long)json_integer_value(json_object_get(f, "requests")));
        printf("%-22s %-11s %-16s %7.1fs %8s %9s %10s %9s  %s\n", json_string_value(json_object_get(f, "name")),
               json_string_value(json_object_get(f, "kind")), json_string_value(json_object_get(f, "region")),
               json_real_value(json_object_get(f, "at_s")), d, r, e, c,
               json_is_true(json_object_get(f, "passed")) ? "pass" : "FAIL");
        if (json_string_value(json_object_get(f, "error"))[0])
            printf("    %s\n", json_string_value(json_object_get(f, "error")));
    }
    printf("\n%-20s %8s %8s  %s\n", "check", "value", "target", "verdict");
    json_array_foreach(json_object_get(report, "verdicts"), i, v)
        printf("%-20s %8lld %8lld  %s\n", json_string_value(json_object_get(v, "check")),
               (long long)json_integer_value(json_object_get(v, "value")),
               (long long)json_integer_value(json_object_get(v, "target")),
               json_is_true(json_object_get(v, "passed")) ? "pass" : "FAIL");
    json_array_foreach(json_object_get(json_object_get(report, "checks"), "failures"), i, v)
        printf("  - %s\n", json_string_value(v));
    printf("\n%lld requests, %lld failed: %s\n", (long long)json_integer_value(json_object_get(report, "requests")),
           (long long)json_integer_value(json_object_get(report, "errors")),
           json_is_true(json_object_get(report, "passed")) ? "PASSED" : "FAILED");
}
