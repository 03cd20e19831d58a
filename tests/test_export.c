/* test_export.c: exported PyTorch and NumPy code computes the same loss (and, for PyTorch, the
 * same autograd gradient) as the compiled program, for every term and random trees; LaTeX and
 * canonical text exports; error paths. The Python half is skipped when python3 or torch is
 * missing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../api/rpc.h"
#include "../evaluator/rollout.h"
#include "../common/lossd.h"
#include "../lang/lossprog.h"
#include "../search/internal.h"

#define PY "/usr/bin/python3"
#define MAXCASE 560
#define NB 6
#define NC 4
#define ND 5

static const struct {
    int fam;
    const char *src;
} fixed[] = {
    {FAM_CLASSIFICATION, "ce"},
    {FAM_CLASSIFICATION, "focal(2)"},
    {FAM_CLASSIFICATION, "focal(0.5)"},
    {FAM_CLASSIFICATION, "focal(2*(1 - t))"},
    {FAM_CLASSIFICATION, "hinge"},
    {FAM_CLASSIFICATION, "poly1(1)"},
    {FAM_CLASSIFICATION, "smooth(0.1)"},
    {FAM_CLASSIFICATION, "entropy"},
    {FAM_CLASSIFICATION, "mse"},
    {FAM_CLASSIFICATION, "mae"},
    {FAM_CLASSIFICATION, "huber(0.3)"},
    {FAM_CLASSIFICATION, "logcosh"},
    {FAM_CLASSIFICATION, "0.7*ce + 0.3*focal(2) + 0.01*l2"},
    {FAM_CLASSIFICATION, "-sum(y*log(p)) + sum(sqrt(p))/4"},
    {FAM_CLASSIFICATION, "(1 - pt)^2*ce + sum(exp(z - 3))/(1 + pt)"},
    {FAM_CLASSIFICATION, "sum(tanh(z) + sigmoid(z) + softplus(z) + abs(z))"},
    {FAM_CLASSIFICATION, "min(ce, 2) + max(pt, 0.2) + sum(min(z, 0.5))"},
    {FAM_CLASSIFICATION, "(-pt)^1.5 + ce^0.5 + pt^-2/100"},
    {FAM_REGRESSION, "mse"},
    {FAM_REGRESSION, "mae"},
    {FAM_REGRESSION, "huber(0.5)"},
    {FAM_REGRESSION, "huber(1 + t)"},
    {FAM_REGRESSION, "logcosh"},
    {FAM_REGRESSION, "log(1 + r^2) + 0.1*abs(f) + l2"},
    {FAM_REGRESSION, "sqrt(r^2 + 1) + exp(r/4) + r^3/3"},
    {FAM_PHYSICS, "mse + 0.1*phys + bc"},
    {FAM_PHYSICS, "mse*(1 + phys) + bc^2 + l2*phys"},
    {FAM_CONTRASTIVE, "infonce(0.5)"},
    {FAM_CONTRASTIVE, "supcon(0.3) + 0.5*infonce + 0.1*l2"},
    {FAM_GENERATIVE, "rec + 0.1*perc"},
    {FAM_GENERATIVE, "0.5*bce_rec + sum(abs(xh - x)) + 0.01*l2"},
    {FAM_GENERATIVE, "(1 - t)*rec + t*bce_rec + sum(x*log(xh))/10"},
};

/* The same bounded random trees as test_lossprog.c. */
/* What one task of family fam provides: the generative family's cases are its autoencoder's (a
 * GAN loss exports with another signature, dx and dgz: tests/test_gan_terms.c checks those). */
static LangVocab task_vocab(int fam) {
    return fam == FAM_GENERATIVE ? lang_vocab_inputs(LIN_AE) : lang_vocab(fam);
}

/* Whether e reads only what one task of fam provides. */
static int in_task_vocab(const Expr *e, int fam) {
    if (!e) return 1;
    LangVocab v = task_vocab(fam);
    if (e->op == EOP_VAR && !((v.vars >> e->id) & 1u)) return 0;
    if (e->op == EOP_TERM && !((v.terms >> e->id) & 1u)) return 0;
    return in_task_vocab(e->a, fam) && in_task_vocab(e->b, fam);
}

static Expr *rand_leaf(LdRng *r, int fam) {
    for (;;) {
        uint32_t k = rng_below(r, 3);
        if (k == 0) return expr_num((double)(1 + (int)rng_below(r, 8)) / 4.0);
        char err[LD_ERR_MAX] = "";
        Expr *e;
        if (k == 1) {
            e = expr_var((int)rng_below(r, VAR_COUNT));
        } else {
            Expr *param = rng_below(r, 3) == 0 ? expr_num(0.25 + 0.25 * rng_below(r, 8)) : NULL;
            e = expr_term((int)rng_below(r, TERM_COUNT), param);
        }
        int rc = in_task_vocab(e, fam) ? expr_check(e, fam, err) : LD_EINVAL;
        if (rc == LD_OK || strstr(err, "does not depend") || (k == 1 && strstr(err, "per-class")))
            return e;
        expr_free(e);
    }
}

static Expr *rand_tree(LdRng *r, int fam, int depth) {
    if (depth <= 0 || rng_below(r, 4) == 0) return rand_leaf(r, fam);
    static const int ops[] = {EOP_ADD, EOP_SUB, EOP_MUL, EOP_DIV, EOP_POW, EOP_NEG, EOP_LOG,
                              EOP_EXP, EOP_SQRT, EOP_ABS, EOP_TANH, EOP_SIGMOID, EOP_SOFTPLUS,
                              EOP_SUM, EOP_MIN, EOP_MAX};
    int op = ops[rng_below(r, sizeof ops / sizeof *ops)];
    Expr *a = rand_tree(r, fam, depth - 1), *b = NULL;
    switch (op) {
    case EOP_DIV:
        b = expr_op(EOP_ADD, expr_num(1.5), expr_op(EOP_ABS, rand_tree(r, fam, depth - 1), NULL));
        break;
    case EOP_POW: b = expr_num((double)(1 + (int)rng_below(r, 3))); break;
    case EOP_LOG: a = expr_op(EOP_ADD, expr_num(1), expr_op(EOP_ABS, a, NULL)); break;
    case EOP_EXP: a = expr_op(EOP_TANH, a, NULL); break;
    case EOP_SQRT: a = expr_op(EOP_ADD, expr_num(0.5), expr_op(EOP_ABS, a, NULL)); break;
    case EOP_ADD:
    case EOP_SUB:
    case EOP_MUL:
    case EOP_MIN:
    case EOP_MAX: b = rand_tree(r, fam, depth - 1); break;
    default: break;
    }
    return expr_op(op, a, b);
}

/* Inputs per family, shared by C and Python. */
typedef struct Data {
    float z[NB * NC], y[NB], emb[2 * NB * ND];
    float rl[6 * NB]; /* rl: logp, ret, adv, v, td, ent (VAR_LOGP..VAR_ENT), NB each */
    float x[NB * NC];  /* generative: the inputs x in [0, 1]; z holds the reconstructions xh */
    int label[NB];
} Data;

static Data data[FAM_COUNT];
static const float T = 0.3f, L2 = 0.7f, PHYS = 0.4f, BC = 0.2f;

static void make_data(void) {
    LdRng r;
    rng_seed(&r, 99);
    for (int f = 0; f < FAM_COUNT; f++) {
        Data *d = &data[f];
        for (int k = 0; k < NB * NC; k++) d->z[k] = 1.5f * rng_normal(&r);
        for (int i = 0; i < NB; i++) {
            d->y[i] = rng_normal(&r);
            d->label[i] = (int)rng_below(&r, f == FAM_CONTRASTIVE ? 3 : NC);
        }
        for (int k = 0; k < 2 * NB * ND; k++) d->emb[k] = rng_normal(&r);
        for (int k = 0; k < 6 * NB; k++) d->rl[k] = rng_normal(&r);
        for (int k = 0; k < NB * NC; k++) d->x[k] = (float)rng_uniform(&r);
        if (f == FAM_GENERATIVE) /* reconstructions are probabilities */
            for (int k = 0; k < NB * NC; k++) d->z[k] = 0.05f + 0.9f * (float)rng_uniform(&r);
        for (int i = 0; i < NB; i++) {
            d->rl[i] = -0.1f - 2.0f * (float)rng_uniform(&r);        /* logp < 0 */
            d->rl[5 * NB + i] = 0.1f + 0.6f * (float)rng_uniform(&r); /* ent > 0 */
        }
    }
}

typedef struct Case {
    int fam;
    char src[EXPR_TEXT_MAX];
    double loss, grad[2 * NB * ND + 6 * NB + 3];
    int ngrad;
} Case;

/* Runs the compiled program; returns 0 when the loss is finite. */
static int run_case(Case *c) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(c->src, err);
    assert_non_null(e);
    int fam = c->fam, C = fam == FAM_CLASSIFICATION || fam == FAM_GENERATIVE ? NC : 1,
        D = fam == FAM_CONTRASTIVE ? ND : 0;
    LossProg *lp = NULL;
    assert_int_equal(lossprog_new(e, fam, NB, C, D, &lp, err), LD_OK);
    Data *d = &data[fam];
    int reg = fam == FAM_REGRESSION || fam == FAM_PHYSICS;
    LossIn in = {.B = NB, .t = T, .z = d->z, .label = reg ? NULL : d->label, .y = reg ? d->y : NULL,
                 .emb = fam == FAM_CONTRASTIVE ? d->emb : NULL, .term[TERM_L2] = L2, .term[TERM_PHYS] = PHYS, .term[TERM_BC] = BC};
    for (int v = VAR_LOGP; v <= VAR_ENT; v++) in.var[v] = d->rl + (v - VAR_LOGP) * NB;
    float advn[NB]; /* the rl family's normalised advantages; the export computes them from adv */
    rl_advn(advn, d->rl + (VAR_ADV - VAR_LOGP) * NB, NB);
    in.var[VAR_ADVN] = advn;
    /* generative: perc under the identity as the feature network (the Python side passes
     * feat=lambda v: v), its adjoint chained into xh here */
    float perc[NB];
    for (int i = 0; i < NB; i++) {
        perc[i] = 0;
        for (int j = 0; j < NC; j++) perc[i] += (d->z[i * NC + j] - d->x[i * NC + j]) * (d->z[i * NC + j] - d->x[i * NC + j]);
    }
    if (fam == FAM_GENERATIVE) {
        in.x = d->x;
        in.sterm[TERM_PERC] = perc;
    }
    LossOut out;
    int rc = lossprog_run(lp, &in, &out);
    c->loss = out.loss;
    int n = fam == FAM_CONTRASTIVE ? 2 * NB * ND : fam == FAM_RL ? 6 * NB : NB * C;
    const float *g = fam == FAM_CONTRASTIVE ? out.demb : out.dz;
    for (int k = 0; k < n && rc == LD_OK; k++) {
        if (fam == FAM_GENERATIVE) {
            const float *gp = out.g_sterm[TERM_PERC];
            c->grad[k] = g[k] + (gp ? gp[k / NC] * 2.0f * (d->z[k] - d->x[k]) : 0.0f);
        } else if (fam != FAM_RL) c->grad[k] = g[k];
        else { /* d/d(logp ret adv v td ent); none for the targets ret and adv */
            const float *gv = out.g_var[VAR_LOGP + k / NB];
            c->grad[k] = gv ? gv[k % NB] : 0.0;
        }
    }
    c->grad[n] = out.g_term[TERM_L2];
    c->grad[n + 1] = out.g_term[TERM_PHYS];
    c->grad[n + 2] = out.g_term[TERM_BC];
    c->ngrad = n + 3;
    lossprog_free(lp);
    expr_free(e);
    return rc;
}

/* Adds the case (fam, src) when it parses, checks and runs finite; required cases must. */
static void add_case(Case *cases, int *n, int fam, const char *src, int required) {
    char err[LD_ERR_MAX];
    if (*n >= MAXCASE) {
        assert_false(required);
        return;
    }
    Case *c = &cases[*n];
    c->fam = fam;
    snprintf(c->src, sizeof c->src, "%s", src);
    Expr *e = expr_parse(src, err);
    int ok = e && in_task_vocab(e, fam) && expr_check(e, fam, err) == LD_OK;
    expr_free(e);
    if (ok) ok = run_case(c) == LD_OK && fabs(c->loss) < 1e6;
    if (!ok && required) print_error("case '%s' (%s) does not run: %s\n", src, family_name(fam), err);
    assert_true(ok || !required);
    if (ok) (*n)++;
}

/* Every term of the language, with its default and with a given parameter, and every operator
 * on each family's operands: nothing in EXPR_TERMS or EXPR_OPS ships without an export that
 * runs and agrees. */
static void add_every_term_and_op(Case *cases, int *n) {
    static const char *const samp[FAM_COUNT][2] = {
        [FAM_CLASSIFICATION] = {"pt", "ce"},
        [FAM_REGRESSION] = {"r", "f"},
        [FAM_PHYSICS] = {"r", "phys"},
        [FAM_CONTRASTIVE] = {"infonce", "supcon(0.5)"},
        [FAM_RL] = {"v", "a2c"},
        [FAM_GENERATIVE] = {"rec", "bce_rec + perc"},
    };
    static const char *const tname[TERM_COUNT] = {
#define X(id, spelling, ...) spelling,
        EXPR_TERMS(X)
#undef X
    };
    static const int thp[TERM_COUNT] = {
#define X(id, spelling, fams, hp, ...) hp,
        EXPR_TERMS(X)
#undef X
    };
    static const char *const oname[EOP_COUNT] = {
#define X(id, spelling, arity) spelling,
        EXPR_OPS(X)
#undef X
    };
    static const int oar[EOP_COUNT] = {
#define X(id, spelling, arity) arity,
        EXPR_OPS(X)
#undef X
    };
    char src[512];
    int nterm = 0, nop[EOP_COUNT] = {0};
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        for (int k = 0; k < TERM_COUNT; k++) {
            if (!(task_vocab(fam).terms & (1u << k))) continue;
            /* a batch term alone does not depend on the output: add the family's own */
            const char *plus = k == TERM_L2 || (TERM_IS_BATCH(k) && fam != FAM_CONTRASTIVE) ? " + " : "";
            const char *base = *plus ? samp[fam][0] : "";
            snprintf(src, sizeof src, "%s%s%s", tname[k], plus, base);
            add_case(cases, n, fam, src, 1);
            if (thp[k]) {
                snprintf(src, sizeof src, "%s(0.7)", tname[k]);
                add_case(cases, n, fam, src, 1);
                snprintf(src, sizeof src, "%s(0.5 + 0.5*t)", tname[k]);
                add_case(cases, n, fam, src, 1);
            }
            nterm++;
        }
        if (fam == FAM_RL) { /* advn: a variable the export derives from adv */
            add_case(cases, n, fam, "-logp*advn - 0.01*ent + 0.5*td2", 1);
            add_case(cases, n, fam, "-logp*max(min(advn, 2), -2) + td2", 1);
        }
        const char *a = samp[fam][0], *b = samp[fam][1];
        for (int op = EOP_ADD; op < EOP_COUNT; op++) {
            int before = *n;
            if (op == EOP_SUM && fam == FAM_GENERATIVE) {
                add_case(cases, n, fam, "sum((xh - x)^2) + sum(abs(xh - 0.5))", 1);
            } else if (op == EOP_SUM) {
                if (fam != FAM_CLASSIFICATION) continue;
                add_case(cases, n, fam, "sum(z)", 1);
                add_case(cases, n, fam, "sum(p*y) + sum(z^2)/10", 1);
            } else if (op == EOP_NEG) {
                snprintf(src, sizeof src, "-(%s) + 2*%s", a, b);
                add_case(cases, n, fam, src, 1);
            } else if (oar[op] == 1) {
                snprintf(src, sizeof src, "%s(%s)", oname[op], a);
                add_case(cases, n, fam, src, 1);
                snprintf(src, sizeof src, "%s(%s - 0.5)", oname[op], b);
                add_case(cases, n, fam, src, 1);
                if (fam == FAM_CLASSIFICATION) {
                    snprintf(src, sizeof src, "sum(%s(z)) + sum(%s(p - y))", oname[op], oname[op]);
                    add_case(cases, n, fam, src, 1);
                }
            } else if (op == EOP_MIN || op == EOP_MAX) {
                snprintf(src, sizeof src, "%s(%s, %s) + %s(0.5, %s)", oname[op], a, b, oname[op], a);
                add_case(cases, n, fam, src, 1);
                if (fam == FAM_CLASSIFICATION) {
                    snprintf(src, sizeof src, "sum(%s(p, y)) + sum(%s(z, pt))", oname[op], oname[op]);
                    add_case(cases, n, fam, src, 1);
                }
            } else {
                snprintf(src, sizeof src, "(%s) %s (%s)", a, oname[op], b);
                add_case(cases, n, fam, src, 1);
                snprintf(src, sizeof src, "(%s) %s (0.5 + t) + 0.25 %s (%s)", a, oname[op], oname[op], b);
                add_case(cases, n, fam, src, 1);
                if (fam == FAM_CLASSIFICATION) {
                    snprintf(src, sizeof src, "sum((p %s (1 + y)) + (z %s pt))", oname[op], oname[op]);
                    add_case(cases, n, fam, src, 1);
                }
            }
            nop[op] += *n - before;
        }
    }
    assert_true(nterm >= TERM_COUNT);
    for (int op = EOP_ADD; op < EOP_COUNT; op++) {
        if (!nop[op]) print_error("operator '%s' has no export case\n", oname[op]);
        assert_true(nop[op] > 0);
    }
}

/* Candidates as the search makes them: the typed grammar's random trees and their mutations,
 * with every term, operator and variable of the family allowed. Non-finite ones are skipped. */
static void add_grammar_cases(Case *cases, int *n, int per_family) {
    LdRng r;
    rng_seed(&r, 77);
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        Grammar g = {.family = fam, .ops = 0, .max_nodes = 24, .max_depth = 7};
        for (int k = 0; k < TERM_COUNT; k++) {
            Expr *e = expr_term(k, NULL);
            char err[LD_ERR_MAX];
            if (in_task_vocab(e, fam) && (expr_check(e, fam, err) == LD_OK || strstr(err, "does not depend")))
                g.terms |= 1u << k;
            expr_free(e);
        }
        g.vars = task_vocab(fam).vars;
        for (int op = EOP_ADD; op < EOP_COUNT; op++) g.ops |= 1u << op;
        int got = 0;
        for (int tries = 0; got < per_family && tries < 50 * per_family; tries++) {
            Expr *e = grammar_random(&g, &r);
            if (!e) continue;
            for (int m = 0; m < 2 && e; m++) {
                char src[EXPR_TEXT_MAX];
                expr_print(e, src, sizeof src);
                int before = *n;
                add_case(cases, n, fam, src, 0);
                got += *n - before;
                Expr *child = grammar_mutate(&g, e, &r, NULL);
                expr_free(e);
                e = child;
            }
            expr_free(e);
        }
    }
}

static int have_torch(void) {
    if (access(PY, X_OK) != 0) return 0;
    return system(PY " -c 'import torch, numpy' >/dev/null 2>&1") == 0;
}

static void write_floats(FILE *f, const char *name, const float *x, int n) {
    fprintf(f, "%s=[", name);
    for (int k = 0; k < n; k++) fprintf(f, "%s%.9g", k ? "," : "", x[k]);
    fprintf(f, "],");
}

/* Writes the exported module of case k, its functions renamed lossd_loss[_value]_k. Each case
 * is a module of its own, as a user pastes it: a helper one export omits cannot be supplied by
 * another case's export. */
static void write_export(FILE *f, const Case *c, int k, const char *format) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(c->src, err);
    char *code = expr_export(e, c->fam, format, err);
    if (!code) print_error("export '%s' as %s: %s\n", c->src, format, err);
    assert_non_null(code);
    /* rename every lossd_ function of the module with the suffix _k */
    const char *s = code;
    for (;;) {
        const char *at = strstr(s, "lossd_");
        if (!at) break;
        const char *end = at;
        while ((*end >= 'a' && *end <= 'z') || *end == '_') end++;
        fwrite(s, 1, (size_t)(end - s), f);
        if (*end == '(') fprintf(f, "_%d", k);
        s = end;
    }
    fprintf(f, "%s\n\n", s);
    free(code);
    expr_free(e);
}

static const char driver[] =
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import torch\n"
    "torch.set_default_dtype(torch.float64)\n"
    "import numpy as np\n"
    "import importlib\n"
    "import lossd_data\n"
    "D = lossd_data\n"
    "for k, fam in enumerate(D.CASES):\n"
    "    d = D.DATA[fam]\n"
    "    try:\n"
    "        lossd_torch = importlib.import_module('lossd_torch_%d' % k)\n"
    "        lossd_numpy = importlib.import_module('lossd_numpy_%d' % k)\n"
    "        kw = dict(t=D.T, l2=torch.tensor(D.L2, requires_grad=True))\n"
    "        nkw = dict(t=D.T, l2=D.L2)\n"
    "        if fam == 2:\n"
    "            kw.update(phys=torch.tensor(D.PHYS, requires_grad=True), bc=torch.tensor(D.BC, requires_grad=True))\n"
    "            nkw.update(phys=D.PHYS, bc=D.BC)\n"
    "        lab = torch.tensor(d['label'])\n"
    "        if fam == D.GEN:\n"
    "            xin = torch.tensor(d['x']).reshape(D.B, D.C)\n"
    "            x = torch.tensor(d['z']).reshape(D.B, D.C)\n"
    "            kw.update(feat=lambda v: v)\n"
    "            nkw.update(feat=lambda v: v)\n"
    "            tgt = xin\n"
    "        elif fam == D.RL:\n"
    "            x = torch.tensor(d['rl']).reshape(6, D.B)\n"
    "            tgt = None\n"
    "        elif fam == 3:\n"
    "            x = torch.tensor(d['emb']).reshape(2 * D.B, D.D)\n"
    "            tgt = lab\n"
    "        elif fam == 0:\n"
    "            x = torch.tensor(d['z']).reshape(D.B, D.C)\n"
    "            tgt = lab\n"
    "        else:\n"
    "            x = torch.tensor(d['z'])\n"
    "            tgt = torch.tensor(d['y'])\n"
    "        nx = x.numpy().copy()\n"
    "        x.requires_grad_()\n"
    "        args = list(x.unbind(0)) if fam == D.RL else [tgt, x] if fam == D.GEN else [x, tgt]\n"
    "        nargs = list(nx) if fam == D.RL else [tgt.numpy(), nx] if fam == D.GEN else [nx, tgt.numpy()]\n"
    "        loss = getattr(lossd_torch, 'lossd_loss_%d' % k)(*args, **kw)\n"
    "        loss.backward()\n"
    "        g = (x.grad if x.grad is not None else torch.zeros_like(x)).reshape(-1).tolist()\n"
    "        for name in ('l2', 'phys', 'bc'):\n"
    "            v = kw.get(name)\n"
    "            g.append(float(v.grad) if v is not None and v.grad is not None else 0.0)\n"
    "        nv = getattr(lossd_numpy, 'lossd_loss_value_%d' % k)(*nargs, **nkw)\n"
    "        ng = getattr(lossd_numpy, 'lossd_grad_%d' % k)(*nargs, **nkw).reshape(-1)\n"
    "        gd = float(np.max(np.abs(ng - np.array(g[:ng.size])))) / max(float(np.max(np.abs(ng))), 1e-3)\n"
    "        print(k, repr(float(loss)), repr(float(nv)), repr(gd), ' '.join(repr(v) for v in g))\n"
    "    except Exception as ex:\n"
    "        print(k, 'ERROR', type(ex).__name__, str(ex).replace('\\n', ' '))\n";

static void test_python_parity(void **state) {
    (void)state;
    if (!have_torch()) {
        print_message("skipping: " PY " with torch and numpy is not available\n");
        skip();
    }
    make_data();
    static Case cases[MAXCASE];
    int n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        cases[n].fam = fixed[i].fam;
        snprintf(cases[n].src, sizeof cases[n].src, "%s", fixed[i].src);
        assert_int_equal(run_case(&cases[n]), LD_OK);
        n++;
    }
    add_every_term_and_op(cases, &n);
    int nsystematic = n;
    add_grammar_cases(cases, &n, 30);
    print_message("export cases: %d fixed, %d for every term and operator, %d from the search's "
                  "grammar\n", (int)(sizeof fixed / sizeof *fixed), nsystematic - (int)(sizeof fixed / sizeof *fixed),
                  n - nsystematic);
    /* random trees: 15 per family that run finite */
    LdRng r;
    rng_seed(&r, 2024);
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        int got = 0, tries = 0;
        while (got < 15 && tries++ < 5000 && n < MAXCASE) {
            char err[LD_ERR_MAX];
            Expr *e = rand_tree(&r, fam, 1 + (int)rng_below(&r, 4));
            if (expr_check(e, fam, err) != LD_OK && strstr(err, "per-class"))
                e = expr_op(EOP_SUM, e, NULL);
            if (expr_check(e, fam, err) == LD_OK) {
                cases[n].fam = fam;
                expr_print(e, cases[n].src, sizeof cases[n].src);
                if (run_case(&cases[n]) == LD_OK && fabs(cases[n].loss) < 1e6) {
                    n++;
                    got++;
                }
            }
            expr_free(e);
        }
    }

    char dir[] = "/tmp/lossd_export_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    for (int k = 0; k < n; k++) {
        const char *formats[2] = {"pytorch", "numpy"}, *mods[2] = {"torch", "numpy"};
        for (int f = 0; f < 2; f++) {
            snprintf(path, sizeof path, "%s/lossd_%s_%d.py", dir, mods[f], k);
            FILE *fm = fopen(path, "w");
            assert_non_null(fm);
            write_export(fm, &cases[k], k, formats[f]);
            fclose(fm);
        }
    }
    snprintf(path, sizeof path, "%s/lossd_data.py", dir);
    FILE *fd = fopen(path, "w");
    snprintf(path, sizeof path, "%s/driver.py", dir);
    FILE *fdr = fopen(path, "w");
    assert_true(fd && fdr);
    fprintf(fd, "B = %d\nC = %d\nD = %d\nT = %.9g\nL2 = %.9g\nPHYS = %.9g\nBC = %.9g\nRL = %d\nGEN = %d\nDATA = {}\n",
            NB, NC, ND, T, L2, PHYS, BC, FAM_RL, FAM_GENERATIVE);
    for (int f = 0; f < FAM_COUNT; f++) {
        fprintf(fd, "DATA[%d] = dict(", f);
        write_floats(fd, "z", data[f].z, f == FAM_CLASSIFICATION || f == FAM_GENERATIVE ? NB * NC : NB);
        write_floats(fd, "x", data[f].x, NB * NC);
        write_floats(fd, "y", data[f].y, NB);
        write_floats(fd, "emb", data[f].emb, 2 * NB * ND);
        write_floats(fd, "rl", data[f].rl, 6 * NB);
        fprintf(fd, "label=[");
        for (int i = 0; i < NB; i++) fprintf(fd, "%s%d", i ? "," : "", data[f].label[i]);
        fprintf(fd, "])\n");
    }
    fprintf(fd, "CASES = [");
    for (int k = 0; k < n; k++) fprintf(fd, "%s%d", k ? "," : "", cases[k].fam);
    fprintf(fd, "]\n");
    fputs(driver, fdr);
    fclose(fd);
    fclose(fdr);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, PY " %s/driver.py %s 2>&1", dir, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char line[1 << 16];
    int seen = 0, bad = 0;
    double worst_l = 0, worst_g = 0, worst_ng = 0;
    int ng_kinks = 0;
    while (fgets(line, sizeof line, p)) {
        char *s = line;
        int k = (int)strtol(s, &s, 10);
        if (k < 0 || k >= n || strstr(line, "ERROR") || strstr(line, "Error")) {
            print_error("python: %s", line);
            bad++;
            continue;
        }
        Case *c = &cases[k];
        double lt = strtod(s, &s), ln = strtod(s, &s), ngd = strtod(s, &s);
        double gmax = 0, gdiff = 0;
        for (int j = 0; j < c->ngrad; j++) {
            double g = strtod(s, &s);
            gmax = fmax(gmax, fabs(g));
            gdiff = fmax(gdiff, fabs(g - c->grad[j]));
        }
        /* gradients below 1e-3 are compared at float precision, not relative to themselves */
        double scale = fmax(gmax, 1e-3);
        double el = fabs(lt - c->loss) / fmax(1.0, fabs(lt)), en = fabs(ln - lt) / fmax(1.0, fabs(lt));
        double eg = gdiff / scale;
        worst_l = fmax(worst_l, fmax(el, en));
        worst_g = fmax(worst_g, eg);
        worst_ng = fmax(worst_ng, ngd);
        seen++;
        /* the NumPy gradient is a numerical one: allowed to miss only at a kink */
        if (ngd > 1e-3) ng_kinks++;
        if (el > 1e-4 || en > 1e-6 || eg > 1e-4 || !isfinite(lt) || !(ngd < 1e-1)) {
            print_error("%s (%s): lossprog %.9g, torch %.9g, numpy %.9g, gradient max diff %.3g of "
                        "%.3g, numpy gradient scaled diff %.3g\n",
                        c->src, family_name(c->fam), c->loss, lt, ln, gdiff, gmax, ngd);
            bad++;
        }
    }
    int st = pclose(p);
    print_message("python parity: %d of %d expressions compared, %d mismatches; worst loss rel "
                  "%.3g, worst scaled gradient diff %.3g (tolerance 1e-4); numpy numerical "
                  "gradient: worst scaled diff %.3g, %d above 1e-3\n",
                  seen, n, bad, worst_l, worst_g, worst_ng, ng_kinks);
    assert_true(ng_kinks <= n / 20);
    if (bad == 0 && st == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        (void)system(cmd);
    } else {
        print_message("files kept in %s\n", dir);
    }
    assert_int_equal(st, 0);
    assert_int_equal(seen, n);
    assert_int_equal(bad, 0);
}

static char *export_of(const char *src, int fam, const char *format) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(src, err);
    assert_non_null(e);
    char *s = expr_export(e, fam, format, err);
    if (!s) print_error("export: %s\n", err);
    assert_non_null(s);
    expr_free(e);
    return s;
}

static void test_text_formats(void **state) {
    (void)state;
    char *s = export_of("0.3*focal(2) + 0.7*ce", FAM_CLASSIFICATION, "expr");
    assert_string_equal(s, "0.7*ce + 0.3*focal(2)\n");
    free(s);
    s = export_of("0.7*ce + 0.3*focal(2)", FAM_CLASSIFICATION, "latex");
    assert_string_equal(s, "0.7 \\cdot \\mathrm{CE} + 0.3 \\cdot \\mathrm{focal}_{\\gamma=2}\n");
    free(s);
    s = export_of("sum(p^2)/(1 - t) + sqrt(abs(pt)) - log(pt)", FAM_CLASSIFICATION, "latex");
    assert_string_equal(s, "\\frac{\\sum_{j} p^{2}}{1 - t} + \\sqrt{\\left|p_t\\right|} - "
                           "\\log\\left(p_t\\right)\n");
    free(s);
    s = export_of("huber(1 + t) + mse", FAM_REGRESSION, "latex");
    assert_string_equal(s, "\\mathrm{huber}_{\\delta=1 + t} + \\mathrm{MSE}\n");
    free(s);
    s = export_of("0.7*ce + 0.3*focal(2)", FAM_CLASSIFICATION, "pytorch");
    assert_non_null(strstr(s, "import torch\nimport torch.nn.functional as F\n"));
    assert_non_null(strstr(s, "def lossd_loss(z, target, t=0.0, l2=0.0):\n    \"\"\"0.7*ce + 0.3*focal(2)"));
    free(s);
    s = export_of("mse + phys", FAM_PHYSICS, "numpy");
    assert_non_null(strstr(s, "def lossd_loss_value(f, target, t=0.0, l2=0.0, phys=0.0, bc=0.0):"));
    free(s);
    /* the generative helpers (_adv, _digits_feat) are one template in lang/export.c with each
     * library's spellings substituted: the lines that differ, in full */
    static const char *const gen_torch[] = {
        "        return {\"gan\": -F.softplus(dgz), \"nsgan\": F.softplus(-dgz)}.get(name, -dgz)\n",
        "        return torch.clamp(1.0 - dx, min=0.0) + torch.clamp(1.0 + dgz, min=0.0)\n",
        "    return F.softplus(-dx) + F.softplus(dgz)\n",
        "    w0 = torch.tensor(n[\"w0\"]).reshape(n[\"inputs\"], n[\"hidden\"])\n    b0 = torch.tensor(n[\"b0\"])\n",
        "    return lambda v: torch.tanh(v @ w0.to(v.dtype) + b0.to(v.dtype))\n",
        "        raise ValueError(\"side must be 'generator' or 'discriminator', not %r\" % (side,))\n"};
    static const char *const gen_numpy[] = {
        "        return {\"gan\": -np.logaddexp(0.0, dgz), \"nsgan\": np.logaddexp(0.0, -dgz)}.get(name, -dgz)\n",
        "        return np.maximum(1.0 - dx, 0.0) + np.maximum(1.0 + dgz, 0.0)\n",
        "    return np.logaddexp(0.0, -dx) + np.logaddexp(0.0, dgz)\n",
        "    w0 = np.array(n[\"w0\"], dtype=np.float64).reshape(n[\"inputs\"], n[\"hidden\"])\n"
        "    b0 = np.array(n[\"b0\"], dtype=np.float64)\n",
        "    return lambda v: np.tanh(v @ w0 + b0)\n",
        "        raise ValueError(\"side must be 'generator' or 'discriminator', not %r\" % (side,))\n"};
    for (int lib = 0; lib < 2; lib++) {
        s = export_of("nsgan + 10*rec + perc", FAM_GENERATIVE, lib ? "numpy" : "pytorch");
        for (size_t k = 0; k < sizeof gen_torch / sizeof *gen_torch; k++) {
            const char *want = lib ? gen_numpy[k] : gen_torch[k];
            if (!strstr(s, want)) print_error("%s export lacks the line\n%s--- in ---\n%s\n", lib ? "numpy" : "pytorch", want, s);
            assert_non_null(strstr(s, want));
        }
        assert_null(strstr(s, "%"  "1$")); /* no template marker left */
        free(s);
    }
    /* every operator has a spelling in each format */
    for (int op = EOP_LOG; op < EOP_COUNT; op++) {
        Expr *e = expr_op(op, expr_var(op == EOP_SUM ? VAR_Z : VAR_PT),
                          op == EOP_MIN || op == EOP_MAX ? expr_term(TERM_CE, NULL) : NULL);
        const char *formats[] = {"pytorch", "numpy", "latex", "expr"};
        for (int f = 0; f < 4; f++) {
            char err[LD_ERR_MAX];
            char *t = expr_export(e, FAM_CLASSIFICATION, formats[f], err);
            assert_non_null(t);
            assert_null(strstr(t, "(null)"));
            free(t);
        }
        expr_free(e);
    }
    /* errors */
    char err[LD_ERR_MAX];
    Expr *e = expr_parse("ce", err);
    assert_null(expr_export(e, FAM_CLASSIFICATION, "fortran", err));
    assert_string_equal(err, "export: unknown format 'fortran' (pytorch, numpy, latex or expr)");
    assert_null(expr_export(e, FAM_REGRESSION, "pytorch", err));
    assert_string_equal(err, "term 'ce' is not available for regression tasks");
    expr_free(e);
}

/* Issue 16: candidate.export handles a loss text longer than 4,095 bytes whole (it was cut
 * there silently); no daemon is needed when the expression is given. */
static void test_export_long_text(void **state) {
    (void)state;
    const char *item = "0.123456789012*ce";
    size_t n = 300, li = strlen(item);
    char *src = malloc(n * (li + 3) + 1), *q = src;
    for (size_t i = 0; i < n; i++) q += sprintf(q, "%s%s", i ? " + " : "", item);
    assert_true(strlen(src) > 5000);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "method", "candidate.export");
    cJSON *pa = cJSON_AddObjectToObject(req, "params");
    cJSON_AddStringToObject(pa, "expr", src);
    cJSON_AddStringToObject(pa, "family", "classification");
    cJSON_AddStringToObject(pa, "format", "expr");
    char *line = cJSON_PrintUnformatted(req);
    const RpcMethod *const tables[] = {rpc_core_methods, NULL};
    RpcCall call = {0};
    size_t len;
    char *out = rpc_handle_line(tables, line, strlen(line), &call, NULL, &len);
    cJSON *r = cJSON_Parse(out);
    const cJSON *res = cJSON_GetObjectItem(r, "result");
    if (!res) print_error("candidate.export: %s\n", out);
    assert_non_null(res);
    assert_string_equal(cJSON_GetObjectItem(res, "expr")->valuestring, src);
    /* 300 x 0.123456789012 = 37.0370367036 (up to the last bits of the sum) */
    assert_true(strncmp(cJSON_GetObjectItem(res, "text")->valuestring, "37.0370367036", 13) == 0);
    cJSON_Delete(r);
    free(out);
    free(line);
    cJSON_Delete(req);
    free(src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_formats),
        cmocka_unit_test(test_python_parity),
        cmocka_unit_test(test_export_long_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
