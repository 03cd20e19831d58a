/* mlp.h: the evaluator's model and optimiser: an MLP written as llm.c-style forward/backward
 * layer pairs on OpenBLAS sgemm, and Adam / SGD with momentum. Everything works on memory the
 * caller owns (one arena per evaluation); nothing here allocates or keeps global state. */
#ifndef MLP_H
#define MLP_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- layers. Forward overwrites its output. Backward ADDS into parameter gradients (dw, db)
 * and OVERWRITES dinp (dinp may be NULL: the first layer's input gradient is never needed). */

/* out (B,OC) = inp (B,C) @ w (C,OC) + b (OC) */
void mlp_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C, int OC);
/* dinp (B,C) = dout (B,OC) @ w^T; dw (C,OC) += inp^T @ dout; db (OC) += column sums of dout */
void mlp_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int C, int OC);
/* out (N) = act(inp (N)); act is ACT_RELU, ACT_TANH or ACT_GELU (tanh approximation) */
void mlp_act_forward(float *out, const float *inp, int N, int act);
/* dinp (N) = dout (N) * act'(inp); out is act(inp), used by relu and tanh. dinp may be dout. */
void mlp_act_backward(float *dinp, const float *dout, const float *inp, const float *out, int N, int act);

/* ---- the network */

#define MLP_MAX_LIN (MODEL_MAX_HIDDEN + 1)

typedef struct Mlp {
    int nlin;                  /* linear layers: hidden layers + the output layer */
    int dim[MLP_MAX_LIN + 1];  /* dim[0] inputs, dim[l+1] outputs of linear layer l */
    int act;                   /* ACT_* of the hidden layers; the output layer is linear */
    size_t nparams;
    float *params;             /* one block, borrowed: w0 (dim0,dim1), b0 (dim1), w1, b1, ... */
    float *w[MLP_MAX_LIN], *b[MLP_MAX_LIN];
} Mlp;

/* Activations for up to B rows: pre[l] (B,dim[l+1]) before and post[l] after the activation
 * (post[nlin-1] == pre[nlin-1] holds the outputs); dpost[l] gradients; borrowed memory. */
typedef struct MlpActs {
    int maxB;
    float *pre[MLP_MAX_LIN], *post[MLP_MAX_LIN], *dpost[MLP_MAX_LIN];
} MlpActs;

size_t mlp_param_count(const ModelSpec *s, int din, int dout);
/* Points m's weights into params (mlp_param_count floats, borrowed). */
void mlp_bind(Mlp *m, const ModelSpec *s, int din, int dout, float *params);
/* Points a view of the same shapes at another block (gradients, Adam moments). */
void mlp_bind_like(Mlp *view, const Mlp *m, float *params);
/* Seeded init: He normal for relu, Glorot normal for tanh/gelu and the output layer; zero biases. */
void mlp_init(Mlp *m, uint64_t seed);
size_t mlp_acts_floats(const Mlp *m, int B);
void mlp_acts_bind(MlpActs *a, const Mlp *m, int B, float *mem);

/* Forward of x (B,dim0) into a; returns the outputs (B, dim[nlin]) inside a. */
const float *mlp_forward(const Mlp *m, MlpActs *a, const float *x, int B);
/* Backward from dz (B, outputs), after mlp_forward of the same x: OVERWRITES every gradient in
 * g (a view bound with mlp_bind_like; no need to zero it first). The input gradient is not
 * computed. With relu, the forward leaves pre[] unwritten (the backward needs only post[]). */
void mlp_backward(const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz, int B);
/* The same, also writing the input gradient dx (B, dim0) (OVERWRITTEN): for a network whose input
 * is another network's output (an autoencoder's decoder, a GAN's discriminator). */
void mlp_backward_dx(const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz, float *dx, int B);

/* WGAN-GP's gradient penalty (Gulrajani et al. 2017) of a critic m with relu hidden layers and
 * one output, on the B rows of x (B, dim0): returns coef / B * sum_i (|d m(x_i) / d x_i| - 1)^2
 * and ADDS its gradient in m's weights into g's weights. The input gradient is linear in the
 * weights once relu's masks are fixed (they are piecewise constant), so the gradient is one more
 * masked forward (no biases) with an outer product per layer; the biases' is 0 (almost
 * everywhere). a: acts for B rows, scratch: a gradient view like m (both overwritten);
 * buf: mlp_grad_penalty_floats(m, B) floats. */
double mlp_grad_penalty(const Mlp *m, MlpActs *a, const Mlp *scratch, const Mlp *g, const float *x, int B,
                        float coef, float *buf);
size_t mlp_grad_penalty_floats(const Mlp *m, int B);

/* ---- optimisers (optim.c) */

typedef struct Optim {
    int kind; /* OPT_ADAM or OPT_SGD */
    float lr, momentum, beta1, beta2, eps;
    int t;    /* steps taken */
    size_t n;
    float *m, *v; /* moments (Adam) / momentum buffer (SGD, in m); borrowed, zeroed */
} Optim;

void optim_init(Optim *o, const TrainSpec *ts, size_t n, float *m, float *v);
/* One update of params (n) from grads, PyTorch's formulas (torch.optim.Adam / SGD). */
void optim_step(Optim *o, float *params, const float *grads);

/* Sets OpenBLAS to one thread, once per process (evaluations run in parallel threads). */
void mlp_blas_once(void);

#endif
