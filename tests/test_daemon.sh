#!/usr/bin/env bash
# test_daemon.sh: integration tests of lossd serve driven through lossctl: a real daemon on a
# temporary socket and database, small real searches on builtin:digits, crash and restart.
# Uses $LOSSD_BIN/lossd and $LOSSD_BIN/lossctl; prints "N passed, N failed" last.
. "$(dirname "$0")/lib.sh" lossd-test

# A job small enough for tests: 12 evaluations of 50 steps on digits, one seed, one level.
job_file() { # job_file PATH BUDGET SEED [NAME]
    cat >"$1" <<EOF
{"name": "${4:-test}", "tasks": [{"data": "builtin:digits", "train": {"steps": 50}}],
 "budget": {"evaluations": $2}, "population": 4, "children": 4, "seeds": 1,
 "fidelity": {"steps": [50]}, "final": {"top": 1, "seeds": 2}, "seed": $3}
EOF
}

# wait_state JOB STATE...: polls until the job is in one of the states (max 120 s).
wait_state() {
    local job=$1 i s
    shift
    for i in $(seq 1 1200); do
        s=$(job_field "$job" 'd["state"]' 2>/dev/null)
        for want in "$@"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.1
    done
    echo "job $job stayed $s, wanted $*" >&2
    return 1
}

# leaderboard_key JOB: "cand expr fitness" lines of the job's leaderboard, for comparisons.
leaderboard_key() {
    ctl --json leaderboard "$1" --top 20 |
        json '"\n".join("%s %s %.9g" % (e["cand"], e["expr"], e["fitness"]) for e in d["entries"])'
}

need_binaries

SOCK="$TMP/a.sock"
DB="$TMP/a.db"
LOG="$TMP/a.log"

# ---- start, hello, status, socket mode -----------------------------------------------------
if start_daemon "$SOCK" "$DB" "$LOG"; then ok "daemon starts and answers"; else
    bad "daemon starts and answers" "$(tail -5 "$LOG")"
    finish
fi
APID=$DPID

out=$(ctl --json call server.hello '{"client":"test_daemon"}')
[ "$(echo "$out" | json 'd["server"]')" = lossd ]
check "server.hello names the server" $? "got: $out"

out=$(ctl status)
echo "$out" | grep -q "workers" && echo "$out" | grep -q "$DB"
check "lossctl status shows workers and the database" $? "got: $out"

mode=$(stat -c %a "$SOCK")
[ "$mode" = 600 ]
check "socket mode is 0600" $? "got mode $mode"

# ---- submit, watch, leaderboard, show, export -----------------------------------------------
job_file "$TMP/job1.json" 12 3 first
J1=$(ctl submit "$TMP/job1.json")
[[ "$J1" =~ ^[0-9]+$ ]]
check "submit prints a job id" $? "got: $J1"

out=$(ctl watch "$J1" 2>&1)
st=$?
[ $st = 0 ] && echo "$out" | tail -1 | grep -q "done"
check "watch follows the job to done (plain lines off a TTY)" $? "exit $st, got: $(echo "$out" | tail -3)"
nlines=$(echo "$out" | grep -c "evaluations")
[ "$nlines" -ge 1 ]
check "watch printed progress lines" $? "got $nlines lines"

evals=$(job_field "$J1" 'd["progress"]["evaluations"]')
budget=$(job_field "$J1" 'd["progress"]["budget"]')
[ "$evals" -ge "$budget" ] 2>/dev/null
check "a done job used its budget" $? "evaluations $evals of $budget"

lb=$(ctl --json leaderboard "$J1" --top 5)
n=$(echo "$lb" | json 'len(d["entries"])')
# best first: the job's best is rank 1 (finalists rank by their fresh seeds, docs/jobs.md "Final
# selection", so fitness need not fall along the whole list)
ranked=$(echo "$lb" | json '[e["rank"] for e in d["entries"]] == list(range(1, len(d["entries"])+1))')
best=$(job_field "$J1" 'd["progress"]["best_expr"]')
first=$(echo "$lb" | json 'd["entries"][0]["expr"]')
[ "${n:-0}" -ge 2 ] && [ "$ranked" = True ] && [ "$best" = "$first" ]
check "leaderboard has ranked entries, best first" $? "n=$n ranked=$ranked best=$best first=$first: $lb"

out=$(ctl leaderboard "$J1" --top 3)
[ "$(echo "$out" | head -1 | awk '{print $1}')" = RANK ] && [ "$(echo "$out" | grep -c "^ *[0-9]  *$J1:")" -ge 2 ]
check "leaderboard prints an aligned table" $? "got: $out"

CAND=$(echo "$lb" | json 'd["entries"][0]["cand"]')
out=$(ctl show "$J1:$CAND")
st=$?
[ $st = 0 ] && echo "$out" | grep -q "^expression" && echo "$out" | grep -q "learning curve" &&
    echo "$out" | grep -q "┤"
check "show JOB:CAND prints expression, evaluations and a drawn curve" $? "exit $st, got: $out"
out2=$(ctl show "$J1" "$CAND")
[ "$out" = "$out2" ]
check "show JOB CAND equals show JOB:CAND" $? "differs"

ctl export "$J1:$CAND" --as pytorch >"$TMP/loss_torch.py"
st=$?
[ $st = 0 ] && grep -q "def " "$TMP/loss_torch.py" && grep -q "torch" "$TMP/loss_torch.py"
check "export --as pytorch prints a torch function" $? "exit $st, got: $(head -20 "$TMP/loss_torch.py")"
ctl export "$J1:$CAND" --as numpy >"$TMP/loss_numpy.py"
st=$?
[ $st = 0 ] && grep -q "def " "$TMP/loss_numpy.py" && grep -q "numpy" "$TMP/loss_numpy.py"
check "export --as numpy prints a numpy function" $? "exit $st, got: $(head -20 "$TMP/loss_numpy.py")"
ctl export "$J1:$CAND" --as latex >"$TMP/loss.tex"
check "export --as latex" $? "$(cat "$TMP/loss.tex")"

# run_export NUMPY_FILE [TORCH_FILE]: defines the exported functions and calls them on random
# classification data (10 classes, batch 8): the numpy loss must be finite; with the torch file,
# the torch loss must match it (1e-4 relative) and its autograd gradient must match the numpy
# finite-difference gradient lossd_grad (1e-3 absolute).
run_export() {
    "$PY" - "$@" <<'EOF'
import sys, inspect, math

def load(path):
    ns = {}
    exec(compile(open(path).read(), path, "exec"), ns)
    fns = {k: v for k, v in ns.items()
           if inspect.isfunction(v) and v.__code__.co_filename == path}
    loss = [v for k, v in fns.items() if k.startswith("lossd_loss")]
    assert loss, "%s defines no lossd_loss function (has: %s)" % (path, ", ".join(fns))
    return loss[0], fns.get("lossd_grad")

import numpy as np
rng = np.random.default_rng(0)
B, C = 8, 10
z = rng.standard_normal((B, C))
target = rng.integers(0, C, B)
fn, grad = load(sys.argv[1])
v = float(fn(z, target, t=0.5))
assert math.isfinite(v), "numpy loss is %r" % v
print("numpy loss %.8g" % v)
if len(sys.argv) > 2:
    import torch
    tfn, _ = load(sys.argv[2])
    zt = torch.tensor(z, requires_grad=True)
    lt = tfn(zt, torch.tensor(target), t=0.5)
    lt.backward()
    tv = float(lt)
    print("torch loss %.8g" % tv)
    assert abs(tv - v) <= 1e-4 * max(1.0, abs(v)), "torch %r != numpy %r" % (tv, v)
    if grad is not None:
        g = grad(z, target, t=0.5)
        d = float(np.abs(g - zt.grad.numpy()).max())
        print("max |grad diff| %.3g" % d)
        assert d <= 1e-3, "gradients differ by %g" % d
EOF
}
out=$(run_export "$TMP/loss_numpy.py" 2>&1)
check "exported numpy code runs on random input" $? "$out" "code: $(head -c 3000 "$TMP/loss_numpy.py")"
if "$PY" -c "import torch" 2>/dev/null; then
    out=$(run_export "$TMP/loss_numpy.py" "$TMP/loss_torch.py" 2>&1)
    check "exported pytorch code runs, backward works, and it agrees with the numpy export" $? "$out"
else
    echo "skip exported pytorch code run (torch is not importable)"
fi

# ---- watch on a terminal: a progress bar -------------------------------------------------------
if command -v script >/dev/null 2>&1; then
    job_file "$TMP/tty.json" 8 9 tty
    JT=$(ctl submit "$TMP/tty.json")
    script -qec "$CTL --socket $SOCK watch $JT" /dev/null >"$TMP/tty.out" 2>&1
    st=$?
    last=$(tr '\r' '\n' <"$TMP/tty.out" | grep -a "100%" | tail -1)
    [ $st = 0 ] && echo "$last" | grep -q "evals" && grep -qa "█" "$TMP/tty.out"
    check "watch on a TTY draws a progress bar to 100%" $? "exit $st, last bar: $last"
else
    echo "skip watch on a TTY (no script(1))"
fi

# ---- relative data paths resolve against the job file's folder ----------------------------------
mkdir -p "$TMP/proj/data"
cp data/wine.csv "$TMP/proj/data/wine.csv"
cat >"$TMP/proj/rel.json" <<EOF
{"name": "relative", "tasks": [{"data": "data/wine.csv", "label": "class", "train": {"steps": 20}}],
 "budget": {"evaluations": 4}, "population": 2, "children": 2, "seeds": 1,
 "fidelity": {"steps": [20]}, "final": {"top": 0, "seeds": 2}}
EOF
JRel=$(cd / && "$CTL" --socket "$SOCK" submit "$TMP/proj/rel.json" 2>&1)
st=$?
data=$(job_field "$JRel" 'd["spec"]["tasks"][0]["data"]' 2>&1)
[ $st = 0 ] && [ "$data" = "$(realpath "$TMP/proj/data/wine.csv")" ]
check "submit makes relative data paths absolute (from another working directory)" $? "exit $st: $JRel; data: $data"
wait_state "$JRel" done failed cancelled >/dev/null 2>&1

# ---- --json on the listing commands -------------------------------------------------------------
out=$(ctl --json jobs)
echo "$out" | json 'len(d["jobs"])' >/dev/null 2>&1
check "jobs --json is one JSON document" $? "got: $out"
out=$(ctl jobs)
echo "$out" | head -1 | grep -q "STATE" && echo "$out" | grep -q "^ *$J1  *done"
check "jobs lists the finished job" $? "got: $out"
out=$(ctl --json jobs)
echo "$out" | json '[j for j in d["jobs"] if j["job_id"] == '"$J1"'][0]["progress"]["best_expr"] is not None and [j for j in d["jobs"] if j["job_id"] == '"$J1"'][0]["progress"]["elapsed_s"] > 0' | grep -q True
check "job.list reports a finished job's winner and elapsed time" $? "got: $out"

# ---- idempotent submit -----------------------------------------------------------------------
job_file "$TMP/job2.json" 8 5 token
a=$(ctl submit --token tok-1 "$TMP/job2.json")
n0=$(ctl --json jobs | json 'len(d["jobs"])')
b=$(ctl --json submit --token tok-1 "$TMP/job2.json")
[ -n "$a" ] && [ "$(echo "$b" | json 'd["job_id"]')" = "$a" ] && [ "$(echo "$b" | json 'd["existing"]')" = True ]
check "submit with the same client_token returns the first job" $? "first $a, second $b"
n=$(ctl --json jobs | json 'len(d["jobs"])')
[ "$n" = "$n0" ]
check "the repeated submit started nothing" $? "jobs before $n0, after $n"
wait_state "$a" done failed cancelled >/dev/null

# ---- cancel, pause, resume -------------------------------------------------------------------
job_file "$TMP/big.json" 400 11 big
JB=$(ctl submit "$TMP/big.json")
wait_state "$JB" running
out=$(ctl cancel "$JB")
check "cancel a running job" $? "got: $out"
wait_state "$JB" cancelled
check "the cancelled job's state is cancelled" $? "state: $(job_field "$JB" 'd["state"]')"
out=$(ctl cancel "$JB" 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "^lossctl: job $JB: "
check "cancelling a cancelled job: exit 1, one readable line" $? "exit $st: $out"

JP=$(ctl submit "$TMP/big.json")
wait_state "$JP" running
out=$(ctl pause "$JP")
[ $? = 0 ] && echo "$out" | grep -q paused
check "pause a running job" $? "got: $out"
sleep 1
e1=$(job_field "$JP" 'd["progress"]["evaluations"]')
sleep 1.5
e2=$(job_field "$JP" 'd["progress"]["evaluations"]')
[ "$(job_field "$JP" 'd["state"]')" = paused ] && [ "$e1" = "$e2" ]
check "a paused job stays paused and starts no evaluations" $? "evaluations $e1 then $e2"
out=$(ctl pause "$JP" 2>&1)
[ $? = 1 ] && echo "$out" | grep -q "cannot pause"
check "pausing a paused job is refused" $? "got: $out"
out=$(ctl resume "$JP")
[ $? = 0 ] && wait_state "$JP" running done
check "resume a paused job" $? "got: $out"
ctl cancel "$JP" >/dev/null 2>&1

# ---- bad requests ----------------------------------------------------------------------------
out=$(ctl call job.frobnicate 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "method not found"
check "unknown method: exit 1 and a message" $? "exit $st: $out"
out=$(ctl call job.get '{"job_id":"1"}' 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "job_id" && echo "$out" | grep -q "integer"
check "wrong param type: exit 1 naming the field" $? "exit $st: $out"
out=$(ctl --json call job.get '{"job_id":"1"}' 2>/dev/null)
[ "$(echo "$out" | json 'd["code"]')" = -32602 ]
check "wrong param type: --json shows code -32602" $? "got: $out"
out=$(ctl watch 9999 2>&1)
st=$?
[ $st = 1 ] && [ "$out" = "lossctl: job 9999: not found" ]
check "unknown job: exit 1, 'lossctl: job 9999: not found'" $? "exit $st: $out"
out=$(ctl show "$J1:99999" 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "not found"
check "unknown candidate: exit 1" $? "exit $st: $out"
out=$(ctl leaderboard 9999 2>&1)
[ $? = 1 ]
check "leaderboard of an unknown job: exit 1" $? "got: $out"
ctl watch notanumber >/dev/null 2>&1
check "bad usage exits 2" "$([ $? = 2 ] && echo 0 || echo 1)" "watch notanumber"
ctl frobnicate >/dev/null 2>&1
check "unknown command exits 2" "$([ $? = 2 ] && echo 0 || echo 1)"
echo '{"name":"bad","budget":{"evaluations":-1}}' >"$TMP/bad.json"
out=$(ctl submit "$TMP/bad.json" 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "tasks" && echo "$out" | grep -q "budget"
check "an invalid job names every problem" $? "exit $st: $out"
echo '{"name": "x", ' >"$TMP/broken.json"
out=$(ctl submit "$TMP/broken.json" 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "broken.json:"
check "a job file that is not JSON: file:line:col" $? "exit $st: $out"
out=$("$CTL" --socket "$TMP/nobody.sock" status 2>&1)
st=$?
[ $st = 1 ] && echo "$out" | grep -q "cannot connect to $TMP/nobody.sock: no such file (is lossd serve running?)"
check "no daemon: exit 1 and a hint" $? "exit $st: $out"

# ---- a second daemon is refused ----------------------------------------------------------------
# second_daemon_refused NAME SOCKET DB: another lossd serve on SOCKET and DB exits non-zero and
# the first one keeps answering.
second_daemon_refused() {
    "$LOSSD" serve --socket "$2" --db "$3" --workers 1 >"$TMP/second.log" 2>&1 &
    local p=$! st
    PIDS+=("$p")
    wait "$p"
    st=$?
    [ $st != 0 ] && ctl status >/dev/null
    check "$1" $? "exit $st: $(cat "$TMP/second.log")"
}
second_daemon_refused "a second daemon on the same socket refuses to start" "$SOCK" "$TMP/other.db"
second_daemon_refused "a second daemon on the same database refuses to start" "$TMP/other.sock" "$DB"

# ---- SIGTERM exits 0 and keeps the results ---------------------------------------------------
before=$(leaderboard_key "$J1")
kill -TERM "$APID"
wait "$APID"
st=$?
[ $st = 0 ]
check "SIGTERM: the daemon exits 0" $? "exit $st: $(tail -5 "$LOG")"
start_daemon "$SOCK" "$DB" "$LOG"
APID=$DPID
after=$(leaderboard_key "$J1")
[ -n "$before" ] && [ "$before" = "$after" ] && [ "$(job_field "$J1" 'd["state"]')" = done ]
check "after a restart the job and its leaderboard are kept" $? "before: $before" "after: $after"
out=$(ctl shutdown)
wait "$APID"
st=$?
[ $st = 0 ]
check "lossctl shutdown: the daemon exits 0" $? "exit $st, got: $out"

# ---- kill -9 during a search; resume gives the uninterrupted result --------------------------
job_file "$TMP/crash.json" 80 42 crash
SOCK="$TMP/ref.sock"
start_daemon "$SOCK" "$TMP/ref.db" "$TMP/ref.log"
RPID=$DPID
JR=$(ctl submit "$TMP/crash.json")
ctl watch "$JR" >/dev/null
ref=$(leaderboard_key "$JR")
ctl shutdown >/dev/null
wait "$RPID"

SOCK="$TMP/crash.sock"
start_daemon "$SOCK" "$TMP/crash.db" "$TMP/crash.log"
CPID=$DPID
JC=$(ctl submit "$TMP/crash.json")
killed_at=""
for i in $(seq 1 2000); do
    e=$(job_field "$JC" 'd["progress"]["evaluations"]' 2>/dev/null)
    if [ "${e:-0}" -ge 4 ] 2>/dev/null; then
        kill -9 "$CPID"
        killed_at=$e
        break
    fi
    sleep 0.05
done
wait "$CPID" 2>/dev/null
[ -n "$killed_at" ] && [ "$killed_at" -lt 80 ]
check "kill -9 in the middle of a search" $? "evaluations when killed: ${killed_at:-never reached 4}"
start_daemon "$SOCK" "$TMP/crash.db" "$TMP/crash.log"
CPID=$DPID
check "the daemon restarts after kill -9" $? "$(tail -5 "$TMP/crash.log")"
out=$(ctl watch "$JC" 2>&1)
check "the interrupted job resumes and completes" $? "$(echo "$out" | tail -2)"
got=$(leaderboard_key "$JC")
[ -n "$ref" ] && [ "$ref" = "$got" ]
check "its final leaderboard equals an uninterrupted run's (same seed)" $? "uninterrupted: $(echo "$ref" | head -5 | tr '\n' '|')" "resumed:       $(echo "$got" | head -5 | tr '\n' '|')"
ctl shutdown >/dev/null
wait "$CPID"

# ---- kill -9 several rounds after the last saved search state --------------------------------
# The engine's state is stored at most every 2 s, so a restart replays the rounds after it from
# the stored evaluations; the result must still be the uninterrupted one.
SOCK="$TMP/crash2.sock"
start_daemon "$SOCK" "$TMP/crash2.db" "$TMP/crash2.log"
CPID=$DPID
JC=$(ctl submit "$TMP/crash.json")
killed_at=""
for i in $(seq 1 2000); do
    e=$(job_field "$JC" 'd["progress"]["evaluations"]' 2>/dev/null)
    if [ "${e:-0}" -ge 16 ] 2>/dev/null; then
        kill -9 "$CPID"
        killed_at=$e
        break
    fi
    sleep 0.02
done
wait "$CPID" 2>/dev/null
[ -n "$killed_at" ] && [ "$killed_at" -lt 80 ]
check "kill -9 after several rounds" $? "evaluations when killed: ${killed_at:-never reached 16}"
start_daemon "$SOCK" "$TMP/crash2.db" "$TMP/crash2.log"
CPID=$DPID
out=$(ctl watch "$JC" 2>&1)
check "the job resumes from its saved round and completes" $? "$(echo "$out" | tail -2)"
got=$(leaderboard_key "$JC")
[ -n "$ref" ] && [ "$ref" = "$got" ]
check "its final leaderboard equals an uninterrupted run's too" $? "uninterrupted: $(echo "$ref" | head -5 | tr '\n' '|')" "resumed:       $(echo "$got" | head -5 | tr '\n' '|')" "$(grep resuming "$TMP/crash2.log")"
ctl shutdown >/dev/null
wait "$CPID"

finish
