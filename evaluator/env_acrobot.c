/* env_acrobot.c: Acrobot-v1 as Gymnasium defines it (gymnasium/envs/classic_control/acrobot.py,
 * AcrobotEnv, from RLPy; Sutton 1996 and Sutton & Barto's book): the "book" dynamics (Gymnasium's
 * default book_or_nips), one classic fourth-order Runge-Kutta step of dt = 0.2 s, angles wrapped
 * to [-pi, pi], velocities clipped to 4 pi and 9 pi, reward -1 per step and 0 on the step that
 * lifts the tip above the line -cos(t1) - cos(t1 + t2) > 1, truncated at 500 steps. */
/* The operations follow Gymnasium's order with contraction into FMAs off (see env_cartpole.c);
 * NumPy's float64 sin/cos may differ from the C library's in the last bit, so results agree to
 * rounding, not bit for bit: tests/test_env.c states the tolerance. */
#pragma GCC optimize("fp-contract=off")

#include <math.h>

#include "env.h"

static const double M1 = 1.0, M2 = 1.0, L1 = 1.0, LC1 = 0.5, LC2 = 0.5, I1 = 1.0, I2 = 1.0, G = 9.8;
static const double DT = 0.2;
static const double TORQUE[3] = {-1.0, 0.0, 1.0};

/* Every component uniform in [-0.1, 0.1), then rounded to float as Gymnasium's reset does
 * (np_random.uniform(-0.1, 0.1, size=4).astype(np.float32)). */
static void acrobot_reset(double *s, LdRng *r) {
    for (int i = 0; i < 4; i++) s[i] = (float)(-0.1 + (0.1 - -0.1) * rng_uniform(r));
}

/* ds (4) = d/dt of s (theta1, theta2, dtheta1, dtheta2) under torque a: AcrobotEnv._dsdt. */
static void dsdt(double *ds, const double *s, double a) {
    double theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
    double d1 = M1 * (LC1 * LC1) + M2 * ((L1 * L1) + (LC2 * LC2) + 2 * L1 * LC2 * cos(theta2)) + I1 + I2;
    double d2 = M2 * ((LC2 * LC2) + L1 * LC2 * cos(theta2)) + I2;
    double phi2 = M2 * LC2 * G * cos(theta1 + theta2 - M_PI / 2.0);
    double phi1 = -M2 * L1 * LC2 * (dtheta2 * dtheta2) * sin(theta2) -
                  2 * M2 * L1 * LC2 * dtheta2 * dtheta1 * sin(theta2) +
                  (M1 * LC1 + M2 * L1) * G * cos(theta1 - M_PI / 2) + phi2;
    /* the book's line (Gymnasium's default); the NIPS paper's omits the dtheta1^2 term */
    double ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * (dtheta1 * dtheta1) * sin(theta2) - phi2) /
                      (M2 * (LC2 * LC2) + I2 - (d2 * d2) / d1);
    double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    ds[0] = dtheta1, ds[1] = dtheta2, ds[2] = ddtheta1, ds[3] = ddtheta2;
}

/* Gymnasium's wrap(): repeated shifts by the range, not fmod, so the rounding is the same. */
static double wrap(double x, double m, double M) {
    double diff = M - m;
    while (x > M) x = x - diff;
    while (x < m) x = x + diff;
    return x;
}

static double bound(double x, double m, double M) { return fmin(fmax(x, m), M); }

static double acrobot_step(double *s, int action, int *terminated) {
    double a = TORQUE[action];
    /* rk4(derivs, y0, [0, dt]): one step, the torque riding along as a constant fifth state */
    const double dt = DT - 0, dt2 = dt / 2.0;
    double k1[4], k2[4], k3[4], k4[4], y[4];
    dsdt(k1, s, a);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt2 * k1[i];
    dsdt(k2, y, a);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt2 * k2[i];
    dsdt(k3, y, a);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt * k3[i];
    dsdt(k4, y, a);
    double ns[4];
    for (int i = 0; i < 4; i++) ns[i] = s[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
    s[0] = wrap(ns[0], -M_PI, M_PI);
    s[1] = wrap(ns[1], -M_PI, M_PI);
    s[2] = bound(ns[2], -4 * M_PI, 4 * M_PI);
    s[3] = bound(ns[3], -9 * M_PI, 9 * M_PI);
    *terminated = -cos(s[0]) - cos(s[1] + s[0]) > 1.0;
    return *terminated ? 0.0 : -1.0;
}

static void acrobot_observe(float *obs, const double *s) {
    obs[0] = (float)cos(s[0]);
    obs[1] = (float)sin(s[0]);
    obs[2] = (float)cos(s[1]);
    obs[3] = (float)sin(s[1]);
    obs[4] = (float)s[2];
    obs[5] = (float)s[3];
}

const EnvClass env_acrobot = {
    .name = "acrobot",
    .gym_id = "Acrobot-v1",
    .state_dim = 4,
    .obs_dim = 6,
    .n_actions = 3,
    .max_steps = 500,
    .reward_threshold = -100.0,
    .reset = acrobot_reset,
    .step = acrobot_step,
    .observe = acrobot_observe,
};
