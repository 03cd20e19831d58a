/* pgexec.h: the daemon's side of the PostgreSQL queue (issue 11), on a thread of its own so the
 * loop never waits for the server: work items submitted from any thread are published in
 * batches, results are collected and handed to a callback, expired leases are swept, and a
 * job's work is cancelled. Under the executor interface (executor.h) as the "queue" backend
 * (exec_queue, daemon/pgexec_queue.c) that `lossd serve --queue` selects; the worker side is
 * pgworker.h. */
#ifndef PGEXEC_H
#define PGEXEC_H

#include <stdio.h>

#include "../storage/pgqueue.h"
#include "executor.h"

typedef struct Pgx Pgx;

/* Called on the executor's thread for each result, in the queue's order (not seq order: the
 * engine orders them); r is borrowed, copy what you keep. A result is acknowledged once this
 * returns; one the daemon loses afterwards (it dies before storing it) is delivered again when
 * the daemon publishes that item again (pgq_publish re-arms stored results). A result may also
 * come twice (an acknowledgement lost with the connection): keep the first per (job_id, seq). */
typedef void (*PgxResultFn)(void *ud, const PgqResult *r);

typedef struct PgxOpts {
    double poll_s;  /* how often the results are read when nothing wakes the thread; 0: 0.02 */
    double sweep_s; /* how often expired leases are swept (pgq_expire); 0: 1 */
    FILE *log;      /* reconnects, sweeps that found something, errors; NULL: stderr */
    /* Called on the thread with pgx_start's ud once the listing a pgx_workers_refresh asked for
     * is in place (or could not be read: the last one stays); NULL: none. */
    void (*listed)(void *ud);
} PgxOpts;

typedef struct PgxStats {
    long submitted, published, results, requeued, abandoned, cancelled, reconnects, errors;
} PgxStats;

/* Opens the queue (qopts; PGQ_MIGRATE added: the daemon creates and migrates the schema) and
 * starts the thread. Returns LD_OK and an owned *out, or a code with err (the queue cannot be
 * opened). Borrows conninfo, qopts and o only during the call; fn and ud until pgx_close. */
int pgx_start(const char *conninfo, const PgqOpts *qopts, const PgxOpts *o, PgxResultFn fn,
              void *ud, Pgx **out, char *err);
/* Queues an item to publish (copied; never waits for the server; any thread). LD_EINVAL with
 * err when malformed (as pgq_publish checks), LD_ESTATE after pgx_close began. */
int pgx_submit(Pgx *x, int64_t job_id, int64_t seq, const char *task_hash, const char *item,
               char *err);
/* Queues a task's normalised spec to store under its hash (pgq_task_put) before any item
 * submitted after this call is published, so workers find the task the items name. Copied;
 * any thread. LD_ESTATE after pgx_close began. */
int pgx_task_put(Pgx *x, const char *task_hash, const char *spec, char *err);
/* Cancels a job's work: items not yet published are dropped, published ones deleted from the
 * queue (a worker running one finds it gone). Any thread. */
void pgx_cancel_job(Pgx *x, int64_t job_id);
/* The queue's workers as pgq_workers lists them, read with each sweep (about once a second):
 * an owned copy (an empty array before the first sweep). Any thread. */
cJSON *pgx_workers(Pgx *x);
/* Asks the thread to read the listing again now, instead of at the next sweep: returns a ticket
 * (> 0) that pgx_workers_fresh accepts once a listing read after this call is in place (and
 * o->listed is called), or 0 when the thread is not connected (the last listing is what there
 * is). Any thread. */
uint64_t pgx_workers_refresh(Pgx *x);
/* 1 once the listing asked for with ticket is in place (or its reading failed). Any thread. */
int pgx_workers_fresh(Pgx *x, uint64_t ticket);
/* The evaluator threads of the workers alive in that listing (0 before the first). Any thread. */
int pgx_alive_threads(Pgx *x);
/* Counters so far. Any thread. */
void pgx_stats(Pgx *x, PgxStats *st);
/* Publishes what was submitted, stops the thread, closes the queue, frees x (NULL is fine).
 * Results not yet read stay in the queue for the next start. */
void pgx_close(Pgx *x);

/* The "queue" executor (executor.h) over this thread, for `lossd serve --queue`: items are
 * published (their task's spec stored once per task) for `lossd worker` processes on any host,
 * outcomes come back on the loop as they arrive; cfg->queue is the conninfo. cancel_job and
 * stop take back every item of the job (every item) not yet handed back and delete the job's
 * rows (cancel only; after a stop, workers keep going and a restart collects their results);
 * a result arriving for an item taken back is ignored. cfg->local_threads evaluator threads of
 * this process lease from the same queue like any `lossd worker` (pgworker.h, pgeval.h: one
 * path), at a lower priority than the loop; a stop cancels what they run and hands it back.
 * cfg->queue_schema names the queue's schema (several daemons share one database, one schema
 * each). workers() is the threads of the alive workers, local ones included (at least 1: the
 * daemon keeps that many times its per-worker depth in the queue); busy() the items in the
 * queue; workers_json() the queue's listing, this process's entry marked local. */
extern const ExecutorMethods exec_queue;

#endif
