/* Unit tests of src/common/util: mr_write_all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

/* More than a pipe holds at once (64 KiB), read by a child: the writes are
 * short and every byte must arrive once, in order. */
static void write_all_writes_every_byte_through_short_writes(void **state)
{
    static char big[300000], got[sizeof(big)];
    int fds[2];
    size_t have = 0;
    pid_t pid;

    (void)state;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + i / 251);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(mr_write_all(fds[1], big, sizeof(big)) == 0 ? 0 : 1);
    }
    close(fds[1]);
    for (;;) {
        ssize_t r = read(fds[0], got + have, sizeof(got) - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    close(fds[0]);
    assert_int_equal(have, sizeof(big));
    assert_memory_equal(got, big, sizeof(big));
}

static void write_all_reports_the_errno(void **state)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(mr_write_all(fd, "x", 1), EBADF);   /* not open for writing */
    close(fd);
    assert_int_equal(mr_write_all(fd, "", 0), 0);        /* nothing to write: no call */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_all_writes_every_byte_through_short_writes),
        cmocka_unit_test(write_all_reports_the_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
