/* client.c -- `meridian down` and `meridian region`: the supervisor's clients.
 *
 * They find the supervisor through RUNDIR/topology.json (control.url and
 * control.pid) and talk to it with http_fetch.  When the supervisor is gone
 * (killed with -9, machine rebooted), down falls back to signalling the pids
 * that topology.json lists, after checking in /proc that each still belongs to
 * this run (its command line names RUNDIR), so that a recycled pid is never hit.
 */
#include "up.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../http/http.h"

#define CONTROL_TIMEOUT_MS 5000
#define DOWN_TERM_GRACE_MS 10000
#define POLL_MS 20

int up_pid_alive(int pid)
{
    char path[64], buf[512];
    const char *p;
    ssize_t n;
    int fd;

    if (pid <= 0 || (kill(pid, 0) == -1 && errno != EPERM))
        return 0;
    /* A zombie still answers kill(pid, 0); its state in /proc says Z. */
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return errno != ENOENT;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (p == NULL || p[1] != ' ')
        return 1;
    return p[2] != 'Z' && p[2] != 'X';
}

/* 1 when one argument of <pid>'s command line contains <needle>. */
static int cmdline_has(int pid, const char *needle)
{
    char path[64];
    struct mr_buf b;
    char chunk[4096];
    ssize_t n;
    int fd, found = 0;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    mr_buf_init(&b);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len < 1024 * 1024)
        mr_buf_append(&b, chunk, (size_t)n);
    close(fd);
    for (size_t off = 0; off < b.len; off += strlen(b.data + off) + 1)
        if (strstr(b.data + off, needle) != NULL)
            found = 1;
    mr_buf_close(&b);
    return found;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int read_state(const char *rundir, json_t **out, char *err)
{
    char *path = mr_asprintf("%s/topology.json", rundir);
    json_error_t jerr;
    json_t *root;

    if (access(path, F_OK) != 0) {
        mr_seterr(err, MR_ENOTFOUND, "%s: no topology.json (not a run directory of meridian up?)",
                  rundir);
        mr_free(path);
        return MR_ENOTFOUND;
    }
    root = json_load_file(path, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        mr_seterr(err, MR_ECORRUPT, "%s:%d: %s", path, jerr.line, root ? "not an object" : jerr.text);
        json_decref(root);
        mr_free(path);
        return MR_ECORRUPT;
    }
    mr_free(path);
    *out = root;
    return 0;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static int control_pid(json_t *state)
{
    return (int)json_integer_value(json_object_get(json_object_get(state, "control"), "pid"));
}

/* The bearer token header for the supervisor's and the wan's control APIs:
 * $MERIDIAN_TOKEN, else topology.json's "auth": {"token"} ("" when none). */
static void auth_headers(json_t *state, char *out, size_t size)
{
    const char *env = getenv("MERIDIAN_TOKEN");
    const char *tok = json_string_value(json_object_get(json_object_get(state, "auth"), "token"));

    mr_auth_header(env && *env ? env : tok, out, size);
}

/* One control request.  *body is the parsed answer (NULL if not JSON). */
static int control_call(json_t *state, const char *rundir, const char *method, const char *path,
                        uint64_t timeout_ms, int *status, json_t **body, char *err)
{
    const char *url = json_string_value(json_object_get(json_object_get(state, "control"), "url"));
    struct http_result res;
    char *full, hdr[MR_AUTH_HEADER_MAX];
    int rc, pid = control_pid(state);

    *body = NULL;
    if (url == NULL)
        return mr_seterr(err, MR_ECORRUPT, "%s/topology.json: no control.url", rundir);
    full = mr_asprintf("%s%s", url, path);
    auth_headers(state, hdr, sizeof(hdr));
    rc = http_fetch(method, full, hdr[0] ? hdr : NULL, "", 0, timeout_ms, &res, err);
    mr_free(full);
    if (rc != 0) {
        if (!up_pid_alive(pid))
            return mr_seterr(err, MR_ECONN, "the supervisor (pid %d) is not running; see "
                             "%s/logs/up.log", pid, rundir);
        return mr_wraperr(err, rc == MR_ETIMEDOUT ? rc : MR_ECONN, "supervisor pid %d at %s", pid,
                          url);
    }
    *status = res.status;
    *body = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    http_result_close(&res);
    return 0;
}

static void describe_proc(struct mr_buf *out, const char *region, const char *kind, json_t *p)
{
    json_t *exit = json_object_get(p, "last_exit");
    json_int_t pid = json_integer_value(json_object_get(p, "pid"));

    mr_buf_printf(out, "%s %s: %s", region, kind, jstr(p, "state"));
    if (pid > 0)
        mr_buf_printf(out, ", pid %lld%s", (long long)pid,
                      json_is_true(json_object_get(p, "ready")) ? ", ready" : ", not ready");
    if (pid <= 0 && json_is_object(exit)) {
        mr_buf_printf(out, " (pid %lld gone: ",
                      (long long)json_integer_value(json_object_get(exit, "pid")));
        if (json_is_string(json_object_get(exit, "signal")))
            mr_buf_printf(out, "%s", jstr(exit, "signal"));
        else
            mr_buf_printf(out, "exit status %lld",
                          (long long)json_integer_value(json_object_get(exit, "status")));
        mr_buf_printf(out, " at %s)", jstr(exit, "at"));
    }
    mr_buf_putc(out, '\n');
}

/* partition / heal: straight to the wan's control API. */
static int wan_region_action(json_t *state, const char *rundir, const char *region,
                             const char *action, struct mr_buf *out, char *err)
{
    const char *url = json_string_value(json_object_get(json_object_get(state, "wan"),
                                                        "control_url"));
    struct http_result res;
    json_t *body;
    char *full, hdr[MR_AUTH_HEADER_MAX];
    int rc;

    if (url == NULL)
        return mr_seterr(err, MR_EINVAL, "%s: %s has no wan (a topology of one region)", action,
                         rundir);
    full = mr_asprintf("%s/regions/%s/%s", url, region, action[0] == 'p' ? "cut" : "heal");
    auth_headers(state, hdr, sizeof(hdr));
    rc = http_fetch("POST", full, hdr[0] ? hdr : NULL, "{}", 2, CONTROL_TIMEOUT_MS, &res, err);
    mr_free(full);
    if (rc != 0)
        return mr_wraperr(err, MR_ECONN, "%s %s: the wan at %s", action, region, url);
    body = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    if (res.status != 200) {
        const char *msg = json_string_value(json_object_get(json_object_get(body, "error"),
                                                            "message"));
        rc = mr_seterr(err, MR_EUNAVAIL, "%s %s: the wan answered HTTP %d: %s", action, region,
                       res.status, msg ? msg : "no message");
    } else {
        mr_buf_printf(out, "%s %s: %lld links %s\n", action, region,
                      (long long)json_integer_value(json_object_get(body, "links_changed")),
                      action[0] == 'p' ? "cut (blackhole)" : "restored");
    }
    json_decref(body);
    http_result_close(&res);
    return rc;
}

int up_region_action(const char *rundir, const char *region, const char *action,
                     const char *process, struct mr_buf *out, char *err)
{
    json_t *state = NULL, *body = NULL, *regions, *r, *procs, *v;
    const char *key;
    char *path;
    uint64_t timeout = CONTROL_TIMEOUT_MS + 10000;
    int rc, status = 0, found = 0;
    size_t i;

    if (strcmp(action, "kill") && strcmp(action, "freeze") && strcmp(action, "thaw") &&
        strcmp(action, "restart") && strcmp(action, "partition") && strcmp(action, "heal"))
        return mr_seterr(err, MR_EINVAL, "action: expected kill, freeze, thaw, restart, partition "
                         "or heal, found '%s'", action);
    if (process != NULL && !up_process_name_valid(process))
        return mr_seterr(err, MR_EINVAL, "--process: expected etcd, node, shop or shop.N, found '%s'",
                         process);
    rc = read_state(rundir, &state, err);
    if (rc != 0)
        return rc;
    regions = json_object_get(state, "regions");
    json_array_foreach(regions, i, r)
        found |= strcmp(jstr(r, "name"), region) == 0;
    if (!found) {
        struct mr_buf names;
        mr_buf_init(&names);
        json_array_foreach(regions, i, r)
            mr_buf_printf(&names, "%s%s", i ? ", " : "", jstr(r, "name"));
        rc = mr_seterr(err, MR_ENOTFOUND, "no region '%s' in %s (regions: %s)", region, rundir,
                       names.data ? names.data : "none");
        mr_buf_close(&names);
        goto out;
    }
    if (strcmp(action, "partition") == 0 || strcmp(action, "heal") == 0) {
        rc = wan_region_action(state, rundir, region, action, out, err);
        goto out;
    }
    if (strcmp(action, "restart") == 0)
        timeout += (uint64_t)json_integer_value(json_object_get(state, "ready_timeout_ms"));
    path = mr_asprintf("/regions/%s/%s%s%s", region, action, process ? "?process=" : "",
                       process ? process : "");
    rc = control_call(state, rundir, "POST", path, timeout, &status, &body, err);
    mr_free(path);
    if (rc != 0)
        goto out;
    if (status != 200) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(body, "error"), "message"));
        rc = status == 404 ? MR_ENOTFOUND : status == 400 ? MR_EINVAL
             : status == 504 ? MR_ETIMEDOUT : MR_EUNAVAIL;
        mr_seterr(err, rc, "%s %s: HTTP %d: %s", action, region, status, msg ? msg : "no message");
        goto out;
    }
    procs = json_object_get(body, "processes");
    json_object_foreach(procs, key, v)
        describe_proc(out, region, key, v);
out:
    json_decref(body);
    json_decref(state);
    return rc;
}

static void format_status(json_t *state, int live, struct mr_buf *out)
{
    json_t *regions = json_object_get(state, "regions"), *r;
    size_t i;
    int pid = control_pid(state);

    mr_buf_printf(out, "topology %s (%s): %s; supervisor pid %d %s\n", jstr(state, "name"),
                  jstr(state, "rundir"), jstr(state, "state"), pid,
                  live ? "(running)" : up_pid_alive(pid) ? "(not answering)" : "(gone)");
    mr_buf_printf(out, "%-16s %-5s %-8s %-20s %-6s %-24s %s\n", "REGION", "PROC", "PID", "STATE",
                  "READY", "URL", "LAST EXIT");
    json_array_foreach(regions, i, r) {
        static const char *const kinds[] = {"etcd", "node", "shop"};
        for (int k = 0; k < 3; k++) {
            json_t *p = json_object_get(r, kinds[k]), *e = json_object_get(p, "last_exit");
            json_int_t ppid = json_integer_value(json_object_get(p, "pid"));
            char pidtxt[24] = "-";
            struct mr_buf ex;
            if (ppid > 0)
                snprintf(pidtxt, sizeof(pidtxt), "%lld", (long long)ppid);
            mr_buf_init(&ex);
            if (json_is_object(e)) {
                if (json_is_string(json_object_get(e, "signal")))
                    mr_buf_printf(&ex, "%s", jstr(e, "signal"));
                else
                    mr_buf_printf(&ex, "status %lld",
                                  (long long)json_integer_value(json_object_get(e, "status")));
                mr_buf_printf(&ex, " at %s%s", jstr(e, "at"),
                              json_is_true(json_object_get(e, "expected")) ? "" : " (unexpected)");
            }
            mr_buf_printf(out, "%-16s %-5s %-8s %-20s %-6s %-24s %s\n", jstr(r, "name"), kinds[k],
                          pidtxt, jstr(p, "state"),
                          json_is_true(json_object_get(p, "ready")) ? "yes" : "no",
                          jstr(p, k == 0 ? "client_url" : "url"), ex.data ? ex.data : "-");
            mr_buf_close(&ex);
        }
    }
    /* each site's edge, one line per site */
    json_array_foreach(json_object_get(state, "sites"), i, r) {
        json_t *p = json_object_get(r, "edge");
        json_int_t ppid = json_integer_value(json_object_get(p, "pid"));
        char pidtxt[24] = "-";
        if (!json_is_object(p))
            continue;
        if (ppid > 0)
            snprintf(pidtxt, sizeof(pidtxt), "%lld", (long long)ppid);
        mr_buf_printf(out, "%-16s %-5s %-8s %-20s %-6s %-24s %s\n", jstr(r, "name"), "edge",
                      pidtxt, jstr(p, "state"),
                      json_is_true(json_object_get(p, "ready")) ? "yes" : "no", jstr(p, "url"),
                      json_is_object(json_object_get(p, "last_exit")) ? "(see topology.json)"
                                                                       : "-");
    }
}

int up_status(const char *rundir, struct mr_buf *out, char *err)
{
    json_t *state = NULL, *body = NULL;
    char ignored[MR_ERRMSG_LEN];
    int rc, status = 0, live = 0;

    rc = read_state(rundir, &state, err);
    if (rc != 0)
        return rc;
    if (up_pid_alive(control_pid(state)) &&
        control_call(state, rundir, "GET", "/status", 3000, &status, &body, ignored) == 0 &&
        status == 200 && json_is_object(body)) {
        json_decref(state);
        state = body;
        body = NULL;
        live = 1;
    }
    format_status(state, live, out);
    json_decref(body);
    json_decref(state);
    return 0;
}

int up_format_endpoints(const char *state_json, struct mr_buf *out, char *err)
{
    json_error_t jerr;
    json_t *state = json_loads(state_json, 0, &jerr), *r, *control;
    size_t i;

    if (state == NULL)
        return mr_seterr(err, MR_EPROTO, "topology state: %s", jerr.text);
    control = json_object_get(state, "control");
    mr_buf_printf(out, "%-16s %-24s %-8s %-24s %-8s %-24s %-8s\n", "REGION", "NODE", "PID", "ETCD",
                  "PID", "SHOP", "PID");
    json_array_foreach(json_object_get(state, "regions"), i, r) {
        json_t *n = json_object_get(r, "node"), *e = json_object_get(r, "etcd");
        json_t *sh = json_object_get(r, "shop");
        mr_buf_printf(out, "%-16s %-24s %-8lld %-24s %-8lld %-24s %-8lld\n", jstr(r, "name"),
                      jstr(n, "url"), (long long)json_integer_value(json_object_get(n, "pid")),
                      jstr(e, "client_url"), (long long)json_integer_value(json_object_get(e, "pid")),
                      jstr(sh, "url"), (long long)json_integer_value(json_object_get(sh, "pid")));
    }
    json_array_foreach(json_object_get(state, "sites"), i, r) {
        json_t *e = json_object_get(r, "edge");
        if (i == 0)
            mr_buf_printf(out, "%-16s %-24s %-8s\n", "SITE", "EDGE", "PID");
        mr_buf_printf(out, "%-16s %-24s %-8lld\n", jstr(r, "name"), jstr(e, "url"),
                      (long long)json_integer_value(json_object_get(e, "pid")));
    }
    r = json_array_get(json_object_get(state, "regions"), 0);
    if (r != NULL) {
        const char *token = json_string_value(json_object_get(json_object_get(state, "auth"), "token"));
        mr_buf_printf(out, "dashboard %s/dashboard%s%s\n", jstr(json_object_get(r, "node"), "url"),
                      token ? "?token=" : "", token ? token : "");
    }
    mr_buf_printf(out, "control %s (supervisor pid %lld)\nrundir  %s (state in topology.json, "
                  "logs in logs/)\nstop with: meridian down %s\n",
                  jstr(control, "url"), (long long)json_integer_value(json_object_get(control, "pid")),
                  jstr(state, "rundir"), jstr(state, "rundir"));
    json_decref(state);
    return 0;
}

/* Pids of topology.json's processes that are alive and still belong to
 * <rundir>.  Returns how many were stored in <pids>. */
static size_t run_pids(json_t *state, const char *rundir, int *pids, size_t max)
{
    json_t *r;
    size_t i, n = 0;

    json_array_foreach(json_object_get(state, "regions"), i, r) {
        static const char *const kinds[] = {"etcd", "node"};
        json_t *shop;
        size_t j;
        for (int k = 0; k < 2 && n < max; k++) {
            int pid = (int)json_integer_value(json_object_get(json_object_get(r, kinds[k]), "pid"));
            if (pid > 0 && up_pid_alive(pid) && cmdline_has(pid, rundir))
                pids[n++] = pid;
        }
        json_array_foreach(json_object_get(r, "shops"), j, shop) {
            int pid = (int)json_integer_value(json_object_get(shop, "pid"));
            if (n < max && pid > 0 && up_pid_alive(pid) && cmdline_has(pid, rundir))
                pids[n++] = pid;
        }
    }
    /* Each site's edge. */
    json_array_foreach(json_object_get(state, "sites"), i, r) {
        int pid = (int)json_integer_value(json_object_get(json_object_get(r, "edge"), "pid"));
        if (n < max && pid > 0 && up_pid_alive(pid) && cmdline_has(pid, rundir))
            pids[n++] = pid;
    }
    /* The wan, last (it carries the etcd members' traffic). */
    {
        int pid = (int)json_integer_value(json_object_get(json_object_get(state, "wan"), "pid"));
        if (n < max && pid > 0 && up_pid_alive(pid) && cmdline_has(pid, rundir))
            pids[n++] = pid;
    }
    return n;
}

static int wait_gone(const int *pids, size_t n, int64_t timeout_ms)
{
    int64_t deadline = mr_mono_us() / 1000 + timeout_ms;

    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < n; i++)
            alive += up_pid_alive(pids[i]);
        if (alive == 0)
            return 1;
        if (mr_mono_us() / 1000 >= deadline)
            return 0;
        sleep_ms(POLL_MS);
    }
}

int up_down(const char *rundir, int64_t timeout_ms, char *err)
{
    json_t *state = NULL, *body = NULL;
    int pids[2 * UP_MAX_REGIONS + 1];
    char why[MR_ERRMSG_LEN] = "";
    size_t n;
    int rc, status = 0, sup;

    rc = read_state(rundir, &state, err);
    if (rc != 0)
        return rc;
    sup = control_pid(state);
    /* The supervisor's own command line may hold a relative --dir: check for
     * the subcommand instead of the path. */
    if (sup > 0 && up_pid_alive(sup) && cmdline_has(sup, "up")) {
        if (control_call(state, rundir, "POST", "/shutdown", CONTROL_TIMEOUT_MS, &status, &body,
                         why) != 0 || status != 202) {
            mr_log(MR_LOG_WARN, "up", "POST /shutdown failed (%s): SIGTERM to supervisor pid %d",
                   why[0] ? why : "unexpected answer", sup);
            kill(sup, SIGTERM);
        }
        json_decref(body);
        if (!wait_gone(&sup, 1, timeout_ms)) {
            mr_log(MR_LOG_WARN, "up", "supervisor pid %d still alive after %lld ms: SIGKILL", sup,
                   (long long)timeout_ms);
            kill(sup, SIGKILL);
            (void)wait_gone(&sup, 1, 2000);
        }
        json_decref(state);
        state = NULL;
        rc = read_state(rundir, &state, err); /* the supervisor's last word */
        if (rc != 0)
            return rc;
    }
    /* Whatever is left belongs to a supervisor that died without stopping
     * its children. */
    n = run_pids(state, rundir, pids, sizeof(pids) / sizeof(pids[0]));
    if (n > 0) {
        mr_log(MR_LOG_WARN, "up", "%zu processes of %s outlived their supervisor: SIGTERM", n,
               rundir);
        for (size_t i = 0; i < n; i++) {
            kill(pids[i], SIGCONT);
            kill(pids[i], SIGTERM);
        }
        if (!wait_gone(pids, n, DOWN_TERM_GRACE_MS)) {
            for (size_t i = 0; i < n; i++)
                if (up_pid_alive(pids[i]))
                    kill(pids[i], SIGKILL);
            (void)wait_gone(pids, n, 2000);
        }
    }
    n = run_pids(state, rundir, pids, sizeof(pids) / sizeof(pids[0]));
    json_decref(state);
    if (n > 0 || up_pid_alive(sup))
        return mr_seterr(err, MR_ETIMEDOUT, "%zu processes of %s are still alive (first pid %d)",
                         n + (size_t)up_pid_alive(sup), rundir, n ? pids[0] : sup);
    return 0;
}

/* ---- TLS for the clients of a topology ---- */

int up_client_tls(const char *rundir, struct tls_ctx **out, char *err)
{
    const char *ca = NULL, *crt = NULL, *key = NULL;
    struct tls_opts o;
    json_t *state = NULL, *auth;
    int rc;

    *out = NULL;
    if (rundir != NULL) {
        char *path = mr_asprintf("%s/topology.json", rundir);
        state = json_load_file(path, 0, NULL);
        mr_free(path);
        auth = json_object_get(state, "auth");
        ca = json_string_value(json_object_get(auth, "ca_file"));
        crt = json_string_value(json_object_get(auth, "cert_file"));
        key = json_string_value(json_object_get(auth, "key_file"));
    }
    if (ca == NULL) {
        /* Real hosts: the files of `meridian cert issue` (docs/operations.md). */
        ca = getenv("MERIDIAN_TLS_CA");
        crt = getenv("MERIDIAN_TLS_CERT");
        key = getenv("MERIDIAN_TLS_KEY");
        if (ca != NULL && *ca == '\0')
            ca = NULL;
    }
    if (ca == NULL) {
        json_decref(state);
        return 0;
    }
    if ((crt == NULL || *crt == '\0') != (key == NULL || *key == '\0')) {
        json_decref(state);
        return mr_seterr(err, MR_ECONFIG, "client certificate: expected both a certificate and "
                         "its key (topology.json \"auth\" or $MERIDIAN_TLS_CERT and "
                         "$MERIDIAN_TLS_KEY), found only the %s", crt && *crt ? "certificate" : "key");
    }
    memset(&o, 0, sizeof(o));
    o.ca_file = ca;
    o.cert_file = crt && *crt ? crt : NULL;
    o.key_file = key && *key ? key : NULL;
    rc = tls_ctx_new(&o, 0, out, err);
    json_decref(state);
    if (rc != 0) {
        *out = NULL;
        return mr_wraperr(err, MR_ECONFIG, "client certificate");
    }
    http_fetch_set_tls(*out);
    return 0;
}

void up_client_tls_free(struct tls_ctx *t)
{
    if (t == NULL)
        return;
    http_fetch_set_tls(NULL);
    tls_ctx_free(t);
}
