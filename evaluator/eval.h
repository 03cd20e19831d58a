/* eval.h: tasks (data set + model + training recipe) and the short training run that scores a
 * loss on a task. Everything here is thread-safe: a Task is immutable once loaded and may be
 * shared by many evaluations running at once; each evaluation owns one arena. */
#ifndef EVAL_H
#define EVAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/lossd.h"
#include "../common/work.h"
#include "../lang/expr.h"

typedef struct Task Task;

/* Loads a task from its JSON spec (docs/tasks.md) or from a string: "builtin:NAME" or a path to
 * a task JSON file. Relative data paths resolve against base_dir (NULL: the working
 * directory). Returns LD_OK and an owned task, or a negative code and err saying what, where and
 * why ("tasks/x.csv:17: column 3: \"abc\" is not a number"). Borrows spec. */
int task_load(const cJSON *spec, const char *base_dir, Task **out, char *err);
int task_load_arg(const char *arg, Task **out, char *err);
void task_free(Task *t);

int task_family(const Task *t);
unsigned task_inputs(const Task *t);         /* LIN_*: what it provides to the loss language */
const char *task_baseline(const Task *t);    /* its default baseline if not its family's, else NULL */
uint32_t task_refused_terms(const Task *t, const char **why); /* EvalFamily.task_refused, or 0 */
int task_outputs(const Task *t);            /* classes, or 1 for regression/physics */
const char *task_name(const Task *t);       /* short label, e.g. "digits" */
const char *task_metric(const Task *t);     /* name of the selection metric, e.g. "accuracy" */
int task_higher_better(const Task *t);      /* 1 if larger metric values are better */
int task_steps(const Task *t);              /* default training steps */
uint64_t task_hash(const Task *t);          /* same normalised spec => same hash */
/* Train/validation splits of a cross-validated task (split.folds x split.repeats), else 1. A run
 * with seed s trains on split s % task_nfold(t); the test rows are the same in every split. */
int task_nfold(const Task *t);
cJSON *task_spec(const Task *t);            /* returns owned normalised spec */
/* What loading the task's table did: {rows, features, missing, rows_dropped, values_filled,
 * categorical}; returns owned JSON, or NULL for a task without a table (physics). It is also the
 * normalised spec's "data_info" (outside the hash). */
cJSON *task_data_json(const Task *t);
/* The same as one line for logs ("x.csv: 3 of 100 rows dropped (missing values)"); "" when
 * loading dropped, filled and encoded nothing. */
const char *task_data_note(const Task *t);

/* EvalResult (the numbers of one run) lives in common/work.h, beside the work item and its
 * outcome, so search/ sees it without including the evaluator. */

typedef struct EvalOpts {
    uint64_t seed;   /* initialisation and minibatch order */
    int steps;       /* 0: the task's default */
    int curve_every; /* 0: TRAIN_CURVE_POINTS (10) points over the run */
    /* NULL, or a flag another thread sets to stop the run (a job's cancel, the daemon's
     * shutdown): every family's loop reads it once per training step (well under 100 ms of
     * work on every built-in task), and a stopped run ends with res->cancelled = 1. */
    const volatile int *cancel;
    /* Early stopping (WorkItem.stop_bar): nstop bars, one per curve point (NaN: no check); the
     * run stops, failed with res->stopped = 1, once its best validation value so far is worse
     * than the bar at stop_points consecutive points. NULL / 0: never. Borrowed. */
    const float *stop_bar;
    int nstop, stop_points, stop_higher;
} EvalOpts;

/* The early-stopping rule at curve point i (0-based) with validation value val: updates *best
 * (the run's best value so far; start it at NaN) and *run (consecutive points whose best so far
 * was worse than the bar; start at 0) and returns 1 when the run stops there. A NaN bar or value
 * neither counts nor resets. */
int eval_stop_early(const EvalOpts *opt, int i, double val, double *best, int *run);

/* Trains a fresh model on task under loss and fills res. Returns LD_OK whenever the run
 * happened, including runs that failed (res->ok = 0, res->error says why); LD_EINVAL with err
 * only when loss cannot be used for the task. Allocates one arena, frees it before returning.
 * Borrows task and loss. */
int eval_run(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err);

/* Evaluates one work item on task (the task whose hash the item names; borrowed): the
 * pre-check first when w->precheck (a loss failing it is WORK_REJECTED, not trained), then
 * eval_run. Always fills out: WORK_OK, or WORK_FAILED / WORK_REJECTED with the reason in
 * out->res.error. Thread-safe; this is a worker's only call. */
void eval_work(const Task *task, const WorkItem *w, WorkOutcome *out);
/* The same, stopping the training when *cancel becomes non-zero (NULL: never): such a run is
 * WORK_CANCELLED ("cancelled at step N", res.steps the steps run), never WORK_FAILED. An
 * executor sets the flag for a job's cancel and for a shutdown. */
void eval_work_cancel(const Task *task, const WorkItem *w, const volatile int *cancel,
                      WorkOutcome *out);

/* Returns owned JSON: {status, metric, val, test, steps, wall_ms, final_loss, curve, metrics,
 * error}. */
cJSON *eval_result_json(const EvalResult *r);

/* What the programs read of tasks and families (inspect.c), so none includes internal.h. */

/* 1 when metric is one of family's metrics ("classification", "balanced_accuracy"), its
 * direction in *higher_better (1: larger is better); 0 when either name is unknown. */
int eval_metric_direction(const char *family, const char *metric, int *higher_better);
/* Matrix-product flops of one training step of t's model (forward, weight gradients, input
 * gradients of every layer but the first): the benchmark's GFLOP/s. */
double eval_step_flops(const Task *t);
/* eval_run with a trace of the run, for every family: on LD_OK *trace is owned JSON. The MLP
 * families (classification, regression) give the parity trace bench/parity.py replays in
 * PyTorch {dims, activation, family, optimizer, lr, ..., params, batches, losses, train, val,
 * val_metric, metric, y_std}; the others the common one {family, optimizer, lr, momentum,
 * beta1, beta2, eps, batch, steps, groups: [{n, params, final}], losses, curve: [[step, loss,
 * val]], val_metric, metric} (EvalFamily.trace). */
int eval_run_trace(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                   cJSON **trace, char *err);

/* Probes used by the search before spending a training run (probe.c).
 * eval_signature: the gradient of e with respect to the model outputs on a fixed, seeded probe
 * batch, scaled to unit L2 norm, written to sig[0..n). LD_EFAILED with a reason when the
 * gradient is non-finite or zero.
 * eval_precheck: optimises random predictions directly under e for a few dozen steps; LD_EFAILED
 * with a reason ("does not improve accuracy when optimised directly") when the family's metric
 * does not improve. */
int eval_signature(const Expr *e, int family, int C, float *sig, int n, char *err);
/* The length of eval_signature's gradient for family and C (the layout probe.c writes): a
 * larger n is padded with zeros. */
int eval_signature_len(int family, int C);
int eval_precheck(const Expr *e, int family, int C, char *err);

#endif
