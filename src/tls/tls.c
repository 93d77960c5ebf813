/* tls.c -- the reloadable context and the per-connection engine (tls.h).
 *
 * Engine: one SSL object between two memory BIOs.  The transport writes
 * what it read from the socket into <rbio> (tls_conn_feed); OpenSSL writes
 * what must go to the socket into <wbio>, which the transport drains
 * (tls_conn_take).  Neither BIO ever blocks or touches a file descriptor, so
 * the owner of the socket keeps its own event loop, write queue and
 * backpressure (docs/decisions/018-tls-over-memory-bios.md).
 *
 * Reload: a tls_ctx holds the current SSL_CTX behind a lock.  An SSL object
 * takes a reference to the SSL_CTX it was made from, so swapping the pointer
 * leaves live connections on the old files; the old SSL_CTX goes when its
 * last connection does.
 *
 * The tls_ctx itself is reference counted too: a connection counts its
 * refusal on it, and may outlive tls_ctx_free.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/log.h"
#include "tls.h"

struct tls_ctx {
    pthread_mutex_t mu;        /* guards <ssl> */
    SSL_CTX *ssl;              /* the files as last loaded */
    char *ca_file, *cert_file, *key_file;
    int require_peer_cert;
    int skip_host_check;
    int anonymous_clients;
    int is_server;
    int refs;                  /* the owner + each connection; atomic */
    uint64_t refused;          /* atomic */
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio;          /* owned by <ssl> */
    struct tls_ctx *t;         /* a reference */
    char *peer;
    struct mr_buf held;        /* plaintext written before the handshake ended */
    char *cn;                  /* verified peer CN, or NULL */
    char alpn[32];             /* selected protocol, "" for none */
    char err[MR_ERRMSG_LEN];
    unsigned done : 1;         /* handshake finished */
    unsigned failed : 1;
    unsigned eof : 1;
};

/* ---- errors ------------------------------------------------------------- */

/* OpenSSL's reason for the last failure on this thread, then clear the
 * queue: "no such file", "key values mismatch", ... */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (r != NULL)
        snprintf(buf, len, "%s", r);
    else if (e != 0)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

static int file_err(char *err, const char *what, const char *path)
{
    char why[160];

    /* OpenSSL says "system lib" for a missing file: say what errno says. */
    if (access(path, R_OK) != 0) {
        ERR_clear_error();
        return mr_seterr(err, MR_ECONFIG, "tls %s %s: %s", what, path, strerror(errno));
    }
    ssl_reason(why, sizeof(why));
    return mr_seterr(err, MR_ECONFIG, "tls %s %s: %s", what, path, why);
}

/* ---- context ------------------------------------------------------------ */

static int ctx_build(const struct tls_ctx *t, SSL_CTX **out, char *err)
{
    SSL_CTX *s;
    int mode;

    ERR_clear_error();
    s = SSL_CTX_new(t->is_server ? TLS_server_method() : TLS_client_method());
    if (s == NULL)
        return mr_seterr(err, MR_ENOMEM, "tls: SSL_CTX_new failed");
    /* TLS 1.3 only: every peer is ours, so nothing older need be spoken. */
    if (SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) != 1) {
        SSL_CTX_free(s);
        return mr_seterr(err, MR_ECONFIG, "tls: TLS 1.3 is not available");
    }
    /* AES-128-GCM first: both ends are ours, it is a mandatory TLS 1.3
     * suite, and with AES-NI it is the cheapest per record (OpenSSL's own
     * order puts AES-256 first). */
    if (SSL_CTX_set_ciphersuites(s, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                    "TLS_CHACHA20_POLY1305_SHA256") != 1) {
        SSL_CTX_free(s);
        return mr_seterr(err, MR_ECONFIG, "tls: the TLS 1.3 cipher suites are not available");
    }
    if (t->ca_file != NULL && SSL_CTX_load_verify_locations(s, t->ca_file, NULL) != 1)
        goto err_ca;
    if (t->is_server && !t->anonymous_clients) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca_file);

        if (names == NULL)
            goto err_ca;
        SSL_CTX_set_client_CA_list(s, names);
    }
    if (t->is_server) {
        /* No session resumption: a resumed session would skip the client
         * certificate check, and tickets cost bytes on every handshake. */
        SSL_CTX_set_num_tickets(s, 0);
        SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    }
    if (t->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(s, t->cert_file) != 1) {
            SSL_CTX_free(s);
            return file_err(err, "cert_file", t->cert_file);
        }
        if (SSL_CTX_use_PrivateKey_file(s, t->key_file, SSL_FILETYPE_PEM) != 1) {
            SSL_CTX_free(s);
            return file_err(err, "key_file", t->key_file);
        }
        if (SSL_CTX_check_private_key(s) != 1) {
            SSL_CTX_free(s);
            return file_err(err, "key_file", t->key_file);
        }
    }
    mode = SSL_VERIFY_PEER;
    if (t->is_server && t->anonymous_clients)
        mode = SSL_VERIFY_NONE;   /* a server never sends CertificateRequest then */
    else if (t->is_server && t->require_peer_cert)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(s, mode, NULL);
    /* A server's idle keep-alive connections are many (browsers behind an
     * edge): their 2 x 16 KiB record buffers go back to the allocator
     * between records.  A client's are few, pooled and busy (an edge's
     * calls to its origins, streams to peers): they keep theirs, which
     * saves an allocation and a free per record (about 10% of the engine's
     * time per request, docs/security.md). */
    if (t->is_server)
        SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    /* Send our chain as the file has it: peers hold the CA already, and
     * OpenSSL would otherwise append it from the trust store. */
    SSL_CTX_set_mode(s, SSL_MODE_NO_AUTO_CHAIN);
    *out = s;
    return 0;

err_ca:
    SSL_CTX_free(s);
    return file_err(err, "ca_file", t->ca_file);
}

int tls_ctx_new(const struct tls_opts *o, int is_server, struct tls_ctx **out, char *err)
{
    struct tls_ctx *t;
    int rc;

    if (o == NULL || out == NULL)
        return mr_seterr(err, MR_EINVAL, "tls: bad arguments");
    if ((o->ca_file == NULL || o->ca_file[0] == '\0') && !(is_server && o->anonymous_clients))
        return mr_seterr(err, MR_EINVAL, "tls: ca_file is required");
    if (is_server && o->anonymous_clients && o->require_peer_cert)
        return mr_seterr(err, MR_EINVAL,
                         "tls: anonymous_clients and require_peer_cert exclude each other");
    if ((o->cert_file == NULL) != (o->key_file == NULL))
        return mr_seterr(err, MR_EINVAL, "tls: cert_file and key_file go together");
    if (is_server && o->cert_file == NULL)
        return mr_seterr(err, MR_EINVAL, "tls: a server needs cert_file and key_file");
    t = mr_calloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->ca_file = o->ca_file != NULL && o->ca_file[0] != '\0' ? mr_strdup(o->ca_file) : NULL;
    t->cert_file = o->cert_file ? mr_strdup(o->cert_file) : NULL;
    t->key_file = o->key_file ? mr_strdup(o->key_file) : NULL;
    t->require_peer_cert = o->require_peer_cert;
    t->skip_host_check = o->skip_host_check;
    t->anonymous_clients = is_server && o->anonymous_clients;
    t->is_server = is_server;
    t->refs = 1;
    rc = ctx_build(t, &t->ssl, err);
    if (rc != 0) {
        tls_ctx_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tls_ctx_reload_all(struct tls_ctx *const *ts, size_t n, char *err)
{
    SSL_CTX *built[TLS_RELOAD_MAX], *old;
    size_t i, k = 0;
    int rc = 0;

    if (n > TLS_RELOAD_MAX)
        return mr_seterr(err, MR_EINVAL, "tls: at most %d contexts reload together", TLS_RELOAD_MAX);
    /* Build every context before swapping any: a process never serves with
     * the new certificate while it calls out with the old one. */
    for (i = 0; i < n && rc == 0; i++)
        if (ts[i] != NULL && (rc = ctx_build(ts[i], &built[i], err)) == 0)
            k = i + 1;
    if (rc != 0) {
        for (i = 0; i < k; i++)
            if (ts[i] != NULL)
                SSL_CTX_free(built[i]);
        return rc;
    }
    for (i = 0; i < n; i++) {
        if (ts[i] == NULL)
            continue;
        pthread_mutex_lock(&ts[i]->mu);
        old = ts[i]->ssl;
        ts[i]->ssl = built[i];
        pthread_mutex_unlock(&ts[i]->mu);
        /* Connections made from <old> hold references: it lives on with them. */
        SSL_CTX_free(old);
        mr_log(MR_LOG_INFO, "tls", "reloaded %s", ts[i]->cert_file != NULL ? ts[i]->cert_file : ts[i]->ca_file);
    }
    return 0;
}

int tls_ctx_reload(struct tls_ctx *t, char *err)
{
    return tls_ctx_reload_all(&t, 1, err);
}

static void ctx_unref(struct tls_ctx *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    SSL_CTX_free(t->ssl);
    pthread_mutex_destroy(&t->mu);
    mr_free(t->ca_file);
    mr_free(t->cert_file);
    mr_free(t->key_file);
    mr_free(t);
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (t != NULL)
        ctx_unref(t);
}

uint64_t tls_ctx_refused(const struct tls_ctx *t)
{
    return __atomic_load_n(&t->refused, __ATOMIC_RELAXED);
}

int tls_ctx_is_server(const struct tls_ctx *t)
{
    return t->is_server;
}

/* ---- connections -------------------------------------------------------- */

static int is_ip_literal(const char *host)
{
    unsigned char b[16];

    return inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1;
}

int tls_conn_new(struct tls_ctx *t, const char *peer, const char *host, const char *alpn,
                 struct tls_conn **out, char *err)
{
    struct tls_conn *c;
    SSL *ssl;

    ERR_clear_error();
    pthread_mutex_lock(&t->mu);
    ssl = SSL_new(t->ssl);
    pthread_mutex_unlock(&t->mu);
    if (ssl == NULL)
        return mr_seterr(err, MR_ENOMEM, "tls: SSL_new failed");
    c = mr_calloc(1, sizeof(*c));
    c->ssl = ssl;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(ssl);
        mr_free(c);
        return mr_seterr(err, MR_ENOMEM, "tls: BIO_new failed");
    }
    /* An empty read BIO means "more later", not end of stream. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(ssl, c->rbio, c->wbio);
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
    c->t = t;
    c->peer = mr_strdup(peer != NULL ? peer : "?");
    *out = c;
    if (t->is_server) {
        SSL_set_accept_state(ssl);
        return 0;
    }
    SSL_set_connect_state(ssl);
    if (host != NULL && host[0] != '\0') {
        if (is_ip_literal(host)) {
            if (!t->skip_host_check)
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        } else {
            /* RFC 6066 3: SNI carries names only, never addresses. */
            SSL_set_tlsext_host_name(ssl, host);
            if (!t->skip_host_check)
                SSL_set1_host(ssl, host);
        }
    }
    if (alpn != NULL) {
        unsigned char wire[256];
        size_t n = strlen(alpn);

        if (n == 0 || n > 255) {
            tls_conn_free(c);
            *out = NULL;
            return mr_seterr(err, MR_EINVAL, "tls: bad ALPN protocol \"%s\"", alpn);
        }
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, alpn, n);
        SSL_set_alpn_protos(ssl, wire, (unsigned int)(n + 1));
    }
    /* The ClientHello, into <wbio>: the caller sends it. */
    SSL_do_handshake(ssl);
    ERR_clear_error();
    return 0;
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl);   /* frees both BIOs */
    ctx_unref(c->t);
    mr_buf_close(&c->held);
    mr_free(c->peer);
    mr_free(c->cn);
    mr_free(c);
}

int tls_conn_feed(struct tls_conn *c, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > INT32_MAX || BIO_write(c->rbio, p, (int)n) != (int)n)
        return MR_ENOMEM;
    return 0;
}

/* The connection is dead: say why, once. */
static int conn_fail(struct tls_conn *c, int in_handshake)
{
    long v = SSL_get_verify_result(c->ssl);
    char why[160];

    if (c->failed)
        return MR_EPROTO;
    c->failed = 1;
    /* A certificate problem is the interesting reason; OpenSSL's own is then
     * just "certificate verify failed". */
    if (v != X509_V_OK)
        snprintf(why, sizeof(why), "%s", X509_verify_cert_error_string(v));
    else
        ssl_reason(why, sizeof(why));
    ERR_clear_error();
    snprintf(c->err, sizeof(c->err), "%s", why);
    if (in_handshake) {
        __atomic_add_fetch(&c->t->refused, 1, __ATOMIC_RELAXED);
        mr_log(MR_LOG_WARN, "tls", "handshake with %s refused: %s", c->peer, why);
    } else {
        mr_log(MR_LOG_WARN, "tls", "connection with %s failed: %s", c->peer, why);
    }
    return MR_EPROTO;
}

static void conn_handshake_done(struct tls_conn *c)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    char cn[256];

    const unsigned char *proto;
    unsigned int n;

    c->done = 1;
    SSL_get0_alpn_selected(c->ssl, &proto, &n);
    if (n > 0 && n < sizeof(c->alpn)) {
        memcpy(c->alpn, proto, n);
        c->alpn[n] = '\0';
    }
    if (peer != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                  sizeof(cn)) > 0)
        c->cn = mr_strdup(cn);
    if (c->held.len > 0) {
        SSL_write(c->ssl, c->held.data, (int)c->held.len);
        mr_buf_close(&c->held);
    }
}

/* SSL_get_error needs an empty error queue before each call.  Emptying one
 * that is empty costs a pass over its 16 slots, a quarter of the engine's
 * time for a small record: look first. */
static void err_queue_empty(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t cap)
{
    int r, e;

    if (c->failed)
        return MR_EPROTO;
    if (c->eof)
        return TLS_EOF;
    /* The caller's loop ends each feed with a read that finds nothing:
     * answer it here, without the engine, when no ciphertext is waiting and
     * no record is half read (an SSL_read per request saved). */
    if (c->done && BIO_ctrl_pending(c->rbio) == 0 && !SSL_has_pending(c->ssl))
        return TLS_AGAIN;
    err_queue_empty();
    if (!c->done) {
        r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return TLS_AGAIN;
            return conn_fail(c, 1);
        }
        conn_handshake_done(c);
    }
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    r = SSL_read(c->ssl, buf, (int)cap);
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TLS_AGAIN;
    if (e == SSL_ERROR_ZERO_RETURN) {
        c->eof = 1;
        return TLS_EOF;
    }
    return conn_fail(c, 0);
}

int tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
    const char *s = p;

    if (c->failed)
        return MR_EPROTO;
    if (n == 0)
        return 0;
    if (!c->done) {
        mr_buf_append(&c->held, p, n);
        return 0;
    }
    err_queue_empty();
    /* A memory BIO grows as needed, so SSL_write takes everything. */
    while (n > 0) {
        int chunk = n > (1 << 30) ? (1 << 30) : (int)n;
        int r = SSL_write(c->ssl, s, chunk);

        if (r <= 0)
            return conn_fail(c, 0);
        s += r;
        n -= (size_t)r;
    }
    return 0;
}

void tls_conn_close_notify(struct tls_conn *c)
{
    if (c->done && !c->failed) {
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
}

size_t tls_conn_pending(const struct tls_conn *c)
{
    return BIO_ctrl_pending(c->wbio);
}

size_t tls_conn_take(struct tls_conn *c, void *buf, size_t cap)
{
    int r;

    if (cap > INT32_MAX)
        cap = INT32_MAX;
    r = BIO_read(c->wbio, buf, (int)cap);
    return r > 0 ? (size_t)r : 0;
}

int tls_conn_handshake_done(const struct tls_conn *c)
{
    return c->done;
}

const char *tls_conn_peer_cn(const struct tls_conn *c)
{
    return c->cn;
}

const char *tls_conn_alpn(const struct tls_conn *c)
{
    return c->alpn[0] != '\0' ? c->alpn : NULL;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err;
}

int tls_config_is_set(const char *v)
{
    return v != NULL && v[0] != '\0' && strcmp(v, "none") != 0;
}

int tls_config_check(const char *const *keys, const char *const *vals, size_t n,
                     const char *together, int check_files, int *all, char *err)
{
    size_t n_set = 0;

    for (size_t i = 0; i < n; i++)
        n_set += (size_t)tls_config_is_set(vals[i]);
    *all = n_set == n;
    if (n_set == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!tls_config_is_set(vals[i]))
            return mr_seterr(err, MR_ECONFIG, "key '%s' in [tls] is missing: %s go together "
                             "(or none of them)", keys[i], together);
    for (size_t i = 0; check_files && i < n; i++)
        if (access(vals[i], R_OK) != 0)
            return mr_seterr(err, MR_ECONFIG, "key '%s' in [tls]: cannot read '%s': %s", keys[i],
                             vals[i], strerror(errno));
    return 0;
}
