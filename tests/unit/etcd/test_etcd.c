/* Unit tests of src/etcd against a real single-member etcd started here
 * (kernel-chosen ports, temp dir removed at the end), run once per transport
 * (native gRPC: grpc.c, h2.c, pb.c; JSON gateway): puts, gets, prefix reads,
 * compaction, status, watches in revision order and below a compaction,
 * failover past a dead endpoint or a member killed mid-stream, many calls at
 * once; and, offline, the protobuf / gRPC-frame decoders on malformed and
 * mutated input and the refusal of bad endpoint lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"
#include "etcd/etcd.h"
#include "etcd/etcd_int.h"
#include "lib/wait.h"

static pid_t etcd_pid;
static char dir[64];
static char endpoint[64];
static char dead_endpoint[64];

/* The transport the online tests run with: main() runs them once per
 * transport, since both must behave the same behind etcd.h. */
static enum etcd_transport transport = ETCD_TRANSPORT_GRPC;

static int new_client(uv_loop_t *loop, const char *endpoints, uint64_t timeout_ms, struct etcd **e)
{
    struct etcd_opts o = {endpoints, timeout_ms, transport};
    char err[MR_ERRMSG_LEN] = "";
    int rc = etcd_new_opts(loop, &o, e, err);

    if (rc != 0)
        fprintf(stderr, "etcd_new_opts: %s\n", err);
    return rc;
}

/* ---- a tiny synchronous driver over the async API ----------------------- */

struct result {
    int done, rc;
    int64_t rev, version, hrev;
    int found;
    char value[256];
    char errmsg[MR_ERRMSG_LEN];
    size_t n;
    char keys[8][32];
    struct etcd_member_status st;
};

static void put_cb(int rc, int64_t revision, const char *errmsg, void *data)
{
    struct result *r = data;
    r->done = 1;
    r->rc = rc;
    r->rev = revision;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
}

static void get_cb(int rc, const struct etcd_kv *kv, int64_t header_revision, const char *errmsg,
                   void *data)
{
    struct result *r = data;
    (void)errmsg;
    r->done = 1;
    r->rc = rc;
    r->hrev = header_revision;
    r->found = kv != NULL;
    if (kv) {
        r->rev = kv->mod_revision;
        r->version = kv->version;
        assert_int_equal(kv->value[kv->value_len], '\0');
        snprintf(r->value, sizeof(r->value), "%.*s", (int)kv->value_len, kv->value);
    }
}

static void prefix_cb(int rc, const struct etcd_kv *kvs, size_t n, const char *errmsg, void *data)
{
    struct result *r = data;
    (void)errmsg;
    r->done = 1;
    r->rc = rc;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(r->keys[i], sizeof(r->keys[i]), "%s", kvs[i].key);
}

static void done_cb(int rc, const char *errmsg, void *data)
{
    struct result *r = data;
    r->done = 1;
    r->rc = rc;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
}

static void status_cb(int rc, const struct etcd_member_status *st, void *data)
{
    struct result *r = data;
    r->done = 1;
    r->rc = rc;
    r->st = *st;
}

static void run_until(uv_loop_t *loop, int *flag)
{
    int64_t deadline = test_now_ms() + test_timeout_ms(10000);
    while (!*flag && test_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void close_client(uv_loop_t *loop, struct etcd *e)
{
    etcd_free(e);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static int etcd_healthy(void *arg)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result r = {0};
    (void)arg;
    uv_loop_init(&loop);
    if (etcd_new(&loop, endpoint, 500, &e, NULL) != 0)
        return 0;
    if (etcd_get(e, "/health-probe", 500, get_cb, &r) == 0)
        while (!r.done)
            uv_run(&loop, UV_RUN_ONCE);
    etcd_free(e);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return r.done && r.rc == 0;
}

static int setup(void **state)
{
    int client = mr_free_port(), peer = mr_free_port();
    char curls[64], purls[64], cluster[96];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mr-etcd-grpc-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", client);
    snprintf(dead_endpoint, sizeof(dead_endpoint), "http://127.0.0.1:%d", mr_free_port());
    snprintf(curls, sizeof(curls), "http://127.0.0.1:%d", client);
    snprintf(purls, sizeof(purls), "http://127.0.0.1:%d", peer);
    snprintf(cluster, sizeof(cluster), "t=%s", purls);
    etcd_pid = fork();
    if (etcd_pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execlp("etcd", "etcd", "--name", "t", "--data-dir", dir, "--listen-client-urls", curls,
               "--advertise-client-urls", curls, "--listen-peer-urls", purls,
               "--initial-advertise-peer-urls", purls, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    return wait_for(etcd_healthy, NULL, 20000);
}

static int teardown(void **state)
{
    char cmd[128];
    int status;

    (void)state;
    kill(etcd_pid, SIGKILL);
    waitpid(etcd_pid, &status, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- against etcd -------------------------------------------------------- */

static void put_then_get_returns_value_and_revisions(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p1 = {0}, p2 = {0}, g = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_transport(e), transport);
    assert_int_equal(etcd_put(e, "/g/k", "one", 3, 5000, put_cb, &p1), 0);
    run_until(&loop, &p1.done);
    assert_int_equal(etcd_put(e, "/g/k", "two\0x", 5, 5000, put_cb, &p2), 0);
    run_until(&loop, &p2.done);
    assert_int_equal(p1.rc, 0);
    assert_int_equal(p2.rc, 0);
    assert_true(p2.rev > p1.rev);
    assert_int_equal(etcd_get(e, "/g/k", 5000, get_cb, &g), 0);
    run_until(&loop, &g.done);
    assert_int_equal(g.rc, 0);
    assert_true(g.found);
    assert_int_equal(g.rev, p2.rev);
    assert_true(g.hrev >= p2.rev);
    assert_int_equal(g.version, 2);
    assert_string_equal(g.value, "two");
    close_client(&loop, e);
}

static void empty_value_round_trips(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0}, g = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_put(e, "/g/empty", "", 0, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(p.rc, 0);
    assert_int_equal(etcd_get(e, "/g/empty", 5000, get_cb, &g), 0);
    run_until(&loop, &g.done);
    assert_true(g.found);
    assert_string_equal(g.value, "");
    close_client(&loop, e);
}

static void missing_key_is_reported_absent(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result g = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_get(e, "/g/absent", 5000, get_cb, &g), 0);
    run_until(&loop, &g.done);
    assert_int_equal(g.rc, 0);
    assert_false(g.found);
    assert_true(g.hrev > 0);
    close_client(&loop, e);
}

static void prefix_read_returns_keys_in_order(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p[3] = {{0}}, q = {0};
    const char *keys[] = {"/g/p/b", "/g/p/a", "/g/p/c"};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(etcd_put(e, keys[i], "v", 1, 5000, put_cb, &p[i]), 0);
    for (int i = 0; i < 3; i++) {
        run_until(&loop, &p[i].done);
        assert_int_equal(p[i].rc, 0);
    }
    /* A key just past the prefix must not show. */
    assert_int_equal(etcd_put(e, "/g/q", "v", 1, 5000, put_cb, &q), 0);
    run_until(&loop, &q.done);
    memset(&q, 0, sizeof(q));
    assert_int_equal(etcd_get_prefix(e, "/g/p/", 5000, prefix_cb, &q), 0);
    run_until(&loop, &q.done);
    assert_int_equal(q.rc, 0);
    assert_int_equal(q.n, 3);
    assert_string_equal(q.keys[0], "/g/p/a");
    assert_string_equal(q.keys[1], "/g/p/b");
    assert_string_equal(q.keys[2], "/g/p/c");
    assert_int_equal(etcd_get_prefix(e, "", 5000, prefix_cb, &q), MR_EINVAL);
    close_client(&loop, e);
}

static void status_reports_member_and_leader(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result s = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_status(e, 0, status_cb, &s), 0);
    run_until(&loop, &s.done);
    assert_int_equal(s.rc, 0);
    assert_true(s.st.reachable);
    assert_true(s.st.member_id != 0);
    /* One member: it is the leader. */
    assert_true(s.st.leader_id == s.st.member_id);
    assert_true(s.st.raft_index > 0);
    assert_true(s.st.db_size > 0);
    assert_string_equal(s.st.endpoint, endpoint);
    assert_int_equal(etcd_status(e, 1, status_cb, &s), MR_EINVAL);
    close_client(&loop, e);
}

static void many_concurrent_puts_share_one_connection(void **state)
{
    enum { N = 200 };
    uv_loop_t loop;
    struct etcd *e;
    static struct result p[N];
    int64_t deadline;
    int done = 0;

    (void)state;
    memset(p, 0, sizeof(p));
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 5000, &e), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(etcd_put(e, "/g/many", "v", 1, 10000, put_cb, &p[i]), 0);
    deadline = test_now_ms() + test_timeout_ms(20000);
    while (done < N && test_now_ms() < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += p[i].done;
    }
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].rc, 0);
        for (int j = 0; j < i; j++)
            assert_true(p[i].rev != p[j].rev);
    }
    close_client(&loop, e);
}

static void put_fails_over_past_a_dead_endpoint(void **state)
{
    char both[160];
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};

    (void)state;
    snprintf(both, sizeof(both), "%s,%s", dead_endpoint, endpoint);
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, both, 1000, &e), 0);
    assert_int_equal(etcd_put(e, "/g/f", "x", 1, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(p.rc, 0);
    assert_string_equal(etcd_current_endpoint(e), endpoint);
    close_client(&loop, e);
}

static void put_to_only_dead_endpoints_fails_at_the_deadline(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, dead_endpoint, 200, &e), 0);
    assert_int_equal(etcd_put(e, "/g/f", "x", 1, 600, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(p.rc, MR_ECONN);
    /* The message names what failed, in the transport's terms. */
    assert_non_null(strstr(p.errmsg, transport == ETCD_TRANSPORT_GRPC ? "/etcdserverpb.KV/Put"
                                                                      : "/v3/kv/put"));
    close_client(&loop, e);
}

static void free_with_calls_in_flight_ends_them_closed(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p[4] = {{0}};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(etcd_put(e, "/g/free", "x", 1, 5000, put_cb, &p[i]), 0);
    etcd_free(e);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(p[i].done, 1);
        assert_int_equal(p[i].rc, MR_ECLOSED);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

struct watched {
    int64_t revs[16];
    char values[16][8];
    int n, ended, end_rc, cancel_at;
    int64_t compact_rev;
    char errmsg[MR_ERRMSG_LEN];
};

static void on_event(struct etcd_watch *w, const struct etcd_kv *kv, void *data)
{
    struct watched *x = data;
    if (x->n < 16) {
        x->revs[x->n] = kv->mod_revision;
        snprintf(x->values[x->n], sizeof(x->values[0]), "%.*s", (int)kv->value_len, kv->value);
        x->n++;
    }
    /* Cancelling from inside an event callback must be safe. */
    if (x->cancel_at && x->n == x->cancel_at)
        etcd_watch_cancel(w);
}

static void on_end(struct etcd_watch *w, int rc, int64_t compact_revision, const char *errmsg,
                   void *data)
{
    struct watched *x = data;
    (void)w;
    x->ended = 1;
    x->end_rc = rc;
    x->compact_rev = compact_revision;
    snprintf(x->errmsg, sizeof(x->errmsg), "%s", errmsg ? errmsg : "");
}

static void watch_until(uv_loop_t *loop, struct watched *x, int n)
{
    int64_t deadline = test_now_ms() + test_timeout_ms(5000);
    while (x->n < n && !x->ended && test_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(x->n, n);
}

static void watch_replays_history_in_order_then_follows_live_puts(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct etcd_watch *w;
    struct result p[5] = {{0}};
    struct watched x = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    for (int i = 0; i < 3; i++) {
        char v[2] = {(char)('a' + i), 0};
        assert_int_equal(etcd_put(e, "/g/w", v, 1, 5000, put_cb, &p[i]), 0);
        run_until(&loop, &p[i].done);
    }
    /* From the first put's revision: history arrives, in order. */
    assert_int_equal(etcd_watch(e, "/g/w", p[0].rev, on_event, on_end, &x, &w), 0);
    watch_until(&loop, &x, 3);
    /* Then puts made while watching, on the same connection (one after
     * the other: concurrent puts may commit in either order). */
    for (int i = 3; i < 5; i++) {
        char v[2] = {(char)('a' + i), 0};
        assert_int_equal(etcd_put(e, "/g/w", v, 1, 5000, put_cb, &p[i]), 0);
        run_until(&loop, &p[i].done);
    }
    watch_until(&loop, &x, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x.revs[i], p[i].rev);
        assert_int_equal(x.values[i][0], 'a' + i);
    }
    etcd_watch_cancel(w);
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECLOSED);
    close_client(&loop, e);
}

static void watch_cancelled_from_its_event_callback_ends_once(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0};
    struct watched x = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_put(e, "/g/wc", "a", 1, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    x.cancel_at = 1;
    assert_int_equal(etcd_watch(e, "/g/wc", p.rev, on_event, on_end, &x, NULL), 0);
    run_until(&loop, &x.ended);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.end_rc, MR_ECLOSED);
    close_client(&loop, e);
}

static void watch_below_compaction_ends_with_ecompacted(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct result p = {0}, c = {0}, c2 = {0};
    struct watched x = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, endpoint, 2000, &e), 0);
    assert_int_equal(etcd_put(e, "/g/c", "x", 1, 5000, put_cb, &p), 0);
    run_until(&loop, &p.done);
    assert_int_equal(etcd_compact(e, p.rev, 5000, done_cb, &c), 0);
    run_until(&loop, &c.done);
    assert_int_equal(c.rc, 0);
    /* Compacting to the same revision again counts as success. */
    assert_int_equal(etcd_compact(e, p.rev, 5000, done_cb, &c2), 0);
    run_until(&loop, &c2.done);
    assert_int_equal(c2.rc, 0);
    assert_int_equal(etcd_watch(e, "/g/c", 1, on_event, on_end, &x, NULL), 0);
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECOMPACTED);
    assert_int_equal(x.compact_rev, p.rev);
    close_client(&loop, e);
}

static void watch_on_dead_endpoint_ends_with_econn(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    struct watched x = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(new_client(&loop, dead_endpoint, 1000, &e), 0);
    assert_int_equal(etcd_watch(e, "/g/x", 1, on_event, on_end, &x, NULL), 0);
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECONN);
    close_client(&loop, e);
}

/* ---- a member that dies: an in-process TCP relay to etcd ------------------
 *
 * The relay listens on a kernel-chosen port and pipes each connection to
 * etcd.  relay_kill stands for SIGKILL of the member: every connection is
 * reset and the port refuses new ones.  In RELAY_RESET mode it accepts and
 * resets at once, as a WAN proxy whose upstream member is dead does. */

enum relay_mode { RELAY_PIPE, RELAY_RESET };

struct relay_conn;

struct relay {
    uv_loop_t *loop;
    uv_tcp_t listener;
    enum relay_mode mode;
    int target_port;
    char url[64];
    int accepted;
    struct relay_conn *conns;
};

/* Two sockets, a (our client) and b (etcd); freed when both are closed. */
struct relay_conn {
    struct relay *r;
    uv_tcp_t a, b;
    uv_connect_t connect;
    int open_handles;
    int dead;
    char buf[2][64 * 1024];
    struct relay_conn *next;
};

struct relay_write {
    uv_write_t req;
    char data[];
};

static void relay_conn_closed(uv_handle_t *hd)
{
    struct relay_conn *c = hd->data;

    if (--c->open_handles == 0)
        free(c);
}

static void relay_conn_kill(struct relay_conn *c)
{
    struct relay_conn **pp;

    if (c->dead)
        return;
    c->dead = 1;
    for (pp = &c->r->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    /* RST, not FIN: what the peer of a killed process sees. */
    if (uv_tcp_close_reset(&c->a, relay_conn_closed) != 0)
        uv_close((uv_handle_t *)&c->a, relay_conn_closed);
    uv_close((uv_handle_t *)&c->b, relay_conn_closed);
}

static void relay_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void relay_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct relay_conn *c = hd->data;
    int i = hd == (uv_handle_t *)&c->a ? 0 : 1;

    (void)suggested;
    *buf = uv_buf_init(c->buf[i], sizeof(c->buf[i]));
}

static void relay_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct relay_conn *c = st->data;
    uv_stream_t *to = st == (uv_stream_t *)&c->a ? (uv_stream_t *)&c->b : (uv_stream_t *)&c->a;
    struct relay_write *w;
    uv_buf_t b;

    if (c->dead || nread == 0)
        return;
    if (nread < 0) {
        relay_conn_kill(c);
        return;
    }
    w = malloc(sizeof(*w) + (size_t)nread);
    memcpy(w->data, buf->base, (size_t)nread);
    w->req.data = w;
    b = uv_buf_init(w->data, (unsigned int)nread);
    if (uv_write(&w->req, to, &b, 1, relay_written) != 0) {
        free(w);
        relay_conn_kill(c);
    }
}

static void relay_upstream(uv_connect_t *req, int status)
{
    struct relay_conn *c = req->data;

    if (c->dead)
        return;
    if (status != 0) {
        relay_conn_kill(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->a, relay_alloc, relay_read);
    uv_read_start((uv_stream_t *)&c->b, relay_alloc, relay_read);
}

static void relay_accept(uv_stream_t *server, int status)
{
    struct relay *r = server->data;
    struct relay_conn *c;
    struct sockaddr_in sa;

    if (status != 0)
        return;
    c = calloc(1, sizeof(*c));
    c->r = r;
    c->open_handles = 2;
    uv_tcp_init(r->loop, &c->a);
    uv_tcp_init(r->loop, &c->b);
    c->a.data = c->b.data = c->connect.data = c;
    c->next = r->conns;
    r->conns = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->a), 0);
    r->accepted++;
    if (r->mode == RELAY_RESET) {
        relay_conn_kill(c);
        return;
    }
    uv_ip4_addr("127.0.0.1", r->target_port, &sa);
    if (uv_tcp_connect(&c->connect, &c->b, (struct sockaddr *)&sa, relay_upstream) != 0)
        relay_conn_kill(c);
}

static void relay_start(uv_loop_t *loop, struct relay *r, enum relay_mode mode)
{
    struct sockaddr_in sa;
    int len = sizeof(sa);

    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->mode = mode;
    r->target_port = atoi(strrchr(endpoint, ':') + 1);
    uv_tcp_init(loop, &r->listener);
    r->listener.data = r;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&r->listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&r->listener, 16, relay_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&r->listener, (struct sockaddr *)&sa, &len), 0);
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
}

/* The member dies: connections reset, the port refuses from now on. */
static void relay_kill(struct relay *r)
{
    while (r->conns)
        relay_conn_kill(r->conns);
    if (!uv_is_closing((uv_handle_t *)&r->listener))
        uv_close((uv_handle_t *)&r->listener, NULL);
}

static void tick_fired(uv_timer_t *t)
{
    (void)t;
}

/* A watch and requests share the connection to a member that is then
 * killed: the watch ends at once (MR_ECLOSED, not after a timeout), requests
 * fail over to the next endpoint (refused connects on the dead one included),
 * and a new watch there delivers what was written meanwhile. */
static void member_killed_mid_stream_ends_watch_and_requests_fail_over(void **state)
{
    char both[160];
    uv_loop_t loop;
    struct etcd *e;
    struct relay r;
    struct result p[8] = {{0}};
    struct watched x = {0}, y = {0};
    uv_timer_t tick;
    int64_t t0, deadline;

    (void)state;
    uv_loop_init(&loop);
    /* Wakes the loop so that a wait that should end, but does not, fails
     * at its deadline instead of blocking forever. */
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_fired, 50, 50);
    relay_start(&loop, &r, RELAY_PIPE);
    snprintf(both, sizeof(both), "%s,%s", r.url, endpoint);
    assert_int_equal(new_client(&loop, both, 1000, &e), 0);
    assert_int_equal(etcd_put(e, "/g/kill", "a", 1, 5000, put_cb, &p[0]), 0);
    run_until(&loop, &p[0].done);
    assert_int_equal(p[0].rc, 0);
    assert_int_equal(etcd_watch(e, "/g/kill", p[0].rev, on_event, on_end, &x, NULL), 0);
    watch_until(&loop, &x, 1);
    assert_int_equal(r.accepted, 1); /* one connection carries both */

    /* Puts in flight when the member dies. */
    for (int i = 1; i < 4; i++)
        assert_int_equal(etcd_put(e, "/g/kill", "b", 1, 5000, put_cb, &p[i]), 0);
    relay_kill(&r);
    t0 = test_now_ms();
    run_until(&loop, &x.ended);
    assert_int_equal(x.end_rc, MR_ECLOSED);
    assert_true(test_now_ms() - t0 < 500); /* noticed, not timed out */
    for (int i = 1; i < 4; i++) {
        run_until(&loop, &p[i].done);
        assert_int_equal(p[i].rc, 0);
    }
    assert_string_equal(etcd_current_endpoint(e), endpoint);

    /* The next ones too, even after the client goes back to the nearest
     * (now refusing) endpoint: every one fails over, none waits forever. */
    for (int i = 4; i < 8; i++) {
        e->current = 0;
        assert_int_equal(etcd_put(e, "/g/kill", "c", 1, 5000, put_cb, &p[i]), 0);
        run_until(&loop, &p[i].done);
        assert_int_equal(p[i].rc, 0);
    }
    /* From after the first put: the three that were in flight may have
     * committed in any order (and a put lost with its connection may commit
     * twice: callers drop duplicates). */
    assert_int_equal(etcd_watch(e, "/g/kill", p[0].rev + 1, on_event, on_end, &y, NULL), 0);
    deadline = test_now_ms() + test_timeout_ms(5000);
    while (y.n < 7 && !y.ended && test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(y.n >= 7);
    for (int i = y.n - 4; i < y.n; i++)
        assert_int_equal(y.values[i][0], 'c');
    uv_close((uv_handle_t *)&tick, NULL);
    close_client(&loop, e);
}

/* An endpoint that accepts and resets at once (a proxy in front of a dead
 * member): every call fails over, and the endpoint's connection object is
 * replaced each time rather than left half-open. */
static void endpoint_that_accepts_then_resets_is_failed_over(void **state)
{
    char both[160];
    uv_loop_t loop;
    struct etcd *e;
    struct relay r;
    struct result p[3] = {{0}};

    (void)state;
    uv_loop_init(&loop);
    relay_start(&loop, &r, RELAY_RESET);
    snprintf(both, sizeof(both), "%s,%s", r.url, endpoint);
    assert_int_equal(new_client(&loop, both, 1000, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(etcd_put(e, "/g/rst", "x", 1, 5000, put_cb, &p[i]), 0);
        run_until(&loop, &p[i].done);
        assert_int_equal(p[i].rc, 0);
        /* Back to the nearest endpoint for the next put. */
        e->current = 0;
    }
    assert_int_equal(r.accepted, 3);
    relay_kill(&r);
    close_client(&loop, e);
}

static void names_and_bad_transports_are_refused(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    char err[MR_ERRMSG_LEN] = "";
    struct etcd_opts o = {"http://etcd.example:2379", 1000, ETCD_TRANSPORT_GRPC};
    enum etcd_transport t;

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new_opts(&loop, &o, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "etcd.example"));
    o.transport = (enum etcd_transport)7;
    assert_int_equal(etcd_new_opts(&loop, &o, &e, err), MR_ECONFIG);
    assert_int_equal(etcd_transport_parse("grpc", &t), 0);
    assert_int_equal(t, ETCD_TRANSPORT_GRPC);
    assert_int_equal(etcd_transport_parse("gateway", &t), 0);
    assert_int_equal(t, ETCD_TRANSPORT_GATEWAY);
    assert_int_equal(etcd_transport_parse("http2", &t), MR_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- decoders (no etcd needed) ------------------------------------------------ */

static void kv_msg(struct mr_buf *b, const char *key, const char *value, int64_t mod)
{
    etcd__pb_bytes_field(b, 1, key, strlen(key));
    etcd__pb_varint_field(b, 2, 1);
    etcd__pb_varint_field(b, 3, (uint64_t)mod);
    etcd__pb_varint_field(b, 4, 1);
    etcd__pb_bytes_field(b, 5, value, strlen(value));
}

static void header_msg(struct mr_buf *b, int64_t rev)
{
    struct mr_buf h;

    mr_buf_init(&h);
    etcd__pb_varint_field(&h, 1, 0xfeedfacecafe);
    etcd__pb_varint_field(&h, 2, 42);
    etcd__pb_varint_field(&h, 3, (uint64_t)rev);
    etcd__pb_varint_field(&h, 4, 7); /* raft_term */
    etcd__pb_bytes_field(b, 1, h.data, h.len);
    mr_buf_close(&h);
}

/* A WatchResponse with two PUT events, a DELETE, and an unknown field. */
static void watch_msg(struct mr_buf *b)
{
    struct mr_buf kv, ev;

    mr_buf_init(&kv);
    mr_buf_init(&ev);
    header_msg(b, 9);
    etcd__pb_varint_field(b, 2, 1);
    etcd__pb_varint_field(b, 99, 7); /* unknown: skipped */
    for (int i = 0; i < 3; i++) {
        mr_buf_reset(&kv);
        mr_buf_reset(&ev);
        kv_msg(&kv, "/k", i == 1 ? "gone" : "val", 7 + i);
        if (i == 1)
            etcd__pb_varint_field(&ev, 1, 1); /* DELETE */
        etcd__pb_bytes_field(&ev, 2, kv.data, kv.len);
        etcd__pb_bytes_field(b, 11, ev.data, ev.len);
    }
    mr_buf_close(&kv);
    mr_buf_close(&ev);
}

static void decoders_read_well_formed_messages(void **state)
{
    struct mr_buf b, kv;
    struct etcd__pb_watch w;
    struct etcd__pb_range r;
    char err[MR_ERRMSG_LEN];

    (void)state;
    mr_buf_init(&b);
    mr_buf_init(&kv);
    watch_msg(&b);
    assert_int_equal(etcd__pb_decode_watch(b.data, b.len, &w, err), 0);
    assert_int_equal(w.header.revision, 9);
    assert_int_equal(w.header.member_id, 42);
    assert_int_equal(w.watch_id, 1);
    assert_int_equal(w.n_kvs, 2); /* the DELETE is dropped */
    assert_int_equal(w.kvs[0].mod_revision, 7);
    assert_int_equal(w.kvs[1].mod_revision, 9);
    assert_string_equal(w.kvs[1].value, "val");
    assert_string_equal(w.kvs[1].key, "/k");
    mr_free(w.kvs);

    mr_buf_reset(&b);
    header_msg(&b, 5);
    kv_msg(&kv, "/a", "1", 3);
    etcd__pb_bytes_field(&b, 2, kv.data, kv.len);
    assert_int_equal(etcd__pb_decode_range(b.data, b.len, &r, err), 0);
    assert_int_equal(r.header.revision, 5);
    assert_int_equal(r.header.raft_term, 7); /* a new term means a new leader (etcd.c) */
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].key, "/a");
    mr_free(r.kvs);
    /* The empty message is all defaults. */
    assert_int_equal(etcd__pb_decode_range("", 0, &r, err), 0);
    assert_int_equal(r.n_kvs, 0);
    assert_null(r.kvs);
    mr_buf_close(&b);
    mr_buf_close(&kv);
}

static void decoders_refuse_malformed_messages(void **state)
{
    static const struct {
        const char *what;
        const char *p;
        size_t n;
    } bad[] = {
        {"truncated varint", "\x08\x80", 2},
        {"11-byte varint", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11},
        {"10th varint byte over 1", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10},
        {"length past the end", "\x0a\x05\x01", 3},
        {"huge length", "\x0a\xff\xff\xff\xff\x0f", 6},
        {"field number 0", "\x00\x01", 2},
        {"group wire type 3", "\x0b", 1},
        {"wire type 7", "\x0f", 1},
        {"header as varint", "\x08\x01", 2},
        {"truncated fixed64", "\x09\x01\x02", 3},
        {"truncated fixed32", "\x0d\x01", 2},
        {"header with bad inner length", "\x0a\x02\x1a\x05", 4},
        {"kvs as varint", "\x10\x01", 2},
        {"kv key as varint", "\x12\x02\x08\x01", 4},
        {"event without kv", "\x5a\x02\x08\x00", 4},
    };
    char err[MR_ERRMSG_LEN];
    struct etcd__pb_range r;
    struct etcd__pb_watch w;
    struct etcd__pb_status st;
    struct etcd__pb_header h;
    size_t n_range_bad = 0, n_watch_bad = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rr = etcd__pb_decode_range(bad[i].p, bad[i].n, &r, err);
        int rw = etcd__pb_decode_watch(bad[i].p, bad[i].n, &w, err);
        int rs = etcd__pb_decode_status(bad[i].p, bad[i].n, &st, err);
        int rh = etcd__pb_decode_header_only(bad[i].p, bad[i].n, &h, err);

        if (rr == 0)
            mr_free(r.kvs);
        if (rw == 0)
            mr_free(w.kvs);
        n_range_bad += rr == MR_EPROTO;
        n_watch_bad += rw == MR_EPROTO;
        (void)rs;
        (void)rh;
        /* The first twelve are malformed whatever the message. */
        if (i < 12) {
            assert_int_equal(rr, MR_EPROTO);
            assert_int_equal(rw, MR_EPROTO);
            assert_int_equal(rs, MR_EPROTO);
            assert_int_equal(rh, MR_EPROTO);
        }
    }
    assert_true(n_range_bad >= 14); /* "kvs as varint", "kv key as varint" */
    assert_true(n_watch_bad >= 13); /* "event without kv" */
    assert_non_null(strstr(err, "malformed"));
}

static void frames_refuse_compression_and_oversize(void **state)
{
    const uint8_t *m;
    size_t ml, used;
    char err[MR_ERRMSG_LEN];
    uint8_t ok[8] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
    uint8_t comp[6] = {1, 0, 0, 0, 1, 'a'};
    uint8_t big[5] = {0, 0x7f, 0xff, 0xff, 0xff};

    (void)state;
    assert_int_equal(etcd__grpc_frame_next(ok, 4, 100, &m, &ml, &used, err), 0);
    assert_int_equal(etcd__grpc_frame_next(ok, 7, 100, &m, &ml, &used, err), 0);
    assert_int_equal(etcd__grpc_frame_next(ok, 8, 100, &m, &ml, &used, err), 1);
    assert_int_equal(ml, 3);
    assert_int_equal(used, 8);
    assert_memory_equal(m, "abc", 3);
    assert_int_equal(etcd__grpc_frame_next(comp, 6, 100, &m, &ml, &used, err), MR_EPROTO);
    assert_non_null(strstr(err, "compressed"));
    assert_int_equal(etcd__grpc_frame_next(big, 5, ETCD__GRPC_MAX_MSG, &m, &ml, &used, err),
                     MR_EPROTO);
}

/* Fuzz-style: mutate well-formed messages (flip, truncate, insert, random
 * bytes) and feed every decoder; ASan/UBSan catch out-of-bounds reads, and
 * every answer must be 0 or MR_EPROTO.  Seeded, so failures reproduce. */
static void decoders_survive_mutated_input(void **state)
{
    struct mr_buf seed;
    uint8_t buf[512];
    char err[MR_ERRMSG_LEN];
    uint64_t x = 0x9e3779b97f4a7c15ull;

    (void)state;
    mr_buf_init(&seed);
    watch_msg(&seed);
    assert_true(seed.len < sizeof(buf) - 16);
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = seed.len;
        int muts;

        memcpy(buf, seed.data, n);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        muts = 1 + (int)(x % 4);
        for (int k = 0; k < muts; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            switch (x % 5) {
            case 0: buf[(x >> 8) % n] ^= (uint8_t)(1u << ((x >> 20) % 8)); break;
            case 1: buf[(x >> 8) % n] = (uint8_t)(x >> 32); break;
            case 2: n = n ? (size_t)((x >> 8) % n) : 0; break;
            case 3:
                if (n < sizeof(buf) - 1) {
                    size_t at = n ? (x >> 8) % n : 0;
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)(x >> 40);
                    n++;
                }
                break;
            default:
                for (size_t i = 0; i < n; i++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    buf[i] = (uint8_t)x;
                }
                break;
            }
            if (n == 0)
                break;
        }
        {
            /* Exact-size heap copy, so ASan sees any read past the end. */
            uint8_t *p = mr_malloc(n ? n : 1);
            struct etcd__pb_watch w;
            struct etcd__pb_range r;
            struct etcd__pb_status st;
            struct etcd__pb_header h;
            const uint8_t *m;
            size_t ml, used;
            int rc;

            memcpy(p, buf, n);
            rc = etcd__pb_decode_watch(p, n, &w, err);
            assert_true(rc == 0 || rc == MR_EPROTO);
            if (rc == 0) {
                for (size_t i = 0; i < w.n_kvs; i++) {
                    assert_int_equal(w.kvs[i].key[w.kvs[i].key_len], '\0');
                    assert_int_equal(w.kvs[i].value[w.kvs[i].value_len], '\0');
                }
                mr_free(w.kvs);
            }
            rc = etcd__pb_decode_range(p, n, &r, err);
            assert_true(rc == 0 || rc == MR_EPROTO);
            if (rc == 0)
                mr_free(r.kvs);
            rc = etcd__pb_decode_status(p, n, &st, err);
            assert_true(rc == 0 || rc == MR_EPROTO);
            rc = etcd__pb_decode_header_only(p, n, &h, err);
            assert_true(rc == 0 || rc == MR_EPROTO);
            rc = etcd__grpc_frame_next(p, n, 1024, &m, &ml, &used, err);
            assert_true(rc == 0 || rc == 1 || rc == MR_EPROTO);
            if (rc == 1)
                assert_true(used <= n && m + ml <= p + n);
            mr_free(p);
        }
    }
    mr_buf_close(&seed);
}

static void grpc_status_maps_like_the_gateway(void **state)
{
    int retry;

    (void)state;
    assert_int_equal(etcd__grpc_status_rc(0, "", &retry), 0);
    assert_int_equal(etcd__grpc_status_rc(14, "etcdserver: no leader", &retry), MR_EUNAVAIL);
    assert_true(retry);
    assert_int_equal(etcd__grpc_status_rc(4, "context deadline exceeded", &retry), MR_EUNAVAIL);
    assert_true(retry);
    assert_int_equal(etcd__grpc_status_rc(11, "etcdserver: mvcc: required revision has been compacted",
                                          &retry),
                     MR_EPROTO);
    assert_false(retry);
    assert_int_equal(etcd__grpc_status_rc(3, "etcdserver: key is not provided", &retry), MR_EPROTO);
    assert_false(retry);
    assert_int_equal(etcd__grpc_status_rc(9, "etcdserver: no leader", &retry), MR_EUNAVAIL);
    assert_true(retry);
}

static void bad_endpoint_list_is_refused(void **state)
{
    uv_loop_t loop;
    struct etcd *e;
    char err[MR_ERRMSG_LEN] = "";

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(etcd_new(&loop, "", 1000, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "no etcd endpoint"));
    assert_int_equal(etcd_new(&loop, "ftp://x:1", 1000, &e, err), MR_ECONFIG);
    assert_non_null(strstr(err, "ftp://x:1"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(decoders_read_well_formed_messages),
        cmocka_unit_test(decoders_refuse_malformed_messages),
        cmocka_unit_test(frames_refuse_compression_and_oversize),
        cmocka_unit_test(decoders_survive_mutated_input),
        cmocka_unit_test(grpc_status_maps_like_the_gateway),
        cmocka_unit_test(names_and_bad_transports_are_refused),
        cmocka_unit_test(bad_endpoint_list_is_refused),
    };
    const struct CMUnitTest online[] = {
        cmocka_unit_test(put_then_get_returns_value_and_revisions),
        cmocka_unit_test(empty_value_round_trips),
        cmocka_unit_test(missing_key_is_reported_absent),
        cmocka_unit_test(prefix_read_returns_keys_in_order),
        cmocka_unit_test(status_reports_member_and_leader),
        cmocka_unit_test(many_concurrent_puts_share_one_connection),
        cmocka_unit_test(put_fails_over_past_a_dead_endpoint),
        cmocka_unit_test(put_to_only_dead_endpoints_fails_at_the_deadline),
        cmocka_unit_test(free_with_calls_in_flight_ends_them_closed),
        cmocka_unit_test(watch_replays_history_in_order_then_follows_live_puts),
        cmocka_unit_test(watch_cancelled_from_its_event_callback_ends_once),
        cmocka_unit_test(watch_below_compaction_ends_with_ecompacted),
        cmocka_unit_test(watch_on_dead_endpoint_ends_with_econn),
        cmocka_unit_test(member_killed_mid_stream_ends_watch_and_requests_fail_over),
        cmocka_unit_test(endpoint_that_accepts_then_resets_is_failed_over),
    };
    int failed = cmocka_run_group_tests_name("etcd_grpc_codec", offline, NULL, NULL);

    transport = ETCD_TRANSPORT_GRPC;
    failed += cmocka_run_group_tests_name("etcd_grpc", online, setup, teardown);
    transport = ETCD_TRANSPORT_GATEWAY;
    failed += cmocka_run_group_tests_name("etcd_gateway", online, setup, teardown);
    return failed;
}
