#!/usr/bin/env bash
# test_gen_daemon.sh: a generative (autoencoder) job through the real daemon, tried as a new user
# would: lossctl submits a short search on digits with 30% salt-and-pepper training pixels, watch
# follows it to done, the leaderboard ranks its candidates against the baseline rec on the fixed
# classifier's accuracy on reconstructions (higher is better), show prints one, the PyTorch and
# NumPy exports are functions of x and xh that run and agree (perc through lossd's fixed digits
# network read from data/); an autoencoder term in a classification job and an unknown model.kind
# are refused at submit with the reason (the GAN kind: tests/test_gan_daemon.sh).
. "$(dirname "$0")/lib.sh" lossd_gen_daemon
need_binaries
SOCK="$TMP/s.sock"
start_daemon "$SOCK" "$TMP/db.sqlite" "$TMP/daemon.log"
check "daemon starts" $? "$(tail -5 "$TMP/daemon.log")"

cat >"$TMP/ae.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "transform": {"pixel_noise": 0.3},
 "train": {"steps": 100}}
JSON
cat >"$TMP/ae.job.json" <<'JSON'
{"name": "ae-short", "tasks": ["ae.task.json"], "population": 6, "children": 4,
 "seed_losses": ["rec + 0.1*perc"], "budget": {"evaluations": 16}, "seeds": 1,
 "final": {"top": 2, "seeds": 2}, "seed": 3}
JSON
J=$(ctl submit "$TMP/ae.job.json")
[[ "$J" =~ ^[0-9]+$ ]]
check "submit a generative job prints a job id" $? "got: $J"
out=$(ctl watch "$J" 2>&1)
st=$?
[ $st = 0 ] && echo "$out" | tail -1 | grep -q "done"
check "watch follows the generative job to done" $? "exit $st: $(echo "$out" | tail -3)"
fam=$(job_field "$J" 'd["spec"]["family"]')
[ "$fam" = generative ]
check "the job's family is generative" $? "got: $fam"

lb=$(ctl --json leaderboard "$J" --top 5)
n=$(echo "$lb" | json 'len(d["entries"])')
metric=$(echo "$lb" | json 'd["entries"][0]["tasks"][0]["metric"]')
[ "${n:-0}" -ge 2 ] && [ "$metric" = rec_accuracy ]
check "leaderboard ranks generative candidates on rec_accuracy" $? "n=$n metric=$metric: $lb"
echo "$lb" | json '[e["expr"] for e in d["entries"] if e["op"] == "baseline"]' | grep -q "rec"
check "the family's baseline rec is on the leaderboard" $? "$lb"
out=$(ctl leaderboard "$J" --top 3)
echo "$out" | head -1 | grep -q RANK
check "leaderboard prints a table" $? "$out"
CAND=$(echo "$lb" | json 'd["entries"][0]["cand"]')
out=$(ctl show "$J:$CAND")
echo "$out" | grep -q "^expression" && echo "$out" | grep -q "rec_accuracy"
check "show prints the candidate with its rec_accuracy" $? "$out"

ctl export --expr "rec + 0.1*perc + 0.5*bce_rec" --family generative --as pytorch >"$TMP/t.py"
grep -q "def lossd_loss(x, xh, t=0.0, l2=0.0, feat=None):" "$TMP/t.py"
check "pytorch export is a function of x and xh" $? "$(head -30 "$TMP/t.py")"
ctl export --expr "rec + 0.1*perc + 0.5*bce_rec" --family generative --as numpy >"$TMP/n.py"
grep -q "def lossd_loss_value(x, xh, t=0.0, l2=0.0, feat=None):" "$TMP/n.py"
check "numpy export is a function of x and xh" $? "$(head -30 "$TMP/n.py")"
ctl export "$J:$CAND" --as pytorch >"$TMP/c.py"
grep -q "def lossd_loss(x, xh" "$TMP/c.py"
check "the job's best candidate exports" $? "$(head -30 "$TMP/c.py")"
out=$(LOSSD_DATADIR="$PWD/data" "$PY" - "$TMP" <<'PY' 2>&1
import sys, importlib.util
import numpy as np
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m
n = load("n", sys.argv[1] + "/n.py")
rng = np.random.default_rng(1)
B = 4
x = rng.uniform(0, 1, (B, 64)).round()
xh = rng.uniform(0.05, 0.95, (B, 64))
v = n.lossd_loss_value(x, xh, t=0.3)
try:
    import torch
    tm = load("t", sys.argv[1] + "/t.py")
    txh = torch.tensor(xh, requires_grad=True)
    tv = tm.lossd_loss(torch.tensor(x), txh, t=0.3)
    tv.backward()
    assert abs(float(tv) - v) < 1e-9 * max(1, abs(v)), (float(tv), v)
    g = n.lossd_grad(x, xh, t=0.3)
    assert np.max(np.abs(g - txh.grad.numpy())) < 1e-5 * max(1, np.max(np.abs(g))), np.max(np.abs(g - txh.grad.numpy()))
    print("torch and numpy agree:", float(tv))
except ImportError:
    print("numpy only:", v)
PY
)
st=$?
[ $st = 0 ]
check "the exported loss runs (numpy value = torch value, gradients agree)" $? "$out"

# refusals at submit
cat >"$TMP/bad.job.json" <<'JSON'
{"name": "bad", "tasks": ["builtin:digits"], "seed_losses": ["ce + rec"], "budget": {"evaluations": 4}}
JSON
out=$(ctl submit "$TMP/bad.job.json" 2>&1)
st=$?
[ $st != 0 ] && echo "$out" | grep -q "rec"
check "an autoencoder term in a classification job is refused, naming it" $? "exit $st: $out"
cat >"$TMP/vae.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "model": {"kind": "vae"}}
JSON
sed 's/ae.task.json/vae.task.json/' "$TMP/ae.job.json" >"$TMP/vae.job.json"
out=$(ctl submit "$TMP/vae.job.json" 2>&1)
st=$?
[ $st != 0 ] && echo "$out" | grep -q "model.kind: 'vae' is not a generative model"
check "an unknown model.kind is refused at submit" $? "exit $st: $out"

stop_daemon
finish
