/* merge.c -- item states of global tables: the join (merge), rendering,
 * operations, validation and the hybrid logical clock.  Pure functions over
 * jansson values; no I/O.  Formats: gtab_int.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "gtab_int.h"

#define COUNTER_MAX_BY (1LL << 53)

/* ---- hybrid logical clock ------------------------------------------------ */

uint64_t gtab_hlc_now(struct gtab_hlc *h, int64_t wall_ms)
{
    int64_t phys = wall_ms + h->skew_ms;
    uint64_t p = phys > 0 ? (uint64_t)phys << 16 : 0;

    h->last = p > h->last ? p : h->last + 1;
    return h->last;
}

void gtab_hlc_observe(struct gtab_hlc *h, uint64_t remote)
{
    if (remote > h->last)
        h->last = remote;
}

/* ---- validation ---------------------------------------------------------- */

int gtab_name_valid(const char *s, size_t len, char *err)
{
    if (len == 0 || len > GTAB_MAX_NAME)
        return mr_seterr(err, MR_EINVAL, "name of %zu bytes: expected 1 to %d", len, GTAB_MAX_NAME);
    if (s[0] == '_')
        return mr_seterr(err, MR_EINVAL, "name '%.*s' starts with '_' (reserved)", (int)len, s);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return mr_seterr(err, MR_EINVAL, "name '%.*s': byte %zu is not a letter, digit, '-' or '_'",
                             (int)(len > 64 ? 64 : len), s, i + 1);
    }
    return 0;
}

int gtab_key_valid(const char *s, size_t len, char *err)
{
    if (len == 0 || len > GTAB_MAX_KEY)
        return mr_seterr(err, MR_EINVAL, "key of %zu bytes: expected 1 to %d", len, GTAB_MAX_KEY);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '/' || c == '?' || c == '#' || c == '%' || c == '"' ||
            c == '\\')
            return mr_seterr(err, MR_EINVAL, "key: byte %zu (0x%02x) is not allowed (printable "
                             "ASCII except / ? # %% \" \\ and space)", i + 1, c);
    }
    return 0;
}

const char *gtab_kind_name(enum gtab_kind kind)
{
    return kind == GTAB_LWW ? "lww" : "crdt";
}

int gtab_spec_parse(const char *name, const json_t *spec, struct gtab_spec *out, char *err)
{
    const char *k, *kind;
    json_t *v;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = gtab_name_valid(name, strlen(name), err)) != 0)
        return mr_wraperr(err, rc, "table");
    snprintf(out->name, sizeof(out->name), "%s", name);
    if (!json_is_object(spec))
        return mr_seterr(err, MR_EINVAL, "table spec must be a JSON object {\"kind\":\"lww\"|\"crdt\"}");
    json_object_foreach((json_t *)spec, k, v) {
        if (strcmp(k, "kind") && strcmp(k, "ttl_field"))
            return mr_seterr(err, MR_EINVAL, "table spec: unknown field \"%.64s\" (expected kind, "
                             "ttl_field)", k);
    }
    kind = json_string_value(json_object_get(spec, "kind"));
    if (kind && !strcmp(kind, "lww"))
        out->kind = GTAB_LWW;
    else if (kind && !strcmp(kind, "crdt"))
        out->kind = GTAB_CRDT;
    else
        return mr_seterr(err, MR_EINVAL, "table spec: \"kind\" must be \"lww\" or \"crdt\"");
    v = json_object_get(spec, "ttl_field");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || gtab_name_valid(json_string_value(v), json_string_length(v), NULL))
            return mr_seterr(err, MR_EINVAL, "table spec: \"ttl_field\" must be a field name of 1 "
                             "to %d letters, digits, '-' or '_'", GTAB_MAX_NAME);
        snprintf(out->ttl_field, sizeof(out->ttl_field), "%s", json_string_value(v));
    }
    return 0;
}

json_t *gtab_spec_json(const struct gtab_spec *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "kind", json_string(gtab_kind_name(s->kind)));
    if (s->ttl_field[0])
        json_object_set_new(o, "ttl_field", json_string(s->ttl_field));
    return o;
}

/* ---- helpers --------------------------------------------------------------- */

uint64_t gtab__u64(const json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k));
    return v > 0 ? (uint64_t)v : 0;
}

uint64_t gtab_json_u64(const json_t *o, const char *k)
{
    return gtab__u64(o, k);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static char kind_of(const json_t *s)
{
    return str(s, "k")[0];
}

/* (h, origin) of <a> against <b>: <0, 0, >0. */
static int cmp_ho(const json_t *a, const json_t *b)
{
    uint64_t ha = gtab__u64(a, "h"), hb = gtab__u64(b, "h");

    if (ha != hb)
        return ha < hb ? -1 : 1;
    return strcmp(str(a, "o"), str(b, "o"));
}

static void set_u64(json_t *o, const char *k, uint64_t v)
{
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* Per-key maximum of two {key: integer} maps. */
static json_t *max_map(const json_t *a, const json_t *b)
{
    json_t *out = json_object(), *v;
    const char *k;

    json_object_foreach((json_t *)a, k, v) set_u64(out, k, gtab__u64(a, k));
    json_object_foreach((json_t *)b, k, v) {
        uint64_t x = gtab__u64(b, k);
        if (x > gtab__u64(out, k))
            set_u64(out, k, x);
    }
    return out;
}

/* Per-key max_map of two {key: {key: integer}} maps. */
static json_t *max_map2(const json_t *a, const json_t *b)
{
    json_t *out = json_object(), *v;
    const char *k;

    json_object_foreach((json_t *)a, k, v) json_object_set_new(out, k, max_map(v, json_object_get(b, k)));
    json_object_foreach((json_t *)b, k, v) {
        if (!json_object_get(out, k))
            json_object_set_new(out, k, max_map(NULL, v));
    }
    return out;
}

static json_t *field_merge(const json_t *a, const json_t *b)
{
    char ta = str(a, "t")[0], tb = str(b, "t")[0];
    json_t *f;

    if (ta != tb)
        return json_deep_copy(ta > tb ? a : b);
    if (ta == 'r')
        return json_deep_copy(cmp_ho(a, b) >= 0 ? a : b);
    f = json_object();
    json_object_set_new(f, "t", json_string(ta == 'n' ? "n" : "s"));
    set_u64(f, "u", gtab__u64(a, "u") > gtab__u64(b, "u") ? gtab__u64(a, "u") : gtab__u64(b, "u"));
    if (ta == 'n') {
        static const char *const parts[] = {"p", "n", "bp", "bn"};
        for (size_t i = 0; i < 4; i++)
            json_object_set_new(f, parts[i], max_map(json_object_get(a, parts[i]), json_object_get(b, parts[i])));
    } else {
        json_object_set_new(f, "a", max_map2(json_object_get(a, "a"), json_object_get(b, "a")));
        json_object_set_new(f, "r", max_map2(json_object_get(a, "r"), json_object_get(b, "r")));
    }
    return f;
}

json_t *gtab_state_merge(const json_t *a, const json_t *b)
{
    json_t *out, *fa, *fb, *fo, *v;
    const char *k;
    char ka = kind_of(a), kb = kind_of(b);

    if (a == NULL)
        return json_deep_copy(b);
    if (b == NULL)
        return json_deep_copy(a);
    if (ka != kb)
        return json_deep_copy(ka > kb ? a : b);
    if (ka == 'l')
        return json_deep_copy(cmp_ho(a, b) >= 0 ? a : b);
    out = json_object();
    json_object_set_new(out, "k", json_string("c"));
    v = cmp_ho(a, b) >= 0 ? (json_t *)a : (json_t *)b;
    set_u64(out, "h", gtab__u64(v, "h"));
    json_object_set_new(out, "o", json_string(str(v, "o")));
    set_u64(out, "u", gtab__u64(a, "u") > gtab__u64(b, "u") ? gtab__u64(a, "u") : gtab__u64(b, "u"));
    set_u64(out, "dl", gtab__u64(a, "dl") > gtab__u64(b, "dl") ? gtab__u64(a, "dl") : gtab__u64(b, "dl"));
    fa = json_object_get(a, "f");
    fb = json_object_get(b, "f");
    fo = json_object();
    json_object_foreach(fa, k, v) {
        json_t *w = json_object_get(fb, k);
        json_object_set_new(fo, k, w ? field_merge(v, w) : json_deep_copy(v));
    }
    json_object_foreach(fb, k, v) {
        if (!json_object_get(fo, k))
            json_object_set_new(fo, k, json_deep_copy(v));
    }
    json_object_set_new(out, "f", fo);
    return out;
}

/* ---- rendering --------------------------------------------------------------- */

static int cmp_cstr(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int elem_present(const json_t *f, const char *elem)
{
    json_t *adds = json_object_get(json_object_get(f, "a"), elem);
    json_t *rems = json_object_get(json_object_get(f, "r"), elem), *v;
    const char *o;

    json_object_foreach(adds, o, v) {
        if (gtab__u64(adds, o) > gtab__u64(rems, o))
            return 1;
    }
    return 0;
}

static json_t *render_field(const json_t *f)
{
    char t = str(f, "t")[0];

    if (t == 'r')
        return json_incref(json_object_get(f, "v") ? json_object_get(f, "v") : json_null());
    if (t == 'n') {
        json_int_t sum = 0;
        json_t *p = json_object_get(f, "p"), *n = json_object_get(f, "n"), *v;
        json_t *bp = json_object_get(f, "bp"), *bn = json_object_get(f, "bn");
        const char *o;
        json_object_foreach(p, o, v) sum += (json_int_t)(gtab__u64(p, o) - gtab__u64(bp, o));
        json_object_foreach(n, o, v) sum -= (json_int_t)(gtab__u64(n, o) - gtab__u64(bn, o));
        return json_integer(sum);
    } else {
        json_t *adds = json_object_get(f, "a"), *arr = json_array(), *v;
        size_t n = 0, i = 0;
        const char **keys;
        const char *e;

        keys = malloc((json_object_size(adds) + 1) * sizeof(*keys));
        json_object_foreach(adds, e, v) {
            if (elem_present(f, e))
                keys[n++] = e;
        }
        qsort(keys, n, sizeof(*keys), cmp_cstr);
        for (i = 0; i < n; i++) {
            json_t *d = json_loads(keys[i], JSON_DECODE_ANY, NULL);
            json_array_append_new(arr, d ? d : json_string(keys[i]));
        }
        free(keys);
        return arr;
    }
}

json_t *gtab_state_render(const json_t *s)
{
    json_t *out, *f, *v;
    const char *k;
    uint64_t dl;

    if (s == NULL)
        return NULL;
    if (kind_of(s) == 'l') {
        if (json_object_get(s, "x") || !json_object_get(s, "d"))
            return NULL;
        return json_incref(json_object_get(s, "d"));
    }
    dl = gtab__u64(s, "dl");
    if (gtab__u64(s, "u") <= dl)
        return NULL;
    out = json_object();
    f = json_object_get(s, "f");
    json_object_foreach(f, k, v) {
        if (gtab__u64(v, "u") > dl)
            json_object_set_new(out, k, render_field(v));
    }
    return out;
}

int gtab__state_live(const json_t *s)
{
    if (s == NULL)
        return 0;
    if (kind_of(s) == 'l')
        return json_object_get(s, "x") == NULL && json_object_get(s, "d") != NULL;
    return gtab__u64(s, "u") > gtab__u64(s, "dl");
}

void gtab_state_version(const json_t *s, char *out, size_t size)
{
    snprintf(out, size, "%" PRIu64 "@%s", gtab__u64(s, "h"), str(s, "o"));
}

uint64_t gtab_state_hlc(const json_t *s)
{
    return gtab__u64(s, "h");
}

int64_t gtab__expiry(const json_t *rendered, const char *ttl_field)
{
    json_t *v;
    double secs;

    if (rendered == NULL || ttl_field == NULL || !ttl_field[0] || !json_is_object(rendered))
        return 0;
    v = json_object_get(rendered, ttl_field);
    if (!json_is_number(v))
        return 0;
    secs = json_number_value(v);
    if (!(secs > 0) || secs > 1e13)
        return 0;
    return (int64_t)(secs * 1000);
}

/* ---- writes ---------------------------------------------------------------------- */

json_t *gtab_state_lww(const json_t *doc, uint64_t hlc, const char *origin, const char *prev, int cond)
{
    json_t *s = json_object();

    json_object_set_new(s, "k", json_string("l"));
    set_u64(s, "h", hlc);
    json_object_set_new(s, "o", json_string(origin));
    if (doc)
        json_object_set(s, "d", (json_t *)doc);
    else
        json_object_set_new(s, "x", json_integer(1));
    json_object_set_new(s, "p", json_string(prev ? prev : ""));
    if (cond)
        json_object_set_new(s, "c", json_integer(1));
    return s;
}

json_t *gtab_state_crdt_delete(const json_t *cur, uint64_t hlc, const char *origin)
{
    json_t *s = json_deep_copy(cur), *f, *v;
    const char *k;

    set_u64(s, "h", hlc);
    json_object_set_new(s, "o", json_string(origin));
    set_u64(s, "dl", hlc);
    f = json_object_get(s, "f");
    json_object_foreach(f, k, v) {
        char t = str(v, "t")[0];
        if (t == 'n') {
            json_object_set_new(v, "bp", max_map(json_object_get(v, "bp"), json_object_get(v, "p")));
            json_object_set_new(v, "bn", max_map(json_object_get(v, "bn"), json_object_get(v, "n")));
        } else if (t == 's') {
            json_object_set_new(v, "r", max_map2(json_object_get(v, "r"), json_object_get(v, "a")));
        }
    }
    return s;
}

static const char *type_name(char t)
{
    return t == 'n' ? "a counter" : t == 's' ? "a set" : "a register";
}

/* The field <name> of <fields> as type <t>, created if absent. */
static json_t *field_for(json_t *fields, const char *name, char t, size_t i, char *err, int *rc)
{
    json_t *f = json_object_get(fields, name);

    if (f) {
        char have = str(f, "t")[0];
        if (have != t) {
            *rc = mr_seterr(err, MR_ECONSTRAINT, "op %zu: field \"%s\" is %s, not %s", i + 1, name,
                            type_name(have), type_name(t));
            return NULL;
        }
        return f;
    }
    if (json_object_size(fields) >= GTAB_MAX_FIELDS) {
        *rc = mr_seterr(err, MR_ETOOBIG, "op %zu: an item has at most %d fields", i + 1, GTAB_MAX_FIELDS);
        return NULL;
    }
    f = json_object();
    json_object_set_new(f, "t", json_string(t == 'n' ? "n" : t == 's' ? "s" : "r"));
    if (t == 'n') {
        json_object_set_new(f, "p", json_object());
        json_object_set_new(f, "n", json_object());
        json_object_set_new(f, "bp", json_object());
        json_object_set_new(f, "bn", json_object());
    } else if (t == 's') {
        json_object_set_new(f, "a", json_object());
        json_object_set_new(f, "r", json_object());
    }
    json_object_set_new(fields, name, f);
    return f;
}

static int apply_op(json_t *fields, const json_t *op, size_t i, uint64_t hlc, const char *origin,
                    char *err)
{
    const char *name, *kind, *k;
    json_t *f, *v, *value, *by;
    int rc = 0;

    if (!json_is_object(op))
        return mr_seterr(err, MR_EINVAL, "op %zu: must be an object {\"op\",\"field\",...}", i + 1);
    json_object_foreach((json_t *)op, k, v) {
        if (strcmp(k, "op") && strcmp(k, "field") && strcmp(k, "value") && strcmp(k, "by"))
            return mr_seterr(err, MR_EINVAL, "op %zu: unknown member \"%.64s\" (expected op, field, "
                             "value, by)", i + 1, k);
    }
    kind = json_string_value(json_object_get(op, "op"));
    name = json_string_value(json_object_get(op, "field"));
    if (kind == NULL)
        return mr_seterr(err, MR_EINVAL, "op %zu: \"op\" must be add, remove, increment or set", i + 1);
    if (name == NULL || gtab_name_valid(name, strlen(name), NULL) != 0)
        return mr_seterr(err, MR_EINVAL, "op %zu: \"field\" must be a name of 1 to %d letters, "
                         "digits, '-' or '_', not starting with '_'", i + 1, GTAB_MAX_NAME);
    value = json_object_get(op, "value");
    by = json_object_get(op, "by");
    if (!strcmp(kind, "add") || !strcmp(kind, "remove")) {
        char *elem;
        json_t *adds, *rems, *dots, *w;
        const char *o;
        if (by)
            return mr_seterr(err, MR_EINVAL, "op %zu: %s takes \"value\", not \"by\"", i + 1, kind);
        if (!json_is_string(value) && !json_is_number(value) && !json_is_boolean(value))
            return mr_seterr(err, MR_EINVAL, "op %zu: %s needs a \"value\" that is a string, number "
                             "or boolean", i + 1, kind);
        elem = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        if (elem == NULL || strlen(elem) > GTAB_MAX_ELEM) {
            free(elem);
            return mr_seterr(err, MR_ETOOBIG, "op %zu: a set element is at most %d bytes of JSON",
                             i + 1, GTAB_MAX_ELEM);
        }
        if ((f = field_for(fields, name, 's', i, err, &rc)) == NULL) {
            free(elem);
            return rc;
        }
        adds = json_object_get(f, "a");
        rems = json_object_get(f, "r");
        if (kind[0] == 'a') {
            dots = json_object_get(adds, elem);
            if (dots == NULL) {
                if (json_object_size(adds) >= GTAB_MAX_SET) {
                    free(elem);
                    return mr_seterr(err, MR_ETOOBIG, "op %zu: set \"%s\" holds its limit of %d "
                                     "elements", i + 1, name, GTAB_MAX_SET);
                }
                dots = json_object();
                json_object_set_new(adds, elem, dots);
            }
            set_u64(dots, origin, hlc);
        } else if ((dots = json_object_get(adds, elem)) != NULL) {
            /* Observed-remove: only the adds seen here are cancelled. */
            json_t *rd = json_object_get(rems, elem);
            if (rd == NULL) {
                rd = json_object();
                json_object_set_new(rems, elem, rd);
            }
            json_object_foreach(dots, o, w) set_u64(rd, o, gtab__u64(dots, o));
        }
        free(elem);
    } else if (!strcmp(kind, "increment")) {
        json_int_t n = 1;
        uint64_t have;
        const char *part;
        if (value)
            return mr_seterr(err, MR_EINVAL, "op %zu: increment takes \"by\", not \"value\"", i + 1);
        if (by) {
            if (!json_is_integer(by) || json_integer_value(by) > COUNTER_MAX_BY ||
                json_integer_value(by) < -COUNTER_MAX_BY)
                return mr_seterr(err, MR_EINVAL, "op %zu: \"by\" must be an integer between -2^53 "
                                 "and 2^53", i + 1);
            n = json_integer_value(by);
        }
        if ((f = field_for(fields, name, 'n', i, err, &rc)) == NULL)
            return rc;
        part = n >= 0 ? "p" : "n";
        have = gtab__u64(json_object_get(f, part), origin);
        if (have > (uint64_t)INT64_MAX / 2)
            return mr_seterr(err, MR_ETOOBIG, "op %zu: counter \"%s\" would overflow", i + 1, name);
        set_u64(json_object_get(f, part), origin, have + (uint64_t)(n >= 0 ? n : -n));
    } else if (!strcmp(kind, "set")) {
        if (by || value == NULL)
            return mr_seterr(err, MR_EINVAL, "op %zu: set needs \"value\" (any JSON) and no \"by\"", i + 1);
        if ((f = field_for(fields, name, 'r', i, err, &rc)) == NULL)
            return rc;
        set_u64(f, "h", hlc);
        json_object_set_new(f, "o", json_string(origin));
        json_object_set(f, "v", value);
    } else {
        return mr_seterr(err, MR_EINVAL, "op %zu: unknown op \"%.32s\" (expected add, remove, "
                         "increment or set)", i + 1, kind);
    }
    set_u64(f, "u", hlc);
    return 0;
}

int gtab_state_apply_ops(const json_t *cur, const json_t *ops, uint64_t hlc, const char *origin,
                         json_t **out, char *err)
{
    json_t *s, *fields;
    size_t i, n, size;
    int rc;

    *out = NULL;
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return mr_seterr(err, MR_EINVAL, "\"ops\" must be a non-empty array");
    if (json_array_size(ops) > GTAB_MAX_OPS)
        return mr_seterr(err, MR_ETOOBIG, "%zu ops: at most %d per request", json_array_size(ops),
                         GTAB_MAX_OPS);
    if (cur && kind_of(cur) != 'c')
        return mr_seterr(err, MR_ECONSTRAINT, "the item is a document of an lww table");
    if (cur) {
        s = json_deep_copy(cur);
    } else {
        s = json_object();
        json_object_set_new(s, "k", json_string("c"));
        set_u64(s, "dl", 0);
        json_object_set_new(s, "f", json_object());
    }
    fields = json_object_get(s, "f");
    n = json_array_size(ops);
    for (i = 0; i < n; i++) {
        rc = apply_op(fields, json_array_get(ops, i), i, hlc, origin, err);
        if (rc != 0) {
            json_decref(s);
            return rc;
        }
    }
    set_u64(s, "h", hlc);
    json_object_set_new(s, "o", json_string(origin));
    set_u64(s, "u", hlc);
    /* The size only: json_dumpb without a buffer counts, allocates nothing. */
    size = json_dumpb(s, NULL, 0, JSON_COMPACT);
    if (size == 0 || size > GTAB_MAX_DOC) {
        json_decref(s);
        return mr_seterr(err, MR_ETOOBIG, "the item's state would exceed %d bytes", GTAB_MAX_DOC);
    }
    *out = s;
    return 0;
}
