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

# ---- one family's job round trip through the daemon (test_gen_daemon.sh, test_gan_daemon.sh,
# test_rl_daemon.sh): submit, watch, leaderboard, show, export, refusals ---------------------

# daemon_up: starts lossd serve on $TMP/s.sock (sets SOCK) and $TMP/db.sqlite, log
# $TMP/daemon.log; one check.
daemon_up() {
    SOCK="$TMP/s.sock"
    start_daemon "$SOCK" "$TMP/db.sqlite" "$TMP/daemon.log"
    check "daemon starts" $? "$(tail -5 "$TMP/daemon.log")"
}

# submit_watch JOBFILE ARTICLE KIND: submits JOBFILE (sets J to the job id) and follows it to
# done; two checks, "submit ARTICLE KIND job prints a job id" and "watch follows the KIND job to
# done".
submit_watch() {
    local out st
    J=$(ctl submit "$1")
    [[ "$J" =~ ^[0-9]+$ ]]
    check "submit $2 $3 job prints a job id" $? "got: $J"
    out=$(ctl watch "$J" 2>&1)
    st=$?
    [ $st = 0 ] && echo "$out" | tail -1 | grep -q "done"
    check "watch follows the $3 job to done" $? "exit $st: $(echo "$out" | tail -3)"
}

# check_table NAME JOB [WORD]: `lossctl leaderboard JOB --top 3` prints a table (a RANK header,
# and WORD in any case when given).
check_table() {
    local out
    out=$(ctl leaderboard "$2" --top 3)
    echo "$out" | head -1 | grep -q RANK && echo "$out" | grep -qi "${3:-RANK}"
    check "$1" $? "$out"
}

# check_show NAME JOB:CAND WORD...: `lossctl show JOB:CAND` prints the candidate's expression
# line and every WORD.
check_show() {
    local name=$1 out w st=0
    out=$(ctl show "$2")
    shift 2
    echo "$out" | grep -q "^expression" || st=1
    for w in "$@"; do echo "$out" | grep -q "$w" || st=1; done
    check "$name" $st "$out"
}

# check_export NAME FILE TEXT ARGS...: `lossctl export ARGS...` into FILE, which must contain
# TEXT (a fixed string: the exported function's signature).
check_export() {
    local name=$1 file=$2 text=$3
    shift 3
    ctl export "$@" >"$file"
    grep -qF "$text" "$file"
    check "$name" $? "$(head -30 "$file")"
}

# check_exports_agree PYTHON: $TMP/n.py (--as numpy) and $TMP/t.py (--as pytorch), exports of
# one loss, agree: PYTHON (numpy as np and rng, a seeded generator, in scope) sets args, the
# loss's arguments, and kw, the keywords of lib.py's exports_agree (wrt, the arguments whose
# gradients are compared, and its tolerances). One check.
check_exports_agree() {
    local out
    out=$("$PY" - "$TMP" "$1" <<'PY' 2>&1
import sys
sys.path.insert(0, "tests")
import numpy as np
import lib
rng = np.random.default_rng(1)
kw = {}
exec(sys.argv[2])
lib.exports_agree(sys.argv[1], args, **kw)
PY
)
    check "the exported loss runs (numpy value = torch value, gradients agree)" $? "$out"
}

# check_refused NAME PATTERN JOBFILE: submitting JOBFILE fails with a message matching PATTERN.
check_refused() {
    local out st
    out=$(ctl submit "$3" 2>&1)
    st=$?
    [ $st != 0 ] && echo "$out" | grep -q "$2"
    check "$1" $? "exit $st: $out"
}
