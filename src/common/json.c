/* json.c -- JSON text writers (see json.h). */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence that starts <p> (<n> bytes
 * available), or 0: RFC 3629, so no overlong forms, no surrogates and
 * nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    unsigned char lo = 0x80, hi = 0xbf;

    if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

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

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
            continue;
        if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)s + i, n - i);
            if (k > 0) {
                i += k - 1;
                continue;
            }
            /* Not UTF-8 (a path or a name as a client sent it): JSON text
             * must be, so the byte becomes U+FFFD. */
            mr_buf_append(b, s + start, i - start);
            mr_buf_puts(b, "\\ufffd");
            start = i + 1;
            continue;
        }
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
