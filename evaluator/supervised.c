/* supervised.c: the classification and regression families: rows of a data set through an MLP,
 * minibatches drawn with replacement (as torch.randint does), the metrics of a split from the
 * model's outputs. Trained by the one trainer (train.c) through the hooks below. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train.h"

#define EVAL_CHUNK 128 /* rows per forward when scoring a split */
#define ECE_BINS 15
#define CURVE_ROWS 128 /* validation rows scored by the curve points before the last */

typedef float vf16u __attribute__((vector_size(64), aligned(4)));

/* One row of the minibatch gather: inline 64-byte moves when d is a multiple of 16 (digits: 64
 * columns, four moves), where a memcpy call per row cost ~3% of a step. */
static inline void copy_row(float *restrict dst, const float *restrict src, int d) {
    if (d % 16) {
        memcpy(dst, src, sizeof(float) * (size_t)d);
        return;
    }
    for (int k = 0; k < d; k += 16) *(vf16u *)(dst + k) = *(const vf16u *)(src + k);
}

size_t eval_param_count(const Task *t) {
    return mlp_param_count(&t->model, t->train.d, task_outputs(t));
}

/* Outputs of the model on every row of ds into z (n, C), EVAL_CHUNK rows at a time. */
static void predict(Trainer *tr, const Mlp *m, MlpActs *a, const Dataset *ds, float *z, int C) {
    for (int i = 0; i < ds->n; i += EVAL_CHUNK) {
        int B = ds->n - i < EVAL_CHUNK ? ds->n - i : EVAL_CHUNK;
        const float *out = train_forward(tr, m, a, ds->x + (size_t)i * ds->d, B);
        memcpy(z + (size_t)i * C, out, sizeof(float) * (size_t)B * C);
    }
}

/* Every metric of the family on ds given outputs z, in the family's metrics[] order, into
 * vals; returns the count. Regression metrics are in the original target units. */
static int all_metrics(const Task *t, const Dataset *ds, const float *z, double *vals) {
    int C = task_outputs(t);
    if (t->family == FAM_REGRESSION) {
        double s = t->y_std;
        vals[0] = metric_mse(z, ds->y, ds->n) * s * s;
        vals[1] = metric_mae(z, ds->y, ds->n) * s;
        return 2;
    }
    vals[0] = metric_accuracy(z, ds->label, ds->n, C);
    vals[1] = metric_balanced_accuracy(z, ds->label, ds->n, C);
    vals[2] = metric_macro_f1(z, ds->label, ds->n, C);
    vals[3] = metric_ece(z, ds->label, ds->n, C, ECE_BINS);
    return 4;
}

static double task_metric_value(const Task *t, const Dataset *ds, const float *z) {
    int C = task_outputs(t);
    const char *m = t->metric;
    double s = t->y_std;
    if (!strcmp(m, "mse")) return metric_mse(z, ds->y, ds->n) * s * s;
    if (!strcmp(m, "mae")) return metric_mae(z, ds->y, ds->n) * s;
    if (!strcmp(m, "balanced_accuracy")) return metric_balanced_accuracy(z, ds->label, ds->n, C);
    if (!strcmp(m, "macro_f1")) return metric_macro_f1(z, ds->label, ds->n, C);
    if (!strcmp(m, "ece")) return metric_ece(z, ds->label, ds->n, C, ECE_BINS);
    return metric_accuracy(z, ds->label, ds->n, C);
}

/* A run's state, in the trainer's arena. */
typedef struct SupRun {
    int B, C, d, classify;
    Mlp m, g;
    MlpActs acts, eacts; /* for B rows, for EVAL_CHUNK rows */
    float *xb, *yb;      /* (B, d), (B) the minibatch */
    int *lb, *bidx;      /* (B) labels, row indices */
    float *zall;         /* (max(val n, test n), C) outputs on a split */
    int zall_final;      /* zall holds the final model's outputs on the whole validation split */
    Dataset vsample;     /* the curve's sample of the validation split */
} SupRun;

static void sup_loss_shape(const Task *t, int *B, int *C, int *D) {
    *B = t->train_spec.batch;
    *C = task_outputs(t);
    *D = 0;
}

static size_t sup_run_bytes(const Task *t, size_t *nparams) {
    Mlp m;
    int B = t->train_spec.batch, C = task_outputs(t), d = t->train.d;
    mlp_bind(&m, &t->model, d, C, NULL);
    int nbig = t->val.n > t->test.n ? t->val.n : t->test.n;
    *nparams = m.nparams;
    return train_al64(sizeof(SupRun)) + 2 * train_al64(m.nparams * sizeof(float)) +
           train_al64(mlp_acts_floats(&m, B) * sizeof(float)) +
           train_al64(mlp_acts_floats(&m, EVAL_CHUNK) * sizeof(float)) +
           train_al64((size_t)B * d * sizeof(float)) + train_al64((size_t)B * sizeof(float)) +
           2 * train_al64((size_t)B * sizeof(int)) + train_al64(((size_t)nbig * C + 1) * sizeof(float));
}

static int sup_setup(Trainer *tr, char *err) {
    const Task *t = tr->task;
    LdArena *ar = &tr->arena;
    SupRun *s = arena_alloc(ar, sizeof *s);
    if (!s) return ld_err(err, LD_ENOMEM, "eval: arena too small (internal sizing error)");
    s->B = t->train_spec.batch;
    s->C = task_outputs(t);
    s->d = t->train.d;
    s->classify = t->family == FAM_CLASSIFICATION;
    mlp_bind(&s->m, &t->model, s->d, s->C, NULL);
    size_t P = s->m.nparams;
    float *params = arena_alloc(ar, P * sizeof(float));
    float *grads = arena_alloc(ar, P * sizeof(float));
    float *actmem = arena_alloc(ar, mlp_acts_floats(&s->m, s->B) * sizeof(float));
    float *evalmem = arena_alloc(ar, mlp_acts_floats(&s->m, EVAL_CHUNK) * sizeof(float));
    s->xb = arena_alloc(ar, (size_t)s->B * s->d * sizeof(float));
    s->yb = arena_alloc(ar, (size_t)s->B * sizeof(float));
    s->lb = arena_alloc(ar, (size_t)s->B * sizeof(int));
    s->bidx = arena_alloc(ar, (size_t)s->B * sizeof(int));
    int nbig = t->val.n > t->test.n ? t->val.n : t->test.n;
    s->zall = arena_alloc(ar, ((size_t)nbig * s->C + 1) * sizeof(float));
    if (!s->zall) return ld_err(err, LD_ENOMEM, "eval: arena too small (internal sizing error)");
    mlp_bind(&s->m, &t->model, s->d, s->C, params);
    mlp_bind_like(&s->g, &s->m, grads);
    mlp_init(&s->m, tr->seed);
    mlp_acts_bind(&s->acts, &s->m, s->B, actmem);
    mlp_acts_bind(&s->eacts, &s->m, EVAL_CHUNK, evalmem);
    /* About 10 curve points. Scoring the whole validation split (359 rows on digits) costs about
     * two steps, so ten points were ~10% of a 200-step run: the points before the last score a
     * fixed sample of the split (its first CURVE_ROWS rows; the split is shuffled), the last one
     * the whole split, and that forward is reused for the final metrics. */
    s->vsample = t->val;
    if (s->vsample.n > CURVE_ROWS) s->vsample.n = CURVE_ROWS;
    tr->state = s;
    int rc = train_deployable(tr, &s->m, t->train.x, t->train.n, EVAL_CHUNK, s->B, err);
    return rc ? rc : train_group(tr, params, grads, P, NULL, err);
}

static int sup_step(Trainer *tr, float *loss) {
    SupRun *s = tr->state;
    const Dataset *tr_ds = &tr->task->train;
    const int B = s->B, d = s->d;
    EvalTrace *trace = tr->trace;
    /* Gather the minibatch into contiguous rows: draw every row first and prefetch it, then
     * copy, so the rows' cache misses overlap instead of following each RNG call. */
    for (int i = 0; i < B; i++) {
        int r = (int)rng_below(&tr->rng, (uint32_t)tr_ds->n);
        if (trace && trace->batches) trace->batches[(size_t)tr->step * B + i] = r;
        s->bidx[i] = r;
        for (int k = 0; k < d; k += 16) __builtin_prefetch(tr_ds->x + (size_t)r * d + k);
        if (s->classify) s->lb[i] = tr_ds->label[r];
        else s->yb[i] = tr_ds->y[r];
    }
    for (int i = 0; i < B; i++) copy_row(s->xb + (size_t)i * d, tr_ds->x + (size_t)s->bidx[i] * d, d);
    const Mlp *m = &s->m;
    LossIn in = {.B = B, .t = tr->t, .label = s->classify ? s->lb : NULL, .y = s->classify ? NULL : s->yb};
    LossOut out;
    in.z = train_step_forward(tr, m, &s->acts, s->xb, B);
    if (tr->use_l2) {
        double sum = 0;
        for (int l = 0; l < m->nlin; l++) sum = train_l2_add(sum, m->w[l], (size_t)m->dim[l] * m->dim[l + 1]);
        in.term[TERM_L2] = (float)(0.5 * sum);
    }
    int rc = train_loss(tr, &in, &out);
    *loss = out.loss;
    if (rc != LD_OK) return LD_EFAILED;
    train_step_backward(tr, m, &s->acts, &s->g, s->xb, out.dz, B); /* overwrites every gradient */
    if (tr->use_l2 && out.g_term[TERM_L2] != 0)
        for (int l = 0; l < m->nlin; l++)
            train_l2_backward(s->g.w[l], m->w[l], (size_t)m->dim[l] * m->dim[l + 1], out.g_term[TERM_L2]);
    return LD_OK;
}

static double sup_curve_val(Trainer *tr, int last) {
    SupRun *s = tr->state;
    const Dataset *vs = last ? &tr->task->val : &s->vsample;
    predict(tr, &s->m, &s->eacts, vs, s->zall, s->C);
    s->zall_final = last;
    return task_metric_value(tr->task, vs, s->zall);
}

static void sup_score(Trainer *tr, EvalResult *res) {
    SupRun *s = tr->state;
    const Task *t = tr->task;
    const EvalFamily *f = eval_family(t->family);
    double vv[EVAL_EXTRA_MAX], vt[EVAL_EXTRA_MAX];
    /* The last curve point scored the final model on the validation split: zall holds it. */
    if (!s->zall_final) predict(tr, &s->m, &s->eacts, &t->val, s->zall, s->C);
    int n = all_metrics(t, &t->val, s->zall, vv);
    predict(tr, &s->m, &s->eacts, &t->test, s->zall, s->C);
    s->zall_final = 0;
    all_metrics(t, &t->test, s->zall, vt);
    res->nextra = n;
    for (int i = 0; i < n; i++) {
        snprintf(res->extra[i].name, sizeof res->extra[i].name, "%s", f->metrics[i].name);
        res->extra[i].val = vv[i];
        res->extra[i].test = vt[i];
    }
}

/* The MLP families' trace: everything bench/parity.py needs to replay the run in PyTorch. */
static cJSON *sup_trace(const Task *t, const EvalTrace *tr, int steps, const EvalResult *res) {
    cJSON *o = cJSON_CreateObject();
    Mlp m;
    mlp_bind(&m, &t->model, t->train.d, task_outputs(t), tr->group_init[0]);
    cJSON *dims = cJSON_AddArrayToObject(o, "dims");
    for (int l = 0; l <= m.nlin; l++) cJSON_AddItemToArray(dims, cJSON_CreateNumber(m.dim[l]));
    static const char *const acts[] = {"relu", "tanh", "gelu"};
    cJSON_AddStringToObject(o, "activation", acts[t->model.act]);
    eval_trace_settings(o, t);
    cJSON_AddNumberToObject(o, "steps", steps);
    cJSON_AddItemToObject(o, "params", eval_json_floats(tr->group_init[0], m.nparams));
    if (tr->group_final[0] && res->ok) /* bench/make_fixednet.py ships the trained classifier */
        cJSON_AddItemToObject(o, "final_params", eval_json_floats(tr->group_final[0], m.nparams));
    if (t->train.mean) { /* the standardisation: x = (raw - x_mean) / x_sd */
        cJSON_AddItemToObject(o, "x_mean", eval_json_floats(t->train.mean, (size_t)t->train.d));
        cJSON_AddItemToObject(o, "x_sd", eval_json_floats(t->train.sd, (size_t)t->train.d));
    }
    cJSON_AddItemToObject(o, "batches", eval_json_ints(tr->batches, (size_t)res->steps * t->train_spec.batch));
    cJSON_AddItemToObject(o, "losses", eval_json_floats(tr->losses, (size_t)res->steps));
    const Dataset *sp[2] = {&t->train, &t->val};
    const char *nm[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        cJSON *d = cJSON_AddObjectToObject(o, nm[s]);
        cJSON_AddItemToObject(d, "x", eval_json_floats(sp[s]->x, (size_t)sp[s]->n * sp[s]->d));
        if (sp[s]->label) cJSON_AddItemToObject(d, "label", eval_json_ints(sp[s]->label, (size_t)sp[s]->n));
        if (sp[s]->y) cJSON_AddItemToObject(d, "y", eval_json_floats(sp[s]->y, (size_t)sp[s]->n));
    }
    cJSON_AddNumberToObject(o, "val_metric", res->val);
    cJSON_AddStringToObject(o, "metric", res->metric);
    cJSON_AddNumberToObject(o, "y_std", t->y_std);
    return o;
}

#define SUPERVISED_HOOKS                                                                           \
    .rng_salt = 0xba7c, .lr_schedule = TRAIN_LR_CONSTANT, .loss_shape = sup_loss_shape,             \
    .run_bytes = sup_run_bytes, .setup = sup_setup, .step = sup_step, .curve_val = sup_curve_val,   \
    .score = sup_score, .probe = eval_probe_std, .trace = sup_trace,                                \
    .deploy = FAMILY_DEPLOY_PTQ | FAMILY_DEPLOY_QAT

static const char *const cls_known[] = {
    "focal(2)", "0.5*ce + 0.5*focal(2)", "smooth(0.1)", "poly1(1)", "ce - 0.1*entropy",
    "(1-t)*ce + t*focal(2)", "hinge", "ce + 0.5*mse", NULL};
static const char *const cls_panel[] = {"ce", "mae", "focal(2)", "smooth(0.1)", "poly1(1)", NULL};
static const char *const reg_known[] = {"mae", "huber(1)", "logcosh", "0.5*mse + 0.5*mae",
                                        "huber(0.3)", NULL};
static const char *const reg_panel[] = {"mse", "mae", "huber(1)", "logcosh", NULL};
static const char *const cls_baselines[] = {"ce", "focal(2)", "smooth(0.1)", "poly1(1)", NULL};
static const char *const reg_baselines[] = {"mse", "mae", "huber(1)", "logcosh", NULL};

const EvalFamily family_classification = {
    .name = "classification",
    .metrics = {{"accuracy", 1}, {"balanced_accuracy", 1}, {"macro_f1", 1}, {"ece", 0}},
    .baseline = "ce",
    .baselines = cls_baselines,
    .known = cls_known,
    .panel = cls_panel,
    .data_set = 1,
    .classify = 1,
    SUPERVISED_HOOKS,
};

const EvalFamily family_regression = {
    .name = "regression",
    .metrics = {{"mse", 0}, {"mae", 0}},
    .baseline = "mse",
    .baselines = reg_baselines,
    .known = reg_known,
    .panel = reg_panel,
    .data_set = 1,
    .classify = 0,
    SUPERVISED_HOOKS,
};
