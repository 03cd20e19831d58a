/* rounds.h: a search round's bookkeeping in the store, one path for the daemon (daemon/jobs.c)
 * and `lossd search --db` (cmd/search.c): the candidates of the round's works when it opens,
 * each outcome as it comes back, then, once the engine has taken the round, its state, the
 * fitness and rank tier of the candidates whose rank may have changed (a ranked candidate that
 * never had a work, a result found by the engine's lookup, is stored then), and the job's
 * progress.
 * Each call writes inside the caller's transaction (store_begin; the daemon commits with its
 * events); none commits. Loop thread (or the only thread) only. */
#ifndef ROUNDS_H
#define ROUNDS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/work.h"
#include "../search/search.h"
#include "../storage/store.h"

/* One job's records. The caller fills store, job_id, task_ids and family; the rest is the
 * book's own memory of what it wrote (zero to start). */
typedef struct RoundBook {
    Store *store;             /* borrowed */
    int64_t job_id;
    const int64_t *task_ids;  /* borrowed: the store row of each of the job's tasks */
    const char *family;       /* borrowed: the job's family, stored with its candidates */
    /* the fitness and tier last written for each candidate, so a round writes only changes */
    double *fit_synced;
    int *tier_synced;
    int64_t nfit_synced;
    int64_t nprop_stored; /* the job's stored proposals (the caller counts them when loading) */
} RoundBook;

/* Stores the candidates of the works (idempotent: a resumed round writes them again). */
int round_book_candidates(RoundBook *b, const Search *s, const WorkItem *works, int n, char *err);
/* Stores one outcome of work w (store_outcome_put: *inserted 0 when it was stored already). */
int round_book_outcome(RoundBook *b, const WorkItem *w, const WorkOutcome *o, int *inserted,
                       char *err);
/* Stores the engine's state at the boundary after `round` rounds. */
int round_book_state(RoundBook *b, const Search *s, int64_t round, char *err);

/* The distinct candidates of works, sorted: call before search_finish_round (the works go with
 * their round). Returns owned (NULL when out of memory: round_book_close then syncs every
 * ranked candidate), the count in *n. */
int64_t *round_book_cands(const WorkItem *works, int nworks, int *n);
/* After search_finish_round: with save_state, the engine's state at `round`; the fitness and
 * tier of every candidate the engine ranks (alive or baseline, trained) whose stored ones
 * differ: those of cands when given, every ranked one when cands is NULL, holds the baseline
 * (candidate 0, whose levels every waiting candidate is measured against) or nothing was
 * written yet; then the job's progress (evals; the best fitness: the leaderboard's first, or
 * best when it is empty; a snapshot of the top ROUND_BOOK_SNAPSHOT entries; stats: borrowed).
 * *lb is the engine's leaderboard it read (owned, best first; at least the snapshot's
 * entries), also on failure. */
#define ROUND_BOOK_SNAPSHOT 100
int round_book_close(RoundBook *b, const Search *s, int64_t round, int save_state,
                     const int64_t *cands, int ncands, int64_t evals, double best,
                     const cJSON *stats, cJSON **lb, char *err);
/* Hands the engine the job's stored proposals it has not taken yet (search_nproposed) whose
 * arrival point it has reached (search_point), in order: after a restart they arrive where they
 * first did. Call after search_restore and around search_round (before it, and after it opened
 * a round). Reads only; LD_OK when there is nothing to hand. */
int round_book_proposals(RoundBook *b, Search *s, char *err);

/* After a rollback: forgets what it remembers as written. */
void round_book_forget(RoundBook *b);
void round_book_free(RoundBook *b); /* its memory, not b itself */

#endif
