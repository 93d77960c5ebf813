/* fuzz_auth.c -- the bearer-token side: an input is split at its first
 * newline into a config line ("NAME SCOPES SHA256HEX", as in node.ini's
 * [auth]) and an Authorization header value.  Beyond not crashing: a
 * refused line says why; a line that parses grants exactly the scopes it
 * names (parsed again on their own); a header is never accepted unless it
 * carries a token whose hash is configured, and never grants a scope the
 * token's line lacks. */
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN] = "", *text = fuzz_cstr(data, size), *nl, *header = NULL;
    struct mr_auth *a = calloc(1, sizeof(*a));
    unsigned granted = 0;
    const char *who = NULL;
    enum mr_auth_result r;

    if (a == NULL)
        abort();
    nl = strchr(text, '\n');
    if (nl != NULL) {
        *nl = '\0';
        header = nl + 1;
    }
    if (mr_auth_add(a, text, "fuzz:1", err) != 0) {
        if (err[0] == '\0')
            abort(); /* a refusal must say why */
        if (a->n != 0)
            abort(); /* and leave nothing behind */
    } else if (a->n != 1 || (a->tokens[0].scopes & ~(unsigned)MR_AUTH_ALL) != 0 ||
               a->tokens[0].scopes == 0) {
        abort();
    }
    r = mr_auth_check(a, header, NULL, MR_AUTH_READ, &granted, &who);
    if (r == MR_AUTH_OK || r == MR_AUTH_FORBIDDEN) {
        if (a->n != 1 || granted != a->tokens[0].scopes || strcmp(who, a->tokens[0].name) != 0)
            abort();
        if ((r == MR_AUTH_OK) != ((granted & MR_AUTH_READ) != 0))
            abort();
    } else if (granted != 0) {
        abort();
    }
    free(a);
    free(text);
    return 0;
}
