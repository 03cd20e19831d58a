/* jobs.c: the daemon's jobs: submission, states, rounds of evaluations fed to the worker pool
 * (weighted round-robin by priority across jobs), results stored before they count, engine
 * state saved at a round boundary every few seconds and whenever a job stops, recovery at
 * start-up (the rounds after the saved one are replayed from the stored results). Loop thread
 * only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rounds.h"

/* The engine's state grows with the job (~200 bytes a candidate) and saving it is the loop's
 * biggest cost per round, so it is saved at most this often; a restart replays the rounds after
 * the saved one, every evaluation of them already stored (store_eval_get_seq), none re-run. */
#define STATE_SAVE_MS 2000.0
#define POOL_INFLIGHT_PER_WORKER 8 /* items queued per worker: they stay busy between passes */

enum { W_PENDING = 0, W_RUNNING = 1, W_DONE = 2 };

struct DJob {
    DJob *next;
    int64_t id;
    JobState state;
    int priority;
    int64_t schedule_id;
    SearchJob *job;
    Search *search;
    int64_t *task_ids; /* store row of each of the job's tasks */
    char family[24];
    int warm_start;

    int64_t round; /* rounds finished (the saved state is at this boundary) */
    const WorkItem *works;
    int nworks;
    WorkOutcome *results; /* by index in the round */
    unsigned char *wstate;
    int cursor; /* first index that may still be W_PENDING */
    int ndone, inflight;
    int batched; /* of the in-flight items, those finished and waiting for their commit */

    int64_t evals_done;
    double best_fitness;
    char best_expr[EXPR_TEXT_MAX];
    int64_t best_cand;
    double elapsed_prev_s; /* running time before run_since_ms */
    double run_since_ms;   /* 0 when not running */
    int stopped;           /* search_stop called */
    int finished;          /* terminal state reached: free once inflight is 0 */
    int waiting;           /* an evaluate-only job waits for proposals (search_waiting) */
    int prop_counted;      /* job_proposals_ready counted its stored proposals */

    RoundBook book; /* the round's bookkeeping in the store (rounds.h), shared with lossd search */

    int64_t state_round;   /* the round of the engine state last stored (-1: unknown) */
    double state_saved_ms; /* when it was stored (ld_now_ms) */
    int save_due;          /* store the state at the next round boundary whatever the time */

    /* A storage fault (disk full, database locked or deleted) stopped the job: it shows as
     * "paused" with this reason and is reloaded from the store, as a restart would, once a
     * retry's writes succeed. Empty while the job runs normally. */
    char stall[LD_ERR_MAX];
    double stall_retry_ms; /* next reload attempt (ld_now_ms) */
    double stall_wait_ms;  /* the back-off: 1 s doubling to STALL_RETRY_MAX_MS */
    int reloading;         /* the retry's reload is under way (job_load_async) */
};

#define STALL_RETRY_MAX_MS 16000.0

/* ---- helpers ---------------------------------------------------------------------------- */

static DJob *job_find(Daemon *d, int64_t id) {
    for (DJob *j = d->jobs; j; j = j->next)
        if (j->id == id) return j;
    return NULL;
}

static double job_elapsed(const DJob *j) {
    double e = j->elapsed_prev_s;
    if (j->run_since_ms > 0) e += (ld_now_ms() - j->run_since_ms) / 1e3;
    return e;
}

static void round_clear(DJob *j) {
    free(j->results);
    free(j->wstate);
    j->results = NULL;
    j->wstate = NULL;
    j->works = NULL;
    j->nworks = j->ndone = j->cursor = 0;
}

static void djob_free(DJob *j) {
    if (!j) return;
    round_clear(j);
    search_free(j->search);
    job_free(j->job);
    free(j->task_ids);
    round_book_free(&j->book);
    free(j);
}

static void job_unlink(Daemon *d, DJob *j) {
    for (DJob **p = &d->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

/* Frees a finished job once nothing of it is in flight (its tasks are borrowed by items). */
static void job_release_if_idle(Daemon *d, DJob *j) {
    if (j->finished && j->inflight == 0) {
        job_unlink(d, j);
        djob_free(j);
    }
}

static cJSON *stats_json(const DJob *j) {
    cJSON *st = j->search ? search_stats(j->search) : NULL;
    if (!st) st = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(st, "elapsed_s");
    cJSON_AddNumberToObject(st, "elapsed_s", job_elapsed(j));
    cJSON_DeleteItemFromObjectCaseSensitive(st, "round");
    cJSON_AddNumberToObject(st, "round", (double)j->round);
    return st;
}

static cJSON *state_event(const char *state, const char *from, const char *error) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", state);
    if (from) cJSON_AddStringToObject(o, "from", from);
    if (error) cJSON_AddStringToObject(o, "error", error);
    return o;
}

/* Moves a job to state in the store and announces it. */
static int job_set_state(Daemon *d, DJob *j, JobState state, const char *error, char *err) {
    JobState from = j->state;
    int rc = store_job_set_state(d->store, j->id, job_state_name(state), error, err);
    if (rc != LD_OK) return rc;
    if (from == JOB_RUNNING && state != JOB_RUNNING) {
        j->elapsed_prev_s = job_elapsed(j);
        j->run_since_ms = 0;
    }
    if (state == JOB_RUNNING && j->run_since_ms == 0) j->run_since_ms = ld_now_ms();
    j->state = state;
    char e2[LD_ERR_MAX];
    daemon_event(d, j->id, "job.state",
                 state_event(job_state_name(state), job_state_name(from), error), e2);
    return LD_OK;
}

/* Stops a job whose writes met a storage fault: what was not committed is dropped with its round
 * (the engine may be ahead of the store, so the retry reloads the job from the store, replaying
 * stored evaluations as a restart does, and re-runs only evaluations that were never stored). */
static void job_stall(Daemon *d, DJob *j, const char *why) {
    if (store_in_transaction(d->store)) daemon_rollback(d);
    if (!j->stall[0]) {
        daemon_log("job %lld: paused: %s (resumes by itself when writes succeed again)",
                   (long long)j->id, why);
        j->stall_wait_ms = 1000;
    }
    snprintf(j->stall, sizeof j->stall, "%s", why);
    j->stall_retry_ms = ld_now_ms() + j->stall_wait_ms;
    round_clear(j);
}

/* 1 when the store met a storage fault since `before` (a store_faults value). */
static int store_faulted(Daemon *d, uint64_t before) { return store_faults(d->store) != before; }

/* Ends a job whose engine failed: the reason is kept in the job's error column. */
static void job_fail(Daemon *d, DJob *j, const char *why) {
    char err[LD_ERR_MAX];
    daemon_log("job %lld failed: %s", (long long)j->id, why);
    if (store_in_transaction(d->store)) daemon_rollback(d);
    uint64_t f0 = store_faults(d->store);
    if (job_set_state(d, j, JOB_FAILED, why, err) != LD_OK) {
        daemon_log("job %lld: %s", (long long)j->id, err);
        /* not stored: stall, so the failure is stored when the retry replays it */
        if (store_faulted(d, f0)) {
            job_stall(d, j, err);
            return;
        }
    }
    j->finished = 1;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* Stores the job's tasks (idempotent) and remembers their rows. */
static int job_store_tasks(Daemon *d, DJob *j, char *err) {
    int n = job_ntasks(j->job);
    j->task_ids = calloc((size_t)(n > 0 ? n : 1), sizeof *j->task_ids);
    if (!j->task_ids) return ld_err(err, LD_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const Task *t = engine_task(j->job, i);
        cJSON *spec = task_spec(t);
        int rc = store_task_upsert(d->store, task_hash(t), family_name(task_family(t)),
                                   task_name(t), task_metric(t), task_higher_better(t), spec,
                                   &j->task_ids[i], err);
        cJSON_Delete(spec);
        if (rc != LD_OK) return rc;
        rc = store_job_add_task(d->store, j->id, i, j->task_ids[i], job_is_holdout(j->job, i), err);
        if (rc != LD_OK) return rc;
    }
    j->book = (RoundBook){.store = d->store, .job_id = j->id, .task_ids = j->task_ids,
                          .family = j->family};
    return LD_OK;
}

static double jnum(const cJSON *o, const char *a, const char *b, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (!cJSON_IsNumber(v) && b) v = cJSON_GetObjectItemCaseSensitive(o, b);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *jstr(const cJSON *o, const char *a) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Takes the job's best fitness, candidate and expression from the first entry of a search
 * leaderboard (borrowed); leaves them as they are when the leaderboard is empty. */
static void take_best(DJob *j, const cJSON *lb) {
    const cJSON *top = cJSON_GetArrayItem(lb, 0);
    if (!top) return;
    j->best_fitness = jnum(top, "fitness", NULL, NAN);
    j->best_cand = (int64_t)jnum(top, "cand", NULL, 0);
    const char *e = jstr(top, "expr");
    snprintf(j->best_expr, sizeof j->best_expr, "%s", e ? e : "");
}

/* Stores the engine's state at the last finished round (j->round): search_save gives the
 * state at the open round's start when one is open, which is that same boundary. Inside the
 * caller's transaction when there is one. */
static int job_save_state(Daemon *d, DJob *j, char *err) {
    if (!j->search) return LD_OK;
    if (j->state_round == j->round && !j->save_due) return LD_OK;
    int rc = round_book_state(&j->book, j->search, j->round, err);
    if (rc != LD_OK) return rc;
    j->state_round = j->round;
    j->state_saved_ms = ld_now_ms();
    j->save_due = 0;
    return LD_OK;
}

/* Saves the state of a job that stops running (pause, cancel, shutdown, end), logging a failure:
 * the saved state is then older and a restart replays more rounds, which stays correct. */
static void job_save_state_now(Daemon *d, DJob *j) {
    char err[LD_ERR_MAX];
    if (job_save_state(d, j, err) != LD_OK)
        daemon_log("job %lld: saving the search state: %s", (long long)j->id, err);
}

/* ---- loading off the loop ---------------------------------------------------------------- */

/* What a load's worker does: parses the job (reading its data) and, given a saved state,
 * restores its engine. Pure (it touches neither the store nor the daemon), so it runs on
 * libuv's thread pool; job_parse and search_restore are thread-safe. */
static int parse_restore(const cJSON *job, const char *base_dir, const cJSON *state,
                         SearchJob **sj, Search **s, char *err) {
    *sj = NULL;
    *s = NULL;
    int rc = job_parse(job, base_dir, engine_env(), sj, err);
    if (rc != LD_OK || !state) return rc;
    *s = search_restore(*sj, state, err);
    if (!*s) return LD_EINVAL;
    search_set_worker_precheck(*s, 1); /* as at submit: the same search either way */
    return LD_OK;
}

/* A parse on libuv's thread pool. The worker reads only job, state and base_dir and writes sj,
 * s, rc and err; everything else is the loop's. */
typedef struct JobParse {
    uv_work_t req;
    Daemon *d;
    cJSON *job;   /* owned */
    cJSON *state; /* owned; NULL: parse only */
    char base_dir[PATH_MAX];
    SearchJob *sj; /* the worker's results, owned until `then` takes them */
    Search *s;
    int rc;
    char err[LD_ERR_MAX];
    JobParseThen then;
    void *ud;
} JobParse;

static void parse_work(uv_work_t *req) {
    JobParse *p = req->data;
    p->rc = parse_restore(p->job, p->base_dir, p->state, &p->sj, &p->s, p->err);
}

static void parse_after(uv_work_t *req, int status) {
    JobParse *p = req->data;
    p->d->loads--;
    if (status == UV_ECANCELED && p->rc == LD_OK)
        p->rc = ld_err(p->err, LD_EBUSY, "the server is shutting down");
    if (p->rc != LD_OK) {
        search_free(p->s);
        job_free(p->sj);
        p->s = NULL;
        p->sj = NULL;
    }
    p->then(p->d, p->ud, p->rc, p->sj, p->s, p->rc == LD_OK ? "" : p->err);
    cJSON_Delete(p->job);
    cJSON_Delete(p->state);
    free(p);
}

int jobs_parse_async(Daemon *d, cJSON *job, const char *base_dir, cJSON *state,
                     JobParseThen then, void *ud, char *err) {
    const char *base = base_dir ? base_dir : d->cwd;
    JobParse *p = calloc(1, sizeof *p);
    int rc = LD_OK;
    if (!p) rc = ld_err(err, LD_ENOMEM, "out of memory");
    else if (strlen(base) >= sizeof p->base_dir)
        rc = ld_err(err, LD_EINVAL, "base_dir: longer than %zu bytes", sizeof p->base_dir - 1);
    if (rc != LD_OK) goto fail;
    p->d = d;
    p->job = job;
    p->state = state;
    p->then = then;
    p->ud = ud;
    p->req.data = p;
    snprintf(p->base_dir, sizeof p->base_dir, "%s", base);
    if ((rc = uv_queue_work(&d->loop, &p->req, parse_work, parse_after)) != 0) {
        rc = ld_err(err, LD_EIO, "cannot queue the job's loading: %s", uv_strerror(rc));
        goto fail;
    }
    d->loads++;
    return LD_OK;
fail:
    free(p);
    cJSON_Delete(job);
    cJSON_Delete(state);
    return rc;
}

/* Loading a stored job is three steps: load_begin reads its row and saved state on the loop
 * (the store is the loop's), parse_restore parses it and restores the engine (off the loop, or
 * inline in job_load), load_finish stores its tasks and counts its evaluations on the loop. */

/* A DJob from the job's row (owned in *out), with its spec and saved engine state (owned). */
static int load_begin(Daemon *d, int64_t id, DJob **out, cJSON **spec, cJSON **state, char *err) {
    cJSON *row = NULL;
    DJob *j = calloc(1, sizeof *j);
    int rc = LD_ENOMEM;
    *spec = *state = NULL;
    if (!j) {
        ld_err(err, rc, "out of memory");
        goto done;
    }
    j->id = id;
    j->best_fitness = NAN;
    rc = store_job_get(d->store, id, &row, err);
    if (rc != LD_OK) goto done;
    *spec = cJSON_DetachItemFromObjectCaseSensitive(row, "spec");
    if (job_state_parse(jstr(row, "state"), &j->state) != LD_OK) j->state = JOB_QUEUED;
    j->priority = (int)jnum(row, "priority", NULL, 1);
    if (j->priority < 1) j->priority = 1;
    j->schedule_id = (int64_t)jnum(row, "schedule_id", "schedule", 0);
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(row, "stats");
    j->elapsed_prev_s = jnum(stats, "elapsed_s", NULL, 0);
    rc = store_state_get(d->store, id, &j->round, state, err);
    if (rc != LD_OK) goto done;
    j->state_round = j->round;
    *out = j;
    j = NULL;
done:
    cJSON_Delete(row);
    if (j) {
        cJSON_Delete(*spec);
        cJSON_Delete(*state);
        *spec = *state = NULL;
        djob_free(j);
    }
    return rc;
}

/* Takes sj and s (the parsed job and its restored engine) into j. */
static int load_finish(Daemon *d, DJob *j, SearchJob *sj, Search *s, char *err) {
    j->job = sj;
    j->search = s;
    j->family[0] = 0;
    if (job_ntasks(j->job) > 0)
        snprintf(j->family, sizeof j->family, "%s", family_name(task_family(engine_task(j->job, 0))));
    int rc = job_store_tasks(d, j, err);
    if (rc != LD_OK) return rc;
    j->state_saved_ms = ld_now_ms();
    rc = store_count_evals(d->store, j->id, &j->evals_done, err);
    if (rc != LD_OK) return rc;
    cJSON *lb = search_leaderboard(j->search, 1);
    take_best(j, lb);
    cJSON_Delete(lb);
    if (job_budget_seconds(j->job) > 0 && j->elapsed_prev_s >= job_budget_seconds(j->job)) {
        search_stop(j->search, 0);
        j->stopped = 1;
    }
    return LD_OK;
}

/* Loads a stored job with its engine restored from its saved state, on the loop (for callers
 * without a loop to come back to). Returns owned. */
static int job_load(Daemon *d, int64_t id, DJob **out, char *err) {
    cJSON *spec = NULL, *state = NULL;
    DJob *j = NULL;
    SearchJob *sj = NULL;
    Search *s = NULL;
    int rc = load_begin(d, id, &j, &spec, &state, err);
    if (rc == LD_OK) rc = parse_restore(spec, d->cwd, state, &sj, &s, err);
    if (rc == LD_OK) {
        rc = load_finish(d, j, sj, s, err); /* j owns them now */
        sj = NULL;
        s = NULL;
    }
    cJSON_Delete(spec);
    cJSON_Delete(state);
    search_free(s);
    job_free(sj);
    if (rc != LD_OK) {
        djob_free(j);
        return rc;
    }
    *out = j;
    return LD_OK;
}

/* Why a stored job is loaded: what may happen to it meanwhile differs (see job_control). */
typedef enum { LOAD_RECOVER, LOAD_RESUME, LOAD_RETRY } LoadWhy;

/* Called on the loop when an asynchronous load ends: j is the loaded job (owned; NULL when rc is
 * not LD_OK, err then says why). */
typedef void (*LoadThen)(Daemon *d, int64_t id, DJob *j, int rc, const char *err, void *ud);

/* A stored job being loaded off the loop; listed in d->loading until it ends. */
struct JobLoad {
    JobLoad *next;
    int64_t id, schedule_id;
    LoadWhy why;
    DJob *j; /* from load_begin */
    LoadThen then;
    void *ud;
};

static JobLoad *job_loading(Daemon *d, int64_t id) {
    for (JobLoad *l = d->loading; l; l = l->next)
        if (l->id == id) return l;
    return NULL;
}

static void load_parsed(Daemon *d, void *ud, int rc, SearchJob *sj, Search *s, const char *e) {
    JobLoad *l = ud;
    char err[LD_ERR_MAX];
    snprintf(err, sizeof err, "%s", e);
    for (JobLoad **p = &d->loading; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    if (rc == LD_OK && d->shutting_down) rc = ld_err(err, LD_EBUSY, "the server is shutting down");
    if (rc == LD_OK) {
        rc = load_finish(d, l->j, sj, s, err);
        sj = NULL;
        s = NULL;
    }
    search_free(s);
    job_free(sj);
    if (rc != LD_OK) {
        djob_free(l->j);
        l->j = NULL;
    }
    l->then(d, l->id, l->j, rc, rc == LD_OK ? "" : err, l->ud);
    free(l);
}

/* Loads stored job id off the loop: returns LD_OK and calls then later, exactly once, or an
 * error without calling it. */
static int job_load_async(Daemon *d, int64_t id, LoadWhy why, LoadThen then, void *ud, char *err) {
    JobLoad *l = calloc(1, sizeof *l);
    cJSON *spec = NULL, *state = NULL;
    if (!l) return ld_err(err, LD_ENOMEM, "out of memory");
    int rc = load_begin(d, id, &l->j, &spec, &state, err);
    if (rc != LD_OK) {
        free(l);
        return rc;
    }
    l->id = id;
    l->schedule_id = l->j->schedule_id;
    l->why = why;
    l->then = then;
    l->ud = ud;
    rc = jobs_parse_async(d, spec, d->cwd, state, load_parsed, l, err);
    if (rc != LD_OK) {
        djob_free(l->j);
        free(l);
        return rc;
    }
    l->next = d->loading;
    d->loading = l;
    return LD_OK;
}

/* The state a job has in the store (a client may change it while the job loads). */
static int stored_state(Daemon *d, int64_t id, JobState *st, char *err) {
    cJSON *row = NULL;
    int rc = store_job_get(d->store, id, &row, err);
    if (rc == LD_OK && job_state_parse(jstr(row, "state"), st) != LD_OK)
        rc = ld_err(err, LD_EINVAL, "job %lld: unknown state", (long long)id);
    cJSON_Delete(row);
    return rc;
}

static void recover_fail(Daemon *d, int64_t id, const char *why) {
    /* one broken job must not keep the daemon from serving the others */
    char e3[LD_ERR_MAX];
    daemon_log("job %lld: cannot resume: %s", (long long)id, why);
    store_job_set_state(d->store, id, "failed", why, e3);
}

static void recovered(Daemon *d, int64_t id, DJob *j, int rc, const char *err, void *ud) {
    (void)ud;
    char e2[LD_ERR_MAX];
    JobState now = JOB_QUEUED;
    if (d->shutting_down) { /* it stays as stored and resumes at the next start */
        djob_free(j);
        return;
    }
    if (rc != LD_OK) {
        recover_fail(d, id, err);
        return;
    }
    /* a client may have paused or cancelled it while it loaded: the store says */
    if (stored_state(d, id, &now, e2) != LD_OK || (now != JOB_QUEUED && now != JOB_RUNNING)) {
        daemon_log("job %lld: %s while it loaded; not resumed", (long long)id,
                   job_state_name(now));
        djob_free(j);
        return;
    }
    j->state = now;
    if (j->state == JOB_RUNNING) j->run_since_ms = ld_now_ms();
    j->next = d->jobs;
    d->jobs = j;
    daemon_log("job %lld: resuming (%s, %lld evaluations stored, round %lld)", (long long)j->id,
               job_state_name(j->state), (long long)j->evals_done, (long long)j->round);
    jobs_pump(d);
}

int jobs_recover(Daemon *d, char *err) {
    static const char *const states[] = {"running", "queued"};
    for (int s = 0; s < 2; s++) {
        int64_t *ids = NULL;
        int n = 0;
        int rc = store_jobs_in_state(d->store, states[s], &ids, &n, err);
        if (rc != LD_OK) return rc;
        for (int i = 0; i < n; i++) {
            char e2[LD_ERR_MAX];
            if (job_find(d, ids[i]) || job_loading(d, ids[i])) continue;
            /* its data is read and parsed off the loop: the daemon serves meanwhile */
            if (job_load_async(d, ids[i], LOAD_RECOVER, recovered, NULL, e2) != LD_OK)
                recover_fail(d, ids[i], e2);
        }
        free(ids);
    }
    return LD_OK;
}

/* ---- submission ------------------------------------------------------------------------- */

/* The second half of a submit, on the loop: sj is the parsed job with its data loaded (taken,
 * whatever the outcome). Warm starts, the engine, the stored rows, the event. */
static int submit_finish(Daemon *d, const DaemonSubmit *sub, SearchJob *sj, int64_t *job_id,
                         int *existed, char *err) {
    Search *s = NULL;
    cJSON *spec = NULL, *state0 = NULL;
    char **warm = NULL;
    int nwarm = 0, rc = LD_OK;
    DJob *j = NULL;
    *existed = 0;
    if (d->shutting_down) {
        rc = ld_err(err, LD_EBUSY, "the server is shutting down");
        goto done;
    }
    spec = job_json(sj);
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(spec, "warm_start");
    int want_warm = !ws || cJSON_IsTrue(ws);
    if (want_warm && job_ntasks(sj) > 0) {
        const Task *t0 = engine_task(sj, 0);
        char e2[LD_ERR_MAX];
        if (store_warm_start(d->store, family_name(task_family(t0)), task_hash(t0), 8, &warm,
                             &nwarm, e2) != LD_OK) {
            daemon_log("warm start: %s (starting cold)", e2);
            nwarm = 0;
        }
    }
    s = search_new(sj, (const char *const *)warm, nwarm, err);
    if (!s) {
        rc = LD_EINVAL;
        goto done;
    }
    /* pre-checks run in the workers (eval_work honours WorkItem.precheck), off the
     * loop; lossd search does the same, so a job gives the same result in both */
    search_set_worker_precheck(s, 1);
    if (want_warm && job_ntasks(sj) > 0) { /* what earlier jobs measured: the pre-screen's prior */
        cJSON *prior = NULL;
        char e2[LD_ERR_MAX];
        const Task *t0 = engine_task(sj, 0);
        if (store_prior_read(d->store, family_name(task_family(t0)), task_hash(t0), SEARCH_PRIOR_MAX,
                             &prior, e2) != LD_OK ||
            search_set_prior(s, prior, e2) != LD_OK)
            daemon_log("pre-screen prior: %s (starting without)", e2);
        cJSON_Delete(prior);
    }
    state0 = search_save(s);
    if (!state0) {
        rc = ld_err(err, LD_ENOMEM, "cannot save the initial search state");
        goto done;
    }
    rc = store_begin(d->store, err);
    if (rc != LD_OK) goto done;
    StoreJobNew nj = {
        .spec = spec,
        .name = job_name(sj),
        .priority = sub->priority > 0 ? sub->priority : 1,
        .seed = job_seed(sj),
        .client_token = sub->client_token,
        .schedule_id = sub->schedule_id,
        .budget_evals = job_budget_evals(sj),
    };
    rc = store_job_insert(d->store, &nj, job_id, existed, err);
    if (rc != LD_OK || *existed) {
        daemon_rollback(d);
        goto done;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        daemon_rollback(d);
        rc = ld_err(err, LD_ENOMEM, "out of memory");
        goto done;
    }
    j->id = *job_id;
    j->state = JOB_QUEUED;
    j->priority = nj.priority;
    j->schedule_id = sub->schedule_id;
    j->job = sj;
    j->best_fitness = NAN;
    if (job_ntasks(sj) > 0)
        snprintf(j->family, sizeof j->family, "%s", family_name(task_family(engine_task(sj, 0))));
    rc = job_store_tasks(d, j, err);
    if (rc == LD_OK) rc = store_state_put(d->store, j->id, 0, state0, err);
    j->state_round = 0;
    j->state_saved_ms = ld_now_ms();
    if (rc == LD_OK) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "name", job_name(sj) ? job_name(sj) : "");
        cJSON_AddNumberToObject(ev, "priority", j->priority);
        cJSON_AddNumberToObject(ev, "warm_started", nwarm);
        if (sub->schedule_id) cJSON_AddNumberToObject(ev, "schedule_id", (double)sub->schedule_id);
        rc = daemon_event(d, j->id, "job.submitted", ev, err);
    }
    if (rc == LD_OK && (rc = daemon_commit(d, err)) != LD_OK) {
        /* a commit whose fsync failed may still be durable (its WAL frames were written): after
         * a crash the job can be there. A retry with the same client_token finds it. */
        size_t n = strlen(err);
        snprintf(err + n, LD_ERR_MAX - n, " (the job may still have been stored: retry with the "
                 "same client_token)");
    } else if (rc != LD_OK) {
        daemon_rollback(d);
    }
    if (rc != LD_OK) {
        j->job = NULL;
        djob_free(j);
        j = NULL;
        goto done;
    }
    j->search = s;
    s = NULL;
    sj = NULL;
    j->next = d->jobs;
    d->jobs = j;
    daemon_log("job %lld: submitted (%s, priority %d, %d warm-start expressions)",
               (long long)j->id, job_name(j->job) ? job_name(j->job) : "", j->priority, nwarm);
    for (int i = 0; i < job_ntasks(j->job); i++) /* what loading its data dropped or filled */
        if (task_data_note(engine_task(j->job, i))[0])
            daemon_log("job %lld: task %s: %s", (long long)j->id, task_name(engine_task(j->job, i)),
                       task_data_note(engine_task(j->job, i)));
    jobs_pump(d);
done:
    store_strv_free(warm, nwarm);
    cJSON_Delete(spec);
    cJSON_Delete(state0);
    search_free(s);
    job_free(sj);
    return rc;
}

int daemon_job_submit(Daemon *d, const DaemonSubmit *sub, int64_t *job_id, int *existed,
                      char *err) {
    SearchJob *sj = NULL;
    *existed = 0;
    if (d->shutting_down) return ld_err(err, LD_EBUSY, "the server is shutting down");
    int rc = job_parse(sub->job, sub->base_dir ? sub->base_dir : d->cwd, engine_env(), &sj, err);
    if (rc != LD_OK) return rc;
    return submit_finish(d, sub, sj, job_id, existed, err);
}

/* A submit whose job is parsed (its data read and parsed) on libuv's thread pool. */
typedef struct SubmitLoad {
    char *base_dir;     /* owned copy, or NULL */
    char *client_token; /* owned copy, or NULL */
    int priority;
    int64_t schedule_id;
    DaemonSubmitDone done;
    void *ud;
} SubmitLoad;

static void submit_load_free(SubmitLoad *l) {
    free(l->base_dir);
    free(l->client_token);
    free(l);
}

static void submit_parsed(Daemon *d, void *ud, int rc, SearchJob *sj, Search *s, const char *e) {
    SubmitLoad *l = ud;
    char err[LD_ERR_MAX];
    int64_t id = 0;
    int existed = 0;
    snprintf(err, sizeof err, "%s", e);
    search_free(s); /* none: parse only */
    if (rc == LD_OK) {
        DaemonSubmit sub = {
            .client_token = l->client_token,
            .priority = l->priority,
            .schedule_id = l->schedule_id,
            .base_dir = l->base_dir,
        };
        rc = submit_finish(d, &sub, sj, &id, &existed, err); /* takes sj */
    }
    l->done(l->ud, rc, id, existed, rc == LD_OK ? "" : err);
    submit_load_free(l);
}

int daemon_job_submit_async(Daemon *d, const DaemonSubmit *sub, DaemonSubmitDone done, void *ud,
                            char *err) {
    if (d->shutting_down) return ld_err(err, LD_EBUSY, "the server is shutting down");
    SubmitLoad *l = calloc(1, sizeof *l);
    if (!l) return ld_err(err, LD_ENOMEM, "out of memory");
    l->base_dir = sub->base_dir ? strdup(sub->base_dir) : NULL;
    l->client_token = sub->client_token ? strdup(sub->client_token) : NULL;
    l->priority = sub->priority;
    l->schedule_id = sub->schedule_id;
    l->done = done;
    l->ud = ud;
    if ((sub->base_dir && !l->base_dir) ||
        (sub->client_token && !l->client_token)) {
        submit_load_free(l);
        return ld_err(err, LD_ENOMEM, "out of memory");
    }
    cJSON *job = sub->job ? cJSON_Duplicate(sub->job, 1) : NULL; /* the worker's (taken) */
    if (sub->job && !job) {
        submit_load_free(l);
        return ld_err(err, LD_ENOMEM, "out of memory");
    }
    int rc = jobs_parse_async(d, job, sub->base_dir, NULL, submit_parsed, l, err);
    if (rc != LD_OK) submit_load_free(l);
    return rc;
}

/* ---- rounds ----------------------------------------------------------------------------- */

static void job_complete(Daemon *d, DJob *j);
static int job_proposals_ready(Daemon *d, DJob *j, char *err);

/* Starts the engine's next round: stores its candidates and takes the results already stored
 * (a resumed round). Returns 1 when a round is open (or the job failed or stalled), 0 when the
 * search is complete, 2 when an evaluate-only job waits for proposals. */
static int round_begin(Daemon *d, DJob *j) {
    char err[LD_ERR_MAX];
    const WorkItem *works = NULL;
    /* the engine spends budget.evaluations itself (it knows what a final re-evaluation costs);
     * this only guards against a runaway engine */
    int64_t budget = job_budget_evals(j->job);
    if (budget > 0 && j->evals_done >= 3 * budget + 64) {
        search_stop(j->search, 1);
        j->save_due = 1;
    }
    /* a restart's replay: proposals stored at this point of the rounds, then at the open round */
    uint64_t f0 = store_faults(d->store);
    int rc = job_proposals_ready(d, j, err);
    int n = rc == LD_OK ? search_round(j->search, &works) : 0;
    if (rc == LD_OK && n > 0) rc = round_book_proposals(&j->book, j->search, err);
    if (rc != LD_OK) {
        if (store_faulted(d, f0)) job_stall(d, j, err);
        else job_fail(d, j, err);
        return 1;
    }
    if (n <= 0 && search_waiting(j->search)) {
        if (!j->waiting) daemon_log("job %lld: waiting for proposals", (long long)j->id);
        j->waiting = 1;
        return 2;
    }
    if (n <= 0) return 0;
    j->results = calloc((size_t)n, sizeof *j->results);
    j->wstate = calloc((size_t)n, 1);
    if (!j->results || !j->wstate) {
        round_clear(j);
        job_fail(d, j, "out of memory starting a round");
        return 1;
    }
    j->works = works;
    j->nworks = n;
    rc = store_begin(d->store, err);
    if (rc == LD_OK) rc = round_book_candidates(&j->book, j->search, works, n, err);
    for (int i = 0; rc == LD_OK && i < n; i++) {
        int found = 0;
        rc = store_outcome_get_seq(d->store, j->id, works[i].seq, &found, &j->results[i], err);
        if (rc == LD_OK && found) {
            j->wstate[i] = W_DONE;
            j->ndone++;
        }
    }
    if (rc == LD_OK) rc = daemon_commit(d, err);
    else daemon_rollback(d);
    if (rc != LD_OK) {
        round_clear(j);
        if (store_faulted(d, f0)) job_stall(d, j, err);
        else job_fail(d, j, err);
    }
    return 1;
}

/* All results of the round are in: hand them to the engine in order, store the round's
 * bookkeeping (round_book_close: the engine's state when one is due, the fitness that changed,
 * the progress) and announce it, in one transaction. */
static void round_finish(Daemon *d, DJob *j) {
    char err[LD_ERR_MAX];
    cJSON *lb = NULL, *stats = NULL;
    int ncands = 0;
    int64_t *cands = round_book_cands(j->works, j->nworks, &ncands);
    int rc = search_finish_round(j->search, j->results, j->nworks, err);
    if (rc != LD_OK) {
        free(cands);
        round_clear(j);
        job_fail(d, j, err);
        return;
    }
    round_clear(j);
    j->round++;
    double old_best = j->best_fitness;
    stats = stats_json(j);
    uint64_t f0 = store_faults(d->store);
    int save = j->save_due || ld_now_ms() - j->state_saved_ms >= STATE_SAVE_MS;
    rc = store_begin(d->store, err);
    if (rc == LD_OK)
        rc = round_book_close(&j->book, j->search, j->round, save, cands, ncands, j->evals_done,
                              j->best_fitness, stats, &lb, err);
    free(cands);
    take_best(j, lb);
    if (rc == LD_OK && save) {
        j->state_round = j->round;
        j->state_saved_ms = ld_now_ms();
        j->save_due = 0;
    }
    if (rc == LD_OK) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddNumberToObject(ev, "round", (double)j->round);
        cJSON_AddNumberToObject(ev, "evaluations", (double)j->evals_done);
        cJSON_AddNumberToObject(ev, "budget", job_budget_evals(j->job));
        if (isfinite(j->best_fitness)) {
            cJSON_AddNumberToObject(ev, "best_fitness", j->best_fitness);
            cJSON_AddStringToObject(ev, "best_expr", j->best_expr);
        }
        rc = daemon_event(d, j->id, "job.round", ev, err);
    }
    if (rc == LD_OK && isfinite(j->best_fitness) &&
        (!isfinite(old_best) || j->best_fitness != old_best)) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddNumberToObject(ev, "cand", (double)j->best_cand);
        cJSON_AddStringToObject(ev, "expr", j->best_expr);
        cJSON_AddNumberToObject(ev, "fitness", j->best_fitness);
        rc = daemon_event(d, j->id, "job.best", ev, err);
    }
    if (rc == LD_OK) rc = daemon_commit(d, err);
    else daemon_rollback(d);
    if (rc != LD_OK) {
        /* what this process remembers as stored was rolled back with the rest */
        j->state_round = -1;
        round_book_forget(&j->book);
        if (store_faulted(d, f0)) job_stall(d, j, err);
        else job_fail(d, j, err);
    }
    cJSON_Delete(lb);
    cJSON_Delete(stats);
}

/* The engine has nothing more to propose: the job is done with its final leaderboard. */
static void job_complete(Daemon *d, DJob *j) {
    char err[LD_ERR_MAX];
    uint64_t f0 = store_faults(d->store);
    job_save_state_now(d, j);
    cJSON *stats = stats_json(j);
    int rc = store_job_update_progress(d->store, j->id, j->evals_done, j->best_fitness, NULL,
                                       stats, err);
    cJSON_Delete(stats);
    if (rc == LD_OK) rc = job_set_state(d, j, JOB_DONE, NULL, err);
    if (rc != LD_OK) daemon_log("job %lld: completing: %s", (long long)j->id, err);
    if (store_faulted(d, f0)) {
        job_stall(d, j, err); /* "done" is stored by the retry, which finds the search complete */
        return;
    }
    daemon_log("job %lld: done, %lld evaluations, best %.6g %s", (long long)j->id,
               (long long)j->evals_done, j->best_fitness, j->best_expr);
    j->finished = 1;
}

/* ---- proposals and job.finish ---------------------------------------------------------- */

/* A queued, running or paused job, loaded when it is not (paused since before a restart: it
 * stays paused). *out borrowed from the job list. */
static int job_loaded(Daemon *d, int64_t job_id, DJob *j, DJob **out, char *err) {
    *out = j;
    if (j) return LD_OK;
    int rc = job_load(d, job_id, &j, err);
    if (rc != LD_OK) return rc;
    j->next = d->jobs;
    d->jobs = j;
    *out = j;
    return LD_OK;
}

/* The loaded job job_id when it is queued, running or paused (loaded from the store when it is
 * not: paused since before a restart, it stays paused), for `what` ("finish", "take proposals");
 * LD_ENOTFOUND, LD_ESTATE naming its state, LD_EBUSY (shutting down, a storage fault). */
static int active_job(Daemon *d, int64_t job_id, const char *what, DJob **out, char *err) {
    cJSON *row = NULL;
    if (d->shutting_down) return ld_err(err, LD_EBUSY, "the server is shutting down");
    int rc = store_job_get(d->store, job_id, &row, err);
    if (rc == LD_ENOTFOUND) return ld_err(err, LD_ENOTFOUND, "job %lld: not found", (long long)job_id);
    if (rc != LD_OK) return rc;
    DJob *j = job_find(d, job_id);
    if (j && j->finished) j = NULL;
    JobState state = JOB_NSTATES;
    if (j) state = j->state;
    else if (job_state_parse(jstr(row, "state"), &state) != LD_OK) state = JOB_NSTATES;
    cJSON_Delete(row);
    if (state != JOB_QUEUED && state != JOB_RUNNING && state != JOB_PAUSED)
        return ld_err(err, LD_ESTATE, "job %lld: cannot %s: it is %s", (long long)job_id, what,
                      state == JOB_NSTATES ? "?" : job_state_name(state));
    rc = job_loaded(d, job_id, j, &j, err);
    if (rc != LD_OK) return ld_err(err, rc, "job %lld: cannot load it: %.200s", (long long)job_id, err);
    if (j->stall[0])
        return ld_err(err, LD_EBUSY, "job %lld: paused by a storage fault; it resumes by itself when "
                      "writes succeed", (long long)job_id);
    *out = j;
    return LD_OK;
}

/* Gets a loaded job's engine ready for proposals, once after it is loaded or submitted: an
 * evaluate-only engine waits for them, and the count of the job's stored proposals tells how
 * many a restart must hand over again; then hands over those whose point the engine has reached
 * (round_book_proposals; round_begin hands over the later ones as its rounds replay). */
static int job_proposals_ready(Daemon *d, DJob *j, char *err) {
    search_set_wait_for_proposals(j->search, 1);
    if (!j->prop_counted) {
        int rc = store_proposal_count(d->store, j->id, &j->book.nprop_stored, err);
        if (rc != LD_OK) return rc;
        j->prop_counted = 1;
        if (j->book.nprop_stored > search_nproposed(j->search))
            daemon_log("job %lld: %lld of its %lld stored proposals are handed over again where "
                       "they arrived (round %lld on)", (long long)j->id,
                       (long long)(j->book.nprop_stored - search_nproposed(j->search)),
                       (long long)j->book.nprop_stored, (long long)j->round);
    }
    return round_book_proposals(&j->book, j->search, err);
}

int daemon_job_finish(Daemon *d, int64_t job_id, char *err) {
    DJob *j = NULL;
    int rc = active_job(d, job_id, "finish", &j, err);
    if (rc != LD_OK) return rc;
    search_stop(j->search, 0);
    j->stopped = 1;
    j->waiting = 0;
    j->save_due = 1;
    rc = job_save_state(d, j, err);
    if (rc != LD_OK) return rc;
    char e2[LD_ERR_MAX];
    daemon_event(d, job_id, "job.finish", NULL, e2);
    daemon_log("job %lld: finish asked: final re-evaluation next", (long long)job_id);
    jobs_pump(d);
    return LD_OK;
}

static const char *const proposal_status[] = {"accepted", "duplicate", "refused"};

/* The reply's entry for one proposal (text as sent, p its fate in the engine s). Owned. */
static cJSON *proposal_json(const Search *s, const char *text, const SearchProposal *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "expr", text);
    cJSON_AddStringToObject(o, "status", proposal_status[p->status]);
    if (p->status != PROPOSAL_REFUSED) cJSON_AddNumberToObject(o, "cand", (double)p->cand);
    if (p->status == PROPOSAL_DUPLICATE) {
        cJSON *c = search_candidate(s, p->cand);
        const char *e = jstr(c, "expr");
        if (e) cJSON_AddStringToObject(o, "of_expr", e);
        cJSON_AddStringToObject(o, "why", p->why);
        if (p->same_form_as >= 0) cJSON_AddNumberToObject(o, "same_form_as", (double)p->same_form_as);
        const char *st = jstr(c, "status");
        if (st && strcmp(st, "alive") && strcmp(st, "baseline")) { /* e.g. rejected before training */
            cJSON_AddStringToObject(o, "of_status", st);
            const char *why = jstr(c, "reason");
            if (why) cJSON_AddStringToObject(o, "of_reason", why);
        }
        cJSON_Delete(c);
    }
    if (p->status == PROPOSAL_REFUSED) {
        cJSON_AddStringToObject(o, "stage", p->why);
        cJSON_AddStringToObject(o, "error", p->error);
    }
    if (p->canonical[0]) cJSON_AddStringToObject(o, "canonical", p->canonical);
    return o;
}

int daemon_job_propose(Daemon *d, int64_t job_id, const char *const *exprs, int n,
                       const char *source, const char *note, cJSON **out, char *err) {
    cJSON *list = NULL;
    SearchProposal *p = NULL;
    int counts[3] = {0, 0, 0};
    *out = NULL;
    if (!source) source = "user";
    size_t sl = strlen(source);
    if (sl < 1 || sl > SEARCH_SOURCE_MAX ||
        strspn(source, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != sl)
        return ld_err(err, LD_EINVAL, "params.source: 1..%d characters of A-Z a-z 0-9 _ . -, got "
                      "'%.40s'", SEARCH_SOURCE_MAX, source);
    DJob *j = NULL;
    int rc = active_job(d, job_id, "take proposals", &j, err);
    if (rc == LD_OK) rc = job_proposals_ready(d, j, err);
    if (rc != LD_OK) return rc;
    Search *s = j->search;
    if (search_nproposed(s) < j->book.nprop_stored)
        return ld_err(err, LD_EBUSY, "job %lld: still replaying its rounds after a restart (%lld of "
                      "%lld stored proposals taken)%s; propose again in a moment", (long long)job_id,
                      (long long)search_nproposed(s), (long long)j->book.nprop_stored,
                      j->state == JOB_PAUSED ? ": resume it first" : "");
    if (!search_accepts_proposals(s))
        return ld_err(err, LD_ESTATE, "job %lld: takes no more proposals: its search phase is over "
                      "(the budget is spent or the job was finished; the final re-evaluation runs "
                      "next)", (long long)job_id);
    p = malloc(sizeof *p);
    list = cJSON_CreateArray();
    if (!p || !list) {
        rc = ld_err(err, LD_ENOMEM, "job %lld: out of memory", (long long)job_id);
        goto done;
    }
    int64_t point = search_point(s), pseq0 = search_nproposed(s);
    rc = store_begin(d->store, err);
    for (int i = 0; rc == LD_OK && i < n; i++) {
        rc = search_propose(s, exprs[i], source, p);
        if (rc != LD_OK) {
            ld_err(err, rc, "job %lld: proposal %d: out of memory", (long long)job_id, i);
            break;
        }
        counts[p->status]++;
        cJSON_AddItemToArray(list, proposal_json(s, exprs[i], p));
        char detail[LD_ERR_MAX + 16];
        if (p->status == PROPOSAL_REFUSED) snprintf(detail, sizeof detail, "%s: %s", p->why, p->error);
        else snprintf(detail, sizeof detail, "%s", p->status == PROPOSAL_DUPLICATE ? p->why : "");
        StoreProposal sp = {.job_id = job_id, .pseq = pseq0 + i, .point = point, .expr = exprs[i],
                            .source = source, .note = note, .status = proposal_status[p->status],
                            .cand = p->status == PROPOSAL_REFUSED ? -1 : p->cand, .detail = detail};
        rc = store_proposal_put(d->store, &sp, err);
    }
    if (rc == LD_OK) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "source", source);
        cJSON_AddNumberToObject(ev, "round", (double)(point / 2));
        cJSON_AddNumberToObject(ev, "accepted", counts[PROPOSAL_ACCEPTED]);
        cJSON_AddNumberToObject(ev, "duplicates", counts[PROPOSAL_DUPLICATE]);
        cJSON_AddNumberToObject(ev, "refused", counts[PROPOSAL_REFUSED]);
        rc = daemon_event(d, job_id, "job.proposed", ev, err);
    }
    if (rc == LD_OK) rc = daemon_commit(d, err);
    if (rc != LD_OK) {
        /* the engine took what the store did not: reload the job from the store, as a restart
         * would, and tell the proposer nothing was taken */
        char why[LD_ERR_MAX];
        snprintf(why, sizeof why, "%s", err);
        job_stall(d, j, why); /* rolls back what is open */
        ld_err(err, rc, "job %lld: the proposals were not taken: %.200s", (long long)job_id, why);
        goto done;
    }
    j->book.nprop_stored = pseq0 + n;
    if (counts[PROPOSAL_ACCEPTED] > 0) j->waiting = 0;
    daemon_log("job %lld: %d proposals from %s: %d accepted, %d duplicates, %d refused",
               (long long)job_id, n, source, counts[0], counts[1], counts[2]);
    *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(*out, "job_id", (double)job_id);
    cJSON_AddNumberToObject(*out, "round", (double)(point / 2));
    cJSON_AddNumberToObject(*out, "point", (double)point);
    cJSON_AddNumberToObject(*out, "accepted", counts[PROPOSAL_ACCEPTED]);
    cJSON_AddNumberToObject(*out, "duplicates", counts[PROPOSAL_DUPLICATE]);
    cJSON_AddNumberToObject(*out, "refused", counts[PROPOSAL_REFUSED]);
    cJSON_AddItemToObject(*out, "proposals", list);
    list = NULL;
    jobs_pump(d);
done:
    free(p);
    cJSON_Delete(list);
    return rc;
}

/* ---- scheduling ------------------------------------------------------------------------- */

static int job_runnable(const DJob *j) {
    return !j->finished && !j->stall[0] && j->state == JOB_RUNNING && j->works && j->cursor < j->nworks;
}

/* Next pending work of j, or -1. */
static int job_next_work(DJob *j) {
    while (j->cursor < j->nworks && j->wstate[j->cursor] != W_PENDING) j->cursor++;
    return j->cursor < j->nworks ? j->cursor : -1;
}

/* Weighted round-robin: the current job keeps the turn for `priority` dispatches. */
static DJob *pick_job(Daemon *d) {
    DJob *cur = job_find(d, d->wrr_job);
    if (cur && d->wrr_left > 0 && job_runnable(cur) && job_next_work(cur) >= 0) return cur;
    /* the next runnable job after cur, circularly (cur itself last) */
    int n = 0;
    for (DJob *k = d->jobs; k; k = k->next) n++;
    DJob *j = cur && cur->next ? cur->next : d->jobs;
    for (int i = 0; i < n && j; i++) {
        if (job_runnable(j) && job_next_work(j) >= 0) {
            d->wrr_job = j->id;
            d->wrr_left = j->priority;
            return j;
        }
        j = j->next ? j->next : d->jobs;
    }
    return NULL;
}

static void batch_add(Daemon *d, ExecItem *it);

/* The cross-job result cache: a run of the same loss (expression hash) on the same task (its
 * content hash) with the same seed and steps, stored by this job or any other, is not trained
 * again. Its stored result becomes the item's outcome, and the item goes through the batch
 * like a trained one, so it is stored as this job's own evaluation (with the work's seq) and
 * the job's leaderboard is complete. Training is deterministic, so the search is the one it
 * would have been without the cache. Not for a stored rejection (the pre-check runs again)
 * nor a work with its own precision (the task hash does not carry it). Returns 1 on a hit. */
static int cache_hit(Daemon *d, ExecItem *it) {
    const WorkItem *w = &it->work;
    char err[LD_ERR_MAX];
    int found = 0;
    if (!d->result_cache || w->precision[0]) return 0;
    if (store_result_lookup(d->store, ld_hash64(w->expr, strlen(w->expr)), w->task_hash, w->seed,
                            w->steps, &found, &it->out.res, err) != LD_OK || !found)
        return 0;
    if (!it->out.res.ok &&
        !strncmp(it->out.res.error, STORE_REJECTED_PREFIX, strlen(STORE_REJECTED_PREFIX)))
        return 0;
    it->out.job_id = w->job_id;
    it->out.seq = w->seq;
    it->out.status = it->out.res.ok ? WORK_OK : WORK_FAILED;
    return 1;
}

static int dispatch_one(Daemon *d, DJob *j) {
    int i = job_next_work(j);
    if (i < 0) return 0;
    ExecItem *it = calloc(1, sizeof *it);
    if (!it) return 0;
    it->round = j->round;
    it->idx = i;
    it->work = j->works[i];
    it->work.job_id = j->id;
    it->task = engine_task(j->job, it->work.task);
    j->wstate[i] = W_RUNNING;
    j->inflight++;
    if (cache_hit(d, it)) { /* committed with the batch after this pass (jobs_pump) */
        d->cache_hits++;
        batch_add(d, it);
        return 1;
    }
    d->wrr_left--;
    exec_submit(d->pool, it);
    return 1;
}

/* One pass over the jobs: activate queued ones, open rounds, finish rounds whose results are
 * all stored. Returns 1 when something changed. */
static int jobs_advance(Daemon *d) {
    char err[LD_ERR_MAX];
    int changed = 0;
    for (DJob *j = d->jobs; j; j = j->next) {
        if (j->finished || j->stall[0]) continue;
        if (j->state == JOB_QUEUED) {
            uint64_t f0 = store_faults(d->store);
            if (job_set_state(d, j, JOB_RUNNING, NULL, err) != LD_OK) {
                daemon_log("job %lld: %s", (long long)j->id, err);
                if (store_faulted(d, f0)) job_stall(d, j, err);
                continue;
            }
            changed = 1;
        }
        if (j->state != JOB_RUNNING) continue;
        if (!j->works) {
            if (j->waiting) continue; /* until a proposal, job.finish or a stop wakes it */
            int rb = round_begin(d, j);
            if (rb == 2) continue;
            changed = 1;
            if (!rb) {
                job_complete(d, j);
                continue;
            }
            if (j->finished || !j->works) continue;
        }
        if (j->ndone == j->nworks && j->inflight == 0) {
            round_finish(d, j);
            changed = 1;
        }
    }
    return changed;
}

static int flush_items(Daemon *d);

void jobs_pump(Daemon *d) {
    /* jobs_on_done and job control call this; never re-enter a pass already running */
    if (d->shutting_down || d->pump_depth > 0) return;
    d->pump_depth++;
again:
    for (int pass = 0; pass < 1000; pass++) {
        int changed = jobs_advance(d);
        int cap = exec_workers(d->pool) * POOL_INFLIGHT_PER_WORKER;
        while (exec_pending(d->pool) < cap) {
            DJob *j = pick_job(d);
            if (!j || !dispatch_one(d, j)) break;
            changed = 1;
        }
        if (!changed) break;
    }
    /* results the cache gave this pass are committed now: their rounds may then go on */
    if (d->cache_pending) {
        d->cache_pending = 0;
        if (flush_items(d) > 0) goto again;
    }
    /* free jobs that reached a terminal state with nothing in flight */
    DJob *j = d->jobs;
    while (j) {
        DJob *next = j->next;
        job_release_if_idle(d, j);
        j = next;
    }
    d->pump_depth--;
}

/* ---- results: group commits -------------------------------------------------------------- */

/* Whether item it still belongs to j's open round (a cancel, a failure or a reload may have
 * ended it since it was handed out). */
static int item_current(const DJob *j, const ExecItem *it) {
    return j && it->round == j->round && j->works && it->idx < j->nworks;
}

/* A finished item waits in d->batch until jobs_flush commits it with the others: nothing about
 * it (the job's counts, the round's results) changes before its transaction committed, so a
 * kill -9 loses only results no client heard of, and the restart runs their works again (the
 * replay is deterministic). The batch is committed at once when it is full, when nothing else
 * is in flight, when a run was stopped (a cancel or the shutdown: the client waits for it) or
 * when a job's round can go on only after it (every work handed out and the rest of them
 * waiting here): waiting longer would stall that job's search, not batch more results. */
static void batch_add(Daemon *d, ExecItem *it) {
    DJob *j = job_find(d, it->work.job_id);
    it->next = NULL;
    if (d->batch_tail) d->batch_tail->next = it;
    else d->batch = it;
    d->batch_tail = it;
    d->nbatch++;
    if (j) j->batched++;
    d->cache_pending |= d->pump_depth > 0; /* added by a pass: jobs_pump commits it */
}

int jobs_on_done(Daemon *d, ExecItem *it) {
    DJob *j = job_find(d, it->work.job_id);
    batch_add(d, it);
    if (d->nbatch >= DAEMON_BATCH_MAX || it->out.status == WORK_CANCELLED ||
        (d->pool && exec_pending(d->pool) == 0) ||
        (item_current(j, it) && j->batched >= j->inflight && job_next_work(j) < 0))
        jobs_flush(d);
    return d->nbatch;
}

/* What a committed item changes: the job's counts and the round's results. */
static void item_committed(Daemon *d, ExecItem *it, int inserted) {
    DJob *j = job_find(d, it->work.job_id);
    if (j) j->inflight--;
    if (!item_current(j, it)) {
        exec_item_free(it);
        return;
    }
    const WorkItem *w = &j->works[it->idx];
    if (it->out.status == WORK_CANCELLED) {
        /* stopped by the job's cancel or the shutdown: stored as "interrupted" (never a
         * failure, never a cached result), and the work is pending again (a restart runs it) */
        daemon_log("job %lld: evaluation %lld stopped after %d of %d steps (%s)", (long long)j->id,
                   (long long)w->seq, it->out.res.steps, w->steps,
                   d->shutting_down ? "shutdown" : "cancel");
        j->wstate[it->idx] = W_PENDING;
        if (it->idx < j->cursor) j->cursor = it->idx;
        exec_item_free(it);
        return;
    }
    if (inserted && it->out.status != WORK_REJECTED) j->evals_done++;
    j->results[it->idx] = it->out;
    j->wstate[it->idx] = W_DONE;
    j->ndone++;
    d->evals_total++;
    exec_item_free(it);
    if (j->ndone == j->nworks && j->inflight == 0 && !j->finished && !d->shutting_down &&
        (j->state == JOB_RUNNING || j->state == JOB_PAUSED))
        round_finish(d, j);
}

/* Commits the batch and lets it count, without feeding the pool (jobs_flush does). */
static int flush_items(Daemon *d) {
    char err[LD_ERR_MAX];
    int inserted[DAEMON_BATCH_MAX], n = 0; /* jobs_on_done flushes a full batch */
    ExecItem *list = d->batch;
    d->batch = d->batch_tail = NULL;
    d->nbatch = 0;
    if (!list) return 0;
    for (ExecItem *it = list; it; it = it->next) {
        DJob *j = job_find(d, it->work.job_id);
        if (j) j->batched = 0;
    }
    /* one transaction (one fsync) for the batch; a result that cannot be stored is not used */
    int rc = store_begin(d->store, err);
    for (ExecItem *it = list; rc == LD_OK && it; it = it->next, n++) {
        DJob *j = job_find(d, it->work.job_id);
        inserted[n] = 0;
        if (item_current(j, it))
            rc = round_book_outcome(&j->book, &j->works[it->idx], &it->out, &inserted[n], err);
    }
    if (rc == LD_OK) rc = daemon_commit(d, err);
    else daemon_rollback(d);
    if (rc == LD_OK) {
        d->commits++;
        d->commit_results += n;
    }
    n = 0;
    while (list) {
        ExecItem *it = list;
        list = it->next;
        it->next = NULL;
        if (rc == LD_OK) {
            item_committed(d, it, inserted[n++]);
            continue;
        }
        DJob *j = job_find(d, it->work.job_id);
        if (j) j->inflight--;
        if (item_current(j, it)) {
            daemon_log("job %lld: storing evaluation %lld: %s", (long long)j->id,
                       (long long)j->works[it->idx].seq, err);
            job_stall(d, j, err);
        }
        exec_item_free(it);
    }
    return rc == LD_OK ? n : -1;
}

int jobs_flush(Daemon *d) {
    int n = flush_items(d);
    jobs_pump(d);
    return n;
}

void jobs_on_dropped(Daemon *d, ExecItem *it) {
    DJob *j = job_find(d, it->work.job_id);
    if (j) {
        j->inflight--;
        if (j->wstate && it->round == j->round && it->idx < j->nworks) {
            j->wstate[it->idx] = W_PENDING;
            if (it->idx < j->cursor) j->cursor = it->idx;
        }
    }
    exec_item_free(it);
}

/* How a stalled job's reload ended: nj (owned, NULL when rc is not LD_OK) takes j's place, or
 * j waits longer when the store faulted again since f0, or fails when the cause is not the
 * store's. */
static void retry_outcome(Daemon *d, DJob *j, DJob *nj, int rc, const char *err, uint64_t f0) {
    if (rc != LD_OK) {
        if (store_faulted(d, f0)) {
            snprintf(j->stall, sizeof j->stall, "%s", err);
            j->stall_wait_ms = fmin(2 * j->stall_wait_ms, STALL_RETRY_MAX_MS);
            j->stall_retry_ms = ld_now_ms() + j->stall_wait_ms;
            return;
        }
        j->stall[0] = 0;
        job_fail(d, j, err);
        return;
    }
    daemon_log("job %lld: writes succeed again; resuming (%lld evaluations stored, round %lld)",
               (long long)j->id, (long long)nj->evals_done, (long long)nj->round);
    nj->elapsed_prev_s = job_elapsed(j);
    if (nj->state == JOB_RUNNING) nj->run_since_ms = ld_now_ms();
    /* in j's place in the list */
    for (DJob **p = &d->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            nj->next = j->next;
            *p = nj;
            break;
        }
    djob_free(j);
}

/* The store's fault count when a retry's reload began (its ud). */
typedef struct RetryLoad {
    uint64_t faults;
} RetryLoad;

static void retry_loaded(Daemon *d, int64_t id, DJob *nj, int rc, const char *err, void *ud) {
    RetryLoad *r = ud;
    uint64_t f0 = r->faults;
    free(r);
    DJob *j = job_find(d, id);
    if (j) j->reloading = 0;
    /* cancelled, or the daemon stopping, while it loaded: the store has what counts */
    if (!j || !j->stall[0] || j->finished || d->shutting_down) {
        djob_free(nj);
        return;
    }
    retry_outcome(d, j, nj, rc, err, f0);
    jobs_pump(d);
}

/* Retries a stalled job whose evaluations in flight are all back: reloads it from the store
 * (which writes its tasks: the probe that writes succeed again) in place of the stalled copy.
 * Its data is read and parsed off the loop; the stalled copy waits in the list meanwhile. */
static void job_retry_stalled(Daemon *d, DJob *j) {
    char err[LD_ERR_MAX];
    RetryLoad *r = malloc(sizeof *r);
    uint64_t f0 = store_faults(d->store);
    if (!r) {
        j->stall_retry_ms = ld_now_ms() + j->stall_wait_ms;
        return;
    }
    r->faults = f0;
    int rc = job_load_async(d, j->id, LOAD_RETRY, retry_loaded, r, err);
    if (rc != LD_OK) {
        free(r);
        retry_outcome(d, j, NULL, rc, err, f0);
        return;
    }
    j->reloading = 1;
}

void jobs_tick(Daemon *d) {
    for (DJob *j = d->jobs; j;) {
        DJob *next = j->next;
        if (j->stall[0] && !j->reloading && j->inflight == 0 && !j->finished &&
            ld_now_ms() >= j->stall_retry_ms)
            job_retry_stalled(d, j);
        j = next;
    }
    for (DJob *j = d->jobs; j; j = j->next) {
        if (j->finished || j->stopped || !j->search || j->state != JOB_RUNNING) continue;
        double b = job_budget_seconds(j->job);
        if (b > 0 && job_elapsed(j) >= b) {
            search_stop(j->search, 0);
            j->stopped = 1;
            j->waiting = 0;
            j->save_due = 1; /* a replay must not cross the stop: see round_finish */
            daemon_log("job %lld: wall-clock budget of %.0f s reached", (long long)j->id, b);
        }
    }
    jobs_pump(d);
}

void jobs_shutdown(Daemon *d) {
    char err[LD_ERR_MAX];
    for (DJob *j = d->jobs; j; j = j->next) {
        /* a stalled job's engine may be ahead of the store: the restart replays from the store */
        if (j->finished || j->stall[0]) continue;
        job_save_state_now(d, j);
        cJSON *stats = stats_json(j);
        if (store_job_update_progress(d->store, j->id, j->evals_done, j->best_fitness, NULL,
                                      stats, err) != LD_OK)
            daemon_log("job %lld: %s", (long long)j->id, err);
        cJSON_Delete(stats);
    }
}

void jobs_free_all(Daemon *d) {
    while (d->batch) { /* never committed: the restart runs their works again */
        ExecItem *it = d->batch;
        d->batch = it->next;
        exec_item_free(it);
    }
    d->batch_tail = NULL;
    d->nbatch = 0;
    while (d->jobs) {
        DJob *j = d->jobs;
        d->jobs = j->next;
        djob_free(j);
    }
}

int jobs_pending_works(const Daemon *d) {
    int n = 0;
    for (const DJob *j = d->jobs; j; j = j->next) {
        if (j->finished || j->state != JOB_RUNNING || !j->wstate) continue;
        for (int i = j->cursor; i < j->nworks; i++) n += j->wstate[i] == W_PENDING;
    }
    return n;
}

int jobs_count_loaded(const Daemon *d) {
    int n = 0;
    for (const DJob *j = d->jobs; j; j = j->next) n++;
    for (const JobLoad *l = d->loading; l; l = l->next) n++;
    return n;
}

/* ---- queries and control ---------------------------------------------------------------- */

static void add_num_or_null(cJSON *o, const char *k, double v) {
    if (isfinite(v) && v != 0) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* Builds the protocol's summary from a store row, overlaid with the live job when loaded. */
static cJSON *summary_from_row(Daemon *d, const cJSON *row, int full) {
    cJSON *o = cJSON_CreateObject();
    int64_t id = (int64_t)jnum(row, "id", "job_id", 0);
    DJob *j = job_find(d, id);
    cJSON_AddNumberToObject(o, "job_id", (double)id);
    const char *name = jstr(row, "name");
    if (name) cJSON_AddStringToObject(o, "name", name);
    else cJSON_AddNullToObject(o, "name");
    const char *state = j && !j->finished ? (j->stall[0] ? "paused" : job_state_name(j->state))
                                          : jstr(row, "state");
    cJSON_AddStringToObject(o, "state", state ? state : "unknown");
    cJSON_AddNumberToObject(o, "priority", j ? j->priority : jnum(row, "priority", NULL, 1));
    double sid = j ? (double)j->schedule_id : jnum(row, "schedule_id", "schedule", 0);
    if (sid > 0) cJSON_AddNumberToObject(o, "schedule_id", sid);
    else cJSON_AddNullToObject(o, "schedule_id");
    add_num_or_null(o, "created_s", jnum(row, "created", "created_s", 0));
    add_num_or_null(o, "started_s", jnum(row, "started", "started_s", 0));
    add_num_or_null(o, "finished_s", jnum(row, "finished", "finished_s", 0));

    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(row, "stats");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(row, "spec");
    const cJSON *budget = cJSON_GetObjectItemCaseSensitive(spec, "budget");
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    double evals = j ? (double)j->evals_done : jnum(row, "evals_done", "evaluations", 0);
    double elapsed = j ? job_elapsed(j) : jnum(stats, "elapsed_s", NULL, jnum(row, "elapsed_s", NULL, 0));
    double best = j ? j->best_fitness : jnum(row, "best_fitness", NULL, NAN);
    cJSON_AddNumberToObject(p, "evaluations", evals);
    /* the final re-evaluations of the top candidates (and their runs at the user's horizon)
     * come after the search's budget is spent */
    double final_evals = jnum(stats, "final_evaluations", NULL, jnum(row, "final_evaluations", NULL, 0)) +
                         jnum(stats, "horizon_evaluations", NULL, 0);
    if (j && j->search) {
        cJSON *live = search_stats(j->search);
        final_evals = jnum(live, "final_evaluations", NULL, 0) + jnum(live, "horizon_evaluations", NULL, 0);
        cJSON_Delete(live);
    }
    cJSON_AddNumberToObject(p, "final_evaluations", final_evals);
    cJSON_AddNumberToObject(p, "budget", j ? job_budget_evals(j->job)
                                           : jnum(row, "budget_evals", NULL,
                                                  jnum(budget, "evaluations", NULL, 0)));
    cJSON_AddNumberToObject(p, "budget_s", j ? job_budget_seconds(j->job)
                                             : jnum(budget, "seconds", NULL, 0));
    if (isfinite(best)) cJSON_AddNumberToObject(p, "best_fitness", best);
    else cJSON_AddNullToObject(p, "best_fitness");
    const char *bexpr = NULL;
    if (j && j->best_expr[0]) bexpr = j->best_expr;
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(row, "leaderboard");
    if (!bexpr && cJSON_GetArraySize(lb) > 0) bexpr = jstr(cJSON_GetArrayItem(lb, 0), "expr");
    if (!bexpr) bexpr = jstr(row, "best_expr"); /* job.list rows carry only the winner */
    if (bexpr) cJSON_AddStringToObject(p, "best_expr", bexpr);
    else cJSON_AddNullToObject(p, "best_expr");
    cJSON_AddNumberToObject(p, "elapsed_s", elapsed);
    cJSON_AddNumberToObject(p, "rate", elapsed > 0 ? evals / elapsed : 0);
    cJSON_AddNumberToObject(p, "round", j ? (double)j->round : jnum(stats, "round", NULL, 0));
    /* an evaluate-only job between its proposer's batches: running, but nothing to train */
    if (j && !j->finished && j->waiting && !j->works) cJSON_AddBoolToObject(p, "waiting", 1);
    const char *error = jstr(row, "error");
    char stalled[LD_ERR_MAX + 64];
    if (j && !j->finished && j->stall[0]) {
        snprintf(stalled, sizeof stalled, "paused: %s (resumes by itself when writes succeed)",
                 j->stall);
        error = stalled;
    }
    if (error) cJSON_AddStringToObject(o, "error", error);
    else cJSON_AddNullToObject(o, "error");
    if (full) {
        cJSON_AddItemToObject(o, "spec", spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateNull());
        cJSON *st = j && j->search ? stats_json(j) : (stats ? cJSON_Duplicate(stats, 1) : NULL);
        cJSON_AddItemToObject(o, "stats", st ? st : cJSON_CreateNull());
        const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(row, "tasks");
        if (tasks) cJSON_AddItemToObject(o, "tasks", cJSON_Duplicate(tasks, 1));
    }
    return o;
}

int daemon_job_get(Daemon *d, int64_t job_id, int full, cJSON **out, char *err) {
    cJSON *row = NULL;
    int rc = store_job_get(d->store, job_id, &row, err);
    if (rc == LD_ENOTFOUND) return ld_err(err, LD_ENOTFOUND, "job %lld: not found", (long long)job_id);
    if (rc != LD_OK) return rc;
    *out = summary_from_row(d, row, full);
    cJSON_Delete(row);
    return LD_OK;
}

int daemon_job_list(Daemon *d, const char *state, cJSON **out, char *err) {
    cJSON *rows = NULL;
    int rc = store_job_list(d->store, state, 0, &rows, err);
    if (rc != LD_OK) return rc;
    cJSON *arr = cJSON_CreateArray();
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        cJSON *s = summary_from_row(d, row, 0);
        /* the store's state can lag the loaded job's by nothing, but filter on the live one */
        const char *st = jstr(s, "state");
        if (state && st && strcmp(st, state)) {
            cJSON_Delete(s);
            continue;
        }
        cJSON_AddItemToArray(arr, s);
    }
    cJSON_Delete(rows);
    *out = arr;
    return LD_OK;
}

/* A control action checked against the job's state: the state it leaves (*from) and the one it
 * goes to (*to), and the loaded job (*jp, NULL when not loaded). A failed job's resume drops its
 * idle engine: it is loaded again from the store. */
static int control_check(Daemon *d, int64_t job_id, const char *action, JobState *from,
                         JobState *to, DJob **jp, char *err) {
    cJSON *row = NULL;
    int rc = store_job_get(d->store, job_id, &row, err);
    if (rc == LD_ENOTFOUND) return ld_err(err, LD_ENOTFOUND, "job %lld: not found", (long long)job_id);
    if (rc != LD_OK) return rc;
    DJob *j = job_find(d, job_id);
    if (j && j->finished) j = NULL;
    JobState state = JOB_NSTATES; /* unknown */
    if (j) state = j->state;
    else if (job_state_parse(jstr(row, "state"), &state) != LD_OK) state = JOB_NSTATES;
    cJSON_Delete(row);
    const char *sname = state == JOB_NSTATES ? "?" : job_state_name(state);
    int active = state == JOB_QUEUED || state == JOB_RUNNING;
    JobLoad *l = job_loading(d, job_id);
    /* a resume's load ends in queued: nothing else may change the job meanwhile (a recovery's
     * load checks the stored state when it ends, so pause and cancel act on the store) */
    if (l && l->why == LOAD_RESUME)
        return ld_err(err, LD_EBUSY, "job %lld: being loaded for a resume; try again in a moment",
                      (long long)job_id);
    if (!strcmp(action, "pause")) {
        if (!active)
            return ld_err(err, LD_ESTATE, "job %lld: cannot pause a job that is %s", (long long)job_id, sname);
        *to = JOB_PAUSED;
    } else if (!strcmp(action, "resume")) {
        if (j && j->stall[0])
            return ld_err(err, LD_ESTATE,
                          "job %lld: paused by a storage fault; it resumes by itself when writes "
                          "succeed", (long long)job_id);
        if (state != JOB_PAUSED && state != JOB_FAILED)
            return ld_err(err, LD_ESTATE, "job %lld: cannot resume a job that is %s", (long long)job_id, sname);
        if (d->shutting_down) return ld_err(err, LD_EBUSY, "the server is shutting down");
        if (state == JOB_FAILED) {
            /* the failed run's engine is dropped once idle; the job reloads from the store */
            DJob *old = job_find(d, job_id);
            if (old && old->inflight > 0)
                return ld_err(err, LD_EBUSY, "job %lld: its last evaluations are still running; "
                                             "try again in a moment", (long long)job_id);
            if (old) {
                job_unlink(d, old);
                djob_free(old);
            }
            j = NULL;
        }
        *to = JOB_QUEUED;
    } else if (!strcmp(action, "cancel") || !strcmp(action, "expire")) {
        if (!active && state != JOB_PAUSED)
            return ld_err(err, LD_ESTATE, "job %lld: cannot %s a job that is %s", (long long)job_id,
                          action, sname);
        *to = action[0] == 'c' ? JOB_CANCELLED : JOB_EXPIRED;
    } else {
        return ld_err(err, LD_EINVAL, "unknown action %s", action);
    }
    *from = state;
    *jp = j;
    return LD_OK;
}

/* A resume whose load failed: the job stays failed with the new reason (the latest one). */
static int resume_failed(Daemon *d, int64_t job_id, JobState from, int rc, const char *why,
                         char *err) {
    char e2[LD_ERR_MAX];
    if (from == JOB_FAILED && !d->shutting_down)
        store_job_set_state(d->store, job_id, "failed", why, e2);
    return ld_err(err, rc, "job %lld: cannot resume: %.200s", (long long)job_id, why);
}

/* Carries out a checked action (control_check) on job j (loaded, or NULL: only the stored state
 * changes). */
static int control_apply(Daemon *d, int64_t job_id, DJob *j, JobState from, JobState to,
                         char *err) {
    int rc;
    const char *sname = from == JOB_NSTATES ? "?" : job_state_name(from);
    if (j) {
        /* a job that stops running keeps its latest round boundary (no replay on resume) */
        if (to != JOB_QUEUED) job_save_state_now(d, j);
        rc = job_set_state(d, j, to, NULL, err);
        if (rc != LD_OK) return rc;
        if (to == JOB_CANCELLED || to == JOB_EXPIRED) {
            j->finished = 1;
            /* the executor gives back the job's items no worker has started */
            ExecItem *it = d->pool ? exec_cancel_job(d->pool, j->id) : NULL;
            while (it) {
                ExecItem *next = it->next;
                jobs_on_dropped(d, it);
                it = next;
            }
            cJSON *stats = stats_json(j);
            char e2[LD_ERR_MAX];
            store_job_update_progress(d->store, j->id, j->evals_done, j->best_fitness, NULL, stats, e2);
            cJSON_Delete(stats);
        }
    } else {
        /* not loaded (paused since before a restart, or still loading): the stored state */
        rc = store_job_set_state(d->store, job_id, job_state_name(to), NULL, err);
        if (rc != LD_OK) return rc;
        char e2[LD_ERR_MAX];
        daemon_event(d, job_id, "job.state", state_event(job_state_name(to), sname, NULL), e2);
    }
    daemon_log("job %lld: %s -> %s", (long long)job_id, sname, job_state_name(to));
    jobs_pump(d);
    return LD_OK;
}

int daemon_job_control(Daemon *d, int64_t job_id, const char *action, char *err) {
    JobState from, to;
    DJob *j = NULL;
    int rc = control_check(d, job_id, action, &from, &to, &j, err);
    if (rc != LD_OK) return rc;
    if (!j && to == JOB_QUEUED) {
        char why[LD_ERR_MAX];
        rc = job_load(d, job_id, &j, why);
        if (rc != LD_OK) return resume_failed(d, job_id, from, rc, why, err);
        j->next = d->jobs;
        d->jobs = j;
    }
    return control_apply(d, job_id, j, from, to, err);
}

/* A resume waiting for its job's load (job_load_async's ud). */
typedef struct ResumeWait {
    JobState from;
    DaemonSubmitDone done;
    void *ud;
} ResumeWait;

static void resume_loaded(Daemon *d, int64_t id, DJob *j, int rc, const char *why, void *ud) {
    ResumeWait *w = ud;
    char err[LD_ERR_MAX];
    if (rc == LD_OK && d->shutting_down) {
        djob_free(j);
        rc = ld_err(err, LD_EBUSY, "the server is shutting down");
    } else if (rc != LD_OK) {
        rc = resume_failed(d, id, w->from, rc, why, err);
    } else {
        j->next = d->jobs;
        d->jobs = j;
        rc = control_apply(d, id, j, w->from, JOB_QUEUED, err);
    }
    w->done(w->ud, rc, id, 0, rc == LD_OK ? "" : err);
    free(w);
}

int daemon_job_resume_async(Daemon *d, int64_t job_id, DaemonSubmitDone done, void *ud,
                            int *deferred, char *err) {
    JobState from, to;
    DJob *j = NULL;
    *deferred = 0;
    int rc = control_check(d, job_id, "resume", &from, &to, &j, err);
    if (rc != LD_OK) return rc;
    if (j) return control_apply(d, job_id, j, from, to, err); /* loaded: nothing to read */
    ResumeWait *w = malloc(sizeof *w);
    if (!w) return ld_err(err, LD_ENOMEM, "out of memory");
    *w = (ResumeWait){.from = from, .done = done, .ud = ud};
    char why[LD_ERR_MAX];
    rc = job_load_async(d, job_id, LOAD_RESUME, resume_loaded, w, why);
    if (rc != LD_OK) {
        free(w);
        return resume_failed(d, job_id, from, rc, why, err);
    }
    *deferred = 1;
    return LD_OK;
}

int daemon_job_delete(Daemon *d, int64_t job_id, char *err) {
    cJSON *row = NULL;
    int rc = store_job_get(d->store, job_id, &row, err);
    if (rc == LD_ENOTFOUND) return ld_err(err, LD_ENOTFOUND, "job %lld: not found", (long long)job_id);
    if (rc != LD_OK) return rc;
    DJob *j = job_find(d, job_id);
    JobState state = JOB_NSTATES;
    if (j && !j->finished) state = j->state;
    else if (job_state_parse(jstr(row, "state"), &state) != LD_OK) state = JOB_NSTATES;
    cJSON_Delete(row);
    if (state == JOB_QUEUED || state == JOB_RUNNING || state == JOB_PAUSED)
        return ld_err(err, LD_ESTATE, "job %lld: cannot delete a job that is %s (cancel it first)",
                      (long long)job_id, job_state_name(state));
    if (j && j->inflight > 0)
        return ld_err(err, LD_EBUSY, "job %lld: its last evaluations are still running; try again "
                                     "in a moment", (long long)job_id);
    if (job_loading(d, job_id))
        return ld_err(err, LD_EBUSY, "job %lld: being loaded; try again in a moment", (long long)job_id);
    if (j) {
        job_unlink(d, j);
        djob_free(j);
    }
    rc = store_job_delete(d->store, job_id, err);
    if (rc != LD_OK) return rc;
    char e2[LD_ERR_MAX];
    daemon_event(d, job_id, "job.deleted", NULL, e2);
    daemon_log("job %lld: deleted", (long long)job_id);
    return LD_OK;
}

int daemon_job_rename(Daemon *d, int64_t job_id, const char *name, char *err) {
    int rc = store_job_rename(d->store, job_id, name && *name ? name : NULL, err);
    if (rc != LD_OK) return rc;
    char e2[LD_ERR_MAX];
    cJSON *ev = cJSON_CreateObject();
    if (name && *name) cJSON_AddStringToObject(ev, "name", name);
    else cJSON_AddNullToObject(ev, "name");
    daemon_event(d, job_id, "job.renamed", ev, e2);
    return LD_OK;
}

int daemon_schedule_active(Daemon *d, int64_t schedule_id) {
    int n = 0;
    for (DJob *j = d->jobs; j; j = j->next)
        if (!j->finished && j->schedule_id == schedule_id) n++;
    for (JobLoad *l = d->loading; l; l = l->next) /* resumed or recovered, not yet loaded */
        if (l->schedule_id == schedule_id && !job_find(d, l->id)) n++;
    return n;
}
