#!/usr/bin/python3
"""test_parity.py: lossd's training matches PyTorch step by step (bench/parity.py) on digits with
ce and 0.7*ce + 0.3*focal(2), and on diabetes with mse. Skips (0 failed, with a note) when torch
is not importable. Prints `N passed, N failed` last."""
import os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
passed = failed = 0
try:
    import torch  # noqa: F401
except ImportError:
    print("skip: torch is not importable (apt-get install python3-torch); parity not checked")
    print("0 passed, 0 failed")
    sys.exit(0)
import parity

lossd = os.path.join(os.environ.get("LOSSD_BIN", os.path.join(ROOT, "bin")), "lossd")
if not os.path.isabs(lossd):
    lossd = os.path.join(ROOT, lossd)
for name in parity.CASES:
    try:
        r = parity.run_case(lossd, name, 200)
    except Exception as e:  # a failed lossd run is a failed case, with its message
        r = {"case": name, "ok": False, "error": str(e)}
    if r["ok"]:
        passed += 1
        print("ok   %s: max relative step-loss difference %.2e (tolerance 1e-4), val lossd %.6g torch %.6g"
              % (name, r["max_rel_diff"], r["lossd_val"], r["torch_val"]))
    else:
        failed += 1
        print("FAIL %s: %s" % (name, r))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
