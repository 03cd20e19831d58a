#!/usr/bin/env bash
# test_build_floats.sh: the -O2 build (bin) and the sanitizer -O1 build (build/asan/bin) compute
# the same floats. Short runs of the families whose numbers used to depend on the build (the
# autoencoder with perc, the GAN, the GAN with a reconstruction term) and of a classifier are run
# by both builds, and every number of their results (validation and test metrics, the final loss,
# each curve point) must be bit-identical. GCC fuses a*b + c into FMAs at -O2 and not at -O1: the
# Makefile's -ffp-contract=off keeps them apart (without it rec + 0.1*perc seed 0 ended at test
# rec_accuracy 0.919 in one build and 0.914 in the other). Needs both builds (make test builds
# both); with one only, it says so and checks that build's runs are repeatable.
. "$(dirname "$0")/lib.sh" lossd_build_floats
case "$BIN" in
*asan*) OTHER="$PWD/bin/lossd" ;;
*) OTHER="$PWD/build/asan/bin/lossd" ;;
esac

# run BINARY ARGS...: the result's numbers, one per line (repr: every bit of a double).
nums() {
    "$@" 2>&1 | "$PY" -c 'import json, sys
d = json.load(sys.stdin)
out = [d.get("val"), d.get("test"), d.get("final_loss")] + [c.get("loss") for c in d.get("curve", [])]
out += [c.get("val") for c in d.get("curve", [])]
out += [v for m in sorted(d.get("metrics", {})) for v in (d["metrics"][m].get("val"), d["metrics"][m].get("test"))]
print("\n".join(repr(v) for v in out))'
}

cases=(
    "examples/digits_ae.task.json|rec + 0.1*perc|0|60"
    "examples/gan.task.json|nsgan|1|150"
    "examples/gan.task.json|nsgan + 10*rec|1|150"
    "examples/digits.task.json|ce|0|100"
)
for c in "${cases[@]}"; do
    IFS='|' read -r task loss seed steps <<<"$c"
    a=$(nums "$LOSSD" eval --task "$task" --loss "$loss" --seed "$seed" --steps "$steps")
    name="$(basename "$task") '$loss' seed $seed, $steps steps"
    if [ -x "$OTHER" ]; then
        b=$(nums "$OTHER" eval --task "$task" --loss "$loss" --seed "$seed" --steps "$steps")
        first=$(diff <(echo "$a") <(echo "$b") | head -4 | tr '\n' ' ')
        [ -n "$a" ] && [ "$a" = "$b" ]
        st=$? # before any other expansion: the message's $(dirname) would reset $?
        check "$name: every number bit-identical in $BIN and $(dirname "$OTHER")" $st \
            "$(echo "$a" | wc -l) numbers; first differences (< this build, > the other): $first"
    else
        b=$(nums "$LOSSD" eval --task "$task" --loss "$loss" --seed "$seed" --steps "$steps")
        [ -n "$a" ] && [ "$a" = "$b" ]
        st=$?
        check "$name: repeatable in $BIN ($OTHER is not built: the builds are not compared)" $st "$a / $b"
    fi
done
finish
