/* Global SQL database under failure, three real regions: the etcd leader
 * killed with SIGKILL while every region writes; a node killed with SIGKILL
 * while it applies, then restarted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/load.h"
#include "common/buf.h"
#include "common/util.h"
#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"
#include "lib/wait.h"

static struct cluster *C;

static int setup(void **state)
{
    (void)state;
    if (cluster_start(NULL, &C) != 0)
        return -1;
    return sqlt_exec(C->regions[0].node_url,
                     "CREATE TABLE w(client INTEGER NOT NULL, seq INTEGER NOT NULL, round INTEGER NOT NULL)");
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* A write load in a thread: every region, unique (client, seq) rows, each
 * write with an idempotency key, acknowledgements recorded with their time. */
#define N_CLIENTS 9
#define MAX_SEQ 20000

struct writer {
    struct cluster *c;
    int round;
    uint64_t duration_ms;
    struct load_target targets[CLUSTER_MAX_REGIONS];
    char hosts[CLUSTER_MAX_REGIONS][64];
    int sending[N_CLIENTS];
    int64_t acked_at[N_CLIENTS][MAX_SEQ];   /* mr_mono_us() of the ack, 0: none */
    struct load_result res;
    pthread_t thread;
};

static void gen_write(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct writer *w = data;

    req->path = "/v1/sql";
    req->target = client % w->c->n_regions;
    w->sending[client] = (int)seq;
    mr_buf_printf(req->body,
                  "{\"statements\":[{\"sql\":\"INSERT INTO w(client, seq, round) VALUES (?, ?, ?)\","
                  "\"params\":[%zu,%llu,%d]}],\"idempotency_key\":\"r%d-c%zu-s%llu\"}",
                  client, (unsigned long long)seq, w->round, w->round, client,
                  (unsigned long long)seq);
}

static int check_write(size_t client, int status, const char *body, size_t len, void *data)
{
    struct writer *w = data;

    (void)body;
    (void)len;
    if (status != 200)
        return -1;
    if (w->sending[client] < MAX_SEQ)
        w->acked_at[client][w->sending[client]] = mr_mono_us();
    return 0;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct load_spec spec;

    memset(&spec, 0, sizeof(spec));
    spec.targets = w->targets;
    spec.n_targets = w->c->n_regions;
    spec.n_clients = N_CLIENTS;
    spec.duration_ms = w->duration_ms;
    spec.gen = gen_write;
    spec.check = check_write;
    spec.data = w;
    load_run(&spec, &w->res);
    return NULL;
}

static struct writer *writer_start(int round, uint64_t duration_ms)
{
    struct writer *w = calloc(1, sizeof(*w));

    w->c = C;
    w->round = round;
    w->duration_ms = duration_ms;
    for (size_t i = 0; i < C->n_regions; i++) {
        char *host = NULL, *path = NULL;
        int port = 0;
        assert_int_equal(http_parse_url(C->regions[i].node_url, &host, &port, &path, NULL), 0);
        snprintf(w->hosts[i], sizeof(w->hosts[i]), "%s", host);
        free(host);
        free(path);
        w->targets[i].host = w->hosts[i];
        w->targets[i].port = port;
    }
    assert_int_equal(pthread_create(&w->thread, NULL, writer_main, w), 0);
    return w;
}

static size_t acked_count(struct writer *w, int64_t after_us)
{
    size_t n = 0;
    for (size_t c = 0; c < N_CLIENTS; c++)
        for (size_t s = 0; s < MAX_SEQ; s++)
            n += w->acked_at[c][s] > after_us;
    return n;
}

struct progress {
    struct writer *w;
    int64_t after_us;
    size_t want;
};

static int acked_after(void *arg)
{
    struct progress *p = arg;
    return acked_count(p->w, p->after_us) >= p->want;
}

/* Every acknowledged write of <round> is in every live region exactly once;
 * no write of the round was applied twice.  One query per client keeps each
 * answer under max_rows. */
static void check_round(struct writer *w)
{
    char sql[200];

    for (size_t r = 0; r < C->n_regions; r++) {
        size_t found_acked = 0;

        for (size_t client = 0; client < N_CLIENTS; client++) {
            struct api_reply rep;
            json_t *rows;

            snprintf(sql, sizeof(sql), "{\"statements\":[{\"sql\":\"SELECT seq, count(*) FROM w "
                     "WHERE round = %d AND client = %zu GROUP BY 1\"}]}", w->round, client);
            assert_int_equal(sqlt_post(C->regions[r].node_url, sql, &rep), 0);
            assert_int_equal(rep.status, 200);
            rows = json_object_get(json_array_get(json_object_get(rep.body, "results"), 0), "rows");
            for (size_t i = 0; i < json_array_size(rows); i++) {
                json_t *row = json_array_get(rows, i);
                json_int_t s = json_integer_value(json_array_get(row, 0));
                assert_int_equal(json_integer_value(json_array_get(row, 1)), 1); /* never twice */
                assert_true(s >= 0 && s < MAX_SEQ);
                found_acked += w->acked_at[client][s] != 0;
            }
            api_reply_close(&rep);
        }
        assert_int_equal(found_acked, acked_count(w, 0)); /* no acknowledged write lost */
    }
}

static void etcd_leader_killed_under_writes_loses_nothing_and_writes_resume(void **state)
{
    struct cluster_region *leader;
    struct progress p;
    struct writer *w;
    int64_t killed_at;

    (void)state;
    w = writer_start(1, (uint64_t)test_timeout_ms(12000));
    p.w = w;
    p.after_us = 0;
    p.want = 50;
    assert_int_equal(wait_for(acked_after, &p, 20000), 0);

    leader = api_etcd_leader(C);
    assert_non_null(leader);
    fprintf(stderr, "killing the etcd leader, in %s\n", leader->name);
    assert_int_equal(cluster_region_action(C, leader->name, "kill", "etcd"), 0);
    killed_at = mr_mono_us();

    /* Writes resume: acknowledgements keep arriving after the kill. */
    p.after_us = killed_at;
    p.want = 200;
    assert_int_equal(wait_for(acked_after, &p, 30000), 0);
    pthread_join(w->thread, NULL);
    fprintf(stderr, "writes: %llu acknowledged, %llu failed (%s)\n",
            (unsigned long long)w->res.all.ok, (unsigned long long)w->res.all.failed,
            w->res.first_error);

    /* The killed member comes back and catches up; every region converges. */
    assert_int_equal(cluster_region_action(C, leader->name, "restart", "etcd"), 0);
    assert_true(sqlt_identical(C, 30000));
    check_round(w);
    free(w);
}

static void node_killed_while_applying_resumes_and_converges(void **state)
{
    struct cluster_region *victim = &C->regions[1];
    struct api_reply rep;
    struct progress p;
    struct writer *w;

    (void)state;
    w = writer_start(2, (uint64_t)test_timeout_ms(8000));
    p.w = w;
    p.after_us = 0;
    p.want = 100;
    assert_int_equal(wait_for(acked_after, &p, 20000), 0);
    /* Under steady writes the node applies a batch every few ms: SIGKILL
     * lands in or between applies. */
    assert_int_equal(cluster_region_action(C, victim->name, "kill", "node"), 0);
    pthread_join(w->thread, NULL);
    assert_int_equal(cluster_region_action(C, victim->name, "restart", "node"), 0);

    assert_true(sqlt_identical(C, 30000));
    check_round(w);
    for (size_t r = 0; r < C->n_regions; r++) {
        assert_int_equal(api_get(C->regions[r].node_url, "/v1/digest?integrity=1", &rep), 0);
        assert_int_equal(rep.status, 200);
        assert_string_equal(json_string_value(json_object_get(rep.body, "integrity")), "ok");
        api_reply_close(&rep);
    }
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(etcd_leader_killed_under_writes_loses_nothing_and_writes_resume),
        cmocka_unit_test(node_killed_while_applying_resumes_and_converges),
    };
    return cmocka_run_group_tests_name("sql_failures", tests, setup, teardown);
}
