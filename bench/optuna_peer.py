#!/usr/bin/env python3
"""optuna_peer.py: what a practitioner would do instead of a loss search: Optuna's TPE tuning
the weights of a mixture of the family's textbook losses (and their parameters), each trial
trained by `lossd eval --batch` on the job's first task, so that only the search differs.

    bench/optuna_peer.py bench/jobs/noisy_labels.json --seed 1 [--budget N] [--workers 2]

The budget is counted in training runs, like lossd's `budget.evaluations`: each trial trains
the job's `seeds` seeds (the same seeds for every trial, as lossd's search does) at the task's
full steps, so budget // seeds trials. Weights are log-uniform in [1e-3, 1]; the pick is the
trial with the best mean validation metric (the test split is never read). Prints one JSON
object: the pick, its validation mean, trials, training runs and the wall time. Needs Debian's
python3-optuna (3.1); `make bench-deps` installs it."""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# The family's textbook mixture: (term as printed, [(parameter, low, high, log scale)]).
# A term with a parameter prints as name(value).
MIXTURES = {
    "classification": [("ce", []), ("mae", []), ("focal", [("gamma", 0.0, 5.0, False)]),
                       ("smooth", [("eps", 1e-3, 0.5, True)]),
                       ("poly1", [("eps", -1.0, 5.0, False)])],
    "regression": [("mse", []), ("mae", []), ("huber", [("delta", 1e-2, 10.0, True)]),
                   ("logcosh", [])],
    "physics": [("mse", []), ("mae", []), ("huber", [("delta", 1e-2, 10.0, True)]),
                ("logcosh", []), ("phys", []), ("bc", [])],
    "contrastive": [("infonce", [("tau", 0.02, 1.0, True)]), ("supcon", [("tau", 0.02, 1.0, True)]),
                    ("l2", [])],
}
# The single textbook losses each family's mixture is made of, for the "best single loss"
# column of the comparison.
SINGLES = {
    "classification": ["ce", "mae", "focal(2)", "smooth(0.1)", "poly1(1)"],
    "regression": ["mse", "mae", "huber(1)", "logcosh"],
    "physics": ["mse", "mae", "huber(1)", "logcosh", "mse + phys + bc"],
    "contrastive": ["infonce(0.1)", "supcon(0.1)", "infonce(0.2)"],
}
HIGHER_BETTER = {"accuracy", "balanced_accuracy", "macro_f1", "knn_accuracy"}


def fmt(x):
    return f"{x:.4g}"


def mixture_expr(family, params):
    """The loss text for one trial's parameters."""
    parts = []
    for name, ps in MIXTURES[family]:
        w = params[f"w_{name}"]
        term = name if not ps else f"{name}({', '.join(fmt(params[f'{name}_{p[0]}']) for p in ps)})"
        parts.append(f"{fmt(w)}*{term}")
    return " + ".join(parts)


def suggest(trial, family):
    params = {}
    for name, ps in MIXTURES[family]:
        params[f"w_{name}"] = trial.suggest_float(f"w_{name}", 1e-3, 1.0, log=True)
        for p, lo, hi, log in ps:
            params[f"{name}_{p}"] = trial.suggest_float(f"{name}_{p}", lo, hi, log=log)
    return params


def write_task(job_path, spec, out_dir, name):
    """The job's task as a file for `lossd eval`, with a relative data path made absolute."""
    spec = dict(spec)
    data = spec.get("data", "")
    if not data.startswith("builtin:") and not os.path.isabs(data):
        spec["data"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(job_path)), data))
    path = os.path.join(out_dir, name + ".task.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


class Batch:
    """One `lossd eval --batch` process on one task: write lines, read their answers."""

    def __init__(self, lossd, task_file, workers, nice=True):
        cmd = (["nice", "-n", "19"] if nice else []) + [lossd, "eval", "--task", task_file,
                                                        "--batch", "-", "--workers", str(workers)]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  cwd=ROOT)

    def run(self, items):
        """items: [(loss, seed)] or [(loss, seed, steps)]; returns the answers (dicts) in the
        same order."""
        for it in items:
            line = {"loss": it[0], "seed": it[1]}
            if len(it) > 2:
                line["steps"] = it[2]
            self.p.stdin.write(json.dumps(line) + "\n")
        self.p.stdin.flush()
        out = []
        for _ in items:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"lossd eval --batch ended early (exit {self.p.wait()})")
            out.append(json.loads(line))
        return out

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def family_of(task_file, lossd):
    """The task's family: its spec's, else classification when its metric is (a regression
    task's default metric is mse, lower is better)."""
    spec = json.load(open(task_file))
    if spec.get("family"):
        return spec["family"]
    r = subprocess.run([lossd, "eval", "--task", task_file, "--loss", "mse", "--steps", "1"],
                       capture_output=True, text=True, cwd=ROOT)
    return "classification" if json.loads(r.stdout).get("metric") in HIGHER_BETTER else "regression"


def tpe_search(job_path, seed, lossd, workers=2, budget=None, tmp="/tmp", log=None):
    """Runs the TPE peer on the job's first task; returns the report dict."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    job = json.load(open(job_path))
    spec = job["tasks"][0]
    task_file = write_task(job_path, spec, tmp, "tpe_" + os.path.basename(job_path).split(".")[0])
    nseeds = int(job.get("seeds", 1))
    budget = int(budget or job.get("budget", {}).get("evaluations", 100))
    family = spec.get("family") or family_of(task_file, lossd)
    ntrials = max(1, budget // nseeds)
    train_seeds = list(range(1, nseeds + 1))
    sampler = optuna.samplers.TPESampler(seed=seed)
    batch = Batch(lossd, task_file, workers)
    t0 = time.time()
    best = None
    runs = 0
    # the direction from the task's metric: a one-step run, not counted as a training run
    probe = batch.run([(SINGLES[family][0], 0, 1)])[0]
    hb = probe.get("metric") in HIGHER_BETTER
    study = optuna.create_study(direction="maximize" if hb else "minimize", sampler=sampler)
    for i in range(ntrials):
        trial = study.ask()
        params = suggest(trial, family)
        loss = mixture_expr(family, params)
        ans = batch.run([(loss, s) for s in train_seeds])
        runs += len(ans)
        vals = [a["val"] for a in ans if a.get("status") == "ok" and a.get("val") is not None]
        if len(vals) < len(ans):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        v = sum(vals) / len(vals)
        study.tell(trial, v)
        if best is None or (v > best[1] if hb else v < best[1]):
            best = (loss, v, i)
        if log:
            print(f"[tpe] trial {i} {v:.5g} {loss}", file=log)
    batch.close()
    return {"job": os.path.relpath(job_path, ROOT), "seed": seed, "family": family,
            "metric_higher_better": hb, "trials": ntrials, "training_runs": runs,
            "train_seeds": train_seeds, "pick": best[0] if best else None,
            "pick_val": best[1] if best else None, "pick_trial": best[2] if best else None,
            "wall_s": round(time.time() - t0, 2), "optuna": optuna.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=int, default=None, help="training runs (default: the job's budget.evaluations)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lossd", default=os.path.join(ROOT, os.environ.get("LOSSD_BIN", "bin"), "lossd"))
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    import tempfile
    with tempfile.TemporaryDirectory(prefix="lossd_tpe.") as tmp:
        rep = tpe_search(a.job, a.seed, a.lossd, a.workers, a.budget, tmp, sys.stderr if a.verbose else None)
    print(json.dumps(rep))


if __name__ == "__main__":
    main()
