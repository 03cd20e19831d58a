/* server.c: the wire's server side (server.h): the daemon's Unix socket, accepting clients
 * (owner uid only), reading request lines, writing replies and event notifications with a bound
 * on what a client may leave unread. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpc.h"
#include "server.h"

struct RpcServer {
    DaemonWire wire; /* ud is the server itself */
    Daemon *d;       /* set by listen */
    uv_loop_t *loop;
    uv_pipe_t pipe;  /* the listener */
    int open;        /* the listener is open */
    char path[PATH_MAX];
    uid_t uid;       /* the only uid served */
    RpcClient *clients;
    int nclients;
    uint64_t serials; /* the last client's serial */
};

struct RpcClient {
    uv_pipe_t pipe; /* first: the handle's address is the client's */
    RpcServer *srv;
    RpcClient *prev, *next;
    RpcFramer framer;
    size_t out_pending; /* bytes handed to uv_write and not yet written */
    int closing;        /* uv_close called */
    int close_after_write;
    int read_paused; /* too many replies unread: stop reading its requests for a while */
    int subscribed;
    int backlog_due; /* send stored events after the current reply */
    int64_t since;
    uint64_t serial;  /* unique over the server's life: what an RpcDeferred names */
    int deferred;     /* a request is answered later: the next ones wait in the framer */
};

typedef struct WriteReq {
    uv_write_t req;
    RpcClient *c;
    size_t len;
    char data[];
} WriteReq;

static void client_closed(uv_handle_t *h) {
    RpcClient *c = (RpcClient *)h;
    RpcServer *srv = c->srv;
    if (c->prev) c->prev->next = c->next;
    else srv->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nclients--;
    rpc_framer_free(&c->framer);
    free(c);
}

static void client_close(RpcClient *c) {
    if (c->closing) return;
    c->closing = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void send_backlog(RpcClient *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int on_line(void *ud, char *line, size_t len);
static void client_fail(RpcClient *c, int code, const char *msg);
static void client_resume(RpcClient *c);
static int client_send(RpcClient *c, const char *line, size_t len);
#define BACKLOG_LOW_WATER (1u << 20) /* send the next page once output drains below this */
/* Backpressure: a client with this much unread output is not read from until it drains to
 * READ_RESUME, so a pipelining client is slowed, not dropped. The pause takes effect between
 * two requests, also inside one read: the requests after it wait in the framer (at most one
 * read's worth) until the client has read its replies. RPC_OUTBUF_MAX (reached only by
 * notifications to a client that does not read) drops it. */
#define READ_PAUSE (1u << 20)
#define READ_RESUME (256u << 10)

static void on_write(uv_write_t *req, int status) {
    WriteReq *w = (WriteReq *)req;
    RpcClient *c = w->c;
    c->out_pending -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        client_close(c);
        return;
    }
    if (c->close_after_write && c->out_pending == 0) {
        client_close(c);
        return;
    }
    if (c->closing || c->close_after_write) return;
    if (c->backlog_due && c->out_pending < BACKLOG_LOW_WATER) send_backlog(c);
    if (c->read_paused && c->out_pending < READ_RESUME) {
        c->read_paused = 0;
        client_resume(c);
    }
}

/* Reads c's requests again after a pause or a deferred answer: first the lines the framer
 * held (answering them may pause again), then the socket. */
static void client_resume(RpcClient *c) {
    char err[LD_ERR_MAX];
    if (c->closing || c->close_after_write || c->read_paused || c->deferred) return;
    int rc = rpc_framer_resume(&c->framer, on_line, c, err);
    if (rc == LD_EINVAL || rc == LD_ENOMEM) {
        client_fail(c, RPC_INVALID_REQUEST, err);
        return;
    }
    if (c->closing || c->close_after_write || c->read_paused || c->deferred) return;
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

RpcDeferred rpc_client_defer(RpcClient *c) {
    c->deferred = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    return (RpcDeferred){.srv = c->srv, .serial = c->serial};
}

void rpc_deferred_answer(RpcDeferred r, const char *line, size_t len) {
    RpcClient *c = r.srv->clients;
    while (c && c->serial != r.serial) c = c->next;
    if (!c || c->closing) return;
    c->deferred = 0;
    if (line) client_send(c, line, len);
    client_resume(c);
}

/* Sends a line to a client (copied). Returns LD_OK, or LD_EIO when the client is gone or was
 * dropped for not reading (RPC_OUTBUF_MAX pending). */
static int client_send(RpcClient *c, const char *line, size_t len) {
    if (!c || c->closing) return LD_EIO;
    if (c->out_pending + len > RPC_OUTBUF_MAX) {
        daemon_log("dropping a client: %zu bytes of replies unread", c->out_pending);
        client_close(c);
        return LD_EIO;
    }
    WriteReq *w = malloc(sizeof *w + len);
    if (!w) {
        client_close(c);
        return LD_EIO;
    }
    memcpy(w->data, line, len);
    w->c = c;
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
    if (rc != 0) {
        free(w);
        client_close(c);
        return LD_EIO;
    }
    c->out_pending += len;
    if (!c->read_paused && c->out_pending > READ_PAUSE && !c->close_after_write) {
        c->read_paused = 1;
        uv_read_stop((uv_stream_t *)&c->pipe);
    }
    return LD_OK;
}

/* Sends an error and closes once it is written. */
static void client_fail(RpcClient *c, int code, const char *msg) {
    size_t n = 0;
    char *line = rpc_error_line(NULL, code, msg, &n);
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (line && client_send(c, line, n) == LD_OK) c->close_after_write = 1;
    else client_close(c);
    free(line);
}

/* Store event row {seq, time, job, kind, data} -> notification params. Returns owned. */
static cJSON *event_params(const cJSON *ev) {
    cJSON *p = cJSON_CreateObject();
    const cJSON *v;
    v = cJSON_GetObjectItemCaseSensitive(ev, "seq");
    cJSON_AddNumberToObject(p, "seq", cJSON_IsNumber(v) ? v->valuedouble : 0);
    v = cJSON_GetObjectItemCaseSensitive(ev, "kind");
    cJSON_AddStringToObject(p, "kind", cJSON_IsString(v) ? v->valuestring : "");
    v = cJSON_GetObjectItemCaseSensitive(ev, "job");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(ev, "job_id");
    if (cJSON_IsNumber(v) && v->valuedouble > 0) cJSON_AddNumberToObject(p, "job_id", v->valuedouble);
    else cJSON_AddNullToObject(p, "job_id");
    v = cJSON_GetObjectItemCaseSensitive(ev, "time");
    if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(p, "time_s", v->valuedouble);
    v = cJSON_GetObjectItemCaseSensitive(ev, "data");
    cJSON_AddItemToObject(p, "data", v ? cJSON_Duplicate(v, 1) : cJSON_CreateObject());
    return p;
}

static int send_event(RpcClient *c, const cJSON *ev) {
    size_t n = 0;
    char *line = rpc_notification_line("event", event_params(ev), &n);
    if (!line) return LD_ENOMEM;
    int rc = client_send(c, line, n);
    free(line);
    return rc;
}

#define BACKLOG_PAGE 500

/* Sends one page of stored events after c->since. The next page follows from on_write once the
 * client has read most of this one, so a long history never trips RPC_OUTBUF_MAX. The last
 * (short) page makes c a live subscriber: events are appended on this thread, so nothing falls
 * between the stored pages and the live stream. */
static void send_backlog(RpcClient *c) {
    char err[LD_ERR_MAX];
    cJSON *evs = NULL;
    c->backlog_due = 0;
    if (store_events_since(daemon_store(c->srv->d), c->since, BACKLOG_PAGE, &evs, err) != LD_OK) {
        daemon_log("events backlog: %s", err);
        c->subscribed = 1;
        return;
    }
    int n = cJSON_GetArraySize(evs);
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ev, "seq");
        if (cJSON_IsNumber(seq)) c->since = (int64_t)seq->valuedouble;
        if (send_event(c, ev) != LD_OK) break;
    }
    cJSON_Delete(evs);
    if (n < BACKLOG_PAGE) c->subscribed = 1;
    else c->backlog_due = 1;
}

/* DaemonWire.event: a stored event to every subscriber that has not had it. */
static void srv_event(void *ud, const cJSON *event) {
    RpcServer *srv = ud;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(event, "seq");
    int64_t s = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : 0;
    RpcClient *c = srv->clients;
    while (c) {
        RpcClient *next = c->next; /* send may close c (closing is deferred, but be safe) */
        if (c->subscribed && !c->closing && s > c->since) {
            c->since = s;
            send_event(c, event);
        }
        c = next;
    }
}

void rpc_client_subscribe(RpcClient *c, int64_t since, int64_t last_seq) {
    if (!c) return; /* unit tests call handlers without a connection */
    /* a since beyond the newest event (a client of an older database) must not hide new ones */
    c->since = since < 0 || since > last_seq ? last_seq : since;
    c->backlog_due = 1;
}

static int on_line(void *ud, char *line, size_t len) {
    RpcClient *c = ud;
    if (c->closing || c->close_after_write) return 2;
    RpcCall call = {.daemon = c->srv->d, .client = c};
    size_t n = 0;
    const char *refuse = daemon_refuse_writes(c->srv->d);
    char *reply = rpc_handle_line(rpc_tables(), line, len, &call, refuse, &n);
    if (reply) {
        client_send(c, reply, n);
        free(reply);
    }
    if (c->backlog_due && !c->closing && c->out_pending < BACKLOG_LOW_WATER) send_backlog(c);
    if (c->closing || c->close_after_write) return 2; /* stop: the connection is going away */
    return c->read_paused || c->deferred ? RPC_FRAMER_PAUSE : 0;
}

static char read_buf[65536]; /* the loop is single-threaded and each read is consumed at once */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    RpcClient *c = (RpcClient *)s;
    char err[LD_ERR_MAX];
    if (nread < 0) {
        client_close(c); /* EOF or error: a half line is dropped with the client */
        return;
    }
    if (nread == 0 || c->closing) return;
    int rc = rpc_framer_feed(&c->framer, buf->base, (size_t)nread, on_line, c, err);
    if (rc == LD_EINVAL || rc == LD_ENOMEM) client_fail(c, RPC_INVALID_REQUEST, err);
}

static void on_connection(uv_stream_t *server, int status) {
    RpcServer *srv = server->data;
    if (status < 0) {
        daemon_log("accept: %s", uv_strerror(status));
        return;
    }
    RpcClient *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = srv;
    c->serial = ++srv->serials;
    uv_pipe_init(srv->loop, &c->pipe, 0);
    c->next = srv->clients;
    if (srv->clients) srv->clients->prev = c;
    srv->clients = c;
    srv->nclients++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }

    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        client_fail(c, RPC_PERMISSION, "permission denied: cannot read the peer's credentials");
        return;
    }
    if (cred.uid != srv->uid) {
        char msg[128];
        snprintf(msg, sizeof msg, "permission denied: uid %u is not the daemon owner (uid %u)",
                 (unsigned)cred.uid, (unsigned)srv->uid);
        client_fail(c, RPC_PERMISSION, msg);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* DaemonWire.listen: binds path (free: daemon_open checked it and removed a stale socket) and
 * listens on the daemon's loop. */
static int srv_listen(void *ud, Daemon *d, uv_loop_t *loop, const char *path, char *err) {
    RpcServer *srv = ud;
    srv->d = d;
    srv->loop = loop;
    srv->uid = getuid();
    snprintf(srv->path, sizeof srv->path, "%s", path);
    int rc = uv_pipe_init(loop, &srv->pipe, 0);
    if (rc != 0) return ld_err(err, LD_EIO, "uv_pipe_init: %s", uv_strerror(rc));
    srv->pipe.data = srv;
    srv->open = 1;
    mode_t old = umask(0177); /* the socket is born 0600: no window where others may connect */
    rc = uv_pipe_bind(&srv->pipe, path);
    umask(old);
    if (rc != 0) return ld_err(err, LD_EIO, "bind %s: %s", path, uv_strerror(rc));
    chmod(path, 0600);
    rc = uv_listen((uv_stream_t *)&srv->pipe, 512, on_connection);
    if (rc != 0) return ld_err(err, LD_EIO, "listen %s: %s", path, uv_strerror(rc));
    return LD_OK;
}

/* DaemonWire.close: closes the listener; clients close now (force) or once their pending
 * replies are written. */
static void srv_close(void *ud, int force) {
    RpcServer *srv = ud;
    if (srv->open) {
        srv->open = 0;
        uv_close((uv_handle_t *)&srv->pipe, NULL);
        unlink(srv->path);
    }
    for (RpcClient *c = srv->clients; c; c = c->next) {
        if (force || c->out_pending == 0) {
            client_close(c);
        } else {
            uv_read_stop((uv_stream_t *)&c->pipe);
            c->close_after_write = 1;
        }
    }
}

static int srv_clients(void *ud) { return ((RpcServer *)ud)->nclients; }

int rpc_server_new(RpcServer **out, char *err) {
    RpcServer *srv = calloc(1, sizeof *srv);
    if (!srv) return ld_err(err, LD_ENOMEM, "out of memory");
    srv->wire = (DaemonWire){.ud = srv, .listen = srv_listen, .event = srv_event,
                             .close = srv_close, .clients = srv_clients};
    *out = srv;
    return LD_OK;
}

const DaemonWire *rpc_server_wire(RpcServer *s) { return &s->wire; }

void rpc_server_free(RpcServer *s) { free(s); }
