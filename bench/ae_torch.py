#!/usr/bin/python3
"""ae_torch.py: the PyTorch reference of lossd's autoencoder evaluation (bench/bench_ae.py), written
the way a PyTorch user would. Needs Debian's python3-torch; reads data/digits.csv (or
$DIGITS_CSV) and the fixed digits classifier data/digits_fixednet.json. One thread.

Evaluation: digits pixels / 16, a seeded 60/20/20 split, MLP autoencoder 64-32-8-32-64 (ReLU,
sigmoid outputs), Adam lr 3e-3, batch 64, STEPS steps (default 300), loss rec = squared error
summed over the pixels, batch mean; then scored as lossd scores it: reconstructions of the
validation and test rows, their mean squared error and the fixed classifier's accuracy on them.
Prints one JSON line: evaluations per second, microseconds per training step, mean validation
rec_accuracy.

usage: ae_torch.py [STEPS] [EVALS]
"""
import json, os, sys, time
import numpy as np, torch

torch.set_num_threads(1)
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
raw = np.loadtxt(os.environ.get('DIGITS_CSV', os.path.join(root, 'data/digits.csv')), delimiter=',', skiprows=1)
X = torch.tensor(raw[:, :64] / 16.0, dtype=torch.float32)
Y = torch.tensor(raw[:, 64], dtype=torch.long)
perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
ntest = nval = round(0.2 * len(X))
te, va, tr = perm[:ntest], perm[ntest:ntest + nval], perm[ntest + nval:]
fx = json.load(open(os.path.join(root, 'data/digits_fixednet.json')))
W0 = torch.tensor(fx['w0']).reshape(64, fx['hidden'])
B0 = torch.tensor(fx['b0'])
W1 = torch.tensor(fx['w1']).reshape(fx['hidden'], fx['classes'])
B1 = torch.tensor(fx['b1'])


def classify(x):
    return (torch.tanh(x @ W0 + B0) @ W1 + B1).argmax(1)


def evaluate(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8),
                                torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 64), torch.nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        xb = X[tr[torch.randint(0, len(tr), (64,), generator=gen)]]
        loss = ((model(xb) - xb) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = {}
        for name, rows in (('val', va), ('test', te)):
            xh = model(X[rows])
            out[name] = (float(((xh - X[rows]) ** 2).mean()), float((classify(xh) == Y[rows]).float().mean()))
        return out


evaluate(0)  # warm-up
t = time.perf_counter()
res = [evaluate(i) for i in range(N)]
dt = time.perf_counter() - t
print(json.dumps({"peer": "torch " + torch.__version__, "steps": STEPS, "evals": N,
                  "mean_val_rec_accuracy": round(float(np.mean([r['val'][1] for r in res])), 4),
                  "mean_val_rec_mse": round(float(np.mean([r['val'][0] for r in res])), 5),
                  "evals_per_s": round(N / dt, 2), "us_per_step": round(dt / N / STEPS * 1e6, 1)}))
