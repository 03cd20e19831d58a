#!/usr/bin/env python3
"""rl_results.py: the rl family's results row (docs/rl.md, "Measured"): a short loss search on
CartPole-v1, then the winner re-trained on fresh seeds and judged on the test episodes (seeds
disjoint from training and from the validation episodes the search selected on), paired seed by
seed against the textbook baselines `a2c - 0.01*ent + 0.5*td2` (the family's baseline) and
`reinforce` (REINFORCE on the n-step return, no critic loss), then transferred unchanged to
Acrobot-v1. Kept short on purpose (the machine is shared): one search of --evals evaluations
(--search-seeds seeds each, every one at the task's full 400 updates), --seeds fresh seeds per
loss; 5-10 minutes on 2 shared cores.

Usage: bench/rl_results.py [--bin DIR] [--evals N] [--search-seeds N] [--final-top N] [--final-seeds N]
                           [--seeds N] [--acrobot-seeds N]
Prints the search's winner, a markdown table and the paired differences."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = ("a2c - 0.01*ent + 0.5*td2", "reinforce")


def run_batch(lossd, task, losses, seeds, workers=2):
    lines = [json.dumps({"loss": l, "seed": s, "id": "%d:%d" % (i, s)}) for i, l in enumerate(losses) for s in seeds]
    out = subprocess.run([lossd, "eval", "--task", task, "--batch", "-", "--workers", str(workers)],
                         input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        r = json.loads(line)
        i, s = (int(x) for x in r["id"].split(":"))
        res[(losses[i], s)] = r
    return res


def mean_sd(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def paired(res, a, b, seeds, key="test"):
    d = [res[(a, s)][key] - res[(b, s)][key] for s in seeds]
    m, sd = mean_sd(d)
    se = sd / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    wins = sum(x > 0 for x in d)
    ties = sum(x == 0 for x in d)
    return m, se, wins, ties


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")))
    ap.add_argument("--evals", type=int, default=120)
    ap.add_argument("--search-seeds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--acrobot-seeds", type=int, default=10)
    ap.add_argument("--final-top", type=int, default=4)
    ap.add_argument("--final-seeds", type=int, default=4)
    args = ap.parse_args()
    lossd = os.path.join(args.bin, "lossd")
    tmp = tempfile.mkdtemp(prefix="rl_results.")
    cp = os.path.join(tmp, "cartpole.task.json")
    ac = os.path.join(tmp, "acrobot.task.json")
    json.dump({"data": "builtin:cartpole"}, open(cp, "w"))
    json.dump({"data": "builtin:acrobot"}, open(ac, "w"))
    job = os.path.join(tmp, "job.json")
    json.dump({"name": "cartpole-results", "tasks": ["cartpole.task.json"], "population": 8, "children": 6,
               "budget": {"evaluations": args.evals}, "seeds": args.search_seeds,
               "final": {"top": args.final_top, "seeds": args.final_seeds}, "seed": 7,
               # one fidelity level: a policy after a quarter of its updates says little about
               # the one after all of them (advantage clipping trails at 100 updates and leads at
               # 400), so every candidate trains for the task's full 400 updates
               "fidelity": {"fractions": [1.0]}}, open(job, "w"))
    rep = json.loads(subprocess.run([lossd, "search", job], capture_output=True, text=True, check=True,
                                    cwd=tmp).stdout)
    stats = rep.get("stats", rep)
    winner = stats.get("best_expr") or rep["leaderboard"][0]["expr"]
    print("search: %d evaluations on cartpole (%d seeds each, validation episodes), winner: %s (fitness %s)"
          % (args.evals, args.search_seeds, winner, stats.get("best_fitness")))
    for i, row in enumerate(rep.get("leaderboard", [])[:6]):
        print("  leaderboard %d: %s (fitness %s)" % (i + 1, row.get("expr"), row.get("fitness")))
    losses = [winner] + [b for b in BASELINES if b != winner]
    seeds = list(range(100, 100 + args.seeds))
    res = run_batch(lossd, cp, losses, seeds)
    aseeds = list(range(200, 200 + args.acrobot_seeds))
    ares = run_batch(lossd, ac, losses, aseeds) if args.acrobot_seeds else {}
    print()
    print("| loss | CartPole test return (mean ± sd, %d seeds) | steps to 475 (median) | Acrobot test return (%d seeds) |"
          % (len(seeds), len(aseeds)))
    print("|---|---|---|---|")
    for l in losses:
        ok = [res[(l, s)] for s in seeds if res[(l, s)]["status"] == "ok"]
        m, sd = mean_sd([r["test"] for r in ok])
        st = sorted(r["metrics"]["steps_to_threshold"]["test"] for r in ok)
        acr = ""
        if ares:
            aok = [ares[(l, s)]["test"] for s in aseeds if ares[(l, s)]["status"] == "ok"]
            am, asd = mean_sd(aok)
            acr = "%.1f ± %.1f" % (am, asd)
        name = ("`%s` (searched)" % l) if l == winner else "`%s`" % l
        print("| %s | %.1f ± %.1f | %d | %s |" % (name, m, sd, st[len(st) // 2], acr))
    print()
    for b in losses[1:]:
        m, se, w, t = paired(res, winner, b, seeds)
        line = "winner - `%s` on CartPole test: %+.1f ± %.1f (se), winner ahead on %d of %d seeds (%d ties)" % (
            b, m, se, w, len(seeds), t)
        if ares:
            am, ase, aw, at = paired(ares, winner, b, aseeds)
            line += "; Acrobot: %+.1f ± %.1f, ahead on %d of %d" % (am, ase, aw, len(aseeds))
        print(line)


if __name__ == "__main__":
    sys.exit(main())
