/* test_util.c -- reading headers and cookies out of a client response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static struct http_header headers[] = {
    {"Content-Type", "text/html"},
    {"set-cookie", "mr_sid=abc123; Path=/; HttpOnly"},
    {"Set-Cookie", "mr_token=1.42.eu-west-1=7; Path=/"},
    {"Set-Cookie", "mr_sidx=wrong"},
    {"Meridian-Region", "eu-west-1"},
    {"Set-Cookie", "mr_token=1.43; Max-Age=60"},
};
static const struct http_response resp = {200, headers, sizeof(headers) / sizeof(headers[0]), "", 0};

static void headers_are_found_whatever_their_case(void **state)
{
    (void)state;
    assert_string_equal(http_response_header(&resp, "meridian-region"), "eu-west-1");
    assert_string_equal(http_response_header(&resp, "CONTENT-TYPE"), "text/html");
    assert_null(http_response_header(&resp, "Meridian-Cache"));
}

static void cookies_take_the_last_value_and_only_their_own_name(void **state)
{
    char sid[16] = "old", token[64] = "", tiny[5] = "keep", none[8] = "same";

    (void)state;
    http_response_cookie(&resp, "mr_sid", sid, sizeof(sid));
    assert_string_equal(sid, "abc123");          /* not mr_sidx's value */
    http_response_cookie(&resp, "mr_token", token, sizeof(token));
    assert_string_equal(token, "1.43");          /* the last Set-Cookie wins */
    http_response_cookie(&resp, "mr_sid", tiny, sizeof(tiny));
    assert_string_equal(tiny, "keep");           /* does not fit: left as it was */
    http_response_cookie(&resp, "other", none, sizeof(none));
    assert_string_equal(none, "same");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(headers_are_found_whatever_their_case),
        cmocka_unit_test(cookies_take_the_last_value_and_only_their_own_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
