/* eval_util.h: what the evaluator's tests share (test_generative.c, test_rl.c, test_gan.c,
 * test_deploy.c, test_family_toy.c; included by each after cmocka.h and the evaluator's headers,
 * so its functions are static inline: a test uses the ones it needs): a task loaded from a JSON
 * string, one training run of a loss given as text, and a training step checked against
 * PyTorch. */
#ifndef LOSSD_TESTS_EVAL_UTIL_H
#define LOSSD_TESTS_EVAL_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The task described by the JSON text (owned by the caller), or NULL with err set. */
static inline Task *task_from_json(const char *json, char *err) {
    cJSON *s = cJSON_Parse(json);
    if (!s) print_error("bad JSON in the test: %s\n", json);
    assert_non_null(s);
    Task *t = NULL;
    int rc = task_load(s, NULL, &t, err);
    cJSON_Delete(s);
    return rc == LD_OK ? t : NULL;
}

/* One run of the loss (text) on t with the seed and steps; *rc_out gets eval_run's code (LD_EINVAL:
 * the loss does not fit the task, with err). */
static inline EvalResult run_loss_rc(const Task *t, const char *loss, uint64_t seed, int steps,
                                     int *rc_out, char *err) {
    Expr *e = expr_parse(loss, err);
    assert_non_null(e);
    EvalOpts o = {.seed = seed, .steps = steps};
    EvalResult r;
    *rc_out = eval_run(t, e, &o, &r, err);
    expr_free(e);
    return r;
}

/* One run that must start (fails the test otherwise, printing why); a run that failed inside
 * (r.ok 0) is printed and returned for the test to judge. */
static inline EvalResult run_loss(const Task *t, const char *loss, uint64_t seed, int steps) {
    char err[LD_ERR_MAX];
    int rc;
    EvalResult r = run_loss_rc(t, loss, seed, steps, &rc, err);
    if (rc) print_error("eval_run %s: %s\n", loss, err);
    assert_int_equal(rc, LD_OK);
    if (!r.ok) print_error("run %s failed: %s\n", loss, r.error);
    return r;
}

/* ---- a step against PyTorch (float64): a folder holding lossd's PyTorch export of the loss
 * (lossmod.py) and the case the test writes (case.py), and the test's driver, which prints the
 * loss on one line and the gradient on the next */

#define TORCH_PY "/usr/bin/python3"

static inline int torch_have(void) {
    if (access(TORCH_PY, X_OK) != 0) return 0;
    return system(TORCH_PY " -c 'import torch' >/dev/null 2>&1") == 0;
}

/* Writes "name = [v0,v1,...]" (9 digits) to f. */
static inline void torch_list(FILE *f, const char *name, const float *v, size_t n) {
    fprintf(f, "%s = [", name);
    for (size_t k = 0; k < n; k++) fprintf(f, "%s%.9g", k ? "," : "", v[k]);
    fprintf(f, "]\n");
}

/* Makes the folder dir (a mkdtemp template, "/tmp/lossd_x_XXXXXX") with lossmod.py, lossd's
 * PyTorch export of e for family, and returns dir/case.py opened for the test to write (and
 * close). */
static inline FILE *torch_case_open(char *dir, const Expr *e, int family) {
    char path[256], err[LD_ERR_MAX];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/lossmod.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char *code = expr_export(e, family, "pytorch", err);
    if (!code) print_error("export: %s\n", err);
    assert_non_null(code);
    fputs(code, f);
    fclose(f);
    free(code);
    snprintf(path, sizeof path, "%s/case.py", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

/* Runs driver (written as dir/driver.py) on dir and compares what it prints with lossd's loss
 * and gradient grads[0..n): the loss within 1e-5 (relative, at least 1), every gradient
 * entry, its largest difference within 1e-4 of the largest magnitude (at least 1e-3). Prints
 * both with verbose, and on a failure what it read; removes dir. Returns the scaled gradient
 * difference. */
static inline double torch_case_check(const char *dir, const char *driver, const char *name, double loss,
                                      const float *grads, size_t n, int verbose) {
    char path[256], cmd[600];
    snprintf(path, sizeof path, "%s/driver.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(driver, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, TORCH_PY " %s/driver.py %s 2>&1", dir, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char line[1 << 20];
    double tl = NAN, gmax = 0, gdiff = 0;
    size_t ng = 0;
    line[0] = 0;
    if (fgets(line, sizeof line, p)) tl = strtod(line, NULL);
    if (fgets(line, sizeof line, p)) {
        char *c = line;
        for (; ng < n; ng++) {
            char *end;
            double v = strtod(c, &end);
            if (end == c) break;
            c = end;
            gmax = fmax(gmax, fabs(v));
            gdiff = fmax(gdiff, fabs(v - grads[ng]));
        }
    }
    int st = pclose(p);
    double dl = fabs(tl - loss) / fmax(1.0, fabs(tl)), dg = gdiff / fmax(gmax, 1e-3);
    if (verbose)
        printf("%-40s torch loss %.7g, lossd %.7g; gradient max diff %.3g of %.3g\n", name, tl, loss, gdiff, gmax);
    if (st || ng != n || !(dl < 1e-5) || !(dg < 1e-4))
        print_error("%s: torch loss %.9g, lossd %.9g; %zu of %zu gradients read, max diff %.3g of %.3g (%s)\n", name,
                    tl, loss, ng, n, gdiff, gmax, line);
    assert_int_equal(st, 0);
    assert_int_equal(ng, n);
    assert_true(dl < 1e-5);
    assert_true(dg < 1e-4);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return dg;
}

#endif
