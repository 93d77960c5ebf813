/* cluster.c -- a local topology for integration tests (see cluster.h). */
#include "cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tls/tls.h"

/* This file is linked into unit tests of modules without src/tls and
 * src/http too: weak references, NULL there (and no topology to talk to). */
void http_fetch_set_tls(struct tls_ctx *t);
#pragma weak tls_ctx_new
#pragma weak tls_ctx_free
#pragma weak http_fetch_set_tls

#define UP_TIMEOUT_MS 90000      /* the launcher's own bound is 60 s */
#define ACTION_TIMEOUT_MS 90000  /* restart waits for readiness */
#define DOWN_TIMEOUT_MS 45000

const char *cluster_latency_scale = "0";
char cluster_auth_token[256];
char cluster_tls_ca[PATH_MAX], cluster_tls_cert[PATH_MAX], cluster_tls_key[PATH_MAX];
struct tls_ctx *cluster_tls;

/* A topology with TLS (topology.json "auth": {"ca_file", ...}): make the
 * process-wide client context with the run's admin certificate and hand it
 * to http_fetch, so that every https:// call of api.h and of the tests
 * shows it.  A new run (other files) replaces the context; connections
 * made with the old one keep it. */
static void tls_follow(json_t *auth)
{
    const char *ca = json_string_value(json_object_get(auth, "ca_file"));
    const char *crt = json_string_value(json_object_get(auth, "cert_file"));
    const char *key = json_string_value(json_object_get(auth, "key_file"));
    struct tls_opts o;
    struct tls_ctx *old = cluster_tls, *t = NULL;
    char err[256];

    if (ca == NULL || crt == NULL || key == NULL || tls_ctx_new == NULL || http_fetch_set_tls == NULL)
        return;
    if (cluster_tls != NULL && strcmp(ca, cluster_tls_ca) == 0 && strcmp(crt, cluster_tls_cert) == 0 &&
        strcmp(key, cluster_tls_key) == 0)
        return;
    memset(&o, 0, sizeof(o));
    o.ca_file = ca;
    o.cert_file = crt;
    o.key_file = key;
    if (tls_ctx_new(&o, 0, &t, err) != 0) {
        fprintf(stderr, "cluster: the admin certificate of topology.json: %s\n", err);
        return;
    }
    snprintf(cluster_tls_ca, sizeof(cluster_tls_ca), "%s", ca);
    snprintf(cluster_tls_cert, sizeof(cluster_tls_cert), "%s", crt);
    snprintf(cluster_tls_key, sizeof(cluster_tls_key), "%s", key);
    cluster_tls = t;
    http_fetch_set_tls(t);
    if (old != NULL && tls_ctx_free != NULL)
        tls_ctx_free(old);
}

const char *cluster_bin(void)
{
    const char *b = getenv("MERIDIAN_BIN");
    return b && *b ? b : "build/asan/meridian";
}

int cluster_pid_alive(int pid)
{
    char st;

    if (pid <= 0 || (kill(pid, 0) == -1 && errno != EPERM))
        return 0;
    st = cluster_pid_state(pid);
    return st != 0 && st != 'Z' && st != 'X';
}

/* Read /proc/<pid>/<what> into <buf> (NUL-terminated); its length, or -1. */
static ssize_t read_proc_file(int pid, const char *what, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

char cluster_pid_state(int pid)
{
    char buf[512];
    const char *p;

    if (read_proc_file(pid, "stat", buf, sizeof(buf)) < 0)
        return 0;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

static int cmdline_contains(int pid, const char *needle)
{
    char buf[8192];
    ssize_t n = read_proc_file(pid, "cmdline", buf, sizeof(buf));

    if (n < 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

size_t cluster_find_pids(const char *needle, int *pids, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == getpid())
            continue;
        if (cmdline_contains((int)pid, needle) && cluster_pid_alive((int)pid))
            pids[n++] = (int)pid;
    }
    closedir(d);
    return n;
}

int cluster_run(char *const argv[], int64_t timeout_ms)
{
    int64_t deadline = test_now_ms() + test_timeout_ms(timeout_ms);
    int status;
    pid_t pid, r;

    fflush(NULL);
    pid = fork();
    if (pid == -1) {
        fprintf(stderr, "cluster_run: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "cluster_run: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r == -1 && errno != EINTR) {
            fprintf(stderr, "cluster_run: waitpid: %s\n", strerror(errno));
            return -1;
        }
        if (test_now_ms() >= deadline) {
            fprintf(stderr, "cluster_run: %s %s still running after %lld ms: SIGKILL\n", argv[0],
                    argv[1] ? argv[1] : "", (long long)test_timeout_ms(timeout_ms));
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        test_sleep_ms(5);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "cluster_run: %s %s killed by signal %d\n", argv[0], argv[1] ? argv[1] : "",
            WTERMSIG(status));
    return -1;
}

static void copy_str(char *dst, size_t n, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, n, "%s", s ? s : "");
}

static void remember(struct cluster *c, int pid)
{
    if (pid <= 0)
        return;
    for (size_t i = 0; i < c->n_seen; i++)
        if (c->seen[i] == pid)
            return;
    if (c->n_seen < CLUSTER_MAX_PIDS)
        c->seen[c->n_seen++] = pid;
}

static void read_proc(struct cluster *c, struct cluster_proc *p, json_t *o)
{
    json_t *e = json_object_get(o, "last_exit");

    memset(p, 0, sizeof(*p));
    p->pid = (int)json_integer_value(json_object_get(o, "pid"));
    copy_str(p->state, sizeof(p->state), json_object_get(o, "state"));
    p->ready = json_is_true(json_object_get(o, "ready"));
    if (json_is_object(e)) {
        p->last_exit_pid = (int)json_integer_value(json_object_get(e, "pid"));
        copy_str(p->last_exit_signal, sizeof(p->last_exit_signal), json_object_get(e, "signal"));
        p->last_exit_status = (int)json_integer_value(json_object_get(e, "status"));
        p->last_exit_expected = json_is_true(json_object_get(e, "expected"));
    }
    remember(c, p->pid);
}

int cluster_refresh(struct cluster *c)
{
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *root, *regions, *r, *control;
    size_t i;

    snprintf(path, sizeof(path), "%s/topology.json", c->rundir);
    if (access(path, F_OK) != 0)
        return -1; /* not written yet: quietly, conditions poll for it */
    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "cluster: %s: %s\n", path, jerr.text);
        return -1;
    }
    copy_str(c->state, sizeof(c->state), json_object_get(root, "state"));
    control = json_object_get(root, "control");
    c->control_pid = (int)json_integer_value(json_object_get(control, "pid"));
    copy_str(c->control_url, sizeof(c->control_url), json_object_get(control, "url"));
    copy_str(cluster_auth_token, sizeof(cluster_auth_token),
             json_object_get(json_object_get(root, "auth"), "token"));
    tls_follow(json_object_get(root, "auth"));
    remember(c, c->control_pid);
    regions = json_object_get(root, "regions");
    c->n_regions = 0;
    json_array_foreach(regions, i, r) {
        struct cluster_region *cr;
        if (c->n_regions == CLUSTER_MAX_REGIONS)
            break;
        cr = &c->regions[c->n_regions++];
        copy_str(cr->name, sizeof(cr->name), json_object_get(r, "name"));
        copy_str(cr->node_url, sizeof(cr->node_url),
                 json_object_get(json_object_get(r, "node"), "url"));
        copy_str(cr->etcd_url, sizeof(cr->etcd_url),
                 json_object_get(json_object_get(r, "etcd"), "client_url"));
        read_proc(c, &cr->node, json_object_get(r, "node"));
        read_proc(c, &cr->etcd, json_object_get(r, "etcd"));
    }
    json_decref(root);
    return 0;
}

struct cluster_region *cluster_region(struct cluster *c, const char *name)
{
    for (size_t i = 0; i < c->n_regions; i++)
        if (strcmp(c->regions[i].name, name) == 0)
            return &c->regions[i];
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (remove(path) != 0)
        fprintf(stderr, "cluster: remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void cluster_free(struct cluster *c, int remove_dir)
{
    if (remove_dir && getenv("MR_TEST_KEEP") == NULL)
        nftw(c->rundir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "cluster: run directory kept: %s (logs in %s/logs)\n", c->rundir,
                c->rundir);
    free(c->rundir);
    free(c);
}

static int start(const char *topology, const char *ini, struct cluster **out)
{
    char tmpl[PATH_MAX], timeout[32], topo_path[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    struct cluster *c;
    char *argv[12];
    int argc = 0, rc;

    snprintf(tmpl, sizeof(tmpl), "%s/mr-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "cluster: mkdtemp %s: %s\n", tmpl, strerror(errno));
        return -1;
    }
    c = calloc(1, sizeof(*c));
    c->rundir = realpath(tmpl, NULL);
    if (c->rundir == NULL)
        c->rundir = strdup(tmpl);
    if (ini != NULL) {
        FILE *f;
        snprintf(topo_path, sizeof(topo_path), "%s/topology.ini", c->rundir);
        f = fopen(topo_path, "w");
        if (f == NULL || fputs(ini, f) == EOF || fclose(f) != 0) {
            fprintf(stderr, "cluster: write %s: %s\n", topo_path, strerror(errno));
            cluster_free(c, 1);
            return -1;
        }
        topology = topo_path;
    }
    /* The launcher's readiness bound scales with the tests'. */
    snprintf(timeout, sizeof(timeout), "%llds", (long long)(test_timeout_ms(60000) / 1000));
    argv[argc++] = (char *)cluster_bin();
    argv[argc++] = "up";
    if (topology)
        argv[argc++] = (char *)topology;
    argv[argc++] = "--dir";
    argv[argc++] = c->rundir;
    argv[argc++] = "--detach";
    argv[argc++] = "--timeout";
    argv[argc++] = timeout;
    /* Distance only where a test asks for it: the rest stay fast. */
    argv[argc++] = "--latency-scale";
    argv[argc++] = (char *)cluster_latency_scale;
    argv[argc] = NULL;
    rc = cluster_run(argv, UP_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "cluster: `%s up --dir %s --detach` failed (%d)\n", cluster_bin(),
                c->rundir, rc);
        (void)cluster_stop(c); /* whatever was started, and the leak check */
        return -1;
    }
    if (cluster_refresh(c) != 0) {
        (void)cluster_stop(c);
        return -1;
    }
    *out = c;
    return 0;
}

int cluster_start(const char *topology, struct cluster **out)
{
    return start(topology, NULL, out);
}

int cluster_start_text(const char *ini, struct cluster **out)
{
    return start(NULL, ini, out);
}

int cluster_region_action(struct cluster *c, const char *region, const char *action,
                          const char *process)
{
    char *argv[10];
    int argc = 0, rc;

    argv[argc++] = (char *)cluster_bin();
    argv[argc++] = "region";
    argv[argc++] = (char *)action;
    argv[argc++] = (char *)region;
    argv[argc++] = "--dir";
    argv[argc++] = c->rundir;
    if (process) {
        argv[argc++] = "--process";
        argv[argc++] = (char *)process;
    }
    argv[argc] = NULL;
    rc = cluster_run(argv, ACTION_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "cluster: `meridian region %s %s%s%s` failed (%d)\n", action, region,
                process ? " --process " : "", process ? process : "", rc);
        return -1;
    }
    return cluster_refresh(c);
}

/* Sanitizer reports in RUNDIR/logs/ *.log (the supervisor's and every
 * child's): each one found is printed; returns how many files had one. */
static int scan_logs(const char *rundir)
{
    static const char *const patterns[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                           "runtime error:", "ERROR: UndefinedBehaviorSanitizer"};
    char dir[PATH_MAX], path[PATH_MAX * 2], line[4096];
    struct dirent *e;
    DIR *d;
    int bad = 0;

    snprintf(dir, sizeof(dir), "%s/logs", rundir);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        FILE *f;
        int lineno = 0, found = 0;
        if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (!found && fgets(line, sizeof(line), f) != NULL) {
            lineno++;
            for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
                if (strstr(line, patterns[i]) != NULL) {
                    fprintf(stderr, "cluster: SANITIZER: %s:%d: %s", path, lineno, line);
                    found = 1;
                    break;
                }
            }
        }
        fclose(f);
        bad += found;
    }
    closedir(d);
    return bad;
}

/* Print the last <lines> lines of <path> that <keep> accepts (NULL: all)
 * under <title>. */
static void print_tail(const char *path, int lines, int (*keep)(const char *line), const char *title)
{
    char line[1024];
    char **ring = calloc((size_t)lines, sizeof(*ring));
    long seen = 0;
    FILE *f;

    if (ring == NULL || (f = fopen(path, "r")) == NULL) {
        free(ring);
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (keep && !keep(line))
            continue;
        free(ring[seen % lines]);
        ring[seen++ % lines] = strdup(line);
    }
    fclose(f);
    fprintf(stderr, "---- %s %s\n", title, path);
    for (long i = seen > lines ? seen - lines : 0; i < seen; i++) {
        fputs(ring[i % lines] ? ring[i % lines] : "", stderr);
        free(ring[i % lines]);
    }
    free(ring);
}

static int is_error_line(const char *line)
{
    return strstr(line, " level=E ") != NULL || strstr(line, " level=F ") != NULL;
}

/* print_tail for each log of RUNDIR/logs whose name ends with <suffix>. */
static void each_log(const struct cluster *c, const char *suffix, int lines, int (*keep)(const char *),
                     const char *title)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof(dir), "%s/logs", c->rundir);
    d = opendir(dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), m = strlen(suffix);
        if (n < m || strcmp(e->d_name + n - m, suffix) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        print_tail(path, lines, keep, title);
    }
    if (d)
        closedir(d);
}

void cluster_print_log_tails(const struct cluster *c, const char *suffix, int lines)
{
    char title[64];

    snprintf(title, sizeof(title), "the last %d lines of", lines);
    each_log(c, suffix, lines, NULL, title);
    /* Last, next to the failure: CI keeps the ends of long outputs, and a
     * busy log's tail can push a node's fatal line out of them. */
    each_log(c, suffix, 5, is_error_line, "the last 5 error lines (level E or F) of");
    /* A full disk shows in SQLite only as "disk I/O error". */
    fprintf(stderr, "--- %" PRId64 " MiB free on the filesystem of %s\n", mr_disk_free_mib(c->rundir), c->rundir);
}

/* A node that was stopped must have exited 0: anything else (a sanitizer's
 * exit code, a crash on the way out) is a bug worth failing for. */
static int check_exits(struct cluster *c)
{
    int bad = 0;

    if (cluster_refresh(c) != 0)
        return 0;
    for (size_t i = 0; i < c->n_regions; i++) {
        const struct cluster_proc *p = &c->regions[i].node;
        if (strcmp(p->state, "stopped") == 0 && (p->last_exit_status != 0 || p->last_exit_signal[0])) {
            char how[48];
            if (p->last_exit_signal[0])
                snprintf(how, sizeof(how), "was killed by %s", p->last_exit_signal);
            else
                snprintf(how, sizeof(how), "exited with status %d", p->last_exit_status);
            fprintf(stderr, "cluster: region %s: node pid %d %s when stopped (see %s/logs/%s-node.log)\n",
                    c->regions[i].name, p->last_exit_pid, how, c->rundir, c->regions[i].name);
            bad++;
        }
    }
    return bad;
}

int cluster_stop(struct cluster *c)
{
    char *argv[] = {(char *)cluster_bin(), "down", NULL, "--timeout", NULL, NULL};
    char timeout[32];
    int left[CLUSTER_MAX_PIDS];
    size_t n_left = 0;
    int rc = 0;

    if (c == NULL)
        return 0;
    argv[2] = c->rundir;
    snprintf(timeout, sizeof(timeout), "%llds", (long long)(test_timeout_ms(30000) / 1000));
    argv[4] = timeout;
    /* A run that never wrote topology.json has nothing to stop. */
    if (c->n_seen > 0 || access(c->rundir, F_OK) == 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/topology.json", c->rundir);
        if (access(path, F_OK) == 0) {
            (void)cluster_refresh(c); /* the latest pids, for the leak check */
            if (cluster_run(argv, DOWN_TIMEOUT_MS) != 0) {
                fprintf(stderr, "cluster: `meridian down %s` failed\n", c->rundir);
                rc = -1;
            }
        }
    }
    for (size_t i = 0; i < c->n_seen; i++)
        if (cluster_pid_alive(c->seen[i]) && cmdline_contains(c->seen[i], c->rundir))
            left[n_left++] = c->seen[i];
    if (n_left == 0)
        n_left = cluster_find_pids(c->rundir, left, CLUSTER_MAX_PIDS);
    if (scan_logs(c->rundir) > 0 || check_exits(c) > 0)
        rc = -1;
    if (n_left > 0) {
        fprintf(stderr, "cluster: LEAK: %zu processes of %s are still alive after "
                "`meridian down`:", n_left, c->rundir);
        for (size_t i = 0; i < n_left; i++) {
            fprintf(stderr, " %d", left[i]);
            kill(left[i], SIGKILL);
        }
        fprintf(stderr, " (killed now)\n");
        rc = -1;
    }
    cluster_free(c, rc == 0);
    return rc;
}
