/* gameday_int.h -- what the files of src/gameday share; not for other modules. */
#ifndef MR_GAMEDAY_INT_H
#define MR_GAMEDAY_INT_H

#include <jansson.h>
#include <stdint.h>

#include "../common/err.h"
#include "gameday.h"

#define GD_MAX_SITES 8
#define GD_MAX_REGIONS 8

#define GD_REGION_CACHE (-2)
#define GD_EDGE_CACHE "edge cache"

enum gd_action { A_BROWSE, A_PRODUCT, A_CART, A_CHECKOUT, A_ORDERS, A_COUNT };

/* One request as the clients saw it. */
struct gd_sample {
    int64_t t_ms;        /* start, from the start of the measured traffic */
    float latency_ms;
    int16_t status;      /* HTTP status, 0: no answer */
    uint8_t site;
    uint8_t action;
    int8_t region;       /* index of the region that served it (Meridian-Region),
                            GD_REGION_CACHE: the edge's cache; -1: unknown */
    uint8_t ok;
};

/* A fault as it happened. */
struct gd_applied {
    const struct gd_fault *fault;
    int round;                       /* 0..repeat-1 */
    char region[GD_NAME_MAX + 1];    /* resolved (kill_leader) */
    int64_t t_ms, heal_t_ms;         /* from the start of the measured traffic */
    int64_t wall_ms, heal_wall_ms;   /* mr_now_ms() at the same moments */
    int64_t catch_up_ms;             /* heal until every region caught up; -1 */
    int rc, heal_rc;
    char error[MR_ERRMSG_LEN + 2 * GD_NAME_MAX];
};

struct gd_outcome {
    const struct gd_scenario *s;
    char regions[GD_MAX_REGIONS][GD_NAME_MAX + 1];
    size_t n_regions;
    char sites[GD_MAX_SITES][GD_NAME_MAX + 1];
    size_t n_sites;
    struct gd_sample *samples;
    size_t n_samples;
    struct gd_applied applied[GD_MAX_FAULTS * 4];
    size_t n_applied;
    json_t *edge_status[GD_MAX_SITES];   /* each edge's /v1/status at the end */
    json_t *checks;                      /* gd_check's answer */
    int64_t started_wall_ms;
};

/* Measurements and verdicts of <o> as the report object (report.json);
 * *passed is 1 when every target and check passed. */
json_t *gd__report_json(const struct gd_outcome *o, int *passed);
int gd__write_reports(const json_t *report, const char *dir, char *err);
void gd__print_summary(const json_t *report);

#endif
