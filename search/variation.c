/* variation.c: the typed grammar of loss candidates: random generation, mutation and crossover
 * that respect shapes (per-class vector, per-sample scalar, per-batch scalar, parameter of t),
 * the job's vocabulary and its size limits, so that every candidate is a usable loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TRIES 24

static const int term_hp[TERM_COUNT] = {
#define X(id, spelling, fams, hp, ...) hp,
    EXPR_TERMS(X)
#undef X
};
static const int op_arity[EOP_COUNT] = {
#define X(id, spelling, arity) arity,
    EXPR_OPS(X)
#undef X
};

void grammar_init(Grammar *g, const SearchJob *j) {
    g->family = j->family;
    g->terms = j->terms;
    g->ops = j->ops;
    g->vars = j->vars;
    g->max_nodes = j->max_nodes;
    g->max_depth = j->max_depth;
}

static int var_shape(int fam, int v) {
    Expr node = {.op = EOP_VAR, .id = (uint8_t)v};
    return expr_node_shape(&node, lang_vocab(fam).inputs, SH_CONST, SH_CONST);
}

int grammar_shape(const Grammar *g, const Expr *e) { return expr_shape(e, g->family); }

int grammar_valid(const Grammar *g, const Expr *e) {
    if (!e || expr_size(e) > g->max_nodes || expr_depth(e) > g->max_depth) return 0;
    return expr_check(e, g->family, NULL) == LD_OK;
}

/* ---- choosing from the vocabulary ---- */

static int has_op(const Grammar *g, int op) { return (g->ops >> op) & 1u; }

/* A random element of mask (bits) satisfying keep(i, ctx); -1 when none. */
static int pick_bit(uint32_t mask, LdRng *r) {
    int n = __builtin_popcount(mask);
    if (!n) return -1;
    int k = (int)rng_below(r, (uint32_t)n);
    for (int i = 0; i < 32; i++)
        if ((mask >> i) & 1u) {
            if (!k--) return i;
        }
    return -1;
}

static uint32_t vars_of_shape(const Grammar *g, int shape) {
    uint32_t m = 0;
    for (int v = 0; v < VAR_COUNT; v++)
        if (((g->vars >> v) & 1u) && var_shape(g->family, v) == shape) m |= 1u << v;
    return m;
}

static uint32_t terms_batch(const Grammar *g, int batch) {
    uint32_t m = 0;
    for (int t = 0; t < TERM_COUNT; t++)
        if (((g->terms >> t) & 1u) && (TERM_IS_BATCH(t) ? 1 : 0) == batch) m |= 1u << t;
    return m;
}

static const int unary_ops[] = {EOP_NEG,  EOP_LOG,     EOP_EXP,      EOP_SQRT, EOP_ABS,
                                EOP_TANH, EOP_SIGMOID, EOP_SOFTPLUS};
static const int binary_ops[] = {EOP_ADD, EOP_SUB, EOP_MUL, EOP_DIV, EOP_POW, EOP_MIN, EOP_MAX};
#define NUNARY ((int)(sizeof unary_ops / sizeof unary_ops[0]))
#define NBINARY ((int)(sizeof binary_ops / sizeof binary_ops[0]))

static int pick_unary(const Grammar *g, LdRng *r) {
    uint32_t m = 0;
    for (int i = 0; i < NUNARY; i++)
        if (has_op(g, unary_ops[i])) m |= 1u << i;
    int k = pick_bit(m, r);
    return k < 0 ? -1 : unary_ops[k];
}

/* POW is only ever built as x ^ constant, so it is chosen separately. */
static int pick_binary(const Grammar *g, LdRng *r) {
    uint32_t m = 0;
    for (int i = 0; i < NBINARY; i++)
        if (binary_ops[i] != EOP_POW && has_op(g, binary_ops[i])) m |= 1u << i;
    int k = pick_bit(m, r);
    return k < 0 ? -1 : binary_ops[k];
}

/* ---- generation ---- */

/* Constants are kept to 3 significant digits so that printed candidates stay readable and
 * nearby coefficients collapse to one canonical form. */
static double round3(double v) {
    if (v == 0 || !isfinite(v)) return 0;
    double m = pow(10.0, 2 - floor(log10(fabs(v))));
    return round(v * m) / m;
}

static Expr *gen_num(LdRng *r) {
    static const double nice[] = {0.1, 0.2, 0.25, 0.5, 1, 2, 3, 0.01, 0.05, 5};
    if (rng_uniform(r) < 0.6) return expr_num(nice[rng_below(r, 10)]);
    return expr_num(round3(exp(rng_uniform(r) * 6.0 - 4.0))); /* log-uniform in [0.018, 7.4] */
}

/* A parameter of t: a number, t, 1-t or c*t. Returns NULL only on out-of-memory. */
static Expr *gen_param(const Grammar *g, LdRng *r) {
    double u = rng_uniform(r);
    int t_ok = (g->vars >> VAR_T) & 1u;
    if (!t_ok || u < 0.7) return gen_num(r);
    if (u < 0.8) return expr_var(VAR_T);
    if (u < 0.9) return expr_op(EOP_SUB, expr_num(1), expr_var(VAR_T));
    return expr_op(EOP_MUL, gen_num(r), expr_var(VAR_T));
}

static Expr *gen_term(const Grammar *g, LdRng *r, int batch) {
    int t = pick_bit(terms_batch(g, batch), r);
    if (t < 0) return NULL;
    Expr *param = NULL;
    if (term_hp[t] && rng_uniform(r) < 0.5) param = gen_param(g, r);
    return expr_term(t, param);
}

static Expr *gen_class(const Grammar *g, LdRng *r, int depth);

/* A per-sample scalar of at most depth levels; NULL when the vocabulary has none. */
static Expr *gen_sample(const Grammar *g, LdRng *r, int depth) {
    uint32_t leaves = vars_of_shape(g, SH_SAMPLE);
    uint32_t terms = terms_batch(g, 0);
    int can_sum = has_op(g, EOP_SUM) && vars_of_shape(g, SH_CLASS) && depth >= 2;
    double u = rng_uniform(r);
    if (depth <= 1 || u < 0.35) {
        if (leaves && (!terms || rng_uniform(r) < 0.7)) return expr_var(pick_bit(leaves, r));
        if (terms) return gen_term(g, r, 0);
        if (can_sum) return expr_op(EOP_SUM, gen_class(g, r, depth - 1), NULL);
        return NULL;
    }
    if (can_sum && u < 0.55) {
        Expr *c = gen_class(g, r, depth - 1);
        return c ? expr_op(EOP_SUM, c, NULL) : NULL;
    }
    if (u < 0.75) {
        int op = pick_unary(g, r);
        if (op >= 0) {
            Expr *a = gen_sample(g, r, depth - 1);
            return a ? expr_op(op, a, NULL) : NULL;
        }
    }
    if (has_op(g, EOP_POW) && rng_uniform(r) < 0.1) {
        Expr *a = gen_sample(g, r, depth - 1);
        return a ? expr_op(EOP_POW, a, expr_num(rng_uniform(r) < 0.5 ? 2 : 0.5)) : NULL;
    }
    int op = pick_binary(g, r);
    if (op < 0) return gen_sample(g, r, 1);
    Expr *a = gen_sample(g, r, depth - 1);
    if (!a) return NULL;
    Expr *b = rng_uniform(r) < 0.5 ? gen_param(g, r) : gen_sample(g, r, depth - 1);
    if (!b) {
        expr_free(a);
        return NULL;
    }
    if (rng_uniform(r) < 0.5) return expr_op(op, b, a);
    return expr_op(op, a, b);
}

/* A per-class vector (classification only); NULL when the vocabulary has none. */
static Expr *gen_class(const Grammar *g, LdRng *r, int depth) {
    uint32_t leaves = vars_of_shape(g, SH_CLASS);
    if (!leaves) return NULL;
    double u = rng_uniform(r);
    if (depth <= 1 || u < 0.4) return expr_var(pick_bit(leaves, r));
    if (u < 0.65) {
        int op = pick_unary(g, r);
        if (op >= 0) {
            Expr *a = gen_class(g, r, depth - 1);
            return a ? expr_op(op, a, NULL) : NULL;
        }
    }
    int op = pick_binary(g, r);
    if (op < 0) return expr_var(pick_bit(leaves, r));
    Expr *a = gen_class(g, r, depth - 1);
    Expr *b;
    double w = rng_uniform(r);
    if (w < 0.4) b = gen_class(g, r, depth - 1);
    else if (w < 0.7) b = gen_param(g, r);
    else b = gen_sample(g, r, depth - 1);
    if (!a || !b) {
        expr_free(a);
        expr_free(b);
        return NULL;
    }
    return expr_op(op, a, b);
}

static Expr *gen_of_shape(const Grammar *g, LdRng *r, int shape, int depth) {
    switch (shape) {
    case SH_CONST: return gen_param(g, r);
    case SH_BATCH: return gen_term(g, r, 1);
    case SH_CLASS: return gen_class(g, r, depth);
    default: return gen_sample(g, r, depth);
    }
}

/* One gene of a mixture: [weight *] (named term | free-form per-sample subtree). */
static Expr *gen_gene(const Grammar *g, LdRng *r) {
    Expr *body = NULL;
    int free_ok = vars_of_shape(g, SH_SAMPLE) || (vars_of_shape(g, SH_CLASS) && has_op(g, EOP_SUM));
    int has_terms = g->terms != 0;
    if (free_ok && (!has_terms || rng_uniform(r) < 0.4)) {
        int d = g->max_depth - 2;
        body = gen_sample(g, r, d < 2 ? 2 : (d > 4 ? 4 : d));
    } else if (has_terms) {
        int batch = terms_batch(g, 1) && (!terms_batch(g, 0) || rng_uniform(r) < 0.35);
        body = gen_term(g, r, batch);
    }
    if (!body) return NULL;
    if (rng_uniform(r) < 0.5) return body;
    Expr *w = gen_param(g, r);
    return w ? expr_op(EOP_MUL, w, body) : (expr_free(body), NULL);
}

static Expr *gen_mixture(const Grammar *g, LdRng *r, int ngenes) {
    Expr *e = NULL;
    for (int i = 0; i < ngenes; i++) {
        Expr *gene = gen_gene(g, r);
        if (!gene) continue;
        e = e ? expr_op(EOP_ADD, e, gene) : gene;
    }
    return e;
}

/* Takes e: returns it when valid, else frees it and returns NULL. */
static Expr *keep_valid(const Grammar *g, Expr *e) {
    if (e && grammar_valid(g, e)) return e;
    expr_free(e);
    return NULL;
}

Expr *grammar_random(const Grammar *g, LdRng *r) {
    for (int tries = 0; tries < TRIES; tries++) {
        int n = 1 + (int)rng_below(r, 3);
        Expr *e = keep_valid(g, gen_mixture(g, r, n));
        if (e) return e;
    }
    return NULL;
}

/* ---- editing trees ---- */

typedef struct Slot {
    Expr **at;  /* the pointer that holds the node */
    int depth;  /* 1 for the root */
    int in_param;
} Slot;

typedef struct Slots {
    Slot v[512];
    int n;
} Slots;

static void collect(Expr **at, int depth, int in_param, Slots *s) {
    if (!*at || s->n >= (int)(sizeof s->v / sizeof s->v[0])) return;
    s->v[s->n++] = (Slot){at, depth, in_param};
    Expr *e = *at;
    int p = in_param || e->op == EOP_TERM;
    collect(&e->a, depth + 1, p, s);
    collect(&e->b, depth + 1, p, s);
}

static void replace(Expr **at, Expr *with) {
    expr_free(*at);
    *at = with;
}

static int mut_subtree(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    Slot sl = s.v[rng_below(r, (uint32_t)s.n)];
    int shape = sl.in_param ? SH_CONST : grammar_shape(g, *sl.at);
    int room = g->max_depth - sl.depth + 1;
    if (room > 4) room = 4;
    Expr *n = sl.at == root && !sl.in_param ? gen_mixture(g, r, 1 + (int)rng_below(r, 2))
                                            : gen_of_shape(g, r, shape, room < 1 ? 1 : room);
    if (!n) return 0;
    replace(sl.at, n);
    return 1;
}

static int mut_point(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    Expr *e = *s.v[rng_below(r, (uint32_t)s.n)].at;
    switch (e->op) {
    case EOP_NUM: {
        Expr *n = gen_num(r);
        if (!n) return 0;
        e->num = n->num;
        expr_free(n);
        return 1;
    }
    case EOP_VAR: {
        uint32_t m = vars_of_shape(g, var_shape(g->family, e->id)) & ~(1u << e->id);
        int v = pick_bit(m, r);
        if (v < 0) return 0;
        e->id = (uint8_t)v;
        return 1;
    }
    case EOP_TERM: {
        uint32_t m = terms_batch(g, TERM_IS_BATCH(e->id) ? 1 : 0) & ~(1u << e->id);
        int t = pick_bit(m, r);
        if (t < 0) return 0;
        e->id = (uint8_t)t;
        if (!term_hp[t] && e->a) {
            expr_free(e->a);
            e->a = NULL;
        }
        return 1;
    }
    case EOP_SUM: return 0;
    default: break;
    }
    int op = op_arity[e->op] == 1 ? pick_unary(g, r) : pick_binary(g, r);
    if (op < 0 || op == e->op) return 0;
    e->op = (uint8_t)op;
    return 1;
}

static int mut_insert(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    Slot sl = s.v[rng_below(r, (uint32_t)s.n)];
    int shape = sl.in_param ? SH_CONST : grammar_shape(g, *sl.at);
    Expr *x = *sl.at;
    if (rng_uniform(r) < 0.5) {
        int op = pick_unary(g, r);
        if (op < 0) return 0;
        *sl.at = expr_op(op, x, NULL);
    } else {
        int op = pick_binary(g, r);
        if (op < 0) return 0;
        Expr *y = shape == SH_CONST || rng_uniform(r) < 0.5 ? gen_param(g, r)
                                                           : gen_of_shape(g, r, shape, 2);
        if (!y) return 0;
        *sl.at = rng_uniform(r) < 0.5 ? expr_op(op, x, y) : expr_op(op, y, x);
    }
    return *sl.at != NULL; /* out of memory: expr_op freed x, the caller frees the rest */
}

static int mut_delete(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    int cand[512], n = 0;
    for (int i = 0; i < s.n; i++) {
        Expr *e = *s.v[i].at;
        if (e->op >= EOP_ADD && e->op != EOP_SUM) cand[n++] = i;
    }
    if (!n) return 0;
    Slot sl = s.v[cand[rng_below(r, (uint32_t)n)]];
    Expr *e = *sl.at;
    int shape = sl.in_param ? SH_CONST : grammar_shape(g, e);
    Expr **keep = &e->a;
    if (e->b && (rng_uniform(r) < 0.5 || grammar_shape(g, e->a) != shape)) keep = &e->b;
    if (!sl.in_param && grammar_shape(g, *keep) != shape) return 0;
    Expr *k = *keep;
    *keep = NULL;
    replace(sl.at, k);
    return 1;
}

static int mut_hoist(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    int cand[512], n = 0;
    for (int i = 1; i < s.n; i++) {
        if (s.v[i].in_param) continue;
        int sh = grammar_shape(g, *s.v[i].at);
        if (sh == SH_SAMPLE || sh == SH_BATCH) cand[n++] = i;
    }
    if (!n) return 0;
    Expr **at = s.v[cand[rng_below(r, (uint32_t)n)]].at;
    Expr *sub = *at;
    *at = NULL;
    replace(root, sub);
    return 1;
}

static int perturb_all(Expr *e, double sigma, LdRng *r, int only_one, int *count) {
    if (!e) return 0;
    int changed = 0;
    if (e->op == EOP_NUM) {
        (*count)++;
        double v = e->num;
        if (v == 0) v = 0.01;
        double nv = round3(v * exp(sigma * rng_normal(r)));
        if (nv != e->num) changed = 1;
        e->num = nv;
        if (only_one) return changed;
    }
    changed |= perturb_all(e->a, sigma, r, only_one, count);
    changed |= perturb_all(e->b, sigma, r, only_one, count);
    return changed;
}

static int mut_const(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect(root, 1, 0, &s);
    int cand[512], n = 0;
    for (int i = 0; i < s.n; i++)
        if ((*s.v[i].at)->op == EOP_NUM) cand[n++] = i;
    if (!n) return 0;
    Expr *e = *s.v[cand[rng_below(r, (uint32_t)n)]].at;
    double nv = round3(e->num * exp(0.5 * rng_normal(r)));
    if (rng_uniform(r) < 0.05) nv = -nv;
    if (nv == e->num) return 0;
    e->num = nv;
    return 1;
}

static int mut_add_term(const Grammar *g, Expr **root, LdRng *r) {
    Expr *gene = gen_gene(g, r);
    if (!gene) return 0;
    *root = expr_op(EOP_ADD, *root, gene); /* on out-of-memory both are freed */
    return *root != NULL;
}

/* The genes of a mixture are the operands of the top-level sums. */
static void collect_genes(Expr **at, Slots *s) {
    Expr *e = *at;
    if (e->op == EOP_ADD) {
        collect_genes(&e->a, s);
        collect_genes(&e->b, s);
        return;
    }
    if (s->n < (int)(sizeof s->v / sizeof s->v[0])) s->v[s->n++] = (Slot){at, 0, 0};
}

static int mut_remove_term(const Grammar *g, Expr **root, LdRng *r) {
    Slots s;
    s.n = 0;
    collect_genes(root, &s);
    if (s.n < 2) return 0;
    int k = (int)rng_below(r, (uint32_t)s.n);
    Expr *n = NULL;
    for (int i = 0; i < s.n; i++) {
        if (i == k) continue;
        Expr *gene = *s.v[i].at;
        *s.v[i].at = NULL; /* detached: freeing the old spine below leaves it alone */
        n = n ? expr_op(EOP_ADD, n, gene) : gene;
    }
    replace(root, n);
    return n != NULL;
}

typedef int (*MutFn)(const Grammar *, Expr **, LdRng *);
static const struct {
    const char *name;
    MutFn fn;
    double weight;
} mutations[] = {
    {"subtree", mut_subtree, 0.20},   {"point", mut_point, 0.15},
    {"insert", mut_insert, 0.10},     {"delete", mut_delete, 0.12},
    {"hoist", mut_hoist, 0.05},       {"const", mut_const, 0.18},
    {"add_term", mut_add_term, 0.12}, {"remove_term", mut_remove_term, 0.08},
};
#define NMUT ((int)(sizeof mutations / sizeof mutations[0]))

Expr *grammar_mutate(const Grammar *g, const Expr *parent, LdRng *r, const char **op) {
    for (int tries = 0; tries < TRIES; tries++) {
        double u = rng_uniform(r), acc = 0;
        int k = NMUT - 1;
        for (int i = 0; i < NMUT; i++) {
            acc += mutations[i].weight;
            if (u < acc) {
                k = i;
                break;
            }
        }
        Expr *c = expr_clone(parent);
        if (!c) return NULL;
        if (!mutations[k].fn(g, &c, r) || expr_equal(c, parent)) {
            expr_free(c);
            continue;
        }
        c = keep_valid(g, c);
        if (c) {
            if (op) *op = mutations[k].name;
            return c;
        }
    }
    return NULL;
}

Expr *grammar_crossover(const Grammar *g, const Expr *a, const Expr *b, LdRng *r) {
    for (int tries = 0; tries < TRIES; tries++) {
        Expr *c = expr_clone(a);
        Expr *bb = expr_clone(b);
        if (!c || !bb) {
            expr_free(c);
            expr_free(bb);
            return NULL;
        }
        Slots sa, sb;
        sa.n = sb.n = 0;
        collect(&c, 1, 0, &sa);
        collect(&bb, 1, 0, &sb);
        Slot x = sa.v[rng_below(r, (uint32_t)sa.n)];
        int shape = x.in_param ? SH_CONST : grammar_shape(g, *x.at);
        int cand[512], n = 0;
        for (int i = 0; i < sb.n; i++) {
            int sh = sb.v[i].in_param ? SH_CONST : grammar_shape(g, *sb.v[i].at);
            /* parameters must stay functions of t: take them only from parameter positions
             * or from t-and-number subtrees (shape SH_CONST outside terms qualifies too) */
            if (sh == shape) cand[n++] = i;
        }
        if (n) {
            Expr **from = sb.v[cand[rng_below(r, (uint32_t)n)]].at;
            Expr *sub = *from;
            *from = NULL;
            replace(x.at, sub);
        }
        expr_free(bb);
        if (!n || expr_equal(c, a) || expr_equal(c, b)) {
            expr_free(c);
            continue;
        }
        c = keep_valid(g, c);
        if (c) return c;
    }
    return NULL;
}

Expr *grammar_perturb(const Grammar *g, const Expr *parent, double sigma, LdRng *r) {
    for (int tries = 0; tries < TRIES; tries++) {
        Expr *c = expr_clone(parent);
        if (!c) return NULL;
        int count = 0;
        if (!perturb_all(c, sigma, r, 0, &count)) {
            expr_free(c);
            if (!count) return NULL; /* nothing to tune */
            continue;
        }
        c = keep_valid(g, c);
        if (c) return c;
    }
    return NULL;
}
