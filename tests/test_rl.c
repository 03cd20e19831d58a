/* test_rl.c: the rl family: tasks load from the one spec reader (and refuse bad keys and
 * environments), a run is deterministic in its seed and learns CartPole well above a random
 * policy, the rl variables and terms have exact gradients (central differences) and are refused
 * in other families, as other families' terms are in rl. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../evaluator/eval.h"
#include "../evaluator/rollout.h"
#include "../lang/lossprog.h"
#include "eval_util.h"

static void test_load_and_defaults(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"data\": \"builtin:cartpole\"}", err);
    assert_non_null(t);
    assert_int_equal(task_family(t), FAM_RL);
    assert_string_equal(task_metric(t), "return");
    assert_int_equal(task_higher_better(t), 1);
    assert_int_equal(task_steps(t), 400);
    task_free(t);
    t = task_from_json("{\"data\": \"builtin:acrobot\", \"family\": \"rl\", \"metric\": \"steps_to_threshold\", "
                       "\"rl\": {\"gamma\": 0.98, \"lambda\": 1, \"envs\": 4, \"rollout\": 8, \"val_episodes\": 3, "
                       "\"test_episodes\": 5, \"threshold\": -150}}",
                       err);
    if (!t) printf("%s\n", err);
    assert_non_null(t);
    assert_int_equal(task_higher_better(t), 0);
    /* the normalised spec reads back to the same task */
    cJSON *n = task_spec(t);
    Task *t2 = NULL;
    assert_int_equal(task_load(n, NULL, &t2, err), LD_OK);
    assert_true(task_hash(t2) == task_hash(t));
    cJSON_Delete(n);
    task_free(t2);
    task_free(t);
}

static void test_bad_specs(void **state) {
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"data\": \"builtin:cartpole\", \"rl\": {\"gama\": 0.9}}", "did you mean 'gamma'"},
        {"{\"data\": \"builtin:cartpole\", \"rl\": {\"gamma\": 1.5}}", "rl.gamma: 1.5 is out of range"},
        {"{\"data\": \"builtin:cartpole\", \"rl\": {\"envs\": 2.5}}", "expected an integer"},
        {"{\"data\": \"builtin:cartpole\", \"train\": {\"batch\": 32}}", "only classification"},
        {"{\"data\": \"builtin:digits\", \"family\": \"rl\"}", "not an environment"},
        {"{\"data\": \"builtin:cartpole\", \"family\": \"classification\"}", "family must be rl"},
        {"{\"data\": \"builtin:mountaincar\"}", "unknown built-in"},
        {"{\"data\": \"builtin:digits\", \"rl\": {}}", "only rl tasks read it"},
        {"{\"data\": \"builtin:cartpole\", \"metric\": \"accuracy\"}", "not a rl metric"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Task *t = task_from_json(cases[i].json, err);
        if (t || !strstr(err, cases[i].want)) printf("case %zu: %s -> '%s', want '%s'\n", i, cases[i].json, err, cases[i].want);
        assert_null(t);
        assert_non_null(strstr(err, cases[i].want));
    }
}

static void test_deterministic(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"data\": \"builtin:cartpole\", \"rl\": {\"val_episodes\": 3, \"test_episodes\": 4}}", err);
    assert_non_null(t);
    EvalResult a = run_loss(t, "a2c - 0.01*ent + 0.5*td2", 3, 40);
    EvalResult b = run_loss(t, "a2c - 0.01*ent + 0.5*td2", 3, 40);
    EvalResult c = run_loss(t, "a2c - 0.01*ent + 0.5*td2", 4, 40);
    assert_true(a.ok && b.ok && c.ok);
    printf("seed 3: val %g test %g loss %.9g; seed 4: loss %.9g\n", a.val, a.test, a.final_loss, c.final_loss);
    assert_true(a.val == b.val && a.test == b.test && a.final_loss == b.final_loss);
    assert_true(a.final_loss != c.final_loss);
    assert_int_equal(a.steps, 40);
    assert_int_equal(a.nextra, 2);
    assert_string_equal(a.extra[0].name, "return");
    assert_string_equal(a.extra[1].name, "steps_to_threshold");
    /* not reached within 40 x 128 steps: the number of environment steps trained */
    assert_true(a.extra[1].val == 40 * 128);
    /* a return is at least 1 step and at most the time limit */
    assert_true(a.val >= 1 && a.val <= 500 && a.test >= 1 && a.test <= 500);
    task_free(t);
}

/* The textbook actor-critic learns: random CartPole lasts about 22 steps. */
static void test_learns(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"data\": \"builtin:cartpole\"}", err);
    assert_non_null(t);
    EvalResult r = run_loss(t, "a2c - 0.01*ent + 0.5*td2", 2, 0);
    printf("a2c baseline, seed 2, 400 updates: val %.1f test %.1f, steps_to_threshold %g, %.0f ms\n", r.val,
           r.test, r.extra[1].val, r.wall_ms);
    assert_true(r.ok);
    assert_true(r.val > 100 && r.test > 100);
    task_free(t);
}

static void test_vocabulary(void **state) {
    (void)state;
    static const struct {
        const char *loss;
        int fam;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"reinforce - 0.01*ent + 0.5*td2", FAM_RL, NULL},
        {"(1 - t)*a2c - 0.01*(1 - t)*entropy + 0.5*td2", FAM_RL, NULL},
        {"-logp*adv + 0.5*(ret - v)^2", FAM_RL, NULL},
        {"reinforce", FAM_CLASSIFICATION, "term 'reinforce' is not available for classification tasks"},
        {"ce + td2", FAM_CLASSIFICATION, "term 'td2' is not available for classification tasks"},
        {"mse + 0.1*logp", FAM_REGRESSION, "variable 'logp' is not available for regression tasks"},
        {"ce", FAM_RL, "term 'ce' is not available for rl tasks"},
        {"a2c + mse", FAM_RL, "term 'mse' is not available for rl tasks"},
        {"a2c + pt", FAM_RL, "variable 'pt' is not available for rl tasks"},
        {"ret + adv", FAM_RL, "does not depend on the model's output"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(cases[i].loss, err);
        assert_non_null(e);
        int rc = expr_check(e, cases[i].fam, err);
        if ((rc == LD_OK) != (cases[i].want == NULL) || (cases[i].want && !strstr(err, cases[i].want)))
            printf("case %zu: %s -> rc %d '%s'\n", i, cases[i].loss, rc, err);
        if (cases[i].want) assert_non_null(strstr(err, cases[i].want));
        else assert_int_equal(rc, LD_OK);
        expr_free(e);
    }
    LangVocab v = lang_vocab(FAM_RL);
    assert_true(v.vars & (1u << VAR_LOGP));
    assert_false(v.vars & (1u << VAR_Z));
    assert_true(v.terms & (1u << TERM_A2C));
    assert_true(v.terms & (1u << TERM_ENTROPY));
    assert_false(lang_vocab(FAM_CLASSIFICATION).terms & (1u << TERM_TD2));
}

/* Gradients of the loss program with respect to the fed variables against central differences
 * in double precision of the program's own forward (the program runs in float: h = 1e-2 on
 * values of order 1, tolerance 2e-3 relative to the largest gradient). */
#define GB 16
static double loss_at(LossProg *lp, LossIn *in) {
    LossOut o;
    lossprog_run(lp, in, &o);
    return o.loss;
}

static void test_gradients(void **state) {
    (void)state;
    static const char *const losses[] = {
        "reinforce - 0.01*ent + 0.5*td2",
        "a2c - 0.01*entropy + 0.5*td2",
        "-logp*adv + 0.5*(ret - v)^2 - 0.02*(1 - t)*ent",
        "exp(-t)*reinforce + log(1 + td^2) + abs(v)*0.1",
        "tanh(a2c) + sqrt(1 + td2)*0.3 - ent*ent",
        "-logp*advn - 0.01*ent + 0.5*td2",
        "-logp*max(min(advn, 2), -2) + log(1 + td2) + advn*v",
    };
    float val[VAR_COUNT][GB];
    LdRng r;
    rng_seed(&r, 11);
    for (int k = 0; k < VAR_COUNT; k++)
        for (int i = 0; i < GB; i++) val[k][i] = (float)rng_normal(&r);
    for (int i = 0; i < GB; i++) {
        val[VAR_LOGP][i] = -0.1f - (float)rng_uniform(&r) * 2; /* log-probabilities */
        val[VAR_ENT][i] = 0.1f + (float)rng_uniform(&r) * 0.6f;
    }
    double worst = 0;
    for (size_t c = 0; c < sizeof losses / sizeof losses[0]; c++) {
        char err[LD_ERR_MAX];
        Expr *e = expr_parse(losses[c], err);
        assert_non_null(e);
        LossProg *lp = NULL;
        assert_int_equal(lossprog_new(e, FAM_RL, GB, 1, 0, &lp, err), LD_OK);
        LossIn in = {.B = GB, .t = 0.3f};
        for (int k = VAR_LOGP; k <= VAR_ENT; k++) in.var[k] = val[k];
        rl_advn(val[VAR_ADVN], val[VAR_ADV], GB);
        in.var[VAR_ADVN] = val[VAR_ADVN];
        LossOut o;
        assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
        float g[VAR_COUNT][GB] = {{0}};
        for (int k = VAR_LOGP; k <= VAR_ENT; k++)
            if (o.g_var[k]) memcpy(g[k], o.g_var[k], sizeof g[k]);
        /* ret and adv are data: no gradient comes back for them */
        assert_null(o.g_var[VAR_RET]);
        assert_null(o.g_var[VAR_ADV]);
        assert_null(o.g_var[VAR_ADVN]); /* advn is data as adv is */
        double gmax = 1e-6, diff = 0;
        for (int k = VAR_LOGP; k <= VAR_ENT; k++)
            for (int i = 0; i < GB; i++) gmax = fmax(gmax, fabs(g[k][i]));
        for (int k = VAR_LOGP; k <= VAR_ENT; k++) {
            if (k == VAR_RET || k == VAR_ADV) continue;
            for (int i = 0; i < GB; i++) {
                float x = val[k][i], h = 1e-2f;
                val[k][i] = x + h;
                double up = loss_at(lp, &in);
                val[k][i] = x - h;
                double down = loss_at(lp, &in);
                val[k][i] = x;
                double fd = (up - down) / (2 * (double)h);
                diff = fmax(diff, fabs(fd - g[k][i]));
            }
        }
        printf("%-50s maxdiff %.2e (max |g| %.2e)\n", losses[c], diff, gmax);
        assert_true(diff <= 2e-3 * gmax + 1e-5);
        worst = fmax(worst, diff / gmax);
        lossprog_free(lp);
        expr_free(e);
    }
    printf("worst relative maxdiff %.2e (tolerance 2e-3)\n", worst);
    /* advn itself: mean 0 and sample standard deviation 1 over the batch, the order kept */
    double m = 0, ss = 0;
    for (int i = 0; i < GB; i++) m += val[VAR_ADVN][i];
    m /= GB;
    for (int i = 0; i < GB; i++) ss += (val[VAR_ADVN][i] - m) * (val[VAR_ADVN][i] - m);
    double sd = sqrt(ss / (GB - 1));
    int order = 1;
    for (int i = 1; i < GB; i++)
        order &= (val[VAR_ADV][i] > val[VAR_ADV][0]) == (val[VAR_ADVN][i] > val[VAR_ADVN][0]);
    printf("advn over %d advantages: mean %.2e, sd %.7f, order kept %d\n", GB, m, sd, order);
    assert_true(fabs(m) < 1e-6 && fabs(sd - 1) < 1e-5 && order);
}

/* Each network has its own Adam, whose update does not change when its gradient is scaled: a
 * loss trains exactly as another that differs only in the weight of the policy's part or of the
 * critic's (equal returns to the digit), and the search's gradient signature says so (each
 * group's block scaled to unit length), so the search does not spend evaluations on those
 * weights. The entropy weight, which changes the policy's gradient direction, is not merged;
 * nor are losses reading l2 (one weight decay couples the two networks). */
static void test_group_scale(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"data\": \"builtin:cartpole\", \"rl\": {\"val_episodes\": 4, \"test_episodes\": 4}}", err);
    assert_non_null(t);
    static const char *const same[] = {"a2c - 0.01*ent + td2", "a2c - 0.01*ent + 0.5*td2", "a2c - 0.01*ent + 3*td2",
                                       "2*a2c - 0.02*ent + td2"};
    EvalResult r0 = run_loss(t, same[0], 5, 60);
    enum { N = 256 };
    static float sig[6][N];
    for (int i = 0; i < 4; i++) {
        EvalResult r = run_loss(t, same[i], 5, 60);
        Expr *e = expr_parse(same[i], err);
        assert_int_equal(eval_signature(e, FAM_RL, 1, sig[i], N, err), LD_OK);
        expr_free(e);
        double d = 0;
        for (int k = 0; k < N; k++) d = fmax(d, fabs(sig[i][k] - sig[0][k]));
        printf("%-26s val %.2f test %.2f (first: %.2f %.2f), signature max diff %.2g\n", same[i], r.val, r.test, r0.val,
               r0.test, d);
        assert_true(r.val == r0.val && r.test == r0.test);
        assert_true(d < 1e-6);
    }
    static const char *const other[] = {"a2c - 0.012*ent + td2", "a2c + td2", "a2c - 0.01*ent + td2 + 0.01*l2",
                                        "a2c - 0.01*ent + 0.5*td2 + 0.01*l2"};
    for (int i = 0; i < 4; i++) {
        Expr *e = expr_parse(other[i], err);
        assert_int_equal(eval_signature(e, FAM_RL, 1, sig[4], N, err), LD_OK);
        expr_free(e);
        const float *o = i < 3 ? sig[0] : sig[5];
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < N; k++) {
            ab += (double)sig[4][k] * o[k];
            aa += (double)sig[4][k] * sig[4][k];
            bb += (double)o[k] * o[k];
        }
        double cosine = ab / sqrt(aa * bb);
        printf("%-34s signature cosine 1 - %.3g with %s\n", other[i], 1 - cosine, i < 3 ? same[0] : other[2]);
        assert_true(cosine < 0.9999); /* search.c's SIG_COS: not merged */
        memcpy(sig[5], sig[4], sizeof sig[5]);
    }
    task_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_defaults), cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_vocabulary),
        cmocka_unit_test(test_gradients),         cmocka_unit_test(test_learns),
        cmocka_unit_test(test_group_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
