/* fuzz_lang.c: the loss language: expr_parse of the input; when it parses, the printer's
 * promise (its text parses back to an equal tree that prints the same), the checker for every
 * family, the canonical form (which must print and parse back too) and every exporter of the
 * families it checks for. */
#include <stdio.h>

#include "../../common/lossd.h"
#include "../../lang/expr.h"
#include "fuzz.h"

static void roundtrip(const Expr *e, const char *what) {
    char a[EXPR_TEXT_MAX], b[EXPR_TEXT_MAX], err[LD_ERR_MAX];
    if (expr_print(e, a, sizeof a) < 0) return; /* too long to print: nothing promised */
    Expr *back = expr_parse(a, err);
    if (!back) {
        fprintf(stderr, "%s: printed text does not parse: %s: %s\n", what, a, err);
        abort();
    }
    if (!expr_equal(e, back) || expr_print(back, b, sizeof b) < 0 || strcmp(a, b) != 0) {
        fprintf(stderr, "%s: print/parse round trip differs: %s\n", what, a);
        abort();
    }
    expr_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const formats[] = {"pytorch", "numpy", "latex", "expr"};
    static const int families[] = {FAM_CLASSIFICATION, FAM_REGRESSION, FAM_PHYSICS, FAM_CONTRASTIVE};
    char err[LD_ERR_MAX];
    if (size > 1 << 16) return 0;
    char *src = fuzz_cstr(data, size);
    if (!src) return 0;
    Expr *e = expr_parse(src, err);
    free(src);
    if (!e) return 0;
    roundtrip(e, "parsed");
    (void)expr_size(e);
    (void)expr_depth(e);
    Expr *c = expr_canonical(e);
    if (c) {
        roundtrip(c, "canonical");
        (void)expr_hash(e);
    }
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        if (expr_check(e, families[f], err) != LD_OK) continue;
        for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++)
            free(expr_export(e, families[f], formats[k], err));
    }
    expr_free(c);
    expr_free(e);
    return 0;
}
