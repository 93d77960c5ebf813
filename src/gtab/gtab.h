/* gtab.h -- global tables: the storage and merge rules of one region.
 *
 * A region's tables live in their own SQLite database (<data_dir>/tables.db,
 * WAL), apart from the deterministic SQL replica.  Every item holds its full
 * state, a conflict-free replicated value (CvRDT): merging two states is
 * idempotent, commutative and associative, so regions that received the same
 * writes in any order, any number of times, hold the same state.
 *
 *   lww   tables: a JSON document; the highest (hlc, origin) wins.
 *   crdt  tables: per-field counters (PN), add-wins sets, LWW registers.
 *
 * Local writes append the new full state of the item to this region's change
 * log (gt_log, seq 1, 2, ...); other regions apply those entries and record
 * the highest seq applied per origin (the applied vector), in the same SQLite
 * transaction as the item change.  Formats: gtab_int.h; API: docs/tables.md.
 *
 * Transactions: the first write opens one; gtab_commit ends it and
 * gtab_sync makes it durable.  The node commits once per loop turn (group
 * commit), syncs on the libuv pool, and only then acknowledges.  Nothing
 * here is thread-safe but gtab_sync and gtab_checkpoint (see each); depends
 * on SQLite, jansson, OpenSSL, common.
 */
#ifndef MR_GTAB_H
#define MR_GTAB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/err.h"

/* ---- limits (docs/tables.md) ---- */
#define GTAB_MAX_NAME 64          /* table and field names: 1..64 of [A-Za-z0-9_-], not '_' first */
#define GTAB_MAX_KEY 256          /* item keys: 1..256 bytes 0x21..0x7e except / ? # % " \ */
#define GTAB_MAX_DOC (64 * 1024)  /* a document, or a crdt item's state, in bytes of JSON */
#define GTAB_MAX_OPS 100          /* operations per /ops request */
#define GTAB_MAX_FIELDS 256       /* fields of a crdt item */
#define GTAB_MAX_SET 1000         /* elements ever added to one set field */
#define GTAB_MAX_ELEM 256         /* bytes of one set element, as JSON */
#define GTAB_MAX_TABLES 1024
#define GTAB_MAX_ORIGINS 32       /* regions in the applied vector */
#define GTAB_VERSION_LEN 96       /* "<hlc>@<origin>" and NUL */

/* An If-Match that does not hold (HTTP 412). */
#define GTAB_EPRECOND MR_EDENIED

enum gtab_kind { GTAB_LWW, GTAB_CRDT };

/* "lww" or "crdt": the kind as table specs spell it. */
const char *gtab_kind_name(enum gtab_kind kind);

struct gtab_spec {
    char name[GTAB_MAX_NAME + 1];
    enum gtab_kind kind;
    char ttl_field[GTAB_MAX_NAME + 1];   /* "" when items never expire */
};

/* ---- hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014) ----
 * 64 bits: (physical ms << 16) | logical counter.  A local event takes
 * max(wall, last + 1); a received timestamp raises <last>. */
struct gtab_hlc {
    uint64_t last;
    int64_t skew_ms;          /* added to the wall clock: tests skew a region */
};
uint64_t gtab_hlc_now(struct gtab_hlc *h, int64_t wall_ms);
void gtab_hlc_observe(struct gtab_hlc *h, uint64_t remote);
#define GTAB_HLC_MS(h) ((int64_t)((h) >> 16))

/* ---- validation ---- */
int gtab_name_valid(const char *s, size_t len, char *err);
int gtab_key_valid(const char *s, size_t len, char *err);
/* The version an If-Match header names: <header> without its surrounding
 * quotes, copied into <buf> (<size> bytes, truncated); NULL when the header
 * is absent or empty. */
const char *gtab_if_match(const char *header, char *buf, size_t size);
/* The operations of a `POST .../ops` body, {"ops":[...]} and nothing else:
 * 0 and *ops (borrowed from <body>; gtab_ops checks each operation), or
 * MR_EINVAL naming the problem. */
int gtab_ops_body(const json_t *body, const json_t **ops, char *err);
/* Parse a table spec {"kind":"lww"|"crdt","ttl_field":"..."} for table <name>.
 * MR_EINVAL with a message naming the problem. */
int gtab_spec_parse(const char *name, const json_t *spec, struct gtab_spec *out, char *err);
/* {"kind":...,"ttl_field":...} as a new reference. */
json_t *gtab_spec_json(const struct gtab_spec *s);

/* ---- item states (pure functions, merge.c) ----
 * States are jansson objects (format in gtab_int.h).  Functions returning
 * json_t * return a new reference the caller releases. */
/* Join of two states: idempotent, commutative, associative. */
json_t *gtab_state_merge(const json_t *a, const json_t *b);
/* The plain JSON a reader sees (counters as numbers, sets as sorted arrays),
 * or NULL when the item is deleted. */
json_t *gtab_state_render(const json_t *s);
/* "<hlc>@<origin>" of the state's last write. */
void gtab_state_version(const json_t *s, char *out, size_t size);
uint64_t gtab_state_hlc(const json_t *s);
/* Integer member <k> of object <o> as uint64 (0 when absent or negative). */
uint64_t gtab_json_u64(const json_t *o, const char *k);
/* Apply the operations <ops> (the "ops" array of a request) to <cur> (NULL:
 * a new item) at <hlc> from <origin>.  *out is the new state.  MR_EINVAL
 * (bad op: 400), MR_ECONSTRAINT (type clash: 409), MR_ETOOBIG (a limit: 413),
 * with a message naming the problem. */
int gtab_state_apply_ops(const json_t *cur, const json_t *ops, uint64_t hlc, const char *origin,
                         json_t **out, char *err);
/* New lww state of a put (<doc> borrowed) or a delete (doc NULL); <prev> is
 * the version it replaces ("" when none), <cond> whether If-Match was used. */
json_t *gtab_state_lww(const json_t *doc, uint64_t hlc, const char *origin, const char *prev,
                       int cond);
/* New crdt state after deleting <cur> (observed-remove, docs/tables.md). */
json_t *gtab_state_crdt_delete(const json_t *cur, uint64_t hlc, const char *origin);

/* ---- the store (store.c) ---- */
struct gtab;

struct gtab_table_stats {
    uint64_t conflicts;         /* lww versions discarded in favour of a concurrent one */
    uint64_t conditional_lost;  /* of which an If-Match write of this region */
    uint64_t kind_conflicts;    /* declarations with another kind met here (the later one wins) */
};

/* Open or create <path>.  <region> is this region's name (copied).
 * *out is freed with gtab_close. */
int gtab_open(const char *path, const char *region, int64_t clock_skew_ms, struct gtab **out,
              char *err) __attribute__((warn_unused_result));
void gtab_close(struct gtab *g);

/* Declare a table here (logged, so it replicates).  MR_EEXIST when a table
 * of that name exists with another spec; *created = 0 when identical. */
int gtab_table_put(struct gtab *g, const struct gtab_spec *s, int *created, char *err);
/* Spec of <name>, or NULL (pointer valid until the next table change). */
const struct gtab_spec *gtab_table_get(const struct gtab *g, const char *name);
size_t gtab_n_tables(const struct gtab *g);
const struct gtab_spec *gtab_table_at(const struct gtab *g, size_t i);
const struct gtab_table_stats *gtab_table_stats(const struct gtab *g, size_t i);

/* The outcome of a local write. */
struct gtab_wres {
    char version[GTAB_VERSION_LEN];
    uint64_t seq;               /* its position in this region's log */
};

/* Local writes.  <if_match>: NULL, or a version the current item must have
 * ("*": must exist).  MR_ENOTFOUND unknown table (delete: or item);
 * GTAB_EPRECOND: <if_match> does not hold; MR_ECONSTRAINT (409): wrong kind
 * of table, or a field of another type;
 * MR_EINVAL/MR_ETOOBIG as gtab_state_apply_ops; MR_EIO storage. */
int gtab_put(struct gtab *g, const char *tbl, const char *key, const json_t *doc,
             const char *if_match, struct gtab_wres *res, char *err);
int gtab_delete(struct gtab *g, const char *tbl, const char *key, const char *if_match,
                struct gtab_wres *res, char *err);
int gtab_ops(struct gtab *g, const char *tbl, const char *key, const json_t *ops,
             const char *if_match, struct gtab_wres *res, char *err);

/* Reads, at wall time <now_ms> (TTL).  gtab_get: *doc a new reference, or
 * MR_ENOTFOUND (no such table, item, or it is deleted or expired). */
int gtab_get(struct gtab *g, const char *tbl, const char *key, int64_t now_ms, json_t **doc,
             char version[GTAB_VERSION_LEN], char *err);
/* Up to <limit> live items with key > <after> starting with <prefix>, in
 * byte order, appended to <out> as a JSON array of {"key","version","item"};
 * *more set when there are further items. */
int gtab_list(struct gtab *g, const char *tbl, const char *prefix, const char *after,
              size_t limit, int64_t now_ms, struct mr_buf *out, char *last_key, int *more,
              char *err);
/* SHA-256 over the live items in key order (key, canonical rendered JSON):
 * equal wherever the same writes were merged. */
int gtab_digest(struct gtab *g, const char *tbl, int64_t now_ms, char hex[65], uint64_t *count,
                char *err);

/* ---- transactions ---- */
int gtab_in_txn(const struct gtab *g);
/* Commit the open transaction (if any): visible, written to the WAL, not
 * yet durable (gtab_sync).  On failure the database rolled back and the
 * in-memory positions are stale: the caller stops. */
int gtab_commit(struct gtab *g, char *err) __attribute__((warn_unused_result));
/* Make every transaction committed before the call durable (fdatasync of
 * the WAL; decision 022).  The one function here that may run on another
 * thread, concurrently with any other call but gtab_open/gtab_close: it
 * touches only a file descriptor set by an earlier gtab_commit.  MR_EIO on
 * failure: what was committed may be lost, the caller stops. */
int gtab_sync(struct gtab *g, char *err) __attribute__((warn_unused_result));

/* ---- checkpoints (decision 050) ---- */
/* WAL frames past which a checkpoint is due (about 40 MiB of WAL): a page
 * written several times in between is copied once (decision 023). */
#define GTAB_CHECKPOINT_FRAMES 10000
/* Frames left by a checkpoint beside commits that the last, short one on
 * the store's thread copies; more go through another one beside commits
 * (gtab_checkpoint_again). */
#define GTAB_CHECKPOINT_REST_FRAMES 256
/* Whether the WAL has grown GTAB_CHECKPOINT_FRAMES past the last checkpoint. */
int gtab_checkpoint_due(const struct gtab *g);
/* Copy the committed WAL frames into the database, through a connection of
 * its own, so the caller runs it on another thread, concurrently with any
 * call but gtab_open, gtab_close, gtab_checkpoint_done and another
 * gtab_checkpoint.  Syncs the WAL before copying and the database after.
 * MR_EUNAVAIL when it could not start (try later); MR_EIO on failure (the
 * caller stops). */
int gtab_checkpoint(struct gtab *g, char *err) __attribute__((warn_unused_result));
/* On the store's thread once gtab_checkpoint returned 0: how many frames
 * it left (committed meanwhile; 0 when it copied the whole WAL).  SQLite
 * starts the WAL afresh (instead of growing it) only at the commit of a
 * write transaction that began while every frame was copied: so the
 * caller copies what is left with more gtab_checkpoint calls, the last
 * one right after a commit, before the next write begins. */
int gtab_checkpoint_done(struct gtab *g);
/* With the <left> that gtab_checkpoint_done returned: 1 when the rest
 * should go through another checkpoint beside the commits, 0 when the
 * caller copies it on the store's thread right after its next commit.  That
 * is when the rest is short (GTAB_CHECKPOINT_REST_FRAMES), and also when
 * the WAL has grown to twice GTAB_CHECKPOINT_FRAMES: commits are outrunning
 * the checkpoints beside them, and only a copy that holds the writes back
 * lets the WAL start afresh rather than grow without bound. */
int gtab_checkpoint_again(const struct gtab *g, int left);

/* ---- replication ---- */
/* This region's last log position. */
uint64_t gtab_head(const struct gtab *g);
/* Oldest position still in the log (head + 1 when empty). */
uint64_t gtab_log_first(struct gtab *g);
/* Highest position of <origin> applied here (own region: head). */
uint64_t gtab_applied(const struct gtab *g, const char *origin);
/* {"origin":seq,...} of every origin known, this region's head included. */
void gtab_vector_json(const struct gtab *g, struct mr_buf *out);
/* Entries after <after> and at most <upto> (the committed head: entries of
 * an open transaction must never leave the region), at most <max_n> and
 * about <max_bytes>, as a JSON array of {"seq":n,"ts":ms,"e":entry};
 * ts_out[i] is the write time of the i-th.  *n_out how many, *last their
 * last seq. */
int gtab_log_read(struct gtab *g, uint64_t after, uint64_t upto, size_t max_n, size_t max_bytes,
                  struct mr_buf *out, int64_t *ts_out, size_t *n_out, uint64_t *last, char *err);
/* Apply a batch of <origin>'s entries (array as above) starting at <from>.
 * Entries at or below the applied position are skipped (resent batches are
 * harmless).  MR_EPROTO when <from> leaves a gap (the sender restarts from
 * our vector), MR_ECORRUPT for a malformed entry.  On either, entries before
 * the failing one may be joined already, but the vector does not move: they
 * are joined again when the batch is resent, which changes nothing (joins
 * are idempotent). */
/* The replication body this region sends to a peer (node to node, one
 * format for the node and `meridian bench store`):
 * {"origin","from","head","log_first","entries"}, appended to <out>.  With
 * <entries>, the log entries after from - 1 up to <head> as gtab_log_read
 * gives them (its limits and outputs); without, none (*n_out 0, *last
 * from - 1). */
int gtab_batch_write(struct gtab *g, const char *origin, uint64_t from, uint64_t head, int entries,
                     size_t max_n, size_t max_bytes, struct mr_buf *out, int64_t *ts_out, size_t *n_out,
                     uint64_t *last, char *err);
/* A body from gtab_batch_write, decoded.  <doc> holds the rest: close. */
struct gtab_batch {
    json_t *doc;
    const char *origin;
    uint64_t from, head, log_first;
    const json_t *entries;
};
/* 0, or MR_EINVAL naming what is wrong (nothing to close then). */
int gtab_batch_parse(const char *body, size_t len, struct gtab_batch *b, char *err);
void gtab_batch_close(struct gtab_batch *b);
int gtab_apply_batch(struct gtab *g, const char *origin, uint64_t from, const json_t *entries,
                     size_t *n_applied, char *err);
/* Move this region's head up to <head> (nothing when it is there already)
 * and drop its log entries at or below it: after a loss of this store, the
 * peers have applied positions this store no longer has, and a new entry
 * must not reuse one (they would skip it).  In the open transaction. */
int gtab_skip_head(struct gtab *g, uint64_t head, char *err) __attribute__((warn_unused_result));
/* 1 when the store holds nothing: no table, no position of any region
 * (a new region, or one whose disk was lost). */
int gtab_is_empty(const struct gtab *g);
/* Drop own log entries at or below <upto>. */
int gtab_log_trim(struct gtab *g, uint64_t upto, char *err);
/* Items whose TTL passed before <now_ms>: lww items are removed (local, not
 * logged); crdt items, with <may_write>, are expired by a logged write of
 * this region, at most GTAB_SWEEP_CRDT_MAX per call (decision 046).
 * *removed counts both.  In the open transaction. */
#define GTAB_SWEEP_CRDT_MAX 256
int gtab_sweep(struct gtab *g, int64_t now_ms, int may_write, uint64_t *removed, char *err);
/* Remove lww tombstones whose delete (origin, seq) is covered by <stable>:
 * for each origin, a position every region has applied. */
int gtab_collect(struct gtab *g, const char *const *origins, const uint64_t *stable, size_t n,
                 uint64_t *removed, char *err);
/* Inert crdt tombstones (deleted items whose deletes observed all they
 * held, gtab_int.h) are numbered as they are stored: the last number.
 * gtab_collect_inert removes those numbered <= <upto> (stored before the
 * caller read that number, and unchanged since): safe once every region
 * has applied what this one had applied then, and this one every peer's
 * writes up to the head it reported then (src/node/tstream.c). */
uint64_t gtab_inert_gen(const struct gtab *g);
int gtab_collect_inert(struct gtab *g, uint64_t upto, uint64_t *removed, char *err);
/* The applied vector's origins, <i> in 0..n-1 (this region among them once
 * it has committed a write; gtab_applied gives each one's position). */
size_t gtab_n_origins(const struct gtab *g);
const char *gtab_origin_at(const struct gtab *g, size_t i);
/* Deleted items held (tombstones) in table <tbl>. */
uint64_t gtab_tombstones(struct gtab *g, const char *tbl);

/* A consistent copy of the database at <path> (SQLite backup API).  No
 * transaction may be open (commit first): the copy holds committed state. */
int gtab_backup(struct gtab *g, const char *path, char *err);
/* Seed from a peer's copy at <path>: join every item and table of the copy
 * into this store and raise the applied position of every origin but this
 * region to the copy's (its items include everything those positions
 * cover).  A join, not a replacement: this region's own log, head and any
 * write the copy lacks are kept.  Runs in the open transaction (begun if
 * needed); *n_items items merged.  MR_ECORRUPT when the copy is not a
 * tables database. */
int gtab_merge_snapshot(struct gtab *g, const char *path, uint64_t *n_items, char *err);

#endif
