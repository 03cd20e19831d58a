/* store.c: opening the database (lock, pragmas, migrations), transactions, the statement cache
 * and shared helpers, and the job, task, search-state, event and schedule tables. Candidates,
 * evaluations and leaderboards are in store_results.c. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Forward migrations: migrations[i] brings a database at user_version i to i + 1. Append only;
 * never edit one that has shipped. Each runs inside the opening transaction. */
static const char *const migrations[] = {
    /* 1: the tables */
    "CREATE TABLE schedules ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT,"
    "  cron TEXT NOT NULL,"
    "  tz TEXT,"
    "  until REAL,"
    "  catch_up INTEGER NOT NULL DEFAULT 0,"
    "  concurrency INTEGER NOT NULL DEFAULT 1,"
    "  template TEXT NOT NULL CHECK (json_valid(template)),"
    "  paused INTEGER NOT NULL DEFAULT 0,"
    "  last_fire REAL,"
    "  next_fire REAL,"
    "  created REAL NOT NULL);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT,"
    "  spec TEXT NOT NULL CHECK (json_valid(spec)),"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  seed INTEGER NOT NULL DEFAULT 0,"
    "  created REAL NOT NULL,"
    "  started REAL,"
    "  finished REAL,"
    "  schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,"
    "  client_token TEXT UNIQUE,"
    "  error TEXT,"
    "  evals_done INTEGER NOT NULL DEFAULT 0,"
    "  budget_evals INTEGER NOT NULL DEFAULT 0,"
    "  best_fitness REAL,"
    "  leaderboard TEXT,"
    "  stats TEXT);"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_schedule ON jobs(schedule_id, id);"
    "CREATE TABLE tasks ("
    "  id INTEGER PRIMARY KEY,"
    "  hash INTEGER NOT NULL UNIQUE,"
    "  family TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  metric TEXT,"
    "  higher_better INTEGER NOT NULL DEFAULT 1,"
    "  spec TEXT,"
    "  created REAL NOT NULL);"
    "CREATE INDEX tasks_family ON tasks(family, hash);"
    "CREATE TABLE job_tasks ("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  task_id INTEGER NOT NULL REFERENCES tasks(id),"
    "  holdout INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (job_id, idx)) WITHOUT ROWID;"
    "CREATE INDEX job_tasks_task ON job_tasks(task_id, job_id);"
    "CREATE TABLE candidates ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  cand INTEGER NOT NULL,"
    "  expr TEXT NOT NULL,"
    "  hash INTEGER NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  parents TEXT,"
    "  op TEXT,"
    "  family TEXT,"
    "  fitness REAL,"
    "  created REAL NOT NULL,"
    "  UNIQUE (job_id, cand));"
    "CREATE INDEX candidates_rank ON candidates(job_id, fitness DESC, cand)"
    "  WHERE fitness IS NOT NULL;"
    "CREATE INDEX candidates_hash ON candidates(hash, job_id);"
    "CREATE TABLE evaluations ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  candidate_id INTEGER NOT NULL REFERENCES candidates(id) ON DELETE CASCADE,"
    "  task_id INTEGER NOT NULL REFERENCES tasks(id),"
    "  expr_hash INTEGER NOT NULL,"
    "  seed INTEGER NOT NULL,"
    "  steps INTEGER NOT NULL,"
    "  steps_run INTEGER,"
    "  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'interrupted')),"
    "  metric TEXT,"
    "  val REAL,"
    "  test REAL,"
    "  final_loss REAL,"
    "  metrics TEXT,"
    "  curve TEXT,"
    "  wall_ms REAL,"
    "  error TEXT,"
    "  created REAL NOT NULL,"
    "  UNIQUE (job_id, seq));"
    "CREATE INDEX evaluations_cand ON evaluations(candidate_id, task_id, steps);"
    "CREATE INDEX evaluations_result ON evaluations(expr_hash, task_id, seed, steps);"
    "CREATE TABLE search_state ("
    "  job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,"
    "  round INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  updated REAL NOT NULL);"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time REAL NOT NULL,"
    "  job_id INTEGER,"
    "  kind TEXT NOT NULL,"
    "  data TEXT);",

    /* 2: the cross-job results view and the covering index the family leaderboard and warm
     * starts read (every column they touch, so the scan never visits the table) */
    "CREATE INDEX evaluations_family ON evaluations(task_id, status, expr_hash, steps, val,"
    "  test, metric);"
    "CREATE VIEW results AS"
    "  SELECT e.expr_hash, t.hash AS task_hash, e.seed, e.steps, t.family, c.expr, e.metric,"
    "         e.val, e.test, e.final_loss, e.metrics, e.job_id, e.created"
    "  FROM evaluations e JOIN tasks t ON t.id = e.task_id"
    "  JOIN candidates c ON c.id = e.candidate_id WHERE e.status = 'ok';",

    /* 3: per (task, expression, fidelity, metric) running sums of the "ok" evaluations, kept
     * by triggers, so the family leaderboard and warm starts read one row per expression and
     * fidelity instead of every seed's evaluation (backfilled from what is stored). It
     * replaces the covering index of version 2. */
    "CREATE TABLE result_stats ("
    "  task_id INTEGER NOT NULL REFERENCES tasks(id),"
    "  expr_hash INTEGER NOT NULL,"
    "  steps INTEGER NOT NULL,"
    "  metric TEXT NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  sum_val REAL NOT NULL,"
    "  n_test INTEGER NOT NULL,"
    "  sum_test REAL NOT NULL,"
    "  PRIMARY KEY (task_id, expr_hash, steps, metric)) WITHOUT ROWID;"
    "INSERT INTO result_stats"
    "  SELECT task_id, expr_hash, steps, coalesce(metric, ''), count(*), sum(val), count(test),"
    "         coalesce(sum(test), 0) FROM evaluations"
    "  WHERE status = 'ok' AND val IS NOT NULL GROUP BY 1, 2, 3, 4;"
    "CREATE TRIGGER result_stats_add_ins AFTER INSERT ON evaluations"
    "  WHEN new.status = 'ok' AND new.val IS NOT NULL BEGIN"
    "  INSERT INTO result_stats VALUES (new.task_id, new.expr_hash, new.steps,"
    "    coalesce(new.metric, ''), 1, new.val, new.test IS NOT NULL, coalesce(new.test, 0))"
    "  ON CONFLICT (task_id, expr_hash, steps, metric) DO UPDATE SET n = n + 1,"
    "    sum_val = sum_val + excluded.sum_val, n_test = n_test + excluded.n_test,"
    "    sum_test = sum_test + excluded.sum_test;"
    "END;"
    "CREATE TRIGGER result_stats_add_upd AFTER UPDATE ON evaluations"
    "  WHEN new.status = 'ok' AND new.val IS NOT NULL BEGIN"
    "  INSERT INTO result_stats VALUES (new.task_id, new.expr_hash, new.steps,"
    "    coalesce(new.metric, ''), 1, new.val, new.test IS NOT NULL, coalesce(new.test, 0))"
    "  ON CONFLICT (task_id, expr_hash, steps, metric) DO UPDATE SET n = n + 1,"
    "    sum_val = sum_val + excluded.sum_val, n_test = n_test + excluded.n_test,"
    "    sum_test = sum_test + excluded.sum_test;"
    "END;"
    "CREATE TRIGGER result_stats_sub_upd BEFORE UPDATE ON evaluations"
    "  WHEN old.status = 'ok' AND old.val IS NOT NULL BEGIN"
    "  UPDATE result_stats SET n = n - 1, sum_val = sum_val - old.val,"
    "    n_test = n_test - (old.test IS NOT NULL), sum_test = sum_test - coalesce(old.test, 0)"
    "  WHERE task_id = old.task_id AND expr_hash = old.expr_hash AND steps = old.steps"
    "    AND metric = coalesce(old.metric, '');"
    "  DELETE FROM result_stats WHERE task_id = old.task_id AND expr_hash = old.expr_hash"
    "    AND steps = old.steps AND metric = coalesce(old.metric, '') AND n <= 0;"
    "END;"
    "CREATE TRIGGER result_stats_sub_del AFTER DELETE ON evaluations"
    "  WHEN old.status = 'ok' AND old.val IS NOT NULL BEGIN"
    "  UPDATE result_stats SET n = n - 1, sum_val = sum_val - old.val,"
    "    n_test = n_test - (old.test IS NOT NULL), sum_test = sum_test - coalesce(old.test, 0)"
    "  WHERE task_id = old.task_id AND expr_hash = old.expr_hash AND steps = old.steps"
    "    AND metric = coalesce(old.metric, '');"
    "  DELETE FROM result_stats WHERE task_id = old.task_id AND expr_hash = old.expr_hash"
    "    AND steps = old.steps AND metric = coalesce(old.metric, '') AND n <= 0;"
    "END;"
    "DROP INDEX evaluations_family;",
    /* 3: the engine's rank tier of a candidate (search_tier: from the highest fidelity level
     * reached, whether its final seeds collapsed, whether it was measured on them): a job's
     * leaderboard orders by tier, then fitness, as the engine ranks (docs/jobs.md), so rank 1 is
     * job.get's best */
    "ALTER TABLE candidates ADD COLUMN tier INTEGER;",
    /* 5: the engine's final comparisons of a candidate re-evaluated at the end (search_leaderboard's
     * "final": at the search's recipe and, under "horizon", at the user's), which the
     * leaderboard and candidate.get show side by side (storage/leaderboard.c) */
    "ALTER TABLE candidates ADD COLUMN final TEXT;",
    /* 6: proposals sent into a running job (candidate.propose), each with the point of the
     * engine's rounds it arrived at, so a restart hands them to the engine at the same point
     * (docs/jobs.md, "Proposals"); and each candidate's origin (search, seed, warm,
     * proposed:<source>) */
    "CREATE TABLE proposals ("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  pseq INTEGER NOT NULL,"
    "  point INTEGER NOT NULL,"
    "  expr TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  note TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('accepted', 'duplicate', 'refused')),"
    "  cand INTEGER,"
    "  detail TEXT,"
    "  created REAL NOT NULL,"
    "  PRIMARY KEY (job_id, pseq)) WITHOUT ROWID;"
    "ALTER TABLE candidates ADD COLUMN origin TEXT;"
    "UPDATE candidates SET origin = " STORE_SQL_ORIGIN("op") ";",
    /* 7: the "expired" state (a schedule's run stopped at its until deadline). SQLite cannot
     * alter a CHECK constraint; rewriting its text in the schema is the documented way for a
     * change that leaves the stored rows valid as they are, and RESET reloads the schema */
    "PRAGMA writable_schema = ON;"
    "UPDATE sqlite_schema SET sql = replace(sql, '''failed'', ''cancelled'')', "
    "  '''failed'', ''cancelled'', ''expired'')') WHERE type = 'table' AND name = 'jobs';"
    "PRAGMA writable_schema = RESET;",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static const char *const stmt_sql[ST_COUNT] = {
#define STORE_STMT_SQL(id, sql) sql,
    STORE_STMTS(STORE_STMT_SQL)
#undef STORE_STMT_SQL
};

static const char *const stmt_name[ST_COUNT] = {
#define STORE_STMT_NAME(id, sql) #id,
    STORE_STMTS(STORE_STMT_NAME)
#undef STORE_STMT_NAME
};

int store_schema_version(void) { return NMIGRATIONS; }

const char *store_migration_sql(int i) { return i >= 0 && i < NMIGRATIONS ? migrations[i] : NULL; }

/* ---- helpers ---------------------------------------------------------------------------- */

static _Thread_local int bind_failed; /* a text bind failed since the statement was fetched */

void store_bind_mark_(int failed) { bind_failed = failed; }

int store_bind_text_checked_(sqlite3_stmt *st, int i, const char *text, int n, void (*del)(void *))
{
    int rc = (sqlite3_bind_text)(st, i, text, n, del);
    if (rc != SQLITE_OK)
        bind_failed = 1;
    return rc;
}

/* Prepares a statement outside the cache (store_stmt_). A new statement has no binds, so a flag
 * left by an operation that failed at a bind and never stepped (it rolled back instead) is stale:
 * cleared here, or the new statement's first step would fail with SQLITE_NOMEM (found by
 * tests/test_alloc_sweep.c: after a failed bind in store_state_put, reopening the store in the
 * same process failed with "out of memory"). */
static int prepare_fresh(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    bind_failed = 0;
    return sqlite3_prepare_v2(db, sql, -1, st, NULL);
}

int store_step_checked_(sqlite3_stmt *st)
{
    if (bind_failed) {
        bind_failed = 0;
        return SQLITE_NOMEM;
    }
    return (sqlite3_step)(st);
}

int store_sqlerr_(Store *s, int rc, const char *what, char *err)
{
    int code;
    /* The JSON columns are written from cJSON's printer, so they always pass their
     * json_valid() CHECK: when one fails, SQLite could not run json_valid (out of memory: found
     * by tests/test_alloc_sweep.c, the job's insert failing as "CHECK constraint failed:
     * json_valid(spec)"). That is a storage fault, not the request's. */
    if (rc == SQLITE_CONSTRAINT_CHECK && s && s->db && strstr(sqlite3_errmsg(s->db), "json_valid")) {
        s->faults++;
        return ld_err(err, LD_ENOMEM, "store: %s: out of memory (checking a JSON column)", what);
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = LD_EBUSY; break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG: code = LD_EINVAL; break;
    case SQLITE_NOMEM: code = LD_ENOMEM; break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: code = LD_EPERM; break;
    default: code = LD_EIO; break;
    }
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
        if (s)
            s->faults++; /* the storage failed, not the request: see store_faults */
        break;
    default: break;
    }
    /* a failed bind leaves no message on the handle: the code's own text then */
    const char *msg = s && s->db && (rc & 0xff) != SQLITE_NOMEM ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    /* "disk I/O error" alone does not say that the disk is full or the file too large */
    int sys = s && s->db ? sqlite3_system_errno(s->db) : 0;
    if (sys && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN ||
                (rc & 0xff) == SQLITE_FULL))
        return ld_err(err, code, "store: %s: %s (%s)", what, msg, strerror(sys));
    return ld_err(err, code, "store: %s: %s", what, msg);
}

sqlite3_stmt *store_stmt_(Store *s, int id, const char *what, char *err)
{
    if (!s->st[id]) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id],
                                    NULL);
        if (rc != SQLITE_OK) {
            char w[128];
            snprintf(w, sizeof w, "%s: prepare", what);
            store_sqlerr_(s, rc, w, err);
            s->st[id] = NULL;
            return NULL;
        }
    }
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    bind_failed = 0;
    return s->st[id];
}

static int exec(Store *s, const char *sql, const char *what, char *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? LD_OK : store_sqlerr_(s, rc, what, err);
}

int store_wbegin_(Store *s, int *own, const char *what, char *err)
{
    *own = 0;
    if (s->readonly)
        return ld_err(err, LD_EPERM, "store: %s: the database is open read-only", what);
    if (s->txn)
        return LD_OK;
    int rc = store_check_alive(s, err);
    if (rc != LD_OK)
        return rc;
    rc = exec(s, "BEGIN IMMEDIATE", what, err);
    if (rc == LD_OK)
        *own = 1;
    return rc;
}

int store_wend_(Store *s, int own, int rc, const char *what, char *err)
{
    /* an allocation that failed outside SQLite's calls (a bind's copy, a JSON text) is a storage
     * fault too: the daemon retries the write instead of failing the job (tests/test_alloc_sweep.c) */
    if (rc == LD_ENOMEM)
        s->faults++;
    if (!own)
        return rc;
    if (rc == LD_OK) {
        rc = exec(s, "COMMIT", what, err);
        if (rc == LD_OK)
            return LD_OK;
    }
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_wstmt_(Store *s, int id, int *own, sqlite3_stmt **st, const char *what, char *err)
{
    *st = NULL;
    int rc = store_wbegin_(s, own, what, err);
    if (rc != LD_OK)
        return rc;
    *st = store_stmt_(s, id, what, err);
    return *st ? LD_OK : store_wend_(s, *own, LD_EIO, what, err);
}

int store_step_done_(Store *s, sqlite3_stmt *st, int need_change, const char *what, char *err)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = store_sqlerr_(s, rc, what, err);
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    if (need_change && sqlite3_changes(s->db) == 0)
        return ld_err(err, LD_ENOTFOUND, "store: %s: not found", what);
    return LD_OK;
}

int store_step_id_(Store *s, sqlite3_stmt *st, int64_t *id, int *found, const char *what,
                   char *err)
{
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (*found)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return *found || src == SQLITE_DONE ? LD_OK : store_sqlerr_(s, src, what, err);
}

int store_rows_(Store *s, sqlite3_stmt *st, cJSON *(*row)(sqlite3_stmt *), cJSON *arr,
                const char *what, char *err)
{
    int src, rc = LD_OK;
    if (!arr) {
        sqlite3_reset(st);
        return ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(arr, row(st));
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
    sqlite3_reset(st);
    return rc;
}

int store_rows_array_(Store *s, sqlite3_stmt *st, cJSON *(*row)(sqlite3_stmt *), cJSON **out,
                      const char *what, char *err)
{
    cJSON *arr = cJSON_CreateArray();
    int rc = store_rows_(s, st, row, arr, what, err);
    if (rc != LD_OK) {
        cJSON_Delete(arr);
        arr = NULL;
    }
    *out = arr;
    return rc;
}

int store_bind_json_(sqlite3_stmt *st, int i, const cJSON *json)
{
    if (!json)
        return sqlite3_bind_null(st, i);
    char *text = cJSON_PrintUnformatted(json);
    if (!text) {
        bind_failed = 1;
        return SQLITE_NOMEM;
    }
    int rc = sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
    cJSON_free(text);
    return rc;
}

int store_bind_text_(sqlite3_stmt *st, int i, const char *text)
{
    if (!text || !*text)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
}

int store_bind_real_(sqlite3_stmt *st, int i, double v)
{
    return isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

double store_col_real_(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

cJSON *store_col_json_(sqlite3_stmt *st, int i)
{
    const char *text = (const char *)sqlite3_column_text(st, i);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    return j ? j : cJSON_CreateNull();
}

cJSON *store_number_(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *store_col_number_(sqlite3_stmt *st, int i) { return store_number_(store_col_real_(st, i)); }

cJSON *store_col_string_(sqlite3_stmt *st, int i)
{
    const char *text = (const char *)sqlite3_column_text(st, i);
    return text ? cJSON_CreateString(text) : cJSON_CreateNull();
}

cJSON *store_col_array_(sqlite3_stmt *st, int i)
{
    cJSON *j = store_col_json_(st, i);
    if (cJSON_IsNull(j)) {
        cJSON_Delete(j);
        j = cJSON_CreateArray();
    }
    return j;
}

cJSON *store_hash_json_(uint64_t h)
{
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return cJSON_CreateString(buf);
}

cJSON *store_seed_json_(uint64_t seed)
{
    if (seed <= (1ull << 53))
        return cJSON_CreateNumber((double)seed);
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
    return cJSON_CreateString(buf);
}

void store_cols_add_(cJSON *o, sqlite3_stmt *st, int first, const StoreCol *cols, int n)
{
    for (int k = 0; k < n; k++) {
        int i = first + k;
        cJSON *v = NULL;
        switch (cols[k].kind) {
        case SCOL_INT: v = cJSON_CreateNumber((double)sqlite3_column_int64(st, i)); break;
        case SCOL_NUM: v = store_col_number_(st, i); break;
        case SCOL_STR: v = store_col_string_(st, i); break;
        case SCOL_JSON: v = store_col_json_(st, i); break;
        case SCOL_BOOL: v = cJSON_CreateBool(sqlite3_column_int(st, i)); break;
        case SCOL_HASH: v = store_hash_json_((uint64_t)sqlite3_column_int64(st, i)); break;
        case SCOL_SEED: v = store_seed_json_((uint64_t)sqlite3_column_int64(st, i)); break;
        }
        cJSON_AddItemToObject(o, cols[k].name, v);
    }
}

cJSON *store_row_json_(sqlite3_stmt *st, const StoreCol *cols, int n)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        store_cols_add_(o, st, 0, cols, n);
    return o;
}

/* ---- open and close --------------------------------------------------------------------- */

/* The database's real name: symlinks in path (and path itself, when it exists) resolved, so the
 * lock and SQLite's -wal and -shm files belong to the file, not to one of its names. Returns
 * owned. */
static char *resolve_path(const char *path, char *err)
{
    char *real = realpath(path, NULL);
    if (real)
        return real;
    if (errno != ENOENT) {
        ld_err(err, errno == EACCES ? LD_EPERM : LD_EIO, "store: open %s: %s", path, strerror(errno));
        return NULL;
    }
    /* a new database: resolve its directory, keep its name */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    char *rdir = dir ? realpath(dir, NULL) : NULL;
    if (!rdir) {
        ld_err(err, errno == EACCES ? LD_EPERM : LD_EIO, "store: open %s: directory %s: %s", path,
               dir ? dir : "?", strerror(errno));
        free(dir);
        return NULL;
    }
    size_t n = strlen(rdir) + strlen(base) + 2;
    real = malloc(n);
    if (real)
        snprintf(real, n, "%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", base);
    else
        ld_err(err, LD_ENOMEM, "store: open %s: out of memory", path);
    free(dir);
    free(rdir);
    return real;
}

/* Writes our pid into REAL.lock for the message a second writer gets; the lock itself is the
 * flock on the database file. Best effort: the file is informative only. */
static void write_pid_file(const Store *s)
{
    size_t n = strlen(s->real) + 6;
    char *lp = malloc(n);
    if (!lp)
        return;
    snprintf(lp, n, "%s.lock", s->real);
    int fd = open(lp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
            /* informative only */
        }
        close(fd);
    }
    free(lp);
}

static long read_pid_file(const Store *s)
{
    size_t n = strlen(s->real) + 6;
    char *lp = malloc(n), buf[32] = {0};
    long pid = 0;
    if (!lp)
        return 0;
    snprintf(lp, n, "%s.lock", s->real);
    int fd = open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        if (pread(fd, buf, sizeof buf - 1, 0) > 0)
            pid = strtol(buf, NULL, 10);
        close(fd);
    }
    free(lp);
    return pid;
}

/* Takes the single-writer lock on the database file itself: an exclusive flock on a descriptor
 * of the file, kept open until store_close. The lock belongs to the inode, so a second writer
 * through a hard link, a symlink or a deleted PATH.lock meets it too. A database with more than
 * one link is refused: SQLite keeps one WAL per name, and two names of one file corrupt it. */
static int take_lock(Store *s, char *err)
{
    int fd = open(s->real, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ld_err(err, errno == EACCES || errno == EROFS ? LD_EPERM : LD_EIO,
                      "store: open %s: %s", s->path, strerror(errno));
    struct stat st, now;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        long pid = busy ? read_pid_file(s) : 0;
        int rc = !busy ? ld_err(err, LD_EIO, "store: lock %s: %s", s->path, strerror(errno))
                 : pid > 0 ? ld_err(err, LD_EBUSY, "store: database %s is in use by another lossd (pid %ld)",
                                    s->path, pid)
                           : ld_err(err, LD_EBUSY, "store: database %s is in use by another lossd",
                                    s->path);
        close(fd);
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ld_err(err, LD_EIO, "store: open %s: not a regular file", s->path);
    }
    if (st.st_nlink > 1) {
        close(fd);
        return ld_err(err, LD_ESTATE,
                      "store: open %s: the database file has %ld hard links; refusing it (SQLite "
                      "keeps one WAL per name, so two names of one database corrupt it): remove "
                      "the other links",
                      s->path, (long)st.st_nlink);
    }
    /* the name may have been replaced between open and flock: then this is not the file */
    if (stat(s->real, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        close(fd);
        return ld_err(err, LD_EBUSY, "store: open %s: the file was replaced while opening it",
                      s->path);
    }
    s->lock_fd = fd;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    write_pid_file(s);
    return LD_OK;
}

int store_check_alive(Store *s, char *err)
{
    if (!s || s->lock_fd < 0)
        return LD_OK;
    struct stat st, now;
    const char *why = NULL;
    if (fstat(s->lock_fd, &st) != 0 || st.st_nlink == 0)
        why = "was deleted (its directory removed?)";
    else if (stat(s->real, &now) != 0 || now.st_dev != s->dev || now.st_ino != s->ino)
        why = "was moved or replaced";
    if (!why)
        return LD_OK;
    s->faults++;
    return ld_err(err, LD_EIO,
                  "store: the database file %s %s while lossd had it open: writes are refused "
                  "(they would be lost); restart lossd",
                  s->path, why);
}

uint64_t store_faults(const Store *s) { return s ? s->faults : 0; }

static int read_version(Store *s, int *version, char *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare_fresh(s->db, "PRAGMA user_version", &st);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int code = store_sqlerr_(s, rc, "read schema version", err);
        sqlite3_finalize(st);
        return code;
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return LD_OK;
}

static int migrate(Store *s, int from, char *err)
{
    char what[64];
    int rc = exec(s, "BEGIN IMMEDIATE", "migrate: begin", err);
    if (rc != LD_OK)
        return rc;
    /* Re-read inside the transaction: nobody else can migrate under our lock, but be exact. */
    rc = read_version(s, &from, err);
    for (int i = from; rc == LD_OK && i < NMIGRATIONS; i++) {
        snprintf(what, sizeof what, "migrate to schema version %d", i + 1);
        rc = exec(s, migrations[i], what, err);
    }
    if (rc == LD_OK) {
        snprintf(what, sizeof what, "PRAGMA user_version = %d", NMIGRATIONS);
        rc = exec(s, what, "migrate: set version", err);
    }
    if (rc == LD_OK)
        rc = exec(s, "COMMIT", "migrate: commit", err);
    if (rc != LD_OK && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_open(const char *path, int flags, Store **out, char *err)
{
    Store *s = NULL;
    int rc = LD_OK, version = 0;
    char what[96];
    *out = NULL;
    if (!path || !*path)
        return ld_err(err, LD_EINVAL, "store: open: empty database path");
    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        rc = ld_err(err, LD_ENOMEM, "store: open %s: out of memory", path);
        goto done;
    }
    s->lock_fd = -1;
    s->readonly = (flags & STORE_READONLY) != 0;
    s->real = resolve_path(path, err);
    if (!s->real) {
        rc = err && strstr(err, "out of memory") ? LD_ENOMEM : LD_EIO;
        if (err && strstr(err, "Permission denied"))
            rc = LD_EPERM;
        goto done;
    }
    if (!s->readonly) {
        rc = take_lock(s, err);
        if (rc != LD_OK)
            goto done;
    }
    int oflags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int src = sqlite3_open_v2(s->real, &s->db, oflags, s->readonly ? NULL : store_faultvfs_());
    if (src != SQLITE_OK) {
        snprintf(what, sizeof what, "open %s", path);
        rc = store_sqlerr_(s, src, what, err);
        if (rc != LD_EPERM)
            rc = LD_EIO;
        goto done;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* The writer holds the file's flock, so only a foreign process (an sqlite3 shell) can hold
     * SQLite's write lock: wait briefly, then fail with "database is locked" rather than block
     * the daemon's loop for seconds on every write (the job pauses and retries by itself). */
    sqlite3_busy_timeout(s->db, s->readonly ? 5000 : 250);
    /* The first read of the header is where a file that is not a database shows itself. */
    rc = read_version(s, &version, err);
    if (rc != LD_OK) {
        ld_err(err, LD_EIO, "store: open %s: %s", path, sqlite3_errmsg(s->db));
        rc = LD_EIO;
        goto done;
    }
    if (version > NMIGRATIONS) {
        rc = ld_err(err, LD_ESTATE,
                    "store: open %s: schema version %d is newer than this lossd reads (%d)", path,
                    version, NMIGRATIONS);
        goto done;
    }
    snprintf(what, sizeof what, "open %s", path);
    if (!s->readonly) {
        sqlite3_stmt *st = NULL;
        src = prepare_fresh(s->db, "PRAGMA journal_mode = WAL", &st);
        if (src == SQLITE_OK)
            src = sqlite3_step(st);
        const char *mode = src == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (src != SQLITE_ROW || !mode || strcmp(mode, "wal") != 0) {
            rc = src == SQLITE_ROW
                     ? ld_err(err, LD_EIO, "store: open %s: cannot use WAL mode (journal_mode %s)",
                              path, mode ? mode : "?")
                     : store_sqlerr_(s, src, what, err);
            if (rc == LD_EINVAL)
                rc = LD_EIO;
            sqlite3_finalize(st);
            goto done;
        }
        sqlite3_finalize(st);
        rc = exec(s, flags & STORE_NOSYNC ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL",
                  what, err);
        if (rc != LD_OK)
            goto done;
    }
    /* 32 MiB of page cache: the leaderboards revisit the same index pages */
    rc = exec(s, "PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768", what, err);
    if (rc != LD_OK)
        goto done;
    if (version < NMIGRATIONS) {
        if (s->readonly) {
            rc = ld_err(err, LD_ESTATE,
                        "store: open %s: schema version %d is older than %d; open it for writing "
                        "once (start lossd) to migrate",
                        path, version, NMIGRATIONS);
            goto done;
        }
        rc = migrate(s, version, err);
        if (rc != LD_OK) {
            char inner[LD_ERR_MAX];
            snprintf(inner, sizeof inner, "%s", err ? err : "");
            ld_err(err, rc, "store: open %s: %s", path,
                   strncmp(inner, "store: ", 7) == 0 ? inner + 7 : inner);
            if (rc == LD_EINVAL)
                rc = LD_EIO;
            goto done;
        }
    }
done:
    if (rc != LD_OK) {
        store_close(s);
        return rc;
    }
    *out = s;
    return LD_OK;
}

void store_close(Store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    for (int i = 0; i < STORE_MEMO_SLOTS; i++) {
        free(s->memo[i].key);
        free(s->memo[i].text);
    }
    if (s->db) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* after SQLite's close: closing it drops this process's fcntl locks */
    free(s->path);
    free(s->real);
    free(s);
}

/* ---- memos ------------------------------------------------------------------------------ */

static StoreMemo *memo_slot(Store *s, int64_t job_id, const char *key)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)job_id; /* FNV-1a over the key */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &s->memo[h % STORE_MEMO_SLOTS];
}

const char *store_memo_get(Store *s, int64_t job_id, const char *key)
{
    if (!s || !key)
        return NULL;
    StoreMemo *m = memo_slot(s, job_id, key);
    if (!m->text || m->job_id != job_id || strcmp(m->key, key) ||
        m->gen != s->gen[(uint64_t)job_id % STORE_GEN_SLOTS])
        return NULL;
    return m->text;
}

void store_memo_put(Store *s, int64_t job_id, const char *key, const char *text)
{
    if (!s || !key || !text || strlen(text) > STORE_MEMO_TEXT_MAX || s->txn)
        return; /* inside a transaction the rows may still be rolled back */
    StoreMemo *m = memo_slot(s, job_id, key);
    char *k = strdup(key), *t = strdup(text);
    if (!k || !t) { /* a memo is an optimisation: without memory there is none */
        free(k);
        free(t);
        return;
    }
    free(m->key);
    free(m->text);
    m->job_id = job_id;
    m->gen = s->gen[(uint64_t)job_id % STORE_GEN_SLOTS];
    m->key = k;
    m->text = t;
}

/* ---- transactions ----------------------------------------------------------------------- */

int store_begin(Store *s, char *err)
{
    if (s->readonly)
        return ld_err(err, LD_EPERM, "store: begin: the database is open read-only");
    if (s->txn)
        return ld_err(err, LD_ESTATE, "store: begin: a transaction is already open");
    int rc = store_check_alive(s, err);
    if (rc != LD_OK)
        return rc;
    rc = exec(s, "BEGIN IMMEDIATE", "begin", err);
    if (rc == LD_OK)
        s->txn = 1;
    return rc;
}

int store_commit(Store *s, char *err)
{
    if (!s->txn)
        return ld_err(err, LD_ESTATE, "store: commit: no transaction is open");
    int rc = exec(s, "COMMIT", "commit", err);
    if (rc != LD_OK && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->txn = 0;
    return rc;
}

void store_rollback(Store *s)
{
    if (!s)
        return;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->txn = 0;
}

int store_in_transaction(const Store *s) { return s && s->txn; }

/* ---- jobs ------------------------------------------------------------------------------- */

int store_state_valid(const char *state)
{
    JobState st;
    return job_state_parse(state, &st) == LD_OK;
}

/* Runs an INSERT (store_step_done_); *id (when not NULL) gets the new row's id. */
static int step_insert(Store *s, sqlite3_stmt *st, int64_t *id, const char *what, char *err)
{
    int rc = store_step_done_(s, st, 0, what, err);
    if (rc == LD_OK && id)
        *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_job_insert(Store *s, const StoreJobNew *j, int64_t *job_id, int *existed, char *err)
{
    const char *what = "insert job";
    int own = 0, rc;
    sqlite3_stmt *st;
    if (existed)
        *existed = 0;
    if (!j->spec)
        return ld_err(err, LD_EINVAL, "store: insert job: spec is required");
    rc = store_wbegin_(s, &own, what, err);
    if (rc != LD_OK)
        return rc;
    if (j->client_token && *j->client_token) {
        if (!(st = store_stmt_(s, ST_JOB_BY_TOKEN, what, err))) {
            rc = LD_EIO;
            goto done;
        }
        sqlite3_bind_text(st, 1, j->client_token, -1, SQLITE_TRANSIENT);
        int found = 0;
        rc = store_step_id_(s, st, job_id, &found, what, err);
        if (found && existed)
            *existed = 1;
        if (rc != LD_OK || found)
            goto done;
    }
    if (!(st = store_stmt_(s, ST_JOB_INSERT, what, err))) {
        rc = LD_EIO;
        goto done;
    }
    store_bind_text_(st, 1, j->name);
    store_bind_json_(st, 2, j->spec);
    sqlite3_bind_int(st, 3, j->priority);
    sqlite3_bind_int64(st, 4, (int64_t)j->seed);
    sqlite3_bind_double(st, 5, ld_wall_s());
    if (j->schedule_id > 0)
        sqlite3_bind_int64(st, 6, j->schedule_id);
    store_bind_text_(st, 7, j->client_token);
    sqlite3_bind_int64(st, 8, j->budget_evals);
    rc = step_insert(s, st, job_id, what, err);
done:
    return store_wend_(s, own, rc, what, err);
}

int store_job_set_state(Store *s, int64_t job_id, const char *state, const char *error, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "set state of job %lld", (long long)job_id);
    if (!store_state_valid(state))
        return ld_err(err, LD_EINVAL, "store: %s: \"%s\" is not a job state", what,
                      state ? state : "(null)");
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_JOB_SET_STATE, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
    store_bind_text_(st, 3, error);
    sqlite3_bind_double(st, 4, ld_wall_s());
    rc = store_step_done_(s, st, 1, what, err);
    return store_wend_(s, own, rc, what, err);
}

int store_job_delete(Store *s, int64_t job_id, char *err)
{
    char what[64];
    int own = 0, rc;
    sqlite3_stmt *st;
    snprintf(what, sizeof what, "delete job %lld", (long long)job_id);
    store_touch_(s, job_id);
    rc = store_wstmt_(s, ST_JOB_EVENTS_DELETE, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    rc = store_step_done_(s, st, 0, what, err);
    if (rc == LD_OK) {
        st = store_stmt_(s, ST_JOB_DELETE, what, err); /* in the transaction opened above */
        rc = st ? LD_OK : LD_EIO;
        if (rc == LD_OK) {
            sqlite3_bind_int64(st, 1, job_id);
            rc = store_step_done_(s, st, 1, what, err);
            if (rc == LD_ENOTFOUND)
                ld_err(err, rc, "job %lld: not found", (long long)job_id);
        }
    }
    return store_wend_(s, own, rc, what, err);
}

int store_job_rename(Store *s, int64_t job_id, const char *name, char *err)
{
    char what[64];
    int own = 0, rc;
    sqlite3_stmt *st;
    snprintf(what, sizeof what, "rename job %lld", (long long)job_id);
    rc = store_wstmt_(s, ST_JOB_RENAME, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    store_bind_text_(st, 2, name);
    rc = store_step_done_(s, st, 1, what, err);
    if (rc == LD_ENOTFOUND)
        ld_err(err, rc, "job %lld: not found", (long long)job_id);
    return store_wend_(s, own, rc, what, err);
}

int store_job_update_progress(Store *s, int64_t job_id, int64_t evals_done, double best_fitness,
                              const cJSON *leaderboard, const cJSON *stats, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "update progress of job %lld", (long long)job_id);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_JOB_PROGRESS, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, evals_done);
    store_bind_real_(st, 3, best_fitness);
    store_bind_json_(st, 4, leaderboard);
    store_bind_json_(st, 5, stats);
    rc = store_step_done_(s, st, 1, what, err);
    return store_wend_(s, own, rc, what, err);
}

/* The job columns JOB_GET and JOB_LIST both select, state through best_fitness. */
static const StoreCol job_cols[] = {
    {"state", SCOL_STR},        {"priority", SCOL_INT},  {"seed", SCOL_SEED},
    {"created", SCOL_NUM},      {"started", SCOL_NUM},   {"finished", SCOL_NUM},
    {"schedule_id", SCOL_NUM},  {"client_token", SCOL_STR}, {"error", SCOL_STR},
    {"evals_done", SCOL_INT},   {"budget_evals", SCOL_INT}, {"best_fitness", SCOL_NUM},
};

/* A job summary from a row in the order JOB_LIST selects. */
static cJSON *job_summary(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    static const StoreCol head[] = {{"id", SCOL_INT}, {"name", SCOL_STR}};
    static const StoreCol tail[] = {
        {"best_expr", SCOL_STR}, {"elapsed_s", SCOL_NUM}, {"final_evaluations", SCOL_NUM}};
    store_cols_add_(o, st, 0, head, STORE_NCOLS(head));
    store_cols_add_(o, st, 2, job_cols, STORE_NCOLS(job_cols));
    store_cols_add_(o, st, 14, tail, STORE_NCOLS(tail));
    return o;
}

int store_job_get(Store *s, int64_t job_id, cJSON **out, char *err)
{
    char what[48];
    int rc = LD_OK, src;
    cJSON *o = NULL, *tasks = NULL;
    *out = NULL;
    snprintf(what, sizeof what, "get job %lld", (long long)job_id);
    sqlite3_stmt *st = store_stmt_(s, ST_JOB_GET, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: no such job", what);
        goto done;
    }
    if (src != SQLITE_ROW) {
        rc = store_sqlerr_(s, src, what, err);
        goto done;
    }
    o = cJSON_CreateObject();
    if (!o) {
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
        goto done;
    }
    static const StoreCol head[] = {{"id", SCOL_INT}, {"name", SCOL_STR}, {"spec", SCOL_JSON}};
    static const StoreCol tail[] = {{"leaderboard", SCOL_JSON}, {"stats", SCOL_JSON}};
    store_cols_add_(o, st, 0, head, STORE_NCOLS(head));
    store_cols_add_(o, st, 3, job_cols, STORE_NCOLS(job_cols));
    store_cols_add_(o, st, 15, tail, STORE_NCOLS(tail));
    sqlite3_reset(st);

    st = store_stmt_(s, ST_JOB_TASKS, what, err);
    if (!st) {
        rc = LD_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, job_id);
    tasks = cJSON_AddArrayToObject(o, "tasks");
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToArray(tasks, t);
        cJSON_AddNumberToObject(t, "id", (double)sqlite3_column_int64(st, 0));
        cJSON_AddItemToObject(t, "hash", store_hash_json_((uint64_t)sqlite3_column_int64(st, 1)));
        cJSON_AddItemToObject(t, "family", store_col_string_(st, 2));
        cJSON_AddItemToObject(t, "name", store_col_string_(st, 3));
        cJSON_AddItemToObject(t, "metric", store_col_string_(st, 4));
        cJSON_AddNumberToObject(t, "idx", sqlite3_column_int(st, 5));
        cJSON_AddBoolToObject(t, "holdout", sqlite3_column_int(st, 6));
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
done:
    if (st)
        sqlite3_reset(st);
    if (rc != LD_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return LD_OK;
}

int store_job_list(Store *s, const char *state, int limit, cJSON **out, char *err)
{
    *out = NULL;
    /* two statements, so that a state filter reads the jobs_state index */
    sqlite3_stmt *st = store_stmt_(s, state ? ST_JOB_LIST_STATE : ST_JOB_LIST, "list jobs", err);
    if (!st)
        return LD_EIO;
    if (state)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    return store_rows_array_(s, st, job_summary, out, "list jobs", err);
}

int store_job_counts(Store *s, int64_t counts[JOB_NSTATES], char *err)
{
    const char *what = "count jobs";
    int src;
    for (int i = 0; i < JOB_NSTATES; i++)
        counts[i] = 0;
    sqlite3_stmt *st = store_stmt_(s, ST_JOB_COUNTS, what, err);
    if (!st)
        return LD_EIO;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        JobState js;
        if (job_state_parse((const char *)sqlite3_column_text(st, 0), &js) == LD_OK)
            counts[js] = sqlite3_column_int64(st, 1);
    }
    int rc = src == SQLITE_DONE ? LD_OK : store_sqlerr_(s, src, what, err);
    sqlite3_reset(st);
    return rc;
}

int store_jobs_in_state(Store *s, const char *state, int64_t **ids, int *n, char *err)
{
    const char *what = "jobs in state";
    int64_t *v = NULL;
    int cnt = 0, cap = 0, src, rc = LD_OK;
    *ids = NULL;
    *n = 0;
    if (!store_state_valid(state))
        return ld_err(err, LD_EINVAL, "store: %s: \"%s\" is not a job state", what,
                      state ? state : "(null)");
    sqlite3_stmt *st = store_stmt_(s, ST_JOB_IN_STATE, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
                goto done;
            }
            v = nv;
        }
        v[cnt++] = sqlite3_column_int64(st, 0);
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
done:
    sqlite3_reset(st);
    if (rc != LD_OK) {
        free(v);
        return rc;
    }
    *ids = v;
    *n = cnt;
    return LD_OK;
}

int store_job_add_task(Store *s, int64_t job_id, int idx, int64_t task_id, int holdout, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "add task %lld to job %lld", (long long)task_id, (long long)job_id);
    sqlite3_stmt *st;
    store_touch_(s, job_id);
    rc = store_wstmt_(s, ST_JOB_ADD_TASK, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, idx);
    sqlite3_bind_int64(st, 3, task_id);
    sqlite3_bind_int(st, 4, holdout != 0);
    rc = store_step_done_(s, st, 0, what, err);
    return store_wend_(s, own, rc, what, err);
}

/* ---- tasks ------------------------------------------------------------------------------ */

int store_task_upsert(Store *s, uint64_t hash, const char *family, const char *name,
                      const char *metric, int higher_better, const cJSON *spec, int64_t *task_id,
                      char *err)
{
    const char *what = "upsert task";
    int own = 0, rc, found = 0;
    if (!family || !*family || !name)
        return ld_err(err, LD_EINVAL, "store: %s: family and name are required", what);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_TASK_BY_HASH, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, (int64_t)hash);
    rc = store_step_id_(s, st, task_id, &found, what, err);
    if (rc != LD_OK || found)
        goto done;
    if (!(st = store_stmt_(s, ST_TASK_INSERT, what, err))) {
        rc = LD_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, (int64_t)hash);
    sqlite3_bind_text(st, 2, family, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    store_bind_text_(st, 4, metric);
    sqlite3_bind_int(st, 5, higher_better != 0);
    store_bind_json_(st, 6, spec);
    sqlite3_bind_double(st, 7, ld_wall_s());
    rc = step_insert(s, st, task_id, what, err);
done:
    return store_wend_(s, own, rc, what, err);
}

/* ---- search state ----------------------------------------------------------------------- */

int store_state_put(Store *s, int64_t job_id, int64_t round, const cJSON *state, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "save search state of job %lld", (long long)job_id);
    if (!state)
        return ld_err(err, LD_EINVAL, "store: %s: no state", what);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_STATE_PUT, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, round);
    if (store_bind_json_(st, 3, state) != SQLITE_OK) {
        rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
        goto done;
    }
    sqlite3_bind_double(st, 4, ld_wall_s());
    rc = store_step_done_(s, st, 0, what, err);
done:
    return store_wend_(s, own, rc, what, err);
}

int store_state_get(Store *s, int64_t job_id, int64_t *round, cJSON **state, char *err)
{
    char what[64];
    int rc = LD_OK;
    *state = NULL;
    snprintf(what, sizeof what, "load search state of job %lld", (long long)job_id);
    sqlite3_stmt *st = store_stmt_(s, ST_STATE_GET, what, err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, job_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 1);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        if (!j)
            rc = ld_err(err, LD_EIO, "store: %s: stored state is not valid JSON", what);
        else {
            if (round)
                *round = sqlite3_column_int64(st, 0);
            *state = j;
        }
    } else if (src == SQLITE_DONE) {
        rc = ld_err(err, LD_ENOTFOUND, "store: %s: none saved", what);
    } else {
        rc = store_sqlerr_(s, src, what, err);
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- events ----------------------------------------------------------------------------- */

int store_event_append(Store *s, int64_t job_id, const char *kind, const cJSON *data, int64_t *seq,
                       char *err)
{
    const char *what = "append event";
    int own = 0, rc;
    if (!kind || !*kind)
        return ld_err(err, LD_EINVAL, "store: %s: kind is required", what);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_EVENT_APPEND, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_double(st, 1, ld_wall_s());
    if (job_id > 0)
        sqlite3_bind_int64(st, 2, job_id);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_TRANSIENT);
    store_bind_json_(st, 4, data);
    rc = step_insert(s, st, seq, what, err);
    return store_wend_(s, own, rc, what, err);
}

static const StoreCol event_cols[] = {
    {"seq", SCOL_INT}, {"time", SCOL_NUM}, {"job", SCOL_NUM}, {"kind", SCOL_STR}, {"data", SCOL_JSON}};

static cJSON *event_row(sqlite3_stmt *st) { return store_row_json_(st, event_cols, STORE_NCOLS(event_cols)); }

int store_events_since(Store *s, int64_t since_seq, int limit, cJSON **out, char *err)
{
    *out = NULL;
    sqlite3_stmt *st = store_stmt_(s, ST_EVENTS_SINCE, "read events", err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, since_seq);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 1000);
    return store_rows_array_(s, st, event_row, out, "read events", err);
}

int store_events_trim(Store *s, int64_t keep, char *err)
{
    const char *what = "trim events";
    int own = 0, rc;
    sqlite3_stmt *st;
    rc = store_wstmt_(s, ST_EVENTS_TRIM, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    if (keep <= 0) {
        rc = exec(s, "DELETE FROM events", what, err);
        goto done;
    }
    sqlite3_bind_int64(st, 1, keep);
    rc = store_step_done_(s, st, 0, what, err);
done:
    return store_wend_(s, own, rc, what, err);
}

/* ---- schedules -------------------------------------------------------------------------- */

int store_schedule_put(Store *s, const StoreSchedule *sc, int64_t *id, char *err)
{
    char what[64];
    int own = 0, rc;
    if (sc->id > 0)
        snprintf(what, sizeof what, "update schedule %lld", (long long)sc->id);
    else
        snprintf(what, sizeof what, "insert schedule");
    if (!sc->cron || !*sc->cron || !sc->job_template)
        return ld_err(err, LD_EINVAL, "store: %s: cron and job template are required", what);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, sc->id > 0 ? ST_SCHED_UPDATE : ST_SCHED_INSERT, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    if (sc->id > 0)
        sqlite3_bind_int64(st, 1, sc->id);
    store_bind_text_(st, 2, sc->name);
    sqlite3_bind_text(st, 3, sc->cron, -1, SQLITE_TRANSIENT);
    store_bind_text_(st, 4, sc->tz);
    if (sc->until > 0)
        sqlite3_bind_double(st, 5, sc->until);
    sqlite3_bind_int(st, 6, sc->catch_up != 0);
    sqlite3_bind_int(st, 7, sc->concurrency > 0 ? sc->concurrency : 1);
    store_bind_json_(st, 8, sc->job_template);
    sqlite3_bind_int(st, 9, sc->paused != 0);
    if (sc->last_fire > 0)
        sqlite3_bind_double(st, 10, sc->last_fire);
    if (sc->next_fire > 0)
        sqlite3_bind_double(st, 11, sc->next_fire);
    if (sc->id <= 0)
        sqlite3_bind_double(st, 12, ld_wall_s());
    rc = store_step_done_(s, st, sc->id > 0, what, err);
    if (rc == LD_OK && id)
        *id = sc->id > 0 ? sc->id : sqlite3_last_insert_rowid(s->db);
    return store_wend_(s, own, rc, what, err);
}

static const StoreCol schedule_cols[] = {
    {"id", SCOL_INT},         {"name", SCOL_STR},        {"cron", SCOL_STR},
    {"tz", SCOL_STR},         {"until", SCOL_NUM},       {"catch_up", SCOL_BOOL},
    {"concurrency", SCOL_INT}, {"job", SCOL_JSON},       {"paused", SCOL_BOOL},
    {"last_fire", SCOL_NUM},  {"next_fire", SCOL_NUM},   {"created", SCOL_NUM},
    {"runs", SCOL_INT},
};

static cJSON *schedule_row(sqlite3_stmt *st)
{
    return store_row_json_(st, schedule_cols, STORE_NCOLS(schedule_cols));
}

/* id > 0: that schedule (LD_ENOTFOUND when absent) as an object; else all as an array. */
static int schedules_read(Store *s, int64_t id, cJSON **out, char *err)
{
    char what[48];
    int src = SQLITE_DONE, rc = LD_OK;
    cJSON *res = NULL;
    *out = NULL;
    if (id > 0)
        snprintf(what, sizeof what, "get schedule %lld", (long long)id);
    else
        snprintf(what, sizeof what, "list schedules");
    sqlite3_stmt *st = store_stmt_(s, ST_SCHED_GET, what, err);
    if (!st)
        return LD_EIO;
    if (id > 0)
        sqlite3_bind_int64(st, 1, id);
    else
        res = cJSON_CreateArray();
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = schedule_row(st);
        if (id > 0)
            res = o;
        else
            cJSON_AddItemToArray(res, o);
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
    else if (!res)
        rc = id > 0 ? ld_err(err, LD_ENOTFOUND, "store: %s: no such schedule", what)
                    : ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    sqlite3_reset(st);
    if (rc != LD_OK) {
        cJSON_Delete(res);
        return rc;
    }
    *out = res;
    return LD_OK;
}

int store_schedule_get(Store *s, int64_t id, cJSON **out, char *err)
{
    if (id <= 0) {
        *out = NULL;
        return ld_err(err, LD_ENOTFOUND, "store: get schedule %lld: no such schedule", (long long)id);
    }
    return schedules_read(s, id, out, err);
}

int store_schedule_list(Store *s, cJSON **out, char *err) { return schedules_read(s, 0, out, err); }

/* Runs one cached single-row update keyed by ?1 = id, with an optional int ?2 and reals ?2/?3. */
static int schedule_update(Store *s, int stmt, int64_t id, const char *verb, int ival, double a,
                           double b, char *err)
{
    char what[64];
    int own = 0, rc;
    snprintf(what, sizeof what, "%s schedule %lld", verb, (long long)id);
    sqlite3_stmt *st;
    rc = store_wstmt_(s, stmt, &own, &st, what, err);
    if (rc != LD_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (stmt == ST_SCHED_PAUSE)
        sqlite3_bind_int(st, 2, ival != 0);
    if (stmt == ST_SCHED_FIRE) {
        if (a > 0)
            sqlite3_bind_double(st, 2, a);
        if (b > 0)
            sqlite3_bind_double(st, 3, b);
    }
    rc = store_step_done_(s, st, 1, what, err);
    if (rc == LD_ENOTFOUND)
        ld_err(err, rc, "store: %s: no such schedule", what);
    return store_wend_(s, own, rc, what, err);
}

int store_schedule_delete(Store *s, int64_t id, char *err)
{
    return schedule_update(s, ST_SCHED_DELETE, id, "delete", 0, 0, 0, err);
}

int store_schedule_set_paused(Store *s, int64_t id, int paused, char *err)
{
    return schedule_update(s, ST_SCHED_PAUSE, id, paused ? "pause" : "resume", paused, 0, 0, err);
}

int store_schedule_set_fire(Store *s, int64_t id, double last_fire, double next_fire, char *err)
{
    return schedule_update(s, ST_SCHED_FIRE, id, "set fire times of", 0, last_fire, next_fire, err);
}

int store_schedule_runs(Store *s, int64_t id, int limit, cJSON **out, char *err)
{
    *out = NULL;
    sqlite3_stmt *st = store_stmt_(s, ST_JOB_LIST_SCHED, "list schedule runs", err);
    if (!st)
        return LD_EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    return store_rows_array_(s, st, job_summary, out, "list schedule runs", err);
}

/* ---- maintenance ------------------------------------------------------------------------ */

int store_db_size(Store *s, int64_t *bytes, char *err)
{
    *bytes = 0;
    sqlite3_stmt *st = store_stmt_(s, ST_DB_SIZE, "database size", err);
    if (!st)
        return LD_EIO;
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        int rc = store_sqlerr_(s, src, "database size", err);
        sqlite3_reset(st);
        return rc;
    }
    *bytes = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    size_t n = strlen(s->real) + 5;
    char *wal = malloc(n);
    if (wal) {
        struct stat sb;
        snprintf(wal, n, "%s-wal", s->real);
        if (stat(wal, &sb) == 0)
            *bytes += (int64_t)sb.st_size;
        free(wal);
    }
    return LD_OK;
}

int store_query_plan(Store *s, const char *name, char **plan, char *err)
{
    int id = -1, rc = LD_OK, src;
    sqlite3_stmt *st = NULL;
    char *sql = NULL, *buf = NULL;
    size_t len = 0, cap = 0;
    int64_t parents[64];
    int depth[64], nparents = 0;
    *plan = NULL;
    for (int i = 0; name && i < ST_COUNT; i++)
        if (strcmp(name, stmt_name[i]) == 0)
            id = i;
    if (id < 0)
        return ld_err(err, LD_ENOTFOUND, "store: query plan: no statement named %s",
                      name ? name : "(null)");
    size_t n = strlen(stmt_sql[id]) + 32;
    sql = malloc(n);
    if (!sql) {
        rc = ld_err(err, LD_ENOMEM, "store: query plan %s: out of memory", name);
        goto done;
    }
    snprintf(sql, n, "EXPLAIN QUERY PLAN %s", stmt_sql[id]);
    src = prepare_fresh(s->db, sql, &st);
    if (src != SQLITE_OK) {
        rc = store_sqlerr_(s, src, "query plan: prepare", err);
        goto done;
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t node = sqlite3_column_int64(st, 0), parent = sqlite3_column_int64(st, 1);
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        int d = 0;
        for (int i = 0; i < nparents; i++)
            if (parents[i] == parent)
                d = depth[i] + 1;
        if (nparents < 64) {
            parents[nparents] = node;
            depth[nparents++] = d;
        }
        size_t need = len + (size_t)d * 2 + strlen(detail ? detail : "") + 2;
        if (need + 1 > cap) {
            cap = need * 2 + 256;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = ld_err(err, LD_ENOMEM, "store: query plan %s: out of memory", name);
                goto done;
            }
            buf = nb;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%*s%s\n", d * 2, "", detail ? detail : "");
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, "query plan", err);
done:
    sqlite3_finalize(st);
    free(sql);
    if (rc != LD_OK) {
        free(buf);
        return rc;
    }
    *plan = buf ? buf : strdup("");
    return LD_OK;
}
