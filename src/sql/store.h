/* store.h -- one region's replica of the global SQL database, in SQLite.
 *
 * The store executes transactions that arrive from the etcd-ordered log, in
 * log order, deterministically, and records the applied log position in the
 * same SQLite transaction as the effects, so that a restart resumes exactly
 * where it stopped.  It also serves local reads from a second connection
 * (WAL mode: readers never block the applier).
 *
 * Determinism rules (every replica must compute the same rows):
 *  - random() and randomblob() draw from a generator seeded by the
 *    transaction's <seed>, fixed when it was submitted;
 *  - the current time ('now', CURRENT_TIMESTAMP, ...) is the transaction's
 *    <time_ms>, fixed when it was submitted (through the VFS clock);
 *  - functions whose value depends on the connection or the binary
 *    (changes, total_changes, last_insert_rowid, sqlite_version, ...) are
 *    refused in writes with an error naming the function;
 *  - ATTACH/DETACH, PRAGMA, VACUUM, transaction control, TEMP objects,
 *    load_extension and writes to the store's own tables (_meridian_*) are
 *    refused.
 *
 * Internal tables (created by store_open):
 *   _meridian_meta(k TEXT PRIMARY KEY, v)        applied_rev, applied_version, applied_ts
 *   _meridian_idem(key TEXT PRIMARY KEY, rc, result, created_ms)   idempotency keys
 *   _meridian_batches(id TEXT PRIMARY KEY, rev)  batch ids seen (duplicate puts)
 *
 * Not thread-safe: one loop thread owns a store.
 */
#ifndef MR_STORE_H
#define MR_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

/* Limits (documented in docs/config.md; enforced by store_check). */
#define STORE_MAX_STATEMENTS 128      /* statements per request */
#define STORE_MAX_SQL_BYTES 65536     /* one statement's text */
#define STORE_MAX_PARAMS 999          /* parameters per statement */
#define STORE_DEFAULT_MAX_ROWS 10000  /* rows returned per statement */
/* Not configurable, because every replica must decide alike (a write that
 * fails on one replica must fail on all): */
#define STORE_MAX_TXN_STEPS 50000000  /* SQLite VM steps per applied transaction */
#define STORE_MAX_VALUE_BYTES (32 * 1024 * 1024) /* one string or blob value */

struct store;

struct store_opts {
    int64_t idempotency_window_ms;  /* keep idempotency keys this long (entry time) */
    int64_t batch_id_window;        /* keep batch ids for this many log revisions */
    int64_t max_rows;               /* rows returned per statement; more is an error */
    size_t stmt_cache_size;         /* prepared statements kept per connection */
    int64_t read_timeout_ms;        /* store_read running longer fails with
                                     * MR_ETIMEDOUT; 0: no limit */
};
void store_opts_default(struct store_opts *o);

/* One statement of a request.  <params> is borrowed: NULL, a JSON array
 * (positional ?1 ?2 / ?) or a JSON object (named :name, @name, $name; keys
 * may be given with or without the sigil).  Values: null, integer, real,
 * string, true/false (as 1/0), or {"base64": "..."} for a blob. */
struct store_stmt {
    const char *sql;
    json_t *params;
};

struct store_txn {
    const char *id;            /* unique transaction id, chosen by the submitter */
    const char *idem_key;      /* idempotency key or NULL */
    int64_t time_ms;           /* the transaction's 'now' */
    uint64_t seed;             /* seed of random()/randomblob() */
    const struct store_stmt *stmts;
    size_t n_stmts;
};

struct store_batch {
    const char *id;            /* unique batch id (dedups retried etcd puts) */
    const char *origin;        /* region that submitted it */
    int64_t ts_ms;             /* submission time, for staleness */
    const struct store_txn *txns;
    size_t n_txns;
};

struct store_position {
    int64_t rev;               /* etcd revision of the last applied batch, 0 if none */
    int64_t version;           /* etcd version of the log key at that batch (counts batches) */
    int64_t ts_ms;             /* ts_ms of the last applied batch */
};

/* Open (creating if needed) the database at <path>, in an existing
 * directory.  <opts> NULL means store_opts_default.  On success *out owns
 * the store; free with store_close.  MR_EIO/MR_ECORRUPT with <err>
 * otherwise (MR_EINVAL for bad <opts>). */
int store_open(const char *path, const struct store_opts *opts, struct store **out, char *err)
    __attribute__((warn_unused_result));
void store_close(struct store *s);

void store_position(const struct store *s, struct store_position *out);

/* Validate a request before it is submitted, on the read connection: every
 * statement must prepare (except statements after a write, which may depend
 * on schema that write creates; those are checked when applied), have one
 * statement per text, bind its parameters with the right count and types, and
 * obey the determinism rules if it writes.  Sets *is_write when any statement
 * writes.  Returns 0, or MR_EINVAL (bad parameters, too many statements...),
 * MR_ESQL (does not prepare), MR_EDENIED (refused statement or function)
 * with a message in <err>.
 *
 * In a request that writes, the read-only statements obey the write rules
 * too (no nondeterministic function, PRAGMA or EXPLAIN): their results are
 * the writer's answer and are stored with the idempotency key, so they must
 * be the same on every replica.  store_apply enforces every rule again: the
 * log is not trusted to have been checked. */
int store_check(struct store *s, const struct store_stmt *stmts, size_t n_stmts, int *is_write,
                char *err) __attribute__((warn_unused_result));

/* Execute read-only statements in one read transaction (one snapshot) and
 * append the results array as JSON to <out>:
 *   [{"columns":[...],"rows":[[...],...],"rows_affected":0,"last_insert_id":0}, ...]
 * Integers stay integers, reals have a decimal point, text is a string, blobs
 * are {"base64":"..."}, NULL is null.  On error <out> is left as it was:
 * MR_EDENIED for a statement that writes, MR_ETOOBIG for more than
 * opts.max_rows rows, MR_ETIMEDOUT after opts.read_timeout_ms, and the codes
 * of store_check. */
int store_read(struct store *s, const struct store_stmt *stmts, size_t n_stmts,
               struct mr_buf *out, char *err) __attribute__((warn_unused_result));

/* Keep one read transaction open across store_read calls until
 * store_read_unpin: every read then shares one snapshot and skips the WAL
 * lock system calls of starting and ending its own (about a tenth of a point
 * read's cost).  The caller must unpin before anything it applies should be
 * visible to later reads (the node unpins before each apply and at the end
 * of every turn of its loop), and before store_backup.  Both are idempotent.
 * Pin failing only costs the optimisation; unpin failing (MR_EIO) means a
 * snapshot may be stuck open: the caller must not serve reads. */
int store_read_pin(struct store *s) __attribute__((warn_unused_result));
int store_read_unpin(struct store *s) __attribute__((warn_unused_result));

/* Called once per transaction of an applied batch, after the batch has
 * committed.  <rc> is 0 with <result> the results array JSON (as store_read,
 * with rows_affected and last_insert_id filled for statements that write),
 * or MR_ECONSTRAINT / MR_ESQL / MR_EDENIED / MR_EINVAL / MR_ETOOBIG with
 * <result> the error message.  MR_ETOOBIG: a statement returned more than
 * STORE_DEFAULT_MAX_ROWS rows (the constant, not opts.max_rows: whether a
 * write fails must not depend on one replica's configuration).  A
 * transaction running more than STORE_MAX_TXN_STEPS SQLite steps fails with
 * MR_ESQL, and one producing a value over STORE_MAX_VALUE_BYTES too.  <replayed>
 * is 1 when the idempotency key had been applied before and the stored first
 * result is returned.  <result> is valid during the call and is followed by
 * a NUL byte not counted in <result_len>. */
typedef void (*store_txn_cb)(const struct store_txn *txn, int rc, const char *result,
                             size_t result_len, int replayed, void *data);

/* Apply <batch>, found at log revision <rev> where the log key had <version>,
 * in one SQLite transaction together with the new position.  Each
 * transaction runs inside its own savepoint: one that fails leaves no trace
 * but its (stored) error.  A batch whose id was applied before only advances
 * the position, and <cb> is not called for it (it was answered the first
 * time).  <rev> must be greater than the applied revision (else MR_EINVAL).
 * Returns 0, or MR_EIO/MR_ECORRUPT when the database itself failed: the
 * caller must stop applying (nothing of the batch is kept).  <cb> (may be
 * NULL) runs only when 0 is returned, once per transaction, in order. */
int store_apply(struct store *s, const struct store_batch *batch, int64_t rev, int64_t version,
                store_txn_cb cb, void *data, char *err) __attribute__((warn_unused_result));

/* Look up an idempotency key already applied here.  Returns 1 and fills
 * *rc and <result> (appended) when found, 0 when not (also when the lookup
 * itself failed: store_apply checks the key again, authoritatively). */
int store_idem_lookup(struct store *s, const char *key, int *rc, struct mr_buf *result);

/* SHA-256 (hex, 65 bytes with NUL) over every user table's schema and rows in
 * a defined order; equal on two replicas at the same position iff their
 * contents are equal.  The store's own tables (_meridian_*) are left out:
 * see digest.c for the exact encoding. */
int store_digest(struct store *s, char out[65], char *err) __attribute__((warn_unused_result));

/* Write a consistent copy of the replica (rows and position) to a new
 * SQLite file at <path> (replaced if it exists).  Blocks for the time of the
 * copy.  MR_EIO with <err> on failure (nothing left at <path>). */
int store_backup(struct store *s, const char *path, char *err) __attribute__((warn_unused_result));

/* Run PRAGMA integrity_check; 0 when "ok". */
int store_integrity_check(struct store *s, char *err) __attribute__((warn_unused_result));

#endif
