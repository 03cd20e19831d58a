#!/usr/bin/env python3
"""results.py: runs the evidence jobs (bench/jobs/*.json) and writes docs/results.md.

For every job and each of several search seeds it runs `lossd search`, takes the best
non-baseline loss of the leaderboard (the search's own pick, chosen on validation only) and
re-trains it and the job's baseline with `lossd eval` on fresh training seeds that the search never
saw, comparing them on the test split with a paired t-test. The transfer row applies the
noisy-digits winners unchanged to other data sets. Called by bench/results.sh; standard library
only (no numpy or scipy on the build machine)."""
import concurrent.futures as cf
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("LOSSD_BIN", "bin")
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)
WORKERS = int(os.environ.get("WORKERS", "2"))
SEARCH_SEEDS = [int(x) for x in os.environ.get("SEARCH_SEEDS", "1 2 3 4 5").split()]
EVAL_SEEDS = int(os.environ.get("EVAL_SEEDS", "10"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "results.md"))
RAW = os.environ.get("RAW_DIR")  # keep every search's JSON report here when set
NICE = ["nice", "-n", "19"]

# row, job file, metric read from `lossd eval` (test split), whether higher is better
# The best-known hand-written loss for each problem: the winners are compared with it too, so
# that a gain over a weak baseline is not mistaken for a discovery.
REFERENCE = {"imbalanced": ["smooth(0.1)", "focal(2)"], "noisy_labels": ["mae"],
             "outliers": ["mae"], "poisson": ["mse + phys + bc"],
             "oscillator": ["mse + phys + bc"]}
JOBS = [
    ("primitives", "Digits, primitives only (no named terms)", "accuracy", True),
    ("imbalanced", "Digits, classes 5-9 at 10% (balanced accuracy)", "balanced_accuracy", True),
    ("noisy_labels", "Digits, 30% flipped labels (accuracy)", "accuracy", True),
    ("outliers", "Diabetes CSV, 20% outlier targets (clean test MSE)", "mse", False),
    ("poisson", "Poisson, 10 noisy observations (solution error)", "solution_error", False),
    ("oscillator", "Oscillator, 10 noisy observations (solution error)", "solution_error", False),
]
# winners of a digits search, unchanged, on other data sets with the same corruption:
# (source job, data set label, task, metric)
TRANSFER = [
    ("noisy_labels", "wine-noisy", {"name": "wine-noisy", "data": "builtin:wine",
                                    "transform": {"label_noise": 0.3}, "train": {"steps": 300}},
     "accuracy"),
    ("noisy_labels", "breast_cancer-noisy",
     {"name": "breast_cancer-noisy", "data": "builtin:breast_cancer",
      "transform": {"label_noise": 0.3}, "train": {"steps": 300}}, "accuracy"),
    ("imbalanced", "breast_cancer-imbalanced",
     {"name": "breast_cancer-imbalanced", "data": "builtin:breast_cancer",
      "transform": {"imbalance": 0.1}, "metric": "balanced_accuracy", "train": {"steps": 300}},
     "balanced_accuracy"),
]


# ---- statistics (paired t-test, two-sided p from the regularised incomplete beta) ----

def _betacf(a, b, x):
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-14:
            break
    return h


def _ibeta(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1 - x) / b


def student_p(t, df):
    """Two-sided p of Student's t with df degrees of freedom."""
    return _ibeta(df / 2.0, 0.5, df / (df + t * t))


def mean_sd(xs):
    n = len(xs)
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return m, sd


def paired(cand, base, higher_better):
    """Paired comparison; d > 0 means the candidate is better."""
    d = [(c - b) if higher_better else (b - c) for c, b in zip(cand, base)]
    n = len(d)
    md, sdd = mean_sd(d)
    if sdd > 0:
        t = md / (sdd / math.sqrt(n))
        p = student_p(t, n - 1)
    else:
        t, p = None, (1.0 if md == 0 else 0.0)
    cm, cs = mean_sd(cand)
    bm, bs = mean_sd(base)
    return {"n": n, "cand_mean": cm, "cand_sd": cs, "base_mean": bm, "base_sd": bs,
            "diff": md, "diff_sd": sdd, "t": t, "p": p,
            "wins": sum(x > 0 for x in d), "losses": sum(x < 0 for x in d),
            "ties": sum(x == 0 for x in d)}


# ---- running lossd ----

LOSSD = os.path.join(BIN, "lossd")  # replaced by a private copy in main()


def run_search(job, seed):
    cmd = NICE + [LOSSD, "search", job, "--workers", str(WORKERS),
                  "--quiet", "--seed", str(seed)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"results.py: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout)


def run_eval(task_file, loss, seed, metric):
    cmd = NICE + [LOSSD, "eval", "--task", task_file, "--loss", loss, "--seed", str(seed)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode not in (0, 1) or not r.stdout.strip():
        sys.exit(f"results.py: {' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    d = json.loads(r.stdout)
    if d.get("status") != "ok":
        return None, d.get("error", "failed")
    return d["metrics"][metric]["test"], None


def write_task(tmp, job_path, spec, name):
    """The job's task as a file for `lossd eval`, with a relative data path made absolute."""
    spec = dict(spec)
    data = spec.get("data", "")
    if not data.startswith("builtin:") and not os.path.isabs(data):
        spec["data"] = os.path.normpath(os.path.join(os.path.dirname(job_path), data))
    path = os.path.join(tmp, name + ".task.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def compare(pool, task_file, loss, baseline, seeds, metric, higher_better):
    """Re-trains loss and baseline on each seed; returns the paired comparison and failures."""
    futs = [(pool.submit(run_eval, task_file, loss, s, metric),
             pool.submit(run_eval, task_file, baseline, s, metric)) for s in seeds]
    cand, base, fails = {}, [], []
    for s, (fc, fb) in zip(seeds, futs):
        (c, ec), (b, eb) = fc.result(), fb.result()
        if c is None or b is None:
            fails.append(f"seed {s}: {'candidate ' + ec if c is None else 'baseline ' + eb}")
            continue
        cand[s] = c
        base.append(b)
    pc = paired(list(cand.values()), base, higher_better) if len(cand) >= 2 else None
    return pc, cand, base, fails


def winner(report):
    """The best non-baseline loss of the leaderboard and the baseline's rank."""
    lb = report["leaderboard"]
    best = next((e for e in lb if not e["baseline"]), None)
    brank = next((e["rank"] for e in lb if e["baseline"]), None)
    return best, brank


# ---- formatting ----

def g(x, n=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{n - 1}e}"
        return f"{x:.{n}g}"
    return str(x)


def fp(p):
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def ft(t):
    return "-" if t is None else f"{t:.2f}"


def code(s):
    return "`" + s.replace("|", "\\|") + "`"


def main():
    global LOSSD
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="lossd_results.")
    # a private copy: a rebuild of bin/ during the run must not change or break the binary
    LOSSD = os.path.join(tmp, "lossd")
    shutil.copy2(os.path.join(BIN, "lossd"), LOSSD)
    if RAW:
        os.makedirs(RAW, exist_ok=True)
    pool = cf.ThreadPoolExecutor(max_workers=WORKERS)
    rows, details, eff = [], {}, []
    winners = {}  # job -> [(search seed, winner expr)]
    for key, title, metric, hb in JOBS:
        job = os.path.join("bench", "jobs", key + ".json")
        spec = json.load(open(os.path.join(ROOT, job)))
        baseline = spec.get("baseline", "mse" if hb is False and metric == "mse" else "ce")
        task_file = write_task(tmp, os.path.join(ROOT, job), spec["tasks"][0], key)
        allc, allb, per = {}, [], []
        for ss in SEARCH_SEEDS:
            t0 = time.time()
            rep = run_search(job, ss)
            if RAW:
                with open(os.path.join(RAW, f"{key}.seed{ss}.json"), "w") as f:
                    json.dump(rep, f, indent=1)
            st = rep["stats"]
            eff.append({"job": key, "seed": ss, "wall": rep["wall_s"],
                        "engine": rep["search_overhead_s"], "generated": st["generated"],
                        "cache": rep["cache_hits"], "sig": rep["signature_hits"],
                        "rej": rep["rejections"], "evals": rep["evaluations"],
                        "final": rep["final_evaluations"]})
            best, brank = winner(rep)
            seeds = [100 * ss + k for k in range(EVAL_SEEDS)]
            pc, c, b, fails = compare(pool, task_file, best["expr"], baseline, seeds, metric, hb)
            allc.update(c)
            allb += b
            fin = (best.get("final") or {}).get("vs_baseline")
            fin_on = best.get("final") and "%s (%s)" % (
                best["final"]["on"], ", ".join(t["task"] for t in best["final"]["tasks"]))
            per.append({"seed": ss, "expr": best["expr"], "fitness": best["fitness"],
                        "baseline_rank": brank, "final": fin, "final_on": fin_on,
                        "paired": pc, "fails": fails,
                        "to_base": st.get("evals_to_baseline"),
                        "to_base_top": st.get("evals_to_baseline_top"),
                        "to_base_top_expr": st.get("evals_to_baseline_top_expr"),
                        "evals": rep["evaluations"], "wall": time.time() - t0})
            winners.setdefault(key, []).append((ss, best["expr"]))
            print(f"[results] {key} seed {ss}: {best['expr']}  "
                  f"{metric} {g(pc and pc['cand_mean'])} vs {g(pc and pc['base_mean'])}  "
                  f"wins {pc and pc['wins']}/{pc and pc['n']}", file=sys.stderr)
        pooled = paired(list(allc.values()), allb, hb)
        ref = []
        for name in REFERENCE.get(key, []):
            # the reference loss on the winners' seeds, paired with them
            futs = {sd: pool.submit(run_eval, task_file, name, sd, metric) for sd in allc}
            rv = {sd: f.result()[0] for sd, f in futs.items()}
            ok = [sd for sd in allc if rv[sd] is not None]
            ref.append((name, paired([allc[sd] for sd in ok], [rv[sd] for sd in ok], hb)))
        rows.append((key, title, metric, hb, baseline, pooled, per, ref))
        details[key] = per

    # transfer: each digits winner unchanged on each other data set
    trows = []
    for src, tname, tspec, metric in TRANSFER:
        tf = write_task(tmp, os.path.join(ROOT, "bench", "jobs", "x.json"), tspec, tname)
        allc, allb, per = [], [], []
        for ss, expr in winners.get(src, []):
            seeds = [100 * ss + k for k in range(EVAL_SEEDS)]
            pc, c, b, fails = compare(pool, tf, expr, "ce", seeds, metric, True)
            allc += list(c.values())
            allb += b
            per.append({"seed": ss, "expr": expr, "paired": pc, "fails": fails})
        trows.append((tname, src, metric, paired(allc, allb, True), per))
        print(f"[results] transfer {tname} done", file=sys.stderr)
    pool.shutdown()
    write_md(rows, trows, eff, time.time() - started)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"[results] wrote {OUT} in {time.time() - started:.0f}s", file=sys.stderr)


def machine():
    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), CPU {model}, {platform.system()} {platform.release()}"


def write_md(rows, trows, eff, elapsed):
    n_s, n_e = len(SEARCH_SEEDS), EVAL_SEEDS
    L = []
    L.append("# Measured results: does the search find better losses?")
    L.append("")
    L.append("Generated by `bench/results.sh` (rerun it rather than editing the tables; the reading at the end is written by hand and kept across reruns). "
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
             f"Machine: {machine()}, shared with other work; the script ran every command under "
             f"`nice -n 19` and took {elapsed / 60:.1f} minutes.")
    L.append("")
    L.append("## How each row is measured")
    L.append("")
    L.append(f"- Each job in `bench/jobs/` is searched {n_s} times (`lossd search JOB --seed S "
             f"--workers {WORKERS}`, S = {', '.join(map(str, SEARCH_SEEDS))}). The search selects on the "
             "validation split only.")
    L.append("- From each search, **the winner** is the best non-baseline entry of its leaderboard "
             "(the search's own pick; nothing is chosen on test data).")
    L.append(f"- The winner and the job's baseline are then re-trained with `lossd eval` on {n_e} fresh "
             f"training seeds per search (100·S .. 100·S+{n_e - 1}, seeds the search never used) and "
             "compared on the **test split**, pairwise by seed. The main table pools the "
             f"{n_s} × {n_e} = {n_s * n_e} pairs: mean ± sd of each, the mean paired difference "
             "(signed so that positive means the winner is better), Student's t and the two-sided p "
             "of the paired t-test, and the wins (pairs where the winner is strictly better).")
    L.append("- Per-search tables below give each winner, its own paired test over its "
             f"{n_e} seeds, and the search's own final re-evaluation (`final.vs_baseline` of the "
             "report: fresh seeds, relative differences, holdout tasks when the job has them).")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("| # | task (metric, test split) | baseline | winner of search seed 1 (all searches pooled) | winner mean ± sd | "
             "baseline mean ± sd | paired diff (+ = better) | t | p | wins |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    num = {"primitives": 1, "imbalanced": 2, "noisy_labels": 3, "outliers": 4, "poisson": 5,
           "oscillator": 5}
    for key, title, metric, hb, baseline, pc, per, ref in rows:
        L.append(f"| {num[key]} | {title} | {code(baseline)} | {code(per[0]['expr'])} | "
                 f"{g(pc['cand_mean'])} ± {g(pc['cand_sd'], 2)} | {g(pc['base_mean'])} ± "
                 f"{g(pc['base_sd'], 2)} | {g(pc['diff'], 3)} | {ft(pc['t'])} | {fp(pc['p'])} | "
                 f"{pc['wins']}/{pc['n']} |")
    for tname, src, metric, pc, per in trows:
        L.append(f"| 6 | transfer: {src} winners on {tname} ({metric}) | `ce` | "
                 f"{code(per[0]['expr'])} | {g(pc['cand_mean'])} ± {g(pc['cand_sd'], 2)} | "
                 f"{g(pc['base_mean'])} ± {g(pc['base_sd'], 2)} | {g(pc['diff'], 3)} | "
                 f"{ft(pc['t'])} | {fp(pc['p'])} | {pc['wins']}/{pc['n']} |")
    L.append("")

    L.append("### Against the best-known hand-written loss")
    L.append("")
    L.append("The baselines of the main table (cross-entropy, MSE) are weak on these "
             "corrupted tasks: the robust losses already known for them do much of the work. The "
             "winners against those, on the same seeds (pooled, paired):")
    L.append("")
    L.append("| # | task | reference loss | winners mean | reference mean | paired diff (+ = "
             "winners better) | t | p | wins |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for key, title, metric, hb, baseline, pc, per, ref in rows:
        for name, rp in ref:
            L.append(f"| {num[key]} | {title} | {code(name)} | {g(rp['cand_mean'])} ± {g(rp['cand_sd'], 2)} | "
                     f"{g(rp['base_mean'])} ± {g(rp['base_sd'], 2)} | {g(rp['diff'], 3)} | "
                     f"{ft(rp['t'])} | {fp(rp['p'])} | {rp['wins']}/{rp['n']} |")
    L.append("")

    # row 1: trainings to reach cross-entropy
    prim = next(r for r in rows if r[0] == "primitives")
    L.append("### 1. Trainings until a loss built from primitives matches cross-entropy")
    L.append("")
    L.append("`evals_to_baseline` (search stats): trainings spent, baseline included, by the end of "
             "the round in which a trained non-baseline candidate first had fitness at least the "
             "baseline's at the highest fidelity level it had finished; `evals_to_baseline_top` "
             "counts only candidates at the top level (full steps, all seeds). -1: never within "
             "the budget.")
    L.append("")
    L.append("| search seed | evals_to_baseline | evals_to_baseline_top | first to match at the top "
             "level | budget | winner | final re-evaluation (engine) | re-trained: winner vs ce, "
             "test accuracy | t | p | wins |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in prim[6]:
        first = code(d["to_base_top_expr"]) if d.get("to_base_top_expr") else "-"
        L.append(f"| {d['seed']} | {d['to_base']} | {d['to_base_top']} | {first} | {d['evals']} | "
                 f"{code(d['expr'])} | {final_txt(d['final'])} | {pair_txt(d['paired'])} |")
    tops = [d["to_base_top"] for d in prim[6] if d["to_base_top"] is not None and d["to_base_top"] >= 0]
    L.append("")
    if tops:
        tops.sort()
        L.append(f"Reached in {len(tops)}/{len(prim[6])} searches; trainings to reach it at the top "
                 f"level: median {tops[len(tops) // 2]}, range {tops[0]}-{tops[-1]}.")
    else:
        L.append("No search reached the baseline's fitness at the top level within its budget.")
    L.append("")

    for key, title, metric, hb, baseline, pc, per, ref in rows:
        if key == "primitives":
            continue
        L.append(f"### {num[key]}. {title}: per search")
        L.append("")
        L.append(f"Baseline `{baseline}`; `bench/jobs/{key}.json`. The engine's final "
                 f"re-evaluation ran on: {per[0]['final_on'] or '-'}.")
        L.append("")
        L.append("| search seed | winner | baseline's rank | evals_to_baseline_top | final re-evaluation "
                 f"(engine) | re-trained: winner vs baseline, test {metric} | t | p | wins |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for d in per:
            L.append(f"| {d['seed']} | {code(d['expr'])} | {d['baseline_rank']} | {d['to_base_top']} | "
                     f"{final_txt(d['final'])} | {pair_txt(d['paired'])} |")
        if not hb:
            ratios = [d["paired"]["base_mean"] / d["paired"]["cand_mean"] for d in per
                      if d["paired"] and d["paired"]["cand_mean"] > 0]
            if ratios:
                L.append("")
                L.append(f"Baseline / winner mean test {metric}: "
                         + ", ".join(f"{r:.2f}x" for r in ratios)
                         + f" (pooled: {pc['base_mean'] / pc['cand_mean']:.2f}x).")
        fails = [f"seed {d['seed']}: {f}" for d in per for f in d["fails"]]
        if fails:
            L.append("")
            L.append("Failed runs (left out of the pairs): " + "; ".join(fails) + ".")
        L.append("")

    L.append("### 6. Transfer: digits winners, unchanged, on other data sets")
    L.append("")
    L.append("Each winner of the noisy-labels search (row 3) is trained as it is on a data set the "
             "search never saw, with the same 30% label noise on its training split, 300 steps; "
             "each winner of the imbalanced search (row 2) likewise on breast cancer with its "
             "second class kept at 10%. Against `ce` on the same seeds, test split.")
    L.append("")
    L.append("| data set | from | search seed | winner | winner vs ce (test) | t | p | wins |")
    L.append("|---|---|---|---|---|---|---|---|")
    for tname, src, metric, pc, per in trows:
        for d in per:
            L.append(f"| {tname} ({metric}) | {src} | {d['seed']} | {code(d['expr'])} | "
                     f"{pair_txt(d['paired'])} |")
    L.append("")

    # efficiency
    wall = sum(e["wall"] for e in eff)
    eng = sum(e["engine"] for e in eff)
    gen = sum(e["generated"] for e in eff)
    kept = sum(e["cache"] + e["sig"] + e["rej"] for e in eff)
    L.append("## What the search itself costs")
    L.append("")
    L.append("`search_overhead_share`: time in the engine (proposing, canonicalising, gradient "
             "signatures, bookkeeping) over the wall time of `lossd search`. Proposed: every "
             "candidate the engine generated (`stats.generated`); kept from full training: the "
             "canonical-hash cache, the gradient-signature check and the rejection checks.")
    L.append("")
    L.append("| job | searches | wall s (sum) | engine share (all / worst search) | proposed | "
             "cache hits | signature hits | rejections | kept from training | trainings (+final) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for key, *_ in rows:
        es = [e for e in eff if e["job"] == key]
        w = sum(e["wall"] for e in es)
        en = sum(e["engine"] for e in es)
        worst = max(e["engine"] / e["wall"] for e in es if e["wall"] > 0)
        gn = sum(e["generated"] for e in es)
        c, s_, r = (sum(e[k] for e in es) for k in ("cache", "sig", "rej"))
        L.append(f"| {key} | {len(es)} | {w:.1f} | {100 * en / w:.2f}% / {100 * worst:.2f}% | {gn} | "
                 f"{c} | {s_} | {r} | {100 * (c + s_ + r) / gn:.1f}% | "
                 f"{sum(e['evals'] for e in es)} (+{sum(e['final'] for e in es)}) |")
    L.append(f"| **all** | {len(eff)} | {wall:.1f} | **{100 * eng / wall:.2f}%** | {gen} | "
             f"{sum(e['cache'] for e in eff)} | {sum(e['sig'] for e in eff)} | "
             f"{sum(e['rej'] for e in eff)} | **{100 * kept / gen:.1f}%** | "
             f"{sum(e['evals'] for e in eff)} (+{sum(e['final'] for e in eff)}) |")
    L.append("")
    L.append("## Commands")
    L.append("")
    L.append("```")
    L.append("make")
    L.append("bench/results.sh          # every job, 2 workers, writes docs/results.md")
    L.append("ROWS=generative bench/results.sh   # only the generative rows (bench/gen_results.py)")
    L.append(f"# what it runs, per job and search seed S in {' '.join(map(str, SEARCH_SEEDS))}:")
    L.append(f"nice -n 19 bin/lossd search bench/jobs/JOB.json --workers {WORKERS} --quiet --seed S")
    L.append(f"nice -n 19 bin/lossd eval --task TASK.json --loss 'WINNER' --seed K   "
             f"# K = 100*S .. 100*S+{EVAL_SEEDS - 1}, and the same with the baseline")
    L.append("```")
    L.append("")
    L.append("`TASK.json` is the job's first task written out as a task file. Environment: "
             "`SEARCH_SEEDS`, `EVAL_SEEDS`, `WORKERS`, `LOSSD_BIN`, `RAW_DIR` (keep every search "
             "report), `OUT`. The searches are deterministic (same build, job and seed give the same "
             "leaderboard); only the wall times and the overhead shares vary with the machine's load.")
    L.append("")
    for kept in (load_tpe_section(), load_section(SMALL_MARK, True), load_section(GAN_MARK, True)):
        if kept:
            L.append(kept)
            L.append("")
    L.append(READING_MARK)
    L.append("")
    reading = load_reading()
    L.append(reading if reading else "(no reading yet)")
    L.append("")
    for mark in AFTER_READING:  # the families' own rows, written by hand from their scripts
        kept = load_section(mark, True)
        if kept:
            L.append(kept)
            L.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(L))


READING_MARK = "## Reading"


def load_section(mark, with_heading=False):
    """A section of the previous docs/results.md, up to the next heading of its level."""
    try:
        text = open(OUT).read()
    except OSError:
        return ""
    i = text.find(mark + "\n")
    if i < 0:
        return ""
    j = text.find("\n## ", i + len(mark))
    return text[i if with_heading else i + len(mark) + 1:j if j >= 0 else len(text)].strip()


def load_reading():
    """The hand-written reading of the previous docs/results.md and every section after it (written
    by hand too: RL and deployment), kept across regenerations."""
    try:
        text = open(OUT).read()
    except OSError:
        return ""
    i = text.find(READING_MARK + "\n")
    return text[i + len(READING_MARK) + 1:].strip() if i >= 0 else ""


TPE_MARK = "## Against a tuned mixture: Optuna TPE"

# Sections after the reading, each a family's row measured by its own script (bench/rl_results.py
# and deploy_results.py written by hand; bench/gen_results.py rewrites the generative ones after
# this script when bench/results.sh runs): kept across reruns.
AFTER_READING = ("## RL and deployment precision (issue 10)",
                 "## At your recipe: do the winners hold over longer, wider training? (issue 17)",
                 "## Generative: autoencoder (issue 9)")


# The section of issue 12's measurements (bench/small/run.py and the rung bar's A/B), written by
# hand from their output and kept across reruns like the TPE section.
SMALL_MARK = "## Small data and fewer wasted trainings"
# the GAN row (issue 9), written by bench/gen_results.py (bench/results.sh runs it after this
# script) and kept across reruns here
GAN_MARK = "## Generative: GAN (issue 9)"


def load_tpe_section():
    """The section bench/vs_optuna.py writes (lossd against Optuna TPE), kept across reruns."""
    return load_section(TPE_MARK, True)


def final_txt(f):
    if not f:
        return "-"
    return (f"rel. diff {g(f['mean_diff'], 3)}, p {fp(f['p'])}, wins {f['wins']}/{f['n']}")


def pair_txt(p):
    if not p:
        return "- | - | - | -"
    return (f"{g(p['cand_mean'])} ± {g(p['cand_sd'], 2)} vs {g(p['base_mean'])} ± "
            f"{g(p['base_sd'], 2)} (diff {g(p['diff'], 3)}) | {ft(p['t'])} | {fp(p['p'])} | "
            f"{p['wins']}/{p['n']}")


if __name__ == "__main__":
    main()
