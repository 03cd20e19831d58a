#!/usr/bin/python3
"""deploy_ref.py: the quantiser's NumPy reference path (gen_quant_ref.py: calib_ranges,
forward_int8) on a trained model tests/test_deploy.c writes: prints the int8 metric of the
validation and test rows and how far the given calibration ranges (lossd's) are from NumPy's own,
relative to the range. The case's "kind" says which metric: "classify" (default: accuracy of the
argmax), "physics" (the relative L2 error of u against the exact u_ref on the points) or "knn"
(k-NN accuracy of normalised embeddings against the training rows' bank, as contrastive.c votes:
most neighbours, then the larger summed similarity, then the smaller class).
Usage: deploy_ref.py CASE.json"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_quant_ref import F, calib_ranges, forward_int8  # noqa: E402

c = json.load(open(sys.argv[1]))
dims = c["dims"]
ws = [np.array(c["w%d" % l], F).reshape(dims[l], dims[l + 1]) for l in range(len(dims) - 1)]
bs = [np.array(c["b%d" % l], F) for l in range(len(dims) - 1)]
lo, hi = [F(v) for v in c["lo"]], [F(v) for v in c["hi"]]
nlo, nhi = calib_ranges(ws, bs, np.array(c["calib"], F).reshape(-1, dims[0]), c["act"])
rel = max(abs(float(a) - float(b)) / max(float(h) - float(l0), 1e-12)
          for a, b, h, l0 in zip(lo + hi, nlo + nhi, hi + hi, lo + lo))
kind = c.get("kind", "classify")


def embed(x):
    e = forward_int8(ws, bs, x, c["act"], lo, hi).astype(np.float64)
    n = np.sqrt((e * e).sum(axis=1, keepdims=True))
    return (e / np.where(n > 1e-12, n, 1.0)).astype(F)


def knn(bank, blab, q, k, nclass):
    sims = (q @ bank.T).astype(F)
    out = []
    for s in sims:
        top = np.argsort(-s, kind="stable")[:k]
        votes = np.zeros(nclass)
        simsum = np.zeros(nclass)
        for j in top:
            votes[blab[j]] += 1
            simsum[blab[j]] += s[j]
        best = 0
        for cl in range(1, nclass):
            if votes[cl] > votes[best] or (votes[cl] == votes[best] and simsum[cl] > simsum[best]):
                best = cl
        out.append(best)
    return np.array(out)


if kind == "knn":
    bank = embed(np.array(c["calib"], F).reshape(-1, dims[0]))
    blab = np.array(c["calib_y"])
acc = {}
for split in ("val", "test"):
    x = np.array(c[split + "_x"], F).reshape(-1, dims[0])
    y = np.array(c[split + "_y"])
    if kind == "physics":
        u = forward_int8(ws, bs, x, c["act"], lo, hi)[:, 0].astype(np.float64)
        acc[split] = float(np.sqrt(((u - y) ** 2).sum() / (y.astype(np.float64) ** 2).sum()))
    elif kind == "knn":
        acc[split] = float(np.mean(knn(bank, blab, embed(x), c["k"], c["nclass"]) == y))
    else:
        z = forward_int8(ws, bs, x, c["act"], lo, hi)
        acc[split] = float(np.mean(np.argmax(z, axis=1) == y))
print("val %.17g test %.17g range_rel %.3g" % (acc["val"], acc["test"], rel))
