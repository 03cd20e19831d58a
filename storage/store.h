/* store.h: lossd's persistent state in SQLite (jobs, tasks, candidates, evaluations, search
 * state, schedules, events). Every SQL statement of the project lives behind this header.
 *
 * Discipline (docs/storage.md):
 * - One writer: a Store opened for writing is used by one thread (the daemon's loop). A second
 *   process opening the same database for writing is refused (flock on PATH.lock).
 * - Readers may open their own handle with STORE_READONLY (WAL: they never block the writer).
 * - A Store is not thread-safe: one thread at a time per handle.
 * - Every write function runs in its own BEGIN IMMEDIATE transaction and has committed when it
 *   returns LD_OK, unless the caller opened one with store_begin: then it joins the caller's
 *   transaction and nothing is durable until store_commit returns LD_OK.
 * - Every function returns LD_OK or a negative LD_* code and writes "store: what: why" into err
 *   (LD_ERR_MAX bytes, may be NULL). Write functions on a read-only handle return LD_EPERM.
 * - JSON arguments are borrowed (const cJSON *, NULL allowed where noted); JSON results are
 *   returned owned through cJSON **out and freed once by the caller with cJSON_Delete.
 * - Times are wall-clock seconds since the epoch (double, ld_wall_s). 64-bit hashes appear in
 *   JSON as 16 lowercase hex digits; seeds as numbers (strings when above 2^53). */
#ifndef STORE_H
#define STORE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/lossd.h"
#include "../common/work.h"

typedef struct Store Store;

/* store_open flags */
enum {
    STORE_READONLY = 1, /* no lock, no migrations; the schema must be current; writes: LD_EPERM */
    STORE_NOSYNC = 2,   /* synchronous=NORMAL instead of FULL: commits survive a process crash
                         * but not a power loss (benchmarks, tests) */
};

/* Opens (creating when absent, unless STORE_READONLY) the database at path: WAL mode, foreign
 * keys, busy_timeout, migrations applied inside one transaction when the file is older than this
 * build. Symlinks in path are resolved first. A writer takes an exclusive flock on the database
 * file itself (held on an open descriptor, so it follows the inode whatever name reaches it) and
 * writes its pid into "PATH.lock" for the message; when another process holds it: LD_EBUSY
 * "store: database x.db is in use by another lossd (pid N)". A file with more than one hard link
 * is refused (LD_ESTATE): SQLite keeps one WAL per name.
 * Errors: LD_EIO (cannot open or create, not a database, corrupt), LD_ESTATE (schema newer than
 * this build, hard links), LD_EBUSY. Returns an owned store in *out. */
int store_open(const char *path, int flags, Store **out, char *err);
void store_close(Store *s); /* NULL is fine; an open transaction is rolled back */

/* Explicit transactions (BEGIN IMMEDIATE). Not nested: store_begin inside one is LD_ESTATE.
 * store_rollback never fails visibly (it is the error path). */
int store_begin(Store *s, char *err);
int store_commit(Store *s, char *err);
void store_rollback(Store *s);
int store_in_transaction(const Store *s);

/* LD_OK while the writer's database file is still where it was opened; LD_EIO with err when it
 * was deleted (its directory removed) or replaced, after which every write is refused with that
 * message (every write transaction checks first). Readers: always LD_OK. */
int store_check_alive(Store *s, char *err);
/* How many storage failures (disk full, I/O error, locked, out of memory, deleted file) this
 * handle has met: a caller compares it before and after a failing call to tell a storage fault,
 * which passes, from a refused request, which does not. */
uint64_t store_faults(const Store *s);
/* Test hook (storage/faultvfs.c, active only under $LOSSD_FAULT): makes the nth counted operation
 * from now fail (n <= 0: none). LD_ESTATE when fault injection is off. */
int store_fault_arm(long long n);
long long store_fault_fired(void); /* operations failed by it so far (0 when inactive) */

/* ---- jobs ------------------------------------------------------------------------------- */

/* Job states, as stored: JOB_STATE_LIST's names ("queued" ... "cancelled", "expired"). */
int store_state_valid(const char *state); /* 1 if state is one of them */
#define JOB_STATE_NAMES "queued, running, paused, done, failed, cancelled, expired"

typedef struct StoreJobNew {
    const cJSON *spec;        /* normalised job (job_json); required; borrowed */
    const char *name;         /* may be NULL */
    int priority;             /* larger runs first */
    uint64_t seed;
    const char *client_token; /* NULL or "": none; else UNIQUE (idempotent submit) */
    int64_t schedule_id;      /* 0: not made by a schedule */
    int64_t budget_evals;     /* 0: unknown */
} StoreJobNew;

/* Inserts a job in state "queued". When client_token names an existing job nothing is written,
 * *job_id receives the existing id and *existed is set to 1 (else 0). existed may be NULL. */
int store_job_insert(Store *s, const StoreJobNew *j, int64_t *job_id, int *existed, char *err);
/* Sets the state; error (may be NULL) replaces the error column. "running" sets started (first
 * time only); "done" "failed" "cancelled" "expired" set finished. LD_ENOTFOUND, LD_EINVAL (bad state). */
/* Deletes a job with everything stored under it: its candidates, evaluations (the cross-job
 * result sums drop them), saved engine state, task links and events. LD_ENOTFOUND. The caller
 * makes sure the job is not running. */
int store_job_delete(Store *s, int64_t job_id, char *err);
/* Sets a job's name (NULL: none). LD_ENOTFOUND. */
int store_job_rename(Store *s, int64_t job_id, const char *name, char *err);
int store_job_set_state(Store *s, int64_t job_id, const char *state, const char *error,
                        char *err);
/* Progress counters; best_fitness NaN stores NULL; leaderboard and stats may be NULL (kept as
 * they were). */
int store_job_update_progress(Store *s, int64_t job_id, int64_t evals_done, double best_fitness,
                              const cJSON *leaderboard, const cJSON *stats, char *err);
/* Owned object with every column (spec, leaderboard, stats parsed) and "tasks": [{id, hash,
 * family, name, metric, idx, holdout}]. LD_ENOTFOUND when absent. */
int store_job_get(Store *s, int64_t job_id, cJSON **out, char *err);
/* Owned array of job summaries (no spec, leaderboard or stats), newest first. state NULL: all;
 * limit <= 0: no limit. */
int store_job_list(Store *s, const char *state, int limit, cJSON **out, char *err);
/* Ids of jobs in state, oldest first (recovery). *ids is owned (free()), NULL when *n is 0. */
int store_jobs_in_state(Store *s, const char *state, int64_t **ids, int *n, char *err);
/* Links a task to a job at position idx (selection tasks first, then holdout ones).
 * Idempotent on (job_id, idx). */
int store_job_add_task(Store *s, int64_t job_id, int idx, int64_t task_id, int holdout,
                       char *err);

/* ---- tasks ------------------------------------------------------------------------------ */

/* Returns in *task_id the row of the task with this hash, inserting it when new. family is the
 * family's name ("classification", ...), metric the selection metric and higher_better its
 * direction (task_metric, task_higher_better); spec is borrowed and may be NULL. */
int store_task_upsert(Store *s, uint64_t hash, const char *family, const char *name,
                      const char *metric, int higher_better, const cJSON *spec, int64_t *task_id,
                      char *err);

/* ---- candidates ------------------------------------------------------------------------- */

/* Stores a candidate of a job (idempotent on (job_id, cand): an existing row is kept and its id
 * returned). expr is the canonical text, hash expr_hash, parents a JSON array of job-local cand
 * ids (may be NULL), op the operation that made it ("init", "mutate", "crossover", "warm", ...),
 * origin where it came from ("search", "seed", "warm", "proposed:<source>"; NULL: from op, a
 * proposal's source unknown), family the task family name. row_id may be NULL. */
int store_candidate_put(Store *s, int64_t job_id, int64_t cand, const char *expr, uint64_t hash,
                        int size, const cJSON *parents, const char *op, const char *origin,
                        const char *family, int64_t *row_id, char *err);
/* Sets the candidate's fitness (NaN: NULL, unranked) and its rank tier (search_tier: higher
 * ranks first; -1: NULL, ranked after every tier). A job's leaderboard orders by tier, then
 * fitness, then cand: the engine's ranking (highest fidelity level reached first). set_fitness
 * leaves the tier NULL. LD_ENOTFOUND when absent. */
int store_candidate_set_rank(Store *s, int64_t job_id, int64_t cand, double fitness, int tier,
                             char *err);
int store_candidate_set_fitness(Store *s, int64_t job_id, int64_t cand, double fitness,
                                char *err);
/* The engine's final comparisons of a candidate (search_leaderboard's "final"; borrowed), kept
 * with it; store_candidate_final reads them back (*out owned, NULL when none). LD_ENOTFOUND when
 * the candidate is absent. */
int store_candidate_set_final(Store *s, int64_t job_id, int64_t cand, const cJSON *final,
                              char *err);
int store_candidate_final(Store *s, int64_t job_id, int64_t cand, cJSON **out, char *err);
/* Adds "gains" to o (a leaderboard entry or a candidate) from its stored final comparisons:
 * {"search": {...}, "horizon": {...}, "label": ...} (docs/jobs.md, "At your horizon"); nothing
 * when final is NULL or has no comparison. Borrows final. */
void store_final_gains(cJSON *o, const cJSON *final);
/* Owned object: {cand, expr, hash, size, op, family, fitness, parents, created,
 * lineage: [ancestors, nearest first, each {cand, expr, op, parents, fitness}] (at most 64),
 * evaluations: [{seq, task, task_hash, seed, steps, steps_run, status, metric, val, test,
 * final_loss, metrics, curve, wall_ms, error}] by seq}. LD_ENOTFOUND when absent. */
int store_candidate_get(Store *s, int64_t job_id, int64_t cand, cJSON **out, char *err);

/* ---- proposals (candidate.propose) ------------------------------------------------------ */

/* One proposal sent into a running job, as the daemon stores it when it answers: pseq its
 * number in the job (0, 1, ...: the order the engine took them), point the engine's point it
 * arrived at (search_point), expr the text as sent, source its label, note (may be NULL),
 * status "accepted" / "duplicate" / "refused", cand the candidate made or matched (-1: none),
 * detail the reason or the refusal's message (may be NULL). */
typedef struct StoreProposal {
    int64_t job_id, pseq, point;
    const char *expr, *source, *note, *status;
    int64_t cand;
    const char *detail;
} StoreProposal;
int store_proposal_put(Store *s, const StoreProposal *p, char *err);
/* The number of proposals stored for the job. */
int store_proposal_count(Store *s, int64_t job_id, int64_t *n, char *err);
/* The job's proposals with pseq >= from, in order: owned array of {pseq, point, expr, source}. */
int store_proposals_from(Store *s, int64_t job_id, int64_t from, cJSON **out, char *err);

/* ---- evaluations ------------------------------------------------------------------------ */

typedef struct StoreEvalKey {
    int64_t job_id;
    int64_t seq;     /* the engine's dense sequence number (WorkItem.seq) */
    int64_t cand;    /* job-local candidate id; the candidate must have been stored */
    int64_t task_id; /* from store_task_upsert */
    uint64_t seed;
    int steps;       /* requested fidelity (WorkItem.steps); r->steps is what ran */
    int interrupted; /* 1: status "interrupted" (the run was stopped, not finished) */
} StoreEvalKey;

/* Stores a finished evaluation: status "ok" when r->ok, "failed" otherwise, "interrupted" when
 * k->interrupted. Idempotent on (job_id, seq): an existing "ok" or "failed" row is kept
 * (*inserted 0), an "interrupted" one is replaced. inserted may be NULL. Committed on return
 * unless inside store_begin (then at store_commit): report results to clients only after.
 * LD_ENOTFOUND when the candidate or task is not stored. Borrows r. */
int store_eval_put(Store *s, const StoreEvalKey *k, const EvalResult *r, int *inserted,
                   char *err);
/* Looks up (job_id, seq) for resume: *found 1 and *out filled (metric, val, test, steps,
 * wall_ms, final_loss, curve, extra metrics, error) when a finished ("ok" or "failed") row
 * exists; *found 0 otherwise (interrupted rows do not count). */
int store_eval_get_seq(Store *s, int64_t job_id, int64_t seq, int *found, EvalResult *out,
                       char *err);
/* A job's state: an enum in memory, its name in the store and on the wire (docs/jobs.md). */
#define JOB_STATE_LIST(X) \
    X(JOB_QUEUED, "queued") X(JOB_RUNNING, "running") X(JOB_PAUSED, "paused") \
    X(JOB_DONE, "done") X(JOB_FAILED, "failed") X(JOB_CANCELLED, "cancelled") \
    X(JOB_EXPIRED, "expired") /* a schedule's run stopped at its until deadline */
typedef enum JobState {
#define JOB_STATE_ENUM(e, s) e,
    JOB_STATE_LIST(JOB_STATE_ENUM)
#undef JOB_STATE_ENUM
    JOB_NSTATES
} JobState;
const char *job_state_name(JobState s);            /* "queued", ...; "unknown" out of range */
int job_state_parse(const char *name, JobState *out); /* LD_OK or LD_EINVAL */
/* The number of stored jobs in each state (one indexed query: server.status asks it often). */
int store_job_counts(Store *s, int64_t counts[JOB_NSTATES], char *err);

/* The same for typed outcomes (common/work.h), as the daemon and `lossd search` store them:
 * WORK_OK and WORK_FAILED as "ok" / "failed"; WORK_REJECTED as "failed" with the reason after
 * STORE_REJECTED_PREFIX (the schema's status column predates typed outcomes, and the prefix is
 * what users already read in candidate.get); WORK_CANCELLED as "interrupted". Reading back
 * decodes the same way. */
#define STORE_REJECTED_PREFIX "rejected before training: "
int store_outcome_put(Store *s, const StoreEvalKey *k, const WorkOutcome *o, int *inserted,
                      char *err);
int store_outcome_get_seq(Store *s, int64_t job_id, int64_t seq, int *found, WorkOutcome *out,
                          char *err);
/* Evaluations of a job that count against its budget: finished ones, rejections excluded. */
int store_count_evals(Store *s, int64_t job_id, int64_t *n, char *err);
/* Cross-job result cache: the newest finished evaluation of this (expression hash, task hash,
 * seed, steps) in any job, "ok" ones before "failed" ones. *found 0 when none. */
int store_result_lookup(Store *s, uint64_t expr_hash, uint64_t task_hash, uint64_t seed,
                        int steps, int *found, EvalResult *out, char *err);
/* Owned array of the job's evaluations with seq > since_seq, by seq, at most limit (<= 0: all).
 * Each as in store_candidate_get plus "cand". */
int store_evals_for_job(Store *s, int64_t job_id, int64_t since_seq, int limit, cJSON **out,
                        char *err);
/* Number of finished evaluations of a job. */
int store_evals_count(Store *s, int64_t job_id, int64_t *n, char *err);

/* What earlier jobs measured, for the learned pre-screen (search_set_prior, docs/jobs.md "The
 * learned pre-screen"): every stored job's selection tasks of family at the job's first fidelity
 * level, one row per candidate with a finished run there, the rows on the task with hash
 * task_hash first (the new job's first task; 0: none), then newest jobs first, at most limit rows.
 * Owned JSON in *out: {"tasks": [{"hash": 16 hex digits, "higher_better": 0|1, "spec": {...} or
 * null}], "rows": [[job, task (index into tasks), steps, ref (1: the job's baseline or a panel
 * loss), n_ok, n_failed, val (the mean over the ok runs, or null), expr], ...]}. Call it before
 * the job's own evaluations are stored (they would be read as an earlier job's). */
int store_prior_read(Store *s, const char *family, uint64_t task_hash, int limit, cJSON **out,
                     char *err);

/* ---- search state ----------------------------------------------------------------------- */

/* Replaces the job's saved engine state (search_save) at a round boundary. Borrows state. */
int store_state_put(Store *s, int64_t job_id, int64_t round, const cJSON *state, char *err);
/* *state owned; LD_ENOTFOUND when the job has none. round may be NULL. */
int store_state_get(Store *s, int64_t job_id, int64_t *round, cJSON **state, char *err);

/* ---- leaderboards and warm starts ------------------------------------------------------- */

/* The job's best k candidates (k <= 0: 10) by fitness, best first, unranked (NULL fitness)
 * excluded. Owned array of {rank, cand, expr, hash, size, op, fitness, parents,
 * tasks: [{task (its name), task_hash, holdout, metric, steps, n, val_mean, val_std,
 * test_mean, test_std}]}: per task, over seeds, the "ok" evaluations at the highest fidelity that candidate
 * reached on it (std: sample standard deviation, 0 when n is 1). */
int store_leaderboard_job(Store *s, int64_t job_id, int k, cJSON **out, char *err);
/* The entries of store_leaderboard_job(s, job_id, k) whose op is op (e.g. "baseline"), with
 * their ranks, without the cost of the others' per-task numbers. */
int store_leaderboard_job_op(Store *s, int64_t job_id, int k, const char *op, cJSON **out,
                             char *err);
/* The best distinct expressions across all jobs on tasks of family (k <= 0: 10). Ranking
 * (docs/storage.md): for each task of the family, every expression's mean validation value (of
 * metric, or of each task's selection metric when metric is NULL; metric may be any metric the
 * family's evaluations store, e.g. balanced_accuracy, ranked in direction higher_better on the
 * tasks whose own metric it is not) over seeds at its highest
 * fidelity is turned into a percentile rank among the expressions tried on that task (cume_dist
 * in the task's direction: 1 best, 1/n worst); the score is the mean percentile over the tasks
 * it was tried on. Ties: more tasks first, then more evaluations. Owned array of {rank, expr, hash, score, tasks, jobs, evals,
 * val_mean, test_mean}. */
int store_leaderboard_family(Store *s, const char *family, int k, const char *metric,
                             int higher_better, cJSON **out, char *err);
/* A memo of text derived from one job's stored rows (the leaderboard.query reply): what
 * store_memo_put kept for (job_id, key), or NULL once any write touched the job's candidates,
 * evaluations or tasks, or deleted it, since (or when it was dropped for another: a few
 * hundred are kept). Borrowed until the next store call. Nothing is kept while a transaction
 * is open (its rows may still be rolled back). */
const char *store_memo_get(Store *s, int64_t job_id, const char *key);
void store_memo_put(Store *s, int64_t job_id, const char *key, const char *text);
/* The leaderboard's semantics in one place (storage/leaderboard.c): what the RPC handler,
 * lossctl, the HTML report and the Python client show, computed here and nowhere else. */
typedef struct StoreLbQuery {
    int64_t job_id;     /* a job's leaderboard (0: a family's, below) */
    const char *family; /* every job's expressions on tasks of this family */
    int k;              /* entries (<= 0: 10) */
    const char *metric; /* NULL: rank by fitness (a job) or each task's own metric (a family) */
    int higher_better;  /* metric's direction (1: larger is better); unused without metric */
} StoreLbQuery;
/* A leaderboard as the wire sends it: owned {job_id | family, metric ("fitness" when none),
 * higher_better (of what "mean" and the ranking read), entries, baseline?}.
 * A job's entries are store_leaderboard_job's with, each, "mean" and "spread" over its
 * selection tasks (the sample standard deviation of its runs on a task, n - 1, averaged over
 * the tasks; null when a task has one run: one run has no spread), "runs" (the fewest runs of a
 * counted task) and "metrics" {task: {metric: {mean, spread, test_mean, n}}}. With a metric
 * (one of the tasks' own or any the runs store), those numbers are that metric's over the runs
 * at each task's most steps, and the first 1000 by fitness are re-ranked by its mean in its
 * direction (ties keep the fitness order); LD_EINVAL "params.metric: no task of job N reports
 * 'M'" when no entry has it. "baseline": the baseline's row (candidate 0, op "baseline") when
 * it is not among the entries: with its rank when among the first 1000, else built from its
 * runs with rank null. A family's entries are store_leaderboard_family's. */
int store_leaderboard(Store *s, const StoreLbQuery *q, cJSON **out, char *err);

/* The final paired test of a candidate against the baseline (`lossctl report`'s last section;
 * its numbers are computed here, not by the report). cand_evs and base_evs are candidate.get's
 * "evaluations" (borrowed). A pair is an "ok" evaluation of each with the same task_name, seed
 * and steps, on a task keep accepts (keep(ctx, task name, &lower_better) returns 1 to count the
 * task and says its metric's direction); its difference is the test metric, candidate minus
 * baseline, negated where lower is better (positive: the candidate is better). At most
 * STORE_PAIRED_MAX pairs. mean; sd the sample deviation (NaN for one pair); t = mean / (sd /
 * sqrt(n)) (NaN when sd is NaN or 0); wins, losses and ties (|difference| <= 1e-12); p the exact
 * two-sided sign test over wins and losses (NaN without any). Returns n (0: nothing pairs). */
#define STORE_PAIRED_MAX 512
typedef struct StorePaired {
    int n, wins, losses, ties;
    double mean, sd, t, p;
} StorePaired;
int store_paired_test(const cJSON *cand_evs, const cJSON *base_evs,
                      int (*keep)(void *ctx, const char *task, int *lower_better), void *ctx,
                      StorePaired *out);

/* Up to k best distinct expressions earlier jobs found for family: those tried on the task with
 * task_hash first (0: none preferred), ranked as in store_leaderboard_family, then family-wide
 * ones. *exprs owned (store_strv_free), NULL when *n is 0. */
int store_warm_start(Store *s, const char *family, uint64_t task_hash, int k, char ***exprs,
                     int *n, char *err);
void store_strv_free(char **v, int n);

/* ---- events ----------------------------------------------------------------------------- */

/* Appends an event; *seq (may be NULL) receives its persistent sequence number (strictly
 * increasing, never reused). job_id 0: not about a job. data borrowed, may be NULL. */
int store_event_append(Store *s, int64_t job_id, const char *kind, const cJSON *data,
                       int64_t *seq, char *err);
/* Owned array of events with seq > since_seq, oldest first, at most limit (<= 0: 1000):
 * {seq, time, job, kind, data}. */
int store_events_since(Store *s, int64_t since_seq, int limit, cJSON **out, char *err);
/* Deletes all but the newest keep events (sequence numbers are still never reused). */
int store_events_trim(Store *s, int64_t keep, char *err);

/* ---- schedules -------------------------------------------------------------------------- */

typedef struct StoreSchedule {
    int64_t id;                 /* 0 in store_schedule_put: insert a new one */
    const char *name;           /* may be NULL */
    const char *cron;           /* "m h dom mon dow" */
    const char *tz;             /* may be NULL: local time */
    double until;               /* 0: forever */
    int catch_up;               /* 1: fire once for missed times after downtime */
    int concurrency;            /* max jobs of this schedule running at once */
    const cJSON *job_template;  /* borrowed; required */
    int paused;
    double last_fire, next_fire; /* 0: none */
} StoreSchedule;

/* Inserts (sc->id 0; the new id in *id) or replaces every field of schedule sc->id (LD_ENOTFOUND
 * when absent). id may be NULL. */
int store_schedule_put(Store *s, const StoreSchedule *sc, int64_t *id, char *err);
/* Owned object {id, name, cron, tz, until, catch_up, concurrency, job (template), paused,
 * last_fire, next_fire, created, runs (number of jobs made)}. LD_ENOTFOUND. */
int store_schedule_get(Store *s, int64_t id, cJSON **out, char *err);
int store_schedule_list(Store *s, cJSON **out, char *err); /* owned array, by id */
/* Deletes the schedule; its jobs stay, with schedule_id NULL. LD_ENOTFOUND. */
int store_schedule_delete(Store *s, int64_t id, char *err);
int store_schedule_set_paused(Store *s, int64_t id, int paused, char *err);
int store_schedule_set_fire(Store *s, int64_t id, double last_fire, double next_fire, char *err);
/* Owned array of job summaries made by the schedule, newest first (limit <= 0: all). */
int store_schedule_runs(Store *s, int64_t id, int limit, cJSON **out, char *err);

/* ---- maintenance ------------------------------------------------------------------------ */

/* Bytes on disk: database pages plus the WAL file. */
int store_db_size(Store *s, int64_t *bytes, char *err);
/* EXPLAIN QUERY PLAN of a cached statement named as in storage/internal.h ("LB_JOB",
 * "LB_CAND_TASKS", "LB_FAMILY", "EVAL_LOOKUP", ...), one line per plan step, indented by depth:
 * to show which indexes a query uses. *plan owned (free()). LD_ENOTFOUND for an unknown name. */
int store_query_plan(Store *s, const char *name, char **plan, char *err);
/* The schema version this build writes, and the migration that brings version i to i + 1
 * (0 <= i < store_schema_version(); NULL otherwise): for tests and docs. */
int store_schema_version(void);
const char *store_migration_sql(int i);

#endif
