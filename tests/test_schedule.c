/* test_schedule.c: the pure schedule logic with an injected clock: schedule.create validation
 * messages, due / skip / catch-up decisions across simulated downtime and sleep, concurrency,
 * `until` deadlines (across midnight and DST), the job a fire submits, the default zone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/lossd.h"
#include "../daemon/engine.h"
#include "../daemon/schedule.h"
#include "../search/search.h"

#define JOB "{\"tasks\":[\"builtin:digits\"],\"budget\":{\"evaluations\":20}}"

static int64_t utc(const char *s) {
    int y, mo, d, h, mi, se;
    if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se) != 6)
        fail_msg("bad time literal %s", s);
    return tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

static void iso_is(const TzZone *z, int64_t t, const char *want) {
    char iso[TZ_ISO_MAX];
    tz_format_iso(z, t, iso);
    if (strcmp(iso, want) != 0)
        fail_msg("time: got %s, want %s", iso, want);
}

/* A schedule from schedule.create params (JSON text), with the given state. */
static void make(Schedule *s, const char *params, int64_t created) {
    char err[LD_ERR_MAX];
    cJSON *p = cJSON_Parse(params);
    assert_non_null(p);
    memset(s, 0, sizeof *s);
    if (schedule_validate(p, NULL, &s->spec, err) != LD_OK)
        fail_msg("schedule_validate(%s): %s", params, err);
    cJSON_Delete(p);
    s->id = 7;
    s->created = created;
}

/* ---- validation ----------------------------------------------------------------------------- */

static const struct {
    const char *params, *msg;
} invalid[] = {
    {"[]", "params: expected an object"},
    {"{\"job\":" JOB "}", "params.cron: missing"},
    {"{\"cron\":5,\"job\":" JOB "}", "params.cron: expected a string, got number"},
    {"{\"cron\":null,\"job\":" JOB "}", "params.cron: expected a string, got null"},
    {"{\"cron\":\"0 25 * * *\",\"job\":" JOB "}",
     "params.cron: cron field 2 (hour): 25 is out of range 0-23"},
    {"{\"cron\":\"0 1 * *\",\"job\":" JOB "}", "params.cron: expected 5 fields, got 4"},
    {"{\"cron\":\"0 1 * * *\",\"tz\":\"Europe/Berln\",\"job\":" JOB "}",
     "params.tz: unknown time zone 'Europe/Berln'"},
    {"{\"cron\":\"0 1 * * *\",\"tz\":3,\"job\":" JOB "}", "params.tz: expected a string, got number"},
    {"{\"cron\":\"0 1 * * *\",\"tz\":\"\",\"job\":" JOB "}",
     "params.tz: empty (leave it out for the daemon's zone)"},
    {"{\"cron\":\"0 1 * * *\",\"until\":\"7am\",\"job\":" JOB "}",
     "params.until: expected a local time HH:MM (00:00-23:59), got '7am'"},
    {"{\"cron\":\"0 1 * * *\",\"until\":\"24:00\",\"job\":" JOB "}",
     "params.until: expected a local time HH:MM (00:00-23:59), got '24:00'"},
    {"{\"cron\":\"0 1 * * *\",\"until\":\"07:60\",\"job\":" JOB "}",
     "params.until: expected a local time HH:MM (00:00-23:59), got '07:60'"},
    {"{\"cron\":\"0 1 * * *\",\"until\":7,\"job\":" JOB "}",
     "params.until: expected a string, got number"},
    {"{\"cron\":\"0 1 * * *\",\"until\":\"01:00\",\"job\":" JOB "}",
     "params.until: 01:00 is a time the schedule fires at (cron '0 1 * * *'), so a run started "
     "then would have no time"},
    {"{\"cron\":\"*/15 * * * *\",\"until\":\"07:00\",\"job\":" JOB "}",
     "params.until: 07:00 is a time the schedule fires at (cron '*/15 * * * *'), so a run "
     "started then would have no time"},
    {"{\"cron\":\"0 1 * * *\",\"catch_up\":\"always\",\"job\":" JOB "}",
     "params.catch_up: expected \"skip\" or \"once\", got 'always'"},
    {"{\"cron\":\"0 1 * * *\",\"concurrency\":\"replace\",\"job\":" JOB "}",
     "params.concurrency: expected \"forbid\" or \"allow\", got 'replace'"},
    {"{\"cron\":\"0 1 * * *\",\"concurrency\":true,\"job\":" JOB "}",
     "params.concurrency: expected a string, got boolean"},
    {"{\"cron\":\"0 1 * * *\"}", "params.job: missing"},
    {"{\"cron\":\"0 1 * * *\",\"job\":[]}", "params.job: expected an object, got array"},
    {"{\"cron\":\"0 1 * * *\",\"job\":{}}", "params.job: tasks: missing"},
    {"{\"cron\":\"0 1 * * *\",\"job\":{\"tasks\":[\"builtin:digits\"],"
     "\"budget\":{\"evaluations\":-1}}}",
     "params.job: budget.evaluations: must be at least 1, got -1"},
};

static void test_validate_errors(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        char err[LD_ERR_MAX] = "";
        ScheduleSpec sp;
        cJSON *p = cJSON_Parse(invalid[i].params);
        if (!p)
            fail_msg("bad test JSON %s", invalid[i].params);
        int rc = schedule_validate(p, NULL, &sp, err);
        if (rc != LD_EINVAL || strcmp(err, invalid[i].msg) != 0) {
            print_error("%s: rc %d\n  got:  %s\n  want: %s\n", invalid[i].params, rc, err,
                        invalid[i].msg);
            bad++;
        }
        assert_null(sp.zone);
        assert_null(sp.job);
        schedule_spec_free(&sp);
        cJSON_Delete(p);
    }
    assert_int_equal(bad, 0);
}

static void test_validate_defaults(void **state) {
    (void)state;
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "America/New_York", 1);
    Schedule s;
    make(&s, "{\"cron\":\" @daily \",\"job\":" JOB ",\"unknown\":1}", 0);
    assert_string_equal(s.spec.cron_expr, "@daily");
    assert_string_equal(s.spec.tz, "America/New_York"); /* the daemon's zone, resolved */
    assert_int_equal(s.spec.until_min, -1);
    assert_int_equal(s.spec.catch_up, SCHEDULE_CATCHUP_SKIP);
    assert_int_equal(s.spec.concurrency, SCHEDULE_FORBID);
    assert_string_equal(s.spec.name, "");
    schedule_spec_free(&s.spec);
    unsetenv("TZ");
    if (old) {
        setenv("TZ", old, 1);
        free(old);
    }

    make(&s,
         "{\"cron\":\"0 23 * * *\",\"tz\":\"Europe/Berlin\",\"until\":\"7:00\",\"catch_up\":"
         "\"once\",\"concurrency\":\"allow\",\"name\":\"nightly\",\"job\":" JOB "}",
         0);
    assert_string_equal(s.spec.tz, "Europe/Berlin");
    assert_int_equal(s.spec.until_min, 420);
    assert_int_equal(s.spec.catch_up, SCHEDULE_CATCHUP_ONCE);
    assert_int_equal(s.spec.concurrency, SCHEDULE_ALLOW);
    assert_string_equal(s.spec.name, "nightly");

    /* schedule.create's next_runs: the next five fires as ISO 8601 with offsets */
    cJSON *runs = schedule_next_runs(&s.spec, utc("2026-10-23T12:00:00Z"), 5);
    char *txt = cJSON_PrintUnformatted(runs);
    assert_string_equal(txt, "[\"2026-10-23T23:00:00+02:00\",\"2026-10-24T23:00:00+02:00\","
                             "\"2026-10-25T23:00:00+01:00\",\"2026-10-26T23:00:00+01:00\","
                             "\"2026-10-27T23:00:00+01:00\"]");
    free(txt);
    cJSON_Delete(runs);

    s.last_fire = utc("2026-10-24T21:00:00Z");
    s.next_fire = utc("2026-10-25T22:00:00Z");
    cJSON *j = schedule_json(&s);
    char *jt = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "next_fire"));
    assert_string_equal(jt, "\"2026-10-25T23:00:00+01:00\"");
    free(jt);
    assert_string_equal(cJSON_GetObjectItem(j, "until")->valuestring, "07:00");
    assert_string_equal(cJSON_GetObjectItem(j, "catch_up")->valuestring, "once");
    assert_string_equal(cJSON_GetObjectItem(j, "concurrency")->valuestring, "allow");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "created")));
    cJSON_Delete(j);
    schedule_spec_free(&s.spec);
}

static void test_until_parse_and_store(void **state) {
    (void)state;
    assert_int_equal(schedule_parse_until("07:00"), 420);
    assert_int_equal(schedule_parse_until("7:05"), 425);
    assert_int_equal(schedule_parse_until("00:00"), 0);
    assert_int_equal(schedule_parse_until("23:59"), 1439);
    assert_int_equal(schedule_parse_until("23:59 "), -1);
    assert_int_equal(schedule_parse_until("123:00"), -1);
    assert_int_equal(schedule_parse_until(""), -1);
    for (int m = -1; m < 1440; m++)
        assert_int_equal(schedule_until_from_store(schedule_until_to_store(m)), m);
    assert_true(schedule_until_to_store(-1) == 0);
    assert_true(schedule_until_to_store(0) == 86400);
    assert_int_equal(schedule_concurrency_from_store(schedule_concurrency_to_store(
                         SCHEDULE_FORBID)),
                     SCHEDULE_FORBID);
    assert_int_equal(schedule_concurrency_from_store(schedule_concurrency_to_store(
                         SCHEDULE_ALLOW)),
                     SCHEDULE_ALLOW);
}

/* ---- decisions ------------------------------------------------------------------------------ */

#define NIGHTLY "{\"cron\":\"0 1 * * *\",\"tz\":\"Europe/Berlin\",\"job\":" JOB

/* The daemon was down from 2026-11-24 12:00 to 2026-11-28 12:00 UTC: four 01:00 fires missed. */
static void test_catch_up_once_vs_skip(void **state) {
    (void)state;
    Schedule s;
    ScheduleDecision d;
    make(&s, NIGHTLY ",\"catch_up\":\"once\"}", utc("2026-11-20T12:00:00Z"));
    s.last_fire = utc("2026-11-24T00:00:00Z");
    s.next_fire = utc("2026-11-25T00:00:00Z");
    int64_t now = utc("2026-11-28T12:00:00Z");
    schedule_startup(&s, now, 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.missed, 4);
    assert_int_equal(d.late, 1);
    assert_int_equal(d.fire_time, utc("2026-11-28T00:00:00Z")); /* the latest missed */
    assert_int_equal(d.last_fire, utc("2026-11-28T00:00:00Z"));
    assert_int_equal(d.next_fire, utc("2026-11-29T00:00:00Z")); /* from the wall clock */
    assert_string_equal(d.log, "schedule 7: catch-up run for 4 fire(s) missed while the daemon "
                               "was down (2026-11-25T01:00:00+01:00 to "
                               "2026-11-28T01:00:00+01:00)");
    /* the same without a stored next_fire: computed from last_fire */
    s.next_fire = 0;
    schedule_startup(&s, now, 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.missed, 4);
    /* and from created when it never fired */
    s.last_fire = 0;
    schedule_startup(&s, now, 0, &d);
    assert_int_equal(d.missed, 8); /* 11-21 .. 11-28 */
    schedule_spec_free(&s.spec);

    make(&s, NIGHTLY ",\"catch_up\":\"skip\"}", utc("2026-11-20T12:00:00Z"));
    s.last_fire = utc("2026-11-24T00:00:00Z");
    s.next_fire = utc("2026-11-25T00:00:00Z");
    schedule_startup(&s, now, 0, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_MISSED);
    assert_int_equal(d.missed, 4);
    assert_int_equal(d.deadline, 0);
    assert_int_equal(d.last_fire, utc("2026-11-28T00:00:00Z"));
    assert_int_equal(d.next_fire, utc("2026-11-29T00:00:00Z"));
    assert_string_equal(d.log, "schedule 7: 4 fire(s) missed while the daemon was down "
                               "(2026-11-25T01:00:00+01:00 to 2026-11-28T01:00:00+01:00): "
                               "dropped (catch_up skip)");
    /* the state the skip leaves does not fire again at the next tick */
    s.last_fire = d.last_fire;
    s.next_fire = d.next_fire;
    schedule_due(&s, now + 1, 0, &d);
    assert_int_equal(d.action, SCHEDULE_NOTHING);
    /* ... and fires normally the next night */
    schedule_due(&s, utc("2026-11-29T00:00:01Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.late, 0);
    assert_int_equal(d.missed, 1);
    assert_string_equal(d.log, "schedule 7: fire at 2026-11-29T01:00:00+01:00");

    /* down for an hour that spans no fire: nothing to catch up */
    s.next_fire = utc("2026-11-29T00:00:00Z");
    schedule_startup(&s, utc("2026-11-28T13:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_NOTHING);
    assert_int_equal(d.next_fire, utc("2026-11-29T00:00:00Z"));
    assert_string_equal(d.log, "");
    /* restarted 30 s after a fire time: the fire is simply due, even with catch_up skip */
    schedule_startup(&s, utc("2026-11-29T00:00:30Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.late, 0);
    schedule_spec_free(&s.spec);
}

/* The machine slept from 00:30 to 03:00 UTC: the tick sees a fire 2 hours late. */
static void test_sleep_is_a_miss(void **state) {
    (void)state;
    Schedule s;
    ScheduleDecision d;
    make(&s, NIGHTLY "}", utc("2026-11-20T12:00:00Z"));
    s.next_fire = utc("2026-11-29T00:00:00Z");
    schedule_due(&s, utc("2026-11-29T03:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_MISSED);
    assert_string_equal(d.log, "schedule 7: 1 fire(s) missed while the daemon was not running "
                               "(sleep or a clock jump) (2026-11-29T01:00:00+01:00 to "
                               "2026-11-29T01:00:00+01:00): dropped (catch_up skip)");
    assert_int_equal(d.next_fire, utc("2026-11-30T00:00:00Z"));
    s.spec.catch_up = SCHEDULE_CATCHUP_ONCE;
    schedule_due(&s, utc("2026-11-29T03:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.late, 1);
    /* a wall clock jumped 3 days: one decision, next fire from the new now, no backlog */
    schedule_due(&s, utc("2026-12-02T10:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.missed, 4);
    assert_int_equal(d.next_fire, utc("2026-12-03T00:00:00Z"));
    /* a fire up to the grace late is on time */
    schedule_due(&s, utc("2026-11-29T00:00:00Z") + SCHEDULE_GRACE_S - 1, 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.late, 0);
    schedule_spec_free(&s.spec);
}

static void test_not_due(void **state) {
    (void)state;
    Schedule s;
    ScheduleDecision d;
    make(&s, NIGHTLY "}", utc("2026-11-28T10:00:00Z"));
    /* fresh: next_fire is computed, nothing due */
    schedule_due(&s, utc("2026-11-28T10:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_NOTHING);
    assert_int_equal(d.next_fire, utc("2026-11-29T00:00:00Z"));
    s.next_fire = d.next_fire;
    schedule_due(&s, utc("2026-11-28T23:59:59Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_NOTHING);
    assert_int_equal(d.next_fire, s.next_fire);
    assert_int_equal(d.fire_time, 0);
    /* the wall clock jumped back an hour after a fire: the fire is not repeated */
    s.last_fire = utc("2026-11-29T00:00:00Z");
    s.next_fire = utc("2026-11-30T00:00:00Z");
    schedule_due(&s, utc("2026-11-28T23:30:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_NOTHING);
    schedule_spec_free(&s.spec);
}

static void test_concurrency(void **state) {
    (void)state;
    Schedule s;
    ScheduleDecision d;
    make(&s, NIGHTLY "}", utc("2026-11-20T12:00:00Z"));
    s.next_fire = utc("2026-11-29T00:00:00Z");
    int64_t now = utc("2026-11-29T00:00:02Z");
    schedule_due(&s, now, 1, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_RUNNING);
    assert_string_equal(d.log, "schedule 7: fire at 2026-11-29T01:00:00+01:00 skipped: 1 run(s) "
                               "still going (concurrency forbid)");
    assert_int_equal(d.last_fire, utc("2026-11-29T00:00:00Z"));
    assert_int_equal(d.next_fire, utc("2026-11-30T00:00:00Z"));
    assert_string_equal(schedule_action_name(d.action), "skip-running");
    schedule_due(&s, now, 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    s.spec.concurrency = SCHEDULE_ALLOW;
    schedule_due(&s, now, 3, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    /* forbid also applies to a start-up catch-up while a recovered run is going */
    s.spec.concurrency = SCHEDULE_FORBID;
    s.spec.catch_up = SCHEDULE_CATCHUP_ONCE;
    schedule_startup(&s, utc("2026-11-29T05:00:00Z"), 1, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_RUNNING);
    /* paused: dropped, and the next fire moves on */
    s.paused = 1;
    schedule_due(&s, now, 0, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_PAUSED);
    assert_int_equal(d.next_fire, utc("2026-11-30T00:00:00Z"));
    schedule_spec_free(&s.spec);
}

/* ---- until ---------------------------------------------------------------------------------- */

static void test_until_deadlines(void **state) {
    (void)state;
    Schedule s;
    ScheduleDecision d;
    /* start 23:00, until 07:00: the deadline is the next morning */
    make(&s,
         "{\"cron\":\"0 23 * * *\",\"tz\":\"Europe/Berlin\",\"until\":\"07:00\",\"job\":" JOB "}",
         utc("2026-11-20T12:00:00Z"));
    s.next_fire = utc("2026-11-28T22:00:00Z");
    schedule_due(&s, utc("2026-11-28T22:00:01Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    iso_is(s.spec.zone, d.deadline, "2026-11-29T07:00:00+01:00");
    assert_string_equal(d.log, "schedule 7: fire at 2026-11-28T23:00:00+01:00, deadline "
                               "2026-11-29T07:00:00+01:00");
    /* the spring-forward night is an hour shorter: 23:00 CET to 07:00 CEST is 7 hours */
    int64_t f = utc("2026-03-28T22:00:00Z");
    assert_int_equal(schedule_deadline(&s.spec, f) - f, 7 * 3600);
    iso_is(s.spec.zone, schedule_deadline(&s.spec, f), "2026-03-29T07:00:00+02:00");
    /* and the fall-back night an hour longer */
    f = utc("2026-10-24T21:00:00Z");
    assert_int_equal(schedule_deadline(&s.spec, f) - f, 9 * 3600);
    /* a start-up catch-up at 06:59:30 leaves under a minute: skipped */
    s.spec.catch_up = SCHEDULE_CATCHUP_ONCE;
    s.next_fire = utc("2026-11-28T22:00:00Z");
    schedule_startup(&s, utc("2026-11-29T05:59:30Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_SKIP_NO_TIME);
    assert_int_equal(d.deadline, 0);
    assert_string_equal(d.log, "schedule 7: fire at 2026-11-28T23:00:00+01:00 skipped: until "
                               "07:00 leaves under a minute (deadline 2026-11-29T07:00:00+01:00)");
    /* a catch-up at 06:00 gets the hour that is left */
    schedule_startup(&s, utc("2026-11-29T05:00:00Z"), 0, &d);
    assert_int_equal(d.action, SCHEDULE_FIRE);
    assert_int_equal(d.deadline - utc("2026-11-29T05:00:00Z"), 3600);
    schedule_spec_free(&s.spec);

    /* 01:00 until 07:00: the same day */
    make(&s, NIGHTLY ",\"until\":\"07:00\"}", 0);
    iso_is(s.spec.zone, schedule_deadline(&s.spec, utc("2026-11-29T00:00:00Z")),
           "2026-11-29T07:00:00+01:00");
    schedule_spec_free(&s.spec);
    /* an until inside the spring-forward gap: the instant the clock jumps over it */
    make(&s, NIGHTLY ",\"until\":\"02:30\"}", 0);
    iso_is(s.spec.zone, schedule_deadline(&s.spec, utc("2026-03-29T00:00:00Z")),
           "2026-03-29T03:00:00+02:00");
    /* an until in the fall-back overlap: its first occurrence */
    iso_is(s.spec.zone, schedule_deadline(&s.spec, utc("2026-10-24T23:00:00Z")),
           "2026-10-25T02:30:00+02:00");
    /* no until: no deadline */
    schedule_spec_free(&s.spec);
    make(&s, NIGHTLY "}", 0);
    assert_int_equal(schedule_deadline(&s.spec, utc("2026-10-24T23:00:00Z")), 0);
    schedule_spec_free(&s.spec);
}

/* ---- the job a fire submits ----------------------------------------------------------------- */

static void test_fire_job(void **state) {
    (void)state;
    Schedule s;
    make(&s,
         "{\"cron\":\"0 1 * * *\",\"tz\":\"Europe/Berlin\",\"until\":\"07:00\",\"job\":"
         "{\"tasks\":[\"builtin:digits\"],\"warm_start\":false,"
         "\"budget\":{\"evaluations\":20,\"seconds\":100000}}}",
         0);
    int64_t fire = utc("2026-11-29T00:00:00Z"), start = fire + 2;
    int64_t deadline = schedule_deadline(&s.spec, start);
    cJSON *job = schedule_job(&s, fire, start, deadline);
    assert_non_null(job);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(job, "warm_start")));
    const cJSON *b = cJSON_GetObjectItem(job, "budget");
    assert_int_equal((int)cJSON_GetObjectItem(b, "seconds")->valuedouble, 6 * 3600 - 2);
    assert_int_equal((int)cJSON_GetObjectItem(b, "evaluations")->valuedouble, 20);
    const cJSON *seed = cJSON_GetObjectItem(job, "seed");
    assert_true(cJSON_IsNumber(seed));
    /* deterministic per fire, different across nights */
    cJSON *job2 = schedule_job(&s, fire, start, deadline);
    cJSON *job3 = schedule_job(&s, fire + 86400, start + 86400, deadline + 86400);
    assert_true(cJSON_GetObjectItem(job2, "seed")->valuedouble == seed->valuedouble);
    assert_true(cJSON_GetObjectItem(job3, "seed")->valuedouble != seed->valuedouble);
    /* the result is a valid job */
    char err[LD_ERR_MAX];
    SearchJob *sj = NULL;
    if (job_parse(job, NULL, engine_env(), &sj, err) != LD_OK)
        fail_msg("schedule_job made an invalid job: %s", err);
    job_free(sj);
    /* the template is untouched */
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(s.spec.job, "warm_start")));
    assert_null(cJSON_GetObjectItem(s.spec.job, "seed"));
    cJSON_Delete(job);
    cJSON_Delete(job2);
    cJSON_Delete(job3);
    schedule_spec_free(&s.spec);

    /* a smaller wall-clock budget and an explicit seed in the template are kept; no budget
     * object at all gets one */
    make(&s,
         "{\"cron\":\"0 1 * * *\",\"tz\":\"UTC\",\"until\":\"07:00\",\"job\":"
         "{\"tasks\":[\"builtin:digits\"],\"seed\":5,\"budget\":{\"seconds\":600}}}",
         0);
    job = schedule_job(&s, fire, fire, schedule_deadline(&s.spec, fire));
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(job, "budget"), "seconds")
                         ->valuedouble,
                     600);
    assert_int_equal((int)cJSON_GetObjectItem(job, "seed")->valuedouble, 5);
    cJSON_Delete(job);
    schedule_spec_free(&s.spec);
    make(&s, "{\"cron\":\"0 1 * * *\",\"tz\":\"UTC\",\"until\":\"07:00\",\"job\":"
             "{\"tasks\":[\"builtin:digits\"]}}",
         0);
    job = schedule_job(&s, fire, fire, schedule_deadline(&s.spec, fire));
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(job, "budget"), "seconds")
                         ->valuedouble,
                     7 * 3600); /* 00:00 to 07:00 UTC */
    cJSON_Delete(job);
    /* no until: no wall-clock budget is added */
    s.spec.until_min = -1;
    job = schedule_job(&s, fire, fire, 0);
    assert_null(cJSON_GetObjectItem(job, "budget"));
    cJSON_Delete(job);
    schedule_spec_free(&s.spec);
}


/* ---- storage round trip --------------------------------------------------------------------- */

/* A schedule written with schedule_to_store and read back with schedule_from_row through a real
 * SQLite store keeps every field (the until and concurrency encodings included). */
static void test_store_roundtrip(void **state) {
    (void)state;
    char dir[] = "/tmp/lossd_sched_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[LD_ERR_MAX];
    snprintf(path, sizeof path, "%s/t.db", dir);
    Store *st = NULL;
    if (store_open(path, STORE_NOSYNC, &st, err) != LD_OK)
        fail_msg("store_open: %s", err);
    static const char *params[] = {
        "{\"cron\":\"0 23 * * *\",\"tz\":\"Europe/Berlin\",\"until\":\"07:00\",\"catch_up\":"
        "\"once\",\"concurrency\":\"allow\",\"name\":\"nightly\",\"job\":" JOB "}",
        "{\"cron\":\"*/15 1-5 * * MON-FRI\",\"tz\":\"America/New_York\",\"until\":\"00:00\","
        "\"job\":" JOB "}",
        "{\"cron\":\"@weekly\",\"tz\":\"UTC\",\"job\":" JOB "}",
    };
    for (int i = 0; i < 3; i++) {
        Schedule s, back;
        make(&s, params[i], 0);
        s.id = 0;
        s.paused = i == 1;
        s.last_fire = i ? 0 : utc("2026-11-27T22:00:00Z");
        s.next_fire = utc("2026-11-28T22:00:00Z");
        StoreSchedule sc;
        schedule_to_store(&s, &sc);
        int64_t id = 0;
        if (store_schedule_put(st, &sc, &id, err) != LD_OK)
            fail_msg("store_schedule_put: %s", err);
        cJSON *row = NULL;
        if (store_schedule_get(st, id, &row, err) != LD_OK)
            fail_msg("store_schedule_get: %s", err);
        if (schedule_from_row(row, &back, err) != LD_OK)
            fail_msg("schedule_from_row: %s", err);
        cJSON_Delete(row);
        assert_int_equal(back.id, id);
        assert_string_equal(back.spec.cron_expr, s.spec.cron_expr);
        assert_memory_equal(&back.spec.cron, &s.spec.cron, sizeof(Cron));
        assert_string_equal(back.spec.tz, s.spec.tz);
        assert_int_equal(back.spec.until_min, s.spec.until_min);
        assert_int_equal(back.spec.catch_up, s.spec.catch_up);
        assert_int_equal(back.spec.concurrency, s.spec.concurrency);
        assert_string_equal(back.spec.name, s.spec.name);
        assert_true(cJSON_Compare(back.spec.job, s.spec.job, 1));
        assert_int_equal(back.paused, s.paused);
        assert_int_equal(back.last_fire, s.last_fire);
        assert_int_equal(back.next_fire, s.next_fire);
        assert_true(back.created > 0);
        schedule_spec_free(&back.spec);
        schedule_spec_free(&s.spec);
    }
    store_close(st);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_errors),     cmocka_unit_test(test_validate_defaults),
        cmocka_unit_test(test_until_parse_and_store), cmocka_unit_test(test_catch_up_once_vs_skip),
        cmocka_unit_test(test_sleep_is_a_miss),     cmocka_unit_test(test_not_due),
        cmocka_unit_test(test_concurrency),         cmocka_unit_test(test_until_deadlines),
        cmocka_unit_test(test_fire_job),            cmocka_unit_test(test_store_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
