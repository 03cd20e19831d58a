/* surrogate.c: the learned pre-screen (docs/jobs.md, "Fewer wasted trainings"): ridge regression
 * from a candidate's features (its tree's shape and its gradient signature against the
 * references') to its fitness at the first fidelity level, fit at a round boundary to the
 * candidates already trained, so that a new candidate predicted clearly worse than the median is
 * not trained. Pure functions over numbers: the engine decides what to fit and when. */
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
                   double *x) {
    memset(x, 0, SURR_NFEAT * sizeof *x);
    int maxd = 0;
    walk(e, 1, x, &maxd);
    x[SURR_F_SIZE] = expr_size(e);
    x[SURR_F_DEPTH] = maxd;
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

int surr_fit(Surrogate *m, const double *X, const double *y, int n, double lambda) {
    enum { P = SURR_NFEAT };
    memset(m, 0, sizeof *m);
    if (n < 2) return LD_EINVAL;
    double *A = calloc((size_t)P * P, sizeof *A);
    if (!A) return LD_ENOMEM;
    double ym = 0;
    for (int i = 0; i < n; i++) ym += y[i] / n;
    for (int f = 0; f < P; f++) {
        double mu = 0, v = 0;
        for (int i = 0; i < n; i++) mu += X[(size_t)i * P + f] / n;
        for (int i = 0; i < n; i++) v += (X[(size_t)i * P + f] - mu) * (X[(size_t)i * P + f] - mu) / n;
        m->mu[f] = mu;
        m->sd[f] = v > 1e-12 ? sqrt(v) : 0; /* a constant feature: left out */
    }
    /* (Z^T Z + lambda n I) w = Z^T (y - mean), Z the standardised features */
    double b[P] = {0};
    for (int i = 0; i < n; i++) {
        double z[P];
        for (int f = 0; f < P; f++) z[f] = m->sd[f] > 0 ? (X[(size_t)i * P + f] - m->mu[f]) / m->sd[f] : 0;
        for (int f = 0; f < P; f++) {
            b[f] += z[f] * (y[i] - ym);
            for (int g = 0; g <= f; g++) A[f * P + g] += z[f] * z[g];
        }
    }
    for (int f = 0; f < P; f++) {
        for (int g = 0; g < f; g++) A[g * P + f] = A[f * P + g];
        A[f * P + f] += lambda * n;
    }
    int rc = cholesky_solve(A, b, P);
    free(A);
    if (rc != LD_OK) return rc;
    memcpy(m->w, b, sizeof b);
    m->bias = ym;
    m->n = n;
    double ss = 0;
    for (int i = 0; i < n; i++) {
        double r = y[i] - surr_predict(m, X + (size_t)i * P);
        ss += r * r;
    }
    m->resid_sd = sqrt(ss / n);
    return LD_OK;
}

double surr_predict(const Surrogate *m, const double *x) {
    double v = m->bias;
    for (int f = 0; f < SURR_NFEAT; f++)
        if (m->sd[f] > 0) v += m->w[f] * (x[f] - m->mu[f]) / m->sd[f];
    return v;
}
