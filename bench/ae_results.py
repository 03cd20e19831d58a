#!/usr/bin/env python3
"""ae_results.py: the generative family's results row (docs/results.md, "Generative: autoencoder"):
an autoencoder on the digits with 30% of the training pixels set to 0 or 1 at random (salt and
pepper, transform.pixel_noise; validation and test pixels clean). A short loss search selects on
the validation split's rec_accuracy (the fixed digits classifier's accuracy on the
reconstructions); then its winner, the baseline `rec` and the textbook `bce_rec` and `rec + 0.1*perc` are re-trained on
fresh seeds the search never saw and judged on the test split, paired seed by seed. Kept short on
purpose (the machine is shared): --search-seeds searches of --evals evaluations each.

Usage: bench/ae_results.py [--bin DIR] [--evals N] [--search-seeds N] [--seeds N]
Prints each search's winner, a markdown table and the paired differences."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = ("rec", "bce_rec", "rec + 0.1*perc")  # the baseline, then textbook references
TASK = {"name": "digits-ae-noisy", "family": "generative", "data": "builtin:digits",
        "transform": {"pixel_noise": 0.3}, "model": {"kind": "autoencoder", "hidden": [32], "latent": 8},
        "train": {"steps": 300}}


def run_batch(lossd, task, losses, seeds, workers=2):
    lines = [json.dumps({"loss": l, "seed": s, "id": "%d:%d" % (i, s)}) for i, l in enumerate(losses) for s in seeds]
    out = subprocess.run(["nice", "-n", "19", lossd, "eval", "--task", task, "--batch", "-", "--workers",
                          str(workers)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         check=True).stdout
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


def student_p(t, df):
    """Two-sided p of Student's t (numerical integration of the density; df small)."""
    if t is None:
        return float("nan")
    t = abs(t)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    n, hi = 20000, t
    h = hi / n
    area = sum(c * (1 + ((k + 0.5) * h) ** 2 / df) ** (-(df + 1) / 2) for k in range(n)) * h
    return max(0.0, 1.0 - 2 * area)


def paired(res, a, b, seeds, key="test"):
    d = [res[(a, s)][key] - res[(b, s)][key] for s in seeds]
    m, sd = mean_sd(d)
    se = sd / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    t = m / se if se and se > 0 else None
    return m, se, sum(x > 0 for x in d), sum(x == 0 for x in d), student_p(t, len(d) - 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")))
    ap.add_argument("--evals", type=int, default=150)
    ap.add_argument("--search-seeds", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    lossd = os.path.join(args.bin, "lossd")
    tmp = tempfile.mkdtemp(prefix="ae_results.")
    task = os.path.join(tmp, "ae.task.json")
    json.dump(TASK, open(task, "w"))
    winners = []
    for ss in range(1, args.search_seeds + 1):
        job = os.path.join(tmp, "job%d.json" % ss)
        json.dump({"name": "ae-results", "tasks": ["ae.task.json"], "population": 12, "children": 8,
                   "budget": {"evaluations": args.evals}, "seeds": 2, "final": {"top": 3, "seeds": 4},
                   "seed": ss}, open(job, "w"))
        rep = json.loads(subprocess.run(["nice", "-n", "19", lossd, "search", job, "--quiet"], capture_output=True,
                                        text=True, check=True, cwd=tmp).stdout)
        best = next(e for e in rep["leaderboard"] if e["op"] != "baseline" and e["expr"] not in BASELINES)
        winners.append(best["expr"])
        print("search seed %d: %d evaluations, winner %s (validation fitness %+.4f)"
              % (ss, rep["evaluations"], best["expr"], best["fitness"]))
    losses = list(dict.fromkeys(winners + list(BASELINES)))
    seeds = list(range(100, 100 + args.seeds))
    res = run_batch(lossd, task, losses, seeds)
    print()
    print("| loss | test rec_accuracy (mean ± sd, %d fresh seeds) | test rec_mse |" % len(seeds))
    print("|---|---|---|")
    for l in losses:
        ok = [res[(l, s)] for s in seeds if res[(l, s)]["status"] == "ok"]
        m, sd = mean_sd([r["test"] for r in ok])
        mm, _ = mean_sd([r["metrics"]["rec_mse"]["test"] for r in ok])
        name = ("`%s` (searched)" % l) if l in winners else "`%s`" % l
        print("| %s | %.4f ± %.4f (%d ok) | %.4f |" % (name, m, sd, len(ok), mm))
    print()
    for w in dict.fromkeys(winners):
        for b in BASELINES:
            m, se, k, t, p = paired(res, w, b, seeds)
            print("`%s` - `%s` on test rec_accuracy: %+.4f ± %.4f (se), p = %.3g, ahead on %d of %d seeds (%d ties)"
                  % (w, b, m, se, p, k, len(seeds), t))


if __name__ == "__main__":
    sys.exit(main())
