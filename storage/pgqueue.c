/* pgqueue.c: the PostgreSQL work queue (pgqueue.h): connection and session, the versioned
 * schema and its migrations, publishing, leasing with FOR UPDATE SKIP LOCKED, heartbeats,
 * results with late-duplicate checks, lease expiry, task data by SHA-256, and the listings.
 * Every statement the queue runs is in PGQ_STMTS or the migrations below. */
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgqueue.h"

/* Forward migrations: migrations[i] brings a schema at version i to i + 1. Append only; never
 * edit one that has shipped. Each runs in the migrating transaction, under the advisory lock.
 *
 * work      the live queue: pending (leased_until NULL) and leased items. A completed item moves
 *           to results in the same statement, so this table holds only what is in flight and a
 *           lease scan stays short however long the job.
 * results   one row per finished evaluation (UNIQUE (job_id, seq)): the worker's JSON, or NULL
 *           and an error when the queue failed it. acked once the daemon stored it.
 * mismatches  late duplicates whose fingerprint differed from the stored result's.
 * workers   one row per worker process: host, pid, threads, evaluations done, liveness.
 * task_data bytes stored once under their SHA-256, checked by the server on insert.
 * tasks     (2) a task's normalised spec under the task hash work items carry; its CSV or .npy
 *           contents are referenced by SHA-256 into task_data. */
static const char *const migrations[] = {
    /* 1: the tables */
    "CREATE TABLE work ("
    "  id bigserial PRIMARY KEY,"
    "  job_id bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  task_hash text NOT NULL,"
    "  item text NOT NULL,"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  worker_id bigint,"
    "  leased_until timestamptz,"
    "  published_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  UNIQUE (job_id, seq));"
    "CREATE INDEX work_worker ON work (worker_id) WHERE worker_id IS NOT NULL;"
    "CREATE TABLE results ("
    "  work_id bigint PRIMARY KEY,"
    "  job_id bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  worker_id bigint,"
    "  result text,"
    "  fingerprint text,"
    "  error text,"
    "  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  acked boolean NOT NULL DEFAULT false,"
    "  UNIQUE (job_id, seq));"
    "CREATE INDEX results_unacked ON results (work_id) WHERE NOT acked;"
    "CREATE TABLE mismatches ("
    "  id bigserial PRIMARY KEY,"
    "  work_id bigint NOT NULL,"
    "  job_id bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  first_worker bigint,"
    "  late_worker bigint,"
    "  first text,"
    "  late text,"
    "  at timestamptz NOT NULL DEFAULT clock_timestamp());"
    "CREATE TABLE workers ("
    "  id bigserial PRIMARY KEY,"
    "  host text NOT NULL,"
    "  pid integer NOT NULL,"
    "  threads integer NOT NULL,"
    "  evals_done bigint NOT NULL DEFAULT 0,"
    "  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  last_seen timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  stopped_at timestamptz);"
    "CREATE TABLE task_data ("
    "  hash text PRIMARY KEY,"
    "  bytes bytea NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  CONSTRAINT task_data_hash CHECK (hash = encode(sha256(bytes), 'hex')));",
    /* 2: tasks by content hash, so a worker finds the spec a work item names */
    "CREATE TABLE tasks ("
    "  hash text PRIMARY KEY,"
    "  spec text NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT clock_timestamp());",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(NMIGRATIONS == PGQ_SCHEMA_VERSION, "PGQ_SCHEMA_VERSION must match migrations");

/* Advisory lock keys of the migration: "loss" and the schema name's hashtext. */
#define PGQ_LOCK_KEY 1819243379

/* The lease pattern. The inner SELECT picks the oldest items nobody holds (pending, or leased
 * but expired) and locks them; SKIP LOCKED makes it pass over rows another leaser's transaction
 * has locked instead of waiting, so concurrent leasers split the queue between them and never
 * get the same row. The UPDATE then stamps the lease in the same statement (one round trip, one
 * commit). Expired leases are taken here too, so a dead worker's items come back even when no
 * sweep runs; attempts bounds how often. */
#define PGQ_LEASE_SQL                                                                              \
    "WITH next AS (SELECT id FROM work"                                                            \
    "  WHERE (leased_until IS NULL OR leased_until < clock_timestamp()) AND attempts < $3"         \
    "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) "                                              \
    "UPDATE work w SET worker_id = $1, attempts = w.attempts + 1,"                                 \
    "  leased_until = clock_timestamp() + $4::float8 * interval '1 second' "                       \
    "FROM next WHERE w.id = next.id "                                                              \
    "RETURNING w.id, w.job_id, w.seq, w.task_hash, w.item, w.attempts"

/* A completion moves the row from work to results in one statement: concurrent completions of
 * the same item serialise on the row lock, and the loser finds the winner's result committed. */
#define PGQ_COMPLETE_SQL                                                                           \
    "WITH done AS (DELETE FROM work WHERE id = $1 RETURNING id, job_id, seq),"                     \
    " ins AS (INSERT INTO results (work_id, job_id, seq, worker_id, result, fingerprint, error)"   \
    "   SELECT id, job_id, seq, $2::bigint, $3::text, $4::text, $5::text FROM done"                \
    "   ON CONFLICT DO NOTHING"                                                                    \
    "   RETURNING work_id),"                                                                       \
    " seen AS (UPDATE workers SET evals_done = evals_done + 1, last_seen = clock_timestamp()"      \
    "   WHERE id = $2::bigint AND EXISTS (SELECT 1 FROM ins)) "                                    \
    "SELECT (SELECT count(*) FROM ins), d.job_id, d.seq FROM (SELECT 1) one "                      \
    "LEFT JOIN done d ON true"

#define PGQ_ABANDON_REASON                                                                         \
    "'abandoned: its lease ran out ' || attempts || ' times (the workers died, hung or lost "      \
    "the network)'"

/* Every prepared statement: name, number of parameters, SQL. Prepared on first use. */
#define PGQ_STMTS(X)                                                                               \
    X(VERSION_TABLE, 0, "SELECT to_regclass('schema_version') IS NOT NULL")                        \
    X(VERSION_GET, 0, "SELECT coalesce(max(version), 0) FROM schema_version")                      \
    X(PUBLISH, 4,                                                                                  \
      "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) "       \
      "  AS u(j, s, h, i)),"                                                                       \
      " rearm AS (UPDATE results r SET acked = false FROM u "                                      \
      "  WHERE r.job_id = u.j AND r.seq = u.s AND r.acked) "                                       \
      "INSERT INTO work (job_id, seq, task_hash, item) SELECT u.j, u.s, u.h, u.i FROM u "          \
      "WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = u.j AND r.seq = u.s) "           \
      "ON CONFLICT (job_id, seq) DO NOTHING")                                                      \
    X(CANCEL, 1, "DELETE FROM work WHERE job_id = $1")                                             \
    X(PURGE, 1,                                                                                    \
      "WITH a AS (DELETE FROM work WHERE job_id = $1), b AS (DELETE FROM results WHERE "           \
      "job_id = $1) DELETE FROM mismatches WHERE job_id = $1")                                     \
    X(REQUEUE, 1,                                                                                  \
      "UPDATE work SET worker_id = NULL, leased_until = NULL "                                     \
      "WHERE leased_until < clock_timestamp() AND attempts < $1")                                  \
    X(ABANDON, 1,                                                                                  \
      "WITH gone AS (DELETE FROM work WHERE leased_until < clock_timestamp() AND attempts >= $1 "  \
      "  RETURNING id, job_id, seq, attempts) "                                                    \
      "INSERT INTO results (work_id, job_id, seq, worker_id, result, fingerprint, error) "         \
      "SELECT id, job_id, seq, NULL, NULL, NULL, " PGQ_ABANDON_REASON " FROM gone "                \
      "ON CONFLICT DO NOTHING")                                                                    \
    X(PRUNE_WORKERS, 0,                                                                            \
      "DELETE FROM workers WHERE coalesce(stopped_at, last_seen) < "                               \
      "clock_timestamp() - interval '1 day'")                                                      \
    X(RESULTS, 1,                                                                                  \
      "SELECT work_id, job_id, seq, coalesce(worker_id, 0), result, error FROM results "           \
      "WHERE NOT acked ORDER BY work_id LIMIT $1")                                                 \
    X(ACK, 1, "UPDATE results SET acked = true WHERE work_id = ANY($1::bigint[])")                 \
    X(REGISTER, 3, "INSERT INTO workers (host, pid, threads) VALUES ($1, $2, $3) RETURNING id")    \
    X(STOP, 1,                                                                                     \
      "WITH s AS (UPDATE workers SET stopped_at = clock_timestamp(), "                             \
      "  last_seen = clock_timestamp() WHERE id = $1) "                                            \
      "UPDATE work SET worker_id = NULL, leased_until = NULL, "                                    \
      "  attempts = greatest(attempts - 1, 0) WHERE worker_id = $1 AND leased_until IS NOT NULL")  \
    X(LEASE, 4, PGQ_LEASE_SQL)                                                                     \
    X(HEARTBEAT, 2,                                                                                \
      "WITH alive AS (UPDATE workers SET last_seen = clock_timestamp() WHERE id = $1) "            \
      "UPDATE work SET leased_until = clock_timestamp() + $2::float8 * interval '1 second' "       \
      "WHERE worker_id = $1 AND leased_until IS NOT NULL RETURNING id")                            \
    X(COMPLETE, 5, PGQ_COMPLETE_SQL)                                                               \
    X(STORED, 3,                                                                                   \
      "SELECT worker_id, coalesce(fingerprint, result), error, job_id, seq FROM results "          \
      "WHERE work_id = $1 OR (job_id = $2 AND seq = $3) LIMIT 1")                                  \
    X(MISMATCH, 7,                                                                                 \
      "INSERT INTO mismatches (work_id, job_id, seq, first_worker, late_worker, first, late) "     \
      "SELECT $1::bigint, coalesce(r.job_id, $2::bigint), coalesce(r.seq, $3::bigint), "           \
      "$4::bigint, "                                                                               \
      "$5::bigint, $6::text, $7::text "                                                            \
      "FROM (SELECT 1) one LEFT JOIN results r ON r.work_id = $1::bigint")                         \
    X(DATA_HAS, 1, "SELECT 1 FROM task_data WHERE hash = $1")                                      \
    X(TASK_PUT, 2, "INSERT INTO tasks (hash, spec) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING") \
    X(TASK_GET, 1, "SELECT spec FROM tasks WHERE hash = $1")                                       \
    X(WORKERS, 1,                                                                                  \
      "SELECT w.id, w.host, w.pid, w.threads, w.evals_done, extract(epoch FROM w.started_at),"     \
      " extract(epoch FROM w.last_seen),"                                                          \
      " CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'"                                         \
      "  WHEN w.last_seen < clock_timestamp() - $1::float8 * interval '1 second' THEN 'lost'"      \
      "  ELSE 'alive' END,"                                                                        \
      " coalesce((SELECT json_agg(json_build_object('job_id', k.job_id, 'seq', k.seq,"             \
      "   'attempts', k.attempts, 'expires_in',"                                                   \
      "   round(extract(epoch FROM k.leased_until - clock_timestamp())::numeric, 3))"              \
      "   ORDER BY k.id) FROM work k WHERE k.worker_id = w.id AND k.leased_until IS NOT NULL),"    \
      "  '[]') FROM workers w ORDER BY w.id DESC LIMIT 1000")                                      \
    X(COUNTS, 0,                                                                                   \
      "SELECT (SELECT count(*) FROM work WHERE leased_until IS NULL),"                             \
      " (SELECT count(*) FROM work WHERE leased_until IS NOT NULL),"                               \
      " (SELECT count(*) FROM results), (SELECT count(*) FROM results WHERE NOT acked),"           \
      " (SELECT count(*) FROM mismatches)")                                                        \
    X(MISMATCHES, 0,                                                                               \
      "SELECT job_id, seq, work_id, coalesce(first_worker, 0), coalesce(late_worker, 0), "         \
      "first, late, extract(epoch FROM at) FROM mismatches ORDER BY id LIMIT 1000")

enum {
#define X(name, np, sql) ST_##name,
    PGQ_STMTS(X)
#undef X
        ST_COUNT
};

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} stmts[] = {
#define X(name, np, sql) {"pgq_" #name, np, sql},
    PGQ_STMTS(X)
#undef X
};

struct Pgq {
    PGconn *conn;
    char schema[64];
    int flags;
    double lease_s;
    int max_attempts;
    unsigned char prepared[ST_COUNT];
};

/* ---- helpers ---------------------------------------------------------------------------- */

/* The LD_* code for a failed command: by SQLSTATE class, else by the connection's state. */
static int code_of(const Pgq *q, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(q->conn) != CONNECTION_OK || !st)
        return LD_EIO;
    if (!strcmp(st, "3F000") || !strcmp(st, "42P01"))
        return LD_ENOTFOUND; /* no such schema or table */
    if (!strncmp(st, "28", 2) || !strcmp(st, "42501"))
        return LD_EPERM;
    if (!strncmp(st, "23", 2) || !strncmp(st, "22", 2))
        return LD_EINVAL;
    if (!strncmp(st, "40", 2) || !strcmp(st, "55P03") || !strcmp(st, "57014"))
        return LD_EBUSY; /* serialisation, deadlock, lock timeout, cancelled */
    return LD_EIO;
}

/* Writes "pgqueue: what: message" (the server's primary message, else libpq's) into err. */
static int pg_err(const Pgq *q, const PGresult *r, const char *what, char *err)
{
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(q->conn);
    int len = (int)strcspn(msg, "\n");
    return ld_err(err, code_of(q, r), "pgqueue: %s: %.*s", what, len, msg);
}

/* Runs statement id with text parameters (NULL entries are SQL NULL), preparing it on first
 * use. Returns LD_OK with an owned *out (PQclear) or a code with err. */
static int run(Pgq *q, int id, const char *const *params, PGresult **out, const char *what,
               char *err)
{
    *out = NULL;
    if (!q->prepared[id]) {
        PGresult *p = PQprepare(q->conn, stmts[id].name, stmts[id].sql, stmts[id].nparams, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            int rc = pg_err(q, p, what, err);
            PQclear(p);
            return rc;
        }
        PQclear(p);
        q->prepared[id] = 1;
    }
    PGresult *r = PQexecPrepared(q->conn, stmts[id].name, stmts[id].nparams, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        int rc = pg_err(q, r, what, err);
        PQclear(r);
        return rc;
    }
    *out = r;
    return LD_OK;
}

/* Runs id and discards the result; *affected (may be NULL) gets the rows it changed. */
static int run_cmd(Pgq *q, int id, const char *const *params, int *affected, const char *what,
                   char *err)
{
    PGresult *r;
    int rc = run(q, id, params, &r, what, err);
    if (rc == LD_OK && affected)
        *affected = atoi(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

/* Runs id with one integer parameter (a job or worker id); *affected as in run_cmd. */
static int run_id(Pgq *q, int id, int64_t v, int *affected, const char *what, char *err)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    const char *p[] = {num};
    if (affected)
        *affected = 0;
    return run_cmd(q, id, p, affected, what, err);
}

/* Runs a parameterless command outside the statement list (session set-up, migrations). */
static int exec_sql(Pgq *q, const char *sql, const char *what, char *err)
{
    PGresult *r = PQexec(q->conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? LD_OK : pg_err(q, r, what, err);
    PQclear(r);
    return rc;
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double col_f64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

static char *col_dup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static int valid_schema(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* 1 when s is 16 to 64 lowercase hex digits. */
static int valid_hash(const char *s, size_t n)
{
    if (n < 16 || n > PGQ_HASH_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Checks that text (n bytes) is one JSON object of at most PGQ_ITEM_MAX bytes. Writes the
 * reason into why (LD_ERR_MAX) and returns 0 when not. */
static int check_object(const char *text, size_t n, const char *what, char *why)
{
    if (n > PGQ_ITEM_MAX) {
        snprintf(why, LD_ERR_MAX, "%s is %zu bytes (at most %d)", what, n, PGQ_ITEM_MAX);
        return 0;
    }
    if (strlen(text) != n) {
        snprintf(why, LD_ERR_MAX, "%s contains a NUL byte", what);
        return 0;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);
    int ok = j && cJSON_IsObject(j);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        snprintf(why, LD_ERR_MAX, "%s is not JSON (byte %zu: \"%.20s\")", what, at,
                 at < n ? text + at : "");
    } else if (!ok) {
        snprintf(why, LD_ERR_MAX, "%s is JSON but not an object", what);
    }
    cJSON_Delete(j);
    return ok;
}

/* ---- opening ---------------------------------------------------------------------------- */

const char *pgq_conninfo_problem(const char *conninfo)
{
    int pw = pgq_conninfo_has_password(conninfo);
    if (pw < 0)
        return "not a libpq conninfo or postgresql:// URI";
    if (pw > 0)
        return "holds a password, which would show in process listings: put it in ~/.pgpass, "
               "$PGPASSFILE or a $PGSERVICE entry";
    return NULL;
}

int pgq_conninfo_has_password(const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &msg);
    if (!opts) {
        PQfreemem(msg);
        return -1;
    }
    int has = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val)
            has = 1;
    PQconninfoFree(opts);
    return has;
}

int pgq_schema_version(Pgq *q, int *version, char *err)
{
    PGresult *r;
    *version = 0;
    int rc = run(q, ST_VERSION_TABLE, NULL, &r, "schema version", err);
    if (rc != LD_OK)
        return rc;
    int present = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    if (!present)
        return LD_OK;
    rc = run(q, ST_VERSION_GET, NULL, &r, "schema version", err);
    if (rc == LD_OK)
        *version = (int)col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int pgq_migrate(Pgq *q, int *version, char *err)
{
    char sql[256];
    int rc, v = 0;
    PGresult *r = NULL;
    rc = exec_sql(q, "BEGIN", "migrate: begin", err);
    if (rc != LD_OK)
        return rc;
    /* One migrator per schema at a time (any number of processes may try); the lock is the
     * transaction's, so a migrator that dies releases it. */
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%d, hashtext('%s'))", PGQ_LOCK_KEY,
             q->schema);
    rc = exec_sql(q, sql, "migrate: advisory lock", err);
    if (rc != LD_OK)
        goto done;
    snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS \"%s\"", q->schema);
    rc = exec_sql(q, sql, "migrate: create schema", err);
    if (rc != LD_OK)
        goto done;
    rc = exec_sql(q,
                  "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
                  "migrate: schema_version", err);
    if (rc != LD_OK)
        goto done;
    r = PQexec(q->conn, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_err(q, r, "migrate: read version", err);
        goto done;
    }
    v = (int)col_i64(r, 0, 0);
    if (v > NMIGRATIONS) {
        rc = ld_err(err, LD_ESTATE,
                    "pgqueue: schema \"%s\" is at version %d, newer than this build's %d: "
                    "upgrade lossd",
                    q->schema, v, NMIGRATIONS);
        goto done;
    }
    for (; v < NMIGRATIONS; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrate to version %d", v + 1);
        rc = exec_sql(q, migrations[v], what, err);
        if (rc != LD_OK)
            goto done;
        snprintf(sql, sizeof sql, "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
        rc = exec_sql(q, sql, what, err);
        if (rc != LD_OK)
            goto done;
    }
    rc = exec_sql(q, "COMMIT", "migrate: commit", err);
done:
    PQclear(r);
    if (rc != LD_OK) {
        PQclear(PQexec(q->conn, "ROLLBACK"));
        return rc;
    }
    if (version)
        *version = v;
    return LD_OK;
}

int pgq_open(const char *conninfo, const PgqOpts *opts, Pgq **out, char *err)
{
    PgqOpts o = opts ? *opts : (PgqOpts){0};
    *out = NULL;
    if (!o.schema)
        o.schema = "lossd";
    if (!valid_schema(o.schema))
        return ld_err(err, LD_EINVAL,
                      "pgqueue: schema name \"%.64s\": expected [a-z_][a-z0-9_]*, at most 63 "
                      "characters",
                      o.schema);
    if (o.lease_s == 0)
        o.lease_s = 30;
    if (!(o.lease_s >= 0.001 && o.lease_s <= 86400))
        return ld_err(err, LD_EINVAL, "pgqueue: lease of %g s: expected 0.001 to 86400", o.lease_s);
    if (o.max_attempts == 0)
        o.max_attempts = 3;
    if (o.max_attempts < 1 || o.max_attempts > 1000)
        return ld_err(err, LD_EINVAL, "pgqueue: max_attempts %d: expected 1 to 1000",
                      o.max_attempts);

    Pgq *q = calloc(1, sizeof *q);
    if (!q)
        return ld_err(err, LD_ENOMEM, "pgqueue: out of memory");
    snprintf(q->schema, sizeof q->schema, "%s", o.schema);
    q->flags = o.flags;
    q->lease_s = o.lease_s;
    q->max_attempts = o.max_attempts;

    /* Defaults first, the caller's conninfo last: its keywords win (libpq keeps the last). */
    const char *keys[] = {"connect_timeout",  "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "fallback_application_name",
                          "client_encoding",  "dbname",           NULL};
    const char *vals[] = {"10", "20", "10", "4", "60000", "lossd", "UTF8", conninfo ? conninfo : "",
                          NULL};
    q->conn = PQconnectdbParams(keys, vals, 1);
    int rc;
    if (!q->conn) {
        rc = ld_err(err, LD_ENOMEM, "pgqueue: connect: out of memory");
        goto fail;
    }
    if (PQstatus(q->conn) != CONNECTION_OK) {
        const char *m = PQerrorMessage(q->conn);
        rc = ld_err(err, LD_EIO, "pgqueue: connect: %.*s", (int)strcspn(m, "\n"), m);
        goto fail;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT set_config('search_path', '\"%s\"', false)", q->schema);
    rc = exec_sql(q, sql, "session: search_path", err);
    if (rc == LD_OK)
        rc = exec_sql(q, "SET lock_timeout = '30s'", "session: lock_timeout", err);
    if (rc == LD_OK) /* no NOTICEs on stderr for IF NOT EXISTS */
        rc = exec_sql(q, "SET client_min_messages = warning", "session: messages", err);
    if (rc == LD_OK && (q->flags & PGQ_WORKER))
        rc = exec_sql(q, "SET synchronous_commit = off", "session: synchronous_commit", err);
    if (rc != LD_OK)
        goto fail;
    int v = 0;
    if (q->flags & PGQ_MIGRATE) {
        rc = pgq_migrate(q, &v, err);
    } else {
        rc = pgq_schema_version(q, &v, err);
        if (rc == LD_OK && v == 0)
            rc = ld_err(err, LD_ENOTFOUND,
                        "pgqueue: schema \"%s\" has no queue: start the daemon with this queue "
                        "first (it creates the tables)",
                        q->schema);
        else if (rc == LD_OK && v != NMIGRATIONS)
            rc = ld_err(err, LD_ESTATE,
                        "pgqueue: schema \"%s\" is at version %d, this build needs %d: run the "
                        "same lossd version as the daemon",
                        q->schema, v, NMIGRATIONS);
    }
    if (rc != LD_OK)
        goto fail;
    *out = q;
    return LD_OK;
fail:
    pgq_close(q);
    return rc;
}

double pgq_lease_seconds(const Pgq *q) { return q->lease_s; }

void pgq_close(Pgq *q)
{
    if (!q)
        return;
    if (q->conn)
        PQfinish(q->conn);
    free(q);
}

/* ---- the daemon's side ------------------------------------------------------------------ */

/* A growable byte buffer for array literals. */
typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Appends s as one quoted element of a PostgreSQL array literal. */
static void buf_elem(Buf *b, const char *s)
{
    buf_put(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
    for (const char *c = s; *c;) {
        size_t run_len = strcspn(c, "\"\\");
        buf_put(b, c, run_len);
        c += run_len;
        if (*c) {
            char esc[2] = {'\\', *c++};
            buf_put(b, esc, 2);
        }
    }
    buf_put(b, "\"", 1);
}

static void buf_i64(Buf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, b->len > 1 ? ",%lld" : "%lld", (long long)v);
    buf_put(b, num, (size_t)n);
}

int pgq_work_check(const PgqWork *w, char *err)
{
    char why[LD_ERR_MAX];
    if (w->job_id < 0 || w->seq < 0)
        return ld_err(err, LD_EINVAL, "job %lld seq %lld: negative", (long long)w->job_id,
                      (long long)w->seq);
    if (!w->task_hash || !valid_hash(w->task_hash, strlen(w->task_hash)))
        return ld_err(err, LD_EINVAL, "task hash \"%.70s\": expected 16-64 lowercase hex digits",
                      w->task_hash ? w->task_hash : "(null)");
    if (!w->item)
        return ld_err(err, LD_EINVAL, "no item");
    if (!check_object(w->item, strlen(w->item), "the item", why))
        return ld_err(err, LD_EINVAL, "%s", why);
    return LD_OK;
}

int pgq_publish(Pgq *q, const PgqWork *w, int n, int *published, char *err)
{
    Buf a[4] = {{0}};
    int rc = LD_OK, added = 0;
    if (published)
        *published = 0;
    if (n <= 0)
        return LD_OK;
    for (int k = 0; k < 4; k++)
        buf_put(&a[k], "{", 1);
    for (int i = 0; i < n; i++) {
        char why[LD_ERR_MAX];
        if (pgq_work_check(&w[i], why) != LD_OK) {
            rc = ld_err(err, LD_EINVAL, "pgqueue: publish: item %d: %s", i, why);
            goto done;
        }
        buf_i64(&a[0], w[i].job_id);
        buf_i64(&a[1], w[i].seq);
        buf_elem(&a[2], w[i].task_hash);
        buf_elem(&a[3], w[i].item);
    }
    for (int k = 0; k < 4; k++) {
        buf_put(&a[k], "}", 1);
        if (a[k].oom) {
            rc = ld_err(err, LD_ENOMEM, "pgqueue: publish: out of memory");
            goto done;
        }
    }
    const char *p[4] = {a[0].p, a[1].p, a[2].p, a[3].p};
    rc = run_cmd(q, ST_PUBLISH, p, &added, "publish", err);
    if (rc == LD_OK && published)
        *published = added;
done:
    for (int k = 0; k < 4; k++)
        free(a[k].p);
    return rc;
}

int pgq_cancel_job(Pgq *q, int64_t job_id, int *cancelled, char *err)
{
    return run_id(q, ST_CANCEL, job_id, cancelled, "cancel job", err);
}

int pgq_purge_job(Pgq *q, int64_t job_id, char *err)
{
    return run_id(q, ST_PURGE, job_id, NULL, "purge job", err);
}

int pgq_expire(Pgq *q, int *requeued, int *abandoned, char *err)
{
    char max[16];
    snprintf(max, sizeof max, "%d", q->max_attempts);
    const char *p[] = {max};
    int rq = 0, ab = 0;
    int rc = run_cmd(q, ST_REQUEUE, p, &rq, "expire: requeue", err);
    if (rc == LD_OK)
        rc = run_cmd(q, ST_ABANDON, p, &ab, "expire: abandon", err);
    if (rc == LD_OK)
        rc = run_cmd(q, ST_PRUNE_WORKERS, NULL, NULL, "expire: prune workers", err);
    if (requeued)
        *requeued = rq;
    if (abandoned)
        *abandoned = ab;
    return rc;
}

int pgq_results(Pgq *q, int max, PgqResult **out, int *n, char *err)
{
    char lim[16];
    PGresult *r;
    *out = NULL;
    *n = 0;
    if (max <= 0)
        return LD_OK;
    snprintf(lim, sizeof lim, "%d", max);
    const char *p[] = {lim};
    int rc = run(q, ST_RESULTS, p, &r, "results", err);
    if (rc != LD_OK)
        return rc;
    int rows = PQntuples(r);
    PgqResult *res = rows ? calloc((size_t)rows, sizeof *res) : NULL;
    if (rows && !res) {
        PQclear(r);
        return ld_err(err, LD_ENOMEM, "pgqueue: results: out of memory");
    }
    for (int i = 0; i < rows; i++) {
        PgqResult *x = &res[i];
        char why[LD_ERR_MAX];
        x->work_id = col_i64(r, i, 0);
        x->job_id = col_i64(r, i, 1);
        x->seq = col_i64(r, i, 2);
        x->worker_id = col_i64(r, i, 3);
        if (!PQgetisnull(r, i, 4) &&
            check_object(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4), "the result", why)) {
            x->result = col_dup(r, i, 4);
        } else if (!PQgetisnull(r, i, 4)) {
            char msg[LD_ERR_MAX + 64];
            snprintf(msg, sizeof msg, "malformed result from worker %lld: %s",
                     (long long)x->worker_id, why);
            x->error = strdup(msg);
        } else {
            x->error = PQgetisnull(r, i, 5) ? strdup("failed without a reason")
                                            : strndup(PQgetvalue(r, i, 5), LD_ERR_MAX - 1);
        }
        if (!x->result && !x->error) {
            pgq_results_free(res, i + 1);
            PQclear(r);
            return ld_err(err, LD_ENOMEM, "pgqueue: results: out of memory");
        }
    }
    PQclear(r);
    *out = res;
    *n = rows;
    return LD_OK;
}

int pgq_results_ack(Pgq *q, const int64_t *work_ids, int n, char *err)
{
    Buf a = {0};
    if (n <= 0)
        return LD_OK;
    buf_put(&a, "{", 1);
    for (int i = 0; i < n; i++)
        buf_i64(&a, work_ids[i]);
    buf_put(&a, "}", 1);
    if (a.oom) {
        free(a.p);
        return ld_err(err, LD_ENOMEM, "pgqueue: ack: out of memory");
    }
    const char *p[] = {a.p};
    int rc = run_cmd(q, ST_ACK, p, NULL, "ack results", err);
    free(a.p);
    return rc;
}

void pgq_results_free(PgqResult *r, int n)
{
    if (!r)
        return;
    for (int i = 0; i < n; i++) {
        free(r[i].result);
        free(r[i].error);
    }
    free(r);
}

/* ---- a worker's side -------------------------------------------------------------------- */

int pgq_worker_register(Pgq *q, const char *host, int pid, int threads, int64_t *worker_id,
                        char *err)
{
    char spid[16], sthr[16];
    PGresult *r;
    snprintf(spid, sizeof spid, "%d", pid);
    snprintf(sthr, sizeof sthr, "%d", threads);
    const char *p[] = {host && *host ? host : "?", spid, sthr};
    int rc = run(q, ST_REGISTER, p, &r, "register worker", err);
    if (rc == LD_OK)
        *worker_id = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int pgq_worker_stop(Pgq *q, int64_t worker_id, char *err)
{
    return run_id(q, ST_STOP, worker_id, NULL, "stop worker", err);
}

/* Fills x from row i of a lease, checking everything a hostile or broken peer could have put
 * in the row; a bad row gets x->bad and no item. */
static void lease_row(const PGresult *r, int i, PgqItem *x)
{
    x->id = col_i64(r, i, 0);
    x->job_id = col_i64(r, i, 1);
    x->seq = col_i64(r, i, 2);
    x->attempts = (int)col_i64(r, i, 5);
    const char *h = PQgetvalue(r, i, 3);
    size_t hn = (size_t)PQgetlength(r, i, 3);
    if (x->job_id < 0 || x->seq < 0) {
        snprintf(x->bad, sizeof x->bad, "malformed work item %lld: job %lld seq %lld",
                 (long long)x->id, (long long)x->job_id, (long long)x->seq);
        return;
    }
    if (!valid_hash(h, hn)) {
        snprintf(x->bad, sizeof x->bad,
                 "malformed work item %lld: task hash \"%.40s\" is not 16-64 lowercase hex digits",
                 (long long)x->id, h);
        return;
    }
    memcpy(x->task_hash, h, hn);
    x->task_hash[hn] = 0;
    char why[LD_ERR_MAX];
    if (!check_object(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4), "the item", why)) {
        snprintf(x->bad, sizeof x->bad, "malformed work item %lld: %.200s", (long long)x->id, why);
        return;
    }
    x->item = strdup(PQgetvalue(r, i, 4));
    if (!x->item)
        snprintf(x->bad, sizeof x->bad, "work item %lld: out of memory", (long long)x->id);
}

static int item_cmp(const void *a, const void *b)
{
    const PgqItem *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int pgq_lease(Pgq *q, int64_t worker_id, int max, PgqItem **out, int *n, char *err)
{
    char wid[24], lim[16], att[16], lease[32];
    PGresult *r;
    *out = NULL;
    *n = 0;
    if (max <= 0)
        return LD_OK;
    snprintf(wid, sizeof wid, "%lld", (long long)worker_id);
    snprintf(lim, sizeof lim, "%d", max);
    snprintf(att, sizeof att, "%d", q->max_attempts);
    snprintf(lease, sizeof lease, "%.6f", q->lease_s);
    const char *p[] = {wid, lim, att, lease};
    int rc = run(q, ST_LEASE, p, &r, "lease", err);
    if (rc != LD_OK)
        return rc;
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return LD_OK;
    }
    PgqItem *items = calloc((size_t)rows, sizeof *items);
    if (!items) {
        PQclear(r);
        /* the rows stay leased to us and come back when the lease runs out */
        return ld_err(err, LD_ENOMEM, "pgqueue: lease: out of memory");
    }
    for (int i = 0; i < rows; i++)
        lease_row(r, i, &items[i]);
    PQclear(r);
    qsort(items, (size_t)rows, sizeof *items, item_cmp); /* RETURNING has no order */
    *out = items;
    *n = rows;
    return LD_OK;
}

void pgq_items_free(PgqItem *items, int n)
{
    if (!items)
        return;
    for (int i = 0; i < n; i++)
        free(items[i].item);
    free(items);
}

int pgq_heartbeat(Pgq *q, int64_t worker_id, int64_t *held, int max_held, int *n_held, char *err)
{
    char wid[24], lease[32];
    PGresult *r;
    if (n_held)
        *n_held = 0;
    snprintf(wid, sizeof wid, "%lld", (long long)worker_id);
    snprintf(lease, sizeof lease, "%.6f", q->lease_s);
    const char *p[] = {wid, lease};
    int rc = run(q, ST_HEARTBEAT, p, &r, "heartbeat", err);
    if (rc != LD_OK)
        return rc;
    int rows = PQntuples(r), k = 0;
    for (int i = 0; i < rows && held && k < max_held; i++)
        held[k++] = col_i64(r, i, 0);
    if (n_held)
        *n_held = held ? k : rows;
    PQclear(r);
    return LD_OK;
}

/* The comparison key of a result: its fingerprint, else its text, else "error: reason". */
static void result_key(const char *fp, const char *result, const char *error, char *key, size_t n)
{
    if (fp || result)
        snprintf(key, n, "%s", fp ? fp : result);
    else
        snprintf(key, n, "error: %s", error ? error : "");
}

/* The item was not moved to results by this call: compare with what is stored. */
static int complete_late(Pgq *q, int64_t worker_id, int64_t work_id, int64_t job_id, int64_t seq,
                         const char *key, PgqCompletion *c, char *err)
{
    char wid[24], id[24], sj[24], ss[24];
    PGresult *r;
    snprintf(wid, sizeof wid, "%lld", (long long)worker_id);
    snprintf(id, sizeof id, "%lld", (long long)work_id);
    snprintf(sj, sizeof sj, "%lld", (long long)job_id);
    snprintf(ss, sizeof ss, "%lld", (long long)seq);
    const char *p[] = {id, sj, ss};
    int rc = run(q, ST_STORED, p, &r, "complete: stored result", err);
    if (rc != LD_OK)
        return rc;
    if (PQntuples(r) == 0) {
        c->outcome = PGQ_GONE;
        snprintf(c->detail, sizeof c->detail,
                 "work item %lld was cancelled or purged: result ignored", (long long)work_id);
        PQclear(r);
        return LD_OK;
    }
    if (PQgetisnull(r, 0, 0)) {
        /* the queue wrote it (abandoned): the daemon already has its verdict */
        c->outcome = PGQ_GONE;
        snprintf(c->detail, sizeof c->detail,
                 "work item %lld was abandoned before this result came: ignored",
                 (long long)work_id);
        PQclear(r);
        return LD_OK;
    }
    char first[PGQ_FINGERPRINT_MAX + 64];
    int64_t first_worker = col_i64(r, 0, 0);
    job_id = col_i64(r, 0, 3);
    seq = col_i64(r, 0, 4);
    snprintf(sj, sizeof sj, "%lld", (long long)job_id);
    snprintf(ss, sizeof ss, "%lld", (long long)seq);
    result_key(PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1), NULL,
               PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2), first, sizeof first);
    PQclear(r);
    if (!strcmp(first, key)) {
        c->outcome = PGQ_DUPLICATE;
        snprintf(c->detail, sizeof c->detail,
                 "work item %lld: late duplicate agrees with worker %lld's result: ignored",
                 (long long)work_id, (long long)first_worker);
        return LD_OK;
    }
    char fw[24];
    snprintf(fw, sizeof fw, "%lld", (long long)first_worker);
    const char *mp[] = {id, sj, ss, fw, wid, first, key};
    rc = run_cmd(q, ST_MISMATCH, mp, NULL, "complete: record mismatch", err);
    c->outcome = PGQ_MISMATCH;
    snprintf(c->detail, sizeof c->detail,
             "MISMATCH: job %lld seq %lld (item %lld): worker %lld's result differs from worker "
             "%lld's (stored \"%.40s\", late \"%.40s\"); evaluations are deterministic",
             (long long)job_id, (long long)seq, (long long)work_id, (long long)worker_id,
             (long long)first_worker, first, key);
    return rc;
}

static int finish(Pgq *q, int64_t worker_id, int64_t work_id, const char *result,
                  const char *fingerprint, const char *error, PgqCompletion *c, char *err)
{
    char wid[24], id[24];
    PGresult *r;
    memset(c, 0, sizeof *c);
    snprintf(wid, sizeof wid, "%lld", (long long)worker_id);
    snprintf(id, sizeof id, "%lld", (long long)work_id);
    const char *p[] = {id, wid, result, fingerprint, error};
    int rc = run(q, ST_COMPLETE, p, &r, result ? "complete" : "fail", err);
    if (rc != LD_OK)
        return rc;
    int stored = (int)col_i64(r, 0, 0);
    int64_t job_id = PQgetisnull(r, 0, 1) ? -1 : col_i64(r, 0, 1);
    int64_t seq = PQgetisnull(r, 0, 2) ? -1 : col_i64(r, 0, 2);
    PQclear(r);
    if (stored) {
        c->outcome = PGQ_DONE;
        return LD_OK;
    }
    char key[PGQ_FINGERPRINT_MAX + 64];
    result_key(fingerprint, result, error, key, sizeof key);
    return complete_late(q, worker_id, work_id, job_id, seq, key, c, err);
}

int pgq_complete(Pgq *q, int64_t worker_id, int64_t work_id, const char *result,
                 const char *fingerprint, PgqCompletion *c, char *err)
{
    char why[LD_ERR_MAX];
    if (!result || !check_object(result, strlen(result), "the result", why))
        return ld_err(err, LD_EINVAL, "pgqueue: complete: work item %lld: %s", (long long)work_id,
                      result ? why : "no result");
    if (fingerprint && strlen(fingerprint) > PGQ_FINGERPRINT_MAX)
        return ld_err(err, LD_EINVAL, "pgqueue: complete: fingerprint over %d bytes",
                      PGQ_FINGERPRINT_MAX);
    return finish(q, worker_id, work_id, result, fingerprint, NULL, c, err);
}

int pgq_fail(Pgq *q, int64_t worker_id, int64_t work_id, const char *reason, PgqCompletion *c,
             char *err)
{
    char r[LD_ERR_MAX];
    snprintf(r, sizeof r, "%s", reason && *reason ? reason : "failed without a reason");
    return finish(q, worker_id, work_id, NULL, NULL, r, c, err);
}

/* ---- tasks and their data, by content ---------------------------------------------------- */

/* SHA-256 (FIPS 180-4), small and portable: task data is hashed once per upload and fetch. */
static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = ROR32(a[4], 6) ^ ROR32(a[4], 11) ^ ROR32(a[4], 25);
        uint32_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
        uint32_t t1 = a[7] + s1 + ch + sha_k[i] + w[i];
        uint32_t s0 = ROR32(a[0], 2) ^ ROR32(a[0], 13) ^ ROR32(a[0], 22);
        uint32_t maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
        memmove(a + 1, a, 7 * sizeof a[0]);
        a[4] += t1;
        a[0] = t1 + s0 + maj;
    }
    for (int i = 0; i < 8; i++)
        h[i] += a[i];
}

void pgq_sha256_hex(const void *bytes, size_t n, char out[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = bytes;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha_block(h, p + i);
    unsigned char tail[128] = {0};
    size_t rest = n - i, tn = rest + 9 <= 64 ? 64 : 128;
    if (rest)
        memcpy(tail, p + i, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        tail[tn - 1 - k] = (unsigned char)(bits >> (8 * k));
    sha_block(h, tail);
    if (tn == 128)
        sha_block(h, tail + 64);
    for (int k = 0; k < 8; k++)
        snprintf(out + 8 * k, 9, "%08x", h[k]);
}

int pgq_data_put(Pgq *q, const void *bytes, size_t n, char hash[65], char *err)
{
    PGresult *r;
    pgq_sha256_hex(bytes, n, hash);
    if (n > 1000000000)
        return ld_err(err, LD_EINVAL, "pgqueue: task data of %zu bytes: at most 10^9", n);
    const char *p[] = {hash};
    int rc = run(q, ST_DATA_HAS, p, &r, "task data: lookup", err);
    if (rc != LD_OK)
        return rc;
    int have = PQntuples(r) > 0;
    PQclear(r);
    if (have)
        return LD_OK;
    /* Bytes go as a binary parameter (no hex or escape encoding on the wire). */
    const Oid types[] = {25 /* text */, 17 /* bytea */};
    const char *vals[] = {hash, n ? bytes : ""};
    const int lens[] = {0, (int)n};
    const int fmts[] = {0, 1};
    r = PQexecParams(q->conn,
                     "INSERT INTO task_data (hash, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                     2, types, vals, lens, fmts, 0);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK ? LD_OK : pg_err(q, r, "task data: store", err);
    PQclear(r);
    return rc;
}

int pgq_data_get(Pgq *q, const char *hash, void **bytes, size_t *n, char *err)
{
    *bytes = NULL;
    *n = 0;
    if (!hash || strlen(hash) != 64 || !valid_hash(hash, 64))
        return ld_err(err, LD_EINVAL, "pgqueue: task data \"%.70s\": expected 64 hex digits",
                      hash ? hash : "(null)");
    const char *vals[] = {hash};
    PGresult *r = PQexecParams(q->conn, "SELECT bytes FROM task_data WHERE hash = $1", 1, NULL,
                               vals, NULL, NULL, 1 /* binary: the raw bytes */);
    int rc = LD_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_err(q, r, "task data: fetch", err);
        goto done;
    }
    if (PQntuples(r) == 0) {
        rc =
            ld_err(err, LD_ENOTFOUND, "pgqueue: task data %.16s...: not stored in the queue", hash);
        goto done;
    }
    size_t len = (size_t)PQgetlength(r, 0, 0);
    char *buf = malloc(len + 1);
    if (!buf) {
        rc = ld_err(err, LD_ENOMEM, "pgqueue: task data: %zu bytes: out of memory", len);
        goto done;
    }
    memcpy(buf, PQgetvalue(r, 0, 0), len);
    buf[len] = 0;
    char got[65];
    pgq_sha256_hex(buf, len, got);
    if (strcmp(got, hash)) {
        free(buf);
        rc = ld_err(err, LD_EINVAL,
                    "pgqueue: task data %.16s...: the stored bytes hash to %.16s...", hash, got);
        goto done;
    }
    *bytes = buf;
    *n = len;
done:
    PQclear(r);
    return rc;
}

int pgq_task_put(Pgq *q, const char *task_hash, const char *spec, char *err)
{
    char why[LD_ERR_MAX];
    if (!task_hash || !valid_hash(task_hash, strlen(task_hash)))
        return ld_err(err, LD_EINVAL,
                      "pgqueue: task \"%.70s\": expected 16-64 lowercase hex digits",
                      task_hash ? task_hash : "(null)");
    if (!spec || !check_object(spec, strlen(spec), "the task's spec", why))
        return ld_err(err, LD_EINVAL, "pgqueue: task %s: %s", task_hash, spec ? why : "no spec");
    const char *p[] = {task_hash, spec};
    int added = 0;
    int rc = run_cmd(q, ST_TASK_PUT, p, &added, "task: store", err);
    if (rc != LD_OK || added)
        return rc;
    char *stored = NULL;
    rc = pgq_task_get(q, task_hash, &stored, err);
    if (rc == LD_OK && strcmp(stored, spec))
        rc = ld_err(err, LD_ESTATE,
                    "pgqueue: task %s: a different spec is stored under this hash (two lossd "
                    "versions normalising it differently, or a collision)",
                    task_hash);
    free(stored);
    return rc;
}

int pgq_task_get(Pgq *q, const char *task_hash, char **spec, char *err)
{
    char why[LD_ERR_MAX];
    PGresult *r;
    *spec = NULL;
    if (!task_hash || !valid_hash(task_hash, strlen(task_hash)))
        return ld_err(err, LD_EINVAL,
                      "pgqueue: task \"%.70s\": expected 16-64 lowercase hex digits",
                      task_hash ? task_hash : "(null)");
    const char *p[] = {task_hash};
    int rc = run(q, ST_TASK_GET, p, &r, "task: fetch", err);
    if (rc != LD_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = ld_err(err, LD_ENOTFOUND, "pgqueue: task %s: not stored in the queue", task_hash);
    else if (!check_object(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), "its spec", why))
        rc = ld_err(err, LD_EINVAL, "pgqueue: task %s: %s", task_hash, why);
    else if (!(*spec = strdup(PQgetvalue(r, 0, 0))))
        rc = ld_err(err, LD_ENOMEM, "pgqueue: task %s: out of memory", task_hash);
    PQclear(r);
    return rc;
}

/* ---- listings ---------------------------------------------------------------------------- */

/* Runs statement id and builds owned JSON from its rows with row(): an array of every row, or
 * (single) the first row's object alone. */
static int query_json(Pgq *q, int id, const char *const *params,
                      cJSON *(*row)(const PGresult *, int), int single, const char *what,
                      cJSON **out, char *err)
{
    PGresult *r;
    *out = NULL;
    int rc = run(q, id, params, &r, what, err);
    if (rc != LD_OK)
        return rc;
    cJSON *j = single ? (PQntuples(r) ? row(r, 0) : NULL) : cJSON_CreateArray();
    for (int i = 0; !single && j && i < PQntuples(r); i++)
        cJSON_AddItemToArray(j, row(r, i));
    PQclear(r);
    if (!j)
        return ld_err(err, LD_ENOMEM, "pgqueue: %s: out of memory", what);
    *out = j;
    return LD_OK;
}

static cJSON *worker_row(const PGresult *r, int i)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddNumberToObject(w, "id", (double)col_i64(r, i, 0));
    cJSON_AddStringToObject(w, "host", PQgetvalue(r, i, 1));
    cJSON_AddNumberToObject(w, "pid", (double)col_i64(r, i, 2));
    cJSON_AddNumberToObject(w, "threads", (double)col_i64(r, i, 3));
    cJSON_AddNumberToObject(w, "evals_done", (double)col_i64(r, i, 4));
    cJSON_AddNumberToObject(w, "started", col_f64(r, i, 5));
    cJSON_AddNumberToObject(w, "last_seen", col_f64(r, i, 6));
    cJSON_AddStringToObject(w, "state", PQgetvalue(r, i, 7));
    cJSON *leases = cJSON_Parse(PQgetvalue(r, i, 8));
    cJSON_AddItemToObject(w, "leases", leases ? leases : cJSON_CreateArray());
    return w;
}

int pgq_workers(Pgq *q, cJSON **out, char *err)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%.6f", q->lease_s);
    const char *p[] = {lease};
    return query_json(q, ST_WORKERS, p, worker_row, 0, "workers", out, err);
}

static cJSON *counts_row(const PGresult *r, int i)
{
    static const char *const names[] = {"pending", "leased", "results", "unacked", "mismatches"};
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < 5; k++)
        cJSON_AddNumberToObject(o, names[k], (double)col_i64(r, i, k));
    return o;
}

int pgq_counts(Pgq *q, cJSON **out, char *err)
{
    return query_json(q, ST_COUNTS, NULL, counts_row, 1, "counts", out, err);
}

static cJSON *mismatch_row(const PGresult *r, int i)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "job_id", (double)col_i64(r, i, 0));
    cJSON_AddNumberToObject(m, "seq", (double)col_i64(r, i, 1));
    cJSON_AddNumberToObject(m, "work_id", (double)col_i64(r, i, 2));
    cJSON_AddNumberToObject(m, "first_worker", (double)col_i64(r, i, 3));
    cJSON_AddNumberToObject(m, "late_worker", (double)col_i64(r, i, 4));
    cJSON_AddStringToObject(m, "first", PQgetvalue(r, i, 5));
    cJSON_AddStringToObject(m, "late", PQgetvalue(r, i, 6));
    cJSON_AddNumberToObject(m, "at", col_f64(r, i, 7));
    return m;
}

int pgq_mismatches(Pgq *q, cJSON **out, char *err)
{
    return query_json(q, ST_MISMATCHES, NULL, mismatch_row, 0, "mismatches", out, err);
}
