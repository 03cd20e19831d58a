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
daemon_up

cat >"$TMP/ae.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "transform": {"pixel_noise": 0.3},
 "train": {"steps": 100}}
JSON
cat >"$TMP/ae.job.json" <<'JSON'
{"name": "ae-short", "tasks": ["ae.task.json"], "population": 6, "children": 4,
 "seed_losses": ["rec + 0.1*perc"], "budget": {"evaluations": 16}, "seeds": 1,
 "final": {"top": 2, "seeds": 2}, "seed": 3}
JSON
submit_watch "$TMP/ae.job.json" a generative
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
check_table "leaderboard prints a table" "$J"
CAND=$(echo "$lb" | json 'd["entries"][0]["cand"]')
check_show "show prints the candidate with its rec_accuracy" "$J:$CAND" rec_accuracy

E=(--expr "rec + 0.1*perc + 0.5*bce_rec" --family generative)
check_export "pytorch export is a function of x and xh" "$TMP/t.py" \
    "def lossd_loss(x, xh, t=0.0, l2=0.0, feat=None):" "${E[@]}" --as pytorch
check_export "numpy export is a function of x and xh" "$TMP/n.py" \
    "def lossd_loss_value(x, xh, t=0.0, l2=0.0, feat=None):" "${E[@]}" --as numpy
check_export "the job's best candidate exports" "$TMP/c.py" \
    "def lossd_loss(x, xh" "$J:$CAND" --as pytorch
LOSSD_DATADIR="$PWD/data" check_exports_agree '
x = rng.uniform(0, 1, (4, 64)).round()
args = [x, rng.uniform(0.05, 0.95, (4, 64))]
kw = dict(wrt=[1], relative=True)'

# refusals at submit
cat >"$TMP/bad.job.json" <<'JSON'
{"name": "bad", "tasks": ["builtin:digits"], "seed_losses": ["ce + rec"], "budget": {"evaluations": 4}}
JSON
check_refused "an autoencoder term in a classification job is refused, naming it" \
    "rec" "$TMP/bad.job.json"
cat >"$TMP/vae.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "model": {"kind": "vae"}}
JSON
sed 's/ae.task.json/vae.task.json/' "$TMP/ae.job.json" >"$TMP/vae.job.json"
check_refused "an unknown model.kind is refused at submit" \
    "model.kind: 'vae' is not a generative model" "$TMP/vae.job.json"
# bce_rec on data outside [0, 1] (the wine features run to 1680): refused at submit, not when
# the search evaluates it, with the task, the value and where it is
cat >"$TMP/wine.task.json" <<'JSON'
{"name": "wine-ae", "family": "generative", "data": "builtin:wine"}
JSON
sed 's/ae.task.json/wine.task.json/; s/"tasks"/"baseline": "rec + 0.1*bce_rec", "tasks"/' "$TMP/ae.job.json" \
    >"$TMP/wine.job.json"
check_refused "bce_rec on data outside [0, 1] is refused at submit with the reason" \
    "term 'bce_rec' is not available for task 'wine-ae': bce_rec needs values in \[0, 1\], but builtin:wine: feature column" \
    "$TMP/wine.job.json"

stop_daemon
finish
