/* net.c: the daemon's Unix socket: accepting clients (owner uid only), reading request lines,
 * writing replies and event notifications with a bound on what a client may leave unread. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct DaemonClient {
    uv_pipe_t pipe; /* first: the handle's address is the client's */
    Daemon *d;
    DaemonClient *prev, *next;
    RpcFramer framer;
    size_t out_pending; /* bytes handed to uv_write and not yet written */
    int closing;        /* uv_close called */
    int close_after_write;
    int read_paused; /* too many replies unread: stop reading its requests for a while */
    int subscribed;
    int backlog_due; /* send stored events after the current reply */
    int64_t since;
};

typedef struct WriteReq {
    uv_write_t req;
    DaemonClient *c;
    size_t len;
    char data[];
} WriteReq;

static void client_closed(uv_handle_t *h) {
    DaemonClient *c = (DaemonClient *)h;
    Daemon *d = c->d;
    if (c->prev) c->prev->next = c->next;
    else d->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    d->nclients--;
    rpc_framer_free(&c->framer);
    free(c);
}

static void client_close(DaemonClient *c) {
    if (c->closing) return;
    c->closing = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void send_backlog(DaemonClient *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int on_line(void *ud, char *line, size_t len);
static void client_fail(DaemonClient *c, int code, const char *msg);
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
    DaemonClient *c = w->c;
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
        char err[LD_ERR_MAX];
        c->read_paused = 0;
        /* the requests a pause held first: answering them may pause again */
        int rc = rpc_framer_resume(&c->framer, on_line, c, err);
        if (rc == LD_EINVAL || rc == LD_ENOMEM) {
            client_fail(c, RPC_INVALID_REQUEST, err);
            return;
        }
        if (c->closing || c->close_after_write || c->read_paused) return;
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    }
}

int daemon_client_send(DaemonClient *c, const char *line, size_t len) {
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
static void client_fail(DaemonClient *c, int code, const char *msg) {
    size_t n = 0;
    char *line = rpc_error_line(NULL, code, msg, &n);
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (line && daemon_client_send(c, line, n) == LD_OK) c->close_after_write = 1;
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

static int send_event(DaemonClient *c, const cJSON *ev) {
    size_t n = 0;
    char *line = rpc_notification_line("event", event_params(ev), &n);
    if (!line) return LD_ENOMEM;
    int rc = daemon_client_send(c, line, n);
    free(line);
    return rc;
}

#define BACKLOG_PAGE 500

/* Sends one page of stored events after c->since. The next page follows from on_write once the
 * client has read most of this one, so a long history never trips RPC_OUTBUF_MAX. The last
 * (short) page makes c a live subscriber: events are appended on this thread, so nothing falls
 * between the stored pages and the live stream. */
static void send_backlog(DaemonClient *c) {
    Daemon *d = c->d;
    char err[LD_ERR_MAX];
    cJSON *evs = NULL;
    c->backlog_due = 0;
    if (store_events_since(d->store, c->since, BACKLOG_PAGE, &evs, err) != LD_OK) {
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

void net_broadcast_event(Daemon *d, const cJSON *event) {
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(event, "seq");
    int64_t s = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : 0;
    DaemonClient *c = d->clients;
    while (c) {
        DaemonClient *next = c->next; /* send may close c (closing is deferred, but be safe) */
        if (c->subscribed && !c->closing && s > c->since) {
            c->since = s;
            send_event(c, event);
        }
        c = next;
    }
}

int daemon_subscribe(Daemon *d, DaemonClient *c, int64_t since, int64_t *last_seq, char *err) {
    *last_seq = d->last_event_seq;
    if (!c) return LD_OK; /* unit tests call handlers without a connection */
    /* a since beyond the newest event (a client of an older database) must not hide new ones */
    c->since = since < 0 || since > d->last_event_seq ? d->last_event_seq : since;
    c->backlog_due = 1;
    return LD_OK;
}

static int on_line(void *ud, char *line, size_t len) {
    DaemonClient *c = ud;
    Daemon *d = c->d;
    if (c->closing || c->close_after_write) return 2;
    RpcCall call = {.daemon = d, .client = c};
    size_t n = 0;
    const char *refuse = d->shutting_down ? "the server is shutting down"
                         : d->store_dead[0] ? d->store_dead
                                            : NULL;
    char *reply = rpc_handle_line(rpc_tables(), line, len, &call, refuse, &n);
    if (reply) {
        daemon_client_send(c, reply, n);
        free(reply);
    }
    if (c->backlog_due && !c->closing && c->out_pending < BACKLOG_LOW_WATER) send_backlog(c);
    if (c->closing || c->close_after_write) return 2; /* stop: the connection is going away */
    return c->read_paused ? RPC_FRAMER_PAUSE : 0;
}

static char read_buf[65536]; /* the loop is single-threaded and each read is consumed at once */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    DaemonClient *c = (DaemonClient *)s;
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
    Daemon *d = server->data;
    if (status < 0) {
        daemon_log("accept: %s", uv_strerror(status));
        return;
    }
    DaemonClient *c = calloc(1, sizeof *c);
    if (!c) return;
    c->d = d;
    uv_pipe_init(&d->loop, &c->pipe, 0);
    c->next = d->clients;
    if (d->clients) d->clients->prev = c;
    d->clients = c;
    d->nclients++;
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
    if (cred.uid != d->uid) {
        char msg[128];
        snprintf(msg, sizeof msg, "permission denied: uid %u is not the daemon owner (uid %u)",
                 (unsigned)cred.uid, (unsigned)d->uid);
        client_fail(c, RPC_PERMISSION, msg);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* 1 when something accepts connections on path. */
static int socket_alive(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int alive = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return alive;
}

int net_check_socket(const char *path, char *err) {
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path)
        return ld_err(err, LD_EINVAL, "socket path %s: longer than %zu bytes", path,
                      sizeof sa.sun_path - 1);
    struct stat st;
    if (lstat(path, &st) != 0) return LD_OK;
    if (!S_ISSOCK(st.st_mode))
        return ld_err(err, LD_EIO, "%s: exists and is not a socket; not removing it", path);
    if (socket_alive(path))
        return ld_err(err, LD_EBUSY, "another lossd is already serving on %s", path);
    return LD_OK;
}

int net_listen(Daemon *d, char *err) {
    int rc = net_check_socket(d->socket_path, err);
    if (rc != LD_OK) return rc;
    if (unlink(d->socket_path) == 0) daemon_log("removed stale socket %s", d->socket_path);
    rc = uv_pipe_init(&d->loop, &d->server, 0);
    if (rc != 0) return ld_err(err, LD_EIO, "uv_pipe_init: %s", uv_strerror(rc));
    d->server.data = d;
    d->server_open = 1;
    mode_t old = umask(0177); /* the socket is born 0600: no window where others may connect */
    rc = uv_pipe_bind(&d->server, d->socket_path);
    umask(old);
    if (rc != 0) return ld_err(err, LD_EIO, "bind %s: %s", d->socket_path, uv_strerror(rc));
    chmod(d->socket_path, 0600);
    rc = uv_listen((uv_stream_t *)&d->server, 512, on_connection);
    if (rc != 0) return ld_err(err, LD_EIO, "listen %s: %s", d->socket_path, uv_strerror(rc));
    return LD_OK;
}

void net_close_all(Daemon *d, int force) {
    if (d->server_open) {
        d->server_open = 0;
        uv_close((uv_handle_t *)&d->server, NULL);
        unlink(d->socket_path);
    }
    for (DaemonClient *c = d->clients; c; c = c->next) {
        if (force || c->out_pending == 0) {
            client_close(c);
        } else {
            uv_read_stop((uv_stream_t *)&c->pipe);
            c->close_after_write = 1;
        }
    }
}

void daemon_log(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lossd[%d]: %s\n", (int)getpid(), buf);
}
