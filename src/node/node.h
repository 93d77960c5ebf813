/* node.h -- `meridian node`: one region's node of the global SQL database.
 *
 * A node serves the SQL API of its region (src/node/api.c), submits write
 * transactions to the etcd-ordered log in batches (commit.c), applies the
 * log from an etcd watch to its SQLite replica (apply.c), and answers reads
 * at the consistency each request asks for.  Everything runs on one libuv
 * loop.  See docs/architecture.md and docs/api.md.
 */
#ifndef MR_NODE_H
#define MR_NODE_H

#include <uv.h>

#include "node_cfg.h"

struct node;

/* Open the store, connect to etcd, bind the HTTP API and start applying.
 * <cfg> must stay valid for the node's life.  On failure nothing is left
 * open or bound and <err> says why. */
int node_start(uv_loop_t *loop, const struct node_cfg *cfg, struct node **out, char *err)
    __attribute__((warn_unused_result));

/* Check what the option table cannot: the values of [tables] and
 * [dashboard] (URLs, edge names), [tls] (all three files or none, readable,
 * and URL schemes that agree with it).  0, or MR_ECONFIG with a message in
 * <err>.  node_start runs it too; `meridian node --check-config` runs it
 * alone. */
int node_check_config(const struct node_cfg *cfg, char *err) __attribute__((warn_unused_result));

/* Check [auth]: required is auto/yes/no, every token line parses (errors
 * name its line), yes has a token.  node_start runs it too. */
int node_check_auth_config(const struct node_cfg *cfg, char *err) __attribute__((warn_unused_result));

/* Begin a clean shutdown: stop accepting, answer waiting requests with 503,
 * close etcd and every handle; the loop then runs out.  Idempotent. */
void node_stop(struct node *n);

/* Free the node after node_stop, once uv_run has returned (every callback
 * has run by then).  Closes the store. */
void node_free(struct node *n);

/* Non-zero once the node hit an error it cannot continue from (the store
 * failed, or the log was compacted past its position); <why> is set. */
int node_failed(const struct node *n, const char **why);

/* SIGHUP: re-read [tls]'s files into the listener's and the client's
 * contexts (new connections use them, live ones keep what they have), and
 * the [auth] token lines of <config_path> (NULL: the node was configured
 * without a file; tokens are then left as they are) into a new token table
 * that replaces the old one at once (node__auth_reload).  Each failure is
 * logged, naming the file (and line), and leaves what was loaded before in
 * use.  [auth] required and peer_token are read at start only. */
void node_reload(struct node *n, const char *config_path);

/* The port the HTTP API is bound to. */
int node_port(const struct node *n);

#endif
