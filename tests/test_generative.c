/* test_generative.c: the generative family's autoencoder. The terms rec, bce_rec and perc have
 * exact gradients (central differences through the compiled program and through the fixed
 * feature network); a whole training step's parameter gradient (encoder, decoder, sigmoid, the
 * loss, perc's chain through the fixed network) equals central differences and PyTorch's
 * autograd of the same model and the exported PyTorch loss (float64, run live; skipped without
 * /usr/bin/python3 and torch); runs are deterministic in their seed, in 1 and 2 threads; a run
 * learns (accuracy of the fixed classifier on reconstructions well above chance); bad input gets
 * clear errors. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../evaluator/fixednet.h"
#include "../evaluator/generative.h"
#include "../lang/lossprog.h"
#include "eval_util.h"


/* ---- the terms through the compiled program: central differences in xh and in perc */

static void test_terms_fd(void **state) {
    (void)state;
    enum { B = 5, C = 7 };
    static const char *const losses[] = {"rec", "bce_rec", "rec + 0.1*perc", "0.5*bce_rec + sum(abs(xh - x))",
                                         "(1 - t)*rec + t*bce_rec*perc", "sum(x*log(xh)) + rec^0.5"};
    LdRng r;
    rng_seed(&r, 3);
    float x[B * C], xh[B * C], perc[B];
    for (int k = 0; k < B * C; k++) {
        x[k] = k % 3 == 0 ? 0.0f : k % 3 == 1 ? 1.0f : (float)rng_uniform(&r);
        xh[k] = 0.1f + 0.8f * (float)rng_uniform(&r);
    }
    for (int i = 0; i < B; i++) perc[i] = 0.5f + (float)rng_uniform(&r);
    double worst = 0;
    for (size_t q = 0; q < sizeof losses / sizeof *losses; q++) {
        char err[LD_ERR_MAX];
        Expr *e = expr_parse(losses[q], err);
        assert_non_null(e);
        LossProg *lp = NULL;
        if (lossprog_new(e, FAM_GENERATIVE, B, C, 0, &lp, err)) print_error("%s: %s\n", losses[q], err);
        assert_non_null(lp);
        LossIn in = {.B = B, .t = 0.3f, .z = xh, .x = x};
        in.sterm[TERM_PERC] = perc;
        LossOut out;
        assert_int_equal(lossprog_run(lp, &in, &out), LD_OK);
        float g[B * C], gp[B];
        memcpy(g, out.dz, sizeof g);
        for (int i = 0; i < B; i++) gp[i] = out.g_sterm[TERM_PERC] ? out.g_sterm[TERM_PERC][i] : 0.0f;
        const float h = 1e-3f;
        for (int k = 0; k < B * C + B; k++) {
            float *v = k < B * C ? &xh[k] : &perc[k - B * C], old = *v;
            *v = old + h;
            lossprog_run(lp, &in, &out);
            double up = out.loss;
            *v = old - h;
            lossprog_run(lp, &in, &out);
            double down = out.loss;
            *v = old;
            double fd = (up - down) / (2 * h), an = k < B * C ? g[k] : gp[k - B * C];
            double d = fabs(fd - an) / fmax(1.0, fabs(an));
            if (d > 2e-3) print_error("%s: d/d%s[%d] analytic %.6g, central difference %.6g\n", losses[q],
                                      k < B * C ? "xh" : "perc", k < B * C ? k : k - B * C, an, fd);
            assert_true(d <= 2e-3);
            worst = fmax(worst, d);
        }
        lossprog_free(lp);
        expr_free(e);
    }
    print_message("terms: worst scaled difference to central differences %.2g (tolerance 2e-3)\n", worst);
}

/* ---- the fixed network: perc's backward against central differences */

static void test_fixednet_perc_fd(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    const FixedNet *n = fixednet_get(err);
    if (!n) print_error("%s\n", err);
    assert_non_null(n);
    assert_int_equal(n->d, 64);
    assert_true(n->test_accuracy > 0.9);
    enum { B = 3 };
    float x[B * 64], xh[B * 64], hx[B * 64], hxh[B * 64], perc[B], gperc[B] = {1.0f, -0.5f, 2.0f};
    float dxh[B * 64] = {0}, scratch[4 * B * 64];
    LdRng r;
    rng_seed(&r, 11);
    for (int k = 0; k < B * 64; k++) {
        x[k] = (float)rng_uniform(&r);
        xh[k] = (float)rng_uniform(&r);
    }
    fixednet_perc_forward(n, perc, hx, hxh, x, xh, B);
    fixednet_perc_backward(n, dxh, gperc, hx, hxh, scratch, B);
    /* central differences of the same perc in double precision (the features recomputed here):
     * the pixel weights are large (the standardisation folded in), so float differences would
     * measure rounding, not the backward */
    double worst = 0;
    const double h = 1e-6;
    double xd[B * 64];
    for (int k = 0; k < B * 64; k++) xd[k] = xh[k];
    for (int k = 0; k < B * 64; k++) {
        double val[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            xd[k] = xh[k] + (sgn ? -h : h);
            double tot = 0;
            for (int i = 0; i < B; i++) {
                double s2 = 0;
                for (int f = 0; f < n->h; f++) {
                    double a = n->b0[f], b = n->b0[f];
                    for (int j = 0; j < 64; j++) {
                        a += xd[i * 64 + j] * n->w0[j * n->h + f];
                        b += (double)x[i * 64 + j] * n->w0[j * n->h + f];
                    }
                    s2 += (tanh(a) - tanh(b)) * (tanh(a) - tanh(b));
                }
                tot += gperc[i] * s2;
            }
            val[sgn] = tot;
        }
        xd[k] = xh[k];
        double fd = (val[0] - val[1]) / (2 * h), d = fabs(fd - dxh[k]) / fmax(1.0, fabs(dxh[k]));
        if (d > 1e-3) print_error("perc: d/dxh[%d] analytic %.6g, central difference %.6g\n", k, dxh[k], fd);
        assert_true(d <= 1e-3);
        worst = fmax(worst, d);
    }
    /* the classifier on clean digits test pixels is the accuracy the file records */
    Task *t = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\"}", err);
    assert_non_null(t);
    const Dataset *ts = &t->test;
    int hit = 0, *cls = malloc(sizeof(int) * (size_t)ts->n);
    float *scr = malloc(sizeof(float) * (size_t)ts->n * (n->h + n->k));
    fixednet_classify(n, cls, ts->x, scr, ts->n);
    for (int i = 0; i < ts->n; i++) hit += cls[i] == ts->label[i];
    double acc = (double)hit / ts->n;
    print_message("fixed net: perc worst scaled difference %.2g (tolerance 1e-3); classifier on clean test pixels %.4f (file: "
                  "%.4f)\n", worst, acc, n->test_accuracy);
    assert_true(fabs(acc - n->test_accuracy) < 0.01);
    free(cls);
    free(scr);
    task_free(t);
}

/* ---- a whole training step: the parameter gradient */

static int lp_fn(void *ctx, const LossIn *in, LossOut *out) { return lossprog_run(ctx, in, out); }

typedef struct StepRun {
    Task *t;
    Expr *e;
    LossProg *lp;
    Trainer tr;
    int batches[64];
    EvalTrace trace;
} StepRun;

static uint32_t term_bits(const Expr *e) {
    if (!e) return 0;
    return (e->op == EOP_TERM ? 1u << e->id : 0) | term_bits(e->a) | term_bits(e->b);
}

static void step_open(StepRun *s, const char *spec, const char *loss) {
    char err[LD_ERR_MAX];
    memset(s, 0, sizeof *s);
    s->t = task_from_json(spec, err);
    if (!s->t) print_error("%s\n", err);
    assert_non_null(s->t);
    s->e = expr_parse(loss, err);
    assert_non_null(s->e);
    const EvalFamily *f = eval_family(FAM_GENERATIVE);
    int B, C, D;
    f->loss_shape(s->t, &B, &C, &D);
    assert_true(B <= 64);
    assert_int_equal(f->check_loss(s->t, s->e, err), LD_OK);
    assert_int_equal(lossprog_new(s->e, FAM_GENERATIVE, B, C, D, &s->lp, err), LD_OK);
    Trainer *tr = &s->tr;
    tr->task = s->t;
    tr->seed = 5;
    tr->steps = 10;
    tr->t = 0.25f;
    tr->loss = (TrainLoss){.fn = lp_fn, .ctx = s->lp, .use_l2 = (term_bits(s->e) >> TERM_L2) & 1u,
                           .terms = term_bits(s->e)};
    tr->use_l2 = tr->loss.use_l2;
    s->trace.batches = s->batches;
    tr->trace = &s->trace;
    rng_seed(&tr->rng, 9);
    size_t np = 0, need = f->run_bytes(s->t, &np);
    need += 2 * (np * sizeof(float) + 64 * TRAIN_MAX_GROUPS) + 4096;
    assert_int_equal(arena_init(&tr->arena, need), LD_OK);
    if (f->setup(tr, err)) print_error("setup: %s\n", err);
    assert_int_equal(tr->ngroups, 1);
}

static void step_close(StepRun *s) {
    arena_free(&s->tr.arena);
    lossprog_free(s->lp);
    expr_free(s->e);
    task_free(s->t);
}

/* One step from the same RNG state: the batch is the same every time. */
static float step_at(StepRun *s, const LdRng *rng0) {
    float l = NAN;
    s->tr.rng = *rng0;
    assert_int_equal(eval_family(FAM_GENERATIVE)->step(&s->tr, &l), LD_OK);
    return l;
}

#define STEP_SPEC                                                                                  \
    "{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"hidden\": [16], "   \
    "\"activation\": \"tanh\", \"latent\": 4}, \"train\": {\"batch\": 6}}"

static void test_step_fd(void **state) {
    (void)state;
    static const char *const losses[] = {"rec", "bce_rec", "rec + 0.1*perc", "perc + 0.01*l2"};
    double worst = 0;
    for (size_t q = 0; q < sizeof losses / sizeof *losses; q++) {
        StepRun s;
        step_open(&s, STEP_SPEC, losses[q]);
        TrainGroup *g = &s.tr.group[0];
        LdRng rng0 = s.tr.rng;
        step_at(&s, &rng0);
        float *grad = malloc(sizeof(float) * g->n);
        memcpy(grad, g->grads, sizeof(float) * g->n);
        LdRng pick;
        rng_seed(&pick, 77 + q);
        for (int k = 0; k < 40; k++) {
            size_t i = rng_below(&pick, (uint32_t)g->n);
            float old = g->params[i], h = 3e-3f;
            g->params[i] = old + h;
            double up = step_at(&s, &rng0);
            g->params[i] = old - h;
            double down = step_at(&s, &rng0);
            g->params[i] = old;
            double fd = (up - down) / (2 * h), d = fabs(fd - grad[i]) / fmax(0.05, fabs(grad[i]));
            if (d > 3e-2)
                print_error("%s: parameter %zu: analytic %.6g, central difference %.6g\n", losses[q], i, grad[i], fd);
            assert_true(d <= 3e-2);
            worst = fmax(worst, d);
        }
        free(grad);
        step_close(&s);
    }
    print_message("training step: 4 losses x 40 parameters, worst scaled difference to float32 central "
                  "differences %.2g (tolerance 3e-2)\n", worst);
}

/* The same step's gradient from PyTorch: the model rebuilt from the parameters, the loss from
 * lossd's own PyTorch export, the fixed network from the data file; float64. */
static const char torch_driver[] =
    "import sys, importlib\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import torch\n"
    "torch.set_default_dtype(torch.float64)\n"
    "import case as C\n"
    "m = importlib.import_module('lossmod')\n"
    "p = torch.tensor(C.params, requires_grad=True)\n"
    "def mlp(x, dims, off):\n"
    "    for l in range(len(dims) - 1):\n"
    "        a, b = dims[l], dims[l + 1]\n"
    "        w = p[off:off + a * b].reshape(a, b); off += a * b\n"
    "        bias = p[off:off + b]; off += b\n"
    "        x = x @ w + bias\n"
    "        if l < len(dims) - 2:\n"
    "            x = torch.tanh(x)\n"
    "    return x, off\n"
    "x = torch.tensor(C.x).reshape(C.B, C.D)\n"
    "lat, off = mlp(x, C.enc, 0)\n"
    "a, off = mlp(lat, C.dec, off)\n"
    "xh = torch.sigmoid(a)\n"
    "l2 = 0.5 * sum((p[o:o + n] ** 2).sum() for o, n in C.weights)\n"
    "loss = m.lossd_loss(x, xh, t=C.T, l2=l2, feat=m._digits_feat(C.fixednet) if hasattr(m, '_digits_feat') else None)\n"
    "loss.backward()\n"
    "print(repr(float(loss)))\n"
    "print(' '.join(repr(float(v)) for v in p.grad))\n";

static void test_step_torch(void **state) {
    (void)state;
    if (!torch_have()) {
        print_message("skipping: " TORCH_PY " with torch is not available\n");
        skip();
    }
    static const char *const losses[] = {"rec", "bce_rec", "rec + 0.1*perc", "0.3*perc + bce_rec + 0.01*l2",
                                         "(1 - t)*rec + sum(abs(xh - x))"};
    double worst = 0;
    for (size_t q = 0; q < sizeof losses / sizeof *losses; q++) {
        StepRun s;
        step_open(&s, STEP_SPEC, losses[q]);
        TrainGroup *g = &s.tr.group[0];
        LdRng rng0 = s.tr.rng;
        float loss = step_at(&s, &rng0);
        char dir[] = "/tmp/lossd_gen_XXXXXX";
        FILE *f = torch_case_open(dir, s.e, FAM_GENERATIVE);
        const Task *t = s.t;
        int B = t->train_spec.batch, D = t->train.d, H = t->model.hidden[0], L = gen_task(t)->latent;
        fprintf(f, "B = %d\nD = %d\nT = %.9g\nenc = [%d, %d, %d]\ndec = [%d, %d, %d]\nfixednet = '%s/%s'\n", B, D,
                s.tr.t, D, H, L, L, H, D, ld_data_dir(), FIXEDNET_FILE);
        /* the weights' offsets and sizes (l2 reads weights, not biases) */
        fprintf(f, "weights = [(0, %d), (%d, %d), (%d, %d), (%d, %d)]\n", D * H, D * H + H, H * L,
                D * H + H + H * L + L, L * H, D * H + H + H * L + L + L * H + H, H * D);
        torch_list(f, "params", g->params, g->n);
        float *xb = malloc(sizeof(float) * (size_t)B * D);
        for (int i = 0; i < B; i++) memcpy(xb + (size_t)i * D, t->train.x + (size_t)s.batches[i] * D, sizeof(float) * D);
        torch_list(f, "x", xb, (size_t)B * D);
        free(xb);
        fclose(f);
        double dg = torch_case_check(dir, torch_driver, losses[q], loss, g->grads, g->n, 0);
        worst = fmax(worst, dg);
        step_close(&s);
    }
    print_message("training step against PyTorch (float64, lossd's exported loss): 5 losses, worst scaled "
                  "gradient difference %.2g (tolerance 1e-4)\n", worst);
}

/* ---- runs: learning, determinism in 1 and 2 threads */

typedef struct ThreadRun {
    const Task *t;
    const char *loss;
    EvalResult r;
} ThreadRun;

static void *thread_run(void *arg) {
    ThreadRun *a = arg;
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(a->loss, err);
    EvalOpts o = {.seed = 3, .steps = 150};
    if (eval_run(a->t, e, &o, &a->r, err)) a->r.ok = 0;
    expr_free(e);
    return NULL;
}

static void test_runs(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\"}", err);
    assert_non_null(t);
    assert_string_equal(task_metric(t), "rec_accuracy");
    assert_int_equal(task_higher_better(t), 1);
    assert_int_equal(task_steps(t), 300);
    EvalResult r = run_loss(t, "rec", 1, 0);
    assert_true(r.ok);
    assert_int_equal(r.nextra, 2);
    print_message("digits 64-32-8-32-64, rec, 300 steps: rec_accuracy val %.4f test %.4f, rec_mse test %.4f\n", r.val,
                  r.test, r.extra[0].test);
    assert_true(r.val > 0.6 && r.test > 0.6); /* chance is 0.1 */
    assert_true(r.extra[0].test < 0.05);      /* predicting the mean pixel: ~0.11 */
    /* one thread, then two at once: the same numbers */
    ThreadRun one = {t, "rec + 0.1*perc", {0}}, a = one, b = one;
    thread_run(&one);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, thread_run, &a);
    pthread_create(&tb, NULL, thread_run, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(one.r.ok && a.r.ok && b.r.ok);
    assert_true(one.r.val == a.r.val && one.r.val == b.r.val && one.r.test == a.r.test && one.r.test == b.r.test);
    assert_true(one.r.final_loss == a.r.final_loss && one.r.final_loss == b.r.final_loss);
    print_message("rec + 0.1*perc, seed 3: val %.6f, final loss %.6f in 1 thread and in each of 2 at once\n", one.r.val,
                  one.r.final_loss);
    task_free(t);
}

/* ---- bad input */

static void expect_load_error(const char *json, const char *want) {
    char err[LD_ERR_MAX] = "";
    Task *t = task_from_json(json, err);
    if (t || !strstr(err, want)) print_error("%s: got '%s', want '%s'\n", json, err, want);
    assert_null(t);
    assert_non_null(strstr(err, want));
}

static void expect_loss_error(const char *json, const char *loss, const char *want) {
    char err[LD_ERR_MAX] = "";
    Task *t = task_from_json(json, err);
    assert_non_null(t);
    Expr *e = expr_parse(loss, err);
    assert_non_null(e);
    EvalOpts o = {.seed = 1, .steps = 5};
    EvalResult r;
    int rc = eval_run(t, e, &o, &r, err);
    if (rc == LD_OK || !strstr(err, want)) print_error("%s on %s: got '%s', want '%s'\n", loss, json, err, want);
    assert_int_not_equal(rc, LD_OK);
    assert_non_null(strstr(err, want));
    expr_free(e);
    task_free(t);
}

static void test_bad_input(void **state) {
    (void)state;
    expect_load_error("{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"kind\": \"vae\"}}",
                      "model.kind: 'vae' is not a generative model (autoencoder or gan)");
    expect_load_error("{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"latnet\": 4}}",
                      "unknown key 'latnet' (did you mean 'latent'?)");
    expect_load_error("{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"latent\": 0}}",
                      "model.latent: 0 is out of range [1, 1024]");
    expect_load_error("{\"family\": \"generative\", \"data\": \"builtin:wine\", \"metric\": \"rec_accuracy\"}",
                      "rec_accuracy scores reconstructions with the fixed digits classifier");
    expect_load_error("{\"data\": \"builtin:digits\", \"transform\": {\"pixel_noise\": 0.3}}",
                      "unknown key 'pixel_noise' for a classification task (only generative tasks read it)");
    expect_loss_error("{\"family\": \"generative\", \"data\": \"builtin:wine\"}", "bce_rec",
                      "bce_rec is a Bernoulli likelihood of values in [0, 1], but builtin:wine: feature column 1 of 13 "
                      "holds");
    expect_loss_error("{\"family\": \"generative\", \"data\": \"builtin:wine\"}", "rec + perc",
                      "perc measures distances in the fixed digits network's features");
    expect_loss_error("{\"family\": \"generative\", \"data\": \"builtin:digits\"}", "ce",
                      "term 'ce' is not available for generative tasks");
    expect_loss_error("{\"data\": \"builtin:digits\"}", "rec", "term 'rec' is not available for classification tasks");
    /* rec on features outside [0, 1]: linear outputs, rec_mse only */
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:wine\", \"train\": {\"steps\": 50}}", err);
    assert_non_null(t);
    assert_string_equal(task_metric(t), "rec_mse");
    EvalResult r = run_loss(t, "rec", 1, 0);
    assert_true(r.ok && r.nextra == 1);
    const char *why = NULL;
    uint32_t refused = task_refused_terms(t, &why);
    printf("wine as read: refused terms 0x%x (%s)\n", refused, why ? why : "-");
    assert_true((refused >> TERM_BCE_REC) & 1u);
    assert_true((refused >> TERM_PERC) & 1u);
    assert_non_null(strstr(why, "bce_rec needs values in [0, 1], but builtin:wine: feature column 1 of 13"));
    task_free(t);
    expect_load_error("{\"family\": \"generative\", \"data\": \"builtin:wine\", \"transform\": {\"scale\": \"zscore\"}}",
                      "transform.scale: 'zscore' is not a scaling");
}

/* transform.scale "minmax": every feature of the training rows spans [0, 1] exactly (wine has no
 * constant column), the validation and test rows are clipped into it, bce_rec trains, and the
 * reconstruction error of rec is far below the unscaled one (13.3 as read). */
static void test_minmax(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:wine\", \"transform\": {\"scale\": \"minmax\"}}",
                   err);
    if (!t) print_error("%s\n", err);
    assert_non_null(t);
    const Dataset *sp[3] = {&t->train, &t->val, &t->test};
    int d = t->train.d, outside = 0;
    for (int j = 0; j < d; j++) {
        float lo = 1, hi = 0;
        for (int i = 0; i < t->train.n; i++) {
            float v = t->train.x[(size_t)i * d + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (lo != 0.0f || hi != 1.0f) print_error("feature %d: training range [%g, %g], expected [0, 1]\n", j, lo, hi);
        assert_true(lo == 0.0f && hi == 1.0f);
    }
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < (size_t)sp[s]->n * d; k++) outside += !(sp[s]->x[k] >= 0.0f && sp[s]->x[k] <= 1.0f);
    assert_int_equal(outside, 0);
    const char *why = NULL;
    assert_int_equal(task_refused_terms(t, &why), 1u << TERM_PERC); /* 13 features: not the digits network's */
    EvalResult a = run_loss(t, "rec", 1, 0), b = run_loss(t, "bce_rec", 1, 0);
    printf("wine, minmax: test rec_mse %.4f (rec), %.4f (bce_rec)\n", a.test, b.test);
    assert_true(a.ok && b.ok);
    assert_true(a.test < 0.05 && b.test < 0.05);
    task_free(t);
}

/* ---- pixel_noise: the share of training values changed, deterministic, clean test split */

static void test_pixel_noise(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *c = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\"}", err);
    Task *n = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\", \"transform\": {\"pixel_noise\": 0.3}}",
                             err);
    assert_true(c && n);
    size_t nv = (size_t)c->train.n * c->train.d, diff = 0, ext = 0;
    for (size_t k = 0; k < nv; k++) {
        diff += c->train.x[k] != n->train.x[k];
        ext += n->train.x[k] == 0.0f || n->train.x[k] == 1.0f;
    }
    for (size_t k = 0; k < (size_t)c->test.n * c->test.d; k++) assert_true(c->test.x[k] == n->test.x[k]);
    /* a value already at its column's minimum or maximum may be drawn to the same value */
    print_message("pixel_noise 0.3: %.3f of training values changed, %.3f at 0 or 1\n", (double)diff / nv,
                  (double)ext / nv);
    assert_true((double)diff / nv > 0.15 && (double)diff / nv <= 0.3);
    cJSON *s = task_spec(n);
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "transform"), "pixel_noise");
    assert_true(cJSON_IsNumber(pn) && pn->valuedouble == 0.3);
    cJSON_Delete(s);
    task_free(c);
    task_free(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terms_fd),   cmocka_unit_test(test_fixednet_perc_fd), cmocka_unit_test(test_step_fd),
        cmocka_unit_test(test_step_torch), cmocka_unit_test(test_runs),             cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_pixel_noise), cmocka_unit_test(test_minmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
