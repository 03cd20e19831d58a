/* test_engine_stub.c: the search engine runs where no data is loaded and no training code is
 * linked. Its SearchEnv here is a stub: tasks are descriptions made up from their names, the
 * family's lists are this file's own, and the gradient signature and pre-check are cheap
 * functions of the expression's text. The test calls only search/ (and lang/, common/), so the
 * binary holds none of the evaluator (nm build/tests/test_engine_stub shows no eval_ symbol). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../search/search.h"

#include "stub_env.h"

static const char *const stub_known[] = {"focal(2)", "smooth(0.1)", "0.5*ce + 0.5*hinge", NULL};
static const char *const stub_panel[] = {"ce", "focal(2)", NULL};

static const char *const JOB =
    "{\"tasks\":[\"stub:a\",\"stub:b\"],\"holdout\":[\"stub:c\"],\"population\":6,"
    "\"children\":4,\"budget\":{\"evaluations\":80},\"seed\":11,\"final\":{\"top\":2,\"seeds\":3}}";

/* Steps s until done (or max_rounds); the rounds it ran. */
static int run_rounds(Search *s, int max_rounds) {
    char err[LD_ERR_MAX] = "";
    int r = 0;
    const WorkItem *w;
    int n;
    while (r < max_rounds && (n = search_round(s, &w)) > 0) {
        WorkOutcome *outs = calloc((size_t)n, sizeof *outs);
        assert_non_null(outs);
        fake_outcomes(w, n, outs);
        if (search_finish_round(s, outs, n, err) != LD_OK) fail_msg("finish_round: %s", err);
        free(outs);
        r++;
    }
    return r;
}

static char *leaderboard_text(const Search *s) {
    cJSON *lb = search_leaderboard(s, 0);
    char *t = cJSON_PrintUnformatted(lb);
    cJSON_Delete(lb);
    return t;
}

static void test_engine_runs_on_stub_hooks(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    StubCtx c = {.family_ok = 1, .known = stub_known, .panel = stub_panel};
    SearchEnv env = stub_env(&c);
    SearchJob *job = stub_job(&env, JOB);
    assert_int_equal(c.loads, 3);
    assert_int_equal(job_ntasks(job), 3);
    assert_string_equal(job_task(job, 2)->name, "c");

    Search *s = search_new(job, NULL, 0, err);
    if (!s) fail_msg("search_new: %s", err);
    int rounds = run_rounds(s, 1000);
    assert_true(search_done(s));
    assert_true(rounds >= 3);
    /* the engine asked the env for signatures and pre-checks, and the pre-check's
     * rejection (every hinge loss, one of them the family's known list's) is the env's */
    assert_true(c.signatures > 10);
    assert_true(c.prechecks > 5);
    cJSON *st = search_stats(s);
    cJSON *rj = cJSON_GetObjectItemCaseSensitive(st, "rejection_reasons");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(rj, "does not improve accuracy when optimised directly"));
    int evals = cJSON_GetObjectItemCaseSensitive(st, "evaluations")->valueint;
    if (evals < 60 || evals > 80) fail_msg("evaluations %d, expected 60..80 of the budget of 80", evals);
    cJSON_Delete(st);

    /* the first population holds the family's known losses, as the env declared them */
    int known = 0;
    for (int64_t i = 0; i < search_ncandidates(s); i++) {
        cJSON *cj = search_candidate(s, i);
        const char *op = cJSON_GetObjectItemCaseSensitive(cj, "op")->valuestring;
        const char *ex = cJSON_GetObjectItemCaseSensitive(cj, "expr")->valuestring;
        const char *status = cJSON_GetObjectItemCaseSensitive(cj, "status")->valuestring;
        if (!strcmp(op, "known")) {
            known++;
            int hinge = strstr(ex, "hinge") != NULL;
            if (strcmp(ex, "focal(2)") && strcmp(ex, "smooth(0.1)") && !hinge)
                fail_msg("known candidate %s is not one of the stub family's", ex);
            if (hinge != !strcmp(status, "rejected"))
                fail_msg("known candidate %s is %s", ex, status);
        }
        if (i == 0) assert_string_equal(ex, "ce"); /* the family's default baseline */
        cJSON_Delete(cj);
    }
    assert_int_equal(known, 3);
    cJSON *lb = search_leaderboard(s, 1);
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(lb, 0), "final");
    assert_non_null(fin); /* the final comparison ran on the holdout task */
    cJSON_Delete(lb);

    /* the same job and seed give the same leaderboard; so does a save and restore midway */
    char *want = leaderboard_text(s);
    Search *b = search_new(job, NULL, 0, err);
    run_rounds(b, 3);
    cJSON *saved = search_save(b);
    search_free(b);
    b = search_restore(job, saved, err);
    cJSON_Delete(saved);
    if (!b) fail_msg("search_restore: %s", err);
    run_rounds(b, 1000);
    char *got = leaderboard_text(b);
    assert_string_equal(got, want);
    free(got);
    free(want);
    search_free(b);
    search_free(s);
    job_free(job);
    assert_int_equal(c.frees, c.loads);
}

static void test_env_refuses(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    StubCtx c = {.family_ok = 0, .known = stub_known, .panel = stub_panel};
    SearchEnv env = stub_env(&c);
    SearchJob *job = NULL;
    cJSON *j = cJSON_Parse("{\"tasks\":[\"stub:a\",\"builtin:digits\"]}");
    assert_int_equal(job_parse(j, NULL, &env, &job, err), LD_EINVAL);
    cJSON_Delete(j);
    assert_null(job);
    /* the loader's message is placed at its task; a family the env does not serve is named */
    if (!strstr(err, "tasks[1].data: only stub:NAME tasks here") ||
        !strstr(err, "family: classification is not a family the search can serve"))
        fail_msg("error: %s", err);
    assert_int_equal(c.frees, c.loads); /* a failed load is freed too */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_runs_on_stub_hooks),
        cmocka_unit_test(test_env_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
