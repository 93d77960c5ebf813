/* vfswrap.h -- pieces of a SQLite file wrapper: a sqlite3_file whose calls
 * go on to a "real" file of another VFS, kept right after it in the same
 * allocation (szOsFile = sizeof(the wrapper) + the real VFS's szOsFile).
 *
 * A wrapper's struct starts with struct vfswrap_file; it writes the
 * methods it changes and takes these for the calls it only passes on.
 * Used by the apply connection's shim (src/sql/determinism.c) and the
 * tables' WAL write gathering (src/gtab/walbuf.c). */
#ifndef MR_VFSWRAP_H
#define MR_VFSWRAP_H

#include <sqlite3.h>

struct vfswrap_file {
    sqlite3_file base;     /* pMethods: the wrapper's */
    sqlite3_file *real;    /* the wrapped file, after the wrapper's struct */
};

#define VFSWRAP_REAL(p) (((struct vfswrap_file *)(p))->real)

int vfswrap_lock(sqlite3_file *p, int level);
int vfswrap_unlock(sqlite3_file *p, int level);
int vfswrap_check_reserved(sqlite3_file *p, int *out);
int vfswrap_file_control(sqlite3_file *p, int op, void *arg);
int vfswrap_sector_size(sqlite3_file *p);
int vfswrap_device(sqlite3_file *p);
int vfswrap_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **out);
int vfswrap_shm_lock(sqlite3_file *p, int offset, int n, int flags);
void vfswrap_shm_barrier(sqlite3_file *p);
int vfswrap_shm_unmap(sqlite3_file *p, int del);
int vfswrap_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page);

#endif
