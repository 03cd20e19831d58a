#!/usr/bin/env python3
"""ab_builds.py: the same results rows searched by two or more lossd builds, to compare a search
change: for each row of bench/jobs/ and search seed, each build's pick (the best non-baseline,
non-collapsed leaderboard entry) is re-trained on seeds 101-110 (`lossd eval --batch`, test
split); prints each pick and, per build, the mean and sd over searches and the mean
`stats.filtered_share` (candidates never run at full fidelity). Standard library only.

    BINS="/tmp/old/lossd bin/lossd" ROWS="noisy_labels outliers" SEEDS="1 2 3 4 5" bench/ab_builds.py
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import optuna_peer  # noqa: E402  (Batch, write_task: standard library only)
import results  # noqa: E402

ROOT = results.ROOT
BINS = os.environ["BINS"].split()
ROWS = os.environ.get("ROWS", "noisy_labels imbalanced outliers").split()
SEEDS = [int(x) for x in os.environ.get("SEEDS", "1 2 3 4 5 6 7 8 9 10").split()]
JUDGE = list(range(101, 111))
LOWER_BETTER = {"outliers", "poisson", "oscillator"}


def pick(rep):
    for e in rep["leaderboard"]:
        if not e["baseline"] and not e.get("collapsed"):
            return e
    return next(e for e in rep["leaderboard"] if not e["baseline"])


def main():
    for row in ROWS:
        job = os.path.join(ROOT, "bench", "jobs", row + ".json")
        spec = json.load(open(job))
        task = optuna_peer.write_task(job, spec["tasks"][0], "/tmp", "ab_" + row)
        for b in BINS:
            batch = optuna_peer.Batch(b, task, results.WORKERS)
            means, filtered = [], []
            for s in SEEDS:
                r = subprocess.run(results.NICE + [b, "search", job, "--workers", str(results.WORKERS),
                                                   "--quiet", "--seed", str(s)],
                                   capture_output=True, text=True, cwd=ROOT, check=True)
                rep = json.loads(r.stdout)
                e = pick(rep)
                st = rep["stats"]
                filtered.append(st.get("filtered_share", 1 - st["promotions"] / st["generated"]))
                ans = batch.run([(e["expr"], j) for j in JUDGE])
                means.append(statistics.mean(a["test"] for a in ans if a.get("status") == "ok"))
                print(row, b, s, e["expr"], round(means[-1], 5), flush=True)
            batch.close()
            print(f"## {row} {b}: mean {statistics.mean(means):.5g} sd {statistics.stdev(means):.3g} "
                  f"over {len(means)} searches; filtered {statistics.mean(filtered):.3f}", flush=True)


if __name__ == "__main__":
    main()
