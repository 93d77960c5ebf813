/* edgebench.h -- `meridian bench edge`: the edge proxy against the same
 * origin direct and against HAProxy 2.6 (Debian's, one thread, configured
 * for the same job: health checks, retries, redispatch), in one run; and
 * failover under steady GET traffic (docs/edge.md "Benchmarks").
 *
 * Every process (origins, the edge, HAProxy) is started here on 127.0.0.1
 * and stopped before returning, also on failure.  Origins are small HTTP
 * servers made with src/http, each in a process of its own (fork), so that
 * they can be SIGKILLed and SIGSTOPped.
 */
#ifndef MR_EDGEBENCH_H
#define MR_EDGEBENCH_H

/* The main() of `meridian bench edge`: <argv>[0] is "edge".  Returns the
 * exit status: 0 measured, 1 a figure could not be measured, 2 bad usage,
 * 3 a target missed (with --fail-on-miss). */
int edgebench_main(int argc, char **argv);

#endif
