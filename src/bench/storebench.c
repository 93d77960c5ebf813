/* storebench.c -- `meridian bench store` (see storebench.h).  Two stores in
 * one process: region "a" takes crdt "set" writes as the node does (the
 * request body parsed, gtab_ops, a commit and a sync per group), region "b"
 * applies a's log as the node does (gtab_batch_write's body, gtab_batch_parse,
 * gtab_apply_batch, a commit and a sync per batch).  Checkpoints run where they fall due, on
 * the same thread.  The stores are filled once before the runs, so that
 * each run writes over existing items, as a long benchmark does. */
#include "storebench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../gtab/gtab.h"
#include "report.h"
#include "topo.h"

#define VALUE_BYTES 200   /* as `meridian bench tables` and redis-benchmark */
#define BATCH_BYTES (512 * 1024) /* the node's default tables_batch_bytes */

/* Commit, sync, and checkpoint when due, as the node does between turns. */
static int settle(struct gtab *g, char *err)
{
    int rc = gtab_commit(g, err);

    if (rc == 0)
        rc = gtab_sync(g, err);
    while (rc == 0 && gtab_checkpoint_due(g)) {
        if ((rc = gtab_checkpoint(g, err)) == 0 && gtab_checkpoint_done(g) == 0)
            break;
    }
    return rc;
}

static int write_local(struct gtab *g, int n, int keys, int commit_every, unsigned *seed, char *err)
{
    char key[32], body[VALUE_BYTES + 96];
    int rc = 0;

    for (int i = 0; rc == 0 && i < n; i++) {
        unsigned k = (unsigned)rand_r(seed) % (unsigned)keys;
        struct gtab_wres res;
        const json_t *ops;
        json_t *doc;
        int len = snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"set\",\"field\":\"v\",\"value\":\"%0*u\"}]}",
                           VALUE_BYTES, k);

        snprintf(key, sizeof(key), "k%u", k);
        doc = json_loadb(body, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
        rc = gtab_ops_body(doc, &ops, err);
        if (rc == 0)
            rc = gtab_ops(g, "bench", key, ops, NULL, &res, err);
        json_decref(doc);
        if (rc == 0 && (i + 1) % commit_every == 0)
            rc = settle(g, err);
    }
    return rc == 0 && gtab_in_txn(g) ? settle(g, err) : rc;
}

/* The replication bodies a sends for its log after <after>, <per_batch>
 * entries each (under load the node sends what a
 * turn or two committed, not its limit of 2000), into <bodies> (the caller
 * closes each). */
static int read_batches(struct gtab *a, uint64_t after, size_t per_batch, struct mr_buf **bodies,
                        size_t *n_bodies, char *err)
{
    int64_t *ts = mr_malloc(per_batch * sizeof(*ts));
    uint64_t head = gtab_head(a);
    int rc = 0;

    *bodies = NULL;
    *n_bodies = 0;
    while (rc == 0 && after < head) {
        struct mr_buf b;
        uint64_t last;
        size_t n;

        mr_buf_init(&b);
        rc = gtab_batch_write(a, "a", after + 1, head, 1, per_batch, BATCH_BYTES, &b, ts, &n, &last, err);
        *bodies = mr_realloc(*bodies, (*n_bodies + 1) * sizeof(**bodies));
        (*bodies)[(*n_bodies)++] = b;
        after = last;
    }
    free(ts);
    return rc;
}

static int apply_batches(struct gtab *b, const struct mr_buf *bodies, size_t n_bodies, char *err)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n_bodies; i++) {
        struct gtab_batch batch;
        size_t applied;
        if ((rc = gtab_batch_parse(bodies[i].data, bodies[i].len, &batch, err)) != 0)
            return rc;
        rc = gtab_apply_batch(b, batch.origin, batch.from, batch.entries, &applied, err);
        gtab_batch_close(&batch);
        if (rc == 0)
            rc = settle(b, err);
    }
    return rc;
}

/* <n> writes in a, applied in b; with <out>, their CPU per write. */
static int round_trip(struct gtab *a, struct gtab *b, int n, int keys, int commit_every, unsigned *seed,
                      struct storebench_sample *out, char *err)
{
    uint64_t after = gtab_applied(b, "a");
    struct mr_buf *bodies = NULL;
    size_t n_bodies = 0;
    double t0 = mr_cpu_seconds(), t1;
    int rc = write_local(a, n, keys, commit_every, seed, err);

    t1 = mr_cpu_seconds();
    if (rc == 0)
        rc = read_batches(a, after, (size_t)commit_every, &bodies, &n_bodies, err);
    if (rc == 0) {
        double t2 = mr_cpu_seconds();
        rc = apply_batches(b, bodies, n_bodies, err);
        if (out) {
            out->local_ns = (t1 - t0) / n * 1e9;
            out->apply_ns = (mr_cpu_seconds() - t2) / n * 1e9;
        }
    }
    for (size_t i = 0; i < n_bodies; i++)
        mr_buf_close(&bodies[i]);
    free(bodies);
    return rc;
}

int storebench_measure(int runs, int n, int keys, int commit_every, struct storebench_sample *out, char *err)
{
    char dir[] = "/tmp/meridian-storebench-XXXXXX", path[64];
    struct gtab_spec spec = {.name = "bench", .kind = GTAB_CRDT};
    struct gtab *a = NULL, *b = NULL;
    unsigned seed = 1;
    int created, rc;

    if (runs < 1 || runs > 64)
        return mr_seterr(err, MR_EINVAL, "runs: expected 1 to 64, found %d", runs);
    if (mkdtemp(dir) == NULL)
        return mr_seterr(err, MR_EIO, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/a.db", dir);
    rc = gtab_open(path, "a", 0, &a, err);
    snprintf(path, sizeof(path), "%s/b.db", dir);
    if (rc == 0)
        rc = gtab_open(path, "b", 0, &b, err);
    if (rc == 0)
        rc = gtab_table_put(a, &spec, &created, err);
    if (rc == 0)
        rc = gtab_table_put(b, &spec, &created, err);
    if (rc == 0)
        rc = settle(a, err);
    if (rc == 0)
        rc = settle(b, err);
    /* Every key written once, unmeasured: the runs overwrite items. */
    if (rc == 0)
        rc = round_trip(a, b, keys, keys, commit_every, &seed, NULL, err);
    for (int i = 0; rc == 0 && i < runs; i++)
        rc = round_trip(a, b, n, keys, commit_every, &seed, &out[i], err);
    if (a)
        gtab_close(a);
    if (b)
        gtab_close(b);
    if (topo_remove_dir(dir) != 0 && rc == 0)
        rc = mr_seterr(err, MR_EIO, "could not remove %s", dir);
    return rc;
}

/* ---- the floor: SQLite alone ------------------------------------------------------------
 *
 * What any store of this contract on SQLite pays, whatever its encoding:
 * the item read and written back, the write appended to a log that the
 * streams read, WAL commits in the same groups made durable by fdatasync,
 * checkpoints at the same size.  Rows as long as the store's, prepared
 * text instead of JSON, no indexes beyond the keys, one connection. */

struct floor_db {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *log;
    char wal_path[96];
    int wal_fd, frames;
    uint64_t seq;
    uint64_t read_bytes;      /* of the items read: the reads are not optimised away */
};

static int floor_on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((struct floor_db *)arg)->frames = frames;
    return SQLITE_OK;
}

static int floor_open(struct floor_db *f, const char *path, char *err)
{
    memset(f, 0, sizeof(*f));
    f->wal_fd = -1;
    snprintf(f->wal_path, sizeof(f->wal_path), "%s-wal", path);
    if (sqlite3_open(path, &f->db) != SQLITE_OK ||
        sqlite3_exec(f->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                            " PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
                            "CREATE TABLE items(key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;"
                            "CREATE TABLE log(seq INTEGER PRIMARY KEY, e TEXT NOT NULL);",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->db, "SELECT state FROM items WHERE key=?1", -1, &f->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->db, "INSERT OR REPLACE INTO items(key,state) VALUES(?1,?2)", -1, &f->put, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(f->db, "INSERT INTO log(seq,e) VALUES(?1,?2)", -1, &f->log, NULL) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "floor: %s: %s", path, f->db ? sqlite3_errmsg(f->db) : "no memory");
    sqlite3_wal_hook(f->db, floor_on_wal, f);
    return 0;
}

static void floor_close(struct floor_db *f)
{
    sqlite3_finalize(f->get);
    sqlite3_finalize(f->put);
    sqlite3_finalize(f->log);
    sqlite3_close(f->db);
    if (f->wal_fd >= 0)
        close(f->wal_fd);
}

static int floor_step(struct floor_db *f, sqlite3_stmt *s, char *err)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return mr_seterr(err, MR_EIO, "floor: %s", sqlite3_errmsg(f->db));
    return 0;
}

/* Item <key>'s value, read as a store must to merge into it. */
static int floor_read(struct floor_db *f, const char *key, char *err)
{
    int rc;

    sqlite3_bind_text(f->get, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(f->get);
    if (rc == SQLITE_ROW && sqlite3_column_text(f->get, 0) != NULL)
        f->read_bytes += (uint64_t)sqlite3_column_bytes(f->get, 0);
    sqlite3_reset(f->get);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return mr_seterr(err, MR_EIO, "floor: %s", sqlite3_errmsg(f->db));
    return 0;
}

static int floor_settle(struct floor_db *f, char *err)
{
    if (sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "floor: commit: %s", sqlite3_errmsg(f->db));
    if (f->wal_fd < 0 && (f->wal_fd = open(f->wal_path, O_RDWR | O_CLOEXEC)) < 0)
        return mr_seterr(err, MR_EIO, "floor: %s: %s", f->wal_path, strerror(errno));
    if (fdatasync(f->wal_fd) != 0)
        return mr_seterr(err, MR_EIO, "floor: fdatasync: %s", strerror(errno));
    if (f->frames >= GTAB_CHECKPOINT_FRAMES &&
        sqlite3_wal_checkpoint_v2(f->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "floor: checkpoint: %s", sqlite3_errmsg(f->db));
    return 0;
}

/* One write of key <k>: read, write back, and with <logged> append to the log. */
static int floor_write(struct floor_db *f, unsigned k, int logged, char *err)
{
    char key[32], state[VALUE_BYTES + 160], entry[sizeof(state) + 64];
    int64_t h = (int64_t)1 << 40 | k;
    int len, elen, rc;

    if (sqlite3_get_autocommit(f->db) && sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "floor: begin: %s", sqlite3_errmsg(f->db));
    /* As long as the store's state of such an item (gtab_int.h). */
    snprintf(key, sizeof(key), "k%u", k);
    len = snprintf(state, sizeof(state), "{\"k\":\"c\",\"h\":%lld,\"o\":\"a\",\"u\":%lld,\"dl\":0,\"f\":{\"v:r\":"
                   "{\"t\":\"r\",\"u\":%lld,\"h\":%lld,\"o\":\"a\",\"v\":\"%0*u\"}}}", (long long)h,
                   (long long)h, (long long)h, (long long)h, VALUE_BYTES, k);
    rc = floor_read(f, key, err);
    sqlite3_bind_text(f->put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(f->put, 2, state, len, SQLITE_STATIC);
    if (rc == 0)
        rc = floor_step(f, f->put, err);
    if (rc == 0 && logged) {
        elen = snprintf(entry, sizeof(entry), "{\"t\":\"bench\",\"k\":\"%s\",\"s\":%s}", key, state);
        sqlite3_bind_int64(f->log, 1, (sqlite3_int64)++f->seq);
        sqlite3_bind_text(f->log, 2, entry, elen, SQLITE_STATIC);
        rc = floor_step(f, f->log, err);
    }
    return rc;
}

/* <n> writes over <keys> keys in a (logged, a commit every <commit_every>)
 * and the same in b (not logged, a commit per <commit_every> too, as the store
 * bench applies them); with <out>, their CPU per write. */
static int floor_round(struct floor_db *a, struct floor_db *b, int n, int keys, int commit_every,
                       unsigned *seed, struct storebench_sample *out, char *err)
{
    unsigned *k = mr_malloc((size_t)n * sizeof(*k));
    double t0, t1;
    int rc = 0;

    for (int i = 0; i < n; i++)
        k[i] = (unsigned)rand_r(seed) % (unsigned)keys;
    t0 = mr_cpu_seconds();
    for (int i = 0; rc == 0 && i < n; i++)
        if ((rc = floor_write(a, k[i], 1, err)) == 0 && ((i + 1) % commit_every == 0 || i + 1 == n))
            rc = floor_settle(a, err);
    t1 = mr_cpu_seconds();
    for (int i = 0; rc == 0 && i < n; i++)
        if ((rc = floor_write(b, k[i], 0, err)) == 0 && ((i + 1) % commit_every == 0 || i + 1 == n))
            rc = floor_settle(b, err);
    if (rc == 0 && out) {
        out->local_ns = (t1 - t0) / n * 1e9;
        out->apply_ns = (mr_cpu_seconds() - t1) / n * 1e9;
    }
    free(k);
    return rc;
}

int storebench_floor(int runs, int n, int keys, int commit_every, struct storebench_sample *out, char *err)
{
    char dir[] = "/tmp/meridian-storebench-XXXXXX", path[64];
    struct floor_db a, b;
    unsigned seed = 1;
    int rc;

    memset(&b, 0, sizeof(b));
    b.wal_fd = -1;
    if (runs < 1 || runs > 64)
        return mr_seterr(err, MR_EINVAL, "runs: expected 1 to 64, found %d", runs);
    if (mkdtemp(dir) == NULL)
        return mr_seterr(err, MR_EIO, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/a.db", dir);
    rc = floor_open(&a, path, err);
    snprintf(path, sizeof(path), "%s/b.db", dir);
    if (rc == 0)
        rc = floor_open(&b, path, err);
    if (rc == 0)
        rc = floor_round(&a, &b, keys, keys, commit_every, &seed, NULL, err);
    for (int i = 0; rc == 0 && i < runs; i++)
        rc = floor_round(&a, &b, n, keys, commit_every, &seed, &out[i], err);
    floor_close(&a);
    floor_close(&b);
    if (topo_remove_dir(dir) != 0 && rc == 0)
        rc = mr_seterr(err, MR_EIO, "could not remove %s", dir);
    return rc;
}

/* Median of <n> samples' <field> (sorts a copy). */
static double median(const struct storebench_sample *s, int n, int apply)
{
    double v[64];

    for (int i = 0; i < n; i++)
        v[i] = apply ? s[i].apply_ns : s[i].local_ns;
    return report_median_of(v, (size_t)n);
}

double storebench_three_regions_ns(const struct storebench_sample *s, int runs)
{
    return median(s, runs, 0) + 2 * median(s, runs, 1);
}

static void print_runs(const char *what, const struct storebench_sample *s, int runs)
{
    for (int i = 0; i < runs; i++)
        printf("  %s run %d: local %.0f ns, applied %.0f ns per write\n", what, i + 1, s[i].local_ns,
               s[i].apply_ns);
}

int storebench_main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"runs", required_argument, NULL, 'r'}, {"writes", required_argument, NULL, 'n'},
        {"keys", required_argument, NULL, 'k'}, {"commit-every", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int64_t runs = 5, n = 20000, keys = 100000, every = 64;
    struct storebench_sample s[64], f[64];
    double store, floor;
    char err[MR_ERRMSG_LEN];
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "r:n:k:c:h", longs, NULL)) != -1) {
        int64_t *slot = c == 'r' ? &runs : c == 'n' ? &n : c == 'k' ? &keys : c == 'c' ? &every : NULL;
        int64_t max = c == 'r' ? 64 : c == 'c' ? 10000 : 10000000;
        const char *name = c == 'r' ? "runs" : c == 'n' ? "writes" : c == 'k' ? "keys" : "commit-every";
        if (slot && mr_parse_i64(optarg, 1, max, slot) == 0)
            continue;
        if (slot)
            fprintf(stderr, "meridian bench store: --%s: expected 1 to %lld, found '%s'\n", name, (long long)max,
                    optarg);
        fprintf(c == 'h' ? stdout : stderr,
                "usage: meridian bench store [--runs 5] [--writes 20000] [--keys 100000] [--commit-every 64]\n\n"
                "CPU time of one global-tables write in the store (src/gtab), where it is made and where it\n"
                "is applied, in one process without network: a crdt \"set\" of a %d-byte value on a random\n"
                "key, as `meridian bench tables` writes.  Then the floor: SQLite alone doing what any store\n"
                "of this contract must (read the item, write it back, log the write, the same commits,\n"
                "fdatasyncs and checkpoints), with rows as long and no JSON.  The keys are all written once\n"
                "before the runs.  Medians over the runs.\n", VALUE_BYTES);
        return c == 'h' ? 0 : 2;
    }
    mr_log_setup(NULL, "bench", MR_LOG_ERROR);
    printf("meridian bench store: %lld writes per run over %lld keys, a commit every %lld, %lld runs\n",
           (long long)n, (long long)keys, (long long)every, (long long)runs);
    fflush(stdout);
    if (storebench_measure((int)runs, (int)n, (int)keys, (int)every, s, err) != 0 ||
        storebench_floor((int)runs, (int)n, (int)keys, (int)every, f, err) != 0) {
        fprintf(stderr, "meridian bench store: %s\n", err);
        return 1;
    }
    print_runs("store", s, (int)runs);
    print_runs("floor", f, (int)runs);
    store = storebench_three_regions_ns(s, (int)runs);
    floor = storebench_three_regions_ns(f, (int)runs);
    printf("store (src/gtab)      local %6.0f ns  applied %6.0f ns  three regions %6.0f ns: %6.0f writes per "
           "CPU-second\n", median(s, (int)runs, 0), median(s, (int)runs, 1), store, 1e9 / store);
    printf("floor (SQLite alone)  local %6.0f ns  applied %6.0f ns  three regions %6.0f ns: %6.0f writes per "
           "CPU-second\n", median(f, (int)runs, 0), median(f, (int)runs, 1), floor, 1e9 / floor);
    printf("store / floor: %.2fx; on %ld cores with nothing else running, at most %.0f writes/s (store) and "
           "%.0f (floor)\n", store / floor, sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_NPROCESSORS_ONLN) * 1e9 / store,
           sysconf(_SC_NPROCESSORS_ONLN) * 1e9 / floor);
    return 0;
}
