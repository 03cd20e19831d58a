/* probe.c: cheap looks at a loss before the search spends a training run on it: its gradient
 * signature on a fixed probe batch (to spot losses that behave alike) and a precheck that
 * optimises the predictions directly and asks whether the task's metric gets better. The probe
 * batches are the family's (EvalFamily.probe); eval_probe_std is the built-in families' one. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lossd.h"
#include "../lang/lossprog.h"
#include "family.h"
#include "rollout.h"

#define PROBE_SEED 0x9e0be5eedULL
#define PROBE_B 32
#define PROBE_D 8
#define PRE_B 64
#define PRE_STEPS 50
#define PRE_LR 0.1f

/* One family's probe inputs: the family's hook (EvalFamily.probe) filled p; probe.c frees it. */
typedef struct Batch {
    int fam;
    EvalProbe p;
} Batch;

static void batch_free(Batch *b) {
    free(b->p.z);
    free(b->p.y);
    free(b->p.emb);
    free(b->p.label);
    free(b->p.fed);
    memset(&b->p, 0, sizeof b->p);
}

int eval_probe_std(EvalProbe *b, unsigned in, int B, int C, float sd, float l2, LdRng *r, char *err) {
    memset(b, 0, sizeof *b);
    b->B = B;
    b->C = (in & LIN_CLASS) ? (C >= 2 ? C : 10) : 1;
    b->D = (in & LIN_EMB) ? PROBE_D : 0;
    size_t nz = (size_t)B * b->C;
    b->z = calloc(nz, sizeof *b->z);
    b->y = calloc((size_t)B, sizeof *b->y);
    b->label = calloc((size_t)B, sizeof *b->label);
    b->emb = b->D ? calloc((size_t)2 * B * b->D, sizeof *b->emb) : NULL;
    if (!b->z || !b->y || !b->label || (b->D && !b->emb)) return ld_err(err, LD_ENOMEM, "probe: out of memory");
    for (size_t k = 0; k < nz; k++) b->z[k] = sd * rng_normal(r);
    for (int i = 0; i < B; i++) {
        b->y[i] = rng_normal(r);
        b->label[i] = (int)rng_below(r, (in & LIN_EMB) ? 4 : (uint32_t)b->C);
    }
    for (int k = 0; k < 2 * B * b->D; k++) b->emb[k] = rng_normal(r);
    if (in & LIN_RL) { /* log-probabilities in [log 0.05, 0], entropies in [0.1, 0.7], the rest N(0, 1) */
        if (!(b->fed = calloc((size_t)7 * B, sizeof *b->fed))) return ld_err(err, LD_ENOMEM, "probe: out of memory");
        for (int k = 0; k < 6 * B; k++) b->fed[k] = rng_normal(r);
        rl_advn(b->fed + (size_t)6 * B, b->fed + (size_t)2 * B, B); /* advn: adv normalised */
        for (int i = 0; i < B; i++) {
            b->fed[i] = logf(0.05f + 0.95f * (float)rng_uniform(r));
            b->fed[5 * B + i] = 0.1f + 0.6f * (float)rng_uniform(r);
        }
        /* the signature: d/d(logp v td ent), the fed variables that depend on the model */
        b->sig_vars = 1u << VAR_LOGP | 1u << VAR_V | 1u << VAR_TD | 1u << VAR_ENT;
        b->sig_group2 = 1u << VAR_V | 1u << VAR_TD; /* the critic's; logp and ent are the policy's */
        b->sig_w[VAR_ENT] = 100.0f;
    }
    int reg = (in & LIN_PRED) != 0;
    float own = (in & LIN_PHYS) ? 1.0f : 0.0f;
    b->in = (LossIn){.B = B, .t = 0.5f, .z = b->z, .label = reg ? NULL : b->label,
                     .y = reg ? b->y : NULL, .emb = b->emb, .term[TERM_L2] = l2,
                     .term[TERM_PHYS] = own, .term[TERM_BC] = own};
    for (int v = VAR_LOGP; v <= VAR_ENT && b->fed; v++) b->in.var[v] = b->fed + (size_t)(v - VAR_LOGP) * B;
    if (b->fed) b->in.var[VAR_ADVN] = b->fed + (size_t)6 * B;
    return LD_OK;
}

/* The family's probe batch: its hook fills b->p from a generator seeded with seed. */
static int batch_init(Batch *b, int fam, int B, int C, float sd, float l2, uint64_t seed, char *err) {
    const EvalFamily *f = eval_family(fam);
    memset(b, 0, sizeof *b);
    b->fam = fam;
    if (!f || !f->probe)
        return ld_err(err, LD_EINVAL, "the %s family has no probe batch (EvalFamily.probe)", family_name(fam));
    LdRng r;
    rng_seed(&r, seed);
    int rc = f->probe(&b->p, lang_vocab(fam).inputs, B, C, sd, l2, &r, err);
    if (rc) batch_free(b);
    return rc;
}

/* The signature's probe batches are the same for every call with the same family and class
 * count, and the search asks for thousands of signatures: each batch is built once, under a
 * lock, and only read afterwards. A full cache falls back to a batch of the caller's own. */
#define PROBE_CACHE 16
static struct {
    pthread_mutex_t lock;
    int n;
    Batch b[PROBE_CACHE];
} probe_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Returns the shared batch for (family, C), or NULL when the cache is full or out of memory. */
static const Batch *probe_batch(int family, int C) {
    const Batch *found = NULL;
    pthread_mutex_lock(&probe_cache.lock);
    for (int i = 0; i < probe_cache.n && !found; i++)
        if (probe_cache.b[i].fam == family && probe_cache.b[i].p.C == C) found = &probe_cache.b[i];
    if (!found && probe_cache.n < PROBE_CACHE &&
        batch_init(&probe_cache.b[probe_cache.n], family, PROBE_B, C, 2.0f, 1.0f, PROBE_SEED,
                   NULL) == LD_OK) {
        Batch *nb = &probe_cache.b[probe_cache.n];
        if (nb->p.C == C) {
            found = nb;
            probe_cache.n++;
        } else {
            batch_free(nb); /* the family normalised C: cache under the caller's C is wrong */
        }
    }
    pthread_mutex_unlock(&probe_cache.lock);
    return found;
}

/* Floats in the signature on probe batch b: d loss / d z (B*C) or the B rows of each variable
 * in sig_vars, d loss / d emb (2B*D), then l2, phys and bc's. */
static int sig_layout(const EvalProbe *b, int *nz) {
    *nz = b->sig_vars ? b->B * __builtin_popcount(b->sig_vars) : b->B * b->C;
    return *nz + 2 * b->B * b->D + 3;
}

/* Floats in a GAN loss's signature on b (eval_signature's GAN branch), 0 when b feeds no dx and
 * dgz: both sides' logit gradients and d/dl2 (3B + 1), then, for a loss that reads the
 * reconstruction inputs, d loss / d xh (B*C). */
static int gan_sig_len(const EvalProbe *b, int rec) {
    if (!b->in.var[VAR_DX] || !b->in.var[VAR_DGZ]) return 0;
    return 3 * b->B + 1 + (rec && b->in.x ? b->B * b->C : 0);
}

/* The longest layout of the family's batch: a GAN mixture's (3B + 1 + B*C) is longer than the
 * autoencoder's (B*C + 3), and a signature is cut to this length. */
int eval_signature_len(int family, int C) {
    Batch own = {0};
    const Batch *shared = probe_batch(family, C);
    if (!shared && batch_init(&own, family, PROBE_B, C, 2.0f, 1.0f, PROBE_SEED, NULL) != LD_OK) return 0;
    const EvalProbe *b = shared ? &shared->p : &own.p;
    int nz, len = sig_layout(b, &nz), gan = gan_sig_len(b, 1);
    batch_free(&own);
    return gan > len ? gan : len;
}

/* d loss / d z of run o on b: o->dz, or with the family's fed terms (EvalProbe.fed_grad) a copy
 * in buf (B*C) with their share added. NULL when the program has no dz. */
static const float *probe_dz(const EvalProbe *b, const LossOut *o, float *buf) {
    if (!o->dz || !b->fed_grad) return o->dz;
    memcpy(buf, o->dz, sizeof(float) * (size_t)b->B * b->C);
    b->fed_grad(b, o, buf);
    return buf;
}

/* A GAN loss's gradient on probe batch b (the generative family's hook feeds dx and dgz), for
 * both sides: d/ddgz on the generator's, d/ddx and d/ddgz on the discriminator's (the side a task
 * trains is the task's choice, so the signature holds both), then d/dl2, into v (3B + 1). With
 * rec (B*C, NULL: not wanted), also the generator side's d loss / d xh (a GAN loss that reads
 * the reconstruction inputs; buf: B*C floats). LD_OK, or LD_EFAILED. */
static int gan_grads(LossProg *lp, const EvalProbe *b, double *v, double *rec, float *buf) {
    for (int side = LOSS_SIDE_G; side <= LOSS_SIDE_D; side++) {
        LossIn in = b->in;
        in.side = side;
        LossOut o;
        if (lossprog_run(lp, &in, &o) != LD_OK) return LD_EFAILED;
        const float *gx = o.g_var[VAR_DX], *gz = o.g_var[VAR_DGZ];
        if (side == LOSS_SIDE_G && rec) {
            const float *dz = probe_dz(b, &o, buf);
            for (int k = 0; k < b->B * b->C; k++) rec[k] = dz ? dz[k] : 0.0;
        }
        for (int i = 0; i < b->B; i++) {
            if (side == LOSS_SIDE_G) v[i] = gz ? gz[i] : 0.0;
            else {
                v[b->B + i] = gx ? gx[i] : 0.0;
                v[2 * b->B + i] = gz ? gz[i] : 0.0;
            }
        }
        if (side == LOSS_SIDE_G) v[3 * b->B] = o.g_term[TERM_L2];
    }
    return LD_OK;
}

/* A GAN loss on a batch that feeds dx and dgz: its signature and pre-check are gan_grads'. */
static int is_gan(const Expr *e, const EvalProbe *b) {
    return (expr_inputs(e) & LIN_GAN) && b->in.var[VAR_DX] && b->in.var[VAR_DGZ];
}

/* Scales the rows of vec (sig_vars' gradients, B each, in VAR_ order) of each parameter group
 * (b->sig_group2's and the others) to unit length; a group the loss does not reach stays 0. */
static void group_scale(double *vec, const EvalProbe *b) {
    double norm[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++)
        for (int v = 0, row = 0; v < VAR_COUNT; v++) {
            if (!(b->sig_vars >> v & 1u)) continue;
            int g = b->sig_group2 >> v & 1u;
            for (int i = 0; i < b->B; i++) {
                double *x = &vec[row * b->B + i];
                if (pass == 0) norm[g] += *x * *x;
                else if (norm[g] > 1e-60) *x /= sqrt(norm[g]);
            }
            row++;
        }
}

/* The signature's end, for every family: sig[0..n) = vec[0..len) over its norm (zeros past
 * len). A zero or non-finite norm is an error: the loss gives no direction to compare. */
static int sig_normalise(const double *vec, int len, float *sig, int n, char *err) {
    double norm = 0;
    for (int k = 0; k < len; k++) norm += vec[k] * vec[k];
    norm = sqrt(norm);
    if (!(norm > 1e-30) || !isfinite(norm)) return ld_err(err, LD_EFAILED, "gradient is zero on the probe batch");
    for (int k = 0; k < n; k++) sig[k] = k < len ? (float)(vec[k] / norm) : 0.0f;
    return LD_OK;
}

int eval_signature(const Expr *e, int family, int C, float *sig, int n, char *err) {
    Batch own = {0};
    const Batch *shared = probe_batch(family, C);
    LossProg *lp = NULL;
    double *vec = NULL;
    float *buf = NULL;
    int rc = LD_OK;
    if (!shared && (rc = batch_init(&own, family, PROBE_B, C, 2.0f, 1.0f, PROBE_SEED, err)))
        return rc;
    const EvalProbe *b = shared ? &shared->p : &own.p;
    if ((rc = lossprog_new(e, family, b->B, b->C, b->D, &lp, err))) goto done;
    if (is_gan(e, b)) {
        /* both sides' logit gradients, in the first 3B + 1 of the layout; a loss that also reads
         * the reconstruction inputs (nsgan + 10*rec) then d loss / d xh (eval_signature_len
         * makes room for all of it) */
        int rec = (expr_inputs(e) & LIN_AE) && b->in.x, len = gan_sig_len(b, rec);
        if (!(vec = calloc((size_t)len, sizeof *vec)) ||
            !(buf = malloc(sizeof(float) * (size_t)b->B * b->C))) {
            rc = ld_err(err, LD_ENOMEM, "probe: out of memory");
            goto done;
        }
        if (gan_grads(lp, b, vec, rec ? vec + 3 * b->B + 1 : NULL, buf) != LD_OK) {
            rc = ld_err(err, LD_EFAILED, "the loss or its gradient is not finite on the probe batch");
            goto done;
        }
        rc = sig_normalise(vec, len, sig, n, err);
        goto done;
    }
    LossOut out;
    if (lossprog_run(lp, &b->in, &out) != LD_OK) {
        rc = ld_err(err, LD_EFAILED, "the loss or its gradient is not finite on the probe batch");
        goto done;
    }
    /* layout (sig_layout): dz (B*C) or the sig_vars' gradients (B each), demb (2B*D), then
     * g_l2, g_phys, g_bc */
    int nz, len = sig_layout(b, &nz), ne = out.demb ? 2 * b->B * b->D : 0;
    len -= 2 * b->B * b->D - ne;
    vec = malloc((size_t)len * sizeof *vec);
    buf = malloc(sizeof(float) * (size_t)b->B * b->C);
    if (!vec || !buf) {
        rc = ld_err(err, LD_ENOMEM, "probe: out of memory");
        goto done;
    }
    if (b->sig_vars) { /* gradients of the fed variables the family names, in VAR_ order */
        int row = 0;
        for (int v = 0; v < VAR_COUNT; v++) {
            if (!(b->sig_vars >> v & 1u)) continue;
            double w = b->sig_w[v] > 0 ? b->sig_w[v] : 1.0;
            for (int i = 0; i < b->B; i++) vec[row * b->B + i] = out.g_var[v] ? w * out.g_var[v][i] : 0.0;
            row++;
        }
        if (b->sig_group2 && out.g_term[TERM_L2] == 0) group_scale(vec, b);
    } else {
        const float *dz = probe_dz(b, &out, buf);
        for (int k = 0; k < nz; k++) vec[k] = dz[k];
    }
    for (int k = 0; k < ne; k++) vec[nz + k] = out.demb[k];
    vec[nz + ne] = out.g_term[TERM_L2];
    vec[nz + ne + 1] = out.g_term[TERM_PHYS];
    vec[nz + ne + 2] = out.g_term[TERM_BC];
    rc = sig_normalise(vec, len, sig, n, err);
done:
    free(vec);
    free(buf);
    lossprog_free(lp);
    batch_free(&own);
    return rc;
}

static double accuracy(const EvalProbe *b) {
    int hit = 0;
    for (int i = 0; i < b->B; i++) {
        const float *z = b->z + (size_t)i * b->C;
        int best = 0;
        for (int j = 1; j < b->C; j++)
            if (z[j] > z[best]) best = j;
        hit += best == b->label[i];
    }
    return (double)hit / b->B;
}

static double mse(const EvalProbe *b) {
    double s = 0;
    for (int i = 0; i < b->B; i++) s += (double)(b->z[i] - b->y[i]) * (b->z[i] - b->y[i]);
    return s / b->B;
}

int eval_precheck(const Expr *e, int family, int C, char *err) {
    Batch own;
    EvalProbe *b = &own.p;
    LossProg *lp = NULL;
    float *buf = NULL; /* (B, C): d loss / d z with the family's fed terms (probe_dz) */
    int rc = batch_init(&own, family, PRE_B, C, 1.0f, 0.0f, PROBE_SEED + 1, err);
    if (rc) return rc;
    if ((rc = lossprog_new(e, family, b->B, b->C, b->D, &lp, err))) goto done;
    if (!(buf = malloc(sizeof(float) * (size_t)b->B * b->C))) {
        rc = ld_err(err, LD_ENOMEM, "probe: out of memory");
        goto done;
    }
    /* Direct optimisation of the outputs means something where the outputs alone decide the
     * metric: class logits (accuracy) or predictions without the family's own batch terms (mse). */
    unsigned in = lang_vocab(family).inputs;
    if (is_gan(e, b)) {
        /* a GAN loss must train a side the right way: descending it raises the discriminator's
         * logit on generated rows (a generator's loss), or raises it on real rows and lowers it on
         * generated ones (a discriminator's) */
        double v[3 * PRE_B + 1], g = 0, dr = 0, dg = 0;
        if (b->B > PRE_B || gan_grads(lp, b, v, NULL, NULL) != LD_OK) {
            rc = ld_err(err, LD_EFAILED, "the loss or its gradient is not finite on the probe batch");
            goto done;
        }
        for (int i = 0; i < b->B; i++) {
            g -= v[i];
            dr -= v[b->B + i];
            dg += v[2 * b->B + i];
        }
        if (!(g > 0) && !(dr > 0 && dg > 0))
            rc = ld_err(err, LD_EFAILED, "trains neither side of a GAN: descending it neither raises the "
                                         "discriminator's logit on generated samples (a generator's loss) nor "
                                         "separates real from generated ones (a discriminator's)");
        goto done;
    }
    if (in & LIN_RL) { /* a policy loss must move logp: up where the return or advantage is high */
        LossOut o;
        if (lossprog_run(lp, &b->in, &o) != LD_OK) {
            rc = ld_err(err, LD_EFAILED, "the loss or its gradient is not finite on the probe batch");
            goto done;
        }
        const float *gl = o.g_var[VAR_LOGP], *ret = b->in.var[VAR_RET], *adv = b->in.var[VAR_ADV];
        double sr = 0, sa = 0, ss = 0;
        for (int i = 0; gl && i < b->B; i++) {
            sr -= (double)gl[i] * ret[i];
            sa -= (double)gl[i] * adv[i];
            ss += (double)gl[i] * gl[i];
        }
        if (!(ss > 0)) rc = ld_err(err, LD_EFAILED, "does not train the policy (no gradient through logp)");
        else if (!(sr > 0 || sa > 0))
            rc = ld_err(err, LD_EFAILED, "makes actions with a higher return or advantage less likely");
        goto done;
    }
    int cls = (in & LIN_CLASS) != 0, reg = (in & LIN_PRED) && !(in & LIN_PHYS), direct = cls || reg;
    double m0 = cls ? accuracy(b) : reg ? mse(b) : 0, m1 = m0; /* others (an autoencoder) have no y */
    int nz = b->B * b->C, ne = 2 * b->B * b->D;
    LossOut out;
    for (int step = 0; step < PRE_STEPS; step++) {
        b->in.t = (float)step / (PRE_STEPS - 1);
        if (lossprog_run(lp, &b->in, &out) != LD_OK) {
            rc = ld_err(err, LD_EFAILED,
                        "the loss or its gradient is not finite at step %d of direct optimisation",
                        step);
            goto done;
        }
        if (out.g_term[TERM_L2] < 0 || out.g_term[TERM_PHYS] < 0 || out.g_term[TERM_BC] < 0) {
            rc = ld_err(err, LD_EFAILED, "the loss rewards a larger %s term",
                        out.g_term[TERM_L2] < 0 ? "l2" : out.g_term[TERM_PHYS] < 0 ? "phys" : "bc");
            goto done;
        }
        /* a step of fixed RMS size along the negative gradient */
        int emb = (in & LIN_EMB) != 0;
        float *x = emb ? b->emb : b->z;
        const float *g = emb ? out.demb : probe_dz(b, &out, buf);
        int nx = emb ? ne : nz;
        double ss = 0;
        for (int k = 0; k < nx; k++) ss += (double)g[k] * g[k];
        if (!(ss > 0)) {
            if (step == 0 && (direct || !(out.g_term[TERM_L2] + out.g_term[TERM_PHYS] + out.g_term[TERM_BC] > 0))) {
                rc = ld_err(err, LD_EFAILED, "gradient is zero on the probe batch");
                goto done;
            }
            break; /* physics terms alone: nothing to move here */
        }
        float scale = PRE_LR / (float)sqrt(ss / nx);
        for (int k = 0; k < nx; k++) x[k] -= scale * g[k];
    }
    if (cls) {
        m1 = accuracy(b);
        if (!(m1 >= m0 + 0.1))
            rc = ld_err(err, LD_EFAILED,
                        "does not improve accuracy when optimised directly (%.2f -> %.2f)", m0, m1);
    } else if (reg) {
        m1 = mse(b);
        if (!(m1 <= 0.9 * m0))
            rc = ld_err(err, LD_EFAILED,
                        "does not reduce the squared error when optimised directly (%.3g -> %.3g)",
                        m0, m1);
    }
done:
    free(buf);
    lossprog_free(lp);
    batch_free(&own);
    return rc;
}
