/* generative.h: the generative family's model kinds (docs/families.md, "generative"). One task
 * family, "generative", whose task chooses a model with model.kind: "autoencoder" (default,
 * generative.c) or "gan". generative.c is the family (EvalFamily family_generative): it reads the
 * common keys, loads the data set as pixels or features kept as read, and forwards every training
 * hook to the task's kind. A kind is one GenKind plus one line in generative.c's kinds table. */
#ifndef EVAL_GENERATIVE_H
#define EVAL_GENERATIVE_H

#include "train.h"

/* What the family loaded for a task (Task.own). */
typedef struct GenTask {
    const struct GenKind *kind;
    int latent;         /* model.latent: the autoencoder's bottleneck width (default 8) */
    int noise;          /* model.noise: the GAN generator's noise dims (default 16) */
    int d_steps;        /* train.d_steps: discriminator steps per generator step (default 1) */
    int digits;         /* the data are digits pixels in [0, 1] (builtin:digits / 16, or 64 features
                           in [0, 1]): the fixed networks (fixednet.h) apply */
    int unit;           /* every value of every split is in [0, 1]: outputs go through a sigmoid and
                           bce_rec is usable */
    char outside[200];  /* when !unit: where the first value outside [0, 1] is, for errors */
    char why[400];      /* the reason of the terms the task refuses (EvalFamily.task_refused) */
    void *own;          /* the kind's own loaded data (its load/unload), NULL: none */
} GenTask;

/* A model kind: its name, the loss inputs it provides (LIN_*, a subset of the family's), the
 * family metrics it reports (names from family_generative.metrics, the first its default
 * selection metric; NULL-ended) and the hooks the family forwards to (as in EvalFamily; load runs
 * after the family's own load, with t->own the GenTask). */
typedef struct GenKind {
    const char *name;
    unsigned inputs;
    const char *baseline; /* the default baseline of its tasks (the family's is the autoencoder's) */
    const char *metrics[FAMILY_METRICS_MAX + 1];
    int (*load)(Task *t, const cJSON *spec, char *err);
    void (*unload)(Task *t);
    void (*loss_shape)(const Task *t, int *B, int *C, int *D);
    size_t (*run_bytes)(const Task *t, size_t *nparams);
    int (*setup)(Trainer *tr, char *err);
    int (*step)(Trainer *tr, float *loss);
    double (*curve_val)(Trainer *tr, int last);
    void (*score)(Trainer *tr, EvalResult *res);
} GenKind;

extern const GenKind gen_autoencoder, gen_gan;

/* The GAN's fixed noise streams (rng_seed; a test replays them): a split's scoring noise is
 * seeded ld_mix64(GAN_SCORE_SEED, 0 for validation, 1 for test), the same for every run and
 * candidate; the generator's int8 calibration rows are the first GAN_CALIB noise rows of
 * GAN_CALIB_SEED. */
#define GAN_SCORE_SEED 0x67616e5ull
#define GAN_CALIB_SEED 0x63616c6962ull
#define GAN_CALIB 512

/* The GenTask of a generative task. */
static inline GenTask *gen_task(const Task *t) { return (GenTask *)t->own; }

#endif
