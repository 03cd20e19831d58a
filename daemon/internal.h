/* internal.h: what the daemon's own files share: the Daemon struct, the worker pool and the job
 * scheduler. Not for other modules (they use daemon.h). Calls between the files go one way:
 * serve.c (start-up, loop, shutdown) and schedule_daemon.c (cron) call jobs.c (jobs and
 * rounds), and all three call events.c (events and log lines), which calls none of them;
 * schedule_daemon.c also uses serve.c's accessors (daemon_store, daemon_add_tick), and serve.c
 * never calls the schedules (the composition root starts them). */
#ifndef DAEMON_INTERNAL_H
#define DAEMON_INTERNAL_H

#include <limits.h>
#include <sys/types.h>
#include <uv.h>

#include "../search/search.h"
#include "daemon.h"
#include "engine.h"
#include "executor.h"

/* ---- jobs (jobs.c) ---------------------------------------------------------------------- */

typedef struct DJob DJob;
typedef struct JobLoad JobLoad; /* a stored job being loaded off the loop (jobs.c) */

int jobs_recover(Daemon *d, char *err); /* loads queued and running jobs at start-up */
void jobs_pump(Daemon *d);              /* activates jobs, starts rounds, feeds the pool */
void jobs_tick(Daemon *d);              /* once a second: wall-clock budgets */
/* A finished item joins the batch of results waiting for their commit (group commits: one
 * transaction, one fsync, for up to DAEMON_BATCH_MAX results or what arrived within the
 * daemon's commit_ms); a full batch is committed at once. Returns the items still waiting. */
#define DAEMON_BATCH_MAX 64
#define DAEMON_COMMIT_MS 50 /* lossd serve --commit-ms: the default */
int jobs_on_done(Daemon *d, ExecItem *it);
/* Commits the waiting results in one transaction, then lets them count (the job's evaluations,
 * its round) and feeds the pool; when the commit fails nothing of them counts and their jobs
 * stall (reloaded from the store, their works run again). Returns the results committed, -1
 * when the commit failed. */
int jobs_flush(Daemon *d);
void jobs_on_dropped(Daemon *d, ExecItem *it); /* an item the pool never started; takes it */
void jobs_shutdown(Daemon *d);          /* persists elapsed time of running jobs */
void jobs_free_all(Daemon *d);
int jobs_count_loaded(const Daemon *d);
int jobs_pending_works(const Daemon *d); /* works of running jobs' open rounds not yet dispatched */

/* Parses a job (reading its data) on libuv's thread pool, and, given a saved engine state,
 * restores its engine there too, so a large data file never holds up the loop. Takes job and
 * state (NULL: parse only); base_dir NULL is the daemon's cwd. Returns LD_OK and calls then on
 * the loop later, exactly once, with the parsed job and engine (taken by then; NULL unless rc is
 * LD_OK, err then says why), or returns an error without calling it. Counted in
 * server.status's submits_loading meanwhile. */
typedef void (*JobParseThen)(Daemon *d, void *ud, int rc, SearchJob *sj, Search *s,
                             const char *err);
int jobs_parse_async(Daemon *d, cJSON *job, const char *base_dir, cJSON *state,
                     JobParseThen then, void *ud, char *err);

/* ---- the daemon ------------------------------------------------------------------------- */

#define DAEMON_MAX_TICKS 8
#define DAEMON_RATE_BUCKETS 64
#define DAEMON_EVENTS_KEEP 100000 /* events kept at start-up (older ones are trimmed) */

struct Daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t timer;
    int handles_open;
    DaemonWire wire; /* a copy of the config's; all NULL without one */
    int listening;   /* wire.listen was called: the wire is this daemon's to close */
    Store *store;
    Executor *pool; /* the executor (executor.h): "threads" */
    char socket_path[PATH_MAX];
    char db_path[PATH_MAX];
    char cwd[PATH_MAX];
    int nworkers;
    int shutting_down;
    char store_dead[LD_ERR_MAX]; /* the database file was deleted or replaced: writes refused */
    int exiting; /* handles are closing: the loop ends once they are closed */
    double exit_deadline_ms;
    double start_ms;

    DJob *jobs;          /* loaded jobs (queued, running, paused with an engine, draining) */
    int64_t wrr_job;     /* weighted round-robin: the job being served and its credit */
    int wrr_left;
    int pump_depth;      /* jobs_pump is running (it is not re-entered) */
    int64_t evals_total; /* evaluations finished by this process */
    int loads;           /* jobs whose data is being parsed off the loop (jobs_parse_async) */
    JobLoad *loading;    /* stored jobs being loaded: recovered, resumed, retried */
    ExecItem *batch, *batch_tail; /* finished items waiting for their commit (jobs_on_done) */
    int nbatch;
    int commit_ms;           /* the longest a result waits for its batch; 0: commit each one */
    uv_timer_t commit_timer; /* armed while a batch waits */
    int64_t commits, commit_results; /* batches committed and the results in them */
    int result_cache;        /* works may be answered by the cross-job result cache */
    int64_t cache_hits;      /* works answered by the cross-job result cache, not trained */
    int cache_pending;       /* a pass of jobs_pump put cache hits in the batch */
    int64_t db_bytes;    /* server.status's database size, measured at db_bytes_ms */
    double db_bytes_ms;

    /* evaluations finished per second, over the last DAEMON_RATE_BUCKETS seconds */
    int64_t rate_sec[DAEMON_RATE_BUCKETS];
    int rate_count[DAEMON_RATE_BUCKETS];

    int64_t last_event_seq;  /* newest stored event */
    cJSON *pending_events;   /* appended inside the open transaction, sent at commit */

    struct {
        DaemonTickFn fn;
        void *ud;
    } ticks[DAEMON_MAX_TICKS];
    int nticks;
};


#endif
