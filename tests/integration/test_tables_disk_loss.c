/* Global tables: a region whose disk is lost (its node killed, its data
 * directory emptied, the node started again) gets back every item it had
 * written before, including those only the other regions still hold, and
 * the writes it acknowledges afterwards reach every region: its new log
 * positions continue after the ones the others have applied, so none of
 * them is mistaken for an entry already seen (docs/tables.md, "A region
 * that lost its disk").  Real processes, two regions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;

static const char topology[] = "[topology]\nname = tables-disk-loss\n\n"
                               "[region us-east-1]\n\n[region eu-west-1]\n";

#define OLD_ITEMS 40
#define NEW_ITEMS 30

/* <method> <base><path> with the cluster's token: the status, or -1. */
static int call(const char *method, const char *base, const char *path, const char *body)
{
    struct api_reply r;
    int status = -1;

    if (api_call(method, base, path, body, &r) == 0)
        status = r.status;
    api_reply_close(&r);
    return status;
}

static int put(const char *base, const char *path, const char *body)
{
    return call("PUT", base, path, body);
}

static int post(const char *base, const char *path, const char *body)
{
    return call("POST", base, path, body);
}

static char *digest(const char *base, const char *table)
{
    struct api_reply r;
    char path[64], *d = NULL;

    snprintf(path, sizeof(path), "/v1/tables/%s/digest", table);
    if (api_get(base, path, &r) == 0 && r.status == 200)
        d = strdup(json_string_value(json_object_get(r.body, "digest")));
    api_reply_close(&r);
    return d;
}

static int converged(void *arg)
{
    int same = 1;

    (void)arg;
    for (const char *const *t = (const char *const[]){"kv", "counts", NULL}; same && *t; t++) {
        char *a = digest(C->regions[0].node_url, *t), *b = digest(C->regions[1].node_url, *t);
        same = a && b && strcmp(a, b) == 0;
        free(a);
        free(b);
    }
    return same;
}

static int tables_everywhere(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < C->n_regions; i++)
        if (api_status(C->regions[i].node_url, "/v1/tables/kv") != 200 ||
            api_status(C->regions[i].node_url, "/v1/tables/counts") != 200)
            return 0;
    return 1;
}

static long long counter(const char *base)
{
    struct api_reply r;
    long long v = -1;

    if (api_get(base, "/v1/tables/counts/items/c", &r) == 0 && r.status == 200)
        v = json_integer_value(json_object_get(json_object_get(r.body, "item"), "n"));
    api_reply_close(&r);
    return v;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    return ftw->level == 0 ? 0 : remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    if (put(C->regions[0].node_url, "/v1/tables/kv", "{\"kind\":\"lww\"}") != 201 ||
        put(C->regions[0].node_url, "/v1/tables/counts", "{\"kind\":\"crdt\"}") != 201)
        return -1;
    return wait_for(tables_everywhere, NULL, 10000);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static void region_that_lost_its_disk_gets_its_items_back_and_loses_no_new_write(void **state)
{
    const char *a = C->regions[0].node_url, *b = C->regions[1].node_url;
    char path[64], body[64], data[1200];
    int acked_new = 0, acked_incr = 0;
    int acked[NEW_ITEMS] = {0};

    (void)state;
    for (int i = 0; i < OLD_ITEMS; i++) {
        snprintf(path, sizeof(path), "/v1/tables/kv/items/old-%d", i);
        snprintf(body, sizeof(body), "{\"i\":%d}", i);
        assert_int_equal(put(a, path, body), 200);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(post(a, "/v1/tables/counts/items/c/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"n\"}]}"),
                         200);
    assert_int_equal(put(b, "/v1/tables/kv/items/from-eu", "{\"eu\":true}"), 200);
    assert_int_equal(wait_for(converged, NULL, 20000), 0);

    /* The disk of us-east-1 is gone: node killed, data directory emptied. */
    assert_int_equal(cluster_region_action(C, "us-east-1", "kill", "node"), 0);
    snprintf(data, sizeof(data), "%s/us-east-1/data", C->rundir);
    assert_int_equal(nftw(data, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    assert_int_equal(cluster_region_action(C, "us-east-1", "restart", "node"), 0);

    /* At once, new writes.  Each is acknowledged (then it must survive) or
     * refused with a clear status while the region recovers its position. */
    for (int i = 0; i < NEW_ITEMS; i++) {
        int st;
        snprintf(path, sizeof(path), "/v1/tables/kv/items/new-%d", i);
        snprintf(body, sizeof(body), "{\"n\":%d}", i);
        st = put(a, path, body);
        if (st == 200)
            acked[i] = 1, acked_new++;
        else
            assert_true(st == 503 || st == 404);
        st = post(a, "/v1/tables/counts/items/c/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"n\"}]}");
        if (st == 200)
            acked_incr++;
        else
            assert_true(st == 503 || st == 404);
        test_sleep_ms(20);   /* pacing: spread the writes over the recovery */
    }
    fprintf(stderr, "after the restart: %d of %d puts and %d of %d increments acknowledged\n", acked_new,
            NEW_ITEMS, acked_incr, NEW_ITEMS);
    /* Once recovered, the region takes writes again. */
    assert_int_equal(put(a, "/v1/tables/kv/items/last", "{\"last\":true}"), 200);
    assert_int_equal(post(a, "/v1/tables/counts/items/c/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"n\"}]}"),
                     200);
    acked_incr++;

    assert_int_equal(wait_for(converged, NULL, 30000), 0);
    for (int r = 0; r < 2; r++) {
        const char *base = C->regions[r].node_url;
        for (int i = 0; i < OLD_ITEMS; i++) {
            snprintf(path, sizeof(path), "/v1/tables/kv/items/old-%d", i);
            assert_int_equal(api_status(base, path), 200);
        }
        for (int i = 0; i < NEW_ITEMS; i++) {
            if (!acked[i])
                continue;
            snprintf(path, sizeof(path), "/v1/tables/kv/items/new-%d", i);
            if (api_status(base, path) != 200)
                fail_msg("%s: acknowledged new-%d is missing", C->regions[r].name, i);
        }
        assert_int_equal(api_status(base, "/v1/tables/kv/items/last"), 200);
        assert_int_equal(api_status(base, "/v1/tables/kv/items/from-eu"), 200);
        assert_int_equal(counter(base), 5 + acked_incr);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_that_lost_its_disk_gets_its_items_back_and_loses_no_new_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
