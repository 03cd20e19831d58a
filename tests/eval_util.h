/* eval_util.h: what the evaluator's tests share (test_generative.c, test_rl.c, test_gan.c,
 * test_deploy.c, test_family_toy.c; included by each after cmocka.h and the evaluator's headers,
 * so its functions are static inline: a test uses the ones it needs): a task loaded from a JSON
 * string, and one training run of a loss given as text. */
#ifndef LOSSD_TESTS_EVAL_UTIL_H
#define LOSSD_TESTS_EVAL_UTIL_H

#include <stdio.h>

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

#endif
