/* cart.c -- the cart as a crdt item, and the checkout transaction: pure
 * functions from JSON to JSON (tests/unit/shop/test_cart.c).
 *
 * A quantity change is sent as an increment by the difference from the
 * counter the shop observed, so changes made at the same moment in two
 * regions add up instead of one overwriting the other; a line's removal is
 * an observed-remove of its sku plus the opposite increment, so an add made
 * concurrently elsewhere survives (add wins) with its own quantity. */
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "shop_int.h"

static int line_cmp(const void *a, const void *b)
{
    return strcmp(((const struct shop_line *)a)->sku, ((const struct shop_line *)b)->sku);
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void shop__cart_clear(struct shop_cart *c)
{
    mr_free(c->lines);
    json_decref(c->counters);
    memset(c, 0, sizeof(*c));
}

void shop__cart_parse(const json_t *item, int64_t max_qty, struct shop_cart *c)
{
    json_t *skus = json_object_get(item, "skus"), *v;
    const char *k;
    size_t i;
    struct mr_buf b;
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];

    memset(c, 0, sizeof(*c));
    c->counters = json_object();
    json_object_foreach((json_t *)item, k, v) {
        if (strncmp(k, "q-", 2) == 0 && json_is_integer(v))
            json_object_set(c->counters, k, v);
    }
    if (json_is_string(json_object_get(item, "last_order")))
        snprintf(c->last_order, sizeof(c->last_order), "%s",
                 json_string_value(json_object_get(item, "last_order")));
    c->attempts = json_integer_value(json_object_get(item, "attempts"));
    c->lines = mr_calloc(json_array_size(skus) + 1, sizeof(*c->lines));
    json_array_foreach(skus, i, v) {
        const char *sku = json_string_value(v);
        struct shop_line *l;
        if (sku == NULL || !shop__sku_valid(sku))
            continue; /* not written by a shop: ignore rather than fail the cart */
        l = &c->lines[c->n++];
        snprintf(l->sku, sizeof(l->sku), "%s", sku);
        l->counter = shop__cart_counter(c, sku);
        l->qty = l->counter < 1 ? 1 : l->counter > max_qty ? max_qty : l->counter;
        l->stock = -1;
    }
    qsort(c->lines, c->n, sizeof(*c->lines), line_cmp);
    mr_buf_init(&b);
    shop__cart_canonical(c, &b);
    SHA256((const unsigned char *)(b.data ? b.data : ""), b.len, d);
    hex_of(d, SHA256_DIGEST_LENGTH, hex);
    snprintf(c->version, sizeof(c->version), "%.16s", hex);
    mr_buf_close(&b);
}

struct shop_line *shop__cart_find(const struct shop_cart *c, const char *sku)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->lines[i].sku, sku) == 0)
            return &c->lines[i];
    return NULL;
}

int64_t shop__cart_counter(const struct shop_cart *c, const char *sku)
{
    char field[SHOP_SKU_MAX + 3];

    snprintf(field, sizeof(field), "q-%s", sku);
    return json_integer_value(json_object_get(c->counters, field));
}

void shop__cart_canonical(const struct shop_cart *c, struct mr_buf *b)
{
    for (size_t i = 0; i < c->n; i++)
        mr_buf_printf(b, "%s*%" PRId64 ";", c->lines[i].sku, c->lines[i].qty);
}

void shop__checkout_ids(const char *sid, const struct shop_cart *c, char key[SHOP_KEY_LEN],
                        char ref[SHOP_REF_LEN])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    struct mr_buf b;

    mr_buf_init(&b);
    mr_buf_printf(&b, "%s|%s|%" PRId64 "|", sid, c->last_order, c->attempts);
    shop__cart_canonical(c, &b);
    SHA256((const unsigned char *)b.data, b.len, d);
    mr_buf_close(&b);
    hex_of(d, SHA256_DIGEST_LENGTH, hex);
    snprintf(key, SHOP_KEY_LEN, "checkout-%.40s", hex);
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(ref, SHOP_REF_LEN, "M-%.4s-%.4s-%.4s", hex, hex + 4, hex + 8);
}

static void op_push(json_t *ops, const char *op, const char *field, json_t *value, int64_t by)
{
    json_t *o = json_pack("{s:s,s:s}", "op", op, "field", field);

    if (value)
        json_object_set_new(o, "value", value);
    else
        json_object_set_new(o, "by", json_integer(by));
    json_array_append_new(ops, o);
}

static json_t *ops_new(json_t **ops)
{
    *ops = json_array();
    return json_pack("{s:o}", "ops", *ops);
}

json_t *shop__cart_ops_set(const struct shop_cart *c, const char *sku, int64_t qty, int64_t expires)
{
    char field[SHOP_SKU_MAX + 3];
    int64_t cnt = shop__cart_counter(c, sku);
    json_t *ops, *doc = ops_new(&ops);

    snprintf(field, sizeof(field), "q-%s", sku);
    if (qty <= 0) {
        if (shop__cart_find(c, sku)) {
            op_push(ops, "remove", "skus", json_string(sku), 0);
            if (cnt != 0)
                op_push(ops, "increment", field, NULL, -cnt);
        }
    } else {
        op_push(ops, "add", "skus", json_string(sku), 0);
        if (qty - cnt != 0)
            op_push(ops, "increment", field, NULL, qty - cnt);
    }
    op_push(ops, "set", SHOP_TTL_FIELD, json_integer(expires), 0);
    return doc;
}

json_t *shop__cart_ops_empty(const struct shop_cart *c, int64_t expires)
{
    json_t *ops, *doc = ops_new(&ops);
    char field[SHOP_SKU_MAX + 3];

    for (size_t i = 0; i < c->n; i++) {
        snprintf(field, sizeof(field), "q-%s", c->lines[i].sku);
        op_push(ops, "remove", "skus", json_string(c->lines[i].sku), 0);
        if (c->lines[i].counter != 0)
            op_push(ops, "increment", field, NULL, -c->lines[i].counter);
    }
    op_push(ops, "set", SHOP_TTL_FIELD, json_integer(expires), 0);
    return doc;
}

json_t *shop__cart_ops_checkout(const struct shop_cart *c, const char *ref, int64_t expires)
{
    json_t *doc = shop__cart_ops_empty(c, expires);

    op_push(json_object_get(doc, "ops"), "set", "last_order", json_string(ref), 0);
    return doc;
}

/* One transaction, all or nothing (docs/shop.md):
 *   statements 1..n     UPDATE products SET stock = stock - qty: the CHECK
 *                       (stock >= 0) refuses to sell what is not there
 *   statements n+1..2n  the order's lines, name and price read inside the
 *                       transaction (NOT NULL fails for an unknown sku)
 *   statement 2n+1      the order, total computed from its lines */
json_t *shop__checkout_statements(const struct shop_cart *c, const char *ref, const char *sid,
                                  const char *region)
{
    json_t *st = json_array();

    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(st, json_pack("{s:s,s:[I,s]}", "sql",
                                            "UPDATE products SET stock = stock - ? WHERE sku = ?", "params",
                                            (json_int_t)c->lines[i].qty, c->lines[i].sku));
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(
            st, json_pack("{s:s,s:[s,I,s,I]}", "sql",
                          "INSERT INTO order_lines(order_ref, line_no, sku, name, qty, unit_price_cents) "
                          "VALUES (?1, ?2, ?3, (SELECT name FROM products WHERE sku = ?3), ?4, "
                          "(SELECT price_cents FROM products WHERE sku = ?3))",
                          "params", ref, (json_int_t)(i + 1), c->lines[i].sku, (json_int_t)c->lines[i].qty));
    json_array_append_new(
        st, json_pack("{s:s,s:[s,s,s]}", "sql",
                      "INSERT INTO orders(ref, session, region, currency, total_cents, n_items, created_at) "
                      "VALUES (?1, ?2, ?3, 'USD', "
                      "(SELECT sum(qty * unit_price_cents) FROM order_lines WHERE order_ref = ?1), "
                      "(SELECT sum(qty) FROM order_lines WHERE order_ref = ?1), "
                      "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) RETURNING id, total_cents, n_items, created_at",
                      "params", ref, sid, region));
    /* Last, so that the statements above keep their numbers in errors. */
    json_array_append_new(st, json_pack("{s:s,s:[s,s,s]}", "sql",
                                        "INSERT INTO checkouts(session, after_order, ref) VALUES (?1, ?2, ?3)",
                                        "params", sid, c->last_order, ref));
    return st;
}
