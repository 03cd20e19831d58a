/* lossprog.h: a loss expression compiled into a batch program that computes the loss and its
 * exact gradient (reverse mode over batch x classes). Compiled once per evaluation, run once per
 * training step with no allocation. */
#ifndef LOSSPROG_H
#define LOSSPROG_H

#include "expr.h"

typedef struct LossProg LossProg;

/* What one step feeds the program. Pointers are borrowed for the call. */
typedef struct LossIn {
    int B;              /* rows in this batch (<= max_batch given to lossprog_new) */
    float t;            /* training progress in [0, 1] */
    const float *z;     /* (B, C) model outputs: logits, or predictions f when C == 1 */
    const int *label;   /* (B) class labels, classification and contrastive (supcon); else NULL */
    const float *y;     /* (B) targets, regression/physics; else NULL */
    const float *emb;   /* (2B, D) embeddings of two views, contrastive: rows i and B+i pair */
    float l2;           /* value of the l2 term: 0.5 * sum of squared weights */
    float phys, bc;     /* values of the physics terms, computed by the physics task */
} LossIn;

/* What it returns. dz and demb point into the program's own memory, valid until the next run. */
typedef struct LossOut {
    float loss;         /* mean over the batch of the per-sample expression (+ batch terms) */
    const float *dz;    /* (B, C) d loss / d z */
    const float *demb;  /* (2B, D) d loss / d emb, contrastive */
    float g_l2;         /* d loss / d l2: the caller adds g_l2 * w to each weight's gradient */
    float g_phys, g_bc; /* d loss / d phys, d loss / d bc */
} LossOut;

/* Compiles e for family with at most max_batch rows, C classes (1 for regression/physics) and
 * D embedding dims (contrastive; else 0). Returns LD_OK and an owned program in *out, or
 * LD_EINVAL with err when e is not usable for family (see expr_check). Borrows e. */
int lossprog_new(const Expr *e, int family, int max_batch, int C, int D, LossProg **out, char *err);
void lossprog_free(LossProg *p);

/* Runs forward and backward. Returns LD_OK, or LD_EFAILED when the loss or gradient is not
 * finite (out->loss then holds the bad value). Never allocates. */
int lossprog_run(LossProg *p, const LossIn *in, LossOut *out);

#endif
