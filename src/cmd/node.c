/* node.c -- `meridian node --config FILE`: run one region's node. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../etcd/etcd.h"
#include "../http/http.h"
#include "../node/node.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian node --config FILE [--set SECTION.KEY=VALUE]...\n"
            "       meridian node --sample-config\n"
            "       meridian node --check-config --config FILE\n\n"
            "Runs one region's node of the global SQL database (SIGTERM, SIGINT: stop;\n"
            "SIGHUP: reload the [tls] certificate and the [auth] tokens).  Options:\n"
            "  -c, --config FILE       INI configuration (see docs/config.md)\n"
            "  -s, --set S.K=V         override one setting, e.g. --set node.listen=127.0.0.1:0\n"
            "      --check-config      validate the configuration and exit\n"
            "      --sample-config     print a commented sample configuration\n");
}

/* The handles that keep the process's loop alive besides the node's own. */
struct runner {
    struct node *n;
    const char *config;   /* --config, re-read on SIGHUP */
    uv_check_t check;
    uv_signal_t sigs[2];
    uv_signal_t hup;      /* reload, not stop */
    int closed;
};

static void runner_close(struct runner *r)
{
    if (r->closed)
        return;
    r->closed = 1;
    uv_close((uv_handle_t *)&r->sigs[0], NULL);
    uv_close((uv_handle_t *)&r->sigs[1], NULL);
    uv_close((uv_handle_t *)&r->hup, NULL);
    uv_close((uv_handle_t *)&r->check, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;

    mr_log(MR_LOG_INFO, "node", "signal %d: shutting down", signum);
    node_stop(r->n);
    runner_close(r);
}

/* SIGHUP's default action would end the process: an operator rotating a
 * certificate or a token must not stop the node by it.  Reload [tls]'s
 * files and [auth]'s tokens instead. */
static void on_hup(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;

    (void)signum;
    mr_log(MR_LOG_INFO, "node", "SIGHUP: reloading the certificates and the tokens");
    node_reload(r->n, r->config);
}

/* The node stops itself after a fatal error; then let the loop end. */
static void on_check(uv_check_t *h)
{
    struct runner *r = h->data;

    if (node_failed(r->n, NULL))
        runner_close(r);
}

static int apply_override(struct node_cfg *cfg, const char *arg, char *err)
{
    char *copy = mr_strdup(arg), *dot = strchr(copy, '.'), *eq = strchr(copy, '=');
    int rc;

    if (dot == NULL || eq == NULL || dot > eq) {
        mr_free(copy);
        return mr_seterr(err, MR_ECONFIG, "--set %s: expected SECTION.KEY=VALUE", arg);
    }
    *dot = '\0';
    *eq = '\0';
    rc = mr_cfg_set(node_cfg_opts, node_cfg_n_opts, cfg, "--set", copy, dot + 1, eq + 1, err);
    mr_free(copy);
    return rc;
}

int cmd_node(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'k'}, {"sample-config", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *sets[64];
    int n_sets = 0, check_only = 0, opt, rc, level, status = 0;
    char err[MR_ERRMSG_LEN];
    struct node_cfg cfg;
    struct node *n;
    uv_loop_t loop;
    struct runner r;
    const char *why;

    while ((opt = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 's':
            if (n_sets == 64) {
                fprintf(stderr, "meridian node: at most 64 --set options\n");
                return 2;
            }
            sets[n_sets++] = optarg;
            break;
        case 'k': check_only = 1; break;
        case 'S': mr_cfg_write_sample(stdout, node_cfg_opts, node_cfg_n_opts); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    rc = mr_cfg_load(config, node_cfg_opts, node_cfg_n_opts, &cfg, err);
    for (int i = 0; rc == 0 && i < n_sets; i++)
        rc = apply_override(&cfg, sets[i], err);
    if (rc == 0) {
        enum etcd_transport tr;
        if (etcd_transport_parse(cfg.etcd_transport, &tr) != 0)
            rc = mr_seterr(err, MR_ECONFIG, "%s: key 'etcd_transport' in [node]: expected gateway or "
                           "grpc, found '%s'", config, cfg.etcd_transport);
    }
    if (rc == 0 && strcmp(cfg.advertise_url, "auto") != 0) {
        char *host = NULL, *path = NULL, perr[MR_ERRMSG_LEN];
        int port;
        if (http_parse_url(cfg.advertise_url, &host, &port, &path, perr) != 0)
            rc = mr_seterr(err, MR_ECONFIG, "%s: key 'advertise_url' in [node]: expected auto or "
                           "http://host:port, found '%s' (%s)", config, cfg.advertise_url, perr);
        mr_free(host);
        mr_free(path);
    }
    if (rc == 0 && (level = mr_log_level_parse(cfg.log_level)) < 0)
        rc = mr_seterr(err, MR_ECONFIG, "%s: key 'log_level' in [node]: expected debug, info, warn "
                       "or error, found '%s'", config, cfg.log_level);
    if (rc == 0 && (rc = node_check_config(&cfg, err)) != 0)
        mr_wraperr(err, rc, "%s", config);
    if (rc == 0)
        rc = node_check_auth_config(&cfg, err);   /* token errors name file:line */
    if (rc != 0) {
        fprintf(stderr, "meridian node: %s\n", err);
        mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
        return 1;
    }
    if (check_only) {
        printf("%s: ok\n", config);
        mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
        return 0;
    }
    mr_log_setup(cfg.region, "node", (enum mr_log_level)level);
    uv_loop_init(&loop);
    rc = node_start(&loop, &cfg, &n, err);
    if (rc != 0) {
        fprintf(stderr, "meridian node: %s\n", err);
        uv_loop_close(&loop);
        mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
        return 1;
    }
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.config = config;
    uv_signal_init(&loop, &r.sigs[0]);
    uv_signal_init(&loop, &r.sigs[1]);
    r.sigs[0].data = r.sigs[1].data = r.check.data = &r;
    uv_signal_start(&r.sigs[0], on_signal, SIGTERM);
    uv_signal_start(&r.sigs[1], on_signal, SIGINT);
    uv_signal_init(&loop, &r.hup);
    r.hup.data = &r;
    uv_signal_start(&r.hup, on_hup, SIGHUP);
    uv_check_init(&loop, &r.check);
    r.check.data = &r;
    uv_check_start(&r.check, on_check);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (node_failed(n, &why)) {
        fprintf(stderr, "meridian node: %s\n", why);
        status = 1;
    }
    node_free(n);
    if (uv_loop_close(&loop) != 0)
        mr_log(MR_LOG_WARN, "node", "loop closed with handles still open");
    mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
    mr_log(MR_LOG_INFO, "node", "stopped");
    return status;
}
