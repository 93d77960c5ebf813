/* gameday.h -- `meridian gameday`: break regions under load, measure the
 * recovery, prove nothing was lost (docs/gameday.md).
 *
 * Three parts, usable on their own:
 *   - scenarios: an INI file of traffic settings, targets and a timeline of
 *     faults (gd_scenario_parse);
 *   - checkers: pure functions from what the clients saw (the history) and
 *     what every region holds at the end (the state) to counts of lost and
 *     duplicate orders, oversold stock, unconverged carts and stale reads
 *     (gd_check), tested against histories with planted faults;
 *   - the run: traffic through every site's edge, the faults on their
 *     timeline, measurements, verification, the reports (gd_run).
 */
#ifndef MR_GAMEDAY_H
#define MR_GAMEDAY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define GD_MAX_FAULTS 16
#define GD_NAME_MAX 47

/* ---- Scenarios ---- */

enum gd_fault_kind {
    GD_KILL,        /* SIGKILL every process of the region; healed by a restart */
    GD_FREEZE,      /* SIGSTOP; healed by SIGCONT */
    GD_PARTITION,   /* blackhole every link touching the region; healed by heal */
    GD_LINK_CUT,    /* blackhole one directed link ("us-east-1->eu-west-1") */
    GD_LATENCY,     /* add latency to every link touching the region */
    GD_KILL_NODE,   /* SIGKILL the region's node only (its etcd member stays) */
    GD_KILL_LEADER, /* SIGKILL the region of the etcd leader, found when the fault starts */
    GD_SHOP_5XX,    /* the region's shops answer <status> on <paths> (POST /admin/faults); healed: off */
    GD_SHOP_HANG,   /* the region's shops never answer on <paths> (held); healed: off */
    GD_FAULT_KIND_COUNT
};

struct gd_fault {
    char name[GD_NAME_MAX + 1];
    enum gd_fault_kind kind;
    char region[GD_NAME_MAX + 1];   /* the region, or for link_cut the link name */
    int64_t at_ms;                  /* from the start of the measured traffic */
    int64_t duration_ms;            /* until healed */
    int64_t latency_ms;             /* GD_LATENCY: added one-way delay */
    int repeat;                     /* flapping: apply and heal this many times */
    int64_t period_ms;              /* flapping: from one application to the next */
    int status;                     /* GD_SHOP_5XX: the status answered (default 503) */
    char paths[128];                /* GD_SHOP_*: comma-separated path prefixes (default "/") */
};

struct gd_targets {
    double detect_s;                /* first edge marks the region down */
    double reroute_s;               /* affected sites served again */
    double error_rate;              /* during the transition */
    int64_t lost_orders, duplicate_orders, oversold, carts_unconverged, ryw_violations;
};

struct gd_scenario {
    char name[GD_NAME_MAX + 1];
    char *description;              /* owned */
    double rate;                    /* requests per second per site (open loop) */
    int shoppers;                   /* virtual shoppers per site */
    int64_t warmup_ms, duration_ms, settle_ms;
    /* Mix of actions, in parts (normalised): browse a listing, view a
     * product, add to the cart, check out, read the order history. */
    double mix_browse, mix_product, mix_cart, mix_checkout, mix_orders;
    struct gd_targets targets;
    struct gd_fault faults[GD_MAX_FAULTS];
    size_t n_faults;
};

const char *gd_fault_kind_name(enum gd_fault_kind k);

/* Parse a scenario from <text> (<source> names it in errors).  0, or
 * MR_ECONFIG with "source:line: ..." in <err>.  *out is freed with
 * gd_scenario_free. */
int gd_scenario_parse(const char *text, const char *source, struct gd_scenario **out, char *err)
    __attribute__((warn_unused_result));
int gd_scenario_load(const char *path, struct gd_scenario **out, char *err)
    __attribute__((warn_unused_result));
void gd_scenario_free(struct gd_scenario *s);

/* ---- Checkers ----
 *
 * history (what clients saw; gd_run records it, tests plant faults in it):
 *   {"acked_orders": [{"ref", "session", "lines": [{"sku", "qty"}]}],
 *    "attempts": {"<session>": N},     checkouts that may have reached the
 *                                      database (acknowledged or unknown),
 *                                      once per cart the client may have
 *                                      had: a cart changes with every add
 *                                      acknowledged or left unanswered, and
 *                                      every order acknowledged
 *    "cart_adds": {"<session>": ["sku", ...]},  acknowledged adds still
 *                                      expected in the cart at the end
 *    "ryw_violations": ["what the client saw", ...]}
 * state (what every region holds after healing and settling):
 *   {"initial_stock": {"<sku>": N},
 *    "regions": [{"name", "orders": [{"ref", "session", "lines": [...]}],
 *                 "stock": {"<sku>": N}, "carts_digest": "...",
 *                 "carts": {"<session>": ["sku", ...]},
 *                 "unread": ["what could not be read: why", ...]}]}
 *
 * Returns a new object (the caller json_decrefs it):
 *   {"lost_orders", "duplicate_orders", "oversold", "carts_unconverged",
 *    "ryw_violations": counts, "failures": ["one line per problem", ...]}
 * (at most GD_MAX_LISTED lines are listed per check; the counts are exact).
 * A malformed history or state is itself a failure, listed.  So is a region
 * with "unread" entries: the checks that need its state are then -1 (not
 * verified), never counted as lost. */
#define GD_MAX_LISTED 20
json_t *gd_check(const json_t *history, const json_t *state);

/* ---- The run ---- */

struct gd_options {
    const char *exe;          /* the meridian binary */
    const char *topology;     /* NULL: the default topology */
    const char *rundir;       /* attach to this running topology; NULL: start one */
    const char *report_dir;   /* NULL: ./gameday-<scenario> */
    const char *latency_scale;/* NULL: up's default */
    int quiet;                /* no live progress line */
};

/* Run <s>; write report.json and report.html into the report directory and
 * the summary to stdout.  Returns 0 when every target and check passed, 1
 * when one failed, or a (negative) MR_E* with <err> when the game day could
 * not run. */
int gd_run(const struct gd_scenario *s, const struct gd_options *o, char *err);

#endif
