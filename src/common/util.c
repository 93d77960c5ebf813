/* util.c -- clocks, base64, strict number parsing. */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"

int64_t mr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mr_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double mr_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *mr_base64_encode(const void *p, size_t n)
{
    char *out = mr_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int mr_base64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    size_t pad = 0;
    unsigned char *buf;
    int m;

    if (n % 4 != 0 || n > INT_MAX)
        return MR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            if (i < n - 2)
                return MR_EINVAL;
            pad++;
        } else if (!is_b64(c) || pad) {
            return MR_EINVAL;
        }
    }
    buf = mr_malloc(n / 4 * 3 + 1);
    m = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (m < 0 || (size_t)m < pad) {
        mr_free(buf);
        return MR_EINVAL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    *outlen = (size_t)m - pad;
    buf[*outlen] = '\0';
    *out = buf;
    return 0;
}

int mr_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return MR_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return MR_EINVAL;
    *out = v;
    return 0;
}

static int parse_suffixed(const char *s, const char *const *sfx, const int64_t *mult, int nsfx,
                          int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return MR_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return MR_EINVAL;
    for (int i = 0; i < nsfx; i++) {
        if (strcmp(end, sfx[i]) == 0) {
            if (v > INT64_MAX / mult[i])
                return MR_EINVAL;
            *out = v * mult[i];
            return 0;
        }
    }
    return MR_EINVAL;
}

int mr_parse_duration_ms(const char *s, int64_t *out)
{
    static const char *const sfx[] = {"", "ms", "s", "m", "h"};
    static const int64_t mult[] = {1, 1, 1000, 60000, 3600000};
    return parse_suffixed(s, sfx, mult, 5, out);
}

int mr_parse_size(const char *s, int64_t *out)
{
    static const char *const sfx[] = {"", "k", "m", "g"};
    static const int64_t mult[] = {1, 1024, 1024 * 1024, 1024 * 1024 * 1024};
    return parse_suffixed(s, sfx, mult, 4, out);
}

uint64_t mr_random64(void)
{
    uint64_t v = 0;
    while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        ;
    return v;
}

int mr_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t mr_percent_decode(char *out, const char *s, size_t n, int plus_is_space)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] == '+' && plus_is_space) {
            out[k++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = mr_hexval(s[i + 1])) >= 0 &&
                   (lo = mr_hexval(s[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

/* The first port of the kernel's ephemeral range (where bind(0) and every
 * outgoing connect() take theirs); 32768 when it cannot be read. */
static int ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    int lo = 32768, hi;

    if (f != NULL) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2 || lo < 1 || lo > 65535)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* Bind a socket to 127.0.0.1:<port> (0: the kernel's choice); the fd, or -1. */
static int bind_loopback(int port, int *got)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *got = ntohs(sa.sin_port);
    return fd;
}

int mr_pick_ports(int *ports, size_t n, char *err)
{
    int lo = ephemeral_low(), base = lo - 12000 > 1024 ? lo - 12000 : 1024, span = lo - base;
    int *fds = mr_calloc(n ? n : 1, sizeof(*fds));
    size_t i;
    int rc = 0;

    for (i = 0; i < n; i++) {
        fds[i] = -1;
        /* Random tries below the ephemeral range; the kernel's choice
         * when that range is too small or every try is taken. */
        for (int tries = 0; span >= 256 && tries < 64 && fds[i] == -1; tries++) {
            int port = base + (int)(mr_random64() % (uint64_t)span);
            fds[i] = bind_loopback(port, &ports[i]); /* fails when held, by us or others */
        }
        if (fds[i] == -1 && (fds[i] = bind_loopback(0, &ports[i])) == -1) {
            rc = mr_seterr(err, MR_EIO, "pick a port: bind 127.0.0.1: %s", strerror(errno));
            break;
        }
    }
    /* Every socket was held until all were bound: the ports differ. */
    for (size_t k = 0; k < i; k++)
        close(fds[k]);
    mr_free(fds);
    return rc;
}

int mr_free_port(void)
{
    int port;

    return mr_pick_ports(&port, 1, NULL) == 0 ? port : -1;
}

int mr_write_all(int fd, const void *p, size_t len)
{
    const char *c = p;

    while (len > 0) {
        ssize_t w = write(fd, c, len);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            return w == 0 ? EIO : errno;
        c += w;
        len -= (size_t)w;
    }
    return 0;
}

int64_t mr_disk_free_mib(const char *path)
{
    struct statvfs st;

    if (statvfs(path, &st) != 0)
        return -1;
    return (int64_t)((uint64_t)st.f_bavail * st.f_frsize / (1024 * 1024));
}
