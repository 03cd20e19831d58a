/* stable.c: the rules that keep an unstable candidate from winning (docs/jobs.md, "Stable
 * winners"): which seeds of a final re-evaluation collapsed, and when the final re-evaluation
 * adds seeds. Pure functions over one candidate's metric values, one per seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int dcmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Median of the n values of v (reordered). */
static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, dcmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int stable_collapsed(const double *v, int n, int higher_better, int *which) {
    double fin[STABLE_MAX_SEEDS], dev[STABLE_MAX_SEEDS];
    int nf = 0, count = 0;
    if (n > STABLE_MAX_SEEDS) n = STABLE_MAX_SEEDS;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) fin[nf++] = v[i];
    double med = 0, rsd = 0;
    if (nf >= 3) {
        med = median_of(fin, nf);
        for (int i = 0; i < nf; i++) dev[i] = fabs(fin[i] - med);
        rsd = 1.4826 * median_of(dev, nf); /* the standard deviation, were the seeds normal */
    }
    for (int i = 0; i < n; i++) {
        int bad;
        if (!isfinite(v[i])) {
            bad = 1; /* a failed run */
        } else if (nf < 3) {
            bad = 0; /* too few runs to call one of them an outlier */
        } else {
            double worse = higher_better ? med - v[i] : v[i] - med;
            bad = worse > STABLE_COLLAPSE_REL * fabs(med) && worse > STABLE_COLLAPSE_RSD * rsd;
        }
        if (which) which[i] = bad;
        count += bad;
    }
    return count;
}

int stable_needs_more(const double *cand, const double *base, int n, int higher_better) {
    if (stable_collapsed(cand, n, higher_better, NULL) > 0) return 1;
    double mc, sc, mb, sb;
    ld_mean_sd(cand, n, &mc, &sc);
    ld_mean_sd(base, n, &mb, &sb);
    if (!isfinite(mc)) return 0;
    if (!isfinite(sb)) sb = 0; /* no finite baseline run: any spread of the candidate's is more */
    return sc > STABLE_MORE_VS_BASE * sb && sc > STABLE_MORE_REL * fabs(mc);
}

/* The 0.975 quantile of Student's t with df degrees of freedom: the t whose two-sided p is 0.05,
 * by bisection on search_student_p (decreasing in t). */
static double t975(int df) {
    double lo = 0, hi = 1000;
    for (int i = 0; i < 80; i++) {
        double mid = 0.5 * (lo + hi);
        if (search_student_p(mid, df) > 0.05) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

const char *stable_ci95(const double *d, int n, double *lo, double *hi) {
    *lo = *hi = NAN;
    if (n < 2) return "within noise";
    double m, sd;
    ld_mean_sd(d, n, &m, &sd);
    double half = t975(n - 1) * sd / sqrt((double)n);
    *lo = m - half;
    *hi = m + half;
    return *lo > 0 ? "better" : *hi < 0 ? "worse" : "within noise";
}

double stable_lower_bound(const double *d, int n) {
    double m, sd;
    ld_mean_sd(d, n, &m, &sd);
    if (n < 2 || !isfinite(sd)) return m;
    return m - STABLE_LCB_SE * sd / sqrt((double)n);
}

int stable_within_noise(const double *d, int n) {
    double m, sd;
    ld_mean_sd(d, n, &m, &sd);
    return m > 0 && !(stable_lower_bound(d, n) > 0);
}
