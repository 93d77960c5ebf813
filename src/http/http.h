/* http.h -- HTTP/1.1 server and client on a libuv loop.
 *
 * Parsing is http-parser's (Debian libhttp-parser-dev); this module owns
 * everything above it: connection lifetimes, keep-alive, pipelining (answers
 * leave in request order), size limits, timeouts against slow peers, and the
 * lifetime of write buffers.  All socket reads and writes of a connection go
 * through one pair of functions per side (see http_int.h), which is where
 * TLS (src/tls) sits when a server or client is given a tls_ctx.
 *
 * Threading: everything runs on the loop given at creation; nothing here is
 * thread-safe.
 *
 * Signals: libuv writes to sockets with write(2), so a peer's reset raises
 * SIGPIPE.  http_server_start and http_client_new set SIGPIPE to ignored if
 * it is still at its default disposition (a handler already installed is
 * left alone).
 */
#ifndef MR_HTTP_H
#define MR_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/buf.h"
#include "../tls/tls.h"

/* ---- Limits (defaults; every one can be changed in struct http_server_opts) ---- */
#define HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)     /* request line + headers */
#define HTTP_DEFAULT_MAX_HEADERS 64
#define HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000          /* slowloris guard */
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_MAX_CONNECTIONS 4096
#define HTTP_MAX_PIPELINE 64   /* requests parsed ahead of their answers */
#define HTTP_PEER_MAX 46       /* INET6_ADDRSTRLEN: a client address as text */

struct http_header {
    char *name;   /* as received; compare case-insensitively */
    char *value;
};

/* ======================================================================
 * Server
 * ====================================================================== */

struct http_server;

/* One request and, later, its answer.  Owned by the server.  The handler must
 * call http_respond exactly once for every exchange it is given, now or later
 * (from any callback on the same loop).  If the client has gone away by then,
 * the answer is discarded; the exchange is freed inside http_respond either
 * way, so the pointer is dead once http_respond returns.
 *
 * "Gone" includes a client that closed its sending side (FIN): requests it
 * sent that are not answered yet are abandoned, answers already made are
 * still written (as Go's net/http and nginx do). */
struct http_exchange;

struct http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* raw (not percent-decoded), without the query */
    const char *query;           /* raw query string without '?', or "" */
    const struct http_header *headers;
    size_t n_headers;
    const char *body;            /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
    int64_t received_us;         /* mr_mono_us() when the request was complete */
    const char *peer;            /* the client's IP address ("127.0.0.1", "::1"), "" if
                                    unknown; lives as long as the request */
};

typedef void (*http_handler_cb)(struct http_exchange *ex, const struct http_request *req,
                                void *data);

struct http_server_opts {
    size_t max_header_bytes;
    size_t max_headers;
    size_t max_body_bytes;
    uint64_t header_timeout_ms;  /* time to receive a whole request's head */
    uint64_t idle_timeout_ms;    /* keep-alive connection with nothing to do */
    size_t max_connections;
    size_t max_connections_per_ip;  /* open at once from one client address; over it
                                       a new one is answered 429 and closed; 0: no limit */
    const char *server_name;     /* "Server:" header value, e.g. "meridian-node" */
    int reuse_port;              /* SO_REUSEPORT: several processes listen on one
                                    port and the kernel spreads new connections
                                    among them (a region's shops, docs/topology.md) */
    struct tls_ctx *tls;         /* NULL: plain HTTP; else every connection is TLS
                                    (a server-role ctx, src/tls/tls.h).  Not owned:
                                    keep it until the server is freed.  A handshake
                                    that fails closes the connection (logged, counted
                                    in tls_refused and tls_ctx_refused) */
};

/* Fill <o> with the HTTP_DEFAULT_* values. */
void http_server_opts_default(struct http_server_opts *o);

/* Bind <host>:<port> (port 0 asks the kernel) and start accepting.
 * On success *out is a server to free with http_server_close.
 * On failure returns MR_E* with a message in <err>; nothing is left bound. */
int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_server_opts *opts, http_handler_cb handler, void *data,
                      struct http_server **out, char *err) __attribute__((warn_unused_result));

/* The port actually bound (useful after asking for port 0). */
int http_server_port(const struct http_server *s);

/* Stop accepting, close every connection, and free the server once every
 * handle is closed (the loop must keep running until then).  Exchanges still
 * awaiting http_respond stay valid until it is called: their answers are then
 * discarded.  <s> must not be used after this call. */
void http_server_close(struct http_server *s);

/* Case-insensitive header lookup; NULL when absent.  The string lives as long
 * as the request. */
const char *http_request_header(const struct http_request *req, const char *name);

/* Value of cookie <name> in a Cookie header's value <header> into <out>
 * (<size> bytes, NUL-terminated, quotes removed); 1 found, 0 absent or too
 * long. */
int http_cookie_get(const char *header, const char *name, char *out, size_t size);

/* Query parameter lookup (percent-decoding applied) into <out>; returns 1 when
 * found, 0 when absent. */
int http_request_query(const struct http_request *req, const char *name, struct mr_buf *out);

/* Send the answer.  <extra_headers> is NULL or "Name: value\r\n" lines.
 * Content-Length, Date, Server and Connection are added here.  Copies what
 * it needs; frees <ex>. */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *body, size_t body_len, const char *extra_headers);

/* Streamed answers (addition).  For answers produced piece by piece (long
 * query results, watches): http_respond_start sends the status line and
 * headers, each http_respond_chunk sends bytes, http_respond_end finishes and
 * frees <ex> (the pointer is dead once it returns).  The body goes out with
 * chunked transfer coding; to an HTTP/1.0 client without a length, and the
 * connection closes after it.  Ordering is kept as for http_respond: if
 * earlier requests on the connection are not answered yet, the bytes wait.
 * Call start once, then chunk any number of times, then end exactly once
 * (instead of http_respond).  For HEAD, 204 and 304 the body is discarded.
 * Bytes are copied.  http_respond_chunk returns 0, or MR_ECLOSED once the
 * client is gone (the producer should stop and call http_respond_end). */
void http_respond_start(struct http_exchange *ex, int status, const char *content_type,
                        const char *extra_headers);
int http_respond_chunk(struct http_exchange *ex, const void *p, size_t n);
void http_respond_end(struct http_exchange *ex);

/* Bytes of <ex>'s answer produced but not yet accepted by the socket
 * (addition): a streaming producer should pause while this is large and
 * poll again later; 0 once the client is gone. */
size_t http_exchange_buffered(const struct http_exchange *ex);

/* The subject CN of the client's verified certificate (TLS servers), or
 * NULL: plain connection, no certificate, or the client is gone.  The
 * string belongs to the connection: use it within the handler call, copy it
 * to keep it longer (the connection may close before the answer). */
const char *http_exchange_peer_cn(const struct http_exchange *ex);

/* Counters for /metrics. */
struct http_server_stats {
    uint64_t connections_accepted;  /* every accepted socket, rejected ones included */
    uint64_t connections_open;
    uint64_t connections_rejected;  /* over max_connections: answered 503, closed */
    uint64_t connections_rejected_per_ip;  /* over max_connections_per_ip: 429, closed */
    uint64_t requests;
    uint64_t bad_requests;          /* parse errors, limits exceeded */
    uint64_t timeouts;
    uint64_t tls_refused;           /* TLS handshakes that failed: connection closed */
};
void http_server_stats(const struct http_server *s, struct http_server_stats *out);

/* ======================================================================
 * Client
 * ====================================================================== */

struct http_client;  /* a keep-alive connection pool per host:port */
struct http_call;    /* one request in flight */

struct http_response {
    int status;                      /* HTTP status */
    const struct http_header *headers;
    size_t n_headers;
    const char *body;                /* whole body (NULL for streamed calls) */
    size_t body_len;
};

/* Called exactly once per call that http_client_request accepted.
 * <rc> is 0 when a response arrived (any status), or MR_ECONN (could not
 * connect; the request never left: not even a first copy on a reused
 * connection, see below), MR_ETIMEDOUT, MR_EPROTO (bad response),
 * MR_ECLOSED (connection lost after sending, or cancelled).  <resp> is
 * valid only during the callback and is NULL when rc != 0. */
typedef void (*http_response_cb)(struct http_call *call, int rc, const struct http_response *resp,
                                 void *data);

/* For streamed calls: body bytes as they arrive (chunked encoding already
 * removed).  The pointer is valid only during the callback. */
typedef void (*http_body_cb)(struct http_call *call, const char *p, size_t n, void *data);

#define HTTP_DEFAULT_CLIENT_MAX_IDLE 8                 /* per host:port */
#define HTTP_DEFAULT_CLIENT_MAX_RESPONSE (64 * 1024 * 1024)

struct http_client_opts {
    size_t max_idle_per_host;        /* idle keep-alive connections kept per host */
    size_t max_response_bytes;       /* for non-streamed calls: head + body; over
                                        it the call fails with MR_EPROTO */
    struct tls_ctx *tls;             /* NULL: plain HTTP; else every connection is
                                        TLS (a client-role ctx; the server's name is
                                        checked against the host called).  Not owned:
                                        keep it until the client is freed.  A failed
                                        handshake fails the call with MR_ECONN */
    const char *headers;             /* NULL or "Name: value\r\n" lines sent with
                                        every request before the request's own
                                        (credentials: "Authorization: Bearer ...");
                                        copied by http_client_new */
};
void http_client_opts_default(struct http_client_opts *o);

int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts,
                    struct http_client **out) __attribute__((warn_unused_result));

/* Cancel every call in flight (their callbacks run with MR_ECLOSED), close
 * every connection, free the client once closed.  Must not be used after. */
void http_client_free(struct http_client *c);

/* Replace the headers every later request carries (opts.headers; copied,
 * NULL for none): a rotated credential.  Requests already sent keep theirs. */
void http_client_set_headers(struct http_client *c, const char *headers);

struct http_client_request {
    const char *method;
    const char *host;        /* IPv4/IPv6 literal or name resolved with uv_getaddrinfo */
    int port;
    const char *path;        /* with query */
    const char *headers;     /* NULL or "Name: value\r\n" lines */
    const char *body;
    size_t body_len;
    uint64_t timeout_ms;     /* whole call for normal calls; 0 = none.  For
                                streamed calls: time to receive the response
                                head; the body may flow for ever */
    http_body_cb on_body;    /* NULL: buffer the body and hand it to the
                                response callback; else: streamed */
};

/* Start a call.  Returns 0 and then <cb> runs exactly once, never from
 * inside this function; or returns an error (MR_EINVAL: bad arguments, or
 * the client is being freed) and <cb> never runs.  *out (may be NULL)
 * receives a handle usable with http_call_cancel until <cb> has run.
 * Everything in <req> is copied.  "Host" and, when there is a body or the
 * method is POST/PUT/PATCH, "Content-Length" are added: do not pass them.
 *
 * Connections: an idle pooled connection to the same host:port (the string
 * as given) is used if there is one, else a new one.  If a REUSED connection
 * fails before any byte of the response arrives (typically: the server
 * closed it as idle just as we sent), the call is retried once on a fresh
 * connection.  The server may have received the first copy, so a request
 * can be delivered twice: callers that care must make requests idempotent.
 * One request per connection at a time (no pipelining).
 *
 * For streamed calls, max_response_bytes bounds the response head only. */
int http_client_request(struct http_client *c, const struct http_client_request *req,
                        http_response_cb cb, void *data, struct http_call **out)
    __attribute__((warn_unused_result));

/* The first header <name> of <resp> (case-insensitive), or NULL. */
const char *http_response_header(const struct http_response *resp, const char *name);

/* Copy the value of cookie <name> set by <resp>'s Set-Cookie headers into
 * <out> (<size> bytes; the last one wins, an empty value clears it).  <out>
 * is left as it was when no Set-Cookie names it or the value does not fit. */
void http_response_cookie(const struct http_response *resp, const char *name, char *out,
                          size_t size);

/* Cancel: <cb> runs with MR_ECLOSED, from within this call or soon after on
 * the loop.  A call whose callback already ran must not be cancelled. */
void http_call_cancel(struct http_call *call);

/* ======================================================================
 * Blocking convenience for command-line tools and tests: runs a private loop.
 * ====================================================================== */

struct http_result {
    int status;
    struct mr_buf headers;   /* raw "Name: value\r\n" lines */
    struct mr_buf body;
};
void http_result_close(struct http_result *r);

/* The client context http_fetch uses for https:// URLs (process-wide; not
 * owned; NULL to forget it).  Without one, https URLs fail with MR_ECONFIG. */
void http_fetch_set_tls(struct tls_ctx *t);

/* <url> is "http[s]://host:port/path?query".  Returns 0 when a response arrived
 * (any status; fill *res, which the caller closes with http_result_close),
 * else MR_E* with a message in <err> and *res left empty. */
int http_fetch(const char *method, const char *url, const char *headers, const char *body,
               size_t body_len, uint64_t timeout_ms, struct http_result *res, char *err)
    __attribute__((warn_unused_result));

/* Split "http://host:port/path" or "https://..." into parts (default port 80
 * or 443).  *host and *path are new strings the caller frees. */
int http_parse_url(const char *url, char **host, int *port, char **path, char *err)
    __attribute__((warn_unused_result));
/* 1 when <url> starts with "https://" (any case). */
int http_url_is_https(const char *url);

/* Reason phrase for a status code ("OK", "Not Found", ...). */
const char *http_status_text(int status);

#endif
