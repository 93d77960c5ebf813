/* shop_int.h -- shared only inside src/shop.
 *
 * A request is a struct shop_req that lives from the server handler until its
 * answer (shop__respond*).  Work that needs the node chains callbacks:
 * shop__node_call() starts one call and its callback continues the request.
 *
 * Cart representation (crdt item carts/<sid>, docs/shop.md):
 *   "skus"      add-wins set of the skus in the cart (a line is there while
 *               its sku is; a removal concurrent with an add loses: add wins)
 *   "q-<sku>"   counter: the line's quantity (increments from every region)
 *   "last_order" register: ref of the last order placed from this cart
 *   "attempts"  counter: checkouts refused for stock; part of the checkout's
 *               idempotency key, so that a retry after a restock is a new
 *               attempt rather than a replay of the refusal
 *   "expires"   register: unix seconds, the table's TTL field
 */
#ifndef MR_SHOP_INT_H
#define MR_SHOP_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/auth.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../common/metrics.h"
#include "../common/token.h"
#include "../http/http.h"
#include "shop.h"

#define SHOP_SESSIONS_TABLE "sessions"
#define SHOP_CARTS_TABLE "carts"
#define SHOP_TTL_FIELD "expires"
#define SHOP_REF_LEN 20          /* "M-XXXX-XXXX-XXXX" and NUL */
#define SHOP_VERSION_LEN 17      /* cart content version: 16 hex + NUL */
#define SHOP_KEY_LEN 50          /* idempotency key "checkout-" + 40 hex + NUL */

enum shop_route {
    SR_PRODUCTS, SR_PRODUCT, SR_STOCK, SR_CART, SR_CHECKOUT, SR_ORDERS, SR_SESSION,
    SR_PAGE_CATALOG, SR_PAGE_PRODUCT, SR_PAGE_CART, SR_PAGE_CHECKOUT, SR_PAGE_ORDERS,
    SR_PAGE_FORM, SR_HEALTH, SR_READY, SR_METRICS, SR_OTHER, SR_ADMIN_FAULTS, SR_FAULT, SR_COUNT
};

struct shop_stats {
    uint64_t requests[SR_COUNT][6];     /* by status class 0..5 */
    struct mr_hist latency[SR_COUNT];
    uint64_t node_calls, node_errors;   /* errors: no answer, or 5xx */
    uint64_t node_reads_fallback;       /* answered without writes of a region out of reach */
    struct mr_hist node_latency;
    uint64_t orders, checkout_replays, out_of_stock, cart_changed;
};

/* Fault injection (faults.c, docs/shop.md "Fault injection"): while <mode>
 * is not off, requests whose path starts with one of <paths> are answered
 * <status> at once (5xx) or held unanswered (hang) until the mode changes,
 * the hold bound passes or the shop stops.  /admin/faults and /metrics are
 * never faulted. */
#define SHOP_FAULT_MAX_PATHS 8
#define SHOP_FAULT_PATH_MAX 63
enum shop_fault_mode { SHOP_FAULT_OFF, SHOP_FAULT_5XX, SHOP_FAULT_HANG, SHOP_FAULT_MODE_COUNT };

struct shop_fault_spec {
    enum shop_fault_mode mode;
    int status;                          /* 500..599, mode 5xx */
    char paths[SHOP_FAULT_MAX_PATHS][SHOP_FAULT_PATH_MAX + 1];   /* prefixes */
    size_t n_paths;
};

struct shop_faults {
    struct shop_fault_spec spec;
    int64_t since_ms;                    /* wall clock of the last change */
    uint64_t changes;                    /* accepted POSTs */
    uint64_t denied;                     /* 401s and 403s */
    uint64_t injected[SHOP_FAULT_MODE_COUNT];   /* requests answered 5xx / held */
    struct shop_req *held, **held_tail;  /* held requests, oldest first */
    size_t n_held;
    uv_timer_t *timer;                   /* releases held requests past the bound */
};

struct shop {
    uv_loop_t *loop;
    const struct shop_config *cfg;
    struct http_server *server;
    struct http_server *instance_server;  /* [shop] instance_listen, or NULL */
    struct http_client *client;
    struct tls_ctx *tls_server;   /* [tls]: the listeners' (NULL: plain HTTP) */
    struct tls_ctx *tls_client;   /* [tls] and an https:// node: the node client's */
    char *node_host;
    int node_port;
    struct shop_stats stats;
    size_t n_pending;         /* requests waiting for the node */
    int stopping;
    struct shop_faults faults;
    /* [auth] (faults.c): the tokens /admin/faults checks, replaced whole on
     * SIGHUP (shop_reload_auth), and what was refused, by reason. */
    struct mr_auth auth;
    uint64_t auth_refused[MR_AUTH_RESULT_COUNT];
    uint64_t auth_reloads, auth_reload_failures;
    int64_t auth_logged_ms;              /* last refusal logged */
};

/* One cart line as the shop sees it. */
struct shop_line {
    char sku[SHOP_SKU_MAX + 1];
    int64_t qty;              /* clamped to 1..max_qty */
    int64_t counter;          /* raw counter value */
    /* filled from the catalog when known */
    char name[96];
    int64_t price_cents;
    int64_t stock;            /* -1: unknown */
};

struct shop_cart {
    struct shop_line *lines;  /* sorted by sku; owned (shop__cart_clear) */
    size_t n;
    char last_order[SHOP_REF_LEN];
    int64_t attempts;         /* counter "attempts": checkouts refused for stock */
    char version[SHOP_VERSION_LEN];   /* of the content (shop__cart_version) */
    json_t *counters;         /* "q-<sku>" -> value of every counter field (owned) */
};

struct shop_req;
/* <rc>: 0 when the node answered (<status>, <body> parsed or NULL when not
 * JSON, borrowed for the callback), else MR_E* with <err>. */
typedef void (*shop_node_cb)(struct shop_req *r, int rc, int status, json_t *body, const char *err);

/* TOK_SEND_FALLBACK: send the token, and take the region's own state when
 * the writes it names come from a region out of reach, rather than fail
 * (Meridian-Token-Fallback: local, docs/api.md).  Cart and session reads
 * use it, checkout's too: a shopper checks out the cart they were shown
 * (cart_version), which then is the region's (decision 053). */
enum shop_tok_use { TOK_NONE, TOK_SEND, TOK_SEND_MERGE, TOK_SEND_FALLBACK };

struct shop_req {
    struct shop *s;
    struct http_exchange *ex;
    enum shop_route route;
    int64_t start_us;
    int html;                 /* answer with a page, not JSON */
    int head;
    char method[8];
    char *path;               /* copied */
    char *query;              /* copied */
    char *body;               /* copied, NUL-terminated */
    size_t body_len;
    char *referer;
    char sid[SHOP_SID_HEX + 1];   /* "" when none */
    int new_sid;              /* set the cookie */
    struct mr_token tok;      /* the client's token (cookie or header) */
    int have_tok;
    int tok_changed;          /* a write merged into <tok>: set the cookie */
    int wrote;                /* this request wrote the session's cart */
    int tok_dropped;          /* the node refused the token: clear the cookie */
    /* per-action state */
    int step;
    char arg[SHOP_SKU_MAX + 1];   /* sku of the path or form */
    int64_t n1, n2;           /* action arguments */
    int flag;
    char q[SHOP_QUERY_MAX + 1];   /* search text */
    char want_version[SHOP_VERSION_LEN];  /* cart version the client saw ("" none) */
    struct shop_cart cart;
    char currency[4];
    char language[4];
    char key[SHOP_KEY_LEN];
    char ref[SHOP_REF_LEN];
    json_t *res;              /* a node answer kept across steps (owned) */
    json_t *res2;
    shop_node_cb next;
    void (*act)(struct shop_req *r);   /* pages: the action after the preferences */
    struct shop_req *held_next;   /* faults: the list of held requests */
};

/* ---- server.c ---- */
void shop__respond(struct shop_req *r, int status, const char *ctype, const char *body, size_t len,
                   const char *cache_control, const char *extra_headers);
/* JSON answer from <j> (stolen). */
void shop__respond_json(struct shop_req *r, int status, json_t *j, const char *cache_control);
/* An error: {"error":{"code","message"}} or an HTML page with <title>/<msg>. */
void shop__respond_error(struct shop_req *r, int status, const char *code, const char *msg);
/* 303 See Other to <location>. */
void shop__redirect(struct shop_req *r, const char *location);
/* Make sure the request has a session id (a new random one, cookie set). */
void shop__ensure_session(struct shop_req *r);
/* Cache-Control of catalog answers. */
void shop__catalog_cc(const struct shop *s, char *out, size_t size);

/* ---- node.c ---- */
/* Call the node: <method> <path> with JSON <body> (NULL: none).  <tok> says
 * whether the request's token is sent and whether the answer's token is
 * merged into it (writes).  <cb> runs exactly once when this returns 0. */
int shop__node_call(struct shop_req *r, const char *method, const char *path, const char *body,
                    enum shop_tok_use tok, shop_node_cb cb);
/* POST /v1/sql with <statements> (stolen), <consistency>, optional
 * <idempotency_key>. */
int shop__sql(struct shop_req *r, json_t *statements, const char *consistency, const char *idem_key,
              enum shop_tok_use tok, shop_node_cb cb);
/* First result's rows of a /v1/sql answer (borrowed), or NULL. */
json_t *shop__rows(json_t *answer, size_t i);
/* Error message of a node answer, or a generic text. */
const char *shop__node_error(json_t *body);
const char *shop__node_error_code(json_t *body);

/* ---- api.c: the actions, shared by the JSON API and the pages ----
 * Each reads its arguments from <r> (arg, n1, n2, flag, q, want_version),
 * builds the JSON answer and hands it to shop__deliver, which answers JSON
 * or, for pages, renders the view. */
enum shop_view { VIEW_CATALOG, VIEW_PRODUCT, VIEW_STOCK, VIEW_CART, VIEW_CHECKOUT, VIEW_ORDERS, VIEW_SESSION };
void shop__api(struct shop_req *r);
void shop__act_products(struct shop_req *r);
void shop__act_product(struct shop_req *r);
void shop__act_cart_get(struct shop_req *r);
void shop__act_cart_set(struct shop_req *r);    /* flag 1: add n1; 0: set n1 (0 removes) */
void shop__act_cart_empty(struct shop_req *r);
void shop__act_checkout(struct shop_req *r);
void shop__act_orders(struct shop_req *r);
void shop__act_session_get(struct shop_req *r);
void shop__act_session_set(struct shop_req *r); /* currency, language in r->currency/language */
void shop__deliver(struct shop_req *r, int status, json_t *j, const char *cache_control, enum shop_view v);

/* ---- pages.c ---- */
void shop__pages(struct shop_req *r);
/* Render view <v> of <j> (borrowed) as a page, or redirect after a form. */
void shop__page_render(struct shop_req *r, int status, json_t *j, const char *cache_control, enum shop_view v);
void shop__page_error(struct shop_req *r, int status, const char *code, const char *msg, const char *extra);

/* ---- faults.c ---- */
/* Answer <r> if the fault endpoint or an active fault takes it: 1 when it
 * did (answered, or held), 0 when the request goes on as usual. */
int shop__faults_take(struct shop_req *r, const char *authorization);
/* Release every held request (answered 503) and close the timer: shop_stop. */
void shop__faults_stop(struct shop *s);
/* Lines of /metrics. */
void shop__faults_metrics(const struct shop *s, struct mr_buf *b);
/* Pure (unit-tested): a usable bearer token (16..128 of A-Za-z0-9-_.~). */
/* Parse a POST /admin/faults body into <out>: 0, or -1 with the problem in
 * <msg> (<size> bytes). */
int shop__fault_parse(const char *body, size_t len, struct shop_fault_spec *out, char *msg, size_t size);
/* 1 when <path> is covered by <spec> (never /admin/faults nor /metrics). */
int shop__fault_covers(const struct shop_fault_spec *spec, const char *path);
const char *shop__fault_mode_name(enum shop_fault_mode m);

/* ---- util.c: pure helpers (unit-tested) ---- */
/* Append <s> HTML-escaped (& < > " '). */
void shop__html(struct mr_buf *b, const char *s);
/* Field <name> of an application/x-www-form-urlencoded <body> (or query),
 * percent- and '+'-decoded into <out>; 1 found, 0 absent.  Fields longer
 * than <size>-1 are absent. */
int shop__form(const char *body, const char *name, char *out, size_t size);
int shop__sku_valid(const char *s);
int shop__sid_valid(const char *s);
void shop__sid_new(char out[SHOP_SID_HEX + 1]);
/* "12.34" in <currency> (USD, EUR, GBP, JPY, SGD) from US cents: the
 * conversion uses fixed illustrative rates (docs/shop.md). */
void shop__money(char *out, size_t size, int64_t usd_cents, const char *currency);
int shop__currency_valid(const char *c);
int shop__language_valid(const char *l);
/* Escape % _ \ for LIKE ... ESCAPE '\' and wrap in %...%. */
char *shop__like_pattern(const char *q);
/* Parse "statement N:" from a node error message; 0 when absent. */
int shop__failed_statement(const char *msg);

/* ---- cart.c: pure cart logic (unit-tested) ---- */
/* Read a rendered crdt cart item (NULL: no cart) into <c>, clamping
 * quantities to 1..<max_qty>.  Lines sorted by sku. */
void shop__cart_parse(const json_t *item, int64_t max_qty, struct shop_cart *c);
void shop__cart_clear(struct shop_cart *c);
/* The line of <sku>, or NULL. */
struct shop_line *shop__cart_find(const struct shop_cart *c, const char *sku);
/* Raw counter of <sku> (0 when none). */
int64_t shop__cart_counter(const struct shop_cart *c, const char *sku);
/* Canonical content "sku*qty;..." (sorted) into <b>. */
void shop__cart_canonical(const struct shop_cart *c, struct mr_buf *b);
/* Checkout identity: idempotency key and order ref derived from the
 * session, the cart's last order (so that buying the same cart again later
 * is a new order) and the content (so that a retry is the same order). */
void shop__checkout_ids(const char *sid, const struct shop_cart *c, char key[SHOP_KEY_LEN],
                        char ref[SHOP_REF_LEN]);
/* Ops that set the quantity of <sku> to <qty> (0: remove the line), as a
 * new {"ops":[...]} object; <expires> unix seconds. */
json_t *shop__cart_ops_set(const struct shop_cart *c, const char *sku, int64_t qty, int64_t expires);
/* Ops that empty the lines of <c> (observed-remove) and record <ref>. */
json_t *shop__cart_ops_checkout(const struct shop_cart *c, const char *ref, int64_t expires);
/* Ops that empty the cart. */
json_t *shop__cart_ops_empty(const struct shop_cart *c, int64_t expires);
/* The /v1/sql statements of a checkout (docs/shop.md). */
json_t *shop__checkout_statements(const struct shop_cart *c, const char *ref, const char *sid,
                                  const char *region);

#endif
