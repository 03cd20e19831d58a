/* search.c: `lossd search JOB.json`: runs a whole search without the daemon: worker threads
 * train the engine's rounds, progress goes to stderr, one JSON report to stdout; with --db the
 * job, candidates, evaluations and engine state are recorded and warm starts are read. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../api/rpc.h"
#include "../search/search.h"
#include "../daemon/engine.h"
#include "../daemon/executor.h"
#include "../daemon/rounds.h"
#include "../storage/store.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: lossd search JOB.json [--workers N] [--db FILE] [--seed N] [--proposals FILE]\n"
               "                    [--quiet]\n"
               "  runs a loss search (docs/jobs.md) and prints one JSON report on stdout\n"
               "  --workers N  training threads (default: the number of cores)\n"
               "  --db FILE    record the job, candidates, evaluations and state in FILE and\n"
               "               warm-start from the best losses earlier searches stored there\n"
               "  --seed N     override the job's seed\n"
               "  --proposals FILE  proposals to hand the engine where they arrived in a daemon's\n"
               "               job: JSON lines {\"point\": P, \"exprs\": [...], \"source\": \"S\"}\n"
               "               (candidate.propose's reply gives the point; docs/jobs.md)\n"
               "  --quiet      no progress lines on stderr\n");
}

/* Finished items land at their index of the round's outcomes (executor.h, loop-less). */
static void on_done(void *ud, ExecItem *it) {
    WorkOutcome *results = *(WorkOutcome **)ud; /* the caller's array, wherever it now is */
    results[it->idx] = it->out;
    exec_item_free(it);
}

/* Runs one round through the executor: every work submitted, every outcome swept back. */
static int run_round(Executor *x, const SearchJob *job, const WorkItem *works, int n, char *err) {
    for (int i = 0; i < n; i++) {
        ExecItem *it = calloc(1, sizeof *it);
        if (!it) {
            while (exec_pending(x) > 0) exec_sweep(x, 1);
            return ld_err(err, LD_ENOMEM, "out of memory");
        }
        it->work = works[i];
        it->task = engine_task(job, works[i].task);
        it->idx = i;
        exec_submit(x, it);
    }
    while (exec_pending(x) > 0) exec_sweep(x, 1);
    return LD_OK;
}

static int ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* ---- recording in the database ---- */

typedef struct Db {
    Store *st;
    int64_t job_id;
    int64_t task_id[64];
    char family[24];
    RoundBook book; /* the daemon's round bookkeeping (daemon/rounds.h): one path for both */
} Db;

static int db_start(Db *d, const char *path, const SearchJob *job, char *err) {
    int rc = store_open(path, 0, &d->st, err);
    if (rc != LD_OK) return rc;
    cJSON *spec = job_json(job);
    StoreJobNew jn = {.spec = spec, .name = job_name(job), .seed = job_seed(job),
                      .budget_evals = job_budget_evals(job)};
    rc = store_job_insert(d->st, &jn, &d->job_id, NULL, err);
    cJSON_Delete(spec);
    if (rc != LD_OK) return rc;
    for (int i = 0; i < job_ntasks(job) && i < 64; i++) {
        const Task *t = engine_task(job, i);
        cJSON *ts = task_spec(t);
        rc = store_task_upsert(d->st, task_hash(t), family_name(task_family(t)), task_name(t),
                               task_metric(t), task_higher_better(t), ts, &d->task_id[i], err);
        cJSON_Delete(ts);
        if (rc == LD_OK) rc = store_job_add_task(d->st, d->job_id, i, d->task_id[i],
                                                 job_is_holdout(job, i), err);
        if (rc != LD_OK) return rc;
    }
    snprintf(d->family, sizeof d->family, "%s", family_name(task_family(engine_task(job, 0))));
    d->book = (RoundBook){.store = d->st, .job_id = d->job_id, .task_ids = d->task_id,
                          .family = d->family};
    return store_job_set_state(d->st, d->job_id, "running", NULL, err);
}

/* Ends one of the round's transactions: committed, or rolled back with what the book
 * remembers as written. */
static int db_end(Db *d, int rc, char *err) {
    if (rc == LD_OK) rc = store_commit(d->st, err);
    if (rc != LD_OK) {
        if (store_in_transaction(d->st)) store_rollback(d->st);
        round_book_forget(&d->book);
    }
    return rc;
}

/* A round is recorded as the daemon records it: its candidates before it runs, */
static int db_open_round(Db *d, const Search *s, const WorkItem *w, int n, char *err) {
    int rc = store_begin(d->st, err);
    if (rc == LD_OK) rc = round_book_candidates(&d->book, s, w, n, err);
    return db_end(d, rc, err);
}

/* its outcomes (rejections too, as the daemon stores them), */
static int db_outcomes(Db *d, const WorkItem *w, const WorkOutcome *r, int n, char *err) {
    int rc = store_begin(d->st, err);
    for (int i = 0; rc == LD_OK && i < n; i++) rc = round_book_outcome(&d->book, &w[i], &r[i], NULL, err);
    return db_end(d, rc, err);
}

/* and, once the engine took them, its state (every round), fitness and progress. */
static int db_close_round(Db *d, const Search *s, int64_t round, const int64_t *cands, int ncands,
                          char *err) {
    cJSON *stats = search_stats(s), *lb = NULL;
    const cJSON *ev = cJSON_GetObjectItem(stats, "evaluations");
    int rc = store_begin(d->st, err);
    if (rc == LD_OK)
        rc = round_book_close(&d->book, s, round, 1, cands, ncands,
                              cJSON_IsNumber(ev) ? (int64_t)ev->valuedouble : 0, NAN, stats, &lb, err);
    cJSON_Delete(lb);
    cJSON_Delete(stats);
    return db_end(d, rc, err);
}

/* The database's cross-job result cache: a run of the same loss on the same task with the same
 * seed and steps, in this job or an earlier one, is not trained again. */
typedef struct LookupCtx {
    Db *db;
    const SearchJob *job;
} LookupCtx;

static int db_lookup(void *ctx, const WorkItem *w, uint64_t expr_hash, EvalResult *out) {
    LookupCtx *lc = ctx;
    int found = 0;
    char err[LD_ERR_MAX];
    if (store_result_lookup(lc->db->st, expr_hash, task_hash(engine_task(lc->job, w->task)), w->seed,
                            w->steps, &found, out, err) != LD_OK)
        return 0;
    /* a stored rejection is not a training result: the pre-check runs again */
    if (found && !out->ok && !strncmp(out->error, STORE_REJECTED_PREFIX, strlen(STORE_REJECTED_PREFIX)))
        return 0;
    return found ? 1 : 0;
}

/* ---- the command ---- */

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* The baseline's entry after the top ten when it ranks below them, so that its rank is always in
 * the report (docs/jobs.md). */
static void append_baseline(const Search *s, cJSON *lb) {
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "baseline"))) return;
    }
    cJSON *all = search_leaderboard(s, 0);
    int i = 0;
    cJSON_ArrayForEach(e, all) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "baseline"))) {
            cJSON_AddItemToArray(lb, cJSON_DetachItemFromArray(all, i));
            break;
        }
        i++;
    }
    cJSON_Delete(all);
}

/* --proposals: JSON lines {point, exprs, source}, in arrival order, handed to the engine when it
 * reaches each one's point (search_point), as the daemon's restart replays its stored ones. */
typedef struct Proposals {
    cJSON *lines; /* owned array of the file's objects */
    int next;     /* first line not yet handed over */
} Proposals;

static int proposals_load(Proposals *p, const char *path, char *err) {
    char *text = ld_read_file(path, NULL, err);
    if (!text) return LD_EIO;
    p->lines = cJSON_CreateArray();
    int rc = LD_OK, ln = 0;
    for (char *line = strtok(text, "\n"); line && rc == LD_OK; line = strtok(NULL, "\n")) {
        ln++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        cJSON *o = cJSON_Parse(line);
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "point");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "exprs");
        if (!cJSON_IsNumber(pt) || pt->valuedouble < 0 || !cJSON_IsArray(ex))
            rc = ld_err(err, LD_EINVAL, "%s:%d: expected {\"point\": N, \"exprs\": [...], "
                        "\"source\": \"S\"}", path, ln);
        if (rc == LD_OK) cJSON_AddItemToArray(p->lines, o);
        else cJSON_Delete(o);
    }
    free(text);
    return rc;
}

/* Hands over every line whose point the engine has reached. */
static int proposals_due(Proposals *p, Search *s, char *err) {
    SearchProposal *out = NULL;
    int rc = LD_OK;
    for (;;) {
        const cJSON *o = cJSON_GetArrayItem(p->lines, p->next);
        if (!o || cJSON_GetObjectItemCaseSensitive(o, "point")->valuedouble > (double)search_point(s))
            break;
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source"), *x;
        if (!out && !(out = malloc(sizeof *out))) {
            rc = ld_err(err, LD_ENOMEM, "proposals: out of memory");
            break;
        }
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "exprs")) {
            if (!cJSON_IsString(x)) continue;
            rc = search_propose(s, x->valuestring, cJSON_IsString(src) ? src->valuestring : "user", out);
            if (rc != LD_OK) break;
        }
        p->next++;
        if (rc != LD_OK) break;
    }
    free(out);
    return rc;
}

int search_main(int argc, char **argv) {
    const char *job_path = NULL, *db_path = NULL, *prop_path = NULL;
    Proposals props = {0};
    int nworkers = ncores(), quiet = 0, have_seed = 0, status = 1;
    unsigned long long seed = 0;
    char err[LD_ERR_MAX] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--workers") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 256) {
                fprintf(stderr, "lossd search: --workers: must be 1 to 256, got \"%s\"\n", argv[i]);
                return 2;
            }
            nworkers = (int)v;
        } else if (!strcmp(a, "--db") && i + 1 < argc) {
            db_path = argv[++i];
        } else if (!strcmp(a, "--proposals") && i + 1 < argc) {
            prop_path = argv[++i];
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            char *end;
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || errno || argv[i][0] == '-' || !argv[i][0]) {
                fprintf(stderr, "lossd search: --seed: not a non-negative integer: \"%s\"\n", argv[i]);
                return 2;
            }
            have_seed = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' || job_path) {
            fprintf(stderr, "lossd search: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        } else {
            job_path = a;
        }
    }
    if (!job_path) {
        usage(stderr);
        return 2;
    }

    SearchJob *job = NULL;
    Search *s = NULL;
    Executor *exec = NULL;
    Db db = {0};
    cJSON *json = NULL;
    char *text = NULL, *base = NULL, **warm = NULL;
    int nwarm = 0, want_prior = 0;
    WorkOutcome *results = NULL;
    int cap_results = 0;

    text = ld_read_file(job_path, NULL, err);
    if (!text) {
        fprintf(stderr, "lossd search: %s\n", err);
        status = 2;
        goto done;
    }
    json = cJSON_Parse(text);
    if (!json) {
        char why[160];
        ld_json_error(text, cJSON_GetErrorPtr(), why, sizeof why);
        fprintf(stderr, "%s:%s\n", job_path, why);
        status = 2;
        goto done;
    }
    /* a NUL or invalid UTF-8 in a name would be cut silently: refused as over the socket */
    if (rpc_check_text(text, strlen(text), err) != LD_OK) {
        fprintf(stderr, "%s: %s\n", job_path, err);
        status = 2;
        goto done;
    }
    if (have_seed && cJSON_IsObject(json)) {
        char b[24];
        snprintf(b, sizeof b, "%llu", seed);
        cJSON_DeleteItemFromObjectCaseSensitive(json, "seed");
        cJSON_AddStringToObject(json, "seed", b);
    }
    if (prop_path && proposals_load(&props, prop_path, err) != LD_OK) {
        fprintf(stderr, "lossd search: --proposals: %s\n", err);
        status = 2;
        goto done;
    }
    base = dir_of(job_path);
    if (job_parse(json, base, engine_env(), &job, err) != LD_OK) {
        fprintf(stderr, "%s: %s\n", job_path, err);
        status = 2;
        goto done;
    }

    if (db_path) {
        if (db_start(&db, db_path, job, err) != LD_OK) {
            fprintf(stderr, "lossd search: %s\n", err);
            goto done;
        }
        cJSON *spec = job_json(job);
        cJSON *ws = cJSON_GetObjectItem(spec, "warm_start");
        int want_warm = cJSON_IsTrue(ws);
        want_prior = want_warm;
        cJSON *pop = cJSON_GetObjectItem(spec, "population");
        int k = cJSON_IsNumber(pop) ? pop->valueint / 2 : 8;
        cJSON_Delete(spec);
        if (want_warm && store_warm_start(db.st, family_name(task_family(engine_task(job, 0))),
                                          task_hash(engine_task(job, 0)), k < 1 ? 1 : k, &warm,
                                          &nwarm, err) != LD_OK) {
            fprintf(stderr, "lossd search: warm start: %s (continuing without)\n", err);
            nwarm = 0;
            warm = NULL;
        }
    }

    double t_start = ld_now_ms(), overhead_ms = 0, t0;
    t0 = ld_now_ms();
    s = search_new(job, (const char *const *)warm, nwarm, err);
    overhead_ms += ld_now_ms() - t0;
    if (!s) {
        fprintf(stderr, "lossd search: %s\n", err);
        goto done;
    }
    search_set_worker_precheck(s, 1); /* run_one honours WorkItem.precheck */
    if (db.st && want_prior) { /* what earlier jobs measured: the pre-screen's prior */
        cJSON *prior = NULL;
        if (store_prior_read(db.st, db.family, task_hash(engine_task(job, 0)), SEARCH_PRIOR_MAX, &prior,
                             err) != LD_OK ||
            search_set_prior(s, prior, err) != LD_OK)
            fprintf(stderr, "lossd search: pre-screen prior: %s (continuing without)\n", err);
        cJSON_Delete(prior);
    }
    /* with proposals, an evaluate-only job waits for them as in the daemon */
    search_set_wait_for_proposals(s, props.lines != NULL);
    LookupCtx lctx = {&db, job};
    if (db.st) search_set_lookup(s, db_lookup, &lctx);
    double budget_s = job_budget_seconds(job);
    int budget = job_budget_evals(job);
    int64_t round = 0;
    for (;;) {
        if (budget_s > 0 && (ld_now_ms() - t_start) / 1000.0 >= budget_s) search_stop(s, 0);
        const WorkItem *works;
        t0 = ld_now_ms();
        int prc = props.lines ? proposals_due(&props, s, err) : LD_OK;
        int n = prc == LD_OK ? search_round(s, &works) : 0;
        if (prc == LD_OK && n > 0 && props.lines) prc = proposals_due(&props, s, err);
        overhead_ms += ld_now_ms() - t0;
        if (prc != LD_OK) {
            fprintf(stderr, "lossd search: %s\n", err);
            goto done;
        }
        if (n <= 0 && search_waiting(s)) {
            /* the daemon's job would wait for more: the file has no more, as a user's job.finish */
            const cJSON *o = cJSON_GetArrayItem(props.lines, props.next);
            if (!o) {
                search_stop(s, 0);
                continue;
            }
            fprintf(stderr, "lossd search: --proposals: point %.0f never comes: the job waits "
                    "for proposals at point %lld\n",
                    cJSON_GetObjectItemCaseSensitive(o, "point")->valuedouble, (long long)search_point(s));
            status = 2;
            goto done;
        }
        if (n <= 0) break;
        if (n > cap_results) {
            WorkOutcome *nr = realloc(results, (size_t)n * sizeof *nr);
            if (!nr) {
                fprintf(stderr, "lossd search: out of memory\n");
                goto done;
            }
            results = nr;
            cap_results = n;
        }
        if (!exec) {
            ExecConfig xc = {.loop = NULL, .workers = nworkers, .done = on_done, .ud = &results};
            if (exec_open("threads", &xc, &exec, err) != LD_OK) {
                fprintf(stderr, "lossd search: %s\n", err);
                goto done;
            }
        }
        if (db.st && db_open_round(&db, s, works, n, err) != LD_OK)
            fprintf(stderr, "lossd search: recording round %lld: %s\n", (long long)round, err);
        if (run_round(exec, job, works, n, err) != LD_OK) {
            fprintf(stderr, "lossd search: %s\n", err);
            goto done;
        }
        if (db.st && db_outcomes(&db, works, results, n, err) != LD_OK)
            fprintf(stderr, "lossd search: recording round %lld: %s\n", (long long)round, err);
        int ncands = 0;
        int64_t *cands = db.st ? round_book_cands(works, n, &ncands) : NULL;
        t0 = ld_now_ms();
        int rc = search_finish_round(s, results, n, err);
        overhead_ms += ld_now_ms() - t0;
        if (rc != LD_OK) {
            free(cands);
            fprintf(stderr, "lossd search: %s\n", err);
            goto done;
        }
        round++;
        if (db.st && db_close_round(&db, s, round, cands, ncands, err) != LD_OK)
            fprintf(stderr, "lossd search: recording state: %s\n", err);
        free(cands);
        if (!quiet) {
            t0 = ld_now_ms();
            cJSON *st = search_stats(s);
            overhead_ms += ld_now_ms() - t0;
            double el = (ld_now_ms() - t_start) / 1000.0;
            int ev = cJSON_GetObjectItem(st, "evaluations")->valueint;
            int fe = cJSON_GetObjectItem(st, "final_evaluations")->valueint +
                     cJSON_GetObjectItem(st, "horizon_evaluations")->valueint; /* both after the budget */
            cJSON *bf = cJSON_GetObjectItem(st, "best_fitness");
            cJSON *be = cJSON_GetObjectItem(st, "best_expr");
            fprintf(stderr,
                    "[search] round %lld  evals %d/%d (+%d final)  best %+.4f %s  %.2f evals/s  "
                    "%.1fs\n",
                    (long long)round, ev, budget, fe, cJSON_IsNumber(bf) ? bf->valuedouble : NAN,
                    cJSON_IsString(be) ? be->valuestring : "-", el > 0 ? (ev + fe) / el : 0, el);
            cJSON_Delete(st);
        }
    }
    double wall_s = (ld_now_ms() - t_start) / 1000.0;

    t0 = ld_now_ms();
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "job", job_name(job));
    cJSON_AddStringToObject(out, "family", family_name(task_family(engine_task(job, 0))));
    cJSON *norm = job_json(job); /* what parsing decided for the user, e.g. the small-data rule */
    cJSON *notes = norm ? cJSON_DetachItemFromObject(norm, "notes") : NULL;
    if (notes) cJSON_AddItemToObject(out, "notes", notes);
    cJSON_Delete(norm);
    cJSON *lb = search_leaderboard(s, 10);
    append_baseline(s, lb);
    cJSON_AddItemToObject(out, "leaderboard", lb);
    cJSON_AddItemToObject(out, "pareto", search_pareto(s));
    cJSON *stats = search_stats(s);
    static const char *const copy[] = {"evaluations", "final_evaluations", "cache_hits",
                                       "signature_hits", "result_cache_hits", "rejections",
                                       "promotions", NULL};
    for (int i = 0; copy[i]; i++) {
        cJSON *v = cJSON_GetObjectItem(stats, copy[i]);
        cJSON_AddNumberToObject(out, copy[i], cJSON_IsNumber(v) ? v->valuedouble : 0);
    }
    overhead_ms += ld_now_ms() - t0;
    cJSON_AddNumberToObject(out, "workers", nworkers);
    cJSON_AddNumberToObject(out, "wall_s", wall_s);
    cJSON_AddNumberToObject(out, "search_overhead_s", overhead_ms / 1000.0);
    cJSON_AddNumberToObject(out, "search_overhead_share",
                            wall_s > 0 ? overhead_ms / 1000.0 / wall_s : 0);
    cJSON_AddItemToObject(out, "stats", stats);
    if (db.st) {
        cJSON_AddNumberToObject(out, "db_job", (double)db.job_id);
        cJSON *st2 = search_stats(s);
        cJSON *bf = cJSON_GetObjectItem(st2, "best_fitness");
        if (store_job_update_progress(db.st, db.job_id,
                                      (int64_t)cJSON_GetObjectItem(st2, "evaluations")->valuedouble,
                                      cJSON_IsNumber(bf) ? bf->valuedouble : NAN, lb, st2,
                                      err) != LD_OK ||
            store_job_set_state(db.st, db.job_id, "done", NULL, err) != LD_OK)
            fprintf(stderr, "lossd search: recording the result: %s\n", err);
        cJSON_Delete(st2);
    }
    char *printed = cJSON_Print(out);
    if (printed) {
        fputs(printed, stdout);
        fputc('\n', stdout);
        free(printed);
    }
    cJSON_Delete(out);
    if (!quiet)
        fprintf(stderr, "[search] done in %.1fs; engine overhead %.3fs (%.2f%% of wall time)\n",
                wall_s, overhead_ms / 1000.0, wall_s > 0 ? 100.0 * overhead_ms / 1000.0 / wall_s : 0);
    status = 0;
done:
    if (exec) {
        exec_items_free(exec_stop(exec));
        exec_close(exec);
    }
    if (db.st && status != 0 && db.job_id)
        store_job_set_state(db.st, db.job_id, "failed", err[0] ? err : "search failed", NULL);
    search_free(s);
    job_free(job);
    round_book_free(&db.book);
    store_close(db.st);
    if (warm) store_strv_free(warm, nwarm);
    cJSON_Delete(json);
    cJSON_Delete(props.lines);
    free(results);
    free(text);
    free(base);
    return status;
}
