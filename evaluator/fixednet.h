/* fixednet.h: the fixed digits networks of the generative family: a small digits classifier
 * (64 pixels in [0, 1] -> 32 tanh features -> 10 class logits) trained by lossd itself and
 * shipped in data/digits_fixednet.json (made by bench/make_fixednet.py). Its hidden layer is
 * the fixed feature network of the perc term and of the GAN's Frechet distance; its output is
 * the fixed classifier of rec_accuracy and the GAN's class coverage. Never trained further. */
#ifndef EVAL_FIXEDNET_H
#define EVAL_FIXEDNET_H

#include <stddef.h>

#define FIXEDNET_FILE "digits_fixednet.json" /* in ld_data_dir() (LOSSD_DATADIR) */

typedef struct FixedNet {
    int d, h, k;                    /* inputs (64 pixels in [0, 1]), features (32), classes (10) */
    const float *w0, *b0, *w1, *b1; /* w0 (d, h), b0 (h), w1 (h, k), b1 (k); out = in @ w + b */
    double test_accuracy;           /* on the digits test split, as the script recorded it */
} FixedNet;

/* The networks, loaded once per process (thread-safe; later calls return the same pointer,
 * read-only, living until exit), or NULL with err naming the file and the problem. */
const FixedNet *fixednet_get(char *err);
/* The same from a file of that format (for tests); NULL with err. The returned net is owned
 * (fixednet_free). */
FixedNet *fixednet_load(const char *path, char *err);
void fixednet_free(FixedNet *n);

/* h (B, h) = tanh(x (B, d) @ w0 + b0): the features. */
void fixednet_features(const FixedNet *n, float *h, const float *x, int B);
/* dx (B, d) += (dh (B, h) * (1 - h^2)) @ w0^T: back through the features, h as the forward gave
 * it. scratch: B * h floats. */
void fixednet_features_backward(const FixedNet *n, float *dx, const float *dh, const float *h, float *scratch,
                                int B);
/* z (B, k) = h (B, h) @ w1 + b1: the class logits from the features. */
void fixednet_logits(const FixedNet *n, float *z, const float *h, int B);
/* cls (B): the classifier's class of each row of x (B, d). scratch: B * (h + k) floats. */
void fixednet_classify(const FixedNet *n, int *cls, const float *x, float *scratch, int B);

/* perc (B): sum_f (h(xh) - h(x))_f^2, the squared feature distance, keeping the features of x
 * and xh in hx and hxh (B, h) for the backward. */
void fixednet_perc_forward(const FixedNet *n, float *perc, float *hx, float *hxh, const float *x, const float *xh,
                           int B);
/* dxh (B, d) += d/dxh of sum_i gperc_i perc_i (x held fixed). scratch: 2 * B * h floats. */
void fixednet_perc_backward(const FixedNet *n, float *dxh, const float *gperc, const float *hx, const float *hxh,
                            float *scratch, int B);

#endif
