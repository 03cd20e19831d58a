/* test_lossprog.c: the compiled loss program: every operator and term against central finite
 * differences, random expression trees per family, known values, the fast exp/log, and speed
 * of the standard proxy loss (printed, not asserted). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/lossd.h"
#include "../evaluator/eval.h"
#include "../lang/lossprog.h"

float lossprog_fexp(float x); /* lang/lossprog.c, exposed for this test */
float lossprog_flog(float x);

/* One problem: inputs for a family, with room to perturb them. */
typedef struct Prob {
    int fam, B, C, D;
    float z[64 * 16], y[64], emb[128 * 8];
    int label[64];
    LossIn in;
} Prob;

static void prob_init(Prob *pb, int fam, int B, int C, int D, uint64_t seed) {
    LdRng r;
    rng_seed(&r, seed);
    memset(pb, 0, sizeof *pb);
    pb->fam = fam;
    pb->B = B;
    pb->C = C;
    pb->D = D;
    for (int k = 0; k < B * C; k++) pb->z[k] = 1.5f * rng_normal(&r);
    for (int i = 0; i < B; i++) {
        pb->label[i] = (int)rng_below(&r, fam == FAM_CONTRASTIVE ? 3 : (uint32_t)C);
        pb->y[i] = rng_normal(&r);
    }
    for (int k = 0; k < 2 * B * D; k++) pb->emb[k] = rng_normal(&r);
    pb->in = (LossIn){.B = B, .t = 0.3f, .z = pb->z, .label = pb->label, .y = pb->y,
                      .emb = pb->emb, .term[TERM_L2] = 0.7f, .term[TERM_PHYS] = 0.4f, .term[TERM_BC] = 0.2f};
    if (fam == FAM_REGRESSION || fam == FAM_PHYSICS) pb->in.label = NULL;
    if (fam != FAM_CONTRASTIVE) pb->in.emb = NULL;
}

static LossProg *compile(const char *src, int fam, int B, int C, int D) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(src, err);
    if (!e) print_error("parse '%s': %s\n", src, err);
    assert_non_null(e);
    LossProg *lp = NULL;
    int rc = lossprog_new(e, fam, B, C, D, &lp, err);
    if (rc) print_error("compile '%s': %s\n", src, err);
    assert_int_equal(rc, LD_OK);
    expr_free(e);
    return lp;
}

static double run_loss(LossProg *lp, Prob *pb) {
    LossOut out;
    int rc = lossprog_run(lp, &pb->in, &out);
    return rc == LD_OK ? out.loss : NAN;
}

/* Compares the program's gradient with central differences of its loss for every model output
 * (z, or emb for contrastive) and for l2/phys/bc. Returns the number of mismatches; *kinks
 * counts coordinates where differences at h and h/4 disagree (a kink inside the step), which
 * are not counted as mismatches. */
static int fd_check(LossProg *lp, Prob *pb, const char *name, double rtol, int verbose,
                    int *kinks) {
    LossOut out;
    int rc = lossprog_run(lp, &pb->in, &out);
    if (rc != LD_OK) {
        print_error("%s: run failed (loss %g)\n", name, out.loss);
        return 1000;
    }
    float *x = pb->fam == FAM_CONTRASTIVE ? pb->emb : pb->z;
    int n = pb->fam == FAM_CONTRASTIVE ? 2 * pb->B * pb->D : pb->B * pb->C;
    static float an[64 * 16 + 3];
    const float *g = pb->fam == FAM_CONTRASTIVE ? out.demb : out.dz;
    double gmax = 0;
    for (int k = 0; k < n; k++) {
        an[k] = g[k];
        gmax = fmax(gmax, fabs(g[k]));
    }
    an[n] = out.g_term[TERM_L2];
    an[n + 1] = out.g_term[TERM_PHYS];
    an[n + 2] = out.g_term[TERM_BC];
    for (int k = n; k < n + 3; k++) gmax = fmax(gmax, fabs(an[k]));
    double L0 = fabs(out.loss);
    int bad = 0;
    double maxdiff = 0;
    for (int k = 0; k < n + 3; k++) {
        float *px = k < n ? &x[k] : k == n ? &pb->in.term[TERM_L2] : k == n + 1 ? &pb->in.term[TERM_PHYS] : &pb->in.term[TERM_BC];
        double fd[2];
        for (int pass = 0; pass < 2; pass++) {
            float h = pass == 0 ? 2e-3f : 5e-4f;
            float x0 = *px;
            *px = x0 + h;
            double lp_ = run_loss(lp, pb);
            *px = x0 - h;
            double lm = run_loss(lp, pb);
            *px = x0;
            fd[pass] = (lp_ - lm) / (2.0 * h);
        }
        /* float rounding of the loss, amplified by the step */
        double noise = 6e-8 * (L0 + 1) / 5e-4 * 4;
        double tol = rtol * fmax(fabs(an[k]), fabs(fd[0])) + 2e-3 * gmax + noise;
        double diff = fabs(fd[0] - an[k]);
        if (diff > maxdiff) maxdiff = diff;
        if (diff <= tol || fabs(fd[1] - an[k]) <= tol) continue;
        if (fabs(fd[0] - fd[1]) > tol) {
            (*kinks)++;
            continue;
        }
        if (bad < 5 && verbose)
            print_error("%s: coordinate %d: analytic %.6g, finite difference %.6g (tol %.3g)\n", name,
                        k, an[k], fd[0], tol);
        bad++;
    }
    if (verbose)
        print_message("%-40s loss %10.5g  maxdiff %.3g  (gmax %.3g, rtol %.0e) %s\n", name, out.loss,
                      maxdiff, gmax, rtol, bad ? "FAIL" : "ok");
    return bad;
}

static void check_one(const char *src, int fam, int C, int D, uint64_t seed) {
    Prob pb;
    int B = 4;
    prob_init(&pb, fam, B, C, D, seed);
    LossProg *lp = compile(src, fam, B, C, D);
    int kinks = 0;
    int bad = fd_check(lp, &pb, src, 2e-2, 1, &kinks);
    if (kinks) print_message("  (%d coordinates next to a kink skipped)\n", kinks);
    assert_int_equal(bad, 0);
    assert_true(kinks <= 1);
    lossprog_free(lp);
}

static void test_fd_classification(void **state) {
    (void)state;
    static const char *const cases[] = {
        "ce", "focal(2)", "focal(0.5)", "focal(2*(1 - t))", "hinge", "poly1(1)", "smooth(0.1)",
        "entropy", "mse", "mae", "huber(0.3)", "logcosh", "0.7*ce + 0.3*focal(2)",
        "ce + 0.01*l2", "-sum(y*log(p))", "-log(pt)", "sum(z*z)/10", "sum(exp(z - 2))",
        "sum(sqrt(p))", "sum(abs(z))", "sum(tanh(z))", "sum(sigmoid(z))", "sum(softplus(z))",
        "(1 - pt)^2*ce", "pt^0.5 + ce", "ce/(1 + pt)", "pt/2 - 1/(pt + 1)", "min(ce, 2) + max(pt, 0.2)",
        "sum(min(z, 0.5) + max(p, 0.1))", "-pt", "sum(-z^2)", "ce*t + (1 - t)*mse", "sum(p - y)^2",
        "log(sum(exp(z)))", "sum(p^3)", "sum(z^2)^0.5", "ce^1.5",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_one(cases[i], FAM_CLASSIFICATION, 5, 0, 100 + i);
}

static void test_fd_regression(void **state) {
    (void)state;
    static const char *const cases[] = {
        "mse", "mae", "huber(0.5)", "huber(1 + t)", "logcosh", "r^2 + 0.1*abs(f)", "(f - y)^2",
        "log(1 + r^2)", "sqrt(r^2 + 1)", "exp(r/4)", "softplus(r) + sigmoid(f)", "tanh(r)^2",
        "mse + 0.01*l2", "r^3/3", "max(r, 0)^2 + 0.5*min(r, 0)^2", "f*y - f",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_one(cases[i], FAM_REGRESSION, 1, 0, 200 + i);
}

static void test_fd_physics(void **state) {
    (void)state;
    static const char *const cases[] = {
        "mse + 0.1*phys + bc", "phys", "mse*(1 + phys)", "bc^2 + r^2", "mse + l2*phys",
        "logcosh + log(1 + phys)",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_one(cases[i], FAM_PHYSICS, 1, 0, 300 + i);
}

static void test_fd_contrastive(void **state) {
    (void)state;
    static const char *const cases[] = {
        "infonce(0.5)", "supcon(0.5)", "infonce(0.2) + 0.5*supcon(0.3)", "infonce + 0.01*l2",
        "infonce(0.1 + 0.4*t)", "log(1 + supcon(0.5))",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_one(cases[i], FAM_CONTRASTIVE, 1, 6, 400 + i);
}

/* ---- random trees over the grammar, per family ---- */

static Expr *rand_leaf(LdRng *r, int fam) {
    for (;;) {
        uint32_t k = rng_below(r, 3);
        if (k == 0) return expr_num((double)(1 + (int)rng_below(r, 8)) / 4.0);
        if (k == 1) {
            int v = (int)rng_below(r, VAR_COUNT);
            Expr *e = expr_var(v);
            char err[LD_ERR_MAX];
            int ok = expr_check(e, fam, err) == LD_OK || strstr(err, "does not depend") ||
                     strstr(err, "per-class");
            if (ok) return e;
            expr_free(e);
            continue;
        }
        int t = (int)rng_below(r, TERM_COUNT);
        Expr *param = NULL;
        if (rng_below(r, 3) == 0) param = expr_num(0.25 + 0.25 * rng_below(r, 8));
        Expr *e = expr_term(t, param);
        char err[LD_ERR_MAX];
        int ok = expr_check(e, fam, err) == LD_OK || strstr(err, "does not depend");
        if (ok) return e;
        expr_free(e);
    }
}

/* Operators with bounded growth so that the float program stays well away from overflow. */
static Expr *rand_tree(LdRng *r, int fam, int depth) {
    if (depth <= 0 || rng_below(r, 4) == 0) return rand_leaf(r, fam);
    static const int ops[] = {EOP_ADD, EOP_SUB, EOP_MUL, EOP_DIV, EOP_POW, EOP_NEG, EOP_LOG,
                              EOP_EXP, EOP_SQRT, EOP_ABS, EOP_TANH, EOP_SIGMOID, EOP_SOFTPLUS,
                              EOP_SUM, EOP_MIN, EOP_MAX};
    int op = ops[rng_below(r, sizeof ops / sizeof *ops)];
    Expr *a = rand_tree(r, fam, depth - 1), *b = NULL;
    switch (op) {
    case EOP_DIV: b = expr_op(EOP_ADD, expr_num(1.5), expr_op(EOP_ABS, rand_tree(r, fam, depth - 1), NULL)); break;
    case EOP_POW: b = expr_num((double)(1 + (int)rng_below(r, 3))); break;
    case EOP_LOG: a = expr_op(EOP_ADD, expr_num(1), expr_op(EOP_ABS, a, NULL)); break;
    case EOP_EXP: a = expr_op(EOP_TANH, a, NULL); break;
    case EOP_SQRT: a = expr_op(EOP_ADD, expr_num(0.5), expr_op(EOP_ABS, a, NULL)); break;
    case EOP_ADD:
    case EOP_SUB:
    case EOP_MUL:
    case EOP_MIN:
    case EOP_MAX: b = rand_tree(r, fam, depth - 1); break;
    default: break;
    }
    return expr_op(op, a, b);
}

static void property_family(int fam, int C, int D, uint64_t seed) {
    LdRng r;
    rng_seed(&r, seed);
    int accepted = 0, tries = 0, failed_runs = 0, bad_trees = 0, kinks = 0;
    char err[LD_ERR_MAX], text[EXPR_TEXT_MAX];
    while (accepted < 200 && tries < 20000) {
        tries++;
        Expr *e = rand_tree(&r, fam, 1 + (int)rng_below(&r, 4));
        if (expr_check(e, fam, err) != LD_OK && strstr(err, "per-class"))
            e = expr_op(EOP_SUM, e, NULL);
        if (expr_check(e, fam, err) != LD_OK) {
            expr_free(e);
            continue;
        }
        accepted++;
        expr_print(e, text, sizeof text);
        Prob pb;
        int B = 4;
        prob_init(&pb, fam, B, C, D, seed + (uint64_t)accepted);
        LossProg *lp = NULL;
        assert_int_equal(lossprog_new(e, fam, B, C, D, &lp, err), LD_OK);
        LossOut out;
        if (lossprog_run(lp, &pb.in, &out) != LD_OK) {
            failed_runs++;
        } else {
            int k = 0;
            int bad = fd_check(lp, &pb, text, 3e-2, 0, &k);
            kinks += k;
            if (bad) {
                bad_trees++;
                fd_check(lp, &pb, text, 3e-2, 1, &k);
            }
        }
        lossprog_free(lp);
        expr_free(e);
    }
    print_message("%s: %d random trees (of %d generated), %d mismatching, %d non-finite runs, %d "
                  "kink coordinates skipped\n",
                  family_name(fam), accepted, tries, bad_trees, failed_runs, kinks);
    assert_int_equal(accepted, 200);
    assert_int_equal(bad_trees, 0);
    assert_true(failed_runs <= 4);
}

static void test_property_classification(void **state) {
    (void)state;
    property_family(FAM_CLASSIFICATION, 4, 0, 1000);
}
static void test_property_regression(void **state) {
    (void)state;
    property_family(FAM_REGRESSION, 1, 0, 2000);
}
static void test_property_physics(void **state) {
    (void)state;
    property_family(FAM_PHYSICS, 1, 0, 3000);
}
static void test_property_contrastive(void **state) {
    (void)state;
    property_family(FAM_CONTRASTIVE, 1, 4, 4000);
}

/* ---- known values ---- */

static double loss_of(const char *src, Prob *pb) {
    LossProg *lp = compile(src, pb->fam, pb->B, pb->C, pb->D);
    LossOut out;
    int rc = lossprog_run(lp, &pb->in, &out);
    assert_int_equal(rc, LD_OK);
    lossprog_free(lp);
    return out.loss;
}

#define ASSERT_CLOSE(got, want, tol)                                                             \
    do {                                                                                         \
        double g_ = (got), w_ = (want);                                                          \
        if (!(fabs(g_ - w_) <= (tol) * fmax(1.0, fabs(w_))))                                     \
            print_error("%s = %.9g, expected %.9g (tol %g)\n", #got, g_, w_, (double)(tol));     \
        assert_true(fabs(g_ - w_) <= (tol) * fmax(1.0, fabs(w_)));                               \
    } while (0)

static void test_known_values(void **state) {
    (void)state;
    Prob pb;
    prob_init(&pb, FAM_CLASSIFICATION, 2, 3, 0, 1);
    float z[6] = {1, 2, 3, 0.5f, -1, 0};
    memcpy(pb.z, z, sizeof z);
    pb.label[0] = 2;
    pb.label[1] = 1;
    /* by hand: row 0 -log(e^3/(e+e^2+e^3)), row 1 -log(e^-1/(e^.5+e^-1+1)) */
    double ce0 = -(3 - log(exp(1) + exp(2) + exp(3)));
    double ce1 = -(-1 - log(exp(0.5) + exp(-1) + 1));
    double ce = (ce0 + ce1) / 2;
    ASSERT_CLOSE(loss_of("ce", &pb), ce, 1e-5);
    ASSERT_CLOSE(loss_of("focal(0)", &pb), ce, 1e-5);
    ASSERT_CLOSE(loss_of("poly1(0)", &pb), ce, 1e-5);
    ASSERT_CLOSE(loss_of("smooth(0)", &pb), ce, 1e-5);
    ASSERT_CLOSE(loss_of("-log(pt)", &pb), ce, 1e-5);
    ASSERT_CLOSE(loss_of("-sum(y*log(p))", &pb), ce, 1e-5);
    /* hinge: row 0: max(0, 1 + 2 - 3) = 0; row 1: max(0, 1 + 0.5 + 1) = 2.5 */
    ASSERT_CLOSE(loss_of("hinge", &pb), 1.25, 1e-6);
    /* focal(2) row by row */
    double pt0 = exp(-ce0), pt1 = exp(-ce1);
    double fo = (-(1 - pt0) * (1 - pt0) * log(pt0) - (1 - pt1) * (1 - pt1) * log(pt1)) / 2;
    ASSERT_CLOSE(loss_of("focal(2)", &pb), fo, 1e-5);
    ASSERT_CLOSE(loss_of("focal", &pb), fo, 1e-5);
    ASSERT_CLOSE(loss_of("0.7*ce + 0.3*focal(2)", &pb), 0.7 * ce + 0.3 * fo, 1e-5);
    ASSERT_CLOSE(loss_of("poly1(2)", &pb), ce + 2 * (1 - (pt0 + pt1) / 2), 1e-5);
    /* entropy and brier by direct sums */
    double H = 0, brier = 0;
    for (int i = 0; i < 2; i++) {
        double m = 0, p[3];
        for (int j = 0; j < 3; j++) m += exp(z[i * 3 + j]);
        for (int j = 0; j < 3; j++) {
            p[j] = exp(z[i * 3 + j]) / m;
            H -= p[j] * log(p[j]) / 2;
            double d = p[j] - (j == pb.label[i]);
            brier += d * d / 2;
        }
    }
    ASSERT_CLOSE(loss_of("entropy", &pb), H, 1e-5);
    ASSERT_CLOSE(loss_of("mse", &pb), brier, 1e-5);
    /* smooth(e) = (1-e) ce + e * mean_j(-log p_j) */
    double smooth = 0;
    for (int i = 0; i < 2; i++) {
        double m = 0;
        for (int j = 0; j < 3; j++) m += exp(z[i * 3 + j]);
        double s = 0;
        for (int j = 0; j < 3; j++) s += -(z[i * 3 + j] - log(m));
        smooth += (0.9 * (i ? ce1 : ce0) + 0.1 * s / 3) / 2;
    }
    ASSERT_CLOSE(loss_of("smooth(0.1)", &pb), smooth, 1e-5);
    ASSERT_CLOSE(loss_of("ce + 0.5*l2", &pb), ce + 0.35, 1e-5);

    /* regression */
    prob_init(&pb, FAM_REGRESSION, 3, 1, 0, 2);
    float f[3] = {1, -2, 0.5f}, y[3] = {0, 0.5f, 0.5f};
    memcpy(pb.z, f, sizeof f);
    memcpy(pb.y, y, sizeof y);
    ASSERT_CLOSE(loss_of("mse", &pb), (1 + 6.25 + 0) / 3, 1e-6);
    ASSERT_CLOSE(loss_of("mae", &pb), (1 + 2.5) / 3, 1e-6);
    ASSERT_CLOSE(loss_of("huber(1)", &pb), (0.5 + 1 * (2.5 - 0.5)) / 3, 1e-6);
    ASSERT_CLOSE(loss_of("logcosh", &pb), (log(cosh(1.0)) + log(cosh(2.5))) / 3, 1e-5);
    ASSERT_CLOSE(loss_of("mse + l2", &pb), (1 + 6.25) / 3 + 0.7, 1e-6);
}

/* NT-Xent and SupCon computed directly in double precision. */
static double ref_contrastive(const Prob *pb, double tau, int supcon) {
    int B = pb->B, N = 2 * B, D = pb->D;
    double u[16][8];
    for (int k = 0; k < N; k++) {
        double n = 0;
        for (int d = 0; d < D; d++) n += (double)pb->emb[k * D + d] * pb->emb[k * D + d];
        for (int d = 0; d < D; d++) u[k][d] = pb->emb[k * D + d] / sqrt(n);
    }
    double total = 0;
    for (int k = 0; k < N; k++) {
        double s[16], den = 0;
        for (int l = 0; l < N; l++) {
            s[l] = 0;
            for (int d = 0; d < D; d++) s[l] += u[k][d] * u[l][d];
            s[l] /= tau;
            if (l != k) den += exp(s[l]);
        }
        double lk = 0;
        int np = 0;
        for (int l = 0; l < N; l++) {
            if (l == k) continue;
            int pos = supcon ? pb->label[l % B] == pb->label[k % B] : l == (k + B) % N;
            if (pos) {
                lk += -(s[l] - log(den));
                np++;
            }
        }
        total += lk / np;
    }
    return total / N;
}


/* Logits beyond +-80 take the softmax path that subtracts each row's max. */
static void test_large_logits(void **state) {
    (void)state;
    Prob pb;
    prob_init(&pb, FAM_CLASSIFICATION, 2, 3, 0, 1);
    float z[6] = {100, 200, 300, -100, -200, 0};
    memcpy(pb.z, z, sizeof z);
    pb.label[0] = 1;
    pb.label[1] = 0;
    double ce0 = 300 + log1p(exp(-100.0) + exp(-200.0)) - 200;
    double ce1 = 0 + log1p(exp(-100.0) + exp(-200.0)) + 100;
    ASSERT_CLOSE(loss_of("ce", &pb), (ce0 + ce1) / 2, 1e-6);
    ASSERT_CLOSE(loss_of("-log(pt)", &pb), (log(1e12) + log(1e12)) / 2, 1e-5); /* guarded log */
    static const char *const cases[] = {"ce", "focal(2)", "entropy + ce", "mse", "smooth(0.2)"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        prob_init(&pb, FAM_CLASSIFICATION, 4, 5, 0, 500 + i);
        for (int k = 0; k < 20; k++) pb.z[k] *= 0.02f; /* small spread, then shift far out */
        for (int k = 0; k < 20; k++) pb.z[k] += k < 10 ? 150.0f : -150.0f;
        LossProg *lp = compile(cases[i], FAM_CLASSIFICATION, 4, 5, 0);
        int kinks = 0;
        assert_int_equal(fd_check(lp, &pb, cases[i], 2e-2, 1, &kinks), 0);
        lossprog_free(lp);
    }
}

static void test_contrastive_values(void **state) {
    (void)state;
    Prob pb;
    prob_init(&pb, FAM_CONTRASTIVE, 3, 1, 4, 5);
    pb.label[0] = 1;
    pb.label[1] = 0;
    pb.label[2] = 1;
    ASSERT_CLOSE(loss_of("infonce(0.5)", &pb), ref_contrastive(&pb, 0.5, 0), 1e-5);
    ASSERT_CLOSE(loss_of("infonce", &pb), ref_contrastive(&pb, 0.1, 0), 1e-5);
    ASSERT_CLOSE(loss_of("supcon(0.5)", &pb), ref_contrastive(&pb, 0.5, 1), 1e-5);
    ASSERT_CLOSE(loss_of("supcon(0.2) + l2", &pb), ref_contrastive(&pb, 0.2, 1) + 0.7, 1e-5);
    /* tiny hand case: B = 1, D = 2, views (1, 0) and (0, 1): one negative-free anchor pair,
     * so each anchor's softmax is over its positive only and the loss is 0 */
    prob_init(&pb, FAM_CONTRASTIVE, 1, 1, 2, 6);
    float emb[4] = {1, 0, 0, 2};
    memcpy(pb.emb, emb, sizeof emb);
    ASSERT_CLOSE(loss_of("infonce(0.5)", &pb), 0.0, 1e-6);
    /* B = 2, orthogonal views: anchor 0 sees its pair at cos 0.6 and a negative */
    prob_init(&pb, FAM_CONTRASTIVE, 2, 1, 2, 7);
    float emb2[8] = {1, 0, 0, 1, 0.6f, 0.8f, -1, 0};
    memcpy(pb.emb, emb2, sizeof emb2);
    ASSERT_CLOSE(loss_of("infonce(1)", &pb), ref_contrastive(&pb, 1.0, 0), 1e-5);
}

static void test_guards_and_errors(void **state) {
    (void)state;
    Prob pb;
    prob_init(&pb, FAM_CLASSIFICATION, 4, 3, 0, 9);
    char err[LD_ERR_MAX];
    Expr *e = expr_parse("phys", err);
    LossProg *lp = NULL;
    assert_int_equal(lossprog_new(e, FAM_CLASSIFICATION, 4, 3, 0, &lp, err), LD_EINVAL);
    assert_null(lp);
    print_message("rejected as expected: %s\n", err);
    expr_free(e);
    /* guarded numerics keep these finite */
    const char *finite[] = {"sum(log(p - p))", "ce/(pt - pt)", "sum(sqrt(-p))", "sum(exp(1000*z))/1e30 + ce",
                            "(pt - 1)^0.5 + ce", "(-pt)^-1.5 + ce", "log(0*pt) + ce"};
    for (size_t i = 0; i < sizeof finite / sizeof *finite; i++) {
        lp = compile(finite[i], FAM_CLASSIFICATION, 4, 3, 0);
        LossOut out;
        int rc = lossprog_run(lp, &pb.in, &out);
        if (rc != LD_OK) print_error("'%s' not finite: loss %g\n", finite[i], out.loss);
        assert_int_equal(rc, LD_OK);
        lossprog_free(lp);
    }
    /* overflow beyond the guards is reported, not returned as a number */
    lp = compile("sum(exp(100*z))*exp(80)*exp(80)", FAM_CLASSIFICATION, 4, 3, 0);
    LossOut out;
    assert_int_equal(lossprog_run(lp, &pb.in, &out), LD_EFAILED);
    /* bad inputs */
    pb.label[0] = 3;
    assert_int_equal(lossprog_run(lp, &pb.in, &out), LD_EFAILED);
    pb.label[0] = 0;
    pb.in.B = 5;
    assert_int_equal(lossprog_run(lp, &pb.in, &out), LD_EFAILED);
    lossprog_free(lp);
    /* guarded pow: integer exponents agree with the ordinary power, the odd extension holds */
    prob_init(&pb, FAM_REGRESSION, 2, 1, 0, 3);
    pb.z[0] = -2;
    pb.z[1] = 3;
    pb.y[0] = pb.y[1] = 0;
    ASSERT_CLOSE(loss_of("r^3", &pb), (-8 + 27) / 2.0, 1e-5);
    ASSERT_CLOSE(loss_of("r^2", &pb), (4 + 9) / 2.0, 1e-5);
    ASSERT_CLOSE(loss_of("r^0.5", &pb), (-sqrt(2.0) + sqrt(3.0)) / 2.0, 1e-5);
    ASSERT_CLOSE(loss_of("r/(f - f)", &pb), (-2e12 + 3e12) / 2.0, 1e-5);
}

static void test_fast_math(void **state) {
    (void)state;
    double emax = 0, lmax = 0;
    for (int k = 0; k <= 200000; k++) {
        float x = -87.0f + 167.0f * (float)k / 200000.0f;
        double want = exp((double)x), got = lossprog_fexp(x);
        emax = fmax(emax, fabs(got - want) / want);
        float y = expf(-20.0f + 40.0f * (float)k / 200000.0f);
        double lw = log((double)y), lg = lossprog_flog(y);
        lmax = fmax(lmax, fabs(lg - lw) / fmax(fabs(lw), 1.0));
    }
    print_message("fast exp max relative error %.3g, fast log max error %.3g (limit 1e-6)\n", emax,
                  lmax);
    assert_true(emax < 1e-6);
    assert_true(lmax < 1e-6);
}

static void test_speed(void **state) {
    (void)state;
    int B = 64, C = 10;
    Prob *pb = calloc(1, sizeof *pb);
    prob_init(pb, FAM_CLASSIFICATION, B, C, 0, 11);
    LossProg *lp = compile("0.7*ce + 0.3*focal(2)", FAM_CLASSIFICATION, B, C, 0);
    LossOut out;
    /* many short repetitions, keeping the best: the machine is shared, so the minimum is the
     * number that says what the code costs */
    int iters = 1000;
    for (int k = 0; k < 1000; k++) lossprog_run(lp, &pb->in, &out);
    double best = 1e9;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = ld_now_ms();
        for (int k = 0; k < iters; k++) {
            pb->in.t = (float)k / iters;
            lossprog_run(lp, &pb->in, &out);
        }
        double us = (ld_now_ms() - t0) * 1000.0 / iters;
        best = us < best ? us : best;
    }
    print_message("speed: 0.7*ce + 0.3*focal(2) at B=64, C=10: %.3f us per run (best of 200 x 1000)\n", best);
    assert_true(isfinite(out.loss));
    lossprog_free(lp);
    free(pb);
}


/* ---- probes (evaluator/probe.c) ---- */

static int precheck(const char *src, int fam, char *err) {
    Expr *e = expr_parse(src, err);
    assert_non_null(e);
    int rc = eval_precheck(e, fam, 10, err);
    expr_free(e);
    return rc;
}

static void test_precheck(void **state) {
    (void)state;
    static const struct {
        int fam;
        const char *src;
        int ok;
    } cases[] = {
        {FAM_CLASSIFICATION, "ce", 1},
        {FAM_CLASSIFICATION, "focal(2)", 1},
        {FAM_CLASSIFICATION, "mse", 1},
        {FAM_CLASSIFICATION, "0.7*ce + 0.3*focal(2)", 1},
        {FAM_CLASSIFICATION, "hinge", 1},
        {FAM_CLASSIFICATION, "poly1(1) + 0.1*entropy", 1},
        {FAM_CLASSIFICATION, "(1 - t)*ce + t*focal(2*(1 - t))", 1},
        {FAM_CLASSIFICATION, "-ce", 0},
        {FAM_CLASSIFICATION, "pt", 0},
        {FAM_CLASSIFICATION, "sum(exp(z))", 0},
        {FAM_CLASSIFICATION, "sum(z)", 0},
        {FAM_CLASSIFICATION, "ce - 0.1*l2", 0},
        {FAM_REGRESSION, "mse", 1},
        {FAM_REGRESSION, "mae", 1},
        {FAM_REGRESSION, "huber(0.5) + logcosh", 1},
        {FAM_REGRESSION, "-mse", 0},
        {FAM_REGRESSION, "f", 0},
        {FAM_PHYSICS, "mse + 0.1*phys + bc", 1},
        {FAM_PHYSICS, "phys", 1},
        {FAM_PHYSICS, "mse - phys", 0},
        {FAM_CONTRASTIVE, "infonce(0.1)", 1},
        {FAM_CONTRASTIVE, "supcon(0.2) + 1e-4*l2", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[LD_ERR_MAX] = "";
        int rc = precheck(cases[i].src, cases[i].fam, err);
        print_message("precheck %-14s %-34s -> %s %s\n", family_name(cases[i].fam), cases[i].src,
                      rc == LD_OK ? "accepted" : "rejected:", rc == LD_OK ? "" : err);
        if (cases[i].ok)
            assert_int_equal(rc, LD_OK);
        else
            assert_int_equal(rc, LD_EFAILED);
    }
    /* an expression the family cannot use is an input error, not a failed check */
    char err[LD_ERR_MAX];
    assert_int_equal(precheck("phys", FAM_CLASSIFICATION, err), LD_EINVAL);
}

static int signature(const char *src, int fam, float *sig, int n, char *err) {
    Expr *e = expr_parse(src, err);
    assert_non_null(e);
    int rc = eval_signature(e, fam, 10, sig, n, err);
    expr_free(e);
    return rc;
}

static void test_signature(void **state) {
    (void)state;
    enum { N = 64 };
    float a[N], b[N], c[N];
    char err[LD_ERR_MAX];
    assert_int_equal(signature("ce", FAM_CLASSIFICATION, a, N, err), LD_OK);
    assert_int_equal(signature("3*ce", FAM_CLASSIFICATION, b, N, err), LD_OK);
    assert_int_equal(signature("focal(2)", FAM_CLASSIFICATION, c, N, err), LD_OK);
    double dab = 0, dac = 0, na = 0;
    for (int k = 0; k < N; k++) {
        dab = fmax(dab, fabs(a[k] - b[k]));
        dac = fmax(dac, fabs(a[k] - c[k]));
        na += a[k] * a[k];
    }
    print_message("signature: |ce - 3*ce| %.3g, |ce - focal(2)| %.3g\n", dab, dac);
    assert_true(dab < 1e-6);
    assert_true(dac > 1e-3);
    assert_true(na > 0 && na <= 1.0 + 1e-5);
    /* deterministic, padded with zeros past the gradient's length */
    float big[1000];
    assert_int_equal(signature("mse", FAM_REGRESSION, big, 1000, err), LD_OK);
    float again[1000];
    assert_int_equal(signature("mse", FAM_REGRESSION, again, 1000, err), LD_OK);
    assert_memory_equal(big, again, sizeof big);
    double norm = 0;
    for (int k = 0; k < 1000; k++) norm += (double)big[k] * big[k];
    assert_true(fabs(norm - 1) < 1e-4);
    assert_true(big[999] == 0.0f);
    /* zero gradient and non-finite gradient are failures with a reason */
    assert_int_equal(signature("sum(z - z)", FAM_CLASSIFICATION, a, N, err), LD_EFAILED);
    assert_string_equal(err, "gradient is zero on the probe batch");
    assert_int_equal(signature("sum(exp(100*z))*exp(80)*exp(80)", FAM_CLASSIFICATION, a, N, err),
                     LD_EFAILED);
    assert_int_equal(signature("infonce", FAM_CONTRASTIVE, a, N, err), LD_OK);
    assert_int_equal(signature("mse + phys", FAM_PHYSICS, a, N, err), LD_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_math),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_contrastive_values),
        cmocka_unit_test(test_guards_and_errors),
        cmocka_unit_test(test_fd_classification),
        cmocka_unit_test(test_fd_regression),
        cmocka_unit_test(test_fd_physics),
        cmocka_unit_test(test_fd_contrastive),
        cmocka_unit_test(test_property_classification),
        cmocka_unit_test(test_property_regression),
        cmocka_unit_test(test_property_physics),
        cmocka_unit_test(test_property_contrastive),
        cmocka_unit_test(test_precheck),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
