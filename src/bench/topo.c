/* topo.c -- start, read and stop a local topology (see topo.h). */
#include "topo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../http/http.h"

int topo_remove_dir(const char *dir)
{
    char *rm[] = {"/bin/rm", "-rf", (char *)dir, NULL};

    return topo_run(rm, 0) == 0 ? 0 : -1;
}

int topo_run(char *const argv[], int verbose)
{
    int status;
    pid_t pid;

    fflush(stdout); /* or the child's freopen flushes our buffer a second time */
    fflush(stderr);
    pid = fork();

    if (pid == -1)
        return -1;
    if (pid == 0) {
        if (!verbose && freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Split <url> ("http://host:port...") into <host> (of size <n>) and
 * <port>; 0, or -1 when it is not a usable URL. */
static int split_url(const char *url, char *host, size_t n, int *port)
{
    char *h = NULL, *p = NULL, err[MR_ERRMSG_LEN];
    int rc = url ? http_parse_url(url, &h, port, &p, err) : -1;

    if (rc == 0)
        snprintf(host, n, "%s", h);
    mr_free(h);
    mr_free(p);
    return rc == 0 ? 0 : -1;
}

/* The sites of topology.json whose "node_urls" name every region (older
 * files have none: the topology then has no usable site); their shop
 * routes and edge when listed. */
static void attach_sites(struct topo *t, json_t *sites)
{
    for (size_t i = 0; i < json_array_size(sites) && t->n_sites < TOPO_MAX_SITES; i++) {
        json_t *js = json_array_get(sites, i);
        json_t *urls = json_object_get(js, "node_urls"), *lat = json_object_get(js, "latency_ms");
        struct topo_site *s = &t->sites[t->n_sites];
        const char *name = json_string_value(json_object_get(js, "name"));
        size_t r;

        if (name == NULL)
            continue;
        memset(s, 0, sizeof(*s));
        snprintf(s->name, sizeof(s->name), "%s", name);
        for (r = 0; r < t->n_regions; r++) {
            const char *url = json_string_value(json_object_get(urls, t->regions[r].name));
            char *host = NULL, *p = NULL, err[MR_ERRMSG_LEN];
            if (url == NULL || http_parse_url(url, &host, &s->port[r], &p, err) != 0) {
                mr_free(host);
                mr_free(p);
                break;
            }
            snprintf(s->host[r], sizeof(s->host[r]), "%s", host);
            s->latency_ms[r] = json_number_value(json_object_get(lat, t->regions[r].name));
            mr_free(host);
            mr_free(p);
        }
        if (r < t->n_regions)
            continue;
        for (r = 0; r < t->n_regions; r++) {
            json_t *shops = json_object_get(js, "shop_urls");
            if (split_url(json_string_value(json_object_get(shops, t->regions[r].name)),
                          s->shop_host[r], sizeof(s->shop_host[r]), &s->shop_port[r]) != 0)
                s->shop_port[r] = 0;
        }
        {
            const char *edge = json_string_value(json_object_get(json_object_get(js, "edge"), "url"));
            if (split_url(edge, s->edge_host, sizeof(s->edge_host), &s->edge_port) == 0)
                snprintf(s->edge_url, sizeof(s->edge_url), "%s", edge);
            else
                s->edge_port = 0;
        }
        t->n_sites++;
    }
}

/* The admin certificate of a TLS topology: a client context for the
 * load generator's connections and for http_fetch. */
static int attach_tls(struct topo *t, json_t *auth, const char *path, char *err)
{
    struct tls_opts o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.ca_file = json_string_value(json_object_get(auth, "ca_file"));
    o.cert_file = json_string_value(json_object_get(auth, "cert_file"));
    o.key_file = json_string_value(json_object_get(auth, "key_file"));
    if (o.ca_file == NULL)
        return 0;
    rc = tls_ctx_new(&o, 0, &t->tls, err);
    if (rc != 0)
        return mr_wraperr(err, rc, "%s: the admin certificate (\"auth\")", path);
    http_fetch_set_tls(t->tls);
    return 0;
}

static void detach_tls(struct topo *t)
{
    if (t->tls == NULL)
        return;
    http_fetch_set_tls(NULL);
    tls_ctx_free(t->tls);
    t->tls = NULL;
}

int topo_attach(struct topo *t, const char *rundir, char *err)
{
    char *path = mr_asprintf("%s/topology.json", rundir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr), *regions;
    int rc = 0;

    memset(t, 0, sizeof(*t));
    if (doc == NULL) {
        rc = mr_seterr(err, MR_EIO, "%s: %s", path, jerr.text);
        goto out;
    }
    regions = json_object_get(doc, "regions");
    for (size_t i = 0; i < json_array_size(regions) && i < TOPO_MAX_REGIONS; i++) {
        json_t *r = json_array_get(regions, i);
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *url = json_string_value(json_object_get(json_object_get(r, "node"), "url"));
        struct topo_region *tr = &t->regions[t->n_regions];
        char *host = NULL, *p = NULL;

        if (name == NULL || url == NULL || http_parse_url(url, &host, &tr->port, &p, err) != 0) {
            rc = mr_seterr(err, MR_EIO, "%s: region %zu has no usable node url", path, i);
            mr_free(host);
            mr_free(p);
            break;
        }
        snprintf(tr->name, sizeof(tr->name), "%s", name);
        snprintf(tr->host, sizeof(tr->host), "%s", host);
        snprintf(tr->url, sizeof(tr->url), "%s", url);
        mr_auth_header(json_string_value(json_object_get(json_object_get(doc, "auth"), "token")),
                       tr->auth, sizeof(tr->auth));
        memcpy(t->auth, tr->auth, sizeof(t->auth));
        snprintf(t->token, sizeof(t->token), "%s",
                 json_string_value(json_object_get(json_object_get(doc, "auth"), "token")) ?: "");
        {
            const char *shop = json_string_value(json_object_get(json_object_get(r, "shop"), "url"));
            snprintf(tr->shop_url, sizeof(tr->shop_url), "%s", shop ? shop : "");
        }
        mr_free(host);
        mr_free(p);
        t->n_regions++;
    }
    if (rc == 0 && t->n_regions == 0)
        rc = mr_seterr(err, MR_EIO, "%s: no regions", path);
    if (rc == 0)
        attach_sites(t, json_object_get(doc, "sites"));
    if (rc == 0)
        rc = attach_tls(t, json_object_get(doc, "auth"), path, err);
    if (rc == 0)
        t->rundir = mr_strdup(rundir);
    json_decref(doc);
out:
    mr_free(path);
    return rc;
}

int topo_up(struct topo *t, const char *exe, const char *topology, const char *dir,
            const char *latency_scale, int verbose, char *err)
{
    char *argv[10];
    int argc = 0, rc;

    memset(t, 0, sizeof(*t));
    if (dir) {
        t->rundir = mr_strdup(dir);
    } else {
        char tmpl[] = "/tmp/meridian-run-XXXXXX";
        if (mkdtemp(tmpl) == NULL)
            return mr_seterr(err, MR_EIO, "mkdtemp: %s", strerror(errno));
        t->rundir = mr_strdup(tmpl);
        t->remove_dir = 1;
    }
    argv[argc++] = (char *)exe;
    argv[argc++] = "up";
    if (topology)
        argv[argc++] = (char *)topology;
    argv[argc++] = "--dir";
    argv[argc++] = t->rundir;
    argv[argc++] = "--detach";
    if (latency_scale) {
        argv[argc++] = "--latency-scale";
        argv[argc++] = (char *)latency_scale;
    }
    argv[argc] = NULL;
    rc = topo_run(argv, verbose);
    if (rc != 0) {
        mr_seterr(err, MR_EUNAVAIL, "`meridian up --dir %s --detach` failed (exit %d); logs in %s/logs",
                  t->rundir, rc, t->rundir);
        t->remove_dir = 0; /* keep the logs for the user */
        topo_down(t, exe);
        return MR_EUNAVAIL;
    }
    {
        char *rundir = t->rundir; /* topo_attach starts from an empty <t> */
        int remove_dir = t->remove_dir;

        rc = topo_attach(t, rundir, err);
        if (rc != 0) {
            t->rundir = rundir;
            t->remove_dir = remove_dir;
            topo_down(t, exe);
            return rc;
        }
        mr_free(rundir);
        t->remove_dir = remove_dir;
    }
    return 0;
}

void topo_down(struct topo *t, const char *exe)
{
    char *argv[] = {(char *)exe, "down", t->rundir, NULL};

    if (t->rundir == NULL)
        return;
    if (topo_run(argv, 0) != 0)
        fprintf(stderr, "meridian: `meridian down %s` failed; processes may be left\n", t->rundir);
    if (t->remove_dir)
        (void)topo_remove_dir(t->rundir);
    mr_free(t->rundir);
    t->rundir = NULL;
    detach_tls(t);
}

static int fetch_json(const char *url, const char *headers, json_t **answer, char *err);

int topo_sql(const struct topo_region *r, const char *body, int *status, json_t **answer, char *err)
{
    struct http_result res;
    char url[160], headers[MR_AUTH_HEADER_MAX + 64];
    int rc;

    snprintf(url, sizeof(url), "%s/v1/sql", r->url);
    snprintf(headers, sizeof(headers), "%sContent-Type: application/json\r\n", r->auth);
    rc = http_fetch("POST", url, headers, body, strlen(body), 30000, &res, err);
    if (rc != 0)
        return rc;
    *status = res.status;
    *answer = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    http_result_close(&res);
    if (*answer == NULL)
        return mr_seterr(err, MR_EPROTO, "%s: answer is not JSON", url);
    return 0;
}

int topo_get_json(const struct topo_region *r, const char *path, json_t **answer, char *err)
{
    char url[256];

    snprintf(url, sizeof(url), "%s%s", r->url, path);
    return fetch_json(url, r->auth[0] ? r->auth : NULL, answer, err);
}

int topo_fetch_json(const char *url, json_t **answer, char *err)
{
    return fetch_json(url, NULL, answer, err);
}

static int fetch_json(const char *url, const char *headers, json_t **answer, char *err)
{
    struct http_result res;
    int rc;

    rc = http_fetch("GET", url, headers, NULL, 0, 10000, &res, err);
    if (rc != 0)
        return rc;
    *answer = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    http_result_close(&res);
    if (*answer == NULL)
        return mr_seterr(err, MR_EPROTO, "%s: answer is not JSON", url);
    return 0;
}

void topo_detach(struct topo *t)
{
    mr_free(t->rundir);
    t->rundir = NULL;
    detach_tls(t);
}
