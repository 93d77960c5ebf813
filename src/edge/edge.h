/* edge.h -- `meridian edge`: the HTTP/1.1 reverse proxy that runs near the
 * users (docs/edge.md, ../shared/DESIGN.md "Traffic path").
 *
 * One libuv loop: the server side and the origin pools are src/http.  Each
 * request goes to the nearest healthy region (smoothed RTT of active /readyz
 * probes, or the configured preferred order), fails over to the next one when
 * that is safe, within a retry budget; GET answers are cached (RFC 9111);
 * each region has a capacity over which requests queue briefly by priority
 * class and are then shed with 503 + Retry-After.
 *
 * Three pure pieces are public so that unit tests reach them without a loop:
 *   - the Cache-Control parser and the cache (cache.c),
 *   - the region health state machine (health.c),
 *   - the retry budget (health.c).
 *
 * TLS (src/tls through src/http): the listener speaks TLS to anonymous
 * clients with [tls] public_cert_file, and https:// origins are called over
 * mutual TLS with [tls] cert_file (docs/edge.md "TLS").
 *
 * Depends on src/common, src/http, src/tls, libuv, inih.  Nothing here is thread-safe.
 * Errors: 0 or a negative MR_E*, with a message in a caller-owned <err> of
 * MR_ERRMSG_LEN bytes where one is taken.
 */
#ifndef MR_EDGE_H
#define MR_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/buf.h"
#include "../http/http.h"

#define EDGE_MAX_REGIONS 8
#define EDGE_MAX_CLASSES 8
#define EDGE_MAX_PREFIXES 8
#define EDGE_NAME_MAX 40

/* ======================================================================
 * Configuration (config.c)
 * ====================================================================== */

enum edge_all_down { EDGE_FAIL_OPEN = 0, EDGE_FAIL_CLOSED = 1 };

struct edge_region_cfg {
    char name[EDGE_NAME_MAX + 1];
    char *origin;               /* "http[s]://host:port" (required) */
    char *host;                 /* split from <origin> */
    int port;
    int tls;                    /* https:// origin: called with the [tls] certificate */
    int64_t capacity;           /* concurrent requests; 0: unlimited */
    int line;                   /* of its [region NAME] header */
};

/* A priority class: requests whose path starts with one of <prefixes>. */
struct edge_class_cfg {
    char name[EDGE_NAME_MAX + 1];
    char *prefix;               /* as written: "/checkout, /v1/sql" */
    char *prefixes[EDGE_MAX_PREFIXES];
    size_t n_prefixes;
    int64_t priority;           /* higher outranks lower; the default class is 0 */
};

struct edge_config {
    /* [edge] */
    char *listen;               /* host:port; port 0 asks the kernel */
    char *name;                 /* the site, for logs and metrics */
    char *prefer;               /* "r1, r2": fixed order; empty: latency-based */
    char *all_unhealthy;        /* fail_open | fail_closed */
    char *log_level;
    int64_t max_body;           /* request body limit */
    int64_t max_response;       /* origin response limit */
    int64_t drain_timeout_ms;   /* SIGTERM: how long in-flight requests may finish */
    /* [limits]: per client address, and the HTTP server's (docs/config.md) */
    int64_t rate;               /* requests per second per client; 0: no limit */
    int64_t burst;              /* requests at once above the rate */
    int64_t rate_clients;       /* client addresses remembered (LRU) */
    int64_t max_connections_per_client;  /* 0: no limit */
    int64_t max_connections;
    int64_t max_header_bytes;
    int64_t max_headers;
    int64_t header_timeout_ms;  /* slowloris guard */
    int64_t idle_timeout_ms;
    /* [health] */
    int64_t probe_interval_ms;
    int64_t probe_jitter_ms;
    int64_t probe_timeout_ms;
    char *probe_path;
    int64_t unhealthy_after;    /* consecutive probe failures */
    int64_t healthy_after;      /* consecutive probe successes */
    int64_t passive_failures;   /* consecutive live-traffic failures that mark down */
    int64_t passive_error_rate; /* percent of the window */
    int64_t passive_window;     /* last N live outcomes; rate applies once full */
    int64_t rtt_alpha;          /* EWMA weight of a new sample, percent */
    /* [proxy] */
    int64_t try_timeout_ms;
    int64_t total_timeout_ms;
    int64_t retry_budget;       /* percent of requests in flight */
    int64_t retry_min;          /* retries always allowed concurrently */
    int64_t max_attempts;
    /* [cache] */
    int64_t cache_size;         /* bytes; 0 disables the cache */
    int64_t cache_max_object;
    /* [shed] */
    int64_t queue_timeout_ms;
    int64_t queue_max;          /* per region */
    int64_t retry_after_s;
    /* [tls] ("": unset).  Origin side: ca_file, cert_file and key_file go
     * together and are required by an https:// origin (mutual TLS with the
     * shops).  Public side: public_cert_file and public_key_file go together;
     * with them the listener speaks TLS to anonymous clients (browsers). */
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_public_cert_file;
    char *tls_public_key_file;
    /* parsed from the above and from the repeated sections */
    enum edge_all_down all_down;
    struct edge_region_cfg regions[EDGE_MAX_REGIONS];
    size_t n_regions;
    int prefer_order[EDGE_MAX_REGIONS]; /* region indexes; n_prefer of them */
    size_t n_prefer;
    struct edge_class_cfg classes[EDGE_MAX_CLASSES];
    size_t n_classes;
    char *listen_host;
    int listen_port;
};

/* Load <path> into <cfg> (defaults first).  Returns 0, or MR_ECONFIG with
 * "file:line: ..." in <err>.  Free with edge_config_free either way. */
int edge_config_load(const char *path, struct edge_config *cfg, char *err)
    __attribute__((warn_unused_result));
void edge_config_free(struct edge_config *cfg);
/* Commented sample configuration from the option table. */
void edge_config_write_sample(FILE *f);

/* ======================================================================
 * Cache-Control and the cache (cache.c) -- RFC 9111
 * ====================================================================== */

/* Directives of one Cache-Control field (RFC 9111 5.2).  Durations are in
 * seconds; -1 when absent. */
struct edge_cc {
    int64_t max_age;
    int64_t s_maxage;
    int64_t swr;                /* stale-while-revalidate (RFC 5861) */
    int64_t sie;                /* stale-if-error (RFC 5861) */
    unsigned no_store : 1;
    unsigned no_cache : 1;      /* without field names; with them: also set */
    unsigned private_ : 1;
    unsigned public_ : 1;
    unsigned must_revalidate : 1;
    unsigned proxy_revalidate : 1;
    unsigned only_if_cached : 1;
};

/* Parse the value of a Cache-Control field; unknown directives are ignored
 * (RFC 9111 5.2.3), a malformed delta-seconds makes that directive absent.
 * <v> may be NULL (no field). */
void edge_cc_parse(const char *v, struct edge_cc *out);
/* edge_cc_parse of every Cache-Control field line in <h>, combined as one
 * list (RFC 9110 5.3): a directive on a second line counts as on the first. */
void edge_cc_parse_fields(const struct http_header *h, size_t n, struct edge_cc *out);

struct edge_cache;

/* How a stored answer may be used (RFC 9111 4.2, RFC 5861). */
enum edge_fresh {
    EDGE_CACHE_NONE = 0,    /* nothing usable stored */
    EDGE_CACHE_FRESH,       /* serve: hit */
    EDGE_CACHE_STALE_SWR,   /* serve stale now, refresh in the background */
    EDGE_CACHE_STALE_SIE,   /* only if every region fails (stale-if-error) */
};

/* A stored answer, as handed out by edge_cache_lookup.  Valid until the next
 * call that stores or evicts (edge_cache_store, edge_cache_evict_key). */
struct edge_cached {
    int status;
    const char *content_type;   /* or NULL */
    const char *headers;        /* "Name: value\r\n" lines, hop-by-hop removed */
    const char *body;
    size_t body_len;
    int64_t age_s;              /* RFC 9111 4.2.3 current_age */
    enum edge_fresh fresh;
};

struct edge_cache_stats {
    uint64_t entries;
    uint64_t bytes;
    uint64_t stores;
    uint64_t evictions;
};

/* A cache bounded to <max_bytes> (keys, headers and bodies counted), whose
 * single objects may not exceed <max_object> bytes.  mr_free-able with
 * edge_cache_free. */
struct edge_cache *edge_cache_new(size_t max_bytes, size_t max_object);
void edge_cache_free(struct edge_cache *c);

/* The request side of a lookup or store: key and the headers named by Vary. */
struct edge_cache_req {
    const char *key;                    /* "path?query" */
    const struct http_header *headers;  /* the request's */
    size_t n_headers;
    int64_t now_ms;
};

/* Look up a usable answer for <r>.  Returns the freshness class and fills
 * <out> when not EDGE_CACHE_NONE; moves the entry to the LRU head.
 * Honours the request's no-cache and no-store (RFC 9111 5.2.1): then only
 * EDGE_CACHE_STALE_SIE is returned for a stored answer; and its max-age=N:
 * an answer older than N seconds is at most EDGE_CACHE_STALE_SIE (so
 * max-age=0 still takes one stored within the current second as fresh:
 * its age is 0, which 5.2.1.1 allows). */
enum edge_fresh edge_cache_lookup(struct edge_cache *c, const struct edge_cache_req *r,
                                  struct edge_cached *out);

/* 1 when an answer with <status> and response <headers> to the GET request
 * <r> may be stored by a shared cache under our policy (RFC 9111 3, 3.5):
 * explicit freshness (s-maxage or max-age > 0), no no-store, no private, no
 * no-cache, no Vary: *, no Set-Cookie, no request Authorization unless
 * public or s-maxage, request without no-store. */
int edge_cache_storable(const struct edge_cache_req *r, int status,
                        const struct http_header *headers, size_t n_headers);

/* Store the answer (if edge_cache_storable and small enough), replacing any
 * variant with the same Vary values; evicts least-recently-used entries to
 * stay within the bound.  <headers_out> are the header lines to send back
 * on a hit (copied).  Returns 1 when stored. */
int edge_cache_store(struct edge_cache *c, const struct edge_cache_req *r, int status,
                     const struct http_header *headers, size_t n_headers,
                     const char *content_type, const char *headers_out, const char *body,
                     size_t body_len);

/* Drop every variant of <key>. */
void edge_cache_evict_key(struct edge_cache *c, const char *key);
void edge_cache_stats(const struct edge_cache *c, struct edge_cache_stats *out);

/* ======================================================================
 * Region health and the retry budget (health.c)
 * ====================================================================== */

enum edge_state { EDGE_UNKNOWN = 0, EDGE_HEALTHY, EDGE_UNHEALTHY };
const char *edge_state_name(enum edge_state s);

/* What a live request saw on a region. */
enum edge_outcome {
    EDGE_OK = 0,        /* an answer below 500 (or 501/505) */
    EDGE_REFUSED,       /* connection refused: never reached the region */
    EDGE_RESET,         /* connection lost after sending */
    EDGE_TIMEOUT,
    EDGE_5XX,
    EDGE_BAD_RESPONSE,  /* malformed answer */
};
const char *edge_outcome_name(enum edge_outcome o);

struct edge_health_params {
    int unhealthy_after;
    int healthy_after;
    int passive_failures;
    int passive_error_rate;   /* percent */
    int passive_window;       /* <= EDGE_HEALTH_WINDOW */
};

#define EDGE_HEALTH_WINDOW 64

/* The state machine of one region:
 *
 *   UNKNOWN --healthy_after probe successes--> HEALTHY
 *   UNKNOWN --unhealthy_after probe failures--> UNHEALTHY
 *   HEALTHY --unhealthy_after consecutive probe failures--> UNHEALTHY
 *   HEALTHY --live: a refusal, or passive_failures consecutive failures,
 *             or an error rate >= passive_error_rate over a full window--> UNHEALTHY
 *   UNHEALTHY --healthy_after consecutive probe successes--> HEALTHY
 *
 * Live successes never make a region healthy: only probes do (a region
 * marked down gets no live traffic to prove itself with). */
struct edge_health {
    enum edge_state state;
    int probe_ok, probe_fail;       /* consecutive */
    int live_fail;                  /* consecutive */
    uint8_t window[EDGE_HEALTH_WINDOW];
    int w_len, w_pos, w_err;
};

void edge_health_init(struct edge_health *h);
/* Feed one probe result.  Returns the new state when it changed, else -1;
 * <reason> (64 bytes) then says why. */
int edge_health_probe(struct edge_health *h, const struct edge_health_params *p, int ok,
                      char *reason, size_t n);
/* Feed one live outcome; same return convention. */
int edge_health_live(struct edge_health *h, const struct edge_health_params *p,
                     enum edge_outcome o, char *reason, size_t n);

/* Retry budget (as Envoy's): a retry may start while the retries in flight
 * stay under max(<min>, <percent>% of the requests in flight).  Returns 1
 * when a new retry is allowed. */
int edge_budget_allows(uint64_t in_flight, uint64_t retrying, int percent, int min);

/* ======================================================================
 * Per-client request rate (ratelimit.c)
 * ====================================================================== */

/* A token bucket per client address: <burst> requests at once, <rate> a
 * second sustained, at most <max_clients> addresses remembered (the least
 * recently seen is forgotten first).  MR_EINVAL on bad parameters. */
struct edge_rl;
int edge_rl_new(double rate, double burst, size_t max_clients, struct edge_rl **out)
    __attribute__((warn_unused_result));
void edge_rl_free(struct edge_rl *rl);
/* Take a token for <client> at <now_us> (monotonic).  0 when the request may
 * go, else the whole seconds (>= 1) until it could: the Retry-After. */
int64_t edge_rl_take(struct edge_rl *rl, const char *client, int64_t now_us);
size_t edge_rl_clients(const struct edge_rl *rl);
uint64_t edge_rl_evictions(const struct edge_rl *rl);

/* ======================================================================
 * The proxy (edge.c)
 * ====================================================================== */

struct edge;

/* Start the edge on <loop>: bind the listener, start the probes.  <cfg>
 * stays the caller's and must outlive the edge.  On success *out is an edge
 * to stop with edge_stop.  On failure nothing is left running. */
int edge_start(uv_loop_t *loop, const struct edge_config *cfg, struct edge **out, char *err)
    __attribute__((warn_unused_result));

/* The port the listener is bound to. */
int edge_port(const struct edge *e);

/* SIGHUP: re-read the certificate files of every TLS context the edge has
 * (public listener, origins).  New connections take the new files, live
 * ones keep theirs.  Each context is reloaded on its own: on failure that
 * context keeps its old certificate, the others are still reloaded, and
 * <err> names the file and the problem.  0 without TLS. */
int edge_reload_tls(struct edge *e, char *err) __attribute__((warn_unused_result));

/* Begin a clean stop: refuse new requests (503, readyz 503), let requests in
 * flight finish for at most cfg->drain_timeout_ms, then answer what is left
 * with 503, close everything and free <e>.  The loop returns from uv_run once
 * all is closed.  <e> must not be used after the call; a second call before
 * the end is a no-op only if made with the same pointer before it is freed,
 * so callers call it once. */
void edge_stop(struct edge *e);

#endif
