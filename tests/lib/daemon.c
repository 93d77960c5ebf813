/* daemon.c -- see daemon.h. */
#include "daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wait.h"

struct first_line {
    int fd;
    char buf[160];
    size_t len;
};

static int line_read(void *arg)
{
    struct first_line *l = arg;
    ssize_t n = read(l->fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len);

    if (n > 0) {
        l->len += (size_t)n;
        l->buf[l->len] = '\0';
    }
    return strchr(l->buf, '\n') != NULL || l->len == sizeof(l->buf) - 1 || n == 0;
}

struct reaped {
    int pid;
    int status;
};

static int reaped(void *arg)
{
    struct reaped *r = arg;

    return waitpid(r->pid, &r->status, WNOHANG) == r->pid;
}

static void show_log(const char *log)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log);
    if (system(cmd) != 0)
        fprintf(stderr, "(could not show %s)\n", log);
}

int daemon_start(char *const argv[], const char *log, struct daemon *d)
{
    struct first_line l = {-1, "", 0};
    int fds[2];

    memset(d, 0, sizeof(*d));
    snprintf(d->log, sizeof(d->log), "%s", log);
    if (pipe(fds) != 0)
        return -1;
    d->pid = fork();
    if (d->pid == 0) {
        int lf = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fds[1], 1);
        if (lf >= 0)
            dup2(lf, 2);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    if (d->pid < 0) {
        close(fds[0]);
        d->pid = 0;
        return -1;
    }
    l.fd = fds[0];
    fcntl(l.fd, F_SETFL, O_NONBLOCK);
    if (wait_for(line_read, &l, 20000) != 0 || sscanf(l.buf, "listening %63s", d->url) != 1) {
        fprintf(stderr, "%s %s did not start: '%s'; its log %s:\n", argv[0], argv[1] ? argv[1] : "",
                l.buf, log);
        close(l.fd);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
        show_log(log);
        return -1;
    }
    close(l.fd);
    return 0;
}

int daemon_stop(struct daemon *d)
{
    struct reaped r = {d->pid, 0};

    if (d->pid <= 0)
        return 0;
    kill(d->pid, SIGTERM);
    if (wait_for(reaped, &r, 15000) != 0) {
        fprintf(stderr, "pid %d still alive 15 s after SIGTERM: SIGKILL\n", d->pid);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
        return -1;
    }
    d->pid = 0;
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
        fprintf(stderr, "pid %d exited with status %d; its log %s:\n", r.pid, r.status, d->log);
        show_log(d->log);
        return -1;
    }
    return 0;
}
