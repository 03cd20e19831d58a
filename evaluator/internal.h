/* internal.h: what the evaluator's own files share: the Task struct, data sets, the training
 * policy and the loaders of the physics and contrastive families. Not for other modules (they
 * use eval.h). */
#ifndef EVAL_INTERNAL_H
#define EVAL_INTERNAL_H

#include "../common/lossd.h"
#include "eval.h"
#include "family.h"
#include "../lang/lossprog.h"

/* A split of a data set. Features are standardised with training statistics. */
typedef struct Dataset {
    int n, d;
    float *x;   /* (n, d) features, row-major, owned */
    int *label; /* (n) class labels for classification/contrastive, else NULL; owned */
    float *y;   /* (n) targets for regression, else NULL; owned */
    float *mean, *sd; /* training split: (d) the statistics its features (and the other splits')
                         were standardised with, x = (raw - mean) / sd; NULL when the features are
                         kept as read (DataPrep.raw) and in the other splits; owned */
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
    int deploy;    /* QUANT_* (quant.h): the precision the trained model is scored at
                      (deploy.precision; QUANT_FP32 by default) */
    int deploy_qat; /* deploy.qat: int8 with quantisation-aware training over the last quarter */
    cJSON *spec;   /* owned normalised spec */
    uint64_t hash; /* of the normalised spec */
    struct PhysProblem *phys; /* physics family, owned by physics.c */
    struct ConSpec *con;      /* contrastive family, owned by contrastive.c */
    void *own;                /* a family's own loaded data (its load/unload), NULL: none */
    float y_mean, y_std;      /* regression: training-target statistics; targets in Dataset.y
                                 are standardised, metrics are reported in original units */
    cJSON *data_info;         /* what loading the table did (task_data_json), owned; NULL: none */
    char data_note[320];      /* the same as one line for logs, "" when loading changed nothing */
    /* split.folds x split.repeats > 1: the task is a family of train/validation splits of the
     * same non-test rows (the test rows never change). This Task holds split 0; folds[i - 1]
     * split i, a copy of this Task that owns only its train, val and test Datasets. */
    int nfold;
    struct Task *folds;
};

#define TASK_MAX_FOLDS 10 /* split.folds and split.repeats at most; their product at most 32 */
/* The split a run with this seed trains on (task.c): task itself, or split seed % nfold. */
const Task *task_fold(const Task *t, uint64_t seed);

void dataset_free(Dataset *d);

/* spec.c: validates every key of a task spec for family once, from one table (type, range,
 * families): unknown keys are refused with the full path and a "did you mean" hint ("task:
 * transform: unknown key 'flip'"), as are split.val = 0 and values out of range. Borrows spec. */
int spec_check(const cJSON *spec, int family, char *err);

/* task.c: the readers of a spec's values, shared by the families' loaders. An optional number
 * (integer) key of obj (NULL: absent) in [lo, hi] is read into *v, which keeps its value when
 * the key is absent; where is the key's section with its dot ("train.", "physics.") for the
 * error ("task: physics.noise: -1 is out of range [0, 10]"). Return LD_OK or LD_EINVAL. */
int task_get_num(const cJSON *obj, const char *where, const char *key, double lo, double hi, double *v,
                 char *err);
int task_get_int(const cJSON *obj, const char *where, const char *key, int lo, int hi, int *v, char *err);
/* The spec's model and train objects (NULL: absent) over t's current settings (a family's
 * defaults): the keys given replace them. task_load applies both after the family's load; a
 * loader that checks the resulting model or training (physics refuses relu) calls them over its
 * defaults first. Borrow the objects. */
int task_read_model(Task *t, const cJSON *model, char *err);
int task_read_train(Task *t, const cJSON *train, char *err);

/* data.c: a loaded table before splitting. x (n, d) and y (n) are owned. For classification y
 * holds class ids 0..nclass-1 as floats. A missing feature value kept under DATA_MISSING_MEAN is
 * NaN in x (data_prepare fills it). */
typedef struct Table {
    int n, d;
    float *x, *y;
    int nclass; /* classification: number of classes; else 0 */
    /* What loading did, for the task's data report (CSV only; 0 otherwise). */
    int rows_read;          /* data rows in the file */
    int rows_dropped;       /* rows dropped for a missing value (or a missing label) */
    int values_filled;      /* missing feature values kept, to be filled with the training mean */
    int ncategorical;       /* text columns one-hot encoded */
    char categorical[160];  /* "color (3 levels), city (12 levels)", cut when long */
} Table;

/* What a CSV's missing values do (the task key "missing"). */
enum { DATA_MISSING_ERROR = 0, DATA_MISSING_DROP_ROWS = 1, DATA_MISSING_MEAN = 2 };
/* A text (categorical) feature column is one-hot encoded over at most this many distinct values. */
#define DATA_MAX_LEVELS 32
const char *data_missing_name(int missing); /* "error", "drop_rows", "mean" */

/* Reads a CSV file with a header row (RFC 4180 quoting; a UTF-8 byte-order mark is skipped).
 * label: the target column's name (NULL: the last column). classify: labels become class ids
 * (integers, or sorted unique strings). missing: DATA_MISSING_*; a missing value is an empty
 * field, NA, N/A, NaN or NULL (any case). A feature column with no number in it is categorical
 * and one-hot encoded (levels sorted, at most DATA_MAX_LEVELS); mixing numbers and text in a
 * column is an error naming both. */
int data_read_csv(const char *path, const char *label, int classify, int missing, Table *out, char *err);
/* The same over len bytes of buf (path names it in errors), decoded in place: buf is modified
 * and must hold len + 1 bytes. Borrows buf; out's arrays are owned by the caller. */
int data_parse_csv(const char *path, char *buf, size_t len, const char *label, int classify, int missing,
                   Table *out, char *err);
/* Reads a .npy array: ndim must be want_ndim (2: features, 1: labels). Returns owned float
 * data in *out with its shape in rows/cols (cols = 1 for 1-D). */
int data_read_npy(const char *path, int want_ndim, float **out, int *rows, int *cols, char *err);
/* The same over len bytes of buf (path names it in errors). Borrows buf. */
int data_parse_npy(const char *path, const char *buf, size_t len, int want_ndim, float **out, int *rows,
                   int *cols, char *err);
/* Turns float labels into class ids: integers 0..999 or an error naming src and the row. */
int data_class_ids(const char *src, const float *y, int n, int *nclass, char *err);
void table_free(Table *t);

/* What task.c asks of data.c: split, transform (training split only) and standardise. */
typedef struct DataPrep {
    double val, test;   /* split fractions */
    uint64_t seed;      /* split and transform seed */
    double imbalance;   /* fraction kept of classes (nclass+1)/2 .. nclass-1; 1: off */
    double label_noise; /* fraction of training labels flipped to another class */
    double outliers;    /* fraction of training targets corrupted by +-(5..10) std */
    double subsample;   /* fraction of the training split kept */
    int folds;          /* > 1: validation is fold `fold` of `folds` over the non-test rows */
    int fold, repeat;   /* which fold, and which shuffle of the non-test rows (repeat) */
    int raw;            /* keep the features as read (no standardisation): the generative family */
    double pixel_noise; /* fraction of the training split's feature values set at random to their
                           column's training minimum or maximum (salt and pepper) */
} DataPrep;

/* Splits tab (borrowed) into t->train/val/test with the transforms of p; sets y_mean/y_std for
 * regression. classify: labels go to Dataset.label, else targets to Dataset.y. */
int data_prepare(const Table *tab, int classify, const DataPrep *p, Task *t, char *err);

/* train.c: the one training policy, applied by the one trainer (train.h) to every family:
 * - curve: TRAIN_CURVE_POINTS points over the run (or one every opt->curve_every steps), at most
 *   EVAL_CURVE_MAX; train_curve_every gives the spacing. A point shows the mean training loss
 *   since the previous point and the family's curve_val; final_loss is the last point's loss.
 * - stop rules, checked by train_stop after every step's loss, in this order: the cancel flag
 *   ("cancelled at step N", res->cancelled), a non-finite loss ("non-finite loss at step N (v)";
 *   a finite loss whose gradient is not finite: "non-finite gradient at step N"), divergence:
 *   |loss| > 1e12 at any step, or > 1e6 and > 1e3 x max(|first loss|, 1e-3) ("loss diverged at
 *   step N (v)"). A loss that starts large (1e9*mse) is not divergence until 1e12; one that
 *   grows a thousandfold past 1e6 is. After the last step, non-finite parameters fail the run
 *   ("non-finite weights after step N"). train_stop returns 1 with res->ok = 0 and res->error
 *   set, else 0.
 * - learning rate: the family's schedule (TRAIN_LR_*) over each parameter group's peak rate.
 * - precision: the one place a precision transform (quantise the parameters, score, restore)
 *   goes is train_score in train.c, the final scoring after the loop. */
#define TRAIN_CURVE_POINTS 10

/* train.c: eval_run with a trace (`lossd eval --dump-trace`; bench/parity.py replays the MLP
 * families' in PyTorch). The buffers init, final, batches and losses are caller-owned and
 * optional (NULL: not recorded): init (eval_param_count floats) receives the initial parameters
 * of group 0 in the MLP layout (w0 (d,h1), b0, w1, ...), final the trained ones (before
 * scoring), batches (steps * batch ints) the training-row indices of every step (the families
 * that draw rows of a data set), losses (steps floats) every step's training loss. With
 * all_groups, train_run also copies every parameter group's initial and final values into
 * group_init and group_final (group_n floats each, malloc'd by train_run outside the training
 * loop; eval_trace_free frees them). */
#define EVAL_TRACE_GROUPS 4 /* = TRAIN_MAX_GROUPS */
typedef struct EvalTrace {
    float *init;
    float *final;
    int *batches;
    float *losses;
    int all_groups, ngroups;
    size_t group_n[EVAL_TRACE_GROUPS];
    float *group_init[EVAL_TRACE_GROUPS], *group_final[EVAL_TRACE_GROUPS];
} EvalTrace;
void eval_trace_free(EvalTrace *tr); /* the group copies; not the caller's buffers */
/* A JSON array of n numbers (owned), for the traces' JSON. */
cJSON *eval_json_floats(const float *v, size_t n);
cJSON *eval_json_ints(const int *v, size_t n);
/* Adds a trace's settings to o: family, optimizer, lr, momentum, beta1, beta2, eps, batch. */
void eval_trace_settings(cJSON *o, const Task *t);
size_t eval_param_count(const Task *t);
int eval_run_traced(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                    EvalTrace *trace, char *err);

/* metrics.c. Classification from logits z (n, C) and labels; regression from predictions and
 * targets in the same units. */
double metric_accuracy(const float *z, const int *label, int n, int C);
double metric_balanced_accuracy(const float *z, const int *label, int n, int C);
double metric_macro_f1(const float *z, const int *label, int n, int C);
double metric_ece(const float *z, const int *label, int n, int C, int bins);
double metric_mse(const float *f, const float *y, int n);
double metric_mae(const float *f, const float *y, int n);
/* 1 if name is a metric of family (its higher-better flag in *higher_better), else 0. */
int metric_known(int family, const char *name, int *higher_better);

/* Physics family (physics.c). phys_task_load reads the physics part of spec ("data":
 * "builtin:oscillator" or "builtin:poisson", noise, observations, collocation points) and fills
 * t->phys and the family defaults (model, training, metric). */
int phys_task_load(Task *t, const cJSON *spec, char *err);
void phys_task_free(Task *t);

/* Contrastive family (contrastive.c). The data set is loaded by task.c as for classification;
 * con_task_load reads the augmentation settings and fills t->con and the family defaults. */
int con_task_load(Task *t, const cJSON *spec, char *err);
void con_task_free(Task *t);

#endif
