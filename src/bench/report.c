/* report.c -- medians, table, targets and JSON of `meridian bench` (see
 * report.h).  JSON is written with jansson. */
#include "report.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../common/err.h"

/* The targets of the issue.  "beats" compares the figure's median rate with
 * the PostgreSQL figure's median rate measured in the same invocation. */
enum target_kind { TARGET_RATE_GE, TARGET_P99_LT, TARGET_BEATS };

struct target {
    const char *name;
    const char *text;
    enum sqlbench_fig fig;
    enum target_kind kind;
    double value;
    enum sqlbench_fig other;   /* TARGET_BEATS: the PostgreSQL figure */
};

static const struct target targets[] = {
    {"write_64_rate", "single-row writes/s at 64 clients >= 15,000", SQLBENCH_WRITE_64, TARGET_RATE_GE, 15000, 0},
    {"write_64_beats_pg", "single-row writes/s at 64 clients > PostgreSQL", SQLBENCH_WRITE_64, TARGET_BEATS, 0,
     SQLBENCH_PG_UPDATE},
    {"order_64_rate", "place-order/s at 64 clients >= 8,000", SQLBENCH_ORDER_64, TARGET_RATE_GE, 8000, 0},
    {"order_64_beats_pg", "place-order/s at 64 clients > PostgreSQL", SQLBENCH_ORDER_64, TARGET_BEATS, 0,
     SQLBENCH_PG_ORDER},
    {"read_64_rate", "local point reads/s at 64 clients >= 50,000", SQLBENCH_READ_64, TARGET_RATE_GE, 50000, 0},
    {"read_64_p99", "local point read p99 < 2 ms", SQLBENCH_READ_64, TARGET_P99_LT, 2, 0},
};

/* The two transactions both systems run: Meridian figure, PostgreSQL figure. */
static const enum sqlbench_fig shared[][2] = {
    {SQLBENCH_WRITE_64, SQLBENCH_PG_UPDATE},
    {SQLBENCH_ORDER_64, SQLBENCH_PG_ORDER},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double report_median_of(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median of the non-negative values only (negative: unknown). */
static double median_known(double *v, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (v[i] >= 0)
            v[k++] = v[i];
    return k ? report_median_of(v, k) : -1;
}

void report_median(const struct report *r, enum sqlbench_fig f, struct report_median *out)
{
    double rate[REPORT_MAX_RUNS], p50[REPORT_MAX_RUNS], p99[REPORT_MAX_RUNS];
    double cn[REPORT_MAX_RUNS], ce[REPORT_MAX_RUNS], cg[REPORT_MAX_RUNS];
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < r->set.runs && i < REPORT_MAX_RUNS; i++) {
        const struct sqlbench_sample *s = &r->s[f][i];
        if (!s->measured)
            continue;
        rate[n] = s->rate;
        p50[n] = s->p50_ms;
        p99[n] = s->p99_ms;
        cn[n] = s->cpu_nodes;
        ce[n] = s->cpu_etcd;
        cg[n] = s->cpu_gen;
        n++;
    }
    out->n = n;
    out->rate = report_median_of(rate, n);
    out->p50_ms = report_median_of(p50, n);
    out->p99_ms = report_median_of(p99, n);
    out->cpu_nodes = median_known(cn, n);
    out->cpu_etcd = median_known(ce, n);
    out->cpu_gen = median_known(cg, n);
}

/* The PostgreSQL figure that <f> is compared with, or -1. */
static int pg_peer(enum sqlbench_fig f)
{
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        if (shared[i][0] == f)
            return (int)shared[i][1];
    return -1;
}

/* Verdict of target <t>: 1 PASS, 0 MISS, -1 not measured; *value gets the
 * measured median (and *other the PostgreSQL median for TARGET_BEATS). */
static int verdict(const struct report *r, const struct target *t, double *value, double *other)
{
    struct report_median m, o;

    report_median(r, t->fig, &m);
    *value = t->kind == TARGET_P99_LT ? m.p99_ms : m.rate;
    *other = 0;
    if (m.n == 0)
        return -1;
    switch (t->kind) {
    case TARGET_RATE_GE: return m.rate >= t->value;
    case TARGET_P99_LT: return m.p99_ms < t->value;
    case TARGET_BEATS:
        report_median(r, t->other, &o);
        if (o.n == 0)
            return -1;
        *other = o.rate;
        return m.rate > o.rate;
    }
    return -1;
}

static void cores(char *out, size_t cap, double v)
{
    if (v < 0)
        snprintf(out, cap, "%5s", "-");
    else
        snprintf(out, cap, "%5.2f", v);
}

int report_print(const struct report *r, FILE *f)
{
    int missed = 0;

    fprintf(f, "\n%-40s %5s %10s %8s %8s %11s %6s   %-17s %s\n", "figure (median of runs)", "runs", "rate/s",
            "p50 ms", "p99 ms", "PostgreSQL", "ratio", "cores node/etcd/gen", "rate per run");
    for (int fi = 0; fi < SQLBENCH_N_FIGS; fi++) {
        const struct sqlbench_fig_info *info = sqlbench_fig_info(fi);
        struct report_median m, o;
        char rate[16], pg[16] = "", ratio[16] = "", cn[8], ce[8], cg[8], per[96] = "";
        size_t plen = 0;
        int peer = pg_peer(fi);

        if (!r->wanted[fi])
            continue;
        report_median(r, fi, &m);
        if (fi == SQLBENCH_VISIBILITY)
            snprintf(rate, sizeof(rate), "%.0f smpl", m.rate);
        else
            snprintf(rate, sizeof(rate), "%.0f", m.rate);
        if (peer >= 0 && r->wanted[peer]) {
            report_median(r, peer, &o);
            if (o.n > 0) {
                snprintf(pg, sizeof(pg), "%.0f", o.rate);
                if (m.n > 0 && o.rate > 0)
                    snprintf(ratio, sizeof(ratio), "%.2fx", m.rate / o.rate);
            } else {
                snprintf(pg, sizeof(pg), "n/a");
            }
        }
        cores(cn, sizeof(cn), m.cpu_nodes);
        cores(ce, sizeof(ce), m.cpu_etcd);
        cores(cg, sizeof(cg), m.cpu_gen);
        for (size_t i = 0; i < r->set.runs && i < REPORT_MAX_RUNS && plen < sizeof(per) - 12; i++) {
            const struct sqlbench_sample *s = &r->s[fi][i];
            int w = s->measured ? snprintf(per + plen, sizeof(per) - plen, "%s%.0f", i ? " " : "", s->rate)
                                : snprintf(per + plen, sizeof(per) - plen, "%sfail", i ? " " : "");
            if (w > 0)
                plen += (size_t)w;
        }
        if (m.n == 0)
            fprintf(f, "%-40s %2zu/%-2zu %10s %8s %8s %11s %6s   %-17s %s\n", info->label, m.n, r->set.runs,
                    "not measured", "", "", pg, ratio, "", per);
        else
            fprintf(f, "%-40s %2zu/%-2zu %10s %8.2f %8.2f %11s %6s   %s %s %s %s\n", info->label, m.n,
                    r->set.runs, rate, m.p50_ms, m.p99_ms, pg, ratio, cn, ce, cg, per);
    }
    fprintf(f, "\ntargets (from the issue; medians of this invocation):\n");
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const struct target *t = &targets[i];
        double value, other;
        int v = verdict(r, t, &value, &other);
        char measured[64];

        if (v < 0)
            snprintf(measured, sizeof(measured), "not measured");
        else if (t->kind == TARGET_BEATS)
            snprintf(measured, sizeof(measured), "%.0f vs %.0f/s", value, other);
        else if (t->kind == TARGET_P99_LT)
            snprintf(measured, sizeof(measured), "%.2f ms", value);
        else
            snprintf(measured, sizeof(measured), "%.0f/s", value);
        fprintf(f, "  %-48s %-22s %s\n", t->text, measured, v > 0 ? "PASS" : "MISS");
        if (v <= 0)
            missed++;
    }
    return missed;
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

static json_t *sample_json(const struct sqlbench_sample *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "measured", json_boolean(s->measured));
    json_object_set_new(o, "rate", json_real(s->rate));
    json_object_set_new(o, "p50_ms", json_real(s->p50_ms));
    json_object_set_new(o, "p99_ms", json_real(s->p99_ms));
    json_object_set_new(o, "max_ms", json_real(s->max_ms));
    json_object_set_new(o, "ok", json_integer((json_int_t)s->ok));
    json_object_set_new(o, "failed", json_integer((json_int_t)s->failed));
    json_object_set_new(o, "cpu_nodes", num_or_null(s->cpu_nodes));
    json_object_set_new(o, "cpu_etcd", num_or_null(s->cpu_etcd));
    json_object_set_new(o, "cpu_loadgen", num_or_null(s->cpu_gen));
    json_object_set_new(o, "error", s->error[0] ? json_string(s->error) : json_null());
    return o;
}

int report_write_json(const struct report *r, const char *path, char *err)
{
    json_t *root = json_object(), *set = json_object(), *figs = json_object(), *ratios = json_object();
    json_t *tg = json_array(), *host = json_object();
    struct utsname un;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    int rc = 0;

    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "time", json_string(when));
    json_object_set_new(host, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    if (uname(&un) == 0) {
        json_object_set_new(host, "hostname", json_string(un.nodename));
        json_object_set_new(host, "kernel", json_string(un.release));
    }
    json_object_set_new(root, "host", host);
    json_object_set_new(set, "command", json_string(r->set.command));
    json_object_set_new(set, "runs", json_integer((json_int_t)r->set.runs));
    json_object_set_new(set, "duration_ms", json_integer((json_int_t)r->set.duration_ms));
    json_object_set_new(set, "warmup_ms", json_integer((json_int_t)r->set.warmup_ms));
    json_object_set_new(set, "visibility_writes", json_integer((json_int_t)r->set.vis_writes));
    json_object_set_new(set, "quick", json_boolean(r->set.quick));
    json_object_set_new(set, "postgresql", r->set.pg_version[0] ? json_string(r->set.pg_version) : json_null());
    json_object_set_new(root, "settings", set);

    for (int fi = 0; fi < SQLBENCH_N_FIGS; fi++) {
        const struct sqlbench_fig_info *info = sqlbench_fig_info(fi);
        json_t *fo, *runs, *med;
        struct report_median m;

        if (!r->wanted[fi])
            continue;
        fo = json_object();
        runs = json_array();
        med = json_object();
        report_median(r, fi, &m);
        json_object_set_new(fo, "label", json_string(info->label));
        json_object_set_new(fo, "clients", json_integer((json_int_t)info->clients));
        json_object_set_new(fo, "system", json_string(info->is_pg ? "postgresql" : "meridian"));
        json_object_set_new(fo, "rate_unit", json_string(fi == SQLBENCH_VISIBILITY ? "samples" : "per_second"));
        for (size_t i = 0; i < r->set.runs && i < REPORT_MAX_RUNS; i++)
            json_array_append_new(runs, sample_json(&r->s[fi][i]));
        json_object_set_new(fo, "runs", runs);
        json_object_set_new(med, "n", json_integer((json_int_t)m.n));
        json_object_set_new(med, "rate", json_real(m.rate));
        json_object_set_new(med, "p50_ms", json_real(m.p50_ms));
        json_object_set_new(med, "p99_ms", json_real(m.p99_ms));
        json_object_set_new(med, "cpu_nodes", num_or_null(m.cpu_nodes));
        json_object_set_new(med, "cpu_etcd", num_or_null(m.cpu_etcd));
        json_object_set_new(med, "cpu_loadgen", num_or_null(m.cpu_gen));
        json_object_set_new(fo, "median", m.n ? med : (json_decref(med), json_null()));
        json_object_set_new(figs, info->name, fo);
    }
    json_object_set_new(root, "figures", figs);

    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
        struct report_median a, b;
        char key[64];
        report_median(r, shared[i][0], &a);
        report_median(r, shared[i][1], &b);
        snprintf(key, sizeof(key), "%s/%s", sqlbench_fig_info(shared[i][0])->name,
                 sqlbench_fig_info(shared[i][1])->name);
        json_object_set_new(ratios, key, a.n && b.n && b.rate > 0 ? json_real(a.rate / b.rate) : json_null());
    }
    json_object_set_new(root, "ratios_meridian_over_postgresql", ratios);

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        double value, other;
        int v = verdict(r, &targets[i], &value, &other);
        json_t *t = json_object();
        json_object_set_new(t, "name", json_string(targets[i].name));
        json_object_set_new(t, "text", json_string(targets[i].text));
        json_object_set_new(t, "value", v < 0 ? json_null() : json_real(value));
        if (targets[i].kind == TARGET_BEATS)
            json_object_set_new(t, "postgresql", v < 0 ? json_null() : json_real(other));
        json_object_set_new(t, "verdict", json_string(v > 0 ? "PASS" : v == 0 ? "MISS" : "not_measured"));
        json_array_append_new(tg, t);
    }
    json_object_set_new(root, "targets", tg);

    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0)
        rc = mr_seterr(err, MR_EIO, "cannot write %s", path);
    json_decref(root);
    return rc;
}
