/* buf.c -- growable byte buffer. */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

void mr_buf_init(struct mr_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void mr_buf_close(struct mr_buf *b)
{
    mr_free(b->data);
    mr_buf_init(b);
}

void mr_buf_reset(struct mr_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void mr_buf_reserve(struct mr_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = mr_realloc(b->data, cap);
    b->cap = cap;
}

void mr_buf_append(struct mr_buf *b, const void *p, size_t n)
{
    mr_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mr_buf_puts(struct mr_buf *b, const char *s)
{
    mr_buf_append(b, s, strlen(s));
}

void mr_buf_putc(struct mr_buf *b, char c)
{
    mr_buf_append(b, &c, 1);
}

void mr_buf_vprintf(struct mr_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return;
    mr_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void mr_buf_printf(struct mr_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mr_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void mr_buf_consume(struct mr_buf *b, size_t n)
{
    if (n >= b->len) {
        mr_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *mr_buf_steal(struct mr_buf *b, size_t *len)
{
    char *p = b->data;

    if (len)
        *len = b->len;
    if (p == NULL)
        p = mr_strdup("");
    mr_buf_init(b);
    return p;
}
