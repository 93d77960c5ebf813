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

const char *gtab_if_match(const char *header, char *buf, size_t size)
{
    size_t len;

    if (header == NULL || *header == '\0')
        return NULL;
    len = strlen(header);
    if (len >= 2 && header[0] == '"' && header[len - 1] == '"')
        snprintf(buf, size, "%.*s", (int)(len - 2), header + 1);
    else
        snprintf(buf, size, "%s", header);
    return buf;
}

int gtab_ops_body(const json_t *body, const json_t **ops, char *err)
{
    const char *k;
    json_t *v;

    if (!json_is_object(body))
        return mr_seterr(err, MR_EINVAL, "body must be {\"ops\":[...]}");
    json_object_foreach((json_t *)body, k, v) {
        if (strcmp(k, "ops") != 0)
            return mr_seterr(err, MR_EINVAL, "unknown field \"%.64s\" (expected ops)", k);
    }
    *ops = json_object_get(body, "ops");
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

/* The key of field <k> (value <f>) in a state's "f": "<name>:<t>", <k>
 * itself or written into <buf>.  States written before decision 044 keyed
 * fields by name alone, the type inside; they are read as the same typed
 * key. */
#define FIELD_KEY_LEN (GTAB_MAX_NAME + 8)
static const char *field_key(char *buf, size_t size, const char *k, const json_t *f)
{
    if (strchr(k, ':') != NULL)
        return k;
    snprintf(buf, size, "%s:%c", k, str(f, "t")[0] ? str(f, "t")[0] : 'r');
    return buf;
}

/* A counter field's per-origin maps (gtab_int.h). */
static const char *const counter_maps[] = {"p", "n", "e", "bp", "bn", "be"};
#define N_COUNTER_MAPS (sizeof(counter_maps) / sizeof(counter_maps[0]))

/* Does origin <o>'s contribution to counter <f> still count: it exists and
 * no delete has observed all of it? */
static int counter_counts(const json_t *f, const char *o)
{
    uint64_t e = gtab__u64(json_object_get(f, "e"), o);

    if (!json_object_get(json_object_get(f, "p"), o) && !json_object_get(json_object_get(f, "n"), o) &&
        e == 0)
        return 0;
    return gtab__u64(json_object_get(f, "be"), o) != e ||
           gtab__u64(json_object_get(f, "bp"), o) < gtab__u64(json_object_get(f, "p"), o) ||
           gtab__u64(json_object_get(f, "bn"), o) < gtab__u64(json_object_get(f, "n"), o);
}

/* Set <o> in map <k> of <f> to <v>, or drop it when 0 (the canonical form:
 * maps hold no zeros, so equal states are equal JSON). */
static void put_u64(json_t *f, const char *k, const char *o, uint64_t v)
{
    json_t *m = json_object_get(f, k);

    if (v > 0)
        set_u64(m, o, v);
    else
        json_object_del(m, o);
}

static uint64_t map_u64(const json_t *f, const char *map, const char *o)
{
    return gtab__u64(json_object_get(f, map), o);
}

/* Counters: each origin's contribution (p, n) lives in an epoch e, the HLC
 * at which that origin started it (0 for states from before decision 044).
 * The later epoch wins whole; equal epochs join by max.  A baseline (what a
 * delete observed: bp, bn) carries the epoch it observed (be) and joins the
 * same way; one older than the contribution's epoch no longer applies and
 * is dropped. */
static void counter_merge_origin(json_t *f, const json_t *a, const json_t *b, const char *o)
{
    static const char *const val[] = {"p", "n"}, *const base[] = {"bp", "bn"};
    uint64_t ea = map_u64(a, "e", o), eb = map_u64(b, "e", o), e = ea > eb ? ea : eb;
    uint64_t ba = map_u64(a, "be", o), bb = map_u64(b, "be", o), be = ba > bb ? ba : bb;
    int keep_base = be >= e;

    put_u64(f, "e", o, e);
    put_u64(f, "be", o, keep_base ? be : 0);
    for (size_t i = 0; i < 2; i++) {
        uint64_t x = ea == e ? map_u64(a, val[i], o) : 0, y = eb == e ? map_u64(b, val[i], o) : 0;
        uint64_t bx = ba == be ? map_u64(a, base[i], o) : 0, by = bb == be ? map_u64(b, base[i], o) : 0;

        put_u64(f, val[i], o, x > y ? x : y);
        put_u64(f, base[i], o, keep_base ? (bx > by ? bx : by) : 0);
    }
}

static void counter_merge(json_t *f, const json_t *a, const json_t *b)
{
    const json_t *in[2] = {a, b};
    json_t *seen = json_object(), *v;
    const char *o;

    for (size_t i = 0; i < N_COUNTER_MAPS; i++)
        json_object_set_new(f, counter_maps[i], json_object());
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < N_COUNTER_MAPS; i++)
            json_object_foreach(json_object_get(in[s], counter_maps[i]), o, v) {
                if (json_object_get(seen, o) == NULL) {
                    json_object_set_new(seen, o, json_true());
                    counter_merge_origin(f, a, b, o);
                }
            }
    json_decref(seen);
}

static json_t *field_merge(const json_t *a, const json_t *b)
{
    char ta = str(a, "t")[0], tb = str(b, "t")[0];
    json_t *f;

    /* One key, two types: only a damaged state has that (keys carry the
     * type); keep the greater type letter so the join stays one. */
    if (ta != tb)
        return json_deep_copy(ta > tb ? a : b);
    if (ta == 'r')
        return json_deep_copy(cmp_ho(a, b) >= 0 ? a : b);
    f = json_object();
    json_object_set_new(f, "t", json_string(ta == 'n' ? "n" : "s"));
    set_u64(f, "u", gtab__u64(a, "u") > gtab__u64(b, "u") ? gtab__u64(a, "u") : gtab__u64(b, "u"));
    if (ta == 'n') {
        counter_merge(f, a, b);
    } else {
        json_object_set_new(f, "a", max_map2(json_object_get(a, "a"), json_object_get(b, "a")));
        json_object_set_new(f, "r", max_map2(json_object_get(a, "r"), json_object_get(b, "r")));
    }
    return f;
}

/* Join of two "f" objects (either may be NULL), under typed keys.  A field
 * of <fb> under the same typed key as one of <fa> is joined with it
 * directly: no copy of either first. */
static json_t *fields_merge(const json_t *fa, const json_t *fb)
{
    json_t *fo = json_object(), *v, *w;
    char buf[FIELD_KEY_LEN];
    const char *k, *key;

    json_object_foreach((json_t *)fa, k, v) {
        key = field_key(buf, sizeof(buf), k, v);
        if ((w = json_object_get(fo, key)) != NULL) /* a damaged state: one key twice */
            json_object_set_new(fo, key, field_merge(w, v));
        else if ((w = json_object_get(fb, key)) != NULL)
            json_object_set_new(fo, key, field_merge(v, w));
        else
            json_object_set_new(fo, key, field_merge(v, v));
    }
    json_object_foreach((json_t *)fb, k, v) {
        key = field_key(buf, sizeof(buf), k, v);
        if (key == k && json_object_get(fa, k) != NULL)
            continue; /* joined above */
        w = json_object_get(fo, key);
        json_object_set_new(fo, key, w ? field_merge(w, v) : field_merge(v, v));
    }
    return fo;
}

json_t *gtab_state_merge(const json_t *a, const json_t *b)
{
    json_t *out, *v;
    char ka = kind_of(a), kb = kind_of(b);

    if (a == NULL && b == NULL)
        return NULL;
    if (a == NULL || b == NULL) /* a copy, in the canonical form a join produces */
        return gtab_state_merge(a ? a : b, a ? a : b);
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
    json_object_set_new(out, "f", fields_merge(json_object_get(a, "f"), json_object_get(b, "f")));
    return out;
}

/* Of two visible fields of one name, whether <f> is the one shown rather
 * than <have> (NULL: none yet): the later written, then the greater type. */
static int field_shown_over(const json_t *f, const json_t *have)
{
    uint64_t uf = gtab__u64(f, "u"), uh = gtab__u64(have, "u");

    return have == NULL || uf > uh || (uf == uh && str(f, "t")[0] > str(have, "t")[0]);
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
        json_t *v;
        const char *o;
        /* A baseline counts only against the epoch it observed. */
        json_object_foreach(json_object_get(f, "p"), o, v) {
            int based = map_u64(f, "be", o) == map_u64(f, "e", o);
            sum += (json_int_t)(map_u64(f, "p", o) - (based ? map_u64(f, "bp", o) : 0));
        }
        json_object_foreach(json_object_get(f, "n"), o, v) {
            int based = map_u64(f, "be", o) == map_u64(f, "e", o);
            sum -= (json_int_t)(map_u64(f, "n", o) - (based ? map_u64(f, "bn", o) : 0));
        }
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
    json_t *out, *chosen, *f, *v;
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
    /* A name may be held by fields of several types (written concurrently,
     * or again after a delete): the visible one written last is shown. */
    chosen = json_object();
    f = json_object_get(s, "f");
    json_object_foreach(f, k, v) {
        char name[FIELD_KEY_LEN];
        json_t *have;

        if (gtab__u64(v, "u") <= dl)
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(k, ":"), k);
        have = json_object_get(chosen, name);
        if (field_shown_over(v, have))
            json_object_set(chosen, name, v);
    }
    out = json_object();
    json_object_foreach(chosen, k, v) json_object_set_new(out, k, render_field(v));
    json_decref(chosen);
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

/* A copy of the crdt state <cur> with its fields under typed keys.  The
 * top level is a shallow copy: its members are only ever replaced. */
static json_t *crdt_copy(const json_t *cur)
{
    json_t *s = json_copy((json_t *)cur);

    json_object_set_new(s, "f", fields_merge(json_object_get(cur, "f"), NULL));
    return s;
}

/* A delete at <dl> by <origin> (version <hlc>) of the crdt state <cur>:
 * it observes what was written up to <bound> (counter contributions whose
 * epoch started by then: their baseline becomes what is seen; set adds at
 * or before it: removed) and hides the item up to <dl>. */
static json_t *crdt_observe(const json_t *cur, uint64_t hlc, const char *origin, uint64_t dl, uint64_t bound)
{
    json_t *s = crdt_copy(cur), *f, *v, *x, *dots;
    const char *k, *o, *e;

    set_u64(s, "h", hlc);
    json_object_set_new(s, "o", json_string(origin));
    if (gtab__u64(s, "dl") < dl)
        set_u64(s, "dl", dl);
    f = json_object_get(s, "f");
    json_object_foreach(f, k, v) {
        char t = str(v, "t")[0];
        if (t == 'n') {
            /* Origins with increments, then with decrements: one in both
             * gets the same baseline twice. */
            for (size_t m = 0; m < 2; m++)
                json_object_foreach(json_object_get(v, counter_maps[m]), o, x) {
                    if (map_u64(v, "e", o) > bound)
                        continue; /* started after what this delete covers */
                    put_u64(v, "be", o, map_u64(v, "e", o));
                    put_u64(v, "bp", o, map_u64(v, "p", o));
                    put_u64(v, "bn", o, map_u64(v, "n", o));
                }
        } else if (t == 's') {
            json_t *rems = json_object_get(v, "r");
            json_object_foreach(json_object_get(v, "a"), e, dots) {
                json_t *rd = json_object_get(rems, e);
                json_object_foreach(dots, o, x) {
                    uint64_t at = gtab__u64(dots, o);
                    if (at > bound || at <= gtab__u64(rd, o))
                        continue;
                    if (rd == NULL) {
                        rd = json_object();
                        json_object_set_new(rems, e, rd);
                    }
                    set_u64(rd, o, at);
                }
            }
        }
    }
    return s;
}

json_t *gtab_state_crdt_delete(const json_t *cur, uint64_t hlc, const char *origin)
{
    return crdt_observe(cur, hlc, origin, hlc, UINT64_MAX);
}

json_t *gtab__state_crdt_expire(const json_t *cur, uint64_t hlc, const char *origin, int64_t exp_ms)
{
    /* Everything written before the expiry, and only that: the last HLC of
     * the millisecond before it.  Every region that expires the item uses
     * the same bound, whenever its sweep runs, so a write made elsewhere
     * after the expiry stays.  An item written after its own expiry
     * without a new one (a TTL set in the past, a clock far behind) is
     * expired whole: it would otherwise stay expired and be expired again
     * at every sweep. */
    uint64_t bound = exp_ms > 0 ? ((uint64_t)exp_ms << 16) - 1 : 0;

    if (gtab__u64(cur, "u") > bound)
        bound = gtab__u64(cur, "u");
    return crdt_observe(cur, hlc, origin, bound, bound);
}

int gtab__state_inert(const json_t *s)
{
    json_t *f, *v, *x, *dots;
    const char *k, *o, *e;

    if (s == NULL || kind_of(s) != 'c' || gtab__state_live(s))
        return 0;
    f = json_object_get(s, "f");
    json_object_foreach(f, k, v) {
        char t = str(v, "t")[0];
        if (t == 'n') {
            for (size_t m = 0; m < 2; m++) /* origins with increments, with decrements */
                json_object_foreach(json_object_get(v, counter_maps[m]), o, x) {
                    if (counter_counts(v, o))
                        return 0;
                }
        } else if (t == 's') {
            json_object_foreach(json_object_get(v, "a"), e, dots) {
                json_t *rems = json_object_get(json_object_get(v, "r"), e);
                json_object_foreach(dots, o, x) {
                    if (gtab__u64(dots, o) > gtab__u64(rems, o))
                        return 0;
                }
            }
        }
    }
    return 1;
}

static const char *type_name(char t)
{
    return t == 'n' ? "a counter" : t == 's' ? "a set" : "a register";
}

/* The field <name> of <fields> (typed keys) as type <t>, created if absent.
 * The op is refused when a reader sees the name as another type (the field
 * shown, as gtab_state_render picks it); a deleted name is free again. */
static json_t *field_for(json_t *fields, const char *name, char t, uint64_t dl, size_t i, char *err,
                         int *rc)
{
    static const char types[] = "nrs";
    char key[FIELD_KEY_LEN];
    const json_t *shown = NULL;
    json_t *f;

    for (const char *x = types; *x; x++) {
        snprintf(key, sizeof(key), "%s:%c", name, *x);
        f = json_object_get(fields, key);
        if (f != NULL && gtab__u64(f, "u") > dl && field_shown_over(f, shown))
            shown = f;
    }
    if (shown != NULL && str(shown, "t")[0] != t) {
        *rc = mr_seterr(err, MR_ECONSTRAINT, "op %zu: field \"%s\" is %s, not %s", i + 1, name,
                        type_name(str(shown, "t")[0]), type_name(t));
        return NULL;
    }
    snprintf(key, sizeof(key), "%s:%c", name, t);
    if ((f = json_object_get(fields, key)) != NULL)
        return f;
    if (json_object_size(fields) >= GTAB_MAX_FIELDS) {
        *rc = mr_seterr(err, MR_ETOOBIG, "op %zu: an item has at most %d fields", i + 1, GTAB_MAX_FIELDS);
        return NULL;
    }
    f = json_object();
    json_object_set_new(f, "t", json_string(t == 'n' ? "n" : t == 's' ? "s" : "r"));
    if (t == 'n') {
        for (size_t m = 0; m < N_COUNTER_MAPS; m++)
            json_object_set_new(f, counter_maps[m], json_object());
    } else if (t == 's') {
        json_object_set_new(f, "a", json_object());
        json_object_set_new(f, "r", json_object());
    }
    json_object_set_new(fields, key, f);
    return f;
}

static int apply_op(json_t *fields, uint64_t dl, const json_t *op, size_t i, uint64_t hlc,
                    const char *origin, char *err)
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
        if ((f = field_for(fields, name, 's', dl, i, err, &rc)) == NULL) {
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
        if ((f = field_for(fields, name, 'n', dl, i, err, &rc)) == NULL)
            return rc;
        /* A region whose contribution no longer counts (it never had one,
         * a delete or an expiry observed all of it, or its item was
         * collected) starts a new epoch from 0: older copies of its
         * contribution, still held elsewhere, must not mask the new one,
         * and a delete that observed only the old epoch leaves it alone. */
        if (!counter_counts(f, origin)) {
            for (size_t m = 0; m < N_COUNTER_MAPS; m++) /* nor does a baseline of the old epoch */
                put_u64(f, counter_maps[m], origin, 0);
            put_u64(f, "e", origin, hlc);
        }
        part = n >= 0 ? "p" : "n";
        have = map_u64(f, part, origin);
        if (have > (uint64_t)INT64_MAX / 2)
            return mr_seterr(err, MR_ETOOBIG, "op %zu: counter \"%s\" would overflow", i + 1, name);
        put_u64(f, part, origin, have + (uint64_t)(n >= 0 ? n : -n));
    } else if (!strcmp(kind, "set")) {
        if (by || value == NULL)
            return mr_seterr(err, MR_EINVAL, "op %zu: set needs \"value\" (any JSON) and no \"by\"", i + 1);
        if ((f = field_for(fields, name, 'r', dl, i, err, &rc)) == NULL)
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
        s = crdt_copy(cur);
    } else {
        s = json_object();
        json_object_set_new(s, "k", json_string("c"));
        set_u64(s, "dl", 0);
        json_object_set_new(s, "f", json_object());
    }
    fields = json_object_get(s, "f");
    n = json_array_size(ops);
    for (i = 0; i < n; i++) {
        rc = apply_op(fields, gtab__u64(s, "dl"), json_array_get(ops, i), i, hlc, origin, err);
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
