/* buf.h -- a growable byte buffer.
 *
 * struct mr_buf is caller-provided storage (init/close); the bytes it points
 * to belong to the buffer until mr_buf_steal hands them to the caller.  The
 * data is always followed by a NUL byte that is not counted in <len>, so a
 * buffer of text can be used as a C string.
 */
#ifndef MR_BUF_H
#define MR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mr_buf {
    char *data;
    size_t len;
    size_t cap;
};

void mr_buf_init(struct mr_buf *b);
void mr_buf_close(struct mr_buf *b);
void mr_buf_reset(struct mr_buf *b);
void mr_buf_reserve(struct mr_buf *b, size_t extra);
void mr_buf_append(struct mr_buf *b, const void *p, size_t n);
void mr_buf_puts(struct mr_buf *b, const char *s);
void mr_buf_putc(struct mr_buf *b, char c);
void mr_buf_printf(struct mr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mr_buf_vprintf(struct mr_buf *b, const char *fmt, va_list ap);
/* Remove the first <n> bytes. */
void mr_buf_consume(struct mr_buf *b, size_t n);
/* Hand the bytes to the caller (free with mr_free); the buffer becomes empty. */
char *mr_buf_steal(struct mr_buf *b, size_t *len);

#endif
