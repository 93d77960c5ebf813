/* Unit tests of src/common: config tables, buffers, base64, number parsing. */
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
#include "common/buf.h"
#include "common/cfg.h"
#include "common/err.h"
#include "common/json.h"
#include "common/util.h"

struct conf {
    char *name;
    int64_t port;
    int64_t wait_ms;
    int64_t size;
    int flag;
};

static const struct mr_cfg_opt opts[] = {
    {"main", "name", MR_CFG_STR, offsetof(struct conf, name), 0, 0, NULL, "the name"},
    {"main", "port", MR_CFG_INT, offsetof(struct conf, port), 0, 65535, "80", "port"},
    {"main", "wait", MR_CFG_DURATION, offsetof(struct conf, wait_ms), 0, 60000, "2s", "wait"},
    {"limits", "size", MR_CFG_SIZE, offsetof(struct conf, size), 1, 1 << 30, "1m", "size"},
    {"limits", "flag", MR_CFG_BOOL, offsetof(struct conf, flag), 0, 1, "no", "flag"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static char *write_tmp(const char *text)
{
    char *path = mr_strdup("/tmp/mr-test-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load(const char *text, struct conf *c, char *err)
{
    char *path = write_tmp(text);
    int rc;
    memset(c, 0, sizeof(*c));
    rc = mr_cfg_load(path, opts, N_OPTS, c, err);
    unlink(path);
    mr_free(path);
    return rc;
}

static void cfg_loads_values_and_defaults(void **state)
{
    struct conf c;
    char err[MR_ERRMSG_LEN] = "";
    assert_int_equal(load("[main]\nname = us-east-1\nwait = 250ms\n[limits]\nflag = yes\n", &c, err), 0);
    assert_string_equal(c.name, "us-east-1");
    assert_int_equal(c.port, 80);
    assert_int_equal(c.wait_ms, 250);
    assert_int_equal(c.size, 1024 * 1024);
    assert_int_equal(c.flag, 1);
    mr_cfg_free(opts, N_OPTS, &c);
    assert_null(c.name);
}

static void cfg_rejects_bad_value_naming_line_and_key(void **state)
{
    struct conf c;
    char err[MR_ERRMSG_LEN] = "";
    assert_int_equal(load("[main]\nname = x\nport = 99999\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: key 'port' in [main]: expected an integer between 0 and 65535, found '99999'"));
    mr_cfg_free(opts, N_OPTS, &c);
    assert_int_equal(load("[main]\nname = x\nwait = soon\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: key 'wait'"));
    assert_non_null(strstr(err, "found 'soon'"));
    mr_cfg_free(opts, N_OPTS, &c);
}

static void cfg_rejects_unknown_key_and_section(void **state)
{
    struct conf c;
    char err[MR_ERRMSG_LEN] = "";
    assert_int_equal(load("[main]\nname = x\nprot = 1\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: unknown key 'prot' in [main]"));
    mr_cfg_free(opts, N_OPTS, &c);
    assert_int_equal(load("[mian]\nname = x\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":2: unknown section [mian]"));
    mr_cfg_free(opts, N_OPTS, &c);
}

static void cfg_reports_missing_required_key(void **state)
{
    struct conf c;
    char err[MR_ERRMSG_LEN] = "";
    assert_int_equal(load("[main]\nport = 1\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, "key 'name' in [main] is required"));
    mr_cfg_free(opts, N_OPTS, &c);
}

static void cfg_reports_syntax_error_and_long_line(void **state)
{
    struct conf c;
    char err[MR_ERRMSG_LEN] = "";
    char longline[400];
    assert_int_equal(load("[main]\nname = x\nthis is not ini\n", &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":3: syntax error"));
    mr_cfg_free(opts, N_OPTS, &c);
    memset(longline, 'a', sizeof(longline));
    memcpy(longline, "[main]\nname = ", 14);
    longline[sizeof(longline) - 1] = '\0';
    assert_int_equal(load(longline, &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, ":2: line longer than"));
    mr_cfg_free(opts, N_OPTS, &c);
}

static void cfg_missing_file_is_named(void **state)
{
    struct conf c = {0};
    char err[MR_ERRMSG_LEN] = "";
    assert_int_equal(mr_cfg_load("/nonexistent/x.ini", opts, N_OPTS, &c, err), MR_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/x.ini: cannot open"));
    mr_cfg_free(opts, N_OPTS, &c);
}

static void base64_round_trips_and_rejects_garbage(void **state)
{
    const unsigned char bin[] = {0, 1, 2, 250, 251, 252, 253};
    for (size_t n = 0; n <= sizeof(bin); n++) {
        char *enc = mr_base64_encode(bin, n);
        unsigned char *dec;
        size_t len;
        assert_int_equal(mr_base64_decode(enc, strlen(enc), &dec, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(dec, bin, n);
        mr_free(dec);
        mr_free(enc);
    }
    unsigned char *dec;
    size_t len;
    assert_int_equal(mr_base64_decode("abc", 3, &dec, &len), MR_EINVAL);
    assert_int_equal(mr_base64_decode("ab!d", 4, &dec, &len), MR_EINVAL);
    assert_int_equal(mr_base64_decode("a=bc", 4, &dec, &len), MR_EINVAL);
}

static void parse_numbers_strictly(void **state)
{
    int64_t v;
    assert_int_equal(mr_parse_i64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(mr_parse_i64("42x", 0, 100, &v), MR_EINVAL);
    assert_int_equal(mr_parse_i64("101", 0, 100, &v), MR_EINVAL);
    assert_int_equal(mr_parse_i64("", 0, 100, &v), MR_EINVAL);
    assert_int_equal(mr_parse_duration_ms("24h", &v), 0);
    assert_int_equal(v, 24 * 3600 * 1000LL);
    assert_int_equal(mr_parse_duration_ms("-1s", &v), MR_EINVAL);
    assert_int_equal(mr_parse_size("64k", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(mr_parse_size("64q", &v), MR_EINVAL);
}

static void json_str_escapes_control_and_quotes(void **state)
{
    struct mr_buf b;
    mr_buf_init(&b);
    mr_json_str(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    mr_buf_reset(&b);
    mr_json_double(&b, 2.0);
    assert_string_equal(b.data, "2.0");
    mr_buf_reset(&b);
    mr_json_double(&b, 0.1);
    assert_string_equal(b.data, "0.1");
    mr_buf_reset(&b);
    mr_json_double(&b, 1.0 / 3.0);
    assert_true(strtod(b.data, NULL) == 1.0 / 3.0);
    mr_buf_close(&b);
}

/* JSON text is UTF-8: well-formed sequences pass as they are, any other
 * byte (a client's path echoed in an error) becomes U+FFFD. */
static void json_str_keeps_utf8_and_replaces_what_is_not(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x92", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x92\""},
        {"a\xff" "b", "\"a\\ufffdb\""},              /* never a UTF-8 byte */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},        /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
        {"end\xe2\x82", "\"end\\ufffd\\ufffd\""},   /* cut short */
    };
    struct mr_buf b;

    (void)state;
    mr_buf_init(&b);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mr_buf_reset(&b);
        mr_json_cstr(&b, cases[i].in);
        assert_string_equal(b.data, cases[i].out);
    }
    mr_buf_close(&b);
}

static void buf_grows_and_consumes(void **state)
{
    struct mr_buf b;
    mr_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        mr_buf_printf(&b, "%d,", i);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    mr_buf_consume(&b, 2);
    assert_int_equal(strncmp(b.data, "1,2,", 4), 0);
    mr_buf_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cfg_loads_values_and_defaults),
        cmocka_unit_test(cfg_rejects_bad_value_naming_line_and_key),
        cmocka_unit_test(cfg_rejects_unknown_key_and_section),
        cmocka_unit_test(cfg_reports_missing_required_key),
        cmocka_unit_test(cfg_reports_syntax_error_and_long_line),
        cmocka_unit_test(cfg_missing_file_is_named),
        cmocka_unit_test(base64_round_trips_and_rejects_garbage),
        cmocka_unit_test(parse_numbers_strictly),
        cmocka_unit_test(json_str_escapes_control_and_quotes),
        cmocka_unit_test(json_str_keeps_utf8_and_replaces_what_is_not),
        cmocka_unit_test(buf_grows_and_consumes),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
