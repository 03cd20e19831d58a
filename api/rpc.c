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
static int deliver(char *line, size_t n, RpcLineFn fn, void *ud, char *err) {
    if (n > 0 && line[n - 1] == '\r') n--; /* CRLF: the CR is not part of the line's length */
    if (n > RPC_LINE_MAX)
        return ld_err(err, LD_EINVAL, "request line exceeds %u bytes", RPC_LINE_MAX);
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == n) return 0; /* blank lines (whitespace only) are skipped, not answered */
    line[n] = 0;
    return fn(ud, line, n);
}

/* Keeps data[0..n) (lines not yet delivered) for rpc_framer_resume. f->len is 0 here. */
static int framer_hold(RpcFramer *f, const char *data, size_t n, char *err) {
    if (n > 0 && framer_append(f, data, n) != LD_OK)
        return ld_err(err, LD_ENOMEM, "out of memory holding request lines");
    f->held = n > 0;
    return RPC_FRAMER_PAUSE;
}

int rpc_framer_feed(RpcFramer *f, const char *data, size_t n, RpcLineFn fn, void *ud, char *err) {
    if (f->held) {
        /* lines held by a pause come first: append, then deliver from the start */
        if (n > 0 && framer_append(f, data, n) != LD_OK)
            return ld_err(err, LD_ENOMEM, "out of memory buffering request lines");
        return rpc_framer_resume(f, fn, ud, err);
    }
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        /* one byte of slack: a line of RPC_LINE_MAX bytes may end in CR LF */
        if (f->len + take > RPC_LINE_MAX + 1)
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
            rc = deliver(line, take, fn, ud, err);
            free(line);
        } else {
            if (framer_append(f, data, take) != LD_OK)
                return ld_err(err, LD_ENOMEM, "out of memory buffering a request line");
            size_t len = f->len;
            f->len = 0; /* reset first: the callback may feed again (it must not, but be safe) */
            rc = deliver(f->buf, len, fn, ud, err);
            if (f->cap > 65536) { /* do not keep a huge buffer for a long-lived client */
                free(f->buf);
                f->buf = NULL;
                f->cap = 0;
            }
        }
        data += take + 1;
        n -= take + 1;
        if (rc == RPC_FRAMER_PAUSE) return framer_hold(f, data, n, err);
        if (rc != 0) return rc;
    }
    return LD_OK;
}

int rpc_framer_resume(RpcFramer *f, RpcLineFn fn, void *ud, char *err) {
    if (!f->held) return LD_OK;
    char *data = f->buf;
    size_t n = f->len;
    f->buf = NULL;
    f->len = f->cap = 0;
    f->held = 0;
    int rc = rpc_framer_feed(f, data, n, fn, ud, err);
    free(data);
    return rc;
}

int rpc_framer_held(const RpcFramer *f) { return f->held; }

size_t rpc_framer_pending(const RpcFramer *f) { return f->len; }

void rpc_framer_free(RpcFramer *f) {
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    f->held = 0;
}

/* ---- text: UTF-8, NUL, the raw id ------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

size_t rpc_utf8_prefix(const char *s, size_t max) {
    size_t n = strnlen(s, max + 4), i = 0;
    while (i < n) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0) k = 1; /* an invalid byte is one unit: never a reason to stop early */
        if (i + k > max) break;
        i += k;
    }
    return i;
}

/* Copies s into a new string that is valid UTF-8: a sequence cut short (a truncated message)
 * is dropped, any other invalid byte becomes U+FFFD. NULL when s already is valid (nothing to
 * do) or out of memory. */
static char *utf8_repair(const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (!k) break;
        i += k;
    }
    if (i == n) return NULL;
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t m = 0;
    for (i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k) {
            memcpy(o + m, s + i, k);
            m += k, i += k;
            continue;
        }
        /* a lead byte whose continuation bytes run out at the end: a cut, dropped */
        size_t j = i + 1;
        while (j < n && ((unsigned char)s[j] & 0xc0) == 0x80) j++;
        if (j == n && (unsigned char)s[i] >= 0xc2) break;
        memcpy(o + m, "\xef\xbf\xbd", 3);
        m += 3, i++;
    }
    o[m] = 0;
    return o;
}

/* Walks a request's text (already parsed by cJSON, so well-formed) checking every string, keys
 * included: no NUL (\u0000, which C strings would silently cut at) and only valid UTF-8. Notes
 * the first problem with the path of the value ("params.job.name") and the raw text of the
 * top-level "id" (first occurrence, as cJSON reads it). */
typedef struct TextWalk {
    const char *p, *start, *end;
    int depth;
    char path[160];
    size_t plen;
    int bad;             /* a problem was found: msg holds it */
    char msg[LD_ERR_MAX];
    const char *id, *id_end;
} TextWalk;

/* Skips what cJSON skips between tokens: every byte up to the space, control bytes and NUL
 * included (found by tests/fuzz/fuzz_rpc.c: `"id"\x01:"a"` made the raw id "\x01"). */
static void walk_ws(TextWalk *w) {
    while (w->p < w->end && (unsigned char)*w->p <= ' ') w->p++;
}

static void walk_problem(TextWalk *w, const char *what, const char *at) {
    if (w->bad) return;
    w->bad = 1;
    snprintf(w->msg, sizeof w->msg, "%s%s%s at byte %zu", w->plen ? w->path : "", w->plen ? ": " : "",
             what, (size_t)(at - w->start));
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* At the opening quote. Decodes (ASCII only, the rest as '?') into key when given. */
static void walk_string(TextWalk *w, char *key, size_t cap) {
    size_t kn = 0;
    w->p++;
    while (w->p < w->end && *w->p != '"') {
        const char *at = w->p;
        unsigned char c = (unsigned char)*w->p;
        char out = '?';
        if (c == '\\') {
            if (w->p + 1 >= w->end) break;
            char e = w->p[1];
            w->p += 2;
            if (e == 'u' && w->p + 4 <= w->end) {
                unsigned cp = 0;
                for (int i = 0; i < 4; i++) cp = cp << 4 | (unsigned)(hexval(w->p[i]) & 15);
                w->p += 4;
                if (cp == 0) walk_problem(w, "a string holding a NUL character (\\u0000)", at);
                out = cp < 0x80 ? (char)cp : '?';
            } else {
                out = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            }
        } else if (c == 0) {
            walk_problem(w, "a string holding a NUL byte", at);
            w->p++;
        } else {
            size_t k = utf8_seq((const unsigned char *)w->p, (size_t)(w->end - w->p));
            if (!k) {
                walk_problem(w, "a string that is not valid UTF-8", at);
                k = 1;
            }
            out = k == 1 ? (char)c : '?';
            w->p += k;
        }
        if (key && kn + 1 < cap) key[kn++] = out;
    }
    if (key) key[kn] = 0;
    if (w->p < w->end) w->p++; /* the closing quote */
}

static void walk_value(TextWalk *w);

static void walk_container(TextWalk *w, char close) {
    size_t plen0 = w->plen;
    int idx = 0;
    w->p++;
    w->depth++;
    walk_ws(w);
    while (w->p < w->end && *w->p != close) {
        if (close == '}') {
            char key[64];
            walk_string(w, key, sizeof key);
            if (plen0 < sizeof w->path)
                w->plen = plen0 + (size_t)snprintf(w->path + plen0, sizeof w->path - plen0, "%s%s",
                                                   plen0 ? "." : "", key);
            walk_ws(w);
            if (w->p < w->end && *w->p == ':') w->p++;
            walk_ws(w);
            int is_id = w->depth == 1 && !strcmp(key, "id") && !w->id;
            const char *v0 = w->p;
            walk_value(w);
            if (is_id) {
                w->id = v0;
                w->id_end = w->p;
                while (w->id_end > w->id && (unsigned char)w->id_end[-1] <= ' ') w->id_end--;
            }
        } else {
            if (plen0 < sizeof w->path)
                w->plen = plen0 + (size_t)snprintf(w->path + plen0, sizeof w->path - plen0, "[%d]", idx++);
            walk_value(w);
        }
        if (w->plen >= sizeof w->path) w->plen = sizeof w->path - 1;
        w->plen = plen0;
        w->path[plen0] = 0;
        walk_ws(w);
        if (w->p < w->end && *w->p == ',') w->p++;
        walk_ws(w);
    }
    if (w->p < w->end) w->p++;
    w->depth--;
}

static void walk_value(TextWalk *w) {
    walk_ws(w);
    if (w->p >= w->end) return;
    if (*w->p == '{') walk_container(w, '}');
    else if (*w->p == '[') walk_container(w, ']');
    else if (*w->p == '"') walk_string(w, NULL, 0);
    else
        while (w->p < w->end && (unsigned char)*w->p > ' ' && !strchr(",]}", *w->p)) w->p++;
}

/* 1 when [p, end) holds a byte below the space: raw text that cannot go back as JSON (a NUL
 * would also cut it short; found by tests/fuzz/fuzz_rpc.c), so the parsed id is sent instead. */
static int raw_has_control(const char *p, const char *end) {
    for (; p < end; p++)
        if ((unsigned char)*p < ' ') return 1;
    return 0;
}

/* ---- numbers printed exactly ------------------------------------------------------------ */

/* The shortest of %.15g, %.16g, %.17g that reads back as exactly d (17 digits always do);
 * integers below 1e17 in full; non-finite values as null (JSON has no spelling for them). */
static void print_double(char *buf, size_t n, double d) {
    if (!isfinite(d)) {
        snprintf(buf, n, "null");
        return;
    }
    if (floor(d) == d && fabs(d) < 1e17) {
        snprintf(buf, n, "%.0f", d);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) return;
    }
}

/* Prepares a reply tree for printing: numbers become raw text that round-trips exactly (cJSON
 * prints 15 digits when a 17-digit value is within a few ulps), strings that are not valid
 * UTF-8 are repaired. Returns LD_OK or LD_ENOMEM. */
static int exact_tree(cJSON *o) {
    for (cJSON *c = o; c; c = c->next) {
        if (cJSON_IsNumber(c)) {
            char buf[40];
            print_double(buf, sizeof buf, c->valuedouble);
            char *t = strdup(buf);
            if (!t) return LD_ENOMEM;
            c->type = cJSON_Raw | (c->type & cJSON_StringIsConst); /* that flag is the key's */
            c->valuestring = t;
        } else if (cJSON_IsString(c) && c->valuestring && !(c->type & cJSON_IsReference)) {
            char *t = utf8_repair(c->valuestring);
            if (t) {
                free(c->valuestring);
                c->valuestring = t;
            }
        }
        if (c->string && !(c->type & cJSON_StringIsConst)) {
            char *t = utf8_repair(c->string);
            if (t) {
                free(c->string);
                c->string = t;
            }
        }
        if (c->child && !(c->type & cJSON_IsReference) && exact_tree(c->child) != LD_OK)
            return LD_ENOMEM;
    }
    return LD_OK;
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

int rpc_check_text(const char *text, size_t n, char *err) {
    TextWalk w = {.p = text, .start = text, .end = text + n};
    walk_value(&w);
    return w.bad ? ld_err(err, LD_EINVAL, "%s", w.msg) : LD_OK;
}

char *rpc_print_exact(const cJSON *obj) {
    cJSON *dup = cJSON_Duplicate(obj, 1);
    char *s = NULL;
    if (dup && exact_tree(dup) == LD_OK) s = cJSON_PrintUnformatted(dup);
    cJSON_Delete(dup);
    return s;
}

/* Prints obj on one line with '\n' appended; takes obj. */
static char *finish_line(cJSON *obj, size_t *len) {
    if (exact_tree(obj) != LD_OK) {
        cJSON_Delete(obj);
        return NULL;
    }
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

char *rpc_result_text(cJSON *result) {
    if (!result || exact_tree(result) != LD_OK) {
        cJSON_Delete(result);
        return NULL;
    }
    char *s = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);
    return s;
}

/* id: a parsed id, a raw one (cJSON_Raw: the request's own text, echoed byte for byte) or NULL. */
static cJSON *envelope(const cJSON *id) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();
    /* a raw id stays raw: exact_tree must not reprint it */
    cJSON_AddItemToObject(o, "id", idc ? idc : cJSON_CreateNull());
    return o;
}

char *rpc_error_line(const cJSON *id, int code, const char *msg, size_t *len) {
    cJSON *o = envelope(id);
    if (!o) return NULL;
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg && *msg ? msg : "error"); /* repaired if cut */
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
                      const char *refuse_writes, size_t *len) {
    char err[LD_ERR_MAX] = "";
    char *reply = NULL;
    cJSON *empty = NULL, *result = NULL, *raw_id = NULL;
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
    TextWalk w = {.p = line, .start = line, .end = line + n};
    walk_value(&w);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (idv && !cJSON_IsNumber(idv) && !cJSON_IsString(idv) && !cJSON_IsNull(idv)) {
        code = ld_err(err, RPC_INVALID_REQUEST,
                      "invalid request: id: expected a number, string or null, got %s",
                      rpc_json_type_name(idv));
        goto done;
    }
    id = idv;
    /* the id goes back as sent, byte for byte (2^53 + 1 and 1e400 stay what they were) */
    if (idv && w.id && w.id_end > w.id && !(w.bad && !strncmp(w.msg, "id:", 3)) &&
        !raw_has_control(w.id, w.id_end)) {
        char *t = strndup(w.id, (size_t)(w.id_end - w.id));
        raw_id = t ? cJSON_CreateRaw(t) : NULL;
        free(t);
        if (raw_id) id = raw_id;
    }
    if (w.bad) {
        if (!strncmp(w.msg, "id:", 3)) id = NULL;
        code = ld_err(err, strncmp(w.msg, "params", 6) ? RPC_INVALID_REQUEST : RPC_INVALID_PARAMS,
                      "invalid request: %s", w.msg);
        goto done;
    }
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
        code = ld_err(err, RPC_METHOD_NOT_FOUND, "method not found: %.*s",
                      (int)rpc_utf8_prefix(meth->valuestring, 200), meth->valuestring);
        goto done;
    }
    if (refuse_writes && !(m->flags & RPC_READONLY)) {
        code = ld_err(err, RPC_BUSY, "%s: %s", m->name, refuse_writes);
        goto done;
    }
    code = rpc_check_params(m, params, err);
    if (code != RPC_OK) goto done;
    call->params = params;
    call->id = id;
    err[0] = 0;
    code = m->handler(call, &result, err);
    if (code == RPC_DEFERRED) {
        notification = 1; /* answered later: nothing now */
        code = RPC_OK;
    } else if (code != RPC_OK) {
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
    cJSON_Delete(raw_id);
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
