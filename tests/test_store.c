/* test_store.c: storage/ against its contracts: every table's round trip, idempotence, the
 * leaderboards' numbers, transactions, crash safety (a child killed mid-transaction), the writer
 * lock, migrations from an older schema, and the error paths a user can reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../storage/store.h"

static char tmpdir[256];
static int dbcount;

/* A fresh database path in the test's temp directory. */
static const char *newpath(char *buf, size_t n)
{
    snprintf(buf, n, "%s/t%d.db", tmpdir, ++dbcount);
    return buf;
}

#define OK(call)                                                                                  \
    do {                                                                                          \
        char err_[LD_ERR_MAX] = "";                                                               \
        int rc_ = (call);                                                                         \
        if (rc_ != LD_OK)                                                                         \
            fail_msg("%s -> %d: %s", #call, rc_, err_);                                           \
    } while (0)

/* Calls with an err buffer named err_ in scope: the OK macro declares it. */
#define E err_

#define NEAR(seen, want, tol)                                                                     \
    do {                                                                                          \
        double s_ = (seen), w_ = (want);                                                          \
        if (!(fabs(s_ - w_) <= (tol)))                                                            \
            fail_msg("%s = %.9g, want %.9g (tol %g)", #seen, s_, w_, (double)(tol));             \
    } while (0)

static Store *open_new(char *path, size_t n)
{
    Store *s = NULL;
    newpath(path, n);
    OK(store_open(path, STORE_NOSYNC, &s, E));
    return s;
}

static cJSON *spec_json(const char *name)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", name);
    return j;
}

static int64_t add_job(Store *s, const char *token)
{
    cJSON *spec = spec_json("job");
    StoreJobNew j = {.spec = spec, .name = "job", .seed = 7, .client_token = token,
                     .budget_evals = 100};
    int64_t id = 0;
    OK(store_job_insert(s, &j, &id, NULL, E));
    cJSON_Delete(spec);
    return id;
}

static int64_t add_task(Store *s, uint64_t hash, const char *family, const char *name, int hb)
{
    int64_t id = 0;
    OK(store_task_upsert(s, hash, family, name, hb ? "accuracy" : "mse", hb, NULL, &id, E));
    return id;
}

static EvalResult result(double val, double test)
{
    EvalResult r;
    memset(&r, 0, sizeof r);
    r.ok = 1;
    snprintf(r.metric, sizeof r.metric, "accuracy");
    r.val = val;
    r.test = test;
    r.steps = 100;
    r.wall_ms = 12.5;
    r.final_loss = 0.25;
    return r;
}

static void put_eval(Store *s, int64_t job, int64_t seq, int64_t cand, int64_t task, uint64_t seed,
                     int steps, double val, double test)
{
    StoreEvalKey k = {.job_id = job, .seq = seq, .cand = cand, .task_id = task, .seed = seed,
                      .steps = steps};
    EvalResult r = result(val, test);
    r.steps = steps;
    OK(store_eval_put(s, &k, &r, NULL, E));
}

static void put_cand(Store *s, int64_t job, int64_t cand, const char *expr, const char *parents)
{
    cJSON *p = parents ? cJSON_Parse(parents) : NULL;
    OK(store_candidate_put(s, job, cand, expr, ld_hash64(expr, strlen(expr)), 3, p, "mutate", NULL,
                           "classification", NULL, E));
    cJSON_Delete(p);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_open_fresh_and_reopen(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    assert_true(store_schema_version() >= 2);
    int64_t bytes = 0;
    OK(store_db_size(s, &bytes, E));
    assert_true(bytes > 0);
    int64_t id = add_job(s, NULL);
    store_close(s);
    OK(store_open(path, 0, &s, E));
    cJSON *j = NULL;
    OK(store_job_get(s, id, &j, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "state")), "queued");
    cJSON_Delete(j);
    store_close(s);
    /* user_version is the build's version */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), store_schema_version());
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_jobs(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    cJSON *spec = spec_json("a");
    StoreJobNew j = {.spec = spec, .name = "a", .priority = 3, .seed = 1ull << 60,
                     .client_token = "tok-1", .budget_evals = 50};
    int64_t id1 = 0, id2 = 0;
    int existed = -1;
    OK(store_job_insert(s, &j, &id1, &existed, E));
    assert_int_equal(existed, 0);
    OK(store_job_insert(s, &j, &id2, &existed, E));
    assert_int_equal(existed, 1);
    assert_int_equal(id1, id2);
    j.client_token = NULL;
    OK(store_job_insert(s, &j, &id2, &existed, E));
    assert_int_equal(existed, 0);
    assert_true(id2 > id1);
    cJSON_Delete(spec);

    assert_int_equal(store_job_set_state(s, id1, "bogus", NULL, err), LD_EINVAL);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(store_job_set_state(s, 999, "running", NULL, err), LD_ENOTFOUND);
    OK(store_job_set_state(s, id1, "running", NULL, E));
    OK(store_job_update_progress(s, id1, 17, 0.875, NULL, NULL, E));
    cJSON *lb = cJSON_Parse("[{\"expr\":\"ce\"}]");
    OK(store_job_update_progress(s, id1, 18, NAN, lb, NULL, E));
    cJSON_Delete(lb);
    OK(store_job_set_state(s, id1, "failed", "out of budget", E));

    int64_t counts[JOB_NSTATES]; /* server.status's: id1 failed, id2 queued */
    OK(store_job_counts(s, counts, E));
    assert_int_equal(counts[JOB_FAILED], 1);
    assert_int_equal(counts[JOB_QUEUED], 1);
    assert_int_equal(counts[JOB_RUNNING] + counts[JOB_PAUSED] + counts[JOB_DONE] + counts[JOB_CANCELLED], 0);

    int64_t tid = add_task(s, 42, "classification", "digits", 1);
    OK(store_job_add_task(s, id1, 0, tid, 0, E));
    OK(store_job_add_task(s, id1, 0, tid, 1, E)); /* idempotent on (job, idx): replaces */

    cJSON *o = NULL;
    OK(store_job_get(s, id1, &o, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")), "failed");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "error")), "out of budget");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "client_token")), "tok-1");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "seed")), "1152921504606846976");
    assert_int_equal(cJSON_GetObjectItem(o, "evals_done")->valueint, 18);
    assert_int_equal(cJSON_GetObjectItem(o, "budget_evals")->valueint, 50);
    assert_int_equal(cJSON_GetObjectItem(o, "priority")->valueint, 3);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "best_fitness")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "started")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "finished")));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "spec"), "name")), "a");
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "leaderboard"), 0), "expr")),
        "ce");
    cJSON *tasks = cJSON_GetObjectItem(o, "tasks");
    assert_int_equal(cJSON_GetArraySize(tasks), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(tasks, 0), "hash")),
                        "000000000000002a");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(tasks, 0), "holdout")));
    cJSON_Delete(o);

    assert_int_equal(store_job_get(s, 12345, &o, err), LD_ENOTFOUND);
    assert_null(o);

    OK(store_job_list(s, NULL, 0, &o, E));
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(o, 0), "id")->valueint, (int)id2);
    cJSON_Delete(o);
    OK(store_job_list(s, "queued", 0, &o, E));
    assert_int_equal(cJSON_GetArraySize(o), 1);
    cJSON_Delete(o);

    int64_t *ids = NULL;
    int n = -1;
    OK(store_jobs_in_state(s, "queued", &ids, &n, E));
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], id2);
    free(ids);
    OK(store_jobs_in_state(s, "running", &ids, &n, E));
    assert_int_equal(n, 0);
    assert_null(ids);
    store_close(s);
}

static void test_tasks(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    int64_t a = add_task(s, 1, "classification", "digits", 1);
    int64_t b = add_task(s, 2, "regression", "diabetes", 0);
    int64_t c = add_task(s, 1, "classification", "digits", 1);
    assert_int_equal(a, c);
    assert_int_not_equal(a, b);
    /* hashes above 2^63 survive the signed column */
    int64_t d = add_task(s, 0xfedcba9876543210ull, "classification", "wine", 1);
    int64_t e = add_task(s, 0xfedcba9876543210ull, "classification", "wine", 1);
    assert_int_equal(d, e);
    store_close(s);
}

static void test_evaluations(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    int64_t job = add_job(s, NULL), task = add_task(s, 9, "classification", "digits", 1);
    put_cand(s, job, 1, "ce", NULL);
    int64_t row1 = 0, row2 = 0;
    OK(store_candidate_put(s, job, 1, "ce", 5, 1, NULL, "init", NULL, "classification", &row1, E));
    OK(store_candidate_put(s, job, 1, "other", 5, 1, NULL, "init", NULL, "classification", &row2, E));
    assert_int_equal(row1, row2); /* idempotent: the first one is kept */

    EvalResult r = result(0.9, 0.85), back;
    r.ncurve = 3;
    for (int i = 0; i < 3; i++)
        r.curve[i] = (EvalCurvePoint){.step = 10 * (i + 1), .loss = 1.0f / (float)(i + 1), .val = 0.5f + 0.1f * (float)i};
    r.nextra = 2;
    r.extra[0] = (EvalMetric){.name = "accuracy", .val = 0.9, .test = 0.85};
    r.extra[1] = (EvalMetric){.name = "ece", .val = 0.03, .test = NAN};
    StoreEvalKey k = {.job_id = job, .seq = 0, .cand = 1, .task_id = task, .seed = 3, .steps = 100};
    int inserted = -1, found = -1;
    OK(store_eval_put(s, &k, &r, &inserted, E));
    assert_int_equal(inserted, 1);
    /* idempotent on (job, seq): a second put of a finished row changes nothing */
    EvalResult r2 = result(0.1, 0.1);
    OK(store_eval_put(s, &k, &r2, &inserted, E));
    assert_int_equal(inserted, 0);
    OK(store_eval_get_seq(s, job, 0, &found, &back, E));
    assert_int_equal(found, 1);
    assert_int_equal(back.ok, 1);
    NEAR(back.val, 0.9, 1e-12);
    NEAR(back.test, 0.85, 1e-12);
    NEAR(back.final_loss, 0.25, 1e-12);
    NEAR(back.wall_ms, 12.5, 1e-12);
    assert_string_equal(back.metric, "accuracy");
    assert_int_equal(back.ncurve, 3);
    assert_int_equal(back.curve[2].step, 30);
    NEAR(back.curve[1].loss, 0.5, 1e-6);
    NEAR(back.curve[2].val, 0.7, 1e-6);
    assert_int_equal(back.nextra, 2);
    assert_string_equal(back.extra[1].name, "ece");
    NEAR(back.extra[1].val, 0.03, 1e-12);
    assert_true(isnan(back.extra[1].test));

    /* an interrupted row does not count as finished and is replaced by the real result */
    k.seq = 1;
    k.interrupted = 1;
    OK(store_eval_put(s, &k, &r2, &inserted, E));
    OK(store_eval_get_seq(s, job, 1, &found, &back, E));
    assert_int_equal(found, 0);
    k.interrupted = 0;
    EvalResult fail = result(NAN, NAN);
    fail.ok = 0;
    snprintf(fail.error, sizeof fail.error, "non-finite loss at step 37");
    OK(store_eval_put(s, &k, &fail, &inserted, E));
    assert_int_equal(inserted, 1);
    OK(store_eval_get_seq(s, job, 1, &found, &back, E));
    assert_int_equal(found, 1);
    assert_int_equal(back.ok, 0);
    assert_true(isnan(back.val));
    assert_string_equal(back.error, "non-finite loss at step 37");

    OK(store_eval_get_seq(s, job, 99, &found, &back, E));
    assert_int_equal(found, 0);

    /* the candidate and the task must exist */
    k.seq = 2;
    k.cand = 77;
    assert_int_equal(store_eval_put(s, &k, &r, NULL, err), LD_ENOTFOUND);
    assert_non_null(strstr(err, "candidate 77"));
    k.cand = 1;
    k.task_id = 555;
    assert_int_equal(store_eval_put(s, &k, &r, NULL, err), LD_ENOTFOUND);
    assert_non_null(strstr(err, "task 555"));

    /* cross-job cache: same expression hash, task hash, seed, steps in another job */
    int64_t n = 0;
    OK(store_evals_count(s, job, &n, E));
    assert_int_equal(n, 2);
    OK(store_result_lookup(s, ld_hash64("ce", 2), 9, 3, 100, &found, &back, E));
    assert_int_equal(found, 1);
    NEAR(back.val, 0.9, 1e-12);
    OK(store_result_lookup(s, ld_hash64("ce", 2), 9, 4, 100, &found, &back, E));
    assert_int_equal(found, 0);

    cJSON *arr = NULL;
    OK(store_evals_for_job(s, job, 0, 0, &arr, E));
    assert_int_equal(cJSON_GetArraySize(arr), 1); /* seq > 0 */
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "status")),
                        "failed");
    cJSON_Delete(arr);
    OK(store_evals_for_job(s, job, -1, 0, &arr, E));
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    cJSON_Delete(arr);

    assert_int_equal(store_candidate_set_fitness(s, job, 999, 1.0, err), LD_ENOTFOUND);

    /* only the "ok" row counts in the family statistics (interrupted, then failed, do not) */
    OK(store_leaderboard_family(s, "classification", 5, NULL, 1, &arr, E));
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "evals")->valueint, 1);
    NEAR(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "val_mean")->valuedouble, 0.9, 1e-12);
    cJSON_Delete(arr);
    /* an interrupted row replaced by an ok one is counted once */
    k.seq = 5;
    k.task_id = task;
    k.interrupted = 1;
    OK(store_eval_put(s, &k, &r2, &inserted, E));
    k.interrupted = 0;
    OK(store_eval_put(s, &k, &r2, &inserted, E));
    assert_int_equal(inserted, 1);
    OK(store_leaderboard_family(s, "classification", 5, NULL, 1, &arr, E));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "evals")->valueint, 2);
    NEAR(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "val_mean")->valuedouble, 0.5, 1e-12);
    cJSON_Delete(arr);

    /* expression hashes with the top bit set survive the signed column, both ways */
    const uint64_t big = 0xfedcba9876543210ull;
    OK(store_candidate_put(s, job, 2, "mse", big, 1, NULL, "init", NULL, "classification", NULL, E));
    k = (StoreEvalKey){.job_id = job, .seq = 6, .cand = 2, .task_id = task, .seed = 8, .steps = 100};
    EvalResult r3 = result(0.95, 0.9);
    OK(store_eval_put(s, &k, &r3, NULL, E));
    OK(store_result_lookup(s, big, 9, 8, 100, &found, &back, E));
    assert_int_equal(found, 1);
    NEAR(back.val, 0.95, 1e-12);
    OK(store_leaderboard_family(s, "classification", 1, NULL, 1, &arr, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "hash")),
                        "fedcba9876543210");
    cJSON_Delete(arr);
    store_close(s);
}

/* Job leaderboard: order by fitness, per task mean and sample std over seeds at the highest
 * fidelity only. */
static void test_leaderboard_job(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    int64_t job = add_job(s, NULL);
    int64_t t1 = add_task(s, 11, "classification", "digits", 1);
    int64_t t2 = add_task(s, 12, "classification", "wine", 1);
    OK(store_job_add_task(s, job, 0, t1, 0, E));
    OK(store_job_add_task(s, job, 1, t2, 1, E));
    OK(store_begin(s, E));
    put_cand(s, job, 1, "ce", NULL);
    put_cand(s, job, 2, "focal(2)", "[1]");
    put_cand(s, job, 3, "mse", "[1]"); /* never ranked */
    int64_t seq = 0;
    /* cand 1: low fidelity 0.1 (ignored), high fidelity 0.6 0.7 0.8 on t1 */
    put_eval(s, job, seq++, 1, t1, 1, 50, 0.1, 0.1);
    put_eval(s, job, seq++, 1, t1, 1, 200, 0.6, 0.5);
    put_eval(s, job, seq++, 1, t1, 2, 200, 0.7, 0.6);
    put_eval(s, job, seq++, 1, t1, 3, 200, 0.8, 0.7);
    put_eval(s, job, seq++, 1, t2, 1, 100, 0.4, 0.3);
    /* cand 2: single seed */
    put_eval(s, job, seq++, 2, t1, 1, 200, 0.9, 0.95);
    OK(store_candidate_set_fitness(s, job, 1, 0.5, E));
    OK(store_candidate_set_fitness(s, job, 2, 0.9, E));
    OK(store_commit(s, E));

    cJSON *lb = NULL;
    OK(store_leaderboard_job(s, job, 10, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 2);
    cJSON *e0 = cJSON_GetArrayItem(lb, 0), *e1 = cJSON_GetArrayItem(lb, 1);
    assert_int_equal(cJSON_GetObjectItem(e0, "cand")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(e0, "rank")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(e1, "cand")->valueint, 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e0, "expr")), "focal(2)");
    NEAR(cJSON_GetObjectItem(e0, "fitness")->valuedouble, 0.9, 1e-12);
    cJSON *tasks = cJSON_GetObjectItem(e1, "tasks");
    assert_int_equal(cJSON_GetArraySize(tasks), 2);
    cJSON *a = cJSON_GetArrayItem(tasks, 0), *b = cJSON_GetArrayItem(tasks, 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "task")), "digits");
    assert_int_equal(cJSON_GetObjectItem(a, "steps")->valueint, 200);
    assert_int_equal(cJSON_GetObjectItem(a, "n")->valueint, 3);
    NEAR(cJSON_GetObjectItem(a, "val_mean")->valuedouble, 0.7, 1e-9);
    NEAR(cJSON_GetObjectItem(a, "val_std")->valuedouble, 0.1, 1e-9);
    NEAR(cJSON_GetObjectItem(a, "test_mean")->valuedouble, 0.6, 1e-9);
    NEAR(cJSON_GetObjectItem(a, "test_std")->valuedouble, 0.1, 1e-9);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a, "holdout")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(b, "holdout")));
    NEAR(cJSON_GetObjectItem(b, "val_std")->valuedouble, 0.0, 0);
    cJSON_Delete(lb);

    OK(store_leaderboard_job(s, job, 1, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 1);
    cJSON_Delete(lb);
    OK(store_leaderboard_job(s, job + 1, 5, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 0);
    cJSON_Delete(lb);

    /* candidate detail: lineage and evaluations */
    cJSON *c = NULL;
    OK(store_candidate_get(s, job, 2, &c, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "expr")), "focal(2)");
    cJSON *lin = cJSON_GetObjectItem(c, "lineage");
    assert_int_equal(cJSON_GetArraySize(lin), 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(lin, 0), "cand")->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "evaluations")), 1);
    cJSON_Delete(c);
    char err[LD_ERR_MAX];
    assert_int_equal(store_candidate_get(s, job, 404, &c, err), LD_ENOTFOUND);
    store_close(s);
}

/* store_count_evals counts what a job's progress counts: neither interrupted runs nor
 * candidates rejected before training. The baseline's row alone (store_leaderboard_job_op)
 * equals its row in the whole ranking. A memo of a job's text is dropped by a write of its
 * evaluations, candidates, tasks or its deletion, and only by those of that job. */
static void test_counts_and_memos(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    int64_t job = add_job(s, NULL), other = add_job(s, NULL);
    int64_t task = add_task(s, 21, "classification", "digits", 1);
    OK(store_job_add_task(s, job, 0, task, 0, E));
    OK(store_candidate_put(s, job, 0, "ce", 7, 1, NULL, "baseline", NULL, "classification", NULL, E));
    put_cand(s, job, 1, "focal(2)", NULL);
    put_cand(s, job, 2, "mse", NULL);
    put_cand(s, other, 1, "ce", NULL);
    put_eval(s, job, 0, 1, task, 1, 100, 0.9, 0.8);
    put_eval(s, job, 1, 0, task, 1, 100, 0.7, 0.6);
    StoreEvalKey k = {.job_id = job, .seq = 2, .cand = 2, .task_id = task, .seed = 1, .steps = 100};
    WorkOutcome o;
    memset(&o, 0, sizeof o);
    o.status = WORK_REJECTED;
    snprintf(o.res.error, sizeof o.res.error, "NaN loss on the probe batch");
    OK(store_outcome_put(s, &k, &o, NULL, E));
    k.seq = 3;
    o.status = WORK_CANCELLED;
    OK(store_outcome_put(s, &k, &o, NULL, E));
    k.seq = 4;
    o.status = WORK_FAILED;
    OK(store_outcome_put(s, &k, &o, NULL, E));
    int64_t n = -1;
    OK(store_count_evals(s, job, &n, E));
    assert_int_equal(n, 3); /* 2 ok + 1 failed; not the rejected one, not the interrupted one */
    OK(store_count_evals(s, other, &n, E));
    assert_int_equal(n, 0);

    OK(store_candidate_set_fitness(s, job, 1, 0.9, E));
    OK(store_candidate_set_fitness(s, job, 0, 0.7, E));
    OK(store_candidate_set_fitness(s, job, 2, 0.8, E));
    cJSON *all = NULL, *base = NULL;
    OK(store_leaderboard_job(s, job, 10, &all, E));
    OK(store_leaderboard_job_op(s, job, 10, "baseline", &base, E));
    assert_int_equal(cJSON_GetArraySize(base), 1);
    cJSON *want = cJSON_GetArrayItem(all, 2), *got = cJSON_GetArrayItem(base, 0);
    assert_int_equal(cJSON_GetObjectItem(got, "rank")->valueint, 3);
    assert_true(cJSON_Compare(want, got, 1));
    cJSON_Delete(all);
    cJSON_Delete(base);
    OK(store_leaderboard_job_op(s, job, 2, "baseline", &base, E)); /* not among the first 2 */
    assert_int_equal(cJSON_GetArraySize(base), 0);
    cJSON_Delete(base);

    /* memos */
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 1");
    store_memo_put(s, other, "k", "other's");
    assert_string_equal(store_memo_get(s, job, "k"), "text 1");
    assert_null(store_memo_get(s, job, "k2"));
    put_eval(s, other, 0, 1, task, 1, 100, 0.5, 0.5); /* another job's write */
    assert_string_equal(store_memo_get(s, job, "k"), "text 1");
    assert_null(store_memo_get(s, other, "k"));
    put_eval(s, job, 5, 1, task, 2, 100, 0.9, 0.8);
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 2");
    OK(store_candidate_set_fitness(s, job, 2, 0.95, E));
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 3");
    put_cand(s, job, 3, "mae", NULL);
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 4");
    cJSON *fin = cJSON_Parse("{\"verdict\":\"better\"}");
    OK(store_candidate_set_final(s, job, 1, fin, E));
    cJSON_Delete(fin);
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 5");
    OK(store_job_add_task(s, job, 1, add_task(s, 22, "classification", "wine", 1), 1, E));
    assert_null(store_memo_get(s, job, "k"));
    store_memo_put(s, job, "k", "text 6");
    OK(store_begin(s, E)); /* nothing is kept inside a transaction: it may be rolled back */
    store_memo_put(s, other, "k", "uncommitted");
    store_rollback(s);
    assert_null(store_memo_get(s, other, "k"));
    OK(store_job_delete(s, job, E));
    assert_null(store_memo_get(s, job, "k"));
    char err[LD_ERR_MAX]; /* the CHECK constraint still refuses what is not a state */
    OK(store_job_set_state(s, other, "expired", NULL, E));
    assert_int_not_equal(store_job_set_state(s, other, "bogus", NULL, err), LD_OK);
    store_close(s);
}

/* Family leaderboard: percentile per task in the task's direction, averaged over tasks. */
static void test_leaderboard_family_and_warm(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    int64_t j1 = add_job(s, NULL), j2 = add_job(s, NULL);
    int64_t cls = add_task(s, 21, "classification", "digits", 1);
    int64_t reg = add_task(s, 22, "regression", "diabetes", 0); /* lower is better */
    int64_t cls2 = add_task(s, 23, "classification", "wine", 1);
    OK(store_begin(s, E));
    put_cand(s, j1, 1, "ce", NULL);
    put_cand(s, j1, 2, "focal(2)", NULL);
    put_cand(s, j1, 3, "hinge", NULL);
    put_cand(s, j2, 1, "ce", NULL); /* same expression in another job */
    put_cand(s, j2, 2, "mse", NULL);
    put_cand(s, j2, 3, "mae", NULL);
    int64_t q = 0;
    /* digits: focal 0.9 > ce (0.8, 0.6 in two jobs: mean 0.7) > hinge 0.5 */
    put_eval(s, j1, q++, 1, cls, 1, 100, 0.8, 0.8);
    put_eval(s, j1, q++, 2, cls, 1, 100, 0.9, 0.9);
    put_eval(s, j1, q++, 3, cls, 1, 100, 0.5, 0.5);
    put_eval(s, j2, q++, 1, cls, 1, 100, 0.6, 0.6);
    /* wine: only hinge and ce at the high fidelity; hinge better there */
    put_eval(s, j1, q++, 3, cls2, 1, 100, 0.95, 0.9);
    put_eval(s, j1, q++, 1, cls2, 1, 100, 0.85, 0.8);
    put_eval(s, j1, q++, 2, cls2, 1, 10, 0.99, 0.9); /* lower fidelity for focal: its only one */
    /* regression: mae lower error than mse */
    put_eval(s, j2, q++, 2, reg, 1, 100, 3.0, 3.0);
    put_eval(s, j2, q++, 3, reg, 1, 100, 2.0, 2.0);
    OK(store_commit(s, E));

    cJSON *lb = NULL;
    OK(store_leaderboard_family(s, "classification", 10, NULL, 1, &lb, E));
    /* digits cume_dist (ascending val): hinge 1/3, ce 2/3, focal 1.
     * wine: ce 1/3, hinge 2/3, focal (0.99 at its highest fidelity 10) 1.
     * scores: focal 1, hinge 0.5, ce 0.5 (ties: both two tasks, then evals: ce 3 > hinge 2) */
    assert_int_equal(cJSON_GetArraySize(lb), 3);
    const char *want[] = {"focal(2)", "ce", "hinge"};
    const double wscore[] = {1.0, 0.5, 0.5};
    for (int i = 0; i < 3; i++) {
        cJSON *e = cJSON_GetArrayItem(lb, i);
        const char *expr = cJSON_GetStringValue(cJSON_GetObjectItem(e, "expr"));
        if (strcmp(expr, want[i]) != 0)
            fail_msg("family rank %d: %s, want %s", i + 1, expr, want[i]);
        NEAR(cJSON_GetObjectItem(e, "score")->valuedouble, wscore[i], 1e-9);
    }
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(lb, 1), "jobs")->valueint, 2);
    NEAR(cJSON_GetObjectItem(cJSON_GetArrayItem(lb, 1), "val_mean")->valuedouble, (0.7 + 0.85) / 2, 1e-9);
    cJSON_Delete(lb);

    OK(store_leaderboard_family(s, "regression", 10, NULL, 1, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(lb, 0), "expr")), "mae");
    cJSON_Delete(lb);
    OK(store_leaderboard_family(s, "regression", 10, "accuracy", 1, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 2); /* every row was stored with metric accuracy */
    cJSON_Delete(lb);
    OK(store_leaderboard_family(s, "regression", 10, "r2", 1, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 0);
    cJSON_Delete(lb);
    OK(store_leaderboard_family(s, "physics", 10, NULL, 1, &lb, E));
    assert_int_equal(cJSON_GetArraySize(lb), 0);
    cJSON_Delete(lb);

    /* warm start preferring wine: hinge (wine's best at full fidelity is focal at 10 steps:
     * still ranked first on wine), then the family-wide order fills up */
    char **ex = NULL;
    int n = 0;
    OK(store_warm_start(s, "classification", 23, 2, &ex, &n, E));
    assert_int_equal(n, 2);
    assert_string_equal(ex[0], "focal(2)");
    assert_string_equal(ex[1], "hinge");
    store_strv_free(ex, n);
    OK(store_warm_start(s, "classification", 0, 10, &ex, &n, E));
    assert_int_equal(n, 3);
    assert_string_equal(ex[1], "ce");
    store_strv_free(ex, n);
    OK(store_warm_start(s, "physics", 0, 10, &ex, &n, E));
    assert_int_equal(n, 0);
    assert_null(ex);
    store_close(s);
}

static void test_search_state(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    int64_t job = add_job(s, NULL), round = -1;
    cJSON *st = NULL;
    assert_int_equal(store_state_get(s, job, &round, &st, err), LD_ENOTFOUND);
    cJSON *a = cJSON_Parse("{\"rng\":[1,2,3,4],\"pop\":[\"ce\"]}");
    OK(store_state_put(s, job, 3, a, E));
    cJSON_Delete(a);
    a = cJSON_Parse("{\"rng\":[5,6,7,8],\"pop\":[\"mse\"]}");
    OK(store_state_put(s, job, 4, a, E));
    OK(store_state_get(s, job, &round, &st, E));
    assert_int_equal(round, 4);
    assert_true(cJSON_Compare(a, st, 1));
    cJSON_Delete(a);
    cJSON_Delete(st);
    /* a state for a job that does not exist violates the foreign key */
    a = cJSON_CreateObject();
    assert_int_equal(store_state_put(s, 999, 1, a, err), LD_EINVAL);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    cJSON_Delete(a);
    store_close(s);
}

static void test_events(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    int64_t seq = 0, last = 0;
    for (int i = 0; i < 5; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "i", i);
        OK(store_event_append(s, i % 2 ? 1 : 0, "job.progress", d, &seq, E));
        assert_true(seq > last);
        last = seq;
        cJSON_Delete(d);
    }
    cJSON *ev = NULL;
    OK(store_events_since(s, 2, 0, &ev, E));
    assert_int_equal(cJSON_GetArraySize(ev), 3);
    cJSON *first = cJSON_GetArrayItem(ev, 0);
    assert_int_equal(cJSON_GetObjectItem(first, "seq")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "data"), "i")->valueint, 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(first, "job")));
    cJSON_Delete(ev);
    OK(store_events_since(s, 0, 2, &ev, E));
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    cJSON_Delete(ev);
    OK(store_events_trim(s, 2, E));
    OK(store_events_since(s, 0, 0, &ev, E));
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 0), "seq")->valueint, 4);
    cJSON_Delete(ev);
    OK(store_events_trim(s, 0, E));
    /* sequence numbers are never reused, even after every event was deleted and a reopen */
    store_close(s);
    OK(store_open(path, 0, &s, E));
    OK(store_event_append(s, 0, "daemon.start", NULL, &seq, E));
    assert_int_equal(seq, 6);
    store_close(s);
}

static void test_schedules(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    cJSON *tmpl = spec_json("nightly");
    StoreSchedule sc = {.name = "nightly", .cron = "0 2 * * *", .tz = "UTC", .catch_up = 1,
                        .concurrency = 2, .job_template = tmpl, .next_fire = 1000.0};
    int64_t id = 0;
    OK(store_schedule_put(s, &sc, &id, E));
    cJSON *spec = spec_json("run");
    StoreJobNew j = {.spec = spec, .schedule_id = id};
    int64_t job = 0;
    OK(store_job_insert(s, &j, &job, NULL, E));
    cJSON_Delete(spec);
    OK(store_schedule_set_paused(s, id, 1, E));
    OK(store_schedule_set_fire(s, id, 1000.0, 2000.0, E));
    cJSON *o = NULL;
    OK(store_schedule_get(s, id, &o, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "cron")), "0 2 * * *");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "paused")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "catch_up")));
    NEAR(cJSON_GetObjectItem(o, "next_fire")->valuedouble, 2000.0, 0);
    NEAR(cJSON_GetObjectItem(o, "last_fire")->valuedouble, 1000.0, 0);
    assert_int_equal(cJSON_GetObjectItem(o, "runs")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(o, "concurrency")->valueint, 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "job"), "name")), "nightly");
    cJSON_Delete(o);
    sc.id = id;
    sc.cron = "30 3 * * 1";
    sc.paused = 0;
    OK(store_schedule_put(s, &sc, NULL, E));
    OK(store_schedule_list(s, &o, E));
    assert_int_equal(cJSON_GetArraySize(o), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(o, 0), "cron")), "30 3 * * 1");
    cJSON_Delete(o);
    OK(store_schedule_runs(s, id, 0, &o, E));
    assert_int_equal(cJSON_GetArraySize(o), 1);
    cJSON_Delete(o);
    OK(store_schedule_delete(s, id, E));
    assert_int_equal(store_schedule_delete(s, id, err), LD_ENOTFOUND);
    assert_int_equal(store_schedule_get(s, id, &o, err), LD_ENOTFOUND);
    assert_int_equal(store_schedule_set_paused(s, id, 0, err), LD_ENOTFOUND);
    sc.id = id;
    assert_int_equal(store_schedule_put(s, &sc, NULL, err), LD_ENOTFOUND);
    OK(store_job_get(s, job, &o, E)); /* the job stays, detached */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "schedule_id")));
    cJSON_Delete(o);
    cJSON_Delete(tmpl);
    store_close(s);
}

static void test_transactions(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    OK(store_begin(s, E));
    assert_true(store_in_transaction(s));
    assert_int_equal(store_begin(s, err), LD_ESTATE);
    int64_t a = add_job(s, NULL);
    store_rollback(s);
    assert_false(store_in_transaction(s));
    cJSON *o = NULL;
    assert_int_equal(store_job_get(s, a, &o, err), LD_ENOTFOUND);
    assert_int_equal(store_commit(s, err), LD_ESTATE);
    OK(store_begin(s, E));
    a = add_job(s, NULL);
    OK(store_commit(s, E));
    OK(store_job_get(s, a, &o, E));
    cJSON_Delete(o);
    /* a failing call inside a transaction leaves the earlier writes to the caller */
    OK(store_begin(s, E));
    int64_t b = add_job(s, NULL);
    assert_int_equal(store_job_set_state(s, 4242, "done", NULL, err), LD_ENOTFOUND);
    OK(store_commit(s, E));
    OK(store_job_get(s, b, &o, E));
    cJSON_Delete(o);
    store_close(s);
}

/* The child writes committed rows, then starts a transaction and dies (SIGKILL or _exit
 * without closing) in the middle of it. */
static void crash_child(const char *path, int how)
{
    Store *s = NULL;
    char err[LD_ERR_MAX];
    if (store_open(path, 0, &s, err) != LD_OK)
        _exit(10);
    int64_t job = 1, task = 0;
    StoreJobNew j = {.spec = NULL};
    cJSON *spec = cJSON_CreateObject();
    j.spec = spec;
    if (store_job_insert(s, &j, &job, NULL, err) != LD_OK)
        _exit(11);
    if (store_task_upsert(s, 5, "classification", "digits", "accuracy", 1, NULL, &task, err))
        _exit(12);
    if (store_candidate_put(s, job, 1, "ce", 1, 1, NULL, "init", NULL, "classification", NULL, err))
        _exit(13);
    for (int seq = 0; seq < 20; seq++) { /* committed one by one */
        StoreEvalKey k = {.job_id = job, .seq = seq, .cand = 1, .task_id = task, .seed = 1,
                          .steps = 10};
        EvalResult r = result(0.5, 0.5);
        if (store_eval_put(s, &k, &r, NULL, err) != LD_OK)
            _exit(14);
    }
    if (store_begin(s, err) != LD_OK)
        _exit(15);
    for (int seq = 20; seq < 40; seq++) { /* never committed */
        StoreEvalKey k = {.job_id = job, .seq = seq, .cand = 1, .task_id = task, .seed = 1,
                          .steps = 10};
        EvalResult r = result(0.5, 0.5);
        if (store_eval_put(s, &k, &r, NULL, err) != LD_OK)
            _exit(16);
    }
    store_job_set_state(s, job, "running", NULL, err);
    if (how == 0)
        raise(SIGKILL);
    _exit(0);
}

static void check_after_crash(int how)
{
    char path[300];
    newpath(path, sizeof path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(path, how);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (how == 0) {
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("child status %d, want killed by SIGKILL", status);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("child status %d (exit %d), want exit 0", status, WEXITSTATUS(status));
    }
    Store *s = NULL;
    OK(store_open(path, 0, &s, E)); /* the lock died with the child */
    int64_t n = -1;
    OK(store_evals_count(s, 1, &n, E));
    if (n != 20)
        fail_msg("after crash: %lld evaluations, want the 20 committed ones", (long long)n);
    int found = 0;
    EvalResult r;
    OK(store_eval_get_seq(s, 1, 19, &found, &r, E));
    assert_int_equal(found, 1);
    OK(store_eval_get_seq(s, 1, 20, &found, &r, E));
    assert_int_equal(found, 0);
    cJSON *o = NULL;
    OK(store_job_get(s, 1, &o, E));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")), "queued");
    cJSON_Delete(o);
    /* the database is whole */
    OK(store_begin(s, E));
    put_eval(s, 1, 20, 1, 1, 2, 10, 0.6, 0.6);
    OK(store_commit(s, E));
    OK(store_evals_count(s, 1, &n, E));
    assert_int_equal(n, 21);
    store_close(s);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_crash_sigkill(void **state) { check_after_crash(0); }
static void test_crash_exit(void **state) { check_after_crash(1); }

static void test_writer_lock(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path), *t = NULL, *r = NULL;
    /* in this process: a second writer handle is refused too */
    assert_int_equal(store_open(path, 0, &t, err), LD_EBUSY);
    assert_null(t);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
    if (!strstr(err, want) || !strstr(err, "in use by another lossd"))
        fail_msg("lock message: %s (want %s)", err, want);
    /* another process */
    pid_t pid = fork();
    if (pid == 0) {
        Store *c = NULL;
        char e2[LD_ERR_MAX];
        int rc = store_open(path, 0, &c, e2);
        _exit(rc == LD_EBUSY && strstr(e2, want) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* readers are welcome while the writer holds the lock, and see committed rows */
    int64_t job = add_job(s, NULL);
    OK(store_open(path, STORE_READONLY, &r, E));
    cJSON *o = NULL;
    OK(store_job_get(r, job, &o, E));
    cJSON_Delete(o);
    assert_int_equal(store_job_set_state(r, job, "running", NULL, err), LD_EPERM);
    assert_int_equal(store_begin(r, err), LD_EPERM);
    store_close(r);
    store_close(s);
    OK(store_open(path, 0, &t, E)); /* released on close */
    store_close(t);
}

/* A database at schema version 1 with data is migrated on open, keeping the data. */
static void test_migration(void **state)
{
    char path[300], err[LD_ERR_MAX];
    newpath(path, sizeof path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *emsg = NULL;
    int rc = sqlite3_exec(db, store_migration_sql(0), NULL, NULL, &emsg);
    if (rc != SQLITE_OK)
        fail_msg("migration 1: %s", emsg);
    rc = sqlite3_exec(db,
                      "INSERT INTO jobs(id, spec, created) VALUES(1, '{}', 0);"
                      "INSERT INTO tasks(id, hash, family, name, created) VALUES(1, 5, 'classification', 'digits', 0);"
                      "INSERT INTO candidates(id, job_id, cand, expr, hash, created) VALUES(1, 1, 1, 'ce', 77, 0);"
                      "INSERT INTO evaluations(job_id, seq, candidate_id, task_id, expr_hash, seed, steps, status, val, created)"
                      "  VALUES(1, 0, 1, 1, 77, 1, 10, 'ok', 0.5, 0);"
                      "PRAGMA user_version = 1;",
                      NULL, NULL, &emsg);
    if (rc != SQLITE_OK)
        fail_msg("v1 data: %s", emsg);
    sqlite3_close(db);

    Store *s = NULL;
    OK(store_open(path, 0, &s, E));
    int found = 0;
    EvalResult r;
    OK(store_eval_get_seq(s, 1, 0, &found, &r, E));
    assert_int_equal(found, 1);
    NEAR(r.val, 0.5, 1e-12);
    OK(store_job_set_state(s, 1, "expired", NULL, E)); /* version 7's state, on a v1 table */
    store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version), "
                           "(SELECT count(*) FROM results), "
                           "(SELECT n FROM result_stats WHERE expr_hash = 77), "
                           "(SELECT count(*) FROM sqlite_master WHERE name = 'evaluations_family'), "
                           "(SELECT state || ' ' || (finished IS NOT NULL) FROM jobs WHERE id = 1)",
                       -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), store_schema_version());
    assert_int_equal(sqlite3_column_int(st, 1), 1); /* the results view */
    assert_int_equal(sqlite3_column_int(st, 2), 1); /* result_stats backfilled */
    assert_int_equal(sqlite3_column_int(st, 3), 0); /* version 2's index dropped by version 3 */
    assert_string_equal((const char *)sqlite3_column_text(st, 4), "expired 1");
    sqlite3_finalize(st);
    /* a database from a newer lossd is refused, untouched */
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(store_open(path, 0, &s, err), LD_ESTATE);
    if (!strstr(err, "99"))
        fail_msg("newer schema message: %s", err);
    assert_int_equal(store_open(path, STORE_READONLY, &s, err), LD_ESTATE);

    /* a read-only handle does not migrate an old database */
    newpath(path, sizeof path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_exec(db, store_migration_sql(0), NULL, NULL, NULL);
    sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(store_open(path, STORE_READONLY, &s, err), LD_ESTATE);
    assert_non_null(strstr(err, "older"));

    /* a migration that fails leaves the database at its old version */
    newpath(path, sizeof path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_exec(db, store_migration_sql(0), NULL, NULL, NULL);
    sqlite3_exec(db, "CREATE TABLE results(x); PRAGMA user_version = 1", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(store_open(path, 0, &s, err), LD_EIO);
    if (!strstr(err, "migrate to schema version 2"))
        fail_msg("failed migration message: %s", err);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version), "
                           "(SELECT count(*) FROM sqlite_master WHERE name = 'evaluations_family')",
                       -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_open_errors(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = NULL;
    assert_int_equal(store_open("", 0, &s, err), LD_EINVAL);
    assert_int_equal(store_open("/nonexistent-dir-lossd/x.db", 0, &s, err), LD_EIO);
    if (!strstr(err, "/nonexistent-dir-lossd/x.db"))
        fail_msg("bad path message: %s", err);
    assert_int_equal(store_open("/nonexistent-dir-lossd/x.db", STORE_READONLY, &s, err), LD_EIO);
    assert_null(s);

    /* garbage where a database should be */
    newpath(path, sizeof path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    assert_int_equal(store_open(path, 0, &s, err), LD_EIO);
    if (!strstr(err, "not a database") || !strstr(err, path))
        fail_msg("garbage file message: %s", err);
    assert_int_equal(store_open(path, STORE_READONLY, &s, err), LD_EIO);

    /* a directory where a database should be */
    newpath(path, sizeof path);
    assert_int_equal(mkdir(path, 0700), 0);
    int rc = store_open(path, 0, &s, err);
    if (rc == LD_OK)
        fail_msg("opening a directory succeeded");
    assert_null(s);

    /* a database whose pages were overwritten: a clear error, not a crash */
    Store *w = open_new(path, sizeof path);
    OK(store_begin(w, E));
    for (int i = 0; i < 200; i++)
        add_job(w, NULL);
    OK(store_commit(w, E));
    store_close(w);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    for (off_t off = 4096; off < sb.st_size; off += 4096) /* every page but the header's */
        assert_int_equal(pwrite(fd, junk, sizeof junk, off), (ssize_t)sizeof junk);
    close(fd);
    rc = store_open(path, 0, &s, err);
    if (rc == LD_OK) {
        cJSON *o = NULL;
        rc = store_job_list(s, NULL, 0, &o, err);
        cJSON_Delete(o);
        store_close(s);
    }
    if (rc == LD_OK)
        fail_msg("reading a corrupted database succeeded");
    if (!strstr(err, "malformed") && !strstr(err, "not a database"))
        fail_msg("corrupt database message: %s", err);

    /* a directory nobody may create files in: sysfs refuses even root */
    rc = store_open("/sys/lossd_test_store.db", 0, &s, err);
    if (rc == LD_OK)
        fail_msg("opening a database in /sys succeeded");
    if (!strstr(err, "/sys/lossd_test_store.db"))
        fail_msg("read-only place message: %s", err);
    assert_null(s);

    /* a read-only directory (meaningless for root, who may write anywhere) */
    if (geteuid() != 0) {
        char dir[280];
        snprintf(dir, sizeof dir, "%.250s/ro", tmpdir);
        assert_int_equal(mkdir(dir, 0500), 0);
        snprintf(path, sizeof path, "%s/x.db", dir);
        rc = store_open(path, 0, &s, err);
        assert_int_equal(rc, LD_EPERM);
        assert_non_null(strstr(err, "x.db"));
    }
}

/* The disk fills up under a child (RLIMIT_FSIZE): its writes fail with a clear error, not a
 * crash, and everything it committed before is there when the parent reopens. */
static void test_disk_full(void **state)
{
    char path[300];
    newpath(path, sizeof path);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        Store *s = NULL;
        char err[LD_ERR_MAX];
        int64_t job = 0, task = 0, committed = 0;
        close(pipefd[0]);
        cJSON *spec = cJSON_CreateObject();
        StoreJobNew j = {.spec = spec};
        if (store_open(path, 0, &s, err) || store_job_insert(s, &j, &job, NULL, err) ||
            store_task_upsert(s, 5, "classification", "digits", "accuracy", 1, NULL, &task, err) ||
            store_candidate_put(s, job, 1, "ce", 1, 1, NULL, "init", NULL, "classification", NULL, err))
            _exit(30);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 2 * 1024 * 1024, .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(31);
        int rc = LD_OK;
        for (int seq = 0; seq < 100000 && rc == LD_OK; seq++) {
            StoreEvalKey k = {.job_id = job, .seq = seq, .cand = 1, .task_id = task, .seed = 1,
                              .steps = 10};
            EvalResult r = result(0.5, 0.5);
            r.ncurve = EVAL_CURVE_MAX;
            for (int i = 0; i < EVAL_CURVE_MAX; i++)
                r.curve[i] = (EvalCurvePoint){.step = i, .loss = 1.0f / (float)(i + 3), .val = 0.123456f};
            rc = store_eval_put(s, &k, &r, NULL, err);
            if (rc == LD_OK)
                committed++;
        }
        /* the failure is named, and the handle still answers reads */
        int64_t n = -1;
        int named = rc == LD_EIO && strstr(err, "insert evaluation") &&
                    (strstr(err, "full") || strstr(err, "I/O"));
        fprintf(stderr, "disk full after %lld evaluations: rc %d: %s\n", (long long)committed, rc,
                err);
        if (store_evals_count(s, job, &n, err) != LD_OK || n != committed)
            named = 0;
        if (write(pipefd[1], &committed, sizeof committed) != sizeof committed)
            _exit(32);
        store_close(s);
        _exit(named ? 0 : 33);
    }
    close(pipefd[1]);
    int64_t committed = -1;
    assert_int_equal(read(pipefd[0], &committed, sizeof committed), (ssize_t)sizeof committed);
    close(pipefd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("disk-full child: status %d (33: error not named or reads failed)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (committed < 10)
        fail_msg("disk-full child committed only %lld evaluations", (long long)committed);
    Store *s = NULL;
    OK(store_open(path, 0, &s, E));
    int64_t n = -1;
    OK(store_evals_count(s, 1, &n, E));
    if (n != committed)
        fail_msg("after disk full: %lld evaluations, the child committed %lld", (long long)n,
                 (long long)committed);
    put_eval(s, 1, committed, 1, 1, 2, 10, 0.6, 0.6); /* and writing works again */
    store_close(s);
}

/* A reader process polls while the writer commits: in WAL mode neither waits for the other,
 * and the reader sees a growing, never partial, job count. */
static void test_reader_during_writes(void **state)
{
    char path[300];
    Store *s = open_new(path, sizeof path);
    add_job(s, NULL);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        Store *r = NULL;
        char err[LD_ERR_MAX], go;
        close(pipefd[1]);
        if (read(pipefd[0], &go, 1) != 1 || store_open(path, STORE_READONLY, &r, err) != LD_OK)
            _exit(20);
        int last = 0, bad = 0;
        for (int i = 0; i < 300 && !bad; i++) {
            cJSON *o = NULL;
            if (store_job_list(r, NULL, 0, &o, err) != LD_OK) {
                fprintf(stderr, "reader: %s\n", err);
                bad = 21;
            } else {
                int n = cJSON_GetArraySize(o);
                if (n < last || n % 2 != 1) /* jobs are added two per transaction */
                    bad = 22;
                last = n;
            }
            cJSON_Delete(o);
        }
        store_close(r);
        _exit(bad);
    }
    close(pipefd[0]);
    assert_int_equal(write(pipefd[1], "g", 1), 1);
    for (int i = 0; i < 200; i++) {
        OK(store_begin(s, E));
        add_job(s, NULL);
        add_job(s, NULL);
        OK(store_commit(s, E));
    }
    close(pipefd[1]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("reader exited with status %d (21: read error, 22: partial or shrinking view)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    store_close(s);
}

/* The queries that must stay fast use their indexes (a dropped or renamed index shows here
 * before it shows as a slow leaderboard). */
static void test_query_plans(void **state)
{
    char path[300], err[LD_ERR_MAX];
    Store *s = open_new(path, sizeof path);
    const char *want[][2] = {
        {"LB_JOB", "USING INDEX candidates_rank"},
        {"LB_CAND_TASKS", "USING INDEX evaluations_cand"},
        {"LB_FAMILY", "SEARCH rs USING PRIMARY KEY (task_id=?)"},
        {"EVAL_LOOKUP", "USING INDEX evaluations_result"},
        {"EVAL_BY_SEQ", "USING INDEX sqlite_autoindex_evaluations_1"},
        {"JOB_IN_STATE", "USING COVERING INDEX jobs_state"},
        {"JOB_LIST_STATE", "USING INDEX jobs_state"},
        {"EVAL_LOOKUP", "evaluations_result (expr_hash=? AND task_id=? AND seed=? AND steps=?)"},
        {"EVENTS_SINCE", "USING INTEGER PRIMARY KEY"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *plan = NULL;
        OK(store_query_plan(s, want[i][0], &plan, E));
        if (!strstr(plan, want[i][1]))
            fail_msg("%s: plan lacks \"%s\":\n%s", want[i][0], want[i][1], plan);
        free(plan);
    }
    char *plan = NULL;
    assert_int_equal(store_query_plan(s, "NO_SUCH", &plan, err), LD_ENOTFOUND);
    assert_null(plan);
    store_close(s);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_fresh_and_reopen),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_evaluations),
        cmocka_unit_test(test_leaderboard_job),
        cmocka_unit_test(test_leaderboard_family_and_warm),
        cmocka_unit_test(test_counts_and_memos),
        cmocka_unit_test(test_search_state),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_crash_sigkill),
        cmocka_unit_test(test_crash_exit),
        cmocka_unit_test(test_writer_lock),
        cmocka_unit_test(test_migration),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_reader_during_writes),
        cmocka_unit_test(test_query_plans),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
