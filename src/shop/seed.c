/* seed.c -- `meridian shop seed`: the global tables, the SQL schema and a
 * generated catalog, idempotently (docs/shop.md).
 *
 * Idempotent three ways: the tables are declared with PUT (same spec: no
 * change), the schema uses CREATE ... IF NOT EXISTS, and each batch of
 * products is one write with a fixed idempotency key whose rows are
 * INSERT ... ON CONFLICT(sku) DO NOTHING, so that seeding again, even after
 * the keys are forgotten, never resets stock that orders have taken.
 * Blocking (http_fetch): for the command line and `meridian up`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/err.h"
#include "../http/http.h"
#include "shop_int.h"

#define SEED_BATCH 100
#define SEED_TIMEOUT_MS 30000

static const char *const adjectives[] = {"Alpine", "Coastal", "Urban", "Nordic", "Desert", "Harbor", "Summit",
                                         "Meadow", "Granite", "Cedar", "Monsoon", "Aurora", "Canyon",
                                         "Lagoon", "Tundra"};
static const char *const materials[] = {"Wool", "Linen", "Leather", "Bamboo", "Canvas", "Ceramic", "Copper",
                                        "Oak", "Cotton", "Steel"};
static const char *const items[] = {"Scarf", "Backpack", "Mug", "Notebook", "Lamp", "Jacket", "Bottle",
                                    "Blanket", "Wallet", "Tote", "Teapot", "Watch", "Cap", "Chair",
                                    "Kettle", "Journal", "Sneakers", "Bowl", "Umbrella", "Gloves"};
#define N_ADJ (sizeof(adjectives) / sizeof(adjectives[0]))
#define N_MAT (sizeof(materials) / sizeof(materials[0]))
#define N_ITEM (sizeof(items) / sizeof(items[0]))

/* SplitMix64: a fixed, portable sequence (every seeding writes the same rows). */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void shop_catalog_product(int i, char sku[SHOP_SKU_MAX + 1], char name[96], char desc[320],
                          int64_t *price_cents, int64_t *stock)
{
    uint64_t h = mix((uint64_t)i);
    const char *adj = adjectives[(size_t)i % N_ADJ];
    const char *mat = materials[((size_t)i / N_ADJ) % N_MAT];
    const char *item = items[((size_t)i / (N_ADJ * N_MAT) + (size_t)i) % N_ITEM];

    snprintf(sku, SHOP_SKU_MAX + 1, "mr-%04d", i + 1);
    snprintf(name, 96, "%s %s %s", adj, mat, item);
    {
        char m[32], it[32];
        snprintf(m, sizeof(m), "%s", mat);
        snprintf(it, sizeof(it), "%s", item);
        m[0] = (char)(m[0] - 'A' + 'a');
        it[0] = (char)(it[0] - 'A' + 'a');
        snprintf(desc, 320, "%s-style %s made of %s, for everyday use in every region. Ships from the "
                 "nearest warehouse; item %d of the Meridian reference catalog.",
                 adj, it, m, i + 1);
    }
    *price_cents = 499 + (int64_t)(h % 200) * 100;
    /* Mostly well stocked, some scarce: out-of-stock is part of the demo. */
    *stock = (h >> 32) % 10 == 0 ? (int64_t)((h >> 40) % 5) + 1 : 20 + (int64_t)((h >> 40) % 180);
}

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS products ("
    "id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL, "
    "price_cents INTEGER NOT NULL CHECK (price_cents >= 0), stock INTEGER NOT NULL CHECK (stock >= 0))",
    "CREATE INDEX IF NOT EXISTS products_name ON products(name)",
    "CREATE TABLE IF NOT EXISTS orders ("
    "id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE, session TEXT NOT NULL, region TEXT NOT NULL, "
    "currency TEXT NOT NULL, total_cents INTEGER NOT NULL CHECK (total_cents >= 0), "
    "n_items INTEGER NOT NULL CHECK (n_items > 0), created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orders_session ON orders(session, id)",
    "CREATE TABLE IF NOT EXISTS order_lines ("
    "order_ref TEXT NOT NULL, line_no INTEGER NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, "
    "qty INTEGER NOT NULL CHECK (qty > 0), unit_price_cents INTEGER NOT NULL, "
    "PRIMARY KEY (order_ref, line_no))",
    /* One order per cart state: a checkout records the order its cart came
     * after (the cart's last_order), so a second checkout from a cart whose
     * clearing has not reached this region yet is refused (decision 012). */
    "CREATE TABLE IF NOT EXISTS checkouts ("
    "session TEXT NOT NULL, after_order TEXT NOT NULL, ref TEXT NOT NULL, "
    "PRIMARY KEY (session, after_order))",
};

/* One call (<body> borrowed); 0 when the status is <ok1> or <ok2>. */
static int call(const char *node_url, const char *token, const char *method, const char *path, json_t *body,
                int ok1, int ok2, char *err)
{
    char *url = mr_asprintf("%s%s", node_url, path), *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char headers[MR_AUTH_HEADER_MAX + 64];
    struct http_result res;
    int rc;

    mr_auth_header(token, headers, sizeof(headers));
    if (text)
        strcat(headers, "Content-Type: application/json\r\n");
    rc = http_fetch(method, url, headers[0] ? headers : NULL, text, text ? strlen(text) : 0,
                    SEED_TIMEOUT_MS, &res, err);
    free(text);
    if (rc != 0) {
        mr_wraperr(err, rc, "%s %s", method, url);
        mr_free(url);
        return rc;
    }
    if (res.status != ok1 && res.status != ok2)
        rc = mr_seterr(err, res.status >= 500 ? MR_EUNAVAIL : MR_EPROTO, "%s %s: %d %.*s", method, url, res.status,
                       (int)(res.body.len > 160 ? 160 : res.body.len), res.body.data ? res.body.data : "");
    http_result_close(&res);
    mr_free(url);
    return rc;
}

static int put_table(const char *node_url, const char *token, const char *name, const char *kind, char *err)
{
    json_t *spec = json_pack("{s:s,s:s}", "kind", kind, "ttl_field", SHOP_TTL_FIELD);
    char path[96];
    int rc;

    snprintf(path, sizeof(path), "/v1/tables/%s", name);
    rc = call(node_url, token, "PUT", path, spec, 200, 201, err);
    json_decref(spec);
    return rc;
}

static int sql(const char *node_url, const char *token, json_t *statements, const char *key, char *err)
{
    json_t *req = json_pack("{s:o,s:s}", "statements", statements, "idempotency_key", key);
    int rc = call(node_url, token, "POST", "/v1/sql", req, 200, 200, err);

    json_decref(req);
    return rc;
}

int shop_seed(const char *node_url, const char *token, int n_products, FILE *log, char *err)
{
    json_t *st;
    char key[64];
    int rc;

    if (n_products < 1 || n_products > 9999)
        return mr_seterr(err, MR_EINVAL, "products: expected 1 to 9999, found %d", n_products);
    if ((rc = put_table(node_url, token, SHOP_SESSIONS_TABLE, "lww", err)) != 0 ||
        (rc = put_table(node_url, token, SHOP_CARTS_TABLE, "crdt", err)) != 0)
        return mr_wraperr(err, rc, "declare the global tables");
    if (log)
        fprintf(log, "tables: %s (lww, ttl %s), %s (crdt, ttl %s)\n", SHOP_SESSIONS_TABLE, SHOP_TTL_FIELD,
                SHOP_CARTS_TABLE, SHOP_TTL_FIELD);
    st = json_array();
    for (size_t i = 0; i < sizeof(schema) / sizeof(schema[0]); i++)
        json_array_append_new(st, json_pack("{s:s}", "sql", schema[i]));
    if ((rc = sql(node_url, token, st, "shop-seed-schema-v1", err)) != 0)
        return mr_wraperr(err, rc, "create the schema");
    for (int b = 0; b * SEED_BATCH < n_products; b++) {
        st = json_array();
        for (int i = b * SEED_BATCH; i < n_products && i < (b + 1) * SEED_BATCH; i++) {
            char sku[SHOP_SKU_MAX + 1], name[96], desc[320];
            int64_t price, stock;
            shop_catalog_product(i, sku, name, desc, &price, &stock);
            json_array_append_new(st, json_pack("{s:s,s:[s,s,s,I,I]}", "sql",
                                                "INSERT INTO products(sku, name, description, price_cents, stock) "
                                                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sku) DO NOTHING",
                                                "params", sku, name, desc, (json_int_t)price, (json_int_t)stock));
        }
        /* The key names the batch's range: a seed of another size is
         * another set of writes, and ON CONFLICT keeps them harmless. */
        snprintf(key, sizeof(key), "shop-seed-products-v1-%d-%d", b * SEED_BATCH + 1,
                 (b + 1) * SEED_BATCH < n_products ? (b + 1) * SEED_BATCH : n_products);
        if ((rc = sql(node_url, token, st, key, err)) != 0)
            return mr_wraperr(err, rc, "insert products %d..", b * SEED_BATCH + 1);
    }
    if (log)
        fprintf(log, "catalog: %d products (mr-0001..mr-%04d)\n", n_products, n_products);
    return 0;
}
