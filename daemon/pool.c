/* pool.c: the worker pool: N threads run eval_run on items the loop hands them and give the
 * results back through a mutex-protected done queue and uv_async_send. Workers never touch the
 * store, the engines or any libuv handle other than the async. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct Pool {
    uv_async_t async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    int nthreads, started;
    PoolItem *todo_head, *todo_tail; /* submitted, not yet taken by a worker */
    PoolItem *done_head, *done_tail; /* finished, not yet handed to the loop */
    int busy;    /* items a worker holds */
    int pending; /* submitted and not yet handed back to the loop (loop thread only) */
    int stop;
    PoolDoneFn done;
    void *ud;
};

void pool_item_free(PoolItem *it) { free(it); }

/* Workers run at a lower priority than the loop (Linux nice values are per thread; this is
 * added to the process's own): with as many workers as cores, the loop would otherwise wait
 * for a CPU behind the training it feeds, and clients with it. */
#define POOL_WORKER_NICE 5

static void *worker_main(void *arg) {
    Pool *p = arg;
    /* best effort: a worker at the loop's priority is slower to answer clients, not wrong */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) (void)setpriority(PRIO_PROCESS, tid, prio + POOL_WORKER_NICE);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->todo_head) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        PoolItem *it = p->todo_head;
        p->todo_head = it->next;
        if (!p->todo_head) p->todo_tail = NULL;
        it->next = NULL;
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        /* pre-check, then training; failures are typed outcomes */
        eval_work(it->task, &it->work, &it->out);
        it->rc = LD_OK;

        pthread_mutex_lock(&p->mu);
        p->busy--;
        if (p->done_tail) p->done_tail->next = it;
        else p->done_head = it;
        p->done_tail = it;
        pthread_mutex_unlock(&p->mu);
        uv_async_send(&p->async);
    }
}

static void on_async(uv_async_t *h) {
    Pool *p = h->data;
    pthread_mutex_lock(&p->mu);
    PoolItem *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (list) {
        PoolItem *next = list->next;
        list->next = NULL;
        p->pending--;
        p->done(p->ud, list);
        list = next;
    }
}

int pool_start(uv_loop_t *loop, int nworkers, PoolDoneFn done, void *ud, Pool **out, char *err) {
    Pool *p = calloc(1, sizeof *p);
    if (!p) return ld_err(err, LD_ENOMEM, "pool: out of memory");
    p->done = done;
    p->ud = ud;
    p->nthreads = nworkers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)nworkers, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return ld_err(err, LD_ENOMEM, "pool: out of memory");
    }
    int rc = uv_async_init(loop, &p->async, on_async);
    if (rc != 0) {
        free(p->threads);
        free(p);
        return ld_err(err, LD_EIO, "pool: uv_async_init: %s", uv_strerror(rc));
    }
    p->async.data = p;
    for (int i = 0; i < nworkers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        p->started++;
    }
    if (p->started == 0) {
        uv_close((uv_handle_t *)&p->async, NULL);
        /* the handle is closed on the next loop turn; leak the small struct rather than free
         * memory libuv still references */
        return ld_err(err, LD_EIO, "pool: cannot start any worker thread");
    }
    p->nthreads = p->started;
    *out = p;
    return LD_OK;
}

void pool_submit(Pool *p, PoolItem *it) {
    it->next = NULL;
    p->pending++;
    pthread_mutex_lock(&p->mu);
    if (p->todo_tail) p->todo_tail->next = it;
    else p->todo_head = it;
    p->todo_tail = it;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int pool_workers(const Pool *p) { return p->nthreads; }

int pool_busy(const Pool *p) {
    Pool *q = (Pool *)p;
    pthread_mutex_lock(&q->mu);
    int b = q->busy;
    pthread_mutex_unlock(&q->mu);
    return b;
}

int pool_pending(const Pool *p) { return p->pending; }

PoolItem *pool_stop(Pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    PoolItem *list = p->todo_head;
    p->todo_head = p->todo_tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (PoolItem *it = list; it; it = it->next) p->pending--;
    return list;
}

static void on_async_closed(uv_handle_t *h) {
    Pool *p = h->data;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

void pool_close(Pool *p) {
    if (!p) return;
    if (!p->stop) { /* not expected: callers stop first */
        PoolItem *it = pool_stop(p);
        while (it) {
            PoolItem *next = it->next;
            pool_item_free(it);
            it = next;
        }
    }
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    /* results that raced with the stop are handed over before the handle goes */
    on_async(&p->async);
    uv_close((uv_handle_t *)&p->async, on_async_closed);
}
