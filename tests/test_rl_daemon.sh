#!/usr/bin/env bash
# test_rl_daemon.sh: an rl job through the real daemon, tried as a new user would: lossctl
# submits a short CartPole search (and int8-deployed rl, contrastive, physics, autoencoder and GAN
# ones; the generative runs also on 1 and 2 threads, equal), watch
# follows it to done, the leaderboard ranks its candidates, show prints one, the PyTorch and NumPy
# exports are functions of logp, ret, adv, v, td, ent that run and agree; an rl term in a
# classification job, an unknown deploy precision and qat at fp16 are refused at submit with
# the reason.
. "$(dirname "$0")/lib.sh" lossd_rl_daemon
need_binaries
daemon_up

cat >"$TMP/cartpole.task.json" <<'JSON'
{"data": "builtin:cartpole", "train": {"steps": 60}, "rl": {"val_episodes": 4, "test_episodes": 6}}
JSON
cat >"$TMP/rl.job.json" <<'JSON'
{"name": "cartpole-short", "tasks": ["cartpole.task.json"], "population": 6, "children": 4,
 "budget": {"evaluations": 20}, "seeds": 1, "final": {"top": 2, "seeds": 2}, "seed": 3}
JSON
submit_watch "$TMP/rl.job.json" an rl
fam=$(job_field "$J" 'd["spec"]["family"]')
[ "$fam" = rl ]
check "the job's family is rl" $? "got: $fam"

lb=$(ctl --json leaderboard "$J" --top 5)
n=$(echo "$lb" | json 'len(d["entries"])')
base=$(echo "$lb" | json '[e["expr"] for e in d["entries"] if e.get("baseline")]')
[ "${n:-0}" -ge 2 ]
check "leaderboard ranks rl candidates" $? "n=$n: $lb"
echo "$lb" | grep -q 'a2c - 0.01\*ent + 0.5\*td2\|0.5\*td2 + a2c - 0.01\*ent\|a2c + 0.5\*td2 - 0.01\*ent'
check "the family's baseline a2c - 0.01*ent + 0.5*td2 is on the leaderboard" $? "baseline: $base"
check_table "leaderboard prints a table" "$J"
CAND=$(echo "$lb" | json 'd["entries"][0]["cand"]')
check_show "show prints the candidate with its return" "$J:$CAND" return

check_export "pytorch export is a function of logp, ret, adv, v, td, ent" "$TMP/t.py" \
    "def lossd_loss(logp, ret, adv, v, td, ent, t=0.0, l2=0.0):" "$J:$CAND" --as pytorch
check_export "numpy export is a function of logp, ret, adv, v, td, ent" "$TMP/n.py" \
    "def lossd_loss_value(logp, ret, adv, v, td, ent, t=0.0, l2=0.0):" "$J:$CAND" --as numpy
check_exports_agree '
B = 8
args = [np.log(rng.uniform(0.05, 1, B)), rng.normal(size=B), rng.normal(size=B), rng.normal(size=B),
        rng.normal(size=B), rng.uniform(0.1, 0.7, B)]
kw = dict(wrt=range(6), targets=[1])  # ret is a target'

# int8 deployment (at the trainer's one hook) of the same rl task, of a contrastive task (with
# qat) and of a physics task (with its weight-only qat): each job runs to done, and its evaluations carry the fp32 metric
# beside the deployed one, which selects
cat >"$TMP/rl8.task.json" <<'JSON'
{"data": "builtin:cartpole", "train": {"steps": 60}, "rl": {"val_episodes": 4, "test_episodes": 6},
 "deploy": {"precision": "int8"}}
JSON
cat >"$TMP/con8.task.json" <<'JSON'
{"data": "builtin:digits", "family": "contrastive", "model": {"hidden": [32], "embed_dim": 16},
 "train": {"batch": 32, "steps": 40}, "deploy": {"precision": "int8", "qat": true}}
JSON
cat >"$TMP/osc8.task.json" <<'JSON'
{"data": "builtin:oscillator", "train": {"steps": 100}, "deploy": {"precision": "int8", "qat": true}}
JSON
# the generative family: the autoencoder (encoder and decoder deployed) and the GAN (its
# generator, with qat)
cat >"$TMP/ae8.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "train": {"steps": 60}, "deploy": {"precision": "int8"}}
JSON
cat >"$TMP/gan8.task.json" <<'JSON'
{"family": "generative", "data": "builtin:digits", "model": {"kind": "gan"}, "train": {"steps": 60},
 "deploy": {"precision": "int8", "qat": true}}
JSON
for k in rl8:return_fp32 con8:knn_accuracy_fp32 osc8:solution_error_fp32 ae8:rec_accuracy_fp32 gan8:fid_fp32; do
    task=${k%%:*} want=${k#*:}
    cat >"$TMP/$task.job.json" <<JSON
{"name": "$task", "tasks": ["$task.task.json"], "population": 3, "children": 2,
 "budget": {"evaluations": 4}, "seeds": 1, "final": {"top": 1, "seeds": 2}, "seed": 3}
JSON
    JD=$(ctl submit "$TMP/$task.job.json")
    out=$(ctl watch "$JD" 2>&1)
    st=$?
    [ $st = 0 ] && echo "$out" | tail -1 | grep -q "done"
    check "an int8-deployed $task job runs to done" $? "exit $st: $(echo "$out" | tail -3)"
    CD=$(ctl --json leaderboard "$JD" --top 1 | json 'd["entries"][0]["cand"]')
    out=$(ctl show "$JD:$CD")
    echo "$out" | grep -q "$want"
    check "its evaluations carry $want beside the deployed metric" $? "$out"
done

# the deployed generative runs are the same on 1 and 2 threads (lossd eval --batch; wall time
# aside): three losses each, int8 with qat
printf '%s\n' '{"loss": "rec", "seed": 1, "id": 1}' '{"loss": "rec + 0.1*perc", "seed": 2, "id": 2}' \
    '{"loss": "bce_rec", "seed": 3, "id": 3}' >"$TMP/ae.batch"
printf '%s\n' '{"loss": "nsgan", "seed": 1, "id": 1}' '{"loss": "hinge_gan", "seed": 2, "id": 2}' \
    '{"loss": "nsgan + 10*rec", "seed": 3, "id": 3}' >"$TMP/gan.batch"
sed 's/"int8"}/"int8", "qat": true}/' "$TMP/ae8.task.json" >"$TMP/ae8q.task.json"
for k in ae8q:ae gan8:gan; do
    for w in 1 2; do
        "$LOSSD" eval --task "$TMP/${k%%:*}.task.json" --batch "$TMP/${k#*:}.batch" --workers $w |
            sed 's/"wall_ms":[0-9.e+-]*,//' | sort >"$TMP/$k.$w"
    done
    n=$(grep -c '"status":"ok".*"fid_fp32\|"status":"ok".*"rec_accuracy_fp32' "$TMP/$k.1")
    cmp -s "$TMP/$k.1" "$TMP/$k.2" && [ "$n" = 3 ]
    check "deployed ${k#*:} runs are equal on 1 and 2 threads" $? "ok with fp32 metrics: $n; $(diff "$TMP/$k.1" "$TMP/$k.2" | head -4)"
done

# refusals at submit
cat >"$TMP/bad.job.json" <<'JSON'
{"name": "bad", "tasks": ["builtin:digits"], "seed_losses": ["ce + reinforce"], "budget": {"evaluations": 4}}
JSON
check_refused "an rl term in a classification job is refused, naming it" \
    "reinforce" "$TMP/bad.job.json"
cat >"$TMP/bad8.task.json" <<'JSON'
{"data": "builtin:digits", "deploy": {"precision": "int4"}}
JSON
sed 's/cartpole.task.json/bad8.task.json/' "$TMP/rl.job.json" >"$TMP/bad8.job.json"
check_refused "an unknown deploy precision is refused at submit" \
    'int4' "$TMP/bad8.job.json"
cat >"$TMP/badq.task.json" <<'JSON'
{"data": "builtin:oscillator", "deploy": {"precision": "fp16", "qat": true}}
JSON
sed 's/cartpole.task.json/badq.task.json/' "$TMP/rl.job.json" >"$TMP/badq.job.json"
check_refused "deploy.qat at another precision than int8 is refused at submit, saying why" \
    'quantisation-aware training simulates int8' "$TMP/badq.job.json"

stop_daemon
finish
