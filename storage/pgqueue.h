/* pgqueue.h: the PostgreSQL work queue through which worker processes on any host evaluate for
 * one lossd daemon (issue 11; docs/scale-out.md). Every SQL statement of the queue lives in
 * pgqueue.c. SQLite (store.h) stays the daemon's source of truth; the queue only carries work
 * out and results back.
 *
 * Discipline:
 * - The queue is opaque to what it carries: a work item and a result are JSON text the caller
 *   made. Everything read back is checked before it is handed on (a JSON object of bounded size,
 *   ids in range, hashes in hex): a malformed row fails that one evaluation with a reason and
 *   nothing else. The queue carries no executable content.
 * - A Pgq is one libpq connection: one thread at a time per handle (open one per thread).
 * - Every function returns LD_OK or a negative LD_* code and writes "pgqueue: what: why" into
 *   err (LD_ERR_MAX bytes, may be NULL). Connection loss is LD_EIO; a caller may reopen.
 * - An evaluation is named by (job_id, seq) forever within one schema: one daemon database per
 *   schema; pgq_purge_job forgets a job.
 * - Strings returned in structs are owned by the struct and freed by its _free function. */
#ifndef PGQUEUE_H
#define PGQUEUE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/lossd.h"

#define PGQ_SCHEMA_VERSION 2     /* what this build creates and expects */
#define PGQ_ITEM_MAX (1 << 20)   /* bytes of a work item or a result */
#define PGQ_HASH_MAX 64          /* task hashes: 16 to 64 lowercase hex digits */
#define PGQ_FINGERPRINT_MAX 1024 /* bytes of a result's fingerprint */

typedef struct Pgq Pgq;

/* PgqOpts.flags */
enum {
    PGQ_MIGRATE = 1, /* create or migrate the schema (the daemon); else it must be current */
    PGQ_WORKER = 2,  /* synchronous_commit off for this session: a lease, heartbeat or result
                      * lost in a server crash is re-leased and re-run, never wrong */
};

typedef struct PgqOpts {
    const char *schema; /* PostgreSQL schema holding the tables; NULL: "lossd" ([a-z_][a-z0-9_]*) */
    int flags;
    double lease_s;   /* how long a lease lasts without a heartbeat; 0: 30 s */
    int max_attempts; /* leases an item may have before it is abandoned as failed; 0: 3 */
} PgqOpts;

/* Connects with a libpq conninfo string or postgresql:// URI (passwords belong in PGPASSFILE
 * or a PGSERVICE entry, not here: see pgq_conninfo_has_password), sets the session up (schema,
 * UTF-8, TCP keepalives and a TCP user timeout that notice a lost network within about a
 * minute unless the conninfo says otherwise) and, with PGQ_MIGRATE, creates or migrates the schema
 * (pgq_migrate). Without it the schema must be at PGQ_SCHEMA_VERSION: LD_ENOTFOUND when absent,
 * LD_ESTATE when older or newer. Errors: LD_EIO (cannot connect), LD_EINVAL (bad options). Returns
 * owned *out. */
int pgq_open(const char *conninfo, const PgqOpts *opts, Pgq **out, char *err);
void pgq_close(Pgq *q); /* NULL is fine */

/* The lease duration this handle uses (PgqOpts.lease_s or its default), in seconds. */
double pgq_lease_seconds(const Pgq *q);

/* Creates the schema or applies the migrations it lacks, all in one transaction holding an
 * advisory lock, so running it twice or from many processes at once is safe. *version (may be
 * NULL) receives the version now in place. LD_ESTATE when the schema is newer than this build. */
int pgq_migrate(Pgq *q, int *version, char *err);
/* The schema's version (0 when absent) without changing anything. */
int pgq_schema_version(Pgq *q, int *version, char *err);

/* 1 when conninfo (keywords or URI) carries a password, 0 when not, -1 when it does not parse. */
int pgq_conninfo_has_password(const char *conninfo);
/* Why conninfo must not be used from a command line (it does not parse, or holds a password,
 * which would show in process listings), or NULL when it is fine. */
const char *pgq_conninfo_problem(const char *conninfo);

/* ---- the daemon's side ------------------------------------------------------------------ */

typedef struct PgqWork {
    int64_t job_id, seq;   /* >= 0; (job_id, seq) names the evaluation */
    const char *task_hash; /* 16-64 lowercase hex digits: the task's content hash */
    const char *item;      /* the work item: a JSON object, at most PGQ_ITEM_MAX bytes */
} PgqWork;

/* Checks one item as pgq_publish will: LD_OK, or LD_EINVAL with err saying what is wrong. */
int pgq_work_check(const PgqWork *w, char *err);

/* Publishes n items in one transaction (one durable commit). An item whose (job_id, seq) is
 * already queued is skipped; one that already has a result is not queued again, but that result
 * is delivered again (unacknowledged), so a daemon that lost results it had acknowledged gets
 * them back by republishing what it lacks. *published (may be NULL) counts the rows added.
 * LD_EINVAL (nothing written) when an item is malformed. Borrows w. */
int pgq_publish(Pgq *q, const PgqWork *w, int n, int *published, char *err);

/* Deletes a job's queued and leased items (a worker holding one finds it gone when it
 * completes). Results already written stay until pgq_purge_job. *cancelled may be NULL. */
int pgq_cancel_job(Pgq *q, int64_t job_id, int *cancelled, char *err);
/* Forgets everything of a job: items, results and mismatch reports. */
int pgq_purge_job(Pgq *q, int64_t job_id, char *err);

/* The periodic sweep: leases that ran out are put back as pending (*requeued) unless the item
 * has had max_attempts leases, then it is abandoned: it gets a failed result with the reason
 * (*abandoned). Either count pointer may be NULL. Leasing does not depend on this sweep (a
 * lease query also takes expired items); it keeps listings true and ends retry loops. */
int pgq_expire(Pgq *q, int *requeued, int *abandoned, char *err);

typedef struct PgqResult {
    int64_t work_id, job_id, seq, worker_id; /* worker_id 0: the queue wrote it (abandoned) */
    char *result; /* the worker's JSON object (owned), or NULL when the evaluation failed in the
                   * queue: malformed item, abandoned lease, or a malformed result */
    char *error;  /* the reason when result is NULL (owned), else NULL */
} PgqResult;

/* Up to max results not yet acknowledged, oldest first, each checked (a malformed result
 * becomes result NULL with the reason). They are delivered again until pgq_results_ack, so
 * acknowledge only after the caller has stored them. Returns owned *out (pgq_results_free) and
 * the count in *n. */
int pgq_results(Pgq *q, int max, PgqResult **out, int *n, char *err);
int pgq_results_ack(Pgq *q, const int64_t *work_ids, int n, char *err);
void pgq_results_free(PgqResult *r, int n);

/* ---- a worker's side -------------------------------------------------------------------- */

/* Registers a worker process: host, pid, threads. Returns its id in *worker_id. */
int pgq_worker_register(Pgq *q, const char *host, int pid, int threads, int64_t *worker_id,
                        char *err);
/* Marks the worker stopped and hands its leases back at once (a clean exit). */
int pgq_worker_stop(Pgq *q, int64_t worker_id, char *err);

typedef struct PgqItem {
    int64_t id; /* the queue's row id: what complete, fail and heartbeat name */
    int64_t job_id, seq;
    int attempts; /* leases so far, this one included */
    char task_hash[PGQ_HASH_MAX + 1];
    char *item;           /* the work item, checked to be a JSON object (owned); NULL if bad */
    char bad[LD_ERR_MAX]; /* non-empty: the row is malformed and why; pgq_fail it */
} PgqItem;

/* Leases up to max items, oldest first, for lease_s seconds: pending items and items whose
 * lease ran out (SELECT ... FOR UPDATE SKIP LOCKED: concurrent leasers never get the same item
 * and never wait for each other). Returns owned *out (pgq_items_free) with *n items, 0 when the
 * queue is empty. Each item is checked; a malformed one comes back with bad set. */
int pgq_lease(Pgq *q, int64_t worker_id, int max, PgqItem **out, int *n, char *err);
void pgq_items_free(PgqItem *items, int n);

/* Extends every lease the worker still holds by lease_s and records that it is alive. The ids
 * still held go to held[0..max_held) (may be NULL) and their count to *n_held: an item missing
 * from them was cancelled or re-leased, and its work can stop. */
int pgq_heartbeat(Pgq *q, int64_t worker_id, int64_t *held, int max_held, int *n_held, char *err);

/* What a completion did. */
typedef enum PgqOutcome {
    PGQ_DONE = 0,      /* the first result for this item: stored */
    PGQ_DUPLICATE = 1, /* a result was already stored and this one agrees: ignored */
    PGQ_MISMATCH = 2,  /* a result was already stored and this one differs: ignored, recorded
                        * in the mismatch table, described in detail: report it loudly */
    PGQ_GONE = 3,      /* the item was cancelled or purged: ignored */
} PgqOutcome;

typedef struct PgqCompletion {
    PgqOutcome outcome;
    char detail[LD_ERR_MAX]; /* for PGQ_MISMATCH: which evaluation, which workers, both prints */
} PgqCompletion;

/* Stores the result of leased item work_id, whether or not the lease is still this worker's
 * (the first result wins; evaluations are deterministic, so a late one must agree). fingerprint
 * (may be NULL: the result text itself) is what two results are compared by: the deterministic
 * part of the result (metrics, steps), not its wall time. result must be a JSON object. */
int pgq_complete(Pgq *q, int64_t worker_id, int64_t work_id, const char *result,
                 const char *fingerprint, PgqCompletion *c, char *err);
/* Fails item work_id with a reason (malformed item, task data missing): the daemon gets a
 * result with result NULL and this error. Same outcomes as pgq_complete. */
int pgq_fail(Pgq *q, int64_t worker_id, int64_t work_id, const char *reason, PgqCompletion *c,
             char *err);

/* ---- tasks and their data, by content ---------------------------------------------------- */

/* Stores bytes (a user's CSV or .npy) once under their SHA-256 (64 hex digits into hash), so a
 * worker on another host never needs a path on the daemon's host. Sends the bytes only when the
 * hash is not stored yet. */
int pgq_data_put(Pgq *q, const void *bytes, size_t n, char hash[65], char *err);
/* Fetches the bytes stored under hash and checks their SHA-256. Returns owned *bytes (free(),
 * NUL-terminated for convenience) and *n. LD_ENOTFOUND when absent, LD_EINVAL for a bad hash
 * or bytes that do not match it. */
int pgq_data_get(Pgq *q, const char *hash, void **bytes, size_t *n, char *err);
/* Stores a task's normalised spec (a JSON object; its CSV or .npy contents referenced by
 * SHA-256, stored with pgq_data_put) under the task hash that work items carry, once. Putting
 * the same spec again does nothing; a different spec under a stored hash is LD_ESTATE. */
int pgq_task_put(Pgq *q, const char *task_hash, const char *spec, char *err);
/* The spec stored under task_hash, checked to be one JSON object: owned *spec (free()).
 * LD_ENOTFOUND when absent, LD_EINVAL for a bad hash or a malformed spec. */
int pgq_task_get(Pgq *q, const char *task_hash, char **spec, char *err);
/* SHA-256 of bytes as 64 lowercase hex digits and a NUL. */
void pgq_sha256_hex(const void *bytes, size_t n, char out[65]);

/* ---- listings ---------------------------------------------------------------------------- */

/* Owned JSON array, one object per worker, newest first: {id, host, pid, threads, evals_done,
 * started, last_seen (seconds since the epoch), state ("alive", "lost": no heartbeat for a
 * lease period, "stopped"), leases: [{job_id, seq, attempts, expires_in}]}. */
int pgq_workers(Pgq *q, cJSON **out, char *err);
/* Owned JSON object {pending, leased, results, unacked, mismatches}: counts. */
int pgq_counts(Pgq *q, cJSON **out, char *err);
/* Owned JSON array of mismatch reports, oldest first: {job_id, seq, work_id, first_worker,
 * late_worker, first, late (fingerprints), at}. */
int pgq_mismatches(Pgq *q, cJSON **out, char *err);

#endif
