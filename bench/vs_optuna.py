#!/usr/bin/env python3
"""vs_optuna.py: lossd's search side by side with the Optuna TPE peer (bench/optuna_peer.py) and
the best single textbook loss, on the rows of bench/results.sh; writes the section "Against a
tuned mixture" of docs/results.md (the rest of the file is left as it is).

For each row and search seed S: `lossd search JOB --seed S` gives lossd's pick (the first
entry of the leaderboard that is not labelled collapsed, the baseline or a panel loss when
nothing found beat it), the TPE peer at the same
budget in training runs gives its pick (seed S for its sampler). Each pick is re-trained on the
fresh seeds 101..110 and judged on the test split; lossd's and TPE's picks are paired by judging
seed. The best single textbook loss of the family is chosen on the validation split of the same
judging runs. Standard library plus python3-optuna.

    bench/vs_optuna.sh                                       every row, 5 search seeds
    ROWS="noisy_labels outliers" SEARCH_SEEDS="1 2 3" bench/vs_optuna.sh
"""
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import optuna_peer  # noqa: E402
import results  # noqa: E402

ROOT = results.ROOT
SEARCH_SEEDS = [int(x) for x in os.environ.get("SEARCH_SEEDS", "1 2 3 4 5").split()]
JUDGE_SEEDS = list(range(101, 111))
WORKERS = int(os.environ.get("WORKERS", "2"))
# rows of bench/jobs/ that bench/results.sh leaves out (a training of 0.3-0.5 s), run here when
# ROWS names them (the default is results.sh's rows)
EXTRA_JOBS = [("contrastive", "Digit embeddings, contrastive (kNN accuracy)", "knn_accuracy", True)]
ROWS = os.environ.get("ROWS", "").split() or [j[0] for j in results.JOBS]
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "results.md"))
RAW = os.environ.get("RAW_DIR")
TPE_FROM = os.environ.get("TPE_FROM")  # reuse the peer's reports from an earlier RAW_DIR
MARK = results.TPE_MARK


def lossd_pick(report):
    """The search's own pick, what its user would take: the leaderboard's first entry not labelled
    collapsed (the baseline or a panel loss when nothing the search found beat it on the final
    seeds)."""
    for e in report["leaderboard"]:
        if not e.get("collapsed"):
            return e
    return report["leaderboard"][0]


def judge(batch, losses):
    """Each loss on every judging seed: {loss: {seed: (val, test)}} (None when failed)."""
    items = [(l, s) for l in losses for s in JUDGE_SEEDS]
    ans = batch.run(items)
    out = {}
    for (l, s), a in zip(items, ans):
        ok = a.get("status") == "ok" and a.get("test") is not None
        out.setdefault(l, {})[s] = (a["val"], a["test"]) if ok else None
    return out


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def main():
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="lossd_vs_optuna.")
    lossd = os.path.join(tmp, "lossd")
    shutil.copy2(os.path.join(results.BIN, "lossd"), lossd)
    results.LOSSD = lossd
    rows = []
    for key, title, metric, hb in results.JOBS + EXTRA_JOBS:
        if key not in ROWS:
            continue
        job = os.path.join(ROOT, "bench", "jobs", key + ".json")
        spec = json.load(open(job))
        task_file = optuna_peer.write_task(job, spec["tasks"][0], tmp, key)
        family = spec["tasks"][0].get("family") or optuna_peer.family_of(task_file, lossd)
        batch = optuna_peer.Batch(lossd, task_file, WORKERS)
        per = []
        for ss in SEARCH_SEEDS:
            t0 = time.time()
            rep = results.run_search(os.path.relpath(job, ROOT), ss)
            lw = time.time() - t0
            lp = lossd_pick(rep)
            cached = TPE_FROM and os.path.join(TPE_FROM, f"{key}.seed{ss}.tpe.json")
            if cached and os.path.exists(cached):  # the peer does not depend on lossd's search
                tp = json.load(open(cached))
            else:
                tp = optuna_peer.tpe_search(job, ss, lossd, WORKERS, None, tmp)
            if RAW:
                os.makedirs(RAW, exist_ok=True)
                with open(os.path.join(RAW, f"{key}.seed{ss}.lossd.json"), "w") as f:
                    json.dump(rep, f, indent=1)
                with open(os.path.join(RAW, f"{key}.seed{ss}.tpe.json"), "w") as f:
                    json.dump(tp, f, indent=1)
            per.append({"seed": ss, "lossd": lp["expr"], "lossd_wall": lw,
                        "lossd_runs": rep["evaluations"], "lossd_final": rep["final_evaluations"],
                        "lossd_collapsed_skipped": sum(1 for e in rep["leaderboard"]
                                                       if e.get("collapsed") and not e["baseline"]
                                                       and e["rank"] < lp["rank"]),
                        "tpe": tp["pick"], "tpe_wall": tp["wall_s"], "tpe_runs": tp["training_runs"],
                        "tpe_trials": tp["trials"]})
            print(f"[vs_optuna] {key} seed {ss}: lossd {lp['expr']}  |  tpe {tp['pick']}", file=sys.stderr)
        singles = optuna_peer.SINGLES[family]
        losses = list(dict.fromkeys([d["lossd"] for d in per] + [d["tpe"] for d in per] + singles))
        J = judge(batch, losses)
        batch.close()
        # best single loss: chosen on the validation split of the judging runs
        def val_mean(l):
            v = [x[0] for x in J[l].values() if x]
            return mean(v) if len(v) == len(JUDGE_SEEDS) else (-1e300 if hb else 1e300)
        best_single = (max if hb else min)(singles, key=val_mean)
        for d in per:
            lo, tp = J[d["lossd"]], J[d["tpe"]]
            seeds = [s for s in JUDGE_SEEDS if lo[s] and tp[s]]
            d["lossd_test"] = mean([lo[s][1] for s in JUDGE_SEEDS if lo[s]])
            d["tpe_test"] = mean([tp[s][1] for s in JUDGE_SEEDS if tp[s]])
            worst = min if hb else max
            d["lossd_min"] = worst((lo[s][1] for s in JUDGE_SEEDS if lo[s]), default=None)
            d["tpe_min"] = worst((tp[s][1] for s in JUDGE_SEEDS if tp[s]), default=None)
            d["failed"] = sum(1 for s in JUDGE_SEEDS if not lo[s]), sum(1 for s in JUDGE_SEEDS if not tp[s])
            d["pair"] = results.paired([lo[s][1] for s in seeds], [tp[s][1] for s in seeds], hb)
            # what a pick's test mean would scatter by on other judging seeds: sd / sqrt(n)
            d["lossd_noise"] = spread([lo[s][1] for s in JUDGE_SEEDS if lo[s]]) / len(JUDGE_SEEDS) ** 0.5
            d["tpe_noise"] = spread([tp[s][1] for s in JUDGE_SEEDS if tp[s]]) / len(JUDGE_SEEDS) ** 0.5
        # pooled: every (search seed, judging seed) pair
        cand, base = [], []
        for d in per:
            lo, tp = J[d["lossd"]], J[d["tpe"]]
            for s in JUDGE_SEEDS:
                if lo[s] and tp[s]:
                    cand.append(lo[s][1])
                    base.append(tp[s][1])
        bs = J[best_single]
        bs_test = mean([x[1] for x in bs.values() if x])
        # each side against the best single loss, paired by judging seed, pooled over searches
        def vs_single(side):
            c, b = [], []
            for d in per:
                x = J[d[side]]
                for s in JUDGE_SEEDS:
                    if x[s] and bs[s]:
                        c.append(x[s][1])
                        b.append(bs[s][1])
            return results.paired(c, b, hb) if len(c) > 1 else None
        rows.append({"key": key, "title": title, "metric": metric, "hb": hb, "per": per,
                     "pooled": results.paired(cand, base, hb), "best_single": best_single,
                     "best_single_test": bs_test,
                     "lossd_vs_single": vs_single("lossd"), "tpe_vs_single": vs_single("tpe"),
                     "singles": {l: mean([x[1] for x in J[l].values() if x]) for l in singles}})
        if RAW:
            with open(os.path.join(RAW, f"{key}.judged.json"), "w") as f:
                json.dump({l: {str(k): v for k, v in J[l].items()} for l in J}, f, indent=1)
        print(f"[vs_optuna] {key} judged", file=sys.stderr)
    write(rows, time.time() - t_start)
    shutil.rmtree(tmp, ignore_errors=True)


def spread(xs):
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def section(rows, elapsed):
    g, fp, ft, code = results.g, results.fp, results.ft, results.code
    L = [MARK, ""]
    L.append(f"Generated by `bench/vs_optuna.sh` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC "
             f"({elapsed / 60:.1f} minutes on the shared 2-core machine, everything under `nice -n 19`): "
             f"rows {', '.join(r['key'] for r in rows)}; search seeds {' '.join(map(str, SEARCH_SEEDS))} "
             "per side.")
    L.append("")
    L.append("What a practitioner would do instead of a symbolic search: tune the weights (log-uniform "
             "in [1e-3, 1]) and parameters of a mixture of the family's textbook losses with Optuna's "
             "`TPESampler` (python3-optuna " + _optuna_version() + "; classification `ce, mae, "
             "focal(γ), smooth(ε), poly1(ε)`, regression `mse, mae, huber(δ), logcosh`, physics the "
             "regression terms plus `phys, bc`, contrastive `infonce(τ), supcon(τ), l2`). Each trial "
             "is trained by `lossd eval --batch` on the job's task with the job's `seeds` training "
             "seeds at full steps, so only the search differs; its budget is the job's "
             "`budget.evaluations` in training runs (trials = budget / seeds), the same count lossd's "
             "search gets (lossd spends most of it on shorter low-fidelity runs, and then a final "
             "re-evaluation of its top candidates on top, counted apart below). Each side picks on "
             "the validation split only. Both picks of search seed S are re-trained on seeds "
             "101-110 and judged on the test split; **± is the spread (sd) of the per-search test "
             "means across search seeds**; the paired columns pool every (search seed, judging seed) "
             "pair, positive = lossd better. **Judging noise** is what one pick's test mean would "
             "scatter by on other judging seeds (its sd over seeds 101-110 / √10, root mean square "
             "over the row's picks): a spread across search seeds up to about TPE's plus this is "
             "within what the judging can tell apart. lossd's pick is the leaderboard's first entry "
             "not labelled collapsed, what its user would take: the baseline or a panel loss when "
             "nothing the search found beat it on the final seeds. The best single textbook loss is "
             "chosen on the validation split of the same judging runs.")
    L.append("")
    L.append("| task (test metric) | lossd | TPE mixture | judging noise | best single textbook loss | lossd − TPE (paired) | t | p | lossd wins |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lm = [d["lossd_test"] for d in r["per"]]
        tm = [d["tpe_test"] for d in r["per"]]
        pc = r["pooled"]
        noise = mean([d["lossd_noise"] ** 2 for d in r["per"]] + [d["tpe_noise"] ** 2 for d in r["per"]]) ** 0.5
        L.append(f"| {r['title']} | {g(mean(lm))} ± {g(spread(lm), 2)} | {g(mean(tm))} ± {g(spread(tm), 2)} | "
                 f"{g(noise, 2)} | {g(r['best_single_test'])} ({code(r['best_single'])}) | {g(pc['diff'], 3)} | "
                 f"{ft(pc['t'])} | {fp(pc['p'])} | {pc['wins']}/{pc['n']} |")
    L.append("")
    L.append("Against the best single loss (paired by judging seed, pooled over search seeds):")
    L.append("")
    L.append("| task | lossd − best single | p | wins | TPE − best single | p | wins |")
    L.append("|---|---|---|---|---|---|---|")
    for r in rows:
        a, b = r["lossd_vs_single"], r["tpe_vs_single"]
        L.append(f"| {r['title']} | {g(a and a['diff'], 3)} | {fp(a and a['p'])} | {a and a['wins']}/{a and a['n']} | "
                 f"{g(b and b['diff'], 3)} | {fp(b and b['p'])} | {b and b['wins']}/{b and b['n']} |")
    L.append("")
    for r in rows:
        L.append(f"#### {r['title']}: per search seed")
        L.append("")
        L.append("| S | lossd's pick | test (worst seed) | TPE's pick | test (worst seed) | lossd − TPE | p | lossd s / runs (+final) | TPE s / runs |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for d in r["per"]:
            p = d["pair"]
            L.append(f"| {d['seed']} | {code(d['lossd'])} | {g(d['lossd_test'])} ({g(d['lossd_min'])}) | "
                     f"{code(d['tpe'])} | {g(d['tpe_test'])} ({g(d['tpe_min'])}) | {g(p['diff'], 3)} | {fp(p['p'])} | "
                     f"{d['lossd_wall']:.1f} / {d['lossd_runs']} (+{d['lossd_final']}) | "
                     f"{d['tpe_wall']:.1f} / {d['tpe_runs']} |")
        L.append("")
        L.append("Single textbook losses, mean test over seeds 101-110: " +
                 ", ".join(f"{code(k)} {g(v)}" for k, v in r["singles"].items()) + ".")
        L.append("")
    L.append("Commands:")
    L.append("")
    L.append("```")
    L.append("make bench-deps            # python3-optuna, once")
    L.append(f"ROWS=\"{' '.join(r['key'] for r in rows)}\" SEARCH_SEEDS=\"{' '.join(map(str, SEARCH_SEEDS))}\" bench/vs_optuna.sh")
    L.append("# what it runs, per row JOB and search seed S:")
    L.append(f"nice -n 19 bin/lossd search bench/jobs/JOB.json --workers {WORKERS} --quiet --seed S")
    L.append(f"bench/optuna_peer.py bench/jobs/JOB.json --seed S --workers {WORKERS}   # TPE, through lossd eval --batch")
    L.append("nice -n 19 bin/lossd eval --task TASK.json --batch - --workers 2       # every pick and single loss, seeds 101-110")
    L.append("```")
    L.append("")
    if TPE_FROM:
        L.append(f"This run read the TPE picks from an earlier run's reports (`TPE_FROM`): the peer "
                 "does not depend on lossd's search, so the same job, sampler seed and budget give "
                 "the same pick; its wall times are those of that run.")
        L.append("")
    return "\n".join(L)


def _optuna_version():
    try:
        import optuna
        return optuna.__version__
    except ImportError:
        return "?"


def write(rows, elapsed):
    sec = section(rows, elapsed)
    try:
        text = open(OUT).read()
    except OSError:
        text = ""
    i = text.find(MARK + "\n")
    if i >= 0:
        j = text.find("\n## ", i + len(MARK))
        text = text[:i] + sec + ("\n" + text[j + 1:] if j >= 0 else "")
    else:
        j = text.find("\n" + results.READING_MARK + "\n")
        text = text[:j + 1] + sec + "\n" + text[j + 1:] if j >= 0 else text + "\n" + sec
    with open(OUT, "w") as f:
        f.write(text)
    print(f"[vs_optuna] wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
