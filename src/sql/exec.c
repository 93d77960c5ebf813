/* exec.c -- running a user statement: binding JSON parameters, stepping,
 * and writing the result object as JSON text straight into a buffer (no
 * jansson tree per row: on the point-read path that would cost more than
 * the query).  Also the mapping of SQLite result codes to MR_E* codes.
 *
 * Depends on SQLite, jansson and src/common.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/util.h"
#include "store_int.h"

/* Binding ------------------------------------------------------------------ */

/* <where> is "parameter 3" or "parameter :x" */
static int bind_value(sqlite3_stmt *st, int i, json_t *v, size_t idx, const char *where, char *err)
{
    int rc;

    switch (json_typeof(v)) {
    case JSON_NULL:
        rc = sqlite3_bind_null(st, i);
        break;
    case JSON_TRUE:
        rc = sqlite3_bind_int(st, i, 1);
        break;
    case JSON_FALSE:
        rc = sqlite3_bind_int(st, i, 0);
        break;
    case JSON_INTEGER:
        rc = sqlite3_bind_int64(st, i, (sqlite3_int64)json_integer_value(v));
        break;
    case JSON_REAL:
        rc = sqlite3_bind_double(st, i, json_real_value(v));
        break;
    case JSON_STRING:
        /* Static: the JSON outlives the statement's use (release unbinds). */
        rc = sqlite3_bind_text64(st, i, json_string_value(v), json_string_length(v), SQLITE_STATIC,
                                 SQLITE_UTF8);
        break;
    case JSON_ARRAY:
        return mr_seterr(err, MR_EINVAL, "statement %zu, %s: arrays are not a SQL value", idx,
                         where);
    case JSON_OBJECT: {
        json_t *b64 = json_object_get(v, "base64");
        unsigned char *blob;
        size_t n;

        if (json_object_size(v) != 1 || !json_is_string(b64))
            return mr_seterr(err, MR_EINVAL,
                             "statement %zu, %s: objects are not a SQL value "
                             "(a blob is {\"base64\": \"...\"})", idx, where);
        if (mr_base64_decode(json_string_value(b64), json_string_length(b64), &blob, &n) != 0)
            return mr_seterr(err, MR_EINVAL, "statement %zu, %s: invalid base64", idx, where);
        /* SQLite frees <blob> even when the bind fails. */
        rc = sqlite3_bind_blob64(st, i, blob, n, mr_free);
        break;
    }
    default:
        return mr_seterr(err, MR_EINVAL, "statement %zu, %s: not a SQL value", idx, where);
    }
    if (rc != SQLITE_OK)
        return mr_seterr(err, MR_EINVAL, "statement %zu, %s: %s", idx, where, sqlite3_errstr(rc));
    return 0;
}

static int bind_array(sqlite3_stmt *st, size_t idx, json_t *params, int n, char *err)
{
    char where[32];

    if (json_array_size(params) != (size_t)n)
        return mr_seterr(err, MR_EINVAL, "statement %zu: expects %d parameter%s, got %zu", idx, n,
                         n == 1 ? "" : "s", json_array_size(params));
    for (int i = 1; i <= n; i++) {
        int rc;
        snprintf(where, sizeof(where), "parameter %d", i);
        rc = bind_value(st, i, json_array_get(params, (size_t)i - 1), idx, where, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int is_sigil(char ch)
{
    return ch == ':' || ch == '@' || ch == '$' || ch == '?';
}

/* Does the object key <key> name a parameter of <st>? */
static int key_is_param(sqlite3_stmt *st, const char *key)
{
    static const char sigils[] = ":@$?";
    char name[256];
    size_t n = strlen(key);

    if (n == 0 || n + 2 > sizeof(name))
        return 0;
    if (is_sigil(key[0]))
        return sqlite3_bind_parameter_index(st, key) > 0;
    memcpy(name + 1, key, n + 1);
    for (const char *sg = sigils; *sg; sg++) {
        name[0] = *sg;
        if (sqlite3_bind_parameter_index(st, name) > 0)
            return 1;
    }
    return 0;
}

static int bind_object(sqlite3_stmt *st, size_t idx, json_t *params, int n, char *err)
{
    const char *key;
    json_t *v;

    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        json_t *with, *without;
        char where[300];
        int rc;

        if (name == NULL)
            return mr_seterr(err, MR_EINVAL,
                             "statement %zu, parameter %d: positional (?): pass an array", idx, i);
        with = json_object_get(params, name);
        without = json_object_get(params, name + 1);
        if (with != NULL && without != NULL)
            return mr_seterr(err, MR_EINVAL, "statement %zu: parameter %s given twice (\"%s\" and "
                             "\"%s\")", idx, name, name, name + 1);
        v = with != NULL ? with : without;
        if (v == NULL)
            return mr_seterr(err, MR_EINVAL, "statement %zu: missing parameter %s", idx, name);
        snprintf(where, sizeof(where), "parameter %s", name);
        rc = bind_value(st, i, v, idx, where, err);
        if (rc != 0)
            return rc;
    }
    json_object_foreach(params, key, v) {
        if (!key_is_param(st, key))
            return mr_seterr(err, MR_EINVAL, "statement %zu: parameter \"%s\" is not used by the "
                             "statement", idx, key);
    }
    return 0;
}

int store__stmt_bind(struct store_cstmt *cs, size_t idx, json_t *params, char *err)
{
    int n = sqlite3_bind_parameter_count(cs->stmt);

    if (params == NULL || json_is_null(params)) {
        if (n != 0)
            return mr_seterr(err, MR_EINVAL, "statement %zu: expects %d parameter%s, got none",
                             idx, n, n == 1 ? "" : "s");
        return 0;
    }
    if (json_is_array(params))
        return bind_array(cs->stmt, idx, params, n, err);
    if (json_is_object(params))
        return bind_object(cs->stmt, idx, params, n, err);
    return mr_seterr(err, MR_EINVAL, "statement %zu: params must be an array or an object", idx);
}

/* Result JSON -------------------------------------------------------------- */

void store__json_i64(struct mr_buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    /* Negate in unsigned arithmetic: -INT64_MIN overflows int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    mr_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Length of the valid UTF-8 sequence at <p>, or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void store__json_text(struct mr_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    struct mr_buf fixed;

    while (p < end) {
        size_t k = *p < 0x80 ? 1 : utf8_seq(p, end);
        if (k == 0)
            break;
        p += k;
    }
    if (p == end) {
        mr_json_str(b, s, n);
        return;
    }
    /* Rare: rebuild with U+FFFD for each invalid byte. */
    mr_buf_init(&fixed);
    mr_buf_append(&fixed, s, (size_t)((const char *)p - s));
    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (k == 0) {
            mr_buf_append(&fixed, "\xef\xbf\xbd", 3);
            p++;
        } else {
            mr_buf_append(&fixed, p, k);
            p += k;
        }
    }
    mr_json_str(b, fixed.data, fixed.len);
    mr_buf_close(&fixed);
}

static void put_value(struct mr_buf *b, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        store__json_i64(b, sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        mr_json_double(b, sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        store__json_text(b, t ? t : "", (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, i);
        char *enc = mr_base64_encode(p ? p : "", (size_t)sqlite3_column_bytes(st, i));
        mr_buf_puts(b, "{\"base64\":\"");
        mr_buf_puts(b, enc);
        mr_buf_puts(b, "\"}");
        mr_free(enc);
        break;
    }
    default:
        mr_buf_puts(b, "null");
    }
}

int store__map_rc(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CONSTRAINT:
        return MR_ECONSTRAINT;
    case SQLITE_AUTH:
        return MR_EDENIED;
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return MR_EINVAL;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return MR_ECORRUPT;
    /* The database or the machine failed, not the SQL: the same statement
     * may succeed on another replica, so an apply must stop, not record a
     * result. */
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_BUSY:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOLFS:
    case SQLITE_INTERNAL:
    case SQLITE_MISUSE:
        return MR_EIO;
    default:
        return MR_ESQL;
    }
}

int store__is_fatal(int mr_rc)
{
    return mr_rc == MR_EIO || mr_rc == MR_ECORRUPT;
}

static int step_error(struct store_conn *c, size_t idx, int rc, char *err)
{
    /* A re-prepare during the step may have been refused. */
    if (c->obs.denied)
        return mr_seterr(err, MR_EDENIED, "statement %zu: %s", idx, c->obs.msg);
    if (c->interrupted && c->role == STORE_CONN_APPLY)
        return mr_seterr(err, MR_ESQL, "statement %zu: the transaction exceeded its budget of %d "
                         "SQLite steps", idx, STORE_MAX_TXN_STEPS);
    if (c->interrupted)
        return mr_seterr(err, MR_ETIMEDOUT, "statement %zu: the read took too long (limit "
                         "read_timeout_ms)", idx);
    if (store__is_fatal(store__map_rc(rc))) {
        char detail[STORE_IO_DETAIL_LEN];
        return mr_seterr(err, store__map_rc(rc), "statement %zu: %s (SQLite extended code %d; %s)", idx,
                         sqlite3_errmsg(c->db), sqlite3_extended_errcode(c->db),
                         store__io_detail(c, detail, sizeof(detail)));
    }
    return mr_seterr(err, store__map_rc(rc), "statement %zu: %s", idx, sqlite3_errmsg(c->db));
}

int store__stmt_run(struct store_conn *c, struct store_cstmt *cs, size_t idx, int64_t max_rows,
                    struct mr_buf *out, char *err)
{
    sqlite3_stmt *st = cs->stmt;
    int apply_write = c->role == STORE_CONN_APPLY && cs->writes;
    sqlite3_int64 total_before = 0;
    int64_t n_rows = 0, affected = 0, last_id = 0;
    int rc, ncol;

    if (apply_write) {
        /* last_insert_rowid() is refused in user SQL on this connection, so
         * we may reset it: after the step it is non-zero only if this
         * statement inserted (a row inserted with rowid 0 reports 0, which
         * is its id anyway). */
        sqlite3_set_last_insert_rowid(c->db, 0);
        total_before = sqlite3_total_changes64(c->db);
    }
    /* A re-prepare inside the step runs the authorizer again. */
    c->obs.denied = 0;
    c->obs.msg[0] = '\0';
    c->interrupted = 0;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return step_error(c, idx, rc, err);

    /* Column names after the first step: a re-prepare may change them. */
    ncol = sqlite3_column_count(st);
    mr_buf_puts(out, "{\"columns\":[");
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        if (i > 0)
            mr_buf_putc(out, ',');
        store__json_text(out, name ? name : "", name ? strlen(name) : 0);
    }
    mr_buf_puts(out, "],\"rows\":[");
    while (rc == SQLITE_ROW) {
        if (n_rows >= max_rows)
            return mr_seterr(err, MR_ETOOBIG,
                             "statement %zu returned more than %" PRId64 " rows (limit max_rows)",
                             idx, max_rows);
        mr_buf_puts(out, n_rows > 0 ? ",[" : "[");
        for (int i = 0; i < ncol; i++) {
            if (i > 0)
                mr_buf_putc(out, ',');
            put_value(out, st, i);
        }
        mr_buf_putc(out, ']');
        n_rows++;
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        return step_error(c, idx, rc, err);
    if (apply_write) {
        /* sqlite3_changes() keeps the count of the last INSERT/UPDATE/DELETE
         * across other statements (DDL); the total moves only when this
         * statement changed rows itself or through triggers. */
        if (sqlite3_total_changes64(c->db) != total_before)
            affected = sqlite3_changes64(c->db);
        last_id = sqlite3_last_insert_rowid(c->db);
    }
    mr_buf_puts(out, "],\"rows_affected\":");
    store__json_i64(out, affected);
    mr_buf_puts(out, ",\"last_insert_id\":");
    store__json_i64(out, last_id);
    mr_buf_putc(out, '}');
    return 0;
}
