/* tlsbench.h -- `meridian bench tls`: the CPU the TLS engine (src/tls)
 * spends on one small request and its answer, both ends in one process,
 * no socket (decision 041, docs/edge.md).  The end-to-end cost of TLS at
 * the edge is `meridian bench edge`; this isolates the part src/tls owns.
 */
#ifndef MR_TLSBENCH_H
#define MR_TLSBENCH_H

#include <stddef.h>

/* <runs> runs of <n> exchanges of <req> bytes and an answer of <ans> bytes
 * (mutual TLS, the product's suites and modes, a throw-away CA in a
 * temporary directory removed before returning): the CPU nanoseconds per
 * exchange of each run, in run order, into <ns> (<runs> entries, at most
 * 64).  0, or an error code with <err> saying why. */
int tlsbench_measure(int runs, int n, size_t req, size_t ans, double *ns, char *err);

/* argv[0] is "tls".  Returns the process exit status: 0 measured, 1 it
 * could not be, 2 bad usage. */
int tlsbench_main(int argc, char **argv);

#endif
