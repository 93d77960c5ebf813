/* writeload.h -- a write load for integration tests of the global SQL
 * database: N_WL_CLIENTS clients spread over every region insert unique
 * (client, seq, round) rows into table w, each with an idempotency key, and
 * the time of every acknowledgement is recorded; wl_check then proves that
 * every acknowledged write is in every region exactly once.  Runs in the
 * caller's thread (wl_run) or in its own (wl_start/wl_join).
 * Header-only, like api.h.  Needs: CREATE TABLE w(client, seq, round). */
#ifndef MR_TEST_WRITELOAD_H
#define MR_TEST_WRITELOAD_H

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

#define WL_CLIENTS 9
#define WL_MAX_SEQ 20000

#define WL_TABLE "CREATE TABLE w(client INTEGER NOT NULL, seq INTEGER NOT NULL, round INTEGER NOT NULL)"

struct writeload {
    struct cluster *c;
    int round;
    uint64_t duration_ms;
    uint64_t max_requests;                  /* 0: until duration_ms */
    struct load_target targets[CLUSTER_MAX_REGIONS];
    char hosts[CLUSTER_MAX_REGIONS][64];
    int sending[WL_CLIENTS];
    int64_t sent_at[WL_CLIENTS][WL_MAX_SEQ];  /* mr_mono_us() of the request */
    int64_t acked_at[WL_CLIENTS][WL_MAX_SEQ]; /* mr_mono_us() of the ack, 0: none */
    struct load_result res;
    pthread_t thread;
    char auth[320];                         /* the cluster's bearer token header, or "" */
};

static inline void wl_gen(size_t client, uint64_t seq, struct load_req *req, void *data)
{
    struct writeload *w = data;

    req->path = "/v1/sql";
    req->target = client % w->c->n_regions;
    w->sending[client] = (int)seq;
    if (seq < WL_MAX_SEQ)
        w->sent_at[client][seq] = mr_mono_us();
    mr_buf_printf(req->body,
                  "{\"statements\":[{\"sql\":\"INSERT INTO w(client, seq, round) VALUES (?, ?, ?)\","
                  "\"params\":[%zu,%llu,%d]}],\"idempotency_key\":\"r%d-c%zu-s%llu\"}",
                  client, (unsigned long long)seq, w->round, w->round, client,
                  (unsigned long long)seq);
}

static inline int wl_check_answer(size_t client, int status, const char *body, size_t len,
                                  void *data)
{
    struct writeload *w = data;

    (void)body;
    (void)len;
    if (status != 200)
        return -1;
    if (w->sending[client] < WL_MAX_SEQ)
        w->acked_at[client][w->sending[client]] = mr_mono_us();
    return 0;
}

static inline void *wl_main(void *arg)
{
    struct writeload *w = arg;
    struct load_spec spec;

    memset(&spec, 0, sizeof(spec));
    spec.targets = w->targets;
    spec.n_targets = w->c->n_regions;
    spec.n_clients = WL_CLIENTS;
    spec.duration_ms = w->duration_ms;
    spec.max_requests = w->max_requests;
    /* The cluster's credentials: its admin token and, with TLS, its admin
     * certificate (cluster.h). */
    if (cluster_auth_token[0])
        snprintf(w->auth, sizeof(w->auth), "Authorization: Bearer %.250s\r\n", cluster_auth_token);
    spec.client_headers = w->auth[0] ? w->auth : NULL;
    spec.tls = cluster_tls;
    spec.gen = wl_gen;
    spec.check = wl_check_answer;
    spec.data = w;
    load_run(&spec, &w->res);
    return NULL;
}

/* A new load (free with free()); nothing runs yet. */
static inline struct writeload *wl_new(struct cluster *c, int round, uint64_t duration_ms,
                                       uint64_t max_requests)
{
    struct writeload *w = calloc(1, sizeof(*w));

    w->c = c;
    w->round = round;
    w->duration_ms = duration_ms;
    w->max_requests = max_requests;
    for (size_t i = 0; i < c->n_regions; i++) {
        char *host = NULL, *path = NULL;
        int port = 0;
        if (http_parse_url(c->regions[i].node_url, &host, &port, &path, NULL) == 0)
            snprintf(w->hosts[i], sizeof(w->hosts[i]), "%s", host);
        free(host);
        free(path);
        w->targets[i].host = w->hosts[i];
        w->targets[i].port = port;
    }
    return w;
}

static inline void wl_run(struct writeload *w)
{
    wl_main(w);
}

static inline int wl_start(struct writeload *w)
{
    return pthread_create(&w->thread, NULL, wl_main, w);
}

static inline void wl_join(struct writeload *w)
{
    pthread_join(w->thread, NULL);
}

/* Acknowledgements received after <after_us> (0: all). */
static inline size_t wl_acked(const struct writeload *w, int64_t after_us)
{
    size_t n = 0;
    for (size_t c = 0; c < WL_CLIENTS; c++)
        for (size_t s = 0; s < WL_MAX_SEQ; s++)
            n += w->acked_at[c][s] > after_us;
    return n;
}

struct wl_progress {
    const struct writeload *w;
    int64_t after_us;
    size_t want;
};

/* wait_for condition: at least <want> acknowledgements after <after_us>. */
static inline int wl_progressed(void *arg)
{
    struct wl_progress *p = arg;
    return wl_acked(p->w, p->after_us) >= p->want;
}

/* Wait (bounded by <timeout_ms>, scaled) for <want> acknowledgements after
 * <after_us> (0: since the start).  0, or -1 after printing what timed out. */
static inline int wl_wait_acks(const struct writeload *w, int64_t after_us, size_t want,
                               int64_t timeout_ms)
{
    struct wl_progress p = {w, after_us, want};
    return wait_for_named(wl_progressed, &p, timeout_ms, "write acknowledgements");
}

/* Every acknowledged write of the round is in every live region exactly
 * once, and no write of the round is there twice.  One query per client
 * keeps each answer under max_rows.  Returns 0, or -1 after printing why. */
static inline int wl_check(const struct writeload *w)
{
    char sql[200];

    for (size_t r = 0; r < w->c->n_regions; r++) {
        size_t found_acked = 0;

        if (w->c->regions[r].node.pid == 0)
            continue;
        for (size_t client = 0; client < WL_CLIENTS; client++) {
            struct api_reply rep;
            json_t *rows;

            snprintf(sql, sizeof(sql), "{\"statements\":[{\"sql\":\"SELECT seq, count(*) FROM w "
                     "WHERE round = %d AND client = %zu GROUP BY 1\"}]}", w->round, client);
            if (sqlt_post(w->c->regions[r].node_url, sql, &rep) != 0)
                return -1;
            if (rep.status != 200) {
                fprintf(stderr, "wl_check: %s: %d %s\n", w->c->regions[r].name, rep.status, rep.text);
                api_reply_close(&rep);
                return -1;
            }
            rows = json_object_get(json_array_get(json_object_get(rep.body, "results"), 0), "rows");
            for (size_t i = 0; i < json_array_size(rows); i++) {
                json_t *row = json_array_get(rows, i);
                json_int_t s = json_integer_value(json_array_get(row, 0));
                if (json_integer_value(json_array_get(row, 1)) != 1 || s < 0 || s >= WL_MAX_SEQ) {
                    fprintf(stderr, "wl_check: %s: write (%zu, %lld) applied %lld times\n",
                            w->c->regions[r].name, client, (long long)s,
                            (long long)json_integer_value(json_array_get(row, 1)));
                    api_reply_close(&rep);
                    return -1;
                }
                found_acked += w->acked_at[client][s] != 0;
            }
            api_reply_close(&rep);
        }
        if (found_acked != wl_acked(w, 0)) {
            fprintf(stderr, "wl_check: %s holds %zu of %zu acknowledged writes\n",
                    w->c->regions[r].name, found_acked, wl_acked(w, 0));
            return -1;
        }
    }
    return 0;
}

#endif
