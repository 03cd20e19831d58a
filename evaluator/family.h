/* family.h: the family interface. A task family is one file that fills one EvalFamily (its
 * name, metrics with their direction, default baseline, whether it trains on a data set's rows,
 * its loader and its run) plus one line in family.c's table. The evaluator reaches a family only
 * through this table: task.c loads through it, eval_run dispatches through it, metric_known reads
 * it. See docs/architecture.md, "Families". */
#ifndef EVAL_FAMILY_H
#define EVAL_FAMILY_H

#include <cjson/cJSON.h>

#include "eval.h"

typedef struct EvalMetricDef {
    const char *name;
    int higher_better;
} EvalMetricDef;

#define FAMILY_METRICS_MAX 6

typedef struct EvalFamily {
    const char *name;  /* as in a task spec's "family", = family_name(id) */
    /* Metrics the family reports, the first is its default selection metric; a name of NULL
     * ends the list. */
    EvalMetricDef metrics[FAMILY_METRICS_MAX + 1];
    const char *baseline; /* the loss a search compares against by default */
    /* 1: the task is rows of a data set that task.c loads, splits and transforms (classify: the
     * target is a class label); 0: the family builds its own data in load. */
    int data_set, classify;
    /* After the data set (if any) is loaded: reads the family's own spec keys (already checked
     * by spec_check) into t and sets its defaults. NULL: nothing to read. Frees what it made
     * on failure. */
    int (*load)(Task *t, const cJSON *spec, char *err);
    void (*unload)(Task *t); /* NULL: nothing to free */
    /* Trains a fresh model on t under loss with the one training policy (internal.h,
     * train_stop / train_curve_every) and fills res, as eval_run. */
    int (*run)(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err);
} EvalFamily;

/* The family with id fam (FAM_*), or NULL. */
const EvalFamily *eval_family(int fam);

/* The families' own descriptions, each in its family's file (train.c holds the two that share
 * the MLP trainer). */
extern const EvalFamily family_classification, family_regression, family_physics, family_contrastive;

#endif
