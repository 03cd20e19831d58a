/* search.h: the loss search engine. Pure and deterministic: it never touches a socket, a thread
 * or a file. The caller (lossd search, or the daemon) asks for a round of evaluations, runs them
 * however it likes (any number of worker threads), and hands the results back in the round's
 * order. The same job, seed and results give the same proposals, whatever the worker count. */
#ifndef SEARCH_H
#define SEARCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/work.h"
#include "../evaluator/eval.h"
#include "../lang/expr.h"

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

/* The engine's works are WorkItems (common/work.h): task index and hash, canonical expression,
 * seed, steps, and whether the pre-check runs first (precheck, with precheck_outputs). job_id is
 * left 0 for the caller to stamp. The evaluator runs them (eval_work). */

typedef struct Search Search;

/* Starts a search for job. warm (may be NULL, n_warm 0) lists expressions from earlier
 * searches to seed the population with (warm starts). Returns owned engine or NULL with err.
 * Borrows job, which must outlive the engine. */
Search *search_new(const SearchJob *job, const char *const *warm, int n_warm, char *err);
void search_free(Search *s);

/* The next round of evaluations. Returns the number of works in *works (owned by the engine,
 * valid until search_finish_round), or 0 when the search is complete. Calling it again without
 * finishing the round returns the same round. */
int search_round(Search *s, const WorkItem **works);
/* Hands back the outcomes of the current round's works: all n of them, in any order (each names
 * its work by seq). The engine applies them in the round's order, so the search is the same
 * whatever order the workers finished in. A WORK_REJECTED outcome rejects the candidate and
 * gives the evaluation back to the budget. LD_EINVAL when an outcome is missing, doubled or
 * names no work of the round; LD_ESTATE when no round is open; LD_EFAILED with the baseline's
 * error when the baseline failed every run of its first level on a selection task (fitness is
 * relative to the baseline: the search cannot go on). */
int search_finish_round(Search *s, const WorkOutcome *outs, int n, char *err);
int search_done(const Search *s);

/* Optional: results the caller already has (e.g. the database's cross-job result cache,
 * store_result_lookup). While building a round the engine calls fn for each evaluation it is
 * about to schedule (w->seq is -1 then; expr_hash is expr_hash of w->expr); when fn returns 1
 * and fills *out, that result is used as if it had been trained: it is not returned as work and
 * does not count against budget.evaluations (reported as result_cache_hits). fn runs on the
 * caller's thread, inside search_round. Set it right after search_new / search_restore. */
/* Where eval_precheck runs. Off (the default): inside the engine, before a candidate is
 * scheduled, and works never carry precheck. On: the caller promises to honour
 * WorkItem.precheck in its workers (eval_work does), which keeps the pre-check's cost
 * (about 0.5 ms a candidate) off the caller's loop. The two settings make different, each
 * deterministic, searches; set it right after search_new / search_restore, the same way every
 * time for a given job. */
void search_set_worker_precheck(Search *s, int on);

typedef int (*SearchLookupFn)(void *ctx, const WorkItem *w, uint64_t expr_hash, EvalResult *out);
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
/* The candidate's rank tier: 2 x the highest fidelity level it completed, plus 1 unless its final
 * seeds collapsed; -1 when it is not ranked. The leaderboard orders by tier, then fitness, then
 * id: the store sorts on the same key (store_candidate_set_rank). */
int search_tier(const Search *s, int64_t cand);
/* Number of candidates so far (ids are 0 .. n-1; 0 is the baseline). */
int64_t search_ncandidates(const Search *s);

#endif
