/* check.c -- the game day's verdicts: pure functions of the history (what
 * clients saw) and the final state of every region (gameday.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gameday.h"

struct verdict {
    json_t *failures;
    int64_t listed[6];
};

enum { V_LOST, V_DUP, V_OVERSOLD, V_CARTS, V_RYW, V_UNREAD };

static void fail(struct verdict *v, int check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct verdict *v, int check, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (v->listed[check]++ >= GD_MAX_LISTED)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    json_array_append_new(v->failures, json_string(line));
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The region's orders by ref, and per session how many.  An order without
 * a ref, or a ref stored twice, counts as a duplicate in *bad. */
static json_t *index_orders(const json_t *region, json_t **per_session, int64_t *bad,
                            struct verdict *v)
{
    json_t *by_ref = json_object(), *o;
    size_t i;

    *per_session = json_object();
    json_array_foreach(json_object_get(region, "orders"), i, o) {
        const char *ref = str(o, "ref"), *session = str(o, "session");
        if (!*ref) {
            (*bad)++;
            fail(v, V_DUP, "region %s: order #%zu has no ref", str(region, "name"), i);
            continue;
        }
        if (json_object_get(by_ref, ref) && ++*bad)
            fail(v, V_DUP, "region %s: order %s is stored twice", str(region, "name"), ref);
        json_object_set(by_ref, ref, o);
        json_object_set_new(*per_session, session,
                            json_integer(json_integer_value(json_object_get(*per_session, session)) + 1));
    }
    return by_ref;
}

/* lost: an acknowledged order missing in a region (counted once per order). */
static int64_t check_lost(const json_t *history, json_t *const *by_ref, const json_t *regions,
                          struct verdict *v)
{
    int64_t lost = 0;
    size_t i, r;
    json_t *o, *region;

    json_array_foreach(json_object_get(history, "acked_orders"), i, o) {
        int missing = 0;
        json_array_foreach(regions, r, region) {
            if (json_object_get(by_ref[r], str(o, "ref")))
                continue;
            missing = 1;
            fail(v, V_LOST, "order %s (session %.12s, acknowledged) is missing in %s", str(o, "ref"),
                 str(o, "session"), str(region, "name"));
        }
        lost += missing;
    }
    return lost;
}

/* duplicates: more orders for a session in a region than that session's
 * checkouts could have placed (the largest excess over the regions). */
static int64_t check_duplicates(const json_t *history, json_t *const *per_session,
                                 const json_t *regions, struct verdict *v)
{
    const json_t *attempts = json_object_get(history, "attempts");
    int64_t worst = 0;
    size_t r;
    json_t *region, *n;
    const char *session;

    json_array_foreach(regions, r, region) {
        int64_t excess = 0;
        json_object_foreach(per_session[r], session, n) {
            int64_t have = json_integer_value(n);
            int64_t may = json_integer_value(json_object_get(attempts, session));
            if (have <= may)
                continue;
            excess += have - may;
            fail(v, V_DUP, "region %s: session %.12s has %lld orders from %lld checkouts",
                 str(region, "name"), session, (long long)have, (long long)may);
        }
        if (excess > worst)
            worst = excess;
    }
    return worst;
}

/* oversold: a sku whose stock is negative, or differs from the initial stock
 * minus what the region's orders took (counted once per sku and region). */
static int64_t check_stock(const json_t *state, json_t *const *by_ref, const json_t *regions,
                           struct verdict *v)
{
    const json_t *initial = json_object_get(state, "initial_stock");
    int64_t bad = 0;
    size_t r, k;
    json_t *region, *o, *l, *n;
    const char *ref, *sku;

    json_array_foreach(regions, r, region) {
        json_t *taken = json_object();
        const json_t *stock = json_object_get(region, "stock");
        json_object_foreach(by_ref[r], ref, o)
            json_array_foreach(json_object_get(o, "lines"), k, l) {
                json_int_t q = json_integer_value(json_object_get(l, "qty"));
                sku = str(l, "sku");
                json_object_set_new(taken, sku,
                                    json_integer(json_integer_value(json_object_get(taken, sku)) + q));
            }
        json_object_foreach((json_t *)initial, sku, n) {
            json_t *now = json_object_get(stock, sku);
            int64_t want = json_integer_value(n) - json_integer_value(json_object_get(taken, sku));
            if (!json_is_integer(now)) {
                bad++;
                fail(v, V_OVERSOLD, "region %s: no stock figure for %s", str(region, "name"), sku);
            } else if (json_integer_value(now) < 0 || json_integer_value(now) != want) {
                bad++;
                fail(v, V_OVERSOLD, "region %s: %s stock %lld, expected %lld (initial %lld minus %lld ordered)",
                     str(region, "name"), sku, (long long)json_integer_value(now), (long long)want,
                     (long long)json_integer_value(n),
                     (long long)json_integer_value(json_object_get(taken, sku)));
            }
        }
        /* Orders of a sku that was never in the catalog. */
        json_object_foreach(taken, sku, n)
            if (!json_object_get(initial, sku)) {
                bad++;
                fail(v, V_OVERSOLD, "region %s: %lld of %s ordered, which the catalog never had",
                     str(region, "name"), (long long)json_integer_value(n), sku);
            }
        json_decref(taken);
    }
    return bad;
}

static int array_has(const json_t *a, const char *s)
{
    size_t i;
    json_t *x;

    json_array_foreach(a, i, x)
        if (json_is_string(x) && strcmp(json_string_value(x), s) == 0)
            return 1;
    return 0;
}

/* 1 when <region> holds an order of <session> with a line of <sku> that
 * the client was never told about (not in acked_orders): a checkout whose
 * answer was lost (a timeout, a 504) that did commit, and so took <sku> out
 * of the cart.  The add is then accounted for, not lost. */
static int unacked_order_took(const json_t *history, const json_t *region, const char *session, const char *sku)
{
    const json_t *acked = json_object_get(history, "acked_orders"), *o, *a, *l;
    size_t i, k;

    json_array_foreach(json_object_get(region, "orders"), i, o) {
        int known = 0;
        if (strcmp(str(o, "session"), session) != 0)
            continue;
        json_array_foreach(acked, k, a)
            if (strcmp(str(a, "ref"), str(o, "ref")) == 0) {
                known = 1;
                break;
            }
        if (known)
            continue;
        json_array_foreach(json_object_get(o, "lines"), k, l)
            if (strcmp(str(l, "sku"), sku) == 0)
                return 1;
    }
    return 0;
}

/* carts: digests differ between regions, or an acknowledged add is missing
 * from a region's copy of the cart (and no order the client did not hear
 * of took it). */
static int64_t check_carts(const json_t *history, const json_t *regions, struct verdict *v)
{
    const json_t *first = json_array_get(regions, 0);
    int64_t bad = 0;
    size_t r, i;
    json_t *region, *skus, *sku;
    const char *session;

    json_array_foreach(regions, r, region) {
        if (r > 0 && strcmp(str(region, "carts_digest"), str(first, "carts_digest")) != 0) {
            bad++;
            fail(v, V_CARTS, "carts digest of %s (%s) differs from %s's (%s)", str(region, "name"),
                 str(region, "carts_digest"), str(first, "name"), str(first, "carts_digest"));
        }
        json_object_foreach(json_object_get(history, "cart_adds"), session, skus) {
            const json_t *cart = json_object_get(json_object_get(region, "carts"), session);
            json_array_foreach(skus, i, sku) {
                if (array_has(cart, json_string_value(sku)) ||
                    unacked_order_took(history, region, session, json_string_value(sku)))
                    continue;
                bad++;
                fail(v, V_CARTS, "region %s: cart %.12s lost its acknowledged %s", str(region, "name"),
                     session, json_string_value(sku));
            }
        }
    }
    return bad;
}

json_t *gd_check(const json_t *history, const json_t *state)
{
    struct verdict v = {json_array(), {0}};
    const json_t *regions = json_object_get(state, "regions");
    size_t n = json_array_size(regions), i;
    json_t **by_ref, **per_session, *ryw, *x, *out;
    int64_t lost = 0, dup = 0, stored_twice = 0, oversold = 0, carts = 0, unread = 0;

    if (!json_is_object(history) || !json_is_object(state) || n == 0) {
        json_array_append_new(v.failures, json_string("no history or no region state to check"));
        return json_pack("{s:i,s:i,s:i,s:i,s:i,s:o}", "lost_orders", -1, "duplicate_orders", -1,
                         "oversold", -1, "carts_unconverged", -1, "ryw_violations", -1, "failures",
                         v.failures);
    }
    /* A region whose state could not be read proves nothing either way:
     * the checks that need it say -1 (not verified), never "lost". */
    json_array_foreach(regions, i, x) {
        size_t k;
        json_t *line;
        json_array_foreach(json_object_get(x, "unread"), k, line) {
            unread++;
            fail(&v, V_UNREAD, "region %s: could not read its %s", str(x, "name"), json_string_value(line));
        }
    }
    ryw = json_object_get(history, "ryw_violations");
    json_array_foreach(ryw, i, x)
        fail(&v, V_RYW, "stale read: %s", json_string_value(x) ? json_string_value(x) : "?");
    if (unread > 0)
        return json_pack("{s:i,s:i,s:i,s:i,s:I,s:o}", "lost_orders", -1, "duplicate_orders", -1, "oversold",
                         -1, "carts_unconverged", -1, "ryw_violations", (json_int_t)json_array_size(ryw),
                         "failures", v.failures);
    by_ref = calloc(n, sizeof(*by_ref));
    per_session = calloc(n, sizeof(*per_session));
    for (i = 0; i < n; i++)
        by_ref[i] = index_orders(json_array_get(regions, i), &per_session[i], &stored_twice, &v);
    lost = check_lost(history, by_ref, regions, &v);
    dup = check_duplicates(history, per_session, regions, &v) + stored_twice;
    oversold = check_stock(state, by_ref, regions, &v);
    carts = check_carts(history, regions, &v);
    for (i = 0; i < n; i++) {
        json_decref(by_ref[i]);
        json_decref(per_session[i]);
    }
    free(by_ref);
    free(per_session);
    out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "lost_orders", (json_int_t)lost, "duplicate_orders",
                    (json_int_t)dup, "oversold", (json_int_t)oversold, "carts_unconverged",
                    (json_int_t)carts, "ryw_violations", (json_int_t)json_array_size(ryw),
                    "failures", v.failures);
    return out;
}
