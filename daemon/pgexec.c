/* pgexec.c: the daemon's queue thread (pgexec.h). Submissions and cancels go into lists under a
 * mutex; the thread takes them, talks to the server, and sleeps on a condition variable between
 * polls. Only that thread touches the Pgq handle. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgeval.h"
#include "pgexec.h"

#define PGX_BATCH 64 /* items per publish, results per read */

typedef struct Sub {
    int64_t job_id, seq;
    char *task_hash, *item;
} Sub;

typedef struct TaskPut {
    char *hash, *spec;
} TaskPut;

struct Pgx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    Sub *subs; /* submitted, not yet published */
    int nsubs, capsubs;
    int publishing;   /* subs[0..publishing) are being published: cancel leaves them alone */
    int64_t *cancels; /* jobs to cancel in the queue */
    int ncancels, capcancels;
    TaskPut *tasks; /* task specs to store (pgq_task_put) before the items naming them */
    int ntasks, captasks;
    int closing;
    PgxStats st;
    cJSON *workers;    /* the last pgq_workers listing (under mu), refreshed with each sweep */
    int alive_threads; /* the threads of its alive workers (under mu) */
    uint64_t list_asked, list_served; /* listings asked for (pgx_workers_refresh) and read */
    int connected;     /* the thread holds a connection (under mu) */
    /* the thread's own */
    Pgq *q;
    char *conninfo;
    PgqOpts qo;
    char schema[64];
    double poll_s, sweep_s;
    FILE *log;
    PgxResultFn fn;
    void (*listed)(void *ud);
    void *ud;
};

static void sub_free(Sub *s)
{
    free(s->task_hash);
    free(s->item);
}

static void wait_s(Pgx *x, double s) /* caller holds mu */
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(s * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

/* Reopens the queue after a lost connection, backing off up to 10 s, until it works or the
 * executor closes. */
static int reconnect(Pgx *x)
{
    char err[LD_ERR_MAX];
    pgq_close(x->q);
    x->q = NULL;
    double wait = 0.5;
    pthread_mutex_lock(&x->mu);
    x->connected = 0;
    while (!x->closing) {
        wait_s(x, wait);
        pthread_mutex_unlock(&x->mu);
        int rc = pgq_open(x->conninfo, &x->qo, &x->q, err);
        pthread_mutex_lock(&x->mu);
        if (rc == LD_OK) {
            x->st.reconnects++;
            x->connected = 1;
            pthread_mutex_unlock(&x->mu);
            fprintf(x->log, "lossd: the queue is back\n");
            return LD_OK;
        }
        fprintf(x->log, "lossd: %s (retrying in %.1f s)\n", err, wait);
        wait = wait < 5 ? wait * 2 : 10;
    }
    pthread_mutex_unlock(&x->mu);
    return LD_EIO;
}

/* One pass: cancels, publishes, results. Returns the first queue error's code. */
static int pass(Pgx *x)
{
    char err[LD_ERR_MAX];
    int rc = LD_OK;
    /* cancels first, so a cancelled job's submissions (already dropped) are not published */
    pthread_mutex_lock(&x->mu);
    int64_t cancels[64];
    int nc = x->ncancels < 64 ? x->ncancels : 64;
    for (int i = 0; i < nc; i++)
        cancels[i] = x->cancels[i];
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < nc && rc == LD_OK; i++) {
        int k = 0;
        rc = pgq_cancel_job(x->q, cancels[i], &k, err);
        pthread_mutex_lock(&x->mu);
        if (rc == LD_OK) {
            x->st.cancelled += k;
            memmove(x->cancels, x->cancels + 1, (size_t)--x->ncancels * sizeof *x->cancels);
        }
        pthread_mutex_unlock(&x->mu);
    }
    /* task specs before the items that name them; an entry leaves the list once stored */
    while (rc == LD_OK) {
        pthread_mutex_lock(&x->mu);
        TaskPut t = x->ntasks ? x->tasks[0] : (TaskPut){0}; /* only this thread removes */
        pthread_mutex_unlock(&x->mu);
        if (!t.hash)
            break;
        char *stored = NULL; /* the spec with its data files stored by content */
        rc = pge_spec_with_data(x->q, t.spec, &stored, err);
        if (rc == LD_OK)
            rc = pgq_task_put(x->q, t.hash, stored, err);
        free(stored);
        if (rc != LD_OK && rc != LD_EIO) { /* refused for good: say so, items then fail */
            fprintf(x->log, "lossd: %s\n", err);
            rc = LD_OK;
        }
        if (rc == LD_OK) {
            pthread_mutex_lock(&x->mu);
            free(x->tasks[0].hash);
            free(x->tasks[0].spec);
            x->ntasks--;
            memmove(x->tasks, x->tasks + 1, (size_t)x->ntasks * sizeof *x->tasks);
            pthread_mutex_unlock(&x->mu);
        }
    }
    /* publish in batches; a batch is removed from the list only once it is in the queue */
    while (rc == LD_OK) {
        PgqWork w[PGX_BATCH];
        pthread_mutex_lock(&x->mu);
        int n = x->nsubs < PGX_BATCH ? x->nsubs : PGX_BATCH;
        for (int i = 0; i < n; i++) /* the strings stay owned by the list while we publish */
            w[i] =
                (PgqWork){x->subs[i].job_id, x->subs[i].seq, x->subs[i].task_hash, x->subs[i].item};
        x->publishing = n;
        pthread_mutex_unlock(&x->mu);
        if (n == 0)
            break;
        int added = 0;
        rc = pgq_publish(x->q, w, n, &added, err);
        pthread_mutex_lock(&x->mu);
        x->publishing = 0;
        if (rc == LD_OK || rc == LD_EINVAL) { /* EINVAL cannot happen: submit checked each */
            for (int i = 0; i < n; i++)
                sub_free(&x->subs[i]);
            x->nsubs -= n;
            memmove(x->subs, x->subs + n, (size_t)x->nsubs * sizeof *x->subs);
            x->st.published += added;
        }
        pthread_mutex_unlock(&x->mu);
        if (rc == LD_EINVAL) {
            fprintf(x->log, "lossd: %s\n", err);
            rc = LD_OK;
        }
    }
    /* results: handed over, then acknowledged */
    while (rc == LD_OK) {
        PgqResult *r = NULL;
        int n = 0;
        rc = pgq_results(x->q, PGX_BATCH, &r, &n, err);
        int64_t ids[PGX_BATCH];
        /* counted before they are handed over: whoever gets one sees it in the stats */
        pthread_mutex_lock(&x->mu);
        x->st.results += n;
        pthread_mutex_unlock(&x->mu);
        for (int i = 0; i < n; i++) {
            x->fn(x->ud, &r[i]);
            ids[i] = r[i].work_id;
        }
        pgq_results_free(r, n);
        if (rc == LD_OK && n > 0)
            rc = pgq_results_ack(x->q, ids, n, err);
        if (n < PGX_BATCH)
            break;
    }
    if (rc != LD_OK) {
        pthread_mutex_lock(&x->mu);
        x->st.errors++;
        pthread_mutex_unlock(&x->mu);
        fprintf(x->log, "lossd: %s\n", err);
    }
    return rc;
}

static void *pgx_main(void *arg)
{
    Pgx *x = arg;
    char err[LD_ERR_MAX];
    double last_sweep = 0;
    for (;;) {
        int rc = x->q ? pass(x) : LD_EIO;
        double now = ld_now_ms() / 1000;
        pthread_mutex_lock(&x->mu);
        uint64_t asked = x->list_asked; /* served by the listing read below */
        pthread_mutex_unlock(&x->mu);
        int sweep = rc == LD_OK && now - last_sweep >= x->sweep_s;
        if (sweep || (rc == LD_OK && asked > x->list_served)) {
            int rq = 0, ab = 0;
            if (sweep) {
                rc = pgq_expire(x->q, &rq, &ab, err);
                last_sweep = now;
                if (rc != LD_OK)
                    fprintf(x->log, "lossd: %s\n", err);
                else if (rq || ab)
                    fprintf(x->log, "lossd: queue sweep: %d expired leases requeued, %d abandoned\n",
                            rq, ab);
            }
            cJSON *ws = NULL;
            if (rc == LD_OK && pgq_workers(x->q, &ws, err) != LD_OK)
                ws = NULL; /* the listing stays as it was; a lost connection shows next pass */
            pthread_mutex_lock(&x->mu);
            x->st.requeued += rq;
            x->st.abandoned += ab;
            if (ws) {
                cJSON_Delete(x->workers);
                x->workers = ws;
                x->alive_threads = 0;
                const cJSON *w;
                cJSON_ArrayForEach(w, ws)
                {
                    const cJSON *state = cJSON_GetObjectItemCaseSensitive(w, "state");
                    const cJSON *th = cJSON_GetObjectItemCaseSensitive(w, "threads");
                    if (cJSON_IsString(state) && !strcmp(state->valuestring, "alive") &&
                        cJSON_IsNumber(th))
                        x->alive_threads += th->valueint;
                }
            }
            pthread_mutex_unlock(&x->mu);
        }
        if (asked > x->list_served) { /* read, or failed: the asker gets what there is */
            pthread_mutex_lock(&x->mu);
            x->list_served = asked;
            pthread_mutex_unlock(&x->mu);
            if (x->listed)
                x->listed(x->ud);
        }
        if (rc == LD_EIO && reconnect(x) != LD_OK)
            break; /* closing while the server is away: what is unpublished is lost */
        pthread_mutex_lock(&x->mu);
        int idle = x->nsubs == 0 && x->ncancels == 0 && x->ntasks == 0 &&
                   x->list_asked == x->list_served;
        int done = x->closing && (rc != LD_OK || idle);
        if (!done && idle && !x->closing)
            wait_s(x, x->poll_s);
        pthread_mutex_unlock(&x->mu);
        if (done)
            break;
    }
    return NULL;
}

int pgx_start(const char *conninfo, const PgqOpts *qopts, const PgxOpts *o, PgxResultFn fn,
              void *ud, Pgx **out, char *err)
{
    *out = NULL;
    if (!fn)
        return ld_err(err, LD_EINVAL, "queue executor: no result callback");
    Pgx *x = calloc(1, sizeof *x);
    if (!x || !(x->conninfo = strdup(conninfo ? conninfo : ""))) {
        free(x);
        return ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    }
    x->qo = qopts ? *qopts : (PgqOpts){0};
    x->qo.flags |= PGQ_MIGRATE;
    x->qo.flags &= ~PGQ_WORKER; /* the daemon's commits are durable */
    if (x->qo.schema) {         /* keep our own copy for reconnects */
        snprintf(x->schema, sizeof x->schema, "%s", x->qo.schema);
        x->qo.schema = x->schema;
    }
    x->poll_s = o && o->poll_s > 0 ? o->poll_s : 0.02;
    x->sweep_s = o && o->sweep_s > 0 ? o->sweep_s : 1;
    x->log = o && o->log ? o->log : stderr;
    x->fn = fn;
    x->listed = o ? o->listed : NULL;
    x->ud = ud;
    int rc = pgq_open(x->conninfo, &x->qo, &x->q, err);
    if (rc != LD_OK) {
        free(x->conninfo);
        free(x);
        return rc;
    }
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->connected = 1;
    if (pthread_create(&x->th, NULL, pgx_main, x)) {
        pgq_close(x->q);
        pthread_cond_destroy(&x->cv);
        pthread_mutex_destroy(&x->mu);
        free(x->conninfo);
        free(x);
        return ld_err(err, LD_ENOMEM, "queue executor: cannot start its thread");
    }
    *out = x;
    return LD_OK;
}

int pgx_submit(Pgx *x, int64_t job_id, int64_t seq, const char *task_hash, const char *item,
               char *err)
{
    PgqWork w = {job_id, seq, task_hash, item};
    int rc = pgq_work_check(&w, err);
    if (rc != LD_OK)
        return rc;
    Sub s = {job_id, seq, strdup(task_hash), strdup(item)};
    if (!s.task_hash || !s.item) {
        sub_free(&s);
        return ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    }
    pthread_mutex_lock(&x->mu);
    if (x->closing)
        rc = ld_err(err, LD_ESTATE, "queue executor: closing");
    else if (x->nsubs == x->capsubs) {
        int cap = x->capsubs ? 2 * x->capsubs : 64;
        Sub *p = realloc(x->subs, (size_t)cap * sizeof *p);
        if (p) {
            x->subs = p;
            x->capsubs = cap;
        } else {
            rc = ld_err(err, LD_ENOMEM, "queue executor: out of memory");
        }
    }
    if (rc == LD_OK) {
        x->subs[x->nsubs++] = s;
        x->st.submitted++;
        pthread_cond_signal(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    if (rc != LD_OK)
        sub_free(&s);
    return rc;
}

int pgx_task_put(Pgx *x, const char *task_hash, const char *spec, char *err)
{
    TaskPut t = {strdup(task_hash), strdup(spec)};
    int rc = t.hash && t.spec ? LD_OK : ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    pthread_mutex_lock(&x->mu);
    if (rc == LD_OK && x->closing)
        rc = ld_err(err, LD_ESTATE, "queue executor: closing");
    if (rc == LD_OK && x->ntasks == x->captasks) {
        int cap = x->captasks ? 2 * x->captasks : 8;
        TaskPut *p = realloc(x->tasks, (size_t)cap * sizeof *p);
        if (p) {
            x->tasks = p;
            x->captasks = cap;
        } else {
            rc = ld_err(err, LD_ENOMEM, "queue executor: out of memory");
        }
    }
    if (rc == LD_OK) {
        x->tasks[x->ntasks++] = t;
        pthread_cond_signal(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    if (rc != LD_OK) {
        free(t.hash);
        free(t.spec);
    }
    return rc;
}

void pgx_cancel_job(Pgx *x, int64_t job_id)
{
    pthread_mutex_lock(&x->mu);
    int k = x->publishing;               /* those are in flight: the queued cancel deletes them */
    for (int i = k; i < x->nsubs; i++) { /* not yet published: dropped here */
        if (x->subs[i].job_id == job_id)
            sub_free(&x->subs[i]);
        else
            x->subs[k++] = x->subs[i];
    }
    x->st.cancelled += x->nsubs - k;
    x->nsubs = k;
    if (x->ncancels == x->capcancels) {
        int cap = x->capcancels ? 2 * x->capcancels : 8;
        int64_t *p = realloc(x->cancels, (size_t)cap * sizeof *p);
        if (p) {
            x->cancels = p;
            x->capcancels = cap;
        }
    }
    if (x->ncancels < x->capcancels) /* out of memory: the items run, their results are ignored */
        x->cancels[x->ncancels++] = job_id;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void pgx_stats(Pgx *x, PgxStats *st)
{
    pthread_mutex_lock(&x->mu);
    *st = x->st;
    pthread_mutex_unlock(&x->mu);
}

cJSON *pgx_workers(Pgx *x)
{
    pthread_mutex_lock(&x->mu);
    cJSON *ws = x->workers ? cJSON_Duplicate(x->workers, 1) : cJSON_CreateArray();
    pthread_mutex_unlock(&x->mu);
    return ws;
}

uint64_t pgx_workers_refresh(Pgx *x)
{
    uint64_t ticket = 0;
    pthread_mutex_lock(&x->mu);
    if (x->connected && !x->closing) {
        ticket = ++x->list_asked;
        pthread_cond_signal(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    return ticket;
}

int pgx_workers_fresh(Pgx *x, uint64_t ticket)
{
    pthread_mutex_lock(&x->mu);
    int fresh = x->list_served >= ticket;
    pthread_mutex_unlock(&x->mu);
    return fresh;
}

int pgx_alive_threads(Pgx *x)
{
    pthread_mutex_lock(&x->mu);
    int n = x->alive_threads;
    pthread_mutex_unlock(&x->mu);
    return n;
}

void pgx_close(Pgx *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->closing = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->th, NULL);
    for (int i = 0; i < x->nsubs; i++)
        sub_free(&x->subs[i]);
    free(x->subs);
    free(x->cancels);
    for (int i = 0; i < x->ntasks; i++) {
        free(x->tasks[i].hash);
        free(x->tasks[i].spec);
    }
    free(x->tasks);
    cJSON_Delete(x->workers);
    pgq_close(x->q);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x->conninfo);
    free(x);
}
