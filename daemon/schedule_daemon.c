/* schedule_daemon.c: wires the cron schedules (daemon/schedule.h) into the running daemon: the
 * start-up catch-up, the once-a-second tick that fires schedules and enforces their `until`
 * deadlines, warm starts from a schedule's own earlier runs, and what the schedule.* methods do
 * (docs/schedules.md; their wire side is api/methods_schedule.c). Everything here runs on the
 * loop thread. */
#include <inttypes.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../evaluator/eval.h"
#include "../lang/expr.h"
#include "../search/search.h"
#include "daemon.h"
#include "engine.h"
#include "internal.h"
#include "schedule.h"

#define SEED_RUNS 5   /* earlier runs whose leaderboards seed a new run */
#define SEED_MAX 8    /* expressions taken from them (and as many from store_warm_start) */
#define RUNS_SHOWN 50 /* runs schedule.get reports */

/* A run made by a schedule that has an `until` deadline, watched by the tick so a run that
 * waited in the queue still stops at its deadline (budget.seconds only counts running time). */
typedef struct Watch {
    int64_t job_id, schedule_id, deadline;
} Watch;

/* The loop thread owns this; one daemon per process. The store is the source of truth: the
 * list is reloaded after every schedule.* write (dirty). */
static struct {
    Schedule *v;
    int n;
    int dirty;
    Watch *w;
    int nw, capw;
    int clock_warned;
} reg;

/* ---- the clock ---------------------------------------------------------------------------- */

/* The wall clock, read afresh at every use (never an accumulated interval). Test hook: when
 * $LOSSD_FAKE_CLOCK_FILE names a file holding epoch seconds, that file is the clock, so tests
 * can move time without waiting; an unreadable file falls back to the real clock. */
static int64_t sched_now(void) {
    const char *path = getenv("LOSSD_FAKE_CLOCK_FILE");
    if (path && *path) {
        FILE *f = fopen(path, "r");
        char buf[64] = "", *end = NULL;
        int ok = f && fgets(buf, sizeof buf, f) != NULL;
        if (f)
            fclose(f);
        /* range-checked: 99999999999999999999 must not overflow anything downstream */
        errno = 0;
        long long v = ok ? strtoll(buf, &end, 10) : 0;
        ok = ok && end != buf && errno == 0 && v > 0 && v <= CRON_TIME_MAX - 400 * 86400;
        if (ok)
            return (int64_t)v;
        if (!reg.clock_warned)
            daemon_log("schedules: cannot read a time from $LOSSD_FAKE_CLOCK_FILE %s; using the "
                       "wall clock", path);
        reg.clock_warned = 1;
    }
    return (int64_t)ld_wall_s();
}

/* ---- the registry ----------------------------------------------------------------------- */

static void reg_clear(void) {
    for (int i = 0; i < reg.n; i++)
        schedule_spec_free(&reg.v[i].spec);
    free(reg.v);
    reg.v = NULL;
    reg.n = 0;
}

static int reg_load(Daemon *d, char *err) {
    cJSON *rows = NULL;
    int rc = store_schedule_list(daemon_store(d), &rows, err);
    if (rc != LD_OK)
        return rc;
    reg_clear();
    int n = cJSON_GetArraySize(rows);
    reg.v = calloc(n > 0 ? (size_t)n : 1, sizeof *reg.v);
    if (!reg.v) {
        rc = ld_err(err, LD_ENOMEM, "schedules: out of memory loading %d schedules", n);
        goto done;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        char e2[LD_ERR_MAX];
        if (schedule_from_row(row, &reg.v[reg.n], e2) != LD_OK) {
            daemon_log("schedules: %s (ignored)", e2);
            continue;
        }
        reg.n++;
    }
    reg.dirty = 0;
done:
    cJSON_Delete(rows);
    return rc;
}

static int reg_fresh(Daemon *d, char *err) {
    char e2[LD_ERR_MAX];
    if (reg.dirty && reg_load(d, e2) != LD_OK)
        return ld_err(err, LD_EIO, "%s", e2);
    return LD_OK;
}

static Schedule *reg_find(int64_t id) {
    for (int i = 0; i < reg.n; i++)
        if (reg.v[i].id == id)
            return &reg.v[i];
    return NULL;
}

static void watch_add(int64_t job_id, int64_t schedule_id, int64_t deadline) {
    if (deadline <= 0 || job_id <= 0)
        return;
    for (int i = 0; i < reg.nw; i++)
        if (reg.w[i].job_id == job_id)
            return;
    if (reg.nw == reg.capw) {
        int cap = reg.capw ? reg.capw * 2 : 8;
        Watch *w = realloc(reg.w, (size_t)cap * sizeof *w);
        if (!w) {
            daemon_log("schedule %" PRId64 ": out of memory watching job %" PRId64
                       "'s deadline (its budget.seconds still applies)", schedule_id, job_id);
            return;
        }
        reg.w = w;
        reg.capw = cap;
    }
    reg.w[reg.nw++] = (Watch){job_id, schedule_id, deadline};
}

/* A job summary's id and state (store rows say "id", protocol summaries "job_id"). */
static int64_t row_id(const cJSON *row) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, "job_id");
    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(row, "id");
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static int state_active(const char *st) {
    return st && (!strcmp(st, "queued") || !strcmp(st, "running") || !strcmp(st, "paused"));
}

/* ---- warm starts -------------------------------------------------------------------------- */

typedef struct Seed {
    double fitness;
    char *expr;
} Seed;

static int seed_cmp(const void *a, const void *b) {
    double fa = ((const Seed *)a)->fitness, fb = ((const Seed *)b)->fitness;
    return fa > fb ? -1 : fa < fb ? 1 : 0; /* higher fitness first */
}

/* Appends text to arr when it parses, passes the family's checks and is not there yet. */
static void seed_push(cJSON *arr, const char *text, int family, int *n, int max) {
    if (!text || *n >= max)
        return;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, text))
            return;
    }
    char e2[LD_ERR_MAX];
    Expr *e = expr_parse(text, e2);
    if (!e)
        return;
    if (expr_check(e, family, e2) == LD_OK) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(text));
        (*n)++;
    }
    expr_free(e);
}

/* The best expressions of the schedule's own earlier runs (owned in *out, best first), read
 * from the store on the loop; their number. */
static int seeds_collect(Daemon *d, int64_t schedule_id, Seed **out) {
    char e2[LD_ERR_MAX];
    Store *st = daemon_store(d);
    cJSON *runs = NULL;
    Seed *v = NULL;
    int nv = 0, capv = 0;
    if (store_schedule_runs(st, schedule_id, SEED_RUNS, &runs, e2) != LD_OK)
        goto done;
    const cJSON *run;
    cJSON_ArrayForEach(run, runs) {
        cJSON *lb = NULL;
        if (store_leaderboard_job(st, row_id(run), SEED_MAX, &lb, e2) != LD_OK)
            continue;
        const cJSON *c;
        cJSON_ArrayForEach(c, lb) {
            const cJSON *ex = cJSON_GetObjectItemCaseSensitive(c, "expr");
            const cJSON *fi = cJSON_GetObjectItemCaseSensitive(c, "fitness");
            if (!cJSON_IsString(ex) || !cJSON_IsNumber(fi))
                continue;
            if (nv == capv) {
                int cap = capv ? capv * 2 : 16;
                Seed *nvv = realloc(v, (size_t)cap * sizeof *nvv);
                if (!nvv)
                    break;
                v = nvv;
                capv = cap;
            }
            v[nv].fitness = fi->valuedouble;
            v[nv].expr = strdup(ex->valuestring);
            if (v[nv].expr)
                nv++;
        }
        cJSON_Delete(lb);
    }
    if (nv > 0)
        qsort(v, (size_t)nv, sizeof *v, seed_cmp);
done:
    cJSON_Delete(runs);
    *out = v;
    return nv;
}

static void seeds_free(Seed *v, int nv) {
    for (int i = 0; i < nv; i++)
        free(v[i].expr);
    free(v);
}

/* Seeds job (a schedule_job result, modified in place; sj is it parsed, borrowed) with v (the
 * earlier runs' expressions, best first), then store_warm_start's, then the template's
 * seed_losses, in that order, as seed_losses with warm_start off (the daemon's own warm start
 * would put store_warm_start's first). When none of v suits the task the job is left as it is:
 * warm_start true, the daemon seeds it from store_warm_start. Returns how many came from v. */
static int seeds_apply(Daemon *d, const SearchJob *sj, const Seed *v, int nv, cJSON *job) {
    char e2[LD_ERR_MAX];
    cJSON *seeds = NULL;
    char **warm = NULL;
    int own = 0, nwarm = 0;
    if (job_ntasks(sj) < 1)
        return 0;
    const Task *t0 = engine_task(sj, 0);
    int fam = task_family(t0);
    seeds = cJSON_CreateArray();
    if (!seeds)
        goto done;
    for (int i = 0; i < nv; i++)
        seed_push(seeds, v[i].expr, fam, &own, SEED_MAX);
    if (own == 0)
        goto done;
    if (store_warm_start(daemon_store(d), family_name(fam), task_hash(t0), SEED_MAX, &warm,
                         &nwarm, e2) == LD_OK) {
        int k = 0;
        for (int i = 0; i < nwarm; i++)
            seed_push(seeds, warm[i], fam, &k, SEED_MAX);
    }
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(job, "seed_losses");
    const cJSON *it;
    int k2 = 0;
    cJSON_ArrayForEach(it, tmpl) {
        if (cJSON_IsString(it))
            seed_push(seeds, it->valuestring, fam, &k2, 1 << 20);
    }
    if (cJSON_GetObjectItemCaseSensitive(job, "seed_losses"))
        cJSON_ReplaceItemInObjectCaseSensitive(job, "seed_losses", seeds);
    else
        cJSON_AddItemToObject(job, "seed_losses", seeds);
    seeds = NULL;
    cJSON_ReplaceItemInObjectCaseSensitive(job, "warm_start", cJSON_CreateFalse());
done:
    store_strv_free(warm, nwarm);
    cJSON_Delete(seeds);
    return own;
}

/* ---- firing ------------------------------------------------------------------------------- */

/* A fire whose run is being prepared and submitted. Its job's data is read and parsed off the
 * loop (jobs_parse_async, daemon_job_submit_async): once to learn the task when earlier runs
 * seed it, once as submitted. Counted as an active run of its schedule meanwhile. */
typedef struct Firing {
    struct Firing *next;
    Daemon *d;
    int64_t schedule_id, fire_time, deadline;
    cJSON *job;   /* as it is submitted (owned) */
    cJSON *plain; /* the template's job without seeds, for the retry (owned; NULL: none) */
    Seed *v;      /* the earlier runs' expressions, best first */
    int nv, own;
    const char *reason;       /* schedule.fired's reason: NULL, or "trigger" */
    char log[LD_ERR_MAX];     /* the decision's log line, the event's message */
    DaemonSubmitDone done;    /* a trigger's reply (NULL: a fire of the tick) */
    void *ud;
} Firing;

static Firing *firing; /* the loop's, like reg */

static int firing_count(int64_t schedule_id) {
    int n = 0;
    for (const Firing *f = firing; f; f = f->next)
        n += f->schedule_id == schedule_id;
    return n;
}

/* A schedule's runs that are queued, running or paused, or being prepared. */
static int active_runs(Daemon *d, int64_t schedule_id) {
    return daemon_schedule_active(d, schedule_id) + firing_count(schedule_id);
}

static void emit(Daemon *d, const Schedule *s, const char *kind, int64_t job_id,
                 int64_t fire_time, int64_t deadline, const char *reason, const char *message);

static void firing_free(Firing *f) {
    cJSON_Delete(f->job);
    cJSON_Delete(f->plain);
    seeds_free(f->v, f->nv);
    free(f);
}

/* The end of a fire: the run is watched for its deadline and announced, or the failure is. */
static void fire_finish(Daemon *d, Firing *f, int rc, int64_t job_id, const char *e2) {
    char err[LD_ERR_MAX], e3[LD_ERR_MAX];
    for (Firing **p = &firing; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    Schedule *s = reg_fresh(d, e3) == LD_OK ? reg_find(f->schedule_id) : NULL;
    if (rc == LD_OK) {
        char msg[LD_ERR_MAX + 32];
        watch_add(job_id, f->schedule_id, f->deadline);
        daemon_log("schedule %" PRId64 ": job %" PRId64 " seeded with %d expressions from "
                   "earlier runs", f->schedule_id, job_id, f->own);
        snprintf(msg, sizeof msg, "%s", f->log);
        if (f->done) { /* a trigger's message names its job */
            snprintf(msg, sizeof msg, "%s: job %" PRId64, f->log, job_id);
            daemon_log("%s", msg);
        }
        if (s && !daemon_shutting_down(d))
            emit(d, s, "schedule.fired", job_id, f->fire_time, f->deadline, f->reason, msg);
    } else {
        ld_err(err, rc, "schedule %" PRId64 ": submitting the run failed: %.180s", f->schedule_id,
               e2);
        daemon_log("%s", err);
        if (!f->done && s && !daemon_shutting_down(d))
            emit(d, s, "schedule.skipped", 0, f->fire_time, 0, "submit-failed", err);
    }
    if (f->done)
        f->done(f->ud, rc, job_id, 0, rc == LD_OK ? "" : err);
    firing_free(f);
}

static int fire_submit(Daemon *d, Firing *f, char *err);

static void fire_submitted(void *ud, int rc, int64_t job_id, int existed, const char *e2) {
    Firing *f = ud;
    Daemon *d = f->d;
    (void)existed;
    if (rc != LD_OK && f->own > 0 && f->plain && !daemon_shutting_down(d)) {
        /* the seeds should never make a job invalid; if they do, run it as the template says */
        char e3[LD_ERR_MAX];
        daemon_log("schedule %" PRId64 ": submit with %d seeds from earlier runs failed: %s; "
                   "retrying without them", f->schedule_id, f->own, e2);
        cJSON_Delete(f->job);
        f->job = f->plain;
        f->plain = NULL;
        f->own = 0;
        if ((rc = fire_submit(d, f, e3)) == LD_OK)
            return;
        fire_finish(d, f, rc, 0, e3);
        return;
    }
    fire_finish(d, f, rc, job_id, e2);
}

static int fire_submit(Daemon *d, Firing *f, char *err) {
    DaemonSubmit sub = {.job = f->job, .schedule_id = f->schedule_id};
    return daemon_job_submit_async(d, &sub, fire_submitted, f, err);
}

static void fire_parsed(Daemon *d, void *ud, int rc, SearchJob *sj, Search *s, const char *e2) {
    Firing *f = ud;
    char err[LD_ERR_MAX];
    search_free(s); /* none: parse only */
    if (rc == LD_OK)
        f->own = seeds_apply(d, sj, f->v, f->nv, f->job);
    job_free(sj);
    (void)e2; /* a job that does not parse fails its submit, with the reason */
    if (f->own == 0) { /* unseeded: the job as the template says */
        cJSON_Delete(f->plain);
        f->plain = NULL;
    }
    if ((rc = fire_submit(d, f, err)) != LD_OK)
        fire_finish(d, f, rc, 0, err);
}

/* Starts the run of a fire at fire_time (now for a trigger): returns LD_OK and finishes it
 * later (fire_finish: the schedule.fired or schedule.skipped event, a trigger's done), or an
 * error without doing either. */
static int fire(Daemon *d, Schedule *s, int64_t fire_time, int64_t now, int64_t deadline,
                const char *reason, const char *log, DaemonSubmitDone done, void *ud, char *err) {
    char e2[LD_ERR_MAX];
    int rc;
    Firing *f = calloc(1, sizeof *f);
    if (!f)
        return ld_err(err, LD_ENOMEM, "schedule %" PRId64 ": out of memory", s->id);
    *f = (Firing){.d = d, .schedule_id = s->id, .fire_time = fire_time, .deadline = deadline,
                  .reason = reason, .done = done, .ud = ud};
    snprintf(f->log, sizeof f->log, "%s", log ? log : "");
    f->job = schedule_job(s, fire_time, now, deadline);
    if (!f->job) {
        firing_free(f);
        return ld_err(err, LD_ENOMEM, "schedule %" PRId64 ": out of memory building the job",
                      s->id);
    }
    f->nv = seeds_collect(d, s->id, &f->v);
    cJSON *copy = f->nv > 0 ? cJSON_Duplicate(f->job, 1) : NULL;
    f->plain = f->nv > 0 ? cJSON_Duplicate(f->job, 1) : NULL;
    if (f->nv > 0 && copy && f->plain)
        rc = jobs_parse_async(d, copy, NULL, NULL, fire_parsed, f, e2); /* to learn the task */
    else {
        cJSON_Delete(copy);
        rc = fire_submit(d, f, e2);
    }
    if (rc != LD_OK) {
        firing_free(f);
        return ld_err(err, rc, "schedule %" PRId64 ": submitting the run failed: %.180s", s->id,
                      e2);
    }
    f->next = firing;
    firing = f;
    return LD_OK;
}

static void emit(Daemon *d, const Schedule *s, const char *kind, int64_t job_id,
                 int64_t fire_time, int64_t deadline, const char *reason, const char *message) {
    char e2[LD_ERR_MAX], iso[TZ_ISO_MAX];
    cJSON *ev = cJSON_CreateObject();
    if (!ev)
        return;
    cJSON_AddNumberToObject(ev, "schedule_id", (double)s->id);
    if (job_id > 0)
        cJSON_AddNumberToObject(ev, "job_id", (double)job_id);
    if (fire_time > 0) {
        tz_format_iso(s->spec.zone, fire_time, iso);
        cJSON_AddStringToObject(ev, "fire_time", iso);
    }
    if (deadline > 0) {
        tz_format_iso(s->spec.zone, deadline, iso);
        cJSON_AddStringToObject(ev, "deadline", iso);
    } else if (!strcmp(kind, "schedule.fired")) {
        cJSON_AddNullToObject(ev, "deadline");
    }
    if (reason)
        cJSON_AddStringToObject(ev, "reason", reason);
    if (message)
        cJSON_AddStringToObject(ev, "message", message);
    if (daemon_event(d, job_id, kind, ev, e2) != LD_OK)
        daemon_log("schedule %" PRId64 ": event %s: %s", s->id, kind, e2);
}

/* Carries out a decision of schedule_due / schedule_startup and stores the new fire times. */
static void apply(Daemon *d, Schedule *s, const ScheduleDecision *dec, int64_t now) {
    char e2[LD_ERR_MAX];
    if (dec->action == SCHEDULE_FIRE) {
        daemon_log("%s", dec->log);
        /* schedule.fired follows once the run's job is submitted (fire_finish) */
        if (fire(d, s, dec->fire_time, now, dec->deadline, NULL, dec->log, NULL, NULL, e2) !=
            LD_OK) {
            daemon_log("%s", e2);
            emit(d, s, "schedule.skipped", 0, dec->fire_time, 0, "submit-failed", e2);
        }
    } else if (dec->action != SCHEDULE_NOTHING) {
        daemon_log("%s", dec->log);
        emit(d, s, "schedule.skipped", 0, dec->fire_time, 0, schedule_action_name(dec->action),
             dec->log);
    }
    if (dec->last_fire != s->last_fire || dec->next_fire != s->next_fire) {
        s->last_fire = dec->last_fire;
        s->next_fire = dec->next_fire;
        if (store_schedule_set_fire(daemon_store(d), s->id, (double)s->last_fire,
                                    (double)s->next_fire, e2) != LD_OK)
            daemon_log("schedule %" PRId64 ": %s", s->id, e2);
    }
}

/* Runs past their `until` deadline that are still queued, running or paused end "expired"
 * (stopped as a cancel stops them; their results so far stay in the store); finished ones
 * leave the watch list. */
static void enforce_deadlines(Daemon *d, int64_t now) {
    char e2[LD_ERR_MAX];
    int k = 0;
    for (int i = 0; i < reg.nw; i++) {
        Watch w = reg.w[i];
        cJSON *sum = NULL;
        int keep = 0;
        if (daemon_job_get(d, w.job_id, 0, &sum, e2) == LD_OK) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(sum, "state");
            if (state_active(cJSON_IsString(st) ? st->valuestring : NULL)) {
                keep = 1;
                if (now >= w.deadline) {
                    if (daemon_job_control(d, w.job_id, "expire", e2) == LD_OK) {
                        daemon_log("schedule %" PRId64 ": job %" PRId64 " reached its until "
                                   "deadline while %s: expired (its results so far are kept)",
                                   w.schedule_id, w.job_id, st->valuestring);
                        keep = 0;
                    } else {
                        daemon_log("schedule %" PRId64 ": job %" PRId64 ": %s", w.schedule_id,
                                   w.job_id, e2);
                    }
                }
            }
        }
        cJSON_Delete(sum);
        if (keep)
            reg.w[k++] = w;
    }
    reg.nw = k;
}

/* The wall clock went back (an NTP step, a manual change): the pending fire was computed from
 * a later time and would leave a hole, so it is recomputed from now. As in Vixie cron, a step
 * back of under 3 hours does not repeat a fire already decided on. next_fire is always
 * cron_next of an earlier reading of the clock, so it can only exceed cron_next(now) when the
 * clock went backwards. */
#define BACKSTEP_NO_REPEAT_S (3 * 3600)
static void clock_went_back(Daemon *d, Schedule *s, int64_t now) {
    char e2[LD_ERR_MAX], was[TZ_ISO_MAX], iso[TZ_ISO_MAX];
    if (s->paused || s->next_fire <= 0)
        return;
    int64_t expect = cron_next(&s->spec.cron, s->spec.zone, now);
    if (expect <= 0 || expect >= s->next_fire)
        return;
    int64_t anchor = now;
    if (s->last_fire > now && s->last_fire - now < BACKSTEP_NO_REPEAT_S)
        anchor = s->last_fire;
    int64_t nf = cron_next(&s->spec.cron, s->spec.zone, anchor);
    if (nf <= 0 || nf >= s->next_fire)
        return;
    tz_format_iso(s->spec.zone, s->next_fire, was);
    tz_format_iso(s->spec.zone, nf, iso);
    daemon_log("schedule %" PRId64 ": the wall clock went back; next fire %s (was %s)", s->id,
               iso, was);
    s->next_fire = nf;
    if (store_schedule_set_fire(daemon_store(d), s->id, (double)s->last_fire,
                                (double)s->next_fire, e2) != LD_OK)
        daemon_log("schedule %" PRId64 ": %s", s->id, e2);
}

static void tick(Daemon *d, void *ud) {
    (void)ud;
    char e2[LD_ERR_MAX];
    if (daemon_shutting_down(d))
        return;
    if (reg_fresh(d, e2) != LD_OK) {
        daemon_log("schedules: %s", e2);
        return;
    }
    int64_t now = sched_now();
    for (int i = 0; i < reg.n; i++) {
        ScheduleDecision dec;
        clock_went_back(d, &reg.v[i], now);
        schedule_due(&reg.v[i], now, active_runs(d, reg.v[i].id), &dec);
        apply(d, &reg.v[i], &dec, now);
    }
    if (reg.nw > 0)
        enforce_deadlines(d, now);
}

/* After a restart: runs still going get their deadline back, counted from their creation. */
static void rewatch(Daemon *d, const Schedule *s) {
    char e2[LD_ERR_MAX];
    cJSON *runs = NULL;
    if (s->spec.until_min < 0 || active_runs(d, s->id) == 0)
        return;
    if (store_schedule_runs(daemon_store(d), s->id, 20, &runs, e2) != LD_OK)
        return;
    const cJSON *run;
    cJSON_ArrayForEach(run, runs) {
        int64_t id = row_id(run);
        cJSON *sum = NULL;
        if (daemon_job_get(d, id, 0, &sum, e2) != LD_OK)
            continue;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(sum, "state");
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(sum, "created_s");
        if (cJSON_IsString(st) && state_active(st->valuestring) && cJSON_IsNumber(cr))
            watch_add(id, s->id, schedule_deadline(&s->spec, (int64_t)cr->valuedouble));
        cJSON_Delete(sum);
    }
    cJSON_Delete(runs);
}

int schedule_start(Daemon *d, char *err) {
    int rc = reg_load(d, err);
    if (rc != LD_OK)
        return rc;
    int64_t now = sched_now();
    for (int i = 0; i < reg.n; i++) {
        ScheduleDecision dec;
        rewatch(d, &reg.v[i]);
        clock_went_back(d, &reg.v[i], now);
        schedule_startup(&reg.v[i], now, active_runs(d, reg.v[i].id), &dec);
        apply(d, &reg.v[i], &dec, now);
    }
    if (reg.n > 0)
        daemon_log("schedules: %d loaded", reg.n);
    rc = daemon_add_tick(d, tick, NULL);
    if (rc != LD_OK)
        return ld_err(err, rc, "schedules: no tick slot left (at most %d)", DAEMON_MAX_TICKS);
    return LD_OK;
}

/* ---- what the schedule.* methods do (api/methods_schedule.c) ------------------------------- */

/* The schedule with this id, from a fresh registry. */
static int need(Daemon *d, int64_t id, Schedule **s, char *err) {
    if (reg_fresh(d, err) != LD_OK)
        return LD_EIO;
    *s = reg_find(id);
    if (!*s)
        return ld_err(err, LD_ENOTFOUND, "schedule %" PRId64 ": not found", id);
    return LD_OK;
}

int daemon_schedule_create(Daemon *d, const cJSON *params, cJSON **out, char *err) {
    ScheduleSpec sp;
    cJSON *o = NULL;
    int rc = schedule_validate(params, d->cwd, &sp, err);
    if (rc != LD_OK)
        return LD_EINVAL;
    int64_t now = sched_now();
    Schedule s = {.spec = sp, .created = now};
    s.next_fire = cron_next(&sp.cron, sp.zone, now);
    StoreSchedule sc;
    schedule_to_store(&s, &sc);
    int64_t id = 0;
    rc = store_schedule_put(daemon_store(d), &sc, &id, err);
    if (rc != LD_OK)
        goto done;
    reg.dirty = 1;
    o = cJSON_CreateObject();
    if (!o) {
        rc = ld_err(err, LD_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_AddNumberToObject(o, "schedule_id", (double)id);
    cJSON_AddItemToObject(o, "next_runs", schedule_next_runs(&sp, now, 5));
    daemon_log("schedule %" PRId64 ": created (cron '%s', zone %s)", id, sp.cron_expr, sp.tz);
    *out = o;
done:
    schedule_spec_free(&sp);
    return rc;
}

int daemon_schedule_list(Daemon *d, cJSON **out, char *err) {
    if (reg_fresh(d, err) != LD_OK)
        return LD_EIO;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "schedules");
    if (!arr) {
        cJSON_Delete(o);
        return ld_err(err, LD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < reg.n; i++) {
        cJSON *sj = schedule_json(&reg.v[i]);
        cJSON_AddNumberToObject(sj, "active_runs", active_runs(d, reg.v[i].id));
        cJSON_AddItemToArray(arr, sj);
    }
    *out = o;
    return LD_OK;
}

int daemon_schedule_get(Daemon *d, int64_t id, cJSON **out, char *err) {
    char e2[LD_ERR_MAX];
    Schedule *s;
    cJSON *rows = NULL;
    int rc = need(d, id, &s, err);
    if (rc != LD_OK)
        return rc;
    if (store_schedule_runs(daemon_store(d), id, RUNS_SHOWN, &rows, e2) != LD_OK)
        return ld_err(err, LD_EIO, "schedule %" PRId64 ": %s", id, e2);
    cJSON *o = schedule_json(s);
    cJSON_AddNumberToObject(o, "active_runs", active_runs(d, id));
    cJSON_AddItemToObject(o, "next_runs",
                          s->paused ? cJSON_CreateArray()
                                    : schedule_next_runs(&s->spec, sched_now(), 5));
    cJSON *runs = cJSON_AddArrayToObject(o, "runs");
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        cJSON *sum = NULL;
        if (daemon_job_get(d, row_id(row), 0, &sum, e2) == LD_OK)
            cJSON_AddItemToArray(runs, sum);
    }
    cJSON_Delete(rows);
    *out = o;
    return LD_OK;
}

int daemon_schedule_delete(Daemon *d, int64_t id, char *err) {
    Schedule *s;
    int rc = need(d, id, &s, err);
    if (rc != LD_OK)
        return rc;
    rc = store_schedule_delete(daemon_store(d), id, err);
    if (rc != LD_OK)
        return rc;
    reg.dirty = 1;
    daemon_log("schedule %" PRId64 ": deleted (its jobs stay)", id);
    return LD_OK;
}

int daemon_schedule_set_paused(Daemon *d, int64_t id, int paused, cJSON **out, char *err) {
    Schedule *s;
    int rc = need(d, id, &s, err);
    if (rc != LD_OK)
        return rc;
    rc = store_schedule_set_paused(daemon_store(d), id, paused, err);
    if (rc != LD_OK)
        return rc;
    s->paused = paused;
    if (!paused) { /* no backlog from the paused period: the next fire counts from now */
        s->next_fire = cron_next(&s->spec.cron, s->spec.zone, sched_now());
        rc = store_schedule_set_fire(daemon_store(d), id, (double)s->last_fire,
                                     (double)s->next_fire, err);
        if (rc != LD_OK)
            return rc;
    }
    daemon_log("schedule %" PRId64 ": %s", id, paused ? "paused" : "resumed");
    *out = schedule_json(s);
    return LD_OK;
}

int daemon_schedule_trigger(Daemon *d, int64_t id, DaemonSubmitDone done, void *ud, char *err) {
    Schedule *s;
    int rc = need(d, id, &s, err);
    if (rc != LD_OK)
        return rc;
    int active = active_runs(d, id);
    if (s->spec.concurrency == SCHEDULE_FORBID && active > 0)
        return ld_err(err, LD_ESTATE,
                      "schedule %" PRId64 ": a run is still going (concurrency forbid)", id);
    int64_t now = sched_now();
    int64_t deadline = schedule_deadline(&s->spec, now);
    if (deadline > 0 && deadline - now < 60)
        return ld_err(err, LD_ESTATE,
                      "schedule %" PRId64 ": until leaves under a minute from now", id);
    char msg[LD_ERR_MAX];
    snprintf(msg, sizeof msg, "schedule %" PRId64 ": triggered by a client", id);
    return fire(d, s, now, now, deadline, "trigger", msg, done, ud, err);
}
