/* cfg.h -- table-driven INI configuration (parsed with inih).
 *
 * A module describes its options in one table of struct mr_cfg_opt: section,
 * key, type, bounds, default and help (as in Redis's static_configs[]).
 * mr_cfg_load fills a caller-provided struct from a file, checking every value
 * against the table; errors name file:line, the key, what was expected and
 * what was found.  The same table generates --help text and a sample file.
 *
 * Limits: a line holds at most MR_CFG_MAX_LINE bytes; longer lines are an error.
 */
#ifndef MR_CFG_H
#define MR_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <ini.h>
#include <stdio.h>

#define MR_CFG_MAX_LINE 199

enum mr_cfg_type {
    MR_CFG_STR,      /* char *, owned by the target, freed by mr_cfg_free */
    MR_CFG_INT,      /* int64_t */
    MR_CFG_DURATION, /* int64_t milliseconds: "250ms", "2s", "24h" */
    MR_CFG_SIZE,     /* int64_t bytes: "1m", "64k" */
    MR_CFG_BOOL,     /* int: yes/no, true/false, on/off, 1/0 */
    MR_CFG_LIST,     /* struct mr_cfg_list: a key that may repeat, each value kept
                        with where it came from (file:line) for the module's own
                        parser; <def> must be NULL (an absent key is an empty
                        list, never an error) */
};

/* The values of a repeated key in file order; freed by mr_cfg_free. */
struct mr_cfg_list {
    size_t n;
    char **values;
    char **where;    /* "path:line" (or the flag's name) of each value */
};

struct mr_cfg_opt {
    const char *section;
    const char *name;
    enum mr_cfg_type type;
    size_t offset;       /* offsetof() the field in the target struct */
    int64_t min, max;    /* bounds for numeric types */
    const char *def;     /* default as text; NULL makes the key required */
    const char *help;
};

/* Set every option to its default (required options are left NULL/0). */
void mr_cfg_defaults(const struct mr_cfg_opt *opts, size_t n, void *target);

/* Parse <path> into <target> (defaults first).  Returns 0, or MR_ECONFIG with
 * a message in <err> (MR_ERRMSG_LEN bytes). */
int mr_cfg_load(const char *path, const struct mr_cfg_opt *opts, size_t n, void *target,
                char *err) __attribute__((warn_unused_result));

/* Set one option from text, as a flag override does ("section.key=value"
 * split by the caller).  <where> prefixes error messages, e.g. "--set". */
int mr_cfg_set(const struct mr_cfg_opt *opts, size_t n, void *target, const char *where,
               const char *section, const char *key, const char *value, char *err)
    __attribute__((warn_unused_result));

/* Check that every required option has a value. */
int mr_cfg_check_required(const struct mr_cfg_opt *opts, size_t n, const void *target,
                          const char *where, char *err) __attribute__((warn_unused_result));

/* Free the strings that mr_cfg_* allocated inside <target>. */
void mr_cfg_free(const struct mr_cfg_opt *opts, size_t n, void *target);

/* Parse the INI file <path> with inih, <on_key>(<ctx>, ...) per key, for
 * parsers that need more than an option table (repeated sections).  *line
 * is kept at the number of the line being handled, for the handler's
 * messages (Debian's inih has no INI_HANDLER_LINENO).  The handler stores
 * its own error code in *handler_rc (and returns 0 to stop).  Returns 0, the
 * handler's error, or MR_ECONFIG with "path:N: ..." in <err>: cannot open,
 * a line longer than MR_CFG_MAX_LINE, a syntax error. */
int mr_cfg_parse_file(const char *path, ini_handler on_key, void *ctx, int *line,
                      const int *handler_rc, char *err) __attribute__((warn_unused_result));

/* Write a commented sample configuration generated from the table. */
void mr_cfg_write_sample(FILE *f, const struct mr_cfg_opt *opts, size_t n);

#endif
