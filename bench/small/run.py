#!/usr/bin/env python3
"""run.py: issue 12's small-data check. For each job of bench/small/ and each way of selecting
(`split`: one validation split, split.folds 1, against ce; `folds`: 5-fold cross-validation of
the train+validation rows, split.folds, against ce; `folds_panel`: the same with the textbook panel
as the baseline list, so fitness is against the best of it; `default`: the job as written, with
lossd's defaults: 5 folds under 500 rows and the family's panel), search with seeds SEARCH_SEEDS; take the search's pick (the best non-baseline
leaderboard entry that is not labelled collapsed) and its leaderboard fitness; re-train the pick
and the textbook panel on the judging seeds 101-110 with the task as written (one fixed training
split, so both ways are judged alike) and compare on the test split. The gap between the
leaderboard's fitness (relative gain over the baseline on validation; over the best panel loss
in folds_panel) and the test gain over the same reference is what honest selection shrinks. Standard library only.

    python3 bench/small/run.py                      both jobs, search seeds 1-10, markdown on stdout
    JOBS="noisy208" SEARCH_SEEDS="1 2" MODES="split" python3 bench/small/run.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import optuna_peer  # noqa: E402  (Batch, write_task: standard library only)
import results  # noqa: E402

ROOT = results.ROOT
JOBS = os.environ.get("JOBS", "noisy208 imbalanced214").split()
MODES = os.environ.get("MODES", "split folds folds_panel default").split()
SEARCH_SEEDS = [int(x) for x in os.environ.get("SEARCH_SEEDS", "1 2 3 4 5 6 7 8 9 10").split()]
JUDGE = list(range(101, 111))
FOLDS = int(os.environ.get("FOLDS", "5"))
PANEL = ["ce", "focal(2)", "smooth(0.1)", "poly1(1)", "mae"]
FAMILY_PANEL = ["ce", "focal(2)", "smooth(0.1)", "poly1(1)"]  # classification's default baseline
RAW = os.environ.get("RAW_DIR")


def pick(rep):
    for e in rep["leaderboard"]:
        if not e["baseline"] and not e.get("collapsed"):
            return e
    return next(e for e in rep["leaderboard"] if not e["baseline"])


def mean(xs):
    return sum(xs) / len(xs)


def main():
    tmp = tempfile.mkdtemp(prefix="lossd_small.")
    lossd = os.path.join(tmp, "lossd")
    shutil.copy2(os.path.join(results.BIN, "lossd"), lossd)
    results.LOSSD = lossd
    print("| data | selection | S | pick | fitness | final (engine) | test: pick | test: ce | "
          "test gain vs ce | gap | best panel (val) | test gain vs panel | wins vs ce |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for name in JOBS:
        job_path = os.path.join(HERE, name + ".json")
        spec = json.load(open(job_path))
        task_file = optuna_peer.write_task(job_path, spec["tasks"][0], tmp, name)
        hb = spec["tasks"][0].get("metric", "accuracy") != "mse"
        batch = optuna_peer.Batch(lossd, task_file, results.WORKERS)
        judged = {}

        def judge(losses):
            todo = [(l, s) for l in losses if l not in judged for s in JUDGE]
            for (l, s), a in zip(todo, batch.run(todo) if todo else []):
                judged.setdefault(l, {})[s] = (a["val"], a["test"]) if a.get("status") == "ok" else None
            return {l: judged[l] for l in losses}

        base = judge(PANEL)
        def best_of(losses):  # chosen on the validation split of the judging runs
            return max(losses, key=lambda l: (1 if hb else -1) * mean([v[0] for v in base[l].values() if v]))
        for mode in MODES:
            js = json.loads(json.dumps(spec))
            if mode == "split":  # the behaviour before the defaults: one split, ce alone
                js["tasks"][0]["split"] = {"folds": 1}
            if mode.startswith("folds"):
                js["tasks"][0]["split"] = {"folds": FOLDS}
            if mode in ("split", "folds"):
                js["baseline"] = "ce"
            if mode.endswith("panel"):
                js["baseline"] = PANEL
            # "default": the job as written, with lossd's defaults (5 folds under 500 rows, the
            # family's panel ce, focal(2), smooth(0.1), poly1(1))
            # the reference of the mode's fitness: the bench's panel, or the family's (no mae)
            panel_best = best_of(FAMILY_PANEL if mode == "default" else PANEL)
            jp = os.path.join(tmp, f"{name}.{mode}.job.json")
            js["tasks"][0]["data"] = os.path.join(HERE, js["tasks"][0]["data"])
            json.dump(js, open(jp, "w"))
            gaps, gains, gains_p, fits = [], [], [], []
            for ss in SEARCH_SEEDS:
                rep = results.run_search(jp, ss)
                if RAW:
                    os.makedirs(RAW, exist_ok=True)
                    json.dump(rep, open(os.path.join(RAW, f"{name}.{mode}.seed{ss}.json"), "w"))
                e = pick(rep)
                j = judge([e["expr"]])[e["expr"]]
                ok = [s for s in JUDGE if j[s] and base["ce"][s]]
                pt = mean([j[s][1] for s in ok])
                ct = mean([base["ce"][s][1] for s in ok])
                bt = mean([base[panel_best][s][1] for s in ok if base[panel_best][s]])
                sign = 1 if hb else -1
                gain = sign * (pt - ct) / abs(ct)
                gain_p = sign * (pt - bt) / abs(bt)
                wins = sum(sign * (j[s][1] - base["ce"][s][1]) > 0 for s in ok)
                panelled = mode.endswith("panel") or mode == "default"
                fv = e.get("final", {}).get("vs_panel" if panelled else "vs_baseline", {})
                ftxt = (f"{fv.get('mean_diff', float('nan')):+.3f}"
                        + (f" [{fv['ci95'][0]:+.3f}, {fv['ci95'][1]:+.3f}]" if fv.get("ci95") else "")
                        + (f" {fv['verdict']}" if fv.get("verdict") else "")) if fv else "-"
                fit = e["fitness"]
                fits.append(fit)
                gains.append(gain)
                gains_p.append(gain_p)
                gap = fit - (gain_p if panelled else gain)
                gaps.append(gap)
                print(f"| {name} | {mode} | {ss} | `{e['expr']}` | {fit:+.3f} | {ftxt} | {pt:.4f} | "
                      f"{ct:.4f} | {gain:+.3f} | {gap:+.3f} | `{panel_best}` {bt:.4f} | "
                      f"{gain_p:+.3f} | {wins}/{len(ok)} |", flush=True)
            summary.append((name, mode, mean(fits), mean(gains), mean(gaps), mean(gains_p),
                            sum(g > 0 for g in gains), len(gains)))
        batch.close()
    print()
    print("| data | selection | mean fitness | mean test gain vs ce | mean gap | mean test gain vs best panel loss | searches with a test gain over ce |")
    print("|---|---|---|---|---|---|---|")
    for n, m, f, g, gap, gp, w, k in summary:
        print(f"| {n} | {m} | {f:+.3f} | {g:+.4f} | {gap:+.3f} | {gp:+.4f} | {w}/{k} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
