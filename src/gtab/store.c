/* store.c -- tables.db: items, this region's change log and the applied
 * vector, in one SQLite database (schema in gtab_int.h).
 *
 * Durability (decision 022): journal_mode=WAL with synchronous=NORMAL, so a
 * COMMIT writes its frames to the WAL without waiting for the disk, and
 * gtab_sync then fdatasyncs the WAL: after it, every transaction committed
 * before it is durable, exactly as a COMMIT under synchronous=FULL would
 * have made it (FULL is "NORMAL, then sync the WAL").  gtab_sync touches
 * only a file descriptor, so the node runs it on another thread while the
 * loop goes on with the next transaction, and acknowledges writes once it
 * returns.  Checkpoints still sync the WAL and the database before they
 * copy or reuse anything (NORMAL keeps that), so a crash never loses a
 * synced frame.  An item change, its log entry and the applied vector
 * change share one transaction, so after a crash the vector never claims
 * more than the items hold, nor less. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/token.h"
#include "../common/util.h"
#include "gtab_int.h"

enum {
    S_GET, S_PUT, S_LOG, S_APPLIED, S_LIST, S_LOGREAD, S_TABLE, S_ALL, S_TOMB, S_LOGFIRST, S_N
};

static const char *const sql_text[S_N] = {
    "SELECT state, exp FROM gt_items WHERE tbl=?1 AND key=?2",
    ("INSERT OR REPLACE INTO gt_items(tbl,key,state,h,o,dead,exp,torigin,tseq) "
     "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
    "INSERT INTO gt_log(seq,ts,e) VALUES(?1,?2,?3)",
    "INSERT OR REPLACE INTO gt_applied(origin,seq) VALUES(?1,?2)",
    "SELECT key,state,dead,exp FROM gt_items WHERE tbl=?1 AND key>?2 ORDER BY key",
    "SELECT seq,ts,e FROM gt_log WHERE seq>?1 AND seq<=?3 ORDER BY seq LIMIT ?2",
    "INSERT OR REPLACE INTO gt_tables(name,spec,h,o) VALUES(?1,?2,?3,?4)",
    "SELECT key,state,dead,exp FROM gt_items WHERE tbl=?1 ORDER BY key",
    "SELECT count(*) FROM gt_items INDEXED BY gt_items_dead WHERE tbl=?1 AND dead=1",
    "SELECT min(seq) FROM gt_log",
};

struct table {
    struct gtab_spec spec;
    uint64_t h;
    char o[GTAB_MAX_NAME + 1];
    struct gtab_table_stats stats;
};

struct gtab {
    sqlite3 *db;
    sqlite3 *ckpt;            /* the checkpointer's connection: gtab_checkpoint only */
    int db_fd;                /* tables.db, for gtab_checkpoint's fdatasync; closed last */
    char *wal_path;           /* <path>-wal */
    int wal_fd;               /* opened after the first commit; gtab_sync */
    int wal_frames;           /* frames in the WAL after the last commit (wal hook) */
    int ckpt_mark;            /* frames of this WAL the last checkpoint copied */
    int ckpt_log, ckpt_copied; /* set by gtab_checkpoint (pool thread) */

    sqlite3_stmt *st[S_N];
    char region[GTAB_MAX_NAME + 1];
    struct gtab_hlc hlc;
    int in_txn;
    uint64_t head;
    uint64_t head_saved;      /* head as gt_applied holds it (gtab_commit saves it) */
    struct {
        char origin[GTAB_MAX_NAME + 1];
        uint64_t seq;
    } vec[GTAB_MAX_ORIGINS];
    size_t n_vec;
    struct table *tables;
    size_t n_tables;
    uint64_t inert_gen;       /* number of the last inert crdt tombstone stored */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS gt_tables(name TEXT PRIMARY KEY, spec TEXT NOT NULL, h INTEGER, o TEXT);"
    "CREATE TABLE IF NOT EXISTS gt_items(tbl TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,"
    " h INTEGER, o TEXT, dead INTEGER, exp INTEGER, torigin TEXT, tseq INTEGER,"
    " PRIMARY KEY(tbl, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS gt_items_exp ON gt_items(exp) WHERE exp > 0;"
    /* Tombstones only: counting and collecting them must not read every
     * item (decision 048). */
    "CREATE INDEX IF NOT EXISTS gt_items_dead ON gt_items(tbl, torigin, tseq) WHERE dead=1;"
    "CREATE TABLE IF NOT EXISTS gt_log(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, e TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS gt_applied(origin TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS gt_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);";

static int db_err(struct gtab *g, char *err, const char *what)
{
    return mr_seterr(err, MR_EIO, "tables.db: %s: %s", what, sqlite3_errmsg(g->db));
}

static int exec(struct gtab *g, const char *sql, char *err)
{
    char *msg = NULL;

    if (sqlite3_exec(g->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mr_seterr(err, MR_EIO, "tables.db: %.60s: %s", sql, msg ? msg : "error");
        sqlite3_free(msg);
        return MR_EIO;
    }
    return 0;
}

static sqlite3_stmt *stmt(struct gtab *g, int i)
{
    sqlite3_reset(g->st[i]);
    sqlite3_clear_bindings(g->st[i]);
    return g->st[i];
}

/* ---- the applied vector and tables in memory ---------------------------- */

static size_t vec_find(const struct gtab *g, const char *origin)
{
    for (size_t i = 0; i < g->n_vec; i++)
        if (strcmp(g->vec[i].origin, origin) == 0)
            return i;
    return g->n_vec;
}

uint64_t gtab_applied(const struct gtab *g, const char *origin)
{
    size_t i;

    if (strcmp(origin, g->region) == 0)
        return g->head;
    i = vec_find(g, origin);
    return i < g->n_vec ? g->vec[i].seq : 0;
}

static int vec_set(struct gtab *g, const char *origin, uint64_t seq, char *err)
{
    size_t i = vec_find(g, origin);
    sqlite3_stmt *s;

    if (i == g->n_vec) {
        if (g->n_vec == GTAB_MAX_ORIGINS)
            return mr_seterr(err, MR_ETOOBIG, "more than %d regions", GTAB_MAX_ORIGINS);
        snprintf(g->vec[i].origin, sizeof(g->vec[i].origin), "%s", origin);
        g->n_vec++;
    }
    g->vec[i].seq = seq;
    s = stmt(g, S_APPLIED);
    sqlite3_bind_text(s, 1, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_err(g, err, "save applied position");
    return 0;
}

void gtab_vector_json(const struct gtab *g, struct mr_buf *out)
{
    mr_buf_putc(out, '{');
    mr_buf_printf(out, "\"%s\":%" PRIu64, g->region, g->head);
    for (size_t i = 0; i < g->n_vec; i++)
        if (strcmp(g->vec[i].origin, g->region) != 0)
            mr_buf_printf(out, ",\"%s\":%" PRIu64, g->vec[i].origin, g->vec[i].seq);
    mr_buf_putc(out, '}');
}

static struct table *table_find(const struct gtab *g, const char *name)
{
    for (size_t i = 0; i < g->n_tables; i++)
        if (strcmp(g->tables[i].spec.name, name) == 0)
            return &g->tables[i];
    return NULL;
}

const struct gtab_spec *gtab_table_get(const struct gtab *g, const char *name)
{
    struct table *t = table_find(g, name);
    return t ? &t->spec : NULL;
}

size_t gtab_n_tables(const struct gtab *g)
{
    return g->n_tables;
}

const struct gtab_spec *gtab_table_at(const struct gtab *g, size_t i)
{
    return &g->tables[i].spec;
}

const struct gtab_table_stats *gtab_table_stats(const struct gtab *g, size_t i)
{
    return &g->tables[i].stats;
}

static struct table *table_add(struct gtab *g, const struct gtab_spec *s, uint64_t h, const char *o)
{
    struct table *t = table_find(g, s->name);

    if (t == NULL) {
        g->tables = mr_realloc(g->tables, (g->n_tables + 1) * sizeof(*g->tables));
        t = &g->tables[g->n_tables++];
        memset(t, 0, sizeof(*t));
    }
    t->spec = *s;
    t->h = h;
    snprintf(t->o, sizeof(t->o), "%s", o);
    return t;
}

/* ---- open / close ----------------------------------------------------------- */

static int load(struct gtab *g, char *err)
{
    sqlite3_stmt *s;
    int rc = 0;

    if (sqlite3_prepare_v2(g->db, "SELECT origin, seq FROM gt_applied", -1, &s, NULL) != SQLITE_OK)
        return db_err(g, err, "read applied vector");
    while (sqlite3_step(s) == SQLITE_ROW && g->n_vec < GTAB_MAX_ORIGINS) {
        const char *o = (const char *)sqlite3_column_text(s, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 1);
        if (strcmp(o, g->region) == 0) {
            g->head = g->head_saved = seq;
            continue;
        }
        snprintf(g->vec[g->n_vec].origin, sizeof(g->vec[0].origin), "%s", o);
        g->vec[g->n_vec++].seq = seq;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(g->db, "SELECT name, spec, h, o FROM gt_tables", -1, &s, NULL) != SQLITE_OK)
        return db_err(g, err, "read tables");
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
        struct gtab_spec spec;
        json_t *j = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
        rc = gtab_spec_parse((const char *)sqlite3_column_text(s, 0), j, &spec, err);
        if (rc == 0)
            table_add(g, &spec, (uint64_t)sqlite3_column_int64(s, 2), (const char *)sqlite3_column_text(s, 3));
        json_decref(j);
    }
    sqlite3_finalize(s);
    if (rc != 0)
        return mr_wraperr(err, MR_ECORRUPT, "tables.db");
    /* The clock never goes back below what this region already saw: the
     * items it holds, and the clock when it last collected tombstones (a
     * write after a restart must still be newer than a collected delete). */
    if (sqlite3_prepare_v2(g->db, "SELECT max(h) FROM gt_items UNION ALL "
                           "SELECT v FROM gt_meta WHERE k='hlc'", -1, &s, NULL) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW)
            gtab_hlc_observe(&g->hlc, (uint64_t)sqlite3_column_int64(s, 0));
        sqlite3_finalize(s);
    }
    if (sqlite3_prepare_v2(g->db, "SELECT max(tseq) FROM gt_items WHERE torigin=''", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            g->inert_gen = (uint64_t)sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    return 0;
}

/* ---- checkpoints (decision 050) --------------------------------------------- */

static int on_wal_commit(void *data, sqlite3 *db, const char *name, int frames)
{
    struct gtab *g = data;

    (void)db;
    (void)name;
    g->wal_frames = frames;
    if (frames < g->ckpt_mark)
        g->ckpt_mark = 0; /* the WAL restarted from its beginning */
    return SQLITE_OK;
}

/* The checkpointer: its own connection, on the default VFS (walbuf's
 * buffer belongs to the main connection's thread), syncing the WAL before
 * it copies and the database before the WAL may be reused (NORMAL). */
static int ckpt_open(struct gtab *g, const char *path, char *err)
{
    if (sqlite3_open_v2(path, &g->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_exec(g->ckpt, "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=16;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "open %s for checkpoints: %s", path,
                         g->ckpt ? sqlite3_errmsg(g->ckpt) : "no memory");
    /* Kept open until both connections are closed: closing any descriptor
     * of a file drops the process's POSIX locks on it, SQLite's included. */
    g->db_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->db_fd < 0)
        return mr_seterr(err, MR_EIO, "open %s: %s", path, strerror(errno));
    sqlite3_wal_hook(g->db, on_wal_commit, g);
    return 0;
}

int gtab_checkpoint_due(const struct gtab *g)
{
    return g->wal_frames - g->ckpt_mark >= GTAB_CHECKPOINT_FRAMES;
}

int gtab_checkpoint(struct gtab *g, char *err)
{
    int log = 0, copied = 0, rc;

    if (gtab__walbuf_failed())
        return mr_seterr(err, MR_EIO, "tables.db: a WAL write failed: no checkpoint");
    rc = sqlite3_wal_checkpoint_v2(g->ckpt, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc == SQLITE_BUSY)
        return mr_seterr(err, MR_EUNAVAIL, "tables.db: checkpoint: busy");
    if (rc != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "tables.db: checkpoint: %s (%lld MiB free on its filesystem)",
                         sqlite3_errmsg(g->ckpt), (long long)mr_disk_free_mib(g->wal_path));
    /* SQLite syncs the database only when a checkpoint reaches the WAL's
     * end, which one running beside commits does not: that sync would fall
     * to the short one on the loop (gtab_checkpoint_done), with all these
     * pages to write.  Syncing them here leaves it only its own. */
    if (fdatasync(g->db_fd) != 0)
        return mr_seterr(err, MR_EIO, "fdatasync %s: %s", sqlite3_db_filename(g->ckpt, "main"),
                         strerror(errno));
    g->ckpt_log = log;
    g->ckpt_copied = copied;
    return 0;
}

int gtab_checkpoint_done(struct gtab *g)
{
    if (g->ckpt_copied > g->ckpt_mark)
        g->ckpt_mark = g->ckpt_copied;
    /* Its view of the WAL was the one of its start: the loop may have
     * committed since. */
    if (g->ckpt_copied < g->ckpt_log)
        return g->wal_frames > g->ckpt_copied ? g->wal_frames - g->ckpt_copied : 1;
    return g->wal_frames > g->ckpt_copied ? g->wal_frames - g->ckpt_copied : 0;
}

int gtab_checkpoint_again(const struct gtab *g, int left)
{
    return left > GTAB_CHECKPOINT_REST_FRAMES && g->wal_frames < 2 * GTAB_CHECKPOINT_FRAMES;
}

int gtab_open(const char *path, const char *region, int64_t clock_skew_ms, struct gtab **out,
              char *err)
{
    struct gtab *g = mr_calloc(1, sizeof(*g));
    int rc;

    snprintf(g->region, sizeof(g->region), "%s", region);
    g->hlc.skew_ms = clock_skew_ms;
    g->wal_fd = -1;
    g->db_fd = -1;
    g->wal_path = mr_asprintf("%s-wal", path);

    /* The WAL-gathering VFS when it can wrap the default one (walbuf.c). */
    if (sqlite3_open_v2(path, &g->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        gtab__walbuf_register() == 0 ? GTAB_WALBUF_VFS : NULL) != SQLITE_OK) {
        rc = mr_seterr(err, MR_EIO, "open %s: %s", path, g->db ? sqlite3_errmsg(g->db) : "no memory");
        goto err_after_open;
    }
    sqlite3_busy_timeout(g->db, 5000);
    /* WAL + NORMAL: a commit writes the WAL, gtab_sync makes it durable
     * (see the top of the file).  No automatic checkpoint: the node runs
     * them on another thread through a second connection (gtab_checkpoint,
     * decision 050), which is why the locking is the normal, shared one (an
     * exclusive lock would keep that connection out).  A 64 MiB page cache
     * and memory-mapped reads keep reads out of pread(2). */
    rc = exec(g, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                 " PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;", err);
    if (rc == 0)
        rc = exec(g, schema, err);
    if (rc == 0)
        rc = ckpt_open(g, path, err);
    for (int i = 0; rc == 0 && i < S_N; i++)
        if (sqlite3_prepare_v3(g->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &g->st[i], NULL) !=
            SQLITE_OK)
            rc = db_err(g, err, "prepare");
    if (rc == 0)
        rc = load(g, err);
    if (rc != 0)
        goto err_after_open;
    *out = g;
    return 0;

err_after_open:
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(g->st[i]);
    sqlite3_close(g->ckpt);
    sqlite3_close(g->db);
    if (g->db_fd >= 0)
        close(g->db_fd);
    mr_free(g->wal_path);
    mr_free(g);
    return rc;
}

void gtab_close(struct gtab *g)
{
    if (g == NULL)
        return;
    if (g->in_txn)
        (void)exec(g, "ROLLBACK", NULL);
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(g->st[i]);
    if (g->wal_fd >= 0)
        close(g->wal_fd);
    sqlite3_close(g->ckpt);   /* first: the last connection to close checkpoints */
    sqlite3_close(g->db);
    if (g->db_fd >= 0)
        close(g->db_fd);
    mr_free(g->wal_path);
    mr_free(g->tables);
    mr_free(g);
}

/* ---- transactions ------------------------------------------------------------ */

static int begin(struct gtab *g, char *err)
{
    if (g->in_txn)
        return 0;
    if (exec(g, "BEGIN IMMEDIATE", err) != 0)
        return MR_EIO;
    g->in_txn = 1;
    return 0;
}

int gtab_in_txn(const struct gtab *g)
{
    return g->in_txn;
}

/* Open the WAL for gtab_sync once a commit has created it, and make its
 * name durable in the directory (a synced WAL is of no use if the file
 * itself may vanish with a power loss).  SQLite keeps that file (same
 * inode) while the connection is open: it deletes it only when closing,
 * and reuses it in place after a checkpoint (journal_size_limit is off). */
static int wal_open(struct gtab *g, char *err)
{
    char *dir;
    int dfd;

    g->wal_fd = open(g->wal_path, O_RDWR | O_CLOEXEC);
    if (g->wal_fd < 0 && errno == ENOENT)
        return 0; /* nothing was ever written to a WAL: nothing to sync yet */
    if (g->wal_fd < 0)
        return mr_seterr(err, MR_EIO, "open %s: %s", g->wal_path, strerror(errno));
    dir = mr_strdup(g->wal_path);
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mr_free(dir);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        close(g->wal_fd);
        g->wal_fd = -1;
        return mr_seterr(err, MR_EIO, "sync the directory of %s: %s", g->wal_path, strerror(e));
    }
    close(dfd);
    return 0;
}

int gtab_commit(struct gtab *g, char *err)
{
    int rc, e;

    if (!g->in_txn)
        return 0;
    if (g->head != g->head_saved) {
        if (vec_set(g, g->region, g->head, err) != 0) {
            g->in_txn = 0;
            (void)exec(g, "ROLLBACK", NULL);
            return MR_EIO;
        }
        g->head_saved = g->head;
    }
    g->in_txn = 0;
    if (exec(g, "COMMIT", err) != 0) {
        (void)exec(g, "ROLLBACK", NULL);
        return MR_EIO;
    }
    /* The commit's frames may still be in walbuf's buffer: write them
     * before anyone syncs the WAL.  Failing here, the commit is in SQLite's
     * memory and not in the file: the caller stops. */
    if ((rc = gtab__walbuf_flush(g->db, &e)) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "tables.db: write the WAL: %s (%s)", sqlite3_errstr(rc),
                         e ? strerror(e) : "errno unknown");
    if (g->wal_fd < 0)
        return wal_open(g, err);
    return 0;
}

int gtab_sync(struct gtab *g, char *err)
{
    /* Nothing committed yet since the open: nothing to make durable
     * (wal_fd is set by the loop thread before any sync is started). */
    if (g->wal_fd < 0)
        return 0;
    if (fdatasync(g->wal_fd) != 0)
        return mr_seterr(err, MR_EIO, "fdatasync %s: %s", g->wal_path, strerror(errno));
    return 0;
}

/* ---- items ------------------------------------------------------------------- */

/* The stored state of <tbl>/<key> (new reference) or NULL. */
/* <exp> (may be NULL): the item's expiry as stored (unix ms, 0 none). */
static int item_load(struct gtab *g, const char *tbl, const char *key, json_t **state, int64_t *exp, char *err)
{
    sqlite3_stmt *s = stmt(g, S_GET);
    int rc;

    *state = NULL;
    if (exp)
        *exp = 0;
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_err(g, err, "read item");
    *state = json_loadb((const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0), 0, NULL);
    if (exp)
        *exp = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    if (*state == NULL)
        return mr_seterr(err, MR_ECORRUPT, "tables.db: item %s/%s: state is not JSON", tbl, key);
    return 0;
}

/* Store <state> as the item <tbl>/<key>.  With <text_out>, the compact JSON
 * of the state is handed over (the caller frees it): a local write logs
 * the same text and need not encode the state twice. */
static int item_store(struct gtab *g, const char *tbl, const char *key, const json_t *state,
                      const char *torigin, uint64_t tseq, char **text_out, char *err)
{
    const struct gtab_spec *spec = gtab_table_get(g, tbl);
    sqlite3_stmt *s = stmt(g, S_PUT);
    char *text = json_dumps(state, JSON_COMPACT);
    int dead = !gtab__state_live(state), rc = 0;
    int64_t exp = 0;

    if (text == NULL)
        return mr_seterr(err, MR_ENOMEM, "tables: cannot encode the state of %s/%s", tbl, key);
    /* Rendering builds the whole document: only the TTL needs it. */
    if (!dead && spec && spec->ttl_field[0]) {
        json_t *r = gtab_state_render(state);
        exp = gtab__expiry(r, spec->ttl_field);
        json_decref(r);
    }
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)gtab_state_hlc(state));
    sqlite3_bind_text(s, 5, json_string_value(json_object_get(state, "o")), -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, dead);
    sqlite3_bind_int64(s, 7, exp);
    if (dead && torigin && json_object_get(state, "x")) {
        sqlite3_bind_text(s, 8, torigin, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)tseq);
    } else if (dead && gtab__state_inert(state)) {
        /* Numbered, so that a collection round takes only the rows that
         * did not change since it began (gtab_collect_inert). */
        sqlite3_bind_text(s, 8, "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)++g->inert_gen);
    }
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(g, err, "write item");
    sqlite3_reset(s);
    if (rc == 0 && text_out)
        *text_out = text;
    else
        free(text);
    return rc;
}

/* Append the entry <text> (JSON, see gtab_int.h) at g->head.  The applied
 * vector's row for this region (its head) is saved once per transaction,
 * by gtab_commit, not once per write. */
static int log_append(struct gtab *g, const char *text, size_t len, char *err)
{
    sqlite3_stmt *s = stmt(g, S_LOG);
    int rc = 0;

    sqlite3_bind_int64(s, 1, (sqlite3_int64)g->head);
    sqlite3_bind_int64(s, 2, mr_now_ms());
    sqlite3_bind_text(s, 3, text, (int)len, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(g, err, "append to the log");
    sqlite3_reset(s);
    return rc;
}

static int log_append_json(struct gtab *g, json_t *entry, char *err)
{
    char *text = json_dumps(entry, JSON_COMPACT);
    int rc = text ? log_append(g, text, strlen(text), err)
                  : mr_seterr(err, MR_ENOMEM, "tables: cannot encode a log entry");

    free(text);
    return rc;
}

/* Check <if_match> against the current state <cur>: GTAB_EPRECOND when it fails. */
static int check_match(const json_t *cur, const char *if_match, char *err)
{
    char have[GTAB_VERSION_LEN];
    int live;

    if (if_match == NULL)
        return 0;
    live = gtab__state_live(cur);
    if (strcmp(if_match, "*") == 0)
        return live ? 0 : mr_seterr(err, GTAB_EPRECOND, "If-Match: *: the item does not exist");
    if (!live)
        return mr_seterr(err, GTAB_EPRECOND, "If-Match: the item does not exist");
    gtab_state_version(cur, have, sizeof(have));
    if (strcmp(have, if_match) != 0)
        return mr_seterr(err, GTAB_EPRECOND, "If-Match: the item's version is %s, not %.100s", have,
                         if_match);
    return 0;
}

/* The common tail of local item writes: store, log, answer. */
static int write_item(struct gtab *g, const char *tbl, const char *key, json_t *state,
                      struct gtab_wres *res, char *err)
{
    struct mr_buf e;
    char *text = NULL;
    int rc;

    g->head++;
    rc = item_store(g, tbl, key, state, g->region, g->head, &text, err);
    if (rc == 0) {
        /* {"t":tbl,"k":key,"s":state}, as json_pack would encode it. */
        mr_buf_init(&e);
        mr_buf_puts(&e, "{\"t\":");
        mr_json_cstr(&e, tbl);
        mr_buf_puts(&e, ",\"k\":");
        mr_json_cstr(&e, key);
        mr_buf_puts(&e, ",\"s\":");
        mr_buf_puts(&e, text);
        mr_buf_putc(&e, '}');
        rc = log_append(g, e.data, e.len, err);
        mr_buf_close(&e);
        free(text);
    }
    if (rc != 0)
        return rc;
    gtab_state_version(state, res->version, sizeof(res->version));
    res->seq = g->head;
    return 0;
}

static int prepare_write(struct gtab *g, const char *tbl, const char *key, enum gtab_kind want,
                         int need_kind, json_t **cur, int64_t *exp, char *err)
{
    const struct gtab_spec *spec = gtab_table_get(g, tbl);
    int rc;

    *cur = NULL;
    if (spec == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "no table named '%.64s'", tbl);
    if (need_kind && spec->kind != want)
        return mr_seterr(err, MR_ECONSTRAINT, want == GTAB_LWW
                             ? "table '%s' is a crdt table: write it with POST .../items/KEY/ops"
                             : "table '%s' is an lww table: write documents with PUT", tbl);
    if ((rc = gtab_key_valid(key, strlen(key), err)) != 0)
        return rc;
    if ((rc = begin(g, err)) != 0)
        return rc;
    return item_load(g, tbl, key, cur, exp, err);
}

int gtab_put(struct gtab *g, const char *tbl, const char *key, const json_t *doc,
             const char *if_match, struct gtab_wres *res, char *err)
{
    char prev[GTAB_VERSION_LEN] = "";
    json_t *cur, *state;
    size_t size;
    int rc;

    size = json_dumpb(doc, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (size > GTAB_MAX_DOC)
        return mr_seterr(err, MR_ETOOBIG, "document of %zu bytes: at most %d", size, GTAB_MAX_DOC);
    if (!json_is_object(doc))
        return mr_seterr(err, MR_EINVAL, "the document must be a JSON object");
    if ((rc = prepare_write(g, tbl, key, GTAB_LWW, 1, &cur, NULL, err)) != 0)
        return rc;
    if ((rc = check_match(cur, if_match, err)) == 0) {
        if (cur)
            gtab_state_version(cur, prev, sizeof(prev));
        state = gtab_state_lww(doc, gtab_hlc_now(&g->hlc, mr_now_ms()), g->region, prev, if_match != NULL);
        rc = write_item(g, tbl, key, state, res, err);
        json_decref(state);
    }
    json_decref(cur);
    return rc;
}

int gtab_delete(struct gtab *g, const char *tbl, const char *key, const char *if_match,
                struct gtab_wres *res, char *err)
{
    char prev[GTAB_VERSION_LEN] = "";
    json_t *cur, *state;
    int rc;

    if ((rc = prepare_write(g, tbl, key, GTAB_LWW, 0, &cur, NULL, err)) != 0)
        return rc;
    if (!gtab__state_live(cur)) {
        rc = mr_seterr(err, MR_ENOTFOUND, "no item '%.64s' in table '%s'", key, tbl);
    } else if ((rc = check_match(cur, if_match, err)) == 0) {
        uint64_t hlc = gtab_hlc_now(&g->hlc, mr_now_ms());
        gtab_state_version(cur, prev, sizeof(prev));
        if (json_string_value(json_object_get(cur, "k"))[0] == 'c')
            state = gtab_state_crdt_delete(cur, hlc, g->region);
        else
            state = gtab_state_lww(NULL, hlc, g->region, prev, if_match != NULL);
        rc = write_item(g, tbl, key, state, res, err);
        json_decref(state);
    }
    json_decref(cur);
    return rc;
}

int gtab_ops(struct gtab *g, const char *tbl, const char *key, const json_t *ops,
             const char *if_match, struct gtab_wres *res, char *err)
{
    json_t *cur, *state;
    int64_t exp, now;
    int rc;

    if ((rc = prepare_write(g, tbl, key, GTAB_CRDT, 1, &cur, &exp, err)) != 0)
        return rc;
    /* Expired but not swept yet: the ops apply to the expired state, as
     * they will once the sweep has run (decision 046). */
    if (cur != NULL && exp > 0 && exp <= (now = mr_now_ms())) {
        json_t *expired = gtab__state_crdt_expire(cur, gtab_hlc_now(&g->hlc, now), g->region, exp);
        json_decref(cur);
        cur = expired;
    }
    if ((rc = check_match(cur, if_match, err)) == 0 &&
        (rc = gtab_state_apply_ops(cur, ops, gtab_hlc_now(&g->hlc, mr_now_ms()), g->region, &state,
                                   err)) == 0) {
        rc = write_item(g, tbl, key, state, res, err);
        json_decref(state);
    }
    json_decref(cur);
    return rc;
}

/* ---- tables --------------------------------------------------------------------- */

static int table_store(struct gtab *g, const struct gtab_spec *s, uint64_t h, const char *o, char *err)
{
    sqlite3_stmt *st = stmt(g, S_TABLE);
    json_t *j = gtab_spec_json(s);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = 0;

    sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)h);
    sqlite3_bind_text(st, 4, o, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(g, err, "write table");
    sqlite3_reset(st);
    free(text);
    json_decref(j);
    if (rc == 0)
        table_add(g, s, h, o);
    return rc;
}

int gtab_table_put(struct gtab *g, const struct gtab_spec *s, int *created, char *err)
{
    const struct gtab_spec *have = gtab_table_get(g, s->name);
    json_t *entry;
    uint64_t h;
    int rc;

    *created = 0;
    if (have) {
        if (have->kind == s->kind && strcmp(have->ttl_field, s->ttl_field) == 0)
            return 0;
        return mr_seterr(err, MR_EEXIST, "table '%s' exists with another spec (kind %s%s%s)", s->name,
                         gtab_kind_name(have->kind), have->ttl_field[0] ? ", ttl_field " : "",
                         have->ttl_field);
    }
    if (g->n_tables >= GTAB_MAX_TABLES)
        return mr_seterr(err, MR_ETOOBIG, "at most %d tables", GTAB_MAX_TABLES);
    if ((rc = begin(g, err)) != 0)
        return rc;
    h = gtab_hlc_now(&g->hlc, mr_now_ms());
    g->head++;
    if ((rc = table_store(g, s, h, g->region, err)) != 0)
        return rc;
    entry = json_pack("{s:s,s:o,s:I,s:s}", "T", s->name, "spec", gtab_spec_json(s), "h", (json_int_t)h,
                      "o", g->region);
    rc = log_append_json(g, entry, err);
    json_decref(entry);
    if (rc == 0)
        *created = 1;
    return rc;
}

/* ---- reads ------------------------------------------------------------------------ */

static int live(sqlite3_stmt *s, int64_t now_ms)
{
    int64_t exp = sqlite3_column_int64(s, 3);
    return sqlite3_column_int(s, 2) == 0 && (exp == 0 || exp > now_ms);
}

int gtab_get(struct gtab *g, const char *tbl, const char *key, int64_t now_ms, json_t **doc,
             char version[GTAB_VERSION_LEN], char *err)
{
    const struct gtab_spec *spec = gtab_table_get(g, tbl);
    json_t *state;
    int rc;

    *doc = NULL;
    if (spec == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "no table named '%.64s'", tbl);
    if ((rc = gtab_key_valid(key, strlen(key), err)) != 0)
        return rc;
    if ((rc = item_load(g, tbl, key, &state, NULL, err)) != 0)
        return rc;
    *doc = gtab_state_render(state);
    if (*doc && spec->ttl_field[0]) {
        int64_t exp = gtab__expiry(*doc, spec->ttl_field);
        if (exp && exp <= now_ms) {
            json_decref(*doc);
            *doc = NULL;
        }
    }
    if (*doc)
        gtab_state_version(state, version, GTAB_VERSION_LEN);
    json_decref(state);
    if (*doc == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "no item '%.64s' in table '%s'", key, tbl);
    return 0;
}

int gtab_list(struct gtab *g, const char *tbl, const char *prefix, const char *after,
              size_t limit, int64_t now_ms, struct mr_buf *out, char *last_key, int *more,
              char *err)
{
    size_t n = 0, plen = strlen(prefix);
    sqlite3_stmt *s;
    int rc;

    *more = 0;
    last_key[0] = '\0';
    if (gtab_table_get(g, tbl) == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "no table named '%.64s'", tbl);
    s = stmt(g, S_LIST);
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    /* Start at the larger of <after> and just below <prefix>. */
    sqlite3_bind_text(s, 2, strcmp(after, prefix) > 0 ? after : prefix, -1, SQLITE_STATIC);
    mr_buf_putc(out, '[');
    if (plen && strcmp(after, prefix) < 0) {
        /* key > prefix skips the key equal to <prefix>: look it up, unless
         * it is <after> (only keys > <after>: it was on the last page). */
        json_t *doc;
        char ver[GTAB_VERSION_LEN];
        if (gtab_get(g, tbl, prefix, now_ms, &doc, ver, NULL) == 0) {
            char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
            mr_buf_puts(out, "{\"key\":");
            mr_json_cstr(out, prefix);
            mr_buf_printf(out, ",\"version\":\"%s\",\"item\":%s}", ver, text);
            free(text);
            json_decref(doc);
            snprintf(last_key, GTAB_MAX_KEY + 1, "%s", prefix);
            n++;
        }
        s = stmt(g, S_LIST);
        sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, prefix, -1, SQLITE_STATIC);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(s, 0);
        json_t *state, *doc;
        char ver[GTAB_VERSION_LEN], *text;
        if (plen && strncmp(key, prefix, plen) != 0)
            break;
        if (!live(s, now_ms))
            continue;
        if (n == limit) {
            *more = 1;
            break;
        }
        state = json_loadb((const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1), 0, NULL);
        doc = gtab_state_render(state);
        if (doc) {
            text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
            gtab_state_version(state, ver, sizeof(ver));
            if (n)
                mr_buf_putc(out, ',');
            mr_buf_puts(out, "{\"key\":");
            mr_json_cstr(out, key);
            mr_buf_printf(out, ",\"version\":\"%s\",\"item\":%s}", ver, text);
            free(text);
            snprintf(last_key, GTAB_MAX_KEY + 1, "%s", key);
            n++;
        }
        json_decref(doc);
        json_decref(state);
    }
    sqlite3_reset(s);
    mr_buf_putc(out, ']');
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(g, err, "list items");
    return 0;
}

int gtab_digest(struct gtab *g, const char *tbl, int64_t now_ms, char hex[65], uint64_t *count,
                char *err)
{
    EVP_MD_CTX *md;
    unsigned char h[32];
    unsigned int hlen = 0;
    sqlite3_stmt *s;
    int rc;

    *count = 0;
    if (gtab_table_get(g, tbl) == NULL)
        return mr_seterr(err, MR_ENOTFOUND, "no table named '%.64s'", tbl);
    md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    s = stmt(g, S_ALL);
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(s, 0);
        json_t *state, *doc;
        char *text;
        if (!live(s, now_ms))
            continue;
        state = json_loadb((const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1), 0, NULL);
        doc = gtab_state_render(state);
        if (doc) {
            text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            EVP_DigestUpdate(md, key, strlen(key) + 1);
            EVP_DigestUpdate(md, text, strlen(text) + 1);
            free(text);
            (*count)++;
        }
        json_decref(doc);
        json_decref(state);
    }
    sqlite3_reset(s);
    EVP_DigestFinal_ex(md, h, &hlen);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    if (rc != SQLITE_DONE)
        return db_err(g, err, "digest");
    return 0;
}

/* ---- replication ---------------------------------------------------------------------- */

uint64_t gtab_head(const struct gtab *g)
{
    return g->head;
}

uint64_t gtab_log_first(struct gtab *g)
{
    /* Prepared once: every batch sent asks (preparing cost more than the query). */
    sqlite3_stmt *s = stmt(g, S_LOGFIRST);
    uint64_t first = g->head + 1;

    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        first = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return first;
}

int gtab_log_read(struct gtab *g, uint64_t after, uint64_t upto, size_t max_n, size_t max_bytes,
                  struct mr_buf *out, int64_t *ts_out, size_t *n_out, uint64_t *last, char *err)
{
    sqlite3_stmt *s = stmt(g, S_LOGREAD);
    size_t n = 0, start = out->len;
    int rc;

    *last = after;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max_n);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)upto);
    mr_buf_putc(out, '[');
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        int64_t ts = sqlite3_column_int64(s, 1);
        if (n)
            mr_buf_putc(out, ',');
        mr_buf_printf(out, "{\"seq\":%" PRIu64 ",\"ts\":%lld,\"e\":", seq, (long long)ts);
        mr_buf_append(out, sqlite3_column_text(s, 2), (size_t)sqlite3_column_bytes(s, 2));
        mr_buf_putc(out, '}');
        ts_out[n++] = ts;
        *last = seq;
        if (out->len - start >= max_bytes)
            break;
    }
    sqlite3_reset(s);
    mr_buf_putc(out, ']');
    *n_out = n;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(g, err, "read the log");
    return 0;
}

int gtab_batch_write(struct gtab *g, const char *origin, uint64_t from, uint64_t head, int entries,
                     size_t max_n, size_t max_bytes, struct mr_buf *out, int64_t *ts_out, size_t *n_out,
                     uint64_t *last, char *err)
{
    int rc = 0;

    *n_out = 0;
    *last = from - 1;
    mr_buf_puts(out, "{\"origin\":");
    mr_json_cstr(out, origin);
    mr_buf_printf(out, ",\"from\":%" PRIu64 ",\"head\":%" PRIu64 ",\"log_first\":%" PRIu64 ",\"entries\":", from,
                  head, gtab_log_first(g));
    if (entries)
        rc = gtab_log_read(g, from - 1, head, max_n, max_bytes, out, ts_out, n_out, last, err);
    else
        mr_buf_puts(out, "[]");
    mr_buf_putc(out, '}');
    return rc;
}

int gtab_batch_parse(const char *body, size_t len, struct gtab_batch *b, char *err)
{
    json_int_t from;

    memset(b, 0, sizeof(*b));
    b->doc = json_loadb(body ? body : "", len, 0, NULL);
    b->origin = json_string_value(json_object_get(b->doc, "origin"));
    from = json_integer_value(json_object_get(b->doc, "from"));
    b->entries = json_object_get(b->doc, "entries");
    if (b->doc == NULL || b->origin == NULL || !mr_token_origin_valid(b->origin, strlen(b->origin)) ||
        from < 1 || !json_is_array(b->entries)) {
        gtab_batch_close(b);
        return mr_seterr(err, MR_EINVAL, "expected {\"origin\",\"from\",\"head\",\"entries\"} "
                         "(tables replication, node to node)");
    }
    b->from = (uint64_t)from;
    b->head = gtab__u64(b->doc, "head");
    b->log_first = gtab__u64(b->doc, "log_first");
    return 0;
}

void gtab_batch_close(struct gtab_batch *b)
{
    json_decref(b->doc);
    memset(b, 0, sizeof(*b));
}

static int apply_table_entry(struct gtab *g, const json_t *e, char *err)
{
    struct gtab_spec spec;
    struct table *t;
    const char *name = json_string_value(json_object_get(e, "T"));
    const char *o = json_string_value(json_object_get(e, "o"));
    uint64_t h = gtab__u64(e, "h");

    if (name == NULL || o == NULL || gtab_spec_parse(name, json_object_get(e, "spec"), &spec, err) != 0)
        return mr_seterr(err, MR_ECORRUPT, "malformed table entry");
    gtab_hlc_observe(&g->hlc, h);
    t = table_find(g, name);
    if (t && t->spec.kind != spec.kind) {
        /* Declared concurrently with two kinds: the later declaration wins
         * everywhere, but items already written under the other kind keep
         * it.  Never silent (docs/tables.md). */
        const char *have = gtab_kind_name(t->spec.kind), *came = gtab_kind_name(spec.kind);
        int ours = t->h > h || (t->h == h && strcmp(t->o, o) >= 0);
        t->stats.kind_conflicts++;
        mr_log(MR_LOG_WARN, "tables", "table %s is declared %s (by %s) and %s (by %s): %s wins in every region "
               "(the later declaration); items already written as %s keep that kind", name, have, t->o, came, o,
               ours ? have : came, ours ? came : have);
    }
    if (t && (t->h > h || (t->h == h && strcmp(t->o, o) >= 0)))
        return 0;
    return table_store(g, &spec, h, o, err);
}

/* Count and log an lww conflict: <loser> was discarded for <winner>, and the
 * winner was not written over the loser (its "p" is another version). */
static void note_conflict(struct gtab *g, const char *tbl, const char *key, const json_t *winner,
                          const json_t *loser)
{
    struct table *t = table_find(g, tbl);
    char wv[GTAB_VERSION_LEN], lv[GTAB_VERSION_LEN];
    const char *lo = json_string_value(json_object_get(loser, "o"));

    gtab_state_version(winner, wv, sizeof(wv));
    gtab_state_version(loser, lv, sizeof(lv));
    if (strcmp(wv, lv) == 0)
        return;
    if (strcmp(json_string_value(json_object_get(winner, "p")) ?: "", lv) == 0 ||
        strcmp(json_string_value(json_object_get(loser, "p")) ?: "", wv) == 0)
        return; /* one was written over the other: no concurrency */
    if (t) {
        t->stats.conflicts++;
        if (json_object_get(loser, "c") && lo && strcmp(lo, g->region) == 0)
            t->stats.conditional_lost++;
    }
    if (mr_log_min_level <= MR_LOG_DEBUG) {
        char *d = json_dumps(json_object_get(loser, "d"), JSON_COMPACT | JSON_ENCODE_ANY);
        mr_log(MR_LOG_DEBUG, "tables", "conflict on %s/%s: version %s wins over %s (overwritten: %.200s)",
               tbl, key, wv, lv, d ? d : "deleted");
        free(d);
    }
}

static int apply_item_entry(struct gtab *g, const char *origin, uint64_t seq, const json_t *e, char *err)
{
    const char *tbl = json_string_value(json_object_get(e, "t"));
    const char *key = json_string_value(json_object_get(e, "k"));
    json_t *inc = json_object_get(e, "s"), *cur, *merged;
    int rc;

    if (tbl == NULL || key == NULL || !json_is_object(inc) || !json_is_string(json_object_get(inc, "k")))
        return mr_seterr(err, MR_ECORRUPT, "malformed item entry");
    gtab_hlc_observe(&g->hlc, gtab_state_hlc(inc));
    if ((rc = item_load(g, tbl, key, &cur, NULL, err)) != 0)
        return rc;
    merged = gtab_state_merge(cur, inc);
    if (cur && json_equal(merged, cur)) {
        if (json_string_value(json_object_get(cur, "k"))[0] == 'l')
            note_conflict(g, tbl, key, cur, inc);
        rc = 0;
    } else {
        if (cur && json_string_value(json_object_get(cur, "k"))[0] == 'l')
            note_conflict(g, tbl, key, merged, cur);
        rc = item_store(g, tbl, key, merged, origin, seq, NULL, err);
    }
    json_decref(merged);
    json_decref(cur);
    return rc;
}

int gtab_apply_batch(struct gtab *g, const char *origin, uint64_t from, const json_t *entries,
                     size_t *n_applied, char *err)
{
    uint64_t at = gtab_applied(g, origin);
    size_t i, n = json_array_size(entries);
    int rc;

    *n_applied = 0;
    if (strcmp(origin, g->region) == 0)
        return mr_seterr(err, MR_EPROTO, "a batch from this region itself");
    if (from > at + 1)
        return mr_seterr(err, MR_EPROTO, "batch starts at %" PRIu64 ", applied %" PRIu64 ": a gap", from, at);
    if ((rc = begin(g, err)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        const json_t *x = json_array_get(entries, i), *e = json_object_get(x, "e");
        uint64_t seq = gtab__u64(x, "seq");
        if (seq == 0 || !json_is_object(e))
            return mr_seterr(err, MR_ECORRUPT, "entry %zu: expected {\"seq\",\"ts\",\"e\"}", i + 1);
        if (seq <= at)
            continue;
        if (seq != at + 1)
            return mr_seterr(err, MR_EPROTO, "entry %" PRIu64 " after %" PRIu64 ": a gap", seq, at);
        rc = json_object_get(e, "T") ? apply_table_entry(g, e, err) : apply_item_entry(g, origin, seq, e, err);
        if (rc != 0)
            return rc;
        at = seq;
        (*n_applied)++;
    }
    if (*n_applied)
        return vec_set(g, origin, at, err);
    return 0;
}

int gtab_skip_head(struct gtab *g, uint64_t head, char *err)
{
    int rc;

    if (head <= g->head)
        return 0;
    if ((rc = begin(g, err)) != 0)
        return rc;
    /* Entries of this store at those positions are not the ones the peers
     * applied there: they must never be sent. */
    if ((rc = gtab_log_trim(g, head, err)) != 0)
        return rc;
    g->head = head;   /* saved by gtab_commit, like every head */
    return 0;
}

int gtab_is_empty(const struct gtab *g)
{
    if (g->head != 0 || g->n_tables != 0)
        return 0;
    for (size_t i = 0; i < g->n_vec; i++)
        if (g->vec[i].seq != 0)
            return 0;
    return 1;
}

int gtab_log_trim(struct gtab *g, uint64_t upto, char *err)
{
    char sql[96];
    int rc;

    if ((rc = begin(g, err)) != 0)
        return rc;
    snprintf(sql, sizeof(sql), "DELETE FROM gt_log WHERE seq <= %" PRIu64, upto);
    return exec(g, sql, err);
}

/* Expire the crdt item <tbl>/<key> (state <cur>, TTL <exp_ms>) as a
 * logged write of this region (decision 046). */
static int crdt_expire(struct gtab *g, const char *tbl, const char *key, const json_t *cur, int64_t exp_ms,
                       char *err)
{
    json_t *state = gtab__state_crdt_expire(cur, gtab_hlc_now(&g->hlc, mr_now_ms()), g->region, exp_ms);
    struct gtab_wres res;
    int rc = write_item(g, tbl, key, state, &res, err);

    json_decref(state);
    return rc;
}

int gtab_sweep(struct gtab *g, int64_t now_ms, int may_write, uint64_t *removed, char *err)
{
    char sql[160];
    sqlite3_stmt *s;
    struct {
        char *tbl, *key;
        json_t *state;
        int64_t exp;
    } due[GTAB_SWEEP_CRDT_MAX];
    size_t n_due = 0;
    int rc;

    *removed = 0;
    if ((rc = begin(g, err)) != 0)
        return rc;
    /* Crdt items expire as a logged delete of what was written before the
     * expiry, not by dropping the row: a region that dropped it would
     * start afresh while another, whose sweep has not run yet, joins the
     * new writes with the old content and shows it again. */
    snprintf(sql, sizeof(sql), "SELECT tbl, key, state, exp FROM gt_items WHERE exp > 0 AND exp <= %lld "
             "AND json_extract(state, '$.k') = 'c' LIMIT %d", (long long)now_ms, GTAB_SWEEP_CRDT_MAX);
    if (may_write) {
        if (sqlite3_prepare_v2(g->db, sql, -1, &s, NULL) != SQLITE_OK)
            return db_err(g, err, "find expired items");
        while (n_due < GTAB_SWEEP_CRDT_MAX && sqlite3_step(s) == SQLITE_ROW) {
            due[n_due].state = json_loads((const char *)sqlite3_column_text(s, 2), 0, NULL);
            if (due[n_due].state == NULL)
                continue;
            due[n_due].tbl = mr_strdup((const char *)sqlite3_column_text(s, 0));
            due[n_due].key = mr_strdup((const char *)sqlite3_column_text(s, 1));
            due[n_due++].exp = sqlite3_column_int64(s, 3);
        }
        sqlite3_finalize(s);
    }
    for (size_t i = 0; i < n_due; i++) {
        if (rc == 0 && (rc = crdt_expire(g, due[i].tbl, due[i].key, due[i].state, due[i].exp, err)) == 0)
            (*removed)++;
        mr_free(due[i].tbl);
        mr_free(due[i].key);
        json_decref(due[i].state);
    }
    if (rc != 0)
        return rc;
    snprintf(sql, sizeof(sql), "DELETE FROM gt_items WHERE exp > 0 AND exp <= %lld AND "
             "json_extract(state, '$.k') != 'c'", (long long)now_ms);
    if ((rc = exec(g, sql, err)) == 0)
        *removed += (uint64_t)sqlite3_changes(g->db);
    return rc;
}

/* Before rows go: remember the clock (load() restores it). */
static int save_clock(struct gtab *g, char *err)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO gt_meta(k,v) VALUES('hlc',%" PRIu64 ")", g->hlc.last);
    return exec(g, sql, err);
}

int gtab_collect(struct gtab *g, const char *const *origins, const uint64_t *stable, size_t n,
                 uint64_t *removed, char *err)
{
    sqlite3_stmt *s;
    int rc = 0;

    *removed = 0;
    if (n == 0)
        return 0;
    if ((rc = begin(g, err)) != 0 || (rc = save_clock(g, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(g->db, "DELETE FROM gt_items INDEXED BY gt_items_dead "
                           "WHERE dead=1 AND torigin=?1 AND tseq<=?2", -1, &s, NULL) != SQLITE_OK)
        return db_err(g, err, "collect tombstones");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, origins[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)stable[i]);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = db_err(g, err, "collect tombstones");
        else
            *removed += (uint64_t)sqlite3_changes(g->db);
    }
    sqlite3_finalize(s);
    return rc;
}

uint64_t gtab_inert_gen(const struct gtab *g)
{
    return g->inert_gen;
}

int gtab_collect_inert(struct gtab *g, uint64_t upto, uint64_t *removed, char *err)
{
    /* Inert tombstones are the ones numbered under the origin ''. */
    const char *none = "";

    return gtab_collect(g, &none, &upto, 1, removed, err);
}

size_t gtab_n_origins(const struct gtab *g)
{
    return g->n_vec;
}

const char *gtab_origin_at(const struct gtab *g, size_t i)
{
    return i < g->n_vec ? g->vec[i].origin : NULL;
}

uint64_t gtab_tombstones(struct gtab *g, const char *tbl)
{
    sqlite3_stmt *s = stmt(g, S_TOMB);
    uint64_t n = 0;

    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return n;
}

int gtab_backup(struct gtab *g, const char *path, char *err)
{
    sqlite3 *dst;
    sqlite3_backup *b;
    int rc;

    if (sqlite3_open(path, &dst) != SQLITE_OK) {
        sqlite3_close(dst);
        return mr_seterr(err, MR_EIO, "backup to %s: cannot open", path);
    }
    b = sqlite3_backup_init(dst, "main", g->db, "main");
    if (b == NULL) {
        rc = mr_seterr(err, MR_EIO, "backup: %s", sqlite3_errmsg(dst));
        sqlite3_close(dst);
        return rc;
    }
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    sqlite3_close(dst);
    return rc == SQLITE_DONE ? 0 : mr_seterr(err, MR_EIO, "backup to %s: %s", path, sqlite3_errstr(rc));
}

int gtab_merge_snapshot(struct gtab *g, const char *path, uint64_t *n_items, char *err)
{
    sqlite3 *snap = NULL;
    sqlite3_stmt *s = NULL;
    int rc, step;

    *n_items = 0;
    if (sqlite3_open_v2(path, &snap, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = mr_seterr(err, MR_ECORRUPT, "snapshot %s: cannot open", path);
        goto out;
    }
    if ((rc = begin(g, err)) != 0)
        goto out;
    /* Tables: the entry format, so that the join rule is the stream's. */
    if (sqlite3_prepare_v2(snap, "SELECT name, spec, h, o FROM gt_tables", -1, &s, NULL) != SQLITE_OK) {
        rc = mr_seterr(err, MR_ECORRUPT, "snapshot: %s", sqlite3_errmsg(snap));
        goto out;
    }
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *spec = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
        json_t *e = json_pack("{s:s,s:o*,s:I,s:s}", "T", (const char *)sqlite3_column_text(s, 0), "spec", spec,
                              "h", (json_int_t)sqlite3_column_int64(s, 2), "o",
                              sqlite3_column_text(s, 3) ? (const char *)sqlite3_column_text(s, 3) : "");
        rc = e ? apply_table_entry(g, e, err) : mr_seterr(err, MR_ECORRUPT, "snapshot: bad table row");
        json_decref(e);
    }
    sqlite3_finalize(s);
    s = NULL;
    if (rc != 0)
        goto out;
    if (sqlite3_prepare_v2(snap, "SELECT tbl, key, state, torigin, tseq FROM gt_items", -1, &s, NULL) != SQLITE_OK) {
        rc = mr_seterr(err, MR_ECORRUPT, "snapshot: %s", sqlite3_errmsg(snap));
        goto out;
    }
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *torigin = (const char *)sqlite3_column_text(s, 3);
        json_t *state = json_loads((const char *)sqlite3_column_text(s, 2), 0, NULL);
        json_t *e = json_pack("{s:s,s:s,s:o*}", "t", (const char *)sqlite3_column_text(s, 0), "k",
                              (const char *)sqlite3_column_text(s, 1), "s", state);
        rc = e ? apply_item_entry(g, torigin, (uint64_t)sqlite3_column_int64(s, 4), e, err)
               : mr_seterr(err, MR_ECORRUPT, "snapshot: bad item row");
        json_decref(e);
        (*n_items)++;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (rc != 0)
        goto out;
    if (sqlite3_prepare_v2(snap, "SELECT origin, seq FROM gt_applied", -1, &s, NULL) != SQLITE_OK) {
        rc = mr_seterr(err, MR_ECORRUPT, "snapshot: %s", sqlite3_errmsg(snap));
        goto out;
    }
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(s, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 1);
        if (o && strcmp(o, g->region) != 0 && mr_token_origin_valid(o, strlen(o)) && seq > gtab_applied(g, o))
            rc = vec_set(g, o, seq, err);
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(snap);
    return rc;
}
