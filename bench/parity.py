#!/usr/bin/python3
"""parity.py: lossd's training run against PyTorch, step by step.

`lossd eval --dump-trace FILE` writes the initial weights, the minibatch row indices of every
step, every step's training loss and the standardised training/validation data. This script
loads the same weights into a torch.nn.Sequential, replays the same batches with the same loss
and torch.optim.Adam/SGD, and compares the per-step training losses and the final validation
metric.

Stated tolerance (float32 on both sides with different summation orders; measured here the
per-step losses agree to ~2e-6 relative over 200 steps):
  - relative difference of every step's training loss <= 1e-4;
  - final validation metric: accuracy within 1/n_val (one sample), mse within 1e-3 relative.

usage: parity.py [--lossd PATH] [--steps N] [--case NAME]   (needs Debian's python3-torch)
Prints one JSON line per case and exits non-zero when a case is out of tolerance.
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def ce_focal(z, y, gamma_w):
    logp = torch.log_softmax(z, 1)
    lp = logp.gather(1, y[:, None]).squeeze(1)
    p = lp.exp()
    out = torch.zeros_like(lp)
    for w, gamma in gamma_w:
        out = out + w * (-(1 - p) ** gamma * lp if gamma else -lp)
    return out.mean()


# name: (task, loss text for lossd, torch loss of (outputs, targets))
CASES = {
    "digits_ce": ("builtin:digits", "ce", lambda z, y: ce_focal(z, y, [(1.0, 0)])),
    "digits_mix": ("builtin:digits", "0.7*ce + 0.3*focal(2)",
                   lambda z, y: ce_focal(z, y, [(0.7, 0), (0.3, 2)])),
    "diabetes_mse": ("builtin:diabetes", "mse", lambda f, y: ((f[:, 0] - y) ** 2).mean()),
}


def run_case(lossd, name, steps, seed=0):
    task, loss_text, loss_fn = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        cmd = [lossd, "eval", "--task", task, "--loss", loss_text, "--seed", str(seed),
               "--steps", str(steps), "--dump-trace", path]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), out.returncode, out.stderr.strip()))
        tr = json.load(open(path))
    torch.set_num_threads(1)
    dims, act = tr["dims"], tr["activation"]
    params = np.asarray(tr["params"], dtype=np.float32)
    layers, off = [], 0
    for i in range(len(dims) - 1):
        fin, fout = dims[i], dims[i + 1]
        lin = torch.nn.Linear(fin, fout)
        w = params[off:off + fin * fout].reshape(fin, fout)  # lossd stores w as (in, out)
        off += fin * fout
        b = params[off:off + fout]
        off += fout
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(lin)
        if i < len(dims) - 2:
            layers.append({"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(),
                           "gelu": torch.nn.GELU(approximate="tanh")}[act])
    net = torch.nn.Sequential(*layers)
    if tr["optimizer"] == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"])
    else:
        opt = torch.optim.SGD(net.parameters(), lr=tr["lr"], momentum=tr["momentum"])
    cls = tr["family"] == "classification"
    X = torch.tensor(np.asarray(tr["train"]["x"], dtype=np.float32).reshape(-1, dims[0]))
    Y = torch.tensor(tr["train"]["label"]) if cls else torch.tensor(np.asarray(tr["train"]["y"], dtype=np.float32))
    B = tr["batch"]
    batches = np.asarray(tr["batches"], dtype=np.int64).reshape(-1, B)
    ours = np.asarray(tr["losses"], dtype=np.float64)
    theirs = []
    for s in range(len(batches)):
        idx = torch.from_numpy(batches[s])
        loss = loss_fn(net(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    theirs = np.asarray(theirs)
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3)
    Xv = torch.tensor(np.asarray(tr["val"]["x"], dtype=np.float32).reshape(-1, dims[0]))
    with torch.no_grad():
        zv = net(Xv)
    if cls:
        torch_val = (zv.argmax(1) == torch.tensor(tr["val"]["label"])).float().mean().item()
        val_ok = abs(torch_val - tr["val_metric"]) <= 1.0 / len(tr["val"]["label"]) + 1e-9
    else:
        # lossd trains on standardised targets and reports mse in the original units.
        yv = torch.tensor(np.asarray(tr["val"]["y"], dtype=np.float32))
        torch_val = ((zv[:, 0] - yv) ** 2).mean().item() * tr["y_std"] ** 2
        val_ok = abs(torch_val - tr["val_metric"]) <= 1e-3 * abs(tr["val_metric"])
    first = float(rel[:20].max())
    med = float(np.median(rel))
    ok = float(rel.max()) <= 1e-4 and val_ok
    return {"case": name, "steps": len(batches), "ok": bool(ok),
            "max_rel_diff_first20": first, "median_rel_diff": med, "max_rel_diff": float(rel.max()),
            "lossd_final_loss": float(ours[-1]), "torch_final_loss": float(theirs[-1]),
            "lossd_val": tr["val_metric"], "torch_val": torch_val}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lossd", default=os.path.join(HERE, "..", "bin", "lossd"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--case", action="append")
    a = ap.parse_args()
    bad = 0
    for name in a.case or list(CASES):
        r = run_case(a.lossd, name, a.steps)
        print(json.dumps(r))
        bad += not r["ok"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
