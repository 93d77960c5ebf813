/* cfg.c -- INI configuration from option tables (see cfg.h). */
#include "cfg.h"

#include <errno.h>
#include <ini.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "err.h"
#include "util.h"

struct load_ctx {
    const struct mr_cfg_opt *opts;
    size_t n;
    void *target;
    const char *path;
    int line;          /* line number of the line inih is handling */
    int rc;
    char *err;
};

static void *field(void *target, const struct mr_cfg_opt *o)
{
    return (char *)target + o->offset;
}

static const char *type_expect(const struct mr_cfg_opt *o)
{
    switch (o->type) {
    case MR_CFG_STR: return "a string";
    case MR_CFG_INT: return "an integer";
    case MR_CFG_DURATION: return "a duration such as 250ms, 2s or 24h";
    case MR_CFG_SIZE: return "a size such as 4096, 64k or 16m";
    case MR_CFG_BOOL: return "yes or no";
    case MR_CFG_LIST: return "a string (the key may repeat)";
    }
    return "a value";
}

static int set_value(const struct mr_cfg_opt *o, void *target, const char *value,
                     const char *where, char *err)
{
    int64_t v = 0;
    int rc = 0;

    switch (o->type) {
    case MR_CFG_STR: {
        char **p = field(target, o);
        if (*value == '\0')
            return mr_seterr(err, MR_ECONFIG, "%s: key '%s' in [%s]: expected %s, found nothing",
                             where, o->name, o->section, type_expect(o));
        mr_free(*p);
        *p = mr_strdup(value);
        return 0;
    }
    case MR_CFG_LIST: {
        struct mr_cfg_list *l = field(target, o);
        if (*value == '\0')
            return mr_seterr(err, MR_ECONFIG, "%s: key '%s' in [%s]: expected %s, found nothing",
                             where, o->name, o->section, type_expect(o));
        l->values = mr_realloc(l->values, (l->n + 1) * sizeof(*l->values));
        l->where = mr_realloc(l->where, (l->n + 1) * sizeof(*l->where));
        l->values[l->n] = mr_strdup(value);
        l->where[l->n] = mr_strdup(where);
        l->n++;
        return 0;
    }
    case MR_CFG_BOOL: {
        int *p = field(target, o);
        if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcasecmp(value, "on") ||
            !strcmp(value, "1"))
            *p = 1;
        else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") ||
                 !strcasecmp(value, "off") || !strcmp(value, "0"))
            *p = 0;
        else
            rc = MR_EINVAL;
        break;
    }
    case MR_CFG_INT: rc = mr_parse_i64(value, INT64_MIN, INT64_MAX, &v); break;
    case MR_CFG_DURATION: rc = mr_parse_duration_ms(value, &v); break;
    case MR_CFG_SIZE: rc = mr_parse_size(value, &v); break;
    }
    if (rc != 0)
        return mr_seterr(err, MR_ECONFIG, "%s: key '%s' in [%s]: expected %s, found '%s'", where,
                         o->name, o->section, type_expect(o), value);
    if (o->type != MR_CFG_BOOL) {
        if (v < o->min || v > o->max)
            return mr_seterr(err, MR_ECONFIG,
                             "%s: key '%s' in [%s]: expected %s between %lld and %lld, found '%s'",
                             where, o->name, o->section, type_expect(o), (long long)o->min,
                             (long long)o->max, value);
        *(int64_t *)field(target, o) = v;
    }
    return 0;
}

static const struct mr_cfg_opt *find_opt(const struct mr_cfg_opt *opts, size_t n,
                                         const char *section, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0 && strcmp(opts[i].name, key) == 0)
            return &opts[i];
    return NULL;
}

static int section_known(const struct mr_cfg_opt *opts, size_t n, const char *section)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0)
            return 1;
    return 0;
}

void mr_cfg_defaults(const struct mr_cfg_opt *opts, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++)
        if (opts[i].def != NULL && opts[i].type != MR_CFG_LIST)
            (void)set_value(&opts[i], target, opts[i].def, "default", NULL); /* tables are unit-tested */
}

int mr_cfg_set(const struct mr_cfg_opt *opts, size_t n, void *target, const char *where,
               const char *section, const char *key, const char *value, char *err)
{
    const struct mr_cfg_opt *o;

    if (!section_known(opts, n, section))
        return mr_seterr(err, MR_ECONFIG, "%s: unknown section [%s]", where, section);
    o = find_opt(opts, n, section, key);
    if (o == NULL)
        return mr_seterr(err, MR_ECONFIG, "%s: unknown key '%s' in [%s]", where, key, section);
    return set_value(o, target, value, where, err);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *c = user;
    char where[MR_ERRMSG_LEN];

    if (c->rc != 0)
        return 0;
    snprintf(where, sizeof(where), "%s:%d", c->path, c->line);
    c->rc = mr_cfg_set(c->opts, c->n, c->target, where, section, name, value, c->err);
    return c->rc == 0;
}

/* The stream inih reads through reader(): the file, and where the line
 * count goes (Debian's inih is built without INI_HANDLER_LINENO, and errors
 * must name the line). */
struct line_stream {
    FILE *f;
    int *line;         /* the caller's: the line inih is handling */
    int too_long;      /* number of the first over-long line, or 0 */
};

/* fgets that counts lines; an over-long line is skipped to its end and
 * remembered, and the file refused afterwards. */
static char *reader(char *str, int num, void *stream)
{
    struct line_stream *ls = stream;
    char *r = fgets(str, num, ls->f);
    size_t len;

    if (r == NULL)
        return NULL;
    len = strlen(str);
    if (len > 0 && str[len - 1] != '\n' && !feof(ls->f)) {
        int ch;
        if (!ls->too_long)
            ls->too_long = *ls->line + 1;
        while ((ch = fgetc(ls->f)) != EOF && ch != '\n')
            ;
    }
    (*ls->line)++;
    return r;
}

int mr_cfg_parse_file(const char *path, ini_handler on_key, void *ctx, int *line,
                      const int *handler_rc, char *err)
{
    struct line_stream ls = {NULL, line, 0};
    int rc;

    *line = 0;
    ls.f = fopen(path, "re");
    if (ls.f == NULL)
        return mr_seterr(err, MR_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
    rc = ini_parse_stream(reader, &ls, on_key, ctx);
    fclose(ls.f);
    if (ls.too_long)
        return mr_seterr(err, MR_ECONFIG, "%s:%d: line longer than %d bytes", path, ls.too_long,
                         MR_CFG_MAX_LINE);
    if (*handler_rc != 0)
        return *handler_rc;
    if (rc > 0)
        return mr_seterr(err, MR_ECONFIG, "%s:%d: syntax error (expected [section] or key = value)",
                         path, rc);
    if (rc != 0)
        return mr_seterr(err, MR_ECONFIG, "%s: cannot parse", path);
    return 0;
}

int mr_cfg_load(const char *path, const struct mr_cfg_opt *opts, size_t n, void *target,
                char *err)
{
    struct load_ctx c = {opts, n, target, path, 0, 0, err};
    int rc;

    mr_cfg_defaults(opts, n, target);
    rc = mr_cfg_parse_file(path, handler, &c, &c.line, &c.rc, err);
    return rc != 0 ? rc : mr_cfg_check_required(opts, n, target, path, err);
}

int mr_cfg_check_required(const struct mr_cfg_opt *opts, size_t n, const void *target,
                          const char *where, char *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct mr_cfg_opt *o = &opts[i];
        if (o->def == NULL && o->type == MR_CFG_STR &&
            *(char *const *)((const char *)target + o->offset) == NULL)
            return mr_seterr(err, MR_ECONFIG, "%s: key '%s' in [%s] is required (%s)", where,
                             o->name, o->section, o->help);
    }
    return 0;
}

void mr_cfg_free(const struct mr_cfg_opt *opts, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == MR_CFG_STR) {
            char **p = field(target, &opts[i]);
            mr_free(*p);
            *p = NULL;
        } else if (opts[i].type == MR_CFG_LIST) {
            struct mr_cfg_list *l = field(target, &opts[i]);
            for (size_t j = 0; j < l->n; j++) {
                mr_free(l->values[j]);
                mr_free(l->where[j]);
            }
            mr_free(l->values);
            mr_free(l->where);
            memset(l, 0, sizeof(*l));
        }
    }
}

void mr_cfg_write_sample(FILE *f, const struct mr_cfg_opt *opts, size_t n)
{
    const char *section = NULL;

    for (size_t i = 0; i < n; i++) {
        const struct mr_cfg_opt *o = &opts[i];
        if (section == NULL || strcmp(section, o->section) != 0) {
            fprintf(f, "%s[%s]\n", section ? "\n" : "", o->section);
            section = o->section;
        }
        fprintf(f, "; %s (%s%s)\n", o->help, type_expect(o),
                o->def || o->type == MR_CFG_LIST ? "" : ", required");
        /* An empty default ("unset": the field stays NULL) is written as a
         * comment: "key = " would read back as a string expected and none found. */
        if (o->type == MR_CFG_LIST || (o->def && o->def[0] == '\0'))
            fprintf(f, ";%s =\n", o->name);
        else if (o->def)
            fprintf(f, "%s = %s\n", o->name, o->def);
        else
            fprintf(f, ";%s =\n", o->name);
    }
}
