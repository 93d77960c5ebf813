/* pgrun.h -- the PostgreSQL side of `meridian bench`, driven through
 * bench/pg.sh: start a primary with one synchronous standby, measure the
 * shared transactions with pgbench, stop and remove everything.
 *
 * pg.sh prints one machine-readable line per step ("pg started k=v ...",
 * "pg result k=v ..."); its progress and errors go straight to our stderr.
 * Keeping PostgreSQL in a script keeps its many binaries, users and files
 * out of the C code; the C code only reads the lines.
 */
#ifndef MR_PGRUN_H
#define MR_PGRUN_H

#include <stdint.h>

#include "sqlbench.h"

struct pgrun {
    char *script;              /* owned: path of pg.sh */
    char *dir;                 /* owned: the cluster's directory (pg.sh removes it on stop) */
    char version[64];          /* e.g. "15.18" once started */
    int started;
};

/* Run `pg.sh start <dir>`.  <dir> must not exist yet; its parent must be
 * reachable by the postgres user.  Returns 0 or MR_E* with <err>; on failure
 * pg.sh has stopped what it started, and <p> needs pgrun_stop only to free
 * its strings. */
int pgrun_start(struct pgrun *p, const char *script, const char *dir, char *err)
    __attribute__((warn_unused_result));

/* Measure <f> (SQLBENCH_PG_UPDATE or SQLBENCH_PG_ORDER) for <seconds> with
 * <clients>: `pg.sh run`.  Fills *out; returns 0 or MR_E* with <err>. */
int pgrun_measure(struct pgrun *p, enum sqlbench_fig f, uint64_t seconds, size_t clients,
                  struct sqlbench_sample *out, char *err) __attribute__((warn_unused_result));

/* `pg.sh stop <dir>` if started; frees <p>'s strings.  Safe to repeat. */
void pgrun_stop(struct pgrun *p);

#endif
