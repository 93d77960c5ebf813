/* wait.h -- bounded waiting for integration tests (Redis's wait_for_condition).
 *
 * Tests never sleep for a fixed time before asserting: they poll a condition
 * with wait_for until it holds or a deadline passes.  Every timeout given to
 * these helpers is multiplied by MR_TEST_TIMEOUT_MULTIPLIER (a positive
 * number, default 1), as libuv's UV_TEST_TIMEOUT_MULTIPLIER, so slow machines
 * and sanitizer builds scale every bound at once.
 *
 * Depends on libc only: every tests/lib .c file is linked into every test binary.
 */
#ifndef MR_TEST_WAIT_H
#define MR_TEST_WAIT_H

#include <stdint.h>

/* <ms> scaled by MR_TEST_TIMEOUT_MULTIPLIER. */
int64_t test_timeout_ms(int64_t ms);

/* Monotonic milliseconds. */
int64_t test_now_ms(void);

/* Sleep <ms> milliseconds (restarted on EINTR).  For pacing only: never
 * to wait for a condition. */
void test_sleep_ms(int ms);

/* A condition: nonzero when it holds.  Called repeatedly; keep it cheap. */
typedef int (*wait_cond_cb)(void *arg);

/* Poll <cond>(<arg>) until it returns nonzero (then return 0) or until
 * test_timeout_ms(<timeout_ms>) has passed (then return -1 and print
 * "wait_for: <what> not true after N ms" to stderr).  Sleeps 1 ms between the
 * first polls, growing to at most 5 ms. */
int wait_for_named(wait_cond_cb cond, void *arg, int64_t timeout_ms, const char *what);
#define wait_for(cond, arg, timeout_ms) wait_for_named((cond), (arg), (timeout_ms), #cond)

#endif
