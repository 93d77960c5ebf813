/* Hostile requests against real processes (docs/security.md): a two-region
 * topology started with [topology] auth = yes.  Missing and wrong tokens get
 * 401, tokens without the scope 403 (the node's APIs, its /metrics and
 * /v1/status, the shops' /admin/faults), the probes stay open, the
 * dashboards reach the other node with their peer token, the control APIs of the wan and of
 * `meridian up` want the admin token, oversize and slow requests are refused
 * or timed out, the edge's per-client rate answers 429.  After each refusal
 * the daemon must still answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/auth.h"
#include "common/buf.h"
#include "http/http.h"
#include "lib/api.h"
#include "lib/cluster.h"
#include "lib/wait.h"

static struct cluster *C;
static const char *URL;      /* us-east-1's node */
static const char *URL2;     /* eu-west-1's node */
static char ADMIN[256], SHOP[256], PEER[256], READER[256];

static const char topology[] =
    "[topology]\nname = security\nauth = yes\n"
    /* Tokens alone: with tls the tests' admin certificate would let every
     * request in (a cluster member), and the raw-socket cases speak plain
     * HTTP.  test_tls_topology covers certificates with tokens. */
    "tls = no\n\n"
    "[region us-east-1]\n\n[region eu-west-1]\n\n"
    "[latency]\nus-east-1 eu-west-1 = 5ms\n\n"
    "; the slowloris test waits for this\n[limits]\nheader_timeout = 1s\n";

/* The value of the first "<key> = value" line of <path>. */
static void ini_value(const char *path, const char *key, char *out, size_t size)
{
    char line[512];
    size_t klen = strlen(key);
    FILE *f = fopen(path, "r");

    assert_non_null(f);
    out[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && strncmp(line + klen, " = ", 3) == 0) {
            snprintf(out, size, "%.*s", (int)strcspn(line + klen + 3, "\r\n"), line + klen + 3);
            break;
        }
    }
    fclose(f);
    assert_true(out[0] != '\0');
}

static int node_ready(void *arg)
{
    return api_status((const char *)arg, "/readyz") == 200;
}

static int setup(void **state)
{
    char path[512];

    (void)state;
    if (cluster_start_text(topology, &C) != 0)
        return -1;
    URL = C->regions[0].node_url;
    URL2 = C->regions[1].node_url;
    snprintf(ADMIN, sizeof(ADMIN), "%s", cluster_auth_token);
    if (ADMIN[0] == '\0') {
        fprintf(stderr, "topology.json has no auth token\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/us-east-1/shop.ini", C->rundir);
    ini_value(path, "node_token", SHOP, sizeof(SHOP));
    snprintf(path, sizeof(path), "%s/us-east-1/node.ini", C->rundir);
    ini_value(path, "peer_token", PEER, sizeof(PEER));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(C);
}

/* One call as <token> (NULL: none); asserts the status and, for errors,
 * the error code; a node or the wan must answer /healthz afterwards (the
 * supervisor has none: control_apis_need_the_admin_token asks its /status). */
static void expect(const char *token, const char *method, const char *base, const char *path,
                   const char *body, int status, const char *code)
{
    struct api_reply r;

    assert_int_equal(api_call_as(token, method, base, path, body, &r), 0);
    if (r.status != status)
        fprintf(stderr, "%s %s%s as %.12s...: %d %s (expected %d)\n", method, base, path,
                token ? token : "(none)", r.status, r.text, status);
    assert_int_equal(r.status, status);
    if (code != NULL) {
        json_t *e = json_object_get(r.body, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
        assert_non_null(json_string_value(json_object_get(e, "message")));
    }
    api_reply_close(&r);
    if (strcmp(base, C->control_url) != 0)
        assert_int_equal(api_status(base, "/healthz"), 200);
}

#define SQL(s) "{\"statements\":[{\"sql\":\"" s "\"}]}"

/* The probes answer anyone (ok or not); counters and status want the read
 * scope (/v1/status also peer: the other regions' dashboards poll it with
 * their node's peer token). */
static void probes_are_open_and_observability_needs_read(void **state)
{
    (void)state;
    expect(NULL, "GET", URL, "/healthz", NULL, 200, NULL);
    expect(NULL, "GET", URL, "/readyz", NULL, 200, NULL);
    expect(NULL, "GET", URL, "/metrics", NULL, 401, "unauthorized");
    expect(NULL, "GET", URL, "/v1/status", NULL, 401, "unauthorized");
    expect("mrt_not-a-token-of-this-cluster", "GET", URL, "/metrics", NULL, 401, "unauthorized");
    expect(SHOP, "GET", URL, "/metrics", NULL, 200, NULL);     /* write implies read */
    expect(SHOP, "GET", URL, "/v1/status", NULL, 200, NULL);
    expect(PEER, "GET", URL, "/v1/status", NULL, 200, NULL);
    expect(PEER, "GET", URL, "/metrics", NULL, 403, "forbidden");
    expect(ADMIN, "GET", URL, "/metrics", NULL, 200, NULL);
    expect(NULL, "GET", URL, "/v1/dashboard", NULL, 401, "unauthorized");
    expect(PEER, "GET", URL, "/v1/dashboard", NULL, 403, "forbidden");
    expect(SHOP, "GET", URL, "/v1/dashboard", NULL, 200, NULL);
}

/* GET <path> on us-east-1's node with the raw <headers> (or NULL). */
static void fetch(const char *path, const char *headers, struct http_result *res)
{
    char url[512], err[MR_ERRMSG_LEN];

    snprintf(url, sizeof(url), "%s%s", URL, path);
    assert_int_equal(http_fetch("GET", url, headers, NULL, 0, (uint64_t)test_timeout_ms(10000), res, err), 0);
}

/* A browser sends no bearer token: /dashboard?token= checks it, answers
 * 303 to the bare URL and sets an HttpOnly, SameSite=Strict cookie, which
 * the page and its /v1/dashboard polls then carry.  Without it, the page
 * explains in HTML what to do. */
static void dashboard_takes_a_token_once_then_a_cookie(void **state)
{
    struct http_result res;
    char path[400], cookie[400];

    (void)state;
    fetch("/dashboard", NULL, &res);
    assert_int_equal(res.status, 401);
    assert_non_null(strcasestr(res.headers.data, "Content-Type: text/html"));
    assert_non_null(strstr(res.body.data, "/dashboard?token="));
    http_result_close(&res);
    fetch("/dashboard?token=mrt_not-a-token-of-this-cluster", NULL, &res);
    assert_int_equal(res.status, 401);
    assert_null(strcasestr(res.headers.data, "Set-Cookie"));
    http_result_close(&res);

    snprintf(path, sizeof(path), "/dashboard?token=%s", SHOP);
    fetch(path, NULL, &res);
    assert_int_equal(res.status, 303);
    assert_non_null(strcasestr(res.headers.data, "Location: /dashboard\r\n"));
    snprintf(cookie, sizeof(cookie), "Set-Cookie: meridian_auth=%s; Path=/; HttpOnly; SameSite=Strict", SHOP);
    assert_non_null(strcasestr(res.headers.data, cookie));
    http_result_close(&res);
    /* A peer token has no read scope: no cookie for it. */
    snprintf(path, sizeof(path), "/dashboard?token=%s", PEER);
    fetch(path, NULL, &res);
    assert_int_equal(res.status, 403);
    http_result_close(&res);

    snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; meridian_auth=%s\r\n", SHOP);
    fetch("/dashboard", cookie, &res);
    assert_int_equal(res.status, 200);
    http_result_close(&res);
    fetch("/v1/dashboard", cookie, &res);
    assert_int_equal(res.status, 200);
    http_result_close(&res);
    /* The cookie counts for the dashboard only. */
    fetch("/metrics", cookie, &res);
    assert_int_equal(res.status, 401);
    http_result_close(&res);
    fetch("/v1/dashboard", "Cookie: meridian_auth=mrt_stale\r\n", &res);
    assert_int_equal(res.status, 401);
    http_result_close(&res);
}

/* us-east-1's dashboard shows eu-west-1 reachable: its polls of the other
 * node's /v1/status carry the node's peer token (no certificates here). */
static int dashboard_sees_peer(void *arg)
{
    struct api_reply r;
    json_t *x;
    size_t i;
    int up = 0;

    (void)arg;
    if (api_call_as(READER[0] ? READER : SHOP, "GET", URL, "/v1/dashboard", NULL, &r) != 0)
        return 0;
    if (r.status == 200)
        json_array_foreach(json_object_get(r.body, "regions"), i, x)
            if (strcmp(json_string_value(json_object_get(x, "name")), "eu-west-1") == 0)
                up = json_is_true(json_object_get(x, "reachable"));
    api_reply_close(&r);
    return up;
}

static void dashboard_polls_peers_with_the_peer_token(void **state)
{
    (void)state;
    assert_int_equal(wait_for(dashboard_sees_peer, NULL, 15000), 0);
}

/* The shop of <region> (topology.json "shops"[0].instance_url) into <out>. */
static void shop_url(const char *region, char *out, size_t size)
{
    char path[512];
    json_t *doc, *r;
    size_t i;

    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    out[0] = '\0';
    json_array_foreach(json_object_get(doc, "regions"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "name")), region) == 0)
            snprintf(out, size, "%s", json_string_value(json_object_get(
                                          json_array_get(json_object_get(r, "shops"), 0), "instance_url")));
    json_decref(doc);
    assert_true(out[0] != '\0');
}

/* `meridian up` gives the shops the nodes' [auth] lines: fault injection
 * takes the cluster's admin token, nothing less (decision 030). */
static void shop_fault_injection_needs_the_admin_scope(void **state)
{
    char shop[256];

    (void)state;
    shop_url("us-east-1", shop, sizeof(shop));
    expect(NULL, "POST", shop, "/admin/faults", "{\"mode\":\"5xx\"}", 401, "unauthorized");
    expect("mrt_not-a-token-of-this-cluster", "POST", shop, "/admin/faults", "{\"mode\":\"5xx\"}", 401,
           "unauthorized");
    expect(SHOP, "POST", shop, "/admin/faults", "{\"mode\":\"5xx\"}", 403, "forbidden");
    expect(PEER, "GET", shop, "/admin/faults", NULL, 403, "forbidden");
    expect(ADMIN, "GET", shop, "/admin/faults", NULL, 200, NULL);
    expect(ADMIN, "POST", shop, "/admin/faults", "{\"mode\":\"off\"}", 200, NULL);
}

static void missing_and_wrong_tokens_get_401(void **state)
{
    char url[256], err[MR_ERRMSG_LEN];
    struct http_result res;

    (void)state;
    expect(NULL, "POST", URL, "/v1/sql", SQL("SELECT 1"), 401, "unauthorized");
    expect("mrt_not-a-token-of-this-cluster", "POST", URL, "/v1/sql", SQL("SELECT 1"), 401,
           "unauthorized");
    expect(NULL, "GET", URL, "/v1/tables", NULL, 401, "unauthorized");
    expect(NULL, "GET", URL, "/v1/digest", NULL, 401, "unauthorized");
    expect(NULL, "GET", URL, "/v1/snapshot", NULL, 401, "unauthorized");
    expect(NULL, "POST", URL, "/v1/tables/_replicate", "{}", 401, "unauthorized");
    /* RFC 6750: the challenge, and what was wrong with a token. */
    snprintf(url, sizeof(url), "%s/v1/sql", URL);
    assert_int_equal(http_fetch("POST", url, "Authorization: Basic YWRtaW46YWRtaW4=\r\n", "{}", 2, 5000,
                                &res, err), 0);
    assert_int_equal(res.status, 401);
    assert_non_null(strstr(res.headers.data, "WWW-Authenticate: Bearer realm=\"meridian\""));
    http_result_close(&res);
    assert_int_equal(http_fetch("POST", url, "Authorization: Bearer wrong\r\n", "{}", 2, 5000, &res, err), 0);
    assert_int_equal(res.status, 401);
    assert_non_null(strstr(res.headers.data, "error=\"invalid_token\""));
    http_result_close(&res);
}

static void scopes_decide_what_a_token_may_do(void **state)
{
    (void)state;
    /* admin: DDL and table declarations */
    expect(ADMIN, "POST", URL, "/v1/sql", SQL("CREATE TABLE sec(id INTEGER PRIMARY KEY, v TEXT)"), 200,
           NULL);
    expect(ADMIN, "PUT", URL, "/v1/tables/secdocs", "{\"kind\":\"lww\"}", 201, NULL);
    /* write (the shop's token): reads and writes, no DDL, no declarations,
     * no peer or admin endpoints */
    expect(SHOP, "POST", URL, "/v1/sql", SQL("INSERT INTO sec(v) VALUES ('w')"), 200, NULL);
    expect(SHOP, "POST", URL, "/v1/sql", SQL("SELECT count(*) FROM sec"), 200, NULL);
    expect(SHOP, "POST", URL, "/v1/sql", SQL("CREATE TABLE nope(a)"), 403, "forbidden");
    expect(SHOP, "POST", URL, "/v1/sql", SQL("  /* hidden */ drop TABLE sec"), 403, "forbidden");
    expect(SHOP, "POST", URL, "/v1/sql", SQL("ALTER TABLE sec ADD COLUMN x"), 403, "forbidden");
    expect(SHOP, "PUT", URL, "/v1/tables/other", "{\"kind\":\"lww\"}", 403, "forbidden");
    expect(SHOP, "GET", URL, "/v1/tables/_peers", NULL, 403, "forbidden");
    expect(SHOP, "GET", URL, "/v1/tables/_snapshot", NULL, 403, "forbidden");
    expect(SHOP, "GET", URL, "/v1/snapshot", NULL, 403, "forbidden");
    expect(SHOP, "PUT", URL, "/v1/tables/secdocs/items/k1", "{\"v\":1}", 200, NULL);
    /* peer (the nodes' token): the streams, nothing of the public API */
    expect(PEER, "POST", URL, "/v1/sql", SQL("SELECT 1"), 403, "forbidden");
    expect(PEER, "GET", URL, "/v1/tables", NULL, 403, "forbidden");
}

/* The item written in us-east-1 reaches eu-west-1: the table stream
 * between the nodes carries the peer token. */
static int item_replicated(void *arg)
{
    struct api_reply r;
    int ok;

    (void)arg;
    if (api_call_as(ADMIN, "GET", URL2, "/v1/tables/secdocs/items/k1", NULL, &r) != 0)
        return 0;
    ok = r.status == 200;
    api_reply_close(&r);
    return ok;
}

static void nodes_replicate_with_their_peer_token(void **state)
{
    (void)state;
    assert_int_equal(wait_for(item_replicated, NULL, 15000), 0);
}

/* `meridian token new --name NAME --scopes SCOPES`: the token into <tok>,
 * the config line ("token = NAME SCOPES HASH\n") into <line>. */
static void new_token(const char *name, const char *scopes, char *tok, size_t tok_size, char *line,
                      size_t line_size)
{
    char cmd[1024];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "%s token new --name %s --scopes %s --quiet", cluster_bin(), name, scopes);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(tok, (int)tok_size, p));
    tok[strcspn(tok, "\n")] = '\0';
    assert_non_null(fgets(line, (int)line_size, p));
    assert_int_equal(pclose(p), 0);
}

/* Whole file <path> into <buf> (NUL-terminated); its length. */
static size_t slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    assert_true(n > 0 && n < size - 1);
    buf[n] = '\0';
    return n;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int node_pid(const char *region)
{
    assert_int_equal(cluster_refresh(C), 0);
    return cluster_region(C, region)->node.pid;
}

struct item_wait {
    const char *key;
};

static int rotated_item_replicated(void *arg)
{
    struct item_wait *w = arg;
    char path[128];
    struct api_reply r;
    int ok;

    snprintf(path, sizeof(path), "/v1/tables/secdocs/items/%s", w->key);
    if (api_call_as(ADMIN, "GET", URL2, path, NULL, &r) != 0)
        return 0;
    ok = r.status == 200;
    api_reply_close(&r);
    return ok;
}

/* The peer token rotated without a restart (docs/security.md, "Rotating a
 * token"): eu-west-1 accepts a second peer token, us-east-1 switches its
 * peer_token to it, eu-west-1 drops the first: the stream from us-east-1
 * goes on, so us-east-1 sends the new one. */
/* eu-west-1's /v1/status answers the old peer token with <arg> (an int *). */
static int old_peer_token_gets(void *arg)
{
    struct api_reply r;
    int ok;

    if (api_call_as(PEER, "GET", URL2, "/v1/status", NULL, &r) != 0)
        return 0;
    ok = r.status == *(int *)arg;
    api_reply_close(&r);
    return ok;
}

static void peer_token_rotates_on_sighup(void **state)
{
    static char east[65536], west[65536];
    char east_path[512], west_path[512], tok[256], line[512], hash[65], *text, *at;
    struct item_wait w;
    int want;

    (void)state;
    snprintf(east_path, sizeof(east_path), "%s/us-east-1/node.ini", C->rundir);
    snprintf(west_path, sizeof(west_path), "%s/eu-west-1/node.ini", C->rundir);
    slurp(east_path, east, sizeof(east));
    slurp(west_path, west, sizeof(west));
    new_token("peer2", "peer", tok, sizeof(tok), line, sizeof(line));

    /* 1. eu-west-1 takes both peer tokens. */
    text = mr_asprintf("%s\n[auth]\n%s", west, line);
    spit(west_path, text);
    mr_free(text);
    assert_int_equal(kill(node_pid("eu-west-1"), SIGHUP), 0);
    /* 2. us-east-1 sends the new one (the last peer_token line wins). */
    text = mr_asprintf("%s\n[auth]\npeer_token = %s\n", east, tok);
    spit(east_path, text);
    mr_free(text);
    assert_int_equal(kill(node_pid("us-east-1"), SIGHUP), 0);
    /* 3. eu-west-1 forgets the old one: its line goes. */
    mr_auth_hash_hex(PEER, hash);
    text = mr_asprintf("%s\n[auth]\n%s", west, line);
    at = strstr(text, hash);
    assert_non_null(at);
    memset(at, '0', 64);   /* a hash nobody's token has */
    spit(west_path, text);
    mr_free(text);
    assert_int_equal(kill(node_pid("eu-west-1"), SIGHUP), 0);
    want = 401;
    assert_int_equal(wait_for(old_peer_token_gets, &want, 10000), 0);

    /* The stream from us-east-1 still delivers. */
    expect(ADMIN, "PUT", URL, "/v1/tables/secdocs/items/rotated", "{\"v\":3}", 200, NULL);
    w.key = "rotated";
    assert_int_equal(wait_for(rotated_item_replicated, &w, 15000), 0);

    /* Back as it was, for the tests after this one. */
    spit(east_path, east);
    spit(west_path, west);
    assert_int_equal(kill(node_pid("us-east-1"), SIGHUP), 0);
    assert_int_equal(kill(node_pid("eu-west-1"), SIGHUP), 0);
    want = 200;
    assert_int_equal(wait_for(old_peer_token_gets, &want, 10000), 0);
}

/* A read-only token added to node.ini: the node reads it at restart. */
static void read_token_cannot_write(void **state)
{
    char path[512], line[512];
    FILE *f;

    (void)state;
    new_token("reader", "read", READER, sizeof(READER), line, sizeof(line));
    assert_int_equal(strncmp(line, "token = reader read ", 20), 0);
    snprintf(path, sizeof(path), "%s/us-east-1/node.ini", C->rundir);
    f = fopen(path, "a");
    assert_non_null(f);
    fprintf(f, "\n[auth]\n%s", line);
    fclose(f);
    assert_int_equal(cluster_region_action(C, "us-east-1", "restart", "node"), 0);
    assert_int_equal(wait_for(node_ready, (void *)URL, 30000), 0);

    expect(READER, "POST", URL, "/v1/sql", SQL("SELECT count(*) FROM sec"), 200, NULL);
    expect(READER, "GET", URL, "/v1/tables/secdocs/items/k1", NULL, 200, NULL);
    expect(READER, "POST", URL, "/v1/sql", SQL("INSERT INTO sec(v) VALUES ('r')"), 403, "forbidden");
    /* reads like a SELECT to a lexer; SQLite knows it writes */
    expect(READER, "POST", URL, "/v1/sql",
           SQL("WITH x(v) AS (SELECT 'r') INSERT INTO sec(v) SELECT v FROM x"), 403, "forbidden");
    expect(READER, "POST", URL, "/v1/sql", SQL("DROP TABLE sec"), 403, "forbidden");
    expect(READER, "PUT", URL, "/v1/tables/secdocs/items/k2", "{\"v\":2}", 403, "forbidden");
    expect(READER, "DELETE", URL, "/v1/tables/secdocs/items/k1", NULL, 403, "forbidden");
    /* nothing was written */
    {
        struct api_reply r;
        assert_int_equal(api_call_as(ADMIN, "POST", URL, "/v1/sql",
                                     "{\"statements\":[{\"sql\":\"SELECT count(*) FROM sec\"}],"
                                     "\"consistency\":\"strong\"}", &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_integer_value(json_array_get(json_array_get(json_object_get(
                             json_array_get(json_object_get(r.body, "results"), 0), "rows"), 0), 0)),
                         1);
        api_reply_close(&r);
    }
}

static int wan_status_is(void *arg)
{
    const char **want = arg;   /* {base, token, "200"} */
    struct api_reply r;
    int ok;

    if (api_call_as(want[1], "GET", want[0], "/links", NULL, &r) != 0)
        return 0;
    ok = r.status == atoi(want[2]);
    api_reply_close(&r);
    return ok;
}

/* The wan's meridian_wan_auth_reloads_total{result=<want[0]>} is <want[1]>
 * (its /metrics is open). */
static int wan_reloads_are(void *arg)
{
    const char **want = arg;   /* {result, count, base} */
    char line[128];
    struct api_reply r;
    int ok;

    if (api_call_as(NULL, "GET", want[2], "/metrics", NULL, &r) != 0)
        return 0;
    snprintf(line, sizeof(line), "meridian_wan_auth_reloads_total{result=\"%s\"} %s\n", want[0], want[1]);
    ok = strstr(r.text, line) != NULL;
    api_reply_close(&r);
    return ok;
}

/* SIGHUP re-reads the wan's [wan] token lines (and nothing else): a new
 * token works, a broken line keeps the tokens loaded before, and an
 * emptied table is refused rather than opening the control API. */
static void wan_reloads_its_tokens_on_sighup(void **state)
{
    static char saved[65536];
    char path[512], tok[256], line[512], wan[128], *text;
    const char *want[3], *reloads[3];
    json_t *doc;
    int pid;

    (void)state;
    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    snprintf(wan, sizeof(wan), "%s", json_string_value(json_object_get(json_object_get(doc, "wan"), "control_url")));
    pid = (int)json_integer_value(json_object_get(json_object_get(doc, "wan"), "pid"));
    json_decref(doc);
    assert_true(pid > 0);
    new_token("ops2", "admin", tok, sizeof(tok), line, sizeof(line));
    expect(tok, "GET", wan, "/links", NULL, 401, "unauthorized");

    snprintf(path, sizeof(path), "%s/wan.ini", C->rundir);
    slurp(path, saved, sizeof(saved));

    /* A broken line: refused, the old tokens stay. */
    text = mr_asprintf("%s\n[wan]\ntoken = ops3 admin nothex\n", saved);
    spit(path, text);
    mr_free(text);
    assert_int_equal(kill(pid, SIGHUP), 0);
    reloads[0] = "failed", reloads[1] = "1", reloads[2] = wan;
    assert_int_equal(wait_for(wan_reloads_are, reloads, 5000), 0);   /* the reload happened, and failed */
    want[0] = wan, want[1] = ADMIN, want[2] = "200";
    assert_int_equal(wait_for(wan_status_is, want, 5000), 0);
    expect(tok, "GET", wan, "/links", NULL, 401, "unauthorized");

    /* The new token, beside the old ones. */
    text = mr_asprintf("%s\n[wan]\n%s", saved, line);
    spit(path, text);
    mr_free(text);
    assert_int_equal(kill(pid, SIGHUP), 0);
    want[1] = tok;
    assert_int_equal(wait_for(wan_status_is, want, 5000), 0);
    expect(ADMIN, "GET", wan, "/links", NULL, 200, NULL);
    {
        struct api_reply r;
        assert_int_equal(api_call_as(ADMIN, "GET", wan, "/metrics", NULL, &r), 0);
        assert_non_null(strstr(r.text, "meridian_wan_auth_reloads_total{result=\"done\"} 1\n"));
        assert_non_null(strstr(r.text, "meridian_wan_auth_reloads_total{result=\"failed\"} 1\n"));
        api_reply_close(&r);
    }
    /* Every token line gone: refused too (it would open the control API). */
    {
        char *p, *q;
        text = mr_asprintf("%s", saved);
        while ((p = strstr(text, "\ntoken =")) != NULL) {   /* drop the line, keep its newline */
            q = strchr(p + 1, '\n');
            memmove(p, q ? q : p + strlen(p), strlen(q ? q : p + strlen(p)) + 1);
        }
        spit(path, text);
        mr_free(text);
    }
    assert_int_equal(kill(pid, SIGHUP), 0);
    reloads[1] = "2";
    assert_int_equal(wait_for(wan_reloads_are, reloads, 5000), 0);
    expect(tok, "GET", wan, "/links", NULL, 200, NULL);   /* still checked, with the tokens of before */
    expect(NULL, "GET", wan, "/links", NULL, 401, "unauthorized");
    /* Put the file back as it was (the other tests use the run's tokens). */
    spit(path, saved);
    assert_int_equal(kill(pid, SIGHUP), 0);
    want[1] = tok, want[2] = "401";
    assert_int_equal(wait_for(wan_status_is, want, 5000), 0);
}

static void refusals_are_counted(void **state)
{
    struct api_reply r;

    (void)state;
    expect(NULL, "POST", URL, "/v1/sql", SQL("SELECT 1"), 401, "unauthorized");
    expect(SHOP, "POST", URL, "/v1/sql", SQL("DROP TABLE sec"), 403, "forbidden");
    assert_int_equal(api_call_as(ADMIN, "GET", URL, "/metrics", NULL, &r), 0);
    assert_non_null(strstr(r.text, "meridian_auth_refused_total{reason=\"missing\"} "));
    assert_null(strstr(r.text, "meridian_auth_refused_total{reason=\"missing\"} 0\n"));
    assert_null(strstr(r.text, "meridian_auth_refused_total{reason=\"forbidden\"} 0\n"));
    api_reply_close(&r);
}

static void control_apis_need_the_admin_token(void **state)
{
    char wan[128], cmd[1024], path[512];
    json_t *doc;

    (void)state;
    snprintf(path, sizeof(path), "%s/topology.json", C->rundir);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    snprintf(wan, sizeof(wan), "%s",
             json_string_value(json_object_get(json_object_get(doc, "wan"), "control_url")));
    json_decref(doc);
    /* the wan: cutting links is fault injection */
    expect(NULL, "GET", wan, "/links", NULL, 401, "unauthorized");
    expect(NULL, "POST", wan, "/regions/eu-west-1/cut", "{}", 401, "unauthorized");
    expect(SHOP, "POST", wan, "/regions/eu-west-1/cut", "{}", 401, "unauthorized");
    expect(ADMIN, "GET", wan, "/links", NULL, 200, NULL);
    /* `meridian wan` finds the token in the run directory */
    snprintf(cmd, sizeof(cmd), "%s wan links --dir %s >/dev/null", cluster_bin(), C->rundir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "MERIDIAN_TOKEN=wrong %s wan links --dir %s >/dev/null 2>&1",
             cluster_bin(), C->rundir);
    assert_int_not_equal(system(cmd), 0);
    /* the supervisor: kill, freeze, restart any process */
    expect(NULL, "GET", C->control_url, "/status", NULL, 401, "unauthorized");
    expect(SHOP, "POST", C->control_url, "/regions/eu-west-1/kill", "{}", 401, "unauthorized");
    expect(ADMIN, "GET", C->control_url, "/status", NULL, 200, NULL);
    /* `meridian sql --dir` too */
    snprintf(cmd, sizeof(cmd), "%s sql --dir %s 'SELECT 1' >/dev/null", cluster_bin(), C->rundir);
    assert_int_equal(system(cmd), 0);
}

/* Send <req> on a fresh connection; the first line of the answer. */
static void raw_first_line(const char *req, size_t len, char *line, size_t size)
{
    char *host = NULL, *path = NULL, buf[4096];
    struct sockaddr_in sa;
    int port = 0, fd;
    ssize_t n;

    assert_int_equal(http_parse_url(URL, &host, &port, &path, NULL), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* The server may answer (and close) before reading everything. */
    (void)!write(fd, req, len);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    snprintf(line, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
    close(fd);
    free(host);
    free(path);
}

static void oversize_requests_are_refused(void **state)
{
    struct mr_buf b;
    char line[256];

    (void)state;
    /* 20 KiB of header: over max_header_bytes (16k) */
    mr_buf_init(&b);
    mr_buf_puts(&b, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 20 * 1024; i++)
        mr_buf_putc(&b, 'a');
    mr_buf_puts(&b, "\r\n\r\n");
    raw_first_line(b.data, b.len, line, sizeof(line));
    assert_non_null(strstr(line, " 431 "));
    assert_int_equal(api_status(URL, "/healthz"), 200);
    /* 100 header fields: over max_headers (64) */
    mr_buf_reset(&b);
    mr_buf_puts(&b, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 100; i++)
        mr_buf_printf(&b, "X-H%d: v\r\n", i);
    mr_buf_puts(&b, "\r\n");
    raw_first_line(b.data, b.len, line, sizeof(line));
    assert_non_null(strstr(line, " 431 "));
    assert_int_equal(api_status(URL, "/healthz"), 200);
    /* a body over max_body (1m), announced: refused before it is read */
    mr_buf_reset(&b);
    mr_buf_printf(&b, "POST /v1/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Length: 5000000\r\n\r\n", ADMIN);
    raw_first_line(b.data, b.len, line, sizeof(line));
    assert_non_null(strstr(line, " 413 "));
    /* ... and without a token it is refused just the same, unread */
    {
        const char *req = "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n";
        raw_first_line(req, strlen(req), line, sizeof(line));
    }
    assert_non_null(strstr(line, " 413 "));
    mr_buf_close(&b);
    assert_int_equal(api_status(URL, "/healthz"), 200);
}

/* A client that sends half a request head and stalls is answered 408 and
 * closed after [limits] header_timeout (1 s here). */
static void slowloris_is_timed_out(void **state)
{
    char *host = NULL, *path = NULL, buf[1024];
    const char *part = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    struct timeval tv = {10, 0};
    struct sockaddr_in sa;
    int port = 0, fd;
    int64_t start;
    ssize_t n;

    (void)state;
    assert_int_equal(http_parse_url(URL, &host, &port, &path, NULL), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    start = test_now_ms();
    assert_int_equal(write(fd, part, strlen(part)), (ssize_t)strlen(part));
    n = read(fd, buf, sizeof(buf) - 1);
    /* Answered 408 (or closed) well before our own 10 s give-up. */
    assert_true(n >= 0);
    assert_true(test_now_ms() - start < 8000);
    if (n > 0) {
        buf[n] = '\0';
        assert_non_null(strstr(buf, " 408 "));
    }
    close(fd);
    free(host);
    free(path);
    assert_int_equal(api_status(URL, "/healthz"), 200);
}

/* ---- the edge's per-client rate ---- */

static char EDGE_DIR[64], EDGE_URL[128];

static int edge_listening(void *arg)
{
    char path[128], buf[8192], *p;
    size_t n;
    FILE *f;

    (void)arg;
    snprintf(path, sizeof(path), "%s/edge.log", EDGE_DIR);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strstr(buf, "listening http://")) == NULL)
        return 0;
    sscanf(p + 10, "%127s", EDGE_URL);
    return 1;
}

static void edge_rate_limit_answers_429(void **state)
{
    char path[128], logp[128], url[256], err[MR_ERRMSG_LEN];
    int limited = 0, retry_after = 0, pid, st;
    FILE *f;

    (void)state;
    snprintf(EDGE_DIR, sizeof(EDGE_DIR), "/tmp/mr-test-sec-XXXXXX");
    assert_non_null(mkdtemp(EDGE_DIR));
    snprintf(path, sizeof(path), "%s/edge.ini", EDGE_DIR);
    snprintf(logp, sizeof(logp), "%s/edge.log", EDGE_DIR);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[edge]\nlisten = 127.0.0.1:0\nname = sec\n[limits]\nrate = 1\nburst = 3\n"
            "[region us-east-1]\norigin = %s\n", URL);
    fclose(f);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(cluster_bin(), "meridian", "edge", "--config", path, (char *)NULL);
        _exit(127);
    }
    if (wait_for(edge_listening, NULL, 10000) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the edge did not start; see %s", logp);
    }
    snprintf(url, sizeof(url), "%s/nope", EDGE_URL);
    for (int i = 0; i < 10; i++) {
        struct http_result res;
        assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, 5000, &res, err), 0);
        if (res.status == 429) {
            limited++;
            retry_after += strstr(res.headers.data, "Retry-After: ") != NULL;
        }
        http_result_close(&res);
    }
    /* burst 3 at 1/s: the rest of a quick ten are refused, saying when to
     * come back */
    assert_true(limited >= 5);
    assert_int_equal(retry_after, limited);
    {
        struct http_result res;
        snprintf(url, sizeof(url), "%s/metrics", EDGE_URL);
        assert_int_equal(http_fetch("GET", url, NULL, NULL, 0, 5000, &res, err), 0);
        assert_int_equal(res.status, 200);
        assert_non_null(strstr(res.body.data, "meridian_edge_rate_limited_total "));
        assert_null(strstr(res.body.data, "meridian_edge_rate_limited_total 0\n"));
        http_result_close(&res);
    }
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(url, sizeof(url), "grep -q -E 'AddressSanitizer|runtime error' %s", logp);
    assert_int_not_equal(system(url), 0);
    snprintf(url, sizeof(url), "rm -rf %s", EDGE_DIR);
    assert_int_equal(system(url), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probes_are_open_and_observability_needs_read),
        cmocka_unit_test(shop_fault_injection_needs_the_admin_scope),
        cmocka_unit_test(dashboard_polls_peers_with_the_peer_token),
        cmocka_unit_test(dashboard_takes_a_token_once_then_a_cookie),
        cmocka_unit_test(wan_reloads_its_tokens_on_sighup),
        cmocka_unit_test(missing_and_wrong_tokens_get_401),
        cmocka_unit_test(scopes_decide_what_a_token_may_do),
        cmocka_unit_test(nodes_replicate_with_their_peer_token),
        cmocka_unit_test(peer_token_rotates_on_sighup),
        cmocka_unit_test(read_token_cannot_write),
        cmocka_unit_test(refusals_are_counted),
        cmocka_unit_test(control_apis_need_the_admin_token),
        cmocka_unit_test(oversize_requests_are_refused),
        cmocka_unit_test(slowloris_is_timed_out),
        cmocka_unit_test(edge_rate_limit_answers_429),
    };
    return cmocka_run_group_tests_name("security", tests, setup, teardown);
}
