#!/usr/bin/env bash
# run.sh: runs every test program and integration script, normal build then sanitizer build,
# and prints "N passed, N failed" as its last line. Exit status is non-zero if anything failed.
#   tests/run.sh              normal + sanitizer suites
#   tests/run.sh --asan-only  sanitizer suite only
#   tests/run.sh --fast       normal suite only
#   tests/run.sh -j N ...     N programs at a time (default: $TEST_JOBS, else nproc)
#   tests/run.sh ... NAME...  only the named programs (test_x, test_y.sh), in the chosen suites
#
# Programs of both suites share one pool of N slots: each program's output goes to its own log
# (BUILD/logs/NAME.log), and its result line ("unit test_x: 12 passed, 0 failed (3.4 s, cpu 2.9
# s)") is printed in the fixed order (the normal suite's programs, then the sanitizer suite's) as soon
# as it and every program before it have finished; the totals do not depend on N. The longest
# programs start first (their durations from the last run, BUILD/logs/times, else the HEAVY list)
# so that the pool does not end with one long program running alone.
#
# Every test uses its own temporary directory, socket and database (mktemp), so programs can run
# beside each other. A program that needs the machine to itself (none today) goes in ALONE: it
# runs only when nothing else does.
set -u
cd "$(dirname "$0")/.." || exit 1

# Programs that start first on a clean checkout (no BUILD/logs/times yet), as SUITE:NAME: the
# longest of a measured run (wall seconds of a clean clone's run on an idle machine), longest first.
HEAVY="asan:test_horizon.py asan:test_pg_serve.sh asan:test_docs.sh asan:test_faults_daemon.py
       asan:test_daemon.sh asan:test_alloc_sweep asan:test_schedule_daemon.sh asan:test_families_doc.sh
       unit:test_alloc_sweep asan:test_report.sh asan:test_gan_daemon.sh asan:test_group_commit.py
       unit:test_pg_serve.sh asan:test_golden_eval.sh asan:test_ranking.sh asan:test_gan
       asan:test_search asan:test_load_paths.py unit:test_docs.sh"
# Programs that must run with nothing beside them (documented above; empty is the goal).
ALONE=""

jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
mode=all
only=()
while [ $# -gt 0 ]; do
    case "$1" in
    --asan-only) mode=asan ;;
    --fast) mode=fast ;;
    -j) jobs=$2; shift ;;
    -j*) jobs=${1#-j} ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) only+=("$1") ;;
    esac
    shift
done
case "$jobs" in '' | *[!0-9]* | 0) echo "run.sh: -j wants a positive number" >&2; exit 2 ;; esac

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

# The job list, in print order: parallel arrays of label, build folder, bin folder, program
# (path) and its file name, kind (cmocka or plain) and timeout in seconds.
J_LABEL=() J_BUILD=() J_BIN=() J_PROG=() J_NAME=() J_KIND=() J_TIMEOUT=()

wanted() {
    [ ${#only[@]} = 0 ] && return 0
    local n
    for n in "${only[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# add_suite LABEL BUILD BIN: unit programs under BUILD/tests, then integration scripts run
# against BIN.
add_suite() {
    local label=$1 build=$2 bin=$3 t
    mkdir -p "$build/logs/run"
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o | *.d) continue ;; esac
        wanted "${t##*/}" || continue
        J_LABEL+=("$label") J_BUILD+=("$build") J_BIN+=("$bin") J_PROG+=("$t") J_NAME+=("${t##*/}")
        J_KIND+=(cmocka)
        J_TIMEOUT+=(600)
    done
    for t in tests/test_*.sh tests/test_*.py; do
        [ -e "$t" ] || continue
        wanted "${t##*/}" || continue
        J_LABEL+=("$label") J_BUILD+=("$build") J_BIN+=("$bin") J_PROG+=("$t") J_NAME+=("${t##*/}")
        J_KIND+=(plain)
        J_TIMEOUT+=(900)
    done
}

case "$mode" in
asan) add_suite asan build/asan build/asan/bin ;;
fast) add_suite unit build bin ;;
*) add_suite unit build bin; add_suite asan build/asan build/asan/bin ;;
esac
n=${#J_PROG[@]}

# Start order: known durations (BUILD/logs/times: "NAME SECONDS CPU_SECONDS" lines from the last
# complete run) first, longest first; then the HEAVY list's order; then the rest in print order,
# the sanitizer suite's first.
declare -A known=()
for b in build build/asan; do
    [ -f "$b/logs/times" ] || continue
    while read -r name secs _; do known[$b/$name]=${secs%.*}${secs#*.}; done <"$b/logs/times"
done
k=0
declare -A heavy=()
for h in $HEAVY; do k=$((k + 1)); heavy[$h]=$k; done
weight() {
    local name=${J_NAME[$1]}
    if [ -n "${known[${J_BUILD[$1]}/$name]:-}" ]; then
        echo "$((1000000000 + 10#${known[${J_BUILD[$1]}/$name]}))"
    elif [ -n "${heavy[${J_LABEL[$1]}:$name]:-}" ]; then
        echo "$((1000 - heavy[${J_LABEL[$1]}:$name]))"
    elif [ "${J_LABEL[$1]}" = asan ]; then
        echo 1 # a sanitizer build's program takes ~3 times its normal twin's time
    else
        echo 0
    fi
}
# (A command substitution, not a process substitution: `wait -n` below must see only the
# programs' subshells as children.)
order=($(for ((i = 0; i < n; i++)); do echo "$(weight "$i") $i"; done | sort -k1,1nr -k2,2n |
    awk '{ print $2 }'))

# run_one I: runs job I, writing its log, then "RC SECONDS CPU_SECONDS" into its result file.
result_file() { echo "${J_BUILD[$1]}/logs/run/${J_NAME[$1]}.rc"; }
log_file() { echo "${J_BUILD[$1]}/logs/${J_NAME[$1]}.log"; }
run_one() {
    local i=$1 start end rc log res
    log=$(log_file "$i") res=$(result_file "$i")
    start=$EPOCHREALTIME
    if [ "${J_KIND[$i]}" = cmocka ]; then
        LOSSD_BIN="${J_BIN[$i]}" timeout "${J_TIMEOUT[$i]}" "${J_PROG[$i]}" >"$log" 2>&1 </dev/null
    else
        LOSSD_BIN="${J_BIN[$i]}" LOSSD_SUITE="${J_LABEL[$i]}" timeout "${J_TIMEOUT[$i]}" \
            "${J_PROG[$i]}" >"$log" 2>&1 </dev/null
    fi
    rc=$?
    end=$EPOCHREALTIME
    # wall seconds, and the CPU seconds (user + system) of the program and every process it
    # waited for (bash's times: this subshell's children), which the machine's load hardly moves
    times >"$res.times" # (in this shell: a pipe would run it in a subshell with no children)
    tail -1 "$res.times" | awk -v rc="$rc" -v a="$start" -v b="$end" '
        function s(x,  m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x)
                            return m * 60 + x }
        { printf "%s %.1f %.1f\n", rc, b - a, s($1) + s($2) }' >"$res.tmp"
    rm -f "$res.times"
    mv "$res.tmp" "$res"
}

is_alone() {
    local a
    for a in $ALONE; do [ "$a" = "${J_NAME[$1]}" ] && return 0; done
    return 1
}

passed=0 failed=0 failures=() failure_logs=()
declare -A pid_of=()
next_print=0

# print_ready: prints, in job order, every result whose predecessors have all been printed.
print_ready() {
    local i res rc secs log name
    while [ "$next_print" -lt "$n" ]; do
        i=$next_print
        res=$(result_file "$i")
        [ -n "${pid_of[$i]:-}" ] && [ -f "$res" ] || break
        read -r rc secs cpu <"$res"
        log=$(log_file "$i") name=${J_NAME[$i]}
        if [ "${J_KIND[$i]}" = cmocka ]; then count_cmocka "$log"; else count_plain "$log"; fi
        # A non-zero exit, or a program that reported nothing, counts as one more failure.
        if [ "$rc" != 0 ] && [ "$F" = 0 ]; then F=1; fi
        if [ "$P" = 0 ] && [ "$F" = 0 ]; then F=1; fi
        passed=$((passed + P)) failed=$((failed + F))
        if [ "$F" != 0 ]; then
            failures+=("${J_LABEL[$i]} $name (exit $rc, see $log)")
            failure_logs+=("$log")
            tail -30 "$log"
        fi
        echo "${J_LABEL[$i]} $name: $P passed, $F failed ($secs s, cpu $cpu s)"
        echo "$name $secs $cpu" >>"${J_BUILD[$i]}/logs/times.new"
        next_print=$((next_print + 1))
    done
}

t0=$EPOCHREALTIME
# Interrupted (^C, or a timeout above this script): stop the programs still running. Background
# jobs of a script ignore SIGINT, so each job's timeout is told (it passes TERM on to its program).
stop_all() {
    local p
    trap - INT TERM
    for p in "${pid_of[@]}"; do pkill -TERM -P "$p" 2>/dev/null; done
    echo "run.sh: interrupted"
    exit 130
}
trap stop_all INT TERM
for ((i = 0; i < n; i++)); do rm -f "$(result_file "$i")"; done
for b in build build/asan; do rm -f "$b/logs/times.new"; done
running=0
for i in "${order[@]}"; do
    if is_alone "$i"; then
        while [ "$running" -gt 0 ]; do wait -n; running=$((running - 1)); print_ready; done
    fi
    while [ "$running" -ge "$jobs" ]; do wait -n; running=$((running - 1)); print_ready; done
    run_one "$i" &
    pid_of[$i]=$!
    running=$((running + 1))
    if is_alone "$i"; then wait "${pid_of[$i]}"; running=$((running - 1)); fi
    print_ready
done
while [ "$running" -gt 0 ]; do wait -n; running=$((running - 1)); print_ready; done
wait
print_ready

# Keep this run's durations for the next run's start order (all programs of a complete run).
for b in build build/asan; do
    [ -f "$b/logs/times.new" ] || continue
    if [ ${#only[@]} = 0 ]; then mv "$b/logs/times.new" "$b/logs/times"; fi
    rm -f "$b/logs/times.new"
done

# Each failure again, with the lines of its log that say what failed, right above the totals: a
# CI that shows only the end of the output still shows which check failed and what it saw.
for ((k = 0; k < ${#failures[@]}; k++)); do
    echo "FAILED: ${failures[$k]}"
    grep -E -A3 '^(FAIL|not ok)|\[  (FAILED|ERROR) +\]|[Ff]ailed:|ERROR: AddressSanitizer|runtime error:|Traceback' \
        "${failure_logs[$k]}" | head -24 | sed 's/^/    /'
done
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
echo "run.sh: $n programs, $jobs at a time, $secs s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
