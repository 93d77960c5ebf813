/* api.c -- the wan's control API (docs/wan.md), its JSON and its metrics.
 *
 *   GET   /healthz                     200 "ok"
 *   GET   /links                       {"links": [LINK...]}
 *   GET   /links/NAME                  LINK
 *   PATCH /links/NAME                  JSON settings -> LINK; 400 names the bad field
 *   POST  /reset                       every link back to its configured settings
 *   POST  /regions/NAME/cut[?state=S]  every link touching NAME to S (blackhole)
 *   POST  /regions/NAME/heal           those links back to their state before the cut
 *   PUT   /pids                        {"pids": {"PID": "REGION", ...}}: replaces the map
 *   GET   /metrics                     Prometheus text
 *
 * NAME is "FROM->TO" (percent-encoded or not) or "FROM:TO".
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../http/http.h"
#include "wan_int.h"

/* ---- settings from JSON and from CLI words ---- */

struct num_field {
    const char *name;
    double max;
};

/* <v> as a number in [0, max], or an error naming <field>. */
static int get_num(json_t *v, const char *field, double max, double *out, char *err)
{
    char *text;

    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (isfinite(d) && d >= 0 && d <= max) {
            *out = d;
            return 0;
        }
    }
    text = json_dumps(v, JSON_ENCODE_ANY);
    mr_seterr(err, MR_EINVAL, "%s: expected a number from 0 to %.0f, found %s", field, max,
              text ? text : "?");
    free(text);
    return MR_EINVAL;
}

int wan_settings_patch_json(struct wan_settings *s, const char *body, size_t len, char *err)
{
    struct wan_settings n = *s;
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *key;
    int rc = 0, reply_given = 0;
    double d;

    if (doc == NULL)
        return mr_seterr(err, MR_EINVAL, "body: expected a JSON object, found invalid JSON (%s "
                         "at line %d column %d)", jerr.text, jerr.line, jerr.column);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return mr_seterr(err, MR_EINVAL, "body: expected a JSON object");
    }
    if (json_object_size(doc) == 0) {
        json_decref(doc);
        return mr_seterr(err, MR_EINVAL, "body: expected at least one of latency_ms, "
                         "reply_latency_ms, jitter_ms, bandwidth_kbps, close_delay_ms, state");
    }
    reply_given = json_object_get(doc, "reply_latency_ms") != NULL;
    json_object_foreach(doc, key, v) {
        if (strcmp(key, "latency_ms") == 0) {
            rc = get_num(v, key, WAN_MAX_LATENCY_MS, &d, err);
            n.latency_us[WAN_FWD] = llround(d * 1000);
            /* One latency for both directions, unless the reply's is given. */
            if (!reply_given)
                n.latency_us[WAN_REPLY] = n.latency_us[WAN_FWD];
        } else if (strcmp(key, "reply_latency_ms") == 0) {
            rc = get_num(v, key, WAN_MAX_LATENCY_MS, &d, err);
            n.latency_us[WAN_REPLY] = llround(d * 1000);
        } else if (strcmp(key, "jitter_ms") == 0) {
            rc = get_num(v, key, WAN_MAX_LATENCY_MS, &d, err);
            n.jitter_us = llround(d * 1000);
        } else if (strcmp(key, "close_delay_ms") == 0) {
            rc = get_num(v, key, WAN_MAX_LATENCY_MS, &d, err);
            n.close_delay_us = llround(d * 1000);
        } else if (strcmp(key, "bandwidth_kbps") == 0) {
            rc = get_num(v, key, WAN_MAX_BANDWIDTH_KBPS, &d, err);
            n.bandwidth_kbps = llround(d);
        } else if (strcmp(key, "state") == 0) {
            int st = json_is_string(v) ? wan_state_parse(json_string_value(v)) : -1;
            if (st < 0) {
                char *text = json_dumps(v, JSON_ENCODE_ANY);
                rc = mr_seterr(err, MR_EINVAL, "state: expected \"up\", \"blackhole\", \"reject\" "
                               "or \"slow_close\", found %s", text ? text : "?");
                free(text);
            } else {
                n.state = (enum wan_state)st;
            }
        } else {
            rc = mr_seterr(err, MR_EINVAL, "unknown field '%s': expected latency_ms, "
                           "reply_latency_ms, jitter_ms, bandwidth_kbps, close_delay_ms or state",
                           key);
        }
        if (rc != 0)
            break;
    }
    json_decref(doc);
    if (rc == 0)
        *s = n;
    return rc;
}

/* "10mbit", "512kbit", "1gbit", "800" (kbit/s) */
static int parse_bandwidth(const char *v, int64_t *kbps)
{
    char *end;
    double d = strtod(v, &end);
    double mult = 1;

    if (end == v || !isfinite(d) || d < 0)
        return MR_EINVAL;
    if (*end == '\0' || strcmp(end, "kbit") == 0 || strcmp(end, "kbps") == 0)
        mult = 1;
    else if (strcmp(end, "mbit") == 0 || strcmp(end, "mbps") == 0)
        mult = 1000;
    else if (strcmp(end, "gbit") == 0 || strcmp(end, "gbps") == 0)
        mult = 1000000;
    else
        return MR_EINVAL;
    d *= mult;
    if (d > WAN_MAX_BANDWIDTH_KBPS)
        return MR_EINVAL;
    *kbps = llround(d);
    return 0;
}

/* "80ms", "1.5ms", "2s", "0": milliseconds as a double. */
static int parse_ms(const char *v, double *ms)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || !isfinite(d) || d < 0)
        return MR_EINVAL;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        *ms = d;
    else if (strcmp(end, "s") == 0)
        *ms = d * 1000;
    else if (strcmp(end, "us") == 0)
        *ms = d / 1000;
    else
        return MR_EINVAL;
    return *ms <= WAN_MAX_LATENCY_MS ? 0 : MR_EINVAL;
}

int wan_settings_words_json(int n, char **words, struct mr_buf *out, char *err)
{
    json_t *o = json_object();
    char *text;

    for (int i = 0; i < n; i++) {
        const char *eq = strchr(words[i], '=');
        char key[32];
        const char *v;
        double ms;
        int64_t kbps;

        if (eq == NULL || (size_t)(eq - words[i]) >= sizeof(key)) {
            json_decref(o);
            return mr_seterr(err, MR_EINVAL, "'%s': expected KEY=VALUE", words[i]);
        }
        memcpy(key, words[i], (size_t)(eq - words[i]));
        key[eq - words[i]] = '\0';
        v = eq + 1;
        if (strcmp(key, "latency") == 0 || strcmp(key, "reply_latency") == 0 ||
            strcmp(key, "jitter") == 0 || strcmp(key, "close_delay") == 0) {
            char field[48];
            if (parse_ms(v, &ms) != 0) {
                json_decref(o);
                return mr_seterr(err, MR_EINVAL, "%s: expected a duration such as 80ms or 1.5s "
                                 "(at most %ds), found '%s'", key, WAN_MAX_LATENCY_MS / 1000, v);
            }
            snprintf(field, sizeof(field), "%s_ms", key);
            json_object_set_new(o, field, json_real(ms));
        } else if (strcmp(key, "bandwidth") == 0) {
            if (parse_bandwidth(v, &kbps) != 0) {
                json_decref(o);
                return mr_seterr(err, MR_EINVAL, "bandwidth: expected a rate such as 800kbit, "
                                 "10mbit or 1gbit (0: no cap), found '%s'", v);
            }
            json_object_set_new(o, "bandwidth_kbps", json_integer(kbps));
        } else if (strcmp(key, "state") == 0) {
            if (wan_state_parse(v) < 0) {
                json_decref(o);
                return mr_seterr(err, MR_EINVAL, "state: expected up, blackhole, reject or "
                                 "slow_close, found '%s'", v);
            }
            json_object_set_new(o, "state", json_string(v));
        } else {
            json_decref(o);
            return mr_seterr(err, MR_EINVAL, "unknown setting '%s': expected latency, "
                             "reply_latency, jitter, bandwidth, close_delay or state", key);
        }
    }
    if (json_object_size(o) == 0) {
        json_decref(o);
        return mr_seterr(err, MR_EINVAL, "expected at least one KEY=VALUE");
    }
    text = json_dumps(o, JSON_COMPACT);
    mr_buf_puts(out, text);
    free(text);
    json_decref(o);
    return 0;
}

/* ---- JSON of links ---- */

static void link_json(const struct link *l, struct mr_buf *b)
{
    mr_buf_puts(b, "{\"name\":");
    mr_json_cstr(b, l->name);
    mr_buf_puts(b, ",\"from\":");
    mr_json_cstr(b, l->from);
    mr_buf_puts(b, ",\"to\":");
    mr_json_cstr(b, l->to);
    mr_buf_puts(b, ",\"latency_ms\":");
    mr_json_double(b, (double)l->s.latency_us[WAN_FWD] / 1000.0);
    mr_buf_puts(b, ",\"reply_latency_ms\":");
    mr_json_double(b, (double)l->s.latency_us[WAN_REPLY] / 1000.0);
    mr_buf_puts(b, ",\"jitter_ms\":");
    mr_json_double(b, (double)l->s.jitter_us / 1000.0);
    mr_buf_printf(b, ",\"bandwidth_kbps\":%lld", (long long)l->s.bandwidth_kbps);
    mr_buf_puts(b, ",\"close_delay_ms\":");
    mr_json_double(b, (double)l->s.close_delay_us / 1000.0);
    mr_buf_printf(b, ",\"state\":\"%s\",\"cut\":%s", wan_state_name(l->s.state),
                  l->cut ? "true" : "false");
    mr_buf_printf(b, ",\"connections\":%llu,\"connections_open\":%llu,"
                  "\"connections_refused\":%llu,\"bytes\":{\"forward\":%llu,\"reply\":%llu}}",
                  (unsigned long long)l->st.connections,
                  (unsigned long long)l->st.connections_open,
                  (unsigned long long)l->st.connections_refused,
                  (unsigned long long)l->st.bytes[WAN_FWD],
                  (unsigned long long)l->st.bytes[WAN_REPLY]);
}

void wan_links_json(const struct wan *w, struct mr_buf *out)
{
    mr_buf_puts(out, "{\"links\":[");
    for (size_t i = 0; i < w->n_links; i++) {
        if (i)
            mr_buf_putc(out, ',');
        link_json(&w->links[i], out);
    }
    mr_buf_puts(out, "],\"routes\":[");
    for (size_t i = 0; i < w->n_routes; i++) {
        const struct route *r = w->routes[i];
        if (i)
            mr_buf_putc(out, ',');
        mr_buf_puts(out, "{\"name\":");
        mr_json_cstr(out, r->name);
        mr_buf_printf(out, ",\"listen\":\"127.0.0.1:%d\",\"target\":\"%s:%d\",\"link\":", r->port,
                      r->target_host, r->target_port);
        if (r->link >= 0)
            mr_json_cstr(out, w->links[r->link].name);
        else
            mr_buf_puts(out, "null");
        mr_buf_puts(out, ",\"to\":");
        mr_json_cstr(out, r->link >= 0 ? w->links[r->link].to : r->to_region);
        mr_buf_putc(out, '}');
    }
    mr_buf_printf(out, "],\"unidentified_connections\":%llu}\n",
                  (unsigned long long)w->unidentified);
}

void wan_metrics(const struct wan *w, struct mr_buf *b)
{
    static const char *const dirs[2] = {"forward", "reply"};
    char labels[2 * WAN_NAME_MAX + 64];

    mr_metric_header(b, "meridian_wan_link_bytes_total", "counter",
                     "Bytes delivered through a link, per direction");
    for (size_t i = 0; i < w->n_links; i++)
        for (int d = 0; d < 2; d++) {
            snprintf(labels, sizeof(labels), "link=\"%s\",direction=\"%s\"", w->links[i].name,
                     dirs[d]);
            mr_metric_u64(b, "meridian_wan_link_bytes_total", labels, w->links[i].st.bytes[d]);
        }
    mr_metric_header(b, "meridian_wan_link_connections_total", "counter",
                     "Connections accepted on a link");
    for (size_t i = 0; i < w->n_links; i++) {
        snprintf(labels, sizeof(labels), "link=\"%s\"", w->links[i].name);
        mr_metric_u64(b, "meridian_wan_link_connections_total", labels,
                      w->links[i].st.connections);
    }
    mr_metric_header(b, "meridian_wan_link_connections_open", "gauge", "Open connections");
    for (size_t i = 0; i < w->n_links; i++) {
        snprintf(labels, sizeof(labels), "link=\"%s\"", w->links[i].name);
        mr_metric_u64(b, "meridian_wan_link_connections_open", labels,
                      w->links[i].st.connections_open);
    }
    mr_metric_header(b, "meridian_wan_link_connections_refused_total", "counter",
                     "Connections reset because the link was in state reject");
    for (size_t i = 0; i < w->n_links; i++) {
        snprintf(labels, sizeof(labels), "link=\"%s\"", w->links[i].name);
        mr_metric_u64(b, "meridian_wan_link_connections_refused_total", labels,
                      w->links[i].st.connections_refused);
    }
    mr_metric_header(b, "meridian_wan_link_latency_seconds", "gauge",
                     "Configured one-way latency, per direction");
    for (size_t i = 0; i < w->n_links; i++)
        for (int d = 0; d < 2; d++) {
            snprintf(labels, sizeof(labels), "link=\"%s\",direction=\"%s\"", w->links[i].name,
                     dirs[d]);
            mr_metric_f64(b, "meridian_wan_link_latency_seconds", labels,
                          (double)w->links[i].s.latency_us[d] / 1e6);
        }
    mr_metric_header(b, "meridian_wan_link_jitter_seconds", "gauge", "Configured jitter");
    for (size_t i = 0; i < w->n_links; i++) {
        snprintf(labels, sizeof(labels), "link=\"%s\"", w->links[i].name);
        mr_metric_f64(b, "meridian_wan_link_jitter_seconds", labels,
                      (double)w->links[i].s.jitter_us / 1e6);
    }
    mr_metric_header(b, "meridian_wan_link_bandwidth_kbps", "gauge",
                     "Configured bandwidth cap per direction (0: none)");
    for (size_t i = 0; i < w->n_links; i++) {
        snprintf(labels, sizeof(labels), "link=\"%s\"", w->links[i].name);
        mr_metric_u64(b, "meridian_wan_link_bandwidth_kbps", labels,
                      (uint64_t)w->links[i].s.bandwidth_kbps);
    }
    mr_metric_header(b, "meridian_wan_link_state", "gauge", "1 for the link's current state");
    for (size_t i = 0; i < w->n_links; i++)
        for (int s = 0; s < WAN_N_STATES; s++) {
            snprintf(labels, sizeof(labels), "link=\"%s\",state=\"%s\"", w->links[i].name,
                     wan_state_name((enum wan_state)s));
            mr_metric_u64(b, "meridian_wan_link_state", labels, (int)w->links[i].s.state == s);
        }
    mr_metric_header(b, "meridian_wan_link_applied_delay_seconds", "histogram",
                     "Delay actually applied to each chunk (arrival to first byte written)");
    for (size_t i = 0; i < w->n_links; i++)
        for (int d = 0; d < 2; d++) {
            snprintf(labels, sizeof(labels), "link=\"%s\",direction=\"%s\"", w->links[i].name,
                     dirs[d]);
            mr_metric_hist(b, "meridian_wan_link_applied_delay_seconds", labels,
                           &w->links[i].delay[d]);
        }
    mr_metric_header(b, "meridian_wan_link_delay_excess_seconds", "histogram",
                     "Applied delay minus the chunk's intended delay (latency + its jitter): "
                     "timer lateness, ordering and bandwidth waits");
    for (size_t i = 0; i < w->n_links; i++)
        for (int d = 0; d < 2; d++) {
            snprintf(labels, sizeof(labels), "link=\"%s\",direction=\"%s\"", w->links[i].name,
                     dirs[d]);
            mr_metric_hist(b, "meridian_wan_link_delay_excess_seconds", labels,
                           &w->links[i].error[d]);
        }
    mr_metric_header(b, "meridian_wan_unidentified_connections_total", "counter",
                     "Connections on shared routes carried without delay: source region unknown");
    mr_metric_u64(b, "meridian_wan_unidentified_connections_total", NULL, w->unidentified);
    mr_metric_header(b, "meridian_wan_auth_refused_total", "counter",
                     "control API requests refused for want of a valid token or scope");
    mr_metric_u64(b, "meridian_wan_auth_refused_total", NULL, w->auth_refused);
    mr_metric_header(b, "meridian_wan_auth_reloads_total", "counter",
                     "re-reads of the [wan] token lines on SIGHUP, by result");
    mr_metric_u64(b, "meridian_wan_auth_reloads_total", "result=\"done\"", w->auth_reloads[0]);
    mr_metric_u64(b, "meridian_wan_auth_reloads_total", "result=\"failed\"", w->auth_reloads[1]);
}

/* ---- HTTP ---- */

static void respond_buf(struct http_exchange *ex, int status, struct mr_buf *b)
{
    http_respond(ex, status, "application/json", b->data ? b->data : "", b->len, NULL);
}

static void respond_error(struct http_exchange *ex, int status, const char *code,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void respond_error(struct http_exchange *ex, int status, const char *code,
                          const char *fmt, ...)
{
    struct mr_buf msg, body;
    va_list ap;

    mr_buf_init(&msg);
    mr_buf_init(&body);
    va_start(ap, fmt);
    mr_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    mr_json_error(&body, code, msg.data ? msg.data : "");
    mr_buf_putc(&body, '\n');
    respond_buf(ex, status, &body);
    mr_buf_close(&msg);
    mr_buf_close(&body);
}

/* Percent-decode <s> into <out> (at most <n> - 1 bytes); -1 when too long. */
static int decode(const char *s, size_t len, char *out, size_t n)
{
    char tmp[512];
    size_t k;

    /* decoding never lengthens: anything that fits raw fits decoded */
    if (len > sizeof(tmp))
        return -1;
    k = mr_percent_decode(tmp, s, len, 0);
    if (k + 1 > n)
        return -1;
    memcpy(out, tmp, k);
    out[k] = '\0';
    return 0;
}

int wan_link_lookup(const struct wan *w, const char *raw)
{
    char name[2 * WAN_NAME_MAX + 4];

    if (decode(raw, strlen(raw), name, sizeof(name)) != 0)
        return -1;
    return wan_link_find(w, name);
}

static void on_link_request(struct wan *w, struct http_exchange *ex,
                            const struct http_request *req, const char *raw)
{
    char err[MR_ERRMSG_LEN];
    struct wan_settings s;
    struct mr_buf b;
    int idx;

    if ((idx = wan_link_lookup(w, raw)) < 0) {
        respond_error(ex, 404, "ENOTFOUND", "no link '%s' (GET /links lists them)", raw);
        return;
    }
    if (strcmp(req->method, "PATCH") == 0) {
        s = w->links[idx].s;
        if (wan_settings_patch_json(&s, req->body, req->body_len, err) != 0) {
            respond_error(ex, 400, "EINVAL", "%s", err);
            return;
        }
        wan_link_set(w, idx, &s, "PATCH /links");
    } else if (strcmp(req->method, "GET") != 0) {
        respond_error(ex, 405, "EINVAL", "use GET or PATCH %s", req->path);
        return;
    }
    mr_buf_init(&b);
    link_json(&w->links[idx], &b);
    mr_buf_putc(&b, '\n');
    respond_buf(ex, 200, &b);
    mr_buf_close(&b);
}

int wan_region_request_parse(const struct http_request *req, char *region, int *cut,
                             enum wan_state *state, char *err)
{
    const char *name, *slash;
    struct mr_buf st;
    int rc = 0;

    if (strncmp(req->path, "/regions/", strlen("/regions/")) != 0)
        return mr_seterr(err, MR_ENOTFOUND, "expected POST /regions/NAME/cut or /heal");
    name = req->path + strlen("/regions/");
    slash = strrchr(name, '/');
    if (slash == NULL || slash == name ||
        (size_t)(slash - name) > WAN_NAME_MAX ||
        (strcmp(slash, "/cut") != 0 && strcmp(slash, "/heal") != 0))
        return mr_seterr(err, MR_ENOTFOUND, "expected POST /regions/NAME/cut or /heal");
    memcpy(region, name, (size_t)(slash - name));
    region[slash - name] = '\0';
    *cut = slash[1] == 'c';
    *state = WAN_BLACKHOLE;
    mr_buf_init(&st);
    if (http_request_query(req, "state", &st)) {
        int s = wan_state_parse(st.data ? st.data : "");
        if (s < 0 || s == WAN_UP)
            rc = mr_seterr(err, MR_EINVAL, "state: expected blackhole, reject or slow_close, "
                           "found '%s'", st.data ? st.data : "");
        else
            *state = (enum wan_state)s;
    }
    mr_buf_close(&st);
    return rc;
}

static void on_region_request(struct wan *w, struct http_exchange *ex,
                              const struct http_request *req)
{
    char region[WAN_NAME_MAX + 1], why[WAN_NAME_MAX + 32], err[MR_ERRMSG_LEN];
    struct mr_buf b;
    enum wan_state state;
    int n, cut, rc;

    /* The path first (404), then the method (405), then the state (400). */
    rc = wan_region_request_parse(req, region, &cut, &state, err);
    if (rc == MR_ENOTFOUND) {
        respond_error(ex, 404, "ENOTFOUND", "%s", err);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        respond_error(ex, 405, "EINVAL", "use POST %s", req->path);
        return;
    }
    if (rc != 0) {
        respond_error(ex, 400, "EINVAL", "%s", err);
        return;
    }
    snprintf(why, sizeof(why), "%s region %s", cut ? "cut" : "heal", region);
    n = wan_region_set_state(w, region, cut ? state : WAN_UP, why);
    if (n < 0) {
        /* A typo must not read as a cut that happened to change nothing. */
        respond_error(ex, 404, "ENOTFOUND", "no link touches region '%s' (GET /links lists them)", region);
        return;
    }
    mr_buf_init(&b);
    mr_buf_puts(&b, "{\"region\":");
    mr_json_cstr(&b, region);
    mr_buf_printf(&b, ",\"action\":\"%s\",\"links_changed\":%d}\n", cut ? "cut" : "heal", n);
    respond_buf(ex, 200, &b);
    mr_buf_close(&b);
}

int wan_pids_put_json(struct wan *w, const char *body, size_t len, char *err)
{
    json_error_t jerr;
    json_t *doc, *pids, *v;
    const char *key;

    doc = json_loadb(body, len, 0, &jerr);
    pids = json_object_get(doc, "pids");
    if (!json_is_object(pids)) {
        json_decref(doc);
        return mr_seterr(err, MR_EINVAL, "body: expected {\"pids\": {\"PID\": \"REGION\", ...}}");
    }
    json_object_foreach(pids, key, v) {
        int64_t pid;
        if (mr_parse_i64(key, 1, 1 << 30, &pid) != 0 || !json_is_string(v)) {
            mr_seterr(err, MR_EINVAL, "pids: expected \"PID\": \"REGION\", found '%s'", key);
            json_decref(doc);
            return MR_EINVAL;
        }
    }
    w->n_pids = 0;
    json_object_foreach(pids, key, v)
        wan_pid_set(w, atoi(key), json_string_value(v));
    json_decref(doc);
    return 0;
}

static void on_pids(struct wan *w, struct http_exchange *ex, const struct http_request *req)
{
    char err[MR_ERRMSG_LEN];

    if (strcmp(req->method, "PUT") != 0) {
        respond_error(ex, 405, "EINVAL", "use PUT /pids");
        return;
    }
    if (wan_pids_put_json(w, req->body, req->body_len, err) != 0) {
        respond_error(ex, 400, "EINVAL", "%s", err);
        return;
    }
    mr_log(MR_LOG_INFO, "wan", "pid map replaced: %zu processes", w->n_pids);
    http_respond(ex, 200, "application/json", "{\"ok\":true}\n", 12, NULL);
}

/* The hook for mutual TLS, as in src/node/auth.c: NULL until src/tls lands,
 * then http_exchange_peer_cn(ex). */
static const char *peer_cn(struct http_exchange *ex)
{
    (void)ex;
    return NULL;
}

/* With [wan] token lines, GET needs read and anything else admin (cutting
 * links is fault injection); /healthz and /metrics stay open.  0 when the
 * request may go on, else it has been answered 401 or 403. */
static int authorize(struct wan *w, struct http_exchange *ex, const struct http_request *req)
{
    unsigned need = strcmp(req->method, "GET") == 0 ? MR_AUTH_READ : MR_AUTH_ADMIN;
    enum mr_auth_result r;
    const char *who;

    if (w->auth.n == 0 || strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/metrics") == 0)
        return 0;
    r = mr_auth_check(&w->auth, http_request_header(req, "Authorization"), peer_cn(ex), need, NULL,
                      &who);
    if (r == MR_AUTH_OK)
        return 0;
    w->auth_refused++;
    /* One line a second at most; the counter has the total. */
    if (mr_now_ms() - w->auth_logged_ms >= 1000) {
        w->auth_logged_ms = mr_now_ms();
        mr_log(MR_LOG_WARN, "wan", "refused %s %.100s: %s%s%s (%llu refused so far)", req->method,
               req->path, mr_auth_result_name(r), *who ? " token " : "", who,
               (unsigned long long)w->auth_refused);
    }
    if (r == MR_AUTH_FORBIDDEN) {
        respond_error(ex, 403, "forbidden", "token '%s' does not have the %s scope", who,
                      need == MR_AUTH_ADMIN ? "admin" : "read");
        return MR_EDENIED;
    }
    {
        struct mr_buf body;
        mr_buf_init(&body);
        mr_json_error(&body, "unauthorized", "the wan's control API needs 'Authorization: Bearer "
                      "<token>' with the admin scope (docs/security.md)");
        mr_buf_putc(&body, '\n');
        http_respond(ex, 401, "application/json", body.data, body.len,
                     "WWW-Authenticate: Bearer realm=\"meridian-wan\"\r\n");
        mr_buf_close(&body);
    }
    return MR_EDENIED;
}

static void on_request(struct http_exchange *ex, const struct http_request *req, void *data)
{
    struct wan *w = data;
    const char *path = req->path;
    struct mr_buf b;

    if (authorize(w, ex, req) != 0)
        return;
    if (strcmp(path, "/healthz") == 0) {
        http_respond(ex, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(path, "/links") == 0) {
        if (strcmp(req->method, "GET") != 0) {
            respond_error(ex, 405, "EINVAL", "use GET /links");
            return;
        }
        mr_buf_init(&b);
        wan_links_json(w, &b);
        respond_buf(ex, 200, &b);
        mr_buf_close(&b);
    } else if (strncmp(path, "/links/", 7) == 0) {
        on_link_request(w, ex, req, path + 7);
    } else if (strcmp(path, "/reset") == 0) {
        if (strcmp(req->method, "POST") != 0) {
            respond_error(ex, 405, "EINVAL", "use POST /reset");
            return;
        }
        wan_reset(w, "POST /reset");
        mr_buf_init(&b);
        wan_links_json(w, &b);
        respond_buf(ex, 200, &b);
        mr_buf_close(&b);
    } else if (strncmp(path, "/regions/", 9) == 0) {
        on_region_request(w, ex, req);
    } else if (strcmp(path, "/pids") == 0) {
        on_pids(w, ex, req);
    } else if (strcmp(path, "/metrics") == 0) {
        mr_buf_init(&b);
        wan_metrics(w, &b);
        http_respond(ex, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
        mr_buf_close(&b);
    } else {
        respond_error(ex, 404, "ENOTFOUND", "no such endpoint: try GET /links, PATCH /links/NAME, "
                      "POST /reset, POST /regions/NAME/cut|heal, PUT /pids, GET /metrics, "
                      "GET /healthz");
    }
}

int wan_control_start(struct wan *w, const char *host, int port, int *bound, char *err)
{
    struct http_server_opts o;
    int rc;

    http_server_opts_default(&o);
    o.server_name = "meridian-wan";
    o.max_connections = 256;
    rc = http_server_start(w->loop, host, port, &o, on_request, w, &w->control, err);
    if (rc != 0)
        return mr_wraperr(err, rc, "control API on %s:%d", host, port);
    *bound = http_server_port(w->control);
    return 0;
}
