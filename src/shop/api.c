/* api.c -- the shop's actions and its JSON API under /api/ (docs/shop.md).
 *
 * Each action is a short chain of node calls.  The data paths follow the
 * seed: the catalog is read `eventual` (cacheable), stock on the product
 * page `strong`, the cart is a crdt item written locally in the region, the
 * checkout is one SQL transaction with an idempotency key and is answered
 * only after its commit, and order history is a `session` read carrying the
 * shopper's token.  Pages (pages.c) call the same actions and render the
 * JSON they produce. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "shop_int.h"

/* ---- helpers ------------------------------------------------------------------- */

void shop__deliver(struct shop_req *r, int status, json_t *j, const char *cache_control, enum shop_view v)
{
    if (!r->html) {
        shop__respond_json(r, status, j, cache_control);
        return;
    }
    shop__page_render(r, status, j, cache_control, v);
    json_decref(j);
}

/* The node could not be asked, or did not answer usefully. */
static void unavailable(struct shop_req *r, const char *what, const char *err)
{
    char msg[MR_ERRMSG_LEN + 128];

    snprintf(msg, sizeof(msg), "region %s cannot %s right now (%s); please try again in a moment",
             r->s->cfg->region, what, err && *err ? err : "its database did not answer");
    shop__respond_error(r, 503, "region_unavailable", msg);
}

/* A node answer that is not 200: 5xx and no answer are the region being
 * unavailable; a 4xx here is the shop's own mistake or a catalog that was
 * never seeded. */
static void node_failed(struct shop_req *r, const char *what, int rc, int status, json_t *body,
                        const char *err)
{
    char msg[MR_ERRMSG_LEN + 64];

    if (rc != 0 || status >= 500) {
        unavailable(r, what, rc ? err : shop__node_error(body));
        return;
    }
    if (strcmp(shop__node_error_code(body), "sql_error") == 0 ||
        strstr(shop__node_error(body), "no table named")) {
        snprintf(msg, sizeof(msg), "the shop's data is not set up in region %s (run `meridian shop seed`): %s",
                 r->s->cfg->region, shop__node_error(body));
        shop__respond_error(r, 503, "not_seeded", msg);
        return;
    }
    mr_log(MR_LOG_ERROR, "shop", "%s: node answered %d: %s", what, status, shop__node_error(body));
    snprintf(msg, sizeof(msg), "%s: the region's database refused the request: %s", what, shop__node_error(body));
    shop__respond_error(r, 500, "internal", msg);
}

static json_t *product_json(json_t *row)
{
    return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "sku", json_array_get(row, 0), "name", json_array_get(row, 1),
                     "description", json_array_get(row, 2), "price_cents", json_array_get(row, 3), "stock",
                     json_array_get(row, 4));
}

static int64_t expires_at(const struct shop_req *r)
{
    return mr_now_ms() / 1000 + r->s->cfg->session_ttl_ms / 1000;
}

static char *item_path(const char *table, const char *sid, const char *suffix)
{
    return mr_asprintf("/v1/tables/%s/items/%s%s", table, sid, suffix);
}

/* ---- catalog ------------------------------------------------------------------------- */

static void products_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0), *list = json_array(), *row;
    char cc[160];
    size_t i;

    if (rc != 0 || status != 200 || rows == NULL) {
        json_decref(list);
        node_failed(r, "show the catalog", rc, status, body, err);
        return;
    }
    json_array_foreach(rows, i, row) json_array_append_new(list, product_json(row));
    shop__catalog_cc(r->s, cc, sizeof(cc));
    shop__deliver(r,
                  200,
                  json_pack("{s:o,s:s,s:I,s:I,s:O?,s:O?}", "products", list, "query", r->q, "page", (json_int_t)r->n1,
                            "per_page", (json_int_t)r->n2, "total",
                            json_array_get(json_array_get(shop__rows(body, 1), 0), 0), "staleness_ms",
                            json_object_get(body, "staleness_ms") ? json_object_get(body, "staleness_ms")
                                                                  : json_null()),
                  cc, VIEW_CATALOG);
}

void shop__act_products(struct shop_req *r)
{
    char *pat = shop__like_pattern(r->q);
    json_t *st = json_pack(
        "[{s:s,s:[s,I,I]},{s:s,s:[s]}]", "sql",
        "SELECT sku, name, description, price_cents, stock FROM products WHERE name LIKE ?1 ESCAPE '\\' "
        "ORDER BY sku LIMIT ?2 OFFSET ?3",
        "params", pat, (json_int_t)r->n2, (json_int_t)((r->n1 - 1) * r->n2), "sql",
        "SELECT count(*) FROM products WHERE name LIKE ?1 ESCAPE '\\'", "params", pat);

    mr_free(pat);
    if (shop__sql(r, st, "eventual", NULL, TOK_NONE, products_done) != 0)
        unavailable(r, "show the catalog", "stopping");
}

static void product_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0), *p;
    char cc[160], msg[128];

    if (rc != 0 || status != 200 || rows == NULL) {
        node_failed(r, "show this product", rc, status, body, err);
        return;
    }
    if (json_array_size(rows) == 0) {
        snprintf(msg, sizeof(msg), "no product with sku '%s'", r->arg);
        shop__respond_error(r, 404, "not_found", msg);
        return;
    }
    p = product_json(json_array_get(rows, 0));
    json_object_set_new(p, "stock_consistency", json_string("strong"));
    if (r->flag) { /* the live stock only: never cached */
        shop__deliver(r, 200, json_pack("{s:s,s:O?,s:s}", "sku", r->arg, "stock", json_object_get(p, "stock"),
                                         "consistency", "strong"),
                      NULL, VIEW_STOCK);
        json_decref(p);
        return;
    }
    shop__catalog_cc(r->s, cc, sizeof(cc));
    shop__deliver(r, 200, json_pack("{s:o}", "product", p), cc, VIEW_PRODUCT);
}

/* One strong read: the product and its stock as of now (linearizable). */
void shop__act_product(struct shop_req *r)
{
    json_t *st = json_pack("[{s:s,s:[s]}]", "sql",
                           "SELECT sku, name, description, price_cents, stock FROM products WHERE sku = ?",
                           "params", r->arg);

    if (shop__sql(r, st, "strong", NULL, TOK_NONE, product_done) != 0)
        unavailable(r, "show this product", "stopping");
}

/* ---- cart ------------------------------------------------------------------------------ */

static json_t *cart_json(struct shop_req *r)
{
    json_t *items = json_array();
    int64_t total = 0;
    int complete = 1;

    for (size_t i = 0; i < r->cart.n; i++) {
        struct shop_line *l = &r->cart.lines[i];
        json_t *it = json_pack("{s:s,s:I}", "sku", l->sku, "quantity", (json_int_t)l->qty);
        if (l->name[0]) {
            json_object_set_new(it, "name", json_string(l->name));
            json_object_set_new(it, "price_cents", json_integer(l->price_cents));
            json_object_set_new(it, "line_total_cents", json_integer(l->price_cents * l->qty));
            json_object_set_new(it, "stock", json_integer(l->stock));
            total += l->price_cents * l->qty;
        } else {
            complete = 0;
        }
        json_array_append_new(items, it);
    }
    return json_pack("{s:s?,s:o,s:I,s:s,s:I,s:I,s:I,s:s?}", "session", r->sid[0] ? r->sid : NULL, "items", items,
                     "lines", (json_int_t)r->cart.n, "version", r->cart.version, "total_cents",
                     (json_int_t)(complete ? total : -1), "max_lines", (json_int_t)r->s->cfg->max_lines,
                     "max_qty", (json_int_t)r->s->cfg->max_qty, "last_order",
                     r->cart.last_order[0] ? r->cart.last_order : NULL);
}

/* Step 2 of shop__cart_load: names, prices and stock of the lines. */
static void cart_details_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0), *row;
    shop_node_cb then = r->next;
    size_t i;

    /* Without details the cart still shows (skus and quantities). */
    if (rc == 0 && status == 200 && rows) {
        json_array_foreach(rows, i, row) {
            struct shop_line *l = shop__cart_find(&r->cart, json_string_value(json_array_get(row, 0)) ?: "");
            if (l == NULL)
                continue;
            snprintf(l->name, sizeof(l->name), "%s", json_string_value(json_array_get(row, 1)) ?: "");
            l->price_cents = json_integer_value(json_array_get(row, 2));
            l->stock = json_integer_value(json_array_get(row, 3));
        }
    }
    then(r, 0, 200, NULL, err);
}

static void cart_item_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    shop_node_cb then = r->next;
    json_t *st, *params;
    struct mr_buf sql;

    if (rc != 0 || (status != 200 && status != 404)) {
        then(r, rc ? rc : MR_EUNAVAIL, status, body, rc ? err : shop__node_error(body));
        return;
    }
    shop__cart_clear(&r->cart);
    shop__cart_parse(status == 200 ? json_object_get(body, "item") : NULL, r->s->cfg->max_qty, &r->cart);
    if (r->cart.n == 0 || !r->flag) {
        then(r, 0, 200, NULL, "");
        return;
    }
    mr_buf_init(&sql);
    mr_buf_puts(&sql, "SELECT sku, name, price_cents, stock FROM products WHERE sku IN (");
    params = json_array();
    for (size_t i = 0; i < r->cart.n; i++) {
        mr_buf_puts(&sql, i ? ",?" : "?");
        json_array_append_new(params, json_string(r->cart.lines[i].sku));
    }
    mr_buf_putc(&sql, ')');
    st = json_pack("[{s:s,s:o}]", "sql", sql.data, "params", params);
    mr_buf_close(&sql);
    if (shop__sql(r, st, "eventual", NULL, TOK_NONE, cart_details_done) != 0)
        then(r, MR_ECLOSED, 0, NULL, "stopping");
}

/* Read the session's cart (with the shopper's token: read-your-writes in
 * any region, or the region's own cart when the writes the token names are
 * out of reach) into r->cart, then the products of its lines when
 * <details>; then call <then> with rc 0, or the failure. */
static void cart_load(struct shop_req *r, int details, shop_node_cb then)
{
    char *path;
    int rc;

    r->next = then;
    r->flag = details;
    if (!r->sid[0] || (r->new_sid && !r->wrote)) {
        shop__cart_clear(&r->cart);
        shop__cart_parse(NULL, r->s->cfg->max_qty, &r->cart);
        then(r, 0, 200, NULL, "");
        return;
    }
    path = item_path(SHOP_CARTS_TABLE, r->sid, "");
    rc = shop__node_call(r, "GET", path, NULL, TOK_SEND_FALLBACK, cart_item_done);
    mr_free(path);
    if (rc != 0)
        then(r, MR_ECLOSED, 0, NULL, "stopping");
}

static void cart_show(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    if (rc != 0) {
        node_failed(r, "show your cart", rc, status, body, err);
        return;
    }
    shop__deliver(r, 200, cart_json(r), NULL, VIEW_CART);
}

void shop__act_cart_get(struct shop_req *r)
{
    cart_load(r, 1, cart_show);
}

static void cart_written(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    if (rc != 0 || status != 200) {
        if (rc == 0 && (status == 409 || status == 413)) {
            char msg[MR_ERRMSG_LEN + 64];
            snprintf(msg, sizeof(msg), "your cart cannot take this change: %s", shop__node_error(body));
            shop__respond_error(r, 409, "cart_limit", msg);
            return;
        }
        node_failed(r, "change your cart", rc, status, body, err);
        return;
    }
    /* Show the cart as it is now: this region has applied our write. */
    r->wrote = 1;
    cart_load(r, 1, cart_show);
}

static void cart_ops_send(struct shop_req *r)
{
    char *path = item_path(SHOP_CARTS_TABLE, r->sid, "/ops"), *text = json_dumps(r->res, JSON_COMPACT);
    int rc;

    json_decref(r->res);
    r->res = NULL;
    rc = shop__node_call(r, "POST", path, text, TOK_SEND_MERGE, cart_written);
    free(text);
    mr_free(path);
    if (rc != 0)
        unavailable(r, "change your cart", "stopping");
}

static void session_saved(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    if (rc != 0 || status != 200) {
        node_failed(r, "start your session", rc, status, body, err);
        return;
    }
    cart_ops_send(r);
}

/* Write the session document: a new session's defaults, or the same
 * preferences with a later expiry. */
static void session_save(struct shop_req *r, json_t *old)
{
    const char *c = json_string_value(json_object_get(old, "currency"));
    const char *l = json_string_value(json_object_get(old, "language"));
    json_t *doc = json_pack("{s:s,s:s,s:I}", "currency", c && shop__currency_valid(c) ? c : "USD", "language",
                            l && shop__language_valid(l) ? l : "en", SHOP_TTL_FIELD, (json_int_t)expires_at(r));
    char *text = json_dumps(doc, JSON_COMPACT), *path = item_path(SHOP_SESSIONS_TABLE, r->sid, "");
    int rc;

    json_decref(doc);
    rc = shop__node_call(r, "PUT", path, text, TOK_SEND_MERGE, session_saved);
    free(text);
    mr_free(path);
    if (rc != 0)
        unavailable(r, "change your cart", "stopping");
}

static void session_checked(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *item = json_object_get(body, "item");
    int64_t exp = json_integer_value(json_object_get(item, SHOP_TTL_FIELD));

    if (rc != 0 || (status != 200 && status != 404)) {
        node_failed(r, "change your cart", rc, status, body, err);
        return;
    }
    /* Activity keeps the session alive: rewrite it (same preferences) once
     * half of its time to live has passed, or when it has expired. */
    if (status == 404 || exp < mr_now_ms() / 1000 + r->s->cfg->session_ttl_ms / 2000)
        session_save(r, item);
    else
        cart_ops_send(r);
}

/* Write the cart ops in r->res, after making sure the session document
 * exists and is not about to expire. */
static void cart_write(struct shop_req *r)
{
    char *path;
    int rc;

    if (r->new_sid) {
        session_save(r, NULL);
        return;
    }
    path = item_path(SHOP_SESSIONS_TABLE, r->sid, "");
    rc = shop__node_call(r, "GET", path, NULL, TOK_SEND_FALLBACK, session_checked);
    mr_free(path);
    if (rc != 0)
        unavailable(r, "change your cart", "stopping");
}

static void cart_set_checked(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0);
    struct shop_line *l;
    int64_t target;
    char msg[160];

    if (rc != 0 || status != 200 || rows == NULL) {
        node_failed(r, "change your cart", rc, status, body, err);
        return;
    }
    if (json_array_size(rows) == 0) {
        snprintf(msg, sizeof(msg), "no product with sku '%s'", r->arg);
        shop__respond_error(r, 404, "not_found", msg);
        return;
    }
    l = shop__cart_find(&r->cart, r->arg);
    target = r->n2 ? (l ? l->qty : 0) + r->n1 : r->n1;
    if (target > r->s->cfg->max_qty) {
        snprintf(msg, sizeof(msg), "at most %" PRId64 " of one product per order (you asked for %" PRId64 ")",
                 r->s->cfg->max_qty, target);
        shop__respond_error(r, 409, "quantity_limit", msg);
        return;
    }
    if (l == NULL && target > 0 && r->cart.n >= (size_t)r->s->cfg->max_lines) {
        snprintf(msg, sizeof(msg), "a cart holds at most %" PRId64 " different products", r->s->cfg->max_lines);
        shop__respond_error(r, 409, "cart_full", msg);
        return;
    }
    r->res = shop__cart_ops_set(&r->cart, r->arg, target < 0 ? 0 : target, expires_at(r));
    cart_write(r);
}

static void cart_set_loaded(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *st;

    if (rc != 0) {
        node_failed(r, "change your cart", rc, status, body, err);
        return;
    }
    if (r->n1 <= 0 && !r->n2) { /* removal needs no catalog check */
        json_t *fake = json_pack("{s:[{s:[[i]]}]}", "results", "rows", 1);
        cart_set_checked(r, 0, 200, fake, "");
        json_decref(fake);
        return;
    }
    st = json_pack("[{s:s,s:[s]}]", "sql", "SELECT stock FROM products WHERE sku = ?", "params", r->arg);
    if (shop__sql(r, st, "eventual", NULL, TOK_NONE, cart_set_checked) != 0)
        unavailable(r, "change your cart", "stopping");
}

void shop__act_cart_set(struct shop_req *r)
{
    r->n2 = r->flag; /* cart_load uses flag */
    shop__ensure_session(r);
    cart_load(r, 0, cart_set_loaded);
}

static void cart_empty_loaded(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    if (rc != 0) {
        node_failed(r, "empty your cart", rc, status, body, err);
        return;
    }
    if (r->cart.n == 0) {
        shop__deliver(r, 200, cart_json(r), NULL, VIEW_CART);
        return;
    }
    r->res = shop__cart_ops_empty(&r->cart, expires_at(r));
    cart_write(r);
}

void shop__act_cart_empty(struct shop_req *r)
{
    cart_load(r, 0, cart_empty_loaded);
}

/* ---- checkout ---------------------------------------------------------------------------- */

static json_t *order_from_cart(struct shop_req *r, json_t *row)
{
    json_t *lines = json_array();

    for (size_t i = 0; i < r->cart.n; i++)
        json_array_append_new(lines, json_pack("{s:s,s:I}", "sku", r->cart.lines[i].sku, "quantity",
                                               (json_int_t)r->cart.lines[i].qty));
    return json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:o,s:s}", "ref", r->ref, "id", json_array_get(row, 0), "total_cents",
                     json_array_get(row, 1), "items", json_array_get(row, 2), "created_at",
                     json_array_get(row, 3), "lines", lines, "region", r->s->cfg->region);
}

static void checkout_answer(struct shop_req *r)
{
    json_t *order = r->res2;

    r->res2 = NULL;
    shop__deliver(r, 200, json_pack("{s:o,s:b}", "order", order, "replayed", r->n2 != 0), NULL, VIEW_CHECKOUT);
}

static void checkout_cart_cleared(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    /* The order is placed whatever happens here: say so.  A cart that could
     * not be emptied still shows its lines, and checking it out again
     * replays this order (same idempotency key). */
    if (rc != 0 || status != 200)
        mr_log(MR_LOG_WARN, "shop", "order %s placed, but emptying cart %s failed: %s", r->ref, r->sid,
               rc ? err : shop__node_error(body));
    checkout_answer(r);
}

static void out_of_stock_sent(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    (void)body;
    (void)err;
    if (rc != 0 || status != 200)
        mr_log(MR_LOG_WARN, "shop", "cart %.8s...: could not count a refused checkout", r->sid);
    shop__respond_error(r, 409, "out_of_stock", json_string_value(r->res));
}

static void out_of_stock_answer(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    struct shop_line *l = &r->cart.lines[r->n1];
    json_t *rows = shop__rows(body, 0);
    char msg[400], *path;

    (void)err;
    r->s->stats.out_of_stock++;
    if (rc == 0 && status == 200 && json_array_size(rows) == 1) {
        int64_t left = json_integer_value(json_array_get(json_array_get(rows, 0), 1));
        snprintf(msg, sizeof(msg), "out of stock: only %" PRId64 " of \"%s\" (%s) left, your cart asks for %" PRId64
                 "; nothing was ordered and nothing was charged",
                 left, json_string_value(json_array_get(json_array_get(rows, 0), 0)) ?: l->sku, l->sku, l->qty);
    } else {
        snprintf(msg, sizeof(msg), "out of stock: not enough of %s for your cart (%" PRId64 "); nothing was ordered",
                 l->sku, l->qty);
    }
    /* Count the refusal in the cart: the next checkout of the same cart is
     * a new attempt (stock may have come back), not a replay of this one. */
    json_decref(r->res);
    r->res = json_string(msg);
    path = item_path(SHOP_CARTS_TABLE, r->sid, "/ops");
    rc = shop__node_call(r, "POST", path, "{\"ops\":[{\"op\":\"increment\",\"field\":\"attempts\",\"by\":1}]}",
                         TOK_SEND_MERGE, out_of_stock_sent);
    mr_free(path);
    if (rc != 0)
        shop__respond_error(r, 409, "out_of_stock", msg);
}

static void checkout_committed(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows, *ops;
    char *path, *text;
    int n;

    if (rc != 0 || status >= 500) {
        char msg[MR_ERRMSG_LEN + 200];
        snprintf(msg, sizeof(msg), "region %s could not confirm your order (%s). It may or may not have been "
                 "placed: checking out again is safe and never places it twice",
                 r->s->cfg->region, rc ? err : shop__node_error(body));
        shop__respond_error(r, 503, "region_unavailable", msg);
        return;
    }
    r->n2 = json_is_true(json_object_get(body, "replayed"));
    if (status == 409) {
        n = shop__failed_statement(shop__node_error(body));
        if (n >= 1 && (size_t)n <= r->cart.n && strstr(shop__node_error(body), "CHECK")) {
            json_t *st;
            /* Which line, and how many are left: a strong read, so the
             * message is true now. */
            r->n1 = n - 1;
            st = json_pack("[{s:s,s:[s]}]", "sql", "SELECT name, stock FROM products WHERE sku = ?", "params",
                           r->cart.lines[n - 1].sku);
            if (shop__sql(r, st, "strong", NULL, TOK_NONE, out_of_stock_answer) != 0)
                out_of_stock_answer(r, MR_ECLOSED, 0, NULL, "");
            return;
        }
        if ((size_t)n == 2 * r->cart.n + 2) {
            /* Another order was placed from this cart (a retry or a tab
             * whose answer was lost, in another region), and emptying the
             * cart has not reached this region yet: placing this one too
             * would sell those lines twice. */
            r->s->stats.cart_changed++;
            shop__respond_error(r, 409, "cart_changed",
                                "an order from this cart was placed moments ago (another tab, or a retry): "
                                "your cart is still catching up; review it and check out again; nothing more "
                                "was ordered");
            return;
        }
        if (n > (int)r->cart.n && (size_t)n <= 2 * r->cart.n) {
            char msg[160];
            snprintf(msg, sizeof(msg), "your cart holds %s, which is no longer sold; remove it and check out again",
                     r->cart.lines[n - 1 - r->cart.n].sku);
            shop__respond_error(r, 409, "unknown_product", msg);
            return;
        }
    }
    rows = shop__rows(body, 2 * r->cart.n);
    if (status != 200 || json_array_size(rows) != 1) {
        node_failed(r, "place your order", rc, status, body, err);
        return;
    }
    r->res2 = order_from_cart(r, json_array_get(rows, 0));
    if (r->n2) {
        r->s->stats.checkout_replays++;
        checkout_answer(r);
        return;
    }
    r->s->stats.orders++;
    mr_log(MR_LOG_INFO, "shop", "order %s placed: %zu lines, session %.8s...", r->ref, r->cart.n, r->sid);
    ops = shop__cart_ops_checkout(&r->cart, r->ref, expires_at(r));
    text = json_dumps(ops, JSON_COMPACT);
    json_decref(ops);
    path = item_path(SHOP_CARTS_TABLE, r->sid, "/ops");
    rc = shop__node_call(r, "POST", path, text, TOK_SEND_MERGE, checkout_cart_cleared);
    free(text);
    mr_free(path);
    if (rc != 0)
        checkout_answer(r);
}

static void order_by_ref_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0), *lines = json_array(), *row, *o;
    size_t i;

    if (rc != 0 || status != 200 || rows == NULL) {
        json_decref(lines);
        node_failed(r, "find your order", rc, status, body, err);
        return;
    }
    if (json_array_size(rows) != 1) {
        json_decref(lines);
        shop__respond_error(r, 409, "empty_cart", "your cart is empty: add something before checking out");
        return;
    }
    row = json_array_get(rows, 0);
    json_array_foreach(shop__rows(body, 1), i, o)
        json_array_append_new(lines, json_pack("{s:O?,s:O?}", "sku", json_array_get(o, 0), "quantity",
                                               json_array_get(o, 1)));
    r->res2 = json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:o,s:O?}", "ref", r->cart.last_order, "id", json_array_get(row, 0),
                        "total_cents", json_array_get(row, 1), "items", json_array_get(row, 2), "created_at",
                        json_array_get(row, 3), "lines", lines, "region", json_array_get(row, 4));
    r->n2 = 1;
    r->s->stats.checkout_replays++;
    checkout_answer(r);
}

static void checkout_loaded(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *st;
    char msg[160];

    if (rc != 0) {
        node_failed(r, "read your cart", rc, status, body, err);
        return;
    }
    if (r->cart.n == 0) {
        /* Already checked out (a double click, or a retry elsewhere after
         * the first attempt was committed): answer with that order. */
        if (r->cart.last_order[0] && (!r->want_version[0] || strcmp(r->want_version, r->cart.version) != 0)) {
            st = json_pack("[{s:s,s:[s,s]},{s:s,s:[s]}]", "sql",
                           "SELECT id, total_cents, n_items, created_at, region FROM orders WHERE ref = ?1 AND "
                           "session = ?2",
                           "params", r->cart.last_order, r->sid, "sql",
                           "SELECT sku, qty FROM order_lines WHERE order_ref = ? ORDER BY line_no", "params",
                           r->cart.last_order);
            if (shop__sql(r, st, r->have_tok ? "session" : "strong", NULL, TOK_SEND, order_by_ref_done) != 0)
                unavailable(r, "find your order", "stopping");
            return;
        }
        shop__respond_error(r, 409, "empty_cart", "your cart is empty: add something before checking out");
        return;
    }
    if (r->want_version[0] && strcmp(r->want_version, r->cart.version) != 0) {
        r->s->stats.cart_changed++;
        shop__respond_error(r, 409, "cart_changed",
                            "your cart changed since you last looked at it (another tab or device?): "
                            "review it and check out again; nothing was ordered");
        return;
    }
    if (r->cart.n > (size_t)r->s->cfg->max_lines) {
        snprintf(msg, sizeof(msg), "a cart holds at most %" PRId64 " different products", r->s->cfg->max_lines);
        shop__respond_error(r, 409, "cart_full", msg);
        return;
    }
    shop__checkout_ids(r->sid, &r->cart, r->key, r->ref);
    st = shop__checkout_statements(&r->cart, r->ref, r->sid, r->s->cfg->region);
    if (shop__sql(r, st, NULL, r->key, TOK_SEND_MERGE, checkout_committed) != 0)
        unavailable(r, "place your order", "stopping");
}

void shop__act_checkout(struct shop_req *r)
{
    if (!r->sid[0]) {
        shop__respond_error(r, 409, "empty_cart", "your cart is empty: add something before checking out");
        return;
    }
    cart_load(r, 0, checkout_loaded);
}

/* ---- orders -------------------------------------------------------------------------------- */

static void orders_done(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *rows = shop__rows(body, 0), *lines = shop__rows(body, 1), *list = json_array(), *row, *l;
    size_t i, j;

    if (rc != 0 || status != 200 || rows == NULL) {
        json_decref(list);
        if (rc == 0 && status == 503 && strcmp(shop__node_error_code(body), "replica_behind") == 0) {
            unavailable(r, "show your latest orders yet", "its copy is still catching up");
            return;
        }
        node_failed(r, "show your orders", rc, status, body, err);
        return;
    }
    json_array_foreach(rows, i, row) {
        json_t *ol = json_array();
        const char *ref = json_string_value(json_array_get(row, 1));
        json_array_foreach(lines, j, l) {
            if (ref && json_string_value(json_array_get(l, 0)) && !strcmp(ref, json_string_value(json_array_get(l, 0))))
                json_array_append_new(ol, json_pack("{s:O?,s:O?,s:O?,s:O?}", "sku", json_array_get(l, 1), "name",
                                                    json_array_get(l, 2), "quantity", json_array_get(l, 3),
                                                    "unit_price_cents", json_array_get(l, 4)));
        }
        json_array_append_new(list, json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:o}", "id", json_array_get(row, 0), "ref",
                                              json_array_get(row, 1), "region", json_array_get(row, 2),
                                              "total_cents", json_array_get(row, 3), "items",
                                              json_array_get(row, 4), "created_at", json_array_get(row, 5),
                                              "lines", ol));
    }
    shop__deliver(r, 200, json_pack("{s:o,s:s}", "orders", list, "consistency", r->have_tok ? "session" : "eventual"),
                  NULL, VIEW_ORDERS);
}

/* A `session` read with the shopper's token: the order just placed is there,
 * whichever region serves the page. */
void shop__act_orders(struct shop_req *r)
{
    json_t *st;

    if (!r->sid[0]) {
        shop__deliver(r, 200, json_pack("{s:[],s:s}", "orders", "consistency", "eventual"), NULL, VIEW_ORDERS);
        return;
    }
    st = json_pack("[{s:s,s:[s]},{s:s,s:[s]}]", "sql",
                   "SELECT id, ref, region, total_cents, n_items, created_at FROM orders WHERE session = ?1 "
                   "ORDER BY id DESC LIMIT 20",
                   "params", r->sid, "sql",
                   "SELECT l.order_ref, l.sku, l.name, l.qty, l.unit_price_cents FROM order_lines l JOIN "
                   "(SELECT ref FROM orders WHERE session = ?1 ORDER BY id DESC LIMIT 20) o ON o.ref = l.order_ref "
                   "ORDER BY l.order_ref, l.line_no",
                   "params", r->sid);
    if (shop__sql(r, st, r->have_tok ? "session" : "eventual", NULL, TOK_SEND, orders_done) != 0)
        unavailable(r, "show your orders", "stopping");
}

/* ---- session and preferences --------------------------------------------------------------- */

static void session_read(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *item = json_object_get(body, "item");
    const char *cur = json_string_value(json_object_get(item, "currency"));
    const char *lang = json_string_value(json_object_get(item, "language"));

    if (rc != 0 || (status != 200 && status != 404)) {
        node_failed(r, "read your session", rc, status, body, err);
        return;
    }
    shop__deliver(r, 200,
                  json_pack("{s:s?,s:s,s:s,s:O?}", "session", r->sid[0] ? r->sid : NULL, "currency",
                            cur && shop__currency_valid(cur) ? cur : "USD", "language",
                            lang && shop__language_valid(lang) ? lang : "en", SHOP_TTL_FIELD,
                            json_object_get(item, SHOP_TTL_FIELD)),
                  NULL, VIEW_SESSION);
}

void shop__act_session_get(struct shop_req *r)
{
    char *path;
    int rc;

    if (!r->sid[0]) {
        session_read(r, 0, 404, NULL, "");
        return;
    }
    path = item_path(SHOP_SESSIONS_TABLE, r->sid, "");
    rc = shop__node_call(r, "GET", path, NULL, TOK_SEND_FALLBACK, session_read);
    mr_free(path);
    if (rc != 0)
        unavailable(r, "read your session", "stopping");
}

static void session_written(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    if (rc != 0 || status != 200) {
        node_failed(r, "save your preferences", rc, status, body, err);
        return;
    }
    shop__deliver(r, 200,
                  json_pack("{s:s,s:s,s:s,s:I}", "session", r->sid, "currency", r->currency, "language",
                            r->language, SHOP_TTL_FIELD, (json_int_t)expires_at(r)),
                  NULL, VIEW_SESSION);
}

/* Preferences are a whole lww document: the last writer wins everywhere. */
void shop__act_session_set(struct shop_req *r)
{
    json_t *doc;
    char *path, *text;
    int rc;

    shop__ensure_session(r);
    doc = json_pack("{s:s,s:s,s:I}", "currency", r->currency, "language", r->language, SHOP_TTL_FIELD,
                    (json_int_t)expires_at(r));
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    path = item_path(SHOP_SESSIONS_TABLE, r->sid, "");
    rc = shop__node_call(r, "PUT", path, text, TOK_SEND_MERGE, session_written);
    free(text);
    mr_free(path);
    if (rc != 0)
        unavailable(r, "save your preferences", "stopping");
}

/* ---- the JSON API: argument parsing ---------------------------------------------------------- */

static int get_int(struct shop_req *r, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out)
{
    char buf[32], msg[128];

    *out = def;
    if (!shop__form(r->query, name, buf, sizeof(buf)))
        return 0;
    if (mr_parse_i64(buf, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "query parameter '%s': expected an integer from %" PRId64 " to %" PRId64, name,
                 min, max);
        shop__respond_error(r, 400, "invalid_request", msg);
        return -1;
    }
    return 0;
}

/* Parse the product listing's query (?q=&page=&per_page=); 0 or answered. */
int shop__parse_listing(struct shop_req *r);
int shop__parse_listing(struct shop_req *r)
{
    r->q[0] = '\0';
    if (shop__form(r->query, "q", r->q, sizeof(r->q)) == 0 && strstr(r->query, "q=")) {
        shop__respond_error(r, 400, "invalid_request", "query parameter 'q': at most 100 bytes");
        return -1;
    }
    if (get_int(r, "page", 1, 1, 100000, &r->n1) != 0 ||
        get_int(r, "per_page", r->s->cfg->page_size, 1, 100, &r->n2) != 0)
        return -1;
    return 0;
}

static json_t *json_body(struct shop_req *r, int required)
{
    json_error_t jerr;
    json_t *j;
    char msg[200];

    if (r->body_len == 0 && !required)
        return json_object();
    j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        snprintf(msg, sizeof(msg), "body must be a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
        json_decref(j);
        shop__respond_error(r, 400, "invalid_request", msg);
        return NULL;
    }
    return j;
}

/* Only the listed members: a misspelt field must not be silently ignored. */
static int only_fields(struct shop_req *r, json_t *j, const char *const *allowed)
{
    const char *k;
    json_t *v;
    char msg[160];

    json_object_foreach(j, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, k) == 0;
        if (!ok) {
            snprintf(msg, sizeof(msg), "unknown field \"%.40s\"", k);
            shop__respond_error(r, 400, "invalid_request", msg);
            return -1;
        }
    }
    return 0;
}

static int sku_arg(struct shop_req *r, const char *s)
{
    char msg[160];

    if (s == NULL || !shop__sku_valid(s)) {
        snprintf(msg, sizeof(msg), "sku must be 1 to %d characters a-z, 0-9 or '-'", SHOP_SKU_MAX);
        shop__respond_error(r, 400, "invalid_request", msg);
        return -1;
    }
    snprintf(r->arg, sizeof(r->arg), "%s", s);
    return 0;
}

static void api_cart_post(struct shop_req *r)
{
    static const char *const allowed[] = {"sku", "quantity", "add", NULL};
    json_t *j = json_body(r, 1), *q, *a;
    char msg[160];

    if (j == NULL || only_fields(r, j, allowed) != 0 || sku_arg(r, json_string_value(json_object_get(j, "sku"))) != 0) {
        json_decref(j);
        return;
    }
    q = json_object_get(j, "quantity");
    a = json_object_get(j, "add");
    if ((q && a) || (q && (!json_is_integer(q) || json_integer_value(q) < 0 ||
                           json_integer_value(q) > r->s->cfg->max_qty)) ||
        (a && (!json_is_integer(a) || json_integer_value(a) < -r->s->cfg->max_qty ||
               json_integer_value(a) > r->s->cfg->max_qty || json_integer_value(a) == 0))) {
        snprintf(msg, sizeof(msg), "give either \"quantity\" (0 to %" PRId64 ", the line's new quantity) or \"add\" "
                 "(a nonzero change of at most %" PRId64 ")", r->s->cfg->max_qty, r->s->cfg->max_qty);
        json_decref(j);
        shop__respond_error(r, 400, "invalid_request", msg);
        return;
    }
    r->flag = q == NULL;
    r->n1 = q ? json_integer_value(q) : a ? json_integer_value(a) : 1;
    json_decref(j);
    shop__act_cart_set(r);
}

void shop__api(struct shop_req *r)
{
    const char *p = r->path + 4; /* after "/api" */
    int get = !strcmp(r->method, "GET") || r->head;

    if (!strcmp(p, "/products")) {
        r->route = SR_PRODUCTS;
        if (!get)
            goto not_allowed;
        if (shop__parse_listing(r) == 0)
            shop__act_products(r);
    } else if (!strncmp(p, "/products/", 10)) {
        char sku[SHOP_SKU_MAX + 8];
        const char *rest = p + 10, *slash = strchr(rest, '/');
        r->route = SR_PRODUCT;
        if (slash && strcmp(slash, "/stock") == 0) {
            r->route = SR_STOCK;
            r->flag = 1;
        } else if (slash) {
            goto not_found;
        }
        {
            size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
            snprintf(sku, sizeof(sku), "%.*s", (int)(len > SHOP_SKU_MAX + 1 ? SHOP_SKU_MAX + 1 : len), rest);
        }
        if (!get)
            goto not_allowed;
        if (sku_arg(r, sku) == 0)
            shop__act_product(r);
    } else if (!strcmp(p, "/cart/items") || !strcmp(p, "/cart")) {
        r->route = SR_CART;
        if (get) {
            shop__act_cart_get(r);
        } else if (!strcmp(r->method, "POST")) {
            api_cart_post(r);
        } else if (!strcmp(r->method, "DELETE")) {
            char sku[SHOP_SKU_MAX + 2];
            if (!shop__form(r->query, "sku", sku, sizeof(sku))) {
                shop__act_cart_empty(r);
            } else if (sku_arg(r, sku) == 0) {
                r->flag = 0;
                r->n1 = 0;
                shop__act_cart_set(r);
            }
        } else {
            goto not_allowed;
        }
    } else if (!strcmp(p, "/checkout")) {
        static const char *const allowed[] = {"cart_version", NULL};
        json_t *j, *v;
        r->route = SR_CHECKOUT;
        if (strcmp(r->method, "POST") != 0)
            goto not_allowed;
        if ((j = json_body(r, 0)) == NULL)
            return;
        if (only_fields(r, j, allowed) != 0) {
            json_decref(j);
            return;
        }
        v = json_object_get(j, "cart_version");
        if (v && (!json_is_string(v) || strlen(json_string_value(v)) != SHOP_VERSION_LEN - 1)) {
            json_decref(j);
            shop__respond_error(r, 400, "invalid_request", "cart_version must be the 16-character version "
                                "GET /api/cart/items returned");
            return;
        }
        if (v)
            snprintf(r->want_version, sizeof(r->want_version), "%s", json_string_value(v));
        json_decref(j);
        shop__act_checkout(r);
    } else if (!strcmp(p, "/orders")) {
        r->route = SR_ORDERS;
        if (!get)
            goto not_allowed;
        shop__act_orders(r);
    } else if (!strcmp(p, "/session")) {
        r->route = SR_SESSION;
        if (get) {
            shop__act_session_get(r);
        } else if (!strcmp(r->method, "POST")) {
            static const char *const allowed[] = {"currency", "language", NULL};
            json_t *j = json_body(r, 1);
            const char *c, *l;
            if (j == NULL || only_fields(r, j, allowed) != 0) {
                json_decref(j);
                return;
            }
            c = json_string_value(json_object_get(j, "currency"));
            l = json_string_value(json_object_get(j, "language"));
            if ((c && !shop__currency_valid(c)) || (l && !shop__language_valid(l)) ||
                (json_object_get(j, "currency") && !c) || (json_object_get(j, "language") && !l)) {
                json_decref(j);
                shop__respond_error(r, 400, "invalid_request", "currency must be USD, EUR, GBP, SGD or JPY; "
                                    "language en, de, fr or ja");
                return;
            }
            snprintf(r->currency, sizeof(r->currency), "%s", c ? c : "USD");
            snprintf(r->language, sizeof(r->language), "%s", l ? l : "en");
            json_decref(j);
            shop__act_session_set(r);
        } else {
            goto not_allowed;
        }
    } else {
        goto not_found;
    }
    return;
not_found:
    shop__respond_error(r, 404, "not_found", "no such path under /api (see docs/shop.md)");
    return;
not_allowed:
    shop__respond_error(r, 405, "method_not_allowed", "this path does not answer this method");
}
