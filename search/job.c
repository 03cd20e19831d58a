/* job.c: parses and validates a search job (docs/jobs.md): every problem is collected and named,
 * defaults are filled in, tasks are loaded through the caller's SearchEnv (search.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Collected problems: joined by "; " into err; when they do not fit, the first ones and a count. */
typedef struct Problems {
    char buf[LD_ERR_MAX];
    int n, shown;
    size_t len;
} Problems;

__attribute__((format(printf, 2, 3))) static void problem(Problems *p, const char *fmt, ...) {
    char one[LD_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof one, fmt, ap);
    va_end(ap);
    p->n++;
    size_t need = strlen(one) + (p->shown ? 2 : 0);
    /* keep room for " (and NNN more)" */
    if (p->len + need + 18 >= sizeof p->buf) {
        if (p->shown) return;
        /* the first problem alone is too long: keep its start (never half a UTF-8 character)
         * rather than nothing */
        size_t k = sizeof p->buf - 18 - 4;
        while (k > 0 && ((unsigned char)one[k] & 0xc0) == 0x80) k--;
        memcpy(p->buf, one, k);
        memcpy(p->buf + k, "...", 4);
        p->len = k + 3;
        p->shown = 1;
        return;
    }
    p->len += (size_t)snprintf(p->buf + p->len, sizeof p->buf - p->len, "%s%s",
                               p->shown ? "; " : "", one);
    p->shown++;
}

static void problems_finish(Problems *p, const char *prefix, char *err) {
    if (!err) return;
    if (p->n > p->shown)
        snprintf(p->buf + p->len, sizeof p->buf - p->len, " (and %d more)", p->n - p->shown);
    if (prefix && *prefix)
        snprintf(err, LD_ERR_MAX, "%s: %s", prefix, p->buf);
    else
        snprintf(err, LD_ERR_MAX, "%s", p->buf);
}

static const char *const op_names[EOP_COUNT] = {
#define X(id, spelling, arity) spelling,
    EXPR_OPS(X)
#undef X
};
static const char *const var_names[VAR_COUNT] = {
#define X(id, spelling, fams, pc) spelling,
    EXPR_VARS(X)
#undef X
};
static const char *const term_names[TERM_COUNT] = {
#define X(id, spelling, ...) spelling,
    EXPR_TERMS(X)
#undef X
};

static const char *const known_keys[] = {
    "name",   "tasks",    "holdout", "baseline", "space",  "population", "children", "mode",
    "tournament", "budget", "seeds", "fidelity", "final", "seed", "warm_start",
    "parsimony", "tune", "init", "seed_losses", "description", "family", "notes", NULL};

static int key_known(const char *k, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(k, list[i])) return 1;
    return 0;
}

static void unknown_keys(Problems *p, const cJSON *obj, const char *where,
                         const char *const *list) {
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (it->string && !key_known(it->string, list))
            problem(p, "%s%s%s: unknown key", where, *where ? "." : "", it->string);
    }
}

/* Reads an integer field: absent keeps *out; present must be an integer in [lo, hi]. */
static void get_int(Problems *p, const cJSON *obj, const char *key, const char *where, int lo,
                    int hi, int *out) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v) return;
    const char *dot = *where ? "." : "";
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
        problem(p, "%s%s%s: must be an integer", where, dot, key);
        return;
    }
    double d = v->valuedouble;
    if (d < lo) {
        problem(p, "%s%s%s: must be at least %d, got %.15g", where, dot, key, lo, d);
        return;
    }
    if (d > hi) {
        problem(p, "%s%s%s: must be at most %d, got %.15g", where, dot, key, hi, d);
        return;
    }
    *out = (int)d;
}

static void get_num(Problems *p, const cJSON *obj, const char *key, const char *where, double lo,
                    double hi, double *out) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v) return;
    const char *dot = *where ? "." : "";
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        problem(p, "%s%s%s: must be a number", where, dot, key);
        return;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        problem(p, "%s%s%s: must be between %g and %g, got %g", where, dot, key, lo, hi,
                v->valuedouble);
        return;
    }
    *out = v->valuedouble;
}

static const cJSON *get_obj(Problems *p, const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v && !cJSON_IsObject(v)) {
        problem(p, "%s: must be an object", key);
        return NULL;
    }
    return v;
}

/* "data: missing" from the task loader reads best as "tasks[0].data: missing". */
static void task_problem(Problems *p, const char *where, const char *msg) {
    if (!strncmp(msg, "task: ", 6)) msg += 6;
    size_t k = 0;
    while (msg[k] && (isalnum((unsigned char)msg[k]) || msg[k] == '_' || msg[k] == '.' ||
                      msg[k] == '[' || msg[k] == ']'))
        k++;
    if (k > 0 && msg[k] == ':' && msg[k + 1] == ' ' && strncmp(msg, "builtin", 7) != 0)
        problem(p, "%s.%s", where, msg);
    else
        problem(p, "%s: %s", where, msg);
}

/* Loads one task through the env into *out; 1 on success. */
static int load_one(Problems *p, const SearchEnv *env, const cJSON *spec, const char *base_dir,
                    const char *where, SearchTask *out) {
    char err[LD_ERR_MAX] = "";
    memset(out, 0, sizeof *out);
    if (cJSON_IsString(spec) && !spec->valuestring[0]) {
        problem(p, "%s: empty task name", where);
        return 0;
    }
    if (!cJSON_IsString(spec) && !cJSON_IsObject(spec)) {
        problem(p, "%s: must be a task object or a string such as \"builtin:digits\"", where);
        return 0;
    }
    if (env->task_load(env->ctx, spec, base_dir, out, err) != LD_OK) {
        task_problem(p, where, err[0] ? err : "could not be loaded");
        env->task_free(env->ctx, out);
        memset(out, 0, sizeof *out);
        return 0;
    }
    return 1;
}

static void add_note(SearchJob *j, const char *text) {
    for (int i = 0; i < j->nnotes; i++)
        if (!strcmp(j->notes[i], text)) return;
    if (j->nnotes < JOB_MAX_NOTES) snprintf(j->notes[j->nnotes++], sizeof j->notes[0], "%s", text);
}

/* The small-data rule (JOB_SMALL_ROWS): reloads selection task t cross-validated when it is a
 * classification or regression table of few rows whose spec does not name split.folds, and says
 * so in the job's notes. One validation split of a few dozen rows picks the loss that fits those
 * rows (docs/results.md, "Small data"). */
static void small_data_folds(Problems *p, SearchJob *j, SearchTask *t, const char *where) {
    const cJSON *di = t->spec ? cJSON_GetObjectItemCaseSensitive(t->spec, "data_info") : NULL;
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(di, "rows");
    const cJSON *split = t->spec ? cJSON_GetObjectItemCaseSensitive(t->spec, "split") : NULL;
    const cJSON *tf = t->spec ? cJSON_GetObjectItemCaseSensitive(t->spec, "transform") : NULL;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(tf, "subsample");
    if ((t->family != FAM_CLASSIFICATION && t->family != FAM_REGRESSION) || t->nfold > 1 ||
        !cJSON_IsNumber(rows) || !cJSON_IsObject(split) || cJSON_GetObjectItemCaseSensitive(split, "folds"))
        return;
    int n = (int)(rows->valuedouble * (cJSON_IsNumber(sub) ? sub->valuedouble : 1) + 0.5);
    if (n >= JOB_SMALL_ROWS) return;
    cJSON *spec = cJSON_Duplicate(t->spec, 1);
    SearchTask cv;
    if (!spec) return;
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(spec, "split"), "folds", JOB_SMALL_FOLDS);
    if (load_one(p, j->env, spec, NULL, where, &cv)) {
        char note[sizeof j->notes[0]];
        snprintf(note, sizeof note, "%s %s: %d rows (under %d): cross-validated, split.folds %d "
                 "(split.folds 1 keeps one split)", where, cv.name, n, JOB_SMALL_ROWS, JOB_SMALL_FOLDS);
        add_note(j, note);
        j->env->task_free(j->env->ctx, t);
        *t = cv;
    }
    cJSON_Delete(spec);
}

static void load_tasks(Problems *p, SearchJob *j, const cJSON *arr, const char *key,
                       const char *base_dir, int holdout) {
    if (!arr) return;
    if (!cJSON_IsArray(arr)) {
        problem(p, "%s: must be an array of tasks", key);
        return;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char where[48];
        snprintf(where, sizeof where, "%s[%d]", key, i++);
        if (j->ntasks >= JOB_MAX_TASKS) {
            problem(p, "%s: at most %d tasks in all", where, JOB_MAX_TASKS);
            break;
        }
        if (!load_one(p, j->env, it, base_dir, where, &j->tasks[j->ntasks])) continue;
        if (!holdout) small_data_folds(p, j, &j->tasks[j->ntasks], where);
        j->ntasks++;
        if (!holdout) j->nsel++;
    }
}

/* Sets the bit of s in *mask when s is one of names[0..n) (a term or a variable, kind says which)
 * that the family provides (avail; fam < 0: not known yet, anything goes); returns 1 when s is
 * one of names. */
static int name_bit(Problems *p, const char *s, const char *const *names, int n, uint32_t avail,
                    const char *kind, const char *where, int idx, int fam, uint32_t *mask) {
    int found = 0;
    for (int k = 0; k < n; k++) {
        if (strcmp(s, names[k])) continue;
        found = 1;
        if (fam >= 0 && !(avail & (1u << k)))
            problem(p, "%s[%d]: %s '%s' is not available for %s tasks", where, idx, kind, s,
                    family_name(fam));
        else
            *mask |= 1u << k;
    }
    return found;
}

int job_within_inputs(const SearchJob *j, const Expr *e, char *err) {
    if (!e || j->family < 0) return LD_OK;
    int var = e->op == EOP_VAR, term = e->op == EOP_TERM;
    if (term && ((j->refused >> e->id) & 1u) && j->refused_task >= 0) {
        char name[40];
        Expr leaf = {.op = e->op, .id = e->id};
        expr_print(&leaf, name, sizeof name);
        const SearchTask *t = &j->tasks[j->refused_task];
        return ld_err(err, LD_EINVAL, "term '%s' is not available for task '%s': %s", name, t->name,
                      t->refused_why ? t->refused_why : "its data cannot serve it");
    }
    if ((var && !((j->in_vars >> e->id) & 1u)) || (term && !((j->in_terms >> e->id) & 1u))) {
        char name[40];
        Expr leaf = {.op = e->op, .id = e->id};
        expr_print(&leaf, name, sizeof name);
        const SearchTask *t = j->narrow >= 0 ? &j->tasks[j->narrow] : NULL;
        return ld_err(err, LD_EINVAL, "%s '%s' is not available for task '%s' (its model does not provide it)",
                      var ? "variable" : "term", name, t ? t->name : "?");
    }
    int rc = job_within_inputs(j, e->a, err);
    return rc ? rc : job_within_inputs(j, e->b, err);
}

static void parse_names(Problems *p, const cJSON *arr, const char *where, int is_terms, int fam,
                        uint32_t *terms, uint32_t *ops, uint32_t *vars) {
    if (!cJSON_IsArray(arr)) {
        problem(p, "%s: must be an array of names", where);
        return;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int idx = i++;
        if (!cJSON_IsString(it)) {
            problem(p, "%s[%d]: must be a name", where, idx);
            continue;
        }
        const char *s = it->valuestring;
        LangVocab voc = lang_vocab(fam);
        if (is_terms) {
            if (!name_bit(p, s, term_names, TERM_COUNT, voc.terms, "term", where, idx, fam, terms))
                problem(p, "%s[%d]: unknown term '%s'", where, idx, s);
            continue;
        }
        int found = 0;
        for (int k = EOP_ADD; k < EOP_COUNT; k++) {
            if (!strcmp(s, op_names[k]) || (k == EOP_NEG && !strcmp(s, "neg"))) {
                *ops |= 1u << k;
                found = 1;
            }
        }
        found |= name_bit(p, s, var_names, VAR_COUNT, voc.vars, "variable", where, idx, fam, vars);
        if (!found) problem(p, "%s[%d]: unknown primitive '%s'", where, idx, s);
    }
}

int job_level_steps(const SearchJob *j, int level, int task) {
    if (level < 0) level = 0;
    if (level >= j->nlevels) level = j->nlevels - 1;
    if (j->level_steps[level] > 0) return j->level_steps[level];
    int s = (int)lround(j->level_frac[level] * j->tasks[task].steps);
    return s < 1 ? 1 : s;
}

static void set_defaults(SearchJob *j) {
    snprintf(j->name, sizeof j->name, "search");
    j->family = -1;
    j->max_nodes = 24;
    j->max_depth = 7;
    j->population = 16;
    j->children = 8;
    j->tournament = 4;
    j->budget_evals = 200;
    j->seeds = 2;
    j->nlevels = 2;
    j->level_frac[0] = 0.25;
    j->level_frac[1] = 1.0;
    j->promote = 0.33;
    j->stop_early = SCREEN_STOP_MARGIN;
    j->prescreen = 1;
    j->final_top = 3;
    j->final_seeds = 5;
    j->seed = 1;
    j->warm_start = 1;
    j->parsimony = 0.0005;
    j->tune_every = 3;
    j->tune_lambda = 2;
    j->tune_sigma = 0.3;
    j->init = INIT_MIXED;
}

static void parse_fidelity(Problems *p, SearchJob *j, const cJSON *f) {
    if (!f) goto seeds;
    unknown_keys(p, f, "fidelity", (const char *const[]){"steps", "fractions", "promote", "stop_early", "prescreen", NULL});
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(f, "steps");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(f, "fractions");
    if (st && fr) problem(p, "fidelity: give steps or fractions, not both");
    const cJSON *arr = st ? st : fr;
    const char *key = st ? "fidelity.steps" : "fidelity.fractions";
    if (arr) {
        int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
        if (n < 1 || n > JOB_MAX_LEVELS) {
            problem(p, "%s: must be an array of 1 to %d increasing numbers", key, JOB_MAX_LEVELS);
        } else {
            int ok = 1;
            double prev = 0;
            for (int i = 0; i < n; i++) {
                const cJSON *v = cJSON_GetArrayItem(arr, i);
                double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
                int bad = !isfinite(d) || d <= prev || (st && (d != floor(d) || d > 1e7)) ||
                          (!st && d > 1.0);
                if (bad) {
                    problem(p, "%s[%d]: must be %s larger than the previous level", key, i,
                            st ? "a whole number of steps" : "a fraction in (0, 1]");
                    ok = 0;
                    break;
                }
                prev = d;
            }
            if (ok) {
                j->nlevels = n;
                for (int i = 0; i < n; i++) {
                    double d = cJSON_GetArrayItem(arr, i)->valuedouble;
                    j->level_steps[i] = st ? (int)d : 0;
                    j->level_frac[i] = st ? 0 : d;
                }
            }
        }
    }
    get_num(p, f, "promote", "fidelity", 0.01, 1.0, &j->promote);
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(f, "stop_early");
    if (cJSON_IsFalse(se)) j->stop_early = 0;
    else get_num(p, f, "stop_early", "fidelity", 0.0, 10.0, &j->stop_early);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(f, "prescreen");
    if (ps && !cJSON_IsBool(ps)) problem(p, "fidelity.prescreen: must be true or false");
    else if (ps) j->prescreen = cJSON_IsTrue(ps);
seeds:
    for (int i = 0; i < j->nlevels; i++) j->level_seeds[i] = i == j->nlevels - 1 ? j->seeds : 1;
}

int job_final_task0(const SearchJob *j) { return j->ntasks > j->nsel ? j->nsel : 0; }
int job_nfinal_tasks(const SearchJob *j) { return j->ntasks > j->nsel ? j->ntasks - j->nsel : j->nsel; }

int job_horizon_steps(const SearchJob *j, int t) {
    if (j->hor_steps > 0) return j->hor_steps;
    return j->hor_factor * job_level_steps(j, j->nlevels - 1, job_final_task0(j) + t);
}

/* final.horizon: false, or {steps | steps_factor, model, seeds}. Absent: the default (5x the
 * top level's steps, the same model) for jobs of HOR_DEFAULT_MIN_BUDGET evaluations or more
 * with a final re-evaluation; smaller jobs (tests, quick tries) go without unless they ask. */
static void parse_horizon(Problems *p, SearchJob *j, const cJSON *fin) {
    const cJSON *h = fin ? cJSON_GetObjectItemCaseSensitive(fin, "horizon") : NULL;
    j->hor_factor = HOR_DEFAULT_FACTOR;
    j->hor_seeds = j->final_seeds;
    if (!h) {
        j->hor_mode = j->final_top > 0 && j->budget_evals >= HOR_DEFAULT_MIN_BUDGET ? HOR_DEFAULT : HOR_OFF;
        return;
    }
    if (cJSON_IsFalse(h)) return;
    if (!cJSON_IsObject(h)) {
        problem(p, "final.horizon: must be an object such as {\"steps\": 4000, \"model\": {\"hidden\": [256, 256]}}, or false");
        return;
    }
    unknown_keys(p, h, "final.horizon", (const char *const[]){"steps", "steps_factor", "model", "seeds", NULL});
    if (cJSON_GetObjectItemCaseSensitive(h, "steps") && cJSON_GetObjectItemCaseSensitive(h, "steps_factor"))
        problem(p, "final.horizon: give steps or steps_factor, not both");
    get_int(p, h, "steps", "final.horizon", 1, 10000000, &j->hor_steps);
    get_int(p, h, "steps_factor", "final.horizon", 1, 1000, &j->hor_factor);
    get_int(p, h, "seeds", "final.horizon", 2, JOB_MAX_SEEDS, &j->hor_seeds);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(h, "model");
    if (m && !cJSON_IsObject(m)) problem(p, "final.horizon.model: must be an object such as {\"hidden\": [256, 256]}");
    else if (m) j->hor_model = cJSON_Duplicate(m, 1);
    if (j->final_top == 0) problem(p, "final.horizon: needs final.top of at least 1 (it re-trains the final evaluation's losses)");
    j->hor_mode = HOR_GIVEN;
}

/* Loads the horizon tasks: each final task's normalised spec with train.steps and the model's
 * keys replaced, named NAME@horizon. A task without a spec (a test's stub) cannot be rebuilt:
 * the default is then dropped, a horizon the job asks for is a problem. */
static void load_horizon(Problems *p, SearchJob *j) {
    if (j->hor_mode == HOR_OFF || p->n) return;
    int t0 = job_final_task0(j), n = job_nfinal_tasks(j);
    for (int t = 0; t < n; t++) {
        const SearchTask *base = &j->tasks[t0 + t];
        char where[96];
        snprintf(where, sizeof where, "final.horizon (%s)", base->name);
        if (!cJSON_IsObject(base->spec)) {
            if (j->hor_mode == HOR_GIVEN) problem(p, "%s: the task has no spec to re-train under", where);
            break;
        }
        cJSON *spec = cJSON_Duplicate(base->spec, 1), *o;
        char name[64];
        snprintf(name, sizeof name, "%.55s@horizon", base->name);
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "name");
        cJSON_AddStringToObject(spec, "name", name);
        cJSON *train = cJSON_GetObjectItemCaseSensitive(spec, "train");
        if (!cJSON_IsObject(train)) {
            cJSON_DeleteItemFromObjectCaseSensitive(spec, "train");
            train = cJSON_AddObjectToObject(spec, "train");
        }
        int steps = job_horizon_steps(j, t);
        cJSON_DeleteItemFromObjectCaseSensitive(train, "steps");
        cJSON_AddNumberToObject(train, "steps", steps);
        o = cJSON_GetObjectItemCaseSensitive(spec, "model");
        if (j->hor_model && !cJSON_IsObject(o)) {
            cJSON_DeleteItemFromObjectCaseSensitive(spec, "model");
            o = cJSON_AddObjectToObject(spec, "model");
        }
        const cJSON *k;
        cJSON_ArrayForEach(k, j->hor_model) {
            cJSON_DeleteItemFromObjectCaseSensitive(o, k->string);
            cJSON_AddItemToObject(o, k->string, cJSON_Duplicate(k, 1));
        }
        int ok = load_one(p, j->env, spec, NULL, where, &j->hor[j->nhor]);
        if (ok && j->hor[j->nhor].hash == base->hash) {
            j->env->task_free(j->env->ctx, &j->hor[j->nhor]);
            ok = 0;
            if (steps == job_level_steps(j, j->nlevels - 1, t0 + t)) {
                if (j->hor_mode == HOR_GIVEN)
                    problem(p, "%s: the same recipe as the search's (give more steps or another model)", where);
            } else {
                /* The task's own default steps are the horizon's: the store names a task by its
                 * hash, and the search's runs (at fewer steps) must not share it with these, so
                 * the spec says one step more. The runs train the horizon's steps (WorkItem.steps). */
                cJSON_DeleteItemFromObjectCaseSensitive(train, "steps");
                cJSON_AddNumberToObject(train, "steps", steps + 1);
                ok = load_one(p, j->env, spec, NULL, where, &j->hor[j->nhor]);
            }
        }
        cJSON_Delete(spec);
        if (!ok) continue;
        j->nhor++;
    }
    if (j->nhor < n) { /* all or nothing */
        for (int t = 0; t < j->nhor; t++) j->env->task_free(j->env->ctx, &j->hor[t]);
        j->nhor = 0;
        j->hor_mode = HOR_OFF;
    }
}

int job_parse(const cJSON *json, const char *base_dir, const SearchEnv *env, SearchJob **out,
              char *err) {
    Problems p = {0};
    *out = NULL;
    if (!cJSON_IsObject(json)) return ld_err(err, LD_EINVAL, "a job must be a JSON object");
    SearchJob *j = calloc(1, sizeof *j);
    if (!j) return ld_err(err, LD_ENOMEM, "job: out of memory");
    set_defaults(j);
    j->env = env;
    unknown_keys(&p, json, "", known_keys);

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, "name");
    if (v) {
        if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= sizeof j->name)
            problem(&p, "name: must be a non-empty string of at most %zu characters",
                    sizeof j->name - 1);
        else
            snprintf(j->name, sizeof j->name, "%s", v->valuestring);
    }

    const cJSON *notes = cJSON_GetObjectItemCaseSensitive(json, "notes"), *nt;
    if (cJSON_IsArray(notes)) /* a stored job's, read back */
        cJSON_ArrayForEach(nt, notes)
            if (cJSON_IsString(nt)) add_note(j, nt->valuestring);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(json, "tasks");
    if (!tasks)
        problem(&p, "tasks: missing");
    else if (cJSON_IsArray(tasks) && cJSON_GetArraySize(tasks) == 0)
        problem(&p, "tasks: must list at least one task");
    load_tasks(&p, j, tasks, "tasks", base_dir, 0);
    load_tasks(&p, j, cJSON_GetObjectItemCaseSensitive(json, "holdout"), "holdout", base_dir, 1);
    for (int i = 0; i < j->ntasks; i++) {
        int f = j->tasks[i].family;
        if (j->family < 0) {
            j->family = f;
        } else if (f != j->family) {
            int hold = i >= j->nsel;
            problem(&p, "%s[%d]: family %s differs from the job's (%s): one search serves one family",
                    hold ? "holdout" : "tasks", hold ? i - j->nsel : i, family_name(f),
                    family_name(j->family));
        }
    }
    int fam = j->family;
    /* What every task provides: the family's inputs, narrowed by a task whose model reads only
     * some of them (a generative task's model kind). */
    j->narrow = -1;
    if (fam >= 0) {
        unsigned avail = lang_vocab(fam).inputs;
        for (int i = 0; i < j->ntasks; i++)
            if (j->tasks[i].inputs && (avail & ~j->tasks[i].inputs)) {
                avail &= j->tasks[i].inputs;
                j->narrow = i;
            }
        LangVocab tv = lang_vocab_inputs(avail);
        j->in_terms = tv.terms & lang_vocab(fam).terms;
        j->in_vars = tv.vars & lang_vocab(fam).vars;
        j->refused_task = -1; /* terms a task's data cannot serve: out of the vocabulary too */
        for (int i = 0; i < j->ntasks; i++)
            if (j->tasks[i].refused & j->in_terms) {
                if (j->refused_task < 0) j->refused_task = i;
                j->refused |= j->tasks[i].refused & j->in_terms;
            }
        j->in_terms &= ~j->refused;
    }
    if (fam >= 0 && env->family(env->ctx, fam, &j->fam) != LD_OK) {
        problem(&p, "family: %s is not a family the search can serve", family_name(fam));
        fam = j->family = -1;
    }
    v = cJSON_GetObjectItemCaseSensitive(json, "family");
    if (v) { /* optional: when given it must agree with the tasks */
        int f = cJSON_IsString(v) ? family_parse(v->valuestring) : -1;
        if (f < 0)
            problem(&p, "family: unknown family");
        else if (fam >= 0 && f != fam)
            problem(&p, "family: %s, but the tasks are %s", family_name(f), family_name(fam));
    }

    /* search space */
    const cJSON *space = get_obj(&p, json, "space");
    uint32_t terms = 0, ops = 0, vars = 0;
    if (space) {
        unknown_keys(&p, space, "space",
                     (const char *const[]){"terms", "primitives", "max_nodes", "max_depth", NULL});
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(space, "terms");
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(space, "primitives");
        if (tl) parse_names(&p, tl, "space.terms", 1, fam, &terms, &ops, &vars);
        else terms = ~0u;
        if (pl) parse_names(&p, pl, "space.primitives", 0, fam, &terms, &ops, &vars);
        else ops = vars = ~0u;
        get_int(&p, space, "max_nodes", "space", 3, 200, &j->max_nodes);
        get_int(&p, space, "max_depth", "space", 2, 30, &j->max_depth);
    } else {
        terms = ops = vars = ~0u;
    }
    if (fam >= 0) { /* what the tasks provide */
        terms &= j->in_terms;
        vars &= j->in_vars;
    }
    j->terms = terms;
    j->ops = ops & ~((1u << EOP_NUM) | (1u << EOP_VAR) | (1u << EOP_TERM));
    j->vars = vars;
    if (fam >= 0 && !j->terms) {
        uint32_t out_vars = (1u << VAR_Z) | (1u << VAR_P) | (1u << VAR_PT) | (1u << VAR_F) |
                            (1u << VAR_R);
        if (!(j->vars & out_vars))
            problem(&p, "space: no term and no output variable (z, p, pt, f, r) to build a loss from");
    }

    get_int(&p, json, "population", "", 2, 100000, &j->population);
    get_int(&p, json, "children", "", 1, 10000, &j->children);
    get_int(&p, json, "tournament", "", 1, 1000, &j->tournament);
    const cJSON *budget = get_obj(&p, json, "budget");
    if (budget) {
        unknown_keys(&p, budget, "budget", (const char *const[]){"evaluations", "seconds", NULL});
        get_int(&p, budget, "evaluations", "budget", 1, 100000000, &j->budget_evals);
        get_num(&p, budget, "seconds", "budget", 0, 1e9, &j->budget_seconds);
    }
    get_int(&p, json, "seeds", "", 1, JOB_MAX_SEEDS, &j->seeds);
    parse_fidelity(&p, j, get_obj(&p, json, "fidelity"));
    /* A cross-validated selection task (split.folds): the top level trains every split. */
    for (int i = 0; i < j->nsel; i++)
        if (j->tasks[i].nfold > j->level_seeds[j->nlevels - 1])
            j->level_seeds[j->nlevels - 1] = j->tasks[i].nfold;
    const cJSON *fin = get_obj(&p, json, "final");
    if (fin) {
        unknown_keys(&p, fin, "final", (const char *const[]){"top", "seeds", "horizon", NULL});
        get_int(&p, fin, "top", "final", 0, 100, &j->final_top);
        get_int(&p, fin, "seeds", "final", 2, JOB_MAX_SEEDS, &j->final_seeds);
    }
    parse_horizon(&p, j, fin);
    v = cJSON_GetObjectItemCaseSensitive(json, "seed");
    if (v) {
        /* two different seeds must never give the same search: refuse what cannot be read
         * exactly (a JSON number from 2^53 on, a string above 2^64-1) instead of rounding it */
        errno = 0;
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == floor(v->valuedouble) &&
            v->valuedouble < 9007199254740992.0)
            j->seed = (uint64_t)v->valuedouble;
        else if (cJSON_IsNumber(v) && v->valuedouble >= 9007199254740992.0 &&
                 v->valuedouble == floor(v->valuedouble))
            problem(&p, "seed: %.17g is at or above 2^53, where JSON numbers are not exact: write it as "
                        "a string of digits (up to 18446744073709551615)", v->valuedouble);
        else if (cJSON_IsString(v) && v->valuestring[0] &&
                 strspn(v->valuestring, "0123456789") == strlen(v->valuestring) &&
                 (j->seed = strtoull(v->valuestring, NULL, 10), errno != ERANGE))
            ;
        else if (cJSON_IsString(v) && errno == ERANGE)
            problem(&p, "seed: %.40s is above 2^64-1 (18446744073709551615)", v->valuestring);
        else
            problem(&p, "seed: must be a non-negative integer");
    }
    v = cJSON_GetObjectItemCaseSensitive(json, "warm_start");
    if (v) {
        if (cJSON_IsBool(v)) j->warm_start = cJSON_IsTrue(v);
        else problem(&p, "warm_start: must be true or false");
    }
    get_num(&p, json, "parsimony", "", 0, 1, &j->parsimony);
    const cJSON *tune = get_obj(&p, json, "tune");
    if (tune) {
        unknown_keys(&p, tune, "tune", (const char *const[]){"every", "lambda", "sigma", NULL});
        get_int(&p, tune, "every", "tune", 0, 1000, &j->tune_every);
        get_int(&p, tune, "lambda", "tune", 1, 100, &j->tune_lambda);
        get_num(&p, tune, "sigma", "tune", 0.001, 3, &j->tune_sigma);
    }
    v = cJSON_GetObjectItemCaseSensitive(json, "mode");
    if (v) {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (!strcmp(s, "search")) j->evaluate_only = 0;
        else if (!strcmp(s, "evaluate_only")) j->evaluate_only = 1;
        else problem(&p, "mode: must be \"search\" or \"evaluate_only\"");
    }
    v = cJSON_GetObjectItemCaseSensitive(json, "init");
    if (v) {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (!strcmp(s, "mixed")) j->init = INIT_MIXED;
        else if (!strcmp(s, "scratch")) j->init = INIT_SCRATCH;
        else if (!strcmp(s, "seeds")) j->init = INIT_SEEDS;
        else problem(&p, "init: must be \"mixed\", \"scratch\" or \"seeds\"");
    }

    /* expressions need the family to be checked */
    v = cJSON_GetObjectItemCaseSensitive(json, "baseline");
    const char *btext = fam >= 0 ? j->fam.baseline : NULL;
    /* a task whose model provides only part of the family's inputs (a GAN) has a baseline of its
     * own, which replaces the family's baseline and panel */
    const char *own = fam >= 0 && j->ntasks > 0 ? j->tasks[0].baseline : NULL;
    if (own) btext = own;
    cJSON *dflt = NULL; /* a job naming no baseline gets the family's panel (docs/jobs.md) */
    for (int n = 0; !v && !own && fam >= 0 && j->fam.baselines && j->fam.baselines[n]; n++) {
        if (!dflt) dflt = cJSON_CreateArray();
        if (dflt) cJSON_AddItemToArray(dflt, cJSON_CreateString(j->fam.baselines[n]));
    }
    if (dflt) v = dflt;
    if (cJSON_IsArray(v)) { /* a panel: the first is the baseline, the rest compete with it */
        int n = cJSON_GetArraySize(v);
        if (n < 1 || n > JOB_MAX_PANEL) problem(&p, "baseline: a list of 1 to %d losses, got %d", JOB_MAX_PANEL, n);
        j->panel = calloc((size_t)n + 1, sizeof *j->panel);
        for (int i = 1; i < n && i < JOB_MAX_PANEL && j->panel && fam >= 0; i++) {
            const cJSON *it = cJSON_GetArrayItem(v, i);
            char e2[LD_ERR_MAX] = "not a string", txt[EXPR_TEXT_MAX];
            Expr *e = cJSON_IsString(it) ? expr_parse(it->valuestring, e2) : NULL;
            Expr *ce = e && expr_check(e, fam, e2) == LD_OK && job_within_inputs(j, e, e2) == LD_OK
                           ? expr_canonical(e) : NULL;
            if (!ce || expr_print(ce, txt, sizeof txt) < 0) problem(&p, "baseline[%d]: %s", i, e2);
            else j->panel[j->npanel++] = strdup(txt);
            expr_free(ce);
            expr_free(e);
        }
        v = n >= 1 ? cJSON_GetArrayItem(v, 0) : NULL;
    }
    if (v) {
        if (!cJSON_IsString(v)) {
            problem(&p, "baseline: must be a loss expression or a list of them");
            btext = NULL;
        } else {
            btext = v->valuestring;
        }
    }
    if (!btext && !v && fam >= 0)
        problem(&p, "baseline: %s tasks have no default baseline: name one", family_name(fam));
    if (btext && fam >= 0) {
        char e2[LD_ERR_MAX];
        Expr *b = expr_parse(btext, e2);
        if (!b || expr_check(b, fam, e2) != LD_OK || job_within_inputs(j, b, e2) != LD_OK) {
            problem(&p, "baseline: %s", e2);
        } else {
            j->baseline = expr_canonical(b);
            if (!j->baseline || expr_print(j->baseline, j->baseline_text,
                                           sizeof j->baseline_text) < 0)
                problem(&p, "baseline: too long");
        }
        expr_free(b);
    }
    cJSON_Delete(dflt); /* btext pointed into it */
    const cJSON *sl = cJSON_GetObjectItemCaseSensitive(json, "seed_losses");
    if (sl) {
        if (!cJSON_IsArray(sl)) {
            problem(&p, "seed_losses: must be an array of loss expressions");
        } else {
            int n = cJSON_GetArraySize(sl);
            j->seed_losses = calloc((size_t)n + 1, sizeof *j->seed_losses);
            for (int i = 0; i < n && j->seed_losses; i++) {
                const cJSON *it = cJSON_GetArrayItem(sl, i);
                char e2[LD_ERR_MAX] = "not a string";
                Expr *e = cJSON_IsString(it) ? expr_parse(it->valuestring, e2) : NULL;
                if (e && fam >= 0 && (expr_check(e, fam, e2) != LD_OK || job_within_inputs(j, e, e2) != LD_OK)) {
                    expr_free(e);
                    e = NULL;
                }
                if (!e) {
                    if (fam >= 0 || !cJSON_IsString(it))
                        problem(&p, "seed_losses[%d]: %s", i, e2);
                    continue;
                }
                Expr *c = expr_canonical(e);
                char buf[EXPR_TEXT_MAX];
                if (c && expr_print(c, buf, sizeof buf) >= 0)
                    j->seed_losses[j->nseed_losses++] = strdup(buf);
                expr_free(c);
                expr_free(e);
            }
        }
    }
    if (fam >= 0) load_horizon(&p, j); /* last: it reads data, so only for an otherwise valid job */
    if (p.n) {
        problems_finish(&p, "", err);
        job_free(j);
        return LD_EINVAL;
    }
    *out = j;
    return LD_OK;
}

void job_free(SearchJob *j) {
    if (!j) return;
    for (int i = 0; i < j->ntasks; i++) j->env->task_free(j->env->ctx, &j->tasks[i]);
    for (int i = 0; i < j->nhor; i++) j->env->task_free(j->env->ctx, &j->hor[i]);
    cJSON_Delete(j->hor_model);
    expr_free(j->baseline);
    for (int i = 0; i < j->npanel; i++) free(j->panel[i]);
    free(j->panel);
    for (int i = 0; i < j->nseed_losses; i++) free(j->seed_losses[i]);
    free(j->seed_losses);
    free(j);
}

static cJSON *names_json(uint32_t mask, int n, const char *const *names, int from) {
    cJSON *a = cJSON_CreateArray();
    for (int k = from; k < n; k++)
        if (mask & (1u << k)) cJSON_AddItemToArray(a, cJSON_CreateString(names[k]));
    return a;
}

cJSON *job_json(const SearchJob *j) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "family", family_name(j->family));
    cJSON *ts = cJSON_AddArrayToObject(o, "tasks");
    cJSON *hs = cJSON_AddArrayToObject(o, "holdout");
    for (int i = 0; i < j->ntasks; i++) {
        const SearchTask *t = &j->tasks[i];
        cJSON *spec = t->spec ? cJSON_Duplicate(t->spec, 1) : cJSON_CreateString(t->name);
        cJSON_AddItemToArray(i < j->nsel ? ts : hs, spec);
    }
    if (j->nnotes > 0) {
        cJSON *na = cJSON_AddArrayToObject(o, "notes");
        for (int i = 0; i < j->nnotes; i++) cJSON_AddItemToArray(na, cJSON_CreateString(j->notes[i]));
    }
    if (j->npanel > 0) {
        cJSON *pa = cJSON_AddArrayToObject(o, "baseline");
        cJSON_AddItemToArray(pa, cJSON_CreateString(j->baseline_text));
        for (int i = 0; i < j->npanel; i++) cJSON_AddItemToArray(pa, cJSON_CreateString(j->panel[i]));
    } else {
        cJSON_AddStringToObject(o, "baseline", j->baseline_text);
    }
    cJSON *sp = cJSON_AddObjectToObject(o, "space");
    cJSON_AddItemToObject(sp, "terms", names_json(j->terms, TERM_COUNT, term_names, 0));
    cJSON *prim = names_json(j->ops, EOP_COUNT, op_names, EOP_ADD);
    /* NEG and SUB share the spelling "-": print it once */
    if ((j->ops & (1u << EOP_NEG)) && (j->ops & (1u << EOP_SUB))) {
        int n = cJSON_GetArraySize(prim);
        for (int i = n - 1; i >= 0; i--) {
            const cJSON *it = cJSON_GetArrayItem(prim, i);
            if (!strcmp(it->valuestring, "-")) {
                cJSON_DeleteItemFromArray(prim, i);
                break;
            }
        }
    }
    cJSON *vl = names_json(j->vars, VAR_COUNT, var_names, 0);
    cJSON *it;
    while ((it = cJSON_DetachItemFromArray(vl, 0))) cJSON_AddItemToArray(prim, it);
    cJSON_Delete(vl);
    cJSON_AddItemToObject(sp, "primitives", prim);
    cJSON_AddNumberToObject(sp, "max_nodes", j->max_nodes);
    cJSON_AddNumberToObject(sp, "max_depth", j->max_depth);
    cJSON_AddNumberToObject(o, "population", j->population);
    cJSON_AddNumberToObject(o, "children", j->children);
    cJSON_AddNumberToObject(o, "tournament", j->tournament);
    cJSON *b = cJSON_AddObjectToObject(o, "budget");
    cJSON_AddNumberToObject(b, "evaluations", j->budget_evals);
    cJSON_AddNumberToObject(b, "seconds", j->budget_seconds);
    cJSON_AddNumberToObject(o, "seeds", j->seeds);
    cJSON *f = cJSON_AddObjectToObject(o, "fidelity");
    cJSON *fl = cJSON_AddArrayToObject(f, j->level_steps[0] ? "steps" : "fractions");
    for (int i = 0; i < j->nlevels; i++)
        cJSON_AddItemToArray(fl, cJSON_CreateNumber(j->level_steps[0] ? j->level_steps[i]
                                                                        : j->level_frac[i]));
    cJSON_AddNumberToObject(f, "promote", j->promote);
    cJSON_AddNumberToObject(f, "stop_early", j->stop_early);
    cJSON_AddBoolToObject(f, "prescreen", j->prescreen);
    cJSON *fi = cJSON_AddObjectToObject(o, "final");
    cJSON_AddNumberToObject(fi, "top", j->final_top);
    cJSON_AddNumberToObject(fi, "seeds", j->final_seeds);
    if (j->hor_mode == HOR_OFF) {
        cJSON_AddFalseToObject(fi, "horizon");
    } else {
        cJSON *h = cJSON_AddObjectToObject(fi, "horizon");
        if (j->hor_steps > 0) cJSON_AddNumberToObject(h, "steps", j->hor_steps);
        else cJSON_AddNumberToObject(h, "steps_factor", j->hor_factor);
        if (j->hor_model) cJSON_AddItemToObject(h, "model", cJSON_Duplicate(j->hor_model, 1));
        cJSON_AddNumberToObject(h, "seeds", j->hor_seeds);
    }
    if (j->seed < (1ull << 53)) {
        cJSON_AddNumberToObject(o, "seed", (double)j->seed);
    } else {
        char s[24];
        snprintf(s, sizeof s, "%llu", (unsigned long long)j->seed);
        cJSON_AddStringToObject(o, "seed", s);
    }
    cJSON_AddBoolToObject(o, "warm_start", j->warm_start);
    cJSON_AddNumberToObject(o, "parsimony", j->parsimony);
    cJSON *tu = cJSON_AddObjectToObject(o, "tune");
    cJSON_AddNumberToObject(tu, "every", j->tune_every);
    cJSON_AddNumberToObject(tu, "lambda", j->tune_lambda);
    cJSON_AddNumberToObject(tu, "sigma", j->tune_sigma);
    cJSON_AddStringToObject(o, "mode", j->evaluate_only ? "evaluate_only" : "search");
    cJSON_AddStringToObject(o, "init", j->init == INIT_SCRATCH ? "scratch"
                                        : j->init == INIT_SEEDS ? "seeds" : "mixed");
    cJSON *sl = cJSON_AddArrayToObject(o, "seed_losses");
    for (int i = 0; i < j->nseed_losses; i++)
        cJSON_AddItemToArray(sl, cJSON_CreateString(j->seed_losses[i]));
    return o;
}

int job_ntasks(const SearchJob *j) { return j->ntasks + j->nhor; }
const SearchTask *job_task(const SearchJob *j, int i) {
    if (i >= j->ntasks && i < j->ntasks + j->nhor) return &j->hor[i - j->ntasks];
    return i >= 0 && i < j->ntasks ? &j->tasks[i] : NULL;
}
int job_is_holdout(const SearchJob *j, int i) { return i >= j->nsel; }
int job_is_horizon(const SearchJob *j, int i) { return i >= j->ntasks && i < j->ntasks + j->nhor; }
int job_budget_evals(const SearchJob *j) { return j->budget_evals; }
double job_budget_seconds(const SearchJob *j) { return j->budget_seconds; }
uint64_t job_seed(const SearchJob *j) { return j->seed; }
const char *job_name(const SearchJob *j) { return j->name; }
