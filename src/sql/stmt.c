/* stmt.c -- statements of user SQL: the per-connection cache, the authorizer
 * that enforces the determinism rules of store.h, and the helpers for the
 * store's internal statements.
 *
 * The authorizer runs when a statement is prepared, and again if
 * sqlite3_step re-prepares it after a schema change.  At prepare time we do
 * not know yet whether the statement writes (sqlite3_stmt_readonly needs the
 * prepared statement), so on the read connection what only writes may not
 * do is recorded and judged afterwards; the verdict is cached with the
 * statement.  On the apply connection everything is judged at once: every
 * statement there belongs to a transaction that writes.
 *
 * Running statements and result JSON are in exec.c.
 *
 * Depends on SQLite, jansson and src/common.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "store_int.h"

/* Authorizer ------------------------------------------------------------- */

/* Read-only introspection pragmas a read may use (no pragma in writes). */
static const char *const allowed_pragmas[] = {
    "table_info", "table_xinfo", "index_list", "index_info", "foreign_key_list", "table_list",
};

/* Virtual table modules a write may create: their contents depend only on
 * the rows written (dbstat, sqlite_stmt... describe the replica itself). */
static const char *const allowed_modules[] = {
    "fts3", "fts4", "fts5", "fts5vocab", "rtree", "rtree_i32",
};

struct fn_rule {
    const char *name;
    const char *why;
};

/* Functions refused in a transaction that writes: their value differs
 * between replicas. */
static const struct fn_rule nondet_fns[] = {
    {"changes", "is not deterministic across replicas: use RETURNING"},
    {"total_changes", "is not deterministic across replicas: use RETURNING"},
    {"last_insert_rowid", "is not deterministic across replicas: use RETURNING"},
    {"sqlite_version", "depends on the SQLite build, which may differ between replicas"},
    {"sqlite_source_id", "depends on the SQLite build, which may differ between replicas"},
    {"sqlite_compileoption_get", "depends on the SQLite build, which may differ between replicas"},
    {"sqlite_compileoption_used", "depends on the SQLite build, which may differ between replicas"},
    {"sqlite_offset", "depends on each replica's file layout"},
};

/* Virtual tables refused in a transaction that writes (besides pragma_*). */
static const char *const nondet_tables[] = {"dbstat", "sqlite_dbpage", "sqlite_stmt"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return 1;
    return 0;
}

static int is_internal_name(const char *name)
{
    return name != NULL && strncasecmp(name, "_meridian_", 10) == 0;
}

static int deny(struct store_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int deny(struct store_conn *c, const char *fmt, ...)
{
    va_list ap;

    /* The first refusal is the one the statement is reported for. */
    if (!c->obs.denied) {
        c->obs.denied = 1;
        va_start(ap, fmt);
        vsnprintf(c->obs.msg, sizeof(c->obs.msg), fmt, ap);
        va_end(ap);
    }
    return SQLITE_DENY;
}

/* Something only a transaction that writes may not do. */
static int soft(struct store_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int soft(struct store_conn *c, const char *fmt, ...)
{
    va_list ap;
    char msg[sizeof(c->obs.soft)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->role == STORE_CONN_APPLY)
        return deny(c, "%s", msg);
    if (c->obs.soft[0] == '\0')
        memcpy(c->obs.soft, msg, sizeof(msg));
    return SQLITE_OK;
}

static int authorize(void *ud, int action, const char *a1, const char *a2, const char *dbname,
                     const char *ctx)
{
    struct store_conn *c = ud;

    if (c->internal)
        return SQLITE_OK;
    switch (action) {
    case SQLITE_ATTACH:
        return deny(c, "ATTACH is not allowed");
    case SQLITE_DETACH:
        return deny(c, "DETACH is not allowed");
    case SQLITE_TRANSACTION:
        return deny(c, "transaction control (%s) is not allowed: a request is one transaction",
                    a1 ? a1 : "?");
    case SQLITE_SAVEPOINT:
        return deny(c, "SAVEPOINT/RELEASE is not allowed: a request is one transaction");
    case SQLITE_PRAGMA:
        if (c->role == STORE_CONN_READ &&
            in_list(a1, allowed_pragmas, sizeof(allowed_pragmas) / sizeof(allowed_pragmas[0])) &&
            (dbname == NULL || strcasecmp(dbname, "main") == 0)) {
            c->obs.pragma = 1;
            return SQLITE_OK;
        }
        return deny(c, "PRAGMA %s is not allowed", a1 ? a1 : "?");
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
        return deny(c, "TEMP objects are not allowed: they would exist on one connection only");
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        if (is_internal_name(a1))
            return deny(c, "writing internal table %s is not allowed", a1);
        return SQLITE_OK;
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TRIGGER:
        /* a1 is the index or trigger, a2 its table. */
        if (is_internal_name(a1) || is_internal_name(a2))
            return deny(c, "DDL on internal table %s is not allowed",
                        is_internal_name(a2) ? a2 : a1);
        return SQLITE_OK;
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_VIEW:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_VIEW:
        if (is_internal_name(a1))
            return deny(c, "DDL on internal table %s is not allowed", a1);
        return SQLITE_OK;
    case SQLITE_ALTER_TABLE:
        if (is_internal_name(a2))
            return deny(c, "DDL on internal table %s is not allowed", a2);
        return SQLITE_OK;
    case SQLITE_CREATE_VTABLE:
        if (is_internal_name(a1))
            return deny(c, "DDL on internal table %s is not allowed", a1);
        if (!in_list(a2, allowed_modules, sizeof(allowed_modules) / sizeof(allowed_modules[0])))
            return deny(c, "virtual table module %s is not allowed", a2 ? a2 : "?");
        return SQLITE_OK;
    case SQLITE_DROP_VTABLE:
        if (is_internal_name(a1))
            return deny(c, "DDL on internal table %s is not allowed", a1);
        return SQLITE_OK;
    case SQLITE_READ:
        /* Writes may not read the internal tables: besides keeping them
         * private, this stops a foreign key from a user table to one of them
         * (the child insert must read the parent), which could otherwise
         * make our own pruning fail on every replica forever. */
        if (is_internal_name(a1))
            return soft(c, "internal table %s cannot be read in a transaction that writes", a1);
        if (a1 != NULL && (strncasecmp(a1, "pragma_", 7) == 0 ||
                           in_list(a1, nondet_tables,
                                   sizeof(nondet_tables) / sizeof(nondet_tables[0]))))
            return soft(c, "%s describes this replica, not the data: not allowed in a "
                           "transaction that writes", a1);
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        /* a2 is the function's name as defined (lower case). */
        if (a2 != NULL && (strcasecmp(a2, "load_extension") == 0 ||
                           strcasecmp(a2, "fts3_tokenizer") == 0))
            return deny(c, "function %s() is not allowed", a2);
        for (size_t i = 0; a2 != NULL && i < sizeof(nondet_fns) / sizeof(nondet_fns[0]); i++)
            if (strcasecmp(a2, nondet_fns[i].name) == 0)
                return soft(c, "function %s() %s", nondet_fns[i].name, nondet_fns[i].why);
        return SQLITE_OK;
    default:
        (void)ctx;
        return SQLITE_OK;
    }
}

static void obs_reset(struct store_obs *o)
{
    o->denied = 0;
    o->pragma = 0;
    o->soft[0] = '\0';
    o->msg[0] = '\0';
}

/* Connection and cache ----------------------------------------------------- */

/* Runaway statements (an unbounded recursive CTE...) would otherwise hold
 * the loop thread forever.  Applying, the budget is counted in VM steps, the
 * same on every replica running the same SQLite; reading, it is time. */
static int progress(void *ud)
{
    struct store_conn *c = ud;

    if (c->internal)
        return 0;
    if (c->role == STORE_CONN_APPLY) {
        c->steps += STORE_PROGRESS_STEPS;
        if (c->steps <= STORE_MAX_TXN_STEPS)
            return 0;
    } else if (c->deadline_us == 0 || mr_mono_us() <= c->deadline_us) {
        return 0;
    }
    c->interrupted = 1;
    return 1;
}

void store__conn_init(struct store_conn *c, struct store *s, sqlite3 *db, enum store_role role,
                      size_t max_cached)
{
    size_t nb = 16;

    memset(c, 0, sizeof(*c));
    c->s = s;
    c->db = db;
    c->role = role;
    /* Bounded so that the bucket arithmetic below cannot overflow. */
    if (max_cached > 65536)
        max_cached = 65536;
    c->max_cached = max_cached;
    while (nb < 2 * max_cached)
        nb *= 2;
    c->n_buckets = nb;
    c->buckets = mr_calloc(nb, sizeof(*c->buckets));
    c->lru.next = c->lru.prev = &c->lru;
    obs_reset(&c->obs);
    sqlite3_set_authorizer(db, authorize, c);
    sqlite3_progress_handler(db, STORE_PROGRESS_STEPS, progress, c);
}

static void cstmt_free(struct store_cstmt *cs)
{
    sqlite3_finalize(cs->stmt);
    mr_free(cs->sql);
    mr_free(cs->soft);
    mr_free(cs);
}

static void lru_unlink(struct store_cstmt *cs)
{
    cs->prev->next = cs->next;
    cs->next->prev = cs->prev;
}

static void lru_push_front(struct store_conn *c, struct store_cstmt *cs)
{
    cs->next = c->lru.next;
    cs->prev = &c->lru;
    c->lru.next->prev = cs;
    c->lru.next = cs;
}

static void hash_remove(struct store_conn *c, struct store_cstmt *cs)
{
    struct store_cstmt **pp = &c->buckets[cs->hash & (c->n_buckets - 1)];

    while (*pp != cs)
        pp = &(*pp)->hnext;
    *pp = cs->hnext;
}

void store__conn_close(struct store_conn *c)
{
    struct store_cstmt *cs, *next;

    if (c->db == NULL)
        return;
    for (cs = c->lru.next; cs != &c->lru; cs = next) {
        next = cs->next;
        cstmt_free(cs);
    }
    mr_free(c->buckets);
    c->buckets = NULL;
    sqlite3_finalize(c->schema_probe);
    c->schema_probe = NULL;
    /* sqlite3_close (not _v2) so that a statement we leaked shows up as
     * SQLITE_BUSY in tests rather than keeping the file open silently. */
    sqlite3_close(c->db);
    c->db = NULL;
}

/* FNV-1a: the keys are short SQL texts, and this is on every read. */
static uint64_t hash_sql(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct store_cstmt *cache_find(struct store_conn *c, const char *sql, size_t len,
                                      uint64_t h)
{
    struct store_cstmt *cs;

    for (cs = c->buckets[h & (c->n_buckets - 1)]; cs != NULL; cs = cs->hnext)
        if (cs->hash == h && cs->len == len && memcmp(cs->sql, sql, len) == 0)
            return cs;
    return NULL;
}

static void cache_insert(struct store_conn *c, struct store_cstmt *cs)
{
    struct store_cstmt **b;

    if (c->n_cached >= c->max_cached) {
        /* Evict the least recently used.  Statements are used one at a time
         * and released before the next is acquired, so it is idle. */
        struct store_cstmt *old = c->lru.prev;
        lru_unlink(old);
        hash_remove(c, old);
        c->n_cached--;
        cstmt_free(old);
    }
    b = &c->buckets[cs->hash & (c->n_buckets - 1)];
    cs->hnext = *b;
    *b = cs;
    lru_push_front(c, cs);
    cs->cached = 1;
    c->n_cached++;
}

/* Skip whitespace, semicolons and comments; returns the first other byte. */
static const char *skip_blank(const char *p, const char *end)
{
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v' ||
            *p == ';') {
            p++;
        } else if (p + 1 < end && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n')
                p++;
        } else if (p + 1 < end && p[0] == '/' && p[1] == '*') {
            p += 2;
            while (p + 1 < end && !(p[0] == '*' && p[1] == '/'))
                p++;
            p = p + 1 < end ? p + 2 : end;
        } else {
            break;
        }
    }
    return p;
}

/* Is the first keyword of <p> <kw>? */
static int leading_keyword(const char *p, const char *end, const char *kw)
{
    size_t n = strlen(kw);

    p = skip_blank(p, end);
    if ((size_t)(end - p) < n || strncasecmp(p, kw, n) != 0)
        return 0;
    p += n;
    return p == end || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                         (*p >= '0' && *p <= '9') || *p == '_' || (unsigned char)*p >= 0x80);
}

static int contains_ci(const char *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(p + i, needle, m) == 0)
            return 1;
    return 0;
}

/* Refusals the authorizer cannot make: VACUUM has no authorizer action, and
 * ALTER TABLE ... RENAME TO shows the authorizer only the old name. */
static int precheck(struct store_conn *c, size_t idx, const char *sql, size_t len, char *err)
{
    const char *end = sql + len;

    if (leading_keyword(sql, end, "VACUUM"))
        return mr_seterr(err, MR_EDENIED, "statement %zu: VACUUM is not allowed", idx);
    if (leading_keyword(sql, end, "ALTER") && contains_ci(sql, len, "_meridian_"))
        return mr_seterr(err, MR_EDENIED,
                         "statement %zu: DDL on internal tables (_meridian_*) is not allowed", idx);
    (void)c;
    return 0;
}

/* SQLite prepares against the schema it has cached and checks the schema
 * cookie only when a statement runs.  store_check never runs one, so after
 * another connection changed the schema it would judge new statements
 * against the old one: running any statement that reads the schema first
 * makes SQLite notice and reload. */
static int sync_schema(struct store_conn *c, char *err)
{
    int rc;

    /* The apply connection made the changes: it is never behind. */
    if (c->role != STORE_CONN_READ || c->schema_gen_seen == c->s->schema_gen)
        return 0;
    if (c->schema_probe == NULL) {
        rc = store__iprepare(c, "SELECT 1 FROM sqlite_schema LIMIT 1", &c->schema_probe, err);
        if (rc != 0)
            return rc;
    }
    rc = store__iexec(c, c->schema_probe, "reload schema", err);
    if (rc != 0)
        return rc;
    c->schema_gen_seen = c->s->schema_gen;
    return 0;
}

int store__stmt_acquire(struct store_conn *c, size_t idx, const char *sql,
                        struct store_cstmt **out, char *err)
{
    struct store_cstmt *cs;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    size_t len;
    uint64_t h;
    int rc;

    if (sql == NULL)
        return mr_seterr(err, MR_EINVAL, "statement %zu: no SQL", idx);
    len = strnlen(sql, STORE_MAX_SQL_BYTES + 1);
    if (len > STORE_MAX_SQL_BYTES)
        return mr_seterr(err, MR_EINVAL, "statement %zu: SQL longer than %d bytes", idx,
                         STORE_MAX_SQL_BYTES);
    h = hash_sql(sql, len);
    if (c->max_cached > 0 && (cs = cache_find(c, sql, len, h)) != NULL) {
        if (cs->schema_gen == c->s->schema_gen) {
            lru_unlink(cs);
            lru_push_front(c, cs);
            *out = cs;
            return 0;
        }
        /* Judged under another schema: judge again. */
        lru_unlink(cs);
        hash_remove(c, cs);
        c->n_cached--;
        cstmt_free(cs);
    }

    rc = precheck(c, idx, sql, len, err);
    if (rc == 0)
        rc = sync_schema(c, err);
    if (rc != 0)
        return rc;
    obs_reset(&c->obs);
    rc = sqlite3_prepare_v3(c->db, sql, (int)len, c->max_cached > 0 ? SQLITE_PREPARE_PERSISTENT : 0,
                            &st, &tail);
    if (c->obs.denied) {
        /* Whatever SQLite reports ("not authorized"), our reason is the one
         * the client can act on. */
        sqlite3_finalize(st);
        return mr_seterr(err, MR_EDENIED, "statement %zu: %s", idx, c->obs.msg);
    }
    if (rc != SQLITE_OK) {
        int mrc = store__map_rc(rc);
        sqlite3_finalize(st);
        return mr_seterr(err, store__is_fatal(mrc) ? mrc : MR_ESQL, "statement %zu: %s", idx,
                         sqlite3_errmsg(c->db));
    }
    if (st == NULL)
        return mr_seterr(err, MR_EINVAL, "statement %zu: empty SQL", idx);
    if (tail != NULL && skip_blank(tail, sql + len) != sql + len) {
        sqlite3_finalize(st);
        return mr_seterr(err, MR_EINVAL,
                         "statement %zu: one SQL statement per text: found more after the first",
                         idx);
    }
    if (sqlite3_bind_parameter_count(st) > STORE_MAX_PARAMS) {
        sqlite3_finalize(st);
        return mr_seterr(err, MR_EINVAL, "statement %zu: more than %d parameters", idx,
                         STORE_MAX_PARAMS);
    }

    cs = mr_calloc(1, sizeof(*cs));
    cs->stmt = st;
    cs->len = len;
    cs->hash = h;
    cs->schema_gen = c->s->schema_gen;
    cs->explain = sqlite3_stmt_isexplain(st) != 0;
    /* EXPLAIN of a write reports "not read-only" but executes nothing. */
    cs->writes = !sqlite3_stmt_readonly(st) && !cs->explain;
    cs->pragma = c->obs.pragma;
    if (c->obs.soft[0] != '\0')
        cs->soft = mr_strdup(c->obs.soft);
    if (c->role == STORE_CONN_APPLY && cs->explain) {
        cstmt_free(cs);
        return mr_seterr(err, MR_EDENIED,
                         "statement %zu: EXPLAIN is not allowed in a transaction that writes", idx);
    }
    if (cs->writes && cs->soft != NULL) {
        /* Read connection (store_check): this statement writes, so what it
         * may only do in a read is refused now. */
        mr_seterr(err, MR_EDENIED, "statement %zu: %s", idx, cs->soft);
        cstmt_free(cs);
        return MR_EDENIED;
    }
    if (c->max_cached > 0) {
        cs->sql = mr_strndup(sql, len);
        cache_insert(c, cs);
    }
    *out = cs;
    return 0;
}

void store__stmt_release(struct store_conn *c, struct store_cstmt *cs)
{
    if (cs == NULL)
        return;
    if (!cs->cached) {
        cstmt_free(cs);
        return;
    }
    /* Bindings point into the caller's JSON (SQLITE_STATIC): drop them
     * before the caller frees it. */
    sqlite3_reset(cs->stmt);
    sqlite3_clear_bindings(cs->stmt);
    (void)c;
}

/* Internal statements ------------------------------------------------------ */

int store__istep(struct store_conn *c, sqlite3_stmt *st)
{
    int rc;

    /* The step may re-prepare after a schema change, which runs the
     * authorizer again. */
    c->internal = 1;
    rc = sqlite3_step(st);
    c->internal = 0;
    return rc;
}

const char *store__io_detail(struct store_conn *c, char *buf, size_t size)
{
    char *io = c->s->det.io_error;
    int sys;

    /* The apply connection's files name themselves (determinism.c). */
    if (c->role == STORE_CONN_APPLY && io[0]) {
        snprintf(buf, size, "%s", io);
        io[0] = '\0';
        return buf;
    }
    sys = sqlite3_system_errno(c->db);
    snprintf(buf, size, "last errno %d: %s", sys, sys ? strerror(sys) : "none");
    return buf;
}

int store__ierror(struct store_conn *c, sqlite3_stmt *st, int sqlite_rc, const char *what,
                  char *err)
{
    int mrc = store__map_rc(sqlite_rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;

    char detail[STORE_IO_DETAIL_LEN];

    /* The message first: reset may replace it. */
    if (store__is_fatal(store__map_rc(sqlite_rc)))
        mr_seterr(err, mrc, "%s: %s (SQLite extended code %d; %s)", what, sqlite3_errmsg(c->db),
                  sqlite3_extended_errcode(c->db), store__io_detail(c, detail, sizeof(detail)));
    else
        mr_seterr(err, mrc, "%s: %s", what, sqlite3_errmsg(c->db));
    sqlite3_reset(st);
    return mrc;
}

int store__iexec(struct store_conn *c, sqlite3_stmt *st, const char *what, char *err)
{
    int rc = store__istep(c, st);

    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store__ierror(c, st, rc, what, err);
    sqlite3_reset(st);
    return 0;
}

int store__iprepare(struct store_conn *c, const char *sql, sqlite3_stmt **out, char *err)
{
    int rc;

    c->internal = 1;
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    c->internal = 0;
    if (rc != SQLITE_OK) {
        int mrc = store__map_rc(rc) == MR_ECORRUPT ? MR_ECORRUPT : MR_EIO;
        return mr_seterr(err, mrc, "prepare \"%s\": %s", sql, sqlite3_errmsg(c->db));
    }
    return 0;
}
