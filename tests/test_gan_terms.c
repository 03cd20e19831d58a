/* test_gan_terms.c: the loss language's GAN variables (dx, dgz) and adversarial terms (gan,
 * nsgan, wgan, hinge_gan): each side's value and gradient equal PyTorch's autograd on the same
 * logits (tests/gan_ref.h, written by tests/gen_gan_ref.py), gradients agree with central
 * differences, a zeroed LossIn trains the generator, the terms are refused by families that
 * do not provide discriminator logits, and the exported PyTorch and NumPy functions (lossctl
 * export --as pytorch|numpy) give lossd's value and gradient on the same tensors (skipped when
 * /usr/bin/python3 with torch is missing). The terms are compiled for a family added at run time
 * that provides LIN_GAN (the generative family's gan kind feeds the same inputs). */
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

#include "../lang/lossprog.h"
#include "../common/lossd.h"
#include "gan_ref.h"

static int fam_gan = -1; /* a family providing only LIN_GAN, added in main */

static LossProg *compile(const char *src) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(src, err);
    if (!e) print_error("parse '%s': %s\n", src, err);
    assert_non_null(e);
    LossProg *lp = NULL;
    int rc = lossprog_new(e, fam_gan, GREF_B, 1, 0, &lp, err);
    if (rc) print_error("compile '%s': %s\n", src, err);
    assert_int_equal(rc, LD_OK);
    expr_free(e);
    return lp;
}

/* Every case of the reference: the loss within 1e-5 relative, d/ddgz (and d/ddx on the
 * discriminator's side) within 1e-5 of the largest gradient. The program computes in float
 * (its exp and log are ~1e-7 relative), the reference in float64 on the same float inputs. */
static void test_pytorch_reference(void **state) {
    (void)state;
    double worst = 0;
    for (size_t c = 0; c < sizeof gref_case / sizeof gref_case[0]; c++) {
        LossProg *lp = compile(gref_case[c].src);
        LossIn in = {.B = GREF_B, .t = (float)GREF_T, .side = gref_case[c].side};
        in.var[VAR_DX] = gref_dx;
        in.var[VAR_DGZ] = gref_dgz;
        LossOut o;
        assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
        double lref = gref_case[c].loss, dl = fabs(o.loss - lref) / fmax(1.0, fabs(lref));
        double gmax = 1e-3, dg = 0;
        for (int i = 0; i < GREF_B; i++) gmax = fmax(gmax, fmax(fabs(gref_case[c].gdgz[i]), fabs(gref_case[c].gdx[i])));
        for (int i = 0; i < GREF_B; i++) {
            double gz = o.g_var[VAR_DGZ] ? o.g_var[VAR_DGZ][i] : 0.0;
            dg = fmax(dg, fabs(gz - gref_case[c].gdgz[i]));
            if (gref_case[c].side == LOSS_SIDE_D) {
                double gx = o.g_var[VAR_DX] ? o.g_var[VAR_DX][i] : 0.0;
                dg = fmax(dg, fabs(gx - gref_case[c].gdx[i]));
            }
        }
        printf("%-13s %-40s loss %.7g (torch %.7g, rel diff %.1e), grad maxdiff %.1e (max |g| %.2e)\n",
               gref_case[c].side ? "discriminator" : "generator", gref_case[c].src, o.loss, lref, dl, dg, gmax);
        assert_true(dl <= 1e-5);
        assert_true(dg <= 1e-5 * gmax);
        worst = fmax(worst, fmax(dl, dg / gmax));
        lossprog_free(lp);
    }
    printf("worst relative difference from PyTorch %.2e (tolerance 1e-5)\n", worst);
}

static double loss_at(LossProg *lp, const LossIn *in) {
    LossOut o;
    lossprog_run(lp, in, &o);
    return o.loss;
}

/* Central differences in double steps of 1e-2 on every logit the side trains through; the
 * reference logits keep 0.05 away from the hinge's kinks at +-1. */
static void test_finite_differences(void **state) {
    (void)state;
    float dx[GREF_B], dgz[GREF_B];
    memcpy(dx, gref_dx, sizeof dx);
    memcpy(dgz, gref_dgz, sizeof dgz);
    double worst = 0;
    for (size_t c = 0; c < sizeof gref_case / sizeof gref_case[0]; c++) {
        LossProg *lp = compile(gref_case[c].src);
        int side = gref_case[c].side;
        LossIn in = {.B = GREF_B, .t = (float)GREF_T, .side = side};
        in.var[VAR_DX] = dx;
        in.var[VAR_DGZ] = dgz;
        LossOut o;
        assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
        float g[2][GREF_B] = {{0}};
        if (o.g_var[VAR_DX]) memcpy(g[0], o.g_var[VAR_DX], sizeof g[0]);
        if (o.g_var[VAR_DGZ]) memcpy(g[1], o.g_var[VAR_DGZ], sizeof g[1]);
        double gmax = 1e-3, diff = 0;
        for (int k = 0; k < 2; k++) {
            float *v = k ? dgz : dx;
            for (int i = 0; i < GREF_B; i++) {
                float x = v[i], h = 1e-2f;
                v[i] = x + h;
                double up = loss_at(lp, &in);
                v[i] = x - h;
                double down = loss_at(lp, &in);
                v[i] = x;
                double fd = (up - down) / (2 * (double)h);
                gmax = fmax(gmax, fabs(g[k][i]));
                diff = fmax(diff, fabs(fd - g[k][i]));
            }
        }
        printf("%-13s %-40s FD maxdiff %.2e (max |g| %.2e)\n", side ? "discriminator" : "generator",
               gref_case[c].src, diff, gmax);
        assert_true(diff <= 2e-3 * gmax + 1e-5);
        worst = fmax(worst, diff / gmax);
        lossprog_free(lp);
    }
    printf("worst relative FD maxdiff %.2e (tolerance 2e-3)\n", worst);
}

/* A zeroed LossIn trains the generator: nsgan is softplus(-dgz) and reads nothing of dx. */
static void test_default_side(void **state) {
    (void)state;
    LossProg *lp = compile("nsgan");
    LossIn in = {.B = GREF_B};
    in.var[VAR_DX] = gref_dx;
    in.var[VAR_DGZ] = gref_dgz;
    LossOut o;
    assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
    double want = 0;
    for (int i = 0; i < GREF_B; i++) want += log1p(exp(-(double)gref_dgz[i])) / GREF_B;
    printf("nsgan on a zeroed side: %.7g, softplus(-dgz) %.7g\n", o.loss, want);
    assert_true(fabs(o.loss - want) < 1e-5 * fmax(1, want));
    for (int i = 0; i < GREF_B; i++) assert_true(o.g_var[VAR_DX][i] == 0.0f);
    /* both logits must be fed: a missing one fails the run instead of reading NULL */
    in.var[VAR_DX] = NULL;
    assert_int_equal(lossprog_run(lp, &in, &o), LD_EFAILED);
    lossprog_free(lp);
}

/* The terms and variables are the gan inputs' alone: other families refuse them by name, and
 * the gan family refuses theirs. */
static void test_vocabulary(void **state) {
    (void)state;
    static const struct {
        const char *src;
        int gan;          /* compiled for fam_gan, else for classification */
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"nsgan + 0.1*wgan", 1, NULL},
        {"hinge_gan + 0.01*(dx^2 + dgz^2)", 1, NULL},
        {"(1 - t)*gan + t*nsgan", 1, NULL},
        {"nsgan", 0, "term 'nsgan' is not available for classification tasks"},
        {"ce + hinge_gan", 0, "term 'hinge_gan' is not available for classification tasks"},
        {"ce + dgz", 0, "variable 'dgz' is not available for classification tasks"},
        {"ce + nsgan", 1, "term 'ce' is not available for gan_terms_test tasks"},
        {"td2 + wgan", 1, "term 'td2' is not available for gan_terms_test tasks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Expr *e = expr_parse(cases[i].src, err);
        assert_non_null(e);
        int rc = expr_check(e, cases[i].gan ? fam_gan : FAM_CLASSIFICATION, err);
        printf("%-34s -> %s\n", cases[i].src, rc ? err : "ok");
        if (!cases[i].want) assert_int_equal(rc, LD_OK);
        else {
            assert_int_not_equal(rc, LD_OK);
            if (!strstr(err, cases[i].want)) print_error("expected '%s'\n", cases[i].want);
            assert_non_null(strstr(err, cases[i].want));
        }
        expr_free(e);
    }
    LangVocab v = lang_vocab(fam_gan);
    assert_true(v.vars & (1u << VAR_DX));
    assert_true(v.terms & (1u << TERM_HINGE_GAN));
    assert_false(lang_vocab(FAM_RL).terms & (1u << TERM_GAN));
}

/* lossprog_adversarial (a named term without a program: the GAN side that is not searched) gives
 * the compiled term's value and gradients on both sides, and refuses other terms; expr_inputs
 * names what a loss reads. */
static void test_adversarial_direct(void **state) {
    (void)state;
    static const int terms[4] = {TERM_GAN, TERM_NSGAN, TERM_WGAN, TERM_HINGE_GAN};
    static const char *const names[4] = {"gan", "nsgan", "wgan", "hinge_gan"};
    float gx[GREF_B], gz[GREF_B], loss;
    for (int k = 0; k < 4; k++)
        for (int side = LOSS_SIDE_G; side <= LOSS_SIDE_D; side++) {
            LossProg *lp = compile(names[k]);
            LossIn in = {.B = GREF_B, .side = side};
            in.var[VAR_DX] = gref_dx;
            in.var[VAR_DGZ] = gref_dgz;
            LossOut o;
            assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
            assert_int_equal(lossprog_adversarial(terms[k], side, gref_dx, gref_dgz, GREF_B, &loss, gx, gz), LD_OK);
            double d = fabs(loss - o.loss);
            for (int i = 0; i < GREF_B; i++)
                d = fmax(d, fmax(fabs(gx[i] - o.g_var[VAR_DX][i]), fabs(gz[i] - o.g_var[VAR_DGZ][i])));
            printf("%-9s %-13s direct %.7g, program %.7g, max difference %.1e\n", names[k],
                   side ? "discriminator" : "generator", loss, o.loss, d);
            assert_true(d <= 1e-6);
            lossprog_free(lp);
        }
    assert_int_equal(lossprog_adversarial(TERM_CE, LOSS_SIDE_G, gref_dx, gref_dgz, GREF_B, &loss, gx, gz), LD_EINVAL);
    char err[LD_ERR_MAX];
    Expr *e = expr_parse("nsgan + 0.1*t*dgz^2", err);
    assert_int_equal(expr_inputs(e), LIN_GAN);
    expr_free(e);
    e = expr_parse("ce + mse", err);
    assert_int_equal(expr_inputs(e), LIN_CLASS | LIN_PRED);
    expr_free(e);
}

#define PY "/usr/bin/python3"

static const char export_driver[] =
    "import importlib, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import numpy as np, torch\n"
    "torch.set_default_dtype(torch.float64)\n"
    "import gan_data as D\n"
    "for k, side in enumerate(D.SIDES):\n"
    "    tm = importlib.import_module('gan_torch_%d' % k)\n"
    "    nm = importlib.import_module('gan_numpy_%d' % k)\n"
    "    dx = torch.tensor(D.DX, requires_grad=True)\n"
    "    dgz = torch.tensor(D.DGZ, requires_grad=True)\n"
    "    loss = tm.lossd_loss(dx, dgz, t=D.T, side=side)\n"
    "    loss.backward()\n"
    "    gx = dx.grad if dx.grad is not None else torch.zeros_like(dx)\n"
    "    gz = dgz.grad if dgz.grad is not None else torch.zeros_like(dgz)\n"
    "    nv = nm.lossd_loss_value(np.array(D.DX), np.array(D.DGZ), t=D.T, side=side)\n"
    "    ng = nm.lossd_grad(np.array(D.DX), np.array(D.DGZ), t=D.T, side=side)\n"
    "    print(k, repr(float(loss)), repr(float(nv)), ' '.join(repr(float(v)) for v in gx.tolist() + gz.tolist()),\n"
    "          ' '.join(repr(float(v)) for v in ng.reshape(-1)))\n";

/* Each reference case exported as PyTorch and NumPy, run on the same logits in float64: the
 * value within 1e-5 relative of lossd's, PyTorch's autograd gradient (and NumPy's central
 * differences) within 1e-4 of the largest of lossd's, for d/ddgz and, on the discriminator's
 * side, d/ddx. */
static void test_export_parity(void **state) {
    (void)state;
    if (access(PY, X_OK) != 0 || system(PY " -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
        print_message("skipping: " PY " with torch and numpy is not available\n");
        skip();
    }
    enum { NCASE = sizeof gref_case / sizeof gref_case[0] };
    char dir[] = "/tmp/lossd_gan_exportXXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/gan_data.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "T = %.9g\nDX = [", GREF_T);
    for (int i = 0; i < GREF_B; i++) fprintf(f, "%s%.9g", i ? ", " : "", gref_dx[i]);
    fprintf(f, "]\nDGZ = [");
    for (int i = 0; i < GREF_B; i++) fprintf(f, "%s%.9g", i ? ", " : "", gref_dgz[i]);
    fprintf(f, "]\nSIDES = [");
    for (int c = 0; c < NCASE; c++) fprintf(f, "%s'%s'", c ? ", " : "", gref_case[c].side ? "discriminator" : "generator");
    fprintf(f, "]\n");
    fclose(f);
    for (int c = 0; c < NCASE; c++)
        for (int k = 0; k < 2; k++) {
            char err[LD_ERR_MAX];
            Expr *e = expr_parse(gref_case[c].src, err);
            char *code = expr_export(e, fam_gan, k ? "numpy" : "pytorch", err);
            if (!code) print_error("export '%s': %s\n", gref_case[c].src, err);
            assert_non_null(code);
            snprintf(path, sizeof path, "%s/gan_%s_%d.py", dir, k ? "numpy" : "torch", c);
            f = fopen(path, "w");
            assert_non_null(f);
            fputs(code, f);
            fclose(f);
            free(code);
            expr_free(e);
        }
    snprintf(path, sizeof path, "%s/driver.py", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(export_driver, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, PY " %s/driver.py %s 2>&1", dir, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[8192];
    int seen = 0;
    double worst = 0;
    while (fgets(line, sizeof line, p)) {
        int k;
        double tv, nv, g[4 * GREF_B];
        char *s = line, *end;
        k = (int)strtol(s, &end, 10);
        if (end == s || k < 0 || k >= NCASE) {
            print_error("python: %s", line);
            continue;
        }
        s = end;
        tv = strtod(s, &s);
        nv = strtod(s, &s);
        for (int i = 0; i < 4 * GREF_B; i++) g[i] = strtod(s, &s);
        LossProg *lp = compile(gref_case[k].src);
        LossIn in = {.B = GREF_B, .t = (float)GREF_T, .side = gref_case[k].side};
        in.var[VAR_DX] = gref_dx;
        in.var[VAR_DGZ] = gref_dgz;
        LossOut o;
        assert_int_equal(lossprog_run(lp, &in, &o), LD_OK);
        double dl = fmax(fabs(tv - o.loss), fabs(nv - o.loss)) / fmax(1.0, fabs(o.loss)), gmax = 1e-3, dg = 0;
        for (int j = 0; j < 2; j++) /* torch's autograd (rows 0-1), numpy's differences (rows 2-3) */
            for (int i = 0; i < GREF_B; i++) {
                double mz = o.g_var[VAR_DGZ] ? o.g_var[VAR_DGZ][i] : 0.0;
                double mx = o.g_var[VAR_DX] ? o.g_var[VAR_DX][i] : 0.0;
                gmax = fmax(gmax, fmax(fabs(mz), fabs(mx)));
                dg = fmax(dg, fabs(g[j * 2 * GREF_B + GREF_B + i] - mz));
                if (gref_case[k].side == LOSS_SIDE_D) dg = fmax(dg, fabs(g[j * 2 * GREF_B + i] - mx));
            }
        printf("export %-13s %-40s torch %.7g numpy %.7g lossd %.7g; grad maxdiff %.1e (max |g| %.2e)\n",
               gref_case[k].side ? "discriminator" : "generator", gref_case[k].src, tv, nv, o.loss, dg, gmax);
        assert_true(dl <= 1e-5);
        assert_true(dg <= 1e-4 * gmax);
        worst = fmax(worst, fmax(dl, dg / gmax));
        lossprog_free(lp);
        seen++;
    }
    pclose(p);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) print_message("could not remove %s\n", dir);
    printf("%d of %d exports agree; worst relative difference %.2e\n", seen, NCASE, worst);
    assert_int_equal(seen, NCASE);
}

int main(void) {
    fam_gan = lang_family_add("gan_terms_test", LIN_GAN);
    if (fam_gan < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pytorch_reference),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_default_side),
        cmocka_unit_test(test_vocabulary),
        cmocka_unit_test(test_adversarial_direct),
        cmocka_unit_test(test_export_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
