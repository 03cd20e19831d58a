/* fixednet.c: the fixed digits networks (fixednet.h): loading data/digits_fixednet.json once,
 * and the exact forward and backward of the features, the logits and the perc distance. */
#include "fixednet.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../common/fastmath.h"
#include "../common/lossd.h"
#include "mlp.h"

/* One allocation: the struct, then the weights. */
typedef struct FixedNetMem {
    FixedNet net;
    float w[];
} FixedNetMem;

void fixednet_free(FixedNet *n) { free(n); }

/* Copies the JSON array key of o (exactly count numbers) into dst. */
static int read_floats(const cJSON *o, const char *key, float *dst, int count, const char *path, char *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != count)
        return ld_err(err, LD_EINVAL, "%s: \"%s\" must be an array of %d numbers", path, key, count);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
            return ld_err(err, LD_EINVAL, "%s: \"%s\"[%d] is not a finite number", path, key, i);
        dst[i++] = (float)it->valuedouble;
    }
    return LD_OK;
}

static int read_dim(const cJSON *o, const char *key, int *v, const char *path, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 4096 || it->valuedouble != floor(it->valuedouble))
        return ld_err(err, LD_EINVAL, "%s: \"%s\" must be an integer in 1..4096", path, key);
    *v = (int)it->valuedouble;
    return LD_OK;
}

FixedNet *fixednet_load(const char *path, char *err) {
    FixedNetMem *m = NULL;
    cJSON *o = NULL;
    char *txt = NULL;
    int rc = LD_OK, d = 0, h = 0, k = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ld_err(err, LD_ENOTFOUND, "%s: cannot open the fixed digits networks (made by bench/make_fixednet.py)", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    txt = len > 0 ? malloc((size_t)len + 1) : NULL;
    if (!txt || fread(txt, 1, (size_t)len, f) != (size_t)len) {
        rc = ld_err(err, LD_EINVAL, "%s: cannot read", path);
        goto done;
    }
    txt[len] = 0;
    if (!(o = cJSON_Parse(txt))) {
        rc = ld_err(err, LD_EINVAL, "%s: not valid JSON", path);
        goto done;
    }
    if ((rc = read_dim(o, "inputs", &d, path, err)) || (rc = read_dim(o, "hidden", &h, path, err)) ||
        (rc = read_dim(o, "classes", &k, path, err)))
        goto done;
    size_t nw = (size_t)d * h + h + (size_t)h * k + k;
    if (!(m = calloc(1, sizeof *m + nw * sizeof(float)))) {
        rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    FixedNet *n = &m->net;
    float *w = m->w;
    n->d = d;
    n->h = h;
    n->k = k;
    n->w0 = w;
    n->b0 = w + (size_t)d * h;
    n->w1 = n->b0 + h;
    n->b1 = n->w1 + (size_t)h * k;
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(o, "test_accuracy");
    n->test_accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : NAN;
    if ((rc = read_floats(o, "w0", (float *)n->w0, d * h, path, err)) ||
        (rc = read_floats(o, "b0", (float *)n->b0, h, path, err)) ||
        (rc = read_floats(o, "w1", (float *)n->w1, h * k, path, err)) ||
        (rc = read_floats(o, "b1", (float *)n->b1, k, path, err)))
        goto done;
done:
    if (f) fclose(f);
    free(txt);
    cJSON_Delete(o);
    if (rc) {
        free(m);
        return NULL;
    }
    return &m->net;
}

static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;
static FixedNet *fixed_net;
static char fixed_err[LD_ERR_MAX];

static void fixed_load_once(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ld_data_dir(), FIXEDNET_FILE);
    fixed_net = fixednet_load(path, fixed_err);
}

const FixedNet *fixednet_get(char *err) {
    pthread_once(&fixed_once, fixed_load_once);
    if (!fixed_net && err) snprintf(err, LD_ERR_MAX, "%s", fixed_err);
    return fixed_net;
}

void fixednet_features(const FixedNet *n, float *h, const float *x, int B) {
    mlp_linear_forward(h, x, n->w0, n->b0, B, n->d, n->h);
    mlp_act_forward(h, h, B * n->h, ACT_TANH);
}

void fixednet_features_backward(const FixedNet *n, float *dx, const float *dh, const float *h, float *scratch,
                                int B) {
    size_t nh = (size_t)B * n->h;
    float *dpre = scratch; /* (B, h) */
    for (size_t i = 0; i < nh; i++) dpre[i] = dh[i] * (1.0f - h[i] * h[i]);
    for (int i = 0; i < B; i++) { /* dx += dpre @ w0^T */
        const float *dp = dpre + (size_t)i * n->h;
        float *dxi = dx + (size_t)i * n->d;
        for (int j = 0; j < n->d; j++) {
            const float *wj = n->w0 + (size_t)j * n->h;
            float s = 0;
            for (int f = 0; f < n->h; f++) s += dp[f] * wj[f];
            dxi[j] += s;
        }
    }
}

void fixednet_logits(const FixedNet *n, float *z, const float *h, int B) {
    mlp_linear_forward(z, h, n->w1, n->b1, B, n->h, n->k);
}

/* The classifier's features, tanh by tanh_fast (fastmath.h's fexp; vectorised in chunks of 16
 * and a tail: GCC's -O2 cost model vectorises only loops without a remainder). glibc's tanhf made
 * up ~15% of a digits autoencoder evaluation (rec_accuracy on the curve's points and both
 * splits); tanh_fast is within ~2e-7 of it, which moves a logit by ~1e-6 at most: a class changes
 * only where two logits tie that closely. perc and the Frechet distance keep tanhf
 * (fixednet_features). */
static inline float tanh_fast(float x) { /* sign(x) (1 - e) / (1 + e), e = exp(-2|x|) */
    float a = x < 0.0f ? -x : x, e = fexp(-2.0f * a), t = (1.0f - e) / (1.0f + e);
    return x < 0.0f ? -t : t;
}

static void classify_features(const FixedNet *n, float *restrict h, const float *x, int B) {
    size_t nh = (size_t)B * n->h, n16 = nh / 16 * 16;
    mlp_linear_forward(h, x, n->w0, n->b0, B, n->d, n->h);
    for (size_t c = 0; c < n16; c += 16)
        for (int l = 0; l < 16; l++) h[c + l] = tanh_fast(h[c + l]);
    for (size_t k = n16; k < nh; k++) h[k] = tanh_fast(h[k]);
}

void fixednet_classify(const FixedNet *n, int *cls, const float *x, float *scratch, int B) {
    float *h = scratch, *z = scratch + (size_t)B * n->h;
    classify_features(n, h, x, B);
    fixednet_logits(n, z, h, B);
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * n->k;
        int best = 0;
        for (int c = 1; c < n->k; c++)
            if (zi[c] > zi[best]) best = c;
        cls[i] = best;
    }
}

void fixednet_perc_forward(const FixedNet *n, float *perc, float *hx, float *hxh, const float *x, const float *xh,
                           int B) {
    fixednet_features(n, hx, x, B);
    fixednet_features(n, hxh, xh, B);
    for (int i = 0; i < B; i++) {
        const float *a = hxh + (size_t)i * n->h, *b = hx + (size_t)i * n->h;
        float s = 0;
        for (int f = 0; f < n->h; f++) s += (a[f] - b[f]) * (a[f] - b[f]);
        perc[i] = s;
    }
}

void fixednet_perc_backward(const FixedNet *n, float *dxh, const float *gperc, const float *hx, const float *hxh,
                            float *scratch, int B) {
    float *dh = scratch, *rest = scratch + (size_t)B * n->h;
    for (int i = 0; i < B; i++) {
        const float *a = hxh + (size_t)i * n->h, *b = hx + (size_t)i * n->h;
        float *d = dh + (size_t)i * n->h, g2 = 2.0f * gperc[i];
        for (int f = 0; f < n->h; f++) d[f] = g2 * (a[f] - b[f]);
    }
    fixednet_features_backward(n, dxh, dh, hxh, rest, B);
}
