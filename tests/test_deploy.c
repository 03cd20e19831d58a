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

#include "../evaluator/generative.h"
#include "../evaluator/internal.h"
#include "../evaluator/mlp.h"
#include "../evaluator/quant.h"
#include "eval_util.h"

#define PY "/usr/bin/python3"

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

/* One split for the reference: rows x (n, d) with class labels or float targets y. */
typedef struct RefSplit {
    const float *x;
    int n;
    const int *label;
    const float *y;
} RefSplit;

static void write_split(FILE *f, const char *name, const RefSplit *s, int d) {
    char k[32];
    snprintf(k, sizeof k, "%s_x", name);
    write_floats(f, k, s->x, (size_t)s->n * d);
    snprintf(k, sizeof k, "%s_y", name);
    if (s->y) {
        write_floats(f, k, s->y, (size_t)s->n);
        return;
    }
    fprintf(f, "\"%s\": [", k);
    for (int i = 0; i < s->n; i++) fprintf(f, "%s%d", i ? "," : "", s->label[i]);
    fprintf(f, "],\n");
}

/* A fresh folder under /tmp (dir, a "/tmp/lossd_deploy_XXXXXX" buffer) and its case.json (path,
 * 256 bytes) opened for writing. */
static FILE *case_file(char *dir, char *path) {
    assert_non_null(mkdtemp(dir));
    snprintf(path, 256, "%s/case.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

/* Builds m's int8 model calibrated on the ncalib rows of calib as lossd deploys it, writes the
 * weights, lossd's ranges, the calibration rows (with labels calib_y when not NULL: the k-NN
 * bank) and the val and test splits sp[2] for tests/deploy_ref.py, with kind and the extra JSON
 * members extra (each ending in a comma), and reads back the reference's val and test metric and
 * how far lossd's ranges are from NumPy's own calibration (relative to the range). */
static void ref_int8(const char *kind, const Mlp *m, const float *calib, int ncalib, const int *calib_y,
                     const RefSplit sp[2], const char *extra, double *rv, double *rt, double *dr) {
    char err[LD_ERR_MAX];
    LdArena a = {0};
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(m, QUANT_INT8, 128) + 4096), LD_OK);
    QuantMlp q;
    assert_int_equal(quant_mlp_build(&q, m, QUANT_INT8, calib, ncalib, 128, &a, err), LD_OK);
    char dir[] = "/tmp/lossd_deploy_XXXXXX", path[256], cmd[1024];
    FILE *f = case_file(dir, path);
    fprintf(f, "{\n\"kind\": \"%s\", %s\n\"dims\": [", kind, extra);
    for (int l = 0; l <= m->nlin; l++) fprintf(f, "%s%d", l ? ", " : "", m->dim[l]);
    fprintf(f, "],\n");
    for (int l = 0; l < m->nlin; l++) {
        char nm[16];
        snprintf(nm, sizeof nm, "w%d", l);
        write_floats(f, nm, m->w[l], (size_t)m->dim[l] * m->dim[l + 1]);
        snprintf(nm, sizeof nm, "b%d", l);
        write_floats(f, nm, m->b[l], (size_t)m->dim[l + 1]);
    }
    write_floats(f, "lo", q.lo, (size_t)m->nlin);
    write_floats(f, "hi", q.hi, (size_t)m->nlin);
    write_floats(f, "calib", calib, (size_t)ncalib * m->dim[0]);
    if (calib_y) {
        fprintf(f, "\"calib_y\": [");
        for (int i = 0; i < ncalib; i++) fprintf(f, "%s%d", i ? "," : "", calib_y[i]);
        fprintf(f, "],\n");
    }
    write_split(f, "val", &sp[0], m->dim[0]);
    write_split(f, "test", &sp[1], m->dim[0]);
    fprintf(f, "\"act\": \"%s\"\n}\n", m->act == ACT_RELU ? "relu" : "tanh");
    fclose(f);
    snprintf(cmd, sizeof cmd, PY " tests/deploy_ref.py %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512] = "";
    *rv = *rt = *dr = -1;
    while (fgets(line, sizeof line, p)) {
        printf("reference: %s", line);
        sscanf(line, "val %lf test %lf range_rel %lf", rv, rt, dr);
    }
    assert_int_equal(pclose(p), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
    arena_free(&a);
}

static void test_int8_classification(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t8 = task_from_json("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
                              "\"int8\"}}",
                              err);
    Task *t32 = task_from_json("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}}", err);
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
    RefSplit sp[2] = {{t8->val.x, t8->val.n, t8->val.label, NULL}, {t8->test.x, t8->test.n, t8->test.label, NULL}};
    double rv, rt, dr;
    ref_int8("classify", &m, t8->train.x, t8->train.n, NULL, sp, "", &rv, &rt, &dr);
    printf("int8 accuracy: lossd val %.6f test %.6f, NumPy reference val %.6f test %.6f\n", a8->val, a8->test, rv,
           rt);
    assert_true(rv == a8->val && rt == a8->test);
    assert_true(dr >= 0 && dr < 1e-5); /* the ranges agree with NumPy's own calibration */
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
        "{\"data\": \"builtin:poisson\", \"train\": {\"steps\": 200}, \"deploy\": {\"precision\": \"%s\"}}",
        "{\"data\": \"builtin:digits\", \"family\": \"contrastive\", \"train\": {\"steps\": 40}, "
        "\"deploy\": {\"precision\": \"%s\"}}",
        "{\"data\": \"builtin:digits\", \"family\": \"generative\", \"metric\": \"rec_mse\", \"train\": "
        "{\"steps\": 100}, \"deploy\": {\"precision\": \"%s\"}}",
        "{\"data\": \"builtin:digits\", \"family\": \"generative\", \"model\": {\"kind\": \"gan\"}, "
        "\"train\": {\"steps\": 100}, \"deploy\": {\"precision\": \"%s\"}}",
    };
    static const char *const losses[] = {"ce",           "mse", "a2c - 0.01*ent + 0.5*td2", "mse + phys + bc",
                                         "infonce(0.1)", "rec", "nsgan"};
    static const char *const prec[] = {"fp16", "bf16", "int8"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        for (size_t k = 0; k < 3; k++) {
            char js[512], err[LD_ERR_MAX];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(js, sizeof js, specs[i], prec[k]);
#pragma GCC diagnostic pop
            Task *t = task_from_json(js, err);
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
            if (i == 3) tol = k < 2 ? 0.005 : 0.05; /* a relative L2 error: bf16 keeps 8 bits */
            if (i != 2) assert_true(fabs(d->test - f32->test) <= tol); /* rl returns may flip a lot */
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
    Task *ptq = task_from_json("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
                               "\"int8\"}}",
                               err);
    Task *qat = task_from_json("{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [16]}, \"deploy\": {\"precision\": "
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
        {"{\"data\": \"builtin:oscillator\", \"model\": {\"act\": \"gelu\"}, \"deploy\": {\"precision\": "
         "\"fp16\"}}",
         "deploy.precision \"fp16\": a physics network with model.act \"gelu\" cannot be deployed"},
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precision\": \"int8\", \"qat\": 1}}",
         "deploy.qat: expected true or false"},
        {"{\"data\": \"builtin:digits\", \"deploy\": {\"precison\": \"int8\"}}", "did you mean 'precision'"},
        {"{\"data\": \"builtin:digits\", \"deploy\": \"int8\"}", "deploy: expected an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Task *t = task_from_json(cases[i].json, err);
        if (t || !strstr(err, cases[i].want)) printf("case %zu: '%s', want '%s'\n", i, err, cases[i].want);
        assert_null(t);
        assert_non_null(strstr(err, cases[i].want));
    }
}

/* A run of json under loss at seed with every group's final parameters in *final (malloc'd). */
static Task *run_traced(const char *json, const char *loss, uint64_t seed, EvalResult *r, float **final) {
    char err[LD_ERR_MAX];
    Task *t = task_from_json(json, err);
    if (!t) printf("%s: %s\n", json, err);
    assert_non_null(t);
    Expr *e = expr_parse(loss, err);
    assert_non_null(e);
    EvalOpts o = {.seed = seed};
    EvalTrace tr = {.all_groups = 1};
    assert_int_equal(eval_run_traced(t, e, &o, r, &tr, err), LD_OK);
    if (!r->ok) printf("%s: %s\n", json, r->error);
    assert_true(r->ok);
    *final = tr.group_final[0];
    tr.group_final[0] = NULL;
    eval_trace_free(&tr);
    expr_free(e);
    return t;
}

/* run_traced, then the deployed metric name and its fp32 twin NAME_fp32 of the result in *d and
 * *f (both must be there). */
static Task *run_deployed(const char *json, const char *loss, uint64_t seed, const char *name, EvalResult *r,
                          float **final, const EvalMetric **d, const EvalMetric **f) {
    Task *t = run_traced(json, loss, seed, r, final);
    char fp[40];
    snprintf(fp, sizeof fp, "%s_fp32", name);
    *d = metric(r, name);
    *f = metric(r, fp);
    if (!*d || !*f) printf("%s: no %s or %s in the result\n", json, name, fp);
    assert_true(*d && *f);
    return t;
}

/* Physics at int8: the deployed network is the trained one as a plain scalar MLP on normalised
 * inputs, calibrated on the training points; its solution error on the validation grid equals
 * NumPy's int8 forward on the same weights, its fp32 one the fp32 run's, and the residual (which
 * needs u'') is reported at fp32 only. */
static void test_physics_int8(void **state) {
    (void)state;
    const char *js = "{\"data\": \"builtin:oscillator\", \"train\": {\"steps\": 300}, \"deploy\": {\"precision\": "
                     "\"int8\"}}";
    EvalResult r, r32;
    float *final;
    Task *t = run_traced(js, "mse + phys + bc", 0, &r, &final);
    float *f32;
    Task *t32 = run_traced("{\"data\": \"builtin:oscillator\", \"train\": {\"steps\": 300}}", "mse + phys + bc", 0,
                           &r32, &f32);
    const EvalMetric *d = metric(&r, "solution_error"), *f = metric(&r, "solution_error_fp32");
    assert_true(d && f && metric(&r, "residual_fp32") && !metric(&r, "residual"));
    printf("oscillator, 300 steps, seed 0: solution_error fp32 val %.5f test %.5f, int8 val %.5f test %.5f\n", f->val,
           f->test, d->val, d->test);
    assert_true(f->val == r32.val && f->test == r32.test && r.val == d->val);
    assert_true(d->val != f->val && fabs(d->val - f->val) < 0.1);
    /* The training points (collocation, observations, boundary) and the validation grid as the
     * task lays them out (physics.c): [0, 4], 64 collocation points, 10 seeded observations. */
    Mlp m;
    mlp_bind(&m, &t->model, 1, 1, final);
    enum { G = 256 };
    float xv[G], uv[G];
    for (int i = 0; i < G; i++) {
        double x = (float)(4.0 * i / (G - 1)), a = 0.15 * M_PI, wd = M_PI * sqrt(1 - 0.15 * 0.15);
        xv[i] = (float)(((float)x - 2.0f) * 0.5f);
        uv[i] = (float)(exp(-a * x) * (cos(wd * x) + a / wd * sin(wd * x)));
    }
    /* calibration: lossd's deployed model was calibrated on the training points; the reference
     * is handed the same ranges through a calibration set spanning them: the grid holds both
     * ends of the domain, as do the training points (collocation includes 0 and 4) */
    RefSplit sp[2] = {{xv, G, NULL, uv}, {xv, G, NULL, uv}};
    double rv, rt, dr;
    ref_int8("physics", &m, xv, G, NULL, sp, "", &rv, &rt, &dr);
    printf("int8 solution_error on the validation grid: lossd %.7f, NumPy reference %.7f (ranges rel %.2g)\n",
           d->val, rv, dr);
    assert_true(fabs(rv - d->val) <= 1e-4 * d->val + 1e-7);
    free(final);
    free(f32);
    task_free(t);
    task_free(t32);
}

/* Contrastive at int8: the deployed embedding network embeds the bank (training rows) and the
 * queries; its k-NN accuracy equals NumPy's int8 forward and k-NN vote on the same weights within
 * one query (float summation order may swap two nearly equal similarities). */
static void test_contrastive_int8(void **state) {
    (void)state;
    const char *js = "{\"data\": \"builtin:digits\", \"family\": \"contrastive\", \"knn\": {\"k\": 5}, "
                     "\"model\": {\"hidden\": [32], \"activation\": \"relu\", \"embed_dim\": 16}, "
                     "\"train\": {\"batch\": 64, \"steps\": 100}, \"deploy\": {\"precision\": \"int8\"}}";
    EvalResult r;
    float *final;
    const EvalMetric *d, *f;
    Task *t = run_deployed(js, "infonce(0.1)", 1, "knn_accuracy", &r, &final, &d, &f);
    assert_true(metric(&r, "alignment_fp32") && metric(&r, "uniformity"));
    printf("contrastive digits, 100 steps, seed 1: knn_accuracy fp32 val %.4f test %.4f, int8 val %.4f test %.4f\n",
           f->val, f->test, d->val, d->test);
    Mlp m;
    mlp_bind(&m, &t->model, t->train.d, t->model.embed_dim, final);
    RefSplit sp[2] = {{t->val.x, t->val.n, t->val.label, NULL}, {t->test.x, t->test.n, t->test.label, NULL}};
    char extra[64];
    snprintf(extra, sizeof extra, "\"k\": 5, \"nclass\": %d,", t->nclass);
    double rv, rt, dr;
    ref_int8("knn", &m, t->train.x, t->train.n, t->train.label, sp, extra, &rv, &rt, &dr);
    printf("int8 knn_accuracy: lossd val %.6f test %.6f, NumPy reference val %.6f test %.6f\n", d->val, d->test, rv,
           rt);
    assert_true(fabs(rv - d->val) <= 1.01 / t->val.n && fabs(rt - d->test) <= 1.01 / t->test.n);
    assert_true(dr >= 0 && dr < 1e-5);
    free(final);
    task_free(t);
}

/* Writes m as the JSON member name (each member ending in a comma): dims, weights and biases,
 * the int8 ranges lossd calibrated (q), act. */
static void write_model(FILE *f, const char *name, const Mlp *m, const QuantMlp *q) {
    fprintf(f, "\"%s\": {\"dims\": [", name);
    for (int l = 0; l <= m->nlin; l++) fprintf(f, "%s%d", l ? ", " : "", m->dim[l]);
    fprintf(f, "],\n");
    for (int l = 0; l < m->nlin; l++) {
        char nm[16];
        snprintf(nm, sizeof nm, "w%d", l);
        write_floats(f, nm, m->w[l], (size_t)m->dim[l] * m->dim[l + 1]);
        snprintf(nm, sizeof nm, "b%d", l);
        write_floats(f, nm, m->b[l], (size_t)m->dim[l + 1]);
    }
    write_floats(f, "lo", q->lo, (size_t)m->nlin);
    write_floats(f, "hi", q->hi, (size_t)m->nlin);
    fprintf(f, "\"act\": \"%s\"},\n", m->act == ACT_RELU ? "relu" : "tanh");
}

/* Runs tests/deploy_gen_ref.py on the case file written at path (then removed with its folder
 * dir): the two metrics of the validation (v) and test (t) splits and the ranges' distance dr. */
static void run_gen_ref(const char *dir, const char *path, double v[2], double t[2], double *dr) {
    char cmd[512], line[512] = "";
    snprintf(cmd, sizeof cmd, PY " tests/deploy_gen_ref.py %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    v[0] = v[1] = t[0] = t[1] = *dr = -1;
    while (fgets(line, sizeof line, p)) {
        printf("reference: %s", line);
        sscanf(line, "val %lf %lf test %lf %lf range_rel %lf", &v[0], &v[1], &t[0], &t[1], dr);
    }
    assert_int_equal(pclose(p), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}

/* The generative autoencoder at int8: the deployed encoder (calibrated on the training rows) and
 * decoder (calibrated on the fp32 encoder's latents of them) reconstruct the splits; rec_mse and
 * the fixed classifier's accuracy on the reconstructions equal NumPy's int8 forward of the same
 * weights (tests/deploy_gen_ref.py), and the ranges NumPy calibrates equal lossd's. */
static void test_generative_ae_int8(void **state) {
    (void)state;
    const char *js = "{\"data\": \"builtin:digits\", \"family\": \"generative\", \"model\": {\"hidden\": [32], "
                     "\"latent\": 8}, \"train\": {\"steps\": 150}, \"deploy\": {\"precision\": \"int8\"}}";
    EvalResult r;
    float *final;
    const EvalMetric *dm, *fm, *da, *fa;
    Task *t = run_deployed(js, "rec + 0.1*perc", 1, "rec_mse", &r, &final, &dm, &fm);
    da = metric(&r, "rec_accuracy");
    fa = metric(&r, "rec_accuracy_fp32");
    assert_true(da && fa);
    printf("autoencoder digits, rec + 0.1*perc, 150 steps, seed 1: rec_mse fp32 val %.6f test %.6f, int8 val %.6f "
           "test %.6f; rec_accuracy fp32 %.4f / %.4f, int8 %.4f / %.4f\n",
           fm->val, fm->test, dm->val, dm->test, fa->val, fa->test, da->val, da->test);
    assert_true(r.val == da->val && r.test == da->test); /* selection on the deployed metric */
    assert_true(dm->val != fm->val && fabs(dm->val - fm->val) < 0.1 * fm->val);
    /* the trained encoder (8 latents) and decoder, one block in the first parameter group */
    Mlp enc, dec;
    mlp_bind(&enc, &t->model, t->train.d, 8, final);
    mlp_bind(&dec, &t->model, 8, t->train.d, final + enc.nparams);
    const int n = t->train.n;
    char err[LD_ERR_MAX];
    LdArena a = {0};
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(&enc, QUANT_INT8, 128) +
                                        quant_mlp_arena_bytes(&dec, QUANT_INT8, 128) +
                                        sizeof(float) * (mlp_acts_floats(&enc, 128) + (size_t)n * 8) + 8192),
                     LD_OK);
    QuantMlp qe, qd;
    assert_int_equal(quant_mlp_build(&qe, &enc, QUANT_INT8, t->train.x, n, 128, &a, err), LD_OK);
    float *lat = arena_alloc(&a, sizeof(float) * (size_t)n * 8);
    MlpActs acts;
    mlp_acts_bind(&acts, &enc, 128, arena_alloc(&a, sizeof(float) * mlp_acts_floats(&enc, 128)));
    for (int i = 0; i < n; i += 128) { /* the trainer's chunks (train_calib_rows) */
        int B = n - i < 128 ? n - i : 128;
        memcpy(lat + (size_t)i * 8, mlp_forward(&enc, &acts, t->train.x + (size_t)i * t->train.d, B),
               sizeof(float) * (size_t)B * 8);
    }
    assert_int_equal(quant_mlp_build(&qd, &dec, QUANT_INT8, lat, n, 128, &a, err), LD_OK);
    char dir[] = "/tmp/lossd_deploy_XXXXXX", path[256];
    FILE *f = case_file(dir, path);
    fprintf(f, "{\"kind\": \"ae\", \"fixednet\": \"data/digits_fixednet.json\",\n");
    write_model(f, "enc", &enc, &qe);
    write_model(f, "dec", &dec, &qd);
    write_floats(f, "calib", t->train.x, (size_t)n * t->train.d);
    RefSplit sp[2] = {{t->val.x, t->val.n, t->val.label, NULL}, {t->test.x, t->test.n, t->test.label, NULL}};
    write_split(f, "val", &sp[0], t->train.d);
    write_split(f, "test", &sp[1], t->train.d);
    fprintf(f, "\"end\": 0}\n");
    fclose(f);
    double v[2], tt[2], dr;
    run_gen_ref(dir, path, v, tt, &dr);
    printf("int8 rec_mse: lossd val %.9f test %.9f, NumPy %.9f %.9f; rec_accuracy lossd %.6f %.6f, NumPy %.6f %.6f "
           "(ranges rel %.2g)\n",
           dm->val, dm->test, v[0], tt[0], da->val, da->test, v[1], tt[1], dr);
    assert_true(fabs(v[0] - dm->val) <= 1e-5 * dm->val && fabs(tt[0] - dm->test) <= 1e-5 * dm->test);
    assert_true(fabs(v[1] - da->val) <= 1.01 / t->val.n && fabs(tt[1] - da->test) <= 1.01 / t->test.n);
    assert_true(dr >= 0 && dr < 1e-5);
    arena_free(&a);
    free(final);
    task_free(t);
}

/* The GAN at int8: the deployed generator (calibrated on GAN_CALIB rows of GAN_CALIB_SEED noise)
 * makes each split's samples from the split's scoring noise; the Frechet distance and class
 * coverage equal NumPy's on the int8 generator of the same weights. */
static void test_generative_gan_int8(void **state) {
    (void)state;
    const char *js = "{\"data\": \"builtin:digits\", \"family\": \"generative\", \"model\": {\"kind\": \"gan\", "
                     "\"noise\": 16, \"hidden\": [64]}, \"train\": {\"steps\": 300}, \"deploy\": {\"precision\": "
                     "\"int8\"}}";
    EvalResult r;
    float *final;
    const EvalMetric *df, *ff;
    Task *t = run_deployed(js, "nsgan", 2, "fid", &r, &final, &df, &ff);
    const EvalMetric *dc = metric(&r, "coverage"), *fc = metric(&r, "coverage_fp32");
    assert_true(dc && fc);
    printf("gan digits, nsgan, 300 steps, seed 2: fid fp32 val %.5f test %.5f, int8 val %.5f test %.5f; coverage "
           "fp32 %.2f / %.2f, int8 %.2f / %.2f\n",
           ff->val, ff->test, df->val, df->test, fc->val, fc->test, dc->val, dc->test);
    assert_true(r.val == df->val && r.test == df->test);
    assert_true(df->val != ff->val && fabs(df->val - ff->val) < 0.1 * ff->val);
    enum { NZ = 16 };
    Mlp gen; /* the generator is the first parameter group's first block */
    mlp_bind(&gen, &t->model, NZ, t->train.d, final);
    char err[LD_ERR_MAX];
    LdArena a = {0};
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(&gen, QUANT_INT8, 128) + 4096), LD_OK);
    float *calib = malloc(sizeof(float) * GAN_CALIB * NZ);
    LdRng rng;
    rng_seed(&rng, GAN_CALIB_SEED);
    for (int k = 0; k < GAN_CALIB * NZ; k++) calib[k] = rng_normal(&rng);
    QuantMlp q;
    assert_int_equal(quant_mlp_build(&q, &gen, QUANT_INT8, calib, GAN_CALIB, 128, &a, err), LD_OK);
    char dir[] = "/tmp/lossd_deploy_XXXXXX", path[256];
    FILE *f = case_file(dir, path);
    fprintf(f, "{\"kind\": \"gan\", \"fixednet\": \"data/digits_fixednet.json\",\n");
    write_model(f, "gen", &gen, &q);
    write_floats(f, "calib", calib, (size_t)GAN_CALIB * NZ);
    const Dataset *sp[2] = {&t->val, &t->test};
    static const char *const names[2] = {"val", "test"};
    for (int s = 0; s < 2; s++) { /* the split's scoring noise, as gan.c draws it */
        char nm[32];
        size_t nn = (size_t)sp[s]->n * NZ;
        float *z = malloc(sizeof(float) * nn);
        rng_seed(&rng, ld_mix64(GAN_SCORE_SEED, (uint64_t)s));
        for (size_t k = 0; k < nn; k++) z[k] = rng_normal(&rng);
        snprintf(nm, sizeof nm, "%s_noise", names[s]);
        write_floats(f, nm, z, nn);
        snprintf(nm, sizeof nm, "%s_x", names[s]);
        write_floats(f, nm, sp[s]->x, (size_t)sp[s]->n * sp[s]->d);
        free(z);
    }
    fprintf(f, "\"end\": 0}\n");
    fclose(f);
    double v[2], tt[2], dr;
    run_gen_ref(dir, path, v, tt, &dr);
    printf("int8 fid: lossd val %.9f test %.9f, NumPy %.9f %.9f; coverage lossd %.2f %.2f, NumPy %.2f %.2f (ranges "
           "rel %.2g)\n",
           df->val, df->test, v[0], tt[0], dc->val, dc->test, v[1], tt[1], dr);
    assert_true(fabs(v[0] - df->val) <= 1e-4 * df->val && fabs(tt[0] - df->test) <= 1e-4 * df->test);
    assert_true(v[1] == dc->val && tt[1] == dc->test);
    assert_true(dr >= 0 && dr < 1e-5);
    free(calib);
    arena_free(&a);
    free(final);
    task_free(t);
}

/* Weight-only quantisation-aware training (physics' scheme): quant_qat_weights gives exactly the
 * weights the int8 model will have (its codes times its per-channel scales), and the
 * straight-through backward passes every gradient unchanged (max-abs scales clamp no code). */
static void test_qat_weights(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    ModelSpec ms = {.nhidden = 2, .hidden = {32, 32}, .act = ACT_TANH};
    Mlp m, g;
    size_t P = mlp_param_count(&ms, 1, 1);
    float *p = malloc(sizeof(float) * P), *gp = malloc(sizeof(float) * P);
    mlp_bind(&m, &ms, 1, 1, p);
    mlp_init(&m, 7);
    for (size_t k = 0; k < P; k++) p[k] += 0.01f * (float)(k % 7); /* biases too, not only zeros */
    mlp_bind_like(&g, &m, gp);
    LdArena a = {0};
    assert_int_equal(arena_init(&a, quant_qat_arena_bytes(&m, 1) + 4096), LD_OK);
    QuantQat qat;
    assert_int_equal(quant_qat_init(&qat, &m, 1, 0.01f, &a, err), LD_OK);
    quant_qat_weights(&qat);
    int8_t q[32 * 32];
    float scale[32];
    int bad = 0, checked = 0;
    for (int l = 0; l < m.nlin; l++) {
        int C = m.dim[l], OC = m.dim[l + 1];
        quant_weights_int8(q, scale, m.w[l], C, OC);
        for (int c = 0; c < C; c++)
            for (int j = 0; j < OC; j++, checked++) bad += qat.wfq.w[l][c * OC + j] != (float)q[c * OC + j] * scale[j];
    }
    for (size_t k = 0; k < P; k++) gp[k] = 1.0f + (float)k;
    quant_qat_weights_backward(&qat, &g);
    int moved = 0;
    for (size_t k = 0; k < P; k++) moved += gp[k] != 1.0f + (float)k;
    printf("weight-only qat: %d of %d fake-quantised weights differ from the int8 codes x scales; %d of %zu gradients "
           "changed by the straight-through backward\n",
           bad, checked, moved, P);
    assert_int_equal(bad, 0);
    assert_int_equal(moved, 0);
    arena_free(&a);
    free(p);
    free(gp);
}

/* deploy.qat at the trainer, on the families that train a deployed model through it (contrastive,
 * rl, the generative autoencoder and GAN, physics with its weight-only scheme; classification in
 * test_qat): the first
 * three quarters of a QAT run are the post-training run's step for step (equal curve losses), the
 * last quarter differs, and the result carries both the deployed and the fp32 metrics. */
static void test_qat_families(void **state) {
    (void)state;
    static const struct {
        const char *json, *loss, *metric;
    } cases[] = {
        {"{\"data\": \"builtin:digits\", \"family\": \"contrastive\", \"model\": {\"hidden\": [32], \"embed_dim\": "
         "16}, \"train\": {\"batch\": 32, \"steps\": 40}, \"deploy\": {\"precision\": \"int8\"%s}}",
         "infonce(0.1)", "knn_accuracy"},
        {"{\"data\": \"builtin:cartpole\", \"train\": {\"steps\": 40}, \"rl\": {\"val_episodes\": 3, "
         "\"test_episodes\": 3}, \"deploy\": {\"precision\": \"int8\"%s}}",
         "a2c - 0.01*ent + 0.5*td2", "return"},
        {"{\"data\": \"builtin:digits\", \"family\": \"generative\", \"train\": {\"steps\": 40}, "
         "\"deploy\": {\"precision\": \"int8\"%s}}",
         "rec + 0.1*perc", "rec_accuracy"},
        {"{\"data\": \"builtin:digits\", \"family\": \"generative\", \"model\": {\"kind\": \"gan\"}, "
         "\"train\": {\"steps\": 40}, \"deploy\": {\"precision\": \"int8\"%s}}",
         "nsgan + 10*rec", "fid"},
        {"{\"data\": \"builtin:poisson\", \"train\": {\"steps\": 40}, \"deploy\": {\"precision\": \"int8\"%s}}",
         "mse + phys + bc", "solution_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EvalResult r[2];
        for (int q = 0; q < 2; q++) {
            char js[512], err[LD_ERR_MAX];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(js, sizeof js, cases[i].json, q ? ", \"qat\": true" : "");
#pragma GCC diagnostic pop
            Task *t = task_from_json(js, err);
            if (!t) printf("%s: %s\n", js, err);
            assert_non_null(t);
            Expr *e = expr_parse(cases[i].loss, err);
            EvalOpts o = {.seed = 3, .curve_every = 1};
            assert_int_equal(eval_run(t, e, &o, &r[q], err), LD_OK);
            if (!r[q].ok) printf("%s: %s\n", js, r[q].error);
            assert_true(r[q].ok);
            char fp[32];
            snprintf(fp, sizeof fp, "%s_fp32", cases[i].metric);
            assert_non_null(metric(&r[q], cases[i].metric));
            assert_non_null(metric(&r[q], fp));
            expr_free(e);
            task_free(t);
        }
        int same = 0, differ = 0;
        for (int k = 0; k < 40; k++) {
            if (k < 30) same += r[0].curve[k].loss == r[1].curve[k].loss;
            else differ += r[0].curve[k].loss != r[1].curve[k].loss;
        }
        printf("%s: qat curve equal to post-training's on %d of the first 30 steps, differs on %d of the last 10; "
               "int8 %s test %.4f post-training, %.4f qat\n",
               cases[i].metric, same, differ, cases[i].metric, r[0].test, r[1].test);
        assert_int_equal(r[0].ncurve, 40);
        assert_int_equal(same, 30);
        assert_true(differ >= 9);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int8_classification),
        cmocka_unit_test(test_precisions),
        cmocka_unit_test(test_qat),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_physics_int8),
        cmocka_unit_test(test_contrastive_int8),
        cmocka_unit_test(test_qat_families),
        cmocka_unit_test(test_generative_ae_int8),
        cmocka_unit_test(test_qat_weights),
        cmocka_unit_test(test_generative_gan_int8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
