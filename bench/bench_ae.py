#!/usr/bin/python3
"""bench_ae.py: the autoencoder evaluation's speed against its PyTorch reference, measured in the
same run (part of `make bench`): digits, MLP autoencoder 64-32-8-32-64 (ReLU, sigmoid outputs),
Adam 3e-3, batch 64, 300 steps, loss rec, scored on the validation and test splits (rec_mse and
the fixed classifier's rec_accuracy).

    python3 bench/bench_ae.py [--evals N] [--rounds R]

lossd: `lossd eval --batch` with one worker, N evaluations (seeds 0..N-1), the evaluations'
own wall time (training and scoring, not the task's loading); PyTorch: bench/ae_torch.py (one
thread, the same model, data, split sizes and scoring). Each side's best of R rounds, rounds
interleaved (the machine may be shared). Both run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset (the CPU's own OpenBLAS kernel), in this script's commands only; the kernel is reported.
Prints one JSON line: per-evaluation times, the ratio (goal >= 20 per thread), the kernel.

--compare OLD_LOSSD also runs another lossd build in each round (the same evaluations, interleaved
with this checkout's) and adds both builds' per-evaluation wall times (fastest, 10th percentile,
median over every evaluation of every round): on a loaded machine, where the ratio to PyTorch is
inflated (PyTorch slows down more), two lossd builds still compare like for like."""
import argparse, ctypes, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = {"name": "digits-ae", "family": "generative", "data": "builtin:digits",
        "model": {"hidden": [32], "activation": "relu", "latent": 8}, "train": {"batch": 64, "steps": 300, "lr": 0.003}}


def env():
    e = dict(os.environ)
    e.pop("OPENBLAS_CORETYPE", None)
    e.pop("OPENBLAS_L2_SIZE", None)
    return e


def kernel():
    """The OpenBLAS core this machine selects with the variables unset (a child process)."""
    code = ("import ctypes; b = ctypes.CDLL('libopenblas.so.0'); b.openblas_get_corename.restype = ctypes.c_char_p; "
            "b.openblas_get_config.restype = ctypes.c_char_p; "
            "print(b.openblas_get_corename().decode() + ' (' + b.openblas_get_config().decode().strip() + ')')")
    try:
        return subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception as ex:  # noqa: BLE001
        return "unknown (%s)" % ex


def lossd_round(task, n, binary=None, walls=None):
    lines = "".join(json.dumps({"loss": "rec", "seed": s, "id": s}) + "\n" for s in range(n))
    out = subprocess.run([binary or os.path.join(ROOT, "bin/lossd"), "eval", "--task", task, "--batch", "-",
                          "--workers", "1"], input=lines, env=env(), capture_output=True, text=True, check=True).stdout
    res = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert len(res) == n and all(r["status"] == "ok" for r in res), out[:400]
    if walls is not None:
        walls.extend(r["wall_ms"] for r in res)
    ms = sum(r["wall_ms"] for r in res) / n
    acc = sum(r["metrics"]["rec_accuracy"]["val"] for r in res) / n
    return ms, acc


def spread(w):
    w = sorted(w)
    return {"fastest": round(w[0], 2), "p10": round(w[len(w) // 10], 2), "median": round(w[len(w) // 2], 2)}


def torch_round(n):
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench/ae_torch.py"), "300", str(n)], env=env(),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evals", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-evals", type=int, default=3)
    ap.add_argument("--compare", metavar="OLD_LOSSD", help="another lossd binary to time in the same rounds")
    a = ap.parse_args()
    walls, old_walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        task = os.path.join(tmp, "task.json")
        with open(task, "w") as f:
            json.dump(TASK, f)
        ours, ref, acc, racc = [], [], None, None
        for _ in range(a.rounds):
            ms, acc = lossd_round(task, a.evals, walls=walls)
            ours.append(ms)
            if a.compare:
                lossd_round(task, a.evals, a.compare, old_walls)
            r = torch_round(a.torch_evals)
            ref.append(1000.0 / r["evals_per_s"])
            racc = r["mean_val_rec_accuracy"]
    best, rbest = min(ours), min(ref)
    extra = {"compare": {"this_lossd_ms": spread(walls), "old_lossd_ms": spread(old_walls),
                         "old_lossd": a.compare}} if a.compare else {}
    print(json.dumps({"bench": "autoencoder 64-32-8-32-64, batch 64, 300 steps, rec, digits",
                      "lossd_ms_per_eval": round(best, 2), "lossd_us_per_step": round(best * 1000 / 300, 1),
                      "torch_ms_per_eval": round(rbest, 1), "torch_us_per_step": round(rbest * 1000 / 300, 1),
                      "speedup_vs_torch": round(rbest / best, 2), "target_speedup": 20,
                      "lossd_rounds_ms": [round(v, 2) for v in ours], "torch_rounds_ms": [round(v, 1) for v in ref],
                      "lossd_mean_val_rec_accuracy": round(acc, 4), "torch_mean_val_rec_accuracy": racc,
                      "openblas_kernel": kernel(), "threads": 1, **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
