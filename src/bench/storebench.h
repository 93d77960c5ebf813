/* storebench.h -- `meridian bench store`: the CPU the global tables' store
 * (src/gtab) spends on one write where it is made and on applying it in
 * another region, in one process, no network: the part of `meridian bench
 * tables` that src/gtab owns, measured so that callgrind and perf can look
 * at it alone (docs/benchmarks.md).
 */
#ifndef MR_STOREBENCH_H
#define MR_STOREBENCH_H

#include <stddef.h>

/* What one run measured: CPU nanoseconds of this process per write. */
struct storebench_sample {
    double local_ns;   /* a crdt "set" op on a random key, committed and synced in groups */
    double apply_ns;   /* the same write applied by a second store from the first's log */
};

/* <runs> runs (at most 64) of <n> writes each, on stores in a temporary
 * directory removed before returning, over <keys> keys, <commit_every>
 * writes per commit (as the node's loop turn gathers them).  0, or an
 * error code with <err> saying why. */
int storebench_measure(int runs, int n, int keys, int commit_every, struct storebench_sample *out,
                       char *err);

/* The same <runs> of <n> writes with SQLite alone (storebench.c: "the
 * floor"): what any store of this contract on SQLite pays, without JSON. */
int storebench_floor(int runs, int n, int keys, int commit_every, struct storebench_sample *out, char *err);

/* CPU nanoseconds one write costs over three regions: the median local
 * part once and the median applied part in each of the two others. */
double storebench_three_regions_ns(const struct storebench_sample *s, int runs);

/* argv[0] is "store".  Returns the process exit status: 0 measured, 1 it
 * could not be, 2 bad usage. */
int storebench_main(int argc, char **argv);

#endif
