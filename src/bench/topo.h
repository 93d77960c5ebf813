/* topo.h -- a local topology for the demo and the benchmarks: started with
 * the same launcher as everything else (`meridian up --detach`), read back
 * from RUNDIR/topology.json, stopped with `meridian down`. */
#ifndef MR_TOPO_H
#define MR_TOPO_H

#include <jansson.h>
#include <stddef.h>

#define TOPO_MAX_REGIONS 8

struct topo_region {
    char name[40];
    char host[64];
    int port;
    char url[128];
};

struct topo {
    char *rundir;              /* owned */
    int remove_dir;            /* created by topo_up: removed by topo_down */
    struct topo_region regions[TOPO_MAX_REGIONS];
    size_t n_regions;
};

/* Start <topology> (NULL: the default) in <dir> (NULL: a new temporary
 * directory, removed again by topo_down) with <exe> (the meridian binary).
 * Output of `up` goes to stdout when <verbose>.  Returns 0 or MR_E* with
 * <err>; nothing is left running on failure. */
int topo_up(struct topo *t, const char *exe, const char *topology, const char *dir, int verbose,
            char *err) __attribute__((warn_unused_result));

/* Stop everything and free <t>'s strings. */
void topo_down(struct topo *t, const char *exe);

/* POST a JSON body to <r>'s /v1/sql; *answer gets the parsed reply (caller
 * json_decref) and *status the HTTP status.  Returns 0 or MR_E*. */
int topo_sql(const struct topo_region *r, const char *body, int *status, json_t **answer,
             char *err) __attribute__((warn_unused_result));

/* GET <path> of <r> as JSON. */
int topo_get_json(const struct topo_region *r, const char *path, json_t **answer, char *err)
    __attribute__((warn_unused_result));

#endif
