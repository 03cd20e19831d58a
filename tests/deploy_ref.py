#!/usr/bin/python3
"""deploy_ref.py: the quantiser's NumPy reference path (gen_quant_ref.py: calib_ranges,
forward_int8) on a trained model tests/test_deploy.c writes: prints the int8 accuracy of the
validation and test rows and how far the given calibration ranges (lossd's) are from NumPy's own,
relative to the range. Usage: deploy_ref.py CASE.json"""
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
acc = {}
for split in ("val", "test"):
    x = np.array(c[split + "_x"], F).reshape(-1, dims[0])
    y = np.array(c[split + "_y"])
    z = forward_int8(ws, bs, x, c["act"], lo, hi)
    acc[split] = float(np.mean(np.argmax(z, axis=1) == y))
print("val %.17g test %.17g range_rel %.3g" % (acc["val"], acc["test"], rel))
