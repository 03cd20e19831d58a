/* serve.c: the daemon's default paths, its start-up (socket check, store lock, the wire's
 * listener, worker pool, job recovery), its loop (timer, signals) and the graceful shutdown.
 * `lossd serve` (cmd/serve.c) composes it with the wire and the schedules. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* ---- paths ------------------------------------------------------------------------------ */

static void default_socket(char *out, size_t n) {
    const char *env = getenv("LOSSD_SOCKET"); /* the same variable lossctl reads */
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (env && *env) snprintf(out, n, "%s", env);
    else if (rt && *rt) snprintf(out, n, "%s/lossd.sock", rt);
    else snprintf(out, n, "/tmp/lossd-%u.sock", (unsigned)getuid());
}

/* mkdir -p of the directory part of path. */
static int mkdir_parents(const char *path, char *err) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return LD_OK;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return ld_err(err, LD_EIO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return ld_err(err, LD_EIO, "mkdir %s: %s", buf, strerror(errno));
    return LD_OK;
}

/* The socket's directory: used when it exists, created (0700) when only its last component is
 * missing, refused otherwise: a mistyped --socket must not build a tree of folders. */
static int socket_dir(const char *path, char *err) {
    char buf[PATH_MAX];
    struct stat st;
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return LD_OK;
    *slash = 0;
    if (stat(buf, &st) == 0)
        return S_ISDIR(st.st_mode) ? LD_OK : ld_err(err, LD_EIO, "socket %s: %s is not a directory", path, buf);
    if (mkdir(buf, 0700) == 0) return LD_OK;
    return ld_err(err, LD_EIO, "socket %s: cannot create its directory %s: %s (lossd creates only the "
                               "socket's own folder, inside an existing one)",
                  path, buf, strerror(errno));
}

/* 1 when something accepts connections on path. */
static int socket_alive(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int alive = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return alive;
}

/* LD_OK when path is free or a stale socket; LD_EBUSY when a live daemon answers on it. */
static int socket_check(const char *path, char *err) {
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path)
        return ld_err(err, LD_EINVAL, "socket path %s: longer than %zu bytes", path,
                      sizeof sa.sun_path - 1);
    struct stat st;
    if (lstat(path, &st) != 0) return LD_OK;
    if (!S_ISSOCK(st.st_mode))
        return ld_err(err, LD_EIO, "%s: exists and is not a socket; not removing it", path);
    if (socket_alive(path))
        return ld_err(err, LD_EBUSY, "another lossd is already serving on %s", path);
    return LD_OK;
}

/* The wire listens on the socket, once it is checked again and a stale file removed. */
static int socket_listen(Daemon *d, char *err) {
    if (!d->wire.listen) return LD_OK;
    int rc = socket_check(d->socket_path, err);
    if (rc != LD_OK) return rc;
    if (unlink(d->socket_path) == 0) daemon_log("removed stale socket %s", d->socket_path);
    d->listening = 1; /* from here on the wire holds handles of this loop, even half-opened */
    return d->wire.listen(d->wire.ud, d, &d->loop, d->socket_path, err);
}

static void wire_close(Daemon *d, int force) {
    if (d->listening && d->wire.close) d->wire.close(d->wire.ud, force);
}

static int wire_clients(Daemon *d) { return d->wire.clients ? d->wire.clients(d->wire.ud) : 0; }

static void default_db(char *out, size_t n) {
    const char *dh = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (dh && *dh) snprintf(out, n, "%s/lossd/lossd.db", dh);
    else snprintf(out, n, "%s/.local/share/lossd/lossd.db", home && *home ? home : "/tmp");
}

/* ---- loop callbacks --------------------------------------------------------------------- */

/* Records one finished evaluation for the rate. */
static void count_eval(Daemon *d) {
    int64_t sec = (int64_t)(ld_now_ms() / 1e3);
    int b = (int)(sec % DAEMON_RATE_BUCKETS);
    if (d->rate_sec[b] != sec) {
        d->rate_sec[b] = sec;
        d->rate_count[b] = 0;
    }
    d->rate_count[b]++;
}

static double evals_per_s(const Daemon *d) {
    int64_t now = (int64_t)(ld_now_ms() / 1e3);
    double window = (ld_now_ms() - d->start_ms) / 1e3;
    if (window > 60) window = 60;
    if (window < 1) window = 1;
    long n = 0;
    for (int b = 0; b < DAEMON_RATE_BUCKETS; b++)
        if (d->rate_sec[b] > now - 60 && d->rate_sec[b] <= now) n += d->rate_count[b];
    return n / window;
}

static void close_all_handles(Daemon *d);

#define EXIT_GRACE_MS 2000 /* how long replies may take to drain at exit */

/* The shutdown ends once nothing is in flight: results are recorded, the listener closes,
 * clients get their last replies (bounded by EXIT_GRACE_MS), then every handle closes.
 * Runs from the timer and the pool's callback, never inside a handler (its reply is pending). */
static void maybe_finish_shutdown(Daemon *d) {
    if (!d->shutting_down || d->exiting) return;
    if (d->pool && exec_pending(d->pool) > 0) return;
    jobs_flush(d); /* the last results are stored before the jobs' progress */
    d->exiting = 1;
    d->exit_deadline_ms = ld_now_ms() + EXIT_GRACE_MS;
    jobs_shutdown(d);
    char err[LD_ERR_MAX];
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "pid", (double)getpid());
    daemon_event(d, 0, "server.stop", ev, err);
    if (d->pool) {
        exec_close(d->pool);
        d->pool = NULL;
    }
    wire_close(d, 0);
}

static void on_timer(uv_timer_t *t) {
    Daemon *d = t->data;
    if (d->exiting) {
        if (wire_clients(d) == 0 || ld_now_ms() >= d->exit_deadline_ms) close_all_handles(d);
        return;
    }
    if (d->shutting_down) {
        maybe_finish_shutdown(d);
        return;
    }
    if (!d->store_dead[0] && store_check_alive(d->store, d->store_dead) != LD_OK)
        daemon_log("%s", d->store_dead); /* once: every write request then gets the message */
    jobs_tick(d);
    for (int i = 0; i < d->nticks; i++) d->ticks[i].fn(d, d->ticks[i].ud);
}

static void on_signal(uv_signal_t *s, int signum) {
    Daemon *d = s->data;
    daemon_log("signal %d: shutting down", signum);
    daemon_request_shutdown(d);
}

static void on_commit_timer(uv_timer_t *t) {
    Daemon *d = t->data;
    jobs_flush(d);
    if (d->shutting_down) maybe_finish_shutdown(d);
}

/* A finished evaluation waits for its batch's commit at most commit_ms (none while shutting
 * down: what finishes then is committed at once). */
static void on_pool_done(void *ud, ExecItem *it) {
    Daemon *d = ud;
    count_eval(d);
    if (jobs_on_done(d, it) > 0 && (d->commit_ms <= 0 || d->shutting_down)) jobs_flush(d);
    if (d->nbatch == 0) uv_timer_stop(&d->commit_timer);
    else if (!uv_is_active((uv_handle_t *)&d->commit_timer))
        uv_timer_start(&d->commit_timer, on_commit_timer, (uint64_t)d->commit_ms, 0);
    if (d->shutting_down) maybe_finish_shutdown(d);
}

void daemon_request_shutdown(Daemon *d) {
    if (d->shutting_down) return;
    d->shutting_down = 1;
    /* items never started run again after the restart */
    ExecItem *it = d->pool ? exec_stop(d->pool) : NULL;
    while (it) {
        ExecItem *next = it->next;
        jobs_on_dropped(d, it);
        it = next;
    }
    if (d->handles_open) uv_timer_start(&d->timer, on_timer, 10, 20);
}

static void close_all_handles(Daemon *d) {
    if (d->pool) {
        exec_close(d->pool);
        d->pool = NULL;
    }
    wire_close(d, 1);
    if (d->handles_open) {
        d->handles_open = 0;
        uv_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, NULL);
        uv_timer_stop(&d->commit_timer);
        uv_close((uv_handle_t *)&d->commit_timer, NULL);
        uv_signal_stop(&d->sigterm);
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_signal_stop(&d->sigint);
        uv_close((uv_handle_t *)&d->sigint, NULL);
    }
}

/* ---- handlers' view --------------------------------------------------------------------- */

Store *daemon_store(Daemon *d) { return d->store; }
int daemon_shutting_down(const Daemon *d) { return d->shutting_down; }

const char *daemon_refuse_writes(const Daemon *d) {
    return d->shutting_down ? "the server is shutting down" : d->store_dead[0] ? d->store_dead : NULL;
}

int daemon_add_tick(Daemon *d, DaemonTickFn fn, void *ud) {
    if (d->nticks >= DAEMON_MAX_TICKS) return LD_ENOMEM;
    d->ticks[d->nticks].fn = fn;
    d->ticks[d->nticks].ud = ud;
    d->nticks++;
    return LD_OK;
}

cJSON *daemon_workers(Daemon *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "executor", d->pool ? d->pool->m->name : "none");
    cJSON_AddItemToObject(o, "workers", d->pool ? exec_workers_json(d->pool) : cJSON_CreateArray());
    return o;
}

int daemon_workers_refresh(Daemon *d, void (*done)(void *ud), void *ud) {
    return d->pool && !d->shutting_down ? exec_workers_refresh(d->pool, done, ud) : 0;
}

#define DB_BYTES_MAX_AGE_MS 100.0

cJSON *daemon_status(Daemon *d) {
    char err[LD_ERR_MAX];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", LOSSD_VERSION);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddNumberToObject(o, "uptime_s", (ld_now_ms() - d->start_ms) / 1e3);
    int workers = d->pool ? exec_workers(d->pool) : 0;
    int busy = d->pool ? exec_busy(d->pool) : 0;
    int pending = d->pool ? exec_pending(d->pool) : 0;
    cJSON_AddNumberToObject(o, "workers", workers);
    cJSON_AddNumberToObject(o, "workers_busy", busy);
    /* waiting for a worker: handed to the pool but not started, plus not yet handed over */
    cJSON_AddNumberToObject(o, "queue_length", (pending > busy ? pending - busy : 0) + jobs_pending_works(d));
    cJSON_AddNumberToObject(o, "submits_loading", d->loads);
    cJSON_AddNumberToObject(o, "evals_per_s", evals_per_s(d));
    cJSON_AddNumberToObject(o, "evaluations_total", (double)d->evals_total);
    /* group commits: transactions that stored finished evaluations, those evaluations, and the
     * finished ones waiting for their batch's commit (not counted anywhere yet) */
    cJSON_AddNumberToObject(o, "result_commits", (double)d->commits);
    cJSON_AddNumberToObject(o, "results_committed", (double)d->commit_results);
    cJSON_AddNumberToObject(o, "results_waiting", d->nbatch);
    /* works answered by the cross-job result cache (stored as the job's own, not trained) */
    cJSON_AddNumberToObject(o, "result_cache_hits", (double)d->cache_hits);
    cJSON_AddStringToObject(o, "db_path", d->db_path);
    /* the size costs a query and a stat: a pipelining client asking status thousands of times
     * a second gets one that is at most DB_BYTES_MAX_AGE_MS old */
    if (ld_now_ms() - d->db_bytes_ms > DB_BYTES_MAX_AGE_MS) {
        d->db_bytes = 0;
        store_db_size(d->store, &d->db_bytes, err);
        d->db_bytes_ms = ld_now_ms();
    }
    cJSON_AddNumberToObject(o, "db_bytes", (double)d->db_bytes);
    cJSON_AddStringToObject(o, "socket", d->socket_path);
    cJSON_AddNumberToObject(o, "clients", wire_clients(d));
    cJSON_AddBoolToObject(o, "shutting_down", d->shutting_down);
    if (d->store_dead[0]) cJSON_AddStringToObject(o, "storage_error", d->store_dead);
    cJSON *jobs = cJSON_AddObjectToObject(o, "jobs");
    int64_t counts[JOB_NSTATES];
    if (store_job_counts(d->store, counts, err) != LD_OK) memset(counts, 0, sizeof counts);
    for (int i = 0; i < JOB_NSTATES; i++)
        cJSON_AddNumberToObject(jobs, job_state_name((JobState)i), (double)counts[i]);
    return o;
}

/* ---- start-up --------------------------------------------------------------------------- */

int daemon_open(const DaemonConfig *cfg, Daemon **out, char *err) {
    int rc;
    Daemon *d = calloc(1, sizeof *d);
    if (!d) return ld_err(err, LD_ENOMEM, "out of memory");
    d->start_ms = ld_now_ms();
    if (cfg->wire) d->wire = *cfg->wire;
    if (cfg->socket_path) snprintf(d->socket_path, sizeof d->socket_path, "%s", cfg->socket_path);
    else default_socket(d->socket_path, sizeof d->socket_path);
    if (cfg->db_path) snprintf(d->db_path, sizeof d->db_path, "%s", cfg->db_path);
    else default_db(d->db_path, sizeof d->db_path);
    if (!getcwd(d->cwd, sizeof d->cwd)) snprintf(d->cwd, sizeof d->cwd, ".");
    d->nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (d->nworkers < 1) d->nworkers = 1;
    if (d->nworkers > 256) d->nworkers = 256;

    rc = uv_loop_init(&d->loop);
    if (rc != 0) {
        free(d);
        return ld_err(err, LD_EIO, "uv_loop_init: %s", uv_strerror(rc));
    }
    /* a live daemon on the socket: refuse before touching its database */
    rc = socket_check(d->socket_path, err);
    if (rc != LD_OK) goto fail;
    rc = socket_dir(d->socket_path, err);
    if (rc != LD_OK) goto fail;
    rc = mkdir_parents(d->db_path, err);
    if (rc != LD_OK) goto fail;
    rc = store_open(d->db_path, cfg->store_flags, &d->store, err);
    if (rc != LD_OK) goto fail;
    /* the events table is a log, not the record: keep the newest ones for reconnecting clients */
    char e0[LD_ERR_MAX];
    if (store_events_trim(d->store, DAEMON_EVENTS_KEEP, e0) != LD_OK) daemon_log("events: %s", e0);
    rc = socket_listen(d, err);
    if (rc != LD_OK) goto fail;
    uv_timer_init(&d->loop, &d->timer);
    d->timer.data = d;
    uv_signal_init(&d->loop, &d->sigterm);
    d->sigterm.data = d;
    uv_signal_init(&d->loop, &d->sigint);
    d->sigint.data = d;
    d->handles_open = 1;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_timer_start(&d->timer, on_timer, 1000, 1000);
    d->commit_ms = cfg->commit_ms == 0 ? DAEMON_COMMIT_MS : cfg->commit_ms < 0 ? 0 : cfg->commit_ms;
    d->result_cache = cfg->result_cache != 0;
    uv_timer_init(&d->loop, &d->commit_timer);
    d->commit_timer.data = d;

    ExecConfig xc = {.loop = &d->loop, .workers = d->nworkers, .done = on_pool_done, .ud = d,
                     .queue = cfg->queue, .queue_schema = cfg->queue_schema,
                     .local_threads = cfg->queue_local, .queue_lease = cfg->queue_lease};
    rc = cfg->executor ? cfg->executor->open(&xc, &d->pool, err) : exec_open("threads", &xc, &d->pool, err);
    if (rc != LD_OK) goto fail;

    rc = jobs_recover(d, err);
    if (rc != LD_OK) goto fail;
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "pid", (double)getpid());
    cJSON_AddStringToObject(ev, "version", LOSSD_VERSION);
    cJSON_AddNumberToObject(ev, "resumed", jobs_count_loaded(d));
    cJSON_AddNumberToObject(ev, "workers", d->nworkers);
    /* appended before any client is served: its seq is d->last_event_seq from here on */
    rc = daemon_event(d, 0, "server.start", ev, err);
    if (rc != LD_OK) goto fail;
    *out = d;
    return LD_OK;
fail:
    daemon_free(d);
    return rc;
}

int daemon_run(Daemon *d) {
    daemon_log("serving on %s (database %s, %d workers)", d->socket_path, d->db_path, d->nworkers);
    jobs_pump(d);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return LD_OK;
}

void daemon_free(Daemon *d) {
    if (!d) return;
    if (!d->exiting) {
        /* start-up failed half way, or the loop never ran: close what is open */
        d->shutting_down = 1;
        d->exiting = 1;
        if (d->pool) {
            ExecItem *it = exec_stop(d->pool);
            while (it) {
                ExecItem *next = it->next;
                exec_item_free(it);
                it = next;
            }
        }
        close_all_handles(d);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    if (uv_loop_close(&d->loop) != 0) daemon_log("loop closed with handles still open");
    jobs_free_all(d);
    cJSON_Delete(d->pending_events);
    store_close(d->store);
    free(d);
}
