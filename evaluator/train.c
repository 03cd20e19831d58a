/* train.c: the one trainer. Every family trains here, through its EvalFamily hooks
 * (family.h): one arena sized up front, the run's RNG, one optimiser per parameter group, the
 * learning-rate schedule, the stop rules, the learning curve, wall time, and the one precision
 * hook before the final scoring. Also the result as JSON. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* Bits TERM_* of the terms e reads. */
static uint32_t term_bits(const Expr *e) {
    if (!e) return 0;
    return (e->op == EOP_TERM ? 1u << e->id : 0) | term_bits(e->a) | term_bits(e->b);
}

static int has_term(const Expr *e, int term) {
    if (!e) return 0;
    if (e->op == EOP_TERM && e->id == term) return 1;
    return has_term(e->a, term) || has_term(e->b, term);
}

static int train_curve_every(const EvalOpts *opt, int steps) {
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

static int train_stop(EvalResult *res, const EvalOpts *opt, int step, double loss, double *first_loss) {
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

int eval_stop_early(const EvalOpts *opt, int i, double val, double *best, int *run) {
    if (!opt || !opt->stop_bar || opt->stop_points < 1 || !isfinite(val)) return 0;
    if (!isfinite(*best) || (opt->stop_higher ? val > *best : val < *best)) *best = val;
    double bar = i >= 0 && i < opt->nstop ? opt->stop_bar[i] : NAN;
    if (!isfinite(bar)) return 0;
    int worse = opt->stop_higher ? *best < bar : *best > bar;
    *run = worse ? *run + 1 : 0;
    return *run >= opt->stop_points;
}

int train_group(Trainer *tr, float *params, float *grads, size_t n, const TrainSpec *ts, char *err) {
    if (tr->ngroups >= TRAIN_MAX_GROUPS)
        return ld_err(err, LD_EINVAL, "train: more than %d parameter groups", TRAIN_MAX_GROUPS);
    if (!ts) ts = &tr->task->train_spec;
    float *m = arena_alloc(&tr->arena, n * sizeof(float));
    float *v = arena_alloc(&tr->arena, n * sizeof(float));
    if (!params || !grads || !m || !v)
        return ld_err(err, LD_ENOMEM, "train: arena too small for parameter group %d (internal sizing error)",
                      tr->ngroups);
    TrainGroup *g = &tr->group[tr->ngroups++];
    g->params = params;
    g->grads = grads;
    g->n = n;
    g->lr = ts->lr;
    optim_init(&g->optim, ts, n, m, v);
    return LD_OK;
}

/* The learning rate of a group with peak lr at step of steps under schedule. */
static float train_lr(int schedule, float lr, int step, int steps) {
    /* Cosine decay to a tenth of the peak: at a constant rate Adam keeps spiking on the physics
     * problems, and a run that ends on a spike (1 seed in 6 on Poisson) scores 7x worse than
     * its curve. */
    if (schedule == TRAIN_LR_COSINE) return lr * (0.1f + 0.45f * (1.0f + cosf((float)M_PI * step / steps)));
    return lr;
}

void train_group_step(Trainer *tr, int g) {
    TrainGroup *tg = &tr->group[g];
    tg->optim.lr = train_lr(eval_family(tr->task->family)->lr_schedule, tg->lr, tr->step, tr->steps);
    optim_step(&tg->optim, tg->params, tg->grads);
}

/* THE PRECISION HOOK: the models a family deploys (train_deployable) are scored a second time
 * as they would be deployed (train_score_deployed), and with deploy.qat they train the last
 * quarter of the run through their fake-quantised int8 forward (train_step_forward). Families
 * reach deployment only through these functions. */
/* m's deployment when this step trains it through its quantisation-aware model, else NULL. */
static TrainDeploy *train_qat_of(Trainer *tr, const Mlp *m) {
    if (!tr || tr->step < tr->qat_from) return NULL;
    for (int i = 0; i < tr->ndeploy; i++)
        if (tr->deploy[i].m == m && tr->deploy[i].qat.m) return &tr->deploy[i];
    return NULL;
}

/* The same for the whole fake-quantised forward (train_step_forward): not a weight-only model. */
static TrainDeploy *train_qat_rows_of(Trainer *tr, const Mlp *m) {
    TrainDeploy *d = train_qat_of(tr, m);
    return d && !d->wonly ? d : NULL;
}

int train_deployable(Trainer *tr, const Mlp *m, const float *calib, int ncalib, int maxB, int trainB, char *err) {
    if (tr->ndeploy >= TRAIN_MAX_DEPLOY)
        return ld_err(err, LD_EINVAL, "train: more than %d deployable models", TRAIN_MAX_DEPLOY);
    TrainDeploy *d = &tr->deploy[tr->ndeploy++];
    *d = (TrainDeploy){.m = m, .calib = calib, .ncalib = ncalib, .maxB = maxB, .trainB = trainB};
    if (!tr->task->deploy_qat) return LD_OK;
    if (trainB < 1) return ld_err(err, LD_EINVAL, "train: deploy.qat needs the rows of the training forward");
    if (arena_init(&d->qat_arena, quant_qat_arena_bytes(m, trainB) + 4096))
        return ld_err(err, LD_ENOMEM, "train: out of memory for quantisation-aware training");
    int rc = quant_qat_init(&d->qat, m, trainB, 0.01f, &d->qat_arena, err);
    d->lo = d->qat.lo;
    d->hi = d->qat.hi;
    return rc;
}

int train_deployable_weights(Trainer *tr, const Mlp *m, const float *calib, int ncalib, int maxB, char *err) {
    if (!tr->task->deploy_qat) return train_deployable(tr, m, calib, ncalib, maxB, 0, err);
    int rc = train_deployable(tr, m, calib, ncalib, maxB, 1, err); /* binds the QuantQat of one row */
    TrainDeploy *d = &tr->deploy[tr->ndeploy - 1];
    d->lo = d->hi = NULL; /* activations were not trained quantised: int8 calibrates them on calib */
    d->wonly = 1;
    d->wview = *m;
    for (int l = 0; l < m->nlin; l++) d->wview.w[l] = d->qat.wfq.w[l];
    return rc;
}

const Mlp *train_step_weights(Trainer *tr, const Mlp *m) {
    TrainDeploy *d = train_qat_of(tr, m);
    if (!d || !d->wonly) return m;
    quant_qat_weights(&d->qat);
    return &d->wview;
}

void train_step_weights_backward(Trainer *tr, const Mlp *m, const Mlp *g) {
    TrainDeploy *d = train_qat_of(tr, m);
    if (d && d->wonly) quant_qat_weights_backward(&d->qat, g);
}

int train_deployable_behind(Trainer *tr, const Mlp *m, const Mlp *front, int maxB, int trainB, char *err) {
    int i = 0;
    while (i < tr->ndeploy && tr->deploy[i].m != front) i++;
    if (i == tr->ndeploy) return ld_err(err, LD_EINVAL, "train: a model's front is not a deployable model");
    int rc = train_deployable(tr, m, tr->deploy[i].calib, tr->deploy[i].ncalib, maxB, trainB, err);
    tr->deploy[tr->ndeploy - 1].front = front;
    return rc;
}

const float *train_forward(Trainer *tr, const Mlp *m, MlpActs *a, const float *x, int B) {
    for (int i = 0; tr && i < tr->ndeploy; i++)
        if (tr->deploy[i].m == m && tr->deploy[i].q) return quant_mlp_forward(tr->deploy[i].q, x, B);
    return mlp_forward(m, a, x, B);
}

int train_deploying(const Trainer *tr) { return tr->ndeploy > 0 && tr->deploy[0].q != NULL; }


const float *train_step_forward(Trainer *tr, const Mlp *m, MlpActs *a, const float *x, int B) {
    TrainDeploy *d = train_qat_rows_of(tr, m);
    return d ? quant_qat_forward(&d->qat, x, B, 1) : mlp_forward(m, a, x, B);
}

void train_step_backward(Trainer *tr, const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz,
                         int B) {
    TrainDeploy *d = train_qat_rows_of(tr, m);
    if (d) quant_qat_backward(&d->qat, g, dz, B);
    else mlp_backward(m, a, g, x, dz, B);
}

void train_step_backward_dx(Trainer *tr, const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz,
                            float *dx, int B) {
    TrainDeploy *d = train_qat_rows_of(tr, m);
    if (d) quant_qat_backward_dx(&d->qat, g, dz, x, dx, B);
    else mlp_backward_dx(m, a, g, x, dz, dx, B);
}

/* d's calibration rows: its own, or (d->front) the front model's fp32 outputs of the front's
 * rows, computed into memory from qa in chunks of d->maxB rows; NULL when qa is too small. */
static const float *train_calib_rows(const TrainDeploy *d, LdArena *qa) {
    if (!d->front) return d->calib;
    const Mlp *f = d->front;
    float *rows = arena_alloc(qa, sizeof(float) * (size_t)d->ncalib * f->dim[f->nlin]);
    float *mem = arena_alloc(qa, sizeof(float) * mlp_acts_floats(f, d->maxB));
    if (!rows || !mem) return NULL;
    MlpActs a;
    mlp_acts_bind(&a, f, d->maxB, mem);
    for (int i = 0; i < d->ncalib; i += d->maxB) {
        int B = d->ncalib - i < d->maxB ? d->ncalib - i : d->maxB;
        const float *o = mlp_forward(f, &a, d->calib + (size_t)i * f->dim[0], B);
        memcpy(rows + (size_t)i * f->dim[f->nlin], o, sizeof(float) * (size_t)B * f->dim[f->nlin]);
    }
    return rows;
}

/* Arena bytes train_calib_rows takes for d. */
static size_t train_calib_bytes(const TrainDeploy *d) {
    if (!d->front) return 0;
    const Mlp *f = d->front;
    return train_al64(sizeof(float) * (size_t)d->ncalib * f->dim[f->nlin]) +
           train_al64(sizeof(float) * mlp_acts_floats(f, d->maxB));
}

/* At task->deploy other than fp32: scores at fp32, builds each deployable model's quantised copy
 * (quant.h; the trained parameters are not changed, so nothing needs restoring), scores again
 * through it, and keeps both: the deployed metrics under their names (so val and test, and the
 * selection, are the deployed ones) and the fp32 ones as NAME_fp32. */
static void train_score_deployed(const EvalFamily *f, Trainer *tr, EvalResult *res) {
    const int prec = tr->task->deploy;
    EvalMetric fp32[EVAL_EXTRA_MAX];
    int n = res->nextra;
    memcpy(fp32, res->extra, sizeof fp32);
    LdArena qa = {0};
    char err[LD_ERR_MAX] = "";
    size_t need = 4096;
    for (int i = 0; i < tr->ndeploy; i++)
        need += quant_mlp_arena_bytes(tr->deploy[i].m, prec, tr->deploy[i].maxB) + train_al64(sizeof(QuantMlp)) +
                train_calib_bytes(&tr->deploy[i]);
    int rc = tr->ndeploy ? arena_init(&qa, need) : LD_EINVAL;
    if (!tr->ndeploy)
        snprintf(err, sizeof err, "the %s family declares no deployable model", f->name);
    for (int i = 0; i < tr->ndeploy && rc == LD_OK; i++) {
        TrainDeploy *d = &tr->deploy[i];
        QuantMlp *q = arena_alloc(&qa, sizeof *q);
        const float *calib = d->lo || prec != QUANT_INT8 ? d->calib : train_calib_rows(d, &qa);
        rc = !q || (!d->lo && prec == QUANT_INT8 && !calib) ? LD_ENOMEM
             : d->lo ? quant_mlp_build_ranges(q, d->m, d->lo, d->hi, d->maxB, &qa, err)
                     : quant_mlp_build(q, d->m, prec, calib, d->ncalib, d->maxB, &qa, err);
        if (rc == LD_OK) d->q = q;
    }
    if (rc == LD_OK) {
        res->nextra = 0; /* the deployed model's metrics replace the fp32 ones under their names */
        f->score(tr, res);
    }
    for (int i = 0; i < tr->ndeploy; i++) tr->deploy[i].q = NULL;
    arena_free(&qa);
    if (rc != LD_OK) {
        res->ok = 0;
        res->val = res->test = NAN;
        snprintf(res->error, sizeof res->error, "deploy.precision %s: %.200s", quant_precision_name(prec),
                 *err ? err : "out of memory");
        return;
    }
    for (int i = 0; i < n && res->nextra < EVAL_EXTRA_MAX; i++) {
        EvalMetric *e = &res->extra[res->nextra++];
        *e = fp32[i];
        snprintf(e->name, sizeof e->name, "%.18s_fp32", fp32[i].name);
    }
}

static void train_score(const EvalFamily *f, Trainer *tr, EvalResult *res) {
    f->score(tr, res);
    if (tr->task->deploy != QUANT_FP32 && res->ok) train_score_deployed(f, tr, res);
}

_Static_assert(TRAIN_MAX_GROUPS == EVAL_TRACE_GROUPS, "a trace holds every parameter group");

/* Copies every group's parameters into to[] (malloc'd here; a copy that cannot be made stays
 * NULL and the trace shows it as missing). */
static void trace_groups(EvalTrace *trace, const Trainer *tr, float **to) {
    trace->ngroups = tr->ngroups;
    for (int i = 0; i < tr->ngroups; i++) {
        trace->group_n[i] = tr->group[i].n;
        free(to[i]);
        if ((to[i] = malloc(tr->group[i].n * sizeof(float) + 1)))
            memcpy(to[i], tr->group[i].params, tr->group[i].n * sizeof(float));
    }
}

void eval_trace_free(EvalTrace *trace) {
    for (int i = 0; i < EVAL_TRACE_GROUPS; i++) {
        free(trace->group_init[i]);
        free(trace->group_final[i]);
        trace->group_init[i] = trace->group_final[i] = NULL;
    }
}

/* ---- the run's arena, kept per thread
 * A worker runs evaluation after evaluation with arenas of about the same size. glibc hands a
 * freed block of a few hundred KiB back to the kernel, so each run faulted its arena's pages in
 * anew: ~5% of a digits autoencoder evaluation on this project's VM. The block is kept for the
 * thread's next run instead (blocks up to RUN_ARENA_KEEP bytes) and freed when the thread exits.
 * A run sees what arena_init gives: zeroed memory of the capacity it asked for. */
#define RUN_ARENA_KEEP ((size_t)32 << 20)
typedef struct RunArena {
    char *base;        /* the kept block, NULL while a run holds it (or none kept) */
    size_t cap;        /* its size */
    char *lent;        /* the block the thread's run holds, and its size */
    size_t lent_cap;
} RunArena;
static __thread RunArena run_arena;
static pthread_key_t run_arena_key;
static pthread_once_t run_arena_once = PTHREAD_ONCE_INIT;

static void run_arena_exit(void *p) {
    RunArena *k = p;
    free(k->base);
    k->base = NULL;
}
static void run_arena_key_make(void) {
    if (pthread_key_create(&run_arena_key, run_arena_exit)) run_arena_key = (pthread_key_t)-1;
}

/* arena_init(a, need), from the thread's kept block when it is large enough. */
static int run_arena_init(LdArena *a, size_t need) {
    RunArena *k = &run_arena;
    size_t cap = (need + 63) & ~(size_t)63;
    if (!k->base || k->cap < cap) {
        if (arena_init(a, need)) return LD_ENOMEM;
        k->lent = a->base;
        k->lent_cap = a->cap;
        return LD_OK;
    }
    *a = (LdArena){.base = k->base, .cap = cap};
    memset(a->base, 0, cap);
    k->lent = k->base;
    k->lent_cap = k->cap;
    k->base = NULL;
    return LD_OK;
}

/* arena_free(a), keeping the block for the thread's next run when none is kept. */
static void run_arena_free(LdArena *a) {
    RunArena *k = &run_arena;
    size_t cap = a->base && a->base == k->lent ? k->lent_cap : a->cap; /* a->cap may be less */
    k->lent = NULL;
    pthread_once(&run_arena_once, run_arena_key_make);
    if (a->base && !k->base && cap <= RUN_ARENA_KEEP && run_arena_key != (pthread_key_t)-1 &&
        !pthread_setspecific(run_arena_key, k)) { /* the key's value: its destructor runs at exit */
        k->base = a->base;
        k->cap = cap;
        *a = (LdArena){0};
        return;
    }
    arena_free(a);
}

int train_run(const Task *task, const TrainLoss *loss, const EvalOpts *opt, EvalResult *res,
              EvalTrace *trace, char *err) {
    double t0 = ld_now_ms();
    int rc = LD_OK;
    const EvalFamily *f = eval_family(task->family);
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    memset(res, 0, sizeof *res);
    snprintf(res->metric, sizeof res->metric, "%s", task->metric);
    res->val = res->test = NAN;
    res->final_loss = NAN;
    if (!f || !f->setup) {
        rc = ld_err(err, LD_EINVAL, "eval: task has no family");
        goto done;
    }
    const int steps = opt && opt->steps > 0 ? opt->steps : task->train_spec.steps;
    tr.task = task;
    tr.opt = opt;
    tr.seed = opt ? opt->seed : 0;
    tr.steps = steps;
    tr.trace = trace;
    tr.loss = *loss;
    tr.use_l2 = loss->use_l2;
    tr.qat_from = task->deploy_qat ? steps - (steps / 4 > 1 ? steps / 4 : 1) : steps;
    mlp_blas_once();
    rng_seed(&tr.rng, ld_mix64(tr.seed, f->rng_salt));

    /* Sizes, then one arena: the family's state and one pair of moments per parameter. */
    size_t nparams = 0, need = f->run_bytes(task, &nparams);
    need += 2 * (nparams * sizeof(float) + 64 * TRAIN_MAX_GROUPS) + 4096;
    if (run_arena_init(&tr.arena, need)) {
        rc = ld_err(err, LD_ENOMEM, "eval: out of memory for a %zu-byte arena", need);
        goto done;
    }
    if ((rc = f->setup(&tr, err))) goto done;
    if (trace && trace->init) memcpy(trace->init, tr.group[0].params, tr.group[0].n * sizeof(float));
    if (trace && trace->all_groups) trace_groups(trace, &tr, trace->group_init);

    int every = train_curve_every(opt, steps);
    double seg_loss = 0, first_loss = 0;
    int seg_n = 0, behind = 0;
    double best_val = NAN;
    res->ok = 1;
    for (int step = 0; step < steps; step++) {
        tr.step = step;
        tr.t = steps > 1 ? (float)step / (float)(steps - 1) : 0.0f;
        float l = NAN;
        int frc = f->step(&tr, &l);
        if (trace && trace->losses) trace->losses[step] = l;
        if (train_stop(res, opt, step, frc != LD_OK ? NAN : l, &first_loss)) {
            if (frc != LD_OK && isfinite(l) && !res->cancelled)
                snprintf(res->error, sizeof res->error, "non-finite gradient at step %d", step);
            break;
        }
        for (int i = 0; i < tr.ngroups; i++) {
            TrainGroup *g = &tr.group[i];
            if (g->manual) continue;
            g->optim.lr = train_lr(f->lr_schedule, g->lr, step, steps);
            optim_step(&g->optim, g->params, g->grads);
        }
        seg_loss += l;
        seg_n++;
        res->steps = step + 1;
        if ((step + 1) % every == 0 || step == steps - 1) {
            EvalCurvePoint *cp = &res->curve[res->ncurve < EVAL_CURVE_MAX ? res->ncurve++ : EVAL_CURVE_MAX - 1];
            cp->step = step + 1;
            cp->loss = (float)(seg_loss / seg_n);
            cp->val = (float)f->curve_val(&tr, step == steps - 1);
            res->final_loss = cp->loss;
            seg_loss = 0;
            seg_n = 0;
            if (step < steps - 1 && eval_stop_early(opt, res->ncurve - 1, cp->val, &best_val, &behind)) {
                res->ok = 0;
                res->stopped = 1;
                res->val = res->test = NAN;
                snprintf(res->error, sizeof res->error,
                         "stopped early at step %d: best validation %g behind the reference's curve (bar %g)",
                         step + 1, best_val, (double)opt->stop_bar[res->ncurve - 1]);
                break;
            }
        }
    }
    for (int i = 0; i < tr.ngroups && res->ok; i++)
        for (size_t k = 0; k < tr.group[i].n; k++)
            if (!isfinite(tr.group[i].params[k])) {
                fail(res, steps - 1, "non-finite weights after step %d", 0);
                break;
            }
    if (trace && trace->final && res->ok)
        memcpy(trace->final, tr.group[0].params, tr.group[0].n * sizeof(float));
    if (trace && trace->all_groups && res->ok) trace_groups(trace, &tr, trace->group_final);
    if (res->ok) train_score(f, &tr, res);
    /* val and test are the task's selection metric among the family's metrics */
    for (int i = 0; i < res->nextra && res->ok; i++)
        if (!strcmp(res->extra[i].name, task->metric)) {
            res->val = res->extra[i].val;
            res->test = res->extra[i].test;
        }
done:
    for (int i = 0; i < tr.ndeploy; i++) arena_free(&tr.deploy[i].qat_arena);
    run_arena_free(&tr.arena);
    res->wall_ms = ld_now_ms() - t0;
    return rc;
}

static int lossprog_fn(void *ctx, const LossIn *in, LossOut *out) { return lossprog_run(ctx, in, out); }

int eval_run_traced(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res,
                    EvalTrace *trace, char *err) {
    const EvalFamily *f = eval_family(task->family);
    LossProg *lp = NULL;
    int B, C, D;
    if (!f || !f->loss_shape) return ld_err(err, LD_EINVAL, "eval: task has no family");
    f->loss_shape(task, &B, &C, &D);
    int rc = expr_check(loss, task->family, err); /* the family's vocabulary first, then the task's */
    if (rc == LD_OK && f->check_loss) rc = f->check_loss(task, loss, err);
    if (rc == LD_OK) rc = lossprog_new(loss, task->family, B, C, D, &lp, err);
    TrainLoss tl = {.fn = lossprog_fn, .ctx = lp, .use_l2 = has_term(loss, TERM_L2), .terms = term_bits(loss),
                  .inputs = expr_inputs(loss)};
    if (rc == LD_OK) rc = train_run(task, &tl, opt, res, trace, err);
    lossprog_free(lp);
    return rc;
}

int eval_run(const Task *task, const Expr *loss, const EvalOpts *opt, EvalResult *res, char *err) {
    task = task_fold(task, opt ? opt->seed : 0); /* cross-validated tasks: the seed's split */
    return eval_run_traced(task, loss, opt, res, NULL, err);
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
