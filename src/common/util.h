/* util.h -- small helpers shared by every module: clocks, base64, number
 * parsing.  Base64 is OpenSSL's; the wrappers only add the bounds checks and
 * the padding arithmetic that EVP_DecodeBlock leaves to its callers. */
#ifndef MR_UTIL_H
#define MR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock in milliseconds since the epoch. */
int64_t mr_now_ms(void);
/* Monotonic clock in microseconds (for durations only). */
int64_t mr_mono_us(void);
/* CPU seconds (user + system) this process has used. */
double mr_cpu_seconds(void);

/* Encode <n> bytes; returns a NUL-terminated string the caller frees. */
char *mr_base64_encode(const void *p, size_t n);
/* Decode standard base64 (with padding).  On success *out is a new buffer the
 * caller frees (NUL-terminated for convenience) and *outlen its length.
 * Returns MR_EINVAL on malformed input. */
int mr_base64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen);

/* Strict decimal parse of a whole string into int64 within [min, max]. */
int mr_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Durations such as "250ms", "2s", "24h", "1m"; a bare number is ms. */
int mr_parse_duration_ms(const char *s, int64_t *out);
/* Sizes such as "1048576", "64k", "16m". */
int mr_parse_size(const char *s, int64_t *out);

/* The value of hex digit <c>, or -1. */
int mr_hexval(char c);
/* Percent-decode <n> bytes of <s> into <out>, which has room for <n> bytes
 * (decoding never lengthens); returns the decoded length (no NUL added).
 * With <plus_is_space>, '+' is a space (HTML forms, query strings).  A '%'
 * not followed by two hex digits is kept as is: lookups should not fail on
 * a sloppy client. */
size_t mr_percent_decode(char *out, const char *s, size_t n, int plus_is_space);

/* <n> different ports on 127.0.0.1 that nobody holds now, for child
 * processes that bind them later (etcd, the wan, redis-server cannot bind
 * port 0 and report it).  They are taken at random below the kernel's
 * ephemeral range, where no outgoing connection can take one meanwhile
 * (bind(0) picks inside it, where every connect() picks too); the kernel's
 * choice when that range is too small.  Another listener may still take
 * one before the child binds it.  0, or MR_EIO naming the problem. */
int mr_pick_ports(int *ports, size_t n, char *err);
/* One such port, or -1. */
int mr_free_port(void);

/* 64 random bits from the kernel (getrandom). */
uint64_t mr_random64(void);

/* Write all <len> bytes of <p> to <fd> (retrying on EINTR and short
 * writes).  0, or the errno of the write that failed (EIO when one wrote
 * nothing). */
int mr_write_all(int fd, const void *p, size_t len);

/* MiB available to this process on the filesystem holding <path>, or -1
 * when it cannot be told.  For messages: a write that fails on a full disk
 * should say so (SQLite reports only "disk I/O error"). */
int64_t mr_disk_free_mib(const char *path);

#endif
