/* determinism.c -- the values SQLite would otherwise take from the machine:
 * the current time and random numbers.
 *
 * Files go through the shim too, only so that an I/O error can name the
 * file, the call and the errno (shim_file).
 *
 * Time: SQLite asks the connection's VFS for 'now' (xCurrentTimeInt64),
 * once per statement.  Each store registers a VFS shim that forwards every
 * method to the default VFS, except that while a transaction is applied its
 * clock is the transaction's time_ms.  Only the apply connection uses it.
 *
 * Randomness: random() and randomblob() are overridden on the apply
 * connection with xoshiro256** seeded (through splitmix64) from the
 * transaction's seed.  SQLite also draws from its own global PRNG when a
 * table's rowid reaches the maximum and a new one must be chosen at random;
 * that PRNG is reseeded from the same seed for the duration of the
 * transaction (SQLITE_TESTCTRL_PRNG_SEED; process-wide, which is fine for
 * one applying thread).
 */
#include <stdio.h>
#include <string.h>

#include "../common/vfswrap.h"
#include "store_int.h"

/* Julian day number of 1970-01-01T00:00Z, in milliseconds. */
#define UNIX_EPOCH_JD_MS INT64_C(210866760000000)

/* VFS shim ------------------------------------------------------------------ */

static sqlite3_vfs *real_vfs(sqlite3_vfs *v)
{
    return ((struct store *)v->pAppData)->det.real;
}

/* Files: every method goes to the real file, which follows this struct.
 * The wrapper exists to say which file failed, and why: "disk I/O error"
 * alone names neither, and sqlite3_system_errno() reports the errno of
 * whatever ran last, not of the failed call.  The file's own last errno is
 * read at once (SQLITE_FCNTL_LAST_ERRNO) and kept in the store for the
 * error message of the statement that hit it. */
struct shim_file {
    struct vfswrap_file w;   /* base, real */
    struct store *s;
    const char *name;   /* valid until xClose (SQLite's promise); NULL: temporary */
    int flags;
};

#define REAL(p) VFSWRAP_REAL(p)

static const char *file_kind(int flags)
{
    if (flags & SQLITE_OPEN_MAIN_DB)
        return "database";
    if (flags & SQLITE_OPEN_WAL)
        return "WAL";
    if (flags & SQLITE_OPEN_MAIN_JOURNAL)
        return "journal";
    if (flags & SQLITE_OPEN_SUBJOURNAL)
        return "statement journal";
    if (flags & (SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TRANSIENT_DB))
        return "temporary file";
    return "file";
}

static int io_failed(sqlite3_file *p, int rc, const char *op, long long n, long long off)
{
    struct shim_file *f = (struct shim_file *)p;
    const char *base = f->name;
    int e = 0;

    if (rc == SQLITE_OK || rc == SQLITE_IOERR_SHORT_READ)
        return rc;
    if (REAL(p)->pMethods->xFileControl(REAL(p), SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
        e = 0;
    /* The base name: error messages are short, and the data directory is
     * the node's. */
    if (base == NULL)
        base = "(unnamed)";
    else if (strrchr(base, '/'))
        base = strrchr(base, '/') + 1;
    snprintf(f->s->det.io_error, sizeof(f->s->det.io_error), "%s of %lld bytes at %lld in %s (%s): %s", op, n,
             off, base, file_kind(f->flags), e ? strerror(e) : "no errno");
    return rc;
}

/* Not through io_failed: a closed unix file is zeroed, its methods gone
 * (and unixClose reports no failure of close(2) anyway). */
static int file_close(sqlite3_file *p)
{
    return REAL(p)->pMethods->xClose(REAL(p));
}

static int file_read(sqlite3_file *p, void *out, int n, sqlite3_int64 off)
{
    return io_failed(p, REAL(p)->pMethods->xRead(REAL(p), out, n, off), "read", n, off);
}

static int file_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 off)
{
    return io_failed(p, REAL(p)->pMethods->xWrite(REAL(p), data, n, off), "write", n, off);
}

static int file_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    return io_failed(p, REAL(p)->pMethods->xTruncate(REAL(p), size), "truncate", 0, size);
}

static int file_sync(sqlite3_file *p, int flags)
{
    return io_failed(p, REAL(p)->pMethods->xSync(REAL(p), flags), "sync", 0, 0);
}

static int file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    return REAL(p)->pMethods->xFileSize(REAL(p), size);
}

static int file_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
    return REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

/* One table per version of the real file's methods: SQLite calls only what
 * the version it sees has, so the shim must not claim more. */
#define FILE_METHODS_V1 file_close, file_read, file_write, file_truncate, file_sync, file_size, vfswrap_lock, \
        vfswrap_unlock, vfswrap_check_reserved, vfswrap_file_control, vfswrap_sector_size, vfswrap_device
#define FILE_METHODS_V2 FILE_METHODS_V1, vfswrap_shm_map, vfswrap_shm_lock, vfswrap_shm_barrier, vfswrap_shm_unmap
static const sqlite3_io_methods shim_file_methods[3] = {
    {1, FILE_METHODS_V1, NULL, NULL, NULL, NULL, NULL, NULL},
    {2, FILE_METHODS_V2, NULL, NULL},
    {3, FILE_METHODS_V2, file_fetch, vfswrap_unfetch},
};

static int shim_open(sqlite3_vfs *v, const char *name, sqlite3_file *p, int flags, int *oflags)
{
    sqlite3_vfs *r = real_vfs(v);
    struct shim_file *f = (struct shim_file *)p;
    int rc;

    memset(f, 0, sizeof(*f));
    f->w.real = (sqlite3_file *)(f + 1);
    f->s = v->pAppData;
    f->name = name;
    f->flags = flags;
    rc = r->xOpen(r, name, f->w.real, flags, oflags);
    /* On failure SQLite calls xClose only if pMethods is set. */
    if (f->w.real->pMethods == NULL || f->w.real->pMethods->iVersion < 1)
        p->pMethods = NULL;
    else
        p->pMethods = &shim_file_methods[(f->w.real->pMethods->iVersion < 3 ? f->w.real->pMethods->iVersion : 3) - 1];
    return rc;
}

static int shim_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xDelete(r, name, sync_dir);
}

static int shim_access(sqlite3_vfs *v, const char *name, int flags, int *res)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xAccess(r, name, flags, res);
}

static int shim_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xFullPathname(r, name, n, out);
}

static void *shim_dlopen(sqlite3_vfs *v, const char *name)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xDlOpen(r, name);
}

static void shim_dlerror(sqlite3_vfs *v, int n, char *msg)
{
    sqlite3_vfs *r = real_vfs(v);
    r->xDlError(r, n, msg);
}

static void (*shim_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xDlSym(r, h, sym);
}

static void shim_dlclose(sqlite3_vfs *v, void *h)
{
    sqlite3_vfs *r = real_vfs(v);
    r->xDlClose(r, h);
}

static int shim_randomness(sqlite3_vfs *v, int n, char *out)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xRandomness(r, n, out);
}

static int shim_sleep(sqlite3_vfs *v, int us)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xSleep(r, us);
}

static int shim_time_i64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    struct store *s = v->pAppData;
    sqlite3_vfs *r = s->det.real;

    if (s->det.clock_fixed) {
        *out = UNIX_EPOCH_JD_MS + s->det.time_ms;
        return SQLITE_OK;
    }
    if (r->iVersion >= 2 && r->xCurrentTimeInt64 != NULL)
        return r->xCurrentTimeInt64(r, out);
    {
        double jd;
        int rc = r->xCurrentTime(r, &jd);
        *out = (sqlite3_int64)(jd * 86400000.0);
        return rc;
    }
}

static int shim_time(sqlite3_vfs *v, double *out)
{
    sqlite3_int64 ms;
    int rc = shim_time_i64(v, &ms);

    *out = (double)ms / 86400000.0;
    return rc;
}

static int shim_last_error(sqlite3_vfs *v, int n, char *msg)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xGetLastError ? r->xGetLastError(r, n, msg) : 0;
}

static int shim_set_syscall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr p)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xSetSystemCall(r, name, p);
}

static sqlite3_syscall_ptr shim_get_syscall(sqlite3_vfs *v, const char *name)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xGetSystemCall(r, name);
}

static const char *shim_next_syscall(sqlite3_vfs *v, const char *name)
{
    sqlite3_vfs *r = real_vfs(v);
    return r->xNextSystemCall(r, name);
}

int store__det_init(struct store *s, char *err)
{
    struct store_det *d = &s->det;
    sqlite3_vfs *r = sqlite3_vfs_find(NULL);
    sqlite3_vfs *v = &d->vfs;
    int rc;

    if (r == NULL)
        return mr_seterr(err, MR_EIO, "no default SQLite VFS");
    d->real = r;
    /* The store's address makes the name unique among the stores open in
     * this process. */
    snprintf(d->name, sizeof(d->name), "meridian-%p", (void *)s);
    memset(v, 0, sizeof(*v));
    v->iVersion = r->iVersion < 3 ? r->iVersion : 3;
    /* Our file header, then the real file (sqlite3_file is pointer-aligned). */
    v->szOsFile = (int)sizeof(struct shim_file) + r->szOsFile;
    v->mxPathname = r->mxPathname;
    v->zName = d->name;
    v->pAppData = s;
    v->xOpen = shim_open;
    v->xDelete = shim_delete;
    v->xAccess = shim_access;
    v->xFullPathname = shim_fullpath;
    v->xDlOpen = shim_dlopen;
    v->xDlError = shim_dlerror;
    v->xDlSym = shim_dlsym;
    v->xDlClose = shim_dlclose;
    v->xRandomness = shim_randomness;
    v->xSleep = shim_sleep;
    v->xCurrentTime = shim_time;
    v->xGetLastError = shim_last_error;
    if (v->iVersion >= 2)
        v->xCurrentTimeInt64 = shim_time_i64;
    if (v->iVersion >= 3) {
        v->xSetSystemCall = shim_set_syscall;
        v->xGetSystemCall = shim_get_syscall;
        v->xNextSystemCall = shim_next_syscall;
    }
    rc = sqlite3_vfs_register(v, 0);
    if (rc != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "register VFS %s: %s", d->name, sqlite3_errstr(rc));
    d->registered = 1;
    return 0;
}

void store__det_close(struct store *s)
{
    if (s->det.registered)
        sqlite3_vfs_unregister(&s->det.vfs);
    s->det.registered = 0;
}

/* PRNG ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna): fast, and a state that splitmix64 can
 * never leave all zero. */
static uint64_t next_u64(uint64_t *st)
{
    uint64_t result = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;

    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return result;
}

static void random_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct store *s = sqlite3_user_data(ctx);

    (void)argc;
    (void)argv;
    sqlite3_result_int64(ctx, (sqlite3_int64)next_u64(s->det.rng));
}

static void randomblob_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct store *s = sqlite3_user_data(ctx);
    sqlite3_int64 n = sqlite3_value_int64(argv[0]);
    unsigned char *p;

    (void)argc;
    if (n < 1)
        n = 1; /* as SQLite's own randomblob() */
    if (n > STORE_MAX_RANDOMBLOB) {
        char msg[96];
        snprintf(msg, sizeof(msg), "randomblob(%lld): at most %d bytes", (long long)n,
                 STORE_MAX_RANDOMBLOB);
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    p = sqlite3_malloc64((sqlite3_uint64)n);
    if (p == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    for (sqlite3_int64 i = 0; i < n; i += 8) {
        uint64_t r = next_u64(s->det.rng);
        size_t k = (size_t)(n - i < 8 ? n - i : 8);
        memcpy(p + i, &r, k);
    }
    sqlite3_result_blob64(ctx, p, (sqlite3_uint64)n, sqlite3_free);
}

int store__det_functions(struct store *s, sqlite3 *db, char *err)
{
    /* Not SQLITE_DETERMINISTIC: that would let the planner evaluate a call
     * once for the whole statement. */
    int flags = SQLITE_UTF8 | SQLITE_INNOCUOUS;
    int rc;

    rc = sqlite3_create_function_v2(db, "random", 0, flags, s, random_fn, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "randomblob", 1, flags, s, randomblob_fn, NULL, NULL,
                                        NULL);
    if (rc != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "register random(): %s", sqlite3_errmsg(db));
    return 0;
}

void store__det_begin_txn(struct store *s, int64_t time_ms, uint64_t seed)
{
    struct store_det *d = &s->det;
    uint64_t x = seed;
    int sqlite_seed;

    d->clock_fixed = 1;
    d->time_ms = time_ms;
    for (int i = 0; i < 4; i++)
        d->rng[i] = splitmix64(&x);
    /* 0 would mean "use the OS", so never pass it. */
    sqlite_seed = (int)(uint32_t)(seed ^ (seed >> 32));
    if (sqlite_seed == 0)
        sqlite_seed = 1;
    sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, sqlite_seed, (sqlite3 *)NULL);
}

void store__det_end_txn(struct store *s)
{
    s->det.clock_fixed = 0;
    /* Back to the OS's randomness for everything else (temp file names). */
    sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, 0, (sqlite3 *)NULL);
}
