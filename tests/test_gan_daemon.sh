#!/usr/bin/env bash
# test_gan_daemon.sh: a GAN job through the real daemon, tried as a new user would: lossctl
# submits a short search for a GAN generator's loss on the digits pixels, watch follows it to
# done (the job names no baseline: a GAN task's default baseline is nsgan), the leaderboard ranks
# its candidates against nsgan by the Frechet distance (lower is better), show prints one with
# its fid and coverage, and the PyTorch and NumPy exports are functions of dx, dgz and the side
# that run and agree. A second job's baseline mixes kinds, nsgan + 10*rec (the generator also
# reconstructs real rows through an encoder): it is evaluated, ranked and exported as a function
# of dx, dgz, x and xh whose PyTorch and NumPy values agree. A term of no generative model is
# refused at submit with the reason.
. "$(dirname "$0")/lib.sh" lossd_gan_daemon
need_binaries
daemon_up

cat >"$TMP/gan.task.json" <<'JSON'
{"name": "digits-gan", "family": "generative", "data": "builtin:digits", "model": {"kind": "gan"},
 "train": {"steps": 150}}
JSON
cat >"$TMP/gan.job.json" <<'JSON'
{"name": "gan-short", "tasks": ["gan.task.json"], "space": {"max_nodes": 8},
 "population": 6, "children": 4, "budget": {"evaluations": 16}, "seeds": 1,
 "final": {"top": 2, "seeds": 2}, "seed": 3}
JSON
submit_watch "$TMP/gan.job.json" a GAN
kind=$(job_field "$J" 'd["spec"]["tasks"][0]["model"]["kind"]')
[ "$kind" = gan ]
check "the job's task is a GAN (model.kind gan)" $? "got: $kind"

lb=$(ctl --json leaderboard "$J" --top 5)
n=$(echo "$lb" | json 'len(d["entries"])')
base=$(echo "$lb" | json '[e["expr"] for e in d["entries"] if e.get("op") == "baseline"]')
metric=$(echo "$lb" | json 'd["entries"][0]["tasks"][0]["metric"]')
[ "${n:-0}" -ge 2 ] && [ "$base" = '["nsgan"]' ] && [ "$metric" = fid ]
check "leaderboard ranks GAN candidates by fid beside the GAN task's default baseline nsgan" $? "n=$n base=$base metric=$metric: $lb"
check_table "leaderboard prints a table by fid" "$J" fid
CAND=$(echo "$lb" | json 'd["entries"][0]["cand"]')
check_show "show prints the candidate with its fid and coverage" "$J:$CAND" fid coverage

check_export "pytorch export is a function of dx, dgz and the side" "$TMP/t.py" \
    'def lossd_loss(dx, dgz, t=0.0, l2=0.0, side="generator"):' "$J:$CAND" --as pytorch
check_export "numpy export is a function of dx, dgz and the side" "$TMP/n.py" \
    'def lossd_loss_value(dx, dgz, t=0.0, l2=0.0, side="generator"):' "$J:$CAND" --as numpy
check_exports_agree '
args = [rng.normal(0, 2, 8), rng.normal(0, 2, 8)]
kw = dict(wrt=[0, 1])'

# a mixture across kinds as the baseline: nsgan + 10*rec
sed 's/"tasks"/"baseline": "nsgan + 10*rec", "tasks"/; s/"evaluations": 16/"evaluations": 8/' "$TMP/gan.job.json" \
    >"$TMP/mix.job.json"
J2=$(ctl submit "$TMP/mix.job.json" 2>&1)
[[ "$J2" =~ ^[0-9]+$ ]] && ctl watch "$J2" 2>&1 | tail -1 | grep -q done
check "a GAN job with the baseline nsgan + 10*rec runs to done" $? "got: $J2"
lb=$(ctl --json leaderboard "$J2" --top 20)
bc=$(echo "$lb" | json '[e["cand"] for e in d["entries"] if e.get("op") == "baseline"][0]')
bf=$(echo "$lb" | json '[e["tasks"][0]["val_mean"] for e in d["entries"] if e.get("op") == "baseline"][0]')
"$PY" -c "import sys; v = float(sys.argv[1]); sys.exit(0 if 0 < v < 60 else 1)" "$bf" 2>/dev/null
check "the baseline nsgan + 10*rec is scored by fid (a finite distance)" $? "cand=$bc fid=$bf: $lb"
ctl export "$J2:$bc" --as pytorch >"$TMP/mt.py"
ctl export "$J2:$bc" --as numpy >"$TMP/mn.py"
grep -q 'def lossd_loss(dx, dgz, x=None, xh=None, t=0.0, l2=0.0, side="generator", feat=None):' "$TMP/mt.py" &&
    grep -q 'def lossd_loss_value(dx, dgz, x=None, xh=None, t=0.0, l2=0.0, side="generator", feat=None):' "$TMP/mn.py"
check "the mixture exports as a function of dx, dgz, x and xh" $? "$(grep -n 'def lossd' "$TMP/mt.py" "$TMP/mn.py")"
out=$("$PY" - "$TMP" <<'PY' 2>&1
import sys, importlib.util
import numpy as np
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m
n = load("mn", sys.argv[1] + "/mn.py")
rng = np.random.default_rng(2)
dx, dgz = rng.normal(0, 2, 8), rng.normal(0, 2, 8)
x, xh = rng.uniform(0, 1, (8, 64)), rng.uniform(0.05, 0.95, (8, 64))
v = n.lossd_loss_value(dx, dgz, x=x, xh=xh)
want = np.mean(np.logaddexp(0, -dgz) + 10 * ((xh - x) ** 2).sum(axis=1))
assert abs(v - want) < 1e-9 * abs(want), (v, want)
try:
    import torch
    tm = load("mt", sys.argv[1] + "/mt.py")
    txh = torch.tensor(xh, requires_grad=True)
    tv = tm.lossd_loss(torch.tensor(dx), torch.tensor(dgz), x=torch.tensor(x), xh=txh)
    tv.backward()
    assert abs(float(tv) - v) < 1e-9 * abs(v), (float(tv), v)
    g = txh.grad.numpy()
    assert np.max(np.abs(g - 20 * (xh - x) / 8)) < 1e-9, np.max(np.abs(g - 20 * (xh - x) / 8))
    print("torch and numpy agree:", float(tv))
except ImportError:
    print("numpy only:", v)
PY
)
st=$?
[ $st = 0 ]
check "the exported mixture runs (numpy = nsgan + 10*rec by hand = torch; d/dxh = 20 (xh - x) / B)" $? "$out"

# refusals at submit: a term no generative model provides, in a GAN job's baseline
sed 's/"tasks"/"baseline": "nsgan + 10*hinge", "tasks"/' "$TMP/gan.job.json" >"$TMP/bad.job.json"
check_refused "a classification term in a GAN job's baseline is refused at submit, naming it" \
    "hinge" "$TMP/bad.job.json"

stop_daemon
finish
