/* executor.h: one interface for running work items, whoever runs them: a named table of
 * functions behind one header (as SQLite's sqlite3_vfs). The caller submits items, cancels a
 * job's queued work, sweeps finished items back (on a libuv loop they come back by themselves),
 * stops and closes; it never sees which backend runs. "threads" (daemon/pool.c: worker threads
 * in this process) is the first backend; a PostgreSQL queue feeding `lossd worker` processes
 * on other hosts is the next. The daemon, `lossd search` and `lossd bench` all use it. */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <stdint.h>
#include <uv.h>

#include "../common/work.h"
#include "../evaluator/eval.h"

/* One work item travelling caller -> worker -> caller. The caller fills work, task and its own
 * routing fields; the worker only reads them and writes out. */
typedef struct ExecItem {
    struct ExecItem *next;
    WorkItem work;        /* a copy: the engine's array is freed when its round ends */
    const Task *task;     /* borrowed, immutable: the task work.task_hash names, loaded here */
    int64_t round;        /* the caller's bookkeeping (the daemon: the job's round) */
    int idx;              /* the caller's bookkeeping (index in that round) */
    WorkOutcome out;      /* written by the worker */
    /* Set (by the executor only) when the item's job is cancelled or the executor stops while a
     * worker runs it: the training stops within a step and the outcome is WORK_CANCELLED. */
    volatile int cancel;
} ExecItem;

/* Called for every finished item, in completion order, on the loop thread (or inside
 * exec_sweep when there is no loop); takes the item. */
typedef void (*ExecDoneFn)(void *ud, ExecItem *it);

typedef struct ExecConfig {
    uv_loop_t *loop; /* NULL: no loop; finished items are handed over by exec_sweep */
    int workers;     /* >= 1 */
    ExecDoneFn done;
    void *ud;
    const char *queue; /* the "queue" backend (daemon/pgexec.h): its libpq conninfo or URI */
} ExecConfig;

typedef struct Executor Executor;

/* A backend. Every Executor starts with a pointer to its methods. */
typedef struct ExecutorMethods {
    const char *name;
    int (*open)(const ExecConfig *cfg, Executor **out, char *err);
    void (*submit)(Executor *x, ExecItem *it); /* takes it */
    /* Takes back the items of job_id no worker has started (a list, owned by the caller; the
     * done callback never sees them). Items being evaluated are told to stop: they come back
     * through the done callback as usual, WORK_CANCELLED unless they had just finished. */
    ExecItem *(*cancel_job)(Executor *x, int64_t job_id);
    /* Hands finished items to the done callback; wait: first block until at least one is
     * finished (when any is pending). Returns the number handed over. */
    int (*sweep)(Executor *x, int wait);
    /* Stops taking items; items not started are returned (a list, owned by the caller), items
     * being evaluated are told to stop (as cancel_job) and still arrive through the done
     * callback, like those that finished. */
    ExecItem *(*stop)(Executor *x);
    /* After stop and pending() == 0: joins the workers and frees the executor (on a loop,
     * once its handles are closed). */
    void (*close)(Executor *x);
    int (*workers)(const Executor *x);
    int (*busy)(const Executor *x);    /* items being evaluated now */
    int (*pending)(const Executor *x); /* items submitted and not yet handed back */
} ExecutorMethods;

struct Executor {
    const ExecutorMethods *m;
};

/* The backend of that name ("threads"), or NULL. */
const ExecutorMethods *exec_find(const char *name);
/* exec_find(name)->open, with an error naming the backends when the name is unknown. */
int exec_open(const char *name, const ExecConfig *cfg, Executor **out, char *err);

static inline void exec_submit(Executor *x, ExecItem *it) { x->m->submit(x, it); }
static inline ExecItem *exec_cancel_job(Executor *x, int64_t job_id) { return x->m->cancel_job(x, job_id); }
static inline int exec_sweep(Executor *x, int wait) { return x->m->sweep(x, wait); }
static inline ExecItem *exec_stop(Executor *x) { return x->m->stop(x); }
static inline void exec_close(Executor *x) { x->m->close(x); }
static inline int exec_workers(const Executor *x) { return x->m->workers(x); }
static inline int exec_busy(const Executor *x) { return x->m->busy(x); }
static inline int exec_pending(const Executor *x) { return x->m->pending(x); }
void exec_item_free(ExecItem *it); /* NULL is fine */
void exec_items_free(ExecItem *list); /* a list, as cancel_job and stop return */

/* The thread pool's methods (daemon/pool.c). */
extern const ExecutorMethods exec_threads;

#endif
