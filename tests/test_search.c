/* test_search.c: the search engine: job validation, the typed grammar, canonical dedup,
 * determinism and save/restore, selection and successive halving, early stopping inside a run.
 *
 * The engine tests use a FAKE evaluator: a cheap deterministic function of the expression text,
 * seed and steps stands in for eval_run. That is deliberate and only here: it makes the engine's
 * logic (selection, promotion, determinism) testable in milliseconds; real training is tested in
 * the evaluator's tests and in tests/test_search_cli.sh. The gradient signature and pre-check
 * inside the engine are the real ones (evaluator/probe.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../daemon/engine.h"
#include "../evaluator/eval.h"
#include "../search/internal.h"
#include "../storage/store.h"

static SearchJob *job_from(const char *text) {
    char err[LD_ERR_MAX] = "";
    cJSON *j = cJSON_Parse(text);
    if (!j) fail_msg("test job is not JSON: %s", text);
    SearchJob *job = NULL;
    int rc = job_parse(j, NULL, engine_env(), &job, err);
    cJSON_Delete(j);
    if (rc != LD_OK) fail_msg("job_parse failed: %s", err);
    return job;
}

static void expect_problems(const char *text, const char *const *want) {
    char err[LD_ERR_MAX] = "";
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    SearchJob *job = NULL;
    int rc = job_parse(j, NULL, engine_env(), &job, err);
    cJSON_Delete(j);
    if (rc != LD_EINVAL) fail_msg("expected LD_EINVAL for %s, got %d", text, rc);
    assert_null(job);
    for (int i = 0; want[i]; i++)
        if (!strstr(err, want[i])) fail_msg("error \"%s\" does not name \"%s\"", err, want[i]);
}

/* ---- job validation ---- */

static void test_job_every_problem_named(void **state) {
    (void)state;
    expect_problems("{}", (const char *const[]){"tasks: missing", NULL});
    expect_problems(
        "{\"tasks\":[{\"family\":\"classification\"}],\"space\":{\"max_nodes\":1,\"max_depth\":"
        "2.5},\"budget\":{\"evaluations\":0},\"populaton\":3}",
        (const char *const[]){"tasks[0]: missing", "space.max_nodes: must be at least 3, got 1",
                              "space.max_depth: must be an integer",
                              "budget.evaluations: must be at least 1, got 0",
                              "populaton: unknown key", NULL});
    expect_problems("{\"tasks\":[\"builtin:digits\"],\"fidelity\":{\"steps\":[100,50],"
                    "\"promote\":2},\"final\":{\"seeds\":1},\"init\":\"random\"}",
                    (const char *const[]){"fidelity.steps[1]", "fidelity.promote: must be between",
                                          "final.seeds: must be at least 2, got 1",
                                          "init: must be", NULL});
    /* more problems than fit: the first ones and a count */
    expect_problems("{\"a1\":1,\"a2\":1,\"a3\":1,\"a4\":1,\"a5\":1,\"a6\":1,\"a7\":1,\"a8\":1,"
                    "\"a9\":1,\"b1\":1,\"b2\":1,\"b3\":1,\"b4\":1,\"b5\":1,\"b6\":1,\"b7\":1,"
                    "\"b8\":1,\"b9\":1,\"c1\":1,\"c2\":1,\"c3\":1,\"c4\":1,\"c5\":1}",
                    (const char *const[]){"a1: unknown key", "more)", NULL});
    expect_problems("{\"tasks\":[\"builtin:digits\"],\"baseline\":\"mse + phys\","
                    "\"space\":{\"terms\":[\"ce\",\"nosuch\"],\"primitives\":[\"log\",\"f\"]}}",
                    (const char *const[]){"baseline: ", "phys",
                                          "space.terms[1]: unknown term 'nosuch'",
                                          "space.primitives[1]: variable 'f' is not available",
                                          NULL});
    expect_problems("{\"tasks\":[\"builtin:digits\", \"builtin:diabetes\"]}",
                    (const char *const[]){"tasks[1]: family regression differs", NULL});
    expect_problems("{\"tasks\":\"builtin:digits\",\"seed\":-1,\"warm_start\":1}",
                    (const char *const[]){"tasks: must be an array", "seed: must be",
                                          "warm_start: must be true or false", NULL});
}

static void test_job_defaults(void **state) {
    (void)state;
    SearchJob *j = job_from("{\"tasks\":[\"builtin:wine\"],\"holdout\":[\"builtin:breast_cancer\"]}");
    assert_int_equal(j->ntasks, 2);
    assert_int_equal(j->nsel, 1);
    assert_true(job_is_holdout(j, 1));
    assert_false(job_is_holdout(j, 0));
    /* the default budget (200) brings the default horizon: the holdout task at 5x the steps,
     * numbered after the job's tasks */
    assert_int_equal(job_ntasks(j), 3);
    assert_true(job_is_horizon(j, 2) && !job_is_horizon(j, 1));
    assert_string_equal(job_task(j, 2)->name, "breast_cancer@horizon");
    assert_string_equal(j->baseline_text, "ce");
    assert_int_equal(j->family, FAM_CLASSIFICATION);
    cJSON *n = job_json(j);
    assert_non_null(n);
    /* the normalised job parses back to the same settings */
    char err[LD_ERR_MAX] = "";
    SearchJob *j2 = NULL;
    int rc = job_parse(n, NULL, engine_env(), &j2, err);
    if (rc != LD_OK) fail_msg("normalised job does not parse back: %s", err);
    assert_int_equal(j2->max_nodes, j->max_nodes);
    assert_int_equal(j2->nlevels, j->nlevels);
    assert_int_equal(j2->budget_evals, j->budget_evals);
    assert_int_equal(j2->ntasks, 2);
    job_free(j2);
    cJSON_Delete(n);
    job_free(j);
}

/* ---- the grammar ---- */

static void check_valid(const Grammar *g, const Expr *e, const char *what) {
    char err[LD_ERR_MAX] = "", text[EXPR_TEXT_MAX] = "?";
    expr_print(e, text, sizeof text);
    if (expr_size(e) > g->max_nodes || expr_depth(e) > g->max_depth)
        fail_msg("%s: %s has %d nodes, depth %d (limits %d, %d)", what, text, expr_size(e),
                 expr_depth(e), g->max_nodes, g->max_depth);
    if (expr_check(e, g->family, err) != LD_OK) fail_msg("%s: %s: %s", what, text, err);
}

static void grammar_family(const char *job_text, int n) {
    SearchJob *j = job_from(job_text);
    Grammar g;
    grammar_init(&g, j);
    LdRng r;
    rng_seed(&r, 42);
    Expr **pool = calloc((size_t)n, sizeof *pool);
    int made = 0, mutated = 0, crossed = 0, tuned = 0;
    for (int i = 0; i < n; i++) {
        pool[i] = grammar_random(&g, &r);
        if (!pool[i]) continue;
        check_valid(&g, pool[i], "random");
        made++;
    }
    for (int i = 0; i < 4 * n; i++) {
        Expr *p = pool[rng_below(&r, (uint32_t)n)], *q = pool[rng_below(&r, (uint32_t)n)];
        if (!p || !q) continue;
        const char *op = NULL;
        Expr *c = grammar_mutate(&g, p, &r, &op);
        if (c) {
            check_valid(&g, c, op);
            mutated++;
        }
        Expr *x = grammar_crossover(&g, p, q, &r);
        if (x) {
            check_valid(&g, x, "crossover");
            crossed++;
            expr_free(x);
        }
        Expr *t = grammar_perturb(&g, p, 0.3, &r);
        if (t) {
            check_valid(&g, t, "perturb");
            tuned++;
            expr_free(t);
        }
        if (c) { /* chains of mutations stay valid too */
            int k = (int)rng_below(&r, (uint32_t)n);
            expr_free(pool[k]);
            pool[k] = c;
        }
    }
    printf("# %s: %d random, %d mutated, %d crossed, %d perturbed, all valid\n", job_text, made,
           mutated, crossed, tuned);
    if (made < n * 9 / 10) fail_msg("only %d of %d random candidates were made", made, n);
    if (mutated < n) fail_msg("only %d mutations succeeded of %d tries", mutated, 4 * n);
    if (crossed < n / 4) fail_msg("only %d crossovers succeeded of %d tries", crossed, 4 * n);
    for (int i = 0; i < n; i++) expr_free(pool[i]);
    free(pool);
    job_free(j);
}

static void test_grammar_valid(void **state) {
    (void)state;
    grammar_family("{\"tasks\":[\"builtin:digits\"]}", 1000);
    grammar_family("{\"tasks\":[\"builtin:diabetes\"],\"space\":{\"max_nodes\":12,\"max_depth\":5}}",
                   1000);
    grammar_family("{\"tasks\":[\"builtin:digits\"],\"space\":{\"terms\":[],\"primitives\":"
                   "[\"+\",\"*\",\"log\",\"sum\",\"p\",\"y\",\"pt\",\"t\"],\"max_nodes\":10}}",
                   500);
}

/* ---- the fake evaluator ---- */

/* A deterministic stand-in for training: accuracy rewards focal-like terms, the pt variable
 * and, most, a coefficient near 0.37 somewhere in the loss; plus seed noise that shrinks with
 * more steps. Never used outside this test. */
static void fake_eval(const WorkItem *w, EvalResult *r) {
    memset(r, 0, sizeof *r);
    r->ok = 1;
    snprintf(r->metric, sizeof r->metric, "accuracy");
    double v = 0.6;
    if (strstr(w->expr, "focal")) v += 0.05;
    if (strstr(w->expr, "pt")) v += 0.03;
    double best = 1;
    for (const char *p = w->expr; *p; p++) {
        if ((*p >= '0' && *p <= '9') && (p == w->expr || !(p[-1] >= '0' && p[-1] <= '9') ) &&
            (p == w->expr || p[-1] != '.')) {
            double c = strtod(p, NULL);
            if (fabs(c - 0.37) < best) best = fabs(c - 0.37);
        }
    }
    v += 0.1 * exp(-best * 10);
    v -= 0.002 * (double)strlen(w->expr) / 10;
    uint64_t h = ld_mix64(ld_hash64(w->expr, strlen(w->expr)), w->seed);
    v += ((double)(h % 1000) / 1000.0 - 0.5) * 0.02 * 100.0 / (w->steps + 50);
    r->val = v;
    r->test = v - 0.01;
    r->steps = w->steps;
}

static const char *job_small =
    "{\"tasks\":[\"builtin:digits\"],\"population\":12,\"children\":6,\"budget\":{\"evaluations\":"
    "120},\"fidelity\":{\"steps\":[50,200],\"promote\":0.34},\"seeds\":2,\"final\":{\"top\":2,"
    "\"seeds\":3},\"seed\":7}";

static int n_prechecked_out; /* works the pre-check turned away */
static int reverse_outcomes;  /* hand outcomes back last first, as workers may finish them */

/* Runs up to max_rounds rounds with the fake evaluator; returns the rounds run. */
static int run_rounds(Search *s, int max_rounds) {
    int r = 0;
    for (; r < max_rounds; r++) {
        const WorkItem *w;
        int n = search_round(s, &w);
        if (n == 0) break;
        WorkOutcome *res = calloc((size_t)n, sizeof *res);
        for (int i = 0; i < n; i++) {
            /* the pre-check is the real one, as eval_work does it */
            char perr[LD_ERR_MAX] = "";
            Expr *e = w[i].precheck ? expr_parse(w[i].expr, perr) : NULL;
            res[i].seq = w[i].seq;
            if (e && eval_precheck(e, FAM_CLASSIFICATION, 10, perr) != LD_OK) {
                res[i].status = WORK_REJECTED;
                snprintf(res[i].res.error, sizeof res[i].res.error, "%.200s", perr);
                n_prechecked_out++;
            } else {
                fake_eval(&w[i], &res[i].res);
                res[i].status = res[i].res.ok ? WORK_OK : WORK_FAILED;
            }
            expr_free(e);
        }
        if (reverse_outcomes)
            for (int i = 0, k = n - 1; i < k; i++, k--) {
                WorkOutcome t = res[i];
                res[i] = res[k];
                res[k] = t;
            }
        char err[LD_ERR_MAX] = "";
        int rc = search_finish_round(s, res, n, err);
        free(res);
        if (rc != LD_OK) fail_msg("finish_round: %s", err);
    }
    return r;
}

static char *print_json(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static double stat(const Search *s, const char *k) {
    cJSON *st = search_stats(s);
    cJSON *v = cJSON_GetObjectItem(st, k);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(st);
    return d;
}

static void test_determinism_and_restore(void **state) {
    (void)state;
    SearchJob *j = job_from(job_small);
    char err[LD_ERR_MAX] = "";
    Search *a = search_new(j, NULL, 0, err), *b = search_new(j, NULL, 0, err);
    assert_non_null(a);
    assert_non_null(b);
    /* same seed, same proposals */
    for (int r = 0; r < 4; r++) {
        const WorkItem *wa, *wb;
        int na = search_round(a, &wa), nb = search_round(b, &wb);
        assert_int_equal(na, nb);
        assert_true(na > 0);
        if (memcmp(wa, wb, (size_t)na * sizeof *wa) != 0) fail_msg("round %d differs", r);
        run_rounds(a, 1);
        run_rounds(b, 1);
    }
    search_free(b);
    /* save at a boundary, restore into a fresh engine, compare the next rounds byte for byte */
    cJSON *st = search_save(a);
    char *st_text = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    cJSON *st2 = cJSON_Parse(st_text);
    Search *c = search_restore(j, st2, err);
    cJSON_Delete(st2);
    if (!c) fail_msg("restore: %s", err);
    /* and a save taken mid-round describes the round's start */
    const WorkItem *w0;
    int n0 = search_round(a, &w0);
    assert_true(n0 > 0);
    cJSON *mid = search_save(a);
    char *mid_text = cJSON_PrintUnformatted(mid);
    cJSON_Delete(mid);
    if (strcmp(mid_text, st_text) != 0) fail_msg("a save taken mid-round differs from the one at its start");
    int rounds = 0;
    for (;; rounds++) {
        const WorkItem *wa, *wc;
        int na = search_round(a, &wa), nc = search_round(c, &wc);
        if (na != nc) fail_msg("after restore, round %d: %d works vs %d", rounds, na, nc);
        if (na == 0) break;
        if (memcmp(wa, wc, (size_t)na * sizeof *wa) != 0)
            fail_msg("after restore, round %d differs", rounds);
        run_rounds(a, 1);
        run_rounds(c, 1);
    }
    assert_true(search_done(a));
    assert_true(search_done(c));
    char *la = print_json(search_leaderboard(a, 0)), *lc = print_json(search_leaderboard(c, 0));
    if (strcmp(la, lc) != 0) {
        size_t k = 0;
        while (la[k] && la[k] == lc[k]) k++;
        size_t from = k > 120 ? k - 120 : 0;
        fail_msg("leaderboards differ at byte %zu:\n  %.200s\n  %.200s", k, la + from, lc + from);
    }
    printf("# %d rounds after restore matched; leaderboard %zu bytes identical\n", rounds,
           strlen(la));
    free(la);
    free(lc);
    free(st_text);
    free(mid_text);
    search_free(a);
    search_free(c);
    job_free(j);
}

/* Seeds are read exactly or refused: above 2^64-1 (as a string) or from 2^53 on (as a JSON
 * number, which is not exact there) used to be clamped or rounded, so two seeds gave one search. */
static void test_seed_exact_or_refused(void **state) {
    (void)state;
    static const struct {
        const char *seed;
        int ok;
        const char *msg;
    } cases[] = {
        {"\"18446744073709551615\"", 1, NULL},
        {"\"18446744073709551616\"", 0, "above 2^64-1"},
        {"\"99999999999999999999999\"", 0, "above 2^64-1"},
        {"9007199254740991", 1, NULL},
        {"9007199254740993", 0, "above 2^53"}, /* reads as ...992: which seed was meant? */
        {"1e30", 0, "above 2^53"},
        {"42", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256], err[LD_ERR_MAX] = "";
        snprintf(text, sizeof text, "{\"tasks\":[\"builtin:wine\"],\"seed\":%s}", cases[i].seed);
        cJSON *j = cJSON_Parse(text);
        SearchJob *job = NULL;
        int rc = job_parse(j, NULL, engine_env(), &job, err);
        cJSON_Delete(j);
        if ((rc == LD_OK) != cases[i].ok)
            fail_msg("seed %s: expected %s, got rc %d (%s)", cases[i].seed,
                     cases[i].ok ? "accepted" : "refused", rc, err);
        if (!cases[i].ok && !strstr(err, cases[i].msg))
            fail_msg("seed %s: message \"%s\" lacks \"%s\"", cases[i].seed, err, cases[i].msg);
        if (rc == LD_OK && i == 0) assert_true(job_seed(job) == UINT64_MAX);
        job_free(job);
    }
}

/* Outcomes may come back in any order: the engine applies them in the round's order, so a
 * search fed last-first ends on the same leaderboard; a missing or doubled outcome is refused. */
static void test_outcomes_any_order(void **state) {
    (void)state;
    SearchJob *j = job_from(job_small);
    char err[LD_ERR_MAX] = "";
    Search *a = search_new(j, NULL, 0, err), *b = search_new(j, NULL, 0, err);
    assert_non_null(a);
    assert_non_null(b);
    search_set_worker_precheck(a, 1);
    search_set_worker_precheck(b, 1);
    run_rounds(a, 1000);
    reverse_outcomes = 1;
    run_rounds(b, 1000);
    reverse_outcomes = 0;
    char *la = print_json(search_leaderboard(a, 0)), *lb = print_json(search_leaderboard(b, 0));
    if (strcmp(la, lb) != 0) fail_msg("in order and reversed differ:\n  %.300s\n  %.300s", la, lb);
    free(la);
    free(lb);
    search_free(a);
    search_free(b);

    Search *c = search_new(j, NULL, 0, err);
    const WorkItem *w;
    int n = search_round(c, &w);
    assert_true(n >= 2);
    WorkOutcome *o = calloc((size_t)n, sizeof *o);
    for (int i = 0; i < n; i++) {
        o[i].seq = w[i].seq;
        fake_eval(&w[i], &o[i].res);
        o[i].status = WORK_OK;
    }
    o[1].seq = o[0].seq; /* doubled, so one is missing */
    assert_int_equal(search_finish_round(c, o, n, err), LD_EINVAL);
    printf("# doubled outcome refused: %s\n", err);
    assert_int_equal(search_finish_round(c, o, n - 1, err), LD_EINVAL);
    o[1].seq = w[1].seq;
    assert_int_equal(search_finish_round(c, o, n, err), LD_OK);
    free(o);
    search_free(c);
    job_free(j);
}

static void test_selection_and_halving(void **state) {
    (void)state;
    SearchJob *j = job_from(
        "{\"tasks\":[\"builtin:digits\"],\"population\":16,\"children\":8,\"budget\":"
        "{\"evaluations\":400},\"fidelity\":{\"steps\":[50,200],\"promote\":0.25},\"seeds\":1,"
        "\"final\":{\"top\":3,\"seeds\":4},\"init\":\"scratch\",\"seed\":3,\"baseline\":\"ce\"}");
    char err[LD_ERR_MAX] = "";
    Search *s = search_new(j, NULL, 0, err);
    assert_non_null(s);
    search_set_worker_precheck(s, 1); /* run_rounds honours WorkItem.precheck */
    n_prechecked_out = 0;
    run_rounds(s, 1);
    double first = stat(s, "best_fitness");
    run_rounds(s, 1000);
    assert_true(search_done(s));
    double last = stat(s, "best_fitness");
    printf("# best fitness after the first round %.4f, at the end %.4f\n", first, last);
    if (!(last > first + 0.02))
        fail_msg("selection did not improve fitness: %.4f -> %.4f", first, last);
    int evals = (int)stat(s, "evaluations");
    if (evals > 400) fail_msg("budget exceeded: %d evaluations", evals);
    /* works the pre-check turned away are rejections, not evaluations */
    int rej = (int)stat(s, "rejections");
    printf("# %d rejections; the pre-check in the workers turned away %d works\n", rej, n_prechecked_out);
    if (n_prechecked_out > 0 && rej < 1) fail_msg("pre-check failures were not counted");
    cJSON *lb0 = search_leaderboard(s, 0);
    cJSON *it;
    cJSON_ArrayForEach(it, lb0) {
        const char *ex = cJSON_GetObjectItem(it, "expr")->valuestring;
        Expr *e = expr_parse(ex, err);
        if (eval_precheck(e, FAM_CLASSIFICATION, 10, err) != LD_OK && strcmp(ex, "ce") != 0)
            fail_msg("%s failed the pre-check but is on the leaderboard", ex);
        expr_free(e);
    }
    cJSON_Delete(lb0);
    /* successive halving: the candidates promoted to level 1 are the better ones */
    double sum_hi = 0, sum_lo = 0;
    int n_hi = 0, n_lo = 0;
    for (int64_t i = 1; i < search_ncandidates(s); i++) {
        cJSON *c = search_candidate(s, i);
        cJSON *f = cJSON_GetObjectItem(c, "fitness");
        int lvl = cJSON_GetObjectItem(c, "level")->valueint;
        if (cJSON_IsNumber(f)) {
            if (lvl >= 1) {
                sum_hi += f->valuedouble;
                n_hi++;
            } else if (lvl == 0) {
                sum_lo += f->valuedouble;
                n_lo++;
            }
        }
        cJSON_Delete(c);
    }
    int promos = (int)stat(s, "promotions");
    printf("# %d promoted (mean fitness %.4f) vs %d not (mean %.4f); promotions %d\n", n_hi,
           n_hi ? sum_hi / n_hi : NAN, n_lo, n_lo ? sum_lo / n_lo : NAN, promos);
    if (n_hi < 2 || n_lo < 2) fail_msg("too few candidates on a level: %d, %d", n_hi, n_lo);
    if (!(sum_hi / n_hi > sum_lo / n_lo + 0.005))
        fail_msg("promoted candidates are not better: %.4f vs %.4f", sum_hi / n_hi, sum_lo / n_lo);
    assert_int_equal(promos, n_hi);
    /* the leaderboard leads with level-1 candidates and carries the final paired comparison */
    cJSON *lb = search_leaderboard(s, 5);
    cJSON *top = cJSON_GetArrayItem(lb, 0);
    assert_int_equal(cJSON_GetObjectItem(top, "level")->valueint, 1);
    cJSON *fin = cJSON_GetObjectItem(top, "final");
    if (!cJSON_IsObject(fin)) fail_msg("the top entry has no final comparison");
    cJSON *vs = cJSON_GetObjectItem(fin, "vs_baseline");
    assert_int_equal(cJSON_GetObjectItem(vs, "n")->valueint, 4);
    cJSON_Delete(lb);
    cJSON *par = search_pareto(s);
    assert_true(cJSON_GetArraySize(par) >= 1);
    cJSON_Delete(par);
    search_free(s);
    job_free(j);
}

static void test_canonical_dedup(void **state) {
    (void)state;
    /* five ways to write two losses: one of each is trained, the rest are cache hits */
    SearchJob *j = job_from(
        "{\"tasks\":[\"builtin:digits\"],\"population\":6,\"init\":\"seeds\",\"seed_losses\":"
        "[\"focal(2)\",\"1*focal(2)\",\"focal(2) + 0\",\"0.5*ce + 0.5*focal(2)\","
        "\"0.5*focal(2) + ce*0.5\"],\"budget\":{\"evaluations\":40}}");
    char err[LD_ERR_MAX] = "";
    Search *s = search_new(j, NULL, 0, err);
    const WorkItem *w;
    int n = search_round(s, &w);
    assert_true(n > 0);
    int hits = (int)stat(s, "cache_hits");
    printf("# cache hits in the first round: %d\n", hits);
    if (hits < 3) fail_msg("expected at least 3 cache hits from the seed losses, got %d", hits);
    /* no expression appears twice among the works of a round at the same seed */
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (w[a].seed == w[b].seed && w[a].task == w[b].task && w[a].steps == w[b].steps &&
                !strcmp(w[a].expr, w[b].expr))
                fail_msg("%s is trained twice", w[a].expr);
    search_free(s);
    job_free(j);

    /* the same loss up to a positive scale is not trained twice (gradient signature), but a
     * loss that depends on t is never merged: the probe sees a single t */
    j = job_from("{\"tasks\":[\"builtin:digits\"],\"population\":6,\"init\":\"seeds\","
                 "\"seed_losses\":[\"3*ce\",\"0.5*ce\",\"(1-t)*ce + t*ce*2\",\"2*focal(2)\","
                 "\"focal(2)\"],\"budget\":{\"evaluations\":40}}");
    s = search_new(j, NULL, 0, err);
    n = search_round(s, &w);
    int sig = (int)stat(s, "signature_hits");
    char tloss[EXPR_TEXT_MAX];
    Expr *te = expr_parse("(1-t)*ce + t*ce*2", err), *tc = expr_canonical(te);
    expr_print(tc, tloss, sizeof tloss);
    expr_free(te);
    expr_free(tc);
    int t_trained = 0, ce_scaled = 0;
    for (int a = 0; a < n; a++) {
        t_trained += !strcmp(w[a].expr, tloss);
        if (!strcmp(w[a].expr, "3*ce") || !strcmp(w[a].expr, "0.5*ce")) ce_scaled++;
    }
    printf("# signature hits %d; scaled copies of ce trained: %d; %s trained: %d\n", sig,
           ce_scaled, tloss, t_trained);
    if (sig < 3) fail_msg("expected 3*ce, 0.5*ce and focal(2) to share signatures, got %d hits", sig);
    if (ce_scaled != 0) fail_msg("a scaled copy of the baseline was trained");
    if (t_trained < 1) fail_msg("the t-dependent loss was merged by signature");
    search_free(s);
    job_free(j);
}

static void test_student_p(void **state) {
    (void)state;
    /* reference values of the two-sided t distribution */
    static const struct {
        double t;
        int df;
        double p;
    } ref[] = {{2.228, 10, 0.0500}, {12.706, 1, 0.0500}, {0.0, 5, 1.0}, {3.169, 10, 0.0100},
               {-2.571, 5, 0.0500}, {1.0, 30, 0.3253}};
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double p = search_student_p(ref[i].t, ref[i].df);
        if (fabs(p - ref[i].p) > 5e-4)
            fail_msg("p(t=%g, df=%d) = %.5f, expected %.4f", ref[i].t, ref[i].df, p, ref[i].p);
    }
}

/* A lookup standing in for the database's result cache: it knows the fake results of every
 * short (level-0) run of candidates with an even id, or of everything when ctx says so. */
static int fake_lookup(void *ctx, const WorkItem *w, uint64_t h, EvalResult *out) {
    int all = *(int *)ctx;
    if (!all && (w->steps != 50 || w->cand % 2)) return 0;
    if (w->seq != -1) fail_msg("lookup saw seq %lld, expected -1", (long long)w->seq);
    fake_eval(w, out);
    return 1;
}

static void test_result_lookup(void **state) {
    (void)state;
    SearchJob *j = job_from(job_small);
    char err[LD_ERR_MAX] = "";
    for (int all = 0; all < 2; all++) {
        n_prechecked_out = 0;
        Search *s = search_new(j, NULL, 0, err);
        search_set_lookup(s, fake_lookup, &all);
        int rounds = run_rounds(s, 10000);
        assert_true(search_done(s));
        int hits = (int)stat(s, "result_cache_hits"), evals = (int)stat(s, "evaluations");
        printf("# lookup of %s: %d rounds, %d results from the lookup, %d trained\n",
               all ? "everything" : "even level-0 runs", rounds, hits, evals);
        if (hits < 5) fail_msg("only %d lookup hits", hits);
        if (evals > 120) fail_msg("budget exceeded: %d", evals);
        if (all && evals != 0) fail_msg("everything was known, yet %d runs were trained", evals);
        if (all && hits > 10 * 120 + 200) fail_msg("the search did not stop: %d hits", hits);
        search_free(s);
    }
    job_free(j);
}

/* Mutates a JSON tree at random: deletes members, replaces values with other types. */
static void mangle(cJSON *j, LdRng *r, int depth) {
    cJSON *it = j->child;
    while (it) {
        cJSON *next = it->next;
        double u = rng_uniform(r);
        if (u < 0.08) {
            cJSON_DetachItemViaPointer(j, it);
            cJSON_Delete(it);
        } else if (u < 0.16) {
            static const char *const repl[] = {"-1", "0", "1e9", "\"x\"", "[]", "{}", "null",
                                               "true", "2.5", "[1,\"a\"]"};
            cJSON *n = cJSON_Parse(repl[rng_below(r, 10)]);
            cJSON_ReplaceItemViaPointer(j, it, n);
        } else if (depth < 6 && (cJSON_IsObject(it) || cJSON_IsArray(it))) {
            mangle(it, r, depth + 1);
        }
        it = next;
    }
}

/* Replaces one value, chosen uniformly among every node of the tree, with another. */
static int count_nodes(const cJSON *j) {
    int n = 1;
    for (const cJSON *c = j->child; c; c = c->next) n += count_nodes(c);
    return n;
}

static void mangle_one(cJSON *root, LdRng *r) {
    int target = 1 + (int)rng_below(r, (uint32_t)(count_nodes(root) - 1)), seen = 0;
    cJSON *stack[64];
    int depth = 0;
    cJSON *it = root->child;
    cJSON *parent = root;
    while (it) {
        if (++seen == target) {
            static const char *const repl[] = {"-1", "0", "1e9", "\"x\"", "[]", "{}", "null",
                                               "3", "2.5", "[1,\"a\"]", "\"0.5\""};
            cJSON_ReplaceItemViaPointer(parent, it, cJSON_Parse(repl[rng_below(r, 11)]));
            return;
        }
        if (it->child && depth < 64) {
            stack[depth++] = parent;
            parent = it;
            it = it->child;
            continue;
        }
        while (!it->next && depth > 0) {
            it = parent;
            parent = stack[--depth];
        }
        it = it->next;
    }
}

static void test_fuzz_job_and_state(void **state) {
    (void)state;
    /* job_parse takes any JSON: it succeeds or names a problem, never crashes */
    const char *good =
        "{\"name\":\"f\",\"tasks\":[\"builtin:wine\"],\"holdout\":[\"builtin:breast_cancer\"],"
        "\"space\":{\"terms\":[\"ce\",\"focal\"],\"primitives\":[\"log\",\"pt\",\"t\",\"+\"],"
        "\"max_nodes\":12,\"max_depth\":5},\"population\":4,\"budget\":{\"evaluations\":20},"
        "\"fidelity\":{\"steps\":[10,20],\"promote\":0.5},\"final\":{\"top\":1,\"seeds\":2},"
        "\"seed_losses\":[\"focal(2)\"],\"tune\":{\"every\":1}}";
    LdRng r;
    rng_seed(&r, 99);
    int ok = 0, refused = 0;
    for (int i = 0; i < 300; i++) {
        cJSON *j = cJSON_Parse(good);
        mangle(j, &r, 0);
        char err[LD_ERR_MAX] = "";
        SearchJob *job = NULL;
        int rc = job_parse(j, NULL, engine_env(), &job, err);
        if (rc == LD_OK) {
            ok++;
            job_free(job);
        } else {
            refused++;
            if (!err[0]) fail_msg("refused without a message: rc %d", rc);
        }
        cJSON_Delete(j);
    }
    printf("# mangled jobs: %d accepted, %d refused with a message\n", ok, refused);
    assert_true(refused > 0);
    /* search_restore takes any state: it restores or refuses, never crashes */
    SearchJob *job = job_from(job_small);
    char err[LD_ERR_MAX] = "";
    Search *s = search_new(job, NULL, 0, err);
    run_rounds(s, 3);
    cJSON *st = search_save(s);
    search_free(s);
    int restored = 0, rrefused = 0;
    for (int i = 0; i < 200; i++) {
        cJSON *m = cJSON_Duplicate(st, 1);
        mangle_one(m, &r);
        Search *x = search_restore(job, m, err);
        if (x) {
            restored++;
            run_rounds(x, 2); /* and it can go on */
            search_free(x);
        } else {
            rrefused++;
        }
        cJSON_Delete(m);
    }
    printf("# mangled states: %d restored, %d refused\n", restored, rrefused);
    cJSON_Delete(st);
    job_free(job);
}

/* ---- fewer wasted trainings: early stopping inside a run (search/screen.c, docs/jobs.md) ----
 * The early-stopping bar built from fixed reference curves, the trainer's stopping decisions on
 * fixed curves, and the engine with early stopping on: bars only from earlier rounds' reference
 * curves, never on the references' own runs, stopped runs counted in the stats, and the same works
 * byte for byte whatever order outcomes arrive in and after a restore. The engine test's fake run
 * has a learning curve and honours the work's stop bar through the trainer's own rule. */

#define NAN_BAR(x) (!isfinite(x))

static void test_stop_bar_fixed_curves(void **state) {
    (void)state;
    /* two references of 10 points, higher is better: the bar is the better running average
     * less 20% of it, from 30% of the run on, never at the last point */
    float ref[2 * EVAL_CURVE_MAX], bar[EVAL_CURVE_MAX];
    int npts[2] = {10, 10};
    for (int i = 0; i < 10; i++) {
        ref[i] = 0.5f + 0.04f * (float)i;               /* 0.50 .. 0.86 */
        ref[EVAL_CURVE_MAX + i] = i < 5 ? 0.8f : 0.1f;  /* better early, then worse */
    }
    int n = screen_stop_bar(ref, npts, 2, 0.2, 1, bar);
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++) {
        double a = 0, b = 0;
        for (int q = 0; q <= i; q++) {
            a += ref[q];
            b += ref[EVAL_CURVE_MAX + q];
        }
        a /= i + 1;
        b /= i + 1;
        double want = 0.8 * (a > b ? a : b);
        if (i < 2 || i == 9) {
            if (!NAN_BAR(bar[i])) fail_msg("point %d: bar %g, expected none (too early or the end)", i, bar[i]);
        } else if (fabs(bar[i] - want) > 1e-6) {
            fail_msg("point %d: bar %.6f, expected %.6f", i, bar[i], want);
        }
    }
    /* lower is better: the smaller running average plus 20% */
    float lo[2 * EVAL_CURVE_MAX] = {4, 4, 2, 2, 2, 2, 2, 2, 2, 2};
    for (int i = 0; i < 10; i++) lo[EVAL_CURVE_MAX + i] = 5;
    int n2[2] = {10, 10};
    assert_int_equal(screen_stop_bar(lo, n2, 2, 0.2, 0, bar), 10);
    if (fabs(bar[2] - 1.2 * (10.0 / 3.0)) > 1e-5) fail_msg("lower-better bar[2] %g, expected %g", bar[2], 1.2 * 10.0 / 3.0);
    /* one reference curve (a job without a panel), or a second one missing on the slot: no bar
     * (SCREEN_STOP_REFS) */
    int n1 = 10, nmiss[2] = {10, 0};
    assert_int_equal(screen_stop_bar(lo, &n1, 1, 0.2, 0, bar), 0);
    assert_int_equal(screen_stop_bar(lo, nmiss, 2, 0.2, 0, bar), 0);
    /* references of different lengths: the points both have */
    int mixed[2] = {10, 6};
    assert_int_equal(screen_stop_bar(ref, mixed, 2, 0.2, 1, bar), 6);
    /* no reference, or the margin off: no stopping */
    int none = 0;
    assert_int_equal(screen_stop_bar(ref, &none, 1, 0.2, 1, bar), 0);
    assert_int_equal(screen_stop_bar(ref, npts, 2, 0.0, 1, bar), 0);
}

/* Runs eval_stop_early over curve v[0..n); returns the point it stopped at, or -1. */
static int stops_at(const EvalOpts *o, const double *v, int n) {
    double best = NAN;
    int run = 0;
    for (int i = 0; i < n; i++)
        if (eval_stop_early(o, i, v[i], &best, &run)) return i;
    return -1;
}

static void test_stop_rule_decisions(void **state) {
    (void)state;
    float bar[6] = {NAN, 0.5f, 0.5f, 0.5f, 0.5f, NAN};
    EvalOpts o = {.stop_bar = bar, .nstop = 6, .stop_points = 2, .stop_higher = 1};
    /* clearly behind: below the bar at points 1 and 2, stops at 2 */
    double behind[6] = {0.1, 0.2, 0.3, 0.3, 0.3, 0.3};
    assert_int_equal(stops_at(&o, behind, 6), 2);
    /* once ahead, a later dip does not stop it: the best value so far is what counts */
    double dip[6] = {0.1, 0.6, 0.1, 0.1, 0.1, 0.1};
    assert_int_equal(stops_at(&o, dip, 6), -1);
    /* one point behind, then ahead: two consecutive points are needed */
    double late[6] = {0.1, 0.4, 0.55, 0.55, 0.55, 0.55};
    assert_int_equal(stops_at(&o, late, 6), -1);
    /* NaN values neither count nor reset */
    double gap[6] = {0.1, 0.4, NAN, 0.45, 0.5, 0.5};
    assert_int_equal(stops_at(&o, gap, 6), 3);
    /* lower is better */
    float lbar[4] = {NAN, 2.0f, 2.0f, NAN};
    EvalOpts lo = {.stop_bar = lbar, .nstop = 4, .stop_points = 1, .stop_higher = 0};
    double high[4] = {5, 3, 2.5, 2.5};
    assert_int_equal(stops_at(&lo, high, 4), 1);
    double fine[4] = {5, 1.9, 3, 3};
    assert_int_equal(stops_at(&lo, fine, 4), -1);
    /* no bar: never */
    EvalOpts off = {0};
    assert_int_equal(stops_at(&off, behind, 6), -1);
}


/* The fake run: a final value from the expression's hash (a fifth of the losses are poor), a
 * curve of 10 points rising to it, stopped by the work's bar through eval_stop_early. */
static void fake_run(const WorkItem *w, EvalResult *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->metric, sizeof r->metric, "accuracy");
    uint64_t h = ld_hash64(w->expr, strlen(w->expr));
    double v = h % 5 == 0 ? 0.3 : 0.6 + (double)(h % 100) / 1000.0;
    if (!strcmp(w->expr, "ce")) v = 0.62;
    v += (double)(ld_mix64(h, w->seed) % 100) / 10000.0;
    EvalOpts o = {.stop_bar = w->nstop ? w->stop_bar : NULL, .nstop = w->nstop,
                  .stop_points = w->stop_points, .stop_higher = w->stop_higher};
    double best = NAN;
    int run = 0;
    r->ok = 1;
    for (int i = 0; i < 10; i++) {
        EvalCurvePoint *p = &r->curve[r->ncurve++];
        p->step = (i + 1) * w->steps / 10;
        p->val = (float)(v * (0.6 + 0.4 * (i + 1) / 10.0));
        r->steps = p->step;
        if (i < 9 && eval_stop_early(&o, i, p->val, &best, &run)) {
            r->ok = 0;
            r->stopped = 1;
            r->val = r->test = NAN;
            snprintf(r->error, sizeof r->error, "stopped early at step %d", p->step);
            return;
        }
    }
    r->val = v;
    r->test = v - 0.01;
}

typedef struct Seen {
    int bars, ref_bars, first_round_bars, stopped;
} Seen;

/* One round with the fake run; outcomes handed back in reverse when reverse is set. */
static int one_round(Search *s, int reverse, Seen *seen, int round) {
    const WorkItem *w;
    int n = search_round(s, &w);
    if (n == 0) return 0;
    WorkOutcome *out = calloc((size_t)n, sizeof *out);
    for (int i = 0; i < n; i++) {
        if (seen && w[i].nstop > 0) {
            seen->bars++;
            if (!strcmp(w[i].expr, "ce") || !strcmp(w[i].expr, "focal(2)")) seen->ref_bars++;
            if (round == 0) seen->first_round_bars++;
        }
        int k = reverse ? n - 1 - i : i;
        out[k].seq = w[i].seq;
        fake_run(&w[i], &out[k].res);
        out[k].status = out[k].res.ok ? WORK_OK : WORK_FAILED;
        if (seen) seen->stopped += out[k].res.stopped;
    }
    char err[LD_ERR_MAX] = "";
    int rc = search_finish_round(s, out, n, err);
    free(out);
    if (rc != LD_OK) fail_msg("finish_round: %s", err);
    return n;
}


static const char *job_stop =
    "{\"tasks\":[\"builtin:digits\"],\"baseline\":[\"ce\",\"focal(2)\"],\"population\":12,"
    "\"children\":6,\"budget\":{\"evaluations\":150},\"fidelity\":{\"steps\":[50,200],"
    "\"promote\":0.34},\"seeds\":2,\"final\":{\"top\":2,\"seeds\":3},\"seed\":3}";

static void test_stop_in_engine(void **state) {
    (void)state;
    SearchJob *j = job_from(job_stop);
    char err[LD_ERR_MAX] = "";
    Search *a = search_new(j, NULL, 0, err), *b = search_new(j, NULL, 0, err);
    assert_non_null(a);
    assert_non_null(b);
    Seen seen = {0};
    int rounds = 0;
    for (;; rounds++) {
        const WorkItem *wa, *wb;
        int na = search_round(a, &wa), nb = search_round(b, &wb);
        if (na != nb) fail_msg("round %d: %d works vs %d", rounds, na, nb);
        if (na == 0) break;
        if (memcmp(wa, wb, (size_t)na * sizeof *wa) != 0)
            fail_msg("round %d: the works (with their stop bars) differ between outcome orders", rounds);
        if (rounds == 6) { /* save, restore, and the restored engine goes on with the same works */
            cJSON *st = search_save(b);
            Search *c = search_restore(j, st, err);
            cJSON_Delete(st);
            if (!c) fail_msg("restore: %s", err);
            search_free(b);
            b = c;
            nb = search_round(b, &wb);
            if (nb != na || memcmp(wa, wb, (size_t)na * sizeof *wa) != 0)
                fail_msg("round %d after restore: the works differ", rounds);
        }
        one_round(a, 0, &seen, rounds);
        one_round(b, 1, NULL, rounds);
    }
    printf("# %d rounds: %d works with a stop bar (%d on the references, %d in round 0), %d stopped; "
           "stats early_stopped %g, steps saved %g, share %g\n",
           rounds, seen.bars, seen.ref_bars, seen.first_round_bars, seen.stopped, stat(a, "early_stopped"),
           stat(a, "early_stop_steps_saved"), stat(a, "early_stop_saved_share"));
    assert_true(seen.bars > 0);
    assert_int_equal(seen.ref_bars, 0);         /* the references always run to the end */
    assert_int_equal(seen.first_round_bars, 0); /* no reference curve yet */
    assert_true(seen.stopped > 0);
    assert_int_equal((int)stat(a, "early_stopped"), seen.stopped);
    assert_true(stat(a, "early_stop_steps_saved") > 0);
    assert_true(stat(b, "early_stopped") == stat(a, "early_stopped"));
    cJSON *la = search_leaderboard(a, 0), *lb = search_leaderboard(b, 0);
    char *ta = cJSON_PrintUnformatted(la), *tb = cJSON_PrintUnformatted(lb);
    if (strcmp(ta, tb)) fail_msg("leaderboards differ between outcome orders and a restore");
    free(ta);
    free(tb);
    cJSON_Delete(la);
    cJSON_Delete(lb);
    search_free(a);
    search_free(b);
    job_free(j);

    /* no bars at all: fidelity.stop_early false with a panel, and the baseline alone (no panel)
     * with early stopping left on (one reference curve, SCREEN_STOP_REFS) */
    const char *const off[] = {
        "{\"tasks\":[\"builtin:digits\"],\"baseline\":[\"ce\",\"focal(2)\"],\"budget\":{\"evaluations\":60},"
        "\"fidelity\":{\"steps\":[50,200],\"stop_early\":false},\"seed\":3}",
        "{\"tasks\":[\"builtin:digits\"],\"baseline\":\"ce\",\"budget\":{\"evaluations\":60},"
        "\"fidelity\":{\"steps\":[50,200]},\"seed\":3}"};
    for (int q = 0; q < 2; q++) {
        SearchJob *j0 = job_from(off[q]);
        Search *z = search_new(j0, NULL, 0, err);
        Seen s0 = {0};
        for (int r = 0; one_round(z, 0, &s0, r) > 0; r++) {}
        if (s0.bars != 0 || stat(z, "early_stopped") != 0)
            fail_msg("job %d: %d works with a stop bar, %g stopped; expected none", q, s0.bars, stat(z, "early_stopped"));
        search_free(z);
        job_free(j0);
    }
}


/* ---- the learned pre-screen (search/surrogate.c) ---- */

static void test_surrogate_linear(void **state) {
    (void)state;
    /* a known linear relation in three features (the others constant): the fit recovers it */
    enum { N = 60 };
    static double X[N * SURR_NFEAT], y[N];
    memset(X, 0, sizeof X);
    for (int i = 0; i < N; i++) {
        double a = i % 7, b = (i * 3) % 11, c = (i * 5) % 13;
        X[i * SURR_NFEAT + SURR_F_SIZE] = a;
        X[i * SURR_NFEAT + SURR_F_DEPTH] = b;
        X[i * SURR_NFEAT + SURR_F_COS_BASE] = c / 13.0;
        y[i] = 0.1 + 0.02 * a - 0.01 * b + 0.3 * c / 13.0;
    }
    Surrogate m;
    assert_int_equal(surr_fit(&m, X, y, NULL, N, NULL, 1e-9), LD_OK);
    double x[SURR_NFEAT] = {0};
    x[SURR_F_SIZE] = 3;
    x[SURR_F_DEPTH] = 20; /* outside the rows' range: the relation, not a lookup */
    x[SURR_F_COS_BASE] = 0.5;
    double want = 0.1 + 0.06 - 0.2 + 0.15, got = surr_predict(&m, x);
    printf("# linear relation: predicted %.6f, true %.6f, residual sd %.2g\n", got, want, m.resid_sd);
    if (fabs(got - want) > 1e-4) fail_msg("predicted %.6f, expected %.6f", got, want);
    assert_true(m.resid_sd < 1e-4);
    /* the ridge penalty shrinks towards the mean; too few rows is refused */
    assert_int_equal(surr_fit(&m, X, y, NULL, N, NULL, 10.0), LD_OK);
    double mean = 0;
    for (int i = 0; i < N; i++) mean += y[i] / N;
    assert_true(fabs(surr_predict(&m, x) - mean) < fabs(want - mean));
    assert_int_equal(surr_fit(&m, X, y, NULL, 1, NULL, 0.1), LD_EINVAL);
    /* features: size, depth, counts and the signature's cosine with the reference */
    Expr *e = expr_parse("ce + 0.5*focal(2)", NULL);
    float sig[4] = {1, 0, 0, 0}, ref[4] = {0.6f, 0.8f, 0, 0};
    const float *refs[1] = {ref};
    double f[SURR_NFEAT];
    surr_features(e, sig, refs, 1, 4, NULL, f);
    assert_int_equal((int)f[SURR_F_SIZE], expr_size(e));
    assert_int_equal((int)f[SURR_F_TERMS + TERM_FOCAL], 1);
    assert_int_equal((int)f[SURR_F_TERMS + TERM_CE], 1);
    assert_true(fabs(f[SURR_F_COS_BASE] - 0.6) < 1e-6);
    expr_free(e);
}

static const char *job_prescreen =
    "{\"tasks\":[\"builtin:digits\"],\"baseline\":\"ce\",\"population\":16,"
    "\"children\":8,\"budget\":{\"evaluations\":400},\"fidelity\":{\"steps\":[50,200],"
    "\"promote\":0.34},\"seeds\":2,\"final\":{\"top\":2,\"seeds\":3},\"seed\":5}";

/* The pre-screen engages once enough candidates finished level 0, skips some, holds some out,
 * and the search stays the same whatever order outcomes arrive in and after a restore. */
static void test_prescreen_in_engine(void **state) {
    (void)state;
    SearchJob *j = job_from(job_prescreen);
    char err[LD_ERR_MAX] = "";
    Search *a = search_new(j, NULL, 0, err), *b = search_new(j, NULL, 0, err);
    assert_non_null(a);
    assert_non_null(b);
    int rounds = 0;
    for (;; rounds++) {
        const WorkItem *wa, *wb;
        int na = search_round(a, &wa), nb = search_round(b, &wb);
        if (na != nb) fail_msg("round %d: %d works vs %d", rounds, na, nb);
        if (na == 0) break;
        if (memcmp(wa, wb, (size_t)na * sizeof *wa) != 0) fail_msg("round %d: the works differ", rounds);
        if (rounds == 10) {
            cJSON *st = search_save(b);
            char *txt = cJSON_PrintUnformatted(st);
            cJSON_Delete(st);
            cJSON *st2 = cJSON_Parse(txt);
            free(txt);
            Search *c = search_restore(j, st2, err);
            cJSON_Delete(st2);
            if (!c) fail_msg("restore: %s", err);
            search_free(b);
            b = c;
            nb = search_round(b, &wb);
            if (nb != na || memcmp(wa, wb, (size_t)na * sizeof *wa) != 0)
                fail_msg("round %d after restore: the works differ", rounds);
        }
        one_round(a, 0, NULL, rounds);
        one_round(b, 1, NULL, rounds);
    }
    cJSON *sa = search_stats(a), *sb = search_stats(b);
    const cJSON *pa = cJSON_GetObjectItem(sa, "prescreen"), *pb = cJSON_GetObjectItem(sb, "prescreen");
    char *ta = cJSON_PrintUnformatted(pa), *tb = cJSON_PrintUnformatted(pb);
    printf("# %d rounds; prescreen %s\n", rounds, ta);
    if (strcmp(ta, tb)) fail_msg("pre-screen stats differ: %s vs %s", ta, tb);
    assert_true(cJSON_GetObjectItem(pa, "skipped")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(pa, "held_out_trained")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(pa, "let_through_trained")->valuedouble > 0);
    free(ta);
    free(tb);
    cJSON_Delete(sa);
    cJSON_Delete(sb);
    cJSON *la = search_leaderboard(a, 0), *lb = search_leaderboard(b, 0);
    char *xa = cJSON_PrintUnformatted(la), *xb = cJSON_PrintUnformatted(lb);
    if (strcmp(xa, xb)) fail_msg("leaderboards differ between outcome orders and a restore");
    free(xa);
    free(xb);
    cJSON_Delete(la);
    cJSON_Delete(lb);
    search_free(a);
    search_free(b);
    job_free(j);
    /* off: nothing predicted, nothing skipped */
    SearchJob *j0 = job_from("{\"tasks\":[\"builtin:digits\"],\"baseline\":\"ce\",\"budget\":{\"evaluations\":300},"
                             "\"fidelity\":{\"steps\":[50,200],\"prescreen\":false},\"seed\":5}");
    Search *z = search_new(j0, NULL, 0, err);
    for (int r = 0; one_round(z, 0, NULL, r) > 0; r++) {}
    cJSON *sz = search_stats(z);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(sz, "prescreen"), "skipped")->valuedouble, 0);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(sz, "prescreen"), "held_out")->valuedouble, 0);
    cJSON_Delete(sz);
    search_free(z);
    job_free(j0);
}

static double stat_prescreen(const Search *s, const char *key) {
    cJSON *st = search_stats(s);
    double v = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "prescreen"), key)->valuedouble;
    cJSON_Delete(st);
    return v;
}

/* A stored earlier job feeds a new job's pre-screen (search_set_prior): the first job's works
 * (fake outcomes) are stored as lossd search stores them, read back with store_prior_read, and
 * handed to the second job's engines. The pre-screen then fits from round 1 (before this job has
 * SURR_MIN_TRAIN results of its own), and the search stays the same whatever order outcomes
 * arrive in and across a save and restore (the rows travel in the state). The fake outcomes are
 * a hash of the text: nothing to learn, so only the plumbing is tested here (test_prior.c fits
 * stored rows with a known relation). */
static void test_prescreen_prior_in_engine(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "", dir[] = "/tmp/test_search_prior.XXXXXX", path[64], cmd[96];
    if (!mkdtemp(dir)) fail_msg("mkdtemp");
    snprintf(path, sizeof path, "%s/x.db", dir);
    Store *st = NULL;
    if (store_open(path, STORE_NOSYNC, &st, err) != LD_OK) fail_msg("%s", err);
    SearchJob *j1 = job_from(job_prescreen);
    cJSON *spec = job_json(j1);
    StoreJobNew jn = {.spec = spec, .name = "earlier", .seed = 5, .budget_evals = 400};
    int64_t job_id = 0, task_id = 0;
    const SearchTask *t0 = job_task(j1, 0);
    if (store_job_insert(st, &jn, &job_id, NULL, err) != LD_OK ||
        store_task_upsert(st, t0->hash, "classification", t0->name, t0->metric, 1, t0->spec, &task_id, err) != LD_OK ||
        store_job_add_task(st, job_id, 0, task_id, 0, err) != LD_OK)
        fail_msg("%s", err);
    cJSON_Delete(spec);
    Search *a = search_new(j1, NULL, 0, err);
    int64_t stored = 0;
    for (;;) {
        const WorkItem *w;
        int n = search_round(a, &w);
        if (n == 0) break;
        WorkOutcome *out = calloc((size_t)n, sizeof *out);
        for (int i = 0; i < n; i++) {
            out[i].seq = w[i].seq;
            fake_run(&w[i], &out[i].res);
            out[i].status = out[i].res.ok ? WORK_OK : WORK_FAILED;
            for (; stored <= w[i].cand; stored++) { /* candidates are stored before their works */
                cJSON *c = search_candidate(a, stored);
                const char *ex = cJSON_GetObjectItem(c, "expr")->valuestring;
                if (store_candidate_put(st, job_id, stored, ex, ld_hash64(ex, strlen(ex)), 1, NULL,
                                        cJSON_GetObjectItem(c, "op")->valuestring, NULL, "classification",
                                        NULL, err) != LD_OK)
                    fail_msg("%s", err);
                cJSON_Delete(c);
            }
            StoreEvalKey k = {.job_id = job_id, .seq = w[i].seq, .cand = w[i].cand, .task_id = task_id,
                              .seed = w[i].seed, .steps = w[i].steps};
            if (store_outcome_put(st, &k, &out[i], NULL, err) != LD_OK) fail_msg("%s", err);
        }
        if (search_finish_round(a, out, n, err) != LD_OK) fail_msg("%s", err);
        free(out);
    }
    search_free(a);
    cJSON *prior = NULL;
    if (store_prior_read(st, "classification", 0, SEARCH_PRIOR_MAX, &prior, err) != LD_OK) fail_msg("%s", err);
    int nrows = cJSON_GetArraySize(cJSON_GetObjectItem(prior, "rows"));
    store_close(st);

    /* the new job: another seed of the same job */
    cJSON *jj = cJSON_Parse(job_prescreen);
    cJSON_ReplaceItemInObject(jj, "seed", cJSON_CreateNumber(6));
    char *jt = cJSON_PrintUnformatted(jj);
    cJSON_Delete(jj);
    SearchJob *j2 = job_from(jt);
    free(jt);
    Search *b = search_new(j2, NULL, 0, err), *c = search_new(j2, NULL, 0, err), *z = search_new(j2, NULL, 0, err);
    assert_int_equal(search_set_prior(b, prior, err), LD_OK);
    assert_int_equal(search_set_prior(c, prior, err), LD_OK);
    assert_int_equal(search_set_prior(c, prior, err), LD_ESTATE); /* once */
    int rows_b = -1, rows_z = -1, rounds = 0;
    for (;; rounds++) {
        const WorkItem *wb, *wc;
        int nb = search_round(b, &wb), nc = search_round(c, &wc);
        if (nb != nc || (nb > 0 && memcmp(wb, wc, (size_t)nb * sizeof *wb) != 0))
            fail_msg("round %d: the works differ between outcome orders or after a restore", rounds);
        if (nb == 0) break;
        if (rounds == 3) {
            cJSON *sv = search_save(c);
            Search *r = search_restore(j2, sv, err);
            cJSON_Delete(sv);
            if (!r) fail_msg("restore: %s", err);
            search_free(c);
            c = r;
            nc = search_round(c, &wc);
            if (nc != nb || memcmp(wb, wc, (size_t)nb * sizeof *wb) != 0)
                fail_msg("round %d after restore: the works differ", rounds);
        }
        one_round(b, 0, NULL, rounds);
        one_round(c, 1, NULL, rounds);
        if (!search_done(z)) one_round(z, 0, NULL, rounds);
        if (rounds == 1) { /* the fit made at round 1's start */
            rows_b = (int)stat_prescreen(b, "model_rows");
            rows_z = (int)stat_prescreen(z, "model_rows");
        }
    }
    cJSON *sb = search_stats(b), *sc = search_stats(c);
    char *tb = cJSON_PrintUnformatted(cJSON_GetObjectItem(sb, "prescreen"));
    char *tc = cJSON_PrintUnformatted(cJSON_GetObjectItem(sc, "prescreen"));
    printf("# earlier job: %d rows; new job: %d rows in round 1's fit with them, %d without; %s\n", nrows,
           rows_b, rows_z, tb);
    if (strcmp(tb, tc)) fail_msg("pre-screen stats differ: %s vs %s", tb, tc);
    const cJSON *pb = cJSON_GetObjectItem(sb, "prescreen");
    assert_true(nrows > 100);
    assert_int_equal((int)cJSON_GetObjectItem(pb, "prior_rows")->valuedouble, nrows);
    assert_int_equal((int)cJSON_GetObjectItem(pb, "prior_here")->valuedouble, nrows); /* same task, steps */
    assert_true(rows_b >= nrows);
    assert_int_equal(rows_z, 0);
    free(tb);
    free(tc);
    cJSON_Delete(sb);
    cJSON_Delete(sc);
    cJSON_Delete(prior);
    search_free(b);
    search_free(c);
    search_free(z);
    job_free(j1);
    job_free(j2);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fail_msg("%s", cmd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_every_problem_named),
        cmocka_unit_test(test_job_defaults),
        cmocka_unit_test(test_grammar_valid),
        cmocka_unit_test(test_canonical_dedup),
        cmocka_unit_test(test_determinism_and_restore),
        cmocka_unit_test(test_outcomes_any_order),
        cmocka_unit_test(test_seed_exact_or_refused),
        cmocka_unit_test(test_selection_and_halving),
        cmocka_unit_test(test_student_p),
        cmocka_unit_test(test_result_lookup),
        cmocka_unit_test(test_fuzz_job_and_state),
        cmocka_unit_test(test_stop_bar_fixed_curves),
        cmocka_unit_test(test_stop_rule_decisions),
        cmocka_unit_test(test_stop_in_engine),
        cmocka_unit_test(test_surrogate_linear),
        cmocka_unit_test(test_prescreen_in_engine),
        cmocka_unit_test(test_prescreen_prior_in_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
