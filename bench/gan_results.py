#!/usr/bin/env python3
"""gan_results.py: the GAN results row (docs/results.md row (2) of issue 9; docs/families.md,
"GANs: measured"): a short search for the generator's loss of a GAN on the digits pixels (the
discriminator trains on nsgan), selected on the validation split's Frechet distance in the fixed
digits network's features, then the winner re-trained on fresh seeds and judged on the test
split's Frechet distance, paired seed by seed against `nsgan` (the non-saturating generator
loss). Lower is better. Kept short on purpose (the machine is shared): one search of --evals
evaluations (--search-seeds seeds each), --seeds fresh seeds per loss; a few minutes on 2 cores.

Usage: bench/gan_results.py [--bin DIR] [--evals N] [--search-seeds N] [--seeds N] [--steps N]
Prints the search's winner, a markdown table and the paired difference."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

from rl_results import mean_sd, run_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = "nsgan"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")))
    ap.add_argument("--evals", type=int, default=60)
    ap.add_argument("--search-seeds", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    lossd = os.path.abspath(os.path.join(args.bin, "lossd"))
    tmp = tempfile.mkdtemp(prefix="gan_results.")
    task = os.path.join(tmp, "gan.task.json")
    json.dump({"name": "digits-gan", "family": "generative", "data": "builtin:digits",
               "model": {"kind": "gan"}, "train": {"steps": args.steps}}, open(task, "w"))
    job = os.path.join(tmp, "job.json")
    json.dump({"name": "gan-results", "tasks": ["gan.task.json"], "baseline": BASELINE,
               "space": {"terms": ["gan", "nsgan", "wgan", "hinge_gan"],
                         "primitives": ["dgz", "t", "+", "-", "*", "softplus", "sigmoid", "log", "exp", "tanh"],
                         "max_nodes": 10, "max_depth": 5},
               "population": 8, "children": 6, "budget": {"evaluations": args.evals},
               "seeds": args.search_seeds, "fidelity": {"fractions": [0.3, 1.0], "promote": 0.34},
               "final": {"top": 2, "seeds": 3}, "seed": 7}, open(job, "w"))
    rep = json.loads(subprocess.run(["nice", "-n", "19", lossd, "search", job, "--workers", "2", "--quiet"],
                                    capture_output=True, text=True, check=True, cwd=tmp).stdout)
    board = [e for e in rep["leaderboard"] if not e.get("baseline")]
    winner = board[0]["expr"] if board else BASELINE
    print("search: %d evaluations (%d seeds each, validation fid), %.0f s; winner: %s (fitness %s)"
          % (rep.get("evaluations", args.evals), args.search_seeds, rep.get("wall_s", 0), winner,
             board[0].get("fitness") if board else None))
    losses = [winner] + ([BASELINE] if winner != BASELINE else [])
    seeds = list(range(100, 100 + args.seeds))
    res = run_batch(lossd, task, losses, seeds)  # (run the script under nice: the machine is shared)
    print()
    print("| loss | test fid (mean ± sd, %d seeds) | test coverage (mean) | failed |" % len(seeds))
    print("|---|---|---|---|")
    for l in losses:
        ok = [res[(l, s)] for s in seeds if res[(l, s)]["status"] == "ok"]
        m, sd = mean_sd([r["test"] for r in ok])
        cov = sum(r["metrics"]["coverage"]["test"] for r in ok) / len(ok)
        name = ("`%s` (searched)" % l) if l == winner else "`%s`" % l
        print("| %s | %.3f ± %.3f | %.2f | %d |" % (name, m, sd, cov, len(seeds) - len(ok)))
    if len(losses) > 1:
        both = [s for s in seeds if all(res[(l, s)]["status"] == "ok" for l in losses)]
        d = [res[(winner, s)]["test"] - res[(BASELINE, s)]["test"] for s in both]
        m, sd = mean_sd(d)
        se = sd / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        print()
        print("winner - `%s` on test fid: %+.3f ± %.3f (se), winner better (lower) on %d of %d seeds"
              % (BASELINE, m, se, sum(x < 0 for x in d), len(d)))


if __name__ == "__main__":
    sys.exit(main())
