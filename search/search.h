/* search.h: the loss search engine. Pure and deterministic: it never touches a socket, a thread
 * or a file. The caller (lossd search, or the daemon) asks for a round of evaluations, runs them
 * however it likes (any number of worker threads), and hands the results back in the round's
 * order. The same job, seed and results give the same proposals, whatever the worker count. */
#ifndef SEARCH_H
#define SEARCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../evaluator/eval.h"
#include "expr.h"

/* A parsed, validated job (docs/jobs.md). */
typedef struct SearchJob SearchJob;

/* Parses and validates a job. Every problem is named, joined by "; " in err (LD_ERR_MAX; when
 * they do not fit, the first ones and a count): "tasks: missing; space.max_nodes: must be at
 * least 3". Tasks are loaded here (data files read), relative paths against base_dir.
 * Returns LD_OK and an owned job, or LD_EINVAL. Borrows json. */
int job_parse(const cJSON *json, const char *base_dir, SearchJob **out, char *err);
void job_free(SearchJob *j);
cJSON *job_json(const SearchJob *j); /* returns owned normalised job (defaults filled in) */
int job_ntasks(const SearchJob *j);  /* selection tasks followed by holdout tasks */
const Task *job_task(const SearchJob *j, int i);
int job_is_holdout(const SearchJob *j, int i);
int job_budget_evals(const SearchJob *j);
double job_budget_seconds(const SearchJob *j); /* 0: none */
uint64_t job_seed(const SearchJob *j);
const char *job_name(const SearchJob *j);

/* One evaluation the engine wants run. */
typedef struct SearchWork {
    int64_t seq;                /* dense sequence number over the whole search */
    int64_t cand;               /* job-local candidate id */
    int task;                   /* index into the job's tasks */
    uint64_t seed;              /* EvalOpts.seed */
    int steps;                  /* EvalOpts.steps (fidelity) */
    char expr[EXPR_TEXT_MAX];   /* canonical expression text */
    int precheck;               /* 1: run eval_precheck before training (see search_run_work) */
} SearchWork;

/* Runs one work (thread-safe, no engine state): parses w->expr and, when w->precheck is set,
 * runs eval_precheck first; a loss that fails it is not trained and res gets ok = 0, steps = 0
 * and an error starting with SEARCH_REJECTED ("rejected before training: ..."), which the
 * engine counts as a rejection, not as an evaluation. Otherwise eval_run. Always fills res.
 * Callers that run works themselves should do the same (or call this). Borrows job and w. */
#define SEARCH_REJECTED "rejected before training: "
void search_run_work(const SearchJob *job, const SearchWork *w, EvalResult *res);

typedef struct Search Search;

/* Starts a search for job. warm (may be NULL, n_warm 0) lists expressions from earlier
 * searches to seed the population with (warm starts). Returns owned engine or NULL with err.
 * Borrows job, which must outlive the engine. */
Search *search_new(const SearchJob *job, const char *const *warm, int n_warm, char *err);
void search_free(Search *s);

/* The next round of evaluations. Returns the number of works in *works (owned by the engine,
 * valid until search_finish_round), or 0 when the search is complete. Calling it again without
 * finishing the round returns the same round. */
int search_round(Search *s, const SearchWork **works);
/* Hands back results[i] for works[i] of the current round, all of them, in order. */
int search_finish_round(Search *s, const EvalResult *results, char *err);
int search_done(const Search *s);

/* Optional: results the caller already has (e.g. the database's cross-job result cache,
 * store_result_lookup). While building a round the engine calls fn for each evaluation it is
 * about to schedule (w->seq is -1 then; expr_hash is expr_hash of w->expr); when fn returns 1
 * and fills *out, that result is used as if it had been trained: it is not returned as work and
 * does not count against budget.evaluations (reported as result_cache_hits). fn runs on the
 * caller's thread, inside search_round. Set it right after search_new / search_restore. */
/* Where eval_precheck runs. Off (the default): inside the engine, before a candidate is
 * scheduled, and works never carry precheck. On: the caller promises to honour
 * SearchWork.precheck in its workers (search_run_work does), which keeps the pre-check's cost
 * (about 0.5 ms a candidate) off the caller's loop. The two settings make different, each
 * deterministic, searches; set it right after search_new / search_restore, the same way every
 * time for a given job. */
void search_set_worker_precheck(Search *s, int on);

typedef int (*SearchLookupFn)(void *ctx, const SearchWork *w, uint64_t expr_hash, EvalResult *out);
void search_set_lookup(Search *s, SearchLookupFn fn, void *ctx);
/* The caller stops the search early (wall-clock budget, cancel): final re-evaluation on the
 * holdout tasks still happens in the rounds that follow unless hard is set. */
void search_stop(Search *s, int hard);

/* State at a round boundary, for resuming after a crash: owned JSON that search_restore takes
 * back to an engine that proposes exactly what the saved one would have. */
cJSON *search_save(const Search *s);
Search *search_restore(const SearchJob *job, const cJSON *state, char *err);

/* The leaderboard so far, best first, at most k entries (owned JSON array). Each entry: expr,
 * cand, fitness, size, per-task metrics, mean and spread over seeds, baseline comparison,
 * parents and the operation that made it. */
cJSON *search_leaderboard(const Search *s, int k);
/* Counters: evaluations, cache_hits, signature_hits, rejections, promotions, ... (owned). */
cJSON *search_stats(const Search *s);
/* Pareto front of fitness against size (owned JSON array). */
cJSON *search_pareto(const Search *s);

/* One candidate by job-local id (for storing it: the works of a round name candidates by id).
 * Owned JSON {cand, expr, hash (16 hex digits, expr_hash), size, op, parents, status ("alive",
 * "baseline", "rejected", "alias"), reason, alias_of, level, fitness}, or NULL when unknown. */
cJSON *search_candidate(const Search *s, int64_t cand);
/* Number of candidates so far (ids are 0 .. n-1; 0 is the baseline). */
int64_t search_ncandidates(const Search *s);

#endif
