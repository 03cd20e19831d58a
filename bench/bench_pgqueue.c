/* bench_pgqueue.c: what the PostgreSQL queue (storage/pgqueue.h) costs per evaluation. Against
 * a server given as a libpq conninfo (bench/pgqueue.sh starts a throwaway durable one):
 *   1. back to back, --rt items: the lease round trip (one item) and the completion (median,
 *      p99), the daemon's publish (batches of 16, durable commits) and collect + ack (batches of
 *      64) per item, and the CPU all of it used per evaluation: this process plus, when the
 *      server runs on this host, every server process (read from /proc);
 *   2. end to end, --evals simulated evaluations (sleeping --eval-ms each) against the same
 *      sleeps without a queue: a serial worker written here (lease, evaluate, complete, while
 *      the daemon collects), then lossd's own pieces, the daemon's queue thread
 *      (daemon/pgexec.h) publishing and collecting and a worker loop (daemon/pgworker.h) with
 *      one evaluator thread, which leases ahead and completes behind.
 * Worker handles run with synchronous_commit off (PGQ_WORKER), as lossd's workers do; --sync
 * makes them durable in part 1 and for the serial worker. Prints lines for people, then one JSON
 * line.
 *
 *   bench_pgqueue CONNINFO [--rt N] [--evals N] [--eval-ms MS] [--sync] */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/lossd.h"
#include "../daemon/pgexec.h"
#include "../daemon/pgworker.h"
#include "../storage/pgqueue.h"

#define TASK_HASH "5f1d0c7e2a9b8c4d3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d"

static const char *conninfo;
static char schema[64];

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_pgqueue: %s: %s\n", what, err);
    exit(1);
}

static Pgq *open_q(int flags)
{
    char err[LD_ERR_MAX];
    PgqOpts o = {.schema = schema, .flags = flags};
    Pgq *q = NULL;
    if (pgq_open(conninfo, &o, &q, err) != LD_OK)
        die("open", err);
    return q;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v[0..n) (sorts v). */
static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(q * (n - 1) + 0.5);
    return n ? v[i] : 0;
}

/* A work item and a result about the size lossd's will be: the expression, seed and steps; the
 * metrics and a 20-point curve. */
static void make_item(char *buf, size_t n, int seq)
{
    snprintf(buf, n,
             "{\"v\": 1, \"seq\": %d, \"cand\": %d, \"task\": {\"hash\": \"" TASK_HASH "\", "
             "\"name\": \"digits\"}, \"expr\": \"0.7*ce + 0.3*focal(2)\", \"seed\": %d, "
             "\"steps\": 2000, \"precision\": \"fp32\"}",
             seq, seq / 2, 1000 + seq);
}

static void make_result(char *buf, size_t n, int seq)
{
    int k = snprintf(buf, n,
                     "{\"status\": \"ok\", \"metric\": \"accuracy\", \"val\": 0.9%04d, "
                     "\"test\": 0.9%04d, \"steps\": 2000, \"wall_ms\": 50.1, \"final_loss\": "
                     "0.1234, \"curve\": [",
                     seq % 10000, (seq * 7) % 10000);
    for (int i = 0; i < 20 && k < (int)n - 64; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s{\"step\": %d, \"loss\": 0.%04d, \"val\": 0.%04d}",
                      i ? ", " : "", 100 * (i + 1), 9000 - 400 * i, 5000 + 200 * i);
    snprintf(buf + k, n - (size_t)k, "]}");
}

/* Publishes items [from, from + n) of job 1 in batches of 16; returns the seconds it took. */
static double publish(Pgq *d, int from, int n)
{
    char err[LD_ERR_MAX];
    static char items[16][512];
    PgqWork w[16];
    double t0 = ld_now_ms();
    for (int i = 0; i < n; i += 16) {
        int b = n - i < 16 ? n - i : 16;
        for (int k = 0; k < b; k++) {
            make_item(items[k], sizeof items[k], from + i + k);
            w[k] = (PgqWork){1, from + i + k, TASK_HASH, items[k]};
        }
        if (pgq_publish(d, w, b, NULL, err) != LD_OK)
            die("publish", err);
    }
    return (ld_now_ms() - t0) / 1000;
}

/* Fetches and acknowledges every result (batches of 64); returns how many. */
static int collect(Pgq *d)
{
    char err[LD_ERR_MAX];
    int total = 0;
    for (;;) {
        PgqResult *r = NULL;
        int n = 0;
        if (pgq_results(d, 64, &r, &n, err) != LD_OK)
            die("results", err);
        int64_t ids[64];
        for (int i = 0; i < n; i++)
            ids[i] = r[i].work_id;
        pgq_results_free(r, n);
        if (n == 0)
            return total;
        if (pgq_results_ack(d, ids, n, err) != LD_OK)
            die("ack", err);
        total += n;
    }
}

/* CPU seconds used so far by this process (all threads). */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* CPU seconds used so far by every process of the server, read from /proc (the pids from
 * pg_stat_activity, which lists the background processes too, plus the postmaster); -1 when
 * the server is not on this host. */
static double server_cpu_s(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity UNION SELECT pg_backend_pid() "
                            "UNION SELECT (regexp_split_to_array(pg_read_file('postmaster.pid'), "
                            "E'\\n'))[1]::int");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        r = PQexec(c, "SELECT pid FROM pg_stat_activity");
    }
    double total = 0;
    int found = 0;
    long tick = sysconf(_SC_CLK_TCK);
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", PQgetvalue(r, i, 0));
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* the command may contain spaces */
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            total += (double)(ut + st) / (double)tick;
            found++;
        }
    }
    PQclear(r);
    return found ? total : -1;
}

/* ---- end to end -------------------------------------------------------------------------- */

typedef struct Worker {
    int evals, eval_ms, flags;
    double wait_ms, wall_ms;
} Worker;

static Pgq *worker_open(const Worker *w, int64_t *id)
{
    char err[LD_ERR_MAX];
    Pgq *q = open_q(w->flags);
    if (pgq_worker_register(q, "bench", (int)getpid(), 1, id, err) != LD_OK)
        die("register", err);
    return q;
}

/* Leases one item, retrying until one comes. */
static PgqItem *lease_one(Pgq *q, int64_t id)
{
    char err[LD_ERR_MAX];
    for (;;) {
        PgqItem *it = NULL;
        int n = 0;
        if (pgq_lease(q, id, 1, &it, &n, err) != LD_OK)
            die("lease", err);
        if (n == 1)
            return it;
        pgq_items_free(it, n);
    }
}

static void complete_one(Pgq *q, int64_t id, int64_t item, int seq)
{
    char err[LD_ERR_MAX], res[2048];
    PgqCompletion c;
    make_result(res, sizeof res, seq);
    if (pgq_complete(q, id, item, res, NULL, &c, err) != LD_OK)
        die("complete", err);
}

static void evaluate(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The serial worker: lease, evaluate, complete; the queue calls are all waiting time. */
static void *serial_main(void *arg)
{
    Worker *w = arg;
    int64_t id;
    Pgq *q = worker_open(w, &id);
    double t_start = ld_now_ms();
    for (int k = 0; k < w->evals; k++) {
        double t0 = ld_now_ms();
        PgqItem *it = lease_one(q, id);
        double t1 = ld_now_ms();
        evaluate(w->eval_ms);
        double t2 = ld_now_ms();
        complete_one(q, id, it->id, (int)it->seq);
        w->wait_ms += (t1 - t0) + (ld_now_ms() - t2);
        pgq_items_free(it, 1);
    }
    w->wall_ms = ld_now_ms() - t_start;
    char err[LD_ERR_MAX];
    pgq_worker_stop(q, id, err);
    pgq_close(q);
    return NULL;
}

/* lossd's worker loop evaluates by sleeping and answers with a result of the usual size. */
static int sleep_eval(void *ctx, const PgqItem *it, const volatile int *cancel, char **result,
                      char **fp, char *reason)
{
    char res[2048];
    evaluate(*(const int *)ctx);
    make_result(res, sizeof res, (int)it->seq);
    *result = strdup(res);
    return *result ? LD_OK : ld_err(reason, LD_ENOMEM, "out of memory");
}

typedef struct Counter {
    pthread_mutex_t mu;
    int n;
} Counter;

static void count_result(void *ud, const PgqResult *r)
{
    Counter *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

/* lossd's pieces end to end: the daemon's queue thread publishes items [from, from + evals) and
 * collects, a worker loop with one evaluator thread runs them. Returns the loop's wall time. */
static double loop_end_to_end(int from, int evals, int eval_ms)
{
    char err[LD_ERR_MAX], item[512];
    Counter c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    PgqOpts qo = {.schema = schema};
    Pgx *x = NULL;
    if (pgx_start(conninfo, &qo, NULL, count_result, &c, &x, err) != LD_OK)
        die("executor", err);
    for (int i = 0; i < evals; i++) {
        make_item(item, sizeof item, from + i);
        if (pgx_submit(x, 1, from + i, TASK_HASH, item, err) != LD_OK)
            die("submit", err);
    }
    for (int i = 0; i < 600; i++) { /* published, so the worker starts on a full queue */
        PgxStats xs;
        pgx_stats(x, &xs);
        if (xs.published + xs.errors >= evals)
            break;
        evaluate(10);
    }
    PgwOpts o = {.host = "bench", .threads = 1, .max_evals = evals};
    double t0 = ld_now_ms();
    if (pgw_run(conninfo, &qo, &o, sleep_eval, &eval_ms, NULL, err) != LD_OK)
        die("worker", err);
    double wall = ld_now_ms() - t0;
    for (int i = 0; i < 600; i++) { /* the executor's last poll */
        pthread_mutex_lock(&c.mu);
        int n = c.n;
        pthread_mutex_unlock(&c.mu);
        if (n >= evals)
            break;
        evaluate(10);
    }
    pgx_close(x);
    return wall;
}

/* Publishes evals items after from, runs the serial worker over them while this thread
 * collects like the daemon would, and fills w's times. */
static void end_to_end(Pgq *d, int from, Worker *w)
{
    publish(d, from, w->evals);
    pthread_t th;
    if (pthread_create(&th, NULL, serial_main, w))
        die("thread", "cannot start the worker");
    int collected = 0;
    while (collected < w->evals) {
        evaluate(100);
        collected += collect(d);
    }
    pthread_join(th, NULL);
}

int main(int argc, char **argv)
{
    int rt = 500, evals = 60, eval_ms = 50, sync = 0;
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_pgqueue CONNINFO [--rt N] [--evals N] [--eval-ms MS] "
                        "[--sync]\n");
        return 2;
    }
    conninfo = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--rt") && i + 1 < argc)
            rt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--evals") && i + 1 < argc)
            evals = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--eval-ms") && i + 1 < argc)
            eval_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sync"))
            sync = 1;
        else {
            fprintf(stderr, "bench_pgqueue: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (rt < 10 || evals < 1 || eval_ms < 1)
        die("arguments", "--rt at least 10, --evals and --eval-ms at least 1");
    int wflags = sync ? 0 : PGQ_WORKER;
    snprintf(schema, sizeof schema, "bench_%d", (int)getpid());
    PGconn *admin = PQconnectdb(conninfo);
    if (PQstatus(admin) != CONNECTION_OK)
        die("connect", PQerrorMessage(admin));
    Pgq *d = open_q(PGQ_MIGRATE);
    Pgq *w = open_q(wflags);
    char err[LD_ERR_MAX], res[2048];
    int64_t wid = 0;
    if (pgq_worker_register(w, "bench", (int)getpid(), 1, &wid, err) != LD_OK)
        die("register", err);

    /* 1: back to back */
    double cpu0 = self_cpu_s(), srv0 = server_cpu_s(admin);
    double pub_ms = 1000 * publish(d, 0, rt) / rt;
    double *lease = calloc((size_t)rt, sizeof *lease), *done = calloc((size_t)rt, sizeof *done);
    if (!lease || !done)
        die("memory", "out of memory");
    for (int i = 0; i < rt; i++) {
        double t0 = ld_now_ms();
        PgqItem *it = lease_one(w, wid);
        double t1 = ld_now_ms();
        make_result(res, sizeof res, i);
        PgqCompletion c;
        if (pgq_complete(w, wid, it->id, res, NULL, &c, err) != LD_OK)
            die("complete", err);
        done[i] = ld_now_ms() - t1;
        lease[i] = t1 - t0;
        pgq_items_free(it, 1);
    }
    double t0 = ld_now_ms();
    if (collect(d) != rt)
        die("collect", "not every result came back");
    double col_ms = (ld_now_ms() - t0) / rt;
    double cpu_ms = 1000 * (self_cpu_s() - cpu0) / rt, srv1 = server_cpu_s(admin);
    double srv_ms = srv0 >= 0 && srv1 >= 0 ? 1000 * (srv1 - srv0) / rt : -1;
    double lease_med = quantile(lease, rt, 0.5), lease_p99 = quantile(lease, rt, 0.99);
    double done_med = quantile(done, rt, 0.5), done_p99 = quantile(done, rt, 0.99);
    double per_eval = lease_med + done_med + pub_ms + col_ms;
    printf("lease round trip (1 item): median %.3f ms, p99 %.3f ms (%d leases)\n", lease_med,
           lease_p99, rt);
    printf("complete (a %zu-byte result): median %.3f ms, p99 %.3f ms\n", strlen(res), done_med,
           done_p99);
    printf("daemon per item: publish %.3f ms (batches of 16, durable), collect + ack %.3f ms "
           "(batches of 64)\n",
           pub_ms, col_ms);
    printf("queue time per evaluation (publish + lease + complete + collect, medians): %.3f ms "
           "= %.2f%% of a %d ms evaluation\n",
           per_eval, 100 * per_eval / eval_ms, eval_ms);
    if (srv_ms >= 0)
        printf("CPU per evaluation: %.3f ms here + %.3f ms in the server = %.2f%% of a %d ms "
               "evaluation\n",
               cpu_ms, srv_ms, 100 * (cpu_ms + srv_ms) / eval_ms, eval_ms);
    else
        printf("CPU per evaluation: %.3f ms here (the server is not on this host)\n", cpu_ms);

    /* 2: end to end, after the same evaluations without a queue (what sleeping costs here) */
    double b0 = ld_now_ms();
    for (int k = 0; k < evals; k++)
        evaluate(eval_ms);
    double base_ms = ld_now_ms() - b0;
    printf("without a queue: %d evaluations of %d ms in %.2f s (%.2f/s)\n", evals, eval_ms,
           base_ms / 1000, 1000 * evals / base_ms);
    Worker ser = {.evals = evals, .eval_ms = eval_ms, .flags = wflags};
    end_to_end(d, rt, &ser);
    double loop_ms = loop_end_to_end(rt + evals, evals, eval_ms);
    printf("end to end, a serial worker: %d evaluations of %d ms in %.2f s (%.2f/s, ideal %.2f), "
           "%.2f%% slower than without a queue; it waited %.3f ms per evaluation\n",
           evals, eval_ms, ser.wall_ms / 1000, 1000 * evals / ser.wall_ms, 1000.0 / eval_ms,
           100 * (ser.wall_ms - base_ms) / base_ms, ser.wait_ms / evals);
    printf("end to end, lossd's queue thread and worker loop: %d evaluations of %d ms in %.2f s "
           "(%.2f/s), %.2f%% slower than without a queue\n",
           evals, eval_ms, loop_ms / 1000, 1000 * evals / loop_ms,
           100 * (loop_ms - base_ms) / base_ms);
    printf("{\"eval_ms\": %d, \"worker_sync_commit\": %s, \"lease_rt_ms_median\": %.3f, "
           "\"lease_rt_ms_p99\": %.3f, \"complete_ms_median\": %.3f, \"complete_ms_p99\": %.3f, "
           "\"publish_ms_per_item\": %.3f, \"collect_ms_per_item\": %.3f, "
           "\"queue_ms_per_eval\": %.3f, \"queue_pct\": %.2f, \"client_cpu_ms_per_eval\": %.3f, "
           "\"server_cpu_ms_per_eval\": %.3f, \"no_queue_evals_per_s\": %.2f, "
           "\"serial_evals_per_s\": %.2f, \"serial_slowdown_pct\": %.2f, "
           "\"loop_evals_per_s\": %.2f, \"loop_slowdown_pct\": %.2f}\n",
           eval_ms, sync ? "true" : "false", lease_med, lease_p99, done_med, done_p99, pub_ms,
           col_ms, per_eval, 100 * per_eval / eval_ms, cpu_ms, srv_ms, 1000 * evals / base_ms,
           1000 * evals / ser.wall_ms, 100 * (ser.wall_ms - base_ms) / base_ms,
           1000 * evals / loop_ms, 100 * (loop_ms - base_ms) / base_ms);

    pgq_close(w);
    pgq_close(d);
    /* leave nothing behind in a shared server */
    char drop[128];
    snprintf(drop, sizeof drop, "SET client_min_messages = warning; DROP SCHEMA \"%s\" CASCADE",
             schema);
    PQclear(PQexec(admin, drop));
    PQfinish(admin);
    free(lease);
    free(done);
    return 0;
}
