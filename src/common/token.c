/* token.c -- parse, format and merge consistency tokens (grammar: token.h). */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

int mr_token_origin_valid(const char *s, size_t len)
{
    if (len == 0 || len > MR_TOKEN_ORIGIN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Decimal digits only (no sign, no blank), at most <maxdig>, no overflow of
 * <max>.  Returns the number of characters consumed, 0 on error. */
static size_t parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return i;
}

int mr_token_parse(const char *s, struct mr_token *t, char *err)
{
    const char *p = s;
    uint64_t v;
    size_t used;

    memset(t, 0, sizeof(*t));
    if (strncmp(p, MR_TOKEN_VERSION ".", 2) != 0)
        return mr_seterr(err, MR_EINVAL, "expected \"" MR_TOKEN_VERSION ".<revision>\" at the start");
    p += 2;
    used = parse_u64(p, INT64_MAX, &v);
    if (used == 0)
        return mr_seterr(err, MR_EINVAL, "revision: expected a decimal number up to %lld",
                         (long long)INT64_MAX);
    t->rev = (int64_t)v;
    p += used;
    while (*p) {
        const char *name, *eq;
        if (*p != '.')
            return mr_seterr(err, MR_EINVAL, "unexpected '%c' at offset %zu", *p, (size_t)(p - s));
        name = ++p;
        eq = strchr(name, '=');
        if (eq == NULL || !mr_token_origin_valid(name, (size_t)(eq - name)))
            return mr_seterr(err, MR_EINVAL, "offset %zu: expected <region>=<position> (region "
                             "of 1 to %d letters, digits, '-' or '_')", (size_t)(name - s),
                             MR_TOKEN_ORIGIN_MAX);
        if (t->n == MR_TOKEN_MAX_ORIGINS)
            return mr_seterr(err, MR_EINVAL, "more than %d regions", MR_TOKEN_MAX_ORIGINS);
        memcpy(t->pos[t->n].origin, name, (size_t)(eq - name));
        t->pos[t->n].origin[eq - name] = '\0';
        if (t->n > 0 && strcmp(t->pos[t->n - 1].origin, t->pos[t->n].origin) >= 0)
            return mr_seterr(err, MR_EINVAL, "region '%s' out of order or repeated",
                             t->pos[t->n].origin);
        p = eq + 1;
        used = parse_u64(p, UINT64_MAX, &v);
        if (used == 0 || v == 0)
            return mr_seterr(err, MR_EINVAL, "region '%s': expected a position of 1 or more",
                             t->pos[t->n].origin);
        t->pos[t->n].seq = v;
        t->n++;
        p += used;
    }
    return 0;
}

void mr_token_format(const struct mr_token *t, char *out, size_t size)
{
    size_t len;

    len = (size_t)snprintf(out, size, MR_TOKEN_VERSION ".%lld", (long long)t->rev);
    for (size_t i = 0; i < t->n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, ".%s=%llu", t->pos[i].origin,
                                (unsigned long long)t->pos[i].seq);
}

uint64_t mr_token_get(const struct mr_token *t, const char *origin)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->pos[i].origin, origin) == 0)
            return t->pos[i].seq;
    return 0;
}

int mr_token_set(struct mr_token *t, const char *origin, uint64_t seq)
{
    size_t i;
    int c = 1;

    if (!mr_token_origin_valid(origin, strlen(origin)))
        return MR_EINVAL;
    for (i = 0; i < t->n && (c = strcmp(t->pos[i].origin, origin)) < 0; i++)
        ;
    if (i < t->n && c == 0) {
        if (seq > t->pos[i].seq)
            t->pos[i].seq = seq;
        return 0;
    }
    if (seq == 0)
        return 0;
    if (t->n == MR_TOKEN_MAX_ORIGINS)
        return MR_ETOOBIG;
    memmove(&t->pos[i + 1], &t->pos[i], (t->n - i) * sizeof(t->pos[0]));
    snprintf(t->pos[i].origin, sizeof(t->pos[i].origin), "%s", origin);
    t->pos[i].seq = seq;
    t->n++;
    return 0;
}

int mr_token_merge(struct mr_token *dst, const struct mr_token *src)
{
    int rc = 0;

    if (src->rev > dst->rev)
        dst->rev = src->rev;
    for (size_t i = 0; i < src->n; i++)
        if (mr_token_set(dst, src->pos[i].origin, src->pos[i].seq) != 0)
            rc = MR_ETOOBIG;
    return rc;
}
