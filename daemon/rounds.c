/* rounds.c: a search round's bookkeeping in the store (rounds.h), shared by the daemon's jobs
 * and `lossd search --db`, so both record a job the same way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rounds.h"

#define FITNESS_SYNC_K 100000 /* engine leaderboard entries whose fitness is stored */

static double jnum(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int round_book_candidates(RoundBook *b, const Search *s, const WorkItem *works, int n, char *err) {
    int rc = LD_OK;
    for (int i = 0; rc == LD_OK && i < n; i++) {
        const WorkItem *w = &works[i];
        char perr[LD_ERR_MAX];
        Expr *e = expr_parse(w->expr, perr);
        uint64_t h = e ? expr_hash(e) : ld_hash64(w->expr, strlen(w->expr));
        int size = e ? expr_size(e) : 0;
        expr_free(e);
        cJSON *cj = search_candidate(s, w->cand);
        const char *op = jstr(cj, "op");
        const cJSON *parents = cJSON_GetObjectItemCaseSensitive(cj, "parents");
        rc = store_candidate_put(b->store, b->job_id, w->cand, w->expr, h, size, parents,
                                 op ? op : "search", jstr(cj, "origin"), b->family, NULL, err);
        cJSON_Delete(cj);
    }
    return rc;
}

/* Stores a candidate the engine ranks without having sent it to train (a result the lookup found
 * in the store: search_set_lookup), from the engine's own record of it. */
static int put_unsent(RoundBook *b, const Search *s, int64_t cand, char *err) {
    cJSON *c = search_candidate(s, cand);
    const char *expr = jstr(c, "expr"), *hash = jstr(c, "hash"), *op = jstr(c, "op");
    int rc = LD_OK;
    if (expr && hash)
        rc = store_candidate_put(b->store, b->job_id, cand, expr, strtoull(hash, NULL, 16),
                                 (int)jnum(c, "size", 0), cJSON_GetObjectItemCaseSensitive(c, "parents"),
                                 op ? op : "search", jstr(c, "origin"), b->family, NULL, err);
    cJSON_Delete(c);
    return rc;
}

/* Writes a ranked candidate's fitness and tier, storing it first when it never had a work. */
static int set_rank(RoundBook *b, const Search *s, int64_t cand, double f, int tier, char *err) {
    int rc = store_candidate_set_rank(b->store, b->job_id, cand, f, tier, err);
    if (rc != LD_ENOTFOUND) return rc;
    rc = put_unsent(b, s, cand, err);
    if (rc == LD_OK) rc = store_candidate_set_rank(b->store, b->job_id, cand, f, tier, err);
    return rc == LD_ENOTFOUND ? LD_OK : rc;
}

int round_book_outcome(RoundBook *b, const WorkItem *w, const WorkOutcome *o, int *inserted,
                       char *err) {
    StoreEvalKey key = {
        .job_id = b->job_id,
        .seq = w->seq,
        .cand = w->cand,
        .task_id = b->task_ids[w->task],
        .seed = w->seed,
        .steps = w->steps,
    };
    return store_outcome_put(b->store, &key, o, inserted, err);
}

int round_book_state(RoundBook *b, const Search *s, int64_t round, char *err) {
    cJSON *state = search_save(s);
    if (!state)
        return ld_err(err, LD_ENOMEM, "job %lld: cannot save the search state", (long long)b->job_id);
    int rc = store_state_put(b->store, b->job_id, round, state, err);
    cJSON_Delete(state);
    return rc;
}

/* 1 when cand's stored fitness is already f; else remembers f (the caller writes it). A NaN
 * slot means "never written" (an unranked candidate is not in the leaderboard anyway). */
static int fitness_synced(RoundBook *b, int64_t cand, double f, int tier) {
    if (cand >= b->nfit_synced) {
        int64_t n = b->nfit_synced ? b->nfit_synced : 64;
        while (n <= cand) n *= 2;
        double *v = realloc(b->fit_synced, (size_t)n * sizeof *v);
        if (!v) return 0; /* write it: correctness does not depend on this cache */
        b->fit_synced = v;
        int *t = realloc(b->tier_synced, (size_t)n * sizeof *t);
        if (!t) return 0;
        b->tier_synced = t;
        for (int64_t i = b->nfit_synced; i < n; i++) {
            v[i] = NAN;
            t[i] = -2;
        }
        b->nfit_synced = n;
    }
    if (b->fit_synced[cand] == f && b->tier_synced[cand] == tier) return 1;
    b->fit_synced[cand] = f;
    b->tier_synced[cand] = tier;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t *round_book_cands(const WorkItem *works, int nworks, int *n) {
    *n = 0;
    int64_t *c = malloc((size_t)(nworks > 0 ? nworks : 1) * sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < nworks; i++) c[i] = works[i].cand;
    qsort(c, (size_t)nworks, sizeof *c, cmp_i64);
    for (int i = 0; i < nworks; i++)
        if (*n == 0 || c[*n - 1] != c[i]) c[(*n)++] = c[i];
    return c;
}

/* Writes the fitness of cand when the engine ranks it (alive or baseline, trained) and it
 * differs from what was last written: the store then ranks exactly the engine's candidates. */
static int sync_one_fitness(RoundBook *b, const Search *s, int64_t cand, char *err) {
    cJSON *cj = search_candidate(s, cand);
    if (!cj) return LD_OK;
    const char *st = jstr(cj, "status");
    double level = jnum(cj, "level", -1);
    double f = jnum(cj, "fitness", NAN);
    int ranked = st && (!strcmp(st, "alive") || !strcmp(st, "baseline")) && level >= 0;
    cJSON_Delete(cj);
    int tier = search_tier(s, cand);
    if (!ranked || fitness_synced(b, cand, f, tier)) return LD_OK;
    return set_rank(b, s, cand, f, tier, err);
}

/* A candidate's fitness changes only when one of its levels completes, which takes a result of
 * its own in this round, or, for a candidate waiting on the baseline's level, a result of the
 * baseline (candidate 0); so a round without the baseline syncs its own candidates, and one with
 * it (few: one per level) or the first after loading syncs all. */
int round_book_close(RoundBook *b, const Search *s, int64_t round, int save_state,
                     const int64_t *cands, int ncands, int64_t evals, double best,
                     const cJSON *stats, cJSON **lb_out, char *err) {
    int sync_all = !cands || b->nfit_synced == 0 || (ncands > 0 && cands[0] == 0);
    cJSON *lb = search_leaderboard(s, sync_all ? FITNESS_SYNC_K : ROUND_BOOK_SNAPSHOT);
    int rc = LD_OK;
    *lb_out = NULL;
    if (save_state) rc = round_book_state(b, s, round, err);
    const cJSON *ent;
    if (sync_all) {
        cJSON_ArrayForEach(ent, lb) {
            if (rc != LD_OK) break;
            double f = jnum(ent, "fitness", NAN);
            int64_t cand = (int64_t)jnum(ent, "cand", -1);
            if (cand < 0) continue;
            int tier = search_tier(s, cand);
            if (fitness_synced(b, cand, f, tier)) continue;
            rc = set_rank(b, s, cand, f, tier, err);
        }
    } else {
        for (int i = 0; rc == LD_OK && i < ncands; i++) rc = sync_one_fitness(b, s, cands[i], err);
    }
    /* the final comparisons (search and horizon recipes) go with their candidates: few, and
     * only once the final evaluation is in */
    cJSON_ArrayForEach(ent, lb) {
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ent, "final");
        int64_t cand = (int64_t)jnum(ent, "cand", -1);
        if (rc != LD_OK || !fin || cand < 0) continue;
        rc = store_candidate_set_final(b->store, b->job_id, cand, fin, err);
        if (rc == LD_ENOTFOUND) rc = LD_OK;
    }
    /* the job's row keeps a short snapshot: the full ranking lives in the candidates' fitness */
    cJSON *snap = cJSON_CreateArray();
    int k = 0;
    cJSON_ArrayForEach(ent, lb) {
        if (k++ >= ROUND_BOOK_SNAPSHOT) break;
        cJSON_AddItemToArray(snap, cJSON_Duplicate(ent, 1));
    }
    if (cJSON_GetArraySize(lb) > 0) best = jnum(cJSON_GetArrayItem(lb, 0), "fitness", NAN);
    if (rc == LD_OK)
        rc = store_job_update_progress(b->store, b->job_id, evals, best, snap, stats, err);
    cJSON_Delete(snap);
    *lb_out = lb;
    return rc;
}

int round_book_proposals(RoundBook *b, Search *s, char *err) {
    int64_t from = search_nproposed(s);
    if (from >= b->nprop_stored) return LD_OK;
    cJSON *rows = NULL;
    int rc = store_proposals_from(b->store, b->job_id, from, &rows, err);
    if (rc != LD_OK) return rc;
    SearchProposal *p = malloc(sizeof *p);
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        if (!p) {
            rc = ld_err(err, LD_ENOMEM, "job %lld: replaying proposals: out of memory", (long long)b->job_id);
            break;
        }
        const char *expr = jstr(r, "expr"), *src = jstr(r, "source");
        if ((int64_t)jnum(r, "pseq", -1) != search_nproposed(s) || !expr) {
            rc = ld_err(err, LD_EINVAL, "job %lld: stored proposal %lld: out of order or empty",
                        (long long)b->job_id, (long long)jnum(r, "pseq", -1));
            break;
        }
        if ((int64_t)jnum(r, "point", 0) > search_point(s)) break; /* arrived later */
        rc = search_propose(s, expr, src ? src : "user", p);
        if (rc != LD_OK) {
            ld_err(err, rc, "job %lld: replaying proposal %lld: out of memory", (long long)b->job_id,
                   (long long)jnum(r, "pseq", -1));
            break;
        }
    }
    free(p);
    cJSON_Delete(rows);
    return rc;
}

void round_book_forget(RoundBook *b) {
    free(b->fit_synced);
    free(b->tier_synced);
    b->fit_synced = NULL;
    b->tier_synced = NULL;
    b->nfit_synced = 0;
}

void round_book_free(RoundBook *b) { round_book_forget(b); }
