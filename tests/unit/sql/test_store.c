/* Unit tests of src/sql/store: reads, parameters, and the checks that
 * refuse statements (store_check, the authorizer).  Apply, idempotency,
 * positions and digests are in test_store_apply.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_fixture.h"

/* Reads -------------------------------------------------------------------- */

static void read_returns_typed_values(void **state)
{
    struct fix *f = *state;

    assert_int_equal(read1(f, f->a, "SELECT 1 AS i, 2.0 AS r, 1.5, 'x\"y' AS t, x'00ff' AS b,"
                                    " NULL AS n, -9223372036854775808", NULL), 0);
    assert_string_equal(f->out.data,
                        "[{\"columns\":[\"i\",\"r\",\"1.5\",\"t\",\"b\",\"n\","
                        "\"-9223372036854775808\"],\"rows\":[[1,2.0,1.5,\"x\\\"y\","
                        "{\"base64\":\"AP8=\"},null,-9223372036854775808]],"
                        "\"rows_affected\":0,\"last_insert_id\":0}]");
    /* Text that is not UTF-8 still makes valid JSON. */
    assert_int_equal(read1(f, f->a, "SELECT CAST(x'ff41' AS TEXT)", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[\"\xef\xbf\xbd" "A\"]]"));
}

static void read_sees_applied_rows_in_one_snapshot(void **state)
{
    struct fix *f = *state;
    struct store_stmt st[2] = {{"SELECT count(*) FROM t", NULL}, {"SELECT v FROM t", NULL}};

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    apply_both(f, "b2", 2, "INSERT INTO t(v) VALUES('hello')");
    assert_int_equal(store_read(f->a, st, 2, &f->out, f->err), 0);
    assert_non_null(strstr(f->out.data, "[[1]]"));
    assert_non_null(strstr(f->out.data, "[[\"hello\"]]"));
}

static void read_refuses_writes_and_keeps_output_on_error(void **state)
{
    struct fix *f = *state;

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    mr_buf_puts(&f->out, "prefix");
    {
        struct store_stmt st[2] = {{"SELECT 1", NULL}, {"INSERT INTO t VALUES(1)", NULL}};
        assert_int_equal(store_read(f->a, st, 2, &f->out, f->err), MR_EDENIED);
    }
    assert_string_equal(f->out.data, "prefix");
    assert_string_equal(f->err, "statement 2 writes: submit it as a write transaction");
}

static void read_max_rows(void **state)
{
    struct fix *f = *state;
    struct store_opts o;
    struct store *s;
    char path[160];

    store_opts_default(&o);
    o.max_rows = 3;
    snprintf(path, sizeof(path), "%s/c.db", f->dir);
    assert_int_equal(store_open(path, &o, &s, f->err), 0);
    assert_int_equal(read1(f, s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c"
                                 " WHERE x<3) SELECT x FROM c", NULL), 0);
    assert_non_null(strstr(f->out.data, "[[1],[2],[3]]"));
    assert_int_equal(read1(f, s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c"
                                 " WHERE x<4) SELECT x FROM c", NULL), MR_ETOOBIG);
    assert_string_equal(f->err, "statement 1 returned more than 3 rows (limit max_rows)");
    assert_int_equal(f->out.len, 0);
    store_close(s);
}

static void read_allows_introspection_pragmas_only(void **state)
{
    struct fix *f = *state;

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    assert_int_equal(read1(f, f->a, "PRAGMA table_info(t)", NULL), 0);
    assert_non_null(strstr(f->out.data, "\"v\""));
    assert_int_equal(read1(f, f->a, "PRAGMA journal_mode", NULL), MR_EDENIED);
    assert_string_equal(f->err, "statement 1: PRAGMA journal_mode is not allowed");
}

/* Parameters --------------------------------------------------------------- */

static void params_positional_and_named(void **state)
{
    struct fix *f = *state;

    assert_int_equal(read1(f, f->a, "SELECT ?, ?, ?, ?, ?", "[1, 2.5, \"s\", true, null]"), 0);
    assert_non_null(strstr(f->out.data, "[[1,2.5,\"s\",1,null]]"));
    assert_int_equal(read1(f, f->a, "SELECT ?2, ?1", "[\"a\", \"b\"]"), 0);
    assert_non_null(strstr(f->out.data, "[[\"b\",\"a\"]]"));
    assert_int_equal(read1(f, f->a, "SELECT :x, @y, $z, :x",
                           "{\"x\": 1, \"@y\": 2, \"$z\": {\"base64\": \"AP8=\"}}"), 0);
    assert_non_null(strstr(f->out.data, "[[1,2,{\"base64\":\"AP8=\"},1]]"));
    assert_int_equal(read1(f, f->a, "SELECT typeof(?)", "[{\"base64\": \"AP8=\"}]"), 0);
    assert_non_null(strstr(f->out.data, "[[\"blob\"]]"));
}

static void params_wrong_count_or_type(void **state)
{
    struct fix *f = *state;

    assert_int_equal(read1(f, f->a, "SELECT ?, ?", "[1]"), MR_EINVAL);
    assert_string_equal(f->err, "statement 1: expects 2 parameters, got 1");
    assert_int_equal(read1(f, f->a, "SELECT ?", "[1, 2]"), MR_EINVAL);
    assert_int_equal(read1(f, f->a, "SELECT ?", NULL), MR_EINVAL);
    assert_string_equal(f->err, "statement 1: expects 1 parameter, got none");
    assert_int_equal(read1(f, f->a, "SELECT 1", "[1]"), MR_EINVAL);
    assert_int_equal(read1(f, f->a, "SELECT :x", "{}"), MR_EINVAL);
    assert_string_equal(f->err, "statement 1: missing parameter :x");
    assert_int_equal(read1(f, f->a, "SELECT :x", "{\"x\": 1, \"y\": 2}"), MR_EINVAL);
    assert_string_equal(f->err, "statement 1: parameter \"y\" is not used by the statement");
    assert_int_equal(read1(f, f->a, "SELECT ?, ?, ?", "[1, 2, [3]]"), MR_EINVAL);
    assert_string_equal(f->err, "statement 1, parameter 3: arrays are not a SQL value");
    assert_int_equal(read1(f, f->a, "SELECT :x", "{\"x\": {\"a\": 1}}"), MR_EINVAL);
    assert_non_null(strstr(f->err, "statement 1, parameter :x: objects are not a SQL value"));
    assert_int_equal(read1(f, f->a, "SELECT ?", "[{\"base64\": \"!!\"}]"), MR_EINVAL);
    assert_string_equal(f->err, "statement 1, parameter 1: invalid base64");
    assert_int_equal(read1(f, f->a, "SELECT ?", "{\"x\": 1}"), MR_EINVAL);
    assert_int_equal(read1(f, f->a, "SELECT ?", "7"), MR_EINVAL);
}

/* Statement checks --------------------------------------------------------- */

static void syntax_error_message(void **state)
{
    struct fix *f = *state;
    int w;

    assert_int_equal(check1(f, "SELEC 1", NULL, &w), MR_ESQL);
    assert_string_equal(f->err, "statement 1: near \"SELEC\": syntax error");
    assert_int_equal(read1(f, f->a, "SELECT * FROM nope", NULL), MR_ESQL);
    assert_string_equal(f->err, "statement 1: no such table: nope");
}

static void one_statement_per_text(void **state)
{
    struct fix *f = *state;
    int w;

    assert_int_equal(check1(f, "SELECT 1; SELECT 2", NULL, &w), MR_EINVAL);
    assert_non_null(strstr(f->err, "one SQL statement per text"));
    assert_int_equal(check1(f, "SELECT 1; -- trailing comment\n ;", NULL, &w), 0);
    assert_int_equal(check1(f, "", NULL, &w), MR_EINVAL);
    assert_string_equal(f->err, "statement 1: empty SQL");
    assert_int_equal(check1(f, "  -- only a comment", NULL, &w), MR_EINVAL);
}

static void refuses_pragma_attach_transactions_temp(void **state)
{
    struct fix *f = *state;
    static const struct {
        const char *sql;
        const char *msg;
    } cases[] = {
        {"PRAGMA foreign_keys=OFF", "statement 1: PRAGMA foreign_keys is not allowed"},
        {"ATTACH 'x.db' AS x", "statement 1: ATTACH is not allowed"},
        {"DETACH x", "statement 1: DETACH is not allowed"},
        {"BEGIN", "statement 1: transaction control (BEGIN) is not allowed: a request is one "
                  "transaction"},
        {"COMMIT", "statement 1: transaction control (COMMIT) is not allowed: a request is one "
                   "transaction"},
        {"SAVEPOINT s", "statement 1: SAVEPOINT/RELEASE is not allowed: a request is one "
                        "transaction"},
        {"CREATE TEMP TABLE x(a)", "statement 1: TEMP objects are not allowed: they would exist "
                                   "on one connection only"},
        {"VACUUM", "statement 1: VACUUM is not allowed"},
        {"/* c */ vacuum INTO '/tmp/x.db'", "statement 1: VACUUM is not allowed"},
        {"INSERT INTO _meridian_meta VALUES('applied_rev', 99)",
         "statement 1: writing internal table _meridian_meta is not allowed"},
        {"DROP TABLE _MERIDIAN_IDEM", "statement 1: DDL on internal table _meridian_idem is not "
                                      "allowed"},
        {"CREATE TABLE _meridian_x(a)", "statement 1: DDL on internal table _meridian_x is not "
                                        "allowed"},
        {"SELECT load_extension('x')", "statement 1: function load_extension() is not allowed"},
        {"CREATE VIRTUAL TABLE v USING dbstat", "statement 1: virtual table module dbstat is not "
                                                "allowed"},
    };
    int w;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(check1(f, cases[i].sql, NULL, &w), MR_EDENIED);
        assert_string_equal(f->err, cases[i].msg);
    }
    assert_int_equal(check1(f, "ALTER TABLE t RENAME TO _meridian_t", NULL, &w), MR_EDENIED);
}

static void refuses_nondeterministic_function_in_write(void **state)
{
    struct fix *f = *state;
    struct store_stmt two[2] = {{"INSERT INTO t(v) VALUES(1)", NULL},
                                {"SELECT last_insert_rowid()", NULL}};
    struct got g;
    int w;

    apply_both(f, "b1", 1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    /* A read may use it. */
    assert_int_equal(check1(f, "SELECT last_insert_rowid(), sqlite_version()", NULL, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(check1(f, "INSERT INTO t(v) VALUES(last_insert_rowid())", NULL, &w),
                     MR_EDENIED);
    assert_string_equal(f->err, "statement 1: function last_insert_rowid() is not deterministic "
                                "across replicas: use RETURNING");
    assert_int_equal(check1(f, "INSERT INTO t(v) SELECT sqlite_version()", NULL, &w), MR_EDENIED);
    assert_non_null(strstr(f->err, "sqlite_version()"));
    /* Nor in a read statement of a transaction that writes: its result is
     * the writer's answer and is stored with the idempotency key. */
    assert_int_equal(store_check(f->a, two, 2, &w, f->err), MR_EDENIED);
    assert_string_equal(f->err, "statement 2: function last_insert_rowid() is not deterministic "
                                "across replicas: use RETURNING");
    /* At apply time too (the log is not trusted to have been checked). */
    assert_int_equal(apply_sql(f, f->a, "b2", 2, "UPDATE t SET v = changes()", &g), 0);
    assert_int_equal(g.rc[0], MR_EDENIED);
    assert_string_equal(g.result[0], "statement 1: function changes() is not deterministic across "
                                     "replicas: use RETURNING");
    /* A trigger cannot smuggle one in. */
    apply_both(f, "b3", 3, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                           "UPDATE t SET v = total_changes() WHERE id = new.id; END");
    assert_int_equal(apply_sql(f, f->a, "b4", 4, "INSERT INTO t(v) VALUES(1)", &g), 0);
    assert_int_equal(g.rc[0], MR_EDENIED);
    assert_non_null(strstr(g.result[0], "total_changes()"));
}

static void check_classifies_reads_and_writes(void **state)
{
    struct fix *f = *state;
    struct store_stmt ddl[2] = {{"CREATE TABLE n(a)", NULL}, {"INSERT INTO n VALUES(1)", NULL}};
    struct store_stmt bad[2] = {{"CREATE TABLE n(a)", NULL}, {"SELEC", NULL}};
    struct store_stmt wp[2] = {{"CREATE TABLE n(a)", NULL}, {"PRAGMA table_info(n)", NULL}};
    int w = -1;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    assert_int_equal(check1(f, "SELECT * FROM t", NULL, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(check1(f, "INSERT INTO t VALUES(?)", "[1]", &w), 0);
    assert_int_equal(w, 1);
    /* n does not exist yet: the insert is judged when applied. */
    assert_int_equal(store_check(f->a, ddl, 2, &w, f->err), 0);
    assert_int_equal(w, 1);
    assert_int_equal(store_check(f->a, bad, 2, &w, f->err), 0);
    assert_int_equal(store_check(f->a, wp, 2, &w, f->err), MR_EDENIED);
    /* Limits. */
    assert_int_equal(store_check(f->a, ddl, STORE_MAX_STATEMENTS + 1, &w, f->err), MR_EINVAL);
    assert_int_equal(store_check(f->a, ddl, 0, &w, f->err), MR_EINVAL);
    {
        char *big = mr_malloc(STORE_MAX_SQL_BYTES + 16);
        memset(big, ' ', STORE_MAX_SQL_BYTES + 15);
        memcpy(big, "SELECT 1", 8);
        big[STORE_MAX_SQL_BYTES + 15] = '\0';
        assert_int_equal(check1(f, big, NULL, &w), MR_EINVAL);
        mr_free(big);
    }
}

static void check_rejudges_cached_statement_after_schema_change(void **state)
{
    struct fix *f = *state;
    int w;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    assert_int_equal(check1(f, "SELECT a FROM t", NULL, &w), 0);
    apply_both(f, "b2", 2, "DROP TABLE t");
    assert_int_equal(check1(f, "SELECT a FROM t", NULL, &w), MR_ESQL);
    assert_string_equal(f->err, "statement 1: no such table: t");
}


static void writes_may_not_read_internal_tables(void **state)
{
    struct fix *f = *state;
    struct got g;
    int w;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    /* Reads may look. */
    assert_int_equal(read1(f, f->a, "SELECT count(*) FROM _meridian_batches", NULL), 0);
    assert_int_equal(check1(f, "INSERT INTO t SELECT key FROM _meridian_idem", NULL, &w),
                     MR_EDENIED);
    assert_string_equal(f->err, "statement 1: internal table _meridian_idem cannot be read in a "
                                "transaction that writes");
    /* A foreign key to an internal table can be declared but never used:
     * the child insert must read the parent. */
    apply_both(f, "b2", 2, "CREATE TABLE c(k REFERENCES _meridian_idem(key))");
    assert_int_equal(apply_sql(f, f->a, "b3", 3, "INSERT INTO c VALUES('x')", &g), 0);
    assert_int_equal(g.rc[0], MR_EDENIED);
    /* Nor may a write describe the replica itself. */
    assert_int_equal(check1(f, "INSERT INTO t SELECT count(*) FROM dbstat", NULL, &w), MR_EDENIED);
    assert_int_equal(check1(f, "INSERT INTO t SELECT * FROM pragma_compile_options", NULL, &w),
                     MR_EDENIED);
}


static void explain_is_a_read(void **state)
{
    struct fix *f = *state;
    struct got g;
    int w;

    apply_both(f, "b1", 1, "CREATE TABLE t(a)");
    assert_int_equal(check1(f, "EXPLAIN INSERT INTO t VALUES(1)", NULL, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(read1(f, f->a, "EXPLAIN QUERY PLAN SELECT * FROM t", NULL), 0);
    assert_int_equal(apply_sql(f, f->a, "b2", 2, "EXPLAIN SELECT 1", &g), 0);
    assert_int_equal(g.rc[0], MR_EDENIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(read_returns_typed_values, setup, teardown),
        cmocka_unit_test_setup_teardown(read_sees_applied_rows_in_one_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(read_refuses_writes_and_keeps_output_on_error, setup, teardown),
        cmocka_unit_test_setup_teardown(read_max_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(read_allows_introspection_pragmas_only, setup, teardown),
        cmocka_unit_test_setup_teardown(params_positional_and_named, setup, teardown),
        cmocka_unit_test_setup_teardown(params_wrong_count_or_type, setup, teardown),
        cmocka_unit_test_setup_teardown(syntax_error_message, setup, teardown),
        cmocka_unit_test_setup_teardown(one_statement_per_text, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_pragma_attach_transactions_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_nondeterministic_function_in_write, setup, teardown),
        cmocka_unit_test_setup_teardown(check_classifies_reads_and_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(check_rejudges_cached_statement_after_schema_change, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_may_not_read_internal_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(explain_is_a_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
