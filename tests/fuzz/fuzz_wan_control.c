/* fuzz_wan_control.c -- the wan's control API (src/wan/api.c, docs/wan.md)
 * as its handlers decode it: the LINK of /links/LINK, a PATCH body, the
 * words of `meridian wan set` (which the CLI turns into a PATCH body), the
 * path and query of POST /regions/NAME/cut|heal, a PUT /pids body, and POST
 * /reset.  The handlers' own functions are called (wan_link_lookup,
 * wan_settings_patch_json, wan_settings_words_json, wan_region_request_parse,
 * wan_pids_put_json), and what they accept is applied as the handler does, to
 * one wan per process with a fixed topology of 6 links and no route: no
 * socket is opened and the loop never runs.  Each input starts from the
 * configured settings (wan_reset, when an earlier input changed them) and
 * an empty pid map.
 *
 * Input: up to 8 requests separated by "\n==\n".  In each, byte 0 picks the
 * request ((byte - '0') mod 5: '0'..'4' in the seeds, in the order below);
 * the rest is:
 *
 *   patch    LINK "\n" BODY     PATCH /links/LINK
 *   words    LINK "\n" WORDS    meridian wan set LINK WORD... (split at ' ')
 *   region   REST               POST /regions/REST, REST split at its first
 *                               '?' into path and query, as src/http does
 *   pids     BODY               PUT /pids
 *   reset                       POST /reset
 *
 * A body is decoded even when LINK names no link (over a copy of the first
 * link's settings, then dropped), so that bodies are reached without a name.
 *
 * Checks beyond "no crash": every refusal carries a message; a refused
 * PATCH, words or pids request changes nothing; LINK finds the link whose
 * name, or "FROM:TO", is LINK percent-decoded, and nothing else; an accepted
 * PATCH body has only the six fields, and the link then reports (GET
 * /links, wan_links_json) each given value to the microsecond, "state" as
 * given, the fields not given as they were, and a latency given without a
 * reply latency for both directions; every setting stays within wan.h's
 * limits (latencies, jitter and close delay 0..WAN_MAX_LATENCY_MS,
 * bandwidth 0..WAN_MAX_BANDWIDTH_KBPS); settings words the CLI accepts make
 * a body that PATCH accepts; an accepted region path is /regions/NAME/cut or
 * /heal with NAME the 1..WAN_NAME_MAX bytes between, a cut's state is
 * blackhole (by default), reject or slow_close; a cut sets exactly the links
 * from or to NAME to that state and marks them cut, a heal puts exactly the
 * cut ones back to their state before the first cut, nothing else changes,
 * and links_changed counts them; an accepted pid map holds exactly the pids
 * of the body (1..2^30), each with the region last given for it (cut to
 * WAN_NAME_MAX bytes); a reset puts every link back as configured, uncut;
 * after every change, GET /links renders valid JSON that reports each
 * link's settings exactly and its cut as the model has it. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "fuzz.h"
#include "http/http.h"
#include "wan/wan.h"
#include "wan/wan_int.h"

#define SEP "\n==\n"
#define MAX_REQUESTS 8
#define MAX_WORDS 16

enum req { REQ_PATCH, REQ_WORDS, REQ_REGION, REQ_PIDS, REQ_RESET, REQ_N };

/* Regions us-east-1, eu-west-1, ap-southeast-1 and a client site; the last
 * link is named apart from its ends, so FROM:TO is the only short form. */
static const struct topo {
    const char *name, *from, *to;
    double latency_ms, reply_ms, jitter_ms;
    int64_t kbps;
    double close_delay_ms;
    enum wan_state state;
} topo[] = {
    {"us-east-1->eu-west-1", NULL, NULL, 35, 35, 1, 0, 2000, WAN_UP},
    {"eu-west-1->us-east-1", NULL, NULL, 35, 35, 0, 0, 2000, WAN_UP},
    {"us-east-1->ap-southeast-1", NULL, NULL, 80, 90, 2.5, 10000, 2000, WAN_UP},
    {"ap-southeast-1->us-east-1", NULL, NULL, 90, 80, 0, 0, 500, WAN_SLOW_CLOSE},
    {"site.New_York->us-east-1", NULL, NULL, 5, 5, 0.25, 800, 2000, WAN_BLACKHOLE},
    {"euw-apse", "eu-west-1", "ap-southeast-1", 120.125, 120.125, 0, 0, 2000, WAN_REJECT},
};
#define N_LINKS (sizeof(topo) / sizeof(topo[0]))

static const char *const fields[] = {"latency_ms", "reply_latency_ms", "jitter_ms",
                                     "bandwidth_kbps", "close_delay_ms", "state"};

static uv_loop_t loop;
static struct wan *w;
static int dirty; /* a link changed since the last reset */

/* What the harness expects of cuts: the state a link had before its first
 * cut, kept until a heal or a reset. */
static struct {
    int cut;
    enum wan_state before;
} model[N_LINKS];

static void wan_setup(void)
{
    char err[MR_ERRMSG_LEN];

    uv_loop_init(&loop);
    w = wan_new(&loop);
    for (size_t i = 0; i < N_LINKS; i++) {
        struct wan_settings s;
        wan_settings_default(&s);
        s.latency_us[WAN_FWD] = llround(topo[i].latency_ms * 1000);
        s.latency_us[WAN_REPLY] = llround(topo[i].reply_ms * 1000);
        s.jitter_us = llround(topo[i].jitter_ms * 1000);
        s.bandwidth_kbps = topo[i].kbps;
        s.close_delay_us = llround(topo[i].close_delay_ms * 1000);
        s.state = topo[i].state;
        if (wan_link_add(w, topo[i].name, topo[i].from, topo[i].to, &s, err) != 0)
            abort();
    }
}

static int refused(int rc, const char *err)
{
    if (rc != 0 && err[0] == '\0')
        abort(); /* a refusal must say why */
    return rc != 0;
}

static void settings_within_limits(const struct wan_settings *s)
{
    const int64_t max_us = (int64_t)WAN_MAX_LATENCY_MS * 1000;

    for (int d = 0; d < 2; d++)
        if (s->latency_us[d] < 0 || s->latency_us[d] > max_us)
            abort();
    if (s->jitter_us < 0 || s->jitter_us > max_us || s->close_delay_us < 0 ||
        s->close_delay_us > max_us || s->bandwidth_kbps < 0 ||
        s->bandwidth_kbps > WAN_MAX_BANDWIDTH_KBPS || (unsigned)s->state >= WAN_N_STATES)
        abort();
}

static struct wan_settings get(size_t i)
{
    struct wan_settings s;

    if (wan_link_get(w, (int)i, &s) != 0)
        abort();
    return s;
}

static int same(const struct wan_settings *a, const struct wan_settings *b)
{
    return a->latency_us[0] == b->latency_us[0] && a->latency_us[1] == b->latency_us[1] &&
           a->jitter_us == b->jitter_us && a->bandwidth_kbps == b->bandwidth_kbps &&
           a->close_delay_us == b->close_delay_us && a->state == b->state;
}

/* ---- GET /links ------------------------------------------------------------- */

static double real_of(const json_t *link, const char *key)
{
    const json_t *v = json_object_get(link, key);

    if (!json_is_real(v))
        abort(); /* mr_json_double keeps a decimal point */
    return json_real_value(v);
}

/* wan_links_json parsed back: every link, in order, reporting its settings
 * exactly and its cut as the model has it.  The caller frees the result. */
static json_t *links_rendered(void)
{
    struct mr_buf b;
    json_t *doc, *links;

    mr_buf_init(&b);
    wan_links_json(w, &b);
    doc = json_loadb(b.data, b.len, 0, NULL);
    mr_buf_close(&b);
    links = json_object_get(doc, "links");
    if (!json_is_array(links) || json_array_size(links) != N_LINKS)
        abort();
    for (size_t i = 0; i < N_LINKS; i++) {
        const json_t *l = json_array_get(links, i);
        const json_t *bw = json_object_get(l, "bandwidth_kbps");
        struct wan_settings s = get(i);
        settings_within_limits(&s);
        if (!json_is_string(json_object_get(l, "name")) ||
            strcmp(json_string_value(json_object_get(l, "name")), topo[i].name) != 0 ||
            real_of(l, "latency_ms") != (double)s.latency_us[WAN_FWD] / 1000.0 ||
            real_of(l, "reply_latency_ms") != (double)s.latency_us[WAN_REPLY] / 1000.0 ||
            real_of(l, "jitter_ms") != (double)s.jitter_us / 1000.0 ||
            real_of(l, "close_delay_ms") != (double)s.close_delay_us / 1000.0 ||
            !json_is_integer(bw) || json_integer_value(bw) != s.bandwidth_kbps ||
            !json_is_string(json_object_get(l, "state")) ||
            strcmp(json_string_value(json_object_get(l, "state")), wan_state_name(s.state)) != 0 ||
            json_is_true(json_object_get(l, "cut")) != model[i].cut)
            abort();
    }
    return doc;
}

static const json_t *rendered_link(const json_t *doc, size_t i)
{
    return json_array_get(json_object_get(doc, "links"), i);
}

/* ---- PATCH /links/LINK ------------------------------------------------------ */

/* wan_link_find over LINK percent-decoded (as a C string: a "%00" ends it),
 * written out again: the first link named so, or whose FROM:TO it is. */
static int link_expected(const char *raw)
{
    char dec[512];
    size_t len = strlen(raw), k;

    if (len > sizeof(dec))
        return -1;
    k = mr_percent_decode(dec, raw, len, 0);
    if (k + 1 > 2 * WAN_NAME_MAX + 4)
        return -1;
    dec[k] = '\0';
    for (size_t i = 0; i < N_LINKS; i++) {
        char short_form[2 * WAN_NAME_MAX + 4];
        const char *arrow = strstr(topo[i].name, "->");
        if (topo[i].from)
            snprintf(short_form, sizeof(short_form), "%s:%s", topo[i].from, topo[i].to);
        else
            snprintf(short_form, sizeof(short_form), "%.*s:%s", (int)(arrow - topo[i].name),
                     topo[i].name, arrow + 2);
        if (strcmp(dec, topo[i].name) == 0 || strcmp(dec, short_form) == 0)
            return (int)i;
    }
    return -1;
}

static int lookup(const char *p, size_t n)
{
    char *raw = fuzz_cstr((const uint8_t *)p, n);
    int idx = wan_link_lookup(w, raw);

    if (idx != link_expected(raw))
        abort();
    free(raw);
    return idx;
}

/* |reported - given| within the rounding to whole microseconds (units). */
static void reported_as_given(const json_t *link, const char *key, double given, double unit)
{
    const json_t *v = json_object_get(link, key);
    double r = json_number_value(v);

    if (!json_is_number(v) || fabs(r - given) > unit / 2 + given * 1e-12 + 1e-9)
        abort();
}

/* <body> was accepted over <before> and applied to link <idx>: what GET
 * /links reports is what the body asked, and nothing else moved. */
static void patch_reported(size_t idx, const struct wan_settings *before, const char *body,
                           size_t len)
{
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *r = links_rendered();
    const json_t *l = rendered_link(r, idx), *v;
    struct wan_settings s = get(idx);
    int lat = 0, reply = 0;

    if (!json_is_object(doc) || json_object_size(doc) == 0)
        abort();
    {
        const char *key;
        json_t *x;
        json_object_foreach(doc, key, x) {
            size_t f = 0;
            while (f < sizeof(fields) / sizeof(fields[0]) && strcmp(key, fields[f]) != 0)
                f++;
            if (f == sizeof(fields) / sizeof(fields[0]))
                abort(); /* an unknown field was accepted */
        }
    }
    if ((v = json_object_get(doc, "latency_ms")) != NULL) {
        lat = 1;
        reported_as_given(l, "latency_ms", json_number_value(v), 0.001);
    }
    if ((v = json_object_get(doc, "reply_latency_ms")) != NULL) {
        reply = 1;
        reported_as_given(l, "reply_latency_ms", json_number_value(v), 0.001);
    }
    if (lat && !reply && s.latency_us[WAN_REPLY] != s.latency_us[WAN_FWD])
        abort(); /* one latency for both directions */
    if (!lat && s.latency_us[WAN_FWD] != before->latency_us[WAN_FWD])
        abort();
    if (!lat && !reply && s.latency_us[WAN_REPLY] != before->latency_us[WAN_REPLY])
        abort();
    if ((v = json_object_get(doc, "jitter_ms")) != NULL)
        reported_as_given(l, "jitter_ms", json_number_value(v), 0.001);
    else if (s.jitter_us != before->jitter_us)
        abort();
    if ((v = json_object_get(doc, "close_delay_ms")) != NULL)
        reported_as_given(l, "close_delay_ms", json_number_value(v), 0.001);
    else if (s.close_delay_us != before->close_delay_us)
        abort();
    if ((v = json_object_get(doc, "bandwidth_kbps")) != NULL)
        reported_as_given(l, "bandwidth_kbps", json_number_value(v), 1);
    else if (s.bandwidth_kbps != before->bandwidth_kbps)
        abort();
    if ((v = json_object_get(doc, "state")) != NULL) {
        if (!json_is_string(v) ||
            strcmp(json_string_value(v), json_string_value(json_object_get(l, "state"))) != 0)
            abort();
    } else if (s.state != before->state) {
        abort();
    }
    json_decref(doc);
    json_decref(r);
}

/* on_link_request: decode over the link's settings; on success, set them.
 * Returns the decoder's rc. */
static int patch(int idx, const char *body, size_t len)
{
    char err[MR_ERRMSG_LEN] = "";
    struct wan_settings before = get(idx < 0 ? 0 : (size_t)idx), s = before;
    int rc = wan_settings_patch_json(&s, body, len, err);

    if (refused(rc, err)) {
        if (!same(&s, &before))
            abort();
        return rc;
    }
    settings_within_limits(&s);
    if (idx < 0)
        return 0; /* 404 in the handler: only the decoding is checked */
    wan_link_set(w, idx, &s, "PATCH /links");
    dirty = 1;
    patch_reported((size_t)idx, &before, body, len);
    return 0;
}

static void req_patch(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n), *body = nl ? nl + 1 : p + n;

    patch(lookup(p, nl ? (size_t)(nl - p) : n), body, n - (size_t)(body - p));
}

/* ---- meridian wan set LINK WORD... ------------------------------------------ */

static void req_words(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n), *rest = nl ? nl + 1 : p + n;
    char *text = fuzz_cstr((const uint8_t *)rest, n - (size_t)(rest - p)), *words[MAX_WORDS];
    char err[MR_ERRMSG_LEN] = "";
    int idx = lookup(p, nl ? (size_t)(nl - p) : n), n_words = 0, rc;
    struct mr_buf out;

    for (char *t = strtok(text, " "); t && n_words < MAX_WORDS; t = strtok(NULL, " "))
        words[n_words++] = t;
    mr_buf_init(&out);
    rc = wan_settings_words_json(n_words, words, &out, err);
    if (refused(rc, err)) {
        if (out.len != 0)
            abort();
    } else if (patch(idx, out.data, out.len) != 0) {
        abort(); /* the CLI made a body the API refuses */
    }
    mr_buf_close(&out);
    free(text);
}

/* ---- POST /regions/NAME/cut|heal -------------------------------------------- */

static void req_region(const char *p, size_t n)
{
    char *rest = fuzz_cstr((const uint8_t *)p, n), *q = strchr(rest, '?');
    char region[WAN_NAME_MAX + 1], err[MR_ERRMSG_LEN] = "", *path;
    struct http_request hr = {"POST", NULL, "", NULL, 0, NULL, 0, 0, ""};
    struct wan_settings before[N_LINKS];
    struct mr_buf given;
    enum wan_state st;
    int rc, cut, changed, want = 0, touched_any = 0;
    const char *slash;
    size_t plen;

    if (q != NULL) {
        *q = '\0';
        hr.query = q + 1;
    }
    plen = strlen("/regions/") + strlen(rest);
    path = malloc(plen + 1);
    if (path == NULL)
        abort();
    snprintf(path, plen + 1, "/regions/%s", rest);
    hr.path = path;
    rc = wan_region_request_parse(&hr, region, &cut, &st, err);
    if (refused(rc, err)) {
        if (rc != MR_ENOTFOUND && rc != MR_EINVAL)
            abort();
        goto out;
    }
    /* /regions/NAME/cut or /heal, NAME 1..WAN_NAME_MAX bytes up to the last '/'. */
    slash = strrchr(rest, '/');
    if (slash == NULL || strcmp(slash, cut ? "/cut" : "/heal") != 0 ||
        (size_t)(slash - rest) != strlen(region) || strlen(region) < 1 ||
        strlen(region) > WAN_NAME_MAX || memcmp(region, rest, strlen(region)) != 0)
        abort();
    if (st != WAN_BLACKHOLE && st != WAN_REJECT && st != WAN_SLOW_CLOSE)
        abort();
    mr_buf_init(&given);
    if (!http_request_query(&hr, "state", &given) && st != WAN_BLACKHOLE)
        abort(); /* blackhole unless a state is given */
    mr_buf_close(&given);
    for (size_t i = 0; i < N_LINKS; i++)
        before[i] = get(i);
    changed = wan_region_set_state(w, region, cut ? st : WAN_UP, cut ? "cut" : "heal");
    dirty = 1;
    for (size_t i = 0; i < N_LINKS; i++) {
        struct wan_settings s = get(i), exp = before[i];
        const char *from = topo[i].from, *to = topo[i].to, *arrow = strstr(topo[i].name, "->");
        int touches;
        if (from != NULL)
            touches = strcmp(from, region) == 0 || strcmp(to, region) == 0;
        else
            touches = (strlen(region) == (size_t)(arrow - topo[i].name) &&
                       memcmp(region, topo[i].name, strlen(region)) == 0) ||
                      strcmp(arrow + 2, region) == 0;
        touched_any |= touches;
        if (touches && cut) {
            if (!model[i].cut)
                model[i].before = before[i].state;
            model[i].cut = 1;
            exp.state = st;
            want++;
        } else if (touches && model[i].cut) {
            exp.state = model[i].before;
            model[i].cut = 0;
            want++;
        }
        if (!same(&s, &exp))
            abort();
    }
    if (changed != (touched_any ? want : -1))
        abort();
    json_decref(links_rendered()); /* and "cut" as the model has it */
out:
    free(path);
    free(rest);
}

/* ---- PUT /pids ------------------------------------------------------------- */

static void req_pids(const char *p, size_t n)
{
    char err[MR_ERRMSG_LEN] = "";
    size_t n_before = w->n_pids, n_want = 0;
    struct pidmap *saved = NULL, *want;
    json_t *doc, *pids, *v;
    const char *key;
    int rc;

    if (n_before) {
        saved = malloc(n_before * sizeof(*saved));
        if (saved == NULL)
            abort();
        memcpy(saved, w->pids, n_before * sizeof(*saved));
    }
    rc = wan_pids_put_json(w, p, n, err);
    if (refused(rc, err)) {
        if (w->n_pids != n_before || (n_before && memcmp(saved, w->pids, n_before * sizeof(*saved))))
            abort(); /* the map untouched */
        free(saved);
        return;
    }
    free(saved);
    /* Exactly the body's pids, each with the region last given for it. */
    doc = json_loadb(p, n, 0, NULL);
    pids = json_object_get(doc, "pids");
    if (!json_is_object(pids))
        abort();
    want = malloc((json_object_size(pids) + 1) * sizeof(*want));
    if (want == NULL)
        abort();
    json_object_foreach(pids, key, v) {
        long long pid = strtoll(key, NULL, 10);
        size_t k = 0;
        if (pid < 1 || pid > (1 << 30) || !json_is_string(v))
            abort();
        while (k < n_want && want[k].pid != (int)pid)
            k++;
        if (k == n_want)
            n_want++;
        want[k].pid = (int)pid;
        snprintf(want[k].region, sizeof(want[k].region), "%s", json_string_value(v));
    }
    if (w->n_pids != n_want)
        abort();
    for (size_t k = 0; k < n_want; k++) {
        const char *have = wan__region_of_pid(w, want[k].pid);
        if (have == NULL || strcmp(have, want[k].region) != 0)
            abort();
    }
    free(want);
    json_decref(doc);
}

/* ---- POST /reset ------------------------------------------------------------- */

static void req_reset(int render)
{
    wan_reset(w, "POST /reset");
    dirty = 0;
    memset(model, 0, sizeof(model));
    for (size_t i = 0; i < N_LINKS; i++) {
        struct wan_settings s = get(i);
        if (s.latency_us[WAN_FWD] != llround(topo[i].latency_ms * 1000) ||
            s.latency_us[WAN_REPLY] != llround(topo[i].reply_ms * 1000) ||
            s.jitter_us != llround(topo[i].jitter_ms * 1000) || s.bandwidth_kbps != topo[i].kbps ||
            s.close_delay_us != llround(topo[i].close_delay_ms * 1000) || s.state != topo[i].state)
            abort();
    }
    if (render)
        json_decref(links_rendered()); /* uncut, as configured */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    enum mr_log_level level = mr_log_min_level;

    if (w == NULL)
        wan_setup();
    /* Each change is logged at info: not thousands of lines a second. */
    mr_log_min_level = MR_LOG_OFF;
    if (dirty)
        req_reset(0);
    w->n_pids = 0;
    for (int i = 0; i < MAX_REQUESTS && p < end; i++) {
        const char *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        const char *stop = sep ? sep : end;
        size_t n = (size_t)(stop - p);
        if (n > 0) {
            switch ((enum req)((unsigned char)(p[0] - '0') % REQ_N)) {
            case REQ_PATCH: req_patch(p + 1, n - 1); break;
            case REQ_WORDS: req_words(p + 1, n - 1); break;
            case REQ_REGION: req_region(p + 1, n - 1); break;
            case REQ_PIDS: req_pids(p + 1, n - 1); break;
            default: req_reset(1); break;
            }
        }
        p = sep ? sep + strlen(SEP) : end;
    }
    mr_log_min_level = level;
    return 0;
}
