/* walbuf.c -- a VFS over SQLite's default one that gathers a commit's WAL
 * writes into few write(2) calls.
 *
 * SQLite writes each WAL frame in two calls, its 24-byte header and then
 * the page, so a commit of 60 pages made 120 pwrite(2) calls, and each
 * call went through the page cache's per-page bookkeeping (in the profile of
 * a node under writes, WAL writes were ~15 % of its time).  The frames of
 * a commit are contiguous: this VFS keeps contiguous writes to a WAL in a
 * buffer and writes them with one pwrite per 64 KiB when a write is not
 * contiguous or would overflow the buffer, before any read, sync, size query, truncation,
 * memory mapping or close of that file, and when the store asks
 * (gtab__walbuf_flush, right after COMMIT: with synchronous=NORMAL SQLite
 * does not sync the WAL at commit, the node does, decision 022).
 *
 * Other files (the database, temporary files) pass straight through.  The
 * buffer belongs to one connection used by one thread, like the file
 * itself; gtab_sync syncs through its own descriptor, after the flush.
 *
 * Another connection (the checkpointer, store.c, on the default VFS) reads
 * the WAL's frames from the file, up to the last commit the shared header
 * announces.  So a commit's frames must be in the file before SQLite
 * publishes that header: it calls the database file's xShmBarrier between
 * the header's two copies (walIndexWriteHdr), after writing the frames,
 * and readers only take a header whose copies agree.  The barrier of a
 * database file therefore flushes its WAL's buffer first.  A flush that
 * fails there cannot fail the commit (the barrier returns nothing): the
 * error stays with the WAL, gtab__walbuf_flush reports it right after the
 * COMMIT (the node stops), and gtab__walbuf_failed tells the checkpointer
 * not to start, so no frame that missed the file is ever copied.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "../common/vfswrap.h"
#include "gtab_int.h"

#define WALBUF_CAP (1024 * 1024)
#define WALBUF_CHUNK (64 * 1024)  /* bytes per write(2) of a flush */

struct wb_file {
    struct vfswrap_file w;    /* base (pMethods = &wb_methods); real: the default VFS's file, right after this struct */
    int wal;                  /* a WAL: writes are gathered */
    struct wb_file *peer;     /* a database: its WAL; a WAL: its database (same connection) */
    int failed_rc;            /* a WAL: a flush at a barrier failed (sticky) */
    unsigned char *buf;       /* WALBUF_CAP bytes, allocated at the first write */
    size_t len;
    sqlite3_int64 off;        /* file offset of buf[0] */
    int last_errno;           /* of the last failed flush */
};

static sqlite3_vfs *wb_orig;
static int wb_failed;         /* some flush at a barrier failed: no checkpoint may start */

static int wb_flush(struct wb_file *f)
{
    int rc = SQLITE_OK;

    /* In pieces: the unix VFS writes at most 128 KiB - 1 per call (it
     * masks the length with 0x1ffff and reports SQLITE_FULL beyond). */
    for (size_t done = 0; done < f->len && rc == SQLITE_OK; done += WALBUF_CHUNK) {
        size_t n = f->len - done < WALBUF_CHUNK ? f->len - done : WALBUF_CHUNK;
        rc = f->w.real->pMethods->xWrite(f->w.real, f->buf + done, (int)n, f->off + (sqlite3_int64)done);
    }
    /* The failed write's errno, for the message: SQLite's own error
     * state never saw this write (it went through the buffer). */
    if (rc != SQLITE_OK &&
        f->w.real->pMethods->xFileControl(f->w.real, SQLITE_FCNTL_LAST_ERRNO, &f->last_errno) != SQLITE_OK)
        f->last_errno = 0;
    f->len = 0;
    return rc;
}

#define REAL(p) VFSWRAP_REAL(p)
#define FLUSH_OR_RETURN(p)                              \
    do {                                                \
        int frc_ = wb_flush((struct wb_file *)(p));     \
        if (frc_ != SQLITE_OK)                          \
            return frc_;                                \
    } while (0)

static int wb_close(sqlite3_file *p)
{
    struct wb_file *f = (struct wb_file *)p;
    int rc = wb_flush(f), rc2 = f->w.real->pMethods->xClose(f->w.real);

    if (f->peer)
        f->peer->peer = NULL;

    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *out, int n, sqlite3_int64 off)
{
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xRead(REAL(p), out, n, off);
}

static int wb_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)p;

    if (!f->wal || n <= 0 || (size_t)n > WALBUF_CHUNK)
        goto direct;
    if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_CAP))
        FLUSH_OR_RETURN(p);
    if (f->buf == NULL && (f->buf = malloc(WALBUF_CAP)) == NULL)
        goto direct;
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += (size_t)n;
    return SQLITE_OK;

direct:
    FLUSH_OR_RETURN(p);
    return f->w.real->pMethods->xWrite(f->w.real, data, n, off);
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xTruncate(REAL(p), size);
}

static int wb_sync(sqlite3_file *p, int flags)
{
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xSync(REAL(p), flags);
}

static int wb_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xFileSize(REAL(p), size);
}

static int wb_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

/* See the top of the file: the frames go to the file before the header
 * that announces them. */
static void wb_shm_barrier(sqlite3_file *p)
{
    struct wb_file *f = (struct wb_file *)p, *wal = f->peer;

    if (!f->wal && wal && wal->len) {
        int rc = wb_flush(wal);
        if (rc != SQLITE_OK) {
            wal->failed_rc = rc;
            __atomic_store_n(&wb_failed, 1, __ATOMIC_SEQ_CST);
        }
    }
    vfswrap_shm_barrier(p);
}

/* Version 3, like the unix VFS's; gtab__walbuf_register refuses a default
 * VFS whose files are older (we would call methods they lack). */
static const sqlite3_io_methods wb_methods = {
    3, wb_close, wb_read, wb_write, wb_truncate, wb_sync, wb_file_size, vfswrap_lock, vfswrap_unlock,
    vfswrap_check_reserved, vfswrap_file_control, vfswrap_sector_size, vfswrap_device, vfswrap_shm_map,
    vfswrap_shm_lock, wb_shm_barrier, vfswrap_shm_unmap, wb_fetch, vfswrap_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags)
{
    struct wb_file *f = (struct wb_file *)p;
    int rc;

    (void)vfs;
    memset(f, 0, sizeof(*f));
    f->w.real = (sqlite3_file *)(f + 1);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    rc = wb_orig->xOpen(wb_orig, name, f->w.real, flags, out_flags);
    if (rc != SQLITE_OK || f->w.real->pMethods == NULL || f->w.real->pMethods->iVersion < 3) {
        if (f->w.real->pMethods)
            f->w.real->pMethods->xClose(f->w.real);
        p->pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    p->pMethods = &wb_methods;
    if (f->wal) {
        /* SQLite opens a WAL after its database, through the same VFS, and
         * closes it first. */
        struct wb_file *db = (struct wb_file *)sqlite3_database_file_object(name);
        if (db && db->w.base.pMethods == &wb_methods) {
            db->peer = f;
            f->peer = db;
        }
    }
    return SQLITE_OK;
}

/* The rest of the VFS is the default one's. */
static int wb_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return wb_orig->xDelete(wb_orig, name, sync_dir);
}

static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return wb_orig->xAccess(wb_orig, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return wb_orig->xFullPathname(wb_orig, name, n, out);
}

static void *wb_dlopen(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return wb_orig->xDlOpen(wb_orig, name);
}

static void wb_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    wb_orig->xDlError(wb_orig, n, out);
}

static void (*wb_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return wb_orig->xDlSym(wb_orig, h, sym);
}

static void wb_dlclose(sqlite3_vfs *v, void *h)
{
    (void)v;
    wb_orig->xDlClose(wb_orig, h);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return wb_orig->xRandomness(wb_orig, n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return wb_orig->xSleep(wb_orig, us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return wb_orig->xCurrentTime(wb_orig, out);
}

static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return wb_orig->xGetLastError ? wb_orig->xGetLastError(wb_orig, n, out) : 0;
}

static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return wb_orig->xCurrentTimeInt64(wb_orig, out);
}

static sqlite3_vfs wb_vfs = {
    2, 0, 0, NULL, GTAB_WALBUF_VFS, NULL, wb_open, wb_delete, wb_access, wb_full_pathname, wb_dlopen,
    wb_dlerror, wb_dlsym, wb_dlclose, wb_randomness, wb_sleep, wb_current_time, wb_last_error,
    wb_current_time64, NULL, NULL, NULL,
};

int gtab__walbuf_register(void)
{
    sqlite3_vfs *def;

    if (wb_orig)
        return 0;
    def = sqlite3_vfs_find(NULL);
    if (def == NULL || def->iVersion < 2 || def->xCurrentTimeInt64 == NULL)
        return -1;
    wb_orig = def;
    wb_vfs.szOsFile = (int)sizeof(struct wb_file) + def->szOsFile;
    wb_vfs.mxPathname = def->mxPathname;
    if (sqlite3_vfs_register(&wb_vfs, 0) != SQLITE_OK) {
        wb_orig = NULL;
        return -1;
    }
    return 0;
}

int gtab__walbuf_flush(sqlite3 *db, int *sys_errno)
{
    sqlite3_file *p = NULL;
    int rc;

    *sys_errno = 0;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &p) != SQLITE_OK || p == NULL ||
        p->pMethods != &wb_methods)
        return SQLITE_OK; /* not ours (or no WAL open): nothing buffered */
    rc = wb_flush((struct wb_file *)p);
    if (rc == SQLITE_OK)
        rc = ((struct wb_file *)p)->failed_rc;
    if (rc != SQLITE_OK)
        *sys_errno = ((struct wb_file *)p)->last_errno;
    return rc;
}

int gtab__walbuf_failed(void)
{
    return __atomic_load_n(&wb_failed, __ATOMIC_SEQ_CST);
}
