/* test_propose_engine.c: proposals into the search engine (search_propose, search.h) on a stub
 * SearchEnv, no evaluator linked: the replies (accepted, duplicate by canonical form, refused
 * with the parser's and checker's words, refused by the budget), determinism given the arrival
 * points (a run saved before the proposals, restored and handed them again at their points
 * proposes and ranks exactly as the run that never stopped), a stop asked mid-round surviving a
 * save, and an evaluate-only job that waits for proposals. */
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

static const char *const stub_known[] = {"focal(2)", "smooth(0.1)", NULL};
/* The stub env every test here parses its jobs with (set in main). */
static StubCtx stub_ctx = {.family_ok = 1, .scale_free = 1, .known = stub_known};
static SearchEnv env;

/* One batch of proposals with the point it arrives at. */
typedef struct Batch {
    int64_t point;
    const char *exprs[4];
} Batch;

static const Batch batches[] = {
    {3, {"0.7*ce + 0.3*focal(2.5)", "poly1(2)", NULL}},  /* while round 1 is open */
    {6, {"smooth(0.05) + 0.1*entropy", "mse + ce", NULL}}, /* between rounds 2 and 3 */
    {9, {"focal(3)", NULL}},
};
#define NBATCH 3

/* Hands over the batches from *next on whose point s has reached. */
static void hand_over(Search *s, int *next) {
    SearchProposal *p = malloc(sizeof *p);
    assert_non_null(p);
    while (*next < NBATCH && batches[*next].point <= search_point(s)) {
        for (int k = 0; batches[*next].exprs[k]; k++)
            assert_int_equal(search_propose(s, batches[*next].exprs[k], "t", p), LD_OK);
        (*next)++;
    }
    free(p);
}

/* Runs s to the end, handing proposals over at their points; with save_at >= 0, the state is
 * saved at the first point >= save_at and the returned engine is a restored copy that ran on:
 * the saved one is freed, as a crash would lose it. Returns the engine (owned). */
static Search *run(const SearchJob *job, Search *s, int *next, int64_t save_at, int64_t crash_at) {
    char err[LD_ERR_MAX] = "";
    cJSON *saved = NULL;
    for (;;) {
        hand_over(s, next);
        if (save_at >= 0 && !saved && search_point(s) >= save_at) {
            saved = search_save(s);
        }
        const WorkItem *w;
        int n = search_round(s, &w);
        if (n <= 0) break;
        hand_over(s, next);
        if (save_at >= 0 && !saved && search_point(s) >= save_at) {
            saved = search_save(s);
        }
        if (saved && crash_at >= 0 && search_point(s) >= crash_at) {
            /* the crash: everything since the save is lost; restore, hand the batches over
             * again from the first the saved state has not taken */
            search_free(s);
            s = search_restore(job, saved, err);
            if (!s) fail_msg("restore: %s", err);
            cJSON_Delete(saved);
            saved = NULL;
            int taken = 0;
            *next = 0;
            while (*next < NBATCH) { /* batches the saved state holds */
                int k = 0;
                while (batches[*next].exprs[k]) k++;
                if (taken + k > search_nproposed(s)) break;
                taken += k;
                (*next)++;
            }
            assert_int_equal(taken, search_nproposed(s));
            crash_at = -1;
            save_at = -1;
            continue;
        }
        WorkOutcome *outs = calloc((size_t)n, sizeof *outs);
        fake_outcomes(w, n, outs);
        if (search_finish_round(s, outs, n, err) != LD_OK) fail_msg("finish_round: %s", err);
        free(outs);
    }
    cJSON_Delete(saved);
    return s;
}

static char *board(const Search *s) {
    cJSON *lb = search_leaderboard(s, 0);
    char *t = cJSON_PrintUnformatted(lb);
    cJSON_Delete(lb);
    return t;
}

static const char *const JOB =
    "{\"tasks\":[\"stub:a\"],\"population\":6,\"children\":4,\"budget\":{\"evaluations\":60},"
    "\"seed\":5,\"final\":{\"top\":2,\"seeds\":3},\"seeds\":1}";

static void test_replay_gives_the_same_search(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    SearchJob *job = stub_job(&env, JOB);
    int next = 0;
    Search *a = run(job, search_new(job, NULL, 0, err), &next, -1, -1);
    assert_true(search_done(a));
    char *la = board(a);
    cJSON *st = search_stats(a);
    cJSON *pj = cJSON_GetObjectItemCaseSensitive(st, "proposals");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pj, "received")->valueint, 5);
    assert_true(cJSON_GetObjectItemCaseSensitive(pj, "accepted")->valueint >= 4);
    cJSON_Delete(st);
    assert_non_null(strstr(la, "\"origin\":\"proposed:t\""));
    /* saved at point 2 (before every batch), lost at point 11, replayed: the same board; saved
     * mid-round at 3 after the first batch, lost at 7: the same again */
    const int64_t plan[][2] = {{2, 11}, {3, 7}, {5, 9}, {0, 13}};
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        next = 0;
        Search *b = run(job, search_new(job, NULL, 0, err), &next, plan[i][0], plan[i][1]);
        char *lb = board(b);
        if (strcmp(la, lb))
            fail_msg("save at %lld, crash at %lld: leaderboards differ\n%.600s\n%.600s",
                     (long long)plan[i][0], (long long)plan[i][1], la, lb);
        free(lb);
        search_free(b);
    }
    free(la);
    search_free(a);
    job_free(job);
}

static void test_replies(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    SearchJob *job = stub_job(&env, "{\"tasks\":[\"stub:a\"],\"budget\":{\"evaluations\":20},\"seed\":2,"
                              "\"population\":4,\"children\":2,\"seeds\":1}");
    Search *s = search_new(job, NULL, 0, err);
    SearchProposal *p = malloc(sizeof *p);
    assert_int_equal(search_propose(s, "focal(2.5)", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_ACCEPTED);
    int64_t first = p->cand;
    assert_int_equal(search_propose(s, "1*focal(2.5) + 0", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_DUPLICATE);
    assert_int_equal(p->cand, first);
    assert_string_equal(p->why, "same canonical form");
    assert_int_equal(search_propose(s, "3*ce", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_DUPLICATE);
    assert_int_equal(p->cand, 0);
    assert_string_equal(p->why, "same gradient signature");
    assert_int_equal(search_propose(s, "foo(1)", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_REFUSED);
    assert_string_equal(p->why, "parse");
    assert_non_null(strstr(p->error, "column 1"));
    assert_int_equal(search_propose(s, "mse + phys", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_REFUSED);
    assert_string_equal(p->why, "check");
    assert_non_null(strstr(p->error, "'phys' is not available"));
    assert_int_equal(search_propose(s, "0.5*hinge + ce", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_REFUSED);
    assert_string_equal(p->why, "precheck");
    /* the budget: 20 evaluations, 1 a proposal, 1 kept for the baseline's first run */
    int accepted = 1, budget_refused = 0;
    char text[64];
    for (int i = 0; i < 40; i++) {
        snprintf(text, sizeof text, "focal(%g) + 0.%d*ce", 1.0 + i / 10.0, i % 9 + 1);
        assert_int_equal(search_propose(s, text, "me", p), LD_OK);
        accepted += p->status == PROPOSAL_ACCEPTED;
        if (p->status == PROPOSAL_REFUSED) {
            assert_string_equal(p->why, "budget");
            budget_refused++;
        }
    }
    assert_int_equal(accepted, 19);
    assert_int_equal(budget_refused, 40 - 18);
    /* the first round trains the baseline and every accepted proposal, nothing else fits */
    const WorkItem *w;
    int n = search_round(s, &w);
    assert_int_equal(n, 20);
    free(p);
    search_free(s);
    job_free(job);
}

static void test_evaluate_only_waits(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    SearchJob *job = stub_job(&env, "{\"tasks\":[\"stub:a\"],\"mode\":\"evaluate_only\",\"seeds\":1,"
                              "\"budget\":{\"evaluations\":10},\"seed_losses\":[\"focal(2)\"],"
                              "\"final\":{\"top\":1,\"seeds\":2}}");
    assert_true(job_evaluate_only(job));
    Search *s = search_new(job, NULL, 0, err);
    search_set_wait_for_proposals(s, 1);
    const WorkItem *w;
    int n = search_round(s, &w);
    assert_int_equal(n, 2); /* the baseline and the seed loss: nothing generated */
    WorkOutcome outs[64];
    fake_outcomes(w, n, outs);
    assert_int_equal(search_finish_round(s, outs, n, err), LD_OK);
    assert_int_equal(search_round(s, &w), 0);
    assert_true(search_waiting(s));
    assert_false(search_done(s));
    SearchProposal *p = malloc(sizeof *p);
    assert_int_equal(search_propose(s, "poly1(1)", "me", p), LD_OK);
    assert_int_equal(p->status, PROPOSAL_ACCEPTED);
    n = search_round(s, &w);
    assert_true(n >= 1);
    assert_string_equal(w[0].expr, "poly1(1)"); /* proposals go first */
    fake_outcomes(w, n, outs);
    assert_int_equal(search_finish_round(s, outs, n, err), LD_OK);
    while ((n = search_round(s, &w)) > 0) { /* promotions, if any */
        fake_outcomes(w, n, outs);
        assert_int_equal(search_finish_round(s, outs, n, err), LD_OK);
    }
    assert_true(search_waiting(s));
    /* the user's job.finish: the final re-evaluation, then done */
    search_stop(s, 0);
    assert_false(search_accepts_proposals(s));
    int final_rounds = 0;
    while ((n = search_round(s, &w)) > 0) {
        fake_outcomes(w, n, outs);
        assert_int_equal(search_finish_round(s, outs, n, err), LD_OK);
        final_rounds++;
    }
    assert_true(final_rounds >= 1);
    assert_true(search_done(s));
    cJSON *st = search_stats(s);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(st, "generated")->valueint, 1); /* the seed */
    assert_true(cJSON_GetObjectItemCaseSensitive(st, "final_evaluations")->valueint > 0);
    cJSON_Delete(st);
    free(p);
    search_free(s);
    job_free(job);
}

/* A stop asked while a round is open spares that round, also across a save mid-round. */
static void test_stop_mid_round_survives_save(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    SearchJob *job = stub_job(&env, JOB);
    Search *a = search_new(job, NULL, 0, err);
    const WorkItem *w;
    int n;
    WorkOutcome outs[256];
    for (int r = 0; r < 3; r++) {
        n = search_round(a, &w);
        fake_outcomes(w, n, outs);
        assert_int_equal(search_finish_round(a, outs, n, err), LD_OK);
    }
    n = search_round(a, &w); /* round 3 open */
    search_stop(a, 0);
    cJSON *saved = search_save(a);
    Search *b = search_restore(job, saved, err);
    cJSON_Delete(saved);
    if (!b) fail_msg("restore: %s", err);
    const WorkItem *wb;
    int nb = search_round(b, &wb);
    assert_int_equal(nb, n); /* rebuilt as the search round it was, not as the final one */
    for (int i = 0; i < n; i++) assert_string_equal(w[i].expr, wb[i].expr);
    for (Search *x = a;; x = b) {
        while ((n = search_round(x, &w)) > 0) {
            fake_outcomes(w, n, outs);
            assert_int_equal(search_finish_round(x, outs, n, err), LD_OK);
        }
        if (x == b) break;
    }
    char *la = board(a), *lb = board(b);
    assert_string_equal(la, lb);
    free(la);
    free(lb);
    search_free(a);
    search_free(b);
    job_free(job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_replay_gives_the_same_search),
        cmocka_unit_test(test_evaluate_only_waits),
        cmocka_unit_test(test_stop_mid_round_survives_save),
    };
    env = stub_env(&stub_ctx);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
