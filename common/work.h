/* work.h: the unit of work and its typed outcome. A work item carries everything a worker needs
 * to train one candidate on one task (which task by content hash, the canonical expression,
 * seed, steps, the pre-check, room for a precision); an outcome says how it ended (ok, failed
 * with a reason, rejected before training, cancelled) beside the run's numbers. Both travel as
 * JSON (a queue for remote workers), and both are seen by search/ and evaluator/ without either
 * including the other. */
#ifndef WORK_H
#define WORK_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "lossd.h"

#define WORK_EXPR_MAX 4096 /* longest canonical expression: the loss language's EXPR_TEXT_MAX */
#define WORK_PRECISION_MAX 8

/* ---- the result of one training run ------------------------------------------------------ */

#define EVAL_CURVE_MAX 64
#define EVAL_EXTRA_MAX 8

typedef struct EvalCurvePoint {
    int step;
    float loss; /* training loss, mean since the previous point */
    float val;  /* task metric on the validation split */
} EvalCurvePoint;

typedef struct EvalMetric {
    char name[24];
    double val, test;
} EvalMetric;

typedef struct EvalResult {
    int ok;                 /* 1: trained to the end; 0: failed, see error */
    char error[LD_ERR_MAX]; /* "non-finite loss at step 37" */
    char metric[24];        /* name of the task metric */
    double val, test;       /* task metric on validation and test splits; NaN when failed */
    int steps;              /* steps run */
    double wall_ms;
    double final_loss;
    int ncurve;
    EvalCurvePoint curve[EVAL_CURVE_MAX];
    int cancelled; /* 1: stopped through EvalOpts.cancel (ok is 0, error "cancelled at step N") */
    int stopped;   /* 1: stopped early by the work's stop bar (WorkItem.stop_bar): ok is 0, error
                      "stopped early at step N: ...", steps the steps run */
    int nextra; /* every metric of the family, e.g. accuracy, balanced_accuracy, macro_f1, ece */
    EvalMetric extra[EVAL_EXTRA_MAX];
} EvalResult;

/* ---- the work item ------------------------------------------------------------------------ */

typedef struct WorkItem {
    int64_t job_id;      /* whose work (routes the outcome back); 0 outside a job */
    int64_t seq;         /* dense sequence number over the job's search */
    int64_t cand;        /* job-local candidate id */
    int task;            /* index of the task in the job (the caller's bookkeeping) */
    uint64_t task_hash;  /* content hash of the task's normalised spec: the task to train on */
    uint64_t seed;       /* initialisation and minibatch order */
    int steps;           /* training steps (the fidelity level's) */
    int precheck;        /* 1: run the pre-check first; a loss failing it is not trained */
    int precheck_outputs; /* model outputs the pre-check probes with (the job's first task's) */
    char precision[WORK_PRECISION_MAX]; /* "" : the family's default (fp32) */
    /* Early stopping (docs/jobs.md, "Fewer wasted trainings"): stop_bar[i] is the bar at the
     * run's curve point i (NaN: no check there). The run stops, failed with res.stopped, once
     * its validation value is worse than the bar (stop_higher: higher is better) at stop_points
     * consecutive points. nstop 0: never stops early. */
    int nstop, stop_points, stop_higher;
    float stop_bar[EVAL_CURVE_MAX];
    char expr[WORK_EXPR_MAX];           /* canonical expression text */
} WorkItem;

/* ---- the outcome ---------------------------------------------------------------------------- */

#define WORK_STATUS_LIST(X)                                                          \
    X(WORK_OK, "ok")               /* trained to the end: res has the metrics */     \
    X(WORK_FAILED, "failed")       /* ran and failed (diverged, non-finite, ...) */  \
    X(WORK_REJECTED, "rejected")   /* the pre-check refused it: not trained */       \
    X(WORK_CANCELLED, "cancelled") /* stopped by a cancel or a shutdown: run again */

typedef enum WorkStatus {
#define WORK_STATUS_ENUM(e, s) e,
    WORK_STATUS_LIST(WORK_STATUS_ENUM)
#undef WORK_STATUS_ENUM
} WorkStatus;

typedef struct WorkOutcome {
    int64_t job_id, seq; /* the work item's: outcomes may come back in any order */
    WorkStatus status;
    EvalResult res;      /* res.ok is status == WORK_OK; res.error is the reason otherwise */
} WorkOutcome;

const char *work_status_name(WorkStatus s);            /* "ok", "failed", ... */
int work_status_parse(const char *name, WorkStatus *out); /* LD_OK or LD_EINVAL */

/* Sets o to a non-ok outcome of w with reason (printf-style), metrics NaN. */
void work_outcome_fail(WorkOutcome *o, const WorkItem *w, WorkStatus status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* JSON forms (docs/architecture.md). 64-bit seeds and hashes are strings (decimal and 16 hex
 * digits) so they survive any JSON reader. Returns owned JSON, or NULL when out of memory. */
cJSON *work_item_json(const WorkItem *w);
cJSON *work_outcome_json(const WorkOutcome *o);
/* Reads them back: LD_OK, or LD_EINVAL with err naming the field. Borrows j. */
int work_item_from_json(const cJSON *j, WorkItem *out, char *err);
int work_outcome_from_json(const cJSON *j, WorkOutcome *out, char *err);

#endif
