/* Global tables, three real regions: seeded random concurrent writes (lww
 * puts and deletes, crdt set adds/removes and counter increments) in every
 * region, with a node restart and a network cut of one region in between,
 * end with equal digests everywhere and the CRDT values the acknowledged
 * operations imply.  Then a region whose clock runs 5 s slow
 * (MERIDIAN_CLOCK_SKEW_MS) still wins with writes made after it has seen the
 * others', and every region converges.  Replay with GT_SEED=<seed>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/token.h"
#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;
#define SKEWED "ap-southeast-1"

/* Three regions; reads that wait for a token give up after 300 ms (the
 * removes of a cut-off region wait in vain: keep that short). */
static const char topology[] = "[topology]\nname = tables-convergence\n\n[limits]\nsession_wait = 300ms\n\n"
                               "[region us-east-1]\n\n[region eu-west-1]\n\n[region ap-southeast-1]\n";

/* ---- helpers (shared shape with the other test_tables files) ---- */

static int call(const char *method, const char *base, const char *path, const char *headers,
                const char *body, struct api_reply *r)
{
    char url[1024], err[MR_ERRMSG_LEN] = "";
    struct http_result res;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base, path);
    rc = http_fetch(method, url, headers, body, body ? strlen(body) : 0,
                    (uint64_t)test_timeout_ms(API_TIMEOUT_MS), &res, err);
    if (rc != 0) {
        fprintf(stderr, "%s %s: %s\n", method, url, err);
        return rc;
    }
    r->status = res.status;
    r->text = strndup(res.body.data ? res.body.data : "", res.body.len);
    r->body = json_loadb(r->text, res.body.len, 0, NULL);
    http_result_close(&res);
    return 0;
}

/* A write that must succeed; merges its token into <tok>. */
static void write_ok(const char *method, const char *base, const char *path, const char *body,
                     struct mr_token *tok)
{
    struct api_reply r;
    struct mr_token t;

    assert_int_equal(call(method, base, path, NULL, body, &r), 0);
    if (r.status != 200 && r.status != 201)
        fprintf(stderr, "%s %s%s %s -> %d %s\n", method, base, path, body ? body : "", r.status, r.text);
    assert_true(r.status == 200 || r.status == 201);
    if (tok) {
        assert_int_equal(mr_token_parse(json_string_value(json_object_get(r.body, "token")), &t, NULL), 0);
        assert_int_equal(mr_token_merge(tok, &t), 0);
    }
    api_reply_close(&r);
}

/* GET with a token (waits until applied); the reply is left to the caller. */
static int get_tok(const char *base, const char *path, const struct mr_token *tok, struct api_reply *r)
{
    char t[MR_TOKEN_MAX_LEN], hdr[MR_TOKEN_MAX_LEN + 32] = "";

    if (tok) {
        mr_token_format(tok, t, sizeof(t));
        snprintf(hdr, sizeof(hdr), "Meridian-Token: %s\r\n", t);
    }
    return call("GET", base, path, tok ? hdr : NULL, NULL, r);
}

static char *digest(const char *base, const char *table)
{
    struct api_reply r;
    char path[128], *d = NULL;

    snprintf(path, sizeof(path), "/v1/tables/%s/digest", table);
    if (call("GET", base, path, NULL, NULL, &r) == 0 && r.status == 200)
        d = strdup(json_string_value(json_object_get(r.body, "digest")));
    api_reply_close(&r);
    return d;
}

static const char *const TABLES[] = {"docs", "bags"};

/* Every region has the same digest of table <arg>. */
static int table_converged(void *arg)
{
    char *first = digest(C->regions[0].node_url, arg);
    int same = first != NULL;

    for (size_t i = 1; same && i < C->n_regions; i++) {
        char *d = digest(C->regions[i].node_url, arg);
        same = d && strcmp(d, first) == 0;
        free(d);
    }
    free(first);
    return same;
}

static int converged(void *arg)
{
    (void)arg;
    return table_converged((void *)TABLES[0]) && table_converged((void *)TABLES[1]);
}

/* Every region has collected the tombstones of table <arg> (the deletes
 * were applied everywhere): GET /v1/tables/<arg> reports none held. */
static int tombstones_collected(void *arg)
{
    char path[96];

    snprintf(path, sizeof(path), "/v1/tables/%s", (const char *)arg);
    for (size_t i = 0; i < C->n_regions; i++) {
        struct api_reply r;
        long long n = -1;
        if (call("GET", C->regions[i].node_url, path, NULL, NULL, &r) == 0 && r.status == 200)
            n = json_integer_value(json_object_get(r.body, "tombstones"));
        api_reply_close(&r);
        if (n != 0)
            return 0;
    }
    return 1;
}

static int tables_everywhere(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < C->n_regions; i++)
        for (size_t t = 0; t < 2; t++) {
            char path[64];
            snprintf(path, sizeof(path), "/v1/tables/%s", TABLES[t]);
            if (api_status(C->regions[i].node_url, path) != 200)
                return 0;
        }
    return 1;
}

/* ---- fixture ---- */

static int setup(void **state)
{
    (void)state;
    setenv("MERIDIAN_CLOCK_SKEW_MS", "-5000", 1);
    setenv("MERIDIAN_CLOCK_SKEW_REGION", SKEWED, 1);
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    unsetenv("MERIDIAN_CLOCK_SKEW_MS");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* ---- the model of what acknowledged operations imply ---- */

#define N_CARTS 6
#define N_ELEMS 5
#define N_DOCS 12

struct model {
    long long count[N_CARTS];
    int present[N_CARTS][N_ELEMS];   /* last op on the element was an add */
    int ever[N_CARTS][N_ELEMS];
    struct mr_token cart_tok[N_CARTS];
    int skipped_removes;
};

static void random_step(struct model *m, unsigned *seed, int step, size_t skip_region)
{
    size_t reg = (size_t)rand_r(seed) % C->n_regions;
    const char *url;
    char path[128], body[256];
    int kind = (int)(rand_r(seed) % 10);

    if (reg == skip_region)
        reg = (reg + 1) % C->n_regions;
    url = C->regions[reg].node_url;
    if (kind < 4) {
        int d = (int)(rand_r(seed) % N_DOCS);
        snprintf(path, sizeof(path), "/v1/tables/docs/items/doc-%d", d);
        if (kind == 0) {
            struct api_reply r;
            assert_int_equal(call("DELETE", url, path, NULL, NULL, &r), 0);
            assert_true(r.status == 200 || r.status == 404); /* 404: not there in this region yet */
            api_reply_close(&r);
        } else {
            snprintf(body, sizeof(body), "{\"step\":%d,\"region\":\"%s\",\"pad\":\"%0*d\"}", step,
                     C->regions[reg].name, (int)(rand_r(seed) % 100), 0);
            write_ok("PUT", url, path, body, NULL);
        }
        return;
    }
    {
        int c = (int)(rand_r(seed) % N_CARTS), e = (int)(rand_r(seed) % N_ELEMS);
        snprintf(path, sizeof(path), "/v1/tables/bags/items/cart-%d/ops", c);
        if (kind < 7) {
            int by = (int)(rand_r(seed) % 9) - 3;
            snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"add\",\"field\":\"items\",\"value\":\"sku-%d\"},"
                     "{\"op\":\"increment\",\"field\":\"count\",\"by\":%d}]}", e, by);
            write_ok("POST", url, path, body, &m->cart_tok[c]);
            m->count[c] += by;
            m->present[c][e] = 1;
            m->ever[c][e] = 1;
        } else {
            /* A remove observes every earlier add of the cart: read with its
             * token first (served once this region has applied them). */
            struct api_reply r;
            char ipath[128];
            snprintf(ipath, sizeof(ipath), "/v1/tables/bags/items/cart-%d", c);
            assert_int_equal(get_tok(url, ipath, &m->cart_tok[c], &r), 0);
            if (r.status == 503) {
                /* Cut off from a region that added to the cart: this
                 * region cannot observe it, the test skips the remove. */
                api_reply_close(&r);
                m->skipped_removes++;
                return;
            }
            assert_true(r.status == 200 || r.status == 404);
            api_reply_close(&r);
            snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"remove\",\"field\":\"items\",\"value\":\"sku-%d\"}]}", e);
            write_ok("POST", url, path, body, &m->cart_tok[c]);
            m->present[c][e] = 0;
        }
    }
}

static void random_writes_with_restart_and_cut_converge(void **state)
{
    unsigned seed = getenv("GT_SEED") ? (unsigned)strtoul(getenv("GT_SEED"), NULL, 10) : (unsigned)time(NULL);
    struct model *m = calloc(1, sizeof(*m));
    int step = 0;

    (void)state;
    fprintf(stderr, "seed %u (replay with GT_SEED=%u)\n", seed, seed);
    write_ok("PUT", C->regions[0].node_url, "/v1/tables/docs", "{\"kind\":\"lww\"}", NULL);
    write_ok("PUT", C->regions[1].node_url, "/v1/tables/bags", "{\"kind\":\"crdt\"}", NULL);
    assert_int_equal(wait_for(tables_everywhere, NULL, 10000), 0);

    for (; step < 150; step++)
        random_step(m, &seed, step, (size_t)-1);
    /* A node restarts (clean stop, start from its data dir). */
    fprintf(stderr, "restarting %s's node\n", C->regions[1].name);
    assert_int_equal(cluster_region_action(C, C->regions[1].name, "restart", "node"), 0);
    for (; step < 300; step++)
        random_step(m, &seed, step, (size_t)-1);
    /* A cut: region 2's links are blackholed while every region writes. */
    fprintf(stderr, "partitioning %s\n", C->regions[2].name);
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "partition", NULL), 0);
    for (; step < 450; step++)
        random_step(m, &seed, step, (size_t)-1);
    assert_int_equal(cluster_region_action(C, C->regions[2].name, "heal", NULL), 0);
    for (; step < 500; step++)
        random_step(m, &seed, step, (size_t)-1);

    assert_int_equal(wait_for(converged, NULL, 30000), 0);
    /* The CRDT values are those of the acknowledged operations, everywhere. */
    for (size_t i = 0; i < C->n_regions; i++) {
        for (int c = 0; c < N_CARTS; c++) {
            struct api_reply r;
            char path[64];
            json_t *items;
            snprintf(path, sizeof(path), "/v1/tables/bags/items/cart-%d", c);
            assert_int_equal(get_tok(C->regions[i].node_url, path, &m->cart_tok[c], &r), 0);
            if (r.status == 404) {
                for (int e = 0; e < N_ELEMS; e++)
                    assert_false(m->ever[c][e]);
                api_reply_close(&r);
                continue;
            }
            assert_int_equal(r.status, 200);
            assert_int_equal(json_integer_value(json_object_get(json_object_get(r.body, "item"), "count")),
                             m->count[c]);
            items = json_object_get(json_object_get(r.body, "item"), "items");
            for (int e = 0, k = 0; e < N_ELEMS; e++) {
                char want[16];
                snprintf(want, sizeof(want), "sku-%d", e);
                if (m->present[c][e]) {
                    const char *have = json_string_value(json_array_get(items, (size_t)k++));
                    if (have == NULL || strcmp(have, want) != 0)
                        fprintf(stderr, "%s cart-%d: %s\n", C->regions[i].name, c, r.text);
                    assert_non_null(have);
                    assert_string_equal(have, want);
                }
            }
            {
                size_t expect = 0;
                for (int e = 0; e < N_ELEMS; e++)
                    expect += (size_t)m->present[c][e];
                assert_int_equal(json_array_size(items), expect);
            }
            api_reply_close(&r);
        }
    }
    assert_int_equal(wait_for(tombstones_collected, (void *)"docs", 15000), 0);
    assert_int_equal(wait_for(converged, NULL, 5000), 0);
    fprintf(stderr, "converged after %d random steps in %zu regions (%d removes skipped: 503 while cut)\n",
            step, C->n_regions, m->skipped_removes);
    free(m);
}

static void skewed_region_wins_once_it_has_seen_the_others(void **state)
{
    const char *east = cluster_region(C, "us-east-1")->node_url, *slow = cluster_region(C, SKEWED)->node_url;
    struct mr_token tok;
    struct api_reply r;
    unsigned long long h1, h2 = 0;

    (void)state;
    memset(&tok, 0, sizeof(tok));
    /* The skew is in force in that region's node. */
    {
        char path[512], line[512];
        FILE *f;
        int found = 0;
        snprintf(path, sizeof(path), "%s/logs/%s-node.log", C->rundir, SKEWED);
        f = fopen(path, "r");
        assert_non_null(f);
        while (!found && fgets(line, sizeof(line), f))
            found = strstr(line, "table clock skewed by -5000 ms") != NULL;
        fclose(f);
        assert_true(found);
    }
    write_ok("PUT", east, "/v1/tables/docs/items/skew", "{\"by\":\"us-east-1\"}", &tok);
    /* The slow region reads it (so its clock has seen us-east-1's), then writes. */
    assert_int_equal(get_tok(slow, "/v1/tables/docs/items/skew", &tok, &r), 0);
    assert_int_equal(r.status, 200);
    h1 = strtoull(json_string_value(json_object_get(r.body, "version")), NULL, 10);
    api_reply_close(&r);
    write_ok("PUT", slow, "/v1/tables/docs/items/skew", "{\"by\":\"" SKEWED "\"}", &tok);
    assert_int_equal(wait_for(converged, NULL, 20000), 0);
    for (size_t i = 0; i < C->n_regions; i++) {
        assert_int_equal(get_tok(C->regions[i].node_url, "/v1/tables/docs/items/skew", &tok, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r.body, "item"), "by")), SKEWED);
        h2 = strtoull(json_string_value(json_object_get(r.body, "version")), NULL, 10);
        assert_true(h2 > h1);
        api_reply_close(&r);
    }
    /* Its wall clock is 5 s behind, its timestamps are not. */
    fprintf(stderr, "skewed write hlc %llu > %llu (%lld ms apart)\n", h2, h1,
            (long long)((h2 >> 16) - (h1 >> 16)));
}

/* CRDT items deleted after every region wrote them are collected in every
 * region (decision 044), and written again they start afresh: the counter
 * holds only the new increments, a field name takes a new type, and every
 * region shows the same (the skewed region's writes included). */
static void crdt_tombstones_are_collected_and_items_start_afresh(void **state)
{
    const char *first = C->regions[0].node_url;
    struct mr_token tok, del;
    char path[128], body[256];
    struct api_reply r;

    (void)state;
    memset(&tok, 0, sizeof(tok));
    memset(&del, 0, sizeof(del));
    write_ok("PUT", first, "/v1/tables/baskets", "{\"kind\":\"crdt\"}", NULL);
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < C->n_regions; i++) {
            snprintf(path, sizeof(path), "/v1/tables/baskets/items/c%d/ops", k);
            snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"add\",\"field\":\"items\",\"value\":\"%s\"},"
                     "{\"op\":\"increment\",\"field\":\"count\",\"by\":2}]}", C->regions[i].name);
            write_ok("POST", C->regions[i].node_url, path, body, &tok);
        }
    /* Deleted in one region once it has seen every write: the deletes
     * observe everything, so the tombstones are inert. */
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof(path), "/v1/tables/baskets/items/c%d", k);
        assert_int_equal(get_tok(first, path, &tok, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r.body, "item"), "count")), 6);
        api_reply_close(&r);
        write_ok("DELETE", first, path, NULL, &del);
    }
    for (size_t i = 0; i < C->n_regions; i++) {
        assert_int_equal(get_tok(C->regions[i].node_url, "/v1/tables/baskets/items/c0", &del, &r), 0);
        assert_int_equal(r.status, 404);
        api_reply_close(&r);
    }
    assert_int_equal(wait_for(tombstones_collected, (void *)"baskets", 20000), 0);

    /* Written again: in the slow-clock region first, then elsewhere. */
    memset(&tok, 0, sizeof(tok));
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof(path), "/v1/tables/baskets/items/c%d/ops", k);
        write_ok("POST", cluster_region(C, SKEWED)->node_url, path,
                 "{\"ops\":[{\"op\":\"increment\",\"field\":\"count\"},"
                 "{\"op\":\"increment\",\"field\":\"items\",\"by\":3}]}", &tok);
        write_ok("POST", C->regions[1].node_url, path,
                 "{\"ops\":[{\"op\":\"increment\",\"field\":\"count\"}]}", &tok);
    }
    assert_int_equal(wait_for(table_converged, (void *)"baskets", 10000), 0);
    for (size_t i = 0; i < C->n_regions; i++)
        for (int k = 0; k < 4; k++) {
            json_t *item;
            snprintf(path, sizeof(path), "/v1/tables/baskets/items/c%d", k);
            assert_int_equal(get_tok(C->regions[i].node_url, path, &tok, &r), 0);
            assert_int_equal(r.status, 200);
            item = json_object_get(r.body, "item");
            if (json_integer_value(json_object_get(item, "count")) != 2 ||
                json_integer_value(json_object_get(item, "items")) != 3)
                fprintf(stderr, "%s c%d: %s\n", C->regions[i].name, k, r.text);
            assert_int_equal(json_integer_value(json_object_get(item, "count")), 2);
            assert_int_equal(json_integer_value(json_object_get(item, "items")), 3);
            api_reply_close(&r);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_writes_with_restart_and_cut_converge),
        cmocka_unit_test(skewed_region_wins_once_it_has_seen_the_others),
        cmocka_unit_test(crdt_tombstones_are_collected_and_items_start_afresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
