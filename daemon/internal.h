/* internal.h: what the daemon's own files share: the Daemon struct, the worker pool, the job
 * scheduler and the client connections. Not for other modules (they use daemon.h). */
#ifndef DAEMON_INTERNAL_H
#define DAEMON_INTERNAL_H

#include <limits.h>
#include <sys/types.h>
#include <uv.h>

#include "../api/rpc.h"
#include "../search/search.h"
#include "daemon.h"
#include "executor.h"

/* ---- jobs (jobs.c) ---------------------------------------------------------------------- */

typedef struct DJob DJob;

int jobs_recover(Daemon *d, char *err); /* loads queued and running jobs at start-up */
void jobs_pump(Daemon *d);              /* activates jobs, starts rounds, feeds the pool */
void jobs_tick(Daemon *d);              /* once a second: wall-clock budgets */
void jobs_on_done(void *ud, ExecItem *it); /* ExecDoneFn */
void jobs_on_dropped(Daemon *d, ExecItem *it); /* an item the pool never started; takes it */
void jobs_shutdown(Daemon *d);          /* persists elapsed time of running jobs */
void jobs_free_all(Daemon *d);
int jobs_count_loaded(const Daemon *d);
int jobs_pending_works(const Daemon *d); /* works of running jobs' open rounds not yet dispatched */

/* ---- clients (net.c) -------------------------------------------------------------------- */

/* LD_OK when path is free or a stale socket; LD_EBUSY when a live daemon answers on it. */
int net_check_socket(const char *path, char *err);
int net_listen(Daemon *d, char *err);   /* binds and listens on d->socket_path */
/* Closes the listener; clients close now (force) or once their pending replies are written. */
void net_close_all(Daemon *d, int force);
void net_broadcast_event(Daemon *d, const cJSON *event); /* to subscribers; borrows */

/* ---- the daemon ------------------------------------------------------------------------- */

#define DAEMON_MAX_TICKS 8
#define DAEMON_RATE_BUCKETS 64
#define DAEMON_EVENTS_KEEP 100000 /* events kept at start-up (older ones are trimmed) */

struct Daemon {
    uv_loop_t loop;
    uv_pipe_t server;
    uv_signal_t sigterm, sigint;
    uv_timer_t timer;
    int server_open, handles_open;
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
    uid_t uid;

    DJob *jobs;          /* loaded jobs (queued, running, paused with an engine, draining) */
    int64_t wrr_job;     /* weighted round-robin: the job being served and its credit */
    int wrr_left;
    int pump_depth;      /* jobs_pump is running (it is not re-entered) */
    int64_t evals_total; /* evaluations finished by this process */

    /* evaluations finished per second, over the last DAEMON_RATE_BUCKETS seconds */
    int64_t rate_sec[DAEMON_RATE_BUCKETS];
    int rate_count[DAEMON_RATE_BUCKETS];

    DaemonClient *clients;
    int nclients;
    int64_t last_event_seq;  /* newest stored event */
    cJSON *pending_events;   /* appended inside the open transaction, sent at commit */

    struct {
        DaemonTickFn fn;
        void *ud;
    } ticks[DAEMON_MAX_TICKS];
    int nticks;
};

void daemon_count_eval(Daemon *d); /* records one finished evaluation for the rate */

#endif
