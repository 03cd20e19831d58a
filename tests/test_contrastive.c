/* test_contrastive.c: the contrastive family: augmentation determinism and statistics, the
 * k-NN metric on hand-made points, the embedding network's gradient under an InfoNCE loss
 * against finite differences, and a short InfoNCE training run on digits that must beat the
 * untrained network's k-NN accuracy. Includes contrastive.c to reach its static parts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "../evaluator/contrastive.c"

/* ---- a hand-written InfoNCE (NT-Xent) on the 2B rows: anchor a's positive is a +- B; cosine
 * similarities over temperature tau; mean over the 2B anchors. */

#define HAND_MAX 256
typedef struct HandNce {
    float tau;
    int D;
    float z[HAND_MAX * 64], nrm[HAND_MAX], dz[HAND_MAX * 64], demb[HAND_MAX * 64];
    double p[HAND_MAX];
} HandNce;

static int hand_infonce(void *ctx, const LossIn *in, LossOut *out) {
    HandNce *h = ctx;
    int n = 2 * in->B, D = h->D;
    assert_true(n <= HAND_MAX && D <= 64);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)in->emb[i * D + j] * in->emb[i * D + j];
        h->nrm[i] = (float)sqrt(s);
        for (int j = 0; j < D; j++) h->z[i * D + j] = in->emb[i * D + j] / h->nrm[i];
    }
    memset(h->dz, 0, sizeof(float) * n * D);
    double loss = 0;
    for (int a = 0; a < n; a++) {
        int pos = a < in->B ? a + in->B : a - in->B;
        double mx = -1e30, sum = 0;
        for (int k = 0; k < n; k++) {
            if (k == a) continue;
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)h->z[a * D + j] * h->z[k * D + j];
            h->p[k] = s / h->tau;
            if (h->p[k] > mx) mx = h->p[k];
        }
        for (int k = 0; k < n; k++)
            if (k != a) sum += exp(h->p[k] - mx);
        loss += -(h->p[pos]) + mx + log(sum);
        for (int k = 0; k < n; k++) {
            if (k == a) continue;
            double g = (exp(h->p[k] - mx) / sum - (k == pos)) / h->tau / n;
            for (int j = 0; j < D; j++) {
                h->dz[a * D + j] += (float)(g * h->z[k * D + j]);
                h->dz[k * D + j] += (float)(g * h->z[a * D + j]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        double dot = 0;
        for (int j = 0; j < D; j++) dot += (double)h->dz[i * D + j] * h->z[i * D + j];
        for (int j = 0; j < D; j++)
            h->demb[i * D + j] = (float)((h->dz[i * D + j] - dot * h->z[i * D + j]) / h->nrm[i]);
    }
    out->loss = (float)(loss / n);
    out->demb = h->demb;
    out->g_term[TERM_L2] = 0;
    return isfinite(out->loss) ? LD_OK : LD_EFAILED;
}

/* ---- fixtures */

static void fake_split(Dataset *ds, int n, int d, int nclass, LdRng *rng) {
    ds->n = n;
    ds->d = d;
    ds->x = malloc(sizeof(float) * (size_t)n * d);
    ds->label = malloc(sizeof(int) * (size_t)n);
    assert_true(ds->x && ds->label);
    for (int i = 0; i < n; i++) {
        ds->label[i] = i % nclass;
        for (int j = 0; j < d; j++)
            ds->x[(size_t)i * d + j] = rng_normal(rng) + (j % nclass == ds->label[i] ? 2.0f : 0.0f);
    }
}

/* A task over random clustered data with d features, loaded through con_task_load. */
static Task *fake_task(int d, const char *json, char *err) {
    LdRng rng;
    rng_seed(&rng, 42);
    Task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->nclass = 3;
    fake_split(&t->train, 40, d, 3, &rng);
    fake_split(&t->val, 12, d, 3, &rng);
    fake_split(&t->test, 12, d, 3, &rng);
    cJSON *spec = cJSON_Parse(json);
    assert_non_null(spec);
    int rc = spec_check(spec, FAM_CONTRASTIVE, err); /* as task_load does */
    if (rc == LD_OK) rc = con_task_load(t, spec, err);
    cJSON_Delete(spec);
    if (rc != LD_OK) {
        dataset_free(&t->train);
        dataset_free(&t->val);
        dataset_free(&t->test);
        free(t);
        return NULL;
    }
    return t;
}

static void free_task(Task *t) {
    con_task_free(t);
    dataset_free(&t->train);
    dataset_free(&t->val);
    dataset_free(&t->test);
    free(t);
}

static Task *digits_task(const char *json) {
    char err[LD_ERR_MAX], path[512];
    Table tab;
    memset(&tab, 0, sizeof tab);
    snprintf(path, sizeof path, "%s/digits.csv", ld_data_dir());
    int rc = data_read_csv(path, "digit", 1, DATA_MISSING_ERROR, &tab, err);
    if (rc != LD_OK) print_error("%s\n", err);
    assert_int_equal(rc, LD_OK);
    Task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    DataPrep prep = {.val = 0.2, .test = 0.2, .seed = 1, .imbalance = 1, .subsample = 1};
    rc = data_prepare(&tab, 1, &prep, t, err);
    if (rc != LD_OK) print_error("%s\n", err);
    assert_int_equal(rc, LD_OK);
    t->nclass = tab.nclass;
    table_free(&tab);
    cJSON *spec = cJSON_Parse(json);
    rc = con_task_load(t, spec, err);
    cJSON_Delete(spec);
    if (rc != LD_OK) print_error("%s\n", err);
    assert_int_equal(rc, LD_OK);
    return t;
}

/* ---- augmentation */

static void test_augment(void **state) {
    enum { D = 64, N = 4000 };
    struct ConSpec c = {.noise = 0.1f, .shift = 1, .dropout = 0, .side = 8, .k = 5};
    struct ConSpec cs = {.shift = 1, .side = 8}; /* pixel ranges [0, 1]: blank is 0 */
    for (int j = 0; j < D; j++) c.hi[j] = cs.hi[j] = 1.0f;
    float x[D], a[D], b[D];
    LdRng r1, r2, r3;
    for (int j = 0; j < D; j++) x[j] = (float)j / D;
    rng_seed(&r1, 9);
    rng_seed(&r2, 9);
    rng_seed(&r3, 10);
    con_augment(a, x, D, &c, &r1);
    con_augment(b, x, D, &c, &r2);
    assert_memory_equal(a, b, sizeof a);
    con_augment(b, x, D, &c, &r3);
    assert_memory_not_equal(a, b, sizeof a);

    /* Noise alone on a zero image: mean 0, sd = noise. */
    struct ConSpec cn = {.noise = 0.1f};
    double s = 0, s2 = 0;
    float zero[D] = {0};
    for (int i = 0; i < N; i++) {
        con_augment(a, zero, D, &cn, &r1);
        for (int j = 0; j < D; j++) {
            s += a[j];
            s2 += (double)a[j] * a[j];
        }
    }
    double mean = s / (N * D), sd = sqrt(s2 / (N * D) - mean * mean);
    printf("noise 0.1: mean %.5f sd %.5f (expect |mean| < 0.002, |sd - 0.1| < 0.002)\n", mean, sd);
    assert_true(fabs(mean) < 0.002 && fabs(sd - 0.1) < 0.002);

    /* Dropout alone on ones: the zeroed fraction is the dropout probability. */
    struct ConSpec cd = {.dropout = 0.25f};
    float ones[D];
    for (int j = 0; j < D; j++) ones[j] = 1.0f;
    long zeros = 0;
    for (int i = 0; i < N; i++) {
        con_augment(a, ones, D, &cd, &r1);
        for (int j = 0; j < D; j++) zeros += a[j] == 0.0f;
    }
    double frac = (double)zeros / (N * D);
    printf("dropout 0.25: zeroed fraction %.4f (expect 0.25 +- 0.005)\n", frac);
    assert_true(fabs(frac - 0.25) < 0.005);

    /* Shift alone: one lit pixel at (3, 4) lands on each of the 9 neighbours, about 1/9 each,
     * and nowhere else; the image keeps one lit pixel. */
    float img[D] = {0};
    img[3 * 8 + 4] = 1.0f;
    int hits[9] = {0};
    for (int i = 0; i < 900; i++) {
        con_augment(a, img, D, &cs, &r1);
        int lit = -1, nlit = 0;
        for (int j = 0; j < D; j++)
            if (a[j] != 0.0f) {
                lit = j;
                nlit++;
            }
        assert_int_equal(nlit, 1);
        int dr = lit / 8 - 3, dc = lit % 8 - 4;
        assert_true(abs(dr) <= 1 && abs(dc) <= 1);
        hits[(dr + 1) * 3 + dc + 1]++;
    }
    for (int k = 0; k < 9; k++) {
        printf("shift (%d,%d): %d of 900 (expect 100 +- 40)\n", k / 3 - 1, k % 3 - 1, hits[k]);
        assert_true(hits[k] > 60 && hits[k] < 140);
    }
    /* Zero fill: a pixel at the border moved outward disappears. */
    float edge[D] = {0};
    edge[0] = 1.0f;
    int gone = 0;
    for (int i = 0; i < 900; i++) {
        con_augment(a, edge, D, &cs, &r1);
        float tot = 0;
        for (int j = 0; j < D; j++) tot += a[j];
        gone += tot == 0.0f;
    }
    printf("corner pixel shifted out: %d of 900 (expect 5/9 = 500 +- 60)\n", gone);
    assert_true(gone > 440 && gone < 560);
}

/* ---- k-NN on hand-made points */

static void test_knn(void **state) {
    /* Bank: class 0 around +x, class 1 around +y, class 2 around -x. Cosine, so scale is
     * irrelevant. */
    float bank[] = {1, 0.1f, 2, -0.1f, 3, 0.2f, 0.1f, 1, -0.2f, 2, 0.1f, 3, -1, 0.1f, -2, 0};
    int bl[] = {0, 0, 0, 1, 1, 1, 2, 2};
    float q[] = {5, 0, 0, 5, -1, -0.1f, 1, 1.2f};
    int ql[] = {0, 1, 2, 0};
    float sims[CON_CHUNK * 8];
    double votes[6];
    con_normalise(bank, 8, 2);
    con_normalise(q, 4, 2);
    /* Cosines of q3 = (1, 1.2) in rank order: (0.1,1) .828 c1, (0.1,3) .789 c1, (1,0.1) .713 c0,
     * (-0.2,2) .701 c1, (3,0.2) .690 c0. k = 1 and k = 3 vote class 1 (q3 is labelled 0: wrong).
     * q2 = (-1,-0.1) has two class-2 neighbours, then three of class 1 (cosines 0, -.13, -.20):
     * right for k <= 3, wrong for k = 5, which outvotes the small class. */
    double a1 = con_knn_accuracy(bank, bl, 8, q, ql, 4, 2, 1, 3, sims, votes);
    double a3 = con_knn_accuracy(bank, bl, 8, q, ql, 4, 2, 3, 3, sims, votes);
    double a5 = con_knn_accuracy(bank, bl, 8, q, ql, 4, 2, 5, 3, sims, votes);
    printf("k-NN accuracy k=1 %.3f, k=3 %.3f (expect 0.75), k=5 %.3f (expect 0.5)\n", a1, a3, a5);
    assert_true(fabs(a1 - 0.75) < 1e-9 && fabs(a3 - 0.75) < 1e-9 && fabs(a5 - 0.5) < 1e-9);
    /* With q3 labelled 1, every query is right. */
    int ql2[] = {0, 1, 2, 1};
    double all = con_knn_accuracy(bank, bl, 8, q, ql2, 4, 2, 3, 3, sims, votes);
    assert_true(all == 1.0);
    /* A tie of votes (k = 2, one neighbour each) goes to the larger summed similarity. */
    float tb[] = {1, 0, 0, 1};
    int tl[] = {1, 0};
    float tq[] = {1, 0.5f};
    int tql[] = {1};
    con_normalise(tb, 2, 2);
    con_normalise(tq, 1, 2);
    assert_true(con_knn_accuracy(tb, tl, 2, tq, tql, 1, 2, 2, 2, sims, votes) == 1.0);

    /* Uniformity by hand: two antipodal points, |zi - zj|^2 = 4, log exp(-8) = -8; three points,
     * two equal and one orthogonal: pairs (0 twice, 2 four times) give log((2 + 4 e^-4) / 6). */
    float anti[] = {1, 0, -1, 0}, tri[] = {1, 0, 1, 0, 0, 1};
    ConRun ur = {.D = 2, .sims = sims, .query = anti};
    double u2 = con_uniformity(&ur, 2);
    ur.query = tri;
    double u3 = con_uniformity(&ur, 3), want3 = log((2 + 4 * exp(-4.0)) / 6);
    printf("uniformity: antipodal %.6f (expect -8), three points %.6f (expect %.6f)\n", u2, u3, want3);
    assert_true(fabs(u2 + 8) < 1e-5 && fabs(u3 - want3) < 1e-5);
}

/* ---- a run's state in an arena of its own (as the trainer's setup makes it), and training
 * runs under a hand-written loss through the one trainer */

static int con_run_init(ConRun *r, const Task *t, LdArena *ar, uint64_t seed, char *err) {
    size_t np;
    float *params, *grads;
    if (arena_init(ar, con_run_bytes(t, &np)) != LD_OK) return LD_ENOMEM;
    return con_run_bind(r, t, ar, seed, &params, &grads, err);
}

static int con_train(const Task *t, TrainLossFn fn, void *ctx, const EvalOpts *o, EvalResult *res, char *err) {
    TrainLoss l = {.fn = fn, .ctx = ctx, .use_l2 = 1};
    return train_run(t, &l, o, res, NULL, err);
}

/* ---- the embedding network's gradient through InfoNCE, against central differences */

static double run_loss(ConRun *r, HandNce *h) {
    float loss;
    assert_int_equal(con_step_grad(r, hand_infonce, h, 0.0f, &loss), LD_OK);
    return loss;
}

static void check_grad(const char *json) {
    char err[LD_ERR_MAX];
    Task *t = fake_task(10, json, err);
    if (!t) print_error("%s\n", err);
    assert_non_null(t);
    LdArena ar = {0};
    ConRun r;
    LdRng rng;
    int idx[16];
    assert_int_equal(con_run_init(&r, t, &ar, 3, err), LD_OK);
    for (size_t i = 0; i < r.net.nparams; i++) r.net.params[i] += 0.05f * (float)((int)(i % 7) - 3) / 3;
    rng_seed(&rng, 4);
    con_next_batch(&r, idx, &rng);
    con_make_views(r.views, r.labels, &t->train, idx, r.B, t->con, &rng);
    HandNce *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->tau = 0.5f;
    h->D = r.D;
    run_loss(&r, h);
    size_t n = r.net.nparams;
    float *g = malloc(sizeof(float) * n);
    memcpy(g, r.grad.params, sizeof(float) * n);
    double maxdiff = 0, maxg = 0;
    const float eps = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        float keep = r.net.params[i];
        r.net.params[i] = keep + eps;
        double lp = run_loss(&r, h);
        r.net.params[i] = keep - eps;
        double lm = run_loss(&r, h);
        r.net.params[i] = keep;
        maxdiff = fmax(maxdiff, fabs((lp - lm) / (2 * eps) - g[i]));
        maxg = fmax(maxg, fabs(g[i]));
    }
    printf("%s: %zu parameters, gradient maxdiff %.3e, max |g| %.3e, relative %.2e "
           "(tolerance 2e-2)\n",
           json, n, maxdiff, maxg, maxdiff / maxg);
    assert_true(maxg > 0 && maxdiff / maxg < 2e-2);
    free(g);
    free(h);
    arena_free(&ar);
    free_task(t);
}

static void test_gradient(void **state) {
    check_grad("{\"model\":{\"hidden\":[12],\"act\":\"tanh\",\"embed_dim\":6},"
               "\"train\":{\"batch\":8}}");
    check_grad("{\"model\":{\"hidden\":[12,9],\"act\":\"gelu\",\"embed_dim\":5},"
               "\"train\":{\"batch\":6}}");
}

/* ---- alignment: identical views give 0, noisy views more */

static void test_alignment(void **state) {
    char err[LD_ERR_MAX];
    double al[2];
    const char *specs[] = {"{\"augment\":{\"noise\":0,\"dropout\":0}}",
                           "{\"augment\":{\"noise\":1,\"dropout\":0}}"};
    for (int i = 0; i < 2; i++) {
        Task *t = fake_task(10, specs[i], err);
        assert_non_null(t);
        LdArena ar = {0};
        ConRun r;
        int idx[64];
        assert_int_equal(con_run_init(&r, t, &ar, 5, err), LD_OK);
        al[i] = con_alignment(&r, &t->val, idx, 1);
        arena_free(&ar);
        free_task(t);
    }
    printf("alignment: identical views %.2e (expect < 1e-6), noise 1 %.4f (expect > 0.05)\n", al[0],
           al[1]);
    assert_true(al[0] < 1e-6 && al[1] > 0.05);
}

/* ---- spec handling */

static void test_spec(void **state) {
    char err[LD_ERR_MAX] = "";
    Task *t = fake_task(10, "{}", err);
    assert_non_null(t);
    assert_int_equal(t->family, FAM_CONTRASTIVE);
    assert_string_equal(t->metric, "knn_accuracy");
    assert_int_equal(t->higher_better, 1);
    assert_int_equal(t->model.embed_dim, 32);
    assert_int_equal(t->con->shift, 0);
    assert_true(t->con->dropout == 0.3f && t->con->noise == 0.2f);
    free_task(t);
    t = fake_task(64, "{\"augment\":{\"noise\":0.3,\"dropout\":0.2,\"shift\":1}}", err);
    assert_non_null(t);
    assert_true(t->con->side == 8 && t->con->shift == 1 && t->con->dropout == 0.2f &&
                t->con->noise == 0.3f);
    free_task(t);
    assert_null(fake_task(10, "{\"augment\":{\"shift\":1}}", err));
    printf("shift on 10 features: %s\n", err);
    assert_non_null(strstr(err, "augment.shift"));
    assert_null(fake_task(10, "{\"augment\":{\"noise\":-1}}", err));
    assert_non_null(strstr(err, "augment.noise"));
    assert_null(fake_task(10, "{\"augment\":3}", err));
    assert_non_null(strstr(err, "augment"));
    assert_null(fake_task(10, "{\"knn\":{\"k\":0}}", err));
    assert_non_null(strstr(err, "knn.k"));
    assert_null(fake_task(10, "{\"augment\":{\"jitter\":1}}", err));
    assert_non_null(strstr(err, "augment: unknown key 'jitter'"));
    assert_null(fake_task(10, "{\"knn\":5}", err));
    assert_non_null(strstr(err, "knn: expected an object"));
}

/* ---- training: InfoNCE must lift k-NN accuracy above the untrained network's */

static void test_training_improves(void **state) {
    char err[LD_ERR_MAX];
    Task *t = digits_task("{}");
    HandNce *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->tau = 0.1f;
    h->D = t->model.embed_dim;
    double before = 0, after = 0;
    for (uint64_t seed = 1; seed <= 1; seed++) {
        LdArena ar = {0};
        ConRun r;
        assert_int_equal(con_run_init(&r, t, &ar, ld_mix64(seed, 0x636f6eULL), err), LD_OK);
        double a0 = con_eval_split(&r, &t->val);
        arena_free(&ar);
        EvalResult res;
        EvalOpts o = {.seed = seed};
        assert_int_equal(con_train(t, hand_infonce, h, &o, &res, err), LD_OK);
        assert_true(res.ok);
        printf("digits seed %d: untrained k-NN %.4f, after %d InfoNCE steps %.4f (test %.4f), "
               "%.0f ms, loss %.3f -> %.3f\n",
               (int)seed, a0, res.steps, res.val, res.test, res.wall_ms, res.curve[0].loss,
               res.curve[res.ncurve - 1].loss);
        assert_true(res.curve[res.ncurve - 1].loss < res.curve[0].loss);
        before += a0;
        after += res.val;
    }
    printf("k-NN accuracy: untrained %.4f, trained %.4f (need trained > untrained + 0.005)\n",
           before, after);
    assert_true(after > before + 0.005);
    /* Determinism: the same seed gives the same run. */
    EvalResult a, b;
    EvalOpts o = {.seed = 7, .steps = 30};
    assert_int_equal(con_train(t, hand_infonce, h, &o, &a, err), LD_OK);
    assert_int_equal(con_train(t, hand_infonce, h, &o, &b, err), LD_OK);
    assert_true(a.val == b.val && a.final_loss == b.final_loss);
    free(h);
    con_task_free(t);
    dataset_free(&t->train);
    dataset_free(&t->val);
    dataset_free(&t->test);
    free(t);
}

/* ---- through the loss program and the public task API */

static EvalResult run_expr(const Task *t, const char *src, uint64_t seed, int steps) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse(src, err);
    if (!e) print_error("parse '%s': %s\n", src, err);
    assert_non_null(e);
    EvalResult r;
    EvalOpts o = {.seed = seed, .steps = steps};
    int rc = eval_run(t, e, &o, &r, err);
    if (rc != LD_OK) print_error("eval '%s': %s\n", src, err);
    assert_int_equal(rc, LD_OK);
    expr_free(e);
    return r;
}

static void test_lossprog(void **state) {
    char err[LD_ERR_MAX];
    Task *t = NULL;
    cJSON *spec = cJSON_Parse("{\"data\":\"builtin:digits\",\"family\":\"contrastive\"}");
    int rc = task_load(spec, NULL, &t, err);
    cJSON_Delete(spec);
    if (rc != LD_OK) print_error("task_load: %s\n", err);
    assert_int_equal(rc, LD_OK);
    assert_int_equal(task_family(t), FAM_CONTRASTIVE);
    assert_string_equal(task_metric(t), "knn_accuracy");

    /* The compiled infonce and the hand-written one give the same run. */
    HandNce *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->tau = 0.1f;
    h->D = t->model.embed_dim;
    EvalResult hr;
    EvalOpts o = {.seed = 3, .steps = 40};
    assert_int_equal(con_train(t, hand_infonce, h, &o, &hr, err), LD_OK);
    EvalResult pr = run_expr(t, "infonce(0.1)", 3, 40);
    printf("40 steps: hand loss %.5f k-NN %.4f; lossprog loss %.5f k-NN %.4f\n", hr.final_loss,
           hr.val, pr.final_loss, pr.val);
    assert_true(hr.ok && pr.ok);
    assert_true(fabs(hr.final_loss - pr.final_loss) < 1e-3 * fmax(1.0, fabs(hr.final_loss)));
    free(h);

    /* Full default runs: the untrained network's k-NN accuracy against trained ones. */
    LdArena ar = {0};
    ConRun r;
    assert_int_equal(con_run_init(&r, t, &ar, ld_mix64(1, 0x636f6eULL), err), LD_OK);
    double a0 = con_eval_split(&r, &t->val);
    arena_free(&ar);
    const char *losses[] = {"infonce(0.1)", "supcon(0.1)", "0.5*infonce(0.2) + supcon(0.1)"};
    for (int i = 0; i < 3; i++) {
        EvalResult er = run_expr(t, losses[i], 1, 0);
        printf("%-32s k-NN val %.4f test %.4f (untrained %.4f), %d steps, %.0f ms, %d curve points\n",
               losses[i], er.val, er.test, a0, er.steps, er.wall_ms, er.ncurve);
        assert_true(er.ok);
        assert_true(er.val > a0 + 0.005);
        assert_int_equal(er.nextra, 3);
        printf("  extras:");
        for (int k = 0; k < er.nextra; k++)
            printf(" %s %.3f/%.3f", er.extra[k].name, er.extra[k].val, er.extra[k].test);
        printf("\n");
        assert_string_equal(er.extra[1].name, "uniformity");
        assert_string_equal(er.extra[2].name, "alignment");
        for (int k = 1; k < 3; k++) {
            /* uniformity in [-8, 0], alignment in [0, 4] on the unit sphere */
            double lo = k == 1 ? -8.0 : 0.0, hi = k == 1 ? 0.0 : 4.0;
            assert_true(er.extra[k].val >= lo && er.extra[k].val <= hi);
            assert_true(er.extra[k].test >= lo && er.extra[k].test <= hi);
        }
    }
    /* l2 alone has no gradient through the embeddings, and shrinks the weights: a valid run. */
    EvalResult lr = run_expr(t, "infonce(0.1) + 0.001*l2", 1, 30);
    assert_true(lr.ok);
    Expr *e = expr_parse("mse", err);
    assert_non_null(e);
    rc = eval_run(t, e, &o, &hr, err);
    printf("mse on a contrastive task: %d '%s'\n", rc, err);
    assert_int_equal(rc, LD_EINVAL);
    expr_free(e);
    task_free(t);
}

/* The shipped example task file loads and trains. */
static void test_example(void **state) {
    char err[LD_ERR_MAX];
    Task *t = NULL;
    int rc = task_load_arg("examples/contrastive.task.json", &t, err);
    if (rc != LD_OK) print_error("examples/contrastive.task.json: %s\n", err);
    assert_int_equal(rc, LD_OK);
    assert_int_equal(task_family(t), FAM_CONTRASTIVE);
    assert_int_equal(t->model.embed_dim, 32);
    assert_int_equal(t->train_spec.batch, 64);
    assert_true(t->con->noise == 0.2f && t->con->dropout == 0.3f && t->con->shift == 0);
    Expr *e = expr_parse("infonce(0.1)", err);
    EvalResult r;
    EvalOpts o = {.seed = 1, .steps = 20};
    assert_int_equal(eval_run(t, e, &o, &r, err), LD_OK);
    printf("examples/contrastive.task.json: 20 steps, ok %d, knn_accuracy %.4f\n", r.ok, r.val);
    assert_true(r.ok);
    expr_free(e);
    task_free(t);
}

/* Two evaluations of one task in two threads give what they give one after the other: no
 * shared mutable state. */
typedef struct ThreadRun {
    const Task *t;
    const Expr *e;
    uint64_t seed;
    EvalResult r;
    int rc;
} ThreadRun;

static void *thread_run(void *arg) {
    ThreadRun *a = arg;
    char err[LD_ERR_MAX];
    EvalOpts o = {.seed = a->seed, .steps = 40};
    a->rc = eval_run(a->t, a->e, &o, &a->r, err);
    return NULL;
}

static void check_threads(const Task *t) {
    char err[LD_ERR_MAX];
    Expr *e = expr_parse("infonce(0.1)", err);
    assert_non_null(e);
    ThreadRun par[2] = {{.t = t, .e = e, .seed = 1}, {.t = t, .e = e, .seed = 2}};
    ThreadRun ser[2] = {{.t = t, .e = e, .seed = 1}, {.t = t, .e = e, .seed = 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_run, &par[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) thread_run(&ser[i]);
    for (int i = 0; i < 2; i++) {
        printf("seed %d: threaded %.6f, serial %.6f\n", i + 1, par[i].r.val, ser[i].r.val);
        assert_int_equal(par[i].rc, LD_OK);
        assert_true(par[i].r.ok && ser[i].r.ok);
        assert_true(par[i].r.val == ser[i].r.val && par[i].r.final_loss == ser[i].r.final_loss);
    }
    expr_free(e);
}

static void test_threads(void **state) {
    char err[LD_ERR_MAX];
    Task *t = NULL;
    assert_int_equal(task_load_arg("examples/contrastive.task.json", &t, err), LD_OK);
    check_threads(t);
    task_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_augment),
        cmocka_unit_test(test_knn),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_training_improves),
        cmocka_unit_test(test_lossprog),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
