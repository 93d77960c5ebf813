/* tlsbench.h -- `meridian bench tls`: the CPU the TLS engine (src/tls)
 * spends on one small request and its answer, both ends in one process,
 * no socket (decision 041, docs/edge.md).  The end-to-end cost of TLS at
 * the edge is `meridian bench edge`; this isolates the part src/tls owns.
 */
#ifndef MR_TLSBENCH_H
#define MR_TLSBENCH_H

/* argv[0] is "tls".  Returns the process exit status: 0 measured, 1 it
 * could not be, 2 bad usage. */
int tlsbench_main(int argc, char **argv);

#endif
