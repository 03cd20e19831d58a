/* test_alloc_sweep.c: the allocation-fault sweep at every N (issue 16): a small job's store
 * traffic, written through the calls the daemon makes (submit, rounds of candidates, outcomes,
 * ranks, progress, the saved engine state, events, the end), runs once counting SQLite's
 * allocations, then once for every N from 1 to that count with the Nth allocation failing
 * (storage/faultvfs.c's hook, armed with store_fault_arm), each run stopping at the first
 * failing call as the daemon's job stalls. After each, a restart without faults must open the
 * database, PRAGMA integrity_check must say ok, every candidate, evaluation and saved state whose
 * call (or commit) was acknowledged must be there as written, and the job must then run to its
 * end on that database. $ALLOC_SWEEP_ROUNDS sets the job's rounds (default 1, for make test;
 * tests/fault_sweep.sh --alloc-every runs 3, from the store's opening too: docs/reliability.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../storage/store.h"

#define CANDS_PER_ROUND 4

static char tmpdir[256];
static int rounds = 1;
static int uncounted; /* failures store_faults did not count (printed) */

/* What the child acknowledged, as lines of its ack file: "c CAND", "e SEQ", "s ROUND". */
static void ack(FILE *f, char kind, long long v) {
    if (!f) return;
    fprintf(f, "%c %lld\n", kind, v);
    fflush(f);
}

static void expr_of(int64_t cand, char *buf, size_t n) {
    snprintf(buf, n, "%d*ce + focal(%d)", (int)cand, (int)(cand % 5) + 1);
}

static double val_of(int64_t seq) { return 0.5 + 0.001 * (double)seq; }

static void result_of(int64_t seq, WorkOutcome *o) {
    memset(o, 0, sizeof *o);
    o->job_id = 1;
    o->seq = seq;
    o->status = seq % 7 == 3 ? WORK_FAILED : WORK_OK;
    o->res.ok = o->status == WORK_OK;
    if (!o->res.ok) snprintf(o->res.error, sizeof o->res.error, "non-finite loss at step %d", 7);
    snprintf(o->res.metric, sizeof o->res.metric, "accuracy");
    o->res.val = o->res.ok ? val_of(seq) : NAN;
    o->res.test = o->res.ok ? val_of(seq) - 0.01 : NAN;
    o->res.steps = 20;
    o->res.wall_ms = 12.5;
    o->res.final_loss = 0.25;
    o->res.ncurve = 10;
    for (int i = 0; i < 10; i++)
        o->res.curve[i] = (EvalCurvePoint){.step = 2 * (i + 1), .loss = 1.0f / (float)(i + 1),
                                           .val = 0.1f * (float)i};
    o->res.nextra = 2;
    o->res.extra[0] = (EvalMetric){"accuracy", o->res.val, o->res.test};
    o->res.extra[1] = (EvalMetric){"macro_f1", 0.4, 0.39};
}

static cJSON *engine_state(int round) {
    cJSON *st = cJSON_CreateObject();
    cJSON_AddNumberToObject(st, "round", round);
    cJSON *cands = cJSON_AddArrayToObject(st, "cands");
    for (int c = 1; c <= (round + 1) * CANDS_PER_ROUND; c++) {
        char e[64];
        expr_of(c, e, sizeof e);
        cJSON_AddItemToArray(cands, cJSON_CreateString(e));
    }
    return st;
}

/* The job's store traffic from round `from` on (0: from its submit); acks what committed.
 * Returns LD_OK when the job ended, or the first failing call's status (its transaction rolled
 * back, as the daemon's stall does). */
static int workload(Store *s, int from, FILE *acks, char *err) {
    int rc = LD_OK;
    int64_t job = 1, task = 0;
    cJSON *spec = cJSON_CreateObject();
    cJSON_AddStringToObject(spec, "name", "sweep");
    cJSON_AddNumberToObject(spec, "seed", 7);
    cJSON *tspec = cJSON_CreateObject();
    cJSON_AddStringToObject(tspec, "data", "builtin:digits");
    if (from == 0) { /* the submit: one transaction, as submit_finish writes it */
        cJSON *st0 = engine_state(-1);
        StoreJobNew nj = {.spec = spec, .name = "sweep", .priority = 1, .seed = 7,
                          .client_token = "tok", .budget_evals = 24};
        rc = store_begin(s, err);
        if (rc == LD_OK) rc = store_job_insert(s, &nj, &job, NULL, err);
        if (rc == LD_OK)
            rc = store_task_upsert(s, 42, "classification", "digits", "accuracy", 1, tspec, &task,
                                   err);
        if (rc == LD_OK) rc = store_job_add_task(s, job, 0, task, 0, err);
        if (rc == LD_OK) rc = store_state_put(s, job, 0, st0, err);
        if (rc == LD_OK) rc = store_event_append(s, job, "job.submitted", spec, NULL, err);
        if (rc == LD_OK) rc = store_commit(s, err);
        else store_rollback(s);
        cJSON_Delete(st0);
        if (rc == LD_OK) ack(acks, 's', 0);
        if (rc == LD_OK) rc = store_job_set_state(s, job, "running", NULL, err);
    } else {
        rc = store_task_upsert(s, 42, "classification", "digits", "accuracy", 1, tspec, &task,
                               err);
    }
    for (int r = from; rc == LD_OK && r < rounds; r++) {
        int64_t c0 = (int64_t)r * CANDS_PER_ROUND + 1;
        cJSON *parents = cJSON_CreateArray();
        cJSON_AddItemToArray(parents, cJSON_CreateNumber(c0 > 1 ? (double)(c0 - 1) : 1));
        rc = store_begin(s, err); /* round_book_candidates */
        for (int64_t c = c0; rc == LD_OK && c < c0 + CANDS_PER_ROUND; c++) {
            char e[64];
            expr_of(c, e, sizeof e);
            rc = store_candidate_put(s, job, c, e, (uint64_t)c * 977, 3, parents,
                                     r == 0 ? "init" : "mutate", NULL, "classification", NULL, err);
        }
        if (rc == LD_OK) rc = store_commit(s, err);
        else store_rollback(s);
        cJSON_Delete(parents);
        if (rc == LD_OK)
            for (int64_t c = c0; c < c0 + CANDS_PER_ROUND; c++) ack(acks, 'c', c);
        for (int64_t c = c0; rc == LD_OK && c < c0 + CANDS_PER_ROUND; c++) { /* each outcome */
            WorkOutcome o;
            result_of(c, &o);
            StoreEvalKey k = {.job_id = job, .seq = c, .cand = c, .task_id = task, .seed = 1,
                              .steps = 20};
            rc = store_outcome_put(s, &k, &o, NULL, err);
            if (rc == LD_OK) ack(acks, 'e', c);
        }
        if (rc != LD_OK) break;
        cJSON *st = engine_state(r), *lb = NULL; /* round_book_close */
        rc = store_begin(s, err);
        for (int64_t c = c0; rc == LD_OK && c < c0 + CANDS_PER_ROUND; c++)
            rc = store_candidate_set_rank(s, job, c, val_of(c), 1, err);
        if (rc == LD_OK) rc = store_leaderboard_job(s, job, 100, &lb, err);
        if (rc == LD_OK)
            rc = store_job_update_progress(s, job, c0 + CANDS_PER_ROUND - 1, val_of(c0), lb, st,
                                           err);
        if (rc == LD_OK) rc = store_state_put(s, job, r + 1, st, err);
        if (rc == LD_OK) rc = store_event_append(s, job, "job.round", NULL, NULL, err);
        if (rc == LD_OK) rc = store_commit(s, err);
        else store_rollback(s);
        if (rc == LD_OK) ack(acks, 's', r + 1);
        cJSON_Delete(lb);
        cJSON_Delete(st);
    }
    if (rc == LD_OK) rc = store_job_set_state(s, job, "done", NULL, err);
    cJSON_Delete(spec);
    cJSON_Delete(tspec);
    return rc;
}

/* Runs the workload with its nth SQLite allocation failing, counted from the store's opening
 * when with_open (the schema's checks included), else from the workload's first call; its acks
 * go to ackpath. In this process, as SQLite's own malloc tests do: a failure must leave nothing
 * behind but an error (the sanitizer build checks for leaks and bad accesses on those paths).
 * Returns 0 when the job ended, 2 when a call failed; *fired says whether the fault fired. */
static int run_one(const char *db, long long n, int with_open, const char *ackpath, int *fired) {
    char err[LD_ERR_MAX];
    FILE *acks = fopen(ackpath, "w");
    Store *s = NULL;
    long long f0 = store_fault_fired();
    if (with_open) store_fault_arm(n);
    int rc = store_open(db, STORE_NOSYNC, &s, err);
    if (rc == LD_OK && !with_open) rc = store_fault_arm(n);
    if (rc == LD_OK) rc = workload(s, 0, acks, err);
    store_fault_arm(0);
    /* the daemon retries a write that failed for the storage's sake (store_faults moved) and
     * fails the job otherwise: an allocation failure must count as one */
    if (rc != LD_OK && s && store_faults(s) == 0) {
        print_error("N=%lld: the failure is not counted as a storage fault (the daemon would "
                    "fail the job, not retry): %s\n", n, err);
        uncounted++;
    }
    if (rc != LD_OK && getenv("ALLOC_SWEEP_VERBOSE")) print_message("N=%lld: %s\n", n, err);
    store_close(s);
    if (acks) fclose(acks);
    *fired = store_fault_fired() != f0;
    return rc == LD_OK ? 0 : 2;
}

/* The restart's checks; returns the number of problems (printed). */
static int check_after(const char *db, const char *ackpath, long long n) {
    int bad = 0;
    char err[LD_ERR_MAX] = "", line[64];
    if (access(db, F_OK) != 0) return 0; /* the fault hit the file's creation */
    Store *s = NULL;
    if (store_open(db, STORE_NOSYNC, &s, err) != LD_OK) {
        print_error("N=%lld: the restart cannot open the database: %s\n", n, err);
        return 1;
    }
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (!v || strcmp(v, "ok")) {
            print_error("N=%lld: integrity_check: %s\n", n, v ? v : "NULL");
            bad++;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(raw);
    int64_t last_round = -1;
    FILE *f = fopen(ackpath, "r");
    while (f && fgets(line, sizeof line, f)) {
        char kind = 0;
        long long v = 0;
        if (sscanf(line, "%c %lld", &kind, &v) != 2) continue;
        if (kind == 'c') {
            cJSON *c = NULL;
            char e[64];
            expr_of(v, e, sizeof e);
            const cJSON *ex = NULL;
            if (store_candidate_get(s, 1, v, &c, err) != LD_OK ||
                !cJSON_IsString(ex = cJSON_GetObjectItemCaseSensitive(c, "expr")) ||
                strcmp(ex->valuestring, e)) {
                print_error("N=%lld: acknowledged candidate %lld lost or changed: %s\n", n, v, err);
                bad++;
            }
            cJSON_Delete(c);
        } else if (kind == 'e') {
            int found = 0;
            WorkOutcome o, want;
            result_of(v, &want);
            if (store_outcome_get_seq(s, 1, v, &found, &o, err) != LD_OK || !found ||
                o.status != want.status || (want.res.ok && o.res.val != want.res.val) ||
                o.res.ncurve != want.res.ncurve) {
                print_error("N=%lld: acknowledged evaluation %lld lost or changed (found %d): %s\n",
                            n, v, found, err);
                bad++;
            }
        } else if (kind == 's') {
            last_round = v;
        }
    }
    if (f) fclose(f);
    int64_t round = -1;
    cJSON *state = NULL;
    if (last_round >= 0 && (store_state_get(s, 1, &round, &state, err) != LD_OK || round < last_round)) {
        print_error("N=%lld: the saved state of round %lld is lost (have %lld): %s\n", n,
                    (long long)last_round, (long long)round, err);
        bad++;
    }
    cJSON_Delete(state);
    /* and the job runs to its end from what is stored, as the daemon's reload does */
    if (last_round >= 0 && workload(s, (int)last_round, NULL, err) != LD_OK) {
        print_error("N=%lld: the job cannot go on after the restart: %s\n", n, err);
        bad++;
    }
    store_close(s);
    return bad;
}

static void remove_db(const char *db) {
    char p[400];
    const char *suffix[] = {"", "-wal", "-shm", ".lock"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
}

static void copy_file(const char *from, const char *to) {
    char buf[65536];
    size_t n;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) fail_msg("copying %s to %s", from, to);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) fail_msg("copying %s to %s", from, to);
    fclose(in);
    fclose(out);
}

/* Every N from 1 until an N past the run's last allocation (the fault no longer fires). */
static void sweep(int with_open) {
    char db[300], acks[300], tmpl[300], err[LD_ERR_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/template.db", tmpdir);
    Store *s0 = NULL; /* an empty database with its schema, copied for each run */
    if (store_open(tmpl, STORE_NOSYNC, &s0, err) != LD_OK) fail_msg("creating: %s", err);
    store_close(s0);
    snprintf(db, sizeof db, "%s/a.db", tmpdir);
    snprintf(acks, sizeof acks, "%s/acks", tmpdir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int bad = 0, ended = 0, stopped = 0;
    long long n;
    const char *fr = getenv("ALLOC_SWEEP_FROM"), *to = getenv("ALLOC_SWEEP_TO");
    for (n = fr ? atoll(fr) : 1;; n++) {
        if (to && n > atoll(to)) break;
        remove_db(db);
        if (!with_open) copy_file(tmpl, db); /* the database exists, as the daemon's does */
        int fired = 0;
        int st = run_one(db, n, with_open, acks, &fired);
        if (fired == 0 && st == 0) break; /* past the last allocation: the sweep is complete */
        ended += st == 0;
        stopped += st == 2;
        bad += check_after(db, acks, n);
        if (bad > 20) break;
    }
    remove_db(db);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("allocation sweep%s: %d rounds of %d candidates, every N from 1 to %lld (all the "
                  "run's allocations): %d runs stopped at the failing call and %d absorbed the "
                  "failure and ended; %lld restarts checked, %d problems, %.1f s\n",
                  with_open ? " from the store's opening" : " from the job's first write", rounds,
                  CANDS_PER_ROUND, n - 1, stopped, ended, n - 1, bad,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_int_equal(bad, 0);
    assert_int_equal(uncounted, 0);
    assert_true(stopped > 0); /* the faults hit */
}

static void test_every_allocation_of_a_job_fails_once(void **state) {
    (void)state;
    sweep(0);
}

/* The same from the store's opening (creating the file, the schema): about twice the N values;
 * $ALLOC_SWEEP_OPEN=1 (tests/fault_sweep.sh --alloc-every) runs it. */
static void test_every_allocation_from_open_fails_once(void **state) {
    (void)state;
    const char *o = getenv("ALLOC_SWEEP_OPEN");
    if (!o || strcmp(o, "1")) {
        print_message("(the sweep from the store's opening: ALLOC_SWEEP_OPEN=1)\n");
        return;
    }
    sweep(1);
}

static int setup(void **state) {
    (void)state;
    setenv("LOSSD_FAULT", "0,alloc", 1); /* the hook counts SQLite's allocations; armed per run */
    const char *r = getenv("ALLOC_SWEEP_ROUNDS");
    if (r && atoi(r) > 0) rounds = atoi(r);
    /* in memory when it can be: every run copies, opens, checks and closes a database */
    snprintf(tmpdir, sizeof tmpdir, "%s/test_alloc_sweep.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_of_a_job_fails_once),
        cmocka_unit_test(test_every_allocation_from_open_fails_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
