/* fuzz_token.c -- the consistency token, as clients send it (header, JSON
 * field, cookie).  Beyond not crashing: the formatted form of a token that
 * parses parses again to the same token (the grammar allows leading zeros,
 * "1.007", which format drops), and merging a token with itself changes
 * nothing. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/token.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN] = "", out[MR_TOKEN_MAX_LEN], merged[MR_TOKEN_MAX_LEN];
    char *text = fuzz_cstr(data, size);
    struct mr_token t, again;

    if (mr_token_parse(text, &t, err) != 0) {
        if (err[0] == '\0')
            abort(); /* a refusal must say why */
        free(text);
        return 0;
    }
    mr_token_format(&t, out, sizeof(out));
    if (mr_token_parse(out, &again, err) != 0)
        abort();
    mr_token_format(&again, merged, sizeof(merged));
    if (strcmp(merged, out) != 0)
        abort();
    again = t;
    if (mr_token_merge(&again, &t) != 0)
        abort();
    mr_token_format(&again, merged, sizeof(merged));
    if (strcmp(merged, out) != 0)
        abort();
    free(text);
    return 0;
}
