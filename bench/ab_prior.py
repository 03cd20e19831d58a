#!/usr/bin/env python3
"""ab_prior.py: does the pre-screen's prior help a new job warm-started on a database of earlier
jobs? For each results row of bench/jobs/ (ROWS) and new search seed (SEEDS), each build (BINS)
runs `lossd search JOB --db COPY --seed S` on a fresh copy of the database DB (earlier jobs
only: the new searches never see each other); both builds warm-start from DB, and a build with
the prior also hands its rows to the pre-screen. Prints, per row and build, the filtered share
(candidates never run at full fidelity), what the pre-screen skipped and its hit rate, the rows
it learned from, and the picks re-trained on seeds 101-110 (test split, mean and sd over the
searches; `lossd eval --batch`, the same judge as bench/ab_builds.py). Standard library only.

    DB=/tmp/prior.db BINS="OLD/lossd bin/lossd" ROWS="noisy_labels" SEEDS="11 12 13" bench/ab_prior.py

DB is made beforehand by searches of the same rows on other seeds, e.g.
    for s in 1 2 3 4 5; do bin/lossd search bench/jobs/ROW.json --seed $s --db /tmp/prior.db; done
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab_builds  # noqa: E402  (pick)
import optuna_peer  # noqa: E402  (Batch, write_task)
import results  # noqa: E402

ROOT = results.ROOT
DB = os.environ["DB"]
BINS = os.environ["BINS"].split()
ROWS = os.environ.get("ROWS", "noisy_labels imbalanced outliers").split()
SEEDS = [int(x) for x in os.environ.get("SEEDS", "11 12 13 14 15").split()]
JUDGE = list(range(101, 111))


def main():
    tmp = tempfile.mkdtemp(prefix="ab_prior.")
    try:
        for row in ROWS:
            job = os.path.join(ROOT, "bench", "jobs", row + ".json")
            spec = json.load(open(job))
            task = optuna_peer.write_task(job, spec["tasks"][0], tmp, "abp_" + row)
            for b in BINS:
                batch = optuna_peer.Batch(b, task, results.WORKERS)
                means, filt, sk, hw, ho, lw, lt, prior = [], [], 0, 0, 0, 0, 0, 0
                for s in SEEDS:
                    db = os.path.join(tmp, "copy.db")
                    for ext in ("", "-wal", "-shm", ".lock"):
                        if os.path.exists(db + ext):
                            os.remove(db + ext)
                    shutil.copy(DB, db)
                    r = subprocess.run(results.NICE + [b, "search", job, "--workers", str(results.WORKERS),
                                                       "--quiet", "--seed", str(s), "--db", db],
                                       capture_output=True, text=True, cwd=ROOT, check=True)
                    rep = json.loads(r.stdout)
                    st = rep["stats"]
                    ps = st["prescreen"]
                    filt.append(st["filtered_share"])
                    sk += ps["skipped"]
                    hw += ps["held_out_below_median"]
                    ho += ps["held_out_trained"]
                    lw += ps["let_through_below_median"]
                    lt += ps["let_through_trained"]
                    prior += ps.get("prior_used", 0)
                    e = ab_builds.pick(rep)
                    ans = batch.run([(e["expr"], j) for j in JUDGE])
                    means.append(statistics.mean(a["test"] for a in ans if a.get("status") == "ok"))
                    print(row, b, s, e["expr"], round(means[-1], 5), f"filtered {st['filtered_share']:.3f}",
                          f"skipped {ps['skipped']}", f"prior rows {ps.get('prior_used', 0)}", flush=True)
                batch.close()
                print(f"## {row} {b}: picks {statistics.mean(means):.5g} sd {statistics.stdev(means):.3g} over "
                      f"{len(means)} searches; filtered {statistics.mean(filt):.3f} (min {min(filt):.3f}); "
                      f"skipped {sk}; hit rate {hw}/{ho} = {hw / max(ho, 1):.2f}, let through below the median "
                      f"{lw}/{lt} = {lw / max(lt, 1):.2f}; prior rows used {prior / len(SEEDS):.0f} per search",
                      flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
