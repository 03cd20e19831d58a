/* daemon.h: the lossd daemon: its libuv loop, worker pool, jobs and schedules. Every function
 * here runs on the loop thread unless it says otherwise; api/ calls these, never SQL. The wire
 * (client connections) sits above, in api/: the daemon reaches it only through the DaemonWire
 * the composition root hands to daemon_open. */
#ifndef DAEMON_H
#define DAEMON_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "../common/lossd.h"
#include "../evaluator/eval.h"
#include "../lang/expr.h"
#include "../storage/store.h"

typedef struct Daemon Daemon;

/* What the daemon needs of the wire above it (api/server.c: rpc_server_wire). Called on the
 * loop thread; the daemon never includes the wire's headers, so the arrow points one way. */
typedef struct DaemonWire {
    void *ud;
    /* Binds path (free: daemon_open has checked it and removed a stale socket) and listens on
     * loop; requests reach the daemon's handlers with d. */
    int (*listen)(void *ud, Daemon *d, uv_loop_t *loop, const char *path, char *err);
    void (*event)(void *ud, const cJSON *event); /* a committed event, to subscribers; borrows */
    /* Closes the listener; clients close now (force) or once their pending replies are written. */
    void (*close)(void *ud, int force);
    int (*clients)(void *ud); /* connections open */
} DaemonWire;

typedef struct DaemonConfig {
    const char *socket_path; /* NULL: $XDG_RUNTIME_DIR/lossd.sock, else /tmp/lossd-$UID.sock */
    const char *db_path;     /* NULL: $XDG_DATA_HOME/lossd/lossd.db, else ~/.local/share/... */
    int workers;             /* <= 0: number of online cores */
    int store_flags;         /* STORE_NOSYNC for tests */
    const DaemonWire *wire;  /* borrowed, outlives the daemon; NULL: no socket, no clients */
    const struct ExecutorMethods *executor; /* NULL: "threads" (executor.h) */
    const char *queue;       /* the executor's conninfo ("queue": lossd serve --queue) */
    int commit_ms;           /* group commits: the longest a finished evaluation waits for its
                              * batch's transaction (0: DAEMON_COMMIT_MS; < 0: one transaction
                              * per evaluation); no client hears of it before */
    const char *queue_schema; /* its PostgreSQL schema (NULL: "lossd") */
    int queue_local;         /* with a queue: the daemon's own evaluator threads (0: none) */
    double queue_lease;      /* their lease in seconds (0: 30) */
    int result_cache;        /* 1: a work a stored run answers (the cross-job result cache) is
                              * not trained again; 0: every work is trained */
} DaemonConfig;

/* Opens the store (taking its lock), binds the socket through the wire (refusing when a live
 * daemon answers on it, removing a stale file), starts the worker pool and resumes every queued
 * or running job.
 * Returns LD_OK and an owned daemon; LD_EBUSY when another daemon holds the socket or the
 * database; LD_EIO otherwise. */
int daemon_open(const DaemonConfig *cfg, Daemon **out, char *err);
/* Runs the loop until shutdown (server.shutdown, SIGTERM, SIGINT): stops taking work, waits for
 * running evaluations and records them. Returns LD_OK. */
int daemon_run(Daemon *d);
void daemon_free(Daemon *d); /* closes everything; NULL is fine */

/* ---- for handlers (api/) ------------------------------------------------------------------ */

Store *daemon_store(Daemon *d);
int daemon_shutting_down(const Daemon *d);
/* Why requests that change something are refused now ("the server is shutting down", or the
 * database was deleted or replaced), or NULL when they are served. */
const char *daemon_refuse_writes(const Daemon *d);
int64_t daemon_last_event_seq(const Daemon *d); /* newest stored event */
void daemon_request_shutdown(Daemon *d); /* begins the graceful shutdown */
cJSON *daemon_status(Daemon *d);         /* owned server.status result */
/* Owned server.workers result: {executor: "threads" or "queue", workers: [...]} with one entry
 * per worker process as executor.h's workers_json (this daemon's own threads marked local). */
cJSON *daemon_workers(Daemon *d);
/* Makes the next daemon_workers current (the queue's listing read now, not at its next
 * sweep): returns 1 when that takes a moment, and done(ud) is then called on the loop once it
 * is (at the latest when the daemon stops); 0 when daemon_workers is current now (done is not
 * called). */
int daemon_workers_refresh(Daemon *d, void (*done)(void *ud), void *ud);

typedef struct DaemonSubmit {
    const cJSON *job;         /* borrowed job object (docs/jobs.md) */
    const char *client_token; /* NULL: none */
    int priority;             /* 1..100, larger gets more of the workers; <= 0: 1 */
    int64_t schedule_id;      /* 0: submitted by a client */
    const char *base_dir;     /* relative data paths resolve here; NULL: the daemon's cwd */
} DaemonSubmit;

/* Parses, stores (state queued, with the engine's initial state) and schedules a job. An
 * existing client_token returns its job with *existed 1. LD_EINVAL with every problem named. */
int daemon_job_submit(Daemon *d, const DaemonSubmit *sub, int64_t *job_id, int *existed,
                      char *err);
/* The same, with the job's data read and parsed off the loop (libuv's thread pool), so a large
 * CSV does not hold up other clients: returns LD_OK once the load is queued (done is then
 * called exactly once, on the loop, with what daemon_job_submit would have returned: rc, the
 * job's id and existed, err "" on success) or an error without calling done. */
typedef void (*DaemonSubmitDone)(void *ud, int rc, int64_t job_id, int existed, const char *err);
int daemon_job_submit_async(Daemon *d, const DaemonSubmit *sub, DaemonSubmitDone done, void *ud,
                            char *err);
/* Owned job summary (docs/protocol.md); full adds spec and stats. LD_ENOTFOUND. */
int daemon_job_get(Daemon *d, int64_t job_id, int full, cJSON **out, char *err);
/* Owned array of summaries, newest first; state NULL: all. */
int daemon_job_list(Daemon *d, const char *state, cJSON **out, char *err);
/* action: "pause", "resume" or "cancel", or "expire" (a schedule's until deadline: as cancel,
 * but the job ends "expired"; not a client's action). LD_ESTATE for a transition the state does not allow.
 * resume also takes a failed job: it is loaded again from its stored state, as a restart would
 * (the job stays failed, with the new reason, when the cause persists). */
int daemon_job_control(Daemon *d, int64_t job_id, const char *action, char *err);
/* job.resume with the job's data read and parsed off the loop: when the job must be loaded from
 * the store (paused before a restart, or failed) sets *deferred, returns LD_OK and calls done
 * later on the loop, exactly once, with daemon_job_control's status (job_id, existed 0, err ""
 * on success). Otherwise *deferred is 0 and it returns what daemon_job_control would, without
 * calling done. */
int daemon_job_resume_async(Daemon *d, int64_t job_id, DaemonSubmitDone done, void *ud,
                            int *deferred, char *err);
/* Deletes a job that is done, failed or cancelled, with its candidates, evaluations, state and
 * events. LD_ESTATE for a queued, running or paused job (cancel it first), LD_EBUSY while its
 * last evaluations are still in flight, LD_ENOTFOUND. */
int daemon_job_delete(Daemon *d, int64_t job_id, char *err);
/* Renames a job (name NULL or empty: no name). LD_ENOTFOUND. */
int daemon_job_rename(Daemon *d, int64_t job_id, const char *name, char *err);
/* job.finish: ends the search phase of a queued, running or paused job (no more rounds of the
 * search, no more proposals; the state does not change); the final re-evaluation runs, then the
 * job is done. The stop is saved with the engine's state at once. LD_ENOTFOUND, LD_ESTATE (done,
 * failed or cancelled), LD_EBUSY. */
int daemon_job_finish(Daemon *d, int64_t job_id, char *err);
/* Hands proposals to a queued, running or paused job (candidate.propose, docs/protocol.md):
 * exprs[0..n) as the proposer wrote them, source their label (NULL: "user"; else 1..32 of
 * A-Z a-z 0-9 _ . -, LD_EINVAL "params.source: ..." otherwise), note (may be NULL). Each is
 * checked by the engine (search_propose) and stored with its arrival point before the reply, so
 * a restart replays it identically. *out (owned): {job_id, round,
 * accepted, duplicates, refused, proposals: [one per expression]}. LD_ENOTFOUND, LD_ESTATE
 * (the job is done, failed or cancelled, or its search phase is over), LD_EBUSY (shutting
 * down, a storage fault, or a restart's replay still catching up), or the store's error (then
 * nothing was taken). */
int daemon_job_propose(Daemon *d, int64_t job_id, const char *const *exprs, int n,
                       const char *source, const char *note, cJSON **out, char *err);
/* Number of jobs of a schedule that are queued, running or paused (schedule concurrency). */
int daemon_schedule_active(Daemon *d, int64_t schedule_id);

/* Appends an event to the store and sends it to every subscriber. Takes data (may be NULL).
 * Inside a transaction (store_begin) the event is sent when daemon_commit commits it, and
 * forgotten by daemon_rollback: modules that batch writes with events use these two instead of
 * store_commit / store_rollback. */
int daemon_event(Daemon *d, int64_t job_id, const char *kind, cJSON *data, char *err);
int daemon_commit(Daemon *d, char *err);
void daemon_rollback(Daemon *d);

/* ---- hooks for other modules ------------------------------------------------------------ */

/* A function the loop calls about once a second (and once right after start-up, after job
 * recovery), on the loop thread. */
typedef void (*DaemonTickFn)(Daemon *d, void *ud);
int daemon_add_tick(Daemon *d, DaemonTickFn fn, void *ud); /* at most 8; LD_ENOMEM beyond */

/* The cron schedules (daemon/schedule_daemon.c): loads them and registers their tick with
 * daemon_add_tick. The composition root (cmd/serve.c) calls it once after daemon_open (after job
 * recovery), before daemon_run. */
int schedule_start(Daemon *d, char *err);

/* What the schedule.* methods do (docs/schedules.md; api/methods_schedule.c is their wire side).
 * LD_EINVAL (params checked by schedule_validate, every problem named), LD_ENOTFOUND (no such
 * schedule), LD_ESTATE (trigger: a run still going under concurrency forbid, or until leaves
 * under a minute), LD_EIO. Results are owned. */
int daemon_schedule_create(Daemon *d, const cJSON *params, cJSON **out, char *err); /* {schedule_id, next_runs} */
int daemon_schedule_list(Daemon *d, cJSON **out, char *err);                        /* {schedules} */
int daemon_schedule_get(Daemon *d, int64_t id, cJSON **out, char *err); /* with next_runs, runs */
int daemon_schedule_delete(Daemon *d, int64_t id, char *err);           /* its jobs stay */
int daemon_schedule_set_paused(Daemon *d, int64_t id, int paused, cJSON **out, char *err);
/* Fires now: the run's job is prepared and submitted off the loop (daemon_job_submit_async), so
 * it returns LD_OK and calls done later with the submit's outcome (the job's id), or an error
 * without calling done. */
int daemon_schedule_trigger(Daemon *d, int64_t id, DaemonSubmitDone done, void *ud, char *err);

/* A line on stderr with the time, from the loop thread. */
void daemon_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
