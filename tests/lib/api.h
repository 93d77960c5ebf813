/* api.h -- tiny HTTP helpers for integration tests, over http_fetch.
 *
 *     struct api_reply r;
 *     assert_int_equal(api_post_json(c->regions[0].node_url, "/v1/sql", "{\"sql\":\"...\"}", &r), 0);
 *     assert_int_equal(r.status, 200);  ... json_object_get(r.body, "results") ...
 *     api_reply_close(&r);
 *
 * Header-only on purpose: tests/lib/ *.c is linked into every test binary,
 * including unit tests of modules that have no HTTP client (src/common), so
 * only the tests that include this header pull in src/http.
 * Every call is bounded (API_TIMEOUT_MS, scaled by MR_TEST_TIMEOUT_MULTIPLIER).
 */
#ifndef MR_TEST_API_H
#define MR_TEST_API_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "http/http.h"
#include "lib/cluster.h"
#include "lib/wait.h"

#define API_TIMEOUT_MS 10000

struct api_reply {
    int status;     /* HTTP status */
    json_t *body;   /* parsed body, NULL when it is not JSON; owned, see api_reply_close */
    char *text;     /* raw body, NUL-terminated (malloc'd) */
};

static inline void api_reply_close(struct api_reply *r)
{
    json_decref(r->body);
    r->body = NULL;
    free(r->text);
    r->text = NULL;
}

/* <method> <base_url><path> with an optional JSON <body>, sending <token>
 * as a bearer token unless it is NULL or "".  Returns 0 when an answer
 * arrived (any status; fills *r, close it with api_reply_close), or an MR_E*
 * code (printed) when none did. */
static inline int api_call_as(const char *token, const char *method, const char *base_url,
                              const char *path, const char *body, struct api_reply *r)
{
    char url[512], err[MR_ERRMSG_LEN] = "", headers[512] = "";
    struct http_result res;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base_url, path);
    if (token && *token)
        snprintf(headers, sizeof(headers), "Authorization: Bearer %.300s\r\n", token);
    if (body)
        strcat(headers, "Content-Type: application/json\r\n");
    rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0,
                    (uint64_t)test_timeout_ms(API_TIMEOUT_MS), &res, err);
    if (rc != 0) {
        fprintf(stderr, "api: %s %s: %s\n", method, url, err);
        return rc;
    }
    r->status = res.status;
    r->text = strndup(res.body.data ? res.body.data : "", res.body.len);
    r->body = json_loadb(r->text, res.body.len, 0, NULL);
    http_result_close(&res);
    return 0;
}

/* api_call_as with the cluster's admin token (cluster_auth_token). */
static inline int api_call(const char *method, const char *base_url, const char *path,
                           const char *body, struct api_reply *r)
{
    return api_call_as(cluster_auth_token, method, base_url, path, body, r);
}

static inline int api_post_json(const char *base_url, const char *path, const char *json,
                                struct api_reply *r)
{
    return api_call("POST", base_url, path, json, r);
}

static inline int api_get(const char *base_url, const char *path, struct api_reply *r)
{
    return api_call("GET", base_url, path, NULL, r);
}

/* The HTTP status of GET <base_url><path>, or a negative MR_E* code when no
 * answer came (quietly: for polling). */
static inline int api_status(const char *base_url, const char *path)
{
    char url[512], err[MR_ERRMSG_LEN], headers[300] = "";
    struct http_result res;
    int rc;

    snprintf(url, sizeof(url), "%s%s", base_url, path);
    if (cluster_auth_token[0])
        snprintf(headers, sizeof(headers), "Authorization: Bearer %.250s\r\n", cluster_auth_token);
    rc = http_fetch("GET", url, headers[0] ? headers : NULL, NULL, 0, (uint64_t)test_timeout_ms(2000),
                    &res, err);
    if (rc != 0)
        return rc;
    rc = res.status;
    http_result_close(&res);
    return rc;
}

/* The region whose etcd member leads the etcd cluster, or NULL when no
 * member that answers knows a leader.  Asks each live member's
 * /v3/maintenance/status ("leader" and "header.member_id"). */
static inline struct cluster_region *api_etcd_leader(struct cluster *c)
{
    for (size_t i = 0; i < c->n_regions; i++) {
        struct api_reply r;
        const char *leader, *self;
        int is_leader;
        if (c->regions[i].etcd.pid == 0 ||
            api_post_json(c->regions[i].etcd_url, "/v3/maintenance/status", "{}", &r) != 0)
            continue;
        leader = json_string_value(json_object_get(r.body, "leader"));
        self = json_string_value(json_object_get(json_object_get(r.body, "header"), "member_id"));
        is_leader = r.status == 200 && leader && self && strcmp(leader, self) == 0;
        api_reply_close(&r);
        if (is_leader)
            return &c->regions[i];
    }
    return NULL;
}

#endif
