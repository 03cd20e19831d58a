/* rollout.c: returns, TD errors and GAE over a rollout with episode boundaries, and the
 * categorical policy's log-probabilities, entropy, gradients and sampling (see rollout.h). */
#include "rollout.h"

#include <math.h>

void rl_returns(float *ret, const float *reward, const float *next_value, const uint8_t *term,
                const uint8_t *trunc, float gamma, int T) {
    double g = 0;
    for (int t = T - 1; t >= 0; t--) {
        if (term[t]) g = reward[t];
        else if (trunc[t] || t == T - 1) g = reward[t] + (double)gamma * next_value[t];
        else g = reward[t] + (double)gamma * g;
        ret[t] = (float)g;
    }
}

void rl_td(float *td, const float *reward, const float *value, const float *next_value, const uint8_t *term,
           float gamma, int T) {
    for (int t = 0; t < T; t++)
        td[t] = reward[t] + (term[t] ? 0.0f : gamma * next_value[t]) - value[t];
}

void rl_gae(float *adv, const float *td, const uint8_t *term, const uint8_t *trunc, float gamma, float lambda,
            int T) {
    double a = 0;
    for (int t = T - 1; t >= 0; t--) {
        int cut = term[t] || trunc[t] || t == T - 1;
        a = td[t] + (cut ? 0.0 : (double)gamma * lambda * a);
        adv[t] = (float)a;
    }
}

void rl_advn(float *advn, const float *adv, int n) {
    double m = 0, ss = 0;
    for (int i = 0; i < n; i++) m += adv[i];
    m = n > 0 ? m / n : 0;
    for (int i = 0; i < n; i++) ss += ((double)adv[i] - m) * ((double)adv[i] - m);
    double sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
    for (int i = 0; i < n; i++) advn[i] = (float)(((double)adv[i] - m) / (sd + EXPR_ADVN_EPS));
}

void rl_policy_forward(float *lsm, float *logp, float *ent, const float *logits, const int *action, int B, int A) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * A;
        float *l = lsm + (size_t)b * A;
        float mx = z[0];
        for (int j = 1; j < A; j++) mx = z[j] > mx ? z[j] : mx;
        double s = 0;
        for (int j = 0; j < A; j++) s += exp((double)z[j] - mx);
        double lse = mx + log(s), h = 0;
        for (int j = 0; j < A; j++) {
            l[j] = (float)(z[j] - lse);
            h -= exp((double)l[j]) * l[j];
        }
        if (logp) logp[b] = l[action[b]];
        if (ent) ent[b] = (float)h;
    }
}

void rl_policy_backward(float *dlogits, const float *dlogp, const float *dent, const float *lsm, const int *action,
                        int B, int A) {
    for (int b = 0; b < B; b++) {
        const float *l = lsm + (size_t)b * A;
        float *d = dlogits + (size_t)b * A;
        double gp = dlogp ? dlogp[b] : 0, ge = dent ? dent[b] : 0, h = 0;
        if (ge != 0)
            for (int j = 0; j < A; j++) h -= exp((double)l[j]) * l[j];
        for (int j = 0; j < A; j++) {
            double p = exp((double)l[j]);
            d[j] = (float)(gp * ((j == action[b]) - p) - ge * p * (l[j] + h));
        }
    }
}

void rl_policy_sample(int *action, const float *lsm, int B, int A, LdRng *r) {
    for (int b = 0; b < B; b++) {
        const float *l = lsm + (size_t)b * A;
        double u = rng_uniform(r), c = 0;
        int a = A - 1; /* rounding can leave the sum a hair below u: the last action then */
        for (int j = 0; j < A; j++) {
            c += exp((double)l[j]);
            if (u < c) {
                a = j;
                break;
            }
        }
        action[b] = a;
    }
}

void rl_policy_greedy(int *action, const float *lsm, int B, int A) {
    for (int b = 0; b < B; b++) {
        const float *l = lsm + (size_t)b * A;
        int a = 0;
        for (int j = 1; j < A; j++)
            if (l[j] > l[a]) a = j;
        action[b] = a;
    }
}
