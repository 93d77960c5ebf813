/* wan.c -- the wan object: links, routes, the pid map, region cuts, and the
 * lifecycle (see wan.h).  The data path is link.c; the control API api.c. */
#include <string.h>
#include <time.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../http/http.h"
#include "wan_int.h"

static const char *const state_names[WAN_N_STATES] = {"up", "blackhole", "reject", "slow_close"};

const char *wan_state_name(enum wan_state s)
{
    return (unsigned)s < WAN_N_STATES ? state_names[s] : "?";
}

int wan_state_parse(const char *s)
{
    for (int i = 0; i < WAN_N_STATES; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

void wan_settings_default(struct wan_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->close_delay_us = (int64_t)WAN_DEFAULT_CLOSE_DELAY_MS * 1000;
    s->state = WAN_UP;
}

int64_t wan__now_us(void)
{
    return mr_mono_us();
}

struct wan *wan_new(uv_loop_t *loop)
{
    struct wan *w = mr_calloc(1, sizeof(*w));

    w->loop = loop;
    return w;
}

/* ---- links ---- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > WAN_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.' || *s == '>'))
            return 0;
    return 1;
}

int wan_link_add(struct wan *w, const char *name, const char *from, const char *to,
                 const struct wan_settings *s, char *err)
{
    const char *arrow = strstr(name, "->");
    struct link *l;

    if (!valid_name(name))
        return mr_seterr(err, MR_EINVAL, "link name: expected 1 to %d characters of A-Z a-z 0-9 "
                         "'-' '_' '.' '>', found '%s'", WAN_NAME_MAX, name);
    if (wan_link_find(w, name) >= 0)
        return mr_seterr(err, MR_EEXIST, "link '%s' is already defined", name);
    if ((from == NULL || to == NULL) && arrow == NULL)
        return mr_seterr(err, MR_EINVAL, "link '%s': expected a name FROM->TO, or from and to",
                         name);
    w->links = mr_realloc(w->links, (w->n_links + 1) * sizeof(*w->links));
    l = &w->links[w->n_links];
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "%s", name);
    if (from)
        snprintf(l->from, sizeof(l->from), "%s", from);
    else
        snprintf(l->from, sizeof(l->from), "%.*s", (int)(arrow - name), name);
    if (to)
        snprintf(l->to, sizeof(l->to), "%s", to);
    else
        snprintf(l->to, sizeof(l->to), "%s", arrow + 2);
    l->s = l->initial = *s;
    for (int d = 0; d < 2; d++) {
        static const double bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05,
                                        0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5};
        static const double ebounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                         0.025, 0.1, 1};
        mr_hist_init(&l->delay[d], bounds, sizeof(bounds) / sizeof(bounds[0]));
        mr_hist_init(&l->error[d], ebounds, sizeof(ebounds) / sizeof(ebounds[0]));
    }
    w->n_links++;
    /* Connections point at links by index: growing the array moves the
     * links, not the indexes, and every list head moves with its link. */
    return 0;
}

int wan_link_find(const struct wan *w, const char *name)
{
    const char *colon = strchr(name, ':');

    for (size_t i = 0; i < w->n_links; i++) {
        const struct link *l = &w->links[i];
        if (strcmp(l->name, name) == 0)
            return (int)i;
        if (colon && strlen(l->from) == (size_t)(colon - name) &&
            memcmp(l->from, name, (size_t)(colon - name)) == 0 && strcmp(l->to, colon + 1) == 0)
            return (int)i;
    }
    return -1;
}

static void describe(const struct wan_settings *s, char *buf, size_t n)
{
    snprintf(buf, n, "latency=%.3fms reply_latency=%.3fms jitter=%.3fms bandwidth=%lldkbps "
             "close_delay=%lldms state=%s", (double)s->latency_us[WAN_FWD] / 1000.0,
             (double)s->latency_us[WAN_REPLY] / 1000.0, (double)s->jitter_us / 1000.0,
             (long long)s->bandwidth_kbps, (long long)(s->close_delay_us / 1000),
             wan_state_name(s->state));
}

void wan_link_set(struct wan *w, int idx, const struct wan_settings *s, const char *why)
{
    struct link *l = &w->links[idx];
    char before[256], after[256];

    describe(&l->s, before, sizeof(before));
    describe(s, after, sizeof(after));
    l->s = *s;
    /* A new rate starts from a full bucket of the new size. */
    memset(l->bucket, 0, sizeof(l->bucket));
    mr_log(MR_LOG_INFO, "wan", "link %s changed (%s): %s (was %s)", l->name, why, after, before);
    wan__link_apply(w, idx);
}

int wan_region_set_state(struct wan *w, const char *region, enum wan_state st, const char *why)
{
    int n = 0, touched = 0;

    for (size_t i = 0; i < w->n_links; i++) {
        struct link *l = &w->links[i];
        struct wan_settings s;
        if (strcmp(l->from, region) != 0 && strcmp(l->to, region) != 0)
            continue;
        touched = 1;
        s = l->s;
        if (st == WAN_UP) {
            /* heal: back to what the link was before the cut */
            if (!l->cut)
                continue;
            s.state = l->before_cut;
            l->cut = 0;
        } else {
            if (!l->cut)
                l->before_cut = l->s.state;
            l->cut = 1;
            s.state = st;
        }
        wan_link_set(w, (int)i, &s, why);
        n++;
    }
    return touched ? n : -1;
}

void wan_reset(struct wan *w, const char *why)
{
    for (size_t i = 0; i < w->n_links; i++) {
        w->links[i].cut = 0;
        wan_link_set(w, (int)i, &w->links[i].initial, why);
    }
}

int wan_link_get(const struct wan *w, int idx, struct wan_settings *out)
{
    if (idx < 0 || (size_t)idx >= w->n_links)
        return MR_ENOTFOUND;
    *out = w->links[idx].s;
    return 0;
}

int wan_link_stats(const struct wan *w, int idx, struct wan_link_stats *out)
{
    if (idx < 0 || (size_t)idx >= w->n_links)
        return MR_ENOTFOUND;
    *out = w->links[idx].st;
    return 0;
}

uint64_t wan_unidentified(const struct wan *w)
{
    return w->unidentified;
}

/* ---- pids ---- */

void wan_pid_set(struct wan *w, int pid, const char *region)
{
    for (size_t i = 0; i < w->n_pids; i++) {
        if (w->pids[i].pid != pid)
            continue;
        if (region == NULL)
            w->pids[i] = w->pids[--w->n_pids];
        else
            snprintf(w->pids[i].region, sizeof(w->pids[i].region), "%s", region);
        return;
    }
    if (region == NULL)
        return;
    w->pids = mr_realloc(w->pids, (w->n_pids + 1) * sizeof(*w->pids));
    w->pids[w->n_pids].pid = pid;
    snprintf(w->pids[w->n_pids].region, sizeof(w->pids[0].region), "%s", region);
    w->n_pids++;
}

const char *wan__region_of_pid(const struct wan *w, int pid)
{
    for (size_t i = 0; i < w->n_pids; i++)
        if (w->pids[i].pid == pid)
            return w->pids[i].region;
    return NULL;
}

/* ---- routes ---- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct route *r = listener->data;

    if (status != 0) {
        mr_log(MR_LOG_WARN, "wan", "route %s: accept: %s", r->name, uv_strerror(status));
        return;
    }
    wan__conn_accept(r);
}

static void route_free_cb(uv_handle_t *h)
{
    mr_free(h->data);
}

int wan_route_add(struct wan *w, const char *name, const char *host, int port,
                  const char *target_host, int target_port, const char *link,
                  const char *to_region, int *bound, char *err)
{
    struct route *r;
    struct sockaddr_in sa;
    int len = sizeof(sa), rc, idx = -1;

    if (link != NULL && (idx = wan_link_find(w, link)) < 0)
        return mr_seterr(err, MR_ENOTFOUND, "route %s: no link '%s'", name, link);
    if (link == NULL && (to_region == NULL || *to_region == '\0'))
        return mr_seterr(err, MR_EINVAL, "route %s: expected a link or a destination region",
                         name);
    rc = uv_ip4_addr(target_host, target_port, &sa);
    if (rc != 0)
        return mr_seterr(err, MR_EINVAL, "route %s: target '%s:%d': expected an IPv4 address",
                         name, target_host, target_port);
    rc = uv_ip4_addr(host, port, &sa);
    if (rc != 0)
        return mr_seterr(err, MR_EINVAL, "route %s: listen '%s:%d': expected an IPv4 address",
                         name, host, port);
    r = mr_calloc(1, sizeof(*r));
    r->w = w;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->target_host, sizeof(r->target_host), "%s", target_host);
    r->target_port = target_port;
    r->link = idx;
    snprintf(r->to_region, sizeof(r->to_region), "%s", to_region ? to_region : "");
    uv_tcp_init(w->loop, &r->listener);
    r->listener.data = r;
    rc = uv_tcp_bind(&r->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&r->listener, 128, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&r->listener, (struct sockaddr *)&sa, &len);
    if (rc != 0) {
        uv_close((uv_handle_t *)&r->listener, route_free_cb);
        return mr_seterr(err, MR_EIO, "route %s: listen on %s:%d: %s", name, host, port,
                         uv_strerror(rc));
    }
    r->port = ntohs(sa.sin_port);
    *bound = r->port;
    w->routes = mr_realloc(w->routes, (w->n_routes + 1) * sizeof(*w->routes));
    w->routes[w->n_routes++] = r;
    mr_log(MR_LOG_DEBUG, "wan", "route %s: 127.0.0.1:%d -> %s:%d via %s%s", name, r->port,
           target_host, target_port, link ? link : "the source's link to ", link ? "" : to_region);
    return 0;
}

/* ---- closing ---- */

static void wan_free(struct wan *w)
{
    if (w->done)
        w->done(w->done_data);
    mr_free(w->links);
    mr_free(w->pids);
    mr_free(w);
}

/* Connections do not hold the wan once closing (their close callbacks only
 * free themselves), so the wan goes once its listeners are closed. */
static void route_closed(uv_handle_t *h)
{
    struct route *r = h->data;
    struct wan *w = r->w;

    mr_free(r);
    if (--w->n_closing == 0)
        wan_free(w);
}

void wan_close(struct wan *w, void (*done)(void *data), void *data)
{
    w->closing = 1;
    w->done = done;
    w->done_data = data;
    if (w->control) {
        http_server_close(w->control);
        w->control = NULL;
    }
    wan__conn_close_all(w);
    w->n_closing = (int)w->n_routes;
    for (size_t i = 0; i < w->n_routes; i++)
        uv_close((uv_handle_t *)&w->routes[i]->listener, route_closed);
    mr_free(w->routes);
    w->routes = NULL;
    w->n_routes = 0;
    if (w->n_closing == 0)
        wan_free(w);
}
