/* alloc.h -- the allocator every module goes through.
 *
 * mr_malloc and friends abort on exhaustion: a daemon that cannot allocate a
 * few hundred bytes cannot make progress safely, and checking every small
 * allocation would hide the paths that matter (SQLite and libuv have their
 * own).  Tests may install hooks to count allocations or inject failures in
 * code that calls mr_try_malloc, the variant that returns NULL.
 */
#ifndef MR_ALLOC_H
#define MR_ALLOC_H

#include <stddef.h>

void *mr_malloc(size_t n);
void *mr_calloc(size_t count, size_t n);
void *mr_realloc(void *p, size_t n);
char *mr_strdup(const char *s);
char *mr_strndup(const char *s, size_t n);
/* Returns NULL on failure instead of aborting; for large, input-sized buffers. */
void *mr_try_malloc(size_t n);
void mr_free(void *p);

/* printf into a new allocation; the caller frees it with mr_free. */
char *mr_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
