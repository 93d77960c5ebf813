/* Global tables: a region cut off for longer than its peers keep their
 * change logs (tables_log_retention = 50 entries here) is seeded from a
 * peer's snapshot when it comes back, keeps the writes it made meanwhile,
 * and every region converges; the others never stopped writing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;

static const char topology[] = "[topology]\nname = tables-seed\n\n[limits]\ntables_log_retention = 50\n"
                               "tables_sweep_interval = 100ms\n\n"
                               "[region us-east-1]\n\n[region eu-west-1]\n\n[region ap-southeast-1]\n";

static int put(const char *base, const char *path, const char *body)
{
    char url[512], err[MR_ERRMSG_LEN];
    struct http_result res;
    int status;

    snprintf(url, sizeof(url), "%s%s", base, path);
    if (http_fetch("PUT", url, NULL, body, strlen(body), (uint64_t)test_timeout_ms(API_TIMEOUT_MS), &res, err) != 0)
        return -1;
    status = res.status;
    http_result_close(&res);
    return status;
}

static long long status_num(const char *base, const char *field)
{
    struct api_reply r;
    long long v = -1;

    if (api_get(base, "/v1/status", &r) == 0 && r.status == 200)
        v = json_integer_value(json_object_get(json_object_get(r.body, "tables"), field));
    api_reply_close(&r);
    return v;
}

static char *digest(const char *base)
{
    struct api_reply r;
    char *d = NULL;

    if (api_get(base, "/v1/tables/kv/digest", &r) == 0 && r.status == 200)
        d = strdup(json_string_value(json_object_get(r.body, "digest")));
    api_reply_close(&r);
    return d;
}

static int converged(void *arg)
{
    char *first = digest(C->regions[0].node_url);
    int same = first != NULL;

    (void)arg;
    for (size_t i = 1; same && i < C->n_regions; i++) {
        char *d = digest(C->regions[i].node_url);
        same = d && strcmp(d, first) == 0;
        free(d);
    }
    free(first);
    return same;
}

static int table_everywhere(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < C->n_regions; i++)
        if (api_status(C->regions[i].node_url, "/v1/tables/kv") != 200)
            return 0;
    return 1;
}

static int trimmed(void *arg)
{
    return status_num((const char *)arg, "log_first") > 100;
}

static int setup(void **state)
{
    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    if (put(C->regions[0].node_url, "/v1/tables/kv", "{\"kind\":\"lww\"}") != 201)
        return -1;
    return wait_for(table_everywhere, NULL, 10000);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static void region_away_past_log_retention_is_seeded_and_converges(void **state)
{
    const char *a = C->regions[0].node_url, *b = C->regions[1].node_url, *cc = C->regions[2].node_url;
    char path[64], body[64];

    (void)state;
    assert_int_equal(cluster_region_action(C, C->regions[1].name, "partition", NULL), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof(path), "/v1/tables/kv/items/a-%d", i);
        snprintf(body, sizeof(body), "{\"i\":%d}", i);
        assert_int_equal(put(i % 3 == 2 ? cc : a, path, body), 200);
        if (i % 10 == 0) {
            snprintf(path, sizeof(path), "/v1/tables/kv/items/b-%d", i);
            assert_int_equal(put(b, path, body), 200);   /* the cut-off region writes too */
        }
    }
    /* us-east-1 dropped what eu-west-1 has not applied (past the 50 kept). */
    assert_int_equal(wait_for(trimmed, (void *)a, 10000), 0);
    fprintf(stderr, "us-east-1's log now starts at %lld (head %lld)\n", status_num(a, "log_first"),
            status_num(a, "head"));
    assert_int_equal(cluster_region_action(C, C->regions[1].name, "heal", NULL), 0);
    assert_int_equal(wait_for(converged, NULL, 30000), 0);
    assert_true(status_num(b, "seeds") >= 1);
    fprintf(stderr, "eu-west-1 seeded %lld time(s); all regions converged\n", status_num(b, "seeds"));
    /* eu-west-1's own writes of the cut are everywhere. */
    assert_int_equal(api_status(a, "/v1/tables/kv/items/b-290"), 200);
    assert_int_equal(api_status(b, "/v1/tables/kv/items/a-299"), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_away_past_log_retention_is_seeded_and_converges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
