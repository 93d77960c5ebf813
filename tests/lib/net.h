/* net.h -- ports for tests that start daemons outside `meridian up`.
 * Depends on libc only (tests/lib/ *.c is linked into every test binary). */
#ifndef MR_TEST_NET_H
#define MR_TEST_NET_H

/* A port on 127.0.0.1 that the kernel just handed out and nobody holds
 * (bind to port 0, read it, close).  Another process may take it before
 * the daemon binds it: tests that can should let the daemon bind port 0
 * itself.  -1 when no socket can be made. */
int net_free_port(void);

#endif
