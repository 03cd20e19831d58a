/* fuzz_rpc.c: the JSON-RPC request path: the byte stream split into lines by the framer (with
 * a pause on every third line, as backpressure does), each line through rpc_handle_line against
 * a table with every parameter type; a handler echoes its params, so replies print whatever
 * was accepted. Any reply must be one line of valid JSON. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "../../api/rpc.h"
#include "fuzz.h"

static int m_echo(RpcCall *call, cJSON **result, char *err) {
    (void)err;
    *result = cJSON_Duplicate(call->params, 1);
    return RPC_OK;
}

static int m_fail(RpcCall *call, cJSON **result, char *err) {
    (void)result;
    const char *s = rpc_param_str(call->params, "s");
    return ld_err(err, RPC_NOT_FOUND, "thing %.*s: not found", (int)rpc_utf8_prefix(s ? s : "", 200),
                  s ? s : "");
}

static const RpcParam p_all[] = {{"i", RPC_T_INT, 1},    {"n", RPC_T_NUMBER, 0}, {"s", RPC_T_STRING, 0},
                                 {"b", RPC_T_BOOL, 0},   {"o", RPC_T_OBJECT, 0}, {"a", RPC_T_ARRAY, 0},
                                 {NULL, 0, 0}};
static const RpcParam p_s[] = {{"s", RPC_T_STRING, 0}, {NULL, 0, 0}};
static const RpcMethod table[] = {
    {"t.echo", m_echo, p_all, 0, "echo"},
    {"t.read", m_echo, NULL, RPC_READONLY, "echo, read-only"},
    {"t.fail", m_fail, p_s, 0, "an error naming its param"},
    {NULL, NULL, NULL, 0, NULL},
};
static const RpcMethod *const tables[] = {table, NULL};

typedef struct Ctx {
    int lines;
    int refuse;
} Ctx;

static int on_line(void *ud, char *line, size_t len) {
    Ctx *c = ud;
    RpcCall call = {0};
    size_t n = 0;
    char *reply = rpc_handle_line(tables, line, len, &call, c->refuse ? "shutting down" : NULL, &n);
    if (reply) {
        if (n == 0 || reply[n - 1] != '\n' || memchr(reply, '\n', n - 1)) {
            fprintf(stderr, "reply is not one line: %.*s\n", (int)n, reply);
            abort();
        }
        cJSON *j = cJSON_ParseWithLength(reply, n);
        if (!j) {
            fprintf(stderr, "reply is not JSON: %.*s\n", (int)n, reply);
            abort();
        }
        cJSON_Delete(j);
        free(reply);
    }
    return ++c->lines % 3 == 0 ? RPC_FRAMER_PAUSE : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    RpcFramer f = {0};
    Ctx c = {0, size > 0 && data[0] == '!'};
    char err[LD_ERR_MAX];
    /* Two pieces, split in the middle, as a socket may deliver them. */
    size_t half = size / 2;
    int rc = rpc_framer_feed(&f, (const char *)data, half, on_line, &c, err);
    while (rc == RPC_FRAMER_PAUSE) rc = rpc_framer_resume(&f, on_line, &c, err);
    if (rc == LD_OK) {
        rc = rpc_framer_feed(&f, (const char *)data + half, size - half, on_line, &c, err);
        while (rc == RPC_FRAMER_PAUSE) rc = rpc_framer_resume(&f, on_line, &c, err);
    }
    rpc_framer_free(&f);
    /* The whole input as one line too (the framer skips what has no newline). */
    if (size < 1 << 16) {
        char *s = fuzz_cstr(data, size);
        if (s) on_line(&c, s, size);
        free(s);
    }
    return 0;
}
