/* family.h: the family interface. A task family is one file that fills one EvalFamily (its
 * name, metrics with their direction, default baseline, whether it trains on a data set's rows,
 * its loader, and the hooks the one trainer calls: its state, a training step, scoring) plus one
 * row in LANG_FAMILIES (lang/expr.h), from which family.c's table is expanded. The evaluator reaches a family only through this table: task.c loads
 * through it, the trainer trains through it, metric_known reads it. See docs/architecture.md,
 * "Families". */
#ifndef EVAL_FAMILY_H
#define EVAL_FAMILY_H

#include <cjson/cJSON.h>

#include "../lang/lossprog.h"
#include "eval.h"

typedef struct EvalMetricDef {
    const char *name;
    int higher_better;
} EvalMetricDef;

#define FAMILY_METRICS_MAX 6

/* A spec key a family reads beyond the common ones of spec.c's table: its section ("" for the
 * top level, else an object key of the top level), name, type (SK_*) and range (numbers). The
 * one spec reader (spec_check) checks it like the table's rows. */
enum { SK_OBJ, SK_NUM, SK_INT, SK_STR, SK_ARR, SK_ANY };
typedef struct EvalSpecKey {
    const char *sect, *key;
    int type;
    double lo, hi;
} EvalSpecKey;

struct Trainer;    /* train.h: one run, as the hooks below see it */
struct EvalTrace;  /* internal.h: what a traced run recorded */

/* A probe batch (evaluator/probe.c): seeded loss inputs of B rows on which the search's gradient
 * signatures and pre-check run a loss program without a model. A family's probe hook fills it:
 * the shape of the loss program (B rows, C outputs per row, D embedding dims), the buffers
 * (calloc'd by the hook, freed by probe.c, also when the hook fails part way), in pointing into
 * them, and sig_vars. */
typedef struct EvalProbe {
    int B, C, D;
    float *z, *y, *emb, *fed; /* outputs (B, C), targets (B), embeddings (2B, D), fed variables */
    int *label;               /* (B) */
    /* 0: the signature reads d loss / d z; else d loss / d var (B each, in VAR_ order) for each
     * VAR_ bit: the fed variables that depend on the family's model (rl: logp v td ent). */
    uint32_t sig_vars;
    /* The sig_vars bits whose gradients reach a second parameter group with an optimiser of its
     * own (rl: v and td reach the critic, logp and ent the policy); 0: one group. Adam's update
     * does not change when a group's gradient is scaled, so the signature scales each group's
     * block to unit length (unless the loss reads l2, which couples the groups): losses that
     * differ only in the weight of one group's part (a2c + td2, a2c + 0.5*td2) share it. */
    uint32_t sig_group2;
    /* A fixed weight for each sig_vars row (0: 1). rl weights ent's by 100: an entropy bonus is
     * about a hundredth of the policy term's gradient, so unweighted, a2c and a2c - 0.01*ent
     * would lie within the search's merge threshold though they train differently. A fixed
     * weight keeps losses that are equal up to a group's scale equal. */
    float sig_w[VAR_COUNT];
    LossIn in;
    /* NULL, or adds the share of the per-sample terms the family feeds (in.sterm: the generative
     * family's perc) to d loss / d z: dz (B, C) holds o->dz on entry, o is a run on in. */
    void (*fed_grad)(const struct EvalProbe *b, const LossOut *o, float *dz);
} EvalProbe;

typedef struct EvalFamily {
    const char *name;  /* as in a task spec's "family", = family_name(id) */
    /* Metrics the family reports, the first is its default selection metric; a name of NULL
     * ends the list. */
    EvalMetricDef metrics[FAMILY_METRICS_MAX + 1];
    const char *baseline; /* the loss a search compares against by default */
    /* The default baseline of a job that names none: this panel, the baseline first (docs/jobs.md,
     * "Panel baseline"); NULL-ended; NULL: the baseline alone. */
    const char *const *baselines;
    /* For the search (search.h's SearchFamily): textbook losses its first population tries,
     * and the terms of the family's textbook mixture (the tuner's panel). NULL-ended lists of
     * loss expressions; NULL: none. */
    const char *const *known;
    const char *const *panel;
    /* 1: the task is rows of a data set that task.c loads, splits and transforms (classify: the
     * target is a class label); 0: the family builds its own data in load. raw: the features are
     * kept as read (no standardisation; the generative family's pixels). */
    int data_set, classify, raw;
    /* inputs: for a family added at run time (eval_family_add), what it provides to the loss
     * language (LIN_*, lang/expr.h); a built-in family's name and inputs are its LANG_FAMILIES
     * row's (name must be the row's name).
     * keys: the spec keys only this family reads (NULL key ends; NULL: none), checked by the one
     * spec reader after spec.c's table of the keys families share. */
    unsigned inputs;
    const EvalSpecKey *keys;
    /* What task t provides to the loss language when it is a subset of the family's inputs (the
     * generative family: the model kind's); NULL: all of them. The search narrows a job's
     * vocabulary to it (SearchTask.inputs). */
    unsigned (*task_inputs)(const Task *t);
    /* The default baseline of task t when it is not the family's (a GAN task's); NULL: none. */
    const char *(*task_baseline)(const Task *t);
    /* Terms (bits TERM_*) task t's inputs provide but its data cannot serve (the generative
     * family's bce_rec on values outside [0, 1], perc on data that is not digits pixels), with the
     * reason in *why (borrowed from the task); NULL: none. The search leaves them out of a job's
     * vocabulary and refuses a job's loss that reads one at submit. */
    uint32_t (*task_refused)(const Task *t, const char **why);
    /* After the data set (if any) is loaded: reads the family's own spec keys (already checked
     * by spec_check) into t and sets its defaults. NULL: nothing to read. Frees what it made
     * on failure. */
    int (*load)(Task *t, const cJSON *spec, char *err);
    void (*unload)(Task *t); /* NULL: nothing to free */

    /* ---- training, under the one trainer (train.h, train.c) */
    uint64_t rng_salt; /* the run's RNG stream is seeded with ld_mix64(seed, rng_salt) */
    int lr_schedule;   /* TRAIN_LR_* */
    /* The loss program's shape on t: rows per step B, outputs per row C (classes, or 1),
     * embedding dims D (0: none). */
    void (*loss_shape)(const Task *t, int *B, int *C, int *D);
    /* Arena bytes the family's run state takes on t (parameters and gradients included, the
     * optimisers' moments not); *nparams: its parameters over every group. */
    size_t (*run_bytes)(const Task *t, size_t *nparams);
    /* Points its state into tr->arena (tr->state), initialises the parameters (from tr->seed or
     * tr->rng) and registers every parameter group with train_group. LD_OK, or an error with
     * err (the run does not happen). */
    int (*setup)(struct Trainer *tr, char *err);
    /* One training step at tr->step: a batch (or a rollout), forward, the loss (train_loss),
     * backward into every group's grads. LD_OK with *loss, or LD_EFAILED when the loss or a
     * gradient is not finite (*loss then holds the loss). Allocates nothing. */
    int (*step)(struct Trainer *tr, float *loss);
    /* The value a curve point shows: the selection metric on the validation split (or a
     * sample of it); last: the model is final, so the family may keep what it computed for
     * score. */
    double (*curve_val)(struct Trainer *tr, int last);
    /* Scores the trained model: every metric on val and test into res->extra, in metrics[]
     * order. The trainer then takes val and test from the task's metric. It may fail the run
     * (res->ok = 0 with res->error). */
    void (*score)(struct Trainer *tr, EvalResult *res);

    /* ---- the search's probes (probe.c) */
    /* Fills b with a probe batch of B rows for C outputs (the task's; the family may normalise
     * it) from r: the inputs it gives its loss programs, with outputs spread sd (a signature
     * uses 2, the pre-check 1) and the trainer's l2 term at l2. in: the family's inputs (LIN_*).
     * LD_OK, or an error with err (err may be NULL). The built-in families use eval_probe_std;
     * NULL: no probe batch, so the search rejects every candidate of the family. */
    int (*probe)(EvalProbe *b, unsigned in, int B, int C, float sd, float l2, LdRng *r, char *err);

    /* ---- `lossd eval --dump-trace` (inspect.c) */
    /* The family's own trace of a finished run of steps steps (owned JSON), for a replay
     * elsewhere (the MLP families': bench/parity.py's layout). NULL: the common trace every
     * family gets (inspect.c: settings, every parameter group's initial and final values,
     * every step's loss, the curve). */
    cJSON *(*trace)(const Task *t, const struct EvalTrace *tr, int steps, const EvalResult *res);
    /* Whether loss e can train task t, beyond the family's vocabulary (expr_check): the
     * generative family refuses a GAN term on an autoencoder task, or bce_rec on data outside
     * [0, 1]. Called before the loss is compiled for a run. LD_OK, or LD_EINVAL with err naming
     * the part and why. NULL: every loss of the vocabulary. */
    int (*check_loss)(const Task *t, const struct Expr *e, char *err);

    /* ---- deployment (the task's deploy key; train.c's precision hook) */
    /* FAMILY_DEPLOY_* bits: what the family's setup supports. PTQ: it registers the models it
     * deploys (train_deployable) and scores through train_forward, so deploy.precision other
     * than fp32 applies; QAT: it also runs each deployed model's training forward and backward
     * through train_step_forward / train_step_backward, so deploy.qat applies. A task asking for
     * what the family lacks is refused at load with deploy_why (NULL: a generic reason). */
    unsigned deploy;
    const char *deploy_why;
    /* Whether task t can be deployed as its deploy key asks, beyond the bits (physics: a GELU
     * network): LD_OK, or LD_EINVAL with err naming what and why. NULL: every task. */
    int (*check_deploy)(const Task *t, char *err);
} EvalFamily;

enum { FAMILY_DEPLOY_PTQ = 1, FAMILY_DEPLOY_QAT = 2 };

/* The probe batch of the built-in families, built from the inputs in they provide: logits
 * N(0, sd^2) and labels (LIN_CLASS; C < 2 becomes 10), predictions and targets N(0, 1)
 * (LIN_PRED), embeddings N(0, 1) of 8 dims with labels in 0..3 (LIN_EMB), the family's batch
 * terms phys = bc = 1 (LIN_PHYS), and rl's fed variables (LIN_RL: logp in [log 0.05, 0], ent in
 * [0.1, 0.7], advn the batch's adv normalised (rl_advn), the rest N(0, 1); the signature reads
 * logp v td ent). */
int eval_probe_std(EvalProbe *b, unsigned in, int B, int C, float sd, float l2, LdRng *r, char *err);

/* The family with id fam (FAM_*, or an id eval_family_add returned), or NULL. */
const EvalFamily *eval_family(int fam);

/* Adds a family at run time, the one line a family outside the built-in table needs (a test's
 * family; tests/family_toy.c): registers f->name and f->inputs with the loss language and f in
 * the table. Returns the family's id, or -1 (name taken, table full). Call at start-up, before
 * any task loads or other thread runs: the table is written once, then only read. No weak
 * symbols: whoever composes the program (a main, a test) makes the call. Borrows f for the
 * life of the process. */
int eval_family_add(const EvalFamily *f);

/* The built-in families' own descriptions, family_<name> for each LANG_FAMILIES row, each in
 * its family's file (supervised.c holds the two that train an MLP on a data set's rows). */
#define EVAL_FAMILY_DECL_(id, name, inputs) extern const EvalFamily family_##name;
LANG_FAMILIES(EVAL_FAMILY_DECL_)
#undef EVAL_FAMILY_DECL_

#endif
