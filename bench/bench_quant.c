/* bench_quant.c: the cost of scoring a split with the deployed model against the fp32 model:
 * digits (1797 x 64, standardised), MLP 64-64-10 relu at its seeded initialisation, a 359-row
 * split (20%, the size of the digits tasks' val and test splits) forwarded as one batch. Times
 * the fp32 forward, the fp16/bf16/int8 forwards (int8 on both kernels), the int8 model simulated in float and the int8
 * build (min/max calibration over 1079 rows, the training split's size, then quantisation), the
 * best of several interleaved rounds each (the machine may be shared), and prints one JSON line
 * with the ratios to fp32. Then the whole evaluation (`lossd eval`'s eval_run: load excluded;
 * training, the fp32 scoring and, at int8, the precision hook's build and second scoring) of
 * digits with that model under ce at fp32 and at int8 (and int8 with qat), interleaved, the best
 * round each, and their ratio: a second JSON line.
 * Usage: bench_quant [rounds [reps]]   (defaults 30 and 100) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../evaluator/internal.h"
#include "../evaluator/quant.h"

#define SPLIT 359 /* 20% of 1797 rows, as the digits tasks' val and test splits */

enum { V_FP32, V_FP16, V_BF16, V_INT8, V_INT8_INT32, V_INT8_SIM, V_INT8_BUILD, NV };
static const char *const vname[NV] = {"fp32_us",        "fp16_us",     "bf16_us",      "int8_us",
                                      "int8_int32_kernel_us", "int8_sim_us", "int8_build_us"};

typedef struct Bench {
    QuantMlp q[QUANT_NPREC], qb, q32; /* q32: q[QUANT_INT8] on the int32 kernel */
    const Mlp *m;
    const float *split, *calib;
    int ncalib;
    LdArena b; /* the build's own arena, reused */
} Bench;

/* One call of variant v; returns a value to keep the work observable. */
static float run(Bench *bn, int v) {
    char err[LD_ERR_MAX];
    switch (v) {
    case V_INT8_INT32: return quant_mlp_forward(&bn->q32, bn->split, SPLIT)[0];
    case V_INT8_SIM: return quant_mlp_forward_sim(&bn->q[QUANT_INT8], bn->split, SPLIT)[0];
    case V_INT8_BUILD:
        bn->b.used = 0; /* the build writes everything it reads */
        if (quant_mlp_build(&bn->qb, bn->m, QUANT_INT8, bn->calib, bn->ncalib, SPLIT, &bn->b, err) != LD_OK) {
            fprintf(stderr, "bench_quant: %s\n", err);
            exit(1);
        }
        return bn->qb.in[0].scale;
    default: return quant_mlp_forward(&bn->q[v], bn->split, SPLIT)[0];
    }
}

/* CPU time of the calling thread in ms: on a shared machine a round's wall time includes other
 * processes' turns, its CPU time much less so. */
static double thread_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The whole evaluation of a task at fp32, int8 and int8 with qat: best of rounds interleaved
 * rounds of reps evaluations each, in ms; prints one JSON line. spec: the task's JSON without
 * its closing brace; name, model, metric: for the line. LD_OK or an error with err. */
static int bench_eval(const char *name, const char *model, const char *spec, const char *loss, const char *metric,
                      int rounds, int reps, char *err) {
    static const char *const names[] = {"fp32", "int8", "int8_qat"};
    static const char *const deploy[] = {"", ", \"deploy\": {\"precision\": \"int8\"}",
                                         ", \"deploy\": {\"precision\": \"int8\", \"qat\": true}"};
    enum { NE = 3 };
    Task *t[NE] = {0};
    double ms[NE], cpu[NE], val[NE];
    int rc = LD_OK;
    Expr *e = expr_parse(loss, err);
    if (!e) return LD_EINVAL;
    for (int k = 0; k < NE && rc == LD_OK; k++) {
        char js[512];
        snprintf(js, sizeof js, "%s%s}", spec, deploy[k]);
        cJSON *c = cJSON_Parse(js);
        rc = c ? task_load(c, NULL, &t[k], err) : LD_ENOMEM;
        cJSON_Delete(c);
        ms[k] = cpu[k] = INFINITY;
    }
    for (int r = 0; r < rounds && rc == LD_OK; r++)
        for (int k = 0; k < NE && rc == LD_OK; k++) {
            double t0 = ld_now_ms(), c0 = thread_cpu_ms();
            for (int i = 0; i < reps && rc == LD_OK; i++) {
                EvalOpts o = {.seed = 1};
                EvalResult res;
                rc = eval_run(t[k], e, &o, &res, err);
                if (rc == LD_OK && !res.ok) rc = ld_err(err, LD_EFAILED, "%s", res.error);
                val[k] = res.test;
            }
            double per = (ld_now_ms() - t0) / reps, cper = (thread_cpu_ms() - c0) / reps;
            ms[k] = per < ms[k] ? per : ms[k];
            cpu[k] = cper < cpu[k] ? cper : cpu[k];
        }
    if (rc == LD_OK) {
        printf("{\"bench\": \"quant_eval\", \"task\": \"%s\", \"model\": \"%s\", \"loss\": \"%s\", "
               "\"steps\": %d, \"rounds\": %d, \"reps\": %d", name, model, loss, t[0]->train_spec.steps, rounds, reps);
        for (int k = 0; k < NE; k++)
            printf(", \"eval_%s_ms\": %.3f, \"eval_%s_cpu_ms\": %.3f, \"test_%s_%s\": %.4f", names[k], ms[k], names[k],
                   cpu[k], metric, names[k], val[k]);
        printf(", \"eval_int8_over_fp32\": %.3f, \"eval_int8_qat_over_fp32\": %.3f, \"cpu_int8_over_fp32\": %.3f, "
               "\"cpu_int8_qat_over_fp32\": %.3f}\n",
               ms[1] / ms[0], ms[2] / ms[0], cpu[1] / cpu[0], cpu[2] / cpu[0]);
    }
    for (int k = 0; k < NE; k++) task_free(t[k]);
    expr_free(e);
    return rc;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 30, reps = argc > 2 ? atoi(argv[2]) : 100;
    if (rounds < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_quant [rounds [reps]]\n");
        return 2;
    }
    mlp_blas_once();
    char err[LD_ERR_MAX], path[1024];
    snprintf(path, sizeof path, "%s/digits.csv", ld_data_dir());
    Table t;
    if (data_read_csv(path, NULL, 1, DATA_MISSING_ERROR, &t, err) != LD_OK) {
        fprintf(stderr, "bench_quant: %s\n", err);
        return 1;
    }
    for (int j = 0; j < t.d; j++) { /* standardise each column, as the tasks do */
        double s = 0, ss = 0;
        for (int i = 0; i < t.n; i++) s += t.x[(size_t)i * t.d + j];
        double mean = s / t.n;
        for (int i = 0; i < t.n; i++) ss += pow(t.x[(size_t)i * t.d + j] - mean, 2);
        double sd = sqrt(ss / t.n);
        for (int i = 0; i < t.n; i++)
            t.x[(size_t)i * t.d + j] = (float)((t.x[(size_t)i * t.d + j] - mean) / (sd > 0 ? sd : 1));
    }
    ModelSpec ms = {.nhidden = 1, .hidden = {64}, .act = ACT_RELU};
    Mlp m;
    float *params = malloc(sizeof(float) * mlp_param_count(&ms, t.d, 10));
    if (!params) return 1;
    mlp_bind(&m, &ms, t.d, 10, params);
    mlp_init(&m, 1);
    /* the split, then the training rows (the other 60%) for calibration */
    const float *split = t.x, *calib = t.x + (size_t)2 * SPLIT * t.d;
    int ncalib = t.n - 2 * SPLIT;

    LdArena a;
    size_t need = 0;
    for (int p = 0; p < QUANT_NPREC; p++) need += quant_mlp_arena_bytes(&m, p, SPLIT);
    if (arena_init(&a, need) != LD_OK) return 1;
    Bench bn = {.m = &m, .split = split, .calib = calib, .ncalib = ncalib};
    for (int p = 0; p < QUANT_NPREC; p++)
        if (quant_mlp_build(&bn.q[p], &m, p, calib, ncalib, SPLIT, &a, err) != LD_OK) {
            fprintf(stderr, "bench_quant: %s\n", err);
            return 1;
        }
    bn.q32 = bn.q[QUANT_INT8];
    bn.q32.int_kernel = 1;
    /* Rounds interleave the variants, so a busy moment on a shared machine hits all of them;
     * each variant keeps its best round. */
    if (arena_init(&bn.b, quant_mlp_arena_bytes(&m, QUANT_INT8, SPLIT)) != LD_OK) return 1;
    double us[NV];
    volatile float sink = 0;
    for (int v = 0; v < NV; v++) us[v] = INFINITY;
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < NV; v++) {
            int n = v == V_INT8_BUILD ? reps / 10 + 1 : reps;
            double t0 = ld_now_ms();
            for (int i = 0; i < n; i++) sink += run(&bn, v);
            double per = (ld_now_ms() - t0) * 1000.0 / n;
            us[v] = per < us[v] ? per : us[v];
        }
    (void)sink;
    printf("{\"bench\": \"quant\", \"task\": \"digits\", \"model\": \"64-64-10 relu\", \"split_rows\": %d, "
           "\"calib_rows\": %d, \"rounds\": %d, \"reps\": %d", SPLIT, ncalib, rounds, reps);
    for (int v = 0; v < NV; v++) printf(", \"%s\": %.1f", vname[v], us[v]);
    printf(", \"int8_over_fp32\": %.2f, \"fp16_over_fp32\": %.2f, \"bf16_over_fp32\": %.2f, "
           "\"int8_build_and_forward_over_fp32\": %.2f}\n",
           us[V_INT8] / us[V_FP32], us[V_FP16] / us[V_FP32], us[V_BF16] / us[V_FP32],
           (us[V_INT8_BUILD] + us[V_INT8]) / us[V_FP32]);
    arena_free(&a);
    arena_free(&bn.b);
    free(params);
    table_free(&t);
    int erounds = rounds / 3 > 1 ? rounds / 3 : 1, ereps = reps / 20 > 1 ? reps / 20 : 1;
    /* digits classification; the generative family's autoencoder (encoder and decoder deployed)
     * and GAN (its generator, 300 steps) */
    if (bench_eval("digits", "64-64-10 relu", "{\"data\": \"builtin:digits\", \"model\": {\"hidden\": [64], "
                   "\"activation\": \"relu\"}", "ce", "accuracy", erounds, ereps, err) != LD_OK ||
        bench_eval("digits autoencoder", "64-32-8-32-64 relu", "{\"data\": \"builtin:digits\", \"family\": "
                   "\"generative\"", "rec", "rec_accuracy", erounds, ereps, err) != LD_OK ||
        bench_eval("digits gan", "16-64-64 relu generator", "{\"data\": \"builtin:digits\", \"family\": "
                   "\"generative\", \"model\": {\"kind\": \"gan\"}, \"train\": {\"steps\": 300}", "nsgan", "fid",
                   erounds, ereps, err) != LD_OK) {
        fprintf(stderr, "bench_quant: %s\n", err);
        return 1;
    }
    return 0;
}
