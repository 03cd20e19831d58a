/* gan.c: the generative family's "gan" model kind (docs/families.md, "GANs"): an MLP generator
 * from model.noise Gaussian dims to the data's pixels and an MLP discriminator giving one logit,
 * two parameter groups of the one trainer trained in alternation (train.d_steps discriminator
 * updates per generator update) on losses over the discriminator's logits dx (real) and dgz
 * (generated), scored on held-out samples by a Frechet distance in the fixed digits network's
 * feature space (an FID analogue) and the fixed classifier's class coverage. A loss that also
 * reads the reconstruction inputs (x, xh, rec, bce_rec, perc: `nsgan + 10*rec`) adds an encoder
 * E from the pixels to the noise space: xh = G(E(x)) on the real rows, the generator and the
 * encoder trained together on that loss (the autoencoder + GAN hybrid of VAE-GAN and pix2pix's
 * L1 + GAN; docs/families.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixednet.h"
#include "generative.h"

#define GAN_CHUNK 128            /* generated rows per forward when scoring */

/* Which side the task's loss (the searched expression) trains: gan.train. */
enum { GAN_TRAIN_G = 1, GAN_TRAIN_D = 2, GAN_TRAIN_BOTH = 3 };

/* The kind's settings (the spec's "gan" object; GenTask.own). */
typedef struct GanSpec {
    int train;  /* GAN_TRAIN_*: the sides the task's loss trains */
    int other;  /* TERM_*: the adversarial term the other side trains with (gan.other) */
    float clip; /* the discriminator's weights are clipped to [-clip, clip] after each of its
                   updates when its loss reads wgan (0: never) */
    float gp;   /* WGAN-GP: when its loss reads wgan, the critic's loss adds gp times the gradient
                   penalty (mlp_grad_penalty) instead of the clip (0: the clip) */
} GanSpec;

static const struct {
    const char *name;
    int train;
} gan_sides[] = {{"generator", GAN_TRAIN_G}, {"discriminator", GAN_TRAIN_D}, {"both", GAN_TRAIN_BOTH}};
static const struct {
    const char *name;
    int term;
} gan_terms[] = {{"nsgan", TERM_NSGAN}, {"gan", TERM_GAN}, {"wgan", TERM_WGAN}, {"hinge_gan", TERM_HINGE_GAN}};

/* ---- loading */

static int gan_load(Task *t, const cJSON *spec, char *err) {
    GenTask *g = gen_task(t);
    if (!g->digits)
        return ld_err(err, LD_EINVAL, "task: model.kind \"gan\" is scored in the fixed digits network's features "
                                      "(fid, coverage): it needs 64 features in [0, 1] (builtin:digits), this data "
                                      "has %d%s",
                      t->train.d, g->unit ? "" : " and values outside [0, 1]");
    GanSpec *s = calloc(1, sizeof *s);
    if (!s) return ld_err(err, LD_ENOMEM, "task: out of memory");
    *s = (GanSpec){.train = GAN_TRAIN_G, .other = TERM_NSGAN, .clip = 0.01f};
    g->own = s;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(spec, "gan");
    const char *side = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "train"));
    const char *other = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "other"));
    const cJSON *clip = cJSON_GetObjectItemCaseSensitive(o, "clip");
    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(o, "gp");
    if (side) {
        size_t i = 0;
        while (i < sizeof gan_sides / sizeof gan_sides[0] && strcmp(side, gan_sides[i].name)) i++;
        if (i == sizeof gan_sides / sizeof gan_sides[0])
            return ld_err(err, LD_EINVAL, "task: gan.train: '%.64s' is not a side; the task's loss trains the "
                                          "\"generator\" (default), the \"discriminator\" or \"both\"", side);
        s->train = gan_sides[i].train;
    }
    if (other) {
        size_t i = 0;
        while (i < sizeof gan_terms / sizeof gan_terms[0] && strcmp(other, gan_terms[i].name)) i++;
        if (i == sizeof gan_terms / sizeof gan_terms[0])
            return ld_err(err, LD_EINVAL, "task: gan.other: '%.64s' is not an adversarial term (nsgan, gan, wgan "
                                          "or hinge_gan)", other);
        if (s->train == GAN_TRAIN_BOTH)
            return ld_err(err, LD_EINVAL, "task: gan.other: with gan.train \"both\" the task's loss trains both "
                                          "sides; gan.other names the other side's loss when it trains one");
        s->other = gan_terms[i].term;
    }
    if (cJSON_IsNumber(clip)) s->clip = (float)clip->valuedouble; /* range: spec_check */
    if (cJSON_IsNumber(gp)) s->gp = (float)gp->valuedouble;
    /* The kind's defaults (the spec's model and train keys override them after this). */
    t->model.nhidden = 1;
    t->model.hidden[0] = 64;
    t->model.act = ACT_RELU;
    t->train_spec.steps = 1000;
    t->train_spec.lr = 1e-3f;
    t->train_spec.beta1 = 0.5f; /* DCGAN's Adam: a first moment of 0.9 makes the two sides circle */
    return LD_OK;
}

static void gan_unload(Task *t) {
    GenTask *g = gen_task(t);
    free(g->own);
    g->own = NULL;
}

/* ---- a run's state, in the trainer's arena */

typedef struct GanRun {
    const GenTask *g;
    const GanSpec *s;
    const FixedNet *net;
    int B, P, NZ, N, H, K; /* batch, pixels, noise dims, scoring rows (the larger split), features, classes */
    int clip;              /* the discriminator's loss reads wgan: clip after its updates */
    int gp;                /* ... with gan.gp: the gradient penalty instead */
    int rec, rec_d;        /* the generator's / the discriminator's loss reads the reconstruction
                              inputs: its batches add B reconstructions G(E(x)) of the real rows
                              (rec: the encoder trains with the generator) */
    int perc;              /* the task's loss reads perc */
    Mlp gen, enc, dis, ggen, genc, gdis, gdis2;
    MlpActs ag, ae, adr, adg, ac, ap; /* generator (2B: noise rows, then encoded rows), encoder (B),
                                         discriminator on real and generated (B), generator (chunk),
                                         discriminator on the penalty's interpolates (B) */
    float *params_g, *grads_g, *params_d, *grads_d, *grads_d2; /* _g: the generator's, then the encoder's */
    float *xr, *xg, *zn, *dxg, *dzn; /* (B, P); (2B, P) generated rows then reconstructions; (2B, NZ)
                                        the generator's inputs: noise, then E(xr); (2B, P); (2B, NZ) */
    float *pv, *hx, *hxh, *pscratch; /* perc (B), fixed features of x and xh (B, H), 2 B H */
    float *gdx, *gdgz, *zeros;       /* (B) */
    float *zc;                       /* (GAN_CHUNK, NZ) */
    float *zcal;                     /* (GAN_CALIB, NZ) the generator's int8 calibration noise */
    float *xi, *gpbuf;               /* gan.gp: interpolates (B, P), mlp_grad_penalty's buffer */
    float *fr, *fg, *gen_rows;       /* (N, H) real and generated features; (N, P) generated samples */
    float *scratch;                  /* (GAN_CHUNK, H + K) */
    int *cls, *bidx;                 /* (N), (B) */
    double *mr, *mg, *cr, *cg, *work; /* (H) means; (H, H) covariances; 4 (H, H) work */
} GanRun;

static void *take(LdArena *a, size_t *need, size_t bytes) {
    *need += train_al64(bytes);
    return a ? arena_alloc(a, bytes) : NULL;
}

static ModelSpec gen_spec(const Task *t) { return t->model; }

/* Sizes (a NULL) or lays out r for task t. */
static void gan_layout(GanRun *r, const Task *t, LdArena *a, size_t *need) {
    const GenTask *g = gen_task(t);
    r->g = g;
    r->s = g->own;
    r->B = t->train_spec.batch;
    r->P = t->train.d;
    r->NZ = g->noise;
    r->N = t->val.n > t->test.n ? t->val.n : t->test.n;
    r->H = r->net ? r->net->h : 32;
    r->K = r->net ? r->net->k : 10;
    ModelSpec ms = gen_spec(t);
    mlp_bind(&r->gen, &ms, r->NZ, r->P, NULL);
    mlp_bind(&r->enc, &ms, r->P, r->NZ, NULL);
    mlp_bind(&r->dis, &ms, r->P, 1, NULL);
    size_t Pg = r->gen.nparams + r->enc.nparams, Pd = r->dis.nparams;
    int B = r->B, P = r->P, N = r->N, H = r->H;
#define F(n) take(a, need, sizeof(float) * (size_t)(n))
#define DB(n) take(a, need, sizeof(double) * (size_t)(n))
    r->params_g = F(Pg);
    r->grads_g = F(Pg);
    r->params_d = F(Pd);
    r->grads_d = F(Pd);
    r->grads_d2 = F(Pd);
    float *mg = F(mlp_acts_floats(&r->gen, 2 * B)), *mr = F(mlp_acts_floats(&r->dis, B));
    float *mgz = F(mlp_acts_floats(&r->dis, B)), *mc = F(mlp_acts_floats(&r->gen, GAN_CHUNK));
    float *me = F(mlp_acts_floats(&r->enc, B)), *mp = F(mlp_acts_floats(&r->dis, B));
    r->xi = F((size_t)B * P);
    r->gpbuf = F(mlp_grad_penalty_floats(&r->dis, B));
    r->xr = F((size_t)B * P);
    r->xg = F((size_t)2 * B * P);
    r->zn = F((size_t)2 * B * r->NZ);
    r->dxg = F((size_t)2 * B * P);
    r->dzn = F((size_t)2 * B * r->NZ);
    r->pv = F(B);
    r->hx = F((size_t)B * H);
    r->hxh = F((size_t)B * H);
    r->pscratch = F((size_t)2 * B * H);
    r->gdx = F(B);
    r->gdgz = F(B);
    r->zeros = F(B);
    r->zc = F((size_t)GAN_CHUNK * r->NZ);
    r->zcal = F((size_t)GAN_CALIB * r->NZ);
    r->fr = F((size_t)N * H);
    r->fg = F((size_t)N * H);
    r->gen_rows = F((size_t)N * P);
    r->scratch = F((size_t)GAN_CHUNK * (H + r->K));
    r->cls = take(a, need, sizeof(int) * (size_t)N);
    r->bidx = take(a, need, sizeof(int) * (size_t)B);
    r->mr = DB(H);
    r->mg = DB(H);
    r->cr = DB((size_t)H * H);
    r->cg = DB((size_t)H * H);
    r->work = DB((size_t)4 * H * H);
#undef F
#undef DB
    if (!a || !r->work) return;
    mlp_bind(&r->gen, &ms, r->NZ, P, r->params_g);
    mlp_bind(&r->enc, &ms, P, r->NZ, r->params_g + r->gen.nparams);
    mlp_bind(&r->dis, &ms, P, 1, r->params_d);
    mlp_bind_like(&r->ggen, &r->gen, r->grads_g);
    mlp_bind_like(&r->genc, &r->enc, r->grads_g + r->gen.nparams);
    mlp_bind_like(&r->gdis, &r->dis, r->grads_d);
    mlp_bind_like(&r->gdis2, &r->dis, r->grads_d2);
    mlp_acts_bind(&r->ag, &r->gen, 2 * B, mg);
    mlp_acts_bind(&r->ae, &r->enc, B, me);
    mlp_acts_bind(&r->adr, &r->dis, B, mr);
    mlp_acts_bind(&r->adg, &r->dis, B, mgz);
    mlp_acts_bind(&r->ac, &r->gen, GAN_CHUNK, mc);
    mlp_acts_bind(&r->ap, &r->dis, B, mp);
}

static void gan_loss_shape(const Task *t, int *B, int *C, int *D) {
    *B = t->train_spec.batch;
    *C = t->train.d; /* x and xh of a loss that reads the reconstruction inputs; dx, dgz are per row */
    *D = 0;
}

static size_t gan_run_bytes(const Task *t, size_t *nparams) {
    GanRun r;
    memset(&r, 0, sizeof r);
    size_t need = train_al64(sizeof(GanRun));
    gan_layout(&r, t, NULL, &need);
    *nparams = r.gen.nparams + r.enc.nparams + r.dis.nparams;
    return need;
}

static int gan_setup(Trainer *tr, char *err) {
    const Task *t = tr->task;
    const FixedNet *net = fixednet_get(err);
    if (!net) return LD_EINVAL;
    GanRun *r = arena_alloc(&tr->arena, sizeof *r);
    if (!r) return ld_err(err, LD_ENOMEM, "gan: arena too small (internal sizing error)");
    memset(r, 0, sizeof *r);
    r->net = net;
    size_t need = 0;
    gan_layout(r, t, &tr->arena, &need);
    if (!r->work) return ld_err(err, LD_ENOMEM, "gan: arena too small (internal sizing error)");
    mlp_init(&r->gen, tr->seed);
    mlp_init(&r->dis, ld_mix64(tr->seed, 0xd15c));
    /* the discriminator trains on the task's loss only when gan.train names it */
    int d_on_task = r->s->train & GAN_TRAIN_D, reads_rec = (tr->loss.inputs & LIN_AE) != 0;
    int wgan_d = d_on_task ? (tr->loss.terms >> TERM_WGAN) & 1u : r->s->other == TERM_WGAN;
    r->gp = r->s->gp > 0 && wgan_d;
    r->clip = r->s->clip > 0 && wgan_d && !r->gp;
    if (r->gp && t->model.act != ACT_RELU)
        return ld_err(err, LD_EINVAL, "gan: gan.gp: the gradient penalty is computed for relu hidden layers "
                                      "(model.activation \"relu\", the default)");
    r->rec = reads_rec && (r->s->train & GAN_TRAIN_G);
    r->rec_d = reads_rec && d_on_task;
    r->perc = (tr->loss.terms >> TERM_PERC) & 1u;
    if (r->rec) mlp_init(&r->enc, ld_mix64(tr->seed, 0xe9c0));
    tr->state = r;
    /* the generator's group holds the encoder only when it trains (a loss without reconstruction
     * terms steps exactly what it did before the encoder existed) */
    /* deployed: the generator, calibrated on noise drawn as training draws it */
    LdRng crng;
    rng_seed(&crng, GAN_CALIB_SEED);
    for (size_t k = 0; k < (size_t)GAN_CALIB * r->NZ; k++) r->zcal[k] = rng_normal(&crng);
    int rc = train_deployable(tr, &r->gen, r->zcal, GAN_CALIB, GAN_CHUNK, 2 * r->B, err);
    if (!rc)
        rc = train_group(tr, r->params_g, r->grads_g, r->gen.nparams + (r->rec ? r->enc.nparams : 0), NULL, err);
    if (!rc) rc = train_group(tr, r->params_d, r->grads_d, r->dis.nparams, NULL, err);
    if (!rc) tr->group[1].manual = 1; /* stepped d_steps times inside each generator step */
    return rc;
}

/* ---- training */

/* The generator's forward: train_step_forward in training, train_forward when scoring. */
typedef const float *(*GanForward)(Trainer *tr, const Mlp *m, MlpActs *a, const float *x, int B);

/* Samples (B, P) generated rows into x from fresh noise z: the generator's outputs (through fwd),
 * through a sigmoid (the pixels are in [0, 1]). */
static void generate(Trainer *tr, GanRun *r, GanForward fwd, MlpActs *acts, float *x, float *z, int B, LdRng *rng) {
    for (size_t k = 0; k < (size_t)B * r->NZ; k++) z[k] = rng_normal(rng);
    const float *o = fwd(tr, &r->gen, acts, z, B);
    for (size_t k = 0; k < (size_t)B * r->P; k++) x[k] = 1.0f / (1.0f + expf(-o[k]));
}

/* The generator's training forward: B rows from fresh noise into xg (as generate), and with
 * rec B more, the reconstructions G(E(xr)) of the real batch, into xg + B P (the encoder's
 * outputs in zn + B NZ; one forward of the generator over 2B rows). */
static void generate_batch(Trainer *tr, GanRun *r, int rec, LdRng *rng) {
    const int B = r->B;
    if (!rec) {
        generate(tr, r, train_step_forward, &r->ag, r->xg, r->zn, B, rng);
        return;
    }
    for (size_t k = 0; k < (size_t)B * r->NZ; k++) r->zn[k] = rng_normal(rng);
    memcpy(r->zn + (size_t)B * r->NZ, mlp_forward(&r->enc, &r->ae, r->xr, B), sizeof(float) * (size_t)B * r->NZ);
    const float *o = train_step_forward(tr, &r->gen, &r->ag, r->zn, 2 * B);
    for (size_t k = 0; k < (size_t)2 * B * r->P; k++) r->xg[k] = 1.0f / (1.0f + expf(-o[k]));
}

static void real_batch(GanRun *r, const Dataset *d, LdRng *rng) {
    for (int i = 0; i < r->B; i++)
        memcpy(r->xr + (size_t)i * r->P, d->x + (size_t)rng_below(rng, (uint32_t)d->n) * r->P,
               sizeof(float) * (size_t)r->P);
}

/* The l2 term of MLP m, as every family computes it (train.h): 0.5 * the sum of its squared
 * weights (biases excluded). */
static double mlp_l2(const Mlp *m) {
    double sum = 0;
    for (int l = 0; l < m->nlin; l++) sum = train_l2_add(sum, m->w[l], (size_t)m->dim[l] * m->dim[l + 1]);
    return 0.5 * sum;
}

/* Adds coef * w to g's weights (the l2 term's gradient; coef: LossOut.g_term[TERM_L2]). */
static void mlp_l2_backward(const Mlp *m, Mlp *g, float coef) {
    for (int l = 0; l < m->nlin; l++) train_l2_backward(g->w[l], m->w[l], (size_t)m->dim[l] * m->dim[l + 1], coef);
}

/* The loss of side on the batch's logits dx, dgz: the task's loss when it trains that side
 * (gan.train), else the other side's adversarial term (gan.other). Its adjoints for dx and dgz in
 * *gx and *gz (zeros where the loss does not read one), and in *l2c the l2 term's (l2: the term's
 * value, the trained side's networks'). xh: the reconstructions (B, P) of the real batch r->xr
 * when the loss reads them (x, xh, rec, bce_rec, perc), else NULL; then dxh, when not NULL,
 * gets d loss / d xh (B, P), perc's share chained through the fixed network. LD_OK, or
 * LD_EFAILED with the loss in *loss. */
static int side_loss(Trainer *tr, GanRun *r, int side, const float *dx, const float *dgz, const float *xh,
                     float *dxh, double l2, float *loss, const float **gx, const float **gz, float *l2c) {
    int bit = side == LOSS_SIDE_G ? GAN_TRAIN_G : GAN_TRAIN_D;
    *l2c = 0;
    if (!(r->s->train & bit)) {
        *gx = r->gdx;
        *gz = r->gdgz;
        return lossprog_adversarial(r->s->other, side, dx, dgz, r->B, loss, r->gdx, r->gdgz);
    }
    LossIn in = {.B = r->B, .t = tr->t, .side = side};
    in.var[VAR_DX] = dx;
    in.var[VAR_DGZ] = dgz;
    if (xh) {
        in.x = r->xr;
        in.z = xh;
        if (r->perc) {
            fixednet_perc_forward(r->net, r->pv, r->hx, r->hxh, r->xr, xh, r->B);
            in.sterm[TERM_PERC] = r->pv;
        }
    }
    if (tr->use_l2) in.term[TERM_L2] = (float)l2;
    LossOut out;
    int rc = train_loss(tr, &in, &out);
    *loss = out.loss;
    *gx = out.g_var[VAR_DX] ? out.g_var[VAR_DX] : r->zeros;
    *gz = out.g_var[VAR_DGZ] ? out.g_var[VAR_DGZ] : r->zeros;
    if (tr->use_l2) *l2c = out.g_term[TERM_L2];
    if (rc == LD_OK && xh && dxh) {
        size_t n = (size_t)r->B * r->P;
        if (out.dz) memcpy(dxh, out.dz, sizeof(float) * n);
        else memset(dxh, 0, sizeof(float) * n);
        if (r->perc && out.g_sterm[TERM_PERC])
            fixednet_perc_backward(r->net, dxh, out.g_sterm[TERM_PERC], r->hx, r->hxh, r->pscratch, r->B);
    }
    return rc;
}

/* One discriminator update on a real and a generated batch: its loss, the gradients of both
 * forwards (the real rows' into grads_d, the generated rows' added from grads_d2), the
 * optimiser's step and the clip. */
static int d_update(Trainer *tr, GanRun *r, float *loss) {
    const int B = r->B;
    real_batch(r, &tr->task->train, &tr->rng);
    generate_batch(tr, r, r->rec_d, &tr->rng);
    const float *dx = mlp_forward(&r->dis, &r->adr, r->xr, B);
    const float *dgz = mlp_forward(&r->dis, &r->adg, r->xg, B);
    const float *gx, *gz, *xh = r->rec_d ? r->xg + (size_t)B * r->P : NULL;
    float l2c;
    if (side_loss(tr, r, LOSS_SIDE_D, dx, dgz, xh, NULL, tr->use_l2 ? mlp_l2(&r->dis) : 0, loss, &gx, &gz, &l2c) !=
        LD_OK)
        return LD_EFAILED;
    mlp_backward(&r->dis, &r->adr, &r->gdis, r->xr, gx, B);
    mlp_backward(&r->dis, &r->adg, &r->gdis2, r->xg, gz, B);
    for (size_t k = 0; k < r->dis.nparams; k++) r->grads_d[k] += r->grads_d2[k];
    if (r->gp) { /* WGAN-GP: the penalty on x~ = e x + (1 - e) G(z) per row, e ~ U(0, 1) */
        for (int i = 0; i < B; i++) {
            float e = (float)rng_uniform(&tr->rng);
            for (int p = 0; p < r->P; p++) {
                size_t k = (size_t)i * r->P + p;
                r->xi[k] = e * r->xr[k] + (1.0f - e) * r->xg[k];
            }
        }
        *loss += (float)mlp_grad_penalty(&r->dis, &r->ap, &r->gdis2, &r->gdis, r->xi, B, r->s->gp, r->gpbuf);
    }
    if (l2c != 0) mlp_l2_backward(&r->dis, &r->gdis, l2c);
    train_group_step(tr, 1);
    if (r->clip) {
        float c = r->s->clip;
        for (size_t k = 0; k < r->dis.nparams; k++)
            r->params_d[k] = r->params_d[k] > c ? c : r->params_d[k] < -c ? -c : r->params_d[k];
    }
    return LD_OK;
}

/* One generator step: train.d_steps discriminator updates, then the generator's gradient
 * through the updated discriminator (dgz back through its input, the sigmoid and the
 * generator), with rec also the reconstructions' (d loss / d xh back through the sigmoid, the
 * generator and the encoder: one backward of the generator over its 2B rows); the trainer steps
 * the generator's group (generator and encoder). The step's loss is the task's loss: the
 * generator's when gan.train names it, else the mean of the discriminator's. */
static int gan_step(Trainer *tr, float *loss) {
    GanRun *r = tr->state;
    const int B = r->B, P = r->P;
    double dsum = 0;
    for (int k = 0; k < r->g->d_steps; k++) {
        float dl = NAN;
        if (d_update(tr, r, &dl) != LD_OK) {
            *loss = dl;
            return LD_EFAILED;
        }
        dsum += dl;
    }
    real_batch(r, &tr->task->train, &tr->rng);
    generate_batch(tr, r, r->rec, &tr->rng);
    const float *dx = mlp_forward(&r->dis, &r->adr, r->xr, B);
    const float *dgz = mlp_forward(&r->dis, &r->adg, r->xg, B);
    const float *gx, *gz, *xh = r->rec ? r->xg + (size_t)B * P : NULL;
    float gl = NAN, l2c;
    double l2 = tr->use_l2 ? mlp_l2(&r->gen) + (r->rec ? mlp_l2(&r->enc) : 0) : 0;
    int rc = side_loss(tr, r, LOSS_SIDE_G, dx, dgz, xh, r->dxg + (size_t)B * P, l2, &gl, &gx, &gz, &l2c);
    *loss = (r->s->train & GAN_TRAIN_G) ? gl : (float)(dsum / r->g->d_steps);
    if (rc != LD_OK) {
        *loss = gl;
        return LD_EFAILED;
    }
    int rows = r->rec ? 2 * B : B;
    mlp_backward_dx(&r->dis, &r->adg, &r->gdis2, r->xg, gz, r->dxg, B);
    for (size_t k = 0; k < (size_t)rows * P; k++) r->dxg[k] *= r->xg[k] * (1.0f - r->xg[k]);
    if (r->rec) {
        train_step_backward_dx(tr, &r->gen, &r->ag, &r->ggen, r->zn, r->dxg, r->dzn, rows);
        mlp_backward(&r->enc, &r->ae, &r->genc, r->xr, r->dzn + (size_t)B * r->NZ, B);
    } else {
        train_step_backward(tr, &r->gen, &r->ag, &r->ggen, r->zn, r->dxg, B);
    }
    if (l2c != 0) {
        mlp_l2_backward(&r->gen, &r->ggen, l2c);
        if (r->rec) mlp_l2_backward(&r->enc, &r->genc, l2c);
    }
    return LD_OK;
}

/* ---- scoring */

/* Eigenvalues of the symmetric (n, n) matrix a (destroyed) into w (n), eigenvectors as the
 * columns of v (n, n): cyclic Jacobi rotations until the off-diagonal mass is below 1e-24 of
 * the total (at most 100 sweeps; n is the feature width, 32). */
static void sym_eigen(double *a, double *w, double *v, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) v[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, all = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                all += a[i * n + j] * a[i * n + j];
                if (i != j) off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-24 * all || off == 0) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) w[i] = a[i * n + i];
}

/* Mean m (H) and covariance c (H, H; divided by n - 1, as numpy.cov) of the n rows of f (n, H). */
static void moments(const float *f, int n, int H, double *m, double *c) {
    for (int j = 0; j < H; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += f[(size_t)i * H + j];
        m[j] = s / n;
    }
    for (int j = 0; j < H; j++)
        for (int k = j; k < H; k++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (f[(size_t)i * H + j] - m[j]) * (f[(size_t)i * H + k] - m[k]);
            c[j * H + k] = c[k * H + j] = s / (n > 1 ? n - 1 : 1);
        }
}

/* The Frechet distance between Gaussians N(m1, c1) and N(m2, c2) in H dims (H <= 64):
 * |m1 - m2|^2 + tr c1 + tr c2 - 2 tr (c1^1/2 c2 c1^1/2)^1/2, the trace of the square root as the
 * sum of the square roots of that symmetric matrix's eigenvalues (negative ones, from rounding,
 * count as 0). work: 4 H^2 doubles; c1 and c2 are kept. Exposed for tests/test_gan.c. */
double gan_frechet(const double *m1, const double *c1, const double *m2, const double *c2, int H, double *work);
double gan_frechet(const double *m1, const double *c1, const double *m2, const double *c2, int H, double *work) {
    double ev[64], d = 0;
    if (H > 64) return NAN;
    double *a = work, *v = work + H * H, *r = work + 2 * H * H, *t = work + 3 * H * H;
    for (int j = 0; j < H; j++) d += (m1[j] - m2[j]) * (m1[j] - m2[j]) + c1[j * H + j] + c2[j * H + j];
    memcpy(a, c1, sizeof(double) * (size_t)H * H);
    sym_eigen(a, ev, v, H);
    for (int j = 0; j < H; j++) ev[j] = sqrt(ev[j] > 0 ? ev[j] : 0);
    for (int i = 0; i < H; i++) /* r = V diag(sqrt l) V^T */
        for (int j = 0; j < H; j++) {
            double s = 0;
            for (int k = 0; k < H; k++) s += v[i * H + k] * ev[k] * v[j * H + k];
            r[i * H + j] = s;
        }
    for (int i = 0; i < H; i++) /* t = r c2 */
        for (int j = 0; j < H; j++) {
            double s = 0;
            for (int k = 0; k < H; k++) s += r[i * H + k] * c2[k * H + j];
            t[i * H + j] = s;
        }
    for (int i = 0; i < H; i++) /* a = t r, symmetrised against rounding */
        for (int j = 0; j < H; j++) {
            double s = 0;
            for (int k = 0; k < H; k++) s += t[i * H + k] * r[k * H + j];
            a[i * H + j] = s;
        }
    for (int i = 0; i < H; i++)
        for (int j = 0; j < i; j++) a[i * H + j] = a[j * H + i] = 0.5 * (a[i * H + j] + a[j * H + i]);
    sym_eigen(a, ev, v, H);
    double tr = 0;
    for (int j = 0; j < H; j++) tr += sqrt(ev[j] > 0 ? ev[j] : 0);
    return d - 2 * tr;
}

/* Scores the generator on split d (rows n): n samples from the scoring noise of this split (the
 * same for every run), their fixed-network features against the split's, the Frechet distance
 * into *fid and the fixed classifier's class coverage into *cov: the share of the K classes
 * that get at least half the uniform share (1/(2K)) of the generated samples. */
static void gan_metrics(Trainer *tr, GanRun *r, const Dataset *d, int test, double *fid, double *cov) {
    const int n = d->n, P = r->P, H = r->H, K = r->K;
    LdRng rng;
    rng_seed(&rng, ld_mix64(GAN_SCORE_SEED, (uint64_t)test));
    int counts[64] = {0};
    for (int c0 = 0; c0 < n; c0 += GAN_CHUNK) {
        int m = n - c0 < GAN_CHUNK ? n - c0 : GAN_CHUNK;
        float *x = r->gen_rows + (size_t)c0 * P;
        generate(tr, r, train_forward, &r->ac, x, r->zc, m, &rng);
        fixednet_features(r->net, r->fg + (size_t)c0 * H, x, m);
        fixednet_features(r->net, r->fr + (size_t)c0 * H, d->x + (size_t)c0 * P, m);
        fixednet_classify(r->net, r->cls, x, r->scratch, m);
        for (int i = 0; i < m; i++)
            if (r->cls[i] >= 0 && r->cls[i] < 64) counts[r->cls[i]]++;
    }
    moments(r->fr, n, H, r->mr, r->cr);
    moments(r->fg, n, H, r->mg, r->cg);
    *fid = gan_frechet(r->mr, r->cr, r->mg, r->cg, H, r->work);
    int covered = 0;
    for (int k = 0; k < K && k < 64; k++) covered += counts[k] * 2 * K >= n;
    *cov = (double)covered / K;
}

static double gan_curve_val(Trainer *tr, int last) {
    GanRun *r = tr->state;
    double fid, cov;
    gan_metrics(tr, r, &tr->task->val, 0, &fid, &cov);
    return !strcmp(tr->task->metric, "coverage") ? cov : fid;
}

static void gan_score(Trainer *tr, EvalResult *res) {
    GanRun *r = tr->state;
    double fv, cv, ft, ct;
    gan_metrics(tr, r, &tr->task->val, 0, &fv, &cv);
    gan_metrics(tr, r, &tr->task->test, 1, &ft, &ct);
    snprintf(res->extra[0].name, sizeof res->extra[0].name, "fid");
    res->extra[0].val = fv;
    res->extra[0].test = ft;
    snprintf(res->extra[1].name, sizeof res->extra[1].name, "coverage");
    res->extra[1].val = cv;
    res->extra[1].test = ct;
    res->nextra = 2;
    if (!isfinite(fv) || !isfinite(ft)) {
        res->ok = 0;
        snprintf(res->error, sizeof res->error, "the generated samples' features are not finite");
    }
}

const GenKind gen_gan = {
    .name = "gan",
    .inputs = LIN_GAN | LIN_AE,
    .baseline = "nsgan",
    .metrics = {"fid", "coverage", NULL},
    .load = gan_load,
    .unload = gan_unload,
    .loss_shape = gan_loss_shape,
    .run_bytes = gan_run_bytes,
    .setup = gan_setup,
    .step = gan_step,
    .curve_val = gan_curve_val,
    .score = gan_score,
};
