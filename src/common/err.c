/* err.c -- error code table and message helpers. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *mr_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define X(name, val, text) case MR_##name: return text;
    MR_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *mr_errname(int code)
{
    switch (code) {
    case 0: return "OK";
#define X(name, val, text) case MR_##name: return #name;
    MR_ERRNO_MAP(X)
#undef X
    }
    return "EUNKNOWN";
}

int mr_seterr(char *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(err, MR_ERRMSG_LEN, fmt, ap);
    va_end(ap);
    return code;
}

int mr_wraperr(char *err, int code, const char *fmt, ...)
{
    char prefix[MR_ERRMSG_LEN];
    char old[MR_ERRMSG_LEN];
    va_list ap;

    if (err == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err, MR_ERRMSG_LEN);
    old[MR_ERRMSG_LEN - 1] = '\0';
    /* Truncation keeps the outer context, which is what a reader needs first. */
    if (snprintf(err, MR_ERRMSG_LEN, "%s: %s", prefix, old) >= MR_ERRMSG_LEN)
        err[MR_ERRMSG_LEN - 1] = '\0';
    return code;
}
