/* pgexec_queue.c: the "queue" executor (executor.h) over the daemon's queue thread (pgexec.h):
 * submit publishes the item as work_item_json (the task's normalised spec stored first, once,
 * its data files by content), results arrive on the queue thread, are decoded there
 * (work_outcome_from_json) and handed to the loop through a uv_async, where each is matched
 * with its item by (job_id, seq). The items themselves stay on the loop thread; only decoded
 * outcomes cross threads. The daemon's own evaluator threads are a worker loop (pgw_run) on a
 * thread of their own, leasing from the same queue as remote workers. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgeval.h"
#include "pgexec.h"
#include "pgworker.h"

typedef struct QDone {
    struct QDone *next;
    WorkOutcome out;
} QDone;

/* A workers_refresh waiting for its listing (loop thread only). */
typedef struct QRefresh {
    struct QRefresh *next;
    uint64_t ticket;
    void (*fn)(void *ud);
    void *ud;
} QRefresh;

typedef struct QExec {
    Executor base;
    uv_async_t async;
    int has_async;
    Pgx *x;
    pthread_mutex_t mu;
    pthread_cond_t cv;               /* a loop-less sweep waits for outcomes */
    QDone *done_head, *done_tail;    /* decoded outcomes not yet matched (under mu) */
    ExecItem *items;                 /* submitted, not handed back (caller's thread only) */
    int pending, nworkers, stopped;  /* caller's thread only */
    uint64_t *tasks;                 /* task hashes whose spec was queued (caller's thread) */
    int ntasks, captasks;
    ExecDoneFn done;
    void *ud;
    /* the local worker loop: its thread, options and task cache */
    pthread_t local_th;
    int has_local, local_threads, local_nice;
    volatile sig_atomic_t local_stop;
    char *conninfo;
    char schema[64];
    PgqOpts qo;
    PgeTasks *cache;
    QRefresh *refresh; /* waiting for a fresh listing (loop thread only) */
} QExec;

/* The local worker loop's thread: pgw_run until the executor stops. */
static void *local_main(void *arg)
{
    QExec *q = arg;
    char err[LD_ERR_MAX];
    PgwOpts o = {.threads = q->local_threads, .stop = &q->local_stop, .cancel_on_stop = 1,
                 .nice = q->local_nice};
    PgwStats st;
    if (pgw_run(q->conninfo, &q->qo, &o, pge_eval, q->cache, &st, err) != LD_OK)
        fprintf(stderr, "lossd: the daemon's own queue workers: %s\n", err);
    return NULL;
}

static void push_done(QExec *q, QDone *d)
{
    pthread_mutex_lock(&q->mu);
    if (q->done_tail)
        q->done_tail->next = d;
    else
        q->done_head = d;
    q->done_tail = d;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->has_async)
        uv_async_send(&q->async);
}

/* On the queue thread: a result row becomes an outcome (a row the queue failed, or one that
 * does not decode, becomes a failed outcome with the reason). */
static void on_result(void *ud, const PgqResult *r)
{
    QExec *q = ud;
    QDone *d = calloc(1, sizeof *d);
    if (!d)
        return; /* delivered again when the item is published again */
    WorkItem *w = calloc(1, sizeof *w);
    if (!w) {
        free(d);
        return;
    }
    w->job_id = r->job_id;
    w->seq = r->seq;
    char err[LD_ERR_MAX];
    cJSON *j = r->result ? cJSON_Parse(r->result) : NULL;
    if (!r->result)
        work_outcome_fail(&d->out, w, WORK_FAILED, "%s", r->error ? r->error : "failed in the queue");
    else if (!j || work_outcome_from_json(j, &d->out, err) != LD_OK)
        work_outcome_fail(&d->out, w, WORK_FAILED, "worker %lld sent a result that does not decode: %.200s",
                          (long long)r->worker_id, j ? err : "not JSON");
    else if (d->out.job_id != r->job_id || d->out.seq != r->seq)
        work_outcome_fail(&d->out, w, WORK_FAILED, "worker %lld answered job %lld seq %lld for job %lld seq %lld",
                          (long long)r->worker_id, (long long)d->out.job_id, (long long)d->out.seq,
                          (long long)r->job_id, (long long)r->seq);
    cJSON_Delete(j);
    free(w);
    push_done(q, d);
}

static int q_sweep(Executor *x, int wait)
{
    QExec *q = (QExec *)x;
    pthread_mutex_lock(&q->mu);
    while (wait && !q->done_head && q->pending > 0)
        pthread_cond_wait(&q->cv, &q->mu);
    QDone *list = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    int n = 0;
    while (list) {
        QDone *next = list->next;
        ExecItem **pp = &q->items;
        while (*pp && !((*pp)->work.job_id == list->out.job_id && (*pp)->work.seq == list->out.seq))
            pp = &(*pp)->next;
        ExecItem *it = *pp;
        if (it) { /* else taken back (cancel, stop) or a duplicate: ignored */
            *pp = it->next;
            it->next = NULL;
            it->out = list->out;
            q->pending--;
            n++;
            q->done(q->ud, it);
        }
        free(list);
        list = next;
    }
    return n;
}

/* Answers the workers_refresh calls whose listing is in place (all of them with all set: the
 * executor is stopping). */
static void refresh_answer(QExec *q, int all)
{
    QRefresh **pp = &q->refresh;
    while (*pp) {
        QRefresh *r = *pp;
        if (all || !q->x || pgx_workers_fresh(q->x, r->ticket)) {
            *pp = r->next;
            r->fn(r->ud);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void on_async(uv_async_t *h)
{
    q_sweep(h->data, 0);
    refresh_answer(h->data, 0);
}

/* On the queue thread: a listing asked for is in place; the loop answers its askers. */
static void on_listed(void *ud)
{
    QExec *q = ud;
    if (q->has_async)
        uv_async_send(&q->async);
}

static void q_free(QExec *q)
{
    while (q->done_head) {
        QDone *next = q->done_head->next;
        free(q->done_head);
        q->done_head = next;
    }
    exec_items_free(q->items);
    free(q->tasks);
    pge_free(q->cache);
    free(q->conninfo);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static void on_closed(uv_handle_t *h) { q_free(h->data); }

static int q_open(const ExecConfig *cfg, Executor **out, char *err)
{
    if (!cfg->queue || !*cfg->queue)
        return ld_err(err, LD_EINVAL, "queue executor: no conninfo");
    QExec *q = calloc(1, sizeof *q);
    if (!q)
        return ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    q->base.m = &exec_queue;
    q->done = cfg->done;
    q->ud = cfg->ud;
    q->local_threads = cfg->local_threads > 0 ? cfg->local_threads : 0;
    q->nworkers = q->local_threads > 0 ? q->local_threads : 1;
    q->local_nice = cfg->loop ? 5 : 0; /* as the thread pool's: the loop answers first */
    if (cfg->queue_schema)
        snprintf(q->schema, sizeof q->schema, "%s", cfg->queue_schema);
    q->qo.schema = cfg->queue_schema ? q->schema : NULL;
    q->qo.lease_s = cfg->queue_lease;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->conninfo = strdup(cfg->queue);
    if (!q->conninfo) {
        q_free(q);
        return ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    }
    PgxOpts xo = {.listed = on_listed};
    int rc = pgx_start(cfg->queue, &q->qo, &xo, on_result, q, &q->x, err);
    if (rc == LD_OK && q->local_threads > 0)
        rc = pge_open(q->conninfo, &q->qo, NULL, &q->cache, err);
    if (rc == LD_OK && q->local_threads > 0) {
        if (pthread_create(&q->local_th, NULL, local_main, q) == 0)
            q->has_local = 1;
        else
            rc = ld_err(err, LD_ENOMEM, "queue executor: cannot start the local workers' thread");
    }
    if (rc != LD_OK) {
        pgx_close(q->x);
        q_free(q);
        return rc;
    }
    if (cfg->loop) {
        int urc = uv_async_init(cfg->loop, &q->async, on_async);
        if (urc != 0) {
            q->local_stop = 1;
            if (q->has_local)
                pthread_join(q->local_th, NULL);
            pgx_close(q->x);
            q_free(q);
            return ld_err(err, LD_EIO, "queue executor: uv_async_init: %s", uv_strerror(urc));
        }
        q->async.data = q;
        q->has_async = 1;
    }
    *out = &q->base;
    return LD_OK;
}

/* Queues the spec of the item's task once per task; LD_OK when it is (or was) queued. */
static int task_once(QExec *q, const ExecItem *it, const char *hex, char *err)
{
    for (int i = 0; i < q->ntasks; i++)
        if (q->tasks[i] == it->work.task_hash)
            return LD_OK;
    if (!it->task)
        return ld_err(err, LD_EINVAL, "task %s: not loaded in the daemon", hex);
    if (q->ntasks == q->captasks) {
        int cap = q->captasks ? 2 * q->captasks : 8;
        uint64_t *p = realloc(q->tasks, (size_t)cap * sizeof *p);
        if (!p)
            return ld_err(err, LD_ENOMEM, "queue executor: out of memory");
        q->tasks = p;
        q->captasks = cap;
    }
    cJSON *spec = task_spec(it->task);
    char *text = spec ? cJSON_PrintUnformatted(spec) : NULL;
    cJSON_Delete(spec);
    int rc = text ? pgx_task_put(q->x, hex, text, err)
                  : ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    free(text);
    if (rc == LD_OK)
        q->tasks[q->ntasks++] = it->work.task_hash;
    return rc;
}

static void q_submit(Executor *x, ExecItem *it)
{
    QExec *q = (QExec *)x;
    char err[LD_ERR_MAX], hex[17];
    it->next = q->items;
    q->items = it;
    q->pending++;
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)it->work.task_hash);
    int rc = task_once(q, it, hex, err);
    cJSON *j = rc == LD_OK ? work_item_json(&it->work) : NULL;
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (rc == LD_OK && !text)
        rc = ld_err(err, LD_ENOMEM, "queue executor: out of memory");
    if (rc == LD_OK)
        rc = pgx_submit(q->x, it->work.job_id, it->work.seq, hex, text, err);
    free(text);
    if (rc == LD_OK)
        return;
    /* not publishable: the item fails with the reason, through the done callback as usual */
    QDone *d = calloc(1, sizeof *d);
    if (!d)
        return; /* stays pending until a cancel or stop takes it back */
    work_outcome_fail(&d->out, &it->work, WORK_FAILED, "queue: %.200s", err);
    push_done(q, d);
}

/* Takes back the items of job_id (all of them when job_id < 0) not yet handed back. */
static ExecItem *take_back(QExec *q, int64_t job_id)
{
    int n = 0;
    ExecItem *out = exec_list_take(&q->items, NULL, job_id, &n);
    q->pending -= n;
    return out;
}

static ExecItem *q_cancel_job(Executor *x, int64_t job_id)
{
    QExec *q = (QExec *)x;
    pgx_cancel_job(q->x, job_id);
    return take_back(q, job_id);
}

static ExecItem *q_stop(Executor *x)
{
    QExec *q = (QExec *)x;
    q->stopped = 1;
    q->local_stop = 1; /* the local threads cancel what they run and hand it back */
    refresh_answer(q, 1);
    return take_back(q, -1);
}

static void q_close(Executor *x)
{
    QExec *q = (QExec *)x;
    if (!q)
        return;
    refresh_answer(q, 1);
    q->local_stop = 1;
    if (q->has_local) /* before the queue thread goes: their leases are handed back */
        pthread_join(q->local_th, NULL);
    q->has_local = 0;
    pgx_close(q->x); /* publishes what was submitted: a restart finds it there */
    q->x = NULL;
    if (q->has_async)
        uv_close((uv_handle_t *)&q->async, on_closed);
    else
        q_free(q);
}

static int q_workers(const Executor *x)
{
    const QExec *q = (const QExec *)x;
    int alive = q->x ? pgx_alive_threads(q->x) : 0;
    return alive > q->nworkers ? alive : q->nworkers;
}

static cJSON *q_workers_json(Executor *x)
{
    QExec *q = (QExec *)x;
    cJSON *ws = q->x ? pgx_workers(q->x) : cJSON_CreateArray();
    char host[256] = "?";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    cJSON *w;
    cJSON_ArrayForEach(w, ws)
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(w, "host");
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(w, "pid");
        int local = cJSON_IsString(h) && !strcmp(h->valuestring, host) && cJSON_IsNumber(pid) &&
                    pid->valueint == (int)getpid();
        cJSON_AddBoolToObject(w, "local", local);
    }
    return ws;
}
static int q_workers_refresh(Executor *x, void (*fn)(void *ud), void *ud)
{
    QExec *q = (QExec *)x;
    QRefresh *r = q->has_async && !q->stopped && q->x ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return 0; /* no loop to answer on, or out of memory: the listing as it is */
    r->ticket = pgx_workers_refresh(q->x);
    if (!r->ticket) { /* not connected: the last listing is all there is */
        free(r);
        return 0;
    }
    *r = (QRefresh){.next = q->refresh, .ticket = r->ticket, .fn = fn, .ud = ud};
    q->refresh = r;
    return 1;
}

static int q_pending(const Executor *x) { return ((const QExec *)x)->pending; }

const ExecutorMethods exec_queue = {
    .name = "queue",
    .open = q_open,
    .submit = q_submit,
    .cancel_job = q_cancel_job,
    .sweep = q_sweep,
    .stop = q_stop,
    .close = q_close,
    .workers = q_workers,
    .busy = q_pending,
    .pending = q_pending,
    .workers_json = q_workers_json,
    .workers_refresh = q_workers_refresh,
};
