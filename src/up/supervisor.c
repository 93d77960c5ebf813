/* supervisor.c -- the `meridian up` process: one libuv loop that runs every
 * child of a local topology.
 *
 * What it does, all on one loop:
 *   - spawns each region's etcd, then its node once that etcd answers
 *     (uv_spawn; stdout+stderr appended to RUNDIR/logs/<region>-<kind>.log;
 *     each child in its own session so that a Ctrl-C on the terminal reaches
 *     only the supervisor, which then stops the children in order);
 *   - probes readiness: etcd answers POST /v3/maintenance/status (its client
 *     listener opens only once the member has joined a cluster with a
 *     leader), the node answers GET /readyz with 200;
 *   - records every exit; one it did not cause is logged with its time and
 *     exit status or signal and shown in topology.json, and is NOT restarted;
 *   - serves the control API on 127.0.0.1:<kernel port> (docs/topology.md):
 *     GET /status, POST /regions/NAME/ACTION?process=, POST /shutdown;
 *   - rewrites RUNDIR/topology.json (tmp + rename) on every change;
 *   - stops: SIGCONT to frozen children, SIGTERM to every node at once and
 *     to the etcd members one after the other (see stop_next_etcd), SIGKILL
 *     to whatever is still alive STOP_GRACE_MS after the start of the stop.
 *
 * A single 50 ms tick drives everything that waits (spawns whose dependency
 * is not ready, probes, deadlines, pending control requests), so callbacks
 * only record what happened; exits also run the tick's work at once so that
 * a kill request is answered as soon as the process is reaped.
 */
#include "up.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../http/http.h"

#define TICK_MS 50
#define PROBE_EVERY_MS 100
#define PROBE_TIMEOUT_MS 1000
#define STOP_GRACE_MS 10000
#define KILL_WAIT_MS 10000
#define LOG_TAIL_LINES 8

enum pstate { PS_IDLE, PS_RUNNING, PS_FROZEN, PS_KILLED, PS_EXITED, PS_STOPPED };
static const char *const pstate_names[] = {"not-started", "running", "frozen",
                                           "killed", "exited-unexpectedly", "stopped"};

struct sup;

struct proc {
    struct sup *s;
    size_t region;
    enum up_proc_kind kind;
    size_t shop;           /* UP_SHOP: which of the region's shops (0..n_shops-1) */
    char name[16];         /* "etcd", "node", "shop", "shop.1", ..., "wan", "edge" */
    uv_process_t *handle;  /* NULL when no process of ours is alive */
    int pid;
    enum pstate state;
    int ready;
    int start_pending;     /* spawn as soon as the dependency allows */
    int kill_requested;    /* the next exit is one we asked for */
    int term_sent;         /* SIGTERM sent by the shutdown */
    unsigned gen;          /* bumped at every spawn and exit: stale probes are ignored */
    struct http_call *probe;
    unsigned probe_gen;
    int64_t next_probe_ms;
    char last_error[128];  /* why the last probe (or the spawn) failed */
    int n_starts;
    int64_t started_at;    /* wall clock, ms */
    int64_t exit_at;       /* wall clock, ms; 0: never exited */
    int exit_pid;
    int64_t exit_status;
    int exit_signal;
    int exit_expected;
    char *log_path;
};

enum phase { PH_STARTING, PH_READY, PH_STOPPING, PH_DONE };
static const char *const phase_names[] = {"starting", "ready", "stopping", "stopped"};

enum waiter_kind { W_KILL, W_RESTART };

/* A region's process slots: its etcd member, its node, then its shops
 * (slot UP_SHOP + n for shop n).  Masks of slots are 1 << slot. */
#define N_SLOTS (UP_SHOP + UP_MAX_SHOPS)

/* A control request answered later: when its processes are gone (kill) or
 * ready again (restart), or at its deadline. */
struct waiter {
    struct waiter *next;
    struct http_exchange *ex;
    enum waiter_kind kind;
    size_t region;
    unsigned mask;         /* 1 << enum up_proc_kind */
    int64_t deadline_ms;
};

struct sup {
    uv_loop_t loop;
    const struct up_topology *t;
    char *rundir;
    char *exe;
    char *etcd_bin;
    int64_t ready_timeout_ms;
    int ready_fd;
    int detached;          /* started with a ready pipe: logging to logs/up.log */
    struct proc procs[UP_MAX_REGIONS][N_SLOTS];
    /* The wan (topologies of 2+ regions): started first, stopped last, told
     * every child's pid (PUT /pids) so that it can tell etcd peers apart. */
    int has_wan;
    struct proc wan;
    /* One edge per client site (edges_* below); proc.region is the site. */
    struct proc edges[UP_MAX_SITES];
    /* `meridian shop seed`, run once when every node is first ready; the
     * shops start after it succeeded. */
    uv_process_t *seed;
    int seed_started, seeded;
    struct http_call *pids_call;
    int pids_dirty;            /* the pid map changed while a PUT was out */
    uv_timer_t tick;
    uv_signal_t sigs[3];
    int n_sigs;
    struct http_server *server;
    struct http_client *client;     /* plain: the wan, the edges (unless edge_tls) */
    /* With [topology] tls: the probes of etcd, nodes and shops (and edges
     * with edge_tls) show the admin certificate; NULL otherwise. */
    struct http_client *tls_client;
    struct tls_ctx *tls;
    char control_url[64];
    enum phase phase;
    int start_failed;
    int fail_code;
    struct mr_buf report;  /* the failure report of a failed start */
    char err[MR_ERRMSG_LEN];
    int64_t start_ms;
    int64_t start_deadline_ms;
    int64_t stop_deadline_ms;
    int sent_kill;
    struct waiter *waiters;
    struct mr_auth auth;       /* with [topology] auth: the admin token's hash */
    char auth_header[MR_AUTH_HEADER_MAX];  /* sent to the wan (PUT /pids) */
};

static void progress(struct sup *s);

static int n_slots(const struct sup *s, size_t region)
{
    return UP_SHOP + (int)s->t->regions[region].n_shops;
}

/* The slots of region <region> that <process> names: "etcd", "node",
 * "shop" (every shop), "shop.N" (one); NULL: all.  0 when it names none. */
static unsigned slot_mask(const struct sup *s, size_t region, const char *process)
{
    int64_t n;
    int k;

    if (process == NULL)
        return (1u << n_slots(s, region)) - 1;
    if (strncmp(process, "shop.", 5) == 0)
        return mr_parse_i64(process + 5, 0, s->t->regions[region].n_shops - 1, &n) == 0
                   ? 1u << (UP_SHOP + (int)n) : 0;
    k = up_kind_parse(process);
    if (k < 0)
        return 0;
    if (k == UP_SHOP)
        return ((1u << n_slots(s, region)) - 1) & ~((1u << UP_SHOP) - 1);
    return 1u << k;
}

static int64_t now_ms(void)
{
    return mr_mono_us() / 1000;
}

static const char *sig_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "?";
}

static void fmt_time(int64_t ms, char *buf, size_t n)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    size_t k;

    gmtime_r(&sec, &tm);
    k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
}

static const char *region_name(const struct proc *p)
{
    return p->kind == UP_WAN    ? "(all)"
         : p->kind == UP_EDGE ? p->s->t->sites[p->region].name
                              : p->s->t->regions[p->region].name;
}

/* "exit status 1" or "killed by SIGKILL" for the last exit of <p>. */
static void describe_exit(const struct proc *p, char *buf, size_t n)
{
    if (p->exit_signal)
        snprintf(buf, n, "killed by SIG%s", sig_name(p->exit_signal));
    else
        snprintf(buf, n, "exit status %lld", (long long)p->exit_status);
}

/* Append the last <lines> lines of <path>, indented, to <out>. */
static void log_tail(const char *path, int lines, struct mr_buf *out)
{
    char buf[2048];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t size;
    ssize_t n;
    char *p;

    if (fd == -1)
        return;
    size = lseek(fd, 0, SEEK_END);
    if (size == -1 || lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0,
                            SEEK_SET) == -1) {
        close(fd);
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    p = buf + n;
    for (int k = 0; p > buf; p--)
        if (p[-1] == '\n' && ++k == lines)
            break;
    for (char *line = p; line && *line;) {
        char *nl = strchr(line, '\n');
        mr_buf_printf(out, "    | %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
        line = nl ? nl + 1 : NULL;
    }
}

/* ---- topology.json ---- */

static json_t *proc_json(const struct proc *p)
{
    const struct sup *s = p->s;
    const struct up_region *r = &s->t->regions[p->region];
    json_t *o = json_object();
    char ts[40];

    if (p->kind == UP_WAN) {
        json_object_set_new(o, "control_url",
                            json_sprintf("http://127.0.0.1:%d", s->t->wan_control_port));
        json_object_set_new(o, "config", json_sprintf("%s/wan.ini", s->rundir));
    } else if (p->kind == UP_EDGE) {
        char *url = up_edge_url(s->t, p->region);
        json_object_set_new(o, "url", json_string(url));
        json_object_set_new(o, "config", json_sprintf("%s/edge-%s.ini", s->rundir,
                                                      s->t->sites[p->region].slug));
        mr_free(url);
    } else if (p->kind == UP_ETCD) {
        json_object_set_new(o, "client_url",
                            json_sprintf("%s://127.0.0.1:%d", up_scheme(s->t), r->etcd_client_port));
        json_object_set_new(o, "peer_url",
                            json_sprintf("%s://127.0.0.1:%d", up_scheme(s->t), r->etcd_peer_port));
        json_object_set_new(o, "data_dir", json_sprintf("%s/%s/etcd", s->rundir, r->name));
    } else if (p->kind == UP_SHOP) {
        char *url = up_shop_instance_url(s->t, p->region, p->shop);
        json_object_set_new(o, "url",
                            json_sprintf("%s://127.0.0.1:%d", up_scheme(s->t), r->shop_port));
        json_object_set_new(o, "instance", json_integer((json_int_t)p->shop));
        json_object_set_new(o, "instance_url", json_string(url));
        mr_free(url);
    } else {
        json_object_set_new(o, "url",
                            json_sprintf("%s://127.0.0.1:%d", up_scheme(s->t), r->node_port));
        json_object_set_new(o, "config", json_sprintf("%s/%s/node.ini", s->rundir, r->name));
        json_object_set_new(o, "data_dir", json_sprintf("%s/%s/data", s->rundir, r->name));
    }
    json_object_set_new(o, "pid", p->handle ? json_integer(p->pid) : json_null());
    json_object_set_new(o, "state", json_string(pstate_names[p->state]));
    json_object_set_new(o, "ready", json_boolean(p->ready));
    json_object_set_new(o, "starts", json_integer(p->n_starts));
    if (p->started_at) {
        fmt_time(p->started_at, ts, sizeof(ts));
        json_object_set_new(o, "started_at", json_string(ts));
    } else {
        json_object_set_new(o, "started_at", json_null());
    }
    if (p->exit_at) {
        json_t *e = json_object();
        fmt_time(p->exit_at, ts, sizeof(ts));
        json_object_set_new(e, "at", json_string(ts));
        json_object_set_new(e, "pid", json_integer(p->exit_pid));
        json_object_set_new(e, "status", p->exit_signal ? json_null() : json_integer(p->exit_status));
        json_object_set_new(e, "signal",
                            p->exit_signal ? json_sprintf("SIG%s", sig_name(p->exit_signal))
                                           : json_null());
        json_object_set_new(e, "expected", json_boolean(p->exit_expected));
        json_object_set_new(o, "last_exit", e);
    } else {
        json_object_set_new(o, "last_exit", json_null());
    }
    if (!p->ready && p->last_error[0])
        json_object_set_new(o, "last_error", json_string(p->last_error));
    json_object_set_new(o, "log", json_string(p->log_path));
    return o;
}

static json_t *state_json(const struct sup *s)
{
    json_t *root = json_object(), *regions = json_array(), *control = json_object();
    char ts[40];
    const char *state = phase_names[s->phase];

    if (s->start_failed)
        state = s->phase == PH_DONE ? "failed" : "failing";
    fmt_time(mr_now_ms(), ts, sizeof(ts));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "name", json_string(s->t->name));
    json_object_set_new(root, "cluster", json_string(s->t->cluster));
    json_object_set_new(root, "source", json_string(s->t->source));
    json_object_set_new(root, "rundir", json_string(s->rundir));
    json_object_set_new(root, "state", json_string(state));
    json_object_set_new(root, "updated_at", json_string(ts));
    json_object_set_new(root, "ready_timeout_ms", json_integer(s->ready_timeout_ms));
    json_object_set_new(control, "url", json_string(s->control_url));
    json_object_set_new(control, "pid", json_integer(getpid()));
    json_object_set_new(control, "log", s->detached ? json_sprintf("%s/logs/up.log", s->rundir)
                                                    : json_null());
    json_object_set_new(root, "control", control);
    if (s->t->auth || s->t->tls) {
        /* The admin credentials, for local scripts, tests and `meridian sql
         * --dir`: the token in clear (the file is the owner's only:
         * save_state's mode) and the admin certificate's files (absolute
         * paths; the key is 0600 in a 0700 directory). */
        json_t *auth = json_object();
        if (s->t->auth)
            json_object_set_new(auth, "token", json_string(s->t->auth_admin));
        if (s->t->tls) {
            json_object_set_new(auth, "ca_file", json_sprintf("%s/tls/ca.crt", s->rundir));
            json_object_set_new(auth, "cert_file",
                                json_sprintf("%s/tls/%s.crt", s->rundir, UP_TLS_ADMIN));
            json_object_set_new(auth, "key_file",
                                json_sprintf("%s/tls/%s.key", s->rundir, UP_TLS_ADMIN));
        }
        json_object_set_new(root, "auth", auth);
    }
    for (size_t i = 0; i < s->t->n_regions; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "name", json_string(s->t->regions[i].name));
        json_object_set_new(r, "node", proc_json(&s->procs[i][UP_NODE]));
        json_object_set_new(r, "etcd", proc_json(&s->procs[i][UP_ETCD]));
        json_object_set_new(r, "shop", proc_json(&s->procs[i][UP_SHOP]));
        json_t *shops = json_array();
        for (int k = UP_SHOP; k < n_slots(s, i); k++)
            json_array_append_new(shops, proc_json(&s->procs[i][k]));
        json_object_set_new(r, "shops", shops);
        json_array_append_new(regions, r);
    }
    json_object_set_new(root, "regions", regions);
    if (s->has_wan) {
        json_t *links = json_array();
        for (size_t i = 0; i < s->t->n_regions; i++)
            for (size_t j = 0; j < s->t->n_regions; j++) {
                json_t *l;
                if (i == j)
                    continue;
                l = json_object();
                json_object_set_new(l, "name", json_sprintf("%s->%s", s->t->regions[i].name,
                                                             s->t->regions[j].name));
                json_object_set_new(l, "from", json_string(s->t->regions[i].name));
                json_object_set_new(l, "to", json_string(s->t->regions[j].name));
                json_object_set_new(l, "latency_ms",
                                    json_real(s->t->latency_ms[i][j] * s->t->latency_scale));
                json_array_append_new(links, l);
            }
        json_object_set_new(root, "links", links);
        json_object_set_new(root, "latency_scale", json_real(s->t->latency_scale));
        json_object_set_new(root, "wan", proc_json(&s->wan));
    }
    {
        json_t *sites = json_array();
        for (size_t i = 0; i < s->t->n_sites; i++) {
            json_t *site = json_object(), *lat = json_object(), *urls = json_object();
            json_t *shops = json_object();
            json_t *wl = s->has_wan ? json_object() : json_null();
            for (size_t r = 0; r < s->t->n_regions; r++)
                json_object_set_new(lat, s->t->regions[r].name,
                                    json_real(s->t->sites[i].latency_ms[r] * s->t->latency_scale));
            json_object_set_new(site, "name", json_string(s->t->sites[i].name));
            json_object_set_new(site, "latency_ms", lat);
            /* Where the site's clients connect: through the wan's link from
             * the site to each region (docs/topology.md). */
            for (size_t r = 0; r < s->t->n_regions; r++) {
                char name[UP_SITE_LINK_MAX + 1], *url = up_site_node_url(s->t, i, r);
                json_object_set_new(urls, s->t->regions[r].name, json_string(url));
                mr_free(url);
                url = up_site_shop_url(s->t, i, r);
                json_object_set_new(shops, s->t->regions[r].name, json_string(url));
                mr_free(url);
                up_site_link_name(s->t, i, r, name, sizeof(name));
                if (s->has_wan)
                    json_object_set_new(wl, s->t->regions[r].name, json_string(name));
            }
            json_object_set_new(site, "node_urls", urls);
            json_object_set_new(site, "shop_urls", shops);
            json_object_set_new(site, "wan_links", wl);
            json_object_set_new(site, "edge", proc_json(&s->edges[i]));
            json_array_append_new(sites, site);
        }
        json_object_set_new(root, "sites", sites);
    }
    return root;
}

/* Rewrite RUNDIR/topology.json; readers never see a half-written file. */
static void save_state(struct sup *s)
{
    json_t *root = state_json(s);
    char *tmp = mr_asprintf("%s/topology.json.tmp", s->rundir);
    char *path = mr_asprintf("%s/topology.json", s->rundir);
    /* With auth it holds the admin token: the owner's eyes only. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  s->t->auth || s->t->tls ? 0600 : 0644);

    if (fd == -1 || json_dumpfd(root, fd, JSON_INDENT(2)) != 0 || close(fd) != 0 ||
        (fd = -1, rename(tmp, path) != 0))
        mr_log(MR_LOG_WARN, "up", "cannot write %s: %s", path, strerror(errno));
    if (fd != -1)
        close(fd);
    json_decref(root);
    mr_free(tmp);
    mr_free(path);
}

/* ---- Children ---- */

static void free_handle_cb(uv_handle_t *h)
{
    mr_free(h);
}

/* ---- Telling the wan which pid is in which region ---- */

static void push_pids(struct sup *s);

static void pids_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct sup *s = data;

    (void)call;
    s->pids_call = NULL;
    if (rc != 0 || resp->status != 200) {
        /* The wan retries identification for a while; the next change (or
         * tick) sends the map again. */
        mr_log(MR_LOG_WARN, "up", "wan: PUT /pids failed: %s",
               rc != 0 ? mr_strerror(rc) : "HTTP error");
        s->pids_dirty = 1;
        return;
    }
    if (s->pids_dirty)
        push_pids(s);
}

/* PUT the pid map to the wan: every live etcd and node with its region.
 * One request at a time; a change meanwhile sends the map again after it. */
static void push_pids(struct sup *s)
{
    struct http_client_request req;
    struct mr_buf body;
    int first = 1;

    if (!s->has_wan || !s->wan.handle || !s->wan.ready || s->client == NULL ||
        s->phase >= PH_DONE) {
        s->pids_dirty = s->has_wan;
        return;
    }
    if (s->pids_call) {
        s->pids_dirty = 1;
        return;
    }
    s->pids_dirty = 0;
    mr_buf_init(&body);
    mr_buf_puts(&body, "{\"pids\":{");
    for (size_t i = 0; i < s->t->n_regions; i++)
        for (int k = 0; k < n_slots(s, i); k++)
            if (s->procs[i][k].handle) {
                mr_buf_printf(&body, "%s\"%d\":\"%s\"", first ? "" : ",", s->procs[i][k].pid,
                              s->t->regions[i].name);
                first = 0;
            }
    mr_buf_puts(&body, "}}");
    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.host = "127.0.0.1";
    req.port = s->t->wan_control_port;
    req.path = "/pids";
    req.headers = "Content-Type: application/json\r\n";
    req.body = body.data;
    req.body_len = body.len;
    req.timeout_ms = PROBE_TIMEOUT_MS;
    if (http_client_request(s->client, &req, pids_cb, s, &s->pids_call) != 0) {
        s->pids_call = NULL;
        s->pids_dirty = 1;
    }
    mr_buf_close(&body);
}

static void proc_exit_cb(uv_process_t *h, int64_t status, int term_signal)
{
    struct proc *p = h->data;
    struct sup *s = p->s;
    char how[64], ts[40];

    p->exit_at = mr_now_ms();
    p->exit_pid = p->pid;
    p->exit_status = status;
    p->exit_signal = term_signal;
    p->exit_expected = p->kill_requested || s->phase >= PH_STOPPING;
    if (p->kill_requested)
        p->state = PS_KILLED;
    else if (s->phase >= PH_STOPPING)
        p->state = PS_STOPPED;
    else
        p->state = PS_EXITED;
    p->kill_requested = 0;
    p->ready = 0;
    p->gen++;
    uv_close((uv_handle_t *)h, free_handle_cb);
    p->handle = NULL;
    describe_exit(p, how, sizeof(how));
    fmt_time(p->exit_at, ts, sizeof(ts));
    if (p->exit_expected)
        mr_log(MR_LOG_INFO, "up", "region %s: %s pid %d exited (%s)", region_name(p),
               p->name, p->exit_pid, how);
    else
        mr_log(MR_LOG_WARN, "up", "region %s: %s pid %d exited unexpectedly at %s: %s; not "
               "restarted; log %s", region_name(p), p->name, p->exit_pid, ts, how,
               p->log_path);
    p->pid = 0;
    if (p->kind != UP_WAN)
        push_pids(s);
    save_state(s);
    progress(s);
}

static int proc_spawn(struct proc *p)
{
    struct sup *s = p->s;
    char **argv;
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    struct mr_buf head;
    char ts[40];
    int fd, rc;

    argv = p->kind == UP_ETCD ? up_etcd_argv(s->t, p->region, s->rundir, s->etcd_bin)
         : p->kind == UP_NODE ? up_node_argv(s->t, p->region, s->rundir, s->exe)
         : p->kind == UP_SHOP ? up_shop_argv(s->t, p->region, p->shop, s->rundir, s->exe)
         : p->kind == UP_EDGE ? up_edge_argv(s->t, p->region, s->rundir, s->exe)
                              : up_wan_argv(s->t, s->rundir, s->exe);
    fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        snprintf(p->last_error, sizeof(p->last_error), "cannot open its log: %s", strerror(errno));
        up_argv_free(argv);
        return MR_EIO;
    }
    /* A separator in the log, so that each start's output can be found. */
    mr_buf_init(&head);
    fmt_time(mr_now_ms(), ts, sizeof(ts));
    mr_buf_printf(&head, "---- %s meridian up: start #%d of %s:", ts, p->n_starts + 1,
                  p->name);
    for (char **a = argv; *a; a++)
        mr_buf_printf(&head, " %s", *a);
    mr_buf_puts(&head, "\n");
    (void)!write(fd, head.data, head.len);
    mr_buf_close(&head);

    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fd;
    o.exit_cb = proc_exit_cb;
    o.file = p->kind != UP_ETCD ? s->exe : argv[0];
    if (p->kind != UP_ETCD) {
        /* "meridian node ..." in ps, rather than "/proc/self/exe node ...". */
        mr_free(argv[0]);
        argv[0] = mr_strdup("meridian");
    }
    o.args = argv;
    o.stdio = stdio;
    o.stdio_count = 3;
    /* Own session: a Ctrl-C on the terminal goes to the supervisor only. */
    o.flags = UV_PROCESS_DETACHED;
    p->handle = mr_malloc(sizeof(*p->handle));
    p->handle->data = p;
    rc = uv_spawn(&s->loop, p->handle, &o);
    close(fd);
    if (rc != 0) {
        /* uv_spawn initialised the handle: it must be closed all the same. */
        uv_close((uv_handle_t *)p->handle, free_handle_cb);
        p->handle = NULL;
        snprintf(p->last_error, sizeof(p->last_error), "cannot start %s: %s", o.file,
                 uv_strerror(rc));
        mr_log(MR_LOG_ERROR, "up", "region %s: %s: %s", region_name(p), p->name,
               p->last_error);
        up_argv_free(argv);
        return MR_EIO;
    }
    up_argv_free(argv);
    p->pid = p->handle->pid;
    p->term_sent = 0;
    p->state = PS_RUNNING;
    p->ready = 0;
    p->gen++;
    p->n_starts++;
    p->started_at = mr_now_ms();
    p->next_probe_ms = now_ms();
    p->last_error[0] = '\0';
    mr_log(MR_LOG_INFO, "up", "region %s: started %s pid %d (start #%d)", region_name(p),
           p->name, p->pid, p->n_starts);
    if (p->kind != UP_WAN)
        push_pids(s);
    return 0;
}

static void proc_signal(struct proc *p, int sig)
{
    if (p->handle != NULL && uv_process_kill(p->handle, sig) != 0)
        mr_log(MR_LOG_WARN, "up", "region %s: %s pid %d: kill SIG%s failed", region_name(p),
               p->name, p->pid, sig_name(sig));
}

/* ---- Readiness probes ---- */

static void probe_cb(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct proc *p = data;

    p->probe = NULL;
    if (p->probe_gen != p->gen || p->state != PS_RUNNING || p->s->phase >= PH_STOPPING)
        return;
    if (rc == 0 && resp->status == 200) {
        p->ready = 1;
        p->last_error[0] = '\0';
        mr_log(MR_LOG_INFO, "up", "region %s: %s pid %d ready after %lld ms", region_name(p),
               p->name, p->pid, (long long)(mr_now_ms() - p->started_at));
        if (p->kind == UP_WAN)
            push_pids(p->s);
        save_state(p->s);
        return;
    }
    if (rc == 0)
        snprintf(p->last_error, sizeof(p->last_error), "last probe: HTTP %d", resp->status);
    else
        snprintf(p->last_error, sizeof(p->last_error), "last probe: %s", mr_strerror(rc));
    p->next_probe_ms = now_ms() + PROBE_EVERY_MS;
}

static struct http_client *probe_client(const struct proc *p)
{
    const struct sup *s = p->s;

    if (p->kind == UP_WAN || s->tls_client == NULL)
        return s->client;
    if (p->kind == UP_EDGE)
        return s->t->edge_tls ? s->tls_client : s->client;
    return s->tls_client;
}

static void probe_start(struct proc *p)
{
    const struct up_region *r = &p->s->t->regions[p->region];
    struct http_client_request req;
    int rc;

    memset(&req, 0, sizeof(req));
    req.host = "127.0.0.1";
    req.timeout_ms = PROBE_TIMEOUT_MS;
    if (p->kind == UP_WAN) {
        req.method = "GET";
        req.port = p->s->t->wan_control_port;
        req.path = "/healthz";
    } else if (p->kind == UP_EDGE) {
        /* ready once one region is healthy through the wan */
        req.method = "GET";
        req.port = p->s->t->edge_port[p->region];
        req.path = "/readyz";
    } else if (p->kind == UP_SHOP) {
        /* ready when its node is */
        req.method = "GET";
        req.port = r->n_shops > 1 ? r->shop_instance_port[p->shop] : r->shop_port;
        req.path = "/readyz";
    } else if (p->kind == UP_ETCD) {
        req.method = "POST";
        req.port = r->etcd_client_port;
        req.path = "/v3/maintenance/status";
        req.headers = "Content-Type: application/json\r\n";
        req.body = "{}";
        req.body_len = 2;
    } else {
        req.method = "GET";
        req.port = r->node_port;
        req.path = "/readyz";
    }
    p->probe_gen = p->gen;
    /* The wan's control API is plain; so are the edges' listeners unless
     * edge_tls.  Everything else speaks TLS with [topology] tls. */
    rc = http_client_request(probe_client(p), &req, probe_cb, p, &p->probe);
    if (rc != 0) {
        p->probe = NULL;
        snprintf(p->last_error, sizeof(p->last_error), "probe: %s", mr_strerror(rc));
        p->next_probe_ms = now_ms() + PROBE_EVERY_MS;
    }
}

/* ---- Control API answers ---- */

static void respond_json(struct http_exchange *ex, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_INDENT(2));
    struct mr_buf b;

    mr_buf_init(&b);
    mr_buf_puts(&b, text ? text : "null");
    mr_buf_putc(&b, '\n');
    free(text); /* jansson's allocation */
    http_respond(ex, status, "application/json", b.data, b.len, NULL);
    mr_buf_close(&b);
    json_decref(body);
}

static void respond_error(struct http_exchange *ex, int status, const char *code, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
static void respond_error(struct http_exchange *ex, int status, const char *code, const char *fmt,
                          ...)
{
    struct mr_buf msg, body;
    va_list ap;

    mr_buf_init(&msg);
    mr_buf_init(&body);
    va_start(ap, fmt);
    mr_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    mr_json_error(&body, code, msg.data);
    mr_buf_putc(&body, '\n');
    http_respond(ex, status, "application/json", body.data, body.len, NULL);
    mr_buf_close(&msg);
    mr_buf_close(&body);
}

/* {"region", "action", "processes": {"etcd": {...}, "node": {...}}} */
static json_t *action_json(const struct sup *s, size_t region, const char *action, unsigned mask)
{
    json_t *o = json_object(), *procs = json_object();

    json_object_set_new(o, "region", json_string(s->t->regions[region].name));
    json_object_set_new(o, "action", json_string(action));
    for (int k = 0; k < n_slots(s, region); k++)
        if (mask & (1u << k))
            json_object_set_new(procs, s->procs[region][k].name, proc_json(&s->procs[region][k]));
    json_object_set_new(o, "processes", procs);
    return o;
}

static void waiter_add(struct sup *s, struct http_exchange *ex, enum waiter_kind kind,
                       size_t region, unsigned mask, int64_t timeout_ms)
{
    struct waiter *w = mr_calloc(1, sizeof(*w));
    w->ex = ex;
    w->kind = kind;
    w->region = region;
    w->mask = mask;
    w->deadline_ms = now_ms() + timeout_ms;
    w->next = s->waiters;
    s->waiters = w;
}

/* Answer <w> if it is done; returns 1 when it was answered. */
static int waiter_check(struct sup *s, struct waiter *w, int64_t now)
{
    const char *action = w->kind == W_KILL ? "kill" : "restart";
    int done = 1;

    if (s->phase >= PH_STOPPING) {
        respond_error(w->ex, 503, "EUNAVAIL", "the topology is shutting down");
        return 1;
    }
    for (int k = 0; k < n_slots(s, w->region); k++) {
        struct proc *p = &s->procs[w->region][k];
        if (!(w->mask & (1u << k)))
            continue;
        if (w->kind == W_KILL) {
            if (p->handle)
                done = 0;
            continue;
        }
        if (!p->start_pending && !p->handle) {
            char how[160] = "";
            if (p->last_error[0])
                snprintf(how, sizeof(how), "%s", p->last_error);
            else
                describe_exit(p, how, sizeof(how));
            respond_error(w->ex, 500, "EUNAVAIL", "region %s: %s did not come back (%s); log %s",
                          region_name(p), p->name, how, p->log_path);
            return 1;
        }
        if (p->start_pending || !p->ready)
            done = 0;
    }
    if (done) {
        respond_json(w->ex, 200, action_json(s, w->region, action, w->mask));
        return 1;
    }
    if (now >= w->deadline_ms) {
        struct mr_buf why;
        mr_buf_init(&why);
        for (int k = 0; k < n_slots(s, w->region); k++) {
            struct proc *p = &s->procs[w->region][k];
            if (!(w->mask & (1u << k)) || (w->kind == W_KILL ? !p->handle : p->ready))
                continue;
            mr_buf_printf(&why, "%s%s %s (%s; log %s)", why.len ? "; " : "", p->name,
                          w->kind == W_KILL ? "still alive" : "not ready",
                          p->last_error[0] ? p->last_error : p->start_pending ? "not started" : "-",
                          p->log_path);
        }
        respond_error(w->ex, 504, "ETIMEDOUT", "region %s: %s: %s", s->t->regions[w->region].name,
                      action, why.data ? why.data : "timed out");
        mr_buf_close(&why);
        return 1;
    }
    return 0;
}

static void check_waiters(struct sup *s, int64_t now)
{
    struct waiter **pw = &s->waiters;

    while (*pw) {
        struct waiter *w = *pw;
        if (waiter_check(s, w, now)) {
            *pw = w->next;
            mr_free(w);
        } else {
            pw = &w->next;
        }
    }
}

static void region_action(struct sup *s, struct http_exchange *ex, size_t region,
                          const char *action, unsigned mask)
{
    int alive = 0;

    if (strcmp(action, "kill") == 0) {
        for (int k = 0; k < n_slots(s, region); k++) {
            struct proc *p = &s->procs[region][k];
            if (!(mask & (1u << k)))
                continue;
            p->start_pending = 0;
            if (p->handle) {
                mr_log(MR_LOG_INFO, "up", "region %s: kill -9 %s pid %d (control request)",
                       region_name(p), p->name, p->pid);
                p->kill_requested = 1;
                proc_signal(p, SIGKILL);
                alive++;
            }
        }
        if (alive == 0) {
            respond_json(ex, 200, action_json(s, region, action, mask));
            return;
        }
        waiter_add(s, ex, W_KILL, region, mask, KILL_WAIT_MS);
        return;
    }
    if (strcmp(action, "freeze") == 0 || strcmp(action, "thaw") == 0) {
        int freeze = action[0] == 'f';
        for (int k = 0; k < n_slots(s, region); k++) {
            struct proc *p = &s->procs[region][k];
            if (!(mask & (1u << k)) || !p->handle)
                continue;
            if (freeze && p->state == PS_RUNNING) {
                proc_signal(p, SIGSTOP);
                p->state = PS_FROZEN;
            } else if (!freeze && p->state == PS_FROZEN) {
                proc_signal(p, SIGCONT);
                p->state = PS_RUNNING;
            } else {
                continue;
            }
            mr_log(MR_LOG_INFO, "up", "region %s: %s %s pid %d (control request)",
                   region_name(p), action, p->name, p->pid);
        }
        save_state(s);
        respond_json(ex, 200, action_json(s, region, action, mask));
        return;
    }
    /* restart: kill -9 what is alive, then start again on the same data. */
    for (int k = 0; k < n_slots(s, region); k++) {
        struct proc *p = &s->procs[region][k];
        if (!(mask & (1u << k)))
            continue;
        if (p->handle) {
            p->kill_requested = 1;
            proc_signal(p, SIGKILL);
        }
        p->start_pending = 1;
        mr_log(MR_LOG_INFO, "up", "region %s: restart %s (control request)", region_name(p),
               p->name);
    }
    waiter_add(s, ex, W_RESTART, region, mask, s->ready_timeout_ms);
}

static void begin_stop(struct sup *s);

static void start_failed(struct sup *s, int code);

/* POST /regions/NAME/ACTION[?process=etcd|node] */
static void on_region_request(struct sup *s, struct http_exchange *ex,
                              const struct http_request *req)
{
    const char *name = req->path + 9, *slash = strchr(name, '/');
    char region[UP_REGION_NAME_MAX + 1];
    const char *action;
    struct mr_buf proc;
    unsigned mask;
    int idx, has_proc;

    if (slash == NULL || (size_t)(slash - name) > UP_REGION_NAME_MAX) {
        respond_error(ex, 404, "ENOTFOUND", "expected /regions/NAME/ACTION");
        return;
    }
    memcpy(region, name, (size_t)(slash - name));
    region[slash - name] = '\0';
    action = slash + 1;
    idx = up_topology_find(s->t, region);
    if (idx < 0) {
        respond_error(ex, 404, "ENOTFOUND", "no region '%s' in this topology", region);
        return;
    }
    if (strcmp(action, "kill") && strcmp(action, "freeze") && strcmp(action, "thaw") &&
        strcmp(action, "restart")) {
        respond_error(ex, 404, "ENOTFOUND",
                      "unknown action '%s': expected kill, freeze, thaw or restart", action);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        respond_error(ex, 405, "EINVAL", "use POST %s", req->path);
        return;
    }
    mr_buf_init(&proc);
    has_proc = http_request_query(req, "process", &proc);
    mask = slot_mask(s, (size_t)idx, has_proc ? (proc.data ? proc.data : "") : NULL);
    if (mask == 0) {
        respond_error(ex, 400, "EINVAL",
                      "process: expected etcd, node, shop or shop.N (N < %d), found '%s'",
                      (int)s->t->regions[idx].n_shops, proc.data ? proc.data : "");
        mr_buf_close(&proc);
        return;
    }
    mr_buf_close(&proc);
    if (s->phase >= PH_STOPPING) {
        respond_error(ex, 503, "EUNAVAIL", "the topology is shutting down");
        return;
    }
    region_action(s, ex, (size_t)idx, action, mask);
    save_state(s);
}

/* With [topology] auth, the control API needs the admin token (GET /status
 * too: it is the way to every process).  The hook for mutual TLS is the
 * NULL passed as peer_cn (http_exchange_peer_cn once src/tls lands). */
static int control_authorized(struct sup *s, struct http_exchange *ex, const struct http_request *req)
{
    enum mr_auth_result r;

    if (!s->t->auth)
        return 1;
    r = mr_auth_check(&s->auth, http_request_header(req, "Authorization"), NULL, MR_AUTH_ADMIN,
                      NULL, NULL);
    if (r == MR_AUTH_OK)
        return 1;
    mr_log(MR_LOG_WARN, "up", "control API: refused %s %.100s (%s token)", req->method, req->path,
           mr_auth_result_name(r));
    if (r == MR_AUTH_FORBIDDEN)
        respond_error(ex, 403, "forbidden", "the control API needs the admin scope");
    else
        respond_error(ex, 401, "unauthorized", "the control API needs 'Authorization: Bearer "
                      "<admin token>' (topology.json \"auth\")");
    return 0;
}

static void on_request(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct sup *s = data;
    const char *path = req->path;

    if (!control_authorized(s, ex, req))
        return;

    if (strcmp(path, "/status") == 0) {
        if (strcmp(req->method, "GET") != 0)
            respond_error(ex, 405, "EINVAL", "use GET %s", path);
        else
            respond_json(ex, 200, state_json(s));
    } else if (strcmp(path, "/shutdown") == 0) {
        json_t *o;
        if (strcmp(req->method, "POST") != 0) {
            respond_error(ex, 405, "EINVAL", "use POST %s", path);
            return;
        }
        mr_log(MR_LOG_INFO, "up", "shutdown requested over the control API");
        if (s->phase == PH_STARTING) {
            mr_buf_puts(&s->report, "shutdown requested before every region was ready\n");
            start_failed(s, MR_EUNAVAIL);
        } else {
            begin_stop(s);
        }
        o = json_object();
        json_object_set_new(o, "state", json_string("stopping"));
        json_object_set_new(o, "pid", json_integer(getpid()));
        respond_json(ex, 202, o);
    } else if (strncmp(path, "/regions/", 9) == 0) {
        on_region_request(s, ex, req);
    } else {
        respond_error(ex, 404, "ENOTFOUND",
                      "no such endpoint: try GET /status, POST /regions/NAME/ACTION, "
                      "POST /shutdown");
    }
}

/* ---- Start, failure, stop ---- */

static void report(struct sup *s, char kind, const char *text)
{
    if (s->ready_fd >= 0) {
        size_t n = strlen(text);
        const char *p = text;
        if (write(s->ready_fd, &kind, 1) == 1) {
            while (n > 0) {
                ssize_t w = write(s->ready_fd, p, n);
                if (w == -1 && errno == EINTR)
                    continue;
                if (w <= 0)
                    break;
                p += w;
                n -= (size_t)w;
            }
        }
        close(s->ready_fd);
        s->ready_fd = -1;
    } else {
        FILE *f = kind == 'R' ? stdout : stderr;
        fputs(text, f);
        fflush(f);
    }
}

static void announce_ready(struct sup *s)
{
    json_t *root = state_json(s);
    char *text = json_dumps(root, 0);
    struct mr_buf table;
    char err[MR_ERRMSG_LEN];

    mr_buf_init(&table);
    if (up_format_endpoints(text, &table, err) != 0)
        mr_buf_printf(&table, "(cannot format the endpoint table: %s)\n", err);
    mr_log(MR_LOG_INFO, "up", "every region is ready after %lld ms; control %s",
           (long long)(now_ms() - s->start_ms), s->control_url);
    report(s, 'R', table.data);
    mr_buf_close(&table);
    free(text);
    json_decref(root);
}

static void start_failed(struct sup *s, int code)
{
    const char *nl;

    s->start_failed = 1;
    s->fail_code = code;
    nl = strchr(s->report.data, '\n');
    snprintf(s->err, sizeof(s->err), "%.*s", nl ? (int)(nl - s->report.data) : (int)s->report.len,
             s->report.data);
    mr_log(MR_LOG_ERROR, "up", "start failed: %s", s->err);
    begin_stop(s);
}

/* ---- Edges: one per client site (see up.h; src/up/edge.c) ---- */

static void edges_init(struct sup *s)
{
    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        p->s = s;
        p->region = i;
        p->kind = UP_EDGE;
        p->start_pending = 1;
        p->log_path = up_path_edge_log(s->rundir, &s->t->sites[i]);
    }
}

static void edges_free(struct sup *s)
{
    for (size_t i = 0; i < s->t->n_sites; i++)
        mr_free(s->edges[i].log_path);
}

/* Start the edges once the wan carries their traffic (or there is none). */
static void edges_spawn_pending(struct sup *s)
{
    if (s->has_wan && !(s->wan.handle && s->wan.ready))
        return;
    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        if (!p->start_pending || p->handle)
            continue;
        p->start_pending = 0;
        if (proc_spawn(p) != 0)
            p->state = PS_EXITED;
        save_state(s);
    }
}

static void edges_probe(struct sup *s, int64_t now)
{
    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        if (p->state == PS_RUNNING && p->handle && !p->ready && !p->probe &&
            now >= p->next_probe_ms)
            probe_start(p);
    }
}

/* During the start: 0 when every edge is ready, 1 when some are still
 * coming, -1 when one failed (the report says why). */
static int edges_check_start(struct sup *s, int64_t now)
{
    int waiting = 0;

    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        if (!p->handle && !p->start_pending) {
            char how[160];
            if (p->last_error[0])
                snprintf(how, sizeof(how), "%s", p->last_error);
            else
                describe_exit(p, how, sizeof(how));
            mr_buf_printf(&s->report, "site %s: edge %s before it was ready\n  log %s\n  (%s)\n",
                          region_name(p), p->exit_at ? "exited" : "failed", p->log_path, how);
            log_tail(p->log_path, LOG_TAIL_LINES, &s->report);
            return -1;
        }
        if (p->ready)
            continue;
        if (now >= s->start_deadline_ms) {
            mr_buf_printf(&s->report, "site %s: edge not ready after %lld ms (%s)\n  log %s\n",
                          region_name(p), (long long)s->ready_timeout_ms,
                          p->last_error[0] ? p->last_error : "no probe answered", p->log_path);
            log_tail(p->log_path, 4, &s->report);
            return -1;
        }
        waiting = 1;
    }
    return waiting;
}

/* Stop: SIGTERM to every edge first (they drain their requests). */
static void edges_begin_stop(struct sup *s)
{
    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        p->start_pending = 0;
        if (!p->handle)
            continue;
        if (p->state == PS_FROZEN) {
            proc_signal(p, SIGCONT);
            p->state = PS_RUNNING;
        }
        proc_signal(p, SIGTERM);
        p->term_sent = 1;
    }
}

static int edges_alive(const struct sup *s)
{
    int n = 0;

    for (size_t i = 0; i < s->t->n_sites; i++)
        n += s->edges[i].handle != NULL;
    return n;
}

static void edges_kill(struct sup *s)
{
    for (size_t i = 0; i < s->t->n_sites; i++) {
        struct proc *p = &s->edges[i];
        if (!p->handle)
            continue;
        mr_log(MR_LOG_WARN, "up", "site %s: edge pid %d still alive %d ms into the stop: "
               "SIGKILL", region_name(p), p->pid, STOP_GRACE_MS);
        proc_signal(p, SIGKILL);
    }
}

static void check_start(struct sup *s, int64_t now)
{
    int all_ready = 1;

    if (s->has_wan) {
        struct proc *p = &s->wan;
        if (!p->handle && !p->start_pending) {
            mr_buf_printf(&s->report, "the wan %s before it was ready\n  log %s\n  (%s)\n",
                          p->exit_at ? "exited" : "failed", p->log_path,
                          p->last_error[0] ? p->last_error : "see its log");
            log_tail(p->log_path, LOG_TAIL_LINES, &s->report);
            start_failed(s, MR_EUNAVAIL);
            return;
        }
        all_ready &= p->ready;
        if (!p->ready && now >= s->start_deadline_ms) {
            mr_buf_printf(&s->report, "the wan not ready after %lld ms (%s)\n  log %s\n",
                          (long long)s->ready_timeout_ms,
                          p->last_error[0] ? p->last_error : "no probe answered", p->log_path);
            log_tail(p->log_path, 4, &s->report);
            start_failed(s, MR_ETIMEDOUT);
            return;
        }
    }

    for (size_t i = 0; i < s->t->n_regions; i++) {
        for (int k = 0; k < n_slots(s, i); k++) {
            struct proc *p = &s->procs[i][k];
            char how[160];
            if (p->handle || p->start_pending) {
                all_ready &= p->ready;
                continue;
            }
            if (p->last_error[0])
                snprintf(how, sizeof(how), "%s", p->last_error);
            else
                describe_exit(p, how, sizeof(how));
            mr_buf_printf(&s->report, "region %s: %s %s before it was ready\n  log %s\n",
                          region_name(p), p->name,
                          p->exit_at ? "exited" : "failed", p->log_path);
            mr_buf_printf(&s->report, "  (%s)\n", how);
            log_tail(p->log_path, LOG_TAIL_LINES, &s->report);
            start_failed(s, MR_EUNAVAIL);
            return;
        }
    }
    if (all_ready) {
        /* Edges last: they need a ready region to be ready themselves. */
        int e = edges_check_start(s, now);
        if (e < 0) {
            start_failed(s, now >= s->start_deadline_ms ? MR_ETIMEDOUT : MR_EUNAVAIL);
            return;
        }
        all_ready = e == 0;
    } else if (edges_check_start(s, 0) < 0) {
        start_failed(s, MR_EUNAVAIL);
        return;
    }
    if (all_ready) {
        s->phase = PH_READY;
        save_state(s);
        announce_ready(s);
        return;
    }
    if (now < s->start_deadline_ms)
        return;
    for (size_t i = 0; i < s->t->n_regions; i++) {
        for (int k = 0; k < n_slots(s, i); k++) {
            struct proc *p = &s->procs[i][k];
            if (p->ready)
                continue;
            if (p->start_pending)
                mr_buf_printf(&s->report, "region %s: %s not started (waiting for its etcd)\n",
                              region_name(p), p->name);
            else
                mr_buf_printf(&s->report, "region %s: %s not ready after %lld ms (%s)\n  log %s\n",
                              region_name(p), p->name,
                              (long long)s->ready_timeout_ms,
                              p->last_error[0] ? p->last_error : "no probe answered", p->log_path);
            if (!p->start_pending)
                log_tail(p->log_path, 4, &s->report);
        }
    }
    start_failed(s, MR_ETIMEDOUT);
}

static void finish(struct sup *s)
{
    struct waiter *w;

    s->phase = PH_DONE;
    while ((w = s->waiters) != NULL) {
        s->waiters = w->next;
        respond_error(w->ex, 503, "EUNAVAIL", "the topology has shut down");
        mr_free(w);
    }
    save_state(s);
    mr_log(MR_LOG_INFO, "up", "every process has stopped");
    if (s->start_failed)
        report(s, 'F', s->report.data);
    else if (s->ready_fd >= 0)
        report(s, 'F', "the supervisor stopped before every region was ready\n");
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, NULL);
    for (int i = 0; i < s->n_sigs; i++)
        uv_close((uv_handle_t *)&s->sigs[i], NULL);
    http_server_close(s->server);
    s->server = NULL;
    http_client_free(s->client);
    s->client = NULL;
    http_client_free(s->tls_client);
    s->tls_client = NULL;
}

/* etcd members are stopped one after the other.  A leader that gets SIGTERM
 * hands its leadership to a connected follower first; when every member is
 * stopping at once that follower is going away too and the leader waits for
 * etcd's request timeout (about 6 s with local timers) before it exits.  One
 * at a time, each member stops in tens of milliseconds. */
static void stop_next_etcd(struct sup *s)
{
    for (size_t i = 0; i < s->t->n_regions; i++)
        if (s->procs[i][UP_ETCD].handle && s->procs[i][UP_ETCD].term_sent)
            return;
    for (size_t i = 0; i < s->t->n_regions; i++) {
        struct proc *p = &s->procs[i][UP_ETCD];
        if (p->handle && !p->term_sent) {
            proc_signal(p, SIGTERM);
            p->term_sent = 1;
            return;
        }
    }
}

static void begin_stop(struct sup *s)
{
    int n = 0;

    if (s->phase >= PH_STOPPING)
        return;
    s->phase = PH_STOPPING;
    s->stop_deadline_ms = now_ms() + STOP_GRACE_MS;
    s->wan.start_pending = 0;
    edges_begin_stop(s);
    for (size_t i = 0; i < s->t->n_regions; i++) {
        for (int k = 0; k < n_slots(s, i); k++) {
            struct proc *p = &s->procs[i][k];
            p->start_pending = 0;
            if (!p->handle)
                continue;
            /* A stopped process would sit on SIGTERM until thawed. */
            if (p->state == PS_FROZEN) {
                proc_signal(p, SIGCONT);
                p->state = PS_RUNNING;
            }
            if (p->kind == UP_NODE || p->kind == UP_SHOP) {
                proc_signal(p, SIGTERM);
                p->term_sent = 1;
            }
            n++;
        }
    }
    stop_next_etcd(s);
    if (s->seed)
        uv_process_kill(s->seed, SIGKILL);
    mr_log(MR_LOG_INFO, "up", "stopping %d processes: SIGTERM to the shops and nodes, then to each "
           "etcd member in turn", n);
    save_state(s);
}

static void check_stop(struct sup *s, int64_t now)
{
    int alive = 0;

    for (size_t i = 0; i < s->t->n_regions; i++)
        for (int k = 0; k < n_slots(s, i); k++)
            alive += s->procs[i][k].handle != NULL;
    alive += edges_alive(s);
    alive += s->seed != NULL;
    /* The wan goes last: the etcd members hand over leadership through it. */
    if (alive == 0 && s->wan.handle && !s->wan.term_sent) {
        proc_signal(&s->wan, SIGTERM);
        s->wan.term_sent = 1;
    }
    if (alive == 0 && !s->wan.handle) {
        finish(s);
        return;
    }
    if (s->wan.handle && !s->sent_kill && now >= s->stop_deadline_ms) {
        mr_log(MR_LOG_WARN, "up", "wan pid %d still alive %d ms into the stop: SIGKILL",
               s->wan.pid, STOP_GRACE_MS);
        proc_signal(&s->wan, SIGKILL);
    }
    stop_next_etcd(s);
    if (!s->sent_kill && now >= s->stop_deadline_ms) {
        s->sent_kill = 1;
        edges_kill(s);
        for (size_t i = 0; i < s->t->n_regions; i++) {
            for (int k = 0; k < n_slots(s, i); k++) {
                struct proc *p = &s->procs[i][k];
                if (!p->handle)
                    continue;
                mr_log(MR_LOG_WARN, "up", "region %s: %s pid %d still alive %d ms into the "
                       "stop: SIGKILL", region_name(p), p->name, p->pid, STOP_GRACE_MS);
                proc_signal(p, SIGKILL);
            }
        }
    }
}

static void seed_exit_cb(uv_process_t *h, int64_t status, int term_signal)
{
    struct sup *s = h->data;
    char *log = mr_asprintf("%s/logs/seed.log", s->rundir);

    uv_close((uv_handle_t *)h, free_handle_cb);
    s->seed = NULL;
    if (status == 0 && term_signal == 0) {
        s->seeded = 1;
        mr_log(MR_LOG_INFO, "up", "catalog seeded");
    } else if (s->phase == PH_STARTING) {
        mr_buf_printf(&s->report, "seeding the shop's catalog failed (%s %d)\n  log %s\n",
                      term_signal ? "signal" : "exit status", term_signal ? term_signal : (int)status, log);
        log_tail(log, LOG_TAIL_LINES, &s->report);
        start_failed(s, MR_EUNAVAIL);
    }
    mr_free(log);
    progress(s);
}

/* Once every node is ready for the first time: seed the catalog (schema,
 * products, the global tables; idempotent), then the shops may start. */
static void seed_maybe_start(struct sup *s)
{
    char **argv, *log, **env = NULL, *env_token = NULL;
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    int fd, rc;

    if (s->seed_started || s->phase != PH_STARTING)
        return;
    for (size_t i = 0; i < s->t->n_regions; i++)
        if (!s->procs[i][UP_NODE].ready)
            return;
    s->seed_started = 1;
    argv = up_shop_seed_argv(s->t, s->rundir, s->exe);
    log = mr_asprintf("%s/logs/seed.log", s->rundir);
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[1].data.fd = fd;
    stdio[2] = stdio[1];
    o.exit_cb = seed_exit_cb;
    o.file = s->exe;
    mr_free(argv[0]);
    argv[0] = mr_strdup("meridian");
    o.args = argv;
    if (s->t->auth) {
        /* The seed declares tables and creates the schema: the admin token,
         * through the environment (argv is world-readable in /proc). */
        size_t n = 0, k = 0;
        while (environ[n])
            n++;
        env = mr_calloc(n + 2, sizeof(*env));
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "MERIDIAN_TOKEN=", 15) != 0)
                env[k++] = environ[i];
        env_token = mr_asprintf("MERIDIAN_TOKEN=%s", s->t->auth_admin);
        env[k] = env_token;
        o.env = env;
    }
    o.stdio = stdio;
    o.stdio_count = 3;
    s->seed = mr_malloc(sizeof(*s->seed));
    s->seed->data = s;
    rc = uv_spawn(&s->loop, s->seed, &o);
    if (fd >= 0)
        close(fd);
    mr_free(env);
    mr_free(env_token);
    up_argv_free(argv);
    if (rc != 0) {
        uv_close((uv_handle_t *)s->seed, free_handle_cb);
        s->seed = NULL;
        mr_buf_printf(&s->report, "cannot start `meridian shop seed`: %s\n", uv_strerror(rc));
        start_failed(s, MR_EUNAVAIL);
    } else {
        mr_log(MR_LOG_INFO, "up", "seeding the catalog (log %s)", log);
    }
    mr_free(log);
}

/* Spawn what is pending and allowed: a node waits while its own region's
 * etcd is about to start or is starting (not ready yet), and during the
 * first start until it is ready; later, if that etcd is dead or frozen, the
 * node starts anyway and uses the other regions' members. */
static void spawn_pending(struct sup *s)
{
    if (s->has_wan && s->wan.start_pending && !s->wan.handle) {
        s->wan.start_pending = 0;
        if (proc_spawn(&s->wan) != 0)
            s->wan.state = PS_EXITED;
        save_state(s);
    }
    for (size_t i = 0; i < s->t->n_regions; i++) {
        for (int k = 0; k < n_slots(s, i); k++) {
            struct proc *p = &s->procs[i][k];
            if (!p->start_pending || p->handle)
                continue;
            /* Every etcd member dials its peers through the wan. */
            if (p->kind == UP_ETCD && s->has_wan && s->wan.handle && !s->wan.ready)
                continue;
            if (p->kind == UP_NODE) {
                const struct proc *e = &s->procs[i][UP_ETCD];
                if (e->start_pending || (e->state == PS_RUNNING && !e->ready) ||
                    (s->phase == PH_STARTING && !e->ready))
                    continue;
            }
            /* A shop needs the catalog; later (a restart) only a live node:
             * it is ready when its node is. */
            if (p->kind == UP_SHOP) {
                const struct proc *n = &s->procs[i][UP_NODE];
                if (!s->seeded || n->start_pending || !n->handle)
                    continue;
            }
            p->start_pending = 0;
            if (proc_spawn(p) != 0)
                p->state = PS_EXITED;
            save_state(s);
        }
    }
}

static void progress(struct sup *s)
{
    int64_t now = now_ms();

    if (s->phase == PH_DONE)
        return;
    if (s->phase < PH_STOPPING) {
        seed_maybe_start(s);
        spawn_pending(s);
        edges_spawn_pending(s);
        edges_probe(s, now);
        if (s->wan.state == PS_RUNNING && s->wan.handle && !s->wan.ready && !s->wan.probe &&
            now >= s->wan.next_probe_ms)
            probe_start(&s->wan);
        if (s->pids_dirty && !s->pids_call)
            push_pids(s);
        for (size_t i = 0; i < s->t->n_regions; i++) {
            for (int k = 0; k < n_slots(s, i); k++) {
                struct proc *p = &s->procs[i][k];
                if (p->state == PS_RUNNING && p->handle && !p->ready && !p->probe &&
                    now >= p->next_probe_ms)
                    probe_start(p);
            }
        }
    }
    if (s->phase == PH_STARTING)
        check_start(s, now);
    check_waiters(s, now);
    if (s->phase == PH_STOPPING)
        check_stop(s, now);
}

static void on_tick(uv_timer_t *h)
{
    progress(h->data);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sup *s = h->data;

    if (s->phase >= PH_STOPPING) {
        /* A second Ctrl-C: do not wait for the grace period. */
        if (s->phase == PH_STOPPING && !s->sent_kill) {
            mr_log(MR_LOG_WARN, "up", "SIG%s again: SIGKILL to every process", sig_name(signum));
            s->stop_deadline_ms = 0;
            progress(s);
        }
        return;
    }
    mr_log(MR_LOG_INFO, "up", "SIG%s: stopping every region", sig_name(signum));
    if (s->phase == PH_STARTING) {
        mr_buf_printf(&s->report, "interrupted by SIG%s before every region was ready\n",
                      sig_name(signum));
        start_failed(s, MR_EUNAVAIL);
    } else {
        begin_stop(s);
    }
    progress(s);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int up_run(const struct up_topology *t, const struct up_run_opts *o, char *err)
{
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    struct sup *s = mr_calloc(1, sizeof(*s));
    struct http_server_opts sopts;
    struct http_client_opts copts;
    int rc;

    s->t = t;
    s->rundir = mr_strdup(o->rundir);
    s->exe = mr_strdup(o->exe);
    s->etcd_bin = mr_strdup(o->etcd_bin);
    s->ready_timeout_ms = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : t->ready_timeout_ms;
    s->ready_fd = o->ready_fd;
    s->detached = o->ready_fd >= 0;
    mr_buf_init(&s->report);
    for (size_t i = 0; i < t->n_regions; i++) {
        for (int k = 0; k < n_slots(s, i); k++) {
            struct proc *p = &s->procs[i][k];
            p->s = s;
            p->region = i;
            p->kind = k < UP_SHOP ? (enum up_proc_kind)k : UP_SHOP;
            p->shop = p->kind == UP_SHOP ? (size_t)(k - UP_SHOP) : 0;
            if (p->shop > 0)
                snprintf(p->name, sizeof(p->name), "shop.%u", (unsigned)(p->shop % 100));
            else
                snprintf(p->name, sizeof(p->name), "%s", up_kind_name(p->kind));
            p->start_pending = 1;
            p->log_path = p->kind == UP_SHOP ? up_path_shop_log(s->rundir, t->regions[i].name, p->shop)
                                             : up_path_log(s->rundir, t->regions[i].name, p->kind);
        }
    }
    s->has_wan = up_topology_has_wan(t);
    s->wan.s = s;
    s->wan.kind = UP_WAN;
    s->wan.start_pending = s->has_wan;
    s->wan.log_path = mr_asprintf("%s/logs/wan.log", s->rundir);
    edges_init(s);
    /* Writes to a closed control connection or ready pipe must fail with
     * EPIPE, not kill the supervisor.  libuv resets dispositions in children. */
    signal(SIGPIPE, SIG_IGN);

    rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        mr_buf_printf(&s->report, "cannot create the event loop: %s\n", uv_strerror(rc));
        rc = MR_EIO;
        goto err_report;
    }
    http_server_opts_default(&sopts);
    sopts.server_name = "meridian-up";
    sopts.max_connections = 64;
    rc = http_server_start(&s->loop, "127.0.0.1", 0, &sopts, on_request, s, &s->server, s->err);
    if (rc != 0) {
        mr_buf_printf(&s->report, "control API: %s\n", s->err);
        goto err_after_loop;
    }
    snprintf(s->control_url, sizeof(s->control_url), "http://127.0.0.1:%d",
             http_server_port(s->server));
    http_client_opts_default(&copts);
    if (t->auth) {
        char line[MR_AUTH_NAME_MAX + 100], hash[65];
        mr_auth_hash_hex(t->auth_admin, hash);
        snprintf(line, sizeof(line), "up-admin admin %s", hash);
        if (mr_auth_add(&s->auth, line, "up", s->err) != 0) {
            mr_buf_printf(&s->report, "control API: %s\n", s->err);
            rc = MR_ECONFIG;
            goto err_after_server;
        }
        mr_auth_header(t->auth_admin, s->auth_header, sizeof(s->auth_header));
        copts.headers = s->auth_header;
    }
    rc = http_client_new(&s->loop, &copts, &s->client);
    if (rc != 0) {
        mr_buf_printf(&s->report, "HTTP client: %s\n", mr_strerror(rc));
        goto err_after_server;
    }
    if (t->tls) {
        /* The admin certificate: what the run's etcd members, nodes and
         * shops let in.  The files were made by up_rundir_prepare. */
        struct tls_opts to;
        char *ca = up_path_tls_ca(s->rundir), *crt = up_path_tls_cert(s->rundir, UP_TLS_ADMIN);
        char *key = up_path_tls_key(s->rundir, UP_TLS_ADMIN);
        memset(&to, 0, sizeof(to));
        to.ca_file = ca;
        to.cert_file = crt;
        to.key_file = key;
        rc = tls_ctx_new(&to, 0, &s->tls, s->err);
        mr_free(ca);
        mr_free(crt);
        mr_free(key);
        if (rc == 0) {
            copts.tls = s->tls;
            rc = http_client_new(&s->loop, &copts, &s->tls_client);
            if (rc != 0)
                snprintf(s->err, sizeof(s->err), "%s", mr_strerror(rc));
        }
        if (rc != 0) {
            mr_buf_printf(&s->report, "HTTPS client of the probes: %s\n", s->err);
            http_client_free(s->client);
            s->client = NULL;
            goto err_after_server;
        }
    }
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        uv_signal_init(&s->loop, &s->sigs[i]);
        s->sigs[i].data = s;
        uv_signal_start(&s->sigs[i], on_signal, signals[i]);
        s->n_sigs++;
    }

    s->phase = PH_STARTING;
    s->start_ms = now_ms();
    s->start_deadline_ms = s->start_ms + s->ready_timeout_ms;
    mr_log(MR_LOG_INFO, "up", "starting topology '%s' (%s): %zu regions in %s; control %s",
           t->name, t->source, t->n_regions, s->rundir, s->control_url);
    save_state(s);
    progress(s);

    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s->loop) == UV_EBUSY) {
        uv_walk(&s->loop, close_walk_cb, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&s->loop);
    }
    rc = s->start_failed ? s->fail_code : 0;
    if (rc != 0)
        mr_seterr(err, rc, "%s", s->err);
    goto out;

err_after_server:
    http_server_close(s->server);
    s->server = NULL;
err_after_loop:
    uv_run(&s->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&s->loop);
err_report:
    report(s, 'F', s->report.data);
    mr_seterr(err, rc, "%s", s->report.data);
out:
    if (s->ready_fd >= 0)
        close(s->ready_fd);
    for (size_t i = 0; i < t->n_regions; i++)
        for (int k = 0; k < n_slots(s, i); k++)
            mr_free(s->procs[i][k].log_path);
    mr_free(s->wan.log_path);
    edges_free(s);
    tls_ctx_free(s->tls); /* after the clients: connections hold their own reference */
    mr_buf_close(&s->report);
    mr_free(s->rundir);
    mr_free(s->exe);
    mr_free(s->etcd_bin);
    mr_free(s);
    return rc;
}

/* ---- Run directory ---- */

static int mkdir_p(const char *path, char *err)
{
    char *p = mr_strdup(path);
    int rc = 0;

    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(p, 0755) == -1 && errno != EEXIST) {
                rc = mr_seterr(err, MR_EIO, "mkdir %s: %s", p, strerror(errno));
                break;
            }
            *q = c;
            if (c == '\0')
                break;
        }
    }
    mr_free(p);
    return rc;
}

/* Mode 0600: the configs hold tokens (the shop's fault token, and with
 * [topology] auth the nodes' peer token and the shops' node token). */
static int write_file(const char *path, const char *text, size_t n, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc;
    FILE *f = fd == -1 ? NULL : fdopen(fd, "w");

    if (f == NULL) {
        rc = mr_seterr(err, MR_EIO, "%s: %s", path, strerror(errno));
        if (fd != -1)
            close(fd);
        return rc;
    }
    if (fwrite(text, 1, n, f) != n) {
        fclose(f);
        return mr_seterr(err, MR_EIO, "%s: write failed", path);
    }
    if (fclose(f) != 0)
        return mr_seterr(err, MR_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int up_rundir_prepare(const char *dir, const struct up_topology *t, char **abs, char *err)
{
    char *real = NULL, *path = NULL;
    struct stat st;
    int rc;

    if (*dir == '\0')
        return mr_seterr(err, MR_EINVAL, "--dir: expected a directory, found nothing");
    rc = mkdir_p(dir, err);
    if (rc != 0)
        return rc;
    real = realpath(dir, NULL);
    if (real == NULL)
        return mr_seterr(err, MR_EIO, "%s: %s", dir, strerror(errno));
    path = mr_asprintf("%s/topology.json", real);
    if (stat(path, &st) == 0) {
        json_t *root = json_load_file(path, 0, NULL);
        int pid = (int)json_integer_value(json_object_get(json_object_get(root, "control"), "pid"));
        json_decref(root);
        if (pid > 0 && up_pid_alive(pid))
            rc = mr_seterr(err, MR_EEXIST, "%s is in use by a running topology (supervisor pid "
                           "%d): stop it with `meridian down %s`", real, pid, dir);
        else
            rc = mr_seterr(err, MR_EEXIST, "%s holds a previous run (%s): remove it or choose "
                           "another --dir", real, path);
        goto out;
    }
    mr_free(path);
    path = mr_asprintf("%s/logs", real);
    rc = mkdir_p(path, err);
    /* Certificates first: the configs name their files, and the nodes'
     * --check-config reads them. */
    if (rc == 0)
        rc = up_tls_make(t, real, err);
    if (rc == 0 && up_topology_has_wan(t)) {
        struct mr_buf ini;
        mr_buf_init(&ini);
        up_wan_ini(t, &ini);
        mr_free(path);
        path = mr_asprintf("%s/wan.ini", real);
        rc = write_file(path, ini.data, ini.len, err);
        mr_buf_close(&ini);
    }
    for (size_t i = 0; rc == 0 && i < t->n_regions; i++) {
        struct mr_buf ini;
        mr_free(path);
        path = mr_asprintf("%s/%s/data", real, t->regions[i].name);
        rc = mkdir_p(path, err);
        if (rc != 0)
            break;
        mr_buf_init(&ini);
        rc = up_node_ini(t, i, real, &ini, err);
        mr_free(path);
        path = up_path_node_ini(real, t->regions[i].name);
        if (rc == 0)
            rc = write_file(path, ini.data, ini.len, err);
        mr_buf_reset(&ini);
        up_shop_ini(t, i, real, &ini);
        mr_free(path);
        path = up_path_shop_ini(real, t->regions[i].name);
        if (rc == 0)
            rc = write_file(path, ini.data, ini.len, err);
        mr_buf_close(&ini);
    }
    if (rc == 0)
        rc = up_edges_write(t, real, err);
out:
    mr_free(path);
    if (rc == 0) {
        /* realpath allocates with malloc; hand out an mr_ allocation. */
        *abs = mr_strdup(real);
    }
    free(real);
    return rc;
}

int up_check_node_configs(const struct up_topology *t, const char *rundir, const char *exe,
                          char *err)
{
    for (size_t i = 0; i < t->n_regions; i++) {
        char **argv = up_node_argv(t, i, rundir, exe);
        struct mr_buf out;
        char chunk[512];
        int fds[2], status = 0;
        ssize_t n;
        pid_t pid;

        /* argv: exe node --config PATH; the check goes before --config. */
        argv = mr_realloc(argv, 6 * sizeof(*argv));
        argv[5] = NULL;
        argv[4] = argv[3];
        argv[3] = argv[2];
        argv[2] = mr_strdup("--check-config");
        if (pipe2(fds, O_CLOEXEC) == -1) {
            up_argv_free(argv);
            return mr_seterr(err, MR_EIO, "pipe: %s", strerror(errno));
        }
        fflush(NULL);
        pid = fork();
        if (pid == -1) {
            close(fds[0]);
            close(fds[1]);
            up_argv_free(argv);
            return mr_seterr(err, MR_EIO, "fork: %s", strerror(errno));
        }
        if (pid == 0) {
            dup2(fds[1], STDOUT_FILENO);
            dup2(fds[1], STDERR_FILENO);
            execv(argv[0], argv);
            _exit(127);
        }
        close(fds[1]);
        mr_buf_init(&out);
        while ((n = read(fds[0], chunk, sizeof(chunk))) != 0) {
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1)
                break;
            if (out.len < 4096)
                mr_buf_append(&out, chunk, (size_t)n);
        }
        close(fds[0]);
        while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
            ;
        up_argv_free(argv);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            while (out.len > 0 && out.data[out.len - 1] == '\n')
                out.data[--out.len] = '\0';
            mr_seterr(err, MR_ECONFIG, "%s: region %s: the node refuses its config: %s", t->source,
                      t->regions[i].name, out.len ? out.data : "no message");
            mr_buf_close(&out);
            return MR_ECONFIG;
        }
        mr_buf_close(&out);
    }
    return 0;
}
