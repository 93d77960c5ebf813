/* demo.c -- `meridian demo`: what active-active buys, on one machine.
 *
 * Starts the default topology (three regions with real distances, every
 * cross-region byte through `meridian wan`) and, for each client site of the
 * topology (New York, Frankfurt, Singapore), measures the latency of reads
 * and writes in two phases.  A site's clients always connect over the site's
 * own WAN link to the region serving them (topology.json "sites":
 * "node_urls"), so each request pays that site's real distance:
 *
 *   before  every site is served by one region (us-east-1), as before the
 *           re-architecture; reads are eventual
 *   after   each site is served by its nearest region (smallest one-way
 *           latency); each read carries the client's last consistency token,
 *           so every read also checks read-your-writes
 *
 * Each client alternates: write its own row, read it back.  Writes go to the
 * region serving the site in both phases, and wherever they land they are
 * ordered by etcd, whose quorum spans regions: the output says so rather
 * than hiding it.  Then the replication lag per region pair (each node's
 * GET /v1/status "replication"), a wait until every replica has applied
 * the same position, a digest comparison, and everything is stopped (also
 * on Ctrl-C, at the end of the current step: each one is bounded).
 */
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

enum { PHASE_BEFORE = 0, PHASE_AFTER = 1, N_PHASES = 2 };
enum { K_WRITE = 0, K_READ = 1 };

struct demo_client {
    size_t site;
    int64_t next;         /* last value sent: increasing across both phases */
    int64_t written;      /* last value acknowledged */
    int64_t sending;      /* value of the write in flight */
    int is_write;
    char token[48];       /* of the last acknowledged write */
};

struct demo {
    struct topo *topo;
    struct demo_client *clients;
    size_t per_site;
    int phase;
    size_t served_by[TOPO_MAX_SITES];   /* region index serving each site in this phase */
    uint64_t ryw_checked, ryw_violations;
};

/* Client <client>'s <seq>th request: even ones write its row, odd ones read
 * it back, both at the region serving its site (target = the site). */
static void gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct demo *d = data;
    struct demo_client *c = &d->clients[client];
    const struct topo_region *r = &d->topo->regions[d->served_by[c->site]];

    req->path = "/v1/sql";
    req->target = c->site;
    c->is_write = seq % 2 == 0;
    if (c->is_write) {
        c->sending = ++c->next;
        req->klass = K_WRITE;
        mr_buf_printf(req->body,
                      "{\"statements\":[{\"sql\":\"INSERT INTO demo_kv(k, v, region) VALUES (?, ?, ?) "
                      "ON CONFLICT(k) DO UPDATE SET v = excluded.v, region = excluded.region\","
                      "\"params\":[\"c%zu\",%lld,\"%s\"]}]}",
                      client, (long long)c->sending, r->name);
        return;
    }
    req->klass = K_READ;
    mr_buf_printf(req->body, "{\"statements\":[{\"sql\":\"SELECT v FROM demo_kv WHERE k = ?\","
                             "\"params\":[\"c%zu\"]}]", client);
    if (d->phase == PHASE_AFTER && c->token[0])
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
    } else if (d->phase == PHASE_AFTER && c->written > 0) {
        /* A read with the token of the client's last write must see it. */
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
 * records it, and the demo stops at the next step (each is bounded). */
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

/* Wait (bounded) until every region has applied the same revision; leaves
 * each region's GET /v1/status in status[]. */
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

/* The region nearest to site <s>: the smallest one-way latency (the first on
 * a tie, in topology order). */
static size_t nearest_region(const struct topo *t, size_t s)
{
    size_t best = 0;

    for (size_t r = 1; r < t->n_regions; r++)
        if (t->sites[s].latency_ms[r] < t->sites[s].latency_ms[best])
            best = r;
    return best;
}

/* Run one phase: every site's clients against the region d->served_by[]
 * names for it, over the site's link.  One progress line. */
static void run_phase(struct demo *d, int phase, const char *title, int64_t duration_ms,
                      struct load_result *res)
{
    struct topo *t = d->topo;
    struct load_target targets[TOPO_MAX_SITES];
    struct load_spec spec;

    d->phase = phase;
    for (size_t s = 0; s < t->n_sites; s++) {
        targets[s].host = t->sites[s].host[d->served_by[s]];
        targets[s].port = t->sites[s].port[d->served_by[s]];
    }
    memset(&spec, 0, sizeof(spec));
    spec.targets = targets;
    spec.n_targets = t->n_sites;
    spec.n_clients = t->n_sites * d->per_site;
    spec.duration_ms = (uint64_t)duration_ms;
    /* Not measured: the first connections over each link. */
    spec.warmup_ms = 500;
    spec.gen = gen;
    spec.check = check;
    spec.data = d;
    printf("   phase %d/%d %s (%.1f s) ... ", phase + 1, N_PHASES, title,
           (double)(spec.warmup_ms + spec.duration_ms) / 1000.0);
    fflush(stdout);
    if (load_run(&spec, res) != 0)
        printf("FAILED: %s\n", res->first_error);
    else
        printf("%llu requests, %llu failed\n", (unsigned long long)res->all.ok + res->all.failed,
               (unsigned long long)res->all.failed);
}

static void print_row(const struct topo *t, const char *site, const char *phase, size_t region,
                      double rtt_ms, const struct load_stats *by)
{
    const struct load_stats *r = &by[K_READ], *w = &by[K_WRITE];

    printf("%-14s %-7s %-16s %6.0fms %6llu %8.1fms %8.1fms %7llu %8.1fms %8.1fms\n", site, phase,
           t->regions[region].name, rtt_ms, (unsigned long long)r->ok, r->p50_ms, r->p99_ms,
           (unsigned long long)w->ok, w->p50_ms, w->p99_ms);
}

/* Replication lag per region pair from each region's GET /v1/status:
 * "replication": {origin: {batches, last_ms, p50_ms, p99_ms}} is the time
 * from a batch's submission in <origin> to its apply in that region. */
static void print_lag(const struct topo *t, json_t **status)
{
    printf("\n== replication lag, from a batch's submission in ORIGIN to its apply in each region:\n"
           "   p50/p99 in ms over the whole run (upper bounds of histogram buckets), and the last\n"
           "   batch's exact lag\n\n%-16s", "origin");
    for (size_t j = 0; j < t->n_regions; j++)
        printf(" %22s", t->regions[j].name);
    printf("\n");
    for (size_t i = 0; i < t->n_regions; i++) {
        printf("%-16s", t->regions[i].name);
        for (size_t j = 0; j < t->n_regions; j++) {
            json_t *o = json_object_get(json_object_get(status[j], "replication"),
                                        t->regions[i].name);
            char cell[64];
            if (json_integer_value(json_object_get(o, "batches")) > 0)
                snprintf(cell, sizeof(cell), "%g/%g, last %lld",
                         json_number_value(json_object_get(o, "p50_ms")),
                         json_number_value(json_object_get(o, "p99_ms")),
                         (long long)json_integer_value(json_object_get(o, "last_ms")));
            else
                snprintf(cell, sizeof(cell), "-");
            printf(" %22s", cell);
        }
        printf("\n");
    }
}

/* The region whose etcd member leads, from the status documents; NULL when
 * none says so. */
static const char *etcd_leader(const struct topo *t, json_t **status)
{
    for (size_t i = 0; i < t->n_regions; i++)
        if (json_is_true(json_object_get(json_object_get(status[i], "etcd"), "local_member_is_leader")))
            return t->regions[i].name;
    return NULL;
}

/* Compare every region's digest with the first one's. */
static int digests_identical(struct topo *t, char *digest0, size_t n, char *err)
{
    int identical = 1;

    for (size_t i = 0; i < t->n_regions; i++) {
        json_t *dg = NULL;
        if (topo_get_json(&t->regions[i], "/v1/digest", &dg, err) == 0) {
            const char *dig = json_string_value(json_object_get(dg, "digest"));
            if (i == 0)
                snprintf(digest0, n, "%s", dig ? dig : "");
            else if (dig == NULL || strcmp(dig, digest0) != 0)
                identical = 0;
        } else {
            identical = 0;
        }
        json_decref(dg);
    }
    return identical;
}

int cmd_demo(int argc, char **argv)
{
    static const struct option longopts[] = {{"duration", required_argument, NULL, 'd'},
                                             {"clients", required_argument, NULL, 'c'},
                                             {"topology", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int64_t duration_ms = 4000, per_site = 6;
    const char *topology = NULL, *leader;
    char err[MR_ERRMSG_LEN], title[128];
    struct load_result res[N_PHASES];
    struct topo t;
    struct demo d;
    json_t *status[TOPO_MAX_REGIONS] = {0};
    char digest0[80] = "";
    size_t base = 0, nearest[TOPO_MAX_SITES];
    uint64_t failed = 0;
    int opt, rc, identical, exit_code = 0;

    while ((opt = getopt_long(argc, argv, "d:c:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            if (mr_parse_duration_ms(optarg, &duration_ms) != 0 || duration_ms < 500 ||
                duration_ms > 600000) {
                fprintf(stderr, "meridian demo: --duration: expected 500ms to 10m per phase, "
                        "found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if (mr_parse_i64(optarg, 1, 100, &per_site) != 0) {
                fprintf(stderr, "meridian demo: --clients: expected 1 to 100 per site, found '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 't': topology = optarg; break;
        case 'h':
            printf("usage: meridian demo [--duration 4s] [--clients 6] [--topology FILE]\n"
                   "  --duration  measured time of each phase (plus 0.5 s of warm-up)\n"
                   "  --clients   clients per client site\n"
                   "  --topology  a topology with [site NAME] sections (default: the built-in one)\n");
            return 0;
        default: return 2;
        }
    }
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    printf("== starting a local topology: an etcd member and a node per region, every byte between\n"
           "   regions and from each client site through the emulated WAN (`meridian wan`)\n");
    if (topo_up(&t, "/proc/self/exe", topology, NULL, NULL, 1, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        return 1;
    }
    memset(&d, 0, sizeof(d));
    if (interrupted) {
        exit_code = 130;
        goto out;
    }
    if (t.n_sites == 0) {
        fprintf(stderr, "meridian demo: the topology has no client sites ([site NAME] sections, "
                "docs/topology.md)\n");
        exit_code = 1;
        goto out;
    }
    rc = sql_simple(&t.regions[0],
                    "{\"statements\":[{\"sql\":\"CREATE TABLE IF NOT EXISTS demo_kv(k TEXT PRIMARY KEY, "
                    "v INTEGER NOT NULL, region TEXT NOT NULL)\"}]}", err);
    if (rc != 0) {
        fprintf(stderr, "meridian demo: create table: %s\n", err);
        exit_code = 1;
        goto out;
    }
    for (size_t r = 0; r < t.n_regions; r++)
        if (strcmp(t.regions[r].name, "us-east-1") == 0)
            base = r;
    for (size_t s = 0; s < t.n_sites; s++)
        nearest[s] = nearest_region(&t, s);

    d.topo = &t;
    d.per_site = (size_t)per_site;
    d.clients = mr_calloc(t.n_sites * d.per_site, sizeof(*d.clients));
    for (size_t c = 0; c < t.n_sites * d.per_site; c++)
        d.clients[c].site = c / d.per_site;
    printf("\n== %zu client sites, %lld clients each: every client writes its own row and reads it\n"
           "   back, over its site's WAN link to the region serving the site.  Reads are eventual\n"
           "   before, and carry the client's last token after (read-your-writes is checked)\n",
           t.n_sites, (long long)per_site);

    for (size_t s = 0; s < t.n_sites; s++)
        d.served_by[s] = base;
    snprintf(title, sizeof(title), "before: every site served from %s", t.regions[base].name);
    run_phase(&d, PHASE_BEFORE, title, duration_ms, &res[PHASE_BEFORE]);
    if (interrupted) {
        exit_code = 130;
        goto out;
    }
    memcpy(d.served_by, nearest, sizeof(nearest));
    run_phase(&d, PHASE_AFTER, "after: each site served by its nearest region", duration_ms,
              &res[PHASE_AFTER]);
    if (interrupted) {
        exit_code = 130;
        goto out;
    }

    printf("\n%-14s %-7s %-16s %8s %6s %10s %10s %7s %10s %10s\n", "site", "phase", "served by",
           "RTT", "reads", "r p50", "r p99", "writes", "w p50", "w p99");
    for (size_t s = 0; s < t.n_sites; s++) {
        print_row(&t, t.sites[s].name, "before", base, 2 * t.sites[s].latency_ms[base],
                  res[PHASE_BEFORE].by[s]);
        print_row(&t, "", "after", nearest[s], 2 * t.sites[s].latency_ms[nearest[s]],
                  res[PHASE_AFTER].by[s]);
    }
    for (int p = 0; p < N_PHASES; p++)
        failed += res[p].all.failed;

    if (converge(&t, status, err) != 0) {
        fprintf(stderr, "meridian demo: %s\n", err);
        exit_code = 1;
    }
    leader = etcd_leader(&t, status);
    printf("\nRTT is the site's round trip to the region serving it.  Reads are answered by that "
           "region alone.\nWrites, in both phases, are ordered by etcd (leader now in %s): each "
           "waits for a quorum of\nmembers in two regions, so it costs the site's round trip plus "
           "cross-region commit time\nwherever it lands.\n", leader ? leader : "no region");

    print_lag(&t, status);

    identical = digests_identical(&t, digest0, sizeof(digest0), err);
    printf("\nrequests: %llu ok, %llu failed%s%s\n",
           (unsigned long long)(res[0].all.ok + res[1].all.ok), (unsigned long long)failed,
           res[0].first_error[0] || res[1].first_error[0] ? "; first error: " : "",
           res[0].first_error[0] ? res[0].first_error : res[1].first_error);
    printf("read-your-writes (phase after, reads with the token of the client's last write): "
           "%llu checked, %llu violations\n", (unsigned long long)d.ryw_checked,
           (unsigned long long)d.ryw_violations);
    printf("replicas identical: %s (digest %.16s...)\n", identical ? "yes" : "NO", digest0);
    if (!identical || d.ryw_violations || failed)
        exit_code = 1;
out:
    for (size_t i = 0; i < t.n_regions; i++)
        json_decref(status[i]);
    mr_free(d.clients);
    printf("\n== stopping\n");
    fflush(stdout);
    topo_down(&t, "/proc/self/exe");
    return exit_code;
}
