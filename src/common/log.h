/* log.h -- structured log lines.
 *
 * One line per event: "2026-11-26T13:07:40.123Z pid=42 region=us-east-1
 * role=node level=I mod=apply msg...".  The level is checked before anything
 * is formatted.  The logger is one of the two process-wide globals (with the
 * allocator); it is set up once by main() and read everywhere.
 */
#ifndef MR_LOG_H
#define MR_LOG_H

enum mr_log_level { MR_LOG_DEBUG = 0, MR_LOG_INFO, MR_LOG_WARN, MR_LOG_ERROR, MR_LOG_OFF };

extern enum mr_log_level mr_log_min_level;

/* <region> and <role> are copied; either may be NULL. */
void mr_log_setup(const char *region, const char *role, enum mr_log_level level);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int mr_log_level_parse(const char *s);

void mr_log_write(enum mr_log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mr_log(level, mod, ...)                                   \
    do {                                                          \
        if ((level) >= mr_log_min_level)                          \
            mr_log_write((level), (mod), __VA_ARGS__);            \
    } while (0)

/* Async-signal-safe: writes <msg> to stderr with no formatting. */
void mr_log_raw(const char *msg);

#endif
