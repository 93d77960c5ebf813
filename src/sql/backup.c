/* backup.c -- consistent copies of the replica, for seeding another region.
 *
 * SQLite's backup API copies the database page by page under one read
 * transaction of the read connection, so the copy is a snapshot at one log
 * position: _meridian_meta travels with the rows, and a node that installs
 * the copy resumes the log from that position. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/err.h"
#include "store_int.h"

int store_backup(struct store *s, const char *path, char *err)
{
    sqlite3_backup *b;
    sqlite3 *dst = NULL;
    int rc;

    if (unlink(path) != 0 && errno != ENOENT)
        return mr_seterr(err, MR_EIO, "backup %s: %s", path, strerror(errno));
    rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        mr_seterr(err, MR_EIO, "backup %s: %s", path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto err_after_open;
    }
    b = sqlite3_backup_init(dst, "main", s->rc.db, "main");
    if (b == NULL) {
        mr_seterr(err, MR_EIO, "backup %s: %s", path, sqlite3_errmsg(dst));
        goto err_after_open;
    }
    /* All pages in one step: one read transaction, one position. */
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        mr_seterr(err, MR_EIO, "backup %s: %s", path, sqlite3_errstr(rc));
        goto err_after_open;
    }
    if (sqlite3_close(dst) != SQLITE_OK)
        return mr_seterr(err, MR_EIO, "backup %s: close failed", path);
    return 0;

err_after_open:
    sqlite3_close(dst);
    unlink(path);
    return MR_EIO;
}
