/* fuzz_gtab_batch.c -- the global tables' replication stream: the body of
 * POST /v1/tables/_replicate as a peer sends it ({"origin","from",
 * "entries":[{"seq","ts","e"}]}), applied to a real store as the node does
 * (tstream.c, tables__replicate_serve), then every item state of the batch
 * through the pure state functions (join, render, delete, expiry, ops).
 * A malformed batch must be refused with a message, never crash a region. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/token.h"
#include "fuzz.h"
#include "gtab/gtab.h"
#include "gtab/gtab_int.h"

/* Every state function on <s>, and joined with <other>. */
static void states(const json_t *s, const json_t *other)
{
    static const char ops_text[] = "[{\"op\":\"add\",\"field\":\"items\",\"value\":\"x\"},"
                                   "{\"op\":\"increment\",\"field\":\"count\",\"by\":-2},"
                                   "{\"op\":\"set\",\"field\":\"exp\",\"value\":1}]";
    char err[MR_ERRMSG_LEN], version[GTAB_VERSION_LEN];
    json_t *m = gtab_state_merge(s, other), *r, *ops, *out = NULL;

    json_decref(gtab_state_render(m));
    gtab_state_version(m, version, sizeof(version));
    (void)gtab__state_inert(m);
    if (json_is_object(m) && json_is_string(json_object_get(m, "k")) &&
        strcmp(json_string_value(json_object_get(m, "k")), "c") == 0) {
        r = gtab_state_crdt_delete(m, 1ull << 40, "fuzz");
        json_decref(gtab_state_render(r));
        json_decref(r);
        r = gtab__state_crdt_expire(m, 1ull << 40, "fuzz", 1000);
        json_decref(gtab_state_render(r));
        json_decref(r);
        ops = json_loads(ops_text, 0, NULL);
        err[0] = '\0';
        if (gtab_state_apply_ops(m, ops, 1ull << 41, "fuzz", &out, err) != 0 && err[0] == '\0')
            abort();
        json_decref(out);
        json_decref(ops);
    }
    json_decref(m);
}

static char path[96];

static void store_remove(void)
{
    char aux[120];

    unlink(path);
    snprintf(aux, sizeof(aux), "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof(aux), "%s-shm", path);
    unlink(aux);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN];
    struct gtab_batch b;
    const json_t *x, *prev = NULL;
    struct gtab *g;
    size_t i, applied;
    int rc;

    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "%s/meridian-fuzz-gtab-%d.db",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        atexit(store_remove); /* one store per process, gone with it */
    }
    /* The node's own decoding before the store sees the batch. */
    err[0] = '\0';
    if (gtab_batch_parse((const char *)data, size, &b, err) != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    /* A store per input; closing rolls the batch back, so the file stays
     * empty between inputs. */
    if (gtab_open(path, "fuzz-region", 0, &g, err) != 0)
        abort();
    err[0] = '\0';
    rc = gtab_apply_batch(g, b.origin, b.from, b.entries, &applied, err);
    if (rc != 0 && err[0] == '\0')
        abort();
    gtab_close(g);
    for (i = 0; i < json_array_size(b.entries); i++) {
        const json_t *s;
        x = json_array_get(b.entries, i);
        s = json_object_get(json_object_get(x, "e"), "s");
        states(s, prev);
        prev = s;
    }
    gtab_batch_close(&b);
    return 0;
}
