/* token.h -- the consistency token shared by the SQL and table data paths.
 *
 * A token is opaque to clients.  Grammar (ABNF, RFC 5234):
 *
 *     token  = "1." rev *( "." origin "=" seq )
 *     rev    = 1*19DIGIT          ; SQL log revision, 0..INT64_MAX
 *     origin = 1*63( ALPHA / DIGIT / "-" / "_" )   ; a region name
 *     seq    = 1*20DIGIT          ; table change-log position, 1..UINT64_MAX
 *
 * e.g. "1.42", "1.42.eu-west-1=7.us-east-1=12".  Origins appear at most once
 * and in strictly increasing byte order (mr_token_format writes them so);
 * '.' and '=' never occur in a region name, so the fields cannot be confused.
 * The SQL path reads <rev> only; the table path reads the origins.
 */
#ifndef MR_TOKEN_H
#define MR_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define MR_TOKEN_VERSION "1"
#define MR_TOKEN_MAX_ORIGINS 16
#define MR_TOKEN_ORIGIN_MAX 63
/* Longest formatted token, NUL included. */
#define MR_TOKEN_MAX_LEN (2 + 20 + MR_TOKEN_MAX_ORIGINS * (2 + MR_TOKEN_ORIGIN_MAX + 20) + 1)

struct mr_token {
    int64_t rev;                     /* 0 when no SQL position is carried */
    size_t n;
    struct {
        char origin[MR_TOKEN_ORIGIN_MAX + 1];
        uint64_t seq;
    } pos[MR_TOKEN_MAX_ORIGINS];     /* sorted by origin */
};

/* Parse <s> strictly.  0, or MR_EINVAL with a message in <err> (may be NULL)
 * naming the first problem; *t is then unspecified. */
int mr_token_parse(const char *s, struct mr_token *t, char *err)
    __attribute__((warn_unused_result));

/* Write <t> into <out> (MR_TOKEN_MAX_LEN bytes are always enough). */
void mr_token_format(const struct mr_token *t, char *out, size_t size);

/* Raise <t>'s position of <origin> to at least <seq>.  MR_EINVAL when the
 * name is not a valid origin, MR_ETOOBIG when <t> already holds
 * MR_TOKEN_MAX_ORIGINS other origins. */
int mr_token_set(struct mr_token *t, const char *origin, uint64_t seq);

/* <origin>'s position in <t>, 0 when absent. */
uint64_t mr_token_get(const struct mr_token *t, const char *origin);

/* Component-wise maximum into <dst>.  MR_ETOOBIG when the union holds more
 * than MR_TOKEN_MAX_ORIGINS origins (then <dst> holds the first ones). */
int mr_token_merge(struct mr_token *dst, const struct mr_token *src);

/* 1 when <name> is a valid origin (region) name. */
int mr_token_origin_valid(const char *name, size_t len);

#endif
