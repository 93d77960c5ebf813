/* fuzz_config.c -- the three INI parsers an operator feeds: the node's
 * config, the topology of `meridian up`, and the wan's config.  The first
 * byte chooses the parser.  A refusal must name the problem. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/cfg.h"
#include "common/err.h"
#include "fuzz.h"
#include "node/node.h"
#include "node/node_cfg.h"
#include "up/up.h"
#include "wan/wan.h"

static void wan_closed(void *data)
{
    *(int *)data = 1;
}

/* The wan binds the ports its routes listen on: fuzz only inputs whose
 * every "listen" line asks the kernel for a port (":0"), so that a mutated
 * input never takes a port another process on this machine uses. */
static int wan_input_binds_only_port_0(const char *text)
{
    for (const char *p = strstr(text, "listen"); p; p = strstr(p + 1, "listen")) {
        const char *eol = strchr(p, '\n'), *colon;
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        colon = memrchr(p, ':', n);
        if (colon == NULL)
            continue; /* no port: refused by the parser */
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\r' || p[n - 1] == '\t'))
            n--;
        if ((size_t)(colon - p) != n - 2 || colon[1] != '0')
            return 0;
    }
    return 1;
}

static void refusal_must_say_why(int rc, const char *err)
{
    if (rc != 0 && err[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN] = "";
    int rc;

    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        struct node_cfg cfg;
        memset(&cfg, 0, sizeof(cfg)); /* mr_cfg_defaults frees what it replaces */
        mr_cfg_defaults(node_cfg_opts, node_cfg_n_opts, &cfg);
        rc = mr_cfg_load(fuzz_file(data + 1, size - 1), node_cfg_opts, node_cfg_n_opts, &cfg,
                         err);
        refusal_must_say_why(rc, err);
        if (rc == 0) {
            /* [auth]: token lines, required, peer_token */
            rc = node_check_auth_config(&cfg, err);
            refusal_must_say_why(rc, err);
        }
        mr_cfg_free(node_cfg_opts, node_cfg_n_opts, &cfg);
        break;
    }
    case 1: {
        struct up_topology *t = NULL;
        char *text = fuzz_cstr(data + 1, size - 1);
        rc = up_topology_parse(text, "fuzz", &t, err);
        refusal_must_say_why(rc, err);
        if (rc == 0)
            up_topology_free(t);
        free(text);
        break;
    }
    default: {
        /* The wan binds the listen ports its routes name: with port 0 the
         * kernel picks, so inputs cannot collide with anything. */
        uv_loop_t loop;
        struct wan *w;
        char *host = NULL, *text = fuzz_cstr(data + 1, size - 1);
        int port = 0, closed = 0, safe = wan_input_binds_only_port_0(text);
        free(text);
        if (!safe)
            break;
        uv_loop_init(&loop);
        w = wan_new(&loop);
        rc = wan_config_load(w, fuzz_file(data + 1, size - 1), &host, &port, err);
        refusal_must_say_why(rc, err);
        mr_free(host);
        wan_close(w, wan_closed, &closed);
        while (!closed)
            uv_run(&loop, UV_RUN_ONCE);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        break;
    }
    }
    return 0;
}
