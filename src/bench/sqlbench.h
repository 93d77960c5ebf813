/* sqlbench.h -- the figures of `meridian bench`: what each one measures, and
 * the Meridian workloads that produce them against a running topology.
 *
 * Every figure is one closed-loop load (load.h) or, for visibility, one
 * sequential probe, against the nodes of a topology (topo.h).  The
 * PostgreSQL figures are produced by bench/pg.sh (see pgrun.h) and share the
 * sample type so that one report (report.h) holds everything.
 *
 * Tables (same schema and row counts as bench/pg.sh):
 *   accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)      10,000 rows
 *   products(id INTEGER PRIMARY KEY, stock INTEGER NOT NULL CHECK (stock >= 0))
 *                                                                    1,000 rows, stock 1e9
 *   orders(id INTEGER PRIMARY KEY, product_id, qty, created)         empty
 */
#ifndef MR_SQLBENCH_H
#define MR_SQLBENCH_H

#include <stddef.h>
#include <stdint.h>

#include "topo.h"

#define SQLBENCH_N_ACCOUNTS 10000
#define SQLBENCH_N_PRODUCTS 1000

enum sqlbench_fig {
    SQLBENCH_WRITE_1,      /* single-row UPDATE, 1 client */
    SQLBENCH_WRITE_16,     /* ... 16 clients */
    SQLBENCH_WRITE_64,     /* ... 64 clients */
    SQLBENCH_READ_64,      /* eventual point SELECT, 64 clients, each on one region */
    SQLBENCH_VISIBILITY,   /* acknowledgement in region A -> visible in B and C */
    SQLBENCH_ORDER_64,     /* place order (UPDATE products + INSERT orders), 64 clients */
    SQLBENCH_PG_UPDATE,    /* PostgreSQL + sync standby: the single-row UPDATE, 64 clients */
    SQLBENCH_PG_ORDER,     /* PostgreSQL + sync standby: place order, 64 clients */
    SQLBENCH_N_FIGS
};

struct sqlbench_fig_info {
    const char *name;      /* stable key for --only and the JSON file, e.g. "write_64" */
    const char *label;     /* for the table */
    size_t clients;        /* concurrent clients (0: sequential probe) */
    int is_pg;             /* produced by bench/pg.sh */
};

/* Static description of <f>; never NULL for f < SQLBENCH_N_FIGS. */
const struct sqlbench_fig_info *sqlbench_fig_info(enum sqlbench_fig f);
/* The figure named <name>, or -1. */
int sqlbench_fig_by_name(const char *name);

/* One measurement of one figure. */
struct sqlbench_sample {
    int measured;          /* 0: not run, or failed (see error) */
    double rate;           /* successful transactions or reads per second
                              (visibility: samples taken) */
    double p50_ms, p99_ms, max_ms;
    uint64_t ok, failed;
    /* CPU used during the load, in cores (CPU seconds per second of wall
     * time): all nodes, all etcd members, this process (the load
     * generator).  Negative when unknown (PostgreSQL figures). */
    double cpu_nodes, cpu_etcd, cpu_gen;
    char error[256];       /* first error seen, or "" (MR_ERRMSG_LEN) */
};

struct sqlbench_opts {
    uint64_t duration_ms;  /* measured time of each load */
    uint64_t warmup_ms;    /* unmeasured time before it */
    size_t vis_writes;     /* sequential writes of the visibility probe */
};

/* Create the tables and load the rows through region 0, then wait (bounded)
 * until every region has applied them, with a session read per region.
 * Idempotent (CREATE TABLE IF NOT EXISTS, INSERT OR IGNORE), so it can run
 * against a topology that already holds them.  Returns 0 or MR_E* with
 * <err>. */
int sqlbench_prepare(const struct topo *t, char *err) __attribute__((warn_unused_result));

/* Measure Meridian figure <f> (not a PostgreSQL one) on <t> with <seed>
 * (clients' random row choices).  Fills *out, measured or not; returns 0, or
 * MR_E* with <err> when the figure could not be measured at all. */
int sqlbench_run(const struct topo *t, enum sqlbench_fig f, const struct sqlbench_opts *o,
                 uint64_t seed, struct sqlbench_sample *out, char *err)
    __attribute__((warn_unused_result));

#endif
