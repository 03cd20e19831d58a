/* schedule.h: cron schedules of search jobs as pure logic with an injected clock: validating
 * schedule.create's params, deciding at each tick or at start-up whether a schedule fires, the
 * `until` deadline, and the job a fire submits (docs/schedules.md). No I/O but zone files. */
#ifndef SCHEDULE_H
#define SCHEDULE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/lossd.h"
#include "../storage/store.h"
#include "cron.h"

#define SCHEDULE_CRON_MAX 128 /* longest cron expression, with its NUL */
/* A fire found this many seconds or more after its time was missed (the machine slept, the
 * wall clock jumped, the daemon was down): catch_up decides, not the normal fire path. */
#define SCHEDULE_GRACE_S 120
#define SCHEDULE_MISSED_CAP 1000 /* missed fires are counted up to this */

typedef enum ScheduleCatchUp {
    SCHEDULE_CATCHUP_SKIP = 0, /* missed fires are dropped (cron) */
    SCHEDULE_CATCHUP_ONCE = 1, /* one or more missed: run once now (systemd Persistent=true) */
} ScheduleCatchUp;

typedef enum ScheduleConcurrency {
    SCHEDULE_FORBID = 0, /* a run still going makes the next fire skip (logged) */
    SCHEDULE_ALLOW = 1,  /* runs may overlap */
} ScheduleConcurrency;

/* A validated schedule.create request. */
typedef struct ScheduleSpec {
    char cron_expr[SCHEDULE_CRON_MAX]; /* as given, surrounding blanks removed */
    Cron cron;
    char tz[TZ_NAME_MAX]; /* resolved zone name: the daemon's zone when params had none */
    TzZone *zone;         /* owned */
    int until_min;        /* -1: none; else minutes after local midnight (07:00 -> 420) */
    ScheduleCatchUp catch_up;
    ScheduleConcurrency concurrency;
    char name[128];       /* "" when none */
    cJSON *job;           /* owned job template (docs/jobs.md), as given */
} ScheduleSpec;

/* A schedule as the daemon keeps it. Times are UTC seconds since the epoch, 0 for none. */
typedef struct Schedule {
    int64_t id;
    ScheduleSpec spec; /* owned */
    int paused;
    int64_t created;
    int64_t last_fire; /* scheduled time of the latest fire decided on (run or skipped) */
    int64_t next_fire; /* the pending fire; 0: compute from max(last_fire, created) */
} Schedule;

/* Checks every field of schedule.create's params and fills *out (owned: schedule_spec_free):
 * cron (string, required), tz (string, optional: default the daemon's local zone), until
 * (string "HH:MM" or null, optional), catch_up ("skip" default, or "once"), concurrency
 * ("forbid" default, or "allow"), name (string, optional), job (object, required: parsed with
 * job_parse against base_dir, which may be NULL, so an invalid job is refused now rather than
 * at 01:00). Unknown params are ignored (docs/protocol.md). Errors (LD_EINVAL) name the param:
 * "params.cron: cron field 2 (hour): 25 is out of range 0-23",
 * "params.tz: unknown time zone 'Europe/Berln'", "params.until: 07:00 is a time the schedule
 * fires at, so a run started then would have no time", "params.job: tasks: missing".
 * Borrows params; out is zeroed on failure. */
int schedule_validate(const cJSON *params, const char *base_dir, ScheduleSpec *out, char *err);
void schedule_spec_free(ScheduleSpec *s); /* frees zone and job; the struct itself is the
                                           * caller's; safe on a zeroed or freed spec */

/* What a schedule should do now. */
typedef enum ScheduleAction {
    SCHEDULE_NOTHING = 0,      /* not due */
    SCHEDULE_FIRE,             /* submit schedule_job(...) now */
    SCHEDULE_SKIP_RUNNING,     /* due, but a run is still going and concurrency is forbid */
    SCHEDULE_SKIP_MISSED,      /* fires were missed (downtime, sleep) and catch_up is skip */
    SCHEDULE_SKIP_PAUSED,      /* due while paused: dropped */
    SCHEDULE_SKIP_NO_TIME,     /* until leaves under a minute after the start */
} ScheduleAction;

typedef struct ScheduleDecision {
    ScheduleAction action;
    int64_t fire_time; /* the scheduled instant decided on (the latest one due); 0: NOTHING */
    int64_t deadline;  /* FIRE with until: the instant the run must stop; else 0 */
    int missed;        /* fires due in [pending, now], capped at SCHEDULE_MISSED_CAP */
    int late;          /* 1: the fire is SCHEDULE_GRACE_S or more overdue (a catch-up) */
    /* The schedule's new state: the daemon stores both (store_schedule_set_fire) when they
     * differ from the old ones. next_fire is recomputed from the wall clock (now), never by
     * adding an interval, so suspend and clock jumps cannot build a backlog. */
    int64_t last_fire, next_fire;
    char log[LD_ERR_MAX]; /* one line for the log and the schedule event; "" for NOTHING */
} ScheduleDecision;

/* The tick decision: is s due at now_utc? running is the number of the schedule's runs still
 * queued, running or paused (daemon_schedule_active). A fire up to SCHEDULE_GRACE_S late is on
 * time; later ones were missed (the wall clock jumped, the machine slept) and catch_up
 * decides. Several fires due at once make one decision (one run at most). Pure. */
void schedule_due(const Schedule *s, int64_t now_utc, int running, ScheduleDecision *out);
/* The start-up decision: fires missed between the pending fire (or last_fire / created) and
 * now while the daemon was down: catch_up once -> one FIRE, skip -> SKIP_MISSED; a fire less
 * than SCHEDULE_GRACE_S old is simply due. running: runs resumed by job recovery. Pure. */
void schedule_startup(const Schedule *s, int64_t now_utc, int running, ScheduleDecision *out);

/* The deadline of a run started at start_utc: the first instant after it at which the local
 * wall clock shows `until` (in a fall-back overlap its first occurrence; when that local time
 * falls in a spring-forward gap, the instant the clock jumps over it). 0 when no until. */
int64_t schedule_deadline(const ScheduleSpec *s, int64_t start_utc);

/* The next n fire times after now as ISO 8601 strings with offset (schedule.create's
 * `next_runs`). Returns an owned array. */
cJSON *schedule_next_runs(const ScheduleSpec *s, int64_t now_utc, int n);

/* The job a fire submits (owned): a copy of the template with warm_start forced to true (the
 * daemon seeds it from the schedule's earlier runs; the link is DaemonSubmit.schedule_id, not a
 * job key, because job_parse refuses unknown keys), budget.seconds capped at deadline - start
 * when there is a deadline, and, when the template has no seed, a seed derived from the
 * schedule id and the fire time so each night explores differently. NULL on ENOMEM. */
cJSON *schedule_job(const Schedule *s, int64_t fire_utc, int64_t start_utc, int64_t deadline);

/* A schedule as JSON for schedule.list / schedule.get: {schedule_id, name, cron, tz, until,
 * catch_up, concurrency, paused, created, last_fire, next_fire (ISO strings or null), job}. */
cJSON *schedule_json(const Schedule *s);

/* "HH:MM" (00:00-23:59) -> minutes after midnight; -1 when malformed. */
int schedule_parse_until(const char *s);

/* The storage encoding (storage/store.h StoreSchedule): until as seconds after local midnight
 * in (0, 86400] (00:00 stored as 86400), 0 for none; concurrency as the number of runs allowed
 * at once (forbid 1, allow SCHEDULE_STORE_NO_LIMIT; any value but 1 reads back as allow). */
#define SCHEDULE_STORE_NO_LIMIT 1000000
double schedule_until_to_store(int until_min);
int schedule_until_from_store(double until);
int schedule_concurrency_to_store(ScheduleConcurrency c);
ScheduleConcurrency schedule_concurrency_from_store(int max_running);

/* Rebuilds a Schedule from a store_schedule_get / store_schedule_list row ({id, name, cron, tz,
 * until, catch_up, concurrency, job, paused, last_fire, next_fire, created}): parses the cron,
 * loads the zone (tz null: the daemon's zone). The job is copied, not re-parsed. LD_EINVAL with
 * "schedule 3: ..." when the row no longer parses (a zone removed from tzdata). Borrows row;
 * out is owned by the caller (schedule_spec_free(&out->spec)), zeroed on failure. */
int schedule_from_row(const cJSON *row, Schedule *out, char *err);
/* Fills a StoreSchedule for store_schedule_put; its strings and template borrow from s. */
void schedule_to_store(const Schedule *s, StoreSchedule *out);

const char *schedule_action_name(ScheduleAction a); /* "fire", "skip-running", ... */

#endif
