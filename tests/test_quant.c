/* test_quant.c: the post-training quantiser against its NumPy reference (tests/quant_ref.h,
 * written by tests/gen_quant_ref.py and checked there against PyTorch's observers and
 * fake-quantise kernels): fp16/bf16 rounding (also exhaustively over every 16-bit pattern),
 * int8 per-channel weights, affine activation parameters and codes, fake quantisation and its
 * straight-through gradient, the deployed MLP at each precision, quantisation-aware training's
 * forward and backward against PyTorch (tests/qat_ref.h), and refused inputs. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../evaluator/quant.h"
#include "quant_ref.h"
#include "qat_ref.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* zero + rne(x / scale), unclamped: where x's code falls */
static float qcode_of(float x, QuantAffine a) { return (float)a.zero + nearbyintf(x * (1.0f / a.scale)); }

/* Same float, bit for bit, or both NaN. */
static int same(float a, float b) { return (isnan(a) && isnan(b)) || bits(a) == bits(b); }

/* The float value of IEEE half h. */
static float half_value(uint16_t h) {
    int e = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)mant, -24) : e == 31 ? (mant ? NAN : INFINITY) : ldexpf((float)(mant | 0x400), e - 25);
    return h & 0x8000 ? -v : v;
}

static void test_rounding_reference(void **state) {
    (void)state;
    int bad16 = 0, badb = 0;
    for (size_t i = 0; i < N_OF(ref_round_x); i++) {
        float a = quant_fp16(ref_round_x[i]), b = quant_bf16(ref_round_x[i]);
        if (!same(a, ref_round_fp16[i])) {
            if (bad16++ < 5) printf("  fp16(%a) = %a, reference %a\n", ref_round_x[i], a, ref_round_fp16[i]);
        }
        if (!same(b, ref_round_bf16[i])) {
            if (badb++ < 5) printf("  bf16(%a) = %a, reference %a\n", ref_round_x[i], b, ref_round_bf16[i]);
        }
    }
    printf("rounding: %zu values (specials, exact ties, 24 binades): fp16 %d differ, bf16 %d differ (tolerance: "
           "bit-identical)\n", N_OF(ref_round_x), bad16, badb);
    assert_int_equal(bad16 + badb, 0);
    float v[3] = {1.0f + 0x1p-11f, 1.0f + 0x1p-8f, -3.0f};
    quant_round(v, 3, QUANT_FP32);
    assert_true(v[0] == 1.0f + 0x1p-11f);
    quant_round(v, 3, QUANT_FP16);
    assert_true(v[0] == 1.0f && v[1] == 1.0f + 0x1p-8f && v[2] == -3.0f);
    quant_round(v, 3, QUANT_BF16);
    assert_true(v[1] == 1.0f);
}

/* Every 16-bit pattern: a representable value stays, a midpoint between neighbours goes to the
 * one with the even last bit, and a hair either side of the midpoint goes to the nearer one. */
static void test_rounding_exhaustive(void **state) {
    (void)state;
    int bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) { /* positive finite halves */
        float v = half_value((uint16_t)h), next = h + 1 < 0x7c00 ? half_value((uint16_t)(h + 1)) : 65536.0f;
        float mid = v + (next - v) / 2; /* exact: halves have 11 significant bits */
        float even = (h & 1) ? next : v;
        if (h + 1 == 0x7c00) even = INFINITY; /* 65520 ties away from 65504 to the would-be 65536 */
        bad += !same(quant_fp16(v), v) + !same(quant_fp16(-v), -v);
        bad += !same(quant_fp16(mid), even) + !same(quant_fp16(-mid), -even);
        bad += !same(quant_fp16(nextafterf(mid, 0)), v);
        if (h + 1 < 0x7c00) bad += !same(quant_fp16(nextafterf(mid, INFINITY)), next);
    }
    for (uint32_t h = 0; h < 0x7f80; h++) { /* positive finite bfloat16 values */
        float v = from_bits(h << 16), next = from_bits((h + 1) << 16);
        float mid = from_bits((h << 16) | 0x8000); /* exactly halfway */
        float even = (h & 1) ? next : v;
        bad += !same(quant_bf16(v), v) + !same(quant_bf16(-v), -v);
        bad += !same(quant_bf16(mid), even) + !same(quant_bf16(-mid), -even);
        bad += !same(quant_bf16(from_bits(bits(mid) - 1)), v) + !same(quant_bf16(from_bits(bits(mid) + 1)), next);
    }
    assert_true(isnan(quant_fp16(NAN)) && isnan(quant_bf16(NAN)) && isnan(quant_bf16(from_bits(0x7f800001))));
    printf("rounding: every fp16 and bf16 value, midpoint and neighbour of a midpoint: %d wrong\n", bad);
    assert_int_equal(bad, 0);
}

static void test_weights_int8(void **state) {
    (void)state;
    int8_t q[N_OF(ref_wq)];
    float s[N_OF(ref_wscale)];
    quant_weights_int8(q, s, ref_w, 9, 5);
    assert_memory_equal(q, ref_wq, sizeof q);
    for (size_t j = 0; j < N_OF(s); j++) assert_true(same(s[j], ref_wscale[j]));
    assert_true(s[3] == FLT_EPSILON);                   /* the all-zero column */
    assert_true(q[4 * 5 + 1] == 127 && s[1] == 2.5f / 127.0f); /* the outlier sets its column's scale */
    printf("int8 weights: codes and per-channel scales equal the reference (bit-identical)\n");
}

static void test_affine_and_fake(void **state) {
    (void)state;
    size_t n = N_OF(ref_xa);
    uint8_t codes[N_OF(ref_xa)];
    float fq[N_OF(ref_xa)], g[N_OF(ref_xa)];
    int bad = 0;
    for (int r = 0; r < 4; r++) {
        QuantAffine a = quant_affine_params(ref_ranges[2 * r], ref_ranges[2 * r + 1]);
        printf("range [%g, %g]: scale %a zero %d (reference %a %d)\n", ref_ranges[2 * r], ref_ranges[2 * r + 1],
               a.scale, a.zero, ref_aff_scale[r], ref_aff_zero[r]);
        assert_true(same(a.scale, ref_aff_scale[r]));
        assert_int_equal(a.zero, ref_aff_zero[r]);
        quant_affine_u8(codes, ref_xa, n, a);
        quant_fake_forward(fq, ref_xa, n, a.scale, a.zero, 0, 255);
        quant_fake_backward(g, ref_dout, ref_xa, n, a.scale, a.zero, 0, 255);
        for (size_t i = 0; i < n; i++) {
            bad += codes[i] != ref_codes[r * n + i];
            bad += !same(fq[i], ref_fake[r * n + i]);
            bad += !same(g[i], ref_fake_grad[r * n + i]);
        }
    }
    /* in place */
    memcpy(fq, ref_xa, sizeof fq);
    quant_fake_forward(fq, fq, n, ref_aff_scale[0], ref_aff_zero[0], 0, 255);
    for (size_t i = 0; i < n; i++) bad += !same(fq[i], ref_fake[i]);
    float w[N_OF(ref_wbig)], dw[N_OF(ref_wbig)];
    quant_fake_channel_forward(w, ref_wbig, ref_wscale, 9, 5, 127);
    quant_fake_channel_backward(dw, ref_dw, ref_wbig, ref_wscale, 9, 5, 127);
    int clamped = 0;
    for (size_t i = 0; i < N_OF(ref_wbig); i++) {
        bad += !same(w[i], ref_wbig_fake[i]) + !same(dw[i], ref_wbig_grad[i]);
        clamped += dw[i] == 0.0f && ref_dw[i] != 0.0f;
    }
    printf("affine codes, fake quantisation and straight-through gradients (per tensor and per channel, %d "
           "clamped weights): %d differ (tolerance: bit-identical)\n", clamped, bad);
    assert_true(clamped >= 5);
    assert_int_equal(bad, 0);
}

/* max |a - ref| / max(1, |ref|) over n, printed against tol */
static double compare(const char *what, const float *a, const float *ref, int n, double tol) {
    double md = 0;
    for (int i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
    printf("%-34s maxdiff %.3e (tolerance %.1e) %s\n", what, md, tol, md <= tol ? "ok" : "FAIL");
    return md;
}

/* Tolerances of the network outputs: the C products sum in another order than NumPy's, so fp32
 * agrees to float rounding (1e-5). A half-precision output that lands near a rounding midpoint
 * can round the other way: one fp16 ulp is 2^-10 relative, one bf16 ulp 2^-7. int8 with the
 * reference's ranges runs the same integer sums and the same float operations: relu agrees to
 * the bit; tanh's last bit (tanhf against NumPy's) may move one activation code, which moves an
 * output by at most one input step times the column's weights (bounded here by 1e-2). */
static void test_mlp_reference(void **state) {
    (void)state;
    const char *kinds[2] = {"relu", "tanh"};
    const float *params[2] = {ref_relu_params, ref_tanh_params};
    const float *lo[2] = {ref_relu_lo, ref_tanh_lo}, *hi[2] = {ref_relu_hi, ref_tanh_hi};
    const float *out32[2] = {ref_relu_fp32, ref_tanh_fp32}, *out16[2] = {ref_relu_fp16, ref_tanh_fp16};
    const float *outb[2] = {ref_relu_bf16, ref_tanh_bf16}, *out8[2] = {ref_relu_int8, ref_tanh_int8};
    int B = 16, nout = 16 * 3, fails = 0;
    for (int k = 0; k < 2; k++) {
        ModelSpec ms = {.nhidden = 2, .hidden = {8, 6}, .act = k == 0 ? ACT_RELU : ACT_TANH};
        Mlp m;
        float p[N_OF(ref_relu_params)];
        assert_int_equal(mlp_param_count(&ms, 5, 3), N_OF(p));
        memcpy(p, params[k], sizeof p);
        mlp_bind(&m, &ms, 5, 3, p);
        LdArena a;
        size_t need = 0;
        for (int pr = 0; pr < QUANT_NPREC; pr++) need += quant_mlp_arena_bytes(&m, pr, B);
        need += quant_mlp_arena_bytes(&m, QUANT_INT8, B);
        assert_int_equal(arena_init(&a, need), LD_OK);
        char err[LD_ERR_MAX], what[64];
        QuantMlp q;
        const float *ref[QUANT_NPREC] = {out32[k], out16[k], outb[k], NULL};
        double tol[QUANT_NPREC] = {1e-5, 0x1p-10 * 1.01, 0x1p-7 * 1.01, 0};
        for (int pr = 0; pr < QUANT_INT8; pr++) {
            assert_int_equal(quant_mlp_build(&q, &m, pr, NULL, 0, B, &a, err), LD_OK);
            snprintf(what, sizeof what, "%s %s", kinds[k], quant_precision_name(pr));
            fails += compare(what, quant_mlp_forward(&q, ref_xeval, B), ref[pr], nout, tol[pr]) > tol[pr];
        }
        /* int8 calibrated in chunks of 16 of the 40 rows: the ranges NumPy observed */
        assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, ref_xcal, 40, B, &a, err), LD_OK);
        double rd = 0;
        for (int l = 0; l < 3; l++) {
            rd = fmax(rd, fabs(q.lo[l] - lo[k][l]) / fmax(1.0, fabs(lo[k][l])));
            rd = fmax(rd, fabs(q.hi[l] - hi[k][l]) / fmax(1.0, fabs(hi[k][l])));
        }
        printf("%-34s maxdiff %.3e (tolerance 1.0e-05) %s\n", k ? "tanh calibrated ranges" : "relu calibrated ranges",
               rd, rd <= 1e-5 ? "ok" : "FAIL");
        fails += rd > 1e-5;
        /* with the reference's ranges: the integer path */
        QuantMlp q8;
        assert_int_equal(quant_mlp_build_ranges(&q8, &m, lo[k], hi[k], B, &a, err), LD_OK);
        float y8[48], ysim[48];
        memcpy(y8, quant_mlp_forward(&q8, ref_xeval, B), sizeof y8);
        double t8 = k == 0 ? 0 : 1e-2;
        snprintf(what, sizeof what, "%s int8", kinds[k]);
        fails += compare(what, y8, out8[k], nout, t8) > t8;
        /* the other kernel: the same integers summed on the int32 vector loop */
        assert_int_equal(q8.int_kernel, 0);
        q8.int_kernel = 1;
        snprintf(what, sizeof what, "%s int8, int32 kernel", kinds[k]);
        fails += compare(what, quant_mlp_forward(&q8, ref_xeval, B), y8, nout, 0) > 0;
        memcpy(ysim, quant_mlp_forward_sim(&q8, ref_xeval, B), sizeof ysim);
        snprintf(what, sizeof what, "%s int8 simulated in float", kinds[k]);
        fails += compare(what, ysim, y8, nout, 1e-2) > 1e-2;
        arena_free(&a);
    }
    assert_int_equal(fails, 0);
}

/* A 64-64-10 relu network like the digits tasks' on 512 random rows: how far each deployed
 * precision's outputs move from fp32's (max |diff| / max |fp32 output|). Sanity bounds, stated:
 * fp16 within 1%, bf16 within 5%, int8 within 10%. */
static void test_error_scale(void **state) {
    (void)state;
    ModelSpec ms = {.nhidden = 1, .hidden = {64}, .act = ACT_RELU};
    Mlp m;
    size_t np = mlp_param_count(&ms, 64, 10);
    float *p = malloc(sizeof(float) * np), *x = malloc(sizeof(float) * 512 * 64), *y32 = malloc(sizeof(float) * 5120);
    assert_non_null(p);
    assert_non_null(x);
    assert_non_null(y32);
    mlp_bind(&m, &ms, 64, 10, p);
    mlp_init(&m, 3);
    LdRng r;
    rng_seed(&r, 8);
    for (int i = 0; i < 512 * 64; i++) x[i] = rng_normal(&r);
    LdArena a;
    size_t need = 0;
    for (int pr = 0; pr < QUANT_NPREC; pr++) need += quant_mlp_arena_bytes(&m, pr, 512);
    assert_int_equal(arena_init(&a, need), LD_OK);
    char err[LD_ERR_MAX];
    QuantMlp q;
    double bound[QUANT_NPREC] = {0, 0.01, 0.05, 0.10};
    for (int pr = 0; pr < QUANT_NPREC; pr++) {
        assert_int_equal(quant_mlp_build(&q, &m, pr, x, 512, 512, &a, err), LD_OK);
        const float *y = quant_mlp_forward(&q, x, 512);
        if (pr == QUANT_FP32) {
            memcpy(y32, y, sizeof(float) * 5120);
            continue;
        }
        if (pr == QUANT_INT8) { /* both kernels, to the bit */
            float *yf = malloc(sizeof(float) * 5120);
            assert_non_null(yf);
            memcpy(yf, y, sizeof(float) * 5120);
            q.int_kernel = 1;
            y = quant_mlp_forward(&q, x, 512);
            assert_memory_equal(y, yf, sizeof(float) * 5120);
            free(yf);
        }
        double md = 0, ymax = 0;
        for (int i = 0; i < 5120; i++) {
            md = fmax(md, fabs(y[i] - y32[i]));
            ymax = fmax(ymax, fabs(y32[i]));
        }
        printf("64-64-10 relu, 512 rows: %s outputs within %.2e of fp32's (%.3f%% of the largest; bound %.0f%%)\n",
               quant_precision_name(pr), md, 100 * md / ymax, 100 * bound[pr]);
        assert_true(md / ymax < bound[pr]);
    }
    arena_free(&a);
    free(p);
    free(x);
    free(y32);
}

/* A layer wider than QUANT_FLOAT_EXACT_C inputs takes the int32 kernel; it still agrees with the
 * model simulated in float (700 -> 16 -> 4, tanh, 64 rows; tolerance one code step's effect). */
static void test_wide_layer(void **state) {
    (void)state;
    ModelSpec ms = {.nhidden = 1, .hidden = {16}, .act = ACT_TANH};
    Mlp m;
    size_t np = mlp_param_count(&ms, 700, 4);
    float *p = malloc(sizeof(float) * np), *x = malloc(sizeof(float) * 64 * 700);
    assert_non_null(p);
    assert_non_null(x);
    mlp_bind(&m, &ms, 700, 4, p);
    mlp_init(&m, 5);
    LdRng r;
    rng_seed(&r, 6);
    for (int i = 0; i < 64 * 700; i++) x[i] = rng_normal(&r);
    LdArena a;
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(&m, QUANT_INT8, 64)), LD_OK);
    char err[LD_ERR_MAX];
    QuantMlp q;
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, x, 64, 64, &a, err), LD_OK);
    assert_int_equal(q.int_kernel, 1);
    float y[256];
    memcpy(y, quant_mlp_forward(&q, x, 64), sizeof y);
    double md = compare("700-16-4 int8 vs simulated", quant_mlp_forward_sim(&q, x, 64), y, 256, 1e-2);
    assert_true(md <= 1e-2);
    arena_free(&a);
    free(p);
    free(x);
}

/* Quantisation-aware training against PyTorch (tests/qat_ref.h): two observed batches move the
 * ranges (momentum 0.1), the second 3x wider so some inputs clamp; outputs and every weight's and
 * bias's gradient of sum(y * dz). The products sum in another order than PyTorch's: outputs and
 * gradients agree to float rounding (1e-5) unless a rounding moves an activation code, which did
 * not happen here (maxdiff printed). The ranges go through the same float operations: 1e-6. Then
 * the int8 model deployed from the trained ranges reproduces the QAT forward up to its int32
 * bias rounding (at most half a step s_x s_w per output, 1e-3 here). */
static void test_qat(void **state) {
    (void)state;
    ModelSpec ms = {.nhidden = 2, .hidden = {8, 6}, .act = ACT_TANH};
    Mlp m, g;
    float p[N_OF(qat_params)], gp[N_OF(qat_params)];
    assert_int_equal(mlp_param_count(&ms, 5, 3), N_OF(p));
    memcpy(p, qat_params, sizeof p);
    mlp_bind(&m, &ms, 5, 3, p);
    mlp_bind_like(&g, &m, gp);
    LdArena a;
    assert_int_equal(arena_init(&a, quant_qat_arena_bytes(&m, 16) + quant_mlp_arena_bytes(&m, QUANT_INT8, 16)), LD_OK);
    char err[LD_ERR_MAX];
    QuantQat qat;
    assert_int_equal(quant_qat_init(&qat, &m, 16, QAT_MOMENTUM, &a, err), LD_OK);
    quant_qat_forward(&qat, qat_x1, 16, 1);
    float y[48];
    memcpy(y, quant_qat_forward(&qat, qat_x2, 16, 1), sizeof y);
    for (size_t i = 0; i < N_OF(gp); i++) gp[i] = 99.0f; /* the backward overwrites */
    quant_qat_backward(&qat, &g, qat_dz, 16);
    int fails = 0;
    double rd = 0;
    for (int l = 0; l < 3; l++) {
        rd = fmax(rd, fabs(qat.lo[l] - qat_lo[l]) / fmax(1.0, fabs(qat_lo[l])));
        rd = fmax(rd, fabs(qat.hi[l] - qat_hi[l]) / fmax(1.0, fabs(qat_hi[l])));
    }
    printf("%-34s maxdiff %.3e (tolerance 1.0e-06) %s\n", "qat tracked ranges", rd, rd <= 1e-6 ? "ok" : "FAIL");
    fails += rd > 1e-6;
    fails += compare("qat outputs vs torch", y, qat_y, 48, 1e-5) > 1e-5;
    fails += compare("qat gradients vs torch autograd", gp, qat_grads, (int)N_OF(gp), 1e-5) > 1e-5;
    int clamped = 0; /* hidden activations past the tracked range: the estimator cuts them */
    for (int l = 1; l < 3; l++)
        for (int i = 0; i < 16 * m.dim[l]; i++) {
            float c = qcode_of(qat.acts.post[l - 1][i], qat.in[l]);
            clamped += c < 0 || c > 255;
        }
    printf("qat: %d of 224 hidden activations of the second batch clamped (gradient cut there)\n", clamped);
    assert_true(clamped > 0);
    /* an evaluation forward does not move the ranges */
    float lo0 = qat.lo[0];
    quant_qat_forward(&qat, qat_x1, 16, 0);
    assert_true(qat.lo[0] == lo0);
    /* deploy with the trained ranges: the simulated int8 model matches the QAT forward */
    QuantMlp q;
    assert_int_equal(quant_mlp_build_ranges(&q, &m, qat.lo, qat.hi, 16, &a, err), LD_OK);
    memcpy(y, quant_qat_forward(&qat, qat_x2, 16, 0), sizeof y);
    fails += compare("int8 deployed vs qat forward", quant_mlp_forward(&q, qat_x2, 16), y, 48, 1e-3) > 1e-3;
    assert_int_equal(quant_qat_init(&qat, &m, 16, 0.0f, &a, err), LD_EINVAL);
    printf("momentum: %s\n", err);
    arena_free(&a);
    assert_int_equal(fails, 0);
}

/* Tried as a new user would: an unknown precision, int8 without calibration rows, a NaN among
 * them, an inverted range, and an arena too small. */
static void test_bad_inputs(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    int p = -1;
    for (int i = 0; i < QUANT_NPREC; i++) {
        assert_int_equal(quant_precision_parse(quant_precision_name(i), &p, err), LD_OK);
        assert_int_equal(p, i);
    }
    assert_int_equal(quant_precision_parse("int4", &p, err), LD_EINVAL);
    printf("unknown: %s\n", err);
    assert_non_null(strstr(err, "\"bf16\""));
    assert_string_equal(quant_precision_name(QUANT_NPREC), "?");
    ModelSpec ms = {.nhidden = 2, .hidden = {8, 6}, .act = ACT_RELU};
    Mlp m;
    float params[N_OF(ref_relu_params)];
    memcpy(params, ref_relu_params, sizeof params);
    mlp_bind(&m, &ms, 5, 3, params);
    LdArena a;
    assert_int_equal(arena_init(&a, quant_mlp_arena_bytes(&m, QUANT_INT8, 8)), LD_OK);
    QuantMlp q;
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, NULL, 0, 8, &a, err), LD_EINVAL);
    printf("no rows: %s\n", err);
    float x[40 * 5];
    memcpy(x, ref_xcal, sizeof x);
    x[17 * 5 + 2] = NAN;
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, x, 40, 8, &a, err), LD_EINVAL);
    printf("nan: %s\n", err);
    assert_non_null(strstr(err, "row 17 column 2"));
    arena_reset(&a);
    float lo[3] = {-1, 0, 0}, hi[3] = {1, -1, 2};
    assert_int_equal(quant_mlp_build_ranges(&q, &m, lo, hi, 8, &a, err), LD_EINVAL);
    printf("range: %s\n", err);
    assert_int_equal(quant_mlp_build(&q, &m, 7, NULL, 0, 8, &a, err), LD_EINVAL);
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_FP16, NULL, 0, 0, &a, err), LD_EINVAL);
    arena_reset(&a);
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, ref_xcal, 40, 64, &a, err), LD_ENOMEM);
    printf("arena: %s\n", err);
    arena_reset(&a);
    assert_int_equal(quant_mlp_build(&q, &m, QUANT_INT8, ref_xcal, 40, 8, &a, err), LD_OK);
    assert_int_equal(a.used, a.cap); /* the size function and the build agree */
    arena_free(&a);
}

int main(void) {
    mlp_blas_once();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounding_reference), cmocka_unit_test(test_rounding_exhaustive),
        cmocka_unit_test(test_weights_int8),       cmocka_unit_test(test_affine_and_fake),
        cmocka_unit_test(test_mlp_reference),      cmocka_unit_test(test_error_scale),
        cmocka_unit_test(test_wide_layer),         cmocka_unit_test(test_qat),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
