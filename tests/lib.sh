# lib.sh: what the integration scripts share, sourced by them (tests/run.sh runs only test_*):
# the binaries, pass/fail counters and the closing "N passed, N failed" line, a temporary
# directory removed on exit together with every daemon started, JSON readers, and starting and
# stopping lossd serve.
#
# Usage, first thing in a test script:  . "$(dirname "$0")/lib.sh" NAME
# It sets -u, goes to the repository root and sets BIN ($LOSSD_BIN, default bin), LOSSD and CTL
# (absolute paths of lossd and lossctl), PY, TMP (a new directory ${TMPDIR:-/tmp}/NAME.XXXXXX),
# PIDS (daemons to kill on exit) and the counters passed and failed.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BIN=${LOSSD_BIN:-bin}
LOSSD="$PWD/$BIN/lossd"
CTL="$PWD/$BIN/lossctl"
case "$BIN" in /*) LOSSD="$BIN/lossd" CTL="$BIN/lossctl" ;; esac
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/${1:-lossd-test}.XXXXXX")
PIDS=()
passed=0 failed=0

cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

ok() { passed=$((passed + 1)); echo "ok   $1"; }
# bad NAME [DETAIL...]: a failure, each detail on its own indented line.
bad() {
    failed=$((failed + 1))
    echo "FAIL $1"
    shift
    local line
    for line in "$@"; do echo "     $line"; done
}
# check NAME COND_STATUS DETAIL...: ok when the previous test command's status is 0.
check() {
    local name=$1 st=$2
    shift 2
    if [ "$st" = 0 ]; then ok "$name"; else bad "$name" "$@"; fi
}
# finish: prints "N passed, N failed" and exits non-zero when anything failed.
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
}

# json EXPR: evaluates a Python expression over the JSON document on stdin (bound to d).
json() { "$PY" -c 'import json,sys
d=json.load(sys.stdin)
v=eval(sys.argv[1])
print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1"; }

# json_get FILE EXPR: evaluates a Python expression over the parsed JSON object `d`.
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# ---- a daemon --------------------------------------------------------------------------------

# ctl ARGS...: lossctl on the daemon at $SOCK.
ctl() { "$CTL" --socket "$SOCK" "$@"; }

# job_field JOB EXPR: a field of job.get's result (python expression over d).
job_field() { ctl --json call job.get "{\"job_id\": $1}" | json "$2"; }

# need_binaries: ends the run (one failure) when lossd or lossctl is missing.
need_binaries() {
    if [ ! -x "$LOSSD" ] || [ ! -x "$CTL" ]; then
        bad "binaries exist" "missing $LOSSD or $CTL (run make)"
        finish
    fi
}

# start_daemon SOCKET DB LOG: starts lossd serve in the background (2 workers, output appended
# to LOG), waits until it answers. Sets DPID. Returns non-zero if it exited or never answered
# (60 s). Environment assignments before the call reach the daemon.
start_daemon() {
    "$LOSSD" serve --socket "$1" --db "$2" --workers 2 >>"$3" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    local i
    for i in $(seq 1 600); do
        "$CTL" --socket "$1" status >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_daemon: asks the daemon at $SOCK (started last, DPID) to shut down, waits up to 60 s for
# it to exit, then kills it.
stop_daemon() {
    ctl shutdown >/dev/null 2>&1
    local i
    for i in $(seq 1 600); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
}
