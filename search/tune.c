/* tune.c: the model-based tuner on the constants of the leading expressions. It fits, for one
 * expression shape (the tree with its numbers left out), a diagonal Gaussian over log|c| of
 * each constant to the best trained candidates of that shape (the cross-entropy method: a
 * diagonal CMA-ES without the covariance), and samples new constants from it. It keeps no state
 * of its own: the model is refit from the engine's candidates each time, so the engine's saved
 * state is the tuner's, and the same job, seed and results give the same proposals. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

uint64_t tune_shape(const Expr *e) {
    if (!e) return 0x51ull;
    uint64_t h = ld_mix64(e->op, e->op == EOP_NUM ? 0 : e->id);
    h = ld_mix64(h, tune_shape(e->a));
    return ld_mix64(h, tune_shape(e->b));
}

static void consts_walk(Expr *e, Expr **out, int max, int *n) {
    if (!e) return;
    if (e->op == EOP_NUM) {
        if (*n < max) out[*n] = e;
        (*n)++;
    }
    consts_walk(e->a, out, max, n);
    consts_walk(e->b, out, max, n);
}

int tune_consts(const Expr *e, double *v, int max) {
    Expr *nodes[TUNE_MAX_CONSTS];
    int n = 0;
    consts_walk((Expr *)e, nodes, TUNE_MAX_CONSTS, &n);
    if (n > TUNE_MAX_CONSTS || n > max) return -1;
    for (int i = 0; i < n; i++) v[i] = nodes[i]->num;
    return n;
}

/* Three significant digits: a tuned constant reads as a person would write it. */
static double sig3(double v) {
    if (v == 0 || !isfinite(v)) return 0;
    double m = pow(10.0, 2 - floor(log10(fabs(v))));
    return round(v * m) / m;
}

Expr *tune_propose(const Grammar *g, const Expr *lead, const double *hist, int nhist, int nconst,
                   LdRng *r) {
    double mu[TUNE_MAX_CONSTS], sd[TUNE_MAX_CONSTS], lead_v[TUNE_MAX_CONSTS];
    if (nconst < 1 || nconst > TUNE_MAX_CONSTS || nhist < 1) return NULL;
    if (tune_consts(lead, lead_v, TUNE_MAX_CONSTS) != nconst) return NULL;
    /* the elite: the best third, at least 2 when there are 2; weights as CMA-ES's */
    int k = nhist / 3 > 2 ? nhist / 3 : nhist < 2 ? nhist : 2;
    double w[TUNE_MAX_HIST], wsum = 0;
    for (int q = 0; q < k; q++) wsum += w[q] = log(k + 0.5) - log(q + 1.0);
    for (int i = 0; i < nconst; i++) {
        double m = 0, ss = 0;
        for (int q = 0; q < k; q++) m += w[q] / wsum * log(fmax(fabs(hist[q * nconst + i]), 1e-12));
        for (int q = 0; q < k; q++) {
            double d = log(fmax(fabs(hist[q * nconst + i]), 1e-12)) - m;
            ss += w[q] / wsum * d * d;
        }
        mu[i] = m;
        /* a lone elite explores by a factor of about 2; the floor shrinks as evidence grows */
        double floor_sd = fmax(TUNE_MIN_SD, TUNE_START_SD / sqrt((double)nhist));
        sd[i] = k < 2 ? TUNE_START_SD : fmax(sqrt(ss), floor_sd);
    }
    for (int tries = 0; tries < 8; tries++) {
        Expr *c = expr_clone(lead);
        if (!c) return NULL;
        Expr *nodes[TUNE_MAX_CONSTS];
        int n = 0, changed = 0;
        consts_walk(c, nodes, TUNE_MAX_CONSTS, &n);
        for (int i = 0; i < n; i++) {
            if (lead_v[i] == 0) continue; /* a zero has no scale to tune */
            double v = sig3(copysign(exp(mu[i] + sd[i] * rng_normal(r)), lead_v[i]));
            changed |= v != nodes[i]->num;
            nodes[i]->num = v;
        }
        if (changed && grammar_valid(g, c)) return c;
        expr_free(c);
    }
    return NULL;
}

/* The operands of e's top-level sums (its mixture terms), as the pointers that hold them. */
static void genes_walk(Expr **at, Expr ***out, int max, int *n) {
    if ((*at)->op == EOP_ADD) {
        genes_walk(&(*at)->a, out, max, n);
        genes_walk(&(*at)->b, out, max, n);
        return;
    }
    if (*n < max) out[(*n)++] = at;
}

static int uses_term(const Expr *e) {
    return e && (e->op == EOP_TERM || uses_term(e->a) || uses_term(e->b));
}

Expr *tune_decade(const Grammar *g, const Expr *lead, LdRng *r) {
    for (int tries = 0; tries < 8; tries++) {
        Expr *c = expr_clone(lead);
        Expr **genes[TUNE_MAX_CONSTS];
        int n = 0;
        if (!c) return NULL;
        genes_walk(&c, genes, TUNE_MAX_CONSTS, &n);
        if (n < 2) { /* one term: its scale alone hardly matters to Adam */
            expr_free(c);
            return NULL;
        }
        Expr **at = genes[rng_below(r, (uint32_t)n)], *gene = *at;
        /* 10, 100 or 1000 times up or down for a weighted named term (physics mixtures want data
         * terms 100-1000x lighter); 10 for a free-form subtree, whose scale is part of its shape
         * (digits from primitives lost 0.007 accuracy to the larger jumps) */
        int k = 1 + (int)rng_below(r, TUNE_DECADES);
        double f = pow(10.0, (double)(uses_term(gene) ? k : 1));
        if (rng_uniform(r) < 0.5) f = 1 / f;
        if (gene->op == EOP_MUL && gene->a->op == EOP_NUM) {
            gene->a->num = sig3(gene->a->num * f);
        } else if (gene->op == EOP_MUL && gene->b->op == EOP_NUM) {
            gene->b->num = sig3(gene->b->num * f);
        } else {
            *at = expr_op(EOP_MUL, expr_num(f), gene); /* on out-of-memory both are freed */
            if (!*at) {
                expr_free(c);
                return NULL;
            }
        }
        if (grammar_valid(g, c)) return c;
        expr_free(c);
    }
    return NULL;
}
