/* cluster.h -- a whole local topology for integration tests.
 *
 * Started with the same launcher users run, `$MERIDIAN_BIN up TOPOLOGY --dir
 * RUNDIR --detach` (MERIDIAN_BIN defaults to build/asan/meridian), in a new
 * mkdtemp directory; read back from RUNDIR/topology.json (format:
 * docs/topology.md); acted on with `meridian region`; stopped with `meridian
 * down`, after which no process whose command line names RUNDIR may be left:
 * cluster_stop fails loudly otherwise.
 *
 *     struct cluster *c;
 *     assert_int_equal(cluster_start(NULL, &c), 0);          // default topology
 *     ... c->regions[i].node_url, cluster_region(c, "eu-west-1")->etcd.pid ...
 *     assert_int_equal(cluster_region_action(c, "us-east-1", "kill", "etcd"), 0);
 *     assert_int_equal(cluster_stop(c), 0);
 *
 * HTTP helpers are in api.h.  This file depends on libc, jansson and
 * wait.h only (tests/lib/ *.c is linked into every test binary, including
 * unit tests that have no HTTP module).  Functions print what went wrong to
 * stderr and return 0 or -1.
 */
#ifndef MR_TEST_CLUSTER_H
#define MR_TEST_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "wait.h"

#define CLUSTER_MAX_REGIONS 8
#define CLUSTER_MAX_PIDS 256

struct cluster_proc {
    int pid;                    /* 0 when not running */
    char state[32];             /* running, frozen, killed, exited-unexpectedly, stopped, not-started */
    int ready;
    int last_exit_pid;          /* 0: never exited */
    char last_exit_signal[16];  /* "SIGKILL", or "" when it exited with a status */
    int last_exit_status;
    int last_exit_expected;
};

struct cluster_region {
    char name[40];
    char node_url[64];
    char etcd_url[64];          /* etcd client URL */
    struct cluster_proc node;
    struct cluster_proc etcd;
};

struct cluster {
    char *rundir;               /* the mkdtemp directory (owned) */
    char state[16];             /* topology.json "state": starting, ready, stopping, stopped... */
    int control_pid;            /* the supervisor */
    char control_url[64];
    struct cluster_region regions[CLUSTER_MAX_REGIONS];
    size_t n_regions;
    int seen[CLUSTER_MAX_PIDS]; /* every pid ever read: all must be gone at stop */
    size_t n_seen;
};

/* $MERIDIAN_BIN, or build/asan/meridian. */
const char *cluster_bin(void);

/* The --latency-scale every cluster_start passes to `meridian up`: "0" (no
 * emulated distance) unless a test sets it before starting. */
extern const char *cluster_latency_scale;

/* The admin bearer token of the last cluster refreshed (topology.json
 * "auth": {"token"}), "" when it has none; api.h sends it on every call. */
extern char cluster_auth_token[256];

/* With a TLS topology (topology.json "auth": {"ca_file", "cert_file",
 * "key_file"}; decision 021): the admin certificate's files of the last
 * cluster refreshed, and a client context made from them, which
 * http_fetch (so api.h) already uses for https:// URLs.  Tests that run
 * their own http_client set http_client_opts.tls to it.  "" and NULL with
 * a plain topology (or in binaries without src/tls). */
struct tls_ctx;
extern char cluster_tls_ca[4096], cluster_tls_cert[4096], cluster_tls_key[4096];
extern struct tls_ctx *cluster_tls;
/* Run <argv> (argv[0] is a path), wait at most test_timeout_ms(<timeout_ms>),
 * kill it past that.  Returns its exit status, or -1 (could not run, killed,
 * timed out).  Its output goes to the test's stdout/stderr. */
int cluster_run(char *const argv[], int64_t timeout_ms);

/* Start the topology file <topology> (NULL: the built-in default) in a new
 * temporary directory.  On success *out is a cluster to stop with
 * cluster_stop; on failure nothing is left running. */
int cluster_start(const char *topology, struct cluster **out);

/* Same, from the INI text <ini> (written to RUNDIR/topology.ini first). */
int cluster_start_text(const char *ini, struct cluster **out);

/* Re-read RUNDIR/topology.json (after actions, or to see unexpected exits).
 * Returns -1 quietly when the file does not exist (yet). */
int cluster_refresh(struct cluster *c);

/* Region <name>, or NULL. */
struct cluster_region *cluster_region(struct cluster *c, const char *name);

/* `meridian region <action> <region> --dir RUNDIR [--process <process>]`,
 * then cluster_refresh.  <process> is "etcd", "node" or NULL (both). */
int cluster_region_action(struct cluster *c, const char *region, const char *action,
                          const char *process);

/* `meridian down RUNDIR`, then check that the supervisor, every pid ever seen
 * and every process whose command line names RUNDIR are gone (leftovers are
 * printed, killed with SIGKILL, and make it return -1), that no log in
 * RUNDIR/logs holds a sanitizer report and that every node stopped by the
 * shutdown exited 0 (else -1 too), then remove RUNDIR (kept when something
 * failed, or when MR_TEST_KEEP is set).  Frees <c>; NULL is a no-op. */
int cluster_stop(struct cluster *c);

/* Print to stderr the last <lines> lines of every log in RUNDIR/logs whose
 * name ends with <suffix> ("-node.log"), then the last 5 lines of level E
 * or F of each: what a failed test on CI shows of the daemons, since their
 * run directory is gone with the machine. */
void cluster_print_log_tails(const struct cluster *c, const char *suffix, int lines);

/* 1 when <pid> exists and is not a zombie. */
int cluster_pid_alive(int pid);

/* The state letter of <pid> in /proc/<pid>/stat ('R', 'S', 'T' for stopped,
 * 'Z'...), or 0 when it does not exist. */
char cluster_pid_state(int pid);

/* Pids (at most <max>) of live processes whose command line contains
 * <needle>; returns how many. */
size_t cluster_find_pids(const char *needle, int *pids, size_t max);

#endif
