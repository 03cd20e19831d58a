/* test_rollout.c: returns, TD errors and GAE over a rollout with terminated and truncated
 * episode ends, and the categorical policy (log-softmax, entropy, their gradient, sampling),
 * against tests/rollout_ref.h (tests/gen_rollout_ref.py: the defining forward sums in float64,
 * gradients by central differences), plus the GAE identities at lambda 0 and 1; and the pieces
 * composed (environment, MLP policy, returns, policy gradient, Adam) into REINFORCE, which must
 * learn CartPole. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../evaluator/env.h"
#include "../evaluator/mlp.h"
#include "../evaluator/rollout.h"
#include "rollout_ref.h"

/* max |a - ref| / max(1, |ref|), printed against tol */
static double check(const char *what, const float *a, const double *ref, int n, double tol) {
    double md = 0;
    for (int i = 0; i < n; i++) md = fmax(md, fabs(a[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
    printf("%-40s maxdiff %.3e (tolerance %.0e) %s\n", what, md, tol, md <= tol ? "ok" : "FAIL");
    return md;
}

/* float32 inputs and outputs, sums in double: 1e-5 is about 100 float ulps at these sizes. */
#define TOL 1e-5

static void test_returns_td_gae(void **state) {
    (void)state;
    float ret[REF_T], td[REF_T], adv[REF_T], adv1[REF_T], adv0[REF_T];
    rl_returns(ret, ref_reward, ref_next_value, ref_term, ref_trunc, REF_GAMMA, REF_T);
    rl_td(td, ref_reward, ref_value, ref_next_value, ref_term, REF_GAMMA, REF_T);
    rl_gae(adv, td, ref_term, ref_trunc, REF_GAMMA, REF_LAMBDA, REF_T);
    rl_gae(adv1, td, ref_term, ref_trunc, REF_GAMMA, 1.0f, REF_T);
    memcpy(adv0, td, sizeof td);
    rl_gae(adv0, adv0, ref_term, ref_trunc, REF_GAMMA, 0.0f, REF_T); /* in place */
    int bad = 0;
    bad += check("returns (term at 6, trunc at 13, both at 19)", ret, ref_ret, REF_T, TOL) > TOL;
    bad += check("td errors", td, ref_td, REF_T, TOL) > TOL;
    bad += check("gae lambda 0.95", adv, ref_adv, REF_T, TOL) > TOL;
    bad += check("gae lambda 1", adv1, ref_adv1, REF_T, TOL) > TOL;
    /* identities: lambda 0 is td; lambda 1 is the return minus the value */
    double m0 = 0, m1 = 0;
    for (int t = 0; t < REF_T; t++) {
        m0 = fmax(m0, fabs(adv0[t] - td[t]));
        m1 = fmax(m1, fabs(adv1[t] - (ret[t] - ref_value[t])) / fmax(1.0, fabs(ret[t])));
    }
    printf("gae(0) - td %.3e (tolerance 0), gae(1) - (ret - v) %.3e (tolerance %.0e)\n", m0, m1, TOL);
    bad += m0 != 0 || m1 > TOL;
    /* the step before a terminal state does not see past it, the truncated step bootstraps */
    assert_true(ret[6] == ref_reward[6]);
    assert_true(fabsf(ret[13] - (ref_reward[13] + REF_GAMMA * ref_next_value[13])) < 1e-6f);
    assert_true(ret[19] == ref_reward[19]); /* terminated wins over truncated */
    assert_int_equal(bad, 0);
}

static void test_policy(void **state) {
    (void)state;
    float lsm[REF_B * REF_A], logp[REF_B], ent[REF_B], d[REF_B * REF_A], dp[REF_B * REF_A], de[REF_B * REF_A];
    rl_policy_forward(lsm, logp, ent, ref_logits, ref_action, REF_B, REF_A);
    int bad = 0;
    bad += check("log-softmax (incl. logits +-80)", lsm, ref_lsm, REF_B * REF_A, 1e-6) > 1e-6;
    bad += check("entropy", ent, ref_ent, REF_B, 1e-6) > 1e-6;
    for (int b = 0; b < REF_B; b++) assert_true(logp[b] == lsm[b * REF_A + ref_action[b]]);
    assert_true(fabsf(ent[5] - logf(3.0f)) < 1e-6f);
    rl_policy_backward(d, ref_dlogp, ref_dent, lsm, ref_action, REF_B, REF_A);
    bad += check("d(dlogp.logp + dent.ent)/dlogits vs FD", d, ref_grad, REF_B * REF_A, 1e-5) > 1e-5;
    /* the two halves add up to the whole */
    rl_policy_backward(dp, ref_dlogp, NULL, lsm, ref_action, REF_B, REF_A);
    rl_policy_backward(de, NULL, ref_dent, lsm, ref_action, REF_B, REF_A);
    double md = 0;
    for (int i = 0; i < REF_B * REF_A; i++) md = fmax(md, fabs(dp[i] + de[i] - d[i]));
    printf("logp part + entropy part - whole: %.3e (tolerance 1e-6)\n", md);
    bad += md > 1e-6;
    /* ent or logp may be omitted */
    float lsm2[REF_B * REF_A];
    rl_policy_forward(lsm2, NULL, NULL, ref_logits, ref_action, REF_B, REF_A);
    assert_memory_equal(lsm, lsm2, sizeof lsm);
    assert_int_equal(bad, 0);
}

/* 200,000 draws from p = (0.2, 0.5, 0.3): each frequency within 5 standard errors; the same
 * seed draws the same actions; greedy takes the argmax, the lowest index on ties. */
static void test_sampling(void **state) {
    (void)state;
    enum { N = 200000 };
    static float lsm[N * 3];
    static int a1[N], a2[N];
    const float p[3] = {0.2f, 0.5f, 0.3f};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 3; j++) lsm[i * 3 + j] = logf(p[j]);
    LdRng r1, r2;
    rng_seed(&r1, 17);
    rng_seed(&r2, 17);
    rl_policy_sample(a1, lsm, N, 3, &r1);
    rl_policy_sample(a2, lsm, N, 3, &r2);
    assert_memory_equal(a1, a2, sizeof a1);
    int count[3] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(a1[i] >= 0 && a1[i] < 3);
        count[a1[i]]++;
    }
    for (int j = 0; j < 3; j++) {
        double f = (double)count[j] / N, se = sqrt(p[j] * (1 - p[j]) / N);
        printf("action %d: frequency %.4f, p %.1f, %.1f standard errors\n", j, f, p[j], fabs(f - p[j]) / se);
        assert_true(fabs(f - p[j]) < 5 * se);
    }
    const float l[6] = {-1.0f, -0.5f, -0.5f, -2.0f, -3.0f, -0.1f};
    int g[2];
    rl_policy_greedy(g, l, 2, 3);
    assert_int_equal(g[0], 1);
    assert_int_equal(g[1], 2);
}


#define MAXT 500

/* Mean undiscounted return of the greedy policy over episodes seeded 10000.. (disjoint from the
 * training seeds). */
static double greedy_return(const Mlp *m, MlpActs *acts, int episodes) {
    Env e;
    char err[LD_ERR_MAX];
    assert_int_equal(env_init(&e, "cartpole", err), LD_OK);
    double total = 0;
    for (int ep = 0; ep < episodes; ep++) {
        float obs[ENV_MAX_OBS], lsm[2];
        env_reset(&e, 10000 + (uint64_t)ep, obs);
        EnvStep st = {0};
        while (!st.terminated && !st.truncated) {
            int a, dummy = 0;
            rl_policy_forward(lsm, NULL, NULL, mlp_forward(m, acts, obs, 1), &dummy, 1, 2);
            rl_policy_greedy(&a, lsm, 1, 2);
            assert_int_equal(env_step(&e, a, obs, &st, err), LD_OK);
            total += st.reward;
        }
    }
    return total / episodes;
}

/* One seeded REINFORCE run (Williams 1992) on CartPole-v1 from these pieces alone: a 4-32-2
 * tanh policy, one episode per update, loss -mean_t(logp_t * G_t) with the returns standardised
 * per episode, Adam 1e-2, 300 episodes. Returns the greedy policy's mean return over 20 held-out
 * episodes after training; *before gets it for the untrained policy. */
static double reinforce_run(uint64_t seed, double *before, double *late) {
    ModelSpec ms = {.nhidden = 1, .hidden = {32}, .act = ACT_TANH};
    Mlp m, g;
    size_t np = mlp_param_count(&ms, 4, 2);
    static float params[4096], grads[4096], mom[4096], vel[4096], actmem[1 << 16];
    static float xs[MAXT * 4], lsm[MAXT * 2], logp[MAXT], ret[MAXT], dlogp[MAXT], dlog[MAXT * 2], nextv[MAXT];
    static int acts_taken[MAXT];
    static uint8_t term[MAXT], trunc[MAXT];
    assert_true(np <= 4096);
    mlp_bind(&m, &ms, 4, 2, params);
    mlp_bind_like(&g, &m, grads);
    mlp_init(&m, 11 + seed);
    MlpActs acts;
    assert_true(mlp_acts_floats(&m, MAXT) <= sizeof actmem / sizeof actmem[0]);
    mlp_acts_bind(&acts, &m, MAXT, actmem);
    TrainSpec ts = {.optimizer = OPT_ADAM, .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .adam_eps = 1e-8f};
    Optim opt;
    memset(mom, 0, sizeof mom); /* Adam's moments start at zero in every run */
    memset(vel, 0, sizeof vel);
    optim_init(&opt, &ts, np, mom, vel);
    *before = greedy_return(&m, &acts, 20);
    Env e;
    char err[LD_ERR_MAX];
    assert_int_equal(env_init(&e, "cartpole", err), LD_OK);
    LdRng r;
    rng_seed(&r, 5 + seed);
    *late = 0;
    for (int ep = 0; ep < 300; ep++) {
        float obs[ENV_MAX_OBS];
        env_reset(&e, (uint64_t)ep, obs);
        EnvStep st = {0};
        int T = 0;
        float rew[MAXT];
        while (!st.terminated && !st.truncated) {
            memcpy(xs + T * 4, obs, sizeof(float) * 4);
            float l[2];
            int dummy = 0;
            rl_policy_forward(l, NULL, NULL, mlp_forward(&m, &acts, obs, 1), &dummy, 1, 2);
            rl_policy_sample(&acts_taken[T], l, 1, 2, &r);
            assert_int_equal(env_step(&e, acts_taken[T], obs, &st, err), LD_OK);
            rew[T] = st.reward;
            term[T] = (uint8_t)st.terminated;
            trunc[T] = (uint8_t)st.truncated;
            nextv[T] = 0; /* no critic: a truncated end bootstraps from 0 */
            T++;
        }
        if (ep >= 250) *late += T / 50.0;
        rl_returns(ret, rew, nextv, term, trunc, 0.99f, T);
        double mean = 0, var = 0;
        for (int t = 0; t < T; t++) mean += ret[t] / T;
        for (int t = 0; t < T; t++) var += (ret[t] - mean) * (ret[t] - mean) / T;
        double sd = sqrt(var) + 1e-8;
        for (int t = 0; t < T; t++) dlogp[t] = (float)(-((ret[t] - mean) / sd) / T); /* d loss / d logp_t */
        rl_policy_forward(lsm, logp, NULL, mlp_forward(&m, &acts, xs, T), acts_taken, T, 2);
        rl_policy_backward(dlog, dlogp, NULL, lsm, acts_taken, T, 2);
        mlp_backward(&m, &acts, &g, xs, dlog, T);
        optim_step(&opt, params, grads);
    }
    return greedy_return(&m, &acts, 20);
}

/* Three seeded runs: the median greedy return must reach 100 (random actions last about 22
 * steps; an untrained policy's greedy return is typically about 10). Trajectories are chaotic in
 * the last bits of the arithmetic, so builds differ: over seeds 0-8, this -O2 build reached
 * 459-500 and the -O1 sanitizer build 136-500, except seed 1, which collapses to one action in
 * both (9.6; a known failure mode of REINFORCE without an entropy bonus) and is among the three.
 * A check that the signs and shapes compose, not a benchmark of the algorithm. */
static void test_reinforce_learns(void **state) {
    (void)state;
    mlp_blas_once();
    double after[3], before, late;
    for (int s = 0; s < 3; s++) {
        after[s] = reinforce_run((uint64_t)s, &before, &late);
        printf("REINFORCE on CartPole-v1, seed %d: greedy return %.1f untrained, %.1f after 300 episodes; "
               "episodes 250-299 lasted %.1f steps\n", s, before, after[s], late);
    }
    double lo = fmin(after[0], fmin(after[1], after[2])), hi = fmax(after[0], fmax(after[1], after[2]));
    double median = after[0] + after[1] + after[2] - lo - hi;
    printf("median %.1f (bound >= 100)\n", median);
    assert_true(median >= 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_returns_td_gae),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_reinforce_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
