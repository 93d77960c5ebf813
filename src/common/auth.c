/* auth.c -- bearer tokens with scopes (see auth.h). */
#include "auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "util.h"
#include "err.h"

static const struct {
    const char *name;
    unsigned bits;   /* the scope and what it implies */
} scope_names[] = {
    {"read", MR_AUTH_READ},
    {"write", MR_AUTH_WRITE | MR_AUTH_READ},
    {"admin", MR_AUTH_ALL},
    {"peer", MR_AUTH_PEER},
};
#define N_SCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

const char *mr_auth_result_name(enum mr_auth_result r)
{
    switch (r) {
    case MR_AUTH_OK: return "ok";
    case MR_AUTH_MISSING: return "missing";
    case MR_AUTH_UNKNOWN: return "unknown";
    case MR_AUTH_FORBIDDEN: return "forbidden";
    case MR_AUTH_RESULT_COUNT: break;
    }
    return "?";
}

int mr_auth_parse_scopes(const char *s, unsigned *out, char *err)
{
    const char *p = s;

    *out = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        size_t i;
        for (i = 0; i < N_SCOPES; i++)
            if (strlen(scope_names[i].name) == len && strncmp(p, scope_names[i].name, len) == 0)
                break;
        if (i == N_SCOPES)
            return mr_seterr(err, MR_EINVAL, "unknown scope '%.*s' (expected read, write, admin or peer, "
                             "comma-separated)", (int)(len > 32 ? 32 : len), p);
        *out |= scope_names[i].bits;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

void mr_auth_format_scopes(unsigned scopes, char *out, size_t size)
{
    static const char *const names[] = {"read", "write", "admin", "peer"};
    size_t used = 0;

    if (size == 0)
        return;
    out[0] = '\0';
    for (unsigned i = 0; i < 4; i++) {
        if (!(scopes & (1u << i)))
            continue;
        int w = snprintf(out + used, size - used, "%s%s", used ? "," : "", names[i]);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}

static int name_valid(const char *s, size_t len)
{
    if (len == 0 || len > MR_AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static void sha256(const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 32;

    /* EVP_Digest with SHA-256 cannot fail short of memory exhaustion inside
     * OpenSSL; a zero hash then matches no configured one. */
    if (EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}

void mr_auth_hash_hex(const char *token, char out[65])
{
    unsigned char h[32];

    sha256(token, strlen(token), h);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Next blank-separated field of *p into [*start, *len]; 0 when none. */
static int next_field(const char **p, const char **start, size_t *len)
{
    const char *s = *p;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return 0;
    *start = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    *len = (size_t)(s - *start);
    *p = s;
    return 1;
}

int mr_auth_add(struct mr_auth *a, const char *line, const char *where, char *err)
{
    struct mr_auth_token t;
    const char *p = line, *f[3];
    size_t len[3], i;
    char scopes[64], serr[MR_ERRMSG_LEN];

    memset(&t, 0, sizeof(t));
    for (i = 0; i < 3; i++)
        if (!next_field(&p, &f[i], &len[i]))
            break;
    if (i < 3 || next_field(&p, &f[0], &len[0]))
        return mr_seterr(err, MR_ECONFIG,
                         "%s: token: expected NAME SCOPES SHA256HEX (three fields, e.g. "
                         "'shop write 9f86...'), found '%.64s'", where, line);
    if (!name_valid(f[0], len[0]))
        return mr_seterr(err, MR_ECONFIG,
                         "%s: token: name '%.*s' must be 1 to %d letters, digits, '-', '_' or '.'",
                         where, (int)(len[0] > 64 ? 64 : len[0]), f[0], MR_AUTH_NAME_MAX);
    memcpy(t.name, f[0], len[0]);
    if (len[1] >= sizeof(scopes))
        return mr_seterr(err, MR_ECONFIG, "%s: token '%s': scopes '%.32s...' too long", where,
                         t.name, f[1]);
    memcpy(scopes, f[1], len[1]);
    scopes[len[1]] = '\0';
    if (mr_auth_parse_scopes(scopes, &t.scopes, serr) != 0)
        return mr_seterr(err, MR_ECONFIG, "%s: token '%s': %s", where, t.name, serr);
    if (len[2] != 64)
        return mr_seterr(err, MR_ECONFIG,
                         "%s: token '%s': expected the SHA-256 of the token as 64 hex digits, "
                         "found %zu characters (`meridian token new` prints the line)",
                         where, t.name, len[2]);
    for (i = 0; i < 32; i++) {
        int hi = mr_hexval(f[2][2 * i]), lo = mr_hexval(f[2][2 * i + 1]);
        if (hi < 0 || lo < 0)
            return mr_seterr(err, MR_ECONFIG, "%s: token '%s': hash has a non-hex character",
                             where, t.name);
        t.hash[i] = (unsigned char)(hi << 4 | lo);
    }
    for (i = 0; i < a->n; i++) {
        if (strcmp(a->tokens[i].name, t.name) == 0)
            return mr_seterr(err, MR_ECONFIG, "%s: token name '%s' appears twice", where, t.name);
        if (memcmp(a->tokens[i].hash, t.hash, 32) == 0)
            return mr_seterr(err, MR_ECONFIG, "%s: token '%s' has the same hash as '%s'", where,
                             t.name, a->tokens[i].name);
    }
    if (a->n == MR_AUTH_MAX_TOKENS)
        return mr_seterr(err, MR_ECONFIG, "%s: token '%s': at most %d tokens", where, t.name,
                         MR_AUTH_MAX_TOKENS);
    a->tokens[a->n++] = t;
    return 0;
}

int mr_auth_build(struct mr_auth *a, const struct mr_cfg_list *tokens, char *err)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < tokens->n; i++) {
        int rc = mr_auth_add(a, tokens->values[i], tokens->where[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The token of "Bearer <token>" (scheme case-insensitive, RFC 7235), with
 * its length; NULL when the header has another form. */
static const char *bearer(const char *h, size_t *len)
{
    const char *t, *e;

    if (h == NULL || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    t = h + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    e = t;
    while (*e > ' ' && *e < 0x7f)
        e++;
    *len = (size_t)(e - t);
    while (*e == ' ' || *e == '\t')
        e++;
    if (*len == 0 || *e != '\0')
        return NULL;
    return t;
}

enum mr_auth_result mr_auth_check(const struct mr_auth *a, const char *authorization,
                                  const char *peer_cn, unsigned need, unsigned *granted,
                                  const char **who)
{
    const struct mr_auth_token *found = NULL;
    unsigned char h[32];
    const char *tok;
    size_t len;

    if (who)
        *who = "";
    if (granted)
        *granted = 0;
    if (peer_cn != NULL) {
        if (who)
            *who = peer_cn;
        if (granted)
            *granted = MR_AUTH_ALL;
        return MR_AUTH_OK;
    }
    tok = bearer(authorization, &len);
    if (tok == NULL)
        return MR_AUTH_MISSING;
    if (len > MR_AUTH_TOKEN_MAX)
        return MR_AUTH_UNKNOWN;
    sha256(tok, len, h);
    /* Every hash is compared, whatever matched first. */
    for (size_t i = 0; i < a->n; i++)
        if (CRYPTO_memcmp(a->tokens[i].hash, h, 32) == 0)
            found = &a->tokens[i];
    if (found == NULL)
        return MR_AUTH_UNKNOWN;
    if (who)
        *who = found->name;
    if (granted)
        *granted = found->scopes;
    return (found->scopes & need) == need ? MR_AUTH_OK : MR_AUTH_FORBIDDEN;
}

int mr_auth_token_new(char *out, size_t size, char *err)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[33];   /* 32 random bytes and a zero pad for the last group */
    size_t o = 4;

    if (size < MR_AUTH_TOKEN_LEN + 1)
        return mr_seterr(err, MR_EINVAL, "token buffer too small");
    if (RAND_bytes(r, 32) != 1)
        return mr_seterr(err, MR_EIO, "RAND_bytes failed: %s",
                         ERR_error_string(ERR_get_error(), NULL));
    r[32] = 0;
    memcpy(out, "mrt_", 4);
    for (size_t i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | r[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    /* 33 bytes give 44 characters; 32 bytes need ceil(256 / 6) = 43. */
    out[MR_AUTH_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
    return 0;
}

int mr_auth_token_valid(const char *token)
{
    size_t n = 0;

    for (; token[n]; n++)
        if (token[n] <= ' ' || token[n] >= 0x7f)
            return 0;
    return n >= 1 && n <= MR_AUTH_TOKEN_MAX;
}

void mr_auth_header(const char *token, char *out, size_t size)
{
    if (token == NULL || *token == '\0')
        snprintf(out, size, "%s", "");
    else
        snprintf(out, size, "Authorization: Bearer %s\r\n", token);
}

char *mr_auth_client_token(const char *given, const char *rundir)
{
    const char *env = getenv("MERIDIAN_TOKEN"), *tok;
    char *path, *out = NULL;
    json_t *doc;

    if (given != NULL)
        return mr_strdup(given);
    if (env != NULL && *env)
        return mr_strdup(env);
    if (rundir == NULL)
        return NULL;
    path = mr_asprintf("%s/topology.json", rundir);
    doc = json_load_file(path, 0, NULL);
    mr_free(path);
    tok = json_string_value(json_object_get(json_object_get(doc, "auth"), "token"));
    if (tok != NULL && *tok)
        out = mr_strdup(tok);
    json_decref(doc);
    return out;
}
