/* worker.c: `lossd worker`: evaluates for a lossd daemon on any host, through the PostgreSQL
 * queue (issue 11, docs/scale-out.md); and `lossd workers`, which lists the queue's workers.
 * What an item means (its task by hash, data files by content, eval_work) is daemon/pgeval.h,
 * shared with the daemon's own threads. Everything read from the queue is checked; a bad item
 * fails that evaluation with the reason and nothing else. Exit status: 0 after a stop
 * (SIGTERM, SIGINT), --max-evals or --idle-exit; 1 when the queue cannot be used; 2 on bad
 * input. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../daemon/pgeval.h"
#include "../daemon/pgworker.h"
#include "../storage/pgqueue.h"
#include "cli.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lossd worker --queue CONNINFO [--threads N] [--schema NAME] [--lease SECONDS]\n"
            "                    [--max-evals N] [--idle-exit SECONDS] [--data-dir DIR]\n"
            "  --queue      a libpq conninfo or postgresql:// URI (or $LOSSD_QUEUE); keep passwords\n"
            "               in ~/.pgpass, $PGPASSFILE or a $PGSERVICE entry, never here\n"
            "  --threads    evaluator threads (default: online cores)\n"
            "  --schema     the queue's PostgreSQL schema (default lossd, as the daemon's)\n"
            "  --lease      seconds a lease lasts without a heartbeat (default 30)\n"
            "  --max-evals  stop after this many results\n"
            "  --idle-exit  stop once the queue has been empty this long\n"
            "  --data-dir   keep the tasks' CSV/.npy files fetched from the queue here, by their\n"
            "               SHA-256 (default: a temporary directory removed at exit)\n");
}

/* ---- the command ---------------------------------------------------------------------------- */

static int num_arg(const char *opt, const char *s, double lo, double hi, double *v)
{
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "lossd worker: %s: '%s' is not a number in %g..%g\n", opt, s, lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

int worker_main(int argc, char **argv)
{
    const char *conninfo = getenv("LOSSD_QUEUE"), *schema = NULL, *data_dir = NULL;
    double threads = 0, lease = 0, max_evals = 0, idle = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            fprintf(stderr, "lossd worker: %s: %s\n", a,
                    strncmp(a, "--", 2) ? "unknown argument" : "needs a value");
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--queue")) {
            conninfo = v;
        } else if (!strcmp(a, "--schema")) {
            schema = v;
        } else if (!strcmp(a, "--data-dir")) {
            data_dir = v;
        } else if (!strcmp(a, "--threads")) {
            bad = num_arg(a, v, 1, 256, &threads);
        } else if (!strcmp(a, "--lease")) {
            bad = num_arg(a, v, 1, 86400, &lease);
        } else if (!strcmp(a, "--max-evals")) {
            bad = num_arg(a, v, 1, 1e12, &max_evals);
        } else if (!strcmp(a, "--idle-exit")) {
            bad = num_arg(a, v, 0.1, 1e9, &idle);
        } else {
            fprintf(stderr, "lossd worker: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
        i++;
    }
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "lossd worker: --queue CONNINFO (or $LOSSD_QUEUE) is required\n");
        usage(stderr);
        return 2;
    }
    const char *why = pgq_conninfo_problem(conninfo);
    if (why) {
        fprintf(stderr, "lossd worker: --queue: %s\n", why);
        return 2;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = threads > 0 ? (int)threads : (online > 0 && online <= 256 ? (int)online : 1);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    PgqOpts qo = {.schema = schema, .lease_s = lease};
    PgeTasks *ts = NULL;
    char err[LD_ERR_MAX];
    if (pge_open(conninfo, &qo, data_dir, &ts, err) != LD_OK) {
        fprintf(stderr, "lossd worker: %s\n", err);
        return 1;
    }
    PgwOpts o = {.threads = nthreads,
                 .max_evals = (long)max_evals,
                 .idle_exit_s = idle,
                 .stop = &stop_flag};
    PgwStats st = {0};
    fprintf(stderr, "lossd worker: %d evaluator threads, queue schema %s\n", nthreads,
            schema ? schema : "lossd");
    int rc = pgw_run(conninfo, &qo, &o, pge_eval, ts, &st, err);
    pge_free(ts);
    if (rc != LD_OK) {
        fprintf(stderr, "lossd worker: %s\n", err);
        return 1;
    }
    fprintf(stderr,
            "lossd worker %lld: %ld evaluations (%ld failed), %ld late duplicates, %ld "
            "mismatches, %ld gone, %ld reconnects\n",
            (long long)st.worker_id, st.done, st.failed, st.duplicates, st.mismatches, st.gone,
            st.reconnects);
    return 0;
}

/* ---- lossd workers ------------------------------------------------------------------------- */

static void workers_usage(FILE *f)
{
    fprintf(f, "usage: lossd workers --queue CONNINFO [--schema NAME] [--json]\n"
               "  lists the queue's worker processes (host, pid, threads, evaluations done, state,\n"
               "  current leases), the queue's counts and any result mismatches\n");
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_workers(const cJSON *ws, const cJSON *counts, const cJSON *mm)
{
    printf("%-6s %-24s %-8s %-7s %-8s %-8s %-10s %s\n", "ID", "HOST", "PID", "THREADS", "EVALS",
           "STATE", "LAST SEEN", "LEASES");
    double now = ld_wall_s();
    const cJSON *w;
    cJSON_ArrayForEach(w, ws)
    {
        char leases[256] = "-";
        int k = 0, n = cJSON_GetArraySize(cJSON_GetObjectItem(w, "leases"));
        const cJSON *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItem(w, "leases"))
        {
            if (k >= 3)
                break;
            int at = k ? (int)strlen(leases) : 0;
            snprintf(leases + at, sizeof leases - (size_t)at, "%sjob %.0f seq %.0f (%.0f s left)",
                     k ? ", " : "", num(l, "job_id"), num(l, "seq"), num(l, "expires_in"));
            k++;
        }
        if (n > k) {
            int at = (int)strlen(leases);
            snprintf(leases + at, sizeof leases - (size_t)at, ", and %d more", n - k);
        }
        printf("%-6.0f %-24.24s %-8.0f %-7.0f %-8.0f %-8s %6.0f s ago %s\n", num(w, "id"),
               str(w, "host"), num(w, "pid"), num(w, "threads"), num(w, "evals_done"),
               str(w, "state"), now - num(w, "last_seen"), leases);
    }
    printf("queue: %.0f pending, %.0f leased, %.0f results (%.0f not yet read by the daemon), "
           "%.0f mismatches\n",
           num(counts, "pending"), num(counts, "leased"), num(counts, "results"),
           num(counts, "unacked"), num(counts, "mismatches"));
    const cJSON *m;
    cJSON_ArrayForEach(m, mm)
    {
        printf("MISMATCH: job %.0f seq %.0f: worker %.0f gave \"%s\", worker %.0f \"%s\"\n",
               num(m, "job_id"), num(m, "seq"), num(m, "first_worker"), str(m, "first"),
               num(m, "late_worker"), str(m, "late"));
    }
}

int workers_main(int argc, char **argv)
{
    const char *conninfo = getenv("LOSSD_QUEUE"), *schema = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            workers_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((!strcmp(argv[i], "--queue") || !strcmp(argv[i], "--schema")) && i + 1 < argc) {
            *(argv[i][2] == 'q' ? &conninfo : &schema) = argv[i + 1];
            i++;
        } else {
            fprintf(stderr, "lossd workers: %s: unknown option or missing value\n", argv[i]);
            workers_usage(stderr);
            return 2;
        }
    }
    if (!conninfo || !*conninfo || pgq_conninfo_has_password(conninfo) != 0) {
        fprintf(stderr, "lossd workers: --queue CONNINFO (or $LOSSD_QUEUE) is required, without "
                        "a password (~/.pgpass, $PGPASSFILE or $PGSERVICE)\n");
        return 2;
    }
    PgqOpts qo = {.schema = schema};
    Pgq *q = NULL;
    cJSON *ws = NULL, *counts = NULL, *mm = NULL;
    char err[LD_ERR_MAX];
    int rc = pgq_open(conninfo, &qo, &q, err);
    if (rc == LD_OK)
        rc = pgq_workers(q, &ws, err);
    if (rc == LD_OK)
        rc = pgq_counts(q, &counts, err);
    if (rc == LD_OK)
        rc = pgq_mismatches(q, &mm, err);
    pgq_close(q);
    if (rc != LD_OK) {
        fprintf(stderr, "lossd workers: %s\n", err);
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "workers", ws);
        cJSON_AddItemToObject(o, "queue", counts);
        cJSON_AddItemToObject(o, "mismatches", mm);
        ws = counts = mm = NULL;
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
    } else {
        print_workers(ws, counts, mm);
    }
    cJSON_Delete(ws);
    cJSON_Delete(counts);
    cJSON_Delete(mm);
    return rc == LD_OK ? 0 : 1;
}
