/* tls.h -- TLS 1.3 with mutual authentication, over memory buffers.
 *
 * Three parts, each usable alone:
 *
 *   struct tls_ctx   what a process knows: its certificate and key, the CA it
 *                    trusts, server or client role.  Reloadable: new
 *                    connections take the files as they are at the last
 *                    successful tls_ctx_reload, live ones keep theirs.
 *   struct tls_conn  one connection's engine.  It never touches a socket:
 *                    the transport feeds it the ciphertext it read, takes the
 *                    ciphertext it must send, and moves plaintext in and out.
 *                    So libuv streams (src/http/io.c, src/etcd/h2.c) own their
 *                    sockets and write queues as before (docs/decisions/018).
 *   tls_cert_*       issuing a CA and leaf certificates (cert.c), for
 *                    `meridian cert`, `meridian up` and the tests.
 *
 * Errors: functions return 0 or a negative MR_E* code, with details in a
 * caller-supplied <err> buffer of MR_ERRMSG_LEN bytes (may be NULL).
 *
 * Threads: a tls_ctx may be shared by threads (creating a connection and
 * reloading take a lock); a tls_conn belongs to one thread.
 *
 * Peer verification: both sides present a certificate and verify the
 * peer's chain against ca_file (a server with require_peer_cert == 0 accepts
 * clients without one, but still refuses a bad one; with anonymous_clients
 * it does not ask for one).  A client also checks
 * that the server's certificate names the host it dialled (a DNS or IP SAN),
 * unless tls_opts.skip_host_check is set.
 */
#ifndef MR_TLS_H
#define MR_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ======================================================================
 * Context
 * ====================================================================== */

struct tls_opts {
    const char *ca_file;      /* PEM: the CA(s) a peer's chain must lead to */
    const char *cert_file;    /* PEM: our certificate (then its chain) */
    const char *key_file;     /* PEM: our private key */
    int require_peer_cert;    /* server: refuse clients without a certificate */
    int skip_host_check;      /* client: do not match the server's name (addition) */
    int anonymous_clients;    /* server: do not ask clients for a certificate at all:
                                 a public endpoint such as the edge's (addition).
                                 ca_file may then be NULL */
};

struct tls_ctx;

/* Read the files and make a context for one role (is_server 1: accept,
 * 0: connect).  TLS 1.3 only.  The paths are copied.  On success *out is
 * freed with tls_ctx_free; on failure <err> names the file and problem.
 * A client without cert_file/key_file (both NULL) connects without a
 * certificate. */
int tls_ctx_new(const struct tls_opts *o, int is_server, struct tls_ctx **out, char *err)
    __attribute__((warn_unused_result));

/* Re-read the files.  New connections use the new ones, live connections
 * keep theirs.  On error nothing changes and <err> names the file and the
 * problem (e.g. the key does not match the certificate). */
int tls_ctx_reload(struct tls_ctx *t, char *err) __attribute__((warn_unused_result));

/* tls_ctx_reload of <n> contexts (at most TLS_RELOAD_MAX; NULL entries are
 * skipped) as one step: every one is rebuilt from its files first, and the
 * new ones replace the old only when all of them could be built. */
#define TLS_RELOAD_MAX 4
int tls_ctx_reload_all(struct tls_ctx *const *ts, size_t n, char *err) __attribute__((warn_unused_result));

/* Free; connections made from <t> stay valid (they hold their own
 * reference).  NULL is allowed. */
void tls_ctx_free(struct tls_ctx *t);

/* Handshakes that failed on our side: a peer without a certificate, with an
 * expired one or one from another CA, or one that did not speak TLS.  Each
 * is also logged (WARN, module "tls") with the peer and OpenSSL's reason. */
uint64_t tls_ctx_refused(const struct tls_ctx *t);

/* The [tls] keys of a daemon's config that go together: <keys> named
 * <together> in messages ("ca_file, cert_file and key_file"), their <vals>
 * (NULL, "" and "none" mean unset).  0 when none is set (*all = 0) or every
 * one is set (*all = 1) and, with <check_files>, its file readable now (so
 * that a typo shows at --check-config rather than as refused handshakes
 * later); else MR_ECONFIG naming the missing key or the unreadable file. */
int tls_config_check(const char *const *keys, const char *const *vals, size_t n,
                     const char *together, int check_files, int *all, char *err);
/* A config value that names a file: not NULL, "" or "none". */
int tls_config_is_set(const char *v);

int tls_ctx_is_server(const struct tls_ctx *t);

/* ======================================================================
 * Connection engine
 * ====================================================================== */

struct tls_conn;

/* Results of tls_conn_read beyond byte counts. */
#define TLS_AGAIN 0         /* no plaintext now: feed more ciphertext */
#define TLS_EOF (-100)      /* the peer sent close_notify */
/* other negative values: MR_EPROTO (handshake or record failure) */

/* A connection in <t>'s role.  <peer> names the other end in logs
 * ("10.0.0.7:51200"); copied.  A client passes the <host> it dialled (name
 * or IP literal: used for SNI and the name check; may be NULL for no check),
 * and <alpn> a protocol to offer ("h2") or NULL.  A client produces its
 * first flight at once: send what tls_conn_take gives.  Free with
 * tls_conn_free. */
int tls_conn_new(struct tls_ctx *t, const char *peer, const char *host, const char *alpn,
                 struct tls_conn **out, char *err) __attribute__((warn_unused_result));
void tls_conn_free(struct tls_conn *c);

/* Ciphertext read from the socket.  Copied.  Returns 0 (or MR_ENOMEM). */
int tls_conn_feed(struct tls_conn *c, const void *p, size_t n);

/* Advance the handshake and decrypt: up to <cap> bytes of plaintext into
 * <buf>.  Returns the count (> 0), TLS_AGAIN, TLS_EOF, or MR_EPROTO once
 * the connection failed (the failure is logged, and counted when it
 * happened during the handshake; tls_conn_error says why).  Call until it
 * returns <= 0 after each feed; then send what tls_conn_take has (the
 * handshake, tickets and alerts produce ciphertext too). */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t cap);

/* Encrypt <n> bytes (copied).  Before the handshake is done they are held
 * and encrypted once it is.  Returns 0 or MR_EPROTO after a failure. */
int tls_conn_write(struct tls_conn *c, const void *p, size_t n);

/* Queue close_notify (send it with tls_conn_take). */
void tls_conn_close_notify(struct tls_conn *c);

/* Ciphertext waiting to be sent: its length, and taking it.
 * tls_conn_take moves up to <cap> bytes into <buf> and returns the count. */
size_t tls_conn_pending(const struct tls_conn *c);
size_t tls_conn_take(struct tls_conn *c, void *buf, size_t cap);

int tls_conn_handshake_done(const struct tls_conn *c);
/* The verified peer certificate's subject CN; NULL without one (or before
 * the handshake).  Lives as long as <c>. */
const char *tls_conn_peer_cn(const struct tls_conn *c);
/* The protocol ALPN selected ("h2"), or NULL. */
const char *tls_conn_alpn(const struct tls_conn *c);
/* Why the connection failed ("" while it has not). */
const char *tls_conn_error(const struct tls_conn *c);

/* ======================================================================
 * Issuing certificates (cert.c)
 * ====================================================================== */

/* Default validity of issued certificates. */
#define TLS_CERT_CA_DAYS 3650
#define TLS_CERT_LEAF_DAYS 365

/* Create <dir>/ca.crt and <dir>/ca.key (0600): an EC P-256 key and a
 * self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign) with
 * subject CN <cluster> ("meridian-ca" when NULL), valid <days> days.
 * <dir> is created (0700) if missing; existing files are refused (MR_EEXIST). */
int tls_cert_make_ca(const char *dir, const char *cluster, int days, char *err)
    __attribute__((warn_unused_result));

/* Issue <out_dir>/<name>.crt and <name>.key (0600), signed by the CA in
 * <ca_dir> (ca.crt, ca.key): subject CN <name>, SANs from <hosts> (comma
 * separated DNS names and IP addresses, e.g. "127.0.0.1,localhost"; NULL or
 * "" for none), extendedKeyUsage serverAuth+clientAuth.  Valid from
 * now+<from_s> to now+<to_s> seconds (both may be negative: tests make
 * expired certificates that way).  Existing files are replaced (that is a
 * rotation); the key is written first under a temporary name and renamed. */
int tls_cert_issue(const char *ca_dir, const char *name, const char *hosts, long from_s,
                   long to_s, const char *out_dir, char *err) __attribute__((warn_unused_result));

#endif
