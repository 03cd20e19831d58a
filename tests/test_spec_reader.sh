#!/usr/bin/env bash
# test_spec_reader.sh: the one spec reader, tried as a new user would with `lossd eval` (issue
# 15): the same key has the same range in every family (or a stated reason), unknown keys are
# refused in every family with the full path and a "did you mean" hint, and split.val = 0 is
# refused because a fitness on no validation rows means nothing.
. "$(dirname "$0")/lib.sh" lossd_spec_reader
need_binaries

# run NAME WANT_RC WANT_TEXT SPEC LOSS: lossd eval on SPEC (JSON text) for 3 steps.
run() {
    local name=$1 want_rc=$2 want=$3
    echo "$4" >"$TMP/task.json"
    "$LOSSD" eval --task "$TMP/task.json" --loss "$5" --steps 3 >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" = "$want_rc" ] && { [ -z "$want" ] || grep -qF -- "$want" "$TMP/err"; }; then
        ok "$name (exit $rc${want:+: $(cat "$TMP/err")})"
    else
        bad "$name: exit $rc (want $want_rc), stderr: $(cat "$TMP/err") (want '$want')"
    fi
}

# train.lr: 1e-7 is in [1e-8, 10] for every family (physics refused it: its own range was 1e-6).
run "lr 1e-7 classification" 0 "" '{"data":"builtin:digits","train":{"lr":1e-7}}' ce
run "lr 1e-7 physics" 0 "" '{"data":"builtin:oscillator","family":"physics","train":{"lr":1e-7}}' mse
run "lr 1e-7 contrastive" 0 "" '{"data":"builtin:digits","family":"contrastive","train":{"lr":1e-7}}' 'infonce(0.1)'
run "lr 1e-9 classification" 2 "train.lr: 1e-09 is out of range [1e-08, 10]" '{"data":"builtin:digits","train":{"lr":1e-9}}' ce
run "lr 1e-9 physics" 2 "train.lr: 1e-09 is out of range [1e-08, 10]" '{"data":"builtin:oscillator","family":"physics","train":{"lr":1e-9}}' mse

# train.batch: 1 trains a classifier; a contrastive batch needs 2, and the message says why.
run "batch 1 classification" 0 "" '{"data":"builtin:digits","train":{"batch":1}}' ce
run "batch 1 contrastive" 2 "train.batch: 1 is out of range [2, 4096] for a contrastive task: a contrastive batch needs a second sample" \
    '{"data":"builtin:digits","family":"contrastive","train":{"batch":1}}' 'infonce(0.1)'
run "batch 2 contrastive" 0 "" '{"data":"builtin:digits","family":"contrastive","train":{"batch":2}}' 'infonce(0.1)'

# misspelled keys: refused in every family, with the closest key
run "phsyics" 2 "unknown key 'phsyics' (did you mean 'physics'?)" \
    '{"data":"builtin:oscillator","family":"physics","phsyics":{"noise":0.1}}' mse
run "augmnet" 2 "unknown key 'augmnet' (did you mean 'augment'?)" \
    '{"data":"builtin:digits","family":"contrastive","augmnet":{"noise":0.1}}' 'infonce(0.1)'
run "physics.noize" 2 "physics: unknown key 'noize' (did you mean 'noise'?)" \
    '{"data":"builtin:poisson","family":"physics","physics":{"noize":0.1}}' mse
run "augment.jitter" 2 "augment: unknown key 'jitter'" \
    '{"data":"builtin:digits","family":"contrastive","augment":{"jitter":1}}' 'infonce(0.1)'
run "transform.flip" 2 "transform: unknown key 'flip'" '{"data":"builtin:digits","transform":{"flip":1}}' ce
run "trian" 2 "unknown key 'trian' (did you mean 'train'?)" '{"data":"builtin:diabetes","trian":{}}' mse
run "train.setps" 2 "train: unknown key 'setps' (did you mean 'steps'?)" '{"data":"builtin:digits","train":{"setps":3}}' ce
run "augment in a classification task" 2 "unknown key 'augment' for a classification task (only contrastive tasks read it)" \
    '{"data":"builtin:digits","augment":{"noise":0.1}}' ce
run "transform.flip in a physics task" 2 "transform: unknown key 'flip'" \
    '{"data":"builtin:poisson","family":"physics","transform":{"flip":0.1}}' mse
# a normalised spec parses again in every family (physics writes transform {} and the split)
run "physics normalised keys" 0 "" \
    '{"data":"builtin:poisson","family":"physics","transform":{},"split":{"val":0.2,"test":0.2,"seed":0}}' mse

# split.val = 0 is refused; a small validation split is fine
run "split.val 0" 2 "split.val: 0 leaves no validation rows" '{"data":"builtin:digits","split":{"val":0}}' ce
run "split.val 0.05" 0 "" '{"data":"builtin:digits","split":{"val":0.05}}' ce
finish
