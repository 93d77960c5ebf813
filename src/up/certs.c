/* certs.c -- the certificates of a local topology ([topology] tls = yes).
 *
 * A throw-away CA per run and one certificate per process, made with
 * src/tls's issuer (the same code as `meridian cert`).  Every certificate
 * names 127.0.0.1 and localhost: processes dial each other through the
 * wan's loopback ports, so the name a client checks is always 127.0.0.1,
 * and what tells one process from another is its CN (node-us-east-1...),
 * which the logs show.  Layout and policy: up.h "Certificates".
 *
 * Why fresh at every up rather than reused: a run directory never holds a
 * previous run (up_rundir_prepare refuses it), so there is nothing to reuse,
 * and a CA that lives as long as one run cannot be used against the next.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../tls/tls.h"
#include "up.h"

char *up_path_tls_cert(const char *rundir, const char *name)
{
    return mr_asprintf("%s/tls/%s.crt", rundir, name);
}

char *up_path_tls_key(const char *rundir, const char *name)
{
    return mr_asprintf("%s/tls/%s.key", rundir, name);
}

char *up_path_tls_ca(const char *rundir)
{
    return mr_asprintf("%s/tls/ca.crt", rundir);
}

void up_tls_name(const struct up_topology *t, enum up_proc_kind kind, size_t i, char *buf,
                 size_t n)
{
    if (kind == UP_EDGE)
        snprintf(buf, n, "edge-%s", t->sites[i].slug);
    else
        snprintf(buf, n, "%s-%s", up_kind_name(kind), t->regions[i].name);
}

/* Long enough for any local run; short enough that a copied key is soon
 * worthless. */
#define UP_TLS_DAYS 30

static int issue(const char *dir, const char *name, char *err)
{
    int rc = tls_cert_issue(dir, name, UP_TLS_HOSTS, -300, (long)UP_TLS_DAYS * 86400, dir, err);

    /* "-300": a clock a little behind ours (another process reading the
     * file in the same second) must not see a certificate from the future. */
    return rc == 0 ? 0 : mr_wraperr(err, rc, "certificate %s", name);
}

int up_tls_make(const struct up_topology *t, const char *rundir, char *err)
{
    char *dir = mr_asprintf("%s/tls", rundir), name[UP_SITE_NAME_MAX + UP_REGION_NAME_MAX + 8];
    int rc;

    if (!t->tls) {
        mr_free(dir);
        return 0;
    }
    /* 0700 even if it exists: the keys must be the owner's alone. */
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        rc = mr_seterr(err, MR_EIO, "mkdir %s: %s", dir, strerror(errno));
        goto out;
    }
    if (chmod(dir, 0700) == -1) {
        rc = mr_seterr(err, MR_EIO, "chmod %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = tls_cert_make_ca(dir, t->cluster, UP_TLS_DAYS, err);
    if (rc != 0) {
        rc = mr_wraperr(err, rc, "the run's CA in %s", dir);
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < t->n_regions; i++) {
        static const enum up_proc_kind kinds[] = {UP_ETCD, UP_NODE, UP_SHOP};
        for (size_t k = 0; rc == 0 && k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            up_tls_name(t, kinds[k], i, name, sizeof(name));
            rc = issue(dir, name, err);
        }
    }
    for (size_t s = 0; rc == 0 && s < t->n_sites; s++) {
        up_tls_name(t, UP_EDGE, s, name, sizeof(name));
        rc = issue(dir, name, err);
    }
    if (rc == 0)
        rc = issue(dir, UP_TLS_ADMIN, err);
out:
    mr_free(dir);
    return rc;
}
