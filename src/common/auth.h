/* auth.h -- bearer tokens with scopes (docs/security.md, decision 019).
 *
 * A token is a random secret the client sends as "Authorization: Bearer
 * <token>".  Servers never store it: their configuration holds its SHA-256,
 * one line per token,
 *
 *     token = NAME SCOPES SHA256HEX
 *
 *     NAME      1*63( ALPHA / DIGIT / "-" / "_" / "." ), unique in the set
 *     SCOPES    scope *( "," scope ),  scope = "read" / "write" / "admin" / "peer"
 *     SHA256HEX 64 hex digits: the SHA-256 of the token's text
 *
 * Scopes imply others: admin implies write and peer, write implies read.
 * peer is what regions' nodes need to call each other (table streams,
 * snapshots); it implies nothing, so a node's credential cannot read or
 * write through the public API.
 *
 * Checking hashes the presented token and compares it with every configured
 * hash in constant time (no early exit), so the time taken tells nothing
 * about how close a guess was.
 *
 * Limits: at most MR_AUTH_MAX_TOKENS tokens per set; a presented token longer
 * than MR_AUTH_TOKEN_MAX bytes is refused without hashing.
 */
#ifndef MR_AUTH_H
#define MR_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define MR_AUTH_MAX_TOKENS 64
#define MR_AUTH_NAME_MAX 63
#define MR_AUTH_TOKEN_MAX 256
/* Length of a token mr_auth_token_new makes: "mrt_" + 43 base64url chars. */
#define MR_AUTH_TOKEN_LEN (4 + 43)

/* Scope bits.  A set of granted scopes is always closed under implication
 * (mr_auth_parse_scopes expands it), so a check is (granted & need) == need. */
enum {
    MR_AUTH_READ = 1 << 0,
    MR_AUTH_WRITE = 1 << 1,
    MR_AUTH_ADMIN = 1 << 2,
    MR_AUTH_PEER = 1 << 3,
};
#define MR_AUTH_ALL (MR_AUTH_READ | MR_AUTH_WRITE | MR_AUTH_ADMIN | MR_AUTH_PEER)

struct mr_auth_token {
    char name[MR_AUTH_NAME_MAX + 1];
    unsigned scopes;                 /* expanded: admin carries write, read, peer */
    unsigned char hash[32];          /* SHA-256 of the token text */
};

struct mr_auth {
    struct mr_auth_token tokens[MR_AUTH_MAX_TOKENS];
    size_t n;
};

/* Outcome of a check, also the label of the refusal counters. */
enum mr_auth_result {
    MR_AUTH_OK = 0,
    MR_AUTH_MISSING,     /* no Authorization header, or not "Bearer <token>" */
    MR_AUTH_UNKNOWN,     /* a bearer token matching no configured hash */
    MR_AUTH_FORBIDDEN,   /* a known token without the scope needed */
    MR_AUTH_RESULT_COUNT
};

/* "ok", "missing", "unknown", "forbidden". */
const char *mr_auth_result_name(enum mr_auth_result r);

/* Parse "read,write" into expanded scope bits.  MR_EINVAL naming the bad
 * scope in <err> (may be NULL). */
int mr_auth_parse_scopes(const char *s, unsigned *out, char *err)
    __attribute__((warn_unused_result));

/* Write the expanded <scopes> as "read,write,..." into <out>. */
void mr_auth_format_scopes(unsigned scopes, char *out, size_t size);

/* Add one "NAME SCOPES SHA256HEX" line to <a>.  <where> (e.g. "node.ini:12")
 * prefixes messages.  MR_ECONFIG with a message when the line is malformed,
 * the name repeats, the hash repeats or the set is full. */
int mr_auth_add(struct mr_auth *a, const char *line, const char *where, char *err)
    __attribute__((warn_unused_result));

/* Fill <a> (reset first) from the values of a repeated "token" key, each
 * with the file:line it came from (MR_CFG_LIST): the one way a server turns
 * its config's [auth] lines into a set, at start and on SIGHUP.  MR_ECONFIG
 * with the first bad line's file:line and problem in <err>; <a> is then
 * incomplete and must not be used (build into a scratch set and copy it
 * over the live one only on success: that is how a reload stays atomic). */
int mr_auth_build(struct mr_auth *a, const struct mr_cfg_list *tokens, char *err)
    __attribute__((warn_unused_result));

/* SHA-256 of <token> as 64 lower-case hex digits and a NUL. */
void mr_auth_hash_hex(const char *token, char out[65]);

/* Check a request.  <authorization> is the Authorization header's value or
 * NULL.  <peer_cn> is the common name of a client certificate the TLS layer
 * has verified against the cluster's CA, or NULL: such a caller is a member
 * of the cluster and is granted every scope (the TLS module decides what a
 * verified certificate is).  <need> is a set of scope bits.  *granted (may
 * be NULL) receives the caller's scopes (0 when unknown), *who (may be NULL)
 * the token's name, the certificate's CN or "" for logs. */
enum mr_auth_result mr_auth_check(const struct mr_auth *a, const char *authorization,
                                  const char *peer_cn, unsigned need, unsigned *granted,
                                  const char **who);

/* A fresh token from RAND_bytes: "mrt_" and 32 random bytes in base64url
 * without padding, NUL-terminated in <out> (at least MR_AUTH_TOKEN_LEN + 1
 * bytes).  MR_EIO with a message when the random generator fails. */
int mr_auth_token_new(char *out, size_t size, char *err) __attribute__((warn_unused_result));

/* 1 when <token> can be sent as a bearer token: 1 to MR_AUTH_TOKEN_MAX
 * visible ASCII characters (no blank, no control character that could end
 * the header line).  For tokens read from config files. */
int mr_auth_token_valid(const char *token);

/* "Authorization: Bearer <token>\r\n" into <out> for http_fetch and
 * http_client_request, or "" when <token> is NULL or empty. */
void mr_auth_header(const char *token, char *out, size_t size);
/* The token a command-line client sends, as a new string (mr_free), or
 * NULL for none: <given> (a --auth-token flag) when not NULL, else the
 * environment's MERIDIAN_TOKEN when set and not empty, else the
 * "auth": {"token"} of <rundir>/topology.json when <rundir> is not NULL and
 * the file has one (`meridian up` writes it there). */
char *mr_auth_client_token(const char *given, const char *rundir);

#define MR_AUTH_HEADER_MAX (sizeof("Authorization: Bearer \r\n") + MR_AUTH_TOKEN_MAX)

#endif
