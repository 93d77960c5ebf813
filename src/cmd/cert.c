/* cert.c -- `meridian cert`: make a cluster CA, issue certificates.
 * Arguments only; the work is src/tls/cert.c (tls.h, docs/security.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../tls/tls.h"
#include "cmd.h"

static void cert_usage(FILE *f)
{
    fprintf(f,
            "usage: meridian cert ca    --out DIR [--name CLUSTER] [--days N]\n"
            "       meridian cert issue --ca DIR --name NAME [--host H,H,...] [--days N]\n"
            "                           --out DIR\n"
            "\n"
            "ca:    a new cluster CA: DIR/ca.crt and DIR/ca.key (EC P-256, key 0600).\n"
            "       Refuses to overwrite an existing CA.\n"
            "issue: a certificate for one process (server and client at once):\n"
            "       DIR/NAME.crt and DIR/NAME.key, signed by the CA in --ca.  Replaces\n"
            "       existing files (rotation: then send SIGHUP to reload).\n"
            "\n"
            "  -o, --out DIR      where the files go (created 0700 if missing)\n"
            "  -c, --ca DIR       (issue) the CA's directory\n"
            "  -n, --name NAME    (ca) the cluster's name, default meridian-ca;\n"
            "                     (issue) the certificate's CN and file name\n"
            "  -H, --host LIST    (issue) comma-separated DNS names and IP addresses\n"
            "                     the certificate is valid for, e.g. 127.0.0.1,localhost\n"
            "  -d, --days N       validity (default %d for a CA, %d for a certificate)\n"
            "  -h, --help\n",
            TLS_CERT_CA_DAYS, TLS_CERT_LEAF_DAYS);
}

static int parse_days(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 100 * 366)
        return -1;
    *out = (int)v;
    return 0;
}

int cmd_cert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},  {"ca", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'}, {"host", required_argument, NULL, 'H'},
        {"days", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *ca = NULL, *name = NULL, *hosts = NULL, *what;
    char err[MR_ERRMSG_LEN];
    int days = 0, opt, rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        cert_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    what = argv[1];
    if (strcmp(what, "ca") != 0 && strcmp(what, "issue") != 0) {
        fprintf(stderr, "meridian cert: unknown action '%s' (ca or issue)\n", what);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "o:c:n:H:d:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'c': ca = optarg; break;
        case 'n': name = optarg; break;
        case 'H': hosts = optarg; break;
        case 'd':
            if (parse_days(optarg, &days) != 0) {
                fprintf(stderr, "meridian cert: --days: '%s' is not a number of days (1-36600)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': cert_usage(stdout); return 0;
        default: cert_usage(stderr); return 2;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "meridian cert %s: unexpected argument '%s'\n", what, argv[optind + 1]);
        return 2;
    }
    if (out == NULL) {
        fprintf(stderr, "meridian cert %s: --out DIR is required\n", what);
        return 2;
    }
    if (strcmp(what, "ca") == 0) {
        if (ca != NULL || hosts != NULL) {
            fprintf(stderr, "meridian cert ca: --ca and --host are for `cert issue`\n");
            return 2;
        }
        rc = tls_cert_make_ca(out, name, days > 0 ? days : TLS_CERT_CA_DAYS, err);
        if (rc != 0) {
            fprintf(stderr, "meridian cert ca: %s\n", err);
            return 1;
        }
        printf("%s/ca.crt\n%s/ca.key\n", out, out);
        return 0;
    }
    if (ca == NULL || name == NULL) {
        fprintf(stderr, "meridian cert issue: --ca DIR and --name NAME are required\n");
        return 2;
    }
    if (days == 0)
        days = TLS_CERT_LEAF_DAYS;
    /* An hour back: a peer whose clock is a little behind accepts it. */
    rc = tls_cert_issue(ca, name, hosts, -3600, (long)days * 86400, out, err);
    if (rc != 0) {
        fprintf(stderr, "meridian cert issue: %s\n", err);
        return 1;
    }
    printf("%s/%s.crt\n%s/%s.key\n", out, name, out, name);
    return 0;
}
