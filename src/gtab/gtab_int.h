/* gtab_int.h -- formats shared by the files of src/gtab/; not for others.
 *
 * Item state (JSON; integers are JSON numbers, hlc values fit in 63 bits):
 *
 *   lww:  {"k":"l", "h":hlc, "o":origin,
 *          "d":document          absent when deleted
 *          "x":1                 present when deleted (a tombstone)
 *          "p":"<version>"       the version this write replaced ("" none)
 *          "c":1}                present when written with If-Match
 *
 *   crdt: {"k":"c", "h":hlc, "o":origin    the last write (version)
 *          "u":hlc               last operation on the item
 *          "dl":hlc              last delete (0: never); visible iff u > dl
 *          "f":{"name:t": field}}  keyed by name and type (t: n, s or r);
 *                                  states from before decision 044 used "name"
 *     field counter  {"t":"n","u":hlc,"p":{o:n},"n":{o:n},"e":{o:hlc},
 *                     "bp":{o:n},"bn":{o:n},"be":{o:hlc}}
 *                    origin o's contribution p[o], n[o] lives in epoch e[o] (the
 *                    hlc at which o started it; absent: 0); bp/bn: observed at a
 *                    delete, in epoch be[o], and count only while be[o] == e[o];
 *                    value = sum(p - bp) - sum(n - bn).  Maps hold no zeros.
 *     field set      {"t":"s","u":hlc,"a":{elem:{o:hlc}},"r":{elem:{o:hlc}}}
 *                    elem (its JSON text) present iff some o has a[o] > r[o]
 *     field register {"t":"r","u":hlc,"h":hlc,"o":origin,"v":value}
 *     A field is shown iff its u > the item's dl; of several fields of one
 *     name (types written concurrently, or again after a delete) the one
 *     with the greatest (u, t) is shown.
 *
 *   Join: lww by (h, origin) with the item kind as the first key ("l" > "c");
 *   crdt field-wise by typed key, per origin by max (registers by
 *   (h, origin); counters by (epoch, then max)).  Each rule is a
 *   lexicographic product of semilattices, hence a semilattice.
 *
 *   Inert: a deleted crdt item whose deletes observed everything in it (no
 *   counter contribution above its baseline, no set add above its remove).
 *   Joined with anything written after it, it changes nothing a reader
 *   sees: such tombstones are collected (decision 044).
 *
 * Change-log entry (gt_log.e, and "e" on the wire):
 *   item:  {"t":table,"k":key,"s":state}
 *   table: {"T":table,"spec":{"kind":..,"ttl_field":..},"h":hlc,"o":origin}
 *
 * Schema of tables.db:
 *   gt_tables(name PK, spec TEXT, h INTEGER, o TEXT)
 *   gt_items(tbl, key, state TEXT, h INTEGER, o TEXT, dead INTEGER, exp INTEGER,
 *            torigin TEXT, tseq INTEGER, PRIMARY KEY(tbl, key)) WITHOUT ROWID
 *            exp: unix ms after which the item is expired (0: never);
 *            torigin/tseq: log position of the delete that made it a tombstone
 *   gt_log(seq INTEGER PRIMARY KEY, ts INTEGER, e TEXT)      this region's writes
 *   gt_applied(origin TEXT PRIMARY KEY, seq INTEGER)          applied vector (own: head)
 */
#ifndef MR_GTAB_INT_H
#define MR_GTAB_INT_H

#include "gtab.h"

/* Integer member <k> of <o> as uint64 (0 when absent). */
uint64_t gtab__u64(const json_t *o, const char *k);
/* walbuf.c: the VFS tables.db is opened with, which gathers each commit's
 * WAL writes into few write(2) calls (64 KiB each).  Register once before opening (0, or -1
 * when the default VFS is too old to wrap); flush after each COMMIT (an
 * SQLite code; SQLITE_OK when nothing is buffered; on failure *sys_errno
 * is the failed write's errno, 0 when unknown). */
#define GTAB_WALBUF_VFS "meridian-walbuf"
struct sqlite3;
int gtab__walbuf_register(void);
int gtab__walbuf_flush(struct sqlite3 *db, int *sys_errno);
/* Whether a WAL flush at a header barrier ever failed in this process:
 * then frames the WAL header announces may be missing from the file, and
 * no checkpoint may copy them (walbuf.c). */
int gtab__walbuf_failed(void);

/* Whether gtab_state_render(s) would return a document (the item is not
 * deleted), without building it: the write paths only need to know. */
int gtab__state_live(const json_t *s);
/* The crdt state <cur> once expired at <exp_ms> (its TTL), written at
 * <hlc> by <origin>: a delete that observes, and hides, exactly what was
 * written before the expiry (dl = the last HLC before exp_ms), so every
 * region expires it alike and writes made after it stay (decision 046). */
json_t *gtab__state_crdt_expire(const json_t *cur, uint64_t hlc, const char *origin, int64_t exp_ms);
/* Whether <s> is an inert crdt tombstone (above). */
int gtab__state_inert(const json_t *s);
/* Expiry in unix ms of a rendered document for <ttl_field> (0: none). */
int64_t gtab__expiry(const json_t *rendered, const char *ttl_field);

#endif
