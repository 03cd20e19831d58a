/* internal.h: what the evaluator's own files share: the Task struct, data sets and the hooks
 * of the physics and contrastive families. Not for other modules (they use eval.h). */
#ifndef EVAL_INTERNAL_H
#define EVAL_INTERNAL_H

#include "../common/lossd.h"
#include "eval.h"
#include "lossprog.h"

/* A split of a data set. Features are standardised with training statistics. */
typedef struct Dataset {
    int n, d;
    float *x;   /* (n, d) features, row-major, owned */
    int *label; /* (n) class labels for classification/contrastive, else NULL; owned */
    float *y;   /* (n) targets for regression, else NULL; owned */
} Dataset;

enum { ACT_RELU = 0, ACT_TANH = 1, ACT_GELU = 2 };
enum { OPT_ADAM = 0, OPT_SGD = 1 };

#define MODEL_MAX_HIDDEN 8

typedef struct ModelSpec {
    int nhidden;
    int hidden[MODEL_MAX_HIDDEN];
    int act;       /* ACT_* */
    int embed_dim; /* contrastive: output size of the embedding network */
} ModelSpec;

typedef struct TrainSpec {
    int optimizer;               /* OPT_* */
    float lr, momentum;          /* SGD momentum */
    float beta1, beta2, adam_eps;
    int batch, steps;
} TrainSpec;

struct PhysProblem; /* physics.c */
struct ConSpec;     /* contrastive.c */

struct Task {
    char name[64];
    int family;   /* FAM_* */
    int nclass;   /* classes (classification, contrastive); 1 for regression and physics */
    Dataset train, val, test;
    ModelSpec model;
    TrainSpec train_spec;
    char metric[24];
    int higher_better;
    cJSON *spec;   /* owned normalised spec */
    uint64_t hash; /* of the normalised spec */
    struct PhysProblem *phys; /* physics family, owned by physics.c */
    struct ConSpec *con;      /* contrastive family, owned by contrastive.c */
};

void dataset_free(Dataset *d);

/* Physics family (physics.c). phys_task_load reads the physics part of spec ("data":
 * "builtin:oscillator" or "builtin:poisson", noise, observations, collocation points) and fills
 * t->phys and the family defaults (model, training, metric). */
int phys_task_load(Task *t, const cJSON *spec, char *err);
void phys_task_free(Task *t);
int phys_eval_run(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err);

/* Contrastive family (contrastive.c). The data set is loaded by task.c as for classification;
 * con_task_load reads the augmentation settings and fills t->con and the family defaults. */
int con_task_load(Task *t, const cJSON *spec, char *err);
void con_task_free(Task *t);
int con_eval_run(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err);

#endif
