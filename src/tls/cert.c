/* cert.c -- issuing a cluster CA and leaf certificates (tls.h, tls_cert_*).
 *
 * What a small cluster needs and nothing more: EC P-256 keys, SHA-256
 * signatures, one CA that signs leaves directly (no intermediates), and
 * leaves that serve as both server and client certificates, since every
 * Meridian process is both.  Real deployments with their own PKI bring
 * their own files; these are for `meridian cert`, `meridian up` and tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "tls.h"

#define NAME_MAX_LEN 64   /* RFC 5280 ub-common-name */

static int ossl_err(char *err, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return mr_seterr(err, MR_EIO, "%s: %s", what, r != NULL ? r : "OpenSSL error");
}

/* A certificate name doubles as a file name: letters, digits, '.', '_', '-'. */
static int check_name(const char *name, char *err)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > NAME_MAX_LEN)
        return mr_seterr(err, MR_EINVAL, "name must be 1 to %d characters", NAME_MAX_LEN);
    if (name[0] == '.' || name[0] == '-')
        return mr_seterr(err, MR_EINVAL, "name \"%s\" must not start with '.' or '-'", name);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return mr_seterr(err, MR_EINVAL,
                             "name \"%s\": only letters, digits, '.', '_' and '-' are allowed",
                             name);
    }
    return 0;
}

/* "127.0.0.1, localhost" -> "IP:127.0.0.1,DNS:localhost" in <san>. */
static int hosts_to_san(const char *hosts, struct mr_buf *san, char *err)
{
    const char *p = hosts;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        char h[256];
        unsigned char bin[16];

        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || n >= sizeof(h))
            return mr_seterr(err, MR_EINVAL, "--host: empty or over-long entry in \"%s\"", hosts);
        memcpy(h, p, n);
        h[n] = '\0';
        if (san->len > 0)
            mr_buf_putc(san, ',');
        if (inet_pton(AF_INET, h, bin) == 1 || inet_pton(AF_INET6, h, bin) == 1) {
            mr_buf_printf(san, "IP:%s", h);
        } else {
            for (size_t i = 0; i < n; i++) {
                char ch = h[i];

                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
                      (ch == '*' && i == 0)))
                    return mr_seterr(err, MR_EINVAL,
                                     "--host: \"%s\" is neither an IP address nor a DNS name", h);
            }
            mr_buf_printf(san, "DNS:%s", h);
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value, char *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

    if (ext == NULL)
        return ossl_err(err, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return 0;
}

/* A certificate for <key> named <cn>, valid now+from_s .. now+to_s, with a
 * random serial; the caller adds extensions and signs. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, long from_s, long to_s)
{
    X509 *x = X509_new();
    X509_NAME *name;
    BIGNUM *bn = BN_new();

    if (x == NULL || bn == NULL)
        goto fail;
    X509_set_version(x, 2);   /* v3 */
    /* RFC 5280 4.1.2.2: positive, at most 20 octets. */
    if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(x), from_s) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), to_s) == NULL)
        goto fail;
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"meridian",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        goto fail;
    if (X509_set_pubkey(x, key) != 1)
        goto fail;
    BN_free(bn);
    return x;

fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* Write <dir>/<name> with <mode> through a temporary file and a rename, so
 * that a reader (a reload) sees the old file or the new one, never half. */
static int write_pem(const char *dir, const char *name, mode_t mode, X509 *x, EVP_PKEY *key,
                     int excl, char *err)
{
    char *path = mr_asprintf("%s/%s", dir, name);
    char *tmp = mr_asprintf("%s/.%s.tmp", dir, name);
    FILE *f = NULL;
    int fd, ok, rc = 0;

    if (excl && access(path, F_OK) == 0) {
        rc = mr_seterr(err, MR_EEXIST, "%s exists already (refusing to overwrite a CA)", path);
        goto out;
    }
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        rc = mr_seterr(err, MR_EIO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    ok = x != NULL ? PEM_write_X509(f, x)
                   : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        unlink(tmp);
        rc = mr_seterr(err, MR_EIO, "writing %s failed", path);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = mr_seterr(err, MR_EIO, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    mr_free(path);
    mr_free(tmp);
    return rc;
}

static int make_dir(const char *dir, char *err)
{
    struct stat st;
    char *parent, *slash;

    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno == ENOENT) {
        /* mkdir -p: the parents first. */
        parent = mr_strdup(dir);
        slash = strrchr(parent, '/');
        if (slash != NULL && slash != parent) {
            int rc;

            *slash = '\0';
            rc = make_dir(parent, err);
            mr_free(parent);
            if (rc != 0)
                return rc;
            if (mkdir(dir, 0700) == 0)
                return 0;
        } else {
            mr_free(parent);
        }
    }
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return mr_seterr(err, MR_EIO, "directory %s: %s", dir,
                     errno == EEXIST ? "not a directory" : strerror(errno));
}

int tls_cert_make_ca(const char *dir, const char *cluster, int days, char *err)
{
    const char *cn = cluster != NULL ? cluster : "meridian-ca";
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509V3_CTX v3;
    char *crt_path;
    int rc;

    if (dir == NULL || dir[0] == '\0')
        return mr_seterr(err, MR_EINVAL, "an output directory is required");
    if (days <= 0)
        return mr_seterr(err, MR_EINVAL, "days must be positive");
    rc = check_name(cn, err);
    if (rc != 0)
        return rc;
    rc = make_dir(dir, err);
    if (rc != 0)
        return rc;
    crt_path = mr_asprintf("%s/ca.crt", dir);
    rc = access(crt_path, F_OK) == 0
             ? mr_seterr(err, MR_EEXIST, "%s exists already (refusing to overwrite a CA)",
                         crt_path)
             : 0;
    mr_free(crt_path);
    if (rc != 0)
        return rc;
    ERR_clear_error();
    key = EVP_EC_gen("P-256");
    if (key == NULL)
        return ossl_err(err, "generating the CA key");
    x = cert_new(key, cn, -3600, (long)days * 86400);
    if (x == NULL) {
        rc = ossl_err(err, "making the CA certificate");
        goto out;
    }
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_subject_key_identifier, "hash", err);
    if (rc != 0)
        goto out;
    if (X509_sign(x, key, EVP_sha256()) == 0) {
        rc = ossl_err(err, "signing the CA certificate");
        goto out;
    }
    rc = write_pem(dir, "ca.key", 0600, NULL, key, 1, err);
    if (rc == 0)
        rc = write_pem(dir, "ca.crt", 0644, x, NULL, 1, err);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int load_ca(const char *ca_dir, X509 **crt, EVP_PKEY **key, char *err)
{
    char *path = mr_asprintf("%s/ca.crt", ca_dir);
    FILE *f = fopen(path, "r");
    int rc = 0;

    *crt = NULL;
    *key = NULL;
    if (f == NULL) {
        rc = mr_seterr(err, MR_ECONFIG, "%s: %s", path, strerror(errno));
        goto out;
    }
    *crt = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (*crt == NULL) {
        rc = ossl_err(err, path);
        goto out;
    }
    mr_free(path);
    path = mr_asprintf("%s/ca.key", ca_dir);
    f = fopen(path, "r");
    if (f == NULL) {
        rc = mr_seterr(err, MR_ECONFIG, "%s: %s", path, strerror(errno));
        goto out;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (*key == NULL) {
        rc = ossl_err(err, path);
        goto out;
    }
    if (X509_check_private_key(*crt, *key) != 1)
        rc = mr_seterr(err, MR_ECONFIG, "%s does not match %s/ca.crt", path, ca_dir);
out:
    if (rc != 0) {
        X509_free(*crt);
        EVP_PKEY_free(*key);
        *crt = NULL;
        *key = NULL;
    }
    mr_free(path);
    return rc;
}

int tls_cert_issue(const char *ca_dir, const char *name, const char *hosts, long from_s,
                   long to_s, const char *out_dir, char *err)
{
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509V3_CTX v3;
    struct mr_buf san;
    char *file;
    int rc;

    if (ca_dir == NULL || ca_dir[0] == '\0' || out_dir == NULL || out_dir[0] == '\0')
        return mr_seterr(err, MR_EINVAL, "a CA directory and an output directory are required");
    rc = check_name(name, err);
    if (rc != 0)
        return rc;
    if (strcmp(name, "ca") == 0)
        return mr_seterr(err, MR_EINVAL, "name \"ca\" is the CA's own");
    if (to_s <= from_s)
        return mr_seterr(err, MR_EINVAL, "validity ends before it starts");
    mr_buf_init(&san);
    rc = hosts_to_san(hosts, &san, err);
    if (rc != 0)
        goto out;
    rc = load_ca(ca_dir, &ca, &ca_key, err);
    if (rc != 0)
        goto out;
    rc = make_dir(out_dir, err);
    if (rc != 0)
        goto out;
    ERR_clear_error();
    key = EVP_EC_gen("P-256");
    if (key == NULL) {
        rc = ossl_err(err, "generating the key");
        goto out;
    }
    x = cert_new(key, name, from_s, to_s);
    if (x == NULL) {
        rc = ossl_err(err, "making the certificate");
        goto out;
    }
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
    rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_key_usage, "critical,digitalSignature", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_subject_key_identifier, "hash", err);
    if (rc == 0)
        rc = add_ext(x, &v3, NID_authority_key_identifier, "keyid:always", err);
    if (rc == 0 && san.len > 0)
        rc = add_ext(x, &v3, NID_subject_alt_name, san.data, err);
    if (rc != 0)
        goto out;
    if (X509_sign(x, ca_key, EVP_sha256()) == 0) {
        rc = ossl_err(err, "signing the certificate");
        goto out;
    }
    /* Key first: a reload between the two renames then fails on a key that
     * does not match the old certificate, and keeps the old pair. */
    file = mr_asprintf("%s.key", name);
    rc = write_pem(out_dir, file, 0600, NULL, key, 0, err);
    mr_free(file);
    if (rc == 0) {
        file = mr_asprintf("%s.crt", name);
        rc = write_pem(out_dir, file, 0644, x, NULL, 0, err);
        mr_free(file);
    }
out:
    mr_buf_close(&san);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return rc;
}
