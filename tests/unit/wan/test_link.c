/* Unit tests of the wan's data path (src/wan/link.c): real sockets on
 * 127.0.0.1, the wan, a target and clients on one loop. */
#include <unistd.h>

#include "wan_test.h"

/* Bytes one way take at least the forward latency; the answer at least the
 * reply latency on top. */
static void latency_is_a_lower_bound_per_direction(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 40, 15);
    struct peer *c;
    int64_t t0;

    f->echo = 1;
    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    t0 = now_us();
    peer_write(c, "ping", 4);
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == 4, 2000));
    assert_true(f->srv[0]->first_us - t0 >= 40000);
    assert_true(f->srv[0]->first_us - t0 < 40000 + 200000 * 1);
    assert_true(RUN_UNTIL(f, c->in.len == 4, 2000));
    assert_memory_equal(c->in.data, "ping", 4);
    assert_true(c->first_us - f->srv[0]->first_us >= 15000);
    assert_true(c->first_us - t0 >= 55000);
}

/* A no-delay link carries bytes at once (and a big transfer arrives whole). */
static void zero_latency_carries_a_large_transfer(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 0, 0);
    struct peer *c;
    struct mr_buf data;

    f->echo = 1;
    mr_buf_init(&data);
    for (int i = 0; i < 3 * 1024 * 1024 / 8; i++)
        mr_buf_printf(&data, "%07d\n", i);
    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected, 2000));
    peer_write(c, data.data, data.len);
    assert_true(RUN_UNTIL(f, c->in.len == data.len, 10000));
    assert_memory_equal(c->in.data, data.data, data.len);
    mr_buf_close(&data);
}

struct pacer {
    struct peer *c;
    int i, n;
    uv_timer_t t;
};

static void pace_cb(uv_timer_t *t)
{
    struct pacer *p = t->data;
    char line[16];

    snprintf(line, sizeof(line), "%05d\n", p->i++);
    peer_write(p->c, line, 6);
    if (p->i == p->n)
        uv_timer_stop(t);
}

/* Jitter far larger than the gap between writes: nothing is reordered. */
static void jitter_never_reorders(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 2, 2), idx;
    struct wan_settings s;
    struct pacer p;
    struct mr_buf want;

    idx = wan_link_find(f->w, "a->b");
    assert_int_equal(wan_link_get(f->w, idx, &s), 0);
    s.jitter_us = 30000;
    wan_link_set(f->w, idx, &s, "test");
    memset(&p, 0, sizeof(p));
    p.c = client_connect(f, port);
    p.n = 150;
    assert_true(RUN_UNTIL(f, p.c->connected && f->n_srv == 1, 2000));
    uv_timer_init(&f->loop, &p.t);
    p.t.data = &p;
    uv_timer_start(&p.t, pace_cb, 1, 1);
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == 6u * 150, 5000));
    mr_buf_init(&want);
    for (int i = 0; i < 150; i++)
        mr_buf_printf(&want, "%05d\n", i);
    assert_memory_equal(f->srv[0]->in.data, want.data, want.len);
    mr_buf_close(&want);
    uv_close((uv_handle_t *)&p.t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* <p> lives on this stack */
}

/* An open connection: blackhole holds its bytes; back to up, they flow. */
static void blackhole_holds_then_up_resumes(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 0, 0);
    struct peer *c, *c2;

    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    peer_write(c, "one", 3);
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == 3, 2000));
    set_state(f, "a->b", WAN_BLACKHOLE);
    peer_write(c, "two", 3);
    peer_write(f->srv[0], "back", 4);
    /* a new connection is accepted, and held too */
    c2 = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c2->connected, 2000));
    peer_write(c2, "new", 3);
    run_for(f, 150);
    assert_int_equal(f->srv[0]->in.len, 3);
    assert_int_equal(c->in.len, 0);
    assert_int_equal(c->ended, 0);
    set_state(f, "a->b", WAN_UP);
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == 6, 2000));
    assert_memory_equal(f->srv[0]->in.data, "onetwo", 6);
    assert_true(RUN_UNTIL(f, c->in.len == 4, 2000));
    assert_true(RUN_UNTIL(f, f->n_srv == 2 && f->srv[1]->in.len == 3, 2000));
}

/* reject resets the open connections and every new one. */
static void reject_resets_open_and_new_connections(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 0, 0);
    struct wan_link_stats st;
    struct peer *c, *c2;

    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    set_state(f, "a->b", WAN_REJECT);
    assert_true(RUN_UNTIL(f, c->ended != 0, 2000));
    assert_int_equal(c->end_rc, UV_ECONNRESET);
    assert_true(RUN_UNTIL(f, f->srv[0]->ended != 0, 2000));
    c2 = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c2->ended != 0, 2000));
    assert_int_equal(f->n_srv, 1); /* never reached the target */
    assert_int_equal(wan_link_stats(f->w, wan_link_find(f->w, "a->b"), &st), 0);
    assert_int_equal(st.connections_refused, 2);
    assert_int_equal(st.connections_open, 0);
    set_state(f, "a->b", WAN_UP);
    c2 = client_connect(f, port);
    peer_write(c2, "x", 1);
    assert_true(RUN_UNTIL(f, f->n_srv == 2 && f->srv[1]->in.len == 1, 2000));
}

/* A fault on a->b leaves b->a alone. */
static void faults_are_per_direction(void **state)
{
    struct fx *f = *state;
    int ab = add_link_route(f, "a->b", 0, 0);
    int ba = add_link_route(f, "b->a", 0, 0);
    struct peer *c1, *c2;

    set_state(f, "a->b", WAN_BLACKHOLE);
    c1 = client_connect(f, ab);
    c2 = client_connect(f, ba);
    assert_true(RUN_UNTIL(f, c1->connected && c2->connected, 2000));
    peer_write(c1, "ab", 2);
    peer_write(c2, "ba", 2);
    assert_true(RUN_UNTIL(f, f->n_srv >= 1 && (f->srv[0]->in.len == 2 ||
                                                (f->n_srv == 2 && f->srv[1]->in.len == 2)), 2000));
    run_for(f, 100);
    /* exactly one target connection got bytes, and they are b->a's */
    {
        int got = 0;
        for (int i = 0; i < f->n_srv; i++)
            if (f->srv[i]->in.len) {
                got++;
                assert_memory_equal(f->srv[i]->in.data, "ba", 2);
            }
        assert_int_equal(got, 1);
    }
    /* the shell-friendly name finds the same link */
    assert_int_equal(wan_link_find(f->w, "a:b"), wan_link_find(f->w, "a->b"));
}

/* 4 Mbit/s = 500 kB/s: 400 kB take about 0.8 s (less the first burst). */
static void bandwidth_cap_is_roughly_respected(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 0, 0), idx = wan_link_find(f->w, "a->b");
    struct wan_settings s;
    struct peer *c;
    size_t n = 400 * 1000;
    char *data = mr_calloc(1, n);
    int64_t t0, took;

    assert_int_equal(wan_link_get(f->w, idx, &s), 0);
    s.bandwidth_kbps = 4000;
    wan_link_set(f->w, idx, &s, "test");
    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    t0 = now_us();
    peer_write(c, data, n);
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == n, 10000));
    took = f->srv[0]->last_us - t0;
    assert_true(took >= 650000);
    assert_true(took <= 2000000);
    mr_free(data);
}

/* Latency changes apply to bytes already queued on open connections. */
static void latency_change_applies_to_open_connections(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 5000, 0), idx = wan_link_find(f->w, "a->b");
    struct wan_settings s;
    struct peer *c;

    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    peer_write(c, "held", 4);
    run_for(f, 50);
    assert_int_equal(f->srv[0]->in.len, 0);
    assert_int_equal(wan_link_get(f->w, idx, &s), 0);
    s.latency_us[WAN_FWD] = 0;
    wan_link_set(f->w, idx, &s, "test");
    assert_true(RUN_UNTIL(f, f->srv[0]->in.len == 4, 1000));
}

/* A FIN travels behind the bytes; slow_close holds it for close_delay. */
static void slow_close_delays_the_fin(void **state)
{
    struct fx *f = *state;
    int port = add_link_route(f, "a->b", 0, 0), idx = wan_link_find(f->w, "a->b");
    struct wan_settings s;
    struct peer *c;
    uv_shutdown_t req;
    int64_t t0;

    assert_int_equal(wan_link_get(f->w, idx, &s), 0);
    s.state = WAN_SLOW_CLOSE;
    s.close_delay_us = 200000;
    wan_link_set(f->w, idx, &s, "test");
    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected && f->n_srv == 1, 2000));
    peer_write(c, "bye", 3);
    t0 = now_us();
    assert_int_equal(uv_shutdown(&req, (uv_stream_t *)&c->tcp, NULL), 0);
    assert_true(RUN_UNTIL(f, f->srv[0]->ended == 1, 2000));
    assert_int_equal(f->srv[0]->in.len, 3);
    assert_true(now_us() - t0 >= 200000);
}

/* A shared route finds the link from the connecting process's region. */
static void shared_route_identifies_the_source_process(void **state)
{
    struct fx *f = *state;
    struct wan_settings s;
    struct wan_link_stats st;
    char err[MR_ERRMSG_LEN];
    struct peer *c;
    int port, idx;
    int64_t t0;

    wan_settings_default(&s);
    s.latency_us[WAN_FWD] = s.latency_us[WAN_REPLY] = 30000;
    assert_int_equal(wan_link_add(f->w, "east->west", NULL, NULL, &s, err), 0);
    assert_int_equal(wan_route_add(f->w, "peer-west", "127.0.0.1", 0, "127.0.0.1", f->target_port,
                                   NULL, "west", &port, err),
                     0);
    wan_pid_set(f->w, getpid(), "east");
    c = client_connect(f, port);
    assert_true(RUN_UNTIL(f, c->connected, 2000));
    t0 = now_us();
    peer_write(c, "hi", 2);
    assert_true(RUN_UNTIL(f, f->n_srv == 1 && f->srv[0]->in.len == 2, 2000));
    assert_true(f->srv[0]->first_us - t0 >= 30000);
    idx = wan_link_find(f->w, "east->west");
    assert_int_equal(wan_link_stats(f->w, idx, &st), 0);
    assert_int_equal(st.connections, 1);
    assert_int_equal(wan_unidentified(f->w), 0);

    /* the same process seen as in the destination region: direct */
    wan_pid_set(f->w, getpid(), "west");
    c = client_connect(f, port);
    peer_write(c, "yo", 2);
    assert_true(RUN_UNTIL(f, f->n_srv == 2 && f->srv[1]->in.len == 2, 2000));
    assert_int_equal(wan_link_stats(f->w, idx, &st), 0);
    assert_int_equal(st.connections, 1);
}

/* Cutting a region changes every link touching it; heal restores them. */
static void cut_and_heal_a_region(void **state)
{
    struct fx *f = *state;
    struct wan_settings s;

    add_link_route(f, "a->b", 0, 0);
    add_link_route(f, "b->a", 0, 0);
    add_link_route(f, "b->c", 0, 0);
    add_link_route(f, "c->b", 0, 0);
    set_state(f, "b->c", WAN_SLOW_CLOSE);
    assert_int_equal(wan_region_set_state(f->w, "nowhere", WAN_BLACKHOLE, "test"), -1);
    assert_int_equal(wan_region_set_state(f->w, "nowhere", WAN_UP, "test"), -1);
    assert_int_equal(wan_region_set_state(f->w, "a", WAN_BLACKHOLE, "test"), 2);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "a->b"), &s), 0);
    assert_int_equal(s.state, WAN_BLACKHOLE);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "c->b"), &s), 0);
    assert_int_equal(s.state, WAN_UP);
    assert_int_equal(wan_region_set_state(f->w, "c", WAN_REJECT, "test"), 2);
    assert_int_equal(wan_region_set_state(f->w, "c", WAN_UP, "test"), 2);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "b->c"), &s), 0);
    assert_int_equal(s.state, WAN_SLOW_CLOSE);
    assert_int_equal(wan_region_set_state(f->w, "a", WAN_UP, "test"), 2);
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "b->a"), &s), 0);
    assert_int_equal(s.state, WAN_UP);
    wan_reset(f->w, "test");
    assert_int_equal(wan_link_get(f->w, wan_link_find(f->w, "b->c"), &s), 0);
    assert_int_equal(s.state, WAN_UP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(latency_is_a_lower_bound_per_direction, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(zero_latency_carries_a_large_transfer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(jitter_never_reorders, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(blackhole_holds_then_up_resumes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(reject_resets_open_and_new_connections, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(faults_are_per_direction, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(bandwidth_cap_is_roughly_respected, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(latency_change_applies_to_open_connections, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(slow_close_delays_the_fin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(shared_route_identifies_the_source_process, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(cut_and_heal_a_region, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
