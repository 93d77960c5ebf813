/* util.c -- small pure helpers of the shop: HTML escaping, cookies, form
 * fields, identifiers, money.  No I/O; tests/unit/shop/test_util.c. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "shop_int.h"

void shop__html(struct mr_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': mr_buf_puts(b, "&amp;"); break;
        case '<': mr_buf_puts(b, "&lt;"); break;
        case '>': mr_buf_puts(b, "&gt;"); break;
        case '"': mr_buf_puts(b, "&quot;"); break;
        case '\'': mr_buf_puts(b, "&#39;"); break;
        default: mr_buf_putc(b, *s);
        }
    }
}

int shop__form(const char *body, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = body;

    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t flen = end ? (size_t)(end - p) : strlen(p);
        if (flen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = flen - nlen - 1;
            /* decoding never lengthens: a value that fits raw fits decoded */
            if (vlen + 1 > size) {
                char *tmp = mr_malloc(vlen + 1);
                size_t o = mr_percent_decode(tmp, p + nlen + 1, vlen, 1);
                int fits = o + 1 <= size;
                if (fits) {
                    memcpy(out, tmp, o);
                    out[o] = '\0';
                }
                mr_free(tmp);
                return fits;
            }
            out[mr_percent_decode(out, p + nlen + 1, vlen, 1)] = '\0';
            return 1;
        }
        if (flen == nlen && strncmp(p, name, nlen) == 0) {
            if (size == 0)
                return 0;
            out[0] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int shop__sku_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SHOP_SKU_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return 0;
    return 1;
}

int shop__sid_valid(const char *s)
{
    if (strlen(s) != SHOP_SID_HEX)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* 128 bits from getrandom(2): unguessable, and no two shops collide. */
void shop__sid_new(char out[SHOP_SID_HEX + 1])
{
    snprintf(out, SHOP_SID_HEX + 1, "%016" PRIx64 "%016" PRIx64, mr_random64(), mr_random64());
}

static const struct {
    const char *code;
    const char *symbol;
    int64_t per_million_usd;   /* units of the currency per 1,000,000 USD */
    int decimals;
} currencies[] = {
    {"USD", "$", 1000000, 2}, {"EUR", "\u20ac", 920000, 2}, {"GBP", "\u00a3", 790000, 2},
    {"SGD", "S$", 1340000, 2}, {"JPY", "\u00a5", 150000000, 0},
};

int shop__currency_valid(const char *c)
{
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
        if (strcmp(c, currencies[i].code) == 0)
            return 1;
    return 0;
}

int shop__language_valid(const char *l)
{
    return !strcmp(l, "en") || !strcmp(l, "de") || !strcmp(l, "fr") || !strcmp(l, "ja");
}

void shop__money(char *out, size_t size, int64_t usd_cents, const char *currency)
{
    size_t k = 0;

    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
        if (currency && strcmp(currency, currencies[i].code) == 0)
            k = i;
    /* cents of the currency, rounded half up */
    int64_t minor = (usd_cents * currencies[k].per_million_usd + 500000) / 1000000;
    if (currencies[k].decimals == 0)
        snprintf(out, size, "%s%" PRId64, currencies[k].symbol, (minor + 50) / 100);
    else
        snprintf(out, size, "%s%" PRId64 ".%02" PRId64, currencies[k].symbol, minor / 100, minor % 100);
}

char *shop__like_pattern(const char *q)
{
    struct mr_buf b;

    mr_buf_init(&b);
    mr_buf_putc(&b, '%');
    for (; *q; q++) {
        if (*q == '%' || *q == '_' || *q == '\\')
            mr_buf_putc(&b, '\\');
        mr_buf_putc(&b, *q);
    }
    mr_buf_putc(&b, '%');
    return mr_buf_steal(&b, NULL);
}

int shop__failed_statement(const char *msg)
{
    const char *p = msg ? strstr(msg, "statement ") : NULL;
    int n = 0;

    if (p == NULL)
        return 0;
    p += strlen("statement ");
    while (isdigit((unsigned char)*p) && n < 100000)
        n = n * 10 + (*p++ - '0');
    return *p == ':' ? n : 0;
}
