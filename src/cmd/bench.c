/* bench.c -- `meridian bench`: the benchmarks of the global SQL database
 * (docs/benchmarks.md), with PostgreSQL + one synchronous standby measured
 * in the same invocation for comparison.
 *
 * Shape of a run: a fresh local topology (three regions, no emulated delay)
 * is started, loaded, measured figure by figure and stopped; then the two
 * shared transactions are measured on PostgreSQL (started once, before the
 * first run, by bench/pg.sh).  Meridian and PostgreSQL runs alternate, so
 * noise from the shared machine falls on both alike.  Every figure is
 * reported as the median over the runs (src/bench/report.h).
 *
 * Cleanup: the topology's supervisor is detached (its own session) and the
 * PostgreSQL servers are daemons, so a Ctrl-C reaching only us would leave
 * them running.  The command therefore forks: the child does the work, the
 * parent only waits (signals blocked, taken with sigwaitinfo and forwarded)
 * and afterwards stops whatever the child left in the work directory,
 * whether it finished, failed, crashed or was interrupted.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench/edgebench.h"
#include "../bench/tlsbench.h"
#include "../bench/storebench.h"
#include "../bench/gtbench.h"
#include "../bench/pgrun.h"
#include "../bench/report.h"
#include "../bench/sqlbench.h"
#include "../bench/topo.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"
#include "cmd.h"

#define SELF_EXE "/proc/self/exe"

struct bench_opts {
    size_t runs;
    int64_t duration_ms, warmup_ms;
    size_t vis_writes;
    int quick, no_pg, fail_on_miss;
    int wanted[SQLBENCH_N_FIGS];
    const char *json_path;
    const char *topology;
    const char *attach_dir;    /* --dir: measure a running topology */
    char pg_script[PATH_MAX];  /* "" when PostgreSQL is skipped */
    char command[512];
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian bench [--runs N] [--quick] [--duration 10s] [--warmup 1s]\n"
            "                      [--visibility-writes 300] [--only FIGURES] [--json FILE]\n"
            "                      [--no-pg] [--pg-script PATH] [--topology FILE] [--dir RUNDIR]\n"
            "                      [--fail-on-miss]\n"
            "       meridian bench edge|tables|store|tls [--help]\n\n"
            "Measure the global SQL database on three local regions and PostgreSQL with one\n"
            "synchronous standby, and print the median of every figure over the runs.  The\n"
            "edge against HAProxy, the global tables against Redis, their store and the TLS engine alone\n"
            "have their own subcommands.\n\n"
            "  --runs N            runs of every figure (default 3; 1 with --quick)\n"
            "  --quick             2 s per figure, 100 visibility writes, 1 run\n"
            "  --duration D        measured time of each load (default 10s)\n"
            "  --warmup D          unmeasured time before each load (default 1s)\n"
            "  --visibility-writes N  sequential writes of the visibility probe (default 300)\n"
            "  --only LIST         comma-separated figures: write_1 write_16 write_64 read_64\n"
            "                      visibility order_64 pg_update pg_order (default: all)\n"
            "  --json FILE         also write every run, median, ratio and target as JSON\n"
            "  --no-pg             skip PostgreSQL\n"
            "  --pg-script PATH    the PostgreSQL driver (default: bench/pg.sh of the source tree\n"
            "                      the binary was built in)\n"
            "  --topology FILE     topology for `meridian up` (default: the built-in three regions)\n"
            "  --dir RUNDIR        measure the topology already running in RUNDIR (not started,\n"
            "                      loaded again or stopped; for profiling)\n"
            "  --fail-on-miss      exit 3 when a target of the issue is missed\n\n"
            "Exit: 0 measured, 1 a figure could not be measured, 2 bad usage, 3 a target missed\n"
            "(with --fail-on-miss), 128+N interrupted by signal N.\n");
}

/* bench/pg.sh next to the source tree of this binary (build/meridian ->
 * ../bench/pg.sh); "" if there is none. */
static void default_pg_script(char *out, size_t cap)
{
    char exe[PATH_MAX], *slash;
    ssize_t n = readlink(SELF_EXE, exe, sizeof(exe) - 1);

    out[0] = '\0';
    if (n <= 0)
        return;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    if (snprintf(out, cap, "%s/../bench/pg.sh", exe) >= (int)cap || access(out, X_OK) != 0)
        out[0] = '\0';
}

static int parse_only(const char *list, int *wanted)
{
    char *copy = mr_strdup(list), *save = NULL;
    int rc = 0;

    memset(wanted, 0, sizeof(int) * SQLBENCH_N_FIGS);
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int f = sqlbench_fig_by_name(tok);
        if (f < 0) {
            fprintf(stderr, "meridian bench: --only: unknown figure '%s'\n", tok);
            rc = -1;
            break;
        }
        wanted[f] = 1;
    }
    mr_free(copy);
    return rc;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        {"runs", required_argument, NULL, 'r'},       {"quick", no_argument, NULL, 'q'},
        {"duration", required_argument, NULL, 'd'},   {"warmup", required_argument, NULL, 'w'},
        {"visibility-writes", required_argument, NULL, 'v'},
        {"only", required_argument, NULL, 'o'},       {"json", required_argument, NULL, 'j'},
        {"no-pg", no_argument, NULL, 'n'},            {"pg-script", required_argument, NULL, 'p'},
        {"topology", required_argument, NULL, 't'},   {"dir", required_argument, NULL, 'D'},
        {"fail-on-miss", no_argument, NULL, 'F'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int64_t runs = -1, duration = -1, warmup = -1, vis = -1, v;
    const char *pg_script = NULL;
    size_t len = 0;
    int opt;

    memset(o, 0, sizeof(*o));
    for (int i = 0; i < SQLBENCH_N_FIGS; i++)
        o->wanted[i] = 1;
    for (int i = 0; i < argc && len < sizeof(o->command) - 1; i++) {
        int w = snprintf(o->command + len, sizeof(o->command) - len, "%s%s", i ? " " : "meridian ", argv[i]);
        if (w > 0)
            len += (size_t)w;
    }
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            if (mr_parse_i64(optarg, 1, REPORT_MAX_RUNS, &runs) != 0) {
                fprintf(stderr, "meridian bench: --runs: expected 1 to %d, found '%s'\n", REPORT_MAX_RUNS, optarg);
                return 2;
            }
            break;
        case 'q': o->quick = 1; break;
        case 'd':
            if (mr_parse_duration_ms(optarg, &duration) != 0 || duration < 1000 || duration > 3600 * 1000) {
                fprintf(stderr, "meridian bench: --duration: expected 1s to 1h, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (mr_parse_duration_ms(optarg, &warmup) != 0 || warmup > 600 * 1000) {
                fprintf(stderr, "meridian bench: --warmup: expected 0 to 10m, found '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v':
            if (mr_parse_i64(optarg, 1, 100000, &vis) != 0) {
                fprintf(stderr, "meridian bench: --visibility-writes: expected 1 to 100000, found '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            if (parse_only(optarg, o->wanted) != 0)
                return 2;
            break;
        case 'j': o->json_path = optarg; break;
        case 'n': o->no_pg = 1; break;
        case 'p': pg_script = optarg; break;
        case 't': o->topology = optarg; break;
        case 'D': o->attach_dir = optarg; break;
        case 'F': o->fail_on_miss = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meridian bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    o->runs = runs > 0 ? (size_t)runs : o->quick ? 1 : 3;
    o->duration_ms = duration > 0 ? duration : o->quick ? 2000 : 10000;
    o->warmup_ms = warmup >= 0 ? warmup : o->quick ? 500 : 1000;
    v = vis > 0 ? vis : o->quick ? 100 : 300;
    o->vis_writes = (size_t)v;
    if (o->no_pg) {
        o->wanted[SQLBENCH_PG_UPDATE] = o->wanted[SQLBENCH_PG_ORDER] = 0;
    } else if (o->wanted[SQLBENCH_PG_UPDATE] || o->wanted[SQLBENCH_PG_ORDER]) {
        if (pg_script)
            snprintf(o->pg_script, sizeof(o->pg_script), "%s", pg_script);
        else
            default_pg_script(o->pg_script, sizeof(o->pg_script));
        if (o->pg_script[0] == '\0' || access(o->pg_script, X_OK) != 0) {
            fprintf(stderr, "meridian bench: no executable PostgreSQL driver%s%s: use --pg-script "
                            "PATH/bench/pg.sh or --no-pg\n", pg_script ? " at " : "", pg_script ? pg_script : "");
            return 2;
        }
    }
    return -1; /* go on */
}

static void progress(size_t run, size_t runs, enum sqlbench_fig f, const struct sqlbench_sample *s)
{
    const struct sqlbench_fig_info *info = sqlbench_fig_info(f);

    if (!s->measured) {
        printf("run %zu/%zu  %-40s not measured: %s\n", run + 1, runs, info->label, s->error);
        return;
    }
    if (f == SQLBENCH_VISIBILITY)
        printf("run %zu/%zu  %-40s %6.0f samples  p50 %6.2f ms  p99 %6.2f ms", run + 1, runs, info->label,
               s->rate, s->p50_ms, s->p99_ms);
    else
        printf("run %zu/%zu  %-40s %8.0f/s  p50 %6.2f ms  p99 %6.2f ms", run + 1, runs, info->label, s->rate,
               s->p50_ms, s->p99_ms);
    if (s->cpu_nodes >= 0)
        printf("  cores: nodes %.2f etcd %.2f gen %.2f", s->cpu_nodes, s->cpu_etcd, s->cpu_gen);
    if (s->failed)
        printf("  (%llu failed: %s)", (unsigned long long)s->failed, s->error);
    printf("\n");
}

/* One run of the Meridian figures: a fresh topology in <base>/run-N unless
 * attached.  Returns the number of figures that could not be measured, or
 * -1 if the topology could not be started or loaded. */
static int run_meridian(const struct bench_opts *o, const char *base, size_t run, struct report *rep)
{
    struct sqlbench_opts so = {(uint64_t)o->duration_ms, (uint64_t)o->warmup_ms, o->vis_writes};
    char err[MR_ERRMSG_LEN];
    struct topo t;
    int failures = 0, rc;

    if (o->attach_dir) {
        rc = topo_attach(&t, o->attach_dir, err);
    } else {
        char *dir = mr_asprintf("%s/run-%zu", base, run + 1);
        /* The issue measures three local regions with no emulated delay. */
        rc = topo_up(&t, SELF_EXE, o->topology, dir, "0", 0, err);
        mr_free(dir);
        if (rc == 0)
            t.remove_dir = 1; /* ours: topo_down removes it */
    }
    if (rc != 0) {
        fprintf(stderr, "meridian bench: run %zu: %s\n", run + 1, err);
        return -1;
    }
    rc = sqlbench_prepare(&t, err);
    if (rc != 0) {
        fprintf(stderr, "meridian bench: run %zu: %s\n", run + 1, err);
        failures = -1;
        goto out;
    }
    for (int f = 0; f < SQLBENCH_N_FIGS; f++) {
        struct sqlbench_sample *s = &rep->s[f][run];
        if (!o->wanted[f] || sqlbench_fig_info(f)->is_pg)
            continue;
        if (sqlbench_run(&t, f, &so, 0x5eed0000u + run * 64 + (uint64_t)f, s, err) != 0) {
            snprintf(s->error, sizeof(s->error), "%s", err);
            failures++;
        }
        progress(run, o->runs, f, s);
    }
out:
    if (o->attach_dir)
        topo_detach(&t);
    else
        topo_down(&t, SELF_EXE);
    return failures;
}

/* The work itself; runs in the child.  Returns the exit code. */
static int bench_main(const struct bench_opts *o, const char *base)
{
    struct report *rep = mr_calloc(1, sizeof(*rep));
    struct pgrun pg;
    char err[MR_ERRMSG_LEN];
    int any_meridian = 0, any_pg = o->wanted[SQLBENCH_PG_UPDATE] || o->wanted[SQLBENCH_PG_ORDER];
    int failures = 0, missed, pg_up = 0;
    uint64_t pg_seconds = (uint64_t)(o->duration_ms + 500) / 1000;

    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up when piped, too */
    memset(&pg, 0, sizeof(pg));
    rep->set.runs = o->runs;
    rep->set.duration_ms = (uint64_t)o->duration_ms;
    rep->set.warmup_ms = (uint64_t)o->warmup_ms;
    rep->set.vis_writes = o->vis_writes;
    rep->set.quick = o->quick;
    snprintf(rep->set.command, sizeof(rep->set.command), "%s", o->command);
    memcpy(rep->wanted, o->wanted, sizeof(rep->wanted));
    for (int f = 0; f < SQLBENCH_N_FIGS; f++)
        if (o->wanted[f] && !sqlbench_fig_info(f)->is_pg)
            any_meridian = 1;

    printf("meridian bench: %zu run%s; %.1f s per load after %.1f s warm-up; %zu visibility writes; "
           "%ld cores\n", o->runs, o->runs == 1 ? "" : "s", (double)o->duration_ms / 1000.0,
           (double)o->warmup_ms / 1000.0, o->vis_writes, sysconf(_SC_NPROCESSORS_ONLN));
    if (any_pg) {
        char *dir = mr_asprintf("%s/pg", base);
        printf("== PostgreSQL: primary + one synchronous standby (%s)\n", o->pg_script);
        if (pgrun_start(&pg, o->pg_script, dir, err) == 0) {
            pg_up = 1;
            snprintf(rep->set.pg_version, sizeof(rep->set.pg_version), "%s", pg.version);
            printf("   PostgreSQL %s ready, standby synchronous\n", pg.version);
        } else {
            fprintf(stderr, "meridian bench: PostgreSQL: %s\n", err);
            failures++;
        }
        mr_free(dir);
    }
    for (size_t run = 0; run < o->runs; run++) {
        if (any_meridian) {
            printf("== run %zu/%zu: Meridian, %s\n", run + 1, o->runs,
                   o->attach_dir ? o->attach_dir : "a fresh local topology (3 regions, no emulated delay)");
            int rc = run_meridian(o, base, run, rep);
            failures += rc < 0 ? 1 : rc;
        }
        if (pg_up) {
            printf("== run %zu/%zu: PostgreSQL with a synchronous standby, pgbench -M prepared -j 2\n",
                   run + 1, o->runs);
            for (int f = SQLBENCH_PG_UPDATE; f <= SQLBENCH_PG_ORDER; f++) {
                if (!o->wanted[f])
                    continue;
                if (pgrun_measure(&pg, f, pg_seconds, sqlbench_fig_info(f)->clients, &rep->s[f][run], err) != 0) {
                    fprintf(stderr, "meridian bench: %s\n", err);
                    failures++;
                }
                progress(run, o->runs, f, &rep->s[f][run]);
            }
        }
    }
    pgrun_stop(&pg); /* stops it if started; frees the strings either way */

    missed = report_print(rep, stdout);
    printf("\nmachine: %ld cores shared by 3 etcd members, 3 nodes, the load generator and PostgreSQL;"
           " medians of %zu run%s\n", sysconf(_SC_NPROCESSORS_ONLN), o->runs, o->runs == 1 ? "" : "s");
    if (o->json_path) {
        if (report_write_json(rep, o->json_path, err) != 0) {
            fprintf(stderr, "meridian bench: %s\n", err);
            failures++;
        } else {
            printf("results written to %s\n", o->json_path);
        }
    }
    mr_free(rep);
    if (failures)
        return 1;
    return o->fail_on_miss && missed ? 3 : 0;
}


/* Stop whatever the child left in <base>: topologies in run-* (the child
 * removes each after stopping it), the PostgreSQL cluster in pg/.  Removes
 * <base> unless <keep>.  Runs in the parent, after the child is gone. */
static void cleanup(const struct bench_opts *o, const char *base, int keep)
{
    DIR *d = opendir(base);
    struct dirent *e;
    struct stat st;
    int left = 0;

    while (d && (e = readdir(d)) != NULL) {
        char *path;
        if (strncmp(e->d_name, "run-", 4) == 0) {
            path = mr_asprintf("%s/%s/topology.json", base, e->d_name);
            if (stat(path, &st) == 0) {
                char *dir = mr_asprintf("%s/%s", base, e->d_name);
                char *argv[] = {SELF_EXE, "down", dir, NULL};
                fprintf(stderr, "meridian bench: stopping the topology left in %s\n", dir);
                if (topo_run(argv, 0) != 0) {
                    fprintf(stderr, "meridian bench: `meridian down %s` failed\n", dir);
                    left = 1;
                }
                mr_free(dir);
            }
            mr_free(path);
        } else if (strcmp(e->d_name, "pg") == 0 && o->pg_script[0]) {
            char *dir = mr_asprintf("%s/pg", base);
            char *argv[] = {(char *)o->pg_script, "stop", dir, NULL};
            fprintf(stderr, "meridian bench: stopping the PostgreSQL servers left in %s\n", dir);
            if (topo_run(argv, 0) != 0) {
                fprintf(stderr, "meridian bench: `%s stop %s` failed\n", o->pg_script, dir);
                left = 1;
            }
            mr_free(dir);
        }
    }
    if (d)
        closedir(d);
    if (keep || left) {
        fprintf(stderr, "meridian bench: kept %s (logs)%s\n", base, left ? "; processes may be left" : "");
        return;
    }
    if (topo_remove_dir(base) != 0)
        fprintf(stderr, "meridian bench: could not remove %s\n", base);
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o;
    sigset_t set, old;
    char base[] = "/tmp/meridian-bench-XXXXXX";
    int rc, status = 0, interrupted = 0;
    pid_t child;

    /* `meridian bench edge ...`: the edge proxy's benchmark (edgebench.h). */
    if (argc > 1 && strcmp(argv[1], "edge") == 0)
        return edgebench_main(argc - 1, argv + 1);
    /* `meridian bench tls ...`: the TLS engine alone (tlsbench.h). */
    if (argc > 1 && strcmp(argv[1], "tls") == 0)
        return tlsbench_main(argc - 1, argv + 1);
    /* `meridian bench store ...`: the tables' store alone (storebench.h). */
    if (argc > 1 && strcmp(argv[1], "store") == 0)
        return storebench_main(argc - 1, argv + 1);
    /* `meridian bench tables ...`: the global tables' benchmark (gtbench.h). */
    if (argc > 1 && strcmp(argv[1], "tables") == 0)
        return gtbench_main(argc - 1, argv + 1);
    rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (mkdtemp(base) == NULL) {
        fprintf(stderr, "meridian bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    /* the postgres user creates its cluster below: it must traverse <base> */
    if (chmod(base, 0711) == -1) {
        fprintf(stderr, "meridian bench: chmod %s: %s\n", base, strerror(errno));
        rmdir(base);
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    fflush(stdout);
    fflush(stderr);
    child = fork();
    if (child == -1) {
        fprintf(stderr, "meridian bench: fork: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        rmdir(base);
        return 1;
    }
    if (child == 0) {
        /* default dispositions, so that a forwarded signal ends the child
         * even when we were started with SIGINT ignored (a background job
         * of a non-interactive shell) */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        exit(bench_main(&o, base));
    }
    /* the cleanup below must finish even if our output is a closed pipe */
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig == -1)
            continue; /* EINTR */
        if (sig == SIGCHLD) {
            pid_t r = waitpid(child, &status, WNOHANG);
            if (r == child)
                break;
            continue;
        }
        interrupted = sig;
        kill(child, sig);
    }
    if (WIFSIGNALED(status) && !interrupted)
        fprintf(stderr, "meridian bench: the benchmark died of signal %d\n", WTERMSIG(status));
    rc = interrupted ? 128 + interrupted
         : WIFEXITED(status) ? WEXITSTATUS(status)
                             : 1;
    cleanup(&o, base, !interrupted && rc == 1);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
