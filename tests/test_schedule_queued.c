/* test_schedule_queued.c: a scheduled run still queued when its `until` deadline passes ends
 * `expired` (docs/schedules.md, "until"), the case test_schedule_daemon.sh cannot reach: there a
 * run is queued only for an instant. A run is queued for longer when a restarted daemon is
 * still loading it (start-up recovery reads and parses its data off the loop); the tick that
 * comes meanwhile must expire it as queued, and the load that ends after must not start it.
 * The daemon runs in this process (no socket), so the tick is called while the load is still
 * pending on the loop, which no timing can promise over a socket. */
#include "../daemon/schedule_daemon.c" /* tick, reg: the deadline enforcement under test */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#define JOB "{\"name\":\"queued-run\",\"tasks\":[{\"data\":\"builtin:digits\",\"train\":{\"steps\":5}}]," \
            "\"budget\":{\"evaluations\":4},\"population\":2,\"children\":2,\"seeds\":1}"

/* A daemon on db with one worker, no socket. */
static Daemon *open_daemon(const char *db) {
    char err[LD_ERR_MAX] = "";
    DaemonConfig cfg = {.db_path = db, .workers = 1, .store_flags = STORE_NOSYNC};
    Daemon *d = NULL;
    int rc = daemon_open(&cfg, &d, err);
    if (rc != LD_OK) print_error("daemon_open: %s\n", err);
    assert_int_equal(rc, LD_OK);
    return d;
}

static char *job_state(Daemon *d, int64_t id, char *buf, size_t n) {
    char err[LD_ERR_MAX];
    cJSON *sum = NULL;
    assert_int_equal(daemon_job_get(d, id, 0, &sum, err), LD_OK);
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sum, "state"));
    snprintf(buf, n, "%s", s ? s : "?");
    cJSON_Delete(sum);
    return buf;
}

/* Runs fn(d) with the daemon's log (stderr) going to path; returns the log's text (owned). */
static char *logged(const char *path, void (*fn)(Daemon *), Daemon *d) {
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    dup2(fileno(f), 2);
    fn(d);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    size_t len = 0;
    char err[LD_ERR_MAX];
    char *text = ld_read_file(path, &len, err);
    assert_non_null(text);
    fputs(text, stderr); /* shown again, for a failure's report */
    return text;
}

static void one_tick(Daemon *d) { tick(d, NULL); }

/* Runs the loop until the start-up loads are done (at most 60 s). */
static void until_loaded(Daemon *d) {
    for (int i = 0; i < 6000 && d->loading; i++) {
        uv_run(&d->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
}

static void test_queued_at_deadline_expires(void **state) {
    (void)state;
    char dir[] = "/tmp/lossd-test-queued.XXXXXX", db[256], clock[256], logf[256], err[LD_ERR_MAX];
    char st[32];
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/s.db", dir);
    snprintf(clock, sizeof clock, "%s/clock", dir);
    snprintf(logf, sizeof logf, "%s/log", dir);

    /* a schedule with an until deadline and one run of it, stored queued: a daemon stopped
     * between storing a run and starting it leaves it so */
    Daemon *d = open_daemon(db);
    cJSON *params = cJSON_Parse("{\"cron\":\"0 3 * * *\",\"tz\":\"UTC\",\"until\":\"04:00\",\"job\":" JOB "}");
    cJSON *out = NULL;
    assert_int_equal(daemon_schedule_create(d, params, &out, err), LD_OK);
    int64_t sid = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(out, "schedule_id"));
    cJSON_Delete(out);
    cJSON *job = cJSON_Parse(JOB);
    DaemonSubmit sub = {.job = job, .schedule_id = sid};
    int64_t id = 0;
    int existed = 0;
    int rc = daemon_job_submit(d, &sub, &id, &existed, err);
    if (rc != LD_OK) print_error("submit: %s\n", err);
    assert_int_equal(rc, LD_OK);
    assert_int_equal(daemon_job_control(d, id, "pause", err), LD_OK);
    daemon_free(d);
    cJSON_Delete(job);
    cJSON_Delete(params);
    Store *s = NULL;
    assert_int_equal(store_open(db, STORE_NOSYNC, &s, err), LD_OK);
    assert_int_equal(store_job_set_state(s, id, "queued", NULL, err), LD_OK);
    store_close(s);

    /* two days later (the fake clock): the deadline (04:00 after the run was made) has passed */
    FILE *f = fopen(clock, "w");
    assert_non_null(f);
    fprintf(f, "%lld\n", (long long)ld_wall_s() + 2 * 86400);
    fclose(f);
    setenv("LOSSD_FAKE_CLOCK_FILE", clock, 1);

    /* the restart: the run is being loaded (its load ends on the loop, which has not run) */
    d = open_daemon(db);
    assert_non_null(d->loading);
    assert_int_equal(schedule_start(d, err), LD_OK);
    printf("after the restart, loading: job %lld is %s\n", (long long)id, job_state(d, id, st, sizeof st));
    assert_string_equal(st, "queued");
    assert_int_equal(reg.nw, 1); /* watched for its deadline again */

    char *log = logged(logf, one_tick, d);
    char want[160];
    snprintf(want, sizeof want, "schedule %lld: job %lld reached its until deadline while queued: expired",
             (long long)sid, (long long)id);
    if (!strstr(log, want)) print_error("the log lacks \"%s\"\n", want);
    assert_non_null(strstr(log, want));
    free(log);
    printf("after the tick: job %lld is %s\n", (long long)id, job_state(d, id, st, sizeof st));
    assert_string_equal(st, "expired");
    assert_int_equal(reg.nw, 0);

    /* the load ends: the run is not started, it stays expired with nothing evaluated */
    log = logged(logf, until_loaded, d);
    assert_null(d->loading);
    snprintf(want, sizeof want, "job %lld: expired while it loaded; not resumed", (long long)id);
    if (!strstr(log, want)) print_error("the log lacks \"%s\"\n", want);
    assert_non_null(strstr(log, want));
    free(log);
    for (int i = 0; i < 50; i++) { /* half a second more: nothing is handed to the worker */
        uv_run(&d->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    cJSON *sum = NULL;
    assert_int_equal(daemon_job_get(d, id, 0, &sum, err), LD_OK);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(sum, "progress");
    double evals = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pr, "evaluations"));
    printf("after the load: job %lld is %s, %g evaluations\n", (long long)id, job_state(d, id, st, sizeof st),
           evals);
    assert_string_equal(st, "expired");
    assert_true(evals == 0);
    cJSON_Delete(sum);
    daemon_free(d);
    reg_clear();
    free(reg.w);
    reg.w = NULL;
    reg.nw = reg.capw = 0;
    unsetenv("LOSSD_FAKE_CLOCK_FILE");
    unlink(clock);
    unlink(logf);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_at_deadline_expires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
