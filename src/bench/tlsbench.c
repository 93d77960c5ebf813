/* tlsbench.c -- `meridian bench tls` (see tlsbench.h): the CPU one small
 * request and its answer cost in the TLS engine (src/tls), both ends, no
 * socket: a client and a server tls_conn pump records into each other in
 * one process, as the edge's two sides do per request.  CPU time of the
 * process, medians over the runs.  The kernel's share of a real exchange
 * (docs/edge.md) is not in it: this is the part TLS adds in user space. */
#include "tlsbench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../tls/tls.h"
#include "report.h"
#include "topo.h"

/* Move every byte of ciphertext <from> has for <to> into it. */
static int pump(struct tls_conn *from, struct tls_conn *to)
{
    char buf[65536];
    size_t n;

    while ((n = tls_conn_take(from, buf, sizeof(buf))) > 0)
        if (tls_conn_feed(to, buf, n) != 0)
            return -1;
    return 0;
}

/* Plaintext bytes <c> can read now. */
static size_t drain(struct tls_conn *c)
{
    char buf[65536];
    ssize_t n;
    size_t total = 0;

    while ((n = tls_conn_read(c, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    return total;
}

static int setup(const char *dir, struct tls_ctx **srv, struct tls_ctx **cli, char *err)
{
    char ca_dir[256], ca[300], crt[300], key[300];
    struct tls_opts so = {0}, co = {0};
    int rc;

    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", dir);
    if ((rc = tls_cert_make_ca(ca_dir, "bench", 1, err)) != 0 ||
        (rc = tls_cert_issue(ca_dir, "server", "127.0.0.1", -60, 3600, dir, err)) != 0 ||
        (rc = tls_cert_issue(ca_dir, "client", NULL, -60, 3600, dir, err)) != 0)
        return rc;
    snprintf(ca, sizeof(ca), "%s/ca.crt", ca_dir);
    snprintf(crt, sizeof(crt), "%s/server.crt", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    so.ca_file = ca;
    so.cert_file = crt;
    so.key_file = key;
    so.require_peer_cert = 1;
    if ((rc = tls_ctx_new(&so, 1, srv, err)) != 0)
        return rc;
    snprintf(crt, sizeof(crt), "%s/client.crt", dir);
    snprintf(key, sizeof(key), "%s/client.key", dir);
    co.ca_file = ca;
    co.cert_file = crt;
    co.key_file = key;
    return tls_ctx_new(&co, 0, cli, err);
}

/* One run: <n> exchanges of <req> bytes one way and <ans> the other over
 * one connection (mutual TLS, handshake not counted); ns per exchange. */
static int run_once(struct tls_ctx *srv, struct tls_ctx *cli, int n, size_t req, size_t ans, double *ns,
                    char *err)
{
    struct tls_conn *s = NULL, *c = NULL;
    char *rq = calloc(1, req), *an = calloc(1, ans);
    double t0;
    int rc;

    if ((rc = tls_conn_new(srv, "bench-client", NULL, NULL, &s, err)) != 0 ||
        (rc = tls_conn_new(cli, "bench-server", "127.0.0.1", NULL, &c, err)) != 0)
        goto out;
    for (int i = 0; i < 8 && !(tls_conn_handshake_done(c) && tls_conn_handshake_done(s)); i++) {
        if (pump(c, s) != 0)
            break;
        drain(s);
        if (pump(s, c) != 0)
            break;
        drain(c);
    }
    if (!tls_conn_handshake_done(c) || !tls_conn_handshake_done(s)) {
        rc = mr_seterr(err, MR_EPROTO, "handshake did not complete: %s", tls_conn_error(c));
        goto out;
    }
    t0 = mr_cpu_seconds();
    for (int i = 0; i < n; i++) {
        if (tls_conn_write(c, rq, req) != 0 || pump(c, s) != 0 || drain(s) != req ||
            tls_conn_write(s, an, ans) != 0 || pump(s, c) != 0 || drain(c) != ans) {
            rc = mr_seterr(err, MR_EPROTO, "exchange %d failed", i);
            goto out;
        }
    }
    *ns = (mr_cpu_seconds() - t0) / n * 1e9;
out:
    tls_conn_free(c);
    tls_conn_free(s);
    free(rq);
    free(an);
    return rc;
}

int tlsbench_measure(int runs, int n, size_t req, size_t ans, double *ns, char *err)
{
    char dir[] = "/tmp/meridian-tlsbench-XXXXXX";
    struct tls_ctx *srv = NULL, *cli = NULL;
    int rc;

    if (runs < 1 || runs > 64)
        return mr_seterr(err, MR_EINVAL, "runs: expected 1 to 64, found %d", runs);
    if (mkdtemp(dir) == NULL)
        return mr_seterr(err, MR_EIO, "mkdtemp: %s", strerror(errno));
    rc = setup(dir, &srv, &cli, err);
    for (int i = 0; rc == 0 && i < runs; i++)
        rc = run_once(srv, cli, n, req, ans, &ns[i], err);
    tls_ctx_free(srv);
    tls_ctx_free(cli);
    if (topo_remove_dir(dir) != 0 && rc == 0)
        rc = mr_seterr(err, MR_EIO, "could not remove %s", dir);
    return rc;
}

int tlsbench_main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"runs", required_argument, NULL, 'r'},     {"exchanges", required_argument, NULL, 'n'},
        {"request", required_argument, NULL, 'q'},  {"answer", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int64_t runs = 5, n = 100000, req = 120, ans = 260;
    char err[MR_ERRMSG_LEN];
    double ns[64], med;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "r:n:q:a:h", longs, NULL)) != -1) {
        int64_t *slot = c == 'r' ? &runs : c == 'n' ? &n : c == 'q' ? &req : c == 'a' ? &ans : NULL;
        int64_t max = c == 'r' ? 64 : c == 'n' ? 100000000 : 16384;
        if (slot && mr_parse_i64(optarg, 1, max, slot) == 0)
            continue;
        if (slot)
            fprintf(stderr, "meridian bench tls: --%s: expected 1 to %lld, found '%s'\n",
                    c == 'r' ? "runs" : c == 'n' ? "exchanges" : c == 'q' ? "request" : "answer", (long long)max,
                    optarg);
        fprintf(c == 'h' ? stdout : stderr,
                "usage: meridian bench tls [--runs 5] [--exchanges 100000] [--request 120] [--answer 260]\n\n"
                "CPU time of one request and its answer through the TLS engine (src/tls), both ends in\n"
                "one process, no socket: what TLS adds in user space per exchange at the edge or between\n"
                "nodes.  Mutual TLS 1.3, the suites and modes the product uses.  Medians over the runs.\n");
        return c == 'h' ? 0 : 2;
    }
    mr_log_setup(NULL, "bench", MR_LOG_ERROR);
    printf("meridian bench tls: %lld exchanges of %lld + %lld bytes per run, %lld runs (%s)\n",
           (long long)n, (long long)req, (long long)ans, (long long)runs, OpenSSL_version(OPENSSL_VERSION));
    if (tlsbench_measure((int)runs, (int)n, (size_t)req, (size_t)ans, ns, err) != 0) {
        fprintf(stderr, "meridian bench tls: %s\n", err);
        return 1;
    }
    for (int i = 0; i < runs; i++)
        printf("  run %d: %.0f ns per exchange\n", i + 1, ns[i]);
    med = report_median_of(ns, (size_t)runs);
    printf("median: %.0f ns per exchange (4 record operations: %.0f ns each), %.0f exchanges per "
           "CPU-second\n", med, med / 4, 1e9 / med);
    return 0;
}
