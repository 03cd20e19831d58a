#!/usr/bin/env bash
# test_cli_eval.sh: `lossd eval` end to end: good runs print one JSON object (exit 0), failed
# runs print status "failed" (exit 1), bad input exits 2 with one line on stderr saying what,
# where and why. Also checks the acceptance bar: digits defaults reach 0.93 test accuracy.
. "$(dirname "$0")/lib.sh" lossd_cli_eval

# expect_fail NAME WANT_RC WANT_TEXT ARGS...: the command exits WANT_RC with WANT_TEXT on stderr.
expect_fail() {
    local name=$1 want_rc=$2 want=$3
    shift 3
    "$LOSSD" eval "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [ "$rc" = "$want_rc" ] && grep -qF -- "$want" "$TMP/err" && [ "$lines" = 1 ]; then
        ok "$name (exit $rc: $(cat "$TMP/err"))"
    else
        bad "$name: exit $rc (want $want_rc), stderr: $(cat "$TMP/err") (want '$want', one line)"
    fi
}

# Good runs.
for loss in "ce" "0.7*ce + 0.3*focal(2)"; do
    sum=0
    for seed in 0 1 2; do
        "$LOSSD" eval --task builtin:digits --loss "$loss" --seed $seed >"$TMP/r.json" 2>"$TMP/err"
        rc=$?
        st=$(json_get "$TMP/r.json" 'd["status"]')
        acc=$(json_get "$TMP/r.json" 'd["test"]')
        if [ "$rc" != 0 ] || [ "$st" != ok ]; then
            bad "eval '$loss' seed $seed: exit $rc status '$st' $(cat "$TMP/err")"
            acc=0
        fi
        sum=$("$PY" -c "print($sum + $acc)")
    done
    mean=$("$PY" -c "print(round($sum / 3, 4))")
    if "$PY" -c "import sys; sys.exit(0 if $mean >= 0.93 else 1)"; then
        ok "digits '$loss': mean test accuracy $mean over 3 seeds (bar 0.93)"
    else
        bad "digits '$loss': mean test accuracy $mean over 3 seeds is below 0.93"
    fi
done

"$LOSSD" eval --task builtin:digits --loss ce --steps 50 --curve-every 10 >"$TMP/r.json"
keys=$(json_get "$TMP/r.json" 'all(k in d for k in ["status","metric","val","test","steps","wall_ms","curve","metrics"]) and len(d["curve"]) == 5 and d["steps"] == 50 and sorted(d["metrics"]) == ["accuracy","balanced_accuracy","ece","macro_f1"]')
[ "$keys" = True ] && ok "JSON keys, --steps, --curve-every" || bad "JSON shape: $(head -c 300 "$TMP/r.json")"

"$LOSSD" eval --task builtin:digits --loss ce --steps 40 --seed 7 >"$TMP/a.json"
"$LOSSD" eval --task builtin:digits --loss ce --steps 40 --seed 7 >"$TMP/b.json"
same=$("$PY" -c "import json; a=json.load(open('$TMP/a.json')); b=json.load(open('$TMP/b.json')); print(a['curve']==b['curve'] and a['test']==b['test'])")
[ "$same" = True ] && ok "same seed, same result" || bad "same seed gave different results"

"$LOSSD" eval --task builtin:diabetes --loss "huber(1)" >"$TMP/r.json"
v=$(json_get "$TMP/r.json" 'd["status"] == "ok" and d["metric"] == "mse" and "mae" in d["metrics"]')
[ "$v" = True ] && ok "regression task (huber on diabetes)" || bad "regression: $(head -c 300 "$TMP/r.json")"

# A task file with a relative CSV path, string labels, a transform and a metric.
cat >"$TMP/toy.csv" <<'EOF'
a,b,kind
EOF
"$PY" -c "
import random
random.seed(1)
with open('$TMP/toy.csv','a') as f:
    for i in range(300):
        k = i % 3
        f.write('%.3f,%.3f,%s\n' % (k + random.gauss(0, .3), -k + random.gauss(0, .3), ['cat','dog','eel'][k]))
"
cat >"$TMP/toy.task.json" <<'EOF'
{"data": "toy.csv", "label": "kind", "metric": "balanced_accuracy",
 "transform": {"imbalance": 0.3}, "model": {"hidden": [16], "activation": "gelu"},
 "train": {"steps": 150, "batch": 32}}
EOF
"$LOSSD" eval --task "$TMP/toy.task.json" --loss ce >"$TMP/r.json" 2>"$TMP/err"
v=$(json_get "$TMP/r.json" 'd["status"] == "ok" and d["metric"] == "balanced_accuracy" and d["test"] > 0.9')
[ "$v" = True ] && ok "task file with relative CSV, string labels, imbalance, metric" ||
    bad "task file: $(cat "$TMP/err") $(head -c 300 "$TMP/r.json")"

# A run that fails: JSON with status failed and the reason, exit 1.
"$LOSSD" eval --task builtin:digits --loss "1e30*exp(10*ce)" >"$TMP/r.json" 2>"$TMP/err"
rc=$?
v=$(json_get "$TMP/r.json" 'd["status"] == "failed" and "non-finite loss at step 0" in d["error"] and d["val"] is None')
[ "$rc" = 1 ] && [ "$v" = True ] && ok "non-finite loss: status failed, exit 1" ||
    bad "non-finite loss: exit $rc, $(cat "$TMP/r.json")"

# Bad input: exit 2, one line on stderr.
expect_fail "unparsable loss" 2 "lossd eval: --loss: column 6: unknown name 'foo'" --task builtin:digits --loss "ce + foo"
expect_fail "term the family cannot use" 2 "term 'phys' is not available for classification" --task builtin:digits --loss "ce + phys"
expect_fail "regression term on digits ok, ce on diabetes not" 2 "--loss:" --task builtin:diabetes --loss "ce"
expect_fail "unknown builtin" 2 "unknown built-in 'builtin:nope'" --task builtin:nope --loss ce
expect_fail "missing task file" 2 "nothere.json: cannot open" --task "$TMP/nothere.json" --loss ce
expect_fail "missing --loss" 2 "--loss is required" --task builtin:digits
expect_fail "bad --steps" 2 "--steps: 'abc' is not an integer" --task builtin:digits --loss ce --steps abc
expect_fail "unknown option" 2 "--bogus: unknown option" --task builtin:digits --loss ce --bogus 1

printf 'a,b,c\n1,2,0\n3,4,1\n5,6\n' >"$TMP/ragged.csv"
echo '{"data": "ragged.csv"}' >"$TMP/ragged.task.json"
expect_fail "ragged CSV" 2 "ragged.csv:4: expected 3 fields, found 2" --task "$TMP/ragged.task.json" --loss ce

printf 'a,p02,c\n1,2,0\n3,abc,1\n' >"$TMP/nan.csv"
echo '{"data": "nan.csv"}' >"$TMP/nan.task.json"
expect_fail "non-numeric CSV" 2 'nan.csv:3: column 2 ("p02"): "abc" is not a number' --task "$TMP/nan.task.json" --loss ce

printf 'a,c\n1,0\n2,-3\n' >"$TMP/neg.csv"
echo '{"data": "neg.csv"}' >"$TMP/neg.task.json"
expect_fail "label out of range" 2 'neg.csv:3: column 2 ("c"): label -3 is out of range' --task "$TMP/neg.task.json" --loss ce

echo '{"data": "gone.csv"}' >"$TMP/gone.task.json"
expect_fail "missing data file" 2 "gone.csv: cannot open" --task "$TMP/gone.task.json" --loss ce

# --dump-trace for every family: the MLP families' parity trace (bench/parity.py, checked by
# test_parity.py), the others' common one: every parameter group before and after, every step's
# loss and the curve, agreeing with the run's own result; and tracing changes no number.
for spec in "examples/oscillator.task.json|mse + 0.1*phys + bc|40|1" \
            "examples/contrastive.task.json|infonce(0.1) + 0.0001*l2|20|1" \
            "examples/cartpole.task.json|a2c - 0.01*ent + 0.5*td2|10|2"; do
    IFS='|' read -r task loss steps ngroups <<<"$spec"
    "$LOSSD" eval --task "$task" --loss "$loss" --steps "$steps" >"$TMP/plain.json" 2>"$TMP/err"
    "$LOSSD" eval --task "$task" --loss "$loss" --steps "$steps" --dump-trace "$TMP/trace.json" >"$TMP/traced.json" 2>>"$TMP/err"
    rc=$?
    got=$("$PY" - "$TMP/plain.json" "$TMP/traced.json" "$TMP/trace.json" "$steps" "$ngroups" <<'PY' 2>&1
import json, sys
plain, traced, t = (json.load(open(p)) for p in sys.argv[1:4])
steps, ngroups = int(sys.argv[4]), int(sys.argv[5])
for r in (plain, traced):
    r.pop("wall_ms", None)
probs = []
if plain != traced: probs.append("tracing changed the result")
if t["steps"] != steps or len(t["losses"]) != steps: probs.append("steps %s, %d losses" % (t["steps"], len(t["losses"])))
if len(t["groups"]) != ngroups: probs.append("%d groups" % len(t["groups"]))
for g in t["groups"]:
    if not (len(g["params"]) == len(g["final"]) == g["n"] > 0) or g["params"] == g["final"]:
        probs.append("a group's params/final are not n values that training moved")
if abs(t["curve"][-1][1] - traced["final_loss"]) > 1e-6 or t["val_metric"] != traced["val"]:
    probs.append("the curve's last loss or val_metric is not the run's")
print("; ".join(probs) if probs else "ok")
PY
)
    if [ "$rc" = 0 ] && [ "$got" = ok ]; then
        ok "--dump-trace on $(basename "$task" .task.json): $steps losses, $ngroups parameter group(s) before and after, the run's curve, same result as untraced"
    else
        bad "--dump-trace on $task: exit $rc, $got $(cat "$TMP/err")"
    fi
done

echo '{"data": "builtin:digits", "model": {"hidden": [0]}}' >"$TMP/badmodel.task.json"
expect_fail "bad model spec" 2 "model.hidden[0]" --task "$TMP/badmodel.task.json" --loss ce

finish
