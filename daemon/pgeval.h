/* pgeval.h: what one leased queue item means (issue 11): the evaluation a worker runs, shared
 * by `lossd worker` and the daemon's own threads under `lossd serve --queue`. A task is found
 * by the hash the item names: its normalised spec is read from the queue once per process, its
 * CSV/.npy files by content (SHA-256, stored once in PostgreSQL by the daemon) into a local
 * cache, never by a path on the daemon's host; the loaded task must hash as the item says. */
#ifndef PGEVAL_H
#define PGEVAL_H

#include "../storage/pgqueue.h"

typedef struct PgeTasks PgeTasks;

/* A task cache with its own queue connection (conninfo and qopts borrowed during the call;
 * PGQ_WORKER added). data_dir: where fetched files are kept, named by their SHA-256 (created;
 * shared safely by processes); NULL: a temporary directory of this process, removed by
 * pge_free. Returns LD_OK and owned *out, or a code with err. */
int pge_open(const char *conninfo, const PgqOpts *qopts, const char *data_dir, PgeTasks **out,
             char *err);
void pge_free(PgeTasks *ts); /* NULL is fine */

/* A PgwEvalFn (pgworker.h) over ctx = a PgeTasks: decodes the work item, checks it against its
 * queue row, finds the task and runs eval_work, stopping when *cancel is raised (PGW_CANCELLED).
 * The fingerprint is the outcome without its wall time. Thread-safe. */
int pge_eval(void *ctx, const PgqItem *item, const volatile int *cancel, char **result,
             char **fingerprint, char *reason);

/* The daemon's side, on its queue thread: spec (a task's normalised spec, JSON text) with every
 * data file it names (its "data" and "labels" when not builtin:) read, stored with
 * pgq_data_put and listed under "data_sha256" ({key: hash}), as pgq_task_put should store it.
 * Returns LD_OK and owned *out (the spec unchanged when it names no file), or a code with err
 * (a file that cannot be read: LD_EIO; the queue's error). */
int pge_spec_with_data(Pgq *q, const char *spec, char **out, char *err);

#endif
