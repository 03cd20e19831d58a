/* work.c: work items and outcomes: status names and the JSON forms that carry them to a worker
 * and back (a remote queue; the tests round-trip every field). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work.h"

static const char *const status_names[] = {
#define WORK_STATUS_NAME(e, s) s,
    WORK_STATUS_LIST(WORK_STATUS_NAME)
#undef WORK_STATUS_NAME
};
#define NSTATUS ((int)(sizeof status_names / sizeof status_names[0]))

const char *work_status_name(WorkStatus s) {
    return (int)s >= 0 && (int)s < NSTATUS ? status_names[s] : "unknown";
}

int work_status_parse(const char *name, WorkStatus *out) {
    for (int i = 0; name && i < NSTATUS; i++)
        if (!strcmp(name, status_names[i])) {
            *out = (WorkStatus)i;
            return LD_OK;
        }
    return LD_EINVAL;
}

void work_outcome_fail(WorkOutcome *o, const WorkItem *w, WorkStatus status, const char *fmt, ...) {
    memset(o, 0, sizeof *o);
    o->job_id = w->job_id;
    o->seq = w->seq;
    o->status = status;
    o->res.val = o->res.test = o->res.final_loss = NAN;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->res.error, sizeof o->res.error, fmt, ap);
    va_end(ap);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void add_u64(cJSON *o, const char *k, uint64_t v, int hex) {
    char b[24];
    snprintf(b, sizeof b, hex ? "%016" PRIx64 : "%" PRIu64, v);
    cJSON_AddStringToObject(o, k, b);
}

/* Numbers with 17 significant digits, so every double reads back exactly (cJSON prints 15);
 * NaN and infinities as null (JSON has no such numbers). */
static void add_real(cJSON *o, const char *k, double v) {
    char b[32];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    snprintf(b, sizeof b, "%.17g", v);
    cJSON_AddRawToObject(o, k, b);
}

cJSON *work_item_json(const WorkItem *w) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_real(o, "job_id", (double)w->job_id);
    add_real(o, "seq", (double)w->seq);
    add_real(o, "cand", (double)w->cand);
    cJSON_AddNumberToObject(o, "task", w->task);
    add_u64(o, "task_hash", w->task_hash, 1);
    add_u64(o, "seed", w->seed, 0);
    cJSON_AddNumberToObject(o, "steps", w->steps);
    cJSON_AddBoolToObject(o, "precheck", w->precheck);
    cJSON_AddNumberToObject(o, "precheck_outputs", w->precheck_outputs);
    cJSON_AddStringToObject(o, "precision", w->precision);
    cJSON_AddStringToObject(o, "expr", w->expr);
    if (w->nstop > 0) {
        cJSON *st = cJSON_AddObjectToObject(o, "stop");
        cJSON_AddNumberToObject(st, "points", w->stop_points);
        cJSON_AddBoolToObject(st, "higher", w->stop_higher);
        cJSON *bar = cJSON_AddArrayToObject(st, "bar");
        for (int i = 0; i < w->nstop && i < EVAL_CURVE_MAX; i++) {
            char b[32];
            if (!isfinite(w->stop_bar[i])) snprintf(b, sizeof b, "null");
            else snprintf(b, sizeof b, "%.9g", w->stop_bar[i]);
            cJSON_AddItemToArray(bar, cJSON_CreateRaw(b));
        }
    }
    return o;
}

cJSON *work_outcome_json(const WorkOutcome *o) {
    const EvalResult *r = &o->res;
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    add_real(j, "job_id", (double)o->job_id);
    add_real(j, "seq", (double)o->seq);
    cJSON_AddStringToObject(j, "status", work_status_name(o->status));
    if (r->stopped) cJSON_AddTrueToObject(j, "stopped");
    cJSON_AddStringToObject(j, "error", r->error);
    cJSON_AddStringToObject(j, "metric", r->metric);
    add_real(j, "val", r->val);
    add_real(j, "test", r->test);
    cJSON_AddNumberToObject(j, "steps", r->steps);
    add_real(j, "wall_ms", r->wall_ms);
    add_real(j, "final_loss", r->final_loss);
    cJSON *curve = cJSON_AddArrayToObject(j, "curve");
    for (int i = 0; i < r->ncurve && i < EVAL_CURVE_MAX; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "step", r->curve[i].step);
        add_real(p, "loss", r->curve[i].loss);
        add_real(p, "val", r->curve[i].val);
        cJSON_AddItemToArray(curve, p);
    }
    cJSON *extra = cJSON_AddArrayToObject(j, "metrics");
    for (int i = 0; i < r->nextra && i < EVAL_EXTRA_MAX; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", r->extra[i].name);
        add_real(m, "val", r->extra[i].val);
        add_real(m, "test", r->extra[i].test);
        cJSON_AddItemToArray(extra, m);
    }
    return j;
}

/* Field readers: each names the field when it is missing or of the wrong type. */
static int get_num(const cJSON *o, const char *k, double *v, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNull(x)) {
        *v = NAN;
        return LD_OK;
    }
    if (!cJSON_IsNumber(x)) return ld_err(err, LD_EINVAL, "%s: expected a number", k);
    *v = x->valuedouble;
    return LD_OK;
}

static int get_int(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *v, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < (double)lo ||
        x->valuedouble > (double)hi)
        return ld_err(err, LD_EINVAL, "%s: expected an integer in [%" PRId64 ", %" PRId64 "]", k, lo, hi);
    *v = (int64_t)x->valuedouble;
    return LD_OK;
}

static int get_str(const cJSON *o, const char *k, char *out, size_t n, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x)) return ld_err(err, LD_EINVAL, "%s: expected a string", k);
    if (strlen(x->valuestring) >= n)
        return ld_err(err, LD_EINVAL, "%s: longer than %zu bytes", k, n - 1);
    memcpy(out, x->valuestring, strlen(x->valuestring) + 1);
    return LD_OK;
}

static int get_u64(const cJSON *o, const char *k, int hex, uint64_t *v, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x) || !x->valuestring[0] || x->valuestring[0] == '-' || x->valuestring[0] == '+')
        return ld_err(err, LD_EINVAL, "%s: expected a string of %s", k, hex ? "hex digits" : "digits");
    char *end;
    errno = 0;
    unsigned long long u = strtoull(x->valuestring, &end, hex ? 16 : 10);
    if (*end || errno == ERANGE)
        return ld_err(err, LD_EINVAL, "%s: \"%.40s\" is not a 64-bit unsigned integer", k, x->valuestring);
    *v = (uint64_t)u;
    return LD_OK;
}

#define TRY(call)                  \
    do {                           \
        int rc_ = (call);          \
        if (rc_ != LD_OK) return rc_; \
    } while (0)

int work_item_from_json(const cJSON *j, WorkItem *out, char *err) {
    WorkItem w;
    memset(&w, 0, sizeof w);
    int64_t v;
    if (!cJSON_IsObject(j)) return ld_err(err, LD_EINVAL, "work item: expected an object");
    TRY(get_int(j, "job_id", 0, INT64_C(1) << 53, &w.job_id, err));
    TRY(get_int(j, "seq", -1, INT64_C(1) << 53, &w.seq, err));
    TRY(get_int(j, "cand", -1, INT64_C(1) << 53, &w.cand, err));
    TRY(get_int(j, "task", 0, 1 << 20, &v, err));
    w.task = (int)v;
    TRY(get_u64(j, "task_hash", 1, &w.task_hash, err));
    TRY(get_u64(j, "seed", 0, &w.seed, err));
    TRY(get_int(j, "steps", 0, INT32_MAX, &v, err));
    w.steps = (int)v;
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(j, "precheck");
    if (!cJSON_IsBool(pc)) return ld_err(err, LD_EINVAL, "precheck: expected true or false");
    w.precheck = cJSON_IsTrue(pc);
    TRY(get_int(j, "precheck_outputs", 0, 1 << 20, &v, err));
    w.precheck_outputs = (int)v;
    TRY(get_str(j, "precision", w.precision, sizeof w.precision, err));
    TRY(get_str(j, "expr", w.expr, sizeof w.expr, err));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stop"), *b;
    if (st) {
        const cJSON *bar = cJSON_GetObjectItemCaseSensitive(st, "bar");
        if (!cJSON_IsObject(st) || !cJSON_IsArray(bar) || cJSON_GetArraySize(bar) > EVAL_CURVE_MAX)
            return ld_err(err, LD_EINVAL, "stop: expected {points, higher, bar: at most %d numbers}",
                          EVAL_CURVE_MAX);
        TRY(get_int(st, "points", 1, EVAL_CURVE_MAX, &v, err));
        w.stop_points = (int)v;
        w.stop_higher = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "higher"));
        cJSON_ArrayForEach(b, bar) {
            if (!cJSON_IsNumber(b) && !cJSON_IsNull(b))
                return ld_err(err, LD_EINVAL, "stop.bar[%d]: expected a number or null", w.nstop);
            w.stop_bar[w.nstop++] = cJSON_IsNumber(b) ? (float)b->valuedouble : NAN;
        }
    }
    *out = w;
    return LD_OK;
}

int work_outcome_from_json(const cJSON *j, WorkOutcome *out, char *err) {
    WorkOutcome *o = calloc(1, sizeof *o);
    if (!o) return ld_err(err, LD_ENOMEM, "out of memory");
    EvalResult *r = &o->res;
    int64_t v;
    double d;
    char status[16];
    int rc = LD_EINVAL;
    if (!cJSON_IsObject(j)) {
        rc = ld_err(err, LD_EINVAL, "outcome: expected an object");
        goto done;
    }
    if ((rc = get_int(j, "job_id", 0, INT64_C(1) << 53, &o->job_id, err)) != LD_OK) goto done;
    if ((rc = get_int(j, "seq", -1, INT64_C(1) << 53, &o->seq, err)) != LD_OK) goto done;
    if ((rc = get_str(j, "status", status, sizeof status, err)) != LD_OK) goto done;
    if (work_status_parse(status, &o->status) != LD_OK) {
        rc = ld_err(err, LD_EINVAL, "status: unknown \"%s\"", status);
        goto done;
    }
    r->ok = o->status == WORK_OK;
    r->stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stopped"));
    if ((rc = get_str(j, "error", r->error, sizeof r->error, err)) != LD_OK) goto done;
    if ((rc = get_str(j, "metric", r->metric, sizeof r->metric, err)) != LD_OK) goto done;
    if ((rc = get_num(j, "val", &r->val, err)) != LD_OK) goto done;
    if ((rc = get_num(j, "test", &r->test, err)) != LD_OK) goto done;
    if ((rc = get_int(j, "steps", 0, INT32_MAX, &v, err)) != LD_OK) goto done;
    r->steps = (int)v;
    if ((rc = get_num(j, "wall_ms", &r->wall_ms, err)) != LD_OK) goto done;
    if ((rc = get_num(j, "final_loss", &r->final_loss, err)) != LD_OK) goto done;
    const cJSON *curve = cJSON_GetObjectItemCaseSensitive(j, "curve"), *p;
    if (!cJSON_IsArray(curve) || cJSON_GetArraySize(curve) > EVAL_CURVE_MAX) {
        rc = ld_err(err, LD_EINVAL, "curve: expected an array of at most %d points", EVAL_CURVE_MAX);
        goto done;
    }
    cJSON_ArrayForEach(p, curve) {
        EvalCurvePoint *cp = &r->curve[r->ncurve++];
        if ((rc = get_int(p, "step", 0, INT32_MAX, &v, err)) != LD_OK) goto done;
        cp->step = (int)v;
        if ((rc = get_num(p, "loss", &d, err)) != LD_OK) goto done;
        cp->loss = (float)d;
        if ((rc = get_num(p, "val", &d, err)) != LD_OK) goto done;
        cp->val = (float)d;
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "metrics");
    if (!cJSON_IsArray(extra) || cJSON_GetArraySize(extra) > EVAL_EXTRA_MAX) {
        rc = ld_err(err, LD_EINVAL, "metrics: expected an array of at most %d", EVAL_EXTRA_MAX);
        goto done;
    }
    cJSON_ArrayForEach(p, extra) {
        EvalMetric *m = &r->extra[r->nextra++];
        if ((rc = get_str(p, "name", m->name, sizeof m->name, err)) != LD_OK) goto done;
        if ((rc = get_num(p, "val", &m->val, err)) != LD_OK) goto done;
        if ((rc = get_num(p, "test", &m->test, err)) != LD_OK) goto done;
    }
    *out = *o;
    rc = LD_OK;
done:
    free(o);
    return rc;
}
