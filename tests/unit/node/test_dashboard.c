/* The dashboard's pure parts (src/node/dashboard_int.h): the history ring,
 * the event list, events derived from observed state changes, the
 * "[dashboard] edges" parser, HTML escaping, and the page itself (no
 * external URL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "node/dashboard_int.h"

static json_t *history_doc(const struct dash_history *h)
{
    struct mr_buf b;
    json_t *doc;

    mr_buf_init(&b);
    dash_history_json(h, &b);
    doc = json_loads(b.data, 0, NULL);
    mr_buf_close(&b);
    assert_non_null(doc);
    return doc;
}

static json_t *series_values(json_t *doc, const char *name)
{
    json_t *s;
    size_t i;

    json_array_foreach(json_object_get(doc, "series"), i, s)
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0)
            return json_object_get(s, "values");
    return NULL;
}

static void history_aligns_series_and_marks_gaps(void **state)
{
    struct dash_history h;
    json_t *doc, *v;

    (void)state;
    dash_history_init(&h);
    assert_int_equal(dash_history_set(&h, "a:x", 1), MR_EINVAL);   /* before any tick */
    dash_history_tick(&h, 1000);
    assert_int_equal(dash_history_set(&h, "a:x", 5), 0);
    dash_history_tick(&h, 2000);
    assert_true(isnan(dash_history_last(&h, "a:x")));   /* no value in the new sample yet */
    assert_int_equal(dash_history_set(&h, "b:y", 7.5), 0);  /* a late series: NaN before */
    dash_history_tick(&h, 3000);
    assert_int_equal(dash_history_set(&h, "a:x", 6), 0);
    assert_true(dash_history_last(&h, "a:x") == 6);

    doc = history_doc(&h);
    assert_int_equal(json_integer_value(json_object_get(doc, "interval_ms")), DASH_TICK_MS);
    v = json_object_get(doc, "t");
    assert_int_equal(json_array_size(v), 3);
    assert_int_equal(json_integer_value(json_array_get(v, 0)), 1000);
    assert_int_equal(json_integer_value(json_array_get(v, 2)), 3000);
    v = series_values(doc, "a:x");
    assert_int_equal(json_array_size(v), 3);
    assert_true(json_number_value(json_array_get(v, 0)) == 5);
    assert_true(json_is_null(json_array_get(v, 1)));
    assert_true(json_number_value(json_array_get(v, 2)) == 6);
    v = series_values(doc, "b:y");
    assert_true(json_is_null(json_array_get(v, 0)));
    assert_true(json_number_value(json_array_get(v, 1)) == 7.5);
    assert_true(json_is_null(json_array_get(v, 2)));
    json_decref(doc);
    dash_history_close(&h);
}

static void history_keeps_the_last_samples_oldest_first(void **state)
{
    struct dash_history h;
    json_t *doc, *t, *v;
    int total = DASH_HISTORY + 25;

    (void)state;
    dash_history_init(&h);
    for (int i = 0; i < total; i++) {
        dash_history_tick(&h, (int64_t)i * 1000);
        assert_int_equal(dash_history_set(&h, "a:x", i), 0);
    }
    doc = history_doc(&h);
    t = json_object_get(doc, "t");
    v = series_values(doc, "a:x");
    assert_int_equal(json_array_size(t), DASH_HISTORY);
    assert_int_equal(json_array_size(v), DASH_HISTORY);
    for (size_t k = 0; k < DASH_HISTORY; k++) {
        assert_int_equal(json_integer_value(json_array_get(t, k)), (int64_t)(25 + k) * 1000);
        assert_true(json_number_value(json_array_get(v, k)) == (double)(25 + k));
    }
    json_decref(doc);
    dash_history_close(&h);
}

static void history_bounds_the_number_of_series(void **state)
{
    struct dash_history h;
    char name[32], longname[DASH_SERIES_NAME + 8];

    (void)state;
    dash_history_init(&h);
    dash_history_tick(&h, 1);
    for (int i = 0; i < DASH_MAX_SERIES; i++) {
        snprintf(name, sizeof(name), "g:%d", i);
        assert_int_equal(dash_history_set(&h, name, i), 0);
    }
    assert_int_equal(dash_history_set(&h, "g:one-too-many", 1), MR_ETOOBIG);
    assert_int_equal(dash_history_set(&h, "g:0", 3), 0);   /* existing ones still take values */
    dash_history_close(&h);
    dash_history_init(&h);
    dash_history_tick(&h, 1);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dash_history_set(&h, longname, 1), MR_ETOOBIG);
    dash_history_close(&h);
}

static json_t *events_doc(const struct dash_events *e)
{
    struct mr_buf b;
    json_t *doc;

    mr_buf_init(&b);
    dash_events_json(e, &b);
    doc = json_loads(b.data, 0, NULL);
    mr_buf_close(&b);
    assert_non_null(doc);
    return doc;
}

static void events_keep_the_last_ones_and_escape_text(void **state)
{
    static struct dash_events e;
    json_t *doc;

    (void)state;
    memset(&e, 0, sizeof(e));
    for (int i = 0; i < DASH_MAX_EVENTS + 10; i++)
        dash_events_add(&e, i, "region_down", "r\"1", "event <%d> \"quoted\"", i);
    doc = events_doc(&e);
    assert_int_equal(json_array_size(doc), DASH_MAX_EVENTS);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 0), "at_ms")), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "text")),
                        "event <10> \"quoted\"");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "subject")), "r\"1");
    json_decref(doc);
}

static void region_events_on_changes_only(void **state)
{
    static struct dash_observer o;
    static struct dash_events e;
    json_t *doc;

    (void)state;
    memset(&o, 0, sizeof(o));
    memset(&e, 0, sizeof(e));
    /* A region first seen up is not news; one first seen down is. */
    assert_int_equal(dash_observe_region(&o, &e, "us-east-1", 1, 100), 0);
    assert_int_equal(dash_observe_region(&o, &e, "ap-southeast-1", 0, 100), 1);
    assert_int_equal(dash_observe_region(&o, &e, "us-east-1", 1, 200), 0);
    assert_int_equal(dash_observe_region(&o, &e, "us-east-1", 0, 300), 1);
    assert_int_equal(dash_observe_region(&o, &e, "us-east-1", 0, 400), 0);
    assert_int_equal(dash_observe_region(&o, &e, "us-east-1", 1, 500), 1);
    doc = events_doc(&e);
    assert_int_equal(json_array_size(doc), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "kind")), "region_down");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "subject")),
                        "ap-southeast-1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "kind")), "region_down");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 1), "at_ms")), 300);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 2), "kind")), "region_back");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 2), "text")),
                        "region us-east-1 is reachable again");
    json_decref(doc);
}

static void leader_events_when_known_and_when_moved(void **state)
{
    static struct dash_observer o;
    static struct dash_events e;
    json_t *doc;

    (void)state;
    memset(&o, 0, sizeof(o));
    memset(&e, 0, sizeof(e));
    assert_int_equal(dash_observe_leader(&o, &e, "", 1), 0);
    assert_int_equal(dash_observe_leader(&o, &e, NULL, 1), 0);
    assert_int_equal(dash_observe_leader(&o, &e, "eu-west-1", 2), 1);
    assert_int_equal(dash_observe_leader(&o, &e, "eu-west-1", 3), 0);
    assert_int_equal(dash_observe_leader(&o, &e, "", 4), 0);          /* unknown for a while */
    assert_int_equal(dash_observe_leader(&o, &e, "us-east-1", 5), 1);
    doc = events_doc(&e);
    assert_int_equal(json_array_size(doc), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "kind")), "leader");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "kind")), "leader_moved");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "text")),
                        "etcd leader moved from eu-west-1 to us-east-1");
    json_decref(doc);
}

static void edge_transitions_become_events_once(void **state)
{
    static struct dash_observer o;
    static struct dash_events e;
    json_t *doc;

    (void)state;
    memset(&o, 0, sizeof(o));
    memset(&e, 0, sizeof(e));
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Frankfurt", "eu-west-1", 10, "unknown",
                                                  "healthy", "probe"), 1);
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Frankfurt", "eu-west-1", 20, "healthy",
                                                  "unhealthy", "connection refused"), 1);
    /* The edge reports its last transitions every time: seen ones are skipped. */
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Frankfurt", "eu-west-1", 10, "unknown",
                                                  "healthy", "probe"), 0);
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Frankfurt", "eu-west-1", 20, "healthy",
                                                  "unhealthy", "connection refused"), 0);
    /* At an edge's start, unknown -> unhealthy is no reroute. */
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Paris", "eu-west-1", 5, "unknown",
                                                  "unhealthy", "3 probes failed"), 1);
    /* Another edge's view of the same region is its own. */
    assert_int_equal(dash_observe_edge_transition(&o, &e, "New_York", "eu-west-1", 20, "healthy",
                                                  "unhealthy", "probe timeout"), 1);
    assert_int_equal(dash_observe_edge_transition(&o, &e, "Frankfurt", "eu-west-1", 30, "unhealthy",
                                                  "healthy", "probe"), 1);
    doc = events_doc(&e);
    assert_int_equal(json_array_size(doc), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "kind")), "edge_region");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "kind")), "rerouted");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "text")),
                        "edge Frankfurt reroutes away from eu-west-1 (connection refused)");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 1), "at_ms")), 20);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 2), "kind")), "edge_region");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 4), "kind")),
                        "edge_region_back");
    json_decref(doc);
}

static void edges_config_parses_and_refuses_clearly(void **state)
{
    char names[4][DASH_NAME_MAX], urls[4][DASH_URL_MAX], err[MR_ERRMSG_LEN];
    size_t n = 99;

    (void)state;
    assert_int_equal(dash_parse_edges("none", names, urls, 4, &n, err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dash_parse_edges("New_York=http://127.0.0.1:4001,fra.1=http://localhost:4002",
                                      names, urls, 4, &n, err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "New_York");
    assert_string_equal(urls[0], "http://127.0.0.1:4001");
    assert_string_equal(names[1], "fra.1");
    assert_string_equal(urls[1], "http://localhost:4002");
    assert_int_equal(dash_parse_edges("nourl", names, urls, 4, &n, err), MR_ECONFIG);
    assert_non_null(strstr(err, "expected name=http://host:port"));
    assert_int_equal(dash_parse_edges("New York=http://127.0.0.1:1", names, urls, 4, &n, err),
                     MR_ECONFIG);
    assert_non_null(strstr(err, "only"));
    assert_int_equal(dash_parse_edges("a=ftp://x", names, urls, 4, &n, err), MR_ECONFIG);
    assert_int_equal(dash_parse_edges("a=http://h:1,b=http://h:2,c=http://h:3", names, urls, 2, &n,
                                      err), MR_ECONFIG);
    assert_non_null(strstr(err, "more than 2"));
}

static void html_escape_covers_markup_characters(void **state)
{
    struct mr_buf b;

    (void)state;
    mr_buf_init(&b);
    dash_html_escape(&b, "<a href=\"x\">Tom & Jerry's</a>");
    assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    mr_buf_close(&b);
}

static void page_fetches_nothing_from_elsewhere(void **state)
{
    (void)state;
    assert_null(strstr(dash_page_html, "http://"));
    assert_null(strstr(dash_page_html, "https://"));
    assert_null(strstr(dash_page_html, "src="));      /* no external script or image */
    assert_non_null(strstr(dash_page_html, "<script>"));
    assert_non_null(strstr(dash_page_html, "/v1/dashboard"));
    assert_non_null(strstr(dash_page_html, "function esc("));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(history_aligns_series_and_marks_gaps),
        cmocka_unit_test(history_keeps_the_last_samples_oldest_first),
        cmocka_unit_test(history_bounds_the_number_of_series),
        cmocka_unit_test(events_keep_the_last_ones_and_escape_text),
        cmocka_unit_test(region_events_on_changes_only),
        cmocka_unit_test(leader_events_when_known_and_when_moved),
        cmocka_unit_test(edge_transitions_become_events_once),
        cmocka_unit_test(edges_config_parses_and_refuses_clearly),
        cmocka_unit_test(html_escape_covers_markup_characters),
        cmocka_unit_test(page_fetches_nothing_from_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
