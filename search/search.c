/* search.c: the loss search engine: regularised (aging) evolution with tournament selection,
 * successive-halving fidelity, coefficient tuning, caching by canonical hash and gradient
 * signature, rejection before training, baseline-normalised multi-task fitness, a final paired
 * comparison on holdout tasks, and state that saves and restores at round boundaries. */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SIG_COS 0.9999       /* signatures this close are the same loss up to a positive scale */
#define CROSSOVER_RATE 0.25
#define MAX_REASONS 16

enum { ST_ALIVE = 0, ST_BASELINE = 1, ST_REJECTED = 2, ST_ALIAS = 3 };
enum { PH_SEARCH = 0, PH_FINAL = 1, PH_DONE = 2 };
#define LEVEL_HORIZON (-2)

typedef struct Res {
    double val, test;
    uint8_t ok, have;
} Res;

/* A reference loss's learning curve (validation values at the run's curve points), for early
 * stopping (screen_stop_bar). n 0: none. */
typedef struct RefCurve {
    int n;
    float val[EVAL_CURVE_MAX];
} RefCurve;

typedef struct Cand {
    int64_t id;
    Expr *e;        /* canonical tree */
    char *text;     /* canonical print */
    uint64_t hash;
    int size;
    int64_t parents[2];
    char op[16];
    int status;
    int64_t alias_of;
    char *reason;   /* why rejected */
    int born;       /* round */
    int sched;      /* highest level scheduled, -1 none */
    int sched_prev; /* sched at the start of the open round (saving mid-round) */
    int done;       /* highest level with every result in, -1 none */
    double fit[JOB_MAX_LEVELS];
    Res *res;       /* [level][task][seed] over the selection tasks */
    Res *fin;       /* [final task][seed < fin_cap], NULL unless chosen for the final evaluation */
    int fin_n;      /* final seeds issued per final task */
    Res *hor;       /* [horizon task][seed < hor_seeds]: the final losses at the user's horizon */
    int collapsed;  /* seeds of the final evaluation that collapsed (stable.c): never the winner */
    double ffit;    /* fitness on the final seeds (final_fitness): what ranks it; NaN when none */
    float *sig;     /* sig_n floats, for trained candidates */
    int in_pop;
    int need_pre;   /* its level-0 works carry the pre-check */
    int has_t;      /* the expression uses t (never merged by signature) */
    char *source;   /* a proposal's source label (origin "proposed:<source>"), else NULL */
    RefCurve *ref;  /* [level][task][seed] like res: the baseline's and panel losses' curves */
    double pred, pbar; /* the pre-screen's prediction and the median it was held to (NaN: none) */
    int hold;       /* predicted clearly worse but trained anyway, to measure the hit rate */
} Cand;

/* Everything a round changes besides candidates, copied at the start of each round so that a
 * save in the middle of one describes its start. */
typedef struct Ctr {
    LdRng rng;
    int64_t seq;
    int round;
    int phase;
    int evals, final_evals;
    int cache_hits, signature_hits, rejections, promotions, tuned, generated, warm_used;
    int result_hits; /* results the caller's lookup already had (not trained) */
    int stopped, hard;
    int stop_from; /* the first round a stop applies to: a stop asked mid-round spares that round */
    int final_issued;
    int final_more; /* the final evaluation's added seeds were issued (stable.c) */
    int horizon_issued, horizon_evals; /* final checks at the user's horizon (job.hor) */
    /* The first time a non-baseline candidate's fitness at its highest finished level was at
     * least the baseline's at that level: trainings spent by the end of that round (-1: never)
     * and the candidate; the _top pair counts only candidates at the top fidelity level. */
    int to_base, to_base_top;
    int64_t to_base_cand, to_base_top_cand;
    int64_t proposed; /* proposals taken (search_propose calls), whatever their fate */
    int prop_accepted, prop_duplicates, prop_refused;
    /* early stopping (screen.c): runs stopped, the steps they did not run, and the steps of the
     * search phase's level runs (run or saved) */
    int early_stopped;
    int64_t early_saved, level_steps;
    int surr_skipped; /* candidates the pre-screen kept from training (surrogate.c) */
} Ctr;

typedef struct WorkRef {
    int cand;  /* index into cands */
    int level; /* -1: final evaluation, LEVEL_HORIZON: at the user's horizon */
    int task, k;
} WorkRef;

typedef struct Reason {
    char text[64];
    int n;
} Reason;

struct Search {
    const SearchJob *job;
    Grammar g;
    int C;          /* outputs of the first task: the probe batch's class count */
    int sig_n;      /* length of a gradient signature */
    int nseed_max;  /* seeds per (level, task) slot in Cand.res */
    int nfin_tasks, fin_task0; /* final evaluation runs on tasks fin_task0 .. +nfin_tasks */
    int fin_cap;    /* final seeds room per task: final.seeds, and as many again when added */
    Ctr c, c0;      /* current counters and those at the start of the open round */
    Cand *cands;
    int ncand, capcand, ncand0;
    int baseline;   /* index of the baseline candidate */
    int npanel;     /* the rest of a baseline list (op "panel"): run wherever the baseline runs */
    int panel[JOB_MAX_PANEL];
    uint64_t *htab; /* open addressing: hash -> cand index + 1 in hidx */
    int *hidx;
    int hcap;
    int *pop;       /* aging population: candidate indices, oldest first */
    int npop;
    WorkItem *works;
    WorkRef *refs;
    int nworks, capworks, round_open;
    Reason reasons[MAX_REASONS], reasons0[MAX_REASONS];
    int nreasons, nreasons0;
    double engine_ms, sig_ms, pre_ms; /* time in the engine, of it in the probes */
    int worker_precheck; /* the caller runs pre-checks (WorkItem.precheck) */
    SearchLookupFn lookup;
    void *lookup_ctx;
    int round_hits; /* lookup hits while building the open round */
    const char *const *warm;
    int nwarm;
    int wait_props; /* an evaluate-only search waits for proposals (search_set_wait_for_proposals) */
    int waiting;    /* the last round built was empty and the search waits */
    Surrogate surr; /* the pre-screen, fit at the open round's start (surr.n 0: none) */
    double surr_bar; /* the median of the targets measured here */
    double here_tf[SURR_NTASKF]; /* the selection tasks' features (mean), at their first level */
    /* Earlier jobs' rows (search_set_prior), saved with the state. Their sums and the targets
     * of those measured here are made at the first refit (the references' signatures are known
     * from round 1); prior_used counts the rows whose loss this job can train. */
    SurrPriorRow *prior;
    int nprior, prior_done, prior_used;
    SurrSums *prior_sums;
    double *prior_here_y; /* the targets of the rows of weight 1 (this job's tasks and steps) */
    int nprior_here;
};

/* ---- small helpers ---- */

static int lvl_seeds(const Search *s, int l) { return s->job->level_seeds[l]; }

static Res *res_at(const Search *s, Cand *c, int l, int task, int k) {
    return &c->res[((size_t)l * s->job->nsel + (size_t)task) * (size_t)s->nseed_max + (size_t)k];
}

/* A cross-validated task trains seed v on split v % nfold (task_fold): seed k of a level or of the
 * final evaluation takes split k % nfold, so k = 0 .. nfold-1 cover every split once. */
static uint64_t fold_seed(const Search *s, int task, int k, uint64_t v) {
    uint64_t nf = (uint64_t)s->job->tasks[task].nfold;
    return nf > 1 ? v - v % nf + (uint64_t)k % nf : v;
}

static uint64_t eval_seed(const Search *s, int task, int k) {
    return fold_seed(s, task, k, ld_mix64(s->job->seed, 0x5eed0000ull + (uint64_t)task * 1000u + (uint64_t)k));
}

static uint64_t final_seed(const Search *s, int task, int k) {
    return fold_seed(s, task, k, ld_mix64(s->job->seed ^ 0xf1a1f1a1f1a1ull, (uint64_t)task * 1000u + (uint64_t)k));
}

/* Seed k at the horizon of final task t: fresh (neither the search's nor the final's), on the
 * final task's splits. */
static uint64_t horizon_seed(const Search *s, int t, int k) {
    return fold_seed(s, s->fin_task0 + t, k,
                     ld_mix64(s->job->seed ^ 0x4012150a4012ull, (uint64_t)t * 1000u + (uint64_t)k));
}

static void add_reason(Search *s, const char *why) {
    char key[64];
    /* reasons group by their first words: "non-finite gradient", "does not improve ..." */
    snprintf(key, sizeof key, "%s", why);
    for (char *p = key; *p; p++)
        if (*p == ':' || *p == '(') {
            *p = 0;
            break;
        }
    for (int i = 0; i < s->nreasons; i++)
        if (!strcmp(s->reasons[i].text, key)) {
            s->reasons[i].n++;
            return;
        }
    if (s->nreasons < MAX_REASONS) {
        snprintf(s->reasons[s->nreasons].text, sizeof s->reasons[0].text, "%s", key);
        s->reasons[s->nreasons++].n = 1;
    }
}

/* ---- the hash table of every candidate ever seen ---- */

static int htab_find(const Search *s, uint64_t h) {
    if (!s->hcap) return -1;
    for (int i = (int)(h & (uint64_t)(s->hcap - 1));; i = (i + 1) & (s->hcap - 1)) {
        if (!s->hidx[i]) return -1;
        if (s->htab[i] == h) return s->hidx[i] - 1;
    }
}

static int htab_put(Search *s, uint64_t h, int idx) {
    if ((s->ncand + 1) * 2 > s->hcap) {
        int ncap = s->hcap ? s->hcap * 2 : 256;
        uint64_t *nt = calloc((size_t)ncap, sizeof *nt);
        int *ni = calloc((size_t)ncap, sizeof *ni);
        if (!nt || !ni) {
            free(nt);
            free(ni);
            return LD_ENOMEM;
        }
        for (int i = 0; i < s->hcap; i++) {
            if (!s->hidx[i]) continue;
            int j = (int)(s->htab[i] & (uint64_t)(ncap - 1));
            while (ni[j]) j = (j + 1) & (ncap - 1);
            nt[j] = s->htab[i];
            ni[j] = s->hidx[i];
        }
        free(s->htab);
        free(s->hidx);
        s->htab = nt;
        s->hidx = ni;
        s->hcap = ncap;
    }
    int j = (int)(h & (uint64_t)(s->hcap - 1));
    while (s->hidx[j]) j = (j + 1) & (s->hcap - 1);
    s->htab[j] = h;
    s->hidx[j] = idx + 1;
    return LD_OK;
}

/* ---- candidates ---- */

static void cand_free(Cand *c) {
    expr_free(c->e);
    free(c->source);
    free(c->text);
    free(c->reason);
    free(c->res);
    free(c->fin);
    free(c->hor);
    free(c->sig);
    free(c->ref);
}

static int uses_t(const Expr *e);

/* Appends a candidate for canonical tree e (takes e) with its text and hash. Returns its index
 * or -1 on out-of-memory. */
static int cand_add(Search *s, Expr *e, const char *text, uint64_t h, const int64_t *parents,
                    const char *op) {
    if (s->ncand == s->capcand) {
        int ncap = s->capcand ? s->capcand * 2 : 64;
        Cand *n = realloc(s->cands, (size_t)ncap * sizeof *n);
        if (!n) goto fail;
        s->cands = n;
        s->capcand = ncap;
    }
    Cand *c = &s->cands[s->ncand];
    memset(c, 0, sizeof *c);
    c->id = s->ncand;
    c->e = e;
    c->text = strdup(text);
    c->hash = h;
    c->size = expr_size(e);
    c->has_t = uses_t(e); /* once: the signature loop asks it of every pair */
    c->parents[0] = parents ? parents[0] : -1;
    c->parents[1] = parents ? parents[1] : -1;
    snprintf(c->op, sizeof c->op, "%s", op);
    c->alias_of = -1;
    c->born = s->c.round;
    c->sched = c->sched_prev = c->done = -1;
    for (int l = 0; l < JOB_MAX_LEVELS; l++) c->fit[l] = NAN;
    c->ffit = NAN;
    c->pred = c->pbar = NAN;
    c->res = calloc((size_t)s->job->nlevels * (size_t)s->job->nsel * (size_t)s->nseed_max,
                    sizeof *c->res);
    if (!c->text || !c->res || htab_put(s, h, s->ncand) != LD_OK) {
        c->e = NULL; /* the caller's e is freed below */
        cand_free(c);
        goto fail;
    }
    return s->ncand++;
fail:
    expr_free(e);
    return -1;
}

/* Whether e depends on t: the probe sees one t, so such losses are never merged by signature
 * (t*ce + (1-t)*focal(2) and 0.5*ce + 0.5*focal(2) agree at t = 0.5 only). */
static int uses_t(const Expr *e) {
    if (!e) return 0;
    if (e->op == EOP_VAR && e->id == VAR_T) return 1;
    return uses_t(e->a) || uses_t(e->b);
}

/* Scales sig to unit length, so that the prefilter in same_direction is exact. */
static void unit(float *sig, int n) {
    double nn = 0;
    for (int i = 0; i < n; i++) nn += (double)sig[i] * sig[i];
    if (nn > 0)
        for (int i = 0; i < n; i++) sig[i] = (float)(sig[i] / sqrt(nn));
}

/* Unit vectors with cosine > SIG_COS are closer than sqrt(2 - 2 SIG_COS) = 0.0141 in every
 * coordinate: checking a few coordinates first skips almost every full comparison. */
static int same_direction(const float *a, const float *b, int n) {
    const float lim = (float)sqrt(2 - 2 * SIG_COS) + 1e-4f;
    for (int i = 0; i < 16 && i < n; i++)
        if (fabsf(a[i] - b[i]) > lim) return 0;
    return surr_cosine(a, b, n) > SIG_COS;
}

/* The gradient signature of e through the env, into sig[0..sig_n). */
static int signature(const Search *s, const Expr *e, float *sig, char *err) {
    const SearchEnv *env = s->job->env;
    return env->signature(env->ctx, e, s->job->family, s->C, sig, s->sig_n, err);
}

/* Works for candidate ci at level l: every selection task and that level's seeds. */
static Res *ref_res(Search *s, const WorkRef *w);
static void apply_round(Search *s);

/* 1 when candidate ci is a reference of early stopping: the baseline or a panel loss. */
static int is_ref(const Search *s, int ci) {
    if (ci == s->baseline) return 1;
    for (int q = 0; q < s->npanel; q++)
        if (s->panel[q] == ci) return 1;
    return 0;
}

static size_t slot(const Search *s, int l, int task, int k) {
    return ((size_t)l * s->job->nsel + (size_t)task) * (size_t)s->nseed_max + (size_t)k;
}

/* Keeps the learning curve of reference ci's run at (level l, task, seed k). */
static void ref_record(Search *s, int ci, int l, int task, int k, const EvalResult *r) {
    Cand *c = &s->cands[ci];
    if (!is_ref(s, ci) || !r->ok || r->ncurve < 1) return;
    if (!c->ref) c->ref = calloc((size_t)s->job->nlevels * (size_t)s->job->nsel * (size_t)s->nseed_max, sizeof *c->ref);
    if (!c->ref) return; /* out of memory: no early stopping against it */
    RefCurve *rc = &c->ref[slot(s, l, task, k)];
    rc->n = r->ncurve < EVAL_CURVE_MAX ? r->ncurve : EVAL_CURVE_MAX;
    for (int i = 0; i < rc->n; i++) rc->val[i] = r->curve[i].val;
}

/* Early stopping (screen.c): w's stop bar, for candidate ci's run at (level l, task, seed k),
 * from the references' curves of earlier rounds on the same slot. */
static void stop_bar(const Search *s, int ci, int l, int task, int k, WorkItem *w) {
    float ref[(JOB_MAX_PANEL + 1) * EVAL_CURVE_MAX];
    int npts[JOB_MAX_PANEL + 1], nref = 0;
    if (!(s->job->stop_early > 0) || is_ref(s, ci)) return;
    for (int q = -1; q < s->npanel; q++) {
        const Cand *c = &s->cands[q < 0 ? s->baseline : s->panel[q]];
        if (!c->ref || c->ref[slot(s, l, task, k)].n < 1) continue;
        const RefCurve *rc = &c->ref[slot(s, l, task, k)];
        memcpy(ref + nref * EVAL_CURVE_MAX, rc->val, (size_t)rc->n * sizeof *rc->val);
        npts[nref++] = rc->n;
    }
    int hb = s->job->tasks[task].higher_better;
    w->nstop = screen_stop_bar(ref, npts, nref, s->job->stop_early, hb, w->stop_bar);
    w->stop_points = SCREEN_STOP_POINTS;
    w->stop_higher = hb;
}

/* Returns 1 when the caller's lookup had the result (stored, no work made), else 0. */
static int push_work(Search *s, int ci, int level, int task, int k, uint64_t seed, int steps) {
    if (s->lookup) {
        WorkItem q;
        EvalResult r;
        memset(&q, 0, sizeof q);
        memset(&r, 0, sizeof r);
        q.seq = -1;
        q.cand = s->cands[ci].id;
        q.task = task;
        q.seed = seed;
        q.steps = steps;
        snprintf(q.expr, sizeof q.expr, "%s", s->cands[ci].text);
        if (s->lookup(s->lookup_ctx, &q, s->cands[ci].hash, &r) == 1) {
            WorkRef ref = {ci, level, task, k};
            Res *x = ref_res(s, &ref);
            x->ok = r.ok ? 1 : 0;
            x->val = r.ok ? r.val : NAN;
            x->test = r.ok ? r.test : NAN;
            x->have = 1;
            if (level >= 0) ref_record(s, ci, level, task, k, &r);
            s->c.result_hits++;
            s->round_hits++;
            return 1;
        }
    }
    if (s->nworks == s->capworks) {
        int ncap = s->capworks ? s->capworks * 2 : 64;
        WorkItem *nw = realloc(s->works, (size_t)ncap * sizeof *nw);
        if (!nw) return LD_ENOMEM;
        s->works = nw;
        WorkRef *nr = realloc(s->refs, (size_t)ncap * sizeof *nr);
        if (!nr) return LD_ENOMEM;
        s->refs = nr;
        s->capworks = ncap;
    }
    WorkItem *w = &s->works[s->nworks];
    memset(w, 0, sizeof *w);
    w->seq = s->c.seq++;
    w->cand = s->cands[ci].id;
    w->task = task;
    w->seed = seed;
    w->steps = steps;
    snprintf(w->expr, sizeof w->expr, "%s", s->cands[ci].text);
    w->task_hash = job_task(s->job, task)->hash;
    w->precheck = level == 0 && s->cands[ci].need_pre;
    w->precheck_outputs = s->C;
    if (level >= 0) stop_bar(s, ci, level, task, k, w);
    s->refs[s->nworks] = (WorkRef){ci, level, task, k};
    s->nworks++;
    return 0;
}

static int level_cost(const Search *s, int l) { return s->job->nsel * lvl_seeds(s, l); }

static void schedule_level(Search *s, int ci, int l) {
    Cand *c = &s->cands[ci];
    for (int t = 0; t < s->job->nsel; t++)
        for (int k = 0; k < lvl_seeds(s, l); k++)
            if (!push_work(s, ci, l, t, k, eval_seed(s, t, k), job_level_steps(s->job, l, t)))
                s->c.evals++;
    c->sched = l;
}

/* Rounds every number in e to 6 significant digits, so a candidate's constants read as a person
 * would write them. Returns 1 if any number changed. */
static int round_consts(Expr *e) {
    if (!e) return 0;
    int changed = round_consts(e->a) | round_consts(e->b);
    if (e->op == EOP_NUM && isfinite(e->num)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.6g", e->num);
        double v = strtod(buf, NULL);
        if (v != e->num) {
            e->num = v;
            changed = 1;
        }
    }
    return changed;
}

/* Runs candidate tree e (takes it) through the admission pipeline: canonical form, the cache,
 * validity, gradient signature (reject or alias) and the pre-check. Returns the new candidate's
 * index when it is to be trained (not yet scheduled), else -1. */
/* The canonical tree of e (takes e) with its constants kept to 6 digits; NULL when out of
 * memory. */
static Expr *canonical_of(Expr *e) {
    Expr *c = expr_canonical(e);
    expr_free(e);
    if (c && round_consts(c)) { /* folding can leave 0.30000000000000004: keep 6 digits */
        Expr *again = expr_canonical(c);
        expr_free(c);
        c = again;
    }
    return c;
}

/* Computes candidate ci's gradient signature (cands[ci].sig allocated) and looks for an earlier
 * trained or waiting candidate that trains alike (never for losses that use t): when there is
 * one, ci becomes its alias and that one's index is returned; -1 when ci is new; -2 when the
 * signature failed (err says why; the caller rejects ci). */
static int signature_twin(Search *s, int ci, char *err) {
    Cand *cd = &s->cands[ci];
    double t0 = ld_now_ms();
    int src = signature(s, cd->e, cd->sig, err);
    s->sig_ms += ld_now_ms() - t0;
    if (src != LD_OK) return -2;
    unit(cd->sig, s->sig_n);
    for (int i = 0; i < ci && !cd->has_t; i++) {
        const Cand *o = &s->cands[i];
        if (!o->sig || (o->status != ST_ALIVE && o->status != ST_BASELINE) || o->has_t)
            continue;
        if (same_direction(cd->sig, o->sig, s->sig_n)) {
            cd->status = ST_ALIAS;
            cd->alias_of = o->id;
            free(cd->sig);
            cd->sig = NULL;
            return i;
        }
    }
    return -1;
}

static int dbl_cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The features of candidate c for the pre-screen (surrogate.c). */
static void cand_features(const Search *s, const Cand *c, double *x) {
    const float *refs[JOB_MAX_PANEL + 1];
    int nref = 0;
    refs[nref++] = s->cands[s->baseline].sig;
    for (int q = 0; q < s->npanel; q++) refs[nref++] = s->cands[s->panel[q]].sig;
    surr_features(c->e, c->sig, refs, nref, s->sig_n, s->here_tf, x);
}

/* Makes the prior's sums (once, at the first refit): each row's loss parsed, checked against
 * the job's family and inputs and probed for its signature like a candidate; rows that fail are
 * left out. */
static void prior_prepare(Search *s) {
    s->prior_done = 1;
    if (s->nprior == 0) return;
    const float *refs[JOB_MAX_PANEL + 1];
    int nref = 0;
    refs[nref++] = s->cands[s->baseline].sig;
    for (int q = 0; q < s->npanel; q++) refs[nref++] = s->cands[s->panel[q]].sig;
    s->prior_sums = surr_sums_new(s->here_tf);
    s->prior_here_y = malloc((size_t)s->nprior * sizeof *s->prior_here_y);
    float *sig = malloc((size_t)s->sig_n * sizeof *sig);
    if (!s->prior_sums || !s->prior_here_y || !sig) {
        free(s->prior_sums);
        s->prior_sums = NULL;
        free(sig);
        return;
    }
    for (int i = 0; i < s->nprior; i++) {
        char err[LD_ERR_MAX];
        const SurrPriorRow *r = &s->prior[i];
        Expr *e = expr_parse(r->expr, NULL);
        if (e && expr_check(e, s->job->family, err) == LD_OK && job_within_inputs(s->job, e, err) == LD_OK &&
            signature(s, e, sig, err) == LD_OK) {
            double x[SURR_NFEAT];
            unit(sig, s->sig_n);
            surr_features(e, sig, refs, nref, s->sig_n, r->tf, x);
            surr_sums_add(s->prior_sums, x, r->y, r->w);
            s->prior_used++;
            if (r->w == 1) s->prior_here_y[s->nprior_here++] = r->y;
        }
        expr_free(e);
    }
    free(sig);
}

/* Fits the pre-screen to the candidates that finished level 0 and to the earlier jobs' rows (at
 * the start of a round, so it depends only on the rounds already finished and the rows the job
 * started with). */
static void surr_refit(Search *s) {
    memset(&s->surr, 0, sizeof s->surr);
    if (!s->job->prescreen || s->c.round == 0) return;
    if (!s->prior_done) prior_prepare(s);
    int n = 0;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        n += c->status == ST_ALIVE && c->sig && c->done >= 0 && isfinite(c->fit[0]);
    }
    if (n + s->nprior_here < SURR_MIN_TRAIN) return;
    SurrSums *ss = surr_sums_new(s->here_tf);
    double *ys = malloc(((size_t)n + (size_t)s->nprior_here) * sizeof *ys);
    if (!ss || !ys) goto done;
    if (s->prior_sums) memcpy(ss, s->prior_sums, sizeof *ss);
    if (s->nprior_here > 0) memcpy(ys, s->prior_here_y, (size_t)s->nprior_here * sizeof *ys);
    int m = s->nprior_here;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if (!(c->status == ST_ALIVE && c->sig && c->done >= 0 && isfinite(c->fit[0]))) continue;
        double x[SURR_NFEAT];
        cand_features(s, c, x);
        ys[m] = c->fit[0] < SURR_CLAMP ? SURR_CLAMP : c->fit[0];
        surr_sums_add(ss, x, ys[m], 1);
        m++;
    }
    if (surr_fit_sums(&s->surr, ss, SURR_RIDGE) == LD_OK) {
        /* the median of this job's targets, or until it has SURR_MIN_TRAIN of them, of the
         * targets measured here (its own and earlier jobs' on its tasks and steps) */
        double *med = n >= SURR_MIN_TRAIN ? ys + s->nprior_here : ys;
        int nm = n >= SURR_MIN_TRAIN ? n : m;
        qsort(med, (size_t)nm, sizeof *med, dbl_cmp);
        s->surr_bar = nm % 2 ? med[nm / 2] : 0.5 * (med[nm / 2 - 1] + med[nm / 2]);
    } else {
        memset(&s->surr, 0, sizeof s->surr);
    }
done:
    free(ss);
    free(ys);
}

/* The pre-screen's verdict on a new candidate from variation: 1 (with err) when it is predicted
 * clearly worse than the median and is not one held out to be trained anyway. */
static int prescreened(Search *s, Cand *cd, const char *op, char *err) {
    /* the job's own losses and what a person proposed are always trained */
    static const char *const kept[] = {"panel", "known", "seed", "warm", NULL};
    if (s->surr.n == 0 || !cd->sig || cd->source) return 0;
    for (int i = 0; kept[i]; i++)
        if (!strcmp(op, kept[i])) return 0;
    double x[SURR_NFEAT];
    cand_features(s, cd, x);
    cd->pred = surr_predict(&s->surr, x);
    cd->pbar = s->surr_bar;
    if (!(cd->pred + SURR_Z * s->surr.resid_sd < s->surr_bar)) return 0;
    if (cd->hash % SURR_HOLDOUT == 0) {
        cd->hold = 1;
        return 0;
    }
    s->c.surr_skipped++;
    snprintf(err, LD_ERR_MAX, "pre-screen: predicted fitness %.3g (residual sd %.2g) below the median %.3g",
             cd->pred, s->surr.resid_sd, s->surr_bar);
    return 1;
}

static int admit(Search *s, Expr *e, const int64_t *parents, const char *op) {
    char err[LD_ERR_MAX], text[EXPR_TEXT_MAX];
    s->c.generated++;
    Expr *c = canonical_of(e);
    if (!c) return -1;
    if (expr_print(c, text, sizeof text) < 0) {
        expr_free(c);
        s->c.rejections++;
        add_reason(s, "too long to print");
        return -1;
    }
    /* expr_hash(c) would canonicalise and print c again: canonicalisation is idempotent, so
     * the hash of the canonical text just printed is the same value at a third of the cost */
    uint64_t h = ld_hash64(text, strlen(text));
    if (htab_find(s, h) >= 0) {
        expr_free(c);
        s->c.cache_hits++;
        return -1;
    }
    int ci = cand_add(s, c, text, h, parents, op);
    if (ci < 0) return -1;
    Cand *cd = &s->cands[ci];
    if (expr_size(cd->e) > s->job->max_nodes || expr_depth(cd->e) > s->job->max_depth) {
        snprintf(err, sizeof err, "outside the size limits (%d nodes, depth %d)", cd->size,
                 expr_depth(cd->e));
        goto reject;
    }
    if (expr_check(cd->e, s->job->family, err) != LD_OK) goto reject;
    cd->sig = malloc((size_t)s->sig_n * sizeof *cd->sig);
    if (!cd->sig) {
        snprintf(err, sizeof err, "out of memory");
        goto reject;
    }
    int twin = signature_twin(s, ci, err);
    if (twin == -2) goto reject;
    if (twin >= 0) {
        s->c.signature_hits++;
        return -1;
    }
    if (s->worker_precheck) {
        /* in the worker with the candidate's first works (WorkItem.precheck): it costs as
         * much as a few hundred signatures and would otherwise hold up the round */
        cd->need_pre = 1;
    } else {
        double t0 = ld_now_ms();
        const SearchEnv *env = s->job->env;
        int prc = env->precheck(env->ctx, cd->e, s->job->family, s->C, err);
        s->pre_ms += ld_now_ms() - t0;
        if (prc != LD_OK) goto reject;
    }
    if (prescreened(s, cd, op, err)) goto reject;
    cd->status = ST_ALIVE;
    return ci;
reject:
    cd->status = ST_REJECTED;
    cd->reason = strdup(err);
    free(cd->sig);
    cd->sig = NULL;
    s->c.rejections++;
    add_reason(s, err);
    return -1;
}

/* ---- fitness ---- */

static double mean_metric(const Search *s, Cand *c, int l, int t, int *failed) {
    double sum = 0;
    int n = lvl_seeds(s, l);
    for (int k = 0; k < n; k++) {
        Res *r = res_at(s, c, l, t, k);
        if (!r->ok || !isfinite(r->val)) {
            *failed = 1;
            return NAN;
        }
        sum += r->val;
    }
    return sum / n;
}

/* What fitness at level l on task t is measured against: the baseline's mean, or with a panel
 * the best mean of the baseline and the panel losses that finished the level (on validation).
 * *who (may be NULL) gets the candidate index of that loss. */
static double ref_metric(const Search *s, int l, int t, int *who) {
    int f = 0, hb = s->job->tasks[t].higher_better, w = s->baseline;
    double r = mean_metric(s, &s->cands[s->baseline], l, t, &f);
    for (int q = 0; q < s->npanel; q++) {
        Cand *p = &s->cands[s->panel[q]];
        int fp = 0;
        if (p->status != ST_ALIVE || p->sched < l) continue;
        double m = mean_metric(s, p, l, t, &fp);
        if (isfinite(m) && (!isfinite(r) || (hb ? m > r : m < r))) {
            r = m;
            w = s->panel[q];
        }
    }
    if (who) *who = w;
    return r;
}

static double cand_fitness(const Search *s, Cand *c, int l) {
    double sum = 0;
    for (int t = 0; t < s->job->nsel; t++) {
        int f1 = 0;
        double m = mean_metric(s, c, l, t, &f1);
        double bm = ref_metric(s, l, t, NULL);
        sum += surr_task_score(m, bm, s->job->tasks[t].higher_better);
    }
    return sum / s->job->nsel - s->job->parsimony * c->size;
}

static double cur_fitness(const Cand *c) { return c->done >= 0 ? c->fit[c->done] : -INFINITY; }

/* What ranks a candidate: its fitness on the final seeds once it has one (final_fitness), else
 * its fitness at its highest level. */
static double rank_fitness(const Cand *c) { return isnan(c->ffit) ? cur_fitness(c) : c->ffit; }

int search_tier(const Search *s, int64_t cand) {
    if (cand < 0 || cand >= s->ncand) return -1;
    const Cand *c = &s->cands[cand];
    return c->done >= 0 ? 4 * c->done + (c->collapsed ? 0 : 2) + !isnan(c->ffit) : -1;
}

/* Leaderboard order: the highest fidelity level reached, candidates without a collapsed seed
 * first, then those measured on the final seeds, then fitness (rank_fitness), then age
 * (search_tier and the store's job leaderboard follow the same key). */
static int rank_cmp(const Cand *a, const Cand *b) {
    if (a->done != b->done) return a->done > b->done ? -1 : 1;
    if (!a->collapsed != !b->collapsed) return a->collapsed ? 1 : -1;
    if (isnan(a->ffit) != isnan(b->ffit)) return isnan(a->ffit) ? 1 : -1;
    double fa = rank_fitness(a), fb = rank_fitness(b);
    if (fa != fb) return fa > fb ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int rank_qcmp(const void *x, const void *y, void *ctx) {
    const Search *s = ctx;
    return rank_cmp(&s->cands[*(const int *)x], &s->cands[*(const int *)y]);
}

/* Indices of ranked candidates (trained, with a result; the baseline included), best first.
 * Returns owned array, count in *n. */
static int *ranked(const Search *s, int *n) {
    int *idx = malloc(((size_t)s->ncand + 1) * sizeof *idx);
    *n = 0;
    if (!idx) return NULL;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if ((c->status == ST_ALIVE || c->status == ST_BASELINE) && c->done >= 0) idx[(*n)++] = i;
    }
    qsort_r(idx, (size_t)*n, sizeof *idx, rank_qcmp, (void *)s);
    return idx;
}

typedef struct LevelCtx {
    const Search *s;
    int level;
} LevelCtx;

static int level_qcmp(const void *x, const void *y, void *ctx) {
    const LevelCtx *lc = ctx;
    const Cand *a = &lc->s->cands[*(const int *)x], *b = &lc->s->cands[*(const int *)y];
    double fa = a->fit[lc->level], fb = b->fit[lc->level];
    if (fa != fb) return fa > fb ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- building rounds ---- */

static int tournament(Search *s) {
    int best = -1;
    for (int i = 0; i < s->job->tournament; i++) {
        int ci = s->pop[rng_below(&s->c.rng, (uint32_t)s->npop)];
        if (best < 0 || cur_fitness(&s->cands[ci]) > cur_fitness(&s->cands[best])) best = ci;
    }
    return best;
}

static int can_afford(const Search *s, int cost) { return s->c.evals + cost <= s->job->budget_evals; }

static void promotions(Search *s) {
    const SearchJob *j = s->job;
    int *idx = malloc(((size_t)s->ncand + 1) * sizeof *idx);
    double *fp = malloc(((size_t)s->ncand + 1) * sizeof *fp);
    if (!idx || !fp) {
        free(idx);
        free(fp);
        return;
    }
    for (int l = j->nlevels - 2; l >= 0; l--) {
        int n = 0, np = 0;
        for (int i = 0; i < s->ncand; i++) {
            Cand *c = &s->cands[i];
            if (c->status == ST_ALIVE && c->done >= l) idx[n++] = i;
            if (c->status == ST_ALIVE && c->done >= l && c->sched > l) fp[np++] = c->fit[l];
        }
        /* fixed for the round: promotions below do not move it */
        double bar = screen_rung_bar(fp, np, j->budget_evals < SCREEN_RUNG_SMALL);
        LevelCtx lc = {s, l};
        qsort_r(idx, (size_t)n, sizeof *idx, level_qcmp, &lc);
        int k = (int)floor(n * j->promote + 1e-9);
        for (int r = 0; r < k; r++) {
            Cand *c = &s->cands[idx[r]];
            if (c->sched > l) continue;
            if (c->fit[l] < bar) continue; /* the rung bar (screen.c) */
            Cand *b = &s->cands[s->baseline];
            int cost = level_cost(s, l + 1) + (b->sched < l + 1 ? level_cost(s, l + 1) : 0);
            for (int q = 0; q < s->npanel; q++)
                cost += s->cands[s->panel[q]].status == ST_ALIVE && s->cands[s->panel[q]].sched < l + 1
                            ? level_cost(s, l + 1) : 0;
            if (!can_afford(s, cost)) break;
            if (b->sched < l + 1) schedule_level(s, s->baseline, l + 1);
            for (int q = 0; q < s->npanel; q++) /* the panel runs wherever the baseline runs */
                if (s->cands[s->panel[q]].status == ST_ALIVE && s->cands[s->panel[q]].sched < l + 1)
                    schedule_level(s, s->panel[q], l + 1);
            schedule_level(s, idx[r], l + 1);
            s->c.promotions++;
        }
    }
    free(idx);
    free(fp);
}

static int uses_allowed_terms(const Search *s, const Expr *e) {
    if (!e) return 1;
    if (e->op == EOP_TERM && !((s->job->terms >> e->id) & 1u)) return 0;
    return uses_allowed_terms(s, e->a) && uses_allowed_terms(s, e->b);
}

/* Adds text as an initial candidate when it parses; returns 1 if it is to be trained.
 * check_terms: 1, only with the terms the job allows; 2, only with what its tasks provide (a
 * warm start from another job of the family may read another model kind's inputs). */
static int admit_text(Search *s, const char *text, const char *op, int check_terms) {
    Expr *e = expr_parse(text, NULL);
    if (!e) return 0;
    if ((check_terms == 1 && !uses_allowed_terms(s, e)) ||
        (check_terms == 2 && job_within_inputs(s->job, e, NULL) != LD_OK)) {
        expr_free(e);
        return 0;
    }
    int ci = admit(s, e, NULL, op);
    if (ci < 0) return 0;
    schedule_level(s, ci, 0);
    return 1;
}

/* Schedules level 0 of every accepted proposal still waiting (an alive candidate never
 * scheduled is one: every other is scheduled when admitted), oldest first. Their cost was
 * reserved when they were accepted. */
static int schedule_proposals(Search *s) {
    int n = 0;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if (c->status == ST_ALIVE && c->sched < 0 && c->source) {
            schedule_level(s, i, 0);
            n++;
        }
    }
    return n;
}

/* Evaluations reserved by accepted proposals that wait for the next round. */
static int proposals_reserved(const Search *s) {
    int n = 0;
    for (int i = 0; i < s->ncand; i++)
        n += s->cands[i].status == ST_ALIVE && s->cands[i].sched < 0 && s->cands[i].source;
    return n * level_cost(s, 0);
}

static void initial_round(Search *s) {
    const SearchJob *j = s->job;
    int want = j->population, made = 0, cost = level_cost(s, 0);
    schedule_level(s, s->baseline, 0);
    for (int i = 0; i < j->npanel && s->npanel < JOB_MAX_PANEL; i++) {
        Expr *e = expr_parse(j->panel[i], NULL);
        int ci = e ? admit(s, e, NULL, "panel") : -1;
        if (ci < 0) continue; /* the same loss as the baseline, or refused */
        schedule_level(s, ci, 0);
        s->panel[s->npanel++] = ci;
    }
    schedule_proposals(s); /* proposals sent before the first round: reserved, so first */
    if (j->evaluate_only) { /* no variation: the seed losses, then only what is proposed */
        for (int i = 0; i < j->nseed_losses && can_afford(s, cost); i++)
            admit_text(s, j->seed_losses[i], "seed", 0);
        return;
    }
    if (j->warm_start)
        for (int i = 0; i < s->nwarm && made < want && can_afford(s, cost); i++) {
            int ok = admit_text(s, s->warm[i], "warm", 2);
            made += ok;
            s->c.warm_used += ok;
        }
    for (int i = 0; i < j->nseed_losses && made < want && can_afford(s, cost); i++)
        made += admit_text(s, j->seed_losses[i], "seed", 0);
    if (j->init != INIT_SCRATCH) {
        const char *const *known = j->fam.known; /* the family's textbook losses */
        for (int i = 0; known && known[i] && made < want && can_afford(s, cost); i++)
            made += admit_text(s, known[i], "known", 1);
    }
    /* from scratch: primitives only, named terms come later through mutation */
    Grammar g0 = s->g;
    if (j->init == INIT_SCRATCH && (g0.vars & ~(1u << VAR_T))) g0.terms = 0;
    int attempts = 0;
    while (made < want && can_afford(s, cost) && attempts++ < want * 20) {
        Expr *e = grammar_random(&g0, &s->c.rng);
        if (!e) continue;
        int ci = admit(s, e, NULL, "random");
        if (ci < 0) continue;
        schedule_level(s, ci, 0);
        made++;
    }
}

static int best_alive(const Search *s) {
    int best = -1;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if (c->status != ST_ALIVE || c->done < 0) continue;
        if (best < 0 || rank_cmp(c, &s->cands[best]) < 0) best = i;
    }
    return best;
}

/* Coefficient tuning: for each of the TUNE_LEADS best distinct shapes, tune.lambda children whose
 * constants come from the model fit to every trained candidate of that shape (tune.c); a shape
 * with a single candidate gets the (1+lambda)-ES step instead (each constant times
 * exp(sigma N(0,1))); and one child with a mixture term scaled by 10 or 0.1 (tune_decade).
 * Returns the children scheduled. */
static int tune_round(Search *s, int cost) {
    const SearchJob *j = s->job;
    int n = 0, made = 0, nlead = 0;
    uint64_t leads[TUNE_LEADS];
    int *idx = ranked(s, &n);
    double *hist = malloc(sizeof *hist * TUNE_MAX_HIST * TUNE_MAX_CONSTS);
    uint64_t *shape = malloc(sizeof *shape * ((size_t)n + 1));
    for (int r = 0; idx && hist && shape && r < n; r++) shape[r] = tune_shape(s->cands[idx[r]].e);
    for (int r = 0; idx && hist && shape && r < n && nlead < TUNE_LEADS; r++) {
        int li = idx[r]; /* an index: admit() may move the candidates */
        int seen = s->cands[li].status != ST_ALIVE;
        for (int q = 0; q < nlead; q++) seen |= leads[q] == shape[r];
        if (seen) continue;
        leads[nlead++] = shape[r];
        double v[TUNE_MAX_CONSTS];
        int nc = tune_consts(s->cands[li].e, v, TUNE_MAX_CONSTS), nh = 0;
        if (nc <= 0) continue; /* nothing to tune */
        for (int q = r; q < n && nh < TUNE_MAX_HIST; q++)
            if (shape[q] == shape[r] && s->cands[idx[q]].status == ST_ALIVE &&
                tune_consts(s->cands[idx[q]].e, hist + (size_t)nh * nc, nc) == nc)
                nh++;
        for (int i = 0; i < j->tune_lambda && can_afford(s, cost); i++) {
            const Expr *le = s->cands[li].e;
            Expr *e = nh >= 2 ? tune_propose(&s->g, le, hist, nh, nc, &s->c.rng)
                              : grammar_perturb(&s->g, le, j->tune_sigma, &s->c.rng);
            if (!e) break;
            int64_t par[2] = {s->cands[li].id, -1};
            int ci = admit(s, e, par, "tune");
            if (ci < 0) continue;
            schedule_level(s, ci, 0);
            s->c.tuned++;
            made++;
        }
        Expr *e = can_afford(s, cost) ? tune_decade(&s->g, s->cands[li].e, &s->c.rng) : NULL;
        int64_t par[2] = {s->cands[li].id, -1};
        int ci = e ? admit(s, e, par, "tune") : -1;
        if (ci >= 0) {
            schedule_level(s, ci, 0);
            s->c.tuned++;
            made++;
        }
    }
    free(idx);
    free(hist);
    free(shape);
    return made;
}

static void children_round(Search *s) {
    const SearchJob *j = s->job;
    int cost = level_cost(s, 0), made = 0;
    if (s->npop == 0) {
        /* every earlier candidate was turned away: start over from random ones */
        int attempts = 0;
        while (made < j->children && can_afford(s, cost) && attempts++ < j->children * 20) {
            Expr *e = grammar_random(&s->g, &s->c.rng);
            int ci = e ? admit(s, e, NULL, "random") : -1;
            if (ci < 0) continue;
            schedule_level(s, ci, 0);
            made++;
        }
        return;
    }
    if (j->tune_every > 0 && s->c.round % j->tune_every == 0) made += tune_round(s, cost);
    int attempts = 0;
    while (made < j->children && can_afford(s, cost) && attempts++ < j->children * 10) {
        int p1 = tournament(s);
        Expr *e;
        int64_t par[2] = {s->cands[p1].id, -1};
        const char *op = "mutate";
        if (s->npop >= 2 && rng_uniform(&s->c.rng) < CROSSOVER_RATE) {
            int p2 = tournament(s);
            par[1] = s->cands[p2].id;
            e = p1 == p2 ? NULL : grammar_crossover(&s->g, s->cands[p1].e, s->cands[p2].e,
                                                     &s->c.rng);
            op = "crossover";
        } else {
            e = grammar_mutate(&s->g, s->cands[p1].e, &s->c.rng, &op);
        }
        if (!e) continue;
        int ci = admit(s, e, par, op);
        if (ci < 0) continue;
        schedule_level(s, ci, 0);
        made++;
    }
}

/* The panel loss (the baseline included) with the best fitness at the highest level any of them
 * finished: the textbook loss to beat, chosen on validation; -1 without a panel. */
static int panel_best(const Search *s) {
    int best = -1;
    for (int q = -1; s->npanel > 0 && q < s->npanel; q++) {
        int ci = q < 0 ? s->baseline : s->panel[q];
        const Cand *c = &s->cands[ci];
        if (c->status != ST_ALIVE && c->status != ST_BASELINE) continue;
        if (best < 0 || c->done > s->cands[best].done ||
            (c->done == s->cands[best].done && cur_fitness(c) > cur_fitness(&s->cands[best])))
            best = ci;
    }
    return best;
}

static void final_round(Search *s) {
    const SearchJob *j = s->job;
    int n = 0;
    int *idx = ranked(s, &n);
    if (!idx) return;
    int top = j->nlevels - 1, chosen = 0;
    for (int r = 0; r < n && chosen < j->final_top; r++) {
        /* final.top counts the search's candidates: the best panel loss joins the final anyway */
        if (idx[r] == s->baseline || !strcmp(s->cands[idx[r]].op, "panel")) continue;
        chosen++;
        int pb = panel_best(s);
        int list[3] = {idx[r], s->baseline, pb >= 0 && pb != s->baseline ? pb : -1};
        for (int q = 0; q < 3; q++) {
            int ci = list[q];
            if (ci < 0 || s->cands[ci].fin) continue; /* each loss once */
            Cand *c = &s->cands[ci];
            c->fin = calloc((size_t)s->nfin_tasks * (size_t)s->fin_cap, sizeof *c->fin);
            if (!c->fin) continue;
            c->fin_n = j->final_seeds;
            for (int t = 0; t < s->nfin_tasks; t++)
                for (int k = 0; k < j->final_seeds; k++) {
                    int task = s->fin_task0 + t;
                    if (!push_work(s, ci, -1, task, k, final_seed(s, task, k),
                                   job_level_steps(j, top, task)))
                        s->c.final_evals++;
                }
        }
    }
    free(idx);
    s->c.final_issued = 1;
}

/* The final evaluation's values of candidate c on final task t (val split), one per seed. */
static int final_vals(const Search *s, const Cand *c, int t, double *v) {
    for (int k = 0; k < c->fin_n; k++) {
        const Res *r = &c->fin[t * s->fin_cap + k];
        v[k] = r->have && r->ok ? r->val : NAN;
    }
    return c->fin_n;
}

static int final_scores(const Search *s, const Cand *c, double *score);

/* Once the final evaluation is in: final.seeds more seeds for each candidate whose seeds
 * collapsed or spread much more than the baseline's (stable_needs_more), or whose gain over the
 * reference is positive but within the noise of its seeds (stable_within_noise), and for the
 * baseline and the best panel loss so that the comparison stays paired. */
static void final_more_round(Search *s) {
    const SearchJob *j = s->job;
    Cand *b = &s->cands[s->baseline];
    int top = j->nlevels - 1, any = 0, pb = panel_best(s);
    s->c.final_more = 1;
    if (!b->fin || s->fin_cap <= j->final_seeds) return;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < s->ncand; i++) {
            Cand *c = &s->cands[i];
            if (!c->fin || c->fin_n != j->final_seeds) continue;
            int more = 0, ref = i == s->baseline || i == pb;
            if (pass == 0 && !ref) {
                for (int t = 0; t < s->nfin_tasks && !more; t++) {
                    double v[STABLE_MAX_SEEDS], bv[STABLE_MAX_SEEDS];
                    int n = final_vals(s, c, t, v);
                    final_vals(s, b, t, bv);
                    more = stable_needs_more(v, bv, n, j->tasks[s->fin_task0 + t].higher_better);
                }
                double g[STABLE_MAX_SEEDS];
                int ng = final_scores(s, c, g);
                more |= ng > 0 && stable_within_noise(g, ng);
            } else if (pass == 1 && ref) {
                more = any;
            }
            if (!more) continue;
            any = 1;
            for (int t = 0; t < s->nfin_tasks; t++)
                for (int k = j->final_seeds; k < s->fin_cap; k++) {
                    int task = s->fin_task0 + t;
                    if (!push_work(s, i, -1, task, k, final_seed(s, task, k), job_level_steps(j, top, task)))
                        s->c.final_evals++;
                }
            c->fin_n = s->fin_cap;
        }
}

/* Once the final evaluation (and its added seeds) is in: each of its losses (the leaders, the
 * baseline, the best panel loss) trains again on fresh seeds under the user's recipe, on every
 * final task's horizon task. */
static void horizon_round(Search *s) {
    const SearchJob *j = s->job;
    s->c.horizon_issued = 1;
    for (int i = 0; i < s->ncand && j->nhor > 0; i++) {
        Cand *c = &s->cands[i];
        if (!c->fin || c->hor) continue;
        c->hor = calloc((size_t)j->nhor * (size_t)j->hor_seeds, sizeof *c->hor);
        if (!c->hor) continue;
        for (int t = 0; t < j->nhor; t++)
            for (int k = 0; k < j->hor_seeds; k++)
                if (!push_work(s, i, LEVEL_HORIZON, j->ntasks + t, k, horizon_seed(s, t, k),
                               job_horizon_steps(j, t)))
                    s->c.horizon_evals++;
    }
}

static void build_round(Search *s) {
    s->c0 = s->c;
    s->ncand0 = s->ncand;
    memcpy(s->reasons0, s->reasons, sizeof s->reasons);
    s->nreasons0 = s->nreasons;
    for (int i = 0; i < s->ncand; i++) s->cands[i].sched_prev = s->cands[i].sched;
    s->nworks = 0;
    s->round_hits = 0;
    s->waiting = 0;
    if (s->c.phase == PH_SEARCH) {
        if (s->c.hard) {
            s->c.phase = PH_DONE;
        } else if ((s->c.stopped && s->c.round >= s->c.stop_from) ||
                   s->c.evals >= s->job->budget_evals ||
                   s->c.evals + s->c.result_hits >= 10 * s->job->budget_evals) {
            /* results from the lookup are free, but a search still ends */
            s->c.phase = PH_FINAL;
        } else {
            if (s->c.round == 0) {
                initial_round(s);
            } else {
                surr_refit(s);
                schedule_proposals(s); /* reserved when accepted: before anything else */
                promotions(s);
                if (!s->job->evaluate_only) children_round(s);
            }
            if (s->nworks == 0 && s->round_hits == 0) {
                /* an evaluate-only job waits for what its proposer sends while a proposal fits
                 * in the budget; building an empty round changed nothing */
                if (s->job->evaluate_only && s->wait_props && !s->c.stopped &&
                    can_afford(s, level_cost(s, 0)))
                    s->waiting = 1;
                else
                    s->c.phase = PH_FINAL;
            }
        }
    }
    if (s->c.phase == PH_FINAL && s->nworks == 0 && s->round_hits == 0) {
        if (!s->c.final_issued && !s->c.hard && s->job->final_top > 0) final_round(s);
        else if (s->c.final_issued && !s->c.final_more && !s->c.hard) final_more_round(s);
        if (s->nworks == 0 && s->round_hits == 0 && s->c.final_more && !s->c.horizon_issued && !s->c.hard)
            horizon_round(s);
        if (s->nworks == 0 && s->round_hits == 0) s->c.phase = PH_DONE;
    }
}

static void open_round(Search *s) {
    /* a round whose every result the lookup already had is applied at once */
    for (;;) {
        build_round(s);
        if (s->nworks > 0 || s->round_hits == 0) break;
        apply_round(s);
    }
    s->round_open = s->nworks > 0;
}

int search_round(Search *s, const WorkItem **works) {
    *works = NULL;
    if (!s->round_open) {
        if (s->c.phase == PH_DONE) return 0;
        double t0 = ld_now_ms();
        open_round(s);
        s->engine_ms += ld_now_ms() - t0;
        if (!s->round_open) return 0;
    }
    *works = s->works;
    return s->nworks;
}

static int level_complete(const Search *s, Cand *c, int l) {
    for (int t = 0; t < s->job->nsel; t++)
        for (int k = 0; k < lvl_seeds(s, l); k++)
            if (!res_at(s, c, l, t, k)->have) return 0;
    return 1;
}

static void pop_add(Search *s, int ci) {
    if (s->npop == s->job->population) {
        s->cands[s->pop[0]].in_pop = 0;
        memmove(s->pop, s->pop + 1, (size_t)(s->npop - 1) * sizeof *s->pop);
        s->npop--;
    }
    s->pop[s->npop++] = ci;
    s->cands[ci].in_pop = 1;
}

/* Seeds of c's final evaluation whose results are all in, on every final task (0: not yet). */
static int final_have(const Search *s, const Cand *c) {
    int n = c->fin ? c->fin_n : 0;
    for (int t = 0; t < s->nfin_tasks; t++)
        for (int k = 0; k < n; k++)
            if (!c->fin[t * s->fin_cap + k].have) return 0;
    return n;
}

/* The final selection (docs/jobs.md, "Final selection"): the fitness of a candidate the final
 * evaluation re-trained, on its final seeds (fresh seeds at the top level, validation split):
 * its relative gain over the baseline, or with a panel the better of the baseline and the best
 * panel loss, seed by seed on the same seeds, as the lower bound of its mean
 * (stable_lower_bound). The candidates of the top level were chosen on the few
 * seeds of that level, so their fitness there is biased up by the choosing; fresh seeds are not.
 * NaN when the final evaluation ran on holdout tasks (a check, never selection), or is not in. */
/* The per-seed gains of c on the final seeds into score (see final_fitness); their count, 0
 * when they are not in (or the final evaluation ran on holdout tasks). */
static int final_scores(const Search *s, const Cand *c, double *score) {
    const SearchJob *j = s->job;
    const Cand *b = &s->cands[s->baseline];
    int pb = panel_best(s);
    const Cand *p = pb >= 0 && pb != s->baseline ? &s->cands[pb] : NULL;
    int nc = final_have(s, c), nb = final_have(s, b), np = p ? final_have(s, p) : 0;
    if (j->ntasks > j->nsel || nc == 0 || nb == 0) return 0;
    int ns = nc < nb ? nc : nb;
    if (np > 0 && np < ns) ns = np;
    for (int k = 0; k < ns; k++) score[k] = 0; /* per seed: the mean over tasks of the gain */
    for (int t = 0; t < s->nfin_tasks; t++) {
        int hb = j->tasks[s->fin_task0 + t].higher_better;
        double v[STABLE_MAX_SEEDS], bv[STABLE_MAX_SEEDS], pv[STABLE_MAX_SEEDS], r = 0, rp = 0;
        final_vals(s, c, t, v); /* a failed run (NaN) scores its seed -1 */
        final_vals(s, b, t, bv);
        for (int k = 0; k < ns; k++) r += bv[k] / ns;
        const double *ref = bv; /* the reference: the better of the two by its mean */
        if (np > 0) {
            final_vals(s, p, t, pv);
            for (int k = 0; k < ns; k++) rp += pv[k] / ns;
            if (isfinite(rp) && (!isfinite(r) || (hb ? rp > r : rp < r))) ref = pv;
        }
        for (int k = 0; k < ns; k++) score[k] += surr_task_score(v[k], ref[k], hb) / s->nfin_tasks;
    }
    return ns;
}

static double final_fitness(const Search *s, const Cand *c) {
    double score[STABLE_MAX_SEEDS];
    int ns = final_scores(s, c, score);
    return ns ? stable_lower_bound(score, ns) - s->job->parsimony * c->size : NAN;
}

/* Brings done, fitness and the population up to date with the results stored so far. */
static void settle(Search *s) {
    Cand *b = &s->cands[s->baseline];
    while (b->done < b->sched && level_complete(s, b, b->done + 1)) b->done++;
    for (int i = 0; i < s->ncand; i++) {
        Cand *c = &s->cands[i];
        if (c->status != ST_ALIVE && c->status != ST_BASELINE) continue;
        while (c->done < c->sched && c->done < b->done && level_complete(s, c, c->done + 1)) {
            c->done++;
            c->fit[c->done] = cand_fitness(s, c, c->done);
        }
        if (c->status == ST_BASELINE)
            for (int l = 0; l <= c->done; l++) c->fit[l] = cand_fitness(s, c, l);
        c->collapsed = 0;
        for (int t = 0; c->fin && c->status == ST_ALIVE && t < s->nfin_tasks; t++) {
            double v[STABLE_MAX_SEEDS];
            int n = final_vals(s, c, t, v), have = 1;
            for (int k = 0; k < n; k++) have &= c->fin[t * s->fin_cap + k].have;
            if (have) c->collapsed += stable_collapsed(v, n, s->job->tasks[s->fin_task0 + t].higher_better, NULL);
        }
    }
    for (int i = 0; i < s->ncand; i++) { /* once every final result of the round is in */
        Cand *c = &s->cands[i];
        c->ffit = (c->status == ST_ALIVE || c->status == ST_BASELINE) && c->fin ? final_fitness(s, c) : NAN;
    }
}

static Res *ref_res(Search *s, const WorkRef *w) {
    Cand *c = &s->cands[w->cand];
    if (w->level == LEVEL_HORIZON) return &c->hor[(w->task - s->job->ntasks) * s->job->hor_seeds + w->k];
    return w->level >= 0 ? res_at(s, c, w->level, w->task, w->k)
                         : &c->fin[(w->task - s->fin_task0) * s->fin_cap + w->k];
}

/* Records when a trained candidate first matched the baseline's fitness (evals_to_baseline):
 * checked once per round, in candidate order, so it is deterministic. */
static void note_reached_baseline(Search *s) {
    if (s->c.to_base >= 0 && s->c.to_base_top >= 0) return;
    const Cand *b = &s->cands[s->baseline];
    int top = s->job->nlevels - 1;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if (c->status != ST_ALIVE || c->done < 0 || b->done < c->done) continue;
        if (!(c->fit[c->done] >= b->fit[c->done])) continue;
        if (s->c.to_base < 0) {
            s->c.to_base = s->c.evals;
            s->c.to_base_cand = c->id;
        }
        if (c->done == top && s->c.to_base_top < 0) {
            s->c.to_base_top = s->c.evals;
            s->c.to_base_top_cand = c->id;
        }
    }
}

/* With every result of the round stored: levels, fitness, the population, the next round. */
static void apply_round(Search *s) {
    int before = s->ncand;
    int *was_done = malloc(((size_t)before + 1) * sizeof *was_done);
    for (int i = 0; was_done && i < before; i++) was_done[i] = s->cands[i].done;
    settle(s);
    /* children join the population in the order they were made once their first level is in */
    for (int i = 0; i < s->ncand; i++) {
        Cand *c = &s->cands[i];
        if (c->status == ST_ALIVE && !c->in_pop && c->done >= 0 &&
            (!was_done || was_done[i] < 0))
            pop_add(s, i);
    }
    free(was_done);
    if (s->c.phase == PH_SEARCH) note_reached_baseline(s);
    s->c.round++;
    s->round_open = 0;
    s->nworks = 0;
}

/* Index of the open round's work with this seq, or -1 (works are in increasing seq order). */
static int work_index(const Search *s, int64_t seq) {
    int lo = 0, hi = s->nworks - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->works[mid].seq == seq) return mid;
        if (s->works[mid].seq < seq) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int search_finish_round(Search *s, const WorkOutcome *outs, int n, char *err) {
    if (!s->round_open) return ld_err(err, LD_ESTATE, "search: no round is open");
    if (n != s->nworks)
        return ld_err(err, LD_EINVAL, "search: %d outcomes for a round of %d works", n, s->nworks);
    /* outcomes arrive in any order: place each at its work, then apply in the round's order */
    const WorkOutcome **by = calloc((size_t)(n > 0 ? n : 1), sizeof *by);
    if (!by) return ld_err(err, LD_ENOMEM, "search: out of memory");
    for (int k = 0; k < n; k++) {
        int i = work_index(s, outs[k].seq);
        if (i < 0 || by[i]) {
            free(by);
            return ld_err(err, LD_EINVAL, "search: outcome seq %lld %s", (long long)outs[k].seq,
                          i < 0 ? "names no work of the round" : "comes twice");
        }
        if (outs[k].status == WORK_CANCELLED) {
            free(by);
            return ld_err(err, LD_EINVAL, "search: work seq %lld was cancelled: run it again",
                          (long long)outs[k].seq);
        }
        by[i] = &outs[k];
    }
    double t0 = ld_now_ms();
    for (int i = 0; i < s->nworks; i++) {
        Res *x = ref_res(s, &s->refs[i]);
        const WorkOutcome *o = by[i];
        const EvalResult *r = &o->res;
        int ok = o->status == WORK_OK;
        Cand *c = &s->cands[s->refs[i].cand];
        if (s->works[i].precheck) {
            c->need_pre = 0;
            if (o->status == WORK_REJECTED) {
                s->c.evals--; /* not trained: the budget gets it back */
                if (c->status == ST_ALIVE) {
                    c->status = ST_REJECTED;
                    free(c->reason);
                    c->reason = strdup(r->error);
                    s->c.rejections++;
                    add_reason(s, r->error);
                }
            }
        }
        x->ok = ok;
        x->val = ok ? r->val : NAN;
        x->test = ok ? r->test : NAN;
        x->have = 1;
        const WorkRef *wr = &s->refs[i];
        if (wr->level >= 0 && o->status != WORK_REJECTED) {
            ref_record(s, wr->cand, wr->level, wr->task, wr->k, r);
            s->c.level_steps += s->works[i].steps;
            if (r->stopped && o->status == WORK_FAILED) {
                s->c.early_stopped++;
                s->c.early_saved += s->works[i].steps - r->steps;
            }
        }
    }
    /* fitness is measured against the baseline: a baseline that failed every run of its first
     * level on a selection task leaves nothing to measure against, so the search ends there */
    Cand *b = &s->cands[s->baseline];
    for (int t = 0; t < s->job->nsel; t++) {
        int have = 1, okn = 0;
        const char *why = NULL;
        for (int k = 0; k < lvl_seeds(s, 0); k++) {
            const Res *x = res_at(s, b, 0, t, k);
            have &= x->have;
            okn += x->ok;
        }
        if (!have || okn > 0) continue;
        for (int i = 0; i < s->nworks && !why; i++)
            if (s->refs[i].cand == s->baseline && s->refs[i].level == 0 && s->refs[i].task == t)
                why = by[i]->res.error;
        if (!why) continue; /* failed in an earlier round, already reported */
        int rc = ld_err(err, LD_EFAILED, "the baseline %.60s failed on every run of task %d (%.40s): %.100s",
                        b->text, t, s->job->tasks[t].name, why[0] ? why : "no reason given");
        free(by);
        return rc;
    }
    free(by);
    apply_round(s);
    s->engine_ms += ld_now_ms() - t0;
    return LD_OK;
}

void search_set_worker_precheck(Search *s, int on) { s->worker_precheck = on ? 1 : 0; }

void search_set_lookup(Search *s, SearchLookupFn fn, void *ctx) {
    s->lookup = fn;
    s->lookup_ctx = ctx;
}

int search_done(const Search *s) { return s->c.phase == PH_DONE && !s->round_open; }

void search_stop(Search *s, int hard) {
    if (!s->c.stopped) {
        s->c.stopped = 1;
        /* the open round was built before the stop: a restored engine must rebuild it so */
        s->c.stop_from = s->c.round + (s->round_open ? 1 : 0);
    }
    if (hard) s->c.hard = 1;
    s->waiting = 0;
}

/* ---- proposals (search.h) ---- */

void search_set_wait_for_proposals(Search *s, int on) { s->wait_props = on ? 1 : 0; }

int search_waiting(const Search *s) {
    return s->waiting && !s->round_open && s->c.phase == PH_SEARCH;
}

int search_accepts_proposals(const Search *s) {
    return s->c.phase == PH_SEARCH && !s->c.stopped && !s->c.hard;
}

int64_t search_point(const Search *s) { return 2 * (int64_t)s->c.round + (s->round_open ? 1 : 0); }

int64_t search_nproposed(const Search *s) { return s->c.proposed; }

static int refuse(Search *s, SearchProposal *out, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(Search *s, SearchProposal *out, const char *stage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    out->status = PROPOSAL_REFUSED;
    out->why = stage;
    s->c.prop_refused++;
    return LD_OK;
}

int search_propose(Search *s, const char *text, const char *source, SearchProposal *out) {
    char err[LD_ERR_MAX];
    const SearchJob *j = s->job;
    double t0 = ld_now_ms();
    memset(out, 0, sizeof *out);
    out->cand = out->same_form_as = -1;
    s->c.proposed++;
    if (!search_accepts_proposals(s))
        return refuse(s, out, "state", "the search takes no more proposals (%s)",
                      s->c.phase != PH_SEARCH ? "its search phase is over" : "it was stopped");
    /* the proposer's own text is checked first, so messages point into what they wrote */
    Expr *e = expr_parse(text, err);
    if (!e) return refuse(s, out, "parse", "%s", err);
    if (expr_check(e, j->family, err) != LD_OK) {
        expr_free(e);
        return refuse(s, out, "check", "%s", err);
    }
    Expr *c = canonical_of(e);
    if (!c) return LD_ENOMEM;
    if (expr_print(c, out->canonical, sizeof out->canonical) < 0) {
        expr_free(c);
        out->canonical[0] = 0;
        return refuse(s, out, "limits", "longer than %d characters in canonical form", EXPR_TEXT_MAX);
    }
    uint64_t h = ld_hash64(out->canonical, strlen(out->canonical));
    int dup = htab_find(s, h);
    if (dup >= 0) {
        expr_free(c);
        out->status = PROPOSAL_DUPLICATE;
        out->cand = s->cands[dup].id;
        out->why = "same canonical form";
        if (s->cands[dup].status == ST_ALIAS) { /* that one trains as another: name the other */
            out->same_form_as = out->cand;
            out->cand = s->cands[dup].alias_of;
            out->why = "same gradient signature";
        }
        s->c.prop_duplicates++;
        return LD_OK;
    }
    int size = expr_size(c), depth = expr_depth(c);
    if (size > SEARCH_PROPOSAL_MAX_NODES || depth > SEARCH_PROPOSAL_MAX_DEPTH) {
        expr_free(c);
        return refuse(s, out, "limits", "%d nodes, depth %d in canonical form: a proposal may have "
                      "at most %d nodes and depth %d", size, depth, SEARCH_PROPOSAL_MAX_NODES,
                      SEARCH_PROPOSAL_MAX_DEPTH);
    }
    if (expr_check(c, j->family, err) != LD_OK) { /* folding can leave no output to train */
        expr_free(c);
        return refuse(s, out, "check", "canonical form %.80s: %s", out->canonical, err);
    }
    int cost = level_cost(s, 0), reserved = proposals_reserved(s);
    if (s->c.round == 0 && !s->round_open) /* the first round also runs the baseline and panel */
        reserved += level_cost(s, 0) * (1 + j->npanel);
    if (!can_afford(s, reserved + cost)) {
        expr_free(c);
        return refuse(s, out, "budget", "budget.evaluations: %d of %d spent or reserved, a proposal "
                      "needs %d (one level-0 run per selection task)", s->c.evals + reserved,
                      j->budget_evals, cost);
    }
    int ci = cand_add(s, c, out->canonical, h, NULL, "proposed");
    if (ci < 0) return LD_ENOMEM;
    Cand *cd = &s->cands[ci];
    cd->status = ST_REJECTED; /* until every check passed */
    cd->source = strdup(source && *source ? source : "user");
    cd->sig = malloc((size_t)s->sig_n * sizeof *cd->sig);
    if (!cd->source || !cd->sig) return LD_ENOMEM;
    out->cand = cd->id;
    int twin = signature_twin(s, ci, err);
    if (twin == -2) goto rejected;
    if (twin >= 0) {
        out->status = PROPOSAL_DUPLICATE;
        out->cand = s->cands[twin].id;
        out->why = "same gradient signature";
        s->c.prop_duplicates++;
        s->engine_ms += ld_now_ms() - t0;
        return LD_OK;
    }
    /* here, not in a worker: the proposer hears at once that the loss cannot train */
    if (j->env->precheck(j->env->ctx, cd->e, j->family, s->C, err) != LD_OK) goto rejected;
    cd->status = ST_ALIVE; /* waits for the next round (schedule_proposals) */
    out->status = PROPOSAL_ACCEPTED;
    s->c.prop_accepted++;
    s->engine_ms += ld_now_ms() - t0;
    return LD_OK;
rejected:
    cd->status = ST_REJECTED;
    cd->reason = strdup(err);
    free(cd->sig);
    cd->sig = NULL;
    s->engine_ms += ld_now_ms() - t0;
    return refuse(s, out, "precheck", "rejected before training: %s", err);
}

/* ---- construction ---- */

static Search *alloc_engine(const SearchJob *job, char *err) {
    Search *s = calloc(1, sizeof *s);
    if (!s) {
        ld_err(err, LD_ENOMEM, "search: out of memory");
        return NULL;
    }
    s->job = job;
    grammar_init(&s->g, job);
    s->C = job->tasks[0].outputs;
    s->sig_n = job->tasks[0].sig_len > 0 ? job->tasks[0].sig_len : 1;
    s->nseed_max = 1;
    for (int l = 0; l < job->nlevels; l++)
        if (job->level_seeds[l] > s->nseed_max) s->nseed_max = job->level_seeds[l];
    s->fin_task0 = job->ntasks > job->nsel ? job->nsel : 0;
    s->nfin_tasks = job->ntasks > job->nsel ? job->ntasks - job->nsel : job->nsel;
    s->fin_cap = 2 * job->final_seeds < STABLE_MAX_SEEDS ? 2 * job->final_seeds : STABLE_MAX_SEEDS;
    s->pop = calloc((size_t)job->population + 1, sizeof *s->pop);
    if (!s->pop) {
        free(s);
        ld_err(err, LD_ENOMEM, "search: out of memory");
        return NULL;
    }
    rng_seed(&s->c.rng, ld_mix64(job->seed, 0x5ea4c4ull));
    for (int t = 0; t < job->nsel; t++) { /* the pre-screen's task features: the tasks' mean */
        double tf[SURR_NTASKF];
        surr_task_features(job->tasks[t].spec, job_level_steps(job, 0, t), tf);
        for (int f = 0; f < SURR_NTASKF; f++) s->here_tf[f] += tf[f] / job->nsel;
    }
    s->c.to_base = s->c.to_base_top = -1;
    s->c.to_base_cand = s->c.to_base_top_cand = -1;
    return s;
}

static int add_baseline(Search *s, char *err) {
    char e2[LD_ERR_MAX];
    Expr *b = expr_clone(s->job->baseline);
    if (!b) return ld_err(err, LD_ENOMEM, "search: out of memory");
    int ci = cand_add(s, b, s->job->baseline_text, expr_hash(s->job->baseline), NULL, "baseline");
    if (ci < 0) return ld_err(err, LD_ENOMEM, "search: out of memory");
    Cand *c = &s->cands[ci];
    c->status = ST_BASELINE;
    s->baseline = ci;
    c->sig = malloc((size_t)s->sig_n * sizeof *c->sig);
    if (c->sig && signature(s, c->e, c->sig, e2) != LD_OK) {
        free(c->sig); /* a baseline without a usable signature still trains */
        c->sig = NULL;
    }
    if (c->sig) unit(c->sig, s->sig_n);
    return LD_OK;
}

Search *search_new(const SearchJob *job, const char *const *warm, int n_warm, char *err) {
    Search *s = alloc_engine(job, err);
    if (!s) return NULL;
    if (add_baseline(s, err) != LD_OK) {
        search_free(s);
        return NULL;
    }
    s->warm = warm;
    s->nwarm = n_warm;
    if (n_warm > 0) {
        /* warm texts are only read in the first round: copy them so the caller may free its own */
        char **copy = calloc((size_t)n_warm, sizeof *copy);
        for (int i = 0; copy && i < n_warm; i++) copy[i] = strdup(warm[i] ? warm[i] : "");
        s->warm = (const char *const *)copy;
    }
    return s;
}

int search_set_prior(Search *s, const cJSON *prior, char *err) {
    const SearchJob *j = s->job;
    if (s->c.round > 0 || s->round_open || s->nprior > 0)
        return ld_err(err, LD_ESTATE, "pre-screen prior: set only before the first round, once");
    uint64_t hash[JOB_MAX_TASKS];
    int steps[JOB_MAX_TASKS];
    for (int t = 0; t < j->nsel; t++) {
        hash[t] = j->tasks[t].hash;
        steps[t] = job_level_steps(j, 0, t);
    }
    return surr_prior_rows(prior, hash, steps, j->nsel, &s->prior, &s->nprior, err);
}

void search_free(Search *s) {
    if (!s) return;
    for (int i = 0; i < s->ncand; i++) cand_free(&s->cands[i]);
    free(s->cands);
    free(s->htab);
    free(s->hidx);
    free(s->pop);
    free(s->works);
    free(s->refs);
    surr_prior_free(s->prior, s->nprior);
    free(s->prior_sums);
    free(s->prior_here_y);
    if (s->nwarm > 0 && s->warm) {
        for (int i = 0; i < s->nwarm; i++) free((char *)s->warm[i]);
        free((void *)s->warm);
    }
    free(s);
}

/* ---- statistics for reports ---- */


typedef struct Paired {
    int n, wins, losses, ties;
    double mean, sd, t, p;
} Paired;

static void paired(const double *d, int n, Paired *o) {
    memset(o, 0, sizeof *o);
    o->n = n;
    for (int i = 0; i < n; i++) {
        o->wins += d[i] > 0;
        o->losses += d[i] < 0;
        o->ties += d[i] == 0;
    }
    ld_mean_sd(d, n, &o->mean, &o->sd);
    if (n < 2) o->sd = NAN;
    if (n > 1 && o->sd > 0) {
        o->t = o->mean / (o->sd / sqrt(n));
        o->p = search_student_p(o->t, n - 1);
    } else {
        o->t = o->mean == 0 ? 0 : (o->mean > 0 ? INFINITY : -INFINITY);
        o->p = o->mean == 0 ? 1 : 0;
    }
}

/* Continued fraction of the regularised incomplete beta function (Lentz). */
static double betacf(double a, double b, double x) {
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < 1e-300) d = 1e-300;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = 1 + aa / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = 1 + aa / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-14) break;
    }
    return h;
}

static double ibeta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double bt = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x));
    if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
    return 1 - bt * betacf(b, a, 1 - x) / b;
}

/* Two-sided p-value of Student's t with df degrees of freedom. */
double search_student_p(double t, int df) {
    if (!isfinite(t)) return 0;
    return ibeta(df / 2.0, 0.5, df / (df + t * t));
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *paired_json(const Paired *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", p->n);
    add_num(o, "mean_diff", p->mean);
    add_num(o, "sd_diff", p->sd);
    add_num(o, "t", p->t);
    add_num(o, "p", p->p);
    cJSON_AddNumberToObject(o, "wins", p->wins);
    cJSON_AddNumberToObject(o, "losses", p->losses);
    cJSON_AddNumberToObject(o, "ties", p->ties);
    return o;
}

/* Candidate results cr against the baseline's br, both laid out [task][seed < cap], paired by
 * task and seed over the first ns seeds of the tasks tasks[0..nt): per task the means, spreads
 * and paired test; overall (vs_baseline) the paired t-test of the relative differences, its 95%
 * interval and verdict (stable.c). Adds them to o; 0 until every pair is in. */
static int compare_into(cJSON *o, const SearchTask *tasks, int nt, const Res *cr, const Res *br,
                        int cap, int ns) {
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < ns; k++)
            if (!cr[t * cap + k].have || !br[t * cap + k].have) return 0;
    cJSON_AddNumberToObject(o, "seeds", ns);
    cJSON *jt = cJSON_AddArrayToObject(o, "tasks");
    double *rel = calloc((size_t)(nt * ns) + 1, sizeof *rel);
    double *x = calloc((size_t)ns + 1, sizeof *x), *y = calloc((size_t)ns + 1, sizeof *y),
           *d = calloc((size_t)ns + 1, sizeof *d);
    int nrel = 0;
    for (int t = 0; t < nt && rel && x && y && d; t++) {
        const SearchTask *task = &tasks[t];
        int hb = task->higher_better;
        for (int k = 0; k < ns; k++) {
            const Res *rc = &cr[t * cap + k], *rb = &br[t * cap + k];
            x[k] = rc->ok ? rc->test : NAN;
            y[k] = rb->ok ? rb->test : NAN;
        }
        double mx, sx, my, sy;
        ld_mean_sd(x, ns, &mx, &sx);
        ld_mean_sd(y, ns, &my, &sy);
        int nd = 0;
        for (int k = 0; k < ns; k++) {
            if (!isfinite(x[k]) || !isfinite(y[k])) continue;
            d[nd] = hb ? x[k] - y[k] : y[k] - x[k];
            rel[nrel++] = d[nd] / fmax(fabs(my), 1e-9);
            nd++;
        }
        Paired p;
        paired(d, nd, &p);
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddStringToObject(tj, "task", task->name);
        cJSON_AddStringToObject(tj, "metric", task->metric);
        add_num(tj, "mean", mx);
        add_num(tj, "sd", sx);
        add_num(tj, "baseline_mean", my);
        add_num(tj, "baseline_sd", sy);
        cJSON_AddItemToObject(tj, "paired", paired_json(&p));
        cJSON_AddItemToArray(jt, tj);
    }
    Paired all;
    paired(rel, nrel, &all);
    cJSON *pj = paired_json(&all);
    cJSON_AddStringToObject(pj, "test", "paired t-test over (task, seed) of the relative difference, signed so positive is better");
    double lo, hi; /* the interval of the mean relative difference, and what it says (stable.c) */
    const char *verdict = stable_ci95(rel, nrel, &lo, &hi);
    cJSON *ci = cJSON_AddArrayToObject(pj, "ci95");
    cJSON_AddItemToArray(ci, isfinite(lo) ? cJSON_CreateNumber(lo) : cJSON_CreateNull());
    cJSON_AddItemToArray(ci, isfinite(hi) ? cJSON_CreateNumber(hi) : cJSON_CreateNull());
    cJSON_AddStringToObject(pj, "verdict", verdict);
    cJSON_AddItemToObject(o, "vs_baseline", pj);
    free(rel);
    free(x);
    free(y);
    free(d);
    return 1;
}

/* The final (holdout) comparison of candidate c against the baseline, paired by task and seed. */
static cJSON *final_json(const Search *s, const Cand *c, const Cand *b) {
    const SearchJob *j = s->job;
    if (!c->fin || !b->fin) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "on", j->ntasks > j->nsel ? "holdout" : "selection tasks, fresh seeds");
    cJSON_AddStringToObject(o, "split", "test");
    int ns = c->fin_n < b->fin_n ? c->fin_n : b->fin_n;
    if (!compare_into(o, &j->tasks[s->fin_task0], s->nfin_tasks, c->fin, b->fin, s->fin_cap, ns)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The same comparison at the user's horizon (final.horizon): steps, model, fresh seeds. */
static cJSON *horizon_json(const Search *s, const Cand *c, const Cand *b) {
    const SearchJob *j = s->job;
    if (!c->hor || !b->hor) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *st = cJSON_AddArrayToObject(o, "steps");
    for (int t = 0; t < j->nhor; t++) cJSON_AddItemToArray(st, cJSON_CreateNumber(job_horizon_steps(j, t)));
    if (j->hor_model) cJSON_AddItemToObject(o, "model", cJSON_Duplicate(j->hor_model, 1));
    cJSON_AddStringToObject(o, "split", "test");
    if (!compare_into(o, j->hor, j->nhor, c->hor, b->hor, j->hor_seeds, j->hor_seeds)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The final comparisons of c: against the baseline and the best panel loss, at the search's
 * recipe and (under "horizon") at the user's. NULL before the final evaluation is in. */
static cJSON *final_all_json(const Search *s, const Cand *c) {
    const Cand *b = &s->cands[s->baseline];
    int pb = panel_best(s);
    const Cand *pc = pb >= 0 && &s->cands[pb] != c ? &s->cands[pb] : NULL;
    cJSON *fin = final_json(s, c, b);
    if (!fin) return NULL;
    cJSON *pf = pc ? final_json(s, c, pc) : NULL;
    if (pf) { /* the same comparison against the best panel loss (chosen on validation) */
        cJSON *vp = cJSON_DetachItemFromObject(pf, "vs_baseline");
        cJSON_AddStringToObject(vp, "loss", pc->text);
        cJSON_AddItemToObject(fin, "vs_panel", vp);
        cJSON_Delete(pf);
    }
    cJSON *hz = horizon_json(s, c, b);
    cJSON *hp = hz && pc ? horizon_json(s, c, pc) : NULL;
    if (hp) {
        cJSON *vp = cJSON_DetachItemFromObject(hp, "vs_baseline");
        cJSON_AddStringToObject(vp, "loss", pc->text);
        cJSON_AddItemToObject(hz, "vs_panel", vp);
        cJSON_Delete(hp);
    }
    if (hz) cJSON_AddItemToObject(fin, "horizon", hz);
    return fin;
}

/* Where a candidate came from: "proposed:<source>", "warm" (an earlier search's), "seed" (the
 * job's own starting losses: baseline, panel, seed_losses, the family's textbook losses) or
 * "search" (made by the engine). */
static void cand_origin(const Cand *c, char *buf, size_t n) {
    static const char *const seeds[] = {"baseline", "panel", "seed", "known"};
    const char *o = "search";
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        if (!strcmp(c->op, seeds[i])) o = "seed";
    if (!strcmp(c->op, "warm")) o = "warm";
    if (c->source) snprintf(buf, n, "proposed:%s", c->source);
    else snprintf(buf, n, "%s", o);
}

static cJSON *entry_json(const Search *s, const Cand *c, int rank) {
    const SearchJob *j = s->job;
    const Cand *b = &s->cands[s->baseline];
    cJSON *o = cJSON_CreateObject();
    if (rank > 0) cJSON_AddNumberToObject(o, "rank", rank);
    cJSON_AddNumberToObject(o, "cand", (double)c->id);
    cJSON_AddStringToObject(o, "expr", c->text);
    add_num(o, "fitness", rank_fitness(c));
    if (!isnan(c->ffit)) add_num(o, "search_fitness", cur_fitness(c)); /* at its top level */
    cJSON_AddNumberToObject(o, "level", c->done);
    cJSON_AddNumberToObject(o, "size", c->size);
    cJSON_AddBoolToObject(o, "baseline", c->status == ST_BASELINE);
    cJSON_AddStringToObject(o, "op", c->op);
    char origin[SEARCH_SOURCE_MAX + 16];
    cand_origin(c, origin, sizeof origin);
    cJSON_AddStringToObject(o, "origin", origin);
    cJSON *par = cJSON_AddArrayToObject(o, "parents");
    for (int q = 0; q < 2; q++)
        if (c->parents[q] >= 0) cJSON_AddItemToArray(par, cJSON_CreateNumber((double)c->parents[q]));
    cJSON *tasks = cJSON_AddArrayToObject(o, "tasks");
    int l = c->done;
    double vs = 0;
    for (int t = 0; l >= 0 && t < j->nsel; t++) {
        int ns = lvl_seeds(s, l);
        double v[JOB_MAX_SEEDS], te[JOB_MAX_SEEDS], bv[JOB_MAX_SEEDS];
        for (int k = 0; k < ns; k++) {
            const Res *r = res_at(s, (Cand *)c, l, t, k), *rb = res_at(s, (Cand *)b, l, t, k);
            v[k] = r->ok ? r->val : NAN;
            te[k] = r->ok ? r->test : NAN;
            bv[k] = rb->ok ? rb->val : NAN;
        }
        double mv, sv, mt, st, mb, sb;
        ld_mean_sd(v, ns, &mv, &sv);
        ld_mean_sd(te, ns, &mt, &st);
        ld_mean_sd(bv, ns, &mb, &sb);
        const SearchTask *task = &j->tasks[t];
        int failed = 0;
        for (int k = 0; k < ns; k++) failed += !isfinite(v[k]);
        int who = s->baseline;
        double ref = ref_metric(s, l, t, &who);
        double score = surr_task_score(failed ? NAN : mv, ref, task->higher_better);
        vs += score;
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddStringToObject(tj, "task", task->name);
        cJSON_AddStringToObject(tj, "metric", task->metric);
        cJSON_AddNumberToObject(tj, "steps", job_level_steps(j, l, t));
        cJSON_AddNumberToObject(tj, "seeds", ns);
        add_num(tj, "val", mv);
        add_num(tj, "val_sd", sv);
        add_num(tj, "test", mt);
        add_num(tj, "test_sd", st);
        add_num(tj, "baseline_val", mb);
        if (who != s->baseline) { /* a panel loss did best on this task: scores are against it */
            cJSON_AddStringToObject(tj, "reference", s->cands[who].text);
            add_num(tj, "reference_val", ref);
        }
        add_num(tj, "score", score);
        if (failed) cJSON_AddNumberToObject(tj, "failed_runs", failed);
        cJSON_AddItemToArray(tasks, tj);
    }
    cJSON *cmp = cJSON_AddObjectToObject(o, "vs_baseline");
    add_num(cmp, "relative_gain", l >= 0 ? vs / j->nsel : NAN);
    cJSON_AddStringToObject(cmp, "baseline", b->text);
    cJSON *fin = final_all_json(s, c);
    if (fin) cJSON_AddItemToObject(o, "final", fin);
    if (c->collapsed) { /* never the winner: see rank_cmp */
        cJSON_AddBoolToObject(o, "collapsed", 1);
        cJSON_AddNumberToObject(o, "collapsed_seeds", c->collapsed);
    }
    return o;
}

cJSON *search_leaderboard(const Search *s, int k) {
    cJSON *arr = cJSON_CreateArray();
    int n = 0;
    int *idx = ranked(s, &n);
    if (!arr || !idx) {
        free(idx);
        return arr;
    }
    for (int r = 0; r < n && (k <= 0 || r < k); r++)
        cJSON_AddItemToArray(arr, entry_json(s, &s->cands[idx[r]], r + 1));
    free(idx);
    return arr;
}

cJSON *search_stats(const Search *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "evaluations", s->c.evals);
    cJSON_AddNumberToObject(o, "budget_evaluations", s->job->budget_evals);
    cJSON_AddNumberToObject(o, "final_evaluations", s->c.final_evals);
    cJSON_AddNumberToObject(o, "horizon_evaluations", s->c.horizon_evals);
    cJSON_AddNumberToObject(o, "cache_hits", s->c.cache_hits);
    cJSON_AddNumberToObject(o, "signature_hits", s->c.signature_hits);
    cJSON_AddNumberToObject(o, "rejections", s->c.rejections);
    cJSON_AddNumberToObject(o, "promotions", s->c.promotions);
    cJSON_AddNumberToObject(o, "tuned", s->c.tuned);
    cJSON_AddNumberToObject(o, "generated", s->c.generated);
    cJSON_AddNumberToObject(o, "warm_used", s->c.warm_used);
    cJSON_AddNumberToObject(o, "result_cache_hits", s->c.result_hits);
    cJSON_AddNumberToObject(o, "candidates", s->ncand);
    int trained = 0; /* alive and scheduled: an accepted proposal waits unscheduled */
    for (int i = 0; i < s->ncand; i++) trained += s->cands[i].status == ST_ALIVE && s->cands[i].sched >= 0;
    cJSON_AddNumberToObject(o, "trained_candidates", trained);
    /* Fewer wasted trainings: candidates that got a full-fidelity (top-level) run, and the share
     * of the proposed ones that never did (cache, signature, rejection, or stopped below). */
    int full = 0;
    for (int i = 0; i < s->ncand; i++)
        full += i != s->baseline && s->cands[i].status == ST_ALIVE && s->cands[i].sched >= s->job->nlevels - 1;
    cJSON_AddNumberToObject(o, "full_candidates", full);
    add_num(o, "filtered_share", s->c.generated > 0 ? 1.0 - (double)full / s->c.generated : NAN);
    cJSON_AddNumberToObject(o, "stopped_below_top", trained - full - 1); /* trained, less the baseline */
    /* early stopping inside runs (screen.c): runs stopped, steps not run, their share of the
     * search phase's level steps */
    cJSON_AddNumberToObject(o, "early_stopped", s->c.early_stopped);
    cJSON_AddNumberToObject(o, "early_stop_steps_saved", (double)s->c.early_saved);
    add_num(o, "early_stop_saved_share", s->c.level_steps > 0 ? (double)s->c.early_saved / (double)s->c.level_steps : NAN);
    /* the learned pre-screen (surrogate.c): what it kept from training, and how often a candidate
     * it would have skipped (the held-out ones, trained anyway) and one it let through finished
     * the first level below the median it was held to */
    cJSON *ps = cJSON_AddObjectToObject(o, "prescreen");
    int held = 0, held_done = 0, held_worse = 0, thru_done = 0, thru_worse = 0;
    for (int i = 0; i < s->ncand; i++) {
        const Cand *c = &s->cands[i];
        if (!isfinite(c->pred)) continue;
        held += c->hold;
        if (c->done < 0 || (c->status != ST_ALIVE)) continue;
        int worse = !(c->fit[0] >= c->pbar);
        if (c->hold) {
            held_done++;
            held_worse += worse;
        } else {
            thru_done++;
            thru_worse += worse;
        }
    }
    cJSON_AddNumberToObject(ps, "skipped", s->c.surr_skipped);
    cJSON_AddNumberToObject(ps, "model_rows", s->surr.n);
    /* earlier jobs' rows: given, usable here (their loss trains in this job), and of those the
     * ones measured on this job's own tasks at its first level's steps */
    cJSON_AddNumberToObject(ps, "prior_rows", s->nprior);
    cJSON_AddNumberToObject(ps, "prior_used", s->prior_used);
    cJSON_AddNumberToObject(ps, "prior_here", s->nprior_here);
    cJSON_AddNumberToObject(ps, "held_out", held);
    cJSON_AddNumberToObject(ps, "held_out_trained", held_done);
    cJSON_AddNumberToObject(ps, "held_out_below_median", held_worse);
    add_num(ps, "hit_rate", held_done > 0 ? (double)held_worse / held_done : NAN);
    cJSON_AddNumberToObject(ps, "let_through_trained", thru_done);
    cJSON_AddNumberToObject(ps, "let_through_below_median", thru_worse);
    add_num(ps, "let_through_below_share", thru_done > 0 ? (double)thru_worse / thru_done : NAN);
    cJSON_AddNumberToObject(o, "rounds", s->c.round);
    cJSON_AddNumberToObject(o, "evals_to_baseline", s->c.to_base);
    cJSON_AddNumberToObject(o, "evals_to_baseline_cand", (double)s->c.to_base_cand);
    cJSON_AddNumberToObject(o, "evals_to_baseline_top", s->c.to_base_top);
    cJSON_AddNumberToObject(o, "evals_to_baseline_top_cand", (double)s->c.to_base_top_cand);
    if (s->c.to_base_cand >= 0 && s->c.to_base_cand < s->ncand)
        cJSON_AddStringToObject(o, "evals_to_baseline_expr", s->cands[s->c.to_base_cand].text);
    if (s->c.to_base_top_cand >= 0 && s->c.to_base_top_cand < s->ncand)
        cJSON_AddStringToObject(o, "evals_to_baseline_top_expr",
                                s->cands[s->c.to_base_top_cand].text);
    cJSON_AddStringToObject(o, "phase", search_waiting(s)        ? "waiting"
                                        : s->c.phase == PH_SEARCH ? "search"
                                        : s->c.phase == PH_FINAL  ? "final"
                                                                  : "done");
    cJSON *pj = cJSON_AddObjectToObject(o, "proposals");
    cJSON_AddNumberToObject(pj, "received", (double)s->c.proposed);
    cJSON_AddNumberToObject(pj, "accepted", s->c.prop_accepted);
    cJSON_AddNumberToObject(pj, "duplicates", s->c.prop_duplicates);
    cJSON_AddNumberToObject(pj, "refused", s->c.prop_refused);
    cJSON_AddNumberToObject(pj, "waiting", proposals_reserved(s) / (level_cost(s, 0) > 0 ? level_cost(s, 0) : 1));
    cJSON_AddNumberToObject(o, "engine_s", s->engine_ms / 1000.0);
    cJSON_AddNumberToObject(o, "engine_signature_s", s->sig_ms / 1000.0);
    cJSON_AddNumberToObject(o, "engine_precheck_s", s->pre_ms / 1000.0);
    const Cand *b = best_alive(s) >= 0 ? &s->cands[best_alive(s)] : NULL;
    add_num(o, "best_fitness", b ? rank_fitness(b) : NAN);
    if (b) cJSON_AddStringToObject(o, "best_expr", b->text);
    cJSON *rj = cJSON_AddObjectToObject(o, "rejection_reasons");
    for (int i = 0; i < s->nreasons; i++)
        cJSON_AddNumberToObject(rj, s->reasons[i].text, s->reasons[i].n);
    return o;
}

cJSON *search_pareto(const Search *s) {
    cJSON *arr = cJSON_CreateArray();
    int n = 0;
    int *idx = ranked(s, &n);
    if (!idx) return arr;
    /* by size, then fitness: keep each one that beats every smaller candidate */
    for (int a = 1; a < n; a++)
        for (int q = a; q > 0; q--) {
            const Cand *x = &s->cands[idx[q - 1]], *y = &s->cands[idx[q]];
            int swap = y->size < x->size ||
                       (y->size == x->size && cur_fitness(y) > cur_fitness(x));
            if (!swap) break;
            int tmp = idx[q];
            idx[q] = idx[q - 1];
            idx[q - 1] = tmp;
        }
    double best = -INFINITY;
    for (int r = 0; r < n; r++) {
        const Cand *c = &s->cands[idx[r]];
        if (!(cur_fitness(c) > best)) continue;
        best = cur_fitness(c);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "cand", (double)c->id);
        cJSON_AddStringToObject(o, "expr", c->text);
        cJSON_AddNumberToObject(o, "size", c->size);
        add_num(o, "fitness", best);
        cJSON_AddNumberToObject(o, "level", c->done);
        cJSON_AddBoolToObject(o, "baseline", c->status == ST_BASELINE);
        cJSON_AddItemToArray(arr, o);
    }
    free(idx);
    return arr;
}

/* ---- save and restore ---- */

static void add_u64(cJSON *o, const char *k, uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, k, b);
}

/* Metrics are stored as %.17g strings: cJSON's own number printing may drop the last bit, and a
 * restored engine must rank exactly as the saved one did. */
static cJSON *exact_num(double v) {
    char b[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    snprintf(b, sizeof b, "%.17g", v);
    return cJSON_CreateString(b);
}

static double exact_get(const cJSON *v) {
    if (cJSON_IsString(v)) return strtod(v->valuestring, NULL);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    return NAN;
}

static cJSON *res_json(const Res *r) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(r->ok));
    cJSON_AddItemToArray(a, exact_num(r->val));
    cJSON_AddItemToArray(a, exact_num(r->test));
    return a;
}

cJSON *search_save(const Search *s) {
    /* mid-round: the state at the round's start, which rebuilds the same round */
    const Ctr *c = s->round_open ? &s->c0 : &s->c;
    int ncand = s->round_open ? s->ncand0 : s->ncand;
    const SearchJob *j = s->job;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON *rng = cJSON_AddArrayToObject(o, "rng");
    for (int i = 0; i < 4; i++) {
        char b[24];
        snprintf(b, sizeof b, "%016llx", (unsigned long long)c->rng.s[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(b));
    }
    cJSON *ct = cJSON_AddObjectToObject(o, "counters");
    cJSON_AddNumberToObject(ct, "seq", (double)c->seq);
    cJSON_AddNumberToObject(ct, "round", c->round);
    cJSON_AddNumberToObject(ct, "phase", c->phase);
    cJSON_AddNumberToObject(ct, "evals", c->evals);
    cJSON_AddNumberToObject(ct, "final_evals", c->final_evals);
    cJSON_AddNumberToObject(ct, "cache_hits", c->cache_hits);
    cJSON_AddNumberToObject(ct, "signature_hits", c->signature_hits);
    cJSON_AddNumberToObject(ct, "rejections", c->rejections);
    cJSON_AddNumberToObject(ct, "promotions", c->promotions);
    cJSON_AddNumberToObject(ct, "tuned", c->tuned);
    cJSON_AddNumberToObject(ct, "generated", c->generated);
    cJSON_AddNumberToObject(ct, "warm_used", c->warm_used);
    cJSON_AddNumberToObject(ct, "result_hits", c->result_hits);
    cJSON_AddNumberToObject(ct, "stopped", s->c.stopped); /* a stop is never undone */
    cJSON_AddNumberToObject(ct, "stop_from", s->c.stop_from);
    cJSON_AddNumberToObject(ct, "hard", s->c.hard);
    cJSON_AddNumberToObject(ct, "proposed", (double)c->proposed);
    cJSON_AddNumberToObject(ct, "prop_accepted", c->prop_accepted);
    cJSON_AddNumberToObject(ct, "prop_duplicates", c->prop_duplicates);
    cJSON_AddNumberToObject(ct, "prop_refused", c->prop_refused);
    cJSON_AddNumberToObject(ct, "final_issued", c->final_issued);
    cJSON_AddNumberToObject(ct, "final_more", c->final_more);
    cJSON_AddNumberToObject(ct, "horizon_issued", c->horizon_issued);
    cJSON_AddNumberToObject(ct, "horizon_evals", c->horizon_evals);
    cJSON_AddNumberToObject(ct, "to_base", c->to_base);
    cJSON_AddNumberToObject(ct, "to_base_top", c->to_base_top);
    cJSON_AddNumberToObject(ct, "to_base_cand", (double)c->to_base_cand);
    cJSON_AddNumberToObject(ct, "to_base_top_cand", (double)c->to_base_top_cand);
    cJSON_AddNumberToObject(ct, "early_stopped", c->early_stopped);
    cJSON_AddNumberToObject(ct, "early_saved", (double)c->early_saved);
    cJSON_AddNumberToObject(ct, "level_steps", (double)c->level_steps);
    cJSON_AddNumberToObject(ct, "surr_skipped", c->surr_skipped);
    add_u64(o, "job_seed", j->seed);
    cJSON *cs = cJSON_AddArrayToObject(o, "cands");
    for (int i = 0; i < ncand; i++) {
        const Cand *cd = &s->cands[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "expr", cd->text);
        cJSON_AddNumberToObject(x, "st", cd->status);
        cJSON_AddNumberToObject(x, "p0", (double)cd->parents[0]);
        cJSON_AddNumberToObject(x, "p1", (double)cd->parents[1]);
        cJSON_AddStringToObject(x, "op", cd->op);
        cJSON_AddNumberToObject(x, "born", cd->born);
        if (cd->alias_of >= 0) cJSON_AddNumberToObject(x, "alias", (double)cd->alias_of);
        if (cd->reason) cJSON_AddStringToObject(x, "reason", cd->reason);
        if (cd->source) cJSON_AddStringToObject(x, "src", cd->source);
        if (isfinite(cd->pred)) { /* the pre-screen's verdict, for its hit rate */
            cJSON *pa = cJSON_AddArrayToObject(x, "pred");
            cJSON_AddItemToArray(pa, exact_num(cd->pred));
            cJSON_AddItemToArray(pa, exact_num(cd->pbar));
            cJSON_AddItemToArray(pa, cJSON_CreateNumber(cd->hold));
        }
        int sched = s->round_open ? cd->sched_prev : cd->sched;
        cJSON_AddNumberToObject(x, "sched", sched);
        if (cd->status == ST_ALIVE || cd->status == ST_BASELINE) {
            cJSON *rs = cJSON_AddArrayToObject(x, "res");
            for (int l = 0; l <= sched; l++)
                for (int t = 0; t < j->nsel; t++)
                    for (int k = 0; k < lvl_seeds(s, l); k++) {
                        const Res *r = res_at(s, (Cand *)cd, l, t, k);
                        if (r->have) cJSON_AddItemToArray(rs, res_json(r));
                    }
        }
        /* mid-round, the final results are those from before the open round: none while the
         * first final round is open, final.seeds per task while the added seeds' round is */
        int fin_n = !s->round_open ? cd->fin_n : c->final_issued ? j->final_seeds : 0;
        if (cd->fin && fin_n > 0) {
            cJSON *fs = cJSON_AddArrayToObject(x, "fin");
            for (int t = 0; t < s->nfin_tasks; t++)
                for (int k = 0; k < fin_n; k++)
                    cJSON_AddItemToArray(fs, res_json(&cd->fin[t * s->fin_cap + k]));
            if (fin_n != j->final_seeds) cJSON_AddNumberToObject(x, "fin_n", fin_n);
        }
        if (cd->ref) { /* early stopping's reference curves: [level, task, seed, [values]] */
            cJSON *ra = cJSON_AddArrayToObject(x, "ref");
            for (int l = 0; l <= sched; l++)
                for (int t = 0; t < j->nsel; t++)
                    for (int k = 0; k < lvl_seeds(s, l); k++) {
                        const RefCurve *rc = &cd->ref[slot(s, l, t, k)];
                        if (rc->n < 1) continue;
                        cJSON *e = cJSON_CreateArray();
                        cJSON_AddItemToArray(e, cJSON_CreateNumber(l));
                        cJSON_AddItemToArray(e, cJSON_CreateNumber(t));
                        cJSON_AddItemToArray(e, cJSON_CreateNumber(k));
                        cJSON *va = cJSON_CreateArray();
                        for (int q = 0; q < rc->n; q++) cJSON_AddItemToArray(va, exact_num(rc->val[q]));
                        cJSON_AddItemToArray(e, va);
                        cJSON_AddItemToArray(ra, e);
                    }
        }
        if (cd->hor && c->horizon_issued) { /* mid-round of the horizon round: none yet */
            cJSON *hs = cJSON_AddArrayToObject(x, "hor");
            for (int q = 0; q < j->nhor * j->hor_seeds; q++) cJSON_AddItemToArray(hs, res_json(&cd->hor[q]));
        }
        cJSON_AddItemToArray(cs, x);
    }
    cJSON *pop = cJSON_AddArrayToObject(o, "pop");
    for (int i = 0; i < s->npop; i++) cJSON_AddItemToArray(pop, cJSON_CreateNumber(s->pop[i]));
    cJSON *rj = cJSON_AddArrayToObject(o, "reasons");
    const Reason *rs = s->round_open ? s->reasons0 : s->reasons;
    int nrs = s->round_open ? s->nreasons0 : s->nreasons;
    for (int i = 0; i < nrs; i++) {
        cJSON *r = cJSON_CreateArray();
        cJSON_AddItemToArray(r, cJSON_CreateString(rs[i].text));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(rs[i].n));
        cJSON_AddItemToArray(rj, r);
    }
    if (s->nprior > 0) { /* earlier jobs' rows: a restored engine's pre-screen learns the same */
        cJSON *pj = cJSON_AddArrayToObject(o, "prior");
        for (int i = 0; i < s->nprior; i++) {
            const SurrPriorRow *r = &s->prior[i];
            cJSON *a = cJSON_CreateArray();
            cJSON_AddItemToArray(a, exact_num(r->y));
            cJSON_AddItemToArray(a, exact_num(r->w));
            for (int f = 0; f < SURR_NTASKF; f++) cJSON_AddItemToArray(a, exact_num(r->tf[f]));
            cJSON_AddItemToArray(a, cJSON_CreateString(r->expr));
            cJSON_AddItemToArray(pj, a);
        }
    }
    if (c->round == 0) { /* the first round still has to read the warm starts */
        cJSON *wj = cJSON_AddArrayToObject(o, "warm");
        for (int i = 0; i < s->nwarm; i++) cJSON_AddItemToArray(wj, cJSON_CreateString(s->warm[i]));
    }
    return o;
}

static int get_i(const cJSON *o, const char *k, int *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) {
        *ok = 0;
        return 0;
    }
    return v->valueint;
}

static int res_from_json(const cJSON *a, Res *r) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) return LD_EINVAL;
    const cJSON *ok = cJSON_GetArrayItem(a, 0), *v = cJSON_GetArrayItem(a, 1),
                *t = cJSON_GetArrayItem(a, 2);
    r->ok = cJSON_IsNumber(ok) && ok->valueint;
    r->val = exact_get(v);
    r->test = exact_get(t);
    r->have = 1;
    return LD_OK;
}

Search *search_restore(const SearchJob *job, const cJSON *st, char *err) {
    char e2[LD_ERR_MAX];
    int ok = 1;
    Search *s = NULL;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(st, "counters");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(st, "rng");
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, "cands");
    const cJSON *pop = cJSON_GetObjectItemCaseSensitive(st, "pop");
    if (!cJSON_IsObject(st) || !cJSON_IsObject(ct) || cJSON_GetArraySize(rng) != 4 ||
        !cJSON_IsArray(cs) || cJSON_GetArraySize(cs) < 1 || !cJSON_IsArray(pop)) {
        ld_err(err, LD_EINVAL, "search state: missing rng, counters, cands or pop");
        return NULL;
    }
    s = alloc_engine(job, err);
    if (!s) return NULL;
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(rng, i);
        if (!cJSON_IsString(v)) ok = 0;
        else s->c.rng.s[i] = strtoull(v->valuestring, NULL, 16);
    }
    s->c.seq = (int64_t)(cJSON_IsNumber(cJSON_GetObjectItem(ct, "seq"))
                             ? cJSON_GetObjectItem(ct, "seq")->valuedouble
                             : 0);
    s->c.round = get_i(ct, "round", &ok);
    s->c.phase = get_i(ct, "phase", &ok);
    s->c.evals = get_i(ct, "evals", &ok);
    s->c.final_evals = get_i(ct, "final_evals", &ok);
    s->c.cache_hits = get_i(ct, "cache_hits", &ok);
    s->c.signature_hits = get_i(ct, "signature_hits", &ok);
    s->c.rejections = get_i(ct, "rejections", &ok);
    s->c.promotions = get_i(ct, "promotions", &ok);
    s->c.tuned = get_i(ct, "tuned", &ok);
    s->c.generated = get_i(ct, "generated", &ok);
    s->c.warm_used = get_i(ct, "warm_used", &ok);
    int ok_rh = 1;
    s->c.result_hits = get_i(ct, "result_hits", &ok_rh);
    s->c.stopped = get_i(ct, "stopped", &ok);
    s->c.hard = get_i(ct, "hard", &ok);
    int ok_p = 1; /* states saved before proposals existed lack these: none, a stop from round 0 */
    s->c.stop_from = get_i(ct, "stop_from", &ok_p);
    s->c.proposed = (int64_t)get_i(ct, "proposed", &ok_p);
    s->c.prop_accepted = get_i(ct, "prop_accepted", &ok_p);
    s->c.prop_duplicates = get_i(ct, "prop_duplicates", &ok_p);
    s->c.prop_refused = get_i(ct, "prop_refused", &ok_p);
    s->c.final_issued = get_i(ct, "final_issued", &ok);
    int ok_fm = 1; /* states saved before added final seeds existed lack it */
    s->c.final_more = get_i(ct, "final_more", &ok_fm);
    int ok_hz = 1; /* states saved before the horizon existed lack them: not issued */
    s->c.horizon_issued = get_i(ct, "horizon_issued", &ok_hz);
    s->c.horizon_evals = get_i(ct, "horizon_evals", &ok_hz);
    if (!ok_hz) s->c.horizon_issued = s->c.horizon_evals = 0;
    /* states saved before evals_to_baseline existed lack these: "never" */
    int ok_tb = 1;
    s->c.to_base = get_i(ct, "to_base", &ok_tb);
    s->c.to_base_top = get_i(ct, "to_base_top", &ok_tb);
    s->c.to_base_cand = get_i(ct, "to_base_cand", &ok_tb);
    s->c.to_base_top_cand = get_i(ct, "to_base_top_cand", &ok_tb);
    if (!ok_tb) {
        s->c.to_base = s->c.to_base_top = -1;
        s->c.to_base_cand = s->c.to_base_top_cand = -1;
    }
    int ok_es = 1; /* states saved before early stopping existed lack these: none */
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(ct, "early_saved");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(ct, "level_steps");
    s->c.early_stopped = get_i(ct, "early_stopped", &ok_es);
    s->c.early_saved = cJSON_IsNumber(es) ? (int64_t)es->valuedouble : 0;
    s->c.level_steps = cJSON_IsNumber(ls) ? (int64_t)ls->valuedouble : 0;
    if (!ok_es) s->c.early_stopped = 0;
    int ok_sk = 1;
    s->c.surr_skipped = get_i(ct, "surr_skipped", &ok_sk);
    if (!ok_sk) s->c.surr_skipped = 0;
    if (!ok || s->c.phase < PH_SEARCH || s->c.phase > PH_DONE || s->c.round < 0 ||
        s->c.evals < 0 || s->c.seq < 0) {
        ld_err(err, LD_EINVAL, "search state: a counter or the rng is missing or out of range");
        goto fail;
    }
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cs) {
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(x, "expr");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(x, "op");
        if (!cJSON_IsString(ex) || !cJSON_IsString(op)) {
            ld_err(err, LD_EINVAL, "search state: cands[%d]: missing expr or op", i);
            goto fail;
        }
        Expr *e = expr_parse(ex->valuestring, e2);
        if (!e) {
            ld_err(err, LD_EINVAL, "search state: cands[%d]: %s", i, e2);
            goto fail;
        }
        int okc = 1;
        int64_t par[2] = {get_i(x, "p0", &okc), get_i(x, "p1", &okc)};
        /* the stored text is the canonical print, so its hash is that of the original */
        int ci = cand_add(s, e, ex->valuestring, expr_hash(e), par, op->valuestring);
        if (ci < 0) {
            ld_err(err, LD_ENOMEM, "search state: out of memory");
            goto fail;
        }
        Cand *c = &s->cands[ci];
        c->status = get_i(x, "st", &okc);
        c->born = get_i(x, "born", &okc);
        c->sched = c->sched_prev = get_i(x, "sched", &okc);
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(x, "alias");
        if (cJSON_IsNumber(al)) c->alias_of = (int64_t)al->valuedouble;
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(x, "reason");
        if (cJSON_IsString(rs)) c->reason = strdup(rs->valuestring);
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(x, "src");
        if (cJSON_IsString(src)) c->source = strdup(src->valuestring);
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(x, "pred");
        if (cJSON_GetArraySize(pa) == 3) {
            c->pred = exact_get(cJSON_GetArrayItem(pa, 0));
            c->pbar = exact_get(cJSON_GetArrayItem(pa, 1));
            c->hold = (int)exact_get(cJSON_GetArrayItem(pa, 2)) != 0;
        }
        if (!okc || c->status < ST_ALIVE || c->status > ST_ALIAS ||
            c->sched >= job->nlevels || (i == 0) != (c->status == ST_BASELINE)) {
            ld_err(err, LD_EINVAL, "search state: cands[%d]: bad fields", i);
            goto fail;
        }
        if (c->status == ST_ALIVE || c->status == ST_BASELINE) {
            const cJSON *ra = cJSON_GetObjectItemCaseSensitive(x, "res");
            const cJSON *r = ra ? ra->child : NULL;
            for (int l = 0; l <= c->sched; l++)
                for (int t = 0; t < job->nsel; t++)
                    for (int k = 0; k < lvl_seeds(s, l); k++) {
                        if (!r) continue; /* results still missing: the round reruns them */
                        if (res_from_json(r, res_at(s, c, l, t, k)) != LD_OK) {
                            ld_err(err, LD_EINVAL, "search state: cands[%d]: bad result", i);
                            goto fail;
                        }
                        r = r->next;
                    }
            c->sig = malloc((size_t)s->sig_n * sizeof *c->sig);
            if (c->sig && signature(s, c->e, c->sig, e2) != LD_OK) {
                free(c->sig);
                c->sig = NULL;
            }
            if (c->sig) unit(c->sig, s->sig_n);
        }
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(x, "fin");
        if (cJSON_IsArray(fs)) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(x, "fin_n");
            c->fin_n = cJSON_IsNumber(fn) ? fn->valueint : job->final_seeds;
            c->fin = calloc((size_t)s->nfin_tasks * (size_t)s->fin_cap, sizeof *c->fin);
            if (!c->fin || c->fin_n < 1 || c->fin_n > s->fin_cap ||
                cJSON_GetArraySize(fs) != s->nfin_tasks * c->fin_n) {
                ld_err(err, LD_EINVAL, "search state: cands[%d]: bad final results", i);
                goto fail;
            }
            const cJSON *r = fs->child;
            for (int t = 0; t < s->nfin_tasks; t++)
                for (int k = 0; k < c->fin_n; k++, r = r->next)
                    res_from_json(r, &c->fin[t * s->fin_cap + k]);
        }
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(x, "ref"), *re;
        cJSON_ArrayForEach(re, ra) {
            int l = (int)exact_get(cJSON_GetArrayItem(re, 0)), t = (int)exact_get(cJSON_GetArrayItem(re, 1));
            int k = (int)exact_get(cJSON_GetArrayItem(re, 2));
            const cJSON *va = cJSON_GetArrayItem(re, 3);
            int nv = cJSON_GetArraySize(va);
            if (l < 0 || l > c->sched || t < 0 || t >= job->nsel || k < 0 || k >= lvl_seeds(s, l) ||
                nv < 1 || nv > EVAL_CURVE_MAX) {
                ld_err(err, LD_EINVAL, "search state: cands[%d]: bad reference curve", i);
                goto fail;
            }
            if (!c->ref) c->ref = calloc((size_t)job->nlevels * (size_t)job->nsel * (size_t)s->nseed_max, sizeof *c->ref);
            if (!c->ref) {
                ld_err(err, LD_ENOMEM, "search state: out of memory");
                goto fail;
            }
            RefCurve *rc = &c->ref[slot(s, l, t, k)];
            rc->n = nv;
            for (int q = 0; q < nv; q++) rc->val[q] = (float)exact_get(cJSON_GetArrayItem(va, q));
        }
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(x, "hor");
        if (cJSON_IsArray(hs)) {
            int nh = job->nhor * job->hor_seeds;
            c->hor = calloc((size_t)(nh > 0 ? nh : 1), sizeof *c->hor);
            if (!c->hor || cJSON_GetArraySize(hs) != nh) {
                ld_err(err, LD_EINVAL, "search state: cands[%d]: bad horizon results", i);
                goto fail;
            }
            const cJSON *r = hs->child;
            for (int q = 0; q < nh; q++, r = r->next) res_from_json(r, &c->hor[q]);
        }
        i++;
    }
    s->baseline = 0;
    for (int q = 0; q < s->ncand && s->npanel < JOB_MAX_PANEL; q++)
        if (!strcmp(s->cands[q].op, "panel")) s->panel[s->npanel++] = q;
    settle(s);
    cJSON_ArrayForEach(x, pop) {
        int ci = cJSON_IsNumber(x) ? x->valueint : -1;
        if (ci < 0 || ci >= s->ncand || s->npop >= job->population) {
            ld_err(err, LD_EINVAL, "search state: bad population entry");
            goto fail;
        }
        s->pop[s->npop++] = ci;
        s->cands[ci].in_pop = 1;
    }
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(st, "warm");
    int nw = cJSON_IsArray(wj) ? cJSON_GetArraySize(wj) : 0;
    if (nw > 0) {
        char **copy = calloc((size_t)nw, sizeof *copy);
        if (!copy) {
            ld_err(err, LD_ENOMEM, "search state: out of memory");
            goto fail;
        }
        for (int q = 0; q < nw; q++) {
            const cJSON *w = cJSON_GetArrayItem(wj, q);
            copy[q] = strdup(cJSON_IsString(w) ? w->valuestring : "");
        }
        s->warm = (const char *const *)copy;
        s->nwarm = nw;
    }
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(st, "prior");
    int np = cJSON_IsArray(pj) ? cJSON_GetArraySize(pj) : 0;
    if (np > 0) {
        s->prior = calloc((size_t)np, sizeof *s->prior);
        if (!s->prior) {
            ld_err(err, LD_ENOMEM, "search state: out of memory");
            goto fail;
        }
        cJSON_ArrayForEach(x, pj) {
            SurrPriorRow *r = &s->prior[s->nprior];
            const cJSON *ex = cJSON_GetArrayItem(x, 2 + SURR_NTASKF);
            if (cJSON_GetArraySize(x) != 3 + SURR_NTASKF || !cJSON_IsString(ex)) {
                ld_err(err, LD_EINVAL, "search state: prior[%d]: not [y, w, task features, expr]", s->nprior);
                goto fail;
            }
            r->y = exact_get(cJSON_GetArrayItem(x, 0));
            r->w = exact_get(cJSON_GetArrayItem(x, 1));
            for (int f = 0; f < SURR_NTASKF; f++) r->tf[f] = exact_get(cJSON_GetArrayItem(x, 2 + f));
            r->expr = strdup(ex->valuestring);
            s->nprior++;
            if (!r->expr) {
                ld_err(err, LD_ENOMEM, "search state: out of memory");
                goto fail;
            }
        }
    }
    const cJSON *rj = cJSON_GetObjectItemCaseSensitive(st, "reasons");
    cJSON_ArrayForEach(x, rj) {
        if (s->nreasons >= MAX_REASONS || cJSON_GetArraySize(x) != 2) break;
        const cJSON *t = cJSON_GetArrayItem(x, 0), *n = cJSON_GetArrayItem(x, 1);
        if (!cJSON_IsString(t) || !cJSON_IsNumber(n)) break;
        snprintf(s->reasons[s->nreasons].text, sizeof s->reasons[0].text, "%s", t->valuestring);
        s->reasons[s->nreasons++].n = n->valueint;
    }
    return s;
fail:
    search_free(s);
    return NULL;
}

/* ---- single candidates ---- */

int64_t search_ncandidates(const Search *s) { return s->ncand; }

int job_evaluate_only(const SearchJob *j) { return j->evaluate_only; }

cJSON *search_candidate(const Search *s, int64_t cand) {
    static const char *const status_name[] = {"alive", "baseline", "rejected", "alias"};
    if (cand < 0 || cand >= s->ncand) return NULL;
    const Cand *c = &s->cands[cand];
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "cand", (double)c->id);
    cJSON_AddStringToObject(o, "expr", c->text);
    add_u64(o, "hash", c->hash);
    cJSON_AddNumberToObject(o, "size", c->size);
    cJSON_AddStringToObject(o, "op", c->op);
    char origin[SEARCH_SOURCE_MAX + 16];
    cand_origin(c, origin, sizeof origin);
    cJSON_AddStringToObject(o, "origin", origin);
    cJSON *par = cJSON_AddArrayToObject(o, "parents");
    for (int q = 0; q < 2; q++)
        if (c->parents[q] >= 0) cJSON_AddItemToArray(par, cJSON_CreateNumber((double)c->parents[q]));
    cJSON_AddStringToObject(o, "status", status_name[c->status]);
    if (c->reason) cJSON_AddStringToObject(o, "reason", c->reason);
    if (c->alias_of >= 0) cJSON_AddNumberToObject(o, "alias_of", (double)c->alias_of);
    cJSON_AddNumberToObject(o, "level", c->done);
    add_num(o, "fitness", c->done >= 0 ? rank_fitness(c) : NAN);
    return o;
}

