/* mlp.c: the MLP as forward/backward layer pairs (llm.c style): small products in a
 * register-blocked kernel, large ones on OpenBLAS sgemm; the seeded initialisation and the
 * process-wide one-thread BLAS setting. */
/* The Makefile builds with -O2, where GCC 12 vectorises only trivially cheap loops; these
 * element-wise loops are a large part of a 64-row training step, so ask for full vectorisation. */
#pragma GCC optimize("tree-vectorize")

#include "mlp.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_one_thread(void) { openblas_set_num_threads(1); }
void mlp_blas_once(void) { pthread_once(&blas_once, blas_one_thread); }

/* ---- small matrix products
 * A training step multiplies 64x64 and 64x10 matrices, where OpenBLAS spends as long packing and
 * dispatching as multiplying. gemm_small is a register-blocked kernel written with GCC's generic
 * vector extension (8 floats; GCC maps it to AVX/AVX-512/SSE as the target allows): 4 rows x 32
 * columns of accumulators, B's rows streamed from L1. Products larger than SMALL_FLOPS, or with
 * K beyond the packing buffer, go to OpenBLAS sgemm. */

typedef float vf8 __attribute__((vector_size(32)));
typedef float vf8u __attribute__((vector_size(32), aligned(4)));

#ifndef KR
#define KR 6 /* rows of C per block: 6 x 4 accumulators + 4 B vectors fit 32 registers */
#endif
#ifndef KV
#define KV 4 /* vectors of 8 columns per block */
#endif
#define SMALL_MAX_K 512
#define SMALL_FLOPS (2.0 * 256 * 256 * 256)
#define SMALL_MAX_T 16384 /* floats of a transposed weight matrix kept on the stack */

/* One block: R rows (1 or 4) x NV vectors (1 or 4) of C. a(r, k) = a[r*ars + k*acs]; b rows of
 * ldb floats; the last vector holds wlast (1..8) valid columns. mode 0: C = A@B (+ bias),
 * mode 1: C += A@B. */
static inline __attribute__((always_inline)) void kern(const int R, const int NV, float *c, int ldc,
                                                       const float *a, int ars, int acs, const float *b,
                                                       int ldb, int K, const float *bias, int mode,
                                                       int wlast) {
    vf8 acc[KR][KV];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            int w = v == NV - 1 ? wlast : 8;
            const float *src = mode ? c + (size_t)r * ldc + 8 * v : bias ? bias + 8 * v : NULL;
            if (!src) acc[r][v] = (vf8){0};
            else if (w == 8) acc[r][v] = *(const vf8u *)src;
            else {
                vf8 t = {0};
                for (int j = 0; j < w; j++) t[j] = src[j];
                acc[r][v] = t;
            }
        }
    for (int k = 0; k < K; k++) {
        vf8 bv[KV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = *(const vf8u *)(b + (size_t)k * ldb + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            float as = a[(size_t)r * ars + (size_t)k * acs];
            vf8 av = {as, as, as, as, as, as, as, as};
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += av * bv[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            int w = v == NV - 1 ? wlast : 8;
            float *dst = c + (size_t)r * ldc + 8 * v;
            if (w == 8) *(vf8u *)dst = acc[r][v];
            else
                for (int j = 0; j < w; j++) dst[j] = acc[r][v][j];
        }
}

/* C (M,N) = or += A (M,K) @ B (K,N) (+ bias (N) when mode 0). a(i, k) = a[i*ars + k*acs]. */
static void gemm_small(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                       const float *bias, int M, int N, int K, int mode) {
    int n = 0;
    for (; n + 8 * KV <= N; n += 8 * KV) {
        int i = 0;
        for (; i + KR <= M; i += KR)
            kern(KR, KV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb, K,
                 bias ? bias + n : NULL, mode, 8);
        for (; i < M; i++)
            kern(1, KV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb, K,
                 bias ? bias + n : NULL, mode, 8);
    }
    for (; n + 8 <= N; n += 8) {
        int i = 0;
        for (; i + KR <= M; i += KR)
            kern(KR, 1, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb, K,
                 bias ? bias + n : NULL, mode, 8);
        for (; i < M; i++)
            kern(1, 1, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb, K,
                 bias ? bias + n : NULL, mode, 8);
    }
    if (n < N) {
        /* The last few columns: zero-padded to one vector, so the kernel reads no further. */
        float tb[SMALL_MAX_K * 8] __attribute__((aligned(32)));
        int w = N - n;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < 8; j++) tb[k * 8 + j] = j < w ? b[(size_t)k * ldb + n + j] : 0.0f;
        int i = 0;
        for (; i + KR <= M; i += KR)
            kern(KR, 1, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, tb, 8, K,
                 bias ? bias + n : NULL, mode, w);
        for (; i < M; i++)
            kern(1, 1, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, tb, 8, K,
                 bias ? bias + n : NULL, mode, w);
    }
}

#ifndef NO_SMALL
static int use_small(int M, int N, int K) { return K <= SMALL_MAX_K && 2.0 * M * N * K <= SMALL_FLOPS; }
#else
static int use_small(int M, int N, int K) { return 0; }
#endif

/* out (B,OC) = inp (B,C) @ w (C,OC) + b (OC) */
void mlp_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C, int OC) {
    if (use_small(B, OC, C)) {
        gemm_small(out, OC, inp, C, 1, w, OC, b, B, OC, C, 0);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OC, C, 1.0f, inp, C, w, OC, 0.0f, out, OC);
    if (b)
        for (int i = 0; i < B; i++) {
            float *o = out + (size_t)i * OC;
            for (int j = 0; j < OC; j++) o[j] += b[j];
        }
}

/* dinp (B,C) = dout (B,OC) @ w^T (OC,C); dw (C,OC) += inp^T (C,B) @ dout (B,OC); db += colsum */
void mlp_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int C, int OC) {
    if (dinp) {
        if (use_small(B, C, OC) && (size_t)C * OC <= SMALL_MAX_T) {
            /* w^T as rows, so the product streams contiguous rows like the forward. */
            float wt[SMALL_MAX_T] __attribute__((aligned(32)));
            for (int c = 0; c < C; c++)
                for (int j = 0; j < OC; j++) wt[(size_t)j * C + c] = w[(size_t)c * OC + j];
            gemm_small(dinp, C, dout, OC, 1, wt, C, NULL, B, C, OC, 0);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, C, OC, 1.0f, dout, OC, w, OC, 0.0f, dinp, C);
        }
    }
    if (use_small(C, OC, B))
        gemm_small(dw, OC, inp, 1, C, dout, OC, NULL, C, OC, B, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, B, 1.0f, inp, C, dout, OC, 1.0f, dw, OC);
    if (db)
        for (int i = 0; i < B; i++) {
            const float *d = dout + (size_t)i * OC;
            for (int j = 0; j < OC; j++) db[j] += d[j];
        }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* out (N) = act(inp (N)) */
void mlp_act_forward(float *out, const float *inp, int N, int act) {
    switch (act) {
    case ACT_RELU:
        for (int i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
        break;
    case ACT_TANH:
        for (int i = 0; i < N; i++) out[i] = tanhf(inp[i]);
        break;
    default:
        for (int i = 0; i < N; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
        }
        break;
    }
}

/* dinp (N) = dout (N) * act'(inp); out = act(inp) */
void mlp_act_backward(float *dinp, const float *dout, const float *inp, const float *out, int N, int act) {
    switch (act) {
    case ACT_RELU:
        /* Branch-free: half the signs are random, a branch here mispredicts constantly. */
        for (int i = 0; i < N; i++) dinp[i] = dout[i] * (float)(out[i] > 0);
        break;
    case ACT_TANH:
        for (int i = 0; i < N; i++) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
        break;
    default:
        for (int i = 0; i < N; i++) {
            float x = inp[i];
            float th = tanhf(GELU_K * (x + GELU_A * x * x * x));
            float dth = (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
            dinp[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * x * dth);
        }
        break;
    }
}

size_t mlp_param_count(const ModelSpec *s, int din, int dout) {
    size_t n = 0;
    int prev = din;
    for (int l = 0; l <= s->nhidden; l++) {
        int next = l < s->nhidden ? s->hidden[l] : dout;
        n += (size_t)prev * next + next;
        prev = next;
    }
    return n;
}

void mlp_bind(Mlp *m, const ModelSpec *s, int din, int dout, float *params) {
    memset(m, 0, sizeof *m);
    m->nlin = s->nhidden + 1;
    m->act = s->act;
    m->dim[0] = din;
    for (int l = 0; l < s->nhidden; l++) m->dim[l + 1] = s->hidden[l];
    m->dim[m->nlin] = dout;
    m->nparams = mlp_param_count(s, din, dout);
    mlp_bind_like(m, m, params);
}

void mlp_bind_like(Mlp *view, const Mlp *m, float *params) {
    if (view != m) *view = *m;
    view->params = params;
    float *p = params;
    for (int l = 0; l < m->nlin; l++) {
        view->w[l] = p;
        p += (size_t)m->dim[l] * m->dim[l + 1];
        view->b[l] = p;
        p += m->dim[l + 1];
    }
}

/* Normal samples in pairs (both halves of Box-Muller, in float): initialisation runs once per
 * evaluation, and drawing one double normal per weight cost as much as ten training steps. */
static void fill_normal(float *w, size_t n, float sd, LdRng *r) {
    for (size_t i = 0; i < n; i += 2) {
        float u1 = (float)((rng_next(r) >> 40) + 1) * 0x1.0p-24f; /* (0, 1] */
        float u2 = (float)(rng_next(r) >> 40) * 0x1.0p-24f;
        float rad = sd * sqrtf(-2.0f * logf(u1)), th = 6.2831853f * u2;
        w[i] = rad * cosf(th);
        if (i + 1 < n) w[i + 1] = rad * sinf(th);
    }
}

void mlp_init(Mlp *m, uint64_t seed) {
    LdRng r;
    rng_seed(&r, ld_mix64(seed, 0x1a17));
    for (int l = 0; l < m->nlin; l++) {
        int fin = m->dim[l], fout = m->dim[l + 1];
        int last = l == m->nlin - 1;
        float sd = (!last && m->act == ACT_RELU) ? sqrtf(2.0f / fin) : sqrtf(2.0f / (fin + fout));
        fill_normal(m->w[l], (size_t)fin * fout, sd, &r);
        memset(m->b[l], 0, sizeof(float) * fout);
    }
}

size_t mlp_acts_floats(const Mlp *m, int B) {
    size_t n = 0;
    for (int l = 0; l < m->nlin; l++) n += 3 * (((size_t)B * m->dim[l + 1] + 15) & ~(size_t)15);
    return n;
}

void mlp_acts_bind(MlpActs *a, const Mlp *m, int B, float *mem) {
    memset(a, 0, sizeof *a);
    a->maxB = B;
    for (int l = 0; l < m->nlin; l++) {
        size_t sz = ((size_t)B * m->dim[l + 1] + 15) & ~(size_t)15;
        a->pre[l] = mem;
        mem += sz;
        a->post[l] = mem;
        mem += sz;
        a->dpost[l] = mem;
        mem += sz;
    }
}

const float *mlp_forward(const Mlp *m, MlpActs *a, const float *x, int B) {
    const float *in = x;
    for (int l = 0; l < m->nlin; l++) {
        int C = m->dim[l], OC = m->dim[l + 1];
        if (l == m->nlin - 1) {
            mlp_linear_forward(a->post[l], in, m->w[l], m->b[l], B, C, OC);
            return a->post[l];
        }
        mlp_linear_forward(a->pre[l], in, m->w[l], m->b[l], B, C, OC);
        mlp_act_forward(a->post[l], a->pre[l], B * OC, m->act);
        in = a->post[l];
    }
    return in;
}

void mlp_backward(const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz, int B) {
    const float *dout = dz;
    for (int l = m->nlin - 1; l >= 0; l--) {
        int C = m->dim[l], OC = m->dim[l + 1];
        const float *in = l > 0 ? a->post[l - 1] : x;
        float *dinp = l > 0 ? a->dpost[l - 1] : NULL;
        mlp_linear_backward(dinp, g->w[l], g->b[l], dout, in, m->w[l], B, C, OC);
        if (l > 0) {
            /* From the activation's output gradient to its input gradient, in place. */
            mlp_act_backward(dinp, dinp, a->pre[l - 1], a->post[l - 1], B * C, m->act);
            dout = dinp;
        }
    }
}
