/* ident.c -- which process opened a TCP connection to us, as `ss -p` finds
 * out (docs/decisions/005-wan-source-identification.md).
 *
 * The client end of an accepted connection is a socket whose local address
 * is our peer's address and whose remote address is our local address.  Its
 * line in /proc/net/tcp gives its inode; the process holding it has a
 * /proc/PID/fd/N link reading "socket:[INODE]".  Only the pids we were told
 * about are searched: that keeps the cost to a few directory scans, and needs
 * no privilege as long as they run as our user (which `meridian up`
 * guarantees: it started them).
 *
 * /proc/net/tcp (Documentation/networking/proc_net_tcp.rst): one line per
 * socket, "sl local_address rem_address st tx:rx tr:when retrnsmt uid
 * timeout inode ...", addresses as %08X:%04X of the raw IPv4 address (so
 * the hex reads back as the in-memory s_addr on this machine) and the port
 * in host order.  IPv4 only: every address of a local topology is 127.0.0.1.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wan_int.h"

/* The inode of the socket local=<l>, remote=<r>; 0 when not found. */
static unsigned long find_inode(const struct sockaddr_in *l, const struct sockaddr_in *r)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    char line[512];
    unsigned long inode = 0;

    if (f == NULL)
        return 0;
    if (fgets(line, sizeof(line), f) == NULL) { /* header */
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned int la, lp, ra, rp, st;
        unsigned long ino;
        /* sl: local rem st tx:rx tr:when retr uid timeout inode */
        if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X %*x:%*x %*x:%*x %*x %*u %*u %lu", &la, &lp,
                   &ra, &rp, &st, &ino) != 6)
            continue;
        if (la == (unsigned int)l->sin_addr.s_addr && lp == ntohs(l->sin_port) &&
            ra == (unsigned int)r->sin_addr.s_addr && rp == ntohs(r->sin_port)) {
            inode = ino;
            break;
        }
    }
    fclose(f);
    return inode;
}

static int pid_holds(int pid, const char *want)
{
    char path[64], target[64];
    DIR *d;
    struct dirent *e;
    int found = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        ssize_t n;
        if (e->d_name[0] == '.')
            continue;
        n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strcmp(target, want) == 0;
    }
    closedir(d);
    return found;
}

int wan__ident_pid(const struct sockaddr_in *peer, const struct sockaddr_in *local,
                   const int *pids, size_t n_pids)
{
    unsigned long inode = find_inode(peer, local);
    char want[48];

    if (inode == 0)
        return -1;
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    for (size_t i = 0; i < n_pids; i++)
        if (pids[i] > 0 && pid_holds(pids[i], want))
            return pids[i];
    return 0;
}
