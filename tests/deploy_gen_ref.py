#!/usr/bin/python3
"""deploy_gen_ref.py: the generative family's int8 metrics from the quantiser's NumPy reference
path (gen_quant_ref.py: calib_ranges, forward_int8) on models tests/test_deploy.c trained and
wrote: prints the deployed metrics of the validation and test splits and how far lossd's
calibration ranges are from NumPy's own, relative to the range.

kind "ae": the int8 encoder calibrated on the training rows, the int8 decoder calibrated on the
fp32 encoder's latents of those rows; reconstructions sigmoid(dec(enc(x))); rec_mse (per value)
and the fixed digits classifier's accuracy on the reconstructions (rec_accuracy).
kind "gan": the int8 generator calibrated on the given noise rows; samples sigmoid(gen(z)) of the
split's scoring noise; the Frechet distance between the fixed network's tanh features of the
samples and of the split's rows (Gaussian moments, covariance over n - 1), and class coverage (the
share of classes given at least 1/(2K) of the samples).
Usage: deploy_gen_ref.py CASE.json"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_quant_ref import F, calib_ranges, forward_fp32, forward_int8  # noqa: E402


def model(m):
    dims = m["dims"]
    ws = [np.array(m["w%d" % l], F).reshape(dims[l], dims[l + 1]) for l in range(len(dims) - 1)]
    bs = [np.array(m["b%d" % l], F) for l in range(len(dims) - 1)]
    return ws, bs, [F(v) for v in m["lo"]], [F(v) for v in m["hi"]], m["act"]


def rel(lo, hi, nlo, nhi):
    return max(abs(float(a) - float(b)) / max(float(h) - float(l0), 1e-12)
               for a, b, h, l0 in zip(lo + hi, nlo + nhi, hi + hi, lo + lo))


def sigmoid(o):
    return (1.0 / (1.0 + np.exp(-o.astype(np.float64)))).astype(F)


c = json.load(open(sys.argv[1]))
net = json.load(open(c["fixednet"]))
d, h, k = net["inputs"], net["hidden"], net["classes"]
fw0, fb0 = np.array(net["w0"], F).reshape(d, h), np.array(net["b0"], F)
fw1, fb1 = np.array(net["w1"], F).reshape(h, k), np.array(net["b1"], F)


def features(x):
    return np.tanh((x @ fw0 + fb0).astype(F)).astype(F)


def classify(x):
    return np.argmax((features(x) @ fw1 + fb1).astype(F), axis=1)


def frechet(f1, f2):
    f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
    m1, m2 = f1.mean(axis=0), f2.mean(axis=0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    ev, v = np.linalg.eigh(c1)
    r = (v * np.sqrt(np.clip(ev, 0, None))) @ v.T
    a = r @ c2 @ r
    ev2 = np.linalg.eigvalsh((a + a.T) / 2)
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(np.clip(ev2, 0, None)).sum())


out = {}
if c["kind"] == "ae":
    ew, eb, elo, ehi, eact = model(c["enc"])
    dw, db, dlo, dhi, dact = model(c["dec"])
    calib = np.array(c["calib"], F).reshape(-1, ew[0].shape[0])
    nelo, nehi = calib_ranges(ew, eb, calib, eact)
    ndlo, ndhi = calib_ranges(dw, db, forward_fp32(ew, eb, calib, eact), dact)
    r = max(rel(elo, ehi, nelo, nehi), rel(dlo, dhi, ndlo, ndhi))
    for split in ("val", "test"):
        x = np.array(c[split + "_x"], F).reshape(-1, ew[0].shape[0])
        y = np.array(c[split + "_y"])
        xh = sigmoid(forward_int8(dw, db, forward_int8(ew, eb, x, eact, elo, ehi), dact, dlo, dhi))
        out[split] = (float(((xh.astype(np.float64) - x) ** 2).mean()), float(np.mean(classify(xh) == y)))
else:
    gw, gb, glo, ghi, gact = model(c["gen"])
    nz = gw[0].shape[0]
    nlo, nhi = calib_ranges(gw, gb, np.array(c["calib"], F).reshape(-1, nz), gact)
    r = rel(glo, ghi, nlo, nhi)
    for split in ("val", "test"):
        x = np.array(c[split + "_x"], F).reshape(-1, d)
        z = np.array(c[split + "_noise"], F).reshape(-1, nz)
        g = sigmoid(forward_int8(gw, gb, z, gact, glo, ghi))
        counts = np.bincount(classify(g), minlength=k)
        out[split] = (frechet(features(x), features(g)), float(np.mean(counts * 2 * k >= len(x))))
print("val %.17g %.17g test %.17g %.17g range_rel %.3g" % (out["val"] + out["test"] + (r,)))
