/* family_toy.c: a test-only task family, the worked example of docs/architecture.md
 * ("Families"): a new family is this one file plus one line (eval_family_add, in
 * tests/test_family_toy.c). It fits a line y = a x + b to noisy points. The model is two numbers
 * in two parameter groups (slope and intercept, each with its own optimiser, as a GAN's two
 * networks would be); a step draws a minibatch of points; the loss language sees a prediction f
 * and a target y per point (LIN_PRED), so mse, mae, huber, r, f, y and l2 are its vocabulary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../evaluator/train.h"

/* The loaded task: train, val and test points, contiguous. */
typedef struct ToyData {
    int n[3];    /* points of train, val, test */
    float *x[3], *y[3];
    float *mem;  /* owns every array */
} ToyData;

/* Reads "toy": {slope, noise, points} (checked by spec_check against toy_keys) and draws the
 * points from the split seed; sets the family's training defaults. */
static int toy_load(Task *t, const cJSON *spec, char *err) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(spec, "toy");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(spec, "split");
    const cJSON *v;
    double slope = 2, noise = 0.1, seed = 0;
    int points = 256;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "slope"))) slope = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "noise"))) noise = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "points"))) points = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(sp, "seed"))) seed = v->valuedouble;
    ToyData *d = calloc(1, sizeof *d);
    float *mem = calloc(6 * (size_t)points, sizeof *mem);
    if (!d || !mem) {
        free(d);
        free(mem);
        return ld_err(err, LD_ENOMEM, "toy: out of memory");
    }
    d->mem = mem;
    LdRng rng;
    rng_seed(&rng, ld_mix64((uint64_t)seed, 0x746f79));
    for (int s = 0; s < 3; s++) {
        d->n[s] = points;
        d->x[s] = mem + (size_t)(2 * s) * points;
        d->y[s] = mem + (size_t)(2 * s + 1) * points;
        for (int i = 0; i < points; i++) {
            d->x[s][i] = (float)(2 * rng_uniform(&rng) - 1);
            d->y[s][i] = (float)(slope * d->x[s][i] + 0.5 + noise * rng_normal(&rng));
        }
    }
    t->own = d;
    t->nclass = 1;
    t->train_spec.lr = 0.05f;
    t->train_spec.batch = 32;
    t->train_spec.steps = 300;
    return LD_OK;
}

static void toy_unload(Task *t) {
    ToyData *d = t->own;
    if (d) free(d->mem);
    free(d);
    t->own = NULL;
}

/* A run's state, in the trainer's arena. */
typedef struct ToyRun {
    float ab[2], gab[2]; /* slope a and intercept b, their gradients */
    float *xb, *yb, *fb; /* (B) the minibatch and its predictions */
} ToyRun;

static void toy_loss_shape(const Task *t, int *B, int *C, int *D) {
    *B = t->train_spec.batch;
    *C = 1;
    *D = 0;
}

static size_t toy_run_bytes(const Task *t, size_t *nparams) {
    *nparams = 2;
    return train_al64(sizeof(ToyRun)) + 3 * train_al64((size_t)t->train_spec.batch * sizeof(float));
}

static int toy_setup(Trainer *tr, char *err) {
    int B = tr->task->train_spec.batch, rc;
    ToyRun *r = arena_alloc(&tr->arena, sizeof *r);
    if (!r) return ld_err(err, LD_ENOMEM, "toy: arena too small");
    r->xb = arena_alloc(&tr->arena, (size_t)B * sizeof(float));
    r->yb = arena_alloc(&tr->arena, (size_t)B * sizeof(float));
    r->fb = arena_alloc(&tr->arena, (size_t)B * sizeof(float));
    if (!r->fb) return ld_err(err, LD_ENOMEM, "toy: arena too small");
    r->ab[0] = 0.1f * rng_normal(&tr->rng);
    r->ab[1] = 0.1f * rng_normal(&tr->rng);
    tr->state = r;
    if ((rc = train_group(tr, &r->ab[0], &r->gab[0], 1, NULL, err))) return rc; /* slope */
    return train_group(tr, &r->ab[1], &r->gab[1], 1, NULL, err);                 /* intercept */
}

/* f = a x + b on B points drawn with replacement; d loss / d a = sum dz x (+ l2's a), / d b =
 * sum dz. */
static int toy_step(Trainer *tr, float *loss) {
    ToyRun *r = tr->state;
    const ToyData *d = tr->task->own;
    int B = tr->task->train_spec.batch;
    for (int i = 0; i < B; i++) {
        int k = (int)rng_below(&tr->rng, (uint32_t)d->n[0]);
        r->xb[i] = d->x[0][k];
        r->yb[i] = d->y[0][k];
        r->fb[i] = r->ab[0] * r->xb[i] + r->ab[1];
    }
    LossIn in = {.B = B, .t = tr->t, .z = r->fb, .y = r->yb};
    if (tr->use_l2) in.term[TERM_L2] = 0.5f * r->ab[0] * r->ab[0];
    LossOut out;
    int rc = train_loss(tr, &in, &out);
    *loss = out.loss;
    if (rc != LD_OK) return LD_EFAILED;
    r->gab[0] = out.g_term[TERM_L2] * r->ab[0];
    r->gab[1] = 0;
    for (int i = 0; i < B; i++) {
        r->gab[0] += out.dz[i] * r->xb[i];
        r->gab[1] += out.dz[i];
    }
    return LD_OK;
}

/* Mean squared (mae: absolute) error of the line on split s. */
static double toy_error(const ToyRun *r, const ToyData *d, int s, int absolute) {
    double sum = 0;
    for (int i = 0; i < d->n[s]; i++) {
        double e = r->ab[0] * d->x[s][i] + r->ab[1] - d->y[s][i];
        sum += absolute ? fabs(e) : e * e;
    }
    return sum / d->n[s];
}

static double toy_curve_val(Trainer *tr, int last) { return toy_error(tr->state, tr->task->own, 1, 0); }

static void toy_score(Trainer *tr, EvalResult *res) {
    const char *names[2] = {"mse", "mae"};
    for (int m = 0; m < 2; m++) {
        EvalMetric *e = &res->extra[res->nextra++];
        snprintf(e->name, sizeof e->name, "%s", names[m]);
        e->val = toy_error(tr->state, tr->task->own, 1, m);
        e->test = toy_error(tr->state, tr->task->own, 2, m);
    }
}

static const EvalSpecKey toy_keys[] = {
    {"", "toy", SK_OBJ, 0, 0},
    {"toy", "slope", SK_NUM, -10, 10},
    {"toy", "noise", SK_NUM, 0, 5},
    {"toy", "points", SK_INT, 8, 4096},
    {NULL, NULL, 0, 0, 0},
};

const EvalFamily family_toy = {
    .name = "toy",
    .metrics = {{"mse", 0}, {"mae", 0}},
    .baseline = "mse",
    .data_set = 0,
    .inputs = LIN_PRED,
    .keys = toy_keys,
    .load = toy_load,
    .unload = toy_unload,
    .rng_salt = 0x746f79,
    .lr_schedule = TRAIN_LR_CONSTANT,
    .loss_shape = toy_loss_shape,
    .run_bytes = toy_run_bytes,
    .setup = toy_setup,
    .step = toy_step,
    .curve_val = toy_curve_val,
    .score = toy_score,
    .probe = eval_probe_std, /* the probe batch of its inputs: f and y */
};
