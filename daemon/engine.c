/* engine.c: the search engine's SearchEnv backed by the evaluator (engine.h). The only place
 * where a search job's tasks become evaluator tasks. */
#include <stdio.h>
#include <string.h>

#include "../evaluator/family.h"
#include "engine.h"

static int env_task_load(void *ctx, const cJSON *spec, const char *base_dir, SearchTask *out,
                         char *err) {
    (void)ctx;
    Task *t = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (cJSON_IsString(spec)) {
        const char *s = spec->valuestring;
        if (strncmp(s, "builtin:", 8) != 0 && s[0] != '/' && base_dir && *base_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", base_dir, s);
            rc = task_load_arg(path, &t, err);
        } else {
            rc = task_load_arg(s, &t, err);
        }
    } else {
        rc = task_load(spec, base_dir, &t, err);
    }
    if (rc != LD_OK) {
        task_free(t);
        return rc;
    }
    out->handle = t;
    out->family = task_family(t);
    out->outputs = task_outputs(t);
    out->steps = task_steps(t);
    out->higher_better = task_higher_better(t);
    out->nfold = task_nfold(t);
    out->sig_len = eval_signature_len(out->family, out->outputs);
    out->inputs = task_inputs(t);
    out->baseline = task_baseline(t);
    out->refused = task_refused_terms(t, &out->refused_why);
    out->hash = task_hash(t);
    snprintf(out->name, sizeof out->name, "%s", task_name(t));
    snprintf(out->metric, sizeof out->metric, "%s", task_metric(t));
    out->spec = task_spec(t);
    return LD_OK;
}

static void env_task_free(void *ctx, SearchTask *t) {
    (void)ctx;
    task_free(t->handle);
    cJSON_Delete(t->spec);
    t->handle = NULL;
    t->spec = NULL;
}

static int env_family(void *ctx, int fam, SearchFamily *out) {
    (void)ctx;
    const EvalFamily *f = eval_family(fam);
    if (!f) return LD_EINVAL;
    *out = (SearchFamily){.baseline = f->baseline, .known = f->known, .panel = f->panel,
                          .baselines = f->baselines};
    return LD_OK;
}

static int env_signature(void *ctx, const Expr *e, int fam, int outputs, float *sig, int n,
                         char *err) {
    (void)ctx;
    return eval_signature(e, fam, outputs, sig, n, err);
}

static int env_precheck(void *ctx, const Expr *e, int fam, int outputs, char *err) {
    (void)ctx;
    return eval_precheck(e, fam, outputs, err);
}

static const SearchEnv env = {
    .ctx = NULL,
    .task_load = env_task_load,
    .task_free = env_task_free,
    .family = env_family,
    .signature = env_signature,
    .precheck = env_precheck,
};

const SearchEnv *engine_env(void) { return &env; }

const Task *engine_task(const SearchJob *j, int i) {
    const SearchTask *t = job_task(j, i);
    return t ? t->handle : NULL;
}
