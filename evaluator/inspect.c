/* inspect.c: what the programs above the evaluator (the `lossd eval` parity trace, `lossd bench`,
 * the leaderboard handlers) read of a task or a family through eval.h, so that none of them
 * includes the evaluator's internal.h. */
#include <stdlib.h>

#include "internal.h"
#include "mlp.h"

int eval_metric_direction(const char *family, const char *metric, int *higher_better) {
    int fam = family ? family_parse(family) : -1, hb = 1;
    if (fam < 0 || !metric || !metric_known(fam, metric, &hb)) return 0;
    *higher_better = hb;
    return 1;
}

double eval_step_flops(const Task *t) {
    Mlp m;
    mlp_bind(&m, &t->model, t->train.d, task_outputs(t), NULL);
    double f = 0, B = t->train_spec.batch;
    for (int l = 0; l < m.nlin; l++) {
        double mn = 2.0 * B * m.dim[l] * m.dim[l + 1];
        f += 2 * mn + (l > 0 ? mn : 0);
    }
    return f;
}

cJSON *eval_json_floats(const float *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; v && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

cJSON *eval_json_ints(const int *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; v && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

void eval_trace_settings(cJSON *o, const Task *t) {
    cJSON_AddStringToObject(o, "family", family_name(t->family));
    cJSON_AddStringToObject(o, "optimizer", t->train_spec.optimizer == OPT_SGD ? "sgd" : "adam");
    cJSON_AddNumberToObject(o, "lr", t->train_spec.lr);
    cJSON_AddNumberToObject(o, "momentum", t->train_spec.momentum);
    cJSON_AddNumberToObject(o, "beta1", t->train_spec.beta1);
    cJSON_AddNumberToObject(o, "beta2", t->train_spec.beta2);
    cJSON_AddNumberToObject(o, "eps", t->train_spec.adam_eps);
    cJSON_AddNumberToObject(o, "batch", t->train_spec.batch);
}

/* The trace every family gets (EvalFamily.trace NULL): the training settings, every parameter
 * group's initial and final values (in the family's own layout), every step's loss and the
 * curve, the selection metric on val. */
static cJSON *trace_common(const Task *t, const EvalTrace *tr, const EvalResult *res) {
    cJSON *o = cJSON_CreateObject();
    eval_trace_settings(o, t);
    cJSON_AddNumberToObject(o, "steps", res->steps);
    cJSON *groups = cJSON_AddArrayToObject(o, "groups");
    for (int g = 0; g < tr->ngroups; g++) {
        cJSON *gj = cJSON_CreateObject();
        cJSON_AddItemToArray(groups, gj);
        cJSON_AddNumberToObject(gj, "n", (double)tr->group_n[g]);
        cJSON_AddItemToObject(gj, "params", eval_json_floats(tr->group_init[g], tr->group_n[g]));
        cJSON_AddItemToObject(gj, "final", eval_json_floats(tr->group_final[g], tr->group_n[g]));
    }
    cJSON_AddItemToObject(o, "losses", eval_json_floats(tr->losses, (size_t)res->steps));
    cJSON *curve = cJSON_AddArrayToObject(o, "curve");
    for (int i = 0; i < res->ncurve; i++) {
        const float pt[3] = {(float)res->curve[i].step, res->curve[i].loss, res->curve[i].val};
        cJSON_AddItemToArray(curve, eval_json_floats(pt, 3));
    }
    cJSON_AddNumberToObject(o, "val_metric", res->val);
    cJSON_AddStringToObject(o, "metric", res->metric);
    return o;
}

int eval_run_trace(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                   cJSON **trace, char *err) {
    *trace = NULL;
    const EvalFamily *f = eval_family(t->family);
    int nsteps = opt->steps > 0 ? opt->steps : t->train_spec.steps, B = t->train_spec.batch;
    EvalTrace tr = {.all_groups = 1};
    int rc;
    tr.batches = B > 0 ? malloc(sizeof(int) * (size_t)nsteps * B) : NULL;
    tr.losses = malloc(sizeof(float) * (size_t)(nsteps > 0 ? nsteps : 1));
    if ((B > 0 && !tr.batches) || !tr.losses) {
        rc = ld_err(err, LD_ENOMEM, "--dump-trace: out of memory");
        goto done;
    }
    rc = eval_run_traced(t, loss, opt, res, &tr, err);
    if (rc == LD_OK && res->ok && (tr.ngroups < 1 || !tr.group_init[0] || !tr.group_final[0]))
        rc = ld_err(err, LD_ENOMEM, "--dump-trace: out of memory for the parameters' copies");
    if (rc == LD_OK) *trace = f && f->trace ? f->trace(t, &tr, nsteps, res) : trace_common(t, &tr, res);
done:
    eval_trace_free(&tr);
    free(tr.batches);
    free(tr.losses);
    return rc;
}
