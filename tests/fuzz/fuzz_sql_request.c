/* fuzz_sql_request.c -- the JSON body of POST /v1/sql, and the token in it.
 * The first input line, if it starts with "T:", is used as the
 * Meridian-Token header too, so header and body tokens are both reached. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz.h"
#include "node/node_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN];
    char *text = fuzz_cstr(data, size), *body = text;
    struct http_header hdr = {"Meridian-Token", NULL};
    struct http_request hr = {"POST", "/v1/sql", "", NULL, 0, NULL, 0, 0, ""};
    struct sql_req r;

    if (strncmp(text, "T:", 2) == 0 && (body = strchr(text, '\n')) != NULL) {
        *body++ = '\0';
        hdr.value = text + 2;
        hr.headers = &hdr;
        hr.n_headers = 1;
    } else {
        body = text;
    }
    hr.body = body;
    hr.body_len = size - (size_t)(body - text);
    if (node__parse_sql_request(&hr, &r, err) != 0 && err[0] == '\0')
        abort(); /* a refusal must say why */
    sql_req_free(&r);
    free(text);
    return 0;
}
