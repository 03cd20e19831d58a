/* env_cartpole.c: CartPole-v1 as Gymnasium defines it (gymnasium/envs/classic_control/
 * cartpole.py, CartPoleEnv: Barto, Sutton & Anderson 1983, equations from Florian 2007, explicit
 * Euler with tau = 0.02 s), reward +1 on every step including the terminating one, terminated
 * when |x| > 2.4 or |theta| > 12 degrees, truncated at 500 steps. */
/* Gymnasium computes in Python floats; with contraction into FMAs off, every operation below is
 * the same IEEE double operation in the same order, so trajectories match it to the last bit
 * wherever the C library's sin/cos agree with Python's math module (the same libm). */
#pragma GCC optimize("fp-contract=off")

#include <math.h>

#include "env.h"

static const double GRAVITY = 9.8, MASSCART = 1.0, MASSPOLE = 0.1, LENGTH = 0.5; /* half-pole */
static const double FORCE_MAG = 10.0, TAU = 0.02, X_THRESHOLD = 2.4;

/* Every component uniform in [-0.05, 0.05) (np_random.uniform(low=-0.05, high=0.05, size=4)). */
static void cartpole_reset(double *s, LdRng *r) {
    for (int i = 0; i < 4; i++) s[i] = -0.05 + (0.05 - -0.05) * rng_uniform(r);
}

/* state (x, x_dot, theta, theta_dot); action 0 pushes left, 1 right. */
static double cartpole_step(double *s, int action, int *terminated) {
    const double total_mass = MASSPOLE + MASSCART;
    const double polemass_length = MASSPOLE * LENGTH;
    const double theta_threshold = 12 * 2 * M_PI / 360;
    double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
    double force = action == 1 ? FORCE_MAG : -FORCE_MAG;
    double costheta = cos(theta), sintheta = sin(theta);
    double temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
    double thetaacc = (GRAVITY * sintheta - costheta * temp) /
                      (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / total_mass));
    double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
    x = x + TAU * x_dot;
    x_dot = x_dot + TAU * xacc;
    theta = theta + TAU * theta_dot;
    theta_dot = theta_dot + TAU * thetaacc;
    s[0] = x, s[1] = x_dot, s[2] = theta, s[3] = theta_dot;
    *terminated = x < -X_THRESHOLD || x > X_THRESHOLD || theta < -theta_threshold || theta > theta_threshold;
    return 1.0;
}

static void cartpole_observe(float *obs, const double *s) {
    for (int i = 0; i < 4; i++) obs[i] = (float)s[i];
}

const EnvClass env_cartpole = {
    .name = "cartpole",
    .gym_id = "CartPole-v1",
    .state_dim = 4,
    .obs_dim = 4,
    .n_actions = 2,
    .max_steps = 500,
    .reward_threshold = 475.0,
    .reset = cartpole_reset,
    .step = cartpole_step,
    .observe = cartpole_observe,
};
