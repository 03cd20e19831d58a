/* test_env.c: the classic-control environments against reference trajectories (tests/env_ref.h,
 * written by tests/gen_env_ref.py, a NumPy transcription of Gymnasium's step functions: fixed
 * initial states and action sequences give the documented states, observations, rewards and
 * flags), the reset distributions and seeding, the time limit, and refused inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../evaluator/env.h"
#include "env_ref.h"

/* Tolerances. States: the C dynamics and the reference are both float64 with the same operations
 * in the same order, so CartPole (libm sin/cos on both sides) agrees to the bit; Acrobot's
 * reference uses NumPy's sin/cos, which may differ from libm in the last bit, and the swing-up
 * amplifies that over 500 steps: 1e-9 absolute still fails any transcription error (those show
 * up at 1e-3 or more within a step). Observations are float32 casts of those states: 1 float ulp
 * relative (2^-23) plus a 1e-9 absolute floor near zero. */
#define TOL_STATE_CARTPOLE 0.0
#define TOL_STATE_ACROBOT 1e-9
#define TOL_OBS_REL 1.2e-7
#define TOL_OBS_ABS 1e-9

static void test_reference_trajectories(void **state) {
    (void)state;
    int bad = 0;
    for (size_t k = 0; k < sizeof env_ref / sizeof env_ref[0]; k++) {
        const EnvRefTraj *r = &env_ref[k];
        char err[LD_ERR_MAX];
        Env e;
        assert_int_equal(env_init(&e, r->env, err), LD_OK);
        int od = e.cls->obs_dim;
        double tol = strcmp(r->env, "cartpole") == 0 ? TOL_STATE_CARTPOLE : TOL_STATE_ACROBOT;
        env_set_state(&e, r->s0, NULL);
        double sdiff = 0, odiff = 0;
        int flags_ok = 1, rew_ok = 1, kept = 0, steps = 0;
        float obs[ENV_MAX_OBS];
        for (int t = 0; t < r->n; t++) {
            EnvStep st;
            if (env_step(&e, r->action[t], obs, &st, err) != LD_OK) {
                printf("  %s step %d: %s\n", r->what, t, err);
                flags_ok = 0;
                break;
            }
            steps++;
            if (st.reward != r->reward[t]) rew_ok = 0;
            if (st.terminated != r->term[t] || st.truncated != r->trunc[t]) {
                printf("  %s step %d: terminated %d truncated %d, reference %d %d\n", r->what, t,
                       st.terminated, st.truncated, r->term[t], r->trunc[t]);
                flags_ok = 0;
            }
            if ((t + 1) % r->stride == 0 || t == r->n - 1) {
                for (int i = 0; i < 4; i++) sdiff = fmax(sdiff, fabs(e.state[i] - r->state[kept * 4 + i]));
                for (int i = 0; i < od; i++) {
                    double ref = r->obs[kept * od + i], d = fabs((double)obs[i] - ref);
                    if (d > TOL_OBS_ABS) odiff = fmax(odiff, d / fabs(ref));
                }
                kept++;
            }
        }
        int ok = flags_ok && rew_ok && steps == r->n && sdiff <= tol && odiff <= TOL_OBS_REL;
        printf("%-8s %-52s %3d steps: state maxdiff %.3e (tolerance %.0e), obs rel maxdiff %.3e "
               "(tolerance %.1e), rewards %s, flags %s %s\n",
               r->env, r->what, steps, sdiff, tol, odiff, TOL_OBS_REL, rew_ok ? "equal" : "DIFFER",
               flags_ok ? "equal" : "DIFFER", ok ? "ok" : "FAIL");
        bad += !ok;
    }
    assert_int_equal(bad, 0);
}

static void test_table(void **state) {
    (void)state;
    assert_int_equal(env_count(), 2);
    const EnvClass *cp = env_find("builtin:cartpole"), *ac = env_find("acrobot");
    assert_non_null(cp);
    assert_non_null(ac);
    assert_ptr_equal(cp, &env_cartpole);
    assert_ptr_equal(env_at(1), &env_acrobot);
    assert_null(env_at(2));
    assert_null(env_find("builtin:mountaincar"));
    assert_null(env_find(NULL));
    assert_string_equal(cp->gym_id, "CartPole-v1");
    assert_int_equal(cp->obs_dim, 4);
    assert_int_equal(cp->n_actions, 2);
    assert_int_equal(ac->obs_dim, 6);
    assert_int_equal(ac->n_actions, 3);
    for (int i = 0; i < env_count(); i++) {
        assert_int_equal(env_at(i)->max_steps, 500);
        assert_true(env_at(i)->obs_dim <= ENV_MAX_OBS && env_at(i)->state_dim <= ENV_MAX_STATE);
        assert_true(env_at(i)->n_actions <= ENV_MAX_ACTIONS);
    }
}

/* Reset draws: deterministic per seed, inside the documented box, centred (2000 seeds: the
 * mean's standard error is 0.0289 / sqrt(2000) = 6.5e-4 for CartPole, twice that for Acrobot;
 * the bounds below are 6 standard errors), and Acrobot's components are float values. */
static void test_reset_distribution(void **state) {
    (void)state;
    const struct {
        const char *name;
        double half;
    } cases[] = {{"cartpole", 0.05}, {"acrobot", 0.1}};
    for (size_t c = 0; c < 2; c++) {
        Env e, f;
        char err[LD_ERR_MAX];
        assert_int_equal(env_init(&e, cases[c].name, err), LD_OK);
        assert_int_equal(env_init(&f, cases[c].name, err), LD_OK);
        double sum[4] = {0}, lo = 1, hi = -1;
        int n = 2000, same_as_next = 0;
        for (int s = 0; s < n; s++) {
            float o1[ENV_MAX_OBS], o2[ENV_MAX_OBS];
            env_reset(&e, (uint64_t)s, o1);
            env_reset(&f, (uint64_t)s, o2);
            assert_memory_equal(e.state, f.state, sizeof e.state);
            assert_memory_equal(o1, o2, sizeof(float) * (size_t)e.cls->obs_dim);
            assert_int_equal(e.t, 0);
            env_reset(&f, (uint64_t)s + 1, NULL);
            if (memcmp(e.state, f.state, sizeof e.state) == 0) same_as_next++;
            for (int i = 0; i < 4; i++) {
                double v = e.state[i];
                sum[i] += v;
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                if (c == 1) assert_true(v == (double)(float)v);
            }
        }
        double worst = 0;
        for (int i = 0; i < 4; i++) worst = fmax(worst, fabs(sum[i] / n));
        double bound = 6 * (2 * cases[c].half / sqrt(12.0)) / sqrt((double)n);
        printf("%-8s reset over %d seeds: range [%.5f, %.5f] (box +-%.2f), |mean| max %.2e (bound %.2e)\n",
               cases[c].name, n, lo, hi, cases[c].half, worst, bound);
        assert_true(lo >= -cases[c].half && hi <= cases[c].half);
        assert_true(hi - lo > 1.9 * cases[c].half); /* fills the box */
        assert_true(worst < bound);
        assert_int_equal(same_as_next, 0);
    }
}

/* A uniformly random policy on CartPole-v1 lasts about 22 steps on average (the commonly quoted
 * figure for this environment); 1000 seeded episodes give a mean within 18..27. Every episode of
 * either environment ends by termination or at the 500-step limit, with the reward sum each
 * environment's rule implies. */
static void test_random_episodes(void **state) {
    (void)state;
    for (int c = 0; c < env_count(); c++) {
        const EnvClass *cls = env_at(c);
        Env e;
        char err[LD_ERR_MAX];
        assert_int_equal(env_init(&e, cls->name, err), LD_OK);
        LdRng pol;
        rng_seed(&pol, 99);
        int episodes = cls == &env_cartpole ? 1000 : 20;
        long total_steps = 0;
        int terminated = 0, truncated = 0;
        for (int ep = 0; ep < episodes; ep++) {
            float obs[ENV_MAX_OBS];
            env_reset(&e, 1000 + (uint64_t)ep, obs);
            double ret = 0;
            EnvStep st = {0};
            int steps = 0;
            while (!st.terminated && !st.truncated) {
                assert_int_equal(env_step(&e, (int)rng_below(&pol, (uint32_t)cls->n_actions), obs, &st, err), LD_OK);
                ret += st.reward;
                steps++;
                for (int i = 0; i < cls->obs_dim; i++) assert_true(isfinite(obs[i]));
            }
            assert_true(steps <= cls->max_steps);
            assert_true(st.terminated || steps == cls->max_steps);
            assert_int_equal(st.truncated, steps == cls->max_steps);
            double want = cls == &env_cartpole ? steps : -(double)steps + st.terminated;
            assert_true(ret == want);
            total_steps += steps;
            terminated += st.terminated;
            truncated += st.truncated && !st.terminated;
        }
        double mean = (double)total_steps / episodes;
        printf("%-8s random policy: %d episodes, mean length %.2f, %d terminated, %d truncated\n",
               cls->name, episodes, mean, terminated, truncated);
        if (cls == &env_cartpole) assert_true(mean > 18 && mean < 27);
    }
}

/* Tried as a new user would: an unknown environment, an action out of range, a step after the
 * end; each refused with a message and no change of state. */
static void test_bad_inputs(void **state) {
    (void)state;
    char err[LD_ERR_MAX] = "";
    Env e;
    assert_int_equal(env_init(&e, "builtin:cartpol", err), LD_EINVAL);
    printf("unknown: %s\n", err);
    assert_non_null(strstr(err, "builtin:cartpole"));
    assert_non_null(strstr(err, "builtin:acrobot"));
    assert_int_equal(env_init(&e, "acrobot", err), LD_OK);
    env_reset(&e, 5, NULL);
    Env before = e;
    EnvStep st;
    float obs[ENV_MAX_OBS];
    assert_int_equal(env_step(&e, 3, obs, &st, err), LD_EINVAL);
    printf("action: %s\n", err);
    assert_non_null(strstr(err, "[0, 3)"));
    assert_int_equal(env_step(&e, -1, obs, &st, err), LD_EINVAL);
    assert_memory_equal(&before, &e, sizeof e);
    /* run to the time limit with zero torque from a resting state (never terminates) */
    double rest[4] = {0, 0, 0, 0};
    env_set_state(&e, rest, obs);
    int n = 0;
    do {
        assert_int_equal(env_step(&e, 1, obs, &st, err), LD_OK);
        n++;
    } while (!st.truncated && !st.terminated);
    assert_int_equal(n, 500);
    assert_int_equal(st.terminated, 0);
    assert_int_equal(env_step(&e, 1, obs, &st, err), LD_ESTATE);
    printf("after the end: %s\n", err);
    assert_non_null(strstr(err, "reset"));
    env_reset(&e, 6, obs);
    assert_int_equal(env_step(&e, 1, obs, &st, err), LD_OK);
    assert_int_equal(e.t, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_trajectories),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_reset_distribution),
        cmocka_unit_test(test_random_episodes),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
