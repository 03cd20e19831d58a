/* expr.c: the loss language's trees: parser, printer, checker, canonical form and hash.
 * Every name comes from the X-macro lists in expr.h; see docs/loss-language.md. */
#include "expr.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lossd.h"

/* ---- tables expanded from the lists ---- */

#define X_OPNAME(id, name, arity) name,
#define X_OPARITY(id, name, arity) arity,
static const char *const op_name[EOP_COUNT] = {EXPR_OPS(X_OPNAME)};
static const int op_arity[EOP_COUNT] = {EXPR_OPS(X_OPARITY)};
#define X_VARNAME(id, name, fams, pc) name,
#define X_VARREADS(id, name, reads, pc) reads,
#define X_VARPC(id, name, fams, pc) pc,
static const char *const var_name[VAR_COUNT] = {EXPR_VARS(X_VARNAME)};
static const unsigned var_reads[VAR_COUNT] = {EXPR_VARS(X_VARREADS)};
static const int var_pc[VAR_COUNT] = {EXPR_VARS(X_VARPC)};
#define X_TERMNAME(id, name, ...) name,
#define X_TERMREADS(id, name, reads, ...) reads,
#define X_TERMHP(id, name, fams, hp, ...) hp,
#define X_TERMDEF(id, name, fams, hp, def, ...) def,
static const char *const term_name[TERM_COUNT] = {EXPR_TERMS(X_TERMNAME)};
static const unsigned term_reads[TERM_COUNT] = {EXPR_TERMS(X_TERMREADS)};
static const int term_hp[TERM_COUNT] = {EXPR_TERMS(X_TERMHP)};
static const double term_def[TERM_COUNT] = {EXPR_TERMS(X_TERMDEF)};

#define X_FAMNAME(id, name, inputs) #name,
#define X_FAMIN(id, name, inputs) inputs,
/* The built-in families, then those added at run time (lang_family_add): written at start-up,
 * only read afterwards. */
static const char *fam_names[FAM_COUNT + LANG_FAMILIES_MAX] = {LANG_FAMILIES(X_FAMNAME)};
static unsigned fam_inputs[FAM_COUNT + LANG_FAMILIES_MAX] = {LANG_FAMILIES(X_FAMIN)};
static int fam_count = FAM_COUNT;

int lang_family_count(void) { return fam_count; }

int lang_family_add(const char *name, unsigned inputs) {
    if (!name || family_parse(name) >= 0 || fam_count >= FAM_COUNT + LANG_FAMILIES_MAX) return -1;
    fam_names[fam_count] = name;
    fam_inputs[fam_count] = inputs;
    return fam_count++;
}

/* A variable or term reading inputs is usable where the family provides one of them. */
static int provides(unsigned fam_in, unsigned reads) { return reads == LIN_ANY || (reads & fam_in) != 0; }

unsigned expr_inputs(const Expr *e) {
    if (!e) return 0;
    unsigned own = e->op == EOP_VAR ? var_reads[e->id] : e->op == EOP_TERM ? term_reads[e->id] : 0;
    return own | expr_inputs(e->a) | expr_inputs(e->b);
}

LangVocab lang_vocab(int fam) {
    LangVocab v = {0};
    if (fam < 0 || fam >= fam_count) return v;
    v = lang_vocab_inputs(fam_inputs[fam]);
    v.name = fam_names[fam];
    return v;
}

LangVocab lang_vocab_inputs(unsigned inputs) {
    LangVocab v = {0};
    v.inputs = inputs;
    for (int k = 0; k < VAR_COUNT; k++)
        if (provides(v.inputs, var_reads[k])) v.vars |= 1u << k;
    for (int k = 0; k < TERM_COUNT; k++)
        if (provides(v.inputs, term_reads[k])) v.terms |= 1u << k;
    return v;
}

const char *family_name(int fam) {
    if (fam < 0 || fam >= fam_count) return "unknown";
    return fam_names[fam];
}

int family_parse(const char *name) {
    if (!name) return -1;
    for (int f = 0; f < fam_count; f++)
        if (strcmp(name, fam_names[f]) == 0) return f;
    return -1;
}

/* Functions written name(...): the unary ones and min/max. */
static int is_func_op(int op) { return op >= EOP_LOG && op <= EOP_MAX; }

/* ---- construction ---- */

static Expr *node_new(int op) {
    Expr *e = calloc(1, sizeof *e);
    if (e) e->op = (uint8_t)op;
    return e;
}

Expr *expr_num(double v) {
    Expr *e = node_new(EOP_NUM);
    if (e) e->num = v;
    return e;
}

Expr *expr_var(int var) {
    if (var < 0 || var >= VAR_COUNT) return NULL;
    Expr *e = node_new(EOP_VAR);
    if (e) e->id = (uint8_t)var;
    return e;
}

Expr *expr_term(int term, Expr *param) {
    Expr *e = NULL;
    if (term < 0 || term >= TERM_COUNT) goto fail;
    e = node_new(EOP_TERM);
    if (!e) goto fail;
    e->id = (uint8_t)term;
    e->a = param;
    return e;
fail:
    expr_free(param);
    return NULL;
}

Expr *expr_op(int op, Expr *a, Expr *b) {
    Expr *e = NULL;
    if (op < EOP_ADD || op >= EOP_COUNT) goto fail;
    if (!a || (op_arity[op] == 2) != (b != NULL)) goto fail;
    e = node_new(op);
    if (!e) goto fail;
    e->a = a;
    e->b = b;
    return e;
fail:
    expr_free(a);
    expr_free(b);
    return NULL;
}

void expr_free(Expr *e) {
    while (e) {
        Expr *next = e->a;
        expr_free(e->b);
        free(e);
        e = next;
    }
}

Expr *expr_clone(const Expr *e) {
    if (!e) return NULL;
    Expr *c = node_new(e->op);
    if (!c) return NULL;
    c->id = e->id;
    c->num = e->num;
    if (e->a && !(c->a = expr_clone(e->a))) goto fail;
    if (e->b && !(c->b = expr_clone(e->b))) goto fail;
    return c;
fail:
    expr_free(c);
    return NULL;
}

int expr_size(const Expr *e) { return e ? 1 + expr_size(e->a) + expr_size(e->b) : 0; }

int expr_depth(const Expr *e) {
    if (!e) return 0;
    int da = expr_depth(e->a), db = expr_depth(e->b);
    return 1 + (da > db ? da : db);
}

int expr_equal(const Expr *a, const Expr *b) {
    if (!a || !b) return a == b;
    if (a->op != b->op) return 0;
    if (a->op == EOP_NUM) return a->num == b->num || (isnan(a->num) && isnan(b->num));
    if ((a->op == EOP_VAR || a->op == EOP_TERM) && a->id != b->id) return 0;
    return expr_equal(a->a, b->a) && expr_equal(a->b, b->b);
}

/* ---- lexer ---- */

enum { TK_END, TK_NUM, TK_NAME, TK_CHAR, TK_BAD };

typedef struct Tok {
    int kind;
    int pos, len; /* byte offset and length in the source */
    double num;
    char ch;
} Tok;

static Tok lex_at(const char *s, int pos) {
    Tok t = {0};
    while (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r') pos++;
    t.pos = pos;
    char c = s[pos];
    if (c == 0) {
        t.kind = TK_END;
        return t;
    }
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[pos + 1]))) {
        int i = pos;
        while (isdigit((unsigned char)s[i])) i++;
        if (s[i] == '.') {
            i++;
            while (isdigit((unsigned char)s[i])) i++;
        }
        if (s[i] == 'e' || s[i] == 'E') {
            int j = i + 1;
            if (s[j] == '+' || s[j] == '-') j++;
            if (isdigit((unsigned char)s[j])) {
                while (isdigit((unsigned char)s[j])) j++;
                i = j;
            }
        }
        char tmp[64];
        int n = i - pos;
        if (n >= (int)sizeof tmp) {
            t.kind = TK_BAD;
            t.len = n;
            return t;
        }
        memcpy(tmp, s + pos, (size_t)n);
        tmp[n] = 0;
        t.kind = TK_NUM;
        t.len = n;
        t.num = strtod(tmp, NULL);
        return t;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        int i = pos;
        while (isalnum((unsigned char)s[i]) || s[i] == '_') i++;
        t.kind = TK_NAME;
        t.len = i - pos;
        return t;
    }
    t.len = 1;
    t.ch = c;
    t.kind = strchr("+-*/^(),", c) ? TK_CHAR : TK_BAD;
    return t;
}

/* ---- parser: recursive descent, one token of lookahead (two for negative literals) ---- */

/* Nesting: parentheses, function calls, unary minus and exponents, each one level. */
#define PARSE_MAX_NEST 200

typedef struct Parser {
    const char *src;
    Tok tok;
    char *err;
    int failed;
    int nest;  /* current nesting level */
    int nodes; /* nodes built so far */
    int dep;   /* tree depth of the subtree the last parse_* returned */
} Parser;

static void advance(Parser *p) { p->tok = lex_at(p->src, p->tok.pos + p->tok.len); }

static Expr *perr(Parser *p, int pos, const char *fmt, const char *arg) {
    if (!p->failed) {
        char msg[LD_ERR_MAX];
        snprintf(msg, sizeof msg, fmt, arg ? arg : "");
        ld_err(p->err, LD_EINVAL, "column %d: %s", pos + 1, msg);
    }
    p->failed = 1;
    return NULL;
}

static Expr *parse_err_tok(Parser *p, const char *expected) {
    char what[48];
    const Tok *t = &p->tok;
    if (t->kind == TK_END) return perr(p, t->pos, "%s, found end of input", expected);
    if (t->kind == TK_BAD && t->len == 1) {
        unsigned char c = (unsigned char)p->src[t->pos];
        if (isprint(c))
            snprintf(what, sizeof what, "unexpected character '%c'", c);
        else
            snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
        return perr(p, t->pos, "%s", what);
    }
    int n = t->len > 24 ? 24 : t->len;
    char text[32];
    memcpy(text, p->src + t->pos, (size_t)n);
    text[n] = 0;
    char msg[LD_ERR_MAX];
    snprintf(msg, sizeof msg, "%s, found '%s'", expected, text);
    return perr(p, t->pos, "%s", msg);
}

static int tok_is(const Parser *p, char c) { return p->tok.kind == TK_CHAR && p->tok.ch == c; }

static Expr *parse_sum(Parser *p);
static Expr *parse_unary(Parser *p);

static Expr *oom(Parser *p) { return perr(p, p->tok.pos, "%sout of memory", ""); }

/* Every node the parser builds passes here: counts it, records its subtree's depth in p->dep
 * and enforces EXPR_MAX_NODES and EXPR_MAX_DEPTH, so no tree that a recursive walk could not
 * handle (a 100,000-term flat sum is 100,000 levels deep) is ever built. Takes e. */
static Expr *grown(Parser *p, Expr *e, int depth) {
    if (!e) return oom(p);
    p->dep = depth;
    if (++p->nodes > EXPR_MAX_NODES || depth > EXPR_MAX_DEPTH) {
        expr_free(e);
        char msg[96];
        if (p->nodes > EXPR_MAX_NODES)
            snprintf(msg, sizeof msg, "expression too large: more than %d nodes", EXPR_MAX_NODES);
        else
            snprintf(msg, sizeof msg, "expression too deep: more than %d levels", EXPR_MAX_DEPTH);
        return perr(p, p->tok.pos, "%s", msg);
    }
    return e;
}

static int imax(int a, int b) { return a > b ? a : b; }

static Expr *parse_primary(Parser *p) {
    Tok t = p->tok;
    if (t.kind == TK_NUM) {
        if (!isfinite(t.num)) return perr(p, t.pos, "%snumber out of range", "");
        advance(p);
        return grown(p, expr_num(t.num), 1);
    }
    if (tok_is(p, '(')) {
        advance(p);
        Expr *e = parse_sum(p);
        if (!e) return NULL;
        if (!tok_is(p, ')')) {
            expr_free(e);
            return parse_err_tok(p, "expected ')'");
        }
        advance(p);
        return e;
    }
    if (t.kind != TK_NAME) return parse_err_tok(p, "expected a number, a name or '('");
    char name[32];
    if (t.len >= (int)sizeof name) {
        char shown[32];
        memcpy(shown, p->src + t.pos, 24);
        shown[24] = 0;
        return perr(p, t.pos, "unknown name '%s...'", shown);
    }
    memcpy(name, p->src + t.pos, (size_t)t.len);
    name[t.len] = 0;
    advance(p);
    int has_paren = tok_is(p, '(');
    for (int v = 0; v < VAR_COUNT; v++) {
        if (strcmp(name, var_name[v]) != 0) continue;
        if (has_paren) return perr(p, t.pos, "'%s' is a variable, not a function", name);
        return grown(p, expr_var(v), 1);
    }
    for (int k = 0; k < TERM_COUNT; k++) {
        if (strcmp(name, term_name[k]) != 0) continue;
        Expr *param = NULL;
        int dp = 0;
        if (has_paren) {
            if (!term_hp[k]) return perr(p, p->tok.pos, "term '%s' takes no parameter", name);
            advance(p);
            if (tok_is(p, ')')) return perr(p, p->tok.pos, "term '%s' takes one parameter", name);
            param = parse_sum(p);
            if (!param) return NULL;
            dp = p->dep;
            if (tok_is(p, ',')) {
                expr_free(param);
                return perr(p, p->tok.pos, "term '%s' takes one parameter", name);
            }
            if (!tok_is(p, ')')) {
                expr_free(param);
                return parse_err_tok(p, "expected ')'");
            }
            advance(p);
        }
        Expr *e = expr_term(k, param);
        return grown(p, e, 1 + dp);
    }
    for (int op = 0; op < EOP_COUNT; op++) {
        if (!is_func_op(op) || strcmp(name, op_name[op]) != 0) continue;
        int arity = op_arity[op];
        if (!has_paren) return perr(p, t.pos, "function '%s' needs '(' after it", name);
        advance(p);
        Expr *a = parse_sum(p), *b = NULL;
        if (!a) return NULL;
        int da = p->dep, db = 0;
        if (arity == 2) {
            if (!tok_is(p, ',')) {
                expr_free(a);
                if (tok_is(p, ')'))
                    return perr(p, p->tok.pos, "function '%s' takes two arguments", name);
                return parse_err_tok(p, "expected ','");
            }
            advance(p);
            b = parse_sum(p);
            if (!b) {
                expr_free(a);
                return NULL;
            }
            db = p->dep;
        }
        if (!tok_is(p, ')')) {
            int comma = tok_is(p, ',');
            expr_free(a);
            expr_free(b);
            if (comma)
                return perr(p, p->tok.pos, arity == 1 ? "function '%s' takes one argument"
                                                 : "function '%s' takes two arguments",
                            name);
            return parse_err_tok(p, "expected ')'");
        }
        advance(p);
        return grown(p, expr_op(op, a, b), 1 + imax(da, db));
    }
    return perr(p, t.pos, "unknown name '%s'", name);
}

/* power := primary ('^' unary)?   (right-associative: the exponent is a unary, which may
 * itself be a power) */
static Expr *parse_power(Parser *p) {
    Expr *a = parse_primary(p);
    if (!a || !tok_is(p, '^')) return a;
    int da = p->dep;
    advance(p);
    Expr *b = parse_unary(p);
    if (!b) {
        expr_free(a);
        return NULL;
    }
    return grown(p, expr_op(EOP_POW, a, b), 1 + imax(da, p->dep));
}

/* unary := '-' unary | power. A minus directly before a number literal that is not the base of
 * a power is part of the literal: "-2*x" holds the number -2, while "-2^x" is -(2^x). Every
 * operand passes here, so this is where nesting is counted (PARSE_MAX_NEST levels below the
 * top one). */
static Expr *parse_unary(Parser *p) {
    if (++p->nest > PARSE_MAX_NEST + 1) return perr(p, p->tok.pos, "%sexpression nested too deeply", "");
    Expr *e = NULL;
    if (tok_is(p, '-')) {
        Tok minus = p->tok;
        Tok next = lex_at(p->src, minus.pos + 1);
        if (next.kind == TK_NUM) {
            Tok after = lex_at(p->src, next.pos + next.len);
            if (!(after.kind == TK_CHAR && after.ch == '^')) {
                advance(p);
                if (!isfinite(next.num)) {
                    e = perr(p, next.pos, "%snumber out of range", "");
                    goto done;
                }
                advance(p);
                e = grown(p, expr_num(next.num == 0 ? 0 : -next.num), 1); /* "-0" is 0: -0.0 prints as "-0" */
                goto done;
            }
        }
        advance(p);
        Expr *a = parse_unary(p);
        if (a) e = grown(p, expr_op(EOP_NEG, a, NULL), 1 + p->dep);
        goto done;
    }
    e = parse_power(p);
done:
    p->nest--;
    return e;
}

static Expr *parse_product(Parser *p) {
    Expr *a = parse_unary(p);
    while (a && (tok_is(p, '*') || tok_is(p, '/'))) {
        int op = tok_is(p, '*') ? EOP_MUL : EOP_DIV, da = p->dep;
        advance(p);
        Expr *b = parse_unary(p);
        if (!b) {
            expr_free(a);
            return NULL;
        }
        a = grown(p, expr_op(op, a, b), 1 + imax(da, p->dep));
    }
    return a;
}

/* Sums and products are built as left-deep chains in a loop, so their length is bounded by
 * EXPR_MAX_DEPTH (checked in grown), not by the C stack. */
static Expr *parse_sum(Parser *p) {
    Expr *a = parse_product(p);
    while (a && (tok_is(p, '+') || tok_is(p, '-'))) {
        int op = tok_is(p, '+') ? EOP_ADD : EOP_SUB, da = p->dep;
        advance(p);
        Expr *b = parse_product(p);
        if (!b) {
            expr_free(a);
            a = NULL;
            break;
        }
        a = grown(p, expr_op(op, a, b), 1 + imax(da, p->dep));
    }
    return a;
}

Expr *expr_parse(const char *src, char *err) {
    if (err) err[0] = 0;
    if (!src) {
        ld_err(err, LD_EINVAL, "column 1: no expression");
        return NULL;
    }
    Parser p = {.src = src, .err = err};
    p.tok = lex_at(src, 0);
    if (p.tok.kind == TK_END) {
        ld_err(err, LD_EINVAL, "column %d: empty expression", p.tok.pos + 1);
        return NULL;
    }
    Expr *e = parse_sum(&p);
    if (e && p.tok.kind != TK_END) {
        expr_free(e);
        e = NULL;
        if (tok_is(&p, ')'))
            perr(&p, p.tok.pos, "%sunmatched ')'", "");
        else
            parse_err_tok(&p, "expected an operator");
    }
    return e;
}

/* ---- printer ---- */

typedef struct Out {
    char *buf;
    size_t n, len;
} Out;

static void out_str(Out *o, const char *s) {
    for (; *s; s++) {
        if (o->len + 1 < o->n) o->buf[o->len] = *s;
        o->len++;
    }
}

/* Shortest %.Ng text that reads back as the same double. */
static void fmt_num(double v, char *buf, size_t n) {
    if (v == 0) v = 0; /* no "-0" */
    /* the fewest digits that read back exactly, but at least %.6g's so 10 prints as "10" */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            if (prec < 6) snprintf(buf, n, "%.6g", v);
            return;
        }
    }
}

/* Precedence: 1 sums, 2 products, 3 unary minus (and negative numbers), 4 powers, 5 atoms. */
static int prec_of(const Expr *e) {
    switch (e->op) {
    case EOP_ADD:
    case EOP_SUB: return 1;
    case EOP_MUL:
    case EOP_DIV: return 2;
    case EOP_NEG: return 3;
    case EOP_POW: return 4;
    case EOP_NUM: return (e->num < 0 || (e->num == 0 && signbit(e->num))) ? 3 : 5;
    default: return 5;
    }
}

static void print_rec(Out *o, const Expr *e, int need);

static void print_child(Out *o, const Expr *c, int need) {
    if (prec_of(c) < need) {
        out_str(o, "(");
        print_rec(o, c, 0);
        out_str(o, ")");
    } else {
        print_rec(o, c, need);
    }
}

static void print_rec(Out *o, const Expr *e, int need) {
    char num[40];
    switch (e->op) {
    case EOP_NUM:
        fmt_num(e->num, num, sizeof num);
        out_str(o, num);
        return;
    case EOP_VAR: out_str(o, var_name[e->id]); return;
    case EOP_TERM:
        out_str(o, term_name[e->id]);
        if (e->a) {
            out_str(o, "(");
            print_rec(o, e->a, 0);
            out_str(o, ")");
        }
        return;
    case EOP_ADD:
    case EOP_SUB:
        print_child(o, e->a, 1);
        out_str(o, e->op == EOP_ADD ? " + " : " - ");
        print_child(o, e->b, 2);
        return;
    case EOP_MUL:
    case EOP_DIV:
        print_child(o, e->a, 2);
        out_str(o, e->op == EOP_MUL ? "*" : "/");
        print_child(o, e->b, 3);
        return;
    case EOP_POW:
        print_child(o, e->a, 5);
        out_str(o, "^");
        print_child(o, e->b, 3);
        return;
    case EOP_NEG:
        out_str(o, "-");
        /* "-2" would read back as the number -2 (and "--2" as -(-2)), so a non-negative number
         * under a minus keeps parentheses. */
        if (e->a->op == EOP_NUM && prec_of(e->a) == 5) {
            out_str(o, "(");
            print_rec(o, e->a, 0);
            out_str(o, ")");
        } else {
            print_child(o, e->a, 3);
        }
        return;
    default:
        out_str(o, op_name[e->op]);
        out_str(o, "(");
        print_rec(o, e->a, 0);
        if (e->b) {
            out_str(o, ", ");
            print_rec(o, e->b, 0);
        }
        out_str(o, ")");
        return;
    }
}

int expr_print(const Expr *e, char *buf, size_t n) {
    Out o = {buf, n, 0};
    if (!e) return -1;
    print_rec(&o, e, 0);
    if (n > 0) buf[o.len < n ? o.len : n - 1] = 0;
    if (o.len + 1 > n) return -1;
    return (int)o.len;
}

/* ---- checker ---- */

/* Shapes, ordered so that an elementwise op's result is the larger of its operands'. */

/* Parameters may use numbers, t and operators only. */
static int only_t_and_numbers(const Expr *e) {
    if (!e) return 1;
    if (e->op == EOP_TERM || e->op == EOP_SUM) return 0;
    if (e->op == EOP_VAR && e->id != VAR_T) return 0;
    return only_t_and_numbers(e->a) && only_t_and_numbers(e->b);
}

int expr_node_shape(const Expr *e, unsigned inputs, int sa, int sb) {
    switch (e->op) {
    case EOP_NUM: return SH_CONST;
    case EOP_VAR:
        if (e->id == VAR_T) return SH_CONST;
        return var_pc[e->id] && (inputs & (LIN_CLASS | LIN_AE)) ? SH_CLASS : SH_SAMPLE;
    case EOP_TERM: return TERM_IS_BATCH(e->id) ? SH_BATCH : SH_SAMPLE;
    case EOP_SUM: return SH_SAMPLE;
    default: return sa > sb ? sa : sb;
    }
}

static int shape_rec(const Expr *e, unsigned inputs) {
    if (!e) return SH_CONST;
    int sa = e->op == EOP_TERM ? SH_CONST : shape_rec(e->a, inputs), sb = shape_rec(e->b, inputs);
    return expr_node_shape(e, inputs, sa, sb);
}

int expr_shape(const Expr *e, int family) { return shape_rec(e, lang_vocab(family).inputs); }

static int check_rec(const Expr *e, int fam, int *shape, int *dep, char *err) {
    int rc, sa = SH_CONST, sb = SH_CONST;
    if (!e || e->op >= EOP_COUNT) return ld_err(err, LD_EINVAL, "malformed expression tree");
    switch (e->op) {
    case EOP_NUM:
        if (!isfinite(e->num)) return ld_err(err, LD_EINVAL, "a number is not finite");
        *shape = SH_CONST;
        return LD_OK;
    case EOP_VAR:
        if (e->id >= VAR_COUNT) return ld_err(err, LD_EINVAL, "malformed variable");
        if (!provides(fam_inputs[fam], var_reads[e->id]))
            return ld_err(err, LD_EINVAL, "variable '%s' is not available for %s tasks",
                          var_name[e->id], family_name(fam));
        *shape = expr_node_shape(e, fam_inputs[fam], SH_CONST, SH_CONST);
        if (VAR_IS_OUTPUT(e->id)) *dep = 1;
        return LD_OK;
    case EOP_TERM:
        if (e->id >= TERM_COUNT) return ld_err(err, LD_EINVAL, "malformed term");
        if (!provides(fam_inputs[fam], term_reads[e->id]))
            return ld_err(err, LD_EINVAL, "term '%s' is not available for %s tasks",
                          term_name[e->id], family_name(fam));
        if (e->a) {
            if (!term_hp[e->id])
                return ld_err(err, LD_EINVAL, "term '%s' takes no parameter", term_name[e->id]);
            if (!only_t_and_numbers(e->a))
                return ld_err(err, LD_EINVAL,
                              "the parameter of '%s' must depend only on t and numbers",
                              term_name[e->id]);
            int pdep = 0;
            rc = check_rec(e->a, fam, &sa, &pdep, err);
            if (rc) return rc;
        }
        *shape = expr_node_shape(e, fam_inputs[fam], SH_CONST, SH_CONST);
        if (e->id != TERM_L2) *dep = 1;
        return LD_OK;
    default: break;
    }
    if (!e->a || (op_arity[e->op] == 2) != (e->b != NULL))
        return ld_err(err, LD_EINVAL, "malformed '%s' node", op_name[e->op]);
    rc = check_rec(e->a, fam, &sa, dep, err);
    if (rc) return rc;
    if (e->b) {
        rc = check_rec(e->b, fam, &sb, dep, err);
        if (rc) return rc;
    }
    if (e->op == EOP_SUM) {
        if (sa != SH_CLASS)
            return ld_err(err, LD_EINVAL,
                          "sum() adds over classes and needs a per-class argument (z, p or y; x or xh "
                          "over an autoencoder's features)");
    }
    *shape = expr_node_shape(e, fam_inputs[fam], sa, sb);
    return LD_OK;
}

int expr_check(const Expr *e, int family, char *err) {
    if (family < 0 || family >= fam_count)
        return ld_err(err, LD_EINVAL, "unknown task family %d", family);
    int shape = SH_CONST, dep = 0;
    int rc = check_rec(e, family, &shape, &dep, err);
    if (rc) return rc;
    if (shape == SH_CLASS)
        return ld_err(err, LD_EINVAL,
                      "the loss is a per-class vector: reduce it over classes with sum()");
    if (!dep) return ld_err(err, LD_EINVAL, "the loss does not depend on the model's output");
    return LD_OK;
}

/* ---- canonical form ---- */

/* Guarded numerics in double, the same rules as the interpreter (lang/lossprog.c), so that
 * folding constants never changes what a loss computes. */
#define G_TINY 1e-12
#define G_EXP_MAX 80.0
static double g_log(double x) { return log(x > G_TINY ? x : G_TINY); }
static double g_exp(double x) { return exp(x < G_EXP_MAX ? x : G_EXP_MAX); }
static double g_div(double a, double b) {
    return a / (fabs(b) < G_TINY ? copysign(G_TINY, b) : b);
}
static double g_pow(double a, double b) {
    double m = fabs(a) > G_TINY ? fabs(a) : G_TINY;
    double v = pow(m, b), cap = exp(G_EXP_MAX);
    if (!(v < cap)) v = cap;
    int even = b == floor(b) && fmod(b, 2.0) == 0;
    return a < 0 && !even ? -v : v;
}

static double fold(int op, double a, double b) {
    switch (op) {
    case EOP_ADD: return a + b;
    case EOP_SUB: return a - b;
    case EOP_MUL: return a * b;
    case EOP_DIV: return g_div(a, b);
    case EOP_POW: return g_pow(a, b);
    case EOP_NEG: return -a;
    case EOP_LOG: return g_log(a);
    case EOP_EXP: return g_exp(a);
    case EOP_SQRT: return sqrt(a > 0 ? a : 0);
    case EOP_ABS: return fabs(a);
    case EOP_TANH: return tanh(a);
    case EOP_SIGMOID: return a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a));
    case EOP_SOFTPLUS: return (a > 0 ? a : 0) + log1p(exp(-fabs(a)));
    case EOP_MIN: return a < b ? a : b;
    case EOP_MAX: return a > b ? a : b;
    default: return NAN;
    }
}

/* Whether e stays finite for every finite input, so that e*0 and e-e may become 0: no exp,
 * power or division (which can overflow a float). */
static int is_safe(const Expr *e) {
    if (!e) return 1;
    if (e->op == EOP_EXP || e->op == EOP_POW || e->op == EOP_DIV) return 0;
    return is_safe(e->a) && is_safe(e->b);
}

/* Returns owned printed text (NULL on out-of-memory). */
static char *expr_text(const Expr *e) {
    char small[8];
    int n = expr_print(e, small, sizeof small);
    if (n < 0) {
        Out o = {NULL, 0, 0};
        print_rec(&o, e, 0);
        n = (int)o.len;
    }
    char *s = malloc((size_t)n + 1);
    if (s) expr_print(e, s, (size_t)n + 1);
    return s;
}

/* One factor or summand with its printed text, for sorting. */
typedef struct Item {
    Expr *e;
    char *text;
    double coef;
} Item;

typedef struct Items {
    Item *v;
    int n, cap;
    int oom;
} Items;

static void items_push(Items *it, Expr *e, double coef) {
    if (it->oom || !e) {
        it->oom = 1;
        expr_free(e);
        return;
    }
    if (it->n == it->cap) {
        int cap = it->cap ? it->cap * 2 : 8;
        Item *v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v) {
            it->oom = 1;
            expr_free(e);
            return;
        }
        it->v = v;
        it->cap = cap;
    }
    char *text = expr_text(e);
    if (!text) {
        it->oom = 1;
        expr_free(e);
        return;
    }
    it->v[it->n++] = (Item){e, text, coef};
}

static void items_free(Items *it) {
    for (int i = 0; i < it->n; i++) {
        expr_free(it->v[i].e);
        free(it->v[i].text);
    }
    free(it->v);
}

static int item_cmp(const void *x, const void *y) {
    const Item *a = x, *b = y;
    int c = strcmp(a->text, b->text);
    if (c) return c;
    return (a->coef < b->coef) - (a->coef > b->coef);
}

/* Splits a canonical product into its number and its other factors. Takes e. */
static void collect_prod(Expr *e, double *coef, Items *f) {
    if (!e) {
        f->oom = 1;
        return;
    }
    if (e->op == EOP_MUL) {
        collect_prod(e->a, coef, f);
        collect_prod(e->b, coef, f);
        free(e);
    } else if (e->op == EOP_NUM) {
        *coef *= e->num;
        free(e);
    } else if (e->op == EOP_NEG) {
        *coef = -*coef;
        collect_prod(e->a, coef, f);
        free(e);
    } else {
        items_push(f, e, 1);
    }
}

static Expr *norm_sum(Expr *e);

static void items_sort(Items *it) {
    if (it->n > 1) qsort(it->v, (size_t)it->n, sizeof *it->v, item_cmp);
}

/* Builds coef * f1 * f2 * ... from sorted factors; takes the factors' trees. */
static Expr *build_prod(double coef, Items *f) {
    Expr *acc = NULL;
    int all_safe = 1;
    for (int i = 0; i < f->n; i++) all_safe &= is_safe(f->v[i].e);
    if (f->n == 0 || (coef == 0 && all_safe)) {
        for (int i = 0; i < f->n; i++) {
            expr_free(f->v[i].e);
            f->v[i].e = NULL;
        }
        return expr_num(coef == 0 ? 0 : coef);
    }
    if (coef != 1 && coef != -1 && coef != 0) {
        /* a number times a sum times more factors: the number goes into the sum, so that
         * canonical products hold a sum factor only with coefficient 1 or -1 */
        for (int i = 0; i < f->n; i++) {
            Expr *s = f->v[i].e;
            if (s->op != EOP_ADD && s->op != EOP_SUB) continue;
            Expr *num = expr_num(coef);
            Expr *d = num ? norm_sum(expr_op(EOP_MUL, num, s)) : NULL;
            if (!num) expr_free(s);
            f->v[i].e = d;
            free(f->v[i].text);
            f->v[i].text = d ? expr_text(d) : NULL;
            if (!d || !f->v[i].text) goto fail;
            coef = 1;
            items_sort(f);
            break;
        }
    }
    int neg = coef == -1;
    if (coef != 1 && !neg && !(acc = expr_num(coef))) goto fail;
    for (int i = 0; i < f->n; i++) {
        Expr *x = f->v[i].e;
        f->v[i].e = NULL;
        acc = acc ? expr_op(EOP_MUL, acc, x) : x;
        if (!acc) goto fail;
    }
    return neg ? expr_op(EOP_NEG, acc, NULL) : acc;
fail:
    for (int i = 0; i < f->n; i++) {
        expr_free(f->v[i].e);
        f->v[i].e = NULL;
    }
    return NULL;
}

/* Normal product of a canonical tree (takes e): flattened, numbers multiplied, factors sorted. */
static Expr *norm_prod(Expr *e) {
    Items f = {0};
    double coef = 1;
    collect_prod(e, &coef, &f);
    Expr *r = NULL;
    if (!f.oom) {
        items_sort(&f);
        r = build_prod(coef, &f);
    }
    items_free(&f);
    return r;
}

/* Splits a canonical sum into summands (coef, monomial); numbers go to *cst. Takes e. */
static void collect_sum(Expr *e, double sign, double *cst, Items *terms) {
    if (!e) {
        terms->oom = 1;
        return;
    }
    if (e->op == EOP_ADD || e->op == EOP_SUB) {
        collect_sum(e->a, sign, cst, terms);
        collect_sum(e->b, e->op == EOP_SUB ? -sign : sign, cst, terms);
        free(e);
        return;
    }
    if (e->op == EOP_NEG) {
        collect_sum(e->a, -sign, cst, terms);
        free(e);
        return;
    }
    if (e->op == EOP_NUM) {
        *cst += sign * e->num;
        free(e);
        return;
    }
    Items f = {0};
    double coef = 1;
    collect_prod(e, &coef, &f);
    if (!f.oom) {
        items_sort(&f);
        if (f.n == 0) {
            *cst += sign * coef;
        } else if (f.n == 1 && (f.v[0].e->op == EOP_ADD || f.v[0].e->op == EOP_SUB)) {
            /* a number times a sum: distribute, so 2*(1 - t) and 2 - 2*t agree */
            collect_sum(f.v[0].e, sign * coef, cst, terms);
            f.v[0].e = NULL;
        } else
            items_push(terms, build_prod(1, &f), sign * coef);
    } else {
        terms->oom = 1;
    }
    items_free(&f);
}

/* Normal sum of a canonical tree (takes e). */
static Expr *norm_sum(Expr *e) {
    Items t = {0};
    double cst = 0;
    Expr *acc = NULL;
    collect_sum(e, 1, &cst, &t);
    if (t.oom) goto done;
    items_sort(&t);
    /* merge equal monomials */
    int m = 0;
    for (int i = 0; i < t.n; i++) {
        if (m > 0 && strcmp(t.v[m - 1].text, t.v[i].text) == 0 && is_safe(t.v[i].e)) {
            t.v[m - 1].coef += t.v[i].coef;
            expr_free(t.v[i].e);
            free(t.v[i].text);
        } else {
            t.v[m++] = t.v[i];
        }
    }
    t.n = m;
    /* Summands in text order, the number last, but those added before those subtracted:
     * "1 - t" rather than "-t + 1". */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < t.n; i++) {
            Item *it = &t.v[i];
            if (!it->e || (it->coef < 0) != pass) continue;
            if (it->coef == 0 && is_safe(it->e)) continue;
            double c = it->coef;
            int sub = acc && c < 0;
            if (sub) c = -c;
            Items f = {0};
            double one = 1;
            collect_prod(it->e, &one, &f);
            it->e = NULL;
            Expr *term = f.oom ? NULL : build_prod(c * one, &f);
            items_free(&f);
            if (!term) goto fail;
            acc = acc ? expr_op(sub ? EOP_SUB : EOP_ADD, acc, term) : term;
            if (!acc) goto done;
        }
        if (cst != 0 && (cst < 0) == pass) {
            Expr *n = expr_num(acc ? fabs(cst) : cst);
            acc = acc ? expr_op(cst < 0 ? EOP_SUB : EOP_ADD, acc, n) : n;
            if (!acc) goto done;
        }
    }
    if (!acc) acc = expr_num(0);
    goto done;
fail:
    expr_free(acc);
    acc = NULL;
done:
    items_free(&t);
    return acc;
}

/* 1/c when it prints in at most 6 significant digits (so x/4 becomes 0.25*x but x/3 stays). */
static int short_reciprocal(double c, double *inv) {
    if (c == 0 || !isfinite(c)) return 0;
    double r = 1 / c;
    char buf[40];
    snprintf(buf, sizeof buf, "%.6g", r);
    if (strtod(buf, NULL) != r) return 0;
    *inv = r;
    return 1;
}

static Expr *canon(const Expr *e) {
    if (!e) return NULL;
    Expr *a = NULL, *b = NULL, *r = NULL;
    switch (e->op) {
    case EOP_NUM: return expr_num(e->num == 0 ? 0 : e->num);
    case EOP_VAR: return expr_var(e->id);
    case EOP_TERM:
        if (e->a) {
            if (!(a = canon(e->a))) return NULL;
        } else if (term_hp[e->id]) {
            if (!(a = expr_num(term_def[e->id]))) return NULL;
        }
        return expr_term(e->id, a);
    default: break;
    }
    if (!(a = canon(e->a))) return NULL;
    if (e->b && !(b = canon(e->b))) {
        expr_free(a);
        return NULL;
    }
    if (a->op == EOP_NUM && (!b || b->op == EOP_NUM) && e->op != EOP_SUM) {
        double v = fold(e->op, a->num, b ? b->num : 0);
        if (isfinite(v)) {
            expr_free(a);
            expr_free(b);
            return expr_num(v == 0 ? 0 : v);
        }
    }
    switch (e->op) {
    case EOP_ADD:
    case EOP_SUB:
    case EOP_NEG:
        r = expr_op(e->op, a, b);
        return r ? norm_sum(r) : NULL;
    case EOP_MUL:
        r = expr_op(EOP_MUL, a, b);
        return r ? norm_sum(norm_prod(r)) : NULL;
    case EOP_DIV: {
        double inv;
        if (b->op == EOP_NUM && short_reciprocal(b->num, &inv)) {
            expr_free(b);
            r = expr_op(EOP_MUL, a, expr_num(inv));
            return r ? norm_sum(norm_prod(r)) : NULL;
        }
        return expr_op(EOP_DIV, a, b);
    }
    case EOP_POW:
        if (b->op == EOP_NUM && b->num == 1) {
            expr_free(b);
            return a;
        }
        if (b->op == EOP_NUM && b->num == 0 && is_safe(a)) {
            expr_free(a);
            expr_free(b);
            return expr_num(1);
        }
        return expr_op(EOP_POW, a, b);
    case EOP_MIN:
    case EOP_MAX: {
        char *ta = expr_text(a), *tb = expr_text(b);
        int c = ta && tb ? strcmp(ta, tb) : 0;
        free(ta);
        free(tb);
        if (c == 0) {
            expr_free(b);
            return a;
        }
        return c < 0 ? expr_op(e->op, a, b) : expr_op(e->op, b, a);
    }
    default: return expr_op(e->op, a, b);
    }
}

/* 1 when a number in e is not finite. */
static int has_nonfinite(const Expr *e) {
    if (!e) return 0;
    if (e->op == EOP_NUM && !isfinite(e->num)) return 1;
    return has_nonfinite(e->a) || has_nonfinite(e->b);
}

/* Merging coefficients may overflow (1e308*1e308*ce): such a loss keeps its written form,
 * which means the same and prints as something that parses again. */
Expr *expr_canonical(const Expr *e) {
    Expr *c = canon(e);
    if (c && has_nonfinite(c)) {
        expr_free(c);
        return expr_clone(e);
    }
    return c;
}

uint64_t expr_hash(const Expr *e) {
    Expr *c = expr_canonical(e);
    char *text = c ? expr_text(c) : NULL;
    uint64_t h = text ? ld_hash64(text, strlen(text)) : 0;
    free(text);
    expr_free(c);
    return h;
}
