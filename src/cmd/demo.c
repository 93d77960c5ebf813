/* demo.c -- `meridian demo`: start three local regions, run a short mixed
 * workload in every region at once, print what it measured, stop.
 *
 * Each client has a home region where it writes its own key, and reads the
 * key back in the *other* regions with its last consistency token: every
 * read checks read-your-writes across regions. */
#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench/load.h"
#include "../bench/topo.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"
#include "cmd.h"

struct demo_client {
    int64_t written;      /* last value acknowledged */
    int64_t sending;      /* value of the write in flight */
    int is_write;
    char token[48];
};

struct demo {
    struct topo *topo;
    struct demo_client *clients;
    uint64_t ryw_checked, ryw_violations;
};

static void gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct demo *d = data;
    struct demo_client *c = &d->clients[client];
    size_t n = d->topo->n_regions, home = client % n;

    req->path = "/v1/sql";
    c->is_write = seq % 4 == 0;
    if (c->is_write) {
        c->sending = (int64_t)seq + 1;
        req->target = home;
        req->klass = 0;
        mr_buf_printf(req->body,
                      "{\"statements\":[{\"sql\":\"INSERT INTO demo_kv(k, v, region) VALUES (?, ?, ?) "
                      "ON CONFLICT(k) DO UPDATE SET v = excluded.v, region = excluded.region\","
                      "\"params\":[\"c%zu\",%lld,\"%s\"]}]}",
                      client, (long long)c->sending, d->topo->regions[home].name);
        return;
    }
    req->target = (home + 1 + seq % (n > 1 ? n - 1 : 1)) % n;
    req->klass = 1;
    mr_buf_printf(req->body, "{\"statements\":[{\"sql\":\"SELECT v FROM demo_kv WHERE k = ?\","
                             "\"params\":[\"c%zu\"]}]", client);
    if (c->token[0])
        mr_buf_printf(req->body, ",\"token\":\"%s\"", c->token);
    mr_buf_putc(req->body, '}');
}

static int check(size_t client, int status, const char *body, size_t len, void *data)
{
    struct demo *d = data;
    struct demo_client *c = &d->clients[client];
    json_t *j;

    if (status != 200)
        return -1;
    j = json_loadb(body, len, 0, NULL);
    if (j == NULL)
        return -1;
    if (c->is_write) {
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (tok)
            snprintf(c->token, sizeof(c->token), "%s", tok);
        c->written = c->sending;
    } else if (c->written > 0) {
        json_t *rows = json_object_get(json_array_get(json_object_get(j, "results"), 0), "rows");
        int64_t v = json_integer_value(json_array_get(json_array_get(rows, 0), 0));
        d->ryw_checked++;
        if (v < c->written)
            d->ryw_violations++;
    }
    json_decref(j);
    return 0;
}

/* Ctrl-C must not leave a detached topology behind: the handler only
 * records it, and the demo stops at the next phase (each is bounded). */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int signum)
{
    (void)signum;
    interrupted = 1;
}

static int sql_simple(const struct topo_region *r, const char *body, char *err)
{
    json_t *ans = NULL;
    int status = 0, rc = topo_sql(r, body, &status, &ans, err);

    if (rc == 0 && status != 200)
        rc = mr_seterr(err, MR_EUNAVAIL, "%s answered %d: %s", r->name, status,
                       json_string_value(json_object_get(json_object_get(ans, "error"), "message")));
    json_decref(ans);
    return rc;
}

/* Wait (bounded) until every region has applied the same revision. */
static int converge(struct topo *t, json_t **status, char *err)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int64_t first = -1;
        int same = 1;
        for (size_t i = 0; i < t->n_regions; i++) {
            json_decref(status[i]);
            status[i] = NULL;
            if (topo_get_json(&t->regions[i], "/v1/status", &status[i], err) != 0)
                return MR_EUNAVAIL;
            int64_t rev = json_integer_value(json_object_get(json_object_get(status[i], "applied"), "rev"));
            int64_t head = json_integer_value(json_object_get(json_object_get(status[i], "head"), "rev"));
            if (first < 0)
                first = rev;
            if (rev != first || rev < head)
                same = 0;
        }
        if (same)
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling a remote process: nothing to wait on locally */
    }
    return mr_seterr(err, MR_ETIMEDOUT, "regions did not converge within 10 s");
}

int cmd_demo(int argc, char **argv)
{
    static const struct option longopts[] = {{"duration", required_argument, NULL, 'd'},
                                             {"clients", required_argument, NULL, 'c'},
                                             {"topology", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int64_t duration_ms = 5000, n_clients = 24;
    const char *topology = NULL;
    char err[MR_ERRMSG_LEN];
    struct load_target targets[TOPO_MAX_REGIONS];
    struct load_spec spec;
    struct load_result res;
    struct topo t;
    struct demo d;
    json_t *status[TOPO_MAX_REGIONS] = {0};
    char digest0[80] = "";
    int opt, rc, identical = 1, exit_code = 0;

    while ((opt = getopt_long(argc, argv, "d:c:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            if (mr_parse_duration_ms(optarg, &duration_ms) != 0 || duration_ms < 500) {
                fprintf(stderr, "meridian demo: --duration: expected at least 500ms, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if (mr_parse_i64(optarg, 1, 1000, &n_clients) != 0) {
                fprintf(stderr, "meridian demo: --clients: expected 1 to 1000, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 't': topology = optarg; break;
        case 'h':
            printf("usage: meridian demo [--duration 5s] [--clients 24] [--topology FILE]\n");
            return 0;
        default: return 2;
        }
    }
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    printf("== starting a local topology (one etcd member and one node per region)\n");
    if (topo_up(&t, "/proc/self/exe", topology, NULL, NULL, 1, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        return 1;
    }
    if (interrupted)
        goto out;
    rc = sql_simple(&t.regions[0],
                    "{\"statements\":[{\"sql\":\"CREATE TABLE IF NOT EXISTS demo_kv(k TEXT PRIMARY KEY, "
                    "v INTEGER NOT NULL, region TEXT NOT NULL)\"}]}", err);
    if (rc != 0) {
        fprintf(stderr, "meridian demo: create table: %s\n", err);
        exit_code = 1;
        goto out;
    }
    printf("\n== %lld clients for %.1f s: each writes its own row in its home region and reads it back\n"
           "   in the other regions with its consistency token (read-your-writes across regions)\n",
           (long long)n_clients, (double)duration_ms / 1000.0);
    for (size_t i = 0; i < t.n_regions; i++) {
        targets[i].host = t.regions[i].host;
        targets[i].port = t.regions[i].port;
    }
    memset(&d, 0, sizeof(d));
    d.topo = &t;
    d.clients = mr_calloc((size_t)n_clients, sizeof(*d.clients));
    memset(&spec, 0, sizeof(spec));
    spec.targets = targets;
    spec.n_targets = t.n_regions;
    spec.n_clients = (size_t)n_clients;
    spec.duration_ms = (uint64_t)duration_ms;
    spec.warmup_ms = 300;
    spec.gen = gen;
    spec.check = check;
    spec.data = &d;
    rc = load_run(&spec, &res);
    if (interrupted) {
        mr_free(d.clients);
        exit_code = 130;
        goto out;
    }
    if (rc != 0)
        fprintf(stderr, "meridian demo: workload failed: %s\n", res.first_error);

    if (converge(&t, status, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        exit_code = 1;
    }
    printf("\n%-16s %9s %8s %8s %9s %8s %8s %9s %7s %8s\n", "region", "writes/s", "w p50", "w p99",
           "reads/s", "r p50", "r p99", "applied", "behind", "stale");
    for (size_t i = 0; i < t.n_regions; i++) {
        struct load_stats *w = &res.by[i][0], *r = &res.by[i][1];
        json_t *st = status[i], *dg = NULL;
        printf("%-16s %9.0f %6.2fms %6.2fms %9.0f %6.2fms %6.2fms %9lld %7lld %6lldms\n",
               t.regions[i].name, w->rate, w->p50_ms, w->p99_ms, r->rate, r->p50_ms, r->p99_ms,
               (long long)json_integer_value(json_object_get(json_object_get(st, "applied"), "rev")),
               (long long)json_integer_value(json_object_get(json_object_get(st, "lag"), "entries")),
               (long long)json_integer_value(json_object_get(json_object_get(st, "lag"), "staleness_ms")));
        if (topo_get_json(&t.regions[i], "/v1/digest", &dg, err) == 0) {
            const char *dig = json_string_value(json_object_get(dg, "digest"));
            if (i == 0)
                snprintf(digest0, sizeof(digest0), "%s", dig ? dig : "");
            else if (dig == NULL || strcmp(dig, digest0) != 0)
                identical = 0;
        } else {
            identical = 0;
        }
        json_decref(dg);
    }
    printf("\nrequests: %llu ok, %llu failed%s%s\n", (unsigned long long)res.all.ok,
           (unsigned long long)res.all.failed, res.first_error[0] ? "; first error: " : "",
           res.first_error);
    printf("read-your-writes across regions: %llu reads checked, %llu violations\n",
           (unsigned long long)d.ryw_checked, (unsigned long long)d.ryw_violations);
    printf("replicas identical: %s (digest %.16s...)\n", identical ? "yes" : "NO", digest0);
    if (!identical || d.ryw_violations || res.all.failed)
        exit_code = 1;
    for (size_t i = 0; i < t.n_regions; i++)
        json_decref(status[i]);
    mr_free(d.clients);
out:
    printf("\n== stopping\n");
    topo_down(&t, "/proc/self/exe");
    return exit_code;
}
