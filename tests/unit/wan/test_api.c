/* Unit tests of the wan's control API and settings parsers (src/wan/api.c,
 * src/wan/config.c): the server on the test's loop, calls through our HTTP
 * client on the same loop. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "wan_test.h"

struct call {
    int done, rc, status;
    struct mr_buf body;
};

static void call_cb(struct http_call *hc, int rc, const struct http_response *resp, void *data)
{
    struct call *c = data;

    (void)hc;
    c->done = 1;
    c->rc = rc;
    if (rc == 0) {
        c->status = resp->status;
        mr_buf_append(&c->body, resp->body, resp->body_len);
    }
}

/* <method> <path> with <body>; returns the status, the body in *out. */
static int request(struct fx *f, struct http_client *cli, int port, const char *method,
                   const char *path, const char *body, struct mr_buf *out)
{
    struct http_client_request req;
    struct call c;

    memset(&req, 0, sizeof(req));
    memset(&c, 0, sizeof(c));
    mr_buf_init(&c.body);
    req.method = method;
    req.host = "127.0.0.1";
    req.port = port;
    req.path = path;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.timeout_ms = 5000;
    assert_int_equal(http_client_request(cli, &req, call_cb, &c, NULL), 0);
    assert_true(RUN_UNTIL(f, c.done, 5000));
    assert_int_equal(c.rc, 0);
    mr_buf_reset(out);
    mr_buf_append(out, c.body.data ? c.body.data : "", c.body.len);
    mr_buf_close(&c.body);
    return c.status;
}

struct api {
    struct http_client *cli;
    int port;
    struct mr_buf out;
};

static void api_start(struct fx *f, struct api *a)
{
    char err[MR_ERRMSG_LEN];

    add_link_route(f, "us-east-1->eu-west-1", 35, 35);
    add_link_route(f, "eu-west-1->us-east-1", 35, 35);
    assert_int_equal(wan_control_start(f->w, "127.0.0.1", 0, &a->port, err), 0);
    assert_int_equal(http_client_new(&f->loop, NULL, &a->cli), 0);
    mr_buf_init(&a->out);
}

static void api_stop(struct api *a)
{
    http_client_free(a->cli);
    mr_buf_close(&a->out);
}

#define EXPECT_400(a, f, body, needle)                                                      \
    do {                                                                                    \
        assert_int_equal(request(f, (a)->cli, (a)->port, "PATCH",                           \
                                 "/links/us-east-1-%3Eeu-west-1", body, &(a)->out),        \
                         400);                                                              \
        if (strstr((a)->out.data, needle) == NULL)                                          \
            fail_msg("body %s: expected '%s' in %s", body, needle, (a)->out.data);          \
    } while (0)

static void bad_patch_bodies_get_400_naming_the_problem(void **state)
{
    struct fx *f = *state;
    struct api a;
    struct wan_settings s;

    api_start(f, &a);
    EXPECT_400(&a, f, "not json", "expected a JSON object");
    EXPECT_400(&a, f, "[1]", "expected a JSON object");
    EXPECT_400(&a, f, "{}", "expected at least one of");
    EXPECT_400(&a, f, "{\"latency_ms\": -1}", "latency_ms: expected a number from 0 to 60000");
    EXPECT_400(&a, f, "{\"latency_ms\": \"80ms\"}", "latency_ms");
    EXPECT_400(&a, f, "{\"jitter_ms\": 1e9}", "jitter_ms");
    EXPECT_400(&a, f, "{\"bandwidth_kbps\": true}", "bandwidth_kbps");
    EXPECT_400(&a, f, "{\"state\": \"down\"}", "state: expected \\\"up\\\"");
    EXPECT_400(&a, f, "{\"latency\": 80}", "unknown field 'latency'");
    /* a bad field leaves the good ones before it unapplied */
    EXPECT_400(&a, f, "{\"latency_ms\": 1, \"state\": 3}", "state");
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "us-east-1->eu-west-1"), &s), 0);
    assert_int_equal(s.latency_us[WAN_FWD], 35000);
    api_stop(&a);
}

static void patch_changes_a_link_and_get_shows_it(void **state)
{
    struct fx *f = *state;
    struct api a;
    struct wan_settings s;

    api_start(f, &a);
    assert_int_equal(request(f, a.cli, a.port, "PATCH", "/links/us-east-1:eu-west-1",
                             "{\"latency_ms\": 80, \"jitter_ms\": 2.5, \"state\": \"blackhole\"}",
                             &a.out),
                     200);
    assert_non_null(strstr(a.out.data, "\"latency_ms\":80"));
    assert_non_null(strstr(a.out.data, "\"state\":\"blackhole\""));
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "us-east-1->eu-west-1"), &s), 0);
    assert_int_equal(s.latency_us[WAN_FWD], 80000);
    assert_int_equal(s.latency_us[WAN_REPLY], 80000);
    assert_int_equal(s.jitter_us, 2500);
    assert_int_equal(s.state, WAN_BLACKHOLE);
    /* the raw arrow works too */
    assert_int_equal(request(f, a.cli, a.port, "PATCH", "/links/us-east-1->eu-west-1",
                             "{\"reply_latency_ms\": 10}", &a.out),
                     200);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "us-east-1->eu-west-1"), &s), 0);
    assert_int_equal(s.latency_us[WAN_FWD], 80000);
    assert_int_equal(s.latency_us[WAN_REPLY], 10000);
    assert_int_equal(request(f, a.cli, a.port, "GET", "/links", NULL, &a.out), 200);
    assert_non_null(strstr(a.out.data, "\"name\":\"eu-west-1->us-east-1\""));
    assert_int_equal(request(f, a.cli, a.port, "PATCH", "/links/nowhere->else", "{\"state\":\"up\"}",
                             &a.out),
                     404);
    assert_int_equal(request(f, a.cli, a.port, "POST", "/reset", "{}", &a.out), 200);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "us-east-1->eu-west-1"), &s), 0);
    assert_int_equal(s.latency_us[WAN_FWD], 35000);
    assert_int_equal(s.state, WAN_UP);
    api_stop(&a);
}

static void cut_heal_pids_metrics_healthz(void **state)
{
    struct fx *f = *state;
    struct api a;
    struct wan_settings s;

    api_start(f, &a);
    assert_int_equal(request(f, a.cli, a.port, "POST", "/regions/eu-west-1/cut?state=reject", "{}",
                             &a.out),
                     200);
    assert_non_null(strstr(a.out.data, "\"links_changed\":2"));
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "eu-west-1->us-east-1"), &s), 0);
    assert_int_equal(s.state, WAN_REJECT);
    assert_int_equal(request(f, a.cli, a.port, "POST", "/regions/eu-west-1/cut?state=up", "{}",
                             &a.out),
                     400);
    assert_int_equal(request(f, a.cli, a.port, "POST", "/regions/eu-west-1/heal", "{}", &a.out),
                     200);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "eu-west-1->us-east-1"), &s), 0);
    assert_int_equal(s.state, WAN_UP);
    assert_int_equal(request(f, a.cli, a.port, "PUT", "/pids", "{\"pids\": {\"12\": \"eu-west-1\"}}",
                             &a.out),
                     200);
    assert_int_equal(request(f, a.cli, a.port, "PUT", "/pids", "{\"pids\": {\"x\": 1}}", &a.out),
                     400);
    assert_int_equal(request(f, a.cli, a.port, "GET", "/metrics", NULL, &a.out), 200);
    assert_non_null(strstr(a.out.data, "meridian_wan_link_bytes_total{link=\"us-east-1->eu-west-1\","
                                       "direction=\"forward\"} 0"));
    assert_non_null(strstr(a.out.data, "meridian_wan_link_applied_delay_seconds_bucket"));
    assert_non_null(strstr(a.out.data, "meridian_wan_link_state{link=\"eu-west-1->us-east-1\","
                                       "state=\"up\"} 1"));
    assert_int_equal(request(f, a.cli, a.port, "GET", "/healthz", NULL, &a.out), 200);
    assert_int_equal(request(f, a.cli, a.port, "GET", "/nope", NULL, &a.out), 404);
    api_stop(&a);
}

static void cli_words_become_a_patch_body(void **state)
{
    char *ok[] = {"latency=80ms", "jitter=1.5ms", "bandwidth=10mbit", "state=blackhole"};
    char *bad1[] = {"latency=fast"}, *bad2[] = {"colour=red"}, *bad3[] = {"state=down"};
    char *bad4[] = {"bandwidth=10 furlongs"}, *bad5[] = {"latency"};
    struct wan_settings s;
    struct mr_buf b;
    char err[MR_ERRMSG_LEN];

    (void)state;
    mr_buf_init(&b);
    assert_int_equal(wan_settings_words_json(4, ok, &b, err), 0);
    wan_settings_default(&s);
    assert_int_equal(wan_settings_patch_json(&s, b.data, b.len, err), 0);
    assert_int_equal(s.latency_us[WAN_FWD], 80000);
    assert_int_equal(s.jitter_us, 1500);
    assert_int_equal(s.bandwidth_kbps, 10000);
    assert_int_equal(s.state, WAN_BLACKHOLE);
    assert_int_equal(wan_settings_words_json(1, bad1, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "latency: expected a duration"));
    assert_int_equal(wan_settings_words_json(1, bad2, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "unknown setting 'colour'"));
    assert_int_equal(wan_settings_words_json(1, bad3, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "state: expected up"));
    assert_int_equal(wan_settings_words_json(1, bad4, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "bandwidth"));
    assert_int_equal(wan_settings_words_json(1, bad5, &b, err), MR_EINVAL);
    assert_non_null(strstr(err, "KEY=VALUE"));
    mr_buf_close(&b);
}

/* Write <text> to a temp file, load it; returns rc, message in err. */
static int load_text(struct fx *f, const char *text, char *err)
{
    char path[] = "/tmp/wan-test-XXXXXX";
    int fd = mkstemp(path), rc, port;
    char *host = NULL;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rc = wan_config_load(f->w, path, &host, &port, err);
    unlink(path);
    mr_free(host);
    if (rc != 0) {
        /* strip the temp path: "PATH:LINE: msg" -> ":LINE: msg" */
        char *colon = strchr(err, ':');
        if (colon)
            memmove(err, colon, strlen(colon) + 1);
    }
    return rc;
}

static void config_errors_name_the_line(void **state)
{
    struct fx *f = *state;
    char err[MR_ERRMSG_LEN], text[512];

    assert_int_equal(load_text(f, "[wan]\ncontrol = 127.0.0.1:0\n\n[link a->b]\nlatency = 3.5ms\n"
                                  "\n[route r1]\nlisten = 127.0.0.1:0\ntarget = 127.0.0.1:9\n"
                                  "link = a->b\n",
                               err),
                     0);
    assert_int_equal(wan_link_find(f->w, "a->b"), 0);
    assert_int_equal(load_text(f, "[link c->d]\nlatency = soon\n", err), MR_ECONFIG);
    assert_string_equal(err, ":2: key 'latency': expected a duration such as 35ms, 1.5ms or 2s "
                             "(at most 60s), found 'soon'");
    assert_int_equal(load_text(f, "[link e->f]\nlatency = 1\ncolour = red\n", err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: unknown key 'colour' in [link e->f]"));
    assert_int_equal(load_text(f, "[links]\n", err), MR_ECONFIG);
    assert_non_null(strstr(err, ":1: unknown section [links]"));
    snprintf(text, sizeof(text), "[link g->h]\nlatency = 1\n[route r]\nlisten = 127.0.0.1:0\n"
                                 "target = 127.0.0.1:9\nlink = nope->x\n");
    assert_int_equal(load_text(f, text, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: route r: no link 'nope->x'"));
    assert_int_equal(load_text(f, "[route s]\nlisten = 127.0.0.1:0\ntarget = 127.0.0.1:9\n", err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "expected exactly one of 'link' and 'to'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bad_patch_bodies_get_400_naming_the_problem, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(patch_changes_a_link_and_get_shows_it, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(cut_heal_pids_metrics_healthz, fx_setup, fx_teardown),
        cmocka_unit_test(cli_words_become_a_patch_body),
        cmocka_unit_test_setup_teardown(config_errors_name_the_line, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
