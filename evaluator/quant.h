/* quant.h: post-training quantisation of a trained MLP for deployment (fp16, bf16, int8) and the
 * fake-quantisation ops with a straight-through estimator for quantisation-aware training. The
 * scheme (docs/rl.md, "Deployment precision"): fp16/bf16 round weights, biases and every layer's
 * activations to nearest even; int8 quantises weights symmetrically per output channel to
 * [-127, 127], biases to int32 at the product of the input and weight scales, and each linear
 * layer's input affinely per tensor to uint8 [0, 255] with a scale and zero point calibrated by
 * min/max on given rows, accumulating in int32. Nothing here allocates: memory is the caller's. */
#ifndef QUANT_H
#define QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "mlp.h"

/* The precisions, spelled as the task's deploy.precision key spells them. */
#define QUANT_PRECISIONS(X) X(QUANT_FP32, "fp32") X(QUANT_FP16, "fp16") X(QUANT_BF16, "bf16") X(QUANT_INT8, "int8")
#define QUANT_ENUM(e, s) e,
enum { QUANT_PRECISIONS(QUANT_ENUM) QUANT_NPREC };
#undef QUANT_ENUM

/* *out = the precision spelled s; LD_EINVAL naming the known spellings otherwise. */
int quant_precision_parse(const char *s, int *out, char *err);
const char *quant_precision_name(int precision); /* "?" when out of range */

/* ---- element rounding: the float nearest to x in the format, ties to even. Overflow gives
 * +-inf (fp16: |x| >= 65520), NaN stays NaN, fp16 keeps its subnormals (down to 2^-24). */
float quant_fp16(float x);
float quant_bf16(float x);
/* x (n) in place to precision's format; fp32 and int8 leave x unchanged. */
void quant_round(float *x, size_t n, int precision);

/* ---- int8 pieces. q = clamp(zero + rne(x * (1/scale)), qmin, qmax), dequantised (q - zero) *
 * scale: the formulas of PyTorch's fake_quantize_per_tensor/per_channel_affine. */

/* Symmetric per output channel: w (C,OC) -> q (C,OC), scale (OC) = max_c |w[c,j]| / 127 (at
 * least FLT_EPSILON), q in [-127, 127]. */
void quant_weights_int8(int8_t *q, float *scale, const float *w, int C, int OC);

/* Affine per-tensor parameters for uint8 [0, 255] from an observed range, as PyTorch's
 * MinMaxObserver: the range is widened to hold 0, scale = (hi - lo) / 255 (at least
 * FLT_EPSILON), zero = clamp(-rne(lo / scale), 0, 255). */
typedef struct QuantAffine {
    float scale;
    int32_t zero;
} QuantAffine;
QuantAffine quant_affine_params(float lo, float hi);
/* q (n) = the uint8 codes of x (n). */
void quant_affine_u8(uint8_t *q, const float *x, size_t n, QuantAffine a);

/* ---- fake quantisation (quantise then dequantise, in float) with the straight-through
 * estimator: the backward passes dout where zero + rne(x/scale) lies inside [qmin, qmax] and 0
 * where it was clamped (PyTorch's FakeQuantize gradient). out may be inp; dinp may be dout. */
/* out (n) = fake-quantised inp (n), one scale and zero point */
void quant_fake_forward(float *out, const float *inp, size_t n, float scale, int32_t zero, int qmin, int qmax);
/* dinp (n) = dout (n) masked by inp's clamping */
void quant_fake_backward(float *dinp, const float *dout, const float *inp, size_t n, float scale, int32_t zero,
                         int qmin, int qmax);
/* out (C,OC) = w (C,OC) fake-quantised per output column j with scale[j], zero 0, [-qmax, qmax] */
void quant_fake_channel_forward(float *out, const float *w, const float *scale, int C, int OC, int qmax);
/* dw (C,OC) = dout (C,OC) masked by w's clamping (per column scale) */
void quant_fake_channel_backward(float *dw, const float *dout, const float *w, const float *scale, int C, int OC,
                                 int qmax);

/* ---- the deployed model. Built from a trained Mlp; the fp32 model is borrowed, not changed. */

/* Inputs of a layer up to which int8 sums are exact in float: 518 * 255 * 127 < 2^24. */
#define QUANT_FLOAT_EXACT_C 518
typedef struct QuantMlp {
    const Mlp *m;  /* borrowed */
    int precision; /* QUANT_* */
    int maxB;      /* rows a forward may take */
    Mlp r;         /* fp16/bf16: rounded weights; int8: dequantised weights and biases (the
                      simulated forward's); fp32: m's own */
    /* int8, each padded with zeros to OCP = dim[l+1] rounded up to 16 columns: */
    int8_t *wq[MLP_MAX_LIN];      /* (dim[l], OCP) weight codes */
    int32_t *wq32[MLP_MAX_LIN];   /* the same codes widened, as the int32 kernel reads them */
    float *wqf[MLP_MAX_LIN];      /* (dim[l], dim[l+1]) the same codes as floats, unpadded */
    int int_kernel; /* int8: 1 sums on the int32 vector kernel; 0 (when every layer has at most
                       QUANT_FLOAT_EXACT_C inputs) sums the same integers on the float matrix
                       kernel, exactly: every partial sum is an integer below 2^24. Same results;
                       a test may set it to compare the two. */
    float *wscale[MLP_MAX_LIN];   /* (OCP) per output channel */
    int32_t *bq[MLP_MAX_LIN];     /* (OCP) at scale in[l].scale * wscale[l][j] */
    QuantAffine in[MLP_MAX_LIN];  /* int8: linear layer l's input */
    float lo[MLP_MAX_LIN], hi[MLP_MAX_LIN]; /* int8: the calibrated ranges */
    /* scratch of one forward (maxB rows), in the same arena */
    MlpActs acts;
    float *buf; /* (maxB, max dim) */
    uint8_t *codes;
} QuantMlp;

/* Bytes of arena quant_mlp_build takes for m at precision with forwards of up to maxB rows and
 * calibration in chunks of up to maxB rows (allocation alignment included). */
size_t quant_mlp_arena_bytes(const Mlp *m, int precision, int maxB);
/* Builds q from the trained m for precision, everything from arena a (see
 * quant_mlp_arena_bytes). int8 calibrates each linear layer's input range on the n rows of
 * calib (n, dim[0]) through the fp32 model; other precisions ignore calib. LD_EINVAL for an
 * unknown precision, int8 with no rows or a non-finite row or activation; LD_ENOMEM when the
 * arena is too small (what was taken before the failure stays taken). */
int quant_mlp_build(QuantMlp *q, const Mlp *m, int precision, const float *calib, int n, int maxB, LdArena *a,
                    char *err);
/* int8 from given input ranges lo[l], hi[l] of each linear layer (nlin of each) instead of a
 * calibration pass: ranges a quantisation-aware trainer tracked, or a test's reference ranges.
 * LD_EINVAL for a non-finite or inverted range; LD_ENOMEM as above. */
int quant_mlp_build_ranges(QuantMlp *q, const Mlp *m, const float *lo, const float *hi, int maxB, LdArena *a,
                           char *err);
/* The deployed model's outputs (B, dim[nlin]) for x (B, dim[0]), B <= maxB; the pointer is into
 * q's scratch, valid until the next forward. int8 runs the integer path: uint8 codes times int8
 * weights summed in int32, dequantised per output channel, activation in float. */
const float *quant_mlp_forward(QuantMlp *q, const float *x, int B);
/* int8 only: the same model simulated in float (fake-quantised inputs, dequantised weights and
 * biases): the forward quantisation-aware training sees. Equal to quant_mlp_forward up to
 * float summation order. Other precisions: quant_mlp_forward. */
const float *quant_mlp_forward_sim(QuantMlp *q, const float *x, int B);

/* ---- quantisation-aware training: the int8 model's forward simulated in float on the trainer's
 * fp32 weights, and its backward with the straight-through estimator. Each linear layer's input
 * is fake-quantised (uint8, affine) with ranges tracked by an exponential moving average of the
 * batches' min/max (PyTorch's MovingAverageMinMaxObserver: the first batch sets the range, later
 * ones move it by momentum, 0.01 there); the weights are fake-quantised per output channel with
 * scales from their current max |w| / 127 (what the deployed model will use), the biases stay
 * float. At deployment quant_mlp_build_ranges(lo, hi) makes the int8 model these ranges trained. */
typedef struct QuantQat {
    const Mlp *m; /* borrowed: the trainer's fp32 weights */
    int maxB;
    float momentum;
    int updates;                           /* observer updates so far */
    float lo[MLP_MAX_LIN], hi[MLP_MAX_LIN]; /* tracked input ranges */
    QuantAffine in[MLP_MAX_LIN];           /* of the last forward */
    Mlp wfq;                               /* fake-quantised weights; biases are m's */
    float *wscale[MLP_MAX_LIN];            /* (dim[l+1]) of the last forward */
    float *xfq[MLP_MAX_LIN];               /* (maxB, dim[l]) each layer's fake-quantised input */
    MlpActs acts;                          /* pre and post activations; dpost as gradients */
    float *dx;                             /* (maxB, max dim) scratch */
} QuantQat;

/* Weight-only quantisation-aware training, for a trainer whose forward is not an MLP forward on
 * rows (physics: u, u' and u'' streams through every layer, which fake-quantised activations
 * would cut, being piecewise constant in x): quant_qat_weights fake-quantises every layer's
 * weights into qat->wfq.w[l] per output channel, with scales qat->wscale[l] from their current
 * max |w| / 127 (as quant_qat_forward does); the caller runs its own forward and backward with
 * them (biases float), then quant_qat_weights_backward passes g's weight gradients, taken with
 * respect to the fake-quantised weights, to the fp32 weights through the straight-through
 * estimator, in place (zero where a code was clamped: never, with max-abs scales). */
void quant_qat_weights(QuantQat *qat);
void quant_qat_weights_backward(const QuantQat *qat, const Mlp *g);

size_t quant_qat_arena_bytes(const Mlp *m, int maxB);
/* Binds qat to m with memory from a (quant_qat_arena_bytes); momentum in (0, 1]. LD_EINVAL for
 * a bad maxB or momentum, LD_ENOMEM for a small arena. */
int quant_qat_init(QuantQat *qat, const Mlp *m, int maxB, float momentum, LdArena *a, char *err);
/* The fake-quantised forward of x (B, dim[0]), B <= maxB: outputs (B, dim[nlin]) inside qat.
 * observe: update the tracked ranges with this batch first (training); 0 uses them as they are
 * (evaluation), except that a forward before any observation observes. */
const float *quant_qat_forward(QuantQat *qat, const float *x, int B, int observe);
/* Backward from dz (B, outputs) after quant_qat_forward of the same x: OVERWRITES the gradients
 * in g (a view bound with mlp_bind_like) with those of the fp32 weights through the
 * straight-through estimator (zero where a weight's or an input's code was clamped). */
void quant_qat_backward(QuantQat *qat, const Mlp *g, const float *dz, int B);
/* The same, also writing the input gradient dx (B, dim[0]) (OVERWRITTEN) through the first
 * layer's input fake quantisation (straight-through, zero where x's code was clamped): for a
 * network whose input is another network's output (an autoencoder's decoder, a GAN generator
 * fed by an encoder). x: the forward's input. */
void quant_qat_backward_dx(QuantQat *qat, const Mlp *g, const float *dz, const float *x, float *dx, int B);

#endif
