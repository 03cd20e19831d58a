#!/usr/bin/env python3
"""gen_results.py: the generative family's two results rows (issue 9), run by bench/results.sh
and written into docs/results.md in place of their sections ("Generative: autoencoder (issue 9)"
and "Generative: GAN (issue 9)"; the rest of the file is left as it is).

(1) Autoencoder: the digits with 30% of the training pixels set to 0 or 1 at random (salt and
pepper, transform.pixel_noise; validation and test pixels clean), 64-32-8-32-64, 300 steps. Each
of --ae-searches loss searches (--ae-evals evaluations, search seeds 1, 2, ...) selects on the
validation split's rec_accuracy (the fixed digits classifier's accuracy on the reconstructions);
each winner, the baseline `rec` and the textbook `bce_rec` and `rec + 0.1*perc` are re-trained on
--seeds fresh seeds (100, 101, ...) and judged on the test split, paired seed by seed.
(2) GAN: the default GAN on the digits (1000 generator steps, the discriminator on nsgan); each of
--gan-searches searches for the generator's loss (--gan-evals evaluations; adversarial terms,
the reconstruction terms the GAN reads through its encoder, a few primitives) selects on the
validation split's Frechet distance in the fixed digits network's features; each winner and
`nsgan` are re-trained on the fresh seeds and judged on the test split's distance, paired.

Every command runs under nice -n 19 (the machine is shared). Usage:
  bench/gen_results.py [--bin DIR] [--out FILE | --print] [--ae-searches N] [--ae-evals N]
                       [--gan-searches N] [--gan-evals N] [--seeds N] [--rows ae,gan]"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

from rl_results import mean_sd, run_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AE_MARK = "## Generative: autoencoder (issue 9)"
GAN_MARK = "## Generative: GAN (issue 9)"
AE_REFS = ("rec", "bce_rec", "rec + 0.1*perc")  # the baseline, then textbook references
AE_TASK = {"name": "digits-ae-noisy", "family": "generative", "data": "builtin:digits",
           "transform": {"pixel_noise": 0.3}, "model": {"kind": "autoencoder", "hidden": [32], "latent": 8},
           "train": {"steps": 300}}
GAN_BASE = "nsgan"
GAN_REFS = ("nsgan + 10*rec",)  # textbook references: the squared form of pix2pix's L1 + GAN
GAN_TASK = {"name": "digits-gan", "family": "generative", "data": "builtin:digits", "model": {"kind": "gan"},
            "train": {"steps": 1000}}
GAN_SPACE = {"terms": ["gan", "nsgan", "wgan", "hinge_gan", "rec", "bce_rec", "perc"],
             "primitives": ["dgz", "t", "+", "-", "*", "softplus", "sigmoid", "log", "exp", "tanh"],
             "max_nodes": 10, "max_depth": 5}


def student_p(t, df):
    """Two-sided p of Student's t (numerical integration of the density; df small)."""
    if t is None:
        return float("nan")
    t = abs(t)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    n = 20000
    h = t / n
    area = sum(c * (1 + ((k + 0.5) * h) ** 2 / df) ** (-(df + 1) / 2) for k in range(n)) * h
    return max(0.0, 1.0 - 2 * area)


def paired(res, a, b, seeds, higher_better):
    """a against b on the test split over the seeds both finished: mean difference (+ = a better),
    its standard error, p of the paired t-test, seeds a is strictly better on, seeds compared."""
    both = [s for s in seeds if res[(a, s)]["status"] == "ok" and res[(b, s)]["status"] == "ok"]
    sign = 1 if higher_better else -1
    d = [sign * (res[(a, s)]["test"] - res[(b, s)]["test"]) for s in both]
    if not d:
        return {"diff": float("nan"), "se": float("nan"), "p": float("nan"), "wins": 0, "n": 0, "median": float("nan")}
    m, sd = mean_sd(d)
    se = sd / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    t = m / se if se and se > 0 else None
    ds = sorted(d)
    med = (ds[(len(ds) - 1) // 2] + ds[len(ds) // 2]) / 2
    return {"diff": m, "se": se, "p": student_p(t, len(d) - 1) if t is not None else (1.0 if m == 0 else 0.0),
            "wins": sum(x > 0 for x in d), "n": len(d), "median": med}


def search(lossd, tmp, name, job):
    path = os.path.join(tmp, name + ".job.json")
    json.dump(job, open(path, "w"))
    t0 = time.time()
    rep = json.loads(subprocess.run([lossd, "search", path, "--workers", "2", "--quiet"],
                                    capture_output=True, text=True, check=True, cwd=tmp).stdout)
    rep["_wall"] = time.time() - t0
    return rep


def pair_txt(p, better):
    return "%+.4f ± %.4f (se; median %+.4f), p = %.2g, %s on %d of %d" % (p["diff"], p["se"], p["median"], p["p"],
                                                                          better, p["wins"], p["n"])


def verdict(p):
    if p["n"] < 2 or not (p["p"] < 0.05):
        return "within noise"
    return "better" if p["diff"] > 0 else "worse"


def searches(lossd, tmp, kind, task_spec, n, job, baseline, refs, nseeds):
    """Writes the task as KIND.task.json and runs n searches of job on it (search seeds 1..n), then
    re-trains each winner, the baseline and the references refs on nseeds fresh seeds (100, ...).
    Returns, per search, (search seed, winner, evaluations, wall seconds) (the winner is the
    search's own pick, its best non-baseline entry; the baseline when there is none), the losses,
    the seeds and {(loss, seed): lossd eval's result}."""
    task = os.path.join(tmp, kind + ".task.json")
    json.dump(task_spec, open(task, "w"))
    info = []
    for ss in range(1, n + 1):
        rep = search(lossd, tmp, "%s%d" % (kind, ss), dict(job, tasks=[kind + ".task.json"], seed=ss))
        best = next((e["expr"] for e in rep["leaderboard"] if e["op"] != "baseline"), baseline)
        info.append((ss, best, rep["evaluations"], rep["_wall"]))
        print("[gen_results] %s search seed %d: %d evaluations, %.0f s, winner %s"
              % (kind, ss, rep["evaluations"], rep["_wall"], best), file=sys.stderr)
    losses = list(dict.fromkeys([w for _, w, _, _ in info] + [baseline] + list(refs)))
    seeds = list(range(100, 100 + nseeds))
    return info, losses, seeds, run_batch(lossd, task, losses, seeds)


def ae_row(lossd, tmp, args):
    info, losses, seeds, res = searches(
        lossd, tmp, "ae", AE_TASK, args.ae_searches,
        {"name": "ae-results", "population": 12, "children": 8, "budget": {"evaluations": args.ae_evals},
         "seeds": 2, "final": {"top": 3, "seeds": 4}}, AE_REFS[0], AE_REFS[1:], args.seeds)
    L = [AE_MARK, "",
         "Row (1) of issue 9: an autoencoder on the digits (64-32-8-32-64, 300 steps) whose training pixels "
         "are 30%% salt and pepper (`transform.pixel_noise: 0.3`; validation and test pixels clean), judged by "
         "the fixed digits classifier's accuracy on the reconstructions of the test rows (`rec_accuracy`, "
         "higher is better; docs/families.md, \"Generative\"). %d searches of %d evaluations (search seeds "
         "1-%d, each selecting on the validation split), then each winner, the baseline `rec` and the textbook "
         "`bce_rec` and `rec + 0.1*perc` re-trained on %d fresh seeds (%d-%d) and compared on the test split, "
         "paired seed by seed. Measured by `bench/results.sh` (`ROWS=generative bench/results.sh` runs only "
         "the generative rows, through `bench/gen_results.py`; every command under `nice -n 19`):"
         % (args.ae_searches, args.ae_evals, args.ae_searches, args.seeds, seeds[0], seeds[-1]), "",
         "```",
         "nice -n 19 bin/lossd search AE_JOB.json --workers 2 --quiet    # search seed S = 1..%d, %d evaluations"
         % (args.ae_searches, args.ae_evals),
         "nice -n 19 bin/lossd eval --task AE_TASK.json --batch - --workers 2   # each loss on seeds %d..%d"
         % (seeds[0], seeds[-1]),
         "```", "",
         "| loss | test rec_accuracy (mean ± sd, %d fresh seeds) | test rec_mse | failed |" % len(seeds),
         "|---|---|---|---|"]
    for l in losses:
        ok = [res[(l, s)] for s in seeds if res[(l, s)]["status"] == "ok"]
        m, sd = mean_sd([r["test"] for r in ok]) if ok else (float("nan"), float("nan"))
        mm, _ = mean_sd([r["metrics"]["rec_mse"]["test"] for r in ok]) if ok else (float("nan"), 0)
        who = ", ".join("search seed %d" % s for s, w, _, _ in info if w == l)
        name = "`%s` (%s)" % (l, who) if who else "`%s`%s" % (l, " (baseline)" if l == "rec" else "")
        L.append("| %s | %.4f ± %.4f | %.4f | %d |" % (name.replace("|", "\\|"), m, sd, mm, len(seeds) - len(ok)))
    L += ["", "| winner | vs `rec` | vs `rec + 0.1*perc` | verdict vs `rec` |", "|---|---|---|---|"]
    better = 0
    for ss, w, _, _ in info:
        p1 = paired(res, w, "rec", seeds, True)
        p2 = paired(res, w, "rec + 0.1*perc", seeds, True)
        better += verdict(p1) == "better"
        L.append("| search seed %d | %s | %s | %s |" % (ss, pair_txt(p1, "ahead"), pair_txt(p2, "ahead"), verdict(p1)))
    L += ["", "%d of %d searches found a loss better than `rec` on fresh seeds at p < 0.05 (paired t-test, "
          "not corrected for the %d comparisons)." % (better, len(info), len(info)), ""]
    return "\n".join(L)


def gan_row(lossd, tmp, args):
    info, losses, seeds, res = searches(
        lossd, tmp, "gan", GAN_TASK, args.gan_searches,
        {"name": "gan-results", "baseline": GAN_BASE, "space": GAN_SPACE, "population": 8, "children": 6,
         "budget": {"evaluations": args.gan_evals}, "seeds": 2, "fidelity": {"fractions": [0.3, 1.0], "promote": 0.34},
         "final": {"top": 2, "seeds": 3}}, GAN_BASE, GAN_REFS, args.seeds)
    L = [GAN_MARK, "",
         "Row (2) of issue 9: a GAN on the digits pixels (`model.kind` `gan`, the defaults of "
         "[families.md](families.md#generative-gans-modelkind-gan): 1000 generator steps, one discriminator "
         "step each, the discriminator on `nsgan`). %d searches for the generator's loss (%d evaluations each, "
         "search seeds 1-%d, 2 training seeds per candidate, fidelity 30%% then 100%% of the steps) over the "
         "adversarial terms, the reconstruction terms the GAN reads through its encoder (`rec`, `bce_rec`, "
         "`perc`: docs/families.md, \"Reconstruction terms on a GAN\") and a few primitives, selecting on the "
         "validation split's Fréchet distance in the fixed digits network's features; then each winner and "
         "`nsgan` re-trained on %d fresh seeds (%d-%d) and judged on the test split's distance, paired seed "
         "by seed. Lower is better. Measured by `bench/results.sh` (`ROWS=generative`, "
         "`bench/gen_results.py`), every command under `nice -n 19`."
         % (args.gan_searches, args.gan_evals, args.gan_searches, args.seeds, seeds[0], seeds[-1]), "",
         "| loss | test fid (mean ± sd, %d seeds) | test coverage (mean) | failed |" % len(seeds),
         "|---|---|---|---|"]
    for l in losses:
        ok = [res[(l, s)] for s in seeds if res[(l, s)]["status"] == "ok"]
        m, sd = mean_sd([r["test"] for r in ok]) if ok else (float("nan"), float("nan"))
        cov = sum(r["metrics"]["coverage"]["test"] for r in ok) / len(ok) if ok else float("nan")
        who = ", ".join("search seed %d" % s for s, w, _, _ in info if w == l)
        name = "`%s` (%s)" % (l, who) if who else "`%s`%s" % (l, " (baseline)" if l == GAN_BASE else "")
        L.append("| %s | %.3f ± %.3f | %.2f | %d |" % (name.replace("|", "\\|"), m, sd, cov, len(seeds) - len(ok)))
    L += ["", "| winner | vs `nsgan` (test fid; + = winner lower) | verdict | vs `%s` |" % GAN_REFS[0],
          "|---|---|---|---|"]
    better = 0
    for ss, w, _, _ in info:
        if w == GAN_BASE:
            L.append("| search seed %d | the winner is `nsgan` itself | - | - |" % ss)
            continue
        p = paired(res, w, GAN_BASE, seeds, False)
        better += verdict(p) == "better"
        L.append("| search seed %d | %s | %s | %s |" % (ss, pair_txt(p, "lower"), verdict(p),
                                                     pair_txt(paired(res, w, GAN_REFS[0], seeds, False), "lower")))
    pr = paired(res, GAN_REFS[0], GAN_BASE, seeds, False)
    L += ["", "The textbook mixture `%s` against `nsgan`: %s (%s)." % (GAN_REFS[0], pair_txt(pr, "lower"), verdict(pr)),
          "", "%d of %d searches found a generator loss better than `nsgan` on fresh seeds at p < 0.05 "
          "(paired t-test). Real validation against real test digits score 0.50 on this distance (the floor "
          "sampling noise leaves; tests/test_gan.c)." % (better, len(info)), ""]
    return "\n".join(L)


def replace_section(text, mark, new):
    """text with the section under heading mark (up to the next "## " heading) replaced by new;
    appended at the end when absent."""
    i = text.find(mark + "\n")
    if i < 0:
        return text.rstrip("\n") + "\n\n" + new.rstrip("\n") + "\n"
    j = text.find("\n## ", i + len(mark))
    tail = text[j + 1:] if j >= 0 else ""
    return text[:i] + new.rstrip("\n") + "\n\n" + tail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")))
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(ROOT, "docs", "results.md")))
    ap.add_argument("--print", action="store_true", help="print the sections instead of writing them")
    ap.add_argument("--rows", default="ae,gan")
    ap.add_argument("--ae-searches", type=int, default=3)
    ap.add_argument("--ae-evals", type=int, default=150)
    ap.add_argument("--gan-searches", type=int, default=2)
    ap.add_argument("--gan-evals", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=int(os.environ.get("EVAL_SEEDS", "10")))
    args = ap.parse_args()
    lossd = os.path.abspath(os.path.join(args.bin, "lossd"))
    os.nice(19)  # every command below runs niced: the machine is shared
    tmp = tempfile.mkdtemp(prefix="gen_results.")
    t0 = time.time()
    sections = []
    if "ae" in args.rows.split(","):
        sections.append((AE_MARK, ae_row(lossd, tmp, args)))
    if "gan" in args.rows.split(","):
        sections.append((GAN_MARK, gan_row(lossd, tmp, args)))
    if args.print:
        print("\n\n".join(s for _, s in sections))
    else:
        text = open(args.out).read() if os.path.exists(args.out) else ""
        for mark, s in sections:
            text = replace_section(text, mark, s)
        with open(args.out, "w") as f:
            f.write(text)
    print("[gen_results] %s in %.0f s" % ("printed" if args.print else "wrote " + args.out, time.time() - t0),
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
