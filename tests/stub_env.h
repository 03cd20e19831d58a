/* stub_env.h: a stub SearchEnv for the engine's tests that link no evaluator (test_engine_stub.c,
 * test_propose_engine.c; included by each, so its functions are static). Tasks are descriptions
 * made up from their names ("stub:NAME"), the family's lists are the caller's, the gradient
 * signature and the pre-check are cheap functions of the expression's text, and training
 * outcomes are made up from the loss's text and the seed. Include after cmocka.h and
 * search/search.h. */
#ifndef LOSSD_TESTS_STUB_ENV_H
#define LOSSD_TESTS_STUB_ENV_H

/* The stub's settings and what it was asked, so a test can see the engine used its interface. */
typedef struct StubCtx {
    int loads, frees, families, signatures, prechecks;
    int family_ok;                  /* 0: the env refuses every family */
    int scale_free;                 /* 1: k*ce for any k > 0 points as ce does (the scale
                                     * invariance the real signature sees) */
    const char *const *known;       /* the family's known losses (NULL-ended) */
    const char *const *panel;       /* its panel, or NULL */
} StubCtx;

/* A task is any string "stub:NAME"; its outputs and steps are fixed, its hash is its name's. */
static int stub_task_load(void *ctx, const cJSON *spec, const char *base_dir, SearchTask *out,
                          char *err) {
    StubCtx *c = ctx;
    (void)base_dir;
    c->loads++;
    memset(out, 0, sizeof *out);
    if (!cJSON_IsString(spec) || strncmp(spec->valuestring, "stub:", 5) != 0)
        return ld_err(err, LD_EINVAL, "data: only stub:NAME tasks here");
    const char *name = spec->valuestring + 5;
    out->family = family_parse("classification");
    out->outputs = 3;
    out->steps = 100;
    out->higher_better = 1;
    out->nfold = 1;
    out->sig_len = 8;
    out->hash = ld_hash64(name, strlen(name));
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->metric, sizeof out->metric, "accuracy");
    return LD_OK;
}

static void stub_task_free(void *ctx, SearchTask *t) {
    StubCtx *c = ctx;
    c->frees++;
    cJSON_Delete(t->spec);
    t->spec = NULL;
}

static int stub_family(void *ctx, int fam, SearchFamily *out) {
    StubCtx *c = ctx;
    (void)fam;
    c->families++;
    if (!c->family_ok) return LD_EINVAL;
    *out = (SearchFamily){.baseline = "ce", .known = c->known, .panel = c->panel};
    return LD_OK;
}

/* A signature from the text's hash: distinct losses point in distinct directions (except k*ce,
 * which points as ce does when the ctx is scale_free). */
static int stub_signature(void *ctx, const Expr *e, int fam, int outputs, float *sig, int n,
                          char *err) {
    StubCtx *c = ctx;
    char text[EXPR_TEXT_MAX];
    (void)fam;
    (void)outputs;
    (void)err;
    c->signatures++;
    if (expr_print(e, text, sizeof text) < 0) return LD_EFAILED;
    const char *key = text;
    char *star = strstr(text, "*ce");
    if (c->scale_free && star && star[3] == 0 &&
        strspn(text, "0123456789.") == (size_t)(star - text))
        key = "ce";
    uint64_t h = ld_hash64(key, strlen(key));
    for (int i = 0; i < n; i++) {
        h = ld_mix64(h, (uint64_t)i);
        sig[i] = (float)((double)(h >> 11) / 9007199254740992.0 - 0.5);
    }
    return LD_OK;
}

/* Turns away every loss with a hinge term: rejections before training go through the env. */
static int stub_precheck(void *ctx, const Expr *e, int fam, int outputs, char *err) {
    StubCtx *c = ctx;
    char text[EXPR_TEXT_MAX];
    (void)fam;
    (void)outputs;
    c->prechecks++;
    if (expr_print(e, text, sizeof text) >= 0 && strstr(text, "hinge"))
        return ld_err(err, LD_EFAILED, "does not improve accuracy when optimised directly");
    return LD_OK;
}

/* The env on c (borrowed: c outlives every job parsed with the env). */
static SearchEnv stub_env(StubCtx *c) {
    return (SearchEnv){.ctx = c,
                       .task_load = stub_task_load,
                       .task_free = stub_task_free,
                       .family = stub_family,
                       .signature = stub_signature,
                       .precheck = stub_precheck};
}

/* The job in JSON text parsed with env (fails the test on a parse error); owned by the caller. */
static SearchJob *stub_job(const SearchEnv *env, const char *text) {
    char err[LD_ERR_MAX] = "";
    cJSON *j = cJSON_Parse(text);
    SearchJob *job = NULL;
    if (job_parse(j, NULL, env, &job, err) != LD_OK) fail_msg("job_parse: %s", err);
    cJSON_Delete(j);
    return job;
}

/* A made-up training outcome for each of the n work items: accuracy from the loss's text and
 * the seed, so the search has something to select on. */
static void fake_outcomes(const WorkItem *w, int n, WorkOutcome *outs) {
    for (int i = 0; i < n; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        outs[i].seq = w[i].seq;
        outs[i].status = WORK_OK;
        uint64_t h = ld_hash64(w[i].expr, strlen(w[i].expr));
        double noise = (double)(ld_mix64(h, w[i].seed) % 1000) / 1e5;
        outs[i].res.ok = 1;
        outs[i].res.val = 0.6 + (double)(h % 1000) / 4000.0 + noise + w[i].steps / 1e4;
        outs[i].res.test = outs[i].res.val - 0.01;
    }
}

#endif
