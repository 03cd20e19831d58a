/* server.h: the wire's server side: the daemon's Unix socket, its client connections (owner uid
 * only), request lines in and replies and event notifications out, with a bound on what a
 * client may leave unread. It reaches the daemon through daemon/daemon.h only; the daemon
 * reaches it through the DaemonWire it exports (the composition root passes that to
 * daemon_open). Loop thread only. */
#ifndef SERVER_H
#define SERVER_H

#include <stdint.h>

#include "../daemon/daemon.h"

typedef struct RpcServer RpcServer;
typedef struct RpcClient RpcClient;

/* An owned server, not yet listening: daemon_open binds it through rpc_server_wire. */
int rpc_server_new(RpcServer **out, char *err);
/* The server's side of the daemon (borrowed; lives as long as the server). */
const DaemonWire *rpc_server_wire(RpcServer *s);
/* Frees the server; call after daemon_free (its loop has closed every connection). NULL is
 * fine. */
void rpc_server_free(RpcServer *s);

/* Makes c a subscriber: after the current reply is written, every stored event with
 * seq > since (since < 0: none of the stored ones) is sent, then live ones. last_seq is the
 * daemon's newest stored event (daemon_last_event_seq). c NULL (a handler called without a
 * connection, in unit tests) does nothing. */
void rpc_client_subscribe(RpcClient *c, int64_t since, int64_t last_seq);

/* A request of c answered later (its handler returns RPC_DEFERRED: job.submit while the job's
 * data loads): c's next requests wait, unread, so its replies keep their order. The handle names
 * the connection, which may be gone when the answer comes. */
typedef struct RpcDeferred {
    RpcServer *srv;
    uint64_t serial;
} RpcDeferred;
RpcDeferred rpc_client_defer(RpcClient *c); /* c not NULL */
/* Sends the deferred reply (copied) if the client is still connected, and reads its next
 * requests again. */
void rpc_deferred_answer(RpcDeferred r, const char *line, size_t len);

#endif
