/* Bad input of every kind against a real node (one region): each gets a
 * 4xx naming the problem, the daemon stays up, and nothing is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/sqlt.h"

static struct cluster *C;
static const char *URL;

/* The plain path, tls and auth off (both on by default): the malformed
 * requests are written on a raw socket, and the parser behind TLS and
 * tokens is the same one (test_tls_topology and test_security cover them). */
static const char one_region[] = "[topology]\nname = bad-input\ntls = no\nauth = no\n\n"
                                 "[region us-east-1]\n";

static int setup(void **state)
{
    (void)state;
    if (cluster_start_text(one_region, &C) != 0)
        return -1;
    URL = C->regions[0].node_url;
    return sqlt_exec(URL, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* The POST's status and error message must match; the store must not move. */
static void expect_refused(const char *body, int status, const char *code, const char *needle)
{
    long long before = sqlt_applied(URL, NULL), after;
    struct api_reply r;
    json_t *err;

    assert_int_equal(sqlt_post(URL, body, &r), 0);
    if (r.status != status)
        fprintf(stderr, "body %s -> %d %s\n", body, r.status, r.text);
    assert_int_equal(r.status, status);
    err = json_object_get(r.body, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    if (strstr(json_string_value(json_object_get(err, "message")), needle) == NULL)
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", json_string_value(json_object_get(err, "message")), needle);
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), needle));
    api_reply_close(&r);
    after = sqlt_applied(URL, NULL);
    assert_int_equal(before, after);
    assert_int_equal(api_status(URL, "/healthz"), 200);
}

static void invalid_json_is_refused(void **state)
{
    (void)state;
    expect_refused("{\"statements\": [", 400, "invalid_request", "not valid JSON");
    expect_refused("[1,2]", 400, "invalid_request", "must be a JSON object");
    expect_refused("{\"statements\": []}", 400, "invalid_request", "non-empty array");
    expect_refused("{\"statement\": [{\"sql\":\"SELECT 1\"}]}", 400, "invalid_request", "unknown field \"statement\"");
    expect_refused("{\"statements\": [{\"sql\": 42}]}", 400, "invalid_request", "\"sql\" must be a string");
}

static void wrong_parameters_are_refused(void **state)
{
    (void)state;
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (?)\",\"params\":[[1]]}]}", 400,
                   "invalid_request", "arrays are not a SQL value");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (?)\",\"params\":[1, 2]}]}", 400,
                   "invalid_request", "parameter");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (?)\"}]}", 400,
                   "invalid_request", "parameter");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (:v)\",\"params\":{\"w\":1}}]}", 400,
                   "invalid_request", "parameter");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (?)\",\"params\":[{\"base64\":\"!!\"}]}]}",
                   400, "invalid_request", "base64");
}

static void bad_sql_is_refused(void **state)
{
    (void)state;
    expect_refused("{\"statements\":[{\"sql\":\"INSRT INTO t(v) VALUES ('x')\"}]}", 400, "sql_error", "syntax error");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO nope(v) VALUES ('x')\"}]}", 400, "sql_error", "no such table");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES ('x'); DROP TABLE t\"}]}", 400,
                   "invalid_request", "one SQL statement per text");
    expect_refused("{\"statements\":[{\"sql\":\"ATTACH DATABASE '/tmp/x.db' AS x\"}]}", 400, "not_allowed", "ATTACH");
    expect_refused("{\"statements\":[{\"sql\":\"BEGIN\"}]}", 400, "not_allowed", "BEGIN");
    expect_refused("{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES (sqlite_version())\"}]}", 400,
                   "not_allowed", "sqlite_version");
    expect_refused("{\"statements\":[{\"sql\":\"DELETE FROM _meridian_idem\"}]}", 400, "not_allowed", "_meridian_");
}

static void bad_consistency_and_tokens_are_refused(void **state)
{
    (void)state;
    expect_refused("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"consistency\":\"linearizable\"}", 400,
                   "invalid_request", "unknown consistency");
    expect_refused("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":\"garbage\"}", 400,
                   "invalid_request", "not a Meridian consistency token");
    expect_refused("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":\"1.-5\"}", 400,
                   "invalid_request", "not a Meridian consistency token");
    expect_refused("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"token\":\"1.99999999\"}", 400,
                   "invalid_token", "log ends at");
    expect_refused("{\"statements\":[{\"sql\":\"SELECT 1\"}],\"idempotency_key\":\"\"}", 400,
                   "invalid_request", "idempotency_key");
}

/* Raw bytes on a socket: returns the first line of the answer. */
static void raw_exchange(const char *request, size_t len, char *first_line, size_t size)
{
    char *host = NULL, *path = NULL;
    struct sockaddr_in sa;
    char buf[4096];
    ssize_t n;
    int port = 0, fd;

    assert_int_equal(http_parse_url(URL, &host, &port, &path, NULL), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, request, len), (ssize_t)len);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    snprintf(first_line, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
    close(fd);
    free(host);
    free(path);
}

static void malformed_http_and_oversized_bodies_are_refused(void **state)
{
    char line[256];
    char *big;
    size_t big_len = 2 * 1024 * 1024;
    long long before = sqlt_applied(URL, NULL);

    (void)state;
    raw_exchange("GARBAGE\r\n\r\n", strlen("GARBAGE\r\n\r\n"), line, sizeof(line));
    assert_non_null(strstr(line, " 400 "));
    /* Content-Length over max_body (1 MiB): refused before reading it. */
    {
        const char *req = "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n";
        raw_exchange(req, strlen(req), line, sizeof(line));
    }
    assert_non_null(strstr(line, " 413 "));
    big = malloc(big_len + 1);
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    {
        const char *head = "{\"statements\":[{\"sql\":\"INSERT INTO t(v) VALUES ('";
        memcpy(big, head, strlen(head));
    }
    {
        struct api_reply r;
        assert_int_equal(sqlt_post(URL, big, &r), 0);
        if (r.status != 413)
            fprintf(stderr, "oversized body: %d %s\n", r.status, r.text);
        assert_int_equal(r.status, 413);
        api_reply_close(&r);
    }
    free(big);
    assert_int_equal(api_status(URL, "/healthz"), 200);
    assert_int_equal(sqlt_applied(URL, NULL), before);
}

static void refused_requests_leave_the_table_empty(void **state)
{
    (void)state;
    assert_int_equal(sqlt_scalar(URL, "SELECT count(*) FROM t"), 0);
    assert_int_equal(api_status(URL, "/readyz"), 200);
}

/* `meridian sql` against the same node: a table for people, JSON for scripts,
 * a clear error and a non-zero exit for bad SQL. */
static int run_cli(const char *args, char *out, size_t size)
{
    char cmd[1024];
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof(cmd), "%s sql --dir %s %s 2>&1", cluster_bin(), C->rundir, args);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static void sql_cli_prints_rows_as_a_table(void **state)
{
    char out[4096];

    (void)state;
    assert_int_equal(run_cli("\"CREATE TABLE cli(id INTEGER PRIMARY KEY, name TEXT)\"", out, sizeof(out)), 0);
    assert_int_equal(run_cli("\"INSERT INTO cli(name) VALUES (?), (?)\" alice 'bob'", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "rows affected: 2"));
    assert_int_equal(run_cli("--consistency strong \"SELECT id, name FROM cli ORDER BY id\"", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "id | name"));
    assert_non_null(strstr(out, "1  | alice"));
    assert_non_null(strstr(out, "2  | bob"));
    assert_non_null(strstr(out, "(2 rows)"));
    assert_int_equal(run_cli("--json \"SELECT count(*) AS n FROM cli\"", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"rows\":[[2]]"));
    assert_int_not_equal(run_cli("\"SELEC 1\"", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "syntax error"));
    assert_int_equal(sqlt_exec(URL, "DROP TABLE cli"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_json_is_refused),
        cmocka_unit_test(wrong_parameters_are_refused),
        cmocka_unit_test(bad_sql_is_refused),
        cmocka_unit_test(bad_consistency_and_tokens_are_refused),
        cmocka_unit_test(malformed_http_and_oversized_bodies_are_refused),
        cmocka_unit_test(refused_requests_leave_the_table_empty),
        cmocka_unit_test(sql_cli_prints_rows_as_a_table),
    };
    return cmocka_run_group_tests_name("sql_bad_input", tests, setup, teardown);
}
