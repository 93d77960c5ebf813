/* sqlt.h -- SQL helpers for integration tests of the global SQL database,
 * over api.h.  Header-only for the same reason as api.h. */
#ifndef MR_TEST_SQLT_H
#define MR_TEST_SQLT_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

/* POST <body> to <url>/v1/sql. */
static inline int sqlt_post(const char *url, const char *body, struct api_reply *r)
{
    return api_post_json(url, "/v1/sql", body, r);
}

/* Run one statement without parameters; expect 200.  Returns 0 or -1. */
static inline int sqlt_exec(const char *url, const char *sql)
{
    json_t *req = json_pack("{s:[{s:s}]}", "statements", "sql", sql);
    char *body = json_dumps(req, JSON_COMPACT);
    struct api_reply r;
    int rc = sqlt_post(url, body, &r);

    if (rc == 0 && r.status != 200) {
        fprintf(stderr, "sqlt_exec %s: %d %s\n", sql, r.status, r.text);
        rc = -1;
    }
    if (rc == 0)
        api_reply_close(&r);
    free(body);
    json_decref(req);
    return rc ? -1 : 0;
}

/* First column of the first row of a strong read, as an integer; -1 on error. */
static inline long long sqlt_scalar(const char *url, const char *sql)
{
    json_t *req = json_pack("{s:[{s:s}],s:s}", "statements", "sql", sql, "consistency", "strong");
    char *body = json_dumps(req, JSON_COMPACT);
    struct api_reply r;
    long long v = -1;

    if (sqlt_post(url, body, &r) == 0) {
        if (r.status == 200) {
            json_t *rows = json_object_get(json_array_get(json_object_get(r.body, "results"), 0), "rows");
            v = json_integer_value(json_array_get(json_array_get(rows, 0), 0));
        } else {
            fprintf(stderr, "sqlt_scalar %s: %d %s\n", sql, r.status, r.text);
        }
        api_reply_close(&r);
    }
    free(body);
    json_decref(req);
    return v;
}

/* Applied revision of a region's node, or -1. */
static inline long long sqlt_applied(const char *url, long long *head)
{
    struct api_reply r;
    long long rev = -1;

    if (api_get(url, "/v1/status", &r) != 0)
        return -1;
    if (r.status == 200) {
        rev = json_integer_value(json_object_get(json_object_get(r.body, "applied"), "rev"));
        if (head)
            *head = json_integer_value(json_object_get(json_object_get(r.body, "head"), "rev"));
    }
    api_reply_close(&r);
    return rev;
}

/* Condition for wait_for: every live node has applied the same revision,
 * and that is at least the head any of them knows. */
static inline int sqlt_converged(void *arg)
{
    struct cluster *c = arg;
    long long first = -1, max_head = 0;

    for (size_t i = 0; i < c->n_regions; i++) {
        long long head = 0, rev;
        if (c->regions[i].node.pid == 0)
            continue;
        rev = sqlt_applied(c->regions[i].node_url, &head);
        if (rev < 0)
            return 0;
        if (first < 0)
            first = rev;
        if (rev != first)
            return 0;
        if (head > max_head)
            max_head = head;
    }
    return first >= max_head;
}

/* Digest of a region; writes 64 hex chars + NUL into <out>.  0 or -1. */
static inline int sqlt_digest(const char *url, char out[65])
{
    struct api_reply r;
    int rc = -1;

    if (api_get(url, "/v1/digest", &r) != 0)
        return -1;
    if (r.status == 200 && json_string_value(json_object_get(r.body, "digest"))) {
        snprintf(out, 65, "%s", json_string_value(json_object_get(r.body, "digest")));
        rc = 0;
    }
    api_reply_close(&r);
    return rc;
}

/* Wait for convergence, then 1 when every live region's digest is equal. */
static inline int sqlt_identical(struct cluster *c, int64_t timeout_ms)
{
    char d0[65] = "", d[65];
    int first = 1;

    if (wait_for(sqlt_converged, c, timeout_ms) != 0)
        return 0;
    for (size_t i = 0; i < c->n_regions; i++) {
        if (c->regions[i].node.pid == 0)
            continue;
        if (sqlt_digest(c->regions[i].node_url, first ? d0 : d) != 0)
            return 0;
        if (!first && strcmp(d0, d) != 0) {
            fprintf(stderr, "digest of %s differs: %s vs %s\n", c->regions[i].name, d, d0);
            return 0;
        }
        first = 0;
    }
    return 1;
}

#endif
