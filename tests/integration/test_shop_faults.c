/* The shop's fault-injection endpoint (/admin/faults, docs/shop.md) on real
 * `meridian shop` processes (MERIDIAN_BIN): one with [faults] enabled and
 * the cluster's [auth] tokens in its shop.ini (an admin one, a read-only
 * one), one with the default (disabled).  Neither needs a node: every path
 * tested here answers without one (/healthz, the endpoint, /metrics, and
 * the injected answers).  Covers: disabled is 404, a missing or unknown
 * token 401 with a WWW-Authenticate challenge, a token without the admin
 * scope 403, each counted by reason; a shop with [faults] enabled and no
 * [auth] token refusing to start; SIGHUP re-reading the tokens (a new one
 * works, a removed one stops working, a broken line keeps the old ones); a
 * bad body 400 naming the problem, 5xx on the chosen prefixes only (the
 * health endpoints included when covered), hang holding requests until
 * off, the hold bound, a shop stopping cleanly with a request held, and the
 * metrics.  Shop logs go to a temp dir and are printed on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/err.h"
#include "http/http.h"
#include "lib/cluster.h"
#include "lib/daemon.h"
#include "lib/wait.h"

#define TOKEN "gameday-test-token-0123456789"      /* admin */
#define READER "reader-test-token-0123456789"        /* read only */
#define ROTATED "rotated-test-token-0123456789"      /* admin, added by a SIGHUP */
#define HOLD_MS 3000

static struct daemon ON, OFF;
static char dir[64], ini[128];

/* shop.ini of the enabled shop: [faults] and the [auth] lines as `meridian
 * up` writes them, plus <extra> (a line of [auth] or ""). */
static int write_ini(const char *extra)
{
    char admin[65], reader[65];
    FILE *f = fopen(ini, "w");

    if (f == NULL)
        return -1;
    mr_auth_hash_hex(TOKEN, admin);
    mr_auth_hash_hex(READER, reader);
    fprintf(f, "[shop]\nnode = http://127.0.0.1:1\nregion = faulty-1\n[faults]\nenabled = true\n"
            "hold = %dms\n[auth]\ntoken = ops admin %s\ntoken = viewer read %s\n%s", HOLD_MS, admin,
            reader, extra);
    return fclose(f) == 0 ? 0 : -1;
}

/* A shop on a node that does not exist (port 1): enough for these paths. */
static int spawn(struct daemon *p, const char *name, int faults)
{
    char log[256];
    char *plain[] = {(char *)cluster_bin(), "shop", "--listen", "127.0.0.1:0", "--node", "http://127.0.0.1:1",
                     "--region", (char *)name, NULL};
    char *faulty[] = {(char *)cluster_bin(), "shop", "--config", ini, "--listen", "127.0.0.1:0", "--node",
                      "http://127.0.0.1:1", "--region", (char *)name, NULL};

    snprintf(log, sizeof(log), "%s/shop-%s.log", dir, name);
    if (faults && write_ini("") != 0)
        return -1;
    return daemon_start(faults ? faulty : plain, log, p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mr-shop-faults-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(ini, sizeof(ini), "%s/shop.ini", dir);
    return spawn(&ON, "faulty-1", 1) != 0 || spawn(&OFF, "plain-1", 0) != 0 ? -1 : 0;
}

static int teardown(void **state)
{
    int rc = 0;
    char cmd[128];

    (void)state;
    rc |= daemon_stop(&ON);
    rc |= daemon_stop(&OFF);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (rc == 0 && system(cmd) != 0)
        rc = -1;
    return rc ? -1 : 0;
}

/* ---- requests ---- */

struct reply {
    int rc;         /* 0: an answer came; MR_E* otherwise */
    int status;
    json_t *body;
    char *text;
    char *headers;  /* raw "Name: value\r\n" lines */
};

static void reply_close(struct reply *r)
{
    json_decref(r->body);
    free(r->text);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

/* <method> <base><path> with "Authorization: <auth>" (NULL: none) and JSON
 * <body> (NULL: none), within <timeout_ms> (scaled). */
static void call(const char *method, const char *base, const char *path, const char *auth, const char *body,
                 int64_t timeout_ms, struct reply *r)
{
    char url[256], headers[256] = "", err[MR_ERRMSG_LEN] = "";
    struct http_result res;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base, path);
    if (auth)
        snprintf(headers, sizeof(headers), "Authorization: %s\r\n", auth);
    if (body)
        strcat(headers, "Content-Type: application/json\r\n");
    r->rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0,
                       (uint64_t)test_timeout_ms(timeout_ms), &res, err);
    if (r->rc != 0)
        return;
    r->status = res.status;
    r->text = strndup(res.body.data ? res.body.data : "", res.body.len);
    r->headers = strndup(res.headers.data ? res.headers.data : "", res.headers.len);
    r->body = json_loads(r->text, 0, NULL);
    http_result_close(&res);
}

static int status_of(const char *base, const char *path)
{
    struct reply r;
    int st;

    call("GET", base, path, NULL, NULL, 5000, &r);
    st = r.rc == 0 ? r.status : r.rc;
    reply_close(&r);
    return st;
}

/* POST a fault to the enabled shop with the right token; 200 expected. */
static void set_fault(const char *body)
{
    struct reply r;

    call("POST", ON.url, "/admin/faults", "Bearer " TOKEN, body, 5000, &r);
    assert_int_equal(r.rc, 0);
    if (r.status != 200)
        fail_msg("POST %s: %d %s", body, r.status, r.text);
    reply_close(&r);
}

static json_t *get_state(void)
{
    struct reply r;
    json_t *j;

    call("GET", ON.url, "/admin/faults", "Bearer " TOKEN, NULL, 5000, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    j = json_incref(r.body);
    reply_close(&r);
    return j;
}

static const char *error_code(const struct reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->body, "error"), "code"));
}

/* ---- tests ---- */

static void disabled_by_default_the_endpoint_is_404(void **state)
{
    struct reply r;

    (void)state;
    call("POST", OFF.url, "/admin/faults", "Bearer " TOKEN, "{\"mode\":\"5xx\"}", 5000, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 404);
    reply_close(&r);
    call("GET", OFF.url, "/admin/faults", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 404);
    reply_close(&r);
    assert_int_equal(status_of(OFF.url, "/healthz"), 200);
}

static void a_missing_or_wrong_token_is_401_and_changes_nothing(void **state)
{
    static const char *const auths[] = {NULL, "Bearer wrong-token-0123456789", "Bearer " TOKEN "x",
                                        "Basic " TOKEN, "Bearer "};
    struct reply r;
    json_t *st;

    (void)state;
    for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
        call("POST", ON.url, "/admin/faults", auths[i], "{\"mode\":\"5xx\"}", 5000, &r);
        assert_int_equal(r.rc, 0);
        if (r.status != 401)
            fail_msg("Authorization '%s': %d", auths[i] ? auths[i] : "(none)", r.status);
        assert_string_equal(error_code(&r), "unauthorized");
        /* RFC 6750 3: the challenge, as a node sends it. */
        assert_non_null(strcasestr(r.headers, "WWW-Authenticate: Bearer realm=\"meridian\""));
        reply_close(&r);
    }
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
    st = get_state();
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "off");
    assert_true(json_is_true(json_object_get(st, "enabled")));
    json_decref(st);
}

/* The value of the sample <name> (with its labels) in the enabled shop's
 * /metrics, or -1. */
static long long metric(const char *name)
{
    struct reply r;
    long long v = -1;
    const char *p;

    call("GET", ON.url, "/metrics", NULL, NULL, 5000, &r);
    if (r.rc == 0 && r.status == 200 && (p = strstr(r.text, name)) != NULL)
        v = strtoll(p + strlen(name), NULL, 10);
    reply_close(&r);
    return v;
}

static int status_with(const char *token)
{
    struct reply r;
    char auth[128];
    int st;

    snprintf(auth, sizeof(auth), "Bearer %s", token);
    call("GET", ON.url, "/admin/faults", auth, NULL, 5000, &r);
    st = r.rc == 0 ? r.status : r.rc;
    reply_close(&r);
    return st;
}

static void a_token_without_the_admin_scope_is_403_and_each_refusal_is_counted(void **state)
{
    long long missing = metric("meridian_shop_auth_refused_total{reason=\"missing\"} ");
    long long unknown = metric("meridian_shop_auth_refused_total{reason=\"unknown\"} ");
    long long forbidden = metric("meridian_shop_auth_refused_total{reason=\"forbidden\"} ");
    struct reply r;
    json_t *st;

    (void)state;
    assert_true(missing >= 0 && unknown >= 0 && forbidden >= 0);
    call("POST", ON.url, "/admin/faults", "Bearer " READER, "{\"mode\":\"5xx\"}", 5000, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(error_code(&r), "forbidden");
    assert_non_null(strstr(r.text, "viewer"));   /* names the token, not its secret */
    reply_close(&r);
    assert_int_equal(status_with(READER), 403);   /* reading the state is admin too */
    assert_int_equal(status_of(ON.url, "/admin/faults"), 401);
    assert_int_equal(status_with("not-one-of-ours-0123456789"), 401);
    assert_int_equal(metric("meridian_shop_auth_refused_total{reason=\"forbidden\"} "), forbidden + 2);
    assert_int_equal(metric("meridian_shop_auth_refused_total{reason=\"missing\"} "), missing + 1);
    assert_int_equal(metric("meridian_shop_auth_refused_total{reason=\"unknown\"} "), unknown + 1);
    /* The admin token: 200, and nothing changed by the refusals. */
    assert_int_equal(status_with(TOKEN), 200);
    st = get_state();
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "off");
    json_decref(st);
}

/* A shop that would serve /admin/faults with nobody allowed in does not
 * start: fault injection is never left open. */
static void faults_enabled_without_auth_tokens_refuses_to_start(void **state)
{
    char cmd[512], out[1024] = "";
    FILE *p;
    size_t n;
    int st;

    (void)state;
    snprintf(cmd, sizeof(cmd), "timeout %d %s shop --listen 127.0.0.1:0 --node http://127.0.0.1:1 "
             "--region x --set faults.enabled=true 2>&1", (int)(test_timeout_ms(20000) / 1000), cluster_bin());
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    st = pclose(p);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 124 || strstr(out, "[auth] has no token") == NULL)
        fail_msg("exit %d: %s", WEXITSTATUS(st), out);
    assert_null(strstr(out, "listening"));
}

struct want_status {
    const char *token;
    int status;
};

static int token_answers(void *arg)
{
    const struct want_status *w = arg;
    return status_with(w->token) == w->status;
}

struct want_metric {
    const char *name;
    long long above;
};

static int metric_above(void *arg)
{
    const struct want_metric *w = arg;
    return metric(w->name) > w->above;
}

/* Rotation as docs/security.md tells it: add the new token, SIGHUP, move
 * the clients, remove the old one, SIGHUP.  A broken line keeps the old
 * table, and the shop stays up. */
static void sighup_rereads_the_tokens_and_a_broken_file_keeps_the_old_ones(void **state)
{
    char line[160], hash[65];
    struct want_status w;
    struct want_metric m = {"meridian_shop_auth_reloads_total{result=\"failed\"} ", 0};
    long long ok0 = metric("meridian_shop_auth_reloads_total{result=\"ok\"} ");

    (void)state;
    assert_true(ok0 >= 0);
    assert_int_equal(status_with(ROTATED), 401);
    mr_auth_hash_hex(ROTATED, hash);
    snprintf(line, sizeof(line), "token = ops-2 admin %s\n", hash);
    assert_int_equal(write_ini(line), 0);
    assert_int_equal(kill(ON.pid, SIGHUP), 0);
    w = (struct want_status){ROTATED, 200};
    assert_int_equal(wait_for(token_answers, &w, 10000), 0);
    assert_int_equal(status_with(TOKEN), 200);    /* both work meanwhile */
    assert_int_equal(metric("meridian_shop_auth_reloads_total{result=\"ok\"} "), ok0 + 1);
    /* The old one removed. */
    assert_int_equal(write_ini(""), 0);
    assert_int_equal(kill(ON.pid, SIGHUP), 0);
    w = (struct want_status){ROTATED, 401};
    assert_int_equal(wait_for(token_answers, &w, 10000), 0);
    /* A broken line: the reload fails, counted, and every token of the
     * table before still answers as it did. */
    m.above = metric(m.name);
    assert_true(m.above >= 0);
    assert_int_equal(write_ini("token = ops-3 admin 0123\n"), 0);
    assert_int_equal(kill(ON.pid, SIGHUP), 0);
    assert_int_equal(wait_for(metric_above, &m, 10000), 0);
    assert_int_equal(status_with(TOKEN), 200);
    assert_int_equal(status_with(READER), 403);
    assert_int_equal(status_with(ROTATED), 401);
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
    /* A file without any token would leave nobody allowed in: refused too. */
    m.above = metric(m.name);
    {
        FILE *f = fopen(ini, "w");
        assert_non_null(f);
        fprintf(f, "[shop]\nnode = http://127.0.0.1:1\nregion = faulty-1\n[faults]\nenabled = true\n"
                "hold = %dms\n", HOLD_MS);
        assert_int_equal(fclose(f), 0);
    }
    assert_int_equal(kill(ON.pid, SIGHUP), 0);
    assert_int_equal(wait_for(metric_above, &m, 10000), 0);
    assert_int_equal(status_with(TOKEN), 200);
    assert_int_equal(write_ini(""), 0);
}

static void a_bad_body_is_400_naming_the_problem(void **state)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"mode\":\"teapot\"}", "'mode' = 'teapot'"},
        {"{\"mode\":\"5xx\",\"status\":418}", "from 500 to 599"},
        {"{\"mode\":\"5xx\",\"paths\":\"api\"}", "not a path prefix"},
        {"not json", "body is not JSON"},
        {"{\"mode\":\"5xx\",\"extra\":1}", "unknown key 'extra'"},
    };
    struct reply r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *msg;
        call("POST", ON.url, "/admin/faults", "Bearer " TOKEN, cases[i].body, 5000, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(error_code(&r), "invalid_fault");
        msg = json_string_value(json_object_get(json_object_get(r.body, "error"), "message"));
        if (msg == NULL || strstr(msg, cases[i].want) == NULL)
            fail_msg("%s: '%s' does not say '%s'", cases[i].body, msg ? msg : r.text, cases[i].want);
        reply_close(&r);
    }
    call("DELETE", ON.url, "/admin/faults", "Bearer " TOKEN, NULL, 5000, &r);
    assert_int_equal(r.status, 405);
    reply_close(&r);
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
}

static void mode_5xx_answers_the_status_on_the_chosen_paths_until_off(void **state)
{
    struct reply r;
    json_t *st;

    (void)state;
    set_fault("{\"mode\":\"5xx\",\"status\":502,\"paths\":\"/api/\"}");
    call("GET", ON.url, "/api/products", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 502);
    assert_string_equal(error_code(&r), "fault_injected");
    reply_close(&r);
    /* Not covered: the health check still passes (an application bug an
     * ALB's health check does not see). */
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
    set_fault("{\"mode\":\"5xx\",\"paths\":\"/\"}");
    assert_int_equal(status_of(ON.url, "/api/products"), 503);
    assert_int_equal(status_of(ON.url, "/healthz"), 503);
    assert_int_equal(status_of(ON.url, "/readyz"), 503);
    assert_int_equal(status_of(ON.url, "/cart"), 503);
    /* Never faulted: the endpoint itself and /metrics. */
    st = get_state();
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "5xx");
    assert_int_equal(json_integer_value(json_object_get(st, "status")), 503);
    assert_string_equal(json_string_value(json_array_get(json_object_get(st, "paths"), 0)), "/");
    assert_true(json_integer_value(json_object_get(st, "injected_5xx")) >= 5);
    json_decref(st);
    call("GET", ON.url, "/metrics", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.text, "meridian_shop_fault_mode{mode=\"5xx\"} 1"));
    assert_non_null(strstr(r.text, "meridian_shop_fault_injected_total{mode=\"5xx\"} "));
    assert_non_null(strstr(r.text, "meridian_shop_fault_denied_total "));
    assert_non_null(strstr(r.text, "route=\"fault\",status=\"5xx\""));
    reply_close(&r);
    set_fault("{\"mode\":\"off\"}");
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
    call("GET", ON.url, "/metrics", NULL, NULL, 5000, &r);
    assert_non_null(strstr(r.text, "meridian_shop_fault_mode{mode=\"off\"} 1"));
    reply_close(&r);
}

struct bg_call {
    pthread_t th;
    const char *path;
    int64_t timeout_ms;
    int64_t took_ms;
    struct reply r;
};

static void *bg_run(void *arg)
{
    struct bg_call *b = arg;
    int64_t t0 = test_now_ms();

    call("GET", ON.url, b->path, NULL, NULL, b->timeout_ms, &b->r);
    b->took_ms = test_now_ms() - t0;
    return NULL;
}

static int held_now_is(void *arg)
{
    json_t *st = get_state();
    int ok = json_integer_value(json_object_get(st, "held_now")) == *(int *)arg;

    json_decref(st);
    return ok;
}

static void mode_hang_holds_requests_until_off(void **state)
{
    struct bg_call b = {.path = "/api/products", .timeout_ms = 20000};
    struct reply r;
    int one = 1, zero = 0;

    (void)state;
    set_fault("{\"mode\":\"hang\",\"paths\":\"/api/,/healthz\"}");
    /* No answer within a client's own timeout. */
    call("GET", ON.url, "/healthz", NULL, NULL, 300, &r);
    assert_int_equal(r.rc, MR_ETIMEDOUT);
    reply_close(&r);
    /* Not covered: /readyz answers (503: this shop has no node). */
    assert_int_equal(status_of(ON.url, "/readyz"), 503);
    /* The timed-out one was held too, and stays held until the bound: wait
     * for it to go, then hold one and let it go with "off". */
    assert_int_equal(wait_for(held_now_is, &zero, HOLD_MS + 5000), 0);
    assert_int_equal(pthread_create(&b.th, NULL, bg_run, &b), 0);
    assert_int_equal(wait_for(held_now_is, &one, 10000), 0);
    set_fault("{\"mode\":\"off\"}");
    pthread_join(b.th, NULL);
    assert_int_equal(b.r.rc, 0);
    assert_int_equal(b.r.status, 503);
    assert_string_equal(error_code(&b.r), "fault_hang_released");
    reply_close(&b.r);
    assert_int_equal(status_of(ON.url, "/healthz"), 200);
}

static void a_held_request_is_answered_at_the_hold_bound(void **state)
{
    struct bg_call b = {.path = "/api/products", .timeout_ms = HOLD_MS + 10000};
    json_t *st;

    (void)state;
    set_fault("{\"mode\":\"hang\",\"paths\":\"/api/\"}");
    assert_int_equal(pthread_create(&b.th, NULL, bg_run, &b), 0);
    pthread_join(b.th, NULL);
    assert_int_equal(b.r.rc, 0);
    assert_int_equal(b.r.status, 503);
    assert_string_equal(error_code(&b.r), "fault_hang_released");
    assert_true(b.took_ms >= HOLD_MS - 100);
    reply_close(&b.r);
    st = get_state();
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "hang");
    assert_int_equal(json_integer_value(json_object_get(st, "held_now")), 0);
    assert_true(json_integer_value(json_object_get(st, "held_total")) >= 2);
    json_decref(st);
    set_fault("{\"mode\":\"off\"}");
}

/* Last: the shop exits 0 (no leak, no sanitizer report) with a request
 * held when SIGTERM arrives; the client gets an answer or a closed
 * connection, never a hang. */
static void a_shop_stops_cleanly_while_holding_a_request(void **state)
{
    struct bg_call b = {.path = "/api/cart", .timeout_ms = 20000};
    int one = 1;

    (void)state;
    set_fault("{\"mode\":\"hang\",\"paths\":\"/\"}");
    assert_int_equal(pthread_create(&b.th, NULL, bg_run, &b), 0);
    assert_int_equal(wait_for(held_now_is, &one, 10000), 0);
    assert_int_equal(daemon_stop(&ON), 0);
    pthread_join(b.th, NULL);
    assert_true(b.took_ms < test_timeout_ms(15000));
    reply_close(&b.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(disabled_by_default_the_endpoint_is_404),
        cmocka_unit_test(a_missing_or_wrong_token_is_401_and_changes_nothing),
        cmocka_unit_test(a_token_without_the_admin_scope_is_403_and_each_refusal_is_counted),
        cmocka_unit_test(faults_enabled_without_auth_tokens_refuses_to_start),
        cmocka_unit_test(sighup_rereads_the_tokens_and_a_broken_file_keeps_the_old_ones),
        cmocka_unit_test(a_bad_body_is_400_naming_the_problem),
        cmocka_unit_test(mode_5xx_answers_the_status_on_the_chosen_paths_until_off),
        cmocka_unit_test(mode_hang_holds_requests_until_off),
        cmocka_unit_test(a_held_request_is_answered_at_the_hold_bound),
        cmocka_unit_test(a_shop_stops_cleanly_while_holding_a_request),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("shop_faults", tests, setup, teardown);
}
