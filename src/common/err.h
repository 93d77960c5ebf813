/* err.h -- Meridian's error codes.
 *
 * Every fallible function returns int: 0 on success, a negative MR_E* code on
 * failure.  Codes exist only where some caller must react differently; the
 * details travel in a message buffer (MR_ERRMSG_LEN) owned by the caller or by
 * the object that failed.  One X-macro table maps codes to names and text.
 */
#ifndef MR_ERR_H
#define MR_ERR_H

#include <stddef.h>

#define MR_ERRMSG_LEN 256

#define MR_ERRNO_MAP(X)                                                     \
    X(EINVAL,    -1, "invalid argument")                                   \
    X(ENOMEM,    -2, "out of memory")                                      \
    X(EIO,       -3, "input/output error")                                 \
    X(EPROTO,    -4, "protocol error")                                     \
    X(ETIMEDOUT, -5, "timed out")                                          \
    X(ECONN,     -6, "connection failed")                                  \
    X(ENOTFOUND, -7, "not found")                                          \
    X(ECORRUPT,  -8, "data is corrupt")                                    \
    X(ECONFIG,   -9, "bad configuration")                                  \
    X(ESQL,      -10, "SQL error")                                         \
    X(ECONSTRAINT, -11, "constraint failed")                               \
    X(EDENIED,   -12, "not allowed")                                       \
    X(EUNAVAIL,  -13, "service unavailable")                               \
    X(ETOOBIG,   -14, "too large")                                         \
    X(ECLOSED,   -15, "closed")                                            \
    X(ECOMPACTED, -16, "log position compacted")                           \
    X(EEXIST,    -17, "already exists")

enum {
#define X(name, val, text) MR_##name = (val),
    MR_ERRNO_MAP(X)
#undef X
};

/* Static text for <code>, never NULL. */
const char *mr_strerror(int code);
/* Static symbolic name such as "EPROTO", never NULL. */
const char *mr_errname(int code);

/* printf into a caller-owned buffer of MR_ERRMSG_LEN bytes; returns <code> so
 * that error paths read "return mr_seterr(err, MR_EPROTO, "...", ...)".
 * <err> may be NULL. */
int mr_seterr(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in <err> with context: "ctx: old message". */
int mr_wraperr(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
