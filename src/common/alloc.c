/* alloc.c -- allocation wrappers (see alloc.h for the abort-on-OOM rule). */
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "meridian: out of memory allocating %zu bytes\n", n);
    abort();
}

void *mr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *mr_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *mr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

void *mr_try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

char *mr_strdup(const char *s)
{
    return mr_strndup(s, strlen(s));
}

char *mr_strndup(const char *s, size_t n)
{
    char *p = mr_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void mr_free(void *p)
{
    free(p);
}

char *mr_asprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    p = mr_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
