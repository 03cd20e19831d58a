/* env.h: reinforcement-learning environments as a table, one row per environment: CartPole-v1
 * and Acrobot-v1 with Gymnasium's dynamics, rewards, termination and time limit, seeded resets
 * and deterministic steps. Nothing here allocates or keeps global state; an Env is the caller's.
 * The equations and their sources: docs/rl.md, "Environments". */
#ifndef ENV_H
#define ENV_H

#include <stdint.h>

#include "../common/lossd.h"

#define ENV_MAX_STATE 4 /* doubles of an environment's internal state */
#define ENV_MAX_OBS 6   /* floats of an observation */
#define ENV_MAX_ACTIONS 3

/* One environment: what it is called, its sizes and its three kernels. The dynamics run on the
 * state in double precision, as Gymnasium's do (float64); observations are float (Gymnasium's
 * float32 observation space). */
typedef struct EnvClass {
    const char *name;        /* spec spelling: "cartpole", used as data "builtin:cartpole" */
    const char *gym_id;      /* the Gymnasium id it reproduces: "CartPole-v1" */
    int state_dim, obs_dim, n_actions;
    int max_steps;           /* the registration's max_episode_steps: truncated at this step */
    double reward_threshold; /* the registration's reward_threshold ("solved" return) */
    /* state (state_dim) drawn from Gymnasium's reset distribution with r */
    void (*reset)(double *state, LdRng *r);
    /* one step of the dynamics with action in [0, n_actions): updates state in place, sets
     * *terminated (0/1) and returns the reward */
    double (*step)(double *state, int action, int *terminated);
    /* obs (obs_dim) of state */
    void (*observe)(float *obs, const double *state);
} EnvClass;

/* The table: one line per environment, each defined in evaluator/env_<name>.c. */
#define ENV_LIST(X) X(cartpole) X(acrobot)

#define ENV_DECLARE(n) extern const EnvClass env_##n;
ENV_LIST(ENV_DECLARE)
#undef ENV_DECLARE

int env_count(void);
const EnvClass *env_at(int i); /* 0 <= i < env_count(), else NULL */
/* The environment called name ("cartpole") or data string ("builtin:cartpole"); NULL if none. */
const EnvClass *env_find(const char *name);

/* One running episode. Plain data: copy it to branch an episode. */
typedef struct Env {
    const EnvClass *cls;
    double state[ENV_MAX_STATE];
    int t;    /* steps taken in this episode */
    int done; /* the last step terminated or truncated: env_step refuses until a reset */
} Env;

/* What one step returned (Gymnasium's step tuple without the observation). */
typedef struct EnvStep {
    float reward;
    int terminated; /* the MDP reached a terminal state (pole fell, tip above the line) */
    int truncated;  /* the time limit: t reached max_steps (both can be set at once) */
} EnvStep;

/* Binds e to the environment called name (see env_find). LD_EINVAL naming the known
 * environments if there is none; e is not reset yet. */
int env_init(Env *e, const char *name, char *err);
/* Starts an episode from a draw of the reset distribution seeded by seed alone (the same seed
 * gives the same state; the stream is lossd's LdRng, so seeds do not map to Gymnasium's PCG64
 * states). Writes the first observation into obs (obs_dim floats; obs may be NULL). */
void env_reset(Env *e, uint64_t seed, float *obs);
/* Starts an episode from a given state (state_dim doubles), as assigning Gymnasium's
 * env.unwrapped.state would: fixed initial states for tests. obs may be NULL. */
void env_set_state(Env *e, const double *state, float *obs);
/* One step: writes the next observation into obs (may be NULL) and the reward and flags into
 * out. LD_EINVAL for an action outside [0, n_actions), LD_ESTATE after the episode ended (reset
 * first); the state is unchanged on failure. */
int env_step(Env *e, int action, float *obs, EnvStep *out, char *err);

#endif
