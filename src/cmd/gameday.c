/* gameday.c -- `meridian gameday SCENARIO`: break regions under load,
 * measure the recovery, prove nothing was lost (docs/gameday.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../gameday/gameday.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian gameday SCENARIO [--topology FILE | --dir RUNDIR] [--report DIR]\n"
            "                        [--latency-scale X] [--quiet]\n\n"
            "Start a local topology (or attach to one started with `meridian up --detach`),\n"
            "run the scenario's open-loop shopping traffic through every client site's edge,\n"
            "apply its faults on their timeline, heal, let replication settle, verify that no\n"
            "acknowledged order was lost or duplicated, no stock oversold, every cart converged\n"
            "and no client read older than its own write; write REPORT/report.json and\n"
            "report.html.  SCENARIO is a file, or the name of one in scenarios/ (ci-short,\n"
            "primary-region-loss, ...).  Exit status: 0 when every target and check passed,\n"
            "1 when one failed, 2 when the game day could not run.\n\n"
            "  -t, --topology FILE    topology to start (default: the built-in three regions)\n"
            "  -d, --dir RUNDIR       attach to this running topology instead\n"
            "  -r, --report DIR       where the reports go (default: gameday-<scenario>)\n"
            "  -L, --latency-scale X  scale of the emulated distances (default: up's)\n"
            "  -q, --quiet            no live progress line\n");
}

/* "ci-short" -> scenarios/ci-short.ini when no such file exists. */
static const char *scenario_path(const char *arg, char *buf, size_t n)
{
    FILE *f = fopen(arg, "re");

    if (f) {
        fclose(f);
        return arg;
    }
    if (strchr(arg, '/') == NULL) {
        snprintf(buf, n, "scenarios/%s.ini", arg);
        return buf;
    }
    return arg;
}

int cmd_gameday(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"topology", required_argument, NULL, 't'}, {"dir", required_argument, NULL, 'd'},
        {"report", required_argument, NULL, 'r'},   {"latency-scale", required_argument, NULL, 'L'},
        {"quiet", no_argument, NULL, 'q'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct gd_options o = {0};
    struct gd_scenario *s = NULL;
    char err[MR_ERRMSG_LEN] = "", path[1024];
    int c, rc;

    o.exe = "/proc/self/exe";
    while ((c = getopt_long(argc, argv, "t:d:r:L:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 't': o.topology = optarg; break;
        case 'd': o.rundir = optarg; break;
        case 'r': o.report_dir = optarg; break;
        case 'L': o.latency_scale = optarg; break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (o.topology && o.rundir) {
        fprintf(stderr, "meridian gameday: --topology and --dir exclude each other\n");
        return 2;
    }
    mr_log_setup(NULL, "gameday", MR_LOG_WARN);
    if (gd_scenario_load(scenario_path(argv[optind], path, sizeof(path)), &s, err) != 0) {
        fprintf(stderr, "meridian gameday: %s\n", err);
        return 2;
    }
    rc = gd_run(s, &o, err);
    gd_scenario_free(s);
    if (rc < 0) {
        fprintf(stderr, "meridian gameday: %s\n", err);
        return 2;
    }
    return rc;
}
