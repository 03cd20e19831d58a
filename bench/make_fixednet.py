#!/usr/bin/env python3
"""make_fixednet.py: makes data/digits_fixednet.json, the generative family's fixed digits networks
(evaluator/fixednet.h), by training a small digits classifier with lossd itself:

    python3 bench/make_fixednet.py [--lossd bin/lossd] [--out data/digits_fixednet.json]

runs `lossd eval` on builtin:digits (64 pixels -> 32 tanh -> 10, cross-entropy, 1500 steps, seed
0, the default split: 60% train, 20% validation, 20% test, split seed 0) with --dump-trace, and
folds the trace's feature standardisation (x = (raw - mean) / sd) and the pixel scale (the
generative family reads digits pixels divided by 16, in [0, 1]) into the first layer, so that the
networks take pixels in [0, 1]:  w0'[j] = w0[j] * 16 / sd[j],  b0' = b0 - sum_j mean[j] / sd[j] w0[j].
The file records the command and the classifier's validation and test accuracy. Deterministic:
the same lossd gives the same file."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

TASK = {"name": "digits_fixednet", "data": "builtin:digits",
        "model": {"hidden": [32], "activation": "tanh"},
        "train": {"steps": 1500, "batch": 64, "lr": 0.003}}
LOSS, SEED, SCALE = "ce", 0, 16.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--lossd", default=os.path.join(root, "bin/lossd"))
    ap.add_argument("--out", default=os.path.join(root, "data/digits_fixednet.json"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task = os.path.join(tmp, "task.json")
        trace = os.path.join(tmp, "trace.json")
        with open(task, "w") as f:
            json.dump(TASK, f)
        cmd = [a.lossd, "eval", "--task", task, "--loss", LOSS, "--seed", str(SEED), "--dump-trace", trace]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        with open(trace) as f:
            tr = json.load(f)
    d, h, k = tr["dims"]
    assert tr["activation"] == "tanh" and res["status"] == "ok", res
    p = tr["final_params"]
    w0, b0 = p[:d * h], p[d * h:d * h + h]
    w1, b1 = p[d * h + h:d * h + h + h * k], p[d * h + h + h * k:]
    mean, sd = tr["x_mean"], tr["x_sd"]
    fw0 = [w0[j * h + f] * SCALE / sd[j] for j in range(d) for f in range(h)]
    fb0 = [b0[f] - sum(mean[j] / sd[j] * w0[j * h + f] for j in range(d)) for f in range(h)]
    out = {
        "what": "fixed digits networks of the generative family: 64 pixels in [0, 1] (digits / 16) -> "
                "32 tanh features (perc, the Frechet distance) -> 10 class logits (rec_accuracy, coverage); "
                "out = in @ w + b, w row-major (inputs, outputs)",
        "made_by": "python3 bench/make_fixednet.py (lossd eval --task " + json.dumps(TASK) +
                   " --loss " + LOSS + " --seed " + str(SEED) + " --dump-trace)",
        "inputs": d, "hidden": h, "classes": k, "activation": "tanh",
        "val_accuracy": res["metrics"]["accuracy"]["val"],
        "test_accuracy": res["metrics"]["accuracy"]["test"],
        "w0": [float("%.9g" % v) for v in fw0], "b0": [float("%.9g" % v) for v in fb0],
        "w1": [float("%.9g" % v) for v in w1], "b1": [float("%.9g" % v) for v in b1],
    }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("%s: val accuracy %.4f, test accuracy %.4f" % (a.out, out["val_accuracy"], out["test_accuracy"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
