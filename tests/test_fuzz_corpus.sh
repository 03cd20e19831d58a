#!/usr/bin/env bash
# test_fuzz_corpus.sh: every fuzz harness over its seed corpus once (tests/fuzz/corpus/NAME: the
# seeds and every input the fuzzers found worth keeping, crashes included once fixed), through
# the plain driver built with this suite's compiler and sanitizers (build/tests/fuzz or
# build/asan/tests/fuzz). One check per harness; prints "N passed, N failed" last.
. "$(dirname "$0")/lib.sh" lossd-fuzz-corpus
case "$BIN" in
*/bin) B=${BIN%/bin} ;;
*) B=build ;;
esac
[ "$BIN" = bin ] && B=build
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    drv="$B/tests/fuzz/fuzz_$name"
    if [ ! -x "$drv" ]; then
        bad "fuzz_$name: the driver exists" "missing $drv (run make unit)"
        continue
    fi
    n=$(ls "tests/fuzz/corpus/$name" | wc -l)
    out=$(timeout 300 "$drv" "tests/fuzz/corpus/$name" 2>&1)
    check "fuzz_$name: its $n corpus inputs run clean" $? "$(echo "$out" | tail -15)"
done
finish
