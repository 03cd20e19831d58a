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
    const char *queue_schema; /* and the PostgreSQL schema holding its tables (NULL: "lossd") */
    /* The "queue" backend runs this many evaluator threads of its own (leasing from the queue
     * like any `lossd worker`; 0: only remote workers evaluate). The "threads" backend ignores
     * it (workers is its thread count). */
    int local_threads;
    double queue_lease; /* seconds a local thread's lease lasts without a heartbeat; 0: 30 */
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
    /* Who evaluates: an owned JSON array, one object per worker process (this one included):
     * {host, pid, threads, evals_done, state, local (this process), leases: [{job_id, seq}]}.
     * Never waits for a server (the queue's is a snapshot at most about a second old, or as
     * new as workers_refresh made it). */
    cJSON *(*workers_json)(Executor *x);
    /* Makes the next workers_json current: returns 1 when that takes a moment (fn(ud) is
     * called on the loop once it is; before close, at the latest), 0 when workers_json is
     * current now (then fn is not called). NULL: always current (the thread pool). */
    int (*workers_refresh)(Executor *x, void (*fn)(void *ud), void *ud);
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
static inline cJSON *exec_workers_json(Executor *x) { return x->m->workers_json(x); }
static inline int exec_workers_refresh(Executor *x, void (*fn)(void *ud), void *ud) {
    return x->m->workers_refresh ? x->m->workers_refresh(x, fn, ud) : 0;
}
void exec_item_free(ExecItem *it); /* NULL is fine */
void exec_items_free(ExecItem *list); /* a list, as cancel_job and stop return */
/* The in-flight bookkeeping every backend shares: moves the items of job_id (every item when
 * job_id < 0) out of the list at *head, in order, and returns them as a list (owned by the
 * caller) with their count in *n (may be NULL). tail (may be NULL) is kept pointing at the
 * last item left. */
ExecItem *exec_list_take(ExecItem **head, ExecItem **tail, int64_t job_id, int *n);

/* A workers_json entry for this process (host, pid, threads, evals_done, state, local: true;
 * the caller adds its "leases"): returns owned JSON. */
cJSON *exec_local_worker_json(int threads, long evals_done, const char *state);

/* The thread pool's methods (daemon/pool.c). */
extern const ExecutorMethods exec_threads;

#endif
