/* rpc.c: JSON-RPC 2.0 framing, envelope validation, schema checks and dispatch (rpc.h). */
#include "rpc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rpc_code_from_ld(int ld) {
    switch (ld) {
    case LD_OK: return RPC_OK;
    case LD_EINVAL: return RPC_INVALID_PARAMS;
    case LD_ENOTFOUND: return RPC_NOT_FOUND;
    case LD_ESTATE: return RPC_INVALID_STATE;
    case LD_EBUSY: return RPC_BUSY;
    case LD_EPERM: return RPC_PERMISSION;
    default: return RPC_INTERNAL;
    }
}

/* ---- framing ---------------------------------------------------------------------------- */

static int framer_append(RpcFramer *f, const char *data, size_t n) {
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + n + 1) cap *= 2;
        char *b = realloc(f->buf, cap);
        if (!b) return LD_ENOMEM;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    f->buf[f->len] = 0;
    return LD_OK;
}

/* Delivers one line held in line[0..n) (writable, one byte past it available for the NUL). */
static int deliver(char *line, size_t n, RpcLineFn fn, void *ud) {
    if (n > 0 && line[n - 1] == '\r') n--;
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == n) return 0; /* blank lines (whitespace only) are skipped, not answered */
    line[n] = 0;
    return fn(ud, line, n);
}

int rpc_framer_feed(RpcFramer *f, const char *data, size_t n, RpcLineFn fn, void *ud, char *err) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (f->len + take > RPC_LINE_MAX)
            return ld_err(err, LD_EINVAL, "request line exceeds %u bytes", RPC_LINE_MAX);
        if (!nl) {
            if (framer_append(f, data, take) != LD_OK)
                return ld_err(err, LD_ENOMEM, "out of memory buffering a request line");
            return LD_OK;
        }
        int rc;
        if (f->len == 0) {
            /* The whole line is in data: copy it once so the callback may keep it NUL-ended. */
            char *line = malloc(take + 1);
            if (!line) return ld_err(err, LD_ENOMEM, "out of memory reading a request line");
            memcpy(line, data, take);
            rc = deliver(line, take, fn, ud);
            free(line);
        } else {
            if (framer_append(f, data, take) != LD_OK)
                return ld_err(err, LD_ENOMEM, "out of memory buffering a request line");
            size_t len = f->len;
            f->len = 0; /* reset first: the callback may feed again (it must not, but be safe) */
            rc = deliver(f->buf, len, fn, ud);
            if (f->cap > 65536) { /* do not keep a huge buffer for a long-lived client */
                free(f->buf);
                f->buf = NULL;
                f->cap = 0;
            }
        }
        if (rc != 0) return rc;
        data += take + 1;
        n -= take + 1;
    }
    return LD_OK;
}

size_t rpc_framer_pending(const RpcFramer *f) { return f->len; }

void rpc_framer_free(RpcFramer *f) {
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
}

/* ---- schema ----------------------------------------------------------------------------- */

static int json_is_int(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    return isfinite(d) && floor(d) == d && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18;
}

const char *rpc_json_type_name(const cJSON *v) {
    if (!v || cJSON_IsInvalid(v)) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return json_is_int(v) ? "integer" : "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "raw";
}

static const char *type_label(RpcType t) {
    switch (t) {
    case RPC_T_INT: return "an integer";
    case RPC_T_NUMBER: return "a number";
    case RPC_T_STRING: return "a string";
    case RPC_T_BOOL: return "a boolean";
    case RPC_T_OBJECT: return "an object";
    case RPC_T_ARRAY: return "an array";
    }
    return "?";
}

static int type_ok(RpcType t, const cJSON *v) {
    switch (t) {
    case RPC_T_INT: return json_is_int(v);
    case RPC_T_NUMBER: return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    case RPC_T_STRING: return cJSON_IsString(v);
    case RPC_T_BOOL: return cJSON_IsBool(v);
    case RPC_T_OBJECT: return cJSON_IsObject(v);
    case RPC_T_ARRAY: return cJSON_IsArray(v);
    }
    return 0;
}

int rpc_check_params(const RpcMethod *m, const cJSON *params, char *err) {
    if (!m->params) return RPC_OK;
    for (const RpcParam *p = m->params; p->name; p++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, p->name);
        if (!v) {
            if (p->required)
                return ld_err(err, RPC_INVALID_PARAMS, "params.%s: missing (%s is required)",
                              p->name, type_label(p->type));
            continue;
        }
        if (!type_ok(p->type, v)) {
            const char *got = rpc_json_type_name(v);
            if (p->type == RPC_T_INT && cJSON_IsNumber(v) && !isfinite(v->valuedouble))
                got = "a non-finite number";
            else if (p->type == RPC_T_INT && cJSON_IsNumber(v))
                got = "a number with a fraction or out of range";
            return ld_err(err, RPC_INVALID_PARAMS, "params.%s: expected %s, got %s", p->name,
                          type_label(p->type), got);
        }
    }
    return RPC_OK;
}

/* ---- tables ----------------------------------------------------------------------------- */

static const RpcMethod *const rpc_default_tables[] = {rpc_core_methods, NULL};
static const RpcMethod *const *rpc_registered = rpc_default_tables;

void rpc_set_tables(const RpcMethod *const *tables) {
    rpc_registered = tables ? tables : rpc_default_tables;
}

const RpcMethod *const *rpc_tables(void) { return rpc_registered; }

const RpcMethod *rpc_find(const RpcMethod *const *tables, const char *name) {
    for (; *tables; tables++)
        for (const RpcMethod *m = *tables; m->name; m++)
            if (!strcmp(m->name, name)) return m;
    return NULL;
}

/* ---- replies ---------------------------------------------------------------------------- */

/* Prints obj on one line with '\n' appended; takes obj. */
static char *finish_line(cJSON *obj, size_t *len) {
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    if (len) *len = n + 1;
    return t;
}

static cJSON *envelope(const cJSON *id) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();
    cJSON_AddItemToObject(o, "id", idc ? idc : cJSON_CreateNull());
    return o;
}

char *rpc_error_line(const cJSON *id, int code, const char *msg, size_t *len) {
    cJSON *o = envelope(id);
    if (!o) return NULL;
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg && *msg ? msg : "error");
    return finish_line(o, len);
}

char *rpc_result_line(const cJSON *id, cJSON *result, size_t *len) {
    cJSON *o = envelope(id);
    if (!o) {
        cJSON_Delete(result);
        return NULL;
    }
    cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
    char *line = finish_line(o, len);
    if (!line) return rpc_error_line(id, RPC_INTERNAL, "out of memory printing the reply", len);
    return line;
}

char *rpc_notification_line(const char *method, cJSON *params, size_t *len) {
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(params);
        return NULL;
    }
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddStringToObject(o, "method", method);
    cJSON_AddItemToObject(o, "params", params ? params : cJSON_CreateObject());
    return finish_line(o, len);
}

/* ---- dispatch --------------------------------------------------------------------------- */

char *rpc_handle_line(const RpcMethod *const *tables, const char *line, size_t n, RpcCall *call,
                      int refuse_writes, size_t *len) {
    char err[LD_ERR_MAX] = "";
    char *reply = NULL;
    cJSON *empty = NULL, *result = NULL;
    const char *end = NULL;
    int code = RPC_OK;
    int notification = 0; /* a well-formed request without id: never answered */
    cJSON *req = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    const cJSON *id = NULL;
    if (!req) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= line && at <= line + n) ? (size_t)(at - line) : 0;
        snprintf(err, sizeof err, "parse error: not valid JSON at byte %zu", off);
        return rpc_error_line(NULL, RPC_PARSE_ERROR, err, len);
    }
    if (end) {
        while (end < line + n && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
        if (end < line + n) {
            snprintf(err, sizeof err, "parse error: trailing data at byte %zu (one object per line)",
                     (size_t)(end - line));
            cJSON_Delete(req);
            return rpc_error_line(NULL, RPC_PARSE_ERROR, err, len);
        }
    }
    if (cJSON_IsArray(req)) {
        code = ld_err(err, RPC_INVALID_REQUEST, "invalid request: batches are not supported");
        goto done;
    }
    if (!cJSON_IsObject(req)) {
        code = ld_err(err, RPC_INVALID_REQUEST, "invalid request: expected an object, got %s",
                      rpc_json_type_name(req));
        goto done;
    }
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (idv && !cJSON_IsNumber(idv) && !cJSON_IsString(idv) && !cJSON_IsNull(idv)) {
        code = ld_err(err, RPC_INVALID_REQUEST,
                      "invalid request: id: expected a number, string or null, got %s",
                      rpc_json_type_name(idv));
        goto done;
    }
    id = idv;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0")) {
        code = ld_err(err, RPC_INVALID_REQUEST, "invalid request: jsonrpc: expected \"2.0\"");
        goto done;
    }
    const cJSON *meth = cJSON_GetObjectItemCaseSensitive(req, "method");
    if (!cJSON_IsString(meth)) {
        code = ld_err(err, RPC_INVALID_REQUEST, "invalid request: method: expected a string, got %s",
                      rpc_json_type_name(meth));
        goto done;
    }
    notification = !idv;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
    if (params && cJSON_IsNull(params)) params = NULL;
    if (params && !cJSON_IsObject(params)) {
        code = ld_err(err, RPC_INVALID_REQUEST, "invalid request: params: expected an object, got %s",
                      rpc_json_type_name(params));
        goto done;
    }
    if (!params) params = empty = cJSON_CreateObject();
    const RpcMethod *m = rpc_find(tables, meth->valuestring);
    if (!m) {
        code = ld_err(err, RPC_METHOD_NOT_FOUND, "method not found: %.200s", meth->valuestring);
        goto done;
    }
    if (refuse_writes && !(m->flags & RPC_READONLY)) {
        code = ld_err(err, RPC_BUSY, "%s: the server is shutting down", m->name);
        goto done;
    }
    code = rpc_check_params(m, params, err);
    if (code != RPC_OK) goto done;
    call->params = params;
    call->id = id;
    err[0] = 0;
    code = m->handler(call, &result, err);
    if (code != RPC_OK) {
        cJSON_Delete(result);
        result = NULL;
        if (code > 0) code = RPC_INTERNAL; /* a handler bug: never send a positive code */
        if (!err[0]) snprintf(err, sizeof err, "%s: failed", m->name);
    }
done:
    if (notification) {
        cJSON_Delete(result);
        reply = NULL;
        if (len) *len = 0;
    } else if (code == RPC_OK) {
        reply = rpc_result_line(id, result, len);
    } else {
        reply = rpc_error_line(id, code, err, len);
    }
    call->params = NULL;
    call->id = NULL;
    cJSON_Delete(empty);
    cJSON_Delete(req);
    return reply;
}

/* ---- param helpers ---------------------------------------------------------------------- */

int64_t rpc_param_int(const cJSON *params, const char *name, int64_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!json_is_int(v)) return dflt;
    return (int64_t)v->valuedouble;
}

const char *rpc_param_str(const cJSON *params, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
