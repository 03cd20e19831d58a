/* test_faults.c: the store under hostile and unlucky use (issue 16): a second writer through a
 * hard link, a symlink or a deleted PATH.lock is refused; a database deleted while open refuses
 * every write with a clear error; the storage-fault counter tells storage failures from refused
 * requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../storage/store.h"

static char tmpdir[256];

#define CHECK_ERR(err, want)                                                                      \
    do {                                                                                          \
        if (!strstr((err), (want)))                                                               \
            fail_msg("message: %s (want it to contain \"%s\")", (err), (want));                   \
    } while (0)

static Store *open_ok(const char *path)
{
    Store *s = NULL;
    char err[LD_ERR_MAX] = "";
    if (store_open(path, STORE_NOSYNC, &s, err) != LD_OK)
        fail_msg("store_open %s: %s", path, err);
    return s;
}

/* Opens path for writing in a child process; returns the status and the child's message. */
static int open_in_child(const char *path, char *msg, size_t n)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        Store *s = NULL;
        char err[LD_ERR_MAX] = "";
        close(fds[0]);
        int rc = store_open(path, STORE_NOSYNC, &s, err);
        if (write(fds[1], err, strlen(err)) < 0)
            _exit(100);
        store_close(s);
        _exit(rc == LD_OK ? 0 : -rc);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], msg, n - 1);
    msg[got > 0 ? got : 0] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? -WEXITSTATUS(status) : -99;
}

static void test_hard_link_refused(void **state)
{
    char path[300], link2[300], msg[LD_ERR_MAX];
    snprintf(path, sizeof path, "%s/hl.db", tmpdir);
    snprintf(link2, sizeof link2, "%s/hl2.db", tmpdir);
    Store *s = open_ok(path);
    assert_int_equal(link(path, link2), 0);
    /* the second name meets the lock on the inode: in use, not a second writer */
    int rc = open_in_child(link2, msg, sizeof msg);
    assert_int_equal(rc, LD_EBUSY);
    CHECK_ERR(msg, "in use by another lossd");
    store_close(s);
    /* with nobody holding it, a database with two names is refused outright */
    rc = open_in_child(path, msg, sizeof msg);
    assert_int_equal(rc, LD_ESTATE);
    CHECK_ERR(msg, "2 hard links");
    assert_int_equal(unlink(link2), 0);
    rc = open_in_child(path, msg, sizeof msg);
    if (rc != LD_OK)
        fail_msg("reopening after removing the link: %d %s", rc, msg);
}

static void test_symlink_and_deleted_lock_file(void **state)
{
    char path[300], sym[300], lockf[310], msg[LD_ERR_MAX];
    snprintf(path, sizeof path, "%s/sl.db", tmpdir);
    snprintf(sym, sizeof sym, "%s/sl-link.db", tmpdir);
    snprintf(lockf, sizeof lockf, "%s.lock", path);
    Store *s = open_ok(path);
    assert_int_equal(symlink(path, sym), 0);
    int rc = open_in_child(sym, msg, sizeof msg);
    assert_int_equal(rc, LD_EBUSY);
    CHECK_ERR(msg, "in use by another lossd");
    /* the pid file is informative only: deleting it lets nobody in */
    assert_int_equal(unlink(lockf), 0);
    rc = open_in_child(path, msg, sizeof msg);
    assert_int_equal(rc, LD_EBUSY);
    rc = open_in_child(sym, msg, sizeof msg);
    assert_int_equal(rc, LD_EBUSY);
    store_close(s);
    /* through the symlink once free: the WAL belongs to the real file */
    s = open_ok(sym);
    cJSON *spec = cJSON_CreateObject();
    StoreJobNew j = {.spec = spec};
    int64_t id = 0;
    char err[LD_ERR_MAX] = "";
    assert_int_equal(store_job_insert(s, &j, &id, NULL, err), LD_OK);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(access(wal, F_OK), 0);
    snprintf(wal, sizeof wal, "%s-wal", sym);
    assert_int_not_equal(access(wal, F_OK), 0);
    cJSON_Delete(spec);
    store_close(s);
}

static void test_deleted_database_refuses_writes(void **state)
{
    char dir[300], path[320], cmd[400], err[LD_ERR_MAX] = "";
    snprintf(dir, sizeof dir, "%s/gone", tmpdir);
    snprintf(path, sizeof path, "%s/x.db", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    Store *s = open_ok(path);
    cJSON *spec = cJSON_CreateObject();
    StoreJobNew j = {.spec = spec};
    int64_t id = 0;
    assert_int_equal(store_check_alive(s, err), LD_OK);
    assert_int_equal(store_job_insert(s, &j, &id, NULL, err), LD_OK);
    uint64_t f0 = store_faults(s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(store_check_alive(s, err), LD_EIO);
    CHECK_ERR(err, "was deleted");
    err[0] = 0;
    assert_int_equal(store_job_insert(s, &j, &id, NULL, err), LD_EIO);
    CHECK_ERR(err, "writes are refused");
    assert_int_equal(store_begin(s, err), LD_EIO);
    assert_true(store_faults(s) > f0);
    /* reads of what is open still answer */
    cJSON *row = NULL;
    assert_int_equal(store_job_get(s, 1, &row, err), LD_OK);
    cJSON_Delete(row);
    cJSON_Delete(spec);
    store_close(s);
}

static void test_replaced_database_refuses_writes(void **state)
{
    char path[300], moved[300], err[LD_ERR_MAX] = "";
    snprintf(path, sizeof path, "%s/mv.db", tmpdir);
    snprintf(moved, sizeof moved, "%s/mv2.db", tmpdir);
    Store *s = open_ok(path);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(store_check_alive(s, err), LD_EIO);
    CHECK_ERR(err, "moved or replaced");
    store_close(s);
}

/* The Nth SQLite allocation (N = 1..200 after the store is open) fails (storage/faultvfs.c, in a
 * child: the allocator is process-wide) while three candidates with text columns are stored: the call fails, or every column is what was
 * given. Before, a text bind that could not copy its value left NULL behind: a NOT NULL error,
 * or a NULL stored silently in a nullable column (op, family, parents). */
static void test_alloc_failure_never_stores_null(void **state)
{
    char path[300];
    /* values longer than SQLite's lookaside slots, so their copies come from the allocator */
    static char expr[2100], op[1600], fam[1600];
    strcpy(expr, "ce");
    while (strlen(expr) < 2000) strcat(expr, " + ce");
    memset(op, 'o', sizeof op - 1);
    memset(fam, 'f', sizeof fam - 1);
    int bad = 0, failed_calls = 0, ok_calls = 0, n;
    for (n = 1; n <= 200; n++) {
        snprintf(path, sizeof path, "%s/alloc%d.db", tmpdir, n);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char spec[32], err[LD_ERR_MAX];
            if (!freopen("/dev/null", "w", stderr)) _exit(3); /* the hook's notes */
            snprintf(spec, sizeof spec, "0,alloc"); /* counting; armed below */
            setenv("LOSSD_FAULT", spec, 1);
            Store *s = NULL;
            int64_t job = 0;
            cJSON *spec_json = cJSON_CreateObject();
            StoreJobNew j = {.spec = spec_json, .name = "alloc"};
            cJSON *parents = cJSON_CreateArray();
            cJSON_AddItemToArray(parents, cJSON_CreateNumber(3));
            int rc = store_open(path, STORE_NOSYNC, &s, err);
            if (rc == LD_OK) rc = store_job_insert(s, &j, &job, NULL, err);
            if (rc == LD_OK) rc = store_fault_arm(n); /* the nth allocation from here fails */
            for (int c = 1; rc == LD_OK && c <= 3; c++)
                rc = store_candidate_put(s, job, c, expr, 42, 3, parents, op, NULL, fam, NULL, err);
            store_close(s);
            _exit(rc == LD_OK ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status)) fail_msg("N=%d: the child crashed (status %d)", n, status);
        failed_calls += WEXITSTATUS(status) != 0;
        ok_calls += WEXITSTATUS(status) == 0;
        /* whatever was committed is whole */
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_close(db);
            continue; /* the fault hit the creation of the file */
        }
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT expr, op, family, parents FROM candidates", -1, &st,
                               NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *e = (const char *)sqlite3_column_text(st, 0);
                const char *o = (const char *)sqlite3_column_text(st, 1);
                const char *fa = (const char *)sqlite3_column_text(st, 2);
                const char *par = (const char *)sqlite3_column_text(st, 3);
                if (!e || strcmp(e, expr) || !o || strcmp(o, op) || !fa || strcmp(fa, fam) ||
                    !par || strcmp(par, "[3]")) {
                    print_error("N=%d: stored %.10s %.10s %.10s %.10s\n", n, e ? e : "NULL",
                                o ? o : "NULL", fa ? fa : "NULL", par ? par : "NULL");
                    bad++;
                }
            }
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    assert_int_equal(bad, 0);
    if (failed_calls == 0 || ok_calls == 0) /* the faults hit, and the last N were past them */
        fail_msg("%d calls failed, %d succeeded", failed_calls, ok_calls);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_faults.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hard_link_refused),
        cmocka_unit_test(test_symlink_and_deleted_lock_file),
        cmocka_unit_test(test_deleted_database_refuses_writes),
        cmocka_unit_test(test_replaced_database_refuses_writes),
        cmocka_unit_test(test_alloc_failure_never_stores_null),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
