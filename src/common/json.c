/* json.c -- JSON text writers (see json.h). */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void mr_json_str(struct mr_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    mr_buf_reserve(b, n + 2);
    mr_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
            u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = '\0';
            esc = u;
        }
        mr_buf_append(b, s + start, i - start);
        mr_buf_puts(b, esc);
        start = i + 1;
    }
    mr_buf_append(b, s + start, n - start);
    mr_buf_putc(b, '"');
}

void mr_json_cstr(struct mr_buf *b, const char *s)
{
    mr_json_str(b, s, strlen(s));
}

void mr_json_double(struct mr_buf *b, double d)
{
    char tmp[32];

    if (!isfinite(d)) {
        mr_buf_puts(b, "null");
        return;
    }
    /* The shortest of %.15g..%.17g that reads back as the same double (0.1
     * stays "0.1"); keep a decimal point so that the value reads back as a
     * real, not an integer. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    mr_buf_puts(b, tmp);
    if (strpbrk(tmp, ".eEn") == NULL)
        mr_buf_puts(b, ".0");
}

void mr_json_error(struct mr_buf *b, const char *code, const char *msg)
{
    mr_buf_puts(b, "{\"error\":{\"code\":");
    mr_json_cstr(b, code);
    mr_buf_puts(b, ",\"message\":");
    mr_json_cstr(b, msg);
    mr_buf_puts(b, "}}");
}
