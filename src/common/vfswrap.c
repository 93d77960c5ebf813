/* vfswrap.c -- the calls a SQLite file wrapper passes on unchanged
 * (vfswrap.h). */
#include "vfswrap.h"

int vfswrap_lock(sqlite3_file *p, int level)
{
    return VFSWRAP_REAL(p)->pMethods->xLock(VFSWRAP_REAL(p), level);
}

int vfswrap_unlock(sqlite3_file *p, int level)
{
    return VFSWRAP_REAL(p)->pMethods->xUnlock(VFSWRAP_REAL(p), level);
}

int vfswrap_check_reserved(sqlite3_file *p, int *out)
{
    return VFSWRAP_REAL(p)->pMethods->xCheckReservedLock(VFSWRAP_REAL(p), out);
}

int vfswrap_file_control(sqlite3_file *p, int op, void *arg)
{
    return VFSWRAP_REAL(p)->pMethods->xFileControl(VFSWRAP_REAL(p), op, arg);
}

int vfswrap_sector_size(sqlite3_file *p)
{
    return VFSWRAP_REAL(p)->pMethods->xSectorSize(VFSWRAP_REAL(p));
}

int vfswrap_device(sqlite3_file *p)
{
    return VFSWRAP_REAL(p)->pMethods->xDeviceCharacteristics(VFSWRAP_REAL(p));
}

int vfswrap_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **out)
{
    return VFSWRAP_REAL(p)->pMethods->xShmMap(VFSWRAP_REAL(p), pg, pgsz, extend, out);
}

int vfswrap_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    return VFSWRAP_REAL(p)->pMethods->xShmLock(VFSWRAP_REAL(p), offset, n, flags);
}

void vfswrap_shm_barrier(sqlite3_file *p)
{
    VFSWRAP_REAL(p)->pMethods->xShmBarrier(VFSWRAP_REAL(p));
}

int vfswrap_shm_unmap(sqlite3_file *p, int del)
{
    return VFSWRAP_REAL(p)->pMethods->xShmUnmap(VFSWRAP_REAL(p), del);
}

int vfswrap_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page)
{
    return VFSWRAP_REAL(p)->pMethods->xUnfetch(VFSWRAP_REAL(p), off, page);
}
