#!/usr/bin/env python3
"""deploy_results.py: the deployment results row (docs/rl.md, "Deployment precision"): a short
loss search on digits with a narrow model (hidden 16) scored at int8 (examples/digits_int8.task.json:
selection on the deployed validation accuracy), then the winner and cross-entropy re-trained on
--seeds fresh seeds: int8 test accuracy paired seed by seed, and each loss's fp32-to-int8 drop
(accuracy_fp32 - accuracy on the test split, the same trained weights). A few seconds.

Usage: bench/deploy_results.py [--bin DIR] [--evals N] [--seeds N]"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mean_se(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd / math.sqrt(len(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")))
    ap.add_argument("--evals", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    lossd = os.path.join(args.bin, "lossd")
    task = os.path.join(ROOT, "examples", "digits_int8.task.json")
    tmp = tempfile.mkdtemp(prefix="deploy_results.")
    job = os.path.join(tmp, "job.json")
    json.dump({"name": "digits-int8", "tasks": [task], "baseline": "ce", "population": 12, "children": 8,
               "budget": {"evaluations": args.evals}, "seeds": 2, "final": {"top": 3, "seeds": 3}, "seed": 5},
              open(job, "w"))
    rep = json.loads(subprocess.run([lossd, "search", job], capture_output=True, text=True, check=True).stdout)
    winner = rep["stats"].get("best_expr") or rep["leaderboard"][0]["expr"]
    print("search: %d evaluations on digits hidden 16 at int8, winner: %s" % (args.evals, winner))
    losses = [winner] if winner == "ce" else [winner, "ce"]
    seeds = list(range(100, 100 + args.seeds))
    lines = [json.dumps({"loss": l, "seed": s, "id": "%d:%d" % (i, s)}) for i, l in enumerate(losses) for s in seeds]
    out = subprocess.run([lossd, "eval", "--task", task, "--batch", "-", "--workers", "2"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        r = json.loads(line)
        i, s = (int(x) for x in r["id"].split(":"))
        res[(losses[i], s)] = r
    print()
    print("| loss | int8 test accuracy (mean ± se, %d seeds) | fp32 test accuracy | fp32 → int8 drop |" % len(seeds))
    print("|---|---|---|---|")
    for l in losses:
        q = [res[(l, s)]["metrics"]["accuracy"]["test"] for s in seeds]
        f = [res[(l, s)]["metrics"]["accuracy_fp32"]["test"] for s in seeds]
        (qm, qse), (fm, fse) = mean_se(q), mean_se(f)
        dm, dse = mean_se([a - b for a, b in zip(f, q)])
        print("| `%s`%s | %.4f ± %.4f | %.4f ± %.4f | %.4f ± %.4f |" % (l, " (searched)" if l == winner else "", qm, qse,
                                                                      fm, fse, dm, dse))
    if len(losses) == 2:
        d = [res[(winner, s)]["test"] - res[("ce", s)]["test"] for s in seeds]
        m, se = mean_se(d)
        print("\nwinner - ce, int8 test accuracy: %+.4f ± %.4f (se), winner ahead on %d of %d seeds, %d ties"
              % (m, se, sum(x > 0 for x in d), len(d), sum(x == 0 for x in d)))


if __name__ == "__main__":
    sys.exit(main())
