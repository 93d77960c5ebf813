/* config.c -- the wan's INI config file (docs/wan.md):
 *
 *   [wan]
 *   control = 127.0.0.1:0          ; control API address
 *   token = NAME SCOPES SHA256HEX  ; may repeat: the control API then needs
 *                                  ; read (GET) or admin (changes); auth.h
 *
 *   [link us-east-1->eu-west-1]    ; FROM->TO
 *   latency = 35ms                 ; one-way, both directions
 *   reply_latency = 35ms           ; the reply direction's (default: latency)
 *   jitter = 0
 *   bandwidth = 0                  ; 800kbit, 10mbit, 1gbit; 0: no cap
 *   close_delay = 2s               ; slow_close only
 *   state = up
 *
 *   [route etcd-peer-eu-west-1]    ; one listening port
 *   listen = 127.0.0.1:0
 *   target = 127.0.0.1:2380
 *   link = us-east-1->eu-west-1    ; always this link, or:
 *   to = eu-west-1                 ; the link from the connecting process's region
 *
 * Parsed with inih through a line-counting reader (Debian's inih has no
 * INI_HANDLER_LINENO), so that every error names file:line.  Sections are
 * collected first and applied after the whole file has parsed: routes may
 * name links defined further down.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/cfg.h"
#include "../common/err.h"
#include "../common/util.h"
#include "wan_int.h"

#define MAX_SECTIONS 256

struct sec {
    int kind;                  /* 'w' wan, 'l' link, 'r' route */
    int line;
    char name[WAN_NAME_MAX + 1];
    /* link */
    struct wan_settings s;
    int reply_set;
    /* route */
    char *listen, *target, *link, *to;
};

struct ctx {
    FILE *f;
    const char *path;
    int line;
    int rc;
    char *err;
    struct sec secs[MAX_SECTIONS];
    size_t n;
    char *control;
    struct mr_auth *tokens;    /* receives [wan] token lines */
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[MR_ERRMSG_LEN];
    va_list ap;

    if (c->rc != 0)
        return c->rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->rc = mr_seterr(c->err, MR_ECONFIG, "%s:%d: %s", c->path, c->line, msg);
    return c->rc;
}

static struct sec *section(struct ctx *c, const char *section);

/* Section headers are registered as the reader sees them: inih never tells
 * the handler about a section without keys, and an empty [link] is a link
 * with the default settings (and a misspelt empty section is an error). */
static void scan_section(struct ctx *c, const char *line)
{
    char name[128];
    const char *end;

    while (*line == ' ' || *line == '\t')
        line++;
    if (*line != '[' || (end = strchr(line, ']')) == NULL)
        return; /* not a header, or inih reports the syntax error */
    if ((size_t)(end - line - 1) >= sizeof(name)) {
        fail(c, "section name too long");
        return;
    }
    memcpy(name, line + 1, (size_t)(end - line - 1));
    name[end - line - 1] = '\0';
    (void)section(c, name);
}

static char *reader(char *str, int num, void *stream)
{
    struct ctx *c = stream;
    char *r;
    size_t len;

    if (c->rc != 0)
        return NULL;
    r = fgets(str, num, c->f);
    if (r == NULL)
        return NULL;
    c->line++;
    len = strlen(str);
    if (len > 0 && str[len - 1] != '\n' && !feof(c->f)) {
        fail(c, "line longer than %d bytes", num - 2);
        return NULL;
    }
    scan_section(c, str);
    return c->rc == 0 ? r : NULL;
}

/* The section <section> (as inih gives it), created on first sight. */
static struct sec *section(struct ctx *c, const char *section)
{
    int kind;
    const char *name;

    if (strcmp(section, "wan") == 0) {
        kind = 'w';
        name = "";
    } else if (strncmp(section, "link ", 5) == 0) {
        kind = 'l';
        name = section + 5;
    } else if (strncmp(section, "route ", 6) == 0) {
        kind = 'r';
        name = section + 6;
    } else {
        fail(c, "unknown section [%s]: expected [wan], [link FROM->TO] or [route NAME]", section);
        return NULL;
    }
    while (*name == ' ')
        name++;
    if (kind != 'w' && (*name == '\0' || strlen(name) > WAN_NAME_MAX)) {
        fail(c, "section [%s]: expected a name of 1 to %d characters", section, WAN_NAME_MAX);
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->secs[i].kind == kind && strcmp(c->secs[i].name, name) == 0)
            return &c->secs[i];
    if (c->n == MAX_SECTIONS) {
        fail(c, "expected at most %d sections", MAX_SECTIONS);
        return NULL;
    }
    c->secs[c->n].kind = kind;
    c->secs[c->n].line = c->line;
    snprintf(c->secs[c->n].name, sizeof(c->secs[0].name), "%s", name);
    wan_settings_default(&c->secs[c->n].s);
    return &c->secs[c->n++];
}

static int set_ms(struct ctx *c, const char *key, const char *value, int64_t *us)
{
    char *end;
    double d = strtod(value, &end);

    if (end != value && d >= 0 && d <= WAN_MAX_LATENCY_MS) {
        if (strcmp(end, "ms") == 0 || *end == '\0') {
            *us = (int64_t)(d * 1000 + 0.5);
            return 0;
        }
        if (strcmp(end, "s") == 0 && d * 1000 <= WAN_MAX_LATENCY_MS) {
            *us = (int64_t)(d * 1e6 + 0.5);
            return 0;
        }
        if (strcmp(end, "us") == 0) {
            *us = (int64_t)(d + 0.5);
            return 0;
        }
    }
    return fail(c, "key '%s': expected a duration such as 35ms, 1.5ms or 2s (at most %ds), "
                "found '%s'", key, WAN_MAX_LATENCY_MS / 1000, value);
}

static int handler(void *user, const char *secname, const char *key, const char *value)
{
    struct ctx *c = user;
    struct sec *s;

    if (c->rc != 0)
        return 0;
    if (*secname == '\0') {
        fail(c, "key '%s' outside any section", key);
        return 0;
    }
    s = section(c, secname);
    if (s == NULL)
        return 0;
    if (s->kind == 'w') {
        if (strcmp(key, "control") == 0) {
            mr_free(c->control);
            c->control = mr_strdup(value);
        } else if (strcmp(key, "token") == 0) {
            char where[MR_ERRMSG_LEN], msg[MR_ERRMSG_LEN];
            snprintf(where, sizeof(where), "%s:%d", c->path, c->line);
            if (mr_auth_add(c->tokens, value, where, msg) != 0 && c->rc == 0)
                c->rc = mr_seterr(c->err, MR_ECONFIG, "%s", msg);
        } else {
            fail(c, "unknown key '%s' in [wan]: expected control or token", key);
        }
    } else if (s->kind == 'l') {
        if (strcmp(key, "latency") == 0) {
            set_ms(c, key, value, &s->s.latency_us[WAN_FWD]);
            if (!s->reply_set)
                s->s.latency_us[WAN_REPLY] = s->s.latency_us[WAN_FWD];
        } else if (strcmp(key, "reply_latency") == 0) {
            set_ms(c, key, value, &s->s.latency_us[WAN_REPLY]);
            s->reply_set = 1;
        } else if (strcmp(key, "jitter") == 0) {
            set_ms(c, key, value, &s->s.jitter_us);
        } else if (strcmp(key, "close_delay") == 0) {
            set_ms(c, key, value, &s->s.close_delay_us);
        } else if (strcmp(key, "bandwidth") == 0) {
            char *words[1], word[128];
            struct mr_buf json;
            char err[MR_ERRMSG_LEN];
            snprintf(word, sizeof(word), "bandwidth=%s", value);
            words[0] = word;
            mr_buf_init(&json);
            if (wan_settings_words_json(1, words, &json, err) != 0 ||
                wan_settings_patch_json(&s->s, json.data, json.len, err) != 0)
                fail(c, "key 'bandwidth': %s", err);
            mr_buf_close(&json);
        } else if (strcmp(key, "state") == 0) {
            int st = wan_state_parse(value);
            if (st < 0)
                fail(c, "key 'state': expected up, blackhole, reject or slow_close, found '%s'",
                     value);
            else
                s->s.state = (enum wan_state)st;
        } else {
            fail(c, "unknown key '%s' in [link %s]: expected latency, reply_latency, jitter, "
                 "bandwidth, close_delay or state", key, s->name);
        }
    } else {
        char **slot = strcmp(key, "listen") == 0 ? &s->listen
                    : strcmp(key, "target") == 0 ? &s->target
                    : strcmp(key, "link") == 0   ? &s->link
                    : strcmp(key, "to") == 0     ? &s->to
                                                 : NULL;
        if (slot == NULL) {
            fail(c, "unknown key '%s' in [route %s]: expected listen, target, link or to", key,
                 s->name);
        } else {
            mr_free(*slot);
            *slot = mr_strdup(value);
        }
    }
    return c->rc == 0;
}

/* "host:port" into a new host string and a port. */
static int split_addr(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    int64_t p;

    if (colon == NULL || colon == s || mr_parse_i64(colon + 1, 0, 65535, &p) != 0)
        return MR_EINVAL;
    *host = mr_strndup(s, (size_t)(colon - s));
    *port = (int)p;
    return 0;
}

/* Parse <path>: token lines into <tokens>; with <w>, the links and routes
 * into it and [wan] control into *control_host/port too. */
static int config_parse(struct wan *w, struct mr_auth *tokens, const char *path, char **control_host,
                        int *control_port, char *err)
{
    struct ctx *c = mr_calloc(1, sizeof(*c));
    int rc;

    c->path = path;
    c->err = err;
    c->tokens = tokens;
    c->f = fopen(path, "re");
    if (c->f == NULL) {
        rc = mr_seterr(err, MR_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
        mr_free(c);
        return rc;
    }
    rc = ini_parse_stream(reader, c, handler, c);
    fclose(c->f);
    if (rc > 0 && c->rc == 0) {
        c->line = rc;
        fail(c, "syntax error (expected [section] or key = value)");
    }
    /* links first, then routes (which name links) */
    for (size_t i = 0; w != NULL && c->rc == 0 && i < c->n; i++) {
        struct sec *s = &c->secs[i];
        if (s->kind != 'l')
            continue;
        c->line = s->line;
        if (strstr(s->name, "->") == NULL)
            fail(c, "[link %s]: expected a name FROM->TO", s->name);
        else if (wan_link_add(w, s->name, NULL, NULL, &s->s, err) != 0)
            mr_wraperr(err, c->rc = MR_ECONFIG, "%s:%d", path, s->line);
    }
    for (size_t i = 0; w != NULL && c->rc == 0 && i < c->n; i++) {
        struct sec *s = &c->secs[i];
        char *lh = NULL, *th = NULL;
        int lp = 0, tp = 0, bound;
        if (s->kind != 'r')
            continue;
        c->line = s->line;
        if (s->listen == NULL || split_addr(s->listen, &lh, &lp) != 0)
            fail(c, "[route %s]: key 'listen': expected HOST:PORT, found '%s'", s->name,
                 s->listen ? s->listen : "nothing");
        else if (s->target == NULL || split_addr(s->target, &th, &tp) != 0 || tp == 0)
            fail(c, "[route %s]: key 'target': expected HOST:PORT, found '%s'", s->name,
                 s->target ? s->target : "nothing");
        else if ((s->link == NULL) == (s->to == NULL))
            fail(c, "[route %s]: expected exactly one of 'link' and 'to'", s->name);
        else if (wan_route_add(w, s->name, lh, lp, th, tp, s->link, s->to, &bound, err) != 0)
            mr_wraperr(err, c->rc = MR_ECONFIG, "%s:%d", path, s->line);
        mr_free(lh);
        mr_free(th);
    }
    if (w != NULL && c->rc == 0) {
        if (c->control == NULL) {
            *control_host = mr_strdup("127.0.0.1");
            *control_port = 0;
        } else if (split_addr(c->control, control_host, control_port) != 0) {
            c->line = 0;
            fail(c, "[wan] control: expected HOST:PORT, found '%s'", c->control);
        }
    }
    rc = c->rc;
    for (size_t i = 0; i < c->n; i++) {
        mr_free(c->secs[i].listen);
        mr_free(c->secs[i].target);
        mr_free(c->secs[i].link);
        mr_free(c->secs[i].to);
    }
    mr_free(c->control);
    mr_free(c);
    return rc;
}

int wan_config_load(struct wan *w, const char *path, char **control_host, int *control_port,
                    char *err)
{
    return config_parse(w, &w->auth, path, control_host, control_port, err);
}

int wan_config_reload_tokens(struct wan *w, const char *path, char *err)
{
    struct mr_auth *fresh = mr_calloc(1, sizeof(*fresh));
    int rc = config_parse(NULL, fresh, path, NULL, NULL, err);

    /* A wan whose control API checks tokens must not be opened by a
     * SIGHUP that finds none (a half-written file, a wrong path). */
    if (rc == 0 && fresh->n == 0 && w->auth.n > 0)
        rc = mr_seterr(err, MR_ECONFIG, "%s: [wan] has no token left: the control API would be open "
                       "to anyone (restart the wan to open it on purpose)", path);
    if (rc == 0)
        w->auth = *fresh;   /* whole, between two callbacks of the loop */
    w->auth_reloads[rc == 0 ? 0 : 1]++;
    mr_free(fresh);
    return rc;
}
