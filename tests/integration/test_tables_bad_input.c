/* Global tables: bad input of every kind against a real node (one region):
 * each gets a 4xx naming the problem, nothing is written (the region's log
 * head does not move and the table's digest stays), and the node stays up. */
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

static struct cluster *C;
static const char *URL;

static const char one_region[] = "[topology]\nname = tables-bad-input\n\n[region us-east-1]\n";

static int call(const char *method, const char *path, const char *headers, const char *body,
                size_t body_len, struct api_reply *r)
{
    char url[2048], err[MR_ERRMSG_LEN] = "";
    struct http_result res;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", URL, path);
    rc = http_fetch(method, url, headers, body, body_len, (uint64_t)test_timeout_ms(API_TIMEOUT_MS), &res, err);
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

static long long head(void)
{
    struct api_reply r;
    long long h;

    assert_int_equal(call("GET", "/v1/status", NULL, NULL, 0, &r), 0);
    h = json_integer_value(json_object_get(json_object_get(r.body, "tables"), "head"));
    api_reply_close(&r);
    return h;
}

static int setup(void **state)
{
    struct api_reply r;

    (void)state;
    if (cluster_start_text(one_region, &C) != 0)
        return -1;
    URL = C->regions[0].node_url;
    if (call("PUT", "/v1/tables/docs", NULL, "{\"kind\":\"lww\"}", 14, &r) != 0 || r.status != 201)
        return -1;
    api_reply_close(&r);
    if (call("PUT", "/v1/tables/bags", NULL, "{\"kind\":\"crdt\"}", 15, &r) != 0 || r.status != 201)
        return -1;
    api_reply_close(&r);
    if (call("POST", "/v1/tables/bags/items/c1/ops", NULL,
             "{\"ops\":[{\"op\":\"add\",\"field\":\"items\",\"value\":\"a\"}]}", 50, &r) != 0 || r.status != 200)
        return -1;
    api_reply_close(&r);
    if (call("PUT", "/v1/tables/docs/items/d1", NULL, "{\"v\":1}", 7, &r) != 0 || r.status != 200)
        return -1;
    api_reply_close(&r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

static void expect(const char *method, const char *path, const char *headers, const char *body,
                   size_t len, int status, const char *code, const char *needle)
{
    long long before = head();
    struct api_reply r;
    json_t *err;
    const char *msg;

    assert_int_equal(call(method, path, headers, body, len, &r), 0);
    if (r.status != status)
        fprintf(stderr, "%s %.80s -> %d %s\n", method, path, r.status, r.text);
    assert_int_equal(r.status, status);
    err = json_object_get(r.body, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    msg = json_string_value(json_object_get(err, "message"));
    if (strstr(msg, needle) == NULL)
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, needle);
    assert_non_null(strstr(msg, needle));
    api_reply_close(&r);
    assert_int_equal(head(), before);
    assert_int_equal(api_status(URL, "/healthz"), 200);
}

static size_t len_of(const char *b)
{
    return b ? strlen(b) : 0;
}
#define EXPECT(m, p, b, st, code, needle) expect((m), (p), NULL, (b), len_of(b), (st), (code), (needle))

static void unknown_tables_and_paths(void **state)
{
    (void)state;
    EXPECT("GET", "/v1/tables/nope/items/k", NULL, 404, "not_found", "no table named 'nope'");
    EXPECT("PUT", "/v1/tables/nope/items/k", "{}", 404, "not_found", "no table named 'nope'");
    EXPECT("POST", "/v1/tables/nope/items/k/ops", "{\"ops\":[]}", 404, "not_found", "no table named");
    EXPECT("DELETE", "/v1/tables/nope/items/k", NULL, 404, "not_found", "no table named");
    EXPECT("GET", "/v1/tables/nope/digest", NULL, 404, "not_found", "no table named");
    EXPECT("GET", "/v1/tables/nope/items", NULL, 404, "not_found", "no table named");
    EXPECT("GET", "/v1/tables/docs/items/k/ops/x", NULL, 404, "not_found", "no such path");
    EXPECT("GET", "/v1/tables/docs/whatever", NULL, 404, "not_found", "no such path");
    EXPECT("DELETE", "/v1/tables/docs/items/absent", NULL, 404, "not_found", "no item 'absent'");
    EXPECT("POST", "/v1/tables/docs/items/k", "{}", 405, "method_not_allowed", "GET, PUT, DELETE");
    EXPECT("PATCH", "/v1/tables", NULL, 405, "method_not_allowed", "GET");
}

static void invalid_names_and_keys(void **state)
{
    char path[1024];

    (void)state;
    EXPECT("PUT", "/v1/tables/bad.name", "{\"kind\":\"lww\"}", 400, "invalid_request", "not a letter");
    EXPECT("PUT", "/v1/tables/_hidden", "{\"kind\":\"lww\"}", 400, "invalid_request", "reserved");
    EXPECT("PUT", "/v1/tables/docs/items/a%20b", "{}", 400, "invalid_key", "not allowed");
    EXPECT("PUT", "/v1/tables/docs/items/a\"b", "{}", 400, "invalid_key", "not allowed");
    snprintf(path, sizeof(path), "/v1/tables/docs/items/%0257d", 7);
    EXPECT("PUT", path, "{}", 400, "invalid_key", "longer than 256");
    snprintf(path, sizeof(path), "/v1/tables/docs/items/%0256d", 7); /* the limit itself is fine */
    {
        struct api_reply r;
        assert_int_equal(call("PUT", path, NULL, "{}", 2, &r), 0);
        assert_int_equal(r.status, 200);
        api_reply_close(&r);
    }
}

static void invalid_documents_specs_and_tokens(void **state)
{
    char *big = malloc(70000);

    (void)state;
    EXPECT("PUT", "/v1/tables/docs/items/k", "{\"v\":", 400, "invalid_request", "not valid JSON");
    EXPECT("PUT", "/v1/tables/docs/items/k", "[1,2]", 400, "invalid_request", "must be a JSON object");
    EXPECT("PUT", "/v1/tables/docs/items/k", "{\"a\":1,\"a\":2}", 400, "invalid_request", "not valid JSON");
    snprintf(big, 70000, "{\"v\":\"%065600d\"}", 1);
    EXPECT("PUT", "/v1/tables/docs/items/k", big, 413, "too_large", "at most 65536");
    EXPECT("PUT", "/v1/tables/t2", "{\"kind\":\"bag\"}", 400, "invalid_request", "\"kind\" must be");
    EXPECT("PUT", "/v1/tables/t2", "{\"kind\":\"lww\",\"ttl\":5}", 400, "invalid_request", "unknown field \"ttl\"");
    EXPECT("PUT", "/v1/tables/docs", "{\"kind\":\"crdt\"}", 409, "exists", "exists with another spec");
    expect("GET", "/v1/tables/docs/items/d1", "Meridian-Token: 1.x\r\n", NULL, 0, 400, "invalid_request",
           "not a Meridian consistency token");
    expect("GET", "/v1/tables/docs/items/d1", "Meridian-Token: 1.0.us-east-1=99999\r\n", NULL, 0, 400,
           "invalid_token", "log ends at");
    expect("PUT", "/v1/tables/docs/items/d1", "If-Match: \"1@nowhere\"\r\n", "{\"v\":2}", 7, 412,
           "precondition_failed", "If-Match: the item's version is");
    expect("PUT", "/v1/tables/docs/items/new", "If-Match: *\r\n", "{\"v\":2}", 7, 412,
           "precondition_failed", "does not exist");
    EXPECT("GET", "/v1/tables/docs/items?limit=0", NULL, 400, "invalid_request", "limit");
    free(big);
}

static void invalid_operations(void **state)
{
    char ops[8192];

    (void)state;
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":[{\"op\":\"explode\",\"field\":\"x\"}]}", 400,
           "invalid_request", "unknown op \"explode\"");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"items\"}]}", 409,
           "conflict", "field \"items\" is a set, not a counter");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":[{\"op\":\"add\",\"field\":\"items\",\"value\":[1]}]}",
           400, "invalid_request", "string, number or boolean");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"n\",\"by\":\"2\"}]}",
           400, "invalid_request", "\"by\" must be an integer");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":{}}", 400, "invalid_request", "non-empty array");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", "{\"ops\":[],\"x\":1}", 400, "invalid_request", "unknown field \"x\"");
    /* An op that fails leaves the earlier ops of the request unapplied. */
    EXPECT("POST", "/v1/tables/bags/items/c1/ops",
           "{\"ops\":[{\"op\":\"add\",\"field\":\"items\",\"value\":\"b\"},{\"op\":\"set\",\"field\":\"items\",\"value\":1}]}",
           409, "conflict", "is a set, not a register");
    strcpy(ops, "{\"ops\":[");
    for (int i = 0; i < 101; i++)
        strcat(ops, i ? ",{\"op\":\"increment\",\"field\":\"n\"}" : "{\"op\":\"increment\",\"field\":\"n\"}");
    strcat(ops, "]}");
    EXPECT("POST", "/v1/tables/bags/items/c1/ops", ops, 413, "too_large", "at most 100 per request");
    EXPECT("PUT", "/v1/tables/bags/items/c1", "{\"v\":1}", 409, "conflict", "is a crdt table");
    EXPECT("POST", "/v1/tables/docs/items/d1/ops", "{\"ops\":[{\"op\":\"increment\",\"field\":\"n\"}]}", 409,
           "conflict", "is an lww table");
    {
        struct api_reply r;
        assert_int_equal(call("GET", "/v1/tables/bags/items/c1", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(json_object_get(json_object_get(r.body, "item"), "items")), 1);
        assert_null(json_object_get(json_object_get(r.body, "item"), "n"));
        api_reply_close(&r);
    }
    EXPECT("POST", "/v1/tables/_replicate", "{\"origin\":\"x\"}", 400, "invalid_request", "expected {\"origin\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_tables_and_paths),
        cmocka_unit_test(invalid_names_and_keys),
        cmocka_unit_test(invalid_documents_specs_and_tokens),
        cmocka_unit_test(invalid_operations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
