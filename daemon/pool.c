/* pool.c: the "threads" executor (executor.h): N worker threads run eval_work on the items they
 * are handed and give them back through a mutex-protected done queue: on a libuv loop through
 * uv_async_send, without one through exec_sweep. Workers never touch the store, the engines or
 * any libuv handle other than the async. A cancel or a stop sets the running items' cancel
 * flags, which the trainer reads every step: the workers are free again within milliseconds. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executor.h"

typedef struct Pool {
    Executor base;
    uv_async_t async;
    int has_async;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers wait for items */
    pthread_cond_t done_cv; /* a loop-less sweep waits for finished items */
    pthread_t *threads;
    ExecItem **held; /* held[i]: the item worker i evaluates, or NULL (under mu) */
    int nthreads, started;
    ExecItem *todo_head, *todo_tail; /* submitted, not yet taken by a worker */
    ExecItem *done_head, *done_tail; /* finished, not yet handed back */
    int busy;    /* items a worker holds */
    long evals_done; /* items the workers finished (under mu) */
    int pending; /* submitted and not yet handed back (caller's thread only) */
    int stop;
    ExecDoneFn done;
    void *ud;
} Pool;

void exec_item_free(ExecItem *it) { free(it); }

void exec_items_free(ExecItem *list) {
    while (list) {
        ExecItem *next = list->next;
        free(list);
        list = next;
    }
}

ExecItem *exec_list_take(ExecItem **head, ExecItem **tail, int64_t job_id, int *n) {
    ExecItem *out = NULL, **out_tail = &out, **pp = head, *last = NULL;
    int k = 0;
    while (*pp) {
        ExecItem *it = *pp;
        if (job_id < 0 || it->work.job_id == job_id) {
            *pp = it->next;
            it->next = NULL;
            *out_tail = it;
            out_tail = &it->next;
            k++;
        } else {
            last = it;
            pp = &it->next;
        }
    }
    if (tail) *tail = last;
    if (n) *n = k;
    return out;
}

/* Workers run at a lower priority than the loop (Linux nice values are per thread; this is
 * added to the process's own): with as many workers as cores, the loop would otherwise wait
 * for a CPU behind the training it feeds, and clients with it. Without a loop (lossd search,
 * lossd bench) the caller only waits for them, so they keep the process's priority. */
#define POOL_WORKER_NICE 5

/* Tells the item a worker holds to stop; under mu. The flag is only ever raised. */
static void item_cancel(ExecItem *it) { __atomic_store_n(&it->cancel, 1, __ATOMIC_RELAXED); }

static void *worker_main(void *arg) {
    Pool *p = arg;
    /* best effort: a worker at the loop's priority is slower to answer clients, not wrong */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, tid);
    if (p->has_async && errno == 0) (void)setpriority(PRIO_PROCESS, tid, prio + POOL_WORKER_NICE);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->todo_head) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        ExecItem *it = p->todo_head;
        p->todo_head = it->next;
        if (!p->todo_head) p->todo_tail = NULL;
        it->next = NULL;
        int slot = 0;
        while (p->held[slot]) slot++; /* busy < nthreads: a free slot exists */
        p->held[slot] = it;
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        /* pre-check, then training; failures are typed outcomes */
        eval_work_cancel(it->task, &it->work, &it->cancel, &it->out);

        pthread_mutex_lock(&p->mu);
        p->held[slot] = NULL;
        p->busy--;
        p->evals_done++;
        if (p->done_tail) p->done_tail->next = it;
        else p->done_head = it;
        p->done_tail = it;
        pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
        if (p->has_async) uv_async_send(&p->async);
    }
}

static int pool_sweep(Executor *x, int wait) {
    Pool *p = (Pool *)x;
    pthread_mutex_lock(&p->mu);
    while (wait && !p->done_head && p->pending > 0 && (p->busy > 0 || p->todo_head))
        pthread_cond_wait(&p->done_cv, &p->mu);
    ExecItem *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    int n = 0;
    while (list) {
        ExecItem *next = list->next;
        list->next = NULL;
        p->pending--;
        n++;
        p->done(p->ud, list);
        list = next;
    }
    return n;
}

static void on_async(uv_async_t *h) { pool_sweep(h->data, 0); }

static void pool_free(Pool *p) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p->held);
    free(p);
}

static int pool_open(const ExecConfig *cfg, Executor **out, char *err) {
    Pool *p = calloc(1, sizeof *p);
    if (!p) return ld_err(err, LD_ENOMEM, "threads: out of memory");
    p->base.m = &exec_threads;
    p->done = cfg->done;
    p->ud = cfg->ud;
    int nworkers = cfg->workers > 0 ? cfg->workers : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = calloc((size_t)nworkers, sizeof *p->threads);
    p->held = calloc((size_t)nworkers, sizeof *p->held);
    if (!p->threads || !p->held) {
        pool_free(p);
        return ld_err(err, LD_ENOMEM, "threads: out of memory");
    }
    if (cfg->loop) {
        int rc = uv_async_init(cfg->loop, &p->async, on_async);
        if (rc != 0) {
            pool_free(p);
            return ld_err(err, LD_EIO, "threads: uv_async_init: %s", uv_strerror(rc));
        }
        p->async.data = p;
        p->has_async = 1;
    }
    for (int i = 0; i < nworkers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        p->started++;
    }
    if (p->started == 0) {
        if (p->has_async) {
            uv_close((uv_handle_t *)&p->async, NULL);
            /* the handle is closed on the next loop turn; leak the small struct rather than
             * free memory libuv still references */
        } else {
            pool_free(p);
        }
        return ld_err(err, LD_EIO, "threads: cannot start any worker thread");
    }
    p->nthreads = p->started;
    *out = &p->base;
    return LD_OK;
}

static void pool_submit(Executor *x, ExecItem *it) {
    Pool *p = (Pool *)x;
    it->next = NULL;
    p->pending++;
    pthread_mutex_lock(&p->mu);
    if (p->todo_tail) p->todo_tail->next = it;
    else p->todo_head = it;
    p->todo_tail = it;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static ExecItem *pool_cancel_job(Executor *x, int64_t job_id) {
    Pool *p = (Pool *)x;
    int n = 0;
    pthread_mutex_lock(&p->mu);
    ExecItem *out = exec_list_take(&p->todo_head, &p->todo_tail, job_id, &n);
    for (int i = 0; i < p->started; i++)
        if (p->held[i] && p->held[i]->work.job_id == job_id) item_cancel(p->held[i]);
    pthread_mutex_unlock(&p->mu);
    p->pending -= n;
    return out;
}

static int pool_workers(const Executor *x) { return ((const Pool *)x)->nthreads; }

static int pool_busy(const Executor *x) {
    Pool *p = (Pool *)x;
    pthread_mutex_lock(&p->mu);
    int b = p->busy;
    pthread_mutex_unlock(&p->mu);
    return b;
}

static int pool_pending(const Executor *x) { return ((const Pool *)x)->pending; }

cJSON *exec_local_worker_json(int threads, long evals_done, const char *state) {
    char host[256] = "?";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "host", host);
    cJSON_AddNumberToObject(w, "pid", (double)getpid());
    cJSON_AddNumberToObject(w, "threads", threads);
    cJSON_AddNumberToObject(w, "evals_done", (double)evals_done);
    cJSON_AddStringToObject(w, "state", state);
    cJSON_AddTrueToObject(w, "local");
    return w;
}

static cJSON *pool_workers_json(Executor *x) {
    Pool *p = (Pool *)x;
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&p->mu);
    cJSON *w = exec_local_worker_json(p->nthreads, p->evals_done, p->stop ? "stopped" : "alive");
    cJSON *leases = cJSON_AddArrayToObject(w, "leases");
    for (int i = 0; i < p->started; i++) {
        if (!p->held[i]) continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "job_id", (double)p->held[i]->work.job_id);
        cJSON_AddNumberToObject(l, "seq", (double)p->held[i]->work.seq);
        cJSON_AddItemToArray(leases, l);
    }
    pthread_mutex_unlock(&p->mu);
    cJSON_AddItemToArray(arr, w);
    return arr;
}

static ExecItem *pool_stop(Executor *x) {
    Pool *p = (Pool *)x;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    int n = 0;
    ExecItem *list = exec_list_take(&p->todo_head, &p->todo_tail, -1, &n);
    for (int i = 0; i < p->started; i++)
        if (p->held[i]) item_cancel(p->held[i]);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->pending -= n;
    return list;
}

static void on_async_closed(uv_handle_t *h) { pool_free(h->data); }

static void pool_close(Executor *x) {
    Pool *p = (Pool *)x;
    if (!p) return;
    if (!p->stop) exec_items_free(pool_stop(x)); /* not expected: callers stop first */
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    /* results that raced with the stop are handed over before the executor goes */
    pool_sweep(x, 0);
    if (p->has_async) uv_close((uv_handle_t *)&p->async, on_async_closed);
    else pool_free(p);
}

const ExecutorMethods exec_threads = {
    .name = "threads",
    .open = pool_open,
    .submit = pool_submit,
    .cancel_job = pool_cancel_job,
    .sweep = pool_sweep,
    .stop = pool_stop,
    .close = pool_close,
    .workers = pool_workers,
    .busy = pool_busy,
    .pending = pool_pending,
    .workers_json = pool_workers_json,
};

static const ExecutorMethods *const backends[] = {&exec_threads, NULL};

const ExecutorMethods *exec_find(const char *name) {
    for (int i = 0; backends[i]; i++)
        if (name && !strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

int exec_open(const char *name, const ExecConfig *cfg, Executor **out, char *err) {
    const ExecutorMethods *m = exec_find(name);
    if (!m) return ld_err(err, LD_EINVAL, "executor \"%.40s\": unknown (known: threads)", name ? name : "");
    return m->open(cfg, out, err);
}
