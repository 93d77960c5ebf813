/* store_int.h -- internals shared by the files of src/sql/ only.
 *
 * Files:
 *   store.c        open/close, position, store_check, store_read, idempotency
 *                  lookup, integrity check
 *   apply.c        store_apply: batches, savepoints, idempotency, pruning
 *   stmt.c         per-connection statement cache (LRU) and the authorizer
 *                  that enforces the determinism rules of store.h
 *   exec.c         parameter binding, stepping a statement into result JSON,
 *                  SQLite result codes to MR_E* codes
 *   determinism.c  the VFS shim whose clock is the transaction's time, and
 *                  the seeded random()/randomblob()
 *   digest.c       store_digest
 *
 * Two connections share one WAL database:
 *
 *   apply (read-write, opened through the store's VFS shim)
 *       every user statement obeys the write rules, whatever it does:
 *       a read-only statement inside a write transaction returns a result
 *       that is stored with the idempotency key and answered to the
 *       writer, so it too must be the same on every replica.
 *   read (SQLITE_OPEN_READONLY, default VFS)
 *       store_read, store_check, store_digest, store_idem_lookup.  What
 *       only a write may not do is recorded (struct store_obs.soft) and
 *       judged by store_check once it knows whether the request writes.
 *
 * On-disk tables (created by store_open, never writable by user SQL):
 *
 *   _meridian_meta     k TEXT PRIMARY KEY, v            WITHOUT ROWID
 *       'applied_rev'      etcd revision of the last applied batch
 *       'applied_version'  etcd version of the log key at that batch
 *       'applied_ts'       ts_ms of that batch
 *   _meridian_idem     key TEXT PRIMARY KEY, rc INTEGER, result TEXT,
 *                      created_ms INTEGER   (index on created_ms for pruning)
 *       rc is 0 (result = results JSON) or a negative MR_E* (result = the
 *       error message); created_ms is the ts_ms of the batch that stored it.
 *   _meridian_batches  id TEXT PRIMARY KEY, rev INTEGER  WITHOUT ROWID
 *                      (index on rev for pruning)
 */
#ifndef MR_STORE_INT_H
#define MR_STORE_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "../common/err.h"
#include "store.h"

/* randomblob(N) larger than this is an error: a replica must never be asked
 * for an unbounded allocation by one log entry. */
#define STORE_MAX_RANDOMBLOB (1024 * 1024)

enum store_role { STORE_CONN_READ, STORE_CONN_APPLY };

/* What the authorizer saw while a statement was prepared (or re-prepared by
 * sqlite3_step after a schema change). */
struct store_obs {
    int denied;               /* refused: the prepare (or step) fails */
    int pragma;               /* an allow-listed PRAGMA (read connection) */
    char soft[160];           /* first thing refused in a transaction that
                               * writes, "" if none (read connection) */
    char msg[MR_ERRMSG_LEN];  /* why it was refused */
};

/* A prepared statement and the verdict reached when it was prepared.  The
 * verdict is cached with the statement, so a cache hit skips no check. */
struct store_cstmt {
    struct store_cstmt *hnext;       /* hash chain */
    struct store_cstmt *prev, *next; /* LRU list, most recent first */
    char *sql;                       /* owned copy of the key */
    size_t len;
    uint64_t hash;
    sqlite3_stmt *stmt;              /* owned */
    int writes;                      /* may change the database */
    int pragma;                      /* an allow-listed PRAGMA */
    int explain;                     /* EXPLAIN ... */
    char *soft;                      /* owned; see store_obs.soft, NULL if none */
    uint64_t schema_gen;             /* store->schema_gen when judged */
    int cached;                      /* held by the LRU (else freed on release) */
};

struct store_conn {
    struct store *s;
    sqlite3 *db;
    enum store_role role;
    int internal;                    /* our own SQL: the authorizer allows all */
    struct store_obs obs;
    int64_t steps;                   /* VM steps of the transaction applied */
    int64_t deadline_us;             /* read: mr_mono_us() limit, 0 = none */
    int interrupted;                 /* the progress handler stopped a step */
    uint64_t schema_gen_seen;        /* store->schema_gen SQLite was synced to */
    sqlite3_stmt *schema_probe;      /* owned; see sync_schema() in stmt.c */
    struct store_cstmt **buckets;    /* n_buckets, a power of two */
    size_t n_buckets;
    size_t n_cached;
    size_t max_cached;
    struct store_cstmt lru;          /* sentinel of the LRU list */
};

/* The store's internal statements, prepared once (SQLITE_PREPARE_PERSISTENT)
 * and stepped with conn->internal set.  Apply connection unless noted. */
struct store_istmts {
    sqlite3_stmt *begin_immediate, *commit, *rollback;
    sqlite3_stmt *savepoint, *release, *rollback_to;
    sqlite3_stmt *batch_get, *batch_put, *batch_prune;
    sqlite3_stmt *idem_get, *idem_put, *idem_prune;
    sqlite3_stmt *meta_put;
    sqlite3_stmt *schema_version;
    sqlite3_stmt *r_begin, *r_commit, *r_rollback; /* read connection */
    sqlite3_stmt *r_idem_get;                      /* read connection */
};

struct store_det {
    sqlite3_vfs vfs;       /* our shim; vfs.pAppData is the store */
    sqlite3_vfs *real;     /* the default VFS it forwards to */
    char name[48];
    int registered;
    int clock_fixed;       /* inside a transaction being applied */
    int64_t time_ms;
    uint64_t rng[4];       /* xoshiro256** state */
    char io_error[320];    /* the last failed file call of the apply connection */
};

struct store {
    char *path;
    struct store_opts opts;
    struct store_det det;
    struct store_conn wc;  /* apply */
    struct store_conn rc;  /* read */
    struct store_istmts is;
    struct store_position pos;
    /* Bumped when a batch changed the schema: a cached statement judged
     * under an older schema is prepared and judged again (store_check never
     * steps, so SQLite's own re-prepare would not happen there). */
    uint64_t schema_gen;
    int64_t schema_version;  /* PRAGMA schema_version at the last bump */
};

/* stmt.c, exec.c --------------------------------------------------------- */

/* Set up <c> (cache of <max_cached> statements) for <db>, which it then
 * owns, and install the authorizer. */
void store__conn_init(struct store_conn *c, struct store *s, sqlite3 *db, enum store_role role,
                      size_t max_cached);
/* Finalize every cached statement and close the connection. */
void store__conn_close(struct store_conn *c);

/* The progress handler calls come every this many VM steps. */
#define STORE_PROGRESS_STEPS 1000

/* The statement for <sql> on <c>: from the cache, or prepared, judged and
 * cached.  <idx> (1-based) is used in messages.  Returns 0 with *out, to be
 * given back with store__stmt_release; MR_EINVAL (empty, too long, several
 * statements in one text), MR_EDENIED (refused), MR_ESQL (does not prepare)
 * or MR_EIO/MR_ECORRUPT with "statement <idx>: ..." in <err>. */
int store__stmt_acquire(struct store_conn *c, size_t idx, const char *sql,
                        struct store_cstmt **out, char *err) __attribute__((warn_unused_result));
/* Reset and unbind <cs>; finalize it if it is not cached. */
void store__stmt_release(struct store_conn *c, struct store_cstmt *cs);

/* Bind <params> (borrowed; must outlive the statement's use: text is bound
 * without a copy) to <cs>.  MR_EINVAL with a message naming the statement
 * and the parameter. */
int store__stmt_bind(struct store_cstmt *cs, size_t idx, json_t *params, char *err)
    __attribute__((warn_unused_result));

/* Step <cs> to completion and append its result object to <out>.  More than
 * <max_rows> rows is MR_ETOOBIG.  On the apply connection rows_affected and
 * last_insert_id are filled for statements that write.  On error <out> may
 * hold a partial object; the caller truncates.  SQLite errors map to
 * MR_ECONSTRAINT, MR_EDENIED, MR_EINVAL, MR_ESQL, or MR_EIO/MR_ECORRUPT when
 * the database itself failed. */
int store__stmt_run(struct store_conn *c, struct store_cstmt *cs, size_t idx, int64_t max_rows,
                    struct mr_buf *out, char *err) __attribute__((warn_unused_result));

/* Map a SQLite result code to an MR_E* code (see store__stmt_run). */
int store__map_rc(int sqlite_rc);
/* 1 when <mr_rc> means the database failed, not the SQL. */
int store__is_fatal(int mr_rc);

/* Step an internal statement once with the authorizer bypassed; returns the
 * SQLite code (SQLITE_ROW, SQLITE_DONE or an error).  Does not reset. */
int store__istep(struct store_conn *c, sqlite3_stmt *st);
/* Step to SQLITE_DONE and reset; 0, or an MR code with "<what>: ..." in
 * <err> (errors of our own statements are always database failures). */
int store__iexec(struct store_conn *c, sqlite3_stmt *st, const char *what, char *err)
    __attribute__((warn_unused_result));
/* After an internal statement failed with <sqlite_rc>: the message in
 * <err> ("<what>: ..."), reset <st>, return MR_ECORRUPT or MR_EIO. */
/* Room for store__io_detail's text. */
#define STORE_IO_DETAIL_LEN 360
/* What is known of the I/O failure behind the connection's last error: the
 * file, the call and its errno when the apply connection's shim saw it
 * (then forgotten), else SQLite's last errno.  Writes <buf>, returns it. */
const char *store__io_detail(struct store_conn *c, char *buf, size_t size);
int store__ierror(struct store_conn *c, sqlite3_stmt *st, int sqlite_rc, const char *what,
                  char *err);
/* Prepare an internal statement (persistent, authorizer bypassed). */
int store__iprepare(struct store_conn *c, const char *sql, sqlite3_stmt **out, char *err)
    __attribute__((warn_unused_result));

/* Append <n> bytes of text as a JSON string, replacing invalid UTF-8 with
 * U+FFFD (SQLite text is not guaranteed to be UTF-8; JSON must be). */
void store__json_text(struct mr_buf *b, const char *p, size_t n);
/* Append a signed integer in decimal. */
void store__json_i64(struct mr_buf *b, int64_t v);

/* store.c -------------------------------------------------------------- */

/* Read PRAGMA schema_version on the apply connection into *out.
 * MR_EIO/MR_ECORRUPT on failure. */
int store__schema_read(struct store *s, int64_t *out, char *err) __attribute__((warn_unused_result));
/* Bump s->schema_gen if <version> differs from the last one noted. */
void store__schema_note(struct store *s, int64_t version);

/* determinism.c --------------------------------------------------------- */

/* Register the store's VFS shim (unique name in s->det.name). */
int store__det_init(struct store *s, char *err) __attribute__((warn_unused_result));
/* Unregister it; every connection using it must be closed. */
void store__det_close(struct store *s);
/* Override random() and randomblob() on <db> (the apply connection). */
int store__det_functions(struct store *s, sqlite3 *db, char *err)
    __attribute__((warn_unused_result));
/* From here until store__det_end_txn, 'now' is <time_ms> and the
 * generators draw from <seed>. */
void store__det_begin_txn(struct store *s, int64_t time_ms, uint64_t seed);
void store__det_end_txn(struct store *s);

#endif
