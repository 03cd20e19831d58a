/* rollout.h: the quantities a policy-gradient or actor-critic loss is written in, computed from
 * collected experience, independent of how the loss is expressed: discounted returns, TD errors
 * and generalised advantage estimates with Gymnasium's terminated/truncated distinction, and a
 * categorical policy's sampling, log-probabilities and entropy with their gradients. Nothing
 * here allocates or keeps global state. */
#ifndef ROLLOUT_H
#define ROLLOUT_H

#include <stdint.h>

#include "../common/lossd.h"
#include "../lang/expr.h"

/* A rollout is T consecutive transitions of one environment, possibly spanning episodes. For
 * step t: reward[t] = r_t, value[t] = V(s_t), next_value[t] = V(s_{t+1}) where s_{t+1} is the
 * observation the step returned (for a step that ended an episode: its final observation, not
 * the next episode's first), term[t] / trunc[t] the step's flags. A terminated step's future is
 * worth 0; a truncated step (time limit) and the rollout's last step, when not terminated,
 * bootstrap from next_value (Pardo et al., "Time limits in reinforcement learning", ICML 2018;
 * as Stable-Baselines3 and CleanRL handle Gymnasium's truncation). */

/* ret (T) = discounted returns G_t = r_t + gamma G_{t+1} within an episode, G_t = r_t at a
 * terminated step, r_t + gamma next_value[t] at a truncated step or at t = T-1 not terminated. */
void rl_returns(float *ret, const float *reward, const float *next_value, const uint8_t *term,
                const uint8_t *trunc, float gamma, int T);
/* td (T) = r_t + gamma (1 - term_t) next_value[t] - value[t] */
void rl_td(float *td, const float *reward, const float *value, const float *next_value, const uint8_t *term,
           float gamma, int T);
/* adv (T) = GAE(gamma, lambda) of td (Schulman et al. 2016): A_t = td_t + gamma lambda A_{t+1},
 * the sum cut where an episode ends (term or trunc at t) and at t = T-1. lambda = 0 gives td,
 * lambda = 1 gives ret - value. adv may be td. */
void rl_gae(float *adv, const float *td, const uint8_t *term, const uint8_t *trunc, float gamma, float lambda,
            int T);
/* advn (n) = (adv - mean) / (sd + 1e-8) over the n advantages of one update (the loss language's
 * advn: advantage normalisation as PPO and A2C implementations apply it), sd the sample standard
 * deviation (divided by n - 1, as torch.std), sums in double, EXPR_ADVN_EPS (lang/expr.h); n = 1
 * gives 0. advn may be adv. */
void rl_advn(float *advn, const float *adv, int n);

/* ---- a categorical policy over A actions from logits (B,A) */

/* lsm (B,A) = log-softmax of logits; logp (B) = lsm of the taken action[b]; ent (B) = entropy
 * -sum_j p_j log p_j. logp or ent may be NULL. Stable for any finite logits. */
void rl_policy_forward(float *lsm, float *logp, float *ent, const float *logits, const int *action, int B, int A);
/* dlogits (B,A) OVERWRITTEN with d(sum_b dlogp[b] logp[b] + dent[b] ent[b]) / dlogits, from the
 * forward's lsm: dlogp (1[j = a] - p_j) - dent p_j (log p_j + ent). dlogp or dent may be NULL
 * (zero). */
void rl_policy_backward(float *dlogits, const float *dlogp, const float *dent, const float *lsm, const int *action,
                        int B, int A);
/* action (B) drawn from the policy exp(lsm) with r (inverse CDF on one uniform per row). */
void rl_policy_sample(int *action, const float *lsm, int B, int A, LdRng *r);
/* action (B) = argmax of lsm per row, the lowest index on ties: the greedy evaluation policy. */
void rl_policy_greedy(int *action, const float *lsm, int B, int A);

#endif
