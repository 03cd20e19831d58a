/* test_stable.c: stable winners and the model-based tuner: the collapsed-seed rule, when the
 * final re-evaluation adds seeds, a collapsed candidate never leading the leaderboard and
 * labelled there, the engine saved and restored in the final phase, the final selection (finalists
 * ranked by their fresh seeds, a gain within the noise of those seeds not outranking the
 * reference), and the tuner's proposals.
 *
 * The engine test uses a FAKE evaluator (as test_search.c does): a cheap deterministic function
 * of the expression text, task and seed stands in for training, so the final phase's rules can
 * be driven exactly: on the holdout task, losses with "focal" collapse on about a quarter of
 * the seeds. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../daemon/engine.h"
#include "../search/internal.h"

static void test_collapsed_rule(void **state) {
    (void)state;
    int which[8];
    /* balanced accuracy around 0.86 with two seeds at 0.31 and 0.39 (the case) */
    const double acc[8] = {0.86, 0.85, 0.87, 0.31, 0.86, 0.39, 0.85, 0.86};
    int n = stable_collapsed(acc, 8, 1, which);
    if (n != 2 || !which[3] || !which[5]) fail_msg("accuracy: %d collapsed (want 2: seeds 3, 5)", n);
    /* ordinary seed noise is not a collapse, even its worst seed */
    const double calm[6] = {0.93, 0.94, 0.92, 0.935, 0.925, 0.9};
    n = stable_collapsed(calm, 6, 1, NULL);
    if (n != 0) fail_msg("calm accuracies: %d collapsed (want 0)", n);
    /* lower is better: an MSE far above the median collapses, one far below does not */
    const double mse[6] = {3500, 3400, 3600, 9000, 3550, 1200};
    n = stable_collapsed(mse, 6, 0, which);
    if (n != 1 || !which[3]) fail_msg("mse: %d collapsed (want 1: seed 3)", n);
    /* the same far value with a large spread between seeds is within reach of the others */
    const double wide[6] = {0.5, 0.9, 0.3, 0.7, 0.95, 0.1};
    n = stable_collapsed(wide, 6, 1, NULL);
    if (n != 0) fail_msg("widely spread accuracies: %d collapsed (want 0)", n);
    /* a failed run always counts; two finished runs are too few to call either an outlier */
    const double failed[4] = {0.9, NAN, 0.2, 0.91};
    n = stable_collapsed(failed, 4, 1, which);
    if (n != 2 || !which[1] || !which[2]) fail_msg("failed run: %d collapsed (want 2: seeds 1, 2)", n);
    const double two[3] = {0.9, NAN, 0.1};
    n = stable_collapsed(two, 3, 1, NULL);
    if (n != 1) fail_msg("two finished runs: %d collapsed (want 1, the failed one)", n);
}

static void test_needs_more(void **state) {
    (void)state;
    const double base[5] = {0.90, 0.91, 0.905, 0.9, 0.91};
    const double same[5] = {0.92, 0.925, 0.93, 0.92, 0.93};
    const double wild[5] = {0.95, 0.85, 0.93, 0.80, 0.94};
    const double coll[5] = {0.93, 0.93, 0.40, 0.93, 0.935};
    assert_int_equal(stable_needs_more(same, base, 5, 1), 0);
    assert_int_equal(stable_needs_more(wild, base, 5, 1), 1);
    assert_int_equal(stable_needs_more(coll, base, 5, 1), 1);
    /* a spread that is large against the baseline's but tiny against the mean: no */
    const double b0[5] = {1000, 1000, 1000, 1000, 1000.01};
    const double c0[5] = {900, 900.5, 901, 899.5, 900.2};
    assert_int_equal(stable_needs_more(c0, b0, 5, 0), 0);
}

/* test_final_selection's lucky losses: with g_lucky, focal is +0.05 during the search and -0.1
 * on the final's fresh seeds (g_final_phase, set by see_phase from g_search) */
static int g_lucky, g_final_phase;
static const Search *g_search;

/* test_noisy_finalist's world (g_noisy): poly1 is steadily 0.01 better than anything else; a loss
 * with hinge is 0.05 better during the search and on the final's fresh seeds alternately 0.12
 * better and 0.06 worse (its k-th final run, counted per expression): a mean gain of about 0.03
 * over the reference within the noise of its own seeds. */
static int g_noisy;
static uint64_t g_noisy_expr[64];
static int g_noisy_runs[64];

static double noisy_value(const WorkItem *w, uint64_t h) {
    double v = 0.6 + (double)(h % 100) / 100000.0;
    if (strstr(w->expr, "hinge")) {
        if (!g_final_phase) return v + 0.05;
        uint64_t eh = ld_hash64(w->expr, strlen(w->expr));
        int i = (int)(eh % 64);
        while (g_noisy_expr[i] && g_noisy_expr[i] != eh) i = (i + 1) % 64;
        g_noisy_expr[i] = eh;
        return v + (g_noisy_runs[i]++ % 2 ? -0.06 : 0.12);
    }
    return v + (strstr(w->expr, "poly1") ? 0.01 : 0);
}

/* accuracy 0.6 plus a bonus for focal; on the holdout task (index 1) a loss with "focal"
 * collapses to 0.15 on seeds whose hash is 0 mod 4 */
static void fake_train(const WorkItem *w, EvalResult *r) {
    memset(r, 0, sizeof *r);
    r->ok = 1;
    snprintf(r->metric, sizeof r->metric, "accuracy");
    uint64_t h = ld_mix64(ld_hash64(w->expr, strlen(w->expr)), w->seed);
    double v = 0.6 + (strstr(w->expr, "focal") ? 0.05 : 0) + (double)(h % 100) / 10000.0;
    v -= 0.001 * (double)strlen(w->expr) / 10;
    if (w->task == 1 && strstr(w->expr, "focal") && ld_mix64(w->seed, 7) % 4 == 0) v = 0.15;
    if (g_lucky && strstr(w->expr, "focal")) v += g_final_phase ? -0.1 : 0.05;
    if (g_noisy) v = noisy_value(w, h);
    r->val = v;
    r->test = v;
    r->steps = w->steps;
}

/* Runs up to max_rounds rounds with fake_train; see (may be NULL) looks at each round's works. */
static int drive_with(Search *s, int max_rounds, void (*see)(const WorkItem *w, int n)) {
    int r = 0;
    for (; r < max_rounds; r++) {
        const WorkItem *w;
        int n = search_round(s, &w);
        if (n == 0) break;
        if (see) see(w, n);
        WorkOutcome *res = calloc((size_t)n, sizeof *res);
        for (int i = 0; i < n; i++) {
            fake_train(&w[i], &res[i].res);
            res[i].seq = w[i].seq;
            res[i].status = WORK_OK;
        }
        char err[LD_ERR_MAX] = "";
        if (search_finish_round(s, res, n, err) != LD_OK) fail_msg("finish_round: %s", err);
        free(res);
    }
    return r;
}

static int drive(Search *s, int max_rounds) { return drive_with(s, max_rounds, NULL); }

static char *lb_text(const Search *s) {
    cJSON *lb = search_leaderboard(s, 0);
    char *t = cJSON_PrintUnformatted(lb);
    cJSON_Delete(lb);
    return t;
}

static SearchJob *parse_job(const char *text) {
    cJSON *jj = cJSON_Parse(text);
    SearchJob *job = NULL;
    char err[LD_ERR_MAX] = "";
    if (job_parse(jj, NULL, engine_env(), &job, err) != LD_OK) fail_msg("job: %s", err);
    cJSON_Delete(jj);
    return job;
}

static void test_collapsed_never_wins(void **state) {
    (void)state;
    const char *text =
        "{\"tasks\":[\"builtin:digits\"],\"holdout\":[\"builtin:wine\"],\"population\":10,"
        "\"children\":5,\"budget\":{\"evaluations\":60},\"fidelity\":{\"steps\":[50,200],"
        "\"promote\":0.5},\"seeds\":1,\"final\":{\"top\":4,\"seeds\":6},\"seed\":11}";
    SearchJob *job = parse_job(text);
    char err[LD_ERR_MAX] = "";
    Search *a = search_new(job, NULL, 0, err);
    assert_non_null(a);
    /* up to the end of the search and the first final round, then save and restore */
    for (int r = 0; r < 200; r++) {
        cJSON *st = search_stats(a);
        int final = !strcmp(cJSON_GetObjectItem(st, "phase")->valuestring, "final") &&
                    cJSON_GetObjectItem(st, "final_evaluations")->valueint > 0;
        cJSON_Delete(st);
        if (final) break;
        drive(a, 1);
    }
    cJSON *saved = search_save(a);
    char *at_boundary = cJSON_PrintUnformatted(saved);
    /* the added seeds' round, open: a save now still describes its start */
    const WorkItem *w;
    if (search_round(a, &w) < 1) fail_msg("no added seeds were asked for");
    cJSON *mid = search_save(a);
    char *mid_text = cJSON_PrintUnformatted(mid);
    cJSON_Delete(mid);
    if (strcmp(at_boundary, mid_text)) fail_msg("a save inside the added seeds' round differs from its start");
    free(at_boundary);
    free(mid_text);
    Search *b = search_restore(job, saved, err);
    cJSON_Delete(saved);
    if (!b) fail_msg("restore in the final phase: %s", err);
    drive(a, 100);
    drive(b, 100);
    assert_true(search_done(a) && search_done(b));
    char *ta = lb_text(a), *tb = lb_text(b);
    if (strcmp(ta, tb) != 0) fail_msg("restored in the final phase, the leaderboards differ");
    cJSON *lb = cJSON_Parse(ta);
    int ncollapsed = 0, first_seen = 0, top = 1, extra = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        const cJSON *fin = cJSON_GetObjectItem(e, "final");
        int collapsed = cJSON_IsTrue(cJSON_GetObjectItem(e, "collapsed"));
        const char *expr = cJSON_GetObjectItem(e, "expr")->valuestring;
        int base = cJSON_IsTrue(cJSON_GetObjectItem(e, "baseline"));
        if (!base && !first_seen) {
            first_seen = 1;
            if (collapsed) fail_msg("the leaderboard's first candidate %s is collapsed", expr);
            top = cJSON_GetObjectItem(e, "level")->valueint;
        }
        if (fin && strstr(expr, "focal") && !collapsed)
            fail_msg("%s collapsed on the holdout but is not labelled", expr);
        if (collapsed) {
            ncollapsed++;
            if (cJSON_GetObjectItem(e, "collapsed_seeds")->valueint < 1) fail_msg("no count");
            /* a collapse calls for more seeds: 6 more on the holdout */
            if (cJSON_GetObjectItem(fin, "seeds")->valueint == 12) extra++;
        }
    }
    printf("# %d collapsed candidates labelled, %d with added seeds; the winner is at level %d\n",
           ncollapsed, extra, top);
    if (ncollapsed < 1) fail_msg("no candidate collapsed: the test did not exercise the rule");
    if (extra != ncollapsed) fail_msg("%d of %d collapsed candidates got added seeds", extra, ncollapsed);
    cJSON_Delete(lb);
    free(ta);
    free(tb);
    search_free(a);
    search_free(b);
    job_free(job);
}

/* The final selection: a loss that is lucky on the search's seeds (g_lucky) is ranked by its final
 * seeds, so it falls below the baseline, its fitness says it loses, and search_fitness keeps
 * what the search saw; restored after the search, the engine ranks the same. */
static void see_phase(const WorkItem *w, int n) {
    (void)w;
    (void)n;
    cJSON *st = search_stats(g_search); /* the phase of the round just built */
    g_final_phase = strcmp(cJSON_GetObjectItem(st, "phase")->valuestring, "search") != 0;
    cJSON_Delete(st);
}

/* A search of the final-selection tests on digits (60 evaluations, 4 final seeds for the top 3);
 * extra: more job keys, each with a leading comma. */
static Search *small_search(const char *extra, SearchJob **job) {
    char text[1024], err[LD_ERR_MAX] = "";
    snprintf(text, sizeof text,
             "{\"tasks\":[\"builtin:digits\"],\"population\":10,\"children\":5,"
             "\"budget\":{\"evaluations\":60},\"fidelity\":{\"steps\":[50,200],\"promote\":0.5},"
             "\"seeds\":1,\"final\":{\"top\":3,\"seeds\":4},\"seed\":11%s}", extra);
    *job = parse_job(text);
    Search *a = search_new(*job, NULL, 0, err);
    if (!a) fail_msg("search_new: %s", err);
    return a;
}

static void test_final_selection(void **state) {
    (void)state;
    SearchJob *job;
    Search *a = small_search(",\"baseline\":\"ce\"", &job);
    char err[LD_ERR_MAX] = "";
    g_lucky = 1;
    g_search = a;
    drive_with(a, 300, see_phase);
    g_lucky = 0;
    assert_true(search_done(a));
    cJSON *saved = search_save(a);
    Search *b = search_restore(job, saved, err);
    cJSON_Delete(saved);
    if (!b) fail_msg("restore after the final evaluation: %s", err);
    char *ta = lb_text(a), *tb = lb_text(b);
    if (strcmp(ta, tb) != 0) fail_msg("restored after the final evaluation, the leaderboards differ");
    cJSON *lb = cJSON_Parse(ta);
    int rank_base = 0, lucky = 0, r = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        r++;
        const char *expr = cJSON_GetObjectItem(e, "expr")->valuestring;
        const cJSON *fin = cJSON_GetObjectItem(e, "final"), *sf = cJSON_GetObjectItem(e, "search_fitness");
        double f = cJSON_GetObjectItem(e, "fitness")->valuedouble;
        if (cJSON_IsTrue(cJSON_GetObjectItem(e, "baseline"))) rank_base = r;
        if (!!fin != !!sf) fail_msg("%s: final %d, search_fitness %d: both or neither", expr, !!fin, !!sf);
        if (!fin || !strstr(expr, "focal")) continue;
        lucky++;
        printf("# rank %d %s: fitness %.4f on the final seeds, %.4f in the search\n", r, expr, f, sf->valuedouble);
        if (!(sf->valuedouble > 0) || !(f < 0)) fail_msg("%s: fitness %g, search_fitness %g", expr, f, sf->valuedouble);
        if (rank_base == 0) fail_msg("%s (rank %d) is above the baseline", expr, r);
    }
    if (lucky < 1) fail_msg("no lucky finalist: the test did not exercise the rule");
    cJSON_Delete(lb);
    free(ta);
    free(tb);
    search_free(a);
    search_free(b);
    job_free(job);
}

/* The final selection's lower bound: a finalist whose mean gain on its final seeds is positive
 * but within the noise of those seeds (hinge under g_noisy) gets added seeds (and the baseline
 * and the panel loss with it) and ranks below the reference, here the panel loss poly1(1);
 * ranked by the mean gain alone it would lead. */
static void test_noisy_finalist(void **state) {
    (void)state;
    const double steady[4] = {0.01, 0.012, 0.011, 0.009}, noisy[4] = {0.12, -0.06, 0.12, -0.06};
    double low = stable_lower_bound(steady, 4), want = 0.0105 - STABLE_LCB_SE * sqrt(1.6667e-6) / 2;
    if (fabs(low - want) > 1e-6) fail_msg("lower bound of the steady gains %g, want %g", low, want);
    if (!(stable_lower_bound(noisy, 4) < 0)) fail_msg("noisy gains: lower bound %g", stable_lower_bound(noisy, 4));
    assert_true(stable_lower_bound(noisy, 1) == 0.12);
    assert_int_equal(stable_within_noise(noisy, 4), 1);
    assert_int_equal(stable_within_noise(steady, 4), 0);
    const double worse[3] = {-0.01, -0.02, -0.015};
    assert_int_equal(stable_within_noise(worse, 3), 0);
    SearchJob *job;
    Search *a = small_search(",\"space\":{\"terms\":[\"ce\",\"hinge\",\"smooth\"]},\"baseline\":[\"ce\",\"poly1(1)\"]", &job);
    memset(g_noisy_expr, 0, sizeof g_noisy_expr);
    memset(g_noisy_runs, 0, sizeof g_noisy_runs);
    g_noisy = 1;
    g_search = a;
    drive_with(a, 300, see_phase);
    g_noisy = 0;
    assert_true(search_done(a));
    cJSON *lb = search_leaderboard(a, 0);
    int r = 0, rank_ref = 0, noisy_finalists = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        r++;
        const char *expr = cJSON_GetObjectItem(e, "expr")->valuestring;
        double f = cJSON_GetObjectItem(e, "fitness")->valuedouble;
        const cJSON *fin = cJSON_GetObjectItem(e, "final");
        if (!strcmp(expr, "poly1(1)")) rank_ref = r;
        /* a gain within noise calls for final.seeds more seeds, for the reference losses too */
        int nseeds = fin ? cJSON_GetObjectItem(fin, "seeds")->valueint : 0;
        if ((strstr(expr, "hinge") || !strcmp(expr, "ce") || !strcmp(expr, "poly1(1)")) && fin && nseeds != 8)
            fail_msg("%s: %d final seeds, want 4 + 4 added", expr, nseeds);
        if (!fin || !strstr(expr, "hinge")) continue;
        noisy_finalists++;
        double mean = cJSON_GetObjectItem(cJSON_GetObjectItem(fin, "vs_panel"), "mean_diff")->valuedouble;
        printf("# rank %d %s: fitness %.4f on the final seeds (mean gain on test %.4f)\n", r, expr, f, mean);
        if (!(mean > 0)) fail_msg("%s: mean gain %g: the test did not make a noisy winner", expr, mean);
        if (rank_ref == 0) fail_msg("%s (rank %d, fitness %g) is above the panel loss poly1(1)", expr, r, f);
    }
    if (noisy_finalists < 1) fail_msg("no noisy finalist: the test did not exercise the rule");
    if (rank_ref != 1) fail_msg("poly1(1) is ranked %d, not first", rank_ref);
    cJSON_Delete(lb);
    search_free(a);
    job_free(job);
}

/* The defaults of issue 12: a small selection task is cross-validated (and the job says so), a job
 * naming no baseline gets its family's panel; both are written into the normalised job, which
 * parses back to the same. */
static void test_defaults(void **state) {
    (void)state;
    SearchJob *job = parse_job("{\"tasks\":[\"builtin:wine\"],\"holdout\":[\"builtin:wine\"]}");
    cJSON *norm = job_json(job);
    char *text = cJSON_PrintUnformatted(norm);
    const cJSON *notes = cJSON_GetObjectItem(norm, "notes");
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(norm, "tasks"), 0);
    const cJSON *h0 = cJSON_GetArrayItem(cJSON_GetObjectItem(norm, "holdout"), 0);
    const cJSON *bl = cJSON_GetObjectItem(norm, "baseline");
    char *nt = notes ? cJSON_PrintUnformatted(notes) : NULL;
    printf("# notes %s\n", nt ? nt : "none");
    free(nt);
    if (cJSON_GetArraySize(notes) != 1 || !strstr(cJSON_GetArrayItem(notes, 0)->valuestring, "178 rows"))
        fail_msg("wine (178 rows): want one note on the small-data rule: %s", text);
    if (cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "split"), "folds")->valueint != 5)
        fail_msg("wine: want split.folds 5: %s", text);
    if (cJSON_GetObjectItem(cJSON_GetObjectItem(h0, "split"), "folds"))
        fail_msg("the holdout task is not for selection: want it as written: %s", text);
    if (job->level_seeds[job->nlevels - 1] != 5) fail_msg("top level seeds %d, want 5 (one per fold)",
                                                          job->level_seeds[job->nlevels - 1]);
    if (cJSON_GetArraySize(bl) != 4 || strcmp(cJSON_GetArrayItem(bl, 1)->valuestring, "focal(2)"))
        fail_msg("no baseline named: want the classification panel: %s", text);
    SearchJob *again = parse_job(text); /* a stored job read back: the same */
    cJSON *norm2 = job_json(again);
    char *text2 = cJSON_PrintUnformatted(norm2);
    if (strcmp(text, text2)) fail_msg("parsed back, the job differs:\n%s\n%s", text, text2);
    free(text2);
    cJSON_Delete(norm2);
    job_free(again);
    free(text);
    cJSON_Delete(norm);
    job_free(job);
    /* split.folds 1 keeps one split; a named baseline is used alone; digits is not small */
    job = parse_job("{\"tasks\":[{\"data\":\"builtin:wine\",\"split\":{\"folds\":1}}, \"builtin:digits\"],"
                    "\"baseline\":\"ce\"}");
    norm = job_json(job);
    text = cJSON_PrintUnformatted(norm);
    if (cJSON_GetObjectItem(norm, "notes") || job->npanel != 0 || job->tasks[0].nfold != 1 ||
        job->tasks[1].nfold != 1)
        fail_msg("folds 1, a named baseline, digits: want them as written: %s", text);
    free(text);
    cJSON_Delete(norm);
    job_free(job);
}

static void test_tuner(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    cJSON *jj = cJSON_Parse("{\"tasks\":[\"builtin:digits\"],\"budget\":{\"evaluations\":10}}");
    SearchJob *job = NULL;
    if (job_parse(jj, NULL, engine_env(), &job, err) != LD_OK) fail_msg("job: %s", err);
    cJSON_Delete(jj);
    Grammar g;
    grammar_init(&g, job);
    Expr *lead = expr_parse("0.5*ce + 0.01*mae", err);
    Expr *other = expr_parse("0.3*ce + 0.02*mae", err);
    Expr *shape2 = expr_parse("0.5*ce + 0.01*focal(2)", err);
    assert_true(tune_shape(lead) == tune_shape(other));
    assert_true(tune_shape(lead) != tune_shape(shape2));
    double v[TUNE_MAX_CONSTS];
    assert_int_equal(tune_consts(lead, v, TUNE_MAX_CONSTS), 2);
    /* an elite of constants near (0.5, 0.01): proposals stay near them on a log scale */
    double hist[6 * 2] = {0.5, 0.01, 0.55, 0.012, 0.45, 0.009, 3, 0.5, 0.05, 0.0001, 2, 2};
    LdRng r1, r2;
    rng_seed(&r1, 5);
    rng_seed(&r2, 5);
    double lsum[2] = {0, 0};
    int n = 0;
    for (int i = 0; i < 50; i++) {
        Expr *c = tune_propose(&g, lead, hist, 6, 2, &r1), *d = tune_propose(&g, lead, hist, 6, 2, &r2);
        assert_non_null(c);
        char tc[EXPR_TEXT_MAX], td[EXPR_TEXT_MAX];
        expr_print(c, tc, sizeof tc);
        expr_print(d, td, sizeof td);
        if (strcmp(tc, td)) fail_msg("same rng, different proposals: %s vs %s", tc, td);
        assert_int_equal(tune_consts(c, v, TUNE_MAX_CONSTS), 2);
        lsum[0] += log(v[0]);
        lsum[1] += log(v[1]);
        n++;
        expr_free(c);
        expr_free(d);
    }
    double g0 = exp(lsum[0] / n), g1 = exp(lsum[1] / n);
    printf("# geometric means of 50 proposals: %.3g (elite ~0.5), %.3g (elite ~0.01)\n", g0, g1);
    if (g0 < 0.35 || g0 > 0.7 || g1 < 0.007 || g1 > 0.014) fail_msg("proposals left the elite: %g %g", g0, g1);
    /* the decade jump: one term of the mixture scaled by 10, 100 or 1000 up or down, the rest unchanged */
    Expr *mix = expr_parse("bc + huber(1) + phys", err);
    cJSON *pj = cJSON_Parse("{\"tasks\":[{\"data\":\"builtin:poisson\",\"family\":\"physics\"}],"
                            "\"budget\":{\"evaluations\":10}}");
    SearchJob *pjob = NULL;
    if (job_parse(pj, NULL, engine_env(), &pjob, err) != LD_OK) fail_msg("physics job: %s", err);
    cJSON_Delete(pj);
    Grammar pg;
    grammar_init(&pg, pjob);
    int seen[6] = {0};
    static const char *const factors[6] = {"10*", "100*", "1000*", "0.1*", "0.01*", "0.001*"};
    for (int i = 0; i < 80; i++) {
        Expr *c = tune_decade(&pg, mix, &r1);
        assert_non_null(c);
        char tc[EXPR_TEXT_MAX];
        expr_print(c, tc, sizeof tc);
        for (int f = 0; f < 6; f++) {
            const char *at = strstr(tc, factors[f]);
            seen[f] |= at && (at == tc || at[-1] == ' '); /* the factor itself, not a number's tail */
        }
        if (!strstr(tc, "huber(1)")) fail_msg("decade jump changed a term's parameter: %s", tc);
        expr_free(c);
    }
    for (int f = 0; f < 6; f++)
        if (!seen[f]) fail_msg("decade jumps: no %s in 80 draws (want every factor)", factors[f]);
    Expr *one = expr_parse("0.5*ce", err);
    assert_null(tune_decade(&g, one, &r1));
    expr_free(one);
    expr_free(mix);
    job_free(pjob);
    expr_free(lead);
    expr_free(other);
    expr_free(shape2);
    job_free(job);
}

/* A cross-validated selection task (split.folds 4): level 0 trains split 0; the top level (and the
 * final evaluation) trains every split once per candidate, whatever the job's seeds. */
static int folds_top_runs;

static void see_folds(const WorkItem *w, int n) {
    unsigned folds_of[64][2] = {{0}}; /* per candidate: splits seen at the top level, runs */
    for (int i = 0; i < n; i++) {
        unsigned f = (unsigned)(w[i].seed % 4);
        if (w[i].steps == 10 && f != 0) fail_msg("level 0 trained split %u", f);
        if (w[i].steps == 30 && w[i].cand < 64) {
            folds_of[w[i].cand][0] |= 1u << f;
            folds_of[w[i].cand][1]++;
            folds_top_runs++;
        }
    }
    for (int c = 0; c < 64; c++)
        if (folds_of[c][1] && (folds_of[c][0] != 0xf || folds_of[c][1] % 4))
            fail_msg("candidate %d: top-level splits %#x over %u runs (want each of 4)", c, folds_of[c][0],
                     folds_of[c][1]);
}

static void test_folds_seeds(void **state) {
    (void)state;
    const char *text =
        "{\"tasks\":[{\"data\":\"builtin:wine\",\"split\":{\"folds\":4}}],\"population\":6,"
        "\"children\":3,\"budget\":{\"evaluations\":60},\"fidelity\":{\"steps\":[10,30],"
        "\"promote\":0.5},\"seeds\":2,\"final\":{\"top\":1,\"seeds\":4},\"seed\":3}";
    SearchJob *job = parse_job(text);
    char err[LD_ERR_MAX] = "";
    assert_int_equal(job->level_seeds[0], 1);
    assert_int_equal(job->level_seeds[1], 4);
    Search *s = search_new(job, NULL, 0, err);
    assert_non_null(s);
    folds_top_runs = 0;
    drive_with(s, 100, see_folds);
    if (folds_top_runs == 0) fail_msg("no top-level runs");
    search_free(s);
    job_free(job);
}

/* The final comparison's 95% interval and verdict: t(0.975, 4) = 2.776. */
static void test_ci95(void **state) {
    (void)state;
    double lo, hi;
    const double up[5] = {1, 2, 3, 4, 5};
    assert_string_equal(stable_ci95(up, 5, &lo, &hi), "better");
    double half = 2.776445 * sqrt(2.5) / sqrt(5.0);
    if (fabs(lo - (3 - half)) > 1e-4 || fabs(hi - (3 + half)) > 1e-4)
        fail_msg("ci95 of 1..5: [%g, %g], want [%g, %g]", lo, hi, 3 - half, 3 + half);
    const double mixed[4] = {-0.02, 0.03, 0.01, -0.01};
    assert_string_equal(stable_ci95(mixed, 4, &lo, &hi), "within noise");
    const double down[3] = {-0.05, -0.06, -0.04};
    assert_string_equal(stable_ci95(down, 3, &lo, &hi), "worse");
    assert_string_equal(stable_ci95(down, 1, &lo, &hi), "within noise");
    assert_true(isnan(lo) && isnan(hi));
}

/* A panel baseline (["ce", "focal(2)", "smooth(0.1)"]): the panel losses run wherever the baseline
 * runs, fitness is measured against the best of them (focal scores best under fake_train, so no
 * focal-free candidate has positive fitness), the final evaluation compares with the best panel
 * loss, and a restored engine proposes the same rounds. */
static void test_panel(void **state) {
    (void)state;
    const char *text =
        "{\"tasks\":[\"builtin:wine\"],\"baseline\":[\"ce\",\"focal(2)\",\"smooth(0.1)\"],"
        "\"population\":8,\"children\":4,\"budget\":{\"evaluations\":50},\"fidelity\":{\"steps\":[10,30],"
        "\"promote\":0.5},\"seeds\":2,\"final\":{\"top\":2,\"seeds\":3},\"seed\":5}";
    SearchJob *job = parse_job(text);
    char err[LD_ERR_MAX] = "";
    assert_int_equal(job->npanel, 2);
    cJSON *norm = job_json(job);
    cJSON *bl = cJSON_GetObjectItem(norm, "baseline");
    assert_true(cJSON_IsArray(bl) && cJSON_GetArraySize(bl) == 3);
    cJSON_Delete(norm);
    Search *a = search_new(job, NULL, 0, err);
    assert_non_null(a);
    drive(a, 3);
    cJSON *saved = search_save(a);
    Search *b = search_restore(job, saved, err);
    cJSON_Delete(saved);
    if (!b) fail_msg("restore: %s", err);
    drive(a, 200);
    drive(b, 200);
    char *ta = lb_text(a), *tb = lb_text(b);
    if (strcmp(ta, tb)) fail_msg("restored panel search differs:\n%s\n%s", ta, tb);
    free(ta);
    free(tb);
    cJSON *lb = search_leaderboard(a, 0);
    int saw_panel_final = 0, found_final = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        const char *ex = cJSON_GetObjectItem(e, "expr")->valuestring;
        const char *op = cJSON_GetObjectItem(e, "op")->valuestring;
        found_final += cJSON_GetObjectItem(e, "final") && strcmp(op, "panel") && strcmp(op, "baseline");
        double fit = cJSON_GetObjectItem(e, "fitness")->valuedouble;
        if (!strstr(ex, "focal") && fit > 0) fail_msg("%s has fitness %g above the panel's best (focal)", ex, fit);
        const cJSON *vp = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "final"), "vs_panel");
        if (vp) {
            saw_panel_final = 1;
            if (!strstr(cJSON_GetObjectItem(vp, "loss")->valuestring, "focal"))
                fail_msg("final compared with %s, not the best panel loss", cJSON_GetObjectItem(vp, "loss")->valuestring);
        }
    }
    if (!saw_panel_final) fail_msg("no final comparison against the panel");
    /* final.top counts the search's candidates: the panel loss that leads joins the final anyway */
    if (found_final != 2) fail_msg("%d of the search's candidates in the final, want final.top 2", found_final);
    cJSON_Delete(lb);
    search_free(a);
    search_free(b);
    job_free(job);
}

/* The rung bar: no bar below SCREEN_RUNG_MIN promoted, then the interpolated quantile; a small
 * job's from SCREEN_RUNG_SMALL_MIN, at its own quantile. */
static void test_rung_bar(void **state) {
    (void)state;
    double few[3] = {0.1, 0.2, 0.3};
    assert_true(isinf(screen_rung_bar(few, 3, 0)));
    double six[6] = {1, 2, 3, 4, 5, 6};
    assert_true(isinf(screen_rung_bar(six, 6, 1)));
    assert_true(fabs(screen_rung_bar(six, 6, 0) - (1 + SCREEN_RUNG_QUANTILE * 5)) < 1e-12);
    double v[12] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5, NAN, INFINITY}; /* non-finite values left out */
    double want = 1 + SCREEN_RUNG_QUANTILE * 9, got = screen_rung_bar(v, 12, 0);
    if (fabs(got - want) > 1e-12) fail_msg("bar of 1..10: %g, want %g", got, want);
    double w[10] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    want = 1 + SCREEN_RUNG_SMALL_QUANTILE * 9;
    got = screen_rung_bar(w, 10, 1);
    if (fabs(got - want) > 1e-12) fail_msg("small job's bar of 1..10: %g, want %g", got, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collapsed_rule),
        cmocka_unit_test(test_needs_more),
        cmocka_unit_test(test_collapsed_never_wins),
        cmocka_unit_test(test_final_selection),
        cmocka_unit_test(test_noisy_finalist),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_tuner),
        cmocka_unit_test(test_folds_seeds),
        cmocka_unit_test(test_ci95),
        cmocka_unit_test(test_panel),
        cmocka_unit_test(test_rung_bar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
