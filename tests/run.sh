#!/usr/bin/env bash
# run.sh: runs every test program and integration script, normal build then sanitizer build,
# and prints "N passed, N failed" as its last line. Exit status is non-zero if anything failed.
#   tests/run.sh              normal + sanitizer suites
#   tests/run.sh --asan-only  sanitizer suite only
#   tests/run.sh --fast       normal unit tests only
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 failures=()

# count_cmocka LOGFILE: adds the counts a cmocka program printed.
count_cmocka() {
    local p f
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$1" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$1" | tail -1 | grep -oE '[0-9]+' | head -1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    echo "${p:-0} ${f:-0}"
}

# count_plain LOGFILE: adds the counts from a closing "N passed, N failed" line.
count_plain() {
    local line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    p=$(echo "$line" | grep -oE '^[0-9]+')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    echo "${p:-0} ${f:-0}"
}

# suite LABEL BUILD BIN: unit programs under BUILD/tests, then integration scripts against BIN.
suite() {
    local label=$1 build=$2 bin=$3 t log counts rc
    mkdir -p "$build/logs"
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o|*.d) continue ;; esac
        log="$build/logs/$(basename "$t").log"
        LOSSD_BIN="$bin" timeout 600 "$t" >"$log" 2>&1
        rc=$?
        counts=$(count_cmocka "$log")
        if [ "$rc" != 0 ] || [ "${counts#* }" != 0 ] || [ "${counts% *}" = 0 ]; then
            [ "$rc" != 0 ] && [ "${counts#* }" = 0 ] && { failed=$((failed + 1)); }
            failures+=("$label $(basename "$t") (exit $rc, see $log)")
            tail -30 "$log"
        fi
        echo "$label $(basename "$t"): ${counts% *} passed, ${counts#* } failed"
    done
    for t in tests/test_*.sh tests/test_*.py; do
        [ -e "$t" ] || continue
        log="$build/logs/$(basename "$t").log"
        LOSSD_BIN="$bin" LOSSD_SUITE="$label" timeout 900 "$t" >"$log" 2>&1
        rc=$?
        counts=$(count_plain "$log")
        if [ "$rc" != 0 ] || [ "${counts#* }" != 0 ]; then
            [ "$rc" != 0 ] && [ "${counts#* }" = 0 ] && { failed=$((failed + 1)); }
            failures+=("$label $(basename "$t") (exit $rc, see $log)")
            tail -30 "$log"
        fi
        echo "$label $(basename "$t"): ${counts% *} passed, ${counts#* } failed"
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
