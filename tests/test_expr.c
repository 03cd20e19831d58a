/* test_expr.c: the loss language's parser, printer, checker, canonical form and hash, plus a
 * parser fuzz loop (random bytes and mutations of valid text must never crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/lossd.h"
#include "../lang/expr.h"

static Expr *parse_ok(const char *s) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(s, err);
    if (!e) print_error("parse of '%s' failed: %s\n", s, err);
    assert_non_null(e);
    return e;
}

static void print_ok(const Expr *e, char *buf) {
    int n = expr_print(e, buf, EXPR_TEXT_MAX);
    assert_true(n >= 0);
}

/* Input text, and the text print(parse(input)) must give. */
static const struct {
    const char *in, *out;
} roundtrip_cases[] = {
    {"0.7*ce + 0.3*focal(2)", "0.7*ce + 0.3*focal(2)"},
    {"0.7 * ce+0.3*focal( 2 )", "0.7*ce + 0.3*focal(2)"},
    {"ce", "ce"},
    {"focal", "focal"},
    {"focal(2*(1-t))", "focal(2*(1 - t))"},
    {"(1-t)*ce + t*focal(2*(1-t))", "(1 - t)*ce + t*focal(2*(1 - t))"},
    {"poly1(1) + smooth(0.1) + hinge + entropy", "poly1(1) + smooth(0.1) + hinge + entropy"},
    {"mse + mae + huber(0.5) + logcosh", "mse + mae + huber(0.5) + logcosh"},
    {"ce + 0.5*supcon(0.1) + infonce(t/10)", "ce + 0.5*supcon(0.1) + infonce(t/10)"},
    {"mse + 0.1*phys + bc + 1e-4*l2", "mse + 0.1*phys + bc + 0.0001*l2"},
    {"-sum(y*log(p))", "-sum(y*log(p))"},
    {"-log(pt) - y*z/pt", "-log(pt) - y*z/pt"},
    {"-x", NULL}, /* placeholder replaced below: x is not a name */
    {"-pt^2", "-pt^2"},
    {"(-pt)^2", "(-pt)^2"},
    {"-2^2", "-2^2"},
    {"(-2)^pt", "(-2)^pt"},
    {"-2*pt", "-2*pt"},
    {"-(2)*pt", "-(2)*pt"},
    {"--pt", "--pt"},
    {"--2", "--2"},
    {"pt^2^3", "pt^2^3"},
    {"(pt^2)^3", "(pt^2)^3"},
    {"pt^-2", "pt^-2"},
    {"pt^-2^3", "pt^-2^3"},
    {"pt^(-2)", "pt^-2"},
    {"a", NULL},
    {"pt - (ce - pt)", "pt - (ce - pt)"},
    {"(pt - ce) - pt", "pt - ce - pt"},
    {"pt + (ce + pt)", "pt + (ce + pt)"},
    {"pt/(ce*pt)", "pt/(ce*pt)"},
    {"pt/ce*pt", "pt/ce*pt"},
    {"pt*(ce/pt)", "pt*(ce/pt)"},
    {"pt*-ce", "pt*-ce"},
    {"pt - -ce", "pt - -ce"},
    {"pt + -2", "pt + -2"},
    {"pt - -2", "pt - -2"},
    {"exp(z) + sqrt(abs(f)) + tanh(r) + sigmoid(z) + softplus(r)",
     "exp(z) + sqrt(abs(f)) + tanh(r) + sigmoid(z) + softplus(r)"},
    {"min(ce, 2) + max(pt,0.5)", "min(ce, 2) + max(pt, 0.5)"},
    {"sum((p - y)^2)", "sum((p - y)^2)"},
    {"1.5e3*ce", "1500*ce"},
    {".25*ce", "0.25*ce"},
    {"0.1*ce", "0.1*ce"},
    {"0.30000000000000004*ce", "0.30000000000000004*ce"},
    {"1e-12*ce", "1e-12*ce"},
    {"((((ce))))", "ce"},
    {"-(ce + pt)", "-(ce + pt)"},
    {"-(ce*pt)", "-(ce*pt)"},
    {"-ce*pt", "-ce*pt"},
};

static void test_roundtrip(void **state) {
    (void)state;
    char b1[EXPR_TEXT_MAX], b2[EXPR_TEXT_MAX];
    for (size_t i = 0; i < sizeof roundtrip_cases / sizeof *roundtrip_cases; i++) {
        if (!roundtrip_cases[i].out) continue;
        Expr *e = parse_ok(roundtrip_cases[i].in);
        print_ok(e, b1);
        if (strcmp(b1, roundtrip_cases[i].out) != 0)
            print_error("'%s' printed as '%s', expected '%s'\n", roundtrip_cases[i].in, b1,
                        roundtrip_cases[i].out);
        assert_string_equal(b1, roundtrip_cases[i].out);
        Expr *e2 = parse_ok(b1);
        assert_true(expr_equal(e, e2));
        print_ok(e2, b2);
        assert_string_equal(b1, b2);
        Expr *c = expr_clone(e);
        assert_true(expr_equal(e, c));
        assert_int_equal(expr_size(e), expr_size(c));
        expr_free(c);
        expr_free(e);
        expr_free(e2);
    }
}

static void test_structure(void **state) {
    (void)state;
    /* -pt^2 is -(pt^2); a minus before a literal that is not a power base is the number. */
    Expr *e = parse_ok("-pt^2");
    assert_int_equal(e->op, EOP_NEG);
    assert_int_equal(e->a->op, EOP_POW);
    expr_free(e);
    e = parse_ok("-2*pt");
    assert_int_equal(e->op, EOP_MUL);
    assert_int_equal(e->a->op, EOP_NUM);
    assert_true(e->a->num == -2.0);
    expr_free(e);
    e = parse_ok("pt^2^3"); /* right-associative */
    assert_int_equal(e->op, EOP_POW);
    assert_int_equal(e->b->op, EOP_POW);
    expr_free(e);
    e = parse_ok("pt - ce - pt"); /* left-associative */
    assert_int_equal(e->op, EOP_SUB);
    assert_int_equal(e->a->op, EOP_SUB);
    expr_free(e);
    e = parse_ok("focal");
    assert_int_equal(e->op, EOP_TERM);
    assert_int_equal(e->id, TERM_FOCAL);
    assert_null(e->a);
    assert_int_equal(expr_size(e), 1);
    assert_int_equal(expr_depth(e), 1);
    expr_free(e);
    e = parse_ok("0.7*ce + 0.3*focal(2)");
    assert_int_equal(expr_size(e), 8);
    assert_int_equal(expr_depth(e), 4);
    expr_free(e);
    /* a too small buffer reports -1 and still terminates the text */
    char small[5];
    e = parse_ok("0.7*ce + 0.3*focal(2)");
    assert_int_equal(expr_print(e, small, sizeof small), -1);
    assert_int_equal(strlen(small), 4);
    expr_free(e);
    assert_int_equal(family_parse("physics"), FAM_PHYSICS);
    assert_int_equal(family_parse("nope"), -1);
    assert_string_equal(family_name(FAM_CONTRASTIVE), "contrastive");
}

static const struct {
    const char *in, *err;
} error_cases[] = {
    {"foo", "column 1: unknown name 'foo'"},
    {"ce + foo*2", "column 6: unknown name 'foo'"},
    {"0.7*ce + 0.3*focal(2", "column 21: expected ')', found end of input"},
    {"(ce + pt", "column 9: expected ')', found end of input"},
    {"focal(1, 2)", "column 8: term 'focal' takes one parameter"},
    {"focal()", "column 7: term 'focal' takes one parameter"},
    {"ce(1)", "column 3: term 'ce' takes no parameter"},
    {"", "column 1: empty expression"},
    {"   ", "column 4: empty expression"},
    {"ce +", "column 5: expected a number, a name or '(', found end of input"},
    {"ce pt", "column 4: expected an operator, found 'pt'"},
    {"ce)", "column 3: unmatched ')'"},
    {"ce + $", "column 6: unexpected character '$'"},
    {"z(1)", "column 1: 'z' is a variable, not a function"},
    {"log", "column 1: function 'log' needs '(' after it"},
    {"log(ce, pt)", "column 7: function 'log' takes one argument"},
    {"min(ce)", "column 7: function 'min' takes two arguments"},
    {"min(ce pt)", "column 8: expected ',', found 'pt'"},
    {"1e999*ce", "column 1: number out of range"},
    {"ce*", "column 4: expected a number, a name or '(', found end of input"},
    {"2 ^ ^ 3", "column 5: expected a number, a name or '(', found '^'"},
};

static void test_parse_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof error_cases / sizeof *error_cases; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(error_cases[i].in, err);
        if (e || strcmp(err, error_cases[i].err) != 0)
            print_error("'%s': got '%s', expected '%s'\n", error_cases[i].in, e ? "(parsed)" : err,
                        error_cases[i].err);
        assert_null(e);
        assert_string_equal(err, error_cases[i].err);
    }
    /* too deep nesting is an error, not a stack overflow */
    char deep[2000];
    memset(deep, '(', 1000);
    strcpy(deep + 1000, "ce");
    char err[LD_ERR_MAX];
    assert_null(expr_parse(deep, err));
    assert_non_null(strstr(err, "nested too deeply"));
    memset(deep, '-', 1000);
    assert_null(expr_parse(deep, err));
}

static const struct {
    int fam;
    const char *in;
    const char *err; /* NULL: accepted */
} check_cases[] = {
    {FAM_CLASSIFICATION, "0.7*ce + 0.3*focal(2)", NULL},
    {FAM_CLASSIFICATION, "(1-t)*ce + t*focal(2*(1-t))", NULL},
    {FAM_CLASSIFICATION, "-sum(y*log(p))", NULL},
    {FAM_CLASSIFICATION, "-log(pt) + 0.1*sum(p^2)", NULL},
    {FAM_CLASSIFICATION, "sum(z*pt) + ce", NULL},
    {FAM_CLASSIFICATION, "ce + 1e-4*l2", NULL},
    {FAM_CLASSIFICATION, "mse + hinge + poly1 + smooth + entropy + mae + huber + logcosh", NULL},
    {FAM_CLASSIFICATION, "pt", NULL}, /* valid (if useless: the precheck rejects it) */
    {FAM_CLASSIFICATION, "phys + ce", "term 'phys' is not available for classification tasks"},
    {FAM_CLASSIFICATION, "ce + f", "variable 'f' is not available for classification tasks"},
    {FAM_CLASSIFICATION, "ce + r", "variable 'r' is not available for classification tasks"},
    {FAM_CLASSIFICATION, "z", "the loss is a per-class vector: reduce it over classes with sum()"},
    {FAM_CLASSIFICATION, "ce*y", "the loss is a per-class vector: reduce it over classes with sum()"},
    {FAM_CLASSIFICATION, "sum(pt)",
     "sum() adds over classes and needs a per-class argument (z, p or y; x or xh over an autoencoder's features)"},
    {FAM_CLASSIFICATION, "focal(pt)", "the parameter of 'focal' must depend only on t and numbers"},
    {FAM_CLASSIFICATION, "focal(ce)", "the parameter of 'focal' must depend only on t and numbers"},
    {FAM_CLASSIFICATION, "1 + t", "the loss does not depend on the model's output"},
    {FAM_CLASSIFICATION, "l2", "the loss does not depend on the model's output"},
    {FAM_CLASSIFICATION, "sum(y)", "the loss does not depend on the model's output"},
    {FAM_CLASSIFICATION, "infonce", "term 'infonce' is not available for classification tasks"},
    {FAM_REGRESSION, "mse", NULL},
    {FAM_REGRESSION, "huber(1 + t) + 0.1*abs(r)^1.5", NULL},
    {FAM_REGRESSION, "(f - y)^2", NULL},
    {FAM_REGRESSION, "log(cosh(r))", NULL}, /* cosh is not a name: filtered out below */
    {FAM_REGRESSION, "ce", "term 'ce' is not available for regression tasks"},
    {FAM_REGRESSION, "sum(r)", "sum() adds over classes and needs a per-class argument (z, p or y; x or xh over an autoencoder's features)"},
    {FAM_REGRESSION, "pt", "variable 'pt' is not available for regression tasks"},
    {FAM_REGRESSION, "y^2", "the loss does not depend on the model's output"},
    {FAM_REGRESSION, "phys", "term 'phys' is not available for regression tasks"},
    {FAM_PHYSICS, "mse + 0.1*phys + bc", NULL},
    {FAM_PHYSICS, "phys", NULL},
    {FAM_PHYSICS, "bc*r^2", NULL},
    {FAM_CONTRASTIVE, "infonce(0.1)", NULL},
    {FAM_CONTRASTIVE, "infonce + 0.5*supcon(0.1) + 1e-4*l2", NULL},
    {FAM_CONTRASTIVE, "infonce(0.1 + 0.1*t)", NULL},
    {FAM_CONTRASTIVE, "ce + 0.5*supcon(0.1)", "term 'ce' is not available for contrastive tasks"},
    {FAM_CONTRASTIVE, "infonce + y", "variable 'y' is not available for contrastive tasks"},
    {FAM_CONTRASTIVE, "l2*t", "the loss does not depend on the model's output"},
};

static void test_check(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof check_cases / sizeof *check_cases; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(check_cases[i].in, err);
        if (!e) continue; /* cases whose text is itself invalid are covered by the parse tests */
        int rc = expr_check(e, check_cases[i].fam, err);
        if (check_cases[i].err == NULL) {
            if (rc != LD_OK)
                print_error("'%s' (%s) rejected: %s\n", check_cases[i].in,
                            family_name(check_cases[i].fam), err);
            assert_int_equal(rc, LD_OK);
        } else {
            if (rc == LD_OK || strcmp(err, check_cases[i].err) != 0)
                print_error("'%s' (%s): got rc %d '%s', expected '%s'\n", check_cases[i].in,
                            family_name(check_cases[i].fam), rc, rc ? err : "",
                            check_cases[i].err);
            assert_int_equal(rc, LD_EINVAL);
            assert_string_equal(err, check_cases[i].err);
        }
        expr_free(e);
    }
    char err[LD_ERR_MAX];
    Expr *e = parse_ok("ce");
    assert_int_equal(expr_check(e, 7, err), LD_EINVAL);
    expr_free(e);
}

static char *canon_text(const char *s, char *buf) {
    Expr *e = parse_ok(s);
    Expr *c = expr_canonical(e);
    assert_non_null(c);
    print_ok(c, buf);
    /* canonical is idempotent and prints parseably */
    Expr *c2 = expr_canonical(c);
    char again[EXPR_TEXT_MAX];
    print_ok(c2, again);
    if (strcmp(again, buf) != 0) print_error("canonical of '%s' is '%s' then '%s'\n", s, buf, again);
    assert_string_equal(again, buf);
    Expr *p = parse_ok(buf);
    assert_true(expr_equal(p, c));
    expr_free(p);
    expr_free(c2);
    expr_free(c);
    expr_free(e);
    return buf;
}

/* Groups of texts that must share one canonical text (and hash). */
static const char *const same_groups[][4] = {
    {"0.7*ce + 0.3*focal(2)", "0.3*focal(2) + 0.7*ce", "0.3*focal + 0.7*ce", "ce*0.7 + focal(1+1)*0.3"},
    {"ce", "ce*1", "1*ce + 0", "--ce"},
    {"ce", "ce - 0", "ce/1", "ce^1"},
    {"pt + ce - pt", "ce", "(ce + pt) - pt", "ce + pt*0"},
    {"min(ce, pt)", "min(pt, ce)", "min(pt*1, ce)", NULL},
    {"max(ce, pt)", "max(pt, ce)", NULL, NULL},
    {"0.5*ce", "ce/2", "ce*0.25*2", "ce - 0.5*ce"},
    {"2*ce*pt", "pt*ce*2", "pt*(2*ce)", "(ce + ce)*pt"},
    {"ce - pt", "-pt + ce", "ce + -pt", "-(pt - ce)"},
    {"focal(2*(1 - t))", "focal(2 - 2*t)", "focal((1 - t)*2)", NULL},
    {"ce + 3", "1 + ce + 2", "ce + 6/2", NULL},
};

static const char *const different[] = {
    "ce", "focal(2)", "focal(3)", "0.7*ce + 0.3*focal(2)", "0.3*ce + 0.7*focal(2)", "ce - pt",
    "pt - ce", "ce/pt", "pt/ce", "min(ce, pt)", "max(ce, pt)", "ce^2", "2^ce", "ce*pt",
    "log(pt)", "-log(pt)", "sum(p*y)", "sum(p)*pt",
};

static void test_canonical(void **state) {
    (void)state;
    char b0[EXPR_TEXT_MAX], b1[EXPR_TEXT_MAX];
    for (size_t g = 0; g < sizeof same_groups / sizeof *same_groups; g++) {
        canon_text(same_groups[g][0], b0);
        Expr *e0 = parse_ok(same_groups[g][0]);
        uint64_t h0 = expr_hash(e0);
        for (int k = 1; k < 4 && same_groups[g][k]; k++) {
            canon_text(same_groups[g][k], b1);
            if (strcmp(b0, b1) != 0)
                print_error("'%s' -> '%s' but '%s' -> '%s'\n", same_groups[g][0], b0,
                            same_groups[g][k], b1);
            assert_string_equal(b0, b1);
            Expr *e1 = parse_ok(same_groups[g][k]);
            assert_true(expr_hash(e1) == h0);
            expr_free(e1);
        }
        expr_free(e0);
    }
    canon_text("0.3*focal(2) + 0.7*ce", b0);
    assert_string_equal(b0, "0.7*ce + 0.3*focal(2)");
    canon_text("ce - ce", b0);
    assert_string_equal(b0, "0");
    canon_text("exp(pt) - exp(pt)", b0); /* may be inf - inf: not folded */
    assert_string_equal(b0, "exp(pt) - exp(pt)");
    canon_text("exp(z)*0 + ce", b0);
    assert_string_equal(b0, "ce + 0*exp(z)");
    canon_text("log(1) + 2^10*ce", b0);
    assert_string_equal(b0, "1024*ce");
    canon_text("(1-t)*ce + t*focal(2*(1-t))", b0);
    assert_string_equal(b0, "(1 - t)*ce + focal(2 - 2*t)*t");
    canon_text("2 - pt + ce", b0);
    assert_string_equal(b0, "ce + 2 - pt");
    canon_text("-3 - pt - ce", b0);
    assert_string_equal(b0, "-ce - pt - 3");
    canon_text("0.5*(ce + focal)", b0);
    assert_string_equal(b0, "0.5*ce + 0.5*focal(2)");

    size_t nd = sizeof different / sizeof *different;
    uint64_t h[64];
    for (size_t i = 0; i < nd; i++) {
        Expr *e = parse_ok(different[i]);
        h[i] = expr_hash(e);
        expr_free(e);
        for (size_t j = 0; j < i; j++) {
            if (h[i] == h[j]) print_error("'%s' and '%s' hash alike\n", different[i], different[j]);
            assert_true(h[i] != h[j]);
        }
    }
}

/* ---- random trees over the grammar ---- */

static Expr *rand_tree(LdRng *r, int depth) {
    uint32_t k = rng_below(r, depth <= 0 ? 3 : 10);
    switch (k) {
    case 0: return expr_num((double)(int)rng_below(r, 21) / 4.0 - 2.0);
    case 1: return expr_var((int)rng_below(r, VAR_COUNT));
    case 2: {
        int term = (int)rng_below(r, TERM_COUNT);
        Expr *param = NULL;
        if (rng_below(r, 2)) param = rng_below(r, 2) ? expr_num(0.5 + rng_below(r, 4)) : expr_var(VAR_T);
        return expr_term(term, param);
    }
    default: {
        int op = EOP_ADD + (int)rng_below(r, EOP_COUNT - EOP_ADD);
        Expr *a = rand_tree(r, depth - 1);
        Expr *b = (op == EOP_ADD || op == EOP_SUB || op == EOP_MUL || op == EOP_DIV ||
                   op == EOP_POW || op == EOP_MIN || op == EOP_MAX)
                      ? rand_tree(r, depth - 1)
                      : NULL;
        return expr_op(op, a, b);
    }
    }
}

static void test_random_roundtrip(void **state) {
    (void)state;
    LdRng r;
    rng_seed(&r, 42);
    char b1[EXPR_TEXT_MAX], b2[EXPR_TEXT_MAX], b3[EXPR_TEXT_MAX];
    for (int i = 0; i < 3000; i++) {
        Expr *e = rand_tree(&r, 1 + (int)rng_below(&r, 6));
        assert_non_null(e);
        /* terms without parameters must not carry one */
        print_ok(e, b1);
        char err[LD_ERR_MAX];
        Expr *e2 = expr_parse(b1, err);
        if (!e2) {
            /* only a parameter on a parameterless term can fail */
            assert_non_null(strstr(err, "takes no parameter"));
            expr_free(e);
            continue;
        }
        if (!expr_equal(e, e2)) print_error("'%s' did not round-trip\n", b1);
        assert_true(expr_equal(e, e2));
        print_ok(e2, b2);
        assert_string_equal(b1, b2);
        Expr *c = expr_canonical(e);
        assert_non_null(c);
        print_ok(c, b2);
        Expr *c2 = expr_canonical(c);
        print_ok(c2, b3);
        if (strcmp(b2, b3) != 0) print_error("'%s': canonical '%s' then '%s'\n", b1, b2, b3);
        assert_string_equal(b2, b3);
        Expr *cp = expr_parse(b2, err);
        assert_non_null(cp);
        assert_true(expr_equal(cp, c));
        for (int f = 0; f < FAM_COUNT; f++) (void)expr_check(e, f, err);
        expr_free(cp);
        expr_free(c2);
        expr_free(c);
        expr_free(e2);
        expr_free(e);
    }
}

static void test_fuzz(void **state) {
    (void)state;
    static const char *const seeds[] = {
        "0.7*ce + 0.3*focal(2)", "(1-t)*ce + t*focal(2*(1-t))", "-sum(y*log(p))",
        "min(ce, max(pt, 2^-3^2))", "mse + 0.1*phys + bc", "infonce(0.1) + 1e-4*l2",
    };
    static const char alphabet[] = "0123456789.e+-*/^(), \tabcdefghijklmnopqrstuvwxyz_$";
    LdRng r;
    rng_seed(&r, 7);
    char buf[256], err[LD_ERR_MAX], out[EXPR_TEXT_MAX];
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n;
        if (i % 3 == 0) {
            n = rng_below(&r, 40);
            for (size_t k = 0; k < n; k++)
                buf[k] = i % 2 ? (char)(1 + rng_below(&r, 255)) : alphabet[rng_below(&r, sizeof alphabet - 1)];
        } else {
            const char *s = seeds[rng_below(&r, sizeof seeds / sizeof *seeds)];
            n = strlen(s);
            memcpy(buf, s, n);
            int muts = 1 + (int)rng_below(&r, 4);
            for (int m = 0; m < muts; m++) {
                uint32_t kind = rng_below(&r, 3);
                size_t at = n ? rng_below(&r, (uint32_t)n) : 0;
                char c = alphabet[rng_below(&r, sizeof alphabet - 1)];
                if (kind == 0 && n) {
                    buf[at] = c;
                } else if (kind == 1 && n < sizeof buf - 2) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                } else if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        buf[n] = 0;
        err[0] = 0;
        Expr *e = expr_parse(buf, err);
        if (e) {
            parsed++;
            assert_true(expr_print(e, out, sizeof out) >= 0);
            Expr *e2 = expr_parse(out, err);
            assert_non_null(e2);
            assert_true(expr_equal(e, e2));
            Expr *c = expr_canonical(e);
            assert_non_null(c);
            (void)expr_hash(e);
            for (int f = 0; f < FAM_COUNT; f++) (void)expr_check(e, f, err);
            expr_free(c);
            expr_free(e2);
            expr_free(e);
        } else {
            assert_true(strncmp(err, "column ", 7) == 0);
        }
    }
    print_message("fuzz: %d of 20000 inputs parsed\n", parsed);
    assert_true(parsed > 100);
}

/* Issue 16: hostile sizes. A 100,000-term flat sum (300 KB) or product is refused with a clear
 * error instead of overflowing the stack in the parser's callers' recursive walks; the largest
 * accepted flat sum still prints, checks, folds, exports and compiles; nesting is limited at
 * exactly the documented 200 levels; folding never produces inf (1e308*1e308*ce). */
static char *repeat_join(const char *item, const char *sep, int n) {
    size_t li = strlen(item), ls = strlen(sep);
    char *s = malloc((size_t)n * (li + ls) + 1), *q = s;
    assert_non_null(s);
    for (int i = 0; i < n; i++) {
        if (i) memcpy(q, sep, ls), q += ls;
        memcpy(q, item, li);
        q += li;
    }
    *q = 0;
    return s;
}

static void test_limits(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    const struct { const char *item, *sep; } big[] = {{"ce", "+"}, {"pt", "*"}, {"ce", "-"}, {"pt", "/"}};
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        char *s = repeat_join(big[k].item, big[k].sep, 100000);
        err[0] = 0;
        Expr *e = expr_parse(s, err);
        if (e || !strstr(err, "expression too deep")) print_error("100,000 x '%s': %s\n", big[k].sep, err);
        assert_null(e);
        assert_non_null(strstr(err, "expression too deep: more than 1000 levels"));
        free(s);
    }
    /* a balanced tree of more than EXPR_MAX_NODES nodes: ((ce+ce)+(ce+ce))+... */
    char *bal = strdup("ce");
    for (int lv = 0; lv < 14; lv++) {
        size_t n = strlen(bal);
        char *b2 = malloc(2 * n + 8);
        snprintf(b2, 2 * n + 8, "(%s)+(%s)", bal, bal);
        free(bal);
        bal = b2;
    }
    assert_null(expr_parse(bal, err));
    assert_non_null(strstr(err, "expression too large: more than 10000 nodes"));
    free(bal);
    /* the largest flat sum accepted: every walk handles it */
    char *ok = repeat_join("ce", "+", 500);
    Expr *e = expr_parse(ok, err);
    assert_non_null(e);
    assert_int_equal(expr_check(e, FAM_CLASSIFICATION, err), LD_OK);
    Expr *c = expr_canonical(e);
    assert_non_null(c);
    char buf[64];
    assert_true(expr_print(c, buf, sizeof buf) >= 0);
    assert_string_equal(buf, "500*ce");
    char *py = expr_export(e, FAM_CLASSIFICATION, "pytorch", err);
    assert_non_null(py);
    free(py);
    expr_free(c);
    expr_free(e);
    free(ok);
    /* nesting: 200 levels parse, 201 do not, whichever way they nest */
    const char *open[] = {"(", "-", "sqrt(", "abs("};
    const char *close[] = {")", "", ")", ")"};
    for (int k = 0; k < 4; k++) {
        for (int n = 200; n <= 201; n++) {
            size_t lo = strlen(open[k]), lc = strlen(close[k]);
            char *s = malloc((size_t)n * (lo + lc) + 8), *q = s;
            for (int i = 0; i < n; i++) memcpy(q, open[k], lo), q += lo;
            q += sprintf(q, "pt");
            for (int i = 0; i < n; i++) memcpy(q, close[k], lc), q += lc;
            *q = 0;
            err[0] = 0;
            e = expr_parse(s, err);
            if ((e != NULL) != (n == 200)) print_error("%d x '%s': %s\n", n, open[k], e ? "parsed" : err);
            assert_true((e != NULL) == (n == 200));
            if (!e) assert_non_null(strstr(err, "nested too deeply"));
            expr_free(e);
            free(s);
        }
    }
    /* folding never makes inf or nan */
    const char *huge[] = {"1e308*1e308*ce", "1e308*ce + 1e308*ce", "1e308 + 1e308 + ce", "-1e308*ce - 1e308*ce",
                          "ce*1e308/1e-308", "(1e308*1e308 - 1e308*1e308)*ce"};
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        e = expr_parse(huge[k], err);
        assert_non_null(e);
        c = expr_canonical(e);
        assert_non_null(c);
        char t[256];
        assert_true(expr_print(c, t, sizeof t) >= 0);
        for (const char *f = "expr\0pytorch\0numpy\0latex\0"; *f; f += strlen(f) + 1) {
            char *x = expr_export(e, FAM_CLASSIFICATION, f, err);
            assert_non_null(x);
            if (strstr(x, "inf") || strstr(x, "nan") || strstr(t, "inf") || strstr(t, "nan"))
                print_error("'%s' as %s: canonical '%s', export:\n%s\n", huge[k], f, t, x);
            assert_null(strstr(t, "inf"));
            assert_null(strstr(t, "nan"));
            assert_null(strstr(x, "inf"));
            assert_null(strstr(x, "nan"));
            free(x);
        }
        expr_free(c);
        expr_free(e);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_parse_errors),     cmocka_unit_test(test_check),
        cmocka_unit_test(test_canonical),        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_fuzz),             cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
