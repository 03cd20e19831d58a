/* rl.c: the rl family: a policy MLP and a critic MLP trained on rollouts of a built-in
 * environment (CartPole-v1, Acrobot-v1; env.h) under a loss written over logp, ret, adv, v, td
 * and ent, scored by the mean undiscounted return of the greedy policy over fixed evaluation
 * episodes whose seeds are disjoint from training's. docs/rl.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "rollout.h"
#include "train.h"

#define RL_WINDOW 10        /* training episodes averaged for steps_to_threshold */
#define RL_CURVE_EPISODES 5 /* validation episodes scored by the curve points before the last */

/* The family's settings (the spec's "rl" object; ranges in spec.c). */
typedef struct RlSpec {
    const EnvClass *env;
    float gamma, lambda;
    int envs, rollout;                /* parallel environments; steps of each per update */
    int val_episodes, test_episodes;  /* greedy evaluation episodes */
    double threshold;                 /* return that counts as solved (steps_to_threshold) */
} RlSpec;

/* Seeds, disjoint by construction: training episodes' have the low bit 0, validation episode
 * i's are 4i + 1 and test episode i's 4i + 3. The evaluation seeds are the task's, the same for
 * every run and candidate; the training seeds follow the run's seed. */
static uint64_t seed_train(uint64_t run, uint64_t k) { return ld_mix64(ld_mix64(run, 0x7a1e), k) << 1; }
static uint64_t seed_eval(int i, int test) { return ((uint64_t)i << 2) | (test ? 3u : 1u); }

/* ---- loading */

static int num_key(const cJSON *o, const char *key, double *v) {
    const cJSON *it = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (cJSON_IsNumber(it)) *v = it->valuedouble; /* type and range: spec_check */
    return LD_OK;
}

static int rl_task_load(Task *t, const cJSON *spec, char *err) {
    const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "data"));
    const EnvClass *env = env_find(data);
    if (!env) {
        char known[128] = "";
        for (int i = 0; i < env_count(); i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%sbuiltin:%s", i ? ", " : "",
                     env_at(i)->name);
        return ld_err(err, LD_EINVAL, "task: data: rl tasks use an environment (%s), not '%s'", known,
                      data ? data : "(missing)");
    }
    RlSpec *s = calloc(1, sizeof *s);
    if (!s) return ld_err(err, LD_ENOMEM, "task: out of memory");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(spec, "rl");
    double gamma = 0.99, lambda = 0.95, envs = 8, rollout = 16, nval = 10, ntest = 20,
           thr = env->reward_threshold;
    num_key(o, "gamma", &gamma);
    num_key(o, "lambda", &lambda);
    num_key(o, "envs", &envs);
    num_key(o, "rollout", &rollout);
    num_key(o, "val_episodes", &nval);
    num_key(o, "test_episodes", &ntest);
    num_key(o, "threshold", &thr);
    *s = (RlSpec){.env = env, .gamma = (float)gamma, .lambda = (float)lambda, .envs = (int)envs,
                  .rollout = (int)rollout, .val_episodes = (int)nval, .test_episodes = (int)ntest,
                  .threshold = thr};
    t->own = s;
    t->nclass = 1;
    /* Family defaults; the spec's model and train keys override them after this. */
    t->model.nhidden = 1;
    t->model.hidden[0] = 64;
    t->model.act = ACT_TANH;
    t->train_spec.lr = 1e-3f;
    t->train_spec.steps = 400; /* 400 updates of 8 x 16 transitions: 51,200 environment steps */
    t->train_spec.batch = s->envs * s->rollout;
    return LD_OK;
}

static void rl_task_free(Task *t) {
    free(t->own);
    t->own = NULL;
}

/* ---- evaluation: the greedy policy on n episodes run side by side */

typedef struct RlEval {
    const RlSpec *s;
    Trainer *tr;
    const Mlp *actor;
    MlpActs *acts; /* for up to n rows */
    float *obs;    /* (n, obs_dim) */
    float *lsm;    /* (n, A) */
    int *act, *row;
    Env *env;      /* (n) */
    float *ret;    /* (n) */
} RlEval;
/* (ev->obs holds 2n rows: the rows of one forward, then each episode's observation) */

/* Mean undiscounted return over episodes 0..n-1 of the validation (test 0) or test seeds. */
static double rl_evaluate(RlEval *ev, int n, int test) {
    const EnvClass *c = ev->s->env;
    int D = c->obs_dim, A = c->n_actions;
    float *cur = ev->obs + (size_t)n * D; /* (n, D) each episode's observation */
    for (int i = 0; i < n; i++) {
        ev->env[i] = (Env){.cls = c};
        env_reset(&ev->env[i], seed_eval(i, test), cur + (size_t)i * D);
        ev->ret[i] = 0;
    }
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (!ev->env[i].done) {
                memcpy(ev->obs + (size_t)m * D, cur + (size_t)i * D, sizeof(float) * (size_t)D);
                ev->row[m++] = i;
            }
        if (!m) break;
        const float *z = train_forward(ev->tr, ev->actor, ev->acts, ev->obs, m);
        rl_policy_forward(ev->lsm, NULL, NULL, z, NULL, m, A);
        rl_policy_greedy(ev->act, ev->lsm, m, A);
        for (int k = 0; k < m; k++) {
            int i = ev->row[k];
            EnvStep st;
            env_step(&ev->env[i], ev->act[k], cur + (size_t)i * D, &st, NULL);
            ev->ret[i] += st.reward;
        }
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ev->ret[i];
    return sum / n;
}

/* ---- training, under the one trainer (train.h) */

/* A run's state, in the trainer's arena. Rows of a rollout: e*T + k is environment e's k-th
 * step, so that each environment's T steps are contiguous for rl_returns / rl_td / rl_gae. */
typedef struct RlRun {
    const RlSpec *s;
    int D, A, E, T, N, K, R; /* obs dims, actions, envs, rollout, N = E*T, K eval episodes, R rows */
    Mlp actor, critic, ga, gc;
    MlpActs acts_a, acts_s, acts_c; /* actor on the rollout (N), actor on E or K rows, critic (N) */
    float *obs, *nobs;              /* (N, D) each step's observation and the one it led to */
    float *lsm, *dlogits;           /* (N, A) */
    float *reward, *logp, *ent, *v, *nv, *ret, *td, *adv, *dv; /* (N) */
    float *advn; /* (N) the advantages normalised over the update (rl_advn) */
    float *slsm;                    /* (R, A) */
    float *eobs, *epret;            /* (E, D), (E): the training environments' observation, return */
    float *vobs, *vret;             /* (2K, D), (K): the evaluation's */
    int *action, *sact, *srow;      /* (N), (R), (R) */
    uint8_t *term, *trunc;          /* (N) */
    Env *env, *venv;                /* (E), (K) */
    float *params_a, *grads_a, *params_c, *grads_c;
    uint64_t seed, episodes;        /* the run's seed; training episodes started */
    double window[RL_WINDOW];       /* the last finished training episodes' returns */
    int nwin;
    long env_steps, reached;        /* environment steps so far; when the threshold was reached (-1) */
} RlRun;

/* Takes bytes from a, or only counts them into *need when a is NULL (the sizing pass). */
static void *take(LdArena *a, size_t *need, size_t bytes) {
    *need += train_al64(bytes);
    return a ? arena_alloc(a, bytes) : NULL;
}

/* Sizes (a NULL) or lays out r's buffers and networks for task t. */
static void rl_layout(RlRun *r, const Task *t, LdArena *a, size_t *need) {
    const RlSpec *s = t->own;
    r->s = s;
    r->D = s->env->obs_dim;
    r->A = s->env->n_actions;
    r->E = s->envs;
    r->T = s->rollout;
    r->N = r->E * r->T;
    r->K = s->val_episodes > s->test_episodes ? s->val_episodes : s->test_episodes;
    r->R = r->N > r->K ? r->N : r->K;
    int D = r->D, A = r->A, N = r->N, R = r->R, E = r->E, K = r->K;
    mlp_bind(&r->actor, &t->model, D, A, NULL);
    mlp_bind(&r->critic, &t->model, D, 1, NULL);
    size_t Pa = r->actor.nparams, Pc = r->critic.nparams;
#define F(n) take(a, need, sizeof(float) * (size_t)(n))
    r->params_a = F(Pa);
    r->grads_a = F(Pa);
    r->params_c = F(Pc);
    r->grads_c = F(Pc);
    float *ma = F(mlp_acts_floats(&r->actor, N)), *ms = F(mlp_acts_floats(&r->actor, R));
    float *mc = F(mlp_acts_floats(&r->critic, N));
    r->obs = F((size_t)N * D);
    r->nobs = F((size_t)N * D);
    r->lsm = F((size_t)N * A);
    r->dlogits = F((size_t)N * A);
    float **vec[] = {&r->reward, &r->logp, &r->ent, &r->v, &r->nv, &r->ret, &r->td, &r->adv, &r->dv, &r->advn};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) *vec[i] = F(N);
    r->slsm = F((size_t)R * A);
    r->eobs = F((size_t)E * D);
    r->epret = F(E);
    r->vobs = F((size_t)2 * K * D);
    r->vret = F(K);
#undef F
    r->action = take(a, need, sizeof(int) * (size_t)N);
    r->sact = take(a, need, sizeof(int) * (size_t)R);
    r->srow = take(a, need, sizeof(int) * (size_t)R);
    r->term = take(a, need, (size_t)N);
    r->trunc = take(a, need, (size_t)N);
    r->env = take(a, need, sizeof(Env) * (size_t)E);
    r->venv = take(a, need, sizeof(Env) * (size_t)K);
    if (!a) return;
    mlp_bind(&r->actor, &t->model, D, A, r->params_a);
    mlp_bind(&r->critic, &t->model, D, 1, r->params_c);
    mlp_bind_like(&r->ga, &r->actor, r->grads_a);
    mlp_bind_like(&r->gc, &r->critic, r->grads_c);
    if (ma && ms && mc) {
        mlp_acts_bind(&r->acts_a, &r->actor, N, ma);
        mlp_acts_bind(&r->acts_s, &r->actor, R, ms);
        mlp_acts_bind(&r->acts_c, &r->critic, N, mc);
    }
}

static void rl_loss_shape(const Task *t, int *B, int *C, int *D) {
    const RlSpec *s = t->own;
    *B = s->envs * s->rollout;
    *C = 1;
    *D = 0;
}

static size_t rl_run_bytes(const Task *t, size_t *nparams) {
    RlRun r;
    size_t need = train_al64(sizeof(RlRun));
    rl_layout(&r, t, NULL, &need);
    *nparams = r.actor.nparams + r.critic.nparams;
    return need;
}

static int rl_setup(Trainer *tr, char *err) {
    const Task *t = tr->task;
    RlRun *r = arena_alloc(&tr->arena, sizeof *r);
    if (!r) return ld_err(err, LD_ENOMEM, "rl: arena too small (internal sizing error)");
    memset(r, 0, sizeof *r);
    size_t need = 0;
    rl_layout(r, t, &tr->arena, &need);
    if (!r->venv) return ld_err(err, LD_ENOMEM, "rl: arena too small (internal sizing error)");
    mlp_init(&r->actor, tr->seed);
    mlp_init(&r->critic, ld_mix64(tr->seed, 0xc417));
    r->reached = -1;
    r->seed = tr->seed;
    for (int e = 0; e < r->E; e++) {
        r->env[e] = (Env){.cls = r->s->env};
        env_reset(&r->env[e], seed_train(tr->seed, r->episodes++), r->eobs + (size_t)e * r->D);
        r->epret[e] = 0;
    }
    tr->state = r;
    int rc = train_deployable(tr, &r->actor, r->obs, r->N, r->R, r->N, err);
    if (!rc) rc = train_group(tr, r->params_a, r->grads_a, r->actor.nparams, NULL, err);
    return rc ? rc : train_group(tr, r->params_c, r->grads_c, r->critic.nparams, NULL, err);
}

/* Records a finished training episode's return; the first time the mean of the last RL_WINDOW
 * reaches the threshold, the environment steps so far are steps_to_threshold. */
static void episode_done(RlRun *r, double ret) {
    r->window[r->nwin++ % RL_WINDOW] = ret;
    if (r->reached >= 0 || r->nwin < RL_WINDOW) return;
    double m = 0;
    for (int w = 0; w < RL_WINDOW; w++) m += r->window[w];
    if (m / RL_WINDOW >= r->s->threshold) r->reached = r->env_steps;
}

/* Collects T steps of every training environment with the sampling policy. */
static void collect(RlRun *r, LdRng *rng) {
    const int D = r->D, A = r->A, E = r->E, T = r->T;
    for (int k = 0; k < T; k++) {
        const float *z = mlp_forward(&r->actor, &r->acts_s, r->eobs, E);
        rl_policy_forward(r->slsm, NULL, NULL, z, NULL, E, A);
        rl_policy_sample(r->sact, r->slsm, E, A, rng);
        for (int e = 0; e < E; e++) {
            int row = e * T + k;
            float *eo = r->eobs + (size_t)e * D, *next = r->nobs + (size_t)row * D;
            memcpy(r->obs + (size_t)row * D, eo, sizeof(float) * (size_t)D);
            EnvStep st;
            env_step(&r->env[e], r->sact[e], next, &st, NULL);
            r->action[row] = r->sact[e];
            r->reward[row] = st.reward;
            r->term[row] = (uint8_t)st.terminated;
            r->trunc[row] = (uint8_t)st.truncated;
            r->epret[e] += st.reward;
            r->env_steps++;
            if (st.terminated || st.truncated) {
                episode_done(r, r->epret[e]);
                r->epret[e] = 0;
                env_reset(&r->env[e], seed_train(r->seed, r->episodes++), eo);
            } else {
                memcpy(eo, next, sizeof(float) * (size_t)D);
            }
        }
    }
}

/* 0.5 * the sum of squared weights of m (the l2 term), or adds coef * w to g's weights. */
static double weights_l2(const Mlp *m, const Mlp *g, float coef) {
    double sum = 0;
    for (int l = 0; l < m->nlin; l++) {
        size_t nw = (size_t)m->dim[l] * m->dim[l + 1];
        if (g) train_l2_backward(g->w[l], m->w[l], nw, coef);
        else sum = train_l2_add(sum, m->w[l], nw);
    }
    return 0.5 * sum;
}

/* One update: a rollout, the loss's inputs over its N transitions, the loss, and the gradients
 * of the policy (through logp and ent) and the critic (through v and td: dtd/dv = -1). */
static int rl_step(Trainer *tr, float *loss) {
    RlRun *r = tr->state;
    const RlSpec *s = r->s;
    const int A = r->A, T = r->T, N = r->N;
    collect(r, &tr->rng);
    const float *z = train_step_forward(tr, &r->actor, &r->acts_a, r->obs, N);
    rl_policy_forward(r->lsm, r->logp, r->ent, z, r->action, N, A);
    memcpy(r->nv, mlp_forward(&r->critic, &r->acts_c, r->nobs, N), sizeof(float) * (size_t)N);
    /* the forward on obs comes second: its activations are the backward's */
    memcpy(r->v, mlp_forward(&r->critic, &r->acts_c, r->obs, N), sizeof(float) * (size_t)N);
    for (int e = 0; e < r->E; e++) {
        size_t o = (size_t)e * T;
        rl_returns(r->ret + o, r->reward + o, r->nv + o, r->term + o, r->trunc + o, s->gamma, T);
        rl_td(r->td + o, r->reward + o, r->v + o, r->nv + o, r->term + o, s->gamma, T);
        rl_gae(r->adv + o, r->td + o, r->term + o, r->trunc + o, s->gamma, s->lambda, T);
    }
    rl_advn(r->advn, r->adv, N); /* over the whole update: every environment's transitions */
    LossIn in = {.B = N, .t = tr->t};
    in.var[VAR_ADVN] = r->advn;
    in.var[VAR_LOGP] = r->logp;
    in.var[VAR_RET] = r->ret;
    in.var[VAR_ADV] = r->adv;
    in.var[VAR_V] = r->v;
    in.var[VAR_TD] = r->td;
    in.var[VAR_ENT] = r->ent;
    if (tr->use_l2) in.term[TERM_L2] = (float)(weights_l2(&r->actor, NULL, 0) + weights_l2(&r->critic, NULL, 0));
    LossOut out;
    int rc = train_loss(tr, &in, &out);
    *loss = out.loss;
    if (rc != LD_OK) return LD_EFAILED;
    rl_policy_backward(r->dlogits, out.g_var[VAR_LOGP], out.g_var[VAR_ENT], r->lsm, r->action, N, A);
    train_step_backward(tr, &r->actor, &r->acts_a, &r->ga, r->obs, r->dlogits, N);
    const float *gv = out.g_var[VAR_V], *gtd = out.g_var[VAR_TD];
    for (int i = 0; i < N; i++) r->dv[i] = (gv ? gv[i] : 0.0f) - (gtd ? gtd[i] : 0.0f);
    mlp_backward(&r->critic, &r->acts_c, &r->gc, r->obs, r->dv, N);
    if (tr->use_l2 && out.g_term[TERM_L2] != 0) {
        weights_l2(&r->actor, &r->ga, out.g_term[TERM_L2]);
        weights_l2(&r->critic, &r->gc, out.g_term[TERM_L2]);
    }
    return LD_OK;
}

static RlEval rl_eval_of(Trainer *tr, RlRun *r) {
    return (RlEval){.s = r->s, .tr = tr, .actor = &r->actor, .acts = &r->acts_s, .obs = r->vobs, .lsm = r->slsm,
                    .act = r->sact, .row = r->srow, .env = r->venv, .ret = r->vret};
}

static double steps_to_threshold(const RlRun *r) { return (double)(r->reached < 0 ? r->env_steps : r->reached); }

static double rl_curve_val(Trainer *tr, int last) {
    RlRun *r = tr->state;
    if (!strcmp(tr->task->metric, "steps_to_threshold")) return steps_to_threshold(r);
    RlEval ev = rl_eval_of(tr, r);
    int n = last || r->s->val_episodes < RL_CURVE_EPISODES ? r->s->val_episodes : RL_CURVE_EPISODES;
    return rl_evaluate(&ev, n, 0);
}

static void rl_score(Trainer *tr, EvalResult *res) {
    RlRun *r = tr->state;
    RlEval ev = rl_eval_of(tr, r);
    res->nextra = 2;
    snprintf(res->extra[0].name, sizeof res->extra[0].name, "return");
    res->extra[0].val = rl_evaluate(&ev, r->s->val_episodes, 0);
    res->extra[0].test = rl_evaluate(&ev, r->s->test_episodes, 1);
    snprintf(res->extra[1].name, sizeof res->extra[1].name, "steps_to_threshold");
    res->extra[1].val = res->extra[1].test = steps_to_threshold(r);
}

/* The losses the search's first population tries: textbook ones, then the directions that
 * matter once the weight of each network's part does not (each has its own Adam, which a
 * gradient's scale does not change; probe.c's signature merges such losses): the entropy weight
 * and its schedule over t, and the advantage's transform (a soft and a hard clip, as PPO-style
 * objectives bound it). The critic's term is written td2: its weight cannot matter. */
static const char *const rl_known[] = {"reinforce - 0.01*ent + td2",
                                       "a2c + td2",
                                       "a2c - 0.03*ent + td2",
                                       "a2c - 0.05*(1 - t)*ent + td2",
                                       "-logp*tanh(adv) - 0.01*ent + td2",
                                       "-logp*max(min(adv, 2), -2) - 0.01*ent + td2",
                                       "reinforce",
                                       NULL};

const EvalFamily family_rl = {
    .name = "rl",
    .metrics = {{"return", 1}, {"steps_to_threshold", 0}},
    .baseline = "a2c - 0.01*ent + 0.5*td2",
    .known = rl_known,
    .data_set = 0,
    .classify = 0,
    .load = rl_task_load,
    .unload = rl_task_free,
    .rng_salt = 0x5a3b,
    .lr_schedule = TRAIN_LR_CONSTANT,
    .loss_shape = rl_loss_shape,
    .run_bytes = rl_run_bytes,
    .setup = rl_setup,
    .step = rl_step,
    .curve_val = rl_curve_val,
    .score = rl_score,
    .probe = eval_probe_std,
    /* the policy is deployed (the critic only trains it); qat trains the policy's int8 model */
    .deploy = FAMILY_DEPLOY_PTQ | FAMILY_DEPLOY_QAT,
};
