/* pgrun.c -- drive bench/pg.sh and read its lines (see pgrun.h). */
#include "pgrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"

/* Run <argv>, collect its stdout in <out> (stderr passes through), wait.
 * Returns the exit status, or -1 when it could not run or died of a signal. */
static int run_capture(char *const argv[], struct mr_buf *out)
{
    int fds[2], status;
    char chunk[4096];
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) == -1)
        return -1;
    pid = fork();
    if (pid == -1) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) == -1)
            _exit(127);
        close(fds[1]);
        execv(argv[0], argv);
        fprintf(stderr, "meridian bench: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t n = read(fds[0], chunk, sizeof(chunk));
        if (n > 0)
            mr_buf_append(out, chunk, (size_t)n);
        else if (n == 0 || errno != EINTR)
            break;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The line of <out> that starts with <prefix>, copied into <line>; 0 or -1. */
static int find_line(const struct mr_buf *out, const char *prefix, char *line, size_t cap)
{
    const char *p = out->data ? out->data : "";
    size_t plen = strlen(prefix);

    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= plen && memcmp(p, prefix, plen) == 0) {
            snprintf(line, cap, "%.*s", (int)len, p);
            return 0;
        }
        p += len + (end ? 1 : 0);
    }
    return -1;
}

/* The value of " <key>=" in <line>, copied into <val>; 0 or -1. */
static int field(const char *line, const char *key, char *val, size_t cap)
{
    size_t klen = strlen(key);

    for (const char *p = strchr(line, ' '); p; p = strchr(p + 1, ' ')) {
        if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '=') {
            const char *v = p + 2 + klen;
            snprintf(val, cap, "%.*s", (int)strcspn(v, " "), v);
            return 0;
        }
    }
    return -1;
}

static double field_double(const char *line, const char *key, int *ok)
{
    char v[64], *end;
    double d;

    if (field(line, key, v, sizeof(v)) != 0) {
        *ok = 0;
        return 0;
    }
    d = strtod(v, &end);
    if (end == v || *end != '\0')
        *ok = 0;
    return d;
}

int pgrun_start(struct pgrun *p, const char *script, const char *dir, char *err)
{
    char *argv[] = {(char *)script, "start", (char *)dir, NULL};
    char line[512];
    struct mr_buf out;
    int rc;

    memset(p, 0, sizeof(*p));
    p->script = mr_strdup(script);
    p->dir = mr_strdup(dir);
    mr_buf_init(&out);
    rc = run_capture(argv, &out);
    if (rc != 0 || find_line(&out, "pg started ", line, sizeof(line)) != 0) {
        mr_buf_close(&out);
        return mr_seterr(err, MR_EUNAVAIL, "`%s start %s` failed (exit %d; see its messages above)",
                         script, dir, rc);
    }
    mr_buf_close(&out);
    if (field(line, "version", p->version, sizeof(p->version)) != 0)
        snprintf(p->version, sizeof(p->version), "?");
    p->started = 1;
    return 0;
}

int pgrun_measure(struct pgrun *p, enum sqlbench_fig f, uint64_t seconds, size_t clients,
                  struct sqlbench_sample *out, char *err)
{
    const char *figure = f == SQLBENCH_PG_ORDER ? "order" : "update";
    char secs[24], cl[24], line[512];
    char *argv[] = {p->script, "run", p->dir, (char *)figure, secs, cl, NULL};
    struct mr_buf buf;
    int rc, ok = 1;

    memset(out, 0, sizeof(*out));
    out->cpu_nodes = out->cpu_etcd = out->cpu_gen = -1;
    if (!p->started)
        return mr_seterr(err, MR_EINVAL, "PostgreSQL is not started");
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)(seconds ? seconds : 1));
    snprintf(cl, sizeof(cl), "%zu", clients);
    mr_buf_init(&buf);
    rc = run_capture(argv, &buf);
    if (rc != 0 || find_line(&buf, "pg result ", line, sizeof(line)) != 0) {
        mr_buf_close(&buf);
        snprintf(out->error, sizeof(out->error), "pg.sh run %s failed (exit %d)", figure, rc);
        return mr_seterr(err, MR_EUNAVAIL, "`pg.sh run %s` failed (exit %d; see its messages above)",
                         figure, rc);
    }
    mr_buf_close(&buf);
    out->rate = field_double(line, "tps", &ok);
    out->p50_ms = field_double(line, "p50_ms", &ok);
    out->p99_ms = field_double(line, "p99_ms", &ok);
    out->ok = (uint64_t)field_double(line, "txns", &ok);
    out->failed = (uint64_t)field_double(line, "failed", &ok);
    if (!ok) {
        snprintf(out->error, sizeof(out->error), "unreadable pg.sh line: %.150s", line);
        return mr_seterr(err, MR_EPROTO, "pg.sh: unreadable line '%s'", line);
    }
    out->max_ms = 0;
    out->measured = 1;
    return 0;
}

void pgrun_stop(struct pgrun *p)
{
    if (p->started) {
        char *argv[] = {p->script, "stop", p->dir, NULL};
        struct mr_buf out;
        mr_buf_init(&out);
        if (run_capture(argv, &out) != 0)
            fprintf(stderr, "meridian bench: `%s stop %s` failed: PostgreSQL may still run\n", p->script,
                    p->dir);
        mr_buf_close(&out);
        p->started = 0;
    }
    mr_free(p->script);
    p->script = NULL;
    mr_free(p->dir);
    p->dir = NULL;
}
