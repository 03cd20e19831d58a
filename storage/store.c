/* store.c: SQLite implementation of store.h (first stub: every call is "not implemented"). */
#include "store.h"

int store_open(const char *path, int flags, Store **out, char *err)
{
    (void)path;
    (void)flags;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: open: not implemented");
}

void store_close(Store *s)
{
    (void)s;
}

int store_begin(Store *s, char *err)
{
    (void)s;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: begin: not implemented");
}

int store_commit(Store *s, char *err)
{
    (void)s;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: commit: not implemented");
}

void store_rollback(Store *s)
{
    (void)s;
}

int store_in_transaction(const Store *s)
{
    (void)s;
    return 0;
}

int store_state_valid(const char *state)
{
    (void)state;
    return 0;
}

int store_job_insert(Store *s, const StoreJobNew *j, int64_t *job_id, int *existed, char *err)
{
    (void)s;
    (void)j;
    (void)job_id;
    (void)existed;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_insert: not implemented");
}

int store_job_set_state(Store *s, int64_t job_id, const char *state, const char *error, char *err)
{
    (void)s;
    (void)job_id;
    (void)state;
    (void)error;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_set_state: not implemented");
}

int store_job_update_progress(Store *s, int64_t job_id, int64_t evals_done, double best_fitness, const cJSON *leaderboard, const cJSON *stats, char *err)
{
    (void)s;
    (void)job_id;
    (void)evals_done;
    (void)best_fitness;
    (void)leaderboard;
    (void)stats;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_update_progress: not implemented");
}

int store_job_get(Store *s, int64_t job_id, cJSON **out, char *err)
{
    (void)s;
    (void)job_id;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_get: not implemented");
}

int store_job_list(Store *s, const char *state, int limit, cJSON **out, char *err)
{
    (void)s;
    (void)state;
    (void)limit;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_list: not implemented");
}

int store_jobs_in_state(Store *s, const char *state, int64_t **ids, int *n, char *err)
{
    (void)s;
    (void)state;
    (void)ids;
    (void)n;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: jobs_in_state: not implemented");
}

int store_job_add_task(Store *s, int64_t job_id, int idx, int64_t task_id, int holdout, char *err)
{
    (void)s;
    (void)job_id;
    (void)idx;
    (void)task_id;
    (void)holdout;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: job_add_task: not implemented");
}

int store_task_upsert(Store *s, uint64_t hash, const char *family, const char *name, const char *metric, int higher_better, const cJSON *spec, int64_t *task_id, char *err)
{
    (void)s;
    (void)hash;
    (void)family;
    (void)name;
    (void)metric;
    (void)higher_better;
    (void)spec;
    (void)task_id;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: task_upsert: not implemented");
}

int store_candidate_put(Store *s, int64_t job_id, int64_t cand, const char *expr, uint64_t hash, int size, const cJSON *parents, const char *op, const char *family, int64_t *row_id, char *err)
{
    (void)s;
    (void)job_id;
    (void)cand;
    (void)expr;
    (void)hash;
    (void)size;
    (void)parents;
    (void)op;
    (void)family;
    (void)row_id;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: candidate_put: not implemented");
}

int store_candidate_set_fitness(Store *s, int64_t job_id, int64_t cand, double fitness, char *err)
{
    (void)s;
    (void)job_id;
    (void)cand;
    (void)fitness;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: candidate_set_fitness: not implemented");
}

int store_candidate_get(Store *s, int64_t job_id, int64_t cand, cJSON **out, char *err)
{
    (void)s;
    (void)job_id;
    (void)cand;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: candidate_get: not implemented");
}

int store_eval_put(Store *s, const StoreEvalKey *k, const EvalResult *r, int *inserted, char *err)
{
    (void)s;
    (void)k;
    (void)r;
    (void)inserted;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: eval_put: not implemented");
}

int store_eval_get_seq(Store *s, int64_t job_id, int64_t seq, int *found, EvalResult *out, char *err)
{
    (void)s;
    (void)job_id;
    (void)seq;
    (void)found;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: eval_get_seq: not implemented");
}

int store_result_lookup(Store *s, uint64_t expr_hash, uint64_t task_hash, uint64_t seed, int steps, int *found, EvalResult *out, char *err)
{
    (void)s;
    (void)expr_hash;
    (void)task_hash;
    (void)seed;
    (void)steps;
    (void)found;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: result_lookup: not implemented");
}

int store_evals_for_job(Store *s, int64_t job_id, int64_t since_seq, int limit, cJSON **out, char *err)
{
    (void)s;
    (void)job_id;
    (void)since_seq;
    (void)limit;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: evals_for_job: not implemented");
}

int store_evals_count(Store *s, int64_t job_id, int64_t *n, char *err)
{
    (void)s;
    (void)job_id;
    (void)n;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: evals_count: not implemented");
}

int store_state_put(Store *s, int64_t job_id, int64_t round, const cJSON *state, char *err)
{
    (void)s;
    (void)job_id;
    (void)round;
    (void)state;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: state_put: not implemented");
}

int store_state_get(Store *s, int64_t job_id, int64_t *round, cJSON **state, char *err)
{
    (void)s;
    (void)job_id;
    (void)round;
    (void)state;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: state_get: not implemented");
}

int store_leaderboard_job(Store *s, int64_t job_id, int k, cJSON **out, char *err)
{
    (void)s;
    (void)job_id;
    (void)k;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: leaderboard_job: not implemented");
}

int store_leaderboard_family(Store *s, const char *family, int k, const char *metric, cJSON **out, char *err)
{
    (void)s;
    (void)family;
    (void)k;
    (void)metric;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: leaderboard_family: not implemented");
}

int store_warm_start(Store *s, const char *family, uint64_t task_hash, int k, char ***exprs, int *n, char *err)
{
    (void)s;
    (void)family;
    (void)task_hash;
    (void)k;
    (void)exprs;
    (void)n;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: warm_start: not implemented");
}

void store_strv_free(char **v, int n)
{
    (void)v;
    (void)n;
}

int store_event_append(Store *s, int64_t job_id, const char *kind, const cJSON *data, int64_t *seq, char *err)
{
    (void)s;
    (void)job_id;
    (void)kind;
    (void)data;
    (void)seq;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: event_append: not implemented");
}

int store_events_since(Store *s, int64_t since_seq, int limit, cJSON **out, char *err)
{
    (void)s;
    (void)since_seq;
    (void)limit;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: events_since: not implemented");
}

int store_events_trim(Store *s, int64_t keep, char *err)
{
    (void)s;
    (void)keep;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: events_trim: not implemented");
}

int store_schedule_put(Store *s, const StoreSchedule *sc, int64_t *id, char *err)
{
    (void)s;
    (void)sc;
    (void)id;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_put: not implemented");
}

int store_schedule_get(Store *s, int64_t id, cJSON **out, char *err)
{
    (void)s;
    (void)id;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_get: not implemented");
}

int store_schedule_list(Store *s, cJSON **out, char *err)
{
    (void)s;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_list: not implemented");
}

int store_schedule_delete(Store *s, int64_t id, char *err)
{
    (void)s;
    (void)id;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_delete: not implemented");
}

int store_schedule_set_paused(Store *s, int64_t id, int paused, char *err)
{
    (void)s;
    (void)id;
    (void)paused;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_set_paused: not implemented");
}

int store_schedule_set_fire(Store *s, int64_t id, double last_fire, double next_fire, char *err)
{
    (void)s;
    (void)id;
    (void)last_fire;
    (void)next_fire;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_set_fire: not implemented");
}

int store_schedule_runs(Store *s, int64_t id, int limit, cJSON **out, char *err)
{
    (void)s;
    (void)id;
    (void)limit;
    (void)out;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: schedule_runs: not implemented");
}

int store_db_size(Store *s, int64_t *bytes, char *err)
{
    (void)s;
    (void)bytes;
    (void)err;
    return ld_err(err, LD_ESTATE, "store: db_size: not implemented");
}

int store_schema_version(void)
{
    return 0;
}
