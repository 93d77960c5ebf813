/* failwrite.c -- LD_PRELOAD library for tests: one write to a chosen file
 * fails with EBADF, as a descriptor that was closed or replaced would.
 *
 * The test writes a path fragment (e.g. "eu-west-1/data/meridian.db-wal")
 * into the file named by $MR_FAILWRITE_TRIGGER.  The next pwrite64 in any
 * process of the cluster to a descriptor whose path contains that fragment
 * removes the trigger (unlink: exactly one process wins) and fails.  While
 * the trigger does not exist, a write costs one access(2) more. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);

static int should_fail(int fd)
{
    const char *trigger = getenv("MR_FAILWRITE_TRIGGER");
    char want[512], link[64], path[1024];
    ssize_t n;
    FILE *f;

    if (trigger == NULL || access(trigger, F_OK) != 0)
        return 0;
    f = fopen(trigger, "r");
    if (f == NULL)
        return 0;
    n = (ssize_t)fread(want, 1, sizeof(want) - 1, f);
    fclose(f);
    want[n > 0 ? n : 0] = '\0';
    want[strcspn(want, "\n")] = '\0';
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0 || want[0] == '\0')
        return 0;
    path[n] = '\0';
    return strstr(path, want) != NULL && unlink(trigger) == 0;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
    if (real_pwrite64 == NULL)
        real_pwrite64 = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    if (should_fail(fd)) {
        errno = EBADF;
        return -1;
    }
    return real_pwrite64(fd, buf, count, offset);
}
