/* schedule.c: pure schedule logic (validation, due and start-up decisions, until deadlines,
 * the job a fire submits); the clock is always a parameter (docs/schedules.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../search/search.h"
#include "engine.h"
#include "schedule.h"

static const char *json_type(const cJSON *v) {
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    return "invalid";
}

int schedule_parse_until(const char *s) {
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    int h = s[0] - '0', i = 1;
    if (s[1] >= '0' && s[1] <= '9') {
        h = h * 10 + (s[1] - '0');
        i = 2;
    }
    if (s[i] != ':' || s[i + 1] < '0' || s[i + 1] > '5' || s[i + 2] < '0' || s[i + 2] > '9' ||
        s[i + 3] != 0 || h > 23)
        return -1;
    return h * 60 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
}

void schedule_spec_free(ScheduleSpec *s) {
    if (!s)
        return;
    tz_free(s->zone);
    cJSON_Delete(s->job);
    s->zone = NULL;
    s->job = NULL;
}

/* An optional string param: LD_OK with *out NULL when absent or null. */
static int opt_string(const cJSON *params, const char *key, const char **out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return LD_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return ld_err(err, LD_EINVAL, "params.%s: expected a string, got %s", key, json_type(v));
    *out = v->valuestring;
    return LD_OK;
}

int schedule_validate(const cJSON *params, const char *base_dir, ScheduleSpec *out, char *err) {
    char e2[LD_ERR_MAX];
    const char *str;
    SearchJob *sj = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    out->until_min = -1;
    if (!cJSON_IsObject(params)) {
        rc = ld_err(err, LD_EINVAL, "params: expected an object");
        goto fail;
    }

    /* cron */
    const cJSON *cron = cJSON_GetObjectItemCaseSensitive(params, "cron");
    if (!cron) {
        rc = ld_err(err, LD_EINVAL, "params.cron: missing");
        goto fail;
    }
    rc = opt_string(params, "cron", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (!str) {
        rc = ld_err(err, LD_EINVAL, "params.cron: expected a string, got null");
        goto fail;
    }
    while (*str == ' ' || *str == '\t')
        str++;
    size_t n = strlen(str);
    while (n > 0 && (str[n - 1] == ' ' || str[n - 1] == '\t'))
        n--;
    if (n >= SCHEDULE_CRON_MAX) {
        rc = ld_err(err, LD_EINVAL, "params.cron: longer than %d characters",
                    SCHEDULE_CRON_MAX - 1);
        goto fail;
    }
    memcpy(out->cron_expr, str, n);
    out->cron_expr[n] = 0;
    rc = cron_parse(out->cron_expr, &out->cron, e2);
    if (rc != LD_OK) {
        ld_err(err, rc, "params.cron: %s", e2);
        goto fail;
    }

    /* tz */
    rc = opt_string(params, "tz", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (str && !*str) {
        rc = ld_err(err, LD_EINVAL, "params.tz: empty (leave it out for the daemon's zone)");
        goto fail;
    }
    rc = tz_load(str, &out->zone, e2);
    if (rc != LD_OK) {
        ld_err(err, rc, "params.tz: %s", e2);
        goto fail;
    }
    snprintf(out->tz, sizeof out->tz, "%s", tz_name(out->zone));
    /* A parsed cron can still never fire in a zone: 02:02 on 31 March when that is a Sunday
     * (day-of-week "*" stepped by 7, so both days must match) is, in Europe/Berlin, always on
     * the last Sunday of March, inside the spring-forward gap (found by tests/fuzz/fuzz_cron.c). */
    if (cron_next(&out->cron, out->zone, (int64_t)time(NULL)) < 0) {
        rc = ld_err(err, LD_EINVAL, "params.cron: '%s' never fires in %s (every time it names falls "
                                    "in a daylight-saving gap)", out->cron_expr, out->tz);
        goto fail;
    }

    /* until */
    rc = opt_string(params, "until", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (str) {
        out->until_min = schedule_parse_until(str);
        if (out->until_min < 0) {
            rc = ld_err(err, LD_EINVAL,
                        "params.until: expected a local time HH:MM (00:00-23:59), got '%.32s'",
                        str);
            goto fail;
        }
        int h = out->until_min / 60, m = out->until_min % 60;
        if (cron_fires_at_time(&out->cron, h, m)) {
            rc = ld_err(err, LD_EINVAL,
                        "params.until: %02d:%02d is a time the schedule fires at (cron '%s'), so "
                        "a run started then would have no time",
                        h, m, out->cron_expr);
            goto fail;
        }
    }

    /* catch_up, concurrency, name */
    rc = opt_string(params, "catch_up", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (!str || !strcmp(str, "skip")) {
        out->catch_up = SCHEDULE_CATCHUP_SKIP;
    } else if (!strcmp(str, "once")) {
        out->catch_up = SCHEDULE_CATCHUP_ONCE;
    } else {
        rc = ld_err(err, LD_EINVAL, "params.catch_up: expected \"skip\" or \"once\", got '%.32s'",
                    str);
        goto fail;
    }
    rc = opt_string(params, "concurrency", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (!str || !strcmp(str, "forbid")) {
        out->concurrency = SCHEDULE_FORBID;
    } else if (!strcmp(str, "allow")) {
        out->concurrency = SCHEDULE_ALLOW;
    } else {
        rc = ld_err(err, LD_EINVAL,
                    "params.concurrency: expected \"forbid\" or \"allow\", got '%.32s'", str);
        goto fail;
    }
    rc = opt_string(params, "name", &str, err);
    if (rc != LD_OK)
        goto fail;
    if (str) {
        if (strlen(str) >= sizeof out->name) {
            rc = ld_err(err, LD_EINVAL, "params.name: longer than %zu characters",
                        sizeof out->name - 1);
            goto fail;
        }
        snprintf(out->name, sizeof out->name, "%s", str);
    }

    /* job: parsed now, so a bad template is refused at creation and not at 01:00 */
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(params, "job");
    if (!job) {
        rc = ld_err(err, LD_EINVAL, "params.job: missing");
        goto fail;
    }
    if (!cJSON_IsObject(job)) {
        rc = ld_err(err, LD_EINVAL, "params.job: expected an object, got %s", json_type(job));
        goto fail;
    }
    rc = job_parse(job, base_dir, engine_env(), &sj, e2);
    if (rc != LD_OK) {
        ld_err(err, rc, "params.job: %s", e2);
        goto fail;
    }
    job_free(sj);
    out->job = cJSON_Duplicate(job, 1);
    if (!out->job) {
        rc = ld_err(err, LD_ENOMEM, "params.job: out of memory");
        goto fail;
    }
    return LD_OK;
fail:
    schedule_spec_free(out);
    memset(out, 0, sizeof *out);
    out->until_min = -1;
    return rc;
}

/* ---- deadlines -------------------------------------------------------------------------- */

static int64_t floor_day(int64_t local) {
    int64_t q = local / 86400;
    if (local % 86400 != 0 && local < 0)
        q--;
    return q;
}

int64_t schedule_deadline(const ScheduleSpec *s, int64_t start_utc) {
    if (s->until_min < 0)
        return 0;
    int64_t day0 = floor_day(tz_local(s->zone, start_utc));
    int64_t best = 0;
    /* The candidate local times on the neighbouring days cover any offset change. */
    for (int64_t d = day0 - 1; d <= day0 + 2; d++) {
        int64_t local = d * 86400 + (int64_t)s->until_min * 60;
        int64_t inst[2];
        int n = tz_local_to_utc(s->zone, local, inst);
        if (n == 0) {
            inst[0] = tz_gap_end(s->zone, local);
            n = 1;
        }
        for (int i = 0; i < n; i++)
            if (inst[i] > start_utc && (best == 0 || inst[i] < best))
                best = inst[i];
    }
    return best;
}

/* ---- decisions -------------------------------------------------------------------------- */

const char *schedule_action_name(ScheduleAction a) {
    switch (a) {
    case SCHEDULE_NOTHING: return "nothing";
    case SCHEDULE_FIRE: return "fire";
    case SCHEDULE_SKIP_RUNNING: return "skip-running";
    case SCHEDULE_SKIP_MISSED: return "skip-missed";
    case SCHEDULE_SKIP_PAUSED: return "skip-paused";
    case SCHEDULE_SKIP_NO_TIME: return "skip-no-time";
    }
    return "?";
}

static void decide(const Schedule *s, int64_t now, int running, int startup,
                   ScheduleDecision *out) {
    const ScheduleSpec *sp = &s->spec;
    memset(out, 0, sizeof *out);
    out->last_fire = s->last_fire;
    out->next_fire = s->next_fire;
    int64_t pending = s->next_fire;
    if (pending <= 0) {
        int64_t anchor = s->last_fire > s->created ? s->last_fire : s->created;
        pending = cron_next(&sp->cron, sp->zone, anchor > 0 ? anchor : now);
        out->next_fire = pending;
    }
    if (pending < 0 || now < pending)
        return;

    /* Due: count the fires in [pending, now]; one decision covers them all. */
    int64_t latest = pending;
    int missed = 1;
    while (missed < SCHEDULE_MISSED_CAP) {
        int64_t t = cron_next(&sp->cron, sp->zone, latest);
        if (t < 0 || t > now)
            break;
        latest = t;
        missed++;
    }
    out->fire_time = latest;
    out->missed = missed;
    out->last_fire = latest;
    out->next_fire = cron_next(&sp->cron, sp->zone, now);
    out->late = now - latest >= SCHEDULE_GRACE_S;

    char first[TZ_ISO_MAX], last[TZ_ISO_MAX], dl[TZ_ISO_MAX];
    tz_format_iso(sp->zone, pending, first);
    tz_format_iso(sp->zone, latest, last);
    const char *why = startup ? "while the daemon was down"
                              : "while the daemon was not running (sleep or a clock jump)";
    const char *more = missed >= SCHEDULE_MISSED_CAP ? "at least " : "";
    long long id = (long long)s->id;

    if (s->paused) {
        out->action = SCHEDULE_SKIP_PAUSED;
        snprintf(out->log, sizeof out->log, "schedule %lld: fire at %s dropped: paused", id,
                 last);
        return;
    }
    if (out->late && sp->catch_up == SCHEDULE_CATCHUP_SKIP) {
        out->action = SCHEDULE_SKIP_MISSED;
        snprintf(out->log, sizeof out->log,
                 "schedule %lld: %s%d fire(s) missed %s (%s to %s): dropped (catch_up skip)", id,
                 more, missed, why, first, last);
        return;
    }
    if (running > 0 && sp->concurrency == SCHEDULE_FORBID) {
        out->action = SCHEDULE_SKIP_RUNNING;
        snprintf(out->log, sizeof out->log,
                 "schedule %lld: fire at %s skipped: %d run(s) still going (concurrency forbid)",
                 id, last, running);
        return;
    }
    out->deadline = schedule_deadline(sp, now);
    if (sp->until_min >= 0 && out->deadline - now < 60) {
        tz_format_iso(sp->zone, out->deadline, dl);
        out->action = SCHEDULE_SKIP_NO_TIME;
        out->deadline = 0;
        snprintf(out->log, sizeof out->log,
                 "schedule %lld: fire at %s skipped: until %02d:%02d leaves under a minute "
                 "(deadline %s)",
                 id, last, sp->until_min / 60, sp->until_min % 60, dl);
        return;
    }
    out->action = SCHEDULE_FIRE;
    char dpart[64] = "";
    if (out->deadline > 0) {
        tz_format_iso(sp->zone, out->deadline, dl);
        snprintf(dpart, sizeof dpart, ", deadline %s", dl);
    }
    if (out->late)
        snprintf(out->log, sizeof out->log,
                 "schedule %lld: catch-up run for %s%d fire(s) missed %s (%s to %s)%s", id, more,
                 missed, why, first, last, dpart);
    else if (missed > 1)
        snprintf(out->log, sizeof out->log,
                 "schedule %lld: fire at %s (%d earlier fire(s) from %s dropped)%s", id, last,
                 missed - 1, first, dpart);
    else
        snprintf(out->log, sizeof out->log, "schedule %lld: fire at %s%s", id, last, dpart);
}

void schedule_due(const Schedule *s, int64_t now_utc, int running, ScheduleDecision *out) {
    decide(s, now_utc, running, 0, out);
}

void schedule_startup(const Schedule *s, int64_t now_utc, int running, ScheduleDecision *out) {
    decide(s, now_utc, running, 1, out);
}

/* ---- jobs and JSON ---------------------------------------------------------------------- */

cJSON *schedule_next_runs(const ScheduleSpec *s, int64_t now_utc, int n) {
    cJSON *arr = cJSON_CreateArray();
    int64_t t[64];
    if (n > 64)
        n = 64;
    int k = cron_next_n(&s->cron, s->zone, now_utc, n, t);
    for (int i = 0; arr && i < k; i++) {
        char iso[TZ_ISO_MAX];
        tz_format_iso(s->zone, t[i], iso);
        cJSON_AddItemToArray(arr, cJSON_CreateString(iso));
    }
    return arr;
}

static int set_item(cJSON *obj, const char *key, cJSON *v) {
    if (!v)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else
        cJSON_AddItemToObject(obj, key, v);
    return 0;
}

cJSON *schedule_job(const Schedule *s, int64_t fire_utc, int64_t start_utc, int64_t deadline) {
    cJSON *job = cJSON_Duplicate(s->spec.job, 1);
    if (!job)
        return NULL;
    if (set_item(job, "warm_start", cJSON_CreateTrue()))
        goto fail;
    if (deadline > 0) {
        double left = (double)(deadline - start_utc);
        cJSON *budget = cJSON_GetObjectItemCaseSensitive(job, "budget");
        if (!cJSON_IsObject(budget)) {
            budget = cJSON_CreateObject();
            if (!budget || set_item(job, "budget", budget))
                goto fail;
        }
        const cJSON *secs = cJSON_GetObjectItemCaseSensitive(budget, "seconds");
        if (!(cJSON_IsNumber(secs) && secs->valuedouble > 0 && secs->valuedouble < left))
            if (set_item(budget, "seconds", cJSON_CreateNumber(left)))
                goto fail;
    }
    if (!cJSON_GetObjectItemCaseSensitive(job, "seed")) {
        uint64_t seed = ld_mix64((uint64_t)s->id, (uint64_t)fire_utc) & ((1ull << 53) - 1);
        if (set_item(job, "seed", cJSON_CreateNumber((double)seed)))
            goto fail;
    }
    return job;
fail:
    cJSON_Delete(job);
    return NULL;
}

static void add_time(cJSON *o, const char *key, const TzZone *z, int64_t t) {
    if (t <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char iso[TZ_ISO_MAX];
    tz_format_iso(z, t, iso);
    cJSON_AddStringToObject(o, key, iso);
}

cJSON *schedule_json(const Schedule *s) {
    const ScheduleSpec *sp = &s->spec;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "schedule_id", (double)s->id);
    if (sp->name[0])
        cJSON_AddStringToObject(o, "name", sp->name);
    else
        cJSON_AddNullToObject(o, "name");
    cJSON_AddStringToObject(o, "cron", sp->cron_expr);
    cJSON_AddStringToObject(o, "tz", sp->tz);
    if (sp->until_min >= 0) {
        char u[8];
        snprintf(u, sizeof u, "%02d:%02d", sp->until_min / 60 % 24, sp->until_min % 60);
        cJSON_AddStringToObject(o, "until", u);
    } else {
        cJSON_AddNullToObject(o, "until");
    }
    cJSON_AddStringToObject(o, "catch_up", sp->catch_up == SCHEDULE_CATCHUP_ONCE ? "once" : "skip");
    cJSON_AddStringToObject(o, "concurrency",
                            sp->concurrency == SCHEDULE_ALLOW ? "allow" : "forbid");
    cJSON_AddBoolToObject(o, "paused", s->paused);
    add_time(o, "created", sp->zone, s->created);
    add_time(o, "last_fire", sp->zone, s->last_fire);
    add_time(o, "next_fire", sp->zone, s->paused ? 0 : s->next_fire);
    if (sp->job)
        cJSON_AddItemToObject(o, "job", cJSON_Duplicate(sp->job, 1));
    return o;
}

double schedule_until_to_store(int until_min) {
    if (until_min < 0)
        return 0;
    return until_min == 0 ? 86400.0 : until_min * 60.0;
}

int schedule_until_from_store(double until) {
    if (!(until > 0) || until > 86400)
        return -1;
    return until >= 86400 ? 0 : (int)(until / 60);
}

int schedule_concurrency_to_store(ScheduleConcurrency c) {
    /* the store reads 0 as 1, so "no limit" is a limit no schedule reaches */
    return c == SCHEDULE_ALLOW ? SCHEDULE_STORE_NO_LIMIT : 1;
}

ScheduleConcurrency schedule_concurrency_from_store(int max_running) {
    return max_running == 1 ? SCHEDULE_FORBID : SCHEDULE_ALLOW;
}

/* ---- storage ---------------------------------------------------------------------------- */

static double row_num(const cJSON *row, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

int schedule_from_row(const cJSON *row, Schedule *out, char *err) {
    char e2[LD_ERR_MAX];
    int rc;
    memset(out, 0, sizeof *out);
    out->spec.until_min = -1;
    out->id = (int64_t)row_num(row, "id");
    const cJSON *cron = cJSON_GetObjectItemCaseSensitive(row, "cron");
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(row, "tz");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "name");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(row, "job");
    if (!cJSON_IsString(cron) || strlen(cron->valuestring) >= SCHEDULE_CRON_MAX) {
        rc = ld_err(err, LD_EINVAL, "schedule %lld: no cron expression", (long long)out->id);
        goto fail;
    }
    snprintf(out->spec.cron_expr, sizeof out->spec.cron_expr, "%s", cron->valuestring);
    rc = cron_parse(out->spec.cron_expr, &out->spec.cron, e2);
    if (rc != LD_OK) {
        ld_err(err, rc, "schedule %lld: %s", (long long)out->id, e2);
        goto fail;
    }
    rc = tz_load(cJSON_IsString(tz) ? tz->valuestring : NULL, &out->spec.zone, e2);
    if (rc != LD_OK) {
        ld_err(err, rc, "schedule %lld: %s", (long long)out->id, e2);
        goto fail;
    }
    snprintf(out->spec.tz, sizeof out->spec.tz, "%s", tz_name(out->spec.zone));
    out->spec.until_min = schedule_until_from_store(row_num(row, "until"));
    out->spec.catch_up = row_num(row, "catch_up") != 0 ? SCHEDULE_CATCHUP_ONCE
                                                       : SCHEDULE_CATCHUP_SKIP;
    out->spec.concurrency = schedule_concurrency_from_store((int)row_num(row, "concurrency"));
    if (cJSON_IsString(name))
        snprintf(out->spec.name, sizeof out->spec.name, "%s", name->valuestring);
    if (!cJSON_IsObject(job)) {
        rc = ld_err(err, LD_EINVAL, "schedule %lld: no job template", (long long)out->id);
        goto fail;
    }
    out->spec.job = cJSON_Duplicate(job, 1);
    if (!out->spec.job) {
        rc = ld_err(err, LD_ENOMEM, "schedule %lld: out of memory", (long long)out->id);
        goto fail;
    }
    out->paused = row_num(row, "paused") != 0;
    out->created = (int64_t)row_num(row, "created");
    out->last_fire = (int64_t)row_num(row, "last_fire");
    out->next_fire = (int64_t)row_num(row, "next_fire");
    return LD_OK;
fail:
    schedule_spec_free(&out->spec);
    memset(out, 0, sizeof *out);
    out->spec.until_min = -1;
    return rc;
}

void schedule_to_store(const Schedule *s, StoreSchedule *out) {
    memset(out, 0, sizeof *out);
    out->id = s->id;
    out->name = s->spec.name[0] ? s->spec.name : NULL;
    out->cron = s->spec.cron_expr;
    out->tz = s->spec.tz;
    out->until = schedule_until_to_store(s->spec.until_min);
    out->catch_up = s->spec.catch_up == SCHEDULE_CATCHUP_ONCE;
    out->concurrency = schedule_concurrency_to_store(s->spec.concurrency);
    out->job_template = s->spec.job;
    out->paused = s->paused;
    out->last_fire = (double)s->last_fire;
    out->next_fire = (double)s->next_fire;
}
