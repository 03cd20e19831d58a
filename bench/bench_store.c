/* bench_store.c: fills a temporary database with 100,000 evaluations (200 jobs x 50 candidates x
 * 10 evaluations, one transaction per job) and times the two leaderboard queries (median and
 * p99 over repeated calls), then how many evaluations a second it stores with each commit
 * synced, one per transaction and 8 or 64 to one (the daemon's group commits). Prints the query plans to stderr and one JSON line to stdout.
 * Usage: bench_store [--keep PATH] [jobs [queries]]   (defaults 200 and 200)
 * --keep PATH: build the database at PATH (which must not exist) and keep it, every job marked
 * "done" so that a daemon started on it serves the jobs without trying to resume them
 * (bench/bench_daemon.py). Without it the database lives in a temporary directory removed at
 * the end (BENCH_STORE_KEEP=1 keeps that directory). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../storage/store.h"

#define CANDS 50
#define NTASKS 8      /* 4 classification, 4 regression */
#define POOL 1500     /* distinct expressions per family: repeats across jobs, as in real use */

static const char *family_of(int t) { return t < NTASKS / 2 ? "classification" : "regression"; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(q * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int die(const char *what, const char *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err);
    return 1;
}

/* One stored evaluation as the daemon writes it: metric value v, a 20-point curve, 2 metrics. */
static void fill_result(EvalResult *res, int fam, double v, int steps)
{
    memset(res, 0, sizeof *res);
    res->ok = 1;
    snprintf(res->metric, sizeof res->metric, "%s", fam ? "mse" : "accuracy");
    res->val = v;
    res->test = v + 0.01;
    res->steps = steps;
    res->wall_ms = 800;
    res->final_loss = 0.3;
    res->ncurve = 20;
    for (int p = 0; p < 20; p++)
        res->curve[p] = (EvalCurvePoint){.step = 10 * p, .loss = 1.0f / (float)(p + 1),
                                         .val = (float)v};
    res->nextra = 2;
    snprintf(res->extra[0].name, sizeof res->extra[0].name, "%s", res->metric);
    res->extra[0].val = v;
    res->extra[0].test = v;
    snprintf(res->extra[1].name, sizeof res->extra[1].name, "ece");
    res->extra[1].val = 0.05;
    res->extra[1].test = 0.06;
}

/* Group commits (the daemon's lossd serve --commit-ms): n evaluations of a new job written
 * `per` to a transaction, each commit synced (synchronous = FULL, as the daemon runs).
 * Returns evaluations per second, or -1 with err set. */
static double commit_rate(Store *s, int64_t task_id, int per, int n, char *err)
{
    cJSON *spec = cJSON_CreateObject();
    cJSON_AddNumberToObject(spec, "commit_bench", per);
    StoreJobNew nj = {.spec = spec, .name = "commit-bench", .seed = 1, .budget_evals = n};
    int64_t job = 0;
    int rc = store_job_insert(s, &nj, &job, NULL, err);
    cJSON_Delete(spec);
    if (rc == LD_OK)
        rc = store_candidate_put(s, job, 1, "ce", ld_hash64("ce", 2), 1, NULL, "init", NULL,
                                 "classification", NULL, err);
    if (rc != LD_OK)
        return -1;
    EvalResult res;
    fill_result(&res, 0, 0.9, 200);
    double t0 = ld_now_ms();
    for (int i = 0; rc == LD_OK && i < n; i += per) {
        rc = store_begin(s, err);
        for (int k = i; rc == LD_OK && k < i + per && k < n; k++) {
            StoreEvalKey key = {.job_id = job, .seq = k, .cand = 1, .task_id = task_id,
                                .seed = (uint64_t)k, .steps = 200};
            rc = store_eval_put(s, &key, &res, NULL, err);
        }
        if (rc == LD_OK)
            rc = store_commit(s, err);
        else
            store_rollback(s);
    }
    return rc == LD_OK ? n / ((ld_now_ms() - t0) / 1000) : -1;
}

int main(int argc, char **argv)
{
    const char *keep = NULL, *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keep") && i + 1 < argc)
            keep = argv[++i];
        else if (npos < 2 && argv[i][0] != '-')
            pos[npos++] = argv[i];
        else
            return die("usage", "bench_store [--keep PATH] [jobs [queries]]");
    }
    int njobs = pos[0] ? atoi(pos[0]) : 200, nq = pos[1] ? atoi(pos[1]) : 200;
    char dir[] = "/tmp/bench_store.XXXXXX", path[4096], err[LD_ERR_MAX];
    if (njobs < 1 || nq < 1 || !mkdtemp(dir))
        return die("setup", "bad arguments or no temp directory");
    if (keep && access(keep, F_OK) == 0) {
        rmdir(dir);
        return die(keep, "already exists (--keep makes a new database)");
    }
    if (keep)
        snprintf(path, sizeof path, "%s", keep);
    else
        snprintf(path, sizeof path, "%s/bench.db", dir);
    Store *s = NULL;
    if (store_open(path, 0, &s, err))
        return die("open", err);

    LdRng rng;
    rng_seed(&rng, 42);
    int64_t task_id[NTASKS];
    for (int t = 0; t < NTASKS; t++) {
        char name[16];
        snprintf(name, sizeof name, "task%d", t);
        if (store_task_upsert(s, 1000 + (uint64_t)t, family_of(t), name, t < 4 ? "accuracy" : "mse",
                              t < 4, NULL, &task_id[t], err))
            return die("task", err);
    }

    double t0 = ld_now_ms();
    int64_t nevals = 0;
    for (int j = 0; j < njobs; j++) {
        int fam = j % 2, ta = fam * 4 + (j / 2) % 4, tb = fam * 4 + (j / 2 + 1) % 4;
        cJSON *spec = cJSON_CreateObject();
        cJSON_AddNumberToObject(spec, "job", j);
        StoreJobNew nj = {.spec = spec, .name = "bench", .seed = (uint64_t)j, .budget_evals = 500};
        int64_t job = 0, seq = 0;
        if (store_begin(s, err) || store_job_insert(s, &nj, &job, NULL, err) ||
            store_job_add_task(s, job, 0, task_id[ta], 0, err) ||
            store_job_add_task(s, job, 1, task_id[tb], 1, err))
            return die("job", err);
        cJSON_Delete(spec);
        for (int c = 1; c <= CANDS; c++) {
            char expr[64];
            int e = (int)rng_below(&rng, POOL);
            snprintf(expr, sizeof expr, fam ? "mse + %d*mae" : "ce + %d*focal(2)", e);
            double quality = (double)e / POOL; /* a hidden true quality per expression */
            cJSON *parents = cJSON_CreateArray();
            if (c > 1)
                cJSON_AddItemToArray(parents, cJSON_CreateNumber((double)(c - 1)));
            if (store_candidate_put(s, job, c, expr, ld_hash64(expr, strlen(expr)), 5, parents,
                                    c > 1 ? "mutate" : "init", NULL, family_of(ta), NULL, err))
                return die("candidate", err);
            cJSON_Delete(parents);
            double fit = 0;
            for (int k = 0; k < 10; k++) { /* per task: 2 at 50 steps, 3 seeds at 200 */
                int task = k < 5 ? ta : tb, r = k % 5;
                int steps = r < 2 ? 50 : 200;
                uint64_t seed = (uint64_t)(r < 2 ? r : r - 2);
                double v = fam ? 2.0 - quality + 0.1 * rng_uniform(&rng)
                               : 0.5 + 0.4 * quality + 0.05 * rng_uniform(&rng);
                EvalResult res;
                fill_result(&res, fam, v, steps);
                StoreEvalKey key = {.job_id = job, .seq = seq++, .cand = c,
                                    .task_id = task_id[task], .seed = seed, .steps = steps};
                if (store_eval_put(s, &key, &res, NULL, err))
                    return die("evaluation", err);
                nevals++;
                if (steps == 200 && task == ta)
                    fit += (fam ? -v : v) / 3;
            }
            if (store_candidate_set_fitness(s, job, c, fit, err))
                return die("fitness", err);
        }
        if (store_commit(s, err))
            return die("commit", err);
    }
    double fill_ms = ld_now_ms() - t0;

    const char *plans[] = {"LB_JOB", "LB_CAND_TASKS", "LB_FAMILY"};
    for (int i = 0; i < 3; i++) {
        char *plan = NULL;
        if (store_query_plan(s, plans[i], &plan, err))
            return die("plan", err);
        fprintf(stderr, "EXPLAIN QUERY PLAN %s:\n%s\n", plans[i], plan);
        free(plan);
    }

    double *tj = malloc(sizeof(double) * (size_t)nq), *tf = malloc(sizeof(double) * (size_t)nq);
    double *cj = malloc(sizeof(double) * (size_t)nq), *cf = malloc(sizeof(double) * (size_t)nq);
    if (!tj || !tf || !cj || !cf)
        return die("memory", "out of memory");
    int entries = 0;
    for (int q = 0; q < nq; q++) {
        cJSON *lb = NULL;
        int64_t job = 1 + (int64_t)rng_below(&rng, (uint32_t)njobs);
        double a = ld_now_ms(), c = cpu_ms();
        if (store_leaderboard_job(s, job, 10, &lb, err))
            return die("leaderboard job", err);
        tj[q] = ld_now_ms() - a;
        cj[q] = cpu_ms() - c;
        entries += cJSON_GetArraySize(lb);
        cJSON_Delete(lb);
        a = ld_now_ms();
        c = cpu_ms();
        if (store_leaderboard_family(s, q % 2 ? "regression" : "classification", 10, NULL, 1, &lb,
                                     err))
            return die("leaderboard family", err);
        tf[q] = ld_now_ms() - a;
        cf[q] = cpu_ms() - c;
        entries += cJSON_GetArraySize(lb);
        cJSON_Delete(lb);
    }
    /* evaluations per second stored one per transaction, then 8 and 64 to one (not with
     * --keep: the daemon's benches want the filled jobs only) */
    static const int per[] = {1, 8, 64};
    double rate[3] = {0, 0, 0};
    for (int i = 0; !keep && i < 3; i++)
        if ((rate[i] = commit_rate(s, task_id[0], per[i], per[i] == 1 ? 200 : 640, err)) < 0)
            return die("group commits", err);
    int64_t bytes = 0;
    store_db_size(s, &bytes, err);
    if (keep) { /* finished jobs: a daemon on this database serves them and resumes none */
        if (store_begin(s, err))
            return die("mark done", err);
        for (int64_t j = 1; j <= njobs; j++)
            if (store_job_set_state(s, j, "done", NULL, err))
                return die("mark done", err);
        if (store_commit(s, err))
            return die("mark done", err);
    }
    store_close(s);
    printf("{\"bench\":\"store\",\"evaluations\":%lld,\"jobs\":%d,\"fill_ms\":%.0f,"
           "\"fill_evals_per_s\":%.0f,\"db_bytes\":%lld,\"queries\":%d,"
           "\"leaderboard_job_ms\":{\"median\":%.3f,\"p99\":%.3f},"
           "\"leaderboard_family_ms\":{\"median\":%.3f,\"p99\":%.3f},"
           "\"cpu_ms\":{\"job_median\":%.3f,\"family_median\":%.3f},\"entries\":%d,"
           "\"synced_evals_per_s\":{\"per_txn_1\":%.0f,\"per_txn_8\":%.0f,\"per_txn_64\":%.0f}}\n",
           (long long)nevals, njobs, fill_ms, nevals / (fill_ms / 1000), (long long)bytes, nq,
           quantile(tj, nq, 0.5), quantile(tj, nq, 0.99), quantile(tf, nq, 0.5),
           quantile(tf, nq, 0.99), quantile(cj, nq, 0.5), quantile(cf, nq, 0.5), entries, rate[0],
           rate[1], rate[2]);
    free(tj);
    free(tf);
    free(cj);
    free(cf);
    if (keep) {
        fprintf(stderr, "kept %s\n", keep);
        return rmdir(dir) != 0;
    }
    if (getenv("BENCH_STORE_KEEP")) { /* keep the database to inspect it */
        fprintf(stderr, "kept %s\n", path);
        return 0;
    }
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}
