/* test_rpc.c: the JSON-RPC layer: framing across reads, envelope validation and error codes,
 * the method table's schema checks; then a real daemon in-process on a temporary socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../api/rpc.h"
#include "../api/server.h"
#include "../daemon/daemon.h"

/* ---- framing ------------------------------------------------------------------------------ */

typedef struct Lines {
    int n;
    char *v[64];
    size_t len[64];
} Lines;

static int collect(void *ud, char *line, size_t len) {
    Lines *l = ud;
    assert_true(l->n < 64);
    assert_int_equal(line[len], 0); /* NUL-terminated */
    l->v[l->n] = strdup(line);
    l->len[l->n] = len;
    l->n++;
    return 0;
}

static void lines_free(Lines *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    l->n = 0;
}

static void test_framing_split_across_reads(void **state) {
    RpcFramer f = {0};
    Lines l = {0};
    char err[LD_ERR_MAX];
    const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.hello\"}\n";
    /* one byte at a time */
    for (size_t i = 0; i < strlen(msg); i++)
        assert_int_equal(rpc_framer_feed(&f, msg + i, 1, collect, &l, err), LD_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.hello\"}");
    assert_int_equal(rpc_framer_pending(&f), 0);
    /* a line split in two, the second piece carrying the start of the next line */
    assert_int_equal(rpc_framer_feed(&f, "abc", 3, collect, &l, err), LD_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(rpc_framer_pending(&f), 3);
    assert_int_equal(rpc_framer_feed(&f, "def\r\nxy", 7, collect, &l, err), LD_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1], "abcdef"); /* the \r is dropped */
    assert_int_equal(rpc_framer_pending(&f), 2);
    assert_int_equal(rpc_framer_feed(&f, "z\n", 2, collect, &l, err), LD_OK);
    assert_string_equal(l.v[2], "xyz");
    lines_free(&l);
    rpc_framer_free(&f);
}

static void test_framing_many_in_one_read(void **state) {
    RpcFramer f = {0};
    Lines l = {0};
    char err[LD_ERR_MAX];
    const char *buf = "one\ntwo\n\n\r\n  \t \nthree\nfour";
    assert_int_equal(rpc_framer_feed(&f, buf, strlen(buf), collect, &l, err), LD_OK);
    assert_int_equal(l.n, 3); /* blank lines are skipped; "four" waits for its newline */
    assert_string_equal(l.v[0], "one");
    assert_string_equal(l.v[1], "two");
    assert_string_equal(l.v[2], "three");
    assert_int_equal(rpc_framer_pending(&f), 4);
    lines_free(&l);
    rpc_framer_free(&f);
}

static int stop_after_first(void *ud, char *line, size_t len) {
    (*(int *)ud)++;
    return 7;
}

static void test_framing_callback_stops(void **state) {
    RpcFramer f = {0};
    int calls = 0;
    char err[LD_ERR_MAX];
    assert_int_equal(rpc_framer_feed(&f, "a\nb\nc\n", 6, stop_after_first, &calls, err), 7);
    assert_int_equal(calls, 1);
    rpc_framer_free(&f);
}

static void test_framing_oversized(void **state) {
    RpcFramer f = {0};
    Lines l = {0};
    char err[LD_ERR_MAX] = "";
    size_t n = RPC_LINE_MAX;
    char *big = malloc(n + 2);
    memset(big, 'x', n);
    big[n] = '\n';
    /* exactly RPC_LINE_MAX bytes, in two pieces: allowed */
    assert_int_equal(rpc_framer_feed(&f, big, n / 2, collect, &l, err), LD_OK);
    assert_int_equal(rpc_framer_feed(&f, big + n / 2, n - n / 2 + 1, collect, &l, err), LD_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.len[0], n);
    lines_free(&l);
    /* one byte more: refused, whether it arrives whole or in pieces */
    big[n] = 'x';
    big[n + 1] = '\n';
    int rc = rpc_framer_feed(&f, big, n + 2, collect, &l, err);
    assert_int_equal(rc, LD_EINVAL);
    assert_non_null(strstr(err, "exceeds"));
    assert_int_equal(l.n, 0);
    rpc_framer_free(&f);
    RpcFramer g = {0};
    err[0] = 0;
    assert_int_equal(rpc_framer_feed(&g, big, n, collect, &l, err), LD_OK);
    /* one byte of slack for a CR; the newline then shows the line was one byte too long */
    assert_int_equal(rpc_framer_feed(&g, "x", 1, collect, &l, err), LD_OK);
    assert_int_equal(rpc_framer_feed(&g, "\n", 1, collect, &l, err), LD_EINVAL);
    assert_int_equal(l.n, 0);
    rpc_framer_free(&g);
    RpcFramer h = {0};
    assert_int_equal(rpc_framer_feed(&h, big, n + 1, collect, &l, err), LD_OK);
    assert_int_equal(rpc_framer_feed(&h, "x", 1, collect, &l, err), LD_EINVAL);
    rpc_framer_free(&h);
    free(big);
}

/* A line of exactly RPC_LINE_MAX bytes ending in CR LF is accepted (docs/protocol.md: a
 * trailing CR is ignored), whole or in pieces. */
static void test_framing_max_line_crlf(void **state) {
    char err[LD_ERR_MAX] = "";
    size_t n = RPC_LINE_MAX;
    char *big = malloc(n + 2);
    memset(big, 'x', n);
    big[n] = '\r';
    big[n + 1] = '\n';
    for (int pieces = 1; pieces <= 2; pieces++) {
        RpcFramer f = {0};
        Lines l = {0};
        if (pieces == 1) {
            assert_int_equal(rpc_framer_feed(&f, big, n + 2, collect, &l, err), LD_OK);
        } else {
            assert_int_equal(rpc_framer_feed(&f, big, n + 1, collect, &l, err), LD_OK);
            assert_int_equal(rpc_framer_feed(&f, big + n + 1, 1, collect, &l, err), LD_OK);
        }
        if (l.n != 1 || l.len[0] != n) fail_msg("%d pieces: %d lines, %s", pieces, l.n, err);
        lines_free(&l);
        rpc_framer_free(&f);
    }
    free(big);
}

/* Backpressure inside one read: a callback that pauses keeps the remaining lines (and the
 * unfinished one) in the framer until rpc_framer_resume; bytes fed meanwhile queue behind. */
static int pause_each(void *ud, char *line, size_t len) {
    collect(ud, line, len);
    return RPC_FRAMER_PAUSE;
}

static void test_framing_pause_resume(void **state) {
    RpcFramer f = {0};
    Lines l = {0};
    char err[LD_ERR_MAX] = "";
    const char *buf = "one\ntwo\nthree\nfo";
    assert_int_equal(rpc_framer_feed(&f, buf, strlen(buf), pause_each, &l, err), RPC_FRAMER_PAUSE);
    assert_int_equal(l.n, 1);
    assert_true(rpc_framer_held(&f));
    assert_int_equal(rpc_framer_feed(&f, "ur\nfive\n", 8, pause_each, &l, err), RPC_FRAMER_PAUSE);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1], "two");
    assert_int_equal(rpc_framer_resume(&f, collect, &l, err), LD_OK);
    assert_false(rpc_framer_held(&f));
    assert_int_equal(l.n, 5);
    assert_string_equal(l.v[2], "three");
    assert_string_equal(l.v[3], "four");
    assert_string_equal(l.v[4], "five");
    assert_int_equal(rpc_framer_pending(&f), 0);
    assert_int_equal(rpc_framer_resume(&f, collect, &l, err), LD_OK); /* nothing held */
    lines_free(&l);
    rpc_framer_free(&f);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static int h_echo(RpcCall *call, cJSON **result, char *err) {
    *result = cJSON_Duplicate(call->params, 1);
    return RPC_OK;
}

static int h_fail(RpcCall *call, cJSON **result, char *err) {
    return ld_err(err, RPC_NOT_FOUND, "thing %d: not found", 42);
}

static int h_bad(RpcCall *call, cJSON **result, char *err) {
    *result = cJSON_CreateObject(); /* a result with an error: the result must be dropped */
    return 5;                       /* a positive code is a bug: sent as internal error */
}

static const RpcParam p_echo[] = {{"job_id", RPC_T_INT, 1},  {"name", RPC_T_STRING, 0},
                                  {"x", RPC_T_NUMBER, 0},    {"flag", RPC_T_BOOL, 0},
                                  {"obj", RPC_T_OBJECT, 0},  {"arr", RPC_T_ARRAY, 0},
                                  {NULL, 0, 0}};
static const RpcMethod test_methods[] = {
    {"t.echo", h_echo, p_echo, RPC_READONLY, "echo params"},
    {"t.write", h_echo, NULL, 0, "a method that changes things"},
    {"t.fail", h_fail, NULL, RPC_READONLY, "fails"},
    {"t.bad", h_bad, NULL, RPC_READONLY, "misbehaves"},
    {NULL, NULL, NULL, 0, NULL},
};
static const RpcMethod *const test_tables[] = {test_methods, NULL};

/* Runs one line through the dispatcher; returns the parsed reply (NULL if none). */
static cJSON *run(const char *line, int refuse_writes) {
    RpcCall call = {0};
    size_t n = 0;
    char *out = rpc_handle_line(test_tables, line, strlen(line), &call,
                                refuse_writes ? "the server is shutting down" : NULL, &n);
    if (!out) return NULL;
    assert_true(n > 0);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1)); /* one line */
    cJSON *r = cJSON_Parse(out);
    assert_non_null(r);
    free(out);
    return r;
}

static int code_of(const cJSON *r) {
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    const cJSON *c = cJSON_GetObjectItem(e, "code");
    return cJSON_IsNumber(c) ? (int)c->valuedouble : 0;
}

static const char *msg_of(const cJSON *r) {
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message");
    return cJSON_IsString(m) ? m->valuestring : "";
}

/* Expects an error reply with code and a message containing want. */
static void expect_error(const char *line, int code, const char *want) {
    cJSON *r = run(line, 0);
    assert_non_null(r);
    if (code_of(r) != code || !strstr(msg_of(r), want)) {
        print_error("line %s: expected code %d with \"%s\", got %d \"%s\"\n", line, code, want,
                    code_of(r), msg_of(r));
        fail();
    }
    cJSON_Delete(r);
}

static void test_parse_errors(void **state) {
    cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", 0);
    assert_int_equal(code_of(r), RPC_PARSE_ERROR);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "id")));
    assert_non_null(strstr(msg_of(r), "byte"));
    cJSON_Delete(r);
    expect_error("\xff\xfe garbage", RPC_PARSE_ERROR, "not valid JSON");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\"} {}", RPC_PARSE_ERROR,
                 "trailing");
}

static void test_invalid_requests(void **state) {
    expect_error("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\"}]", RPC_INVALID_REQUEST,
                 "batches");
    expect_error("42", RPC_INVALID_REQUEST, "expected an object, got integer");
    expect_error("\"hi\"", RPC_INVALID_REQUEST, "got string");
    expect_error("{\"id\":1,\"method\":\"t.echo\"}", RPC_INVALID_REQUEST, "jsonrpc");
    expect_error("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"t.echo\"}", RPC_INVALID_REQUEST,
                 "jsonrpc");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", RPC_INVALID_REQUEST,
                 "method: expected a string, got integer");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1}", RPC_INVALID_REQUEST, "method");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"t.echo\"}", RPC_INVALID_REQUEST,
                 "id: expected a number, string or null, got object");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":[1]}",
                 RPC_INVALID_REQUEST, "params: expected an object, got array");
    /* an invalid envelope without id is still answered, with id null */
    cJSON *r = run("{\"method\":\"t.echo\"}", 0);
    assert_non_null(r);
    assert_int_equal(code_of(r), RPC_INVALID_REQUEST);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "id")));
    cJSON_Delete(r);
}

static void test_method_not_found_and_ids(void **state) {
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.frobnicate\"}",
                 RPC_METHOD_NOT_FOUND, "method not found: job.frobnicate");
    /* string ids come back as strings, numbers as numbers */
    cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"t.echo\",\"params\":{\"job_id\":3}}", 0);
    assert_string_equal(cJSON_GetObjectItem(r, "id")->valuestring, "abc");
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "job_id")->valuedouble, 3);
    assert_string_equal(cJSON_GetObjectItem(r, "jsonrpc")->valuestring, "2.0");
    cJSON_Delete(r);
    r = run("{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"t.fail\"}", 0);
    assert_int_equal((int)cJSON_GetObjectItem(r, "id")->valuedouble, 17);
    assert_int_equal(code_of(r), RPC_NOT_FOUND);
    assert_string_equal(msg_of(r), "thing 42: not found");
    assert_null(cJSON_GetObjectItem(r, "result"));
    cJSON_Delete(r);
    r = run("{\"jsonrpc\":\"2.0\",\"id\":18,\"method\":\"t.bad\"}", 0);
    assert_int_equal(code_of(r), RPC_INTERNAL);
    assert_null(cJSON_GetObjectItem(r, "result"));
    cJSON_Delete(r);
}

static void test_notifications_get_no_reply(void **state) {
    assert_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"t.echo\",\"params\":{\"job_id\":1}}", 0));
    /* even when they fail */
    assert_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"t.fail\"}", 0));
    assert_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}", 0));
}

static void test_schema_checks(void **state) {
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":\"1\"}}",
                 RPC_INVALID_PARAMS, "params.job_id: expected an integer, got string");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1.5}}",
                 RPC_INVALID_PARAMS, "params.job_id: expected an integer");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1e30}}",
                 RPC_INVALID_PARAMS, "params.job_id: expected an integer");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{}}",
                 RPC_INVALID_PARAMS, "params.job_id: missing");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\"}", RPC_INVALID_PARAMS,
                 "params.job_id: missing");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"name\":3}}",
                 RPC_INVALID_PARAMS, "params.name: expected a string, got integer");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"x\":\"a\"}}",
                 RPC_INVALID_PARAMS, "params.x: expected a number, got string");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"flag\":1}}",
                 RPC_INVALID_PARAMS, "params.flag: expected a boolean, got integer");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"obj\":[]}}",
                 RPC_INVALID_PARAMS, "params.obj: expected an object, got array");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"arr\":{}}}",
                 RPC_INVALID_PARAMS, "params.arr: expected an array, got object");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":null}}",
                 RPC_INVALID_PARAMS, "params.job_id: expected an integer, got null");
    /* every type accepted, unknown params ignored */
    cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":-4,"
                   "\"name\":\"n\",\"x\":0.5,\"flag\":true,\"obj\":{},\"arr\":[],\"zzz\":1}}", 0);
    assert_non_null(cJSON_GetObjectItem(r, "result"));
    assert_null(cJSON_GetObjectItem(r, "error"));
    cJSON_Delete(r);
}

static void test_refuse_writes_while_shutting_down(void **state) {
    cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.write\"}", 1);
    assert_int_equal(code_of(r), RPC_BUSY);
    assert_non_null(strstr(msg_of(r), "shutting down"));
    cJSON_Delete(r);
    r = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1}}", 1);
    assert_non_null(cJSON_GetObjectItem(r, "result")); /* read-only methods still served */
    cJSON_Delete(r);
}

static void test_core_table(void **state) {
    const RpcMethod *const *tables = rpc_tables();
    static const char *const required[] = {
        "server.hello", "server.status", "server.shutdown", "job.submit", "job.get", "job.list",
        "job.cancel", "job.pause", "job.resume", "leaderboard.query", "candidate.get",
        "candidate.export", "events.subscribe"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const RpcMethod *m = rpc_find(tables, required[i]);
        if (!m) {
            print_error("method %s missing from the table\n", required[i]);
            fail();
        }
        assert_non_null(m->handler);
    }
    /* names are unique across tables; schemas name each parameter once */
    for (const RpcMethod *const *t = tables; *t; t++)
        for (const RpcMethod *m = *t; m->name; m++) {
            assert_ptr_equal(rpc_find(tables, m->name), m);
            for (const RpcParam *p = m->params; p && p->name; p++)
                for (const RpcParam *q = p + 1; q->name; q++) assert_string_not_equal(p->name, q->name);
        }
    assert_true(rpc_find(tables, "server.hello")->flags & RPC_READONLY);
    assert_false(rpc_find(tables, "job.submit")->flags & RPC_READONLY);
    assert_null(rpc_find(tables, "job.frobnicate"));

    /* schema checks of the real table happen before any handler (no daemon here) */
    RpcCall call = {0};
    size_t n;
    const char *line = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.get\",\"params\":{\"job_id\":\"1\"}}";
    char *out = rpc_handle_line(tables, line, strlen(line), &call, NULL, &n);
    cJSON *r = cJSON_Parse(out);
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_string_equal(msg_of(r), "params.job_id: expected an integer, got string");
    cJSON_Delete(r);
    free(out);
    line = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.submit\",\"params\":{\"job\":\"x\"}}";
    out = rpc_handle_line(tables, line, strlen(line), &call, NULL, &n);
    r = cJSON_Parse(out);
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_string_equal(msg_of(r), "params.job: expected an object, got string");
    cJSON_Delete(r);
    free(out);
    /* server.hello needs no daemon */
    line = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.hello\"}";
    out = rpc_handle_line(tables, line, strlen(line), &call, NULL, &n);
    r = cJSON_Parse(out);
    const cJSON *res = cJSON_GetObjectItem(r, "result");
    assert_string_equal(cJSON_GetObjectItem(res, "server")->valuestring, "lossd");
    assert_int_equal((int)cJSON_GetObjectItem(res, "protocol")->valuedouble, RPC_PROTOCOL_VERSION);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(res, "methods")) >= 13);
    cJSON_Delete(r);
    free(out);
}

static void test_error_line_shape(void **state) {
    size_t n;
    char *s = rpc_error_line(NULL, RPC_PERMISSION, "permission denied: uid 7", &n);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32004,"
                           "\"message\":\"permission denied: uid 7\"}}\n");
    assert_int_equal(n, strlen(s));
    free(s);
    s = rpc_notification_line("event", cJSON_CreateObject(), &n);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{}}\n");
    free(s);
    assert_int_equal(rpc_code_from_ld(LD_ENOTFOUND), RPC_NOT_FOUND);
    assert_int_equal(rpc_code_from_ld(LD_ESTATE), RPC_INVALID_STATE);
    assert_int_equal(rpc_code_from_ld(LD_EBUSY), RPC_BUSY);
    assert_int_equal(rpc_code_from_ld(LD_EPERM), RPC_PERMISSION);
    assert_int_equal(rpc_code_from_ld(LD_EINVAL), RPC_INVALID_PARAMS);
    assert_int_equal(rpc_code_from_ld(LD_EIO), RPC_INTERNAL);
}

/* ---- a real daemon, in-process ------------------------------------------------------------ */

typedef struct Server {
    char dir[128], sock[256], db[256];
    Daemon *d;
    pthread_t th;
} Server;

static void *run_loop(void *arg) {
    daemon_run(arg);
    return NULL;
}

static int connect_to(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one line (a reply or a notification); returns it parsed. */
static cJSON *read_reply(int fd) {
    char buf[65536];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0) break;
        if (buf[n] == '\n') break;
        n++;
    }
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) print_error("unparsable reply: '%s'\n", buf);
    return j;
}

static cJSON *call(int fd, const char *line) {
    send_all(fd, line, strlen(line));
    return read_reply(fd);
}

typedef struct Writer {
    int fd;
    const char *buf;
    size_t n;
} Writer;

static void *writer_main(void *arg) {
    Writer *w = arg;
    size_t off = 0;
    while (off < w->n) {
        ssize_t k = write(w->fd, w->buf + off, w->n - off);
        if (k <= 0) break;
        off += (size_t)k;
    }
    return NULL;
}

/* 20000 pipelined requests (about 10 MB of replies, more than RPC_OUTBUF_MAX) from a client
 * that reads them more slowly than the server writes: backpressure, not a drop. */
static void check_pipelining(const char *sock) {
    int fd = connect_to(sock);
    assert_true(fd >= 0);
    enum { N = 20000 };
    size_t cap = (size_t)N * 64, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(buf + n, cap - n, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"server.hello\"}\n", i);
    Writer w = {fd, buf, n};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    FILE *in = fdopen(dup(fd), "r");
    char *line = NULL;
    size_t lcap = 0;
    int got = 0;
    for (int i = 0; i < N; i++) {
        if (getline(&line, &lcap, in) <= 0) break;
        if (i % 97 == 0) usleep(100); /* a slow reader */
        cJSON *r = cJSON_Parse(line);
        int id = r ? (int)cJSON_GetObjectItem(r, "id")->valuedouble : -1;
        cJSON_Delete(r);
        if (id != i) {
            print_error("reply %d has id %d\n", i, id);
            break;
        }
        got++;
    }
    pthread_join(th, NULL);
    assert_int_equal(got, N);
    free(line);
    fclose(in);
    close(fd);
    free(buf);
}

/* Sends line (printf format) and returns the parsed reply. */
static cJSON *callf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *callf(int fd, const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return call(fd, line);
}

static const char *state_of(const cJSON *r) {
    const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "state");
    return cJSON_IsString(st) ? st->valuestring : "?";
}

/* Pause, resume and cancel on a job too long to finish during the test; invalid transitions. */
static void check_job_control(int fd) {
    cJSON *r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"job.submit\",\"params\":{"
                         "\"priority\":2,\"job\":{\"name\":\"long\",\"tasks\":[{\"data\":\"builtin:digits\","
                         "\"train\":{\"steps\":10}}],\"budget\":{\"evaluations\":100000},\"seeds\":1,"
                         "\"fidelity\":{\"steps\":[10]},\"seed\":5}}}\n");
    const cJSON *res = cJSON_GetObjectItem(r, "result");
    assert_non_null(res);
    int id = (int)cJSON_GetObjectItem(res, "job_id")->valuedouble;
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"job.pause\",\"params\":{\"job_id\":%d}}\n", id);
    assert_string_equal(state_of(r), "paused");
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":32,\"method\":\"job.pause\",\"params\":{\"job_id\":%d}}\n", id);
    assert_int_equal(code_of(r), RPC_INVALID_STATE);
    assert_non_null(strstr(msg_of(r), "cannot pause a job that is paused"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":33,\"method\":\"job.list\",\"params\":{\"state\":\"paused\"}}\n");
    const cJSON *jobs = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 1);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "job_id")->valuedouble, id);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "priority")->valuedouble, 2);
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":34,\"method\":\"job.list\",\"params\":{\"state\":\"sleeping\"}}\n");
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_non_null(strstr(msg_of(r), "params.state"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":35,\"method\":\"job.resume\",\"params\":{\"job_id\":%d}}\n", id);
    assert_true(!strcmp(state_of(r), "running") || !strcmp(state_of(r), "queued"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":36,\"method\":\"job.resume\",\"params\":{\"job_id\":%d}}\n", id);
    assert_int_equal(code_of(r), RPC_INVALID_STATE);
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":37,\"method\":\"job.cancel\",\"params\":{\"job_id\":%d}}\n", id);
    assert_string_equal(state_of(r), "cancelled");
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":38,\"method\":\"job.cancel\",\"params\":{\"job_id\":%d}}\n", id);
    assert_int_equal(code_of(r), RPC_INVALID_STATE);
    assert_non_null(strstr(msg_of(r), "cannot cancel a job that is cancelled"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":39,\"method\":\"job.get\",\"params\":{\"job_id\":%d}}\n", id);
    res = cJSON_GetObjectItem(r, "result");
    assert_string_equal(cJSON_GetObjectItem(res, "state")->valuestring, "cancelled");
    assert_non_null(cJSON_GetObjectItem(res, "spec"));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "progress"), "budget"));
    cJSON_Delete(r);
    /* candidates and exports */
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"candidate.get\",\"params\":{\"job_id\":%d,\"cand\":99999}}\n", id);
    assert_int_equal(code_of(r), RPC_NOT_FOUND);
    assert_non_null(strstr(msg_of(r), "candidate 99999: not found"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"candidate.export\",\"params\":{\"expr\":\"ce\",\"family\":\"classification\",\"format\":\"expr\"}}\n");
    res = cJSON_GetObjectItem(r, "result");
    assert_non_null(res);
    assert_non_null(strstr(cJSON_GetObjectItem(res, "text")->valuestring, "ce"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"candidate.export\",\"params\":{\"expr\":\"ce\",\"family\":\"classification\",\"format\":\"fortran\"}}\n");
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_non_null(strstr(msg_of(r), "params.format"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":43,\"method\":\"leaderboard.query\",\"params\":{\"job_id\":%d,\"k\":0}}\n", id);
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_non_null(strstr(msg_of(r), "params.k"));
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":44,\"method\":\"leaderboard.query\",\"params\":{\"family\":\"poetry\"}}\n");
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    cJSON_Delete(r);
    r = callf(fd, "{\"jsonrpc\":\"2.0\",\"id\":45,\"method\":\"leaderboard.query\",\"params\":{\"job_id\":%d,\"k\":3}}\n", id);
    res = cJSON_GetObjectItem(r, "result");
    assert_non_null(res);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(res, "entries")));
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(res, "entries")) <= 3);
    cJSON_Delete(r);
}

static void test_real_server(void **state) {
    Server s = {0};
    char err[LD_ERR_MAX] = "";
    snprintf(s.dir, sizeof s.dir, "/tmp/lossd-test-rpc.XXXXXX");
    assert_non_null(mkdtemp(s.dir));
    snprintf(s.sock, sizeof s.sock, "%s/d.sock", s.dir);
    snprintf(s.db, sizeof s.db, "%s/db/lossd.db", s.dir); /* the directory is created */
    RpcServer *srv = NULL;
    assert_int_equal(rpc_server_new(&srv, err), LD_OK);
    DaemonConfig cfg = {.socket_path = s.sock, .db_path = s.db, .workers = 1,
                        .store_flags = STORE_NOSYNC, .wire = rpc_server_wire(srv)};
    int rc = daemon_open(&cfg, &s.d, err);
    if (rc != LD_OK) print_error("daemon_open: %s\n", err);
    assert_int_equal(rc, LD_OK);
    struct stat st;
    assert_int_equal(stat(s.sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a history longer than one backlog page, appended before the loop runs (loop thread
     * only afterwards) */
    for (int i = 0; i < 1200; i++) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddNumberToObject(data, "i", i);
        assert_int_equal(daemon_event(s.d, 0, "test.ping", data, err), LD_OK);
    }
    assert_int_equal(pthread_create(&s.th, NULL, run_loop, s.d), 0);

    int fd = connect_to(s.sock);
    assert_true(fd >= 0);
    cJSON *r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.hello\",\"params\":{\"client\":\"test\"}}\n");
    assert_non_null(r);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "server")->valuestring, "lossd");
    cJSON_Delete(r);

    /* a request split across two writes, then two requests in one write */
    const char *a = "{\"jsonrpc\":\"2.0\",\"id\":2,\"meth";
    send_all(fd, a, strlen(a));
    usleep(20000);
    r = call(fd, "od\":\"server.status\"}\n");
    const cJSON *res = cJSON_GetObjectItem(r, "result");
    assert_non_null(res);
    assert_int_equal((int)cJSON_GetObjectItem(res, "workers")->valuedouble, 1);
    assert_string_equal(cJSON_GetObjectItem(res, "db_path")->valuestring, s.db);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "jobs"), "running"));
    cJSON_Delete(r);
    const char *two = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"job.get\",\"params\":{\"job_id\":424242}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"job.list\"}\n";
    send_all(fd, two, strlen(two));
    r = read_reply(fd);
    assert_int_equal((int)cJSON_GetObjectItem(r, "id")->valuedouble, 3);
    assert_int_equal(code_of(r), RPC_NOT_FOUND);
    assert_non_null(strstr(msg_of(r), "424242"));
    cJSON_Delete(r);
    r = read_reply(fd);
    assert_int_equal((int)cJSON_GetObjectItem(r, "id")->valuedouble, 4);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs")), 0);
    cJSON_Delete(r);
    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"job.pause\",\"params\":{\"job_id\":9}}\n");
    assert_int_equal(code_of(r), RPC_NOT_FOUND);
    cJSON_Delete(r);
    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"job.submit\",\"params\":{\"job\":{\"budget\":{\"evaluations\":-1}}}}\n");
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_non_null(strstr(msg_of(r), "params.job: "));
    cJSON_Delete(r);
    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"leaderboard.query\",\"params\":{}}\n");
    assert_int_equal(code_of(r), RPC_INVALID_PARAMS);
    assert_non_null(strstr(msg_of(r), "exactly one of job_id and family"));
    cJSON_Delete(r);

    /* events: the stored server.start comes back as a notification after the reply */
    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"events.subscribe\",\"params\":{\"since\":0}}\n");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "subscribed")));
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "last_seq")->valuedouble >= 1);
    cJSON_Delete(r);
    double prev = 0;
    for (int i = 0; i < 1201; i++) {
        r = read_reply(fd);
        assert_non_null(r);
        assert_string_equal(cJSON_GetObjectItem(r, "method")->valuestring, "event");
        assert_null(cJSON_GetObjectItem(r, "id"));
        const cJSON *ep = cJSON_GetObjectItem(r, "params");
        double seq = cJSON_GetObjectItem(ep, "seq")->valuedouble;
        if (seq <= prev) {
            print_error("event %d: seq %.0f after %.0f\n", i, seq, prev);
            fail();
        }
        prev = seq;
        const char *kind = cJSON_GetObjectItem(ep, "kind")->valuestring;
        if (i == 0) {
            assert_string_equal(kind, "server.start"); /* appended at the end of daemon_open */
        } else {
            assert_string_equal(kind, "test.ping");
            assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(ep, "data"), "i")->valuedouble, i - 1);
        }
        cJSON_Delete(r);
    }

    /* a real (tiny) job: idempotent submit, then its events arrive live on the subscription */
    const char *job = "{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"job.submit\",\"params\":{"
                      "\"client_token\":\"tok\",\"job\":{\"name\":\"tiny\",\"tasks\":[{\"data\":"
                      "\"builtin:digits\",\"train\":{\"steps\":10}}],\"budget\":{\"evaluations\":4},"
                      "\"population\":4,\"children\":4,\"seeds\":1,\"fidelity\":{\"steps\":[10]},"
                      "\"final\":{\"top\":1,\"seeds\":2},\"seed\":1}}}\n";
    send_all(fd, job, strlen(job));
    int64_t job_id = 0;
    int seen_reply = 0, seen_submitted = 0, seen_running = 0;
    for (int i = 0; i < 50 && !(seen_reply && seen_submitted && seen_running); i++) {
        r = read_reply(fd);
        assert_non_null(r);
        const cJSON *res2 = cJSON_GetObjectItem(r, "result");
        if (res2) {
            job_id = (int64_t)cJSON_GetObjectItem(res2, "job_id")->valuedouble;
            assert_false(cJSON_IsTrue(cJSON_GetObjectItem(res2, "existing")));
            seen_reply = 1;
        } else {
            const cJSON *ep = cJSON_GetObjectItem(r, "params");
            if (!ep) {
                print_error("job.submit: %s\n", msg_of(r));
                fail();
            }
            const char *kind = cJSON_GetObjectItem(ep, "kind")->valuestring;
            assert_true(cJSON_GetObjectItem(ep, "seq")->valuedouble > prev);
            prev = cJSON_GetObjectItem(ep, "seq")->valuedouble;
            if (!strcmp(kind, "job.submitted")) seen_submitted = 1;
            const cJSON *st2 = cJSON_GetObjectItem(cJSON_GetObjectItem(ep, "data"), "state");
            if (!strcmp(kind, "job.state") && cJSON_IsString(st2) && !strcmp(st2->valuestring, "running"))
                seen_running = 1;
        }
        cJSON_Delete(r);
    }
    assert_true(seen_reply && seen_submitted && seen_running);
    assert_true(job_id >= 1);
    close(fd); /* the subscription ends with the connection */
    fd = connect_to(s.sock);
    r = call(fd, job); /* the same client_token: the same job, nothing new started */
    assert_int_equal((int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "job_id")->valuedouble, job_id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "existing")));
    cJSON_Delete(r);
    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"job.list\"}\n");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs")), 1);
    cJSON_Delete(r);

    /* a second daemon on the same socket, or on the same database, is refused */
    Daemon *d2 = NULL;
    DaemonConfig c2 = cfg;
    c2.db_path = NULL;
    char other_db[300];
    snprintf(other_db, sizeof other_db, "%s/other.db", s.dir);
    c2.db_path = other_db;
    rc = daemon_open(&c2, &d2, err);
    assert_int_equal(rc, LD_EBUSY);
    assert_non_null(strstr(err, "already serving"));
    char other_sock[300];
    snprintf(other_sock, sizeof other_sock, "%s/other.sock", s.dir);
    c2 = cfg;
    c2.socket_path = other_sock;
    rc = daemon_open(&c2, &d2, err);
    assert_int_equal(rc, LD_EBUSY);
    assert_int_equal(access(other_sock, F_OK), -1); /* it bound nothing */

    /* a line over 1 MiB: an error, then the connection closes; others are unaffected */
    int fd2 = connect_to(s.sock);
    size_t big = RPC_LINE_MAX + 100;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    buf[big - 1] = '\n';
    ssize_t w = 0;
    size_t off = 0;
    while (off < big && (w = write(fd2, buf + off, big - off)) > 0) off += (size_t)w;
    free(buf);
    r = read_reply(fd2);
    assert_int_equal(code_of(r), RPC_INVALID_REQUEST);
    assert_non_null(strstr(msg_of(r), "exceeds"));
    cJSON_Delete(r);
    char c;
    assert_true(read(fd2, &c, 1) <= 0);
    close(fd2);

    check_pipelining(s.sock);
    check_job_control(fd);

    /* another uid is refused with -32004 (needs root to become someone else; the socket's
     * 0600 mode would stop it first, so it is opened up for this check) */
    if (geteuid() == 0) {
        chmod(s.sock, 0666);
        chmod(s.dir, 0755);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
            /* no malloc here: the parent has threads, one may have held its lock at fork */
            int cfd = connect_to(s.sock);
            if (cfd < 0) _exit(4);
            char rb[512];
            size_t got = 0;
            ssize_t k;
            while (got < sizeof rb - 1 && (k = read(cfd, rb + got, sizeof rb - 1 - got)) > 0)
                got += (size_t)k;
            rb[got] = 0;
            _exit(strstr(rb, "\"code\":-32004") && strstr(rb, "uid 65534") ? 0 : 5);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        chmod(s.sock, 0600);
    }

    r = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"server.shutdown\"}\n");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "ok")));
    cJSON_Delete(r);
    pthread_join(s.th, NULL);
    close(fd);
    daemon_free(s.d);
    rpc_server_free(srv);
    assert_int_equal(access(s.sock, F_OK), -1); /* the socket file is gone */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s.dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- exactness: ids, numbers, strings ------------------------------------------------- */

/* The raw reply line for one request. Returns owned. */
static char *run_raw(const char *line) {
    RpcCall call = {0};
    size_t n = 0;
    char *out = rpc_handle_line(test_tables, line, strlen(line), &call, NULL, &n);
    assert_non_null(out);
    return out;
}

static void test_ids_echoed_exactly(void **state) {
    static const char *const ids[] = {"9007199254740993", "1e400", "-0", "1.50", "0.1e1",
                                      "\"\\u00e9t\\u00e9\"", "\"a b\"", "12345678901234567890123"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char line[256], want[128];
        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\": %s ,\"method\":\"t.echo\"}", ids[i]);
        snprintf(want, sizeof want, "\"id\":%s,", ids[i]);
        char *out = run_raw(line);
        if (!strstr(out, want)) fail_msg("id %s came back as: %s", ids[i], out);
        free(out);
        /* errors echo it too */
        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"t.nope\"}", ids[i]);
        out = run_raw(line);
        if (!strstr(out, want)) fail_msg("error reply: id %s came back as: %s", ids[i], out);
        free(out);
    }
}

static void test_numbers_round_trip(void **state) {
    static const double vals[] = {0.1, 1.0 / 3.0, 0.30000000000000004, 2.0 / 3.0 * 1e-300,
                                  123456.78901234567, 9007199254740993.0, 1e21, -2.5e-8,
                                  0.028143376857042313, 5e-324, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        cJSON *res = cJSON_CreateObject();
        cJSON_AddNumberToObject(res, "v", vals[i]);
        size_t n = 0;
        char *line = rpc_result_line(NULL, res, &n);
        const char *at = strstr(line, "\"v\":");
        assert_non_null(at);
        double back = strtod(at + 4, NULL);
        if (back != vals[i]) fail_msg("%.17g printed as %s", vals[i], line);
        free(line);
    }
    /* integers stay integers, short values stay short */
    cJSON *res = cJSON_CreateObject();
    cJSON_AddNumberToObject(res, "a", 42);
    cJSON_AddNumberToObject(res, "b", 0.5);
    cJSON_AddNumberToObject(res, "c", 1e300 * 1e300);
    char *line = rpc_result_line(NULL, res, NULL);
    if (!strstr(line, "\"a\":42,\"b\":0.5,\"c\":null")) fail_msg("printed: %s", line);
    free(line);
}

static void test_strings_nul_and_utf8_refused(void **state) {
    static const struct {
        const char *line, *where;
        int code;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\\u0000x\"}", "method: a string holding a NUL", RPC_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"s\":\"a\\u0000b\"}}", "params.s: a string holding a NUL", RPC_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"obj\":{\"tz\":\"UTC\\u0000junk\"}}}", "params.obj.tz: a string holding a NUL", RPC_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"arr\":[\"x\",\"\xff\"]}}", "params.arr[1]: a string that is not valid UTF-8", RPC_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.\xc3\"}", "method: a string that is not valid UTF-8", RPC_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"k\\u0000\":1}}", "params: a string holding a NUL", RPC_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"s\":\"\xed\xa0\x80\"}}", "params.s: a string that is not valid UTF-8", RPC_INVALID_PARAMS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = run_raw(cases[i].line);
        cJSON *r = cJSON_Parse(out);
        if (!r || code_of(r) != cases[i].code || !strstr(out, cases[i].where))
            fail_msg("case %zu: %s (want code %d and \"%s\")", i, out, cases[i].code, cases[i].where);
        assert_non_null(strstr(out, "\"id\":1,"));
        cJSON_Delete(r);
        free(out);
    }
    /* valid non-ASCII text passes untouched */
    char *out = run_raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.echo\",\"params\":{\"job_id\":1,\"s\":\"\xc3\xa9\\u00e9\xf0\x9f\x98\x80\"}}");
    if (!strstr(out, "\"s\":\"\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80\"")) fail_msg("echoed: %s", out);
    free(out);
}

static void test_messages_not_cut_inside_a_character(void **state) {
    /* a method name of 150 two-byte characters: the message keeps whole characters only */
    char line[1024] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x";
    for (int i = 0; i < 150; i++) strcat(line, "\xc3\xa9");
    strcat(line, "\"}");
    char *out = run_raw(line);
    const char *m = strstr(out, "method not found: x");
    assert_non_null(m);
    const char *e = strchr(m, '"');
    assert_int_equal((e - m - (int)strlen("method not found: x")) % 2, 0);
    free(out);
    assert_int_equal(rpc_utf8_prefix("ab\xc3\xa9", 3), 2);
    assert_int_equal(rpc_utf8_prefix("ab\xc3\xa9", 4), 4);
    assert_int_equal(rpc_utf8_prefix("\xf0\x9f\x98\x80z", 3), 0);
    /* a message already cut inside a character loses the partial one, not the reply */
    char msg[8] = {'c', 'u', 't', ' ', '\xc3', 0};
    char *el = rpc_error_line(NULL, RPC_INTERNAL, msg, NULL);
    if (!strstr(el, "\"message\":\"cut \"")) fail_msg("error line: %s", el);
    free(el);
}

int main(void) {
    /* The daemon runs in this process and the checks close sockets it may still be writing to
     * (a reply to a client that hung up): without this a write kills the whole program with
     * SIGPIPE, as lossd serve's main avoids the same way. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_split_across_reads),
        cmocka_unit_test(test_framing_many_in_one_read),
        cmocka_unit_test(test_framing_callback_stops),
        cmocka_unit_test(test_framing_oversized),
        cmocka_unit_test(test_framing_max_line_crlf),
        cmocka_unit_test(test_framing_pause_resume),
        cmocka_unit_test(test_ids_echoed_exactly),
        cmocka_unit_test(test_numbers_round_trip),
        cmocka_unit_test(test_strings_nul_and_utf8_refused),
        cmocka_unit_test(test_messages_not_cut_inside_a_character),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_method_not_found_and_ids),
        cmocka_unit_test(test_notifications_get_no_reply),
        cmocka_unit_test(test_schema_checks),
        cmocka_unit_test(test_refuse_writes_while_shutting_down),
        cmocka_unit_test(test_core_table),
        cmocka_unit_test(test_error_line_shape),
        cmocka_unit_test(test_real_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
