/* optim.c: Adam (bias-corrected) and SGD with momentum, written to match torch.optim's
 * update formulas so PyTorch parity runs agree step by step. */
/* The Makefile builds with -O2, where GCC 12 vectorises only trivially cheap loops; these
 * element-wise loops are a large part of a 64-row training step, so ask for full vectorisation. */
#pragma GCC optimize("tree-vectorize")

#include <math.h>
#include <string.h>

#include "mlp.h"

void optim_init(Optim *o, const TrainSpec *ts, size_t n, float *m, float *v) {
    memset(o, 0, sizeof *o);
    o->kind = ts->optimizer;
    o->lr = ts->lr;
    o->momentum = ts->momentum;
    o->beta1 = ts->beta1;
    o->beta2 = ts->beta2;
    o->eps = ts->adam_eps;
    o->n = n;
    o->m = m;
    o->v = v;
}

void optim_step(Optim *o, float *restrict params, const float *restrict grads) {
    o->t++;
    size_t n = o->n;
    float *restrict m = o->m, *restrict v = o->v;
    if (o->kind == OPT_SGD) {
        /* torch: buf = momentum * buf + g (buf starts at g, the same as starting at 0). */
        float mu = o->momentum, lr = o->lr;
        for (size_t i = 0; i < n; i++) {
            m[i] = mu * m[i] + grads[i];
            params[i] -= lr * m[i];
        }
        return;
    }
    /* torch: p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps) */
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float bc1 = 1.0f - powf(b1, (float)o->t), bc2 = 1.0f - powf(b2, (float)o->t);
    float step = o->lr / bc1, rs2 = 1.0f / sqrtf(bc2);
    float a1 = 1.0f - b1, a2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = b1 * m[i] + a1 * g;
        float vi = b2 * v[i] + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= step * mi / (sqrtf(vi) * rs2 + eps);
    }
}
