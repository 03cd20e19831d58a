/* test_pgqueue.c: storage/pgqueue against a throwaway PostgreSQL cluster (tests/pg_cluster.sh:
 * initdb + pg_ctl in a temporary directory, Unix socket only, an unprivileged user when run as
 * root): schema creation twice and from four connections at once, migrating a version 1 queue,
 * publish/lease/complete, four concurrent leasers never sharing an item, expired leases
 * re-leased, late duplicates ignored and mismatches recorded, cancel, malformed rows and results,
 * tasks by hash and their data by SHA-256, the workers listing; the "queue" executor on its own
 * (its own thread's outcomes equal eval_work, a CSV task by content, cancel stopping a running
 * evaluation, stop handing it back, undecodable and failed results, a late mismatch never
 * reaching the caller). Without PostgreSQL's server
 * binaries it says SKIPPED and counts one pass. Each test uses its own schema, so they do not
 * see each other's rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/work.h"
#include "../daemon/pgexec.h"
#include "../evaluator/eval.h"
#include "../daemon/pgworker.h"
#include "../storage/pgqueue.h"

static char cluster_dir[256];
static char conninfo[512];
static PGconn *raw; /* for what a test does behind the queue's back (a hostile or broken peer) */
static const char *script(void);

#define OK(call)                                                                                   \
    do {                                                                                           \
        char err_[LD_ERR_MAX] = "";                                                                \
        int rc_ = (call);                                                                          \
        if (rc_ != LD_OK)                                                                          \
            fail_msg("%s -> %d: %s", #call, rc_, err_);                                            \
    } while (0)
#define E err_

#define EQ_I(seen, want)                                                                           \
    do {                                                                                           \
        long long s_ = (long long)(seen), w_ = (long long)(want);                                  \
        if (s_ != w_)                                                                              \
            fail_msg("%s = %lld, want %lld", #seen, s_, w_);                                       \
    } while (0)

#define HAS(text, part)                                                                            \
    do {                                                                                           \
        const char *t_ = (text);                                                                   \
        if (!t_ || !strstr(t_, (part)))                                                            \
            fail_msg("%s = \"%s\", want it to contain \"%s\"", #text, t_ ? t_ : "(null)", (part)); \
    } while (0)

/* Runs SQL (printf-style) on the raw connection in schema, failing the test when it fails. */
__attribute__((format(printf, 2, 3))) static void sql(const char *schema, const char *fmt, ...)
{
    char q[2048], full[2200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "SET search_path = \"%s\"; %s", schema, q);
    PGresult *r = PQexec(raw, full);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("SQL %s: %s", q, PQerrorMessage(raw));
    PQclear(r);
}

/* One integer that a query returns (first row, first column). */
__attribute__((format(printf, 2, 3))) static long long sql_int(const char *schema, const char *fmt,
                                                               ...)
{
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    char path[128];
    snprintf(path, sizeof path, "SET search_path = \"%s\"", schema);
    PGresult *r = PQexec(raw, path);
    PQclear(r);
    r = PQexec(raw, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("SQL %s: %s", q, PQerrorMessage(raw));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static Pgq *open_q(const char *schema, int flags, double lease_s, int max_attempts)
{
    PgqOpts o = {
        .schema = schema, .flags = flags, .lease_s = lease_s, .max_attempts = max_attempts};
    Pgq *q = NULL;
    OK(pgq_open(conninfo, &o, &q, E));
    return q;
}

/* n items of job: seq i has item {"seq": i, "expr": "ce"} and one task hash. */
static void publish_n(Pgq *q, int64_t job, int from, int n, int *published)
{
    PgqWork *w = calloc((size_t)n, sizeof *w);
    char(*items)[64] = calloc((size_t)n, sizeof *items);
    assert_non_null(w);
    assert_non_null(items);
    for (int i = 0; i < n; i++) {
        snprintf(items[i], sizeof items[i], "{\"seq\": %d, \"expr\": \"ce\"}", from + i);
        w[i] = (PgqWork){job, from + i, "00112233445566778899aabbccddeeff", items[i]};
    }
    OK(pgq_publish(q, w, n, published, E));
    free(items);
    free(w);
}

/* Leases exactly one item (the test expects one to be there). */
static PgqItem *lease1(Pgq *q, int64_t worker)
{
    PgqItem *it = NULL;
    int n = 0;
    OK(pgq_lease(q, worker, 1, &it, &n, E));
    if (n != 1)
        fail_msg("lease: %d items, want 1", n);
    return it;
}

static int64_t register_worker(Pgq *q, const char *host)
{
    int64_t id = 0;
    OK(pgq_worker_register(q, host, (int)getpid(), 2, &id, E));
    assert_true(id > 0);
    return id;
}

/* A queue as most tests use it: the daemon's handle d (migrates), a worker's handle w, and two
 * registered workers a ("hostA") and b ("hostB"). */
typedef struct Fix {
    Pgq *d, *w;
    int64_t a, b;
} Fix;

static Fix fixture(const char *schema, int max_attempts)
{
    Fix f;
    f.d = open_q(schema, PGQ_MIGRATE, 0, max_attempts);
    f.w = open_q(schema, PGQ_WORKER, 0, max_attempts);
    f.a = register_worker(f.w, "hostA");
    f.b = register_worker(f.w, "hostB");
    return f;
}

static void fixture_close(Fix *f)
{
    pgq_close(f->w);
    pgq_close(f->d);
}

/* ---- schema ------------------------------------------------------------------------------ */

static void test_schema_twice(void **state)
{
    int v = -1;
    Pgq *q = open_q("s_twice", PGQ_MIGRATE, 0, 0);
    OK(pgq_schema_version(q, &v, E));
    EQ_I(v, PGQ_SCHEMA_VERSION);
    OK(pgq_migrate(q, &v, E)); /* again on the same connection: nothing to do */
    EQ_I(v, PGQ_SCHEMA_VERSION);
    pgq_close(q);
    q = open_q("s_twice", PGQ_MIGRATE, 0, 0); /* and from a new one */
    pgq_close(q);
    EQ_I(sql_int("s_twice", "SELECT count(*) FROM schema_version"), PGQ_SCHEMA_VERSION);
    EQ_I(sql_int("s_twice", "SELECT count(*) FROM pg_tables WHERE schemaname = 's_twice'"), 7);

    /* a worker (no PGQ_MIGRATE) on a schema nobody created, and on one from a newer build */
    PgqOpts o = {.schema = "s_absent"};
    char err[LD_ERR_MAX] = "";
    q = NULL;
    EQ_I(pgq_open(conninfo, &o, &q, err), LD_ENOTFOUND);
    HAS(err, "has no queue");
    assert_null(q);
    sql("s_twice", "INSERT INTO schema_version (version) VALUES (%d)", PGQ_SCHEMA_VERSION + 1);
    o.schema = "s_twice";
    EQ_I(pgq_open(conninfo, &o, &q, err), LD_ESTATE);
    HAS(err, "this build needs");
    o.flags = PGQ_MIGRATE;
    EQ_I(pgq_open(conninfo, &o, &q, err), LD_ESTATE);
    HAS(err, "newer than this build");

    o = (PgqOpts){.schema = "Bad-Name"};
    EQ_I(pgq_open(conninfo, &o, &q, err), LD_EINVAL);
    HAS(err, "schema name");
}

/* A queue made by the first release (version 1) is migrated in place: its rows stay. */
static void test_migrate_from_v1(void **state)
{
    Pgq *q = open_q("s_v1", PGQ_MIGRATE, 0, 0);
    int published = 0;
    publish_n(q, 1, 0, 3, &published);
    pgq_close(q);
    sql("s_v1", "DROP TABLE tasks; DELETE FROM schema_version WHERE version > 1");

    PgqOpts o = {.schema = "s_v1"};
    char err[LD_ERR_MAX] = "";
    EQ_I(pgq_open(conninfo, &o, &q, err), LD_ESTATE); /* a worker does not migrate */
    HAS(err, "at version 1");
    q = open_q("s_v1", PGQ_MIGRATE, 0, 0);
    int v = 0;
    OK(pgq_schema_version(q, &v, E));
    EQ_I(v, PGQ_SCHEMA_VERSION);
    EQ_I(sql_int("s_v1", "SELECT count(*) FROM work"), 3);
    OK(pgq_task_put(q, "0123456789abcdef", "{\"family\": \"classification\"}", E));
    pgq_close(q);
}

typedef struct Migrator {
    pthread_barrier_t *go;
    int rc, version;
    char err[LD_ERR_MAX];
} Migrator;

static void *migrate_thread(void *arg)
{
    Migrator *m = arg;
    PgqOpts o = {.schema = "s_concurrent", .flags = PGQ_MIGRATE};
    Pgq *q = NULL;
    pthread_barrier_wait(m->go);
    m->rc = pgq_open(conninfo, &o, &q, m->err);
    if (m->rc == LD_OK)
        m->rc = pgq_schema_version(q, &m->version, m->err);
    pgq_close(q);
    return NULL;
}

static void test_schema_concurrent(void **state)
{
    enum { N = 4 };
    pthread_barrier_t go;
    pthread_t t[N];
    Migrator m[N];
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].go = &go;
        assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < N; i++) {
        if (m[i].rc != LD_OK)
            fail_msg("migrator %d: %d: %s", i, m[i].rc, m[i].err);
        EQ_I(m[i].version, PGQ_SCHEMA_VERSION);
    }
    EQ_I(sql_int("s_concurrent", "SELECT count(*) FROM schema_version"), PGQ_SCHEMA_VERSION);
}

/* ---- the round trip ---------------------------------------------------------------------- */

static void test_publish_lease_complete(void **state)
{
    Fix f = fixture("s_trip", 0);
    Pgq *d = f.d, *w = f.w;
    int64_t wid = f.a;
    int published = 0, n = 0;
    publish_n(d, 3, 0, 5, &published);
    EQ_I(published, 5);

    PgqItem *it = NULL;
    OK(pgq_lease(w, wid, 2, &it, &n, E));
    EQ_I(n, 2);
    for (int i = 0; i < 2; i++) {
        EQ_I(it[i].job_id, 3);
        EQ_I(it[i].seq, i);
        EQ_I(it[i].attempts, 1);
        assert_string_equal(it[i].bad, "");
        assert_string_equal(it[i].task_hash, "00112233445566778899aabbccddeeff");
        char want[64];
        snprintf(want, sizeof want, "{\"seq\": %d, \"expr\": \"ce\"}", i);
        assert_string_equal(it[i].item, want);
    }
    assert_true(it[0].id < it[1].id);

    int64_t held[8];
    int nh = 0;
    OK(pgq_heartbeat(w, wid, held, 8, &nh, E));
    EQ_I(nh, 2);

    PgqCompletion c;
    OK(pgq_complete(w, wid, it[1].id, "{\"status\": \"ok\", \"val\": 0.5}", "v=0.5", &c, E));
    EQ_I(c.outcome, PGQ_DONE);
    OK(pgq_complete(w, wid, it[0].id, "{\"status\": \"ok\", \"val\": 0.25}", "v=0.25", &c, E));
    EQ_I(c.outcome, PGQ_DONE);

    PgqResult *r = NULL;
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 2);
    EQ_I(r[0].seq, 0);
    EQ_I(r[1].seq, 1);
    EQ_I(r[0].worker_id, wid);
    assert_string_equal(r[0].result, "{\"status\": \"ok\", \"val\": 0.25}");
    assert_null(r[0].error);
    int64_t ack[2] = {r[0].work_id, r[1].work_id};
    pgq_results_free(r, n);
    /* unacknowledged results are delivered again (the daemon acks after storing them) */
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 2);
    pgq_results_free(r, n);
    OK(pgq_results_ack(d, ack, 2, E));
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 0);
    pgq_results_free(r, n);

    /* republishing (a restarted daemon) adds nothing: 2 have results, 3 are queued; the two
     * results are delivered again (that daemon may have lost them after acknowledging) */
    publish_n(d, 3, 0, 5, &published);
    EQ_I(published, 0);
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 2);
    pgq_results_free(r, n);
    OK(pgq_results_ack(d, ack, 2, E));
    cJSON *counts = NULL;
    OK(pgq_counts(d, &counts, E));
    EQ_I(cJSON_GetObjectItem(counts, "pending")->valueint, 3);
    EQ_I(cJSON_GetObjectItem(counts, "leased")->valueint, 0);
    EQ_I(cJSON_GetObjectItem(counts, "results")->valueint, 2);
    EQ_I(cJSON_GetObjectItem(counts, "unacked")->valueint, 0);
    cJSON_Delete(counts);
    EQ_I(sql_int("s_trip", "SELECT evals_done FROM workers WHERE id = %lld", (long long)wid), 2);

    pgq_items_free(it, 2);
    fixture_close(&f);
}

/* ---- concurrency ------------------------------------------------------------------------- */

enum { LEASERS = 4, CONC_ITEMS = 200 };

typedef struct Leaser {
    int64_t got[CONC_ITEMS];
    int ngot, rc, done;
    char err[LD_ERR_MAX];
    pthread_barrier_t *go;
} Leaser;

static void *leaser_thread(void *arg)
{
    Leaser *l = arg;
    PgqOpts o = {.schema = "s_conc", .flags = PGQ_WORKER};
    Pgq *q = NULL;
    int64_t wid = 0;
    l->rc = pgq_open(conninfo, &o, &q, l->err);
    if (l->rc == LD_OK)
        l->rc = pgq_worker_register(q, "leaser", (int)getpid(), 1, &wid, l->err);
    pthread_barrier_wait(l->go);
    for (int k = 1; l->rc == LD_OK; k++) {
        PgqItem *it = NULL;
        int n = 0;
        l->rc = pgq_lease(q, wid, 1 + k % 3, &it, &n, l->err);
        if (l->rc != LD_OK || n == 0) {
            pgq_items_free(it, n);
            break;
        }
        for (int i = 0; i < n && l->rc == LD_OK; i++) {
            PgqCompletion c;
            if (l->ngot < CONC_ITEMS)
                l->got[l->ngot++] = it[i].seq;
            l->rc = pgq_complete(q, wid, it[i].id, "{\"status\": \"ok\"}", NULL, &c, l->err);
            l->done += l->rc == LD_OK && c.outcome == PGQ_DONE;
        }
        pgq_items_free(it, n);
    }
    pgq_close(q);
    return NULL;
}

static void test_concurrent_leasers(void **state)
{
    Pgq *d = open_q("s_conc", PGQ_MIGRATE, 0, 0);
    int published = 0;
    publish_n(d, 1, 0, CONC_ITEMS, &published);
    EQ_I(published, CONC_ITEMS);

    static Leaser l[LEASERS];
    pthread_t t[LEASERS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, LEASERS);
    for (int i = 0; i < LEASERS; i++) {
        memset(&l[i], 0, sizeof l[i]);
        l[i].go = &go;
        assert_int_equal(pthread_create(&t[i], NULL, leaser_thread, &l[i]), 0);
    }
    for (int i = 0; i < LEASERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);

    int seen[CONC_ITEMS] = {0}, total = 0, done = 0;
    for (int i = 0; i < LEASERS; i++) {
        if (l[i].rc != LD_OK)
            fail_msg("leaser %d: %d: %s", i, l[i].rc, l[i].err);
        print_message("leaser %d took %d items\n", i, l[i].ngot);
        for (int k = 0; k < l[i].ngot; k++) {
            int64_t s = l[i].got[k];
            assert_true(s >= 0 && s < CONC_ITEMS);
            if (seen[s]++)
                fail_msg("item seq %lld was leased twice", (long long)s);
            total++;
        }
        done += l[i].done;
    }
    EQ_I(total, CONC_ITEMS);
    EQ_I(done, CONC_ITEMS);
    EQ_I(sql_int("s_conc", "SELECT count(*) FROM results"), CONC_ITEMS);
    EQ_I(sql_int("s_conc", "SELECT count(*) FROM mismatches"), 0);
    EQ_I(sql_int("s_conc", "SELECT sum(evals_done) FROM workers"), CONC_ITEMS);
    pgq_close(d);
}

/* ---- faults ------------------------------------------------------------------------------ */

/* A worker that died holding item id: its lease runs out (moved into the past). */
static void lease_runs_out(const char *schema, int64_t id)
{
    sql(schema,
        "UPDATE work SET leased_until = clock_timestamp() - interval '1 second' "
        "WHERE id = %lld",
        (long long)id);
}

static void test_expired_lease(void **state)
{
    Fix f = fixture("s_expire", 2);
    Pgq *d = f.d, *w = f.w;
    int64_t a = f.a, b = f.b;
    int published = 0;
    publish_n(d, 5, 0, 1, &published);

    PgqItem *ia = lease1(w, a);
    PgqItem *none = NULL;
    int n = 0;
    OK(pgq_lease(w, b, 4, &none, &n, E)); /* held: nothing for b */
    EQ_I(n, 0);
    lease_runs_out("s_expire", ia->id);
    PgqItem *ib = lease1(w, b); /* no sweep needed: the lease query takes expired items */
    EQ_I(ib->id, ia->id);
    EQ_I(ib->attempts, 2);
    int64_t held[4];
    int nh = -1;
    OK(pgq_heartbeat(w, a, held, 4, &nh, E)); /* a learns that the item is no longer its */
    EQ_I(nh, 0);
    OK(pgq_heartbeat(w, b, held, 4, &nh, E));
    EQ_I(nh, 1);
    EQ_I(held[0], ib->id);

    /* the slow first worker finishes first: its result counts; the re-leased run agrees */
    PgqCompletion c;
    OK(pgq_complete(w, a, ia->id, "{\"val\": 0.75, \"wall_ms\": 51}", "val=0.75", &c, E));
    EQ_I(c.outcome, PGQ_DONE);
    OK(pgq_complete(w, b, ib->id, "{\"val\": 0.75, \"wall_ms\": 48}", "val=0.75", &c, E));
    EQ_I(c.outcome, PGQ_DUPLICATE);
    HAS(c.detail, "agrees");
    EQ_I(sql_int("s_expire", "SELECT count(*) FROM results"), 1);
    pgq_items_free(ia, 1);
    pgq_items_free(ib, 1);

    /* the sweep: an expired lease goes back to pending; after max_attempts (2) it is abandoned */
    publish_n(d, 5, 1, 1, &published);
    ia = lease1(w, a);
    lease_runs_out("s_expire", ia->id);
    int rq = -1, ab = -1;
    OK(pgq_expire(d, &rq, &ab, E));
    EQ_I(rq, 1);
    EQ_I(ab, 0);
    EQ_I(sql_int("s_expire", "SELECT count(*) FROM work WHERE worker_id IS NULL AND "
                             "leased_until IS NULL"),
         1);
    ib = lease1(w, b);
    EQ_I(ib->attempts, 2);
    lease_runs_out("s_expire", ib->id);
    OK(pgq_lease(w, a, 4, &none, &n, E)); /* out of attempts: not leased again */
    EQ_I(n, 0);
    OK(pgq_expire(d, &rq, &ab, E));
    EQ_I(rq, 0);
    EQ_I(ab, 1);
    PgqResult *r = NULL;
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 2);
    EQ_I(r[1].seq, 1);
    assert_null(r[1].result);
    HAS(r[1].error, "abandoned");
    EQ_I(r[1].worker_id, 0);
    pgq_results_free(r, n);
    /* the abandoned item's worker comes back late: ignored */
    OK(pgq_complete(w, b, ib->id, "{\"val\": 0.5}", NULL, &c, E));
    EQ_I(c.outcome, PGQ_GONE);
    pgq_items_free(ia, 1);
    pgq_items_free(ib, 1);

    /* in real time: a 0.2 s lease without a heartbeat is free again after 0.3 s */
    pgq_close(w);
    w = f.w = open_q("s_expire", PGQ_WORKER, 0.2, 2);
    publish_n(d, 5, 2, 1, &published);
    ia = lease1(w, a);
    OK(pgq_lease(w, b, 1, &none, &n, E));
    EQ_I(n, 0);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ib = lease1(w, b);
    EQ_I(ib->id, ia->id);
    pgq_items_free(ia, 1);
    pgq_items_free(ib, 1);
    fixture_close(&f);
}

static void test_late_mismatch(void **state)
{
    Fix f = fixture("s_mismatch", 0);
    Pgq *d = f.d, *w = f.w;
    int64_t a = f.a, b = f.b;
    int published = 0;
    publish_n(d, 9, 4, 1, &published);
    PgqItem *ia = lease1(w, a);
    lease_runs_out("s_mismatch", ia->id);
    PgqItem *ib = lease1(w, b);
    PgqCompletion c;
    OK(pgq_complete(w, b, ib->id, "{\"val\": 0.91}", "val=0.91", &c, E));
    EQ_I(c.outcome, PGQ_DONE);
    OK(pgq_complete(w, a, ia->id, "{\"val\": 0.93}", "val=0.93", &c, E));
    EQ_I(c.outcome, PGQ_MISMATCH);
    HAS(c.detail, "MISMATCH: job 9 seq 4");
    HAS(c.detail, "val=0.93");
    cJSON *m = NULL;
    OK(pgq_mismatches(d, &m, E));
    EQ_I(cJSON_GetArraySize(m), 1);
    cJSON *m0 = cJSON_GetArrayItem(m, 0);
    EQ_I(cJSON_GetObjectItem(m0, "job_id")->valueint, 9);
    EQ_I(cJSON_GetObjectItem(m0, "seq")->valueint, 4);
    EQ_I(cJSON_GetObjectItem(m0, "first_worker")->valueint, b);
    EQ_I(cJSON_GetObjectItem(m0, "late_worker")->valueint, a);
    assert_string_equal(cJSON_GetObjectItem(m0, "first")->valuestring, "val=0.91");
    assert_string_equal(cJSON_GetObjectItem(m0, "late")->valuestring, "val=0.93");
    cJSON_Delete(m);
    /* the stored result is the first one */
    PgqResult *r = NULL;
    int n = 0;
    OK(pgq_results(d, 10, &r, &n, E));
    EQ_I(n, 1);
    assert_string_equal(r[0].result, "{\"val\": 0.91}");
    pgq_results_free(r, n);
    /* without fingerprints the result texts are compared */
    publish_n(d, 9, 5, 1, &published);
    pgq_items_free(ia, 1);
    pgq_items_free(ib, 1);
    ia = lease1(w, a);
    OK(pgq_complete(w, a, ia->id, "{\"val\": 1}", NULL, &c, E));
    OK(pgq_complete(w, b, ia->id, "{\"val\": 1}", NULL, &c, E));
    EQ_I(c.outcome, PGQ_DUPLICATE);
    OK(pgq_complete(w, b, ia->id, "{\"val\": 2}", NULL, &c, E));
    EQ_I(c.outcome, PGQ_MISMATCH);
    pgq_items_free(ia, 1);
    fixture_close(&f);
}

static void test_cancel(void **state)
{
    Fix f = fixture("s_cancel", 0);
    Pgq *d = f.d, *w = f.w;
    int64_t a = f.a;
    int published = 0, n = 0, cancelled = -1;
    publish_n(d, 7, 0, 5, &published);
    publish_n(d, 8, 0, 2, &published);
    PgqItem *held = lease1(w, a);
    EQ_I(held->job_id, 7);
    OK(pgq_cancel_job(d, 7, &cancelled, E));
    EQ_I(cancelled, 5);
    PgqItem *it = NULL;
    OK(pgq_lease(w, a, 10, &it, &n, E));
    EQ_I(n, 2);
    for (int i = 0; i < n; i++)
        EQ_I(it[i].job_id, 8);
    int64_t ids[4];
    int nh = 0;
    OK(pgq_heartbeat(w, a, ids, 4, &nh, E)); /* the cancelled item is no longer held */
    EQ_I(nh, 2);
    assert_true(ids[0] != held->id && ids[1] != held->id);
    PgqCompletion c;
    OK(pgq_complete(w, a, held->id, "{\"val\": 1}", NULL, &c, E));
    EQ_I(c.outcome, PGQ_GONE);
    EQ_I(sql_int("s_cancel", "SELECT count(*) FROM results WHERE job_id = 7"), 0);
    /* a resumed job may publish the same evaluations again */
    publish_n(d, 7, 0, 5, &published);
    EQ_I(published, 5);
    OK(pgq_complete(w, a, it[0].id, "{\"val\": 1}", NULL, &c, E));
    OK(pgq_purge_job(d, 8, E));
    EQ_I(sql_int("s_cancel", "SELECT count(*) FROM results WHERE job_id = 8"), 0);
    EQ_I(sql_int("s_cancel", "SELECT count(*) FROM work WHERE job_id = 8"), 0);
    pgq_items_free(it, n);
    pgq_items_free(held, 1);
    fixture_close(&f);
}

static void test_malformed(void **state)
{
    Fix f = fixture("s_bad", 0);
    Pgq *d = f.d, *w = f.w;
    int64_t a = f.a;
    char err[LD_ERR_MAX];
    const char *h = "00112233445566778899aabbccddeeff";
    /* what the daemon publishes is checked before anything is written */
    struct {
        PgqWork w;
        const char *why;
    } refused[] = {
        {{1, -1, h, "{}"}, "negative"},
        {{1, 0, "0011", "{}"}, "task hash"},
        {{1, 0, "../../etc/passwd0123456789", "{}"}, "task hash"},
        {{1, 0, h, "[1, 2]"}, "not an object"},
        {{1, 0, h, "{\"expr\": "}, "not JSON"},
        {{1, 0, h, "{} {}"}, "not JSON"},
        {{1, 0, h, NULL}, "no item"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        PgqWork two[2] = {{1, 100, h, "{}"}, refused[i].w};
        EQ_I(pgq_publish(d, two, 2, NULL, err), LD_EINVAL);
        HAS(err, refused[i].why);
    }
    EQ_I(sql_int("s_bad", "SELECT count(*) FROM work"), 0);

    /* rows written behind the queue's back (a broken or hostile peer): each fails alone */
    int published = 0;
    publish_n(d, 2, 0, 1, &published);
    sql("s_bad",
        "INSERT INTO work (job_id, seq, task_hash, item) VALUES "
        "(2, 1, '%s', 'rm -rf /'), (2, 2, '%s', '[1]'), (2, 3, '../../etc/passwd', '{}'),"
        "(2, 4, '%s', '\"str\"'), (-2, 5, '%s', '{}'), (2, 6, '%s', repeat('x', %d)),"
        "(2, 7, '%s', '{\"ok\": true}')",
        h, h, h, h, h, PGQ_ITEM_MAX + 1, h);
    PgqItem *it = NULL;
    int n = 0;
    OK(pgq_lease(w, a, 20, &it, &n, E));
    EQ_I(n, 8);
    const char *want[] = {
        "", "not JSON", "not an object", "task hash", "not an object", "job -2", "bytes (at most",
        ""};
    for (int i = 0; i < n; i++) {
        if (!*want[i]) {
            assert_string_equal(it[i].bad, "");
            assert_non_null(it[i].item);
            PgqCompletion c;
            OK(pgq_complete(w, a, it[i].id, "{\"status\": \"ok\"}", NULL, &c, E));
            continue;
        }
        HAS(it[i].bad, want[i]);
        HAS(it[i].bad, "malformed work item");
        assert_null(it[i].item);
        PgqCompletion c;
        OK(pgq_fail(w, a, it[i].id, it[i].bad, &c, E));
        EQ_I(c.outcome, PGQ_DONE);
    }
    pgq_items_free(it, n);
    /* a worker's result is checked too: on completion, and again when the daemon reads it */
    PgqCompletion c;
    EQ_I(pgq_complete(w, a, 1, "not json", NULL, &c, err), LD_EINVAL);
    HAS(err, "not JSON");
    sql("s_bad", "UPDATE results SET result = '{\"unterminated' WHERE seq = 7");

    PgqResult *r = NULL;
    OK(pgq_results(d, 20, &r, &n, E));
    EQ_I(n, 8);
    assert_non_null(r[0].result);
    for (int i = 1; i < 7; i++) {
        assert_null(r[i].result);
        HAS(r[i].error, want[i]);
    }
    assert_null(r[7].result);
    HAS(r[7].error, "malformed result from worker");
    pgq_results_free(r, n);
    fixture_close(&f);
}

/* ---- task data --------------------------------------------------------------------------- */

static void test_data(void **state)
{
    static const struct {
        const char *in, *hex;
    } vec[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        pgq_sha256_hex(vec[i].in, strlen(vec[i].in), hex);
        assert_string_equal(hex, vec[i].hex);
    }

    Fix f = fixture("s_data", 0);
    Pgq *d = f.d, *w = f.w;
    /* every length around the block and padding boundaries, binary bytes included; the server
     * checks each hash on insert (task_data_hash) with its own sha256() */
    size_t big = 200001;
    unsigned char *bytes = malloc(big);
    assert_non_null(bytes);
    for (size_t i = 0; i < big; i++)
        bytes[i] = (unsigned char)(i * 7 + (i >> 8));
    size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4096, big};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        OK(pgq_data_put(d, bytes, lens[k], hex, E));
        void *got = NULL;
        size_t n = 0;
        OK(pgq_data_get(w, hex, &got, &n, E));
        EQ_I(n, lens[k]);
        assert_true(n == 0 || memcmp(got, bytes, n) == 0);
        free(got);
    }
    const char *csv = "x,y\n1,2\n3,4\n";
    OK(pgq_data_put(d, csv, strlen(csv), hex, E));
    char again[65];
    OK(pgq_data_put(d, csv, strlen(csv), again, E)); /* stored once */
    assert_string_equal(hex, again);
    EQ_I(sql_int("s_data", "SELECT count(*) FROM task_data"), 13);

    /* a task's spec by the hash work items carry, its data referenced by SHA-256 */
    char spec[256], *spec_got = NULL;
    snprintf(spec, sizeof spec, "{\"family\": \"regression\", \"data\": {\"csv_sha256\": \"%s\"}}",
             hex);
    const char *th = "a1b2c3d4e5f60718";
    OK(pgq_task_put(d, th, spec, E));
    OK(pgq_task_put(d, th, spec, E)); /* again: nothing to do */
    OK(pgq_task_get(w, th, &spec_got, E));
    assert_string_equal(spec_got, spec);
    free(spec_got);
    char err[LD_ERR_MAX];
    EQ_I(pgq_task_put(d, th, "{\"family\": \"physics\"}", err), LD_ESTATE);
    HAS(err, "different spec");
    EQ_I(pgq_task_put(d, th, "[1]", err), LD_EINVAL);
    EQ_I(pgq_task_put(d, "../x", spec, err), LD_EINVAL);
    EQ_I(pgq_task_get(w, "ffffffffffffffff", &spec_got, err), LD_ENOTFOUND);
    EQ_I(pgq_task_get(w, "not-a-hash", &spec_got, err), LD_EINVAL);
    sql("s_data", "INSERT INTO tasks (hash, spec) VALUES ('eeeeeeeeeeeeeeee', 'import os')");
    EQ_I(pgq_task_get(w, "eeeeeeeeeeeeeeee", &spec_got, err), LD_EINVAL);
    HAS(err, "not JSON");
    assert_null(spec_got);

    void *got = NULL;
    size_t n = 0;
    EQ_I(pgq_data_get(w, "ab", &got, &n, err), LD_EINVAL);
    EQ_I(pgq_data_get(w, "../../../../etc/passwd", &got, &n, err), LD_EINVAL);
    EQ_I(pgq_data_get(w, "0000000000000000000000000000000000000000000000000000000000000000", &got,
                      &n, err),
         LD_ENOTFOUND);
    /* bytes changed behind the queue's back are refused by the reader */
    sql("s_data", "ALTER TABLE task_data DROP CONSTRAINT task_data_hash");
    sql("s_data", "UPDATE task_data SET bytes = 'x,y\n1,9\n' WHERE hash = '%s'", hex);
    EQ_I(pgq_data_get(w, hex, &got, &n, err), LD_EINVAL);
    HAS(err, "hash to");
    assert_null(got);
    free(bytes);
    fixture_close(&f);
}

/* ---- workers, connections ---------------------------------------------------------------- */

static void test_workers(void **state)
{
    Fix f = fixture("s_workers", 0);
    Pgq *d = f.d, *w = f.w;
    int64_t a = f.a, b = f.b;
    int published = 0;
    publish_n(d, 4, 0, 2, &published);
    PgqItem *it = lease1(w, a);
    PgqCompletion c;
    PgqItem *it2 = lease1(w, a);
    OK(pgq_complete(w, a, it2->id, "{}", NULL, &c, E));
    OK(pgq_worker_stop(w, b, E));

    cJSON *ws = NULL;
    OK(pgq_workers(d, &ws, E));
    EQ_I(cJSON_GetArraySize(ws), 2);
    cJSON *wb = cJSON_GetArrayItem(ws, 0), *wa = cJSON_GetArrayItem(ws, 1); /* newest first */
    EQ_I(cJSON_GetObjectItem(wa, "id")->valueint, a);
    assert_string_equal(cJSON_GetObjectItem(wa, "host")->valuestring, "hostA");
    EQ_I(cJSON_GetObjectItem(wa, "pid")->valueint, getpid());
    EQ_I(cJSON_GetObjectItem(wa, "threads")->valueint, 2);
    EQ_I(cJSON_GetObjectItem(wa, "evals_done")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(wa, "state")->valuestring, "alive");
    cJSON *leases = cJSON_GetObjectItem(wa, "leases");
    EQ_I(cJSON_GetArraySize(leases), 1);
    EQ_I(cJSON_GetObjectItem(cJSON_GetArrayItem(leases, 0), "seq")->valueint, it->seq);
    double expires = cJSON_GetObjectItem(cJSON_GetArrayItem(leases, 0), "expires_in")->valuedouble;
    if (!(expires > 0 && expires <= 30))
        fail_msg("expires_in = %g, want in (0, 30]", expires);
    assert_string_equal(cJSON_GetObjectItem(wb, "state")->valuestring, "stopped");
    EQ_I(cJSON_GetArraySize(cJSON_GetObjectItem(wb, "leases")), 0);
    cJSON_Delete(ws);

    /* no heartbeat for a lease period: lost; a clean stop hands the lease back at once */
    sql("s_workers",
        "UPDATE workers SET last_seen = clock_timestamp() - interval '1 hour' "
        "WHERE id = %lld",
        (long long)a);
    OK(pgq_workers(d, &ws, E));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(ws, 1), "state")->valuestring,
                        "lost");
    cJSON_Delete(ws);
    OK(pgq_worker_stop(w, a, E));
    PgqItem *again = lease1(w, register_worker(w, "host-c"));
    EQ_I(again->id, it->id);
    EQ_I(again->attempts, 1); /* a lease handed back is not counted as an attempt */
    pgq_items_free(again, 1);
    pgq_items_free(it, 1);
    pgq_items_free(it2, 1);
    fixture_close(&f);
}

static void test_conninfo(void **state)
{
    EQ_I(pgq_conninfo_has_password("host=/tmp dbname=x password=secret"), 1);
    EQ_I(pgq_conninfo_has_password("postgresql://u:secret@db.example/lossd"), 1);
    EQ_I(pgq_conninfo_has_password("postgresql://u@db.example/lossd?sslmode=verify-full"), 0);
    EQ_I(pgq_conninfo_has_password("service=lossd"), 0);
    EQ_I(pgq_conninfo_has_password("host='unterminated"), -1);

    char err[LD_ERR_MAX] = "";
    Pgq *q = NULL;
    char bad[600];
    snprintf(bad, sizeof bad, "host=%s/nonexistent dbname=postgres user=lossd connect_timeout=2",
             cluster_dir);
    EQ_I(pgq_open(bad, NULL, &q, err), LD_EIO);
    HAS(err, "pgqueue: connect");
    assert_null(q);
    assert_null(strstr(err, "\n"));
}

/* ---- the worker loop (daemon/pgworker) ----------------------------------------------------- */

/* A stand-in evaluation: a result and a fingerprint from the item's seq, after sleep_ms; seq
 * fail_seq fails with a reason, bad_seq returns a result that is not an object, and race_seq
 * has its result written first by someone else with another fingerprint (a mismatch). */
typedef struct FakeEval {
    int sleep_ms, fail_seq, bad_seq, race_seq;
    const char *schema;
} FakeEval;

static int fake_eval(void *ctx, const PgqItem *it, const volatile int *cancel, char **result,
                     char **fp, char *reason)
{
    const FakeEval *f = ctx;
    struct timespec ts = {0, (long)f->sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (it->seq == f->fail_seq) {
        snprintf(reason, LD_ERR_MAX, "non-finite loss at step 7");
        return LD_EFAILED;
    }
    char buf[128];
    if (it->seq == f->race_seq) {
        PgqOpts o = {.schema = f->schema, .flags = PGQ_WORKER};
        Pgq *q = NULL;
        PgqCompletion c;
        char err[LD_ERR_MAX];
        if (pgq_open(conninfo, &o, &q, err) != LD_OK ||
            pgq_complete(q, 0, it->id, "{\"val\": 0}", "val=0", &c, err) != LD_OK)
            fprintf(stderr, "race: %s\n", err);
        pgq_close(q);
    }
    snprintf(buf, sizeof buf, it->seq == f->bad_seq ? "[%lld]" : "{\"seq\": %lld}",
             (long long)it->seq);
    *result = strdup(buf);
    snprintf(buf, sizeof buf, "seq=%lld", (long long)it->seq);
    *fp = strdup(buf);
    return LD_OK;
}

/* Results of a job by seq: result text or "error: reason" into out[seq] (owned). */
static int job_results(Pgq *d, char **out, int max)
{
    PgqResult *r = NULL;
    int n = 0, total = 0;
    OK(pgq_results(d, 1000, &r, &n, E));
    for (int i = 0; i < n; i++) {
        if (r[i].seq < 0 || r[i].seq >= max)
            fail_msg("result for seq %lld", (long long)r[i].seq);
        char buf[LD_ERR_MAX + 16];
        snprintf(buf, sizeof buf, "%s%s",
                 r[i].result ? "" : "error: ", r[i].result ? r[i].result : r[i].error);
        out[r[i].seq] = strdup(buf);
        total++;
    }
    pgq_results_free(r, n);
    return total;
}

static void test_worker_loop(void **state)
{
    Fix f = fixture("s_wloop", 0);
    int published = 0;
    publish_n(f.d, 1, 0, 30, &published);
    sql("s_wloop", "INSERT INTO work (job_id, seq, task_hash, item) VALUES "
                   "(1, 30, '00112233445566778899aabbccddeeff', 'rm -rf /')");
    FakeEval fe = {.sleep_ms = 2, .fail_seq = 5, .bad_seq = 6, .race_seq = 7, .schema = "s_wloop"};
    FILE *log = tmpfile();
    assert_non_null(log);
    PgwOpts o = {.host = "loop-host", .threads = 2, .idle_exit_s = 0.5, .log = log};
    PgqOpts qo = {.schema = "s_wloop"};
    PgwStats st;
    OK(pgw_run(conninfo, &qo, &o, fake_eval, &fe, &st, E));
    print_message("worker: done %ld failed %ld dup %ld mismatch %ld gone %ld\n", st.done, st.failed,
                  st.duplicates, st.mismatches, st.gone);
    EQ_I(st.done, 30); /* 29 evaluated (seq 7's result came from elsewhere) + the malformed row */
    EQ_I(st.failed, 3);
    EQ_I(st.mismatches, 1);

    char *res[31] = {0};
    EQ_I(job_results(f.d, res, 31), 31);
    assert_string_equal(res[0], "{\"seq\": 0}");
    assert_string_equal(res[29], "{\"seq\": 29}");
    HAS(res[5], "error: non-finite loss at step 7");
    HAS(res[6], "the evaluation's result was refused");
    assert_string_equal(res[7], "{\"val\": 0}"); /* the first result stays */
    HAS(res[30], "malformed work item");
    for (int i = 0; i < 31; i++)
        free(res[i]);

    char text[4096] = "";
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = 0;
    fclose(log);
    HAS(text, "lossd worker: MISMATCH: job 1 seq 7");

    cJSON *ws = NULL;
    OK(pgq_workers(f.d, &ws, E));
    cJSON *w0 = cJSON_GetArrayItem(ws, 0); /* the loop's worker, newest */
    assert_string_equal(cJSON_GetObjectItem(w0, "host")->valuestring, "loop-host");
    assert_string_equal(cJSON_GetObjectItem(w0, "state")->valuestring, "stopped");
    EQ_I(cJSON_GetObjectItem(w0, "evals_done")->valueint, 30);
    EQ_I(cJSON_GetObjectItem(w0, "threads")->valueint, 2);
    cJSON_Delete(ws);
    EQ_I(sql_int("s_wloop", "SELECT count(*) FROM work"), 0);
    fixture_close(&f);
}

/* A worker process killed with SIGKILL mid-item: its leases run out (1 s) and another worker
 * finishes the job; every evaluation has exactly one result. */
static void test_worker_killed(void **state)
{
    Pgq *d = open_q("s_wkill", PGQ_MIGRATE, 1.0, 0);
    int published = 0;
    publish_n(d, 2, 0, 8, &published);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        FakeEval slow = {.sleep_ms = 300, .fail_seq = -1, .bad_seq = -1, .race_seq = -1};
        PgwOpts o = {.host = "doomed", .threads = 1, .idle_exit_s = 10};
        PgqOpts qo = {.schema = "s_wkill", .lease_s = 1.0};
        pgw_run(conninfo, &qo, &o, fake_eval, &slow, NULL, NULL);
        _exit(0);
    }
    int before = 0;
    for (int i = 0; i < 600 && before < 2; i++) { /* up to a minute on a loaded machine */
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        before = (int)sql_int("s_wkill", "SELECT count(*) FROM results");
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    before = (int)sql_int("s_wkill", "SELECT count(*) FROM results");
    assert_true(before >= 2 && before < 8);
    long held =
        (long)sql_int("s_wkill", "SELECT count(*) FROM work WHERE leased_until IS NOT NULL");
    if (held < 1 || held > 2) /* the running item, and maybe the one leased ahead */
        fail_msg("the killed worker held %ld leases, want 1 or 2", held);

    FakeEval quick = {.sleep_ms = 1, .fail_seq = -1, .bad_seq = -1, .race_seq = -1};
    PgwOpts o = {.host = "heir", .threads = 2, .idle_exit_s = 2.5};
    PgqOpts qo = {.schema = "s_wkill", .lease_s = 1.0};
    PgwStats st;
    OK(pgw_run(conninfo, &qo, &o, fake_eval, &quick, &st, E));
    EQ_I(st.done, 8 - before);
    char *res[8] = {0};
    EQ_I(job_results(d, res, 8), 8);
    for (int i = 0; i < 8; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"seq\": %d}", i);
        assert_string_equal(res[i], want);
        free(res[i]);
    }
    EQ_I(sql_int("s_wkill", "SELECT count(*) FROM work"), 0);
    EQ_I(sql_int("s_wkill", "SELECT count(*) FROM workers WHERE host = 'doomed' AND "
                            "stopped_at IS NULL"),
         1);
    pgq_close(d);
}

typedef struct StopRun {
    volatile sig_atomic_t stop;
    PgwStats st;
    int rc;
} StopRun;

static void *stop_run_main(void *arg)
{
    StopRun *r = arg;
    FakeEval slow = {.sleep_ms = 200, .fail_seq = -1, .bad_seq = -1, .race_seq = -1};
    PgwOpts o = {.threads = 1, .stop = &r->stop};
    PgqOpts qo = {.schema = "s_wstop"};
    r->rc = pgw_run(conninfo, &qo, &o, fake_eval, &slow, &r->st, NULL);
    return NULL;
}

/* A stop (SIGTERM's flag): what runs is finished and written, what was leased ahead is handed
 * back at once (not after the lease runs out). */
static void test_worker_stop(void **state)
{
    Pgq *d = open_q("s_wstop", PGQ_MIGRATE, 0, 0);
    int published = 0;
    publish_n(d, 3, 0, 6, &published);
    StopRun r = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_run_main, &r), 0);
    for (int i = 0; i < 600 && sql_int("s_wstop", "SELECT count(*) FROM results") < 1; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    r.stop = 1;
    pthread_join(t, NULL);
    EQ_I(r.rc, LD_OK);
    long got = (long)sql_int("s_wstop", "SELECT count(*) FROM results");
    assert_true(got >= 1 && got < 6);
    EQ_I(r.st.done, got);
    EQ_I(sql_int("s_wstop", "SELECT count(*) FROM work WHERE leased_until IS NOT NULL"), 0);
    EQ_I(sql_int("s_wstop", "SELECT count(*) FROM work"), 6 - got);
    pgq_close(d);
}

typedef struct BgRun {
    const char *schema;
    PgwStats st;
    int rc;
    FILE *log;
} BgRun;

static void *bg_run_main(void *arg)
{
    BgRun *r = arg;
    FakeEval slow = {.sleep_ms = 150, .fail_seq = -1, .bad_seq = -1, .race_seq = -1};
    PgwOpts o = {.threads = 1, .idle_exit_s = 3, .log = r->log};
    PgqOpts qo = {.schema = r->schema};
    r->rc = pgw_run(conninfo, &qo, &o, fake_eval, &slow, &r->st, NULL);
    return NULL;
}

/* The server restarts under a running worker: it reconnects, writes the results it was holding
 * and finishes the job. */
static void test_worker_reconnect(void **state)
{
    Pgq *d = open_q("s_wrestart", PGQ_MIGRATE, 0, 0);
    int published = 0;
    publish_n(d, 4, 0, 6, &published);
    pgq_close(d);
    BgRun r = {.schema = "s_wrestart", .log = tmpfile()};
    assert_non_null(r.log);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_run_main, &r), 0);
    for (int i = 0; i < 600 && sql_int("s_wrestart", "SELECT count(*) FROM results") < 1; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char cmd[800];
    snprintf(cmd, sizeof cmd, "%s restart %s", script(), cluster_dir);
    assert_int_equal(system(cmd), 0);
    PQreset(raw);
    assert_int_equal(PQstatus(raw), CONNECTION_OK);
    pthread_join(t, NULL);
    fclose(r.log);
    EQ_I(r.rc, LD_OK);
    if (r.st.reconnects < 1)
        fail_msg("reconnects = %ld, want at least 1", r.st.reconnects);
    EQ_I(sql_int("s_wrestart", "SELECT count(*) FROM results"), 6);
    EQ_I(sql_int("s_wrestart", "SELECT count(*) FROM work"), 0);
}

/* ---- the daemon's queue thread (daemon/pgexec) ------------------------------------------- */

typedef struct Collected {
    pthread_mutex_t mu;
    char *by_seq[64];
    int n, again;
} Collected;

static void collect_result(void *ud, const PgqResult *r)
{
    Collected *c = ud;
    pthread_mutex_lock(&c->mu);
    if (r->seq >= 0 && r->seq < 64) {
        c->again += c->by_seq[r->seq] != NULL;
        free(c->by_seq[r->seq]);
        c->by_seq[r->seq] = strdup(r->result ? r->result : r->error);
        c->n++;
    }
    pthread_mutex_unlock(&c->mu);
}

static int collected(Collected *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits (up to a minute on a loaded machine) until c has n results. */
static void wait_collected(Collected *c, int n)
{
    for (int i = 0; i < 1200 && collected(c) < n; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    EQ_I(collected(c), n);
}

/* The executor counts a result once its pass has handed it over and acknowledged it, after the
 * callback: wait for the count too (a loaded machine may be between the two). */
static void wait_results(Pgx *x, PgxStats *xs, long n)
{
    for (int i = 0; i < 1200; i++) {
        pgx_stats(x, xs);
        if (xs->results >= n)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_executor(void **state)
{
    Collected c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    PgqOpts qo = {.schema = "s_exec"};
    PgxOpts xo = {.poll_s = 0.02};
    Pgx *x = NULL;
    OK(pgx_start(conninfo, &qo, &xo, collect_result, &c, &x, E));
    const char *h = "00112233445566778899aabbccddeeff";
    char item[64], err[LD_ERR_MAX];
    for (int i = 0; i < 20; i++) {
        snprintf(item, sizeof item, "{\"seq\": %d}", i);
        OK(pgx_submit(x, 5, i, h, item, E));
    }
    EQ_I(pgx_submit(x, 5, 20, "nothex", "{}", err), LD_EINVAL);
    HAS(err, "task hash");

    /* a worker process's loop evaluates them; the executor hands the results over */
    FakeEval fe = {.sleep_ms = 1, .fail_seq = 3, .bad_seq = -1, .race_seq = -1};
    PgwOpts o = {.threads = 2, .idle_exit_s = 0.5};
    PgwStats st;
    OK(pgw_run(conninfo, &qo, &o, fake_eval, &fe, &st, E));
    EQ_I(st.done, 20);
    wait_collected(&c, 20);
    EQ_I(c.again, 0);
    assert_string_equal(c.by_seq[0], "{\"seq\": 0}");
    assert_string_equal(c.by_seq[3], "non-finite loss at step 7");
    assert_string_equal(c.by_seq[19], "{\"seq\": 19}");

    /* cancel: what was not published is dropped, what was is deleted */
    for (int i = 0; i < 10; i++) {
        snprintf(item, sizeof item, "{\"seq\": %d}", i);
        OK(pgx_submit(x, 6, i, h, item, E));
    }
    pgx_cancel_job(x, 6);
    PgxStats xs;
    pgx_close(x); /* publishes nothing of job 6, carries out the cancel */
    EQ_I(sql_int("s_exec", "SELECT count(*) FROM work WHERE job_id = 6"), 0);

    /* a daemon that died after acknowledging results it never stored: it publishes the items it
     * lacks again and gets the stored results back, without a second evaluation */
    Collected c2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    OK(pgx_start(conninfo, &qo, &xo, collect_result, &c2, &x, E));
    for (int i = 0; i < 20; i++) {
        snprintf(item, sizeof item, "{\"seq\": %d}", i);
        OK(pgx_submit(x, 5, i, h, item, E));
    }
    wait_collected(&c2, 20);
    wait_results(x, &xs, 20);
    EQ_I(xs.submitted, 20);
    EQ_I(xs.published, 0); /* nothing queued again: the results were there */
    EQ_I(xs.results, 20);
    assert_string_equal(c2.by_seq[7], "{\"seq\": 7}");
    pgx_close(x);
    EQ_I(sql_int("s_exec", "SELECT count(*) FROM work"), 0);
    for (int i = 0; i < 64; i++) {
        free(c.by_seq[i]);
        free(c2.by_seq[i]);
    }
}

/* ---- lossd worker ----------------------------------------------------------------------------- */

/* Runs bin/lossd (of the suite: $LOSSD_BIN) with args, output to log; returns its exit status. */
static int run_lossd(const char *args, const char *log)
{
    const char *bin = getenv("LOSSD_BIN") ? getenv("LOSSD_BIN") : "bin";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/lossd %s >%s 2>&1", bin, args, log);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Work items as the daemon will publish them, run by `lossd worker` processes: every outcome
 * equals the same item evaluated here (evaluations are deterministic), a loss that does not
 * parse and a task nobody stored fail alone, and a password in --queue is refused. */
static void test_worker_command(void **state)
{
    Task *t = NULL;
    OK(task_load_arg("builtin:digits", &t, E));
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)task_hash(t));
    cJSON *spec = task_spec(t);
    char *spec_text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    Pgq *d = open_q("s_cmd", PGQ_MIGRATE, 0, 0);
    OK(pgq_task_put(d, hex, spec_text, E));
    free(spec_text);

    static const char *const exprs[] = {"ce", "0.7*ce + 0.3*focal(2)", "ce + (", "mse",
                                        "smooth(0.1)", "ce"};
    enum { N = 6 };
    static WorkItem items[N];
    char *texts[N];
    PgqWork pw[N];
    for (int i = 0; i < N; i++) {
        items[i] = (WorkItem){.job_id = 9, .seq = i, .cand = i, .task_hash = task_hash(t),
                              .seed = 100 + (uint64_t)i, .steps = 40};
        snprintf(items[i].expr, sizeof items[i].expr, "%s", exprs[i]);
        if (i == N - 1)
            items[i].task_hash ^= 1; /* a task the daemon never stored */
        cJSON *j = work_item_json(&items[i]);
        texts[i] = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        static char th[N][17];
        snprintf(th[i], sizeof th[i], "%016llx", (unsigned long long)items[i].task_hash);
        pw[i] = (PgqWork){9, i, th[i], texts[i]};
    }
    OK(pgq_publish(d, pw, N, NULL, E));
    for (int i = 0; i < N; i++)
        free(texts[i]);

    char args[1024], log[300];
    snprintf(log, sizeof log, "%s/worker.log", cluster_dir);
    snprintf(args, sizeof args, "worker --queue 'host=%s dbname=postgres user=lossd password=x'",
             cluster_dir);
    EQ_I(run_lossd(args, log), 2);
    snprintf(args, sizeof args,
             "worker --queue '%s' --schema s_cmd --threads 2 --idle-exit 0.5", conninfo);
    EQ_I(run_lossd(args, log), 0);

    PgqResult *r = NULL;
    int n = 0;
    OK(pgq_results(d, 20, &r, &n, E));
    EQ_I(n, N);
    for (int i = 0; i < n; i++) {
        int s = (int)r[i].seq;
        if (s == N - 1) {
            assert_null(r[i].result);
            HAS(r[i].error, "not stored in the queue");
            continue;
        }
        assert_non_null(r[i].result);
        cJSON *j = cJSON_Parse(r[i].result);
        WorkOutcome got, want;
        char err[LD_ERR_MAX];
        if (work_outcome_from_json(j, &got, err) != LD_OK)
            fail_msg("seq %d: %s: %s", s, err, r[i].result);
        cJSON_Delete(j);
        eval_work(t, &items[s], &want);
        EQ_I(got.status, want.status);
        EQ_I(got.res.steps, want.res.steps);
        if (want.status == WORK_OK) {
            if (got.res.val != want.res.val || got.res.test != want.res.test)
                fail_msg("seq %d (%s): the worker's val %.17g test %.17g, here %.17g %.17g", s,
                         exprs[s], got.res.val, got.res.test, want.res.val, want.res.test);
        } else {
            print_message("seq %d (%s): %s: %s\n", s, exprs[s], work_status_name(got.status),
                          got.res.error);
            assert_string_equal(got.res.error, want.res.error);
        }
    }
    pgq_results_free(r, n);

    /* lossd workers: the listing a future lossctl workers will show */
    char out[300];
    snprintf(out, sizeof out, "%s/workers.json", cluster_dir);
    snprintf(args, sizeof args, "workers --queue '%s' --schema s_cmd --json", conninfo);
    EQ_I(run_lossd(args, out), 0);
    char *text = ld_read_file(out, NULL, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (!j)
        fail_msg("lossd workers --json printed: %s", text ? text : "(nothing)");
    cJSON *w0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "workers"), 0);
    EQ_I(cJSON_GetObjectItem(w0, "evals_done")->valueint, N);
    EQ_I(cJSON_GetObjectItem(w0, "threads")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(w0, "state")->valuestring, "stopped");
    EQ_I(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "queue"), "unacked")->valueint, N);
    cJSON_Delete(j);
    free(text);
    snprintf(args, sizeof args, "workers --queue '%s' --schema s_cmd", conninfo);
    EQ_I(run_lossd(args, out), 0);
    text = ld_read_file(out, NULL, NULL);
    HAS(text, "stopped");
    HAS(text, "queue: 0 pending, 0 leased, 6 results");
    free(text);
    pgq_close(d);
    task_free(t);
}

/* ---- the "queue" executor on its own (executor.h, no daemon) -------------------------------- */

typedef struct Got {
    int n;
    ExecItem *items[32];
} Got;

static void got_done(void *ud, ExecItem *it)
{
    Got *g = ud;
    if (g->n < 32)
        g->items[g->n++] = it;
    else
        exec_item_free(it);
}

/* Sweeps (no loop) until want items came back, up to 2 min. */
static void sweep_until(Executor *x, Got *g, int want)
{
    for (int i = 0; i < 1200 && g->n < want; i++) {
        exec_sweep(x, 0);
        struct timespec ts = {0, 100 * 1000000L};
        if (g->n < want)
            nanosleep(&ts, NULL);
    }
    EQ_I(g->n, want);
}

static void got_clear(Got *g)
{
    for (int i = 0; i < g->n; i++)
        exec_item_free(g->items[i]);
    g->n = 0;
}

static ExecItem *new_item(const Task *t, int64_t job, int64_t seq, const char *expr, int steps)
{
    ExecItem *it = calloc(1, sizeof *it);
    assert_non_null(it);
    it->work = (WorkItem){.job_id = job, .seq = seq, .cand = seq, .task_hash = task_hash(t),
                          .seed = 100 + (uint64_t)seq, .steps = steps};
    snprintf(it->work.expr, sizeof it->work.expr, "%s", expr);
    it->task = t;
    it->idx = (int)seq;
    return it;
}

/* Waits (up to 1 min) until a worker holds one of job's items in schema; fails otherwise. */
static void wait_leased(const char *schema, int64_t job)
{
    for (int i = 0; i < 1200; i++) {
        if (sql_int(schema, "SELECT count(*) FROM work WHERE job_id = %lld AND worker_id IS NOT NULL",
                    (long long)job))
            return;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("no worker leased an item of job %lld", (long long)job);
}

/* Each outcome that came back equals eval_work of its item here, bit for bit. */
static void outcomes_equal_local(Got *g)
{
    for (int i = 0; i < g->n; i++) {
        const ExecItem *it = g->items[i];
        WorkOutcome want;
        eval_work(it->task, &it->work, &want);
        EQ_I(it->out.status, want.status);
        EQ_I(it->out.res.steps, want.res.steps);
        if (want.status == WORK_OK &&
            (it->out.res.val != want.res.val || it->out.res.test != want.res.test))
            fail_msg("seq %lld (%s): through the queue val %.17g test %.17g, here %.17g %.17g",
                     (long long)it->work.seq, it->work.expr, it->out.res.val, it->out.res.test,
                     want.res.val, want.res.test);
        if (want.status != WORK_OK)
            assert_string_equal(it->out.res.error, want.res.error);
    }
}

/* The executor's own thread (local_threads 1) evaluates a builtin task's and a CSV task's items
 * (the CSV by content: stored with its SHA-256) as eval_work does here; lists itself as local;
 * cancel_job takes a job's items back and stops the one running (the thread is free for the
 * next item: it could not be otherwise within the test's time); stop and close hand a running
 * item back to the queue. */
static void test_exec_queue_local(void **state)
{
    Task *t = NULL, *csv = NULL;
    OK(task_load_arg("builtin:digits", &t, E));
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/xq-data", cluster_dir);
    snprintf(path, sizeof path, "%s/mywine.csv", dir);
    char cmd[900];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp data/wine.csv %s", dir, path);
    EQ_I(system(cmd), 0);
    cJSON *cspec = cJSON_CreateObject();
    cJSON_AddStringToObject(cspec, "data", path);
    OK(task_load(cspec, NULL, &csv, E));
    cJSON_Delete(cspec);

    Got g = {0};
    ExecConfig cfg = {.loop = NULL, .workers = 1, .done = got_done, .ud = &g, .queue = conninfo,
                      .queue_schema = "s_xq", .local_threads = 1, .queue_lease = 2};
    Executor *x = NULL;
    OK(exec_queue.open(&cfg, &x, E));
    static const char *const exprs[] = {"ce", "0.7*ce + 0.3*focal(2)", "ce + (", "smooth(0.1)"};
    for (int i = 0; i < 4; i++)
        exec_submit(x, new_item(i < 3 ? t : csv, 1, i, exprs[i], 40));
    EQ_I(exec_pending(x), 4);
    sweep_until(x, &g, 4);
    outcomes_equal_local(&g);
    got_clear(&g);
    EQ_I(exec_pending(x), 0);
    char hex[65];
    size_t n = 0;
    char *bytes = ld_read_file(path, &n, NULL);
    assert_non_null(bytes);
    pgq_sha256_hex(bytes, n, hex);
    free(bytes);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM task_data WHERE hash = '%s'", hex), 1);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM tasks WHERE spec LIKE '%%\"data_sha256\"%%'"), 1);

    /* the listing: this process, local, one thread, its evaluations (a snapshot: each sweep) */
    int found = 0;
    for (int i = 0; i < 100 && !found; i++) {
        cJSON *ws = exec_workers_json(x);
        const cJSON *w;
        cJSON_ArrayForEach(w, ws)
        {
            found |= cJSON_IsTrue(cJSON_GetObjectItem(w, "local")) &&
                     cJSON_GetObjectItem(w, "threads")->valueint == 1 &&
                     cJSON_GetObjectItem(w, "evals_done")->valueint == 4;
        }
        cJSON_Delete(ws);
        struct timespec ts = {0, 50 * 1000000L};
        if (!found)
            nanosleep(&ts, NULL);
    }
    assert_true(found);
    EQ_I(exec_workers(x), 1);

    /* cancel: job 2's evaluations would run for hours; one runs, two wait */
    for (int i = 0; i < 3; i++)
        exec_submit(x, new_item(t, 2, i, "ce", 100000000));
    wait_leased("s_xq", 2);
    ExecItem *back = exec_cancel_job(x, 2);
    int nback = 0;
    for (ExecItem *it = back; it; it = it->next)
        nback++;
    exec_items_free(back);
    EQ_I(nback, 3);
    EQ_I(exec_pending(x), 0);
    exec_submit(x, new_item(t, 3, 0, "ce", 40)); /* the one thread must be free for it */
    sweep_until(x, &g, 1);
    outcomes_equal_local(&g);
    got_clear(&g);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM work WHERE job_id = 2"), 0);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM results WHERE job_id = 2"), 0);

    /* stop while job 4's first item runs: both come back to the caller; close hands the running
     * one back to the queue (its lease ended at once, not after it expires) */
    for (int i = 0; i < 2; i++)
        exec_submit(x, new_item(t, 4, i, "ce", 100000000));
    wait_leased("s_xq", 4);
    back = exec_stop(x);
    nback = 0;
    for (ExecItem *it = back; it; it = it->next)
        nback++;
    exec_items_free(back);
    EQ_I(nback, 2);
    exec_close(x);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM work WHERE job_id = 4 AND worker_id IS NULL"), 2);
    EQ_I(sql_int("s_xq", "SELECT count(*) FROM results WHERE job_id = 4"), 0);
    task_free(t);
    task_free(csv);
}

/* What the executor makes of results it did not expect: a result that does not decode and a
 * row the queue failed come back as failed outcomes with the reason; a late result that
 * disagrees is refused by the queue (a mismatch, recorded) and never reaches the caller. No
 * thread of its own here: the test plays the remote worker. */
static void test_exec_queue_results(void **state)
{
    Task *t = NULL;
    OK(task_load_arg("builtin:digits", &t, E));
    Got g = {0};
    ExecConfig cfg = {.loop = NULL, .workers = 1, .done = got_done, .ud = &g, .queue = conninfo,
                      .queue_schema = "s_xr", .local_threads = 0};
    Executor *x = NULL;
    OK(exec_queue.open(&cfg, &x, E));
    for (int i = 0; i < 3; i++)
        exec_submit(x, new_item(t, 1, i, "ce", 40));
    Pgq *w = open_q("s_xr", PGQ_WORKER, 0, 0);
    int64_t a = register_worker(w, "hostA"), b = register_worker(w, "hostB");
    PgqItem *items = NULL;
    int n = 0;
    for (int i = 0; i < 200 && n < 3; i++) { /* published by the executor's thread */
        pgq_items_free(items, n);
        items = NULL;
        n = 0;
        if (sql_int("s_xr", "SELECT count(*) FROM work") == 3)
            OK(pgq_lease(w, a, 3, &items, &n, E));
        struct timespec ts = {0, 50 * 1000000L};
        if (n < 3)
            nanosleep(&ts, NULL);
    }
    EQ_I(n, 3);
    PgqCompletion c;
    OK(pgq_complete(w, a, items[0].id, "{\"job_id\": 1}", NULL, &c, E)); /* not an outcome */
    EQ_I(c.outcome, PGQ_DONE);
    OK(pgq_fail(w, a, items[1].id, "task 0123: not stored in the queue", &c, E));
    WorkOutcome o;
    sweep_until(x, &g, 2);
    for (int i = 0; i < 2; i++) {
        const ExecItem *it = g.items[i];
        EQ_I(it->out.status, WORK_FAILED);
        if (it->work.seq == items[0].seq)
            HAS(it->out.res.error, "does not decode");
        else
            HAS(it->out.res.error, "not stored in the queue");
    }
    got_clear(&g);
    /* the third: a real result, then a late one from another worker that disagrees */
    ExecItem *ref = new_item(t, 1, items[2].seq, "ce", 40);
    eval_work(t, &ref->work, &o);
    cJSON *oj = work_outcome_json(&o);
    char *text = cJSON_PrintUnformatted(oj);
    cJSON_Delete(oj);
    OK(pgq_complete(w, a, items[2].id, text, "ok val=1", &c, E));
    EQ_I(c.outcome, PGQ_DONE);
    OK(pgq_complete(w, b, items[2].id, text, "ok val=2", &c, E));
    EQ_I(c.outcome, PGQ_MISMATCH);
    free(text);
    sweep_until(x, &g, 1);
    EQ_I(g.items[0]->out.status, WORK_OK);
    assert_true(g.items[0]->out.res.val == o.res.val);
    got_clear(&g);
    struct timespec ts = {0, 300 * 1000000L}; /* any second delivery would come by now */
    nanosleep(&ts, NULL);
    exec_sweep(x, 0);
    EQ_I(g.n, 0);
    EQ_I(sql_int("s_xr", "SELECT count(*) FROM mismatches"), 1);
    exec_item_free(ref);
    pgq_items_free(items, n);
    pgq_close(w);
    exec_items_free(exec_stop(x));
    exec_close(x);
    task_free(t);
}

/* ---- the cluster ------------------------------------------------------------------------- */

static const char *script(void)
{
    const char *s = getenv("LOSSD_PG_CLUSTER");
    return s ? s : "tests/pg_cluster.sh";
}

static int start_cluster(void **state)
{
    char cmd[800];
    snprintf(cluster_dir, sizeof cluster_dir, "%s/lossd-pgq.%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s start %s %d", script(), cluster_dir, (int)getpid());
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(conninfo, sizeof conninfo, p)) {
        if (p)
            pclose(p);
        fprintf(stderr, "could not start a PostgreSQL cluster: %s\n", cmd);
        return -1;
    }
    if (pclose(p) != 0)
        return -1;
    conninfo[strcspn(conninfo, "\n")] = 0;
    raw = PQconnectdb(conninfo);
    if (PQstatus(raw) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s\n", conninfo, PQerrorMessage(raw));
        return -1;
    }
    PQclear(PQexec(raw, "SET client_min_messages = warning"));
    return 0;
}

static int stop_cluster(void **state)
{
    char cmd[800];
    if (raw)
        PQfinish(raw);
    raw = NULL;
    snprintf(cmd, sizeof cmd, "%s stop %s", script(), cluster_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_skipped(void **state)
{
    print_message("SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl); install Debian's "
                  "postgresql package to run the queue's tests\n");
}

int main(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s bindir >/dev/null 2>&1", script());
    if (system(cmd) != 0) {
        printf("SKIPPED: test_pgqueue: PostgreSQL's server binaries were not found\n");
        const struct CMUnitTest skip[] = {cmocka_unit_test(test_skipped)};
        return cmocka_run_group_tests_name("pgqueue (skipped)", skip, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_twice),
        cmocka_unit_test(test_migrate_from_v1),
        cmocka_unit_test(test_schema_concurrent),
        cmocka_unit_test(test_publish_lease_complete),
        cmocka_unit_test(test_concurrent_leasers),
        cmocka_unit_test(test_expired_lease),
        cmocka_unit_test(test_late_mismatch),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_conninfo),
        cmocka_unit_test(test_worker_loop),
        cmocka_unit_test(test_worker_killed),
        cmocka_unit_test(test_worker_stop),
        cmocka_unit_test(test_worker_reconnect), cmocka_unit_test(test_executor),
        cmocka_unit_test(test_worker_command),
        cmocka_unit_test(test_exec_queue_local),
        cmocka_unit_test(test_exec_queue_results),
    };
    return cmocka_run_group_tests_name("pgqueue", tests, start_cluster, stop_cluster);
}
