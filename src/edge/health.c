/* health.c -- the health state machine of one region and the retry budget
 * (edge.h).  Pure functions of their inputs: no clock, no I/O, so that unit
 * tests drive every transition directly.
 *
 * Why live failures mark a region down at once: until the next probes trip
 * (3 x 250 ms), every request would otherwise try the dead region first and
 * pay a failed attempt (../shared/notes/http-stack-facts.md: "mark it down
 * on the first connection refusal").  A refusal is proof enough on its own;
 * other failures (resets, timeouts, 5xx) count towards a consecutive-failure
 * threshold and an error rate over the last outcomes, so that one unlucky
 * request does not move a whole site's traffic.
 */
#include <stdio.h>

#include "edge.h"

const char *edge_state_name(enum edge_state s)
{
    switch (s) {
    case EDGE_UNKNOWN: return "unknown";
    case EDGE_HEALTHY: return "healthy";
    case EDGE_UNHEALTHY: return "unhealthy";
    }
    return "?";
}

const char *edge_outcome_name(enum edge_outcome o)
{
    switch (o) {
    case EDGE_OK: return "ok";
    case EDGE_REFUSED: return "connection refused";
    case EDGE_RESET: return "connection reset";
    case EDGE_TIMEOUT: return "timeout";
    case EDGE_5XX: return "5xx";
    case EDGE_BAD_RESPONSE: return "malformed response";
    }
    return "?";
}

void edge_health_init(struct edge_health *h)
{
    *h = (struct edge_health){0};
    h->state = EDGE_UNKNOWN;
}

static void window_clear(struct edge_health *h)
{
    h->w_len = h->w_pos = h->w_err = 0;
    h->live_fail = 0;
}

static int move(struct edge_health *h, enum edge_state to)
{
    if (h->state == to)
        return -1;
    h->state = to;
    /* A fresh start for whichever counters lead out of the new state. */
    h->probe_ok = h->probe_fail = 0;
    window_clear(h);
    return (int)to;
}

int edge_health_probe(struct edge_health *h, const struct edge_health_params *p, int ok,
                      char *reason, size_t n)
{
    if (ok) {
        h->probe_fail = 0;
        h->probe_ok++;
        if (h->state != EDGE_HEALTHY && h->probe_ok >= p->healthy_after) {
            snprintf(reason, n, "%d probe%s succeeded", h->probe_ok, h->probe_ok > 1 ? "s" : "");
            return move(h, EDGE_HEALTHY);
        }
        return -1;
    }
    h->probe_ok = 0;
    h->probe_fail++;
    if (h->state != EDGE_UNHEALTHY && h->probe_fail >= p->unhealthy_after) {
        snprintf(reason, n, "%d probe%s failed", h->probe_fail, h->probe_fail > 1 ? "s" : "");
        return move(h, EDGE_UNHEALTHY);
    }
    return -1;
}

int edge_health_live(struct edge_health *h, const struct edge_health_params *p,
                     enum edge_outcome o, char *reason, size_t n)
{
    int win = p->passive_window;
    int failed = o != EDGE_OK;

    if (win > EDGE_HEALTH_WINDOW)
        win = EDGE_HEALTH_WINDOW;
    if (win < 1)
        win = 1;
    /* the window of the last <win> outcomes */
    if (h->w_len == win) {
        h->w_err -= h->window[h->w_pos];
    } else {
        h->w_len++;
    }
    h->window[h->w_pos] = (uint8_t)failed;
    h->w_err += failed;
    h->w_pos = (h->w_pos + 1) % win;
    h->live_fail = failed ? h->live_fail + 1 : 0;
    if (!failed || h->state == EDGE_UNHEALTHY)
        return -1;
    if (o == EDGE_REFUSED) {
        snprintf(reason, n, "live request: connection refused");
        return move(h, EDGE_UNHEALTHY);
    }
    if (h->live_fail >= p->passive_failures) {
        snprintf(reason, n, "live requests: %d consecutive failures (last: %s)", h->live_fail,
                 edge_outcome_name(o));
        return move(h, EDGE_UNHEALTHY);
    }
    if (h->w_len == win && h->w_err * 100 >= p->passive_error_rate * win) {
        snprintf(reason, n, "live requests: %d of the last %d failed (last: %s)", h->w_err, win,
                 edge_outcome_name(o));
        return move(h, EDGE_UNHEALTHY);
    }
    return -1;
}

int edge_budget_allows(uint64_t in_flight, uint64_t retrying, int percent, int min)
{
    uint64_t cap = in_flight * (uint64_t)percent / 100;

    if (cap < (uint64_t)min)
        cap = (uint64_t)min;
    return retrying < cap;
}
