/* test_prior.c: the learned pre-screen across jobs (search/surrogate.c, store_prior_read): what
 * the store hands over from earlier jobs (first level only, selection tasks only, rejections left
 * out, newest job first), the targets made of it (relative to each job's best reference), the
 * task features, and a fit on a stored database that recovers known per-task term effects. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../search/internal.h"
#include "../storage/store.h"

static char tmpdir[256];
static char E[LD_ERR_MAX];
#define OK(x)                                                                                     \
    do {                                                                                          \
        int rc_ = (x);                                                                            \
        if (rc_ != LD_OK) fail_msg("%s: %d: %s", #x, rc_, E);                                    \
    } while (0)

/* The four terms added to ce, and their true effects on relative fitness, by task: on the noisy
 * task (30% flipped labels) mae helps; on the clean one it hurts (what the noise x term inputs
 * are for). */
static const char *const term_text[4] = {"mae", "focal(2)", "smooth(0.1)", "hinge"};
static const double eff_noisy[4] = {0.10, -0.05, 0.02, -0.08};
static const double eff_clean[4] = {-0.05, -0.05, 0.02, -0.08};
#define REF_VAL 0.8

static void combo_text(int mask, char *buf, size_t n) {
    snprintf(buf, n, "ce");
    for (int t = 0; t < 4; t++)
        if (mask >> t & 1) snprintf(buf + strlen(buf), n - strlen(buf), " + %s", term_text[t]);
}

static double combo_y(int mask, int clean) {
    double y = 0;
    for (int t = 0; t < 4; t++)
        if (mask >> t & 1) y += clean ? eff_clean[t] : eff_noisy[t];
    return y;
}

static cJSON *task_spec_json(double noise) {
    char b[256];
    snprintf(b, sizeof b, "{\"data\":\"builtin:digits\",\"transform\":{\"label_noise\":%g},"
             "\"data_info\":{\"rows\":1797,\"features\":64}}", noise);
    return cJSON_Parse(b);
}

static int64_t put_task(Store *s, uint64_t hash, const char *name, double noise) {
    int64_t id = 0;
    cJSON *spec = task_spec_json(noise);
    OK(store_task_upsert(s, hash, "classification", name, "accuracy", 1, spec, &id, E));
    cJSON_Delete(spec);
    return id;
}

static int64_t put_job(Store *s) {
    cJSON *spec = cJSON_Parse("{\"name\":\"earlier\"}");
    StoreJobNew j = {.spec = spec, .name = "earlier", .seed = 1, .budget_evals = 100};
    int64_t id = 0;
    OK(store_job_insert(s, &j, &id, NULL, E));
    cJSON_Delete(spec);
    return id;
}

static void put_run(Store *s, int64_t job, int64_t *seq, int64_t cand, int64_t task, int steps,
                    WorkStatus st, double val, const char *error) {
    WorkOutcome o;
    memset(&o, 0, sizeof o);
    o.job_id = job;
    o.seq = *seq;
    o.status = st;
    o.res.ok = st == WORK_OK;
    snprintf(o.res.metric, sizeof o.res.metric, "accuracy");
    o.res.val = st == WORK_OK ? val : NAN;
    o.res.test = o.res.val;
    o.res.steps = steps;
    if (error) snprintf(o.res.error, sizeof o.res.error, "%s", error);
    StoreEvalKey k = {.job_id = job, .seq = (*seq)++, .cand = cand, .task_id = task, .seed = 11 + (uint64_t)*seq,
                      .steps = steps};
    OK(store_outcome_put(s, &k, &o, NULL, E));
}

static void put_cand(Store *s, int64_t job, int64_t cand, const char *expr, const char *op) {
    OK(store_candidate_put(s, job, cand, expr, ld_hash64(expr, strlen(expr)), 3, NULL, op, NULL,
                           "classification", NULL, E));
}

/* One earlier job on one task: ce (its baseline) at REF_VAL, focal(2) (a panel loss) just below
 * it, then every combination of the four terms (but skip_mask) at REF_VAL x (1 + its effect),
 * two seeds each at 50 steps; a top level at 200 steps for a few; one failed candidate, one
 * rejected before training; and a holdout task that must not be read. */
static void put_earlier_job(Store *s, uint64_t task_hash, const char *name, double noise, int clean,
                            int skip_mask, int64_t holdout_task) {
    int64_t job = put_job(s), task = put_task(s, task_hash, name, noise), seq = 0, cand = 0;
    OK(store_job_add_task(s, job, 0, task, 0, E));
    OK(store_job_add_task(s, job, 1, holdout_task, 1, E));
    put_cand(s, job, cand, "ce", "baseline");
    for (int k = 0; k < 2; k++) put_run(s, job, &seq, cand, task, 50, WORK_OK, REF_VAL, NULL);
    put_run(s, job, &seq, cand, task, 200, WORK_OK, 0.95, NULL);
    put_run(s, job, &seq, cand, holdout_task, 200, WORK_OK, 0.5, NULL);
    put_cand(s, job, ++cand, "focal(2)", "panel");
    for (int k = 0; k < 2; k++) put_run(s, job, &seq, cand, task, 50, WORK_OK, REF_VAL - 0.1, NULL);
    for (int mask = 1; mask < 16; mask++) {
        if (mask == skip_mask) continue;
        char text[128];
        combo_text(mask, text, sizeof text);
        put_cand(s, job, ++cand, text, "mutate");
        double v = REF_VAL * (1 + combo_y(mask, clean));
        /* the two seeds straddle the value: their mean is it */
        put_run(s, job, &seq, cand, task, 50, WORK_OK, v - 0.001, NULL);
        put_run(s, job, &seq, cand, task, 50, WORK_OK, v + 0.001, NULL);
        if (mask % 5 == 0) put_run(s, job, &seq, cand, task, 200, WORK_OK, 0.99, NULL);
    }
    put_cand(s, job, ++cand, "ce + 3*hinge", "mutate");
    put_run(s, job, &seq, cand, task, 50, WORK_FAILED, NAN, "non-finite loss at step 7");
    put_cand(s, job, ++cand, "ce - ce", "mutate");
    put_run(s, job, &seq, cand, task, 50, WORK_REJECTED, NAN, "gradient is zero on the probe batch");
}

#define NOISY_HASH 0x1111ull
#define CLEAN_HASH 0x2222ull

static void test_prior_store_and_targets(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/prior.db", tmpdir);
    Store *s = NULL;
    OK(store_open(path, STORE_NOSYNC, &s, E));
    int64_t hold = put_task(s, 0x3333, "wine-holdout", 0.3);
    put_earlier_job(s, CLEAN_HASH, "digits-clean", 0, 1, 0, hold);  /* job 1 */
    put_earlier_job(s, NOISY_HASH, "digits-noisy", 0.3, 0, 15, hold); /* job 2: all four held out */

    cJSON *prior = NULL;
    OK(store_prior_read(s, "classification", 0, 1000, &prior, E));
    const cJSON *tasks = cJSON_GetObjectItem(prior, "tasks"), *rows = cJSON_GetObjectItem(prior, "rows");
    /* per job: ce, focal(2), the combinations, the failed one; no rejection, no holdout row */
    int want_rows = (2 + 14 + 1) + (2 + 15 + 1);
    printf("# prior: %d tasks, %d rows (want 2, %d)\n", cJSON_GetArraySize(tasks), cJSON_GetArraySize(rows),
           want_rows);
    assert_int_equal(cJSON_GetArraySize(tasks), 2);
    assert_int_equal(cJSON_GetArraySize(rows), want_rows);
    const cJSON *r0 = cJSON_GetArrayItem(rows, 0); /* the newest job first: ce at 50 steps */
    assert_int_equal(cJSON_GetArrayItem(r0, 0)->valueint, 2);
    assert_int_equal(cJSON_GetArrayItem(r0, 2)->valueint, 50);
    assert_int_equal(cJSON_GetArrayItem(r0, 3)->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(r0, 4)->valueint, 2);
    assert_true(fabs(cJSON_GetArrayItem(r0, 6)->valuedouble - REF_VAL) < 1e-12);
    assert_string_equal(cJSON_GetArrayItem(r0, 7)->valuestring, "ce");
    const cJSON *t0 = cJSON_GetArrayItem(tasks, cJSON_GetArrayItem(r0, 1)->valueint);
    assert_string_equal(cJSON_GetObjectItem(t0, "hash")->valuestring, "0000000000001111");
    const cJSON *r;
    int failed_rows = 0;
    cJSON_ArrayForEach(r, rows) {
        const char *ex = cJSON_GetArrayItem(r, 7)->valuestring;
        if (!strcmp(ex, "ce - ce")) fail_msg("a rejection before training was read as a result");
        failed_rows += cJSON_GetArrayItem(r, 5)->valueint > 0;
        if (cJSON_GetArrayItem(r, 2)->valueint != 50) fail_msg("%s: read at %d steps", ex, cJSON_GetArrayItem(r, 2)->valueint);
    }
    assert_int_equal(failed_rows, 2);
    /* the limit keeps the newest job's rows */
    cJSON *few = NULL;
    OK(store_prior_read(s, "classification", 0, 5, &few, E));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(few, "rows")), 5);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(few, "rows"), 4), 0)->valueint, 2);
    cJSON_Delete(few);
    /* ... unless the new job's task is named: its rows first (the older job's here) */
    OK(store_prior_read(s, "classification", CLEAN_HASH, 5, &few, E));
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(few, "rows"), 4), 0)->valueint, 1);
    cJSON_Delete(few);
    cJSON *none = NULL;
    OK(store_prior_read(s, "regression", 0, 1000, &none, E));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(none, "rows")), 0);
    cJSON_Delete(none);

    /* targets: relative to each job's best reference (ce at 0.8 beats focal(2)); the failed run
     * at the clamp; weight 1 on the task and steps "here" (the noisy one at 50), else 0.5 */
    uint64_t here_hash = NOISY_HASH;
    int here_steps = 50;
    SurrPriorRow *pr = NULL;
    int n = 0;
    OK(surr_prior_rows(prior, &here_hash, &here_steps, 1, &pr, &n, E));
    assert_int_equal(n, want_rows);
    double worst = 0;
    int here = 0;
    for (int i = 0; i < n; i++) {
        int clean = pr[i].tf[SURR_T_NOISE] == 0;
        here += pr[i].w == 1;
        if (pr[i].w != (clean ? SURR_PRIOR_W : 1)) fail_msg("row %d (%s): weight %g", i, pr[i].expr, pr[i].w);
        double want;
        if (!strcmp(pr[i].expr, "ce")) want = 0;
        else if (!strcmp(pr[i].expr, "focal(2)")) want = -0.1 / REF_VAL;
        else if (!strcmp(pr[i].expr, "ce + 3*hinge")) want = SURR_CLAMP;
        else {
            int mask = 0;
            for (int t = 0; t < 4; t++) mask |= (strstr(pr[i].expr, term_text[t]) != NULL) << t;
            want = combo_y(mask, clean);
        }
        if (fabs(pr[i].y - want) > worst) worst = fabs(pr[i].y - want);
        if (fabs(pr[i].y - want) > 1e-9) fail_msg("row %d (%s): target %.12f, want %.12f", i, pr[i].expr, pr[i].y, want);
    }
    printf("# targets: %d rows, %d here, worst error %.2g\n", n, here, worst);
    assert_int_equal(here, 2 + 14 + 1);
    /* task features from the stored spec */
    double tf[SURR_NTASKF];
    surr_task_features(cJSON_GetObjectItem(t0, "spec"), 50, tf);
    assert_true(fabs(tf[SURR_T_ROWS] - log1p(1797)) < 1e-12);
    assert_true(fabs(tf[SURR_T_INPUTS] - log1p(64)) < 1e-12);
    assert_true(fabs(tf[SURR_T_STEPS] - log(50)) < 1e-12);
    assert_true(fabs(tf[SURR_T_NOISE] - 0.3) < 1e-12);
    assert_true(tf[SURR_T_IMBALANCE] == 0 && tf[SURR_T_OUTLIERS] == 0);
    cJSON *imb = cJSON_Parse("{\"transform\":{\"imbalance\":0.1,\"outliers\":0.2,\"subsample\":0.5},"
                             "\"data_info\":{\"rows\":1000}}");
    surr_task_features(imb, 100, tf);
    assert_true(fabs(tf[SURR_T_IMBALANCE] - 0.9) < 1e-12 && fabs(tf[SURR_T_OUTLIERS] - 0.2) < 1e-12);
    assert_true(fabs(tf[SURR_T_ROWS] - log1p(500)) < 1e-12);
    cJSON_Delete(imb);

    /* The fit on the stored rows (no signatures here: shape and task features): the noisy task's
     * term effects for the combination it never saw (all four terms), learned from its other 14
     * combinations and the clean task's 15 (whose mae effect differs: the noise x term inputs). */
    double *X = calloc((size_t)n * SURR_NFEAT, sizeof *X), *y = calloc((size_t)n, sizeof *y),
           *w = calloc((size_t)n, sizeof *w);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (pr[i].y == SURR_CLAMP) continue; /* the failed run: not part of the linear relation */
        Expr *e = expr_parse(pr[i].expr, E);
        if (!e) fail_msg("%s: %s", pr[i].expr, E);
        surr_features(e, NULL, NULL, 0, 0, pr[i].tf, X + (size_t)m * SURR_NFEAT);
        y[m] = pr[i].y;
        w[m++] = pr[i].w;
        expr_free(e);
    }
    double here_tf[SURR_NTASKF], clean_tf[SURR_NTASKF], x[SURR_NFEAT];
    cJSON *cs = task_spec_json(0), *ns = task_spec_json(0.3);
    surr_task_features(ns, 50, here_tf);
    surr_task_features(cs, 50, clean_tf);
    Surrogate mod;
    OK(surr_fit(&mod, X, y, w, m, here_tf, 1e-7));
    char text[128];
    combo_text(15, text, sizeof text);
    Expr *all = expr_parse(text, E);
    surr_features(all, NULL, NULL, 0, 0, here_tf, x);
    double got = surr_predict(&mod, x), want = combo_y(15, 0);
    surr_features(all, NULL, NULL, 0, 0, clean_tf, x);
    double got_clean = surr_predict(&mod, x), want_clean = combo_y(15, 1);
    printf("# all four terms: predicted %.5f here (true %.5f), %.5f on the clean task (true %.5f); "
           "residual sd %.2g over %d rows\n", got, want, got_clean, want_clean, mod.resid_sd, m);
    if (fabs(got - want) > 2e-3) fail_msg("here: predicted %.5f, true %.5f", got, want);
    if (fabs(got_clean - want_clean) > 2e-3) fail_msg("clean: predicted %.5f, true %.5f", got_clean, want_clean);
    assert_true(mod.resid_sd < 1e-3);
    /* without the task features and their interactions (every row as if here) the two tasks'
     * mae effects average out, and the prediction misses by more */
    for (int i = 0; i < m; i++) memcpy(X + (size_t)i * SURR_NFEAT + SURR_F_TASK, here_tf, sizeof here_tf);
    Surrogate flat;
    OK(surr_fit(&flat, X, y, w, m, here_tf, 1e-7));
    surr_features(all, NULL, NULL, 0, 0, here_tf, x);
    double got_flat = surr_predict(&flat, x);
    printf("# without task features: predicted %.5f (true %.5f), residual sd %.3f\n", got_flat, want, flat.resid_sd);
    assert_true(fabs(got_flat - want) > 0.02);
    expr_free(all);
    cJSON_Delete(cs);
    cJSON_Delete(ns);
    free(X);
    free(y);
    free(w);
    surr_prior_free(pr, n);

    /* shape errors are named */
    cJSON *bad = cJSON_Parse("{\"tasks\":[],\"rows\":[[1,0,50,0,1,0,0.5,\"ce\"]]}");
    assert_int_equal(surr_prior_rows(bad, NULL, NULL, 0, &pr, &n, E), LD_EINVAL);
    printf("# %s\n", E);
    assert_non_null(strstr(E, "rows[0]"));
    cJSON_Delete(bad);
    cJSON_Delete(prior);
    store_close(s);
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_prior.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_store_and_targets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
