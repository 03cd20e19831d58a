/* train.c: eval_run for the classification and regression families: one arena sized up front,
 * seeded init and minibatches (rows drawn with replacement, as torch.randint does), the
 * compiled loss, MLP backward, Adam/SGD, a learning curve and the final metrics; dispatch to
 * the physics and contrastive families; the result as JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "mlp.h"

#define EVAL_CHUNK 128 /* rows per forward when scoring a split */
#define ECE_BINS 15
#define CURVE_ROWS 128  /* validation rows scored by the curve points before the last */

static int has_term(const Expr *e, int term) {
    if (!e) return 0;
    if (e->op == EOP_TERM && e->id == term) return 1;
    return has_term(e->a, term) || has_term(e->b, term);
}

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
static void predict(const Mlp *m, MlpActs *a, const Dataset *ds, float *z, int C) {
    for (int i = 0; i < ds->n; i += EVAL_CHUNK) {
        int B = ds->n - i < EVAL_CHUNK ? ds->n - i : EVAL_CHUNK;
        const float *out = mlp_forward(m, a, ds->x + (size_t)i * ds->d, B);
        memcpy(z + (size_t)i * C, out, sizeof(float) * (size_t)B * C);
    }
}

/* Every metric of the family on ds given outputs z; fills names/values in order and returns
 * the count. Regression metrics are in the original target units. */
static int all_metrics(const Task *t, const Dataset *ds, const float *z, const char **names, double *vals) {
    int C = task_outputs(t);
    if (t->family == FAM_REGRESSION) {
        double s = t->y_std;
        names[0] = "mse";
        vals[0] = metric_mse(z, ds->y, ds->n) * s * s;
        names[1] = "mae";
        vals[1] = metric_mae(z, ds->y, ds->n) * s;
        return 2;
    }
    names[0] = "accuracy";
    vals[0] = metric_accuracy(z, ds->label, ds->n, C);
    names[1] = "balanced_accuracy";
    vals[1] = metric_balanced_accuracy(z, ds->label, ds->n, C);
    names[2] = "macro_f1";
    vals[2] = metric_macro_f1(z, ds->label, ds->n, C);
    names[3] = "ece";
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

int train_curve_every(const EvalOpts *opt, int steps) {
    int every = opt && opt->curve_every > 0 ? opt->curve_every : (steps + TRAIN_CURVE_POINTS - 1) / TRAIN_CURVE_POINTS;
    if (every < 1) every = 1;
    if ((steps + every - 1) / every > EVAL_CURVE_MAX) every = (steps + EVAL_CURVE_MAX - 1) / EVAL_CURVE_MAX;
    return every;
}

/* fmt takes the step (%d) and then the loss value (%g), or only the step. */
static void fail(EvalResult *res, int step, const char *fmt, double v) {
    res->ok = 0;
    res->val = res->test = NAN;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(res->error, sizeof res->error, fmt, step, v);
#pragma GCC diagnostic pop
}

int train_stop(EvalResult *res, const EvalOpts *opt, int step, double loss, double *first_loss) {
    if (opt && opt->cancel && *opt->cancel) {
        fail(res, step, "cancelled at step %d", 0);
        res->cancelled = 1;
        return 1;
    }
    if (!isfinite(loss)) {
        fail(res, step, "non-finite loss at step %d (%g)", loss);
        return 1;
    }
    if (step == 0) *first_loss = loss;
    if (fabs(loss) > 1e12 || (fabs(loss) > 1e6 && fabs(loss) > 1e3 * fmax(fabs(*first_loss), 1e-3))) {
        fail(res, step, "loss diverged at step %d (%g)", loss);
        return 1;
    }
    return 0;
}

int eval_run_traced(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                    EvalTrace *trace, char *err) {
    double t0 = ld_now_ms();
    int rc = LD_OK;
    LossProg *lp = NULL;
    LdArena arena = {0};
    memset(res, 0, sizeof *res);
    snprintf(res->metric, sizeof res->metric, "%s", task->metric);
    res->val = res->test = NAN;
    res->final_loss = NAN;

    const int fam = task->family, C = task_outputs(task), d = task->train.d;
    const TrainSpec *ts = &task->train_spec;
    const int B = ts->batch, steps = opt && opt->steps > 0 ? opt->steps : ts->steps;
    const uint64_t seed = opt ? opt->seed : 0;
    const Dataset *tr = &task->train;
    if ((rc = lossprog_new(loss, fam, B, C, 0, &lp, err))) goto done;
    mlp_blas_once();

    /* Sizes, then one arena. */
    Mlp m, g;
    mlp_bind(&m, &task->model, d, C, NULL);
    size_t P = m.nparams;
    int nbig = task->val.n > task->test.n ? task->val.n : task->test.n;
    size_t need = 4 * (P * sizeof(float) + 64) + (mlp_acts_floats(&m, B) + mlp_acts_floats(&m, EVAL_CHUNK)) * sizeof(float) +
                  ((size_t)B * d + B + (size_t)nbig * C + 64) * sizeof(float) + 2 * (size_t)B * sizeof(int) + 64 * 16;
    if ((rc = arena_init(&arena, need))) {
        rc = ld_err(err, LD_ENOMEM, "eval: out of memory for a %zu-byte arena", need);
        goto done;
    }
    float *params = arena_alloc(&arena, P * sizeof(float));
    float *grads = arena_alloc(&arena, P * sizeof(float));
    float *mom1 = arena_alloc(&arena, P * sizeof(float));
    float *mom2 = arena_alloc(&arena, P * sizeof(float));
    float *actmem = arena_alloc(&arena, mlp_acts_floats(&m, B) * sizeof(float));
    float *evalmem = arena_alloc(&arena, mlp_acts_floats(&m, EVAL_CHUNK) * sizeof(float));
    float *xb = arena_alloc(&arena, (size_t)B * d * sizeof(float));
    float *yb = arena_alloc(&arena, (size_t)B * sizeof(float));
    int *lb = arena_alloc(&arena, (size_t)B * sizeof(int));
    int *bidx = arena_alloc(&arena, (size_t)B * sizeof(int));
    float *zall = arena_alloc(&arena, ((size_t)nbig * C + 1) * sizeof(float));
    if (!zall) {
        rc = ld_err(err, LD_ENOMEM, "eval: arena too small (internal sizing error)");
        goto done;
    }
    mlp_bind(&m, &task->model, d, C, params);
    mlp_bind_like(&g, &m, grads);
    mlp_init(&m, seed);
    if (trace && trace->init) memcpy(trace->init, params, P * sizeof(float));
    MlpActs acts, eacts;
    mlp_acts_bind(&acts, &m, B, actmem);
    mlp_acts_bind(&eacts, &m, EVAL_CHUNK, evalmem);
    Optim o;
    optim_init(&o, ts, P, mom1, mom2);

    /* About 10 curve points. Scoring the whole validation split (359 rows on digits) costs about
     * two steps, so ten points were ~10% of a 200-step run: the points before the last score a
     * fixed sample of the split (its first CURVE_ROWS rows; the split is shuffled), the last one
     * the whole split, and that forward is reused for the final metrics. */
    int every = train_curve_every(opt, steps);
    Dataset vsample = task->val;
    if (vsample.n > CURVE_ROWS) vsample.n = CURVE_ROWS;
    const int use_l2 = has_term(loss, TERM_L2);
    const int classify = fam == FAM_CLASSIFICATION;
    LdRng rng;
    rng_seed(&rng, ld_mix64(seed, 0xba7c));
    double seg_loss = 0, first_loss = 0;
    int seg_n = 0;
    LossIn in = {.B = B, .label = classify ? lb : NULL, .y = classify ? NULL : yb};
    LossOut out;

    res->ok = 1;
    for (int step = 0; step < steps; step++) {
        /* Gather the minibatch into contiguous rows: draw every row first and prefetch it, then
         * copy, so the rows' cache misses overlap instead of following each RNG call. */
        for (int i = 0; i < B; i++) {
            int r = (int)rng_below(&rng, (uint32_t)tr->n);
            if (trace && trace->batches) trace->batches[(size_t)step * B + i] = r;
            bidx[i] = r;
            for (int k = 0; k < d; k += 16) __builtin_prefetch(tr->x + (size_t)r * d + k);
            if (classify) lb[i] = tr->label[r];
            else yb[i] = tr->y[r];
        }
        for (int i = 0; i < B; i++) copy_row(xb + (size_t)i * d, tr->x + (size_t)bidx[i] * d, d);
        in.z = mlp_forward(&m, &acts, xb, B);
        in.t = steps > 1 ? (float)step / (float)(steps - 1) : 0.0f;
        if (use_l2) {
            double s = 0;
            for (int l = 0; l < m.nlin; l++) {
                size_t nw = (size_t)m.dim[l] * m.dim[l + 1];
                for (size_t k = 0; k < nw; k++) s += m.w[l][k] * m.w[l][k];
            }
            in.term[TERM_L2] = (float)(0.5 * s);
        }
        int lrc = lossprog_run(lp, &in, &out);
        if (trace && trace->losses) trace->losses[step] = out.loss;
        if (train_stop(res, opt, step, lrc != LD_OK ? NAN : out.loss, &first_loss)) {
            if (lrc != LD_OK && isfinite(out.loss) && !res->cancelled) /* a non-finite gradient */
                snprintf(res->error, sizeof res->error, "non-finite loss at step %d (%g)", step, out.loss);
            res->steps = step;
            break;
        }
        mlp_backward(&m, &acts, &g, xb, out.dz, B); /* overwrites every gradient */
        if (use_l2 && out.g_term[TERM_L2] != 0) {
            for (int l = 0; l < m.nlin; l++) {
                size_t nw = (size_t)m.dim[l] * m.dim[l + 1];
                for (size_t k = 0; k < nw; k++) g.w[l][k] += out.g_term[TERM_L2] * m.w[l][k];
            }
        }
        optim_step(&o, params, grads);
        seg_loss += out.loss;
        seg_n++;
        res->steps = step + 1;
        if ((step + 1) % every == 0 || step == steps - 1) {
            EvalCurvePoint *cp = &res->curve[res->ncurve < EVAL_CURVE_MAX ? res->ncurve++ : EVAL_CURVE_MAX - 1];
            cp->step = step + 1;
            cp->loss = (float)(seg_loss / seg_n);
            const Dataset *vs = step == steps - 1 ? &task->val : &vsample;
            predict(&m, &eacts, vs, zall, C);
            cp->val = (float)task_metric_value(task, vs, zall);
            res->final_loss = cp->loss;
            seg_loss = 0;
            seg_n = 0;
        }
    }
    if (res->ok) {
        for (size_t k = 0; k < P; k++)
            if (!isfinite(params[k])) {
                fail(res, steps - 1, "non-finite weights after step %d", 0);
                break;
            }
    }
    /* PRECISION HOOK: a precision transform quantises params here, scores, then restores. */
    if (res->ok) {
        const char *names[EVAL_EXTRA_MAX];
        double vv[EVAL_EXTRA_MAX], vt[EVAL_EXTRA_MAX];
        /* The last curve point scored the final model on the validation split: zall holds it. */
        if (!(res->ncurve > 0 && res->curve[res->ncurve - 1].step == steps)) predict(&m, &eacts, &task->val, zall, C);
        int n = all_metrics(task, &task->val, zall, names, vv);
        res->val = task_metric_value(task, &task->val, zall);
        predict(&m, &eacts, &task->test, zall, C);
        all_metrics(task, &task->test, zall, names, vt);
        res->test = task_metric_value(task, &task->test, zall);
        res->nextra = n;
        for (int i = 0; i < n; i++) {
            snprintf(res->extra[i].name, sizeof res->extra[i].name, "%s", names[i]);
            res->extra[i].val = vv[i];
            res->extra[i].test = vt[i];
        }
    }
done:
    lossprog_free(lp);
    arena_free(&arena);
    res->wall_ms = ld_now_ms() - t0;
    return rc;
}

static int mlp_eval_run(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err) {
    return eval_run_traced(task, loss, opt, res, NULL, err);
}

/* The two families trained by the loop above: rows of a data set through an MLP. */
const EvalFamily family_classification = {
    .name = "classification",
    .metrics = {{"accuracy", 1}, {"balanced_accuracy", 1}, {"macro_f1", 1}, {"ece", 0}},
    .baseline = "ce",
    .data_set = 1,
    .classify = 1,
    .run = mlp_eval_run,
};

const EvalFamily family_regression = {
    .name = "regression",
    .metrics = {{"mse", 0}, {"mae", 0}},
    .baseline = "mse",
    .data_set = 1,
    .classify = 0,
    .run = mlp_eval_run,
};

int eval_run(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err) {
    const EvalFamily *f = eval_family(task->family);
    if (!f) return ld_err(err, LD_EINVAL, "eval: task has no family");
    return f->run(task, loss, opt, res, err);
}

/* JSON numbers cannot be NaN or infinite: those become null. */
static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

cJSON *eval_result_json(const EvalResult *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "status", r->ok ? "ok" : r->cancelled ? "cancelled" : "failed");
    cJSON_AddStringToObject(o, "metric", r->metric);
    add_num(o, "val", r->val);
    add_num(o, "test", r->test);
    cJSON_AddNumberToObject(o, "steps", r->steps);
    cJSON_AddNumberToObject(o, "wall_ms", round(r->wall_ms * 1000) / 1000);
    add_num(o, "final_loss", r->final_loss);
    cJSON *c = cJSON_AddArrayToObject(o, "curve");
    for (int i = 0; i < r->ncurve; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "step", r->curve[i].step);
        add_num(p, "loss", r->curve[i].loss);
        add_num(p, "val", r->curve[i].val);
        cJSON_AddItemToArray(c, p);
    }
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    for (int i = 0; i < r->nextra; i++) {
        cJSON *p = cJSON_AddObjectToObject(m, r->extra[i].name);
        add_num(p, "val", r->extra[i].val);
        add_num(p, "test", r->extra[i].test);
    }
    if (!r->ok) cJSON_AddStringToObject(o, "error", r->error);
    return o;
}
