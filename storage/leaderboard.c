/* leaderboard.c: the leaderboard's semantics in one place (store.h, store_leaderboard): what a
 * job's entries show (mean and spread of the selection metric, or of any metric the runs
 * report, over the candidate's runs; a single run has no spread), how they rank (fitness, or
 * the chosen metric in its direction), the baseline's row, and the final paired test against
 * the baseline (store_paired_test). The RPC handler, lossctl, the HTML report and the Python
 * client all show these numbers and compute none of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define LB_ALL 1000 /* entries ranked when a metric re-ranks or the baseline is looked for */

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_baseline(const cJSON *e) {
    const char *op = str(e, "op");
    return op && !strcmp(op, "baseline");
}

/* Sample standard deviation (n - 1) of n values with this sum and sum of squares; NaN for one
 * value: a single run has no spread. */
static double spread(int n, double sum, double sq) {
    if (n < 2) return NAN;
    double mean = sum / n;
    return sqrt(fmax(0, (sq - n * mean * mean) / (n - 1)));
}

static void set_num(cJSON *o, const char *k, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* One side of the gains: the relative gain's mean, its 95% interval, the verdict and the pairs
 * of a final comparison (cmp: search.c's vs_baseline or vs_panel), plus, with against, the loss
 * it was measured against. NULL when cmp is not a comparison. */
static cJSON *gain_json(const cJSON *cmp, const char *against) {
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(cmp, "ci95");
    if (!cJSON_IsObject(cmp) || !str(cmp, "verdict")) return NULL;
    cJSON *g = cJSON_CreateObject();
    set_num(g, "mean", num(cmp, "mean_diff"));
    cJSON *c = cJSON_AddArrayToObject(g, "ci95");
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(ci, i);
        cJSON_AddItemToArray(c, cJSON_IsNumber(v) ? cJSON_CreateNumber(v->valuedouble) : cJSON_CreateNull());
    }
    cJSON_AddStringToObject(g, "verdict", str(cmp, "verdict"));
    set_num(g, "n", num(cmp, "n"));
    if (against) cJSON_AddStringToObject(g, "against", against);
    return g;
}

/* Whether a gain holds at the user's horizon, from the two verdicts (each "better", "within
 * noise" or "worse": its interval above, around or below 0): "holds" (better there), "reverses"
 * (worse there), "vanishes" (better at the search's recipe, within noise there), "no gain"
 * (within noise at both). */
static const char *horizon_label(const char *search, const char *horizon) {
    if (!search || !horizon) return NULL;
    if (!strcmp(horizon, "better")) return "holds";
    if (!strcmp(horizon, "worse")) return "reverses";
    return !strcmp(search, "better") ? "vanishes" : "no gain";
}

void store_final_gains(cJSON *o, const cJSON *final) {
    const cJSON *hz = cJSON_GetObjectItemCaseSensitive(final, "horizon");
    cJSON *s = gain_json(cJSON_GetObjectItemCaseSensitive(final, "vs_baseline"), NULL);
    if (!s) return;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddItemToObject(g, "search", s);
    cJSON *h = gain_json(cJSON_GetObjectItemCaseSensitive(hz, "vs_baseline"), NULL);
    if (h) {
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(hz, "steps");
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(hz, "model");
        if (steps) cJSON_AddItemToObject(h, "steps", cJSON_Duplicate(steps, 1));
        if (model) cJSON_AddItemToObject(h, "model", cJSON_Duplicate(model, 1));
        cJSON_AddItemToObject(g, "horizon", h);
        cJSON_AddStringToObject(g, "label", horizon_label(str(s, "verdict"), str(h, "verdict")));
    }
    const cJSON *vp = cJSON_GetObjectItemCaseSensitive(final, "vs_panel");
    cJSON *sp = gain_json(vp, str(vp, "loss")); /* against the best textbook loss of a panel */
    if (sp) cJSON_AddItemToObject(g, "search_vs_panel", sp);
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(hz, "vs_panel");
    cJSON *hpj = gain_json(hp, str(hp, "loss"));
    if (hpj) cJSON_AddItemToObject(g, "horizon_vs_panel", hpj);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "gains");
    cJSON_AddItemToObject(o, "gains", g);
}

/* Adds "mean" and "spread" over the entry's selection tasks (val_mean, val_std), "runs" (the
 * fewest runs of a counted task) and "metrics" {task name: {metric: {mean, spread, n,
 * test_mean}}}. metric NULL: every task's own. Returns 0 when no task counted, else 2 + the
 * direction of the first counted task's metric (1: higher is better) when the row says it, 1
 * when it does not. */
static int summarise_entry(cJSON *e, const char *metric) {
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(e, "tasks");
    cJSON *metrics = cJSON_CreateObject();
    double sum = 0, ssum = 0, runs = -1;
    int n = 0, hb = -1;
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        const char *mname = str(t, "metric") ? str(t, "metric") : "metric";
        const char *base = str(t, "name") ? str(t, "name") : str(t, "task") ? str(t, "task") : "task";
        char tname[96];
        snprintf(tname, sizeof tname, "%s", base);
        for (int dup = 2; cJSON_GetObjectItemCaseSensitive(metrics, tname) && dup < 100; dup++)
            snprintf(tname, sizeof tname, "%.80s#%d", base, dup); /* two tasks of one name */
        cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(metrics, tname), mname);
        double vm = num(t, "val_mean"), vs = num(t, "val_std"), tn = num(t, "n");
        if (isfinite(vm)) cJSON_AddNumberToObject(m, "mean", vm);
        if (isfinite(vs)) cJSON_AddNumberToObject(m, "spread", vs);
        if (isfinite(num(t, "test_mean"))) cJSON_AddNumberToObject(m, "test_mean", num(t, "test_mean"));
        cJSON_AddNumberToObject(m, "n", isfinite(tn) ? tn : 0);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "holdout"))) continue;
        if (metric && strcmp(metric, mname)) continue;
        if (!isfinite(vm)) continue;
        sum += vm;
        ssum += isfinite(vs) ? vs : 0;
        if (!(runs >= 0) || tn < runs) runs = isfinite(tn) ? tn : 0;
        if (hb < 0 && cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(t, "higher_better")))
            hb = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "higher_better"));
        n++;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(e, "metrics");
    cJSON_AddItemToObject(e, "metrics", metrics);
    set_num(e, "mean", n > 0 ? sum / n : NAN);
    /* one run has no spread: null, not 0 ("runs" says how many there were) */
    set_num(e, "spread", n > 0 && runs >= 2 ? ssum / n : NAN);
    if (n > 0) set_num(e, "runs", runs);
    return n > 0 ? (hb >= 0 ? 2 + hb : 1) : 0;
}

/* Rewrites the tasks of entry e (candidate cand of job, or, with evs, those evaluations) with
 * metric's mean, spread (sample), test mean and count over the candidate's successful runs at
 * its most steps on each task: for a metric other than a task's own (balanced_accuracy,
 * macro_f1, ... every evaluation stores), and for the baseline's row built from its runs
 * (metric NULL: each task's own). */
static void tasks_from_runs(const cJSON *evs, cJSON *tasks, const char *metric) {
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        const char *tn = str(t, "task"), *own = str(t, "metric");
        const char *want = metric ? metric : own;
        if (!tn || !want || (metric && own && !strcmp(own, metric))) continue;
        double top = -1, sum = 0, sq = 0, tsum = 0;
        int k = 0, kt = 0;
        const cJSON *ev;
        for (int pass = 0; pass < 2; pass++) {
            cJSON_ArrayForEach(ev, evs) {
                const char *task = str(ev, "task"), *status = str(ev, "status");
                if (!task || strcmp(task, tn) || !status || strcmp(status, "ok")) continue;
                double steps = num(ev, "steps");
                if (pass == 0) {
                    if (steps > top) top = steps;
                    continue;
                }
                if (steps != top) continue;
                double v = NAN, te = NAN;
                if (own && !strcmp(want, own)) {
                    v = num(ev, "val");
                    te = num(ev, "test");
                } else {
                    const cJSON *m;
                    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(ev, "metrics")) {
                        if (str(m, "name") && !strcmp(str(m, "name"), want)) {
                            v = num(m, "val");
                            te = num(m, "test");
                        }
                    }
                }
                if (!isfinite(v)) continue;
                sum += v;
                sq += v * v;
                k++;
                if (isfinite(te)) {
                    tsum += te;
                    kt++;
                }
            }
        }
        if (k == 0) continue;
        cJSON *tm = (cJSON *)t;
        if (metric) { /* with metric NULL, want is the row's own "metric" string: keep it */
            cJSON_DeleteItemFromObjectCaseSensitive(tm, "metric");
            cJSON_AddStringToObject(tm, "metric", metric);
        }
        set_num(tm, "val_mean", sum / k);
        set_num(tm, "val_std", spread(k, sum, sq));
        set_num(tm, "test_mean", kt ? tsum / kt : NAN);
        set_num(tm, "n", k);
    }
}

/* Best first by "mean" in the direction hb; entries without one last; ties by fitness rank. */
static int cmp_mean(const cJSON *x, const cJSON *y, int hb) {
    double u = num(x, "mean"), v = num(y, "mean");
    int fu = isfinite(u), fv = isfinite(v);
    if (fu != fv) return fv - fu;
    if (fu && u != v) return (hb ? u < v : u > v) ? 1 : -1;
    return (num(x, "rank") > num(y, "rank")) - (num(x, "rank") < num(y, "rank"));
}
static int cmp_mean_hb(const void *a, const void *b) {
    return cmp_mean(*(const cJSON *const *)a, *(const cJSON *const *)b, 1);
}
static int cmp_mean_lb(const void *a, const void *b) {
    return cmp_mean(*(const cJSON *const *)a, *(const cJSON *const *)b, 0);
}

/* Orders entries (an array, modified in place) best first by their mean in direction hb and
 * numbers their ranks from 1. */
static int rerank(cJSON *entries, int hb, const char *what, char *err) {
    int n = cJSON_GetArraySize(entries);
    cJSON **v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    if (!v) return ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    for (int i = 0; i < n; i++) v[i] = cJSON_DetachItemFromArray(entries, 0);
    qsort(v, (size_t)n, sizeof *v, hb ? cmp_mean_hb : cmp_mean_lb);
    for (int i = 0; i < n; i++) {
        set_num(v[i], "rank", i + 1);
        cJSON_AddItemToArray(entries, v[i]);
    }
    free(v);
    return LD_OK;
}

/* The baseline's row when it is not among the first LB_ALL ranked (or not ranked: its runs
 * failed): built from its runs, without a rank. Owned, or NULL when the job has no baseline. */
static cJSON *baseline_from_runs(Store *s, int64_t job_id, const char *metric) {
    char err[LD_ERR_MAX];
    cJSON *cand = NULL, *e = NULL;
    if (store_candidate_get(s, job_id, 0, &cand, err) != LD_OK || !is_baseline(cand)) goto done;
    e = cJSON_CreateObject();
    static const char *const keep[] = {"cand", "expr", "hash", "size", "op", "fitness", "parents"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cand, keep[i]);
        if (v) cJSON_AddItemToObject(e, keep[i], cJSON_Duplicate(v, 1));
    }
    cJSON_AddNullToObject(e, "rank");
    /* one task row per task the baseline ran, with its own metric */
    cJSON *tasks = cJSON_AddArrayToObject(e, "tasks");
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(cand, "evaluations"), *ev, *t;
    cJSON_ArrayForEach(ev, evs) {
        const char *tn = str(ev, "task");
        int seen = 0;
        cJSON_ArrayForEach(t, tasks) seen |= tn && str(t, "task") && !strcmp(str(t, "task"), tn);
        if (!tn || seen || !str(ev, "metric")) continue;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "task", tn);
        cJSON_AddStringToObject(row, "metric", str(ev, "metric"));
        cJSON_AddItemToArray(tasks, row);
    }
    tasks_from_runs(evs, tasks, NULL);
    if (metric) tasks_from_runs(evs, tasks, metric);
    summarise_entry(e, metric);
done:
    cJSON_Delete(cand);
    return e;
}

int store_leaderboard(Store *s, const StoreLbQuery *q, cJSON **out, char *err) {
    char what[64];
    cJSON *entries = NULL, *all = NULL, *o = NULL;
    int rc, k = q->k > 0 ? q->k : 10;
    *out = NULL;
    if (q->family) {
        rc = store_leaderboard_family(s, q->family, k, q->metric, q->higher_better, &entries, err);
        if (rc != LD_OK) return rc;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "family", q->family);
        cJSON_AddStringToObject(o, "metric", q->metric ? q->metric : "fitness");
        if (q->metric) cJSON_AddBoolToObject(o, "higher_better", q->higher_better != 0);
        cJSON_AddItemToObject(o, "entries", entries);
        *out = o;
        return LD_OK;
    }
    snprintf(what, sizeof what, "leaderboard of job %lld", (long long)q->job_id);
    /* a metric re-ranks the first LB_ALL by fitness; otherwise the first k are the answer */
    rc = store_leaderboard_job(s, q->job_id, q->metric ? LB_ALL : k, &entries, err);
    if (rc != LD_OK) goto done;
    int counted = 0, n = cJSON_GetArraySize(entries), mean_hb = -1;
    cJSON *e;
    cJSON_ArrayForEach(e, entries) {
        if (q->metric) {
            cJSON *cand = NULL;
            char e2[LD_ERR_MAX];
            if (store_candidate_get(s, q->job_id, (int64_t)num(e, "cand"), &cand, e2) == LD_OK)
                tasks_from_runs(cJSON_GetObjectItemCaseSensitive(cand, "evaluations"),
                                cJSON_GetObjectItemCaseSensitive(e, "tasks"), q->metric);
            cJSON_Delete(cand);
        }
        int sr = summarise_entry(e, q->metric);
        counted += sr > 0;
        cJSON *fin = NULL; /* the final comparisons' gains, side by side */
        char e3[LD_ERR_MAX];
        if (!is_baseline(e) && store_candidate_final(s, q->job_id, (int64_t)num(e, "cand"), &fin, e3) == LD_OK && fin)
            store_final_gains(e, fin);
        cJSON_Delete(fin);
        if (mean_hb < 0 && sr >= 2) mean_hb = sr - 2;
    }
    int hb = 1; /* fitness: larger is better */
    if (q->metric) {
        if (n > 0 && counted == 0) {
            rc = ld_err(err, LD_EINVAL, "params.metric: no task of job %lld reports '%.40s'",
                        (long long)q->job_id, q->metric);
            goto done;
        }
        hb = mean_hb = q->higher_better != 0;
        rc = rerank(entries, hb, what, err);
        if (rc != LD_OK) goto done;
    }
    /* the baseline is what every fitness is measured against: its row always comes with the
     * answer, from the ranking when it is among the first LB_ALL */
    cJSON *base = NULL;
    int in_top = 0, i = 0;
    cJSON_ArrayForEach(e, entries) {
        if (is_baseline(e)) {
            in_top = i < k;
            base = cJSON_Duplicate(e, 1);
            break;
        }
        i++;
    }
    if (!base && !q->metric && n >= k) {
        rc = store_leaderboard_job_op(s, q->job_id, LB_ALL, "baseline", &all, err);
        if (rc != LD_OK) goto done;
        cJSON_ArrayForEach(e, all) {
            if (is_baseline(e)) {
                summarise_entry(e, NULL);
                base = cJSON_Duplicate(e, 1);
                break;
            }
        }
    }
    if (!base) base = baseline_from_runs(s, q->job_id, q->metric);
    while (cJSON_GetArraySize(entries) > k) cJSON_DeleteItemFromArray(entries, k);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job_id", (double)q->job_id);
    cJSON_AddStringToObject(o, "metric", q->metric ? q->metric : "fitness");
    /* the direction of what "mean" reads (the ranking's is fitness's without a metric: larger) */
    if (mean_hb >= 0) cJSON_AddBoolToObject(o, "higher_better", mean_hb);
    cJSON_AddItemToObject(o, "entries", entries);
    entries = NULL;
    if (base && !in_top) cJSON_AddItemToObject(o, "baseline", base);
    else cJSON_Delete(base);
    *out = o;
done:
    cJSON_Delete(entries);
    cJSON_Delete(all);
    return rc;
}

/* The exact two-sided sign test: P(a split at least as uneven as w : l) under a fair coin. */
static double sign_test(int w, int l) {
    int n = w + l, k = w < l ? w : l;
    if (n == 0) return NAN;
    double p = 0, c = 1; /* c = C(n, i) / 2^n, built up in the loop */
    for (int i = 0; i < n; i++) c /= 2;
    for (int i = 0; i <= k; i++) {
        p += c;
        c = c * (n - i) / (i + 1);
    }
    p *= 2;
    return p > 1 ? 1 : p;
}

int store_paired_test(const cJSON *cand_evs, const cJSON *base_evs,
                      int (*keep)(void *ctx, const char *task, int *lower_better), void *ctx,
                      StorePaired *out) {
    double d[STORE_PAIRED_MAX];
    int n = 0;
    const cJSON *e, *g;
    memset(out, 0, sizeof *out);
    cJSON_ArrayForEach(e, cand_evs) {
        const char *tn = str(e, "task_name"), *seed = str(e, "seed"), *st = str(e, "status");
        int lower = 0;
        if (!tn || !seed || !st || strcmp(st, "ok") != 0 || n >= STORE_PAIRED_MAX) continue;
        if (!keep(ctx, tn, &lower)) continue;
        cJSON_ArrayForEach(g, base_evs) {
            const char *gt = str(g, "task_name"), *gs = str(g, "seed"), *gst = str(g, "status");
            if (!gt || !gs || !gst || strcmp(gt, tn) || strcmp(gs, seed) || strcmp(gst, "ok") ||
                num(g, "steps") != num(e, "steps"))
                continue;
            double diff = num(e, "test") - num(g, "test");
            if (lower) diff = -diff;
            if (!isfinite(diff)) break;
            d[n++] = diff;
            out->wins += diff > 1e-12;
            out->losses += diff < -1e-12;
            out->ties += fabs(diff) <= 1e-12;
            break;
        }
    }
    out->n = n;
    if (n == 0) return 0;
    ld_mean_sd(d, n, &out->mean, &out->sd);
    if (n < 2) out->sd = NAN;
    out->t = out->sd > 0 ? out->mean / (out->sd / sqrt(n)) : NAN;
    out->p = sign_test(out->wins, out->losses);
    return n;
}
