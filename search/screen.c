/* screen.c: fewer wasted trainings (docs/jobs.md, "Fewer wasted trainings"): the rung bar that
 * stops a candidate at a fidelity level when its result there is not as good as what the
 * candidates already promoted from that level had; and the bar a run's learning curve must stay
 * above so as not to be stopped early. Pure functions over fitness values and curves. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

static int dcmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

double screen_rung_bar(double *fit, int n, int small) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(fit[i])) fit[m++] = fit[i];
    if (m < (small ? SCREEN_RUNG_SMALL_MIN : SCREEN_RUNG_MIN)) return -INFINITY; /* too few to say what "good" is */
    qsort(fit, (size_t)m, sizeof *fit, dcmp);
    double q = (small ? SCREEN_RUNG_SMALL_QUANTILE : SCREEN_RUNG_QUANTILE) * (m - 1); /* interpolated quantile */
    int lo = (int)floor(q);
    return lo + 1 < m ? fit[lo] + (q - lo) * (fit[lo + 1] - fit[lo]) : fit[lo];
}

int screen_stop_bar(const float *ref, const int *npts, int nref, double margin, int higher_better,
                    float *bar) {
    int n = 0, have = 0; /* the points every reference has; the references with a curve */
    for (int r = 0; r < nref; r++)
        if (npts[r] > 0) {
            have++;
            if (n == 0 || npts[r] < n) n = npts[r] < EVAL_CURVE_MAX ? npts[r] : EVAL_CURVE_MAX;
        }
    if (n == 0 || !(margin > 0) || have < SCREEN_STOP_REFS) return 0;
    double sum[JOB_MAX_PANEL + 1] = {0};
    for (int i = 0; i < n; i++) {
        double best = NAN; /* the best running average */
        for (int r = 0; r < nref && r <= JOB_MAX_PANEL; r++) {
            sum[r] += npts[r] > 0 ? ref[r * EVAL_CURVE_MAX + i] : NAN;
            double v = sum[r] / (i + 1);
            if (isfinite(v) && (!isfinite(best) || (higher_better ? v > best : v < best))) best = v;
        }
        int early = i + 1 < SCREEN_STOP_FROM * n || i == n - 1; /* too soon to tell, or the end */
        bar[i] = early || !isfinite(best) ? NAN
                                          : (float)(higher_better ? best - margin * fabs(best)
                                                                  : best + margin * fabs(best));
    }
    return n;
}
