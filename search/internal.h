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
 * fitness of the candidates already promoted from l (none promoted yet: no bar). */
#define SCREEN_RUNG_QUANTILE 0.8
#define SCREEN_RUNG_MIN 8 /* no bar until this many were promoted from the level */
/* The bar over fit[0..n) (reordered; non-finite values left out); -INFINITY when n is 0. */
double screen_rung_bar(double *fit, int n);

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
 * from the features of every candidate that finished the first fidelity level (its tree's shape
 * and its gradient signature against the references') to its fitness there (clamped below at
 * SURR_CLAMP: a failed run's -1 would pull the fit); a new candidate from variation whose
 * prediction plus SURR_Z residual standard deviations is below the median of those fitnesses is
 * not trained (rejected, "pre-screen: ..."), except one in SURR_HOLDOUT of them (by expression
 * hash), which is trained anyway so that the stats can say how often a skipped candidate would
 * really have been worse than the median (the hit rate), next to the same share among the
 * candidates it let through. No fit before SURR_MIN_TRAIN candidates finished the level. */
#define SURR_MIN_TRAIN 32
#define SURR_Z 1.0
#define SURR_HOLDOUT 4
#define SURR_RIDGE 0.05 /* ridge penalty per training row, on standardised features */
#define SURR_CLAMP (-0.3)
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
    SURR_NFEAT = SURR_F_VARS + VAR_COUNT
};

typedef struct Surrogate {
    int n;                 /* training rows; 0: not fit */
    double bias, resid_sd; /* the mean target; the residuals' standard deviation on the rows */
    double mu[SURR_NFEAT], sd[SURR_NFEAT], w[SURR_NFEAT]; /* standardisation, weights */
} Surrogate;

/* The features of e (sig: its unit gradient signature of sig_n floats, or NULL; ref_sig[0..nref):
 * the references' signatures, the baseline's first, entries may be NULL) into x[SURR_NFEAT]. */
void surr_features(const struct Expr *e, const float *sig, const float *const *ref_sig, int nref,
                   int sig_n, double *x);
/* Fits m to the n rows of X (n x SURR_NFEAT, row-major) and targets y by ridge regression
 * (penalty lambda x n). LD_OK, LD_EINVAL when n < 2, LD_EFAILED when the system is singular,
 * LD_ENOMEM. */
int surr_fit(Surrogate *m, const double *X, const double *y, int n, double lambda);
double surr_predict(const Surrogate *m, const double *x);
/* The cosine of two gradient signatures of n floats (0 when either is zero): the pre-screen's
 * features and the signature cache's test of two losses training alike (search.c). */
double surr_cosine(const float *a, const float *b, int n);

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
