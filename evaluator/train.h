/* train.h: the one trainer every family trains under (train.c), and what a family's hooks see
 * of a run. The trainer owns the arena, the RNG, one optimiser per parameter group, the
 * learning-rate schedule, the stop rules (cancel, non-finite, divergence), the curve, wall time
 * and the precision hook; a family (family.h) supplies its state, a training step and scoring. */
#ifndef EVAL_TRAIN_H
#define EVAL_TRAIN_H

#include "internal.h"
#include "mlp.h"
#include "quant.h"

/* The loss a step runs: the compiled loss program in production (lossprog_run), a hand-written
 * loss in the tests. Returns LD_OK, or LD_EFAILED when the loss or its gradient is not finite
 * (out->loss then holds the loss). */
typedef int (*TrainLossFn)(void *ctx, const LossIn *in, LossOut *out);
typedef struct TrainLoss {
    TrainLossFn fn;
    void *ctx;
    int use_l2; /* the loss reads the l2 term (the step may skip computing it otherwise) */
    uint32_t terms; /* bits TERM_*: the terms it reads (a family skips computing the others' inputs,
                       e.g. the generative family's perc) */
    unsigned inputs; /* LIN_*: the inputs it reads (expr_inputs; a GAN trains its encoder only for a
                        loss that reads the reconstruction inputs) */
} TrainLoss;

#define TRAIN_MAX_GROUPS 4
#define TRAIN_MAX_DEPLOY 4

/* A model the family deploys (train_deployable): an MLP whose outputs its score reads through
 * train_forward, the rows int8 calibrates its activation ranges on, and the most rows a forward
 * takes. q is the quantised model while the precision hook scores, else NULL. */
typedef struct TrainDeploy {
    const Mlp *m;
    const float *calib; /* (ncalib, m->dim[0]) */
    int ncalib, maxB;
    const float *lo, *hi; /* int8: input ranges of each linear layer tracked by quantisation-aware
                             training (qat's); NULL: calibrate on calib */
    QuantMlp *q;
    const struct Mlp *front; /* NULL, or the deployed model whose outputs m takes (an autoencoder's
                                encoder before its decoder): int8 calibrates m on front's fp32
                                outputs of front's calibration rows (train_deployable_behind) */
    int trainB;           /* rows of the training forward (deploy.qat: the fake-quantised model's) */
    QuantQat qat;         /* deploy.qat: the int8 forward/backward of the last quarter of the steps */
    int wonly;            /* deploy.qat trains the weights only (train_deployable_weights) */
    Mlp wview;            /* wonly: m with the fake-quantised weights and m's biases */
    LdArena qat_arena;    /* its memory, the trainer's (freed after the run) */
} TrainDeploy;

/* One parameter group: a vector the family lays out as it likes (an MLP's weights and biases, a
 * GAN's generator or its discriminator), its gradient, and an optimiser of its own. */
typedef struct TrainGroup {
    float *params, *grads; /* (n) each, borrowed from the family's state in the arena */
    size_t n;
    float lr;              /* peak learning rate; the schedule scales it each step */
    Optim optim;           /* its moments live in the trainer's arena */
    int manual;            /* the family steps it itself inside its step (train_group_step: a GAN's
                              discriminator, train.d_steps times per generator step); the trainer's
                              update after each step leaves it alone */
} TrainGroup;

/* How the learning rate moves over a run (EvalFamily.lr_schedule). */
enum {
    TRAIN_LR_CONSTANT = 0,
    TRAIN_LR_COSINE = 1, /* cosine decay from the peak to a tenth of it at the last step */
};

/* One training run. The trainer fills every field before the family's setup; the family reads
 * them, points state into arena and registers its parameter groups. Hooks must not keep
 * pointers into it after the run. */
typedef struct Trainer {
    const Task *task;
    const EvalOpts *opt;
    uint64_t seed;    /* the run's seed (EvalOpts.seed) */
    int steps;        /* this run's step count */
    int step;         /* the step being taken, 0-based */
    float t;          /* training progress step / (steps - 1), in [0, 1]: the loss language's t */
    int use_l2;       /* the loss reads the l2 term: the step computes it and adds its gradient */
    LdRng rng;        /* the run's stream, seeded from seed and EvalFamily.rng_salt */
    LdArena arena;    /* sized by EvalFamily.run_bytes plus the optimisers' moments */
    EvalTrace *trace; /* NULL, or buffers to record into (internal.h) */
    void *state;      /* the family's run state, set by its setup (in arena) */
    int ngroups;
    TrainGroup group[TRAIN_MAX_GROUPS];
    TrainLoss loss;
    int ndeploy;
    TrainDeploy deploy[TRAIN_MAX_DEPLOY];
    int qat_from;     /* deploy.qat: the first step trained through the fake-quantised models
                         (the last quarter of the run); past the last step otherwise */
} Trainer;

/* For a family's setup: m is a model the task deploys (the policy, the classifier, an embedding
 * network). At task->deploy other than fp32 the precision hook quantises it (int8: activation
 * ranges calibrated on the ncalib rows of calib, read at scoring time) and scores the run again,
 * with every train_forward of m going through the quantised model; scoring forwards take at most
 * maxB rows. trainB: the rows of the step's forward of m (train_step_forward); with deploy.qat
 * the trainer binds m's quantisation-aware model for them here, and deploys from the ranges it
 * tracked. LD_OK, or LD_EINVAL with err when TRAIN_MAX_DEPLOY are registered, LD_ENOMEM. */
int train_deployable(Trainer *tr, const Mlp *m, const float *calib, int ncalib, int maxB, int trainB, char *err);
/* The same for a model m that takes the outputs of front, a model registered before it (a
 * decoder behind its encoder): int8 calibrates m's ranges on front's fp32 outputs of front's
 * calibration rows, as an observer calibrating the whole float model would see them. */
int train_deployable_behind(Trainer *tr, const Mlp *m, const Mlp *front, int maxB, int trainB, char *err);
/* For a family whose training forward is its own, not m's forward on rows (physics: u, u' and
 * u'' streams through the network's layers): m is deployed as by train_deployable (int8
 * calibrated on calib), and deploy.qat trains its weights only: in the last quarter of the steps
 * train_step_weights gives the step the weights fake-quantised as the int8 model will have them
 * (per output channel, symmetric), its own forward and backward run with them while activations
 * stay float (so derivatives in the inputs exist), and train_step_weights_backward passes the
 * gradients to the fp32 weights (straight-through). */
int train_deployable_weights(Trainer *tr, const Mlp *m, const float *calib, int ncalib, int maxB, char *err);
/* m itself, or in a weight-only quantisation-aware step, a view of m with its weights
 * fake-quantised now (biases m's; valid until the next call). */
const Mlp *train_step_weights(Trainer *tr, const Mlp *m);
/* After a step's backward with train_step_weights(tr, m)'s weights: g (a view like m) holds the
 * gradients with respect to them; in a weight-only quantisation-aware step they pass to m's
 * through the straight-through estimator (in place), else nothing changes. */
void train_step_weights_backward(Trainer *tr, const Mlp *m, const Mlp *g);
/* For a family's curve_val and score: m's outputs (B, outputs) on x, B <= a->maxB: mlp_forward,
 * or the deployed model's forward while the precision hook scores. */
const float *train_forward(Trainer *tr, const Mlp *m, MlpActs *a, const float *x, int B);
/* Whether the precision hook is scoring the deployed models now (a family's score may leave out
 * a metric the deployed model has no meaning for: physics' residual needs u''). */
int train_deploying(const Trainer *tr);
/* For a family's step: the training forward of a model and its backward (OVERWRITES every
 * gradient in g, as mlp_backward). mlp_forward / mlp_backward, except in the last quarter of a
 * deploy.qat run, where a deployable m trains through its fake-quantised int8 model with the
 * straight-through estimator (quant.h, QuantQat; the ranges are observed on these batches).
 * B <= the trainB m was registered with; the backward follows its forward on the same x. */
const float *train_step_forward(Trainer *tr, const Mlp *m, MlpActs *a, const float *x, int B);
void train_step_backward(Trainer *tr, const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz,
                         int B);
/* train_step_backward also writing the input gradient dx (B, m->dim[0]) (OVERWRITTEN), as
 * mlp_backward_dx: for a deployed model fed by another network (a decoder, a generator behind an
 * encoder); under deploy.qat through the input's fake quantisation (straight-through). */
void train_step_backward_dx(Trainer *tr, const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz,
                            float *dx, int B);
/* (train_forward, train_step_forward and train_step_backward take a NULL tr as a run outside the
 * trainer, a test's: the fp32 model's mlp_forward / mlp_backward.) */

/* For a family's setup: registers params/grads (n floats each, in the arena) as a parameter
 * group with its own optimiser (ts: its optimiser settings; NULL: the task's train_spec). The
 * moments come from tr->arena. LD_OK, or LD_ENOMEM with err. */
int train_group(Trainer *tr, float *params, float *grads, size_t n, const TrainSpec *ts, char *err);

/* The l2 term (weight decay), computed one way in every family: train_l2_add returns acc plus the
 * sum of the squares of the n weights w, each product and the running sum in double (the term is
 * then (float)(0.5 * the sum over the family's weight blocks)); train_l2_backward adds g * w to
 * their gradients gw (g: LossOut.g_term[TERM_L2]). */
static inline double train_l2_add(double acc, const float *w, size_t n) {
    for (size_t k = 0; k < n; k++) acc += (double)w[k] * w[k];
    return acc;
}
static inline void train_l2_backward(float *gw, const float *w, size_t n, float g) {
    for (size_t k = 0; k < n; k++) gw[k] += g * w[k];
}

/* For a family's step: applies group g's optimiser to its gradient now, at the schedule's rate
 * for this step. For a group the family marked manual (set tr->group[g].manual after
 * train_group), which the trainer then does not step. */
void train_group_step(Trainer *tr, int g);

/* For a family's step: runs the run's loss on in. */
static inline int train_loss(Trainer *tr, const LossIn *in, LossOut *out) {
    return tr->loss.fn(tr->loss.ctx, in, out);
}

/* Trains a fresh model on task under loss with the one policy (internal.h) and fills res, as
 * eval_run; trace may be NULL. Borrows everything. */
int train_run(const Task *task, const TrainLoss *loss, const EvalOpts *opt, EvalResult *res,
              EvalTrace *trace, char *err);

/* 64-byte rounding, as arena_alloc takes memory. */
static inline size_t train_al64(size_t n) { return (n + 63) & ~(size_t)63; }

#endif
