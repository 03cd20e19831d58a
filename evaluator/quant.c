/* quant.c: deployment precisions of a trained MLP: fp16/bf16 rounding, int8 post-training
 * quantisation (symmetric per-channel weights, affine per-tensor activations calibrated by
 * min/max, int32 accumulation) and the fake-quantisation ops with a straight-through estimator.
 * The formulas follow PyTorch's observers and fake-quantise kernels so tests can compare. */
#pragma GCC optimize("tree-vectorize")

#include "quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const prec_names[] = {
#define QUANT_NAME(e, s) s,
    QUANT_PRECISIONS(QUANT_NAME)
#undef QUANT_NAME
};

int quant_precision_parse(const char *s, int *out, char *err) {
    for (int i = 0; i < QUANT_NPREC; i++)
        if (s && strcmp(s, prec_names[i]) == 0) {
            *out = i;
            return LD_OK;
        }
    char known[64] = "";
    for (int i = 0; i < QUANT_NPREC; i++) {
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%s\"%s\"", i ? ", " : "", prec_names[i]);
    }
    return ld_err(err, LD_EINVAL, "precision \"%s\": unknown (expected one of %s)", s ? s : "(null)", known);
}

const char *quant_precision_name(int precision) {
    return precision >= 0 && precision < QUANT_NPREC ? prec_names[precision] : "?";
}

/* ---- element rounding */

static uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Branch-free (both roundings computed, one selected) so quant_round's loop vectorises. */
static inline float fp16_round(float x) {
    uint32_t u = f2u(x), sign = u & 0x80000000u, a = u & 0x7fffffffu;
    /* 10 of float's 23 mantissa bits kept, ties to even */
    uint32_t norm = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
    /* below 2^-14: fp16's subnormals, a grid of 2^-24 */
    uint32_t sub = f2u(nearbyintf(u2f(a) * 0x1p24f) * 0x1p-24f);
    uint32_t r = a < 0x38800000u ? sub : norm;
    r = a >= 0x477ff000u ? 0x7f800000u : r; /* >= 65520 rounds past 65504: inf (inf stays) */
    r = a > 0x7f800000u ? a : r;            /* NaN stays */
    return u2f(r | sign);
}

float quant_fp16(float x) { return fp16_round(x); }

static inline float bf16_round(float x) {
    uint32_t u = f2u(x), r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    return u2f((u & 0x7fffffffu) > 0x7f800000u ? u : r); /* NaN stays (rounding could make it inf) */
}

float quant_bf16(float x) { return bf16_round(x); }

void quant_round(float *x, size_t n, int precision) {
    if (precision == QUANT_FP16)
        for (size_t i = 0; i < n; i++) x[i] = fp16_round(x[i]);
    else if (precision == QUANT_BF16)
        for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

/* ---- int8 pieces */

/* zero + rne(x * inv), unclamped, as PyTorch's kernels compute it (float multiply, nearbyint) */
static inline float qcode(float x, float inv, int32_t zero) { return (float)zero + nearbyintf(x * inv); }

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
/* max/min of non-NaN floats, inline (fmaxf is a libm call unless NaNs are ruled out) */
static inline float maxf(float a, float b) { return a > b ? a : b; }
static inline float minf(float a, float b) { return a < b ? a : b; }

void quant_weights_int8(int8_t *q, float *scale, const float *w, int C, int OC) {
    for (int j = 0; j < OC; j++) {
        float amax = 0;
        for (int c = 0; c < C; c++) amax = maxf(amax, fabsf(w[(size_t)c * OC + j]));
        scale[j] = maxf(amax / 127.0f, FLT_EPSILON);
    }
    for (int c = 0; c < C; c++)
        for (int j = 0; j < OC; j++) {
            float inv = 1.0f / scale[j];
            q[(size_t)c * OC + j] = (int8_t)clampf(qcode(w[(size_t)c * OC + j], inv, 0), -127.0f, 127.0f);
        }
}

QuantAffine quant_affine_params(float lo, float hi) {
    lo = minf(lo, 0.0f);
    hi = maxf(hi, 0.0f);
    QuantAffine a;
    a.scale = maxf((hi - lo) / 255.0f, FLT_EPSILON);
    a.zero = (int32_t)clampf(0.0f - nearbyintf(lo / a.scale), 0.0f, 255.0f);
    return a;
}

void quant_affine_u8(uint8_t *q, const float *x, size_t n, QuantAffine a) {
    float inv = 1.0f / a.scale;
    for (size_t i = 0; i < n; i++) q[i] = (uint8_t)clampf(qcode(x[i], inv, a.zero), 0.0f, 255.0f);
}

void quant_fake_forward(float *out, const float *inp, size_t n, float scale, int32_t zero, int qmin, int qmax) {
    float inv = 1.0f / scale;
    for (size_t i = 0; i < n; i++)
        out[i] = (clampf(qcode(inp[i], inv, zero), (float)qmin, (float)qmax) - (float)zero) * scale;
}

void quant_fake_backward(float *dinp, const float *dout, const float *inp, size_t n, float scale, int32_t zero,
                         int qmin, int qmax) {
    float inv = 1.0f / scale;
    for (size_t i = 0; i < n; i++) {
        float c = qcode(inp[i], inv, zero);
        dinp[i] = c >= (float)qmin && c <= (float)qmax ? dout[i] : 0.0f;
    }
}

void quant_fake_channel_forward(float *out, const float *w, const float *scale, int C, int OC, int qmax) {
    for (int c = 0; c < C; c++)
        for (int j = 0; j < OC; j++) {
            size_t i = (size_t)c * OC + j;
            out[i] = clampf(qcode(w[i], 1.0f / scale[j], 0), (float)-qmax, (float)qmax) * scale[j];
        }
}

void quant_fake_channel_backward(float *dw, const float *dout, const float *w, const float *scale, int C, int OC,
                                 int qmax) {
    for (int c = 0; c < C; c++)
        for (int j = 0; j < OC; j++) {
            size_t i = (size_t)c * OC + j;
            float code = qcode(w[i], 1.0f / scale[j], 0);
            dw[i] = code >= (float)-qmax && code <= (float)qmax ? dout[i] : 0.0f;
        }
}

/* ---- the deployed model */

/* int32 biases are clamped to +-2^30, so the sum with at most 2^30 / (255 * 127) = 33000
 * products of codes cannot overflow int32. */
#define BIAS_MAX 1073741824.0f

/* One layout pass serves both sizing (t->a NULL: count only) and building. */
typedef struct Take {
    LdArena *a;
    size_t bytes;
    int fail;
} Take;

static void *take(Take *t, size_t n) {
    t->bytes += (n + 63) & ~(size_t)63;
    if (!t->a) return NULL;
    void *p = arena_alloc(t->a, n);
    if (!p) t->fail = 1;
    return p;
}

#define PAD16(n) (((n) + 15) & ~15)

static int max_dim(const Mlp *m) {
    int d = 0;
    for (int l = 0; l <= m->nlin; l++) d = m->dim[l] > d ? m->dim[l] : d;
    return d;
}

static void layout(QuantMlp *q, const Mlp *m, int precision, int maxB, Take *t) {
    size_t row = (size_t)maxB * (size_t)max_dim(m);
    float *acts = take(t, sizeof(float) * mlp_acts_floats(m, maxB));
    if (acts) mlp_acts_bind(&q->acts, m, maxB, acts);
    q->buf = take(t, sizeof(float) * row);
    q->r = *m;
    if (precision == QUANT_FP32) return;
    float *params = take(t, sizeof(float) * m->nparams);
    if (params) mlp_bind_like(&q->r, m, params);
    if (precision != QUANT_INT8) return;
    q->codes = take(t, row);
    for (int l = 0; l < m->nlin; l++) {
        size_t ocp = (size_t)PAD16(m->dim[l + 1]);
        q->wq[l] = take(t, (size_t)m->dim[l] * ocp);
        q->wq32[l] = take(t, sizeof(int32_t) * (size_t)m->dim[l] * ocp);
        q->wqf[l] = take(t, sizeof(float) * (size_t)m->dim[l] * m->dim[l + 1]);
        q->wscale[l] = take(t, sizeof(float) * ocp);
        q->bq[l] = take(t, sizeof(int32_t) * ocp);
    }
}

size_t quant_mlp_arena_bytes(const Mlp *m, int precision, int maxB) {
    QuantMlp scratch;
    Take t = {NULL, 0, 0};
    memset(&scratch, 0, sizeof scratch);
    layout(&scratch, m, precision, maxB, &t);
    return t.bytes;
}

/* Floats as int32 that sort as the floats do (for non-NaN values): min/max reductions on them
 * vectorise without fast-math flags. */
static inline int32_t sortable(float x) {
    int32_t i = (int32_t)f2u(x);
    return i ^ ((i >> 31) & 0x7fffffff);
}

static inline float unsortable(int32_t i) { return u2f((uint32_t)(i ^ ((i >> 31) & 0x7fffffff))); }

/* *lo, *hi = the range of x (n > 0); LD_EINVAL if any element is inf or NaN. */
static int range_of(const float *x, size_t n, float *lo, float *hi) {
    int32_t mn = INT32_MAX, mx = INT32_MIN;
    uint32_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f2u(x[i]);
        nonfinite |= (u & 0x7f800000u) == 0x7f800000u;
        int32_t k = sortable(x[i]);
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    *lo = unsortable(mn);
    *hi = unsortable(mx);
    return nonfinite ? LD_EINVAL : LD_OK;
}

/* Widens [lo, hi] of each linear layer's input over n rows of calib, through the fp32 model. */
static int calibrate(QuantMlp *q, const float *calib, int n, char *err) {
    const Mlp *m = q->m;
    for (int l = 0; l < m->nlin; l++) q->lo[l] = INFINITY, q->hi[l] = -INFINITY;
    for (int i0 = 0; i0 < n; i0 += q->maxB) {
        int nb = n - i0 < q->maxB ? n - i0 : q->maxB;
        const float *x = calib + (size_t)i0 * m->dim[0];
        for (int l = 0; l < m->nlin; l++) {
            if (l == 1) mlp_forward(m, &q->acts, x, nb); /* after the rows are known finite */
            const float *in = l == 0 ? x : q->acts.post[l - 1];
            size_t cnt = (size_t)nb * m->dim[l];
            float lo, hi;
            if (range_of(in, cnt, &lo, &hi) != LD_OK) {
                size_t i = 0;
                while (isfinite(in[i])) i++;
                int row = i0 + (int)(i / m->dim[l]), col = (int)(i % m->dim[l]);
                if (l == 0) return ld_err(err, LD_EINVAL, "int8 calibration: row %d column %d is not finite", row, col);
                return ld_err(err, LD_EINVAL, "int8 calibration: layer %d's input is not finite (row %d)", l, row);
            }
            q->lo[l] = minf(lo, q->lo[l]);
            q->hi[l] = maxf(hi, q->hi[l]);
        }
    }
    return LD_OK;
}

/* Sets up q's fields and scratch from the arena; LD_OK or an error. */
static int setup(QuantMlp *q, const Mlp *m, int precision, int maxB, LdArena *a, char *err) {
    memset(q, 0, sizeof *q);
    if (precision < 0 || precision >= QUANT_NPREC)
        return ld_err(err, LD_EINVAL, "quantise: precision %d is not one of the %d known", precision, QUANT_NPREC);
    if (maxB < 1) return ld_err(err, LD_EINVAL, "quantise: maxB %d must be at least 1", maxB);
    q->m = m;
    q->precision = precision;
    q->maxB = maxB;
    Take t = {a, 0, 0};
    size_t free_bytes = a->cap - a->used;
    layout(q, m, precision, maxB, &t);
    if (t.fail)
        return ld_err(err, LD_ENOMEM, "quantise to %s: the arena has %zu bytes free, %zu needed",
                      quant_precision_name(precision), free_bytes, t.bytes);
    return LD_OK;
}

/* int8: codes, scales and biases of every layer from the ranges in q->lo / q->hi. The codes'
 * rows, the scales and the biases are padded with zeros to PAD16(OC) columns for the kernel. */
static void quantise_int8(QuantMlp *q) {
    const Mlp *m = q->m;
    q->int_kernel = 0;
    for (int l = 0; l < m->nlin; l++) {
        if (m->dim[l] > QUANT_FLOAT_EXACT_C) q->int_kernel = 1;
        int C = m->dim[l], OC = m->dim[l + 1], OCP = PAD16(OC);
        q->in[l] = quant_affine_params(q->lo[l], q->hi[l]);
        quant_weights_int8(q->wq[l], q->wscale[l], m->w[l], C, OC);
        for (int c = C - 1; c >= 0; c--) { /* (C,OC) -> (C,OCP), from the last row back */
            memmove(q->wq[l] + (size_t)c * OCP, q->wq[l] + (size_t)c * OC, (size_t)OC);
            memset(q->wq[l] + (size_t)c * OCP + OC, 0, (size_t)(OCP - OC));
        }
        for (size_t i = 0; i < (size_t)C * OCP; i++) q->wq32[l][i] = q->wq[l][i];
        for (int j = OC; j < OCP; j++) q->wscale[l][j] = 0, q->bq[l][j] = 0;
        for (int j = 0; j < OC; j++) {
            float s = q->in[l].scale * q->wscale[l][j];
            q->bq[l][j] = (int32_t)clampf(nearbyintf(m->b[l][j] / s), -BIAS_MAX, BIAS_MAX);
            q->r.b[l][j] = (float)q->bq[l][j] * s;
            for (int c = 0; c < C; c++) {
                q->wqf[l][(size_t)c * OC + j] = (float)q->wq[l][(size_t)c * OCP + j];
                q->r.w[l][(size_t)c * OC + j] = q->wqf[l][(size_t)c * OC + j] * q->wscale[l][j];
            }
        }
    }
}

int quant_mlp_build(QuantMlp *q, const Mlp *m, int precision, const float *calib, int n, int maxB, LdArena *a,
                    char *err) {
    if (precision == QUANT_INT8 && (!calib || n < 1))
        return ld_err(err, LD_EINVAL, "quantise to int8: no calibration rows (%d given)", n);
    int rc = setup(q, m, precision, maxB, a, err);
    if (rc != LD_OK) return rc;
    if (precision == QUANT_FP16 || precision == QUANT_BF16) {
        memcpy(q->r.params, m->params, sizeof(float) * m->nparams);
        quant_round(q->r.params, m->nparams, precision);
    } else if (precision == QUANT_INT8) {
        rc = calibrate(q, calib, n, err);
        if (rc != LD_OK) return rc;
        quantise_int8(q);
    }
    return LD_OK;
}

int quant_mlp_build_ranges(QuantMlp *q, const Mlp *m, const float *lo, const float *hi, int maxB, LdArena *a,
                           char *err) {
    for (int l = 0; l < m->nlin; l++)
        if (!isfinite(lo[l]) || !isfinite(hi[l]) || lo[l] > hi[l])
            return ld_err(err, LD_EINVAL, "quantise to int8: layer %d's input range [%g, %g] is not a finite range",
                          l, lo[l], hi[l]);
    int rc = setup(q, m, QUANT_INT8, maxB, a, err);
    if (rc != LD_OK) return rc;
    memcpy(q->lo, lo, sizeof(float) * (size_t)m->nlin);
    memcpy(q->hi, hi, sizeof(float) * (size_t)m->nlin);
    quantise_int8(q);
    return LD_OK;
}

/* The integer product on GCC's generic vectors (AVX-512, AVX2 or SSE as the target allows):
 * 16 int32 accumulators per row, 4 rows at a time. The weight codes are read from their copy
 * widened to int32 at build time (GCC 12 widens an int8 vector lane by lane, which cost 10x). */
typedef int32_t v16i __attribute__((vector_size(64)));

static inline v16i load_w(const int32_t *w) {
    v16i v;
    memcpy(&v, w, sizeof v);
    return v;
}

/* out (B,OC) = dequantised((codes (B,C) - zero) @ wq (C,OCP) + bq (OCP)), summed in int32;
 * wq holds int8 codes widened to int32 */
static void linear_int8(float *out, const uint8_t *codes, int32_t zero, float sx, const int32_t *wq,
                        const float *wscale, const int32_t *bq, int B, int C, int OC) {
    int OCP = PAD16(OC);
    for (int j0 = 0; j0 < OC; j0 += 16) {
        int w = OC - j0 < 16 ? OC - j0 : 16;
        v16i bias;
        memcpy(&bias, bq + j0, sizeof bias);
        float s[16];
        for (int j = 0; j < 16; j++) s[j] = sx * wscale[j0 + j];
        for (int b = 0; b < B; b += 4) {
            int R = B - b < 4 ? B - b : 4;
            v16i acc[4] = {bias, bias, bias, bias};
            const uint8_t *x = codes + (size_t)b * C;
            if (R == 4)
                for (int k = 0; k < C; k++) {
                    v16i wk = load_w(wq + (size_t)k * OCP + j0);
                    acc[0] += wk * ((int32_t)x[k] - zero);
                    acc[1] += wk * ((int32_t)x[C + k] - zero);
                    acc[2] += wk * ((int32_t)x[2 * C + k] - zero);
                    acc[3] += wk * ((int32_t)x[3 * C + k] - zero);
                }
            else
                for (int r = 0; r < R; r++)
                    for (int k = 0; k < C; k++)
                        acc[r] += load_w(wq + (size_t)k * OCP + j0) * ((int32_t)x[(size_t)r * C + k] - zero);
            for (int r = 0; r < R; r++) {
                float *o = out + (size_t)(b + r) * OC + j0;
                for (int j = 0; j < w; j++) o[j] = (float)acc[r][j] * s[j];
            }
        }
    }
}

/* The same layer with the integer sums on the float kernel (C <= QUANT_FLOAT_EXACT_C): the
 * centred codes (code - zero, |.| <= 255) and weight codes (|.| <= 127) are small integers, so
 * every product and partial sum is an integer below 2^24 and exact in float whatever the order;
 * the int32 bias is added to the exact sum as an integer. xc (B,C) is scratch. */
static void linear_int8_float(float *out, float *xc, const float *in, QuantAffine a, const float *wqf,
                              const float *wscale, const int32_t *bq, int B, int C, int OC) {
    float inv = 1.0f / a.scale;
    for (size_t i = 0; i < (size_t)B * C; i++) xc[i] = clampf(qcode(in[i], inv, a.zero), 0.0f, 255.0f) - (float)a.zero;
    mlp_linear_forward(out, xc, wqf, NULL, B, C, OC);
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * OC;
        for (int j = 0; j < OC; j++) o[j] = (float)((int32_t)o[j] + bq[j]) * (a.scale * wscale[j]);
    }
}

const float *quant_mlp_forward(QuantMlp *q, const float *x, int B) {
    const Mlp *m = q->m;
    if (q->precision == QUANT_FP32) return mlp_forward(m, &q->acts, x, B);
    const float *in = x;
    if (q->precision != QUANT_INT8) {
        memcpy(q->buf, x, sizeof(float) * (size_t)B * m->dim[0]);
        quant_round(q->buf, (size_t)B * m->dim[0], q->precision);
        in = q->buf;
    }
    for (int l = 0; l < m->nlin; l++) {
        int C = m->dim[l], OC = m->dim[l + 1];
        size_t n = (size_t)B * OC;
        float *out = q->acts.post[l];
        if (q->precision == QUANT_INT8) {
            if (q->int_kernel) {
                quant_affine_u8(q->codes, in, (size_t)B * C, q->in[l]);
                linear_int8(out, q->codes, q->in[l].zero, q->in[l].scale, q->wq32[l], q->wscale[l], q->bq[l], B, C,
                            OC);
            } else
                linear_int8_float(out, q->buf, in, q->in[l], q->wqf[l], q->wscale[l], q->bq[l], B, C, OC);
            if (l < m->nlin - 1) mlp_act_forward(out, out, (int)n, m->act);
        } else {
            /* half precision: every stored tensor rounded, products summed in float */
            mlp_linear_forward(out, in, q->r.w[l], q->r.b[l], B, C, OC);
            quant_round(out, n, q->precision);
            if (l < m->nlin - 1) {
                mlp_act_forward(out, out, (int)n, m->act);
                quant_round(out, n, q->precision);
            }
        }
        in = out;
    }
    return in;
}

const float *quant_mlp_forward_sim(QuantMlp *q, const float *x, int B) {
    const Mlp *m = q->m;
    if (q->precision != QUANT_INT8) return quant_mlp_forward(q, x, B);
    const float *in = x;
    for (int l = 0; l < m->nlin; l++) {
        int C = m->dim[l], OC = m->dim[l + 1];
        float *out = q->acts.post[l];
        quant_fake_forward(q->buf, in, (size_t)B * C, q->in[l].scale, q->in[l].zero, 0, 255);
        mlp_linear_forward(out, q->buf, q->r.w[l], q->r.b[l], B, C, OC);
        if (l < m->nlin - 1) mlp_act_forward(out, out, B * OC, m->act);
        in = out;
    }
    return in;
}

/* ---- quantisation-aware training */

/* The observers' moving averages compute as PyTorch's do, a + c (b - a) in two roundings: no
 * fused multiply-adds from here on. */
#pragma GCC optimize("fp-contract=off")

static void qat_layout(QuantQat *qat, const Mlp *m, int maxB, Take *t) {
    float *acts = take(t, sizeof(float) * mlp_acts_floats(m, maxB));
    if (acts) mlp_acts_bind(&qat->acts, m, maxB, acts);
    qat->wfq = *m;
    float *w = take(t, sizeof(float) * m->nparams);
    if (w) mlp_bind_like(&qat->wfq, m, w);
    for (int l = 0; l < m->nlin; l++) {
        qat->wscale[l] = take(t, sizeof(float) * m->dim[l + 1]);
        qat->xfq[l] = take(t, sizeof(float) * (size_t)maxB * m->dim[l]);
    }
    qat->dx = take(t, sizeof(float) * (size_t)maxB * max_dim(m));
}

size_t quant_qat_arena_bytes(const Mlp *m, int maxB) {
    QuantQat scratch;
    Take t = {NULL, 0, 0};
    memset(&scratch, 0, sizeof scratch);
    qat_layout(&scratch, m, maxB, &t);
    return t.bytes;
}

int quant_qat_init(QuantQat *qat, const Mlp *m, int maxB, float momentum, LdArena *a, char *err) {
    memset(qat, 0, sizeof *qat);
    if (maxB < 1) return ld_err(err, LD_EINVAL, "quantisation-aware training: maxB %d must be at least 1", maxB);
    if (!(momentum > 0 && momentum <= 1))
        return ld_err(err, LD_EINVAL, "quantisation-aware training: momentum %g is outside (0, 1]", momentum);
    qat->m = m;
    qat->maxB = maxB;
    qat->momentum = momentum;
    Take t = {a, 0, 0};
    size_t free_bytes = a->cap - a->used;
    qat_layout(qat, m, maxB, &t);
    if (t.fail)
        return ld_err(err, LD_ENOMEM, "quantisation-aware training: the arena has %zu bytes free, %zu needed",
                      free_bytes, t.bytes);
    return LD_OK;
}

/* Layer l's weights fake-quantised per output channel into qat->wfq.w[l], the scales from their
 * current max |w| / 127 into qat->wscale[l]. */
static void qat_layer_weights(QuantQat *qat, int l) {
    const Mlp *m = qat->m;
    int C = m->dim[l], OC = m->dim[l + 1];
    for (int j = 0; j < OC; j++) {
        float amax = 0;
        for (int c = 0; c < C; c++) amax = maxf(amax, fabsf(m->w[l][(size_t)c * OC + j]));
        qat->wscale[l][j] = maxf(amax / 127.0f, FLT_EPSILON);
    }
    quant_fake_channel_forward(qat->wfq.w[l], m->w[l], qat->wscale[l], C, OC, 127);
}

void quant_qat_weights(QuantQat *qat) {
    for (int l = 0; l < qat->m->nlin; l++) qat_layer_weights(qat, l);
}

void quant_qat_weights_backward(const QuantQat *qat, const Mlp *g) {
    const Mlp *m = qat->m;
    for (int l = 0; l < m->nlin; l++)
        quant_fake_channel_backward(g->w[l], g->w[l], m->w[l], qat->wscale[l], m->dim[l], m->dim[l + 1], 127);
}

const float *quant_qat_forward(QuantQat *qat, const float *x, int B, int observe) {
    const Mlp *m = qat->m;
    if (qat->updates == 0) observe = 1;
    const float *in = x;
    for (int l = 0; l < m->nlin; l++) {
        int C = m->dim[l], OC = m->dim[l + 1];
        size_t n = (size_t)B * C;
        if (observe) { /* non-finite inputs leave the range as it was */
            float lo, hi;
            if (range_of(in, n, &lo, &hi) == LD_OK) {
                if (qat->updates == 0) qat->lo[l] = lo, qat->hi[l] = hi;
                else {
                    qat->lo[l] = qat->lo[l] + qat->momentum * (lo - qat->lo[l]);
                    qat->hi[l] = qat->hi[l] + qat->momentum * (hi - qat->hi[l]);
                }
            }
        }
        qat->in[l] = quant_affine_params(qat->lo[l], qat->hi[l]);
        quant_fake_forward(qat->xfq[l], in, n, qat->in[l].scale, qat->in[l].zero, 0, 255);
        qat_layer_weights(qat, l);
        float *z = l < m->nlin - 1 ? qat->acts.pre[l] : qat->acts.post[l];
        mlp_linear_forward(z, qat->xfq[l], qat->wfq.w[l], m->b[l], B, C, OC);
        if (l < m->nlin - 1) mlp_act_forward(qat->acts.post[l], z, B * OC, m->act);
        in = qat->acts.post[l];
    }
    if (observe) qat->updates++;
    return in;
}

void quant_qat_backward(QuantQat *qat, const Mlp *g, const float *dz, int B) {
    quant_qat_backward_dx(qat, g, dz, NULL, NULL, B);
}

void quant_qat_backward_dx(QuantQat *qat, const Mlp *g, const float *dz, const float *x, float *dx, int B) {
    const Mlp *m = qat->m;
    const float *dout = dz;
    for (int l = m->nlin - 1; l >= 0; l--) {
        int C = m->dim[l], OC = m->dim[l + 1];
        memset(g->w[l], 0, sizeof(float) * (size_t)C * OC);
        memset(g->b[l], 0, sizeof(float) * (size_t)OC);
        float *dxfq = l > 0 ? qat->dx : dx;
        mlp_linear_backward(dxfq, g->w[l], g->b[l], dout, qat->xfq[l], qat->wfq.w[l], B, C, OC);
        quant_fake_channel_backward(g->w[l], g->w[l], m->w[l], qat->wscale[l], C, OC, 127);
        if (l == 0) {
            if (dx) quant_fake_backward(dx, dx, x, (size_t)B * C, qat->in[0].scale, qat->in[0].zero, 0, 255);
            break;
        }
        /* through the input's fake quantisation (STE), then the previous layer's activation */
        size_t n = (size_t)B * C;
        float *da = qat->acts.dpost[l - 1];
        quant_fake_backward(da, dxfq, qat->acts.post[l - 1], n, qat->in[l].scale, qat->in[l].zero, 0, 255);
        mlp_act_backward(da, da, qat->acts.pre[l - 1], qat->acts.post[l - 1], (int)n, m->act);
        dout = da;
    }
}
