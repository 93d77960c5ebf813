/* daemon.h -- one of our daemons (`meridian shop`, `edge`, ...) started by a
 * test outside `meridian up`.
 *
 *     char *argv[] = {(char *)cluster_bin(), "shop", "--listen", "127.0.0.1:0", ..., NULL};
 *     struct daemon d;
 *     assert_int_equal(daemon_start(argv, "/tmp/x/shop.log", &d), 0);   // d.url: "http://..."
 *     ...
 *     assert_int_equal(daemon_stop(&d), 0);
 *
 * The daemon must print "listening URL" as its first line on stdout (every
 * Meridian daemon does); its stderr goes to the log.  Depends on libc and
 * wait.h only (tests/lib/ *.c is linked into every test binary).
 */
#ifndef MR_TEST_DAEMON_H
#define MR_TEST_DAEMON_H

struct daemon {
    int pid;          /* 0 once stopped */
    char url[64];     /* from its "listening URL" line */
    char log[256];
};

/* Fork and exec <argv> (argv[0] a path), wait (20 s, scaled) for its
 * "listening" line.  0, or -1 with the reason on stderr and nothing left
 * running. */
int daemon_start(char *const argv[], const char *log, struct daemon *d);

/* SIGTERM, wait 15 s (SIGKILL past it); 0 only when it exited with status 0
 * (a sanitizer report is not), else -1 and its log on stderr.  A stopped
 * daemon (pid 0) is a no-op. */
int daemon_stop(struct daemon *d);

#endif
