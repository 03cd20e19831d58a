/* lossprog.h: a loss expression compiled into a batch program that computes the loss and its
 * exact gradient (reverse mode over batch x classes). Compiled once per evaluation, run once per
 * training step with no allocation. */
#ifndef LOSSPROG_H
#define LOSSPROG_H

#include "expr.h"

typedef struct LossProg LossProg;

/* What one step feeds the program. Pointers are borrowed for the call. Which of z, label, y, emb
 * a family fills follows from the inputs it provides (LIN_*, lang/expr.h); the batch terms it
 * computes itself (the trainer's l2, a family's own terms such as physics' phys and bc) are
 * values in term[], indexed by TERM_*, and their adjoints come back in LossOut.g_term[]: the
 * program has no field of its own for any family. */
typedef struct LossIn {
    int B;              /* rows in this batch (<= max_batch given to lossprog_new) */
    float t;            /* training progress in [0, 1] */
    const float *z;     /* (B, C) model outputs: logits (LIN_CLASS), or predictions f when C == 1 (LIN_PRED) */
    const int *label;   /* (B) class labels (LIN_CLASS, LIN_EMB for supcon); else NULL */
    const float *y;     /* (B) targets (LIN_PRED); else NULL */
    const float *emb;   /* (2B, D) embeddings of two views (LIN_EMB): rows i and B+i pair */
    float term[TERM_COUNT]; /* values of caller-computed batch terms: term[TERM_L2] = 0.5 * sum of
                               squared weights, term[TERM_PHYS], term[TERM_BC], ... */
    const float *var[VAR_COUNT]; /* (B) per-sample variables the family feeds as data (VAR_IS_FED:
                                    the rl family's logp ret adv v td ent, a GAN's dx dgz); NULL
                                    where unused */
    int side;           /* LOSS_SIDE_*: which of a GAN's networks this loss trains; the
                           adversarial terms (TERM_IS_ADVERSARIAL) are that side's loss */
    const float *x;     /* (B, C) the input an autoencoder reconstructs (LIN_AE); z is its
                           reconstruction xh (B, C) */
    const float *sterm[TERM_COUNT]; /* (B) values of per-sample terms the family computes
                                       (TK_FED terms: the generative family's perc); NULL where unused */
} LossIn;

/* The sides of a GAN (LossIn.side). 0, the default of a zeroed LossIn, is the generator. */
enum { LOSS_SIDE_G = 0, LOSS_SIDE_D = 1 };

/* What it returns. dz and demb point into the program's own memory, valid until the next run. */
typedef struct LossOut {
    float loss;         /* mean over the batch of the per-sample expression (+ batch terms) */
    const float *dz;    /* (B, C) d loss / d z */
    const float *demb;  /* (2B, D) d loss / d emb */
    float g_term[TERM_COUNT]; /* d loss / d term[k]; the caller adds g_term[TERM_L2] * w to each
                                 weight's gradient */
    const float *g_var[VAR_COUNT]; /* (B) d loss / d var[k] for the fed variables that depend on the
                                      model (VAR_IS_OUTPUT) and the loss reads; NULL otherwise. The
                                      family chains them into its model (rl: td's into v, -1). */
    const float *g_sterm[TERM_COUNT]; /* (B) d loss / d sterm[k] for the fed per-sample terms the loss
                                         reads; NULL otherwise. The family chains them (perc: back
                                         through the fixed feature network into xh). */
} LossOut;

/* Compiles e for family with at most max_batch rows, C classes (1 for regression/physics) and
 * D embedding dims (contrastive; else 0). Returns LD_OK and an owned program in *out, or
 * LD_EINVAL with err when e is not usable for family (see expr_check). Borrows e. */
int lossprog_new(const Expr *e, int family, int max_batch, int C, int D, LossProg **out, char *err);
void lossprog_free(LossProg *p);

/* A named adversarial term (TERM_GAN, TERM_NSGAN, TERM_WGAN, TERM_HINGE_GAN) of side (LOSS_SIDE_*) on
 * B logit pairs without a program, with the program's kernels: the batch mean in *loss, its
 * gradient with respect to dx and dgz in gdx and gdgz (B each, OVERWRITTEN; gdx is 0 on the
 * generator's side). For a GAN side that trains on a textbook loss while the task's loss trains
 * the other. LD_OK, LD_EFAILED when not finite, LD_EINVAL for another term. Never allocates. */
int lossprog_adversarial(int term, int side, const float *dx, const float *dgz, int B, float *loss, float *gdx,
                         float *gdgz);

/* Runs forward and backward. Returns LD_OK, or LD_EFAILED when the loss or gradient is not
 * finite (out->loss then holds the bad value). Never allocates. */
int lossprog_run(LossProg *p, const LossIn *in, LossOut *out);

#endif
