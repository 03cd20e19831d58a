/* work.c: a worker's only call: evaluate one work item (pre-check, then training) into a typed
 * outcome. Thread-safe: the task is shared and immutable, each run owns its arena. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void eval_work(const Task *task, const WorkItem *w, WorkOutcome *out) {
    eval_work_cancel(task, w, NULL, out);
}

void eval_work_cancel(const Task *task, const WorkItem *w, const volatile int *cancel,
                      WorkOutcome *out) {
    char err[LD_ERR_MAX] = "";
    if (!task) {
        work_outcome_fail(out, w, WORK_FAILED, "work seq %lld: task %016llx is not loaded",
                          (long long)w->seq, (unsigned long long)w->task_hash);
        return;
    }
    Expr *e = expr_parse(w->expr, err);
    if (!e) {
        work_outcome_fail(out, w, WORK_FAILED, "%s", err);
        return;
    }
    if (w->precheck && eval_precheck(e, task_family(task), w->precheck_outputs, err) != LD_OK) {
        work_outcome_fail(out, w, WORK_REJECTED, "%.200s", err);
        snprintf(out->res.metric, sizeof out->res.metric, "%s", task_metric(task));
        expr_free(e);
        return;
    }
    memset(out, 0, sizeof *out);
    out->job_id = w->job_id;
    out->seq = w->seq;
    out->res.val = out->res.test = out->res.final_loss = NAN;
    EvalOpts o = {.seed = w->seed, .steps = w->steps, .curve_every = 0, .cancel = cancel,
                  .stop_bar = w->nstop > 0 ? w->stop_bar : NULL, .nstop = w->nstop,
                  .stop_points = w->stop_points, .stop_higher = w->stop_higher};
    if (eval_run(task, e, &o, &out->res, err) != LD_OK) {
        out->res.ok = 0;
        out->res.val = out->res.test = NAN;
        snprintf(out->res.error, sizeof out->res.error, "%s", err[0] ? err : "evaluation failed");
    }
    out->status = out->res.ok ? WORK_OK : out->res.cancelled ? WORK_CANCELLED : WORK_FAILED;
    expr_free(e);
}
