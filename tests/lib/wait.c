/* wait.c -- bounded polling for tests (see wait.h). */
#include "wait.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t test_timeout_ms(int64_t ms)
{
    const char *s = getenv("MR_TEST_TIMEOUT_MULTIPLIER");
    char *end;
    double m;

    if (s == NULL || *s == '\0')
        return ms;
    m = strtod(s, &end);
    if (*end != '\0' || !(m > 0)) {
        fprintf(stderr, "MR_TEST_TIMEOUT_MULTIPLIER: expected a positive number, found '%s'\n", s);
        return ms;
    }
    return (int64_t)((double)ms * m);
}

int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int wait_for_named(wait_cond_cb cond, void *arg, int64_t timeout_ms, const char *what)
{
    int64_t limit = test_timeout_ms(timeout_ms);
    int64_t deadline = test_now_ms() + limit;
    int pause = 1;

    for (;;) {
        if (cond(arg))
            return 0;
        if (test_now_ms() >= deadline)
            break;
        test_sleep_ms(pause);
        if (pause < 5)
            pause++;
    }
    fprintf(stderr, "wait_for: %s not true after %lld ms\n", what, (long long)limit);
    return -1;
}
