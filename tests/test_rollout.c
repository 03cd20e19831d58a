/* test_rollout.c: returns, TD errors and GAE over a rollout with terminated and truncated
 * episode ends, and the categorical policy (log-softmax, entropy, their gradient, sampling),
 * against tests/rollout_ref.h (tests/gen_rollout_ref.py: the defining forward sums in float64,
 * gradients by central differences), plus the GAE identities at lambda 0 and 1. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_returns_td_gae),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
