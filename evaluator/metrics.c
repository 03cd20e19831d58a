/* metrics.c: the families' metrics: accuracy, balanced accuracy, macro F1 and expected
 * calibration error from logits; MSE and MAE from predictions. No allocation: class counts use
 * fixed stack tables up to METRIC_MAX_C classes (larger C falls back to one pass per class). */
#include <math.h>
#include <string.h>

#include "internal.h"

#define METRIC_MAX_C 256

static int argmax(const float *z, int C) {
    int k = 0;
    for (int j = 1; j < C; j++)
        if (z[j] > z[k]) k = j;
    return k;
}

double metric_accuracy(const float *z, const int *label, int n, int C) {
    if (n <= 0) return NAN;
    int hit = 0;
    for (int i = 0; i < n; i++) hit += argmax(z + (size_t)i * C, C) == label[i];
    return (double)hit / n;
}

/* Per class c: tp, predicted count and true count, for c in [c0, c1). */
static void class_counts(const float *z, const int *label, int n, int C, int c0, int c1, int *tp,
                         int *pred, int *truth) {
    int w = c1 - c0;
    memset(tp, 0, sizeof(int) * w);
    memset(pred, 0, sizeof(int) * w);
    memset(truth, 0, sizeof(int) * w);
    for (int i = 0; i < n; i++) {
        int k = argmax(z + (size_t)i * C, C), y = label[i];
        if (k >= c0 && k < c1) pred[k - c0]++;
        if (y >= c0 && y < c1) {
            truth[y - c0]++;
            if (k == y) tp[y - c0]++;
        }
    }
}

/* Mean over classes present in the labels of recall (mode 0) or F1 (mode 1). */
static double per_class_mean(const float *z, const int *label, int n, int C, int mode) {
    if (n <= 0) return NAN;
    int tp[METRIC_MAX_C], pred[METRIC_MAX_C], truth[METRIC_MAX_C];
    double sum = 0;
    int cnt = 0;
    for (int c0 = 0; c0 < C; c0 += METRIC_MAX_C) {
        int c1 = c0 + METRIC_MAX_C < C ? c0 + METRIC_MAX_C : C;
        class_counts(z, label, n, C, c0, c1, tp, pred, truth);
        for (int c = 0; c < c1 - c0; c++) {
            if (mode == 0) {
                if (!truth[c]) continue;
                sum += (double)tp[c] / truth[c];
                cnt++;
            } else {
                /* Classes neither present nor predicted are skipped (sklearn would warn). */
                if (!truth[c] && !pred[c]) continue;
                sum += 2.0 * tp[c] / (double)(pred[c] + truth[c]);
                cnt++;
            }
        }
    }
    return cnt ? sum / cnt : NAN;
}

double metric_balanced_accuracy(const float *z, const int *label, int n, int C) {
    return per_class_mean(z, label, n, C, 0);
}

double metric_macro_f1(const float *z, const int *label, int n, int C) {
    return per_class_mean(z, label, n, C, 1);
}

/* ECE: rows binned by top softmax probability into equal-width bins; the weighted mean of
 * |accuracy - confidence| over the bins. */
double metric_ece(const float *z, const int *label, int n, int C, int bins) {
    if (n <= 0) return NAN;
    double conf[64] = {0}, acc[64] = {0};
    int cnt[64] = {0};
    if (bins > 64) bins = 64;
    for (int i = 0; i < n; i++) {
        const float *r = z + (size_t)i * C;
        int k = argmax(r, C);
        double s = 0;
        for (int j = 0; j < C; j++) s += exp((double)r[j] - r[k]);
        double pmax = 1.0 / s;
        int b = (int)(pmax * bins);
        if (b >= bins) b = bins - 1;
        conf[b] += pmax;
        acc[b] += k == label[i];
        cnt[b]++;
    }
    double e = 0;
    for (int b = 0; b < bins; b++)
        if (cnt[b]) e += fabs(acc[b] - conf[b]) / n;
    return e;
}

double metric_mse(const float *f, const float *y, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += ((double)f[i] - y[i]) * ((double)f[i] - y[i]);
    return s / n;
}

double metric_mae(const float *f, const float *y, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)f[i] - y[i]);
    return s / n;
}

int metric_known(int family, const char *name, int *higher_better) {
    const EvalFamily *f = eval_family(family);
    for (int i = 0; f && f->metrics[i].name; i++)
        if (!strcmp(f->metrics[i].name, name)) {
            if (higher_better) *higher_better = f->metrics[i].higher_better;
            return 1;
        }
    return 0;
}
