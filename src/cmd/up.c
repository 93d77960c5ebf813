/* up.c -- `meridian up`, `meridian down` and `meridian region`: arguments and
 * wiring only; the launcher itself is src/up/ (see up.h, docs/topology.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../up/up.h"
#include "cmd.h"

#define DOWN_DEFAULT_TIMEOUT_MS 30000

static void up_usage(FILE *f)
{
    fprintf(f,
            "usage: meridian up [TOPOLOGY] --dir RUNDIR [--detach] [--timeout DURATION]\n"
            "                   [--latency-scale X]\n"
            "\n"
            "Start one etcd member and one node per region of TOPOLOGY (an INI file,\n"
            "docs/topology.md; default: the built-in three-region topology, the same as\n"
            "topologies/default.ini), wait until every region is ready, print the endpoints\n"
            "and write RUNDIR/topology.json.  In the foreground, Ctrl-C or SIGTERM stops\n"
            "everything; with --detach, up returns once ready and `meridian down RUNDIR`\n"
            "stops it.\n"
            "\n"
            "  -d, --dir RUNDIR       run directory (created; must not hold a previous run)\n"
            "  -D, --detach           run the supervisor in the background\n"
            "  -t, --timeout DURATION readiness timeout (default: the topology's ready_timeout)\n"
            "  -L, --latency-scale X  multiply every emulated delay by X (default 1, or\n"
            "                         $MERIDIAN_LATENCY_SCALE; 0: no delay)\n"
            "      --sample-topology  print a commented sample topology and exit\n"
            "  -h, --help\n"
            "\n"
            "Environment: MERIDIAN_ETCD  the etcd binary (default: etcd from PATH)\n");
}

/* --detach, parent side: wait for the supervisor's verdict on <fd>. */
static int wait_for_supervisor(int fd, int child, int64_t timeout_ms, const char *rundir)
{
    struct mr_buf msg;
    int64_t deadline = mr_mono_us() / 1000 + timeout_ms;
    char chunk[4096];
    int rc = 1;

    mr_buf_init(&msg);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t left = deadline - mr_mono_us() / 1000;
        ssize_t n;
        int pr;

        if (left <= 0) {
            fprintf(stderr, "meridian up: no word from the supervisor (pid %d) after %lld ms; see "
                    "%s/logs/up.log; stop it with `meridian down %s`\n", child,
                    (long long)timeout_ms, rundir, rundir);
            goto out;
        }
        pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr == -1 && errno == EINTR)
            continue;
        if (pr == -1) {
            fprintf(stderr, "meridian up: poll: %s\n", strerror(errno));
            goto out;
        }
        if (pr == 0)
            continue;
        n = read(fd, chunk, sizeof(chunk));
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        mr_buf_append(&msg, chunk, (size_t)n);
    }
    if (msg.len > 0 && msg.data[0] == 'R') {
        fputs(msg.data + 1, stdout);
        rc = 0;
    } else if (msg.len > 0 && msg.data[0] == 'F') {
        fprintf(stderr, "meridian up: start failed:\n%s", msg.data + 1);
    } else {
        fprintf(stderr, "meridian up: the supervisor (pid %d) exited without a word; see "
                "%s/logs/up.log\n", child, rundir);
    }
out:
    mr_buf_close(&msg);
    return rc;
}

/* --detach, child side: become the background supervisor. */
static int become_daemon(const char *rundir, char *err)
{
    char *log = mr_asprintf("%s/logs/up.log", rundir);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int rc = 0;

    if (setsid() == -1 || in == -1 || out == -1 || dup2(in, STDIN_FILENO) == -1 ||
        dup2(out, STDOUT_FILENO) == -1 || dup2(out, STDERR_FILENO) == -1)
        rc = mr_seterr(err, MR_EIO, "detach (log %s): %s", log, strerror(errno));
    if (in > STDERR_FILENO)
        close(in);
    if (out > STDERR_FILENO)
        close(out);
    mr_free(log);
    return rc;
}

int cmd_up(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"detach", no_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 't'},
        {"sample-topology", no_argument, NULL, 'S'},
        {"latency-scale", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *topo_path = NULL, *etcd = getenv("MERIDIAN_ETCD");
    const char *scale_text = getenv("MERIDIAN_LATENCY_SCALE");
    double scale = 1;
    struct up_topology *t = NULL;
    struct up_run_opts o;
    char err[MR_ERRMSG_LEN] = "";
    char *rundir = NULL;
    int64_t timeout_ms = 0;
    int detach = 0, c, rc = 2;
    int fds[2];
    pid_t pid;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:Dt:L:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'L': scale_text = optarg; break;
        case 'D': detach = 1; break;
        case 't':
            if (mr_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms < 1000) {
                fprintf(stderr, "meridian up: --timeout: expected a duration of at least 1s "
                        "such as 90s, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'S': up_topology_write_sample(stdout); return 0;
        case 'h': up_usage(stdout); return 0;
        default: up_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        topo_path = argv[optind++];
    if (optind < argc || dir == NULL) {
        fprintf(stderr, "meridian up: %s\n", dir == NULL ? "--dir RUNDIR is required"
                                                         : "expected at most one TOPOLOGY");
        up_usage(stderr);
        return 2;
    }
    if (scale_text && *scale_text) {
        char *end;
        scale = strtod(scale_text, &end);
        if (end == scale_text || *end != '\0' || !(scale >= 0) || scale > 100) {
            fprintf(stderr, "meridian up: --latency-scale: expected a number from 0 to 100 such "
                    "as 0.1, found '%s'\n", scale_text);
            return 2;
        }
    }
    mr_log_setup(NULL, "up", MR_LOG_INFO);

    /* Everything that can be checked is checked before the first child runs
     * (and, with --detach, before the fork). */
    if (up_topology_load(topo_path, &t, err) == 0)
        t->latency_scale = scale;
    if (t == NULL || up_topology_assign_ports(t, err) != 0 || up_topology_make_tokens(t, err) != 0 ||
        up_rundir_prepare(dir, t, &rundir, err) != 0 ||
        up_check_node_configs(t, rundir, "/proc/self/exe", err) != 0) {
        fprintf(stderr, "meridian up: %s\n", err);
        goto out;
    }
    memset(&o, 0, sizeof(o));
    o.rundir = rundir;
    /* The node is this very binary: /proc/self/exe is right even when it was
     * started through a relative path or a symlink (tests use the ASan build). */
    o.exe = "/proc/self/exe";
    o.etcd_bin = etcd && *etcd ? etcd : "etcd";
    o.ready_timeout_ms = timeout_ms;
    o.ready_fd = -1;

    if (!detach) {
        rc = up_run(t, &o, err) == 0 ? 0 : 1; /* up_run reported any failure */
        goto out;
    }
    if (pipe2(fds, O_CLOEXEC) == -1) {
        fprintf(stderr, "meridian up: pipe: %s\n", strerror(errno));
        rc = 1;
        goto out;
    }
    fflush(NULL); /* or the child would write the parent's buffered output again */
    pid = fork();
    if (pid == -1) {
        fprintf(stderr, "meridian up: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        rc = 1;
        goto out;
    }
    if (pid == 0) {
        close(fds[0]);
        if (become_daemon(rundir, err) != 0) {
            (void)!write(fds[1], "F", 1);
            (void)!write(fds[1], err, strlen(err));
            (void)!write(fds[1], "\n", 1);
            close(fds[1]);
            rc = 1;
            goto out;
        }
        o.ready_fd = fds[1];
        rc = up_run(t, &o, err) == 0 ? 0 : 1;
        goto out;
    }
    close(fds[1]);
    rc = wait_for_supervisor(fds[0], (int)pid,
                             (timeout_ms ? timeout_ms : t->ready_timeout_ms) + 30000, rundir);
    close(fds[0]);
out:
    mr_free(rundir);
    up_topology_free(t);
    return rc;
}

int cmd_down(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    char err[MR_ERRMSG_LEN] = "";
    int64_t timeout_ms = DOWN_DEFAULT_TIMEOUT_MS;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 't':
            if (mr_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms < 1000) {
                fprintf(stderr, "meridian down: --timeout: expected a duration of at least 1s, "
                        "found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: meridian down RUNDIR [--timeout DURATION]\n\nStop the topology "
                   "started by `meridian up --dir RUNDIR` (waits at most --timeout, default "
                   "30s, for the supervisor; then signals what is left).  Data and logs stay.\n");
            return 0;
        default:
            fprintf(stderr, "usage: meridian down RUNDIR [--timeout DURATION]\n");
            return 2;
        }
    }
    if (dir == NULL && optind < argc)
        dir = argv[optind++];
    if (dir == NULL || optind < argc) {
        fprintf(stderr, "usage: meridian down RUNDIR [--timeout DURATION]\n");
        return 2;
    }
    mr_log_setup(NULL, "down", MR_LOG_INFO);
    if (up_down(dir, timeout_ms, err) != 0) {
        fprintf(stderr, "meridian down: %s\n", err);
        return 1;
    }
    printf("stopped %s\n", dir);
    return 0;
}

static void region_usage(FILE *f)
{
    fprintf(f,
            "usage: meridian region kill|freeze|thaw|restart NAME --dir RUNDIR [--process etcd|node|shop|shop.N]\n"
            "       meridian region partition|heal NAME --dir RUNDIR\n"
            "       meridian region status --dir RUNDIR\n"
            "\n"
            "Act on every process of region NAME of a running `meridian up`, or on one:\n"
            "  kill     SIGKILL; returns once the processes are gone\n"
            "  freeze   SIGSTOP          thaw  SIGCONT\n"
            "  restart  SIGKILL if alive, start again on the same data; returns once ready\n"
            "  partition  cut every WAN link touching the region (blackhole)\n"
            "  heal     restore those links\n"
            "  status   every process with its pid, state and last exit\n");
}

int cmd_region(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"process", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *process = NULL, *action, *name = NULL;
    char err[MR_ERRMSG_LEN] = "";
    struct mr_buf out;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': process = optarg; break;
        case 'h': region_usage(stdout); return 0;
        default: region_usage(stderr); return 2;
        }
    }
    if (optind >= argc || dir == NULL) {
        region_usage(stderr);
        return 2;
    }
    action = argv[optind++];
    if (strcmp(action, "status") != 0) {
        if (optind >= argc) {
            fprintf(stderr, "meridian region %s: expected a region NAME\n", action);
            return 2;
        }
        name = argv[optind++];
    }
    if (optind < argc) {
        region_usage(stderr);
        return 2;
    }
    if (process != NULL && !up_process_name_valid(process)) {
        fprintf(stderr, "meridian region: --process: expected etcd, node, shop or shop.N, found '%s'\n",
                process);
        return 2;
    }
    mr_log_setup(NULL, "region", MR_LOG_INFO);
    mr_buf_init(&out);
    if (name == NULL)
        rc = up_status(dir, &out, err);
    else
        rc = up_region_action(dir, name, action, process, &out, err);
    if (out.len)
        fputs(out.data, stdout);
    mr_buf_close(&out);
    if (rc != 0) {
        fprintf(stderr, "meridian region: %s\n", err);
        return rc == MR_EINVAL ? 2 : 1;
    }
    return 0;
}
