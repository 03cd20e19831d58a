#!/usr/bin/python3
"""gen_env_ref.py: writes tests/env_ref.h, the reference trajectories tests/test_env.c checks
evaluator/env_cartpole.c and evaluator/env_acrobot.c against.

Gymnasium itself is not installable on this machine (no PyPI access), so the step functions below
are line-by-line transcriptions of Gymnasium's gymnasium/envs/classic_control/cartpole.py
(CartPoleEnv.step, kinematics_integrator "euler", sutton_barto_reward False) and acrobot.py
(AcrobotEnv.step with book_or_nips "book", torque_noise_max 0, rk4, wrap, bound, _terminal,
_get_ob), in the same floating-point types and operation order: CartPole on Python floats with
math.sin/cos, Acrobot on NumPy float64 with numpy.sin/cos, observations cast to float32, and the
TimeLimit wrapper's truncation at max_episode_steps = 500 (both environments' v1 registration).

Each trajectory starts from a fixed state (set directly, as Gymnasium's env.unwrapped.state = ...
would) and replays a fixed action sequence; the actions are chosen here (constant, alternating,
a seeded pseudo-random list, or a simple controller evaluated on this reference's own states) and
written out, so the C side replays the same actions whatever its last bits.

Run: /usr/bin/python3 tests/gen_env_ref.py > tests/env_ref.h
"""
import math

import numpy as np
from numpy import cos, pi, sin

MAX_STEPS = 500  # gymnasium.envs.registration: CartPole-v1 and Acrobot-v1, max_episode_steps=500


# ---- CartPole-v1 (cartpole.py, CartPoleEnv)
class CartPole:
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(self, state):
        self.state = tuple(float(v) for v in state)

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = (x, x_dot, theta, theta_dot)
        terminated = bool(
            x < -self.x_threshold
            or x > self.x_threshold
            or theta < -self.theta_threshold_radians
            or theta > self.theta_threshold_radians
        )
        reward = 1.0  # every step, the terminating one included (first termination)
        return np.array(self.state, dtype=np.float32), reward, terminated


# ---- Acrobot-v1 (acrobot.py, AcrobotEnv)
def wrap(x, m, M):
    diff = M - m
    while x > M:
        x = x - diff
    while x < m:
        x = x + diff
    return x


def bound(x, m, M):
    return min(max(x, m), M)


def rk4(derivs, y0, t):
    Ny = len(y0)
    yout = np.zeros((len(t), Ny), np.float64)
    yout[0] = y0
    for i in np.arange(len(t) - 1):
        this = t[i]
        dt = t[i + 1] - this
        dt2 = dt / 2.0
        y0 = yout[i]
        k1 = np.asarray(derivs(y0))
        k2 = np.asarray(derivs(y0 + dt2 * k1))
        k3 = np.asarray(derivs(y0 + dt2 * k2))
        k4 = np.asarray(derivs(y0 + dt * k3))
        yout[i + 1] = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return yout[-1][:4]


class Acrobot:
    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_LENGTH_2 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * pi
    MAX_VEL_2 = 9 * pi
    AVAIL_TORQUE = [-1.0, 0.0, +1]

    def __init__(self, state):
        # reset() keeps the state as float32 (uniform(...).astype(np.float32))
        self.state = np.asarray(state, dtype=np.float32)

    def step(self, a):
        s = self.state
        torque = self.AVAIL_TORQUE[a]
        s_augmented = np.append(s, torque)
        ns = rk4(self._dsdt, s_augmented, [0, self.dt])
        ns[0] = wrap(ns[0], -pi, pi)
        ns[1] = wrap(ns[1], -pi, pi)
        ns[2] = bound(ns[2], -self.MAX_VEL_1, self.MAX_VEL_1)
        ns[3] = bound(ns[3], -self.MAX_VEL_2, self.MAX_VEL_2)
        self.state = ns
        terminated = self._terminal()
        reward = -1.0 if not terminated else 0.0
        return self._get_ob(), reward, terminated

    def _get_ob(self):
        s = self.state
        return np.array([cos(s[0]), sin(s[0]), cos(s[1]), sin(s[1]), s[2], s[3]], dtype=np.float32)

    def _terminal(self):
        s = self.state
        return bool(-cos(s[0]) - cos(s[1] + s[0]) > 1.0)

    def _dsdt(self, s_augmented):
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI
        I2 = self.LINK_MOI
        g = 9.8
        a = s_augmented[-1]
        s = s_augmented[:-1]
        theta1 = s[0]
        theta2 = s[1]
        dtheta1 = s[2]
        dtheta2 = s[3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos(theta2)) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin(theta2) - phi2) / (
            m2 * lc2**2 + I2 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0


# ---- trajectories
def lcg_actions(seed, n, k):
    """A fixed pseudo-random action list (64-bit LCG, high bits), written out in the header."""
    out, x = [], seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((x >> 33) % k)
    return out


def run(env_cls, s0, policy, nmax=MAX_STEPS):
    """policy(t, state) -> action. Runs until terminated or truncated (TimeLimit at 500)."""
    env = env_cls(s0)
    s0_used = [float(v) for v in env.state]
    rows = []
    for t in range(nmax):
        a = int(policy(t, env.state))
        obs, r, term = env.step(a)
        trunc = t + 1 >= MAX_STEPS
        rows.append((a, [float(v) for v in env.state], [float(v) for v in obs], r, term, trunc))
        if term or trunc:
            break
    return s0_used, rows


def cases():
    rnd_cp = lcg_actions(7, MAX_STEPS, 2)
    rnd_ac = lcg_actions(11, MAX_STEPS, 3)
    yield "cartpole", "push right until the pole falls", run(
        CartPole, [0.01, -0.02, 0.03, 0.04], lambda t, s: 1)
    yield "cartpole", "alternating pushes", run(
        CartPole, [-0.03, 0.02, -0.01, -0.04], lambda t, s: t % 2)
    yield "cartpole", "seeded random pushes", run(
        CartPole, [0.04, 0.01, -0.02, 0.03], lambda t, s: rnd_cp[t])
    yield "cartpole", "balancing controller, truncated at 500", run(
        CartPole, [0.02, 0.0, -0.02, 0.0],
        lambda t, s: 1 if s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.1 * s[1] > 0 else 0)
    yield "cartpole", "balancing with a bias: the cart leaves the track", run(
        CartPole, [0.0, 0.0, 0.0, 0.0],
        lambda t, s: 1 if s[2] + 0.5 * s[3] + 0.05 > 0 else 0)
    yield "acrobot", "zero torque, truncated at 500", run(
        Acrobot, [0.05, -0.03, 0.02, -0.01], lambda t, s: 1)
    yield "acrobot", "torque along the second joint's velocity (swings up)", run(
        Acrobot, [-0.07, 0.04, 0.01, 0.03], lambda t, s: 2 if s[3] > 0 else 0)
    yield "acrobot", "seeded random torques", run(
        Acrobot, [0.09, 0.08, -0.06, 0.02], lambda t, s: rnd_ac[t], 200)
    yield "acrobot", "wrap and velocity bounds from a wild state", run(
        Acrobot, [3.1, -3.1, 12.0, -27.0], lambda t, s: 2 if t % 3 else 0, 40)


def f64(v):
    return repr(float(v))


def f32(v):
    t = "%.9g" % float(np.float32(v))
    return t + (".0f" if t.lstrip("-").isdigit() else "f")


def main():
    out = []
    w = out.append
    w("/* env_ref.h: GENERATED by tests/gen_env_ref.py (a NumPy transcription of Gymnasium's")
    w(" * CartPole-v1 and Acrobot-v1 step functions); do not edit. Regenerate with")
    w(" * /usr/bin/python3 tests/gen_env_ref.py > tests/env_ref.h */")
    w("")
    w("typedef struct EnvRefTraj {")
    w("    const char *env, *what;")
    w("    int n;               /* steps taken */")
    w("    int stride;          /* states and observations kept after steps t with")
    w("                            (t + 1) % stride == 0, and after the last step */")
    w("    double s0[4];        /* state before the first step */")
    w("    const int *action;   /* (n) */")
    w("    const double *state; /* (kept, 4): state after the kept steps */")
    w("    const float *obs;    /* (kept, obs_dim) */")
    w("    const float *reward; /* (n) */")
    w("    const int *term, *trunc;")
    w("} EnvRefTraj;")
    w("")
    trajs = []
    for i, (env, what, (s0, rows)) in enumerate(cases()):
        n = len(rows)
        stride = 1 if n <= 100 else 10
        kept = [r for t, r in enumerate(rows) if (t + 1) % stride == 0 or t == n - 1]
        w("static const int ref%d_action[] = {%s};" % (i, ",".join(str(r[0]) for r in rows)))
        w("static const double ref%d_state[] = {" % i)
        for r in kept:
            w("    %s," % ", ".join(f64(v) for v in r[1]))
        w("};")
        w("static const float ref%d_obs[] = {" % i)
        for r in kept:
            w("    %s," % ", ".join(f32(v) for v in r[2]))
        w("};")
        w("static const float ref%d_reward[] = {%s};" % (i, ",".join(f32(r[3]) for r in rows)))
        w("static const int ref%d_term[] = {%s};" % (i, ",".join(str(int(r[4])) for r in rows)))
        w("static const int ref%d_trunc[] = {%s};" % (i, ",".join(str(int(r[5])) for r in rows)))
        trajs.append("    {\"%s\", \"%s\", %d, %d, {%s}, ref%d_action, ref%d_state, ref%d_obs, ref%d_reward, "
                     "ref%d_term, ref%d_trunc}," % (env, what, n, stride, ", ".join(f64(v) for v in s0),
                                                     i, i, i, i, i, i))
        last = rows[-1]
        w("/* %s, %s: %d steps, return %g, terminated %d, truncated %d */"
          % (env, what, n, sum(r[3] for r in rows), last[4], last[5]))
        w("")
    w("static const EnvRefTraj env_ref[] = {")
    out.extend(trajs)
    w("};")
    print("\n".join(out))


if __name__ == "__main__":
    main()
