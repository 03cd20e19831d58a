/* search.h: the loss search engine. Pure and deterministic: it never touches a socket, a thread,
 * a file or training code. The caller (lossd search, or the daemon) asks for a round of
 * evaluations, runs them however it likes (any number of worker threads), and hands the results
 * back in the round's order. The same job, seed and results give the same proposals, whatever the
 * worker count. What the engine needs from tasks and training (loading a task, its family's
 * textbook losses, gradient signatures, pre-checks) reaches it through a SearchEnv that the
 * program's composition fills (daemon/engine.c for the evaluator; tests use stubs). */
#ifndef SEARCH_H
#define SEARCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/work.h"
#include "../lang/expr.h"

/* What the engine knows of one task: a description, no data. Filled by SearchEnv.task_load. */
typedef struct SearchTask {
    int family;        /* family id (lang/expr.h: family_parse) */
    int outputs;       /* classes, or 1: the probes' class count (WorkItem.precheck_outputs) */
    int steps;         /* the task's default training steps (fidelity fractions scale them) */
    int higher_better; /* of its selection metric */
    int nfold;         /* cross-validation splits (1: one split); seed s trains split s % nfold */
    int sig_len;       /* floats in one gradient signature of this task's family and outputs */
    unsigned inputs;   /* LIN_*: what the task provides to the loss language, a subset of its
                          family's (a generative task's model kind: an autoencoder's x and xh, a
                          GAN's dx and dgz); 0: all of the family's */
    const char *baseline; /* the loss a job on this task compares against when it names none and
                             the task's model is not the family's default (a GAN: nsgan); NULL:
                             the family's. Static, borrowed */
    uint32_t refused;  /* bits TERM_*: terms its inputs provide but its data cannot serve (a generative
                          task's bce_rec on values outside [0, 1]); 0: none */
    const char *refused_why; /* why, for the message refusing a job's loss (borrowed from the task) */
    uint64_t hash;     /* names the task in work items (WorkItem.task_hash) */
    char name[64];     /* short label, e.g. "digits" */
    char metric[32];   /* the selection metric, e.g. "accuracy" */
    cJSON *spec;       /* owned: the normalised spec job_json writes, or NULL (then the name) */
    void *handle;      /* the caller's own loaded task, freed by SearchEnv.task_free */
} SearchTask;

/* What the engine knows of a task family beyond its vocabulary (lang_vocab): the family's own
 * declarations, e.g. evaluator/family.h's EvalFamily. Static strings, borrowed. */
typedef struct SearchFamily {
    const char *baseline;      /* the loss fitness is measured against when a job names none */
    const char *const *known;  /* textbook losses tried in the first population; NULL-ended */
    const char *const *panel;  /* the textbook mixture's terms (e.g. "ce", "focal(2)"); NULL-ended */
    const char *const *baselines; /* a job's default baseline panel, the baseline first; or NULL */
} SearchFamily;

/* The engine's interface to tasks and training, filled by the composition. Every function gets
 * ctx; each must be safe to call from any one thread at a time per job (the daemon may parse a
 * job off its loop). A job borrows its env: it must outlive the job and its engines. */
typedef struct SearchEnv {
    void *ctx;
    /* Loads the task spec names (a task object, or a string: "builtin:NAME" or a path, relative
     * ones against base_dir, which may be NULL) and fills *out (out->spec and out->handle
     * owned). LD_OK, or a negative code with err saying what, where and why ("data: missing"). */
    int (*task_load)(void *ctx, const cJSON *spec, const char *base_dir, SearchTask *out,
                     char *err);
    void (*task_free)(void *ctx, SearchTask *t); /* frees what task_load made in t */
    /* Fills *out for family id fam; LD_EINVAL when the env does not know it. */
    int (*family)(void *ctx, int fam, SearchFamily *out);
    /* The gradient of e on the family's fixed probe batch (outputs classes), unit length, into
     * sig[0..n); LD_EFAILED with a reason when it is non-finite or zero. Used to merge losses
     * that train alike before they are trained. */
    int (*signature)(void *ctx, const Expr *e, int fam, int outputs, float *sig, int n,
                     char *err);
    /* Whether e improves the family's metric when the predictions are optimised directly;
     * LD_EFAILED with a reason when it does not (the candidate is rejected untrained). */
    int (*precheck)(void *ctx, const Expr *e, int fam, int outputs, char *err);
} SearchEnv;

/* A parsed, validated job (docs/jobs.md). */
typedef struct SearchJob SearchJob;

/* Parses and validates a job. Every problem is named, joined by "; " in err (LD_ERR_MAX; when
 * they do not fit, the first ones and a count): "tasks: missing; space.max_nodes: must be at
 * least 3". Tasks are loaded through env->task_load, relative paths against base_dir.
 * Returns LD_OK and an owned job, or LD_EINVAL. Borrows json and env (env must outlive the
 * job: the job's engines call it). */
int job_parse(const cJSON *json, const char *base_dir, const SearchEnv *env, SearchJob **out,
              char *err);
void job_free(SearchJob *j);
cJSON *job_json(const SearchJob *j); /* returns owned normalised job (defaults filled in) */
/* Selection tasks, then holdout tasks, then the horizon tasks (each final task under the user's
 * recipe: final.horizon); job_task(j, i) for i < job_ntasks(j), NULL out of range. */
int job_ntasks(const SearchJob *j);
const SearchTask *job_task(const SearchJob *j, int i);
int job_is_holdout(const SearchJob *j, int i); /* holdout and horizon tasks: never selected on */
int job_is_horizon(const SearchJob *j, int i);
int job_budget_evals(const SearchJob *j);
double job_budget_seconds(const SearchJob *j); /* 0: none */
uint64_t job_seed(const SearchJob *j);
const char *job_name(const SearchJob *j);

/* The engine's works are WorkItems (common/work.h): task index and hash, canonical expression,
 * seed, steps, and whether the pre-check runs first (precheck, with precheck_outputs). job_id is
 * left 0 for the caller to stamp. The caller runs them (the daemon's workers call eval_work). */

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
/* Where the pre-check runs. Off (the default): inside the engine (SearchEnv.precheck), before a
 * candidate is scheduled, and works never carry precheck. On: the caller promises to honour
 * WorkItem.precheck in its workers (eval_work does), which keeps the pre-check's cost
 * (about 0.5 ms a candidate) off the caller's loop. The two settings make different, each
 * deterministic, searches; set it right after search_new / search_restore, the same way every
 * time for a given job. */
void search_set_worker_precheck(Search *s, int on);

typedef int (*SearchLookupFn)(void *ctx, const WorkItem *w, uint64_t expr_hash, EvalResult *out);
void search_set_lookup(Search *s, SearchLookupFn fn, void *ctx);
/* Optional: what earlier jobs measured, for the learned pre-screen (docs/jobs.md, "The learned
 * pre-screen"): prior is store_prior_read's JSON (borrowed; {"tasks": [...], "rows": [...]}),
 * every stored candidate of the job's family at its job's first fidelity level with its task.
 * The engine keeps what it needs and saves it with its state, so a restored engine learns from
 * the same rows whatever the database holds by then. Call it right after search_new (before the
 * first round), at most once. LD_OK, LD_ESTATE when a round was built or rows were already set,
 * LD_EINVAL when prior is not of that shape, LD_ENOMEM; err says which. */
int search_set_prior(Search *s, const cJSON *prior, char *err);
#define SEARCH_PRIOR_MAX 2000 /* the rows a caller reads for it at most (store_prior_read's limit) */
/* The caller stops the search early (wall-clock budget, cancel, a user's job.finish): final
 * re-evaluation on the holdout tasks still happens in the rounds that follow unless hard is
 * set. A stop asked while a round is open takes effect from the next round, and the saved
 * state says so, so a restored engine rebuilds the open round as it was. */
void search_stop(Search *s, int hard);

/* ---- proposals from outside the engine (docs/jobs.md, "Proposals") ----
 * A person, a script or a model hands the engine loss expressions while it runs. Each goes
 * through the checks every candidate meets (the family's checker, the canonical-form cache, the
 * gradient signature, the pre-check), here and now, so the caller can answer at once; an
 * accepted one is a candidate that waits for the next round to be built, where it is scheduled
 * at fidelity level 0 before any promotion or child (its level-0 cost is reserved from
 * budget.evaluations when it is accepted), then climbs the fidelity ladder like any other.
 * Determinism: a proposal changes the engine only through its text and the point where it
 * arrived (search_point), so a caller that stores both and hands them back at the same point
 * after search_restore (the engine counts those it took: search_nproposed) gets the same
 * search. */
typedef enum SearchProposalStatus {
    PROPOSAL_ACCEPTED = 0,
    PROPOSAL_DUPLICATE = 1,
    PROPOSAL_REFUSED = 2,
} SearchProposalStatus;

typedef struct SearchProposal {
    SearchProposalStatus status;
    int64_t cand;               /* accepted: the new candidate; duplicate: the one it repeats;
                                 * refused by the signature or the pre-check: the candidate
                                 * recorded as rejected; else -1 */
    int64_t same_form_as;       /* duplicate: the candidate of the same canonical form when that
                                 * one was itself merged by signature into cand; else -1 */
    const char *why;            /* duplicate: "same canonical form" or "same gradient signature";
                                 * refused: the stage ("parse", "check", "limits", "budget",
                                 * "precheck", "state"); static */
    char canonical[EXPR_TEXT_MAX]; /* the canonical form when the text parsed, else "" */
    char error[LD_ERR_MAX];     /* refused: what, where, why (the parser's or checker's words) */
} SearchProposal;

/* A proposal's largest expression: the language's job limits (space.max_nodes and max_depth
 * bound what the engine generates, not what a proposer may try). */
#define SEARCH_PROPOSAL_MAX_NODES 200
#define SEARCH_PROPOSAL_MAX_DEPTH 30
#define SEARCH_SOURCE_MAX 32 /* a proposal's source label: [A-Za-z0-9_.-], 1..32 bytes */

/* Takes one proposal: text as the proposer wrote it, source its label (origin
 * "proposed:<source>"; borrowed, checked by the caller). Fills *out; returns LD_OK whatever the
 * proposal's fate (out->status says it), or LD_ENOMEM. Refused with stage "state" when the
 * search no longer takes proposals (search_accepts_proposals). */
int search_propose(Search *s, const char *text, const char *source, SearchProposal *out);
/* 1 while the search phase runs and no stop was asked: proposals can still be trained. */
int search_accepts_proposals(const Search *s);
/* Where the engine is in its sequence of rounds: 2 x rounds finished, + 1 while a round is
 * open. A proposal stored with the point it arrived at replays identically when it is handed to
 * the engine at that point again. */
int64_t search_point(const Search *s);
/* Proposals the engine has taken (every search_propose call, whatever its fate); a restored
 * engine counts those its saved state holds. */
int64_t search_nproposed(const Search *s);
/* Waiting for proposals (evaluate-only jobs, docs/jobs.md): with this on, an evaluate-only
 * search whose round would be empty while budget remains waits instead of moving on to its
 * final evaluation: search_round returns 0 and search_done stays 0, until a proposal arrives or
 * search_stop. Off (the default, lossd search): it moves on. Set it right after search_new /
 * search_restore, the same way every time for a given job. */
void search_set_wait_for_proposals(Search *s, int on);
/* 1 when the engine waits for proposals (search_round returned 0 and the search is not done). */
int search_waiting(const Search *s);
int job_evaluate_only(const SearchJob *j);

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
/* The candidate's rank tier: 4 x the highest fidelity level it completed, plus 2 unless its final
 * seeds collapsed, plus 1 when its fitness was measured on its final seeds (the final
 * selection); -1 when it is not ranked. The leaderboard orders by tier, then fitness, then id:
 * the store sorts on the same key (store_candidate_set_rank). */
int search_tier(const Search *s, int64_t cand);
/* Number of candidates so far (ids are 0 .. n-1; 0 is the baseline). */
int64_t search_ncandidates(const Search *s);

#endif
