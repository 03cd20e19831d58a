/* test_deploy.c: deployment-aware fitness (the task key deploy.precision, applied at the one
 * trainer's precision hook): a run at int8 trains exactly as at fp32 (its accuracy_fp32 equals the
 * fp32 run's accuracy), its deployed accuracy moves by a plausible amount, and equals the
 * quantiser's NumPy reference path (tests/gen_quant_ref.py's forward_int8) on the same trained
 * weights and calibration rows, run by tests/deploy_ref.py; fp16 / bf16 / int8 on every family
 * with a deployable model, quantisation-aware training, refusals of an unknown precision and of
 * qat where it does not apply. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../evaluator/internal.h"
#include "../evaluator/mlp.h"
#include "../evaluator/quant.h"

#define PY "/usr/bin/python3"

static Task *load(const char *json, char *err) {
    cJSON *s = cJSON_Parse(json);
    assert_non_null(s);
    Task *t = NULL;
    int rc = task_load(s, NULL, &t, err);
    cJSON_Delete(s);
    return rc == LD_OK ? t : NULL;
}

static const EvalMetric *metric(const EvalResult *r, const char *name) {
    for (int i = 0; i < r->nextra; i++)
        if (!strcmp(r->extra[i].name, name)) return &r->extra[i];
    return NULL;
}

static void write_floats(FILE *f, const char *name, const float *x, size_t n) {
    fprintf(f, "\"%s\": [", name);
    for (size_t k = 0; k < n; k++) fprintf(f, "%s%.9g", k ? "," : "", x[k]);
    fprintf(f, "],\n");
}

static void test_int8_classification(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t8 = load("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
                    "\"int8\"}}",
                    err);
    Task *t32 = load("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}}", err);
    assert_true(t8 && t32);
    assert_true(task_hash(t8) != task_hash(t32)); /* the deployment is part of the task */
    Expr *ce = expr_parse("ce", err);
    EvalOpts o = {.seed = 0};
    size_t P = eval_param_count(t8);
    float *final = calloc(P, sizeof *final);
    EvalTrace tr = {.final = final};
    EvalResult r8, r32;
    assert_int_equal(eval_run_traced(t8, ce, &o, &r8, &tr, err), LD_OK);
    assert_int_equal(eval_run(t32, ce, &o, &r32, err), LD_OK);
    assert_true(r8.ok && r32.ok);
    const EvalMetric *a8 = metric(&r8, "accuracy"), *a32 = metric(&r8, "accuracy_fp32");
    assert_true(a8 && a32);
    printf("digits hidden 16, ce, seed 0: fp32 val %.4f test %.4f; int8 val %.4f test %.4f\n", a32->val, a32->test,
           a8->val, a8->test);
    /* the same training: int8 changes the scoring only */
    assert_true(a32->val == r32.val && a32->test == r32.test);
    /* selection reads the deployed metric */
    assert_true(r8.val == a8->val && r8.test == a8->test);
    /* plausible: within 5 points, and not identical on both splits */
    assert_true(fabs(a8->test - a32->test) <= 0.05 && fabs(a8->val - a32->val) <= 0.05);
    assert_true(a8->test != a32->test || a8->val != a32->val);

    /* The NumPy reference on the same weights: the calibration ranges the quantiser computes on
     * the training rows (which the reference also recomputes) and the int8 forward. */
    Mlp m;
    mlp_bind(&m, &t8->model, t8->train.d, task_outputs(t8), final);
    LdArena a = {0};
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(&m, QUANT_INT8, 128) + 4096), LD_OK);
    QuantMlp q;
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, t8->train.x, t8->train.n, 128, &a, err), LD_OK);
    char dir[] = "/tmp/lossd_deploy_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/case.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\n\"dims\": [%d, %d, %d],\n", m.dim[0], m.dim[1], m.dim[2]);
    for (int l = 0; l < m.nlin; l++) {
        char nm[16];
        snprintf(nm, sizeof nm, "w%d", l);
        write_floats(f, nm, m.w[l], (size_t)m.dim[l] * m.dim[l + 1]);
        snprintf(nm, sizeof nm, "b%d", l);
        write_floats(f, nm, m.b[l], (size_t)m.dim[l + 1]);
    }
    write_floats(f, "lo", q.lo, (size_t)m.nlin);
    write_floats(f, "hi", q.hi, (size_t)m.nlin);
    write_floats(f, "calib", t8->train.x, (size_t)t8->train.n * t8->train.d);
    const Dataset *sp[2] = {&t8->val, &t8->test};
    const char *nm[2] = {"val", "test"};
    for (int s = 0; s < 2; s++) {
        char k[16];
        snprintf(k, sizeof k, "%s_x", nm[s]);
        write_floats(f, k, sp[s]->x, (size_t)sp[s]->n * sp[s]->d);
        fprintf(f, "\"%s_y\": [", nm[s]);
        for (int i = 0; i < sp[s]->n; i++) fprintf(f, "%s%d", i ? "," : "", sp[s]->label[i]);
        fprintf(f, "],\n");
    }
    fprintf(f, "\"act\": \"%s\"\n}\n", m.act == ACT_RELU ? "relu" : "tanh");
    fclose(f);
    snprintf(cmd, sizeof cmd, PY " tests/deploy_ref.py %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512] = "";
    double rv = -1, rt = -1, dr = -1;
    while (fgets(line, sizeof line, p)) {
        printf("reference: %s", line);
        sscanf(line, "val %lf test %lf range_rel %lf", &rv, &rt, &dr);
    }
    assert_int_equal(pclose(p), 0);
    printf("int8 accuracy: lossd val %.6f test %.6f, NumPy reference val %.6f test %.6f\n", a8->val, a8->test, rv,
           rt);
    assert_true(rv == a8->val && rt == a8->test);
    assert_true(dr >= 0 && dr < 1e-5); /* the ranges agree with NumPy's own calibration */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
    arena_free(&a);
    free(final);
    expr_free(ce);
    task_free(t8);
    task_free(t32);
}

/* Every precision on the families that deploy a model; fp16/bf16 stay close to fp32. */
static void test_precisions(void **state) {
    (void)state;
    static const char *const specs[] = {
        "{\"data\": \"builtin:wine\", \"deploy\": {\"precision\": \"%s\"}}",
        "{\"data\": \"builtin:diabetes\", \"deploy\": {\"precision\": \"%s\"}}",
        "{\"data\": \"builtin:cartpole\", \"train\": {\"steps\": 60}, \"rl\": {\"val_episodes\": 3, "
        "\"test_episodes\": 3}, \"deploy\": {\"precision\": \"%s\"}}",
    };
    static const char *const losses[] = {"ce", "mse", "a2c - 0.01*ent + 0.5*td2"};
    static const char *const prec[] = {"fp16", "bf16", "int8"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        for (size_t k = 0; k < 3; k++) {
            char js[512], err[LD_ERR_MAX];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(js, sizeof js, specs[i], prec[k]);
#pragma GCC diagnostic pop
            Task *t = load(js, err);
            if (!t) printf("%s: %s\n", js, err);
            assert_non_null(t);
            Expr *e = expr_parse(losses[i], err);
            EvalOpts o = {.seed = 1};
            EvalResult r;
            assert_int_equal(eval_run(t, e, &o, &r, err), LD_OK);
            if (!r.ok) printf("%s: %s\n", js, r.error);
            assert_true(r.ok);
            char fp[32];
            snprintf(fp, sizeof fp, "%s_fp32", task_metric(t));
            const EvalMetric *d = metric(&r, task_metric(t)), *f32 = metric(&r, fp);
            assert_true(d && f32);
            printf("%-9s %-5s %s: deployed val %.4g test %.4g, fp32 val %.4g test %.4g\n", task_name(t), prec[k],
                   task_metric(t), d->val, d->test, f32->val, f32->test);
            double tol = k < 2 ? 0.02 * fabs(f32->test) + 1e-6 : 0.1 * fabs(f32->test) + 1e-6;
            if (i < 2) assert_true(fabs(d->test - f32->test) <= tol); /* rl returns may flip a lot */
            expr_free(e);
            task_free(t);
        }
}

/* Quantisation-aware training (deploy.qat): the last quarter of the steps trains through the
 * fake-quantised int8 forward and the straight-through backward, and the deployed model uses the
 * ranges it tracked. The training changes (fp32 metrics differ from post-training quantisation's)
 * and, on digits with 16 hidden units, int8 test accuracy is not worse over three seeds. */
static void test_qat(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *ptq = load("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
                     "\"int8\"}}",
                     err);
    Task *qat = load("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
                     "\"int8\", \"qat\": true}}",
                     err);
    assert_true(ptq && qat);
    assert_true(task_hash(ptq) != task_hash(qat));
    Expr *ce = expr_parse("ce", err);
    double sp = 0, sq = 0;
    int differ = 0;
    for (uint64_t seed = 0; seed < 3; seed++) {
        EvalOpts o = {.seed = seed};
        EvalResult a, b;
        assert_int_equal(eval_run(ptq, ce, &o, &a, err), LD_OK);
        assert_int_equal(eval_run(qat, ce, &o, &b, err), LD_OK);
        assert_true(a.ok && b.ok);
        printf("seed %d: int8 test accuracy %.4f post-training, %.4f with qat (fp32 %.4f, %.4f)\n", (int)seed, a.test,
               b.test, metric(&a, "accuracy_fp32")->test, metric(&b, "accuracy_fp32")->test);
        differ += a.final_loss != b.final_loss;
        sp += a.test;
        sq += b.test;
    }
    assert_int_equal(differ, 3);
    assert_true(sq >= sp - 0.01 * 3);
    expr_free(ce);
    task_free(ptq);
    task_free(qat);
}

static void test_refusals(void **state) {
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precision\": \"int4\"}}",
         "deploy.precision \"int4\": unknown (expected one of \"fp32\", \"fp16\", \"bf16\", \"int8\")"},
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precision\": \"fp16\", \"qat\": true}}",
         "deploy.qat: quantisation-aware training simulates int8; it needs deploy.precision \"int8\", not \"fp16\""},
        {"{\"data\": \"builtin:cartpole\", \"deploy\": {\"precision\": \"int8\", \"qat\": true}}",
         "implemented for classification and regression tasks only, not rl"},
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precision\": \"int8\", \"qat\": 1}}",
         "deploy.qat: expected true or false"},
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precison\": \"int8\"}}", "did you mean 'precision'"},
        {"{\"data\": \"builtin:digits\", \"deploy\": \"int8\"}", "deploy: expected an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Task *t = load(cases[i].json, err);
        if (t || !strstr(err, cases[i].want)) printf("case %zu: '%s', want '%s'\n", i, err, cases[i].want);
        assert_null(t);
        assert_non_null(strstr(err, cases[i].want));
    }
    /* a family without a deployable model fails the run, saying so */
    char err[LD_ERR_MAX];
    Task *t = load("{\"data\": \"builtin:oscillator\", \"train\": {\"steps\": 5}, \"deploy\": {\"precision\": "
                   "\"int8\"}}",
                   err);
    assert_non_null(t);
    Expr *e = expr_parse("mse + phys", err);
    EvalResult r;
    EvalOpts o = {.seed = 0};
    assert_int_equal(eval_run(t, e, &o, &r, err), LD_OK);
    assert_false(r.ok);
    assert_non_null(strstr(r.error, "the physics family declares no deployable model"));
    expr_free(e);
    task_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int8_classification),
        cmocka_unit_test(test_precisions),
        cmocka_unit_test(test_qat),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
