/* fastmath.h: exp and log for float loops that must vectorise (branch-free Cephes polynomials),
 * shared by the loss interpreter (lang/lossprog.c) and the evaluator's elementwise layers (the
 * autoencoder's sigmoid outputs). Header-only: static inline. */
#ifndef LD_FASTMATH_H
#define LD_FASTMATH_H

#include <stdint.h>

/* expf by range reduction and a degree-6 polynomial (Cephes); branch-free so that loops over
 * it vectorise. Max relative error ~2e-7 (checked by tests/test_lossprog.c). */
static inline float fexp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by adding and removing 1.5 * 2^23 (floorf would block vectorising) */
    float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int n = (int)fx;
    union {
        uint32_t u;
        float f;
    } s = {.u = (uint32_t)(n + 127) << 23};
    return y * s.f;
}

/* logf for positive normal x (Cephes polynomial on [sqrt(1/2), sqrt(2))); the split into
 * exponent and mantissa is integer arithmetic only, so loops over it vectorise. Max abs error
 * ~1e-7 near 1, relative ~1e-7 elsewhere. */
static inline float flog(float x) {
    union {
        float f;
        int32_t i;
    } v = {.f = x};
    int32_t ix = v.i - 0x3f3504f3; /* bits of sqrt(1/2) */
    int32_t e = ix >> 23;          /* arithmetic shift: x = 2^e * (m + 1) */
    v.i = (ix & 0x007fffff) + 0x3f3504f3;
    float m = v.f - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    float fe = (float)e;
    y += fe * -2.12194440e-4f;
    y += -0.5f * z;
    return m + y + fe * 0.693359375f;
}

/* 1 / (1 + exp(-x)) with fexp: relative error ~2e-7, vectorises. */
static inline float fsigmoid(float x) { return 1.0f / (1.0f + fexp(-x)); }

#endif
