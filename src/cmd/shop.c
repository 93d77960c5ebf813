/* shop.c -- `meridian shop`: run one shop, or seed its data.
 * Arguments, config, wiring, run loop; the shop is src/shop (docs/shop.md). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../shop/shop.h"
#include "../up/up.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian shop [--config FILE] [--listen HOST:PORT] [--node URL] [--region NAME]\n"
            "                     [--set SECTION.KEY=VALUE]...\n"
            "       meridian shop seed --node URL [--products N] [--dir RUNDIR | --auth-token T]\n"
            "       meridian shop --sample-config | --check-config [...]\n\n"
            "The reference online shop: catalog, cart, checkout and orders on this region's node\n"
            "(docs/shop.md).  A stateless service: run as many per region as you like.\n"
            "  -c, --config FILE     INI configuration ([shop], [session], [limits], [cache])\n"
            "  -l, --listen H:P      shop.listen (port 0: from the kernel)\n"
            "  -n, --node URL        shop.node, e.g. http://127.0.0.1:7001\n"
            "  -r, --region NAME     shop.region, shown on every page\n"
            "  -s, --set S.K=V       override any setting, e.g. --set limits.max_qty=20\n"
            "      --check-config    validate the configuration and exit\n"
            "      --sample-config   print a commented sample configuration\n"
            "seed: declare the global tables, create the schema, load N products (default 300);\n"
            "      idempotent: running it again changes nothing.  It needs an admin token when the\n"
            "      node has [auth] tokens: --auth-token, else $MERIDIAN_TOKEN, else the one in\n"
            "      RUNDIR/topology.json (--dir).  An https:// node: the admin certificate of\n"
            "      RUNDIR/topology.json, else $MERIDIAN_TLS_CA, $MERIDIAN_TLS_CERT, $MERIDIAN_TLS_KEY.\n"
            "On start it prints \"listening http[s]://HOST:PORT\" on stdout.  SIGHUP re-reads the\n"
            "[tls] certificate files and the [auth] tokens (rotation); SIGTERM and SIGINT stop.\n");
}

static int cmd_shop_seed(int argc, char **argv)
{
    static const struct option longopts[] = {{"node", required_argument, NULL, 'n'},
                                             {"products", required_argument, NULL, 'p'},
                                             {"dir", required_argument, NULL, 'd'},
                                             {"auth-token", required_argument, NULL, 'A'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *node = NULL, *dir = NULL, *given = NULL;
    int64_t n = 300;
    char err[MR_ERRMSG_LEN], *token;
    struct tls_ctx *tls = NULL;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "n:p:d:A:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': node = optarg; break;
        case 'd': dir = optarg; break;
        case 'A': given = optarg; break;
        case 'p':
            if (mr_parse_i64(optarg, 1, 9999, &n) != 0) {
                fprintf(stderr, "meridian shop seed: --products: expected 1 to 9999, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (node == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    mr_log_setup(NULL, "shop", MR_LOG_WARN);
    token = mr_auth_client_token(given, dir);
    /* An https:// node: the admin certificate of RUNDIR, or $MERIDIAN_TLS_*. */
    rc = up_client_tls(dir, &tls, err);
    if (rc == 0)
        rc = shop_seed(node, token, (int)n, stdout, err);
    up_client_tls_free(tls);
    mr_free(token);
    if (rc != 0) {
        fprintf(stderr, "meridian shop seed: %s\n", err);
        return 1;
    }
    printf("seeded %s\n", node);
    return 0;
}

struct runner {
    struct shop *s;
    int has_tls;               /* [tls] is set: SIGHUP reloads its files */
    const char *config;        /* --config: SIGHUP re-reads its [auth] tokens */
    uv_signal_t sigs[3];
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    char err[MR_ERRMSG_LEN];

    if (signum == SIGHUP) {
        /* Certificate and token rotation: a bad file must not take the shop
         * down, so what was loaded before stays and the operator reads why.
         * Each independently: a bad token line holds back no certificate. */
        if (!r->has_tls)
            mr_log(MR_LOG_INFO, "shop", "SIGHUP: no [tls] certificates to reload");
        else if (shop_reload_tls(r->s, err) != 0)
            mr_log(MR_LOG_ERROR, "shop", "SIGHUP: certificates not reloaded, the old ones stay: %s", err);
        else
            mr_log(MR_LOG_INFO, "shop", "SIGHUP: certificates reloaded");
        if (r->config == NULL)
            mr_log(MR_LOG_INFO, "shop", "SIGHUP: no --config file, the [auth] tokens stay as they are");
        else if (shop_reload_auth(r->s, r->config, err) != 0)
            mr_log(MR_LOG_ERROR, "auth", "reload failed, the tokens loaded before stay in use: %s", err);
        return;
    }
    mr_log(MR_LOG_INFO, "shop", "signal %d: stopping", signum);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&r->sigs[i], NULL);
    shop_stop(r->s);
    r->s = NULL;
}

static int set_opt(struct shop_config *cfg, const char *section, const char *key, const char *value, char *err)
{
    return mr_cfg_set(shop_cfg_opts, shop_cfg_n_opts, cfg, "flag", section, key, value, err);
}

int cmd_shop(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
        {"node", required_argument, NULL, 'n'},   {"region", required_argument, NULL, 'r'},
        {"set", required_argument, NULL, 's'},    {"check-config", no_argument, NULL, 'k'},
        {"sample-config", no_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *config = NULL, *listen = NULL, *node = NULL, *region = NULL, *sets[64];
    int n_sets = 0, check_only = 0, opt, rc = 0;
    char err[MR_ERRMSG_LEN];
    struct shop_config cfg;
    struct runner r;
    uv_loop_t loop;

    if (argc >= 2 && strcmp(argv[1], "seed") == 0)
        return cmd_shop_seed(argc - 1, argv + 1);
    while ((opt = getopt_long(argc, argv, "c:l:n:r:s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'n': node = optarg; break;
        case 'r': region = optarg; break;
        case 's':
            if (n_sets == 64) {
                fprintf(stderr, "meridian shop: at most 64 --set options\n");
                return 2;
            }
            sets[n_sets++] = optarg;
            break;
        case 'k': check_only = 1; break;
        case 'S': mr_cfg_write_sample(stdout, shop_cfg_opts, shop_cfg_n_opts); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    if (config)
        rc = mr_cfg_load(config, shop_cfg_opts, shop_cfg_n_opts, &cfg, err);
    else
        mr_cfg_defaults(shop_cfg_opts, shop_cfg_n_opts, &cfg);
    for (int i = 0; rc == 0 && i < n_sets; i++) {
        char *copy = mr_strdup(sets[i]), *dot = strchr(copy, '.'), *eq = strchr(copy, '=');
        if (dot == NULL || eq == NULL || dot > eq) {
            rc = mr_seterr(err, MR_ECONFIG, "--set %s: expected SECTION.KEY=VALUE", sets[i]);
        } else {
            *dot = *eq = '\0';
            rc = mr_cfg_set(shop_cfg_opts, shop_cfg_n_opts, &cfg, "--set", copy, dot + 1, eq + 1, err);
        }
        mr_free(copy);
    }
    if (rc == 0 && listen)
        rc = set_opt(&cfg, "shop", "listen", listen, err);
    if (rc == 0 && node)
        rc = set_opt(&cfg, "shop", "node", node, err);
    if (rc == 0 && region)
        rc = set_opt(&cfg, "shop", "region", region, err);
    if (rc == 0)
        rc = mr_cfg_check_required(shop_cfg_opts, shop_cfg_n_opts, &cfg, config ? config : "flags", err);
    if (rc == 0)
        rc = shop_config_check(&cfg, err);
    if (rc != 0) {
        fprintf(stderr, "meridian shop: %s\n", err);
        mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", config ? config : "flags");
        mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
        return 0;
    }
    mr_log_setup(cfg.region, "shop", (enum mr_log_level)mr_log_level_parse(cfg.log_level));
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    memset(&r, 0, sizeof(r));
    r.has_tls = cfg.tls_ca_file != NULL;
    r.config = config;
    if (shop_start(&loop, &cfg, &r.s, err) != 0) {
        fprintf(stderr, "meridian shop: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&loop);
        mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
        return 1;
    }
    {
        static const int signals[3] = {SIGTERM, SIGINT, SIGHUP};
        for (int i = 0; i < 3; i++) {
            uv_signal_init(&loop, &r.sigs[i]);
            r.sigs[i].data = &r;
            uv_signal_start(&r.sigs[i], on_signal, signals[i]);
        }
    }
    {
        char host[128];
        const char *colon = strrchr(cfg.listen, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg.listen), cfg.listen);
        printf("listening %s://%s:%d\n", cfg.tls_ca_file && cfg.tls_ca_file[0] ? "https" : "http", host, shop_port(r.s));
        fflush(stdout);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        mr_log(MR_LOG_WARN, "shop", "loop closed with handles still open");
    mr_cfg_free(shop_cfg_opts, shop_cfg_n_opts, &cfg);
    mr_log(MR_LOG_INFO, "shop", "stopped");
    return 0;
}
