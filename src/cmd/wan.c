/* wan.c -- `meridian wan`: run the WAN emulator, or talk to a running one.
 * Arguments and wiring only; the emulator is src/wan/ (wan.h, docs/wan.md). */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../http/http.h"
#include "../wan/wan.h"
#include "cmd.h"

static void wan_usage(FILE *f)
{
    fprintf(f,
            "usage: meridian wan run --config FILE [--log-level LEVEL]\n"
            "       meridian wan links           [--dir RUNDIR | --control URL]\n"
            "       meridian wan set LINK KEY=VALUE... [--dir RUNDIR | --control URL]\n"
            "       meridian wan cut REGION [--state blackhole|reject|slow_close] [--dir ...]\n"
            "       meridian wan heal REGION     [--dir RUNDIR | --control URL]\n"
            "       meridian wan reset           [--dir RUNDIR | --control URL]\n"
            "\n"
            "A user-space WAN emulator: one listening port per route, links with a one-way\n"
            "latency per direction, jitter (never reordering), a bandwidth cap and a state\n"
            "(docs/wan.md).  LINK is FROM->TO (quote it in a shell) or FROM:TO.  KEY is\n"
            "latency, reply_latency, jitter, close_delay (80ms, 1.5s), bandwidth (10mbit;\n"
            "0: no cap) or state (up, blackhole, reject, slow_close).\n"
            "\n"
            "  -c, --config FILE      (run) the wan config, INI\n"
            "  -d, --dir RUNDIR       a topology started by `meridian up`: its wan\n"
            "  -C, --control URL      the wan's control API, e.g. http://127.0.0.1:4000\n"
            "  -s, --state STATE      (cut) the state to cut with (default blackhole)\n"
            "  -l, --log-level LEVEL  (run) debug, info, warn, error (default info)\n"
            "  -A, --auth-token T     admin token for a wan whose [control] has tokens (default:\n"
            "                         $MERIDIAN_TOKEN, else the one in RUNDIR/topology.json)\n"
            "  -h, --help\n"
            "\n"
            "Environment: MERIDIAN_WAN  the control URL when neither --dir nor --control is given\n");
}

/* ---- run ---- */

struct runner {
    uv_loop_t loop;
    struct wan *w;
    const char *config;
    uv_signal_t sigs[3];
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;

    if (signum == SIGHUP) {
        char err[MR_ERRMSG_LEN];
        /* Token rotation without cutting every emulated link. */
        if (r->w && wan_config_reload_tokens(r->w, r->config, err) != 0)
            mr_log(MR_LOG_ERROR, "wan", "SIGHUP: reload failed, the tokens loaded before stay in use: %s", err);
        else if (r->w)
            mr_log(MR_LOG_INFO, "wan", "SIGHUP: the [wan] token lines of %s reloaded", r->config);
        return;
    }
    mr_log(MR_LOG_INFO, "wan", "SIG%s: stopping", sigabbrev_np(signum));
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&r->sigs[i], NULL);
    if (r->w) {
        wan_close(r->w, NULL, NULL);
        r->w = NULL;
    }
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int wan_run(const char *config)
{
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    struct runner r;
    char err[MR_ERRMSG_LEN], *host = NULL;
    int port = 0, bound = 0, rc;
    struct mr_buf links;

    memset(&r, 0, sizeof(r));
    r.config = config;
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&r.loop) != 0) {
        fprintf(stderr, "meridian wan: cannot create the event loop\n");
        return 1;
    }
    r.w = wan_new(&r.loop);
    rc = wan_config_load(r.w, config, &host, &port, err);
    if (rc == 0)
        rc = wan_control_start(r.w, host, port, &bound, err);
    if (rc != 0) {
        fprintf(stderr, "meridian wan: %s\n", err);
        wan_close(r.w, NULL, NULL);
        uv_run(&r.loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&r.loop);
        mr_free(host);
        return rc == MR_ECONFIG ? 2 : 1;
    }
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&r.loop, &r.sigs[i]);
        r.sigs[i].data = &r;
        uv_signal_start(&r.sigs[i], on_signal, signals[i]);
    }
    mr_buf_init(&links);
    wan_links_json(r.w, &links);
    mr_log(MR_LOG_INFO, "wan", "control http://%s:%d; %s", host, bound, links.data);
    mr_buf_close(&links);
    printf("control http://%s:%d\n", host, bound);
    fflush(stdout);
    mr_free(host);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop) == UV_EBUSY) {
        uv_walk(&r.loop, close_walk_cb, NULL);
        uv_run(&r.loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&r.loop);
    }
    mr_log(MR_LOG_INFO, "wan", "stopped");
    return 0;
}

/* ---- clients ---- */

/* The control URL from --control, --dir (RUNDIR/topology.json "wan"), or
 * $MERIDIAN_WAN.  A new string, or NULL with a message on stderr. */
static char *control_url(const char *control, const char *dir)
{
    const char *env = getenv("MERIDIAN_WAN");
    char *path, *url = NULL;
    json_t *root;
    json_error_t jerr;

    if (control)
        return mr_strdup(control);
    if (dir == NULL) {
        if (env && *env)
            return mr_strdup(env);
        fprintf(stderr, "meridian wan: expected --dir RUNDIR, --control URL or $MERIDIAN_WAN\n");
        return NULL;
    }
    path = mr_asprintf("%s/topology.json", dir);
    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "meridian wan: %s: %s\n", path, jerr.text);
    } else {
        const char *u = json_string_value(json_object_get(json_object_get(root, "wan"),
                                                          "control_url"));
        if (u)
            url = mr_strdup(u);
        else
            fprintf(stderr, "meridian wan: %s has no wan (a single region, or a topology "
                    "started before the wan existed)\n", path);
        json_decref(root);
    }
    mr_free(path);
    return url;
}

/* One request; prints the answer's body.  Exit code: 0 on 2xx.  <token>
 * (may be NULL) goes out as a bearer token. */
static int call(const char *base, const char *token, const char *method, const char *path,
                const char *body)
{
    struct http_result res;
    char err[MR_ERRMSG_LEN], headers[MR_AUTH_HEADER_MAX + 64];
    char *url = mr_asprintf("%s%s", base, path);
    int rc;

    mr_auth_header(token, headers, sizeof(headers));
    if (body)
        strcat(headers, "Content-Type: application/json\r\n");
    rc = http_fetch(method, url, headers[0] ? headers : NULL, body, body ? strlen(body) : 0, 10000,
                    &res, err);
    if (rc != 0) {
        fprintf(stderr, "meridian wan: %s %s: %s\n", method, url, err);
        mr_free(url);
        return 1;
    }
    mr_free(url);
    if (res.status / 100 == 2) {
        fputs(res.body.data ? res.body.data : "", stdout);
        rc = 0;
    } else {
        json_t *doc = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"),
                                                            "message"));
        fprintf(stderr, "meridian wan: %s %s: HTTP %d: %s\n", method, path, res.status,
                msg ? msg : (res.body.data ? res.body.data : ""));
        json_decref(doc);
        rc = res.status == 400 || res.status == 404 ? 2 : 1;
    }
    http_result_close(&res);
    return rc;
}

/* "a->b" and "a:b" both go into a URL path: '>' percent-encoded. */
static char *encode_link(const char *name)
{
    struct mr_buf b;

    mr_buf_init(&b);
    for (const char *p = name; *p; p++) {
        if (*p == '>')
            mr_buf_puts(&b, "%3E");
        else
            mr_buf_putc(&b, *p);
    }
    return mr_buf_steal(&b, NULL);
}

int cmd_wan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dir", required_argument, NULL, 'd'},
        {"control", required_argument, NULL, 'C'},
        {"state", required_argument, NULL, 's'},
        {"log-level", required_argument, NULL, 'l'},
        {"auth-token", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *dir = NULL, *control = NULL, *state = "blackhole";
    const char *level = "info", *sub, *given = NULL;
    char *url = NULL, *token = NULL;
    int c, rc = 2, lvl;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        wan_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    optind = 2;
    /* "+": stop at the first word that is not an option (KEY=VALUE words). */
    while ((c = getopt_long(argc, argv, "c:d:C:s:l:A:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'A': given = optarg; break;
        case 'c': config = optarg; break;
        case 'd': dir = optarg; break;
        case 'C': control = optarg; break;
        case 's': state = optarg; break;
        case 'l': level = optarg; break;
        case 'h': wan_usage(stdout); return 0;
        default: wan_usage(stderr); return 2;
        }
    }
    lvl = mr_log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "meridian wan: --log-level: expected debug, info, warn or error, found "
                "'%s'\n", level);
        return 2;
    }
    mr_log_setup(NULL, "wan", (enum mr_log_level)lvl);
    if (strcmp(sub, "run") == 0) {
        if (config == NULL || optind < argc) {
            fprintf(stderr, "meridian wan run: %s\n",
                    config ? "unexpected arguments" : "--config FILE is required");
            return 2;
        }
        return wan_run(config);
    }
    if (strcmp(sub, "links") != 0 && strcmp(sub, "set") != 0 && strcmp(sub, "cut") != 0 &&
        strcmp(sub, "heal") != 0 && strcmp(sub, "reset") != 0) {
        fprintf(stderr, "meridian wan: unknown subcommand '%s'\n", sub);
        wan_usage(stderr);
        return 2;
    }
    url = control_url(control, dir);
    if (url == NULL)
        return 1;
    token = mr_auth_client_token(given, dir);
    if (strcmp(sub, "links") == 0 || strcmp(sub, "reset") == 0) {
        if (optind < argc) {
            fprintf(stderr, "meridian wan %s: unexpected argument '%s'\n", sub, argv[optind]);
            goto out;
        }
        rc = sub[0] == 'l' ? call(url, token, "GET", "/links", NULL) : call(url, token, "POST", "/reset", "{}");
    } else if (strcmp(sub, "set") == 0) {
        struct mr_buf body;
        char err[MR_ERRMSG_LEN], *link, *path;
        if (argc - optind < 2) {
            fprintf(stderr, "meridian wan set: expected LINK KEY=VALUE...\n");
            goto out;
        }
        mr_buf_init(&body);
        if (wan_settings_words_json(argc - optind - 1, argv + optind + 1, &body, err) != 0) {
            fprintf(stderr, "meridian wan set: %s\n", err);
            mr_buf_close(&body);
            goto out;
        }
        link = encode_link(argv[optind]);
        path = mr_asprintf("/links/%s", link);
        rc = call(url, token, "PATCH", path, body.data);
        mr_free(path);
        mr_free(link);
        mr_buf_close(&body);
    } else {
        char *path;
        if (argc - optind != 1) {
            fprintf(stderr, "meridian wan %s: expected one REGION\n", sub);
            goto out;
        }
        path = sub[0] == 'c' ? mr_asprintf("/regions/%s/cut?state=%s", argv[optind], state)
                             : mr_asprintf("/regions/%s/heal", argv[optind]);
        rc = call(url, token, "POST", path, "{}");
        mr_free(path);
    }
out:
    mr_free(token);
    mr_free(url);
    return rc;
}
