/* mlp.c: the MLP as forward/backward layer pairs (llm.c style): small products in a
 * register-blocked kernel (AVX-512 when the CPU has it, 8-wide vectors otherwise) with the bias,
 * relu and relu-mask fused into its stores, large ones on OpenBLAS sgemm; the seeded
 * initialisation and the process-wide one-thread BLAS setting. */
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

/* ---- the AVX-512 kernel
 * On a CPU with full-width AVX-512 FMA units (this project's Zen 5 machine: 166 GFLOP/s with 16-wide
 * FMAs against 83 with 8-wide, the rate the Debian OpenBLAS Haswell kernel tops out at) the
 * products of a step run at twice the 8-wide kernel's speed. Blocks of up to 8 rows x 4 vectors of
 * 16 columns; the columns' tail is a load/store mask, so N = 10 (the output layer) is one masked
 * vector and nothing is read past a row. The epilogue is applied as the block is stored, so the
 * bias, relu and the relu mask of the backward cost no extra pass over memory. Chosen at run time
 * (__builtin_cpu_supports); the 8-wide kernel above is the fallback. */

/* What a product does with its result, block by block. */
enum { EP_STORE, /* C = A@B (+ bias) */
       EP_ADD,   /* C += A@B */
       EP_RELU,  /* C = max(A@B + bias, 0) */
       EP_MASK   /* C = A@B where aux (same layout as C) > 0, else 0: relu's backward */
};

#ifndef NO_AVX512
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#include <immintrin.h>

static inline __attribute__((always_inline)) void kern16(const int R, const int NV, float *c, int ldc,
                                                         const float *a, int ars, int acs,
                                                         const float *b, int ldb, int K,
                                                         const float *bias, const int ep,
                                                         const float *aux, __mmask16 last) {
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __mmask16 mk = v == NV - 1 ? last : 0xffff;
            if (ep == EP_ADD) acc[r][v] = _mm512_maskz_loadu_ps(mk, c + (size_t)r * ldc + 16 * v);
            else if (bias) acc[r][v] = _mm512_maskz_loadu_ps(mk, bias + 16 * v);
            else acc[r][v] = _mm512_setzero_ps();
        }
    for (int k = 0; k < K; k++) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? last : 0xffff, b + (size_t)k * ldb + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[(size_t)r * ars + (size_t)k * acs]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __mmask16 mk = v == NV - 1 ? last : 0xffff;
            float *dst = c + (size_t)r * ldc + 16 * v;
            __m512 x = acc[r][v];
            if (ep == EP_RELU) x = _mm512_max_ps(x, _mm512_setzero_ps());
            if (ep == EP_MASK) {
                __m512 g = _mm512_maskz_loadu_ps(mk, aux + (size_t)r * ldc + 16 * v);
                x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_GT_OQ), x);
            }
            _mm512_mask_storeu_ps(dst, mk, x);
        }
}

/* All row blocks of one column panel of NV vectors: RB rows at a time, then 4, 2, 1. */
#define PANEL16(NV, RB)                                                                             \
    do {                                                                                            \
        int i = 0;                                                                                  \
        for (; i + (RB) <= M; i += (RB))                                                            \
            kern16(RB, NV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb, \
                   K, bn, ep, aux ? aux + (size_t)i * ldc + n : NULL, last);                        \
        if (M - i >= 4) {                                                                           \
            kern16(4, NV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb,  \
                   K, bn, ep, aux ? aux + (size_t)i * ldc + n : NULL, last);                        \
            i += 4;                                                                                 \
        }                                                                                           \
        if (M - i >= 2) {                                                                           \
            kern16(2, NV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb,  \
                   K, bn, ep, aux ? aux + (size_t)i * ldc + n : NULL, last);                        \
            i += 2;                                                                                 \
        }                                                                                           \
        if (M - i >= 1)                                                                             \
            kern16(1, NV, c + (size_t)i * ldc + n, ldc, a + (size_t)i * ars, ars, acs, b + n, ldb,  \
                   K, bn, ep, aux ? aux + (size_t)i * ldc + n : NULL, last);                        \
    } while (0)

#ifndef KR16
#define KR16 6 /* rows per block of 4 vectors: 24 accumulators + 4 B vectors of 32 registers */
#endif

static inline __attribute__((always_inline)) void gemm16_ep(float *c, int ldc, const float *a, int ars,
                                                            int acs, const float *b, int ldb,
                                                            const float *bias, int M, int N, int K,
                                                            const int ep, const float *aux) {
    for (int n = 0; n < N; n += 64) {
        int w = N - n < 64 ? N - n : 64, nv = (w + 15) / 16;
        __mmask16 last = (__mmask16)(w % 16 ? (1u << (w % 16)) - 1 : 0xffff);
        const float *bn = bias ? bias + n : NULL;
        switch (nv) {
        case 4: PANEL16(4, KR16); break;
        case 3: PANEL16(3, 8); break;
        case 2: PANEL16(2, 8); break;
        default: PANEL16(1, 8); break;
        }
    }
}

/* One copy per epilogue, so the epilogue's branches fold away inside the blocks. */
static void gemm16(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                   const float *bias, int M, int N, int K, int ep, const float *aux) {
    switch (ep) {
    case EP_STORE: gemm16_ep(c, ldc, a, ars, acs, b, ldb, bias, M, N, K, EP_STORE, NULL); break;
    case EP_ADD: gemm16_ep(c, ldc, a, ars, acs, b, ldb, NULL, M, N, K, EP_ADD, NULL); break;
    case EP_RELU: gemm16_ep(c, ldc, a, ars, acs, b, ldb, bias, M, N, K, EP_RELU, NULL); break;
    default: gemm16_ep(c, ldc, a, ars, acs, b, ldb, NULL, M, N, K, EP_MASK, aux); break;
    }
}

/* dst (cc rows of ldd) = src (rr rows of lds, cc columns)^T, rr and cc at most 16: one tile in
 * registers (masked loads and stores at the edges): pairs, quads, then 128-bit lanes. */
static void transpose16(float *dst, int ldd, const float *src, int lds, int rr, int cc) {
    __m512 r[16], t[16];
    __mmask16 cm = (__mmask16)((1u << cc) - 1), rm = (__mmask16)((1u << rr) - 1);
    for (int i = 0; i < 16; i++) r[i] = i < rr ? _mm512_maskz_loadu_ps(cm, src + (size_t)i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
            t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
    for (int i = 0; i < cc; i++) _mm512_mask_storeu_ps(dst + (size_t)i * ldd, rm, r[i]);
}
#pragma GCC pop_options

static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#else
static void transpose16(float *dst, int ldd, const float *src, int lds, int rr, int cc) {}
static void gemm16(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                   const float *bias, int M, int N, int K, int ep, const float *aux) {}
static int have_avx512(void) { return 0; }
#endif

/* C (M,N) from A (M,K) @ B (K,N) per the epilogue; bias only with EP_STORE / EP_RELU, aux only
 * with EP_MASK. Small products only (use_small). */
static void gemm(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                 const float *bias, int M, int N, int K, int ep, const float *aux) {
    if (have_avx512()) {
        gemm16(c, ldc, a, ars, acs, b, ldb, bias, M, N, K, ep, aux);
        return;
    }
    gemm_small(c, ldc, a, ars, acs, b, ldb, ep == EP_ADD ? NULL : bias, M, N, K, ep == EP_ADD);
    if (ep == EP_RELU || ep == EP_MASK)
        for (int i = 0; i < M; i++) {
            float *o = c + (size_t)i * ldc;
            const float *g = ep == EP_MASK ? aux + (size_t)i * ldc : o;
            for (int j = 0; j < N; j++) o[j] = g[j] > 0.0f ? o[j] : 0.0f;
        }
}

#ifndef NO_SMALL
static int use_small(int M, int N, int K) { return K <= SMALL_MAX_K && 2.0 * M * N * K <= SMALL_FLOPS; }
#else
static int use_small(int M, int N, int K) { return 0; }
#endif

/* dst (cols, rows) = src (rows, cols)^T. A weight matrix's transpose is part of every backward
 * (see linear_backward); element by element its strided stores cost as long as the 64x64x32
 * product it feeds, so tiles of up to 16 x 16 move through registers (AVX-512; else one by one).
 * Pure data movement: the values are the same either way. */
static void transpose(float *restrict dst, const float *restrict src, int rows, int cols) {
    if (!have_avx512()) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
        return;
    }
    for (int i = 0; i < rows; i += 16)
        for (int j = 0; j < cols; j += 16)
            transpose16(dst + (size_t)j * rows + i, rows, src + (size_t)i * cols + j, cols,
                        rows - i < 16 ? rows - i : 16, cols - j < 16 ? cols - j : 16);
}

/* out (B,OC) = inp (B,C) @ w (C,OC) + b (OC), then relu when ep is EP_RELU */
static void linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C,
                           int OC, int ep) {
    if (use_small(B, OC, C)) {
        gemm(out, OC, inp, C, 1, w, OC, b, B, OC, C, ep, NULL);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OC, C, 1.0f, inp, C, w, OC, 0.0f, out, OC);
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * OC;
        if (b)
            for (int j = 0; j < OC; j++) o[j] += b[j];
        if (ep == EP_RELU)
            for (int j = 0; j < OC; j++) o[j] = o[j] > 0.0f ? o[j] : 0.0f;
    }
}

void mlp_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C, int OC) {
    linear_forward(out, inp, w, b, B, C, OC, EP_STORE);
}

/* dinp (B,C) = dout (B,OC) @ w^T (OC,C), masked by relu_out > 0 when relu_out is given;
 * dw (C,OC) = or += inp^T (C,B) @ dout (B,OC) (add: EP_ADD, else EP_STORE); db likewise with
 * the column sums of dout. */
static void linear_backward(float *dinp, const float *relu_out, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, int B, int C, int OC, int add) {
    float wt[SMALL_MAX_T] __attribute__((aligned(64))); /* w^T, then dw^T */
    if (dinp) {
        if (use_small(B, C, OC) && (size_t)C * OC <= SMALL_MAX_T) {
            /* w^T as rows, so the product streams contiguous rows like the forward. */
            transpose(wt, w, C, OC);
            gemm(dinp, C, dout, OC, 1, wt, C, NULL, B, C, OC, relu_out ? EP_MASK : EP_STORE, relu_out);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, C, OC, 1.0f, dout, OC, w, OC, 0.0f, dinp, C);
            if (relu_out)
                for (size_t i = 0; i < (size_t)B * C; i++) dinp[i] = relu_out[i] > 0.0f ? dinp[i] : 0.0f;
        }
    }
    if (!add && OC < 16 && C >= 32 && (size_t)C * OC <= SMALL_MAX_T && use_small(OC, C, B) && have_avx512()) {
        /* A narrow layer (the output layer: OC = 10) fills 10 of a vector's 16 lanes, and each
         * FMA needs its own broadcast load. dw^T (OC,C) = dout^T @ inp has full vectors and half
         * the loads per FMA (0.83 -> ~0.5 us for 64x64x10), then a transposed copy. The sums run
         * over the batch in the same order, so dw is bit-identical. */
        gemm(wt, C, dout, 1, OC, inp, C, NULL, OC, C, B, EP_STORE, NULL);
        transpose(dw, wt, OC, C);
    } else if (use_small(C, OC, B))
        gemm(dw, OC, inp, 1, C, dout, OC, NULL, C, OC, B, add ? EP_ADD : EP_STORE, NULL);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, B, 1.0f, inp, C, dout, OC, add ? 1.0f : 0.0f,
                    dw, OC);
    if (db && use_small(1, OC, B)) {
        /* Column sums as the product 1 (1,B) @ dout: the sums stay in registers (a loop adding
         * into db stalls on store-to-load forwarding); the order of the additions is the same. */
        static const float one = 1.0f;
        gemm(db, OC, &one, 0, 0, dout, OC, NULL, 1, OC, B, add ? EP_ADD : EP_STORE, NULL);
    } else if (db) {
        if (!add) memset(db, 0, sizeof(float) * (size_t)OC);
        for (int i = 0; i < B; i++) {
            const float *d = dout + (size_t)i * OC;
            for (int j = 0; j < OC; j++) db[j] += d[j];
        }
    }
}

/* dinp (B,C) = dout (B,OC) @ w^T (OC,C); dw (C,OC) += inp^T (C,B) @ dout (B,OC); db += colsum */
void mlp_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int C, int OC) {
    linear_backward(dinp, NULL, dw, db, dout, inp, w, B, C, OC, 1);
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
            linear_forward(a->post[l], in, m->w[l], m->b[l], B, C, OC, EP_STORE);
            return a->post[l];
        }
        if (m->act == ACT_RELU) {
            /* relu's backward needs only its output: pre is not written. */
            linear_forward(a->post[l], in, m->w[l], m->b[l], B, C, OC, EP_RELU);
        } else {
            linear_forward(a->pre[l], in, m->w[l], m->b[l], B, C, OC, EP_STORE);
            mlp_act_forward(a->post[l], a->pre[l], B * OC, m->act);
        }
        in = a->post[l];
    }
    return in;
}

void mlp_backward(const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz, int B) {
    mlp_backward_dx(m, a, g, x, dz, NULL, B);
}

void mlp_backward_dx(const Mlp *m, MlpActs *a, const Mlp *g, const float *x, const float *dz, float *dx, int B) {
    const float *dout = dz;
    for (int l = m->nlin - 1; l >= 0; l--) {
        int C = m->dim[l], OC = m->dim[l + 1];
        const float *in = l > 0 ? a->post[l - 1] : x;
        float *dinp = l > 0 ? a->dpost[l - 1] : dx;
        int relu = l > 0 && m->act == ACT_RELU;
        linear_backward(dinp, relu ? a->post[l - 1] : NULL, g->w[l], g->b[l], dout, in, m->w[l], B, C, OC, 0);
        if (l > 0) {
            /* From the activation's output gradient to its input gradient, in place. */
            if (!relu) mlp_act_backward(dinp, dinp, a->pre[l - 1], a->post[l - 1], B * C, m->act);
            dout = dinp;
        }
    }
}

size_t mlp_grad_penalty_floats(const Mlp *m, int B) {
    int W = 0;
    for (int l = 0; l <= m->nlin; l++) W = m->dim[l] > W ? m->dim[l] : W;
    return (size_t)B * (1 + m->dim[0] + 2 * (size_t)W);
}

double mlp_grad_penalty(const Mlp *m, MlpActs *a, const Mlp *scratch, const Mlp *g, const float *x, int B,
                        float coef, float *buf) {
    int L = m->nlin, P = m->dim[0], W = 0;
    for (int l = 0; l <= L; l++) W = m->dim[l] > W ? m->dim[l] : W;
    float *ones = buf, *gx = ones + B, *c = gx + (size_t)B * P, *next = c + (size_t)B * W;
    for (int i = 0; i < B; i++) ones[i] = 1.0f;
    mlp_forward(m, a, x, B);
    /* gx = d m / d x; a->dpost[l] = d m / d (layer l+1's input pre-activation), masked */
    mlp_backward_dx(m, a, scratch, x, ones, gx, B);
    double pen = 0;
    for (int i = 0; i < B; i++) { /* c = u = d penalty / d gx */
        const float *gi = gx + (size_t)i * P;
        double n2 = 0;
        for (int p = 0; p < P; p++) n2 += (double)gi[p] * gi[p];
        double n = sqrt(n2), k = n > 0 ? 2.0 * coef / B * (n - 1.0) / n : 0.0;
        pen += (n - 1.0) * (n - 1.0);
        for (int p = 0; p < P; p++) c[(size_t)i * P + p] = (float)(k * gi[p]);
    }
    /* gx = dout_0 @ w0^T with dout_l = (dout_{l+1} @ w_{l+1}^T) masked, dout_{L-1} = 1: layer l's
     * weights get c_{l-1}^T @ dout_l, and c_l = (c_{l-1} @ w_l) masked by relu's mask of layer l */
    for (int l = 0; l < L; l++) {
        int C = m->dim[l], OC = m->dim[l + 1];
        const float *dout = l == L - 1 ? ones : a->dpost[l];
        mlp_linear_backward(NULL, g->w[l], NULL, dout, c, m->w[l], B, C, OC);
        if (l == L - 1) break;
        mlp_linear_forward(next, c, m->w[l], NULL, B, C, OC);
        const float *post = a->post[l];
        for (size_t k = 0; k < (size_t)B * OC; k++) next[k] = post[k] > 0.0f ? next[k] : 0.0f;
        float *t = c;
        c = next;
        next = t;
    }
    return coef * pen / B;
}
