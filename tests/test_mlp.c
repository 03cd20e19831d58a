/* test_mlp.c: finite-difference checks of every MLP layer's backward (linear, relu, tanh, gelu),
 * of the whole network's parameter gradient under cross-entropy and of WGAN-GP's gradient penalty
 * (mlp_grad_penalty), llm.c style: each check
 * prints maxdiff against its tolerance. Also the optimisers against hand-computed updates. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../evaluator/mlp.h"

static void fill(float *v, int n, LdRng *r, float scale) {
    for (int i = 0; i < n; i++) v[i] = scale * rng_normal(r);
}

/* maxdiff of a vs b relative to max(1, |b|), printed with the tolerance. */
static double check(const char *what, const float *a, const double *b, int n, double tol) {
    double md = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        if (d > md) md = d;
    }
    printf("%-28s maxdiff %.3e (tolerance %.1e) %s\n", what, md, tol, md <= tol ? "ok" : "FAIL");
    return md;
}

/* The matrix products against a naive double-precision reference at many shapes: odd sizes hit
 * the small kernel's row and column tails, large ones the OpenBLAS path. */
static void test_linear_shapes(void **state) {
    (void)state;
    const int shapes[][3] = {{1, 1, 1},    {3, 5, 7},     {64, 64, 64}, {64, 64, 10}, {64, 10, 64},
                             {7, 33, 9},   {13, 40, 17},  {6, 24, 31},  {65, 70, 3},  {300, 300, 300},
                             {2, 600, 5},  {64, 1, 64},   {128, 32, 8}};
    LdRng r;
    rng_seed(&r, 4);
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *inp = malloc(sizeof(float) * B * C), *w = malloc(sizeof(float) * C * OC);
        float *b = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * B * OC);
        float *dinp = malloc(sizeof(float) * B * C), *dw = malloc(sizeof(float) * C * OC);
        fill(inp, B * C, &r, 1);
        fill(w, C * OC, &r, 1);
        fill(b, OC, &r, 1);
        for (int i = 0; i < C * OC; i++) dw[i] = 0.5f;
        mlp_linear_forward(out, inp, w, b, B, C, OC);
        /* Reuse out as dout for the backward. */
        mlp_linear_backward(dinp, dw, NULL, out, inp, w, B, C, OC);
        double md = 0;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < OC; j++) {
                double ref = b[j];
                for (int k = 0; k < C; k++) ref += (double)inp[i * C + k] * w[k * OC + j];
                md = fmax(md, fabs(out[i * OC + j] - ref) / fmax(1.0, fabs(ref)));
            }
        for (int i = 0; i < B; i++)
            for (int k = 0; k < C; k++) {
                double ref = 0;
                for (int j = 0; j < OC; j++) ref += (double)out[i * OC + j] * w[k * OC + j];
                md = fmax(md, fabs(dinp[i * C + k] - ref) / fmax(1.0, fabs(ref)));
            }
        for (int k = 0; k < C; k++)
            for (int j = 0; j < OC; j++) {
                double ref = 0.5;
                for (int i = 0; i < B; i++) ref += (double)inp[i * C + k] * out[i * OC + j];
                md = fmax(md, fabs(dw[k * OC + j] - ref) / fmax(1.0, fabs(ref)));
            }
        if (md > 1e-3) printf("shape B=%d C=%d OC=%d: maxdiff %.3e\n", B, C, OC, md);
        worst = fmax(worst, md);
        free(inp);
        free(w);
        free(b);
        free(out);
        free(dinp);
        free(dw);
    }
    printf("%-28s maxdiff %.3e (tolerance 1.0e-03) %s\n", "linear products, 13 shapes", worst,
           worst <= 1e-3 ? "ok" : "FAIL");
    assert_true(worst <= 1e-3);
}

/* Loss of the linear layer: sum(out * R). */
static double lin_loss(const float *inp, const float *w, const float *b, const float *R, int B, int C, int OC,
                       float *out) {
    mlp_linear_forward(out, inp, w, b, B, C, OC);
    double s = 0;
    for (int i = 0; i < B * OC; i++) s += (double)out[i] * R[i];
    return s;
}

static void test_linear_backward(void **state) {
    (void)state;
    enum { B = 5, C = 7, OC = 4 };
    LdRng r;
    rng_seed(&r, 1);
    float inp[B * C], w[C * OC], b[OC], R[B * OC], out[B * OC];
    float dinp[B * C], dw[C * OC], db[OC];
    double fin[B * C], fw[C * OC], fb[OC];
    fill(inp, B * C, &r, 1);
    fill(w, C * OC, &r, 1);
    fill(b, OC, &r, 1);
    fill(R, B * OC, &r, 1);
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    mlp_linear_backward(dinp, dw, db, R, inp, w, B, C, OC);
    const float h = 1e-2f;
    float *vecs[3] = {inp, w, b};
    double *fd[3] = {fin, fw, fb};
    int ns[3] = {B * C, C * OC, OC};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ns[k]; i++) {
            float keep = vecs[k][i];
            vecs[k][i] = keep + h;
            double lp = lin_loss(inp, w, b, R, B, C, OC, out);
            vecs[k][i] = keep - h;
            double lm = lin_loss(inp, w, b, R, B, C, OC, out);
            vecs[k][i] = keep;
            fd[k][i] = (lp - lm) / (2 * h);
        }
    assert_true(check("linear dinp", dinp, fin, B * C, 1e-3) <= 1e-3);
    assert_true(check("linear dw", dw, fw, C * OC, 1e-3) <= 1e-3);
    assert_true(check("linear db", db, fb, OC, 1e-3) <= 1e-3);
    /* Backward adds into parameter gradients: a second call doubles them. */
    mlp_linear_backward(NULL, dw, db, R, inp, w, B, C, OC);
    for (int i = 0; i < OC; i++) assert_float_equal(db[i], 2 * fb[i], 1e-3);
}

static void act_check(int act, const char *name) {
    enum { N = 64 };
    LdRng r;
    rng_seed(&r, 2);
    float x[N], y[N], R[N], dx[N];
    double fd[N];
    fill(x, N, &r, 1.5f);
    /* Keep relu's inputs away from its kink, where the difference quotient is meaningless. */
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 0.05f) x[i] = 0.3f;
    fill(R, N, &r, 1);
    mlp_act_forward(y, x, N, act);
    mlp_act_backward(dx, R, x, y, N, act);
    const float h = 1e-3f;
    for (int i = 0; i < N; i++) {
        float keep = x[i], yp, ym;
        x[i] = keep + h;
        mlp_act_forward(&yp, &x[i], 1, act);
        x[i] = keep - h;
        mlp_act_forward(&ym, &x[i], 1, act);
        x[i] = keep;
        fd[i] = R[i] * ((double)yp - ym) / (2 * h);
    }
    char what[40];
    snprintf(what, sizeof what, "%s backward", name);
    assert_true(check(what, dx, fd, N, 2e-3) <= 2e-3);
    /* In place (dinp == dout), as the network uses it. */
    float d2[N];
    memcpy(d2, R, sizeof d2);
    mlp_act_backward(d2, d2, x, y, N, act);
    for (int i = 0; i < N; i++) assert_float_equal(d2[i], dx[i], 0);
}

static void test_relu_backward(void **state) {
    (void)state;
    act_check(ACT_RELU, "relu");
}
static void test_tanh_backward(void **state) {
    (void)state;
    act_check(ACT_TANH, "tanh");
}
static void test_gelu_backward(void **state) {
    (void)state;
    act_check(ACT_GELU, "gelu");
}

/* Mean cross-entropy of logits z (B,C) with labels; gradient into dz when not NULL. */
static double ce_loss(const float *z, const int *lab, int B, int C, float *dz) {
    double tot = 0;
    for (int i = 0; i < B; i++) {
        const float *zi = z + i * C;
        double mx = zi[0], s = 0;
        for (int j = 1; j < C; j++) mx = fmax(mx, zi[j]);
        for (int j = 0; j < C; j++) s += exp(zi[j] - mx);
        tot += -(zi[lab[i]] - mx - log(s));
        if (dz)
            for (int j = 0; j < C; j++) dz[i * C + j] = (float)((exp(zi[j] - mx) / s - (j == lab[i])) / B);
    }
    return tot / B;
}

static void mlp_check(int act, const char *name, int nh, int h0, int h1) {
    enum { B = 6, D = 5, C = 4 };
    ModelSpec s = {.nhidden = nh, .hidden = {h0, h1}, .act = act};
    Mlp m, g;
    mlp_bind(&m, &s, D, C, NULL);
    size_t P = m.nparams;
    float *params = calloc(P, sizeof(float)), *grads = calloc(P, sizeof(float));
    double *fd = calloc(P, sizeof(double));
    float *acts = calloc(mlp_acts_floats(&m, B), sizeof(float));
    mlp_bind(&m, &s, D, C, params);
    mlp_bind_like(&g, &m, grads);
    mlp_init(&m, 7);
    LdRng r;
    rng_seed(&r, 3);
    float x[B * D], dz[B * C];
    int lab[B];
    fill(x, B * D, &r, 1);
    for (int i = 0; i < B; i++) lab[i] = (int)rng_below(&r, C);
    /* Non-zero biases so their gradients are exercised away from zero. */
    for (int l = 0; l < m.nlin; l++) fill(m.b[l], m.dim[l + 1], &r, 0.1f);
    MlpActs a;
    mlp_acts_bind(&a, &m, B, acts);
    ce_loss(mlp_forward(&m, &a, x, B), lab, B, C, dz);
    mlp_backward(&m, &a, &g, x, dz, B);
    const float h = 1e-3f;
    for (size_t k = 0; k < P; k++) {
        float keep = params[k];
        params[k] = keep + h;
        double lp = ce_loss(mlp_forward(&m, &a, x, B), lab, B, C, NULL);
        params[k] = keep - h;
        double lm = ce_loss(mlp_forward(&m, &a, x, B), lab, B, C, NULL);
        params[k] = keep;
        fd[k] = (lp - lm) / (2 * h);
    }
    char what[48];
    snprintf(what, sizeof what, "mlp %s %d layer(s) params", name, nh);
    double md = check(what, grads, fd, (int)P, 3e-3);
    free(params);
    free(grads);
    free(fd);
    free(acts);
    assert_true(md <= 3e-3);
}

static void test_mlp_grad_tanh(void **state) {
    (void)state;
    mlp_check(ACT_TANH, "tanh", 2, 8, 6);
}
static void test_mlp_grad_gelu(void **state) {
    (void)state;
    mlp_check(ACT_GELU, "gelu", 1, 9, 0);
}
static void test_mlp_grad_relu(void **state) {
    (void)state;
    mlp_check(ACT_RELU, "relu", 2, 16, 8);
}
static void test_mlp_grad_linear(void **state) {
    (void)state;
    mlp_check(ACT_RELU, "no hidden", 0, 0, 0);
}

/* WGAN-GP's penalty (mlp_grad_penalty): its weight gradient against central differences of the
 * penalty itself, on a critic with two relu hidden layers; the biases' gradient is 0 (relu's
 * masks are piecewise constant) and central differences of the biases agree. */
static void test_grad_penalty(void **state) {
    (void)state;
    enum { B = 6, D = 5 };
    ModelSpec s = {.nhidden = 2, .hidden = {7, 6}, .act = ACT_RELU};
    Mlp m, g, sc;
    mlp_bind(&m, &s, D, 1, NULL);
    size_t P = m.nparams;
    float *params = calloc(P, sizeof(float)), *grads = calloc(P, sizeof(float)), *scr = calloc(P, sizeof(float));
    float *junk = calloc(P, sizeof(float)), *buf = calloc(mlp_grad_penalty_floats(&m, B), sizeof(float));
    float *acts = calloc(mlp_acts_floats(&m, B), sizeof(float));
    double *fd = calloc(P, sizeof(double));
    mlp_bind(&m, &s, D, 1, params);
    mlp_bind_like(&g, &m, grads);
    mlp_bind_like(&sc, &m, scr);
    mlp_init(&m, 11);
    LdRng r;
    rng_seed(&r, 5);
    float x[B * D];
    fill(x, B * D, &r, 1);
    for (int l = 0; l < m.nlin; l++) fill(m.b[l], m.dim[l + 1], &r, 0.1f);
    MlpActs a;
    mlp_acts_bind(&a, &m, B, acts);
    double pen = mlp_grad_penalty(&m, &a, &sc, &g, x, B, 10.0f, buf);
    Mlp gj;
    mlp_bind_like(&gj, &m, junk);
    const float h = 1e-3f;
    for (size_t k = 0; k < P; k++) {
        float keep = params[k];
        params[k] = keep + h;
        double lp = mlp_grad_penalty(&m, &a, &sc, &gj, x, B, 10.0f, buf);
        params[k] = keep - h;
        double lm = mlp_grad_penalty(&m, &a, &sc, &gj, x, B, 10.0f, buf);
        params[k] = keep;
        fd[k] = (lp - lm) / (2 * h);
    }
    printf("penalty %.5f on %d rows\n", pen, B);
    double md = check("grad penalty params", grads, fd, (int)P, 5e-3);
    free(params);
    free(grads);
    free(scr);
    free(junk);
    free(buf);
    free(acts);
    free(fd);
    assert_true(pen > 0);
    assert_true(md <= 5e-3);
}

/* Init: He scale for relu layers, deterministic in the seed. */
static void test_init(void **state) {
    (void)state;
    ModelSpec s = {.nhidden = 1, .hidden = {256}, .act = ACT_RELU};
    Mlp m, m2;
    mlp_bind(&m, &s, 128, 10, NULL);
    float *p = calloc(m.nparams, sizeof(float)), *p2 = calloc(m.nparams, sizeof(float));
    mlp_bind(&m, &s, 128, 10, p);
    mlp_bind(&m2, &s, 128, 10, p2);
    mlp_init(&m, 5);
    mlp_init(&m2, 5);
    assert_memory_equal(p, p2, m.nparams * sizeof(float));
    double v = 0;
    for (int i = 0; i < 128 * 256; i++) v += (double)m.w[0][i] * m.w[0][i];
    v /= 128 * 256;
    printf("init: relu layer variance %.5f (He: %.5f)\n", v, 2.0 / 128);
    assert_float_equal(v, 2.0 / 128, 0.1 * 2.0 / 128);
    for (int i = 0; i < 256; i++) assert_float_equal(m.b[0][i], 0, 0);
    mlp_init(&m2, 6);
    assert_true(memcmp(p, p2, m.nparams * sizeof(float)) != 0);
    free(p);
    free(p2);
}

/* Adam and SGD against torch's formulas computed by hand in double. */
static void test_optim(void **state) {
    (void)state;
    TrainSpec ts = {.optimizer = OPT_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .adam_eps = 1e-8f};
    float p[2] = {1, -2}, g[2] = {0.5f, -3}, m[2] = {0}, v[2] = {0};
    Optim o;
    optim_init(&o, &ts, 2, m, v);
    optim_step(&o, p, g);
    /* First Adam step moves each parameter by lr * sign(g). */
    assert_float_equal(p[0], 0.9, 1e-5);
    assert_float_equal(p[1], -1.9, 1e-5);
    optim_step(&o, p, g);
    assert_float_equal(p[0], 0.8, 1e-5);
    TrainSpec sg = {.optimizer = OPT_SGD, .lr = 0.1f, .momentum = 0.5f};
    float q[1] = {1}, gq[1] = {2}, mq[1] = {0};
    optim_init(&o, &sg, 1, mq, NULL);
    optim_step(&o, q, gq); /* buf 2, q 0.8 */
    optim_step(&o, q, gq); /* buf 3, q 0.5 */
    assert_float_equal(q[0], 0.5, 1e-6);
}

int main(void) {
    mlp_blas_once();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_shapes),   cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_relu_backward),
        cmocka_unit_test(test_tanh_backward),   cmocka_unit_test(test_gelu_backward),
        cmocka_unit_test(test_mlp_grad_tanh),   cmocka_unit_test(test_mlp_grad_gelu),
        cmocka_unit_test(test_mlp_grad_relu),   cmocka_unit_test(test_mlp_grad_linear),
        cmocka_unit_test(test_init),            cmocka_unit_test(test_optim),
        cmocka_unit_test(test_grad_penalty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
