/* wan.h -- the user-space WAN emulator behind `meridian wan` (docs/wan.md).
 *
 * A TCP proxy on one libuv loop.  Traffic is carried by LINKS: a link is one
 * directed pair of places ("us-east-1->eu-west-1": connections opened from
 * us-east-1 towards a service in eu-west-1).  Bytes enter the wan through
 * ROUTES: a route is one listening port with one target address; it either
 * always uses one link, or picks the link per connection from the region of
 * the process that connected (src/wan/ident.c: the socket's owner in /proc,
 * mapped to a region through pids the wan is told about), for services that
 * advertise one address to everybody (an etcd member's peer URL).
 *
 * Each link has, per direction (forward: from->to, the connecting side's
 * bytes; reply: to->from), a one-way latency, plus a jitter, a bandwidth cap
 * and a state:
 *
 *   up          bytes flow after their delay
 *   blackhole   connections are accepted and held; nothing flows either way
 *               (bytes queue up to the per-connection bound, then the
 *               senders' windows fill); back to up, the held bytes flow
 *   reject      new connections are reset at once, open ones are reset
 *   slow_close  as up, but the end of a connection (FIN) reaches the other
 *               side close_delay after its bytes
 *
 * Delay of a chunk read at time t: t + latency + U[0, jitter], never earlier
 * than the release of the chunk before it in the same direction of the same
 * connection, so bytes are never reordered.  Settings changes apply at once
 * to every open connection of the link (queued bytes are rescheduled from
 * their arrival time) and to new ones.
 *
 * Memory: at most WAN_MAX_QUEUED bytes are held per direction of a
 * connection (chunk headers included); past it the wan stops reading that
 * side until the queue is down to half.
 *
 * Depends on src/common, src/http (the control API), libuv, jansson, inih.
 * Nothing here is thread-safe.  Errors: 0 or a negative MR_E* with a message
 * in <err> (MR_ERRMSG_LEN bytes, caller-owned).
 */
#ifndef MR_WAN_H
#define MR_WAN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/buf.h"

#define WAN_NAME_MAX 80                 /* link and route names */
#define WAN_MAX_QUEUED (2 * 1024 * 1024) /* bytes held per direction of a connection */
#define WAN_MAX_LATENCY_MS 60000
#define WAN_MAX_BANDWIDTH_KBPS 100000000 /* 100 Gbit/s */
#define WAN_DEFAULT_CLOSE_DELAY_MS 2000
#define WAN_IDENT_TIMEOUT_MS 1000       /* how long a connection waits to be identified */

enum wan_state { WAN_UP = 0, WAN_BLACKHOLE, WAN_REJECT, WAN_SLOW_CLOSE };
#define WAN_N_STATES 4

enum wan_dir { WAN_FWD = 0, WAN_REPLY = 1 };

/* "up", "blackhole", "reject", "slow_close". */
const char *wan_state_name(enum wan_state s);
/* Inverse of wan_state_name; -1 when unknown. */
int wan_state_parse(const char *s);

/* The settings of one link.  Times in microseconds. */
struct wan_settings {
    int64_t latency_us[2];    /* one-way, per enum wan_dir */
    int64_t jitter_us;        /* added delay uniform in [0, jitter] */
    int64_t bandwidth_kbps;   /* per direction of the link, all its connections; 0: none */
    int64_t close_delay_us;   /* slow_close: how late a FIN arrives */
    enum wan_state state;
};

/* latency 0, jitter 0, no cap, close_delay WAN_DEFAULT_CLOSE_DELAY_MS, up. */
void wan_settings_default(struct wan_settings *s);

struct wan;
struct http_request;

/* ---- Lifecycle ---- */

/* A new, empty wan on <loop>.  Free with wan_close. */
struct wan *wan_new(uv_loop_t *loop);

/* Close every listener and connection and the control API; <w> is freed once
 * every handle is closed (the loop must keep running until then).  <done>,
 * if not NULL, runs then with <data>. */
void wan_close(struct wan *w, void (*done)(void *data), void *data);

/* ---- Links and routes ---- */

/* Add link <name> from <from> to <to> (either may be NULL: taken from a
 * "FROM->TO" name).  Returns MR_EEXIST, MR_EINVAL (bad name). */
int wan_link_add(struct wan *w, const char *name, const char *from, const char *to,
                 const struct wan_settings *s, char *err) __attribute__((warn_unused_result));

/* Find a link by "FROM->TO" or its shell-friendly spelling "FROM:TO". */
int wan_link_find(const struct wan *w, const char *name);

/* The current settings of link <idx>; MR_ENOTFOUND when there is none. */
int wan_link_get(const struct wan *w, int idx, struct wan_settings *out);

/* Replace the settings of link <idx> (from wan_link_find) and apply them to
 * every open connection now; logged with <why>. */
void wan_link_set(struct wan *w, int idx, const struct wan_settings *s, const char *why);

/* Listen on <host>:<port> (0: from the kernel) and forward every connection
 * to <target_host>:<target_port> through link <link> -- or, when <link> is
 * NULL, through the link "<region of the connecting process>-><to_region>".
 * Returns 0 with the bound port in *bound, or MR_EIO / MR_ENOTFOUND (no such
 * link). */
int wan_route_add(struct wan *w, const char *name, const char *host, int port,
                  const char *target_host, int target_port, const char *link,
                  const char *to_region, int *bound, char *err)
    __attribute__((warn_unused_result));

/* Tell the wan that process <pid> belongs to <region> (NULL region: forget
 * <pid>).  Used to identify the source of connections on shared routes. */
void wan_pid_set(struct wan *w, int pid, const char *region);

/* Set every link touching <region> (from or to it) to state <st>; the
 * previous settings of each link are kept for heal.  Returns how many links
 * changed, or -1 when no link touches <region> (a name no link knows). */
int wan_region_set_state(struct wan *w, const char *region, enum wan_state st, const char *why);

/* Every link back to the settings it was created with. */
void wan_reset(struct wan *w, const char *why);

/* ---- Control API (api.c) ---- */

/* Serve the control API (docs/wan.md) on <host>:<port>; *bound gets the port. */
int wan_control_start(struct wan *w, const char *host, int port, int *bound, char *err)
    __attribute__((warn_unused_result));

/* Parse a PATCH body (JSON object: latency_ms, reply_latency_ms, jitter_ms,
 * bandwidth_kbps, close_delay_ms, state) over <s>.  Returns MR_EINVAL with
 * the offending field named in <err>; <s> is changed only on success. */
int wan_settings_patch_json(struct wan_settings *s, const char *body, size_t len, char *err)
    __attribute__((warn_unused_result));

/* Parse CLI words "latency=80ms", "reply_latency=80ms", "jitter=5ms",
 * "bandwidth=10mbit", "close_delay=1s", "state=blackhole" into a JSON object
 * (appended to <out>) for PATCH.  Returns MR_EINVAL naming the bad word. */
int wan_settings_words_json(int n, char **words, struct mr_buf *out, char *err)
    __attribute__((warn_unused_result));

/* The control API's decoding of paths and bodies, as its handlers do it
 * (and tests/fuzz/fuzz_wan_control.c).  Errors come with the message the
 * handler answers with in <err>. */

/* The LINK of /links/LINK, raw ("FROM->TO" percent-encoded or not, or
 * "FROM:TO"), to a link index; -1 when there is no such link. */
int wan_link_lookup(const struct wan *w, const char *raw);

/* POST /regions/NAME/cut[?state=S] or /regions/NAME/heal (the method is not
 * checked): <region> (WAN_NAME_MAX + 1 bytes) gets NAME as it is in the
 * path (1 to WAN_NAME_MAX bytes, not percent-decoded), *cut 1 for cut and 0
 * for heal, *state S (blackhole, reject or slow_close; blackhole when not
 * given).  Returns MR_ENOTFOUND for any other path, MR_EINVAL for a bad S. */
int wan_region_request_parse(const struct http_request *req, char *region, int *cut,
                             enum wan_state *state, char *err) __attribute__((warn_unused_result));

/* PUT /pids: replace the pid map with the body's {"pids": {"PID": "REGION",
 * ...}} (PID a decimal from 1 to 2^30; a REGION longer than WAN_NAME_MAX is
 * cut to that).  Returns MR_EINVAL, the map untouched, for any other body. */
int wan_pids_put_json(struct wan *w, const char *body, size_t len, char *err)
    __attribute__((warn_unused_result));

/* Append the links as JSON ({"links": [...]}) or Prometheus text. */
void wan_links_json(const struct wan *w, struct mr_buf *out);
void wan_metrics(const struct wan *w, struct mr_buf *out);

/* ---- Config file (config.c) ---- */

/* Load an INI wan config (docs/wan.md) into <w>: [wan] control, [link NAME]
 * and [route NAME] sections.  *control_host/port receive [wan] control
 * (caller frees the host with mr_free).  Errors name file:line. */
int wan_config_load(struct wan *w, const char *path, char **control_host, int *control_port,
                    char *err) __attribute__((warn_unused_result));

/* Read <path> again and replace <w>'s [wan] token lines with its own
 * (SIGHUP): links, routes and control are not touched.  On an error (named
 * file:line), or when the file has no token left while <w> checks tokens,
 * the old tokens stay.  Counted in meridian_wan_auth_reloads_total. */
int wan_config_reload_tokens(struct wan *w, const char *path, char *err)
    __attribute__((warn_unused_result));

/* ---- Stats (for tests and benchmarks) ---- */

struct wan_link_stats {
    uint64_t bytes[2];             /* per enum wan_dir, delivered */
    uint64_t connections;          /* accepted */
    uint64_t connections_open;
    uint64_t connections_refused;  /* reset because of state reject */
};
int wan_link_stats(const struct wan *w, int idx, struct wan_link_stats *out);

/* Connections that a shared route could not attribute to a region. */
uint64_t wan_unidentified(const struct wan *w);

#endif
