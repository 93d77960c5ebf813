/* wan_int.h -- shared only inside src/wan.
 *
 * Ownership:
 *   struct wan    owns its links (array), routes (array of pointers), the pid
 *                 map and the control server.
 *   struct route  owns its listener; connections it accepted are on their
 *                 link's list (or on the wan's list of connections that are
 *                 still being identified).
 *   struct conn   owns its two sockets, two timers and both queues.  It is
 *                 freed when all four handles are closed (n_handles == 0).
 *
 * A direction of a connection (struct pipe_) reads from one socket and writes
 * to the other:
 *
 *     in ──read──▶ queue of chunks (arrival, release time) ──timer──▶ write ──▶ out
 *
 * Exactly one uv_timer per direction, re-armed for the head of the queue
 * (or for when the link's token bucket allows it), never one per chunk.
 */
#ifndef MR_WAN_INT_H
#define MR_WAN_INT_H

#include <stdint.h>
#include <uv.h>

#include "../common/auth.h"
#include "../common/metrics.h"
#include "wan.h"

#define WAN__READ_BUF (64 * 1024)
#define WAN__CHUNK_OVERHEAD 64       /* what a queued chunk costs beyond its bytes */

struct conn;

/* One piece of a direction's queue: bytes read at once, or the end. */
struct chunk {
    struct chunk *next;
    int64_t arrive_us;
    int64_t jitter_us;    /* drawn once, so that rescheduling keeps it */
    int64_t release_us;
    size_t len, off;      /* off: bytes of it already written */
    int eof;              /* 1: FIN after the bytes before it; 2: reset */
    char data[];
};

/* A write in flight: the chunk's bytes [from, from+len). */
struct wreq {
    uv_write_t req;
    struct pipe_ *p;
    struct chunk *c;      /* freed with the request when it is the last piece */
    size_t len;
};

struct pipe_ {
    struct conn *c;
    int dir;              /* enum wan_dir */
    uv_stream_t *in, *out;
    struct chunk *head, *tail;
    size_t queued;        /* bytes held: queue + writes in flight + overheads */
    int reading;
    int paused;           /* reading stopped: too much queued */
    int in_done;          /* EOF or error seen on <in> */
    int out_shut;         /* FIN sent on <out> */
    uv_timer_t timer;
    uv_shutdown_t sreq;
};

struct conn {
    struct conn *next, *prev;   /* on the link's list, or the wan's pending list */
    struct wan *w;
    struct route *r;
    int link;                   /* index into w->links; -1 while unidentified */
    uv_tcp_t client, server;
    uv_connect_t creq;
    struct pipe_ p[2];          /* [WAN_FWD] client->server, [WAN_REPLY] server->client */
    int connected;              /* to the target */
    int closing;
    int n_handles;              /* handles not yet closed */
    int identifying;            /* on a shared route, region not known yet */
    int ident_tries;
    int64_t accepted_us;
    char peer[48];              /* "127.0.0.1:port" of the client */
};

struct bucket {
    double tokens;              /* bytes */
    int64_t last_us;
};

struct link {
    char name[WAN_NAME_MAX + 1];
    char from[WAN_NAME_MAX + 1], to[WAN_NAME_MAX + 1];
    struct wan_settings s, initial;
    enum wan_state before_cut;  /* state to go back to on heal */
    int cut;                    /* set by wan_region_set_state */
    struct bucket bucket[2];
    struct conn *conns;
    struct wan_link_stats st;
    struct mr_hist delay[2];    /* applied delay, seconds */
    struct mr_hist error[2];    /* applied minus intended, seconds */
};

struct route {
    struct wan *w;
    char name[WAN_NAME_MAX + 1];
    uv_tcp_t listener;
    char target_host[64];
    int target_port;
    int port;
    int link;                   /* fixed link, or -1: by source */
    char to_region[WAN_NAME_MAX + 1];
};

struct pidmap {
    int pid;
    char region[WAN_NAME_MAX + 1];
};

struct wan {
    uv_loop_t *loop;
    struct link *links;
    size_t n_links;
    struct route **routes;
    size_t n_routes;
    struct conn *pending;       /* accepted on a shared route, not identified yet */
    struct pidmap *pids;
    size_t n_pids;
    uint64_t unidentified;
    struct http_server *control;
    struct mr_auth auth;        /* [wan] token lines: when any, the control API
                                   needs read (GET) or admin (changes) */
    uint64_t auth_refused;
    uint64_t auth_reloads[2];   /* SIGHUP token reloads: [0] done, [1] failed */
    int64_t auth_logged_ms;     /* last refusal logged */
    int closing;
    int n_closing;              /* handles still closing at shutdown */
    void (*done)(void *);
    void *done_data;
    char rbuf[WAN__READ_BUF];   /* shared read buffer: reads are copied into chunks */
};

/* link.c */
void wan__conn_accept(struct route *r);
void wan__link_apply(struct wan *w, int idx);
void wan__conn_reset(struct conn *c);
void wan__conn_close_all(struct wan *w);

/* ident.c: the pid (of those in <pids>) owning the client end of the TCP
 * connection <peer> -> <local>, or 0 when none; -1 when /proc cannot tell
 * (the socket is not in /proc/net/tcp). */
int wan__ident_pid(const struct sockaddr_in *peer, const struct sockaddr_in *local,
                   const int *pids, size_t n_pids);

/* wan.c */
const char *wan__region_of_pid(const struct wan *w, int pid);
int64_t wan__now_us(void);

#endif
