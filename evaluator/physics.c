/* physics.c: the physics task family: built-in differential-equation problems with analytic
 * solutions, a scalar-input MLP that carries (u, u_x, u_xx) forward and back, and the short
 * physics-informed training run that scores a loss by how close u gets to the true solution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* ---------------------------------------------------------------------------------------------
 * Problems */

enum { PHYS_OSCILLATOR = 0, PHYS_POISSON = 1 };

#define PHYS_GRID 256          /* points of the dense validation and test grids */
#define PHYS_MAX_POINTS 4096   /* collocation + observations, a sanity bound for specs */

struct PhysProblem {
    int kind;             /* PHYS_* */
    double lo, hi;        /* domain */
    double zeta, omega;   /* oscillator: damping ratio and natural angular frequency */
    double noise;         /* sd of the observation noise */
    uint64_t seed;        /* draws observation positions, noise and the test grid */
    int ncol, nobs, nbc;  /* collocation, observation and boundary points */
    int npts;             /* ncol + nobs + nbc */
    float *x;             /* (npts) training inputs: collocation, then observations, then boundary */
    float *y_obs;         /* (nobs) noisy observations of u at x[ncol .. ncol+nobs) */
    float *f_col;         /* (ncol) Poisson source term at the collocation points */
    float *x_val, *u_val; /* (PHYS_GRID) validation grid and the exact solution on it */
    float *x_test, *u_test;
    float in_shift, in_scale; /* network input is (x - in_shift) * in_scale, in [-1, 1] */
    float res_scale;      /* residual divided by this so phys is O(1) at the start */
};

static double phys_exact(const struct PhysProblem *p, double x) {
    if (p->kind == PHYS_OSCILLATOR) {
        double a = p->zeta * p->omega, wd = p->omega * sqrt(1.0 - p->zeta * p->zeta);
        return exp(-a * x) * (cos(wd * x) + a / wd * sin(wd * x));
    }
    return sin(M_PI * x) + 0.3 * sin(3.0 * M_PI * x);
}

/* Poisson: f = -u'' of the exact solution. */
static double phys_source(double x) {
    return M_PI * M_PI * (sin(M_PI * x) + 2.7 * sin(3.0 * M_PI * x));
}

/* ---------------------------------------------------------------------------------------------
 * Activations with their first three derivatives: the forward pass needs two (for u_x, u_xx),
 * the backward pass through the u_xx stream needs the third. */

/* tanh as a rational function (Eigen's float approximation, a few ulp from tanhf): libm's
 * tanhf was 40% of a physics run and does not vectorise. tests/test_physics.c checks it. */
static inline float pn_tanh(float x) {
    const float lim = 7.90531110763549805f;
    x = x > lim ? lim : (x < -lim ? -lim : x);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

static inline void act_eval(int act, float a, float *s, float *d1, float *d2, float *d3) {
    if (act == ACT_TANH) {
        float th = pn_tanh(a), g = 1.0f - th * th;
        *s = th;
        *d1 = g;
        *d2 = -2.0f * th * g;
        *d3 = -2.0f * g * g + 4.0f * th * th * g;
    } else if (act == ACT_GELU) { /* exact: a * Phi(a) */
        float phi = 0.3989422804014327f * expf(-0.5f * a * a);
        float cdf = 0.5f * (1.0f + erff(a * 0.7071067811865476f));
        *s = a * cdf;
        *d1 = cdf + a * phi;
        *d2 = phi * (2.0f - a * a);
        *d3 = phi * (a * a * a - 4.0f * a);
    } else {
        *s = a > 0 ? a : 0;
        *d1 = a > 0 ? 1.0f : 0.0f;
        *d2 = *d3 = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The network. All three streams of n points are stacked as one (3n, C) matrix: rows [0, n) are
 * values, [n, 2n) first derivatives d/dx, [2n, 3n) second derivatives. A linear layer acts on
 * all three alike (its bias only on the value rows), so one sgemm serves every stream. */

#define PN_MAX_LAYERS (MODEL_MAX_HIDDEN + 1)

typedef struct PhysNet {
    int nlayer;                   /* linear layers; all but the last are followed by act */
    int dim[PN_MAX_LAYERS + 1];   /* dim[0] = 1 input, dim[nlayer] = 1 output */
    int act;
    float in_shift, in_scale;
    int maxn;                     /* points per stream the buffers hold */
    size_t nparam;
    float *param, *grad;          /* (nparam) each */
    float *w[PN_MAX_LAYERS], *b[PN_MAX_LAYERS];   /* w (dim[l], dim[l+1]), b (dim[l+1]) */
    float *wf[PN_MAX_LAYERS];     /* the trained weights (the l2 term's): w's, except while a
                                     quantisation-aware step points w at fake-quantised copies */
    float *gw[PN_MAX_LAYERS], *gb[PN_MAX_LAYERS];
    float *h0;                    /* (3maxn, 1) input streams */
    float *a[PN_MAX_LAYERS];      /* (3maxn, dim[l+1]) pre-activations; a[nlayer-1] is u */
    float *s[PN_MAX_LAYERS];      /* (3maxn, dim[l+1]) post-activations of hidden layers */
    float *ga[PN_MAX_LAYERS], *gs[PN_MAX_LAYERS];
    float *dact[PN_MAX_LAYERS];   /* (3maxn, dim[l+1]) act', act'', act''' at the value rows,
                                     kept by the forward pass for the backward pass */
    float *gh0;                   /* (3maxn, 1) unused gradient of the input, keeps code uniform */
} PhysNet;

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

static void pnet_shape(PhysNet *net, const ModelSpec *m) {
    net->nlayer = m->nhidden + 1;
    net->dim[0] = 1;
    for (int l = 0; l < m->nhidden; l++) net->dim[l + 1] = m->hidden[l];
    net->dim[net->nlayer] = 1;
    net->nparam = 0;
    for (int l = 0; l < net->nlayer; l++)
        net->nparam += (size_t)net->dim[l + 1] * net->dim[l] + net->dim[l + 1];
}

/* Bytes pnet_init takes from the arena. */
static size_t pnet_bytes(const ModelSpec *m, int maxn) {
    PhysNet net;
    pnet_shape(&net, m);
    size_t n = 2 * al64(net.nparam * sizeof(float)) + 2 * al64(3 * (size_t)maxn * sizeof(float));
    for (int l = 0; l < net.nlayer; l++)
        n += 5 * al64(3 * (size_t)maxn * net.dim[l + 1] * sizeof(float));
    return n;
}

/* Points net into the arena and draws LeCun-normal weights from rng (zero biases). */
static int pnet_init(PhysNet *net, const ModelSpec *m, int act, float in_shift, float in_scale,
                     int maxn, LdArena *ar, LdRng *rng, char *err) {
    memset(net, 0, sizeof *net);
    pnet_shape(net, m);
    net->act = act;
    net->in_shift = in_shift;
    net->in_scale = in_scale;
    net->maxn = maxn;
    size_t pb = net->nparam * sizeof(float), sb = 3 * (size_t)maxn * sizeof(float);
    net->param = arena_alloc(ar, pb);
    net->grad = arena_alloc(ar, pb);
    net->h0 = arena_alloc(ar, sb);
    net->gh0 = arena_alloc(ar, sb);
    if (!net->param || !net->grad || !net->h0 || !net->gh0) goto full;
    for (int l = 0; l < net->nlayer; l++) {
        size_t lb = sb * net->dim[l + 1];
        net->a[l] = arena_alloc(ar, lb);
        net->s[l] = arena_alloc(ar, lb);
        net->ga[l] = arena_alloc(ar, lb);
        net->gs[l] = arena_alloc(ar, lb);
        net->dact[l] = arena_alloc(ar, lb);
        if (!net->a[l] || !net->s[l] || !net->ga[l] || !net->gs[l] || !net->dact[l]) goto full;
    }
    float *p = net->param, *g = net->grad;
    for (int l = 0; l < net->nlayer; l++) {
        int in = net->dim[l], out = net->dim[l + 1];
        net->w[l] = net->wf[l] = p;
        net->gw[l] = g;
        p += (size_t)in * out;
        g += (size_t)in * out;
        net->b[l] = p;
        net->gb[l] = g;
        p += out;
        g += out;
        float sd = 1.0f / sqrtf((float)in);
        for (int i = 0; i < in * out; i++) net->w[l][i] = sd * rng_normal(rng);
    }
    return LD_OK;
full:
    return ld_err(err, LD_ENOMEM, "physics: evaluation arena too small for the network");
}

/* out (3n, OC) = inp (3n, C) @ w (C, OC); bias b (OC) added to the value rows [0, n) only.
 * The product is mlp.c's (its small-matrix kernel); the bias is ours because it skips the
 * derivative rows. */
static void pn_linear_forward(float *out, const float *inp, const float *w, const float *b, int n,
                              int C, int OC) {
    mlp_linear_forward(out, inp, w, NULL, 3 * n, C, OC);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < OC; j++) out[(size_t)i * OC + j] += b[j];
}

/* Adds into gw (C, OC) and gb (OC, value rows only); writes ginp (3n, C) when not NULL.
 * gout (3n, OC), inp (3n, C), w (C, OC). */
static void pn_linear_backward(float *ginp, float *gw, float *gb, const float *gout,
                               const float *inp, const float *w, int n, int C, int OC) {
    mlp_linear_backward(ginp, gw, NULL, gout, inp, w, 3 * n, C, OC);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < OC; j++) gb[j] += gout[(size_t)i * OC + j];
}

/* s = act(a) on three streams: s0 = act(a0); s1 = act'(a0) a1; s2 = act''(a0) a1^2 + act'(a0) a2.
 * s, a, dact (3n, C); dact receives act', act'', act''' of a0 for the backward pass. */
static void pn_act_forward(float *s, float *dact, const float *a, int n, int C, int act) {
    size_t N = (size_t)n * C;
    for (size_t i = 0; i < N; i++) {
        float v, d1, d2, d3, a1 = a[N + i], a2 = a[2 * N + i];
        act_eval(act, a[i], &v, &d1, &d2, &d3);
        dact[i] = d1;
        dact[N + i] = d2;
        dact[2 * N + i] = d3;
        s[i] = v;
        s[N + i] = d1 * a1;
        s[2 * N + i] = d2 * a1 * a1 + d1 * a2;
    }
}

/* Writes ga (3n, C) from gs (3n, C): the transpose of pn_act_forward's Jacobian.
 * a, dact (3n, C) as pn_act_forward left them. */
static void pn_act_backward(float *ga, const float *gs, const float *a, const float *dact, int n,
                            int C) {
    size_t N = (size_t)n * C;
    for (size_t i = 0; i < N; i++) {
        float d1 = dact[i], d2 = dact[N + i], d3 = dact[2 * N + i];
        float a1 = a[N + i], a2 = a[2 * N + i];
        float g0 = gs[i], g1 = gs[N + i], g2 = gs[2 * N + i];
        ga[i] = g0 * d1 + g1 * d2 * a1 + g2 * (d3 * a1 * a1 + d2 * a2);
        ga[N + i] = g1 * d1 + 2.0f * g2 * d2 * a1;
        ga[2 * N + i] = g2 * d1;
    }
}

/* Runs n points x (n) through the net; returns u (3n): u, u_x, u_xx (points into net). */
static const float *pnet_forward(PhysNet *net, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        net->h0[i] = (x[i] - net->in_shift) * net->in_scale;
        net->h0[n + i] = net->in_scale;
        net->h0[2 * n + i] = 0.0f;
    }
    const float *h = net->h0;
    for (int l = 0; l < net->nlayer; l++) {
        pn_linear_forward(net->a[l], h, net->w[l], net->b[l], n, net->dim[l], net->dim[l + 1]);
        if (l == net->nlayer - 1) break;
        pn_act_forward(net->s[l], net->dact[l], net->a[l], n, net->dim[l + 1], net->act);
        h = net->s[l];
    }
    return net->a[net->nlayer - 1];
}

/* Adds the gradient of the loss into net->grad given gu (3n), d loss / d (u, u_x, u_xx), after
 * pnet_forward on the same n points. */
static void pnet_backward(PhysNet *net, const float *gu, int n) {
    int L = net->nlayer;
    memcpy(net->ga[L - 1], gu, 3 * (size_t)n * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        const float *inp = l > 0 ? net->s[l - 1] : net->h0;
        float *ginp = l > 0 ? net->gs[l - 1] : NULL;
        pn_linear_backward(ginp, net->gw[l], net->gb[l], net->ga[l], inp, net->w[l], n,
                           net->dim[l], net->dim[l + 1]);
        if (l > 0)
            pn_act_backward(net->ga[l - 1], net->gs[l - 1], net->a[l - 1], net->dact[l - 1], n,
                            net->dim[l]);
    }
}

/* l2 term: 0.5 * sum of squared weight-matrix entries (biases are not decayed). */
static float pnet_l2(const PhysNet *net) {
    double s = 0;
    for (int l = 0; l < net->nlayer; l++) s = train_l2_add(s, net->wf[l], (size_t)net->dim[l] * net->dim[l + 1]);
    return (float)(0.5 * s);
}

static void pnet_l2_backward(PhysNet *net, float g) {
    if (g == 0.0f) return;
    for (int l = 0; l < net->nlayer; l++) train_l2_backward(net->gw[l], net->wf[l], (size_t)net->dim[l] * net->dim[l + 1], g);
}

/* ---------------------------------------------------------------------------------------------
 * One training step's loss: physics terms computed here, the loss expression by a callback
 * (the compiled loss program in production, hand-written losses in the tests). */

typedef struct PhysStep {
    const struct PhysProblem *prob;
    PhysNet *net;
    float *gu;    /* (3 npts) */
    float *res;   /* (ncol) residuals */
    float phys, bc, l2; /* last values, for reporting */
} PhysStep;

/* Residual of the governing equation at a point given u, u_x, u_xx (and f for Poisson),
 * divided by res_scale; dres_du[k] is its derivative w.r.t. stream k. */
static inline float phys_residual(const struct PhysProblem *p, float u0, float u1, float u2,
                                  float f, float dres[3]) {
    float s = 1.0f / p->res_scale;
    if (p->kind == PHYS_OSCILLATOR) {
        float c1 = (float)(2.0 * p->zeta * p->omega), c0 = (float)(p->omega * p->omega);
        dres[0] = c0 * s;
        dres[1] = c1 * s;
        dres[2] = s;
        return (u2 + c1 * u1 + c0 * u0) * s;
    }
    dres[0] = dres[1] = 0.0f;
    dres[2] = s;
    return (u2 + f) * s;
}

/* Forward and backward for one step: zeroes net->grad and fills it with the gradient of the
 * loss at progress tprog. Returns LD_OK with *loss, or LD_EFAILED when anything is not finite. */
static int phys_step_grad(PhysStep *st, TrainLossFn fn, void *ctx, float tprog, float *loss) {
    const struct PhysProblem *p = st->prob;
    PhysNet *net = st->net;
    int n = p->npts, nc = p->ncol, no = p->nobs;
    memset(net->grad, 0, net->nparam * sizeof(float));
    const float *u = pnet_forward(net, p->x, n);

    double phys = 0;
    float dres[3];
    for (int i = 0; i < nc; i++) {
        st->res[i] = phys_residual(p, u[i], u[n + i], u[2 * n + i], p->f_col ? p->f_col[i] : 0.0f,
                                   dres);
        phys += (double)st->res[i] * st->res[i];
    }
    phys /= nc;
    int kb = nc + no; /* first boundary point */
    double bc;
    if (p->kind == PHYS_OSCILLATOR) {
        double e0 = u[kb] - 1.0, e1 = u[n + kb];
        bc = e0 * e0 + e1 * e1;
    } else {
        bc = (double)u[kb] * u[kb] + (double)u[kb + 1] * u[kb + 1];
    }
    LossIn in = {.B = no, .t = tprog, .z = u + nc, .y = p->y_obs, .term[TERM_L2] = pnet_l2(net),
                 .term[TERM_PHYS] = (float)phys, .term[TERM_BC] = (float)bc};
    st->phys = in.term[TERM_PHYS];
    st->bc = in.term[TERM_BC];
    st->l2 = in.term[TERM_L2];
    LossOut out;
    memset(&out, 0, sizeof out);
    int rc = fn(ctx, &in, &out);
    *loss = out.loss;
    if (rc != LD_OK || !isfinite(out.loss)) return LD_EFAILED;

    float *gu = st->gu;
    memset(gu, 0, 3 * (size_t)n * sizeof(float));
    for (int i = 0; i < nc; i++) {
        float gr = out.g_term[TERM_PHYS] * 2.0f * st->res[i] / nc;
        phys_residual(p, 0, 0, 0, 0, dres);
        gu[i] += gr * dres[0];
        gu[n + i] += gr * dres[1];
        gu[2 * n + i] += gr * dres[2];
    }
    for (int j = 0; j < no; j++) gu[nc + j] += out.dz ? out.dz[j] : 0.0f;
    if (p->kind == PHYS_OSCILLATOR) {
        gu[kb] += out.g_term[TERM_BC] * 2.0f * (u[kb] - 1.0f);
        gu[n + kb] += out.g_term[TERM_BC] * 2.0f * u[n + kb];
    } else {
        gu[kb] += out.g_term[TERM_BC] * 2.0f * u[kb];
        gu[kb + 1] += out.g_term[TERM_BC] * 2.0f * u[kb + 1];
    }
    pnet_backward(net, gu, n);
    pnet_l2_backward(net, out.g_term[TERM_L2]);
    for (size_t i = 0; i < net->nparam; i++)
        if (!isfinite(net->grad[i])) return LD_EFAILED;
    return LD_OK;
}

/* Relative L2 error of u (n) against the exact solution u_ref (n). */
static double phys_rel_error(const float *u, const float *u_ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)u[i] - u_ref[i];
        num += d * d;
        den += (double)u_ref[i] * u_ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1.0));
}

/* Relative L2 error of the net against the exact solution u_ref on grid x (n <= net->maxn). */
static double phys_solution_error(PhysNet *net, const float *x, const float *u_ref, int n) {
    return phys_rel_error(pnet_forward(net, x, n), u_ref, n);
}

/* Mean squared (scaled) residual of the equation on grid x: how well u satisfies the physics. */
static double phys_grid_residual(PhysNet *net, const struct PhysProblem *p, const float *x, int n) {
    const float *u = pnet_forward(net, x, n);
    double s = 0;
    float dres[3];
    for (int i = 0; i < n; i++) {
        float f = p->kind == PHYS_POISSON ? (float)phys_source(x[i]) : 0.0f;
        float r = phys_residual(p, u[i], u[n + i], u[2 * n + i], f, dres);
        s += (double)r * r;
    }
    return s / n;
}

/* A run's state, in the trainer's arena. */
typedef struct PhysRun {
    PhysNet net;
    PhysStep st;
    Mlp pm;    /* the same parameters as an Mlp (mlp.h's layout is PhysNet's): the deployed model,
                  a plain scalar-in scalar-out network on normalised inputs */
    Mlp gm;    /* the gradients as an Mlp view (deploy.qat's straight-through backward) */
    float *xn; /* (maxn) normalised inputs: the training points (int8 calibration), then a grid */
} PhysRun;

static void phys_loss_shape(const Task *t, int *B, int *C, int *D) {
    *B = t->phys->nobs;
    *C = 1;
    *D = 0;
}

static size_t phys_run_bytes(const Task *t, size_t *nparams) {
    const struct PhysProblem *p = t->phys;
    int maxn = p->npts > PHYS_GRID ? p->npts : PHYS_GRID;
    PhysNet net;
    pnet_shape(&net, &t->model);
    *nparams = net.nparam;
    return al64(sizeof(PhysRun)) + pnet_bytes(&t->model, maxn) + al64(3 * (size_t)maxn * sizeof(float)) +
           al64((size_t)p->ncol * sizeof(float)) + 2 * al64((size_t)maxn * sizeof(float));
}

/* The network from the run's RNG (LeCun-normal weights), its one parameter group. */
static int phys_setup(Trainer *tr, char *err) {
    const Task *t = tr->task;
    const struct PhysProblem *p = t->phys;
    if (!p) return ld_err(err, LD_EINVAL, "physics: task has no physics problem");
    if (t->model.act != ACT_TANH && t->model.act != ACT_GELU)
        return ld_err(err, LD_EINVAL, "physics: the network needs tanh or gelu (relu has no u'')");
    int maxn = p->npts > PHYS_GRID ? p->npts : PHYS_GRID;
    PhysRun *s = arena_alloc(&tr->arena, sizeof *s);
    if (!s) return ld_err(err, LD_ENOMEM, "physics: evaluation arena too small");
    int rc = pnet_init(&s->net, &t->model, t->model.act, p->in_shift, p->in_scale, maxn, &tr->arena, &tr->rng, err);
    if (rc != LD_OK) return rc;
    s->st = (PhysStep){.prob = p, .net = &s->net};
    s->st.gu = arena_alloc(&tr->arena, 3 * (size_t)maxn * sizeof(float));
    s->st.res = arena_alloc(&tr->arena, (size_t)p->ncol * sizeof(float));
    if (!s->st.gu || !s->st.res) return ld_err(err, LD_ENOMEM, "physics: evaluation arena too small");
    tr->state = s;
    if (t->deploy != QUANT_FP32) { /* int8 calibrates on the training points, normalised */
        float *calib = arena_alloc(&tr->arena, (size_t)maxn * sizeof(float));
        s->xn = arena_alloc(&tr->arena, (size_t)maxn * sizeof(float));
        if (!calib || !s->xn) return ld_err(err, LD_ENOMEM, "physics: evaluation arena too small");
        for (int i = 0; i < p->npts; i++) calib[i] = (p->x[i] - p->in_shift) * p->in_scale;
        mlp_bind(&s->pm, &t->model, 1, 1, s->net.param);
        mlp_bind_like(&s->gm, &s->pm, s->net.grad);
        /* deploy.qat: weight-only (the streams u' and u'' need float activations) */
        rc = train_deployable_weights(tr, &s->pm, calib, p->npts, maxn, err);
    }
    return rc ? rc : train_group(tr, s->net.param, s->net.grad, s->net.nparam, NULL, err);
}

/* Full batch: every step sees every collocation, observation and boundary point. */
static int phys_step(Trainer *tr, float *loss) {
    PhysRun *s = tr->state;
    if (tr->task->deploy == QUANT_FP32) return phys_step_grad(&s->st, tr->loss.fn, tr->loss.ctx, tr->t, loss);
    /* deploy.qat's last quarter: the step's forward and backward (every stream) run on the
     * weights as int8 will round them, the gradient passes to the trained ones straight through */
    const Mlp *w = train_step_weights(tr, &s->pm);
    for (int l = 0; l < s->net.nlayer; l++) s->net.w[l] = w->w[l];
    int rc = phys_step_grad(&s->st, tr->loss.fn, tr->loss.ctx, tr->t, loss);
    for (int l = 0; l < s->net.nlayer; l++) s->net.w[l] = s->net.wf[l];
    train_step_weights_backward(tr, &s->pm, &s->gm);
    return rc;
}

static double phys_curve_val(Trainer *tr, int last) {
    PhysRun *s = tr->state;
    const struct PhysProblem *p = tr->task->phys;
    return phys_solution_error(&s->net, p->x_val, p->u_val, PHYS_GRID);
}

/* The deployed model's u on the n points x (train_deploying only): its plain forward on the
 * normalised inputs. */
static const float *phys_deployed_u(Trainer *tr, PhysRun *s, const float *x, int n) {
    const struct PhysProblem *p = tr->task->phys;
    for (int i = 0; i < n; i++) s->xn[i] = (x[i] - p->in_shift) * p->in_scale;
    return train_forward(tr, &s->pm, NULL, s->xn, n);
}

static void phys_score(Trainer *tr, EvalResult *res) {
    PhysRun *s = tr->state;
    const struct PhysProblem *p = tr->task->phys;
    if (train_deploying(tr)) {
        /* The deployed model: its solution error only. The residual needs u' and u'', which a
         * quantised network does not have (int8 is piecewise constant in x); the run reports
         * the trained model's as residual_fp32. */
        EvalMetric *m = &res->extra[res->nextra++];
        snprintf(m->name, sizeof m->name, "solution_error");
        m->val = phys_rel_error(phys_deployed_u(tr, s, p->x_val, PHYS_GRID), p->u_val, PHYS_GRID);
        m->test = phys_rel_error(phys_deployed_u(tr, s, p->x_test, PHYS_GRID), p->u_test, PHYS_GRID);
        return;
    }
    double ev = phys_solution_error(&s->net, p->x_val, p->u_val, PHYS_GRID);
    double et = phys_solution_error(&s->net, p->x_test, p->u_test, PHYS_GRID);
    double rv = phys_grid_residual(&s->net, p, p->x_val, PHYS_GRID);
    double rt = phys_grid_residual(&s->net, p, p->x_test, PHYS_GRID);
    if (!isfinite(ev) || !isfinite(et)) {
        res->ok = 0;
        snprintf(res->error, sizeof res->error, "non-finite solution after %d steps", tr->steps);
    }
    EvalMetric *m = &res->extra[res->nextra++];
    snprintf(m->name, sizeof m->name, "solution_error");
    m->val = ev;
    m->test = et;
    m = &res->extra[res->nextra++];
    snprintf(m->name, sizeof m->name, "residual");
    m->val = rv;
    m->test = rt;
}

/* The deployed network is mlp.c's forward on the trained weights: its GELU is the tanh
 * approximation, the physics network's is exact, so a GELU network would not deploy as trained. */
static int phys_check_deploy(const Task *t, char *err) {
    if (t->model.act == ACT_GELU)
        return ld_err(err, LD_EINVAL, "task: deploy.precision \"%s\": a physics network with model.act \"gelu\" "
                                      "cannot be deployed (the deployed forward's GELU is the tanh approximation, "
                                      "the trained network's is exact); use \"tanh\"",
                      quant_precision_name(t->deploy));
    return LD_OK;
}

/* The first population's textbook losses: the data term at full weight under lighter equation
 * terms, and the other way round (the data term 100 times lighter: where ten noisy observations
 * only add noise, as on Poisson, what tuned mixtures find; docs/results.md, "Against a tuned
 * mixture"). */
static const char *const phys_known[] = {"mse + 0.1*phys + bc", "mse + phys + bc",
                                         "mse + 0.01*phys + 0.1*bc", "huber(1) + 0.1*phys + bc",
                                         "0.01*mse + phys + bc", NULL};
static const char *const phys_panel[] = {"mse", "phys", "bc", "huber(1)", NULL};
static const char *const phys_baselines[] = {"mse", "mse + phys + bc", "mse + 0.1*phys + bc", NULL};

/* The physics task's own keys (the one spec reader checks them; phys_task_load reads them). */
static const EvalSpecKey phys_keys[] = {
    {"", "physics", SK_OBJ, 0, 0},
    {"physics", "observations", SK_INT, 1, 2048},
    {"physics", "noise", SK_NUM, 0, 10},
    {"physics", "collocation", SK_INT, 2, 2048},
    {"physics", "domain", SK_ARR, 0, 0},
    {"physics", "zeta", SK_NUM, 0, 0.95},
    {"physics", "omega", SK_NUM, 0.01, 100},
    {"physics", "seed", SK_NUM, 0, 9007199254740992.0},
    {NULL, NULL, 0, 0, 0},
};

const EvalFamily family_physics = {
    .name = "physics",
    .metrics = {{"solution_error", 0}, {"residual", 0}},
    .baseline = "mse",
    .baselines = phys_baselines,
    .known = phys_known,
    .panel = phys_panel,
    .data_set = 0,
    .keys = phys_keys,
    .load = phys_task_load,
    .unload = phys_task_free,
    .rng_salt = 0x70687973ULL,
    .lr_schedule = TRAIN_LR_COSINE,
    .loss_shape = phys_loss_shape,
    .run_bytes = phys_run_bytes,
    .setup = phys_setup,
    .step = phys_step,
    .curve_val = phys_curve_val,
    .score = phys_score,
    .probe = eval_probe_std,
    .deploy = FAMILY_DEPLOY_PTQ | FAMILY_DEPLOY_QAT, /* qat: weight-only (train_deployable_weights) */
    .check_deploy = phys_check_deploy,
};

/* ---------------------------------------------------------------------------------------------
 * Loading: the spec's physics object, family defaults, the fixed points of the task. */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The physics defaults: 1-32-32-1 tanh, Adam (peak lr 0.05 oscillator, 0.01 Poisson, cosine
 * decay to a tenth), 1000 full-batch steps; the spec's model and train keys replace them (the
 * readers task_load applies), and relu is refused because the second derivative the residual
 * needs is zero almost everywhere. */
static int phys_model_defaults(Task *t, const cJSON *spec, char *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(spec, "model");
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(spec, "train");

    t->model.act = ACT_TANH;
    t->model.nhidden = 2;
    t->model.hidden[0] = t->model.hidden[1] = 32;
    t->model.embed_dim = 0;
    TrainSpec *ts = &t->train_spec;
    ts->optimizer = OPT_ADAM;
    /* Peak rates measured over seeds 1-6 (docs/families.md): the oscillator's two periods fit
     * best at 0.05 within 1000 steps; Poisson is as good at 0.01 as at 0.02. */
    ts->lr = t->phys->kind == PHYS_OSCILLATOR ? 0.05f : 0.01f;
    ts->momentum = 0.9f;
    ts->beta1 = 0.9f;
    ts->beta2 = 0.999f;
    ts->adam_eps = 1e-8f;
    ts->steps = 1000;
    ts->batch = t->phys->nobs; /* full batch: every step sees every point */

    int rc = task_read_model(t, model, err);
    if (rc != LD_OK) return rc;
    if (t->model.act == ACT_RELU)
        return ld_err(err, LD_EINVAL,
                      "%s: relu cannot be used for a physics task (its second derivative is "
                      "zero, so the residual u'' carries no gradient); use tanh or gelu",
                      cJSON_GetObjectItemCaseSensitive(model, "act") ? "model.act" : "model.activation");
    if (t->model.nhidden < 1)
        return ld_err(err, LD_EINVAL, "model.hidden: a physics network needs 1 to %d hidden layers",
                      MODEL_MAX_HIDDEN);
    for (int i = 0; i < t->model.nhidden; i++)
        if (t->model.hidden[i] > 1024)
            return ld_err(err, LD_EINVAL, "model.hidden[%d]: expected an integer in [1, 1024]", i);
    return task_read_train(t, train, err);
}

void phys_task_free(Task *t) {
    if (!t || !t->phys) return;
    struct PhysProblem *p = t->phys;
    free(p->x);
    free(p->y_obs);
    free(p->f_col);
    free(p->x_val);
    free(p->u_val);
    free(p->x_test);
    free(p->u_test);
    free(p);
    t->phys = NULL;
}

int phys_task_load(Task *t, const cJSON *spec, char *err) {
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(spec, "data");
    const char *ds = cJSON_GetStringValue(data);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(spec, "physics");
    struct PhysProblem *p = NULL;
    int rc = LD_OK;

    if (ps && !cJSON_IsObject(ps)) return ld_err(err, LD_EINVAL, "physics: expected an object");
    /* keys, types and ranges: checked by spec_check before this runs */
    p = calloc(1, sizeof *p);
    if (!p) return ld_err(err, LD_ENOMEM, "physics: out of memory");
    if (ds && strcmp(ds, "builtin:oscillator") == 0) {
        p->kind = PHYS_OSCILLATOR;
        p->lo = 0.0;
        p->hi = 4.0;
        p->zeta = 0.15;
        p->omega = M_PI;
    } else if (ds && strcmp(ds, "builtin:poisson") == 0) {
        p->kind = PHYS_POISSON;
        p->lo = 0.0;
        p->hi = 1.0;
    } else {
        rc = ld_err(err, LD_EINVAL,
                    "data: physics tasks use \"builtin:oscillator\" or \"builtin:poisson\", not %s",
                    ds ? ds : "(missing)");
        goto done;
    }
    p->noise = 0.05;
    p->ncol = 64;
    p->nobs = 10;
    double seed = 1;
    if ((rc = task_get_num(ps, "physics.", "noise", 0.0, 10.0, &p->noise, err)) != LD_OK) goto done;
    if ((rc = task_get_int(ps, "physics.", "observations", 1, PHYS_MAX_POINTS / 2, &p->nobs, err)) !=
        LD_OK)
        goto done;
    if ((rc = task_get_int(ps, "physics.", "collocation", 2, PHYS_MAX_POINTS / 2, &p->ncol, err)) !=
        LD_OK)
        goto done;
    /* The data seed: physics.seed, else the task's split.seed (the other families' data seed),
     * else 1. */
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(spec, "split");
    const cJSON *split_seed = cJSON_IsObject(split) ? cJSON_GetObjectItemCaseSensitive(split, "seed")
                                                    : NULL;
    if (cJSON_IsNumber(split_seed) && cJSON_GetNumberValue(split_seed) >= 0 &&
        cJSON_GetNumberValue(split_seed) <= 9007199254740992.0)
        seed = floor(cJSON_GetNumberValue(split_seed));
    if ((rc = task_get_num(ps, "physics.", "seed", 0, 9007199254740992.0, &seed, err)) != LD_OK) goto done;
    p->seed = (uint64_t)seed;
    if (p->kind == PHYS_OSCILLATOR) {
        if ((rc = task_get_num(ps, "physics.", "zeta", 0.0, 0.95, &p->zeta, err)) != LD_OK) goto done;
        if ((rc = task_get_num(ps, "physics.", "omega", 0.01, 100.0, &p->omega, err)) != LD_OK) goto done;
    }
    const cJSON *dom = ps ? cJSON_GetObjectItemCaseSensitive(ps, "domain") : NULL;
    if (dom) {
        const cJSON *a = cJSON_GetArrayItem(dom, 0), *b = cJSON_GetArrayItem(dom, 1);
        if (!cJSON_IsArray(dom) || cJSON_GetArraySize(dom) != 2 || !cJSON_IsNumber(a) ||
            !cJSON_IsNumber(b) || !(cJSON_GetNumberValue(a) < cJSON_GetNumberValue(b))) {
            rc = ld_err(err, LD_EINVAL, "physics.domain: expected [lo, hi] with lo < hi");
            goto done;
        }
        if (p->kind == PHYS_POISSON &&
            (cJSON_GetNumberValue(a) != 0.0 || cJSON_GetNumberValue(b) != 1.0)) {
            rc = ld_err(err, LD_EINVAL, "physics.domain: the Poisson problem is posed on [0, 1]");
            goto done;
        }
        if (p->kind == PHYS_OSCILLATOR && cJSON_GetNumberValue(a) != 0.0) {
            rc = ld_err(err, LD_EINVAL,
                        "physics.domain: the oscillator starts at t = 0 (its initial conditions)");
            goto done;
        }
        p->lo = cJSON_GetNumberValue(a);
        p->hi = cJSON_GetNumberValue(b);
    }
    p->nbc = p->kind == PHYS_OSCILLATOR ? 1 : 2;
    p->npts = p->ncol + p->nobs + p->nbc;
    p->in_shift = (float)(0.5 * (p->lo + p->hi));
    p->in_scale = (float)(2.0 / (p->hi - p->lo));
    p->res_scale = p->kind == PHYS_OSCILLATOR ? (float)(p->omega * p->omega) : (float)(M_PI * M_PI);

    p->x = malloc(sizeof(float) * p->npts);
    p->y_obs = malloc(sizeof(float) * p->nobs);
    p->f_col = malloc(sizeof(float) * p->ncol);
    p->x_val = malloc(sizeof(float) * PHYS_GRID);
    p->u_val = malloc(sizeof(float) * PHYS_GRID);
    p->x_test = malloc(sizeof(float) * PHYS_GRID);
    p->u_test = malloc(sizeof(float) * PHYS_GRID);
    if (!p->x || !p->y_obs || !p->f_col || !p->x_val || !p->u_val || !p->x_test || !p->u_test) {
        rc = ld_err(err, LD_ENOMEM, "physics: out of memory");
        goto done;
    }
    double w = p->hi - p->lo;
    for (int i = 0; i < p->ncol; i++) {
        p->x[i] = (float)(p->lo + w * i / (p->ncol - 1));
        p->f_col[i] = p->kind == PHYS_POISSON ? (float)phys_source(p->x[i]) : 0.0f;
    }
    /* Observations: seeded positions (sorted, for readable dumps) and seeded noise, fixed per
     * task so every loss sees the same data. */
    LdRng rng;
    rng_seed(&rng, ld_mix64(p->seed, 0x6f627376ULL + (uint64_t)p->kind));
    float *xo = p->x + p->ncol;
    for (int j = 0; j < p->nobs; j++) xo[j] = (float)(p->lo + w * rng_uniform(&rng));
    qsort(xo, (size_t)p->nobs, sizeof(float), cmp_float);
    for (int j = 0; j < p->nobs; j++)
        p->y_obs[j] = (float)(phys_exact(p, xo[j]) + p->noise * rng_normal(&rng));
    float *xb = p->x + p->ncol + p->nobs;
    xb[0] = (float)p->lo;
    if (p->nbc > 1) xb[1] = (float)p->hi;
    /* Validation: a uniform grid with both ends; test: seeded uniform draws over the domain,
     * a different set of points from the same range. */
    for (int i = 0; i < PHYS_GRID; i++) {
        p->x_val[i] = (float)(p->lo + w * i / (PHYS_GRID - 1));
        p->u_val[i] = (float)phys_exact(p, p->x_val[i]);
    }
    rng_seed(&rng, ld_mix64(p->seed, 0x74657374ULL + (uint64_t)p->kind));
    for (int i = 0; i < PHYS_GRID; i++) p->x_test[i] = (float)(p->lo + w * rng_uniform(&rng));
    qsort(p->x_test, PHYS_GRID, sizeof(float), cmp_float);
    for (int i = 0; i < PHYS_GRID; i++) p->u_test[i] = (float)phys_exact(p, p->x_test[i]);

    t->phys = p;
    p = NULL;
    t->family = FAM_PHYSICS;
    t->nclass = 1;
    snprintf(t->metric, sizeof t->metric, "solution_error");
    t->higher_better = 0;
    if (!t->name[0])
        snprintf(t->name, sizeof t->name, "%s",
                 t->phys->kind == PHYS_OSCILLATOR ? "oscillator" : "poisson");
    rc = phys_model_defaults(t, spec, err);
    if (rc != LD_OK) phys_task_free(t);
done:
    if (p) {
        Task tmp = {.phys = p};
        phys_task_free(&tmp);
    }
    return rc;
}
