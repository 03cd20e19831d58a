/* screen.c: fewer wasted trainings (docs/jobs.md, "Fewer wasted trainings"): the rung bar that
 * stops a candidate at a fidelity level when its result there is not as good as what the
 * candidates already promoted from that level had. Pure functions over fitness values. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

static int dcmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

double screen_rung_bar(double *fit, int n) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(fit[i])) fit[m++] = fit[i];
    if (m < SCREEN_RUNG_MIN) return -INFINITY; /* too few promoted to say what "good" is */
    qsort(fit, (size_t)m, sizeof *fit, dcmp);
    double q = SCREEN_RUNG_QUANTILE * (m - 1); /* interpolated quantile */
    int lo = (int)floor(q);
    return lo + 1 < m ? fit[lo] + (q - lo) * (fit[lo + 1] - fit[lo]) : fit[lo];
}
