/* edge.c -- `meridian edge --config FILE`: run the edge proxy of one site.
 * Arguments, config, wiring, run loop; the proxy is src/edge (docs/edge.md). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../edge/edge.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian edge --config FILE\n"
            "       meridian edge --check-config --config FILE\n"
            "       meridian edge --sample-config\n\n"
            "The reverse proxy of one client site: each request goes to the nearest healthy\n"
            "region and fails over to the next when that is safe; GET answers are cached\n"
            "(RFC 9111); regions over capacity shed by priority class (docs/edge.md).\n"
            "  -c, --config FILE     INI configuration (docs/config.md, [edge] and below)\n"
            "      --check-config    validate the configuration and exit\n"
            "      --sample-config   print a commented sample configuration\n"
            "On start it prints \"listening http[s]://HOST:PORT\" on stdout.  SIGHUP re-reads\n"
            "the [tls] certificate files (rotation); SIGTERM and SIGINT drain and stop.\n");
}

struct runner {
    struct edge *e;
    int has_tls;               /* [tls] names certificate files: SIGHUP reloads them */
    uv_signal_t sigs[3];
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    char err[MR_ERRMSG_LEN];

    if (signum == SIGHUP) {
        /* Certificate rotation.  A bad file must not take the edge down:
         * that context keeps its old certificate and the operator reads why. */
        if (r->e == NULL)
            return;
        if (!r->has_tls) {
            mr_log(MR_LOG_INFO, "edge", "SIGHUP: no [tls] certificates to reload");
            return;
        }
        if (edge_reload_tls(r->e, err) != 0)
            mr_log(MR_LOG_ERROR, "edge", "SIGHUP: certificates not all reloaded, the old ones "
                   "stay where they failed: %s", err);
        else
            mr_log(MR_LOG_INFO, "edge", "SIGHUP: certificates reloaded");
        return;
    }
    mr_log(MR_LOG_INFO, "edge", "SIG%s: stopping", sigabbrev_np(signum));
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&r->sigs[i], NULL);
    edge_stop(r->e);
    r->e = NULL;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int cmd_edge(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"sample-config", no_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    const char *config = NULL;
    int check_only = 0, opt, rc, level;
    char err[MR_ERRMSG_LEN];
    struct edge_config cfg;
    struct runner r;
    uv_loop_t loop;

    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'k': check_only = 1; break;
        case 'S': edge_config_write_sample(stdout); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    rc = edge_config_load(config, &cfg, err);
    if (rc == 0 && (level = mr_log_level_parse(cfg.log_level)) < 0)
        rc = mr_seterr(err, MR_ECONFIG, "%s: key 'log_level' in [edge]: expected debug, info, "
                       "warn or error, found '%s'", config, cfg.log_level);
    if (rc != 0) {
        fprintf(stderr, "meridian edge: %s\n", err);
        edge_config_free(&cfg);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", config);
        edge_config_free(&cfg);
        return 0;
    }
    mr_log_setup(cfg.name, "edge", (enum mr_log_level)level);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    memset(&r, 0, sizeof(r));
    r.has_tls = cfg.tls_public_cert_file != NULL || cfg.tls_ca_file != NULL;
    rc = edge_start(&loop, &cfg, &r.e, err);
    if (rc != 0) {
        fprintf(stderr, "meridian edge: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&loop);
        edge_config_free(&cfg);
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &r.sigs[i]);
        r.sigs[i].data = &r;
        uv_signal_start(&r.sigs[i], on_signal, signals[i]);
    }
    printf("listening %s://%s:%d\n", cfg.tls_public_cert_file ? "https" : "http",
           cfg.listen_host, edge_port(r.e));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) == UV_EBUSY) {
        mr_log(MR_LOG_WARN, "edge", "loop closed with handles still open");
        uv_walk(&loop, close_walk_cb, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&loop);
    }
    edge_config_free(&cfg);
    mr_log(MR_LOG_INFO, "edge", "stopped");
    return 0;
}
