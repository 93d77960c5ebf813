/* digest.c -- store_digest: SHA-256 over the user-visible contents, to
 * compare replicas.
 *
 * What is hashed, in this order, read in one snapshot of the read
 * connection:
 *
 *   for each sqlite_schema row, by (name, type), except _meridian_*:
 *       'S' type name tbl_name sql
 *   for each ordinary table among them, by name:
 *       'T' name
 *       for each row, in rowid order (rowid tables; the rowid first) or
 *       primary key order (WITHOUT ROWID):   'R' value...
 *
 * and each value as
 *
 *   offset size
 *   0      1     type: 'i' integer, 'f' real, 't' text, 'b' blob, 'n' null
 *   1      8     integer: big-endian two's complement; real: big-endian
 *                IEEE 754 bits; text/blob: big-endian byte length
 *   9      len   text/blob bytes
 *
 * so that 1, 1.0, '1' and x'31' all differ.
 *
 * The store's own tables are excluded: _meridian_meta and _meridian_batches
 * are log bookkeeping, and _meridian_idem holds answers (results JSON, whose
 * formatting may change between versions) rather than data.  Its contents
 * are deterministic all the same (pruning depends only on the entries).
 * Virtual tables are not scanned; their shadow tables are ordinary tables
 * and are.
 */
#include <openssl/evp.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/buf.h"
#include "store_int.h"

static void put_u64(EVP_MD_CTX *md, unsigned char tag, uint64_t v)
{
    unsigned char b[9];

    b[0] = tag;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(v >> (56 - 8 * i));
    EVP_DigestUpdate(md, b, sizeof(b));
}

static void put_value(EVP_MD_CTX *md, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        put_u64(md, 'i', (uint64_t)sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        put_u64(md, 'f', bits);
        break;
    }
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_column_text(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        put_u64(md, 't', n);
        if (n > 0)
            EVP_DigestUpdate(md, p, n);
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        put_u64(md, 'b', n);
        if (n > 0)
            EVP_DigestUpdate(md, p, n);
        break;
    }
    default:
        put_u64(md, 'n', 0);
    }
}

static void put_tag(EVP_MD_CTX *md, char tag)
{
    EVP_DigestUpdate(md, &tag, 1);
}

static void quote_ident(struct mr_buf *b, const char *name)
{
    mr_buf_putc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            mr_buf_putc(b, '"');
        mr_buf_putc(b, *p);
    }
    mr_buf_putc(b, '"');
}

static int db_error(struct store *s, const char *what, char *err)
{
    int mrc = store__map_rc(sqlite3_errcode(s->rc.db)) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
    return mr_seterr(err, mrc, "digest: %s: %s", what, sqlite3_errmsg(s->rc.db));
}

/* Build the SELECT that lists <table>'s rows in a defined order. */
static int table_query(struct store *s, const char *table, struct mr_buf *q, char *err)
{
    static const char *const aliases[] = {"rowid", "_rowid_", "oid"};
    sqlite3_stmt *st = NULL;
    int without_rowid = 0, shadowed[3] = {0, 0, 0};
    int n_pk = 0, rc, src;

    rc = store__iprepare(&s->rc, "SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?1",
                         &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    if ((src = store__istep(&s->rc, st)) == SQLITE_ROW)
        without_rowid = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return db_error(s, "table list", err);

    mr_buf_puts(q, "SELECT ");
    if (without_rowid) {
        struct mr_buf order;

        mr_buf_init(&order);
        rc = store__iprepare(&s->rc, "SELECT name FROM pragma_table_info(?1) WHERE pk>0 ORDER BY pk",
                             &st, err);
        if (rc != 0) {
            mr_buf_close(&order);
            return rc;
        }
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        while ((src = store__istep(&s->rc, st)) == SQLITE_ROW) {
            if (n_pk++ > 0)
                mr_buf_putc(&order, ',');
            quote_ident(&order, (const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
        if (src != SQLITE_DONE) {
            mr_buf_close(&order);
            return db_error(s, "primary key", err);
        }
        mr_buf_puts(q, "* FROM ");
        quote_ident(q, table);
        mr_buf_puts(q, " ORDER BY ");
        mr_buf_append(q, order.data, order.len);
        mr_buf_close(&order);
        return 0;
    }

    /* A column may be named rowid; use an alias no column shadows. */
    rc = store__iprepare(&s->rc, "SELECT name FROM pragma_table_xinfo(?1)", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    while ((src = store__istep(&s->rc, st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 3 && name; i++)
            if (sqlite3_stricmp(name, aliases[i]) == 0)
                shadowed[i] = 1;
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return db_error(s, "columns", err);
    for (int i = 0; i < 3; i++) {
        if (!shadowed[i]) {
            mr_buf_printf(q, "%s, * FROM ", aliases[i]);
            quote_ident(q, table);
            mr_buf_printf(q, " ORDER BY %s", aliases[i]);
            return 0;
        }
    }
    return mr_seterr(err, MR_EINVAL, "digest: table %s shadows every rowid alias", table);
}

static int hash_table(struct store *s, EVP_MD_CTX *md, const char *table, char *err)
{
    struct mr_buf q;
    sqlite3_stmt *st = NULL;
    int rc, src, ncol;

    mr_buf_init(&q);
    rc = table_query(s, table, &q, err);
    if (rc == 0)
        rc = store__iprepare(&s->rc, q.data, &st, err);
    mr_buf_close(&q);
    if (rc != 0)
        return rc;
    put_tag(md, 'T');
    put_u64(md, 't', strlen(table));
    EVP_DigestUpdate(md, table, strlen(table));
    ncol = sqlite3_column_count(st);
    while ((src = store__istep(&s->rc, st)) == SQLITE_ROW) {
        put_tag(md, 'R');
        for (int i = 0; i < ncol; i++)
            put_value(md, st, i);
    }
    if (src != SQLITE_DONE)
        rc = db_error(s, table, err);
    sqlite3_finalize(st);
    return rc;
}

int store_digest(struct store *s, char out[65], char *err)
{
    static const char hex[] = "0123456789abcdef";
    EVP_MD_CTX *md = NULL;
    sqlite3_stmt *st = NULL;
    char **tables = NULL;
    size_t n_tables = 0, cap = 0;
    unsigned char h[32];
    unsigned int hlen = 0;
    int rc, src;

    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return mr_seterr(err, MR_EIO, "digest: cannot initialise SHA-256");
    }
    /* One snapshot for the schema and every table. */
    rc = store__iexec(&s->rc, s->is.r_begin, "digest: BEGIN", err);
    if (rc != 0)
        goto err_after_md;
    rc = store__iprepare(&s->rc,
                         "SELECT type, name, tbl_name, sql FROM sqlite_schema"
                         " WHERE name NOT LIKE '\\_meridian\\_%' ESCAPE '\\'"
                         " ORDER BY name, type",
                         &st, err);
    if (rc != 0)
        goto err_after_begin;
    while ((src = store__istep(&s->rc, st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 3);

        put_tag(md, 'S');
        for (int i = 0; i < 4; i++)
            put_value(md, st, i);
        if (type != NULL && strcmp(type, "table") == 0 &&
            !(sql != NULL && sqlite3_strnicmp(sql, "CREATE VIRTUAL", 14) == 0)) {
            if (n_tables == cap) {
                cap = cap ? 2 * cap : 16;
                tables = mr_realloc(tables, cap * sizeof(*tables));
            }
            tables[n_tables++] = mr_strdup((const char *)sqlite3_column_text(st, 1));
        }
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE) {
        rc = db_error(s, "schema", err);
        goto err_after_tables;
    }
    for (size_t i = 0; i < n_tables; i++) {
        rc = hash_table(s, md, tables[i], err);
        if (rc != 0)
            goto err_after_tables;
    }
    if (EVP_DigestFinal_ex(md, h, &hlen) != 1 || hlen != sizeof(h)) {
        rc = mr_seterr(err, MR_EIO, "digest: SHA-256 failed");
        goto err_after_tables;
    }
    for (unsigned int i = 0; i < hlen; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[64] = '\0';
    rc = 0;

err_after_tables:
    for (size_t i = 0; i < n_tables; i++)
        mr_free(tables[i]);
    mr_free(tables);
err_after_begin:
    /* A read transaction: ending it either way changes nothing. */
    {
        int crc = store__iexec(&s->rc, s->is.r_commit, "digest: COMMIT", NULL);
        (void)crc;
    }
err_after_md:
    EVP_MD_CTX_free(md);
    return rc;
}
