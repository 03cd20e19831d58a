/* test_gan.c: the generative family's gan kind: tasks load with their defaults and refuse bad
 * keys, sides, terms and data with clear errors; a run is deterministic in its seed, also when
 * two runs train at once in two threads; training on nsgan brings the Frechet distance far below
 * the untrained generator's and covers the digit classes; the Frechet distance itself matches
 * its closed form on diagonal Gaussians; every side and adversarial term trains to a finite
 * result. */
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

#include "../evaluator/eval.h"
#include "../evaluator/fixednet.h"
#include "../evaluator/generative.h"
#include "../evaluator/internal.h"
#include "../lang/lossprog.h"
#include "eval_util.h"

/* evaluator/gan.c, exposed for this test */
double gan_frechet(const double *m1, const double *c1, const double *m2, const double *c2, int H, double *work);

#define GAN_TASK "{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"kind\": \"gan\"}"

static double metric(const EvalResult *r, const char *name, int test) {
    for (int i = 0; i < r->nextra; i++)
        if (!strcmp(r->extra[i].name, name)) return test ? r->extra[i].test : r->extra[i].val;
    return NAN;
}

static void test_load_and_defaults(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json(GAN_TASK "}", err);
    if (!t) print_error("%s\n", err);
    assert_non_null(t);
    assert_string_equal(task_metric(t), "fid");
    assert_int_equal(task_higher_better(t), 0);
    assert_int_equal(task_steps(t), 1000);
    cJSON *spec = task_spec(t);
    char *txt = cJSON_PrintUnformatted(spec);
    printf("normalised spec: %.300s\n", txt);
    free(txt);
    cJSON_Delete(spec);
    task_free(t);
    t = task_from_json(GAN_TASK ", \"metric\": \"coverage\", \"gan\": {\"train\": \"both\", \"clip\": 0.05}, "
                                "\"train\": {\"d_steps\": 3}}",
                       err);
    if (!t) print_error("%s\n", err);
    assert_non_null(t);
    assert_string_equal(task_metric(t), "coverage");
    assert_int_equal(task_higher_better(t), 1);
    task_free(t);
}

static void test_bad_specs(void **state) {
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {GAN_TASK ", \"train\": {\"d_steps\": 0}}", "train.d_steps: 0 is out of range [1, 100]"},
        {GAN_TASK ", \"train\": {\"d_steps\": 101}}", "train.d_steps: 101 is out of range [1, 100]"},
        {GAN_TASK ", \"train\": {\"d_steps\": 1.5}}", "train.d_steps: expected an integer"},
        {GAN_TASK ", \"gan\": {\"train\": \"critic\"}}", "gan.train: 'critic' is not a side"},
        {GAN_TASK ", \"gan\": {\"other\": \"ce\"}}", "gan.other: 'ce' is not an adversarial term"},
        {GAN_TASK ", \"gan\": {\"train\": \"both\", \"other\": \"wgan\"}}", "gan.train \"both\""},
        {GAN_TASK ", \"gan\": {\"clip\": -1}}", "gan.clip: -1 is out of range"},
        {GAN_TASK ", \"gan\": {\"trian\": \"both\"}}", "unknown key 'trian' (did you mean 'train'?)"},
        {"{\"family\": \"generative\", \"data\": \"builtin:wine\", \"model\": {\"kind\": \"gan\"}}",
         "needs 64 features in [0, 1]"},
        {"{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"kind\": \"gans\"}}",
         "model.kind: 'gans' is not a generative model"},
        {GAN_TASK ", \"metric\": \"rec_mse\"}", "'rec_mse' is not a metric of model.kind \"gan\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Task *t = task_from_json(cases[i].json, err);
        printf("%-90.90s -> %s\n", cases[i].json, t ? "loaded" : err);
        if (t) task_free(t);
        assert_null(t);
        if (!strstr(err, cases[i].want)) print_error("expected '%s'\n", cases[i].want);
        assert_non_null(strstr(err, cases[i].want));
    }
}

/* A GAN term on an autoencoder task and an autoencoder term on a GAN task are refused before
 * training, naming the term and the kind. */
static void test_bad_losses(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *gan = task_from_json(GAN_TASK "}", err);
    Task *ae = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\"}", err);
    assert_non_null(gan);
    assert_non_null(ae);
    static const struct {
        int on_gan;
        const char *loss, *want;
    } cases[] = {
        {0, "rec + 0.1*nsgan", "'nsgan' is not available for generative tasks with model.kind \"autoencoder\""},
        {0, "rec + dgz", "'dgz' is not available for generative tasks with model.kind \"autoencoder\""},
        {1, "nsgan + 10*ce", "term 'ce' is not available for generative tasks"},
        {1, "nsgan + y", "'y' is not available for generative tasks"},
        {1, "ce", "term 'ce' is not available for generative tasks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        err[0] = 0;
        EvalResult r = run_loss_rc(cases[i].on_gan ? gan : ae, cases[i].loss, 1, 2, &rc, err);
        (void)r;
        printf("%-12s %-18s -> %s\n", cases[i].on_gan ? "gan" : "autoencoder", cases[i].loss, rc ? err : "ran");
        assert_int_not_equal(rc, LD_OK);
        if (!strstr(err, cases[i].want)) print_error("expected '%s'\n", cases[i].want);
        assert_non_null(strstr(err, cases[i].want));
    }
    task_free(gan);
    task_free(ae);
}

typedef struct Job {
    const Task *t;
    const char *loss;
    uint64_t seed;
    int steps;
    EvalResult r;
} Job;

static void *job_run(void *arg) {
    Job *j = arg;
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(j->loss, err);
    EvalOpts o = {.seed = j->seed, .steps = j->steps};
    if (e) eval_run(j->t, e, &o, &j->r, err);
    expr_free(e);
    return NULL;
}

static int same_result(const EvalResult *a, const EvalResult *b) {
    if (a->ok != b->ok || a->steps != b->steps || a->ncurve != b->ncurve) return 0;
    if (memcmp(&a->val, &b->val, sizeof a->val) || memcmp(&a->test, &b->test, sizeof a->test)) return 0;
    for (int i = 0; i < a->ncurve; i++)
        if (a->curve[i].loss != b->curve[i].loss || a->curve[i].val != b->curve[i].val) return 0;
    for (int i = 0; i < a->nextra; i++)
        if (memcmp(&a->extra[i].val, &b->extra[i].val, sizeof(double)) ||
            memcmp(&a->extra[i].test, &b->extra[i].test, sizeof(double)))
            return 0;
    return 1;
}

/* Runs a and b alone, then copies of them in two threads at once (into a2, b2). */
static void run_alone_and_paired(Job *a, Job *b, Job *a2, Job *b2) {
    job_run(a);
    job_run(b);
    *a2 = *a;
    *b2 = *b;
    pthread_t th[2];
    assert_int_equal(pthread_create(&th[0], NULL, job_run, a2), 0);
    assert_int_equal(pthread_create(&th[1], NULL, job_run, b2), 0);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
}

/* The same seed gives bit-identical results run alone (one thread) and run beside another
 * evaluation (two threads at once); another seed gives another result. */
static void test_deterministic(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json(GAN_TASK ", \"train\": {\"d_steps\": 2}}", err);
    assert_non_null(t);
    Job a = {.t = t, .loss = "nsgan", .seed = 3, .steps = 60}, b = {.t = t, .loss = "hinge_gan + 0.01*dgz^2 + rec + 0.1*perc", .seed = 4, .steps = 60};
    Job a2, b2;
    run_alone_and_paired(&a, &b, &a2, &b2);
    printf("seed 3 nsgan: fid val %.6f test %.6f alone, %.6f %.6f in two threads\n", a.r.val, a.r.test, a2.r.val,
           a2.r.test);
    printf("seed 4 hinge_gan + 0.01*dgz^2 + rec + 0.1*perc: fid val %.6f alone, %.6f in two threads\n", b.r.val, b2.r.val);
    assert_true(a.r.ok && b.r.ok);
    assert_true(same_result(&a.r, &a2.r));
    assert_true(same_result(&b.r, &b2.r));
    Job c = {.t = t, .loss = "nsgan", .seed = 5, .steps = 60};
    job_run(&c);
    printf("seed 5 nsgan: fid val %.6f\n", c.r.val);
    assert_false(same_result(&a.r, &c.r));
    task_free(t);
}

/* WGAN-GP (gan.gp): a wgan critic trained with the gradient penalty (its gradient is checked
 * against central differences in test_mlp) instead of the clip: a finite result other than the
 * clipped critic's, the same alone and in two threads; a non-relu critic is refused at the run's
 * start, a negative weight at load. */
static void test_wgan_gp(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *gp = task_from_json(GAN_TASK ", \"gan\": {\"other\": \"wgan\", \"gp\": 10}}", err);
    Task *clip = task_from_json(GAN_TASK ", \"gan\": {\"other\": \"wgan\"}}", err);
    assert_non_null(gp);
    assert_non_null(clip);
    Job a = {.t = gp, .loss = "wgan", .seed = 3, .steps = 80}, b = {.t = gp, .loss = "wgan + rec", .seed = 4, .steps = 80};
    Job a2, b2;
    run_alone_and_paired(&a, &b, &a2, &b2);
    EvalResult c = run_loss(clip, "wgan", 3, 80);
    printf("wgan seed 3, 80 steps: gp fid val %.6f alone, %.6f in two threads; clip %.6f; wgan + rec %.6f / %.6f\n",
           a.r.val, a2.r.val, c.val, b.r.val, b2.r.val);
    assert_true(a.r.ok && b.r.ok && c.ok);
    assert_true(isfinite(a.r.val) && isfinite(b.r.val));
    assert_true(same_result(&a.r, &a2.r));
    assert_true(same_result(&b.r, &b2.r));
    assert_false(same_result(&a.r, &c));
    task_free(gp);
    task_free(clip);
    Task *tanh_gp = task_from_json("{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"kind\": "
                                   "\"gan\", \"activation\": \"tanh\"}, \"gan\": {\"other\": \"wgan\", \"gp\": 10}}", err);
    assert_non_null(tanh_gp);
    int rc;
    run_loss_rc(tanh_gp, "wgan", 1, 5, &rc, err);
    printf("tanh critic with gan.gp -> %s\n", rc ? err : "ran");
    assert_int_not_equal(rc, LD_OK);
    assert_non_null(strstr(err, "gan.gp"));
    task_free(tanh_gp);
    Task *neg = task_from_json(GAN_TASK ", \"gan\": {\"gp\": -1}}", err);
    printf("gan.gp -1 -> %s\n", neg ? "loaded" : err);
    assert_null(neg);
    assert_non_null(strstr(err, "gan.gp: -1 is out of range"));
}

/* nsgan over the default 1000 steps: the generated digits' Frechet distance to the test digits
 * falls far below the untrained generator's, and the fixed classifier finds most classes among
 * them. */
static void test_learns(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json(GAN_TASK "}", err);
    assert_non_null(t);
    EvalResult r0 = run_loss(t, "nsgan", 1, 1), r = run_loss(t, "nsgan", 1, 0);
    double f0 = metric(&r0, "fid", 1), f1 = metric(&r, "fid", 1), c1 = metric(&r, "coverage", 1);
    printf("nsgan, seed 1: test fid %.4f after 1 step, %.4f after %d steps (%.0f ms); coverage %.2f -> %.2f\n", f0,
           f1, r.steps, r.wall_ms, metric(&r0, "coverage", 1), c1);
    for (int i = 0; i < r.ncurve; i++) printf("  step %4d loss %.4f val fid %.4f\n", r.curve[i].step, r.curve[i].loss, r.curve[i].val);
    assert_true(f1 < 0.5 * f0);
    assert_true(c1 >= 0.7);
    task_free(t);
}

/* Every side and adversarial term trains to a finite result: the searched loss on the
 * discriminator's side, on both, and each textbook term as the other side's loss (wgan with the
 * critic's weights clipped). */
static void test_sides_and_terms(void **state) {
    (void)state;
    static const struct {
        const char *gan, *loss;
    } cases[] = {
        {"{\"train\": \"generator\", \"other\": \"hinge_gan\"}", "nsgan"},
        {"{\"train\": \"generator\", \"other\": \"wgan\"}", "wgan"},
        {"{\"train\": \"generator\", \"other\": \"gan\"}", "gan"},
        {"{\"train\": \"discriminator\"}", "hinge_gan"},
        {"{\"train\": \"discriminator\", \"other\": \"wgan\", \"clip\": 0.05}", "wgan"},
        {"{\"train\": \"both\"}", "nsgan + 0.001*(dx^2 + dgz^2)"},
        /* with reconstruction terms: the encoder trains with the generator */
        {"{\"train\": \"generator\"}", "nsgan + 10*rec"},
        {"{\"train\": \"generator\"}", "hinge_gan + bce_rec + 0.1*perc + 0.01*l2"},
        {"{\"train\": \"both\"}", "nsgan + rec"},
        {"{\"train\": \"discriminator\"}", "hinge_gan + 0.1*rec"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512], err[LD_ERR_MAX];
        snprintf(json, sizeof json, GAN_TASK ", \"gan\": %s}", cases[i].gan);
        Task *t = task_from_json(json, err);
        if (!t) print_error("%s: %s\n", json, err);
        assert_non_null(t);
        EvalResult r = run_loss(t, cases[i].loss, 2, 150);
        printf("gan %-58s loss %-30s fid %.4f coverage %.2f\n", cases[i].gan, cases[i].loss, metric(&r, "fid", 0),
               metric(&r, "coverage", 0));
        assert_true(r.ok);
        assert_true(isfinite(metric(&r, "fid", 0)));
        task_free(t);
    }
}

/* Diagonal Gaussians: the distance is |m1 - m2|^2 + sum (sqrt a - sqrt b)^2; identical ones 0;
 * and a rotated pair (the same covariance in another basis) agrees with the diagonal pair. */
static void test_frechet(void **state) {
    (void)state;
    enum { H = 5 };
    double m1[H], m2[H], c1[H * H] = {0}, c2[H * H] = {0}, work[4 * H * H], want = 0;
    for (int j = 0; j < H; j++) {
        m1[j] = 0.3 * j;
        m2[j] = 1 - 0.2 * j;
        c1[j * H + j] = 0.5 + j;
        c2[j * H + j] = 2.0 / (1 + j);
        want += (m1[j] - m2[j]) * (m1[j] - m2[j]) + pow(sqrt(c1[j * H + j]) - sqrt(c2[j * H + j]), 2);
    }
    double got = gan_frechet(m1, c1, m2, c2, H, work), self = gan_frechet(m1, c1, m1, c1, H, work);
    /* rotate both covariances by the same orthogonal Q (a Householder reflection) */
    double q[H * H], u[H], uu = 0, r1[H * H], r2[H * H], tmp[H * H];
    for (int j = 0; j < H; j++) uu += (u[j] = 1.0 + j * j) * (1.0 + j * j);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < H; j++) q[i * H + j] = (i == j) - 2 * u[i] * u[j] / uu;
    const double *src[2] = {c1, c2};
    double *dst[2] = {r1, r2};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < H; i++)
            for (int j = 0; j < H; j++) {
                double v = 0;
                for (int k = 0; k < H; k++) v += q[i * H + k] * src[s][k * H + j];
                tmp[i * H + j] = v;
            }
        for (int i = 0; i < H; i++)
            for (int j = 0; j < H; j++) {
                double v = 0;
                for (int k = 0; k < H; k++) v += tmp[i * H + k] * q[j * H + k];
                dst[s][i * H + j] = v;
            }
    }
    double rot = gan_frechet(m1, r1, m2, r2, H, work);
    printf("frechet: %.12f (closed form %.12f), self %.3g, rotated %.12f\n", got, want, self, rot);
    assert_true(fabs(got - want) < 1e-9 * fmax(1, want));
    assert_true(fabs(self) < 1e-9);
    assert_true(fabs(rot - want) < 1e-9 * fmax(1, want));
}

/* Mean and covariance (n - 1) of the n rows of x (n, 64) in the fixed network's features. */
static void feature_moments(const FixedNet *net, const float *x, int n, double *m, double *c) {
    int H = net->h;
    float *f = calloc((size_t)n * H, sizeof *f);
    assert_non_null(f);
    fixednet_features(net, f, x, n);
    for (int j = 0; j < H; j++) {
        m[j] = 0;
        for (int i = 0; i < n; i++) m[j] += f[(size_t)i * H + j] / n;
    }
    for (int j = 0; j < H; j++)
        for (int k = 0; k < H; k++) {
            double v = 0;
            for (int i = 0; i < n; i++) v += (f[(size_t)i * H + j] - m[j]) * (f[(size_t)i * H + k] - m[k]);
            c[j * H + k] = v / (n - 1);
        }
    free(f);
}

/* The floor sampling allows: the held-out real digits of the validation split against the test
 * split's (docs/families.md quotes it). */
static void test_frechet_floor(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json(GAN_TASK "}", err);
    assert_non_null(t);
    const FixedNet *net = fixednet_get(err);
    assert_non_null(net);
    int H = net->h;
    double *m1 = calloc((size_t)H, sizeof(double)), *m2 = calloc((size_t)H, sizeof(double));
    double *c1 = calloc((size_t)H * H, sizeof(double)), *c2 = calloc((size_t)H * H, sizeof(double));
    double *work = calloc((size_t)4 * H * H, sizeof(double));
    feature_moments(net, t->val.x, t->val.n, m1, c1);
    feature_moments(net, t->test.x, t->test.n, m2, c2);
    double fd = gan_frechet(m1, c1, m2, c2, H, work);
    printf("real validation digits (%d) against real test digits (%d): Frechet distance %.4f\n", t->val.n, t->test.n,
           fd);
    assert_true(fd > 0 && fd < 2);
    free(m1), free(m2), free(c1), free(c2), free(work);
    task_free(t);
}

/* The search's probes know a GAN loss: the pre-check passes the textbook terms of either side
 * and refuses a loss that trains neither side; losses that train differently get different
 * gradient signatures, and the same loss written twice the same one. */
static void test_probes(void **state) {
    (void)state;
    static const struct {
        const char *loss;
        int ok;
    } pre[] = {
        {"nsgan", 1}, {"gan", 1}, {"wgan", 1}, {"hinge_gan", 1}, {"softplus(-dgz) + 0.1*dgz^2", 1},
        {"softplus(-dx) + softplus(dgz)", 1}, {"dgz", 0}, {"softplus(dgz) + 0.5*dx", 0},
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(pre[i].loss, err);
        assert_non_null(e);
        int rc = eval_precheck(e, FAM_GENERATIVE, 1, err);
        printf("precheck %-32s -> %s\n", pre[i].loss, rc ? err : "passes");
        assert_int_equal(rc == LD_OK, pre[i].ok);
        expr_free(e);
    }
    int n = eval_signature_len(FAM_GENERATIVE, 1);
    float *s[3];
    const char *sl[3] = {"nsgan", "hinge_gan", "softplus(-dgz)"};
    for (int k = 0; k < 3; k++) {
        char err[LD_ERR_MAX] = "";
        s[k] = calloc((size_t)n, sizeof(float));
        Expr *e = expr_parse(sl[k], err);
        int rc = eval_signature(e, FAM_GENERATIVE, 1, s[k], n, err);
        if (rc) print_error("signature %s: %s\n", sl[k], err);
        assert_int_equal(rc, LD_OK);
        expr_free(e);
    }
    double d01 = 0, d02 = 0;
    for (int k = 0; k < n; k++) {
        d01 += fabs(s[0][k] - s[1][k]);
        d02 += fabs(s[0][k] - s[2][k]);
    }
    /* nsgan and softplus(-dgz) agree on the generator's side only */
    printf("signature L1 distance nsgan-hinge_gan %.3f, nsgan-softplus(-dgz) %.3f\n", d01, d02);
    assert_true(d01 > 0.1);
    assert_true(d02 > 0.1);
    for (int k = 0; k < 3; k++) free(s[k]);
}

/* ---- a GAN loss with reconstruction terms: the generator step's gradient (generator and
 * encoder) against central differences, the discriminator held fixed (its learning rate 0) and
 * the whole run state restored before each evaluation */

static int lp_fn(void *ctx, const LossIn *in, LossOut *out) { return lossprog_run(ctx, in, out); }

static uint32_t term_bits(const Expr *e) {
    if (!e) return 0;
    return (e->op == EOP_TERM ? 1u << e->id : 0) | term_bits(e->a) | term_bits(e->b);
}

typedef struct GanStep {
    Task *t;
    Expr *e;
    LossProg *lp;
    Trainer tr;
    void *snap; /* the arena as setup left it */
} GanStep;

#define REC_SPEC                                                                                   \
    "{\"family\": \"generative\", \"data\": \"builtin:digits\", \"model\": {\"kind\": \"gan\", \"noise\": 4, "  \
    "\"hidden\": [12], \"activation\": \"tanh\"}, \"train\": {\"batch\": 5}}"

static void gstep_open(GanStep *s, const char *spec, const char *loss) {
    char err[LD_ERR_MAX];
    memset(s, 0, sizeof *s);
    s->t = task_from_json(spec, err);
    if (!s->t) print_error("%s: %s\n", spec, err);
    assert_non_null(s->t);
    s->e = expr_parse(loss, err);
    assert_non_null(s->e);
    const EvalFamily *f = eval_family(FAM_GENERATIVE);
    int B, C, D;
    f->loss_shape(s->t, &B, &C, &D);
    assert_int_equal(f->check_loss(s->t, s->e, err), LD_OK);
    assert_int_equal(lossprog_new(s->e, FAM_GENERATIVE, B, C, D, &s->lp, err), LD_OK);
    Trainer *tr = &s->tr;
    tr->task = s->t;
    tr->seed = 5;
    tr->steps = 10;
    tr->t = 0.25f;
    tr->loss = (TrainLoss){.fn = lp_fn, .ctx = s->lp, .use_l2 = (term_bits(s->e) >> TERM_L2) & 1u,
                           .terms = term_bits(s->e), .inputs = expr_inputs(s->e)};
    tr->use_l2 = tr->loss.use_l2;
    rng_seed(&tr->rng, 9);
    size_t np = 0, need = f->run_bytes(s->t, &np);
    need += 2 * (np * sizeof(float) + 64 * TRAIN_MAX_GROUPS) + 4096;
    assert_int_equal(arena_init(&tr->arena, need), LD_OK);
    if (f->setup(tr, err)) print_error("setup: %s\n", err);
    assert_int_equal(tr->ngroups, 2);
    tr->group[1].lr = 0; /* the discriminator's update leaves it as it is */
    s->snap = malloc(tr->arena.cap);
    memcpy(s->snap, tr->arena.base, tr->arena.cap);
}

static void gstep_close(GanStep *s) {
    free(s->snap);
    arena_free(&s->tr.arena);
    lossprog_free(s->lp);
    expr_free(s->e);
    task_free(s->t);
}

/* The generator step from the saved state with parameter i of the generator's group moved by h. */
static float gstep_at(GanStep *s, const LdRng *rng0, size_t i, float h) {
    float l = NAN;
    memcpy(s->tr.arena.base, s->snap, s->tr.arena.cap);
    s->tr.group[0].params[i] += h;
    s->tr.rng = *rng0;
    assert_int_equal(eval_family(FAM_GENERATIVE)->step(&s->tr, &l), LD_OK);
    return l;
}

static void test_rec_step_fd(void **state) {
    (void)state;
    static const char *const losses[] = {"nsgan + 10*rec", "hinge_gan + bce_rec + 0.1*perc + 0.01*l2",
                                         "softplus(-dgz)*(1 + rec) + 0.5*perc"};
    double worst = 0;
    for (size_t q = 0; q < sizeof losses / sizeof *losses; q++) {
        GanStep s;
        gstep_open(&s, REC_SPEC, losses[q]);
        TrainGroup *g = &s.tr.group[0];
        LdRng rng0 = s.tr.rng;
        gstep_at(&s, &rng0, 0, 0.0f);
        float *grad = malloc(sizeof(float) * g->n);
        memcpy(grad, g->grads, sizeof(float) * g->n);
        /* the group holds the generator (noise 4 -> 12 -> 64) and then the encoder (64 -> 12 -> 4) */
        size_t ngen = (4 * 12 + 12) + (12 * 64 + 64), nenc = (64 * 12 + 12) + (12 * 4 + 4);
        if (g->n != ngen + nenc) print_error("generator group: %zu parameters, expected %zu\n", g->n, ngen + nenc);
        assert_int_equal(g->n, ngen + nenc);
        double enc_abs = 0;
        for (size_t k = ngen; k < g->n; k++) enc_abs += fabs(grad[k]);
        assert_true(enc_abs > 0); /* the reconstruction trains the encoder */
        LdRng pick;
        rng_seed(&pick, 31 + q);
        for (int k = 0; k < 40; k++) {
            /* half from the generator, half from the encoder */
            size_t i = k % 2 ? ngen + rng_below(&pick, (uint32_t)nenc) : rng_below(&pick, (uint32_t)ngen);
            float h = 1e-2f; /* the loss is ~100 (10*rec over 64 pixels): float32 rounding / h must stay small */
            double up = gstep_at(&s, &rng0, i, h), down = gstep_at(&s, &rng0, i, -h);
            double fd = (up - down) / (2 * h), d = fabs(fd - grad[i]) / fmax(0.05, fabs(grad[i]));
            if (d > 3e-2)
                print_error("%s: parameter %zu (%s): analytic %.6g, central difference %.6g\n", losses[q], i,
                            i < ngen ? "generator" : "encoder", grad[i], fd);
            assert_true(d <= 3e-2);
            worst = fmax(worst, d);
        }
        free(grad);
        gstep_close(&s);
    }
    printf("GAN + reconstruction generator step: 3 losses x 40 parameters (generator and encoder), worst scaled "
           "difference to float32 central differences %.2g (tolerance 3e-2)\n", worst);
}

/* The same generator step's loss and gradient (generator and encoder) from PyTorch autograd in
 * float64: the networks rebuilt from the parameters, the step's real rows and noise replayed from
 * its RNG, the loss from lossd's own PyTorch export of the mixture (x, xh beside dx, dgz). */
static const char rec_driver[] =
    "import sys, importlib\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import torch\n"
    "torch.set_default_dtype(torch.float64)\n"
    "import case as C\n"
    "m = importlib.import_module('lossmod')\n"
    "p = torch.tensor(C.params_g, requires_grad=True)\n"
    "pd = torch.tensor(C.params_d)\n"
    "def mlp(x, dims, prm, off):\n"
    "    for l in range(len(dims) - 1):\n"
    "        a, b = dims[l], dims[l + 1]\n"
    "        w = prm[off:off + a * b].reshape(a, b); off += a * b\n"
    "        x = x @ w + prm[off:off + b]; off += b\n"
    "        if l < len(dims) - 2:\n"
    "            x = torch.tanh(x)\n"
    "    return x\n"
    "z = torch.tensor(C.z).reshape(C.B, C.NZ)\n"
    "x = torch.tensor(C.x).reshape(C.B, C.P)\n"
    "xg = torch.sigmoid(mlp(z, C.gen, p, 0))\n"
    "xh = torch.sigmoid(mlp(mlp(x, C.enc, p, C.ngen), C.gen, p, 0))\n"
    "dx, dgz = mlp(x, C.dis, pd, 0)[:, 0], mlp(xg, C.dis, pd, 0)[:, 0]\n"
    "l2 = 0.5 * sum((p[o:o + n] ** 2).sum() for o, n in C.weights)\n"
    "feat = m._digits_feat(C.fixednet) if hasattr(m, '_digits_feat') else None\n"
    "loss = m.lossd_loss(dx, dgz, x=x, xh=xh, t=C.T, l2=l2, side='generator', feat=feat)\n"
    "loss.backward()\n"
    "print(repr(float(loss)))\n"
    "print(' '.join(repr(float(v)) for v in p.grad))\n";

static void test_rec_step_torch(void **state) {
    (void)state;
    if (!torch_have()) {
        print_message("skipping: " TORCH_PY " with torch is not available\n");
        skip();
    }
    static const char *const losses[] = {"nsgan + 10*rec + 0.1*perc + 0.01*l2", "hinge_gan*(1 + t) + bce_rec",
                                         "softplus(-dgz)*(1 + rec) + 0.5*perc"};
    enum { NZ = 4, H = 12, P = 64, B = 5 };
    const size_t ngen = (NZ * H + H) + (H * P + P);
    double worst = 0;
    for (size_t q = 0; q < sizeof losses / sizeof *losses; q++) {
        GanStep s;
        gstep_open(&s, REC_SPEC, losses[q]);
        LdRng rng0 = s.tr.rng;
        float loss = gstep_at(&s, &rng0, 0, 0.0f);
        TrainGroup *g = &s.tr.group[0], *gd = &s.tr.group[1];
        /* the generator step's draws after the discriminator's (d_steps 1): B real rows and B
         * noise rows for the discriminator's update, then the generator's */
        LdRng rr = rng0;
        const Dataset *tr = &s.t->train;
        float xr[B * P], z[B * NZ];
        for (int i = 0; i < B; i++) rng_below(&rr, (uint32_t)tr->n);
        for (int k = 0; k < B * NZ; k++) rng_normal(&rr);
        for (int i = 0; i < B; i++)
            memcpy(xr + i * P, tr->x + (size_t)rng_below(&rr, (uint32_t)tr->n) * P, sizeof(float) * P);
        for (int k = 0; k < B * NZ; k++) z[k] = rng_normal(&rr);
        char dir[] = "/tmp/lossd_ganrec_XXXXXX";
        FILE *f = torch_case_open(dir, s.e, FAM_GENERATIVE);
        fprintf(f, "B = %d\nNZ = %d\nP = %d\nT = %.9g\ngen = [%d, %d, %d]\nenc = [%d, %d, %d]\ndis = [%d, %d, 1]\n"
                   "ngen = %zu\nfixednet = '%s/%s'\n",
                B, NZ, P, s.tr.t, NZ, H, P, P, H, NZ, P, H, ngen, ld_data_dir(), FIXEDNET_FILE);
        fprintf(f, "weights = [(0, %d), (%d, %d), (%zu, %d), (%zu, %d)]\n", NZ * H, NZ * H + H, H * P, ngen, P * H,
                ngen + P * H + H, H * NZ); /* l2: the generator's and the encoder's weights */
        torch_list(f, "params_g", g->params, g->n);
        torch_list(f, "params_d", gd->params, gd->n);
        torch_list(f, "x", xr, B * P);
        torch_list(f, "z", z, B * NZ);
        fclose(f);
        double dg = torch_case_check(dir, rec_driver, losses[q], loss, g->grads, g->n, 1);
        worst = fmax(worst, dg);
        gstep_close(&s);
    }
    printf("GAN + reconstruction generator step against PyTorch (float64, lossd's exported loss): 3 losses, worst "
           "scaled gradient difference %.2g (tolerance 1e-4)\n", worst);
}

/* A GAN loss with reconstruction terms: its signature holds the reconstruction's gradient (so
 * nsgan + 10*rec and nsgan are different candidates), and perc alone passes the pre-check (its
 * gradient reaches xh through the fixed network). */
static void test_rec_probes(void **state) {
    (void)state;
    int n = eval_signature_len(FAM_GENERATIVE, 64);
    const char *sl[3] = {"nsgan", "nsgan + 10*rec", "nsgan + 10*perc"};
    float *s[3];
    for (int k = 0; k < 3; k++) {
        char err[LD_ERR_MAX] = "";
        s[k] = calloc((size_t)n, sizeof(float));
        Expr *e = expr_parse(sl[k], err);
        int rc = eval_signature(e, FAM_GENERATIVE, 64, s[k], n, err);
        if (rc) print_error("signature %s: %s\n", sl[k], err);
        assert_int_equal(rc, LD_OK);
        expr_free(e);
    }
    double d01 = 0, d12 = 0, tail = 0;
    for (int k = 0; k < n; k++) {
        d01 += fabs(s[0][k] - s[1][k]);
        d12 += fabs(s[1][k] - s[2][k]);
    }
    /* the whole d loss / d xh fits: the last row of the probe batch (8 rows of 64 pixels after
     * the 3 * 8 + 1 logit gradients) is in the signature */
    for (int k = n - 64; k < n; k++) tail += fabs(s[1][k]);
    printf("signature of %d floats (want 3*8 + 1 + 8*64 = 537); L1 of the last xh row %.3g; L1 distance nsgan vs "
           "nsgan + 10*rec %.3f, nsgan + 10*rec vs nsgan + 10*perc %.3f\n", n, tail, d01, d12);
    assert_int_equal(n, 3 * 8 + 1 + 8 * 64);
    assert_true(tail > 1e-3);
    assert_true(d01 > 0.1);
    assert_true(d12 > 0.1);
    for (int k = 0; k < 3; k++) free(s[k]);
    static const char *const pass[] = {"perc", "nsgan + 10*rec", "nsgan + perc"};
    for (size_t i = 0; i < sizeof pass / sizeof *pass; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(pass[i], err);
        int rc = eval_precheck(e, FAM_GENERATIVE, 64, err);
        printf("precheck %-16s -> %s\n", pass[i], rc ? err : "passes");
        assert_int_equal(rc, LD_OK);
        expr_free(e);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_defaults), cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_losses),        cmocka_unit_test(test_frechet), cmocka_unit_test(test_frechet_floor),
        cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_sides_and_terms),
        cmocka_unit_test(test_probes),            cmocka_unit_test(test_learns),
        cmocka_unit_test(test_rec_step_fd),       cmocka_unit_test(test_rec_step_torch),
        cmocka_unit_test(test_rec_probes),
        cmocka_unit_test(test_wgan_gp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
