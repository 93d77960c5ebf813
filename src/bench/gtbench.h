/* gtbench.h -- `meridian bench tables`: the global tables' figures, with
 * Redis 7 measured in the same run as the reference (docs/benchmarks.md).
 *
 *   local writes/s at 64 clients (p50/p99), local reads/s, replication lag
 *   p50/p99 at a steady write rate spread over three regions; Redis: SET
 *   with 64 clients (redis-benchmark, 200-byte values, random keys) on a
 *   primary with appendfsync everysec and two replicas, and its replica lag
 *   measured the same way as ours.
 */
#ifndef MR_GTBENCH_H
#define MR_GTBENCH_H

/* argv[0] is "tables".  Returns the process exit status: 0 measured, 1 a
 * figure could not be measured, 2 bad usage, 3 a target missed. */
int gtbench_main(int argc, char **argv);

#endif
