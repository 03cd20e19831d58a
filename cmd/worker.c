/* worker.c: `lossd worker`: evaluates for a lossd daemon on any host, through the PostgreSQL
 * queue (issue 11, docs/scale-out.md); and `lossd workers`, which lists the queue's workers. Each leased item is decoded (work_item_from_json), its
 * task found by the hash it names (the normalised spec the daemon stored with pgq_task_put,
 * loaded once per process and checked to hash the same here), evaluated with eval_work, and
 * answered with work_outcome_json. Everything read from the queue is checked; a bad item fails
 * that evaluation with the reason and nothing else. Exit status: 0 after a stop (SIGTERM,
 * SIGINT), --max-evals or --idle-exit; 1 when the queue cannot be used; 2 on bad input. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/work.h"
#include "../daemon/pgworker.h"
#include "../evaluator/eval.h"
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
            "                    [--max-evals N] [--idle-exit SECONDS]\n"
            "  --queue      a libpq conninfo or postgresql:// URI (or $LOSSD_QUEUE); keep passwords\n"
            "               in ~/.pgpass, $PGPASSFILE or a $PGSERVICE entry, never here\n"
            "  --threads    evaluator threads (default: online cores)\n"
            "  --schema     the queue's PostgreSQL schema (default lossd, as the daemon's)\n"
            "  --lease      seconds a lease lasts without a heartbeat (default 30)\n"
            "  --max-evals  stop after this many results\n"
            "  --idle-exit  stop once the queue has been empty this long\n");
}

/* ---- tasks, by the hash work items carry ------------------------------------------------- */

typedef struct CachedTask {
    uint64_t hash;
    Task *task;              /* NULL when it could not be loaded: err says why */
    char err[LD_ERR_MAX];
} CachedTask;

typedef struct Tasks {
    pthread_mutex_t mu;
    Pgq *q; /* its own connection: the worker loop's belongs to its I/O thread */
    const char *conninfo;
    PgqOpts qo;
    CachedTask *e;
    int n, cap;
} Tasks;

/* Loads the task stored under hash (once; a failure is remembered too). Writes the reason into
 * why and returns NULL when it cannot be had. Thread-safe. */
static const Task *task_get(Tasks *ts, uint64_t hash, char *why)
{
    const Task *found = NULL;
    pthread_mutex_lock(&ts->mu);
    for (int i = 0; i < ts->n; i++)
        if (ts->e[i].hash == hash) {
            found = ts->e[i].task;
            if (!found)
                snprintf(why, LD_ERR_MAX, "%s", ts->e[i].err);
            pthread_mutex_unlock(&ts->mu);
            return found;
        }
    char hex[17], err[LD_ERR_MAX] = "", *text = NULL;
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    Task *t = NULL;
    int rc = ts->q ? LD_OK : pgq_open(ts->conninfo, &ts->qo, &ts->q, err);
    if (rc == LD_OK)
        rc = pgq_task_get(ts->q, hex, &text, err);
    if (rc == LD_EIO) { /* a lost connection: reopen next time, do not remember the failure */
        pgq_close(ts->q);
        ts->q = NULL;
        snprintf(why, LD_ERR_MAX, "task %s: %.200s", hex, err);
        pthread_mutex_unlock(&ts->mu);
        return NULL;
    }
    cJSON *spec = rc == LD_OK ? cJSON_Parse(text) : NULL;
    if (rc == LD_OK && !spec)
        rc = ld_err(err, LD_EINVAL, "its spec is not JSON");
    if (rc == LD_OK)
        rc = task_load(spec, NULL, &t, err);
    if (rc == LD_OK && task_hash(t) != hash) {
        rc = ld_err(err, LD_ESTATE,
                    "its spec loads here as task %016llx (another lossd version, or data files "
                    "that differ on this host)",
                    (unsigned long long)task_hash(t));
        task_free(t);
        t = NULL;
    }
    cJSON_Delete(spec);
    free(text);
    if (ts->n == ts->cap) {
        int cap = ts->cap ? 2 * ts->cap : 8;
        CachedTask *p = realloc(ts->e, (size_t)cap * sizeof *p);
        if (p) {
            ts->e = p;
            ts->cap = cap;
        }
    }
    if (ts->n < ts->cap) {
        CachedTask *c = &ts->e[ts->n++];
        c->hash = hash;
        c->task = t;
        snprintf(c->err, sizeof c->err, "task %s: %.200s", hex, err);
    } else if (t) { /* out of memory: use it once */
        task_free(t);
        t = NULL;
        snprintf(err, sizeof err, "out of memory");
    }
    if (!t)
        snprintf(why, LD_ERR_MAX, "task %s: %.200s", hex, err);
    pthread_mutex_unlock(&ts->mu);
    return t;
}

static void tasks_free(Tasks *ts)
{
    for (int i = 0; i < ts->n; i++)
        task_free(ts->e[i].task);
    free(ts->e);
    pgq_close(ts->q);
    pthread_mutex_destroy(&ts->mu);
}

/* ---- one evaluation ------------------------------------------------------------------------ */

/* The part of an outcome that two runs of the same item must agree on: not its wall time. */
static char *fingerprint(const WorkOutcome *o)
{
    char buf[LD_ERR_MAX + 160];
    if (o->status == WORK_OK)
        snprintf(buf, sizeof buf, "ok val=%.17g test=%.17g steps=%d loss=%.9g",
                 o->res.val, o->res.test, o->res.steps, o->res.final_loss);
    else
        snprintf(buf, sizeof buf, "%s steps=%d %s", work_status_name(o->status), o->res.steps,
                 o->res.error);
    return strdup(buf);
}

static int work_eval(void *ctx, const PgqItem *it, char **result, char **fp, char *reason)
{
    Tasks *ts = ctx;
    static WorkItem blank;
    WorkItem *w = malloc(sizeof *w);
    WorkOutcome *out = malloc(sizeof *out);
    char err[LD_ERR_MAX];
    int rc = w && out ? LD_OK : ld_err(reason, LD_ENOMEM, "out of memory");
    cJSON *j = rc == LD_OK ? cJSON_Parse(it->item) : NULL;
    if (rc == LD_OK) {
        *w = blank;
        rc = work_item_from_json(j, w, err);
        if (rc != LD_OK)
            ld_err(reason, rc, "work item: %.200s", err);
    }
    cJSON_Delete(j);
    char hex[17];
    if (rc == LD_OK) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)w->task_hash);
        if (w->job_id != it->job_id || w->seq != it->seq || strcmp(hex, it->task_hash))
            rc = ld_err(reason, LD_EINVAL,
                        "work item: it says job %lld seq %lld task %s, its queue row job %lld "
                        "seq %lld task %.20s",
                        (long long)w->job_id, (long long)w->seq, hex, (long long)it->job_id,
                        (long long)it->seq, it->task_hash);
    }
    const Task *t = rc == LD_OK ? task_get(ts, w->task_hash, reason) : NULL;
    if (rc == LD_OK && !t)
        rc = LD_ENOTFOUND;
    if (rc == LD_OK) {
        eval_work(t, w, out); /* parses and checks the expression like any input */
        cJSON *oj = work_outcome_json(out);
        *result = oj ? cJSON_PrintUnformatted(oj) : NULL;
        cJSON_Delete(oj);
        *fp = fingerprint(out);
        if (!*result)
            rc = ld_err(reason, LD_ENOMEM, "out of memory");
    }
    free(w);
    free(out);
    return rc;
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
    const char *conninfo = getenv("LOSSD_QUEUE"), *schema = NULL;
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
    Tasks ts = {.mu = PTHREAD_MUTEX_INITIALIZER, .conninfo = conninfo, .qo = qo};
    ts.qo.flags = PGQ_WORKER;
    PgwOpts o = {.threads = nthreads,
                 .max_evals = (long)max_evals,
                 .idle_exit_s = idle,
                 .stop = &stop_flag};
    PgwStats st = {0};
    char err[LD_ERR_MAX];
    fprintf(stderr, "lossd worker: %d evaluator threads, queue schema %s\n", nthreads,
            schema ? schema : "lossd");
    int rc = pgw_run(conninfo, &qo, &o, work_eval, &ts, &st, err);
    tasks_free(&ts);
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
