#!/usr/bin/env bash
# run.sh: runs every libFuzzer harness in DIR for SECONDS each, one after the other (`make
# fuzz`), on a working copy of its seed corpus (build/fuzz/corpus/NAME, kept between runs; new
# inputs worth keeping are copied into tests/fuzz/corpus/NAME by hand). Prints each harness's
# executions and whether it found a crash (saved as build/fuzz/crash-NAME-*); exits non-zero when
# any did.
#   tests/fuzz/run.sh build/fuzz/libfuzzer 60 [NAME...]
set -u
cd "$(dirname "$0")/../.."
dir=$1 secs=${2:-60}
shift 2 || shift $#
names=("$@")
if [ ${#names[@]} = 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi
found=0
for n in "${names[@]}"; do
    bin="$dir/fuzz_$n" work="build/fuzz/corpus/$n" log="build/fuzz/fuzz_$n.log"
    mkdir -p "$work"
    "$bin" "$work" "tests/fuzz/corpus/$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -print_final_stats=1 -artifact_prefix="build/fuzz/crash-$n-" >"$log" 2>&1
    rc=$?
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [ "$rc" = 0 ]; then
        echo "fuzz_$n: ${execs:-?} executions in ${secs} s, ${cov:-cov ?}, corpus $(ls "$work" | wc -l) inputs, no crash"
    else
        found=1
        echo "fuzz_$n: CRASH after ${execs:-?} executions (exit $rc): $(ls build/fuzz/crash-"$n"-* 2>/dev/null | head -3 | tr '\n' ' ')"
        grep -m5 -E 'ERROR|SUMMARY|runtime error|abort' "$log" | sed 's/^/    /'
    fi
done
exit $found
