/* surrogate.c: the learned pre-screen (docs/jobs.md, "Fewer wasted trainings"): ridge regression
 * from a candidate's features (its tree's shape, its gradient signature against the references'
 * and its task's features) to its fitness at the first fidelity level, fit at a round boundary to
 * the candidates already trained and to what earlier jobs in the database measured, so that a new
 * candidate predicted clearly worse than the median is not trained. Pure functions over numbers
 * and the store's rows: the engine decides what to fit and when. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void walk(const Expr *e, int depth, double *x, int *maxd) {
    if (!e) return;
    if (depth > *maxd) *maxd = depth;
    x[SURR_F_OPS + e->op] += 1;
    if (e->op == EOP_TERM && e->id < TERM_COUNT) x[SURR_F_TERMS + e->id] += 1;
    if (e->op == EOP_VAR && e->id < VAR_COUNT) x[SURR_F_VARS + e->id] += 1;
    if (e->op == EOP_NUM && isfinite(e->num)) x[SURR_F_LOGNUM] += log1p(fabs(e->num));
    walk(e->a, depth + 1, x, maxd);
    walk(e->b, depth + 1, x, maxd);
}

double surr_cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

void surr_features(const Expr *e, const float *sig, const float *const *ref_sig, int nref, int sig_n,
                   const double *tf, double *x) {
    memset(x, 0, SURR_NFEAT * sizeof *x);
    int maxd = 0;
    walk(e, 1, x, &maxd);
    x[SURR_F_SIZE] = expr_size(e);
    x[SURR_F_DEPTH] = maxd;
    if (tf) memcpy(x + SURR_F_TASK, tf, SURR_NTASKF * sizeof *tf);
    if (!sig) return;
    double best = -1, sum = 0, sabs = 0, mx = 0;
    for (int r = 0; r < nref; r++)
        if (ref_sig[r]) {
            double c = surr_cosine(sig, ref_sig[r], sig_n);
            if (r == 0) x[SURR_F_COS_BASE] = c;
            if (c > best) best = c;
        }
    x[SURR_F_COS_BEST] = nref > 0 ? best : 0;
    for (int i = 0; i < sig_n; i++) {
        sum += sig[i];
        sabs += fabs(sig[i]);
        if (fabs(sig[i]) > mx) mx = fabs(sig[i]);
    }
    x[SURR_F_SIG_MEAN] = sig_n > 0 ? sum / sig_n : 0;
    x[SURR_F_SIG_ABS] = sig_n > 0 ? sabs / sig_n : 0;
    x[SURR_F_SIG_MAX] = mx;
}

static double num_at(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void surr_task_features(const cJSON *spec, int steps, double *tf) {
    memset(tf, 0, SURR_NTASKF * sizeof *tf);
    tf[SURR_T_STEPS] = log(steps > 1 ? steps : 1);
    double rows = num_at(spec, "data_info", "rows"), sub = num_at(spec, "transform", "subsample");
    double inputs = num_at(spec, "data_info", "features");
    double noise = num_at(spec, "transform", "label_noise"), imb = num_at(spec, "transform", "imbalance");
    double outl = num_at(spec, "transform", "outliers"), pix = num_at(spec, "transform", "pixel_noise");
    if (isfinite(rows) && rows > 0) tf[SURR_T_ROWS] = log1p(rows * (isfinite(sub) ? sub : 1));
    if (isfinite(inputs) && inputs > 0) tf[SURR_T_INPUTS] = log1p(inputs);
    if (isfinite(noise)) tf[SURR_T_NOISE] = noise;
    if (isfinite(imb)) tf[SURR_T_IMBALANCE] = 1 - imb;
    if (isfinite(outl)) tf[SURR_T_OUTLIERS] = outl;
    if (isfinite(pix)) tf[SURR_T_PIXELS] = pix;
}

/* The model's inputs for features x (SURR_NFEAT) into r (SURR_NMODEL). */
static void expand(const double *here, const double *x, double *r) {
    static const int mix[SURR_NMIX] = {SURR_T_NOISE, SURR_T_IMBALANCE, SURR_T_OUTLIERS};
    memcpy(r, x, SURR_NFEAT * sizeof *x);
    for (int k = 0; k < SURR_NMIX; k++) {
        double d = x[SURR_F_TASK + mix[k]] - here[mix[k]];
        for (int t = 0; t < TERM_COUNT; t++) r[SURR_NFEAT + k * TERM_COUNT + t] = d * x[SURR_F_TERMS + t];
    }
}

SurrSums *surr_sums_new(const double *here) {
    SurrSums *ss = calloc(1, sizeof *ss);
    if (ss && here) memcpy(ss->here, here, sizeof ss->here);
    return ss;
}

void surr_sums_add(SurrSums *ss, const double *x, double y, double w) {
    enum { P = SURR_NMODEL };
    double r[P];
    expand(ss->here, x, r);
    ss->n++;
    ss->W += w;
    ss->sy += w * y;
    ss->syy += w * y * y;
    for (int f = 0; f < P; f++) {
        if (r[f] == 0) continue; /* most counts are zero: their products add nothing */
        double wr = w * r[f];
        ss->s1[f] += wr;
        ss->sxy[f] += wr * y;
        for (int g = 0; g <= f; g++) ss->s2[f * P + g] += wr * r[g];
    }
}

/* Solves the p x p symmetric positive definite system A w = b in place (Cholesky; A's lower
 * triangle is overwritten). LD_OK, or LD_EFAILED when A is not positive definite. */
static int cholesky_solve(double *A, double *b, int p) {
    for (int j = 0; j < p; j++) {
        double d = A[j * p + j];
        for (int k = 0; k < j; k++) d -= A[j * p + k] * A[j * p + k];
        if (!(d > 0)) return LD_EFAILED;
        d = sqrt(d);
        A[j * p + j] = d;
        for (int i = j + 1; i < p; i++) {
            double v = A[i * p + j];
            for (int k = 0; k < j; k++) v -= A[i * p + k] * A[j * p + k];
            A[i * p + j] = v / d;
        }
    }
    for (int i = 0; i < p; i++) { /* L y = b */
        double v = b[i];
        for (int k = 0; k < i; k++) v -= A[i * p + k] * b[k];
        b[i] = v / A[i * p + i];
    }
    for (int i = p - 1; i >= 0; i--) { /* L^T w = y */
        double v = b[i];
        for (int k = i + 1; k < p; k++) v -= A[k * p + i] * b[k];
        b[i] = v / A[i * p + i];
    }
    return LD_OK;
}

int surr_fit_sums(Surrogate *m, const SurrSums *ss, double lambda) {
    enum { P = SURR_NMODEL };
    memset(m, 0, sizeof *m);
    if (ss->n < 2 || !(ss->W > 0)) return LD_EINVAL;
    double W = ss->W, ym = ss->sy / W;
    /* only the features that vary: a constant one (a term never used, a single task's
     * features) is left out, and the system is solved over the others */
    int idx[P], p = 0;
    for (int f = 0; f < P; f++) {
        double mu = ss->s1[f] / W, v = ss->s2[f * P + f] / W - mu * mu;
        m->mu[f] = mu;
        m->sd[f] = v > 1e-10 * (1 + mu * mu) ? sqrt(v) : 0;
        if (m->sd[f] > 0) idx[p++] = f;
    }
    double *A = calloc((size_t)p * p + (size_t)p * p, sizeof *A), *A0 = A + (size_t)p * p;
    if (!A) return LD_ENOMEM;
    double b[P];
    /* Z^T W Z and Z^T W (y - mean) over the standardised features, from the raw sums */
    for (int i = 0; i < p; i++) {
        int f = idx[i];
        b[i] = (ss->sxy[f] - m->mu[f] * ss->sy) / m->sd[f];
        for (int j = 0; j <= i; j++) {
            int g = idx[j];
            double a = (ss->s2[f * P + g] - W * m->mu[f] * m->mu[g]) / (m->sd[f] * m->sd[g]);
            A[i * p + j] = A[j * p + i] = A0[i * p + j] = A0[j * p + i] = a;
        }
        A[i * p + i] += lambda * W;
    }
    double beta[P];
    memcpy(beta, b, (size_t)p * sizeof *b);
    int rc = cholesky_solve(A, beta, p);
    if (rc == LD_OK) {
        /* the weighted residual sum of squares: S_yy - 2 beta.b + beta' A0 beta */
        double rss = ss->syy - W * ym * ym, quad = 0, lin = 0;
        for (int i = 0; i < p; i++) {
            lin += beta[i] * b[i];
            for (int j = 0; j < p; j++) quad += beta[i] * A0[i * p + j] * beta[j];
        }
        rss += quad - 2 * lin;
        for (int i = 0; i < p; i++) m->w[idx[i]] = beta[i];
        m->bias = ym;
        m->n = ss->n;
        m->wsum = W;
        memcpy(m->here, ss->here, sizeof m->here);
        m->resid_sd = sqrt(rss > 0 ? rss / W : 0);
    } else {
        memset(m, 0, sizeof *m);
    }
    free(A);
    return rc;
}

int surr_fit(Surrogate *m, const double *X, const double *y, const double *w, int n,
             const double *here, double lambda) {
    memset(m, 0, sizeof *m);
    if (n < 2) return LD_EINVAL;
    SurrSums *ss = surr_sums_new(here);
    if (!ss) return LD_ENOMEM;
    for (int i = 0; i < n; i++) surr_sums_add(ss, X + (size_t)i * SURR_NFEAT, y[i], w ? w[i] : 1);
    int rc = surr_fit_sums(m, ss, lambda);
    free(ss);
    return rc;
}

double surr_predict(const Surrogate *m, const double *x) {
    double r[SURR_NMODEL], v = m->bias;
    expand(m->here, x, r);
    for (int f = 0; f < SURR_NMODEL; f++)
        if (m->sd[f] > 0) v += m->w[f] * (r[f] - m->mu[f]) / m->sd[f];
    return v;
}

/* ---- earlier jobs' rows ---- */

void surr_prior_free(SurrPriorRow *rows, int n) {
    for (int i = 0; rows && i < n; i++) free(rows[i].expr);
    free(rows);
}

double surr_task_score(double m, double b, int higher_better) {
    if (!isfinite(m)) return -1;
    double d = higher_better ? m - b : b - m;
    double sc = isfinite(b) ? d / fmax(fabs(b), 1e-9) : (higher_better ? m : -m);
    return sc < -1 ? -1 : sc > 1 ? 1 : sc;
}

/* A stored row's shape: [group, task (< nt), steps, ref, n_ok, n_failed, val (null: none), expr]. */
static int prior_row_ok(const cJSON *r, int nt) {
    if (cJSON_GetArraySize(r) != 8) return 0;
    for (int i = 0; i < 6; i++)
        if (!cJSON_IsNumber(cJSON_GetArrayItem(r, i))) return 0;
    int t = cJSON_GetArrayItem(r, 1)->valueint;
    const cJSON *v = cJSON_GetArrayItem(r, 6);
    return t >= 0 && t < nt && (cJSON_IsNumber(v) || cJSON_IsNull(v)) &&
           cJSON_IsString(cJSON_GetArrayItem(r, 7));
}

int surr_prior_rows(const cJSON *prior, const uint64_t *here_hash, const int *here_steps, int nhere,
                    SurrPriorRow **out, int *n, char *err) {
    *out = NULL;
    *n = 0;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(prior, "tasks");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(prior, "rows");
    if (!cJSON_IsArray(tasks) || !cJSON_IsArray(rows))
        return ld_err(err, LD_EINVAL, "pre-screen prior: tasks and rows must be arrays");
    int nt = cJSON_GetArraySize(tasks), nr = cJSON_GetArraySize(rows);
    SurrPriorRow *o = calloc((size_t)(nr > 0 ? nr : 1), sizeof *o);
    if (!o) return ld_err(err, LD_ENOMEM, "pre-screen prior: out of memory");
    int m = 0, rc = LD_OK, i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        if (!prior_row_ok(r, nt)) {
            rc = ld_err(err, LD_EINVAL, "pre-screen prior: rows[%d]: not [group, task, steps, ref, n_ok, "
                        "n_failed, val, expr]", i);
            goto fail;
        }
        i++;
    }
    /* rows come grouped by (job, task, steps): the group's best reference, then its rows */
    r = rows->child;
    while (r) {
        const cJSON *g0 = cJSON_GetArrayItem(r, 0), *t0 = cJSON_GetArrayItem(r, 1), *s0 = cJSON_GetArrayItem(r, 2);
        const cJSON *task = cJSON_GetArrayItem(tasks, t0->valueint);
        const cJSON *hbj = cJSON_GetObjectItemCaseSensitive(task, "higher_better");
        const cJSON *hj = cJSON_GetObjectItemCaseSensitive(task, "hash");
        int hb = !cJSON_IsNumber(hbj) || hbj->valueint != 0;
        uint64_t h = cJSON_IsString(hj) ? strtoull(hj->valuestring, NULL, 16) : 0;
        const cJSON *end = r;
        double ref = NAN;
        for (; end; end = end->next) { /* the group: the same group, task and steps */
            if (cJSON_GetArrayItem(end, 0)->valuedouble != g0->valuedouble ||
                cJSON_GetArrayItem(end, 1)->valueint != t0->valueint ||
                cJSON_GetArrayItem(end, 2)->valueint != s0->valueint)
                break;
            const cJSON *v = cJSON_GetArrayItem(end, 6);
            double val = cJSON_IsNumber(v) ? v->valuedouble : NAN;
            if (cJSON_GetArrayItem(end, 3)->valueint && cJSON_GetArrayItem(end, 5)->valueint == 0 &&
                isfinite(val) && (!isfinite(ref) || (hb ? val > ref : val < ref)))
                ref = val;
        }
        double tf[SURR_NTASKF], w = SURR_PRIOR_W;
        surr_task_features(cJSON_GetObjectItemCaseSensitive(task, "spec"), s0->valueint, tf);
        for (int q = 0; q < nhere; q++)
            if (here_hash[q] == h && here_steps[q] == s0->valueint) w = 1;
        for (; isfinite(ref) && r != end; r = r->next) {
            const cJSON *v = cJSON_GetArrayItem(r, 6);
            o[m].expr = strdup(cJSON_GetArrayItem(r, 7)->valuestring);
            if (!o[m].expr) {
                rc = ld_err(err, LD_ENOMEM, "pre-screen prior: out of memory");
                goto fail;
            }
            memcpy(o[m].tf, tf, sizeof tf);
            /* a failed run (or one stopped early) scores -1, as in the engine */
            double y = cJSON_GetArrayItem(r, 5)->valueint > 0 ? -1 : surr_task_score(cJSON_IsNumber(v) ? v->valuedouble : NAN, ref, hb);
            o[m].y = y < SURR_CLAMP ? SURR_CLAMP : y;
            o[m].w = w;
            m++;
        }
        r = end;
    }
    *out = o;
    *n = m;
    return LD_OK;
fail:
    surr_prior_free(o, m);
    return rc;
}
