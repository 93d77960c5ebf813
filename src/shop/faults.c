/* faults.c -- the shop's fault-injection endpoint (docs/shop.md "Fault
 * injection"), the way a cloud's fault-injection service breaks a service
 * behind a load balancer: make this shop answer 5xx, or never answer, on
 * chosen path prefixes, until told to stop.  Game days use it for the
 * faults a process kill cannot show (src/gameday, kinds shop_5xx and
 * shop_hang).
 *
 * Off unless [faults] enabled = true; then every call needs a bearer token
 * of [auth] with the admin scope: the cluster's own tokens, checked by
 * src/common/auth like a node's (decision 030).  A client certificate, even
 * one of the cluster's CA, grants nothing here: the edges hold such a
 * certificate and relay what shoppers send.  The state lives in the shop
 * (struct shop_faults), on the shop's loop; a shop that restarts comes back
 * with the fault off.  Depends on src/http, src/common/auth and jansson. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "shop_int.h"

#define HOLD_CHECK_MS 250

static const char *const mode_names[SHOP_FAULT_MODE_COUNT] = {"off", "5xx", "hang"};

const char *shop__fault_mode_name(enum shop_fault_mode m)
{
    return (unsigned)m < SHOP_FAULT_MODE_COUNT ? mode_names[m] : "?";
}

static int is_exempt(const char *path)
{
    /* The endpoint itself must stay reachable to turn the fault off, and
     * /metrics to watch it. */
    return strcmp(path, "/admin/faults") == 0 || strcmp(path, "/metrics") == 0;
}

int shop__fault_covers(const struct shop_fault_spec *spec, const char *path)
{
    if (spec->mode == SHOP_FAULT_OFF || is_exempt(path))
        return 0;
    for (size_t i = 0; i < spec->n_paths; i++)
        if (strncmp(path, spec->paths[i], strlen(spec->paths[i])) == 0)
            return 1;
    return 0;
}

/* "paths": one string of comma-separated prefixes, or an array of them. */
static int parse_paths(const json_t *v, struct shop_fault_spec *out, char *msg, size_t size)
{
    const char *items[SHOP_FAULT_MAX_PATHS * 2];
    size_t n = 0, i;
    json_t *x;
    char *copy = NULL, *save = NULL, *tok;
    int rc = 0;

    if (json_is_string(v)) {
        copy = mr_strdup(json_string_value(v));
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (n == sizeof(items) / sizeof(items[0]))
                break;
            items[n++] = tok;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (!json_is_string(x)) {
                snprintf(msg, size, "'paths' must hold strings");
                return -1;
            }
            if (n == sizeof(items) / sizeof(items[0]))
                break;
            items[n++] = json_string_value(x);
        }
    } else {
        snprintf(msg, size, "'paths' must be a string of comma-separated path prefixes or an array of them");
        return -1;
    }
    if (n == 0 || n > SHOP_FAULT_MAX_PATHS) {
        snprintf(msg, size, "'paths' must name 1 to %d path prefixes, found %zu", SHOP_FAULT_MAX_PATHS, n);
        rc = -1;
    }
    for (i = 0; rc == 0 && i < n; i++) {
        size_t len = strcspn(items[i], " ");
        if (items[i][0] != '/' || len > SHOP_FAULT_PATH_MAX || items[i][len] != '\0') {
            snprintf(msg, size, "'paths': '%.70s' is not a path prefix (expected /... of at most %d "
                     "characters, no spaces)", items[i], SHOP_FAULT_PATH_MAX);
            rc = -1;
            break;
        }
        snprintf(out->paths[i], sizeof(out->paths[i]), "%s", items[i]);
    }
    if (rc == 0)
        out->n_paths = n;
    mr_free(copy);
    return rc;
}

int shop__fault_parse(const char *body, size_t len, struct shop_fault_spec *out, char *msg, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *key, *mode;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->status = 503;
    snprintf(out->paths[0], sizeof(out->paths[0]), "/");
    out->n_paths = 1;
    if (j == NULL) {
        snprintf(msg, size, "body is not JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object(j)) {
        snprintf(msg, size, "body must be a JSON object {\"mode\", \"status\", \"paths\"}");
        goto out;
    }
    json_object_foreach(j, key, v) {
        if (strcmp(key, "mode") && strcmp(key, "status") && strcmp(key, "paths")) {
            snprintf(msg, size, "unknown key '%.40s' (expected mode, status, paths)", key);
            goto out;
        }
    }
    mode = json_string_value(json_object_get(j, "mode"));
    if (mode == NULL) {
        snprintf(msg, size, "'mode' is required: \"5xx\", \"hang\" or \"off\"");
        goto out;
    }
    for (out->mode = SHOP_FAULT_OFF; out->mode < SHOP_FAULT_MODE_COUNT; out->mode++)
        if (!strcmp(mode, mode_names[out->mode]))
            break;
    if (out->mode == SHOP_FAULT_MODE_COUNT) {
        snprintf(msg, size, "'mode' = '%.20s': expected \"5xx\", \"hang\" or \"off\"", mode);
        goto out;
    }
    v = json_object_get(j, "status");
    if (v != NULL) {
        if (out->mode != SHOP_FAULT_5XX) {
            snprintf(msg, size, "'status' goes with mode \"5xx\" only");
            goto out;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 500 || json_integer_value(v) > 599) {
            snprintf(msg, size, "'status' must be an integer from 500 to 599");
            goto out;
        }
        out->status = (int)json_integer_value(v);
    }
    v = json_object_get(j, "paths");
    if (v != NULL) {
        if (out->mode == SHOP_FAULT_OFF) {
            snprintf(msg, size, "'paths' goes with mode \"5xx\" or \"hang\" only");
            goto out;
        }
        if (parse_paths(v, out, msg, size) != 0)
            goto out;
    }
    if (out->mode == SHOP_FAULT_OFF)
        out->n_paths = 0;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

static json_t *state_json(const struct shop *s)
{
    const struct shop_faults *f = &s->faults;
    json_t *paths = json_array();

    for (size_t i = 0; i < f->spec.n_paths; i++)
        json_array_append_new(paths, json_string(f->spec.paths[i]));
    return json_pack("{s:b,s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "enabled", s->cfg->faults_enabled, "mode",
                     mode_names[f->spec.mode], "status",
                     f->spec.mode == SHOP_FAULT_5XX ? json_integer(f->spec.status) : json_null(), "paths",
                     paths, "since_ms", (json_int_t)f->since_ms, "changes", (json_int_t)f->changes,
                     "injected_5xx", (json_int_t)f->injected[SHOP_FAULT_5XX], "held_total",
                     (json_int_t)f->injected[SHOP_FAULT_HANG], "held_now", (json_int_t)f->n_held,
                     "hold_ms", (json_int_t)s->cfg->faults_hold_ms);
}

/* ---- held requests ---- */

static void release_one(struct shop_req *r, const char *why)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "fault injection: this request was held (%s)", why);
    r->route = SR_FAULT;
    shop__respond_error(r, 503, "fault_hang_released", msg);
}

/* Answer the held requests older than the bound (all when <all>). */
static void release_held(struct shop *s, int all, const char *why)
{
    struct shop_faults *f = &s->faults;
    int64_t now = mr_mono_us(), bound_us = s->cfg->faults_hold_ms * 1000;

    while (f->held && (all || now - f->held->start_us >= bound_us)) {
        struct shop_req *r = f->held;
        f->held = r->held_next;
        if (f->held == NULL)
            f->held_tail = &f->held;
        f->n_held--;
        r->held_next = NULL;
        release_one(r, why);
    }
    if (f->held == NULL && f->timer)
        uv_timer_stop(f->timer);
}

static void on_hold_timer(uv_timer_t *t)
{
    release_held(t->data, 0, "hold bound reached");
}

static void hold(struct shop_req *r)
{
    struct shop_faults *f = &r->s->faults;

    if (f->timer == NULL) {
        f->timer = mr_malloc(sizeof(*f->timer));
        uv_timer_init(r->s->loop, f->timer);
        f->timer->data = r->s;
    }
    if (f->held == NULL)
        f->held_tail = &f->held;
    r->route = SR_FAULT;
    r->held_next = NULL;
    *f->held_tail = r;
    f->held_tail = &r->held_next;
    f->n_held++;
    if (!uv_is_active((uv_handle_t *)f->timer))
        uv_timer_start(f->timer, on_hold_timer, HOLD_CHECK_MS, HOLD_CHECK_MS);
}

static void free_timer(uv_handle_t *h)
{
    mr_free(h);
}

void shop__faults_stop(struct shop *s)
{
    release_held(s, 1, "the shop is stopping");
    if (s->faults.timer) {
        uv_close((uv_handle_t *)s->faults.timer, free_timer);
        s->faults.timer = NULL;
    }
}

/* ---- the endpoint ---- */

/* 0 when <authorization> carries a token of [auth] with the admin scope;
 * else answers 401 (none, or not one of ours) or 403 (no admin scope)
 * itself, counts and logs it (one line a second at most), and returns
 * MR_EDENIED.  Same answers as a node's (src/node/auth.c). */
static int authorize(struct shop_req *r, const char *authorization)
{
    struct shop *s = r->s;
    const char *who;
    enum mr_auth_result res = mr_auth_check(&s->auth, authorization, NULL, MR_AUTH_ADMIN, NULL, &who);
    int64_t now = mr_now_ms();
    char msg[160];

    if (res == MR_AUTH_OK)
        return 0;
    s->faults.denied++;
    s->auth_refused[res]++;
    if (now - s->auth_logged_ms >= 1000) {
        s->auth_logged_ms = now;
        mr_log(MR_LOG_WARN, "auth", "fault injection: %s /admin/faults refused: %s%s%s (needs admin; "
               "%llu refused so far)", r->method, mr_auth_result_name(res), *who ? " token " : "", who,
               (unsigned long long)s->faults.denied);
    }
    if (res == MR_AUTH_FORBIDDEN) {
        snprintf(msg, sizeof(msg), "token '%s' does not have the admin scope /admin/faults needs", who);
        shop__respond_error(r, 403, "forbidden", msg);
        return MR_EDENIED;
    }
    {
        /* RFC 6750 3: the bare challenge without credentials,
         * error="invalid_token" with a token we do not know. */
        json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", "unauthorized", "message",
                              res == MR_AUTH_MISSING
                                  ? "/admin/faults needs 'Authorization: Bearer <token>' with the "
                                    "admin scope (docs/security.md)"
                                  : "the bearer token is not one this shop accepts");
        char *body = json_dumps(j, JSON_COMPACT);
        shop__respond(r, 401, "application/json", body, strlen(body), NULL,
                      res == MR_AUTH_MISSING
                          ? "WWW-Authenticate: Bearer realm=\"meridian\"\r\n"
                          : "WWW-Authenticate: Bearer realm=\"meridian\", error=\"invalid_token\"\r\n");
        free(body);
        json_decref(j);
    }
    return MR_EDENIED;
}

static void describe(const struct shop_fault_spec *sp, char *out, size_t size)
{
    size_t used;

    if (sp->mode == SHOP_FAULT_OFF) {
        snprintf(out, size, "off");
        return;
    }
    if (sp->mode == SHOP_FAULT_5XX)
        snprintf(out, size, "5xx status %d paths ", sp->status);
    else
        snprintf(out, size, "hang paths ");
    for (size_t i = 0; i < sp->n_paths; i++) {
        used = strlen(out);
        snprintf(out + used, size - used, "%s%s", i ? "," : "", sp->paths[i]);
    }
}

static void endpoint(struct shop_req *r, const char *authorization)
{
    struct shop *s = r->s;
    struct shop_faults *f = &s->faults;
    struct shop_fault_spec spec;
    char msg[200], was[SHOP_FAULT_MAX_PATHS * (SHOP_FAULT_PATH_MAX + 1) + 32], now[sizeof(was)];

    r->route = SR_ADMIN_FAULTS;
    r->html = 0;
    if (!s->cfg->faults_enabled) {
        shop__respond_error(r, 404, "not_found", "no such page: fault injection is disabled "
                            "([faults] enabled = false)");
        return;
    }
    if (authorize(r, authorization) != 0)
        return;
    if (strcmp(r->method, "GET") == 0 || r->head) {
        shop__respond_json(r, 200, state_json(s), NULL);
        return;
    }
    if (strcmp(r->method, "POST") != 0) {
        shop__respond_error(r, 405, "method_not_allowed", "/admin/faults takes GET or POST");
        return;
    }
    if (shop__fault_parse(r->body, r->body_len, &spec, msg, sizeof(msg)) != 0) {
        shop__respond_error(r, 400, "invalid_fault", msg);
        return;
    }
    describe(&f->spec, was, sizeof(was));
    describe(&spec, now, sizeof(now));
    f->spec = spec;
    f->since_ms = mr_now_ms();
    f->changes++;
    mr_log(MR_LOG_WARN, "shop", "fault injection: %s (was %s; %zu held requests)", now, was, f->n_held);
    /* Held requests are let go as soon as the hang ends (or changes to
     * something else): answered 503, which the clients may retry. */
    if (spec.mode != SHOP_FAULT_HANG)
        release_held(s, 1, "the hang was turned off");
    shop__respond_json(r, 200, state_json(s), NULL);
}

int shop__faults_take(struct shop_req *r, const char *authorization)
{
    struct shop_faults *f = &r->s->faults;
    char msg[96];

    if (strcmp(r->path, "/admin/faults") == 0) {
        endpoint(r, authorization);
        return 1;
    }
    if (!shop__fault_covers(&f->spec, r->path))
        return 0;
    f->injected[f->spec.mode]++;
    if (f->spec.mode == SHOP_FAULT_HANG) {
        hold(r);
        return 1;
    }
    r->route = SR_FAULT;
    if (strcmp(r->path, "/healthz") == 0 || strcmp(r->path, "/readyz") == 0)
        r->html = 0;
    snprintf(msg, sizeof(msg), "fault injection: this shop answers %d", f->spec.status);
    shop__respond_error(r, f->spec.status, "fault_injected", msg);
    return 1;
}

void shop__faults_metrics(const struct shop *s, struct mr_buf *b)
{
    const struct shop_faults *f = &s->faults;
    char labels[32];

    mr_metric_header(b, "meridian_shop_fault_mode", "gauge",
                     "fault injection: 1 for the mode in force (/admin/faults)");
    for (int m = 0; m < SHOP_FAULT_MODE_COUNT; m++) {
        snprintf(labels, sizeof(labels), "mode=\"%s\"", mode_names[m]);
        mr_metric_u64(b, "meridian_shop_fault_mode", labels, f->spec.mode == (enum shop_fault_mode)m);
    }
    mr_metric_header(b, "meridian_shop_fault_changes_total", "counter", "fault injection: accepted changes");
    mr_metric_u64(b, "meridian_shop_fault_changes_total", NULL, f->changes);
    mr_metric_header(b, "meridian_shop_fault_denied_total", "counter",
                     "fault injection: calls refused for a missing or unknown token or no admin scope");
    mr_metric_u64(b, "meridian_shop_fault_denied_total", NULL, f->denied);
    /* Named like the node's, so one alert rule covers both. */
    mr_metric_header(b, "meridian_shop_auth_refused_total", "counter",
                     "requests refused for want of a valid bearer token or scope, by reason");
    for (int r = MR_AUTH_MISSING; r < MR_AUTH_RESULT_COUNT; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", mr_auth_result_name((enum mr_auth_result)r));
        mr_metric_u64(b, "meridian_shop_auth_refused_total", labels, s->auth_refused[r]);
    }
    mr_metric_header(b, "meridian_shop_auth_reloads_total", "counter",
                     "[auth] token reloads on SIGHUP, by result (failed: the old tokens stay)");
    mr_metric_u64(b, "meridian_shop_auth_reloads_total", "result=\"ok\"", s->auth_reloads);
    mr_metric_u64(b, "meridian_shop_auth_reloads_total", "result=\"failed\"", s->auth_reload_failures);
    mr_metric_header(b, "meridian_shop_fault_injected_total", "counter",
                     "fault injection: requests answered 5xx or held");
    for (int m = SHOP_FAULT_5XX; m < SHOP_FAULT_MODE_COUNT; m++) {
        snprintf(labels, sizeof(labels), "mode=\"%s\"", mode_names[m]);
        mr_metric_u64(b, "meridian_shop_fault_injected_total", labels, f->injected[m]);
    }
    mr_metric_header(b, "meridian_shop_fault_held", "gauge", "fault injection: requests held now");
    mr_metric_u64(b, "meridian_shop_fault_held", NULL, f->n_held);
}
