/* lossprog.c: compiles a loss expression into a flat program (a tape) over shaped batch buffers
 * and runs it forward and backward (reverse mode) with no allocation. See docs/loss-language.md
 * for the term definitions and the guarded numerics, which expr.c's constant folding mirrors. */
#include "lossprog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fastmath.h"
#include "../common/lossd.h"

/* ---- guarded numerics, defined once ---- */

#define G_TINY 1e-12f   /* log/sqrt/div/pow guards */
#define G_EXP_MAX 80.0f /* exp arguments are clamped here */

/* log(max(x, tiny)); its gradient is that of the clamped value (0 below tiny). */
static inline float g_log(float x) { return flog(x > G_TINY ? x : G_TINY); }
static inline float g_dlog(float x) {
    float inv = 1.0f / (x > G_TINY ? x : 1.0f);
    return x > G_TINY ? inv : 0.0f;
}
/* exp(min(x, 80)) */
static inline float g_exp(float x) { return fexp(x < G_EXP_MAX ? x : G_EXP_MAX); }
/* b with |b| >= tiny, keeping its sign (copysign(tiny, b) below) */
static inline float g_den(float b) { return fabsf(b) < G_TINY ? copysignf(G_TINY, b) : b; }
/* sqrt(max(x, 0)); gradient 1/(2 sqrt(max(x, tiny))) for x >= 0, 0 below */
static inline float g_sqrt(float x) { return sqrtf(x > 0 ? x : 0); }
static inline float g_dsqrt(float x) {
    float d = 0.5f / sqrtf(x > G_TINY ? x : G_TINY);
    return x >= 0 ? d : 0.0f;
}
/* Odd extension of the power: s * max(|a|, tiny)^b, where s = -1 when a < 0 and b is not an even
 * integer, so that integer exponents agree with the ordinary power; the result is capped at
 * exp(80). */
static inline float g_pow(float a, float b) {
    float m = fabsf(a) > G_TINY ? fabsf(a) : G_TINY;
    float l = b * flog(m);
    float v = fexp(l < G_EXP_MAX ? l : G_EXP_MAX);
    int even = b == floorf(b) && fmodf(b, 2.0f) == 0;
    return a < 0 && !even ? -v : v;
}
/* Its gradient, 0 where a clamp is active (|a| < tiny for d/da, the exp(80) cap for both). */
static inline float g_dpow_a(float a, float b, float v) {
    int live = fabsf(a) > G_TINY;
    float m = live ? fabsf(a) : G_TINY;
    float d = b * v / (live ? a : 1.0f);
    return live && b * flog(m) < G_EXP_MAX ? d : 0.0f;
}
static inline float g_dpow_b(float a, float b, float v) {
    float l = flog(fabsf(a) > G_TINY ? fabsf(a) : G_TINY);
    return b * l < G_EXP_MAX ? v * l : 0.0f;
}
static inline float sigm(float x) { return 1.0f / (1.0f + fexp(-x)); }
static inline float ftanh(float x) {
    float c = x > 20.0f ? 20.0f : (x < -20.0f ? -20.0f : x);
    return 1.0f - 2.0f / (fexp(2.0f * c) + 1.0f);
}
/* 1 - tanh(x)^2 as 4e/(1+e)^2 with e = exp(-2|x|): no cancellation where tanh saturates (1 - v*v
 * from v = tanh(x) keeps only float's absolute precision, 1e-7 against a slope of 1e-4). */
static inline float dtanh(float x) {
    float e = fexp(-2.0f * fabsf(x));
    return 4.0f * e / ((1.0f + e) * (1.0f + e));
}
static inline float softplus(float x) { return (x > 0 ? x : 0) + flog(1.0f + fexp(-fabsf(x))); }
/* log cosh x = |x| + log(1 + exp(-2|x|)) - log 2, stable for large |x| */
static inline float logcosh(float x) {
    float a = fabsf(x);
    return a + flog(1.0f + fexp(-2.0f * a)) - 0.69314718056f;
}
static inline float huber(float d, float delta) {
    float a = fabsf(d);
    return a <= delta ? 0.5f * d * d : delta * (a - 0.5f * delta);
}
static inline float dhuber(float d, float delta) {
    return d > delta ? delta : (d < -delta ? -delta : d);
}
static inline float sgn(float x) { return (float)((x > 0) - (x < 0)); }

/* Exposed for the tests (declared there): the fast exp and log. */
float lossprog_fexp(float x);
float lossprog_flog(float x);
float lossprog_fexp(float x) { return fexp(x); }
float lossprog_flog(float x) { return flog(x); }

/* ---- the program ---- */

static int all_finite(const float *x, int n);


typedef struct Ins {
    uint8_t op, id, shape, dep; /* EOP_*, VAR_ or TERM_ id, SH_*, depends on model output */
    int a, b;                   /* operand instruction indices, -1 when unused */
    float *v, *g;               /* value and adjoint, sized by shape */
    float *aux;                 /* per-row scratch (B): a term's d value / d log pt, ... */
    float *mat;                 /* contrastive: (2B, 2B) softmax of similarities */
    int *iaux;                  /* hinge: argmax over wrong classes (B) */
    float num;                  /* value of a number */
} Ins;

struct LossProg {
    unsigned in; /* LIN_*: the inputs the family provides */
    int maxB, C, D, n, root;
    Ins *ins;
    LdArena arena;
    /* which shared quantities the program reads */
    int need_soft, need_gp, need_y1h, need_r, need_emb, need_label;
    int need_pnorm; /* p itself is read (else p holds exp(z - max) and sinv scales it) */
    /* classification: softmax p (B,C), log-sum-exp (B), pt, log pt (B), one-hot y (B,C) */
    float *p, *lse, *pt, *logpt, *y1h, *sinv;
    /* adjoints: d/dz (B,C), d/dp (B,C), d/dpt, d/dlogpt (B) */
    float *dz, *gp, *gpt, *glogpt;
    float *r; /* regression: f - y (B) */
    unsigned need_var;      /* bits VAR_*: fed variables the program reads */
    int need_x;             /* autoencoder: reads the input x (LossIn.x) */
    uint32_t need_sterm;    /* bits TERM_*: fed per-sample terms the program reads (LossIn.sterm) */
    float *gsterm[TERM_COUNT]; /* (B) adjoints of the fed per-sample terms */
    float *gvar[VAR_COUNT]; /* (B) adjoints of the fed variables that depend on the model */
    /* contrastive: normalised embeddings u (2B,D), norms (2B), d/du (2B,D), d/demb (2B,D) */
    float *u, *nrm, *du, *demb;
    float zero_adj[1]; /* adjoint sink of nodes that need none */
};

/* A term's kernels. forward writes ins->v (B values, or one for a batch term) and may keep what
 * the backward needs in ins->aux (2B floats), ins->iaux (TK_IAUX: B ints) or ins->mat (TK_MAT:
 * (2B, 2B)); backward adds ins->g times the term's derivative into the shared adjoints (glogpt,
 * gp, dz, du) or into out->g_term. prm is the term's parameter at this step. needs: TK_* bits,
 * the shared quantities the term reads. */
typedef struct TermKernel {
    void (*forward)(LossProg *lp, Ins *ins, const LossIn *in, float prm);
    void (*backward)(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm);
    unsigned needs;
    unsigned vars; /* bits VAR_*: the fed per-sample variables (VAR_IS_FED) it reads */
} TermKernel;

#define TK_OUT 1u   /* reads the model output: softmax with class logits, r with predictions */
#define TK_PNORM 2u /* class logits: reads the normalised p (not only log pt) */
#define TK_PY 4u    /* class logits: reads p - y (one-hot y), its adjoint goes through gp */
#define TK_EMB 8u   /* reads the normalised embeddings */
#define TK_LABEL 16u /* reads labels (always read with class logits) */
#define TK_IAUX 32u /* keeps B ints in ins->iaux */
#define TK_MAT 64u  /* keeps a (2B, 2B) matrix in ins->mat */
#define TK_X 128u   /* autoencoder: reads the input x (LossIn.x) */
#define TK_FED 256u /* a per-sample term the family computes: its value in LossIn.sterm[id], its
                       adjoint to LossOut.g_sterm[id] */

/* Every row's kernels, by TERM_* (defined with the kernels below). */
static const TermKernel *const term_kernel[TERM_COUNT];

static int shape_of(const LossProg *lp, const Expr *e, const int *sa, const int *sb) {
    return expr_node_shape(e, lp->in, sa ? *sa : SH_CONST, sb ? *sb : SH_CONST);
}

/* Appends the instructions of e in post-order; returns its index or -1 when out of room. */
static int emit(LossProg *lp, const Expr *e, int cap) {
    int a = -1, b = -1, sa = 0, sb = 0;
    if (e->a) {
        if ((a = emit(lp, e->a, cap)) < 0) return -1;
        sa = lp->ins[a].shape;
    }
    if (e->b) {
        if ((b = emit(lp, e->b, cap)) < 0) return -1;
        sb = lp->ins[b].shape;
    }
    if (lp->n >= cap) return -1;
    Ins *in = &lp->ins[lp->n];
    memset(in, 0, sizeof *in);
    in->op = e->op;
    in->id = e->id;
    in->a = a;
    in->b = b;
    in->shape = (uint8_t)shape_of(lp, e, e->a ? &sa : NULL, e->b ? &sb : NULL);
    if (e->op == EOP_TERM) {
        unsigned needs = term_kernel[e->id]->needs, cls = lp->in & LIN_CLASS;
        in->dep = 1;
        if (needs & TK_OUT) {
            if (cls) lp->need_soft = 1;
            if ((lp->in & LIN_PRED)) lp->need_r = 1;
        }
        if (cls && (needs & TK_PNORM)) lp->need_pnorm = 1;
        if (cls && (needs & TK_PY)) lp->need_gp = lp->need_y1h = 1;
        if (needs & TK_EMB) lp->need_emb = 1;
        if ((needs & TK_LABEL) || cls) lp->need_label = 1;
        if (lp->in & (LIN_RL | LIN_GAN)) lp->need_var |= term_kernel[e->id]->vars;
        if (needs & TK_X) lp->need_x = 1;
        if (needs & TK_FED) lp->need_sterm |= 1u << e->id;
    } else if (e->op == EOP_VAR) {
        int v = e->id;
        in->dep = VAR_IS_OUTPUT(v);
        if (v == VAR_XIN) lp->need_x = 1;
        if (VAR_IS_FED(v)) lp->need_var |= 1u << v;
        if (v == VAR_P || v == VAR_PT) lp->need_soft = 1;
        if (v == VAR_P) lp->need_gp = lp->need_pnorm = 1;
        if (v == VAR_Y && (lp->in & LIN_CLASS)) lp->need_y1h = lp->need_label = 1;
        if (v == VAR_R || (v == VAR_Y && !(lp->in & LIN_CLASS))) lp->need_r = 1;
    } else {
        in->dep = (a >= 0 && lp->ins[a].dep) || (b >= 0 && lp->ins[b].dep);
        if (e->op == EOP_NUM) in->num = (float)e->num;
    }
    return lp->n++;
}

static size_t shape_len(const LossProg *lp, int shape) {
    return shape == SH_CLASS ? (size_t)lp->maxB * lp->C : shape == SH_SAMPLE ? (size_t)lp->maxB : 1;
}

/* Arena bytes for n floats (64-byte aligned chunks). */
static size_t fbytes(size_t n) { return (n * sizeof(float) + 63) & ~(size_t)63; }

/* Walks the buffers twice: once to size the arena (a->base NULL), once to hand them out. */
static void *take(LdArena *a, size_t *need, size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    if (!a->base) {
        *need += bytes;
        return NULL;
    }
    return arena_alloc(a, bytes);
}

static void layout(LossProg *lp, LdArena *a, size_t *need) {
    size_t B = (size_t)lp->maxB, C = (size_t)lp->C, N = 2 * B, D = (size_t)lp->D;
    if (lp->need_soft) {
        lp->p = take(a, need, fbytes(B * C));
        lp->lse = take(a, need, fbytes(B));
        lp->sinv = take(a, need, fbytes(B));
        lp->pt = take(a, need, fbytes(B));
        lp->logpt = take(a, need, fbytes(B));
        lp->gpt = take(a, need, fbytes(B));
        lp->glogpt = take(a, need, fbytes(B));
    }
    if (lp->need_gp) lp->gp = take(a, need, fbytes(B * C));
    if (lp->need_y1h) lp->y1h = take(a, need, fbytes(B * C));
    if (lp->need_r) lp->r = take(a, need, fbytes(B));
    lp->dz = take(a, need, fbytes(B * C));
    for (int v = 0; v < VAR_COUNT; v++)
        if (((lp->need_var >> v) & 1u) && VAR_IS_OUTPUT(v)) lp->gvar[v] = take(a, need, fbytes(B));
    for (int k = 0; k < TERM_COUNT; k++)
        if ((lp->need_sterm >> k) & 1u) lp->gsterm[k] = take(a, need, fbytes(B));
    if (lp->need_emb) {
        lp->u = take(a, need, fbytes(N * D));
        lp->nrm = take(a, need, fbytes(N));
        lp->du = take(a, need, fbytes(N * D));
        lp->demb = take(a, need, fbytes(N * D));
    }
    for (int i = 0; i < lp->n; i++) {
        Ins *in = &lp->ins[i];
        size_t len = shape_len(lp, in->shape);
        int var = in->op == EOP_VAR;
        if (!var) in->v = take(a, need, fbytes(len));
        if (!var && in->dep) in->g = take(a, need, fbytes(len));
        if (in->op == EOP_TERM) {
            in->aux = take(a, need, fbytes(N));
            unsigned needs = term_kernel[in->id]->needs;
            if (needs & TK_IAUX) in->iaux = take(a, need, B * sizeof(int));
            if (needs & TK_MAT) in->mat = take(a, need, fbytes(N * N));
        }
    }
}

int lossprog_new(const Expr *e, int family, int max_batch, int C, int D, LossProg **out,
                 char *err) {
    LossProg *lp = NULL;
    int rc = LD_OK;
    *out = NULL;
    if ((rc = expr_check(e, family, err))) return rc;
    if (max_batch < 1) return ld_err(err, LD_EINVAL, "lossprog: max_batch %d must be >= 1", max_batch);
    unsigned inputs = lang_vocab(family).inputs; /* what the family feeds the program */
    if ((inputs & LIN_CLASS) && C < 2)
        return ld_err(err, LD_EINVAL, "lossprog: %s needs at least 2 classes, got %d", family_name(family), C);
    if (!(inputs & (LIN_CLASS | LIN_EMB | LIN_AE)) && C != 1)
        return ld_err(err, LD_EINVAL, "lossprog: %s needs C == 1, got %d", family_name(family), C);
    if ((inputs & LIN_EMB) && D < 1)
        return ld_err(err, LD_EINVAL, "lossprog: %s needs embedding dims D >= 1", family_name(family));
    if (C < 1) C = 1;
    lp = calloc(1, sizeof *lp);
    if (!lp) return ld_err(err, LD_ENOMEM, "lossprog: out of memory");
    lp->in = inputs;
    lp->maxB = max_batch;
    lp->C = C;
    lp->D = D > 0 ? D : 0;
    int cap = expr_size(e);
    lp->ins = calloc((size_t)cap, sizeof *lp->ins);
    if (!lp->ins) {
        rc = ld_err(err, LD_ENOMEM, "lossprog: out of memory");
        goto done;
    }
    lp->root = emit(lp, e, cap);
    if (lp->root < 0) {
        rc = ld_err(err, LD_EINVAL, "lossprog: malformed expression");
        goto done;
    }
    size_t need = 64;
    LdArena sizing = {0};
    layout(lp, &sizing, &need);
    if ((rc = arena_init(&lp->arena, need))) {
        ld_err(err, rc, "lossprog: out of memory for %zu bytes", need);
        goto done;
    }
    layout(lp, &lp->arena, &need);
    for (int i = 0; i < lp->n; i++)
        if (lp->ins[i].op == EOP_NUM) lp->ins[i].v[0] = lp->ins[i].num;
done:
    if (rc) {
        lossprog_free(lp);
        return rc;
    }
    *out = lp;
    return LD_OK;
}

void lossprog_free(LossProg *lp) {
    if (!lp) return;
    arena_free(&lp->arena);
    free(lp->ins);
    free(lp);
}

/* ---- elementwise kernels with broadcasting ---- */

/* Geometry of an operand read at output position (i, j): index i*rs + j*cs. */
typedef struct Geo {
    int rows, cols;
    int ars, acs, brs, bcs;
} Geo;

static void strides(int out_shape, int in_shape, int C, int *rs, int *cs) {
    if (in_shape == SH_CLASS) {
        *rs = C;
        *cs = 1;
    } else if (in_shape == SH_SAMPLE) {
        *rs = 1;
        *cs = 0;
    } else {
        *rs = 0;
        *cs = 0;
    }
    (void)out_shape;
}

static Geo geo_of(const LossProg *lp, const Ins *in, int B) {
    Geo g = {0};
    g.rows = in->shape >= SH_SAMPLE ? B : 1;
    g.cols = in->shape == SH_CLASS ? lp->C : 1;
    if (in->a >= 0) strides(in->shape, lp->ins[in->a].shape, lp->C, &g.ars, &g.acs);
    if (in->b >= 0) strides(in->shape, lp->ins[in->b].shape, lp->C, &g.brs, &g.bcs);
    return g;
}

/* Flat loops for the common case where each operand is either the output's shape or a single
 * number (ainc/binc 1 or 0); the row/column walk below handles per-sample into per-class. */
/* Runs BODY for k in [0, n): in fixed chunks of 16 and a tail, so that GCC's -O2 cost model
 * (which only vectorises loops that need no remainder) vectorises the chunks. */
#define CHUNK16(n, ...)                                                                          \
    do {                                                                                         \
        int n16_ = (n) / 16 * 16;                                                                \
        for (int c_ = 0; c_ < n16_; c_ += 16)                                                    \
            for (int l_ = 0; l_ < 16; l_++) {                                                    \
                int k = c_ + l_;                                                                 \
                __VA_ARGS__                                                                      \
            }                                                                                    \
        for (int k = n16_; k < (n); k++) {                                                       \
            __VA_ARGS__                                                                          \
        }                                                                                        \
    } while (0)

#define EW_FWD(EXPR)                                                                             \
    if (flat) {                                                                                  \
        const float *restrict A_ = A, *restrict B_ = Bv;                                         \
        float *restrict O_ = O;                                                                  \
        if (ainc && binc) {                                                                      \
            CHUNK16(n, {                                                                         \
                float a = A_[k], b = B_[k];                                                      \
                (void)b;                                                                         \
                O_[k] = (EXPR);                                                                  \
            });                                                                                  \
        } else if (ainc) {                                                                       \
            const float b = B_[0];                                                               \
            (void)b;                                                                             \
            CHUNK16(n, {                                                                         \
                float a = A_[k];                                                                 \
                O_[k] = (EXPR);                                                                  \
            });                                                                                  \
        } else {                                                                                 \
            const float a = A_[0];                                                               \
            CHUNK16(n, {                                                                         \
                float b = B_[k * binc];                                                          \
                (void)b;                                                                         \
                O_[k] = (EXPR);                                                                  \
            });                                                                                  \
        }                                                                                        \
    } else                                                                                       \
        for (int i = 0; i < G.rows; i++) {                                                       \
            const float *ap = A + i * G.ars, *bp = Bv + i * G.brs;                              \
            float *op = O + i * G.cols;                                                          \
            for (int j = 0; j < G.cols; j++) {                                                   \
                float a = ap[j * G.acs], b = bp[j * G.bcs];                                     \
                (void)b;                                                                         \
                op[j] = (EXPR);                                                                  \
            }                                                                                    \
        }

/* Accumulates g * D into the adjoint GX of an operand: elementwise when the operand has the
 * output's shape (XINC), else summed into its single number. */
#define EW_ACC(GX, XINC, D)                                                                      \
    if (XINC && binc_ == ainc_) {                                                                \
        float *restrict GX_ = GX;                                                                \
        CHUNK16(n, {                                                                             \
            float a = A_[k], b = B_[k], v = O_[k];                                               \
            (void)a;                                                                             \
            (void)b;                                                                             \
            (void)v;                                                                             \
            GX_[k] += G_[k] * (D);                                                               \
        });                                                                                      \
    } else if (XINC) {                                                                           \
        float *restrict GX_ = GX;                                                                \
        CHUNK16(n, {                                                                             \
            float a = A_[k * ainc_], b = B_[k * binc_], v = O_[k];                              \
            (void)a;                                                                             \
            (void)b;                                                                             \
            (void)v;                                                                             \
            GX_[k] += G_[k] * (D);                                                               \
        });                                                                                      \
    } else {                                                                                     \
        float s_ = 0;                                                                            \
        for (int k = 0; k < n; k++) {                                                            \
            float a = A_[k * ainc_], b = B_[k * binc_], v = O_[k];                              \
            (void)a;                                                                             \
            (void)b;                                                                             \
            (void)v;                                                                             \
            s_ += G_[k] * (D);                                                                   \
        }                                                                                        \
        GX[0] += s_;                                                                             \
    }

/* DA, DB: d out / d a and d out / d b at (a, b, v). */
#define EW_BWD(DA, DB)                                                                           \
    if (flat) {                                                                                  \
        const float *restrict A_ = A, *restrict B_ = Bv, *restrict O_ = O, *restrict G_ = GO;    \
        int ainc_ = ainc, binc_ = binc;                                                          \
        if (da_on) {                                                                             \
            EW_ACC(GA, ainc_, DA)                                                                \
        }                                                                                        \
        if (db_on) {                                                                             \
            EW_ACC(GB, binc_, DB)                                                                \
        }                                                                                        \
    } else                                                                                       \
        for (int i = 0; i < G.rows; i++) {                                                       \
            const float *ap = A + i * G.ars, *bp = Bv + i * G.brs;                              \
            const float *vp = O + i * G.cols, *gp_ = GO + i * G.cols;                           \
            float *gap = GA + i * G.ars, *gbp = GB + i * G.brs;                                  \
            for (int j = 0; j < G.cols; j++) {                                                   \
                float a = ap[j * G.acs], b = bp[j * G.bcs], v = vp[j], g = gp_[j];              \
                (void)a;                                                                         \
                (void)b;                                                                         \
                (void)v;                                                                         \
                if (da_on) gap[j * G.acs] += g * (DA);                                           \
                if (db_on) gbp[j * G.bcs] += g * (DB);                                           \
            }                                                                                    \
        }

static float one_zero[1];

/* flat: no operand is per-sample under a per-class output; n elements; ainc/binc: 1 when the
 * operand has the output's shape, 0 when it is one number. */
#define FLAT_SETUP                                                                               \
    int sa_ = lp->ins[in->a].shape, sb_ = in->b >= 0 ? lp->ins[in->b].shape : SH_CONST;         \
    int n = G.rows * G.cols;                                                                     \
    int ainc = sa_ == in->shape && n > 1, binc = sb_ == in->shape && n > 1;                      \
    int flat = (ainc || sa_ <= SH_BATCH) && (binc || sb_ <= SH_BATCH)

static void ew_forward(LossProg *lp, Ins *in, int B) {
    Geo G = geo_of(lp, in, B);
    const float *A = lp->ins[in->a].v;
    const float *Bv = in->b >= 0 ? lp->ins[in->b].v : one_zero;
    float *O = in->v;
    FLAT_SETUP;
    switch (in->op) {
    case EOP_ADD: EW_FWD(a + b); break;
    case EOP_SUB: EW_FWD(a - b); break;
    case EOP_MUL: EW_FWD(a * b); break;
    case EOP_DIV: EW_FWD(a / g_den(b)); break;
    case EOP_POW: EW_FWD(g_pow(a, b)); break;
    case EOP_NEG: EW_FWD(-a); break;
    case EOP_LOG: EW_FWD(g_log(a)); break;
    case EOP_EXP: EW_FWD(g_exp(a)); break;
    case EOP_SQRT: EW_FWD(g_sqrt(a)); break;
    case EOP_ABS: EW_FWD(fabsf(a)); break;
    case EOP_TANH: EW_FWD(ftanh(a)); break;
    case EOP_SIGMOID: EW_FWD(sigm(a)); break;
    case EOP_SOFTPLUS: EW_FWD(softplus(a)); break;
    case EOP_MIN: EW_FWD(a <= b ? a : b); break;
    case EOP_MAX: EW_FWD(a >= b ? a : b); break;
    default: break;
    }
}

static void ew_backward(LossProg *lp, Ins *in, int B) {
    Geo G = geo_of(lp, in, B);
    const Ins *ia = &lp->ins[in->a], *ib = in->b >= 0 ? &lp->ins[in->b] : NULL;
    const float *A = ia->v, *Bv = ib ? ib->v : one_zero, *O = in->v, *GO = in->g;
    int da_on = ia->dep, db_on = ib && ib->dep;
    float *GA = da_on ? ia->g : lp->zero_adj, *GB = db_on ? ib->g : lp->zero_adj;
    FLAT_SETUP;
    switch (in->op) {
    case EOP_ADD: EW_BWD(1.0f, 1.0f); break;
    case EOP_SUB: EW_BWD(1.0f, -1.0f); break;
    case EOP_MUL: EW_BWD(b, a); break;
    case EOP_DIV: EW_BWD(1.0f / g_den(b), fabsf(b) < G_TINY ? 0.0f : -v / g_den(b)); break;
    case EOP_POW: {
        /* v = s m^b with m = max(|a|, tiny): dv/da = b v / m sign(a) (0 when clamped),
         * dv/db = v log m */
        EW_BWD(g_dpow_a(a, b, v), g_dpow_b(a, b, v));
        break;
    }
    case EOP_NEG: EW_BWD(-1.0f, 0.0f); break;
    case EOP_LOG: EW_BWD(g_dlog(a), 0.0f); break;
    case EOP_EXP: EW_BWD(a < G_EXP_MAX ? v : 0.0f, 0.0f); break;
    case EOP_SQRT: EW_BWD(g_dsqrt(a), 0.0f); break;
    case EOP_ABS: EW_BWD(sgn(a), 0.0f); break;
    case EOP_TANH: EW_BWD(dtanh(a), 0.0f); break;
    case EOP_SIGMOID: EW_BWD(v * (1.0f - v), 0.0f); break;
    case EOP_SOFTPLUS: EW_BWD(sigm(a), 0.0f); break;
    case EOP_MIN: EW_BWD(a <= b ? 1.0f : 0.0f, a <= b ? 0.0f : 1.0f); break;
    case EOP_MAX: EW_BWD(a >= b ? 1.0f : 0.0f, a >= b ? 0.0f : 1.0f); break;
    default: break;
    }
}

/* ---- shared quantities ---- */

/* z (B,C) -> p (B,C), lse (B), pt, logpt (B): one stable softmax per run. */
static void softmax_forward(LossProg *lp, const LossIn *in) {
    int B = in->B, C = lp->C, n = B * C;
    float *restrict p = lp->p, *restrict m = lp->gpt, *restrict s = lp->glogpt; /* scratch */
    const float *restrict z = in->z;
    /* Loops run in chunks of 16 lanes (our buffers are padded to 16 floats; z is the caller's,
     * so it gets a scalar tail) so that GCC's -O2 cost model vectorises them. */
    int full = n / 16 * 16;
    float lo = z[0], hi = z[0];
    {
        float vlo[16], vhi[16];
        for (int l = 0; l < 16; l++) vlo[l] = vhi[l] = z[0];
        for (int c = 0; c < full / 16; c++)
            for (int l = 0; l < 16; l++) {
                float x = z[c * 16 + l];
                vlo[l] = x < vlo[l] ? x : vlo[l];
                vhi[l] = x > vhi[l] ? x : vhi[l];
            }
        for (int l = 0; l < 16; l++) {
            lo = vlo[l] < lo ? vlo[l] : lo;
            hi = vhi[l] > hi ? vhi[l] : hi;
        }
        for (int k = full; k < n; k++) {
            lo = z[k] < lo ? z[k] : lo;
            hi = z[k] > hi ? z[k] : hi;
        }
    }
    if (lo >= -80.0f && hi <= 80.0f) {
        /* every exp(z) is a normal float and no row sum overflows: no shift needed */
        for (int i = 0; i < B; i++) m[i] = 0;
        memcpy(p, z, (size_t)n * sizeof *p); /* in place, the exp loop vectorises */
    } else {
        /* subtract each row's max; the class loops run outside the batch loops: B independent
         * chains instead of one dependent chain per row */
        for (int i = 0; i < B; i++) m[i] = z[i * C];
        for (int j = 1; j < C; j++)
            for (int i = 0; i < B; i++) m[i] = z[i * C + j] > m[i] ? z[i * C + j] : m[i];
        for (int i = 0; i < B; i++)
            for (int j = 0; j < C; j++) p[i * C + j] = z[i * C + j] - m[i];
    }
    for (int c = 0; c < (n + 15) / 16; c++)
        for (int l = 0; l < 16; l++) p[c * 16 + l] = fexp(p[c * 16 + l]);
    for (int i = 0; i < B; i++) s[i] = p[i * C];
    for (int j = 1; j < C; j++)
        for (int i = 0; i < B; i++) s[i] += p[i * C + j];
    for (int i = B; i < (B + 15) / 16 * 16; i++) s[i] = 1.0f; /* padding */
    for (int c = 0; c < (B + 15) / 16; c++)
        for (int l = 0; l < 16; l++) lp->lse[c * 16 + l] = m[c * 16 + l] + flog(s[c * 16 + l]);
    float *restrict sinv = lp->sinv;
    for (int i = 0; i < B; i++) sinv[i] = 1.0f / s[i];
    if (lp->need_pnorm)
        for (int j = 0; j < C; j++)
            for (int i = 0; i < B; i++) p[i * C + j] *= sinv[i];
    for (int i = 0; i < B; i++) {
        int y = in->label[i];
        lp->logpt[i] = z[i * C + y] - lp->lse[i];
        lp->pt[i] = p[i * C + y] * (lp->need_pnorm ? 1.0f : sinv[i]);
    }
}

/* 1 - pt computed from log pt so that it stays accurate (and consistent with log pt) near pt=1. */
static inline float one_minus_pt(float L, float pt) {
    return L > -1e-3f ? -L * (1.0f + L * (0.5f + L * (1.0f / 6.0f))) : 1.0f - pt;
}

/* ---- contrastive terms ---- */

/* emb (2B,D) -> u (2B,D) rows scaled to unit norm (norm guarded at tiny). */
static void normalise_forward(LossProg *lp, const LossIn *in) {
    int N = 2 * in->B, D = lp->D;
    for (int k = 0; k < N; k++) {
        const float *e = in->emb + (size_t)k * D;
        float s = 0;
        for (int d = 0; d < D; d++) s += e[d] * e[d];
        float n = sqrtf(s);
        lp->nrm[k] = n;
        float inv = 1.0f / (n > G_TINY ? n : G_TINY);
        float *u = lp->u + (size_t)k * D;
        for (int d = 0; d < D; d++) u[d] = e[d] * inv;
    }
}

/* du (2B,D) -> demb (2B,D) through the normalisation. */
static void normalise_backward(LossProg *lp, int B) {
    int N = 2 * B, D = lp->D;
    for (int k = 0; k < N; k++) {
        const float *u = lp->u + (size_t)k * D, *du = lp->du + (size_t)k * D;
        float *de = lp->demb + (size_t)k * D;
        float n = lp->nrm[k];
        if (n > G_TINY) {
            float dot = 0;
            for (int d = 0; d < D; d++) dot += u[d] * du[d];
            for (int d = 0; d < D; d++) de[d] = (du[d] - u[d] * dot) / n;
        } else {
            for (int d = 0; d < D; d++) de[d] = du[d] / G_TINY;
        }
    }
}

static inline int con_label(const LossIn *in, int k) { return in->label[k % in->B]; }

/* NT-Xent (supcon = 0) or supervised contrastive (supcon = 1) over the 2B rows. mat (2B,2B)
 * receives the softmax of similarities over l != k; aux (2B) the number of positives. */
static float contrastive_forward(LossProg *lp, Ins *ins, const LossIn *in, float tau, int supcon) {
    int B = in->B, N = 2 * B, D = lp->D;
    float inv_tau = 1.0f / g_den(tau);
    float *S = ins->mat;
    double total = 0;
    for (int k = 0; k < N; k++) {
        const float *uk = lp->u + (size_t)k * D;
        float *Sk = S + (size_t)k * N;
        float mx = -INFINITY;
        for (int l = 0; l < N; l++) {
            if (l == k) continue;
            const float *ul = lp->u + (size_t)l * D;
            float s = 0;
            for (int d = 0; d < D; d++) s += uk[d] * ul[d];
            Sk[l] = s * inv_tau;
            mx = Sk[l] > mx ? Sk[l] : mx;
        }
        float se = 0;
        for (int l = 0; l < N; l++)
            if (l != k) se += fexp(Sk[l] - mx);
        float lse = mx + flog(se);
        float pos = 0;
        int npos = 0;
        if (supcon) {
            int lk = con_label(in, k);
            for (int l = 0; l < N; l++)
                if (l != k && con_label(in, l) == lk) {
                    pos += Sk[l];
                    npos++;
                }
        } else {
            pos = Sk[k < B ? k + B : k - B];
            npos = 1;
        }
        ins->aux[k] = (float)npos;
        total += lse - pos / (float)npos;
        for (int l = 0; l < N; l++) Sk[l] = l == k ? 0.0f : fexp(Sk[l] - lse);
    }
    return (float)(total / N);
}

static void contrastive_backward(LossProg *lp, Ins *ins, const LossIn *in, float tau, int supcon,
                                 float g) {
    int B = in->B, N = 2 * B, D = lp->D;
    float inv_tau = 1.0f / g_den(tau);
    float *S = ins->mat;
    float scale = g / (float)N * inv_tau;
    for (int k = 0; k < N; k++) {
        float *Sk = S + (size_t)k * N;
        const float *uk = lp->u + (size_t)k * D;
        float *duk = lp->du + (size_t)k * D;
        int lk = supcon ? con_label(in, k) : 0, pk = k < B ? k + B : k - B;
        float wpos = 1.0f / ins->aux[k];
        for (int l = 0; l < N; l++) {
            if (l == k) continue;
            int is_pos = supcon ? con_label(in, l) == lk : l == pk;
            float dS = scale * (Sk[l] - (is_pos ? wpos : 0.0f));
            const float *ul = lp->u + (size_t)l * D;
            float *dul = lp->du + (size_t)l * D;
            for (int d = 0; d < D; d++) {
                duk[d] += dS * ul[d];
                dul[d] += dS * uk[d];
            }
        }
    }
}

/* ---- terms: one kernel pair per row of EXPR_TERMS ---- */

static float param_of(const LossProg *lp, const Ins *in) {
    static const double defs[TERM_COUNT] = {
#define X_DEF(id, name, reads, hp, def, ...) def,
        EXPR_TERMS(X_DEF)
#undef X_DEF
    };
    return in->a >= 0 ? lp->ins[in->a].v[0] : (float)defs[in->id];
}

/* q^n for a small non-negative integer n, or the guarded power otherwise. */
static inline float qpow(float q, float gam, int ig) {
    if (ig >= 0) {
        float r = 1.0f;
        for (int k = 0; k < ig; k++) r *= q;
        return r;
    }
    return fexp(gam * flog(q > G_TINY ? q : G_TINY));
}

/* ce = -log pt */
static void ce_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    for (int i = 0; i < in->B; i++) ins->v[i] = -lp->logpt[i];
}
static void ce_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    for (int i = 0; i < in->B; i++) lp->glogpt[i] -= ins->g[i];
}

/* Terms that are a function of log pt whose derivative the forward left in aux. */
static void logpt_aux_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    for (int i = 0; i < in->B; i++) lp->glogpt[i] += ins->g[i] * ins->aux[i];
}

/* focal(g) = -(1 - pt)^g log pt */
static void focal_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    /* v = -q^g L with q = 1 - pt, L = log pt; k = dv/dL = -q^g + g q^(g-1) pt L */
    int B = in->B;
    float *v = ins->v, *k = ins->aux;
    float gam = prm;
    int ig = (gam == floorf(gam) && gam >= 0 && gam <= 8) ? (int)gam : -1;
    const float *restrict lpt = lp->logpt, *restrict ppt = lp->pt;
    if (ig == 2) { /* the common case, kept branch-free so that it vectorises */
        for (int i = 0; i < B; i++) {
            float L = lpt[i], pt = ppt[i];
            float q = one_minus_pt(L, pt);
            q = q > 0 ? q : 0;
            v[i] = -q * q * L;
            k[i] = -q * q + 2.0f * q * pt * L;
        }
        return;
    }
    if (ig < 0) { /* a schedule such as focal(2*(1 - t)): the guarded power, branch-free */
        for (int i = 0; i < B; i++) {
            float L = lpt[i], pt = ppt[i];
            float q = one_minus_pt(L, pt);
            float m = q > G_TINY ? q : G_TINY;
            float qg = fexp(gam * flog(m));
            v[i] = -qg * L;
            k[i] = -qg + gam * (qg / m) * pt * L;
        }
        return;
    }
    for (int i = 0; i < B; i++) {
        float L = lpt[i], pt = ppt[i];
        float q = one_minus_pt(L, pt);
        q = q > 0 ? q : 0;
        float qg = qpow(q, gam, ig);
        float qg1 = ig == 0 ? 0.0f : (ig > 0 ? qpow(q, gam - 1, ig - 1) : qg / (q > G_TINY ? q : G_TINY));
        v[i] = -qg * L;
        k[i] = -qg + gam * qg1 * pt * L;
    }
}

/* poly1(e) = -log pt + e (1 - pt) */
static void poly1_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    for (int i = 0; i < in->B; i++) {
        ins->v[i] = -lp->logpt[i] + prm * (1.0f - lp->pt[i]);
        ins->aux[i] = -1.0f - prm * lp->pt[i];
    }
}

/* smooth(e): cross-entropy against (1 - e) one-hot + e / C uniform */
static void smooth_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++) {
        const float *z = in->z + (size_t)i * C;
        float sz = 0;
        for (int j = 0; j < C; j++) sz += z[j];
        float sum_logp = sz - (float)C * lp->lse[i];
        ins->v[i] = -(1.0f - prm) * lp->logpt[i] - prm / (float)C * sum_logp;
    }
}
static void smooth_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    /* dv/dz_j = (1-e)(p_j - [j=y]) + (e/C)(C p_j - 1) = p_j - e/C - (1-e)[j=y] */
    int C = lp->C;
    for (int i = 0; i < in->B; i++) {
        const float *p = lp->p + (size_t)i * C;
        float *dz = lp->dz + (size_t)i * C, gi = ins->g[i], ec = prm / (float)C;
        for (int j = 0; j < C; j++) dz[j] += gi * (p[j] - ec);
        dz[in->label[i]] -= gi * (1.0f - prm);
    }
}

/* The rl terms, over the fed per-sample variables (docs/rl.md, "Loss terms"): reinforce =
 * -logp ret, a2c = -logp adv (ret and adv are data: no gradient flows through them), td2 = td^2
 * (semi-gradient: the family applies dtd/dv = -1), and entropy = ent, the policy's entropy. */
static void reinforce_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    for (int i = 0; i < in->B; i++) ins->v[i] = -in->var[VAR_LOGP][i] * in->var[VAR_RET][i];
}
static void reinforce_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    for (int i = 0; i < in->B; i++) lp->gvar[VAR_LOGP][i] -= ins->g[i] * in->var[VAR_RET][i];
}
static void a2c_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    for (int i = 0; i < in->B; i++) ins->v[i] = -in->var[VAR_LOGP][i] * in->var[VAR_ADV][i];
}
static void a2c_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    for (int i = 0; i < in->B; i++) lp->gvar[VAR_LOGP][i] -= ins->g[i] * in->var[VAR_ADV][i];
}
static void td2_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    for (int i = 0; i < in->B; i++) ins->v[i] = in->var[VAR_TD][i] * in->var[VAR_TD][i];
}
static void td2_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    for (int i = 0; i < in->B; i++) lp->gvar[VAR_TD][i] += 2.0f * ins->g[i] * in->var[VAR_TD][i];
}

/* The adversarial terms over a GAN's fed discriminator logits dx (real sample) and dgz
 * (generated sample), each the textbook loss of the side in->side trains (docs/loss-language.md,
 * "Adversarial terms"):
 *   generator:     gan = log(1 - sigmoid(dgz)) = -softplus(dgz)   (minimax, Goodfellow et al. 2014)
 *                  nsgan = -log sigmoid(dgz) = softplus(-dgz)     (non-saturating)
 *                  wgan = hinge_gan = -dgz                         (Arjovsky et al.; Lim & Ye)
 *   discriminator: gan = nsgan = softplus(-dx) + softplus(dgz)    (binary cross-entropy)
 *                  wgan = dgz - dx                                 (the critic; the family clips
 *                                                                   its weights, docs/families.md)
 *                  hinge_gan = max(0, 1 - dx) + max(0, 1 + dgz)
 * Kernel k: 0 gan, 1 nsgan, 2 wgan, 3 hinge_gan. */
static inline void adv_one(int k, int side, float a, float b, float *v, float *da, float *db) {
    if (side == LOSS_SIDE_D) {
        *v = k <= 1   ? softplus(-a) + softplus(b)
             : k == 2 ? b - a
                      : (1.0f - a > 0 ? 1.0f - a : 0.0f) + (1.0f + b > 0 ? 1.0f + b : 0.0f);
        *da = k <= 1 ? sigm(a) - 1.0f : k == 2 ? -1.0f : (1.0f - a > 0 ? -1.0f : 0.0f);
        *db = k <= 1 ? sigm(b) : k == 2 ? 1.0f : (1.0f + b > 0 ? 1.0f : 0.0f);
        return;
    }
    *v = k == 0 ? -softplus(b) : k == 1 ? softplus(-b) : -b;
    *da = 0.0f;
    *db = k == 0 ? -sigm(b) : k == 1 ? sigm(b) - 1.0f : -1.0f;
}
static void adv_forward(Ins *ins, const LossIn *in, int k) {
    const float *dx = in->var[VAR_DX], *dg = in->var[VAR_DGZ];
    float da, db;
    for (int i = 0; i < in->B; i++) adv_one(k, in->side, dx[i], dg[i], &ins->v[i], &da, &db);
}
static void adv_backward(LossProg *lp, Ins *ins, const LossIn *in, int k) {
    const float *dx = in->var[VAR_DX], *dg = in->var[VAR_DGZ], *g = ins->g;
    float v, da, db;
    for (int i = 0; i < in->B; i++) {
        adv_one(k, in->side, dx[i], dg[i], &v, &da, &db);
        lp->gvar[VAR_DX][i] += g[i] * da;
        lp->gvar[VAR_DGZ][i] += g[i] * db;
    }
}

int lossprog_adversarial(int term, int side, const float *dx, const float *dgz, int B, float *loss, float *gdx,
                         float *gdgz) {
    int k = term == TERM_GAN ? 0 : term == TERM_NSGAN ? 1 : term == TERM_WGAN ? 2 : term == TERM_HINGE_GAN ? 3 : -1;
    double sum = 0;
    *loss = NAN;
    if (k < 0 || B < 1) return LD_EINVAL;
    for (int i = 0; i < B; i++) {
        float v, da, db;
        adv_one(k, side, dx[i], dgz[i], &v, &da, &db);
        sum += v;
        gdx[i] = da / (float)B;
        gdgz[i] = db / (float)B;
    }
    *loss = (float)(sum / B);
    int ok = isfinite(*loss) && all_finite(gdx, B) && all_finite(gdgz, B);
    return ok ? LD_OK : LD_EFAILED;
}
#define ADV_KERNELS(name, k)                                                                     \
    static void name##_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) { adv_forward(ins, in, k); } \
    static void name##_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {  \
        adv_backward(lp, ins, in, k);                                                            \
    }
ADV_KERNELS(gan, 0)
ADV_KERNELS(nsgan, 1)
ADV_KERNELS(wgan, 2)
ADV_KERNELS(hinge_gan, 3)
#undef ADV_KERNELS

/* entropy = -sum_j p_j log p_j; in rl the policy's entropy ent, fed by the family */
static void entropy_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    int C = lp->C;
    if (lp->in & LIN_RL) {
        for (int i = 0; i < in->B; i++) ins->v[i] = in->var[VAR_ENT][i];
        return;
    }
    for (int i = 0; i < in->B; i++) {
        const float *z = in->z + (size_t)i * C, *p = lp->p + (size_t)i * C;
        float h = 0;
        for (int j = 0; j < C; j++) h -= p[j] * (z[j] - lp->lse[i]);
        ins->v[i] = h;
    }
}
static void entropy_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    /* dH/dz_j = -p_j (log p_j + H) */
    int C = lp->C;
    if (lp->in & LIN_RL) {
        for (int i = 0; i < in->B; i++) lp->gvar[VAR_ENT][i] += ins->g[i];
        return;
    }
    for (int i = 0; i < in->B; i++) {
        const float *z = in->z + (size_t)i * C, *p = lp->p + (size_t)i * C;
        float *dz = lp->dz + (size_t)i * C, gi = ins->g[i], h = ins->v[i], lse = lp->lse[i];
        for (int j = 0; j < C; j++) dz[j] -= gi * p[j] * (z[j] - lse + h);
    }
}

/* hinge = max(0, 1 + max_{j != y} z_j - z_y); iaux keeps the arg max */
static void hinge_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++) {
        const float *z = in->z + (size_t)i * C;
        int y = in->label[i], jm = y == 0 ? 1 : 0;
        for (int j = 0; j < C; j++)
            if (j != y && z[j] > z[jm]) jm = j;
        float m = 1.0f + z[jm] - z[y];
        ins->iaux[i] = jm;
        ins->v[i] = m > 0 ? m : 0;
    }
}
static void hinge_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++) {
        if (ins->v[i] <= 0) continue;
        float *dz = lp->dz + (size_t)i * C;
        dz[ins->iaux[i]] += ins->g[i];
        dz[in->label[i]] -= ins->g[i];
    }
}

/* The distance terms: a function of d = p - y summed over classes (class logits), or of
 * d = r = f - y (predictions). FN(d, delta) is the value, DFN(d, delta) its derivative. */
#define DISTANCE_KERNELS(name, FN, DFN)                                                          \
    static void name##_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {                \
        int B = in->B, C = lp->C;                                                                \
        float delta = fabsf(prm), *v = ins->v;                                                   \
        (void)delta;                                                                             \
        if (lp->in & LIN_CLASS) {                                                                \
            for (int i = 0; i < B; i++) {                                                        \
                const float *p = lp->p + (size_t)i * C, *y = lp->y1h + (size_t)i * C;            \
                float s = 0;                                                                     \
                for (int j = 0; j < C; j++) {                                                    \
                    float d = p[j] - y[j];                                                       \
                    s += FN;                                                                     \
                }                                                                                \
                v[i] = s;                                                                        \
            }                                                                                    \
        } else {                                                                                 \
            for (int i = 0; i < B; i++) {                                                        \
                float d = lp->r[i];                                                              \
                v[i] = FN;                                                                       \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void name##_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {  \
        int B = in->B, C = lp->C;                                                                \
        float delta = fabsf(prm);                                                                \
        const float *g = ins->g;                                                                 \
        (void)delta;                                                                             \
        if (lp->in & LIN_CLASS) {                                                                \
            for (int i = 0; i < B; i++) {                                                        \
                const float *p = lp->p + (size_t)i * C, *y = lp->y1h + (size_t)i * C;            \
                float *gp = lp->gp + (size_t)i * C, gi = g[i];                                   \
                for (int j = 0; j < C; j++) {                                                    \
                    float d = p[j] - y[j];                                                       \
                    gp[j] += gi * (DFN);                                                         \
                }                                                                                \
            }                                                                                    \
        } else {                                                                                 \
            for (int i = 0; i < B; i++) {                                                        \
                float d = lp->r[i];                                                              \
                lp->dz[i] += g[i] * (DFN);                                                       \
            }                                                                                    \
        }                                                                                        \
    }
DISTANCE_KERNELS(mse, d * d, 2 * d)
DISTANCE_KERNELS(mae, fabsf(d), sgn(d))
DISTANCE_KERNELS(huber, huber(d, delta), dhuber(d, delta))
DISTANCE_KERNELS(logcosh, logcosh(d), ftanh(d))
#undef DISTANCE_KERNELS

/* The autoencoder's terms, over its input x and reconstruction xh = z (B, C features): rec =
 * sum_j (xh_j - x_j)^2; bce_rec = -sum_j [x_j log xh_j + (1 - x_j) log(1 - xh_j)], xh read as
 * Bernoulli probabilities (the decoder's sigmoid outputs; the logs guarded as everywhere:
 * log(max(v, 1e-12))); perc is computed by the family (a fixed network's features) and fed. */
/* rec's row kernels, with restrict parameters and chunks of 16 so that GCC's -O2 cost model
 * vectorises them (no alias checks, no remainder): a row's squared distance as 16 partial sums,
 * and dz += g (xh - x). */
static float rec_row(const float *restrict xh, const float *restrict x, int C) {
    int C16 = C / 16 * 16;
    float acc[16] = {0}, s = 0;
    for (int j = 0; j < C16; j += 16)
        for (int l = 0; l < 16; l++) acc[l] += (xh[j + l] - x[j + l]) * (xh[j + l] - x[j + l]);
    for (int j = C16; j < C; j++) s += (xh[j] - x[j]) * (xh[j] - x[j]);
    for (int l = 0; l < 16; l++) s += acc[l];
    return s;
}
static void rec_row_bwd(float *restrict dz, const float *restrict xh, const float *restrict x, float g, int C) {
    int C16 = C / 16 * 16;
    for (int j = 0; j < C16; j += 16)
        for (int l = 0; l < 16; l++) dz[j + l] += g * (xh[j + l] - x[j + l]);
    for (int j = C16; j < C; j++) dz[j] += g * (xh[j] - x[j]);
}
static void rec_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++) ins->v[i] = rec_row(in->z + (size_t)i * C, in->x + (size_t)i * C, C);
}
static void rec_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++)
        rec_row_bwd(lp->dz + (size_t)i * C, in->z + (size_t)i * C, in->x + (size_t)i * C, 2.0f * ins->g[i], C);
}
static float bce_row(const float *restrict xh, const float *restrict x, int C) {
    int C16 = C / 16 * 16;
    float acc[16] = {0}, s = 0;
    for (int j = 0; j < C16; j += 16)
        for (int l = 0; l < 16; l++)
            acc[l] -= x[j + l] * g_log(xh[j + l]) + (1.0f - x[j + l]) * g_log(1.0f - xh[j + l]);
    for (int j = C16; j < C; j++) s -= x[j] * g_log(xh[j]) + (1.0f - x[j]) * g_log(1.0f - xh[j]);
    for (int l = 0; l < 16; l++) s += acc[l];
    return s;
}
static void bce_row_bwd(float *restrict dz, const float *restrict xh, const float *restrict x, float g, int C) {
    int C16 = C / 16 * 16;
    for (int j = 0; j < C16; j += 16)
        for (int l = 0; l < 16; l++)
            dz[j + l] += g * ((1.0f - x[j + l]) * g_dlog(1.0f - xh[j + l]) - x[j + l] * g_dlog(xh[j + l]));
    for (int j = C16; j < C; j++) dz[j] += g * ((1.0f - x[j]) * g_dlog(1.0f - xh[j]) - x[j] * g_dlog(xh[j]));
}
static void bce_rec_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++) ins->v[i] = bce_row(in->z + (size_t)i * C, in->x + (size_t)i * C, C);
}
static void bce_rec_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    int C = lp->C;
    for (int i = 0; i < in->B; i++)
        bce_row_bwd(lp->dz + (size_t)i * C, in->z + (size_t)i * C, in->x + (size_t)i * C, ins->g[i], C);
}
/* Per-sample terms the family computes (perc): the value from in->sterm[id], the adjoint out to
 * out->g_sterm[id]. */
static void fed_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    memcpy(ins->v, in->sterm[ins->id], (size_t)in->B * sizeof(float));
}
static void fed_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    float *g = lp->gsterm[ins->id];
    for (int i = 0; i < in->B; i++) g[i] += ins->g[i];
}

/* Batch terms the caller computes (l2, a family's own terms): the value in in->term[id], the
 * adjoint out to out->g_term[id]. */
static void given_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) { ins->v[0] = in->term[ins->id]; }
static void given_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    out->g_term[ins->id] += ins->g[0];
}

static void infonce_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    ins->v[0] = contrastive_forward(lp, ins, in, prm, 0);
}
static void infonce_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    contrastive_backward(lp, ins, in, prm, 0, ins->g[0]);
}
static void supcon_fwd(LossProg *lp, Ins *ins, const LossIn *in, float prm) {
    ins->v[0] = contrastive_forward(lp, ins, in, prm, 1);
}
static void supcon_bwd(LossProg *lp, Ins *ins, const LossIn *in, LossOut *out, float prm) {
    contrastive_backward(lp, ins, in, prm, 1, ins->g[0]);
}

/* The kernels of each row of EXPR_TERMS, found by the row's ID: term_k_ID. A row without its
 * kernels does not compile. */
static const TermKernel term_k_CE = {ce_fwd, ce_bwd, TK_OUT, 0};
static const TermKernel term_k_FOCAL = {focal_fwd, logpt_aux_bwd, TK_OUT, 0};
static const TermKernel term_k_HINGE = {hinge_fwd, hinge_bwd, TK_OUT | TK_IAUX, 0};
static const TermKernel term_k_POLY1 = {poly1_fwd, logpt_aux_bwd, TK_OUT, 0};
static const TermKernel term_k_SMOOTH = {smooth_fwd, smooth_bwd, TK_OUT | TK_PNORM, 0};
static const TermKernel term_k_MSE = {mse_fwd, mse_bwd, TK_OUT | TK_PNORM | TK_PY, 0};
static const TermKernel term_k_MAE = {mae_fwd, mae_bwd, TK_OUT | TK_PNORM | TK_PY, 0};
static const TermKernel term_k_HUBER = {huber_fwd, huber_bwd, TK_OUT | TK_PNORM | TK_PY, 0};
static const TermKernel term_k_LOGCOSH = {logcosh_fwd, logcosh_bwd, TK_OUT | TK_PNORM | TK_PY, 0};
static const TermKernel term_k_INFONCE = {infonce_fwd, infonce_bwd, TK_EMB | TK_MAT, 0};
static const TermKernel term_k_SUPCON = {supcon_fwd, supcon_bwd, TK_EMB | TK_LABEL | TK_MAT, 0};
static const TermKernel term_k_PHYS = {given_fwd, given_bwd, 0, 0};
static const TermKernel term_k_BC = {given_fwd, given_bwd, 0, 0};
static const TermKernel term_k_L2 = {given_fwd, given_bwd, 0, 0};
static const TermKernel term_k_ENTROPY = {entropy_fwd, entropy_bwd, TK_OUT | TK_PNORM, 1u << VAR_ENT};
static const TermKernel term_k_REINFORCE = {reinforce_fwd, reinforce_bwd, 0, 1u << VAR_LOGP | 1u << VAR_RET};
static const TermKernel term_k_A2C = {a2c_fwd, a2c_bwd, 0, 1u << VAR_LOGP | 1u << VAR_ADV};
static const TermKernel term_k_TD2 = {td2_fwd, td2_bwd, 0, 1u << VAR_TD};
#define ADV_VARS (1u << VAR_DX | 1u << VAR_DGZ)
static const TermKernel term_k_GAN = {gan_fwd, gan_bwd, 0, ADV_VARS};
static const TermKernel term_k_NSGAN = {nsgan_fwd, nsgan_bwd, 0, ADV_VARS};
static const TermKernel term_k_WGAN = {wgan_fwd, wgan_bwd, 0, ADV_VARS};
static const TermKernel term_k_HINGE_GAN = {hinge_gan_fwd, hinge_gan_bwd, 0, ADV_VARS};
static const TermKernel term_k_REC = {rec_fwd, rec_bwd, TK_OUT | TK_X, 0};
static const TermKernel term_k_BCE_REC = {bce_rec_fwd, bce_rec_bwd, TK_OUT | TK_X, 0};
static const TermKernel term_k_PERC = {fed_fwd, fed_bwd, TK_FED, 0};

static const TermKernel *const term_kernel[TERM_COUNT] = {
#define X_KERNEL(id, ...) [TERM_##id] = &term_k_##id,
    EXPR_TERMS(X_KERNEL)
#undef X_KERNEL
};

/* ---- run ---- */

/* Whether no element is inf or nan (exponent bits all ones); an integer OR, so it vectorises. */
static int all_finite(const float *x, int n) {
    uint32_t acc = 0;
    int full = n / 16 * 16;
    /* exponent bits all ones carry into the sign bit: integer-only, so it vectorises */
    for (int c = 0; c < full / 16; c++) {
        uint32_t u[16];
        memcpy(u, x + c * 16, sizeof u);
        for (int l = 0; l < 16; l++) acc |= ((u[l] & 0x7f800000u) + 0x00800000u) & 0x80000000u;
    }
    for (int k = full; k < n; k++) {
        uint32_t u;
        memcpy(&u, &x[k], sizeof u);
        acc |= ((u & 0x7f800000u) + 0x00800000u) & 0x80000000u;
    }
    return acc == 0;
}

static void bind_var(LossProg *lp, Ins *ins, const LossIn *in) {
    switch (ins->id) {
    case VAR_Z:
    case VAR_F:
        ins->v = (float *)in->z; /* read only */
        ins->g = lp->dz;
        break;
    case VAR_P:
        ins->v = lp->p;
        ins->g = lp->gp;
        break;
    case VAR_PT:
        ins->v = lp->pt;
        ins->g = lp->gpt;
        break;
    case VAR_Y:
        ins->v = (lp->in & LIN_CLASS) ? lp->y1h : (float *)in->y;
        ins->g = lp->zero_adj;
        break;
    case VAR_R:
        ins->v = lp->r;
        ins->g = lp->dz; /* dr/df = 1 */
        break;
    case VAR_XH:
        ins->v = (float *)in->z; /* read only */
        ins->g = lp->dz;
        break;
    case VAR_XIN:
        ins->v = (float *)in->x; /* read only */
        ins->g = lp->zero_adj;
        break;
    case VAR_T:
        ins->v = lp->zero_adj; /* rebound below */
        ins->g = lp->zero_adj;
        break;
    default: /* a fed variable (VAR_IS_FED) */
        ins->v = (float *)in->var[ins->id]; /* read only */
        ins->g = lp->gvar[ins->id] ? lp->gvar[ins->id] : lp->zero_adj;
        break;
    }
}

int lossprog_run(LossProg *lp, const LossIn *in, LossOut *out) {
    int B = in->B, C = lp->C;
    memset(out, 0, sizeof *out);
    if (B < 1 || B > lp->maxB || (!in->z && !(lp->in & (LIN_EMB | LIN_RL | LIN_GAN)))) {
        out->loss = NAN;
        return LD_EFAILED;
    }
    float tval[1] = {in->t};
    if (lp->need_label) {
        if (!in->label) goto bad;
        for (int i = 0; i < B; i++)
            if (in->label[i] < 0 || ((lp->in & LIN_CLASS) && in->label[i] >= C)) goto bad;
    }
    if (lp->need_r && !in->y) goto bad;
    if (lp->need_emb && !in->emb) goto bad;
    for (int v = 0; v < VAR_COUNT; v++)
        if (((lp->need_var >> v) & 1u) && !in->var[v]) goto bad;
    if (lp->need_x && !in->x) goto bad;
    for (int k = 0; k < TERM_COUNT; k++)
        if (((lp->need_sterm >> k) & 1u) && !in->sterm[k]) goto bad;

    /* shared quantities */
    if (lp->need_soft) softmax_forward(lp, in);
    if (lp->need_y1h) {
        memset(lp->y1h, 0, (size_t)B * C * sizeof(float));
        for (int i = 0; i < B; i++) lp->y1h[(size_t)i * C + in->label[i]] = 1.0f;
    }
    if (lp->need_r)
        for (int i = 0; i < B; i++) lp->r[i] = in->z[i] - in->y[i];
    if (lp->need_emb) normalise_forward(lp, in);

    /* forward */
    for (int n = 0; n < lp->n; n++) {
        Ins *ins = &lp->ins[n];
        switch (ins->op) {
        case EOP_NUM: break;
        case EOP_VAR:
            bind_var(lp, ins, in);
            if (ins->id == VAR_T) ins->v = tval;
            break;
        case EOP_TERM: term_kernel[ins->id]->forward(lp, ins, in, param_of(lp, ins)); break;
        case EOP_SUM:
            for (int i = 0; i < B; i++) {
                const float *a = lp->ins[ins->a].v + (size_t)i * C;
                float s = 0;
                for (int j = 0; j < C; j++) s += a[j];
                ins->v[i] = s;
            }
            break;
        default: ew_forward(lp, ins, B); break;
        }
    }
    Ins *root = &lp->ins[lp->root];
    double loss;
    if (root->shape == SH_SAMPLE) {
        double s = 0;
        for (int i = 0; i < B; i++) s += root->v[i];
        loss = s / B;
    } else {
        loss = root->v[0];
    }
    out->loss = (float)loss;

    /* backward: zero adjoints, seed the root, walk the tape in reverse */
    for (int n = 0; n < lp->n; n++) {
        Ins *ins = &lp->ins[n];
        if (ins->op != EOP_VAR && ins->dep) memset(ins->g, 0, shape_len(lp, ins->shape) * sizeof(float));
    }
    memset(lp->dz, 0, (size_t)B * C * sizeof(float));
    if (lp->need_soft) {
        memset(lp->gpt, 0, (size_t)B * sizeof(float));
        memset(lp->glogpt, 0, (size_t)B * sizeof(float));
    }
    if (lp->need_gp) memset(lp->gp, 0, (size_t)B * C * sizeof(float));
    if (lp->need_emb) memset(lp->du, 0, (size_t)2 * B * lp->D * sizeof(float));
    for (int v = 0; v < VAR_COUNT; v++)
        if (lp->gvar[v]) memset(lp->gvar[v], 0, (size_t)B * sizeof(float));
    for (int k = 0; k < TERM_COUNT; k++)
        if (lp->gsterm[k]) memset(lp->gsterm[k], 0, (size_t)B * sizeof(float));
    if (root->shape == SH_SAMPLE)
        for (int i = 0; i < B; i++) root->g[i] = 1.0f / (float)B;
    else
        root->g[0] = 1.0f;
    for (int n = lp->n - 1; n >= 0; n--) {
        Ins *ins = &lp->ins[n];
        if (!ins->dep) continue;
        switch (ins->op) {
        case EOP_VAR: break;
        case EOP_TERM: term_kernel[ins->id]->backward(lp, ins, in, out, param_of(lp, ins)); break;
        case EOP_SUM: {
            Ins *a = &lp->ins[ins->a];
            for (int i = 0; i < B; i++) {
                float *ga = a->g + (size_t)i * C, gi = ins->g[i];
                for (int j = 0; j < C; j++) ga[j] += gi;
            }
            break;
        }
        default: ew_backward(lp, ins, B); break;
        }
    }
    /* shared quantities back to z */
    if (lp->need_soft) {
        for (int i = 0; i < B; i++) {
            const float *p = lp->p + (size_t)i * C;
            float *dz = lp->dz + (size_t)i * C;
            float gl = lp->glogpt[i] + lp->gpt[i] * lp->pt[i]; /* d pt = pt d log pt */
            if (!lp->need_pnorm) {
                float gs = gl * lp->sinv[i]; /* p holds exp(z - shift) */
                for (int j = 0; j < C; j++) dz[j] -= p[j] * gs;
            } else if (lp->need_gp) {
                const float *gp = lp->gp + (size_t)i * C;
                float dot = 0;
                for (int j = 0; j < C; j++) dot += gp[j] * p[j];
                for (int j = 0; j < C; j++) dz[j] += p[j] * (gp[j] - dot - gl);
            } else {
                for (int j = 0; j < C; j++) dz[j] -= p[j] * gl;
            }
            dz[in->label[i]] += gl;
        }
    }
    if (lp->need_emb) normalise_backward(lp, B);

    out->dz = lp->dz;
    out->demb = lp->need_emb ? lp->demb : NULL;
    int bad_var = 0;
    for (int v = 0; v < VAR_COUNT; v++)
        if (lp->gvar[v]) {
            out->g_var[v] = lp->gvar[v];
            bad_var |= !all_finite(lp->gvar[v], B);
        }
    for (int k = 0; k < TERM_COUNT; k++)
        if (lp->gsterm[k]) {
            out->g_sterm[k] = lp->gsterm[k];
            bad_var |= !all_finite(lp->gsterm[k], B);
        }
    int bad = bad_var || !isfinite(out->loss) || !all_finite(out->g_term, TERM_COUNT) || !all_finite(lp->dz, B * C) ||
              (lp->need_emb && !all_finite(lp->demb, 2 * B * lp->D));
    return bad ? LD_EFAILED : LD_OK;
bad:
    out->loss = NAN;
    return LD_EFAILED;
}
