#!/usr/bin/env python3
"""run_cases.py: runs every case of tests/golden/eval_cases.txt through `lossd eval` and prints
one JSON line per case: {"case": [task, loss, seed, steps], "rc": exit status, "result": the
printed object without wall_ms, or "stderr": the message}. Usage: run_cases.py LOSSD [CASES]."""
import json, os, subprocess, sys

def cases(path):
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        task, loss, seed, steps = [f.strip() for f in line.split("|")]
        yield task, loss, int(seed), int(steps)

def run(lossd, task, loss, seed, steps):
    cmd = [lossd, "eval", "--task", task, "--loss", loss, "--seed", str(seed)]
    if steps:
        cmd += ["--steps", str(steps)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = {"case": [task, loss, seed, steps], "rc": p.returncode}
    if p.stdout.strip():
        r = json.loads(p.stdout)
        r.pop("wall_ms", None)
        out["result"] = r
    else:
        out["stderr"] = p.stderr.strip()
    return out

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(os.path.join(here, "..", ".."))
    lossd = os.path.abspath(sys.argv[1])
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "eval_cases.txt")
    for c in cases(path):
        print(json.dumps(run(lossd, *c), sort_keys=True))
