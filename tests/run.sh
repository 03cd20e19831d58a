#!/usr/bin/env bash
# run.sh: runs every test program and integration script, normal build then sanitizer build,
# and prints "N passed, N failed" as its last line. Exit status is non-zero if anything failed.
#   tests/run.sh              normal + sanitizer suites
#   tests/run.sh --asan-only  sanitizer suite only
#   tests/run.sh --fast       normal unit tests only
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 failures=()

# count_cmocka LOGFILE: sets P and F to the counts a cmocka program printed.
count_cmocka() {
    P=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$1" | tail -1 | grep -oE '[0-9]+' | head -1)
    F=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$1" | tail -1 | grep -oE '[0-9]+' | head -1)
    P=${P:-0} F=${F:-0}
}

# count_plain LOGFILE: sets P and F from a closing "N passed, N failed" line.
count_plain() {
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    P=$(echo "$line" | grep -oE '^[0-9]+' | head -1)
    F=$(echo "$line" | sed -nE 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/p')
    P=${P:-0} F=${F:-0}
}

# record LABEL NAME RC LOG: adds P and F to the totals; a non-zero exit, or a program that
# reported nothing, counts as one more failure.
record() {
    if [ "$3" != 0 ] && [ "$F" = 0 ]; then F=1; fi
    if [ "$P" = 0 ] && [ "$F" = 0 ]; then F=1; fi
    passed=$((passed + P))
    failed=$((failed + F))
    if [ "$F" != 0 ]; then
        failures+=("$1 $2 (exit $3, see $4)")
        tail -30 "$4"
    fi
    echo "$1 $2: $P passed, $F failed"
}

# suite LABEL BUILD BIN: unit programs under BUILD/tests, then integration scripts against BIN.
suite() {
    local label=$1 build=$2 bin=$3 t log rc
    mkdir -p "$build/logs"
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o|*.d) continue ;; esac
        log="$build/logs/$(basename "$t").log"
        LOSSD_BIN="$bin" timeout 600 "$t" >"$log" 2>&1
        rc=$?
        count_cmocka "$log"
        record "$label" "$(basename "$t")" "$rc" "$log"
    done
    for t in tests/test_*.sh tests/test_*.py; do
        [ -e "$t" ] || continue
        log="$build/logs/$(basename "$t").log"
        LOSSD_BIN="$bin" LOSSD_SUITE="$label" timeout 900 "$t" >"$log" 2>&1
        rc=$?
        count_plain "$log"
        record "$label" "$(basename "$t")" "$rc" "$log"
    done
}

case "${1:-}" in
--asan-only) suite asan build/asan build/asan/bin ;;
--fast) suite unit build bin ;;
*) suite unit build bin; suite asan build/asan build/asan/bin ;;
esac

for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
