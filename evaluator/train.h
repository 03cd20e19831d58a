/* train.h: the one trainer every family trains under (train.c), and what a family's hooks see
 * of a run. The trainer owns the arena, the RNG, one optimiser per parameter group, the
 * learning-rate schedule, the stop rules (cancel, non-finite, divergence), the curve, wall time
 * and the precision hook; a family (family.h) supplies its state, a training step and scoring. */
#ifndef EVAL_TRAIN_H
#define EVAL_TRAIN_H

#include "internal.h"
#include "mlp.h"

/* The loss a step runs: the compiled loss program in production (lossprog_run), a hand-written
 * loss in the tests. Returns LD_OK, or LD_EFAILED when the loss or its gradient is not finite
 * (out->loss then holds the loss). */
typedef int (*TrainLossFn)(void *ctx, const LossIn *in, LossOut *out);
typedef struct TrainLoss {
    TrainLossFn fn;
    void *ctx;
    int use_l2; /* the loss reads the l2 term (the step may skip computing it otherwise) */
} TrainLoss;

#define TRAIN_MAX_GROUPS 4

/* One parameter group: a vector the family lays out as it likes (an MLP's weights and biases, a
 * GAN's generator or its discriminator), its gradient, and an optimiser of its own. */
typedef struct TrainGroup {
    float *params, *grads; /* (n) each, borrowed from the family's state in the arena */
    size_t n;
    float lr;              /* peak learning rate; the schedule scales it each step */
    Optim optim;           /* its moments live in the trainer's arena */
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
} Trainer;

/* For a family's setup: registers params/grads (n floats each, in the arena) as a parameter
 * group with its own optimiser (ts: its optimiser settings; NULL: the task's train_spec). The
 * moments come from tr->arena. LD_OK, or LD_ENOMEM with err. */
int train_group(Trainer *tr, float *params, float *grads, size_t n, const TrainSpec *ts, char *err);

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
