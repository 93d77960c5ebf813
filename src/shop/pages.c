/* pages.c -- the shop's server-rendered HTML pages (docs/shop.md).
 *
 * No build step and no script needed to shop: plain forms posting to the
 * shop, which redirects (303) back to a page.  Every page is rendered from
 * the same JSON the API answers (api.c actions), every dynamic string goes
 * through shop__html, and every page names the region that served it.  The
 * only script is the product page's live stock, polling
 * /api/products/SKU/stock (a strong read). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "shop_int.h"

static const char css[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}"
    "header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}"
    "header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.15em}"
    ".region{margin-left:auto;background:#3b82f6;border-radius:1em;padding:.15em .8em;font-size:.85em}"
    "main{max-width:960px;margin:1.2em auto;padding:0 1em}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:.8em}"
    ".card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.8em}"
    ".price{font-weight:700}.muted{color:#667085;font-size:.9em}"
    "table{border-collapse:collapse;width:100%;background:#fff}td,th{border-bottom:1px solid #dde1e7;"
    "padding:.4em;text-align:left}.num{text-align:right}"
    ".msg{background:#fff;border-left:5px solid #e11d48;padding:1em;border-radius:4px}"
    ".ok{border-left-color:#16a34a}button{background:#1d4ed8;color:#fff;border:0;border-radius:4px;"
    "padding:.4em .9em;cursor:pointer}button.link{background:none;color:#1d4ed8;padding:0}"
    "input{padding:.3em}form.inline{display:inline}footer{color:#667085;text-align:center;margin:2em;font-size:.85em}";

static void page_start(struct shop_req *r, struct mr_buf *b, const char *title)
{
    mr_buf_printf(b, "<!doctype html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>",
                  r->language[0] ? r->language : "en");
    shop__html(b, title);
    mr_buf_printf(b, " - Meridian shop</title><style>%s</style></head><body><header>"
                  "<a class=\"brand\" href=\"/\">Meridian shop</a><a href=\"/\">Catalog</a>"
                  "<a href=\"/cart\">Cart</a><a href=\"/orders\">Orders</a><a href=\"/prefs\">Preferences</a>"
                  "<span class=\"region\" id=\"served-by\">served by region ", css);
    shop__html(b, r->s->cfg->region);
    mr_buf_puts(b, "</span></header><main>");
}

static void page_end(struct shop_req *r, struct mr_buf *b, int status, const char *cc, const char *extra)
{
    mr_buf_puts(b, "</main><footer>Meridian: every region serves, reads are local, writes are safe. This page: region ");
    shop__html(b, r->s->cfg->region);
    mr_buf_puts(b, ".</footer></body></html>\n");
    shop__respond(r, status, "text/html; charset=utf-8", b->data, b->len, cc, extra);
}

static void money(struct mr_buf *b, const struct shop_req *r, int64_t cents)
{
    char m[48];

    shop__money(m, sizeof(m), cents, r->currency[0] ? r->currency : "USD");
    shop__html(b, m);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static int64_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* ---- views ------------------------------------------------------------------------ */

static void view_catalog(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    json_t *p;
    size_t i;
    int64_t total = num(j, "total"), per = num(j, "per_page"), page = num(j, "page");

    page_start(r, b, "Catalog");
    mr_buf_puts(b, "<h1>Catalog</h1><form method=\"get\" action=\"/\"><input name=\"q\" placeholder=\"search by name\" value=\"");
    shop__html(b, str(j, "query"));
    mr_buf_puts(b, "\"> <button>Search</button></form>");
    mr_buf_printf(b, "<p class=\"muted\">%" PRId64 " products", total);
    if (str(j, "query")[0]) {
        mr_buf_puts(b, " matching &ldquo;");
        shop__html(b, str(j, "query"));
        mr_buf_puts(b, "&rdquo;");
    }
    mr_buf_puts(b, "; prices in USD.</p><div class=\"grid\">");
    json_array_foreach(json_object_get(j, "products"), i, p) {
        mr_buf_puts(b, "<div class=\"card\"><a href=\"/products/");
        shop__html(b, str(p, "sku"));
        mr_buf_puts(b, "\"><strong>");
        shop__html(b, str(p, "name"));
        mr_buf_puts(b, "</strong></a><br><span class=\"price\">");
        money(b, r, num(p, "price_cents"));
        mr_buf_printf(b, "</span> <span class=\"muted\">%" PRId64 " in stock</span><p class=\"muted\">",
                      num(p, "stock"));
        shop__html(b, str(p, "description"));
        mr_buf_puts(b, "</p></div>");
    }
    mr_buf_puts(b, "</div><p>");
    if (page > 1) {
        mr_buf_printf(b, "<a href=\"/?page=%" PRId64 "&amp;q=", page - 1);
        shop__html(b, str(j, "query"));
        mr_buf_puts(b, "\">&larr; previous</a> ");
    }
    if (page * per < total) {
        mr_buf_printf(b, "<a href=\"/?page=%" PRId64 "&amp;q=", page + 1);
        shop__html(b, str(j, "query"));
        mr_buf_puts(b, "\">next &rarr;</a>");
    }
    mr_buf_puts(b, "</p>");
}

static void view_product(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    json_t *p = json_object_get(j, "product");

    page_start(r, b, str(p, "name"));
    mr_buf_puts(b, "<h1>");
    shop__html(b, str(p, "name"));
    mr_buf_puts(b, "</h1><p>");
    shop__html(b, str(p, "description"));
    mr_buf_puts(b, "</p><p class=\"price\">");
    money(b, r, num(p, "price_cents"));
    mr_buf_printf(b, "</p><p>Stock: <strong id=\"stock\">%" PRId64 "</strong> <span class=\"muted\">(live: "
                  "checked against every region's committed orders)</span></p>", num(p, "stock"));
    mr_buf_puts(b, "<form method=\"post\" action=\"/cart/add\"><input type=\"hidden\" name=\"sku\" value=\"");
    shop__html(b, str(p, "sku"));
    mr_buf_printf(b, "\"><input type=\"number\" name=\"qty\" value=\"1\" min=\"1\" max=\"%" PRId64
                  "\"> <button>Add to cart</button></form>", r->s->cfg->max_qty);
    mr_buf_puts(b, "<script>(function(){var e=document.getElementById('stock');function f(){fetch('/api/products/");
    shop__html(b, str(p, "sku"));
    mr_buf_puts(b, "/stock').then(function(x){return x.json()}).then(function(d){if(typeof d.stock==='number')"
                   "e.textContent=d.stock}).catch(function(){})}setInterval(f,5000)})();</script>");
}

static void view_cart(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    json_t *it;
    size_t i;

    page_start(r, b, "Cart");
    mr_buf_puts(b, "<h1>Your cart</h1>");
    if (json_array_size(json_object_get(j, "items")) == 0) {
        mr_buf_puts(b, "<p>Your cart is empty. <a href=\"/\">Browse the catalog</a>.</p>");
        return;
    }
    mr_buf_puts(b, "<table><tr><th>Product</th><th>Quantity</th><th class=\"num\">Price</th>"
                   "<th class=\"num\">Line total</th><th></th></tr>");
    json_array_foreach(json_object_get(j, "items"), i, it) {
        mr_buf_puts(b, "<tr><td><a href=\"/products/");
        shop__html(b, str(it, "sku"));
        mr_buf_puts(b, "\">");
        shop__html(b, str(it, "name")[0] ? str(it, "name") : str(it, "sku"));
        mr_buf_puts(b, "</a></td><td><form class=\"inline\" method=\"post\" action=\"/cart/update\">"
                       "<input type=\"hidden\" name=\"sku\" value=\"");
        shop__html(b, str(it, "sku"));
        mr_buf_printf(b, "\"><input type=\"number\" name=\"quantity\" min=\"0\" max=\"%" PRId64 "\" value=\"%" PRId64
                      "\" style=\"width:4em\"> <button class=\"link\">update</button></form></td><td class=\"num\">",
                      r->s->cfg->max_qty, num(it, "quantity"));
        money(b, r, num(it, "price_cents"));
        mr_buf_puts(b, "</td><td class=\"num\">");
        money(b, r, num(it, "line_total_cents"));
        mr_buf_puts(b, "</td><td><form class=\"inline\" method=\"post\" action=\"/cart/remove\">"
                       "<input type=\"hidden\" name=\"sku\" value=\"");
        shop__html(b, str(it, "sku"));
        mr_buf_puts(b, "\"><button class=\"link\">remove</button></form></td></tr>");
    }
    mr_buf_puts(b, "<tr><th colspan=\"3\">Total</th><th class=\"num\">");
    if (num(j, "total_cents") >= 0)
        money(b, r, num(j, "total_cents"));
    else
        mr_buf_puts(b, "?");
    mr_buf_puts(b, "</th><th></th></tr></table><form method=\"post\" action=\"/checkout\">"
                   "<input type=\"hidden\" name=\"cart_version\" value=\"");
    shop__html(b, str(j, "version"));
    mr_buf_puts(b, "\"><p><button>Place order</button> <span class=\"muted\">charged in USD; placing it twice "
                   "never orders twice</span></p></form>");
}

static void view_checkout(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    json_t *o = json_object_get(j, "order"), *l;
    size_t i;

    page_start(r, b, "Order placed");
    mr_buf_puts(b, "<div class=\"msg ok\"><h1>Thank you: order <span id=\"order-ref\">");
    shop__html(b, str(o, "ref"));
    mr_buf_puts(b, "</span> is placed</h1><p>Total ");
    money(b, r, num(o, "total_cents"));
    mr_buf_puts(b, ", committed in the global database");
    if (json_is_true(json_object_get(j, "replayed")))
        mr_buf_puts(b, " (you had already placed it: it was not placed twice)");
    mr_buf_puts(b, ".</p></div><ul>");
    json_array_foreach(json_object_get(o, "lines"), i, l) {
        mr_buf_printf(b, "<li>%" PRId64 " &times; ", num(l, "quantity"));
        shop__html(b, str(l, "sku"));
        mr_buf_puts(b, "</li>");
    }
    mr_buf_puts(b, "</ul><p><a href=\"/orders\">Your orders</a> &middot; <a href=\"/\">Continue shopping</a></p>");
}

static void view_orders(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    json_t *o, *l;
    size_t i, k;

    page_start(r, b, "Your orders");
    mr_buf_puts(b, "<h1>Your orders</h1>");
    if (json_array_size(json_object_get(j, "orders")) == 0)
        mr_buf_puts(b, "<p>No orders yet.</p>");
    json_array_foreach(json_object_get(j, "orders"), i, o) {
        mr_buf_puts(b, "<div class=\"card\"><strong class=\"order\">");
        shop__html(b, str(o, "ref"));
        mr_buf_puts(b, "</strong> <span class=\"muted\">");
        shop__html(b, str(o, "created_at"));
        mr_buf_puts(b, ", placed in ");
        shop__html(b, str(o, "region"));
        mr_buf_puts(b, "</span> <span class=\"price\">");
        money(b, r, num(o, "total_cents"));
        mr_buf_puts(b, "</span><ul>");
        json_array_foreach(json_object_get(o, "lines"), k, l) {
            mr_buf_printf(b, "<li>%" PRId64 " &times; ", num(l, "quantity"));
            shop__html(b, str(l, "name"));
            mr_buf_puts(b, "</li>");
        }
        mr_buf_puts(b, "</ul></div>");
    }
}

static void view_session(struct shop_req *r, struct mr_buf *b, json_t *j)
{
    static const char *const curs[] = {"USD", "EUR", "GBP", "SGD", "JPY"};
    static const char *const langs[] = {"en", "de", "fr", "ja"};

    page_start(r, b, "Preferences");
    mr_buf_puts(b, "<h1>Preferences</h1><form method=\"post\" action=\"/prefs\"><p>Currency <select name=\"currency\">");
    for (size_t i = 0; i < 5; i++)
        mr_buf_printf(b, "<option%s>%s</option>", strcmp(str(j, "currency"), curs[i]) ? "" : " selected", curs[i]);
    mr_buf_puts(b, "</select> Language <select name=\"language\">");
    for (size_t i = 0; i < 4; i++)
        mr_buf_printf(b, "<option%s>%s</option>", strcmp(str(j, "language"), langs[i]) ? "" : " selected", langs[i]);
    mr_buf_puts(b, "</select> <button>Save</button></p></form><p class=\"muted\">Kept in the global "
                   "<code>sessions</code> table (last writer wins, expires by itself); cart and order pages "
                   "show prices in your currency at fixed illustrative rates.</p>");
}

void shop__page_render(struct shop_req *r, int status, json_t *j, const char *cc, enum shop_view v)
{
    struct mr_buf b;

    /* A form post is answered with a redirect to the page that shows it. */
    if (strcmp(r->method, "POST") == 0 && v != VIEW_CHECKOUT) {
        shop__redirect(r, v == VIEW_SESSION ? "/prefs" : "/cart");
        return;
    }
    mr_buf_init(&b);
    switch (v) {
    case VIEW_CATALOG: view_catalog(r, &b, j); break;
    case VIEW_PRODUCT: view_product(r, &b, j); break;
    case VIEW_CART: view_cart(r, &b, j); break;
    case VIEW_CHECKOUT: view_checkout(r, &b, j); break;
    case VIEW_ORDERS: view_orders(r, &b, j); break;
    case VIEW_SESSION: view_session(r, &b, j); break;
    default: page_start(r, &b, "Stock"); break;
    }
    page_end(r, &b, status, cc, NULL);
    mr_buf_close(&b);
}

void shop__page_error(struct shop_req *r, int status, const char *code, const char *msg, const char *extra)
{
    const char *title = "Something went wrong";
    struct mr_buf b;

    if (!strcmp(code, "out_of_stock"))
        title = "Out of stock";
    else if (!strcmp(code, "cart_changed"))
        title = "Your cart changed";
    else if (!strcmp(code, "region_unavailable") || !strcmp(code, "shutting_down"))
        title = "Region unavailable";
    else if (!strcmp(code, "empty_cart"))
        title = "Your cart is empty";
    else if (!strcmp(code, "not_found"))
        title = "Not found";
    else if (status >= 400 && status < 500)
        title = "That did not work";
    mr_buf_init(&b);
    page_start(r, &b, title);
    mr_buf_printf(&b, "<div class=\"msg\" id=\"error\" data-code=\"%s\"><h1>", code);
    shop__html(&b, title);
    mr_buf_puts(&b, "</h1><p>");
    shop__html(&b, msg);
    mr_buf_puts(&b, "</p></div><p><a href=\"/cart\">Back to your cart</a> &middot; <a href=\"/\">Catalog</a></p>");
    page_end(r, &b, status, NULL, extra && *extra ? extra : NULL);
    mr_buf_close(&b);
}

/* ---- routes ---------------------------------------------------------------------------- */

/* Private pages show prices in the session's currency: read it first. */
static void prefs_then(struct shop_req *r, int rc, int status, json_t *body, const char *err)
{
    json_t *item = json_object_get(body, "item");
    const char *c = json_string_value(json_object_get(item, "currency"));
    const char *l = json_string_value(json_object_get(item, "language"));
    void (*act)(struct shop_req *) = r->act;

    (void)rc;
    (void)status;
    (void)err;
    if (c && shop__currency_valid(c))
        snprintf(r->currency, sizeof(r->currency), "%s", c);
    if (l && shop__language_valid(l))
        snprintf(r->language, sizeof(r->language), "%s", l);
    act(r);
}

static void with_prefs(struct shop_req *r, void (*act)(struct shop_req *))
{
    char *path;
    int rc;

    if (!r->sid[0]) {
        act(r);
        return;
    }
    /* A failed preference read is not worth failing the page for. */
    r->act = act;
    path = mr_asprintf("/v1/tables/%s/items/%s", SHOP_SESSIONS_TABLE, r->sid);
    rc = shop__node_call(r, "GET", path, NULL, TOK_SEND, prefs_then);
    mr_free(path);
    if (rc != 0)
        act(r);
}

static int form_sku(struct shop_req *r)
{
    char sku[SHOP_SKU_MAX + 2];

    if (!shop__form(r->body, "sku", sku, sizeof(sku)) || !shop__sku_valid(sku)) {
        shop__respond_error(r, 400, "invalid_request", "the form did not name a valid product");
        return -1;
    }
    snprintf(r->arg, sizeof(r->arg), "%.*s", SHOP_SKU_MAX, sku);
    return 0;
}

static int form_int(struct shop_req *r, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char buf[24], msg[128];

    if (!shop__form(r->body, name, buf, sizeof(buf)) || mr_parse_i64(buf, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "%s must be a whole number from %" PRId64 " to %" PRId64, name, min, max);
        shop__respond_error(r, 400, "invalid_request", msg);
        return -1;
    }
    return 0;
}

int shop__parse_listing(struct shop_req *r);

void shop__pages(struct shop_req *r)
{
    const char *p = r->path;
    int get = !strcmp(r->method, "GET") || r->head, post = !strcmp(r->method, "POST");
    char cur[8];

    snprintf(r->currency, sizeof(r->currency), "USD");
    snprintf(r->language, sizeof(r->language), "en");
    if (!strcmp(p, "/") && get) {
        r->route = SR_PAGE_CATALOG;
        if (shop__form(r->query, "currency", cur, sizeof(cur)) && shop__currency_valid(cur))
            snprintf(r->currency, sizeof(r->currency), "%.3s", cur);
        if (shop__parse_listing(r) == 0)
            shop__act_products(r);
    } else if (!strncmp(p, "/products/", 10) && get) {
        r->route = SR_PAGE_PRODUCT;
        if (!shop__sku_valid(p + 10)) {
            shop__respond_error(r, 404, "not_found", "there is no such product");
            return;
        }
        snprintf(r->arg, sizeof(r->arg), "%s", p + 10);
        shop__act_product(r);
    } else if (!strcmp(p, "/cart") && get) {
        r->route = SR_PAGE_CART;
        with_prefs(r, shop__act_cart_get);
    } else if (!strcmp(p, "/cart/add") && post) {
        r->route = SR_PAGE_FORM;
        if (form_sku(r) == 0 && form_int(r, "qty", 1, r->s->cfg->max_qty, &r->n1) == 0) {
            r->flag = 1;
            shop__act_cart_set(r);
        }
    } else if (!strcmp(p, "/cart/update") && post) {
        r->route = SR_PAGE_FORM;
        if (form_sku(r) == 0 && form_int(r, "quantity", 0, r->s->cfg->max_qty, &r->n1) == 0) {
            r->flag = 0;
            shop__act_cart_set(r);
        }
    } else if (!strcmp(p, "/cart/remove") && post) {
        r->route = SR_PAGE_FORM;
        if (form_sku(r) == 0) {
            r->flag = 0;
            r->n1 = 0;
            shop__act_cart_set(r);
        }
    } else if (!strcmp(p, "/checkout") && post) {
        r->route = SR_PAGE_CHECKOUT;
        if (shop__form(r->body, "cart_version", r->want_version, sizeof(r->want_version)) &&
            strlen(r->want_version) != SHOP_VERSION_LEN - 1)
            r->want_version[0] = '\0';
        with_prefs(r, shop__act_checkout);
    } else if (!strcmp(p, "/orders") && get) {
        r->route = SR_PAGE_ORDERS;
        with_prefs(r, shop__act_orders);
    } else if (!strcmp(p, "/prefs") && get) {
        r->route = SR_PAGE_FORM;
        shop__act_session_get(r);
    } else if (!strcmp(p, "/prefs") && post) {
        r->route = SR_PAGE_FORM;
        if (!shop__form(r->body, "currency", r->currency, sizeof(r->currency)) || !shop__currency_valid(r->currency) ||
            !shop__form(r->body, "language", r->language, sizeof(r->language)) || !shop__language_valid(r->language)) {
            shop__respond_error(r, 400, "invalid_request", "choose a currency and a language from the lists");
            return;
        }
        shop__act_session_set(r);
    } else if (!strcmp(p, "/favicon.ico")) {
        shop__respond(r, 404, "text/plain", "", 0, "public, max-age=86400", NULL);
    } else {
        shop__respond_error(r, 404, "not_found", "there is no such page in this shop");
    }
}
