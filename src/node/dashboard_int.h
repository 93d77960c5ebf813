/* dashboard_int.h -- the operations dashboard of a node (dashboard.c):
 * GET /dashboard (one HTML page with its own small script) and
 * GET /v1/dashboard (the JSON the page polls).  See docs/dashboard.md.
 *
 * The pure parts are here so that unit tests reach them without a loop:
 *   - struct dash_history: a ring of DASH_HISTORY samples (one per tick),
 *     each a time and one value per named series (NaN: no value then);
 *   - struct dash_events: the last DASH_MAX_EVENTS events;
 *   - struct dash_observer: state changes seen so far, from which events
 *     are derived (a region going unreachable and back, the etcd leader
 *     moving, an edge's region state changing);
 *   - the parser of "[dashboard] edges".
 *
 * Series names are "<group>:<label>", e.g. "sql_lag_ms:us-east-1>eu-west-1"
 * (groups: sql_lag_ms, tables_lag_ms, region_rps, region_error_pct,
 * edge_rps, edge_error_pct); the page draws one chart per group.
 */
#ifndef MR_NODE_DASHBOARD_INT_H
#define MR_NODE_DASHBOARD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

#define DASH_HISTORY 300        /* samples kept: 5 minutes at one per second */
#define DASH_TICK_MS 1000
#define DASH_FETCH_TIMEOUT_MS 900
#define DASH_MAX_SERIES 128
#define DASH_SERIES_NAME 160
#define DASH_MAX_EVENTS 100
#define DASH_MAX_REGIONS 16
#define DASH_MAX_EDGES 16
#define DASH_NAME_MAX 64
#define DASH_URL_MAX 256

/* ---- history ---------------------------------------------------------------- */

struct dash_series {
    char name[DASH_SERIES_NAME];
    double v[DASH_HISTORY];
};

struct dash_history {
    int64_t t_ms[DASH_HISTORY];
    size_t head;                 /* slot of the current (latest) sample */
    size_t n;                    /* samples held, at most DASH_HISTORY */
    struct dash_series *series[DASH_MAX_SERIES];
    size_t n_series;
};

void dash_history_init(struct dash_history *h);
/* Frees the series (the struct itself is the caller's). */
void dash_history_close(struct dash_history *h);
/* Start a new sample at <t_ms>: the oldest goes once the ring is full;
 * every series has no value (NaN) in it until dash_history_set. */
void dash_history_tick(struct dash_history *h, int64_t t_ms);
/* Set series <name>'s value in the current sample, creating the series
 * (NaN in every earlier sample) if new.  Returns 0, or MR_ETOOBIG when
 * DASH_MAX_SERIES series exist already or <name> is too long, or MR_EINVAL
 * before the first tick. */
int dash_history_set(struct dash_history *h, const char *name, double v);
/* The value of <name> in the current sample (NaN: none or no such series). */
double dash_history_last(const struct dash_history *h, const char *name);
/* Append {"interval_ms":..,"t":[oldest..latest],"series":[{"name","values"}]}
 * (values aligned with "t", null for no value). */
void dash_history_json(const struct dash_history *h, struct mr_buf *b);

/* ---- events ----------------------------------------------------------------- */

struct dash_event {
    int64_t at_ms;               /* wall clock */
    char kind[24];               /* region_down, region_back, leader, leader_moved, rerouted,
                                    edge_region_back, edge_region, wan_unreachable, wan_back */
    char subject[DASH_NAME_MAX]; /* the region (or edge) it is about */
    char text[200];
};

struct dash_events {
    struct dash_event ev[DASH_MAX_EVENTS];
    uint64_t n;                  /* ever added; the last DASH_MAX_EVENTS are kept */
};

void dash_events_add(struct dash_events *e, int64_t at_ms, const char *kind, const char *subject,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Append the kept events, oldest first, as a JSON array of
 * {"at_ms","kind","subject","text"}. */
void dash_events_json(const struct dash_events *e, struct mr_buf *b);

/* ---- event derivation --------------------------------------------------------- */

struct dash_observer {
    struct {
        char region[DASH_NAME_MAX];
        int up;                  /* 1 reachable, 0 not */
    } regions[DASH_MAX_REGIONS];
    size_t n_regions;
    char leader[DASH_NAME_MAX];  /* "" until one is known */
    struct {
        char key[2 * DASH_NAME_MAX + 2];   /* "<edge>/<region>" */
        int64_t last_at_ms;      /* latest transition already turned into an event */
    } edge_seen[DASH_MAX_EDGES * DASH_MAX_REGIONS];
    size_t n_edge_seen;
};

/* <region> was (<reachable> 1) or was not (0) reachable at <now_ms>.  The
 * first observation of a region adds an event only when it is down; later
 * ones when the state changes (region_down / region_back).  Returns 1 when an
 * event was added. */
int dash_observe_region(struct dash_observer *o, struct dash_events *e, const char *region,
                        int reachable, int64_t now_ms);
/* The etcd leader is in region <leader> ("" or NULL: not known now, which
 * adds nothing and forgets nothing).  The first leader known adds a
 * "leader" event, a different one later "leader_moved".  Returns 1 when an
 * event was added. */
int dash_observe_leader(struct dash_observer *o, struct dash_events *e, const char *leader,
                        int64_t now_ms);
/* Edge <edge> reports that its view of <region> went <from> -> <to> at
 * <at_ms> for <reason>.  Transitions no later than one already seen for
 * the pair are ignored (an edge reports its last 16 every time).
 * healthy -> unhealthy: "rerouted"; unhealthy -> healthy:
 * "edge_region_back"; otherwise (from unknown, at the edge's start)
 * "edge_region".  Returns 1 when an event was added. */
int dash_observe_edge_transition(struct dash_observer *o, struct dash_events *e, const char *edge,
                                 const char *region, int64_t at_ms, const char *from,
                                 const char *to, const char *reason);

/* ---- config ----------------------------------------------------------------- */

/* Parse "[dashboard] edges": "name=http://host:port,..." ("none": no edge)
 * into <names>/<urls> (at most <max>; *n_out of them).  Names are 1 to
 * DASH_NAME_MAX - 1 bytes of [A-Za-z0-9._-].  MR_ECONFIG with a message. */
int dash_parse_edges(const char *s, char (*names)[DASH_NAME_MAX], char (*urls)[DASH_URL_MAX],
                     size_t max, size_t *n_out, char *err);

/* Append <s> HTML-escaped (& < > " ') to <b>. */
void dash_html_escape(struct mr_buf *b, const char *s);

/* The page served at GET /dashboard (static: it reads everything from
 * GET /v1/dashboard). */
extern const char dash_page_html[];

#endif
