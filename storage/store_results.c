/* store_results.c: candidates, evaluations, the cross-job result cache, leaderboards and warm
 * starts: the tables a search writes every few seconds and clients read most. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- candidates ------------------------------------------------------------------------- */

/* The cached statement id (one keyed by ?1 job_id, ?2 cand) with both bound, or NULL with err
 * set. */
static sqlite3_stmt *cand_stmt(Store *s, int id, int64_t job_id, int64_t cand, const char *what,
                               char *err)
{
    sqlite3_stmt *st = store_stmt_(s, id, what, err);
    if (st) {
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, cand);
    }
    return st;
}

/* Finds the row id and expression hash of (job_id, cand). LD_ENOTFOUND when absent. */
static int cand_row(Store *s, int64_t job_id, int64_t cand, int64_t *row, int64_t *hash,
                    const char *what, char *err)
{
    sqlite3_stmt *st = cand_stmt(s, ST_CAND_ID, job_id, cand, what, err);
    if (!st)
        return LD_EIO;
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW) {
        *row = sqlite3_column_int64(st, 0);
        if (hash)
            *hash = sqlite3_column_int64(st, 1);
    } else if (src == SQLITE_DONE) {
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: candidate %lld of job %lld is not stored", what,
                    (long long)cand, (long long)job_id);
    } else {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

int store_candidate_put(Store *s, int64_t job_id, int64_t cand, const char *expr, uint64_t hash,
                        int size, const cJSON *parents, const char *op, const char *origin,
                        const char *family, int64_t *row_id, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "insert candidate %lld of job %lld", (long long)cand,
             (long long)job_id);
    if (!expr || !*expr)
        return ld_err(err, LD_EINVAL, "store: %s: empty expression", what);
    sqlite3_stmt *st;
    store_touch_(s, job_id);
    rc = store_wstmt_(s, ST_CAND_INSERT, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, cand);
    sqlite3_bind_text(st, 3, expr, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (int64_t)hash);
    sqlite3_bind_int(st, 5, size);
    store_bind_json_(st, 6, parents);
    store_bind_text_(st, 7, op);
    store_bind_text_(st, 8, family);
    sqlite3_bind_double(st, 9, ld_wall_s());
    store_bind_text_(st, 10, origin);
    rc = store_step_done_(s, st, 0, what, err);
    if (rc == LD_OK && row_id) {
        if (sqlite3_changes(s->db) == 1)
            *row_id = sqlite3_last_insert_rowid(s->db);
        else
            rc = cand_row(s, job_id, cand, row_id, NULL, what, err);
    }
    return store_wend_(s, own, rc, what, err);
}

int store_candidate_set_fitness(Store *s, int64_t job_id, int64_t cand, double fitness, char *err)
{
    return store_candidate_set_rank(s, job_id, cand, fitness, -1, err);
}

/* The two updates of one stored candidate: its fitness and tier (ST_CAND_FITNESS: fitness, tier;
 * a tier < 0 is stored as NULL) or its final comparison (ST_CAND_SET_FINAL: final). */
static int cand_update(Store *s, int stmt, int64_t job_id, int64_t cand, double fitness, int tier,
                       const cJSON *final, const char *what, char *err)
{
    int own = 0, rc;
    sqlite3_stmt *st;
    store_touch_(s, job_id);
    rc = store_wstmt_(s, stmt, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, cand);
    if (stmt == ST_CAND_SET_FINAL) {
        store_bind_json_(st, 3, final);
    } else {
        store_bind_real_(st, 3, fitness);
        if (tier >= 0)
            sqlite3_bind_int(st, 4, tier);
        else
            sqlite3_bind_null(st, 4);
    }
    rc = store_step_done_(s, st, 1, what, err);
    if (rc == LD_ENOTFOUND)
        ld_err(err, rc, "store: %s: no such candidate", what);
    return store_wend_(s, own, rc, what, err);
}

int store_candidate_set_rank(Store *s, int64_t job_id, int64_t cand, double fitness, int tier,
                             char *err)
{
    char what[80];
    snprintf(what, sizeof what, "set fitness of candidate %lld of job %lld", (long long)cand,
             (long long)job_id);
    return cand_update(s, ST_CAND_FITNESS, job_id, cand, fitness, tier, NULL, what, err);
}

int store_candidate_set_final(Store *s, int64_t job_id, int64_t cand, const cJSON *final,
                              char *err)
{
    char what[80];
    snprintf(what, sizeof what, "set final comparison of candidate %lld of job %lld",
             (long long)cand, (long long)job_id);
    return cand_update(s, ST_CAND_SET_FINAL, job_id, cand, NAN, -1, final, what, err);
}

int store_candidate_final(Store *s, int64_t job_id, int64_t cand, cJSON **out, char *err)
{
    char what[80];
    *out = NULL;
    snprintf(what, sizeof what, "final comparison of candidate %lld of job %lld", (long long)cand,
             (long long)job_id);
    sqlite3_stmt *st = cand_stmt(s, ST_CAND_FINAL, job_id, cand, what, err);
    if (!st)
        return LD_EIO;
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW) {
        cJSON *f = store_col_json_(st, 0);
        if (cJSON_IsObject(f))
            *out = f;
        else
            cJSON_Delete(f);
    } else if (src == SQLITE_DONE) {
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: no such candidate", what);
    } else {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- evaluation rows <-> EvalResult and JSON -------------------------------------------- */

/* A float as a JSON number with the float's own 7 significant digits: the double it widens to
 * would print 17 and triple the size of every stored curve. */
static cJSON *float_json(float f)
{
    char buf[32];
    if (!isfinite(f))
        return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static cJSON *curve_json(const EvalResult *r)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->ncurve && i < EVAL_CURVE_MAX; i++) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, cJSON_CreateNumber(r->curve[i].step));
        cJSON_AddItemToArray(p, float_json(r->curve[i].loss));
        cJSON_AddItemToArray(p, float_json(r->curve[i].val));
        cJSON_AddItemToArray(a, p);
    }
    return a;
}

static cJSON *metrics_json(const EvalResult *r)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->nextra && i < EVAL_EXTRA_MAX; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", r->extra[i].name);
        cJSON_AddItemToObject(m, "val", store_number_(r->extra[i].val));
        cJSON_AddItemToObject(m, "test", store_number_(r->extra[i].test));
        cJSON_AddItemToArray(a, m);
    }
    return a;
}

static double json_num(const cJSON *j)
{
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* Fills r from a row selected as: status, metric, val, test, steps_run, wall_ms, final_loss,
 * curve, metrics, error. */
static void row_to_result(sqlite3_stmt *st, EvalResult *r)
{
    memset(r, 0, sizeof *r);
    const char *status = (const char *)sqlite3_column_text(st, 0);
    r->ok = status && strcmp(status, "ok") == 0;
    const char *metric = (const char *)sqlite3_column_text(st, 1);
    snprintf(r->metric, sizeof r->metric, "%s", metric ? metric : "");
    r->val = store_col_real_(st, 2);
    r->test = store_col_real_(st, 3);
    r->steps = sqlite3_column_int(st, 4);
    r->wall_ms = store_col_real_(st, 5);
    if (isnan(r->wall_ms))
        r->wall_ms = 0;
    r->final_loss = store_col_real_(st, 6);
    const char *text = (const char *)sqlite3_column_text(st, 7);
    cJSON *curve = text ? cJSON_Parse(text) : NULL, *p;
    cJSON_ArrayForEach(p, curve)
    {
        if (r->ncurve >= EVAL_CURVE_MAX)
            break;
        EvalCurvePoint *c = &r->curve[r->ncurve++];
        c->step = (int)json_num(cJSON_GetArrayItem(p, 0));
        c->loss = (float)json_num(cJSON_GetArrayItem(p, 1));
        c->val = (float)json_num(cJSON_GetArrayItem(p, 2));
    }
    cJSON_Delete(curve);
    text = (const char *)sqlite3_column_text(st, 8);
    cJSON *metrics = text ? cJSON_Parse(text) : NULL, *m;
    cJSON_ArrayForEach(m, metrics)
    {
        if (r->nextra >= EVAL_EXTRA_MAX)
            break;
        EvalMetric *e = &r->extra[r->nextra++];
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
        snprintf(e->name, sizeof e->name, "%s", name ? name : "");
        e->val = json_num(cJSON_GetObjectItem(m, "val"));
        e->test = json_num(cJSON_GetObjectItem(m, "test"));
    }
    cJSON_Delete(metrics);
    const char *error = (const char *)sqlite3_column_text(st, 9);
    snprintf(r->error, sizeof r->error, "%s", error ? error : "");
}

/* Steps st (bound, selecting as row_to_result reads) once: *found set and out filled when a
 * row came. Resets st. */
static int read_result(Store *s, sqlite3_stmt *st, int *found, EvalResult *out, const char *what,
                       char *err)
{
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW) {
        row_to_result(st, out);
        *found = 1;
    } else if (src != SQLITE_DONE) {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

/* One evaluation as JSON from a row selected as EVALS_OF_CAND / EVALS_OF_JOB do. */
static cJSON *eval_row_json(sqlite3_stmt *st, int with_cand)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    static const StoreCol seq[] = {{"seq", SCOL_INT}}, cand[] = {{"cand", SCOL_INT}};
    static const StoreCol cols[] = {
        {"task", SCOL_STR},     {"task_hash", SCOL_HASH}, {"seed", SCOL_SEED},
        {"steps", SCOL_INT},    {"steps_run", SCOL_NUM},  {"status", SCOL_STR},
        {"metric", SCOL_STR},   {"val", SCOL_NUM},        {"test", SCOL_NUM},
        {"final_loss", SCOL_NUM}, {"metrics", SCOL_JSON}, {"curve", SCOL_JSON},
        {"wall_ms", SCOL_NUM},  {"error", SCOL_STR},
    };
    store_cols_add_(o, st, 0, seq, 1);
    if (with_cand)
        store_cols_add_(o, st, 15, cand, 1);
    store_cols_add_(o, st, 1, cols, STORE_NCOLS(cols));
    return o;
}

static cJSON *eval_row(sqlite3_stmt *st) { return eval_row_json(st, 0); }

static cJSON *eval_row_cand(sqlite3_stmt *st) { return eval_row_json(st, 1); }

/* ---- evaluations ------------------------------------------------------------------------ */

int store_eval_put(Store *s, const StoreEvalKey *k, const EvalResult *r, int *inserted, char *err)
{
    char what[80];
    int own = 0, rc;
    int64_t cand_id = 0, hash = 0;
    cJSON *curve = NULL, *metrics = NULL;
    if (inserted)
        *inserted = 0;
    snprintf(what, sizeof what, "insert evaluation %lld of job %lld", (long long)k->seq,
             (long long)k->job_id);
    store_touch_(s, k->job_id);
    rc = store_wbegin_(s, &own, what, err);
    if (rc != LD_OK)
        return rc;
    rc = cand_row(s, k->job_id, k->cand, &cand_id, &hash, what, err);
    if (rc != LD_OK)
        goto done;
    sqlite3_stmt *st = store_stmt_(s, ST_TASK_EXISTS, what, err);
    if (!st) {
        rc = LD_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, k->task_id);
    int64_t one;
    int found = 0;
    rc = store_step_id_(s, st, &one, &found, what, err);
    if (rc == LD_OK && !found)
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: task %lld is not stored", what,
                    (long long)k->task_id);
    if (rc != LD_OK)
        goto done;
    curve = curve_json(r);
    metrics = metrics_json(r);
    if (!curve || !metrics) {
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
        goto done;
    }
    if (!(st = store_stmt_(s, ST_EVAL_PUT, what, err))) {
        rc = LD_EIO;
        goto done;
    }
    const char *status = k->interrupted ? "interrupted" : r->ok ? "ok" : "failed";
    sqlite3_bind_int64(st, 1, k->job_id);
    sqlite3_bind_int64(st, 2, k->seq);
    sqlite3_bind_int64(st, 3, cand_id);
    sqlite3_bind_int64(st, 4, k->task_id);
    sqlite3_bind_int64(st, 5, hash);
    sqlite3_bind_int64(st, 6, (int64_t)k->seed);
    sqlite3_bind_int(st, 7, k->steps);
    sqlite3_bind_int(st, 8, r->steps);
    sqlite3_bind_text(st, 9, status, -1, SQLITE_STATIC);
    store_bind_text_(st, 10, r->metric);
    store_bind_real_(st, 11, r->val);
    store_bind_real_(st, 12, r->test);
    store_bind_real_(st, 13, r->final_loss);
    store_bind_json_(st, 14, metrics);
    store_bind_json_(st, 15, curve);
    store_bind_real_(st, 16, r->wall_ms);
    store_bind_text_(st, 17, r->error);
    sqlite3_bind_double(st, 18, ld_wall_s());
    rc = store_step_done_(s, st, 0, what, err);
    if (rc == LD_OK && inserted)
        *inserted = sqlite3_changes(s->db) == 1;
done:
    cJSON_Delete(curve);
    cJSON_Delete(metrics);
    return store_wend_(s, own, rc, what, err);
}

int store_eval_get_seq(Store *s, int64_t job_id, int64_t seq, int *found, EvalResult *out,
                       char *err)
{
    char what[80];
    *found = 0;
    snprintf(what, sizeof what, "read evaluation %lld of job %lld", (long long)seq,
             (long long)job_id);
    sqlite3_stmt *st = store_stmt_(s, ST_EVAL_BY_SEQ, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, seq);
    return read_result(s, st, found, out, what, err);
}

static const char *const job_state_names[] = {
#define JOB_STATE_NAME(e, s) s,
    JOB_STATE_LIST(JOB_STATE_NAME)
#undef JOB_STATE_NAME
};

const char *job_state_name(JobState s)
{
    return (int)s >= 0 && s < JOB_NSTATES ? job_state_names[s] : "unknown";
}

int job_state_parse(const char *name, JobState *out)
{
    for (int i = 0; name && i < JOB_NSTATES; i++)
        if (!strcmp(name, job_state_names[i])) {
            *out = (JobState)i;
            return LD_OK;
        }
    return LD_EINVAL;
}

int store_outcome_put(Store *s, const StoreEvalKey *k, const WorkOutcome *o, int *inserted,
                      char *err)
{
    if (o->status == WORK_OK || o->status == WORK_FAILED)
        return store_eval_put(s, k, &o->res, inserted, err);
    StoreEvalKey k2 = *k;
    EvalResult *r = malloc(sizeof *r);
    if (!r)
        return ld_err(err, LD_ENOMEM, "store: out of memory");
    *r = o->res;
    r->ok = 0;
    if (o->status == WORK_CANCELLED)
        k2.interrupted = 1;
    else
        snprintf(r->error, sizeof r->error, "%s%.200s", STORE_REJECTED_PREFIX, o->res.error);
    int rc = store_eval_put(s, &k2, r, inserted, err);
    free(r);
    return rc;
}

int store_outcome_get_seq(Store *s, int64_t job_id, int64_t seq, int *found, WorkOutcome *out,
                          char *err)
{
    memset(out, 0, sizeof *out);
    int rc = store_eval_get_seq(s, job_id, seq, found, &out->res, err);
    if (rc != LD_OK || !*found)
        return rc;
    out->job_id = job_id;
    out->seq = seq;
    size_t np = strlen(STORE_REJECTED_PREFIX);
    if (out->res.ok) {
        out->status = WORK_OK;
    } else if (!strncmp(out->res.error, STORE_REJECTED_PREFIX, np)) {
        out->status = WORK_REJECTED;
        memmove(out->res.error, out->res.error + np, strlen(out->res.error + np) + 1);
    } else {
        out->status = WORK_FAILED;
    }
    return LD_OK;
}

int store_result_lookup(Store *s, uint64_t expr_hash, uint64_t task_hash, uint64_t seed, int steps,
                        int *found, EvalResult *out, char *err)
{
    const char *what = "look up cached result";
    *found = 0;
    sqlite3_stmt *st = store_stmt_(s, ST_EVAL_LOOKUP, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)expr_hash);
    sqlite3_bind_int64(st, 2, (int64_t)task_hash);
    sqlite3_bind_int64(st, 3, (int64_t)seed);
    sqlite3_bind_int(st, 4, steps);
    return read_result(s, st, found, out, what, err);
}

int store_evals_for_job(Store *s, int64_t job_id, int64_t since_seq, int limit, cJSON **out,
                        char *err)
{
    char what[64];
    *out = NULL;
    snprintf(what, sizeof what, "list evaluations of job %lld", (long long)job_id);
    sqlite3_stmt *st = store_stmt_(s, ST_EVALS_OF_JOB, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, since_seq);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    return store_rows_array_(s, st, eval_row_cand, out, what, err);
}

/* *n = the count statement id selects for job_id (its ?1). */
/* A count over one job's rows: statement id with ?1 the job and ?2 text2 (when not NULL). */
static int job_count(Store *s, int id, int64_t job_id, const char *text2, int64_t *n,
                     const char *what, char *err)
{
    *n = 0;
    sqlite3_stmt *st = store_stmt_(s, id, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    if (text2)
        sqlite3_bind_text(st, 2, text2, -1, SQLITE_STATIC);
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        rc = store_sqlerr_(s, src, what, err);
    sqlite3_reset(st);
    return rc;
}

int store_evals_count(Store *s, int64_t job_id, int64_t *n, char *err)
{
    return job_count(s, ST_EVALS_COUNT, job_id, NULL, n, "count evaluations", err);
}

int store_count_evals(Store *s, int64_t job_id, int64_t *n, char *err)
{
    /* one indexed count: a restart used to read every evaluation, curves included, to count */
    return job_count(s, ST_EVALS_COUNTED, job_id, STORE_REJECTED_PREFIX, n, "count evaluations",
                     err);
}

/* ---- candidate detail ------------------------------------------------------------------- */

#define LINEAGE_MAX 64

enum { CAND_HASH = 1, CAND_FAMILY = 2 };

/* Adds a candidate's fields from a row selected as CAND_GET and LB_JOB do (id, cand, expr,
 * hash, size, op, family, fitness, parents, created, origin): cand, expr, op, origin, fitness
 * and parents (an empty array for none) always; hash and size with CAND_HASH; family and
 * created with CAND_FAMILY. */
static void cand_fields(cJSON *o, sqlite3_stmt *st, int with)
{
    cJSON_AddNumberToObject(o, "cand", (double)sqlite3_column_int64(st, 1));
    cJSON_AddItemToObject(o, "expr", store_col_string_(st, 2));
    if (with & CAND_HASH) {
        cJSON_AddItemToObject(o, "hash", store_hash_json_((uint64_t)sqlite3_column_int64(st, 3)));
        cJSON_AddNumberToObject(o, "size", sqlite3_column_int(st, 4));
    }
    cJSON_AddItemToObject(o, "op", store_col_string_(st, 5));
    cJSON_AddItemToObject(o, "origin", store_col_string_(st, 10));
    if (with & CAND_FAMILY)
        cJSON_AddItemToObject(o, "family", store_col_string_(st, 6));
    cJSON_AddItemToObject(o, "fitness", store_col_number_(st, 7));
    cJSON_AddItemToObject(o, "parents", store_col_array_(st, 8));
    if (with & CAND_FAMILY)
        cJSON_AddItemToObject(o, "created", store_col_number_(st, 9));
}

/* Reads candidate (job_id, cand) as {cand, expr, hash, size, op, family, fitness, parents,
 * created} into *out and its row id into *row. LD_ENOTFOUND when absent. */
static int cand_json(Store *s, int64_t job_id, int64_t cand, int full, cJSON **out, int64_t *row,
                     const char *what, char *err)
{
    *out = NULL;
    sqlite3_stmt *st = cand_stmt(s, ST_CAND_GET, job_id, cand, what, err);
    if (!st)
        return LD_EIO;
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        if (row)
            *row = sqlite3_column_int64(st, 0);
        cand_fields(o, st, full ? CAND_HASH | CAND_FAMILY : 0);
        *out = o;
    } else if (src == SQLITE_DONE) {
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: no such candidate", what);
    } else {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

int store_candidate_get(Store *s, int64_t job_id, int64_t cand, cJSON **out, char *err)
{
    char what[80];
    int64_t row = 0, queue[LINEAGE_MAX + 1];
    int nq = 0, head = 0, rc;
    cJSON *o = NULL;
    *out = NULL;
    snprintf(what, sizeof what, "get candidate %lld of job %lld", (long long)cand,
             (long long)job_id);
    rc = cand_json(s, job_id, cand, 1, &o, &row, what, err);
    if (rc != LD_OK)
        return rc;
    /* Lineage: breadth first over parents, nearest first, each ancestor once. */
    cJSON *lineage = cJSON_AddArrayToObject(o, "lineage"), *p;
    queue[nq++] = cand;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "parents"))
    {
        if (cJSON_IsNumber(p) && nq < LINEAGE_MAX + 1)
            queue[nq++] = (int64_t)p->valuedouble;
    }
    head = 1;
    while (head < nq && cJSON_GetArraySize(lineage) < LINEAGE_MAX) {
        int64_t c = queue[head++];
        cJSON *a = NULL;
        rc = cand_json(s, job_id, c, 0, &a, NULL, what, err);
        if (rc == LD_ENOTFOUND) { /* a parent from a warm start or never stored: skip it */
            rc = LD_OK;
            continue;
        }
        if (rc != LD_OK)
            goto done;
        cJSON_AddItemToArray(lineage, a);
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(a, "parents"))
        {
            if (!cJSON_IsNumber(p) || nq >= LINEAGE_MAX + 1)
                continue;
            int64_t pc = (int64_t)p->valuedouble, seen = 0;
            for (int i = 0; i < nq; i++)
                seen |= queue[i] == pc;
            if (!seen)
                queue[nq++] = pc;
        }
    }
    sqlite3_stmt *st = store_stmt_(s, ST_EVALS_OF_CAND, what, err);
    if (!st) {
        rc = LD_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, row);
    rc = store_rows_(s, st, eval_row, cJSON_AddArrayToObject(o, "evaluations"), what, err);
    if (rc != LD_OK)
        goto done;
    cJSON *fin = NULL; /* the final comparisons, with their gains side by side */
    rc = store_candidate_final(s, job_id, cand, &fin, err);
    if (rc == LD_OK && fin) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
        if (!cJSON_IsString(op) || strcmp(op->valuestring, "baseline"))
            store_final_gains(o, fin);
        cJSON_AddItemToObject(o, "final", fin);
    }
done:
    if (rc != LD_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return LD_OK;
}

/* ---- leaderboards ----------------------------------------------------------------------- */

static double sample_std(int64_t n, double sum, double sum2)
{
    if (n < 2)
        return 0;
    double mean = sum / (double)n, var = (sum2 - (double)n * mean * mean) / (double)(n - 1);
    return var > 0 ? sqrt(var) : 0;
}

/* Per-task metrics of candidate row cand_id at its highest fidelity on each task. */
static int cand_tasks(Store *s, int64_t cand_id, cJSON *tasks, const char *what, char *err)
{
    sqlite3_stmt *st = store_stmt_(s, ST_LB_CAND_TASKS, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, cand_id);
    int src = SQLITE_DONE, rc = LD_OK;
    int64_t last_task = -1;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t task = sqlite3_column_int64(st, 0);
        if (task == last_task)
            continue; /* a lower fidelity of a task already reported */
        last_task = task;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToArray(tasks, t);
        cJSON_AddItemToObject(t, "task", store_col_string_(st, 2));
        cJSON_AddItemToObject(t, "task_hash",
                              store_hash_json_((uint64_t)sqlite3_column_int64(st, 1)));
        cJSON_AddBoolToObject(t, "holdout", sqlite3_column_int(st, 3));
        cJSON_AddItemToObject(t, "metric", store_col_string_(st, 4));
        cJSON_AddNumberToObject(t, "steps", sqlite3_column_int(st, 5));
        int64_t nv = sqlite3_column_int64(st, 6), nt = sqlite3_column_int64(st, 9);
        double sv = sqlite3_column_double(st, 7), sv2 = sqlite3_column_double(st, 8);
        double stt = sqlite3_column_double(st, 10), st2 = sqlite3_column_double(st, 11);
        cJSON_AddNumberToObject(t, "n", (double)nv);
        cJSON_AddItemToObject(t, "val_mean", store_number_(nv ? sv / (double)nv : NAN));
        cJSON_AddItemToObject(t, "val_std", store_number_(nv ? sample_std(nv, sv, sv2) : NAN));
        cJSON_AddItemToObject(t, "test_mean", store_number_(nt ? stt / (double)nt : NAN));
        cJSON_AddItemToObject(t, "test_std", store_number_(nt ? sample_std(nt, stt, st2) : NAN));
        cJSON_AddBoolToObject(t, "higher_better", sqlite3_column_int(st, 12));
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
    sqlite3_reset(st);
    return rc;
}

/* The job's first k ranked candidates as entries, or, with only_op, only those of that op
 * among them (each with its rank in the whole ranking): the per-task aggregates, the costly
 * part, are read for the entries kept. */
static int lb_job_entries(Store *s, int64_t job_id, int k, const char *only_op, cJSON **out,
                          char *err)
{
    char what[64];
    int src, rc = LD_OK, rank = 0;
    *out = NULL;
    snprintf(what, sizeof what, "leaderboard of job %lld", (long long)job_id);
    sqlite3_stmt *st = store_stmt_(s, ST_LB_JOB, what, err);
    if (!st)
        return LD_EIO;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, k > 0 ? k : 10);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *op = (const char *)sqlite3_column_text(st, 5);
        if (only_op && (!op || strcmp(op, only_op))) {
            rank++;
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddNumberToObject(e, "rank", ++rank);
        cand_fields(e, st, CAND_HASH);
        rc = cand_tasks(s, sqlite3_column_int64(st, 0), cJSON_AddArrayToObject(e, "tasks"), what,
                        err);
        if (rc != LD_OK)
            break;
    }
    if (rc == LD_OK && src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
    sqlite3_reset(st);
    if (rc != LD_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return LD_OK;
}

int store_leaderboard_job(Store *s, int64_t job_id, int k, cJSON **out, char *err)
{
    return lb_job_entries(s, job_id, k, NULL, out, err);
}

int store_leaderboard_job_op(Store *s, int64_t job_id, int k, const char *op, cJSON **out,
                             char *err)
{
    return lb_job_entries(s, job_id, k, op, out, err);
}

/* The family ranking (docs/storage.md). SQL reads one row per (task, expression) at its highest
 * fidelity from result_stats; the percentiles, the per-expression means and the top k are
 * computed here, where they cost a sort of a few thousand structs instead of SQLite's window
 * and grouping machinery (about 5x faster at 100k evaluations). */
typedef struct FamPer {
    int64_t tid, h, n;
    double key, v, te, pr; /* key: v in the task's direction (larger is better); te NaN: none */
} FamPer;

typedef struct FamRow {
    int64_t h, ntasks, nevals;
    double score, v, te;
} FamRow;

static int cmp_task_key(const void *a, const void *b)
{
    const FamPer *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int cmp_hash(const void *a, const void *b)
{
    const FamPer *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

static int cmp_rank(const void *a, const void *b)
{
    const FamRow *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->ntasks != y->ntasks)
        return x->ntasks > y->ntasks ? -1 : 1;
    if (x->nevals != y->nevals)
        return x->nevals > y->nevals ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Ranks the expressions of family (only those tried on the task with task_hash when it is not
 * 0): *out owned, the best min(limit, all) first. */
static int family_rank(Store *s, const char *family, const char *metric, int higher_better,
                       uint64_t task_hash, int limit, FamRow **out, int *nout, const char *what,
                       char *err)
{
    FamPer *per = NULL;
    FamRow *rows = NULL;
    int nper = 0, cap = 0, nrows = 0, rc = LD_OK, src;
    *out = NULL;
    *nout = 0;
    if (!family || !*family)
        return ld_err(err, LD_EINVAL, "store: %s: family is required", what);
    sqlite3_stmt *st = store_stmt_(s, metric ? ST_LB_FAMILY_METRIC : ST_LB_FAMILY, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_text(st, 1, family, -1, SQLITE_TRANSIENT);
    store_bind_text_(st, 2, metric);
    if (task_hash)
        sqlite3_bind_int64(st, 3, (int64_t)task_hash);
    if (metric)
        sqlite3_bind_int(st, 4, higher_better != 0);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (nper == cap) {
            cap = cap ? 2 * cap : 1024;
            FamPer *np = realloc(per, (size_t)cap * sizeof *per);
            if (!np) {
                rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
                goto done;
            }
            per = np;
        }
        FamPer *p = &per[nper++];
        p->tid = sqlite3_column_int64(st, 0);
        p->h = sqlite3_column_int64(st, 1);
        p->v = sqlite3_column_double(st, 3);
        p->te = store_col_real_(st, 4);
        p->n = sqlite3_column_int64(st, 5);
        p->key = sqlite3_column_int(st, 6) ? p->v : -p->v;
    }
    if (src != SQLITE_DONE) {
        rc = store_sqlerr_(s, src, what, err);
        goto done;
    }
    /* cume_dist per task: the share of the task's expressions at or below this one's key */
    if (nper > 0)
        qsort(per, (size_t)nper, sizeof *per, cmp_task_key);
    for (int a = 0, b; a < nper; a = b) {
        for (b = a; b < nper && per[b].tid == per[a].tid; b++)
            ;
        for (int i = b - 1; i >= a;) {
            int top = i;
            for (; i >= a && per[i].key == per[top].key; i--)
                per[i].pr = (double)(top - a + 1) / (double)(b - a);
        }
    }
    /* per expression: mean percentile and means over the tasks it was tried on */
    if (nper > 0)
        qsort(per, (size_t)nper, sizeof *per, cmp_hash);
    rows = malloc((size_t)(nper ? nper : 1) * sizeof *rows);
    if (!rows) {
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
        goto done;
    }
    for (int a = 0, b; a < nper; a = b) {
        FamRow r = {.h = per[a].h};
        double spr = 0, sv = 0, ste = 0;
        int nte = 0;
        for (b = a; b < nper && per[b].h == per[a].h; b++) {
            spr += per[b].pr;
            sv += per[b].v;
            r.nevals += per[b].n;
            if (!isnan(per[b].te)) {
                ste += per[b].te;
                nte++;
            }
        }
        r.ntasks = b - a;
        r.score = spr / (double)r.ntasks;
        r.v = sv / (double)r.ntasks;
        r.te = nte ? ste / nte : NAN;
        rows[nrows++] = r;
    }
    if (nrows > 0)
        qsort(rows, (size_t)nrows, sizeof *rows, cmp_rank);
    if (nrows > limit)
        nrows = limit;
done:
    sqlite3_reset(st);
    free(per);
    if (rc != LD_OK) {
        free(rows);
        return rc;
    }
    *out = rows;
    *nout = nrows;
    return LD_OK;
}

/* The expression text and the number of jobs that tried it (expr owned; NULL when unknown). */
static int family_expr(Store *s, int64_t h, char **expr, int64_t *jobs, const char *what,
                       char *err)
{
    *expr = NULL;
    *jobs = 0;
    sqlite3_stmt *st = store_stmt_(s, ST_LB_FAMILY_EXPR, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, h);
    int src = sqlite3_step(st), rc = LD_OK;
    if (src == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *jobs = sqlite3_column_int64(st, 1);
        if (text && !(*expr = strdup(text)))
            rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    } else {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

int store_leaderboard_family(Store *s, const char *family, int k, const char *metric,
                             int higher_better, cJSON **out, char *err)
{
    char what[96];
    FamRow *rows = NULL;
    int n = 0;
    *out = NULL;
    snprintf(what, sizeof what, "leaderboard of family %.40s", family ? family : "(null)");
    int rc = family_rank(s, family, metric, higher_better, 0, k > 0 ? k : 10, &rows, &n, what, err);
    if (rc != LD_OK)
        return rc;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    for (int i = 0; rc == LD_OK && i < n; i++) {
        char *expr = NULL;
        int64_t jobs = 0;
        rc = family_expr(s, rows[i].h, &expr, &jobs, what, err);
        if (rc != LD_OK)
            break;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddNumberToObject(e, "rank", i + 1);
        cJSON_AddItemToObject(e, "expr", expr ? cJSON_CreateString(expr) : cJSON_CreateNull());
        cJSON_AddItemToObject(e, "hash", store_hash_json_((uint64_t)rows[i].h));
        cJSON_AddItemToObject(e, "score", store_number_(rows[i].score));
        cJSON_AddNumberToObject(e, "tasks", (double)rows[i].ntasks);
        cJSON_AddNumberToObject(e, "jobs", (double)jobs);
        cJSON_AddNumberToObject(e, "evals", (double)rows[i].nevals);
        cJSON_AddItemToObject(e, "val_mean", store_number_(rows[i].v));
        cJSON_AddItemToObject(e, "test_mean", store_number_(rows[i].te));
        free(expr);
    }
    free(rows);
    if (rc != LD_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return LD_OK;
}

/* Appends the expressions of rows not already in v (by hash) until v holds k. */
static int warm_add(Store *s, const FamRow *rows, int nrows, char **v, int64_t *hash, int *n, int k,
                    const char *what, char *err)
{
    for (int i = 0; i < nrows && *n < k; i++) {
        int seen = 0;
        for (int j = 0; j < *n; j++)
            seen |= hash[j] == rows[i].h;
        if (seen)
            continue;
        char *expr = NULL;
        int64_t jobs = 0;
        int rc = family_expr(s, rows[i].h, &expr, &jobs, what, err);
        if (rc != LD_OK)
            return rc;
        if (!expr)
            continue;
        hash[*n] = rows[i].h;
        v[(*n)++] = expr;
    }
    return LD_OK;
}

int store_warm_start(Store *s, const char *family, uint64_t task_hash, int k, char ***exprs, int *n,
                     char *err)
{
    const char *what = "warm start";
    char **v = NULL;
    int64_t *hash = NULL;
    FamRow *rows = NULL;
    int cnt = 0, nrows = 0, rc = LD_OK;
    *exprs = NULL;
    *n = 0;
    if (k <= 0)
        return LD_OK;
    v = calloc((size_t)k, sizeof *v);
    hash = calloc((size_t)k, sizeof *hash);
    if (!v || !hash) {
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
        goto done;
    }
    if (task_hash) {
        rc = family_rank(s, family, NULL, 1, task_hash, k, &rows, &nrows, what, err);
        if (rc == LD_OK)
            rc = warm_add(s, rows, nrows, v, hash, &cnt, k, what, err);
        free(rows);
        rows = NULL;
    }
    if (rc == LD_OK && cnt < k) {
        rc = family_rank(s, family, NULL, 1, 0, 2 * k, &rows, &nrows, what, err);
        if (rc == LD_OK)
            rc = warm_add(s, rows, nrows, v, hash, &cnt, k, what, err);
        free(rows);
    }
done:
    free(hash);
    if (rc != LD_OK || cnt == 0) {
        store_strv_free(v, cnt);
        return rc;
    }
    *exprs = v;
    *n = cnt;
    return LD_OK;
}

void store_strv_free(char **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- proposals -------------------------------------------------------------------------- */

int store_proposal_put(Store *s, const StoreProposal *p, char *err)
{
    char what[64];
    int own = 0, rc;
    sqlite3_stmt *st;
    snprintf(what, sizeof what, "store proposal %lld of job %lld", (long long)p->pseq,
             (long long)p->job_id);
    rc = store_wstmt_(s, ST_PROP_PUT, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, p->job_id);
    sqlite3_bind_int64(st, 2, p->pseq);
    sqlite3_bind_int64(st, 3, p->point);
    sqlite3_bind_text(st, 4, p->expr ? p->expr : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, p->source ? p->source : "user", -1, SQLITE_TRANSIENT);
    store_bind_text_(st, 6, p->note);
    sqlite3_bind_text(st, 7, p->status, -1, SQLITE_TRANSIENT);
    if (p->cand >= 0)
        sqlite3_bind_int64(st, 8, p->cand);
    store_bind_text_(st, 9, p->detail);
    sqlite3_bind_double(st, 10, ld_wall_s());
    rc = store_step_done_(s, st, 1, what, err);
    return store_wend_(s, own, rc, what, err);
}

int store_proposal_count(Store *s, int64_t job_id, int64_t *n, char *err)
{
    return job_count(s, ST_PROP_COUNT, job_id, NULL, n, "count proposals", err);
}

static const StoreCol proposal_cols[] = {
    {"pseq", SCOL_INT}, {"point", SCOL_INT}, {"expr", SCOL_STR}, {"source", SCOL_STR}};

static cJSON *proposal_row(sqlite3_stmt *st) { return store_row_json_(st, proposal_cols, STORE_NCOLS(proposal_cols)); }

int store_proposals_from(Store *s, int64_t job_id, int64_t from, cJSON **out, char *err)
{
    *out = NULL;
    sqlite3_stmt *st = store_stmt_(s, ST_PROP_FROM, "read proposals", err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, from);
    return store_rows_array_(s, st, proposal_row, out, "read proposals", err);
}
