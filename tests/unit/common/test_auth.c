/* Unit tests of src/common/auth: scopes, the config line, checks, new tokens,
 * and the repeated-key config type the [auth] section uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/auth.h"
#include "common/cfg.h"
#include "common/err.h"

#define SECRET "secret-token"

static void line_for(char *out, size_t size, const char *name, const char *scopes, const char *tok)
{
    char hex[65];
    mr_auth_hash_hex(tok, hex);
    snprintf(out, size, "%s %s %s", name, scopes, hex);
}

static void hash_is_sha256_hex(void **state)
{
    char hex[65];
    (void)state;
    mr_auth_hash_hex("abc", hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void scopes_imply(void **state)
{
    unsigned s;
    char text[64], err[MR_ERRMSG_LEN];
    (void)state;
    assert_int_equal(mr_auth_parse_scopes("read", &s, err), 0);
    assert_int_equal(s, MR_AUTH_READ);
    assert_int_equal(mr_auth_parse_scopes("write", &s, err), 0);
    assert_int_equal(s, MR_AUTH_READ | MR_AUTH_WRITE);
    assert_int_equal(mr_auth_parse_scopes("admin", &s, err), 0);
    assert_int_equal(s, MR_AUTH_ALL);
    assert_int_equal(mr_auth_parse_scopes("peer,read", &s, err), 0);
    assert_int_equal(s, MR_AUTH_PEER | MR_AUTH_READ);
    mr_auth_format_scopes(MR_AUTH_READ | MR_AUTH_WRITE, text, sizeof(text));
    assert_string_equal(text, "read,write");
    assert_int_equal(mr_auth_parse_scopes("read,,write", &s, err), MR_EINVAL);
    assert_int_equal(mr_auth_parse_scopes("Read", &s, err), MR_EINVAL);
    assert_non_null(strstr(err, "unknown scope 'Read'"));
    assert_int_equal(mr_auth_parse_scopes("", &s, err), MR_EINVAL);
}

static void check_grants_by_scope(void **state)
{
    struct mr_auth *a = mr_calloc(1, sizeof(*a));
    char line[200], err[MR_ERRMSG_LEN];
    const char *who;
    unsigned granted;
    (void)state;

    line_for(line, sizeof(line), "reader", "read", "tok-r");
    assert_int_equal(mr_auth_add(a, line, "t:1", err), 0);
    line_for(line, sizeof(line), "writer", "write", "tok-w");
    assert_int_equal(mr_auth_add(a, line, "t:2", err), 0);
    line_for(line, sizeof(line), "boss", "admin", "tok-a");
    assert_int_equal(mr_auth_add(a, line, "t:3", err), 0);
    line_for(line, sizeof(line), "node", "peer", "tok-p");
    assert_int_equal(mr_auth_add(a, line, "t:4", err), 0);

    assert_int_equal(mr_auth_check(a, NULL, NULL, MR_AUTH_READ, &granted, &who), MR_AUTH_MISSING);
    assert_int_equal(mr_auth_check(a, "Basic eDp5", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_MISSING);
    assert_int_equal(mr_auth_check(a, "Bearer", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_MISSING);
    assert_int_equal(mr_auth_check(a, "Bearer a b", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_MISSING);
    assert_int_equal(mr_auth_check(a, "Bearer nope", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_UNKNOWN);
    assert_int_equal(mr_auth_check(a, "Bearer tok-r", NULL, MR_AUTH_READ, &granted, &who), MR_AUTH_OK);
    assert_string_equal(who, "reader");
    assert_int_equal(granted, MR_AUTH_READ);
    assert_int_equal(mr_auth_check(a, "bearer  tok-r ", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_OK);
    assert_int_equal(mr_auth_check(a, "Bearer tok-r", NULL, MR_AUTH_WRITE, NULL, &who), MR_AUTH_FORBIDDEN);
    assert_int_equal(mr_auth_check(a, "Bearer tok-w", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_OK);
    assert_int_equal(mr_auth_check(a, "Bearer tok-w", NULL, MR_AUTH_ADMIN, NULL, NULL), MR_AUTH_FORBIDDEN);
    assert_int_equal(mr_auth_check(a, "Bearer tok-a", NULL, MR_AUTH_ADMIN, NULL, NULL), MR_AUTH_OK);
    assert_int_equal(mr_auth_check(a, "Bearer tok-a", NULL, MR_AUTH_PEER, NULL, NULL), MR_AUTH_OK);
    assert_int_equal(mr_auth_check(a, "Bearer tok-p", NULL, MR_AUTH_PEER, NULL, NULL), MR_AUTH_OK);
    assert_int_equal(mr_auth_check(a, "Bearer tok-p", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_FORBIDDEN);
    /* A verified cluster certificate stands for a member: every scope. */
    assert_int_equal(mr_auth_check(a, NULL, "us-east-1", MR_AUTH_ADMIN, &granted, &who), MR_AUTH_OK);
    assert_string_equal(who, "us-east-1");
    assert_int_equal(granted, MR_AUTH_ALL);
    {
        char big[MR_AUTH_TOKEN_MAX + 20];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "Bearer ", 7);
        assert_int_equal(mr_auth_check(a, big, NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_UNKNOWN);
    }
    mr_free(a);
}

static void config_line_errors_name_the_line(void **state)
{
    struct mr_auth *a = mr_calloc(1, sizeof(*a));
    char line[200], err[MR_ERRMSG_LEN];
    (void)state;

    assert_int_equal(mr_auth_add(a, "shop write", "node.ini:7", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:7: token: expected NAME SCOPES SHA256HEX"));
    assert_int_equal(mr_auth_add(a, "shop write abcd extra", "node.ini:8", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:8:"));
    assert_int_equal(mr_auth_add(a, "shop write abcd", "node.ini:9", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:9: token 'shop': expected the SHA-256"));
    line_for(line, sizeof(line), "sh/op", "write", SECRET);
    assert_int_equal(mr_auth_add(a, line, "node.ini:10", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:10: token: name 'sh/op'"));
    line_for(line, sizeof(line), "shop", "write,root", SECRET);
    assert_int_equal(mr_auth_add(a, line, "node.ini:11", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:11: token 'shop': unknown scope 'root'"));
    line_for(line, sizeof(line), "shop", "write", SECRET);
    line[strlen(line) - 1] = 'g';
    assert_int_equal(mr_auth_add(a, line, "node.ini:12", err), MR_ECONFIG);
    assert_non_null(strstr(err, "non-hex"));
    line_for(line, sizeof(line), "shop", "write", SECRET);
    assert_int_equal(mr_auth_add(a, line, "node.ini:13", err), 0);
    assert_int_equal(mr_auth_add(a, line, "node.ini:14", err), MR_ECONFIG);
    assert_non_null(strstr(err, "node.ini:14: token name 'shop' appears twice"));
    line_for(line, sizeof(line), "shop2", "read", SECRET);
    assert_int_equal(mr_auth_add(a, line, "node.ini:15", err), MR_ECONFIG);
    assert_non_null(strstr(err, "same hash as 'shop'"));
    /* The 65th token is refused. */
    for (int i = 1; i < MR_AUTH_MAX_TOKENS; i++) {
        char name[16], tok[16];
        snprintf(name, sizeof(name), "t%d", i);
        snprintf(tok, sizeof(tok), "tok%d", i);
        line_for(line, sizeof(line), name, "read", tok);
        assert_int_equal(mr_auth_add(a, line, "f", err), 0);
    }
    line_for(line, sizeof(line), "last", "read", "tok-last");
    assert_int_equal(mr_auth_add(a, line, "node.ini:99", err), MR_ECONFIG);
    assert_non_null(strstr(err, "at most 64 tokens"));
    mr_free(a);
}

static void new_tokens_are_random_and_accepted(void **state)
{
    struct mr_auth *a = mr_calloc(1, sizeof(*a));
    char t1[MR_AUTH_TOKEN_LEN + 1], t2[MR_AUTH_TOKEN_LEN + 1], line[200], hdr[MR_AUTH_HEADER_MAX];
    char err[MR_ERRMSG_LEN];
    (void)state;

    assert_int_equal(mr_auth_token_new(t1, sizeof(t1), err), 0);
    assert_int_equal(mr_auth_token_new(t2, sizeof(t2), err), 0);
    assert_int_equal(strlen(t1), MR_AUTH_TOKEN_LEN);
    assert_int_equal(strncmp(t1, "mrt_", 4), 0);
    assert_string_not_equal(t1, t2);
    assert_int_equal(strspn(t1 + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     MR_AUTH_TOKEN_LEN - 4);
    line_for(line, sizeof(line), "x", "read", t1);
    assert_int_equal(mr_auth_add(a, line, "f", err), 0);
    mr_auth_header(t1, hdr, sizeof(hdr));
    assert_int_equal(strncmp(hdr, "Authorization: Bearer mrt_", 26), 0);
    hdr[strlen(hdr) - 2] = '\0';
    assert_int_equal(mr_auth_check(a, hdr + strlen("Authorization: "), NULL, MR_AUTH_READ, NULL, NULL),
                     MR_AUTH_OK);
    mr_auth_header(NULL, hdr, sizeof(hdr));
    assert_string_equal(hdr, "");
    assert_int_equal(mr_auth_token_new(t1, 10, err), MR_EINVAL);
    assert_true(mr_auth_token_valid(t1));
    assert_false(mr_auth_token_valid(""));
    assert_false(mr_auth_token_valid("a b"));
    assert_false(mr_auth_token_valid("a\r\nX-Evil: 1"));
    mr_free(a);
}

struct lconf {
    char *name;
    struct mr_cfg_list tokens;
};

static const struct mr_cfg_opt lopts[] = {
    {"main", "name", MR_CFG_STR, offsetof(struct lconf, name), 0, 0, "x", "the name"},
    {"auth", "token", MR_CFG_LIST, offsetof(struct lconf, tokens), 0, 0, NULL, "tokens"},
};

static void cfg_list_keeps_every_value_and_its_line(void **state)
{
    char path[] = "/tmp/mr-test-auth-XXXXXX", err[MR_ERRMSG_LEN], where[64];
    const char *text = "[main]\nname = y\n[auth]\ntoken = a read 00\n\ntoken = b write 11\n";
    struct lconf c;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    memset(&c, 0, sizeof(c));
    assert_int_equal(mr_cfg_load(path, lopts, 2, &c, err), 0);
    assert_int_equal(c.tokens.n, 2);
    assert_string_equal(c.tokens.values[0], "a read 00");
    assert_string_equal(c.tokens.values[1], "b write 11");
    snprintf(where, sizeof(where), "%s:6", path);
    assert_string_equal(c.tokens.where[1], where);
    mr_cfg_free(lopts, 2, &c);
    assert_int_equal(c.tokens.n, 0);
    unlink(path);
}

/* mr_auth_build: what the node and the shop run at start and on SIGHUP. */
static void build_takes_every_line_or_names_the_bad_one(void **state)
{
    char l1[160], l2[160], bad[] = "c admin 12";
    char *values[3] = {l1, l2, bad}, *where[3] = {"n.ini:3", "n.ini:4", "n.ini:9"};
    struct mr_cfg_list list = {2, values, where};
    struct mr_auth live, scratch;
    char err[MR_ERRMSG_LEN];
    unsigned granted;
    (void)state;

    line_for(l1, sizeof(l1), "a", "read", "tok-a");
    line_for(l2, sizeof(l2), "b", "admin", "tok-b");
    assert_int_equal(mr_auth_build(&live, &list, err), 0);
    assert_int_equal(live.n, 2);
    assert_int_equal(mr_auth_check(&live, "Bearer tok-b", NULL, MR_AUTH_ADMIN, &granted, NULL), MR_AUTH_OK);
    /* A third line that does not parse: an error naming its file:line, and
     * the live set (built before) unchanged, since only a successful build
     * is copied over it. */
    list.n = 3;
    assert_int_equal(mr_auth_build(&scratch, &list, err), MR_ECONFIG);
    assert_non_null(strstr(err, "n.ini:9"));
    assert_int_equal(live.n, 2);
    /* A rebuild resets: nothing of the previous set survives. */
    list.n = 1;
    assert_int_equal(mr_auth_build(&live, &list, err), 0);
    assert_int_equal(live.n, 1);
    assert_int_equal(mr_auth_check(&live, "Bearer tok-b", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_UNKNOWN);
    list.n = 0;
    assert_int_equal(mr_auth_build(&live, &list, err), 0);
    assert_int_equal(live.n, 0);
    assert_int_equal(mr_auth_check(&live, "Bearer tok-a", NULL, MR_AUTH_READ, NULL, NULL), MR_AUTH_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_is_sha256_hex),
        cmocka_unit_test(scopes_imply),
        cmocka_unit_test(check_grants_by_scope),
        cmocka_unit_test(config_line_errors_name_the_line),
        cmocka_unit_test(new_tokens_are_random_and_accepted),
        cmocka_unit_test(cfg_list_keeps_every_value_and_its_line),
        cmocka_unit_test(build_takes_every_line_or_names_the_bad_one),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
