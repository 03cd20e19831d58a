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

static cJSON *float_array(const float *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *int_array(const int *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* The parity trace: everything bench/parity.py needs to replay the run in PyTorch. */
static cJSON *trace_json(const Task *t, const EvalTrace *tr, int steps, const EvalResult *res) {
    cJSON *o = cJSON_CreateObject();
    Mlp m;
    mlp_bind(&m, &t->model, t->train.d, task_outputs(t), tr->init);
    cJSON *dims = cJSON_AddArrayToObject(o, "dims");
    for (int l = 0; l <= m.nlin; l++) cJSON_AddItemToArray(dims, cJSON_CreateNumber(m.dim[l]));
    static const char *const acts[] = {"relu", "tanh", "gelu"};
    cJSON_AddStringToObject(o, "activation", acts[t->model.act]);
    cJSON_AddStringToObject(o, "family", family_name(t->family));
    cJSON_AddStringToObject(o, "optimizer", t->train_spec.optimizer == OPT_SGD ? "sgd" : "adam");
    cJSON_AddNumberToObject(o, "lr", t->train_spec.lr);
    cJSON_AddNumberToObject(o, "momentum", t->train_spec.momentum);
    cJSON_AddNumberToObject(o, "beta1", t->train_spec.beta1);
    cJSON_AddNumberToObject(o, "beta2", t->train_spec.beta2);
    cJSON_AddNumberToObject(o, "eps", t->train_spec.adam_eps);
    cJSON_AddNumberToObject(o, "batch", t->train_spec.batch);
    cJSON_AddNumberToObject(o, "steps", steps);
    cJSON_AddItemToObject(o, "params", float_array(tr->init, m.nparams));
    cJSON_AddItemToObject(o, "batches", int_array(tr->batches, (size_t)res->steps * t->train_spec.batch));
    cJSON_AddItemToObject(o, "losses", float_array(tr->losses, (size_t)res->steps));
    const Dataset *sp[2] = {&t->train, &t->val};
    const char *nm[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        cJSON *d = cJSON_AddObjectToObject(o, nm[s]);
        cJSON_AddItemToObject(d, "x", float_array(sp[s]->x, (size_t)sp[s]->n * sp[s]->d));
        if (sp[s]->label) cJSON_AddItemToObject(d, "label", int_array(sp[s]->label, (size_t)sp[s]->n));
        if (sp[s]->y) cJSON_AddItemToObject(d, "y", float_array(sp[s]->y, (size_t)sp[s]->n));
    }
    cJSON_AddNumberToObject(o, "val_metric", res->val);
    cJSON_AddStringToObject(o, "metric", res->metric);
    cJSON_AddNumberToObject(o, "y_std", t->y_std);
    return o;
}

int eval_run_trace(const Task *t, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                   cJSON **trace, char *err) {
    *trace = NULL;
    if (t->family != FAM_CLASSIFICATION && t->family != FAM_REGRESSION)
        return ld_err(err, LD_EINVAL, "--dump-trace: only classification and regression tasks");
    int nsteps = opt->steps > 0 ? opt->steps : t->train_spec.steps;
    EvalTrace tr = {0};
    int rc;
    tr.init = malloc(sizeof(float) * eval_param_count(t));
    tr.batches = malloc(sizeof(int) * (size_t)nsteps * t->train_spec.batch);
    tr.losses = malloc(sizeof(float) * (size_t)nsteps);
    if (!tr.init || !tr.batches || !tr.losses) {
        rc = ld_err(err, LD_ENOMEM, "--dump-trace: out of memory");
        goto done;
    }
    rc = eval_run_traced(t, loss, opt, res, &tr, err);
    if (rc == LD_OK) *trace = trace_json(t, &tr, nsteps, res);
done:
    free(tr.init);
    free(tr.batches);
    free(tr.losses);
    return rc;
}
