/* methods.c: the JSON-RPC methods of lossd serve: the table (name, handler, parameter schema,
 * flags) and the handlers, which call into daemon/ and storage/ (docs/protocol.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/daemon.h"
#include "../lang/expr.h"
#include "rpc.h"
#include "server.h"

#define D(call) ((Daemon *)(call)->daemon)

static int need_daemon(RpcCall *call, char *err) {
    if (!call->daemon) return ld_err(err, RPC_INTERNAL, "no daemon behind this call");
    return RPC_OK;
}

/* An LD_* failure from daemon/ or storage/ as a JSON-RPC error (the message is kept). */
static int fail(int ld) { return rpc_code_from_ld(ld); }

/* ---- server.* --------------------------------------------------------------------------- */

static int m_hello(RpcCall *call, cJSON **result, char *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", "lossd");
    cJSON_AddStringToObject(o, "version", LOSSD_VERSION);
    cJSON_AddNumberToObject(o, "protocol", RPC_PROTOCOL_VERSION);
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    static const char *const base[] = {"jobs", "leaderboard", "candidates", "export", "events"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        cJSON_AddItemToArray(caps, cJSON_CreateString(base[i]));
    if (rpc_find(rpc_tables(), "schedule.create"))
        cJSON_AddItemToArray(caps, cJSON_CreateString("schedules"));
    cJSON *ms = cJSON_AddArrayToObject(o, "methods");
    for (const RpcMethod *const *t = rpc_tables(); *t; t++)
        for (const RpcMethod *m = *t; m->name; m++)
            cJSON_AddItemToArray(ms, cJSON_CreateString(m->name));
    *result = o;
    return RPC_OK;
}

static int m_status(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    *result = daemon_status(D(call));
    return RPC_OK;
}

/* A server.workers answered once the queue's listing was read again (daemon_workers_refresh). */
typedef struct WorkersReply {
    Daemon *d;
    cJSON *id;        /* the request's id (owned) */
    RpcDeferred wait; /* the connection the reply goes to */
} WorkersReply;

static void workers_done(void *ud) {
    WorkersReply *r = ud;
    size_t n = 0;
    char *line = rpc_result_line(r->id, daemon_workers(r->d), &n);
    rpc_deferred_answer(r->wait, line, n);
    free(line);
    cJSON_Delete(r->id);
    free(r);
}

static int m_workers(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    /* the listing as the queue has it now, not as the last sweep (up to a second ago) saw it */
    WorkersReply *r = call->client && call->id ? calloc(1, sizeof *r) : NULL;
    if (r && (r->id = cJSON_Duplicate(call->id, 1))) {
        r->d = D(call);
        if (daemon_workers_refresh(D(call), workers_done, r)) {
            r->wait = rpc_client_defer(call->client);
            return RPC_DEFERRED;
        }
    }
    if (r) cJSON_Delete(r->id);
    free(r);
    *result = daemon_workers(D(call));
    return RPC_OK;
}

static int m_shutdown(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    daemon_request_shutdown(D(call));
    *result = cJSON_CreateObject();
    cJSON_AddBoolToObject(*result, "ok", 1);
    return RPC_OK;
}

/* ---- job.* ------------------------------------------------------------------------------ */

/* job.submit's reply: {job_id, state, existing}. Returns owned. */
static cJSON *submit_result(Daemon *d, int64_t id, int existed) {
    char e2[LD_ERR_MAX];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job_id", (double)id);
    cJSON *job = NULL;
    const char *state = "queued";
    if (daemon_job_get(d, id, 0, &job, e2) == LD_OK) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "state");
        if (cJSON_IsString(st)) state = st->valuestring;
    }
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddBoolToObject(o, "existing", existed);
    cJSON_Delete(job);
    return o;
}

static int submit_error(int rc, const char *e2, char *err) {
    if (rc == LD_EINVAL) return ld_err(err, RPC_INVALID_PARAMS, "params.job: %s", e2);
    return ld_err(err, fail(rc), "%s", e2);
}

/* A job.submit answered once its data is loaded (daemon_job_submit_async). */
typedef struct SubmitReply {
    Daemon *d;
    cJSON *id;      /* the request's id, raw text kept (owned) */
    RpcDeferred wait; /* the connection the reply goes to */
} SubmitReply;

static void submit_done(void *ud, int rc, int64_t job_id, int existed, const char *e2) {
    SubmitReply *r = ud;
    char err[LD_ERR_MAX];
    size_t n = 0;
    char *line = rc == LD_OK ? rpc_result_line(r->id, submit_result(r->d, job_id, existed), &n)
                             : rpc_error_line(r->id, submit_error(rc, e2, err), err, &n);
    rpc_deferred_answer(r->wait, line, n);
    free(line);
    cJSON_Delete(r->id);
    free(r);
}

static int m_submit(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    char e2[LD_ERR_MAX];
    int64_t prio = rpc_param_int(call->params, "priority", 1);
    if (prio < 1 || prio > 100)
        return ld_err(err, RPC_INVALID_PARAMS, "params.priority: must be 1..100, got %lld",
                      (long long)prio);
    const char *token = rpc_param_str(call->params, "client_token");
    if (token && strlen(token) > 200)
        return ld_err(err, RPC_INVALID_PARAMS, "params.client_token: longer than 200 bytes");
    const char *base = rpc_param_str(call->params, "base_dir");
    if (base && base[0] != '/')
        return ld_err(err, RPC_INVALID_PARAMS, "params.base_dir: must be an absolute path, got '%.100s'",
                      base);
    DaemonSubmit sub = {
        .job = cJSON_GetObjectItemCaseSensitive(call->params, "job"),
        .client_token = token && *token ? token : NULL,
        .priority = (int)prio,
        .base_dir = base,
    };
    if (call->client && call->id) {
        /* the job's data is read and parsed off the loop; the reply follows when it is done */
        SubmitReply *r = calloc(1, sizeof *r);
        if (!r || !(r->id = cJSON_Duplicate(call->id, 1))) {
            free(r);
            return ld_err(err, RPC_INTERNAL, "job.submit: out of memory");
        }
        r->d = D(call);
        rc = daemon_job_submit_async(D(call), &sub, submit_done, r, e2);
        if (rc != LD_OK) {
            cJSON_Delete(r->id);
            free(r);
            return submit_error(rc, e2, err);
        }
        r->wait = rpc_client_defer(call->client);
        return RPC_DEFERRED;
    }
    int64_t id = 0;
    int existed = 0;
    rc = daemon_job_submit(D(call), &sub, &id, &existed, e2);
    if (rc != LD_OK) return submit_error(rc, e2, err);
    *result = submit_result(D(call), id, existed);
    return RPC_OK;
}

static int job_id_param(RpcCall *call, int64_t *id, char *err) {
    *id = rpc_param_int(call->params, "job_id", 0);
    if (*id < 1) return ld_err(err, RPC_INVALID_PARAMS, "params.job_id: must be at least 1");
    return RPC_OK;
}

static int m_job_get(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    rc = daemon_job_get(D(call), id, 1, result, err);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

static int m_job_list(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    const char *state = rpc_param_str(call->params, "state");
    if (state && !store_state_valid(state))
        return ld_err(err, RPC_INVALID_PARAMS,
                      "params.state: '%.40s' is not a job state (" JOB_STATE_NAMES ")", state);
    cJSON *jobs = NULL;
    rc = daemon_job_list(D(call), state, &jobs, err);
    if (rc != LD_OK) return fail(rc);
    *result = cJSON_CreateObject();
    cJSON_AddItemToObject(*result, "jobs", jobs);
    return RPC_OK;
}

static int job_control(RpcCall *call, const char *action, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    rc = daemon_job_control(D(call), id, action, err);
    if (rc != LD_OK) return fail(rc);
    rc = daemon_job_get(D(call), id, 0, result, err);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

static int m_job_cancel(RpcCall *call, cJSON **result, char *err) {
    return job_control(call, "cancel", result, err);
}
static int m_job_pause(RpcCall *call, cJSON **result, char *err) {
    return job_control(call, "pause", result, err);
}
/* A job.resume answered once the job is loaded (daemon_job_resume_async). */
static void resume_done(void *ud, int rc, int64_t job_id, int existed, const char *e2) {
    SubmitReply *r = ud;
    char err[LD_ERR_MAX];
    cJSON *res = NULL;
    size_t n = 0;
    (void)existed;
    if (rc == LD_OK) rc = daemon_job_get(r->d, job_id, 0, &res, err);
    else snprintf(err, sizeof err, "%s", e2);
    char *line = rc == LD_OK ? rpc_result_line(r->id, res, &n)
                             : rpc_error_line(r->id, fail(rc), err, &n);
    rpc_deferred_answer(r->wait, line, n);
    free(line);
    cJSON_Delete(r->id);
    free(r);
}

static int m_job_resume(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    if (!call->client || !call->id) return job_control(call, "resume", result, err);
    /* a job loaded from the store has its data read and parsed off the loop */
    SubmitReply *r = calloc(1, sizeof *r);
    if (!r || !(r->id = cJSON_Duplicate(call->id, 1))) {
        free(r);
        return ld_err(err, RPC_INTERNAL, "job.resume: out of memory");
    }
    r->d = D(call);
    int deferred = 0;
    rc = daemon_job_resume_async(D(call), id, resume_done, r, &deferred, err);
    if (rc == LD_OK && deferred) {
        r->wait = rpc_client_defer(call->client);
        return RPC_DEFERRED;
    }
    cJSON_Delete(r->id);
    free(r);
    if (rc != LD_OK) return fail(rc);
    rc = daemon_job_get(D(call), id, 0, result, err);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

static double num(const cJSON *o, const char *k);

static int m_job_delete(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    rc = daemon_job_delete(D(call), id, err);
    if (rc != LD_OK) return fail(rc);
    *result = cJSON_CreateObject();
    cJSON_AddNumberToObject(*result, "job_id", (double)id);
    cJSON_AddBoolToObject(*result, "deleted", 1);
    return RPC_OK;
}

static int m_job_rename(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    const char *name = rpc_param_str(call->params, "name");
    if (name && strlen(name) > 200)
        return ld_err(err, RPC_INVALID_PARAMS, "params.name: longer than 200 bytes");
    rc = daemon_job_rename(D(call), id, name, err);
    if (rc != LD_OK) return fail(rc);
    rc = daemon_job_get(D(call), id, 0, result, err);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

/* The reason an evaluation failed, grouped as the engine's counts are: the text up to the first
 * ':' or '(' ("non-finite loss at step 12: ..." and "... step 40: ..." differ only after it),
 * with the rejection prefix taken off and "rejected: " put before it. */
static void failure_key(const char *error, char *key, size_t n) {
    size_t pl = strlen(STORE_REJECTED_PREFIX);
    int rejected = !strncmp(error, STORE_REJECTED_PREFIX, pl);
    snprintf(key, n, "%s%s", rejected ? "rejected: " : "", rejected ? error + pl : error);
    for (char *p = key + (rejected ? 10 : 0); *p; p++)
        if (*p == ':' || *p == '(') {
            *p = 0;
            break;
        }
    /* numbers vary within a reason ("at step 47", "at step 12"): one group */
    char *w = key;
    for (const char *r = key; *r; r++) {
        if (*r >= '0' && *r <= '9') {
            if (w == key || w[-1] != 'N') *w++ = 'N';
            while (r[1] == '.' || (r[1] >= '0' && r[1] <= '9')) r++;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    size_t len = strlen(key);
    while (len > 0 && key[len - 1] == ' ') key[--len] = 0;
    if (!len) snprintf(key, n, "%s", rejected ? "rejected" : "failed");
}

/* job.failures: the job's failed and rejected evaluations grouped by reason, most frequent
 * first: {reason, count, examples: [{cand, expr, task, seed, steps, error}]} (up to examples
 * per reason), with the engine's counts of candidates refused before any evaluation. */
static int m_job_failures(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    int64_t nex = rpc_param_int(call->params, "examples", 3);
    if (nex < 0 || nex > 100)
        return ld_err(err, RPC_INVALID_PARAMS, "params.examples: must be 0..100, got %lld", (long long)nex);
    cJSON *job = NULL, *evs = NULL;
    rc = daemon_job_get(D(call), id, 1, &job, err);
    if (rc != LD_OK) return fail(rc);
    Store *st = daemon_store(D(call));
    rc = store_evals_for_job(st, id, -1, 0, &evs, err);
    if (rc != LD_OK) {
        cJSON_Delete(job);
        return fail(rc);
    }
    cJSON *reasons = cJSON_CreateArray();
    int total = 0, nevals = cJSON_GetArraySize(evs);
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs) {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(ev, "status");
        if (cJSON_IsString(status) && !strcmp(status->valuestring, "ok")) continue;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "error");
        const char *error = cJSON_IsString(e) ? e->valuestring
                                              : (cJSON_IsString(status) ? status->valuestring : "failed");
        char key[160];
        failure_key(error, key, sizeof key);
        cJSON *r = NULL, *x;
        cJSON_ArrayForEach(x, reasons) {
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(x, "reason")->valuestring, key)) {
                r = x;
                break;
            }
        }
        if (!r) {
            r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "reason", key);
            cJSON_AddNumberToObject(r, "count", 0);
            cJSON_AddArrayToObject(r, "examples");
            cJSON_AddItemToArray(reasons, r);
        }
        cJSON *cnt = cJSON_GetObjectItemCaseSensitive(r, "count");
        cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
        total++;
        cJSON *exs = cJSON_GetObjectItemCaseSensitive(r, "examples");
        if (cJSON_GetArraySize(exs) >= nex) continue;
        cJSON *ex = cJSON_CreateObject();
        double cand = num(ev, "cand");
        cJSON_AddNumberToObject(ex, "cand", cand);
        cJSON *c = NULL;
        char e2[LD_ERR_MAX];
        if (isfinite(cand) && store_candidate_get(st, id, (int64_t)cand, &c, e2) == LD_OK) {
            const cJSON *ce = cJSON_GetObjectItemCaseSensitive(c, "expr");
            if (cJSON_IsString(ce)) cJSON_AddStringToObject(ex, "expr", ce->valuestring);
        }
        cJSON_Delete(c);
        const char *keys[] = {"task", "seed", "steps"};
        for (int k = 0; k < 3; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, keys[k]);
            if (v) cJSON_AddItemToObject(ex, keys[k], cJSON_Duplicate(v, 1));
        }
        cJSON_AddStringToObject(ex, "error", error);
        cJSON_AddItemToArray(exs, ex);
    }
    /* most frequent first (a stable insertion sort: few reasons) */
    int nr = cJSON_GetArraySize(reasons);
    cJSON **v = calloc((size_t)(nr > 0 ? nr : 1), sizeof *v);
    if (v) {
        for (int i = 0; i < nr; i++) v[i] = cJSON_DetachItemFromArray(reasons, 0);
        for (int i = 1; i < nr; i++)
            for (int k = i; k > 0 && num(v[k], "count") > num(v[k - 1], "count"); k--) {
                cJSON *t = v[k];
                v[k] = v[k - 1];
                v[k - 1] = t;
            }
        for (int i = 0; i < nr; i++) cJSON_AddItemToArray(reasons, v[i]);
        free(v);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job_id", (double)id);
    cJSON_AddNumberToObject(o, "evaluations", nevals);
    cJSON_AddNumberToObject(o, "failed", total);
    cJSON_AddItemToObject(o, "reasons", reasons);
    /* the engine's counts of refused candidates, less those stored as rejected evaluations */
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(job, "stats");
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(stats, "rejection_reasons"), *x;
    cJSON *refused = cJSON_AddObjectToObject(o, "refused_candidates");
    cJSON_ArrayForEach(x, rr) {
        char key[160], full[200];
        snprintf(full, sizeof full, "%s%s", STORE_REJECTED_PREFIX, x->string ? x->string : "");
        failure_key(full, key, sizeof key);
        int stored = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, reasons) /* the engine keeps 63 bytes of a reason: a prefix */
            stored |= !strncmp(cJSON_GetObjectItemCaseSensitive(r, "reason")->valuestring, key, strlen(key));
        if (!stored && cJSON_IsNumber(x)) cJSON_AddNumberToObject(refused, key + 10, x->valuedouble);
    }
    cJSON_Delete(job);
    cJSON_Delete(evs);
    *result = o;
    return RPC_OK;
}

/* ---- leaderboard.query ------------------------------------------------------------------ */

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The direction of metric for a job or family, from the evaluator's family table (a metric the
 * family does not have is in no run either: the store finds no entry for it). */
static int metric_higher_better(const char *family, const char *metric) {
    int hb = 1;
    eval_metric_direction(family, metric, &hb);
    return hb;
}

/* Parameters checked here, the rest (ranking, direction, spread, the baseline's row) is the
 * store's leaderboard (store_leaderboard). A job's reply is kept as printed text (the store's
 * memo of the job) until a write touches the job's candidates, evaluations or tasks: clients
 * polling a leaderboard while workers train cost a lookup, not its queries and printing. */
static int m_leaderboard(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(call->params, "job_id");
    const char *family = rpc_param_str(call->params, "family");
    const char *metric = rpc_param_str(call->params, "metric");
    int64_t k = rpc_param_int(call->params, "k", 10);
    if ((jid != NULL) == (family != NULL))
        return ld_err(err, RPC_INVALID_PARAMS, "params: give exactly one of job_id and family");
    if (k < 1 || k > 1000)
        return ld_err(err, RPC_INVALID_PARAMS, "params.k: must be 1..1000, got %lld", (long long)k);
    if (metric && !strcmp(metric, "fitness")) metric = NULL;
    StoreLbQuery q = {.family = family, .k = (int)k, .metric = metric};
    char memo[128] = "";
    if (!family) {
        snprintf(memo, sizeof memo, "leaderboard.query k=%lld metric=%.80s", (long long)k,
                 metric ? metric : "");
        const char *text = store_memo_get(daemon_store(D(call)), rpc_param_int(call->params, "job_id", 0), memo);
        if (text && (*result = cJSON_CreateRaw(text))) return RPC_OK;
    }
    if (family) {
        if (family_parse(family) < 0)
            return ld_err(err, RPC_INVALID_PARAMS,
                          "params.family: '%.40s' is not a task family (classification, "
                          "regression, physics, contrastive)", family);
    } else {
        q.job_id = rpc_param_int(call->params, "job_id", 0);
        cJSON *job = NULL;
        rc = daemon_job_get(D(call), q.job_id, 1, &job, err);
        char job_family[32] = "";
        const cJSON *fam = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job, "spec"), "family");
        if (cJSON_IsString(fam)) snprintf(job_family, sizeof job_family, "%s", fam->valuestring);
        cJSON_Delete(job);
        if (rc != LD_OK) return fail(rc);
        family = job_family[0] ? job_family : NULL;
        if (metric) q.higher_better = metric_higher_better(family, metric);
    }
    if (q.family && metric) q.higher_better = metric_higher_better(q.family, metric);
    rc = store_leaderboard(daemon_store(D(call)), &q, result, err);
    if (rc != LD_OK) return fail(rc);
    if (memo[0]) {
        char *text = rpc_result_text(*result);
        *result = text ? cJSON_CreateRaw(text) : NULL;
        if (*result) store_memo_put(daemon_store(D(call)), q.job_id, memo, text);
        free(text);
        if (!*result) return ld_err(err, RPC_INTERNAL, "out of memory printing the leaderboard");
    }
    return RPC_OK;
}

/* ---- candidate.* ------------------------------------------------------------------------ */

static int get_candidate(RpcCall *call, cJSON **cand, char *err) {
    int64_t id = rpc_param_int(call->params, "job_id", 0);
    int64_t c = rpc_param_int(call->params, "cand", -1);
    if (id < 1) return ld_err(err, RPC_INVALID_PARAMS, "params.job_id: must be at least 1");
    if (c < 0) return ld_err(err, RPC_INVALID_PARAMS, "params.cand: must be at least 0");
    int rc = store_candidate_get(daemon_store(D(call)), id, c, cand, err);
    if (rc == LD_ENOTFOUND)
        return ld_err(err, RPC_NOT_FOUND, "job %lld: candidate %lld: not found", (long long)id,
                      (long long)c);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

/* The store's flat evaluation row gets the protocol's shape: {seq, task, task_name, seed, steps,
 * result: {status, metric, val, test, steps, wall_ms, final_loss, curve, metrics, error}}; the
 * flat fields stay too. */
static void shape_evaluation(cJSON *ev) {
    static const char *const moved[] = {"status", "metric", "val",  "test",    "wall_ms",
                                        "final_loss", "curve", "metrics", "error"};
    cJSON *r = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, moved[i]);
        if (v) cJSON_AddItemToObject(r, moved[i], cJSON_Duplicate(v, 1));
    }
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(ev, "steps_run");
    if (!sr) sr = cJSON_GetObjectItemCaseSensitive(ev, "steps");
    if (sr) cJSON_AddItemToObject(r, "steps", cJSON_Duplicate(sr, 1));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "task");
    if (cJSON_IsString(t) && !cJSON_GetObjectItemCaseSensitive(ev, "task_name"))
        cJSON_AddStringToObject(ev, "task_name", t->valuestring);
    cJSON_AddItemToObject(ev, "result", r);
}

static int m_cand_get(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = get_candidate(call, result, err);
    if (rc != RPC_OK) return rc;
    cJSON_DeleteItemFromObjectCaseSensitive(*result, "job_id");
    cJSON_AddNumberToObject(*result, "job_id", (double)rpc_param_int(call->params, "job_id", 0));
    cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(*result, "evaluations")) shape_evaluation(ev);
    return RPC_OK;
}

static int m_cand_export(RpcCall *call, cJSON **result, char *err) {
    const char *format = rpc_param_str(call->params, "format");
    const char *text = rpc_param_str(call->params, "expr");
    const char *fam = rpc_param_str(call->params, "family");
    static const char *const formats[] = {"pytorch", "numpy", "latex", "expr"};
    int known = 0;
    for (int i = 0; i < 4; i++) known |= !strcmp(format, formats[i]);
    if (!known)
        return ld_err(err, RPC_INVALID_PARAMS,
                      "params.format: '%.40s' is not one of pytorch, numpy, latex, expr", format);
    cJSON *cand = NULL;
    int rc = RPC_OK;
    char famname[32] = "";
    char *etext = NULL; /* owned copy: a loss text of any length, never cut */
    if (text) {
        if (!fam) return ld_err(err, RPC_INVALID_PARAMS, "params.family: required with params.expr");
        etext = strdup(text);
        snprintf(famname, sizeof famname, "%s", fam);
    } else {
        if (!cJSON_GetObjectItemCaseSensitive(call->params, "job_id") ||
            !cJSON_GetObjectItemCaseSensitive(call->params, "cand"))
            return ld_err(err, RPC_INVALID_PARAMS,
                          "params: give job_id and cand, or expr and family");
        rc = need_daemon(call, err);
        if (rc == RPC_OK) rc = get_candidate(call, &cand, err);
        if (rc != RPC_OK) return rc;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(cand, "expr");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cand, "family");
        etext = strdup(cJSON_IsString(e) ? e->valuestring : "");
        snprintf(famname, sizeof famname, "%s", cJSON_IsString(f) ? f->valuestring : "");
        cJSON_Delete(cand);
    }
    if (!etext) return ld_err(err, RPC_INTERNAL, "export: out of memory");
    int family = family_parse(famname);
    char perr[LD_ERR_MAX];
    Expr *e = NULL;
    char *out = NULL;
    if (family < 0) {
        rc = ld_err(err, RPC_INVALID_PARAMS, "params.family: '%.40s' is not a task family", famname);
        goto done;
    }
    if (!(e = expr_parse(etext, perr))) {
        rc = ld_err(err, RPC_INVALID_PARAMS, "params.expr: %s", perr);
        goto done;
    }
    if (!(out = expr_export(e, family, format, perr))) {
        rc = ld_err(err, RPC_INVALID_PARAMS, "export: %s", perr);
        goto done;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", format);
    cJSON_AddStringToObject(o, "expr", etext);
    cJSON_AddStringToObject(o, "family", famname);
    cJSON_AddStringToObject(o, "text", out);
    *result = o;
done:
    free(out);
    expr_free(e);
    free(etext);
    return rc;
}

/* job.finish (daemon_job_finish), answered with the job summary. */
static int m_job_finish(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    rc = daemon_job_finish(D(call), id, err);
    if (rc != LD_OK) return fail(rc);
    rc = daemon_job_get(D(call), id, 0, result, err);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

/* candidate.propose: params checked here (the texts themselves by the engine, per expression),
 * then daemon_job_propose. */
#define PROPOSE_MAX_EXPRS 256
#define PROPOSE_NOTE_MAX 1000

static int m_cand_propose(RpcCall *call, cJSON **result, char *err) {
    int64_t id;
    int rc = need_daemon(call, err);
    if (rc == RPC_OK) rc = job_id_param(call, &id, err);
    if (rc != RPC_OK) return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(call->params, "exprs");
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > PROPOSE_MAX_EXPRS)
        return ld_err(err, RPC_INVALID_PARAMS, "params.exprs: give 1..%d loss expressions, got %d",
                      PROPOSE_MAX_EXPRS, n);
    const char *source = rpc_param_str(call->params, "source"); /* checked by the daemon */
    const char *note = rpc_param_str(call->params, "note");
    if (note && strlen(note) > PROPOSE_NOTE_MAX)
        return ld_err(err, RPC_INVALID_PARAMS, "params.note: longer than %d bytes", PROPOSE_NOTE_MAX);
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) return ld_err(err, RPC_INTERNAL, "candidate.propose: out of memory");
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        if (!cJSON_IsString(x)) {
            free(texts);
            return ld_err(err, RPC_INVALID_PARAMS, "params.exprs[%d]: expected a string", i);
        }
        if (strlen(x->valuestring) >= EXPR_TEXT_MAX) {
            free(texts);
            return ld_err(err, RPC_INVALID_PARAMS, "params.exprs[%d]: longer than %d bytes", i,
                          EXPR_TEXT_MAX - 1);
        }
        texts[i++] = x->valuestring;
    }
    rc = daemon_job_propose(D(call), id, texts, n, source, note, result, err);
    free(texts);
    return rc == LD_OK ? RPC_OK : fail(rc);
}

/* ---- events.subscribe ------------------------------------------------------------------- */

static int m_subscribe(RpcCall *call, cJSON **result, char *err) {
    int rc = need_daemon(call, err);
    if (rc != RPC_OK) return rc;
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(call->params, "since");
    int64_t since = sv ? rpc_param_int(call->params, "since", 0) : -1;
    if (sv && since < 0)
        return ld_err(err, RPC_INVALID_PARAMS, "params.since: must be at least 0");
    int64_t last = daemon_last_event_seq(D(call));
    rpc_client_subscribe(call->client, since, last);
    *result = cJSON_CreateObject();
    cJSON_AddBoolToObject(*result, "subscribed", 1);
    cJSON_AddNumberToObject(*result, "last_seq", (double)last);
    return RPC_OK;
}

/* ---- the table -------------------------------------------------------------------------- */

static const RpcParam p_hello[] = {{"client", RPC_T_STRING, 0}, {NULL, 0, 0}};
static const RpcParam p_submit[] = {{"job", RPC_T_OBJECT, 1},
                                    {"client_token", RPC_T_STRING, 0},
                                    {"priority", RPC_T_INT, 0},
                                    {"base_dir", RPC_T_STRING, 0},
                                    {NULL, 0, 0}};
static const RpcParam p_job[] = {{"job_id", RPC_T_INT, 1}, {NULL, 0, 0}};
static const RpcParam p_rename[] = {{"job_id", RPC_T_INT, 1}, {"name", RPC_T_STRING, 1}, {NULL, 0, 0}};
static const RpcParam p_failures[] = {{"job_id", RPC_T_INT, 1}, {"examples", RPC_T_INT, 0}, {NULL, 0, 0}};
static const RpcParam p_list[] = {{"state", RPC_T_STRING, 0}, {NULL, 0, 0}};
static const RpcParam p_lb[] = {{"job_id", RPC_T_INT, 0},
                                {"family", RPC_T_STRING, 0},
                                {"k", RPC_T_INT, 0},
                                {"metric", RPC_T_STRING, 0},
                                {NULL, 0, 0}};
static const RpcParam p_cand[] = {{"job_id", RPC_T_INT, 1}, {"cand", RPC_T_INT, 1}, {NULL, 0, 0}};
static const RpcParam p_export[] = {{"job_id", RPC_T_INT, 0},   {"cand", RPC_T_INT, 0},
                                    {"expr", RPC_T_STRING, 0},  {"family", RPC_T_STRING, 0},
                                    {"format", RPC_T_STRING, 1}, {NULL, 0, 0}};
static const RpcParam p_sub[] = {{"since", RPC_T_INT, 0}, {NULL, 0, 0}};
static const RpcParam p_propose[] = {{"job_id", RPC_T_INT, 1},    {"exprs", RPC_T_ARRAY, 1},
                                     {"source", RPC_T_STRING, 0}, {"note", RPC_T_STRING, 0},
                                     {NULL, 0, 0}};

const RpcMethod rpc_core_methods[] = {
    {"server.hello", m_hello, p_hello, RPC_READONLY, "protocol version and capabilities"},
    {"server.status", m_status, NULL, RPC_READONLY, "workers, queue, rates, jobs by state"},
    {"server.workers", m_workers, NULL, RPC_READONLY,
     "who evaluates: host, pid, threads, evaluations done, current leases"},
    {"server.shutdown", m_shutdown, NULL, 0, "finish running evaluations and exit"},
    {"job.submit", m_submit, p_submit, 0, "validate, store and start a job"},
    {"job.get", m_job_get, p_job, RPC_READONLY, "a job's state, progress and spec"},
    {"job.list", m_job_list, p_list, RPC_READONLY, "job summaries, newest first"},
    {"job.cancel", m_job_cancel, p_job, 0, "stop a job for good"},
    {"job.pause", m_job_pause, p_job, 0, "stop dispatching a job's evaluations"},
    {"job.resume", m_job_resume, p_job, 0, "continue a paused job, or retry a failed one"},
    {"job.delete", m_job_delete, p_job, 0, "delete a finished job with its evaluations"},
    {"job.rename", m_job_rename, p_rename, 0, "set a job's name"},
    {"job.finish", m_job_finish, p_job, 0, "end the search phase: final re-evaluation, then done"},
    {"job.failures", m_job_failures, p_failures, RPC_READONLY,
     "a job's failed and rejected evaluations by reason, with examples"},
    {"leaderboard.query", m_leaderboard, p_lb, RPC_READONLY, "ranked candidates of a job or family"},
    {"candidate.get", m_cand_get, p_cand, RPC_READONLY, "expression, lineage, evaluations, curves"},
    {"candidate.export", m_cand_export, p_export, RPC_READONLY, "source text of a candidate's loss"},
    {"candidate.propose", m_cand_propose, p_propose, 0,
     "hand loss expressions to a running job: accepted, duplicate or refused, each"},
    {"events.subscribe", m_subscribe, p_sub, RPC_READONLY, "stored then live event notifications"},
    {NULL, NULL, NULL, 0, NULL},
};
