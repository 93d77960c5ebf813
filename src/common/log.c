/* log.c -- log line formatting (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum mr_log_level mr_log_min_level = MR_LOG_INFO;
static char log_region[64] = "-";
static char log_role[32] = "-";

void mr_log_setup(const char *region, const char *role, enum mr_log_level level)
{
    if (region)
        snprintf(log_region, sizeof(log_region), "%s", region);
    if (role)
        snprintf(log_role, sizeof(log_role), "%s", role);
    mr_log_min_level = level;
}

int mr_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void mr_log_write(enum mr_log_level level, const char *mod, const char *fmt, ...)
{
    static const char lvl[] = "DIWE";
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ pid=%d region=%s role=%s level=%c mod=%s ",
                          (int)(tv.tv_usec / 1000), (int)getpid(), log_region, log_role,
                          lvl[level < 4 ? level : 3], mod);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    n = strlen(line);
    if (n + 1 >= sizeof(line))
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so that lines of concurrent processes never interleave. */
    (void)!write(STDERR_FILENO, line, n);
}

void mr_log_raw(const char *msg)
{
    (void)!write(STDERR_FILENO, msg, strlen(msg));
}
