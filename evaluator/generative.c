/* generative.c: the generative family (docs/families.md, "generative"): a data set's rows as
 * pixels or features kept as read, a model chosen by model.kind (generative.h's GenKind: the
 * autoencoder here, the GAN in gan.c) whose hooks the family forwards to, and the autoencoder:
 * an MLP encoder to a bottleneck of model.latent units and an MLP decoder back, trained on a loss
 * over x and its reconstruction xh (rec, bce_rec, perc), scored by the reconstruction's mean
 * squared error and the fixed digits classifier's accuracy on the reconstructions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fastmath.h"
#include "fixednet.h"
#include "generative.h"

#define EVAL_CHUNK 128 /* rows per forward when scoring a split */
#define CURVE_ROWS 128 /* validation rows scored by the curve points before the last */
#define DIGITS_PIXELS 64
#define DIGITS_MAX 16.0f /* builtin:digits pixels are 0..16; the family reads them divided by 16 */

/* ---- the model kinds: one line each */

static const struct {
    const char *name;
    const GenKind *kind; /* NULL: named but not built yet */
} gen_kinds[] = {
    {"autoencoder", &gen_autoencoder},
    {"gan", &gen_gan},
};
#define NKINDS (sizeof gen_kinds / sizeof gen_kinds[0])

/* ---- loading */

static int int_key(const cJSON *sect, const char *key, int *v) {
    const cJSON *it = sect ? cJSON_GetObjectItemCaseSensitive(sect, key) : NULL;
    if (cJSON_IsNumber(it)) *v = (int)it->valuedouble; /* type and range: spec_check */
    return LD_OK;
}

/* Whether every value of the splits is in [0, 1]; else where the first one outside is. */
static int in_unit(const Task *t, const char *data, char *where, size_t n) {
    const Dataset *sp[3] = {&t->train, &t->val, &t->test};
    static const char *const names[3] = {"training", "validation", "test"};
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < (size_t)sp[s]->n * sp[s]->d; k++) {
            float v = sp[s]->x[k];
            if (v >= 0.0f && v <= 1.0f) continue;
            snprintf(where, n, "%s: feature column %d of %d holds %g (a row of the %s split)", data,
                     (int)(k % (size_t)sp[s]->d) + 1, sp[s]->d, (double)v, names[s]);
            return 0;
        }
    return 1;
}

/* transform.scale "minmax": each feature mapped to [0, 1] by the training rows' minimum and
 * maximum (a constant feature to 0); the validation and test rows by the same map, clipped to
 * [0, 1] (a value beyond the training range is the range's end). */
static void minmax(Task *t) {
    Dataset *sp[3] = {&t->train, &t->val, &t->test};
    int d = t->train.d;
    for (int j = 0; j < d; j++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < t->train.n; i++) {
            float v = t->train.x[(size_t)i * d + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float span = hi > lo ? hi - lo : 0.0f;
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < sp[s]->n; i++) {
                float *v = &sp[s]->x[(size_t)i * d + j];
                float u = span > 0 ? (*v - lo) / span : 0.0f;
                *v = u < 0.0f ? 0.0f : u > 1.0f ? 1.0f : u;
            }
    }
}

static int gen_load(Task *t, const cJSON *spec, char *err) {
    const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "data"));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(spec, "model");
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "kind"));
    const GenKind *k = NULL;
    if (!kind) kind = "autoencoder";
    size_t i;
    for (i = 0; i < NKINDS; i++)
        if (!strcmp(kind, gen_kinds[i].name)) break;
    if (i == NKINDS)
        return ld_err(err, LD_EINVAL, "task: model.kind: '%.64s' is not a generative model (autoencoder or gan)",
                      kind);
    if (!(k = gen_kinds[i].kind))
        return ld_err(err, LD_EINVAL, "task: model.kind: \"%s\" is not built yet in this lossd (issue 9); "
                                      "model.kind \"autoencoder\" is", kind);
    for (int s = 0; s < 3; s++) {
        const Dataset *d = s == 0 ? &t->train : s == 1 ? &t->val : &t->test;
        for (size_t j = 0; j < (size_t)d->n * d->d; j++)
            if (!isfinite(d->x[j]))
                return ld_err(err, LD_EINVAL, "task: data %s: a missing or non-finite feature value; the "
                                              "generative family reads every value as given (no \"missing\" filling)",
                              data ? data : "");
    }
    GenTask *g = calloc(1, sizeof *g);
    if (!g) return ld_err(err, LD_ENOMEM, "task: out of memory");
    g->kind = k;
    g->latent = 8;
    g->noise = 16;
    g->d_steps = 1;
    int_key(model, "latent", &g->latent);
    int_key(model, "noise", &g->noise);
    int_key(cJSON_GetObjectItemCaseSensitive(spec, "train"), "d_steps", &g->d_steps);
    t->own = g;
    if (data && !strcmp(data, "builtin:digits")) { /* pixels 0..16 -> [0, 1] */
        Dataset *sp[3] = {&t->train, &t->val, &t->test};
        for (int s = 0; s < 3; s++)
            for (size_t j = 0; j < (size_t)sp[s]->n * sp[s]->d; j++) sp[s]->x[j] /= DIGITS_MAX;
    }
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(spec, "transform");
    const char *scale = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tf, "scale"));
    if (scale && strcmp(scale, "none") && strcmp(scale, "minmax"))
        return ld_err(err, LD_EINVAL, "task: transform.scale: '%.64s' is not a scaling (\"none\", the default: "
                                      "values as read; \"minmax\": each feature to [0, 1] by the training rows' "
                                      "minimum and maximum)", scale);
    if (scale && !strcmp(scale, "minmax")) minmax(t);
    g->unit = in_unit(t, data ? data : "data", g->outside, sizeof g->outside);
    g->digits = g->unit && t->train.d == DIGITS_PIXELS;
    if (!g->digits) /* gen_task_refused's reason, naming both terms when both are refused */
        snprintf(g->why, sizeof g->why, "%s%s%sperc needs 64 features in [0, 1] (the digits network's), this data "
                 "has %d", g->unit ? "" : "bce_rec needs values in [0, 1], but ", g->unit ? "" : g->outside,
                 g->unit ? "" : "; ", t->train.d);
    /* Family defaults (the spec's model and train keys override them after this): the benchmark's
     * 64-32-8-32-64 autoencoder. */
    t->model.nhidden = 1;
    t->model.hidden[0] = 32;
    t->model.act = ACT_RELU;
    t->train_spec.steps = 300;
    /* The kind's default metric; an explicit metric must be the kind's. */
    snprintf(t->metric, sizeof t->metric, "%s", k->metrics[0]);
    if (!g->digits && !strcmp(t->metric, "rec_accuracy")) snprintf(t->metric, sizeof t->metric, "rec_mse");
    metric_known(t->family, t->metric, &t->higher_better);
    const char *metric = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "metric"));
    if (metric) {
        int ok = 0;
        char names[96] = "";
        for (int m = 0; k->metrics[m]; m++) {
            ok |= !strcmp(metric, k->metrics[m]);
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", m ? ", " : "", k->metrics[m]);
        }
        if (!ok && metric_known(t->family, metric, NULL))
            return ld_err(err, LD_EINVAL, "task: metric: '%s' is not a metric of model.kind \"%s\" (%s)", metric,
                          k->name, names);
        if (ok && !strcmp(metric, "rec_accuracy") && !g->digits)
            return ld_err(err, LD_EINVAL, "task: metric: rec_accuracy scores reconstructions with the fixed digits "
                                          "classifier: it needs 64 features in [0, 1] (builtin:digits), this data has %d%s",
                          t->train.d, g->unit ? "" : " and values outside [0, 1]");
    }
    return k->load ? k->load(t, spec, err) : LD_OK;
}

static void gen_unload(Task *t) {
    GenTask *g = t->own;
    if (g && g->kind->unload) g->kind->unload(t);
    free(g);
    t->own = NULL;
}

/* ---- the hooks, forwarded to the task's kind */

static const GenKind *kind_of(const Task *t) { return gen_task(t)->kind; }
static void gen_loss_shape(const Task *t, int *B, int *C, int *D) { kind_of(t)->loss_shape(t, B, C, D); }
static size_t gen_run_bytes(const Task *t, size_t *nparams) { return kind_of(t)->run_bytes(t, nparams); }
static int gen_setup(Trainer *tr, char *err) { return kind_of(tr->task)->setup(tr, err); }
static int gen_step(Trainer *tr, float *loss) { return kind_of(tr->task)->step(tr, loss); }
static double gen_curve_val(Trainer *tr, int last) { return kind_of(tr->task)->curve_val(tr, last); }
static void gen_score(Trainer *tr, EvalResult *res) { kind_of(tr->task)->score(tr, res); }
static unsigned gen_task_inputs(const Task *t) { return kind_of(t)->inputs; }
static const char *gen_task_baseline(const Task *t) { return kind_of(t)->baseline; }

/* bce_rec on data outside [0, 1] and perc on data that is not digits pixels (gen_check_loss's
 * refusals, at submit); why: gen_load's reason for the first of them. */
static uint32_t gen_task_refused(const Task *t, const char **why) {
    const GenTask *g = gen_task(t);
    uint32_t out = (g->unit ? 0 : 1u << TERM_BCE_REC) | (g->digits ? 0 : 1u << TERM_PERC);
    *why = out ? g->why : NULL;
    return out;
}

/* The first variable or term of e the inputs do not provide, printed into name; 0 when none. */
static int first_outside(const Expr *e, LangVocab v, char *name, size_t n) {
    if (!e) return 0;
    if ((e->op == EOP_VAR && !((v.vars >> e->id) & 1u)) || (e->op == EOP_TERM && !((v.terms >> e->id) & 1u))) {
        Expr leaf = {.op = e->op, .id = e->id};
        expr_print(&leaf, name, n);
        return 1;
    }
    return first_outside(e->a, v, name, n) || first_outside(e->b, v, name, n);
}

static int uses_term(const Expr *e, int term) {
    if (!e) return 0;
    return (e->op == EOP_TERM && e->id == term) || uses_term(e->a, term) || uses_term(e->b, term);
}

static int gen_check_loss(const Task *t, const Expr *e, char *err) {
    const GenTask *g = gen_task(t);
    char name[32];
    if (first_outside(e, lang_vocab_inputs(g->kind->inputs), name, sizeof name)) {
        const char *other = NULL;
        for (size_t i = 0; i < NKINDS; i++)
            if (gen_kinds[i].kind && gen_kinds[i].kind != g->kind) other = gen_kinds[i].name;
        if (!other) return ld_err(err, LD_EINVAL, "'%s' is not available for generative tasks with model.kind \"%s\"",
                                  name, g->kind->name);
        return ld_err(err, LD_EINVAL, "'%s' is not available for generative tasks with model.kind \"%s\" (it is "
                                      "a model.kind \"%s\" name)", name, g->kind->name, other);
    }
    if (uses_term(e, TERM_BCE_REC) && !g->unit)
        return ld_err(err, LD_EINVAL, "bce_rec is a Bernoulli likelihood of values in [0, 1], but %s (use rec, or transform.scale \"minmax\")",
                      g->outside);
    if (uses_term(e, TERM_PERC) && !g->digits)
        return ld_err(err, LD_EINVAL, "perc measures distances in the fixed digits network's features: it needs 64 "
                                      "features in [0, 1] (builtin:digits), this data has %d%s",
                      t->train.d, g->unit ? "" : " and values outside [0, 1]");
    return LD_OK;
}

/* ---- the autoencoder */

/* A run's state, in the trainer's arena. */
typedef struct AeRun {
    const GenTask *g;
    const FixedNet *net; /* the fixed digits networks (perc, rec_accuracy), NULL when not digits */
    int B, d, L, H, sigmoid, perc;
    Mlp enc, dec, genc, gdec;
    MlpActs ae, ad, ee, ed; /* encoder and decoder on B rows; on EVAL_CHUNK rows */
    float *params, *grads;  /* one block: the encoder's, then the decoder's */
    float *xb, *xh, *dxh, *dlat; /* (B, d), (B, d), (B, d), (B, L) */
    float *pv, *hx, *hxh, *scratch; /* perc (B), features (B, H) of x and xh, 2 B max(H, K) */
    int *bidx, *cls;        /* (B) rows of the batch; (EVAL_CHUNK) classes */
    float *rec;             /* (EVAL_CHUNK, d) a chunk's reconstructions */
    Dataset vsample;        /* the curve's sample of the validation split */
    int have_val;           /* the last curve point scored the whole validation split: */
    double val_mse, val_acc; /* its metrics, for the score (taken once) */
} AeRun;

/* The decoder's shape: the encoder's hidden layers reversed. */
static ModelSpec decoder_spec(const ModelSpec *enc) {
    ModelSpec s = *enc;
    for (int l = 0; l < enc->nhidden; l++) s.hidden[l] = enc->hidden[enc->nhidden - 1 - l];
    return s;
}

static void ae_loss_shape(const Task *t, int *B, int *C, int *D) {
    *B = t->train_spec.batch;
    *C = t->train.d;
    *D = 0;
}

static void *take(LdArena *a, size_t *need, size_t bytes) {
    *need += train_al64(bytes);
    return a ? arena_alloc(a, bytes) : NULL;
}

/* Sizes (a NULL) or lays out r's buffers for task t. */
static void ae_layout(AeRun *r, const Task *t, LdArena *a, size_t *need) {
    const GenTask *g = gen_task(t);
    ModelSpec ds = decoder_spec(&t->model);
    r->g = g;
    r->B = t->train_spec.batch;
    r->d = t->train.d;
    r->L = g->latent;
    r->H = 64; /* features and classes of the fixed net are at most this (32 and 10 as shipped) */
    int B = r->B, d = r->d, L = r->L, H = r->H, E = EVAL_CHUNK;
    mlp_bind(&r->enc, &t->model, d, L, NULL);
    mlp_bind(&r->dec, &ds, L, d, NULL);
    size_t P = r->enc.nparams + r->dec.nparams;
#define F(n) take(a, need, sizeof(float) * (size_t)(n))
    r->params = F(P);
    r->grads = F(P);
    float *m1 = F(mlp_acts_floats(&r->enc, B)), *m2 = F(mlp_acts_floats(&r->dec, B));
    float *m3 = F(mlp_acts_floats(&r->enc, E)), *m4 = F(mlp_acts_floats(&r->dec, E));
    r->xb = F((size_t)B * d);
    r->xh = F((size_t)B * d);
    r->dxh = F((size_t)B * d);
    r->dlat = F((size_t)B * L);
    int R = B > E ? B : E;
    r->pv = F(R);
    r->hx = F((size_t)R * H);
    r->hxh = F((size_t)R * H);
    r->scratch = F((size_t)4 * R * H);
    r->rec = F((size_t)E * d);
#undef F
    r->bidx = take(a, need, sizeof(int) * (size_t)B);
    r->cls = take(a, need, sizeof(int) * (size_t)E);
    if (!a || !r->cls) return;
    mlp_bind(&r->enc, &t->model, d, L, r->params);
    mlp_bind(&r->dec, &ds, L, d, r->params + r->enc.nparams);
    mlp_bind_like(&r->genc, &r->enc, r->grads);
    mlp_bind_like(&r->gdec, &r->dec, r->grads + r->enc.nparams);
    mlp_acts_bind(&r->ae, &r->enc, B, m1);
    mlp_acts_bind(&r->ad, &r->dec, B, m2);
    mlp_acts_bind(&r->ee, &r->enc, E, m3);
    mlp_acts_bind(&r->ed, &r->dec, E, m4);
}

static size_t ae_run_bytes(const Task *t, size_t *nparams) {
    AeRun r;
    size_t need = train_al64(sizeof(AeRun));
    ae_layout(&r, t, NULL, &need);
    *nparams = r.enc.nparams + r.dec.nparams;
    return need;
}

static int ae_setup(Trainer *tr, char *err) {
    const Task *t = tr->task;
    AeRun *r = arena_alloc(&tr->arena, sizeof *r);
    if (!r) return ld_err(err, LD_ENOMEM, "generative: arena too small (internal sizing error)");
    memset(r, 0, sizeof *r);
    size_t need = 0;
    ae_layout(r, t, &tr->arena, &need);
    if (!r->cls) return ld_err(err, LD_ENOMEM, "generative: arena too small (internal sizing error)");
    r->sigmoid = r->g->unit;
    r->perc = (tr->loss.terms >> TERM_PERC) & 1u;
    if (r->g->digits) {
        char ferr[LD_ERR_MAX];
        if (!(r->net = fixednet_get(ferr))) return ld_err(err, LD_ENOTFOUND, "generative: %s", ferr);
        if (r->net->d != r->d || r->net->h > r->H || r->net->k > r->H)
            return ld_err(err, LD_EINVAL, "generative: the fixed digits networks take %d inputs, the data has %d",
                          r->net->d, r->d);
    }
    if (r->perc && !r->net) return ld_err(err, LD_EINVAL, "generative: perc needs the fixed digits networks");
    mlp_init(&r->enc, tr->seed);
    mlp_init(&r->dec, ld_mix64(tr->seed, 0xdec0));
    r->vsample = t->val;
    if (r->vsample.n > CURVE_ROWS) r->vsample.n = CURVE_ROWS;
    tr->state = r;
    /* deployed: the encoder (calibrated on the training rows) and the decoder behind it */
    int rc = train_deployable(tr, &r->enc, t->train.x, t->train.n, EVAL_CHUNK, r->B, err);
    if (rc == LD_OK) rc = train_deployable_behind(tr, &r->dec, &r->enc, EVAL_CHUNK, r->B, err);
    if (rc == LD_OK) rc = train_group(tr, r->params, r->grads, r->enc.nparams + r->dec.nparams, NULL, err);
    return rc;
}

/* xh (B, d) from the decoder's outputs a: sigmoid(a) on data in [0, 1], else a. */
static void ae_output(const AeRun *r, float *restrict xh, const float *restrict a, int B) {
    size_t n = (size_t)B * r->d, n16 = n / 16 * 16;
    if (!r->sigmoid) {
        memcpy(xh, a, sizeof(float) * n);
        return;
    }
    /* chunks of 16 and a tail: GCC's -O2 cost model vectorises only loops without a remainder */
    for (size_t c = 0; c < n16; c += 16)
        for (int l = 0; l < 16; l++) xh[c + l] = fsigmoid(a[c + l]);
    for (size_t k = n16; k < n; k++) xh[k] = fsigmoid(a[k]);
}

/* d (n) = g (n) * xh (1 - xh): back through the sigmoid outputs (restrict and chunks of 16:
 * vectorised); g is d (in place) or another buffer (the copy and the product in one pass). */
static void sigmoid_backward_g(float *restrict d, const float *g, const float *restrict xh, size_t n) {
    size_t n16 = n / 16 * 16;
    for (size_t c = 0; c < n16; c += 16)
        for (int l = 0; l < 16; l++) d[c + l] = g[c + l] * (xh[c + l] * (1.0f - xh[c + l]));
    for (size_t k = n16; k < n; k++) d[k] = g[k] * (xh[k] * (1.0f - xh[k]));
}
static void sigmoid_backward(float *restrict d, const float *restrict xh, size_t n) {
    size_t n16 = n / 16 * 16;
    for (size_t c = 0; c < n16; c += 16)
        for (int l = 0; l < 16; l++) d[c + l] *= xh[c + l] * (1.0f - xh[c + l]);
    for (size_t k = n16; k < n; k++) d[k] *= xh[k] * (1.0f - xh[k]);
}

/* Reconstructions of B rows of x into xh, with the acts for up to maxB rows. */
static void ae_reconstruct(Trainer *tr, AeRun *r, MlpActs *ae, MlpActs *ad, const float *x, float *xh, int B) {
    const float *lat = train_forward(tr, &r->enc, ae, x, B);
    ae_output(r, xh, train_forward(tr, &r->dec, ad, lat, B), B);
}

static double weights_sq(const Mlp *m) {
    double s = 0;
    for (int l = 0; l < m->nlin; l++)
        for (size_t k = 0; k < (size_t)m->dim[l] * m->dim[l + 1]; k++) s += (double)m->w[l][k] * m->w[l][k];
    return s;
}

static void weights_l2_grad(const Mlp *m, const Mlp *g, float coef) {
    for (int l = 0; l < m->nlin; l++)
        for (size_t k = 0; k < (size_t)m->dim[l] * m->dim[l + 1]; k++) g->w[l][k] += coef * m->w[l][k];
}

static int ae_step(Trainer *tr, float *loss) {
    AeRun *r = tr->state;
    const Dataset *ds = &tr->task->train;
    const int B = r->B, d = r->d;
    /* The batch's rows first, each prefetched (random rows of the training split miss L1: the
     * copies then wait on all of them at once, not one after another). */
    for (int i = 0; i < B; i++) {
        int row = (int)rng_below(&tr->rng, (uint32_t)ds->n);
        if (tr->trace && tr->trace->batches) tr->trace->batches[(size_t)tr->step * B + i] = row;
        r->bidx[i] = row;
        const char *src = (const char *)(ds->x + (size_t)row * d);
        for (size_t o = 0; o < sizeof(float) * (size_t)d; o += 64) __builtin_prefetch(src + o);
    }
    for (int i = 0; i < B; i++) {
        float *dst = r->xb + (size_t)i * d;
        const float *src = ds->x + (size_t)r->bidx[i] * d;
        if (d == DIGITS_PIXELS) memcpy(dst, src, sizeof(float) * DIGITS_PIXELS); /* inlined: no call per row */
        else memcpy(dst, src, sizeof(float) * (size_t)d);
    }
    const float *lat = train_step_forward(tr, &r->enc, &r->ae, r->xb, B);
    ae_output(r, r->xh, train_step_forward(tr, &r->dec, &r->ad, lat, B), B);
    LossIn in = {.B = B, .t = tr->t, .z = r->xh, .x = r->xb};
    if (r->perc) {
        fixednet_perc_forward(r->net, r->pv, r->hx, r->hxh, r->xb, r->xh, B);
        in.sterm[TERM_PERC] = r->pv;
    }
    if (tr->use_l2) in.term[TERM_L2] = (float)(0.5 * (weights_sq(&r->enc) + weights_sq(&r->dec)));
    LossOut out;
    int rc = train_loss(tr, &in, &out);
    *loss = out.loss;
    if (rc != LD_OK) return LD_EFAILED;
    size_t n = (size_t)B * d;
    int fed = r->perc && out.g_sterm[TERM_PERC];
    if (r->sigmoid && !fed) {
        sigmoid_backward_g(r->dxh, out.dz, r->xh, n);
    } else {
        memcpy(r->dxh, out.dz, sizeof(float) * n);
        if (fed) fixednet_perc_backward(r->net, r->dxh, out.g_sterm[TERM_PERC], r->hx, r->hxh, r->scratch, B);
        if (r->sigmoid) sigmoid_backward(r->dxh, r->xh, n);
    }
    train_step_backward_dx(tr, &r->dec, &r->ad, &r->gdec, lat, r->dxh, r->dlat, B);
    train_step_backward(tr, &r->enc, &r->ae, &r->genc, r->xb, r->dlat, B);
    if (tr->use_l2 && out.g_term[TERM_L2] != 0) {
        weights_l2_grad(&r->enc, &r->genc, out.g_term[TERM_L2]);
        weights_l2_grad(&r->dec, &r->gdec, out.g_term[TERM_L2]);
    }
    return LD_OK;
}

/* Reconstruction mean squared error (per value) and the fixed classifier's accuracy on the
 * reconstructions (NaN without the fixed networks) over ds; mse or acc NULL: not computed (a
 * curve point before the last needs only the task's metric). */
static void ae_metrics(Trainer *tr, AeRun *r, const Dataset *ds, double *mse, double *acc) {
    double se = 0;
    int hit = 0;
    for (int i = 0; i < ds->n; i += EVAL_CHUNK) {
        int B = ds->n - i < EVAL_CHUNK ? ds->n - i : EVAL_CHUNK;
        const float *x = ds->x + (size_t)i * r->d;
        ae_reconstruct(tr, r, &r->ee, &r->ed, x, r->rec, B);
        if (mse) /* one chain of double additions in order: the same sum in every build */
            for (size_t k = 0; k < (size_t)B * r->d; k++) se += (double)(r->rec[k] - x[k]) * (r->rec[k] - x[k]);
        if (acc && r->net && ds->label) {
            fixednet_classify(r->net, r->cls, r->rec, r->scratch, B);
            for (int k = 0; k < B; k++) hit += r->cls[k] == ds->label[i + k];
        }
    }
    if (mse) *mse = se / ((double)ds->n * r->d);
    if (acc) *acc = r->net && ds->label ? (double)hit / ds->n : NAN;
}

static double ae_curve_val(Trainer *tr, int last) {
    AeRun *r = tr->state;
    double mse = NAN, acc = NAN;
    int by_acc = !strcmp(tr->task->metric, "rec_accuracy");
    ae_metrics(tr, r, last ? &tr->task->val : &r->vsample, last || !by_acc ? &mse : NULL,
               last || by_acc ? &acc : NULL);
    if (last) {
        r->have_val = 1;
        r->val_mse = mse;
        r->val_acc = acc;
    }
    return by_acc ? acc : mse;
}

static void ae_score(Trainer *tr, EvalResult *res) {
    AeRun *r = tr->state;
    double mv, av, mt, at;
    /* The last curve point scored these parameters on the whole validation split; a deployed
     * model's score (train_deploying) scores its own. */
    if (r->have_val && !train_deploying(tr)) {
        mv = r->val_mse;
        av = r->val_acc;
    } else
        ae_metrics(tr, r, &tr->task->val, &mv, &av);
    r->have_val = 0;
    ae_metrics(tr, r, &tr->task->test, &mt, &at);
    snprintf(res->extra[0].name, sizeof res->extra[0].name, "rec_mse");
    res->extra[0].val = mv;
    res->extra[0].test = mt;
    res->nextra = 1;
    if (r->net) {
        snprintf(res->extra[1].name, sizeof res->extra[1].name, "rec_accuracy");
        res->extra[1].val = av;
        res->extra[1].test = at;
        res->nextra = 2;
    }
}

const GenKind gen_autoencoder = {
    .name = "autoencoder",
    .inputs = LIN_AE,
    .metrics = {"rec_accuracy", "rec_mse", NULL},
    .loss_shape = ae_loss_shape,
    .run_bytes = ae_run_bytes,
    .setup = ae_setup,
    .step = ae_step,
    .curve_val = ae_curve_val,
    .score = ae_score,
};

/* ---- the search's probe batch (EvalFamily.probe) */

enum { PB = 8, PC = DIGITS_PIXELS, PH = 64 };

/* EvalProbe.fed_grad: perc's share of d loss / d xh, back through the fixed network's features
 * of the probe batch (gen_probe's layout), or through the squared distance that stands in for
 * perc without its file. */
static void gen_probe_fed_grad(const EvalProbe *b, const LossOut *o, float *dz) {
    const float *gp = o->g_sterm[TERM_PERC];
    if (!gp) return;
    int B = b->B;
    const float *z = b->z, *x = z + (size_t)B * PC, *hx = x + (size_t)B * PC + B, *hxh = hx + (size_t)B * PH;
    float scratch[2 * PB * PH]; /* the batch is shared by threads: the scratch is the caller's */
    const FixedNet *net = fixednet_get(NULL);
    if (net && net->d == PC && net->h <= PH) {
        fixednet_perc_backward(net, dz, gp, hx, hxh, scratch, B);
        return;
    }
    for (int i = 0; i < B; i++)
        for (int j = 0; j < PC; j++) dz[i * PC + j] += 2.0f * gp[i] * (z[i * PC + j] - x[i * PC + j]);
}

/* At most 8 rows of 64 pixels: x a third 0, a third 1, the rest uniform in [0, 1]; xh (z) uniform
 * in (0.05, 0.95); perc of each pair under the fixed digits network (the squared distance itself
 * when its file is missing). For the GAN kind's losses (LIN_GAN), each row also feeds the
 * discriminator's logits dx (real) and dgz (generated), N(0, sd^2): probe.c reads a GAN loss's
 * gradients in them on both sides (signature) and asks that it train one side the right way
 * (pre-check). One allocation, b->z, holds every buffer (the caller frees z). An autoencoder
 * loss's signature and pre-check read d loss / d xh with perc's share (fed_grad chains its
 * adjoint back through the fixed network's features of the batch). */
static int gen_probe(EvalProbe *b, unsigned in, int B, int C, float sd, float l2, LdRng *r, char *err) {
    (void)C;
    if (B > PB) B = PB;
    memset(b, 0, sizeof *b);
    float *mem = calloc((size_t)B * (2 * PC + 1 + 2 * PH + 2), sizeof(float));
    if (!mem) return err ? ld_err(err, LD_ENOMEM, "probe: out of memory") : LD_ENOMEM;
    float *z = mem, *x = z + (size_t)B * PC, *perc = x + (size_t)B * PC, *hx = perc + B, *hxh = hx + (size_t)B * PH;
    float *adv = hxh + (size_t)B * PH; /* (2, B): dx, dgz */
    for (int k = 0; k < B * PC; k++) {
        uint32_t c = rng_below(r, 3);
        x[k] = c == 0 ? 0.0f : c == 1 ? 1.0f : (float)rng_uniform(r);
        z[k] = 0.05f + 0.9f * (float)rng_uniform(r);
    }
    const FixedNet *net = fixednet_get(NULL);
    if (net && net->d == PC && net->h <= PH) {
        fixednet_perc_forward(net, perc, hx, hxh, x, z, B);
    } else {
        for (int i = 0; i < B; i++) {
            perc[i] = 0;
            for (int j = 0; j < PC; j++) perc[i] += (z[i * PC + j] - x[i * PC + j]) * (z[i * PC + j] - x[i * PC + j]);
        }
    }
    b->B = B;
    b->C = PC;
    b->z = z;
    b->in = (LossIn){.B = B, .t = 0.5f, .z = z, .x = x, .term[TERM_L2] = l2};
    b->in.sterm[TERM_PERC] = perc;
    b->fed_grad = gen_probe_fed_grad;
    if (in & LIN_GAN) {
        for (int k = 0; k < 2 * B; k++) adv[k] = sd * rng_normal(r);
        b->in.var[VAR_DX] = adv;
        b->in.var[VAR_DGZ] = adv + B;
    }
    return LD_OK;
}

/* ---- the family */

static const EvalSpecKey gen_keys[] = {
    {"model", "kind", SK_STR, 0, 0},       /* autoencoder (default) or gan */
    {"model", "latent", SK_INT, 1, 1024},  /* autoencoder: bottleneck units */
    {"model", "noise", SK_INT, 1, 1024},   /* gan: generator noise dims */
    {"train", "d_steps", SK_INT, 1, 100},  /* gan: discriminator steps per generator step */
    {"transform", "scale", SK_STR, 0, 0},  /* none (default) or minmax: features to [0, 1] */
    {"", "gan", SK_OBJ, 0, 0},             /* the gan kind's own settings (gan.c) */
    {"gan", "train", SK_STR, 0, 0},        /* generator, discriminator or both: what the task's loss trains */
    {"gan", "other", SK_STR, 0, 0},        /* the other side's adversarial term (default nsgan) */
    {"gan", "clip", SK_NUM, 0, 1},         /* wgan: the critic's weight clip (default 0.01; 0: none) */
    {"gan", "gp", SK_NUM, 0, 1000},        /* wgan: the critic's gradient penalty weight (0, default: the clip) */
    {NULL, NULL, 0, 0, 0},
};

/* The textbook losses the search's first population tries, those a task's model kind reads:
 * the autoencoder's, the GAN's and the GAN's with a reconstruction term (pix2pix's L1 + GAN in
 * its squared form; a GAN task reads both kinds' inputs). */
static const char *const gen_known[] = {"bce_rec", "rec + 0.1*perc", "0.5*rec + 0.5*bce_rec", "perc + rec",
                                        "gan", "hinge_gan", "wgan", "0.5*nsgan + 0.5*hinge_gan",
                                        "nsgan + 10*rec", NULL};
static const char *const gen_panel[] = {"rec", "bce_rec", "perc", NULL};

const EvalFamily family_generative = {
    .name = "generative",
    .metrics = {{"rec_accuracy", 1}, {"rec_mse", 0}, {"fid", 0}, {"coverage", 1}},
    .baseline = "rec",
    .known = gen_known,
    .panel = gen_panel,
    .data_set = 1,
    .classify = 1,
    .raw = 1,
    .keys = gen_keys,
    .load = gen_load,
    .unload = gen_unload,
    .rng_salt = 0x9e4a,
    .lr_schedule = TRAIN_LR_CONSTANT,
    .loss_shape = gen_loss_shape,
    .run_bytes = gen_run_bytes,
    .setup = gen_setup,
    .step = gen_step,
    .curve_val = gen_curve_val,
    .score = gen_score,
    .probe = gen_probe,
    .check_loss = gen_check_loss,
    .task_inputs = gen_task_inputs,
    .task_baseline = gen_task_baseline,
    .task_refused = gen_task_refused,
    .deploy = FAMILY_DEPLOY_PTQ | FAMILY_DEPLOY_QAT, /* the autoencoder's encoder and decoder, the GAN's generator */
};
