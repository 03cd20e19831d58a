/* internal.h: what the search module's own files share: the parsed job and the typed grammar
 * (generation, mutation, crossover) of search/variation.c. Not for other modules (they use
 * search.h); tests/test_search.c includes it to test the grammar directly. */
#ifndef SEARCH_INTERNAL_H
#define SEARCH_INTERNAL_H

#include "../common/lossd.h"
#include "search.h"

#define JOB_MAX_TASKS 32
#define JOB_MAX_LEVELS 6
#define JOB_MAX_SEEDS 32
#define JOB_MAX_PANEL 8 /* losses in a baseline list */
#define JOB_MAX_NOTES 8
/* Small data (docs/jobs.md): a classification or regression selection task with fewer rows than
 * this (after transform.subsample) and no split.folds of its own is cross-validated with
 * JOB_SMALL_FOLDS folds; split.folds 1 keeps one split. */
#define JOB_SMALL_ROWS 500
#define JOB_SMALL_FOLDS 5

/* LD_OK when every variable and term of e is one the job's tasks provide (SearchJob.in_vars,
 * in_terms), else LD_EINVAL with err naming the first that is not and the task. */
int job_within_inputs(const SearchJob *j, const struct Expr *e, char *err);

struct SearchJob {
    char name[64];
    const SearchEnv *env;       /* borrowed: loads tasks, probes losses */
    int family;                 /* family id (lang/expr.h), the same for every task */
    SearchFamily fam;           /* the family's own lists (SearchEnv.family) */
    int ntasks, nsel;           /* tasks[0..nsel) select, tasks[nsel..ntasks) are holdout */
    SearchTask tasks[JOB_MAX_TASKS]; /* each freed through env->task_free */
    Expr *baseline;             /* owned, canonical */
    char baseline_text[EXPR_TEXT_MAX];
    int npanel;                       /* baseline given as a list: the entries after the first */
    char **panel;                     /* owned canonical texts (docs/jobs.md, "Panel baseline") */
    uint32_t terms;             /* bit TERM_* allowed in new genes */
    uint32_t ops;               /* bit EOP_* allowed in free-form subtrees */
    uint32_t vars;              /* bit VAR_* allowed */
    uint32_t in_terms, in_vars; /* bit TERM_*, VAR_*: what every task of the job provides (its
                                   family's vocabulary, narrowed by SearchTask.inputs) */
    int narrow;                 /* the task that narrowed it (-1: none), for messages */
    uint32_t refused;           /* bits TERM_*: terms a task refuses (SearchTask.refused), out of
                                   in_terms; refused_task: the first such task, for messages */
    int refused_task;
    int max_nodes, max_depth;
    int population, children, tournament;
    int budget_evals;
    double budget_seconds;
    int seeds;                        /* seeds per candidate and task at the top level */
    int nlevels;                      /* fidelity levels */
    int level_steps[JOB_MAX_LEVELS];  /* absolute steps, or 0: fraction of the task's steps */
    double level_frac[JOB_MAX_LEVELS];
    int level_seeds[JOB_MAX_LEVELS];
    double promote;                   /* fraction of a level promoted to the next */
    double stop_early;                /* fidelity.stop_early: the early-stopping margin (screen.c); 0: off */
    int prescreen;                    /* fidelity.prescreen: the learned pre-screen (surrogate.c) */
    int final_top, final_seeds;       /* holdout re-evaluation */
    /* Final checks at the user's horizon (docs/jobs.md, "At your horizon"): after the final
     * re-evaluation its losses train again on fresh seeds under the user's recipe. hor[t] is
     * final task t (holdout, else selection) with train.steps and model replaced; job_task
     * numbers them after the job's tasks (ntasks + t). */
    int hor_mode;                     /* HOR_* */
    int hor_steps;                    /* absolute steps, or 0: hor_factor x the top level's */
    int hor_factor;
    int hor_seeds;
    cJSON *hor_model;                 /* owned: keys replacing the tasks' model's, or NULL */
    int nhor;
    SearchTask hor[JOB_MAX_TASKS];    /* each freed through env->task_free */
    uint64_t seed;
    int warm_start;
    int evaluate_only;                /* "mode": "evaluate_only": no variation (docs/jobs.md) */
    double parsimony;                 /* fitness penalty per node */
    int tune_every, tune_lambda;      /* coefficient tuning: every k rounds, lambda children */
    double tune_sigma;
    int init;                         /* INIT_* */
    int nseed_losses;
    char **seed_losses;               /* owned canonical texts */
    int nnotes;                       /* what parsing decided for the user (job_json's "notes") */
    char notes[JOB_MAX_NOTES][256];
};

enum { INIT_MIXED = 0, INIT_SCRATCH = 1, INIT_SEEDS = 2 };
/* final.horizon: off (false, or a small job left at the default), the default (5x the steps),
 * or given in the job. */
enum { HOR_OFF = 0, HOR_DEFAULT = 1, HOR_GIVEN = 2 };
#define HOR_DEFAULT_FACTOR 5
#define HOR_DEFAULT_MIN_BUDGET 200 /* budget.evaluations from which the default applies */

/* Steps of horizon task t (final task t under the user's recipe). */
int job_horizon_steps(const SearchJob *j, int t);
/* The first final task: holdout tasks when the job has them, else the selection tasks. */
int job_final_task0(const SearchJob *j);
int job_nfinal_tasks(const SearchJob *j);

/* Steps of fidelity level l on task i. */
int job_level_steps(const SearchJob *j, int level, int task);

/* Two-sided p-value of Student's t with df degrees of freedom (search.c). */
double search_student_p(double t, int df);

/* ---- the typed grammar (variation.c) ---- */

/* Shapes: SH_* and the one rule are lang/expr.h's (expr_node_shape, expr_shape). */

typedef struct Grammar {
    int family;
    uint32_t terms, ops, vars; /* usable in this family (job's masks and the family's) */
    int max_nodes, max_depth;
} Grammar;

void grammar_init(Grammar *g, const SearchJob *j);
/* Shape of e in g's family. */
int grammar_shape(const Grammar *g, const Expr *e);
/* Every candidate a variation returns is owned, within the size limits and passes expr_check;
 * NULL when no valid result was found in a bounded number of tries. op (may be NULL) receives
 * the name of the operation that made it. */
Expr *grammar_random(const Grammar *g, LdRng *r);
Expr *grammar_mutate(const Grammar *g, const Expr *parent, LdRng *r, const char **op);
Expr *grammar_crossover(const Grammar *g, const Expr *a, const Expr *b, LdRng *r);
/* Multiplies every constant by exp(sigma * N(0,1)): the coefficient-tuning step. */
Expr *grammar_perturb(const Grammar *g, const Expr *parent, double sigma, LdRng *r);
/* 1 if e is within the limits and passes expr_check. */
int grammar_valid(const Grammar *g, const Expr *e);

/* ---- stable winners (stable.c) ---- */

/* A seed of a final re-evaluation has collapsed when its metric is worse than the candidate's
 * own median over its final seeds by more than STABLE_COLLAPSE_REL of that median and by more
 * than STABLE_COLLAPSE_RSD robust standard deviations (1.4826 x the median absolute deviation),
 * or when the run failed. Needs 3 finite runs to call a finished one collapsed. */
#define STABLE_COLLAPSE_REL 0.2
#define STABLE_COLLAPSE_RSD 5.0
#define STABLE_MAX_SEEDS 64
/* The final re-evaluation adds seeds for a candidate when a seed collapsed, or when its spread
 * over seeds is above both STABLE_MORE_VS_BASE times the baseline's on the same seeds and
 * STABLE_MORE_REL of its mean. */
#define STABLE_MORE_VS_BASE 2.0
#define STABLE_MORE_REL 0.01

/* Number of collapsed values among v[0..n) (one per seed; NaN: a failed run); which (may be
 * NULL) gets 1 for each collapsed one. */
int stable_collapsed(const double *v, int n, int higher_better, int *which);
/* 1 when the candidate's values cand[0..n) call for more seeds (see above); base: the
 * baseline's on the same seeds. */
int stable_needs_more(const double *cand, const double *base, int n, int higher_better);

/* The final selection ranks a finalist by the mean of its per-seed relative gains over the
 * reference (the baseline or the best panel loss, paired by seed) less STABLE_LCB_SE standard
 * errors of that mean: a gain within the noise of its own seeds does not outrank the reference
 * (whose gain over itself is 0 on every seed), and of two finalists with the same mean the one
 * steadier across seeds ranks first. */
#define STABLE_LCB_SE 1.0
/* That lower bound over d[0..n): mean - STABLE_LCB_SE * sd / sqrt(n) (the mean for n < 2). */
double stable_lower_bound(const double *d, int n);
/* 1 when the gains d[0..n) are positive on average but their lower bound is not: a finalist
 * that may beat the reference, within noise; the final re-evaluation gives it more seeds. */
int stable_within_noise(const double *d, int n);

/* The 95% confidence interval of the mean of the n paired differences d (positive: the candidate
 * is better) into [*lo, *hi], by Student's t; returns the verdict: "better" when the interval lies
 * above 0, "worse" below, "within noise" when it holds 0 (also for n < 2, interval NaN). */
const char *stable_ci95(const double *d, int n, double *lo, double *hi);

/* ---- fewer wasted trainings (screen.c) ---- */

/* The rung bar: a candidate in the top `fidelity.promote` fraction of level l goes on to level
 * l + 1 only when its fitness at level l reaches the SCREEN_RUNG_QUANTILE quantile of the level-l
 * fitness of the candidates already promoted from l (none promoted yet: no bar). A job of fewer
 * than SCREEN_RUNG_SMALL evaluations promotes too few for that: it keeps the looser bar it had
 * before 2026-12-07 (the SMALL_ quantile once SMALL_MIN were promoted), which its physics needs. */
#define SCREEN_RUNG_QUANTILE 0.9
#define SCREEN_RUNG_MIN 4 /* no bar until this many were promoted from the level */
#define SCREEN_RUNG_SMALL 100
#define SCREEN_RUNG_SMALL_QUANTILE 0.8
#define SCREEN_RUNG_SMALL_MIN 8
/* The bar over fit[0..n) (reordered; non-finite values left out) for a job of fewer than
 * SCREEN_RUNG_SMALL evaluations (small) or not; -INFINITY while too few were promoted. */
double screen_rung_bar(double *fit, int n, int small);

/* Early stopping inside a run (docs/jobs.md, "Fewer wasted trainings"), a median-stopping rule
 * against the references: a candidate's run at fidelity level l stops once its best validation
 * value so far is worse than the reference's running average up to the same curve point by more
 * than fidelity.stop_early (a fraction of that average), at SCREEN_STOP_POINTS consecutive points
 * from SCREEN_STOP_FROM of the run on. The reference at a point is the best of the baseline's and
 * the panel losses' running averages on the same task, seed and level, from rounds already
 * finished (never the round's own results: the bar depends only on what every worker count and
 * restart sees alike). The run's last point is never checked. With fewer than SCREEN_STOP_REFS
 * reference curves on the slot (a job with no panel: the baseline alone) there is no bar: one
 * loss's curve is no median, and a loss whose curve has another shape loses early what it wins
 * late (Poisson: bc + 0.01*huber(1) + 0.1*phys is 5 times behind mse at 40% of the run and 30
 * times ahead at its end). */
#define SCREEN_STOP_MARGIN 0.2 /* fidelity.stop_early's default */
#define SCREEN_STOP_REFS 2
#define SCREEN_STOP_FROM 0.3
#define SCREEN_STOP_POINTS 2
/* Fills bar[0..n) from the reference curves ref[r * EVAL_CURVE_MAX + i] (nref of them, each
 * with npts[r] validation values; NaN: missing) and returns n, the points every reference has
 * (0: fewer than SCREEN_STOP_REFS references, no stopping). */
int screen_stop_bar(const float *ref, const int *npts, int nref, double margin, int higher_better,
                    float *bar);

/* ---- the learned pre-screen (surrogate.c) ----
 * From round 1 on, with fidelity.prescreen on, at each round boundary a ridge regression is fit
 * from the features of every candidate that finished the first fidelity level (its tree's shape,
 * its gradient signature against the references' and its tasks' features) to its fitness there
 * (clamped below at SURR_CLAMP: a failed run's -1 would pull the fit), together with what earlier
 * jobs in the database measured (search_set_prior: every stored candidate of the same family at
 * its job's first level, its fitness relative to that job's reference on that task, weighted 1 on
 * this job's own tasks at the same steps and SURR_PRIOR_W elsewhere); a new candidate from
 * variation whose prediction plus SURR_Z residual standard deviations is below the median of this
 * job's first-level fitness (until it has SURR_MIN_TRAIN of them: of the rows measured here, its
 * own and earlier jobs' on the same task and steps) is not trained (rejected, "pre-screen: ..."), except one in SURR_HOLDOUT of them (by expression hash),
 * which is trained anyway so that the stats can say how often a skipped candidate would really
 * have been worse than the median (the hit rate), next to the same share among the candidates it
 * let through. No fit before SURR_MIN_TRAIN rows were measured here. */
#define SURR_MIN_TRAIN 32
#define SURR_Z 1.0
#define SURR_HOLDOUT 4
#define SURR_RIDGE 0.05 /* ridge penalty per unit of row weight, on standardised features */
#define SURR_CLAMP (-0.3)
#define SURR_PRIOR_W 0.5   /* weight of an earlier job's row on another task, or other steps */

/* A task's features: what the store knows of it that changes how losses compare there. */
enum {
    SURR_T_ROWS = 0,  /* log(1 + rows), after transform.subsample (data_info.rows) */
    SURR_T_INPUTS,    /* log(1 + input features) (data_info.features) */
    SURR_T_STEPS,     /* log(steps) of the first fidelity level's runs */
    SURR_T_NOISE,     /* transform.label_noise */
    SURR_T_IMBALANCE, /* 1 - transform.imbalance (0 without it) */
    SURR_T_OUTLIERS,  /* transform.outliers */
    SURR_T_PIXELS,    /* transform.pixel_noise */
    SURR_NTASKF
};
enum {
    SURR_F_SIZE = 0,
    SURR_F_DEPTH,
    SURR_F_LOGNUM,                                 /* sum of log(1 + |c|) over its numbers */
    SURR_F_COS_BASE,                               /* signature's cosine with the baseline's */
    SURR_F_COS_BEST,                               /* its best cosine with a reference's */
    SURR_F_SIG_MEAN, SURR_F_SIG_ABS, SURR_F_SIG_MAX, /* the (unit) signature's statistics */
    SURR_F_OPS,                                    /* counts of each node kind, EOP_* */
    SURR_F_TERMS = SURR_F_OPS + EOP_COUNT,         /* counts of each named term, TERM_* */
    SURR_F_VARS = SURR_F_TERMS + TERM_COUNT,       /* counts of each variable, VAR_* */
    SURR_F_TASK = SURR_F_VARS + VAR_COUNT,         /* the task's features, SURR_T_* */
    SURR_NFEAT = SURR_F_TASK + SURR_NTASKF
};
/* The model's inputs: the features, then for label noise, imbalance and outliers in turn, the
 * row task's difference from this job's ("here") times each term count (how a term's effect
 * changes with the corruption; zero on this job's own tasks). */
#define SURR_NMIX 3
#define SURR_NMODEL (SURR_NFEAT + SURR_NMIX * TERM_COUNT)

typedef struct Surrogate {
    int n;                 /* training rows; 0: not fit */
    double wsum;           /* their total weight */
    double bias, resid_sd; /* the mean target; the residuals' (weighted) standard deviation */
    double here[SURR_NTASKF]; /* this job's task features, which the interactions are taken from */
    double mu[SURR_NMODEL], sd[SURR_NMODEL], w[SURR_NMODEL]; /* standardisation, weights */
} Surrogate;

/* Weighted sums over training rows (the fit needs nothing else): an earlier job's rows are
 * summed once, this job's added at each refit. Owned by the caller (surr_sums_new, free()). */
typedef struct SurrSums {
    int n;
    double W, sy, syy;
    double here[SURR_NTASKF];
    double s1[SURR_NMODEL], sxy[SURR_NMODEL];
    double s2[SURR_NMODEL * SURR_NMODEL]; /* lower triangle, row-major */
} SurrSums;

/* The features of e (sig: its unit gradient signature of sig_n floats, or NULL; ref_sig[0..nref):
 * the references' signatures, the baseline's first, entries may be NULL; tf: its task's features,
 * SURR_NTASKF of them, or NULL: zeros) into x[SURR_NFEAT]. */
void surr_features(const struct Expr *e, const float *sig, const float *const *ref_sig, int nref,
                   int sig_n, const double *tf, double *x);
/* A task's features from its normalised spec (SearchTask.spec, the store's tasks.spec; NULL:
 * zeros but the steps) and the steps of its first-level runs, into tf[SURR_NTASKF]. */
void surr_task_features(const cJSON *spec, int steps, double *tf);
/* Empty sums whose interactions are taken from here[SURR_NTASKF] (NULL: zeros); NULL when out of
 * memory. */
SurrSums *surr_sums_new(const double *here);
void surr_sums_add(SurrSums *ss, const double *x, double y, double w);
/* Fits m to the sums by ridge regression (penalty lambda x the total weight). LD_OK, LD_EINVAL
 * with fewer than 2 rows, LD_EFAILED when the system is singular. */
int surr_fit_sums(Surrogate *m, const SurrSums *ss, double lambda);
/* The same over the n rows of X (n x SURR_NFEAT, row-major), targets y, weights w (NULL: 1),
 * interactions from here (NULL: zeros); also LD_ENOMEM. */
int surr_fit(Surrogate *m, const double *X, const double *y, const double *w, int n,
             const double *here, double lambda);
double surr_predict(const Surrogate *m, const double *x);
/* The cosine of two gradient signatures of n floats (0 when either is zero): the pre-screen's
 * features and the signature cache's test of two losses training alike (search.c). */
double surr_cosine(const float *a, const float *b, int n);

/* A candidate's score on one task: its metric m's improvement over the reference's b, relative to
 * it, signed so that higher is better, clamped to [-1, 1]; a failed run (m NaN) scores -1. What
 * fitness averages over the tasks (search.c) and the prior's targets are. */
double surr_task_score(double m, double b, int higher_better);

/* An earlier job's stored candidate as a training row: its canonical text (owned), its task's
 * features, its target (relative fitness, clamped below at SURR_CLAMP) and weight. */
typedef struct SurrPriorRow {
    char *expr;
    double tf[SURR_NTASKF];
    double y, w;
} SurrPriorRow;
/* The rows of prior (store_prior_read's JSON: {"tasks": [{hash, spec, higher_better}], "rows":
 * [[group, task, steps, ref, n_ok, n_failed, val, expr], ...]}, borrowed), each target the
 * candidate's task score against the best of its group's references (its job's baseline and
 * panel losses at the same task and steps; a group without one gives no rows), weight 1 when its
 * task hash is here_hash[i] and its steps here_steps[i] for some i < nhere, else SURR_PRIOR_W.
 * Owned array in *out (surr_prior_free), count in *n. LD_OK, LD_EINVAL (with err) when prior is
 * not of that shape, LD_ENOMEM. */
int surr_prior_rows(const cJSON *prior, const uint64_t *here_hash, const int *here_steps, int nhere,
                    SurrPriorRow **out, int *n, char *err);
void surr_prior_free(SurrPriorRow *rows, int n);

/* ---- the model-based tuner (tune.c) ---- */

#define TUNE_MAX_CONSTS 32
#define TUNE_MAX_HIST 256   /* candidates of one shape the model is fit to, best first */
#define TUNE_LEADS 2        /* distinct leading shapes tuned per tuning round */
#define TUNE_START_SD 0.7   /* log-scale spread with one elite (a factor of about 2) */
#define TUNE_MIN_SD 0.05
#define TUNE_DECADES 3      /* the decade jump scales a mixture term by 10^k, k = 1..TUNE_DECADES */

/* Hash of e's shape: operators, variables and terms, numbers left out. */
uint64_t tune_shape(const Expr *e);
/* e's constants in a fixed (pre-order) walk into v; their count, or -1 when more than max. */
int tune_consts(const Expr *e, double *v, int max);
/* A child of lead (borrowed) with new constants sampled from a diagonal Gaussian over log|c|
 * fit to hist (nhist rows of nconst constants: candidates of lead's shape, best first; lead's
 * signs kept). Owned and valid in g, or NULL. */
Expr *tune_propose(const Grammar *g, const Expr *lead, const double *hist, int nhist, int nconst,
                   LdRng *r);
/* A child of lead (borrowed) with one of its mixture terms (top-level sum operands) scaled by
 * 10^k or 10^-k, k uniform in 1..TUNE_DECADES when the term holds a named term (k = 1 for a
 * free-form subtree): the log-scale jump that local tuning takes many
 * rounds to make. Owned and valid in g, or NULL (also when lead has a single term). */
Expr *tune_decade(const Grammar *g, const Expr *lead, LdRng *r);

#endif
