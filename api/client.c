/* client.c: the client side of lossd's wire protocol (one JSON-RPC message per line over a Unix
 * socket) and the helpers lossctl's command handlers share. */
#include "client.h"
#include "rpc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_LINE_MAX (64u << 20) /* a reply longer than this is a broken daemon */
#define CLIENT_QUEUE_MAX 4096       /* notifications kept while waiting for a reply */

struct Client {
    int fd;
    char *buf; /* bytes read but not yet split into lines */
    size_t len, cap;
    int64_t next_id;
    cJSON **queue; /* notifications that arrived while a call waited (owned) */
    int nqueue, capqueue;
};

const char *client_default_socket(char *buf, size_t n) {
    const char *env = getenv("LOSSD_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, n, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, n, "%s/lossd.sock", xdg);
    else
        snprintf(buf, n, "/tmp/lossd-%u.sock", (unsigned)getuid());
    return buf;
}

/* Short lower-case reasons for the errors a user meets when connecting. */
static const char *connect_reason(int e) {
    switch (e) {
    case ENOENT: return "no such file";
    case ECONNREFUSED: return "connection refused";
    case EACCES: return "permission denied";
    case ENOTSOCK: return "not a socket";
    case ENAMETOOLONG: return "path too long";
    default: return strerror(e);
    }
}

int client_connect(const char *path, Client **out, char *err) {
    struct sockaddr_un addr;
    Client *c = NULL;
    int fd = -1, rc = LD_OK;
    *out = NULL;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        rc = ld_err(err, LD_EINVAL, "cannot connect to %s: path too long (max %zu bytes)", path,
                    sizeof addr.sun_path - 1);
        goto done;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = ld_err(err, LD_EIO, "socket: %s", strerror(errno));
        goto done;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        rc = ld_err(err, LD_EIO, "cannot connect to %s: %s%s", path, connect_reason(e),
                    (e == ENOENT || e == ECONNREFUSED) ? " (is lossd serve running?)" : "");
        goto done;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = ld_err(err, LD_ENOMEM, "out of memory");
        goto done;
    }
    c->fd = fd;
    c->next_id = 1;
    fd = -1;
    *out = c;
done:
    if (fd >= 0) close(fd);
    return rc;
}

void client_close(Client *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    for (int i = 0; i < c->nqueue; i++) cJSON_Delete(c->queue[i]);
    free(c->queue);
    free(c->buf);
    free(c);
}

int client_status_of(int rpc_code) {
    switch (rpc_code) {
    case -32001: return LD_ENOTFOUND;
    case -32002: return LD_ESTATE;
    case -32003: return LD_EBUSY;
    case -32004: return LD_EPERM;
    default: return LD_EINVAL;
    }
}

static int send_all(Client *c, const char *p, size_t n, char *err) {
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return ld_err(err, LD_EIO, "sending to lossd: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return LD_OK;
}

/* Takes the first complete line out of the buffer, if there is one (returns owned or NULL). */
static char *take_line(Client *c) {
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (!nl) return NULL;
    size_t n = (size_t)(nl - c->buf);
    char *line = malloc(n + 1);
    if (!line) return NULL;
    memcpy(line, c->buf, n);
    line[n] = '\0';
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    return line;
}

/* Reads the next line (owned in *line), waiting up to timeout_ms (-1 forever); *line is NULL on
 * timeout. */
static int read_line(Client *c, int timeout_ms, char **line, char *err) {
    double deadline = timeout_ms >= 0 ? ld_now_ms() + timeout_ms : 0;
    *line = NULL;
    for (;;) {
        *line = take_line(c);
        if (*line) return LD_OK;
        if (c->len >= CLIENT_LINE_MAX)
            return ld_err(err, LD_EIO, "reply from lossd longer than %u bytes", CLIENT_LINE_MAX);
        int wait = -1;
        if (timeout_ms >= 0) {
            double left = deadline - ld_now_ms();
            if (left <= 0) return LD_OK;
            wait = (int)left + 1;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return ld_err(err, LD_EIO, "poll: %s", strerror(errno));
        if (pr == 0) continue;
        if (c->cap - c->len < 65536) {
            size_t ncap = c->cap ? c->cap * 2 : 131072;
            char *nb = realloc(c->buf, ncap);
            if (!nb) return ld_err(err, LD_ENOMEM, "out of memory reading a reply");
            c->buf = nb;
            c->cap = ncap;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) return ld_err(err, LD_EIO, "reading from lossd: %s", strerror(errno));
        if (r == 0) return ld_err(err, LD_EIO, "lossd closed the connection");
        c->len += (size_t)r;
    }
}

static int queue_push(Client *c, cJSON *msg) {
    if (c->nqueue >= CLIENT_QUEUE_MAX) { /* a slow reader loses the oldest, not the reply */
        cJSON_Delete(c->queue[0]);
        memmove(c->queue, c->queue + 1, (size_t)(c->nqueue - 1) * sizeof *c->queue);
        c->nqueue--;
    }
    if (c->nqueue == c->capqueue) {
        int ncap = c->capqueue ? c->capqueue * 2 : 16;
        cJSON **nq = realloc(c->queue, (size_t)ncap * sizeof *nq);
        if (!nq) {
            cJSON_Delete(msg);
            return LD_ENOMEM;
        }
        c->queue = nq;
        c->capqueue = ncap;
    }
    c->queue[c->nqueue++] = msg;
    return LD_OK;
}

int client_call(Client *c, const char *method, cJSON *params, cJSON **result, cJSON **rpc_error,
                char *err) {
    cJSON *req = NULL, *msg = NULL;
    char *text = NULL, *line = NULL;
    int rc = LD_OK;
    int64_t id = c->next_id++;
    *result = NULL;
    if (rpc_error) *rpc_error = NULL;

    req = cJSON_CreateObject();
    if (!req) {
        cJSON_Delete(params);
        rc = ld_err(err, LD_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", (double)id);
    cJSON_AddStringToObject(req, "method", method);
    if (params) cJSON_AddItemToObject(req, "params", params);
    text = cJSON_PrintUnformatted(req);
    if (!text) {
        rc = ld_err(err, LD_ENOMEM, "out of memory");
        goto done;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* the terminator replaces the NUL; send exactly n + 1 bytes */
    rc = send_all(c, text, n + 1, err);
    if (rc != LD_OK) goto done;

    for (;;) {
        rc = read_line(c, -1, &line, err);
        if (rc != LD_OK) goto done;
        msg = cJSON_Parse(line);
        free(line);
        line = NULL;
        if (!msg || !cJSON_IsObject(msg)) {
            cJSON_Delete(msg);
            msg = NULL;
            continue; /* a line that is not a JSON object answers nothing we asked: skip it */
        }
        cJSON *mid = cJSON_GetObjectItemCaseSensitive(msg, "id");
        if (!mid || cJSON_IsNull(mid)) {
            if (cJSON_GetObjectItemCaseSensitive(msg, "method")) {
                queue_push(c, msg);
                msg = NULL;
                continue;
            }
            /* an error with id null answers a request the daemon could not read: ours */
        } else if (!cJSON_IsNumber(mid) || (int64_t)mid->valuedouble != id) {
            cJSON_Delete(msg);
            msg = NULL;
            continue;
        }
        break;
    }
    cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
    if (error) {
        cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        rc = client_status_of(cJSON_IsNumber(code) ? code->valueint : 0);
        ld_err(err, rc, "%s", cJSON_IsString(message) ? message->valuestring : "unknown error");
        if (rpc_error) *rpc_error = cJSON_DetachItemViaPointer(msg, error);
        goto done;
    }
    cJSON *res = cJSON_GetObjectItemCaseSensitive(msg, "result");
    *result = res ? cJSON_DetachItemViaPointer(msg, res) : cJSON_CreateNull();
done:
    cJSON_Delete(msg);
    cJSON_Delete(req);
    free(text);
    free(line);
    return rc;
}

int client_next(Client *c, int timeout_ms, cJSON **msg, char *err) {
    char *line = NULL;
    double deadline = ld_now_ms() + (timeout_ms >= 0 ? timeout_ms : 0);
    *msg = NULL;
    if (c->nqueue > 0) {
        *msg = c->queue[0];
        memmove(c->queue, c->queue + 1, (size_t)(c->nqueue - 1) * sizeof *c->queue);
        c->nqueue--;
        return LD_OK;
    }
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            double l = deadline - ld_now_ms();
            left = l > 0 ? (int)l : 0;
        }
        int rc = read_line(c, left, &line, err);
        if (rc != LD_OK) return rc;
        if (!line) return LD_OK; /* timed out */
        cJSON *m = cJSON_Parse(line);
        free(line);
        line = NULL;
        if (m && cJSON_IsObject(m) && cJSON_GetObjectItemCaseSensitive(m, "method")) {
            *msg = m;
            return LD_OK;
        }
        cJSON_Delete(m); /* a stray reply: nobody waits for it */
    }
}

/* ---- lossctl's command toolkit ------------------------------------------------------------- */

int ctl_fail(int status, const char *fmt, ...) {
    va_list ap;
    fputs("lossctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

/* The row of opts that s names ("--top", "--top=5" up to its '=', or an alias), or -1. */
static int opt_row(const CtlOpt *opts, const char *s) {
    size_t n = s[0] == '-' && s[1] == '-' ? strcspn(s, "=") : strlen(s);
    for (int k = 0; opts && opts[k].name; k++) {
        if (strlen(opts[k].name) == n && !strncmp(opts[k].name, s, n)) return k;
        if (opts[k].alias && strlen(opts[k].alias) == n && !strncmp(opts[k].alias, s, n)) return k;
    }
    return -1;
}

int ctl_parse(const char *cmd, const CtlOpt *opts, int argc, char **argv, int first, CtlEach each,
              void *ctx, CtlArgs *a) {
    memset(a, 0, sizeof *a);
    a->opts = opts;
    int only_pos = 0, st = 0;
    for (int i = first; i < argc && !st; i++) {
        char *s = argv[i];
        if (!only_pos && !strcmp(s, "--")) {
            only_pos = 1;
            continue;
        }
        int k = only_pos ? -1 : opt_row(opts, s);
        int dashes = !only_pos && s[0] == '-' && s[1] == '-';
        if (k < 0 && dashes) return ctl_fail(2, "%s: unknown option %.*s", cmd, (int)strcspn(s, "="), s);
        if (k < 0) {
            if (a->npos < CTL_MAX_POS) a->pos[a->npos] = s;
            else if (!each) return ctl_fail(2, "%s: too many arguments", cmd);
            a->npos++;
            if (each) st = each(ctx, -1, s);
            continue;
        }
        const char *eq = dashes ? strchr(s, '=') : NULL, *val = "";
        if (opts[k].arg && eq) val = eq + 1;
        else if (opts[k].arg && i + 1 < argc) val = argv[++i];
        else if (opts[k].arg) return ctl_fail(2, "%s: option %s needs a value", cmd, opts[k].name);
        else if (eq) return ctl_fail(2, "%s: option %s takes no value", cmd, opts[k].name);
        if (k < CTL_MAX_OPTS) a->val[k] = val;
        if (each) st = each(ctx, k, val);
    }
    if (a->npos > CTL_MAX_POS) a->npos = CTL_MAX_POS; /* each saw the rest */
    return st;
}

const char *ctl_opt(const CtlArgs *a, const char *name) {
    for (int k = 0; a->opts && a->opts[k].name && k < CTL_MAX_OPTS; k++)
        if (!strcmp(a->opts[k].name, name)) return a->val[k];
    return NULL;
}

void ctl_print_opts(FILE *f, const CtlOpt *opts) {
    char head[CTL_MAX_OPTS][64];
    int w = 0, n = 0;
    for (; opts && opts[n].name && n < CTL_MAX_OPTS; n++) {
        const CtlOpt *o = &opts[n];
        int len = snprintf(head[n], sizeof head[n], "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (len > w) w = len;
    }
    if (n == 0) return;
    fprintf(f, "options:\n");
    for (int k = 0; k < n; k++) {
        const char *h = opts[k].help;
        int first = 1;
        do { /* one line of the help each turn */
            size_t len = strcspn(h, "\n");
            fprintf(f, "  %-*s  %.*s\n", w, first ? head[k] : "", (int)len, h);
            h += len + (h[len] == '\n');
            first = 0;
        } while (*h);
    }
}

int ctl_usage(const CtlCommand *cmd) {
    fprintf(stderr, "usage: lossctl %s %s\n", cmd->name, cmd->usage);
    return 2;
}

void ctl_print_json(const cJSON *j) {
    char *s = rpc_print_exact(j); /* the daemon's digits, all of them */
    if (s) {
        puts(s);
        free(s);
    }
}

/* 1 when the message already says where it applies. lossd's messages read "where: what"
 * ("job 7: not found", "params.k: ..."), so a colon means the place is named. */
static int names_object(const char *msg, const char *what) {
    return !what || strchr(msg, ':') || strstr(msg, what);
}

int ctl_call(Ctl *ctl, const char *method, cJSON *params, const char *what, cJSON **result) {
    char err[LD_ERR_MAX];
    cJSON *rpc_error = NULL;
    *result = NULL;
    if (!ctl->client) {
        if (client_connect(ctl->socket_path, &ctl->client, err) != LD_OK) {
            cJSON_Delete(params);
            return ctl_fail(1, "%s", err);
        }
    }
    int rc = client_call(ctl->client, method, params, result, &rpc_error, err);
    if (rc == LD_OK) return 0;
    if (rpc_error) {
        if (ctl->json) ctl_print_json(rpc_error);
        cJSON_Delete(rpc_error);
        if (names_object(err, what))
            return ctl_fail(1, "%s", err);
        return ctl_fail(1, "%s: %s", what, err);
    }
    return ctl_fail(1, "%s", err);
}

/* 1 if s looks like a data or task file name (so it is a path the daemon would open). */
static int looks_like_file(const char *s) {
    static const char *const exts[] = {".csv", ".npy", ".npz", ".json", ".tsv", ".txt", NULL};
    size_t n = strlen(s);
    if (n == 0 || strncmp(s, "builtin:", 8) == 0 || strchr(s, '\n')) return 0;
    for (int i = 0; exts[i]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcasecmp(s + n - e, exts[i]) == 0) return 1;
    }
    return 0;
}

void ctl_resolve_paths(cJSON *node, const char *base_dir) {
    for (cJSON *it = node ? node->child : NULL; it; it = it->next) {
        if (cJSON_IsString(it) && it->valuestring[0] != '/' && looks_like_file(it->valuestring)) {
            char path[PATH_MAX + 8], real[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", base_dir, it->valuestring);
            struct stat st;
            if (stat(path, &st) == 0 && realpath(path, real)) {
                cJSON *abs = cJSON_CreateString(real);
                if (!abs) return;
                if (it->string) { /* an object member keeps its key */
                    abs->string = strdup(it->string);
                    if (!abs->string) {
                        cJSON_Delete(abs);
                        return;
                    }
                }
                cJSON_ReplaceItemViaPointer(node, it, abs);
                it = abs; /* the old item is freed; continue from its replacement */
            }
        } else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            ctl_resolve_paths(it, base_dir);
        }
    }
}

/* Reads the whole of stdin. Returns owned text or NULL (out of memory). */
static char *read_stdin(void) {
    size_t cap = 65536, len = 0;
    char *text = malloc(cap);
    while (text) {
        size_t r = fread(text + len, 1, cap - len - 1, stdin);
        len += r;
        if (r == 0) break;
        if (cap - len < 2) {
            char *nt = realloc(text, cap * 2);
            if (!nt) {
                free(text);
                return NULL;
            }
            text = nt;
            cap *= 2;
        }
    }
    if (text) text[len] = '\0';
    return text;
}

int ctl_read_job_text(const char *file, const char *cmd, char **text, char *dir) {
    char err[LD_ERR_MAX], tmp[PATH_MAX];
    if (strcmp(file, "-") == 0) {
        *text = read_stdin();
        if (!*text) return ctl_fail(1, "%s: out of memory reading stdin", cmd);
        if (!getcwd(dir, PATH_MAX)) snprintf(dir, PATH_MAX, ".");
        return 0;
    }
    *text = ld_read_file(file, NULL, err);
    if (!*text) return ctl_fail(1, "%s", err);
    snprintf(tmp, sizeof tmp, "%s", file);
    char *slash = strrchr(tmp, '/');
    if (slash == tmp)
        tmp[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(tmp, sizeof tmp, ".");
    if (!realpath(tmp, dir)) snprintf(dir, PATH_MAX, "%s", tmp);
    return 0;
}

int ctl_read_job(const char *file, const char *cmd, cJSON **job) {
    char dir[PATH_MAX], why[160];
    char *text = NULL;
    const char *end = NULL;
    *job = NULL;
    int status = ctl_read_job_text(file, cmd, &text, dir);
    if (status != 0) return status;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        ld_json_error(text, cJSON_GetErrorPtr(), why, sizeof why);
        status = ctl_fail(1, "%s:%s", file, why);
    } else if (!cJSON_IsObject(j)) {
        status = ctl_fail(1, "%s: a job must be a JSON object", file);
        cJSON_Delete(j);
    } else {
        ctl_resolve_paths(j, dir);
        *job = j;
    }
    free(text);
    return status;
}

int ctl_parse_id(const char *s, int64_t *out) {
    char *end = NULL;
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0) return -1;
    *out = v;
    return 0;
}

double ctl_num(const cJSON *o, const char *name, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

const char *ctl_str(const cJSON *o, const char *name, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

int ctl_utf8(void) {
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    const char *ascii = getenv("LOSSCTL_ASCII");
    if (ascii && *ascii && strcmp(ascii, "0") != 0) return 0;
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
                            strstr(v, "utf-8");
    }
    return 1; /* no locale set at all: today's terminals speak UTF-8 */
}

const char *ctl_fmt_evals(char *buf, size_t n, const cJSON *pr, double floor) {
    double done = ctl_num(pr, "evaluations", 0), fin = ctl_num(pr, "final_evaluations", 0);
    double budget = ctl_num(pr, "budget", 0);
    if (fin > 0 && fin <= done) {
        double search = done - fin;
        if (search < floor) search = floor;
        snprintf(buf, n, "%.0f/%.0f (+%.0f final)", search, budget, fin);
    } else {
        snprintf(buf, n, "%.0f/%.0f", done > floor ? done : floor, budget);
    }
    return buf;
}

const char *ctl_fmt_gain(char *buf, size_t n, const cJSON *g) {
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(g, "ci95");
    const cJSON *lo = cJSON_GetArrayItem(ci, 0), *hi = cJSON_GetArrayItem(ci, 1);
    double m = ctl_num(g, "mean", NAN);
    if (!cJSON_IsObject(g) || !isfinite(m)) {
        snprintf(buf, n, "-");
        return buf;
    }
    if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi))
        snprintf(buf, n, "%+.2f%% [%+.2f%%, %+.2f%%]", 100 * m, 100 * lo->valuedouble,
                 100 * hi->valuedouble);
    else
        snprintf(buf, n, "%+.2f%% [-]", 100 * m);
    return buf;
}

const char *ctl_fmt_recipe(char *buf, size_t n, const cJSON *g) {
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(g, "steps"), *s, *model;
    size_t len = 0;
    buf[0] = 0;
    cJSON_ArrayForEach(s, steps) {
        if (len < n && cJSON_IsNumber(s))
            len += (size_t)snprintf(buf + len, n - len, "%s%.0f", len ? "/" : "", s->valuedouble);
    }
    if (len < n) len += (size_t)snprintf(buf + len, n - len, "%ssteps", len ? " " : "");
    model = cJSON_GetObjectItemCaseSensitive(g, "model");
    if (cJSON_IsObject(model) && len < n) {
        char *txt = cJSON_PrintUnformatted(model);
        if (txt) {
            snprintf(buf + len, n - len, ", model %s", txt);
            free(txt);
        }
    }
    return buf;
}

const char *ctl_fmt_num(char *buf, size_t n, double v) {
    double a = fabs(v);
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (a >= 1e5 || (v != 0 && a < 1e-4))
        snprintf(buf, n, "%.2e", v);
    else if (a >= 1e3)
        snprintf(buf, n, "%.1f", v);
    else if (a >= 100)
        snprintf(buf, n, "%.2f", v);
    else
        snprintf(buf, n, "%.4f", v);
    return buf;
}
