/* test_family_toy.c: a new family is one file plus one line. tests/family_toy.c (a line fit, two
 * parameter groups) is added with the one eval_family_add call in main, and then loads, checks
 * its spec keys, compiles losses from its vocabulary and trains under the one trainer like the
 * built-in families: curve, metrics, determinism, the stop rules and the cancel flag. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "family_toy.c" /* the family: its one file (linked in with the test, not the library) */
#include "eval_util.h"

static int toy; /* the family's id, from eval_family_add */

static int run(const Task *t, const char *loss, uint64_t seed, const EvalOpts *base, EvalResult *res, char *err) {
    Expr *e = expr_parse(loss, err);
    assert_non_null(e);
    EvalOpts o = base ? *base : (EvalOpts){0};
    o.seed = seed;
    int rc = eval_run(t, e, &o, res, err);
    expr_free(e);
    return rc;
}

static void test_trains(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = task_from_json("{\"family\":\"toy\",\"data\":\"toy:line\",\"toy\":{\"slope\":2,\"noise\":0.1}}", err);
    if (!t) print_error("load: %s\n", err);
    assert_non_null(t);
    assert_int_equal(task_family(t), toy);
    assert_string_equal(task_metric(t), "mse");
    EvalResult r, r2;
    assert_int_equal(run(t, "mse", 1, NULL, &r, err), LD_OK);
    printf("toy mse: ok %d, val mse %.5f, test %.5f (noise^2 = 0.01), %d steps, %d curve points, loss %.4f -> %.4f\n",
           r.ok, r.val, r.test, r.steps, r.ncurve, r.curve[0].loss, r.final_loss);
    assert_true(r.ok);
    assert_int_equal(r.steps, 300);
    assert_int_equal(r.ncurve, 10);
    assert_int_equal(r.nextra, 2);
    assert_string_equal(r.extra[1].name, "mae");
    assert_true(r.val < 0.02 && r.test < 0.02);         /* the line is found: only the noise is left */
    assert_true(r.final_loss < 0.1 * r.curve[0].loss);  /* and the training loss fell */
    assert_true(r.val == r.extra[0].val);
    /* the same seed gives the same run; another seed another run */
    assert_int_equal(run(t, "mse", 1, NULL, &r2, err), LD_OK);
    assert_true(r2.val == r.val && r2.final_loss == r.final_loss);
    assert_int_equal(run(t, "mse", 2, NULL, &r2, err), LD_OK);
    assert_true(r2.val != r.val);
    /* other losses of its vocabulary, l2 through the slope's group */
    assert_int_equal(run(t, "huber(0.1) + 0.001*l2", 1, NULL, &r2, err), LD_OK);
    printf("toy huber(0.1) + 0.001*l2: val mse %.5f\n", r2.val);
    assert_true(r2.ok && r2.val < 0.03);
    task_free(t);
}

static void test_language_and_spec(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    assert_null(task_from_json("{\"family\":\"toy\",\"data\":\"toy:line\",\"toy\":{\"slop\":2}}", err));
    printf("misspelled key: %s\n", err);
    assert_non_null(strstr(err, "did you mean 'slope'"));
    assert_null(task_from_json("{\"family\":\"toy\",\"data\":\"toy:line\",\"toy\":{\"noise\":9}}", err));
    printf("out of range: %s\n", err);
    assert_non_null(strstr(err, "toy.noise"));
    assert_null(task_from_json("{\"family\":\"toy\",\"data\":\"toy:line\",\"augment\":{}}", err));
    printf("another family's key: %s\n", err);
    Task *t = task_from_json("{\"family\":\"toy\",\"data\":\"toy:line\"}", err);
    assert_non_null(t);
    EvalResult r;
    assert_int_equal(run(t, "ce", 1, NULL, &r, err), LD_EINVAL); /* class logits: not provided */
    printf("ce on a toy task: %s\n", err);
    assert_non_null(strstr(err, "toy"));
    /* the one trainer's stop rules and cancel flag hold for it too */
    assert_int_equal(run(t, "exp(1000*r^2)", 1, NULL, &r, err), LD_OK);
    printf("exp(1000*r^2): ok %d '%s'\n", r.ok, r.error);
    assert_false(r.ok);
    volatile int stop = 1;
    EvalOpts o = {.cancel = &stop};
    assert_int_equal(run(t, "mse", 1, &o, &r, err), LD_OK);
    assert_true(!r.ok && r.cancelled && r.steps == 0);
    task_free(t);
}

/* A built-in family is its file plus its LANG_FAMILIES row: the table is expanded from the
 * rows, and each family's own name is its row's, so the language and the evaluator agree. */
static void test_builtin_rows(void **state) {
    (void)state;
    for (int f = 0; f < FAM_COUNT; f++) {
        const EvalFamily *ef = eval_family(f);
        assert_non_null(ef);
        if (strcmp(ef->name, family_name(f)) != 0)
            fail_msg("family %d: its file names it '%s', its LANG_FAMILIES row '%s'", f, ef->name,
                     family_name(f));
        assert_int_equal(family_parse(ef->name), f);
    }
    assert_true(eval_family(toy) == &family_toy);
    assert_string_equal(family_name(toy), "toy");
}

int main(void) {
    toy = eval_family_add(&family_toy); /* the one line */
    if (toy < 0) {
        fprintf(stderr, "eval_family_add failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trains),
        cmocka_unit_test(test_language_and_spec),
        cmocka_unit_test(test_builtin_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
