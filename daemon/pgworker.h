/* pgworker.h: the loop of a worker process fed by the PostgreSQL queue (the core of `lossd
 * worker`, issue 11): N evaluator threads, and the calling thread doing every queue call. That
 * thread keeps one leased item ready per evaluator (so an evaluator never waits for a round
 * trip), completes results behind them, heartbeats the leases, drops ready items that were
 * cancelled or re-leased, fails malformed rows, reports late-result mismatches loudly, and
 * reconnects after a lost connection. What an evaluation is comes from the caller (PgwEvalFn),
 * so this loop knows nothing of tasks or losses. */
#ifndef PGWORKER_H
#define PGWORKER_H

#include <signal.h>
#include <stdio.h>

#include "../storage/pgqueue.h"

/* Evaluates one leased item: item->item is a JSON object (the queue checked that much; the
 * callback checks everything in it). Runs on an evaluator thread, several at once: must be
 * thread-safe. Returns LD_OK with *result (malloc'd JSON object text, taken) and *fingerprint
 * (malloc'd text compared against a duplicate's, taken; NULL: the result text is compared), or
 * a negative code with a reason (LD_ERR_MAX): the evaluation then fails with that reason.
 * *cancel is raised while it runs when the item is no longer this worker's (cancelled or
 * re-leased: seen at a heartbeat) or, with PgwOpts.cancel_on_stop, when the worker stops: the
 * callback may then return PGW_CANCELLED, and nothing is written (the item goes back to the
 * queue when the worker stops or its lease runs out). */
#define PGW_CANCELLED 1
typedef int (*PgwEvalFn)(void *ctx, const PgqItem *item, const volatile int *cancel, char **result,
                         char **fingerprint, char *reason);

typedef struct PgwOpts {
    const char *host;   /* the workers table's host; NULL: gethostname() */
    int threads;        /* evaluator threads, 1 to 256 */
    long max_evals;     /* stop after this many completions (0: no limit) */
    double idle_exit_s; /* stop once nothing was leased or running for this long (0: never) */
    const volatile sig_atomic_t *stop; /* non-zero (a signal handler may set it): stop leasing,
                                        * finish and complete what runs, hand the rest back */
    FILE *log;                         /* mismatches, reconnects, failures; NULL: stderr */
    int cancel_on_stop; /* a stop also cancels what runs (a daemon's own threads), instead of
                         * finishing it (a `lossd worker` on SIGTERM) */
    int nice;           /* added to each evaluator thread's nice value (0: none) */
} PgwOpts;

typedef struct PgwStats {
    int64_t worker_id;
    long done;       /* results stored first (PGQ_DONE), failures included */
    long failed;     /* of which failed: the callback's reason or a malformed row */
    long duplicates; /* late results that agreed */
    long mismatches; /* late results that did not (each logged) */
    long gone;       /* cancelled, purged or abandoned before the result came, or dropped */
    long reconnects;
} PgwStats;

/* Registers a worker on the queue at conninfo (opened with qopts, PGQ_WORKER added) and runs
 * until o->stop, o->max_evals or o->idle_exit_s ends it; then marks the worker stopped, which
 * hands leased items nobody started back to the queue. A lost connection is retried (with
 * back-off, for as long as it takes) and the results waiting to be written are kept. Returns
 * LD_OK and fills *st (may be NULL), or a code with err when the queue cannot be opened at all
 * or the options are bad. Borrows everything. */
int pgw_run(const char *conninfo, const PgqOpts *qopts, const PgwOpts *o, PgwEvalFn fn, void *ctx,
            PgwStats *st, char *err);

#endif
