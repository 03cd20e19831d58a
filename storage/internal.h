/* internal.h: what the storage module's .c files share: the Store struct, the cached statement list and
 * small helpers for binding and reading columns. Not for other modules (they use store.h). */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <sqlite3.h>
#include <sys/types.h>

#include "store.h"


/* The columns of a job summary (job_summary() in store.c reads them in this order): the job row,
 * then its winner, elapsed time and final re-evaluation count from the stored JSON. */
#define JOB_LIST_COLS                                                                              \
    "SELECT id, name, state, priority, seed, created, started, finished, schedule_id, "            \
    "client_token, error, evals_done, budget_evals, best_fitness, "                                \
    "json_extract(leaderboard, '$[0].expr'), json_extract(stats, '$.elapsed_s'), "                \
    "json_extract(stats, '$.final_evaluations') "

/* Every cached statement: name and SQL, written once. Statements that read are listed with the
 * ones that write; all are prepared lazily on first use and finalized by store_close. */
#define STORE_STMTS(X)                                                                             \
    X(JOB_INSERT, "INSERT INTO jobs(name, spec, priority, seed, created, schedule_id, "          \
                  "client_token, budget_evals) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")            \
    X(JOB_BY_TOKEN, "SELECT id FROM jobs WHERE client_token = ?1")                                \
    X(JOB_DELETE, "DELETE FROM jobs WHERE id = ?1")                                               \
    X(JOB_EVENTS_DELETE, "DELETE FROM events WHERE job_id = ?1")                                  \
    X(JOB_RENAME, "UPDATE jobs SET name = ?2 WHERE id = ?1")                                      \
    X(JOB_SET_STATE, "UPDATE jobs SET state = ?2, error = ?3, "                                   \
                     "started = CASE WHEN ?2 = 'running' AND started IS NULL THEN ?4 ELSE started END, " \
                     "finished = CASE WHEN ?2 IN ('done', 'failed', 'cancelled', 'expired') THEN ?4 " \
                     "WHEN ?2 IN ('queued', 'running', 'paused') THEN NULL ELSE finished END "   \
                     "WHERE id = ?1")                                                              \
    X(JOB_PROGRESS, "UPDATE jobs SET evals_done = ?2, best_fitness = ?3, "                        \
                    "leaderboard = coalesce(?4, leaderboard), stats = coalesce(?5, stats) "     \
                    "WHERE id = ?1")                                                               \
    X(JOB_GET, "SELECT id, name, spec, state, priority, seed, created, started, finished, "       \
               "schedule_id, client_token, error, evals_done, budget_evals, best_fitness, "      \
               "leaderboard, stats FROM jobs WHERE id = ?1")                                      \
    X(JOB_TASKS, "SELECT t.id, t.hash, t.family, t.name, t.metric, jt.idx, jt.holdout "          \
                 "FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id WHERE jt.job_id = ?1 "     \
                 "ORDER BY jt.idx")                                                                \
    X(JOB_LIST, JOB_LIST_COLS "FROM jobs ORDER BY id DESC LIMIT ?2")                              \
    X(JOB_LIST_STATE, JOB_LIST_COLS "FROM jobs WHERE state = ?1 ORDER BY id DESC LIMIT ?2")       \
    X(JOB_COUNTS, "SELECT state, count(*) FROM jobs GROUP BY state")                              \
    X(JOB_LIST_SCHED, JOB_LIST_COLS "FROM jobs WHERE schedule_id = ?1 ORDER BY id DESC LIMIT ?2") \
    X(JOB_IN_STATE, "SELECT id FROM jobs WHERE state = ?1 ORDER BY id")                          \
    X(JOB_ADD_TASK, "INSERT INTO job_tasks(job_id, idx, task_id, holdout) VALUES(?1, ?2, ?3, ?4) " \
                    "ON CONFLICT(job_id, idx) DO UPDATE SET task_id = excluded.task_id, "        \
                    "holdout = excluded.holdout")                                                  \
    X(TASK_BY_HASH, "SELECT id FROM tasks WHERE hash = ?1")                                       \
    X(TASK_INSERT, "INSERT INTO tasks(hash, family, name, metric, higher_better, spec, created) " \
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")                                          \
    X(STATE_PUT, "INSERT INTO search_state(job_id, round, state, updated) VALUES(?1, ?2, ?3, ?4) " \
                 "ON CONFLICT(job_id) DO UPDATE SET round = excluded.round, "                    \
                 "state = excluded.state, updated = excluded.updated")                            \
    X(STATE_GET, "SELECT round, state FROM search_state WHERE job_id = ?1")                       \
    X(EVENT_APPEND, "INSERT INTO events(time, job_id, kind, data) VALUES(?1, ?2, ?3, ?4)")       \
    X(EVENTS_SINCE, "SELECT seq, time, job_id, kind, data FROM events WHERE seq > ?1 "            \
                    "ORDER BY seq LIMIT ?2")                                                       \
    X(EVENTS_TRIM, "DELETE FROM events WHERE seq <= coalesce((SELECT seq FROM events "           \
                   "ORDER BY seq DESC LIMIT 1 OFFSET ?1), -1)")                                    \
    X(SCHED_INSERT, "INSERT INTO schedules(name, cron, tz, until, catch_up, concurrency, "        \
                    "template, paused, last_fire, next_fire, created) "                           \
                    "VALUES(?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")                      \
    X(SCHED_UPDATE, "UPDATE schedules SET name = ?2, cron = ?3, tz = ?4, until = ?5, "            \
                    "catch_up = ?6, concurrency = ?7, template = ?8, paused = ?9, "               \
                    "last_fire = ?10, next_fire = ?11 WHERE id = ?1")                             \
    X(SCHED_GET, "SELECT id, name, cron, tz, until, catch_up, concurrency, template, paused, "    \
                 "last_fire, next_fire, created, "                                                 \
                 "(SELECT count(*) FROM jobs WHERE schedule_id = schedules.id) "                  \
                 "FROM schedules WHERE ?1 IS NULL OR id = ?1 ORDER BY id")                        \
    X(SCHED_DELETE, "DELETE FROM schedules WHERE id = ?1")                                        \
    X(SCHED_PAUSE, "UPDATE schedules SET paused = ?2 WHERE id = ?1")                              \
    X(SCHED_FIRE, "UPDATE schedules SET last_fire = ?2, next_fire = ?3 WHERE id = ?1")            \
    X(CAND_INSERT, "INSERT INTO candidates(job_id, cand, expr, hash, size, parents, op, family, " \
                   "created, origin) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "                  \
                   "coalesce(?10, " STORE_SQL_ORIGIN("?7") ")) "                                  \
                   "ON CONFLICT(job_id, cand) DO NOTHING")                                         \
    X(CAND_ID, "SELECT id, hash FROM candidates WHERE job_id = ?1 AND cand = ?2")                 \
    X(CAND_FITNESS, "UPDATE candidates SET fitness = ?3, tier = ?4 WHERE job_id = ?1 AND cand = ?2") \
    X(CAND_SET_FINAL, "UPDATE candidates SET final = ?3 WHERE job_id = ?1 AND cand = ?2")        \
    X(CAND_FINAL, "SELECT final FROM candidates WHERE job_id = ?1 AND cand = ?2")                 \
    X(CAND_GET, "SELECT id, cand, expr, hash, size, op, family, fitness, parents, created, "     \
                "origin FROM candidates WHERE job_id = ?1 AND cand = ?2")                         \
    X(EVAL_PUT, "INSERT INTO evaluations(job_id, seq, candidate_id, task_id, expr_hash, seed, "  \
                "steps, steps_run, status, metric, val, test, final_loss, metrics, curve, "      \
                "wall_ms, error, created) "                                                        \
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, " \
                "?17, ?18) ON CONFLICT(job_id, seq) DO UPDATE SET candidate_id = excluded.candidate_id, " \
                "task_id = excluded.task_id, expr_hash = excluded.expr_hash, seed = excluded.seed, " \
                "steps = excluded.steps, steps_run = excluded.steps_run, status = excluded.status, " \
                "metric = excluded.metric, val = excluded.val, test = excluded.test, "           \
                "final_loss = excluded.final_loss, metrics = excluded.metrics, "                 \
                "curve = excluded.curve, wall_ms = excluded.wall_ms, error = excluded.error, "   \
                "created = excluded.created WHERE evaluations.status = 'interrupted'")            \
    X(TASK_EXISTS, "SELECT 1 FROM tasks WHERE id = ?1")                                           \
    X(EVAL_BY_SEQ, "SELECT status, metric, val, test, steps_run, wall_ms, final_loss, curve, "   \
                   "metrics, error FROM evaluations WHERE job_id = ?1 AND seq = ?2 "             \
                   "AND status <> 'interrupted'")                                                  \
    X(EVAL_LOOKUP, "SELECT e.status, e.metric, e.val, e.test, e.steps_run, e.wall_ms, "         \
                   "e.final_loss, e.curve, e.metrics, e.error FROM evaluations e "               \
                   "JOIN tasks t ON t.id = e.task_id WHERE e.expr_hash = ?1 AND t.hash = ?2 "    \
                   "AND e.seed = ?3 AND e.steps = ?4 AND e.status <> 'interrupted' "             \
                   "ORDER BY e.status = 'ok' DESC, e.id DESC LIMIT 1")                                                   \
    X(EVALS_OF_CAND, "SELECT e.seq, t.name, t.hash, e.seed, e.steps, e.steps_run, e.status, "    \
                     "e.metric, e.val, e.test, e.final_loss, e.metrics, e.curve, e.wall_ms, "    \
                     "e.error, c.cand FROM evaluations e JOIN tasks t ON t.id = e.task_id "      \
                     "JOIN candidates c ON c.id = e.candidate_id WHERE e.candidate_id = ?1 "     \
                     "ORDER BY e.seq")                                                             \
    X(EVALS_OF_JOB, "SELECT e.seq, t.name, t.hash, e.seed, e.steps, e.steps_run, e.status, "     \
                    "e.metric, e.val, e.test, e.final_loss, e.metrics, e.curve, e.wall_ms, "     \
                    "e.error, c.cand FROM evaluations e JOIN tasks t ON t.id = e.task_id "       \
                    "JOIN candidates c ON c.id = e.candidate_id WHERE e.job_id = ?1 "            \
                    "AND e.seq > ?2 ORDER BY e.seq LIMIT ?3")                                     \
    X(EVALS_COUNT, "SELECT count(*) FROM evaluations WHERE job_id = ?1 "                          \
                   "AND status <> 'interrupted'")                                                  \
    X(EVALS_COUNTED, "SELECT count(*) FROM evaluations WHERE job_id = ?1 "                      \
                     "AND status <> 'interrupted' "                                                \
                     "AND (error IS NULL OR substr(error, 1, length(?2)) <> ?2)")                \
    X(LB_JOB, "SELECT id, cand, expr, hash, size, op, family, fitness, parents, NULL, origin "  \
              "FROM candidates "                                                                   \
              "WHERE job_id = ?1 AND fitness IS NOT NULL ORDER BY tier DESC, fitness DESC, cand LIMIT ?2")  \
    X(LB_CAND_TASKS, "SELECT e.task_id, t.hash, t.name, "                                        \
                     "(SELECT max(jt.holdout) FROM job_tasks jt WHERE jt.job_id = e.job_id "     \
                     "AND jt.task_id = e.task_id), e.metric, e.steps, count(e.val), "            \
                     "sum(e.val), sum(e.val * e.val), count(e.test), sum(e.test), "              \
                     "sum(e.test * e.test), t.higher_better FROM evaluations e "                 \
                     "JOIN tasks t ON t.id = e.task_id WHERE e.candidate_id = ?1 AND e.status = 'ok' " \
                     "GROUP BY e.task_id, e.steps ORDER BY e.task_id, e.steps DESC")             \
    X(LB_FAMILY, STORE_SQL_FAMILY)                                                                 \
    X(LB_FAMILY_METRIC, STORE_SQL_FAMILY_METRIC)                                                   \
    X(PRIOR_ROWS, STORE_SQL_PRIOR)                                                                 \
    X(LB_FAMILY_EXPR, "SELECT (SELECT expr FROM candidates WHERE hash = ?1 LIMIT 1), "             \
                      "(SELECT count(DISTINCT job_id) FROM candidates WHERE hash = ?1)")          \
    X(DB_SIZE, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")     \
    X(PROP_PUT, "INSERT INTO proposals(job_id, pseq, point, expr, source, note, status, cand, "  \
                "detail, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")               \
    X(PROP_COUNT, "SELECT count(*) FROM proposals WHERE job_id = ?1")                            \
    X(PROP_FROM, "SELECT pseq, point, expr, source FROM proposals WHERE job_id = ?1 "            \
                 "AND pseq >= ?2 ORDER BY pseq")

/* A candidate's origin from the operation that made it (op, an SQL expression), for candidates
 * stored without one: the losses a job starts from are "seed", earlier searches' "warm", the
 * rest the search's (search.c's cand_origin gives the engine's, "proposed:<source>" included). */
#define STORE_SQL_ORIGIN(op)                                                                       \
    "CASE WHEN " op " IN ('baseline', 'panel', 'seed', 'known') THEN 'seed' "                     \
    "WHEN " op " = 'warm' THEN 'warm' ELSE 'search' END"

/* What the family ranking reads (store_leaderboard_family, store_warm_start; the ranking
 * itself is computed in store_results.c). ?1 family, ?2 metric or NULL, ?3 task hash or NULL.
 * One row per (task, expression): the mean validation and test values over the "ok"
 * evaluations at the highest fidelity that expression reached on that task. SQLite: with one
 * max(), bare columns come from the row holding the maximum. The IN list walks result_stats in
 * key order, so the GROUP BY needs no sort. */
#define STORE_SQL_FAMILY                                                                           \
    "SELECT rs.task_id, rs.expr_hash, max(rs.steps), rs.sum_val / rs.n, "                        \
    "  CASE WHEN rs.n_test > 0 THEN rs.sum_test / rs.n_test END, rs.n, "                        \
    "  (SELECT higher_better FROM tasks WHERE id = rs.task_id) "                                  \
    "FROM result_stats rs WHERE rs.task_id IN (SELECT id FROM tasks WHERE family = ?1 "         \
    "  AND (?3 IS NULL OR hash = ?3)) AND (?2 IS NULL OR rs.metric = ?2) "                       \
    "GROUP BY rs.task_id, rs.expr_hash"

/* The same rows for one named metric (?2, its direction ?4): tasks whose own metric it is from
 * result_stats as above; the others from the metric's entry in the "ok" evaluations' metrics
 * (every metric of the family: balanced_accuracy, macro_f1, ece, ...) at the highest fidelity
 * that expression reached on the task. */
#define STORE_SQL_FAMILY_METRIC                                                                    \
    "SELECT rs.task_id, rs.expr_hash, max(rs.steps), rs.sum_val / rs.n, "                        \
    "  CASE WHEN rs.n_test > 0 THEN rs.sum_test / rs.n_test END, rs.n, "                        \
    "  (SELECT higher_better FROM tasks WHERE id = rs.task_id) "                                  \
    "FROM result_stats rs WHERE rs.task_id IN (SELECT id FROM tasks WHERE family = ?1 "         \
    "  AND (?3 IS NULL OR hash = ?3)) AND rs.metric = ?2 "                                       \
    "GROUP BY rs.task_id, rs.expr_hash "                                                          \
    "UNION ALL "                                                                                  \
    "SELECT task_id, expr_hash, steps, avg(v), avg(te), count(*), ?4 FROM ("                     \
    "  SELECT e.task_id, e.expr_hash, e.steps, json_extract(m.value, '$.val') AS v, "           \
    "    json_extract(m.value, '$.test') AS te, "                                                 \
    "    max(e.steps) OVER (PARTITION BY e.task_id, e.expr_hash) AS top "                        \
    "  FROM evaluations e JOIN tasks t ON t.id = e.task_id, json_each(e.metrics) m "             \
    "  WHERE t.family = ?1 AND (?3 IS NULL OR t.hash = ?3) AND coalesce(t.metric, '') <> ?2 "    \
    "    AND e.status = 'ok' AND json_extract(m.value, '$.name') = ?2 "                          \
    "    AND json_extract(m.value, '$.val') IS NOT NULL) "                                         \
    "WHERE steps = top GROUP BY task_id, expr_hash"

/* What the learned pre-screen learns from (store_prior_read): ?1 family, ?2 the most rows, ?3 a
 * task hash whose rows come first (the new job's first task; NULL: none). Each
 * earlier job's selection tasks of the family at the job's first fidelity level (its fewest steps
 * with an "ok" run there), one row per candidate with a finished run there: the job, task row,
 * task hash, direction, spec, steps, cand, whether it is a reference (the job's baseline or a
 * panel loss), its expression, runs "ok", runs failed (not rejections before training), the mean
 * validation value of the "ok" ones. The task ?3's rows first, then newest jobs first; within a
 * job by task and cand. */
#define STORE_SQL_PRIOR                                                                            \
    "WITH lv AS (SELECT e.job_id, e.task_id, min(e.steps) AS steps FROM tasks t "                 \
    "  JOIN evaluations e ON e.task_id = t.id AND e.status = 'ok' "                               \
    "  JOIN job_tasks jt ON jt.job_id = e.job_id AND jt.task_id = t.id AND jt.holdout = 0 "       \
    "  WHERE t.family = ?1 GROUP BY e.job_id, e.task_id) "                                        \
    "SELECT lv.job_id, t.id, t.hash, t.higher_better, t.spec, lv.steps, c.cand, "                  \
    "  c.op IN ('baseline', 'panel'), c.expr, sum(e.status = 'ok' AND e.val IS NOT NULL) AS nok, " \
    "  sum(e.status = 'failed' AND coalesce(e.error, '') NOT LIKE '" STORE_REJECTED_PREFIX "%') AS nf, " \
    "  avg(CASE WHEN e.status = 'ok' THEN e.val END) "                                            \
    "FROM lv JOIN tasks t ON t.id = lv.task_id JOIN candidates c ON c.job_id = lv.job_id "        \
    "  JOIN evaluations e ON e.candidate_id = c.id AND e.task_id = lv.task_id AND e.steps = lv.steps " \
    "GROUP BY lv.job_id, lv.task_id, c.cand HAVING nok + nf > 0 "                                 \
    "ORDER BY t.hash IS ?3 DESC, lv.job_id DESC, lv.task_id, c.cand LIMIT ?2"

enum {
#define STORE_STMT_ENUM(id, sql) ST_##id,
    STORE_STMTS(STORE_STMT_ENUM)
#undef STORE_STMT_ENUM
    ST_COUNT
};

/* Text derived from one job's rows (store_memo_get): kept until a write touches the job. */
#define STORE_GEN_SLOTS 1024 /* write counters, a job's at job_id % STORE_GEN_SLOTS */
#define STORE_MEMO_SLOTS 256
#define STORE_MEMO_TEXT_MAX (1 << 20)
typedef struct StoreMemo {
    int64_t job_id;
    uint64_t gen; /* the job's write counter when the text was made */
    char *key, *text;
} StoreMemo;

struct Store {
    sqlite3 *db;
    char *path;
    int readonly;
    int txn;     /* inside store_begin */
    char *real;  /* path with symlinks resolved: what SQLite opens and the lock is on */
    int lock_fd; /* a descriptor of the database file holding the writer's flock; -1 for readers */
    dev_t dev;   /* the locked file's identity, to notice it unlinked or replaced */
    ino_t ino;
    uint64_t faults; /* storage failures so far (store_faults) */
    sqlite3_stmt *st[ST_COUNT];
    /* Writes per job slot: raised before every write of a job's candidates, evaluations,
     * tasks or the job's deletion (store_touch_), so a memo made before it no longer matches.
     * Jobs sharing a slot only drop each other's memos more often. */
    uint64_t gen[STORE_GEN_SLOTS];
    StoreMemo memo[STORE_MEMO_SLOTS];
};

/* Marks job_id's derived texts (store_memo_get) out of date: called by every write that may
 * change what its leaderboard shows. */
static inline void store_touch_(Store *s, int64_t job_id)
{
    s->gen[(uint64_t)job_id % STORE_GEN_SLOTS]++;
}

/* Returns the cached statement id, reset and with bindings cleared, or NULL with err set
 * ("store: what: prepare: why"). */
sqlite3_stmt *store_stmt_(Store *s, int id, const char *what, char *err);
/* A bind that fails (SQLite could not copy the text: out of memory) must fail the statement, not
 * leave NULL in the parameter (a NOT NULL error at best, a NULL stored or a lookup that finds
 * nothing at worst). Every text bind in storage/ goes through store_bind_text_checked_, which
 * remembers a failure; every step through store_step_checked_, which then fails with
 * SQLITE_NOMEM without running. store_stmt_ clears the mark. (Found by the allocation-fault
 * sweep: tests/test_faults_daemon.py.) */
int store_bind_text_checked_(sqlite3_stmt *st, int i, const char *text, int n, void (*del)(void *));
int store_step_checked_(sqlite3_stmt *st);
void store_bind_mark_(int failed);
#define sqlite3_bind_text(st, i, text, n, del) store_bind_text_checked_(st, i, text, n, del)
#define sqlite3_step(st) store_step_checked_(st)

/* The fault-injection VFS's name when LOSSD_FAULT or LOSSD_FAULT_FILE is set (registered on the
 * first call), else NULL: a test hook (faultvfs.c, docs/reliability.md). */
const char *store_faultvfs_(void);
/* Maps the handle's last SQLite error to an LD_* code and writes "store: what: message". */
int store_sqlerr_(Store *s, int rc, const char *what, char *err);
/* Opens a write transaction unless one is open (*own set to 1 when it did). LD_EPERM on a
 * read-only handle. */
int store_wbegin_(Store *s, int *own, const char *what, char *err);
/* Ends what store_wbegin_ opened: commits when rc is LD_OK, else rolls back. Returns rc, or the
 * commit's error. */
int store_wend_(Store *s, int own, int rc, const char *what, char *err);

/* Opens a write transaction (store_wbegin_) and gives the cached statement id in *st; when the
 * statement cannot be had, ends what it opened and returns LD_EIO. */
int store_wstmt_(Store *s, int id, int *own, sqlite3_stmt **st, const char *what, char *err);
/* Runs a statement that returns no rows (or ignores them) and resets it; 1 changed row
 * expected when need_change (LD_ENOTFOUND "store: what: not found" otherwise). */
int store_step_done_(Store *s, sqlite3_stmt *st, int need_change, const char *what, char *err);
/* Steps a statement that selects an id in column 0 once and resets it: *found 1 and *id set
 * when a row came, *found 0 when none. */
int store_step_id_(Store *s, sqlite3_stmt *st, int64_t *id, int *found, const char *what,
                   char *err);
/* Steps st (bound) to its end, appending row(st) for every row to arr (borrowed; NULL: out of
 * memory), and resets it. */
int store_rows_(Store *s, sqlite3_stmt *st, cJSON *(*row)(sqlite3_stmt *), cJSON *arr,
                const char *what, char *err);
/* store_rows_ into a new array: *out owned on LD_OK, NULL otherwise. */
int store_rows_array_(Store *s, sqlite3_stmt *st, cJSON *(*row)(sqlite3_stmt *), cJSON **out,
                      const char *what, char *err);

/* Binding and reading helpers. JSON is bound as compact text (NULL json: SQL NULL); NaN doubles
 * bind as NULL and NULL columns read back as NaN. */
int store_bind_json_(sqlite3_stmt *st, int i, const cJSON *json);
int store_bind_text_(sqlite3_stmt *st, int i, const char *text); /* NULL or "": SQL NULL */
int store_bind_real_(sqlite3_stmt *st, int i, double v);
double store_col_real_(sqlite3_stmt *st, int i);
cJSON *store_col_json_(sqlite3_stmt *st, int i);      /* owned; JSON null for SQL NULL */
cJSON *store_col_number_(sqlite3_stmt *st, int i);    /* owned; null for SQL NULL or NaN */
cJSON *store_col_string_(sqlite3_stmt *st, int i);    /* owned; null for SQL NULL */
cJSON *store_col_array_(sqlite3_stmt *st, int i);     /* owned JSON; [] for SQL NULL */
cJSON *store_hash_json_(uint64_t h);                  /* owned; 16 hex digits */
cJSON *store_seed_json_(uint64_t seed);               /* owned; number, string above 2^53 */
cJSON *store_number_(double v);                       /* owned; null for NaN */

/* A row reader as data: each column a SELECT reads, in its order, is one row of a StoreCol
 * table (the member's name and how the column becomes JSON), and one function reads them all. */
typedef enum {
    SCOL_INT,  /* integer column: a number */
    SCOL_NUM,  /* store_col_number_: null for SQL NULL */
    SCOL_STR,  /* store_col_string_ */
    SCOL_JSON, /* store_col_json_ */
    SCOL_BOOL, /* integer column: true or false */
    SCOL_HASH, /* store_hash_json_ */
    SCOL_SEED, /* store_seed_json_ */
} StoreColKind;
typedef struct StoreCol {
    const char *name;
    StoreColKind kind;
} StoreCol;
/* Adds columns first .. first + n - 1 of st's current row to o, column first + i as cols[i]
 * says. Borrows st and cols; o gets the new members. */
void store_cols_add_(cJSON *o, sqlite3_stmt *st, int first, const StoreCol *cols, int n);
/* The same into a new object (owned; NULL when out of memory): a row reader is one call. */
cJSON *store_row_json_(sqlite3_stmt *st, const StoreCol *cols, int n);
#define STORE_NCOLS(cols) ((int)(sizeof(cols) / sizeof((cols)[0])))

#endif
