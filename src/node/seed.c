/* seed.c -- seeding a replica from another region's snapshot.
 *
 * A replica whose position is below the compacted part of the log (a new
 * region, or one away for longer than every other region waited) cannot
 * catch up from the log.  It asks etcd for the other nodes' addresses
 * (/meridian/<cluster>/nodes/<region>, published by every node), downloads
 * a consistent copy of one of their databases (GET /v1/snapshot, made with
 * SQLite's backup API), checks it, installs it in place of its own, and
 * resumes the log from the copy's position.  While it does, /readyz says
 * so.  Every node also serves /v1/snapshot to the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "node_int.h"

#define SNAPSHOT_CHUNK (256 * 1024)
/* Pause producing while this much of a snapshot waits for the socket. */
#define SNAPSHOT_HIGH_WATER (4 * 1024 * 1024)
#define SEED_RETRY_MS 2000
#define SEED_HEAD_TIMEOUT_MS 60000

/* ---- serving /v1/snapshot ------------------------------------------------ */

struct snap_send {
    struct node *n;
    struct http_exchange *ex;
    int fd;
    char path[512];
    uv_timer_t timer;
    struct snap_send *prev, *next;
};

static void send_closed(uv_handle_t *h)
{
    mr_free(h->data);
}

static void send_finish(struct snap_send *ss)
{
    struct node *n = ss->n;

    http_respond_end(ss->ex);
    close(ss->fd);
    unlink(ss->path);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        n->snap_sends = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    uv_timer_stop(&ss->timer);
    uv_close((uv_handle_t *)&ss->timer, send_closed);
}

/* Feed the answer while the socket keeps up; the timer polls the rest. */
static void send_pump(uv_timer_t *t)
{
    struct snap_send *ss = t->data;
    char *buf = mr_malloc(SNAPSHOT_CHUNK);

    while (http_exchange_buffered(ss->ex) < SNAPSHOT_HIGH_WATER) {
        ssize_t got = read(ss->fd, buf, SNAPSHOT_CHUNK);
        if (got == -1 && errno == EINTR)
            continue;
        if (got <= 0 || http_respond_chunk(ss->ex, buf, (size_t)got) != 0) {
            if (got == -1)
                mr_log(MR_LOG_WARN, "seed", "snapshot %s: read: %s", ss->path, strerror(errno));
            send_finish(ss);
            break;
        }
    }
    mr_free(buf);
}

int node__serve_file(struct node *n, struct http_exchange *ex, const char *path, const char *content_type,
                     const char *headers, char *err)
{
    struct snap_send *ss = mr_calloc(1, sizeof(*ss));

    ss->n = n;
    ss->ex = ex;
    snprintf(ss->path, sizeof(ss->path), "%s", path);
    ss->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ss->fd == -1) {
        int rc = mr_seterr(err, MR_EIO, "open %.180s: %s", path, strerror(errno));
        unlink(path);
        mr_free(ss);
        return rc;
    }
    http_respond_start(ex, 200, content_type, headers);
    ss->next = n->snap_sends;
    if (n->snap_sends)
        n->snap_sends->prev = ss;
    n->snap_sends = ss;
    uv_timer_init(n->loop, &ss->timer);
    ss->timer.data = ss;
    uv_timer_start(&ss->timer, send_pump, 0, 1);
    return 0;
}

void node__snapshot_serve(struct node *n, struct http_exchange *ex, int64_t start_us)
{
    char err[MR_ERRMSG_LEN] = "", hdr[160], path[512];
    struct store_position pos;
    int rc;

    snprintf(path, sizeof(path), "%s/snapshot-%016" PRIx64 ".db", n->cfg->data_dir, mr_random64());
    store_position(n->store, &pos);
    rc = store_read_unpin(n->store) != 0 ? mr_seterr(err, MR_EIO, "cannot end the read snapshot")
                                         : store_backup(n->store, path, err);
    /* The copy is taken under one read transaction at the applied position
     * read just before: nothing is applied in between (one loop). */
    snprintf(hdr, sizeof(hdr), "Meridian-Snapshot-Rev: %lld\r\n", (long long)pos.rev);
    if (rc == 0)
        rc = node__serve_file(n, ex, path, "application/vnd.sqlite3", hdr, err);
    else
        unlink(path);
    if (rc != 0) {
        node__respond_error(n, ex, ROUTE_OTHER, start_us, 500, "internal", err, NULL);
        return;
    }
    mr_log(MR_LOG_INFO, "seed", "serving a snapshot at revision %lld", (long long)pos.rev);
}

/* ---- publishing this node's address -------------------------------------- */

static void url_published(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct node *n = data;

    (void)revision;
    n->url_publishing = 0;
    if (rc == 0)
        n->url_published = 1;
    else
        mr_log(MR_LOG_WARN, "seed", "cannot publish this node's address: %s", errmsg);
}

void node__publish_url(struct node *n)
{
    if (n->url_published || n->url_publishing || n->stopping)
        return;
    n->url_publishing = 1;
    if (etcd_put(n->etcd, n->nodes_key, n->advertise_url, strlen(n->advertise_url), 5000,
                 url_published, n) != 0)
        n->url_publishing = 0;
}

/* ---- seeding this replica ------------------------------------------------- */

static void seed_next_peer(struct node *n);

static void seed_retry_fired(uv_timer_t *t)
{
    node__reseed_start(t->data, -1);
}

static void seed_give_up_round(struct node *n, const char *why)
{
    mr_log(MR_LOG_WARN, "seed", "no peer could seed this replica (%s); trying again in %d ms", why,
           SEED_RETRY_MS);
    uv_timer_start(&n->seed_retry, seed_retry_fired, SEED_RETRY_MS, 0);
}

static void seed_free_peers(struct node *n)
{
    for (size_t i = 0; i < n->n_seed_peers; i++)
        mr_free(n->seed_peers[i]);
    mr_free(n->seed_peers);
    n->seed_peers = NULL;
    n->n_seed_peers = n->seed_next = 0;
}

/* Check the downloaded copy and put it in place of the replica. */
static int seed_install(struct node *n, char *err)
{
    struct store_position pos;
    struct store *copy;
    char *db, *wal, *shm;
    int rc;

    rc = node__store_open(n, n->seed_path, &copy, err);
    if (rc != 0)
        return rc;
    store_position(copy, &pos);
    rc = store_integrity_check(copy, err);
    store_close(copy);
    if (rc != 0)
        return rc;
    if (pos.rev < n->seed_need_rev)
        return mr_seterr(err, MR_EUNAVAIL, "the copy is at revision %lld, below the compacted %lld",
                         (long long)pos.rev, (long long)n->seed_need_rev);
    db = mr_asprintf("%s/meridian.db", n->cfg->data_dir);
    wal = mr_asprintf("%s-wal", db);
    shm = mr_asprintf("%s-shm", db);
    store_close(n->store);
    n->store = NULL;
    if (rename(n->seed_path, db) != 0)
        rc = mr_seterr(err, MR_EIO, "rename %s: %s", n->seed_path, strerror(errno));
    unlink(wal);
    unlink(shm);
    if (node__store_open(n, db, &n->store, err) != 0 && rc == 0)
        rc = MR_EIO;
    mr_free(db);
    mr_free(wal);
    mr_free(shm);
    if (n->store == NULL) {
        node__fail(n, "cannot reopen the replica after seeding: %s", err);
        return MR_EIO;
    }
    store_position(n->store, &n->pos);
    return rc;
}

static void seed_body(struct http_call *call, const char *p, size_t len, void *data)
{
    struct node *n = data;

    (void)call;
    if (n->seed_fd != -1) {
        int e = mr_write_all(n->seed_fd, p, len);
        if (e != 0) {
            mr_log(MR_LOG_WARN, "seed", "write %s: %s", n->seed_path, strerror(e));
            close(n->seed_fd);
            n->seed_fd = -1; /* the download fails when it ends */
            return;
        }
        n->seed_bytes += (int64_t)len;
    }
}

static void seed_done(struct http_call *call, int rc, const struct http_response *resp, void *data)
{
    struct node *n = data;
    char err[MR_ERRMSG_LEN] = "";
    const char *peer = n->seed_peers[n->seed_next - 1];
    int ok = rc == 0 && resp->status == 200 && n->seed_fd != -1;

    (void)call;
    n->seed_call = NULL;
    if (n->seed_fd != -1) {
        if (fsync(n->seed_fd) != 0)
            ok = 0;
        close(n->seed_fd);
        n->seed_fd = -1;
    }
    if (n->stopping) {
        unlink(n->seed_path);
        return;
    }
    if (!ok) {
        mr_log(MR_LOG_WARN, "seed", "snapshot from %s failed: %s", peer,
               rc ? mr_strerror(rc) : resp->status != 200 ? "bad status" : "local write failed");
        unlink(n->seed_path);
        seed_next_peer(n);
        return;
    }
    if (seed_install(n, err) != 0) {
        mr_log(MR_LOG_WARN, "seed", "snapshot from %s (%lld bytes) not installed: %s", peer,
               (long long)n->seed_bytes, err);
        unlink(n->seed_path);
        if (!n->failed)
            seed_next_peer(n);
        return;
    }
    mr_log(MR_LOG_INFO, "seed", "seeded from %s (%lld bytes): replica now at revision %lld", peer,
           (long long)n->seed_bytes, (long long)n->pos.rev);
    n->stats.seeds++;
    n->seeding = 0;
    seed_free_peers(n);
    node__watch_start(n);
}

static void seed_next_peer(struct node *n)
{
    struct http_client_request req;
    char *host = NULL, *path = NULL;
    int port = 0;

    while (n->seed_next < n->n_seed_peers) {
        const char *url = n->seed_peers[n->seed_next++];
        char err[MR_ERRMSG_LEN];

        if (http_parse_url(url, &host, &port, &path, err) != 0) {
            mr_log(MR_LOG_WARN, "seed", "peer address '%s': %s", url, err);
            continue;
        }
        n->seed_fd = open(n->seed_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (n->seed_fd == -1) {
            mr_free(host);
            mr_free(path);
            seed_give_up_round(n, strerror(errno));
            return;
        }
        n->seed_bytes = 0;
        memset(&req, 0, sizeof(req));
        req.method = "GET";
        req.host = host;
        req.port = port;
        req.path = "/v1/snapshot";
        req.timeout_ms = SEED_HEAD_TIMEOUT_MS;
        req.on_body = seed_body;
        mr_log(MR_LOG_INFO, "seed", "downloading a snapshot from %s", url);
        if (http_client_request(n->peer_http, &req, seed_done, n, &n->seed_call) == 0) {
            mr_free(host);
            mr_free(path);
            return;
        }
        close(n->seed_fd);
        n->seed_fd = -1;
        mr_free(host);
        mr_free(path);
    }
    seed_free_peers(n);
    seed_give_up_round(n, "every peer failed");
}

static void seed_peers_listed(int rc, const struct etcd_kv *kvs, size_t count, const char *errmsg,
                              void *data)
{
    struct node *n = data;

    if (n->stopping)
        return;
    if (rc != 0) {
        seed_give_up_round(n, errmsg ? errmsg : mr_strerror(rc));
        return;
    }
    seed_free_peers(n);
    n->seed_peers = mr_calloc(count ? count : 1, sizeof(*n->seed_peers));
    for (size_t i = 0; i < count; i++)
        if (strcmp(kvs[i].key, n->nodes_key) != 0)
            n->seed_peers[n->n_seed_peers++] = mr_strndup(kvs[i].value, kvs[i].value_len);
    seed_next_peer(n);
}

void node__reseed_start(struct node *n, int64_t compact_revision)
{
    if (n->stopping || n->failed)
        return;
    if (compact_revision >= 0) {
        if (n->seeding)
            return;
        mr_log(MR_LOG_WARN, "seed",
               "the log is compacted up to revision %lld and this replica is at %lld: seeding it "
               "from another region's snapshot", (long long)compact_revision, (long long)n->pos.rev);
        n->seeding = 1;
        n->seed_need_rev = compact_revision;
    }
    if (n->peer_http == NULL) {
        struct http_client_opts o;
        node__client_opts(n, &o);   /* /v1/snapshot needs the peer scope */
        if (http_client_new(n->loop, &o, &n->peer_http) != 0) {
            node__fail(n, "cannot create the HTTP client for seeding");
            return;
        }
    }
    if (etcd_get_prefix(n->etcd, n->nodes_prefix, 5000, seed_peers_listed, n) != 0)
        seed_give_up_round(n, "cannot ask etcd for peers");
}

void node__seed_init(struct node *n)
{
    n->seed_fd = -1;
    snprintf(n->seed_path, sizeof(n->seed_path), "%s/seed.db.part", n->cfg->data_dir);
    uv_timer_init(n->loop, &n->seed_retry);
    n->seed_retry.data = n;
}

void node__seed_close(struct node *n)
{
    uv_timer_stop(&n->seed_retry);
    uv_close((uv_handle_t *)&n->seed_retry, NULL);
    while (n->snap_sends)
        send_finish(n->snap_sends);
    if (n->peer_http) {
        /* Cancels a download in flight: seed_done sees <stopping>. */
        http_client_free(n->peer_http);
        n->peer_http = NULL;
    }
}

void node__seed_free(struct node *n)
{
    seed_free_peers(n);
    if (n->seed_fd != -1)
        close(n->seed_fd);
}
