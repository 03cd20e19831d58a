/* env.c: the environment table and what every environment shares: lookup by name, seeded
 * resets, the episode's step count and Gymnasium's TimeLimit truncation, action checks. */
#include "env.h"

#include <stdio.h>
#include <string.h>

#define ENV_ROW(n) &env_##n,
static const EnvClass *const env_table[] = {ENV_LIST(ENV_ROW)};
#undef ENV_ROW

#define ENV_N ((int)(sizeof env_table / sizeof env_table[0]))

int env_count(void) { return ENV_N; }

const EnvClass *env_at(int i) { return i >= 0 && i < ENV_N ? env_table[i] : NULL; }

const EnvClass *env_find(const char *name) {
    if (!name) return NULL;
    if (strncmp(name, "builtin:", 8) == 0) name += 8;
    for (int i = 0; i < ENV_N; i++)
        if (strcmp(env_table[i]->name, name) == 0) return env_table[i];
    return NULL;
}

int env_init(Env *e, const char *name, char *err) {
    memset(e, 0, sizeof *e);
    e->cls = env_find(name);
    if (e->cls) return LD_OK;
    char known[128] = "";
    for (int i = 0; i < ENV_N; i++) {
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%sbuiltin:%s", i ? ", " : "", env_table[i]->name);
    }
    return ld_err(err, LD_EINVAL, "environment \"%s\": unknown (known: %s)", name ? name : "(null)", known);
}

void env_reset(Env *e, uint64_t seed, float *obs) {
    LdRng r;
    rng_seed(&r, ld_mix64(seed, 0xe417));
    double s[ENV_MAX_STATE];
    e->cls->reset(s, &r);
    env_set_state(e, s, obs);
}

void env_set_state(Env *e, const double *state, float *obs) {
    memcpy(e->state, state, sizeof(double) * (size_t)e->cls->state_dim);
    e->t = 0;
    e->done = 0;
    if (obs) e->cls->observe(obs, e->state);
}

int env_step(Env *e, int action, float *obs, EnvStep *out, char *err) {
    const EnvClass *c = e->cls;
    if (action < 0 || action >= c->n_actions)
        return ld_err(err, LD_EINVAL, "%s: action %d is outside [0, %d)", c->gym_id, action, c->n_actions);
    if (e->done)
        return ld_err(err, LD_ESTATE, "%s: step after the episode ended (step %d); reset first", c->gym_id, e->t);
    int term = 0;
    double r = c->step(e->state, action, &term);
    e->t++;
    out->reward = (float)r;
    out->terminated = term;
    out->truncated = e->t >= c->max_steps; /* TimeLimit: elapsed >= max_episode_steps */
    e->done = out->terminated || out->truncated;
    if (obs) c->observe(obs, e->state);
    return LD_OK;
}
